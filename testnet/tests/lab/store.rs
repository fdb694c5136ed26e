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

/// One conflicting key of the 20-node partition test: the route for `host` on `hosting`,
/// written on side A by the admin and on side B by `hosting` itself, in the given order.
struct Conflict {
    host: &'static str,
    /// Target written by the admin (side A) and by the hosting node (side B).
    targets: (&'static str, &'static str),
    admin_first: bool,
}

/// The (HLC time, author, target) of the one live route for `host` on `node`, as `hearthctl
/// routes` shows it; an error if it lists none or several.
async fn the_route(
    node: &hearth_testnet::procs::ProcNode,
    host: &str,
) -> Result<(u64, hearth_proto::NodeId, String)> {
    let rows = node.routes().await?;
    let x: Vec<_> = rows.iter().filter(|r| r.spec.to_string() == host).collect();
    ensure!(
        x.len() == 1,
        "{} lists {} routes for {host}: {:?}",
        node.name,
        x.len(),
        x.iter()
            .map(|r| format!("{} by {} at {}", r.target, r.author.short(), r.updated_ms))
            .collect::<Vec<_>>()
    );
    Ok((x[0].updated_ms, x[0].author, x[0].target.clone()))
}

/// Twenty nodes split into two halves, each with a public node (an edge) and nine homes
/// behind NAT; the split lasts until every node's failure detector holds the other half down
/// (well past the 4 s lease: 30 to 70 s at 20 nodes on this machine), as a real outage
/// would. Both
/// halves write the same two route keys (the admin on one side, the hosting node on the
/// other, in both orders) and unrelated routes. After healing every node has the same digest
/// and, for each key, the single route with the greater (HLC, author): the routes expose the
/// HLC's milliseconds and the author, not its counter, so the two writes of a key are made a
/// second apart and the test checks their times differ; the later write must win on both
/// keys, whichever side made it. The heal-to-identical time (issue 13 asks for 5 s) is
/// printed, not asserted: a shared 2-core machine makes a tight bound flaky. So is the time
/// until both edges are elected again everywhere (healing restarts the election).
#[tokio::test]
async fn twenty_nodes_partitioned_in_halves_converge_to_the_last_writer_after_healing() -> Result<()>
{
    if !labs_can_run("lab 20-node partition conflict") {
        return Ok(());
    }
    // Two public hosts: pub0 (the founder, the only admin) and pub1. CGNAT homes share their
    // carrier's internet address, so they all go to one side: pub0 and the nine home-NAT
    // hosts against pub1 and the nine CGNAT hosts.
    let (lab, names) = hearth_testnet::lab::scale_lab(20, 2)?;
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (side_a, side_b): (Vec<&str>, Vec<&str>) = names
        .iter()
        .partition(|n| **n == "pub0" || n.starts_with("home"));
    // Release binaries: twenty debug-built nodes keep this 2-core machine busy enough that
    // their failure detectors never hold every member alive at once.
    let mesh = LabMesh::start_on(lab, &Binaries::locate_release()?, &names).await?;
    let result = async {
        ensure!(side_a.len() == 10 && side_b.len() == 10, "{side_a:?} {side_b:?}");
        mesh.all_list(&mesh.ids()?).await?;
        let before = mesh.same_digest().await?;
        mesh.edges_everywhere(&["pub0", "pub1"]).await?;
        for name in &names {
            mesh.holds_alive(name, &names).await?;
        }
        mesh.lab.partition(&side_a, &side_b)?;
        eprintln!("partitioned at {} ms", hearth_testnet::clock_ms());
        let seen = mesh.declared_down_across(&side_a, &side_b).await?;
        eprintln!("the halves declared each other down: {seen}");

        let hosting = "cgnat3";
        let conflicts = [
            Conflict {
                host: "x.example.com",
                targets: ("127.0.0.1:1111", "127.0.0.1:2222"),
                admin_first: true,
            },
            Conflict {
                host: "y.example.com",
                targets: ("127.0.0.1:3333", "127.0.0.1:4444"),
                admin_first: false,
            },
        ];
        let (admin, member) = (mesh.node("pub0")?, mesh.node(hosting)?);
        for c in &conflicts {
            let admin_write = admin.publish(c.host, c.targets.0, Some(hosting));
            let member_write = member.publish(c.host, c.targets.1, None);
            if c.admin_first {
                admin_write.await?;
                // A clear gap in wall-clock time between the two writes of a key.
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                member_write.await?;
            } else {
                member_write.await?;
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                admin_write.await?;
            }
        }
        mesh.node("home2")?
            .publish("a.example.com", "127.0.0.1:80", None)
            .await?;
        mesh.node("cgnat5")?
            .publish("b.example.com", "127.0.0.1:80", None)
            .await?;

        // The partition separates the halves: each agrees within itself, not with the other.
        let digest_a = mesh.same_digest_among(&side_a).await?;
        let digest_b = mesh.same_digest_among(&side_b).await?;
        ensure!(
            digest_a != digest_b && digest_a != before && digest_b != before,
            "the partition did not separate the writes"
        );
        // The documented winner of each key: the greater (HLC, author) of the two sides'
        // versions, which must be the later write.
        let mut expected = Vec::new();
        for c in &conflicts {
            let on_a = the_route(mesh.node("pub0")?, c.host).await?;
            let on_b = the_route(mesh.node("pub1")?, c.host).await?;
            ensure!(
                on_a.0 != on_b.0,
                "{}: both writes at {} ms",
                c.host,
                on_a.0
            );
            let winner = if (on_a.0, on_a.1) > (on_b.0, on_b.1) {
                on_a
            } else {
                on_b
            };
            let later = if c.admin_first { c.targets.1 } else { c.targets.0 };
            ensure!(winner.2 == later, "{}: {winner:?} is not the later write", c.host);
            expected.push((c.host, winner));
        }

        mesh.lab.heal()?;
        let healed = std::time::Instant::now();
        let healed_ms = hearth_testnet::clock_ms();
        eprintln!("healed at {healed_ms} ms");
        let after = mesh.same_digest().await?;
        let polled = healed.elapsed();
        ensure!(after != before && after != digest_a && after != digest_b);
        // When each node stored the last record it lacked: the routes that differed are the
        // only records the halves did not share (the digest leaves NodeInfo out).
        let mut caught_up = Vec::new();
        for node in &mesh.nodes {
            let last = node.routes().await?.iter().map(|r| r.stored_ms).max();
            let after = last.unwrap_or_default().saturating_sub(healed_ms);
            caught_up.push((after, node.name.as_str()));
        }
        caught_up.sort();
        let slowest: Vec<String> = caught_up
            .iter()
            .rev()
            .take(3)
            .map(|(ms, name)| format!("{name} {ms} ms"))
            .collect();
        eprintln!(
            "heal to identical digests on all 20 nodes: {} ms by the nodes' own store times ({}, median {} ms), {} ms polled",
            caught_up.last().map_or(0, |c| c.0),
            slowest.join(", "),
            caught_up[caught_up.len() / 2].0,
            polled.as_millis()
        );
        for node in &mesh.nodes {
            for (host, winner) in &expected {
                let got = the_route(node, host).await?;
                ensure!(
                    got == *winner,
                    "{}: {host} is {got:?}, want {winner:?}",
                    node.name
                );
            }
        }
        // Both edges serve again: healing makes every member a new incarnation, which
        // restarts the election.
        mesh.edges_everywhere(&["pub0", "pub1"]).await?;
        eprintln!(
            "heal to both edges elected again on all 20 nodes: {} ms polled",
            healed.elapsed().as_millis()
        );
        Ok(())
    }
    .await;
    mesh.explain(result)
}
