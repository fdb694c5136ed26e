//! The tools the data-plane benchmark compares against: Debian packages and rathole.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian packages the benchmark runs, with the program each provides.
const PACKAGES: [(&str, &str); 6] = [
    ("nginx", "nginx"),
    ("caddy", "caddy"),
    ("wireguard-go", "wireguard-go"),
    ("wireguard-tools", "wg"),
    ("wrk", "wrk"),
    ("curl", "curl"),
];

/// Services a package install may start system-wide; the benchmark runs its own instances.
const SERVICES: [&str; 2] = ["nginx", "caddy"];

/// Where the programs the benchmark runs are.
#[derive(Debug, Clone)]
pub struct Tools {
    /// `rathole`.
    pub rathole: PathBuf,
}

/// The file `program` runs from, searching `PATH` and the usual system directories.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin"]
                .iter()
                .map(PathBuf::from),
        )
        .map(|dir| dir.join(program))
        .find(|file| file.is_file())
}

/// Installs the missing Debian packages (`apt-get update` once, then one `apt-get install`),
/// stops any service the install started, and builds rathole with `cargo install` if it is
/// not on `PATH` or in cargo's bin directory.
pub fn ensure() -> Result<Tools> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(_, program)| which(program).is_none())
        .map(|(package, _)| *package)
        .collect();
    if !missing.is_empty() {
        println!("installing {}", missing.join(" "));
        run("apt-get", &["update", "-q"])?;
        let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
        args.extend_from_slice(&missing);
        run("apt-get", &args)?;
        for service in SERVICES.iter().filter(|s| missing.contains(s)) {
            stop_service(service);
        }
    }
    let rathole = match which("rathole").or_else(cargo_bin_rathole) {
        Some(path) => path,
        None => {
            println!("building rathole with `cargo install rathole` (takes minutes)");
            // rathole 0.5's lock file pins a `time` that this rustc rejects: no --locked.
            run("cargo", &["install", "rathole"])?;
            which("rathole")
                .or_else(cargo_bin_rathole)
                .context("`cargo install rathole` succeeded but rathole is not found")?
        }
    };
    Ok(Tools { rathole })
}

fn cargo_bin_rathole() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))?;
    let file = home.join("bin").join("rathole");
    file.is_file().then_some(file)
}

/// Stops a service a package install may have started (with systemd, or its init script).
/// Failures are ignored: on machines where installs do not start services there is nothing
/// to stop.
fn stop_service(service: &str) {
    if Path::new("/run/systemd/system").is_dir() {
        let _ = Command::new("systemctl").args(["stop", service]).output();
    } else if Path::new("/etc/init.d").join(service).is_file() {
        let _ = Command::new("service").args([service, "stop"]).output();
    }
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    let status = Command::new(program)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .with_context(|| format!("running {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed: {status}", args.join(" "));
    }
    Ok(())
}

/// One line naming the version of every program compared, as each reports it.
pub fn versions(rathole: &Path) -> String {
    let programs: [(&str, PathBuf, &[&str]); 5] = [
        ("nginx", PathBuf::from("nginx"), &["-v"]),
        ("Caddy", PathBuf::from("caddy"), &["version"]),
        (
            "wireguard-go",
            PathBuf::from("wireguard-go"),
            &["--version"],
        ),
        ("rathole", rathole.to_path_buf(), &["--version"]),
        ("wrk", PathBuf::from("wrk"), &["-v"]),
    ];
    programs
        .iter()
        .map(|(name, program, args)| {
            let program = which(&program.to_string_lossy()).unwrap_or_else(|| program.clone());
            let version = Command::new(&program)
                .args(*args)
                .output()
                .ok()
                // nginx prints its version on stderr, the others on stdout.
                .and_then(|out| {
                    version_in(&String::from_utf8_lossy(&[out.stdout, out.stderr].concat()))
                })
                .unwrap_or_else(|| "(version unknown)".into());
            format!("{name} {version}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first word of `text` (split at spaces and `/`) that starts like `1.2` or `v1.2`, up to
/// its first character that is not a digit or dot.
fn version_in(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || c == '/')
        .map(|word| {
            let digits = word.strip_prefix('v').unwrap_or(word);
            let end = digits
                .find(|c: char| !c.is_ascii_digit() && c != '.')
                .unwrap_or(digits.len());
            (word, &digits[..end])
        })
        .find(|(_, v)| v.contains('.') && v.starts_with(|c: char| c.is_ascii_digit()))
        .map(|(word, v)| {
            if word.starts_with('v') {
                format!("v{v}")
            } else {
                v.to_string()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::version_in;

    #[test]
    fn versions_are_found() {
        assert_eq!(
            version_in("nginx version: nginx/1.22.1").as_deref(),
            Some("1.22.1")
        );
        assert_eq!(
            version_in("wireguard-go v0.0.20220316\n").as_deref(),
            Some("v0.0.20220316")
        );
        assert_eq!(
            version_in("rathole \nBuild Timestamp:  2026-11-23T16:21:05Z\nBuild Version:  0.5.0")
                .as_deref(),
            Some("0.5.0")
        );
        assert_eq!(
            version_in("wrk debian/4.1.0-3+b2 [epoll]").as_deref(),
            Some("4.1.0")
        );
    }
}
