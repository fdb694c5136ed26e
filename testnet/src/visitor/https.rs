//! HTTPS visitors: `probe https` (one request over TLS to a chosen address with a chosen name,
//! HTTP/2 or HTTP/1.1 by ALPN, trusting a given root such as Pebble's), `probe wss-echo`
//! (WebSocket echo over TLS), and `probe https-loop` (requests over fresh connections to
//! several edges in turn until told to stop, recording the certificates seen).
//!
//! The library functions are what in-process tests and the benchmark call directly.

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// What to offer in ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Alpn {
    /// `h2` then `http/1.1`, as browsers do.
    Both,
    /// HTTP/2 only.
    H2,
    /// HTTP/1.1 only.
    Http1,
}

impl Alpn {
    fn protocols(self) -> Vec<Vec<u8>> {
        match self {
            Alpn::Both => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            Alpn::H2 => vec![b"h2".to_vec()],
            Alpn::Http1 => vec![b"http/1.1".to_vec()],
        }
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct TlsTarget {
    /// `IP:PORT` to connect to.
    pub connect: String,
    /// SNI and Host.
    pub name: String,
    /// The roots to trust; `None` accepts any certificate (self-signed stand-ins).
    pub roots: Option<Arc<RootCertStore>>,
}

impl TlsTarget {
    /// `name` at `addr`, accepting any certificate (the self-signed stand-ins).
    pub fn any_cert(addr: std::net::SocketAddr, name: &str) -> Self {
        Self {
            connect: addr.to_string(),
            name: name.into(),
            roots: None,
        }
    }
}

impl LoopArgs {
    /// Starts `probe https-loop` with these arguments on a lab host, its report on a pipe for
    /// [`stop_loop`].
    pub fn spawn_in(&self, host: &crate::lab::Host, probe: &Path) -> Result<tokio::process::Child> {
        let mut cmd = host.command(probe);
        cmd.args(["probe", "https-loop"]);
        for connect in &self.connect {
            cmd.arg("--connect").arg(connect);
        }
        cmd.arg("--name").arg(&self.name);
        cmd.arg("--ca").arg(&self.ca);
        cmd.arg("--ready-file").arg(&self.ready_file);
        cmd.arg("--stop-file").arg(&self.stop_file);
        cmd.arg("--max-secs").arg(self.max_secs.to_string());
        cmd.arg("--pause-ms").arg(self.pause_ms.to_string());
        if let Some(progress) = &self.progress_file {
            cmd.arg("--progress-file").arg(progress);
        }
        cmd.stdout(std::process::Stdio::piped())
            .spawn()
            .context("starting probe https-loop")
    }
}

/// Stops a running `probe https-loop` (writes its stop file, waits for it) and returns its
/// report and everything it printed.
pub async fn stop_loop(
    looping: &mut tokio::process::Child,
    stop_file: &Path,
) -> Result<(LoopReport, String)> {
    use tokio::io::AsyncReadExt;
    std::fs::write(stop_file, b"stop")?;
    let mut out = String::new();
    looping
        .stdout
        .take()
        .context("no stdout")?
        .read_to_string(&mut out)
        .await?;
    let _ = looping.wait().await;
    let report: LoopReport = out.lines().next().unwrap_or_default().parse()?;
    Ok((report, out))
}

/// What the server showed of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The negotiated protocol (`h2`, `http/1.1`, or `none`).
    pub proto: String,
    /// The leaf's issuer, as text.
    pub issuer: String,
    /// The leaf's serial, hex.
    pub serial: String,
    /// The leaf's DNS names.
    pub names: Vec<String>,
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The server.
    pub peer: Peer,
    /// The status code.
    pub status: u16,
    /// The HTTP version of the answer.
    pub version: Version,
    /// The body.
    pub body: Bytes,
    /// The headers, lowercase names.
    pub headers: BTreeMap<String, String>,
}

/// The roots in a PEM file.
pub fn roots_from(path: &Path) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading {}", path.display()))?
    {
        roots.add(cert?)?;
    }
    ensure!(!roots.is_empty(), "{} holds no certificate", path.display());
    Ok(Arc::new(roots))
}

