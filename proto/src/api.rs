//! The admin API between `hearthctl` and the local `hearthd`.
//!
//! One JSON [`Command`] per line on the admin Unix socket, answered by one JSON [`Response`]
//! line. Both are versioned so a newer `hearthctl` gets a clear error from an older daemon.

use crate::cert::{CertAction, CertState};
use crate::election::{EdgePreference, Verdict};
use crate::id::{MeshId, NodeId};
use crate::reach::Reach;
use crate::record::Role;
use crate::route::{RouteSpec, RouteTls};
use serde::{Deserialize, Serialize};

/// A request from `hearthctl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// First version.
    V1(CommandV1),
}

/// Admin commands, version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandV1 {
    /// This node, its mesh and its peers.
    Status,
    /// Every member with its reachability.
    Members,
    /// Issue an invite code (admins only).
    Invite {
        /// Seconds the code stays valid.
        ttl_secs: u64,
        /// How many nodes may redeem it.
        uses: u32,
        /// Role granted.
        role: Role,
    },
    /// Revoke a member for good (admins only).
    Revoke {
        /// Full id, unique id prefix, or unique name.
        node: String,
    },
    /// Dial a multiaddr, e.g. a public node waiting in `hearthd join` that cannot reach us.
    Dial {
        /// The multiaddr.
        addr: String,
    },
    /// Publish a route (on this node unless `node` names another; then admins only).
    Publish {
        /// What the edges match.
        spec: RouteSpec,
        /// `addr:port` as the hosting node resolves it.
        target: String,
        /// Hosting node: id, id prefix or name; default this node.
        node: Option<String>,
        /// TCP routes: send a PROXY protocol v2 header to the target.
        #[serde(default)]
        proxy_protocol: bool,
        /// HTTP routes: HTTPS at the edges (default) or plain HTTP only.
        #[serde(default)]
        tls: RouteTls,
    },
    /// Publish a route to a Docker container on this node: the node keeps the route pointed at
    /// the container's current address while it runs (and is healthy), and withdraws it
    /// otherwise.
    PublishContainer {
        /// What the edges match.
        spec: RouteSpec,
        /// Container name or id.
        container: String,
        /// The port inside the container.
        port: u16,
        /// HTTP routes: HTTPS at the edges (default) or plain HTTP only.
        #[serde(default)]
        tls: RouteTls,
    },
    /// Withdraw a route (writes a tombstone).
    Unpublish {
        /// What the edges match.
        spec: RouteSpec,
        /// Hosting node; default this node.
        node: Option<String>,
    },
    /// Every live route.
    Routes,
    /// The elected edges, their addresses, and why every other member is not one.
    Edges,
    /// Every certificate the published hosts need, with its state.
    Certs,
    /// Ask for a new certificate now (`renew`), or a new key and certificate (`rotate`).
    CertAction {
        /// A published host or a certificate name (`*.zone`).
        host: String,
        /// What to do.
        action: CertAction,
    },
}

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// First version.
    V1(ResponseV1),
}

/// Admin answers, version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseV1 {
    /// Answer to `Status`.
    Status(Box<StatusV1>),
    /// Answer to `Members`.
    Members(Vec<MemberRowV1>),
    /// Answer to `Invite`.
    Invite(InviteCreatedV1),
    /// Answer to `Revoke`.
    Revoked {
        /// The revoked node.
        node: NodeId,
        /// Its name.
        name: String,
    },
    /// Answer to `Dial`: the dial was started.
    Dialing {
        /// The address being dialed.
        addr: String,
    },
    /// Answer to `Publish`: the stored route.
    Published(RouteRowV1),
    /// Answer to `Unpublish`.
    Unpublished {
        /// The withdrawn route.
        spec: RouteSpec,
        /// Its hosting node.
        node: NodeId,
    },
    /// Answer to `PublishContainer`: the route now follows the container.
    Following {
        /// What the edges match.
        spec: RouteSpec,
        /// The container.
        container: String,
        /// The port inside it.
        port: u16,
    },
    /// Answer to `Routes`.
    Routes(Vec<RouteRowV1>),
    /// Answer to `Edges`.
    Edges(EdgesV1),
    /// Answer to `Certs`.
    Certs(CertsV1),
    /// Answer to `CertAction`: the request is stored and replicated; the issuing edge acts
    /// on it.
    CertRequested {
        /// The certificate name.
        name: String,
        /// What was asked.
        action: CertAction,
        /// The edge that will order it, if one can.
        issuer: Option<String>,
    },
    /// The command failed.
    Error(ApiError),
}

