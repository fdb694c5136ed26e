//! The failure detector in the mesh actor: carrying [`super::swim::Swim`]'s packets over the
//! members' control connections and acting on what it concludes. See docs/edges.md.

use super::actor::MeshActor;
use super::frame_streams::{Inbound, NotSent};
use super::peer_id::{node_id, peer_id};
use super::swim::{Swim, SwimOutput};
use crate::clock::now_ms;
use hearth_proto::wire::{SwimPacket, SwimReceipt};
use hearth_proto::NodeId;
use libp2p::request_response::{self, Message};
use libp2p::PeerId;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tracing::{debug, info};

/// How often a connected member the detector does not hold alive is introduced again.
const REINTRODUCE_EVERY: Duration = Duration::from_secs(3);

impl MeshActor {
    /// Members held alive: this node, and every current member the detector has not declared
    /// down.
    pub(super) fn alive_members(&self) -> BTreeSet<NodeId> {
        self.swim
            .alive()
            .iter()
            .copied()
            .filter(|n| self.membership.is_member(n))
            .chain(std::iter::once(self.me))
            .collect()
    }

    /// A member connected: make sure the detector knows it (it then learns the rest of the
    /// mesh from it).
    pub(super) fn introduce_to(&mut self, node: NodeId) {
        if self.swim.alive().contains(&node) {
            return;
        }
        self.introduced.insert(node, Instant::now());
        let started_ms = self.peer_starts.get(&node).copied().unwrap_or(0);
        let output = self.swim.announce(node, started_ms, Instant::now());
        self.apply_swim(output);
    }

    /// Introduces again each connected member the detector does not hold alive (`introduce_to`
    /// skips the others), now and then:
    /// the first announce or its answer can be lost (on a connection to a restarted member's
    /// old process, say), and a detector that knows no member probes no one.
    pub(super) fn reintroduce(&mut self, now: Instant) {
        let due: Vec<NodeId> = self
            .connected_members()
            .iter()
            .filter_map(node_id)
            .filter(|n| {
                self.introduced
                    .get(n)
                    .is_none_or(|at| now.duration_since(*at) >= REINTRODUCE_EVERY)
            })
            .collect();
        for node in due {
            self.introduce_to(node);
        }
    }

    /// The detector's timers.
    pub(super) fn swim_tick(&mut self) {
        let output = self.swim.tick(Instant::now());
        self.apply_swim(output);
    }

    /// A revoked member leaves the detector.
    pub(super) fn forget_liveness(&mut self, node: &NodeId) {
        let output = self.swim.forget(node, Instant::now());
        self.apply_swim(output);
    }

    pub(super) fn handle_swim_event(
        &mut self,
        event: request_response::Event<SwimPacket, SwimReceipt>,
    ) {
        let request_response::Event::Message {
            peer,
            message: Message::Request {
                request, channel, ..
            },
            ..
        } = event
        else {
            return;
        };
        let _ = self
            .swarm
            .behaviour_mut()
            .swim
            .send_response(channel, SwimReceipt::V1);
        self.take_swim_packet(peer, request);
    }

    /// What the failure detector's streams delivered.
    pub(super) fn swim_stream_event(&mut self, inbound: Inbound<SwimPacket>) {
        match inbound {
            Inbound::Frame(peer, packet) => self.take_swim_packet(peer, packet),
            Inbound::Unsupported(peer) => {
                debug!(%peer, "no failure-detector streams: request-response for this peer");
                if let Some(streams) = self.swim_streams.as_mut() {
                    streams.unsupported(peer);
                }
            }
        }
    }

