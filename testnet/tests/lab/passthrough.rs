//! TLS passthrough ("blind edges", issue 12) with a real ACME CA (Pebble): a host published at
//! home with `--tls passthrough` is never terminated at the edges. They read only the
//! ClientHello and forward the raw bytes through the tunnel; the home obtains the certificate
//! from Pebble itself (TLS-ALPN-01 and HTTP-01 through the edges, DNS-01 on their DNS), holds
//! the only key and terminates. Proved from outside: no key in the edges' files, a capture on
//! an edge shows the name but never the plaintext (while it does show a plain-HTTP route's),
//! visitors with an unknown name, no name or no ClientHello at all are turned away while the
//! host is served, and one edge dying leaves the other serving.

use anyhow::{bail, ensure, Context, Result};
use hearth_proto::route::RouteTls;
use hearth_testnet::eventually::eventually;
use hearth_testnet::lab::{labs_can_run, Host, HttpsSite, LAB_CONVERGE};
use hearth_testnet::procs::Binaries;
use hearth_testnet::visitor::https::{self, LoopReport};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStderr};

/// The passthrough host, at home (inside the edges' zone, not directly under it).
const BLIND: &str = "blind.home.hearth.test";
/// A plain-HTTP route to the same backend: the capture's positive control.
const PLAIN: &str = "plain.home.hearth.test";
/// What the backend answers on `/`.
const BODY: &str = "hello from home";
/// `[ingress] header_read_timeout_ms` of every node in the first test (no `HEARTH_*`
/// override exists, so it comes from a config file): it bounds a ClientHello too.
const HEADER_TIMEOUT_MS: u64 = 3_000;

/// The DER that starts every PKCS#8 ECDSA P-256 private key (as in `https.rs`).
const P256_PKCS8: [u8; 25] = [
    0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
    0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04,
];

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A per-run string no other traffic carries.
fn marker(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{what}-marker-{}-{nanos}", std::process::id())
}

/// Whether tcpdump is here; like [`labs_can_run`], a skip is reported, and fails under CI.
fn tcpdump_can_run(test: &str) -> bool {
    let found = std::process::Command::new("tcpdump")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return true;
    }
    let required = std::env::var_os("CI").is_some()
        || std::env::var("HEARTH_LAB").is_ok_and(|v| v == "require");
    assert!(
        !required,
        "{test}: tcpdump is missing (apt-get install tcpdump), but CI requires lab tests to run"
    );
    eprintln!("SKIPPED {test}: tcpdump is missing (apt-get install tcpdump)");
    false
}

/// `tcpdump -i any` inside a lab host, writing every packet to a file.
struct Capture {
    child: Child,
    stderr: tokio::io::Lines<BufReader<ChildStderr>>,
    file: PathBuf,
}

