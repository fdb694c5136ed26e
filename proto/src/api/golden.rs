//! Golden JSON of the admin API: every command `hearthctl` sends and every answer `hearthd`
//! gives, as the lines on the admin socket (and what `hearthctl --json` scripts read). A change
//! to one is a deliberate format change: update it in the same commit and say why; the failing
//! test prints the new JSON of everything that changed.

use super::*;
use crate::cert::CertState;
use crate::election::NotElected;
use crate::id::NodeKey;

fn node(n: u8) -> NodeId {
    NodeKey::from_secret([n; 32]).id()
}

fn http(host: &str) -> RouteSpec {
    RouteSpec::Http { host: host.into() }
}

fn commands() -> Vec<(&'static str, Command)> {
    let v1 = |name, command| (name, Command::V1(command));
    vec![
        v1("status", CommandV1::Status),
        v1("members", CommandV1::Members),
        v1(
            "invite",
            CommandV1::Invite {
                ttl_secs: 3600,
                uses: 1,
                role: Role::Member,
            },
        ),
        v1("revoke", CommandV1::Revoke { node: "box".into() }),
        v1(
            "dial",
            CommandV1::Dial {
                addr: "/ip4/198.18.0.10/udp/7700/quic-v1".into(),
            },
        ),
        v1(
            "publish",
            CommandV1::Publish {
                spec: http("blog.z.test"),
                target: "127.0.0.1:2368".into(),
                node: Some("home".into()),
                proxy_protocol: false,
                tls: RouteTls::Passthrough,
            },
        ),
        v1(
            "publish_tcp",
            CommandV1::Publish {
                spec: RouteSpec::Tcp { port: 2222 },
                target: "127.0.0.1:22".into(),
                node: None,
                proxy_protocol: true,
                tls: RouteTls::Edge,
            },
        ),
        v1(
            "publish_container",
            CommandV1::PublishContainer {
                spec: http("git.z.test"),
                container: "gitea".into(),
                port: 3000,
                tls: RouteTls::Off,
            },
        ),
        v1(
            "unpublish",
            CommandV1::Unpublish {
                spec: http("blog.z.test"),
                node: None,
            },
        ),
        v1("routes", CommandV1::Routes),
        v1("edges", CommandV1::Edges),
        v1("certs", CommandV1::Certs),
        v1(
            "cert_action",
            CommandV1::CertAction {
                host: "blog.z.test".into(),
                action: CertAction::Rotate,
            },
        ),
    ]
}

fn route_row() -> RouteRowV1 {
    RouteRowV1 {
        spec: http("blog.z.test"),
        node: node(2),
        node_name: "home".into(),
        target: "127.0.0.1:2368".into(),
        updated_ms: 1_700_000_000_000,
        stored_ms: 1_700_000_000_005,
        author: node(2),
        proxy_protocol: false,
        container: Some("ghost".into()),
        tls: RouteTls::Edge,
    }
}

fn status() -> StatusV1 {
    StatusV1 {
        node: node(1),
        name: "vps".into(),
        mesh: MeshId::from_bytes([9; 32]),
        mesh_name: "home".into(),
        role: Some(Role::Admin),
        listen_addrs: vec!["/ip4/198.18.0.10/udp/7700/quic-v1".into()],
        members: 2,
        peers_connected: vec![node(2)],
        records: 5,
        rejected_records: vec![("clock_ahead".into(), 1)],
        refused_connections: 3,
        gossip_peers: 1,
        digest: "ab".repeat(32),
        uptime_secs: 60,
        version: "0.1.0".into(),
        data_plane: DataPlaneV1 {
            edge: true,
            tunnel_listen: Some("0.0.0.0:7701".into()),
            http_listen: Some("0.0.0.0:80".into()),
            https_listen: Some("0.0.0.0:443".into()),
            dns_listen: None,
            ingress_error: None,
            tcp_ports: vec![2222],
            tunnels: vec![node(2)],
            open_streams: 4,
            recent_failures: vec![FailedRequestV1 {
                request_id: "00c0ffee00c0ffee".into(),
                at_ms: 1_700_000_000_005,
                status: 502,
                host: "blog.example.com".into(),
                reason: "8139770ea8: cannot connect to 127.0.0.1:2368: Connection refused".into(),
            }],
        },
        docker: DockerV1 {
            available: false,
            detail: "disabled".into(),
            routes: 0,
        },
        store_writes: 7,
        clock_ms: 1_700_000_000_010,
    }
}

