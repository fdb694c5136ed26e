//! TLS passthrough in one process on 127.0.0.1, without a CA: node 0 is the edge, node 1 hosts
//! `blind.example.com` with `--tls passthrough`, node 0 hosts `here.example.com` the same way.
//! The edge reads only the ClientHello and forwards the bytes; the hosting member terminates
//! (a self-signed stand-in until it has a certificate) and proxies to its own target. A
//! request naming another host on that connection gets 421 from the member, which an edge
//! terminating TLS would not send: that is how the tests see where TLS ended. Certificates
//! from a real CA (Pebble) are tested in the namespace lab (tests/lab/passthrough.rs).

use anyhow::{bail, ensure, Result};
use bytes::Bytes;
use hearth_proto::api::{CommandV1, ResponseV1};
use hearth_proto::route::{RouteSpec, RouteTls};
use hearth_testnet::eventually::{eventually, CONVERGE};
use hearth_testnet::local::LocalMesh;
use hearth_testnet::visitor::https::{self, Alpn, TlsTarget};
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn publish(mesh: &LocalMesh, on: usize, host: &str, target: SocketAddr) -> Result<()> {
    publish_with(mesh, on, host, target, false).await
}

async fn publish_with(
    mesh: &LocalMesh,
    on: usize,
    host: &str,
    target: SocketAddr,
    proxy_protocol: bool,
) -> Result<()> {
    let command = CommandV1::Publish {
        spec: RouteSpec::Http { host: host.into() },
        target: target.to_string(),
        node: None,
        proxy_protocol,
        tls: RouteTls::Passthrough,
    };
    match mesh.call(on, command).await? {
        ResponseV1::Published(_) => Ok(()),
        other => bail!("publish {host}: {other:?}"),
    }
}

async fn backend(name: &str) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(hearth_testnet::backend::run(
        listener,
        name.into(),
        Duration::from_secs(600),
    ));
    Ok(addr)
}

/// A target that terminates TLS itself (its own self-signed certificate for `name`) after a
/// PROXY v2 header, answering every request with the source address the header carried.
async fn raw_tls_target(name: &str) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let made = rcgen::generate_simple_self_signed(vec![name.to_string()])?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(made.key_pair.serialize_der().into());
    let mut config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(vec![made.cert.der().clone()], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let source = hearth_testnet::tcp_echo::read_proxy_v2(&mut tcp).await?;
                let mut tls = acceptor.accept(tcp).await?;
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    tls.read_exact(&mut byte).await?;
                    head.push(byte[0]);
                }
                let body = format!(
                    "source={}",
                    source.map(|s| s.to_string()).unwrap_or_default()
                );
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                tls.write_all(answer.as_bytes()).await?;
                tls.shutdown().await?;
                Ok::<_, anyhow::Error>(())
            });
        }
    });
    Ok(addr)
}

fn target(edge: SocketAddr, name: &str) -> TlsTarget {
    TlsTarget::any_cert(edge, name)
}

/// The status of a request for `host` on an HTTP/1.1 TLS connection made for `sni`.
async fn status_on_connection_for(edge: SocketAddr, sni: &str, host: &str) -> Result<u16> {
    let config = https::client_config(&target(edge, sni), Alpn::Http1)?;
    let (tls, _) = https::connect(&target(edge, sni), config).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tls)).await?;
    tokio::spawn(connection);
    let request = Request::builder()
        .uri("/")
        .header(hyper::header::HOST, host)
        .body(Empty::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await?;
    Ok(status)
}

