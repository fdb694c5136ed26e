//! Docker services against the real engine: a two-node mesh on 127.0.0.1 where node 1 follows
//! the engine and node 0 is the edge; containers run the locally built `FROM scratch` test
//! image on a 198.19.x test network.

use anyhow::{bail, ensure, Result};
use hearth_proto::api::{CommandV1, ResponseV1, RouteRowV1};
use hearth_proto::route::RouteSpec;
use hearth_testnet::docker_lab::{
    docker_can_run, docker_mesh, get, DockerLab, HTTP_PORT, TCP_PORT,
};
use hearth_testnet::eventually::{eventually, CONVERGE};
use hearth_testnet::local::LocalMesh;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn served_by(edge: SocketAddr, host: &str, want: &str) -> Result<()> {
    eventually(&format!("{host} is served by {want}"), CONVERGE, || async {
        let (status, body) = get(edge, host).await?;
        ensure!(
            status == 200 && body == format!("hello from {want}\n"),
            "{status} {body:?}"
        );
        Ok(())
    })
    .await
}

async fn not_served(edge: SocketAddr, host: &str) -> Result<()> {
    eventually(&format!("{host} is withdrawn"), CONVERGE, || async {
        let (status, body) = get(edge, host).await?;
        ensure!(status == 404 || status == 502, "{status} {body:?}");
        Ok(())
    })
    .await
}

async fn routes(mesh: &LocalMesh, node: usize) -> Result<Vec<RouteRowV1>> {
    mesh.routes(node).await
}

#[tokio::test]
async fn labelled_containers_are_followed_through_start_stop_and_node_restarts() -> Result<()> {
    if !docker_can_run("docker labelled containers") {
        return Ok(());
    }
    let docker = DockerLab::new(0)?;
    let mut mesh = docker_mesh().await?;
    let edge = mesh.edge_http().await?;
    let edge_port = TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port();

    // A Gitea-like container: HTTP by host name and a raw TCP port through the edge.
    let labels = [
        "--label".to_string(),
        "hearth.http.host=git.example.com".into(),
        "--label".into(),
        format!("hearth.http.port={HTTP_PORT}"),
        "--label".into(),
        format!("hearth.tcp.port={edge_port}"),
        "--label".into(),
        format!("hearth.tcp.target={TCP_PORT}"),
    ];
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let git = docker.run("git", &labels)?;
    served_by(edge, "git.example.com", "git").await?;
    eventually("the TCP route echoes", CONVERGE, || async {
        let mut tcp = TcpStream::connect(("127.0.0.1", edge_port)).await?;
        tcp.write_all(b"ssh-2.0 hello").await?;
        let mut back = [0u8; 13];
        tcp.read_exact(&mut back).await?;
        ensure!(&back == b"ssh-2.0 hello");
        Ok(())
    })
    .await?;
    // Routes from Docker name their container everywhere.
    let rows = routes(&mesh, 0).await?;
    ensure!(
        rows.iter()
            .filter(|r| r.container.as_deref() == Some(git.as_str()))
            .count()
            == 2,
        "{rows:?}"
    );

    // Stopped: withdrawn. Started again (maybe at a new address): served again.
    docker.stop(&git)?;
    not_served(edge, "git.example.com").await?;
    docker.start(&git)?;
    served_by(edge, "git.example.com", "git").await?;

    // The node restarts while the container is stopped: the stale route is gone.
    mesh.stop(1).await;
    docker.stop(&git)?;
    mesh.restart(1).await?;
    eventually(
        "the stale route is withdrawn after the restart",
        CONVERGE,
        || async {
            let rows = routes(&mesh, 0).await?;
            ensure!(
                rows.iter()
                    .all(|r| r.container.as_deref() != Some(git.as_str())),
                "{rows:?}"
            );
            Ok(())
        },
    )
    .await?;
    not_served(edge, "git.example.com").await?;
    mesh.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn unhealthy_containers_are_not_routed_and_unlabelled_ones_can_be_published() -> Result<()> {
    if !docker_can_run("docker health and --container") {
        return Ok(());
    }
    let docker = DockerLab::new(1)?;
    let mesh = docker_mesh().await?;
    let edge = mesh.edge_http().await?;
    let http_port = format!("hearth.http.port={HTTP_PORT}");

    let sick = docker.run(
        "sick",
        &[
            "--label",
            "hearth.http.host=sick.example.com",
            "--label",
            &http_port,
            "-e",
            "HEALTH=fail",
        ],
    )?;
    let well = docker.run(
        "well",
        &[
            "--label",
            "hearth.http.host=well.example.com",
            "--label",
            &http_port,
        ],
    )?;
    eventually("docker has judged both health checks", CONVERGE, || async {
        ensure!(docker.health(&sick)? == "unhealthy");
        ensure!(docker.health(&well)? == "healthy");
        Ok(())
    })
    .await?;
    // The healthy one is served, and by then the node has seen the sick one too.
    served_by(edge, "well.example.com", "well").await?;
    let (status, body) = get(edge, "sick.example.com").await?;
    ensure!(
        status == 404,
        "an unhealthy container was routed: {status} {body}"
    );
    ensure!(
        routes(&mesh, 1).await?.iter().all(|r| r.spec
            != RouteSpec::Http {
                host: "sick.example.com".into()
            }),
        "the unhealthy container has a route"
    );

    // A container without labels, published by name.
    let plain = docker.run("plain", &[])?;
    let command = CommandV1::PublishContainer {
        spec: RouteSpec::Http {
            host: "plain.example.com".into(),
        },
        container: plain.clone(),
        port: HTTP_PORT,
        tls: Default::default(),
    };
    match mesh.call(1, command).await? {
        ResponseV1::Following { .. } => {}
        other => bail!("publish --container: {other:?}"),
    }
    served_by(edge, "plain.example.com", "plain").await?;
    docker.stop(&plain)?;
    not_served(edge, "plain.example.com").await?;
    docker.start(&plain)?;
    served_by(edge, "plain.example.com", "plain").await?;
    mesh.shutdown().await;
    Ok(())
}
