//! Choosing a hosting member for a route and opening the connection to its target: locally
//! when this edge hosts the route itself, through the member's tunnel otherwise.
//!
//! Candidates are the route's hosting members that are reachable (this node, or a member with
//! a live tunnel), least outstanding streams first; one that fails before any payload (no
//! route, target down) is skipped for the next, all within one connect deadline. A
//! passthrough host's candidates are only the members whose route passes TLS through.
//!
//! A node built with [`Upstreams::local_only`] reaches only its own targets: a member
//! terminating a passthrough host never sends its decrypted requests anywhere else.

use crate::tunnel::{target, OpenError, Outstanding, TunnelStream, Tunnels};
use crate::view::ViewRx;
use hearth_proto::route::{RouteSpec, RouteTls};
use hearth_proto::tunnel::StreamHeaderV1;
use hearth_proto::NodeId;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Why no upstream could be had.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No member publishes this route.
    #[error("no route")]
    NoRoute,
    /// Members publish it, but none could be reached in time.
    #[error("{0}")]
    Unreachable(String),
}

/// Opens connections to route targets.
#[derive(Debug, Clone)]
pub struct Upstreams {
    me: NodeId,
    view: ViewRx,
    tunnels: Tunnels,
    connect_timeout: Duration,
    local_outstanding: Arc<AtomicUsize>,
    /// A member's terminator: its passthrough routes' targets take the decrypted requests.
    terminating: bool,
}

impl Upstreams {
    /// Upstreams of this node that reach only its own targets (no tunnels).
    pub fn local_only(me: NodeId, view: ViewRx, connect_timeout: Duration) -> Self {
        Self {
            terminating: true,
            ..Self::new(me, view, Tunnels::default(), connect_timeout)
        }
    }

    /// Upstreams of this node.
    pub fn new(me: NodeId, view: ViewRx, tunnels: Tunnels, connect_timeout: Duration) -> Self {
        Self {
            me,
            view,
            tunnels,
            connect_timeout,
            local_outstanding: Arc::default(),
            terminating: false,
        }
    }

    /// How the edges treat TLS for `host`, or `None` when no member publishes it.
    pub fn tls_of(&self, host: &str) -> Option<hearth_proto::route::RouteTls> {
        self.view.borrow().tls_of(host)
    }

