//! `probe tcp-echo`: a TCP echo service for raw TCP routes, optionally reading a PROXY
//! protocol v2 header first and printing the client address it carries.

use anyhow::{bail, Context, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
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

/// Reads a PROXY protocol v2 header; returns the source address of a PROXY command over TCP
/// or UDP, `None` for LOCAL or an unspecified family.
pub async fn read_proxy_v2(stream: &mut (impl AsyncRead + Unpin)) -> Result<Option<SocketAddr>> {
    let mut fixed = [0u8; 16];
    stream
        .read_exact(&mut fixed)
        .await
        .context("reading the PROXY header")?;
    if fixed[..12] != SIGNATURE {
        bail!("no PROXY v2 signature: {:02x?}", &fixed[..12]);
    }
    let (version, command) = (fixed[12] >> 4, fixed[12] & 0x0f);
    if version != 2 || command > 1 {
        bail!("PROXY version/command byte {:#04x}", fixed[12]);
    }
    let len = u16::from_be_bytes([fixed[14], fixed[15]]) as usize;
    let mut rest = vec![0u8; len];
    stream.read_exact(&mut rest).await?;
    if command == 0 {
        return Ok(None);
    }
    let source = match fixed[13] >> 4 {
        1 if len >= 12 => {
            let ip = Ipv4Addr::new(rest[0], rest[1], rest[2], rest[3]);
            let port = u16::from_be_bytes([rest[8], rest[9]]);
            SocketAddr::new(IpAddr::V4(ip), port)
        }
        2 if len >= 36 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&rest[..16]);
            let ip = Ipv6Addr::from(octets);
            let ip = ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4);
            SocketAddr::new(ip, u16::from_be_bytes([rest[32], rest[33]]))
        }
        0 => return Ok(None),
        family => bail!("PROXY family {family} with {len} address bytes"),
    };
    Ok(Some(source))
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
