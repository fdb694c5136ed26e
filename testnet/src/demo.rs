//! `hearth-testnet demo`: a running mesh to look at, until Ctrl-C.
//!
//! As root, a namespace lab: two public VPSes, a home behind NAT, a home behind carrier-grade
//! NAT and a client host, the mesh joined by invites. Every node runs `edge = "auto"`: the two
//! VPSes find themselves public (AutoNAT) and are elected as edges, and answer DNS for
//! `hearth.test`. A small web service on the home host is published as [`SITE`] and the demo
//! prints how to reach it from the client host through either edge, over HTTP and over HTTPS
//! with a certificate from a real ACME CA (Debian's Pebble on a lab host of its own, when it
//! is installed; scripts/demo.sh installs it as root). Without root, the same
//! mesh of `hearthd` processes on 127.0.0.1, the founder being the edge (`edge = "always"`:
//! nothing on loopback is public). Either way everything is removed on Ctrl-C.

use crate::eventually::{eventually, CONVERGE};
use crate::lab::{available, HostKind, Lab, LabMesh, Pebble, LAB_CONVERGE};
use crate::procs::{Binaries, ProcNode};
use anyhow::{bail, Context, Result};
use hearth_proto::NodeId;
use std::time::Duration;

/// The host name the demo publishes.
pub const SITE: &str = "hello.hearth.test";
/// Where the demo's web service listens on the home host.
const LAB_BACKEND: &str = "127.0.0.1:8080";
/// The zone the lab's edges answer DNS for.
const ZONE: &str = "hearth.test";

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
        .host("vps2", HostKind::Public)
        .host("home", HostKind::Home)
        .host("attic", HostKind::Cgnat)
        .host("client", HostKind::Client)
        .host("ca", HostKind::Client)
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
    let names: Vec<String> = lab.node_hosts().map(|h| h.name.clone()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let dir = tempfile::Builder::new().prefix("hearth-demo").tempdir()?;
    // Pebble resolves through the first VPS's DNS, which answers once it is an edge.
    let dns = std::net::SocketAddr::new(lab.host("vps")?.addr.into(), 53);
    let pebble = match Pebble::start(lab.host("ca")?, dns, dir.path(), &bins.testnet).await {
        Ok(pebble) => Some(pebble),
        Err(e) => {
            println!(
                "no ACME CA in this demo ({e:#}); HTTPS answers with self-signed certificates"
            );
            None
        }
    };
    let ca_file = pebble
        .as_ref()
        .map(|p| p.api_ca.to_string_lossy().into_owned());
    let mut env = vec![("HEARTH_DNS_ZONE", ZONE)];
    if let (Some(pebble), Some(ca_file)) = (&pebble, &ca_file) {
        env.extend([
            ("HEARTH_ACME_DIRECTORY", pebble.directory.as_str()),
            ("HEARTH_ACME_ACCEPT_TERMS", "true"),
            ("HEARTH_ACME_CA_FILE", ca_file.as_str()),
        ]);
    }
    let mesh = LabMesh::start_with(lab, bins, &names, &env).await?;
    let ids = mesh.ids()?;
    mesh.all_list(&ids).await?;
    mesh.edges_everywhere(&["vps", "vps2"]).await?;
    for name in ["home", "attic"] {
        mesh.connected("vps", name).await?;
    }
    show(bins, mesh.node("home")?, "members")?;
    show(bins, mesh.node("home")?, "edges")?;
    let _backend = mesh
        .lab
        .host("home")?
        .serve(
            &bins.testnet,
            &["probe", "http-backend", LAB_BACKEND, "--name", "home"],
        )
        .await
        .context("starting the web service on home")?;
    let home = mesh.node("home")?;
    home.publish(SITE, LAB_BACKEND, None).await?;
    let home_id = home.status().await?.node;
    for edge in ["vps", "vps2"] {
        wait_routed(mesh.node(edge)?, home_id, LAB_CONVERGE).await?;
    }
    let client = mesh.lab.host("client")?;
    let (edge, edge2) = (mesh.lab.host("vps")?.addr, mesh.lab.host("vps2")?.addr);
    println!(
        "{SITE} is published on home ({LAB_BACKEND}, behind NAT); from the client host, through either edge:"
    );
    println!(
        "  ip netns exec {} curl -H 'Host: {SITE}' http://{edge}/",
        client.ns
    );
    println!(
        "  ip netns exec {} curl -H 'Host: {SITE}' http://{edge2}/",
        client.ns
    );
    println!(
        "  ip netns exec {} {} probe http http://{edge}/headers --host {SITE}      # without curl; shows X-Forwarded-For",
        client.ns,
        bins.testnet.display()
    );
    let root = dir.path().join("pebble-root.pem");
    let trusted = match &pebble {
        Some(pebble) => {
            pebble.fetch_root(client, &bins.testnet, &root).await?;
            wait_certified(mesh.node("home")?).await?;
            format!("--cacert {}", root.display())
        }
        None => "-k".to_string(),
    };
    println!(
        "over HTTPS ({}):",
        if pebble.is_some() {
            "a certificate from the lab's ACME CA, Pebble; the client trusts its root"
        } else {
            "self-signed"
        }
    );
    println!(
        "  ip netns exec {} curl {trusted} --resolve {SITE}:443:{edge} https://{SITE}/",
        client.ns
    );
    println!(
        "  ip netns exec {} {} probe https --connect {edge2}:443 --name {SITE}{}      # without curl",
        client.ns,
        bins.testnet.display(),
        if pebble.is_some() {
            format!(" --ca {}", root.display())
        } else {
            String::new()
        }
    );
    println!(
        "the edges' own DNS for {ZONE} lists both (and drops one within seconds of its death):"
    );
    println!(
        "  ip netns exec {} {} probe dns {edge}:53 {SITE}",
        client.ns,
        bins.testnet.display()
    );
    println!("look inside (as root, in another terminal):");
    for node in &mesh.nodes {
        let host = mesh.lab.host(&node.name)?;
        println!(
            "  ip netns exec {} {} --socket {} edges",
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
    drop(pebble);
    println!("stopped; namespaces and data removed");
    Ok(())
}

/// Waits until `node` lists the demo site's certificate as valid.
async fn wait_certified(node: &ProcNode) -> Result<()> {
    use hearth_proto::api::{CommandV1, ResponseV1};
    eventually(
        &format!("a certificate for {SITE}"),
        LAB_CONVERGE,
        || async {
            match node.call(CommandV1::Certs).await? {
                ResponseV1::Certs(report) => {
                    let row = report.rows.iter().find(|r| r.name == SITE);
                    match row {
                        Some(r) if r.state == hearth_proto::cert::CertState::Valid => Ok(()),
                        Some(r) => bail!("{:?}: {}", r.state, r.detail),
                        None => bail!("not listed yet"),
                    }
                }
                other => bail!("{other:?}"),
            }
        },
    )
    .await
}

async fn loopback_demo(bins: &Binaries, nodes: usize) -> Result<()> {
    let root = tempfile::Builder::new().prefix("hearth-demo").tempdir()?;
    println!(
        "starting a {nodes}-node mesh on 127.0.0.1 under {}",
        root.path().display()
    );
    let mut mesh = Vec::new();
    let result = loopback_mesh(bins, root.path(), nodes, &mut mesh).await;
    if result.is_ok() {
        wait_for_ctrl_c().await?;
    }
    for node in &mut mesh {
        node.kill().await;
    }
    result?;
    println!("stopped; removed {}", root.path().display());
    Ok(())
}

/// Starts the loopback mesh into `mesh` (so the caller stops whatever started), publishes
/// the site and prints how to look at it.
async fn loopback_mesh(
    bins: &Binaries,
    root: &std::path::Path,
    nodes: usize,
    mesh: &mut Vec<ProcNode>,
) -> Result<()> {
    // Nothing on loopback is public, so the founder is made the edge.
    let mut founder = ProcNode::new(bins, root.join("node0"), "node0").edge();
    founder.init().await?;
    founder.run().await?;
    mesh.push(founder);
    for i in 1..nodes.max(1) {
        let name = format!("node{i}");
        let mut node = ProcNode::new(bins, root.join(&name), &name);
        node.join(&mesh[0].invite().await?).await?;
        node.run().await?;
        mesh.push(node);
    }
    for node in mesh.iter() {
        eventually(
            &format!("{} sees everyone", node.name),
            CONVERGE,
            || async {
                let rows = node.members().await?;
                let connected = rows.iter().filter(|r| r.connected).count();
                if connected != mesh.len() {
                    bail!("{connected} of {} connected", mesh.len());
                }
                Ok(())
            },
        )
        .await?;
    }
    show(bins, &mesh[0], "members")?;
    // The web service runs in this process; the last node (not the edge, if there are two or
    // more) hosts the route, so requests cross a tunnel.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let backend = listener.local_addr()?;
    let host = &mesh[mesh.len() - 1];
    tokio::spawn(crate::backend::run(
        listener,
        host.name.clone(),
        Duration::from_secs(24 * 3600),
    ));
    host.publish(SITE, &backend.to_string(), None).await?;
    wait_routed(&mesh[0], host.status().await?.node, CONVERGE).await?;
    let http = mesh[0]
        .status()
        .await?
        .data_plane
        .http_listen
        .context("the edge reports no HTTP ingress")?;
    println!(
        "{SITE} is published on {} ({backend}); through the edge {}:",
        host.name, mesh[0].name
    );
    println!("  curl -H 'Host: {SITE}' http://{http}/");
    println!(
        "  {} probe http http://{http}/headers --host {SITE}      # without curl",
        bins.testnet.display()
    );
    if let Some(https) = mesh[0].status().await?.data_plane.https_listen {
        let port = https.rsplit(':').next().unwrap_or("443");
        println!(
            "over HTTPS (self-signed: no ACME CA on loopback; see docs/https.md):\n  curl -k --resolve {SITE}:{port}:127.0.0.1 https://{SITE}:{port}/"
        );
    }
    println!("look inside (in another terminal):");
    for node in mesh.iter() {
        println!(
            "  {} --socket {} status      # log: {}",
            bins.hearthctl.display(),
            node.socket().display(),
            node.log_path().display()
        );
    }
    Ok(())
}

/// Waits until `edge` stores the route to [`SITE`] and, unless it hosts it itself, has a live
/// tunnel to `host`.
async fn wait_routed(edge: &ProcNode, host: NodeId, within: Duration) -> Result<()> {
    eventually(&format!("{} routes {SITE}", edge.name), within, || async {
        let status = edge.status().await?;
        let routed = edge
            .routes()
            .await?
            .iter()
            .any(|r| r.spec.to_string() == SITE);
        let tunnel = status.node == host || status.data_plane.tunnels.contains(&host);
        if !(routed && tunnel) {
            bail!("route stored: {routed}, tunnel to the host: {tunnel}");
        }
        Ok(())
    })
    .await
}

/// Prints `hearthctl COMMAND` as `node` answers it.
fn show(bins: &Binaries, node: &ProcNode, command: &str) -> Result<()> {
    let table = std::process::Command::new(&bins.hearthctl)
        .arg("--socket")
        .arg(node.socket())
        .arg(command)
        .output()?;
    println!(
        "\nhearthctl {command}, as {} sees it:\n{}",
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
