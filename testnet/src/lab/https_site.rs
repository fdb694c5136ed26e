//! Two public edges that obtain certificates from a real ACME CA (Pebble, on its own lab
//! host) for services at home: where the HTTPS lab tests and the ACME benchmark start.
//!
//! Pebble resolves names through `pub1`'s DNS (the edges answer for [`SITE_ZONE`]) and, like
//! Let's Encrypt from one vantage point, validates against the first address it gets: `pub1`,
//! the most senior edge. So an order issued by `pub2` only succeeds if `pub1` serves its
//! challenge answers too.

use super::exec::Server;
use super::mesh::{LabMesh, LAB_CONVERGE};
use super::pebble::Pebble;
use super::site::{home_backend, BACKEND, SITE_ZONE};
use super::topology::{Host, HostKind, Lab};
use crate::eventually::eventually;
use crate::procs::Binaries;
use anyhow::{bail, ensure, Context, Result};
use hearth_proto::api::{CertRowV1, CertsV1, CommandV1, ResponseV1};
use hearth_proto::cert::CertState;
use hearth_proto::route::RouteTls;
use hearth_proto::NodeId;
use std::path::{Path, PathBuf};

/// The lab, its mesh, Pebble, and the files the client trusts.
#[derive(Debug)]
pub struct HttpsSite {
    /// The mesh on pub1, pub2 and home.
    pub mesh: LabMesh,
    /// The CA.
    pub pebble: Pebble,
    /// Pebble's issuing root, which the client trusts.
    pub root: PathBuf,
    /// Files of this run.
    pub dir: tempfile::TempDir,
    bins: Binaries,
    _backend: Server,
}

impl HttpsSite {
    /// Builds the lab (pub1, pub2, home, client, ca), starts Pebble on `ca` and the mesh with
    /// DNS for [`SITE_ZONE`], ACME from Pebble (wildcard for the zone), and `env` on every node.
    pub async fn start(bins: &Binaries, env: &[(&str, &str)]) -> Result<Self> {
        Self::start_with_config(bins, env, None).await
    }

    /// Like [`HttpsSite::start`], every node also reading `config` (TOML, e.g. settings that
    /// have no `HEARTH_*` override such as `[ingress] header_read_timeout_ms`) through
    /// `HEARTH_CONFIG`.
    pub async fn start_with_config(
        bins: &Binaries,
        env: &[(&str, &str)],
        config: Option<&str>,
    ) -> Result<Self> {
        let lab = Lab::builder()
            .host("pub1", HostKind::Public)
            .host("pub2", HostKind::Public)
            .host("home", HostKind::Home)
            .host("client", HostKind::Client)
            .host("ca", HostKind::Client)
            .build()?;
        let dir = tempfile::Builder::new()
            .prefix("hearth-https")
            .disable_cleanup(std::env::var_os("HEARTH_LAB_KEEP").is_some())
            .tempdir()?;
        let dns = std::net::SocketAddr::new(lab.host("pub1")?.addr.into(), 53);
        let pebble = Pebble::start(lab.host("ca")?, dns, dir.path(), &bins.testnet).await?;
        let ca_file = pebble.api_ca.to_string_lossy().into_owned();
        let config_file = dir.path().join("hearthd.toml");
        let config_path = config_file.to_string_lossy().into_owned();
        let mut all: Vec<(&str, &str)> = vec![
            ("HEARTH_DNS_ZONE", SITE_ZONE),
            ("HEARTH_ACME_DIRECTORY", &pebble.directory),
            ("HEARTH_ACME_ACCEPT_TERMS", "true"),
            ("HEARTH_ACME_CA_FILE", &ca_file),
            ("HEARTH_ACME_EMAIL", "lab@hearth.test"),
            ("HEARTH_ACME_WILDCARD", "true"),
        ];
        if let Some(config) = config {
            std::fs::write(&config_file, config)?;
            all.push(("HEARTH_CONFIG", &config_path));
        }
        all.extend_from_slice(env);
        let mesh = LabMesh::start_with(lab, bins, &["pub1", "pub2", "home"], &all).await?;
        let backend = home_backend(&mesh, bins).await?;
        let root = dir.path().join("pebble-root.pem");
        pebble
            .fetch_root(mesh.lab.host("client")?, &bins.testnet, &root)
            .await?;
        mesh.edges_everywhere(&["pub1", "pub2"]).await?;
        Ok(Self {
            mesh,
            pebble,
            root,
            dir,
            bins: bins.clone(),
            _backend: backend,
        })
    }

    /// The client host.
    pub fn client(&self) -> Result<&Host> {
        self.mesh.lab.host("client")
    }

    /// `edge`'s id.
    pub async fn id(&self, edge: &str) -> Result<NodeId> {
        Ok(self.mesh.node(edge)?.status().await?.node)
    }

    /// The first of `candidates` that `issuer` issues while `pub1` and `pub2` are the edges.
    pub async fn name_issued_by(&self, issuer: &str, candidates: &[String]) -> Result<String> {
        let mut edges = vec![self.id("pub1").await?, self.id("pub2").await?];
        edges.sort();
        let want = self.id(issuer).await?;
        candidates
            .iter()
            .find(|name| hearth_proto::cert::issuer_of(name, &edges) == Some(want))
            .cloned()
            .with_context(|| format!("none of {candidates:?} is issued by {issuer}"))
    }