/// One live route as `hearthctl routes` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRowV1 {
    /// What the edges match.
    pub spec: RouteSpec,
    /// Hosting node.
    pub node: NodeId,
    /// Its name.
    pub node_name: String,
    /// `addr:port` on the hosting node.
    pub target: String,
    /// When it was last written, Unix milliseconds (its HLC time).
    pub updated_ms: u64,
    /// When this node stored that write, Unix milliseconds (local; 0 if unknown).
    pub stored_ms: u64,
    /// Who wrote it (the hosting node or an admin).
    pub author: NodeId,
    /// Whether the target gets a PROXY protocol v2 header first.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// The Docker container the route follows, if any.
    #[serde(default)]
    pub container: Option<String>,
    /// HTTP routes: how the edges treat TLS.
    #[serde(default)]
    pub tls: RouteTls,
}

/// Certificates as `hearthctl certs` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertsV1 {
    /// Whether this node may order certificates, and if not, why.
    pub acme: String,
    /// One row per certificate name the published hosts need (and stored ones no longer
    /// needed).
    pub rows: Vec<CertRowV1>,
}

/// One certificate name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRowV1 {
    /// The certificate name: a host or `*.zone`.
    pub name: String,
    /// The names it carries.
    pub names: Vec<String>,
    /// The published hosts it serves.
    pub hosts: Vec<String>,
    /// Where it is.
    pub state: CertState,
    /// Why (pending, failed: the CA's problem; self-signed meanwhile).
    pub detail: String,
    /// The edge that obtained the stored certificate, or works on the order.
    pub issuer: Option<NodeId>,
    /// Its name.
    pub issuer_name: String,
    /// Expiry of the stored certificate, Unix ms.
    pub not_after_ms: Option<u64>,
    /// When it is due for renewal, Unix ms.
    pub renew_at_ms: Option<u64>,
    /// The leaf's serial, hex.
    pub serial: Option<String>,
    /// The current members whose key can open it, by name: where the private key lives (the
    /// elected edges, or a passthrough host's members; a former edge keeps its copy until a
    /// rotation).
    pub holders: Vec<String>,
    /// The ACME directory it comes from.
    pub directory: String,
    /// How the CA validated the names of the latest order (`http-01 app.example.com`, …).
    #[serde(default)]
    pub challenges: Vec<String>,
    /// Where TLS ends: `edge` (the edges hold the key) or `passthrough` (the hosting
    /// members hold it; the edges see only ciphertext).
    #[serde(default)]
    pub mode: crate::route::RouteTls,
}

/// The edge election as this node computes it (every node computes the same).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgesV1 {
    /// The limit in force: the smallest `edges.max` a live member announces.
    pub max: u8,
    /// Every member, edges first (most senior first), then the others by name.
    pub rows: Vec<EdgeRowV1>,
}

/// One member's part in the election.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeRowV1 {
    /// The member.
    pub node: NodeId,
    /// Its name.
    pub name: String,
    /// Elected or not, and why not.
    pub verdict: Verdict,
    /// Its configured preference.
    pub edge_pref: EdgePreference,
    /// What AutoNAT found about it.
    pub reach: Reach,
    /// The IPs visitors use for it while it is an edge (what DNS answers).
    pub ips: Vec<String>,
    /// Whether this node's failure detector holds it alive (always for the answering node).
    pub alive: bool,
    /// Whether this row is the answering node itself.
    pub is_self: bool,
}

