//! `hearth-testnet bench docker`: time from `docker start` of a labelled container to the
//! first 200 through an edge. A two-node mesh on 127.0.0.1 (node 1 follows the engine, node 0
//! is the edge) and the locally built test image; the edge is polled every 2 ms.

use crate::bench::{stats, write_section};
use crate::docker_lab::{docker_mesh, get, DockerLab, HTTP_PORT};
use crate::eventually::{eventually, CONVERGE};
use anyhow::{ensure, Result};
use std::path::Path;
use std::time::{Duration, Instant};

/// Longest one start may take before the run is abandoned.
const START_LIMIT: Duration = Duration::from_secs(30);

/// Starts and stops one labelled container `runs` times, timing each start.
pub async fn docker_start(runs: usize, out: &Path) -> Result<()> {
    let docker = DockerLab::new(9)?;
    let mesh = docker_mesh().await?;
    let edge = mesh.edge_http().await?;
    let mut rows = Vec::new();
    let mut plain_median = None;
    for (kind, extra) in [
        ("without a health check", &["--no-healthcheck"][..]),
        ("with a health check (every 1 s)", &[][..]),
    ] {
        let samples = time_starts(&docker, edge, runs, kind, extra).await?;
        let s = stats(&samples);
        plain_median.get_or_insert(s.p50);
        rows.push(format!(
            "| {kind} | {runs} | {:.0} ms | {:.0} ms | {:.0} ms |",
            s.p50, s.p90, s.max
        ));
    }
    let body = format!(
        "## Docker: `docker start` to the first 200 through an edge\n\n\
         A two-node mesh on 127.0.0.1 (node 1 follows the Docker engine, node 0 is the edge) and \
         the locally built `FROM scratch` test image, labelled `hearth.http.host`. Each run: \
         `docker stop`, wait until the edge no longer serves the host, then time `docker start` \
         (the CLI call included) until `GET /` through the edge answers 200, polling every 2 ms. \
         {runs} runs after one warm-up, for a container run with `--no-healthcheck` and for one \
         with the image's health check.\n\n\
         | container | runs | median | p90 | max |\n|---|---|---|---|---|\n{}\n\n\
         A container with a health check is routed only once Docker reports it healthy; Docker \
         runs the first check one interval after start, so that wait dominates its figure. \
         Goal (served within a second of start, median of 10): {}.\n\n\
         Command (root, Docker): `cargo build --release --workspace --bins && RUSTFLAGS='-C target-feature=+crt-static' cargo build -p hearth-testsrv --release --target x86_64-unknown-linux-gnu && target/release/hearth-testnet bench docker --runs {runs}`\n",
        rows.join("\n"),
        verdict(plain_median.unwrap_or(f64::MAX)),
    );
    print!("{body}");
    write_section(out, "docker", &body)?;
    mesh.shutdown().await;
    Ok(())
}

/// "met" or "missed" for the median without a health check.
fn verdict(median: f64) -> String {
    if median <= 1000.0 {
        format!("met without a health check, median {median:.0} ms")
    } else {
        format!("missed, median {median:.0} ms without a health check")
    }
}

/// Times `runs` starts (after a warm-up) of a labelled container run with `extra` arguments.
async fn time_starts(
    docker: &DockerLab,
    edge: std::net::SocketAddr,
    runs: usize,
    kind: &str,
    extra: &[&str],
) -> Result<Vec<Duration>> {
    let name = if extra.is_empty() { "checked" } else { "plain" };
    let host = format!("{name}.example.com");
    let host_label = format!("hearth.http.host={host}");
    let port_label = format!("hearth.http.port={HTTP_PORT}");
    let mut args = vec![
        "--label",
        host_label.as_str(),
        "--label",
        port_label.as_str(),
    ];
    args.extend_from_slice(extra);
    let container = docker.run(name, &args)?;
    let mut samples = Vec::new();
    for run in 0..runs + 1 {
        docker.stop(&container)?;
        eventually("the route is withdrawn", CONVERGE, || async {
            ensure!(get(edge, &host).await?.0 != 200);
            Ok(())
        })
        .await?;
        let started = Instant::now();
        docker.start(&container)?;
        loop {
            if matches!(get(edge, &host).await, Ok((200, _))) {
                break;
            }
            ensure!(
                started.elapsed() < START_LIMIT,
                "{kind}: never served after docker start"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // The first start also warms caches (the tunnel's first stream, the engine).
        if run > 0 {
            samples.push(started.elapsed());
        }
    }
    Ok(samples)
}
