//! Wall-clock time in the units records use. The only place the daemon reads the clock for
//! record timestamps, so tests and proto functions can take `now` explicitly.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
