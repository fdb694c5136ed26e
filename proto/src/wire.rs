//! Control-plane messages between nodes, one versioned enum per protocol.
//!
//! Each protocol is a libp2p request-response exchange, CBOR-encoded by libp2p's codec (its
//! golden bytes are pinned where the codec is, `hearth-node`'s `mesh::behaviour`); the failure
//! detector's and record pushes' stream frames are postcard ([`SwimPacket`], [`PushFrame`],
//! pinned in this module's tests). Adding a `V2`
//! variant later lets old and new nodes tell each other apart instead of misreading bytes.

use crate::id::{MeshId, NodeId, NodeKey};
use crate::invite::{InviteError, InviteSecret};
use crate::record::{Record, RecordId, RecordVersion};
use serde::{Deserialize, Serialize};

/// Protocol name for joining with an invite.
pub const JOIN_PROTOCOL: &str = "/hearth/join/1";
/// Protocol name for record push and anti-entropy.
pub const SYNC_PROTOCOL: &str = "/hearth/sync/1";
/// Protocol name for the failure detector's (SWIM) packets.
pub const SWIM_PROTOCOL: &str = "/hearth/swim/1";
/// The failure detector's packets as length-prefixed frames ([`SwimPacket::encode`]) on one
/// long-lived stream per peer and direction; [`SWIM_PROTOCOL`] is the fallback for a peer
/// that does not speak it.
pub const SWIM_STREAM_PROTOCOL: &str = "/hearth/swim-stream/1";
/// Record pushes as length-prefixed frames ([`PushFrame::encode`]) on one long-lived stream
/// per peer and direction, unanswered; a push too large for a frame, and any push to a peer
/// that does not speak this protocol, is a [`SyncRequestV1::Push`] on [`SYNC_PROTOCOL`].
pub const PUSH_STREAM_PROTOCOL: &str = "/hearth/push-stream/1";
/// Largest [`PushFrame`] sent or accepted.
pub const MAX_PUSH_FRAME: usize = 256 * 1024;
/// Largest failure-detector packet; foca keeps its packets under this.
pub const MAX_SWIM_PACKET: usize = 1400;
/// Most records in one message; larger sets are sent in several.
pub const MAX_RECORDS_PER_MESSAGE: usize = 2048;
/// Largest encoded request or response accepted from a peer.
pub const MAX_MESSAGE_BYTES: u64 = 8 * 1024 * 1024;

/// Records pushed to a member on [`PUSH_STREAM_PROTOCOL`]: validated each on its own, as a
/// [`SyncRequestV1::Push`] is, but not acknowledged (anti-entropy repairs a lost one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PushFrame {
    /// First version.
    V1 {
        /// The records.
        records: Vec<Record>,
    },
}

impl PushFrame {
    /// One frame (postcard; the variant index first, so a reader refuses a frame of a kind it
    /// does not know).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// Parses a frame; never panics on garbage.
    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

/// One failure-detector packet (foca's encoding inside), sent to one member over the
/// authenticated control connection. Liveness lives here, in memory, not in stored records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SwimPacket {
    /// First version.
    V1 {
        /// foca's packet.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// A packet for a member the sender keeps no connection to (`mesh::topology`), passed on
    /// by a member connected to both. Signed by its origin, so the forwarder can neither
    /// forge nor alter it: the receiver treats it as a packet from `origin`.
    Forwarded {
        /// The member the packet is for.
        to: NodeId,
        /// The member that wrote it.
        origin: NodeId,
        /// foca's packet.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
        /// `origin`'s signature over [`SwimPacket::forwarded_bytes`].
        #[serde(with = "serde_bytes")]
        signature: Vec<u8>,
    },
    /// A packet for a member the sender keeps no connection to, handed to a member connected
    /// to both (a hub), which passes it on as [`SwimPacket::Relayed`]. Replaced `Forwarded`
    /// as what a node sends (2026-12-07): the signature made every relayed packet 96 bytes
    /// longer (a third of a hub's idle traffic) and protected little, since a member can
    /// already make any liveness claim about any other in the detector's own gossip. See
    /// docs/edges.md. Replaced in turn by [`SwimPacket::Pass`]; still taken.
    Relay {
        /// The member the packet is for.
        to: NodeId,
        /// foca's packet.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// A [`SwimPacket::Relay`] passed on: the relaying member (the authenticated connection
    /// it came on) vouches that `origin`, whose connection the relay came on, wrote it.
    Relayed {
        /// The member that handed it to the relaying member.
        origin: NodeId,
        /// foca's packet.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// [`SwimPacket::Relay`] without the addressee: the member passing it on reads it from
    /// foca's own header (which also names the sender, which it checks against the connection
    /// the packet came on). Replaces `Relay` as what a node sends: the addressee and the
    /// origin repeated foca's header, 32 bytes on each of a relayed packet's hops, and
    /// relayed failure-detector packets are most of an idle mesh's traffic.
    Pass {
        /// foca's packet.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// A [`SwimPacket::Pass`] passed on: the member it came from (the authenticated
    /// connection) vouches that the sender in foca's header wrote it.
    Passed {
        /// foca's packet.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
}

impl SwimPacket {
    /// One frame on the failure detector's stream (postcard; the variant index first, so a
    /// reader skips a frame of a kind it does not know).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// Parses a frame; never panics on garbage.
    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }

    /// What a forwarded packet's signature covers: the mesh, the addressee and the packet.
    pub fn forwarded_bytes(mesh: &MeshId, to: &NodeId, bytes: &[u8]) -> Vec<u8> {
        let fields = ("hearth-swim-forwarded-v1", mesh, to, bytes);
        postcard::to_stdvec(&fields).unwrap_or_default()
    }

    /// A packet for `to`, signed by `key`, to be passed on by another member.
    pub fn forwarded(key: &NodeKey, mesh: &MeshId, to: NodeId, bytes: Vec<u8>) -> Self {
        let signature = key.sign(&Self::forwarded_bytes(mesh, &to, &bytes)).to_vec();
        SwimPacket::Forwarded {
            to,
            origin: key.id(),
            bytes,
            signature,
        }
    }

    /// Whether a forwarded packet was signed by its origin for `mesh`.
    pub fn verify_forwarded(&self, mesh: &MeshId) -> bool {
        let SwimPacket::Forwarded {
            to,
            origin,
            bytes,
            signature,
        } = self
        else {
            return false;
        };
        let Ok(signature) = <[u8; 64]>::try_from(signature.as_slice()) else {
            return false;
        };
        let Some(key) = origin.verifying_key() else {
            return false;
        };
        ed25519_dalek::Verifier::verify(
            &key,
            &Self::forwarded_bytes(mesh, to, bytes),
            &ed25519_dalek::Signature::from_bytes(&signature),
        )
        .is_ok()
    }
}

/// The receipt of a [`SwimPacket`]: request-response needs an answer; the packet's meaning
/// (ack, indirect ack) travels in packets of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SwimReceipt {
    /// First version.
    V1,
}

/// A node asking an inviter for admission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinRequest {
    /// First version.
    V1 {
        /// Mesh named in the invite code.
        mesh: MeshId,
        /// The code's secret.
        secret: InviteSecret,
        /// The name the node wants to be listed under.
        name: String,
    },
}

/// The inviter's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinResponse {
    /// First version: the mesh's records (including the new Member record), or why not.
    V1(Result<Vec<Record>, InviteError>),
}

/// Record replication between members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRequest {
    /// First version.
    V1(SyncRequestV1),
}

