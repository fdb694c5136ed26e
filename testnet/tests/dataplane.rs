//! The data plane in one process on 127.0.0.1: node 0 is the edge, the others host services;
//! visitors reach them through the edge's HTTP listener and TCP route ports over the tunnels.
//! The namespace lab (tests/lab/dataplane.rs) repeats this across NAT with large transfers.

use anyhow::{bail, ensure, Context, Result};
use hearth_proto::api::{CommandV1, ResponseV1};
use hearth_proto::route::RouteSpec;
use hearth_proto::tunnel::{StreamHeader, StreamHeaderV1, StreamReply, StreamReplyV1};
use hearth_proto::NodeId;
use hearth_testnet::eventually::{eventually, CONVERGE};
use hearth_testnet::local::LocalMesh;
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A backend that answers every request with its own name, the request head it got
/// (lowercased) and the length of the body it read; like real servers it answers
/// `Expect: 100-continue` first.
async fn head_echo_backend(name: &'static str) -> Result<SocketAddr> {
    hearth_testnet::raw_backend::serve(move |head: &str, length: usize| {
        format!("{name}\n{}body: {length}\n", head.to_ascii_lowercase())
    })
    .await
}

/// A TCP backend that echoes every byte.
async fn echo_backend() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    Ok(addr)
}

/// One HTTP/1.1 exchange on `tcp`: status code and body.
async fn get(tcp: &mut BufReader<TcpStream>, host: &str) -> Result<(u16, String)> {
    let request = format!("GET /page HTTP/1.1\r\nhost: {host}\r\nx-forwarded-for: 6.6.6.6\r\n\r\n");
    tcp.get_mut().write_all(request.as_bytes()).await?;
    response(tcp).await
}

/// Reads one response: status code and body.
async fn response(tcp: &mut BufReader<TcpStream>) -> Result<(u16, String)> {
    let mut status_line = String::new();
    tcp.read_line(&mut status_line).await?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .context("no status")?
        .parse()?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if tcp.read_line(&mut line).await? == 0 {
            bail!("connection closed in the head");
        }
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse()?;
        }
    }
    let mut body = vec![0u8; length];
    tcp.read_exact(&mut body).await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

async fn visit(edge: SocketAddr) -> Result<BufReader<TcpStream>> {
    Ok(BufReader::new(TcpStream::connect(edge).await?))
}

async fn publish(mesh: &LocalMesh, on: usize, spec: RouteSpec, target: SocketAddr) -> Result<()> {
    let command = CommandV1::Publish {
        spec,
        target: target.to_string(),
        node: None,
        proxy_protocol: false,
        tls: Default::default(),
    };
    match mesh.call(on, command).await? {
        ResponseV1::Published(_) => Ok(()),
        other => bail!("publish: {other:?}"),
    }
}

/// Waits until `host` answers 200 through the edge and returns the body.
async fn served(edge: SocketAddr, host: &str) -> Result<String> {
    eventually(&format!("{host} is served"), CONVERGE, || async {
        let (status, body) = get(&mut visit(edge).await?, host).await?;
        ensure!(status == 200, "status {status}: {body}");
        Ok(body)
    })
    .await
}

