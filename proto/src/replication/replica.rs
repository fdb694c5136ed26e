//! The replica: one node's replication decisions as a state machine. It takes an [`Event`]
//! and the time, and returns [`Action`]s; the node's libp2p actor delivers the events and
//! carries out the actions, and simulations do the same with a simulated network.

use super::records::{self, Applied, ApplyError, RecordMap};
use crate::membership::Rejection;
use crate::merge::digest;
use crate::wire::{SyncRequestV1, SyncResponseV1, MAX_RECORDS_PER_MESSAGE};
use crate::{Body, Hlc, NodeId, NodeKey, Record, RecordVersion};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};

/// The replica's tunables, from the node's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// Records dated further ahead of the local clock than this are refused
    /// (`max_clock_ahead`).
    pub max_clock_ahead_ms: u64,
    /// Route tombstones older than this are purged (`tombstone_ttl_secs`).
    pub tombstone_ttl_ms: u64,
}

/// Something that happened to the replica. Every event from another node comes from a
/// current member: the shell answers anyone else itself.
#[derive(Debug, Clone)]
pub enum Event {
    /// A member connected: both sides exchange what they hold.
    Connected(NodeId),
    /// Records a member pushed; acknowledged ([`SyncResponseV1::Ack`]) once durable.
    Records {
        /// The member the records came from (not necessarily their author).
        from: NodeId,
        /// The records, each validated on its own.
        records: Vec<Record>,
    },
    /// A member's anti-entropy summary.
    Summary {
        /// The member.
        from: NodeId,
        /// Its digest.
        digest: [u8; 32],
        /// Its versions, or none for a digest-only round.
        versions: Vec<RecordVersion>,
    },
    /// A member's answer to a request of this replica.
    Answer {
        /// The member.
        from: NodeId,
        /// What it answered.
        response: SyncResponseV1,
    },
    /// This node's own records written by [`Replica::write`] are durable now: spread them.
    Durable(Vec<Record>),
    /// The anti-entropy timer fired.
    Tick,
}

/// What the replica wants done.
#[derive(Debug)]
pub enum Action<E> {
    /// Send a request to a member.
    Send {
        /// The member.
        to: NodeId,
        /// The request.
        request: SyncRequestV1,
    },
    /// Answer the request of the event being handled. An [`SyncResponseV1::Ack`] promises
    /// durability: the shell sends it only once the records stored so far are on disk.
    Reply(SyncResponseV1),
    /// Records newly stored here (the shell refreshes what depends on them, and makes them
    /// durable). `from` is the member they came from.
    Stored {
        /// The records.
        records: Vec<Record>,
        /// Their source.
        from: NodeId,
    },
    /// A record was refused; never stored.
    Refused(Rejection),
    /// Expired tombstones were deleted (the shell makes that durable).
    Purged(usize),
    /// The store failed; nothing of the event was stored.
    StoreFailed(E),
}

/// One node's replica of the mesh state.
#[derive(Debug)]
pub struct Replica<S> {
    store: S,
    key: NodeKey,
    me: NodeId,
    clock: Hlc,
    config: ReplicaConfig,
    rng: StdRng,
    /// The mesh's hubs (`mesh::topology`), this node among them or not.
    hubs: BTreeSet<NodeId>,
}

impl<S: RecordMap> Replica<S> {
    /// A replica over `store`, writing as `key`; its clock starts after every stored record.
    /// `seed` drives its only randomness (the anti-entropy partner).
    pub fn new(store: S, key: NodeKey, config: ReplicaConfig, seed: u64) -> Result<Self, S::Error> {
        let clock = records::max_hlc(&store)?;
        Ok(Self {
            store,
            me: key.id(),
            key,
            clock,
            config,
            rng: StdRng::seed_from_u64(seed),
            hubs: BTreeSet::new(),
        })
    }

    /// The mesh's hubs (`mesh::topology`: members every member keeps a connection to),
    /// which decide how records spread; see [`Replica::spread`].
    pub fn set_hubs(&mut self, hubs: BTreeSet<NodeId>) {
        self.hubs = hubs;
    }

    /// The store, for reads.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Gives the store back (a node stopping).
    pub fn into_store(self) -> S {
        self.store
    }

    /// The replica's clock: after every record it wrote or stored.
    pub fn clock(&self) -> Hlc {
        self.clock
    }