/// How this node reaches a connected member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathV1 {
    /// A direct connection (possibly hole-punched).
    Direct,
    /// Only through a relay on another member (an edge).
    Relayed {
        /// The relaying member.
        via: NodeId,
        /// Its name.
        via_name: String,
    },
}

/// This node's view of itself and the mesh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusV1 {
    /// This node.
    pub node: NodeId,
    /// This node's name.
    pub name: String,
    /// The mesh.
    pub mesh: MeshId,
    /// The mesh's name.
    pub mesh_name: String,
    /// This node's role, `None` once revoked.
    pub role: Option<Role>,
    /// Control-plane addresses this node listens on.
    pub listen_addrs: Vec<String>,
    /// Current members, this node included.
    pub members: usize,
    /// Members with a live control-plane connection to this node.
    pub peers_connected: Vec<NodeId>,
    /// Records in the store.
    pub records: usize,
    /// Records refused since start, by reason label.
    pub rejected_records: Vec<(String, u64)>,
    /// Connections refused by membership gating since start (non-members, revoked nodes).
    pub refused_connections: u64,
    /// Always 0: records are pushed to peers, not gossiped, since gossipsub went (see
    /// docs/replication.md). Kept so an older `hearthctl` still reads the answer.
    pub gossip_peers: usize,
    /// Hex digest of every record version in the store but the NodeInfo records (which change
    /// with addresses and reachability): equal on two nodes means the same members and routes.
    pub digest: String,
    /// Seconds since `hearthd run` started.
    pub uptime_secs: u64,
    /// Daemon version.
    pub version: String,
    /// The data plane: this node's tunnel endpoint, ingress listeners and live tunnels.
    #[serde(default)]
    pub data_plane: DataPlaneV1,
    /// The local Docker engine, as the services subsystem sees it.
    #[serde(default)]
    pub docker: DockerV1,
    /// Store flushes and watermark writes since start: flat while the mesh is idle.
    #[serde(default)]
    pub store_writes: u64,
    /// This node's hybrid logical clock (Unix ms): what its next record will be dated at
    /// least. A remote clock moves it only through records within `max_clock_ahead`.
    #[serde(default)]
    pub clock_ms: u64,
}

/// Whether this node publishes Docker containers, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DockerV1 {
    /// Connected to the engine.
    pub available: bool,
    /// The engine version, or why it is unavailable (disabled, no socket, no answer).
    pub detail: String,
    /// Routes this node currently publishes for containers.
    pub routes: usize,
}

/// This node's part in the data plane, as `hearthctl status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DataPlaneV1 {
    /// Whether this node is an elected edge (serving HTTP, TCP routes and DNS).
    pub edge: bool,
    /// The UDP address the tunnel endpoint is bound to.
    pub tunnel_listen: Option<String>,
    /// The HTTP ingress address (edges only).
    pub http_listen: Option<String>,
    /// The HTTPS ingress address (edges only).
    #[serde(default)]
    pub https_listen: Option<String>,
    /// The DNS server address (edges with `dns.zone` set).
    #[serde(default)]
    pub dns_listen: Option<String>,
    /// Why ingress is not serving although this node is an edge (a port it cannot bind).
    #[serde(default)]
    pub ingress_error: Option<String>,
    /// TCP route ports this edge listens on.
    pub tcp_ports: Vec<u16>,
    /// Members with a live tunnel to or from this node.
    pub tunnels: Vec<NodeId>,
    /// Proxied connections currently open through this node.
    pub open_streams: u64,
    /// The last requests this node's ingress answered with 502, oldest first, with the
    /// reason the visitor's page does not show.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_failures: Vec<FailedRequestV1>,
}

/// A request the ingress failed (a 502), as `hearthctl status` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedRequestV1 {
    /// The id on the visitor's page and in its `x-request-id` header.
    pub request_id: String,
    /// When, Unix milliseconds.
    pub at_ms: u64,
    /// The status the visitor got.
    pub status: u16,
    /// The host asked for.
    pub host: String,
    /// Why: which member or target failed and how.
    pub reason: String,
}

