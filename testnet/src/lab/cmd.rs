//! Running `ip`, `nft` and friends, and deciding whether labs can run here at all.

use anyhow::{bail, Context, Result};
use std::process::Command;

/// Why labs cannot run on this machine.
#[derive(Debug, Clone, thiserror::Error)]
#[error("namespace labs cannot run here: {0}")]
pub struct LabUnavailable(pub String);

/// Checks for root and the tools the labs use.
pub fn available() -> Result<(), LabUnavailable> {
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if !is_root {
        return Err(LabUnavailable("not running as root".into()));
    }
    for tool in ["ip", "nft", "iptables"] {
        let found = Command::new(tool)
            .arg("-V")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            return Err(LabUnavailable(format!(
                "`{tool}` is missing (apt-get install -y iproute2 nftables iptables)"
            )));
        }
    }
    Ok(())
}

/// Runs a command to completion, failing with its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `args` inside namespace `ns`.
pub fn in_ns(ns: &str, args: &[&str]) -> Result<String> {
    let mut full = vec!["netns", "exec", ns];
    full.extend_from_slice(args);
    run("ip", &full)
}

/// Loads an nftables ruleset into namespace `ns`.
pub fn nft(ns: &str, ruleset: &str) -> Result<()> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        std::io::Write::write_all(&mut stdin, ruleset.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "nft in {ns} failed: {}\nruleset:\n{ruleset}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
