//! Dial-back over the mesh's own sync protocol: a node asks a connected member to dial its
//! QUIC port back at the IP the member sees it at, and learns whether the internet reaches it
//! there.
//!
//! The libp2p AutoNAT v2 client only asks peers *it* dialed. A VPS whose other members are all
//! behind NAT dials none of them (they dial it), so AutoNAT v2 alone would never confirm it:
//! the most common Hearth mesh, one VPS and a home server, would elect no edge. This request
//! goes over any connection. Like AutoNAT, the member dials from a fresh port and only the
//! requester's own IP, so no member can be made to dial a third party; members are trusted
//! with the answer.
//!
//! A failure from one member is not final (a member without UDP cannot dial QUIC): unconfirmed
//! ports are asked again, of another member, with backoff; one confirmation wins.

use super::actor::MeshActor;
use super::peer_id::node_id;
use crate::clock::now_ms;
use hearth_proto::wire::{SyncRequest, SyncRequestV1, SyncResponse, SyncResponseV1};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, DialError};
use libp2p::{Multiaddr, PeerId};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tracing::{debug, info};

/// First wait between asks for an unconfirmed port; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
/// The longest wait: an unconfirmed port is asked about every 5 minutes at most, since each
/// failed dial-back costs its server a QUIC handshake of 1,200-byte packets until it times out.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Most dial-backs a node runs for others at once.
const MAX_SERVING: usize = 16;

/// Both sides' state.
#[derive(Debug, Default)]
pub(crate) struct DialBacks {
    /// Server side: dial-backs in progress, by the connection being dialed.
    serving: HashMap<ConnectionId, (ResponseChannel<SyncResponse>, String)>,
    /// Client side: the ask in flight, and when to ask next.
    asking: Option<OutboundRequestId>,
    next_ask: Option<Instant>,
    backoff: Option<Duration>,
    /// Rotates through members, so a member that cannot dial is not asked twice in a row.
    turn: usize,
}

