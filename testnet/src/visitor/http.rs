//! `probe http` and `probe time-502`: one HTTP/1.1 request with a chosen Host header, its body
//! streamed and hashed (never held whole), optionally a large pattern upload or a check that
//! the body is a given pattern.

use super::target;
use crate::pattern::{Pattern, Sha256, CHUNK};
use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, EXPECT, HOST};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// Most of a body that is printed.
const SHOWN: usize = 64 * 1024;

/// Arguments of `probe http`.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// `http://IP[:PORT]/PATH`.
    pub url: String,
    /// The Host header.
    #[arg(long)]
    pub host: String,
    /// POST this many pattern bytes (chunked, streamed) and check that the answer is their
    /// `<sha256> <bytes>`, as `/sha256` of the backend gives.
    #[arg(long)]
    pub post_bytes: Option<u64>,
    /// Send `Expect: 100-continue` with the POST, and its body only after `100 Continue`.
    #[arg(long)]
    pub expect_continue: bool,
    /// The body must be exactly the first N bytes of the pattern (`/bytes?n=N&seed=SEED`).
    #[arg(long)]
    pub expect_pattern: Option<u64>,
    /// Pattern seed for `--post-bytes` and `--expect-pattern`.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The status the answer must have.
    #[arg(long, default_value_t = 200)]
    pub expect_status: u16,
    /// Give up after this long.
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: u64,
}

type ReqBody = BoxBody<Bytes, std::io::Error>;

/// Sends one request on a new connection; returns the response head and body. With
/// `continued`, the request carries `Expect: 100-continue` and `continued` fires when the
/// `100 Continue` arrives.
async fn send(
    url: &str,
    host: &str,
    method: Method,
    body: ReqBody,
    continued: Option<oneshot::Sender<()>>,
) -> Result<Response<Incoming>> {
    let (addr, path) = target(url)?;
    let stream = TcpStream::connect(&addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake")?;
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, host)
        .body(body)?;
    if let Some(continued) = continued {
        request
            .headers_mut()
            .insert(EXPECT, HeaderValue::from_static("100-continue"));
        let continued = std::sync::Mutex::new(Some(continued));
        hyper::ext::on_informational(&mut request, move |response| {
            if response.status() == hyper::StatusCode::CONTINUE {
                if let Some(continued) = continued.lock().ok().and_then(|mut c| c.take()) {
                    let _ = continued.send(());
                }
            }
        });
    }
    Ok(sender.send_request(request).await?)
}

/// What a body turned out to be.
struct Received {
    size: u64,
    sha256: String,
    shown: Vec<u8>,
    /// First offset where it differs from the expected pattern, if one was expected.
    mismatch: Option<u64>,
    /// SHA-256 of the expected pattern bytes, recomputed here, if one was expected.
    expected_sha256: Option<String>,
}

/// Reads a body frame by frame, hashing it and comparing it with `pattern` as it goes.
async fn receive(mut body: Incoming, mut pattern: Option<Pattern>) -> Result<Received> {
    let mut hasher = Sha256::new();
    let mut expected_hasher = Sha256::new();
    let mut got = Received {
        size: 0,
        sha256: String::new(),
        shown: Vec::new(),
        mismatch: None,
        expected_sha256: None,
    };
    while let Some(frame) = body.frame().await {
        let frame = frame.with_context(|| format!("body failed after {} bytes", got.size))?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        hasher.update(data);
        if got.shown.len() < SHOWN {
            let room = SHOWN - got.shown.len();
            got.shown.extend_from_slice(&data[..room.min(data.len())]);
        }
        if let Some(pattern) = pattern.as_mut() {
            let expected = pattern.take(data.len());
            expected_hasher.update(&expected);
            // Slice equality is a memcmp; only a differing chunk is searched byte by byte.
            if got.mismatch.is_none() && expected[..] != data[..] {
                let at = expected.iter().zip(data.iter()).position(|(a, b)| a != b);
                got.mismatch = Some(got.size + at.unwrap_or(0) as u64);
            }
        }
        got.size += data.len() as u64;
    }
    got.sha256 = hasher.hex();
    if pattern.is_some() {
        got.expected_sha256 = Some(expected_hasher.hex());
    }
    Ok(got)
}

/// How long an upload with `Expect: 100-continue` waits for the `100 Continue`.
const CONTINUE_WAIT: Duration = Duration::from_secs(5);

