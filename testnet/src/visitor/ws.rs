//! `probe ws-echo`: a WebSocket client that sends numbered messages through the edge and
//! checks that each comes back unchanged.

use super::target;
use crate::pattern::Pattern;
use anyhow::{bail, Context, Result};
use futures::{SinkExt, StreamExt};
use hyper::header::{HeaderValue, HOST};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// Sends `count` messages (text and binary, alternating, up to 4 KiB) to `url` with Host
/// `host`, one at a time, each checked against its echo; all within `limit`. Prints
/// `echoed COUNT messages in MS ms`.
pub async fn echo(url: &str, host: &str, count: u64, limit: Duration) -> Result<()> {
    let start = Instant::now();
    match tokio::time::timeout(limit, exchange(url, host, count)).await {
        Ok(result) => result?,
        Err(_) => bail!("the {count} echoes did not come back within {limit:?}"),
    }
    println!(
        "echoed {count} messages in {} ms",
        start.elapsed().as_millis()
    );
    Ok(())
}

/// Sends `count` messages (text and binary, alternating, up to 4 KiB) on `ws`, one at a time,
/// each checked against its echo.
pub async fn echo_messages<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    count: u64,
) -> Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    for i in 0..count {
        let message = if i % 2 == 0 {
            Message::Text(format!("message {i}"))
        } else {
            Message::Binary(Pattern::new(i).take((i % 4096 + 1) as usize))
        };
        ws.send(message.clone())
            .await
            .with_context(|| format!("sending message {i}"))?;
        match ws.next().await {
            Some(Ok(back)) if back == message => {}
            Some(Ok(other)) => bail!("message {i} came back as {other:?}"),
            Some(Err(e)) => bail!("waiting for echo {i}: {e}"),
            None => bail!("the connection closed after {i} echoes"),
        }
    }
    Ok(())
}

async fn exchange(url: &str, host: &str, count: u64) -> Result<()> {
    let (addr, path) = target(url)?;
    let stream = TcpStream::connect(&addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let mut request = format!("ws://{addr}{path}").into_client_request()?;
    request
        .headers_mut()
        .insert(HOST, HeaderValue::from_str(host)?);
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .context("WebSocket handshake")?;
    echo_messages(&mut ws, count).await?;
    ws.close(None).await.context("closing")?;
    Ok(())
}
