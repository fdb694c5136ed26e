//! The tunnel actor: owns the quinn endpoint, keeps a connection to every edge, accepts
//! members' connections, closes revoked ones, and serves the streams edges open here.

use super::serve::{serve_stream, ServeContext};
use super::tls::{self, Credentials};
use super::{TunnelError, Tunnels};
use crate::view::{DataPlaneStatus, ViewRx};
use hearth_proto::{NodeId, NodeKey};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

/// What the tunnel needs from the config.
#[derive(Debug, Clone)]
pub struct TunnelSettings {
    /// Silence after which a connection counts as dead; keep-alives go at a third of it.
    pub idle_timeout: Duration,
    /// Concurrent streams a peer may open on one connection.
    pub max_streams: u32,
    /// How long the hosting side waits for its target.
    pub connect_timeout: Duration,
}

impl TunnelSettings {
    fn transport(&self) -> Arc<quinn::TransportConfig> {
        let mut transport = quinn::TransportConfig::default();
        // Both conversions only fail above 2^62 ms or streams; config checks keep far below.
        if let Ok(idle) = quinn::IdleTimeout::try_from(self.idle_timeout) {
            transport.max_idle_timeout(Some(idle));
        }
        transport.keep_alive_interval(Some(self.idle_timeout / 3));
        transport.max_concurrent_bidi_streams(self.max_streams.into());
        transport.max_concurrent_uni_streams(0u32.into());
        // Room for a fast download on a path with some latency, per stream and in all.
        transport.stream_receive_window((8u32 * 1024 * 1024).into());
        transport.receive_window((32u32 * 1024 * 1024).into());
        transport.send_window(32 * 1024 * 1024);
        Arc::new(transport)
    }
}

/// Binds the endpoint's UDP socket, so the port is known before the node announces it.
pub fn bind(addr: &str) -> Result<std::net::UdpSocket, TunnelError> {
    crate::addrs::socket_addr(addr)
        .and_then(std::net::UdpSocket::bind)
        .map_err(|source| TunnelError::Bind {
            addr: addr.to_string(),
            source,
        })
}

/// Connection events from the tasks the actor spawns.
#[derive(Debug)]
enum Event {
    /// A connection is up; `true` when this node dialed it.
    Up(NodeId, quinn::Connection, bool),
    Down(NodeId, usize),
    DialFailed(NodeId),
}

/// When an edge that could not be reached is tried again.
#[derive(Debug)]
struct Retry {
    at: Instant,
    delay: Duration,
}

/// The tunnel actor.
#[derive(Debug)]
pub struct TunnelActor {
    me: NodeId,
    endpoint: quinn::Endpoint,
    credentials: Credentials,
    transport: Arc<quinn::TransportConfig>,
    view: ViewRx,
    tunnels: Tunnels,
    status: DataPlaneStatus,
    serve: Arc<ServeContext>,
    dialing: HashSet<NodeId>,
    retry: HashMap<NodeId, Retry>,
    /// The members the failure detector had declared down at the last reconcile.
    down: BTreeSet<NodeId>,
}

const MAX_RETRY: Duration = Duration::from_secs(5);
/// Longest one dial (all of an edge's addresses) may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

