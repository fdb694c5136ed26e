//! Signed records: the only thing nodes replicate.
//!
//! A record is one `(kind, key)` entry of the mesh's shared state, signed by its author. The
//! signature covers the mesh id too, so a record can never be replayed into another mesh.
//! Whether an author may write a record is decided by [`crate::membership`]; which of two
//! records for one key wins is decided by [`crate::merge`].

use crate::election::EdgePreference;
use crate::hlc::Hlc;
use crate::id::{MeshId, NodeId, NodeKey};
use crate::reach::Reach;
use ed25519_dalek::{Signature, Verifier};
use serde::{Deserialize, Serialize};
use std::fmt;

pub mod layout;

/// Longest record key accepted; keys are ids or host names.
pub const MAX_KEY_LEN: usize = 256;
/// Largest record body accepted.
pub const MAX_BODY_LEN: usize = 16 * 1024;
/// Longest node or mesh name accepted.
pub const MAX_NAME_LEN: usize = 63;
/// Key of the one genesis record.
pub const GENESIS_KEY: &str = "genesis";

/// What a record describes. New kinds are appended, never reordered (the wire uses the index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The mesh's founding record.
    Genesis,
    /// A node admitted to the mesh by an admin.
    Member,
    /// A node removed from the mesh for good by an admin.
    Revocation,
    /// What a node says about itself: name, addresses, reachability, heartbeat.
    NodeInfo,
    /// A published (or withdrawn) service route.
    Route,
    /// A certificate the edges serve, its key sealed to them ([`crate::cert::Cert`]).
    Cert,
    /// The ACME account of one directory ([`crate::cert::AcmeAccount`]).
    AcmeAccount,
    /// The order in flight, or the last one, for a certificate name.
    AcmeOrder,
    /// An edge serving an order's challenge answers.
    ChallengeAck,
    /// A request for a renewal or a new key.
    CertRequest,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Kind::Genesis => "genesis",
            Kind::Member => "member",
            Kind::Revocation => "revocation",
            Kind::NodeInfo => "node_info",
            Kind::Route => "route",
            Kind::Cert => "cert",
            Kind::AcmeAccount => "acme_account",
            Kind::AcmeOrder => "acme_order",
            Kind::ChallengeAck => "challenge_ack",
            Kind::CertRequest => "cert_request",
        };
        f.write_str(name)
    }
}

/// What a member may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs services and routes traffic.
    #[default]
    Member,
    /// Also admits and revokes members.
    Admin,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Member => "member",
            Role::Admin => "admin",
        })
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "member" => Ok(Role::Member),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role `{other}`: expected `member` or `admin`"
            )),
        }
    }
}

/// The founding record of a mesh, signed by its founder, who is its first admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// A name for people.
    pub name: String,
    /// The first admin; can never be revoked.
    pub founder: NodeId,
    /// Random bytes that make the mesh id unique even for a reused founder key.
    pub nonce: [u8; 16],
    /// When the mesh was created, in Unix milliseconds.
    pub created_ms: u64,
}

/// Admission of a node, signed by an admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The admitted node.
    pub node: NodeId,
    /// The node's name at admission.
    pub name: String,
    /// What it may do.
    pub role: Role,
}

/// Permanent removal of a node, signed by an admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The removed node.
    pub node: NodeId,
    /// Why, for people reading `hearthctl members`.
    pub reason: String,
}