    /// Connects `client` (which reached this edge at `edge`) to a target of `spec`.
    pub async fn connect(
        &self,
        spec: &RouteSpec,
        client: SocketAddr,
        edge: SocketAddr,
    ) -> Result<Upstream, UpstreamError> {
        let deadline = Instant::now() + self.connect_timeout;
        let candidates = self.candidates(spec)?;
        let mut reasons = Vec::new();
        for (node, target, proxy_protocol, tls) in candidates {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                reasons.push(format!("{}: no answer in time", node.short()));
                break;
            }
            if node == self.me && tls == RouteTls::Passthrough && !self.terminating {
                // Plain bytes for it on the edge's `:80` are this node's to answer (ACME),
                // never its target's; only decrypted requests go there.
                continue;
            }
            if node == self.me {
                let proxy = proxy_protocol.then_some((client, edge));
                match target::connect(&target, left, proxy).await {
                    Ok(tcp) => {
                        let guard = Outstanding::new(self.local_outstanding.clone());
                        return Ok(Upstream::Local(tcp, guard));
                    }
                    Err(reason) => reasons.push(reason),
                }
                continue;
            }
            match self.open_tunnel(&node, spec, client, edge, left).await {
                Ok(stream) => return Ok(Upstream::Tunnel(stream)),
                Err(reason) => reasons.push(reason),
            }
        }
        Err(UpstreamError::Unreachable(reasons.join("; ")))
    }

    /// Where a passthrough visitor's TLS bytes go: a tunnel stream to a member hosting the
    /// host, this node's own target when it terminates TLS itself (PROXY header first), or
    /// `None` when this node hosts the host and terminates the TLS here.
    pub async fn connect_passthrough(
        &self,
        spec: &RouteSpec,
        client: SocketAddr,
        edge: SocketAddr,
    ) -> Result<Option<Upstream>, UpstreamError> {
        let deadline = Instant::now() + self.connect_timeout;
        let mut reasons = Vec::new();
        for (node, target, proxy_protocol, _) in self.candidates(spec)? {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                reasons.push(format!("{}: no answer in time", node.short()));
                break;
            }
            if node == self.me && !proxy_protocol {
                return Ok(None);
            }
            if node == self.me {
                match target::connect(&target, left, Some((client, edge))).await {
                    Ok(tcp) => {
                        let guard = Outstanding::new(self.local_outstanding.clone());
                        return Ok(Some(Upstream::Local(tcp, guard)));
                    }
                    Err(reason) => reasons.push(reason),
                }
                continue;
            }
            match self.open_tunnel(&node, spec, client, edge, left).await {
                Ok(stream) => return Ok(Some(Upstream::Tunnel(stream))),
                Err(reason) => reasons.push(reason),
            }
        }
        Err(UpstreamError::Unreachable(reasons.join("; ")))
    }

    /// A stream to `node` for `spec`, within `left`; the error is the reason, for logs.
    async fn open_tunnel(
        &self,
        node: &NodeId,
        spec: &RouteSpec,
        client: SocketAddr,
        edge: SocketAddr,
        left: Duration,
    ) -> Result<TunnelStream, String> {
        let header = StreamHeaderV1 {
            spec: spec.clone(),
            client,
            edge,
        };
        match tokio::time::timeout(left, self.tunnels.open(node, header)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(OpenError::Tunnel {
                node: node.short(),
                reason: "no answer in time".into(),
            }
            .to_string()),
        }
    }

    /// Reachable hosting members of `spec`, least outstanding first: for a passthrough host,
    /// only those whose route passes TLS through.
    fn candidates(
        &self,
        spec: &RouteSpec,
    ) -> Result<Vec<(NodeId, String, bool, RouteTls)>, UpstreamError> {
        let view = self.view.borrow().clone();
        let passthrough = match spec {
            RouteSpec::Http { host } => view.tls_of(host) == Some(RouteTls::Passthrough),
            RouteSpec::Tcp { .. } => false,
        };
        let hosts: Vec<_> = view
            .hosts_of(spec)
            .filter(|r| !passthrough || r.tls == RouteTls::Passthrough)
            .collect();
        if hosts.is_empty() {
            return Err(UpstreamError::NoRoute);
        }
        let mut reachable: Vec<(usize, NodeId, String, bool, RouteTls)> = hosts
            .iter()
            .filter(|r| r.node == self.me || self.tunnels.is_connected(&r.node))
            .map(|r| {
                let load = if r.node == self.me {
                    self.local_outstanding.load(Ordering::Relaxed)
                } else {
                    self.tunnels.outstanding(&r.node)
                };
                (load, r.node, r.target.clone(), r.proxy_protocol, r.tls)
            })
            .collect();
        if reachable.is_empty() {
            let names: Vec<String> = hosts.iter().map(|r| r.node.short()).collect();
            return Err(UpstreamError::Unreachable(format!(
                "no tunnel to its hosting member{} {}",
                if names.len() == 1 { "" } else { "s" },
                names.join(", ")
            )));
        }
        reachable.sort_by_key(|(load, node, ..)| (*load, *node));
        Ok(reachable
            .into_iter()
            .map(|(_, node, target, proxy, tls)| (node, target, proxy, tls))
            .collect())
    }
}

/// A connection to a route's target, direct or through a tunnel.
#[derive(Debug)]
pub enum Upstream {
    /// This edge hosts the route.
    Local(TcpStream, Outstanding),
    /// Another member hosts it.
    Tunnel(TunnelStream),
}

impl AsyncRead for Upstream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Upstream::Local(tcp, _) => Pin::new(tcp).poll_read(cx, buf),
            Upstream::Tunnel(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Upstream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Upstream::Local(tcp, _) => Pin::new(tcp).poll_write(cx, buf),
            Upstream::Tunnel(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Upstream::Local(tcp, _) => Pin::new(tcp).poll_flush(cx),
            Upstream::Tunnel(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Upstream::Local(tcp, _) => Pin::new(tcp).poll_shutdown(cx),
            Upstream::Tunnel(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}
