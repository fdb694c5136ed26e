//! `bench scale`: what a mesh costs as it grows, in namespace labs of several sizes on one
//! machine: formation time, publish-to-every-node latency, and per node at idle the control
//! traffic, CPU, disk writes, memory and connections.

use crate::bench::{stats, write_section};
use crate::lab::{scale_lab, LabMesh};
use crate::procs::{Binaries, ProcCounters, ProcNode};
use anyhow::Result;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long the idle mesh is watched.
const IDLE_WINDOW: Duration = Duration::from_secs(30);
/// Publishes timed per size.
const PUBLISHES: usize = 50;

/// One burst of publishes: latency to every node, and what it cost the mesh.
#[derive(Debug)]
struct Burst {
    p50: f64,
    p99: f64,
    /// CPU time of every node together from the first publish until every node stored the
    /// last route, in clock ticks.
    cpu_ticks: u64,
    /// How long that took.
    window: Duration,
}

impl Burst {
    /// The burst's CPU per route in ms, less what the mesh spends at idle in as long.
    fn cpu_ms_per_route(&self, idle_cpu_percent_total: f64) -> f64 {
        let busy_ms = self.cpu_ticks as f64 * 1000.0 / clock_ticks_per_second();
        let idle_ms = idle_cpu_percent_total / 100.0 * self.window.as_secs_f64() * 1000.0;
        (busy_ms - idle_ms).max(0.0) / (PUBLISHES + 1) as f64
    }
}

/// What one size measured.
#[derive(Debug)]
struct SizeResult {
    nodes: usize,
    formation: Duration,
    /// Published right after formation, while the mesh still settles (hole punching,
    /// reachability, relay reservations).
    forming: Burst,
    /// Published once the mesh has settled, as a user publishes on a running mesh.
    settled: Burst,
    traffic: (f64, f64),
    cpu: (f64, f64),
    disk: (f64, f64),
    rss: (f64, f64),
    connections: (f64, usize),
    /// Store flushes and watermark writes during the idle window, all nodes together.
    store_flushes: u64,
    /// Why formation had not settled when the window began, if it had not.
    unsettled: Option<String>,
}

/// Mean and maximum.
fn mean_max(values: &[f64]) -> (f64, f64) {
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    let max = values.iter().copied().fold(0.0, f64::max);
    (mean, max)
}