/// A node's description of itself, rewritten only when its content changes (liveness is the
/// failure detector's, not a record's).
///
/// Fields are appended at the end only, behind a new layout version (see [`layout`]).
///
/// Edge election reads these records: see [`crate::election`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct NodeInfo {
    /// The node's current name.
    pub name: String,
    /// Control-plane multiaddrs other nodes may dial (relayed ones included).
    pub addrs: Vec<String>,
    /// Software version, for people.
    pub version: String,
    /// Socket addresses of its data-plane (tunnel) endpoint, for members to dial.
    pub tunnel: Vec<String>,
    /// Whether it offers itself as an edge (config `edge`).
    pub edge_pref: EdgePreference,
    /// What AutoNAT found about it.
    pub reach: Reach,
    /// When it wrote this record, by its own wall clock (Unix ms). (Named for the heartbeats
    /// these records once were; the name is kept so the encoding stays the same.)
    pub heartbeat_ms: u64,
    /// The lease its failure detector runs with (`edges.lease_ms`), for people; the election
    /// no longer reads it.
    pub lease_ms: u64,
    /// The `edges.max` it is configured with; the mesh uses the smallest live one.
    pub edges_max: u8,
    /// When its `hearthd run` started (Unix ms): a new value means a new process, so peers
    /// redial it at once instead of waiting out a dial backoff.
    pub started_ms: u64,
    /// What it offers as a certificate issuer, when it may order certificates (`[acme]`
    /// with `accept_terms = true`); only such edges are chosen to issue.
    pub acme: Option<crate::cert::AcmeOffer>,
}

/// A decoded record body.
///
/// Each kind is written as its layout version, then its fields ([`layout`]): a body grows only
/// by appending fields behind a new layout version, so an older node reads a newer body (it
/// ignores the fields it does not know) and a newer node reads an older one (the new fields
/// take their defaults). The signature covers the bytes as written either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// See [`Genesis`].
    Genesis(Genesis),
    /// See [`Member`].
    Member(Member),
    /// See [`Revocation`].
    Revocation(Revocation),
    /// See [`NodeInfo`].
    NodeInfo(NodeInfo),
    /// See [`crate::route::Route`].
    Route(crate::route::Route),
    /// See [`crate::cert::Cert`].
    Cert(crate::cert::Cert),
    /// See [`crate::cert::AcmeAccount`].
    AcmeAccount(crate::cert::AcmeAccount),
    /// See [`crate::cert::AcmeOrder`].
    AcmeOrder(crate::cert::AcmeOrder),
    /// See [`crate::cert::ChallengeAck`].
    ChallengeAck(crate::cert::ChallengeAck),
    /// See [`crate::cert::CertRequest`].
    CertRequest(crate::cert::CertRequest),
}

/// Every body kind's layout version ([`layout`]). All are at their first layout; a kind that
/// grows bumps its number here and lists the decoder of its previous layout in `OLDER`.
mod versions {
    use super::layout::VersionedBody;
    use super::{Genesis, Member, NodeInfo, Revocation};
    use crate::cert::{AcmeAccount, AcmeOrder, Cert, CertRequest, ChallengeAck};
    use crate::route::Route;

    impl VersionedBody for Genesis {
        const VERSION: u32 = 1;
    }
    impl VersionedBody for Member {
        const VERSION: u32 = 1;
    }
    impl VersionedBody for Revocation {
        const VERSION: u32 = 1;
    }
    impl VersionedBody for NodeInfo {
        const VERSION: u32 = 1;
    }
    impl VersionedBody for Route {
        const VERSION: u32 = 1;
    }
    impl VersionedBody for Cert {
        const VERSION: u32 = 1;
    }
    impl VersionedBody for AcmeAccount {
        const VERSION: u32 = 1;
    }
    impl VersionedBody for AcmeOrder {
        const VERSION: u32 = 1;
    }
    impl VersionedBody for ChallengeAck {
        const VERSION: u32 = 1;
    }
    impl VersionedBody for CertRequest {
        const VERSION: u32 = 1;
    }
}

impl Body {
    /// The kind this body is stored under.
    pub fn kind(&self) -> Kind {
        match self {
            Body::Genesis(_) => Kind::Genesis,
            Body::Member(_) => Kind::Member,
            Body::Revocation(_) => Kind::Revocation,
            Body::NodeInfo(_) => Kind::NodeInfo,
            Body::Route(_) => Kind::Route,
            Body::Cert(_) => Kind::Cert,
            Body::AcmeAccount(_) => Kind::AcmeAccount,
            Body::AcmeOrder(_) => Kind::AcmeOrder,
            Body::ChallengeAck(_) => Kind::ChallengeAck,
            Body::CertRequest(_) => Kind::CertRequest,
        }
    }

