//! The failure detector on a simulated network with simulated time: deterministic, no
//! sockets, no sleeps.

use super::*;
use hearth_proto::NodeKey;
use std::collections::{BTreeMap, VecDeque};

const PERIOD: Duration = Duration::from_millis(1000);
const LEASE: Duration = Duration::from_millis(4000);
/// One-way latency of the simulated links.
const LATENCY: Duration = Duration::from_millis(20);

/// N detectors, a packet queue with latency, links that can be cut, nodes that can be killed.
struct Net {
    ids: Vec<NodeId>,
    nodes: BTreeMap<NodeId, Swim>,
    in_flight: VecDeque<(Instant, NodeId, NodeId, Bytes)>,
    cut: BTreeSet<(NodeId, NodeId)>,
    dead: BTreeSet<NodeId>,
    now: Instant,
    rejoined: BTreeSet<NodeId>,
    packets: usize,
    /// Timer wake-ups: how often some node's deadline came due.
    wakes: usize,
    /// When set, only the pairs it wants are connected, and a packet between two others goes
    /// through a member connected to both (a hub first), as the mesh actor forwards it.
    topology: Option<crate::mesh::topology::Topology>,
}

impl Net {
    fn new(n: usize) -> Self {
        Self::with_ids((0..n).map(|_| NodeKey::generate().id()).collect())
    }

    fn with_ids(ids: Vec<NodeId>) -> Self {
        let timing = SwimTiming {
            probe_period: PERIOD,
            lease: LEASE,
        };
        let nodes = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let me = SwimId {
                    node: *id,
                    started_ms: 1,
                    bump: 0,
                };
                (*id, Swim::new(me, timing, i as u64))
            })
            .collect();
        Net {
            ids,
            nodes,
            in_flight: VecDeque::new(),
            cut: BTreeSet::new(),
            dead: BTreeSet::new(),
            now: Instant::now(),
            rejoined: BTreeSet::new(),
            packets: 0,
            wakes: 0,
            topology: None,
        }
    }

    /// The member that carries a packet from `from` to `to`: none needed when they are
    /// connected, else one connected to both (a hub first), else the packet is lost.
    fn route(&self, from: NodeId, to: NodeId) -> Option<(Duration, Option<NodeId>)> {
        let Some(topology) = &self.topology else {
            return Some((LATENCY, None));
        };
        if topology.wanted(&from, &to) {
            return Some((LATENCY, None));
        }
        let mut via: Vec<NodeId> = topology
            .peers_of(&from)
            .into_iter()
            .filter(|p| topology.wanted(p, &to))
            .collect();
        via.sort_by_key(|p| !topology.hubs().contains(p));
        via.first().map(|f| (LATENCY * 2, Some(*f)))
    }

    fn take(&mut self, from: NodeId, output: SwimOutput) {
        if output.rejoined {
            self.rejoined.insert(from);
        }
        for (to, bytes) in output.send {
            self.packets += 1;
            let Some((latency, via)) = self.route(from, to) else {
                continue;
            };
            // A forwarder that is down loses the packet.
            if via.is_some_and(|v| self.dead.contains(&v)) {
                continue;
            }
            self.in_flight
                .push_back((self.now + latency, from, to, bytes));
        }
    }

    /// Every node announces itself to node 0, as members do when they connect to an edge.
    fn join_all(&mut self) {
        let hub = self.ids[0];
        for id in self.ids.clone().into_iter().skip(1) {
            let now = self.now;
            let output = self.nodes.get_mut(&id).unwrap().announce(hub, 1, now);
            self.take(id, output);
        }
    }

    /// Advances simulated time by `span` in 10 ms steps.
    fn run(&mut self, span: Duration) {
        let end = self.now + span;
        while self.now < end {
            self.now += Duration::from_millis(10);
            let now = self.now;
            while self.in_flight.front().is_some_and(|(at, ..)| *at <= now) {
                let Some((_, from, to, bytes)) = self.in_flight.pop_front() else {
                    break;
                };
                if self.dead.contains(&to)
                    || self.dead.contains(&from)
                    || self.cut.contains(&(from, to))
                {
                    continue;
                }
                let output = self.nodes.get_mut(&to).unwrap().receive(from, &bytes, now);
                if let Ok(output) = output {
                    self.take(to, output);
                }
            }
            for id in self.ids.clone() {
                if self.dead.contains(&id) {
                    continue;
                }
                if self.nodes[&id].next_deadline().is_some_and(|at| at <= now) {
                    self.wakes += 1;
                }
                let output = self.nodes.get_mut(&id).unwrap().tick(now);
                self.take(id, output);
            }
        }
    }

    fn alive_at(&self, id: NodeId) -> &BTreeSet<NodeId> {
        self.nodes[&id].alive()
    }

    fn others(&self, id: NodeId) -> BTreeSet<NodeId> {
        self.ids
            .iter()
            .copied()
            .filter(|o| *o != id && !self.dead.contains(o))
            .collect()
    }

    fn partition(&mut self, left: &[NodeId], right: &[NodeId]) {
        for a in left {
            for b in right {
                self.cut.insert((*a, *b));
                self.cut.insert((*b, *a));
            }
        }
    }
}

