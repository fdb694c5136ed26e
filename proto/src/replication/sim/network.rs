//! A simulated network of replicas: messages delayed at random (so reordered), lost at a
//! given rate, cut by partitions; nodes that stop and restart from their store.
//! Deterministic for a seed: time is simulated and every random choice comes from one seeded
//! generator.

use crate::record::{Genesis, Member};
use crate::replication::{Action, Event, MemoryStore, RecordMap, Replica, ReplicaConfig};
use crate::wire::{SyncRequest, SyncRequestV1, SyncResponse, SyncResponseV1};
use crate::{Body, Hlc, MeshId, NodeId, NodeKey, Record, RecordId, Role};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

/// Simulated time at the start, in Unix ms.
pub const EPOCH_MS: u64 = 1_700_000_000_000;
/// The anti-entropy period of every node.
pub const ANTI_ENTROPY_MS: u64 = 10_000;

#[derive(Debug, Clone)]
enum Payload {
    Request(SyncRequestV1),
    Response(SyncResponseV1),
}

#[derive(Debug, Clone)]
struct Message {
    from: usize,
    to: usize,
    payload: Payload,
}

#[derive(Debug)]
enum Scheduled {
    Deliver(Message),
    Tick(usize),
}

/// One simulated node.
struct Node {
    key: NodeKey,
    replica: Option<Replica<MemoryStore>>,
    /// The store while the node is stopped: it survives a restart, the replica's memory
    /// does not.
    parked: Option<MemoryStore>,
    skew_ms: i64,
}

/// What the network carried, for the idle checks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Traffic {
    /// Messages sent (before loss).
    pub messages: u64,
    /// Their encoded size.
    pub bytes: u64,
    /// Messages that carried records.
    pub with_records: u64,
}

/// The simulated mesh.
pub struct Sim {
    nodes: Vec<Node>,
    ids: Vec<NodeId>,
    index: BTreeMap<NodeId, usize>,
    links: Vec<BTreeSet<usize>>,
    /// Nodes below this index are hubs (linked to every node).
    hubs: usize,
    side: Vec<u8>,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    scheduled: BTreeMap<usize, Scheduled>,
    seq: u64,
    now: u64,
    rng: StdRng,
    /// Loss rate, in percent, of every message.
    pub loss_percent: u32,
    /// Largest random delay of a message (reordering), in ms.
    pub max_delay_ms: u64,
    /// Every record a node's write stored: acknowledged to whoever asked for the write.
    pub acknowledged: Vec<Record>,
    /// Refusals seen anywhere (none expected from members' writes).
    pub refused: u64,
    /// What was sent.
    pub traffic: Traffic,
}

impl Sim {
    /// `n` members of one mesh (node 0 the founder, nodes 1 to `admins - 1` admins too), each
    /// linked to the first `hubs` nodes and to `extra` others at random: a bounded graph like
    /// a personal mesh's (homes around a few public nodes), not every pair.
    pub fn new(n: usize, admins: usize, hubs: usize, extra: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let keys: Vec<NodeKey> = (0..n)
            .map(|i| NodeKey::from_secret([(i as u8).wrapping_add(1); 32]))
            .collect();
        let ids: Vec<NodeId> = keys.iter().map(NodeKey::id).collect();
        let nonce = [7; 16];
        let mesh = MeshId::derive(&ids[0], &nonce);
        let genesis = Body::Genesis(Genesis {
            name: "sim".into(),
            founder: ids[0],
            nonce,
            created_ms: EPOCH_MS,
        });
        let mut hlc = Hlc::at(EPOCH_MS);
        let mut initial = vec![Record::sign(&keys[0], mesh, &genesis, hlc)];
        for (i, id) in ids.iter().enumerate() {
            hlc = hlc.tick(EPOCH_MS);
            let role = if i < admins {
                Role::Admin
            } else {
                Role::Member
            };
            let body = Body::Member(Member {
                node: *id,
                name: format!("n{i}"),
                role,
            });
            initial.push(Record::sign(&keys[0], mesh, &body, hlc));
        }
        // Every node starts as a joiner does: holding the mesh's records.
        let mut founding = MemoryStore::new(mesh);
        let (stored, rejected) =
            crate::replication::apply_batch(&mut founding, initial).unwrap_or_default();
        assert!(rejected.is_empty() && stored.len() == n + 1);
        let mut links = vec![BTreeSet::new(); n];
        for i in 0..n {
            for hub in 0..hubs.min(n) {
                if hub != i {
                    links[i].insert(hub);
                    links[hub].insert(i);
                }
            }
            for _ in 0..extra {
                let j = rng.gen_range(0..n);
                if j != i {
                    links[i].insert(j);
                    links[j].insert(i);
                }
            }
        }
        let index = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let mut sim = Sim {
            nodes: Vec::new(),
            ids,
            index,
            links,
            hubs,
            side: vec![0; n],
            queue: BinaryHeap::new(),
            scheduled: BTreeMap::new(),
            seq: 0,
            now: EPOCH_MS,
            rng,
            loss_percent: 0,
            max_delay_ms: 1,
            acknowledged: Vec::new(),
            refused: 0,
            traffic: Traffic::default(),
        };
        for key in keys {
            let skew_ms = sim.rng.gen_range(-2_000..=2_000);
            sim.nodes.push(Node {
                key,
                replica: None,
                parked: Some(founding.clone()),
                skew_ms,
            });
        }
        for i in 0..n {
            sim.start(i);
        }
        for i in 0..n {
            let phase = sim.rng.gen_range(0..ANTI_ENTROPY_MS);
            sim.schedule(phase, Scheduled::Tick(i));
        }
        sim
    }

