//! Benchmarks: programs, not tests. Each writes its own section of docs/benchmarks.md.

use crate::lab::{HostKind, Lab, LabMesh};
use crate::procs::{Binaries, ProcMesh};
use anyhow::{Context, Result};
use hearth_proto::api::{CommandV1, ResponseV1};
use std::path::Path;
use std::time::{Duration, Instant};

/// Replaces (or appends) the section `id` of the benchmarks file.
pub fn write_section(path: &Path, id: &str, body: &str) -> Result<()> {
    let start = format!("<!-- bench:{id} -->");
    let end = format!("<!-- /bench:{id} -->");
    let existing = std::fs::read_to_string(path).unwrap_or_else(|_| {
        "# Benchmarks\n\nEvery figure here was written by the command shown with it. Machines are shared and noisy: compare ratios within one run, not absolute numbers across runs.\n".into()
    });
    let section = format!("{start}\n{}\n{end}", body.trim_end());
    let updated = match (existing.find(&start), existing.find(&end)) {
        (Some(a), Some(b)) if b > a => {
            format!(
                "{}{}{}",
                &existing[..a],
                section,
                &existing[b + end.len()..]
            )
        }
        _ => format!("{}\n{}\n", existing.trim_end(), section),
    };
    std::fs::write(path, updated).with_context(|| format!("writing {}", path.display()))
}

