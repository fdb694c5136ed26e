//! Choosing a hosting member for a route and opening the connection to its target: locally
//! when this edge hosts the route itself, through the member's tunnel otherwise.
//!
//! Candidates are the route's hosting members that are reachable (this node, or a member with
//! a live tunnel), least outstanding streams first; one that fails before any payload (no
//! route, target down) is skipped for the next, all within one connect deadline.

use crate::tunnel::{target, OpenError, Outstanding, TunnelStream, Tunnels};
use crate::view::ViewRx;
use hearth_proto::route::RouteSpec;
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
}

impl Upstreams {
    /// Upstreams of this node.
    pub fn new(me: NodeId, view: ViewRx, tunnels: Tunnels, connect_timeout: Duration) -> Self {
        Self {
            me,
            view,
            tunnels,
            connect_timeout,
            local_outstanding: Arc::default(),
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
        for (node, target, proxy_protocol) in candidates {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                reasons.push(format!("{}: no answer in time", node.short()));
                break;
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
            let header = StreamHeaderV1 {
                spec: spec.clone(),
                client,
                edge,
            };
            match tokio::time::timeout(left, self.tunnels.open(&node, header)).await {
                Ok(Ok(stream)) => return Ok(Upstream::Tunnel(stream)),
                Ok(Err(e)) => reasons.push(e.to_string()),
                Err(_) => reasons.push(
                    OpenError::Tunnel {
                        node: node.short(),
                        reason: "no answer in time".into(),
                    }
                    .to_string(),
                ),
            }
        }
        Err(UpstreamError::Unreachable(reasons.join("; ")))
    }

    /// Reachable hosting members of `spec`, least outstanding first.
    fn candidates(&self, spec: &RouteSpec) -> Result<Vec<(NodeId, String, bool)>, UpstreamError> {
        let view = self.view.borrow().clone();
        let hosts: Vec<_> = view.hosts_of(spec).collect();
        if hosts.is_empty() {
            return Err(UpstreamError::NoRoute);
        }
        let mut reachable: Vec<(usize, NodeId, String, bool)> = hosts
            .iter()
            .filter(|r| r.node == self.me || self.tunnels.is_connected(&r.node))
            .map(|r| {
                let load = if r.node == self.me {
                    self.local_outstanding.load(Ordering::Relaxed)
                } else {
                    self.tunnels.outstanding(&r.node)
                };
                (load, r.node, r.target.clone(), r.proxy_protocol)
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
        reachable.sort_by_key(|(load, node, _, _)| (*load, *node));
        Ok(reachable
            .into_iter()
            .map(|(_, node, target, proxy)| (node, target, proxy))
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