    fn config() -> ReplicaConfig {
        ReplicaConfig {
            max_clock_ahead_ms: 30_000,
            tombstone_ttl_ms: 30 * 24 * 3600 * 1000,
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Simulated time since the start, in ms.
    pub fn elapsed_ms(&self) -> u64 {
        self.now - EPOCH_MS
    }

    fn local_now(&self, i: usize) -> u64 {
        self.now.saturating_add_signed(self.nodes[i].skew_ms)
    }

    fn up(&self, i: usize) -> bool {
        self.nodes[i].replica.is_some()
    }

    fn reachable(&self, a: usize, b: usize) -> bool {
        self.up(a) && self.up(b) && self.side[a] == self.side[b]
    }

    /// The members `i` is connected to now.
    fn peers(&self, i: usize) -> Vec<NodeId> {
        self.links[i]
            .iter()
            .filter(|j| self.reachable(i, **j))
            .map(|j| self.ids[*j])
            .collect()
    }

    fn schedule(&mut self, after_ms: u64, what: Scheduled) {
        self.seq += 1;
        let at = self.now + after_ms;
        self.queue.push(Reverse((at, self.seq, self.seq as usize)));
        self.scheduled.insert(self.seq as usize, what);
    }

    fn send(&mut self, message: Message) {
        let bytes = match &message.payload {
            Payload::Request(r) => postcard::to_stdvec(&SyncRequest::V1(r.clone())),
            Payload::Response(r) => postcard::to_stdvec(&SyncResponse::V1(r.clone())),
        }
        .map(|b| b.len() as u64)
        .unwrap_or_default();
        let carries_records = match &message.payload {
            Payload::Request(SyncRequestV1::Push { records })
            | Payload::Response(SyncResponseV1::Delta { records, .. }) => !records.is_empty(),
            _ => false,
        };
        self.traffic.messages += 1;
        self.traffic.bytes += bytes;
        self.traffic.with_records += u64::from(carries_records);
        if self.rng.gen_range(0..100) < self.loss_percent {
            return;
        }
        let delay = self.rng.gen_range(1..=self.max_delay_ms.max(1));
        self.schedule(delay, Scheduled::Deliver(message));
    }

    /// Hands `event` to node `i`'s replica and carries out what it asks.
    fn handle(&mut self, i: usize, event: Event, reply_to: Option<usize>) {
        let now = self.local_now(i);
        let peers = self.peers(i);
        let Some(replica) = self.nodes[i].replica.as_mut() else {
            return;
        };
        let actions = replica.handle(now, &peers, event);
        self.carry_out(i, actions, reply_to);
    }

    fn carry_out(
        &mut self,
        i: usize,
        actions: Vec<Action<crate::replication::NoError>>,
        reply_to: Option<usize>,
    ) {
        for action in actions {
            match action {
                Action::Send { to, request } => {
                    if let Some(&j) = self.index.get(&to) {
                        self.send(Message {
                            from: i,
                            to: j,
                            payload: Payload::Request(request),
                        });
                    }
                }
                Action::Reply(response) => {
                    if let Some(j) = reply_to {
                        self.send(Message {
                            from: i,
                            to: j,
                            payload: Payload::Response(response),
                        });
                    }
                }
                Action::Refused(_) => self.refused += 1,
                Action::Stored { .. } | Action::Purged(_) => {}
                Action::StoreFailed(never) => match never {},
            }
        }
    }

    fn deliver(&mut self, message: Message) {
        let Message { from, to, payload } = message;
        // A message in flight across a partition, or to a stopped node, is lost.
        if !self.reachable(from, to) {
            return;
        }
        let from_id = self.ids[from];
        match payload {
            Payload::Request(SyncRequestV1::Push { records }) => self.handle(
                to,
                Event::Records {
                    from: from_id,
                    records,
                },
                Some(from),
            ),
            Payload::Request(SyncRequestV1::Summary { digest, versions }) => self.handle(
                to,
                Event::Summary {
                    from: from_id,
                    digest,
                    versions,
                },
                Some(from),
            ),
            Payload::Request(SyncRequestV1::DialBack { .. }) => {}
            Payload::Response(response) => self.handle(
                to,
                Event::Answer {
                    from: from_id,
                    response,
                },
                None,
            ),
        }
    }

    /// Runs the network for `ms` of simulated time.
    pub fn run_for(&mut self, ms: u64) {
        let until = self.now + ms;
        while let Some(Reverse((at, _, key))) = self.queue.peek().copied() {
            if at > until {
                break;
            }
            self.queue.pop();
            self.now = at;
            match self.scheduled.remove(&key) {
                Some(Scheduled::Deliver(message)) => self.deliver(message),
                Some(Scheduled::Tick(i)) => {
                    self.handle(i, Event::Tick, None);
                    self.schedule(ANTI_ENTROPY_MS, Scheduled::Tick(i));
                }
                None => {}
            }
        }
        self.now = until;
    }

    /// Node `i` writes `body`; the write is acknowledged once stored. When `spread` is false
    /// the node "crashes" before pushing it (its store keeps it; only anti-entropy can carry
    /// it on).
    pub fn write(&mut self, i: usize, body: &Body, spread: bool) -> Option<Record> {
        let now = self.local_now(i);
        let replica = self.nodes[i].replica.as_mut()?;
        let (record, _) = replica.write(now, body).ok()?;
        self.acknowledged.push(record.clone());
        if spread {
            self.handle(i, Event::Durable(vec![record.clone()]), None);
        }
        Some(record)
    }

    /// Node `i`'s id.
    pub fn id(&self, i: usize) -> NodeId {
        self.ids[i]
    }

    /// Stops node `i`: its memory is gone, its store stays.
    pub fn stop(&mut self, i: usize) {
        if let Some(replica) = self.nodes[i].replica.take() {
            self.nodes[i].parked = Some(replica.into_store());
        }
    }

    /// (Re)starts node `i` from its store; it and its reachable peers connect.
    pub fn start(&mut self, i: usize) {
        let seed = self.rng.gen();
        let node = &mut self.nodes[i];
        let Some(store) = node.parked.take() else {
            return;
        };
        let key = NodeKey::from_secret(node.key.secret_bytes());
        node.replica = Replica::new(store, key, Self::config(), seed).ok();
        let hubs = self.ids[..self.hubs.min(self.ids.len())]
            .iter()
            .copied()
            .collect();
        if let Some(replica) = self.nodes[i].replica.as_mut() {
            replica.set_hubs(hubs);
        }
        self.connect_all(i);
    }

    /// Whether node `i` runs.
    pub fn is_up(&self, i: usize) -> bool {
        self.up(i)
    }

    fn connect_all(&mut self, i: usize) {
        let linked: Vec<usize> = self.links[i].iter().copied().collect();
        for j in linked {
            if self.reachable(i, j) {
                self.connect(i, j);
            }
        }
    }

    /// A new connection: both ends learn of it, as libp2p reports it on both sides.
    fn connect(&mut self, a: usize, b: usize) {
        let (ida, idb) = (self.ids[a], self.ids[b]);
        self.handle(a, Event::Connected(idb), None);
        self.handle(b, Event::Connected(ida), None);
    }

    /// Splits the mesh: nodes in `side_b` can no longer reach the others.
    pub fn partition(&mut self, side_b: &[usize]) {
        for i in side_b {
            self.side[*i] = 1;
        }
    }

    /// Ends the partition; the links across it connect again.
    pub fn heal(&mut self) {
        let crossing: Vec<(usize, usize)> = (0..self.len())
            .flat_map(|i| self.links[i].iter().map(move |j| (i, *j)))
            .filter(|(i, j)| i < j && self.side[*i] != self.side[*j])
            .collect();
        self.side.iter_mut().for_each(|s| *s = 0);
        for (a, b) in crossing {
            if self.reachable(a, b) {
                self.connect(a, b);
            }
        }
    }

    /// Node `i`'s digest.
    pub fn digest(&self, i: usize) -> [u8; 32] {
        crate::replication::store_digest(self.store(i)).unwrap_or_default()
    }

    fn store(&self, i: usize) -> &MemoryStore {
        match (&self.nodes[i].replica, &self.nodes[i].parked) {
            (Some(replica), _) => replica.store(),
            (None, Some(parked)) => parked,
            (None, None) => unreachable!("a node holds its store while running or stopped"),
        }
    }

    /// Whether every node holds the same state.
    pub fn converged(&self) -> bool {
        let first = self.digest(0);
        (1..self.len()).all(|i| self.digest(i) == first)
    }

    /// Node `i`'s record under `id`.
    pub fn record(&self, i: usize, id: &RecordId) -> Option<Record> {
        self.store(i).get(id).ok().flatten()
    }

    /// A random number below `n`, from the simulation's generator.
    pub fn pick(&mut self, n: usize) -> usize {
        self.rng.gen_range(0..n)
    }
}
