//! The mesh actor: owns the swarm and the store, admits members, replicates records and
//! answers admin commands. One task, one `select!` loop, one tracing span.

use super::behaviour::{MeshBehaviour, MeshBehaviourEvent};
use super::gate::{Admission, GatePolicy};
use super::peer_id::{node_id, peer_id};
use crate::addrs::publishable;
use crate::clock::now_ms;
use crate::services::{ContainerRoute, Report, ResolvedRoute};
use crate::store::Store;
use crate::view::{DataPlaneStatus, MeshView};
use hearth_proto::api::DockerV1;
use hearth_proto::api::{ApiError, ApiErrorKind, CommandV1, ResponseV1};
use hearth_proto::election::{EdgePreference, Election};
use hearth_proto::membership::Membership;
use hearth_proto::reach::ReachTracker;
use hearth_proto::record::NodeInfo;
use hearth_proto::wire::{SyncRequest, SyncRequestV1};
use hearth_proto::{Kind, MeshId, NodeId, NodeKey, Role};
use libp2p::core::ConnectedPoint;
use libp2p::futures::StreamExt;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, DialError, ListenError, SwarmEvent};
use libp2p::{identify, ping, Multiaddr, PeerId, Swarm};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

/// An admin command with the channel for its answer.
pub type AdminRequest = (CommandV1, oneshot::Sender<ResponseV1>);

/// Longest an invite may live.
pub const MAX_INVITE_TTL_SECS: u64 = 30 * 24 * 3600;
/// Most uses of one invite.
pub const MAX_INVITE_USES: u32 = 1000;
/// How long a `hearthctl dial` target is retried.
pub(super) const DIAL_TARGET_LIFETIME: Duration = Duration::from_secs(600);
const MAX_DIAL_BACKOFF: Duration = Duration::from_secs(30);
/// Most non-member connections an admin holds at once while they present invites.
pub const MAX_GUESTS: usize = 32;
/// Longest the election goes without a rerun. It reruns whenever records or liveness
/// change and when a candidate's settling time ends (`Election::changes_in_ms`); this is
/// only a backstop.
pub(super) const ELECTION_BACKSTOP: Duration = Duration::from_secs(2);

/// Settings the actor needs from the config.
#[derive(Debug, Clone)]
pub struct MeshSettings {
    /// When this process started (Unix ms): in its NodeInfo, its failure-detector identity
    /// and its identify agent version, so members tell it from a predecessor.
    pub started_ms: u64,
    /// This node's name.
    pub name: String,
    /// Addresses to announce in addition to the listen addresses.
    pub advertise: Vec<Multiaddr>,
    /// Anti-entropy period.
    pub anti_entropy: Duration,
    /// How long a guest may stay connected.
    pub guest_grace: Duration,
    /// How far ahead of the local clock a record may be dated (`max_clock_ahead`).
    pub max_clock_ahead: Duration,
    /// How long tombstones are kept.
    pub tombstone_ttl: Duration,
    /// How many listen addresses were configured (each reports its addresses at start-up).
    pub listeners: usize,
    /// This node's edge preference (announced in its NodeInfo).
    pub edge_pref: EdgePreference,
    /// The failure detector's probe period (`edges.heartbeat_ms`).
    pub heartbeat: Duration,
    /// How long a silent member stays alive in the failure detector (`edges.lease_ms`).
    pub lease: Duration,
    /// Members behind NAT keep control connections to every public member and to this many
    /// others (config `neighbours`); see `mesh::topology`.
    pub neighbours: usize,
    /// The `edges.max` this node announces.
    pub edges_max: u8,
    /// The port the data-plane endpoint is bound to, announced with this node's addresses.
    pub tunnel_port: u16,
    /// What this node offers as a certificate issuer (announced), when `[acme]` allows it.
    pub acme: Option<hearth_proto::cert::AcmeOffer>,
    /// Whether this node may order certificates and from where, or why not, for
    /// `hearthctl certs`.
    pub acme_status: String,
}

