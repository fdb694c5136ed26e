//! Answers turned into text for people.
//!
//! Pure functions of the answer and, where ages are shown, `now` in Unix milliseconds, so every
//! output is testable without a clock or a daemon. Scripts should use `--json` instead: this
//! text may change between versions.
//!
//! Names, addresses and reason labels come from other members' signed records, which only
//! bound their length; [`clean`] keeps them from smuggling terminal escape sequences or extra
//! lines into the output.

mod certs;
mod edges;

pub use certs::{cert_requested, certs};
pub use edges::edges;

use crate::duration::{compact, human};
use hearth_proto::api::{InviteCreatedV1, MemberRowV1, PathV1, RouteRowV1, StatusV1};
use hearth_proto::route::RouteSpec;
use hearth_proto::NodeId;

/// Separator between table columns.
const GAP: &str = "  ";

/// Hex digits of the store digest shown by `status`: enough to compare two nodes by eye.
const DIGEST_DIGITS: usize = 16;

/// `text` with control characters (escape sequences, newlines, tabs) replaced by `?`, so a
/// value chosen by another member prints as one inert cell.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// An aligned table: a header row, then one line per row, columns padded to their widest cell
/// and separated by two spaces. The last column is not padded and no line ends in spaces.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            let len = cell.chars().count();
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(len),
                None => widths.push(len),
            }
        }
    }
    let line = |cells: &[&str]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                out.push_str(GAP);
            }
            out.push_str(cell);
            if i + 1 < cells.len() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(headers);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        out.push_str(&line(&cells));
    }
    out
}

/// How long ago `then_ms` was: `now` under a second, `12s ago`, `3m ago`, `2h ago`, or `never`.
pub fn ago(then_ms: Option<u64>, now_ms: u64) -> String {
    match then_ms {
        None => "never".into(),
        Some(then) => match now_ms.saturating_sub(then) / 1000 {
            0 => "now".into(),
            secs => format!("{} ago", compact(secs)),
        },
    }
}

