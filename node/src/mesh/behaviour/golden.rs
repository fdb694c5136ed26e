//! Golden bytes of the request-response messages as libp2p's CBOR codec puts them on the wire
//! (the codec's own encoding, driven through its `Codec` trait): every variant of every join,
//! sync and failure-detector message. `{record}` stands for the pinned record below. A change
//! is a deliberate format change: update the hex in the same commit and say why; the failing
//! test prints the new hex of every message that changed.

use futures::executor::block_on;
use futures::io::Cursor;
use hearth_proto::invite::{InviteError, InviteSecret};
use hearth_proto::record::{Body, Member};
use hearth_proto::wire::{
    JoinRequest, JoinResponse, SwimPacket, SwimReceipt, SyncRequest, SyncRequestV1, SyncResponse,
    SyncResponseV1, JOIN_PROTOCOL, SWIM_PROTOCOL, SYNC_PROTOCOL,
};
use hearth_proto::{Hlc, MeshId, NodeKey, Record, Role};
use libp2p::request_response::{cbor, Codec as _};
use libp2p::StreamProtocol;
use serde::{de::DeserializeOwned, Serialize};

/// The same record as `hearth_proto`'s pinned envelope: key `[1; 32]`, mesh `[9; 32]`.
fn record() -> Record {
    let body = Body::Member(Member {
        node: NodeKey::from_secret([2; 32]).id(),
        name: "box".into(),
        role: Role::Admin,
    });
    let hlc = Hlc {
        millis: 1_700_000_000_000,
        counter: 3,
    };
    Record::sign(
        &NodeKey::from_secret([1; 32]),
        MeshId::from_bytes([9; 32]),
        &body,
        hlc,
    )
}

/// One message of any protocol, requests and responses.
#[derive(Debug, PartialEq)]
enum Message {
    JoinRequest(JoinRequest),
    JoinResponse(JoinResponse),
    SyncRequest(SyncRequest),
    SyncResponse(SyncResponse),
    SwimPacket(SwimPacket),
    SwimReceipt(SwimReceipt),
}

