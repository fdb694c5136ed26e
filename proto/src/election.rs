//! Edge election: which members face the internet.
//!
//! [`elect`] is a pure function of the current members, their replicated NodeInfo records,
//! the members the failure detector holds alive, and `now`, so every node computes the same
//! edge set from the same records and the same liveness without talking to the others. A
//! member is a candidate when it is alive (the SWIM failure detector has not declared it
//! down), it does not refuse (`edge = "never"`), and it is public (AutoNAT confirmed a direct
//! QUIC address) or vouched for (`edge = "always"`). Candidates are ranked
//! `always` first, then by seniority (public the longest), then by id, and the first
//! `max` are elected.
//!
//! Stability without shared state (see docs/edges.md):
//! - SWIM suspicion: a member that misses a probe is suspected, and declared down only when
//!   it does not refute within the lease;
//! - seniority ranking: a newcomer never displaces a live incumbent;
//! - a settling time: a node enters only after it has been public for [`SETTLE_MS`];
//! - a node that lapses itself (suspended, cut off) restarts its seniority
//!   ([`crate::reach::ReachTracker::lapsed`]), so on return it does not push out its
//!   replacement.

use crate::id::NodeId;
use crate::reach::Reach;
use crate::record::NodeInfo;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::ops::RangeInclusive;

/// Most edges a mesh may elect.
pub const MAX_EDGES: u8 = 16;
/// `edges.max` when nothing says otherwise.
pub const DEFAULT_MAX_EDGES: u8 = 3;
/// Leases a node may be configured with (`edges.lease_ms`: how long the failure detector
/// waits before it declares a silent member down).
pub const LEASE_RANGE_MS: RangeInclusive<u64> = 500..=300_000;
/// How long an `auto` node must have been public before it is elected.
pub const SETTLE_MS: u64 = 2_000;

/// Whether a node offers itself as edge ingress (config `edge`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum EdgePreference {
    /// An edge when AutoNAT confirms it public and the election picks it.
    #[default]
    Auto,
    /// A candidate whatever AutoNAT says: the operator vouches that it is reachable.
    Always,
    /// Never an edge.
    Never,
}

impl fmt::Display for EdgePreference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EdgePreference::Auto => "auto",
            EdgePreference::Always => "always",
            EdgePreference::Never => "never",
        })
    }
}

/// Why a member is not an edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotElected {
    /// No NodeInfo record from it yet.
    NoHeartbeat,
    /// The failure detector does not hold it alive: down, cut off, or not heard from yet.
    Down,
    /// Configured `edge = "never"`.
    Refuses,
    /// `auto`, and AutoNAT did not confirm it public.
    NotPublic {
        /// What it announced.
        reach: Reach,
    },
    /// Public, but not for long enough yet.
    Settling {
        /// Until it may enter.
        remaining_ms: u64,
    },
    /// A candidate, outranked by `max` others.
    NoRoom {
        /// The mesh's limit.
        max: u8,
    },
}

impl fmt::Display for NotElected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotElected::NoHeartbeat => f.write_str("no NodeInfo record received yet"),
            NotElected::Down => f.write_str("not answering probes: down or cut off"),
            NotElected::Refuses => f.write_str("configured edge = \"never\""),
            NotElected::NotPublic { reach } => match reach {
                Reach::Private { reason } => write!(f, "not public: {reason}"),
                Reach::Unknown => f.write_str("not public: no AutoNAT verdict yet"),
                Reach::Public { .. } => f.write_str("public"),
            },
            NotElected::Settling { remaining_ms } => {
                write!(
                    f,
                    "public, elected in {} if it stays so",
                    Millis(*remaining_ms)
                )
            }
            NotElected::NoRoom { max } => {
                write!(f, "a candidate, but {max} more senior edges fill edges.max")
            }
        }
    }
}

/// Milliseconds for people.
struct Millis(u64);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 10_000 {
            write!(f, "{:.1} s", self.0 as f64 / 1000.0)
        } else {
            write!(f, "{} s", self.0 / 1000)
        }
    }
}

/// The outcome for one member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Elected; `rank` 0 is the most senior.
    Edge {
        /// Position in the edge set.
        rank: usize,
    },
    /// Not elected, and why.
    NotEdge(NotElected),
}

/// The edge set and the verdict for every member.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Election {
    /// The limit in force: the smallest `edges.max` a live member announces.
    pub max: u8,
    /// The elected edges, most senior first.
    pub edges: Vec<NodeId>,
    /// Every member's verdict.
    pub verdicts: BTreeMap<NodeId, Verdict>,
}

impl Election {
    /// Whether `node` is elected.
    pub fn is_edge(&self, node: &NodeId) -> bool {
        self.edges.contains(node)
    }

