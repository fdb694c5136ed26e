//! Relay reservations: a node the internet cannot reach listens through the relay of every
//! elected edge, and announces those `/p2p-circuit` addresses in its NodeInfo. A member behind
//! another NAT then dials it through an edge, and DCUtR tries to turn that relayed connection
//! into a direct one by hole punching.

use super::actor::MeshActor;
use super::peer_id::peer_id;
use hearth_proto::election::EdgePreference;
use hearth_proto::reach::Reach;
use hearth_proto::NodeId;
use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};
use tracing::{debug, info};

/// Wait before asking an edge for a reservation again after one failed or ended.
const RETRY: Duration = Duration::from_secs(2);
/// How long a node without any AutoNAT verdict waits before it reserves relays anyway.
const UNDECIDED_GRACE: Duration = Duration::from_secs(10);

/// The reservations this node holds or is asking for.
#[derive(Debug, Default)]
pub(crate) struct Reservations {
    active: BTreeMap<NodeId, ListenerId>,
    retry_at: HashMap<NodeId, Instant>,
}

impl Reservations {
    /// Forgets a reservation whose listener closed (refused, or the connection to the relay
    /// went away); returns whether it was one.
    pub(super) fn listener_closed(&mut self, listener: ListenerId) -> bool {
        let Some(node) = self
            .active
            .iter()
            .find(|(_, id)| **id == listener)
            .map(|(node, _)| *node)
        else {
            return false;
        };
        self.active.remove(&node);
        self.retry_at.insert(node, Instant::now() + RETRY);
        true
    }
}

/// The relay a relayed address goes through: the `/p2p/` just before `/p2p-circuit`.
pub(super) fn relay_of(addr: &Multiaddr) -> Option<PeerId> {
    let mut last_peer = None;
    for protocol in addr.iter() {
        match protocol {
            Protocol::P2p(peer) => last_peer = Some(peer),
            Protocol::P2pCircuit => return last_peer,
            _ => {}
        }
    }
    None
}

impl MeshActor {
    /// Whether this node needs relays: AutoNAT found it unreachable from the internet (or
    /// has said nothing for a while). A node that may well be public does not reserve at
    /// start: relayed connections to it would only get in AutoNAT's way.
    fn needs_relays(&self) -> bool {
        let undecided = self.reach.is_unknown() && self.started.elapsed() < UNDECIDED_GRACE;
        self.settings.edge_pref != EdgePreference::Always
            && !matches!(self.reach.reach(), Reach::Public { .. })
            && !undecided
            && !self.election.is_edge(&self.me)
    }

    /// Holds a reservation on every hub (publicly reachable member or elected edge) this node
    /// is directly connected to, and drops those on nodes that are no longer hubs. Hubs, not
    /// only the elected edges: the hub set changes with announced reachability, not with every
    /// verdict of the failure detector, so a member wrongly suspected for a moment does not
    /// make every home drop and remake its reservation and rewrite its addresses.
    pub(super) fn sync_reservations(&mut self) {
        let wanted: BTreeSet<NodeId> = if self.needs_relays() {
            self.topology
                .hubs()
                .iter()
                .chain(self.election.edges.iter())
                .copied()
                .filter(|e| *e != self.me)
                .collect()
        } else {
            BTreeSet::new()
        };
        let stale: Vec<(NodeId, ListenerId)> = self
            .reservations
            .active
            .iter()
            .filter(|(node, _)| !wanted.contains(node))
            .map(|(node, id)| (*node, *id))
            .collect();
        for (node, listener) in stale {
            info!(relay = %node.short(), "dropping the relay reservation on a node that is no longer public");
            self.swarm.remove_listener(listener);
            self.reservations.active.remove(&node);
        }
        let now = Instant::now();
        for edge in wanted {
            if self.reservations.active.contains_key(&edge)
                || self
                    .reservations
                    .retry_at
                    .get(&edge)
                    .is_some_and(|at| *at > now)
                || !self.directly_connected(&edge)
            {
                continue;
            }
            let Some(address) = self.relay_address(&edge) else {
                continue;
            };
            match self.swarm.listen_on(address.clone()) {
                Ok(listener) => {
                    debug!(%address, "asking an edge for a relay reservation");
                    self.reservations.active.insert(edge, listener);
                }
                Err(e) => {
                    debug!(%address, error = %e, "cannot listen through the relay");
                    self.reservations.retry_at.insert(edge, now + RETRY);
                }
            }
        }
    }

    /// Whether a direct (not relayed) connection to `node` is open.
    pub(super) fn directly_connected(&self, node: &NodeId) -> bool {
        self.peers
            .get(&peer_id(node))
            .is_some_and(|s| s.connections > s.relayed.len())
    }

    /// `<edge address>/p2p/<edge>/p2p-circuit`, over the edge's QUIC address if it has one.
    /// The relay client uses the open connection to the edge whatever its transport, so a
    /// node without UDP reserves over its TCP connection all the same.
    fn relay_address(&self, edge: &NodeId) -> Option<Multiaddr> {
        let info = self.node_info(edge)?;
        let direct: Vec<&String> = info
            .addrs
            .iter()
            .filter(|a| !hearth_proto::addr::is_relayed(a))
            .collect();
        let pick = direct
            .iter()
            .find(|a| hearth_proto::addr::is_direct_quic(a))
            .or(direct.first())?;
        let base: Multiaddr = pick.parse().ok()?;
        Some(
            base.with(Protocol::P2p(peer_id(edge)))
                .with(Protocol::P2pCircuit),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_relay_of_a_circuit_address() {
        let relay = PeerId::random();
        let target = PeerId::random();
        let circuit: Multiaddr =
            format!("/ip4/198.18.0.11/udp/7700/quic-v1/p2p/{relay}/p2p-circuit/p2p/{target}")
                .parse()
                .unwrap();
        assert_eq!(relay_of(&circuit), Some(relay));
        let direct: Multiaddr = format!("/ip4/198.18.0.11/udp/7700/quic-v1/p2p/{target}")
            .parse()
            .unwrap();
        assert_eq!(relay_of(&direct), None);
    }
}
