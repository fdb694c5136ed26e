//! The seed stack: Caddy on the VPS reverse-proxying through a wireguard-go tunnel that the
//! home dials out (persistent keepalive), to nginx on the home host; plain HTTP on one port
//! and, from the same Caddy, HTTPS with its internal CA (`tls internal`) on another.

use super::daemon::{wait_for_file, Daemon};
use super::install::which;
use super::measure::{wait_ok, Target};
use super::nginx;
use super::tls::Endpoint;
use crate::lab::Host;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Caddy's port on the VPS.
pub const CADDY_PORT: u16 = 8080;
/// Caddy's HTTPS port on the VPS (its site for the published name, `tls internal`).
pub const CADDY_TLS_PORT: u16 = 8443;
/// WireGuard's UDP port on the VPS.
const WG_PORT: u16 = 51820;
/// Overlay addresses: the VPS end and the home end.
const WG_VPS: &str = "198.19.200.1";
const WG_HOME: &str = "198.19.200.2";

/// The running seed stack.
#[derive(Debug)]
pub struct Seed {
    /// Caddy on the VPS.
    pub caddy: Daemon,
    /// wireguard-go on the VPS.
    pub wg_vps: Daemon,
    /// wireguard-go on the home host.
    pub wg_home: Daemon,
    sockets: Vec<PathBuf>,
}

impl Drop for Seed {
    fn drop(&mut self) {
        // wireguard-go removes its control socket on a clean exit only; these are killed.
        for socket in &self.sockets {
            let _ = std::fs::remove_file(socket);
        }
    }
}

/// Where wireguard-go keeps the control socket of interface `ifname`: one directory for every
/// namespace, so each interface needs a name of its own.
fn socket_of(ifname: &str) -> PathBuf {
    Path::new("/var/run/wireguard").join(format!("{ifname}.sock"))
}

