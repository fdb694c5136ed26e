//! Reachability, NodeInfo and edge election in the mesh actor.
//!
//! The node announces what AutoNAT found ([`hearth_proto::reach`]) in a NodeInfo record that
//! it rewrites only when its content changes; liveness comes from the failure detector
//! ([`super::swim`]). Every node runs the same pure election
//! ([`hearth_proto::election::elect`]) over the replicated records and the live members, on a
//! timer and on every change, and publishes the result to the data plane through the
//! [`crate::view::MeshView`]. See docs/edges.md.

use super::actor::MeshActor;
use crate::clock::now_ms;
use hearth_proto::api::{EdgeRowV1, EdgesV1};
use hearth_proto::election::{edge_ips, elect, Verdict};
use hearth_proto::record::NodeInfo;
use hearth_proto::{Body, Kind, NodeId};
use libp2p::autonat;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tracing::{debug, info, warn};

impl MeshActor {
    /// Writes this node's NodeInfo (addresses, reachability, preference, limits, start time)
    /// when it differs from the one stored: an idle node writes nothing.
    pub(super) fn publish_node_info(&mut self) {
        if self.membership.revocation(&self.me).is_some() {
            return;
        }
        let addrs = self.announced_addrs();
        let mut info = NodeInfo {
            name: self.settings.name.clone(),
            tunnel: crate::addrs::tunnel_addrs(&addrs, self.settings.tunnel_port),
            addrs,
            version: env!("CARGO_PKG_VERSION").to_string(),
            edge_pref: self.settings.edge_pref,
            reach: self.reach.reach(),
            heartbeat_ms: now_ms(),
            lease_ms: self.settings.lease.as_millis() as u64,
            edges_max: self.settings.edges_max,
            started_ms: self.started_ms,
            acme: self.settings.acme.clone(),
        };
        if let Some(stored) = self.node_info(&self.me) {
            let unchanged = NodeInfo {
                heartbeat_ms: stored.heartbeat_ms,
                ..info.clone()
            };
            if unchanged == stored {
                return;
            }
            info!(changed = ?changed_fields(&stored, &info), "announcing a new NodeInfo");
            // Written-at never goes backwards, even if the wall clock did.
            info.heartbeat_ms = info.heartbeat_ms.max(stored.heartbeat_ms);
        }
        if let Err(e) = self.write(Body::NodeInfo(info)) {
            warn!(error = %e, "cannot publish node info");
        }
    }

    /// AutoNAT could not confirm an address (a confirmation arrives as
    /// `ExternalAddrConfirmed` instead).
    pub(super) fn autonat_result(&mut self, event: autonat::v2::client::Event) {
        if let Err(e) = &event.result {
            info!(addr = %event.tested_addr, error = %e, "AutoNAT: not reachable at this address");
            self.reach.failed(
                &event.tested_addr.to_string(),
                &format!("AutoNAT dial-back failed ({e})"),
            );
            self.reach_changed();
        }
    }

    /// Announces a new reachability at once rather than at the next heartbeat.
    pub(super) fn reach_changed(&mut self) {
        let announced = self.node_info(&self.me).map(|i| i.reach);
        if announced.as_ref() != Some(&self.reach.reach()) {
            info!(reach = %self.reach.reach(), "reachability changed");
            self.publish_node_info();
        }
    }

    /// Every stored NodeInfo, decoded (revoked members' too: callers filter by membership).
    /// A shared copy of the actor's cache, which `infos_stored` keeps current.
    pub(super) fn member_infos(&self) -> Arc<BTreeMap<NodeId, NodeInfo>> {
        self.infos.clone()
    }

    /// The NodeInfo records in `store`, decoded: the cache's starting point.
    pub(super) fn load_infos(
        store: &crate::store::Store,
    ) -> Result<BTreeMap<NodeId, NodeInfo>, crate::store::StoreError> {
        Ok(store
            .records_of(Kind::NodeInfo)?
            .into_iter()
            .filter_map(|record| match record.decode_body() {
                Ok(Body::NodeInfo(info)) => Some((record.author, info)),
                _ => None,
            })
            .collect())
    }

    /// Newly stored records (each the current version of its entry) update the NodeInfo
    /// cache. Before, every election, view and report read and decoded every member's
    /// NodeInfo from the store.
    pub(super) fn infos_stored(&mut self, stored: &[hearth_proto::Record]) {
        for record in stored.iter().filter(|r| r.kind == Kind::NodeInfo) {
            if let Ok(Body::NodeInfo(info)) = record.decode_body() {
                Arc::make_mut(&mut self.infos).insert(record.author, info);
            }
        }
    }

