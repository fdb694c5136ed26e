//! What a container asks for with its labels, and what `hearthctl publish --container` asks
//! for, as routes to resolve against the container's address. Pure functions.
//!
//! | label | meaning |
//! |---|---|
//! | `hearth.http.host` | publish this host name over HTTP |
//! | `hearth.http.port` | the container port serving it (default 80) |
//! | `hearth.http.tls` | `off`: plain HTTP only, no certificate (default `edge`: HTTPS at the edges) |
//! | `hearth.tcp.port` | a raw TCP port on the edges |
//! | `hearth.tcp.target` | the container port it leads to (default: the same number) |
//! | `hearth.tcp.proxy_protocol` | `true`: send a PROXY v2 header first |

use hearth_proto::route::{parse_host, parse_port, RouteSpec, RouteTls};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Label: HTTP host name.
pub const HTTP_HOST: &str = "hearth.http.host";
/// Label: container port for HTTP.
pub const HTTP_PORT: &str = "hearth.http.port";
/// Label: TLS mode of the HTTP route (`edge` or `off`).
pub const HTTP_TLS: &str = "hearth.http.tls";
/// Label: edge port of a TCP route.
pub const TCP_PORT: &str = "hearth.tcp.port";
/// Label: container port of a TCP route.
pub const TCP_TARGET: &str = "hearth.tcp.target";
/// Label: PROXY protocol v2 for the TCP route.
pub const TCP_PROXY: &str = "hearth.tcp.proxy_protocol";

/// A route a container asks for, before its address is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRoute {
    /// What the edges match.
    pub spec: RouteSpec,
    /// The container's name (without Docker's leading `/`) or id.
    pub container: String,
    /// The port inside the container.
    pub port: u16,
    /// Send a PROXY v2 header (TCP routes).
    pub proxy_protocol: bool,
    /// HTTP routes: HTTPS at the edges or plain HTTP only.
    #[serde(default)]
    pub tls: RouteTls,
}

/// The routes `labels` ask for; label values that make no sense are reported, not guessed.
pub fn from_labels(
    container: &str,
    labels: &HashMap<String, String>,
) -> (Vec<ContainerRoute>, Vec<String>) {
    let mut routes = Vec::new();
    let mut problems = Vec::new();
    let port_of =
        |label: &str, default: Option<u16>, problems: &mut Vec<String>| match labels.get(label) {
            None => default,
            Some(text) => match parse_port(text) {
                Ok(port) => Some(port),
                Err(e) => {
                    problems.push(format!("{container}: label {label}: {e}"));
                    None
                }
            },
        };
    if let Some(host) = labels.get(HTTP_HOST) {
        let tls = match labels.get(HTTP_TLS).map(|v| v.parse::<RouteTls>()) {
            None => Some(RouteTls::Edge),
            Some(Ok(tls)) => Some(tls),
            Some(Err(e)) => {
                problems.push(format!("{container}: label {HTTP_TLS}: {e}"));
                None
            }
        };
        match parse_host(host) {
            Ok(host) => {
                if let (Some(port), Some(tls)) = (port_of(HTTP_PORT, Some(80), &mut problems), tls)
                {
                    routes.push(ContainerRoute {
                        spec: RouteSpec::Http { host },
                        container: container.to_string(),
                        port,
                        proxy_protocol: false,
                        tls,
                    });
                }
            }
            Err(e) => problems.push(format!("{container}: label {HTTP_HOST}: {e}")),
        }
    }
    if labels.contains_key(TCP_PORT) {
        if let Some(edge_port) = port_of(TCP_PORT, None, &mut problems) {
            if let Some(port) = port_of(TCP_TARGET, Some(edge_port), &mut problems) {
                routes.push(ContainerRoute {
                    spec: RouteSpec::Tcp { port: edge_port },
                    container: container.to_string(),
                    port,
                    proxy_protocol: labels.get(TCP_PROXY).is_some_and(|v| v == "true"),
                    tls: RouteTls::Edge,
                });
            }
        }
    }
    (routes, problems)
}

/// Whether `text` can name a Docker container (its name rule, or a hex id).
pub fn valid_container_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && text.len() <= 128
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn http_and_tcp_labels_become_routes() {
        let (routes, problems) = from_labels(
            "gitea",
            &labels(&[
                (HTTP_HOST, "Git.Example.com"),
                (HTTP_PORT, "3000"),
                (TCP_PORT, "2222"),
                (TCP_TARGET, "22"),
            ]),
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            routes,
            vec![
                ContainerRoute {
                    spec: RouteSpec::Http {
                        host: "git.example.com".into()
                    },
                    container: "gitea".into(),
                    port: 3000,
                    proxy_protocol: false,
                    tls: RouteTls::Edge,
                },
                ContainerRoute {
                    spec: RouteSpec::Tcp { port: 2222 },
                    container: "gitea".into(),
                    port: 22,
                    proxy_protocol: false,
                    tls: RouteTls::Edge,
                },
            ]
        );
    }

    #[test]
    fn defaults_apply_and_bad_values_are_reported() {
        let (routes, _) = from_labels("ghost", &labels(&[(HTTP_HOST, "blog.example.com")]));
        assert_eq!(routes[0].port, 80);
        let (routes, _) = from_labels("ssh", &labels(&[(TCP_PORT, "2222")]));
        assert_eq!(routes[0].port, 2222);
        let (routes, problems) = from_labels(
            "bad",
            &labels(&[(HTTP_HOST, "not a host"), (TCP_PORT, "99999")]),
        );
        assert!(routes.is_empty());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains(HTTP_HOST) && problems[1].contains(TCP_PORT));
        let (routes, _) = from_labels("plain", &labels(&[("other", "x")]));
        assert!(routes.is_empty());
        let (routes, _) = from_labels(
            "http",
            &labels(&[(HTTP_HOST, "a.example.com"), (HTTP_TLS, "off")]),
        );
        assert_eq!(routes[0].tls, RouteTls::Off);
        let (routes, _) = from_labels(
            "blind",
            &labels(&[(HTTP_HOST, "a.example.com"), (HTTP_TLS, "passthrough")]),
        );
        assert_eq!(routes[0].tls, RouteTls::Passthrough);
        let (routes, problems) = from_labels(
            "http",
            &labels(&[(HTTP_HOST, "a.example.com"), (HTTP_TLS, "maybe")]),
        );
        assert!(
            routes.is_empty() && problems[0].contains(HTTP_TLS),
            "{problems:?}"
        );
    }

    #[test]
    fn container_names_follow_dockers_rule() {
        assert!(valid_container_name("ghost_1.blog-2"));
        assert!(
            !valid_container_name("")
                && !valid_container_name("-x")
                && !valid_container_name("a b")
        );
    }
}