/// The actor's links to the data plane and the Docker actor: it publishes the view and the
/// container intents, and reads their status reports.
#[derive(Debug)]
pub struct DataPlaneLinks {
    /// Where each new [`MeshView`] goes.
    pub view: watch::Sender<Arc<MeshView>>,
    /// Read for `hearthctl status`.
    pub status: DataPlaneStatus,
    /// Where the container routes this node follows go, for the Docker actor.
    pub container_intents: watch::Sender<Vec<ContainerRoute>>,
    /// The Docker actor's report.
    pub docker: Report<DockerV1>,
}

/// Whether start-up has settled enough to answer admin commands: every listener has reported
/// its addresses (interfaces come one by one, loopback first, so a short quiet period is
/// awaited too), or a few seconds have passed. Until then an invite could carry only
/// `127.0.0.1`, which a joiner elsewhere cannot use.
#[derive(Debug)]
struct Readiness {
    listeners: usize,
    seen: std::collections::HashSet<libp2p::core::transport::ListenerId>,
    quiet_from: Option<Instant>,
    give_up: Instant,
}

/// Quiet time after the last new listen address before admin commands are answered.
const LISTEN_SETTLE: Duration = Duration::from_millis(25);
/// Latest point after start at which admin commands are answered regardless.
const READY_AT_LATEST: Duration = Duration::from_secs(5);

impl Readiness {
    fn new(listeners: usize) -> Self {
        Self {
            listeners,
            seen: Default::default(),
            quiet_from: None,
            give_up: Instant::now() + READY_AT_LATEST,
        }
    }

    fn address_reported(&mut self, listener: libp2p::core::transport::ListenerId) {
        self.seen.insert(listener);
        self.quiet_from = Some(Instant::now() + LISTEN_SETTLE);
    }

    fn ready(&self) -> bool {
        let now = Instant::now();
        now >= self.give_up
            || (self.seen.len() >= self.listeners && self.quiet_from.is_some_and(|t| now >= t))
    }
}

/// What the actor knows of one connected peer.
#[derive(Debug)]
pub(super) struct PeerState {
    pub(super) node: Option<NodeId>,
    pub(super) connections: usize,
    /// The relayed ones among them, with the relay each goes through.
    pub(super) relayed: HashMap<ConnectionId, PeerId>,
    /// The latest ping round trip on each connection: control traffic that went through.
    pub(super) rtt: HashMap<ConnectionId, Duration>,
    /// The remote address of each direct connection (where this node sees the peer).
    pub(super) remotes: HashMap<ConnectionId, Multiaddr>,
    /// Set for guests: when they are closed.
    pub(super) guest_until: Option<Instant>,
    /// When its first current connection came up.
    pub(super) since: Instant,
    /// When each current connection came up (Unix ms), and the start time of the process at
    /// its other end once identify told it: to tell connections to a restarted member's old
    /// process from those to its new one (`mesh::instances`).
    pub(super) established_ms: HashMap<ConnectionId, u64>,
    pub(super) process_ms: HashMap<ConnectionId, u64>,
}

/// How long a control connection lives before the topology may prune it.
const PRUNE_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub(super) struct Backoff {
    next: Instant,
    delay: Duration,
    /// The last dial offered only QUIC addresses; if it failed, the next one offers all.
    quic_only: bool,
}

