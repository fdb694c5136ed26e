//! `hearth-testnet bench acme`: how long from `hearthctl publish` of a new host to the first
//! HTTPS 200 with a certificate from a real ACME CA (Pebble), through each edge. One
//! namespace lab ([`HttpsSite`]), real `hearthd` processes, the client trusting only Pebble's
//! root.

use crate::bench::{ms_cell as ms, stats, stats_row as row, write_section};
use crate::lab::HttpsSite;
use crate::procs::Binaries;
use anyhow::{bail, Result};
use std::path::Path;
use std::time::{Duration, Instant};

/// How often the client tries.
const POLL: Duration = Duration::from_millis(50);
/// Longest a run may take before it counts as failed.
const LIMIT: Duration = Duration::from_secs(60);
/// The goal from the HTTPS issue.
const GOAL_MS: f64 = 5_000.0;

/// What one publish measured.
#[derive(Debug)]
struct Run {
    /// Until the first edge answered 200 with Pebble's certificate.
    first: Duration,
    /// Until both did.
    both: Duration,
}

/// Publishes `runs` new hosts one after another and writes the `acme` section of `out`.
pub async fn run(runs: usize, out: &Path) -> Result<()> {
    crate::lab::available()?;
    let bins = Binaries::locate()?;
    let site = HttpsSite::start(&bins, &[]).await?;
    let mut results = Vec::new();
    for i in 0..runs {
        let host = format!("bench{i}.apps.hearth.test");
        let attempt = once(&site, &host).await;
        let run = site.mesh.explain(site.pebble.explain_err(attempt))?;
        println!(
            "{host}: first HTTPS 200 after {} ms, through both edges after {} ms",
            run.first.as_millis(),
            run.both.as_millis()
        );
        results.push(run);
    }
    let orders = site.pebble.orders();
    let body = report(runs, &results, orders);
    write_section(out, "acme", &body)?;
    println!("wrote {}", out.display());
    Ok(())
}

async fn once(site: &HttpsSite, host: &str) -> Result<Run> {
    let start = Instant::now();
    site.publish(host).await?;
    let mut first = None;
    let mut done = [false, false];
    while start.elapsed() < LIMIT {
        for (i, edge) in ["pub1", "pub2"].iter().enumerate() {
            if done[i] {
                continue;
            }
            if let Ok((head, _)) = site.https(edge, host, "both").await {
                if head.starts_with("status=200 ") && head.contains("issuer=CN=Pebble") {
                    done[i] = true;
                    first.get_or_insert(start.elapsed());
                }
            }
        }
        if done == [true, true] {
            return Ok(Run {
                first: first.unwrap_or_default(),
                both: start.elapsed(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
    bail!("{host} was not served with a Pebble certificate by both edges within {LIMIT:?}")
}

fn report(runs: usize, results: &[Run], orders: usize) -> String {
    let first = stats(&results.iter().map(|r| r.first).collect::<Vec<_>>());
    let both = stats(&results.iter().map(|r| r.both).collect::<Vec<_>>());
    let verdict = if first.p50 <= GOAL_MS {
        format!("met, median {}", ms(first.p50))
    } else {
        format!("**missed**, median {}", ms(first.p50))
    };
    format!(
        "## Publish to the first HTTPS 200 with a CA certificate\n\n\
         A namespace lab: two public edges (`pub1`, `pub2`), a home host behind NAT serving the \
         sites, a client host, and Pebble 2.4 (Debian's, `-strict`, no validation sleeps, no \
         authorization reuse) on a host of its own, resolving through `pub1`'s DNS and \
         validating HTTP-01 at the first address it gets. Each run publishes a new host at home \
         (`hearthctl publish`, acknowledged once the route is durable) and the client tries \
         HTTPS through each edge every {} ms, trusting only Pebble's issuing root, until both \
         answer 200 with a Pebble certificate. The time includes replication of the route to \
         the edges, the order, every edge serving and acknowledging the challenge answer, \
         Pebble's validation, issuance, and the certificate replicating to both edges sealed \
         to their keys.\n\n\
         | {runs} hosts | runs | median | p90 | max |\n|---|---|---|---|---|\n\
         {}{}\n\
         Orders placed: {orders} for {runs} hosts. Goal (under 5 s in the lab): {verdict}.\n\n\
         Command (root): `cargo build --release --workspace --bins && target/release/hearth-testnet bench acme --runs {runs}`\n",
        POLL.as_millis(),
        row("first HTTPS 200, from publish", first, results.len()),
        row("HTTPS 200 through both edges", both, results.len()),
    )
}
