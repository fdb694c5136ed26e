//! Which members keep a control connection to each other: every member to every hub (the
//! publicly reachable members, which the edges are chosen from), and each member to a few
//! neighbours besides, instead of every member to every other (n² connections, each
//! relayed one a circuit on an edge). Records still reach everyone: authors push to their
//! peers, the hubs pass an author's records on to all of theirs, gossip forwards along the
//! connections and anti-entropy repairs the rest. The failure detector reaches a member it
//! has no connection to through a peer that has one (`mesh::liveness`).
//!
//! Both ends of a pair compute the same answer from the same replicated state, so a pair
//! that one side would not dial is also one the other side does not prune. Pure functions,
//! no I/O.

use hearth_proto::NodeId;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// The members and hubs a connection policy is computed over, with every member's picks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    members: BTreeSet<NodeId>,
    hubs: BTreeSet<NodeId>,
    /// The neighbours each member picked.
    picks: BTreeMap<NodeId, BTreeSet<NodeId>>,
}

/// A pair's place in each other's neighbour ranking: the same number seen from both ends.
fn pair_score(a: &NodeId, b: &NodeId) -> [u8; 8] {
    let (low, high) = if a < b { (a, b) } else { (b, a) };
    let mut hasher = Sha256::new();
    hasher.update(b"hearth-neighbour-v1");
    hasher.update(low.as_bytes());
    hasher.update(high.as_bytes());
    let digest = hasher.finalize();
    let mut score = [0u8; 8];
    score.copy_from_slice(&digest[..8]);
    score
}

impl Topology {
    /// The policy for `members`, of which `hubs` are publicly reachable, each other member
    /// picking `neighbours` more (config `neighbours`).
    pub fn new(members: BTreeSet<NodeId>, hubs: BTreeSet<NodeId>, neighbours: usize) -> Self {
        let hubs: BTreeSet<NodeId> = hubs.intersection(&members).copied().collect();
        let picks = members
            .iter()
            .map(|m| (*m, Self::rank(&members, &hubs, m, neighbours)))
            .collect();
        Self {
            members,
            hubs,
            picks,
        }
    }

    /// Current members, this node included.
    pub fn members(&self) -> &BTreeSet<NodeId> {
        &self.members
    }

    /// Members announcing public reachability (and the elected edges).
    pub fn hubs(&self) -> &BTreeSet<NodeId> {
        &self.hubs
    }

    /// Whether the policy bounds connections at all: with no hub known (a mesh still forming,
    /// or one without a public member) every member connects to every other, as before.
    pub fn bounded(&self) -> bool {
        !self.hubs.is_empty()
    }

    /// The neighbours `node` picks: the non-hub members with the lowest pair scores.
    fn rank(
        members: &BTreeSet<NodeId>,
        hubs: &BTreeSet<NodeId>,
        node: &NodeId,
        neighbours: usize,
    ) -> BTreeSet<NodeId> {
        let mut ranked: Vec<([u8; 8], NodeId)> = members
            .iter()
            .filter(|m| *m != node && !hubs.contains(m))
            .map(|m| (pair_score(node, m), *m))
            .collect();
        ranked.sort();
        ranked
            .into_iter()
            .take(neighbours)
            .map(|(_, m)| m)
            .collect()
    }

    fn picked(&self, by: &NodeId, other: &NodeId) -> bool {
        self.picks.get(by).is_some_and(|p| p.contains(other))
    }

    /// Whether `a` and `b` keep a control connection: a hub is connected to everyone, and
    /// two other members when either picked the other.
    pub fn wanted(&self, a: &NodeId, b: &NodeId) -> bool {
        if a == b {
            return false;
        }
        !self.bounded()
            || self.hubs.contains(a)
            || self.hubs.contains(b)
            || self.picked(a, b)
            || self.picked(b, a)
    }

    /// The members `node` keeps connections to.
    pub fn peers_of(&self, node: &NodeId) -> BTreeSet<NodeId> {
        if !self.bounded() || self.hubs.contains(node) {
            return self
                .members
                .iter()
                .filter(|m| *m != node)
                .copied()
                .collect();
        }
        self.members
            .iter()
            .filter(|m| self.wanted(node, m))
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_proto::NodeKey;

    fn mesh(n: usize, hubs: usize, neighbours: usize) -> (Vec<NodeId>, Topology) {
        let ids: Vec<NodeId> = (0..n)
            .map(|i| NodeKey::from_secret([i as u8 + 1; 32]).id())
            .collect();
        let topology = Topology::new(
            ids.iter().copied().collect(),
            ids.iter().take(hubs).copied().collect(),
            neighbours,
        );
        (ids, topology)
    }

    /// Nodes reachable from `start` over wanted connections, hubs left out.
    fn reachable_without_hubs(ids: &[NodeId], topology: &Topology) -> usize {
        let mut seen = BTreeSet::from([ids[ids.len() - 1]]);
        let mut frontier = vec![ids[ids.len() - 1]];
        while let Some(node) = frontier.pop() {
            for peer in topology.peers_of(&node) {
                if !topology.hubs().contains(&peer) && seen.insert(peer) {
                    frontier.push(peer);
                }
            }
        }
        seen.len()
    }

    #[test]
    fn both_ends_of_a_pair_agree() {
        let (ids, topology) = mesh(50, 3, 4);
        for a in &ids {
            for b in &ids {
                assert_eq!(topology.wanted(a, b), topology.wanted(b, a));
                assert_eq!(topology.wanted(a, b), topology.peers_of(a).contains(b));
            }
        }
    }

    #[test]
    fn a_member_keeps_the_hubs_and_a_bounded_number_of_others() {
        let (ids, topology) = mesh(50, 3, 4);
        let mut most = 0;
        for id in &ids[3..] {
            let peers = topology.peers_of(id);
            assert!(ids[..3].iter().all(|hub| peers.contains(hub)));
            most = most.max(peers.len() - 3);
        }
        // Four picked, plus those that picked it: far below the 46 of a full mesh.
        assert!((4..=16).contains(&most), "{most}");
        for hub in &ids[..3] {
            assert_eq!(topology.peers_of(hub).len(), 49);
        }
    }

    #[test]
    fn the_members_stay_connected_when_every_hub_is_gone() {
        let (ids, topology) = mesh(50, 3, 4);
        assert_eq!(reachable_without_hubs(&ids, &topology), 47);
    }

    #[test]
    fn small_meshes_and_meshes_without_hubs_are_fully_connected() {
        let (ids, topology) = mesh(9, 1, 8);
        for a in &ids {
            assert_eq!(topology.peers_of(a).len(), 8);
        }
        let (ids, topology) = mesh(20, 0, 4);
        assert!(!topology.bounded());
        assert!(ids.iter().all(|a| topology.peers_of(a).len() == 19));
    }
}
