//! Reachability, heartbeats and edge election in the mesh actor.
//!
//! The node announces what AutoNAT found ([`hearth_proto::reach`]) in a NodeInfo record that
//! it rewrites every `edges.heartbeat_ms`; every node runs the same pure election
//! ([`hearth_proto::election::elect`]) over the replicated records on a timer, and publishes
//! the result to the data plane through the [`crate::view::MeshView`]. See docs/edges.md.

use super::actor::MeshActor;
use crate::clock::now_ms;
use hearth_proto::api::{EdgeRowV1, EdgesV1};
use hearth_proto::election::{edge_ips, elect, Verdict};
use hearth_proto::record::NodeInfo;
use hearth_proto::{Body, Kind, NodeId};
use libp2p::autonat;
use std::collections::BTreeMap;
use std::time::Instant;
use tracing::{info, warn};

impl MeshActor {
    /// The heartbeat: a fresh NodeInfo. A heartbeat that comes later than the lease means
    /// this node was stalled or suspended and the others have dropped it, so its seniority
    /// starts over ([`hearth_proto::reach::ReachTracker::lapsed`]).
    pub(super) fn heartbeat(&mut self) {
        if let Some(last) = self.last_heartbeat {
            let gap = last.elapsed();
            if gap > self.settings.lease {
                warn!(
                    gap_ms = gap.as_millis() as u64,
                    "heartbeat came later than the lease; restarting edge seniority"
                );
                self.reach.lapsed(now_ms());
            }
        }
        self.publish_node_info();
    }

    /// Writes this node's NodeInfo: addresses, reachability, preference and heartbeat.
    pub(super) fn publish_node_info(&mut self) {
        if self.membership.revocation(&self.me).is_some() {
            return;
        }
        let addrs = self.announced_addrs();
        let info = NodeInfo {
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
        match self.write(Body::NodeInfo(info)) {
            Ok(_) => self.last_heartbeat = Some(Instant::now()),
            Err(e) => warn!(error = %e, "cannot publish node info"),
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

    /// Current members' NodeInfo records.
    pub(super) fn member_infos(&self) -> BTreeMap<NodeId, NodeInfo> {
        let mut infos = BTreeMap::new();
        let Ok(records) = self.store.records_of(Kind::NodeInfo) else {
            return infos;
        };
        for record in records {
            if let Ok(Body::NodeInfo(info)) = record.decode_body() {
                infos.insert(record.author, info);
            }
        }
        infos
    }

    /// Runs the election; returns whether the edge set changed.
    pub(super) fn refresh_election(&mut self) -> bool {
        let infos = self.member_infos();
        let members = self.member_ids();
        let election = elect(members, infos.iter().map(|(n, i)| (*n, i)), now_ms());
        let changed = election.edges != self.election.edges;
        if changed {
            let names: Vec<String> = election
                .edges
                .iter()
                .map(|e| infos.get(e).map(|i| i.name.clone()).unwrap_or(e.short()))
                .collect();
            info!(edges = ?names, max = election.max, "edge set changed");
        }
        self.election = election;
        changed
    }

    /// The periodic election: leases run out with time, not only when records arrive.
    pub(super) fn election_tick(&mut self) {
        if self.refresh_election() {
            self.publish_view();
        }
        self.sync_reservations();
    }

    /// `hearthctl edges`: the election with every member's verdict.
    pub(super) fn edges_report(&self) -> EdgesV1 {
        let infos = self.member_infos();
        let now = now_ms();
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
                    heartbeat_age_ms: info.map(|i| now.saturating_sub(i.heartbeat_ms)),
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
