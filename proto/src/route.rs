//! Routes: which public name or port leads to which target on which member.
//!
//! Each member publishes its own route for a host, so several members can serve one host; the
//! record key is `http/<host>@<node>` or `tcp/<port>@<node>`. Unpublishing writes a tombstone
//! (a route without target) that replicates like any write and is purged after a TTL.

use crate::id::NodeId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest host name (RFC 1035).
pub const MAX_HOST_LEN: usize = 253;

/// What an edge matches a connection on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteSpec {
    /// HTTP(S) by Host header or SNI.
    Http {
        /// Lowercase host name.
        host: String,
    },
    /// A raw TCP port on the edges.
    Tcp {
        /// Edge port.
        port: u16,
    },
}

impl fmt::Display for RouteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteSpec::Http { host } => f.write_str(host),
            RouteSpec::Tcp { port } => write!(f, "tcp/{port}"),
        }
    }
}

impl RouteSpec {
    /// Checks a spec as a record must hold it: a valid lowercase host, or a port in 1..=65535.
    pub fn check(&self) -> Result<(), RouteError> {
        match self {
            RouteSpec::Http { host } if parse_host(host)? != *host => {
                Err(RouteError::Host(host.clone(), "must be lowercase"))
            }
            RouteSpec::Tcp { port: 0 } => Err(RouteError::Port("0".into())),
            _ => Ok(()),
        }
    }
}

/// A route as stored: published (`target` set) or withdrawn (a tombstone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// What the edges match.
    pub spec: RouteSpec,
    /// The member that connects to the target.
    pub node: NodeId,
    /// `addr:port` as the hosting member resolves it; `None` once unpublished.
    pub target: Option<String>,
    /// TCP routes: send a PROXY protocol v2 header to the target first, so it sees the
    /// visitor's address.
    pub proxy_protocol: bool,
    /// The Docker container the hosting member follows for this route (its labels, or
    /// `hearthctl publish --container`); the member rewrites or withdraws the route as the
    /// container starts, moves, fails its health check or stops.
    pub container: Option<String>,
    /// HTTP routes: how the edges treat TLS for this host (ignored for TCP routes).
    pub tls: RouteTls,
}

/// How the edges treat TLS for an HTTP route.
///
/// The wire uses the variant index, so variants are appended, never reordered; `Edge` is index
/// 0 and the default.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum RouteTls {
    /// HTTPS terminated at the edges with a certificate they share (ACME), and `:80`
    /// redirects to it once the certificate exists. The default.
    #[default]
    Edge,
    /// Plain HTTP only: no certificate is ordered and `:80` serves the route as it is
    /// (`hearthctl publish --http-only`, label `hearth.http.tls=off`).
    Off,
    /// TLS passes through the edges untouched (they read only the ClientHello's SNI) and the
    /// hosting member terminates it with a certificate it obtains and keeps itself, so no
    /// edge can read the traffic (`hearthctl publish --tls passthrough`, label
    /// `hearth.http.tls=passthrough`). `:80` redirects to HTTPS, except ACME HTTP-01
    /// requests, which are forwarded to the member.
    Passthrough,
}

impl fmt::Display for RouteTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RouteTls::Edge => "edge",
            RouteTls::Off => "off",
            RouteTls::Passthrough => "passthrough",
        })
    }
}

impl std::str::FromStr for RouteTls {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "edge" | "on" => Ok(RouteTls::Edge),
            "off" => Ok(RouteTls::Off),
            "passthrough" => Ok(RouteTls::Passthrough),
            other => Err(format!(
                "`{other}` is not a TLS mode: use `edge` (HTTPS at the edges, the default), `passthrough` (TLS ends on the hosting member, the edges see only ciphertext) or `off` (plain HTTP only)"
            )),
        }
    }
}

impl Route {
    /// The record key: one entry per (spec, hosting node).
    pub fn key(spec: &RouteSpec, node: &NodeId) -> String {
        match spec {
            RouteSpec::Http { host } => format!("http/{host}@{node}"),
            RouteSpec::Tcp { port } => format!("tcp/{port}@{node}"),
        }
    }

