//! `hearth-testnet bench dataplane`: one namespace lab, one nginx on the home host, and side
//! by side, from the same client host: direct (a DNAT port forward on the home router), Hearth
//! (edge HTTP ingress → quinn tunnel → home node), the seed stack (Caddy on the VPS through a
//! wireguard-go tunnel) and rathole (TCP and noise transports); and over HTTPS, Hearth's edge
//! (:443) terminating TLS, the same edge passing TLS through to the home node (a second name,
//! published with TLS passthrough), and the seed stack's Caddy with `tls internal`. Writes its
//! section of docs/benchmarks.md.
//!
//! Everything runs inside the lab's namespaces on 198.18.0.0/15 and loopback; every load is
//! bounded in time; every process and namespace is removed when the run ends, fails or is
//! interrupted with Ctrl-C.

mod daemon;
mod hearth;
mod install;
mod measure;
mod nginx;
mod rathole;
mod report;
mod rounds;
mod seed;
mod tls;

use crate::lab::{HostKind, Lab, LabMesh};
use crate::procs::Binaries;
use anyhow::{anyhow, bail, Context, Result};
use daemon::Daemon;
use measure::{rss_by_host, wait_ok, Target};
use report::{Column, Rss, TlsColumn, TlsKind};
use std::path::Path;
use std::time::Duration;

/// Runs the benchmark and writes its section of `out`.
pub async fn run(out: &Path) -> Result<()> {
    crate::lab::available()?;
    let tools = tokio::task::spawn_blocking(install::ensure).await??;
    let rathole = tools.rathole.clone();
    let versions = tokio::task::spawn_blocking(move || install::versions(&rathole)).await?;
    tokio::select! {
        result = bench(&tools, &versions, out) => result,
        _ = tokio::signal::ctrl_c() => bail!("interrupted; the lab and its processes are removed"),
    }
}