impl TunnelActor {
    /// Builds the endpoint on `socket`.
    pub fn new(
        key: &NodeKey,
        socket: std::net::UdpSocket,
        view: ViewRx,
        tunnels: Tunnels,
        status: DataPlaneStatus,
        settings: &TunnelSettings,
        terminator: crate::ingress::Terminator,
    ) -> Result<Self, TunnelError> {
        let credentials = Credentials::new(key)?;
        let transport = settings.transport();
        let server = tls::server_config(&credentials, view.clone(), transport.clone())?;
        let local = socket.local_addr().ok();
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|source| TunnelError::Bind {
            addr: local.map(|a| a.to_string()).unwrap_or_default(),
            source,
        })?;
        status.update(|s| s.tunnel_listen = local.map(|a| a.to_string()));
        let serve = Arc::new(ServeContext {
            me: key.id(),
            view: view.clone(),
            connect_timeout: settings.connect_timeout,
            status: status.clone(),
            terminator,
        });
        Ok(Self {
            me: key.id(),
            endpoint,
            credentials,
            transport,
            view,
            tunnels,
            status,
            serve,
            dialing: HashSet::new(),
            retry: HashMap::new(),
            down: BTreeSet::new(),
        })
    }

    /// Runs until `cancel` fires, then closes every connection.
    pub async fn run(mut self, cancel: CancellationToken) {
        let span = tracing::info_span!("tunnel", node = %self.me.short());
        async move {
            info!(addr = ?self.endpoint.local_addr().ok(), "tunnel endpoint started");
            let (events_tx, mut events) = mpsc::channel(64);
            let mut maintain = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    Some(incoming) = self.endpoint.accept() => {
                        let events = events_tx.clone();
                        tokio::spawn(accept(incoming, events).in_current_span());
                    }
                    Some(event) = events.recv() => self.handle(event, &events_tx, &cancel),
                    changed = self.view.changed() => {
                        if changed.is_err() { break; }
                        self.reconcile(&events_tx);
                    }
                    _ = maintain.tick() => self.reconcile(&events_tx),
                }
            }
            self.endpoint.close(0u32.into(), b"shutting down");
            info!("tunnel endpoint stopped");
        }
        .instrument(span)
        .await
    }

    fn handle(&mut self, event: Event, events: &mpsc::Sender<Event>, cancel: &CancellationToken) {
        match event {
            Event::Up(node, connection, dialed) => {
                self.dialing.remove(&node);
                self.retry.remove(&node);
                if !self.view.borrow().is_member(&node) {
                    connection.close(1u32.into(), b"not a member");
                    return;
                }
                info!(peer = %node.short(), remote = %connection.remote_address(), "tunnel up");
                if dialed && !self.view.borrow().is_edge(&node) {
                    connection.close(1u32.into(), b"not an edge");
                    return;
                }
                self.tunnels.insert(node, connection.clone(), dialed);
                tokio::spawn(
                    drive(
                        node,
                        connection,
                        self.serve.clone(),
                        events.clone(),
                        cancel.clone(),
                    )
                    .in_current_span(),
                );
            }
            Event::Down(node, stable_id) => {
                self.tunnels.remove(&node, stable_id);
            }
            Event::DialFailed(node) => {
                self.dialing.remove(&node);
                let delay = self
                    .retry
                    .get(&node)
                    .map(|r| (r.delay * 2).min(MAX_RETRY))
                    .unwrap_or(Duration::from_millis(250));
                self.retry.insert(
                    node,
                    Retry {
                        at: Instant::now() + delay,
                        delay,
                    },
                );
            }
        }
        self.publish_status();
    }

    /// Closes tunnels of non-members and those this node dialed to former edges, and dials
    /// every edge it has no tunnel to.
    fn reconcile(&mut self, events: &mpsc::Sender<Event>) {
        let view = self.view.borrow().clone();
        self.tunnels
            .close_unless(|node| view.is_member(node), |node| view.is_edge(node));
        // A member just declared down loses its tunnels now: a kept-alive visitor would
        // otherwise wait for the tunnel's idle timeout. Only on the change, so a restarted
        // member's new tunnel is not closed while the detector still lists its old self.
        for node in view.down.difference(&self.down) {
            if self.tunnels.close(node, b"declared down") {
                info!(peer = %node.short(), "tunnel closed: the failure detector declared the member down");
            }
        }
        self.down = view.down.clone();
        let now = Instant::now();
        if !view.is_member(&self.me) {
            return;
        }
        for (edge, info) in &view.edges {
            let addrs = &info.tunnel;
            if *edge == self.me
                || addrs.is_empty()
                || self.tunnels.has_dialed(edge)
                || self.dialing.contains(edge)
                || self.retry.get(edge).is_some_and(|r| r.at > now)
            {
                continue;
            }
            let config = match tls::client_config(&self.credentials, *edge, self.transport.clone())
            {
                Ok(config) => config,
                Err(e) => {
                    warn!(error = %e, "cannot configure a tunnel dial");
                    continue;
                }
            };
            self.dialing.insert(*edge);
            tokio::spawn(
                dial(
                    self.endpoint.clone(),
                    config,
                    *edge,
                    addrs.clone(),
                    events.clone(),
                )
                .in_current_span(),
            );
        }
        self.publish_status();
    }

    fn publish_status(&self) {
        let connected = self.tunnels.connected();
        self.status.update(|s| s.tunnels = connected);
    }
}

/// Completes an incoming handshake and reports the member.
async fn accept(incoming: quinn::Incoming, events: mpsc::Sender<Event>) {
    let remote = incoming.remote_address();
    match incoming.await {
        Ok(connection) => match peer_of(&connection) {
            Some(node) => {
                let _ = events.send(Event::Up(node, connection, false)).await;
            }
            None => connection.close(1u32.into(), b"no identity"),
        },
        Err(e) => debug!(%remote, error = %e, "tunnel handshake refused"),
    }
}

/// Tries each address of an edge in turn.
async fn dial(
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
    edge: NodeId,
    addrs: Vec<SocketAddr>,
    events: mpsc::Sender<Event>,
) {
    for addr in addrs {
        let connecting = match endpoint.connect_with(config.clone(), addr, tls::SERVER_NAME) {
            Ok(connecting) => connecting,
            Err(e) => {
                debug!(%addr, error = %e, "tunnel dial not started");
                continue;
            }
        };
        match tokio::time::timeout(DIAL_TIMEOUT, connecting).await {
            Ok(Ok(connection)) => {
                let _ = events.send(Event::Up(edge, connection, true)).await;
                return;
            }
            Ok(Err(e)) => debug!(edge = %edge.short(), %addr, error = %e, "tunnel dial failed"),
            Err(_) => debug!(edge = %edge.short(), %addr, "tunnel dial timed out"),
        }
    }
    let _ = events.send(Event::DialFailed(edge)).await;
}

/// Serves the streams a peer opens on one connection until it closes.
async fn drive(
    node: NodeId,
    connection: quinn::Connection,
    serve: Arc<ServeContext>,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            stream = connection.accept_bi() => match stream {
                Ok((send, recv)) => {
                    tokio::spawn(serve_stream(send, recv, node, serve.clone()).in_current_span());
                }
                Err(e) => {
                    info!(peer = %node.short(), reason = %e, "tunnel down");
                    break;
                }
            },
        }
    }
    let _ = events.send(Event::Down(node, connection.stable_id())).await;
}

/// The member a connection's certificate speaks for.
fn peer_of(connection: &quinn::Connection) -> Option<NodeId> {
    let identity = connection.peer_identity()?;
    let chain = identity
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    tls::node_id_of(chain.first()?).ok()
}
