//! `hearth-testnet probe inject`: a member's key used to push a record it may not write, as a
//! compromised or buggy member would, to prove that the receiver refuses it.

use anyhow::{bail, Result};
use hearth_node::mesh::behaviour::{build_swarm, MeshBehaviourEvent, SwarmRole};
use hearth_node::mesh::peer_id::{keypair, peer_id};
use hearth_proto::route::{Route, RouteSpec};
use hearth_proto::wire::{SyncRequest, SyncRequestV1, SyncResponse, SyncResponseV1};
use hearth_proto::{Body, Hlc, MeshId, NodeId, Record};
use libp2p::futures::StreamExt;
use libp2p::request_response::{Event, Message};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::SwarmEvent;
use libp2p::Multiaddr;
use std::path::Path;
use std::time::Duration;

/// What to forge and where to send it (also the `probe inject` arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct Forgery {
    /// Data dir of the member whose key signs the forgery.
    #[arg(long)]
    pub data_dir: std::path::PathBuf,
    /// The mesh.
    #[arg(long)]
    pub mesh: MeshId,
    /// Where the receiver listens.
    #[arg(long)]
    pub to: Multiaddr,
    /// The receiver.
    #[arg(long)]
    pub receiver: NodeId,
    /// Host name of the forged route.
    #[arg(long)]
    pub host: String,
    /// The node the forged route claims to be hosted on (not the signer).
    #[arg(long)]
    pub victim: NodeId,
}

/// Signs a route hosted by `victim` with the member's key and pushes it to the receiver;
/// returns the receiver's (stored, rejected) answer.
pub async fn inject(forgery: &Forgery) -> Result<(u32, u32)> {
    let key = hearth_node::identity::load(Path::new(&forgery.data_dir))?;
    let now = hearth_node::clock::now_ms();
    let record = Record::sign(
        &key,
        forgery.mesh,
        &Body::Route(Route {
            spec: RouteSpec::Http {
                host: forgery.host.clone(),
            },
            node: forgery.victim,
            target: Some("127.0.0.1:1".into()),
            proxy_protocol: false,
            container: None,
            tls: Default::default(),
        }),
        Hlc::at(now),
    );
    let mut swarm = build_swarm(keypair(&key), SwarmRole::Joiner, crate::clock_ms())?;
    let receiver = peer_id(&forgery.receiver);
    swarm.behaviour_mut().gate.policy.members.insert(receiver);
    swarm.dial(
        DialOpts::peer_id(receiver)
            .addresses(vec![forgery.to.clone()])
            .build(),
    )?;
    let answer = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == receiver => {
                    let push = SyncRequest::V1(SyncRequestV1::Push {
                        records: vec![record.clone()],
                    });
                    swarm.behaviour_mut().sync.send_request(&receiver, push);
                }
                SwarmEvent::Behaviour(MeshBehaviourEvent::Sync(Event::Message {
                    message: Message::Response { response, .. },
                    ..
                })) => return Ok(response),
                SwarmEvent::OutgoingConnectionError { error, .. } => bail!("dial: {error}"),
                _ => {}
            }
        }
    })
    .await??;
    match answer {
        SyncResponse::V1(SyncResponseV1::Ack { stored, rejected }) => Ok((stored, rejected)),
        SyncResponse::V1(other) => bail!("unexpected answer {other:?}"),
    }
}
