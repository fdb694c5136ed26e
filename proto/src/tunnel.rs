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

/// A PROXY protocol v2 header (PROXY command, TCP) telling the target that `client`
/// connected to `edge`, built by the `ppp` crate. Mixed families are sent as IPv6 with
/// IPv4-mapped addresses.
pub fn proxy_v2_header(client: SocketAddr, edge: SocketAddr) -> Vec<u8> {
    use ppp::v2::{Builder, Command, Protocol, Version};
    let v6 = |addr: SocketAddr| match addr.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), addr.port()),
        IpAddr::V6(_) => addr,
    };
    let addresses = if client.is_ipv4() == edge.is_ipv4() {
        (client, edge)
    } else {
        (v6(client), v6(edge))
    };
    // Building into a Vec only fails on I/O, which a Vec does not have.
    Builder::with_addresses(Version::Two | Command::Proxy, Protocol::Stream, addresses)
        .build()
        .unwrap_or_default()
}

#[cfg(test)]
mod golden;

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

    /// The PROXY v2 signature (the spec's section 2.2).
    const PROXY_V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

    #[test]
    fn proxy_v2_headers_follow_the_spec() {
        let v4 = proxy_v2_header(
            "198.18.0.50:40000".parse().unwrap(),
            "198.18.0.10:2222".parse().unwrap(),
        );
        // Golden bytes: the spec's layout, written out by hand.
        let mut want = PROXY_V2_SIGNATURE.to_vec();
        want.extend_from_slice(&[0x21, 0x11, 0x00, 12]);
        want.extend_from_slice(&[198, 18, 0, 50, 198, 18, 0, 10]);
        want.extend_from_slice(&40000u16.to_be_bytes());
        want.extend_from_slice(&2222u16.to_be_bytes());
        assert_eq!(v4, want);
        let mixed = proxy_v2_header(
            "[2001:db8::1]:5".parse().unwrap(),
            "198.18.0.10:2222".parse().unwrap(),
        );
        assert_eq!(&mixed[..12], &PROXY_V2_SIGNATURE);
        assert_eq!(mixed[13], 0x21);
        assert_eq!(mixed.len(), 16 + 36);
        match ppp::v2::Header::try_from(&mixed[..]).unwrap().addresses {
            ppp::v2::Addresses::IPv6(a) => {
                assert_eq!(
                    a.source_address,
                    "2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap()
                );
                assert_eq!(
                    a.destination_address,
                    "198.18.0.10"
                        .parse::<std::net::Ipv4Addr>()
                        .unwrap()
                        .to_ipv6_mapped()
                );
                assert_eq!((a.source_port, a.destination_port), (5, 2222));
            }
            other => panic!("{other:?}"),
        }
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_frame::<StreamHeader>(&bytes);
            let _ = decode_frame::<StreamReply>(&bytes);
        }
    }
}