    /// A packet from `peer`, by either transport: for this node's detector, or to pass on.
    fn take_swim_packet(&mut self, peer: PeerId, request: SwimPacket) {
        let Some(node) = node_id(&peer).filter(|_| self.is_member_peer(&peer)) else {
            return;
        };
        let (origin, bytes) = match request {
            SwimPacket::V1 { bytes } => (node, bytes),
            SwimPacket::Pass { bytes } => match pass_to(self.me, node, &bytes) {
                Ok(None) => (node, bytes),
                Ok(Some(to)) => {
                    self.relay_swim(to, SwimPacket::Passed { bytes });
                    return;
                }
                Err(why) => return self.refuse_swim(&peer, &why),
            },
            SwimPacket::Passed { bytes } => {
                // The passing member vouches for the sender foca's header names.
                match Swim::sender_and_addressee(&bytes) {
                    Ok((sender, _)) if self.membership.is_member(&sender) && sender != self.me => {
                        (sender, bytes)
                    }
                    Ok(_) => return self.refuse_swim(&peer, "passed packet from a non-member"),
                    Err(e) => return self.refuse_swim(&peer, &e.to_string()),
                }
            }
            // What nodes of 2026-12-07 sent; still passed on and taken.
            SwimPacket::Relay { to, bytes } => {
                let relayed = SwimPacket::Relayed {
                    origin: node,
                    bytes,
                };
                self.relay_swim(to, relayed);
                return;
            }
            SwimPacket::Relayed { origin, bytes } => {
                // The relaying member vouches for the origin; foca's header must name it too
                // (`Swim::receive` checks).
                if !self.membership.is_member(&origin) || origin == self.me {
                    return self.refuse_swim(&peer, "relayed packet from a non-member");
                }
                (origin, bytes)
            }
            // What nodes before `Relay` sent; still passed on and taken.
            SwimPacket::Forwarded { to, .. } if to != self.me => {
                self.forward_swim(node, to, request);
                return;
            }
            SwimPacket::Forwarded { origin, .. }
                if !self.membership.is_member(&origin) || !request.verify_forwarded(&self.mesh) =>
            {
                return self.refuse_swim(&peer, "forwarded packet not signed by a member");
            }
            SwimPacket::Forwarded { origin, bytes, .. } => (origin, bytes),
        };
        match self.swim.receive(origin, &bytes, Instant::now()) {
            Ok(output) => self.apply_swim(output),
            Err(e) => self.refuse_swim(&peer, &e.to_string()),
        }
    }

    fn refuse_swim(&mut self, peer: &PeerId, why: &str) {
        debug!(%peer, why, "failure-detector packet refused");
        *self.rejected.entry("swim").or_default() += 1;
    }

    /// Passes a packet on to `to`, vouching for its origin, when this node has a connection
    /// to `to` (one hop: what is passed on is never passed on again).
    fn relay_swim(&mut self, to: NodeId, packet: SwimPacket) {
        if to == self.me || !self.membership.is_member(&to) || !self.connected_to(&to) {
            return;
        }
        self.send_swim(to, packet);
    }

    /// Passes an older node's signed packet from `from` on to `to`, when `from` wrote it (one
    /// hop, no loops) and this node has a connection to `to`; the addressee checks the
    /// origin's signature.
    fn forward_swim(&mut self, from: NodeId, to: NodeId, packet: SwimPacket) {
        let SwimPacket::Forwarded { origin, .. } = &packet else {
            return;
        };
        if *origin != from || !self.membership.is_member(&to) || !self.connected_to(&to) {
            return;
        }
        self.send_swim(to, packet);
    }

    /// Sends on `to`'s failure-detector stream, or as a request to a peer without streams.
    fn send_swim(&mut self, to: NodeId, packet: SwimPacket) {
        let peer = peer_id(&to);
        if let Some(streams) = self.swim_streams.as_mut() {
            match streams.send(peer, &packet) {
                // A dropped packet is a missed probe to the detector, which it is.
                Ok(()) | Err(NotSent::Dropped) => return,
                Err(NotSent::OtherWay) => {}
            }
        }
        self.swarm.behaviour_mut().swim.send_request(&peer, packet);
    }