    /// The key this body is stored under; NodeInfo is keyed by its author.
    pub fn key(&self, author: &NodeId) -> String {
        match self {
            Body::Genesis(_) => GENESIS_KEY.to_string(),
            Body::Member(m) => m.node.to_string(),
            Body::Revocation(r) => r.node.to_string(),
            Body::NodeInfo(_) => author.to_string(),
            Body::Route(r) => crate::route::Route::key(&r.spec, &r.node),
            Body::Cert(c) => c.names.first().cloned().unwrap_or_default(),
            Body::AcmeAccount(a) => crate::cert::AcmeAccount::key_of(&a.directory, &a.scope),
            Body::AcmeOrder(o) => o.names.first().cloned().unwrap_or_default(),
            Body::ChallengeAck(a) => format!("{}@{author}", a.name),
            Body::CertRequest(r) => r.name.clone(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            Body::Genesis(b) => layout::encode(b),
            Body::Member(b) => layout::encode(b),
            Body::Revocation(b) => layout::encode(b),
            Body::NodeInfo(b) => layout::encode(b),
            Body::Route(b) => layout::encode(b),
            Body::Cert(b) => layout::encode(b),
            Body::AcmeAccount(b) => layout::encode(b),
            Body::AcmeOrder(b) => layout::encode(b),
            Body::ChallengeAck(b) => layout::encode(b),
            Body::CertRequest(b) => layout::encode(b),
        }
    }

    fn decode(kind: Kind, bytes: &[u8]) -> Result<Self, layout::LayoutError> {
        use layout::decode;
        Ok(match kind {
            Kind::Genesis => Body::Genesis(decode(bytes)?),
            Kind::Member => Body::Member(decode(bytes)?),
            Kind::Revocation => Body::Revocation(decode(bytes)?),
            Kind::NodeInfo => Body::NodeInfo(decode(bytes)?),
            Kind::Route => Body::Route(decode(bytes)?),
            Kind::Cert => Body::Cert(decode(bytes)?),
            Kind::AcmeAccount => Body::AcmeAccount(decode(bytes)?),
            Kind::AcmeOrder => Body::AcmeOrder(decode(bytes)?),
            Kind::ChallengeAck => Body::ChallengeAck(decode(bytes)?),
            Kind::CertRequest => Body::CertRequest(decode(bytes)?),
        })
    }

    fn name(&self) -> Option<&str> {
        match self {
            Body::Genesis(g) => Some(&g.name),
            Body::Member(m) => Some(&m.name),
            Body::NodeInfo(n) => Some(&n.name),
            _ => None,
        }
    }
}

/// Why a record was refused before any question of who may write it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// Signed for a different mesh.
    #[error("record belongs to mesh {found}, not this mesh {expected}")]
    WrongMesh {
        /// This node's mesh.
        expected: MeshId,
        /// The record's mesh.
        found: MeshId,
    },
    /// Signature missing, malformed or not by the author.
    #[error("bad signature on {kind} record `{key}`")]
    BadSignature {
        /// Record kind.
        kind: Kind,
        /// Record key.
        key: String,
    },
    /// Body does not decode as the kind says.
    #[error("malformed {kind} body: {reason}")]
    MalformedBody {
        /// Record kind.
        kind: Kind,
        /// Decoder message.
        reason: String,
    },
    /// Key does not match the body (e.g. a Member record filed under another node).
    #[error("{kind} record stored under key `{key}` but its body says `{expected}`")]
    KeyMismatch {
        /// Record kind.
        kind: Kind,
        /// Key on the record.
        key: String,
        /// Key the body implies.
        expected: String,
    },
    /// Key, body or name over the size limits.
    #[error("{0} exceeds its size limit")]
    TooLarge(&'static str),
}

/// One signed entry of the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Mesh the record belongs to.
    pub mesh: MeshId,
    /// What it describes.
    pub kind: Kind,
    /// Which entry of that kind.
    pub key: String,
    /// The body for `kind`: its layout version, then its postcard fields ([`layout`]).
    pub body: Vec<u8>,
    /// Who wrote and signed it.
    pub author: NodeId,
    /// When, in hybrid logical time; orders writes to one key.
    pub hlc: Hlc,
    /// ed25519 signature by `author` over all fields above.
    pub signature: Vec<u8>,
}

