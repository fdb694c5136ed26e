//! Mapping between Hearth node ids and libp2p peer ids.
//!
//! The libp2p identity *is* the node key, so a peer id authenticated by the QUIC or Noise
//! handshake proves the node id with no extra exchange.

use hearth_proto::{NodeId, NodeKey};
use libp2p::identity::{ed25519, Keypair, PublicKey};
use libp2p::PeerId;

/// The libp2p keypair for a node key.
pub fn keypair(key: &NodeKey) -> Keypair {
    let mut secret = key.secret_bytes();
    // `ed25519_from_bytes` zeroizes its input; it only fails for a wrong length.
    Keypair::ed25519_from_bytes(&mut secret).unwrap_or_else(|_| Keypair::generate_ed25519())
}

/// The peer id of a node.
pub fn peer_id(node: &NodeId) -> PeerId {
    match ed25519::PublicKey::try_from_bytes(node.as_bytes()) {
        Ok(public) => PeerId::from_public_key(&PublicKey::from(public)),
        // NodeId guarantees a valid point; an unmatchable random id is the safe fallback.
        Err(_) => PeerId::random(),
    }
}

/// The node id behind a peer id, if the peer uses an ed25519 key (all Hearth nodes do).
pub fn node_id(peer: &PeerId) -> Option<NodeId> {
    let multihash = peer.as_ref();
    if multihash.code() != 0 {
        return None; // not an identity multihash: not an ed25519 key
    }
    let public = PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    let bytes = public.try_into_ed25519().ok()?.to_bytes();
    NodeId::from_bytes(bytes).ok()
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
}
