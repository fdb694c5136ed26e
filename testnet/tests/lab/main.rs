//! Lab tests: real namespaces, NAT and processes. They need root, `ip` and `nft`; without them
//! they print why and skip, except under CI where they fail. Run only these with
//! `cargo test -p hearth-testnet --test lab`.
#![allow(clippy::unwrap_used)]

mod dataplane;
mod docker;
mod edges;
mod failover;
mod https;
mod passthrough;
mod store;

use anyhow::Result;
use hearth_testnet::lab::{labs_can_run, HostKind, Lab};
use hearth_testnet::procs::Binaries;

const PORT: &str = "8000";

fn at(addr: std::net::Ipv4Addr) -> String {
    format!("{addr}:{PORT}")
}

#[tokio::test]
async fn the_lab_has_the_reachability_of_the_real_internet() -> Result<()> {
    if !labs_can_run("lab reachability") {
        return Ok(());
    }
    let bins = Binaries::locate()?;
    let probe = bins.testnet.as_path();
    let lab = Lab::builder()
        .host("vps", HostKind::Public)
        .host("home", HostKind::Home)
        .host("c1", HostKind::Cgnat)
        .host("c2", HostKind::Cgnat)
        .host("udpb", HostKind::UdpBlocked)
        .host("client", HostKind::Client)
        .build()?;
    let (vps, home, client) = (lab.host("vps")?, lab.host("home")?, lab.host("client")?);
    let any = format!("0.0.0.0:{PORT}");

    // A home host cannot be reached from the client, at its router's address or its own.
    let server = home.serve(probe, &["probe", "tcp-serve", &any]).await?;
    for target in [home.wan_addr, home.addr] {
        let attempt = client
            .run(
                probe,
                &["probe", "tcp-connect", &at(target), "--timeout-ms", "1500"],
            )
            .await;
        assert!(attempt.is_err(), "client reached home at {target}");
    }
    server.stop().await;

    // ...but the home host reaches the public host, which sees the router's address.
    let mut server = vps
        .serve(probe, &["probe", "tcp-serve", &any, "--count", "3"])
        .await?;
    home.run(probe, &["probe", "tcp-connect", &at(vps.addr)])
        .await?;
    assert_eq!(server.next_line().await?, home.wan_addr.to_string());

    // Two cgnat homes appear to the public host with the same address.
    for name in ["c1", "c2"] {
        lab.host(name)?
            .run(probe, &["probe", "tcp-connect", &at(vps.addr)])
            .await?;
    }
    let (seen1, seen2) = (server.next_line().await?, server.next_line().await?);
    assert_eq!(seen1, seen2);
    assert_eq!(seen1, lab.host("c1")?.wan_addr.to_string());
    assert_ne!(seen1, home.wan_addr.to_string());
    server.stop().await;

    // The udp-blocked host gets no UDP out, though the echo works for a home host; TCP works.
    let echo = vps.serve(probe, &["probe", "udp-echo", &any]).await?;
    home.run(probe, &["probe", "udp-ask", &at(vps.addr)])
        .await?;
    let udpb = lab.host("udpb")?;
    let blocked = udpb
        .run(
            probe,
            &["probe", "udp-ask", &at(vps.addr), "--timeout-ms", "1500"],
        )
        .await;
    assert!(blocked.is_err(), "UDP got out of the udp-blocked host");
    echo.stop().await;
    let server = vps.serve(probe, &["probe", "tcp-serve", &any]).await?;
    udpb.run(probe, &["probe", "tcp-connect", &at(vps.addr)])
        .await?;
    server.stop().await;
    Ok(())
}

use hearth_testnet::lab::LabMesh;

/// The five kinds of hosts a user has: a VPS, two homes, one behind CGNAT, one UDP-blocked.
pub(crate) fn five_host_lab() -> Result<Lab> {
    Lab::builder()
        .host("vps", HostKind::Public)
        .host("home1", HostKind::Home)
        .host("home2", HostKind::Home)
        .host("cgnat", HostKind::Cgnat)
        .host("udpb", HostKind::UdpBlocked)
        .host("late", HostKind::Public)
        .build()
}

pub(crate) const FIVE: [&str; 5] = ["vps", "home1", "home2", "cgnat", "udpb"];

