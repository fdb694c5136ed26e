//! The mesh as the data plane needs it: current members, the elected edges with their tunnel
//! and public addresses, and live routes. The mesh actor derives a new [`MeshView`] from its store whenever a
//! Member, Revocation, NodeInfo or Route record is stored, and publishes it on a watch
//! channel; the tunnel and ingress read the latest one without touching the store.

use crate::services::Report;
use hearth_proto::api::{DataPlaneV1, FailedRequestV1};
use hearth_proto::cert::{AcmeAccount, AcmeOffer, AcmeOrder, Cert, CertRequest, ChallengeAnswer};
use hearth_proto::route::{RouteSpec, RouteTls};
use hearth_proto::NodeId;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

/// A route some member serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRoute {
    /// What the edges match.
    pub spec: RouteSpec,
    /// The hosting member.
    pub node: NodeId,
    /// `addr:port` as the hosting member resolves it.
    pub target: String,
    /// Whether the target wants a PROXY protocol v2 header.
    pub proxy_protocol: bool,
    /// HTTP routes: how the edges treat TLS.
    pub tls: RouteTls,
}

/// An elected edge as the data plane and the DNS server need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeInfo {
    /// Its name, for DNS name-server names.
    pub name: String,
    /// Position in the edge set, 0 the most senior.
    pub rank: usize,
    /// Its data-plane endpoint addresses, which members dial.
    pub tunnel: Vec<SocketAddr>,
    /// The IPs visitors should use (its AutoNAT-confirmed public addresses).
    pub ips: Vec<IpAddr>,
}

/// One consistent snapshot of what the data plane acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeshView {
    /// Current, unrevoked members (this node included while it is one).
    pub members: BTreeSet<NodeId>,
    /// The elected edges.
    pub edges: BTreeMap<NodeId, EdgeInfo>,
    /// Members the failure detector declared down: their tunnels are closed at once rather
    /// than at the tunnel's idle timeout, so visitors stop waiting on them.
    pub down: BTreeSet<NodeId>,
    /// Live routes of current members.
    pub routes: Vec<LiveRoute>,
    /// Certificates and the ACME state that obtains them.
    pub certs: CertView,
}

/// The certificate records, for the ACME actor and the edges' TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertView {
    /// Stored certificates by name.
    pub certs: BTreeMap<String, Cert>,
    /// ACME accounts by directory URL.
    pub accounts: BTreeMap<String, AcmeAccount>,
    /// The latest order per certificate name, with when it was last written (Unix ms).
    pub orders: BTreeMap<String, (AcmeOrder, u64)>,
    /// Per certificate name, the challenge digest each member acknowledged serving.
    pub acks: BTreeMap<String, BTreeMap<NodeId, [u8; 32]>>,
    /// Renewal and rotation requests by certificate name.
    pub requests: BTreeMap<String, CertRequest>,
    /// Members that may order certificates, with what each offers.
    pub issuers: BTreeMap<NodeId, AcmeOffer>,
}

impl MeshView {
    /// Whether `node` may use the data plane.
    pub fn is_member(&self, node: &NodeId) -> bool {
        self.members.contains(node)
    }

    /// The members serving `spec`, in record order.
    pub fn hosts_of<'a>(&'a self, spec: &'a RouteSpec) -> impl Iterator<Item = &'a LiveRoute> {
        self.routes.iter().filter(move |r| r.spec == *spec)
    }

    /// This node's own route for `spec`, which a stream from an edge asks it to connect.
    pub fn local_route(&self, me: &NodeId, spec: &RouteSpec) -> Option<&LiveRoute> {
        self.routes
            .iter()
            .find(|r| r.spec == *spec && r.node == *me)
    }

    /// Whether `node` is an elected edge.
    pub fn is_edge(&self, node: &NodeId) -> bool {
        self.edges.contains_key(node)
    }

    /// The edges, most senior first.
    pub fn edges_by_rank(&self) -> Vec<(&NodeId, &EdgeInfo)> {
        let mut edges: Vec<(&NodeId, &EdgeInfo)> = self.edges.iter().collect();
        edges.sort_by_key(|(_, e)| e.rank);
        edges
    }

    /// Every published HTTP host.
    pub fn http_hosts(&self) -> BTreeSet<String> {
        self.routes
            .iter()
            .filter_map(|r| match &r.spec {
                RouteSpec::Http { host } => Some(host.clone()),
                RouteSpec::Tcp { .. } => None,
            })
            .collect()
    }