fn ms(d: Option<&Duration>) -> f64 {
    d.map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

/// Milliseconds as a table cell: `1234 ms`.
pub fn ms_cell(ms: f64) -> String {
    format!("{ms:.0} ms")
}

/// A table row `| what | n | median | p90 | max |` of a sample's statistics.
pub fn stats_row(what: &str, s: Stats, n: usize) -> String {
    format!(
        "| {what} | {n} | {} | {} | {} |\n",
        ms_cell(s.p50),
        ms_cell(s.p90),
        ms_cell(s.max)
    )
}

/// Lab sizes as the `--nodes` argument that reproduces a run: `5,20,50`.
pub fn sizes_arg(sizes: &[usize]) -> String {
    sizes
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Summary statistics of a sample, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    /// Median.
    pub p50: f64,
    /// 90th percentile (nearest rank).
    pub p90: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// Nearest-rank percentiles of `samples`.
pub fn stats(samples: &[Duration]) -> Stats {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    let rank = |q: f64| {
        if ms.is_empty() {
            return 0.0;
        }
        let i = ((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1;
        ms[i]
    };
    Stats {
        p50: rank(0.5),
        p90: rank(0.9),
        p99: rank(0.99),
        max: ms.last().copied().unwrap_or(0.0),
    }
}

/// Time from starting `hearthd join` until every running node lists the new member, over
/// `runs` joins into a mesh that starts with `nodes` members.
pub async fn join_latency(nodes: usize, runs: usize, out: &Path) -> Result<()> {
    let bins = Binaries::locate()?;
    let root = tempfile::Builder::new().prefix("hearth-bench").tempdir()?;
    let mut mesh = ProcMesh::start(&bins, root.path(), nodes).await?;
    let mut joined = Vec::new();
    let mut listed = Vec::new();
    for run in 0..runs {
        let node = mesh.prepare_node();
        let code = mesh.nodes[0].invite().await?;
        let started = Instant::now();
        node.join(&code).await?;
        joined.push(started.elapsed());
        let id = hearth_node::identity::load(&node.dir)?.id();
        let deadline = started + Duration::from_secs(30);
        // Each node is polled on its own task, so a slow answer from one does not delay
        // noticing the others.
        let mut waits = tokio::task::JoinSet::new();
        for existing in &mesh.nodes {
            let client = existing.client();
            waits.spawn(async move {
                loop {
                    if let Ok(ResponseV1::Members(rows)) = client.call(CommandV1::Members).await {
                        if rows.iter().any(|r| r.node == id) {
                            return Ok(started.elapsed());
                        }
                    }
                    if Instant::now() > deadline {
                        anyhow::bail!("run {run}: not listed after 30 s");
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            });
        }
        let mut last = Duration::ZERO;
        while let Some(done) = waits.join_next().await {
            last = last.max(done??);
        }
        listed.push(last);
        println!(
            "join {run}: command done {:.0} ms, listed on all {} nodes {:.0} ms",
            joined[run].as_secs_f64() * 1000.0,
            mesh.nodes.len(),
            last.as_secs_f64() * 1000.0
        );
        mesh.push_running(node).await?;
    }
    mesh.stop().await;
    let j = stats(&joined);
    let s = stats(&listed);
    let body = format!(
        "## Join latency\n\n\
         Time from starting `hearthd join CODE` until (a) the command exits as a member and (b) \
         every running node lists the new member (`hearthctl members`, polled every 2 ms on all \
         nodes at once), for {runs} joins one after another into a mesh that starts with {nodes} \
         nodes (so the last join is listed on {} nodes). All nodes are release-built `hearthd` \
         processes on 127.0.0.1 (QUIC).\n\n\
         | measured until | p50 | p90 | max |\n|---|---|---|---|\n\
         | `hearthd join` exits, a member | {:.0} ms | {:.0} ms | {:.0} ms |\n\
         | listed on every node | {:.0} ms | {:.0} ms | {:.0} ms |\n\n\
         Into the smallest mesh ({nodes} nodes) the new member was listed everywhere after {:.0} ms; \
         into the largest ({} nodes) after {:.0} ms. The growth with mesh size comes from replication in this fully \
         connected loopback mesh: the new Member record goes from the inviter to every node \
         directly, and every node that got it from its author pushes it on \
         once more (that is what lets a VPS reach all its NAT'd homes in one step), so O(n²) \
         small messages and stale checks run on one 2-core machine. In the NAT lab, where homes \
         connect only to the VPS, the same path is O(n): see the publish latency below.\n\n\
         The figure includes starting the `hearthd join` process, creating its key and store, \
         the QUIC handshake and the invite redemption; the Member record then reaches the other \
         nodes by push.\n\n\
         Command: `cargo build --release --workspace --bins && target/release/hearth-testnet bench join --nodes {nodes} --runs {runs}`\n",
        nodes + runs - 1,
        j.p50,
        j.p90,
        j.max,
        s.p50,
        s.p90,
        s.max,
        ms(listed.first()),
        nodes + runs - 1,
        ms(listed.last()),
    );
    write_section(out, "join", &body)?;
    println!(
        "p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms; wrote {}",
        s.p50,
        s.p90,
        s.max,
        out.display()
    );
    Ok(())
}

/// Hosts of the formation benchmark: one of each kind a user has.
const FORMATION_HOSTS: [(&str, HostKind); 5] = [
    ("vps", HostKind::Public),
    ("home1", HostKind::Home),
    ("home2", HostKind::Home),
    ("cgnat", HostKind::Cgnat),
    ("udpb", HostKind::UdpBlocked),
];

/// Waits until every node lists all five and every home node and the VPS see each other.
async fn formed(mesh: &LabMesh) -> Result<()> {
    mesh.all_list(&mesh.ids()?).await?;
    for (name, _) in &FORMATION_HOSTS[1..] {
        mesh.connected("vps", name).await?;
        mesh.connected(name, "vps").await?;
    }
    Ok(())
}

/// Time for a five-node lab mesh (public, two homes, CGNAT, UDP-blocked) to form: fresh, by
/// invites, and from a cold start of all its nodes at once.
pub async fn lab_formation(runs: usize, out: &Path) -> Result<()> {
    crate::lab::available()?;
    let bins = Binaries::locate()?;
    let (mut fresh, mut cold) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let mut builder = Lab::builder();
        for (name, kind) in FORMATION_HOSTS {
            builder = builder.host(name, kind);
        }
        let lab = builder.build()?;
        let started = Instant::now();
        let mut mesh = LabMesh::start(lab, &bins).await?;
        formed(&mesh).await?;
        fresh.push(started.elapsed());

        for node in &mut mesh.nodes {
            node.kill().await;
        }
        let started = Instant::now();
        for node in &mut mesh.nodes {
            node.run().await?;
        }
        formed(&mesh).await?;
        cold.push(started.elapsed());
        println!(
            "run {run}: fresh {:.0} ms, cold start {:.0} ms",
            ms(fresh.last()),
            ms(cold.last())
        );
    }
    let (f, c) = (stats(&fresh), stats(&cold));
    let min = |v: &[Duration]| ms(v.iter().min());
    let body = format!(
        "## Five-node lab mesh formation\n\n\
         A namespace lab with one public VPS, two homes behind NAT, one home behind carrier-grade \
         NAT and one UDP-blocked home. *Fresh*: from the founder's `hearthd init` and `hearthd run` \
         through four invites, `hearthd join`s and `hearthd run`s (one after another) until every \
         node lists five members and every home node and the VPS show each other as connected. \
         *Cold start*: the same mesh with every `hearthd` killed, then all started again, until \
         the same condition holds. {runs} runs, each on a new lab. Nodes are started one after \
         another, each once the previous one answers on its admin socket, which a node does \
         only after its listen addresses have settled (25 ms of quiet), so that an invite never \
         carries a half-known address list.\n\n\
         | formation | median | min | max |\n|---|---|---|---|\n\
         | fresh, by invites | {:.0} ms | {:.0} ms | {:.0} ms |\n\
         | cold start of all five | {:.0} ms | {:.0} ms | {:.0} ms |\n\n\
         Command (root): `cargo build --release --workspace --bins && target/release/hearth-testnet bench lab-formation --runs {runs}`\n",
        f.p50,
        min(&fresh),
        f.max,
        c.p50,
        min(&cold),
        c.max,
    );
    write_section(out, "lab-formation", &body)?;
    println!(
        "fresh median {:.0} ms, cold start median {:.0} ms; wrote {}",
        f.p50,
        c.p50,
        out.display()
    );
    Ok(())
}

/// A lab of `nodes` hosts: one public VPS, then homes behind NAT, CGNAT and UDP blocking in
/// turn.
fn mixed_lab(nodes: usize) -> Result<(Lab, Vec<String>)> {
    let mut builder = Lab::builder().host("vps", HostKind::Public);
    let mut names = vec!["vps".to_string()];
    let kinds = [HostKind::Home, HostKind::Cgnat, HostKind::UdpBlocked];
    for i in 1..nodes {
        let name = format!("n{i}");
        builder = builder.host(&name, kinds[(i - 1) % kinds.len()]);
        names.push(name);
    }
    Ok((builder.build()?, names))
}

/// Waits until every node lists every host in `hosts`.
async fn all_route(
    mesh: &LabMesh,
    hosts: &[String],
) -> Result<Vec<Vec<hearth_proto::api::RouteRowV1>>> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut tables = Vec::new();
        for node in &mesh.nodes {
            tables.push(node.routes().await?);
        }
        let complete = tables.iter().all(|rows| {
            hosts
                .iter()
                .all(|h| rows.iter().any(|r| r.spec.to_string() == *h))
        });
        if complete {
            return Ok(tables);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "routes not everywhere after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Time from `hearthctl publish` on a home node until the route is stored on every node, for
/// `count` publishes in a lab of `nodes` nodes. Each node notes when it stored a record
/// (`stored_ms` in `hearthctl routes`), so nothing polls the nodes while they replicate.
async fn publish_latency_once(nodes: usize, count: usize) -> Result<Vec<Duration>> {
    let bins = Binaries::locate()?;
    let (lab, names) = mixed_lab(nodes)?;
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mesh = LabMesh::start_on(lab, &bins, &names).await?;
    mesh.all_list(&mesh.ids()?).await?;
    time_publishes(&mesh, "n1", "r", count).await
}

/// Publishes `count` routes (`{prefix}{i}.example.com`) on `publisher` 20 ms apart, after a
/// warm-up route, and returns for each the time until the last node stored it.
pub(crate) async fn time_publishes(
    mesh: &LabMesh,
    publisher: &str,
    prefix: &str,
    count: usize,
) -> Result<Vec<Duration>> {
    let publisher = mesh.node(publisher)?;
    // Warm up: the first route also proves every node is reached.
    let warmup = format!("{prefix}-warmup.example.com");
    publisher.publish(&warmup, "127.0.0.1:80", None).await?;
    all_route(mesh, &[warmup]).await?;

    let mut started = Vec::new();
    let mut hosts = Vec::new();
    for i in 0..count {
        let host = format!("{prefix}{i}.example.com");
        started.push(crate::clock_ms());
        publisher.publish(&host, "127.0.0.1:80", None).await?;
        hosts.push(host);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Each look runs `hearthctl routes` on every node, which loads the machine the mesh is
    // still replicating on; the latencies come from the nodes' own `stored_ms`, so looking
    // later changes nothing but that load.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let tables = all_route(mesh, &hosts).await?;
    if std::env::var_os("HEARTH_BENCH_DEBUG").is_some() {
        if let Some(first) = mesh.nodes.first() {
            let status = first.status().await?;
            eprintln!(
                "{}: {} peers connected",
                first.name,
                status.peers_connected.len(),
            );
        }
    }
    let mut latencies = Vec::new();
    for (host, t0) in hosts.iter().zip(started) {
        let last = tables
            .iter()
            .filter_map(|rows| rows.iter().find(|r| r.spec.to_string() == *host))
            .map(|r| r.stored_ms)
            .max()
            .unwrap_or(t0);
        latencies.push(Duration::from_millis(last.saturating_sub(t0)));
        if std::env::var_os("HEARTH_BENCH_DEBUG").is_some() {
            let per: Vec<String> = mesh
                .nodes
                .iter()
                .zip(&tables)
                .map(|(n, rows)| {
                    let at = rows
                        .iter()
                        .find(|r| r.spec.to_string() == *host)
                        .map(|r| r.stored_ms.saturating_sub(t0))
                        .unwrap_or(0);
                    format!("{}={at}", n.name)
                })
                .collect();
            eprintln!("{host}: {}", per.join(" "));
        }
    }
    Ok(latencies)
}

/// Publish-to-everywhere latency with 5 and 20 nodes; writes its section.
pub async fn publish_latency(sizes: &[usize], count: usize, out: &Path) -> Result<()> {
    crate::lab::available()?;
    let mut rows = String::new();
    let mut verdict = String::new();
    for &nodes in sizes {
        let latencies = publish_latency_once(nodes, count).await?;
        let mut ms: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(|a, b| a.total_cmp(b));
        let p = |q: f64| ms[((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
        let (p50, p99, max) = (p(0.5), p(0.99), ms[ms.len() - 1]);
        println!("{nodes} nodes: p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms");
        rows.push_str(&format!(
            "| {nodes} | {count} | {p50:.0} ms | {p99:.0} ms | {max:.0} ms |\n"
        ));
        if nodes >= 20 {
            verdict = if p99 <= 300.0 {
                format!("Goal (p99 at most 300 ms with 20 nodes): met, {p99:.0} ms.")
            } else {
                format!("Goal (p99 at most 300 ms with 20 nodes): **missed**, {p99:.0} ms.")
            };
        }
    }
    let sizes_arg = sizes_arg(sizes);
    let body = format!(
        "## Route publish latency\n\n\
         Time from `publish` on a home node (behind NAT, so every record goes through the VPS) \
         until every node of a namespace lab has stored the route: one public VPS, the other \
         nodes alternately behind home NAT, CGNAT and UDP blocking. {count} publishes 20 ms \
         apart after a warm-up route; each node notes when it stored each record, so the nodes \
         are not polled while they replicate.\n\n\
         | nodes | publishes | p50 | p99 | max |\n|---|---|---|---|---|\n{rows}\n{verdict}\n\n\
         Command (root): `cargo build --release --workspace --bins && target/release/hearth-testnet bench publish --nodes {sizes_arg} --count {count}`\n"
    );
    write_section(out, "publish", &body)?;
    println!("wrote {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_replaced_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.md");
        write_section(&path, "a", "first").unwrap();
        write_section(&path, "b", "other").unwrap();
        write_section(&path, "a", "second").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("second") && !text.contains("first") && text.contains("other"));
        assert!(text.find("second").unwrap() < text.find("other").unwrap());
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        let s = stats(&samples);
        assert_eq!((s.p50, s.p90, s.max), (5.0, 9.0, 10.0));
    }
}