impl Capture {
    /// Starts capturing on `host` into `file`; returns once tcpdump listens.
    async fn start(host: &Host, file: &Path) -> Result<Self> {
        let mut child = host
            .command(Path::new("tcpdump"))
            // Immediate mode and packet-buffered output: every packet reaches the file as it
            // is seen, not when a ring block fills.
            .args([
                "-i",
                "any",
                "-n",
                "--immediate-mode",
                "-U",
                "-s",
                "0",
                "-Z",
                "root",
                "-w",
            ])
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting tcpdump")?;
        let mut stderr = BufReader::new(child.stderr.take().context("no stderr")?).lines();
        let listening = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = stderr.next_line().await? {
                if line.contains("listening on") {
                    return Ok(());
                }
            }
            bail!("tcpdump on {} exited before listening", host.name)
        })
        .await;
        match listening {
            Ok(result) => result?,
            Err(_) => bail!("tcpdump on {} did not start listening", host.name),
        }
        Ok(Self {
            child,
            stderr,
            file: file.to_path_buf(),
        })
    }

    /// Waits until the capture file holds `bytes` (so the traffic of interest was seen).
    async fn holds(&self, bytes: &[u8], what: &str) -> Result<()> {
        eventually(what, Duration::from_secs(20), || async {
            ensure!(contains(&std::fs::read(&self.file)?, bytes), "not yet");
            Ok(())
        })
        .await
    }

    /// Stops tcpdump with SIGINT, waits until it has flushed and exited, and returns the
    /// capture file's bytes and how many packets tcpdump wrote.
    async fn stop(mut self) -> Result<(Vec<u8>, u64)> {
        let pid = self.child.id().context("tcpdump already exited")?;
        let status = tokio::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .await?;
        ensure!(status.success(), "kill -INT {pid}: {status}");
        let exited = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .context("tcpdump did not exit after SIGINT")??;
        let mut summary = Vec::new();
        while let Some(line) = self.stderr.next_line().await? {
            summary.push(line);
        }
        let summary = summary.join("; ");
        ensure!(exited.success(), "tcpdump: {exited}: {summary}");
        let packets = summary
            .split_once(" packets captured")
            .and_then(|(n, _)| n.rsplit(' ').next()?.parse().ok())
            .with_context(|| format!("no packet count in tcpdump's summary: {summary}"))?;
        let bytes = std::fs::read(&self.file)
            .with_context(|| format!("reading {}", self.file.display()))?;
        Ok((bytes, packets))
    }
}

/// Checks that `node` shows certificate `name` as a passthrough host's at home: issued by the
/// home, its key sealed to the home alone, validated by `challenge` only.
async fn passthrough_row(site: &HttpsSite, node: &str, name: &str, challenge: &str) -> Result<()> {
    let row = site.cert_row(node, name).await?;
    if node == "home" {
        eprintln!(
            "{name}: mode {} issuer {} holders {:?} challenges {:?}",
            row.mode, row.issuer_name, row.holders, row.challenges
        );
    }
    ensure!(
        row.mode == RouteTls::Passthrough
            && row.issuer_name == "home"
            && row.holders == ["home"]
            && row.names == [name],
        "{node}: {row:?}"
    );
    ensure!(
        !row.challenges.is_empty() && row.challenges.iter().all(|c| c.starts_with(challenge)),
        "{node}: {name} validated by {:?}, want {challenge}",
        row.challenges
    );
    Ok(())
}

fn millis_after(line: &str, prefix: &str) -> Result<u64> {
    line.strip_prefix(prefix)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no milliseconds in {line:?}"))
}

#[tokio::test]
async fn a_passthrough_host_is_served_by_blind_edges_that_never_hold_its_key_or_plaintext(
) -> Result<()> {
    let test = "lab TLS passthrough with Pebble, TLS-ALPN-01";
    if !labs_can_run(test) || !tcpdump_can_run(test) {
        return Ok(());
    }
    let bins = Binaries::locate()?;
    let config = format!("[ingress]\nheader_read_timeout_ms = {HEADER_TIMEOUT_MS}\n");
    let mut site = HttpsSite::start_with_config(
        &bins,
        &[("HEARTH_ACME_CHALLENGE", "tls-alpn-01")],
        Some(&config),
    )
    .await?;
    let result = blind_edges(&mut site).await;
    site.mesh.explain(site.pebble.explain_err(result))
}

