//! A Hearth mesh across the hosts of a lab: one `hearthd` per non-client host, founded on the
//! first public host and joined by invites.

use super::topology::{HostKind, Lab};
use crate::eventually::eventually;
use crate::procs::{Binaries, ProcNode};
use anyhow::{bail, Context, Result};
use hearth_proto::election::EdgePreference;
use hearth_proto::NodeId;
use std::time::Duration;

/// How long lab tests wait for convergence: reconnection after a partition waits for QUIC idle
/// timeouts and dial backoff (up to 30 s), on a shared 2-core machine.
pub const LAB_CONVERGE: Duration = Duration::from_secs(90);

/// Nodes running in a lab. Fields drop in order: processes first, then the namespaces, then
/// the data dirs.
#[derive(Debug)]
pub struct LabMesh {
    /// One node per non-client host, founder first.
    pub nodes: Vec<ProcNode>,
    /// The lab.
    pub lab: Lab,
    dir: tempfile::TempDir,
    bins: Binaries,
    env: Vec<(String, String)>,
}

impl LabMesh {
    /// Founds the mesh on the first public host, then joins every other node host with its
    /// own invite and runs it.
    pub async fn start(lab: Lab, bins: &Binaries) -> Result<Self> {
        let names: Vec<String> = lab.node_hosts().map(|h| h.name.clone()).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        Self::start_on(lab, bins, &names).await
    }

    /// Like [`LabMesh::start`], on the named hosts only; others can be added later.
    pub async fn start_on(lab: Lab, bins: &Binaries, hosts: &[&str]) -> Result<Self> {
        Self::start_with(lab, bins, hosts, &[]).await
    }

    /// Like [`LabMesh::start_on`], with `HEARTH_*` overrides for every node (this one and
    /// those added later), e.g. a DNS zone.
    pub async fn start_with(
        lab: Lab,
        bins: &Binaries,
        hosts: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self> {
        // `HEARTH_LAB_KEEP=1` keeps the data dirs and logs for a look afterwards.
        let dir = tempfile::Builder::new()
            .prefix("hearth-lab")
            .disable_cleanup(std::env::var_os("HEARTH_LAB_KEEP").is_some())
            .tempdir()?;
        let mut order: Vec<&str> = hosts.to_vec();
        let founder_at = order
            .iter()
            .position(|n| lab.host(n).is_ok_and(|h| h.kind == HostKind::Public))
            .context("a lab mesh needs a public host to found it")?;
        let founder = order.remove(founder_at);
        let mut mesh = Self {
            nodes: Vec::new(),
            lab,
            dir,
            bins: bins.clone(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let mut node = mesh.new_node(founder)?;
        node.init().await?;
        node.run().await?;
        mesh.nodes.push(node);
        for name in order {
            mesh.add(name).await?;
        }
        Ok(mesh)
    }

    fn new_node(&self, host: &str) -> Result<ProcNode> {
        let host = self.lab.host(host)?;
        // Every node runs as a user would run it: `edge = "auto"`, so the public hosts
        // become edges by AutoNAT and election, and the others never do.
        let mut node = ProcNode::new(&self.bins, self.dir.path().join(&host.name), &host.name)
            .in_netns(&host.ns)
            .edge_pref(EdgePreference::Auto);
        for (key, value) in &self.env {
            node.set_env(key, value);
        }
        Ok(node)
    }

    /// Invites (from the founder), joins and runs a node on host `name`.
    pub async fn add(&mut self, name: &str) -> Result<()> {
        let mut node = self.new_node(name)?;
        let code = self.nodes[0].invite().await?;
        node.join(&code)
            .await
            .with_context(|| format!("{name} joining"))?;
        node.run().await?;
        self.nodes.push(node);
        Ok(())
    }

    /// The node on host `name`.
    pub fn node(&self, name: &str) -> Result<&ProcNode> {
        match self.nodes.iter().find(|n| n.name == name) {
            Some(node) => Ok(node),
            None => bail!("no node on host `{name}`"),
        }
    }

    /// The node on host `name`, mutably.
    pub fn node_mut(&mut self, name: &str) -> Result<&mut ProcNode> {
        match self.nodes.iter_mut().find(|n| n.name == name) {
            Some(node) => Ok(node),
            None => bail!("no node on host `{name}`"),
        }
    }

    /// The node ids, read from their key files.
    pub fn ids(&self) -> Result<Vec<NodeId>> {
        self.nodes
            .iter()
            .map(|n| Ok(hearth_node::identity::load(&n.dir)?.id()))
            .collect()
    }

    /// Waits until every running node lists exactly `expected` members.
    pub async fn all_list(&self, expected: &[NodeId]) -> Result<()> {
        let mut want = expected.to_vec();
        want.sort();
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            let want = want.clone();
            eventually(
                &format!("{} lists the members", node.name),
                LAB_CONVERGE,
                || {
                    let want = want.clone();
                    async move {
                        let mut seen: Vec<NodeId> =
                            node.members().await?.iter().map(|r| r.node).collect();
                        seen.sort();
                        if seen != want {
                            bail!("lists {} members, want {}", seen.len(), want.len());
                        }
                        Ok(())
                    }
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Waits until `observer` shows `subject` as connected.
    pub async fn connected(&self, observer: &str, subject: &str) -> Result<()> {
        let node = self.node(observer)?;
        eventually(
            &format!("{observer} is connected to {subject}"),
            LAB_CONVERGE,
            || async {
                let rows = node.members().await?;
                match rows.iter().find(|r| r.name == subject) {
                    Some(row) if row.connected => Ok(()),
                    Some(_) => bail!("listed but not connected"),
                    None => bail!("not listed"),
                }
            },
        )
        .await
    }

    /// Waits until every running node has the same store digest; returns it.
    pub async fn same_digest(&self) -> Result<String> {
        let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        self.same_digest_among(&names).await
    }

    /// Waits until the running nodes among `names` (one side of a partition, say) have the
    /// same store digest; returns it.
    pub async fn same_digest_among(&self, names: &[&str]) -> Result<String> {
        let group: Vec<&ProcNode> = self
            .nodes
            .iter()
            .filter(|n| n.is_running() && names.contains(&n.name.as_str()))
            .collect();
        if group.is_empty() {
            bail!("no running node among {names:?}");
        }
        eventually(
            &format!("{} nodes have the same store digest", group.len()),
            LAB_CONVERGE,
            || async {
                let mut digests = Vec::new();
                for node in &group {
                    digests.push((node.name.clone(), node.status().await?.digest));
                }
                let first = digests[0].1.clone();
                if digests.iter().any(|(_, d)| *d != first) {
                    let short: Vec<String> = digests
                        .iter()
                        .map(|(n, d)| format!("{n}={}", &d[..8.min(d.len())]))
                        .collect();
                    bail!("digests differ: {}", short.join(" "));
                }
                Ok(first)
            },
        )
        .await
    }

    /// Adds the tail of every node's log to an error, so a failing test shows what happened.
    /// `HEARTH_LAB_LOG_LINES` sets how many lines (default 25).
    pub fn explain<T>(&self, result: Result<T>) -> Result<T> {
        let lines: usize = std::env::var("HEARTH_LAB_LOG_LINES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(40);
        result.map_err(|e| {
            let tails: String = self
                .nodes
                .iter()
                .map(|n| {
                    format!(
                        "\n--- {} (last {lines} log lines) ---\n{}",
                        n.name,
                        n.log_tail(lines)
                    )
                })
                .collect();
            e.context(format!("node logs:{tails}"))
        })
    }
}
