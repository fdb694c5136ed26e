//! Request and response header rules of the HTTP proxy, as pure functions: the Host a
//! request is for (RFC 9112 §3.2), methods the edge refuses, request ids, hop-by-hop
//! headers, upgrades, and the forwarding headers.
//!
//! Forwarding headers a visitor sends are replaced, not appended to: the edge is the first
//! hop the services can trust, so whatever came before it is the visitor's claim.

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request};
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

/// Why a request is refused before it is routed (answered 400, never forwarded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadTarget {
    /// More than one Host header line (RFC 9112 §3.2).
    DuplicateHost,
    /// Neither a Host header nor an authority in the request target.
    NoHost,
    /// A Host or authority that is not a valid host name, or carries userinfo.
    InvalidHost,
    /// An absolute-form target whose scheme is not `http` or `https`.
    Scheme,
}

impl BadTarget {
    /// What the visitor is told (nothing of the edge's internals).
    pub fn explain(self) -> &'static str {
        match self {
            BadTarget::DuplicateHost => "The request has more than one Host header.",
            BadTarget::NoHost => {
                "The request names no host; send a Host header such as blog.example.com."
            }
            BadTarget::InvalidHost => "The request's Host is not a valid host name.",
            BadTarget::Scheme => "The request target's scheme is not http or https.",
        }
    }
}

/// The host a request is for, by RFC 9112 §3.2: the lowercase host name it is routed by
/// (port removed), and the Host value to forward when the request target carried an
/// authority (absolute form, or HTTP/2's `:authority`), which wins over any Host header
/// (§3.2.2). Exactly one Host header line is allowed; a request without an authority needs one.
pub fn request_target<B>(request: &Request<B>) -> Result<(String, Option<HeaderValue>), BadTarget> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let host_header = hosts.next();
    if hosts.next().is_some() {
        return Err(BadTarget::DuplicateHost);
    }
    if let Some(authority) = request.uri().authority() {
        if !matches!(
            request.uri().scheme_str(),
            None | Some("http") | Some("https")
        ) {
            return Err(BadTarget::Scheme);
        }
        if authority.as_str().contains('@') {
            return Err(BadTarget::InvalidHost);
        }
        let host = parse_host(authority.host()).ok_or(BadTarget::InvalidHost)?;
        let forward =
            HeaderValue::from_str(authority.as_str()).map_err(|_| BadTarget::InvalidHost)?;
        return Ok((host, Some(forward)));
    }
    let raw = host_header
        .ok_or(BadTarget::NoHost)?
        .to_str()
        .map_err(|_| BadTarget::InvalidHost)?;
    let name = match raw.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(']') && port.chars().all(|c| c.is_ascii_digit()) => {
            name
        }
        _ => raw,
    };
    Ok((parse_host(name).ok_or(BadTarget::InvalidHost)?, None))
}

fn parse_host(name: &str) -> Option<String> {
    hearth_proto::route::parse_host(name).ok()
}

/// Methods a reverse proxy does not forward: CONNECT asks the edge to open a tunnel to an
/// arbitrary authority (a forward proxy's job), TRACE would echo the request, with the
/// headers the edge adds, back to the visitor.
pub fn refused_method(method: &Method) -> bool {
    *method == Method::CONNECT || *method == Method::TRACE
}

/// The methods the edge forwards, for the `Allow` header of its 405 (any other method but
/// CONNECT and TRACE is forwarded too; these are the ones worth naming).
pub const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH";

/// The header that carries a request's id to the target and back to the visitor.
pub const REQUEST_ID: &str = "x-request-id";

/// A new request id: 16 random hex digits.
pub fn new_request_id() -> String {
    format!("{:016x}", rand::random::<u64>())
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

    fn host_of(request: &Request<()>) -> Result<String, BadTarget> {
        request_target(request).map(|(host, _)| host)
    }

    #[test]
    fn hosts_lose_their_port_and_case() {
        assert_eq!(
            host_of(&request("Blog.Example.com:8080")).as_deref(),
            Ok("blog.example.com")
        );
        assert_eq!(
            host_of(&request("blog.example.com")).as_deref(),
            Ok("blog.example.com")
        );
        assert_eq!(host_of(&request("bad_host")), Err(BadTarget::InvalidHost));
        let absolute = Request::builder()
            .uri("http://a.example.com/x")
            .body(())
            .unwrap();
        assert_eq!(host_of(&absolute).as_deref(), Ok("a.example.com"));
        let none = Request::builder().uri("/x").body(()).unwrap();
        assert_eq!(host_of(&none), Err(BadTarget::NoHost));
    }

    #[test]
    fn two_host_lines_are_refused_even_when_equal() {
        for second in ["b.example.com", "a.example.com"] {
            let request = Request::builder()
                .uri("/x")
                .header("host", "a.example.com")
                .header("host", second)
                .body(())
                .unwrap();
            assert_eq!(host_of(&request), Err(BadTarget::DuplicateHost));
        }
    }

    #[test]
    fn an_absolute_target_wins_over_host_and_replaces_it() {
        let request = Request::builder()
            .uri("http://B.example.com:8080/x")
            .header("host", "a.example.com")
            .body(())
            .unwrap();
        let (host, forward) = request_target(&request).unwrap();
        assert_eq!(host, "b.example.com");
        assert_eq!(forward.unwrap(), "B.example.com:8080");
        for bad in ["http://user@b.example.com/x", "ftp://b.example.com/x"] {
            let request = Request::builder().uri(bad).body(()).unwrap();
            assert!(request_target(&request).is_err(), "{bad}");
        }
    }

    #[test]
    fn connect_and_trace_are_refused_and_other_methods_pass() {
        assert!(refused_method(&Method::CONNECT) && refused_method(&Method::TRACE));
        for method in ["GET", "POST", "OPTIONS", "PROPFIND", "PATCH"] {
            assert!(!refused_method(
                &Method::from_bytes(method.as_bytes()).unwrap()
            ));
        }
        let id = new_request_id();
        assert!(
            id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "{id}"
        );
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
