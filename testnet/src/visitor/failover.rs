//! `probe failover-load`: steady HTTP/1.1 load against several edges at once, behaving like a
//! client that got several A records. Each logical request goes to the next edge in turn; if
//! that attempt fails it is retried at once on the next edge, up to once per edge. The longest
//! gap between two successful answers is the failover time a visitor sees when an edge dies.
//!
//! Every attempt uses a fresh connection with `Connection: close`, so a dead edge is noticed
//! on the very next request that goes to it rather than hidden by a kept-alive connection.

mod report;

pub use report::{LoadReport, RequestRecord};

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{HeaderValue, CONNECTION, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// How often the stop file is looked for.
const STOP_FILE_POLL: Duration = Duration::from_millis(50);

/// Most workers one run starts, so a typo cannot open a million sockets.
const MAX_CONCURRENCY: usize = 4096;

/// What load to generate and against which edges.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The edges, in rotation order (the A records a client would get).
    pub edges: Vec<SocketAddr>,
    /// The Host header: the published route.
    pub host: String,
    /// The request path, starting with `/`.
    pub path: String,
    /// Workers, each with one logical request in flight at a time.
    pub concurrency: usize,
    /// The run stops after this long; requests then in flight are abandoned.
    pub duration: Duration,
    /// The run also stops after this many logical requests in total.
    pub max_requests: u64,
    /// How long one attempt may take to connect.
    pub connect_timeout: Duration,
    /// How long one attempt may take, once connected, to get the whole answer.
    pub request_timeout: Duration,
    /// The run also stops once this file exists (checked every 50 ms), so a test or benchmark
    /// can end it when it has seen what it needs.
    pub stop_file: Option<PathBuf>,
    /// Created once every edge has answered at least one request, so a test or benchmark
    /// knows the load flows through all of them before it breaks one.
    pub ready_file: Option<PathBuf>,
}

impl LoadConfig {
    /// The `probe failover-load` defaults for `host` on `edges`: `/`, 4 workers, 10 s, at most
    /// 200 000 requests, 1 s to connect, 2 s per answer, no stop file.
    pub fn new(edges: Vec<SocketAddr>, host: impl Into<String>) -> Self {
        Self {
            edges,
            host: host.into(),
            path: "/".into(),
            concurrency: 4,
            duration: Duration::from_secs(10),
            max_requests: 200_000,
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(2),
            stop_file: None,
            ready_file: None,
        }
    }

    fn check(&self) -> Result<()> {
        ensure!(!self.edges.is_empty(), "no edges to send load to");
        ensure!(
            (1..=MAX_CONCURRENCY).contains(&self.concurrency),
            "concurrency must be 1 to {MAX_CONCURRENCY}, not {}",
            self.concurrency
        );
        ensure!(
            self.path.starts_with('/'),
            "the path `{}` must start with /",
            self.path
        );
        HeaderValue::from_str(&self.host)
            .with_context(|| format!("`{}` is not a Host header value", self.host))?;
        ensure!(
            !self.connect_timeout.is_zero() && !self.request_timeout.is_zero(),
            "timeouts must be more than zero"
        );
        Ok(())
    }
}

/// Arguments of `probe failover-load`.
#[derive(Debug, Clone, clap::Args)]
pub struct FailoverArgs {
    /// An edge `IP:PORT`; repeat for each, in rotation order.
    #[arg(long = "edge", required = true)]
    pub edges: Vec<SocketAddr>,
    /// The Host header.
    #[arg(long)]
    pub host: String,
    /// The request path.
    #[arg(long, default_value = "/")]
    pub path: String,
    /// Workers, each with one request in flight.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Stop after this many ms.
    #[arg(long, default_value_t = 10_000)]
    pub duration_ms: u64,
    /// Stop after this many logical requests.
    #[arg(long, default_value_t = 200_000)]
    pub max_requests: u64,
    /// Connect timeout of one attempt.
    #[arg(long, default_value_t = 1000)]
    pub connect_timeout_ms: u64,
    /// Time one attempt may take for the whole answer once connected.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
    /// Stop once this file exists.
    #[arg(long)]
    pub stop_file: Option<PathBuf>,
    /// Create this file once every edge has answered.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
}

