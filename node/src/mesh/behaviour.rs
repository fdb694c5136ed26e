//! The libp2p behaviour stack and swarm construction, shared by `run` and `join`.

use super::gate::Gate;
use hearth_proto::wire::{
    JoinRequest, JoinResponse, SwimPacket, SwimReceipt, SyncRequest, SyncResponse, JOIN_PROTOCOL,
    MAX_MESSAGE_BYTES, MAX_SWIM_PACKET, SWIM_PROTOCOL, SYNC_PROTOCOL,
};
use libp2p::request_response::{self, cbor, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    autonat, dcutr, identify, identity::Keypair, noise, ping, relay, tcp, yamux, StreamProtocol,
    Swarm,
};
use std::time::Duration;

/// Identify protocol version string; peers with another major version are not Hearth nodes.
pub const IDENTIFY_PROTOCOL: &str = "/hearth/1.0.0";

/// Every control-plane protocol a node speaks. The gate comes first so a refused connection
/// never reaches the others.
#[derive(NetworkBehaviour)]
pub struct MeshBehaviour {
    /// Membership gating.
    pub gate: Gate,
    /// Addresses and agent exchange.
    pub identify: identify::Behaviour,
    /// Liveness.
    pub ping: ping::Behaviour,
    /// Invite redemption.
    pub join: cbor::Behaviour<JoinRequest, JoinResponse>,
    /// Record pull (anti-entropy) and directed pushes.
    pub sync: cbor::Behaviour<SyncRequest, SyncResponse>,
    /// Failure-detector packets to peers that do not speak the stream protocol.
    pub swim: cbor::Behaviour<SwimPacket, SwimReceipt>,
    /// Failure-detector packets and record pushes as frames on long-lived streams
    /// (`mesh::frame_streams`).
    pub streams: libp2p_stream::Behaviour,
    /// Asks peers to dial this node's observed addresses back (AutoNAT v2): is it public?
    pub autonat: autonat::v2::client::Behaviour,
    /// Dials peers' addresses back for them; off in the short-lived `hearthd join` swarm, so
    /// no peer sends a test over a connection about to close.
    pub autonat_server: Toggle<autonat::v2::server::Behaviour>,
    /// Relays between members that cannot reach each other (used on edges: members reserve
    /// only there). Only members get past the gate, so only members use it.
    pub relay: relay::Behaviour,
    /// Listens and dials through relays.
    pub relay_client: relay::client::Behaviour,
    /// Upgrades relayed connections to direct ones by hole punching.
    pub dcutr: dcutr::Behaviour,
}

/// Failure to build the swarm.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the control-plane transport: {0}")]
pub struct TransportError(String);

