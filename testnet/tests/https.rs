//! HTTPS on the edge in one process on 127.0.0.1, without a CA: node 0 is the edge, node 1
//! hosts the service. Until a certificate exists the edge answers with a self-signed one for
//! the published name, over HTTP/2 or HTTP/1.1 as ALPN chooses, forwarding as over HTTP with
//! `proto=https`; names nobody publishes, and plain-HTTP-only routes, get the TLS alert
//! `unrecognized_name`. Certificates from a real CA (Pebble) are tested in the namespace lab
//! (tests/lab/https.rs).

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use hearth_proto::api::{CommandV1, ResponseV1};
use hearth_proto::cert::CertState;
use hearth_proto::route::{RouteSpec, RouteTls};
use hearth_testnet::eventually::{eventually, CONVERGE};
use hearth_testnet::local::LocalMesh;
use hearth_testnet::visitor::https::{self, Alpn, TlsTarget};
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

async fn publish(mesh: &LocalMesh, host: &str, target: SocketAddr, tls: RouteTls) -> Result<()> {
    let command = CommandV1::Publish {
        spec: RouteSpec::Http { host: host.into() },
        target: target.to_string(),
        node: None,
        proxy_protocol: false,
        tls,
    };
    match mesh.call(1, command).await? {
        ResponseV1::Published(_) => Ok(()),
        other => bail!("publish {host}: {other:?}"),
    }
}

async fn backend() -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(hearth_testnet::backend::run(
        listener,
        "n1".into(),
        Duration::from_secs(600),
    ));
    Ok(addr)
}

fn target(edge: SocketAddr, name: &str) -> TlsTarget {
    TlsTarget::any_cert(edge, name)
}

