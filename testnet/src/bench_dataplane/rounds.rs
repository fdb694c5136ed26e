//! Measuring every path in interleaved rounds (each round: every HTTP path's wrk run, then its
//! download; then every HTTPS path's keep-alive and new-connection wrk runs and its timed
//! handshakes), so drift in the load of a shared machine hits all paths alike; medians over
//! the rounds are reported.

use super::measure::{cpu_by_host, download, handshakes_ms, wrk, Conns, Load, Target};
use super::nginx;
use super::report::{Measured, TlsMeasured};
use crate::lab::Host;
use anyhow::Result;

/// Seconds of each measured wrk run (after one 2 s warm-up per path).
pub const WRK_SECS: u64 = 10;
/// Rounds; each HTTP path gets one wrk run and one download of the large file per round,
/// each HTTPS path a keep-alive and a new-connection wrk run and [`HANDSHAKES`] timed
/// handshakes.
pub const ROUNDS: usize = 3;
/// Full TLS handshakes timed with curl per HTTPS path and round, one after the other.
pub const HANDSHAKES: usize = 20;

/// One path to measure.
#[derive(Debug)]
pub struct Path {
    /// Where the client sends its requests.
    pub target: Target,
    /// The path's own processes (host, pid), whose CPU time is counted; empty for direct.
    pub pids: Vec<(String, u32)>,
}

/// What the rounds of one path collected.
#[derive(Debug, Default)]
struct Samples {
    loads: Vec<Load>,
    speeds: Vec<f64>,
    cpu_loaded: Vec<(String, f64)>,
    requests: f64,
    cpu_download: Vec<(String, f64)>,
}

