//! The data plane's tunnels: one quinn endpoint per node, mutual TLS by node key, a
//! connection from every member to every edge, and one bi-stream per proxied connection.
//!
//! [`TunnelActor`] owns the endpoint: it accepts members, dials edges, closes revoked peers
//! and serves streams that edges open to this node. [`Tunnels`] is the handle the ingress
//! uses to open streams to hosting members. See `docs/data-plane.md`.

mod actor;
pub mod frame;
mod serve;
pub mod target;
pub mod tls;

pub use actor::{bind, TunnelActor, TunnelSettings};

use frame::{read_frame, write_frame, FrameIoError};
use hearth_proto::tunnel::{StreamHeader, StreamHeaderV1, StreamReply, StreamReplyV1};
use hearth_proto::NodeId;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Why the tunnel endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// The UDP socket could not be bound.
    #[error("cannot bind the tunnel endpoint on {addr}: {source}; change `tunnel.listen` or free the port")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// TLS set-up failed.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// Why a stream to a hosting member could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No live tunnel to that member.
    #[error("no tunnel to {0}")]
    NoTunnel(String),
    /// The tunnel failed while opening.
    #[error("tunnel to {node}: {reason}")]
    Tunnel {
        /// The member.
        node: String,
        /// What failed.
        reason: String,
    },
    /// The member serves no such route (any more).
    #[error("{0} no longer serves this route")]
    NoRoute(String),
    /// The member could not reach its target.
    #[error("{node}: {reason}")]
    Target {
        /// The member.
        node: String,
        /// Its reason.
        reason: String,
    },
}

impl OpenError {
    fn tunnel(node: &NodeId, reason: impl ToString) -> Self {
        OpenError::Tunnel {
            node: node.short(),
            reason: reason.to_string(),
        }
    }
}

/// The live connections to one member (two edges dial each other, so there can be more
/// than one) and the streams open to it across them.
#[derive(Debug, Clone, Default)]
struct Link {
    connections: Vec<Tunnel>,
    outstanding: Arc<AtomicUsize>,
}

/// One connection, and whether this node dialed it (to an edge) or accepted it.
#[derive(Debug, Clone)]
struct Tunnel {
    connection: quinn::Connection,
    dialed: bool,
}

/// The handle to the tunnels: which members are connected, how busy each is, and opening
/// streams to them. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Tunnels {
    links: Arc<Mutex<HashMap<NodeId, Link>>>,
}

impl Tunnels {
    /// Members with a live tunnel.
    pub fn connected(&self) -> Vec<NodeId> {
        let mut nodes: Vec<NodeId> = self
            .links
            .lock()
            .map(|l| l.keys().copied().collect())
            .unwrap_or_default();
        nodes.sort();
        nodes
    }

    /// Whether `node` has a live tunnel.
    pub fn is_connected(&self, node: &NodeId) -> bool {
        self.links.lock().is_ok_and(|l| l.contains_key(node))
    }

    /// Streams open to `node` right now (for least-outstanding balancing).
    pub fn outstanding(&self, node: &NodeId) -> usize {
        self.links
            .lock()
            .ok()
            .and_then(|l| l.get(node).map(|l| l.outstanding.load(Ordering::Relaxed)))
            .unwrap_or(0)
    }

    /// The newest connection to `node` and its outstanding-stream counter.
    fn link(&self, node: &NodeId) -> Option<(quinn::Connection, Arc<AtomicUsize>)> {
        let links = self.links.lock().ok()?;
        let link = links.get(node)?;
        Some((
            link.connections.last()?.connection.clone(),
            link.outstanding.clone(),
        ))
    }

    /// Registers a new connection to a member.
    fn insert(&self, node: NodeId, connection: quinn::Connection, dialed: bool) {
        if let Ok(mut links) = self.links.lock() {
            links
                .entry(node)
                .or_default()
                .connections
                .push(Tunnel { connection, dialed });
        }
    }