#[test]
fn every_node_learns_every_other_through_one_hub() {
    let mut net = Net::new(10);
    net.join_all();
    net.run(Duration::from_secs(5));
    for id in net.ids.clone() {
        assert_eq!(net.alive_at(id), &net.others(id), "view of {}", id.short());
    }
}

#[test]
fn a_dead_member_is_dropped_by_everyone_within_the_lease_and_a_half() {
    let mut net = Net::new(8);
    net.join_all();
    net.run(Duration::from_secs(5));
    let victim = net.ids[3];
    net.dead.insert(victim);
    net.run(LEASE + LEASE / 2);
    for id in net.others(victim) {
        assert!(
            !net.alive_at(id).contains(&victim),
            "{} still holds the dead member alive",
            id.short()
        );
        assert!(net.nodes[&id].down().contains(&victim));
        assert_eq!(net.alive_at(id), &net.others(id));
    }
}

#[test]
fn a_member_only_some_can_reach_stays_alive_through_indirect_probes() {
    let mut net = Net::new(6);
    net.join_all();
    net.run(Duration::from_secs(5));
    // Two homes behind NAT that never reach each other directly: the others relay probes.
    let (a, b) = (net.ids[4], net.ids[5]);
    net.partition(&[a], &[b]);
    net.run(Duration::from_secs(20));
    assert!(net.alive_at(a).contains(&b));
    assert!(net.alive_at(b).contains(&a));
    assert!(net.rejoined.is_empty(), "nobody was declared down");
}

#[test]
fn after_a_partition_heals_the_views_are_whole_again() {
    let mut net = Net::new(8);
    net.join_all();
    net.run(Duration::from_secs(5));
    let (left, right) = net.ids.split_at(4);
    let (left, right) = (left.to_vec(), right.to_vec());
    net.partition(&left, &right);
    net.run(Duration::from_secs(15));
    for id in &left {
        assert!(net.alive_at(*id).iter().all(|o| left.contains(o)));
    }
    net.cut.clear();
    net.run(Duration::from_secs(30));
    for id in net.ids.clone() {
        assert_eq!(net.alive_at(id), &net.others(id), "view of {}", id.short());
    }
}

#[test]
fn a_stalled_node_rejoins_and_is_told_so() {
    let mut net = Net::new(5);
    net.join_all();
    net.run(Duration::from_secs(5));
    let stalled = net.ids[2];
    net.dead.insert(stalled);
    net.run(LEASE * 2);
    assert!(net
        .others(stalled)
        .iter()
        .all(|o| !net.alive_at(*o).contains(&stalled)));
    net.dead.remove(&stalled);
    net.run(Duration::from_secs(15));
    assert!(
        net.rejoined.contains(&stalled),
        "the stalled node learned it was down"
    );
    for id in net.ids.clone() {
        assert_eq!(net.alive_at(id), &net.others(id), "view of {}", id.short());
    }
}