async fn blind_edges(site: &mut HttpsSite) -> Result<()> {
    let probe = site.probe().to_path_buf();
    let dir = site.dir.path().to_path_buf();
    let client = site.client()?.clone();
    let pub1 = site.mesh.lab.host("pub1")?.clone();
    let tls_at = |host: &Host| format!("{}:443", host.addr);
    let pub2_tls = tls_at(site.mesh.lab.host("pub2")?);

    // 1. The home obtains the passthrough host's certificate itself, over TLS-ALPN-01 through
    //    the edges: one order, the home the issuer and the only holder, on every node's view.
    site.publish_tls(BLIND, RouteTls::Passthrough).await?;
    site.publish_tls(PLAIN, RouteTls::Off).await?;
    let row = site.valid_everywhere(BLIND, None).await?;
    let serial = row.serial.clone().context("no serial")?;
    for node in ["pub1", "pub2", "home"] {
        passthrough_row(site, node, BLIND, "tls-alpn-01").await?;
    }
    for edge in ["pub1", "pub2"] {
        site.serves(edge, BLIND, &serial).await?;
    }
    // Over h2 and http/1.1 through both edges, verified against Pebble's root; the backend
    // sees the visitor's own address and that it came over HTTPS.
    let visitor = client.addr;
    for edge in ["pub1", "pub2"] {
        for (alpn, proto) in [("h2", "h2"), ("http1", "http/1.1")] {
            let (head, body) = site.https_path(edge, BLIND, alpn, "/headers").await?;
            ensure!(
                head.starts_with("status=200 ")
                    && head.contains(&format!("proto={proto} "))
                    && head.contains("verified=true")
                    && head.contains(&format!("serial={serial} "))
                    && head.contains("issuer=CN=Pebble"),
                "{edge} {alpn}: {head}"
            );
            let lines: Vec<&str> = body.lines().collect();
            for want in [
                format!("x-forwarded-for: {visitor}"),
                "x-forwarded-proto: https".to_string(),
                format!("forwarded: for={visitor};host={BLIND};proto=https"),
            ] {
                ensure!(
                    lines.contains(&want.as_str()),
                    "{edge} {alpn}: the backend did not see `{want}`:\n{body}"
                );
            }
        }
    }
    // `:80` sends visitors to HTTPS: the edges never serve the host in plain HTTP.
    for edge in ["pub1", "pub2"] {
        site.redirects_to_https(edge, BLIND).await?;
    }
    ensure!(
        site.pebble.orders() == 1 && site.pebble.issued() == 1,
        "orders {} issued {}: only the home orders the passthrough host's certificate",
        site.pebble.orders(),
        site.pebble.issued()
    );

    // 2a. No private key in plaintext in any node's files; the edges cannot open the box.
    let made = rcgen::KeyPair::generate()?.serialize_der();
    ensure!(
        contains(&made, &P256_PKCS8),
        "the audit's marker does not match a real key"
    );
    let files = site.node_files()?;
    for edge in ["pub1", "pub2"] {
        ensure!(
            files.iter().filter(|(node, _)| node == edge).count() > 1,
            "{edge} has no files to audit: {files:?}"
        );
    }
    for (node, path) in &files {
        let bytes = std::fs::read(path)?;
        ensure!(
            !contains(&bytes, &P256_PKCS8) && !contains(&bytes, b"PRIVATE KEY"),
            "{node}: a private key in plaintext in {}",
            path.display()
        );
    }

    // 2b. A capture on pub1 while a visitor fetches a page through it: the ClientHello's name
    //     is there, the request and the answer are not. The same capture of a plain-HTTP
    //     route shows both, so the search would have found them.
    let secret = marker("blind");
    let capture = Capture::start(&pub1, &dir.join("passthrough.pcap")).await?;
    let (head, body) = site
        .https_path("pub1", BLIND, "http1", &format!("/?{secret}"))
        .await?;
    ensure!(
        head.starts_with("status=200 ") && body.contains(BODY),
        "{head}\n{body}"
    );
    capture
        .holds(
            BLIND.as_bytes(),
            "the capture on pub1 shows the ClientHello's name",
        )
        .await?;
    let (seen, packets) = capture.stop().await?;
    eprintln!(
        "passthrough capture: {packets} packets, {} bytes",
        seen.len()
    );
    // The visitor's handshake, request, answer and close, and the tunnel's packets.
    ensure!(packets >= 10, "only {packets} packets captured on pub1");
    ensure!(
        !contains(&seen, secret.as_bytes()) && !contains(&seen, BODY.as_bytes()),
        "pub1's traffic carries the passthrough request or answer in plaintext"
    );
    let open = marker("plain");
    let capture = Capture::start(&pub1, &dir.join("plain.pcap")).await?;
    let out = client
        .run(
            &probe,
            &[
                "probe",
                "http",
                &format!("http://{}/?{open}", pub1.addr),
                "--host",
                PLAIN,
            ],
        )
        .await?;
    ensure!(out.contains(BODY), "{out}");
    capture
        .holds(
            open.as_bytes(),
            "the control capture shows the plain-HTTP request",
        )
        .await?;
    let (seen, packets) = capture.stop().await?;
    ensure!(
        contains(&seen, BODY.as_bytes()),
        "the control capture on pub1 ({packets} packets) lacks the plain-HTTP answer"
    );

    // 3. A visitor naming a host nobody publishes, one sending no name, and one that never
    //    finishes its ClientHello are turned away by pub1 while another is served there.
    let pub1_tls = tls_at(&pub1);
    let bound = 3 * HEADER_TIMEOUT_MS;
    let mut slow = client
        .command(&probe)
        .args([
            "probe",
            "slow-hello",
            &pub1_tls,
            "--max-ms",
            &(bound + 5_000).to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(slow.stdout.take().context("slow-hello stdout")?).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await;
    ensure!(
        matches!(&first, Ok(Ok(Some(l))) if l == "started"),
        "slow-hello did not start: {first:?}"
    );
    let refused = |name: String| {
        let (client, probe, connect) = (client.clone(), probe.clone(), pub1_tls.clone());
        async move {
            let got = client
                .run(
                    &probe,
                    &["probe", "https", "--connect", &connect, "--name", &name],
                )
                .await;
            match got {
                Ok(out) => bail!("pub1 served {name}: {out}"),
                Err(e) => {
                    let e = format!("{e:#}");
                    ensure!(e.contains("UnrecognisedName"), "{name}: {e}");
                    Ok(e)
                }
            }
        }
    };
    let (bogus, nameless, served) = tokio::join!(
        refused("bogus.home.hearth.test".to_string()),
        // A name that is an address: rustls sends no SNI.
        refused(pub1.addr.to_string()),
        site.https("pub1", BLIND, "both"),
    );
    let (bogus, nameless, (head, _)) = (bogus?, nameless?, served?);
    ensure!(head.starts_with("status=200 "), "{head}");
    eprintln!("bogus SNI: {bogus}\nno SNI: {nameless}");
    ensure!(
        slow.try_wait()?.is_none(),
        "the silent connection ended before the other visitors were answered"
    );
    let last = tokio::time::timeout(Duration::from_millis(bound + 10_000), lines.next_line())
        .await
        .context("slow-hello never reported")??;
    let status = slow.wait().await?;
    let Some(line) = last else {
        let mut err = String::new();
        if let Some(mut stderr) = slow.stderr.take() {
            stderr.read_to_string(&mut err).await?;
        }
        bail!("slow-hello failed ({status}): {}", err.trim());
    };
    eprintln!("slow ClientHello: {line}");
    let ms = millis_after(&line, "closed after ")?;
    ensure!(
        (HEADER_TIMEOUT_MS / 2..=bound).contains(&ms),
        "the silent connection was closed after {ms} ms; header_read_timeout is {HEADER_TIMEOUT_MS} ms"
    );

    // 4. Kill -9 pub2 under an HTTPS loop through both edges: pub1 never fails and keeps
    //    serving the host with the same certificate.
    let (ready, stop, progress) = (
        dir.join("loop-ready"),
        dir.join("loop-stop"),
        dir.join("loop-progress"),
    );
    let mut looping = https::LoopArgs {
        connect: vec![pub1_tls.clone(), pub2_tls.clone()],
        name: BLIND.into(),
        ca: site.root.clone(),
        ready_file: ready.clone(),
        stop_file: stop.clone(),
        max_secs: 120,
        pause_ms: 20,
        progress_file: Some(progress.clone()),
    }
    .spawn_in(&client, &probe)?;
    let now = || -> Result<LoopReport> { std::fs::read_to_string(&progress)?.parse() };
    eventually(
        "the HTTPS loop is served by both edges",
        LAB_CONVERGE,
        || async {
            ensure!(ready.exists(), "not yet");
            let seen = now()?;
            ensure!(seen.served.values().all(|&n| n >= 10), "{seen}");
            Ok(())
        },
    )
    .await?;
    site.mesh.node_mut("pub2")?.kill().await;
    let at_kill = now()?;
    let after = eventually("pub1 serves on with pub2 dead", LAB_CONVERGE, || async {
        let seen = now()?;
        ensure!(
            seen.served[&pub1_tls] >= at_kill.served[&pub1_tls] + 20
                && seen.failed[&pub2_tls] > at_kill.failed[&pub2_tls],
            "{seen}"
        );
        Ok(seen)
    })
    .await?;
    let (report, out) = https::stop_loop(&mut looping, &stop).await?;
    eprintln!("pub2 killed under load: at the kill {at_kill}\nthen {after}\nend {out}");
    ensure!(report.failed[&pub1_tls] == 0, "pub1 failed: {out}");
    ensure!(
        report.served[&pub2_tls] <= at_kill.served[&pub2_tls] + 1,
        "pub2 answered after it was killed: {out}"
    );
    ensure!(
        report.serials[&pub1_tls] == [serial.clone()],
        "pub1 served {:?}",
        report.serials[&pub1_tls]
    );
    Ok(())
}

#[tokio::test]
async fn passthrough_hosts_get_certificates_over_http_01_and_dns_01_as_the_home_prefers(
) -> Result<()> {
    if !labs_can_run("lab TLS passthrough with Pebble, HTTP-01 and DNS-01") {
        return Ok(());
    }
    let bins = Binaries::locate()?;
    // Every node prefers HTTP-01 at first: the edges keep that preference throughout.
    let mut site = HttpsSite::start(&bins, &[("HEARTH_ACME_CHALLENGE", "http-01")]).await?;
    let result = async {
        // HTTP-01: Pebble asks pub1's :80, which forwards the request over the tunnel.
        let web = "web.home.hearth.test";
        site.publish_tls(web, RouteTls::Passthrough).await?;
        let row = site.valid_everywhere(web, None).await?;
        let web_serial = row.serial.clone().context("no serial")?;
        for node in ["pub1", "pub2", "home"] {
            passthrough_row(&site, node, web, "http-01").await?;
        }
        for edge in ["pub1", "pub2"] {
            site.serves(edge, web, &web_serial).await?;
        }
        // The home alone chooses its challenge: restarted preferring DNS-01, it has its next
        // passthrough host validated through the edges' DNS.
        let home = site.mesh.node_mut("home")?;
        home.set_env("HEARTH_ACME_CHALLENGE", "dns-01");
        home.kill().await;
        home.run().await?;
        let txt = "txt.home.hearth.test";
        site.publish_tls(txt, RouteTls::Passthrough).await?;
        let row = site.valid_everywhere(txt, None).await?;
        let txt_serial = row.serial.clone().context("no serial")?;
        for node in ["pub1", "pub2", "home"] {
            passthrough_row(&site, node, txt, "dns-01").await?;
        }
        for edge in ["pub1", "pub2"] {
            site.serves(edge, txt, &txt_serial).await?;
            // The restarted home reopened the first host's sealed key.
            site.serves(edge, web, &web_serial).await?;
        }
        ensure!(
            site.pebble.orders() == 2 && site.pebble.issued() == 2,
            "orders {} issued {}",
            site.pebble.orders(),
            site.pebble.issued()
        );
        Ok(())
    }
    .await;
    site.mesh.explain(site.pebble.explain_err(result))
}
