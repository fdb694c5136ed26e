//! HTTP strictness at the edge, in one process on 127.0.0.1, with raw bytes over real
//! sockets: a request with two Host lines gets 400, CONNECT and TRACE get 405, an
//! absolute-form target is routed by its authority (which replaces Host), a kept-alive
//! connection lives past the header read timeout until the idle timeout, and the edge's error
//! pages carry a request id and nothing of its internals (those go to the log and to
//! `hearthctl status`, with the id).
//! Each backend records every request head it gets, so a refused request is shown never to
//! have reached it. The same rules over HTTPS are checked at the end.

use anyhow::{bail, ensure, Context, Result};
use hearth_proto::api::{CommandV1, ResponseV1};
use hearth_proto::route::{RouteSpec, RouteTls};
use hearth_testnet::eventually::{eventually, CONVERGE};
use hearth_testnet::local::LocalMesh;
use hearth_testnet::visitor::https::{self, Alpn, TlsTarget};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Longest any single exchange may take before the test gives up (a hang guard, not a
/// measurement).
const HANG: Duration = Duration::from_secs(60);

/// The request heads a backend received, in order.
#[derive(Debug, Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn heads(&self) -> Vec<String> {
        self.0.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// The heads whose request line contains `marker`.
    fn with(&self, marker: &str) -> Vec<String> {
        self.heads()
            .into_iter()
            .filter(|h| h.lines().next().unwrap_or_default().contains(marker))
            .collect()
    }
}

/// A backend that records each request head and answers 200 with its name and that head
/// (CONNECT included, as a server that accepts tunnels would).
async fn recording_backend(name: &'static str) -> Result<(SocketAddr, Seen)> {
    let seen = Seen::default();
    let record = seen.clone();
    let addr = hearth_testnet::raw_backend::serve(move |head: &str, _| {
        if let Ok(mut heads) = record.0.lock() {
            heads.push(head.to_string());
        }
        format!("{name}\n{head}")
    })
    .await?;
    Ok((addr, seen))
}

