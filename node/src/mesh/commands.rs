//! Admin commands of the mesh actor: status, members, invites, revocation, dialing, routes.

use super::actor::{MeshActor, DIAL_TARGET_LIFETIME, MAX_INVITE_TTL_SECS, MAX_INVITE_USES};
use super::peer_id::{node_id, peer_id};
use crate::clock::now_ms;
use hearth_proto::api::{
    resolve_node, ApiError, ApiErrorKind, CommandV1, InviteCreatedV1, MemberRowV1, PathV1,
    ResponseV1, StatusV1,
};
use hearth_proto::invite::{Invite, InviteSecret, InviteState};
use hearth_proto::record::{NodeInfo, Revocation};
use hearth_proto::{Body, NodeId, Role};
use libp2p::Multiaddr;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;
use tracing::info;

impl MeshActor {
    pub(super) fn handle_command(&mut self, command: CommandV1) -> ResponseV1 {
        let result = match command {
            CommandV1::Status => Ok(ResponseV1::Status(Box::new(self.status()))),
            CommandV1::Members => Ok(ResponseV1::Members(self.member_rows())),
            CommandV1::Invite {
                ttl_secs,
                uses,
                role,
            } => self.invite(ttl_secs, uses, role).map(ResponseV1::Invite),
            CommandV1::Revoke { node } => self.revoke(&node),
            CommandV1::Dial { addr } => self.dial_command(&addr),
            CommandV1::Publish {
                spec,
                target,
                node,
                proxy_protocol,
                tls,
            } => self.publish(spec, &target, node.as_deref(), proxy_protocol, tls),
            CommandV1::PublishContainer {
                spec,
                container,
                port,
                tls,
            } => self.publish_container(spec, container, port, tls),
            CommandV1::Unpublish { spec, node } => self.unpublish(spec, node.as_deref()),
            CommandV1::Routes => self.route_rows().map(ResponseV1::Routes),
            CommandV1::Edges => Ok(ResponseV1::Edges(self.edges_report())),
            CommandV1::Certs => Ok(ResponseV1::Certs(self.certs_report())),
            CommandV1::CertAction { host, action } => self.cert_action(&host, action),
        };
        result.unwrap_or_else(ResponseV1::Error)
    }

