//! Edge ingress: the HTTP reverse proxy, the raw TCP route listeners and the authoritative DNS
//! server ([`crate::dns`]), fed by the [`crate::view::MeshView`] and reaching hosting members
//! through [`crate::tunnel::Tunnels`].
//!
//! [`IngressActor`] runs on every node that may become an edge. While the election makes this
//! node an edge it binds the HTTP listener, the DNS server (when `dns.zone` is set) and one
//! listener per TCP route port; when the node stops being an edge it closes them all.

mod actor;
mod headers;
pub mod hello;
pub mod http;
pub mod https;
pub mod idle;
mod pages;
mod passthrough;
mod tcp;
pub mod terminate;
pub mod upstream;

pub use actor::{DnsSettings, IngressActor, IngressSettings};
pub use http::HttpSettings;
pub use https::EdgeTls;
pub use terminate::Terminator;
pub use upstream::Upstreams;

use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Why ingress could not start.
#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    /// The HTTP or HTTPS listener could not be bound.
    #[error("cannot listen for {what} on {addr}: {source}; change `{field}`, free the port, or run as root for ports below 1024")]
    Bind {
        /// `HTTP` or `HTTPS`.
        what: &'static str,
        /// The config field that sets it.
        field: &'static str,
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The DNS server could not start.
    #[error(transparent)]
    Dns(#[from] crate::dns::DnsError),
}

/// Binds the HTTP listener; a failure names the address and the way out.
pub async fn bind_http(addr: &str) -> Result<TcpListener, IngressError> {
    bind_listener("HTTP", "ingress.http_listen", addr).await
}

/// Binds a listener for `what`, set by config `field`; a failure names both.
pub async fn bind_listener(
    what: &'static str,
    field: &'static str,
    addr: &str,
) -> Result<TcpListener, IngressError> {
    let bind_error = |source| IngressError::Bind {
        what,
        field,
        addr: addr.to_string(),
        source,
    };
    let parsed = crate::addrs::socket_addr(addr).map_err(bind_error)?;
    TcpListener::bind(parsed).await.map_err(bind_error)
}

/// Accepts connections on `listener` until `cancel` fires, handing each to `serve`. An accept
/// error (out of file descriptors and the like) backs off instead of spinning.
pub async fn accept_until(
    listener: &TcpListener,
    what: &'static str,
    cancel: &CancellationToken,
    mut serve: impl FnMut(TcpStream, SocketAddr),
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => serve(tcp, peer),
                Err(e) => {
                    warn!(error = %e, "{what} accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}