#[tokio::test]
async fn passthrough_hosts_are_terminated_on_their_members_not_on_the_edge() -> Result<()> {
    let mesh = LocalMesh::with_nodes(2).await?;
    mesh.converged(&mesh.ids()).await?;
    mesh.edge_tunnels_up().await?;
    let away = backend("n1").await?;
    let here = backend("n0").await?;
    publish(&mesh, 1, "blind.example.com", away).await?;
    publish(&mesh, 0, "here.example.com", here).await?;
    let edge = mesh.edge_https().await?;

    for (host, body) in [
        ("blind.example.com", "hello from n1\n"),
        ("here.example.com", "hello from n0\n"),
    ] {
        // HTTP/2 by ALPN, negotiated with the member; its stand-in certificate for the name.
        let got = eventually(&format!("{host} answers over HTTPS"), CONVERGE, || async {
            let got = https::fetch(&target(edge, host), Alpn::Both, "/").await?;
            ensure!(got.status == 200, "status {}", got.status);
            Ok(got)
        })
        .await?;
        ensure!(got.peer.proto == "h2", "{host}: {:?}", got.peer);
        ensure!(got.body == body, "{host}: {:?}", got.body);
        ensure!(
            got.peer.names == [host] && got.peer.issuer.contains("self-signed"),
            "{host}: {:?}",
            got.peer
        );
        // HTTP/1.1, with the visitor's real address in the forwarding headers.
        let got = https::fetch(&target(edge, host), Alpn::Http1, "/headers").await?;
        ensure!(got.peer.proto == "http/1.1" && got.status == 200, "{got:?}");
        let headers = String::from_utf8_lossy(&got.body).to_string();
        for needle in [
            "x-forwarded-proto: https".to_string(),
            format!("x-forwarded-host: {host}"),
            "x-forwarded-for: 127.0.0.1".to_string(),
            format!("forwarded: for=127.0.0.1;host={host};proto=https"),
        ] {
            ensure!(
                headers.contains(&needle),
                "{host}: no `{needle}` in\n{headers}"
            );
        }
        // The member serves only the name the connection was made for.
        let other = if host == "here.example.com" {
            "blind.example.com"
        } else {
            "here.example.com"
        };
        ensure!(
            status_on_connection_for(edge, host, host).await? == 200,
            "{host} on its own connection"
        );
        ensure!(
            status_on_connection_for(edge, host, other).await? == 421,
            "{other} on a connection for {host} was not refused by the member"
        );
        // WebSocket over the passed-through TLS.
        https::wss_echo(&target(edge, host), "/ws", 20, Duration::from_secs(30)).await?;
    }

    // A passthrough route with the PROXY protocol: the target terminates TLS itself, after a
    // PROXY v2 header carrying the visitor's address.
    let raw = raw_tls_target("raw.example.com").await?;
    publish_with(&mesh, 1, "raw.example.com", raw, true).await?;
    let got = eventually(
        "raw.example.com answers from its own TLS",
        CONVERGE,
        || async {
            let got = https::fetch(&target(edge, "raw.example.com"), Alpn::Http1, "/").await?;
            ensure!(got.status == 200, "status {}", got.status);
            Ok(got)
        },
    )
    .await?;
    let body = String::from_utf8_lossy(&got.body).to_string();
    ensure!(body.starts_with("source=127.0.0.1:"), "{body}");
    ensure!(got.peer.names == ["raw.example.com"], "{:?}", got.peer);

    // `:80` never serves a passthrough host in plain HTTP: a 308 to HTTPS, even before a
    // certificate exists.
    let http = mesh.edge_http().await?;
    let redirect = hearth_testnet::visitor::http::HttpArgs {
        url: format!("http://{http}/a?b=1"),
        host: "blind.example.com".into(),
        post_bytes: None,
        expect_continue: false,
        expect_pattern: None,
        seed: 0,
        expect_status: 308,
        timeout_ms: 10_000,
    };
    hearth_testnet::visitor::http::run(&redirect).await?;

    // Names nobody publishes still get unrecognized_name from the edge.
    let err = https::fetch(&target(edge, "nobody.example.com"), Alpn::Both, "/")
        .await
        .expect_err("a handshake for a name nobody publishes succeeded");
    ensure!(format!("{err:#}").contains("UnrecognisedName"), "{err:#}");

    // `hearthctl certs` and `routes` say where TLS ends and who would hold the key.
    let row = mesh.cert_row(0, "blind.example.com").await?;
    ensure!(row.mode == RouteTls::Passthrough, "{row:?}");
    ensure!(
        row.detail.contains("passthrough") && row.detail.contains("accept_terms"),
        "{row:?}"
    );
    let routes = mesh.routes(0).await?;
    ensure!(
        routes
            .iter()
            .any(|r| r.tls == RouteTls::Passthrough && r.spec.to_string() == "blind.example.com"),
        "{routes:?}"
    );
    mesh.shutdown().await;
    Ok(())
}
