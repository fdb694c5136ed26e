//! Who belongs to a mesh, computed from its Genesis, Member and Revocation records.
//!
//! Membership is a replay: the records are sorted by `(hlc, author, kind, key)` and applied in
//! that order, starting from the founder as sole admin. A Member or Revocation record counts only
//! if its author was an unrevoked admin at that point of the replay, so validity chains back to
//! the genesis, and records a revoked node signs after its revocation count for nothing. Sorting
//! first makes the result independent of the order records arrived in.

use crate::hlc::Hlc;
use crate::id::{MeshId, NodeId};
use crate::record::{Body, Genesis, Kind, Record, RecordError, RecordId, Role};
use std::collections::{BTreeMap, HashMap};

/// Why a record may not be stored.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Rejection {
    /// Failed mesh, signature or shape checks.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The genesis record does not match this mesh.
    #[error("genesis record does not match this mesh")]
    GenesisMismatch,
    /// Author is not a member.
    #[error("author {0:?} is not a member of this mesh")]
    NotAMember(NodeId),
    /// Author is a member but not an admin.
    #[error("author {0:?} is not an admin")]
    NotAdmin(NodeId),
    /// Author was revoked before signing.
    #[error("author {0:?} was revoked before signing this record")]
    RevokedAuthor(NodeId),
    /// A Member record for a node that is revoked.
    #[error("node {0:?} is revoked and cannot be re-admitted; it must make a new key")]
    SubjectRevoked(NodeId),
    /// A route written by a member that neither hosts it nor is an admin.
    #[error("{0:?} may not write a route hosted by another node (only that node or an admin)")]
    NotRouteOwner(NodeId),
    /// A route hosted by a node that is not a current member.
    #[error("route hosted by {0:?}, which is not a current member")]
    UnknownHost(NodeId),
    /// Attempt to revoke the founder, who anchors the mesh.
    #[error("the mesh founder cannot be revoked")]
    FounderIrrevocable,
    /// Dated further ahead of the receiver's clock than `max_clock_ahead` allows.
    #[error("record by {author:?} dated {by_ms} ms ahead of this node's clock, more than max_clock_ahead allows: fix the clock of that node (NTP) or of this one")]
    ClockAhead {
        /// The author, whose clock is likely wrong.
        author: NodeId,
        /// How far ahead.
        by_ms: u64,
    },
}

impl Rejection {
    /// A short stable label for metrics and status counters.
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::Record(RecordError::WrongMesh { .. }) => "wrong_mesh",
            Rejection::Record(RecordError::BadSignature { .. }) => "bad_signature",
            Rejection::Record(_) => "malformed",
            Rejection::GenesisMismatch => "genesis_mismatch",
            Rejection::NotAMember(_) => "not_a_member",
            Rejection::NotAdmin(_) => "not_admin",
            Rejection::RevokedAuthor(_) => "revoked_author",
            Rejection::SubjectRevoked(_) => "subject_revoked",
            Rejection::FounderIrrevocable => "founder_irrevocable",
            Rejection::NotRouteOwner(_) => "not_route_owner",
            Rejection::UnknownHost(_) => "unknown_host",
            Rejection::ClockAhead { .. } => "clock_ahead",
        }
    }
}

/// A current member, as the replay left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberState {
    /// Name given at admission.
    pub name: String,
    /// Current role.
    pub role: Role,
    /// The admin who signed the current Member record.
    pub issuer: NodeId,
    /// When the current Member record was written.
    pub since: Hlc,
}

/// A revoked node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedState {
    /// The admin who revoked it.
    pub by: NodeId,
    /// When.
    pub at: Hlc,
    /// Why.
    pub reason: String,
}

/// The membership of one mesh at the current set of records.
#[derive(Debug, Clone)]
pub struct Membership {
    mesh: MeshId,
    founder: NodeId,
    members: BTreeMap<NodeId, MemberState>,
    revoked: BTreeMap<NodeId, RevokedState>,
    verdicts: HashMap<RecordId, Result<(), Rejection>>,
}