/// A streamed body of `n` pattern bytes; its digest arrives on the receiver once all is sent.
/// With a `gate`, nothing is sent before it fires (the `100 Continue` arrived).
fn upload(
    seed: u64,
    n: u64,
    gate: Option<oneshot::Receiver<()>>,
) -> (ReqBody, oneshot::Receiver<String>) {
    let (done, digest) = oneshot::channel();
    let state = (Pattern::new(seed), Sha256::new(), n, Some(done), gate);
    let chunks = futures::stream::unfold(
        state,
        |(mut pattern, mut hasher, left, done, gate)| async move {
            if let Some(gate) = gate {
                if !matches!(tokio::time::timeout(CONTINUE_WAIT, gate).await, Ok(Ok(()))) {
                    let why = format!("no 100 Continue within {CONTINUE_WAIT:?}");
                    let state = (pattern, hasher, 0, None, None);
                    return Some((Err(std::io::Error::other(why)), state));
                }
            }
            if left == 0 {
                if let Some(done) = done {
                    let _ = done.send(hasher.hex());
                }
                return None;
            }
            let take = left.min(CHUNK as u64) as usize;
            let chunk = pattern.take(take);
            hasher.update(&chunk);
            let frame = Ok::<_, std::io::Error>(Frame::data(Bytes::from(chunk)));
            Some((frame, (pattern, hasher, left - take as u64, done, None)))
        },
    );
    (BodyExt::boxed(StreamBody::new(chunks)), digest)
}

fn empty() -> ReqBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// Runs `probe http`: prints `status=S size=N sha256=HEX ms=T`, then the body (up to 64 KiB)
/// when it is not a pattern; fails on an unexpected status or body.
pub async fn run(args: &HttpArgs) -> Result<()> {
    let limit = Duration::from_millis(args.timeout_ms);
    match tokio::time::timeout(limit, exchange(args)).await {
        Ok(result) => result,
        Err(_) => bail!("no complete answer from {} within {limit:?}", args.url),
    }
}

async fn exchange(args: &HttpArgs) -> Result<()> {
    let start = Instant::now();
    let (continued, gate) = if args.expect_continue {
        let (continued, gate) = oneshot::channel();
        (Some(continued), Some(gate))
    } else {
        (None, None)
    };
    let (method, body, sent) = match args.post_bytes {
        Some(n) => {
            let (body, digest) = upload(args.seed, n, gate);
            (Method::POST, body, Some((digest, n)))
        }
        None => (Method::GET, empty(), None),
    };
    let response = send(&args.url, &args.host, method, body, continued).await?;
    let status = response.status().as_u16();
    let pattern = args.expect_pattern.map(|_| Pattern::new(args.seed));
    let got = receive(response.into_body(), pattern).await?;
    println!(
        "status={status} size={} sha256={} ms={}",
        got.size,
        got.sha256,
        start.elapsed().as_millis()
    );
    let text = String::from_utf8_lossy(&got.shown).into_owned();
    if args.expect_pattern.is_none() {
        println!("{text}");
    }
    ensure!(
        status == args.expect_status,
        "status {status}, expected {}; body: {}",
        args.expect_status,
        text.chars().take(500).collect::<String>()
    );
    if let Some((digest, n)) = sent {
        let sent_sha = digest.await.context("the upload did not finish")?;
        let want = format!("{sent_sha} {n}");
        ensure!(
            text.trim() == want,
            "sent `{want}`, the server counted `{}`",
            text.trim()
        );
        println!("upload ok: {want}");
    }
    if let Some(n) = args.expect_pattern {
        ensure!(
            got.size == n && got.mismatch.is_none(),
            "expected {n} pattern bytes, got {} (first difference at {:?})",
            got.size,
            got.mismatch
        );
        let want = got.expected_sha256.unwrap_or_default();
        ensure!(
            got.sha256 == want,
            "sha256 {} != recomputed {want}",
            got.sha256
        );
        println!("download ok: {want} {n}");
    }
    Ok(())
}

/// Runs `probe time-502`: a GET that must be answered 502; prints `502 after N ms`.
pub async fn time_502(url: &str, host: &str, limit: Duration) -> Result<()> {
    let start = Instant::now();
    let response =
        match tokio::time::timeout(limit, send(url, host, Method::GET, empty(), None)).await {
            Ok(response) => response?,
            Err(_) => bail!("no answer within {limit:?}"),
        };
    let ms = start.elapsed().as_millis();
    let status = response.status().as_u16();
    ensure!(status == 502, "got {status} after {ms} ms, expected 502");
    println!("502 after {ms} ms");
    Ok(())
}
