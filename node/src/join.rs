//! `hearthd join CODE`: redeem an invite with its inviter and store the mesh it returns.
//!
//! The joiner dials the addresses in the code. If none answers (the inviter is behind NAT), it
//! keeps listening and says which `hearthctl dial` command, run on the inviter, makes the
//! inviter connect out to it; either way the join request travels over the first connection
//! with the inviter, whoever dialed it. See docs/joining.md.

use crate::clock::now_ms;
use crate::config::Config;
use crate::mesh::behaviour::{build_swarm, listen_all, MeshBehaviourEvent, SwarmRole};
use crate::mesh::peer_id::{keypair, node_id, peer_id};
use crate::store::Store;
use crate::{identity, NodeError};
use hearth_proto::invite::{Invite, InviteError};
use hearth_proto::membership::{verify_genesis, Membership};
use hearth_proto::replication::{self, MemoryStore, RecordMap};
use hearth_proto::wire::{JoinRequest, JoinResponse};
use hearth_proto::{Kind, MeshId, NodeId, Record, Role};
use libp2p::futures::StreamExt;
use libp2p::request_response::{self, Message};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::SwarmEvent;
use libp2p::Multiaddr;
use std::time::Duration;
use tracing::{debug, info};

/// After this many connections the inviter closed without answering, the joiner gives up.
const MAX_UNANSWERED_CLOSES: u32 = 3;

/// A successful join.
#[derive(Debug, Clone)]
pub struct Joined {
    /// This node.
    pub node: NodeId,
    /// The mesh joined.
    pub mesh: MeshId,
    /// Role granted.
    pub role: Role,
    /// Members known right after joining, this node included.
    pub members: usize,
}

/// What the joiner tells the person while it waits.
pub trait JoinProgress {
    /// None of the code's addresses answered; `listening` are this node's addresses.
    fn unreachable(&self, listening: &[String]);
}

impl<F: Fn(&[String])> JoinProgress for F {
    fn unreachable(&self, listening: &[String]) {
        self(listening)
    }
}

/// Joins the mesh named by `code`, waiting at most `timeout` for the inviter.
pub async fn join(
    config: &Config,
    name: &str,
    code: &str,
    timeout: Duration,
    progress: &dyn JoinProgress,
) -> Result<Joined, NodeError> {
    let invite = Invite::decode(code)?;
    invite.check_expiry(now_ms())?;
    identity::check_name(name).map_err(NodeError::BadName)?;
    let data_dir = config.data_dir();
    let key = identity::load_or_create(&data_dir)?;
    let store = Store::open(&data_dir)?;
    if let Some(mesh) = store.mesh()? {
        return Err(if mesh == invite.mesh {
            NodeError::AlreadyMember(mesh.short())
        } else {
            NodeError::Invite(InviteError::WrongMesh {
                invite: invite.mesh.short(),
                context: format!("this node ({}) already belongs to", data_dir.display()),
                other: mesh.short(),
            })
        });
    }

    let inviter = peer_id(&invite.inviter);
    let mut swarm = build_swarm(keypair(&key), SwarmRole::Joiner, crate::clock::now_ms())?;
    swarm.behaviour_mut().gate.policy.members.insert(inviter);
    listen_all(&mut swarm, &config.listen)?;
    let addrs: Vec<Multiaddr> = invite.addrs.iter().filter_map(|a| a.parse().ok()).collect();
    let dial = |swarm: &mut libp2p::Swarm<_>| {
        if addrs.is_empty() {
            return;
        }
        let opts = DialOpts::peer_id(inviter).addresses(addrs.clone()).build();
        if let Err(e) = swarm.dial(opts) {
            debug!(error = %e, "dial not started");
        }
    };
    dial(&mut swarm);

    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut redial = tokio::time::interval(Duration::from_secs(3));
    redial.tick().await;
    let mut hinted = false;
    let mut listening: Vec<String> = Vec::new();
    let mut pending = false;
    let mut closed_unanswered = 0;
    let started = std::time::Instant::now();
    let records = loop {
        tokio::select! {
            _ = &mut deadline => {
                return Err(NodeError::JoinTimeout {
                    secs: timeout.as_secs(),
                    addrs: invite.addrs.clone(),
                });
            }
            _ = redial.tick() => {
                if !swarm.is_connected(&inviter) {
                    dial(&mut swarm);
                    if !hinted && started.elapsed() >= Duration::from_secs(5) {
                        hinted = true;
                        progress.unreachable(&listening);
                    }
                }
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => listening.push(address.to_string()),
                SwarmEvent::ConnectionEstablished { peer_id: peer, .. } if peer == inviter && !pending => {
                    info!("connected to the inviter; presenting the invite");
                    pending = true;
                    swarm.behaviour_mut().join.send_request(&inviter, JoinRequest::V1 {
                        mesh: invite.mesh,
                        secret: invite.secret.clone(),
                        name: name.to_string(),
                    });
                }
                SwarmEvent::Behaviour(MeshBehaviourEvent::Join(event)) => match event {
                    request_response::Event::Message { message: Message::Response { response, .. }, .. } => {
                        let JoinResponse::V1(result) = response;
                        break result?;
                    }
                    request_response::Event::OutboundFailure { error, .. } => {
                        debug!(%error, "join request failed; will retry on the next connection");
                        pending = false;
                    }
                    _ => {}
                },
                SwarmEvent::ConnectionClosed { peer_id: peer, num_established: 0, .. } if peer == inviter => {
                    pending = false;
                    closed_unanswered += 1;
                    if closed_unanswered >= MAX_UNANSWERED_CLOSES {
                        return Err(NodeError::InviterRefused);
                    }
                }
                other => debug!(?other, "join: swarm event"),
            }
        }
    };
    let joined = persist(&store, &invite, &key.id(), name, records)?;
    // Close connections politely so the inviter sees us leave, not time out.
    let peers: Vec<_> = swarm.connected_peers().copied().collect();
    for peer in peers {
        let _ = swarm.disconnect_peer_id(peer);
    }
    debug!(peer = ?node_id(&inviter), "left the join session");
    Ok(joined)
}