async fn measure(nodes: usize, bins: &Binaries) -> Result<SizeResult> {
    // One public host per twenty nodes, at least one.
    let (lab, names) = scale_lab(nodes, (nodes / 20).max(1))?;
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let started = Instant::now();
    let mesh = LabMesh::start_on(lab, bins, &names).await?;
    mesh.all_list(&mesh.ids()?).await?;
    let formation = started.elapsed();
    println!("{nodes} nodes: formed in {} ms", formation.as_millis());

    let publisher = names[names.len() - 1];
    let forming = burst(&mesh, publisher, "r").await?;
    println!("{nodes} nodes, forming: {forming:?}");

    // Settled: formation is over (reach verdicts, relay reservations, the last watermark).
    let settle = |what: &'static str| {
        let mesh = &mesh;
        async move {
            mesh.settled().await.err().map(|e| {
                let text = format!("{what}: {e}");
                println!("{nodes} nodes: did not settle: {text}");
                text
            })
        }
    };
    let mut unsettled = settle("after formation").await;
    let settled = burst(&mesh, publisher, "s").await?;
    println!("{nodes} nodes, settled: {settled:?}");

    // Idle: nothing is published or asked for while the window runs.
    if let Some(why) = settle("after the publishes").await {
        unsettled.get_or_insert(why);
    }
    let flushes_before = store_writes(&mesh).await?;
    let before: Vec<ProcCounters> = mesh
        .nodes
        .iter()
        .map(ProcNode::counters)
        .collect::<Result<_>>()?;
    // Where the CPU goes, thread by thread, on the first node (a public one) and the last.
    let watched = [mesh.nodes.first(), mesh.nodes.last()];
    let threads_before: Vec<_> = watched
        .iter()
        .flatten()
        .map(|n| n.thread_ticks().unwrap_or_default())
        .collect();
    println!(
        "{nodes} nodes: idle window from {} ms (Unix)",
        crate::clock_ms()
    );
    tokio::time::sleep(IDLE_WINDOW).await;
    for (node, before) in watched.iter().flatten().zip(&threads_before) {
        let after = node.thread_ticks().unwrap_or_default();
        let used: Vec<String> = after
            .iter()
            .map(|(name, t)| {
                (
                    name,
                    t.saturating_sub(before.get(name).copied().unwrap_or(0)),
                )
            })
            .filter(|(_, t)| *t > 0)
            .map(|(name, t)| format!("{name} {t}"))
            .collect();
        println!(
            "  {} threads, ticks in the idle window: {}",
            node.name,
            used.join(", ")
        );
    }
    let after: Vec<ProcCounters> = mesh
        .nodes
        .iter()
        .map(ProcNode::counters)
        .collect::<Result<_>>()?;
    let store_flushes = store_writes(&mesh).await? - flushes_before;
    let ticks = clock_ticks_per_second();
    let secs = IDLE_WINDOW.as_secs_f64();
    let per_node = |f: &dyn Fn(&ProcCounters, &ProcCounters) -> f64| -> Vec<f64> {
        before.iter().zip(&after).map(|(b, a)| f(b, a)).collect()
    };
    let traffic = per_node(&|b, a| a.net_bytes.saturating_sub(b.net_bytes) as f64 / secs);
    let cpu =
        per_node(&|b, a| a.cpu_ticks.saturating_sub(b.cpu_ticks) as f64 / ticks / secs * 100.0);
    let disk = per_node(&|b, a| a.disk_bytes.saturating_sub(b.disk_bytes) as f64 / secs);
    let rss = per_node(&|_, a| a.rss_bytes as f64 / 1e6);
    let mut connections = Vec::new();
    for node in &mesh.nodes {
        connections.push(node.status().await?.peers_connected.len());
    }
    for ((((node, a), traffic), cpu), links) in mesh
        .nodes
        .iter()
        .zip(&after)
        .zip(&traffic)
        .zip(&cpu)
        .zip(&connections)
    {
        println!(
            "  {}: {traffic:.0} B/s, {cpu:.2} % CPU, RSS {:.1} MB ({:.1} MB anonymous), {links} connections",
            node.name,
            a.rss_bytes as f64 / 1e6,
            a.rss_anon_bytes as f64 / 1e6,
        );
    }
    let conn_mean = connections.iter().sum::<usize>() as f64 / connections.len().max(1) as f64;
    let result = SizeResult {
        nodes,
        formation,
        forming,
        settled,
        traffic: mean_max(&traffic),
        cpu: mean_max(&cpu),
        disk: mean_max(&disk),
        rss: mean_max(&rss),
        connections: (conn_mean, connections.iter().copied().max().unwrap_or(0)),
        store_flushes,
        unsettled,
    };
    println!("{result:?}");
    Ok(result)
}

/// Publishes [`PUBLISHES`] routes and times them, with the CPU the mesh spent meanwhile.
async fn burst(mesh: &LabMesh, publisher: &str, prefix: &str) -> Result<Burst> {
    println!("publishing {PUBLISHES} routes {prefix}0.example.com and on");
    let started = Instant::now();
    let cpu_before = mesh_cpu_ticks(mesh)?;
    let latencies = crate::bench::time_publishes(mesh, publisher, prefix, PUBLISHES).await?;
    let cpu_ticks = mesh_cpu_ticks(mesh)?.saturating_sub(cpu_before);
    let publish = stats(&latencies);
    Ok(Burst {
        p50: publish.p50,
        p99: publish.p99,
        cpu_ticks,
        window: started.elapsed(),
    })
}

/// CPU time of every node together, in clock ticks.
fn mesh_cpu_ticks(mesh: &LabMesh) -> Result<u64> {
    let mut total = 0;
    for node in &mesh.nodes {
        total += node.counters()?.cpu_ticks;
    }
    Ok(total)
}

/// Store flushes and watermark writes of every node together (`hearthctl status`).
async fn store_writes(mesh: &LabMesh) -> Result<u64> {
    let mut total = 0;
    for node in &mesh.nodes {
        total += node.status().await?.store_writes;
    }
    Ok(total)
}

