//! The table and the verdict on the targets, as markdown for docs/benchmarks.md.

use super::measure::Load;
use super::rounds::{HANDSHAKES, ROUNDS, WRK_SECS};
use super::tls::Session;
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

/// What one HTTPS path measured.
#[derive(Debug, Clone)]
pub struct TlsMeasured {
    /// wrk on the 1 KiB file, keep-alive.
    pub keep_alive: Load,
    /// Lowest and highest keep-alive requests/s of the rounds.
    pub keep_alive_range: (f64, f64),
    /// wrk on the 1 KiB file with `Connection: close`: requests/s is handshakes/s.
    pub close: Load,
    /// Lowest and highest `Connection: close` requests/s of the rounds.
    pub close_range: (f64, f64),
    /// Median time of one full TLS handshake on an idle path (curl), ms.
    pub handshake_ms: f64,
    /// CPU time of the path's own processes per keep-alive request, µs, per host.
    pub cpu_us_per_request: Vec<(String, f64)>,
    /// CPU time of the same processes per `Connection: close` request (one handshake each),
    /// µs, per host.
    pub cpu_us_per_handshake: Vec<(String, f64)>,
}

/// Which HTTPS path a column is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsKind {
    /// Hearth, TLS terminated at the edge.
    Edge,
    /// Hearth, TLS passed through the edge and terminated by the hosting member.
    Passthrough,
    /// The seed stack: Caddy terminating TLS on the VPS, then wireguard-go.
    Seed,
}

/// One HTTPS path: its name, what it measured, the TLS it negotiates, and which HTTP column
/// is the same stack without TLS.
#[derive(Debug)]
pub struct TlsColumn {
    /// Column heading.
    pub name: &'static str,
    /// Which path it is.
    pub kind: TlsKind,
    /// The measurements, or the error that stopped them.
    pub result: Result<TlsMeasured, String>,
    /// Version, cipher and resumption as OpenSSL's client sees them, or why unknown.
    pub session: Result<Session, String>,
    /// Index of the same stack's plain-HTTP column.
    pub http: usize,
}

