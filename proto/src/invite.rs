//! Invite codes: one copy-pasteable line that lets a new node join.
//!
//! Layout before base32: `[version u8][payload length u16 BE][payload][checksum 4]`, where the
//! payload is postcard and the checksum the first four bytes of SHA-256 over everything before
//! it. The explicit length tells a truncated code from a mistyped one, so each gets its own
//! message. The inviter stores only a hash of the secret ([`InviteState`]).

use crate::base32;
use crate::id::{MeshId, NodeId};
use crate::record::Role;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Every invite code starts with this.
pub const PREFIX: &str = "hearth-";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 3;
const CHECKSUM_LEN: usize = 4;

/// Why an invite code or its redemption was refused. Messages say what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InviteError {
    /// Does not start with the invite prefix.
    #[error("this is not a Hearth invite code (they start with `{PREFIX}`); copy the whole line `hearthctl invite` printed")]
    NotAnInvite,
    /// A character outside the code's alphabet.
    #[error("invalid character at position {position} of the invite code; copy the code again without changes")]
    BadCharacter {
        /// 0-based position in the code.
        position: usize,
    },
    /// Shorter than its own header says.
    #[error("the invite code is truncated ({have} of {need} bytes); copy the whole line")]
    Truncated {
        /// Bytes present.
        have: usize,
        /// Bytes the header announces.
        need: usize,
    },
    /// Checksum does not match: changed, mistyped or with extra characters.
    #[error(
        "the invite code is damaged or was altered (checksum mismatch); copy it again exactly"
    )]
    Tampered,
    /// Made by a newer Hearth.
    #[error("invite code version {0} is not supported by this hearthd; upgrade it")]
    UnsupportedVersion(u8),
    /// The inviter does not know this secret (never issued, or revoked).
    #[error("the inviter does not know this invite; ask for a new one")]
    Unknown,
    /// Past its expiry.
    #[error("the invite expired {ago_secs} s ago; ask for a new one with `hearthctl invite`")]
    Expired {
        /// Seconds since expiry.
        ago_secs: u64,
    },
    /// All uses redeemed.
    #[error("the invite has already been used up; ask for a new one with `hearthctl invite`")]
    UsedUp,
    /// The code names a different mesh than the node reached or the node joining.
    #[error("the invite is for mesh {invite} but {context} mesh {other}")]
    WrongMesh {
        /// Mesh in the code.
        invite: String,
        /// Short description of the other side.
        context: String,
        /// The other mesh.
        other: String,
    },
    /// The joining node was revoked from this mesh; it needs a fresh key.
    #[error("this node was revoked from the mesh; start over with a fresh --data-dir")]
    Revoked,
    /// The inviter could not complete the admission (store failure).
    #[error("the inviter failed to admit this node: {0}")]
    Internal(String),
}

/// The 32 random bytes that authorize a join.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteSecret(pub [u8; 32]);

impl std::fmt::Debug for InviteSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InviteSecret(..)")
    }
}

impl InviteSecret {
    /// A fresh random secret.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        Self(bytes)
    }

    /// The hash the inviter stores instead of the secret.
    pub fn hash(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(b"hearth-invite-v1");
        hasher.update(self.0);
        hasher.finalize().into()
    }
}

/// Everything a joining node needs, as carried by the code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// The mesh to join.
    pub mesh: MeshId,
    /// The admin that issued the code and will redeem it.
    pub inviter: NodeId,
    /// Proof of invitation.
    pub secret: InviteSecret,
    /// Unix milliseconds after which the code is refused.
    pub expires_ms: u64,
    /// Control-plane multiaddrs where the inviter or other members may be reached.
    pub addrs: Vec<String>,
}

impl Invite {
    /// The one-line code.
    pub fn encode(&self) -> String {
        let payload = postcard::to_stdvec(self).unwrap_or_default();
        let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
        let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len() + CHECKSUM_LEN);
        bytes.push(VERSION);
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(&payload[..usize::from(len)]);
        let checksum = Sha256::digest(&bytes);
        bytes.extend_from_slice(&checksum[..CHECKSUM_LEN]);
        format!("{PREFIX}{}", base32::encode(&bytes))
    }

    /// Parses a code as pasted (surrounding whitespace is ignored).
    pub fn decode(text: &str) -> Result<Self, InviteError> {
        let body = text
            .trim()
            .strip_prefix(PREFIX)
            .ok_or(InviteError::NotAnInvite)?;
        let decoded =
            base32::decode_lenient(body).map_err(|position| InviteError::BadCharacter {
                position: position + PREFIX.len(),
            })?;
        let bytes = decoded.bytes;
        if bytes.len() < HEADER_LEN {
            return Err(InviteError::Truncated {
                have: bytes.len(),
                need: HEADER_LEN + CHECKSUM_LEN,
            });
        }
        if bytes[0] != VERSION {
            return Err(InviteError::UnsupportedVersion(bytes[0]));
        }
        let payload_len = usize::from(u16::from_be_bytes([bytes[1], bytes[2]]));
        let need = HEADER_LEN + payload_len + CHECKSUM_LEN;
        if bytes.len() < need {
            return Err(InviteError::Truncated {
                have: bytes.len(),
                need,
            });
        }
        // Base32 may carry up to 4 zero padding bits, never a whole extra byte.
        if bytes.len() > need || !decoded.canonical {
            return Err(InviteError::Tampered);
        }
        let (signed, checksum) = bytes.split_at(HEADER_LEN + payload_len);
        if Sha256::digest(signed)[..CHECKSUM_LEN] != *checksum {
            return Err(InviteError::Tampered);
        }
        postcard::from_bytes(&signed[HEADER_LEN..]).map_err(|_| InviteError::Tampered)
    }

    /// Refuses a code past its expiry, before anything is sent.
    pub fn check_expiry(&self, now_ms: u64) -> Result<(), InviteError> {
        if now_ms > self.expires_ms {
            return Err(InviteError::Expired {
                ago_secs: (now_ms - self.expires_ms) / 1000,
            });
        }
        Ok(())
    }
}