/// A WireGuard key pair: (private, public), base64.
async fn keypair() -> Result<(String, String)> {
    let private = super::daemon::run_local("wg", &["genkey"]).await?;
    let mut child = tokio::process::Command::new("wg")
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    stdin.write_all(private.as_bytes()).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    Ok((
        private.trim().to_string(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    ))
}

/// One end: starts wireguard-go for `ifname` on `host`, configures it with `wg set ARGS`
/// and gives it overlay address `addr`.
async fn wg_end(
    host: &Host,
    ifname: &str,
    private: &str,
    wg_args: &[&str],
    addr: &str,
    dir: &Path,
) -> Result<Daemon> {
    let socket = socket_of(ifname);
    let _ = std::fs::remove_file(&socket);
    let program = which("wireguard-go").context("wireguard-go is not installed")?;
    let mut daemon = Daemon::start(
        host,
        &format!("wireguard-go on {}", host.name),
        &program,
        &["-f", ifname],
        &[],
        dir.join(format!("{ifname}.log")),
    )?;
    if let Err(e) = wait_for_file(&socket, Duration::from_secs(10)).await {
        daemon.check_alive()?;
        return Err(e);
    }
    let key_file = dir.join(format!("{ifname}.key"));
    std::fs::write(&key_file, private)?;
    let key = key_file.to_string_lossy().into_owned();
    let mut args = vec!["set", ifname, "private-key", &key];
    args.extend_from_slice(wg_args);
    host.run(Path::new("wg"), &args).await?;
    let ip = Path::new("ip");
    let cidr = format!("{addr}/24");
    host.run(ip, &["addr", "add", &cidr, "dev", ifname]).await?;
    host.run(ip, &["link", "set", ifname, "up"]).await?;
    Ok(daemon)
}

/// Starts the tunnel and Caddy, and waits until Caddy serves the small file to `client`.
pub async fn start(vps: &Host, home: &Host, client: &Host, dir: &Path) -> Result<Seed> {
    let (vps_private, vps_public) = keypair().await?;
    let (home_private, home_public) = keypair().await?;
    // Interface names are at most 15 bytes; the pid keeps concurrent runs apart.
    let pid = std::process::id();
    let (if_vps, if_home) = (format!("hwv{pid}"), format!("hwh{pid}"));
    let mut sockets = vec![socket_of(&if_vps)];
    let port = WG_PORT.to_string();
    let home_allowed = format!("{WG_HOME}/32");
    let wg_vps = wg_end(
        vps,
        &if_vps,
        &vps_private,
        &[
            "listen-port",
            &port,
            "peer",
            &home_public,
            "allowed-ips",
            &home_allowed,
        ],
        WG_VPS,
        dir,
    )
    .await?;
    sockets.push(socket_of(&if_home));
    let endpoint = format!("{}:{WG_PORT}", vps.addr);
    let vps_allowed = format!("{WG_VPS}/32");
    let wg_home = wg_end(
        home,
        &if_home,
        &home_private,
        &[
            "peer",
            &vps_public,
            "endpoint",
            &endpoint,
            "allowed-ips",
            &vps_allowed,
            "persistent-keepalive",
            "25",
        ],
        WG_HOME,
        dir,
    )
    .await?;
    let caddy = start_caddy(vps, dir).await?;
    let mut seed = Seed {
        caddy,
        wg_vps,
        wg_home,
        sockets,
    };
    let through = Target {
        base: format!("http://{WG_HOME}:{}", nginx::PORT),
        host_header: None,
    };
    wait_ok(vps, &through, nginx::SMALL, Duration::from_secs(20))
        .await
        .context("nginx through the WireGuard tunnel")?;
    if let Err(e) = wait_ok(client, &target(vps), nginx::SMALL, Duration::from_secs(20)).await {
        seed.caddy.check_alive()?;
        return Err(e.context("caddy"));
    }
    Ok(seed)
}

/// Where a client reaches the seed stack.
pub fn target(vps: &Host) -> Target {
    Target {
        base: format!("http://{}:{CADDY_PORT}", vps.addr),
        host_header: None,
    }
}

/// Where a client reaches the seed stack over HTTPS: Caddy's TLS site for the name the
/// Hearth route is published under, so both HTTPS paths serve the same name.
pub fn tls_endpoint(vps: &Host) -> Endpoint {
    Endpoint {
        name: super::hearth::ROUTE_HOST,
        addr: vps.addr,
        port: CADDY_TLS_PORT,
    }
}

/// The Caddyfile: no admin endpoint; automatic HTTPS only for the `tls internal` site (its
/// own CA, so no ACME and no internet), without the `:80` redirect listener (Hearth holds
/// `:80` on the VPS) and without installing its root into the system's trust stores.
fn caddyfile() -> String {
    let upstream = format!("{WG_HOME}:{}", nginx::PORT);
    let name = super::hearth::ROUTE_HOST;
    format!(
        "{{\n\tadmin off\n\tauto_https disable_redirects\n\tskip_install_trust\n}}\n\n\
         http://:{CADDY_PORT} {{\n\treverse_proxy {upstream}\n}}\n\n\
         https://{name}:{CADDY_TLS_PORT} {{\n\ttls internal\n\treverse_proxy {upstream}\n}}\n"
    )
}

async fn start_caddy(vps: &Host, dir: &Path) -> Result<Daemon> {
    let home = dir.join("caddy-home");
    std::fs::create_dir_all(&home)?;
    let conf = caddyfile();
    let conf_path = dir.join("Caddyfile");
    std::fs::write(&conf_path, conf)?;
    let conf_arg = conf_path.to_string_lossy().into_owned();
    let program = which("caddy").context("caddy is not installed")?;
    Daemon::start(
        vps,
        "caddy",
        &program,
        &["run", "--adapter", "caddyfile", "--config", &conf_arg],
        &[
            ("HOME", &home),
            ("XDG_CONFIG_HOME", &home),
            ("XDG_DATA_HOME", &home),
        ],
        dir.join("caddy.log"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caddy_never_asks_the_internet() {
        let conf = caddyfile();
        assert!(conf.contains("\tadmin off\n"), "{conf}");
        assert!(conf.contains("\tauto_https disable_redirects\n"), "{conf}");
        assert!(conf.contains("\tskip_install_trust\n"), "{conf}");
        assert!(conf.contains("http://:8080 {"), "{conf}");
        assert!(
            conf.contains("https://bench.hearth.test:8443 {\n\ttls internal\n"),
            "{conf}"
        );
        assert_eq!(conf.matches("reverse_proxy 198.19.200.2:8000").count(), 2);
    }
}
