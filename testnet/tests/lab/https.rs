//! HTTPS with certificates from a real ACME CA: Pebble (Debian's, 2.4, `-strict`) on its own
//! lab host, two public edges, a home behind NAT serving the sites, a client that trusts only
//! Pebble's issuing root. See src/lab/https_site.rs for why an order issued by `pub2` tests
//! that every edge serves the challenge answers before the CA is told.

use anyhow::{ensure, Context, Result};
use hearth_proto::api::{CommandV1, ResponseV1};
use hearth_proto::cert::{CertAction, CertState};
use hearth_testnet::eventually::eventually;
use hearth_testnet::lab::{labs_can_run, HttpsSite, LAB_CONVERGE};
use hearth_testnet::procs::Binaries;
use hearth_testnet::visitor::https;

/// The DER that starts every PKCS#8 ECDSA P-256 private key (version 0, ecPublicKey,
/// prime256v1, then the key's OCTET STRING): a certificate's public key never has the
/// version and OCTET STRING around the same algorithm.
const P256_PKCS8: [u8; 25] = [
    0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
    0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04,
];

fn names(prefix: &str) -> Vec<String> {
    (1..64)
        .map(|i| format!("{prefix}{i}.home.hearth.test"))
        .collect()
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(&format!("{key}=")))
}

#[tokio::test]
async fn edges_share_pebble_certificates_resume_a_dead_issuers_order_and_renew() -> Result<()> {
    if !labs_can_run("lab HTTPS with Pebble") {
        return Ok(());
    }
    let bins = Binaries::locate()?;
    // A propagation wait holds each order a few seconds with every edge serving its answers:
    // the moment the issuer is killed below.
    let mut site = HttpsSite::start(&bins, &[("HEARTH_ACME_PROPAGATION_WAIT", "5s")]).await?;
    let result = scenario(&mut site).await;
    site.mesh.explain(site.pebble.explain_err(result))
}