/// One response as the visitor got it.
#[derive(Debug)]
struct Reply {
    status: u16,
    /// Lowercase names.
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Writes `raw` and reads one response (bodies with a content-length, which is what the
/// edge's pages and these backends send).
async fn exchange<S>(io: &mut BufReader<S>, raw: &str) -> Result<Reply>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio::time::timeout(HANG, async {
        io.get_mut().write_all(raw.as_bytes()).await?;
        io.get_mut().flush().await?;
        read_reply(io).await
    })
    .await
    .context("no answer (hang guard)")?
}

async fn read_reply<S: AsyncRead + Unpin>(io: &mut BufReader<S>) -> Result<Reply> {
    let mut status_line = String::new();
    if io.read_line(&mut status_line).await? == 0 {
        bail!("the edge closed the connection without an answer");
    }
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .with_context(|| format!("no status in {status_line:?}"))?
        .parse()?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if io.read_line(&mut line).await? == 0 {
            bail!("connection closed in the head");
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse())
        .transpose()?
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    io.read_exact(&mut body).await?;
    Ok(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

async fn visit(edge: SocketAddr) -> Result<BufReader<TcpStream>> {
    Ok(BufReader::new(TcpStream::connect(edge).await?))
}

/// A plain GET of `path` for `host`.
fn get(path: &str, host: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n")
}

async fn publish(mesh: &LocalMesh, on: usize, host: &str, target: SocketAddr) -> Result<()> {
    let command = CommandV1::Publish {
        spec: RouteSpec::Http { host: host.into() },
        target: target.to_string(),
        node: None,
        proxy_protocol: false,
        tls: RouteTls::Edge,
    };
    match mesh.call(on, command).await? {
        ResponseV1::Published(_) => Ok(()),
        other => bail!("publish {host}: {other:?}"),
    }
}

/// The edge's HTTP address once it serves `host` (answers 200 through it).
async fn serving(mesh: &LocalMesh, host: &str) -> Result<SocketAddr> {
    eventually(&format!("the edge serves {host}"), CONVERGE, || async {
        let edge = mesh.edge_http().await?;
        let reply = exchange(&mut visit(edge).await?, &get("/ready", host)).await?;
        ensure!(reply.status == 200, "{reply:?}");
        Ok(edge)
    })
    .await
}

/// A one-node mesh (the edge hosts the routes itself) serving `a.example.com` and
/// `b.example.com` from two recording backends.
async fn two_sites(change: impl FnOnce(&mut hearth_node::config::Config)) -> Result<Sites> {
    let mesh = LocalMesh::found_with(change).await?;
    let (a_addr, a) = recording_backend("site a").await?;
    let (b_addr, b) = recording_backend("site b").await?;
    publish(&mesh, 0, "a.example.com", a_addr).await?;
    publish(&mesh, 0, "b.example.com", b_addr).await?;
    serving(&mesh, "a.example.com").await?;
    let edge = serving(&mesh, "b.example.com").await?;
    Ok(Sites { mesh, edge, a, b })
}

struct Sites {
    mesh: LocalMesh,
    edge: SocketAddr,
    a: Seen,
    b: Seen,
}

#[tokio::test]
async fn two_host_headers_get_400_and_never_reach_a_backend() -> Result<()> {
    let Sites { mesh, edge, a, b } = two_sites(|_| {}).await?;
    for (second, what) in [("b.example.com", "different"), ("a.example.com", "equal")] {
        let raw = format!("GET /dup HTTP/1.1\r\nHost: a.example.com\r\nHost: {second}\r\n\r\n");
        let reply = exchange(&mut visit(edge).await?, &raw).await?;
        ensure!(reply.status == 400, "{what} Host lines: {reply:?}");
        ensure!(reply.body.contains("more than one Host"), "{reply:?}");
    }
    // The same request with one Host line goes through, so the backends do record.
    let reply = exchange(&mut visit(edge).await?, &get("/dup", "a.example.com")).await?;
    ensure!(reply.status == 200, "{reply:?}");
    ensure!(a.with("/dup").len() == 1, "site a saw {:?}", a.with("/dup"));
    ensure!(b.with("/dup").is_empty(), "site b saw {:?}", b.with("/dup"));
    mesh.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn connect_and_trace_are_refused_at_the_edge_with_405() -> Result<()> {
    let Sites { mesh, edge, a, .. } = two_sites(|_| {}).await?;
    for raw in [
        "CONNECT a.example.com:443 HTTP/1.1\r\nHost: a.example.com:443\r\n\r\n",
        "TRACE /trace HTTP/1.1\r\nHost: a.example.com\r\n\r\n",
    ] {
        let reply = exchange(&mut visit(edge).await?, raw).await?;
        ensure!(reply.status == 405, "{raw:?}: {reply:?}");
        let allow = reply.header("allow").unwrap_or_default();
        ensure!(
            allow.contains("GET") && !allow.contains("CONNECT"),
            "{reply:?}"
        );
    }
    // Other methods, extension methods included, are the target's business.
    let reply = exchange(
        &mut visit(edge).await?,
        "PROPFIND /dav HTTP/1.1\r\nHost: a.example.com\r\n\r\n",
    )
    .await?;
    ensure!(reply.status == 200, "{reply:?}");
    let methods: Vec<String> = a
        .heads()
        .iter()
        .filter_map(|h| h.split_whitespace().next().map(String::from))
        .collect();
    ensure!(
        !methods.iter().any(|m| m == "CONNECT" || m == "TRACE"),
        "the backend got {methods:?}"
    );
    ensure!(methods.iter().any(|m| m == "PROPFIND"), "{methods:?}");
    mesh.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_absolute_form_target_is_routed_by_its_authority_which_replaces_host() -> Result<()> {
    let Sites { mesh, edge, a, b } = two_sites(|_| {}).await?;
    let reply = exchange(
        &mut visit(edge).await?,
        "GET http://b.example.com/abs?x=1 HTTP/1.1\r\nHost: a.example.com\r\n\r\n",
    )
    .await?;
    ensure!(
        reply.status == 200 && reply.body.starts_with("site b\n"),
        "{reply:?}"
    );
    ensure!(a.with("/abs").is_empty(), "site a saw {:?}", a.with("/abs"));
    let heads = b.with("/abs");
    ensure!(heads.len() == 1, "site b saw {heads:?}");
    let head = heads[0].to_ascii_lowercase();
    // Origin form towards the target, one Host line: the authority's.
    ensure!(head.starts_with("get /abs?x=1 http/1.1\r\n"), "{head}");
    let hosts: Vec<&str> = head
        .lines()
        .filter_map(|l| l.strip_prefix("host:"))
        .map(str::trim)
        .collect();
    ensure!(hosts == ["b.example.com"], "{head}");
    // An absolute target with userinfo or another scheme is refused.
    for target in ["http://user@b.example.com/abs", "ftp://b.example.com/abs"] {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: b.example.com\r\n\r\n");
        let reply = exchange(&mut visit(edge).await?, &raw).await?;
        ensure!(reply.status == 400, "{target}: {reply:?}");
    }
    ensure!(b.with("/abs").len() == 1, "{:?}", b.with("/abs"));
    mesh.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_kept_alive_connection_outlives_the_header_timeout_until_the_idle_timeout() -> Result<()>
{
    const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
    const IDLE_TIMEOUT: Duration = Duration::from_secs(6);
    let Sites { mesh, edge, a, .. } = two_sites(|config| {
        config.ingress.header_read_timeout_ms = HEADER_TIMEOUT.as_millis() as u64;
        config.ingress.idle_timeout = IDLE_TIMEOUT;
    })
    .await?;
    let mut visitor = visit(edge).await?;
    let reply = exchange(&mut visitor, &get("/first", "a.example.com")).await?;
    ensure!(reply.status == 200, "{reply:?}");
    // Three header timeouts of silence: still open, and the next request is served on it.
    tokio::time::sleep(3 * HEADER_TIMEOUT).await;
    let reply = exchange(&mut visitor, &get("/second", "a.example.com"))
        .await
        .context("the kept-alive connection was closed before the idle timeout")?;
    ensure!(reply.status == 200, "{reply:?}");
    ensure!(a.with("/second").len() == 1, "{:?}", a.heads());
    // Silent past the idle timeout: the edge has closed it (EOF, no bytes).
    tokio::time::sleep(IDLE_TIMEOUT + Duration::from_secs(2)).await;
    let mut rest = Vec::new();
    let n = tokio::time::timeout(HANG, visitor.read_to_end(&mut rest))
        .await
        .context("still open long after the idle timeout (hang guard)")??;
    ensure!(
        n == 0,
        "unexpected bytes: {:?}",
        String::from_utf8_lossy(&rest)
    );
    mesh.shutdown().await;
    Ok(())
}

/// Everything logged in this test process, for the tests that look for a log line.
fn captured_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log: Arc<Mutex<Vec<u8>>> = Arc::default();
        let sink = log.clone();
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || Sink(sink.clone()))
            .try_init();
        log
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut log) = self.0.lock() {
            log.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The request id on an edge page (`Request id: ID`).
fn page_id(body: &str) -> Option<&str> {
    let rest = body.split("Request id: ").nth(1)?;
    rest.split('<').next()
}

#[tokio::test]
async fn error_pages_carry_a_request_id_and_no_internals_which_go_to_the_log() -> Result<()> {
    let log = captured_log();
    let mut mesh = LocalMesh::found().await?;
    mesh.add_node().await?;
    mesh.converged(&mesh.ids()).await?;
    mesh.edge_tunnels_up().await?;
    let (up, seen) = recording_backend("up").await?;
    let down = TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
    publish(&mesh, 1, "up.example.com", up).await?;
    publish(&mesh, 1, "down.example.com", down).await?;
    let edge = serving(&mesh, "up.example.com").await?;

    let reply = eventually("down.example.com answers 502", CONVERGE, || async {
        let reply = exchange(&mut visit(edge).await?, &get("/", "down.example.com")).await?;
        ensure!(reply.status == 502, "{reply:?}");
        Ok(reply)
    })
    .await?;
    let member = mesh.nodes[1].id;
    for internal in [
        down.port().to_string(),
        "127.0.0.1".to_string(),
        member.short(),
        member.to_string(),
        "tunnel".to_string(),
        "refused".to_string(),
    ] {
        ensure!(
            !reply.body.contains(&internal),
            "the page shows `{internal}`: {}",
            reply.body
        );
    }
    let id = reply.header("x-request-id").context("no x-request-id")?;
    ensure!(
        id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    ensure!(page_id(&reply.body) == Some(id), "{reply:?}");
    // The details are in the edge's log, with the same id.
    let line = eventually("the 502 is logged with its id", CONVERGE, || async {
        let text = String::from_utf8_lossy(&log.lock().map(|l| l.clone()).unwrap_or_default())
            .into_owned();
        text.lines()
            .find(|l| l.contains(id))
            .map(String::from)
            .context("no log line with the request id")
    })
    .await?;
    ensure!(
        line.contains("WARN")
            && line.contains("down.example.com")
            && line.contains(&down.port().to_string()),
        "{line}"
    );
    // And in `hearthctl status` of the edge.
    let failures = mesh.status(0).await?.data_plane.recent_failures;
    let failure = failures
        .iter()
        .find(|f| f.request_id == id)
        .with_context(|| format!("status lists no failure {id}: {failures:?}"))?;
    ensure!(
        failure.status == 502
            && failure.host == "down.example.com"
            && failure.reason.contains(&down.port().to_string()),
        "{failure:?}"
    );

    // A proxied request: the target hears the edge's id (not the visitor's) and the visitor
    // gets it back.
    let reply = exchange(
        &mut visit(edge).await?,
        "GET /id HTTP/1.1\r\nHost: up.example.com\r\nX-Request-Id: visitor-says\r\n\r\n",
    )
    .await?;
    ensure!(reply.status == 200, "{reply:?}");
    let id = reply.header("x-request-id").context("no x-request-id")?;
    let heads = seen.with("/id");
    ensure!(heads.len() == 1, "{heads:?}");
    let forwarded: Vec<&str> = heads[0]
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("x-request-id:"))
        .collect();
    ensure!(
        forwarded.len() == 1 && forwarded[0].ends_with(id) && !heads[0].contains("visitor-says"),
        "{}",
        heads[0]
    );
    mesh.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn https_requests_follow_the_same_rules() -> Result<()> {
    let Sites { mesh, a, b, .. } = two_sites(|_| {}).await?;
    let edge = mesh.edge_https().await?;
    let target = TlsTarget::any_cert(edge, "a.example.com");
    let tls = || async {
        let config = https::client_config(&target, Alpn::Http1)?;
        let (tls, _) = https::connect(&target, config).await?;
        Ok::<_, anyhow::Error>(BufReader::new(tls))
    };
    let mut visitor = eventually("a.example.com answers over HTTPS", CONVERGE, || async {
        let mut visitor = tls().await?;
        let reply = exchange(&mut visitor, &get("/ready", "a.example.com")).await?;
        ensure!(reply.status == 200, "{reply:?}");
        Ok(visitor)
    })
    .await?;
    let reply = exchange(
        &mut visitor,
        "GET /tls-dup HTTP/1.1\r\nHost: a.example.com\r\nHost: b.example.com\r\n\r\n",
    )
    .await?;
    ensure!(reply.status == 400, "{reply:?}");
    let reply = exchange(
        &mut visitor,
        "CONNECT a.example.com:443 HTTP/1.1\r\nHost: a.example.com:443\r\n\r\n",
    )
    .await?;
    ensure!(reply.status == 405, "{reply:?}");
    let reply = exchange(
        &mut visitor,
        "GET https://a.example.com/tls-abs HTTP/1.1\r\nHost: b.example.com\r\n\r\n",
    )
    .await?;
    ensure!(
        reply.status == 200 && reply.body.starts_with("site a\n"),
        "{reply:?}"
    );
    ensure!(reply.header("x-request-id").is_some(), "{reply:?}");
    ensure!(a.with("/tls-dup").is_empty() && b.with("/tls-dup").is_empty());
    ensure!(a.with("/tls-abs").len() == 1 && b.with("/tls-abs").is_empty());
    ensure!(
        a.heads().iter().all(|h| !h.starts_with("CONNECT")),
        "{:?}",
        a.heads()
    );
    mesh.shutdown().await;
    Ok(())
}
