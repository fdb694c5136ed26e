//! `hearth-testnet bench failover`: how long a service is unreachable when an edge dies under
//! load, how long until the mesh and its DNS forget the dead edge, and how long a newly joined
//! public node takes to be elected. One namespace lab, real `hearthd` processes.

use crate::bench::{ms_cell as ms, stats, stats_row as row, write_section};
use crate::lab::{EdgeSite, LabMesh, LAB_CONVERGE, SITE, SITE_ZONE as ZONE};
use crate::procs::Binaries;
use anyhow::{bail, Result};
use hearth_proto::api::{CommandV1, ResponseV1};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often the timed conditions are polled.
const POLL: Duration = Duration::from_millis(20);

/// What one kill measured.
#[derive(Debug)]
struct Kill {
    gap: Duration,
    dropped: Duration,
    dns: Duration,
    retried: u64,
    failed: u64,
}

/// Runs `kills` kill -9s (alternating between the two edges) and `joins` joins of a new
/// public node, and writes the `failover` section of `out`.
pub async fn run(kills: usize, joins: usize, out: &Path) -> Result<()> {
    crate::lab::available()?;
    let bins = Binaries::locate()?;
    let late: Vec<String> = (1..=joins).map(|i| format!("late{i}")).collect();
    let mut site = EdgeSite::start(&bins, &late).await?;
    let dir = tempfile::tempdir()?;

    let mut results = Vec::new();
    for k in 0..kills {
        let victim = if k % 2 == 0 { "pub1" } else { "pub2" };
        let attempt = kill_once(&mut site, &bins, victim, k, dir.path()).await;
        let kill = site.mesh.explain(attempt)?;
        println!(
            "kill {k} ({victim}): gap {} ms, dropped everywhere after {} ms, DNS after {} ms, {} retried, {} failed",
            kill.gap.as_millis(),
            kill.dropped.as_millis(),
            kill.dns.as_millis(),
            kill.retried,
            kill.failed
        );
        results.push(kill);
    }

    let mut elected_after_join = Vec::new();
    let mut elected_after_run = Vec::new();
    for name in &late {
        let attempt = join_once(&mut site.mesh, name).await;
        let (from_join, from_run) = site.mesh.explain(attempt)?;
        println!(
            "{name}: elected {} ms after `hearthd join`, {} ms after `hearthd run` answered",
            from_join.as_millis(),
            from_run.as_millis()
        );
        elected_after_join.push(from_join);
        elected_after_run.push(from_run);
    }

    let body = report(
        kills,
        joins,
        &results,
        &elected_after_join,
        &elected_after_run,
    );
    write_section(out, "failover", &body)?;
    println!("wrote {}", out.display());
    Ok(())
}

/// One kill -9 of `victim` under load, then its restart.
async fn kill_once(
    site: &mut EdgeSite,
    bins: &Binaries,
    victim: &str,
    k: usize,
    dir: &Path,
) -> Result<Kill> {
    let load = site.load_through_both(dir).await?;
    let client = site.mesh.lab.host("client")?.clone();
    let survivor = if victim == "pub1" { "pub2" } else { "pub1" };
    let survivor_addr = site.mesh.lab.host(survivor)?.addr;
    // Kills land at different points of the failure detector's probe period.
    tokio::time::sleep(Duration::from_millis(300 + (k as u64 * 137) % 1000)).await;
    let killed = Instant::now();
    site.mesh.node_mut(victim)?.kill().await;

    let deadline = killed + LAB_CONVERGE;
    let (mut dropped, mut dns) = (None, None);
    let only: BTreeSet<String> = [survivor_addr.to_string()].into();
    while dropped.is_none() || dns.is_none() {
        if Instant::now() > deadline {
            bail!(
                "{victim} still an edge or in DNS {:?} after the kill",
                LAB_CONVERGE
            );
        }
        if dropped.is_none() && all_elect(&site.mesh, &[survivor]).await? {
            dropped = Some(killed.elapsed());
        }
        if dns.is_none() && client.dns_a(&bins.testnet, survivor_addr, SITE).await? == only {
            dns = Some(killed.elapsed());
        }
        tokio::time::sleep(POLL).await;
    }
    let report = load.finish().await?;
    site.mesh.node_mut(victim)?.run().await?;
    Ok(Kill {
        gap: Duration::from_millis(report.max_gap_ms),
        dropped: dropped.unwrap_or_default(),
        dns: dns.unwrap_or_default(),
        retried: report.retried,
        failed: report.failed,
    })
}

