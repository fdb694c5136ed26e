//! Whether the internet can reach a node, as AutoNAT found it.
//!
//! A node learns candidate addresses from what its peers observe (libp2p identify) and asks a
//! peer to dial each one back (AutoNAT v2). [`ReachTracker`] turns those results into the
//! [`Reach`] the node announces in its NodeInfo. Only a confirmed, direct QUIC address on an
//! internet IP makes a node public: members reach edges over QUIC, so a node that takes only
//! TCP (UDP blocked) or sits behind NAT cannot serve as one.

use crate::addr::{ip_of, is_direct_quic, is_internet_ip, is_relayed};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Longest reason kept for a private node, so a NodeInfo stays small.
const MAX_REASON_LEN: usize = 200;

/// What a node announces about its reachability.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub enum Reach {
    /// No AutoNAT verdict yet.
    #[default]
    Unknown,
    /// AutoNAT confirmed these addresses from outside.
    Public {
        /// Since when, in the node's Unix milliseconds, it has been public without a break:
        /// older means more senior in the election.
        since_ms: u64,
        /// The confirmed direct QUIC addresses on internet IPs.
        addrs: Vec<String>,
    },
    /// No address could be confirmed, with the first reason seen (see `ReachTracker::failed`).
    Private {
        /// Why, for people reading `hearthctl edges`.
        reason: String,
    },
}

impl fmt::Display for Reach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reach::Unknown => f.write_str("unknown"),
            Reach::Public { addrs, .. } => write!(f, "public ({})", addrs.join(", ")),
            Reach::Private { reason } => write!(f, "private: {reason}"),
        }
    }
}

/// `addr` without a trailing `/p2p/<id>`: the same address of this node, as AutoNAT may
/// report it.
fn without_peer(addr: &str) -> &str {
    match addr.rfind("/p2p/") {
        Some(at) if !addr[at..].contains("p2p-circuit") => &addr[..at],
        _ => addr,
    }
}

/// Turns dial-back results (AutoNAT, and members asked directly) into a [`Reach`]. Pure:
/// every method that depends on time takes `now_ms`.
#[derive(Debug, Clone, Default)]
pub struct ReachTracker {
    /// Confirmed addresses that qualify an edge, with when each was confirmed.
    confirmed: BTreeMap<String, u64>,
    /// Confirmed addresses that do not qualify (TCP, private IPs), for the reason text.
    confirmed_other: BTreeMap<String, u64>,
    /// Addresses whose dial-back failed, with the error.
    failed: BTreeMap<String, String>,
    /// Start of the current unbroken public period.
    public_since: Option<u64>,
}

impl ReachTracker {
    /// A peer dialled `addr` back: the internet reaches this node there. Relayed addresses
    /// (which the relay client reports as confirmed once it holds a reservation) say
    /// nothing about this node's own reachability and are ignored.
    pub fn confirmed(&mut self, addr: &str, now_ms: u64) {
        if is_relayed(addr) {
            return;
        }
        let addr = without_peer(addr);
        self.failed.remove(addr);
        let qualifies = is_direct_quic(addr) && ip_of(addr).is_some_and(|ip| is_internet_ip(&ip));
        if qualifies {
            self.confirmed.entry(addr.to_string()).or_insert(now_ms);
            self.public_since.get_or_insert(now_ms);
        } else {
            self.confirmed_other
                .entry(addr.to_string())
                .or_insert(now_ms);
        }
    }

    /// A peer could not dial `addr` back. Addresses without an IP (the `/p2p/` a peer
    /// observes on a relayed connection) are not this node's and are ignored.
    pub fn failed(&mut self, addr: &str, error: &str) {
        let addr = without_peer(addr);
        if ip_of(addr).is_none() || is_relayed(addr) || self.confirmed.contains_key(addr) {
            // AutoNAT tests each address once; a later failure report for a confirmed address
            // is a stale answer, not a change.
            return;
        }
        // The first reason stands: the address is asked about again and again while it stays
        // unreachable, and a new wording of the same verdict ("busy", then "timed out") would
        // otherwise announce a new NodeInfo to every member each time.
        self.failed.entry(addr.to_string()).or_insert_with(|| {
            let mut reason = error.to_string();
            reason.truncate(MAX_REASON_LEN);
            reason
        });
    }