#[tokio::test]
async fn five_nodes_behind_every_kind_of_nat_list_five_members() -> Result<()> {
    if !labs_can_run("lab five-node mesh") {
        return Ok(());
    }
    let mesh = LabMesh::start_on(five_host_lab()?, &Binaries::locate()?, &FIVE).await?;
    let check = async {
        let ids = mesh.ids()?;
        assert_eq!(ids.len(), 5);
        mesh.all_list(&ids).await?;
        for name in &FIVE[1..] {
            mesh.connected("vps", name).await?;
            mesh.connected(name, "vps").await?;
        }
        Ok(())
    };
    mesh.explain(check.await)
}

#[tokio::test]
async fn a_member_added_during_a_partition_reaches_everyone_after_healing() -> Result<()> {
    if !labs_can_run("lab partition") {
        return Ok(());
    }
    let mut mesh = LabMesh::start_on(five_host_lab()?, &Binaries::locate()?, &FIVE).await?;
    let result = async {
        mesh.all_list(&mesh.ids()?).await?;
        mesh.lab
            .partition(&["vps", "home1", "late"], &["home2", "cgnat", "udpb"])?;
        // The public side admits a new member while the other side cannot hear it.
        mesh.add("late").await?;
        let ids = mesh.ids()?;
        for name in ["vps", "home1", "late"] {
            let node = mesh.node(name)?;
            hearth_testnet::eventually::eventually(
                &format!("{name} lists six"),
                hearth_testnet::lab::LAB_CONVERGE,
                || async {
                    let n = node.members().await?.len();
                    anyhow::ensure!(n == 6, "{n} members");
                    Ok(())
                },
            )
            .await?;
        }
        for name in ["home2", "cgnat", "udpb"] {
            let n = mesh.node(name)?.members().await?.len();
            assert_eq!(n, 5, "{name} heard of the new member through the partition");
        }
        mesh.lab.heal()?;
        mesh.all_list(&ids).await
    }
    .await;
    mesh.explain(result)
}

#[tokio::test]
async fn a_home_node_killed_and_restarted_is_connected_again() -> Result<()> {
    if !labs_can_run("lab kill -9") {
        return Ok(());
    }
    let mut mesh = LabMesh::start_on(five_host_lab()?, &Binaries::locate()?, &FIVE).await?;
    let result = async {
        mesh.connected("vps", "home1").await?;
        mesh.node_mut("home1")?.kill().await;
        let vps = mesh.node("vps")?;
        hearth_testnet::eventually::eventually(
            "vps sees home1 go",
            hearth_testnet::lab::LAB_CONVERGE,
            || async {
                let rows = vps.members().await?;
                let row = rows.iter().find(|r| r.name == "home1");
                anyhow::ensure!(row.is_some_and(|r| !r.connected), "still connected");
                Ok(())
            },
        )
        .await?;
        mesh.node_mut("home1")?.run().await?;
        mesh.connected("vps", "home1").await?;
        mesh.connected("home1", "vps").await
    }
    .await;
    mesh.explain(result)
}

/// Loss and delay on one host's uplink change what gets through, and go away again.
#[tokio::test]
async fn loss_and_delay_on_a_hosts_uplink() -> Result<()> {
    if !labs_can_run("lab loss and delay") {
        return Ok(());
    }
    let bins = Binaries::locate()?;
    let probe = bins.testnet.as_path();
    let mut lab = Lab::builder()
        .host("vps", HostKind::Public)
        .host("home", HostKind::Home)
        .build()?;
    let any = format!("0.0.0.0:{PORT}");
    let target = at(lab.host("vps")?.addr);
    let echo = lab
        .host("vps")?
        .serve(probe, &["probe", "udp-echo", &any])
        .await?;
    let home = lab.host("home")?.clone();
    let ask = |timeout: &'static str| {
        let (home, target) = (home.clone(), target.clone());
        async move {
            home.run(
                probe,
                &["probe", "udp-ask", &target, "--timeout-ms", timeout],
            )
            .await
        }
    };
    ask("3000").await?;

    // 100 % loss: nothing gets through; removing it restores the path.
    lab.set_loss("home", 100)?;
    assert!(
        ask("600").await.is_err(),
        "a datagram crossed a 100 % loss link"
    );
    lab.set_loss("home", 0)?;
    ask("3000").await?;

    // 600 ms of delay: an answer cannot come within 450 ms, but comes within a few seconds.
    lab.set_delay(probe, "home", 600)?;
    assert!(ask("450").await.is_err(), "an echo beat a 600 ms delay");
    ask("6000").await?;
    lab.set_delay(probe, "home", 0)?;
    ask("3000").await?;
    echo.stop().await;
    Ok(())
}
