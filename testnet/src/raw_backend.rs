//! A raw HTTP/1.1 backend for tests of what an edge forwards: it reads request heads byte for
//! byte (no HTTP library that would normalise or refuse them), answers `Expect:
//! 100-continue` first as real servers do, reads the body by its `Content-Length`, and
//! answers 200 with whatever the test makes of the head.

use anyhow::Result;
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Serves on a loopback port until the test ends; `answer(head, body_length)` is the body of
/// each 200 (the head as received, request line and header lines with their CRLFs).
pub async fn serve<F>(answer: F) -> Result<SocketAddr>
where
    F: Fn(&str, usize) -> String + Clone + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(tcp);
                loop {
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        match reader.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head.push_str(&line);
                    }
                    let lower = head.to_ascii_lowercase();
                    if lower.contains("expect: 100-continue\r\n")
                        && reader
                            .get_mut()
                            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                            .await
                            .is_err()
                    {
                        return;
                    }
                    let length: usize = lower
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    let mut request_body = vec![0u8; length];
                    if reader.read_exact(&mut request_body).await.is_err() {
                        return;
                    }
                    let body = answer(&head, length);
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if reader
                        .get_mut()
                        .write_all(response.as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}