    /// Publishes `host` on the home node, served by the backend.
    pub async fn publish(&self, host: &str) -> Result<()> {
        self.mesh.node("home")?.publish(host, BACKEND, None).await
    }

    /// Publishes `host` on the home node with TLS mode `tls` (e.g. passthrough: the home
    /// terminates it), served by the backend.
    pub async fn publish_tls(&self, host: &str, tls: RouteTls) -> Result<()> {
        self.mesh
            .node("home")?
            .publish_tls(host, BACKEND, None, tls)
            .await
    }

    /// `hearthctl certs` on `node`.
    pub async fn certs(&self, node: &str) -> Result<CertsV1> {
        match self.mesh.node(node)?.call(CommandV1::Certs).await? {
            ResponseV1::Certs(report) => Ok(report),
            other => bail!("certs on {node}: {other:?}"),
        }
    }

    /// The row of certificate `name` on `node`.
    pub async fn cert_row(&self, node: &str, name: &str) -> Result<CertRowV1> {
        self.certs(node)
            .await?
            .rows
            .into_iter()
            .find(|r| r.name == name)
            .with_context(|| format!("{node} lists no certificate {name}"))
    }

    /// Waits until every running node shows `name` valid with the same serial, other than
    /// `not`; returns the row.
    pub async fn valid_everywhere(&self, name: &str, not: Option<&str>) -> Result<CertRowV1> {
        let mut row = None;
        for node in self.mesh.nodes.iter().filter(|n| n.is_running()) {
            let found = eventually(
                &format!("{} shows {name} valid", node.name),
                LAB_CONVERGE,
                || async {
                    let r = self.cert_row(&node.name, name).await?;
                    ensure!(
                        r.state == CertState::Valid && r.serial.as_deref() != not,
                        "{:?} {:?}: {}",
                        r.state,
                        r.serial,
                        r.detail
                    );
                    Ok(r)
                },
            )
            .await;
            let found = self.pebble.explain_err(found)?;
            if let Some(first) = &row {
                let first: &CertRowV1 = first;
                ensure!(
                    first.serial == found.serial,
                    "nodes disagree on the serial of {name}"
                );
            }
            row = Some(found);
        }
        row.context("no node is running")
    }

    /// `probe https` from the client to `edge`:443 for `name`, trusting Pebble's root;
    /// returns its first line (`status=… proto=… serial=… issuer=…`) and the rest.
    pub async fn https(&self, edge: &str, name: &str, alpn: &str) -> Result<(String, String)> {
        self.https_path(edge, name, alpn, "/").await
    }

    /// Like [`HttpsSite::https`], for `path` (and query).
    pub async fn https_path(
        &self,
        edge: &str,
        name: &str,
        alpn: &str,
        path: &str,
    ) -> Result<(String, String)> {
        let connect = format!("{}:443", self.mesh.lab.host(edge)?.addr);
        let out = self
            .client()?
            .run(
                &self.bins.testnet,
                &[
                    "probe",
                    "https",
                    "--connect",
                    &connect,
                    "--name",
                    name,
                    "--ca",
                    &self.root.to_string_lossy(),
                    "--alpn",
                    alpn,
                    "--path",
                    path,
                ],
            )
            .await?;
        let (first, rest) = out.split_once('\n').unwrap_or((&out, ""));
        Ok((first.to_string(), rest.to_string()))
    }

    /// Checks that `edge`'s `:80` sends a visitor of `host` to HTTPS with a 308, path and
    /// query kept.
    pub async fn redirects_to_https(&self, edge: &str, host: &str) -> Result<()> {
        let addr = self.mesh.lab.host(edge)?.addr;
        let redirect = self
            .client()?
            .run(
                &self.bins.testnet,
                &[
                    "probe",
                    "http",
                    &format!("http://{addr}/some/page?q=1"),
                    "--host",
                    host,
                    "--expect-status",
                    "308",
                ],
            )
            .await?;
        ensure!(
            redirect.contains(&format!("https://{host}/some/page?q=1")),
            "{edge}: {redirect}"
        );
        Ok(())
    }

    /// Waits until `edge` serves `name` over HTTPS with a certificate of serial `serial`,
    /// verified against Pebble's root.
    pub async fn serves(&self, edge: &str, name: &str, serial: &str) -> Result<()> {
        eventually(
            &format!("{edge} serves {name} with certificate {serial}"),
            LAB_CONVERGE,
            || async {
                let (head, _) = self.https(edge, name, "both").await?;
                ensure!(head.contains(&format!("serial={serial} ")), "{head}");
                ensure!(
                    head.starts_with("status=200 ") && head.contains("verified=true"),
                    "{head}"
                );
                Ok(())
            },
        )
        .await
    }

    /// Every file under the nodes' data dirs but their identity keys, for the key audit.
    pub fn node_files(&self) -> Result<Vec<(String, PathBuf)>> {
        let mut out = Vec::new();
        for node in &self.mesh.nodes {
            collect(&node.dir, &node.name, &mut out)?;
        }
        Ok(out)
    }

    /// The probe binary.
    pub fn probe(&self) -> &Path {
        &self.bins.testnet
    }
}

fn collect(dir: &Path, node: &str, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, node, out)?;
        } else if path.is_file()
            && path
                .file_name()
                .is_some_and(|n| n != hearth_node::identity::KEY_FILE)
        {
            out.push((node.to_string(), path));
        }
    }
    Ok(())
}
