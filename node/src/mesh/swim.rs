//! Liveness: a SWIM failure detector (foca) kept in memory, not in the replicated store.
//!
//! Heartbeats used to be NodeInfo records that every node stored and flushed every second.
//! Now each node probes one member per `edges.heartbeat_ms` over the authenticated control
//! connections (directly, then through `k` others), and suspicion and death spread by
//! piggybacked gossip, so the cost per node stays constant as the mesh grows and nothing is
//! written to disk. [`Swim`] is sans-IO: it takes packets, timer expiries and `now`, and
//! returns packets to send and liveness changes; the mesh actor carries the packets.

use bytes::Bytes;
use foca::{Config, Foca, Identity, NoCustomBroadcast, OwnedNotification, PostcardCodec, Timer};
use hearth_proto::NodeId;
use rand_foca::SeedableRng;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

/// One incarnation of a member as the failure detector knows it: a restarted process
/// (`started_ms`) or one that was declared down and came back (`bump`) is a new identity that
/// wins over the old one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SwimId {
    /// The member.
    pub node: NodeId,
    /// When its `hearthd run` started (Unix ms).
    pub started_ms: u64,
    /// How often it rejoined since.
    pub bump: u16,
}

impl Identity for SwimId {
    type Addr = NodeId;

    fn renew(&self) -> Option<Self> {
        Some(SwimId {
            bump: self.bump.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> NodeId {
        self.node
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        (self.started_ms, self.bump) > (adversary.started_ms, adversary.bump)
    }
}

/// Timing of the failure detector, from `[edges]`.
#[derive(Debug, Clone, Copy)]
pub struct SwimTiming {
    /// One member probed per period (`edges.heartbeat_ms`).
    pub probe_period: Duration,
    /// How long a member may be unheard before it counts as down (`edges.lease_ms`): the
    /// probe that finds it silent plus the suspicion that lets it refute.
    pub lease: Duration,
}

impl SwimTiming {
    fn config(&self) -> Config {
        // Sized for the largest mesh Hearth aims at: updates are retransmitted log(n) times.
        let mut config = Config::new_lan(NonZeroU32::new(64).unwrap_or(NonZeroU32::MIN));
        config.probe_period = self.probe_period;
        config.probe_rtt = self.probe_period * 2 / 5;
        // A probe finds a dead member within about two periods (it waits its turn, then the
        // direct and indirect probes time out); the rest of the lease is suspicion.
        config.suspect_to_down_after = self
            .lease
            .saturating_sub(self.probe_period * 2)
            .max(self.probe_period);
        // The transport's bound on a packet (the protocol's request size limit).
        config.max_packet_size = std::num::NonZeroUsize::new(hearth_proto::wire::MAX_SWIM_PACKET)
            .unwrap_or(config.max_packet_size);
        // A member that was cut off is tried again now and then, so a healed partition
        // rejoins without waiting for a reconnection.
        config.periodic_announce_to_down_members = Some(foca::PeriodicParams {
            frequency: Duration::from_secs(10),
            num_members: std::num::NonZeroUsize::MIN,
        });
        config.remove_down_after = Some(Duration::from_secs(3600));
        // foca's own gossip timer fires every 200 ms whether or not there is news, waking the
        // mesh actor five times a second in an idle mesh; [`Swim`] gossips on the same
        // schedule, only while there is news ([`GOSSIP_EVERY`]).
        config.periodic_gossip = None;
        // Every 30 s (foca's LAN default) each member announced itself to a random one and
        // got a full member list back (up to a whole packet, most often through a hub): the
        // largest packets of an idle mesh. Joins, connections (`liveness::introduce_to`) and
        // the announces to down members above already tell members about each other.
        config.periodic_announce = Some(foca::PeriodicParams {
            frequency: Duration::from_secs(300),
            num_members: std::num::NonZeroUsize::MIN,
        });
        config
    }
}

/// How often news (a member joined, suspected, down) is gossiped to a few members while there
/// is any: foca's LAN default.
const GOSSIP_EVERY: Duration = Duration::from_millis(200);

/// What the actor must do after the detector ran.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SwimOutput {
    /// Packets to carry, each to one member.
    pub send: Vec<(NodeId, Bytes)>,
    /// Whether the set of live (or of down) members changed.
    pub alive_changed: bool,
    /// This node was declared down by the others and rejoined under a new identity: it was
    /// stalled or cut off, so its edge seniority starts over.
    pub rejoined: bool,
}

/// Why a packet was not taken.
#[derive(Debug, thiserror::Error)]
pub enum SwimError {
    /// The packet names another sender than the connection it came on.
    #[error("failure-detector packet from {connection} claims to come from {claimed}")]
    Spoofed {
        /// The authenticated peer.
        connection: String,
        /// The sender in the packet.
        claimed: String,
    },
    /// foca refused it (malformed, too big, from ourselves).
    #[error("failure-detector packet refused: {0}")]
    Refused(#[from] foca::Error),
}

type Detector = Foca<SwimId, PostcardCodec, rand_foca::rngs::StdRng, NoCustomBroadcast>;

/// The failure detector of one node.
pub struct Swim {
    foca: Detector,
    runtime: foca::AccumulatingRuntime<SwimId>,
    timers: BinaryHeap<Reverse<(Instant, u64, TimerSlot)>>,
    timer_seq: u64,
    alive: BTreeSet<NodeId>,
    down: BTreeSet<NodeId>,
    /// Members held suspect now: a suspicion of a live member (refuted later) sets off a
    /// round of gossip through the whole mesh, so each one is logged.
    suspect: BTreeSet<NodeId>,
    /// When news is gossiped next; `None` when there is none.
    gossip_due: Option<Instant>,
}

/// A foca timer in the heap (ordered by deadline and sequence only).
#[derive(Debug)]
struct TimerSlot(Timer<SwimId>);

impl PartialEq for TimerSlot {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for TimerSlot {}
impl PartialOrd for TimerSlot {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for TimerSlot {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl std::fmt::Debug for Swim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Swim")
            .field("alive", &self.alive.len())
            .finish()
    }
}

impl Swim {
    /// A detector for `me`, seeded from `seed` (random in production, fixed in tests).
    pub fn new(me: SwimId, timing: SwimTiming, seed: u64) -> Self {
        let rng = rand_foca::rngs::StdRng::seed_from_u64(seed);
        Swim {
            foca: Foca::new(me, timing.config(), rng, PostcardCodec),
            runtime: foca::AccumulatingRuntime::new(),
            timers: BinaryHeap::new(),
            timer_seq: 0,
            alive: BTreeSet::new(),
            down: BTreeSet::new(),
            suspect: BTreeSet::new(),
            gossip_due: None,
        }
    }

    /// Members the detector holds alive (or suspected: not yet down), this node excluded.
    pub fn alive(&self) -> &BTreeSet<NodeId> {
        &self.alive
    }

    /// Members the detector declared down (heard from before, then unreachable), this node
    /// excluded; unlike "not alive", this excludes members not heard from yet.
    pub fn down(&self) -> &BTreeSet<NodeId> {
        &self.down
    }

    /// The earliest pending timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse((at, _, _))| *at);
        match (timer, self.gossip_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Introduces this node to `node` (a member just connected): foca learns the rest of the
    /// mesh from its answer.
    pub fn announce(&mut self, node: NodeId, started_ms: u64, now: Instant) -> SwimOutput {
        let target = SwimId {
            node,
            started_ms,
            bump: 0,
        };
        if let Err(e) = self.foca.announce(target, &mut self.runtime) {
            tracing::debug!(error = %e, "failure detector: announce");
        }
        self.drain(now)
    }

    /// The sender and the addressee foca's header names, for a member passing a packet on:
    /// it reads the header only, the rest is for the addressee.
    pub fn sender_and_addressee(bytes: &[u8]) -> Result<(NodeId, NodeId), SwimError> {
        let header = foca::Codec::<SwimId>::decode_header(&mut PostcardCodec, bytes)
            .map_err(|e| SwimError::Refused(foca::Error::Decode(Box::new(e))))?;
        Ok((header.src.node, header.dst.node))
    }

    /// Takes a packet that arrived on the authenticated connection of `from`.
    pub fn receive(
        &mut self,
        from: NodeId,
        bytes: &[u8],
        now: Instant,
    ) -> Result<SwimOutput, SwimError> {
        let (sender, _) = Self::sender_and_addressee(bytes)?;
        if sender != from {
            return Err(SwimError::Spoofed {
                connection: from.short(),
                claimed: sender.short(),
            });
        }
        let result = self.foca.handle_data(bytes, &mut self.runtime);
        let output = self.drain(now);
        result.map(|()| output).map_err(SwimError::from)
    }

    /// Fires every timer due at `now`.
    pub fn tick(&mut self, now: Instant) -> SwimOutput {
        let mut output = SwimOutput::default();
        while let Some(Reverse((at, _, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, _, TimerSlot(timer)))) = self.timers.pop() else {
                break;
            };
            if let Err(e) = self.foca.handle_timer(timer, &mut self.runtime) {
                tracing::debug!(error = %e, "failure detector: timer");
            }
            output.merge(self.drain(now));
        }
        if self.gossip_due.is_some_and(|at| at <= now) {
            self.gossip_due = None;
            if let Err(e) = self.foca.gossip(&mut self.runtime) {
                tracing::debug!(error = %e, "failure detector: gossip");
            }
            output.merge(self.drain(now));
        }
        output
    }

    /// Forgets a member that was revoked: it is neither probed nor counted.
    pub fn forget(&mut self, node: &NodeId, now: Instant) -> SwimOutput {
        let ids: Vec<SwimId> = self
            .foca
            .iter_membership_state()
            .filter(|m| m.id().node == *node)
            .map(|m| m.id().clone())
            .collect();
        let down = ids.into_iter().map(foca::Member::down);
        if let Err(e) = self.foca.apply_many(down, false, &mut self.runtime) {
            tracing::debug!(error = %e, "failure detector: forget");
        }
        self.drain(now)
    }

    /// Moves foca's queued timers into the heap and its queued packets into `output`.
    fn take_queued(&mut self, now: Instant, output: &mut SwimOutput) {
        while let Some((after, timer)) = self.runtime.to_schedule() {
            self.timer_seq += 1;
            self.timers
                .push(Reverse((now + after, self.timer_seq, TimerSlot(timer))));
        }
        while let Some((to, bytes)) = self.runtime.to_send() {
            output.send.push((to.node, bytes));
        }
    }

    fn drain(&mut self, now: Instant) -> SwimOutput {
        let mut output = SwimOutput::default();
        self.take_queued(now, &mut output);
        if self.foca.updates_backlog() == 0 {
            self.gossip_due = None;
        } else if self.gossip_due.is_none() {
            self.gossip_due = Some(now + GOSSIP_EVERY);
        }
        while let Some(notification) = self.runtime.to_notify() {
            match notification {
                OwnedNotification::Rejoin(_) => output.rejoined = true,
                OwnedNotification::Defunct => {
                    // Identities renew themselves, so this is not expected; come back anyway.
                    output.rejoined = true;
                    let renewed = self.foca.identity().renew();
                    if let Some(id) = renewed {
                        if let Err(e) = self.foca.change_identity(id, &mut self.runtime) {
                            tracing::debug!(error = %e, "failure detector: rejoin");
                        }
                    }
                }
                _ => {}
            }
        }
        // Sends and timers queued by the rejoin above.
        self.take_queued(now, &mut output);
        // One pass over the members: this runs after every packet.
        let (mut alive, mut suspect, mut down) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for member in self.foca.iter_membership_state() {
            let node = member.id().node;
            match member.state() {
                foca::State::Alive => {
                    alive.insert(node);
                }
                foca::State::Suspect => {
                    alive.insert(node);
                    suspect.insert(node);
                }
                foca::State::Down => {
                    down.insert(node);
                }
            }
        }
        down.retain(|node| !alive.contains(node));
        if suspect != self.suspect {
            for node in suspect.difference(&self.suspect) {
                tracing::info!(peer = %node.short(), "failure detector: member suspected");
            }
            self.suspect = suspect;
        }
        if alive != self.alive || down != self.down {
            for node in down.difference(&self.down) {
                tracing::info!(peer = %node.short(), "failure detector: member declared down");
            }
            for node in alive.difference(&self.alive) {
                tracing::info!(peer = %node.short(), "failure detector: member alive");
            }
            self.alive = alive;
            self.down = down;
            output.alive_changed = true;
        }
        output
    }
}

impl SwimOutput {
    fn merge(&mut self, other: SwimOutput) {
        self.send.extend(other.send);
        self.alive_changed |= other.alive_changed;
        self.rejoined |= other.rejoined;
    }
}

#[cfg(test)]
mod tests;
