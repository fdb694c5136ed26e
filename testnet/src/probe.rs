//! `hearth-testnet probe`: tiny socket programs that lab tests run inside a host's namespace
//! to check what the lab lets through.

use anyhow::{bail, Result};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// Accepts `count` TCP connections on `addr`, printing each peer's IP on its own line.
pub async fn tcp_serve(addr: SocketAddr, count: usize) -> Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!("listening");
    for _ in 0..count {
        let (mut stream, peer) = listener.accept().await?;
        println!("{}", peer.ip());
        let _ = stream.write_all(b"hi").await;
    }
    Ok(())
}

/// Connects to `addr`; fails if that takes longer than `timeout`.
pub async fn tcp_connect(addr: SocketAddr, timeout: Duration) -> Result<()> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => bail!("connect to {addr}: {e}"),
        Err(_) => bail!("connect to {addr}: no answer within {timeout:?}"),
    }
}

/// Echoes UDP datagrams on `addr` until killed.
pub async fn udp_echo(addr: SocketAddr) -> Result<()> {
    let socket = UdpSocket::bind(addr).await?;
    println!("listening");
    let mut buf = [0u8; 1500];
    loop {
        let (n, peer) = socket.recv_from(&mut buf).await?;
        socket.send_to(&buf[..n], peer).await?;
    }
}

/// Sends a datagram to `addr` (up to three times) and waits for its echo.
pub async fn udp_ask(addr: SocketAddr, timeout: Duration) -> Result<()> {
    let socket = UdpSocket::bind("0.0.0.0:0").await?;
    let mut buf = [0u8; 64];
    for _ in 0..3 {
        socket.send_to(b"ping", addr).await?;
        if let Ok(Ok((n, _))) = tokio::time::timeout(timeout / 3, socket.recv_from(&mut buf)).await
        {
            if &buf[..n] == b"ping" {
                return Ok(());
            }
        }
    }
    bail!("no UDP echo from {addr} within {timeout:?}")
}