#[tokio::test]
async fn without_a_ca_the_edge_serves_self_signed_https_over_h2_and_http1() -> Result<()> {
    let mesh = LocalMesh::with_nodes(2).await?;
    mesh.converged(&mesh.ids()).await?;
    mesh.edge_tunnels_up().await?;
    let service = backend().await?;
    publish(&mesh, "app.example.com", service, RouteTls::Edge).await?;
    publish(&mesh, "plain.example.com", service, RouteTls::Off).await?;
    publish(&mesh, "intranet", service, RouteTls::Edge).await?;
    let edge = mesh.edge_https().await?;

    // HTTP/2 by ALPN, with a self-signed certificate for the name.
    let got = eventually("app.example.com answers over HTTPS", CONVERGE, || async {
        let got = https::fetch(&target(edge, "app.example.com"), Alpn::Both, "/").await?;
        ensure!(got.status == 200, "status {}", got.status);
        Ok(got)
    })
    .await?;
    ensure!(got.peer.proto == "h2", "{:?}", got.peer);
    ensure!(got.version == hyper::Version::HTTP_2);
    ensure!(got.body == "hello from n1\n", "{:?}", got.body);
    ensure!(
        got.peer.names == ["app.example.com"] && got.peer.issuer.contains("self-signed"),
        "{:?}",
        got.peer
    );

    // HTTP/1.1 when that is all the visitor offers; forwarding headers say https.
    let got = https::fetch(&target(edge, "app.example.com"), Alpn::Http1, "/headers").await?;
    ensure!(got.peer.proto == "http/1.1" && got.status == 200, "{got:?}");
    let headers = String::from_utf8_lossy(&got.body).to_string();
    for needle in [
        "x-forwarded-proto: https",
        "x-forwarded-host: app.example.com",
        "x-forwarded-for: 127.0.0.1",
        "forwarded: for=127.0.0.1;host=app.example.com;proto=https",
    ] {
        ensure!(headers.contains(needle), "no `{needle}` in\n{headers}");
    }

    // Many streams at once on one HTTP/2 connection.
    let config = https::client_config(&target(edge, "app.example.com"), Alpn::H2)?;
    let (tls, peer) = https::connect(&target(edge, "app.example.com"), config).await?;
    ensure!(peer.proto == "h2");
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
    tokio::spawn(connection);
    let mut requests = Vec::new();
    for i in 0..32 {
        let mut sender = sender.clone();
        requests.push(tokio::spawn(async move {
            let request = Request::builder()
                .uri(format!("https://app.example.com/bytes?n={}", 1000 + i))
                .body(Empty::<Bytes>::new())?;
            let response = sender.send_request(request).await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, anyhow::Error>((status, body.len()))
        }));
    }
    for (i, request) in requests.into_iter().enumerate() {
        let (status, len) = request.await??;
        ensure!(
            status == 200 && len == 1000 + i,
            "stream {i}: {status} {len}"
        );
    }

    // A streamed 4 MiB upload on an HTTP/2 stream arrives whole.
    let upload: Vec<u8> = hearth_testnet::pattern::Pattern::new(7).take(4 << 20);
    let mut digest = hearth_testnet::pattern::Sha256::new();
    digest.update(&upload);
    let want = format!("{} {}", digest.hex(), upload.len());
    let chunks = upload
        .chunks(64 * 1024)
        .map(|c| Ok::<_, std::io::Error>(hyper::body::Frame::data(Bytes::copy_from_slice(c))))
        .collect::<Vec<_>>();
    let request = Request::builder()
        .method("POST")
        .uri("https://app.example.com/sha256")
        .body(http_body_util::StreamBody::new(futures::stream::iter(
            chunks,
        )))?;
    let config = https::client_config(&target(edge, "app.example.com"), Alpn::H2)?;
    let (tls, _) = https::connect(&target(edge, "app.example.com"), config).await?;
    let (mut upload_sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
    tokio::spawn(connection);
    let response = upload_sender.send_request(request).await?;
    let body = response.into_body().collect().await?.to_bytes();
    ensure!(
        String::from_utf8_lossy(&body).trim() == want,
        "{body:?} != {want}"
    );

    // Expect: 100-continue over TLS: the interim answer comes before the body is sent.
    let config = https::client_config(&target(edge, "app.example.com"), Alpn::Http1)?;
    let (mut tls, _) = https::connect(&target(edge, "app.example.com"), config).await?;
    tls.write_all(b"POST /sha256 HTTP/1.1\r\nhost: app.example.com\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\n")
        .await?;
    let mut reader = tokio::io::BufReader::new(tls);
    let mut interim = String::new();
    reader.read_line(&mut interim).await?;
    ensure!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    let mut blank = String::new();
    reader.read_line(&mut blank).await?;
    reader.get_mut().write_all(b"hello").await?;
    let mut status = String::new();
    reader.read_line(&mut status).await?;
    ensure!(status.starts_with("HTTP/1.1 200"), "{status}");

    // WebSocket over TLS.
    https::wss_echo(
        &target(edge, "app.example.com"),
        "/ws",
        50,
        Duration::from_secs(30),
    )
    .await?;

    // A name nobody publishes, and a plain-HTTP-only route: the TLS alert unrecognized_name.
    for name in ["nobody.example.com", "plain.example.com"] {
        let err = https::fetch(&target(edge, name), Alpn::Both, "/")
            .await
            .expect_err("a handshake for a name without HTTPS succeeded");
        let text = format!("{err:#}");
        ensure!(text.contains("UnrecognisedName"), "{name}: {text}");
    }

    // Plain HTTP still serves both (no CA certificate, so no redirect).
    let http = mesh.edge_http().await?;
    for host in ["app.example.com", "plain.example.com"] {
        let out = hearth_testnet::visitor::http::HttpArgs {
            url: format!("http://{http}/"),
            host: host.into(),
            post_bytes: None,
            expect_continue: false,
            expect_pattern: None,
            seed: 0,
            expect_status: 200,
            timeout_ms: 10_000,
        };
        hearth_testnet::visitor::http::run(&out).await?;
    }

    // `hearthctl certs` says why the certificate is self-signed.
    let report = match mesh.call(0, CommandV1::Certs).await? {
        ResponseV1::Certs(report) => report,
        other => bail!("certs: {other:?}"),
    };
    ensure!(report.acme.contains("accept_terms"), "{}", report.acme);
    let row = report
        .rows
        .iter()
        .find(|r| r.name == "app.example.com")
        .context("no row for app.example.com")?;
    ensure!(row.state == CertState::Pending, "{row:?}");
    ensure!(row.detail.contains("self-signed"), "{row:?}");
    ensure!(
        !report.rows.iter().any(|r| r.name == "plain.example.com"),
        "an HTTP-only route needs no certificate"
    );
    // A host no CA can certify is listed as failed, saying why; it is served self-signed.
    let intranet = report
        .rows
        .iter()
        .find(|r| r.name == "intranet")
        .context("no row for intranet")?;
    ensure!(
        intranet.state == CertState::Failed && intranet.detail.contains("single label"),
        "{intranet:?}"
    );
    // Renewing a host with no certificate needed is refused, naming it.
    match mesh
        .call(
            0,
            CommandV1::CertAction {
                host: "plain.example.com".into(),
                action: hearth_proto::cert::CertAction::Renew,
            },
        )
        .await?
    {
        ResponseV1::Error(e) => ensure!(e.message.contains("plain.example.com"), "{e:?}"),
        other => bail!("renew of an HTTP-only host: {other:?}"),
    }
    mesh.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_unreachable_acme_directory_is_reported_and_https_still_answers() -> Result<()> {
    // Nothing listens on port 9 of loopback: the CA cannot be reached.
    let directory = "https://127.0.0.1:9/directory";
    let mut mesh = LocalMesh::found_with(|config| {
        config.acme.accept_terms = true;
        config.acme.directory = directory.into();
    })
    .await?;
    mesh.add_node().await?;
    mesh.converged(&mesh.ids()).await?;
    mesh.edge_tunnels_up().await?;
    let service = backend().await?;
    publish(&mesh, "app.example.com", service, RouteTls::Edge).await?;
    let row = eventually("the failed order is reported", CONVERGE, || async {
        let row = mesh.cert_row(1, "app.example.com").await?;
        ensure!(
            row.state == CertState::Failed,
            "{:?}: {}",
            row.state,
            row.detail
        );
        Ok(row)
    })
    .await?;
    ensure!(
        row.detail.contains("ACME account") && row.detail.contains("next try in"),
        "{row:?}"
    );
    eprintln!("reported: {}", row.detail);
    ensure!(row.issuer_name == "n0", "{row:?}");
    // The edge says where it orders from; HTTPS answers meanwhile, self-signed.
    match mesh.call(0, CommandV1::Certs).await? {
        ResponseV1::Certs(report) => ensure!(report.acme.contains(directory), "{}", report.acme),
        other => bail!("certs: {other:?}"),
    }
    let edge: SocketAddr = mesh
        .status(0)
        .await?
        .data_plane
        .https_listen
        .context("no HTTPS")?
        .parse()?;
    let got = https::fetch(&target(edge, "app.example.com"), Alpn::Both, "/").await?;
    ensure!(
        got.status == 200 && got.peer.issuer.contains("self-signed"),
        "{got:?}"
    );
    mesh.stop(1).await;
    mesh.shutdown().await;
    Ok(())
}