    /// Checks every field, so a record with a bad route is refused like a bad signature.
    pub fn check(&self) -> Result<(), RouteError> {
        self.spec.check()?;
        if let Some(target) = &self.target {
            parse_target(target)?;
        }
        Ok(())
    }
}

/// Why a host, port or target was refused. Messages say what a valid one looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum RouteError {
    /// Not a valid DNS host name.
    #[error("`{0}` is not a valid host name: {1} (e.g. blog.example.com)")]
    Host(String, &'static str),
    /// Not a port in 1..=65535.
    #[error("`{0}` is not a valid port: use 1-65535")]
    Port(String),
    /// Not `address:port`.
    #[error("`{0}` is not a valid target: {1} (e.g. 127.0.0.1:2368 or gitea:3000)")]
    Target(String, &'static str),
}

/// Validates and lowercases a host name.
pub fn parse_host(text: &str) -> Result<String, RouteError> {
    let host = text.trim().trim_end_matches('.').to_ascii_lowercase();
    let bad = |why| Err(RouteError::Host(text.to_string(), why));
    if host.is_empty() {
        return bad("it is empty");
    }
    if host.len() > MAX_HOST_LEN {
        return bad("it is longer than 253 characters");
    }
    for label in host.split('.') {
        if label.is_empty() {
            return bad("it has an empty label");
        }
        if label.len() > 63 {
            return bad("a label is longer than 63 characters");
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return bad("only letters, digits, '-' and '.' are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label starts or ends with '-'");
        }
    }
    Ok(host)
}

/// Validates a port given as text.
pub fn parse_port(text: &str) -> Result<u16, RouteError> {
    match text.trim().parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(RouteError::Port(text.to_string())),
    }
}

/// Validates a target `address:port` (IPv4, `[IPv6]`, or a host name).
pub fn parse_target(text: &str) -> Result<String, RouteError> {
    let text = text.trim();
    let bad = |why| Err(RouteError::Target(text.to_string(), why));
    if let Ok(addr) = text.parse::<std::net::SocketAddr>() {
        if addr.port() == 0 {
            return bad("the port must be 1-65535");
        }
        return Ok(text.to_string());
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return bad("it has no :port");
    };
    if parse_port(port).is_err() {
        return bad("the port must be 1-65535");
    }
    if host.starts_with('[') || host.contains(':') {
        return bad("an IPv6 address must be written [addr]:port");
    }
    if parse_host(host).is_err() {
        return bad("the address is neither an IP address nor a host name");
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeKey;

    #[test]
    fn hosts_are_checked_and_lowercased() {
        assert_eq!(parse_host("Blog.Example.COM.").unwrap(), "blog.example.com");
        for bad in ["", "a..b", "-a.b", "a_b.c", "a b", &"x".repeat(64)] {
            assert!(parse_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn targets_and_ports_are_checked() {
        for good in [
            "127.0.0.1:2368",
            "[::1]:80",
            "gitea:3000",
            "db.internal:5432",
        ] {
            assert!(parse_target(good).is_ok(), "{good}");
        }
        for bad in ["127.0.0.1", "127.0.0.1:0", "host:99999", "::1:80", "a b:80"] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_port("22").unwrap(), 22);
        assert!(parse_port("0").is_err() && parse_port("x").is_err());
    }

    #[test]
    fn keys_name_spec_and_node() {
        let node = NodeKey::generate().id();
        let key = Route::key(&RouteSpec::Http { host: "a.b".into() }, &node);
        assert_eq!(key, format!("http/a.b@{node}"));
        let route = Route {
            spec: RouteSpec::Http { host: "A.b".into() },
            node,
            target: None,
            proxy_protocol: false,
            container: None,
            tls: RouteTls::Edge,
        };
        assert!(
            route.check().is_err(),
            "upper case must not reach the store"
        );
    }
}
