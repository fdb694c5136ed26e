//! Failover between edges: a visitor's steady load goes through both public edges to a
//! service at home; one edge is killed with -9. The service answers through the other within
//! 3 s, every node drops the dead edge from its set, and the edges' own DNS stops listing it.

use anyhow::{ensure, Result};
use hearth_testnet::eventually::eventually;
use hearth_testnet::lab::{labs_can_run, EdgeSite, LAB_CONVERGE, SITE, SITE_ZONE};
use hearth_testnet::procs::Binaries;
use std::collections::BTreeSet;

/// The bound on the failover gap.
const FAILOVER_MS: u64 = 3_000;

#[tokio::test]
async fn killing_an_edge_under_load_fails_over_to_the_other() -> Result<()> {
    if !labs_can_run("lab edge failover") {
        return Ok(());
    }
    let bins = Binaries::locate()?;
    let mut site = EdgeSite::start(&bins, &[]).await?;
    let dir = tempfile::tempdir()?;
    let result = async {
        site.both_serving().await?;
        let [pub1, pub2] = site.edge_addrs()?;
        let client = site.mesh.lab.host("client")?.clone();

        // Steady load through both edges; once both have answered, pub1 dies.
        let load = client.failover_load(&bins.testnet, &[pub1, pub2], SITE, dir.path())?;
        eventually(
            "the load flows through both edges",
            LAB_CONVERGE,
            || async {
                ensure!(load.flowing(), "not yet");
                Ok(())
            },
        )
        .await?;
        site.mesh.node_mut("pub1")?.kill().await;

        // Every node still running drops pub1 from its set; pub2's DNS stops listing it.
        site.mesh.edges_everywhere(&["pub2"]).await?;
        let only_pub2: BTreeSet<String> = [pub2.to_string()].into();
        for name in [SITE, &format!("edges.{SITE_ZONE}")] {
            eventually(
                &format!("pub2's DNS drops pub1 from {name}"),
                LAB_CONVERGE,
                || async {
                    let seen = client.dns_a(&bins.testnet, pub2, name).await?;
                    ensure!(seen == only_pub2, "A {name} = {seen:?}");
                    Ok(())
                },
            )
            .await?;
        }

        let report = load.finish().await?;
        eprintln!("failover under load: {report}");
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
    .await;
    site.mesh.explain(result)
}
