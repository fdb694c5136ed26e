//! `hearth-testnet demo`: a running mesh to look at, until Ctrl-C.
//!
//! As root, a namespace lab: a public VPS, a home behind NAT, a home behind carrier-grade NAT
//! and a client host, the mesh joined by invites. Without root, the same mesh of `hearthd`
//! processes on 127.0.0.1. Either way everything is removed on Ctrl-C.

use crate::eventually::{eventually, CONVERGE};
use crate::lab::{available, HostKind, Lab, LabMesh};
use crate::procs::{Binaries, ProcMesh, ProcNode};
use anyhow::{bail, Result};

/// Runs the demo until Ctrl-C.
pub async fn run(nodes: usize) -> Result<()> {
    let bins = Binaries::locate()?;
    match available() {
        Ok(()) => lab_demo(&bins).await,
        Err(why) => {
            println!("{why}; running the mesh on 127.0.0.1 instead (run as root for the NAT lab)");
            loopback_demo(&bins, nodes).await
        }
    }
}

async fn lab_demo(bins: &Binaries) -> Result<()> {
    let lab = Lab::builder()
        .host("vps", HostKind::Public)
        .host("home", HostKind::Home)
        .host("attic", HostKind::Cgnat)
        .host("client", HostKind::Client)
        .build()?;
    println!("lab {}: hosts", lab.id);
    for host in &lab.hosts {
        println!(
            "  {:<7} {:<11} {:<13} seen on the internet as {}",
            host.name,
            format!("{:?}", host.kind).to_lowercase(),
            host.addr,
            host.wan_addr
        );
    }
    let mesh = LabMesh::start(lab, bins).await?;
    let ids = mesh.ids()?;
    mesh.all_list(&ids).await?;
    for name in ["home", "attic"] {
        mesh.connected("vps", name).await?;
    }
    show_members(bins, &mesh.nodes[0])?;
    println!("look inside (as root, in another terminal):");
    for node in &mesh.nodes {
        let host = mesh.lab.host(&node.name)?;
        println!(
            "  ip netns exec {} {} --socket {} members",
            host.ns,
            bins.hearthctl.display(),
            node.socket().display()
        );
    }
    let client = mesh.lab.host("client")?;
    println!(
        "  ip netns exec {} ping -c1 {}      # the client reaches the VPS",
        client.ns,
        mesh.lab.host("vps")?.addr
    );
    println!(
        "  logs: {}",
        mesh.nodes[0]
            .log_path()
            .parent()
            .and_then(|p| p.parent())
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    wait_for_ctrl_c().await?;
    drop(mesh);
    println!("stopped; namespaces and data removed");
    Ok(())
}

async fn loopback_demo(bins: &Binaries, nodes: usize) -> Result<()> {
    let root = tempfile::Builder::new().prefix("hearth-demo").tempdir()?;
    println!(
        "starting a {nodes}-node mesh on 127.0.0.1 under {}",
        root.path().display()
    );
    let mut mesh = ProcMesh::start(bins, root.path(), nodes).await?;
    for node in &mesh.nodes {
        eventually(
            &format!("{} sees everyone", node.name),
            CONVERGE,
            || async {
                let rows = node.members().await?;
                let connected = rows.iter().filter(|r| r.connected).count();
                if connected != nodes {
                    bail!("{connected} of {nodes} connected");
                }
                Ok(())
            },
        )
        .await?;
    }
    show_members(bins, &mesh.nodes[0])?;
    println!("look inside (in another terminal):");
    for node in &mesh.nodes {
        println!(
            "  {} --socket {} status      # log: {}",
            bins.hearthctl.display(),
            node.socket().display(),
            node.log_path().display()
        );
    }
    wait_for_ctrl_c().await?;
    mesh.stop().await;
    println!("stopped; removed {}", root.path().display());
    Ok(())
}

fn show_members(bins: &Binaries, node: &ProcNode) -> Result<()> {
    let table = std::process::Command::new(&bins.hearthctl)
        .arg("--socket")
        .arg(node.socket())
        .arg("members")
        .output()?;
    println!(
        "\nmembers, as {} sees them:\n{}",
        node.name,
        String::from_utf8_lossy(&table.stdout)
    );
    Ok(())
}

async fn wait_for_ctrl_c() -> Result<()> {
    println!("\nrunning; press Ctrl-C to stop and clean up");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