async fn scenario(site: &mut HttpsSite) -> Result<()> {
    let probe = site.probe().to_path_buf();
    let root = site.root.to_string_lossy().into_owned();
    let addrs = [
        ("pub1", format!("{}:443", site.mesh.lab.host("pub1")?.addr)),
        ("pub2", format!("{}:443", site.mesh.lab.host("pub2")?.addr)),
    ];
    let edge = move |name: &str| -> Result<String> {
        addrs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| a.clone())
            .context("no such edge")
    };

    // 1. A host published at home is served over HTTPS on both edges with one certificate
    //    from one order, issued by pub2 (so pub1, where Pebble validates, must serve pub2's
    //    answers).
    let app = site.name_issued_by("pub2", &names("app")).await?;
    site.publish(&app).await?;
    let first = site.valid_everywhere(&app, None).await?;
    ensure!(first.issuer_name == "pub2", "{first:?}");
    ensure!(
        first.holders.contains(&"pub1".to_string())
            && first.holders.contains(&"pub2".to_string())
            && !first.holders.contains(&"home".to_string()),
        "{first:?}"
    );
    ensure!(
        first.challenges.iter().all(|c| c.starts_with("http-01")),
        "{first:?}"
    );
    let serial = first.serial.clone().context("no serial")?;
    for edge in ["pub1", "pub2"] {
        site.serves(edge, &app, &serial).await?;
    }
    let (h2, _) = site.https("pub1", &app, "h2").await?;
    ensure!(
        h2.contains("proto=h2") && h2.contains("issuer=CN=Pebble"),
        "{h2}"
    );
    let (h1, headers) = site.https("pub2", &app, "http1").await?;
    ensure!(h1.contains("proto=http/1.1"), "{h1}");
    ensure!(headers.contains("hello from home"), "{headers}");
    let client = site.client()?.clone();
    for name in ["pub1", "pub2"] {
        let out = client
            .run(
                &probe,
                &[
                    "probe",
                    "wss-echo",
                    "--connect",
                    &edge(name)?,
                    "--name",
                    &app,
                    "--ca",
                    &root,
                    "--count",
                    "200",
                ],
            )
            .await?;
        ensure!(out.contains(&format!("serial={serial}")), "{out}");
    }
    // :80 sends visitors to HTTPS with a 308, path and query kept.
    site.redirects_to_https("pub1", &app).await?;
    ensure!(
        site.pebble.orders() == 1 && site.pebble.issued() == 1,
        "orders {} issued {} after the first certificate",
        site.pebble.orders(),
        site.pebble.issued()
    );

    // 2. Kill -9 the issuer while its order waits with every edge serving the answers: the
    //    other edge resumes the same order; the name gets exactly one certificate.
    let cloud = site.name_issued_by("pub2", &names("cloud")).await?;
    site.publish(&cloud).await?;
    eventually(
        "pub2's order waits with both edges serving its answers",
        LAB_CONVERGE,
        || async {
            let row = site.cert_row("pub1", &cloud).await?;
            ensure!(
                row.state == CertState::Pending
                    && row.issuer_name == "pub2"
                    && row.detail.contains("2 of 2 edges"),
                "{:?}: {}",
                row.state,
                row.detail
            );
            Ok(())
        },
    )
    .await?;
    ensure!(site.pebble.orders() == 2, "orders {}", site.pebble.orders());
    site.mesh.node_mut("pub2")?.kill().await;
    let resumed = site.valid_everywhere(&cloud, None).await?;
    ensure!(resumed.issuer_name == "pub1", "{resumed:?}");
    ensure!(
        site.pebble.orders() == 2 && site.pebble.issued() == 2,
        "orders {} issued {}: the order was not resumed",
        site.pebble.orders(),
        site.pebble.issued()
    );
    let cloud_serial = resumed.serial.clone().context("no serial")?;
    site.serves("pub1", &cloud, &cloud_serial).await?;
    // pub2 comes back, is elected again, and gets the key of the certificate it missed.
    site.mesh.node_mut("pub2")?.run().await?;
    site.mesh.edges_everywhere(&["pub1", "pub2"]).await?;
    site.serves("pub2", &cloud, &cloud_serial).await?;
    site.serves("pub2", &app, &serial).await?;

    // 3. A forced renewal while a client loops over HTTPS through both edges: no request
    //    fails, and both edges then serve the new certificate.
    let dir = site.dir.path().to_path_buf();
    let (ready, stop) = (dir.join("loop-ready"), dir.join("loop-stop"));
    let mut looping = https::LoopArgs {
        connect: vec![edge("pub1")?, edge("pub2")?],
        name: app.clone(),
        ca: site.root.clone(),
        ready_file: ready.clone(),
        stop_file: stop.clone(),
        max_secs: 240,
        pause_ms: 20,
        progress_file: None,
    }
    .spawn_in(&client, &probe)?;
    eventually(
        "the HTTPS loop reaches both edges",
        LAB_CONVERGE,
        || async {
            ensure!(ready.exists(), "not yet");
            Ok(())
        },
    )
    .await?;
    let asked = site
        .mesh
        .node("home")?
        .call(CommandV1::CertAction {
            host: app.clone(),
            action: CertAction::Renew,
        })
        .await?;
    ensure!(
        matches!(&asked, ResponseV1::CertRequested { issuer: Some(i), .. } if i == "pub2"),
        "{asked:?}"
    );
    let renewed = site.valid_everywhere(&app, Some(&serial)).await?;
    let new_serial = renewed.serial.clone().context("no serial")?;
    for edge in ["pub1", "pub2"] {
        site.serves(edge, &app, &new_serial).await?;
    }
    let (report, out) = https::stop_loop(&mut looping, &stop).await?;
    eprintln!("renewal under load: {out}");
    ensure!(report.failures == 0, "{out}");
    for name in ["pub1", "pub2"] {
        let seen = &report.serials[&edge(name)?];
        ensure!(
            seen.first() == Some(&serial) && seen.last() == Some(&new_serial),
            "{name} served {seen:?}"
        );
    }
    ensure!(site.pebble.orders() == 3, "orders {}", site.pebble.orders());

    // 4. A host directly under the zone gets the zone's wildcard certificate, through DNS-01
    //    on the edges' own DNS.
    site.publish("blog.hearth.test").await?;
    let wild = site.valid_everywhere("*.hearth.test", None).await?;
    ensure!(
        wild.names == ["*.hearth.test", "hearth.test"]
            && wild.challenges.iter().all(|c| c.starts_with("dns-01")),
        "{wild:?}"
    );
    let wild_serial = wild.serial.clone().context("no serial")?;
    for edge in ["pub1", "pub2"] {
        site.serves(edge, "blog.hearth.test", &wild_serial).await?;
    }
    let (head, _) = site.https("pub2", "blog.hearth.test", "both").await?;
    ensure!(
        field(&head, "names") == Some("*.hearth.test,hearth.test"),
        "{head}"
    );
    ensure!(site.pebble.orders() == 4, "orders {}", site.pebble.orders());

    // 5. No private key in plaintext in any node's files, and no key at all for the home.
    let made = rcgen::KeyPair::generate()?.serialize_der();
    ensure!(
        made.windows(P256_PKCS8.len()).any(|w| w == P256_PKCS8),
        "the audit's marker does not match a real key"
    );
    let files = site.node_files()?;
    ensure!(files.len() > 3, "{files:?}");
    for (node, path) in files {
        let bytes = std::fs::read(&path)?;
        ensure!(
            !bytes.windows(P256_PKCS8.len()).any(|w| w == P256_PKCS8)
                && !bytes.windows(11).any(|w| w == b"PRIVATE KEY"),
            "{node}: a private key in plaintext in {}",
            path.display()
        );
    }
    for row in site.certs("home").await?.rows {
        ensure!(
            !row.holders.contains(&"home".to_string()),
            "the home can open {}",
            row.name
        );
    }
    Ok(())
}

