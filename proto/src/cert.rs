//! Certificates the edges share, and the ACME state that obtains them, as replicated records.
//!
//! - [`Cert`]: a certificate chain in clear and its private key [sealed](crate::seal) to the
//!   edges that serve it. Keyed by its primary name (a host, or `*.zone`).
//! - [`AcmeAccount`]: the ACME account of one directory, its credentials sealed to the edges,
//!   so any edge can carry on an order another one placed.
//! - [`AcmeOrder`]: the order in flight (or the last one) for a certificate name: its URL, the
//!   challenge answers every edge must serve, the certificate key once chosen, or the CA's
//!   problem. A new issuer resumes it from here.
//! - [`ChallengeAck`]: an edge saying it serves an order's challenge answers; the issuer tells
//!   the CA "ready" only when every live edge has said so.
//! - [`CertRequest`]: someone asked for a renewal or a new key (`hearthctl certs renew|rotate`).
//!
//! The pure rules live here too: which certificate names the routes need ([`wanted`]), which
//! certificate serves a host ([`covering`]), which edge issues a name ([`issuer_of`]), and
//! what state a name is in ([`state`]).

use crate::id::{MeshId, NodeId};
use crate::route::parse_host;
use crate::seal::Sealed;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Most names (SANs) on one certificate.
pub const MAX_NAMES: usize = 8;
/// Most challenge answers one order carries (one or two per name).
pub const MAX_CHALLENGES: usize = 2 * MAX_NAMES;
/// Most certificates in a chain.
pub const MAX_CHAIN: usize = 6;
/// An order record not rewritten for this long, whose issuer is no longer the chosen one, is
/// taken over by the chosen issuer. The issuer rewrites it at every step and while it waits.
pub const ORDER_LEASE_MS: u64 = 15_000;
/// How far back [`Cert::recent`] remembers issuances: Let's Encrypt counts certificates per
/// exact set of names over a week.
pub const RECENT_WINDOW_MS: u64 = 7 * 24 * 3600 * 1000;
/// Forced renewals (`hearthctl certs renew|rotate`) are refused once this many certificates
/// were issued for one set of names within [`RECENT_WINDOW_MS`]: Let's Encrypt allows 5.
pub const MAX_RECENT_ISSUES: usize = 4;

/// Why a certificate name is refused before anything is asked of a CA.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum CertNameError {
    /// Not a host name, or a wildcard anywhere but the first label.
    #[error("`{0}` is not a name a certificate can be issued for: {1}")]
    Invalid(String, String),
}

/// Checks a certificate name: a host name with at least two labels, not an IP address, and
/// optionally `*.` in front. Returns it lowercase.
pub fn check_name(name: &str) -> Result<String, CertNameError> {
    let invalid = |why: &str| CertNameError::Invalid(name.to_string(), why.to_string());
    let (wildcard, rest) = match name.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, name),
    };
    let host = parse_host(rest).map_err(|e| invalid(&e.to_string()))?;
    if !host.contains('.') {
        return Err(invalid(
            "it has a single label; CAs issue only for names under a public suffix, such as blog.example.com",
        ));
    }
    if host.parse::<std::net::Ipv4Addr>().is_ok()
        || host
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(invalid(
            "it is an IP address; publish a host name that points at the edges",
        ));
    }
    if host == "localhost" || host.ends_with(".localhost") {
        return Err(invalid("localhost names cannot be certified by a CA"));
    }
    Ok(if wildcard { format!("*.{host}") } else { host })
}

/// Whether certificate name `name` covers `host` (exact, or a wildcard for one label).
pub fn name_covers(name: &str, host: &str) -> bool {
    match name.strip_prefix("*.") {
        Some(parent) => host
            .strip_suffix(parent)
            .and_then(|head| head.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        None => name == host,
    }
}

/// The certificate names the published hosts need, each with the names it carries: one
/// certificate per host, except that with `wildcard_zone` set, hosts directly under the zone
/// (and the zone itself) share one certificate `*.zone` carrying `*.zone` and `zone`.
pub fn wanted<'a>(
    hosts: impl IntoIterator<Item = &'a str>,
    wildcard_zone: Option<&str>,
) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let wildcard = wildcard_zone.map(|zone| format!("*.{zone}"));
    for host in hosts {
        match (&wildcard, wildcard_zone) {
            (Some(wild), Some(zone)) if host == zone || name_covers(wild, host) => {
                out.entry(wild.clone())
                    .or_insert_with(|| vec![wild.clone(), zone.to_string()]);
            }
            _ => {
                out.entry(host.to_string())
                    .or_insert_with(|| vec![host.to_string()]);
            }
        }
    }
    out
}

