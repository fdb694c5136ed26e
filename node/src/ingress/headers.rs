//! Request and response header rules of the HTTP proxy, as pure functions: the Host a
//! request is for, hop-by-hop headers, upgrades, and the forwarding headers.
//!
//! Forwarding headers a visitor sends are replaced, not appended to: the edge is the first
//! hop the services can trust, so whatever came before it is the visitor's claim.

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::Request;
use std::net::{IpAddr, SocketAddr};

/// Headers that describe one hop and are never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// The lowercase host a request is for, from its Host header or absolute URI, port removed.
pub fn request_host<B>(request: &Request<B>) -> Option<String> {
    let raw = match request.headers().get(header::HOST) {
        Some(value) => value.to_str().ok()?.to_string(),
        None => request.uri().host()?.to_string(),
    };
    let host = match raw.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(']') && port.chars().all(|c| c.is_ascii_digit()) => {
            name.to_string()
        }
        _ => raw,
    };
    hearth_proto::route::parse_host(&host).ok()
}

/// The protocol a request asks to switch to (`Connection: upgrade` plus `Upgrade`).
pub fn upgrade_of(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    if asks {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    }
}

/// Removes hop-by-hop headers, including those the Connection header names; keeps an
/// upgrade (`Connection: upgrade` and `Upgrade`) when `upgrade` is given.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: Option<HeaderValue>) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol);
    }
}

/// Sets `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host` and `Forwarded`.
pub fn set_forwarded(headers: &mut HeaderMap, client: SocketAddr, host: &str, proto: &str) {
    let ip = client.ip();
    let node = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"[{v6}]\""),
    };
    let set = |headers: &mut HeaderMap, name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set(headers, "x-forwarded-for", ip.to_string());
    set(headers, "x-forwarded-proto", proto.to_string());
    set(headers, "x-forwarded-host", host.to_string());
    set(
        headers,
        "forwarded",
        format!("for={node};host={host};proto={proto}"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(host: &str) -> Request<()> {
        Request::builder()
            .uri("/x")
            .header("host", host)
            .body(())
            .unwrap()
    }

    #[test]
    fn hosts_lose_their_port_and_case() {
        assert_eq!(
            request_host(&request("Blog.Example.com:8080")).as_deref(),
            Some("blog.example.com")
        );
        assert_eq!(
            request_host(&request("blog.example.com")).as_deref(),
            Some("blog.example.com")
        );
        assert_eq!(request_host(&request("bad_host")), None);
        let absolute = Request::builder()
            .uri("http://a.example.com/x")
            .body(())
            .unwrap();
        assert_eq!(request_host(&absolute).as_deref(), Some("a.example.com"));
    }

    #[test]
    fn hop_by_hop_headers_go_and_upgrades_stay() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret, Upgrade"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("upgrade", HeaderValue::from_static("websocket"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        let upgrade = upgrade_of(&headers);
        assert_eq!(upgrade.as_ref().unwrap(), "websocket");
        strip_hop_by_hop(&mut headers, upgrade);
        assert!(headers.get("x-secret").is_none() && headers.get("keep-alive").is_none());
        assert_eq!(headers["connection"], "upgrade");
        assert_eq!(headers["upgrade"], "websocket");
        assert_eq!(headers["x-kept"], "1");
        strip_hop_by_hop(&mut headers, None);
        assert!(headers.get("upgrade").is_none() && headers.get("connection").is_none());
    }

    #[test]
    fn forwarding_headers_replace_what_the_visitor_sent() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        set_forwarded(
            &mut headers,
            "198.18.0.50:4000".parse().unwrap(),
            "a.example.com",
            "http",
        );
        assert_eq!(headers["x-forwarded-for"], "198.18.0.50");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "a.example.com");
        assert_eq!(
            headers["forwarded"],
            "for=198.18.0.50;host=a.example.com;proto=http"
        );
        set_forwarded(
            &mut headers,
            "[2001:db8::1]:4000".parse().unwrap(),
            "a.example.com",
            "http",
        );
        assert_eq!(
            headers["forwarded"],
            "for=\"[2001:db8::1]\";host=a.example.com;proto=http"
        );
    }
}
