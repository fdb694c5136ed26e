//! The data-plane stream protocol: what an edge says when it opens a bi-stream to a hosting
//! member, the member's answer, and the PROXY protocol v2 header a target may ask for.
//!
//! Every message is one frame: a big-endian `u16` length, then the postcard bytes of a
//! versioned enum. Frames are small and bounded, so a peer cannot make a member buffer much
//! before the splice starts.

use crate::route::RouteSpec;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

/// ALPN of the data-plane QUIC connections; a peer speaking anything else is refused.
pub const ALPN: &[u8] = b"hearth-tunnel/1";
/// Largest frame accepted from a peer.
pub const MAX_FRAME_BYTES: usize = 4096;

/// Sent by the edge as the first bytes of every stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamHeader {
    /// First version.
    V1(StreamHeaderV1),
}

/// What to connect the stream to, and on whose behalf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamHeaderV1 {
    /// The route the visitor matched; the member looks up its own target for it.
    pub spec: RouteSpec,
    /// The visitor's address as the edge saw it.
    pub client: SocketAddr,
    /// The edge address the visitor connected to (the PROXY header's destination).
    pub edge: SocketAddr,
}

/// The hosting member's answer, sent before any payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamReply {
    /// First version.
    V1(StreamReplyV1),
}

/// Whether the member reached the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamReplyV1 {
    /// Connected: payload follows in both directions.
    Connected,
    /// This member hosts no live route for that spec.
    NoRoute,
    /// The target did not accept the connection in time.
    TargetUnreachable {
        /// Why, for the edge's log and 502 page.
        reason: String,
    },
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix is over [`MAX_FRAME_BYTES`] or zero.
    #[error("frame length {0} is out of range (1..={MAX_FRAME_BYTES})")]
    Length(usize),
    /// The bytes are not a known message.
    #[error("frame is not a valid message: {0}")]
    Decode(String),
}

/// Encodes a message as one frame.
pub fn encode_frame<T: Serialize>(message: &T) -> Vec<u8> {
    let body = postcard::to_stdvec(message).unwrap_or_default();
    let mut frame = Vec::with_capacity(2 + body.len());
    // Our own messages are far below u16::MAX; see the round-trip test.
    frame.extend_from_slice(&(body.len().min(u16::MAX as usize) as u16).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// Checks a frame's length prefix, returning how many bytes follow.
pub fn frame_len(prefix: [u8; 2]) -> Result<usize, FrameError> {
    let len = u16::from_be_bytes(prefix) as usize;
    if len == 0 || len > MAX_FRAME_BYTES {
        return Err(FrameError::Length(len));
    }
    Ok(len)
}

/// Decodes a frame's body (the bytes after the prefix); never panics on garbage.
pub fn decode_frame<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, FrameError> {
    postcard::from_bytes(body).map_err(|e| FrameError::Decode(e.to_string()))
}

/// The PROXY protocol v2 signature.
const PROXY_V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// A PROXY protocol v2 header (PROXY command, TCP) telling the target that `client`
/// connected to `edge`. Mixed families are sent as IPv6 with IPv4-mapped addresses.
pub fn proxy_v2_header(client: SocketAddr, edge: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 36);
    out.extend_from_slice(&PROXY_V2_SIGNATURE);
    out.push(0x21); // version 2, PROXY
    match (client.ip(), edge.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            out.push(0x11); // TCP over IPv4
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&src.octets());
            out.extend_from_slice(&dst.octets());
        }
        (src, dst) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.push(0x21); // TCP over IPv6
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(src).octets());
            out.extend_from_slice(&v6(dst).octets());
        }
    }
    out.extend_from_slice(&client.port().to_be_bytes());
    out.extend_from_slice(&edge.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(host: &str) -> StreamHeader {
        StreamHeader::V1(StreamHeaderV1 {
            spec: RouteSpec::Http { host: host.into() },
            client: "198.18.0.50:40000".parse().unwrap(),
            edge: "198.18.0.10:80".parse().unwrap(),
        })
    }

    #[test]
    fn frames_round_trip() {
        let frame = encode_frame(&header("blog.example.com"));
        let len = frame_len([frame[0], frame[1]]).unwrap();
        assert_eq!(len, frame.len() - 2);
        let back: StreamHeader = decode_frame(&frame[2..]).unwrap();
        assert_eq!(back, header("blog.example.com"));
        let reply = StreamReply::V1(StreamReplyV1::TargetUnreachable {
            reason: "refused".into(),
        });
        let frame = encode_frame(&reply);
        assert_eq!(decode_frame::<StreamReply>(&frame[2..]).unwrap(), reply);
    }

    #[test]
    fn bad_lengths_are_refused() {
        assert!(frame_len([0, 0]).is_err());
        assert!(frame_len((MAX_FRAME_BYTES as u16 + 1).to_be_bytes()).is_err());
    }

    #[test]
    fn proxy_v2_headers_follow_the_spec() {
        let v4 = proxy_v2_header(
            "198.18.0.50:40000".parse().unwrap(),
            "198.18.0.10:2222".parse().unwrap(),
        );
        assert_eq!(&v4[..12], &PROXY_V2_SIGNATURE);
        assert_eq!(v4[12], 0x21);
        assert_eq!(v4[13], 0x11);
        assert_eq!(u16::from_be_bytes([v4[14], v4[15]]), 12);
        assert_eq!(&v4[16..20], &[198, 18, 0, 50]);
        assert_eq!(&v4[20..24], &[198, 18, 0, 10]);
        assert_eq!(u16::from_be_bytes([v4[24], v4[25]]), 40000);
        assert_eq!(u16::from_be_bytes([v4[26], v4[27]]), 2222);
        assert_eq!(v4.len(), 28);
        let mixed = proxy_v2_header(
            "[2001:db8::1]:5".parse().unwrap(),
            "198.18.0.10:2222".parse().unwrap(),
        );
        assert_eq!(mixed[13], 0x21);
        assert_eq!(mixed.len(), 16 + 36);
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_frame::<StreamHeader>(&bytes);
            let _ = decode_frame::<StreamReply>(&bytes);
        }
    }
}
