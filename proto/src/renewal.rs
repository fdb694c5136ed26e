//! When to order a certificate: a pure function of the stored certificate, the last order,
//! any request from a person, and `now`, so the schedule can be tested over simulated time.
//!
//! - A certificate is due inside the CA's ARI window (RFC 9773) when the CA gave a usable one,
//!   at a point within it chosen by the certificate's serial (uniform over certificates, and
//!   the same on every node); otherwise at two thirds of its lifetime.
//! - A failed order is retried after 1 min, 2, 4, … up to 6 h; the stored certificate stays
//!   served meanwhile (nothing here ever drops one).
//! - A request (`hearthctl certs renew|rotate`) newer than the certificate and than the last
//!   order is acted on at once, unless the names already got [`MAX_RECENT_ISSUES`]
//!   certificates this week.

use crate::cert::{
    AcmeOrder, AriWindow, Cert, CertAction, CertRequest, OrderCause, OrderStage, MAX_RECENT_ISSUES,
    RECENT_WINDOW_MS,
};
use sha2::{Digest, Sha256};

/// First retry after a failed order.
pub const RETRY_BASE_MS: u64 = 60_000;
/// Longest wait between retries.
pub const RETRY_MAX_MS: u64 = 6 * 3600 * 1000;
/// Shortest and longest time between two ARI queries, whatever the CA's Retry-After says.
pub const ARI_RECHECK_MS: std::ops::RangeInclusive<u64> = 3600 * 1000..=24 * 3600 * 1000;

/// What the issuer of a name should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing until `until_ms` (renewal due, or the retry after a failure).
    Wait {
        /// When to look again, Unix ms.
        until_ms: u64,
    },
    /// Place a new order.
    Order(OrderCause),
    /// An order is in flight: carry it on.
    Resume,
    /// A person asked for a certificate, but the CA's weekly limit is near; the request is
    /// not acted on.
    Refused {
        /// Why, for `hearthctl certs`.
        reason: String,
    },
}

/// When `cert` is due for renewal, Unix ms.
pub fn due_at(cert: &Cert) -> u64 {
    match cert.ari.filter(|w| usable(w, cert)) {
        Some(window) => {
            let span = window.end_ms - window.start_ms;
            window.start_ms + spread(&cert.serial) % span
        }
        None => {
            let lifetime = cert.not_after_ms.saturating_sub(cert.not_before_ms);
            cert.not_before_ms + lifetime / 3 * 2
        }
    }
}

/// A window is usable when it is not empty and starts before the certificate expires.
fn usable(window: &AriWindow, cert: &Cert) -> bool {
    window.start_ms < window.end_ms && window.start_ms < cert.not_after_ms
}

/// A number from the serial, the same on every node, spreading renewals of many
/// certificates uniformly over their windows.
fn spread(serial: &str) -> u64 {
    let hash = Sha256::digest(serial.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&hash[..8]);
    u64::from_be_bytes(bytes)
}

/// How long to wait after `failures` failed orders in a row (at least one).
pub fn backoff_ms(failures: u32) -> u64 {
    let doublings = failures.saturating_sub(1).min(20);
    RETRY_BASE_MS
        .saturating_mul(1 << doublings)
        .min(RETRY_MAX_MS)
}

/// When to ask the CA for ARI again, from its Retry-After (in seconds, from `now`), bounded by
/// [`ARI_RECHECK_MS`].
pub fn next_ari_fetch(now_ms: u64, retry_after_secs: u64) -> u64 {
    let wait = retry_after_secs
        .saturating_mul(1000)
        .clamp(*ARI_RECHECK_MS.start(), *ARI_RECHECK_MS.end());
    now_ms.saturating_add(wait)
}

/// Whether the CA should be asked for `cert`'s renewal window now: never asked, or its
/// Retry-After has passed.
pub fn ari_due(cert: &Cert, now_ms: u64) -> bool {
    cert.ari.is_none_or(|w| now_ms >= w.next_fetch_ms)
}

/// Certificates obtained for the names within the window before `now`.
pub fn recent_issues(cert: &Cert, now_ms: u64) -> usize {
    cert.recent
        .iter()
        .filter(|t| now_ms.saturating_sub(**t) < RECENT_WINDOW_MS)
        .count()
}