/// The stored certificate that serves `host`: its own name first, else a wildcard covering it.
pub fn covering<'a>(certs: &'a BTreeMap<String, Cert>, host: &str) -> Option<&'a Cert> {
    certs.get(host).or_else(|| {
        let parent = host.split_once('.')?.1;
        certs
            .get(&format!("*.{parent}"))
            .filter(|c| c.names.iter().any(|n| name_covers(n, host)))
    })
}

/// The edge that issues certificate `name`: the highest rendezvous hash of the name and each
/// candidate. Every node computes the same one from the same candidates, and when one
/// candidate goes only the names it issued move.
pub fn issuer_of(name: &str, candidates: &[NodeId]) -> Option<NodeId> {
    candidates.iter().copied().max_by_key(|node| {
        let mut hasher = Sha256::new();
        hasher.update(b"hearth-issuer-v1");
        hasher.update(name.as_bytes());
        hasher.update(node.as_bytes());
        <[u8; 32]>::from(hasher.finalize())
    })
}

/// The `context` a certificate key is sealed under (see [`crate::seal`]).
pub fn key_context(mesh: &MeshId, name: &str, serial: &str) -> Vec<u8> {
    format!("hearth-cert-key-v1/{mesh}/{name}/{serial}").into_bytes()
}

/// The `context` an order's certificate key is sealed under, before the certificate exists.
pub fn order_key_context(mesh: &MeshId, name: &str, order_url: &str) -> Vec<u8> {
    format!("hearth-order-key-v1/{mesh}/{name}/{order_url}").into_bytes()
}

/// The `context` ACME account credentials are sealed under (`scope` as in
/// [`AcmeAccount::scope`]).
pub fn account_context(mesh: &MeshId, directory: &str, scope: &str) -> Vec<u8> {
    if scope.is_empty() {
        format!("hearth-acme-account-v1/{mesh}/{directory}").into_bytes()
    } else {
        format!("hearth-acme-account-v1/{mesh}/{directory}#{scope}").into_bytes()
    }
}

/// What a node announces (in its NodeInfo) when it may order certificates.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AcmeOffer {
    /// The ACME directory it orders from.
    pub directory: String,
    /// The DNS zone it obtains one wildcard certificate for (`acme.wildcard`), if any.
    pub wildcard_zone: Option<String>,
}

/// A certificate the edges serve. Record key: `names[0]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cert {
    /// The names it is valid for; the first is its record key.
    pub names: Vec<String>,
    /// DER certificates, leaf first.
    pub chain: Vec<Vec<u8>>,
    /// The PKCS#8 private key, sealed to the edges that serve it.
    pub key: Sealed,
    /// Validity start, Unix ms.
    pub not_before_ms: u64,
    /// Validity end, Unix ms.
    pub not_after_ms: u64,
    /// The leaf's serial number, hex.
    pub serial: String,
    /// The edge that obtained it.
    pub issuer: NodeId,
    /// The ACME directory it came from.
    pub directory: String,
    /// When it was obtained, Unix ms.
    pub issued_ms: u64,
    /// When certificates for these names were obtained within [`RECENT_WINDOW_MS`] (this one
    /// included), for the rate-limit guard.
    pub recent: Vec<u64>,
    /// The CA's suggested renewal window (ACME ARI), when it offers one.
    pub ari: Option<AriWindow>,
    /// The ARI certificate identifier (`base64url(AKI).base64url(serial)`), for the
    /// `replaces` field of its renewal order; empty when the leaf has no AKI.
    pub ari_id: String,
}

/// A renewal window suggested by the CA (RFC 9773).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AriWindow {
    /// Window start, Unix ms.
    pub start_ms: u64,
    /// Window end, Unix ms.
    pub end_ms: u64,
    /// When the CA was asked, Unix ms.
    pub fetched_ms: u64,
    /// When to ask again (the CA's Retry-After), Unix ms.
    pub next_fetch_ms: u64,
}

/// The ACME account of one directory. Record key: `directory`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeAccount {
    /// The directory URL.
    pub directory: String,
    /// The account URL (its id at the CA).
    pub id: String,
    /// instant-acme's credentials JSON, sealed to the edges.
    pub credentials: Sealed,
    /// Contact addresses given at creation.
    pub contact: Vec<String>,
    /// Empty for the edges' shared account; a passthrough certificate's name for the account
    /// its hosting members order it with (sealed to them only, so no edge can order or revoke
    /// with it, and a CAA `accounturi` can pin the name to it).
    pub scope: String,
}