impl TlsColumn {
    /// A column from a measurement.
    pub fn new(
        name: &'static str,
        kind: TlsKind,
        result: anyhow::Result<TlsMeasured>,
        session: anyhow::Result<Session>,
        http: usize,
    ) -> Self {
        Self {
            name,
            kind,
            result: result.map_err(|e| format!("{e:#}")),
            session: session.map_err(|e| format!("{e:#}")),
            http,
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

/// Targets for Hearth's HTTPS path.
const MIN_TLS_RPS_VS_SEED: f64 = 2.5;
const MIN_HANDSHAKES_VS_SEED: f64 = 1.0;
const MAX_TLS_P99_MS: f64 = 5.0;

/// Target for passthrough: the edge's CPU per keep-alive request at most this share of the
/// edge's CPU per keep-alive request when it terminates TLS itself.
const MAX_PASSTHROUGH_EDGE_CPU_VS_EDGE: f64 = 0.5;

/// The hosts whose processes' CPU is counted: the public edge and the hosting member.
const EDGE_HOST: &str = "vps";
const MEMBER_HOST: &str = "home";

/// What the HTTPS column of `kind` measured, if it did.
fn measured(tls: &[TlsColumn], kind: TlsKind) -> Option<&TlsMeasured> {
    tls.iter()
        .find(|c| c.kind == kind)
        .and_then(|c| c.result.as_ref().ok())
}

/// The CPU figure of `host` in a per-host list.
fn host_cpu(hosts: &[(String, f64)], host: &str) -> Option<f64> {
    hosts.iter().find(|(h, _)| h == host).map(|(_, v)| *v)
}

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

/// A row of the HTTPS table: each column's value, for Hearth's its ratio to the seed stack's,
/// and for passthrough first its ratio to edge-terminated HTTPS ("edge TLS").
fn tls_row(
    tls: &[TlsColumn],
    label: &str,
    value: impl Fn(&TlsMeasured) -> f64,
    show: impl Fn(f64) -> String,
) -> String {
    let seed = measured(tls, TlsKind::Seed).map(&value);
    let edge = measured(tls, TlsKind::Edge).map(&value);
    let mut line = format!("| {label} |");
    for column in tls {
        let cell = match &column.result {
            Ok(m) => {
                let v = value(m);
                let mut ratios = Vec::new();
                if let (TlsKind::Passthrough, Some(e)) = (column.kind, edge) {
                    if e > 0.0 {
                        ratios.push(format!("{:.2}× edge TLS", v / e));
                    }
                }
                if let (TlsKind::Edge | TlsKind::Passthrough, Some(s)) = (column.kind, seed) {
                    if s > 0.0 {
                        ratios.push(format!("{:.2}× seed", v / s));
                    }
                }
                if ratios.is_empty() {
                    show(v)
                } else {
                    format!("{} ({})", show(v), ratios.join(", "))
                }
            }
            Err(_) => "failed".into(),
        };
        let _ = write!(line, " {cell} |");
    }
    line
}

/// A row of one host's CPU per request (`pick` chooses keep-alive or handshake), each column's
/// against edge-terminated HTTPS's on the same host ("edge TLS").
fn tls_host_cpu_row(
    tls: &[TlsColumn],
    label: &str,
    host: &str,
    pick: impl Fn(&TlsMeasured) -> &[(String, f64)],
) -> String {
    let value = |m: &TlsMeasured| host_cpu(pick(m), host);
    let edge = measured(tls, TlsKind::Edge).and_then(value);
    tls_cells(tls, label, |c| {
        let v = value(c.result.as_ref().ok()?)?;
        Some(match edge {
            Some(e) if c.kind != TlsKind::Edge && e > 0.0 => {
                format!("{v:.0} µs ({:.2}× edge TLS)", v / e)
            }
            _ => format!("{v:.0} µs"),
        })
    })
}

/// A row with one cell per HTTPS column made by `cell` (`—` where it has nothing).
fn tls_cells(
    tls: &[TlsColumn],
    label: &str,
    cell: impl Fn(&TlsColumn) -> Option<String>,
) -> String {
    let mut line = format!("| {label} |");
    for column in tls {
        let _ = write!(line, " {} |", cell(column).unwrap_or_else(|| "—".into()));
    }
    line
}

/// CPU per host as `total unit (host v, host v)`.
fn cpu_cell(hosts: &[(String, f64)], unit: &str) -> Option<String> {
    if hosts.is_empty() {
        return None;
    }
    let total: f64 = hosts.iter().map(|(_, v)| v).sum();
    let split: Vec<String> = hosts.iter().map(|(h, v)| format!("{h} {v:.0}")).collect();
    Some(format!("{total:.0} {unit} ({})", split.join(", ")))
}

/// The markdown table of the HTTPS paths; `http` are the plain-HTTP columns, for the cost of
/// TLS on each stack.
pub fn tls_table(tls: &[TlsColumn], http: &[Column]) -> String {
    let mut out = String::from("| |");
    for column in tls {
        let _ = write!(out, " {} |", column.name);
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(tls.len()));
    out.push('\n');
    let ms = |v: f64| format!("{v:.2} ms");
    let range = |r: (f64, f64)| format!("{}–{}", thousands(r.0), thousands(r.1));
    let rows = [
        tls_row(
            tls,
            "requests/s, 1 KiB, keep-alive",
            |m| m.keep_alive.rps,
            thousands,
        ),
        tls_cells(tls, "keep-alive requests/s, lowest–highest round", |c| {
            c.result.as_ref().ok().map(|m| range(m.keep_alive_range))
        }),
        tls_cells(
            tls,
            "keep-alive requests/s against the same path over HTTP",
            |c| {
                let tls = c.result.as_ref().ok()?.keep_alive.rps;
                let plain = http.get(c.http)?.result.as_ref().ok()?.load.rps;
                (plain > 0.0).then(|| format!("{:.2}×", tls / plain))
            },
        ),
        tls_row(tls, "keep-alive latency p50", |m| m.keep_alive.p50_ms, ms),
        tls_row(tls, "keep-alive latency p99", |m| m.keep_alive.p99_ms, ms),
        tls_row(
            tls,
            "handshakes/s (`Connection: close`)",
            |m| m.close.rps,
            thousands,
        ),
        tls_cells(tls, "handshakes/s, lowest–highest round", |c| {
            c.result.as_ref().ok().map(|m| range(m.close_range))
        }),
        tls_row(
            tls,
            "new-connection latency p50 (after the handshake)",
            |m| m.close.p50_ms,
            ms,
        ),
        tls_row(
            tls,
            "new-connection latency p99 (after the handshake)",
            |m| m.close.p99_ms,
            ms,
        ),
        tls_row(
            tls,
            "full handshake, idle (curl, median)",
            |m| m.handshake_ms,
            ms,
        ),
        tls_cells(tls, "CPU per keep-alive request", |c| {
            cpu_cell(&c.result.as_ref().ok()?.cpu_us_per_request, "µs")
        }),
        tls_cells(
            tls,
            "CPU per handshake (`Connection: close` request)",
            |c| cpu_cell(&c.result.as_ref().ok()?.cpu_us_per_handshake, "µs"),
        ),
        tls_host_cpu_row(
            tls,
            "edge's (vps) CPU per keep-alive request",
            EDGE_HOST,
            |m| &m.cpu_us_per_request,
        ),
        tls_host_cpu_row(
            tls,
            "hosting member's (home) CPU per keep-alive request",
            MEMBER_HOST,
            |m| &m.cpu_us_per_request,
        ),
        tls_host_cpu_row(tls, "edge's (vps) CPU per handshake", EDGE_HOST, |m| {
            &m.cpu_us_per_handshake
        }),
        tls_host_cpu_row(
            tls,
            "hosting member's (home) CPU per handshake",
            MEMBER_HOST,
            |m| &m.cpu_us_per_handshake,
        ),
        tls_cells(tls, "TLS with OpenSSL's defaults (`s_client`)", |c| {
            Some(match &c.session {
                Ok(s) => format!(
                    "{}, {}, resumes sessions: {}",
                    s.version,
                    s.cipher,
                    if s.reused { "yes" } else { "no" }
                ),
                Err(e) => format!("unknown ({})", e.lines().next().unwrap_or_default()),
            })
        }),
        tls_cells(tls, "failed requests (wrk, both modes)", |c| {
            let m = c.result.as_ref().ok()?;
            Some((m.keep_alive.errors + m.close.errors).to_string())
        }),
    ];
    for r in rows {
        out.push_str(&r);
        out.push('\n');
    }
    out
}

/// A ratio verdict followed by the two figures it compares.
fn ratio_verdict(what: &str, ours: f64, theirs: f64, goal: f64, unit: &str) -> String {
    let line = verdict(what, ours / theirs, goal, true, "×");
    format!(
        "{}: {} against {} {unit}.",
        line.trim_end_matches('.'),
        thousands(ours),
        thousands(theirs)
    )
}

/// The verdict on every HTTPS target, one line each.
pub fn tls_targets(tls: &[TlsColumn]) -> String {
    let hearth = match tls
        .iter()
        .find(|c| c.kind == TlsKind::Edge)
        .map(|c| &c.result)
    {
        Some(Ok(m)) => m,
        Some(Err(e)) => {
            return format!(
                "No HTTPS target met: Hearth's HTTPS path was not measured ({}).",
                e.lines().next().unwrap_or_default()
            )
        }
        None => return "No HTTPS target met: Hearth's HTTPS path was not measured.".into(),
    };
    let seed = measured(tls, TlsKind::Seed);
    let na = |what: &str| format!("- {what}: not measured (the seed stack's HTTPS failed).");
    let mut lines = Vec::new();
    let what =
        format!("HTTPS keep-alive requests/s at least {MIN_TLS_RPS_VS_SEED}× the seed stack's");
    lines.push(match seed {
        Some(s) => ratio_verdict(
            &what,
            hearth.keep_alive.rps,
            s.keep_alive.rps,
            MIN_TLS_RPS_VS_SEED,
            "requests/s",
        ),
        None => na(&what),
    });
    let what = "HTTPS handshakes/s at least the seed stack's".to_string();
    lines.push(match seed {
        Some(s) => ratio_verdict(
            &what,
            hearth.close.rps,
            s.close.rps,
            MIN_HANDSHAKES_VS_SEED,
            "handshakes/s",
        ),
        None => na(&what),
    });
    let mut p99 = verdict(
        &format!("HTTPS keep-alive p99 at most {MAX_TLS_P99_MS} ms"),
        hearth.keep_alive.p99_ms,
        MAX_TLS_P99_MS,
        false,
        " ms",
    );
    if let Some(s) = seed {
        p99 = format!(
            "{}; the seed stack's {:.2} ms ({:.2}×).",
            p99.trim_end_matches('.'),
            s.keep_alive.p99_ms,
            hearth.keep_alive.p99_ms / s.keep_alive.p99_ms
        );
    }
    lines.push(p99);
    lines.join("\n")
}

/// The verdict on the passthrough target, and where the CPU went instead.
pub fn passthrough_target(tls: &[TlsColumn]) -> String {
    let what = "passthrough costs the edge at most half the CPU per request of edge termination";
    let failed = |kind: TlsKind| {
        tls.iter()
            .find(|c| c.kind == kind)
            .map(|c| match &c.result {
                Ok(_) => String::new(),
                Err(e) => format!(": {}", e.lines().next().unwrap_or_default()),
            })
            .unwrap_or_default()
    };
    let (Some(pass), Some(edge)) = (
        measured(tls, TlsKind::Passthrough),
        measured(tls, TlsKind::Edge),
    ) else {
        return format!(
            "- {what}: not measured (passthrough{}; edge-terminated{}).",
            failed(TlsKind::Passthrough),
            failed(TlsKind::Edge)
        );
    };
    let cpu = |m: &TlsMeasured, host: &str, handshake: bool| {
        let hosts = if handshake {
            &m.cpu_us_per_handshake
        } else {
            &m.cpu_us_per_request
        };
        host_cpu(hosts, host)
    };
    let (Some(ours), Some(theirs)) = (cpu(pass, EDGE_HOST, false), cpu(edge, EDGE_HOST, false))
    else {
        return format!("- {what}: not measured (no CPU figures for the edge, {EDGE_HOST}).");
    };
    if theirs <= 0.0 {
        return format!("- {what}: not measured (no CPU counted for edge termination).");
    }
    let line = verdict(
        what,
        ours / theirs,
        MAX_PASSTHROUGH_EDGE_CPU_VS_EDGE,
        false,
        "×",
    );
    let mut text = format!(
        "{}: the edge ({EDGE_HOST}) spent {ours:.0} µs of CPU per keep-alive request passing \
         TLS through against {theirs:.0} µs terminating it.",
        line.trim_end_matches('.')
    );
    let pair = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(format!("{a:.0} against {b:.0} µs ({:.2}×)", a / b)),
        _ => None,
    };
    if let Some(p) = pair(cpu(pass, EDGE_HOST, true), cpu(edge, EDGE_HOST, true)) {
        let _ = write!(text, " Per handshake (`Connection: close` request): {p}.");
    }
    let member = [
        pair(cpu(pass, MEMBER_HOST, false), cpu(edge, MEMBER_HOST, false))
            .map(|p| format!("{p} per keep-alive request")),
        pair(cpu(pass, MEMBER_HOST, true), cpu(edge, MEMBER_HOST, true))
            .map(|p| format!("{p} per handshake")),
    ];
    let member: Vec<String> = member.into_iter().flatten().collect();
    if !member.is_empty() {
        let _ = write!(
            text,
            " The work moved to the hosting member ({MEMBER_HOST}): {}.",
            member.join(", ")
        );
    }
    let total = |m: &TlsMeasured| m.cpu_us_per_request.iter().map(|(_, v)| v).sum::<f64>();
    if let Some(p) = pair(Some(total(pass)), Some(total(edge))) {
        let _ = write!(text, " Both nodes together: {p} per keep-alive request.");
    }
    text
}

/// One `- NAME failed: WHY` line per path that failed, after a blank line; empty if none did.
fn failure_lines<'a>(results: impl Iterator<Item = (&'a str, Option<&'a String>)>) -> String {
    let mut failures = String::new();
    for (name, error) in results {
        if let Some(e) = error {
            let _ = writeln!(failures, "- {name} failed: {}", e.replace('\n', " "));
        }
    }
    if !failures.is_empty() {
        failures.insert(0, '\n');
    }
    failures
}

/// The HTTPS part of the section.
fn tls_section(tls: &[TlsColumn], http: &[Column]) -> String {
    let failures = failure_lines(tls.iter().map(|c| (c.name, c.result.as_ref().err())));
    format!(
        "### HTTPS\n\n\
         The same lab and run, three more paths to the same nginx and 1 KiB file, measured in \
         the same rounds (each round runs every HTTP path above, then every HTTPS path):\n\n\
         - **Hearth HTTPS, edge-terminated**: the VPS node's HTTPS ingress (:443), TLS by \
           rustls, then the same quinn tunnel. No ACME CA is configured in the lab, so the edge \
           answers with its self-signed stand-in certificate for the published name (ECDSA \
           P-256).\n\
         - **Hearth HTTPS passthrough**: a second name for the same nginx target, published on \
           the home node with `tls: passthrough` (`hearthctl publish HOST --to ADDR:PORT --tls \
           passthrough`). The edge's :443 reads only the ClientHello's SNI and splices the raw \
           TLS bytes through the same quinn tunnel; the home node terminates TLS (rustls, its \
           own self-signed stand-in certificate for the name, no CA being configured) and \
           proxies to nginx.\n\
         - **Caddy + wireguard-go, HTTPS** (seed): the same Caddy process on :8443, a site for \
           the same name with `tls internal` (Caddy's own CA, ECDSA P-256 leaf; global \
           `admin off`, `auto_https disable_redirects`, `skip_install_trust`), then the same \
           wireguard-go tunnel.\n\n\
         The client host resolves the published names to the VPS through \
         `/etc/netns/<client>/hosts` (which `ip netns exec` mounts over `/etc/hosts`), so wrk \
         sends each as SNI and Host; wrk checks no certificate and offers no ALPN, so all speak \
         HTTP/1.1 over TLS. Each path gets a 2 s keep-alive warm-up; per round, `wrk -t1 -c32 \
         -d{WRK_SECS}s --latency` keep-alive, the same with `-H \"Connection: close\"` (a new \
         TCP connection and TLS handshake per request: handshakes/s is its requests/s), then \
         {HANDSHAKES} new connections one after the other from one `curl --no-sessionid` \
         (full handshakes, none resumed), each timed from TCP connected to TLS done, on the \
         otherwise idle path (curl's first connection, which also loads its CA store, is not \
         counted; curl's own per-connection TLS setup is, alike for all). Medians over the \
         {ROUNDS} rounds; CPU as above (both Hearth paths count the same two `hearthd`: the \
         edge on the VPS and the hosting member at home), also shown per host. Ratios are to \
         the seed stack's HTTPS (\"seed\") and, for passthrough, first to edge-terminated \
         HTTPS (\"edge TLS\"); the per-host CPU rows compare every path with edge-terminated \
         HTTPS on the same host.\n\n\
         Two things about wrk to read the new-connection rows by: it keeps a connection's TLS \
         session when it reconnects (`SSL_shutdown`, `SSL_clear`, then the next `SSL_connect` \
         offers that session), so against a server that resumes sessions (the TLS row) its \
         handshakes are TLS 1.3 resumptions (PSK with a fresh ECDHE, no certificate \
         signature); and it starts a request's clock only once the handshake is done, so its \
         new-connection latencies leave the handshake out. The curl row times full \
         handshakes.\n\n\
         {}{failures}\n\
         Targets for Hearth's HTTPS:\n\n{}\n\n\
         Target for passthrough:\n\n{}",
        tls_table(tls, http),
        tls_targets(tls),
        passthrough_target(tls),
    )
}

/// The section of docs/benchmarks.md.
pub fn render(columns: &[Column], tls: &[TlsColumn], versions: &str, load: &str) -> String {
    let failures = failure_lines(columns.iter().map(|c| (c.name, c.result.as_ref().err())));
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
           (`admin off`, plain-HTTP site, `reverse_proxy`) through a wireguard-go tunnel that \
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
         {}\n\n\
         Versions: {versions}, Hearth release build.\n\n\
         Command (root): `cargo build --release --workspace --bins && target/release/hearth-testnet bench dataplane`\n",
        table(columns),
        targets(columns),
        tls_section(tls, columns),
    )
}

