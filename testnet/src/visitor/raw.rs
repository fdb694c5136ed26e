//! Raw TCP visitors: `probe slowloris` (a request head that never ends), `probe slow-hello`
//! (a TLS ClientHello that never comes) and `probe tcp-roundtrip` (pattern bytes through a
//! TCP route to an echo service and back).

use crate::pattern::{Pattern, Sha256, CHUNK};
use anyhow::{bail, ensure, Context, Result};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Opens a connection, sends the start of a request head for `host` and then one more byte
/// every `every`, never finishing the head. Prints `started` once the partial head is sent,
/// then `closed after MS ms` when the server closes (or resets) the connection; fails if it
/// is still open after `limit`.
pub async fn slowloris(
    addr: SocketAddr,
    host: &str,
    every: Duration,
    limit: Duration,
) -> Result<()> {
    let start = Instant::now();
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let (mut read, mut write) = stream.into_split();
    write
        .write_all(format!("GET / HTTP/1.1\r\nHost: {host}\r\nX-Slow: ").as_bytes())
        .await?;
    println!("started");
    let mut answer = Vec::new();
    let closed = async {
        let mut buf = [0u8; 1024];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) if answer.len() < 4096 => answer.extend_from_slice(&buf[..n]),
                Ok(_) => {}
            }
        }
    };
    let drip = async {
        // Bounded by `limit` below; a failed write means the server is gone, which the
        // reader notices.
        loop {
            tokio::time::sleep(every).await;
            if write.write_all(b"a").await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = closed => {}
        () = drip => {}
        () = tokio::time::sleep(limit) => bail!("the server kept the slow connection open for {limit:?}"),
    }
    let first_line = String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    println!(
        "closed after {} ms (answer: {first_line:?})",
        start.elapsed().as_millis()
    );
    Ok(())
}

/// The first bytes of a TLS handshake record header (type 22, version 3.1) without its
/// length: a ClientHello that has begun and never goes on.
const PARTIAL_TLS_RECORD: [u8; 3] = [0x16, 0x03, 0x01];

/// Opens a connection to a TLS listener, sends [`PARTIAL_TLS_RECORD`] and then nothing.
/// Prints `started` once sent, then `closed after MS ms (answer: HEX)` when the server closes
/// (or resets) the connection, with up to 64 bytes it sent first; fails if it is still open
/// after `limit`.
pub async fn slow_hello(addr: SocketAddr, limit: Duration) -> Result<()> {
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.write_all(&PARTIAL_TLS_RECORD).await?;
    println!("started");
    let mut answer = Vec::new();
    let closed = async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) if answer.len() < 64 => answer.extend_from_slice(&buf[..n]),
                Ok(_) => {}
            }
        }
    };
    if tokio::time::timeout(limit, closed).await.is_err() {
        bail!("the server kept the silent TLS connection open for {limit:?}");
    }
    answer.truncate(64);
    println!(
        "closed after {} ms (answer: {})",
        start.elapsed().as_millis(),
        hex::encode(&answer)
    );
    Ok(())
}

/// Sends `bytes` pattern bytes to an echo service at `addr` while reading them back; checks
/// that exactly the same bytes return, all within `limit`. Prints
/// `roundtrip BYTES bytes ok in MS ms`.
pub async fn tcp_roundtrip(addr: SocketAddr, bytes: u64, limit: Duration) -> Result<()> {
    let start = Instant::now();
    let mut stream = tokio::time::timeout(limit, TcpStream::connect(addr))
        .await
        .with_context(|| format!("connecting to {addr}: no answer"))?
        .with_context(|| format!("connecting to {addr}"))?;
    let (mut read, mut write) = stream.split();
    let send = async {
        let mut pattern = Pattern::new(bytes);
        let mut hasher = Sha256::new();
        let mut left = bytes;
        while left > 0 {
            let chunk = pattern.take(left.min(CHUNK as u64) as usize);
            hasher.update(&chunk);
            write.write_all(&chunk).await.context("sending")?;
            left -= chunk.len() as u64;
        }
        anyhow::Ok(hasher.hex())
    };
    let receive = async {
        let mut pattern = Pattern::new(bytes);
        let mut hasher = Sha256::new();
        let mut got = 0u64;
        let mut buf = vec![0u8; CHUNK];
        while got < bytes {
            let want = (bytes - got).min(CHUNK as u64) as usize;
            let n = read.read(&mut buf[..want]).await.context("receiving")?;
            ensure!(
                n > 0,
                "the connection closed after {got} of {bytes} bytes came back"
            );
            ensure!(
                buf[..n] == pattern.take(n)[..],
                "the bytes came back changed near offset {got}"
            );
            hasher.update(&buf[..n]);
            got += n as u64;
        }
        anyhow::Ok(hasher.hex())
    };
    let (sent, echoed) =
        match tokio::time::timeout(limit, async { tokio::try_join!(send, receive) }).await {
            Ok(result) => result?,
            Err(_) => bail!("the {bytes} bytes did not make the round trip within {limit:?}"),
        };
    ensure!(sent == echoed, "sent sha256 {sent}, got back {echoed}");
    stream.shutdown().await.ok();
    println!(
        "roundtrip {bytes} bytes ok in {} ms",
        start.elapsed().as_millis()
    );
    Ok(())
}