    /// Every published host the edges serve over HTTPS themselves (TLS mode `edge`).
    pub fn https_hosts(&self) -> BTreeSet<String> {
        self.hosts_in(RouteTls::Edge)
    }

    /// Every published host whose TLS passes through the edges to its hosting members.
    pub fn passthrough_hosts(&self) -> BTreeSet<String> {
        self.hosts_in(RouteTls::Passthrough)
    }

    fn hosts_in(&self, mode: RouteTls) -> BTreeSet<String> {
        self.http_hosts()
            .into_iter()
            .filter(|h| self.tls_of(h) == Some(mode))
            .collect()
    }

    /// How the edges treat TLS for `host`: `None` when no member publishes it. When members
    /// disagree, passthrough wins over edge termination (no edge ever decrypts a host one of
    /// its members keeps blind), and either over plain HTTP only.
    pub fn tls_of(&self, host: &str) -> Option<RouteTls> {
        let rank = |mode: RouteTls| match mode {
            RouteTls::Passthrough => 2,
            RouteTls::Edge => 1,
            RouteTls::Off => 0,
        };
        self.routes
            .iter()
            .filter_map(|r| match &r.spec {
                RouteSpec::Http { host: h } if h == host => Some(r.tls),
                _ => None,
            })
            .max_by_key(|mode| rank(*mode))
    }

    /// The members that terminate a passthrough host's TLS themselves, holding its
    /// certificate (a passthrough route with the PROXY protocol leaves TLS to its target, and
    /// no certificate is ordered for it).
    pub fn passthrough_members(&self, host: &str) -> BTreeSet<NodeId> {
        self.routes
            .iter()
            .filter(|r| r.tls == RouteTls::Passthrough && !r.proxy_protocol)
            .filter(|r| matches!(&r.spec, RouteSpec::Http { host: h } if h == host))
            .map(|r| r.node)
            .collect()
    }

    /// Whether certificate `name` is a passthrough host's: kept by its hosting members, never
    /// by the edges.
    pub fn is_passthrough_cert(&self, name: &str) -> bool {
        self.tls_of(name) == Some(RouteTls::Passthrough)
    }

    /// Who serves certificate `name` and holds its key: the elected edges, or for a
    /// passthrough host its hosting members.
    pub fn cert_holders(&self, name: &str) -> BTreeSet<NodeId> {
        if self.is_passthrough_cert(name) {
            self.passthrough_members(name)
        } else {
            self.edges.keys().copied().collect()
        }
    }

    /// Who holds the ACME account of `scope` ([`AcmeAccount::scope`]): the elected edges for
    /// their shared account, a passthrough name's holders for its own.
    pub fn account_holders(&self, scope: &str) -> BTreeSet<NodeId> {
        match scope {
            "" => self.edges.keys().copied().collect(),
            scope => self.cert_holders(scope),
        }
    }

    /// The holders of `name` that may order certificates, in id order: the candidates for
    /// its issuer.
    pub fn cert_issuers(&self, name: &str) -> Vec<NodeId> {
        self.cert_holders(name)
            .into_iter()
            .filter(|n| self.certs.issuers.contains_key(n))
            .collect()
    }

    /// The members that must serve `answers` before the CA is told they are ready: the edges
    /// for DNS-01 (their DNS server answers it) and for every answer of a name they
    /// terminate; a passthrough name's hosting members for HTTP-01 and TLS-ALPN-01 (the edges
    /// forward those to them).
    pub fn answer_servers(&self, name: &str, answers: &[ChallengeAnswer]) -> BTreeSet<NodeId> {
        let edges: BTreeSet<NodeId> = self.edges.keys().copied().collect();
        if !self.is_passthrough_cert(name) {
            return edges;
        }
        let mut out = BTreeSet::new();
        if answers
            .iter()
            .any(|a| matches!(a, ChallengeAnswer::Dns01 { .. }))
        {
            out.extend(edges);
        }
        if answers
            .iter()
            .any(|a| !matches!(a, ChallengeAnswer::Dns01 { .. }))
        {
            out.extend(self.passthrough_members(name));
        }
        out
    }

    /// Whether `node` serves `answer` of certificate `name` itself: DNS-01 and the answers of
    /// names the edges terminate are served everywhere they are asked; a passthrough name's
    /// HTTP-01 and TLS-ALPN-01 answers only on its hosting members, so an edge forwards them.
    pub fn serves_answer(&self, node: &NodeId, name: &str, answer: &ChallengeAnswer) -> bool {
        matches!(answer, ChallengeAnswer::Dns01 { .. })
            || !self.is_passthrough_cert(name)
            || self.passthrough_members(name).contains(node)
    }

