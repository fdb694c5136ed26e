//! What a visitor host does in edge tests and benchmarks: ask an edge's DNS, and keep a steady
//! load on the edges while something breaks.

use super::topology::Host;
use crate::visitor::failover::LoadReport;
use anyhow::{ensure, Context, Result};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::Child;

impl Host {
    /// The A records the DNS server at `server`:53 gives for `name`, asked from this host;
    /// fails unless the answer is authoritative and NOERROR.
    pub async fn dns_a(
        &self,
        program: &Path,
        server: Ipv4Addr,
        name: &str,
    ) -> Result<BTreeSet<String>> {
        let server = format!("{server}:53");
        let out = self
            .run(program, &["probe", "dns", &server, name, "--type", "A"])
            .await?;
        let mut lines = out.lines();
        let head = lines.next().unwrap_or_default();
        ensure!(head.starts_with("rcode=NOERROR aa=true"), "answer: {out}");
        Ok(lines
            .filter_map(|l| l.strip_prefix("A "))
            .filter_map(|l| l.split_whitespace().next())
            .map(String::from)
            .collect())
    }

    /// Starts `probe failover-load` here: 4 workers sending `GET /` for `site` to port 80 of
    /// each edge in turn, each failed attempt retried on the next edge, for at most a minute.
    /// Its files live in `dir`.
    pub fn failover_load(
        &self,
        program: &Path,
        edges: &[Ipv4Addr],
        site: &str,
        dir: &Path,
    ) -> Result<LoadRun> {
        let (ready, stop) = (dir.join("load-ready"), dir.join("load-stop"));
        for file in [&ready, &stop] {
            if file.exists() {
                std::fs::remove_file(file)?;
            }
        }
        let mut cmd = self.command(program);
        cmd.args([
            "probe",
            "failover-load",
            "--host",
            site,
            "--concurrency",
            "4",
        ])
        .args(["--duration-ms", "60000", "--connect-timeout-ms", "1000"])
        .arg("--ready-file")
        .arg(&ready)
        .arg("--stop-file")
        .arg(&stop)
        .stdout(Stdio::piped());
        for edge in edges {
            cmd.args(["--edge", &format!("{edge}:80")]);
        }
        Ok(LoadRun {
            child: cmd.spawn().context("starting the load")?,
            ready,
            stop,
        })
    }
}

/// A running `probe failover-load`.
#[derive(Debug)]
pub struct LoadRun {
    child: Child,
    ready: PathBuf,
    stop: PathBuf,
}

impl LoadRun {
    /// Whether every edge has answered at least once.
    pub fn flowing(&self) -> bool {
        self.ready.exists()
    }

    /// Stops the load and reads its report.
    pub async fn finish(self) -> Result<LoadReport> {
        std::fs::write(&self.stop, b"stop")?;
        let out = self.child.wait_with_output().await?;
        let line = String::from_utf8_lossy(&out.stdout);
        LoadReport::parse_line(line.trim()).with_context(|| format!("the load's report `{line}`"))
    }
}
