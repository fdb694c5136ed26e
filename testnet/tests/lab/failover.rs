//! Failover between edges: a visitor's steady load goes through both public edges to a
//! service at home; one edge is killed with -9. The service answers through the other within
//! 3 s and no request fails on both, every node drops the dead edge from its set, and the
//! edges' own DNS stops listing it. Then the same with the other edge, after a restart.

use anyhow::{ensure, Result};
use hearth_testnet::eventually::eventually;
use hearth_testnet::lab::{labs_can_run, EdgeSite, LAB_CONVERGE, SITE, SITE_ZONE};
use hearth_testnet::procs::Binaries;
use std::collections::BTreeSet;

/// The bound on the failover gap.
const FAILOVER_MS: u64 = 3_000;

/// Kills `victim` with -9 under load through both edges, and checks the failover.
async fn kill_under_load(
    site: &mut EdgeSite,
    bins: &Binaries,
    dir: &std::path::Path,
    victim: &str,
    survivor: &str,
) -> Result<()> {
    // Steady load through both edges; once both have answered, the victim dies.
    let load = site.load_through_both(dir).await?;
    let client = site.mesh.lab.host("client")?.clone();
    let survivor_addr = site.mesh.lab.host(survivor)?.addr;
    site.mesh.node_mut(victim)?.kill().await;

    // Every node still running drops the victim from its set; the survivor's DNS stops
    // listing it.
    site.mesh.edges_everywhere(&[survivor]).await?;
    let only_survivor: BTreeSet<String> = [survivor_addr.to_string()].into();
    for name in [SITE, &format!("edges.{SITE_ZONE}")] {
        eventually(
            &format!("{survivor}'s DNS drops {victim} from {name}"),
            LAB_CONVERGE,
            || async {
                let seen = client.dns_a(&bins.testnet, survivor_addr, name).await?;
                ensure!(seen == only_survivor, "A {name} = {seen:?}");
                Ok(())
            },
        )
        .await?;
    }

    let report = load.finish().await?;
    eprintln!("{victim} killed under load: {report}");
    ensure!(
        report.failed == 0,
        "requests failed through both edges: {report}"
    );
    ensure!(
        report.retried > 0,
        "no request ever met the dead edge: {report}"
    );
    ensure!(
        report.max_gap_ms <= FAILOVER_MS,
        "the service was unreachable for {} ms (from {} to {} ms into the load)",
        report.max_gap_ms,
        report.gap_from_ms,
        report.gap_to_ms
    );
    Ok(())
}

#[tokio::test]
async fn killing_an_edge_under_load_fails_over_to_the_other() -> Result<()> {
    if !labs_can_run("lab edge failover") {
        return Ok(());
    }
    let bins = Binaries::locate()?;
    let mut site = EdgeSite::start(&bins, &[]).await?;
    let dir = tempfile::tempdir()?;
    let result = async {
        // pub1 dies; then, restarted and elected again, pub2 dies: the second kill finds the
        // mesh as a restart left it (a new process behind pub1's key, connections redialed).
        for (victim, survivor) in [("pub1", "pub2"), ("pub2", "pub1")] {
            kill_under_load(&mut site, &bins, dir.path(), victim, survivor).await?;
            site.mesh.node_mut(victim)?.run().await?;
        }
        Ok(())
    }
    .await;
    site.mesh.explain(result)
}