fn write_request<Req, Resp>(protocol: &'static str, request: &Req) -> Vec<u8>
where
    Req: Serialize + DeserializeOwned + Clone + Send + 'static,
    Resp: Serialize + DeserializeOwned + Send + 'static,
{
    let mut io = Cursor::new(Vec::new());
    let mut codec = cbor::codec::Codec::<Req, Resp>::default();
    block_on(codec.write_request(&StreamProtocol::new(protocol), &mut io, request.clone()))
        .unwrap();
    io.into_inner()
}

fn write_response<Req, Resp>(protocol: &'static str, response: &Resp) -> Vec<u8>
where
    Req: Serialize + DeserializeOwned + Send + 'static,
    Resp: Serialize + DeserializeOwned + Clone + Send + 'static,
{
    let mut io = Cursor::new(Vec::new());
    let mut codec = cbor::codec::Codec::<Req, Resp>::default();
    block_on(codec.write_response(&StreamProtocol::new(protocol), &mut io, response.clone()))
        .unwrap();
    io.into_inner()
}

fn read_request<Req, Resp>(protocol: &'static str, bytes: &[u8]) -> Req
where
    Req: Serialize + DeserializeOwned + Send + 'static,
    Resp: Serialize + DeserializeOwned + Send + 'static,
{
    let mut codec = cbor::codec::Codec::<Req, Resp>::default();
    block_on(codec.read_request(&StreamProtocol::new(protocol), &mut Cursor::new(bytes))).unwrap()
}

fn read_response<Req, Resp>(protocol: &'static str, bytes: &[u8]) -> Resp
where
    Req: Serialize + DeserializeOwned + Send + 'static,
    Resp: Serialize + DeserializeOwned + Send + 'static,
{
    let mut codec = cbor::codec::Codec::<Req, Resp>::default();
    block_on(codec.read_response(&StreamProtocol::new(protocol), &mut Cursor::new(bytes))).unwrap()
}

impl Message {
    fn encode(&self) -> Vec<u8> {
        match self {
            Message::JoinRequest(m) => write_request::<_, JoinResponse>(JOIN_PROTOCOL, m),
            Message::JoinResponse(m) => write_response::<JoinRequest, _>(JOIN_PROTOCOL, m),
            Message::SyncRequest(m) => write_request::<_, SyncResponse>(SYNC_PROTOCOL, m),
            Message::SyncResponse(m) => write_response::<SyncRequest, _>(SYNC_PROTOCOL, m),
            Message::SwimPacket(m) => write_request::<_, SwimReceipt>(SWIM_PROTOCOL, m),
            Message::SwimReceipt(m) => write_response::<SwimPacket, _>(SWIM_PROTOCOL, m),
        }
    }

    /// Decodes `bytes` as the same kind of message as `self`.
    fn decode_like(&self, bytes: &[u8]) -> Message {
        match self {
            Message::JoinRequest(_) => {
                Message::JoinRequest(read_request::<_, JoinResponse>(JOIN_PROTOCOL, bytes))
            }
            Message::JoinResponse(_) => {
                Message::JoinResponse(read_response::<JoinRequest, _>(JOIN_PROTOCOL, bytes))
            }
            Message::SyncRequest(_) => {
                Message::SyncRequest(read_request::<_, SyncResponse>(SYNC_PROTOCOL, bytes))
            }
            Message::SyncResponse(_) => {
                Message::SyncResponse(read_response::<SyncRequest, _>(SYNC_PROTOCOL, bytes))
            }
            Message::SwimPacket(_) => {
                Message::SwimPacket(read_request::<_, SwimReceipt>(SWIM_PROTOCOL, bytes))
            }
            Message::SwimReceipt(_) => {
                Message::SwimReceipt(read_response::<SwimPacket, _>(SWIM_PROTOCOL, bytes))
            }
        }
    }
}

fn invite_errors() -> Vec<(&'static str, InviteError)> {
    vec![
        ("not_an_invite", InviteError::NotAnInvite),
        ("bad_character", InviteError::BadCharacter { position: 9 }),
        ("truncated", InviteError::Truncated { have: 3, need: 9 }),
        ("tampered", InviteError::Tampered),
        ("unsupported_version", InviteError::UnsupportedVersion(2)),
        ("unknown", InviteError::Unknown),
        ("expired", InviteError::Expired { ago_secs: 5 }),
        ("used_up", InviteError::UsedUp),
        (
            "wrong_mesh",
            InviteError::WrongMesh {
                invite: "aa".into(),
                context: "this node belongs to".into(),
                other: "bb".into(),
            },
        ),
        ("revoked", InviteError::Revoked),
        ("internal", InviteError::Internal("disk full".into())),
    ]
}

fn messages() -> Vec<(String, Message)> {
    let record = record();
    let sync = |request| Message::SyncRequest(SyncRequest::V1(request));
    let answer = |response| Message::SyncResponse(SyncResponse::V1(response));
    let mut out = vec![
        (
            "join_request",
            Message::JoinRequest(JoinRequest::V1 {
                mesh: MeshId::from_bytes([9; 32]),
                secret: InviteSecret([5; 32]),
                name: "box".into(),
            }),
        ),
        (
            "join_granted",
            Message::JoinResponse(JoinResponse::V1(Ok(vec![record.clone()]))),
        ),
        (
            "push",
            sync(SyncRequestV1::Push {
                records: vec![record.clone()],
            }),
        ),
        (
            "summary",
            sync(SyncRequestV1::Summary {
                digest: [0xd1; 32],
                versions: vec![record.version()],
            }),
        ),
        (
            "summary_digest_only",
            sync(SyncRequestV1::Summary {
                digest: [0xd1; 32],
                versions: Vec::new(),
            }),
        ),
        ("dial_back", sync(SyncRequestV1::DialBack { port: 7700 })),
        (
            "ack",
            answer(SyncResponseV1::Ack {
                stored: 2,
                rejected: 1,
            }),
        ),
        (
            "delta",
            answer(SyncResponseV1::Delta {
                records: vec![record.clone()],
                want: vec![record.id()],
            }),
        ),
        ("in_sync", answer(SyncResponseV1::InSync)),
        ("not_a_member", answer(SyncResponseV1::NotAMember)),
        (
            "dialed_back",
            answer(SyncResponseV1::DialedBack {
                addr: "/ip4/198.18.0.50/udp/7700/quic-v1".into(),
                result: Ok(()),
            }),
        ),
        (
            "dialed_back_failed",
            answer(SyncResponseV1::DialedBack {
                addr: "/ip4/198.18.0.50/udp/7700/quic-v1".into(),
                result: Err("timed out".into()),
            }),
        ),
        ("differs", answer(SyncResponseV1::Differs)),
        (
            "swim_packet",
            Message::SwimPacket(SwimPacket::V1 {
                bytes: vec![1, 2, 3],
            }),
        ),
        (
            "swim_forwarded",
            Message::SwimPacket(SwimPacket::forwarded(
                &NodeKey::from_secret([1; 32]),
                &MeshId::from_bytes([9; 32]),
                NodeKey::from_secret([2; 32]).id(),
                vec![1, 2, 3],
            )),
        ),
        (
            "swim_relay",
            Message::SwimPacket(SwimPacket::Relay {
                to: NodeKey::from_secret([2; 32]).id(),
                bytes: vec![1, 2, 3],
            }),
        ),
        (
            "swim_relayed",
            Message::SwimPacket(SwimPacket::Relayed {
                origin: NodeKey::from_secret([1; 32]).id(),
                bytes: vec![1, 2, 3],
            }),
        ),
        (
            "swim_pass",
            Message::SwimPacket(SwimPacket::Pass {
                bytes: vec![1, 2, 3],
            }),
        ),
        (
            "swim_passed",
            Message::SwimPacket(SwimPacket::Passed {
                bytes: vec![1, 2, 3],
            }),
        ),
        ("swim_receipt", Message::SwimReceipt(SwimReceipt::V1)),
    ]
    .into_iter()
    .map(|(name, message)| (name.to_string(), message))
    .collect::<Vec<_>>();
    for (name, error) in invite_errors() {
        out.push((
            format!("join_refused_{name}"),
            Message::JoinResponse(JoinResponse::V1(Err(error))),
        ));
    }
    out
}

/// The CBOR of [`record`], inside every message that carries it.
const GOLDEN_RECORD: &str = "a7646d65736898200909090909090909090909090909090909090909090909090909090909090909646b696e64666d656d626572636b657978403831333937373065613837643137356635366133353436366333346337656363636238643861393162346565333761323564663630663562386663396233393464626f64799826011881183918770e18a8187d17185f185618a31854186618c3184c187e18cc18cb188d188a189118b418ee183718a2185d18f60f185b188f18c918b31894031862186f18780166617574686f729820188a188818e318dd18740918f1189518fd185218db182d183c18ba185d187218ca18670918bf181d189412181b18f3187418880118b40f186f185c63686c63a2666d696c6c69731b0000018bcfe5680067636f756e74657203697369676e6174757265984018cf1318dd189e18fb181a18e8185f18cc0a0e189a0a189f18d318f618b21820189f18a51836181b18dd186218ab1848184408184f187d18ea18ca1899185818d318af0d18c80018e91832185818c91832182d18f218c41844189a186c188318df150018e41878181d185118db1876184b18c80e08";

/// The pinned messages, as hex.
const GOLDEN: &[(&str, &str)] = &[
    ("join_request", "a1625631a3646d657368982009090909090909090909090909090909090909090909090909090909090909096673656372657498200505050505050505050505050505050505050505050505050505050505050505646e616d6563626f78"),
    ("join_granted", "a1625631a1624f6b81{record}"),
    ("push", "a1625631a16450757368a1677265636f72647381{record}"),
    ("summary", "a1625631a16753756d6d617279a266646967657374982018d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d16876657273696f6e7381a3626964a2646b696e64666d656d626572636b657978403831333937373065613837643137356635366133353436366333346337656363636238643861393162346565333761323564663630663562386663396233393463686c63a2666d696c6c69731b0000018bcfe5680067636f756e7465720366617574686f729820188a188818e318dd18740918f1189518fd185218db182d183c18ba185d187218ca18670918bf181d189412181b18f3187418880118b40f186f185c"),
    ("summary_digest_only", "a1625631a16753756d6d617279a266646967657374982018d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d118d16876657273696f6e7380"),
    ("dial_back", "a1625631a1684469616c4261636ba164706f7274191e14"),
    ("ack", "a1625631a16341636ba26673746f726564026872656a656374656401"),
    ("delta", "a1625631a16544656c7461a2677265636f72647381{record}6477616e7481a2646b696e64666d656d626572636b6579784038313339373730656138376431373566353661333534363663333463376563636362386438613931623465653337613235646636306635623866633962333934"),
    ("in_sync", "a162563166496e53796e63"),
    ("not_a_member", "a16256316a4e6f74414d656d626572"),
    ("dialed_back", "a1625631a16a4469616c65644261636ba2646164647278212f6970342f3139382e31382e302e35302f7564702f373730302f717569632d763166726573756c74a1624f6b80"),
    ("dialed_back_failed", "a1625631a16a4469616c65644261636ba2646164647278212f6970342f3139382e31382e302e35302f7564702f373730302f717569632d763166726573756c74a1634572726974696d6564206f7574"),
    ("differs", "a16256316744696666657273"),
    ("swim_packet", "a1625631a165627974657343010203"),
    ("swim_forwarded", "a169466f72776172646564a462746f98201881183918770e18a8187d17185f185618a31854186618c3184c187e18cc18cb188d188a189118b418ee183718a2185d18f60f185b188f18c918b31894666f726967696e9820188a188818e318dd18740918f1189518fd185218db182d183c18ba185d187218ca18670918bf181d189412181b18f3187418880118b40f186f185c65627974657343010203697369676e6174757265584075bb4b4e3c20b12aab6ab45ce7249e7680d07bb336563baad44eb4ea32902ec0444950230ad510c539656ce3e7d9410ea1363f6f077178e10197f8eea4e84f0b"),
    ("swim_relay", "a16552656c6179a262746f98201881183918770e18a8187d17185f185618a31854186618c3184c187e18cc18cb188d188a189118b418ee183718a2185d18f60f185b188f18c918b3189465627974657343010203"),
    ("swim_relayed", "a16752656c61796564a2666f726967696e9820188a188818e318dd18740918f1189518fd185218db182d183c18ba185d187218ca18670918bf181d189412181b18f3187418880118b40f186f185c65627974657343010203"),
    ("swim_pass", "a16450617373a165627974657343010203"),
    ("swim_passed", "a166506173736564a165627974657343010203"),
    ("swim_receipt", "625631"),
    ("join_refused_not_an_invite", "a1625631a1634572726d6e6f745f616e5f696e76697465"),
    ("join_refused_bad_character", "a1625631a163457272a16d6261645f636861726163746572a168706f736974696f6e09"),
    ("join_refused_truncated", "a1625631a163457272a1697472756e6361746564a2646861766503646e65656409"),
    ("join_refused_tampered", "a1625631a1634572726874616d7065726564"),
    ("join_refused_unsupported_version", "a1625631a163457272a173756e737570706f727465645f76657273696f6e02"),
    ("join_refused_unknown", "a1625631a16345727267756e6b6e6f776e"),
    ("join_refused_expired", "a1625631a163457272a16765787069726564a16861676f5f7365637305"),
    ("join_refused_used_up", "a1625631a16345727267757365645f7570"),
    ("join_refused_wrong_mesh", "a1625631a163457272a16a77726f6e675f6d657368a366696e7669746562616167636f6e746578747474686973206e6f64652062656c6f6e677320746f656f74686572626262"),
    ("join_refused_revoked", "a1625631a163457272677265766f6b6564"),
    ("join_refused_internal", "a1625631a163457272a168696e7465726e616c696469736b2066756c6c"),
];

#[test]
fn every_message_encodes_to_its_golden_bytes_and_back() {
    let messages = messages();
    let mut changed = Vec::new();
    for (name, message) in &messages {
        let bytes = hex::encode(message.encode());
        let golden = GOLDEN
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, hex)| hex.replace("{record}", GOLDEN_RECORD));
        if golden.as_deref() != Some(bytes.as_str()) {
            let shown = bytes.replace(GOLDEN_RECORD, "{record}");
            changed.push(format!("    (\"{name}\", \"{shown}\"),"));
            continue;
        }
        let pinned = hex::decode(golden.unwrap_or_default()).unwrap();
        assert_eq!(message.decode_like(&pinned), *message, "{name}");
    }
    assert!(
        changed.is_empty() && GOLDEN.len() == messages.len(),
        "messages differ from the golden bytes; now:\n{}",
        changed.join("\n")
    );
}