#[tokio::test]
async fn visitors_reach_services_on_members_and_on_the_edge_itself() -> Result<()> {
    let mesh = LocalMesh::with_nodes(3).await?;
    let ids = mesh.ids();
    mesh.converged(&ids).await?;
    mesh.edge_tunnels_up().await?;
    let edge = mesh.edge_http().await?;

    let remote = head_echo_backend("on n1").await?;
    publish(
        &mesh,
        1,
        RouteSpec::Http {
            host: "blog.example.com".into(),
        },
        remote,
    )
    .await?;
    let local = head_echo_backend("on n0").await?;
    publish(
        &mesh,
        0,
        RouteSpec::Http {
            host: "home.example.com".into(),
        },
        local,
    )
    .await?;

    let body = served(edge, "blog.example.com").await?;
    ensure!(body.starts_with("on n1\n"), "{body}");
    // The visitor's claim is replaced by what the edge saw.
    ensure!(body.contains("x-forwarded-for: 127.0.0.1\r\n"), "{body}");
    ensure!(body.contains("x-forwarded-proto: http\r\n"), "{body}");
    ensure!(
        body.contains("x-forwarded-host: blog.example.com\r\n"),
        "{body}"
    );
    ensure!(
        body.contains("forwarded: for=127.0.0.1;host=blog.example.com;proto=http\r\n"),
        "{body}"
    );
    ensure!(served(edge, "home.example.com")
        .await?
        .starts_with("on n0\n"));

    // Keep-alive: several requests, for both hosts, on one visitor connection.
    let mut visitor = visit(edge).await?;
    for host in [
        "blog.example.com",
        "blog.example.com",
        "home.example.com",
        "blog.example.com",
    ] {
        let (status, body) = get(&mut visitor, host).await?;
        ensure!(status == 200, "{host}: {status} {body}");
    }

    // Expect: 100-continue: the body is sent only after the interim answer arrives.
    let mut visitor = visit(edge).await?;
    visitor
        .get_mut()
        .write_all(b"POST /upload HTTP/1.1\r\nhost: blog.example.com\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\n")
        .await?;
    let mut interim = String::new();
    visitor.read_line(&mut interim).await?;
    ensure!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    let mut blank = String::new();
    visitor.read_line(&mut blank).await?;
    visitor.get_mut().write_all(b"hello").await?;
    let (status, body) = response(&mut visitor).await?;
    ensure!(
        status == 200 && body.ends_with("body: 5\n"),
        "{status} {body}"
    );

    // Unknown host: 404 page naming it.
    let (status, body) = get(&mut visit(edge).await?, "nothing.example.com").await?;
    ensure!(
        status == 404 && body.contains("nothing.example.com"),
        "{status} {body}"
    );

    // Target down: 502, and the connection still answers.
    let closed = TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
    publish(
        &mesh,
        2,
        RouteSpec::Http {
            host: "down.example.com".into(),
        },
        closed,
    )
    .await?;
    eventually("down.example.com answers 502", CONVERGE, || async {
        let (status, body) = get(&mut visit(edge).await?, "down.example.com").await?;
        ensure!(status == 502, "{status} {body}");
        Ok(())
    })
    .await?;

    mesh.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_host_on_several_members_goes_to_the_least_busy_healthy_one() -> Result<()> {
    let mesh = LocalMesh::with_nodes(3).await?;
    let ids = mesh.ids();
    mesh.converged(&ids).await?;
    mesh.edge_tunnels_up().await?;
    let edge = mesh.edge_http().await?;
    let spec = || RouteSpec::Http {
        host: "app.example.com".into(),
    };
    publish(&mesh, 1, spec(), head_echo_backend("on n1").await?).await?;
    publish(&mesh, 2, spec(), head_echo_backend("on n2").await?).await?;
    eventually(
        "the edge knows both members serve the host",
        CONVERGE,
        || async {
            let hosts = mesh
                .routes(0)
                .await?
                .iter()
                .filter(|r| r.spec == spec())
                .count();
            ensure!(hosts == 2, "{hosts} routes");
            Ok(())
        },
    )
    .await?;
    // Each kept-alive visitor holds a stream to one member; the second visitor gets the other.
    let mut first = visit(edge).await?;
    let (_, a) = get(&mut first, "app.example.com").await?;
    let mut second = visit(edge).await?;
    let (_, b) = get(&mut second, "app.example.com").await?;
    let served_by = |body: &str| body.lines().next().unwrap_or_default().to_string();
    ensure!(
        served_by(&a) != served_by(&b),
        "both went to {}",
        served_by(&a)
    );

    // n2's service goes down: every request goes to n1.
    let down = TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
    publish(&mesh, 2, spec(), down).await?;
    eventually("n2's new target is known at the edge", CONVERGE, || async {
        let rows = mesh.routes(0).await?;
        ensure!(rows.iter().any(|r| r.target == down.to_string()));
        Ok(())
    })
    .await?;
    drop((first, second));
    for _ in 0..5 {
        let (status, body) = get(&mut visit(edge).await?, "app.example.com").await?;
        ensure!(
            status == 200 && body.starts_with("on n1\n"),
            "{status} {body}"
        );
    }
    mesh.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn tcp_routes_carry_bytes_both_ways() -> Result<()> {
    let mesh = LocalMesh::with_nodes(2).await?;
    let ids = mesh.ids();
    mesh.converged(&ids).await?;
    mesh.edge_tunnels_up().await?;
    let echo = echo_backend().await?;
    // A free port for the edge to listen on.
    let port = TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port();
    publish(&mesh, 1, RouteSpec::Tcp { port }, echo).await?;
    eventually("the TCP route echoes", CONVERGE, || async {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        let message: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        tcp.write_all(&message).await?;
        let mut back = vec![0u8; message.len()];
        tcp.read_exact(&mut back).await?;
        ensure!(back == message, "the echo differs");
        Ok(())
    })
    .await?;
    mesh.shutdown().await;
    Ok(())
}

/// Dials the edge's tunnel with `key` and asks for a.example.com; returns the edge's answer.
async fn open_stream(
    key: &hearth_proto::NodeKey,
    edge: NodeId,
    tunnel: SocketAddr,
) -> Result<StreamReply> {
    use hearth_node::tunnel::{frame, tls};
    let config = tls::client_config(
        &tls::Credentials::new(key)?,
        edge,
        std::sync::Arc::new(quinn::TransportConfig::default()),
    )?;
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    let connection = endpoint
        .connect_with(config, tunnel, tls::SERVER_NAME)?
        .await?;
    let (mut send, mut recv) = connection.open_bi().await?;
    let header = StreamHeader::V1(StreamHeaderV1 {
        spec: RouteSpec::Http {
            host: "a.example.com".into(),
        },
        client: "127.0.0.1:1".parse()?,
        edge: tunnel,
    });
    frame::write_frame(&mut send, &header).await?;
    Ok(frame::read_frame(&mut recv).await?)
}

#[tokio::test]
async fn non_members_cannot_open_a_tunnel_and_revoked_members_lose_theirs() -> Result<()> {
    let mesh = LocalMesh::with_nodes(3).await?;
    let ids = mesh.ids();
    mesh.converged(&ids).await?;
    mesh.edge_tunnels_up().await?;
    let status = mesh.status(0).await?;
    let tunnel: SocketAddr = status
        .data_plane
        .tunnel_listen
        .context("no tunnel endpoint")?
        .parse()?;

    // A route the edge serves itself, so a stream for it gets an answer from the edge.
    let backend = head_echo_backend("on n0").await?;
    publish(
        &mesh,
        0,
        RouteSpec::Http {
            host: "a.example.com".into(),
        },
        backend,
    )
    .await?;
    eventually("the edge knows its route", CONVERGE, || async {
        ensure!(!mesh.routes(0).await?.is_empty());
        Ok(())
    })
    .await?;

    // The same quinn client gets a stream with a member's key (n1's own key file)...
    let member = hearth_node::identity::load(&mesh.nodes[1].config.data_dir())?;
    let reply = open_stream(&member, ids[0], tunnel).await?;
    ensure!(
        reply == StreamReply::V1(StreamReplyV1::Connected),
        "{reply:?}"
    );
    // ...and none with a stranger's key: the handshake or the first stream fails.
    let stranger = hearth_proto::NodeKey::generate();
    let refused = open_stream(&stranger, ids[0], tunnel).await;
    ensure!(
        refused.is_err(),
        "a non-member opened a stream: {refused:?}"
    );

    // Revoking n2 closes its tunnel on the edge.
    match mesh
        .call(0, CommandV1::Revoke { node: "n2".into() })
        .await?
    {
        ResponseV1::Revoked { .. } => {}
        other => bail!("revoke: {other:?}"),
    }
    eventually(
        "the revoked member's tunnel is closed",
        CONVERGE,
        || async {
            let tunnels = mesh.status(0).await?.data_plane.tunnels;
            ensure!(!tunnels.contains(&ids[2]), "tunnels {tunnels:?}");
            ensure!(
                tunnels.contains(&ids[1]),
                "n1 lost its tunnel too: {tunnels:?}"
            );
            Ok(())
        },
    )
    .await?;
    mesh.shutdown().await;
    Ok(())
}