/// Accepts any certificate: for self-signed stand-ins, where the test checks what it got.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client configuration for `target` offering `alpn`.
pub fn client_config(target: &TlsTarget, alpn: Alpn) -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let mut config = match &target.roots {
        Some(roots) => builder
            .with_root_certificates(roots.clone())
            .with_no_client_auth(),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
            .with_no_client_auth(),
    };
    config.alpn_protocols = alpn.protocols();
    Ok(Arc::new(config))
}

/// Connects and completes the TLS handshake.
pub async fn connect(
    target: &TlsTarget,
    config: Arc<ClientConfig>,
) -> Result<(TlsStream<TcpStream>, Peer)> {
    let tcp = TcpStream::connect(&target.connect)
        .await
        .with_context(|| format!("connecting to {}", target.connect))?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(target.name.clone())?;
    let tls = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .with_context(|| format!("TLS handshake with {} for {}", target.connect, target.name))?;
    let peer = peer_of(&tls)?;
    Ok((tls, peer))
}

fn peer_of(tls: &TlsStream<TcpStream>) -> Result<Peer> {
    let (_, conn) = tls.get_ref();
    let proto = conn
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_else(|| "none".into());
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .context("the server sent no certificate")?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| anyhow::anyhow!("the server's certificate does not parse: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                names.push(dns.to_string());
            }
        }
    }
    Ok(Peer {
        proto,
        issuer: cert.issuer().to_string(),
        serial: hex::encode(cert.tbs_certificate.raw_serial()),
        names,
    })
}

/// One GET of `path` over a new connection.
pub async fn fetch(target: &TlsTarget, alpn: Alpn, path: &str) -> Result<Fetched> {
    let config = client_config(target, alpn)?;
    let (tls, peer) = connect(target, config).await?;
    let io = TokioIo::new(tls);
    let h2 = peer.proto == "h2";
    let request = |version| {
        Request::builder()
            .uri(if h2 {
                format!("https://{}{path}", target.name)
            } else {
                path.to_string()
            })
            .version(version)
            .header(hyper::header::HOST, &target.name)
            .body(Empty::<Bytes>::new())
    };
    let response = if h2 {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(connection);
        let mut req = request(Version::HTTP_2)?;
        req.headers_mut().remove(hyper::header::HOST);
        sender.send_request(req).await?
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(connection);
        sender.send_request(request(Version::HTTP_11)?).await?
    };
    let status = response.status().as_u16();
    let version = response.version();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Fetched {
        peer,
        status,
        version,
        body,
        headers,
    })
}

/// Arguments of `probe https`.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpsArgs {
    /// `IP:PORT` to connect to.
    #[arg(long)]
    pub connect: String,
    /// The name: SNI and Host.
    #[arg(long)]
    pub name: String,
    /// Path and query.
    #[arg(long, default_value = "/")]
    pub path: String,
    /// PEM roots to trust; without it any certificate is accepted (and `verified=false`).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// What to offer in ALPN.
    #[arg(long, value_enum, default_value_t = Alpn::Both)]
    pub alpn: Alpn,
    /// The status the answer must have.
    #[arg(long, default_value_t = 200)]
    pub expect_status: u16,
    /// Give up after this long.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Also write the whole body to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs `probe https`: prints `status=S proto=P verified=B serial=X issuer=… names=…`, then
/// the headers as `header NAME: VALUE` lines, then the body (up to 4 KiB).
pub async fn run(args: &HttpsArgs) -> Result<()> {
    let target = TlsTarget {
        connect: args.connect.clone(),
        name: args.name.clone(),
        roots: args.ca.as_deref().map(roots_from).transpose()?,
    };
    let limit = Duration::from_millis(args.timeout_ms);
    let got = match tokio::time::timeout(limit, fetch(&target, args.alpn, &args.path)).await {
        Ok(got) => got?,
        Err(_) => bail!("no answer from {} within {limit:?}", args.connect),
    };
    println!(
        "status={} proto={} verified={} serial={} issuer={} names={}",
        got.status,
        got.peer.proto,
        target.roots.is_some(),
        got.peer.serial,
        got.peer.issuer,
        got.peer.names.join(",")
    );
    for (name, value) in &got.headers {
        println!("header {name}: {value}");
    }
    if let Some(out) = &args.out {
        std::fs::write(out, &got.body).with_context(|| format!("writing {}", out.display()))?;
    }
    let shown = &got.body[..got.body.len().min(4096)];
    println!("{}", String::from_utf8_lossy(shown));
    ensure!(
        got.status == args.expect_status,
        "status {}, expected {}",
        got.status,
        args.expect_status
    );
    Ok(())
}