/// What the inviter keeps about an outstanding invite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteState {
    /// Hash of the secret ([`InviteSecret::hash`]).
    pub secret_hash: [u8; 32],
    /// Unix milliseconds after which it is refused.
    pub expires_ms: u64,
    /// Role granted on redemption.
    pub role: Role,
    /// Redemptions left.
    pub uses_left: u32,
}

impl InviteState {
    /// The state after one redemption at `now_ms`, or why there is none.
    pub fn redeem(&self, now_ms: u64) -> Result<InviteState, InviteError> {
        if now_ms > self.expires_ms {
            return Err(InviteError::Expired {
                ago_secs: (now_ms - self.expires_ms) / 1000,
            });
        }
        if self.uses_left == 0 {
            return Err(InviteError::UsedUp);
        }
        Ok(InviteState {
            uses_left: self.uses_left - 1,
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod golden;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeKey;
    use proptest::prelude::*;

    fn sample() -> Invite {
        Invite {
            mesh: MeshId::from_bytes([3; 32]),
            inviter: NodeKey::generate().id(),
            secret: InviteSecret::generate(),
            expires_ms: 1_000_000,
            addrs: vec![
                "/ip4/198.18.0.10/udp/7700/quic-v1".into(),
                "/ip4/198.18.0.10/tcp/7700".into(),
            ],
        }
    }

    #[test]
    fn round_trips_and_is_one_clean_line() {
        let invite = sample();
        let code = invite.encode();
        assert!(code.starts_with(PREFIX));
        assert!(code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        assert_eq!(Invite::decode(&code).unwrap(), invite);
        assert_eq!(
            Invite::decode(&format!(
                "  {}\n",
                code.to_uppercase().replacen("HEARTH-", PREFIX, 1)
            ))
            .unwrap(),
            invite
        );
    }

    #[test]
    fn every_truncation_is_refused_as_truncated_or_damaged() {
        let code = sample().encode();
        for cut in PREFIX.len()..code.len() {
            let err = Invite::decode(&code[..cut]).unwrap_err();
            assert!(
                matches!(err, InviteError::Truncated { .. }),
                "cut at {cut}: {err:?}"
            );
        }
    }

    #[test]
    fn every_single_character_change_is_refused() {
        let code = sample().encode();
        for position in PREFIX.len()..code.len() {
            let mut chars: Vec<char> = code.chars().collect();
            chars[position] = if chars[position] == 'a' { 'b' } else { 'a' };
            let tampered: String = chars.into_iter().collect();
            let err = Invite::decode(&tampered).unwrap_err();
            assert!(
                matches!(
                    err,
                    InviteError::Tampered
                        | InviteError::Truncated { .. }
                        | InviteError::UnsupportedVersion(_)
                ),
                "position {position}: {err:?}"
            );
        }
    }

    #[test]
    fn foreign_text_gets_its_own_messages() {
        assert_eq!(Invite::decode("hello"), Err(InviteError::NotAnInvite));
        assert_eq!(
            Invite::decode("hearth-abc1"),
            Err(InviteError::BadCharacter { position: 10 })
        );
        let appended = format!("{}aaaa", sample().encode());
        assert_eq!(Invite::decode(&appended), Err(InviteError::Tampered));
    }

    #[test]
    fn expiry_and_uses_are_enforced() {
        let invite = sample();
        assert!(invite.check_expiry(invite.expires_ms).is_ok());
        assert_eq!(
            invite.check_expiry(invite.expires_ms + 5_000),
            Err(InviteError::Expired { ago_secs: 5 })
        );
        let state = InviteState {
            secret_hash: invite.secret.hash(),
            expires_ms: 100,
            role: Role::Member,
            uses_left: 1,
        };
        let used = state.redeem(50).unwrap();
        assert_eq!(used.uses_left, 0);
        assert_eq!(used.redeem(50), Err(InviteError::UsedUp));
        assert!(matches!(
            state.redeem(101),
            Err(InviteError::Expired { .. })
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,300}") {
            let _ = Invite::decode(&text);
        }

        #[test]
        fn arbitrary_base32_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Invite::decode(&format!("{PREFIX}{}", base32::encode(&bytes)));
        }
    }
}