/// Whether every running node elects exactly `expected`.
async fn all_elect(mesh: &LabMesh, expected: &[&str]) -> Result<bool> {
    let want: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    for node in mesh.nodes.iter().filter(|n| n.is_running()) {
        if mesh.edge_names(&node.name).await? != want {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Joins public host `name`, times its election everywhere, then revokes it so the next join
/// finds the same room under `edges.max`.
async fn join_once(mesh: &mut LabMesh, name: &str) -> Result<(Duration, Duration)> {
    mesh.edges_everywhere(&["pub1", "pub2"]).await?;
    let joining = Instant::now();
    mesh.add(name).await?;
    let running = Instant::now();
    let deadline = running + LAB_CONVERGE;
    while !all_elect(mesh, &["pub1", "pub2", name]).await? {
        if Instant::now() > deadline {
            bail!("{name} not elected everywhere within {:?}", LAB_CONVERGE);
        }
        tokio::time::sleep(POLL).await;
    }
    let times = (joining.elapsed(), running.elapsed());
    match mesh
        .node("pub1")?
        .call(CommandV1::Revoke { node: name.into() })
        .await?
    {
        ResponseV1::Revoked { .. } => {}
        other => bail!("revoking {name}: {other:?}"),
    }
    mesh.node_mut(name)?.kill().await;
    Ok(times)
}

fn report(
    kills: usize,
    joins: usize,
    results: &[Kill],
    after_join: &[Duration],
    after_run: &[Duration],
) -> String {
    let pick = |f: fn(&Kill) -> Duration| results.iter().map(f).collect::<Vec<_>>();
    let gap = stats(&pick(|k| k.gap));
    let dropped = stats(&pick(|k| k.dropped));
    let dns = stats(&pick(|k| k.dns));
    let failed: u64 = results.iter().map(|k| k.failed).sum();
    let retried: u64 = results.iter().map(|k| k.retried).sum();
    let verdict = if gap.max <= 3000.0 {
        format!("met, max {}", ms(gap.max))
    } else {
        format!("**missed**, max {}", ms(gap.max))
    };
    format!(
        "## Edge failover and election\n\n\
         A namespace lab: two public hosts (`pub1`, `pub2`, both `edge = \"auto\"`, elected by \
         AutoNAT and the election), a home host behind NAT serving `{SITE}` through them, and a \
         client host. The edges answer DNS for `{ZONE}`. Defaults: the SWIM failure detector \
         probes one member a second and declares a silent one down after a 4 s lease; DNS TTL \
         10 s.\n\n\
         *Failover*: the client runs `probe failover-load`: 4 workers, each request on a new \
         connection to the next edge in turn, a failed attempt retried at once on the other edge \
         (what a browser does with two A records). Once both edges have answered, one edge's \
         `hearthd` is killed with `kill -9` (alternating between the two, at varying points of the \
         detector's probe period), then restarted and re-elected before the next kill. The *gap* is the \
         longest time between two successful responses through any edge during the run. \
         *Dropped* is the time from the kill until every surviving node's election no longer \
         lists the dead edge; *DNS* until the surviving edge's DNS answers `{SITE}` with its own \
         address only.\n\n\
         | {kills} kills | runs | median | p90 | max |\n|---|---|---|---|---|\n\
         {}{}{}\n\
         Requests that failed on both edges: {failed}; requests retried on the other edge after \
         an attempt on the dead one: {retried}. Goal (failover at most 3 s): {verdict}. A \
         killed process's host answers new connections with a reset at once, so the retry costs \
         one round trip. A host that vanishes instead (power, network) would cost each request \
         that tries it first the client's connect timeout (1 s in this probe) until DNS stops \
         listing it; that case is not measured here.\n\n\
         *Election of a newly joined public node*: a public host joins (`hearthd join`, then \
         `hearthd run`) a mesh that elects two edges with room for three, and is timed until every \
         node elects it (a member dials its QUIC port back, then the 2 s settling time); it is revoked before \
         the next one joins.\n\n\
         | {joins} joins | runs | median | p90 | max |\n|---|---|---|---|---|\n\
         {}{}\n\
         Command (root): `cargo build --release --workspace --bins && target/release/hearth-testnet bench failover --kills {kills} --joins {joins}`\n",
        row("failover gap (service unreachable)", gap, results.len()),
        row("dead edge dropped on every node", dropped, results.len()),
        row("dead edge gone from DNS", dns, results.len()),
        row("elected, from `hearthd join`", stats(after_join), after_join.len()),
        row("elected, from `hearthd run` answering", stats(after_run), after_run.len()),
    )
}