/// A failed dial in a few words: the transport's own errors (e.g. a QUIC handshake that timed
/// out) rather than libp2p's wrapping of them with every multiaddr.
pub(super) fn why(error: &DialError) -> String {
    match error {
        DialError::Transport(errors) => errors
            .iter()
            .map(|(_, e)| match e {
                libp2p::TransportError::Other(inner) => inner.to_string(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

impl MeshActor {
    /// This node's QUIC listen ports on non-loopback addresses: what members dial back.
    fn quic_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .listen_addrs
            .iter()
            .filter(|a| hearth_proto::addr::is_direct_quic(&a.to_string()))
            .filter(|a| {
                !a.iter()
                    .any(|p| matches!(p, Protocol::Ip4(ip) if ip.is_loopback()))
            })
            .filter_map(|a| {
                a.iter().find_map(|p| match p {
                    Protocol::Udp(port) => Some(port),
                    _ => None,
                })
            })
            .collect();
        ports.sort();
        ports.dedup();
        ports
    }

    /// Whether a confirmed public QUIC address on `port` is known.
    fn port_confirmed(&self, port: u16) -> bool {
        match self.reach.reach() {
            hearth_proto::reach::Reach::Public { addrs, .. } => addrs
                .iter()
                .any(|a| a.contains(&format!("/udp/{port}/quic-v1"))),
            _ => false,
        }
    }

    /// Asks a member to dial back the first unconfirmed QUIC port, when it is time to.
    pub(super) fn ask_dial_back(&mut self) {
        let now = Instant::now();
        if self.dialbacks.asking.is_some() || self.dialbacks.next_ask.is_some_and(|t| t > now) {
            return;
        }
        let Some(port) = self
            .quic_ports()
            .into_iter()
            .find(|p| !self.port_confirmed(*p))
        else {
            return;
        };
        let mut members: Vec<PeerId> = self
            .connected_members()
            .into_iter()
            .filter(|p| node_id(p).is_some_and(|n| self.directly_connected(&n)))
            .collect();
        if members.is_empty() {
            return;
        }
        members.sort();
        let member = members[self.dialbacks.turn % members.len()];
        self.dialbacks.turn = self.dialbacks.turn.wrapping_add(1);
        let request = SyncRequest::V1(SyncRequestV1::DialBack { port });
        let id = self
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&member, request);
        self.dialbacks.asking = Some(id);
        let backoff = self.dialbacks.backoff.unwrap_or(FIRST_BACKOFF);
        self.dialbacks.next_ask = Some(now + backoff);
        self.dialbacks.backoff = Some((backoff * 2).min(MAX_BACKOFF));
        debug!(%member, port, "asking a member to dial us back");
    }

    /// The member's answer (or `None` when the request failed).
    pub(super) fn dial_back_answered(
        &mut self,
        request: OutboundRequestId,
        answer: Option<(String, Result<(), String>)>,
    ) -> bool {
        if self.dialbacks.asking != Some(request) {
            return false;
        }
        self.dialbacks.asking = None;
        match answer {
            Some((addr, Ok(()))) => {
                info!(%addr, "a member dialed us back: reachable there");
                self.reach.confirmed(&addr, now_ms());
                if let Ok(parsed) = addr.parse::<Multiaddr>() {
                    self.swarm.add_external_address(parsed);
                }
                // Another port may still be unconfirmed.
                self.dialbacks.next_ask = None;
                self.dialbacks.backoff = None;
                self.reach_changed();
            }
            Some((addr, Err(error))) => {
                // Asked again every minute while private: only a new verdict is worth a line
                // in the log (and a write to the disk it is on).
                let before = self.reach.reach();
                self.reach
                    .failed(&addr, &format!("a member's dial-back failed ({error})"));
                if self.reach.reach() != before {
                    info!(%addr, %error, "a member could not dial us back");
                } else {
                    debug!(%addr, %error, "a member could not dial us back, again");
                }
                self.reach_changed();
            }
            None => {}
        }
        true
    }

    /// Server side: dials `peer` back on `port` at the IP it is seen at on `connection`; the
    /// answer goes out when the dial succeeds or fails.
    pub(super) fn serve_dial_back(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        port: u16,
        channel: ResponseChannel<SyncResponse>,
    ) {
        let refuse = |this: &mut Self, channel, addr: String, why: &str| {
            let response = SyncResponse::V1(SyncResponseV1::DialedBack {
                addr,
                result: Err(why.to_string()),
            });
            let _ = this
                .swarm
                .behaviour_mut()
                .sync
                .send_response(channel, response);
        };
        let Some(ip) = self.observed_ip(&peer, connection) else {
            return refuse(
                self,
                channel,
                String::new(),
                "no direct connection to dial back to",
            );
        };
        let addr = Multiaddr::empty()
            .with(match ip {
                IpAddr::V4(v4) => Protocol::Ip4(v4),
                IpAddr::V6(v6) => Protocol::Ip6(v6),
            })
            .with(Protocol::Udp(port))
            .with(Protocol::QuicV1);
        if self.dialbacks.serving.len() >= MAX_SERVING || port == 0 {
            return refuse(
                self,
                channel,
                addr.to_string(),
                "busy or bad port; ask again later",
            );
        }
        let opts = DialOpts::peer_id(peer)
            .addresses(vec![addr.clone()])
            .condition(PeerCondition::Always)
            .allocate_new_port()
            .build();
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.dialbacks
                    .serving
                    .insert(id, (channel, addr.to_string()));
            }
            Err(e) => refuse(self, channel, addr.to_string(), &e.to_string()),
        }
    }

    /// Server side: a connection this node dialed came up or failed; answers the dial-back
    /// it was for, if any, and closes the connection (it was only a test).
    pub(super) fn dial_back_done(&mut self, connection: ConnectionId, result: Result<(), String>) {
        let Some((channel, addr)) = self.dialbacks.serving.remove(&connection) else {
            return;
        };
        if result.is_ok() {
            self.swarm.close_connection(connection);
        }
        let response = SyncResponse::V1(SyncResponseV1::DialedBack { addr, result });
        let _ = self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, response);
    }

    /// The IP `peer` is seen at on `connection`, or on any direct connection to it.
    fn observed_ip(&self, peer: &PeerId, connection: ConnectionId) -> Option<IpAddr> {
        let state = self.peers.get(peer)?;
        let ip_of = |addr: &Multiaddr| hearth_proto::addr::ip_of(&addr.to_string());
        state
            .remotes
            .get(&connection)
            .and_then(ip_of)
            .or_else(|| state.remotes.values().find_map(ip_of))
    }
}