#[tokio::test]
async fn tls_alpn_rotation_a_ca_refusal_and_restarted_edges_serving_with_the_ca_down() -> Result<()>
{
    if !labs_can_run("lab HTTPS with Pebble, TLS-ALPN-01") {
        return Ok(());
    }
    let bins = Binaries::locate()?;
    let mut site = HttpsSite::start(&bins, &[("HEARTH_ACME_CHALLENGE", "tls-alpn-01")]).await?;
    let result = async {
        let app = names("alpn").remove(0);
        site.publish(&app).await?;
        let row = site.valid_everywhere(&app, None).await?;
        ensure!(
            row.challenges.iter().all(|c| c.starts_with("tls-alpn-01")),
            "{row:?}"
        );
        let first = row.serial.clone().context("no serial")?;
        for edge in ["pub1", "pub2"] {
            site.serves(edge, &app, &first).await?;
        }
        // A rotation: a new key and certificate, served by both edges, the old one revoked.
        let asked = site
            .mesh
            .node("pub1")?
            .call(CommandV1::CertAction {
                host: app.clone(),
                action: CertAction::Rotate,
            })
            .await?;
        ensure!(
            matches!(asked, ResponseV1::CertRequested { .. }),
            "{asked:?}"
        );
        let rotated = site.valid_everywhere(&app, Some(&first)).await?;
        let serial = rotated.serial.clone().context("no serial")?;
        for edge in ["pub1", "pub2"] {
            site.serves(edge, &app, &serial).await?;
        }
        eventually(
            "the rotated certificate is revoked",
            LAB_CONVERGE,
            || async {
                ensure!(
                    site.pebble.log_text().contains("POST /revoke-cert"),
                    "not yet"
                );
                Ok(())
            },
        )
        .await?;
        // A name the CA cannot validate (outside the edges' zone, so Pebble cannot resolve
        // it): the CA's problem type and detail are shown, and HTTPS still answers.
        site.publish("www.outside.test").await?;
        let failed = eventually("the CA's refusal is shown", LAB_CONVERGE, || async {
            let row = site.cert_row("home", "www.outside.test").await?;
            ensure!(
                row.state == CertState::Failed,
                "{:?}: {}",
                row.state,
                row.detail
            );
            Ok(row)
        })
        .await?;
        eprintln!("refused: {}", failed.detail);
        // `<ACME problem type>: <step>: <the CA's detail>; next try in …`.
        let kind = failed.detail.split_once(": ").map(|(kind, _)| kind);
        ensure!(
            kind.is_some_and(|k| !k.is_empty() && !k.contains(' '))
                && failed.detail.contains("www.outside.test")
                && failed.detail.contains("next try in"),
            "{failed:?}"
        );
        let out = site
            .mesh
            .lab
            .host("client")?
            .run(
                site.probe(),
                &[
                    "probe",
                    "https",
                    "--connect",
                    &format!("{}:443", site.mesh.lab.host("pub1")?.addr),
                    "--name",
                    "www.outside.test",
                ],
            )
            .await?;
        ensure!(
            out.contains("status=200") && out.contains("self-signed"),
            "{out}"
        );
        ensure!(site.pebble.orders() == 3, "orders {}", site.pebble.orders());
        // The CA goes down; a restarted edge serves the stored certificate at once.
        site.pebble.stop().await;
        for edge in ["pub1", "pub2"] {
            let node = site.mesh.node_mut(edge)?;
            node.kill().await;
            node.run().await?;
            site.mesh.edges_everywhere(&["pub1", "pub2"]).await?;
            site.serves(edge, &app, &serial).await?;
        }
        Ok(())
    }
    .await;
    site.mesh.explain(site.pebble.explain_err(result))
}
