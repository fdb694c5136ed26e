//! Running programs inside a lab host.

use super::topology::Host;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

impl Host {
    /// A command that runs `program` inside this host's namespace (killed on drop).
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns])
            .arg(program)
            .kill_on_drop(true);
        cmd
    }

    /// Runs `program args` here to completion; Ok when it exits 0.
    pub async fn run(&self, program: &Path, args: &[&str]) -> Result<String> {
        let out = self
            .command(program)
            .args(args)
            .output()
            .await
            .with_context(|| format!("running {} in {}", program.display(), self.name))?;
        if !out.status.success() {
            bail!(
                "{} on {}: {}",
                args.join(" "),
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts a server `program args` here and waits until it prints `listening`.
    pub async fn serve(&self, program: &Path, args: &[&str]) -> Result<Server> {
        let mut child = self
            .command(program)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        match lines.next_line().await? {
            Some(line) if line == "listening" => Ok(Server { child, lines }),
            other => bail!("server on {} did not start: {other:?}", self.name),
        }
    }
}

/// A server started with [`Host::serve`].
#[derive(Debug)]
pub struct Server {
    child: Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Server {
    /// The next line it printed.
    pub async fn next_line(&mut self) -> Result<String> {
        match self.lines.next_line().await? {
            Some(line) => Ok(line),
            None => bail!("server exited"),
        }
    }

    /// Stops it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
