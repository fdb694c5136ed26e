//! Golden bytes: the encoding of the record envelope and of every body kind is pinned here, so
//! a change to any of them is a deliberate, visible change of the wire and disk format. To
//! change one on purpose, update its hex in the same commit and say why in the message; the
//! failing test prints the new hex of every body that changed.

use super::*;
use crate::cert::{
    AcmeAccount, AcmeOffer, AcmeOrder, AcmeProblem, AriWindow, Cert, CertAction, CertRequest,
    ChallengeAck, ChallengeAnswer, OrderCause, OrderStage,
};
use crate::route::{Route, RouteSpec, RouteTls};
use crate::seal::{Sealed, SealedBox};

pub(crate) fn node(n: u8) -> NodeId {
    NodeKey::from_secret([n; 32]).id()
}

fn sealed() -> Sealed {
    Sealed {
        boxes: vec![SealedBox {
            to: node(1),
            enc: vec![0xe0; 2],
            ciphertext: vec![0xc0; 3],
        }],
    }
}

fn route(spec: RouteSpec, tls: RouteTls) -> Route {
    Route {
        spec,
        node: node(1),
        target: Some("127.0.0.1:80".into()),
        proxy_protocol: false,
        container: None,
        tls,
    }
}

fn http(host: &str) -> RouteSpec {
    RouteSpec::Http { host: host.into() }
}

/// One body of every kind (and of every route spec and TLS mode), by name.
fn bodies() -> Vec<(&'static str, Body)> {
    vec![
        (
            "genesis",
            Body::Genesis(Genesis {
                name: "home".into(),
                founder: node(1),
                nonce: [0x4e; 16],
                created_ms: 1_700_000_000_000,
            }),
        ),
        (
            "member",
            Body::Member(Member {
                node: node(2),
                name: "box".into(),
                role: Role::Admin,
            }),
        ),
        (
            "revocation",
            Body::Revocation(Revocation {
                node: node(3),
                reason: "lost".into(),
            }),
        ),
        (
            "node_info",
            Body::NodeInfo(NodeInfo {
                name: "vps".into(),
                addrs: vec!["/ip4/198.18.0.10/udp/7700/quic-v1".into()],
                version: "0.1.0".into(),
                tunnel: vec!["198.18.0.10:7701".into()],
                edge_pref: EdgePreference::Always,
                reach: Reach::Public {
                    since_ms: 11,
                    addrs: vec!["/ip4/198.18.0.10/udp/7700/quic-v1".into()],
                },
                heartbeat_ms: 12,
                lease_ms: 3_000,
                edges_max: 3,
                started_ms: 13,
                acme: Some(AcmeOffer {
                    directory: "https://ca/dir".into(),
                    wildcard_zone: Some("z.test".into()),
                }),
            }),
        ),
        (
            "node_info_private",
            Body::NodeInfo(NodeInfo {
                name: "home".into(),
                edge_pref: EdgePreference::Never,
                reach: Reach::Private {
                    reason: "behind NAT".into(),
                },
                ..NodeInfo::default()
            }),
        ),
        (
            "route_http_edge",
            Body::Route(route(http("a.z.test"), RouteTls::Edge)),
        ),
        (
            "route_http_off",
            Body::Route(route(http("a.z.test"), RouteTls::Off)),
        ),
        (
            "route_http_passthrough",
            Body::Route(Route {
                container: Some("blog".into()),
                ..route(http("a.z.test"), RouteTls::Passthrough)
            }),
        ),
        (
            "route_tcp",
            Body::Route(Route {
                proxy_protocol: true,
                ..route(RouteSpec::Tcp { port: 2222 }, RouteTls::Edge)
            }),
        ),
        (
            "route_tombstone",
            Body::Route(Route {
                target: None,
                ..route(http("a.z.test"), RouteTls::Edge)
            }),
        ),
        (
            "cert",
            Body::Cert(Cert {
                names: vec!["*.z.test".into(), "z.test".into()],
                chain: vec![vec![0x30, 0x01]],
                key: sealed(),
                not_before_ms: 1,
                not_after_ms: 2,
                serial: "0a".into(),
                issuer: node(2),
                directory: "https://ca/dir".into(),
                issued_ms: 3,
                recent: vec![3],
                ari: Some(AriWindow {
                    start_ms: 4,
                    end_ms: 5,
                    fetched_ms: 6,
                    next_fetch_ms: 7,
                }),
                ari_id: "a.b".into(),
            }),
        ),
        (
            "acme_account",
            Body::AcmeAccount(AcmeAccount {
                directory: "https://ca/dir".into(),
                id: "https://ca/acct/1".into(),
                credentials: sealed(),
                contact: vec!["mailto:a@z.test".into()],
                scope: "a.z.test".into(),
            }),
        ),
        (
            "acme_order",
            Body::AcmeOrder(AcmeOrder {
                names: vec!["a.z.test".into()],
                directory: "https://ca/dir".into(),
                account: "https://ca/acct/1".into(),
                url: "https://ca/order/1".into(),
                issuer: node(2),
                stage: OrderStage::Validating,
                cause: OrderCause::Renewal,
                challenges: vec![
                    ChallengeAnswer::Http01 {
                        name: "a.z.test".into(),
                        token: "t".into(),
                        key_authorization: "t.k".into(),
                    },
                    ChallengeAnswer::TlsAlpn01 {
                        name: "a.z.test".into(),
                        digest: vec![0xd1],
                    },
                    ChallengeAnswer::Dns01 {
                        name: "a.z.test".into(),
                        value: "v".into(),
                    },
                ],
                key: Some(sealed()),
                started_ms: 8,
                failures: 1,
                problem: Some(AcmeProblem {
                    kind: "k".into(),
                    detail: "d".into(),
                }),
                retry_ms: 9,
            }),
        ),
        (
            "challenge_ack",
            Body::ChallengeAck(ChallengeAck {
                name: "a.z.test".into(),
                digest: [0xab; 32],
            }),
        ),
        (
            "cert_request",
            Body::CertRequest(CertRequest {
                name: "a.z.test".into(),
                action: CertAction::Rotate,
                asked_ms: 10,
            }),
        ),
    ]
}

