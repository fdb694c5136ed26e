//! Hybrid logical clock: wall-clock milliseconds plus a counter.
//!
//! Records are ordered by their HLC so that a write made after seeing another write always
//! sorts after it, even when the two machines' clocks disagree.

use serde::{Deserialize, Serialize};

/// A hybrid logical timestamp; ordered by milliseconds, then counter.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Hlc {
    /// Milliseconds since the Unix epoch, as the writing node saw them (or later).
    pub millis: u64,
    /// Breaks ties between events within one millisecond.
    pub counter: u32,
}

impl Hlc {
    /// A timestamp at exactly `millis`.
    pub fn at(millis: u64) -> Self {
        Self { millis, counter: 0 }
    }

    /// The next local timestamp: strictly after `self` and no earlier than `now_ms`.
    pub fn tick(self, now_ms: u64) -> Self {
        if now_ms > self.millis {
            Self::at(now_ms)
        } else {
            Self {
                millis: self.millis,
                counter: self.counter.saturating_add(1),
            }
        }
    }

    /// How far this timestamp is ahead of `now_ms`, when that is more than `bound_ms`: a
    /// timestamp that should not be believed (or observed) yet.
    pub fn ahead_of(self, now_ms: u64, bound_ms: u64) -> Option<u64> {
        let by = self.millis.saturating_sub(now_ms);
        (by > bound_ms).then_some(by)
    }

    /// Folds in a timestamp seen from a peer so that later local ticks sort after it. Only
    /// for timestamps of verified records within the clock bound ([`Hlc::ahead_of`]).
    pub fn observe(self, remote: Hlc) -> Self {
        self.max(remote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_is_strictly_monotonic_even_when_the_wall_clock_goes_back() {
        let a = Hlc::at(1_000);
        let b = a.tick(500);
        let c = b.tick(500);
        assert!(a < b && b < c);
        assert_eq!(c.tick(2_000), Hlc::at(2_000));
    }

    #[test]
    fn only_timestamps_beyond_the_bound_are_ahead() {
        assert_eq!(Hlc::at(10_000).ahead_of(9_000, 1_000), None);
        assert_eq!(Hlc::at(10_001).ahead_of(9_000, 1_000), Some(1_001));
        assert_eq!(Hlc::at(1).ahead_of(9_000, 0), None);
    }

    #[test]
    fn observing_a_future_timestamp_orders_later_ticks_after_it() {
        let local = Hlc::at(1_000);
        let remote = Hlc::at(9_000);
        assert!(local.observe(remote).tick(1_001) > remote);
    }
}
