//! Edge ingress: the HTTP reverse proxy, the raw TCP route listeners and the authoritative DNS
//! server ([`crate::dns`]), fed by the [`crate::view::MeshView`] and reaching hosting members
//! through [`crate::tunnel::Tunnels`].
//!
//! [`IngressActor`] runs on every node that may become an edge. While the election makes this
//! node an edge it binds the HTTP listener, the DNS server (when `dns.zone` is set) and one
//! listener per TCP route port; when the node stops being an edge it closes them all.

mod actor;
mod headers;
pub mod http;
pub mod idle;
mod pages;
mod tcp;
pub mod upstream;

pub use actor::{DnsSettings, IngressActor, IngressSettings};
pub use http::HttpSettings;
pub use upstream::Upstreams;

use tokio::net::TcpListener;

/// Why ingress could not start.
#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    /// The HTTP listener could not be bound.
    #[error("cannot listen for HTTP on {addr}: {source}; change `ingress.http_listen`, free the port, or run as root for ports below 1024")]
    Bind {
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
    let bind_error = |source| IngressError::Bind {
        addr: addr.to_string(),
        source,
    };
    let parsed = crate::addrs::socket_addr(addr).map_err(bind_error)?;
    TcpListener::bind(parsed).await.map_err(bind_error)
}