/// A short summary for the terminal.
pub fn console(columns: &[Column], tls: &[TlsColumn]) -> String {
    format!(
        "{}\n{}\n\n{}\n{}\n{}",
        table(columns),
        targets(columns),
        tls_table(tls, columns),
        tls_targets(tls),
        passthrough_target(tls)
    )
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

    fn kind_of(name: &str) -> TlsKind {
        match name {
            "seed" => TlsKind::Seed,
            "passthrough" => TlsKind::Passthrough,
            _ => TlsKind::Edge,
        }
    }

    fn tls_column(name: &'static str, rps: f64, handshakes: f64, p99_ms: f64) -> TlsColumn {
        let load = |rps: f64| Load {
            rps,
            p50_ms: p99_ms / 2.0,
            p99_ms,
            errors: 1,
        };
        TlsColumn::new(
            name,
            kind_of(name),
            Ok(TlsMeasured {
                keep_alive: load(rps),
                keep_alive_range: (rps - 100.0, rps + 100.0),
                close: load(handshakes),
                close_range: (handshakes, handshakes),
                handshake_ms: 1.5,
                cpu_us_per_request: vec![("vps".into(), 40.0), ("home".into(), 20.0)],
                cpu_us_per_handshake: vec![("vps".into(), 300.0)],
            }),
            Ok(Session {
                version: "TLSv1.3".into(),
                cipher: "TLS_AES_256_GCM_SHA384".into(),
                reused: true,
            }),
            if name == "seed" { SEED } else { HEARTH },
        )
    }

    /// Plain-HTTP results the TLS comparisons are read against.
    fn http_columns() -> Vec<Column> {
        vec![
            column("direct", 10_000.0, 1.0, 1000.0),
            column("hearth", 8_000.0, 2.0, 500.0),
            column("seed", 2_000.0, 9.0, 100.0),
        ]
    }

    #[test]
    fn https_targets_compare_with_the_seed_stack() {
        let http = http_columns();
        let tls = vec![
            tls_column("hearth", 6_000.0, 1_500.0, 6.0),
            tls_column("seed", 2_000.0, 2_000.0, 12.0),
        ];
        let text = tls_targets(&tls);
        assert!(
            text.contains(
                "2.5× the seed stack's: **met**, 3.00× (goal 2.5×): 6,000 against 2,000 requests/s."
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "handshakes/s at least the seed stack's: **missed**, 0.75× (goal 1×, 25 % off): \
                 1,500 against 2,000 handshakes/s."
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "p99 at most 5 ms: **missed**, 6.00 ms (goal 5 ms, 20 % off); the seed stack's 12.00 ms (0.50×)."
            ),
            "{text}"
        );
        let table = tls_table(&tls, &http);
        assert!(table.contains("| 6,000 (3.00× seed) | 2,000 |"), "{table}");
        assert!(table.contains("| 5,900–6,100 | 1,900–2,100 |"), "{table}");
        // HTTPS against the same stack's HTTP: 6,000 / 8,000 and 2,000 / 2,000.
        assert!(table.contains("| 0.75× | 1.00× |"), "{table}");
        assert!(table.contains("| 60 µs (vps 40, home 20) |"), "{table}");
        assert!(table.contains("TLS_AES_256_GCM_SHA384, resumes sessions: yes"));
        assert!(table.contains("| failed requests (wrk, both modes) | 2 | 2 |"));
        let section = render(&http, &tls, "wrk 4.1.0", "0.50");
        assert!(section.contains("### HTTPS"), "{section}");
        assert!(section.contains("Targets for Hearth's HTTPS:"), "{section}");
    }

    #[test]
    fn a_failed_https_path_is_reported() {
        let tls = vec![
            TlsColumn::new(
                "hearth",
                TlsKind::Edge,
                Err(anyhow::anyhow!("unrecognized name\nmore")),
                Err(anyhow::anyhow!("no handshake")),
                HEARTH,
            ),
            tls_column("seed", 2_000.0, 2_000.0, 12.0),
        ];
        assert!(tls_targets(&tls).contains("not measured (unrecognized name)"));
        let table = tls_table(&tls, &[]);
        assert!(table.contains("| failed | 2,000 |"), "{table}");
        assert!(table.contains("| unknown (no handshake) |"), "{table}");
        let tls = vec![
            tls_column("hearth", 6_000.0, 1_500.0, 4.0),
            TlsColumn::new(
                "seed",
                TlsKind::Seed,
                Err(anyhow::anyhow!("caddy")),
                Ok(Session {
                    version: "TLSv1.3".into(),
                    cipher: "x".into(),
                    reused: false,
                }),
                SEED,
            ),
        ];
        let text = tls_targets(&tls);
        assert!(
            text.contains("not measured (the seed stack's HTTPS failed)"),
            "{text}"
        );
        assert!(
            text.contains("p99 at most 5 ms: **met**, 4.00 ms (goal 5 ms)."),
            "{text}"
        );
    }

    /// A passthrough column whose edge and member spent `edge_us` and `member_us` per
    /// keep-alive request and ten times that per handshake.
    fn passthrough_column(rps: f64, edge_us: f64, member_us: f64) -> TlsColumn {
        let mut column = tls_column("passthrough", rps, 1_000.0, 8.0);
        if let Ok(m) = &mut column.result {
            m.cpu_us_per_request = vec![("vps".into(), edge_us), ("home".into(), member_us)];
            m.cpu_us_per_handshake = vec![
                ("vps".into(), edge_us * 10.0),
                ("home".into(), member_us * 10.0),
            ];
        }
        column
    }

    #[test]
    fn passthrough_is_compared_with_edge_termination_and_the_seed() {
        let http = http_columns();
        // Edge-terminated: vps 40, home 20 per request; per handshake vps 300 only.
        let tls = vec![
            tls_column("hearth", 6_000.0, 1_500.0, 6.0),
            passthrough_column(7_500.0, 16.0, 50.0),
            tls_column("seed", 2_000.0, 2_000.0, 12.0),
        ];
        let table = tls_table(&tls, &http);
        assert!(
            table.contains("| 6,000 (3.00× seed) | 7,500 (1.25× edge TLS, 3.75× seed) | 2,000 |"),
            "{table}"
        );
        assert!(
            table.contains(
                "| edge's (vps) CPU per keep-alive request | 40 µs | 16 µs (0.40× edge TLS) | \
                 40 µs (1.00× edge TLS) |"
            ),
            "{table}"
        );
        assert!(
            table.contains(
                "| hosting member's (home) CPU per keep-alive request | 20 µs | \
                 50 µs (2.50× edge TLS) | 20 µs (1.00× edge TLS) |"
            ),
            "{table}"
        );
        // No home figure per handshake for edge termination: no ratio, and — for the seed.
        assert!(
            table.contains("| hosting member's (home) CPU per handshake | — | 500 µs | — |"),
            "{table}"
        );
        assert!(table.contains("| 66 µs (vps 16, home 50) |"), "{table}");
        let text = passthrough_target(&tls);
        assert!(
            text.starts_with(
                "- passthrough costs the edge at most half the CPU per request of edge \
                 termination: **met**, 0.40× (goal 0.5×): the edge (vps) spent 16 µs of CPU per \
                 keep-alive request passing TLS through against 40 µs terminating it. Per \
                 handshake (`Connection: close` request): 160 against 300 µs (0.53×). The work \
                 moved to the hosting member (home): 50 against 20 µs (2.50×) per keep-alive \
                 request. Both nodes together: 66 against 60 µs (1.10×) per keep-alive request."
            ),
            "{text}"
        );
        let section = render(&http, &tls, "wrk 4.1.0", "0.50");
        assert!(
            section.contains("Target for passthrough:\n\n- passthrough"),
            "{section}"
        );
    }

    #[test]
    fn passthrough_target_missed_or_not_measured() {
        let missed = [
            tls_column("hearth", 6_000.0, 1_500.0, 6.0),
            passthrough_column(7_500.0, 30.0, 50.0),
        ];
        let text = passthrough_target(&missed);
        assert!(
            text.contains("**missed**, 0.75× (goal 0.5×, 50 % off): the edge (vps) spent 30 µs"),
            "{text}"
        );
        let failed = [
            tls_column("hearth", 6_000.0, 1_500.0, 6.0),
            TlsColumn::new(
                "passthrough",
                TlsKind::Passthrough,
                Err(anyhow::anyhow!("handshake failure\nmore")),
                Err(anyhow::anyhow!("no handshake")),
                HEARTH,
            ),
        ];
        let text = passthrough_target(&failed);
        assert!(
            text.ends_with("not measured (passthrough: handshake failure; edge-terminated)."),
            "{text}"
        );
        assert!(tls_table(&failed, &[]).contains("| 6,000 | failed |"));
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
