//! The table and the verdict on the targets, as markdown for docs/benchmarks.md.

use super::measure::Load;
use super::rounds::{ROUNDS, WRK_SECS};
use std::fmt::Write as _;

/// Idle resident memory of one path's processes, summed per host (MB), or why it is unknown.
pub type Rss = Result<Vec<(String, f64)>, String>;

/// What one path measured.
#[derive(Debug, Clone)]
pub struct Measured {
    /// wrk on the 1 KiB file.
    pub load: Load,
    /// Lowest and highest requests/s of the rounds.
    pub rps_range: (f64, f64),
    /// Median speed of the 100 MB download, MB/s.
    pub download_mb_s: f64,
    /// CPU time the path's own processes (not nginx, not wrk) used per request during the
    /// measured wrk run, µs, per host; empty for the direct path.
    pub cpu_us_per_request: Vec<(String, f64)>,
    /// CPU time the same processes used per MB downloaded, ms, per host.
    pub cpu_ms_per_mb: Vec<(String, f64)>,
}

/// One path: its name, what it measured (or why not), and its idle memory before the traffic
/// and after it.
#[derive(Debug)]
pub struct Column {
    /// Column heading.
    pub name: &'static str,
    /// The measurements, or the error that stopped them.
    pub result: Result<Measured, String>,
    /// Idle RSS (before, after) the runs; none for the direct path.
    pub rss: Option<(Rss, Rss)>,
}

impl Column {
    /// A column from a measurement.
    pub fn new(name: &'static str, result: anyhow::Result<Measured>) -> Self {
        Self {
            name,
            result: result.map_err(|e| format!("{e:#}")),
            rss: None,
        }
    }
}

/// Column positions: direct first, then Hearth, the seed stack and rathole over TCP.
const DIRECT: usize = 0;
const HEARTH: usize = 1;
const SEED: usize = 2;
const RATHOLE_TCP: usize = 3;

/// Targets for the Hearth path.
const MIN_RPS_VS_DIRECT: f64 = 0.7;
const MIN_RPS_VS_SEED: f64 = 3.0;
const MAX_P99_MS: f64 = 5.0;
const MIN_DOWNLOAD_VS_SEED: f64 = 10.0;
const MAX_RSS_MB: f64 = 30.0;

fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A row: each column's value from `value`, with its ratio to direct.
fn row(
    columns: &[Column],
    label: &str,
    value: impl Fn(&Measured) -> f64,
    show: impl Fn(f64) -> String,
) -> String {
    let direct = columns[DIRECT].result.as_ref().ok().map(&value);
    let mut line = format!("| {label} |");
    for (i, column) in columns.iter().enumerate() {
        let cell = match &column.result {
            Ok(m) => {
                let v = value(m);
                match direct {
                    Some(d) if i != DIRECT && d > 0.0 => format!("{} ({:.2}×)", show(v), v / d),
                    _ => show(v),
                }
            }
            Err(_) => "failed".into(),
        };
        let _ = write!(line, " {cell} |");
    }
    line
}

fn range_row(columns: &[Column]) -> String {
    let mut line = String::from("| requests/s, lowest–highest round |");
    for column in columns {
        let cell = match &column.result {
            Ok(m) => format!("{}–{}", thousands(m.rps_range.0), thousands(m.rps_range.1)),
            Err(_) => "—".into(),
        };
        let _ = write!(line, " {cell} |");
    }
    line
}

/// A CPU row: the total per column, then its split per host.
fn cpu_row(
    columns: &[Column],
    label: &str,
    pick: impl Fn(&Measured) -> &[(String, f64)],
    unit: &str,
    prec: usize,
) -> String {
    let mut line = format!("| {label} |");
    for column in columns {
        let cell = match column.result.as_ref().map(&pick) {
            Ok(hosts) if !hosts.is_empty() => {
                let total: f64 = hosts.iter().map(|(_, v)| v).sum();
                let split: Vec<String> = hosts
                    .iter()
                    .map(|(host, v)| format!("{host} {v:.prec$}"))
                    .collect();
                format!("{total:.prec$} {unit} ({})", split.join(", "))
            }
            _ => "—".into(),
        };
        let _ = write!(line, " {cell} |");
    }
    line
}

fn rss_cell(rss: &Rss) -> String {
    match rss {
        Ok(hosts) => hosts
            .iter()
            .map(|(host, mb)| format!("{host} {mb:.1} MB"))
            .collect::<Vec<_>>()
            .join(", "),
        Err(e) => format!("unknown ({e})"),
    }
}

fn rss_row(columns: &[Column], label: &str, pick: impl Fn(&(Rss, Rss)) -> &Rss) -> String {
    let mut line = format!("| {label} |");
    for column in columns {
        let cell = column
            .rss
            .as_ref()
            .map(|r| rss_cell(pick(r)))
            .unwrap_or_else(|| "—".into());
        let _ = write!(line, " {cell} |");
    }
    line
}

