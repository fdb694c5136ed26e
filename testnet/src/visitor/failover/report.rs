//! What a failover load run saw: every logical request, the totals, and the longest gap
//! between two successes; printed as one `key=value` line and read back by tests that ran the
//! probe inside a lab host.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

/// One logical request (one or more attempts on different edges).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// Its sequence number in the run; it picked the first edge tried.
    pub seq: u64,
    /// When it started, in ms since the run started.
    pub start_ms: u64,
    /// When it finished, in ms since the run started.
    pub end_ms: u64,
    /// Whether an edge answered 2xx with a complete body.
    pub ok: bool,
    /// Attempts made, at most one per edge.
    pub attempts: u32,
    /// The edge that answered, if one did.
    pub edge: Option<SocketAddr>,
    /// Why the last attempt failed, if all did.
    pub error: Option<String>,
}

/// What a run saw. Its `Display` is the probe's output line,
/// `ok=N failed=N retried=N max_gap_ms=N gap_from_ms=N gap_to_ms=N first_ms=N last_ms=N
/// per_edge=IP:PORT:N,…`; [`LoadReport::parse_line`] reads it back (only the printed fields).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Logical requests that succeeded.
    pub ok: u64,
    /// Logical requests on which every edge failed.
    pub failed: u64,
    /// Logical requests that needed more than one attempt, whether or not one succeeded.
    pub retried: u64,
    /// Successes per edge, in the order of the config's edges.
    pub per_edge_ok: Vec<(SocketAddr, u64)>,
    /// The failover figure: the longest time between two consecutive successful completions
    /// (by end time). 0 with fewer than two successes.
    pub max_gap_ms: u64,
    /// End time of the success before the longest gap.
    pub gap_from_ms: u64,
    /// End time of the success after the longest gap.
    pub gap_to_ms: u64,
    /// End time of the first success (the gap from the run start to it); 0 if none.
    pub first_ms: u64,
    /// End time of the last success; 0 if none.
    pub last_ms: u64,
    /// Attempts in total (not printed).
    pub attempts: u64,
    /// Logical requests in flight when the run stopped, not counted as ok or failed (not
    /// printed).
    pub abandoned: u64,
    /// How long the run took, in ms (not printed).
    pub end_ms: u64,
    /// Every finished logical request, by sequence number (not printed).
    pub requests: Vec<RequestRecord>,
}

impl LoadReport {
    /// Sums up the records of a run against `edges` that took `end_ms`.
    pub(super) fn from_records(
        edges: &[SocketAddr],
        mut requests: Vec<RequestRecord>,
        abandoned: u64,
        end_ms: u64,
    ) -> Self {
        requests.sort_by_key(|r| r.seq);
        let mut report = Self {
            per_edge_ok: edges.iter().map(|edge| (*edge, 0)).collect(),
            abandoned,
            end_ms,
            ..Self::default()
        };
        let mut successes = Vec::new();
        for request in &requests {
            report.attempts += u64::from(request.attempts);
            if request.attempts > 1 {
                report.retried += 1;
            }
            match request.edge.filter(|_| request.ok) {
                Some(edge) => {
                    report.ok += 1;
                    successes.push(request.end_ms);
                    if let Some(slot) = report.per_edge_ok.iter_mut().find(|(e, _)| *e == edge) {
                        slot.1 += 1;
                    }
                }
                None => report.failed += 1,
            }
        }
        successes.sort_unstable();
        report.first_ms = successes.first().copied().unwrap_or(0);
        report.last_ms = successes.last().copied().unwrap_or(0);
        for pair in successes.windows(2) {
            if pair[1] - pair[0] > report.max_gap_ms {
                report.max_gap_ms = pair[1] - pair[0];
                report.gap_from_ms = pair[0];
                report.gap_to_ms = pair[1];
            }
        }
        report.requests = requests;
        report
    }

    /// Reads back the line the probe printed (surrounding whitespace ignored). The fields
    /// that are not printed stay empty.
    pub fn parse_line(line: &str) -> Result<Self> {
        let mut fields = BTreeMap::new();
        for pair in line.split_whitespace() {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("`{pair}` is not key=value"))?;
            if fields.insert(key, value).is_some() {
                bail!("`{key}` appears twice in `{line}`");
            }
        }
        let mut number = |key: &str| -> Result<u64> {
            let value = fields
                .remove(key)
                .with_context(|| format!("no `{key}=` in `{line}`"))?;
            value
                .parse()
                .with_context(|| format!("`{key}={value}` is not a number"))
        };
        let mut report = Self {
            ok: number("ok")?,
            failed: number("failed")?,
            retried: number("retried")?,
            max_gap_ms: number("max_gap_ms")?,
            gap_from_ms: number("gap_from_ms")?,
            gap_to_ms: number("gap_to_ms")?,
            first_ms: number("first_ms")?,
            last_ms: number("last_ms")?,
            ..Self::default()
        };
        let per_edge = fields
            .remove("per_edge")
            .with_context(|| format!("no `per_edge=` in `{line}`"))?;
        report.per_edge_ok = per_edge
            .split(',')
            .filter(|entry| !entry.is_empty())
            .map(parse_edge)
            .collect::<Result<_>>()?;
        if let Some(key) = fields.keys().next() {
            bail!("unknown field `{key}` in `{line}`");
        }
        Ok(report)
    }
}

