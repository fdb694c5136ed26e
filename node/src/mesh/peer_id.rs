//! Mapping between Hearth node ids and libp2p peer ids.
//!
//! The libp2p identity *is* the node key, so a peer id authenticated by the QUIC or Noise
//! handshake proves the node id with no extra exchange.
//!
//! An ed25519 peer id inlines the key: it is the identity multihash of the key's protobuf
//! encoding (`08 01 12 20` then the 32 key bytes). Both directions are byte copies here.
//! Going through libp2p's `PublicKey` decompresses the curve point each time (a field
//! square root, about 15 µs); a hub maps every connected peer for every record it handles,
//! and at 50 members that was half of its CPU while routes spread (docs/control-plane.md).

use hearth_proto::{NodeId, NodeKey};
use libp2p::identity::Keypair;
use libp2p::PeerId;

/// The protobuf header of an ed25519 public key: field 1 (type) = 1 (Ed25519), field 2
/// (data) of 32 bytes.
const ED25519_PROTOBUF_HEADER: [u8; 4] = [0x08, 0x01, 0x12, 0x20];
/// The multihash header of an identity hash of that 36-byte encoding.
const IDENTITY_MULTIHASH_HEADER: [u8; 2] = [0x00, 36];

/// The libp2p keypair for a node key.
pub fn keypair(key: &NodeKey) -> Keypair {
    let mut secret = key.secret_bytes();
    // `ed25519_from_bytes` zeroizes its input; it only fails for a wrong length.
    Keypair::ed25519_from_bytes(&mut secret).unwrap_or_else(|_| Keypair::generate_ed25519())
}

/// The peer id of a node.
pub fn peer_id(node: &NodeId) -> PeerId {
    let mut bytes = [0u8; 2 + 4 + 32];
    bytes[..2].copy_from_slice(&IDENTITY_MULTIHASH_HEADER);
    bytes[2..6].copy_from_slice(&ED25519_PROTOBUF_HEADER);
    bytes[6..].copy_from_slice(node.as_bytes());
    // A 36-byte identity multihash is always a valid peer id; the fallback cannot match.
    PeerId::from_bytes(&bytes).unwrap_or_else(|_| PeerId::random())
}

/// The node id behind a peer id, if the peer uses an ed25519 key (all Hearth nodes do).
///
/// The key's point is not checked again: a peer id that reaches the actor was proven by a
/// connection's handshake, and a record by a node id that is not a key fails verification.
pub fn node_id(peer: &PeerId) -> Option<NodeId> {
    let multihash = peer.as_ref();
    if multihash.code() != 0 {
        return None; // not an identity multihash: not an ed25519 key
    }
    let digest = multihash.digest();
    let key = digest.strip_prefix(&ED25519_PROTOBUF_HEADER[..])?;
    let bytes: [u8; 32] = key.try_into().ok()?;
    Some(NodeId::from_proven_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_both_ways() {
        let key = NodeKey::generate();
        let peer = peer_id(&key.id());
        assert_eq!(keypair(&key).public().to_peer_id(), peer);
        assert_eq!(node_id(&peer), Some(key.id()));
    }

    #[test]
    fn the_byte_mapping_matches_libp2p_for_many_keys() {
        for _ in 0..64 {
            let key = NodeKey::generate();
            let libp2p_peer = keypair(&key).public().to_peer_id();
            assert_eq!(peer_id(&key.id()), libp2p_peer);
            assert_eq!(node_id(&libp2p_peer), Some(key.id()));
        }
    }

    #[test]
    fn peers_of_other_key_types_have_no_node_id() {
        let mut sha256 = vec![0x12, 0x20];
        sha256.extend([7u8; 32]);
        let hashed = PeerId::from_bytes(&sha256).expect("a sha256 peer id");
        assert_eq!(node_id(&hashed), None);
        assert_eq!(node_id(&PeerId::random()), None);
    }
}