    /// Whether this node holds a connection it dialed to `node`.
    fn has_dialed(&self, node: &NodeId) -> bool {
        self.links.lock().is_ok_and(|l| {
            l.get(node)
                .is_some_and(|link| link.connections.iter().any(|t| t.dialed))
        })
    }

    /// Forgets a connection that closed.
    fn remove(&self, node: &NodeId, stable_id: usize) {
        if let Ok(mut links) = self.links.lock() {
            if let Some(link) = links.get_mut(node) {
                link.connections
                    .retain(|t| t.connection.stable_id() != stable_id);
                if link.connections.is_empty() {
                    links.remove(node);
                }
            }
        }
    }

    /// Closes the tunnels of every node `member` refuses (revoked members), and the ones this
    /// node dialed to nodes `edge` refuses (no longer edges); the ones a former edge dialed
    /// here are the former edge's to close.
    fn close_unless(&self, member: impl Fn(&NodeId) -> bool, edge: impl Fn(&NodeId) -> bool) {
        if let Ok(mut links) = self.links.lock() {
            links.retain(|node, link| {
                let (is_member, is_edge) = (member(node), edge(node));
                link.connections.retain(|tunnel| {
                    let reason: &[u8] = match (is_member, is_edge || !tunnel.dialed) {
                        (false, _) => b"not a member",
                        (true, false) => b"not an edge",
                        (true, true) => return true,
                    };
                    tunnel.connection.close(1u32.into(), reason);
                    false
                });
                !link.connections.is_empty()
            });
        }
    }

    /// Closes every tunnel to `node`; returns whether there was one.
    pub(crate) fn close(&self, node: &NodeId, reason: &'static [u8]) -> bool {
        let Ok(mut links) = self.links.lock() else {
            return false;
        };
        let Some(link) = links.remove(node) else {
            return false;
        };
        for tunnel in &link.connections {
            tunnel.connection.close(1u32.into(), reason);
        }
        true
    }

    /// Opens a stream to `node` for `header`, and waits for the member's answer. The caller
    /// bounds the wait.
    pub async fn open(
        &self,
        node: &NodeId,
        header: StreamHeaderV1,
    ) -> Result<TunnelStream, OpenError> {
        let (connection, outstanding) = self
            .link(node)
            .ok_or_else(|| OpenError::NoTunnel(node.short()))?;
        let guard = Outstanding::new(outstanding);
        let (mut send, mut recv) = connection
            .open_bi()
            .await
            .map_err(|e| OpenError::tunnel(node, e))?;
        write_frame(&mut send, &StreamHeader::V1(header))
            .await
            .map_err(|e| OpenError::tunnel(node, e))?;
        let reply: StreamReply = read_frame(&mut recv).await.map_err(|e| match e {
            FrameIoError::Io(e) => OpenError::tunnel(node, e),
            other => OpenError::tunnel(node, other),
        })?;
        match reply {
            StreamReply::V1(StreamReplyV1::Connected) => Ok(TunnelStream {
                send,
                recv,
                _guard: guard,
            }),
            StreamReply::V1(StreamReplyV1::NoRoute) => Err(OpenError::NoRoute(node.short())),
            StreamReply::V1(StreamReplyV1::TargetUnreachable { reason }) => {
                Err(OpenError::Target {
                    node: node.short(),
                    reason,
                })
            }
        }
    }
}

/// Counts a connection as outstanding on its member until dropped.
#[derive(Debug)]
pub struct Outstanding(Arc<AtomicUsize>);

impl Outstanding {
    /// Counts one more on `counter`.
    pub fn new(counter: Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A proxied connection through a tunnel, after the member said it reached the target.
#[derive(Debug)]
pub struct TunnelStream {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    _guard: Outstanding,
}

impl AsyncRead for TunnelStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.recv).poll_read(cx, buf)
    }
}

impl AsyncWrite for TunnelStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.send)
            .poll_write(cx, buf)
            .map_err(std::io::Error::from)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.send).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.send).poll_shutdown(cx)
    }
}