    /// The elected edges that may order certificates, in id order.
    pub fn issuing_edges(&self) -> Vec<NodeId> {
        self.edges
            .keys()
            .filter(|e| self.certs.issuers.contains_key(e))
            .copied()
            .collect()
    }

    /// The most senior issuing edge's offer: its directory and wildcard zone decide which
    /// certificates the mesh orders, so every node plans the same ones.
    pub fn lead_offer(&self) -> Option<&AcmeOffer> {
        self.edges_by_rank()
            .into_iter()
            .find_map(|(node, _)| self.certs.issuers.get(node))
    }

    /// The certificate names the published HTTPS hosts need, with the names each carries: the
    /// edges' (one per host, or a wildcard for the zone) and one per passthrough host. Hosts
    /// no CA can certify are left out (see [`MeshView::uncertifiable`]).
    pub fn cert_plan(&self) -> BTreeMap<String, Vec<String>> {
        let certifiable = |hosts: BTreeSet<String>| -> Vec<String> {
            hosts
                .into_iter()
                .filter(|h| hearth_proto::cert::check_name(h).is_ok())
                .collect()
        };
        let wildcard = self.lead_offer().and_then(|o| o.wildcard_zone.as_deref());
        let edge_hosts = certifiable(self.https_hosts());
        let mut plan = hearth_proto::cert::wanted(edge_hosts.iter().map(String::as_str), wildcard);
        let terminated = self
            .passthrough_hosts()
            .into_iter()
            .filter(|h| !self.passthrough_members(h).is_empty())
            .collect();
        for host in certifiable(terminated) {
            plan.insert(host.clone(), vec![host]);
        }
        plan
    }

    /// Published HTTPS hosts no CA can certify (single labels, IP addresses), with why.
    pub fn uncertifiable(&self) -> Vec<(String, String)> {
        let mut hosts = self.https_hosts();
        hosts.extend(self.passthrough_hosts());
        hosts
            .into_iter()
            .filter_map(|h| {
                hearth_proto::cert::check_name(&h)
                    .err()
                    .map(|e| (h, e.to_string()))
            })
            .collect()
    }

    /// Every TCP route port, which each edge listens on.
    pub fn tcp_ports(&self) -> BTreeSet<u16> {
        self.routes
            .iter()
            .filter_map(|r| match r.spec {
                RouteSpec::Tcp { port } => Some(port),
                RouteSpec::Http { .. } => None,
            })
            .collect()
    }
}

/// The receiving end the data plane holds.
pub type ViewRx = watch::Receiver<Arc<MeshView>>;

/// What the data plane reports to `hearthctl status`; written by the tunnel and ingress,
/// read by the mesh actor when it answers a status command.
#[derive(Debug, Clone, Default)]
pub struct DataPlaneStatus {
    report: Report<DataPlaneV1>,
    open_streams: Arc<AtomicU64>,
    failures: RecentFailures,
}

impl DataPlaneStatus {
    /// The current report.
    pub fn snapshot(&self) -> DataPlaneV1 {
        let mut out = self.report.snapshot();
        out.open_streams = self.open_streams.load(Ordering::Relaxed);
        out.recent_failures = self.failures.snapshot();
        out
    }

    /// Where ingress notes the requests it fails.
    pub fn failures(&self) -> RecentFailures {
        self.failures.clone()
    }

    /// Changes the report.
    pub fn update(&self, change: impl FnOnce(&mut DataPlaneV1)) {
        self.report.update(change);
    }

    /// Counts one proxied connection until the guard drops.
    pub fn stream_opened(&self) -> StreamGuard {
        self.open_streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard(self.open_streams.clone())
    }
}

