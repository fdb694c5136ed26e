//! Golden bytes of the data-plane frames: every stream header and reply an edge and a member
//! exchange, length prefix included. Changing one is a deliberate format change: update the
//! hex in the same commit and say why.

use super::*;

/// One message of either direction.
#[derive(Debug, PartialEq)]
enum Message {
    Header(StreamHeader),
    Reply(StreamReply),
}

impl Message {
    fn frame(&self) -> Vec<u8> {
        match self {
            Message::Header(header) => encode_frame(header),
            Message::Reply(reply) => encode_frame(reply),
        }
    }

    /// Decodes a frame's body as the same kind of message as `self`.
    fn decode_like(&self, body: &[u8]) -> Message {
        match self {
            Message::Header(_) => Message::Header(decode_frame(body).unwrap()),
            Message::Reply(_) => Message::Reply(decode_frame(body).unwrap()),
        }
    }
}

fn messages() -> Vec<(&'static str, Message)> {
    vec![
        (
            "header_http_v4",
            Message::Header(StreamHeader::V1(StreamHeaderV1 {
                spec: RouteSpec::Http {
                    host: "blog.z.test".into(),
                },
                client: "198.18.0.50:40000".parse().unwrap(),
                edge: "198.18.0.10:443".parse().unwrap(),
            })),
        ),
        (
            "header_tcp_v6",
            Message::Header(StreamHeader::V1(StreamHeaderV1 {
                spec: RouteSpec::Tcp { port: 2222 },
                client: "[2001:db8::1]:5".parse().unwrap(),
                edge: "198.18.0.10:2222".parse().unwrap(),
            })),
        ),
        (
            "reply_connected",
            Message::Reply(StreamReply::V1(StreamReplyV1::Connected)),
        ),
        (
            "reply_no_route",
            Message::Reply(StreamReply::V1(StreamReplyV1::NoRoute)),
        ),
        (
            "reply_unreachable",
            Message::Reply(StreamReply::V1(StreamReplyV1::TargetUnreachable {
                reason: "refused".into(),
            })),
        ),
    ]
}

/// The pinned frames, as hex: the `u16` length, then the postcard message.
const GOLDEN: &[(&str, &str)] = &[
    (
        "header_http_v4",
        "001d00000b626c6f672e7a2e7465737400c6120032c0b80200c612000abb03",
    ),
    (
        "header_tcp_v6",
        "001d0001ae110120010db80000000000000000000000010500c612000aae11",
    ),
    ("reply_connected", "00020000"),
    ("reply_no_route", "00020001"),
    ("reply_unreachable", "000a00020772656675736564"),
];

#[test]
fn every_frame_encodes_to_its_golden_bytes_and_back() {
    let messages = messages();
    let mut changed = Vec::new();
    for (name, message) in &messages {
        let frame = hex::encode(message.frame());
        let golden = GOLDEN.iter().find(|(n, _)| n == name).map(|(_, hex)| *hex);
        if golden != Some(frame.as_str()) {
            changed.push(format!("    (\"{name}\", \"{frame}\"),"));
            continue;
        }
        let bytes = hex::decode(golden.unwrap_or_default()).unwrap();
        assert_eq!(frame_len([bytes[0], bytes[1]]).unwrap(), bytes.len() - 2);
        assert_eq!(message.decode_like(&bytes[2..]), *message, "{name}");
    }
    assert!(
        changed.is_empty() && GOLDEN.len() == messages.len(),
        "frames differ from the golden bytes; now:\n{}",
        changed.join("\n")
    );
}