/// `probe wss-echo`: `count` WebSocket messages over TLS (ALPN http/1.1), each checked
/// against its echo. Prints `echoed COUNT messages in MS ms serial=X`.
pub async fn wss_echo(target: &TlsTarget, path: &str, count: u64, limit: Duration) -> Result<()> {
    let start = Instant::now();
    let run = async {
        let config = client_config(target, Alpn::Http1)?;
        let (tls, peer) = connect(target, config).await?;
        let request = format!("wss://{}{path}", target.name).into_client_request()?;
        let (mut ws, _) = tokio_tungstenite::client_async(request, tls)
            .await
            .context("WebSocket handshake over TLS")?;
        super::ws::echo_messages(&mut ws, count).await?;
        ws.close(None).await?;
        Ok::<_, anyhow::Error>(peer)
    };
    let peer = match tokio::time::timeout(limit, run).await {
        Ok(peer) => peer?,
        Err(_) => bail!("the {count} echoes did not come back within {limit:?}"),
    };
    println!(
        "echoed {count} messages in {} ms serial={}",
        start.elapsed().as_millis(),
        peer.serial
    );
    Ok(())
}

/// Arguments of `probe https-loop`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoopArgs {
    /// `IP:PORT` of each edge, visited in turn.
    #[arg(long, required = true)]
    pub connect: Vec<String>,
    /// SNI and Host.
    #[arg(long)]
    pub name: String,
    /// PEM roots to trust.
    #[arg(long)]
    pub ca: PathBuf,
    /// Written once every edge has answered.
    #[arg(long)]
    pub ready_file: PathBuf,
    /// The loop ends when this file appears.
    #[arg(long)]
    pub stop_file: PathBuf,
    /// The loop ends after this long in any case.
    #[arg(long, default_value_t = 300)]
    pub max_secs: u64,
    /// Pause between requests.
    #[arg(long, default_value_t = 20)]
    pub pause_ms: u64,
    /// Rewritten with the report line after every request.
    #[arg(long)]
    pub progress_file: Option<PathBuf>,
}

/// Runs `probe https-loop`: GETs over a new TLS connection each (so each sees the certificate
/// served at that moment), edges in turn; prints
/// `requests=N failures=N serials=EDGE=S|S,… served=EDGE=N,… failed=EDGE=N,…` and then up to
/// 10 `failure …` lines per edge. With `--progress-file`, that first line is also rewritten
/// there after every request, so a test can watch the loop while it runs.
pub async fn https_loop(args: &LoopArgs) -> Result<()> {
    let roots = roots_from(&args.ca)?;
    let end = Instant::now() + Duration::from_secs(args.max_secs);
    let mut report = LoopReport {
        requests: 0,
        failures: 0,
        serials: BTreeMap::new(),
        served: args.connect.iter().map(|e| (e.clone(), 0)).collect(),
        failed: args.connect.iter().map(|e| (e.clone(), 0)).collect(),
    };
    let mut failures: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut answered = std::collections::BTreeSet::new();
    while Instant::now() < end && !args.stop_file.exists() {
        for edge in &args.connect {
            let target = TlsTarget {
                connect: edge.clone(),
                name: args.name.clone(),
                roots: Some(roots.clone()),
            };
            report.requests += 1;
            let got =
                tokio::time::timeout(Duration::from_secs(5), fetch(&target, Alpn::Both, "/")).await;
            let failure = match got {
                Ok(Ok(got)) if got.status == 200 => {
                    let seen = report.serials.entry(edge.clone()).or_default();
                    if seen.last() != Some(&got.peer.serial) {
                        seen.push(got.peer.serial.clone());
                    }
                    *report.served.entry(edge.clone()).or_default() += 1;
                    if answered.insert(edge.clone()) && answered.len() == args.connect.len() {
                        std::fs::write(&args.ready_file, b"ready")?;
                    }
                    None
                }
                Ok(Ok(got)) => Some(format!("status {}", got.status)),
                Ok(Err(e)) => Some(format!("{e:#}")),
                Err(_) => Some("no answer in 5 s".to_string()),
            };
            if let Some(failure) = failure {
                report.failures += 1;
                *report.failed.entry(edge.clone()).or_default() += 1;
                let kept = failures.entry(edge.clone()).or_default();
                if kept.len() < 10 {
                    kept.push(format!("{edge}: {failure}"));
                }
            }
            if let Some(path) = &args.progress_file {
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, report.to_string())?;
                std::fs::rename(&tmp, path)?;
            }
            tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
        }
    }
    println!("{report}");
    for failure in failures.values().flatten() {
        println!("failure {failure}");
    }
    Ok(())
}

