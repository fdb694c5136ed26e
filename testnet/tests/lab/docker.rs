//! A labelled container on a home member behind NAT, served to the client host through the
//! public edge: the real Docker engine, the home host linked to the container's network.

use anyhow::{ensure, Result};
use hearth_testnet::docker_lab::{docker_can_run, DockerLab, HTTP_PORT};
use hearth_testnet::eventually::eventually;
use hearth_testnet::lab::{labs_can_run, HostKind, Lab, LabMesh, LAB_CONVERGE};
use hearth_testnet::procs::Binaries;

#[tokio::test]
async fn a_container_on_a_home_member_is_served_through_the_edge() -> Result<()> {
    if !labs_can_run("lab docker") || !docker_can_run("lab docker") {
        return Ok(());
    }
    let bins = Binaries::locate()?;
    let docker = DockerLab::new(5)?;
    let lab = Lab::builder()
        .host("vps", HostKind::Public)
        .host("home", HostKind::Home)
        .host("client", HostKind::Client)
        .build()?;
    lab.link_docker("home", &docker.network)?;
    let mut mesh = LabMesh::start(lab, &bins).await?;
    let result = async {
        let home = mesh.node_mut("home")?;
        home.kill().await;
        home.follow_docker(true);
        home.run().await?;
        let host_label = "hearth.http.host=web.example.com".to_string();
        let port_label = format!("hearth.http.port={HTTP_PORT}");
        let web = docker.run("web", &["--label", &host_label, "--label", &port_label])?;
        let vps = mesh.lab.host("vps")?.addr;
        let client = mesh.lab.host("client")?;
        let url = format!("http://{vps}/");
        let visit = || async {
            client
                .run(
                    &bins.testnet,
                    &["probe", "http", &url, "--host", "web.example.com"],
                )
                .await
        };
        eventually(
            "the client gets the container's page",
            LAB_CONVERGE,
            || async {
                let out = visit().await?;
                ensure!(out.contains("hello from web"), "{out}");
                Ok(())
            },
        )
        .await?;
        docker.stop(&web)?;
        eventually(
            "the stopped container's host is withdrawn",
            LAB_CONVERGE,
            || async {
                ensure!(visit().await.is_err(), "still served");
                Ok(())
            },
        )
        .await?;
        docker.start(&web)?;
        eventually("served again after docker start", LAB_CONVERGE, || async {
            ensure!(visit().await?.contains("hello from web"));
            Ok(())
        })
        .await
    }
    .await;
    mesh.explain(result)
}