    fn connected_to(&self, node: &NodeId) -> bool {
        self.peers
            .get(&peer_id(node))
            .is_some_and(|s| s.connections > 0 && s.guest_until.is_none())
    }

    /// A connected member that keeps a connection to `to` (the topology says which), to pass
    /// a packet on: a hub when there is one.
    fn forwarder_for(&self, to: &NodeId) -> Option<NodeId> {
        let mut candidates: Vec<NodeId> = self
            .connected_members()
            .iter()
            .filter_map(node_id)
            .filter(|p| self.topology.wanted(p, to))
            .collect();
        candidates.sort_by_key(|p| !self.topology.hubs().contains(p));
        candidates.first().copied()
    }

    /// Sends the detector's packets and acts on its conclusions. A packet for a member this
    /// node keeps no connection to goes through a member that has one (which vouches for its
    /// origin); with none, it is dropped: the detector counts it as lost and
    /// asks others to probe through their connections, which is how members behind
    /// different NATs vouch for each other without dialing.
    pub(super) fn apply_swim(&mut self, output: SwimOutput) {
        for (node, bytes) in output.send {
            if self.connected_to(&node) {
                let packet = SwimPacket::V1 {
                    bytes: bytes.to_vec(),
                };
                self.send_swim(node, packet);
            } else if let Some(via) = self.forwarder_for(&node) {
                let packet = SwimPacket::Pass {
                    bytes: bytes.to_vec(),
                };
                self.send_swim(via, packet);
            }
        }
        if output.rejoined {
            info!("the other members had declared this node down (stalled or cut off); edge seniority starts over");
            self.reach.lapsed(now_ms());
            self.publish_node_info();
        }
        // The view carries the down set, not only the edges: the tunnel actor closes a dead
        // member's tunnels on it, so it is published even when the election stays the same.
        if output.alive_changed {
            self.refresh_election();
            self.publish_view();
        }
    }
}

/// Where a packet `from` handed this node (`me`) to pass on goes: `None` for this node's own
/// detector, else the addressee foca's header names. Refused when the header names another
/// sender than the connection it came on: the member passing it on vouches for the sender.
fn pass_to(me: NodeId, from: NodeId, bytes: &[u8]) -> Result<Option<NodeId>, String> {
    let (sender, to) = Swim::sender_and_addressee(bytes).map_err(|e| e.to_string())?;
    if sender != from {
        return Err(format!(
            "packet to pass on from {} names {} as its sender",
            from.short(),
            sender.short()
        ));
    }
    Ok((to != me).then_some(to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::swim::{SwimId, SwimTiming};
    use hearth_proto::NodeKey;

    /// A real foca packet from `from` to `to` (an announce).
    fn packet(from: NodeId, to: NodeId) -> Vec<u8> {
        let me = SwimId {
            node: from,
            started_ms: 1,
            bump: 0,
        };
        let timing = SwimTiming {
            probe_period: Duration::from_secs(1),
            lease: Duration::from_secs(4),
        };
        let mut swim = Swim::new(me, timing, 7);
        let output = swim.announce(to, 1, Instant::now());
        let (addressee, bytes) = output.send.into_iter().next().expect("an announce");
        assert_eq!(addressee, to);
        bytes.to_vec()
    }

    #[test]
    fn a_packet_to_pass_on_goes_to_the_addressee_its_header_names() {
        let [me, a, b] = [(); 3].map(|_| NodeKey::generate().id());
        assert_eq!(pass_to(me, a, &packet(a, b)), Ok(Some(b)));
        assert_eq!(pass_to(me, a, &packet(a, me)), Ok(None));
    }

    #[test]
    fn a_packet_naming_another_sender_than_its_connection_is_not_passed_on() {
        let [me, a, b] = [(); 3].map(|_| NodeKey::generate().id());
        let refused = pass_to(me, a, &packet(b, me));
        assert!(refused.is_err_and(|why| why.contains("names")));
        assert!(pass_to(me, a, &[0xff, 0x00, 0x13]).is_err());
    }
}