    /// The address is no longer this node's (its listener or mapping went away).
    pub fn expired(&mut self, addr: &str) {
        let addr = without_peer(addr);
        self.confirmed.remove(addr);
        self.confirmed_other.remove(addr);
        self.failed.remove(addr);
        if self.confirmed.is_empty() {
            self.public_since = None;
        }
    }

    /// This node could not heartbeat for longer than its lease (suspended, stalled, cut off):
    /// others have dropped it, so its seniority starts again and it re-enters only after the
    /// settling time, instead of at once displacing whoever replaced it.
    pub fn lapsed(&mut self, now_ms: u64) {
        if self.public_since.is_some() {
            self.public_since = Some(now_ms);
        }
    }

    /// Whether AutoNAT has said anything yet.
    pub fn is_unknown(&self) -> bool {
        self.reach() == Reach::Unknown
    }

    /// What to announce now.
    pub fn reach(&self) -> Reach {
        if let Some(since_ms) = self.public_since {
            return Reach::Public {
                since_ms,
                addrs: self.confirmed.keys().cloned().collect(),
            };
        }
        if let Some((addr, error)) = self.failed.iter().next() {
            let mut reason = format!("not reachable at {addr}: {error}");
            reason.truncate(MAX_REASON_LEN);
            return Reach::Private { reason };
        }
        if let Some(addr) = self.confirmed_other.keys().next() {
            return Reach::Private {
                reason: format!(
                    "only {addr} was confirmed, and an edge needs a direct QUIC (UDP) address on a public IP"
                ),
            };
        }
        Reach::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUIC: &str = "/ip4/198.18.0.11/udp/7700/quic-v1";

    #[test]
    fn a_confirmed_public_quic_address_makes_a_node_public_since_then() {
        let mut tracker = ReachTracker::default();
        assert_eq!(tracker.reach(), Reach::Unknown);
        tracker.confirmed(QUIC, 1_000);
        tracker.confirmed("/ip4/198.18.0.11/udp/7700/quic-v1/p2p/x/p2p-circuit", 1_500);
        tracker.confirmed(&format!("{QUIC}/p2p/12D3KooWA"), 2_000);
        assert_eq!(
            tracker.reach(),
            Reach::Public {
                since_ms: 1_000,
                addrs: vec![QUIC.into()]
            }
        );
        tracker.failed(QUIC, "late answer");
        assert!(matches!(tracker.reach(), Reach::Public { .. }));
        tracker.lapsed(9_000);
        assert!(matches!(
            tracker.reach(),
            Reach::Public {
                since_ms: 9_000,
                ..
            }
        ));
        tracker.expired(QUIC);
        // A relayed address, reported by the relay client, says nothing about this node.
        assert_eq!(tracker.reach(), Reach::Unknown);
    }

    #[test]
    fn behind_nat_or_without_udp_a_node_is_private_and_says_why() {
        let mut tracker = ReachTracker::default();
        tracker.failed("/ip4/198.18.0.101/udp/40000/quic-v1", "dial error");
        let Reach::Private { reason } = tracker.reach() else {
            panic!("{:?}", tracker.reach());
        };
        assert_eq!(
            reason,
            "not reachable at /ip4/198.18.0.101/udp/40000/quic-v1: dial error"
        );

        // Asked again, the same address fails in other words: nothing new to announce.
        let before = tracker.reach();
        tracker.failed("/ip4/198.18.0.101/udp/40000/quic-v1", "handshake timed out");
        assert_eq!(tracker.reach(), before);

        let mut relayed = ReachTracker::default();
        relayed.failed("/p2p/12D3KooWA", "server failed to establish a connection");
        assert_eq!(relayed.reach(), Reach::Unknown);

        let mut tcp_only = ReachTracker::default();
        tcp_only.confirmed("/ip4/198.18.0.104/tcp/7700", 1);
        let Reach::Private { reason } = tcp_only.reach() else {
            panic!("{:?}", tcp_only.reach());
        };
        assert!(reason.contains("QUIC"), "{reason}");

        let mut loopback = ReachTracker::default();
        loopback.confirmed("/ip4/127.0.0.1/udp/7700/quic-v1", 1);
        assert!(matches!(loopback.reach(), Reach::Private { .. }));
    }
}