fn responses() -> Vec<(&'static str, Response)> {
    let v1 = |name, response| (name, Response::V1(response));
    vec![
        v1("status", ResponseV1::Status(Box::new(status()))),
        v1(
            "members",
            ResponseV1::Members(vec![
                MemberRowV1 {
                    node: node(1),
                    name: "vps".into(),
                    role: Role::Admin,
                    addrs: vec!["/ip4/198.18.0.10/udp/7700/quic-v1".into()],
                    connected: true,
                    last_seen_ms: None,
                    path: None,
                    rtt_us: None,
                    is_self: true,
                },
                MemberRowV1 {
                    node: node(2),
                    name: "home".into(),
                    role: Role::Member,
                    addrs: Vec::new(),
                    connected: true,
                    last_seen_ms: Some(1_700_000_000_000),
                    path: Some(PathV1::Relayed {
                        via: node(1),
                        via_name: "vps".into(),
                    }),
                    rtt_us: Some(1500),
                    is_self: false,
                },
            ]),
        ),
        v1(
            "invite",
            ResponseV1::Invite(InviteCreatedV1 {
                code: "hearth-aeak".into(),
                expires_ms: 1_700_000_000_000,
                uses: 1,
                role: Role::Member,
                addrs: vec!["/ip4/198.18.0.10/tcp/7700".into()],
            }),
        ),
        v1(
            "revoked",
            ResponseV1::Revoked {
                node: node(2),
                name: "home".into(),
            },
        ),
        v1(
            "dialing",
            ResponseV1::Dialing {
                addr: "/ip4/198.18.0.10/tcp/7700".into(),
            },
        ),
        v1("published", ResponseV1::Published(route_row())),
        v1(
            "unpublished",
            ResponseV1::Unpublished {
                spec: RouteSpec::Tcp { port: 2222 },
                node: node(2),
            },
        ),
        v1(
            "following",
            ResponseV1::Following {
                spec: http("git.z.test"),
                container: "gitea".into(),
                port: 3000,
            },
        ),
        v1("routes", ResponseV1::Routes(vec![route_row()])),
        v1(
            "edges",
            ResponseV1::Edges(EdgesV1 {
                max: 3,
                rows: vec![
                    EdgeRowV1 {
                        node: node(1),
                        name: "vps".into(),
                        verdict: Verdict::Edge { rank: 0 },
                        edge_pref: EdgePreference::Auto,
                        reach: Reach::Public {
                            since_ms: 1_700_000_000_000,
                            addrs: vec!["/ip4/198.18.0.10/udp/7700/quic-v1".into()],
                        },
                        ips: vec!["198.18.0.10".into()],
                        alive: true,
                        is_self: true,
                    },
                    EdgeRowV1 {
                        node: node(2),
                        name: "home".into(),
                        verdict: Verdict::NotEdge(NotElected::NotPublic {
                            reach: Reach::Private {
                                reason: "behind NAT".into(),
                            },
                        }),
                        edge_pref: EdgePreference::Never,
                        reach: Reach::Unknown,
                        ips: Vec::new(),
                        alive: false,
                        is_self: false,
                    },
                ],
            }),
        ),
        v1(
            "certs",
            ResponseV1::Certs(CertsV1 {
                acme: "ordering from https://ca/dir".into(),
                rows: vec![CertRowV1 {
                    name: "*.z.test".into(),
                    names: vec!["*.z.test".into(), "z.test".into()],
                    hosts: vec!["blog.z.test".into()],
                    state: CertState::Renewing,
                    detail: String::new(),
                    issuer: Some(node(1)),
                    issuer_name: "vps".into(),
                    not_after_ms: Some(1_800_000_000_000),
                    renew_at_ms: Some(1_790_000_000_000),
                    serial: Some("0a".into()),
                    holders: vec!["vps".into()],
                    directory: "https://ca/dir".into(),
                    challenges: vec!["dns-01 *.z.test".into()],
                    mode: RouteTls::Edge,
                }],
            }),
        ),
        v1(
            "cert_requested",
            ResponseV1::CertRequested {
                name: "*.z.test".into(),
                action: CertAction::Renew,
                issuer: Some("vps".into()),
            },
        ),
        v1(
            "error",
            ResponseV1::Error(ApiError::new(ApiErrorKind::NotFound, "no such member")),
        ),
    ]
}