async fn bench(tools: &install::Tools, versions: &str, out: &Path) -> Result<()> {
    let bins = Binaries::locate()?;
    let load = load_average();
    let dir = tempfile::Builder::new()
        .prefix("hearth-bench-dataplane")
        .tempdir()?;
    let lab = Lab::builder()
        .host("vps", HostKind::Public)
        .host("home", HostKind::Home)
        .host("client", HostKind::Client)
        .build()?;
    // Declared first, dropped last: every daemon below is killed before the namespaces go.
    let mesh = LabMesh::start_on(lab, &bins, &["vps", "home"]).await?;
    let host = |name: &str| mesh.lab.host(name).cloned();
    let (vps, home, client) = (host("vps")?, host("home")?, host("client")?);
    // The published names resolve to the VPS on the client host (wrk takes SNI from the URL);
    // removed when this returns, fails or is interrupted.
    let _hosts = tls::NetnsHosts::write(
        &client.ns,
        &[
            (hearth::ROUTE_HOST, vps.addr),
            (hearth::PASSTHROUGH_HOST, vps.addr),
        ],
    )?;
    let backend = nginx::start(&home, dir.path()).await?;

    let forwarded = mesh.lab.forward_port("home", nginx::PORT)?;
    let direct = Target {
        base: format!("http://{forwarded}"),
        host_header: None,
    };
    wait_ok(&client, &direct, nginx::SMALL, Duration::from_secs(10))
        .await
        .context("the port forward")?;
    let hearth_ready = hearth::publish(&mesh, &client).await;
    if let Err(e) = &hearth_ready {
        eprintln!("hearth path not ready: {e:#}");
        hearth::print_log_tails(&mesh);
    }
    let seed = seed::start(&vps, &home, &client, dir.path()).await?;
    let rat_tcp = rathole::start(
        &tools.rathole,
        rathole::Transport::Tcp,
        &vps,
        &home,
        &client,
        dir.path(),
    )
    .await?;
    let rat_noise = rathole::start(
        &tools.rathole,
        rathole::Transport::Noise,
        &vps,
        &home,
        &client,
        dir.path(),
    )
    .await?;

    // HTTPS: Hearth's only if its HTTP path is up; any may fail without stopping the run.
    let tls_endpoints = [
        hearth::tls_endpoint(&vps),
        hearth::passthrough_endpoint(&vps),
        seed::tls_endpoint(&vps),
    ];
    let hearth_tls_ready = match &hearth_ready {
        Ok(()) => wait_ok(
            &client,
            &tls_endpoints[0].target(),
            nginx::SMALL,
            Duration::from_secs(20),
        )
        .await
        .context("HTTPS through the edge"),
        Err(e) => Err(anyhow!("the Hearth path is not up: {e:#}")),
    };
    let passthrough_ready = match &hearth_ready {
        Ok(()) => hearth::publish_passthrough(&mesh, &client).await,
        Err(e) => Err(anyhow!("the Hearth path is not up: {e:#}")),
    };
    if let Err(e) = &passthrough_ready {
        eprintln!("hearth passthrough path not ready: {e:#}");
    }
    let seed_tls_ready = wait_ok(
        &client,
        &tls_endpoints[2].target(),
        nginx::SMALL,
        Duration::from_secs(20),
    )
    .await
    .context("Caddy's HTTPS");
    let mut sessions = Vec::new();
    for (endpoint, ready) in
        tls_endpoints
            .iter()
            .zip([&hearth_tls_ready, &passthrough_ready, &seed_tls_ready])
    {
        sessions.push(match ready {
            Ok(()) => tls::session(&client, endpoint, dir.path()).await,
            Err(_) => Err(anyhow!("not up")),
        });
    }

    let hearth_pids = |mesh: &LabMesh| -> Result<Vec<(String, u32)>> {
        mesh.nodes
            .iter()
            .map(|n| Ok((n.name.clone(), n.pid().context("hearthd is not running")?)))
            .collect()
    };
    let pids = hearth_pids(&mesh)?;
    let daemon_pids = |d: &[(&str, &Daemon)]| -> Result<Vec<(String, u32)>> {
        d.iter()
            .map(|(h, d)| Ok((h.to_string(), d.pid()?)))
            .collect()
    };
    let seed_pids = daemon_pids(&[
        ("vps", &seed.caddy),
        ("vps", &seed.wg_vps),
        ("home", &seed.wg_home),
    ])?;
    let tcp_pids = daemon_pids(&[("vps", &rat_tcp.server), ("home", &rat_tcp.client)])?;
    let noise_pids = daemon_pids(&[("vps", &rat_noise.server), ("home", &rat_noise.client)])?;
    // Direct first, then one entry per tunnel: heading, target, its processes.
    let paths = [
        ("direct (DNAT on the home router)", direct, Vec::new()),
        ("Hearth (edge → quinn tunnel)", hearth::target(&vps), pids),
        ("Caddy + wireguard-go (seed)", seed::target(&vps), seed_pids),
        (
            "rathole, TCP",
            rathole::target(&vps, rathole::Transport::Tcp),
            tcp_pids,
        ),
        (
            "rathole, noise",
            rathole::target(&vps, rathole::Transport::Noise),
            noise_pids,
        ),
    ];
    let groups: Vec<Vec<(String, u32)>> = paths[1..].iter().map(|(_, _, p)| p.clone()).collect();
    // The same stacks over HTTPS: name, kind, the index of the plain-HTTP path (whose
    // processes are counted), readiness; in the order of `tls_endpoints`.
    let tls_paths = [
        (
            "Hearth HTTPS, edge-terminated (edge :443 → quinn tunnel)",
            TlsKind::Edge,
            1,
            hearth_tls_ready,
        ),
        (
            "Hearth HTTPS passthrough (edge :443 splices → quinn tunnel → home terminates)",
            TlsKind::Passthrough,
            1,
            passthrough_ready,
        ),
        (
            "Caddy + wireguard-go, HTTPS (seed, :8443)",
            TlsKind::Seed,
            2,
            seed_tls_ready,
        ),
    ];
    let tls_names: Vec<(&'static str, TlsKind, usize)> = tls_paths
        .iter()
        .map(|(name, kind, http, _)| (*name, *kind, *http))
        .collect();
    let tls_to_measure = tls_paths
        .into_iter()
        .zip(&tls_endpoints)
        .map(|((_, _, http, ready), endpoint)| {
            let path = rounds::Path {
                target: endpoint.target(),
                pids: groups[http - 1].clone(),
            };
            (path, ready)
        })
        .collect();
    let before: Vec<Rss> = groups.iter().map(|p| rss_by_host(p)).collect();
    // Only the Hearth path may have failed to come up; the others fail the run.
    let ready = [Ok(()), hearth_ready, Ok(()), Ok(()), Ok(())];
    let names: Vec<&'static str> = paths.iter().map(|(name, _, _)| *name).collect();
    let to_measure = paths
        .into_iter()
        .zip(ready)
        .map(|((_, target, pids), ready)| (rounds::Path { target, pids }, ready))
        .collect();
    let (http_results, tls_results) =
        rounds::measure_all(&client, to_measure, tls_to_measure).await;
    let mut columns: Vec<Column> = names
        .into_iter()
        .zip(http_results)
        .map(|(name, result)| Column::new(name, result))
        .collect();
    let tls_columns: Vec<TlsColumn> = tls_names
        .into_iter()
        .zip(tls_results.into_iter().zip(sessions))
        .map(|((name, kind, http), (result, session))| {
            TlsColumn::new(name, kind, result, session, http)
        })
        .collect();
    // Let connections close and buffers drain before reading idle memory again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after: Vec<Rss> = groups.iter().map(|p| rss_by_host(p)).collect();
    for (column, (b, a)) in columns[1..].iter_mut().zip(before.into_iter().zip(after)) {
        column.rss = Some((b, a));
    }
    hearth::report_log_warnings(&mesh);
    drop((rat_noise, rat_tcp, seed, backend));

    let body = report::render(&columns, &tls_columns, versions, &load);
    crate::bench::write_section(out, "dataplane", &body)?;
    println!("{}", report::console(&columns, &tls_columns));
    println!("wrote {}", out.display());
    Ok(())
}

/// The 1-minute load average of this machine (other work on it skews every figure).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "unknown".into())
}