/// `IP:PORT:N`, the count after the last colon.
fn parse_edge(entry: &str) -> Result<(SocketAddr, u64)> {
    let (addr, count) = entry
        .rsplit_once(':')
        .with_context(|| format!("`{entry}` is not IP:PORT:N"))?;
    let addr = addr
        .parse()
        .with_context(|| format!("`{addr}` in `{entry}` is not IP:PORT"))?;
    let count = count
        .parse()
        .with_context(|| format!("`{count}` in `{entry}` is not a number"))?;
    Ok((addr, count))
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per_edge: Vec<String> = self
            .per_edge_ok
            .iter()
            .map(|(edge, n)| format!("{edge}:{n}"))
            .collect();
        write!(
            f,
            "ok={} failed={} retried={} max_gap_ms={} gap_from_ms={} gap_to_ms={} first_ms={} \
             last_ms={} per_edge={}",
            self.ok,
            self.failed,
            self.retried,
            self.max_gap_ms,
            self.gap_from_ms,
            self.gap_to_ms,
            self.first_ms,
            self.last_ms,
            per_edge.join(",")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, end_ms: u64, edge: Option<&str>, attempts: u32) -> RequestRecord {
        RequestRecord {
            seq,
            start_ms: end_ms.saturating_sub(1),
            end_ms,
            ok: edge.is_some(),
            attempts,
            edge: edge.map(|e| e.parse().unwrap()),
            error: edge.is_none().then(|| "refused".to_string()),
        }
    }

    fn edges() -> Vec<SocketAddr> {
        vec![
            "127.0.0.1:8001".parse().unwrap(),
            "127.0.0.1:8002".parse().unwrap(),
        ]
    }

    #[test]
    fn the_longest_gap_is_between_consecutive_successes() {
        let a = Some("127.0.0.1:8001");
        let b = Some("127.0.0.1:8002");
        let records = vec![
            record(3, 70, b, 2),
            record(0, 10, a, 1),
            record(2, 65, None, 2),
            record(1, 20, b, 1),
            record(4, 80, a, 1),
        ];
        let report = LoadReport::from_records(&edges(), records, 1, 90);
        assert_eq!((report.ok, report.failed, report.retried), (4, 1, 2));
        assert_eq!(
            (report.max_gap_ms, report.gap_from_ms, report.gap_to_ms),
            (50, 20, 70)
        );
        assert_eq!((report.first_ms, report.last_ms), (10, 80));
        assert_eq!(
            (report.attempts, report.abandoned, report.end_ms),
            (7, 1, 90)
        );
        assert_eq!(report.per_edge_ok, vec![(edges()[0], 2), (edges()[1], 2)]);
        let seqs: Vec<u64> = report.requests.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn without_two_successes_there_is_no_gap() {
        let report = LoadReport::from_records(&edges(), vec![record(0, 5, None, 2)], 0, 9);
        assert_eq!((report.ok, report.failed, report.max_gap_ms), (0, 1, 0));
        assert_eq!((report.first_ms, report.last_ms), (0, 0));
    }

    #[test]
    fn the_line_reads_back() {
        let records = vec![
            record(0, 10, Some("127.0.0.1:8001"), 1),
            record(1, 40, Some("127.0.0.1:8001"), 2),
            record(2, 41, None, 2),
        ];
        let report = LoadReport::from_records(&edges(), records, 0, 50);
        let line = report.to_string();
        assert_eq!(
            line,
            "ok=2 failed=1 retried=2 max_gap_ms=30 gap_from_ms=10 gap_to_ms=40 first_ms=10 \
             last_ms=40 per_edge=127.0.0.1:8001:2,127.0.0.1:8002:0"
        );
        let back = LoadReport::parse_line(&format!("{line}\n")).unwrap();
        let printed = LoadReport {
            attempts: 0,
            abandoned: 0,
            end_ms: 0,
            requests: Vec::new(),
            ..report
        };
        assert_eq!(back, printed);
        let v6 = LoadReport::parse_line(&line.replace("127.0.0.1:8002", "[::1]:80")).unwrap();
        assert_eq!(v6.per_edge_ok[1], ("[::1]:80".parse().unwrap(), 0));
    }

    #[test]
    fn broken_lines_are_refused() {
        let good = "ok=1 failed=0 retried=0 max_gap_ms=0 gap_from_ms=0 gap_to_ms=0 first_ms=1 \
                    last_ms=1 per_edge=127.0.0.1:80:1";
        assert!(LoadReport::parse_line(good).is_ok());
        for bad in [
            good.replace("ok=1 ", ""),
            good.replace("ok=1", "ok=x"),
            format!("{good} ok=1"),
            format!("{good} extra=1"),
            good.replace("127.0.0.1:80:1", "127.0.0.1:1"),
            good.replace("failed=0", "failed"),
        ] {
            assert!(LoadReport::parse_line(&bad).is_err(), "{bad}");
        }
    }
}
