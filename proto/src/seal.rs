//! Secrets sealed to nodes, so a replicated record can carry a private key that only chosen
//! members can read.
//!
//! Each recipient gets its own HPKE box (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256),
//! HKDF-SHA256, ChaCha20-Poly1305). The recipient's X25519 key is derived from its ed25519
//! node key by the birational map (`to_montgomery` / `to_scalar_bytes`), so every member
//! already has a sealing key and none has to be announced or stored. Using one key pair for
//! both Ed25519 and an X25519 KEM is analysed in "On using the same key pair for Ed25519 and an
//! X25519 based KEM" (ePrint 2021/509).
//!
//! The `context` given to [`seal`] and [`open`] is HPKE's `info`: it binds a box to where it
//! belongs (mesh, record kind, name), so a box cannot be moved into another record and opened
//! there as something else.

use crate::id::{NodeId, NodeKey};
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use serde::{Deserialize, Serialize};

type SealKem = X25519HkdfSha256;
type PublicKey = <SealKem as Kem>::PublicKey;
type PrivateKey = <SealKem as Kem>::PrivateKey;
type EncappedKey = <SealKem as Kem>::EncappedKey;

/// Largest secret accepted: keys and account credentials are a few hundred bytes.
pub const MAX_SECRET_LEN: usize = 4096;

/// One recipient's box.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SealedBox {
    /// Who can open it.
    pub to: NodeId,
    /// HPKE encapsulated key (32 bytes).
    pub enc: Vec<u8>,
    /// The secret, encrypted and authenticated.
    pub ciphertext: Vec<u8>,
}

/// A secret sealed to several nodes, one box each, ordered by recipient.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct Sealed {
    /// The boxes.
    pub boxes: Vec<SealedBox>,
}

/// Why a secret could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// This node has no box.
    #[error("the secret is not sealed to this node")]
    NotForThisNode,
    /// A recipient id is not a valid public key.
    #[error("recipient {0:?} has no valid public key")]
    BadRecipient(NodeId),
    /// The box does not open: damaged, sealed for another context, or forged.
    #[error("the sealed box does not open (damaged, or sealed for another record)")]
    Damaged,
    /// The secret is larger than [`MAX_SECRET_LEN`].
    #[error("the secret is too large to seal")]
    TooLarge,
}

fn public_key(node: &NodeId) -> Result<PublicKey, SealError> {
    let key = node.verifying_key().ok_or(SealError::BadRecipient(*node))?;
    PublicKey::from_bytes(key.to_montgomery().as_bytes())
        .map_err(|_| SealError::BadRecipient(*node))
}

fn private_key(key: &NodeKey) -> Result<PrivateKey, SealError> {
    PrivateKey::from_bytes(&key.x25519_scalar()).map_err(|_| SealError::Damaged)
}

/// Seals `secret` to every node of `recipients` (duplicates are sealed once).
pub fn seal(
    secret: &[u8],
    recipients: impl IntoIterator<Item = NodeId>,
    context: &[u8],
) -> Result<Sealed, SealError> {
    if secret.len() > MAX_SECRET_LEN {
        return Err(SealError::TooLarge);
    }
    let mut to: Vec<NodeId> = recipients.into_iter().collect();
    to.sort();
    to.dedup();
    let mut rng = rand::rngs::OsRng;
    let mut boxes = Vec::with_capacity(to.len());
    for node in to {
        let (enc, ciphertext) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, SealKem, _>(
            &OpModeS::Base,
            &public_key(&node)?,
            context,
            secret,
            node.as_bytes(),
            &mut rng,
        )
        .map_err(|_| SealError::Damaged)?;
        boxes.push(SealedBox {
            to: node,
            enc: enc.to_bytes().to_vec(),
            ciphertext,
        });
    }
    Ok(Sealed { boxes })
}

/// Opens this node's box.
pub fn open(sealed: &Sealed, key: &NodeKey, context: &[u8]) -> Result<Vec<u8>, SealError> {
    let me = key.id();
    let sealed_box = sealed
        .boxes
        .iter()
        .find(|b| b.to == me)
        .ok_or(SealError::NotForThisNode)?;
    let enc = EncappedKey::from_bytes(&sealed_box.enc).map_err(|_| SealError::Damaged)?;
    hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, SealKem>(
        &OpModeR::Base,
        &private_key(key)?,
        &enc,
        context,
        &sealed_box.ciphertext,
        me.as_bytes(),
    )
    .map_err(|_| SealError::Damaged)
}

impl Sealed {
    /// The nodes that can open it.
    pub fn recipients(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.boxes.iter().map(|b| b.to)
    }

    /// Whether `node` has a box.
    pub fn is_for(&self, node: &NodeId) -> bool {
        self.boxes.iter().any(|b| b.to == *node)
    }

    /// A copy without the boxes of nodes `keep` refuses.
    pub fn retain(&self, mut keep: impl FnMut(&NodeId) -> bool) -> Sealed {
        Sealed {
            boxes: self.boxes.iter().filter(|b| keep(&b.to)).cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_recipient_opens_and_nobody_else() {
        let (a, b, c) = (
            NodeKey::generate(),
            NodeKey::generate(),
            NodeKey::generate(),
        );
        let sealed = seal(b"the key", [a.id(), b.id(), a.id()], b"ctx").unwrap();
        assert_eq!(sealed.boxes.len(), 2);
        assert_eq!(open(&sealed, &a, b"ctx").unwrap(), b"the key");
        assert_eq!(open(&sealed, &b, b"ctx").unwrap(), b"the key");
        assert_eq!(open(&sealed, &c, b"ctx"), Err(SealError::NotForThisNode));
        assert!(sealed.is_for(&a.id()) && !sealed.is_for(&c.id()));
    }

    #[test]
    fn a_box_opens_only_in_its_context_and_undamaged() {
        let a = NodeKey::generate();
        let sealed = seal(b"secret", [a.id()], b"cert/a.example.com").unwrap();
        assert_eq!(
            open(&sealed, &a, b"cert/b.example.com"),
            Err(SealError::Damaged)
        );
        let mut damaged = sealed.clone();
        damaged.boxes[0].ciphertext[0] ^= 1;
        assert_eq!(
            open(&damaged, &a, b"cert/a.example.com"),
            Err(SealError::Damaged)
        );
        // A box relabelled for another node does not open for it, even with its key.
        let b = NodeKey::generate();
        let mut stolen = sealed.clone();
        stolen.boxes[0].to = b.id();
        assert_eq!(
            open(&stolen, &b, b"cert/a.example.com"),
            Err(SealError::Damaged)
        );
        let mut short = sealed;
        short.boxes[0].enc.truncate(3);
        assert_eq!(
            open(&short, &a, b"cert/a.example.com"),
            Err(SealError::Damaged)
        );
    }

    #[test]
    fn the_ciphertext_does_not_contain_the_secret() {
        let a = NodeKey::generate();
        let secret = b"-----BEGIN PRIVATE KEY-----";
        let sealed = seal(secret, [a.id()], b"ctx").unwrap();
        let bytes = postcard::to_stdvec(&sealed).unwrap();
        assert!(!bytes.windows(secret.len()).any(|w| w == secret));
        assert!(seal(&[0; MAX_SECRET_LEN + 1], [a.id()], b"ctx").is_err());
    }
}