impl AcmeAccount {
    /// Its record key: the directory, and `#scope` for a passthrough name's account.
    pub fn key_of(directory: &str, scope: &str) -> String {
        if scope.is_empty() {
            directory.to_string()
        } else {
            format!("{directory}#{scope}")
        }
    }
}

/// Where an order is. Indexes are the wire encoding: append only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStage {
    /// Placed at the CA; its challenge answers are being served by every edge.
    Placed,
    /// The CA was told the answers are ready and is validating.
    Validating,
    /// The certificate key is chosen (sealed in the record) and the CSR sent.
    Finalizing,
    /// The certificate is stored; nothing left to do.
    Done,
    /// The CA refused or the order broke; see `problem` and `retry_ms`.
    Failed,
}

/// Why an order was placed. Indexes are the wire encoding: append only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderCause {
    /// No certificate existed.
    First,
    /// The current one is due for renewal.
    Renewal,
    /// Someone asked (`hearthctl certs renew`).
    Forced,
    /// Someone asked for a new key (`hearthctl certs rotate`).
    Rotation,
    /// No live edge can open the current certificate's key any more.
    KeyLost,
}

/// An answer an edge must serve for the CA to validate one name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeAnswer {
    /// HTTP-01: `GET /.well-known/acme-challenge/<token>` answers the key authorization.
    Http01 {
        /// The name being validated.
        name: String,
        /// The token in the path.
        token: String,
        /// The body to answer.
        key_authorization: String,
    },
    /// TLS-ALPN-01: a handshake for `name` with ALPN `acme-tls/1` gets a self-signed
    /// certificate carrying this digest (RFC 8737).
    TlsAlpn01 {
        /// The name being validated.
        name: String,
        /// SHA-256 of the key authorization.
        digest: Vec<u8>,
    },
    /// DNS-01: `_acme-challenge.<name>` (without `*.`) has a TXT record with this value.
    Dns01 {
        /// The name being validated.
        name: String,
        /// The TXT value.
        value: String,
    },
}

impl ChallengeAnswer {
    /// The name it validates.
    pub fn name(&self) -> &str {
        match self {
            ChallengeAnswer::Http01 { name, .. }
            | ChallengeAnswer::TlsAlpn01 { name, .. }
            | ChallengeAnswer::Dns01 { name, .. } => name,
        }
    }
}

/// A problem the CA reported (RFC 7807 / 8555 §6.7), or one met on the way to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeProblem {
    /// The problem type, e.g. `urn:ietf:params:acme:error:rejectedIdentifier`; empty when
    /// the CA was not reached.
    pub kind: String,
    /// What the CA (or the way to it) said.
    pub detail: String,
}

impl std::fmt::Display for AcmeProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.kind.is_empty() {
            f.write_str(&self.detail)
        } else {
            let short = self
                .kind
                .strip_prefix("urn:ietf:params:acme:error:")
                .unwrap_or(&self.kind);
            write!(f, "{short}: {}", self.detail)
        }
    }
}

/// The order for a certificate name. Record key: `names[0]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeOrder {
    /// The names ordered; the first is the record key.
    pub names: Vec<String>,
    /// The ACME directory.
    pub directory: String,
    /// The account URL that placed it.
    pub account: String,
    /// The order URL at the CA; empty when the order could not even be placed.
    pub url: String,
    /// The edge working on it.
    pub issuer: NodeId,
    /// Where it is.
    pub stage: OrderStage,
    /// Why it was placed.
    pub cause: OrderCause,
    /// What every edge must serve while it is `Placed` or `Validating`.
    pub challenges: Vec<ChallengeAnswer>,
    /// The certificate key, sealed to the edges, from `Finalizing` on.
    pub key: Option<Sealed>,
    /// When it was placed, Unix ms.
    pub started_ms: u64,
    /// Failed orders in a row for these names, this one included when it failed.
    pub failures: u32,
    /// `Failed`: what went wrong.
    pub problem: Option<AcmeProblem>,
    /// `Failed`: no new order before this, Unix ms.
    pub retry_ms: u64,
}

impl AcmeOrder {
    /// Whether it is still in flight (challenges served, CA working).
    pub fn in_flight(&self) -> bool {
        matches!(
            self.stage,
            OrderStage::Placed | OrderStage::Validating | OrderStage::Finalizing
        )
    }

