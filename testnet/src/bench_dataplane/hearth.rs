//! The Hearth path: the home node publishes an HTTP route to nginx; the client asks the edge
//! (the VPS node) by Host header, which proxies through the home node's quinn tunnel. A second
//! name on the same nginx is published with TLS passthrough: the edge's :443 reads only the
//! ClientHello's SNI and splices the TLS bytes through the tunnel, and the home node
//! terminates TLS itself.

use super::measure::{wait_ok, Target};
use super::nginx;
use super::tls::Endpoint;
use crate::lab::{Host, LabMesh};
use anyhow::{bail, Context, Result};
use hearth_proto::route::RouteTls;
use std::time::{Duration, Instant};

/// The name the route is published under.
pub const ROUTE_HOST: &str = "bench.hearth.test";
/// The name of the same nginx published with TLS passthrough (the home node terminates).
pub const PASSTHROUGH_HOST: &str = "blind.hearth.test";

/// Where a client reaches the route: the edge's HTTP ingress, with the route's Host header.
pub fn target(vps: &Host) -> Target {
    Target {
        base: format!("http://{}", vps.addr),
        host_header: Some(ROUTE_HOST.into()),
    }
}

/// Where a client reaches the route over HTTPS: the edge's HTTPS ingress (the lab's nodes
/// listen on `0.0.0.0:443`), SNI and Host the route's name. The route is published with the
/// default TLS mode (`edge`); without an ACME CA the edge answers with a self-signed
/// certificate for the name.
pub fn tls_endpoint(vps: &Host) -> Endpoint {
    Endpoint {
        name: ROUTE_HOST,
        addr: vps.addr,
        port: 443,
    }
}

/// Where a client reaches the passthrough route: the same edge :443, SNI and Host the
/// passthrough name. Without an ACME CA the home node answers with its own self-signed
/// certificate for the name.
pub fn passthrough_endpoint(vps: &Host) -> Endpoint {
    Endpoint {
        name: PASSTHROUGH_HOST,
        addr: vps.addr,
        port: 443,
    }
}

/// Publishes the passthrough route on the `home` node (the same nginx target) and waits until
/// the `vps` edge stores it in passthrough mode, then until the client gets the small file
/// over HTTPS through it. Call after [`publish`], which waits for the tunnel.
pub async fn publish_passthrough(mesh: &LabMesh, client: &Host) -> Result<()> {
    let (vps, home) = (mesh.node("vps")?, mesh.node("home")?);
    home.publish_tls(
        PASSTHROUGH_HOST,
        &format!("127.0.0.1:{}", nginx::PORT),
        None,
        RouteTls::Passthrough,
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let routes = vps.routes().await?;
        let row = routes
            .iter()
            .find(|r| r.spec.to_string() == PASSTHROUGH_HOST);
        match row {
            Some(r) if r.tls == RouteTls::Passthrough => break,
            _ if Instant::now() > deadline => bail!(
                "after 60 s the edge has no passthrough route {PASSTHROUGH_HOST} (row: {row:?})"
            ),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let vps_host = mesh.lab.host("vps")?;
    wait_ok(
        client,
        &passthrough_endpoint(vps_host).target(),
        nginx::SMALL,
        Duration::from_secs(20),
    )
    .await
    .context("HTTPS passthrough through the edge")
}

/// Publishes the route on the `home` node, waits until the `vps` edge has a live tunnel to
/// it and stores the route, then until the client gets the small file through it.
pub async fn publish(mesh: &LabMesh, client: &Host) -> Result<()> {
    let (vps, home) = (mesh.node("vps")?, mesh.node("home")?);
    let home_id = hearth_node::identity::load(&home.dir)?.id();
    home.publish(ROUTE_HOST, &format!("127.0.0.1:{}", nginx::PORT), None)
        .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = vps.status().await?;
        let routed = vps
            .routes()
            .await?
            .iter()
            .any(|r| r.spec.to_string() == ROUTE_HOST);
        let tunnel = status.data_plane.tunnels.contains(&home_id);
        if routed && tunnel {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "after 60 s the edge has route: {routed}, tunnel to home: {tunnel} \
                 (data plane: {:?})",
                status.data_plane
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let vps_host = mesh.lab.host("vps")?;
    wait_ok(
        client,
        &target(vps_host),
        nginx::SMALL,
        Duration::from_secs(20),
    )
    .await
    .context("the route through the edge")
}

/// Prints the end of every node's log (when the path did not come up).
pub fn print_log_tails(mesh: &LabMesh) {
    for node in &mesh.nodes {
        eprintln!("--- {} log ---\n{}", node.name, node.log_tail(25));
    }
}

/// Prints how many warnings and errors each node logged during the run, and the first few.
pub fn report_log_warnings(mesh: &LabMesh) {
    for node in &mesh.nodes {
        let log = std::fs::read_to_string(node.log_path()).unwrap_or_default();
        let bad: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect();
        if !bad.is_empty() {
            eprintln!(
                "hearthd on {} logged {} warnings or errors; the first:\n{}",
                node.name,
                bad.len(),
                bad[..bad.len().min(5)].join("\n")
            );
        }
    }
}
