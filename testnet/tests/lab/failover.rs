//! Failover between edges: a visitor's steady load goes through both public edges to a
//! service at home; one edge is killed with -9. The service answers through the other within
//! 3 s, every node drops the dead edge from its set, and the edges' own DNS stops listing it.

use anyhow::{ensure, Result};
use hearth_testnet::eventually::eventually;
use hearth_testnet::lab::{labs_can_run, HostKind, Lab, LabMesh, LAB_CONVERGE};
use hearth_testnet::procs::Binaries;
use std::collections::BTreeSet;

/// The zone the edges answer for, and the published host inside it.
const ZONE: &str = "hearth.test";
const SITE: &str = "app.hearth.test";
const BACKEND: &str = "127.0.0.1:8080";
/// The bound on the failover gap.
const FAILOVER_MS: u64 = 3_000;

#[tokio::test]
async fn killing_an_edge_under_load_fails_over_to_the_other() -> Result<()> {
    if !labs_can_run("lab edge failover") {
        return Ok(());
    }
    let bins = Binaries::locate()?;
    let lab = Lab::builder()
        .host("pub1", HostKind::Public)
        .host("pub2", HostKind::Public)
        .host("home", HostKind::Home)
        .host("client", HostKind::Client)
        .build()?;
    let mut mesh = LabMesh::start_with(
        lab,
        &bins,
        &["pub1", "pub2", "home"],
        &[("HEARTH_DNS_ZONE", ZONE)],
    )
    .await?;
    let home = mesh.lab.host("home")?.clone();
    let _backend = home
        .serve(
            &bins.testnet,
            &["probe", "http-backend", BACKEND, "--name", "home"],
        )
        .await?;
    let dir = tempfile::tempdir()?;
    let result = async {
        mesh.node("home")?.publish(SITE, BACKEND, None).await?;
        mesh.edges_everywhere(&["pub1", "pub2"]).await?;
        let home_id = mesh.node("home")?.status().await?.node;
        let (pub1, pub2, client) = (
            mesh.lab.host("pub1")?.clone(),
            mesh.lab.host("pub2")?.clone(),
            mesh.lab.host("client")?.clone(),
        );
        let both: BTreeSet<String> = [pub1.addr, pub2.addr]
            .iter()
            .map(|a| a.to_string())
            .collect();
        for edge in [&pub1, &pub2] {
            let node = mesh.node(&edge.name)?;
            eventually(
                &format!("{} serves {SITE}", edge.name),
                LAB_CONVERGE,
                || async {
                    let plane = node.status().await?.data_plane;
                    ensure!(
                        plane.http_listen.is_some() && plane.dns_listen.is_some(),
                        "{plane:?}"
                    );
                    ensure!(
                        plane.tunnels.contains(&home_id),
                        "no tunnel from home: {plane:?}"
                    );
                    ensure!(
                        node.routes()
                            .await?
                            .iter()
                            .any(|r| r.spec.to_string() == SITE),
                        "route not stored"
                    );
                    Ok(())
                },
            )
            .await?;
            eventually(
                &format!("{}'s DNS lists both edges", edge.name),
                LAB_CONVERGE,
                || async {
                    let seen = client.dns_a(&bins.testnet, edge.addr, SITE).await?;
                    ensure!(seen == both, "A {SITE} = {seen:?}");
                    Ok(())
                },
            )
            .await?;
        }

        // Steady load through both edges; once both have answered, pub1 dies.
        let load =
            client.failover_load(&bins.testnet, &[pub1.addr, pub2.addr], SITE, dir.path())?;
        eventually(
            "the load flows through both edges",
            LAB_CONVERGE,
            || async {
                ensure!(load.flowing(), "not yet");
                Ok(())
            },
        )
        .await?;
        mesh.node_mut("pub1")?.kill().await;

        // Every node still running drops pub1 from its set; pub2's DNS stops listing it.
        mesh.edges_everywhere(&["pub2"]).await?;
        let only_pub2: BTreeSet<String> = [pub2.addr.to_string()].into();
        for name in [SITE, &format!("edges.{ZONE}")] {
            eventually(
                &format!("pub2's DNS drops pub1 from {name}"),
                LAB_CONVERGE,
                || async {
                    let seen = client.dns_a(&bins.testnet, pub2.addr, name).await?;
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
    mesh.explain(result)
}