/// Verifies the returned state against the code and stores it. Everything is checked in
/// memory first, with the same admission rules as the store, so a refused grant leaves the
/// data dir as it was (no mesh, no records) and the next `hearthd join` starts clean.
fn persist(
    store: &Store,
    invite: &Invite,
    me: &NodeId,
    name: &str,
    records: Vec<Record>,
) -> Result<Joined, NodeError> {
    let genesis = records
        .iter()
        .find(|r| r.kind == Kind::Genesis)
        .ok_or(NodeError::BadGrant("no genesis record".into()))?;
    let genesis_body = verify_genesis(genesis).map_err(|e| NodeError::BadGrant(e.to_string()))?;
    if genesis.mesh != invite.mesh {
        return Err(NodeError::BadGrant(format!(
            "the inviter sent mesh {} but the code names {}",
            genesis.mesh.short(),
            invite.mesh.short()
        )));
    }
    let mut trial = MemoryStore::new(invite.mesh);
    let Ok((_, _)) = replication::apply_batch(&mut trial, records.clone());
    let Ok(admitted) = trial.membership_records();
    let membership = Membership::replay(
        invite.mesh,
        &genesis_body,
        admitted.iter().map(|(r, b)| (r, b)),
    );
    let role = membership.role(me).ok_or(NodeError::BadGrant(
        "the grant does not list this node as a member".into(),
    ))?;
    store.set_mesh(invite.mesh)?;
    store.apply_batch(records)?;
    store.set_bootstrap(&invite.addrs)?;
    store.set_local_name(name)?;
    store.save_watermark()?;
    let members = membership
        .members()
        .filter(|(id, _)| membership.is_member(id))
        .count();
    Ok(Joined {
        node: *me,
        mesh: invite.mesh,
        role,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_proto::invite::InviteSecret;
    use hearth_proto::record::{Genesis, Member};
    use hearth_proto::{Body, Hlc, NodeKey};

    fn grant(founder: &NodeKey, mesh: MeshId, members: &[NodeId]) -> Vec<Record> {
        let genesis = Body::Genesis(Genesis {
            name: "m".into(),
            founder: founder.id(),
            nonce: [1; 16],
            created_ms: 1,
        });
        let mut records = vec![Record::sign(founder, mesh, &genesis, Hlc::at(1))];
        for (i, node) in members.iter().enumerate() {
            let body = Body::Member(Member {
                node: *node,
                name: format!("n{i}"),
                role: Role::Member,
            });
            records.push(Record::sign(founder, mesh, &body, Hlc::at(2 + i as u64)));
        }
        records
    }

    #[test]
    fn a_refused_grant_leaves_the_store_without_a_mesh_and_a_good_one_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let founder = NodeKey::from_secret([1; 32]);
        let me = NodeKey::from_secret([2; 32]).id();
        let mesh = MeshId::derive(&founder.id(), &[1; 16]);
        let invite = Invite {
            mesh,
            inviter: founder.id(),
            secret: InviteSecret::generate(),
            expires_ms: u64::MAX,
            addrs: vec!["/ip4/198.18.0.1/udp/7700/quic-v1".into()],
        };
        // The inviter's answer lists the founder but not this node.
        let refused = persist(
            &store,
            &invite,
            &me,
            "box",
            grant(&founder, mesh, &[founder.id()]),
        );
        assert!(
            matches!(refused, Err(NodeError::BadGrant(_))),
            "{refused:?}"
        );
        assert_eq!(store.mesh().unwrap(), None);
        assert!(store.all_records().unwrap().is_empty());
        assert!(store.bootstrap().unwrap().is_empty());

        let joined = persist(
            &store,
            &invite,
            &me,
            "box",
            grant(&founder, mesh, &[founder.id(), me]),
        )
        .unwrap();
        assert_eq!(joined.role, Role::Member);
        assert_eq!(store.mesh().unwrap(), Some(mesh));
        assert_eq!(store.all_records().unwrap().len(), 3);
    }
}