/// `CLK_TCK`, the unit of /proc's CPU times (100 on Linux unless told otherwise).
fn clock_ticks_per_second() -> f64 {
    crate::lab::cmd::run("getconf", &["CLK_TCK"])
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Runs every size and writes the `scale` section.
pub async fn scale(sizes: &[usize], out: &Path) -> Result<()> {
    crate::lab::available()?;
    let bins = Binaries::locate()?;
    let mut results = Vec::new();
    for &nodes in sizes {
        results.push(measure(nodes, &bins).await?);
    }
    let mut rows = String::new();
    for r in &results {
        // Every node's idle CPU together, to take out of the bursts' CPU.
        let idle_total = r.cpu.0 * r.nodes as f64;
        rows.push_str(&format!(
            "| {} | {:.1} s | {:.0} ms | {:.0} ms | {:.1} ms | {:.0} ms / {:.0} ms, {:.1} ms | {:.0} B/s ({:.0}) | {:.2} % ({:.2}) | {:.0} B/s ({:.0}), {} store writes | {:.1} MB ({:.1}) | {:.1} ({}) |\n",
            r.nodes,
            r.formation.as_secs_f64(),
            r.settled.p50,
            r.settled.p99,
            r.settled.cpu_ms_per_route(idle_total),
            r.forming.p50,
            r.forming.p99,
            r.forming.cpu_ms_per_route(idle_total),
            r.traffic.0,
            r.traffic.1,
            r.cpu.0,
            r.cpu.1,
            r.disk.0,
            r.disk.1,
            r.store_flushes,
            r.rss.0,
            r.rss.1,
            r.connections.0,
            r.connections.1,
        ));
    }
    let notes: String = results
        .iter()
        .filter_map(|r| {
            r.unsettled.as_ref().map(|why| {
                format!(
                    "\n**{} nodes did not settle** before the idle window (measured anyway, so its idle figures include formation): {}\n",
                    r.nodes,
                    why.lines().next().unwrap_or_default()
                )
            })
        })
        .collect();
    let largest = results.iter().max_by_key(|r| r.nodes);
    let verdict = largest
        .map(|r| {
            let goal = |name: &str, ok: bool, value: String| {
                format!("{name}: {}, {value}", if ok { "met" } else { "**missed**" })
            };
            [
                goal(
                    "publish-to-all p99 at most 1 s",
                    r.settled.p99 <= 1000.0,
                    format!(
                        "{:.0} ms on the settled mesh ({:.0} ms while it formed)",
                        r.settled.p99, r.forming.p99
                    ),
                ),
                goal(
                    "idle traffic at most 2 KB/s per node",
                    r.traffic.0 <= 2000.0,
                    format!("{:.0} B/s", r.traffic.0),
                ),
                goal(
                    "idle disk writes 0 B/s",
                    r.disk.1 == 0.0,
                    format!("{:.0} B/s at most", r.disk.1),
                ),
                goal(
                    "idle CPU at most 0.3 % of a core per node",
                    r.cpu.0 <= 0.3,
                    format!("{:.2} %", r.cpu.0),
                ),
                goal(
                    "RSS at most 25 MB per node",
                    r.rss.0 <= 25.0,
                    format!("{:.1} MB", r.rss.0),
                ),
            ]
            .join("; ")
        })
        .unwrap_or_default();
    let sizes_arg = crate::bench::sizes_arg(sizes);
    let body = format!(
        "## Mesh size: formation, publish latency and idle cost\n\n\
         Namespace labs on this 2-core machine, one `hearthd` per host: one public host per \
         twenty nodes (at least one), the rest alternately behind home NAT and carrier-grade \
         NAT. *Formation*: from the founder's start through one invite and join after another \
         until every node lists every member. *Publish*: {PUBLISHES} routes published 20 ms apart on a \
         CGNAT node, time until every node stored each (each node notes when), once the mesh \
         has *settled* (every node holds every member alive and knows its reachability, then \
         no store write for 12 s) and, in the *while forming* column, right after formation, \
         while hole punching, reachability tests and relay reservations still load the \
         machine; *CPU per route*: the CPU time of all nodes together from the first publish \
         until every node stored the last, less what the mesh spends at idle in as long, \
         divided by the routes (a warm-up route included). Then the mesh settles again, is \
         left idle for {idle} s, and each `hearthd` is read from /proc: bytes on its \
         namespace's interfaces (control plane and tunnel keep-alives), CPU time, bytes \
         written to disk (its log included) and the store's own count of flushes, resident \
         memory; *connections* are the members \
         it has a control connection to. Per node: mean (max).\n\n\
         | nodes | formation | publish p50 | publish p99 | CPU per route | while forming: p50 / p99, CPU per route | idle traffic | idle CPU | idle disk writes | RSS | connections |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n{rows}{notes}\n\
         Goals at the largest size: {verdict}.\n\n\
         Command (root): `cargo build --release --workspace --bins && target/release/hearth-testnet bench scale --nodes {sizes_arg}`\n",
        idle = IDLE_WINDOW.as_secs(),
    );
    write_section(out, "scale", &body)?;
    println!("wrote {}", out.display());
    Ok(())
}
