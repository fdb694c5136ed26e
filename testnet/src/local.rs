//! An in-process mesh on 127.0.0.1: every node is a real `hearth_node` with its own data dir,
//! sockets and libp2p swarm, all in one test process (corrosion-style harness).

use crate::eventually::{eventually, CONVERGE};
use anyhow::{bail, Context, Result};
use hearth_node::config::Config;
use hearth_node::RunningNode;
use hearth_proto::api::{CommandV1, MemberRowV1, ResponseV1, StatusV1};
use hearth_proto::{NodeId, Role};
use hearthctl::client::AdminClient;
use std::path::PathBuf;
use std::time::Duration;
use tempfile::TempDir;

/// One node of a [`LocalMesh`].
#[derive(Debug)]
pub struct LocalNode {
    /// Its name.
    pub name: String,
    /// Its config (loopback listen addresses, its own data dir).
    pub config: Config,
    /// Its id.
    pub id: NodeId,
    running: Option<RunningNode>,
}

impl LocalNode {
    /// The admin client for this node.
    pub fn client(&self) -> AdminClient {
        AdminClient::new(self.config.admin_socket())
    }

    /// Whether it is running.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }
}

/// A loopback config for a node in `dir`.
pub fn loopback_config(dir: PathBuf, name: &str) -> Config {
    Config {
        name: Some(name.to_string()),
        data_dir: Some(dir),
        listen: vec![
            "/ip4/127.0.0.1/udp/0/quic-v1".into(),
            "/ip4/127.0.0.1/tcp/0".into(),
        ],
        anti_entropy_secs: 2,
        guest_grace_secs: 2,
        tunnel: hearth_node::config::TunnelConfig {
            listen: "127.0.0.1:0".into(),
            ..Default::default()
        },
        ingress: hearth_node::config::IngressConfig {
            http_listen: "127.0.0.1:0".into(),
            https_listen: "127.0.0.1:0".into(),
            tcp_bind: "127.0.0.1".into(),
            ..Default::default()
        },
        // Tests share one Docker engine: only a test that asks for it follows containers.
        docker: hearth_node::config::DockerConfig {
            enabled: false,
            ..Default::default()
        },
        ..Config::default()
    }
}

/// Several nodes in one process, founded by node 0.
#[derive(Debug)]
pub struct LocalMesh {
    /// The nodes, founder first.
    pub nodes: Vec<LocalNode>,
    root: TempDir,
}

impl LocalMesh {
    /// Founds a mesh with one running node, which is the edge.
    pub async fn found() -> Result<Self> {
        Self::found_with(|_| {}).await
    }

    /// Like [`LocalMesh::found`], with `change` applied to the founder's config first (e.g.
    /// to configure ACME on the edge).
    pub async fn found_with(change: impl FnOnce(&mut Config)) -> Result<Self> {
        let root = tempfile::Builder::new().prefix("hearth-local").tempdir()?;
        let mut config = Config {
            edge: hearth_node::config::EdgePreference::Always,
            ..loopback_config(root.path().join("n0"), "n0")
        };
        change(&mut config);
        let done = hearth_node::init(&config, "n0", "test")?;
        let running = hearth_node::start(&config).await?;
        let node = LocalNode {
            name: "n0".into(),
            config,
            id: done.node,
            running: Some(running),
        };
        Ok(Self {
            nodes: vec![node],
            root,
        })
    }

    /// Founds a mesh of `n` running nodes, each joined with its own invite from node 0.
    pub async fn with_nodes(n: usize) -> Result<Self> {
        let mut mesh = Self::found().await?;
        for _ in 1..n {
            mesh.add_node().await?;
        }
        Ok(mesh)
    }

    /// A new data dir and config for a node that has not joined.
    pub fn fresh_config(&self, name: &str) -> Config {
        loopback_config(self.root.path().join(name), name)
    }

