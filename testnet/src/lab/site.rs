//! Two public edges serving a site hosted at home, with the edges' DNS on: where the failover
//! lab test and the failover benchmark start.

use super::clients::LoadRun;
use super::exec::Server;
use super::mesh::{LabMesh, LAB_CONVERGE};
use super::topology::{HostKind, Lab};
use crate::eventually::eventually;
use crate::procs::Binaries;
use anyhow::{ensure, Result};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// The zone the edges answer DNS for.
pub const SITE_ZONE: &str = "hearth.test";
/// The published host, inside [`SITE_ZONE`].
pub const SITE: &str = "app.hearth.test";
/// Where the site's backend listens on the home host.
pub(super) const BACKEND: &str = "127.0.0.1:8080";

/// Starts the sites' backend (`probe http-backend`) on the mesh's `home` host at [`BACKEND`].
pub(super) async fn home_backend(mesh: &LabMesh, bins: &Binaries) -> Result<Server> {
    mesh.lab
        .host("home")?
        .serve(
            &bins.testnet,
            &["probe", "http-backend", BACKEND, "--name", "home"],
        )
        .await
}

/// Hosts `pub1` and `pub2` (public, `edge = "auto"`), `home` (behind NAT, serving [`SITE`])
/// and `client`, plus public hosts that may join later.
#[derive(Debug)]
pub struct EdgeSite {
    /// The mesh on pub1, pub2 and home.
    pub mesh: LabMesh,
    bins: Binaries,
    _backend: Server,
}

impl EdgeSite {
    /// Builds the lab (with the public hosts `late`, not started), starts the mesh with a DNS
    /// zone, the backend at home, and publishes [`SITE`] there.
    pub async fn start(bins: &Binaries, late: &[String]) -> Result<Self> {
        let mut builder = Lab::builder()
            .host("pub1", HostKind::Public)
            .host("pub2", HostKind::Public)
            .host("home", HostKind::Home)
            .host("client", HostKind::Client);
        for name in late {
            builder = builder.host(name, HostKind::Public);
        }
        let mesh = LabMesh::start_with(
            builder.build()?,
            bins,
            &["pub1", "pub2", "home"],
            &[("HEARTH_DNS_ZONE", SITE_ZONE)],
        )
        .await?;
        let backend = home_backend(&mesh, bins).await?;
        mesh.node("home")?.publish(SITE, BACKEND, None).await?;
        Ok(Self {
            mesh,
            bins: bins.clone(),
            _backend: backend,
        })
    }

    /// The two edges' addresses.
    pub fn edge_addrs(&self) -> Result<[Ipv4Addr; 2]> {
        Ok([
            self.mesh.lab.host("pub1")?.addr,
            self.mesh.lab.host("pub2")?.addr,
        ])
    }

    /// Once both edges serve [`SITE`], starts a steady load through both from the client host
    /// (files in `dir`) and returns when both have answered it.
    pub async fn load_through_both(&self, dir: &std::path::Path) -> Result<LoadRun> {
        self.both_serving().await?;
        let client = self.mesh.lab.host("client")?;
        let load = client.failover_load(&self.bins.testnet, &self.edge_addrs()?, SITE, dir)?;
        eventually(
            "the load flows through both edges",
            LAB_CONVERGE,
            || async {
                ensure!(load.flowing(), "not yet");
                Ok(())
            },
        )
        .await?;
        Ok(load)
    }

    /// Waits until both edges are elected on every node and serve [`SITE`]: HTTP and DNS
    /// listening, the route stored, a tunnel from home, and their DNS listing both.
    pub async fn both_serving(&self) -> Result<()> {
        let mesh = &self.mesh;
        mesh.edges_everywhere(&["pub1", "pub2"]).await?;
        let home_id = mesh.node("home")?.status().await?.node;
        let client = mesh.lab.host("client")?;
        let both: BTreeSet<String> = self.edge_addrs()?.iter().map(|a| a.to_string()).collect();
        for edge in ["pub1", "pub2"] {
            let node = mesh.node(edge)?;
            let addr = mesh.lab.host(edge)?.addr;
            eventually(&format!("{edge} serves {SITE}"), LAB_CONVERGE, || async {
                let plane = node.status().await?.data_plane;
                ensure!(
                    plane.http_listen.is_some() && plane.dns_listen.is_some(),
                    "{plane:?}"
                );
                ensure!(plane.tunnels.contains(&home_id), "no tunnel from home");
                ensure!(
                    node.routes()
                        .await?
                        .iter()
                        .any(|r| r.spec.to_string() == SITE),
                    "route not stored"
                );
                let seen = client.dns_a(&self.bins.testnet, addr, SITE).await?;
                ensure!(seen == both, "its DNS lists {seen:?}");
                Ok(())
            })
            .await?;
        }
        Ok(())
    }
}