/// Checks a genesis record on its own: signed by its founder, and naming this mesh.
pub fn verify_genesis(record: &Record) -> Result<Genesis, Rejection> {
    let Body::Genesis(genesis) = record.verify(&record.mesh)? else {
        return Err(Rejection::GenesisMismatch);
    };
    if genesis.founder != record.author
        || MeshId::derive(&genesis.founder, &genesis.nonce) != record.mesh
    {
        return Err(Rejection::GenesisMismatch);
    }
    Ok(genesis)
}

impl Membership {
    /// Replays verified Member and Revocation records (others are ignored) over a genesis.
    pub fn replay<'a>(
        mesh: MeshId,
        genesis: &Genesis,
        records: impl IntoIterator<Item = (&'a Record, &'a Body)>,
    ) -> Self {
        let mut ordered: Vec<(&Record, &Body)> = records
            .into_iter()
            .filter(|(r, _)| matches!(r.kind, Kind::Member | Kind::Revocation))
            .collect();
        ordered.sort_by(|(a, _), (b, _)| {
            (a.hlc, a.author, a.kind, &a.key).cmp(&(b.hlc, b.author, b.kind, &b.key))
        });
        let mut state = Membership {
            mesh,
            founder: genesis.founder,
            members: BTreeMap::new(),
            revoked: BTreeMap::new(),
            verdicts: HashMap::new(),
        };
        for (record, body) in ordered {
            let verdict = state.apply(record, body);
            state.verdicts.insert(record.id(), verdict);
        }
        state
    }

    fn admin_check(&self, author: &NodeId) -> Result<(), Rejection> {
        if self.revoked.contains_key(author) {
            return Err(Rejection::RevokedAuthor(*author));
        }
        if *author == self.founder {
            return Ok(());
        }
        match self.members.get(author) {
            Some(m) if m.role == Role::Admin => Ok(()),
            Some(_) => Err(Rejection::NotAdmin(*author)),
            None => Err(Rejection::NotAMember(*author)),
        }
    }

    fn apply(&mut self, record: &Record, body: &Body) -> Result<(), Rejection> {
        self.admin_check(&record.author)?;
        match body {
            Body::Member(member) => {
                if self.revoked.contains_key(&member.node) {
                    return Err(Rejection::SubjectRevoked(member.node));
                }
                // The founder stays admin whatever a later record says.
                let role = if member.node == self.founder {
                    Role::Admin
                } else {
                    member.role
                };
                self.members.insert(
                    member.node,
                    MemberState {
                        name: member.name.clone(),
                        role,
                        issuer: record.author,
                        since: record.hlc,
                    },
                );
                Ok(())
            }
            Body::Revocation(revocation) => {
                if revocation.node == self.founder {
                    return Err(Rejection::FounderIrrevocable);
                }
                self.members.remove(&revocation.node);
                self.revoked.insert(
                    revocation.node,
                    RevokedState {
                        by: record.author,
                        at: record.hlc,
                        reason: revocation.reason.clone(),
                    },
                );
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The mesh this membership belongs to.
    pub fn mesh(&self) -> MeshId {
        self.mesh
    }

    /// The founder, first and permanent admin.
    pub fn founder(&self) -> NodeId {
        self.founder
    }

    /// Whether `node` is a current, unrevoked member (the founder always is).
    pub fn is_member(&self, node: &NodeId) -> bool {
        !self.revoked.contains_key(node)
            && (*node == self.founder || self.members.contains_key(node))
    }

    /// `node`'s role, if it is a current member.
    pub fn role(&self, node: &NodeId) -> Option<Role> {
        if !self.is_member(node) {
            return None;
        }
        if *node == self.founder {
            return Some(Role::Admin);
        }
        self.members.get(node).map(|m| m.role)
    }

    /// Whether `node` was revoked.
    pub fn revocation(&self, node: &NodeId) -> Option<&RevokedState> {
        self.revoked.get(node)
    }

    /// Current members in id order.
    pub fn members(&self) -> impl Iterator<Item = (&NodeId, &MemberState)> {
        self.members.iter()
    }

    /// Revoked nodes in id order.
    pub fn revoked(&self) -> impl Iterator<Item = (&NodeId, &RevokedState)> {
        self.revoked.iter()
    }

    /// The verdict the replay reached for a stored Member or Revocation record.
    pub fn verdict(&self, id: &RecordId) -> Option<&Result<(), Rejection>> {
        self.verdicts.get(id)
    }
}

/// Decides whether `candidate` may be stored on top of `current`.
///
/// `current` holds the stored records with their bodies; `genesis` the stored genesis (or
/// `None` on a node that has not yet received one). Returns the candidate's decoded body.
pub fn authorize(
    mesh: MeshId,
    genesis: Option<&Genesis>,
    current: &[(Record, Body)],
    candidate: &Record,
) -> Result<Body, Rejection> {
    if candidate.kind == Kind::Genesis {
        let found = verify_genesis(candidate)?;
        if candidate.mesh != mesh || genesis.is_some_and(|g| *g != found) {
            return Err(Rejection::GenesisMismatch);
        }
        return Ok(Body::Genesis(found));
    }
    let body = candidate.verify(&mesh)?;
    let Some(genesis) = genesis else {
        return Err(Rejection::GenesisMismatch);
    };
    match candidate.kind {
        Kind::Member | Kind::Revocation => {
            let id = candidate.id();
            let with_candidate = current
                .iter()
                .filter(|(r, _)| r.id() != id)
                .map(|(r, b)| (r, b))
                .chain(std::iter::once((candidate, &body)));
            let replayed = Membership::replay(mesh, genesis, with_candidate);
            match replayed.verdict(&id) {
                Some(Ok(())) => Ok(body),
                Some(Err(rejection)) => Err(rejection.clone()),
                None => Err(Rejection::GenesisMismatch),
            }
        }
        _ => {
            let membership = Membership::replay(mesh, genesis, current.iter().map(|(r, b)| (r, b)));
            authorize_author(&membership, candidate, body)
        }
    }
}

/// [`authorize`] for a record of any kind but Genesis, Member and Revocation, against the
/// membership the stored records make (which a store may keep instead of replaying it for
/// every record). The same decision as [`authorize`] with that membership's records.
pub fn authorize_by(membership: &Membership, candidate: &Record) -> Result<Body, Rejection> {
    if matches!(
        candidate.kind,
        Kind::Genesis | Kind::Member | Kind::Revocation
    ) {
        return Err(Rejection::GenesisMismatch);
    }
    let body = candidate.verify(&membership.mesh)?;
    authorize_author(membership, candidate, body)
}

/// The author of a verified record of an ordinary kind may write it: a current member, and
/// for a route for another member, an admin.
fn authorize_author(
    membership: &Membership,
    candidate: &Record,
    body: Body,
) -> Result<Body, Rejection> {
    if let Some(_revoked) = membership.revocation(&candidate.author) {
        return Err(Rejection::RevokedAuthor(candidate.author));
    }
    if !membership.is_member(&candidate.author) {
        return Err(Rejection::NotAMember(candidate.author));
    }
    if let Body::Route(route) = &body {
        let admin = membership.role(&candidate.author) == Some(Role::Admin);
        if route.node != candidate.author && !admin {
            return Err(Rejection::NotRouteOwner(candidate.author));
        }
        if !membership.is_member(&route.node) {
            return Err(Rejection::UnknownHost(route.node));
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeKey;
    use crate::record::{Member, NodeInfo, Revocation};

    struct Mesh {
        id: MeshId,
        genesis: Genesis,
        founder: NodeKey,
        records: Vec<(Record, Body)>,
        clock: u64,
    }

    impl Mesh {
        fn new() -> Self {
            let founder = NodeKey::generate();
            let nonce = [9; 16];
            let genesis = Genesis {
                name: "home".into(),
                founder: founder.id(),
                nonce,
                created_ms: 1,
            };
            Mesh {
                id: MeshId::derive(&founder.id(), &nonce),
                genesis,
                founder,
                records: Vec::new(),
                clock: 10,
            }
        }

        fn sign(&mut self, by: &NodeKey, body: Body) -> Record {
            self.clock += 1;
            Record::sign(by, self.id, &body, Hlc::at(self.clock))
        }

        /// Offers `record` through [`authorize`], and for the ordinary kinds checks that
        /// [`authorize_by`] with the replayed membership decides the same.
        fn offer(&mut self, record: Record) -> Result<Body, Rejection> {
            let decided = authorize(self.id, Some(&self.genesis), &self.records, &record);
            if !matches!(record.kind, Kind::Genesis | Kind::Member | Kind::Revocation) {
                assert_eq!(authorize_by(&self.membership(), &record), decided);
            }
            let body = decided?;
            self.records.retain(|(r, _)| r.id() != record.id());
            self.records.push((record, body.clone()));
            Ok(body)
        }

        fn admit(&mut self, by: &NodeKey, node: &NodeKey, role: Role) -> Result<Body, Rejection> {
            let record = self.sign(
                by,
                Body::Member(Member {
                    node: node.id(),
                    name: "n".into(),
                    role,
                }),
            );
            self.offer(record)
        }

        fn revoke(&mut self, by: &NodeKey, node: NodeId) -> Result<Body, Rejection> {
            let record = self.sign(
                by,
                Body::Revocation(Revocation {
                    node,
                    reason: "test".into(),
                }),
            );
            self.offer(record)
        }

        fn membership(&self) -> Membership {
            Membership::replay(
                self.id,
                &self.genesis,
                self.records.iter().map(|(r, b)| (r, b)),
            )
        }
    }

    #[test]
    fn a_chain_from_the_founder_through_an_admin_is_valid() {
        let mut mesh = Mesh::new();
        let founder = NodeKey::from_secret(mesh.founder.secret_bytes());
        let admin = NodeKey::generate();
        let member = NodeKey::generate();
        mesh.admit(&founder, &admin, Role::Admin).unwrap();
        mesh.admit(&admin, &member, Role::Member).unwrap();
        let view = mesh.membership();
        assert!(view.is_member(&member.id()));
        assert_eq!(view.role(&admin.id()), Some(Role::Admin));
        assert_eq!(view.role(&founder.id()), Some(Role::Admin));
    }

    #[test]
    fn a_member_signed_by_a_non_admin_is_refused() {
        let mut mesh = Mesh::new();
        let founder = NodeKey::from_secret(mesh.founder.secret_bytes());
        let plain = NodeKey::generate();
        mesh.admit(&founder, &plain, Role::Member).unwrap();
        let outsider = NodeKey::generate();
        assert_eq!(
            mesh.admit(&plain, &outsider, Role::Member),
            Err(Rejection::NotAdmin(plain.id()))
        );
        let stranger = NodeKey::generate();
        assert_eq!(
            mesh.admit(&stranger, &outsider, Role::Admin),
            Err(Rejection::NotAMember(stranger.id()))
        );
        assert!(!mesh.membership().is_member(&outsider.id()));
    }

    #[test]
    fn an_admin_revoked_before_signing_cannot_admit() {
        let mut mesh = Mesh::new();
        let founder = NodeKey::from_secret(mesh.founder.secret_bytes());
        let admin = NodeKey::generate();
        let early = NodeKey::generate();
        mesh.admit(&founder, &admin, Role::Admin).unwrap();
        mesh.admit(&admin, &early, Role::Member).unwrap();
        mesh.revoke(&founder, admin.id()).unwrap();
        let late = NodeKey::generate();
        assert_eq!(
            mesh.admit(&admin, &late, Role::Member),
            Err(Rejection::RevokedAuthor(admin.id()))
        );
        let view = mesh.membership();
        assert!(!view.is_member(&admin.id()));
        assert!(
            view.is_member(&early.id()),
            "admitted before the revocation"
        );
        assert!(!view.is_member(&late.id()));
    }

    #[test]
    fn a_chain_from_another_mesh_is_refused() {
        let mut mesh = Mesh::new();
        let other = Mesh::new();
        let node = NodeKey::generate();
        let foreign = Record::sign(
            &other.founder,
            other.id,
            &Body::Member(Member {
                node: node.id(),
                name: "n".into(),
                role: Role::Member,
            }),
            Hlc::at(50),
        );
        assert!(matches!(
            mesh.offer(foreign),
            Err(Rejection::Record(RecordError::WrongMesh { .. }))
        ));
    }

    #[test]
    fn revocation_is_permanent_and_the_founder_is_irrevocable() {
        let mut mesh = Mesh::new();
        let founder = NodeKey::from_secret(mesh.founder.secret_bytes());
        let node = NodeKey::generate();
        mesh.admit(&founder, &node, Role::Admin).unwrap();
        mesh.revoke(&founder, node.id()).unwrap();
        assert_eq!(
            mesh.admit(&founder, &node, Role::Member),
            Err(Rejection::SubjectRevoked(node.id()))
        );
        let other_admin = NodeKey::generate();
        mesh.admit(&founder, &other_admin, Role::Admin).unwrap();
        assert_eq!(
            mesh.revoke(&other_admin, founder.id()),
            Err(Rejection::FounderIrrevocable)
        );
    }

    #[test]
    fn node_info_only_from_current_members() {
        let mut mesh = Mesh::new();
        let founder = NodeKey::from_secret(mesh.founder.secret_bytes());
        let node = NodeKey::generate();
        let info = |m: &mut Mesh, k: &NodeKey| {
            let r = m.sign(k, Body::NodeInfo(NodeInfo::default()));
            m.offer(r)
        };
        assert_eq!(
            info(&mut mesh, &node),
            Err(Rejection::NotAMember(node.id()))
        );
        mesh.admit(&founder, &node, Role::Member).unwrap();
        assert!(info(&mut mesh, &node).is_ok());
        mesh.revoke(&founder, node.id()).unwrap();
        assert_eq!(
            info(&mut mesh, &node),
            Err(Rejection::RevokedAuthor(node.id()))
        );
    }

    #[test]
    fn routes_only_by_their_hosting_node_or_an_admin() {
        use crate::route::{Route, RouteSpec};
        let mut mesh = Mesh::new();
        let founder = NodeKey::from_secret(mesh.founder.secret_bytes());
        let (a, b) = (NodeKey::generate(), NodeKey::generate());
        mesh.admit(&founder, &a, Role::Member).unwrap();
        mesh.admit(&founder, &b, Role::Member).unwrap();
        let route = |node: NodeId| {
            Body::Route(Route {
                spec: RouteSpec::Http {
                    host: "blog.example.com".into(),
                },
                node,
                target: Some("127.0.0.1:2368".into()),
                proxy_protocol: false,
                container: None,
                tls: Default::default(),
            })
        };
        let own = mesh.sign(&a, route(a.id()));
        assert!(mesh.offer(own).is_ok());
        let forged = mesh.sign(&b, route(a.id()));
        assert_eq!(mesh.offer(forged), Err(Rejection::NotRouteOwner(b.id())));
        let by_admin = mesh.sign(&founder, route(b.id()));
        assert!(mesh.offer(by_admin).is_ok());
        let stranger = NodeKey::generate();
        let for_stranger = mesh.sign(&founder, route(stranger.id()));
        assert_eq!(
            mesh.offer(for_stranger),
            Err(Rejection::UnknownHost(stranger.id()))
        );
    }

    #[test]
    fn replay_ignores_arrival_order() {
        let mut mesh = Mesh::new();
        let founder = NodeKey::from_secret(mesh.founder.secret_bytes());
        let admin = NodeKey::generate();
        let member = NodeKey::generate();
        mesh.admit(&founder, &admin, Role::Admin).unwrap();
        mesh.admit(&admin, &member, Role::Member).unwrap();
        mesh.records.reverse();
        assert!(mesh.membership().is_member(&member.id()));
    }

    #[test]
    fn a_forged_genesis_is_refused() {
        let mesh = Mesh::new();
        let impostor = NodeKey::generate();
        let forged = Record::sign(
            &impostor,
            mesh.id,
            &Body::Genesis(mesh.genesis.clone()),
            Hlc::at(1),
        );
        assert_eq!(
            authorize(mesh.id, Some(&mesh.genesis), &[], &forged),
            Err(Rejection::GenesisMismatch)
        );
    }
}