/// The markdown table.
pub fn table(columns: &[Column]) -> String {
    let mut out = String::from("| |");
    for column in columns {
        let _ = write!(out, " {} |", column.name);
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(columns.len()));
    out.push('\n');
    let rows = [
        row(columns, "requests/s, 1 KiB", |m| m.load.rps, thousands),
        range_row(columns),
        row(
            columns,
            "latency p50",
            |m| m.load.p50_ms,
            |v| format!("{v:.2} ms"),
        ),
        row(
            columns,
            "latency p99",
            |m| m.load.p99_ms,
            |v| format!("{v:.2} ms"),
        ),
        row(
            columns,
            "100 MB download",
            |m| m.download_mb_s,
            |v| format!("{v:.0} MB/s"),
        ),
        cpu_row(
            columns,
            "CPU per request",
            |m| &m.cpu_us_per_request,
            "µs",
            0,
        ),
        cpu_row(
            columns,
            "CPU per MB downloaded",
            |m| &m.cpu_ms_per_mb,
            "ms",
            1,
        ),
        rss_row(columns, "idle RSS before traffic", |r| &r.0),
        rss_row(columns, "idle RSS after the runs", |r| &r.1),
    ];
    for r in rows {
        out.push_str(&r);
        out.push('\n');
    }
    let mut errors = String::from("| failed requests (wrk) |");
    for column in columns {
        let cell = match &column.result {
            Ok(m) => m.load.errors.to_string(),
            Err(_) => "—".into(),
        };
        let _ = write!(errors, " {cell} |");
    }
    out.push_str(&errors);
    out.push('\n');
    out
}

/// One target: met, or missed and by how much. `more_is_better` says which way it points.
fn verdict(what: &str, got: f64, goal: f64, more_is_better: bool, unit: &str) -> String {
    let met = if more_is_better {
        got >= goal
    } else {
        got <= goal
    };
    if met {
        format!("- {what}: **met**, {got:.2}{unit} (goal {goal}{unit}).")
    } else {
        let short = if more_is_better {
            (1.0 - got / goal) * 100.0
        } else {
            (got / goal - 1.0) * 100.0
        };
        format!("- {what}: **missed**, {got:.2}{unit} (goal {goal}{unit}, {short:.0} % off).")
    }
}

/// The verdict on every target, one line each.
pub fn targets(columns: &[Column]) -> String {
    let hearth = match columns.get(HEARTH).map(|c| &c.result) {
        Some(Ok(m)) => m,
        Some(Err(e)) => {
            return format!(
                "No target met: the Hearth path was not measured ({}).",
                e.lines().next().unwrap_or_default()
            )
        }
        None => return "No target met: the Hearth path was not measured.".into(),
    };
    let mut lines = Vec::new();
    let ratio = |other: usize, value: fn(&Measured) -> f64| {
        columns
            .get(other)
            .and_then(|c| c.result.as_ref().ok())
            .map(|m| value(hearth) / value(m))
    };
    let na = |what: &str| format!("- {what}: not measured (the other path failed).");
    let rps = |m: &Measured| m.load.rps;
    let dl = |m: &Measured| m.download_mb_s;
    let what = format!("requests/s at least {MIN_RPS_VS_DIRECT}× direct");
    lines.push(match ratio(DIRECT, rps) {
        Some(r) => verdict(&what, r, MIN_RPS_VS_DIRECT, true, "×"),
        None => na(&what),
    });
    let what = format!("requests/s at least {MIN_RPS_VS_SEED}× the seed stack");
    lines.push(match ratio(SEED, rps) {
        Some(r) => verdict(&what, r, MIN_RPS_VS_SEED, true, "×"),
        None => na(&what),
    });
    lines.push(verdict(
        &format!("p99 at most {MAX_P99_MS} ms"),
        hearth.load.p99_ms,
        MAX_P99_MS,
        false,
        " ms",
    ));
    let what = format!("100 MB download at least {MIN_DOWNLOAD_VS_SEED}× the seed stack");
    lines.push(match ratio(SEED, dl) {
        Some(r) => verdict(&what, r, MIN_DOWNLOAD_VS_SEED, true, "×"),
        None => na(&what),
    });
    let what = format!("idle RSS at most {MAX_RSS_MB} MB per node");
    lines.push(match &columns[HEARTH].rss {
        Some((Ok(before), Ok(after))) => {
            let most = before
                .iter()
                .chain(after)
                .map(|(_, mb)| *mb)
                .fold(0.0, f64::max);
            verdict(&what, most, MAX_RSS_MB, false, " MB")
        }
        _ => na(&what),
    });
    lines.join("\n")
}

