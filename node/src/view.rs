//! The mesh as the data plane needs it: current members, the elected edges with their tunnel
//! and public addresses, and live routes. The mesh actor derives a new [`MeshView`] from its store whenever a
//! Member, Revocation, NodeInfo or Route record is stored, and publishes it on a watch
//! channel; the tunnel and ingress read the latest one without touching the store.

use crate::services::Report;
use hearth_proto::api::DataPlaneV1;
use hearth_proto::cert::{AcmeAccount, AcmeOffer, AcmeOrder, Cert, CertRequest};
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

    /// Every published host the edges serve over HTTPS (TLS mode `edge`).
    pub fn https_hosts(&self) -> BTreeSet<String> {
        self.routes
            .iter()
            .filter(|r| r.tls == RouteTls::Edge)
            .filter_map(|r| match &r.spec {
                RouteSpec::Http { host } => Some(host.clone()),
                RouteSpec::Tcp { .. } => None,
            })
            .collect()
    }

    /// How the edges treat TLS for `host`: `None` when no member publishes it. When members
    /// disagree, HTTPS wins (a host is plain HTTP only when every route to it says so).
    pub fn tls_of(&self, host: &str) -> Option<RouteTls> {
        let mut modes = self.routes.iter().filter_map(|r| match &r.spec {
            RouteSpec::Http { host: h } if h == host => Some(r.tls),
            _ => None,
        });
        let first = modes.next()?;
        Some(modes.fold(first, |a, b| {
            if a == RouteTls::Edge || b == RouteTls::Edge {
                RouteTls::Edge
            } else {
                a
            }
        }))
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

    /// The certificate names the published HTTPS hosts need, with the names each carries.
    /// Hosts no CA can certify are left out (see [`MeshView::uncertifiable`]).
    pub fn cert_plan(&self) -> BTreeMap<String, Vec<String>> {
        let hosts = self.https_hosts();
        let wildcard = self.lead_offer().and_then(|o| o.wildcard_zone.as_deref());
        let certifiable = hosts
            .iter()
            .filter(|h| hearth_proto::cert::check_name(h).is_ok())
            .map(String::as_str);
        hearth_proto::cert::wanted(certifiable, wildcard)
    }

    /// Published HTTPS hosts no CA can certify (single labels, IP addresses), with why.
    pub fn uncertifiable(&self) -> Vec<(String, String)> {
        self.https_hosts()
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
}

impl DataPlaneStatus {
    /// The current report.
    pub fn snapshot(&self) -> DataPlaneV1 {
        let mut out = self.report.snapshot();
        out.open_streams = self.open_streams.load(Ordering::Relaxed);
        out
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
