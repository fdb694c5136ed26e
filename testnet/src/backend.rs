//! `probe http-backend`: the HTTP/1.1 service lab tests put behind an edge.
//!
//! - `GET /` answers `hello from NAME`;
//! - `GET /headers` lists the request headers as `name: value` lines;
//! - `POST /sha256` streams the body and answers `<hex sha256> <bytes>`;
//! - `GET /bytes?n=N&seed=S` streams the first N bytes of [`Pattern`] S (chunked);
//! - `GET /ws` is a WebSocket echo.

use crate::pattern::{Pattern, Sha256, CHUNK};
use anyhow::Result;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

type Body = BoxBody<Bytes, std::io::Error>;

/// Serves on `addr` as `name` for at most `lifetime`, printing `listening` once bound.
pub async fn serve(addr: SocketAddr, name: String, lifetime: Duration) -> Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!("listening");
    run(listener, name, lifetime).await
}

/// Serves on `listener` as `name` for at most `lifetime`.
pub async fn run(listener: TcpListener, name: String, lifetime: Duration) -> Result<()> {
    let name: Arc<str> = name.into();
    let accept = async {
        loop {
            let (stream, _) = listener.accept().await?;
            let name = name.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(req, name.clone()));
                let served = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
                if let Err(e) = served {
                    eprintln!("http-backend: connection: {e}");
                }
            });
        }
    };
    match tokio::time::timeout(lifetime, accept).await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

async fn handle(req: Request<Incoming>, name: Arc<str>) -> Result<Response<Body>, Infallible> {
    let response = match (req.method(), req.uri().path()) {
        (&Method::GET, "/") => text(StatusCode::OK, format!("hello from {name}\n")),
        (&Method::GET, "/headers") => {
            let lines: String = req
                .headers()
                .iter()
                .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
                .collect();
            text(StatusCode::OK, lines)
        }
        (&Method::POST, "/sha256") => hash_body(req.into_body()).await,
        (&Method::GET, "/bytes") => bytes(req.uri().query().unwrap_or_default()),
        (&Method::GET, "/ws") => websocket(req),
        _ => text(StatusCode::NOT_FOUND, "no such endpoint\n".into()),
    };
    Ok(response)
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response
}

/// Reads the body frame by frame (never whole) and answers its digest and length.
async fn hash_body(mut body: Incoming) -> Response<Body> {
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    hasher.update(data);
                    total += data.len() as u64;
                }
            }
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("body failed after {total} bytes: {e}\n"),
                )
            }
        }
    }
    text(StatusCode::OK, format!("{} {total}", hasher.hex()))
}

/// Streams `n` pattern bytes in chunks, without a length (so chunked encoding).
fn bytes(query: &str) -> Response<Body> {
    let param = |key: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.parse::<u64>().ok())
    };
    let Some(n) = param("n") else {
        return text(StatusCode::BAD_REQUEST, "want /bytes?n=N[&seed=S]\n".into());
    };
    let pattern = Pattern::new(param("seed").unwrap_or(0));
    let chunks = futures::stream::unfold((pattern, n), |(mut pattern, left)| async move {
        if left == 0 {
            return None;
        }
        let take = left.min(CHUNK as u64) as usize;
        let chunk = Bytes::from(pattern.take(take));
        Some((
            Ok::<_, std::io::Error>(Frame::data(chunk)),
            (pattern, left - take as u64),
        ))
    });
    Response::new(BodyExt::boxed(StreamBody::new(chunks)))
}

/// Answers the handshake and echoes every data message on the upgraded connection.
fn websocket(req: Request<Incoming>) -> Response<Body> {
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY) else {
        return text(
            StatusCode::BAD_REQUEST,
            "not a WebSocket handshake\n".into(),
        );
    };
    let accept = derive_accept_key(key.as_bytes());
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                eprintln!("http-backend: upgrade failed: {e}");
                return;
            }
        };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(message)) = ws.next().await {
            if message.is_close() {
                break;
            }
            if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                break;
            }
        }
    });
    let mut response = text(StatusCode::SWITCHING_PROTOCOLS, String::new());
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(value) = HeaderValue::from_str(&accept) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, value);
    }
    response
}
