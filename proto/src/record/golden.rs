//! Golden bytes: the encodings of the certificate bodies and of grown bodies are pinned here,
//! so a change to any of them is a deliberate, visible change of the wire format.

use super::*;
use crate::cert::{
    AcmeAccount, AcmeOrder, AriWindow, Cert, CertAction, CertRequest, ChallengeAck,
    ChallengeAnswer, OrderCause, OrderStage,
};
use crate::route::{Route, RouteSpec, RouteTls};
use crate::seal::{Sealed, SealedBox};

fn node(n: u8) -> NodeId {
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

fn bodies() -> Vec<(&'static str, Body)> {
    vec![
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
                problem: Some(crate::cert::AcmeProblem {
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
        (
            "route",
            Body::Route(Route {
                spec: RouteSpec::Http {
                    host: "a.z.test".into(),
                },
                node: node(1),
                target: Some("127.0.0.1:80".into()),
                proxy_protocol: false,
                container: None,
                tls: RouteTls::Off,
            }),
        ),
    ]
}

/// The pinned encodings, as hex.
const GOLDEN: [(&str, &str); 6] = [
    ("cert", "02082a2e7a2e74657374067a2e7465737401023001018a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c02e0e003c0c0c001020230618139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b3940e68747470733a2f2f63612f646972030103010405060703612e62"),
    ("acme_account", "0e68747470733a2f2f63612f6469721168747470733a2f2f63612f616363742f31018a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c02e0e003c0c0c0010f6d61696c746f3a61407a2e7465737408612e7a2e74657374"),
    ("acme_order", "0108612e7a2e746573740e68747470733a2f2f63612f6469721168747470733a2f2f63612f616363742f311268747470733a2f2f63612f6f726465722f318139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b3940101030008612e7a2e74657374017403742e6b0108612e7a2e7465737401d10208612e7a2e74657374017601018a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c02e0e003c0c0c0080101016b016409"),
    ("challenge_ack", "08612e7a2e74657374abababababababababababababababababababababababababababababababab"),
    ("cert_request", "08612e7a2e74657374010a"),
    ("route", "0008612e7a2e746573748a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c010c3132372e302e302e313a3830000001"),
];

#[test]
fn bodies_encode_to_their_golden_bytes_and_back() {
    for ((name, body), (golden_name, golden)) in bodies().into_iter().zip(GOLDEN) {
        assert_eq!(name, golden_name);
        let bytes = body.encode();
        assert_eq!(hex::encode(&bytes), golden, "{name} encodes differently");
        assert_eq!(Body::decode(body.kind(), &bytes).unwrap(), body, "{name}");
    }
}

#[test]
fn a_route_from_before_tls_reads_as_edge_tls() {
    // The golden route with its last byte (`tls`) cut off is what a node wrote before the
    // field existed.
    let (_, golden) = GOLDEN[GOLDEN.len() - 1];
    let mut old = hex::decode(golden).unwrap();
    old.pop();
    match Body::decode(Kind::Route, &old).unwrap() {
        Body::Route(route) => assert_eq!(route.tls, RouteTls::Edge),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_account_from_before_scope_reads_as_the_edges_account_and_passthrough_is_index_2() {
    let (_, golden) = GOLDEN[1];
    let mut old = hex::decode(golden).unwrap();
    // Cut `scope` ("a.z.test": a length byte and 8 bytes) off.
    old.truncate(old.len() - 9);
    match Body::decode(Kind::AcmeAccount, &old).unwrap() {
        Body::AcmeAccount(account) => {
            assert_eq!(account.scope, "");
            let body = Body::AcmeAccount(account);
            assert_eq!(body.key(&node(1)), "https://ca/dir");
        }
        other => panic!("{other:?}"),
    }
    let (_, body) = &bodies()[1];
    assert_eq!(body.key(&node(1)), "https://ca/dir#a.z.test");
    assert_eq!(postcard::to_stdvec(&RouteTls::Passthrough).unwrap(), [2]);
}

#[test]
fn a_node_info_from_before_acme_reads_as_none_and_newer_bytes_are_ignored() {
    let info = NodeInfo {
        name: "vps".into(),
        acme: Some(crate::cert::AcmeOffer {
            directory: "https://ca/dir".into(),
            wildcard_zone: Some("z.test".into()),
        }),
        ..NodeInfo::default()
    };
    let bytes = Body::NodeInfo(info.clone()).encode();
    // Before `acme` (an Option, one byte when None) the body ended earlier.
    let without = Body::NodeInfo(NodeInfo {
        acme: None,
        ..info.clone()
    })
    .encode();
    let old = &without[..without.len() - 1];
    match Body::decode(Kind::NodeInfo, old).unwrap() {
        Body::NodeInfo(read) => assert_eq!(read.acme, None),
        other => panic!("{other:?}"),
    }
    // A newer node's extra trailing field is ignored.
    let mut newer = bytes.clone();
    newer.extend_from_slice(&[1, 2, 3]);
    assert_eq!(
        Body::decode(Kind::NodeInfo, &newer).unwrap(),
        Body::NodeInfo(info)
    );
}