/// The pinned command lines.
const GOLDEN_COMMANDS: &[(&str, &str)] = &[
    ("status", r#"{"V1":"status"}"#),
    ("members", r#"{"V1":"members"}"#),
    (
        "invite",
        r#"{"V1":{"invite":{"ttl_secs":3600,"uses":1,"role":"member"}}}"#,
    ),
    ("revoke", r#"{"V1":{"revoke":{"node":"box"}}}"#),
    (
        "dial",
        r#"{"V1":{"dial":{"addr":"/ip4/198.18.0.10/udp/7700/quic-v1"}}}"#,
    ),
    (
        "publish",
        r#"{"V1":{"publish":{"spec":{"http":{"host":"blog.z.test"}},"target":"127.0.0.1:2368","node":"home","proxy_protocol":false,"tls":"passthrough"}}}"#,
    ),
    (
        "publish_tcp",
        r#"{"V1":{"publish":{"spec":{"tcp":{"port":2222}},"target":"127.0.0.1:22","node":null,"proxy_protocol":true,"tls":"edge"}}}"#,
    ),
    (
        "publish_container",
        r#"{"V1":{"publish_container":{"spec":{"http":{"host":"git.z.test"}},"container":"gitea","port":3000,"tls":"off"}}}"#,
    ),
    (
        "unpublish",
        r#"{"V1":{"unpublish":{"spec":{"http":{"host":"blog.z.test"}},"node":null}}}"#,
    ),
    ("routes", r#"{"V1":"routes"}"#),
    ("edges", r#"{"V1":"edges"}"#),
    ("certs", r#"{"V1":"certs"}"#),
    (
        "cert_action",
        r#"{"V1":{"cert_action":{"host":"blog.z.test","action":"rotate"}}}"#,
    ),
];

/// The pinned answer lines.
const GOLDEN_RESPONSES: &[(&str, &str)] = &[
    (
        "status",
        r#"{"V1":{"status":{"node":"8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c","name":"vps","mesh":"0909090909090909090909090909090909090909090909090909090909090909","mesh_name":"home","role":"admin","listen_addrs":["/ip4/198.18.0.10/udp/7700/quic-v1"],"members":2,"peers_connected":["8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394"],"records":5,"rejected_records":[["clock_ahead",1]],"refused_connections":3,"gossip_peers":1,"digest":"abababababababababababababababababababababababababababababababab","uptime_secs":60,"version":"0.1.0","data_plane":{"edge":true,"tunnel_listen":"0.0.0.0:7701","http_listen":"0.0.0.0:80","https_listen":"0.0.0.0:443","dns_listen":null,"ingress_error":null,"tcp_ports":[2222],"tunnels":["8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394"],"open_streams":4,"recent_failures":[{"request_id":"00c0ffee00c0ffee","at_ms":1700000000005,"status":502,"host":"blog.example.com","reason":"8139770ea8: cannot connect to 127.0.0.1:2368: Connection refused"}]},"docker":{"available":false,"detail":"disabled","routes":0},"store_writes":7,"clock_ms":1700000000010}}}"#,
    ),
    (
        "members",
        r#"{"V1":{"members":[{"node":"8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c","name":"vps","role":"admin","addrs":["/ip4/198.18.0.10/udp/7700/quic-v1"],"connected":true,"last_seen_ms":null,"path":null,"rtt_us":null,"is_self":true},{"node":"8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394","name":"home","role":"member","addrs":[],"connected":true,"last_seen_ms":1700000000000,"path":{"relayed":{"via":"8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c","via_name":"vps"}},"rtt_us":1500,"is_self":false}]}}"#,
    ),
    (
        "invite",
        r#"{"V1":{"invite":{"code":"hearth-aeak","expires_ms":1700000000000,"uses":1,"role":"member","addrs":["/ip4/198.18.0.10/tcp/7700"]}}}"#,
    ),
    (
        "revoked",
        r#"{"V1":{"revoked":{"node":"8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394","name":"home"}}}"#,
    ),
    (
        "dialing",
        r#"{"V1":{"dialing":{"addr":"/ip4/198.18.0.10/tcp/7700"}}}"#,
    ),
    (
        "published",
        r#"{"V1":{"published":{"spec":{"http":{"host":"blog.z.test"}},"node":"8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394","node_name":"home","target":"127.0.0.1:2368","updated_ms":1700000000000,"stored_ms":1700000000005,"author":"8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394","proxy_protocol":false,"container":"ghost","tls":"edge"}}}"#,
    ),
    (
        "unpublished",
        r#"{"V1":{"unpublished":{"spec":{"tcp":{"port":2222}},"node":"8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394"}}}"#,
    ),
    (
        "following",
        r#"{"V1":{"following":{"spec":{"http":{"host":"git.z.test"}},"container":"gitea","port":3000}}}"#,
    ),
    (
        "routes",
        r#"{"V1":{"routes":[{"spec":{"http":{"host":"blog.z.test"}},"node":"8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394","node_name":"home","target":"127.0.0.1:2368","updated_ms":1700000000000,"stored_ms":1700000000005,"author":"8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394","proxy_protocol":false,"container":"ghost","tls":"edge"}]}}"#,
    ),
    (
        "edges",
        r#"{"V1":{"edges":{"max":3,"rows":[{"node":"8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c","name":"vps","verdict":{"edge":{"rank":0}},"edge_pref":"auto","reach":{"Public":{"since_ms":1700000000000,"addrs":["/ip4/198.18.0.10/udp/7700/quic-v1"]}},"ips":["198.18.0.10"],"alive":true,"is_self":true},{"node":"8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394","name":"home","verdict":{"not_edge":{"not_public":{"reach":{"Private":{"reason":"behind NAT"}}}}},"edge_pref":"never","reach":"Unknown","ips":[],"alive":false,"is_self":false}]}}}"#,
    ),
    (
        "certs",
        r#"{"V1":{"certs":{"acme":"ordering from https://ca/dir","rows":[{"name":"*.z.test","names":["*.z.test","z.test"],"hosts":["blog.z.test"],"state":"renewing","detail":"","issuer":"8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c","issuer_name":"vps","not_after_ms":1800000000000,"renew_at_ms":1790000000000,"serial":"0a","holders":["vps"],"directory":"https://ca/dir","challenges":["dns-01 *.z.test"],"mode":"edge"}]}}}"#,
    ),
    (
        "cert_requested",
        r#"{"V1":{"cert_requested":{"name":"*.z.test","action":"renew","issuer":"vps"}}}"#,
    ),
    (
        "error",
        r#"{"V1":{"error":{"kind":"not_found","message":"no such member"}}}"#,
    ),
];

/// Checks every case against its golden JSON line, and that the line decodes to the case.
fn check<T>(what: &str, cases: Vec<(&str, T)>, golden: &[(&str, &str)])
where
    T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let mut changed = Vec::new();
    for (name, value) in &cases {
        let json = serde_json::to_string(value).unwrap();
        let pinned = golden
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, json)| *json);
        match pinned {
            Some(pinned) if pinned == json => {
                let back: T = serde_json::from_str(pinned).unwrap();
                assert_eq!(back, *value, "{what} {name}");
            }
            _ => changed.push(format!("    (\"{name}\", r#\"{json}\"#),")),
        }
    }
    assert!(
        changed.is_empty() && golden.len() == cases.len(),
        "{what} differ from their golden JSON; now:\n{}",
        changed.join("\n")
    );
}

#[test]
fn every_command_is_its_golden_json_and_back() {
    let commands = commands();
    let variants: std::collections::HashSet<_> = commands
        .iter()
        .map(|(_, Command::V1(command))| std::mem::discriminant(command))
        .collect();
    assert_eq!(variants.len(), 12, "a case of every command");
    check("commands", commands, GOLDEN_COMMANDS);
}

#[test]
fn every_response_is_its_golden_json_and_back() {
    let responses = responses();
    let variants: std::collections::HashSet<_> = responses
        .iter()
        .map(|(_, Response::V1(response))| std::mem::discriminant(response))
        .collect();
    assert_eq!(variants.len(), 13, "a case of every answer");
    check("responses", responses, GOLDEN_RESPONSES);
}