/// Adds the CPU seconds spent between two readings to `into`, per host.
fn add_cpu(into: &mut Vec<(String, f64)>, before: &[(String, f64)], after: &[(String, f64)]) {
    for ((host, a), (_, b)) in after.iter().zip(before) {
        match into.iter_mut().find(|(h, _)| h == host) {
            Some((_, sum)) => *sum += a - b,
            None => into.push((host.clone(), a - b)),
        }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The median requests/s, p50 and p99 of `loads`, and the sum of their errors.
fn median_load(loads: &[Load]) -> Load {
    Load {
        rps: median(loads.iter().map(|l| l.rps).collect()),
        p50_ms: median(loads.iter().map(|l| l.p50_ms).collect()),
        p99_ms: median(loads.iter().map(|l| l.p99_ms).collect()),
        errors: loads.iter().map(|l| l.errors).sum(),
    }
}

/// The lowest and highest requests/s of `loads`.
fn rps_range(loads: &[Load]) -> (f64, f64) {
    (
        loads.iter().map(|l| l.rps).fold(f64::INFINITY, f64::min),
        loads.iter().map(|l| l.rps).fold(0.0, f64::max),
    )
}

/// CPU seconds per host scaled (to µs per request, ms per MB, …).
fn per(cpu: Vec<(String, f64)>, scale: f64) -> Vec<(String, f64)> {
    cpu.into_iter().map(|(h, secs)| (h, secs * scale)).collect()
}

/// What one kind of path measures in a round, and what its rounds add up to.
trait Plan: Default {
    type Out;
    async fn round(&mut self, client: &Host, path: &Path) -> Result<()>;
    fn summary(self) -> Self::Out;
}

impl Plan for Samples {
    type Out = Measured;

    async fn round(&mut self, client: &Host, path: &Path) -> Result<()> {
        let start = cpu_by_host(&path.pids)?;
        let load = wrk(
            client,
            &path.target,
            nginx::SMALL,
            WRK_SECS,
            Conns::KeepAlive,
        )
        .await?;
        let loaded = cpu_by_host(&path.pids)?;
        let speed = download(client, &path.target, nginx::LARGE, nginx::LARGE_BYTES).await?;
        let end = cpu_by_host(&path.pids)?;
        add_cpu(&mut self.cpu_loaded, &start, &loaded);
        add_cpu(&mut self.cpu_download, &loaded, &end);
        self.requests += load.rps * WRK_SECS as f64;
        self.loads.push(load);
        self.speeds.push(speed);
        Ok(())
    }

    fn summary(self) -> Measured {
        let megabytes = nginx::LARGE_BYTES as f64 / 1e6 * self.speeds.len() as f64;
        Measured {
            load: median_load(&self.loads),
            rps_range: rps_range(&self.loads),
            download_mb_s: median(self.speeds),
            cpu_us_per_request: per(self.cpu_loaded, 1e6 / self.requests.max(1.0)),
            cpu_ms_per_mb: per(self.cpu_download, 1e3 / megabytes.max(1.0)),
        }
    }
}

/// What the rounds of one HTTPS path collected.
#[derive(Debug, Default)]
struct TlsSamples {
    keep_alive: Vec<Load>,
    close: Vec<Load>,
    handshakes_ms: Vec<f64>,
    cpu_keep_alive: Vec<(String, f64)>,
    keep_alive_requests: f64,
    cpu_close: Vec<(String, f64)>,
    close_requests: f64,
}

impl Plan for TlsSamples {
    type Out = TlsMeasured;

    async fn round(&mut self, client: &Host, path: &Path) -> Result<()> {
        let start = cpu_by_host(&path.pids)?;
        let keep = wrk(
            client,
            &path.target,
            nginx::SMALL,
            WRK_SECS,
            Conns::KeepAlive,
        )
        .await?;
        let kept = cpu_by_host(&path.pids)?;
        let close = wrk(client, &path.target, nginx::SMALL, WRK_SECS, Conns::Close).await?;
        let closed = cpu_by_host(&path.pids)?;
        let handshakes = handshakes_ms(client, &path.target, nginx::SMALL, HANDSHAKES).await?;
        self.handshakes_ms.extend(handshakes);
        add_cpu(&mut self.cpu_keep_alive, &start, &kept);
        add_cpu(&mut self.cpu_close, &kept, &closed);
        self.keep_alive_requests += keep.rps * WRK_SECS as f64;
        self.close_requests += close.rps * WRK_SECS as f64;
        self.keep_alive.push(keep);
        self.close.push(close);
        Ok(())
    }

    fn summary(self) -> TlsMeasured {
        TlsMeasured {
            keep_alive: median_load(&self.keep_alive),
            keep_alive_range: rps_range(&self.keep_alive),
            close: median_load(&self.close),
            close_range: rps_range(&self.close),
            handshake_ms: median(self.handshakes_ms),
            cpu_us_per_request: per(self.cpu_keep_alive, 1e6 / self.keep_alive_requests.max(1.0)),
            cpu_us_per_handshake: per(self.cpu_close, 1e6 / self.close_requests.max(1.0)),
        }
    }
}

/// Warms up every path that is ready (`Ok`) with 2 s of keep-alive wrk.
async fn warm_up<P: Plan>(client: &Host, paths: Vec<(Path, Result<()>)>) -> Vec<(Path, Result<P>)> {
    let mut state = Vec::new();
    for (path, ready) in paths {
        let warmed = match ready {
            Ok(()) => wrk(client, &path.target, nginx::SMALL, 2, Conns::KeepAlive)
                .await
                .map(|_| P::default()),
            Err(e) => Err(e),
        };
        state.push((path, warmed));
    }
    state
}

/// Runs round `round` of every path still measured; one that fails drops out with its error.
async fn round_of<P: Plan>(client: &Host, state: &mut [(Path, Result<P>)], round: usize) {
    for (path, samples) in state {
        if let Ok(s) = samples {
            if let Err(e) = s.round(client, path).await {
                *samples = Err(e.context(format!("round {}", round + 1)));
            }
        }
    }
}

/// Measures every path that is ready (`Ok`), HTTP paths and HTTPS paths, in [`ROUNDS`]
/// interleaved rounds after a warm-up of each; a path that fails is left out of later rounds
/// and reported with its error.
pub async fn measure_all(
    client: &Host,
    http: Vec<(Path, Result<()>)>,
    https: Vec<(Path, Result<()>)>,
) -> (Vec<Result<Measured>>, Vec<Result<TlsMeasured>>) {
    let mut http: Vec<(Path, Result<Samples>)> = warm_up(client, http).await;
    let mut https: Vec<(Path, Result<TlsSamples>)> = warm_up(client, https).await;
    for round in 0..ROUNDS {
        println!("round {} of {ROUNDS}", round + 1);
        round_of(client, &mut http, round).await;
        round_of(client, &mut https, round).await;
    }
    (summaries(http), summaries(https))
}

fn summaries<P: Plan>(state: Vec<(Path, Result<P>)>) -> Vec<Result<P::Out>> {
    state
        .into_iter()
        .map(|(_, samples)| samples.map(P::summary))
        .collect()
}