/// The body named `name` in [`bodies`].
fn body(name: &str) -> Body {
    bodies()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, body)| body)
        .unwrap()
}

/// The pinned encodings, as hex: the layout version (`01`), then the fields.
const GOLDEN: &[(&str, &str)] = &[
    ("genesis", "0104686f6d658a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e80d095ffbc31"),
    ("member", "018139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b39403626f7801"),
    ("revocation", "01ed4928c628d1c2c6eae90338905995612959273a5c63f93636c14614ac8737d1046c6f7374"),
    ("node_info", "010376707301212f6970342f3139382e31382e302e31302f7564702f373730302f717569632d763105302e312e3001103139382e31382e302e31303a3737303101010b01212f6970342f3139382e31382e302e31302f7564702f373730302f717569632d76310cb817030d010e68747470733a2f2f63612f64697201067a2e74657374"),
    ("node_info_private", "0104686f6d6500000002020a626568696e64204e41540000000000"),
    ("route_http_edge", "010008612e7a2e746573748a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c010c3132372e302e302e313a3830000000"),
    ("route_http_off", "010008612e7a2e746573748a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c010c3132372e302e302e313a3830000001"),
    ("route_http_passthrough", "010008612e7a2e746573748a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c010c3132372e302e302e313a3830000104626c6f6702"),
    ("route_tcp", "0101ae118a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c010c3132372e302e302e313a3830010000"),
    ("route_tombstone", "010008612e7a2e746573748a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c00000000"),
    ("cert", "0102082a2e7a2e74657374067a2e7465737401023001018a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c02e0e003c0c0c001020230618139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b3940e68747470733a2f2f63612f646972030103010405060703612e62"),
    ("acme_account", "010e68747470733a2f2f63612f6469721168747470733a2f2f63612f616363742f31018a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c02e0e003c0c0c0010f6d61696c746f3a61407a2e7465737408612e7a2e74657374"),
    ("acme_order", "010108612e7a2e746573740e68747470733a2f2f63612f6469721168747470733a2f2f63612f616363742f311268747470733a2f2f63612f6f726465722f318139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b3940101030008612e7a2e74657374017403742e6b0108612e7a2e7465737401d10208612e7a2e74657374017601018a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c02e0e003c0c0c0080101016b016409"),
    ("challenge_ack", "0108612e7a2e74657374abababababababababababababababababababababababababababababababab"),
    ("cert_request", "0108612e7a2e74657374010a"),
];

