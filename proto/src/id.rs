//! Node and mesh identities.
//!
//! A node *is* its ed25519 key: [`NodeId`] is the public key, so any signature or handshake by
//! the key proves the identity with no certificate authority. [`MeshId`] names one mesh and is
//! fixed at genesis.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// How many hex digits people see of an id; enough to tell a personal mesh's nodes apart.
pub const SHORT_ID_LEN: usize = 10;

/// Errors from parsing ids typed or pasted by people.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    /// Not 64 hex digits.
    #[error("`{0}` is not an id: expected 64 hex digits")]
    Malformed(String),
    /// 64 hex digits, but not a valid ed25519 public key.
    #[error("`{0}` is not a valid ed25519 public key")]
    NotAKey(String),
}

macro_rules! hex_id {
    ($name:ident) => {
        impl $name {
            /// The raw 32 bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The first hex digits, for tables and logs.
            pub fn short(&self) -> String {
                let mut s = hex::encode(self.0);
                s.truncate(SHORT_ID_LEN);
                s
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if serializer.is_human_readable() {
                    serializer.serialize_str(&hex::encode(self.0))
                } else {
                    self.0.serialize(serializer)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                if deserializer.is_human_readable() {
                    let text = String::deserialize(deserializer)?;
                    text.parse().map_err(serde::de::Error::custom)
                } else {
                    <[u8; 32]>::deserialize(deserializer).map($name)
                }
            }
        }
    };
}

/// A node's identity: its ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId([u8; 32]);

hex_id!(NodeId);

impl NodeId {
    /// Wraps a public key's bytes, checking that they are a valid ed25519 point.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, IdError> {
        VerifyingKey::from_bytes(&bytes)
            .map(|_| Self(bytes))
            .map_err(|_| IdError::NotAKey(hex::encode(bytes)))
    }

    /// Wraps the bytes of a key something else already proved, without checking the point
    /// again (a square root on the curve): a peer id authenticated by a connection's
    /// handshake. Binary decoding takes bytes as they come too; a record whose author is not
    /// a valid key fails [`crate::Record::verify`].
    pub fn from_proven_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key that verifies this node's signatures.
    pub fn verifying_key(&self) -> Option<VerifyingKey> {
        VerifyingKey::from_bytes(&self.0).ok()
    }
}

impl FromStr for NodeId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_bytes(parse_hex32(s)?)
    }
}

/// A mesh's identity: a hash of its founder's key and a random genesis nonce.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MeshId([u8; 32]);

hex_id!(MeshId);

impl MeshId {
    /// Derives the id of a mesh founded by `founder` with genesis `nonce`.
    pub fn derive(founder: &NodeId, nonce: &[u8; 16]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"hearth-mesh-v1");
        hasher.update(founder.as_bytes());
        hasher.update(nonce);
        Self(hasher.finalize().into())
    }

    /// Wraps raw bytes (from a decoded invite code, say).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl FromStr for MeshId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex32(s).map(Self)
    }
}

fn parse_hex32(s: &str) -> Result<[u8; 32], IdError> {
    let bytes = hex::decode(s.trim()).map_err(|_| IdError::Malformed(s.to_string()))?;
    bytes
        .try_into()
        .map_err(|_| IdError::Malformed(s.to_string()))
}

/// A node's secret key. Signs records; never leaves the node's data directory.
pub struct NodeKey(SigningKey);

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeKey({})", self.id().short())
    }
}

impl NodeKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// Rebuilds a key from its 32 secret bytes.
    pub fn from_secret(secret: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&secret))
    }

    /// The 32 secret bytes, for storing with owner-only permissions.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// This key's public identity.
    pub fn id(&self) -> NodeId {
        NodeId(self.0.verifying_key().to_bytes())
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }

    /// The X25519 secret scalar of this key (see [`crate::seal`]): what opens secrets sealed
    /// to this node.
    pub(crate) fn x25519_scalar(&self) -> [u8; 32] {
        self.0.to_scalar_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_round_trips_through_text_and_json() {
        let id = NodeKey::generate().id();
        assert_eq!(id.to_string().parse::<NodeId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<NodeId>(&json).unwrap(), id);
        assert_eq!(id.short().len(), SHORT_ID_LEN);
    }

    #[test]
    fn malformed_ids_are_refused_with_the_text() {
        assert!(matches!("xyz".parse::<NodeId>(), Err(IdError::Malformed(s)) if s == "xyz"));
    }

    #[test]
    fn mesh_ids_differ_per_nonce() {
        let founder = NodeKey::generate().id();
        assert_ne!(
            MeshId::derive(&founder, &[1; 16]),
            MeshId::derive(&founder, &[2; 16])
        );
    }
}