/// What to do for one name at `now`.
pub fn decide(
    cert: Option<&Cert>,
    last: Option<&AcmeOrder>,
    request: Option<&CertRequest>,
    now_ms: u64,
) -> Decision {
    if last.is_some_and(AcmeOrder::in_flight) {
        return Decision::Resume;
    }
    let issued_ms = cert.map(|c| c.issued_ms).unwrap_or(0);
    let last_started = last.map(|o| o.started_ms).unwrap_or(0);
    if let Some(request) = request.filter(|r| r.asked_ms > issued_ms && r.asked_ms > last_started) {
        if let Some(cert) = cert {
            let recent = recent_issues(cert, now_ms);
            if recent >= MAX_RECENT_ISSUES {
                return Decision::Refused {
                    reason: format!(
                        "{recent} certificates were issued for these names in the last 7 days; \
                         the CA allows 5 a week, so a forced {} is refused until an older one ages out",
                        request.action
                    ),
                };
            }
        }
        return Decision::Order(match request.action {
            CertAction::Renew => OrderCause::Forced,
            CertAction::Rotate => OrderCause::Rotation,
        });
    }
    // A failure after the current certificate waits out its backoff.
    if let Some(order) = last.filter(|o| o.stage == OrderStage::Failed && o.started_ms >= issued_ms)
    {
        if now_ms < order.retry_ms {
            return Decision::Wait {
                until_ms: order.retry_ms,
            };
        }
        return Decision::Order(match cert {
            None => OrderCause::First,
            Some(_) => OrderCause::Renewal,
        });
    }
    match cert {
        None => Decision::Order(OrderCause::First),
        Some(cert) => {
            let due = due_at(cert);
            if now_ms >= due {
                Decision::Order(OrderCause::Renewal)
            } else {
                Decision::Wait { until_ms: due }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::OrderStage;

    const DAY: u64 = 24 * 3600 * 1000;
    const HOUR: u64 = 3600 * 1000;
    const T0: u64 = 1_800_000_000_000;

    fn cert(serial: &str, not_before: u64, days: u64) -> Cert {
        Cert {
            serial: serial.into(),
            ..crate::cert::fixtures::cert(not_before, not_before + days * DAY)
        }
    }

    fn failed(started: u64, failures: u32) -> AcmeOrder {
        AcmeOrder {
            cause: OrderCause::Renewal,
            failures,
            retry_ms: started + backoff_ms(failures),
            ..crate::cert::fixtures::order(OrderStage::Failed, started)
        }
    }

    #[test]
    fn without_ari_a_certificate_is_due_at_two_thirds_of_its_life() {
        let c = cert("01", T0, 90);
        assert_eq!(due_at(&c), T0 + 60 * DAY);
        assert_eq!(
            decide(Some(&c), None, None, T0 + 59 * DAY),
            Decision::Wait {
                until_ms: T0 + 60 * DAY
            }
        );
        assert_eq!(
            decide(Some(&c), None, None, T0 + 60 * DAY),
            Decision::Order(OrderCause::Renewal)
        );
        // Pebble's five-year certificates.
        let long = cert("02", T0, 5 * 365);
        assert_eq!(due_at(&long), T0 + 5 * 365 * DAY / 3 * 2);
    }

    #[test]
    fn an_ari_window_sets_the_point_inside_it_the_same_everywhere() {
        let mut seen = Vec::new();
        for i in 0..64 {
            let mut c = cert(&format!("{i:04x}"), T0, 90);
            c.ari = Some(AriWindow {
                start_ms: T0 + 30 * DAY,
                end_ms: T0 + 32 * DAY,
                fetched_ms: T0 + DAY,
                next_fetch_ms: T0 + 2 * DAY,
            });
            let due = due_at(&c);
            assert!((T0 + 30 * DAY..T0 + 32 * DAY).contains(&due), "{due}");
            assert_eq!(due, due_at(&c.clone()));
            seen.push(due);
        }
        // Spread over the window, not bunched at one end.
        let first_half = seen.iter().filter(|d| **d < T0 + 31 * DAY).count();
        assert!((16..=48).contains(&first_half), "{first_half} of 64");
    }

    #[test]
    fn an_ari_window_in_the_past_means_now_and_a_broken_one_is_ignored() {
        let mut c = cert("01", T0, 90);
        // The CA moved the window into the past (it wants the certificate replaced).
        c.ari = Some(AriWindow {
            start_ms: T0 + DAY,
            end_ms: T0 + DAY + HOUR,
            fetched_ms: T0 + 2 * DAY,
            next_fetch_ms: T0 + 3 * DAY,
        });
        assert_eq!(
            decide(Some(&c), None, None, T0 + 2 * DAY),
            Decision::Order(OrderCause::Renewal)
        );
        for (start, end) in [
            (T0 + 40 * DAY, T0 + 40 * DAY),
            (T0 + 95 * DAY, T0 + 96 * DAY),
        ] {
            c.ari = Some(AriWindow {
                start_ms: start,
                end_ms: end,
                fetched_ms: T0,
                next_fetch_ms: T0,
            });
            assert_eq!(due_at(&c), T0 + 60 * DAY, "window {start}..{end} used");
        }
    }

    #[test]
    fn failures_back_off_and_keep_the_certificate() {
        assert_eq!(backoff_ms(1), 60_000);
        assert_eq!(backoff_ms(2), 120_000);
        assert_eq!(backoff_ms(5), 16 * 60_000);
        assert_eq!(backoff_ms(100), RETRY_MAX_MS);
        // Simulated time: renewal falls due, the CA fails every order; the issuer retries at
        // growing intervals, never before the backoff, and the certificate is untouched.
        let c = cert("01", T0, 90);
        let mut now = due_at(&c);
        let mut last: Option<AcmeOrder> = None;
        let mut orders = Vec::new();
        while now < T0 + 61 * DAY {
            match decide(Some(&c), last.as_ref(), None, now) {
                Decision::Order(cause) => {
                    assert_eq!(cause, OrderCause::Renewal);
                    let failures = last.as_ref().map(|o| o.failures).unwrap_or(0) + 1;
                    orders.push(now);
                    last = Some(failed(now, failures));
                }
                Decision::Wait { until_ms } => {
                    assert!(until_ms > now);
                }
                other => panic!("{other:?}"),
            }
            now += 30_000;
        }
        let gaps: Vec<u64> = orders.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(gaps[0], 60_000);
        assert_eq!(gaps[1], 120_000);
        assert!(gaps.windows(2).all(|w| w[1] >= w[0]));
        assert!(gaps.iter().all(|g| *g <= RETRY_MAX_MS));
        assert!(orders.len() < 15, "{} orders in a day", orders.len());
    }

    #[test]
    fn the_first_order_and_its_failures() {
        assert_eq!(
            decide(None, None, None, T0),
            Decision::Order(OrderCause::First)
        );
        let f = failed(T0, 1);
        assert_eq!(
            decide(None, Some(&f), None, T0 + 1000),
            Decision::Wait {
                until_ms: T0 + 60_000
            }
        );
        assert_eq!(
            decide(None, Some(&f), None, T0 + 60_000),
            Decision::Order(OrderCause::First)
        );
        let mut flying = f.clone();
        flying.stage = OrderStage::Validating;
        assert_eq!(decide(None, Some(&flying), None, T0), Decision::Resume);
    }

    #[test]
    fn requests_act_at_once_but_only_once_and_within_the_limit() {
        let c = cert("01", T0, 90);
        let renew = CertRequest {
            name: "a.example.com".into(),
            action: CertAction::Renew,
            asked_ms: T0 + DAY,
        };
        assert_eq!(
            decide(Some(&c), None, Some(&renew), T0 + DAY),
            Decision::Order(OrderCause::Forced)
        );
        // Once a certificate was obtained after it, the request is spent.
        let newer = cert("02", T0 + 2 * DAY, 90);
        assert!(matches!(
            decide(Some(&newer), None, Some(&renew), T0 + 2 * DAY),
            Decision::Wait { .. }
        ));
        // A request is acted on even during a failure's backoff.
        let f = failed(T0 + DAY - 1, 3);
        assert_eq!(
            decide(Some(&c), Some(&f), Some(&renew), T0 + DAY),
            Decision::Order(OrderCause::Forced)
        );
        let rotate = CertRequest {
            action: CertAction::Rotate,
            ..renew.clone()
        };
        assert_eq!(
            decide(Some(&c), None, Some(&rotate), T0 + DAY),
            Decision::Order(OrderCause::Rotation)
        );
        let mut busy = c.clone();
        busy.recent = vec![T0 - 5 * DAY, T0 - 3 * DAY, T0 - DAY, T0];
        assert!(matches!(
            decide(Some(&busy), None, Some(&renew), T0 + DAY),
            Decision::Refused { .. }
        ));
        // A week later the oldest ones no longer count.
        assert_eq!(
            decide(Some(&busy), None, Some(&renew), T0 + 8 * DAY),
            Decision::Order(OrderCause::Forced)
        );
    }

    #[test]
    fn ari_is_asked_when_never_asked_or_when_the_ca_said() {
        let mut c = cert("01", T0, 90);
        assert!(ari_due(&c, T0));
        c.ari = Some(AriWindow {
            start_ms: T0 + 30 * DAY,
            end_ms: T0 + 32 * DAY,
            fetched_ms: T0,
            next_fetch_ms: T0 + 6 * HOUR,
        });
        assert!(!ari_due(&c, T0 + HOUR));
        assert!(ari_due(&c, T0 + 6 * HOUR));
    }

    #[test]
    fn ari_is_asked_again_within_bounds() {
        assert_eq!(next_ari_fetch(T0, 10), T0 + HOUR);
        assert_eq!(next_ari_fetch(T0, 6 * 3600), T0 + 6 * HOUR);
        assert_eq!(next_ari_fetch(T0, 30 * 24 * 3600), T0 + 24 * HOUR);
    }
}
