//! `probe tcp-echo`: a TCP echo service for raw TCP routes, optionally reading a PROXY
//! protocol v2 header first and printing the client address it carries.

use anyhow::{bail, Context, Result};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Echoes every connection on `addr` for at most `lifetime`, printing `listening` once bound.
/// With `proxy_v2`, each connection must start with a PROXY v2 header; its source address is
/// printed as `source ADDR` (or `source local` for a LOCAL command).
pub async fn serve(addr: SocketAddr, proxy_v2: bool, lifetime: Duration) -> Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!("listening");
    let accept = async {
        loop {
            let (stream, peer) = listener.accept().await?;
            tokio::spawn(async move {
                if let Err(e) = echo(stream, proxy_v2).await {
                    eprintln!("tcp-echo: {peer}: {e:#}");
                }
            });
        }
    };
    match tokio::time::timeout(lifetime, accept).await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

async fn echo(mut stream: TcpStream, proxy_v2: bool) -> Result<()> {
    if proxy_v2 {
        match read_proxy_v2(&mut stream).await? {
            Some(source) => println!("source {source}"),
            None => println!("source local"),
        }
    }
    let (mut read, mut write) = stream.split();
    tokio::io::copy(&mut read, &mut write).await?;
    write.shutdown().await?;
    Ok(())
}

/// Reads a PROXY protocol v2 header with the `ppp` crate (an implementation independent of
/// the one the members write with); returns the source address of a PROXY command over TCP
/// or UDP, `None` for LOCAL or an unspecified family.
pub async fn read_proxy_v2(stream: &mut (impl AsyncRead + Unpin)) -> Result<Option<SocketAddr>> {
    let mut header = vec![0u8; 16];
    stream
        .read_exact(&mut header)
        .await
        .context("reading the PROXY header")?;
    if header[..12] != SIGNATURE {
        bail!("no PROXY v2 signature: {:02x?}", &header[..12]);
    }
    let len = u16::from_be_bytes([header[14], header[15]]) as usize;
    header.resize(16 + len, 0);
    stream.read_exact(&mut header[16..]).await?;
    let parsed = ppp::v2::Header::try_from(&header[..])
        .map_err(|e| anyhow::anyhow!("not a PROXY v2 header: {e}"))?;
    if parsed.command == ppp::v2::Command::Local {
        return Ok(None);
    }
    Ok(match parsed.addresses {
        ppp::v2::Addresses::IPv4(a) => {
            Some(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
        }
        ppp::v2::Addresses::IPv6(a) => {
            let ip = a.source_address;
            let ip = ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4);
            Some(SocketAddr::new(ip, a.source_port))
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_proto::tunnel::proxy_v2_header;

    #[tokio::test]
    async fn reads_the_headers_the_members_send() {
        for (client, edge) in [
            ("198.18.0.12:40000", "198.18.0.11:2222"),
            ("[2001:db8::1]:5", "198.18.0.11:2222"),
        ] {
            let client: SocketAddr = client.parse().unwrap();
            let mut bytes = proxy_v2_header(client, edge.parse().unwrap());
            bytes.extend_from_slice(b"payload");
            let mut reader = bytes.as_slice();
            assert_eq!(read_proxy_v2(&mut reader).await.unwrap(), Some(client));
            assert_eq!(reader, b"payload");
        }
        let mut garbage: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(read_proxy_v2(&mut garbage).await.is_err());
    }
}