    /// In how many ms time alone may change the result (a candidate's settling time ends);
    /// `None` when only new records or liveness can. Nodes need not rerun the election on a
    /// timer faster than this.
    pub fn changes_in_ms(&self) -> Option<u64> {
        self.verdicts
            .values()
            .filter_map(|v| match v {
                Verdict::NotEdge(NotElected::Settling { remaining_ms }) => Some(*remaining_ms),
                _ => None,
            })
            .min()
    }
}

/// Where a candidate ranks: `always` before `auto`, then seniority, then id.
type RankKey = (bool, u64, NodeId);

/// Elects the edges among `members` from their NodeInfo records and the members held
/// `alive`, at `now_ms`. Records of non-members (revoked nodes included) are ignored; if a
/// member appears twice, its latest record counts. The result does not depend on the order of
/// any input.
pub fn elect<'a>(
    members: impl IntoIterator<Item = NodeId>,
    infos: impl IntoIterator<Item = (NodeId, &'a NodeInfo)>,
    alive: &BTreeSet<NodeId>,
    now_ms: u64,
) -> Election {
    let members: BTreeSet<NodeId> = members.into_iter().collect();
    let mut latest: BTreeMap<NodeId, &NodeInfo> = BTreeMap::new();
    for (node, info) in infos {
        if !members.contains(&node) {
            continue;
        }
        let newer = latest
            .get(&node)
            .is_none_or(|held| (info.heartbeat_ms, info) > (held.heartbeat_ms, *held));
        if newer {
            latest.insert(node, info);
        }
    }

    let mut verdicts = BTreeMap::new();
    let mut candidates: Vec<RankKey> = Vec::new();
    let mut max = MAX_EDGES;
    let mut any_alive = false;
    for node in &members {
        let Some(info) = latest.get(node) else {
            verdicts.insert(*node, Verdict::NotEdge(NotElected::NoHeartbeat));
            continue;
        };
        let is_alive = alive.contains(node);
        match judge(info, is_alive, now_ms) {
            Err(why) => {
                verdicts.insert(*node, Verdict::NotEdge(why));
            }
            Ok(seniority) => {
                candidates.push((info.edge_pref != EdgePreference::Always, seniority, *node));
            }
        }
        if is_alive {
            any_alive = true;
            max = max.min(info.edges_max.clamp(1, MAX_EDGES));
        }
    }
    if !any_alive {
        max = DEFAULT_MAX_EDGES;
    }
    candidates.sort();
    let mut edges = Vec::new();
    for (rank, (_, _, node)) in candidates.into_iter().enumerate() {
        if rank < usize::from(max) {
            edges.push(node);
            verdicts.insert(node, Verdict::Edge { rank });
        } else {
            verdicts.insert(node, Verdict::NotEdge(NotElected::NoRoom { max }));
        }
    }
    Election {
        max,
        edges,
        verdicts,
    }
}

/// A candidate's seniority (its public-since time; 0 for `always`), or why it is none.
fn judge(info: &NodeInfo, alive: bool, now_ms: u64) -> Result<u64, NotElected> {
    if info.edge_pref == EdgePreference::Never {
        return Err(NotElected::Refuses);
    }
    if !alive {
        return Err(NotElected::Down);
    }
    if info.edge_pref == EdgePreference::Always {
        return Ok(0);
    }
    match &info.reach {
        Reach::Public { since_ms, .. } => {
            let public_for = now_ms.saturating_sub(*since_ms);
            if public_for < SETTLE_MS {
                return Err(NotElected::Settling {
                    remaining_ms: SETTLE_MS - public_for,
                });
            }
            Ok(*since_ms)
        }
        other => Err(NotElected::NotPublic {
            reach: other.clone(),
        }),
    }
}

/// The IPs visitors should use for an edge: its confirmed public addresses, else (an
/// `always` edge AutoNAT did not confirm) the internet IPs it announces, else any IP it
/// announces (a loopback test mesh).
pub fn edge_ips(info: &NodeInfo) -> Vec<IpAddr> {
    let ips = |addrs: &[String]| -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = addrs
            .iter()
            .filter(|a| !crate::addr::is_relayed(a))
            .filter_map(|a| crate::addr::ip_of(a))
            .collect();
        out.sort();
        out.dedup();
        out
    };
    if let Reach::Public { addrs, .. } = &info.reach {
        let confirmed = ips(addrs);
        if !confirmed.is_empty() {
            return confirmed;
        }
    }
    let announced = ips(&info.addrs);
    let internet: Vec<IpAddr> = announced
        .iter()
        .copied()
        .filter(crate::addr::is_internet_ip)
        .collect();
    if internet.is_empty() {
        announced
    } else {
        internet
    }
}

#[cfg(test)]
mod tests;