/// The control-plane actor.
pub struct MeshActor {
    pub(super) me: NodeId,
    pub(super) mesh: MeshId,
    pub(super) settings: MeshSettings,
    pub(super) store: Store,
    pub(super) swarm: Swarm<MeshBehaviour>,
    pub(super) membership: Membership,
    /// The replication core: what to store, push, ask and answer.
    pub(super) replica: hearth_proto::replication::Replica<Store>,
    /// Which members keep control connections to each other, and this node's share.
    pub(super) topology: super::topology::Topology,
    pub(super) control_peers: BTreeSet<NodeId>,
    pub(super) peers: HashMap<PeerId, PeerState>,
    pub(super) last_seen: HashMap<NodeId, u64>,
    pub(super) backoff: HashMap<NodeId, Backoff>,
    pub(super) dial_targets: Vec<(Multiaddr, Instant)>,
    pub(super) bootstrap: Vec<Multiaddr>,
    pub(super) listen_addrs: BTreeSet<Multiaddr>,
    pub(super) rejected: BTreeMap<&'static str, u64>,
    pub(super) refused_connections: u64,
    pub(super) started: Instant,
    /// `started` in Unix ms, announced in NodeInfo.
    pub(super) started_ms: u64,
    /// The start time each member last announced, to notice restarts.
    pub(super) peer_starts: HashMap<NodeId, u64>,
    /// The failure detector's streams, once the actor runs.
    pub(super) swim_streams:
        Option<super::frame_streams::FrameStreams<hearth_proto::wire::SwimPacket>>,
    /// Record pushes' streams, once the actor runs.
    pub(super) push_streams:
        Option<super::frame_streams::FrameStreams<hearth_proto::wire::PushFrame>>,
    /// When each member was last introduced to the failure detector (`liveness::reintroduce`).
    pub(super) introduced: HashMap<NodeId, Instant>,
    readiness: Readiness,
    pub(super) view: watch::Sender<Arc<MeshView>>,
    pub(super) data_plane: DataPlaneStatus,
    pub(super) container_intents: watch::Sender<Vec<ContainerRoute>>,
    pub(super) docker: Report<DockerV1>,
    /// What AutoNAT found, announced in NodeInfo when it changes.
    pub(super) reach: ReachTracker,
    /// The latest election, recomputed on a timer, whenever a NodeInfo arrives and whenever
    /// the failure detector's view changes.
    pub(super) election: Election,
    /// When the election runs next if nothing changes before.
    pub(super) election_due: Instant,
    /// Every stored Route record's body, by record key (`view::routes_stored` keeps it
    /// current): the view is derived from it for every stored record.
    pub(super) routes: BTreeMap<String, hearth_proto::route::Route>,
    /// Every stored NodeInfo, decoded (`edges::infos_stored` keeps it current).
    pub(super) infos: Arc<BTreeMap<NodeId, NodeInfo>>,
    /// Liveness of the other members (SWIM), in memory.
    pub(super) swim: super::swim::Swim,
    /// The thread that flushes the store, and its reports.
    pub(super) flusher: crate::store::flusher::Flusher,
    flushed: mpsc::UnboundedReceiver<crate::store::flusher::Flushed>,
    /// What waits for a flush.
    pub(super) durability: super::durable::Durability,
    /// Relay reservations on edges, while this node is not public.
    pub(super) reservations: super::relays::Reservations,
    /// Dial-backs asked of members and served for them.
    pub(super) dialbacks: super::dialback::DialBacks,
}

impl std::fmt::Debug for MeshActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshActor").field("me", &self.me).finish()
    }
}

impl MeshActor {
    /// Builds the actor over an already-listening swarm and an opened store of a mesh member.
    pub fn new(
        key: NodeKey,
        store: Store,
        swarm: Swarm<MeshBehaviour>,
        settings: MeshSettings,
        links: DataPlaneLinks,
    ) -> Result<Self, crate::NodeError> {
        let me = key.id();
        let mesh = store.mesh()?.ok_or(crate::NodeError::NoMesh)?;
        let membership = store.membership()?.ok_or(crate::NodeError::NoMesh)?;
        let replica = hearth_proto::replication::Replica::new(
            store.clone(),
            key,
            hearth_proto::replication::ReplicaConfig {
                max_clock_ahead_ms: settings.max_clock_ahead.as_millis() as u64,
                tombstone_ttl_ms: settings.tombstone_ttl.as_millis() as u64,
            },
            rand::random(),
        )?;
        let bootstrap = store
            .bootstrap()?
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        let settings_listeners = settings.listeners;
        let started_ms = settings.started_ms;
        let swim = super::swim::Swim::new(
            super::swim::SwimId {
                node: me,
                started_ms,
                bump: 0,
            },
            super::swim::SwimTiming {
                probe_period: settings.heartbeat,
                lease: settings.lease,
            },
            rand::random(),
        );
        let infos = Arc::new(Self::load_infos(&store)?);
        let routes = Self::load_routes(&store)?;
        let (flushed_tx, flushed) = mpsc::unbounded_channel();
        let flusher = crate::store::flusher::Flusher::start(store.clone(), flushed_tx)?;
        let mut actor = Self {
            me,
            mesh,
            settings,
            store,
            swarm,
            membership,
            replica,
            topology: Default::default(),
            control_peers: BTreeSet::new(),
            peers: HashMap::new(),
            last_seen: HashMap::new(),
            backoff: HashMap::new(),
            dial_targets: Vec::new(),
            bootstrap,
            listen_addrs: BTreeSet::new(),
            rejected: BTreeMap::new(),
            refused_connections: 0,
            started: Instant::now(),
            started_ms,
            peer_starts: HashMap::new(),
            swim_streams: None,
            push_streams: None,
            introduced: HashMap::new(),
            readiness: Readiness::new(settings_listeners),
            view: links.view,
            data_plane: links.status,
            container_intents: links.container_intents,
            docker: links.docker,
            reach: ReachTracker::default(),
            election: Election::default(),
            election_due: Instant::now(),
            routes,
            infos,
            swim,
            flusher,
            flushed,
            durability: Default::default(),
            reservations: Default::default(),
            dialbacks: Default::default(),
        };
        if let Ok(intents) = actor.store.container_routes() {
            actor.container_intents.send_replace(intents);
        }
        actor.update_gate();
        actor.refresh_election();
        actor.publish_view();
        Ok(actor)
    }

