//! Client probes a lab test runs on the client host, as a visitor of a published service:
//! HTTP requests and large bodies ([`http`]), HTTPS and WebSocket over TLS ([`https`]),
//! WebSocket echo ([`ws`]), slow and raw TCP
//! clients ([`raw`]), a non-member trying the edge's tunnel ([`intrude`]), and steady load
//! across several edges that measures failover ([`failover`]).

pub mod failover;
pub mod http;
pub mod https;
pub mod intrude;
pub mod raw;
pub mod ws;

use anyhow::{Context, Result};
use hyper::Uri;

/// Where a URL points: `host:port` to connect to (port 80 by default) and the path with its
/// query.
pub fn target(url: &str) -> Result<(String, String)> {
    let uri: Uri = url
        .parse()
        .with_context(|| format!("`{url}` is not a URL"))?;
    let authority = uri
        .authority()
        .with_context(|| format!("`{url}` has no host"))?;
    let port = authority.port_u16().unwrap_or(80);
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    Ok((format!("{}:{port}", authority.host()), path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_address_and_path() {
        let (addr, path) = target("http://198.18.0.11/bytes?n=5").unwrap();
        assert_eq!(
            (addr.as_str(), path.as_str()),
            ("198.18.0.11:80", "/bytes?n=5")
        );
        let (addr, path) = target("ws://127.0.0.1:8080").unwrap();
        assert_eq!((addr.as_str(), path.as_str()), ("127.0.0.1:8080", "/"));
    }
}