/// Identifies one entry of the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordId {
    /// Record kind.
    pub kind: Kind,
    /// Record key.
    pub key: String,
}

/// Identifies one version of an entry, for digests and anti-entropy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordVersion {
    /// Which entry.
    pub id: RecordId,
    /// Its timestamp.
    pub hlc: Hlc,
    /// Its author.
    pub author: NodeId,
}

impl Record {
    /// Builds and signs a record of `body` for `mesh`.
    pub fn sign(key: &NodeKey, mesh: MeshId, body: &Body, hlc: Hlc) -> Self {
        let author = key.id();
        let mut record = Record {
            mesh,
            kind: body.kind(),
            key: body.key(&author),
            body: body.encode(),
            author,
            hlc,
            signature: Vec::new(),
        };
        record.signature = key.sign(&record.signed_bytes()).to_vec();
        record
    }

    /// The bytes the signature covers.
    fn signed_bytes(&self) -> Vec<u8> {
        let fields = (
            "hearth-record-v1",
            &self.mesh,
            self.kind,
            &self.key,
            &self.body,
            &self.author,
            self.hlc,
        );
        postcard::to_stdvec(&fields).unwrap_or_default()
    }

    /// Checks mesh, limits, signature and body shape, and returns the decoded body.
    ///
    /// This says nothing about whether the author may write this record; see
    /// [`crate::membership::Membership::authorize`].
    pub fn verify(&self, mesh: &MeshId) -> Result<Body, RecordError> {
        if self.mesh != *mesh {
            return Err(RecordError::WrongMesh {
                expected: *mesh,
                found: self.mesh,
            });
        }
        if self.key.len() > MAX_KEY_LEN {
            return Err(RecordError::TooLarge("record key"));
        }
        if self.body.len() > MAX_BODY_LEN {
            return Err(RecordError::TooLarge("record body"));
        }
        let bad_signature = || RecordError::BadSignature {
            kind: self.kind,
            key: self.key.clone(),
        };
        let signature = <[u8; 64]>::try_from(self.signature.as_slice())
            .map(|bytes| Signature::from_bytes(&bytes))
            .map_err(|_| bad_signature())?;
        let verifying_key = self.author.verifying_key().ok_or_else(bad_signature)?;
        verifying_key
            .verify(&self.signed_bytes(), &signature)
            .map_err(|_| bad_signature())?;
        let body = self.decode_body()?;
        let expected = body.key(&self.author);
        if expected != self.key {
            return Err(RecordError::KeyMismatch {
                kind: self.kind,
                key: self.key.clone(),
                expected,
            });
        }
        if body.name().is_some_and(|n| n.len() > MAX_NAME_LEN) {
            return Err(RecordError::TooLarge("name"));
        }
        self.check_body(&body)?;
        Ok(body)
    }

