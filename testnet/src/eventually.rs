//! Waiting for a condition in tests without sleeping a fixed time.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long tests wait for a mesh to converge before failing. Generous: CI machines are
/// shared and slow; a healthy run converges far sooner.
pub const CONVERGE: Duration = Duration::from_secs(30);

/// Polls `check` until it returns `Ok`, or fails after `timeout` with the last error, which
/// should say what was expected and what was seen. Polls every 5 ms at first, backing off to
/// every 100 ms, so a quick condition is noticed quickly (benchmarks rely on this).
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        match check().await {
            Ok(value) => return Ok(value),
            Err(e) if start.elapsed() >= timeout => {
                anyhow::bail!("{what}: not true after {:?}; last: {e:#}", timeout)
            }
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(100));
            }
        }
    }
}
