//! The replicated route store across NAT: publish, partitions, restarts, forgeries.

use super::{five_host_lab, FIVE};
use anyhow::{ensure, Result};
use hearth_testnet::eventually::eventually;
use hearth_testnet::lab::{labs_can_run, LabMesh, LAB_CONVERGE};
use hearth_testnet::procs::Binaries;

/// Waits until every running node lists `host` on `node` with `target`.
async fn everyone_routes(mesh: &LabMesh, host: &str, node: &str, target: &str) -> Result<()> {
    for observer in mesh.nodes.iter().filter(|n| n.is_running()) {
        eventually(
            &format!("{} routes {host}", observer.name),
            LAB_CONVERGE,
            || async {
                let rows = observer.routes().await?;
                ensure!(
                    rows.iter().any(|r| r.spec.to_string() == host
                        && r.node_name == node
                        && r.target == target),
                    "routes: {:?}",
                    rows.iter()
                        .map(|r| format!("{} {} {}", r.spec, r.node_name, r.target))
                        .collect::<Vec<_>>()
                );
                Ok(())
            },
        )
        .await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_route_published_on_a_home_node_is_listed_on_every_node() -> Result<()> {
    if !labs_can_run("lab route replication") {
        return Ok(());
    }
    let mesh = LabMesh::start_on(five_host_lab()?, &Binaries::locate()?, &FIVE).await?;
    let result = async {
        mesh.all_list(&mesh.ids()?).await?;
        mesh.node("home1")?
            .publish("blog.example.com", "127.0.0.1:2368", None)
            .await?;
        mesh.node("cgnat")?
            .publish("git.example.com", "127.0.0.1:3000", None)
            .await?;
        everyone_routes(&mesh, "blog.example.com", "home1", "127.0.0.1:2368").await?;
        everyone_routes(&mesh, "git.example.com", "cgnat", "127.0.0.1:3000").await?;
        mesh.same_digest().await.map(|_| ())
    }
    .await;
    mesh.explain(result)
}

#[tokio::test]
async fn conflicting_writes_on_both_sides_of_a_partition_converge_to_one_digest() -> Result<()> {
    if !labs_can_run("lab partition conflict") {
        return Ok(());
    }
    let mesh = LabMesh::start_on(five_host_lab()?, &Binaries::locate()?, &FIVE).await?;
    let result = async {
        mesh.all_list(&mesh.ids()?).await?;
        let before = mesh.same_digest().await?;
        mesh.lab
            .partition(&["vps", "home1"], &["home2", "cgnat", "udpb"])?;
        // One key written on both sides: the admin sets home2's route for x, and home2 sets
        // its own route for x to something else. Plus unrelated writes on each side.
        mesh.node("vps")?
            .publish("x.example.com", "127.0.0.1:1111", Some("home2"))
            .await?;
        mesh.node("home2")?
            .publish("x.example.com", "127.0.0.1:2222", None)
            .await?;
        mesh.node("home1")?
            .publish("a.example.com", "127.0.0.1:80", None)
            .await?;
        mesh.node("cgnat")?
            .publish("b.example.com", "127.0.0.1:80", None)
            .await?;
        let side_a = mesh.node("vps")?.status().await?.digest;
        let side_b = mesh.node("cgnat")?.status().await?.digest;
        ensure!(
            side_a != side_b && side_a != before,
            "the partition did not separate the writes"
        );
        mesh.lab.heal()?;
        let after = mesh.same_digest().await?;
        ensure!(after != before);
        // Every node picked the same winner for x.
        let mut winners = Vec::new();
        for node in &mesh.nodes {
            let rows = node.routes().await?;
            let x: Vec<String> = rows
                .iter()
                .filter(|r| r.spec.to_string() == "x.example.com")
                .map(|r| r.target.clone())
                .collect();
            ensure!(x.len() == 1, "{}: {x:?}", node.name);
            winners.push(x[0].clone());
        }
        ensure!(winners.iter().all(|w| *w == winners[0]), "{winners:?}");
        Ok(())
    }
    .await;
    mesh.explain(result)
}

#[tokio::test]
async fn a_node_stopped_while_routes_change_catches_up_after_restart() -> Result<()> {
    if !labs_can_run("lab catch-up") {
        return Ok(());
    }
    let mut mesh = LabMesh::start_on(five_host_lab()?, &Binaries::locate()?, &FIVE).await?;
    let result = async {
        mesh.all_list(&mesh.ids()?).await?;
        mesh.node_mut("cgnat")?.kill().await;
        let home1 = mesh.node("home1")?;
        home1.publish("a.example.com", "127.0.0.1:80", None).await?;
        home1.publish("b.example.com", "127.0.0.1:81", None).await?;
        let withdraw = hearth_proto::api::CommandV1::Unpublish {
            spec: hearth_proto::route::RouteSpec::Http {
                host: "a.example.com".into(),
            },
            node: None,
        };
        home1.call(withdraw).await?;
        mesh.node_mut("cgnat")?.run().await?;
        mesh.same_digest().await?;
        let rows = mesh.node("cgnat")?.routes().await?;
        let hosts: Vec<String> = rows.iter().map(|r| r.spec.to_string()).collect();
        ensure!(hosts == ["b.example.com"], "cgnat routes {hosts:?}");
        Ok(())
    }
    .await;
    mesh.explain(result)
}

#[tokio::test]
async fn a_forged_record_from_a_member_is_rejected_everywhere() -> Result<()> {
    if !labs_can_run("lab forged record") {
        return Ok(());
    }
    let bins = Binaries::locate()?;
    let mesh = LabMesh::start_on(five_host_lab()?, &bins, &FIVE).await?;
    let result = async {
        mesh.all_list(&mesh.ids()?).await?;
        // The baseline is the converged state: right after joining, the last Member records
        // may still be on their way to some nodes.
        let before = mesh.same_digest().await?;
        let vps = mesh.node("vps")?.status().await?;
        let victim = mesh.node("home2")?.status().await?.node;
        let vps_host = mesh.lab.host("vps")?;
        // home1, a plain member with a valid key, signs a route hosted by home2.
        let out = mesh
            .lab
            .host("home1")?
            .run(
                &bins.testnet,
                &[
                    "probe",
                    "inject",
                    "--data-dir",
                    &mesh.node("home1")?.dir.display().to_string(),
                    "--mesh",
                    &vps.mesh.to_string(),
                    "--to",
                    &format!("/ip4/{}/udp/7700/quic-v1", vps_host.addr),
                    "--receiver",
                    &vps.node.to_string(),
                    "--host",
                    "forged.example.com",
                    "--victim",
                    &victim.to_string(),
                ],
            )
            .await?;
        ensure!(out.trim() == "stored=0 rejected=1", "injector: {out}");
        let refused = mesh.node("vps")?.status().await?.rejected_records;
        ensure!(
            refused
                .iter()
                .any(|(why, n)| why == "not_route_owner" && *n >= 1),
            "{refused:?}"
        );
        // Nobody stores it: every node agrees on a digest, and none lists the forged host.
        let digest = mesh.same_digest().await?;
        ensure!(digest == before, "the forged record changed some store");
        for node in &mesh.nodes {
            let rows = node.routes().await?;
            ensure!(
                rows.iter()
                    .all(|r| r.spec.to_string() != "forged.example.com"),
                "{} lists it",
                node.name
            );
        }
        Ok(())
    }
    .await;
    mesh.explain(result)
}

/// What a node has written so far: the store's own count of flushes and watermark writes,
/// and the bytes the process sent to disk (`/proc/PID/io`, its log file included).
async fn writes_of(node: &hearth_testnet::procs::ProcNode) -> Result<(u64, u64)> {
    let store = node.status().await?.store_writes;
    Ok((store, node.counters()?.disk_bytes))
}

/// Once formed, a five-node mesh behind every kind of NAT writes nothing for 30 s: liveness
/// lives in the failure detector, NodeInfo records change only with their content, and the
/// watermark is rewritten only when the store changed.
#[tokio::test]
async fn an_idle_mesh_writes_nothing_to_disk() -> Result<()> {
    if !labs_can_run("lab idle writes") {
        return Ok(());
    }
    let mesh = LabMesh::start_on(five_host_lab()?, &Binaries::locate()?, &FIVE).await?;
    let result = async {
        mesh.all_list(&mesh.ids()?).await?;
        mesh.edges_everywhere(&["vps"]).await?;
        mesh.same_digest().await?;
        mesh.settled().await?;
        let mut before = Vec::new();
        for node in &mesh.nodes {
            before.push(writes_of(node).await?);
        }
        // The measurement window itself, not a wait for something to happen.
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        let mut noisy = Vec::new();
        for (node, (store0, disk0)) in mesh.nodes.iter().zip(before) {
            let (store1, disk1) = writes_of(node).await?;
            if store1 != store0 || disk1 != disk0 {
                noisy.push(format!(
                    "{}: {} store writes, {} bytes to disk",
                    node.name,
                    store1 - store0,
                    disk1 - disk0
                ));
            }
        }
        ensure!(noisy.is_empty(), "an idle mesh wrote: {noisy:?}");
        Ok(())
    }
    .await;
    mesh.explain(result)
}
