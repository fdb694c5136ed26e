//! The real Docker engine for tests and benchmarks: the test image built here `FROM scratch`
//! around the static `hearth-testsrv` (no registry is reachable), a test network in
//! 198.19.100.0/24 and up, and containers and network removed when the [`DockerLab`] drops.
//! Networks left behind by a killed test process are removed by the next one.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::sync::Mutex;

/// The locally built test image.
pub const IMAGE: &str = "hearth-testsrv:test";
/// HTTP port of the test service inside its container.
pub const HTTP_PORT: u16 = 8080;
/// TCP echo port of the test service inside its container.
pub const TCP_PORT: u16 = 2222;
const PREFIX: &str = "hearth-test-";

/// Runs `docker ARGS`, returning trimmed stdout or failing with stderr.
pub fn docker(args: &[&str]) -> Result<String> {
    crate::lab::run("docker", args).map(|out| out.trim().to_string())
}

/// True when Docker tests may run. When the engine is unreachable, prints why and returns
/// false, unless `CI` or `HEARTH_LAB=require` is set: then it panics, CI must run them.
pub fn docker_can_run(test: &str) -> bool {
    match docker(&["version", "--format", "{{.Server.Version}}"]) {
        Ok(_) => true,
        Err(why) => {
            let required = std::env::var_os("CI").is_some()
                || std::env::var("HEARTH_LAB").is_ok_and(|v| v == "require");
            assert!(
                !required,
                "{test}: no Docker engine ({why}), but CI requires Docker tests to run"
            );
            eprintln!("SKIPPED {test}: no Docker engine: {why}");
            false
        }
    }
}

/// Where `scripts/test.sh` builds the static test service.
fn testsrv_binary() -> Result<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = root.join("target/x86_64-unknown-linux-gnu/release/hearth-testsrv");
    if !path.is_file() {
        bail!(
            "{} is missing; build it with: RUSTFLAGS='-C target-feature=+crt-static' cargo build -p hearth-testsrv --release --target x86_64-unknown-linux-gnu",
            path.display()
        );
    }
    Ok(path)
}

/// Whether this process built [`IMAGE`] already; tests running at once build it once.
static BUILT: Mutex<bool> = Mutex::new(false);

/// Builds [`IMAGE`] from the static test service, once per process.
pub fn build_image() -> Result<()> {
    let mut built = BUILT
        .lock()
        .map_err(|_| anyhow::anyhow!("an earlier image build panicked"))?;
    if *built {
        return Ok(());
    }
    let context = tempfile::tempdir()?;
    std::fs::copy(testsrv_binary()?, context.path().join("hearth-testsrv"))?;
    std::fs::write(
        context.path().join("Dockerfile"),
        format!(
            "FROM scratch\nCOPY hearth-testsrv /hearth-testsrv\n\
             HEALTHCHECK --interval=1s --timeout=1s --retries=1 CMD [\"/hearth-testsrv\", \"health\"]\n\
             EXPOSE {HTTP_PORT} {TCP_PORT}\nENTRYPOINT [\"/hearth-testsrv\", \"serve\"]\n"
        ),
    )?;
    let dir = context.path().display().to_string();
    docker(&["build", "-q", "-t", IMAGE, &dir])?;
    *built = true;
    Ok(())
}

/// A Docker test network with the containers started on it.
#[derive(Debug)]
pub struct DockerLab {
    /// The network's name.
    pub network: String,
    containers: Mutex<Vec<String>>,
}

impl DockerLab {
    /// Builds the image and creates network `198.19.<100 + index>.0/24`; tests running at
    /// the same time use different indexes.
    pub fn new(index: u8) -> Result<Self> {
        remove_abandoned();
        build_image()?;
        let network = format!("{PREFIX}{}-{index}", std::process::id());
        let subnet = format!("198.19.{}.0/24", 100 + u16::from(index));
        docker(&["network", "create", "--subnet", &subnet, &network])?;
        Ok(Self {
            network,
            containers: Mutex::new(Vec::new()),
        })
    }

    /// Starts a test service container named `<network>-<name>` with `extra` docker-run
    /// arguments (labels, env); returns its full name.
    pub fn run(&self, name: &str, extra: &[&str]) -> Result<String> {
        let full = format!("{}-{name}", self.network);
        let mut args = vec!["run", "-d", "--name", &full, "--network", &self.network];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[IMAGE, "--name", name]);
        docker(&args)?;
        if let Ok(mut containers) = self.containers.lock() {
            containers.push(full.clone());
        }
        Ok(full)
    }

    /// `docker stop` with a 1 s grace: the service, PID 1 without a SIGTERM handler, is then
    /// killed.
    pub fn stop(&self, container: &str) -> Result<()> {
        docker(&["stop", "-t", "1", container]).map(|_| ())
    }

    /// `docker start`.
    pub fn start(&self, container: &str) -> Result<()> {
        docker(&["start", container]).map(|_| ())
    }

    /// The container's health status (`healthy`, `unhealthy`, `starting`).
    pub fn health(&self, container: &str) -> Result<String> {
        docker(&["inspect", "--format", "{{.State.Health.Status}}", container])
    }
}

impl Drop for DockerLab {
    fn drop(&mut self) {
        let containers = self
            .containers
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        for container in containers {
            let _ = docker(&["rm", "-f", &container]);
        }
        let _ = docker(&["network", "rm", &self.network]);
    }
}

/// Removes test networks (and their containers) of processes that no longer exist.
fn remove_abandoned() {
    let Ok(names) = docker(&["network", "ls", "--format", "{{.Name}}"]) else {
        return;
    };
    for network in names.lines().filter(|n| n.starts_with(PREFIX)) {
        let pid = network[PREFIX.len()..].split('-').next().unwrap_or("");
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Ok(ids) = docker(&["ps", "-aq", "--filter", &format!("network={network}")]) {
            for id in ids.lines() {
                let _ = docker(&["rm", "-f", id]);
            }
        }
        let _ = docker(&["network", "rm", network]);
    }
}

/// A two-node mesh on 127.0.0.1 whose node 1 follows the Docker engine and node 0 is the
/// edge, with node 1's tunnel up and Docker reachable.
pub async fn docker_mesh() -> Result<crate::local::LocalMesh> {
    use crate::eventually::{eventually, CONVERGE};
    let mut mesh = crate::local::LocalMesh::found().await?;
    mesh.add_node_with(|config| config.docker.enabled = true)
        .await?;
    mesh.converged(&mesh.ids()).await?;
    mesh.edge_tunnels_up().await?;
    eventually("node 1 reaches Docker", CONVERGE, || async {
        let docker = mesh.status(1).await?.docker;
        anyhow::ensure!(docker.available, "docker: {}", docker.detail);
        Ok(())
    })
    .await?;
    Ok(mesh)
}

/// Status and body of `GET /` for `host` at `edge`, on a new connection.
pub async fn get(edge: std::net::SocketAddr, host: &str) -> Result<(u16, String)> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::io::BufReader::new(tokio::net::TcpStream::connect(edge).await?);
    let request = format!("GET / HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
    tcp.get_mut().write_all(request.as_bytes()).await?;
    let mut status_line = String::new();
    tcp.read_line(&mut status_line).await?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .context("no status line")?
        .parse()?;
    let mut rest = String::new();
    tcp.read_to_string(&mut rest).await?;
    let body = rest
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Ok((status, body))
}
