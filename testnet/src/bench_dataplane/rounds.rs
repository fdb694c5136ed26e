//! Measuring every path in interleaved rounds (each round: every path's wrk run, then its
//! download), so drift in the load of a shared machine hits all paths alike; medians over the
//! rounds are reported.

use super::measure::{cpu_by_host, download, wrk, Load, Target};
use super::nginx;
use super::report::Measured;
use crate::lab::Host;
use anyhow::Result;

/// Seconds of each measured wrk run (after one 2 s warm-up per path).
pub const WRK_SECS: u64 = 10;
/// Rounds; each path gets one wrk run and one download of the large file per round.
pub const ROUNDS: usize = 3;

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

impl Samples {
    async fn round(&mut self, client: &Host, path: &Path) -> Result<()> {
        let start = cpu_by_host(&path.pids)?;
        let load = wrk(client, &path.target, nginx::SMALL, WRK_SECS).await?;
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
        let per = |cpu: Vec<(String, f64)>, scale: f64| -> Vec<(String, f64)> {
            cpu.into_iter().map(|(h, secs)| (h, secs * scale)).collect()
        };
        let megabytes = nginx::LARGE_BYTES as f64 / 1e6 * self.speeds.len() as f64;
        let rps: Vec<f64> = self.loads.iter().map(|l| l.rps).collect();
        Measured {
            load: Load {
                rps: median(rps.clone()),
                p50_ms: median(self.loads.iter().map(|l| l.p50_ms).collect()),
                p99_ms: median(self.loads.iter().map(|l| l.p99_ms).collect()),
                errors: self.loads.iter().map(|l| l.errors).sum(),
            },
            rps_range: (
                rps.iter().copied().fold(f64::INFINITY, f64::min),
                rps.iter().copied().fold(0.0, f64::max),
            ),
            download_mb_s: median(self.speeds),
            cpu_us_per_request: per(self.cpu_loaded, 1e6 / self.requests.max(1.0)),
            cpu_ms_per_mb: per(self.cpu_download, 1e3 / megabytes.max(1.0)),
        }
    }
}

/// Measures every path that is ready (`Ok`), in [`ROUNDS`] interleaved rounds after a warm-up
/// of each; a path that fails is left out of later rounds and reported with its error.
pub async fn measure_all(client: &Host, paths: Vec<(Path, Result<()>)>) -> Vec<Result<Measured>> {
    let mut state: Vec<(Path, Result<Samples>)> = Vec::new();
    for (path, ready) in paths {
        let warmed = match ready {
            Ok(()) => wrk(client, &path.target, nginx::SMALL, 2)
                .await
                .map(|_| Samples::default()),
            Err(e) => Err(e),
        };
        state.push((path, warmed));
    }
    for round in 0..ROUNDS {
        println!("round {} of {ROUNDS}", round + 1);
        for (path, samples) in &mut state {
            if let Ok(s) = samples {
                if let Err(e) = s.round(client, path).await {
                    *samples = Err(e.context(format!("round {}", round + 1)));
                }
            }
        }
    }
    state
        .into_iter()
        .map(|(_, samples)| samples.map(Samples::summary))
        .collect()
}
