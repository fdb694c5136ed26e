//! What the HTTPS paths need on the client host: the published name resolving to the VPS
//! (wrk takes TLS SNI from the URL's host and has no `--resolve`), and what TLS each server
//! negotiates with OpenSSL's defaults (wrk's library), including whether it resumes sessions.

use super::measure::Target;
use crate::lab::Host;
use anyhow::{bail, Context, Result};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// An HTTPS server by name: where it listens and the name it serves (SNI, Host, URL).
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The host name in the URL, sent as SNI and Host.
    pub name: &'static str,
    /// The server's address.
    pub addr: Ipv4Addr,
    /// Its TCP port.
    pub port: u16,
}

impl Endpoint {
    /// The target wrk and curl use: `https://NAME[:PORT]`, resolved by the client's hosts file.
    pub fn target(&self) -> Target {
        let port = match self.port {
            443 => String::new(),
            p => format!(":{p}"),
        };
        Target {
            base: format!("https://{}{port}", self.name),
            host_header: None,
        }
    }
}

/// `/etc/netns/<ns>/hosts`, which `ip netns exec <ns>` bind-mounts over `/etc/hosts` for every
/// program it starts afterwards; removed (with its directory) when dropped.
#[derive(Debug)]
pub struct NetnsHosts {
    dir: PathBuf,
    /// Whether `/etc/netns` itself was made here (then it is removed again if left empty).
    made_parent: bool,
}

/// The text of a hosts file mapping each name to its address, besides localhost.
pub fn hosts_text(entries: &[(&str, Ipv4Addr)]) -> String {
    let mut text = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n");
    for (name, addr) in entries {
        text.push_str(&format!("{addr}\t{name}\n"));
    }
    text
}

impl NetnsHosts {
    /// Writes the hosts file of namespace `ns` (a namespace of this run's lab). Fails if the
    /// namespace already has an `/etc/netns` directory: that is not this run's to replace.
    pub fn write(ns: &str, entries: &[(&str, Ipv4Addr)]) -> Result<Self> {
        let parent = Path::new("/etc/netns");
        let made_parent = !parent.exists();
        let dir = parent.join(ns);
        if dir.exists() {
            bail!(
                "{} exists already; not replacing another program's files",
                dir.display()
            );
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let guard = Self { dir, made_parent };
        let file = guard.dir.join("hosts");
        std::fs::write(&file, hosts_text(entries))
            .with_context(|| format!("writing {}", file.display()))?;
        Ok(guard)
    }
}

impl Drop for NetnsHosts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if self.made_parent {
            // Only if empty: another lab may have started using it meanwhile.
            let _ = std::fs::remove_dir("/etc/netns");
        }
    }
}

/// The TLS one connection negotiated, as `openssl s_client` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// `TLSv1.3`.
    pub version: String,
    /// `TLS_AES_128_GCM_SHA256`.
    pub cipher: String,
    /// Whether it resumed an earlier session.
    pub reused: bool,
}

/// Reads the `New, TLSv1.3, Cipher is X` or `Reused, TLSv1.3, Cipher is X` line of
/// `openssl s_client`'s output.
pub fn parse_s_client(out: &str) -> Option<Session> {
    out.lines().find_map(|line| {
        let (kind, rest) = line.trim().split_once(", ")?;
        let reused = match kind {
            "New" => false,
            "Reused" => true,
            _ => return None,
        };
        let (version, cipher) = rest.split_once(", Cipher is ")?;
        Some(Session {
            version: version.trim().to_string(),
            cipher: cipher.trim().to_string(),
            reused,
        })
    })
}

/// What TLS `server` negotiates with an OpenSSL client from `client`, and whether the second
/// connection resumes the first one's session (as wrk's connections do: wrk keeps the session
/// of its previous connection, so with `Connection: close` it offers a resumption every time).
/// One request per connection, so TLS 1.3 session tickets are read before it closes.
pub async fn session(client: &Host, server: &Endpoint, dir: &Path) -> Result<Session> {
    let file = dir.join(format!("tls-session-{}-{}", server.name, server.port));
    let _ = std::fs::remove_file(&file);
    let file_arg = file.to_string_lossy().into_owned();
    let first = s_client(client, server, &["-sess_out", &file_arg]).await?;
    let first = parse_s_client(&first).with_context(|| format!("s_client said:\n{first}"))?;
    let second = s_client(client, server, &["-sess_in", &file_arg]).await?;
    let second = parse_s_client(&second).with_context(|| format!("s_client said:\n{second}"))?;
    let _ = std::fs::remove_file(&file);
    Ok(Session {
        reused: second.reused,
        ..first
    })
}

/// `openssl s_client` to `server` from `client` sending one `Connection: close` request,
/// offering no ALPN (like wrk); its stdout.
async fn s_client(client: &Host, server: &Endpoint, extra: &[&str]) -> Result<String> {
    let connect = format!("{}:{}", server.addr, server.port);
    let mut cmd = client.command(Path::new("openssl"));
    cmd.args([
        "s_client",
        "-connect",
        &connect,
        "-servername",
        server.name,
        "-ign_eof",
    ])
    .args(extra)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut child = cmd.spawn().context("starting openssl s_client")?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        super::nginx::SMALL,
        server.name
    );
    stdin.write_all(request.as_bytes()).await?;
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .context("openssl s_client did not finish within 10 s")??;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_the_port_unless_it_is_443() {
        let addr = Ipv4Addr::new(198, 18, 0, 11);
        let edge = Endpoint {
            name: "bench.hearth.test",
            addr,
            port: 443,
        };
        assert_eq!(edge.target().base, "https://bench.hearth.test");
        let caddy = Endpoint { port: 8443, ..edge };
        assert_eq!(caddy.target().base, "https://bench.hearth.test:8443");
    }

    #[test]
    fn hosts_file_maps_the_name() {
        let text = hosts_text(&[("bench.hearth.test", Ipv4Addr::new(198, 18, 0, 11))]);
        assert!(text.starts_with("127.0.0.1\tlocalhost\n"), "{text}");
        assert!(text.ends_with("198.18.0.11\tbench.hearth.test\n"), "{text}");
    }

    #[test]
    fn s_client_sessions_are_read() {
        let new = "CONNECTED(00000003)\n---\nNew, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384\nServer public key is 256 bit\n";
        assert_eq!(
            parse_s_client(new),
            Some(Session {
                version: "TLSv1.3".into(),
                cipher: "TLS_AES_256_GCM_SHA384".into(),
                reused: false,
            })
        );
        let reused = "---\nReused, TLSv1.3, Cipher is TLS_AES_128_GCM_SHA256\n";
        assert!(parse_s_client(reused).unwrap().reused);
        assert_eq!(parse_s_client("CONNECTED(00000003)\nerror\n"), None);
    }
}