/// `hearthctl status`: one `key: value` line per fact, values aligned.
pub fn status(s: &StatusV1) -> String {
    let role = match s.role {
        Some(role) => role.to_string(),
        None => "REVOKED (this node was removed from the mesh)".into(),
    };
    let rejected = if s.rejected_records.is_empty() {
        "none".to_string()
    } else {
        s.rejected_records
            .iter()
            .map(|(reason, n)| format!("{}: {n}", clean(reason)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let peers = match s.peers_connected.len() {
        0 => "none".to_string(),
        n => format!("{n} ({})", short_ids(&s.peers_connected)),
    };
    let docker = if s.docker.available {
        format!(
            "available ({}), {} container route{}",
            clean(&s.docker.detail),
            s.docker.routes,
            if s.docker.routes == 1 { "" } else { "s" }
        )
    } else {
        format!("unavailable: {}", clean(&s.docker.detail))
    };
    let dp = &s.data_plane;
    let tunnels = match dp.tunnels.len() {
        0 => "none".to_string(),
        n => format!("{n} ({})", short_ids(&dp.tunnels)),
    };
    let ingress = match (dp.edge, &dp.ingress_error) {
        (true, Some(error)) => format!("edge, but not serving: {}", clean(error)),
        (true, None) => {
            let ports: Vec<String> = dp.tcp_ports.iter().map(|p| format!("tcp/{p}")).collect();
            format!(
                "edge; HTTP on {}{}{}{}",
                clean(dp.http_listen.as_deref().unwrap_or("?")),
                dp.https_listen
                    .as_deref()
                    .map(|h| format!(", HTTPS on {}", clean(h)))
                    .unwrap_or_default(),
                dp.dns_listen
                    .as_deref()
                    .map(|d| format!(", DNS on {}", clean(d)))
                    .unwrap_or_default(),
                if ports.is_empty() {
                    String::new()
                } else {
                    format!(", {}", ports.join(", "))
                }
            )
        }
        (false, _) => "not an edge (see `hearthctl edges`)".to_string(),
    };
    let lines = [
        ("node", format!("{} ({})", clean(&s.name), s.node.short())),
        (
            "mesh",
            format!("{} ({})", clean(&s.mesh_name), s.mesh.short()),
        ),
        ("role", role),
        ("listening on", list_or(&s.listen_addrs, ", ", "none")),
        ("members", s.members.to_string()),
        ("peers connected", peers),
        ("ingress", ingress),
        (
            "tunnel endpoint",
            clean(dp.tunnel_listen.as_deref().unwrap_or("none")),
        ),
        ("tunnels", tunnels),
        ("open streams", dp.open_streams.to_string()),
        ("docker", docker),
        ("records", s.records.to_string()),
        (
            "store digest",
            clean(&s.digest.chars().take(DIGEST_DIGITS).collect::<String>()),
        ),
        ("rejected records", rejected),
        ("store writes", s.store_writes.to_string()),
        ("refused connections", s.refused_connections.to_string()),
        ("uptime", human(s.uptime_secs)),
        ("version", clean(&s.version)),
    ];
    let width = lines.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    let mut out: String = lines
        .iter()
        .map(|(key, value)| format!("{:<width$} {value}\n", format!("{key}:")))
        .collect();
    if !dp.recent_failures.is_empty() {
        out.push_str("\nrecent failed requests (oldest first):\n");
        let rows: Vec<Vec<String>> = dp
            .recent_failures
            .iter()
            .map(|f| {
                vec![
                    ago(Some(f.at_ms), s.clock_ms),
                    f.status.to_string(),
                    clean(&f.request_id),
                    clean(&f.host),
                    clean(&f.reason),
                ]
            })
            .collect();
        out.push_str(&table(
            &["WHEN", "STATUS", "REQUEST ID", "HOST", "REASON"],
            rows,
        ));
    }
    out
}

/// `hearthctl members`: NAME, ID, ROLE, ADDRESSES, CONNECTED (direct, or relayed via which
/// edge), LAST SEEN.
pub fn members(rows: &[MemberRowV1], now_ms: u64) -> String {
    let body = rows
        .iter()
        .map(|r| {
            let connected = if r.is_self {
                "self".to_string()
            } else if !r.connected {
                "no".to_string()
            } else {
                let rtt = r
                    .rtt_us
                    .map(|us| format!(", {:.1} ms", us as f64 / 1000.0))
                    .unwrap_or_default();
                match &r.path {
                    Some(PathV1::Direct) => format!("direct{rtt}"),
                    Some(PathV1::Relayed { via_name, .. }) => {
                        format!("relayed via {}{rtt}", clean(via_name))
                    }
                    None => "yes".to_string(),
                }
            };
            // A live connection is being seen right now, whenever it was opened.
            let last_seen = if r.is_self || r.connected {
                "now".to_string()
            } else {
                ago(r.last_seen_ms, now_ms)
            };
            vec![
                clean(&r.name),
                r.node.short(),
                r.role.to_string(),
                addresses(&r.addrs),
                connected,
                last_seen,
            ]
        })
        .collect();
    table(
        &["NAME", "ID", "ROLE", "ADDRESSES", "CONNECTED", "LAST SEEN"],
        body,
    )
}

/// A member's addresses for the table: the direct ones, then how many go through relays
/// (those are long and say little; `--json` has them all).
fn addresses(addrs: &[String]) -> String {
    let (relayed, direct): (Vec<&String>, Vec<&String>) = addrs
        .iter()
        .partition(|a| hearth_proto::addr::is_relayed(a));
    let direct: Vec<String> = direct.into_iter().cloned().collect();
    let mut text = list_or(&direct, ",", "-");
    if !relayed.is_empty() {
        text.push_str(&format!(" (+{} relayed)", relayed.len()));
    }
    text
}

/// `hearthctl invite`: the code alone on the first line (so `| head -1` gets it), then what it
/// grants and what to do with it.
pub fn invite(created: &InviteCreatedV1, now_ms: u64) -> String {
    // Round up: the daemon set the expiry a few milliseconds ago, and `--ttl 1h` should read
    // "expires in 1h", not "59m 59s".
    let left_secs = created.expires_ms.saturating_sub(now_ms).div_ceil(1000);
    let expires = if left_secs == 0 {
        "already expired".to_string()
    } else {
        format!("expires in {}", human(left_secs))
    };
    let uses = match created.uses {
        1 => "1 use".to_string(),
        n => format!("{n} uses"),
    };
    format!(
        "{code}\n\nrole {role}, {uses}, {expires}\n\
         inviter addresses in the code: {addrs}\n\
         On the new machine run: hearthd join {code}\n",
        code = created.code,
        role = created.role,
        addrs = list_or(&created.addrs, ", ", "none"),
    )
}

/// `hearthctl revoke`.
pub fn revoked(node: &NodeId, name: &str) -> String {
    format!(
        "revoked {} ({}); it is being disconnected from every member\n",
        clean(name),
        node.short()
    )
}

/// `hearthctl dial`.
pub fn dialing(addr: &str) -> String {
    format!("dialing {}\n", clean(addr))
}

/// `hearthctl routes`: ROUTE, NODE, TARGET, AGE, sorted by route then node name; a hint when
/// there are none.
pub fn routes(rows: &[RouteRowV1], now_ms: u64) -> String {
    if rows.is_empty() {
        return "no routes; publish one with `hearthctl publish HOST --to ADDR:PORT`\n".into();
    }
    let mut sorted: Vec<&RouteRowV1> = rows.iter().collect();
    sorted.sort_by(|a, b| (&a.spec, &a.node_name, a.node).cmp(&(&b.spec, &b.node_name, b.node)));
    let body = sorted
        .into_iter()
        .map(|r| {
            vec![
                clean(&r.spec.to_string()),
                node_label(&r.node, &r.node_name),
                target_label(r),
                compact(now_ms.saturating_sub(r.updated_ms) / 1000),
            ]
        })
        .collect();
    table(&["ROUTE", "NODE", "TARGET", "AGE"], body)
}

/// A route's target with what it follows and how it is reached.
fn target_label(r: &RouteRowV1) -> String {
    let mut label = clean(&r.target);
    if let Some(container) = &r.container {
        label.push_str(&format!(" (container {})", clean(container)));
    }
    if r.proxy_protocol {
        label.push_str(" (PROXY v2)");
    }
    use hearth_proto::route::RouteTls;
    match (&r.spec, r.tls) {
        (RouteSpec::Http { .. }, RouteTls::Off) => label.push_str(" (HTTP only)"),
        (RouteSpec::Http { .. }, RouteTls::Passthrough) if r.proxy_protocol => {
            label.push_str(" (TLS passthrough to the target, which holds the key)")
        }
        (RouteSpec::Http { .. }, RouteTls::Passthrough) => {
            label.push_str(" (TLS passthrough; the key stays on this member)")
        }
        _ => {}
    }
    label
}

/// `hearthctl publish`.
pub fn published(row: &RouteRowV1) -> String {
    format!(
        "published {} → {} on {}; every member learns it within seconds\n",
        clean(&row.spec.to_string()),
        clean(&row.target),
        node_label(&row.node, &row.node_name),
    )
}

/// `hearthctl publish --container`.
pub fn following(spec: &RouteSpec, container: &str, port: u16) -> String {
    format!(
        "{} follows container {}, port {port}: published while it runs (and is healthy), withdrawn otherwise; see `hearthctl routes`\n",
        clean(&spec.to_string()),
        clean(container),
    )
}

/// `hearthctl unpublish`.
pub fn unpublished(spec: &RouteSpec, node: &NodeId) -> String {
    format!(
        "unpublished {} on {}; every member stops routing it within seconds\n",
        clean(&spec.to_string()),
        node.short()
    )
}

/// A node as people know it: its name, or its short id when it has none.
fn node_label(node: &NodeId, name: &str) -> String {
    if name.is_empty() {
        node.short()
    } else {
        clean(name)
    }
}

fn short_ids(ids: &[NodeId]) -> String {
    ids.iter().map(NodeId::short).collect::<Vec<_>>().join(", ")
}

fn list_or(items: &[String], sep: &str, empty: &str) -> String {
    if items.is_empty() {
        empty.to_string()
    } else {
        items.iter().map(|s| clean(s)).collect::<Vec<_>>().join(sep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_proto::{MeshId, NodeKey, Role};

    fn row(name: &str, connected: bool, is_self: bool, last: Option<u64>) -> MemberRowV1 {
        MemberRowV1 {
            node: NodeKey::generate().id(),
            name: name.into(),
            role: Role::Member,
            addrs: vec![],
            connected,
            last_seen_ms: last,
            path: None,
            rtt_us: None,
            is_self,
        }
    }

    fn status_of(role: Option<Role>) -> StatusV1 {
        StatusV1 {
            node: NodeKey::generate().id(),
            name: "vps".into(),
            mesh: MeshId::from_bytes([0xab; 32]),
            mesh_name: "home".into(),
            role,
            listen_addrs: vec!["/ip4/1.2.3.4/udp/7700/quic-v1".into()],
            members: 3,
            peers_connected: vec![],
            records: 7,
            rejected_records: vec![],
            refused_connections: 0,
            gossip_peers: 0,
            digest: "0123456789abcdef0123456789abcdef".into(),
            uptime_secs: 5_400,
            version: "0.1.0".into(),
            data_plane: Default::default(),
            docker: Default::default(),
            store_writes: 12,
            clock_ms: 1_700_000_000_000,
        }
    }

    fn value<'a>(text: &'a str, key: &str) -> &'a str {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}:")))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no `{key}` line in\n{text}"))
    }

    #[test]
    fn table_aligns_columns_and_trims_line_ends() {
        let text = table(
            &["A", "LONG HEADER", "C"],
            vec![
                vec!["wide cell".into(), "x".into(), "".into()],
                vec!["b".into(), "y".into(), "z".into()],
            ],
        );
        assert_eq!(
            text,
            "A          LONG HEADER  C\n\
             wide cell  x\n\
             b          y            z\n"
        );
        assert_eq!(table(&["ONLY"], vec![]), "ONLY\n");
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(ago(None, 5_000), "never");
        assert_eq!(ago(Some(5_000), 5_500), "now");
        assert_eq!(ago(Some(0), 12_000), "12s ago");
        assert_eq!(ago(Some(0), 180_000), "3m ago");
        assert_eq!(ago(Some(0), 7_200_000), "2h ago");
        // A clock step backwards is "now", not a panic or a huge number.
        assert_eq!(ago(Some(9_000), 1_000), "now");
    }

    #[test]
    fn member_table_is_aligned_and_readable() {
        let mut home = row("home-server", false, false, Some(200_000 - 125_000));
        home.addrs = vec![
            "/ip4/10.0.0.2/tcp/7700".into(),
            "/ip4/10.0.0.2/udp/7700".into(),
        ];
        home.role = Role::Admin;
        let rows = [
            row("vps", true, true, None),
            home,
            row("laptop", true, false, Some(0)),
            row("new", false, false, None),
        ];
        let text = members(&rows, 200_000);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(
            lines[0].starts_with("NAME         ID          ROLE"),
            "{text}"
        );
        assert!(
            lines[1].contains(" self ") && lines[1].ends_with("now"),
            "{text}"
        );
        assert!(lines[1].contains(" - "), "{text}");
        assert!(lines[2].contains("/ip4/10.0.0.2/tcp/7700,/ip4/10.0.0.2/udp/7700"));
        assert!(lines[2].contains(" admin ") && lines[2].contains(" no "));
        assert!(lines[2].ends_with("2m ago"), "{text}");
        assert!(
            lines[3].contains(" yes ") && lines[3].ends_with("now"),
            "{text}"
        );
        assert!(lines[4].ends_with("never"), "{text}");
        assert!(lines[2].contains(&rows[1].node.short()));
        for header in ["ID", "ROLE", "ADDRESSES", "CONNECTED", "LAST SEEN"] {
            let column = lines[0].find(header).unwrap();
            assert!(
                lines.iter().all(|l| l.as_bytes()[column - 1] == b' '),
                "{header} misaligned in\n{text}"
            );
        }
    }

    #[test]
    fn member_paths_and_relayed_addresses_are_short() {
        let mut home = row("home2", true, false, Some(0));
        home.addrs = vec![
            "/ip4/198.19.2.2/udp/7700/quic-v1".into(),
            "/ip4/198.18.0.11/udp/7700/quic-v1/p2p/12D3KooWA/p2p-circuit/p2p/12D3KooWB".into(),
            "/ip4/198.18.0.12/udp/7700/quic-v1/p2p/12D3KooWC/p2p-circuit/p2p/12D3KooWB".into(),
        ];
        home.path = Some(PathV1::Relayed {
            via: NodeKey::generate().id(),
            via_name: "vps".into(),
        });
        home.rtt_us = Some(1_500);
        let mut vps = row("vps", true, false, Some(0));
        vps.path = Some(PathV1::Direct);
        let text = members(&[home, vps], 1_000);
        assert!(
            text.contains("/ip4/198.19.2.2/udp/7700/quic-v1 (+2 relayed)"),
            "{text}"
        );
        assert!(!text.contains("p2p-circuit"), "{text}");
        assert!(text.contains("relayed via vps, 1.5 ms"), "{text}");
        assert!(text.contains(" direct "), "{text}");
    }

    #[test]
    fn status_lists_every_fact() {
        let mut s = status_of(Some(Role::Admin));
        let peer = NodeKey::generate().id();
        s.peers_connected = vec![peer];
        s.rejected_records = vec![("bad_signature".into(), 3), ("not_a_member".into(), 1)];
        s.refused_connections = 2;
        let text = status(&s);
        assert_eq!(value(&text, "node"), format!("vps ({})", s.node.short()));
        assert_eq!(value(&text, "mesh"), "home (ababababab)");
        assert_eq!(value(&text, "role"), "admin");
        assert_eq!(
            value(&text, "listening on"),
            "/ip4/1.2.3.4/udp/7700/quic-v1"
        );
        assert_eq!(value(&text, "members"), "3");
        assert_eq!(
            value(&text, "peers connected"),
            format!("1 ({})", peer.short())
        );
        assert_eq!(value(&text, "records"), "7");
        assert_eq!(value(&text, "store digest"), "0123456789abcdef");
        assert_eq!(
            value(&text, "rejected records"),
            "bad_signature: 3, not_a_member: 1"
        );
        assert_eq!(value(&text, "refused connections"), "2");
        assert_eq!(value(&text, "uptime"), "1h 30m");
        assert_eq!(value(&text, "version"), "0.1.0");
        assert!(value(&text, "ingress").starts_with("not an edge"));
        s.data_plane.edge = true;
        s.data_plane.http_listen = Some("0.0.0.0:80".into());
        s.data_plane.https_listen = Some("0.0.0.0:443".into());
        s.data_plane.tcp_ports = vec![2222];
        assert_eq!(
            value(&status(&s), "ingress"),
            "edge; HTTP on 0.0.0.0:80, HTTPS on 0.0.0.0:443, tcp/2222"
        );
        // Values start one space after the longest key, "refused connections:".
        let column = "refused connections: ".len();
        assert!(
            text.lines()
                .all(|l| l.as_bytes()[column - 1] == b' ' && l.as_bytes()[column] != b' '),
            "values misaligned:\n{text}"
        );
    }

    #[test]
    fn status_lists_recent_failed_requests_with_their_ids() {
        let mut s = status_of(Some(Role::Member));
        assert!(!status(&s).contains("recent failed requests"));
        s.data_plane.recent_failures = vec![hearth_proto::api::FailedRequestV1 {
            request_id: "00c0ffee00c0ffee".into(),
            at_ms: s.clock_ms - 12_000,
            status: 502,
            host: "blog.example.com".into(),
            reason: "n1: cannot connect to 127.0.0.1:2368".into(),
        }];
        let text = status(&s);
        let row = text
            .lines()
            .find(|l| l.contains("00c0ffee00c0ffee"))
            .unwrap_or_else(|| panic!("no failure row in\n{text}"));
        for part in ["12s ago", "502", "blog.example.com", "127.0.0.1:2368"] {
            assert!(row.contains(part), "no `{part}` in {row}");
        }
    }

    #[test]
    fn status_says_revoked_and_none() {
        let mut s = status_of(None);
        s.listen_addrs.clear();
        let text = status(&s);
        assert!(value(&text, "role").starts_with("REVOKED"));
        assert_eq!(value(&text, "rejected records"), "none");
        assert_eq!(value(&text, "peers connected"), "none");
        assert_eq!(value(&text, "listening on"), "none");
    }

    #[test]
    fn invite_shows_code_alone_then_terms_and_hint() {
        let created = InviteCreatedV1 {
            code: "hearth-abc".into(),
            expires_ms: 3_600_000,
            uses: 1,
            role: Role::Member,
            addrs: vec!["/ip4/1.2.3.4/udp/7700/quic-v1".into()],
        };
        // A few milliseconds after the daemon computed the expiry.
        let text = invite(&created, 7);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "hearth-abc");
        assert!(
            text.contains("role member, 1 use, expires in 1h\n"),
            "{text}"
        );
        assert!(text.contains("/ip4/1.2.3.4/udp/7700/quic-v1"), "{text}");
        assert!(text.ends_with("On the new machine run: hearthd join hearth-abc\n"));

        let many = InviteCreatedV1 {
            uses: 5,
            role: Role::Admin,
            expires_ms: 7 * 86_400_000,
            ..created
        };
        let text = invite(&many, 0);
        assert!(text.contains("role admin, 5 uses, expires in 7d"), "{text}");
        assert!(invite(&many, u64::MAX).contains("already expired"));
    }

    #[test]
    fn revoke_and_dial_confirmations() {
        let id = NodeKey::generate().id();
        assert_eq!(
            revoked(&id, "old-laptop"),
            format!(
                "revoked old-laptop ({}); it is being disconnected from every member\n",
                id.short()
            )
        );
        assert_eq!(
            dialing("/ip4/1.2.3.4/tcp/7700"),
            "dialing /ip4/1.2.3.4/tcp/7700\n"
        );
    }

    fn route(spec: RouteSpec, name: &str, target: &str, updated_ms: u64) -> RouteRowV1 {
        let node = NodeKey::generate().id();
        RouteRowV1 {
            spec,
            node,
            node_name: name.into(),
            target: target.into(),
            updated_ms,
            stored_ms: updated_ms,
            author: node,
            proxy_protocol: false,
            container: None,
            tls: Default::default(),
        }
    }

    fn http(host: &str) -> RouteSpec {
        RouteSpec::Http { host: host.into() }
    }

    #[test]
    fn route_table_is_sorted_and_aligned() {
        let now = 10_000_000;
        let rows = [
            route(
                RouteSpec::Tcp { port: 22 },
                "home",
                "127.0.0.1:22",
                now - 180_000,
            ),
            route(
                http("blog.example.com"),
                "vps",
                "127.0.0.1:2368",
                now - 12_000,
            ),
            route(http("blog.example.com"), "home", "10.0.0.2:2368", now),
            route(http("git.example.com"), "", "gitea:3000", now - 7_200_000),
        ];
        let text = routes(&rows, now);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[0].starts_with("ROUTE             NODE"), "{text}");
        assert!(lines[1].starts_with("blog.example.com  home "), "{text}");
        assert!(lines[1].ends_with("now"), "{text}");
        assert!(lines[2].starts_with("blog.example.com  vps "), "{text}");
        assert!(lines[2].contains(" 127.0.0.1:2368 ") && lines[2].ends_with("12s"));
        assert!(lines[3].starts_with("git.example.com"), "{text}");
        assert!(
            lines[3].contains(&rows[3].node.short()),
            "nameless node: {text}"
        );
        assert!(lines[3].ends_with("2h"), "{text}");
        assert!(
            lines[4].starts_with("tcp/22 ") && lines[4].ends_with("3m"),
            "{text}"
        );
        for header in ["NODE", "TARGET", "AGE"] {
            let column = lines[0].find(header).unwrap();
            assert!(
                lines.iter().all(|l| l.as_bytes()[column - 1] == b' '),
                "{header} misaligned in\n{text}"
            );
        }
    }

    #[test]
    fn tcp_routes_sort_by_port_number() {
        let rows = [
            route(RouteSpec::Tcp { port: 8080 }, "a", "x:1", 0),
            route(RouteSpec::Tcp { port: 22 }, "a", "x:1", 0),
        ];
        let text = routes(&rows, 0);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("tcp/22 ") && lines[2].starts_with("tcp/8080 "));
    }

    #[test]
    fn no_routes_says_how_to_add_one() {
        assert_eq!(
            routes(&[], 0),
            "no routes; publish one with `hearthctl publish HOST --to ADDR:PORT`\n"
        );
    }

    #[test]
    fn publish_and_unpublish_confirmations() {
        let row = route(http("blog.example.com"), "vps", "127.0.0.1:2368", 0);
        assert_eq!(
            published(&row),
            "published blog.example.com → 127.0.0.1:2368 on vps; \
             every member learns it within seconds\n"
        );
        let nameless = RouteRowV1 {
            spec: RouteSpec::Tcp { port: 22 },
            node_name: String::new(),
            ..row.clone()
        };
        assert!(published(&nameless).starts_with(&format!(
            "published tcp/22 → 127.0.0.1:2368 on {};",
            row.node.short()
        )));
        assert_eq!(
            unpublished(&RouteSpec::Tcp { port: 22 }, &row.node),
            format!(
                "unpublished tcp/22 on {}; every member stops routing it within seconds\n",
                row.node.short()
            )
        );
    }

    #[test]
    fn hostile_route_fields_stay_on_one_line() {
        let rows = [route(http("a.b"), "evil\u{1b}[2J\nx", "t\n:1", 0)];
        let text = routes(&rows, 0);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(!text.contains('\u{1b}'));
    }

    #[test]
    fn hostile_names_cannot_inject_terminal_escapes_or_lines() {
        let rows = [row("evil\u{1b}[2J\nfake-row", false, false, None)];
        let text = members(&rows, 0);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(!text.contains('\u{1b}'));
        assert!(text.contains("evil?[2J?fake-row"));
    }
}