#[test]
fn every_body_encodes_to_its_golden_bytes_and_back() {
    let bodies = bodies();
    let kinds: std::collections::BTreeSet<Kind> = bodies.iter().map(|(_, b)| b.kind()).collect();
    assert_eq!(kinds.len(), 10, "a body of every kind");
    let mut changed = Vec::new();
    for (name, body) in &bodies {
        let bytes = body.encode();
        let golden = GOLDEN.iter().find(|(n, _)| n == name).map(|(_, hex)| *hex);
        if golden != Some(hex::encode(&bytes).as_str()) {
            changed.push(format!("    (\"{name}\", \"{}\"),", hex::encode(&bytes)));
            continue;
        }
        let pinned = hex::decode(golden.unwrap_or_default()).unwrap();
        assert_eq!(Body::decode(body.kind(), &pinned).unwrap(), *body, "{name}");
    }
    assert!(
        changed.is_empty() && GOLDEN.len() == bodies.len(),
        "body encodings differ from the golden bytes; now:\n{}",
        changed.join("\n")
    );
}

/// A fully signed record: mesh, kind, key, body, author, HLC and signature, as every node
/// stores it and sends it (ed25519 signatures are deterministic).
fn record() -> (Record, MeshId) {
    let mesh = MeshId::from_bytes([9; 32]);
    let body = body("member");
    let hlc = Hlc {
        millis: 1_700_000_000_000,
        counter: 3,
    };
    (
        Record::sign(&NodeKey::from_secret([1; 32]), mesh, &body, hlc),
        mesh,
    )
}

/// The pinned envelope of [`record`], as hex.
pub(crate) const GOLDEN_RECORD: &str = "090909090909090909090909090909090909090909090909090909090909090901403831333937373065613837643137356635366133353436366333346337656363636238643861393162346565333761323564663630663562386663396233393426018139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b39403626f78018a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c80d095ffbc310340cf13dd9efb1ae85fcc0a0e9a0a9fd3f6b2209fa5361bdd62ab4844084f7deaca9958d3af0dc800e93258c9322df2c4449a6c83df1500e4781d51db764bc80e08";

#[test]
fn the_record_envelope_encodes_to_its_golden_bytes_and_back() {
    let (record, mesh) = record();
    let bytes = postcard::to_stdvec(&record).unwrap();
    assert_eq!(hex::encode(&bytes), GOLDEN_RECORD);
    let back: Record = postcard::from_bytes(&hex::decode(GOLDEN_RECORD).unwrap()).unwrap();
    assert_eq!(back, record);
    assert!(back.verify(&mesh).is_ok());
}

/// The record whose envelope is pinned: other golden files embed it (wire messages).
pub(crate) fn golden_record() -> Record {
    record().0
}

#[test]
fn a_newer_writers_appended_fields_are_ignored() {
    let body = body("node_info");
    let mut newer = body.encode();
    // A version-2 NodeInfo with one more field after `acme`.
    newer[0] = 2;
    newer.extend_from_slice(&[1, 2, 3]);
    assert_eq!(Body::decode(Kind::NodeInfo, &newer).unwrap(), body);
}

#[test]
fn a_body_without_a_layout_version_is_refused() {
    // What a node wrote before bodies carried versions: a Route body started with its spec's
    // variant index, 0 for HTTP, which reads as the refused version 0. (Other kinds could
    // misread instead, which is why a store written then is refused at open.)
    let route = body("route_http_edge");
    let unversioned = &route.encode()[1..];
    assert!(Body::decode(Kind::Route, unversioned).is_err());
}

#[test]
fn an_accounts_key_carries_its_scope() {
    let body = body("acme_account");
    assert_eq!(body.key(&node(1)), "https://ca/dir#a.z.test");
    let Body::AcmeAccount(account) = body else {
        panic!("not an account")
    };
    let shared = Body::AcmeAccount(AcmeAccount {
        scope: String::new(),
        ..account
    });
    assert_eq!(shared.key(&node(1)), "https://ca/dir");
}
