//! The mesh as the data plane needs it: current members, the elected edges with their tunnel
//! and public addresses, and live routes. The mesh actor derives a new [`MeshView`] from its store whenever a
//! Member, Revocation, NodeInfo or Route record is stored, and publishes it on a watch
//! channel; the tunnel and ingress read the latest one without touching the store.

use crate::services::Report;
use hearth_proto::api::DataPlaneV1;
use hearth_proto::route::RouteSpec;
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
