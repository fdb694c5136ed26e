//! rathole: server on the VPS, client on the home host (dialling out), one service to nginx;
//! with its plain TCP transport or its noise transport.

use super::daemon::Daemon;
use super::measure::{wait_ok, Target};
use super::nginx;
use crate::lab::Host;
use anyhow::{Context, Result};
use std::path::Path;
use std::time::Duration;

/// rathole's transport between client and server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain TCP.
    Tcp,
    /// Noise protocol (Noise_NK_25519_ChaChaPoly_BLAKE2s).
    Noise,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Noise => "noise",
        }
    }

    /// The VPS ports: (control, service).
    fn ports(self) -> (u16, u16) {
        match self {
            Self::Tcp => (2333, 9000),
            Self::Noise => (2334, 9001),
        }
    }
}

/// A running rathole tunnel.
#[derive(Debug)]
pub struct Rathole {
    /// The server, on the VPS.
    pub server: Daemon,
    /// The client, on the home host.
    pub client: Daemon,
}

/// Where a client reaches the service of `transport` on `vps`.
pub fn target(vps: &Host, transport: Transport) -> Target {
    Target {
        base: format!("http://{}:{}", vps.addr, transport.ports().1),
        host_header: None,
    }
}

/// A noise key pair from `rathole --genkey`: (private, public).
async fn keypair(program: &Path) -> Result<(String, String)> {
    let program = program.to_string_lossy();
    let out = super::daemon::run_local(&program, &["--genkey"]).await?;
    let after = |label: &str| {
        let mut lines = out.lines().map(str::trim);
        lines.find(|l| l.starts_with(label))?;
        lines.find(|l| !l.is_empty()).map(String::from)
    };
    Ok((
        after("Private Key").context("no private key from rathole --genkey")?,
        after("Public Key").context("no public key from rathole --genkey")?,
    ))
}

/// Starts server and client and waits until the service serves the small file to `visitor`.
pub async fn start(
    program: &Path,
    transport: Transport,
    vps: &Host,
    home: &Host,
    visitor: &Host,
    dir: &Path,
) -> Result<Rathole> {
    let (control, service) = transport.ports();
    let kind = transport.name();
    let (server_noise, client_noise) = match transport {
        Transport::Tcp => (String::new(), String::new()),
        Transport::Noise => {
            let (private, public) = keypair(program).await?;
            (
                format!("[server.transport.noise]\nlocal_private_key = \"{private}\"\n"),
                format!("[client.transport.noise]\nremote_public_key = \"{public}\"\n"),
            )
        }
    };
    let server_conf = format!(
        "[server]\nbind_addr = \"0.0.0.0:{control}\"\n[server.transport]\ntype = \"{kind}\"\n{server_noise}\
         [server.services.nginx]\ntoken = \"hearth-bench\"\nbind_addr = \"0.0.0.0:{service}\"\n"
    );
    let client_conf = format!(
        "[client]\nremote_addr = \"{}:{control}\"\n[client.transport]\ntype = \"{kind}\"\n{client_noise}\
         [client.services.nginx]\ntoken = \"hearth-bench\"\nlocal_addr = \"127.0.0.1:{}\"\n",
        vps.addr,
        nginx::PORT
    );
    let server_path = dir.join(format!("rathole-{kind}-server.toml"));
    let client_path = dir.join(format!("rathole-{kind}-client.toml"));
    std::fs::write(&server_path, server_conf)?;
    std::fs::write(&client_path, client_conf)?;
    let server_arg = server_path.to_string_lossy().into_owned();
    let client_arg = client_path.to_string_lossy().into_owned();
    let mut server = Daemon::start(
        vps,
        &format!("rathole {kind} server"),
        program,
        &["--server", &server_arg],
        &[],
        dir.join(format!("rathole-{kind}-server.log")),
    )?;
    let mut client = Daemon::start(
        home,
        &format!("rathole {kind} client"),
        program,
        &["--client", &client_arg],
        &[],
        dir.join(format!("rathole-{kind}-client.log")),
    )?;
    if let Err(e) = wait_ok(
        visitor,
        &target(vps, transport),
        nginx::SMALL,
        Duration::from_secs(20),
    )
    .await
    {
        server.check_alive()?;
        client.check_alive()?;
        return Err(e.context(format!("rathole {kind}")));
    }
    Ok(Rathole { server, client })
}