impl FailoverArgs {
    /// The run these arguments ask for.
    pub fn config(&self) -> LoadConfig {
        let ms = Duration::from_millis;
        LoadConfig {
            edges: self.edges.clone(),
            host: self.host.clone(),
            path: self.path.clone(),
            concurrency: self.concurrency,
            duration: ms(self.duration_ms),
            max_requests: self.max_requests,
            connect_timeout: ms(self.connect_timeout_ms),
            request_timeout: ms(self.timeout_ms),
            stop_file: self.stop_file.clone(),
            ready_file: self.ready_file.clone(),
        }
    }
}

/// Runs `probe failover-load`: prints the report as one line (see [`LoadReport`]'s `Display`)
/// and succeeds even if requests failed; the caller judges. Fails only if the load could not
/// run at all.
pub async fn probe(args: &FailoverArgs) -> Result<()> {
    let report = run(&args.config()).await?;
    println!("{report}");
    // Why requests failed, on stderr for people: the first few distinct reasons, with when.
    let mut seen = std::collections::BTreeSet::new();
    for record in report.requests.iter().filter(|r| !r.ok) {
        let error = record.error.clone().unwrap_or_default();
        if seen.len() < MAX_REASONS_SHOWN && seen.insert(error.clone()) {
            eprintln!("failed at {} ms: {error}", record.start_ms);
        }
    }
    Ok(())
}

/// Distinct failure reasons `probe failover-load` prints.
const MAX_REASONS_SHOWN: usize = 5;

/// State every worker shares.
struct Shared {
    config: LoadConfig,
    start: Instant,
    /// Sequence number of the next logical request; it also picks the first edge.
    next: AtomicU64,
    /// Which edges have answered at least once.
    answered: Vec<AtomicBool>,
    /// Whether the ready file was created.
    ready: AtomicBool,
}

impl Shared {
    fn ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Notes that `edge` answered; creates the ready file once all have.
    fn answered(&self, edge: SocketAddr) {
        if let Some(i) = self.config.edges.iter().position(|e| *e == edge) {
            self.answered[i].store(true, Ordering::Relaxed);
        }
        let all = self.answered.iter().all(|a| a.load(Ordering::Relaxed));
        if all && !self.ready.swap(true, Ordering::Relaxed) {
            if let Some(file) = &self.config.ready_file {
                if let Err(e) = std::fs::write(file, b"ready\n") {
                    tracing::warn!(file = %file.display(), error = %e, "cannot create the ready file");
                }
            }
        }
    }
}

/// Generates the load `config` describes and reports every logical request. Fails only on a
/// config that cannot run (no edges, zero workers, a bad path or Host).
pub async fn run(config: &LoadConfig) -> Result<LoadReport> {
    config.check()?;
    let shared = Arc::new(Shared {
        config: config.clone(),
        start: Instant::now(),
        next: AtomicU64::new(0),
        answered: config
            .edges
            .iter()
            .map(|_| AtomicBool::new(false))
            .collect(),
        ready: AtomicBool::new(false),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..config.concurrency {
        workers.spawn(worker(shared.clone(), stop_rx.clone()));
    }
    let joined = async {
        let mut records = Vec::new();
        let mut abandoned = 0u64;
        while let Some(done) = workers.join_next().await {
            let (mut mine, gave_up) = done.context("a load worker panicked")?;
            records.append(&mut mine);
            abandoned += u64::from(gave_up);
        }
        anyhow::Ok((records, abandoned))
    };
    tokio::pin!(joined);
    let (records, abandoned) = tokio::select! {
        result = &mut joined => result?,
        () = stopper(config, &stop_tx) => joined.await?,
    };
    Ok(LoadReport::from_records(
        &config.edges,
        records,
        abandoned,
        shared.ms(),
    ))
}

/// Returns once the run's time is up or the stop file exists, telling the workers to stop.
async fn stopper(config: &LoadConfig, stop: &watch::Sender<bool>) {
    let deadline = tokio::time::Instant::now() + config.duration;
    let mut poll = tokio::time::interval(STOP_FILE_POLL);
    // Bounded by the deadline.
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => break,
            _ = poll.tick() => {
                if config.stop_file.as_ref().is_some_and(|file| file.exists()) {
                    break;
                }
            }
        }
    }
    let _ = stop.send(true);
}