#[test]
fn idle_traffic_per_node_does_not_grow_with_the_mesh() {
    let per_node_per_sec = |n: usize| {
        let mut net = Net::new(n);
        net.join_all();
        net.run(Duration::from_secs(20));
        net.packets = 0;
        net.run(Duration::from_secs(20));
        net.packets as f64 / n as f64 / 20.0
    };
    let small = per_node_per_sec(5);
    let large = per_node_per_sec(40);
    // A probe and its ack per period, plus gossip that dies out when nothing changes.
    assert!(
        large < small * 2.0,
        "5 nodes: {small:.1}/s, 40 nodes: {large:.1}/s"
    );
}

#[test]
fn an_idle_detector_wakes_only_to_probe() {
    let mut net = Net::new(10);
    net.join_all();
    net.run(Duration::from_secs(20));
    assert!(net
        .ids
        .iter()
        .all(|id| net.alive_at(*id) == &net.others(*id)));
    net.wakes = 0;
    net.run(Duration::from_secs(20));
    let per_node_per_period = net.wakes as f64 / 10.0 / 20.0;
    // The probe, the probe's round trip deadline, the odd suspicion timer; foca's own gossip
    // timer (every 200 ms, news or not) made it about 8.
    assert!(
        per_node_per_period <= 3.0,
        "{per_node_per_period:.1} wake-ups per node per period"
    );
}

#[test]
fn a_packet_claiming_another_sender_is_refused() {
    let mut net = Net::new(3);
    let (a, b, c) = (net.ids[0], net.ids[1], net.ids[2]);
    let now = net.now;
    let output = net.nodes.get_mut(&b).unwrap().announce(a, 1, now);
    let (_, bytes) = output.send.into_iter().next().unwrap();
    // The packet from b arrives on c's connection.
    let err = net
        .nodes
        .get_mut(&a)
        .unwrap()
        .receive(c, &bytes, now)
        .unwrap_err();
    assert!(matches!(err, SwimError::Spoofed { .. }), "{err}");
    assert!(net
        .nodes
        .get_mut(&a)
        .unwrap()
        .receive(a, b"\x01", now)
        .is_err());
}

/// 40 members, 3 of them hubs, each other member connected to the hubs and its 4
/// neighbours (and those that picked it) instead of to all 39: packets between members
/// without a connection go through a hub.
fn bounded_net() -> Net {
    let ids: Vec<NodeId> = (0..40u8)
        .map(|i| NodeKey::from_secret([i + 1; 32]).id())
        .collect();
    let mut net = Net::with_ids(ids.clone());
    net.topology = Some(crate::mesh::topology::Topology::new(
        ids.iter().copied().collect(),
        ids.iter().take(3).copied().collect(),
        4,
    ));
    net
}

#[test]
fn with_bounded_connections_nobody_is_suspected_and_the_dead_are_dropped() {
    let mut net = bounded_net();
    net.join_all();
    net.run(Duration::from_secs(60));
    for id in net.ids.clone() {
        assert_eq!(net.alive_at(id), &net.others(id), "view of {}", id.short());
    }
    assert!(net.rejoined.is_empty(), "a live member was declared down");
    // A home dies: everyone drops it, though most reached it only through a hub.
    let victim = net.ids[20];
    net.dead.insert(victim);
    net.run(LEASE + LEASE / 2);
    for id in net.others(victim) {
        assert!(!net.alive_at(id).contains(&victim), "{}", id.short());
        assert_eq!(net.alive_at(id), &net.others(id));
    }
    // One hub dies: the others carry the packets, and nobody else is suspected.
    net.dead.insert(net.ids[0]);
    net.run(Duration::from_secs(30));
    for id in net.others(victim) {
        assert_eq!(net.alive_at(id), &net.others(id), "view of {}", id.short());
    }
    assert!(net.rejoined.is_empty(), "a live member was declared down");
}