/// The section of docs/benchmarks.md.
pub fn render(columns: &[Column], versions: &str, load: &str) -> String {
    let mut failures = String::new();
    for column in columns {
        if let Err(e) = &column.result {
            let _ = writeln!(
                failures,
                "- {} failed: {}",
                column.name,
                e.replace('\n', " ")
            );
        }
    }
    if !failures.is_empty() {
        failures.insert(0, '\n');
    }
    let result = |i: usize| columns.get(i).and_then(|c| c.result.as_ref().ok());
    let scale = match (result(DIRECT), result(RATHOLE_TCP)) {
        (Some(direct), Some(lean)) => format!(
            "\n\nFor scale: rathole over plain TCP (no encryption, no HTTP parsing) reaches \
             {:.2}× direct in requests/s on this machine.",
            lean.load.rps / direct.load.rps
        ),
        _ => String::new(),
    };
    format!(
        "## Data plane: Hearth against direct, Caddy + WireGuard and rathole\n\n\
         One namespace lab (a public VPS, a home host behind a NAT router that drops inbound \
         connections, a client on the internet), one nginx on the home host (one worker, a \
         1 KiB file and a 100 MB file), and five paths to it from the client host, all set up \
         at once and measured in the same run:\n\n\
         - **direct**: the client to nginx through a DNAT port forward on the home router, no \
           tunnel and no proxy (the VPS hop is skipped too): the ceiling.\n\
         - **Hearth**: the client to the VPS node's HTTP ingress (:80, Host header), through \
           the quinn tunnel the home node keeps to it, to nginx (route target 127.0.0.1).\n\
         - **Caddy + wireguard-go** (the seed stack, what Hearth replaces): Caddy on the VPS \
           (`admin off`, `auto_https off`, `reverse_proxy`) through a wireguard-go tunnel that \
           the home dials out with persistent keepalive, to nginx on the home's overlay address.\n\
         - **rathole**: server on the VPS, client on the home host dialling out, one service to \
           nginx on 127.0.0.1; plain TCP transport and noise transport.\n\n\
         Each path gets a 2 s wrk warm-up, then {ROUNDS} rounds, each running every path in \
         turn (so drift in the machine's load hits all of them alike): `wrk -t1 -c32 \
         -d{WRK_SECS}s --latency` on the 1 KiB file, then one `curl -o /dev/null` of the 100 MB \
         file. Reported: the median over the rounds (requests/s, p50, p99, download speed), \
         and the lowest and highest requests/s of the rounds. CPU: user + system time of the \
         path's own processes (not nginx, not wrk), in total and per host, during the wrk runs \
         per request completed and during the downloads per MB. Idle RSS: VmRSS of the same \
         processes, summed per host (Hearth: one `hearthd` per host; seed stack: Caddy and \
         wireguard-go on the VPS, wireguard-go on the home; rathole: its server and client), \
         read before any traffic and again 3 s after the last run. Ratios are to direct. All \
         on a 2-core machine, so wrk, the proxies and nginx share two cores; other work on it \
         shows as noise (1-minute load average before the run: {load}).\n\n\
         {}{failures}\n\
         Targets for Hearth:\n\n{}{scale}\n\n\
         Versions: {versions}, Hearth release build.\n\n\
         Command (root): `cargo build --release --workspace --bins && target/release/hearth-testnet bench dataplane`\n",
        table(columns),
        targets(columns),
    )
}

/// A short summary for the terminal.
pub fn console(columns: &[Column]) -> String {
    format!("{}\n{}", table(columns), targets(columns))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &'static str, rps: f64, p99_ms: f64, mb_s: f64) -> Column {
        let load = Load {
            rps,
            p50_ms: p99_ms / 2.0,
            p99_ms,
            errors: 0,
        };
        Column::new(
            name,
            Ok(Measured {
                load,
                rps_range: (rps, rps),
                download_mb_s: mb_s,
                cpu_us_per_request: vec![("vps".into(), 30.0), ("home".into(), 20.0)],
                cpu_ms_per_mb: Vec::new(),
            }),
        )
    }

    #[test]
    fn targets_say_met_or_by_how_much_missed() {
        let mut columns = vec![
            column("direct", 10_000.0, 1.0, 1000.0),
            column("hearth", 8_000.0, 6.0, 500.0),
            column("seed", 2_000.0, 9.0, 100.0),
        ];
        columns[1].rss = Some((
            Ok(vec![("vps".into(), 12.0)]),
            Ok(vec![("vps".into(), 14.0)]),
        ));
        let text = targets(&columns);
        assert!(text.contains("0.7× direct: **met**, 0.80×"), "{text}");
        assert!(text.contains("3× the seed stack: **met**, 4.00×"), "{text}");
        assert!(text.contains("p99 at most 5 ms: **missed**, 6.00 ms (goal 5 ms, 20 % off)"));
        assert!(text.contains("10× the seed stack: **missed**, 5.00× (goal 10×, 50 % off)"));
        assert!(text.contains("per node: **met**, 14.00 MB"), "{text}");
        let table = table(&columns);
        assert!(table.contains("| 8,000 (0.80×) |"), "{table}");
        assert!(table.contains("50 µs (vps 30, home 20)"), "{table}");
    }

    #[test]
    fn a_failed_hearth_path_meets_nothing() {
        let columns = vec![
            column("direct", 10_000.0, 1.0, 1000.0),
            Column::new("hearth", Err(anyhow::anyhow!("no tunnel"))),
        ];
        assert!(targets(&columns).contains("not measured (no tunnel)"));
        assert!(table(&columns).contains("| failed |"));
    }
}