    /// Asks node `inviter` for an invite code.
    pub async fn invite(&self, inviter: usize, uses: u32, ttl_secs: u64) -> Result<String> {
        let response = self.nodes[inviter]
            .client()
            .call(CommandV1::Invite {
                ttl_secs,
                uses,
                role: Role::Member,
            })
            .await?;
        match response {
            ResponseV1::Invite(created) => Ok(created.code),
            other => bail!("invite failed: {other:?}"),
        }
    }

    /// Invites, joins and starts one more node; returns its index.
    pub async fn add_node(&mut self) -> Result<usize> {
        self.add_node_with(|_| {}).await
    }

    /// Like [`LocalMesh::add_node`], with `change` applied to the node's config first (e.g.
    /// to follow the Docker engine).
    pub async fn add_node_with(&mut self, change: impl FnOnce(&mut Config)) -> Result<usize> {
        let index = self.nodes.len();
        let name = format!("n{index}");
        let code = self.invite(0, 1, 600).await?;
        let mut config = self.fresh_config(&name);
        change(&mut config);
        let joined = hearth_node::join::join(
            &config,
            &name,
            &code,
            Duration::from_secs(30),
            &|_: &[String]| {},
        )
        .await
        .with_context(|| format!("{name} joining"))?;
        let running = hearth_node::start(&config).await?;
        self.nodes.push(LocalNode {
            name,
            config,
            id: joined.node,
            running: Some(running),
        });
        Ok(index)
    }