/// Decrements the open-stream count when dropped.
#[derive(Debug)]
pub struct StreamGuard(Arc<AtomicU64>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_proto::NodeKey;

    fn id(n: u8) -> NodeId {
        NodeKey::from_secret([n; 32]).id()
    }

    fn route(host: &str, node: NodeId, tls: RouteTls, proxy_protocol: bool) -> LiveRoute {
        LiveRoute {
            spec: RouteSpec::Http { host: host.into() },
            node,
            target: "127.0.0.1:80".into(),
            proxy_protocol,
            tls,
        }
    }

    fn view() -> MeshView {
        let (edge, home, nas, other) = (id(1), id(2), id(3), id(4));
        let mut view = MeshView {
            members: [edge, home, nas, other].into(),
            ..MeshView::default()
        };
        view.edges.insert(
            edge,
            EdgeInfo {
                name: "vps".into(),
                rank: 0,
                tunnel: vec![],
                ips: vec![],
            },
        );
        view.routes = vec![
            route("app.z.test", home, RouteTls::Edge, false),
            route("blind.z.test", home, RouteTls::Passthrough, false),
            route("blind.z.test", nas, RouteTls::Passthrough, false),
            // A member disagreeing: passthrough wins, and this member holds nothing.
            route("blind.z.test", other, RouteTls::Edge, false),
            // The target terminates TLS itself: passthrough, but no certificate.
            route("raw.z.test", home, RouteTls::Passthrough, true),
            route("plain.z.test", home, RouteTls::Off, false),
        ];
        view.certs.issuers.insert(
            home,
            AcmeOffer {
                directory: "https://ca/dir".into(),
                wildcard_zone: Some("z.test".into()),
            },
        );
        view.certs.issuers.insert(
            edge,
            AcmeOffer {
                directory: "https://ca/dir".into(),
                wildcard_zone: Some("z.test".into()),
            },
        );
        view
    }

    #[test]
    fn passthrough_hosts_are_held_by_their_terminating_members_only() {
        let view = view();
        let (edge, home, nas) = (id(1), id(2), id(3));
        assert_eq!(view.tls_of("blind.z.test"), Some(RouteTls::Passthrough));
        assert_eq!(view.tls_of("plain.z.test"), Some(RouteTls::Off));
        assert_eq!(view.tls_of("nobody.z.test"), None);
        assert_eq!(view.cert_holders("blind.z.test"), [home, nas].into());
        assert_eq!(view.cert_holders("*.z.test"), [edge].into());
        // Only holders that may order are candidates for issuer.
        assert_eq!(view.cert_issuers("blind.z.test"), vec![home]);
        assert!(view.passthrough_members("raw.z.test").is_empty());
        // The plan: the zone's wildcard for the edges' host; the blind host its own
        // certificate; nothing for the raw-TLS one or the plain one.
        let plan = view.cert_plan();
        assert_eq!(
            plan.keys().map(String::as_str).collect::<Vec<_>>(),
            ["*.z.test", "blind.z.test"]
        );
        assert_eq!(plan["blind.z.test"], vec!["blind.z.test".to_string()]);
    }

    #[test]
    fn a_passthrough_names_answers_are_served_by_its_members_and_dns_by_the_edges() {
        let view = view();
        let (edge, home, nas) = (id(1), id(2), id(3));
        let http = ChallengeAnswer::Http01 {
            name: "blind.z.test".into(),
            token: "t".into(),
            key_authorization: "t.k".into(),
        };
        let dns = ChallengeAnswer::Dns01 {
            name: "blind.z.test".into(),
            value: "v".into(),
        };
        assert_eq!(
            view.answer_servers("blind.z.test", std::slice::from_ref(&http)),
            [home, nas].into()
        );
        assert_eq!(
            view.answer_servers("blind.z.test", std::slice::from_ref(&dns)),
            [edge].into()
        );
        assert!(!view.serves_answer(&edge, "blind.z.test", &http));
        assert!(view.serves_answer(&home, "blind.z.test", &http));
        assert!(view.serves_answer(&edge, "blind.z.test", &dns));
        // A name the edges terminate: every edge must serve every answer.
        assert_eq!(view.answer_servers("*.z.test", &[dns]), [edge].into());
        assert!(view.serves_answer(&edge, "app.z.test", &http));
    }
}

/// The last [`RecentFailures::KEPT`] requests ingress failed, for `hearthctl status`; cheap
/// to clone.
#[derive(Debug, Clone, Default)]
pub struct RecentFailures(Arc<std::sync::Mutex<std::collections::VecDeque<FailedRequestV1>>>);

impl RecentFailures {
    /// How many are kept.
    pub const KEPT: usize = 16;

    /// Notes one, forgetting the oldest beyond [`Self::KEPT`].
    pub fn record(&self, failure: FailedRequestV1) {
        if let Ok(mut kept) = self.0.lock() {
            kept.push_back(failure);
            while kept.len() > Self::KEPT {
                kept.pop_front();
            }
        }
    }

    /// The kept ones, oldest first.
    pub fn snapshot(&self) -> Vec<FailedRequestV1> {
        self.0
            .lock()
            .map(|kept| kept.iter().cloned().collect())
            .unwrap_or_default()
    }
}