/// Record replication requests, version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRequestV1 {
    /// New records the sender accepted; the receiver validates each on its own.
    Push {
        /// The records.
        records: Vec<Record>,
    },
    /// Anti-entropy: the sender's digest and, if it differs, every version it holds.
    Summary {
        /// [`crate::merge::digest`] of the sender's versions.
        digest: [u8; 32],
        /// The sender's versions; empty to compare digests only, answered with
        /// [`SyncResponseV1::InSync`] or [`SyncResponseV1::Differs`], so an idle mesh
        /// exchanges 32-byte summaries.
        versions: Vec<RecordVersion>,
    },
    /// Reachability: "dial me back over QUIC on this UDP port, at the IP you see me at". The
    /// libp2p AutoNAT v2 client asks only peers it dialed itself, which a public node whose
    /// peers are all behind NAT has none of; this works over any connection.
    DialBack {
        /// The sender's QUIC listen port.
        port: u16,
    },
}

/// Answers to [`SyncRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncResponse {
    /// First version.
    V1(SyncResponseV1),
}

/// Record replication answers, version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncResponseV1 {
    /// Push handled: how many records were stored and how many refused.
    Ack {
        /// Records that changed the receiver's state.
        stored: u32,
        /// Records that failed validation.
        rejected: u32,
    },
    /// Summary handled: records the sender lacks, and ids the receiver wants pushed.
    Delta {
        /// Newer or missing records for the sender.
        records: Vec<Record>,
        /// Ids where the sender's version is newer or unknown here.
        want: Vec<RecordId>,
    },
    /// Digests already equal.
    InSync,
    /// The sender is not a current member here; nothing was read or stored.
    NotAMember,
    /// DialBack handled: the address dialed and whether a connection came up there.
    DialedBack {
        /// The multiaddr dialed (the IP this member sees the sender at, the asked port).
        addr: String,
        /// `Ok` when the connection came up, else why not.
        result: Result<(), String>,
    },
    /// A digest-only summary differs: send the versions.
    Differs,
}

#[cfg(test)]
mod golden;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_packet_verifies_only_as_signed() {
        let mesh = MeshId::from_bytes([3; 32]);
        let origin = NodeKey::from_secret([1; 32]);
        let to = NodeKey::from_secret([2; 32]).id();
        let packet = SwimPacket::forwarded(&origin, &mesh, to, vec![1, 2, 3]);
        assert!(packet.verify_forwarded(&mesh));
        assert!(!packet.verify_forwarded(&MeshId::from_bytes([4; 32])));
        let SwimPacket::Forwarded {
            to,
            origin,
            bytes,
            signature,
        } = packet
        else {
            unreachable!()
        };
        let forged_origin = SwimPacket::Forwarded {
            to,
            origin: NodeKey::from_secret([5; 32]).id(),
            bytes: bytes.clone(),
            signature: signature.clone(),
        };
        assert!(!forged_origin.verify_forwarded(&mesh));
        let altered = SwimPacket::Forwarded {
            to,
            origin,
            bytes: vec![1, 2, 4],
            signature: signature.clone(),
        };
        assert!(!altered.verify_forwarded(&mesh));
        let readdressed = SwimPacket::Forwarded {
            to: origin,
            origin,
            bytes,
            signature,
        };
        assert!(!readdressed.verify_forwarded(&mesh));
        assert!(!SwimPacket::V1 { bytes: vec![] }.verify_forwarded(&mesh));
    }
}