    /// A digest of the challenge answers, which acknowledgements name.
    pub fn challenges_digest(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.url.as_bytes());
        hasher.update(postcard::to_stdvec(&self.challenges).unwrap_or_default());
        hasher.finalize().into()
    }
}

/// An edge serving an order's challenge answers. Record key: `<name>@<author>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeAck {
    /// The certificate name.
    pub name: String,
    /// [`AcmeOrder::challenges_digest`] of what it serves.
    pub digest: [u8; 32],
}

/// What someone asked of a certificate. Indexes are the wire encoding: append only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertAction {
    /// A new certificate now.
    Renew,
    /// A new certificate with a new key now, and the old one revoked at the CA.
    Rotate,
}

impl std::fmt::Display for CertAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CertAction::Renew => "renew",
            CertAction::Rotate => "rotate",
        })
    }
}

/// A request for a renewal or a new key. Record key: `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRequest {
    /// The certificate name.
    pub name: String,
    /// What was asked.
    pub action: CertAction,
    /// When it was asked (Unix ms): the issuer acts on it if no certificate was obtained
    /// since.
    pub asked_ms: u64,
}

/// Checks the names of a Cert or AcmeOrder body.
pub fn check_names(names: &[String]) -> Result<(), CertNameError> {
    if names.is_empty() || names.len() > MAX_NAMES {
        return Err(CertNameError::Invalid(
            names.join(","),
            format!("a certificate carries 1 to {MAX_NAMES} names"),
        ));
    }
    for name in names {
        if check_name(name)? != *name {
            return Err(CertNameError::Invalid(
                name.clone(),
                "must be lowercase".into(),
            ));
        }
    }
    Ok(())
}

/// The state of a certificate name as `hearthctl certs` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertState {
    /// No certificate yet; an order is in flight or about to be placed.
    Pending,
    /// A valid certificate, not yet due for renewal.
    Valid,
    /// A valid certificate, and a new one is being ordered.
    Renewing,
    /// The last order failed (the current certificate, if any, is still served).
    Failed,
    /// The certificate has expired and no new one could be had.
    Expired,
}

/// The state of a name from its records at `now`. Only an order placed after the current
/// certificate was obtained counts: an older failure is history.
pub fn state(cert: Option<&Cert>, order: Option<&AcmeOrder>, now_ms: u64) -> CertState {
    let valid = cert.is_some_and(|c| c.not_after_ms > now_ms);
    let current = order.filter(|o| cert.is_none_or(|c| o.started_ms > c.issued_ms));
    match (valid, current) {
        (true, Some(o)) if o.in_flight() => CertState::Renewing,
        (_, Some(o)) if o.stage == OrderStage::Failed => CertState::Failed,
        (true, _) => CertState::Valid,
        (false, Some(o)) if o.in_flight() => CertState::Pending,
        (false, _) if cert.is_some() => CertState::Expired,
        (false, _) => CertState::Pending,
    }
}

/// The edges that can open `sealed` and still serve: its recipients among `edges`.
pub fn holders(sealed: &Sealed, edges: &BTreeSet<NodeId>) -> Vec<NodeId> {
    sealed.recipients().filter(|n| edges.contains(n)).collect()
}

/// Whether `me`, now the chosen issuer, may carry on an order in flight last written at
/// `written_ms` by `order.issuer`: its own, or one whose issuer is no longer an edge or let
/// the lease run out.
pub fn may_take_over(
    order: &AcmeOrder,
    written_ms: u64,
    me: &NodeId,
    edges: &BTreeSet<NodeId>,
    now_ms: u64,
) -> bool {
    order.issuer == *me
        || !edges.contains(&order.issuer)
        || now_ms.saturating_sub(written_ms) >= ORDER_LEASE_MS
}

/// Whether a still-valid certificate's key is lost: no elected edge can open it, so a new
/// certificate is needed whatever the schedule says.
pub fn key_lost(cert: &Cert, edges: &BTreeSet<NodeId>, now_ms: u64) -> bool {
    cert.not_after_ms > now_ms && holders(&cert.key, edges).is_empty()
}