fn codec<Req, Resp>(protocol: &'static str) -> cbor::Behaviour<Req, Resp>
where
    Req: Send + Clone + serde::Serialize + serde::de::DeserializeOwned + 'static,
    Resp: Send + Clone + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let codec = cbor::codec::Codec::default()
        .set_request_size_maximum(MAX_MESSAGE_BYTES)
        .set_response_size_maximum(MAX_MESSAGE_BYTES);
    request_response::Behaviour::with_codec(
        codec,
        [(StreamProtocol::new(protocol), ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(Duration::from_secs(10)),
    )
}

/// The failure detector's packets: small, and useless once late (foca times its own probes).
fn swim_codec() -> cbor::Behaviour<SwimPacket, SwimReceipt> {
    let codec = cbor::codec::Codec::default()
        .set_request_size_maximum(MAX_SWIM_PACKET as u64 + 64)
        .set_response_size_maximum(64);
    request_response::Behaviour::with_codec(
        codec,
        [(StreamProtocol::new(SWIM_PROTOCOL), ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(Duration::from_secs(5)),
    )
}

/// Silence after which a QUIC control-plane connection is dead, and the keep-alive that keeps
/// a live one (and its NAT mapping: home routers drop UDP mappings after 30 s or more, Linux
/// after 120 s once both ways have spoken) from falling silent. Not what finds dead members
/// (the failure detector does); a member's new start time closes the connections to its old
/// process. A 1 s keep-alive was about 4 packets a second on every connection of an idle
/// mesh; every 10 s was still a packet and its acknowledgement every 10 s on each of a hub's
/// connections.
const QUIC_IDLE_TIMEOUT_MS: u32 = 60_000;
const QUIC_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// libp2p ping on every connection: see [`build_swarm`]. Each ping is a request and an
/// answer and their acknowledgements, from both ends: every 15 s that was the largest part of
/// an idle hub's traffic after the failure detector's.
const PING_INTERVAL: Duration = Duration::from_secs(60);
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// How often AutoNAT tests untested candidate addresses: often, because a public node is
/// elected only after one of them is confirmed.
const AUTONAT_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Relay limits for a mesh of members: circuits carry control traffic between members behind
/// NAT for as long as they need it, so the public-relay defaults (2 minutes, 128 KiB, a few
/// circuits per peer) do not fit; gating already keeps strangers out.
fn relay_config() -> relay::Config {
    relay::Config {
        max_reservations: 256,
        max_reservations_per_peer: 4,
        reservation_duration: Duration::from_secs(3600),
        reservation_rate_limiters: Vec::new(),
        max_circuits: 256,
        max_circuits_per_peer: 16,
        max_circuit_duration: Duration::from_secs(24 * 3600),
        max_circuit_bytes: 0,
        circuit_src_rate_limiters: Vec::new(),
    }
}

/// What a swarm is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwarmRole {
    /// A running node (`hearthd run`).
    Node,
    /// `hearthd join`, which exits once admitted.
    Joiner,
}

/// Builds a swarm with QUIC and TCP (Noise + Yamux) transports, and relayed connections over
/// either, for `keypair`, in a process started at `started_ms` (Unix ms: what identify tells
/// peers, so they can tell this process's connections from a predecessor's).
pub fn build_swarm(
    keypair: Keypair,
    role: SwarmRole,
    started_ms: u64,
) -> Result<Swarm<MeshBehaviour>, TransportError> {
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| TransportError(e.to_string()))?
        .with_quic_config(|mut quic| {
            quic.max_idle_timeout = QUIC_IDLE_TIMEOUT_MS;
            quic.keep_alive_interval = QUIC_KEEP_ALIVE;
            quic
        })
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| TransportError(e.to_string()))?
        .with_behaviour(|key, relay_client| MeshBehaviour {
            gate: Gate::default(),
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                    .with_agent_version(super::instances::agent_version(started_ms)),
            ),
            // Pings keep TCP paths' NAT mappings open and find dead TCP connections, which
            // have no idle timeout of their own. Seldom: on an idle mesh they were a third of
            // all traffic, and members' deaths are the failure detector's job.
            ping: ping::Behaviour::new(
                ping::Config::new()
                    .with_interval(PING_INTERVAL)
                    .with_timeout(PING_TIMEOUT),
            ),
            join: codec(JOIN_PROTOCOL),
            sync: codec(SYNC_PROTOCOL),
            swim: swim_codec(),
            streams: libp2p_stream::Behaviour::new(),
            autonat: autonat::v2::client::Behaviour::new(
                rand::rngs::OsRng,
                autonat::v2::client::Config::default().with_probe_interval(AUTONAT_PROBE_INTERVAL),
            ),
            autonat_server: Toggle::from(
                (role == SwarmRole::Node)
                    .then(|| autonat::v2::server::Behaviour::new(rand::rngs::OsRng)),
            ),
            relay: relay::Behaviour::new(key.public().to_peer_id(), relay_config()),
            relay_client,
            dcutr: dcutr::Behaviour::new(key.public().to_peer_id()),
        })
        .map_err(|e| TransportError(e.to_string()))?
        // Member connections stay open; guests are closed by the actor, dead peers by ping.
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(24 * 3600)))
        .build();
    Ok(swarm)
}

/// Starts listening on every configured address, naming the one that fails.
pub fn listen_all(
    swarm: &mut Swarm<MeshBehaviour>,
    addrs: &[String],
) -> Result<(), crate::NodeError> {
    for addr in addrs {
        let listen_error = |reason: String| crate::NodeError::Listen {
            addr: addr.clone(),
            reason,
        };
        let parsed: libp2p::Multiaddr = addr.parse().map_err(|e| listen_error(format!("{e}")))?;
        swarm
            .listen_on(parsed)
            .map_err(|e| listen_error(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod golden;