    /// Signs and stores a record of this node. Once the shell made it durable it hands it
    /// back as [`Event::Durable`], which spreads it.
    pub fn write(
        &mut self,
        now_ms: u64,
        body: &Body,
    ) -> Result<(Record, Applied), ApplyError<S::Error>> {
        self.clock = self.clock.tick(now_ms);
        let mesh = self
            .store
            .mesh()
            .map_err(ApplyError::Store)?
            .ok_or(ApplyError::Rejected(Rejection::GenesisMismatch))?;
        let record = Record::sign(&self.key, mesh, body, self.clock);
        let applied = records::apply(&mut self.store, &record)?;
        Ok((record, applied))
    }

    /// Handles one event at `now_ms`, `peers` being the members this node is connected to.
    pub fn handle(&mut self, now_ms: u64, peers: &[NodeId], event: Event) -> Vec<Action<S::Error>> {
        let mut actions = Vec::new();
        match event {
            Event::Connected(peer) => {
                if let Some(request) = self.summary(true, &mut actions) {
                    actions.push(Action::Send { to: peer, request });
                }
            }
            Event::Records { from, records } => {
                let (stored, rejected) = self.ingest(now_ms, peers, from, records, &mut actions);
                actions.push(Action::Reply(SyncResponseV1::Ack { stored, rejected }));
            }
            Event::Summary {
                digest: theirs,
                versions,
                ..
            } => {
                let reply = match records::store_digest(&self.store) {
                    Err(e) => {
                        actions.push(Action::StoreFailed(e));
                        return actions;
                    }
                    Ok(ours) if ours == theirs => SyncResponseV1::InSync,
                    Ok(_) if versions.is_empty() => SyncResponseV1::Differs,
                    Ok(_) => match self.delta_for(versions) {
                        Ok(delta) => delta,
                        Err(e) => {
                            actions.push(Action::StoreFailed(e));
                            return actions;
                        }
                    },
                };
                actions.push(Action::Reply(reply));
            }
            Event::Answer { from, response } => {
                self.answered(now_ms, peers, from, response, &mut actions)
            }
            Event::Durable(records) => self.spread(&records, None, peers, &mut actions),
            Event::Tick => self.tick(now_ms, peers, &mut actions),
        }
        actions
    }

    /// Stores what verifies and is within the clock bound; returns (stored, refused) counts.
    fn ingest(
        &mut self,
        now_ms: u64,
        peers: &[NodeId],
        from: NodeId,
        records: Vec<Record>,
        actions: &mut Vec<Action<S::Error>>,
    ) -> (u32, u32) {
        let bound = self.config.max_clock_ahead_ms;
        let (records, ahead): (Vec<Record>, Vec<Record>) = records
            .into_iter()
            .partition(|r| r.hlc.ahead_of(now_ms, bound).is_none());
        let (stored, mut rejected) = match records::apply_batch(&mut self.store, records) {
            Ok(outcome) => outcome,
            Err(e) => {
                actions.push(Action::StoreFailed(e));
                return (0, 0);
            }
        };
        rejected.extend(ahead.iter().map(|r| Rejection::ClockAhead {
            author: r.author,
            by_ms: r.hlc.millis.saturating_sub(now_ms),
        }));
        // The clock observes only what verified and was stored.
        for record in &stored {
            self.clock = self.clock.observe(record.hlc);
        }
        let counts = (stored.len() as u32, rejected.len() as u32);
        actions.extend(rejected.into_iter().map(Action::Refused));
        if !stored.is_empty() {
            self.spread(&stored, Some(from), peers, actions);
            actions.push(Action::Stored {
                records: stored,
                from,
            });
        }
        counts
    }

    /// Pushes newly stored records on:
    /// - this node's own (`from` is `None`): to every connected member;
    /// - on a hub, every record, whoever it came from: to every other connected member. A
    ///   hub is connected to every member, so an author's push reaches everyone in two hops,
    ///   and what a hub learns through anti-entropy (a healed partition, a lost push) reaches
    ///   everyone at once instead of one anti-entropy round at a time;
    /// - elsewhere, a record that came from its author: to the connected hubs, in case the
    ///   author reaches none, or, when no hub is connected (a mesh without public members, or
    ///   hubs down), to every other connected member, so it still spreads two hops.
    ///
    /// Duplicates cost one stale check, and anti-entropy repairs anything a lost push missed.
    /// Records are not flooded further; docs/replication.md says why gossipsub went.
    fn spread(
        &mut self,
        stored: &[Record],
        from: Option<NodeId>,
        peers: &[NodeId],
        actions: &mut Vec<Action<S::Error>>,
    ) {
        let hub = self.hubs.contains(&self.me);
        let passed_on: Vec<&Record> = stored
            .iter()
            .filter(|r| hub || from.is_none_or(|source| source == r.author))
            .collect();
        if passed_on.is_empty() {
            return;
        }
        let others = peers.iter().filter(|p| Some(**p) != from && **p != self.me);
        let hubs_only = from.is_some() && !hub && peers.iter().any(|p| self.hubs.contains(p));
        let targets: Vec<NodeId> = if hubs_only {
            others.filter(|p| self.hubs.contains(p)).copied().collect()
        } else {
            others.copied().collect()
        };
        for peer in &targets {
            for chunk in passed_on.chunks(MAX_RECORDS_PER_MESSAGE) {
                actions.push(Action::Send {
                    to: *peer,
                    request: SyncRequestV1::Push {
                        records: chunk.iter().map(|r| (*r).clone()).collect(),
                    },
                });
            }
        }
    }