    /// Runs until `cancel` fires.
    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<AdminRequest>,
        mut container_routes: mpsc::Receiver<Vec<ResolvedRoute>>,
        mut writes: mpsc::Receiver<super::certs::WriteRequest>,
        cancel: CancellationToken,
    ) {
        let span = tracing::info_span!("mesh", node = %self.me.short());
        async move {
            info!(mesh = %self.mesh.short(), "mesh actor started");
            let mut maintain = tokio::time::interval(Duration::from_millis(500));
            let mut anti_entropy = tokio::time::interval(self.settings.anti_entropy);
            let control = self.swarm.behaviour().streams.new_control();
            let (streams, mut swim_inbound) =
                super::frame_streams::FrameStreams::start(control, cancel.child_token());
            self.swim_streams = Some(streams);
            let control = self.swarm.behaviour().streams.new_control();
            let (streams, mut push_inbound) =
                super::frame_streams::FrameStreams::start(control, cancel.child_token());
            self.push_streams = Some(streams);
            loop {
                let swim_due = self
                    .swim
                    .next_deadline()
                    .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(20)), if !self.readiness.ready() => {}
                    Some((command, reply)) = commands.recv(), if self.readiness.ready() => {
                        let response = self.handle_command(command);
                        self.when_durable(super::durable::Completion::Admin(reply, response));
                    }
                    Some(flushed) = self.flushed.recv() => self.flushed(flushed),
                    event = self.swarm.select_next_some() => self.handle_swarm_event(event),
                    Some(inbound) = swim_inbound.recv() => self.swim_stream_event(inbound),
                    Some(inbound) = push_inbound.recv() => self.push_stream_event(inbound),
                    Some(wanted) = container_routes.recv() => self.sync_container_routes(wanted),
                    Some(request) = writes.recv() => self.write_for(request),
                    _ = maintain.tick() => self.maintain(),
                    _ = anti_entropy.tick() => self.anti_entropy_round(),
                    _ = tokio::time::sleep_until(swim_due.into()) => self.swim_tick(),
                    _ = tokio::time::sleep_until(self.election_due.into()) => self.election_tick(),
                }
                self.end_of_turn();
            }
            self.flush_before_exit();
            if let Err(e) = self.store.save_watermark() {
                warn!(error = %e, "cannot save the store watermark");
            }
            info!("mesh actor stopped");
        }
        .instrument(span)
        .await
    }

    // ----- membership and gating -------------------------------------------------------------

    pub(super) fn refresh_membership(&mut self) {
        match self.store.membership() {
            Ok(Some(m)) => self.membership = m,
            Ok(None) => {}
            Err(e) => warn!(error = %e, "cannot read membership"),
        }
        self.update_gate();
        let revoked: Vec<NodeId> = self
            .membership
            .revoked()
            .map(|(id, _)| *id)
            .filter(|id| self.swim.alive().contains(id))
            .collect();
        for node in revoked {
            self.forget_liveness(&node);
        }
        let to_close: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(peer, state)| {
                state.guest_until.is_none()
                    && self.swarm.behaviour().gate.policy.admission(peer) != Admission::Member
            })
            .map(|(peer, _)| *peer)
            .collect();
        for peer in to_close {
            info!(%peer, "disconnecting peer that is no longer a member");
            self.tell_revoked(peer);
        }
        if self.membership.revocation(&self.me).is_some() {
            warn!("this node has been revoked from the mesh");
        }
    }

    /// Sends a revoked peer its Revocation so it knows why, then closes it shortly after; a
    /// peer that is merely unknown is closed at once.
    fn tell_revoked(&mut self, peer: PeerId) {
        let revocation = node_id(&peer).and_then(|node| {
            let id = hearth_proto::RecordId {
                kind: Kind::Revocation,
                key: node.to_string(),
            };
            self.store.get(&id).ok().flatten()
        });
        match (revocation, self.peers.get_mut(&peer)) {
            (Some(record), Some(state)) => {
                state.guest_until = Some(Instant::now() + Duration::from_secs(1));
                let request = SyncRequest::V1(SyncRequestV1::Push {
                    records: vec![record],
                });
                self.swarm.behaviour_mut().sync.send_request(&peer, request);
            }
            _ => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
    }

    pub(super) fn update_gate(&mut self) {
        let members = std::iter::once(self.membership.founder())
            .chain(self.membership.members().map(|(id, _)| *id))
            .filter(|id| self.membership.is_member(id))
            .map(|id| peer_id(&id))
            .collect();
        let revoked = self
            .membership
            .revoked()
            .map(|(id, _)| peer_id(id))
            .collect();
        let guests = self
            .peers
            .values()
            .filter(|s| s.guest_until.is_some())
            .count();
        let admit_guests =
            self.membership.role(&self.me) == Some(Role::Admin) && guests < MAX_GUESTS;
        self.swarm.behaviour_mut().gate.policy = GatePolicy {
            members,
            revoked,
            admit_guests,
        };
    }

    pub(super) fn is_member_peer(&self, peer: &PeerId) -> bool {
        self.swarm.behaviour().gate.policy.admission(peer) == Admission::Member
    }

    pub(super) fn connected_members(&self) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(p, s)| s.connections > 0 && s.guest_until.is_none() && self.is_member_peer(p))
            .map(|(p, _)| *p)
            .collect()
    }

    // ----- swarm events ----------------------------------------------------------------------

    fn handle_swarm_event(&mut self, event: SwarmEvent<MeshBehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr {
                address,
                listener_id,
            } => {
                info!(%address, "listening");
                self.readiness.address_reported(listener_id);
                self.listen_addrs.insert(address);
                self.publish_node_info();
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs.remove(&address);
                self.publish_node_info();
            }
            SwarmEvent::ConnectionEstablished {
                peer_id: peer,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                let address = endpoint.get_remote_address().clone();
                // The relay is in the dialed address, or in the local (listening) address of
                // an inbound circuit, whose remote address is only the source's `/p2p/`.
                let relay = super::relays::relay_of(match &endpoint {
                    ConnectedPoint::Dialer { address, .. } => address,
                    ConnectedPoint::Listener { local_addr, .. } => local_addr,
                });
                self.dial_targets.retain(|(a, _)| *a != address);
                let node = node_id(&peer);
                let member = self.is_member_peer(&peer);
                let guest_until = (!member).then(|| Instant::now() + self.settings.guest_grace);
                let state = self.peers.entry(peer).or_insert(PeerState {
                    node,
                    connections: 0,
                    relayed: HashMap::new(),
                    rtt: HashMap::new(),
                    remotes: HashMap::new(),
                    guest_until,
                    since: Instant::now(),
                    established_ms: HashMap::new(),
                    process_ms: HashMap::new(),
                });
                state.connections += 1;
                state.established_ms.insert(connection_id, now_ms());
                match relay {
                    Some(relay) => {
                        state.relayed.insert(connection_id, relay);
                    }
                    None => {
                        state.remotes.insert(connection_id, address.clone());
                    }
                }
                self.dial_back_done(connection_id, Ok(()));
                if member {
                    if let Some(node) = node {
                        self.last_seen.insert(node, now_ms());
                        self.backoff.remove(&node);
                    }
                    if num_established.get() == 1 {
                        debug!(%peer, %address, "member connected");
                        self.member_connected(peer);
                        if let Some(node) = node {
                            self.introduce_to(node);
                        }
                    }
                } else {
                    debug!(%peer, %address, "guest connected; it may only redeem an invite");
                    self.update_gate();
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id: peer,
                connection_id,
                num_established,
                ..
            } => {
                if let Some(node) = node_id(&peer) {
                    if self.membership.is_member(&node) {
                        self.last_seen.insert(node, now_ms());
                    }
                }
                if num_established == 0 {
                    self.peers.remove(&peer);
                    if let Some(streams) = self.swim_streams.as_mut() {
                        streams.disconnected(&peer);
                    }
                    if let Some(streams) = self.push_streams.as_mut() {
                        streams.disconnected(&peer);
                    }
                } else if let Some(state) = self.peers.get_mut(&peer) {
                    state.connections = state.connections.saturating_sub(1);
                    state.relayed.remove(&connection_id);
                    state.rtt.remove(&connection_id);
                    state.remotes.remove(&connection_id);
                    state.established_ms.remove(&connection_id);
                    state.process_ms.remove(&connection_id);
                }
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                self.reach.confirmed(&address.to_string(), now_ms());
                self.reach_changed();
            }
            SwarmEvent::ExternalAddrExpired { address } => {
                self.reach.expired(&address.to_string());
                self.reach_changed();
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                addresses,
                reason,
            } => {
                for address in &addresses {
                    self.listen_addrs.remove(address);
                }
                if self.reservations.listener_closed(listener_id) {
                    debug!(?reason, "relay reservation ended");
                    self.publish_node_info();
                }
            }
            SwarmEvent::Behaviour(MeshBehaviourEvent::Identify(identify::Event::Received {
                connection_id,
                peer_id,
                info,
            })) => self.identified(peer_id, connection_id, &info.agent_version),
            SwarmEvent::Behaviour(MeshBehaviourEvent::Autonat(event)) => self.autonat_result(event),
            SwarmEvent::Behaviour(MeshBehaviourEvent::Dcutr(event)) => match event.result {
                Ok(_) => {
                    info!(peer = %event.remote_peer_id, "hole punch succeeded: direct connection")
                }
                Err(e) => {
                    debug!(peer = %event.remote_peer_id, error = %e, "hole punch failed; staying relayed")
                }
            },
            SwarmEvent::Behaviour(MeshBehaviourEvent::Join(event)) => self.handle_join_event(event),
            SwarmEvent::Behaviour(MeshBehaviourEvent::Sync(event)) => self.handle_sync_event(event),
            SwarmEvent::Behaviour(MeshBehaviourEvent::Swim(event)) => self.handle_swim_event(event),
            SwarmEvent::Behaviour(MeshBehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result,
            })) => match result {
                Ok(rtt) => {
                    if let Some(state) = self.peers.get_mut(&peer) {
                        state.rtt.insert(connection, rtt);
                    }
                }
                Err(error) => {
                    debug!(%peer, %error, "ping failed; closing that connection");
                    self.swarm.close_connection(connection);
                }
            },
            SwarmEvent::IncomingConnectionError {
                error: ListenError::Denied { cause },
                send_back_addr,
                ..
            } => {
                self.refused_connections += 1;
                info!(%send_back_addr, %cause, "refused connection");
            }
            SwarmEvent::OutgoingConnectionError {
                error: DialError::Denied { cause },
                peer_id,
                connection_id,
            } => {
                self.refused_connections += 1;
                info!(?peer_id, %cause, "refused connection");
                self.dial_back_done(connection_id, Err(cause.to_string()));
            }
            SwarmEvent::OutgoingConnectionError {
                error,
                connection_id,
                ..
            } => self.dial_back_done(connection_id, Err(super::dialback::why(&error))),
            _ => {}
        }
    }

    // ----- periodic work ---------------------------------------------------------------------

    fn maintain(&mut self) {
        let now = Instant::now();
        let expired: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, s)| s.guest_until.is_some_and(|t| t <= now))
            .map(|(p, _)| *p)
            .collect();
        for peer in expired {
            if self.is_member_peer(&peer) {
                if let Some(state) = self.peers.get_mut(&peer) {
                    state.guest_until = None;
                }
            } else {
                debug!(%peer, "closing guest connection");
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
        self.update_gate();
        self.sync_reservations();
        self.ask_dial_back();
        self.prune_connections(now);
        self.dial_members(now);
        self.reintroduce(now);
        self.dial_targets.retain(|(_, until)| *until > now);
        for (addr, _) in self.dial_targets.clone() {
            if let Err(e) = self.swarm.dial(addr.clone()) {
                debug!(%addr, error = %e, "dial failed");
            }
        }
    }

    /// Closes control connections the topology does not want (a mesh that learned its hubs,
    /// or a member that is no longer one), once they are old enough that both ends see the
    /// same members and hubs.
    fn prune_connections(&mut self, now: Instant) {
        if !self.topology.bounded() {
            return;
        }
        let unwanted: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, s)| s.connections > 0 && s.guest_until.is_none())
            .filter(|(_, s)| now.duration_since(s.since) >= PRUNE_AFTER)
            .filter(|(_, s)| s.node.is_some_and(|n| !self.control_peers.contains(&n)))
            .map(|(p, _)| *p)
            .filter(|p| self.is_member_peer(p))
            .collect();
        for peer in unwanted {
            debug!(%peer, "closing a control connection the topology does not need");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    fn dial_members(&mut self, now: Instant) {
        let members: Vec<NodeId> = std::iter::once(self.membership.founder())
            .chain(self.membership.members().map(|(id, _)| *id))
            .filter(|id| *id != self.me && self.membership.is_member(id))
            .collect();
        for node in members {
            let peer = peer_id(&node);
            if self.peers.get(&peer).is_some_and(|s| s.connections > 0) {
                continue;
            }
            if self.topology.bounded() && !self.control_peers.contains(&node) {
                continue;
            }
            if self.backoff.get(&node).is_some_and(|b| b.next > now) {
                continue;
            }
            let mut addrs: Vec<Multiaddr> = self
                .node_info(&node)
                .map(|info| info.addrs.iter().filter_map(|a| a.parse().ok()).collect())
                .unwrap_or_default();
            if addrs.is_empty() {
                addrs = self.bootstrap.clone();
            }
            let backoff = self.backoff.entry(node).or_insert(Backoff {
                next: now,
                delay: Duration::from_millis(500),
                quic_only: false,
            });
            backoff.next = now + backoff.delay;
            backoff.delay = (backoff.delay * 2).min(MAX_DIAL_BACKOFF);
            // QUIC first: libp2p races every address and keeps the first to connect, and a
            // TCP winner costs a packet per yamux frame on every exchange (relayed ones
            // included) for as long as it lives. After a QUIC-only dial failed (no UDP on
            // this path), the next dial offers TCP too.
            let quic: Vec<Multiaddr> = addrs
                .iter()
                .filter(|a| hearth_proto::addr::is_quic(&a.to_string()))
                .cloned()
                .collect();
            backoff.quic_only = !backoff.quic_only && !quic.is_empty() && quic.len() < addrs.len();
            if backoff.quic_only {
                addrs = quic;
            }
            if addrs.is_empty() {
                continue;
            }
            let opts = DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                debug!(node = %node.short(), error = %e, "dial not started");
            }
        }
    }

    pub(super) fn node_info(&self, node: &NodeId) -> Option<NodeInfo> {
        self.infos.get(node).cloned()
    }

    pub(super) fn announced_addrs(&self) -> Vec<String> {
        publishable(&self.settings.advertise, &self.listen_addrs)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::new(ApiErrorKind::Internal, e.to_string())
    }
}