/// Who should re-seal a secret, and to whom: every elected edge gets a box, revoked nodes
/// (no longer `members`) lose theirs, and former edges keep theirs (they had the key
/// already; `hearthctl certs rotate` replaces it). The writer is the lowest id among the
/// elected edges that can open it, so one edge does it. `None` when nothing changes or no
/// elected edge can open it.
pub fn reseal_plan(
    recipients: &BTreeSet<NodeId>,
    members: &BTreeSet<NodeId>,
    edges: &BTreeSet<NodeId>,
) -> Option<(NodeId, BTreeSet<NodeId>)> {
    let wanted: BTreeSet<NodeId> = recipients
        .iter()
        .filter(|n| members.contains(n))
        .chain(edges.iter())
        .copied()
        .collect();
    if wanted == *recipients {
        return None;
    }
    let writer = recipients.iter().filter(|n| edges.contains(n)).min()?;
    Some((*writer, wanted))
}

/// Records for the tests of this module and of [`crate::renewal`].
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::id::NodeKey;

    /// A certificate for `a.example.com` obtained at `issued`, valid until `not_after`.
    pub fn cert(issued: u64, not_after: u64) -> Cert {
        Cert {
            names: vec!["a.example.com".into()],
            chain: vec![],
            key: Sealed::default(),
            not_before_ms: issued,
            not_after_ms: not_after,
            serial: "01".into(),
            issuer: NodeKey::from_secret([1; 32]).id(),
            directory: "https://ca/dir".into(),
            issued_ms: issued,
            recent: vec![issued],
            ari: None,
            ari_id: String::new(),
        }
    }

    /// An order for `a.example.com` placed at `started`, now at `stage`.
    pub fn order(stage: OrderStage, started: u64) -> AcmeOrder {
        AcmeOrder {
            names: vec!["a.example.com".into()],
            directory: "https://ca/dir".into(),
            account: "https://ca/acct/1".into(),
            url: "https://ca/order/1".into(),
            issuer: NodeKey::from_secret([1; 32]).id(),
            stage,
            cause: OrderCause::First,
            challenges: vec![],
            key: None,
            started_ms: started,
            failures: 0,
            problem: None,
            retry_ms: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeKey;

    #[test]
    fn names_are_checked() {
        assert_eq!(check_name("Blog.Example.com").unwrap(), "blog.example.com");
        assert_eq!(check_name("*.hearth.test").unwrap(), "*.hearth.test");
        for bad in [
            "localhost",
            "intranet",
            "127.0.0.1",
            "a.*.example.com",
            "*.com",
            "10.1.2.3",
            "x.localhost",
        ] {
            let err = check_name(bad);
            assert!(err.is_err(), "{bad} accepted");
        }
        assert!(check_names(&[]).is_err());
        assert!(check_names(&["A.example.com".into()]).is_err());
        assert!(check_names(&["a.example.com".into()]).is_ok());
    }

    #[test]
    fn wildcards_cover_one_label() {
        assert!(name_covers("*.hearth.test", "app.hearth.test"));
        assert!(!name_covers("*.hearth.test", "a.b.hearth.test"));
        assert!(!name_covers("*.hearth.test", "hearth.test"));
        assert!(!name_covers("*.hearth.test", "xhearth.test"));
        assert!(name_covers("app.hearth.test", "app.hearth.test"));
        assert!(!name_covers("app.hearth.test", "www.hearth.test"));
    }

    #[test]
    fn hosts_map_to_certificates() {
        let hosts = [
            "a.z.test",
            "b.z.test",
            "z.test",
            "deep.a.z.test",
            "other.example",
        ];
        let plain = wanted(hosts, None);
        assert_eq!(plain.len(), 5);
        assert_eq!(plain["a.z.test"], vec!["a.z.test".to_string()]);
        let wild = wanted(hosts, Some("z.test"));
        assert_eq!(
            wild.keys().collect::<Vec<_>>(),
            ["*.z.test", "deep.a.z.test", "other.example"]
        );
        assert_eq!(
            wild["*.z.test"],
            vec!["*.z.test".to_string(), "z.test".to_string()]
        );
    }

    #[test]
    fn the_issuer_is_stable_and_moves_only_when_it_goes() {
        let nodes: Vec<NodeId> = (0..5).map(|_| NodeKey::generate().id()).collect();
        let names: Vec<String> = (0..40).map(|i| format!("h{i}.example.com")).collect();
        let before: Vec<NodeId> = names
            .iter()
            .map(|n| issuer_of(n, &nodes).unwrap())
            .collect();
        // Order of candidates does not matter.
        let mut reversed = nodes.clone();
        reversed.reverse();
        for (name, issuer) in names.iter().zip(&before) {
            assert_eq!(issuer_of(name, &reversed).as_ref(), Some(issuer));
        }
        // Removing one candidate moves only its names.
        let gone = nodes[2];
        let rest: Vec<NodeId> = nodes.iter().copied().filter(|n| *n != gone).collect();
        for (name, issuer) in names.iter().zip(&before) {
            let after = issuer_of(name, &rest).unwrap();
            if *issuer != gone {
                assert_eq!(after, *issuer, "{name} moved although its issuer stayed");
            }
        }
        assert!(before.contains(&gone), "a test name should use node 2");
        assert_eq!(issuer_of("x.example.com", &[]), None);
    }

    use super::fixtures::{cert, order};

    #[test]
    fn takeover_waits_for_a_live_issuers_lease() {
        let (me, other) = (
            NodeKey::from_secret([1; 32]).id(),
            NodeKey::from_secret([2; 32]).id(),
        );
        let mut o = order(OrderStage::Placed, 100);
        o.issuer = other;
        let both: BTreeSet<NodeId> = [me, other].into();
        let alone: BTreeSet<NodeId> = [me].into();
        assert!(!may_take_over(
            &o,
            1_000,
            &me,
            &both,
            1_000 + ORDER_LEASE_MS - 1
        ));
        assert!(may_take_over(&o, 1_000, &me, &both, 1_000 + ORDER_LEASE_MS));
        assert!(
            may_take_over(&o, 1_000, &me, &alone, 1_001),
            "its issuer is gone"
        );
        o.issuer = me;
        assert!(may_take_over(&o, 1_000, &me, &both, 1_001), "its own order");
    }

    #[test]
    fn keys_are_resealed_to_new_edges_and_not_to_revoked_nodes() {
        let id = |n: u8| NodeKey::from_secret([n; 32]).id();
        let (a, b, c, r) = (id(1), id(2), id(3), id(4));
        let set = |ids: &[NodeId]| ids.iter().copied().collect::<BTreeSet<_>>();
        let members = set(&[a, b, c]);
        // A new edge c: the lowest holder among the edges adds it.
        let (writer, to) = reseal_plan(&set(&[a, b]), &members, &set(&[a, b, c])).unwrap();
        assert_eq!(to, set(&[a, b, c]));
        assert_eq!(writer, a.min(b));
        // Nothing to do when every edge already has a box; a former edge keeps its box.
        assert_eq!(reseal_plan(&set(&[a, b]), &members, &set(&[a, b])), None);
        assert_eq!(reseal_plan(&set(&[a, b]), &members, &set(&[b])), None);
        // A revoked node (no longer a member) loses its box.
        let (_, to) = reseal_plan(&set(&[a, b, r]), &members, &set(&[a, b])).unwrap();
        assert_eq!(to, set(&[a, b]));
        // No elected edge can open it: nobody can re-seal; the key is lost.
        assert_eq!(reseal_plan(&set(&[r]), &members, &set(&[c])), None);
        let mut lost = cert(0, 5_000);
        lost.key = Sealed {
            boxes: vec![crate::seal::SealedBox {
                to: r,
                enc: vec![],
                ciphertext: vec![],
            }],
        };
        assert!(key_lost(&lost, &set(&[c]), 1_000));
        assert!(
            !key_lost(&lost, &set(&[c]), 6_000),
            "an expired one is renewed anyway"
        );
    }

    #[test]
    fn states_follow_the_records() {
        use CertState::*;
        let now = 1_000;
        assert_eq!(state(None, None, now), Pending);
        assert_eq!(
            state(None, Some(&order(OrderStage::Placed, 900)), now),
            Pending
        );
        assert_eq!(
            state(None, Some(&order(OrderStage::Failed, 900)), now),
            Failed
        );
        let c = cert(500, 5_000);
        assert_eq!(
            state(Some(&c), Some(&order(OrderStage::Done, 400)), now),
            Valid
        );
        assert_eq!(
            state(Some(&c), Some(&order(OrderStage::Validating, 900)), now),
            Renewing
        );
        assert_eq!(
            state(Some(&c), Some(&order(OrderStage::Failed, 900)), now),
            Failed
        );
        // A failure from before the certificate was obtained is history.
        assert_eq!(
            state(Some(&c), Some(&order(OrderStage::Failed, 400)), now),
            Valid
        );
        let old = cert(100, 800);
        assert_eq!(state(Some(&old), None, now), Expired);
        assert_eq!(
            state(Some(&old), Some(&order(OrderStage::Placed, 900)), now),
            Pending
        );
    }
}