    fn status(&self) -> StatusV1 {
        let mesh_name = self
            .store
            .genesis()
            .ok()
            .flatten()
            .map(|g| g.name)
            .unwrap_or_default();
        let mut peers_connected: Vec<NodeId> = self
            .connected_members()
            .iter()
            .filter_map(node_id)
            .collect();
        peers_connected.sort();
        StatusV1 {
            node: self.me,
            name: self.settings.name.clone(),
            mesh: self.mesh,
            mesh_name,
            role: self.membership.role(&self.me),
            listen_addrs: self.listen_addrs.iter().map(|a| a.to_string()).collect(),
            members: self.member_ids().len(),
            peers_connected,
            records: self.store.all_records().map(|r| r.len()).unwrap_or(0),
            rejected_records: self
                .rejected
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            refused_connections: self.refused_connections,
            gossip_peers: 0,
            digest: self
                .store
                .state_digest()
                .map(hex::encode)
                .unwrap_or_default(),
            uptime_secs: self.started.elapsed().as_secs(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            data_plane: self.data_plane.snapshot(),
            docker: self.docker.snapshot(),
            store_writes: self.store.writes(),
            clock_ms: self.replica.clock().millis,
        }
    }

    pub(super) fn member_ids(&self) -> Vec<NodeId> {
        let mut ids: BTreeSet<NodeId> = self.membership.members().map(|(id, _)| *id).collect();
        ids.insert(self.membership.founder());
        ids.into_iter()
            .filter(|id| self.membership.is_member(id))
            .collect()
    }

    pub(super) fn member_rows(&self) -> Vec<MemberRowV1> {
        let connected: BTreeSet<NodeId> = self
            .connected_members()
            .iter()
            .filter_map(node_id)
            .collect();
        let infos = self.member_infos();
        self.member_ids()
            .into_iter()
            .map(|node| {
                let info = infos.get(&node);
                let is_self = node == self.me;
                let linked = connected.contains(&node);
                let (path, rtt_us) = if linked && !is_self {
                    self.path_to(&node, &infos)
                } else {
                    (None, None)
                };
                MemberRowV1 {
                    node,
                    name: self.display_name(&node, info),
                    role: self.membership.role(&node).unwrap_or_default(),
                    addrs: info.map(|i| i.addrs.clone()).unwrap_or_default(),
                    connected: is_self || linked,
                    last_seen_ms: if is_self || linked {
                        Some(now_ms())
                    } else {
                        self.last_seen.get(&node).copied()
                    },
                    path,
                    rtt_us,
                    is_self,
                }
            })
            .collect()
    }

    /// The name a member goes by: the one it announces, else the one it was admitted with.
    pub(super) fn display_name(&self, node: &NodeId, info: Option<&NodeInfo>) -> String {
        info.map(|i| i.name.clone())
            .filter(|n| !n.is_empty())
            .or_else(|| {
                self.membership
                    .members()
                    .find(|(id, _)| *id == node)
                    .map(|(_, m)| m.name.clone())
            })
            .unwrap_or_else(|| node.short())
    }

    /// Direct when any connection to `node` is direct, else the relay the first one uses;
    /// with the latest ping round trip over such a connection.
    fn path_to(
        &self,
        node: &NodeId,
        infos: &BTreeMap<NodeId, NodeInfo>,
    ) -> (Option<PathV1>, Option<u64>) {
        let Some(state) = self.peers.get(&peer_id(node)) else {
            return (None, None);
        };
        let direct = state.connections > state.relayed.len();
        let rtt = state
            .rtt
            .iter()
            .filter(|(c, _)| state.relayed.contains_key(c) != direct)
            .map(|(_, rtt)| rtt.as_micros() as u64)
            .min();
        if direct {
            return (Some(PathV1::Direct), rtt);
        }
        let path = state
            .relayed
            .values()
            .next()
            .and_then(node_id)
            .map(|via| PathV1::Relayed {
                via,
                via_name: self.display_name(&via, infos.get(&via)),
            });
        (path, rtt)
    }

    fn require_admin(&self) -> Result<(), ApiError> {
        if self.membership.role(&self.me) == Some(Role::Admin) {
            Ok(())
        } else {
            Err(ApiError::new(
                ApiErrorKind::Forbidden,
                "this node is not an admin of the mesh; run the command on an admin node",
            ))
        }
    }

    fn invite(
        &mut self,
        ttl_secs: u64,
        uses: u32,
        role: Role,
    ) -> Result<InviteCreatedV1, ApiError> {
        self.require_admin()?;
        if ttl_secs == 0 || ttl_secs > MAX_INVITE_TTL_SECS {
            return Err(ApiError::new(
                ApiErrorKind::BadRequest,
                format!(
                    "invite lifetime must be between 1 s and {MAX_INVITE_TTL_SECS} s (30 days)"
                ),
            ));
        }
        if uses == 0 || uses > MAX_INVITE_USES {
            return Err(ApiError::new(
                ApiErrorKind::BadRequest,
                format!("invite uses must be between 1 and {MAX_INVITE_USES}"),
            ));
        }
        let addrs = self.announced_addrs();
        let secret = InviteSecret::generate();
        let expires_ms = now_ms() + ttl_secs * 1000;
        let state = InviteState {
            secret_hash: secret.hash(),
            expires_ms,
            role,
            uses_left: uses,
        };
        self.store
            .put_invite(&state)
            .map_err(|e| ApiError::new(ApiErrorKind::Internal, e.to_string()))?;
        self.update_gate();
        let code = Invite {
            mesh: self.mesh,
            inviter: self.me,
            secret,
            expires_ms,
            addrs: addrs.clone(),
        }
        .encode();
        Ok(InviteCreatedV1 {
            code,
            expires_ms,
            uses,
            role,
            addrs,
        })
    }

    fn revoke(&mut self, query: &str) -> Result<ResponseV1, ApiError> {
        self.require_admin()?;
        let rows = self.member_rows();
        let node = resolve_node(query, rows.iter().map(|r| (r.node, r.name.as_str())))?;
        if node == self.me {
            return Err(ApiError::new(
                ApiErrorKind::BadRequest,
                "a node cannot revoke itself; run `hearthctl revoke` on another admin",
            ));
        }
        let name = rows
            .iter()
            .find(|r| r.node == node)
            .map(|r| r.name.clone())
            .unwrap_or_default();
        self.write(Body::Revocation(Revocation {
            node,
            reason: format!("revoked by {}", self.settings.name),
        }))?;
        info!(node = %node.short(), %name, "revoked member");
        Ok(ResponseV1::Revoked { node, name })
    }

    fn dial_command(&mut self, addr: &str) -> Result<ResponseV1, ApiError> {
        let parsed: Multiaddr = addr.parse().map_err(|e| {
            ApiError::new(
                ApiErrorKind::BadRequest,
                format!("`{addr}` is not a multiaddr ({e}); write e.g. /ip4/198.18.0.10/udp/7700/quic-v1"),
            )
        })?;
        self.swarm
            .dial(parsed.clone())
            .map_err(|e| ApiError::new(ApiErrorKind::BadRequest, e.to_string()))?;
        self.dial_targets
            .push((parsed, Instant::now() + DIAL_TARGET_LIFETIME));
        Ok(ResponseV1::Dialing {
            addr: addr.to_string(),
        })
    }
}
