//! The data plane across NAT: a visitor on the client host reaches services on a home host
//! (behind a router that drops every inbound connection) through the public edge, which
//! carries each connection over the home node's own outbound quinn tunnel.
//!
//! Topology of every test here: client → vps (edge) → home, the services on the home host's
//! loopback. Each test builds one lab and runs several checks in it, so a failure names the
//! check and carries the node logs ([`LabMesh::explain`]).

use anyhow::{bail, ensure, Context, Result};
use hearth_proto::api::{DataPlaneV1, RouteRowV1};
use hearth_proto::NodeId;
use hearth_testnet::eventually::eventually;
use hearth_testnet::lab::{labs_can_run, Host, HostKind, Lab, LabMesh, Server, LAB_CONVERGE};
use hearth_testnet::procs::Binaries;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The published HTTP host.
const SITE: &str = "hello.hearth.test";
/// Where the HTTP backend listens on the home host.
const BACKEND: &str = "127.0.0.1:8080";
/// The hard bound the issue sets on answering 502 for a dead target or member.
const BAD_GATEWAY_MS: u64 = 1000;
/// `ingress.header_read_timeout_ms` default, and how late the close may come on a busy machine.
const HEADER_TIMEOUT_MS: u64 = 10_000;
const HEADER_TIMEOUT_SLACK_MS: u64 = 5_000;

/// A lab with a mesh on vps and home, and the probe program.
struct Site {
    mesh: LabMesh,
    bins: Binaries,
}

impl Site {
    async fn start() -> Result<Self> {
        let bins = Binaries::locate()?;
        let lab = Lab::builder()
            .host("vps", HostKind::Public)
            .host("home", HostKind::Home)
            .host("client", HostKind::Client)
            .build()?;
        let mesh = LabMesh::start(lab, &bins).await?;
        Ok(Self { mesh, bins })
    }

    fn host(&self, name: &str) -> Result<Host> {
        Ok(self.mesh.lab.host(name)?.clone())
    }

    /// The edge's HTTP ingress.
    fn url(&self, path: &str) -> Result<String> {
        Ok(format!("http://{}{path}", self.host("vps")?.addr))
    }

    /// Runs `hearth-testnet probe ARGS` on the client host; its stdout.
    async fn visit(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["probe"];
        full.extend_from_slice(args);
        self.host("client")?.run(&self.bins.testnet, &full).await
    }

    /// Starts `hearth-testnet probe ARGS` as a service on the home host.
    async fn serve_at_home(&self, args: &[&str]) -> Result<Server> {
        let mut full = vec!["probe"];
        full.extend_from_slice(args);
        self.host("home")?.serve(&self.bins.testnet, &full).await
    }

    async fn start_backend(&self) -> Result<Server> {
        self.serve_at_home(&["http-backend", BACKEND, "--name", "home"])
            .await
    }

    async fn home_id(&self) -> Result<NodeId> {
        Ok(self.mesh.node("home")?.status().await?.node)
    }

    /// Waits until the edge satisfies `ready`, given its data plane and its routes.
    async fn until_edge(
        &self,
        what: &str,
        ready: impl Fn(&DataPlaneV1, &[RouteRowV1]) -> Result<()>,
    ) -> Result<()> {
        let vps = self.mesh.node("vps")?;
        let ready = &ready;
        eventually(what, LAB_CONVERGE, || async move {
            let plane = vps.status().await?.data_plane;
            let routes = vps.routes().await?;
            ready(&plane, &routes).with_context(|| format!("edge data plane: {plane:?}"))
        })
        .await
    }

    /// Publishes [`SITE`] on the home node and waits until the edge routes it over a live
    /// tunnel to home.
    async fn publish_site(&self) -> Result<()> {
        self.mesh.node("home")?.publish(SITE, BACKEND, None).await?;
        let home = self.home_id().await?;
        self.until_edge(
            "the edge routes the site over a tunnel to home",
            |plane, routes| {
                ensure!(plane.edge, "vps is not an edge");
                ensure!(plane.http_listen.is_some(), "no HTTP ingress");
                ensure!(plane.tunnels.contains(&home), "no tunnel to home");
                ensure!(
                    routes.iter().any(|r| r.spec.to_string() == SITE),
                    "route not stored yet"
                );
                Ok(())
            },
        )
        .await
    }
}