    /// Pushes `records` to node `i` as the member whose key is `key` (a stopped node's, say),
    /// over a fresh connection, the way a peer's replication does; returns the answer.
    pub async fn push_as(
        &self,
        i: usize,
        key: &hearth_proto::NodeKey,
        records: Vec<hearth_proto::Record>,
    ) -> Result<hearth_proto::wire::SyncResponseV1> {
        use hearth_node::mesh::behaviour::{build_swarm, MeshBehaviourEvent, SwarmRole};
        use hearth_node::mesh::peer_id::{keypair, peer_id};
        use hearth_proto::wire::{SyncRequest, SyncRequestV1, SyncResponse};
        use libp2p::futures::StreamExt;
        use libp2p::request_response::{Event, Message};
        use libp2p::swarm::SwarmEvent;
        let mut swarm = build_swarm(keypair(key), SwarmRole::Joiner, crate::clock_ms())?;
        let target = peer_id(&self.nodes[i].id);
        swarm.behaviour_mut().gate.policy.members.insert(target);
        let addrs: Vec<libp2p::Multiaddr> = self
            .status(i)
            .await?
            .listen_addrs
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        swarm.dial(
            libp2p::swarm::dial_opts::DialOpts::peer_id(target)
                .addresses(addrs)
                .build(),
        )?;
        let mut records = Some(records);
        let answer = tokio::time::timeout(CONVERGE, async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == target => {
                        if let Some(records) = records.take() {
                            let request = SyncRequest::V1(SyncRequestV1::Push { records });
                            swarm.behaviour_mut().sync.send_request(&target, request);
                        }
                    }
                    SwarmEvent::Behaviour(MeshBehaviourEvent::Sync(Event::Message {
                        message:
                            Message::Response {
                                response: SyncResponse::V1(response),
                                ..
                            },
                        ..
                    })) => return response,
                    _ => {}
                }
            }
        })
        .await
        .context("no answer to the push")?;
        Ok(answer)
    }

    /// Stops node `i` cleanly.
    pub async fn stop(&mut self, i: usize) {
        if let Some(running) = self.nodes[i].running.take() {
            running.shutdown().await;
        }
    }

    /// Starts node `i` again from its data dir.
    pub async fn restart(&mut self, i: usize) -> Result<()> {
        self.stop(i).await;
        self.nodes[i].running = Some(hearth_node::start(&self.nodes[i].config).await?);
        Ok(())
    }

    /// Node `i`'s member table.
    pub async fn members(&self, i: usize) -> Result<Vec<MemberRowV1>> {
        match self.nodes[i].client().call(CommandV1::Members).await? {
            ResponseV1::Members(rows) => Ok(rows),
            other => bail!("members failed: {other:?}"),
        }
    }

    /// Node `i`'s status.
    pub async fn status(&self, i: usize) -> Result<StatusV1> {
        match self.nodes[i].client().call(CommandV1::Status).await? {
            ResponseV1::Status(status) => Ok(*status),
            other => bail!("status failed: {other:?}"),
        }
    }

    /// Waits until every running node lists exactly `expected` and is connected to all of
    /// the other running ones among them.
    pub async fn converged(&self, expected: &[NodeId]) -> Result<()> {
        let mut want: Vec<NodeId> = expected.to_vec();
        want.sort();
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_running())
            .collect();
        for &i in &running {
            let want = want.clone();
            let live: Vec<NodeId> = running
                .iter()
                .map(|&j| self.nodes[j].id)
                .filter(|id| want.contains(id))
                .collect();
            eventually(
                &format!("{} sees the mesh", self.nodes[i].name),
                CONVERGE,
                || {
                    let want = want.clone();
                    let live = live.clone();
                    async move {
                        let rows = self.members(i).await?;
                        let mut seen: Vec<NodeId> = rows.iter().map(|r| r.node).collect();
                        seen.sort();
                        if seen != want {
                            bail!("members {seen:?}, want {want:?}");
                        }
                        let disconnected: Vec<&str> = rows
                            .iter()
                            .filter(|r| live.contains(&r.node) && !r.connected)
                            .map(|r| r.name.as_str())
                            .collect();
                        if !disconnected.is_empty() {
                            bail!("not connected to {disconnected:?}");
                        }
                        Ok(())
                    }
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Sends `command` to node `i`.
    pub async fn call(&self, i: usize, command: CommandV1) -> Result<ResponseV1> {
        Ok(self.nodes[i].client().call(command).await?)
    }

    /// Node `i`'s live routes.
    pub async fn routes(&self, i: usize) -> Result<Vec<hearth_proto::api::RouteRowV1>> {
        match self.call(i, CommandV1::Routes).await? {
            ResponseV1::Routes(rows) => Ok(rows),
            other => bail!("routes failed: {other:?}"),
        }
    }

    /// The edge's (node 0's) HTTP ingress address.
    pub async fn edge_http(&self) -> Result<std::net::SocketAddr> {
        self.status(0)
            .await?
            .data_plane
            .http_listen
            .context("node 0 is not an edge")?
            .parse()
            .context("http_listen")
    }

    /// Node `i`'s `hearthctl certs` row for certificate `name`.
    pub async fn cert_row(&self, i: usize, name: &str) -> Result<hearth_proto::api::CertRowV1> {
        match self.call(i, CommandV1::Certs).await? {
            ResponseV1::Certs(report) => report
                .rows
                .into_iter()
                .find(|r| r.name == name)
                .with_context(|| format!("node {i} lists no certificate {name}")),
            other => anyhow::bail!("certs: {other:?}"),
        }
    }

    /// Waits until the edge (node 0) serves HTTPS; returns its address.
    pub async fn edge_https(&self) -> Result<std::net::SocketAddr> {
        crate::eventually::eventually(
            "the edge serves HTTPS",
            crate::eventually::CONVERGE,
            || async {
                self.status(0)
                    .await?
                    .data_plane
                    .https_listen
                    .context("no HTTPS listener yet")?
                    .parse::<std::net::SocketAddr>()
                    .context("https_listen")
            },
        )
        .await
    }

    /// Waits until the edge (node 0) has a tunnel from every other running node.
    pub async fn edge_tunnels_up(&self) -> Result<()> {
        let members: Vec<NodeId> = self.nodes[1..]
            .iter()
            .filter(|n| n.is_running())
            .map(|n| n.id)
            .collect();
        eventually(
            "the edge has tunnels from every member",
            CONVERGE,
            || async {
                let tunnels = self.status(0).await?.data_plane.tunnels;
                if !members.iter().all(|m| tunnels.contains(m)) {
                    bail!("tunnels {tunnels:?}");
                }
                Ok(())
            },
        )
        .await
    }

    /// Ids of all nodes.
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Stops every node.
    pub async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i).await;
        }
    }
}
