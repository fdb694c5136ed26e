//! `probe quinn-intrude`: a stranger with a fresh node key, not a member of the mesh, dials an
//! edge's tunnel endpoint with the real tunnel TLS and tries to open a proxied stream. The
//! edge must refuse it.

use anyhow::{bail, Result};
use hearth_node::tunnel::frame::{read_frame, write_frame};
use hearth_node::tunnel::tls::{client_config, Credentials, SERVER_NAME};
use hearth_proto::route::RouteSpec;
use hearth_proto::tunnel::{StreamHeader, StreamHeaderV1, StreamReply};
use hearth_proto::{NodeId, NodeKey};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long to wait for the edge's reason after a failed step.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Tries to reach route `host` through the edge `edge` at `addr` as a non-member. Prints
/// `refused: WHY` and returns Ok when any step fails; fails when the edge answered the stream
/// (`got through: REPLY`) or when nothing happened within `limit`.
pub async fn intrude(addr: SocketAddr, edge: NodeId, host: &str, limit: Duration) -> Result<()> {
    let stranger = NodeKey::generate();
    let credentials = Credentials::new(&stranger)?;
    let config = client_config(
        &credentials,
        edge,
        Arc::new(quinn::TransportConfig::default()),
    )?;
    let endpoint = quinn::Endpoint::client(SocketAddr::from(([0, 0, 0, 0], 0)))?;
    let header = StreamHeader::V1(StreamHeaderV1 {
        spec: RouteSpec::Http { host: host.into() },
        client: SocketAddr::from(([198, 18, 0, 99], 40000)),
        edge: addr,
    });
    let attempt = async {
        let connecting = endpoint
            .connect_with(config, addr, SERVER_NAME)
            .map_err(|e| format!("connect: {e}"))?;
        let connection = connecting.await.map_err(|e| format!("handshake: {e}"))?;
        let exchange = async {
            let (mut send, mut recv) = connection
                .open_bi()
                .await
                .map_err(|e| format!("open stream: {e}"))?;
            write_frame(&mut send, &header)
                .await
                .map_err(|e| format!("write header: {e}"))?;
            read_frame::<StreamReply>(&mut recv)
                .await
                .map_err(|e| format!("read reply: {e}"))
        };
        match exchange.await {
            Ok(reply) => Ok(reply),
            // From the client's side the TLS 1.3 handshake ends before the server has checked
            // the client certificate, so a refusal shows up at whichever step comes next; the
            // reason is the one the edge closed the connection with.
            Err(step) => {
                let reason = tokio::time::timeout(CLOSE_WAIT, connection.closed())
                    .await
                    .map(|reason| reason.to_string())
                    .unwrap_or_else(|_| "the connection stayed open".into());
                Err(format!("{step} ({reason})"))
            }
        }
    };
    let outcome = tokio::time::timeout(limit, attempt).await;
    endpoint.close(0u32.into(), b"done");
    match outcome {
        Ok(Err(why)) => {
            println!("refused: {why}");
            Ok(())
        }
        Ok(Ok(reply)) => bail!("got through: the edge answered {reply:?}"),
        Err(_) => bail!("neither refused nor answered within {limit:?}"),
    }
}