    fn answered(
        &mut self,
        now_ms: u64,
        peers: &[NodeId],
        from: NodeId,
        response: SyncResponseV1,
        actions: &mut Vec<Action<S::Error>>,
    ) {
        match response {
            SyncResponseV1::Differs => {
                if let Some(request) = self.summary(true, actions) {
                    actions.push(Action::Send { to: from, request });
                }
            }
            SyncResponseV1::Delta { records, want } => {
                self.ingest(now_ms, peers, from, records, actions);
                let mut wanted = Vec::new();
                for id in &want {
                    match self.store.get(id) {
                        Ok(Some(record)) => wanted.push(record),
                        Ok(None) => {}
                        Err(e) => {
                            actions.push(Action::StoreFailed(e));
                            return;
                        }
                    }
                }
                if !wanted.is_empty() {
                    actions.push(Action::Send {
                        to: from,
                        request: SyncRequestV1::Push { records: wanted },
                    });
                }
            }
            SyncResponseV1::Ack { .. }
            | SyncResponseV1::InSync
            | SyncResponseV1::NotAMember
            | SyncResponseV1::DialedBack { .. } => {}
        }
    }

    /// An anti-entropy round: expired tombstones go, and a random member gets the digest
    /// alone (an idle mesh is in sync, and 32 bytes say so).
    fn tick(&mut self, now_ms: u64, peers: &[NodeId], actions: &mut Vec<Action<S::Error>>) {
        match records::purge_tombstones(&mut self.store, now_ms, self.config.tombstone_ttl_ms) {
            Ok(0) => {}
            Ok(n) => actions.push(Action::Purged(n)),
            Err(e) => actions.push(Action::StoreFailed(e)),
        }
        if peers.is_empty() {
            return;
        }
        let peer = peers[self.rng.gen_range(0..peers.len())];
        if let Some(request) = self.summary(false, actions) {
            actions.push(Action::Send { to: peer, request });
        }
    }

    /// This node's summary: the digest and, when `with_versions`, every version it holds.
    fn summary(
        &self,
        with_versions: bool,
        actions: &mut Vec<Action<S::Error>>,
    ) -> Option<SyncRequestV1> {
        match records::versions(&self.store) {
            Ok(versions) => Some(SyncRequestV1::Summary {
                digest: digest(&versions),
                versions: if with_versions { versions } else { Vec::new() },
            }),
            Err(e) => {
                actions.push(Action::StoreFailed(e));
                None
            }
        }
    }

    /// What a peer with `versions` lacks (newer or missing here), and what it has that this
    /// node lacks, each bounded by [`MAX_RECORDS_PER_MESSAGE`].
    fn delta_for(&self, versions: Vec<RecordVersion>) -> Result<SyncResponseV1, S::Error> {
        let theirs: BTreeMap<_, _> = versions.into_iter().map(|v| (v.id.clone(), v)).collect();
        let mut records = Vec::new();
        for record in self.store.all_records()? {
            let newer = match theirs.get(&record.id()) {
                None => true,
                Some(v) => (record.hlc, record.author) > (v.hlc, v.author),
            };
            if newer && records.len() < MAX_RECORDS_PER_MESSAGE {
                records.push(record);
            }
        }
        let mut want = Vec::new();
        for (id, v) in theirs {
            if want.len() >= MAX_RECORDS_PER_MESSAGE {
                break;
            }
            let wanted = match self.store.get(&id)? {
                Some(mine) => (v.hlc, v.author) > (mine.hlc, mine.author),
                None => true,
            };
            if wanted {
                want.push(id);
            }
        }
        Ok(SyncResponseV1::Delta { records, want })
    }
}