    /// Shape checks of the bodies that have more than a name: routes and certificate names.
    fn check_body(&self, body: &Body) -> Result<(), RecordError> {
        let malformed = |reason: String| RecordError::MalformedBody {
            kind: self.kind,
            reason,
        };
        match body {
            Body::Route(route) => route.check().map_err(|e| malformed(e.to_string())),
            Body::Cert(cert) => {
                crate::cert::check_names(&cert.names).map_err(|e| malformed(e.to_string()))?;
                if cert.chain.is_empty() || cert.chain.len() > crate::cert::MAX_CHAIN {
                    return Err(malformed(
                        "a certificate chain has 1 to 6 certificates".into(),
                    ));
                }
                Ok(())
            }
            Body::AcmeOrder(order) => {
                crate::cert::check_names(&order.names).map_err(|e| malformed(e.to_string()))?;
                if order.challenges.len() > crate::cert::MAX_CHALLENGES {
                    return Err(malformed("too many challenge answers".into()));
                }
                Ok(())
            }
            Body::ChallengeAck(ack) => crate::cert::check_names(std::slice::from_ref(&ack.name))
                .map_err(|e| malformed(e.to_string())),
            Body::CertRequest(request) => {
                crate::cert::check_names(std::slice::from_ref(&request.name))
                    .map_err(|e| malformed(e.to_string()))
            }
            _ => Ok(()),
        }
    }

    /// Decodes the body without checking the signature: for records read back from this
    /// node's own store, which were verified before they were stored.
    pub fn decode_body(&self) -> Result<Body, RecordError> {
        Body::decode(self.kind, &self.body).map_err(|e| RecordError::MalformedBody {
            kind: self.kind,
            reason: e.to_string(),
        })
    }

    /// The entry this record writes.
    pub fn id(&self) -> RecordId {
        RecordId {
            kind: self.kind,
            key: self.key.clone(),
        }
    }

    /// This record's version, for digests.
    pub fn version(&self) -> RecordVersion {
        RecordVersion {
            id: self.id(),
            hlc: self.hlc,
            author: self.author,
        }
    }
}

#[cfg(test)]
pub(crate) mod golden;

#[cfg(test)]
mod tests {
    use super::*;

    fn member_body(node: NodeId) -> Body {
        Body::Member(Member {
            node,
            name: "box".into(),
            role: Role::Member,
        })
    }

    #[test]
    fn a_signed_record_verifies_and_decodes() {
        let key = NodeKey::generate();
        let mesh = MeshId::from_bytes([7; 32]);
        let body = member_body(NodeKey::generate().id());
        let record = Record::sign(&key, mesh, &body, Hlc::at(5));
        assert_eq!(record.verify(&mesh).unwrap(), body);
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let key = NodeKey::generate();
        let mesh = MeshId::from_bytes([7; 32]);
        let record = Record::sign(&key, mesh, &member_body(key.id()), Hlc::at(5));

        let mut later = record.clone();
        later.hlc = Hlc::at(6);
        assert!(matches!(
            later.verify(&mesh),
            Err(RecordError::BadSignature { .. })
        ));

        let mut forged = record.clone();
        forged.author = NodeKey::generate().id();
        assert!(matches!(
            forged.verify(&mesh),
            Err(RecordError::BadSignature { .. })
        ));

        let mut unsigned = record.clone();
        unsigned.signature.clear();
        assert!(matches!(
            unsigned.verify(&mesh),
            Err(RecordError::BadSignature { .. })
        ));
    }

    #[test]
    fn a_record_from_another_mesh_is_refused() {
        let key = NodeKey::generate();
        let record = Record::sign(
            &key,
            MeshId::from_bytes([1; 32]),
            &member_body(key.id()),
            Hlc::at(1),
        );
        assert!(matches!(
            record.verify(&MeshId::from_bytes([2; 32])),
            Err(RecordError::WrongMesh { .. })
        ));
    }

    #[test]
    fn garbage_bodies_are_refused_not_panicked_on() {
        let key = NodeKey::generate();
        let mesh = MeshId::from_bytes([7; 32]);
        let mut record = Record::sign(&key, mesh, &member_body(key.id()), Hlc::at(1));
        record.body = vec![0xff; 3];
        record.signature = key.sign(&record.signed_bytes()).to_vec();
        assert!(matches!(
            record.verify(&mesh),
            Err(RecordError::MalformedBody { .. })
        ));
    }
}