/// `key=value` from the first line a probe printed.
fn field<'a>(out: &'a str, key: &str) -> Result<&'a str> {
    let first = out.lines().next().unwrap_or_default();
    first
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .with_context(|| format!("no {key}= in {first:?}"))
}

/// The number after `prefix` in a probe's output, e.g. `502 after 12 ms`.
fn millis_after(out: &str, prefix: &str) -> Result<u64> {
    let rest = out
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .with_context(|| format!("no `{prefix}` in {out:?}"))?;
    let number = rest.split_whitespace().next().unwrap_or_default();
    number
        .parse()
        .with_context(|| format!("`{number}` is not a number in {out:?}"))
}

/// The value of header `name` in the backend's `/headers` listing.
fn header<'a>(listing: &'a str, name: &str) -> Option<&'a str> {
    listing
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

#[tokio::test]
async fn http_requests_cross_the_edge_to_a_backend_behind_nat() -> Result<()> {
    if !labs_can_run("lab data plane: HTTP") {
        return Ok(());
    }
    let mut site = Site::start().await?;
    let result = http_checks(&mut site).await;
    site.mesh.explain(result)
}

async fn http_checks(site: &mut Site) -> Result<()> {
    let mut backend = site.start_backend().await?;
    site.publish_site().await?;
    let client = site.host("client")?;
    let root = site.url("/")?;

    // GET, and what the backend learns about the visitor.
    let out = site
        .visit(&["http", &root, "--host", SITE])
        .await
        .context("GET / through the edge")?;
    ensure!(out.contains("hello from home"), "GET /: {out}");
    let out = site
        .visit(&["http", &site.url("/headers")?, "--host", SITE])
        .await
        .context("GET /headers")?;
    let client_ip = client.addr.to_string();
    ensure!(
        header(&out, "x-forwarded-for") == Some(client_ip.as_str()),
        "X-Forwarded-For should be the client host's {client_ip}; the backend saw:\n{out}"
    );
    ensure!(
        header(&out, "x-forwarded-proto") == Some("http"),
        "X-Forwarded-Proto; the backend saw:\n{out}"
    );
    ensure!(
        header(&out, "x-forwarded-host") == Some(SITE),
        "X-Forwarded-Host; the backend saw:\n{out}"
    );
    ensure!(
        header(&out, "forwarded").is_some_and(|f| f.contains(&format!("for={client_ip}"))),
        "Forwarded should name for={client_ip}; the backend saw:\n{out}"
    );

    // POST, streamed and chunked, with and without Expect: 100-continue.
    let sha = site.url("/sha256")?;
    site.visit(&["http", &sha, "--host", SITE, "--post-bytes", "3000017"])
        .await
        .context("POST 3 MB")?;
    site.visit(&[
        "http",
        &sha,
        "--host",
        SITE,
        "--post-bytes",
        "100000",
        "--expect-continue",
    ])
    .await
    .context("POST with Expect: 100-continue")?;

    // A host nobody published.
    site.visit(&[
        "http",
        &root,
        "--host",
        "nobody.hearth.test",
        "--expect-status",
        "404",
    ])
    .await
    .context("unknown host")?;

    // WebSocket upgrade and 1,000 echoes.
    let out = site
        .visit(&[
            "ws-echo",
            &format!("ws://{}/ws", site.host("vps")?.addr),
            "--host",
            SITE,
            "--count",
            "1000",
        ])
        .await
        .context("WebSocket echo")?;
    ensure!(out.contains("echoed 1000 messages"), "ws-echo: {out}");
    println!("websocket: {}", out.trim());

    slowloris_is_cut_off_while_others_are_served(site).await?;

    // The backend stops: 502 at once; it comes back: served again.
    backend.stop().await;
    let out = site
        .visit(&["time-502", &root, "--host", SITE])
        .await
        .context("502 with the backend stopped")?;
    let ms = millis_after(&out, "502 after ")?;
    ensure!(
        ms < BAD_GATEWAY_MS,
        "502 for a stopped backend took {ms} ms (bound {BAD_GATEWAY_MS} ms)"
    );
    println!("backend stopped: 502 after {ms} ms");
    backend = site.start_backend().await?;
    site.visit(&["http", &root, "--host", SITE])
        .await
        .context("GET after the backend restarted")?;

    // The hosting member dies (kill -9): 502 at once too, from a tunnel that has not timed
    // out yet or from no tunnel at all.
    site.mesh.node_mut("home")?.kill().await;
    let out = site
        .visit(&["time-502", &root, "--host", SITE])
        .await
        .context("502 with the home node killed")?;
    let ms = millis_after(&out, "502 after ")?;
    ensure!(
        ms < BAD_GATEWAY_MS,
        "502 for a killed hosting member took {ms} ms (bound {BAD_GATEWAY_MS} ms)"
    );
    println!("home node killed: 502 after {ms} ms");
    backend.stop().await;
    Ok(())
}

