//! A real ACME CA in a lab: Debian's Pebble (2.4) on a lab host, started as the HTTPS tests
//! need it: `-strict`, no validation sleeps (`PEBBLE_VA_NOSLEEP=1`), no bad-nonce rejections,
//! no authorization reuse (every order is validated), validating on ports 80 and 443, and
//! resolving names through `-dnsserver` (an edge's own DNS). The package ships no certificate
//! for its API, so one is made here, signed by a test CA whose file the nodes get as
//! `acme.ca_file`. Pebble's issuing root, which visitors must trust, is fetched from its
//! management API (`/roots/0`) by a probe on the client host.

use super::topology::Host;
use crate::eventually::eventually;
use anyhow::{ensure, Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Child;

/// Pebble's ACME port.
pub const ACME_PORT: u16 = 14000;
/// Pebble's management port (roots, intermediates).
pub const MANAGEMENT_PORT: u16 = 15000;

/// A running Pebble.
#[derive(Debug)]
pub struct Pebble {
    /// The ACME directory URL.
    pub directory: String,
    /// The CA that signed Pebble's own HTTPS certificate (for `acme.ca_file`).
    pub api_ca: PathBuf,
    /// Where its log goes.
    pub log: PathBuf,
    host: Host,
    child: Option<Child>,
}

/// The test CA and Pebble's API certificate for `ip`, as PEM files in `dir`:
/// (CA certificate, API certificate, API key).
fn api_certificate(ip: std::net::Ipv4Addr, dir: &Path) -> Result<(PathBuf, PathBuf, PathBuf)> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "Hearth lab test CA for Pebble's API",
    );
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = ca_params.self_signed(&ca_key)?;
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec![ip.to_string()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "pebble");
    let cert = params.signed_by(&key, &ca, &ca_key)?;
    let paths = (
        dir.join("pebble-api-ca.pem"),
        dir.join("pebble-api-cert.pem"),
        dir.join("pebble-api-key.pem"),
    );
    std::fs::write(&paths.0, ca.pem())?;
    std::fs::write(&paths.1, cert.pem())?;
    std::fs::write(&paths.2, key.serialize_pem())?;
    Ok(paths)
}

/// `program` on `$PATH`.
fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

impl Pebble {
    /// Starts Pebble on `host`, resolving through the DNS server at `dns`, with its files in
    /// `dir`; returns once its directory answers.
    pub async fn start(host: &Host, dns: SocketAddr, dir: &Path, probe: &Path) -> Result<Self> {
        let program = which("pebble").context(
            "pebble is not installed (scripts/test.sh installs it: apt-get install pebble)",
        )?;
        let (api_ca, cert, key) = api_certificate(host.addr, dir)?;
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("0.0.0.0:{ACME_PORT}"),
                "managementListenAddress": format!("0.0.0.0:{MANAGEMENT_PORT}"),
                "certificate": cert,
                "privateKey": key,
                "httpPort": 80,
                "tlsPort": 443,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
            }
        });
        let config_path = dir.join("pebble-config.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
        let mut pebble = Self {
            directory: format!("https://{}:{ACME_PORT}/dir", host.addr),
            api_ca,
            log: dir.join("pebble.log"),
            host: host.clone(),
            child: None,
        };
        pebble.run(&program, &config_path, dns)?;
        let directory = pebble.directory.clone();
        eventually("Pebble answers", Duration::from_secs(30), || async {
            pebble
                .get(host, probe, ACME_PORT, "/dir", None)
                .await
                .with_context(|| format!("GET {directory}"))
        })
        .await?;
        Ok(pebble)
    }

    fn run(&mut self, program: &Path, config: &Path, dns: SocketAddr) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = self
            .host
            .command(program)
            .args(["-strict", "-config"])
            .arg(config)
            .args(["-dnsserver", &dns.to_string()])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .context("starting pebble")?;
        self.child = Some(child);
        Ok(())
    }

    /// Fetches Pebble's issuing root (`/roots/0`) into `path`, from `client`.
    pub async fn fetch_root(&self, client: &Host, probe: &Path, path: &Path) -> Result<()> {
        self.get(client, probe, MANAGEMENT_PORT, "/roots/0", Some(path))
            .await?;
        let pem = std::fs::read_to_string(path)?;
        ensure!(
            pem.contains("BEGIN CERTIFICATE"),
            "not a certificate: {pem}"
        );
        Ok(())
    }

    /// `GET path` of Pebble's `port` from `from`, trusting the API's CA; the body goes to
    /// `out` if given.
    async fn get(
        &self,
        from: &Host,
        probe: &Path,
        port: u16,
        path: &str,
        out: Option<&Path>,
    ) -> Result<()> {
        let connect = format!("{}:{port}", self.host.addr);
        let name = self.host.addr.to_string();
        let ca = self.api_ca.to_string_lossy().into_owned();
        let mut args = vec![
            "probe",
            "https",
            "--connect",
            &connect,
            "--name",
            &name,
            "--ca",
            &ca,
            "--path",
            path,
            "--timeout-ms",
            "2000",
        ];
        let out = out.map(|o| o.to_string_lossy().into_owned());
        if let Some(out) = &out {
            args.extend(["--out", out.as_str()]);
        }
        from.run(probe, &args).await.map(|_| ())
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Orders placed so far (`POST /order-plz` requests that created one).
    pub fn orders(&self) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.contains("POST /order-plz"))
            .count()
    }

    /// Certificates issued so far.
    pub fn issued(&self) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.contains("Issued certificate serial"))
            .count()
    }

    /// Kills it (as a CA that is down).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// `result`, with the tail of Pebble's log added to an error.
    pub fn explain_err<T>(&self, result: Result<T>) -> Result<T> {
        result.map_err(|e| {
            let text = self.log_text();
            let lines: Vec<&str> = text.lines().collect();
            e.context(format!(
                "Pebble's log ends:\n{}",
                lines[lines.len().saturating_sub(20)..].join("\n")
            ))
        })
    }
}