/// One member as `hearthctl members` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRowV1 {
    /// The member.
    pub node: NodeId,
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Addresses it announces.
    pub addrs: Vec<String>,
    /// Whether this node has a live connection to it (always true for itself).
    pub connected: bool,
    /// Last time this node had a connection to it, Unix milliseconds.
    pub last_seen_ms: Option<u64>,
    /// How the connection goes, while connected (none for this node itself).
    #[serde(default)]
    pub path: Option<PathV1>,
    /// The latest ping round trip over that path, in microseconds: control traffic that
    /// actually went through it.
    #[serde(default)]
    pub rtt_us: Option<u64>,
    /// Whether this row is the answering node itself.
    pub is_self: bool,
}

/// A freshly issued invite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteCreatedV1 {
    /// The code to paste into `hearthd join`.
    pub code: String,
    /// Expiry, Unix milliseconds.
    pub expires_ms: u64,
    /// Redemptions allowed.
    pub uses: u32,
    /// Role granted.
    pub role: Role,
    /// Addresses in the code.
    pub addrs: Vec<String>,
}

/// A failed command, with a message meant for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// Broad class, for scripts.
    pub kind: ApiErrorKind,
    /// What went wrong and what to do.
    pub message: String,
}

/// Classes of admin errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiErrorKind {
    /// The command's arguments are wrong.
    BadRequest,
    /// Nothing matches.
    NotFound,
    /// This node may not do that (not an admin, revoked).
    Forbidden,
    /// The daemon failed.
    Internal,
}

impl ApiError {
    /// Builds an error.
    pub fn new(kind: ApiErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// Finds the one node a person meant by a full id, an id prefix or a name.
pub fn resolve_node<'a>(
    query: &str,
    candidates: impl IntoIterator<Item = (NodeId, &'a str)>,
) -> Result<NodeId, ApiError> {
    let query = query.trim();
    if query.is_empty() {
        return Err(ApiError::new(ApiErrorKind::BadRequest, "no node given"));
    }
    let lower = query.to_ascii_lowercase();
    let mut matches: Vec<(NodeId, &str)> = candidates
        .into_iter()
        .filter(|(id, name)| *name == query || id.to_string().starts_with(&lower))
        .collect();
    matches.sort();
    matches.dedup();
    match matches.as_slice() {
        [(id, _)] => Ok(*id),
        [] => Err(ApiError::new(
            ApiErrorKind::NotFound,
            format!("no member is named `{query}` or has an id starting with it; see `hearthctl members`"),
        )),
        many => Err(ApiError::new(
            ApiErrorKind::BadRequest,
            format!(
                "`{query}` matches {} members ({}); give more of the id",
                many.len(),
                many.iter()
                    .map(|(id, name)| format!("{name} {}", id.short()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

#[cfg(test)]
mod golden;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeKey;

    #[test]
    fn commands_are_versioned_json() {
        let json = serde_json::to_string(&Command::V1(CommandV1::Status)).unwrap();
        assert_eq!(json, r#"{"V1":"status"}"#);
        let back: Command = serde_json::from_str(r#"{"V1":{"revoke":{"node":"ab"}}}"#).unwrap();
        assert_eq!(back, Command::V1(CommandV1::Revoke { node: "ab".into() }));
    }

    #[test]
    fn resolves_by_name_prefix_and_refuses_ambiguity() {
        let a = NodeKey::generate().id();
        let b = NodeKey::generate().id();
        let nodes = [(a, "vps"), (b, "home")];
        assert_eq!(resolve_node("home", nodes).unwrap(), b);
        assert_eq!(resolve_node(&a.to_string()[..8], nodes).unwrap(), a);
        assert_eq!(
            resolve_node("nobody", nodes).unwrap_err().kind,
            ApiErrorKind::NotFound
        );
        assert_eq!(
            resolve_node("", nodes).unwrap_err().kind,
            ApiErrorKind::BadRequest
        );
    }
}
