//! Connecting to a route's target on this node, with a deadline, and the optional PROXY
//! protocol v2 header. Used by the hosting member for streams from edges, and by an edge for
//! routes it hosts itself.

use hearth_proto::tunnel::proxy_v2_header;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Connects to `target` (`addr:port` or `name:port`) within `timeout`; the error says why
/// not, for logs and 502 pages.
pub async fn connect(
    target: &str,
    timeout: Duration,
    proxy: Option<(SocketAddr, SocketAddr)>,
) -> Result<TcpStream, String> {
    let mut stream = match tokio::time::timeout(timeout, TcpStream::connect(target)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(format!("cannot connect to {target}: {e}")),
        Err(_) => {
            return Err(format!(
                "{target} did not accept a connection within {} ms",
                timeout.as_millis()
            ))
        }
    };
    let _ = stream.set_nodelay(true);
    if let Some((client, edge)) = proxy {
        stream
            .write_all(&proxy_v2_header(client, edge))
            .await
            .map_err(|e| format!("cannot send the PROXY header to {target}: {e}"))?;
    }
    Ok(stream)
}