/// A loop report as [`https_loop`] prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopReport {
    /// Requests sent.
    pub requests: u64,
    /// Requests that failed.
    pub failures: u64,
    /// The serials each edge served, in the order seen.
    pub serials: BTreeMap<String, Vec<String>>,
    /// Requests each edge answered 200.
    pub served: BTreeMap<String, u64>,
    /// Requests that failed at each edge.
    pub failed: BTreeMap<String, u64>,
}

impl std::fmt::Display for LoopReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |map: &BTreeMap<String, u64>| -> String {
            map.iter()
                .map(|(edge, n)| format!("{edge}={n}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let serials: Vec<String> = self
            .serials
            .iter()
            .map(|(edge, s)| format!("{edge}={}", s.join("|")))
            .collect();
        write!(
            f,
            "requests={} failures={} serials={} served={} failed={}",
            self.requests,
            self.failures,
            serials.join(","),
            list(&self.served),
            list(&self.failed)
        )
    }
}

impl std::str::FromStr for LoopReport {
    type Err = anyhow::Error;

    fn from_str(line: &str) -> Result<Self> {
        let mut report = LoopReport {
            requests: 0,
            failures: 0,
            serials: BTreeMap::new(),
            served: BTreeMap::new(),
            failed: BTreeMap::new(),
        };
        let counts = |list: &str| -> Result<BTreeMap<String, u64>> {
            list.split(',')
                .filter(|e| !e.is_empty())
                .map(|entry| {
                    let (edge, n) = entry
                        .split_once('=')
                        .with_context(|| format!("bad count entry `{entry}`"))?;
                    Ok((edge.to_string(), n.parse()?))
                })
                .collect()
        };
        for field in line.split_whitespace() {
            match field.split_once('=') {
                Some(("requests", n)) => report.requests = n.parse()?,
                Some(("failures", n)) => report.failures = n.parse()?,
                Some(("serials", list)) => {
                    for entry in list.split(',').filter(|e| !e.is_empty()) {
                        let (edge, serials) = entry
                            .split_once('=')
                            .with_context(|| format!("bad serials entry `{entry}`"))?;
                        report.serials.insert(
                            edge.to_string(),
                            serials.split('|').map(String::from).collect(),
                        );
                    }
                }
                Some(("served", list)) => report.served = counts(list)?,
                Some(("failed", list)) => report.failed = counts(list)?,
                _ => bail!("unexpected field `{field}` in `{line}`"),
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_reports_read_back() {
        let report: LoopReport = "requests=12 failures=0 serials=1.2.3.4:443=aa|bb,5.6.7.8:443=bb"
            .parse()
            .unwrap();
        assert_eq!(report.requests, 12);
        assert_eq!(report.serials["1.2.3.4:443"], vec!["aa", "bb"]);
        assert_eq!(report.serials["5.6.7.8:443"], vec!["bb"]);
        assert!("requests=x".parse::<LoopReport>().is_err());
        let line = "requests=4 failures=1 serials=1.2.3.4:443=aa served=1.2.3.4:443=2,5.6.7.8:443=1 failed=1.2.3.4:443=0,5.6.7.8:443=1";
        let report: LoopReport = line.parse().unwrap();
        assert_eq!(report.served["1.2.3.4:443"], 2);
        assert_eq!(report.failed["5.6.7.8:443"], 1);
        assert_eq!(report.to_string(), line);
    }
}