/// One worker: logical requests one after another until the run stops or the requests are
/// all taken. Returns its records and whether it abandoned one in flight at the stop.
async fn worker(
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> (Vec<RequestRecord>, bool) {
    let mut records = Vec::new();
    // Bounded by `max_requests` and by the stop signal, which comes at the latest after
    // `duration`.
    loop {
        if *stop.borrow() {
            return (records, false);
        }
        let seq = shared.next.fetch_add(1, Ordering::Relaxed);
        if seq >= shared.config.max_requests {
            return (records, false);
        }
        let start_ms = shared.ms();
        let outcome = tokio::select! {
            outcome = logical(&shared.config, seq) => outcome,
            _ = stop.wait_for(|stopped| *stopped) => return (records, true),
        };
        if let Some(edge) = outcome.edge {
            shared.answered(edge);
        }
        records.push(RequestRecord {
            seq,
            start_ms,
            end_ms: shared.ms(),
            ok: outcome.edge.is_some(),
            attempts: outcome.attempts,
            edge: outcome.edge,
            error: outcome.error,
        });
    }
}

/// How one logical request went.
struct Outcome {
    attempts: u32,
    /// The edge that answered it, if one did.
    edge: Option<SocketAddr>,
    /// Why the last attempt failed, if every one did.
    error: Option<String>,
}

/// Logical request `seq`: first to edge `seq % edges`, then to each following edge in turn
/// until one answers 2xx with a complete body.
async fn logical(config: &LoadConfig, seq: u64) -> Outcome {
    let count = config.edges.len();
    let first = usize::try_from(seq % count as u64).unwrap_or(0);
    let mut error = None;
    for (tried, edge) in config
        .edges
        .iter()
        .cycle()
        .skip(first)
        .take(count)
        .enumerate()
    {
        match attempt(config, *edge).await {
            Ok(()) => {
                return Outcome {
                    attempts: u32::try_from(tried + 1).unwrap_or(u32::MAX),
                    edge: Some(*edge),
                    error: None,
                }
            }
            Err(e) => error = Some(format!("{edge}: {e:#}")),
        }
    }
    Outcome {
        attempts: u32::try_from(count).unwrap_or(u32::MAX),
        edge: None,
        error,
    }
}

/// One attempt on a fresh connection to `edge`, within the connect and request timeouts.
async fn attempt(config: &LoadConfig, edge: SocketAddr) -> Result<()> {
    let stream = match tokio::time::timeout(config.connect_timeout, TcpStream::connect(edge)).await
    {
        Ok(stream) => stream.context("connecting")?,
        Err(_) => bail!("not connected within {:?}", config.connect_timeout),
    };
    stream.set_nodelay(true).ok();
    match tokio::time::timeout(
        config.request_timeout,
        exchange(stream, &config.host, &config.path),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => bail!("no complete answer within {:?}", config.request_timeout),
    }
}

/// `GET path` with `Connection: close`; succeeds on a 2xx whose body arrived whole. The body
/// is counted, never kept.
async fn exchange(stream: TcpStream, host: &str, path: &str) -> Result<()> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake")?;
    let request = Request::get(path)
        .header(HOST, host)
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())?;
    let answer = async move {
        let response = sender.send_request(request).await.context("request")?;
        drop(sender);
        let status = response.status();
        ensure!(status.is_success(), "status {status}");
        let mut body = response.into_body();
        let mut size = 0u64;
        // Bounded by the request timeout around this exchange.
        while let Some(frame) = body.frame().await {
            let frame = frame.with_context(|| format!("the body broke after {size} bytes"))?;
            size += frame.data_ref().map_or(0, |data| data.len() as u64);
        }
        Ok(())
    };
    // The connection is driven here, not spawned, so a timed-out attempt leaves nothing behind.
    tokio::pin!(answer);
    tokio::pin!(connection);
    tokio::select! {
        result = &mut answer => result,
        _ = &mut connection => answer.await,
    }
}