/// A client that never finishes its request head is closed after the header read timeout;
/// meanwhile another client is served.
async fn slowloris_is_cut_off_while_others_are_served(site: &Site) -> Result<()> {
    let vps = site.host("vps")?;
    let bound = HEADER_TIMEOUT_MS + HEADER_TIMEOUT_SLACK_MS;
    let mut slow = site
        .host("client")?
        .command(&site.bins.testnet)
        .args([
            "probe",
            "slowloris",
            &format!("{}:80", vps.addr),
            "--host",
            SITE,
            "--max-ms",
            &(bound + 5_000).to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = slow.stdout.take().context("slowloris stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await;
    ensure!(
        matches!(&first, Ok(Ok(Some(l))) if l == "started"),
        "slowloris did not start: {first:?}"
    );
    site.visit(&["http", &site.url("/")?, "--host", SITE])
        .await
        .context("a GET while a slowloris client holds a connection")?;
    ensure!(
        slow.try_wait()?.is_none(),
        "the slow connection ended before the other client was served"
    );
    let last = tokio::time::timeout(Duration::from_millis(bound + 10_000), lines.next_line())
        .await
        .context("slowloris never reported")??;
    let status = slow.wait().await?;
    let Some(line) = last else {
        let mut err = String::new();
        if let Some(mut stderr) = slow.stderr.take() {
            tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut err).await?;
        }
        bail!("slowloris failed ({status}): {}", err.trim());
    };
    let ms = millis_after(&line, "closed after ")?;
    ensure!(
        (HEADER_TIMEOUT_MS / 2..=bound).contains(&ms),
        "the slow client was closed after {ms} ms; header_read_timeout is {HEADER_TIMEOUT_MS} ms"
    );
    println!("slowloris: {line}");
    Ok(())
}

#[tokio::test]
async fn gigabyte_bodies_cross_the_edge_intact() -> Result<()> {
    if !labs_can_run("lab data plane: 1 GB bodies") {
        return Ok(());
    }
    let site = Site::start().await?;
    let result = async {
        let backend = site.start_backend().await?;
        site.publish_site().await?;
        const GB: &str = "1000000000";
        // The probe streams the upload, hashes what it sent and fails unless the backend
        // counted the same bytes with the same sha256.
        let out = site
            .visit(&[
                "http",
                &site.url("/sha256")?,
                "--host",
                SITE,
                "--post-bytes",
                GB,
                "--timeout-ms",
                "900000",
            ])
            .await
            .context("1 GB upload")?;
        ensure!(out.contains("upload ok"), "upload: {out}");
        println!("1 GB upload: {}", out.lines().next().unwrap_or_default());
        // The backend streams 1 GB of a seeded pattern; the probe recomputes it and compares.
        let out = site
            .visit(&[
                "http",
                &site.url(&format!("/bytes?n={GB}&seed=42"))?,
                "--host",
                SITE,
                "--expect-pattern",
                GB,
                "--seed",
                "42",
                "--timeout-ms",
                "900000",
            ])
            .await
            .context("1 GB download")?;
        ensure!(field(&out, "size")? == GB, "download: {out}");
        ensure!(out.contains("download ok"), "download: {out}");
        println!("1 GB download: {}", out.lines().next().unwrap_or_default());
        backend.stop().await;
        Ok(())
    }
    .await;
    site.mesh.explain(result)
}

#[tokio::test]
async fn tcp_routes_carry_bytes_and_strangers_cannot_use_the_tunnel() -> Result<()> {
    if !labs_can_run("lab data plane: TCP routes") {
        return Ok(());
    }
    let site = Site::start().await?;
    let result = tcp_checks(&site).await;
    site.mesh.explain(result)
}

async fn tcp_checks(site: &Site) -> Result<()> {
    const PLAIN: u16 = 5000;
    const PROXIED: u16 = 5001;
    let plain = site.serve_at_home(&["tcp-echo", "127.0.0.1:9000"]).await?;
    let mut proxied = site
        .serve_at_home(&["tcp-echo", "127.0.0.1:9001", "--proxy-v2"])
        .await?;
    let home = site.mesh.node("home")?;
    home.publish_tcp(PLAIN, "127.0.0.1:9000", false).await?;
    home.publish_tcp(PROXIED, "127.0.0.1:9001", true).await?;
    let home_id = site.home_id().await?;
    site.until_edge("the edge listens on both TCP ports", |plane, _| {
        ensure!(plane.tunnels.contains(&home_id), "no tunnel to home");
        ensure!(
            plane.tcp_ports.contains(&PLAIN) && plane.tcp_ports.contains(&PROXIED),
            "TCP ports {:?}",
            plane.tcp_ports
        );
        Ok(())
    })
    .await?;
    let vps = site.host("vps")?;

    // 10 MB out and back through a plain TCP route.
    let out = site
        .visit(&[
            "tcp-roundtrip",
            &format!("{}:{PLAIN}", vps.addr),
            "--bytes",
            "10000000",
        ])
        .await
        .context("TCP route round trip")?;
    ensure!(out.contains("roundtrip 10000000 bytes ok"), "{out}");

    // With the PROXY protocol, the service learns the client host's address.
    site.visit(&[
        "tcp-roundtrip",
        &format!("{}:{PROXIED}", vps.addr),
        "--bytes",
        "100000",
    ])
    .await
    .context("TCP route with PROXY protocol")?;
    let line = tokio::time::timeout(Duration::from_secs(10), proxied.next_line())
        .await
        .context("the proxy-v2 echo printed no source")??;
    let source = line
        .strip_prefix("source ")
        .with_context(|| format!("echo said {line:?}"))?;
    let source: std::net::SocketAddr = source
        .parse()
        .with_context(|| format!("source {source:?}"))?;
    ensure!(
        source.ip() == std::net::IpAddr::V4(site.host("client")?.addr),
        "the PROXY header names {source}, the client host is {}",
        site.host("client")?.addr
    );

    // A stranger with its own key and the real tunnel TLS cannot open a stream at the edge.
    let edge_id = site.mesh.node("vps")?.status().await?.node;
    let out = site
        .visit(&[
            "quinn-intrude",
            &format!("{}:7701", vps.addr),
            "--edge-id",
            &edge_id.to_string(),
            "--host",
            SITE,
        ])
        .await
        .context("a non-member on the edge's tunnel endpoint")?;
    // Refused by the member check on its certificate, not by some other failure.
    ensure!(
        out.starts_with("refused: ") && out.contains("certificate"),
        "intruder: {out}"
    );
    println!("non-member: {}", out.trim());
    plain.stop().await;
    proxied.stop().await;
    Ok(())
}