    /// Runs the election; returns whether the edge set changed.
    pub(super) fn refresh_election(&mut self) -> bool {
        let infos = self.member_infos();
        let members = self.member_ids();
        let alive = self.alive_members();
        let election = elect(
            members,
            infos.iter().map(|(n, i)| (*n, i)),
            &alive,
            now_ms(),
        );
        let changed = election.edges != self.election.edges;
        if changed {
            let names: Vec<String> = election
                .edges
                .iter()
                .map(|e| infos.get(e).map(|i| i.name.clone()).unwrap_or(e.short()))
                .collect();
            info!(edges = ?names, max = election.max, "edge set changed");
        }
        let next = election
            .changes_in_ms()
            .map(|ms| std::time::Duration::from_millis(ms.max(1)))
            .unwrap_or(super::actor::ELECTION_BACKSTOP)
            .min(super::actor::ELECTION_BACKSTOP);
        self.election_due = std::time::Instant::now() + next;
        self.election = election;
        self.refresh_topology(&infos);
        changed
    }

    /// Recomputes which members this node keeps connections to, when the members or hubs
    /// (public members, and the elected edges) changed.
    fn refresh_topology(&mut self, infos: &BTreeMap<NodeId, NodeInfo>) {
        let members: BTreeSet<NodeId> = self.member_ids().into_iter().collect();
        let hubs: BTreeSet<NodeId> = infos
            .iter()
            .filter(|(_, i)| matches!(i.reach, hearth_proto::reach::Reach::Public { .. }))
            .map(|(n, _)| *n)
            .chain(self.election.edges.iter().copied())
            .filter(|n| members.contains(n))
            .collect();
        if &members == self.topology.members() && &hubs == self.topology.hubs() {
            return;
        }
        self.replica.set_hubs(hubs.clone());
        self.topology = super::topology::Topology::new(members, hubs, self.settings.neighbours);
        self.control_peers = self.topology.peers_of(&self.me);
        debug!(
            peers = self.control_peers.len(),
            hubs = self.topology.hubs().len(),
            bounded = self.topology.bounded(),
            "control topology changed"
        );
    }

    /// The election when time alone may have changed it (a settling time ended), or at the
    /// backstop.
    pub(super) fn election_tick(&mut self) {
        if self.refresh_election() {
            self.publish_view();
        }
    }

    /// `hearthctl edges`: the election with every member's verdict.
    pub(super) fn edges_report(&self) -> EdgesV1 {
        let infos = self.member_infos();
        let alive = self.alive_members();
        let mut rows: Vec<EdgeRowV1> = self
            .member_ids()
            .into_iter()
            .map(|node| {
                let info = infos.get(&node);
                let verdict =
                    self.election
                        .verdicts
                        .get(&node)
                        .cloned()
                        .unwrap_or(Verdict::NotEdge(
                            hearth_proto::election::NotElected::NoHeartbeat,
                        ));
                EdgeRowV1 {
                    node,
                    name: self.display_name(&node, info),
                    verdict,
                    edge_pref: info.map(|i| i.edge_pref).unwrap_or_default(),
                    reach: info.map(|i| i.reach.clone()).unwrap_or_default(),
                    ips: info
                        .map(|i| edge_ips(i).iter().map(|ip| ip.to_string()).collect())
                        .unwrap_or_default(),
                    alive: alive.contains(&node),
                    is_self: node == self.me,
                }
            })
            .collect();
        rows.sort_by_key(|row| match row.verdict {
            Verdict::Edge { rank } => (0, rank, String::new()),
            Verdict::NotEdge(_) => (1, 0, row.name.clone()),
        });
        EdgesV1 {
            max: self.election.max,
            rows,
        }
    }
}

/// The NodeInfo fields that differ, for the log: a NodeInfo write is rare and worth a line.
fn changed_fields(old: &NodeInfo, new: &NodeInfo) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |name, differs: bool| {
        if differs {
            changed.push(name);
        }
    };
    check("name", old.name != new.name);
    check("addrs", old.addrs != new.addrs);
    check("version", old.version != new.version);
    check("tunnel", old.tunnel != new.tunnel);
    check("edge_pref", old.edge_pref != new.edge_pref);
    check("reach", old.reach != new.reach);
    check("lease_ms", old.lease_ms != new.lease_ms);
    check("edges_max", old.edges_max != new.edges_max);
    check("started_ms", old.started_ms != new.started_ms);
    check("acme", old.acme != new.acme);
    changed
}
