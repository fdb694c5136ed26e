//! A long-running program inside a lab host, logging to a file and killed when dropped.

use crate::lab::Host;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Child;

/// A started program. `ip netns exec` execs the program itself, so the child's pid is the
/// program's.
#[derive(Debug)]
pub struct Daemon {
    /// What it is, for messages.
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `program args` on `host` with `env`, stdout and stderr to `log`.
    pub fn start(
        host: &Host,
        name: &str,
        program: &Path,
        args: &[&str],
        env: &[(&str, &Path)],
        log: PathBuf,
    ) -> Result<Self> {
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let mut cmd = host.command(program);
        cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
        for (key, value) in env {
            cmd.env(key, value);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} on {}", host.name))?;
        Ok(Self {
            name: name.to_string(),
            child,
            log,
        })
    }

    /// Its process id.
    pub fn pid(&self) -> Result<u32> {
        self.child
            .id()
            .with_context(|| format!("{} has exited", self.name))
    }

    /// Fails, with the end of its log, if it has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); its log ends:\n{}",
                self.name,
                self.log_tail(15)
            );
        }
        Ok(())
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// Waits until `path` exists, for at most `limit`.
pub async fn wait_for_file(path: &Path, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    while !path.exists() {
        if Instant::now() > deadline {
            bail!("{} did not appear within {limit:?}", path.display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Runs a program in this (the root) namespace; its stdout.
pub async fn run_local(program: &str, args: &[&str]) -> Result<String> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
