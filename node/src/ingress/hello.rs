//! Reading a TLS ClientHello with rustls' own parser (its [`Acceptor`]) while keeping the raw
//! bytes: the edge needs the SNI (and ALPN) to choose, then either completes the handshake
//! itself or forwards exactly those bytes to the member that terminates a passthrough host.
//!
//! Bounded in time (the caller's deadline, the header-read timeout) and size
//! ([`MAX_HELLO_BYTES`]), so a slow or endless ClientHello costs one small buffer for a
//! bounded time.

use rustls::server::{Accepted, Acceptor};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

/// Most bytes read before the ClientHello must be complete: one full TLS record (16 KiB) is
/// far above any real ClientHello, post-quantum key shares included (about 2 KiB).
pub const MAX_HELLO_BYTES: usize = 16 * 1024 + 5;

/// Why no ClientHello could be had.
#[derive(Debug, thiserror::Error)]
pub enum HelloError {
    /// The visitor closed first.
    #[error("the connection closed before a complete ClientHello")]
    Closed,
    /// The deadline passed.
    #[error("no complete ClientHello in time")]
    Timeout,
    /// Too many bytes without a complete ClientHello.
    #[error("no complete ClientHello within {MAX_HELLO_BYTES} bytes")]
    TooLarge,
    /// Not TLS, or a ClientHello rustls refuses (the visitor got rustls' alert).
    #[error("not a valid TLS ClientHello: {0}")]
    Invalid(rustls::Error),
    /// Reading failed.
    #[error("reading the ClientHello: {0}")]
    Io(#[from] std::io::Error),
}

/// A parsed ClientHello and every byte read to get it.
pub struct Hello {
    /// rustls' view of it, from which the handshake can go on here.
    pub accepted: Accepted,
    /// The bytes the visitor sent so far, ClientHello first: what a passthrough forwards.
    pub raw: Vec<u8>,
}

impl Hello {
    /// The server name the visitor asked for, lowercase.
    pub fn server_name(&self) -> Option<String> {
        self.accepted
            .client_hello()
            .server_name()
            .map(|n| n.to_ascii_lowercase())
    }

    /// Whether the visitor offers ALPN `protocol`.
    pub fn offers(&self, protocol: &[u8]) -> bool {
        self.accepted
            .client_hello()
            .alpn()
            .is_some_and(|mut offered| offered.any(|p| p == protocol))
    }
}

impl std::fmt::Debug for Hello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hello")
            .field("server_name", &self.server_name())
            .field("raw_len", &self.raw.len())
            .finish()
    }
}

/// Reads from `io` (after the bytes already in `raw`) until rustls has a whole ClientHello.
pub async fn read_client_hello<IO>(
    io: &mut IO,
    mut raw: Vec<u8>,
    deadline: Instant,
) -> Result<Hello, HelloError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut acceptor = Acceptor::default();
    let mut fed = 0;
    let mut chunk = vec![0u8; 4096];
    loop {
        while fed < raw.len() {
            let n = acceptor.read_tls(&mut &raw[fed..])?;
            if n == 0 {
                break;
            }
            fed += n;
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => return Ok(Hello { accepted, raw }),
            Ok(None) => {}
            Err((error, mut alert)) => {
                let mut out = Vec::new();
                if alert.write_all(&mut out).is_ok() {
                    let _ = io.write_all(&out).await;
                }
                return Err(HelloError::Invalid(error));
            }
        }
        if raw.len() >= MAX_HELLO_BYTES {
            return Err(HelloError::TooLarge);
        }
        let room = chunk.len().min(MAX_HELLO_BYTES - raw.len());
        let n = tokio::time::timeout_at(deadline, io.read(&mut chunk[..room]))
            .await
            .map_err(|_| HelloError::Timeout)??;
        if n == 0 {
            return Err(HelloError::Closed);
        }
        raw.extend_from_slice(&chunk[..n]);
    }
}

/// A stream whose first bytes were already read: they are read again first.
#[derive(Debug)]
pub struct Prefixed<IO> {
    prefix: Vec<u8>,
    at: usize,
    inner: IO,
}

impl<IO> Prefixed<IO> {
    /// `inner`, with `prefix` in front of what it reads.
    pub fn new(prefix: Vec<u8>, inner: IO) -> Self {
        Self {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.prefix.len() {
            let n = buf.remaining().min(this.prefix.len() - this.at);
            buf.put_slice(&this.prefix[this.at..this.at + n]);
            this.at += n;
            if this.at == this.prefix.len() {
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A real ClientHello for `name`, made by a rustls client.
    fn client_hello(name: &str, alpn: &[&[u8]]) -> Vec<u8> {
        let roots = rustls::RootCertStore::empty();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let server_name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(config), server_name).unwrap();
        let mut out = Vec::new();
        client.write_tls(&mut out).unwrap();
        out
    }

    use std::sync::Arc;

    async fn read_from(bytes: Vec<u8>, split: usize) -> Result<Hello, HelloError> {
        let (mut near, mut far) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let split = split.min(bytes.len());
            far.write_all(&bytes[..split]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            far.write_all(&bytes[split..]).await.unwrap();
            // Keep the far end open until the reader is done.
            let mut sink = Vec::new();
            let _ = far.read_to_end(&mut sink).await;
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        read_client_hello(&mut near, Vec::new(), deadline).await
    }

    #[tokio::test]
    async fn a_hello_split_anywhere_is_read_whole_with_its_raw_bytes() {
        let bytes = client_hello("Blog.Example.com", &[b"h2", b"acme-tls/1"]);
        for split in [1, 5, 6, 40, bytes.len() - 1] {
            let hello = read_from(bytes.clone(), split).await.unwrap();
            assert_eq!(hello.server_name().as_deref(), Some("blog.example.com"));
            assert!(hello.offers(b"acme-tls/1"));
            assert!(!hello.offers(b"http/1.1"));
            assert_eq!(hello.raw, bytes, "split at {split}");
        }
    }

    #[tokio::test]
    async fn garbage_and_plain_http_are_refused_and_endless_records_are_capped() {
        let err = read_from(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(), 3)
            .await
            .unwrap_err();
        assert!(matches!(err, HelloError::Invalid(_)), "{err}");
        // A handshake record header announcing 16 KiB, then an endless body.
        let mut endless = vec![0x16, 0x03, 0x01, 0x40, 0x00];
        endless.extend(std::iter::repeat_n(0x01, 3 * MAX_HELLO_BYTES));
        let err = read_from(endless, 100).await.unwrap_err();
        assert!(
            matches!(err, HelloError::TooLarge | HelloError::Invalid(_)),
            "{err}"
        );
        let err = read_from(Vec::new(), 0).await;
        assert!(err.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_visitor_times_out() {
        let (mut near, _far) = tokio::io::duplex(1024);
        let deadline = Instant::now() + Duration::from_secs(10);
        let err = read_client_hello(&mut near, Vec::new(), deadline)
            .await
            .unwrap_err();
        assert!(matches!(err, HelloError::Timeout), "{err}");
    }

    #[tokio::test]
    async fn prefixed_streams_read_the_prefix_first() {
        let (near, mut far) = tokio::io::duplex(1024);
        far.write_all(b" world").await.unwrap();
        drop(far);
        let mut stream = Prefixed::new(b"hello".to_vec(), near);
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
    }
}
