//! Load and size measurements from the client host: wrk, curl and /proc.

use super::report::Rss;
use crate::lab::Host;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::time::{Duration, Instant};

/// What one path is measured through: a URL and, for name-based ingress, a Host header.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL, without the file name (`http://198.18.0.11:8080`).
    pub base: String,
    /// Host header to send, if the URL's host is not the name the server routes by.
    pub host_header: Option<String>,
}

impl Target {
    fn url(&self, file: &str) -> String {
        format!("{}{file}", self.base)
    }

    fn header_args(&self) -> Vec<String> {
        match &self.host_header {
            Some(h) => vec!["-H".into(), format!("Host: {h}")],
            None => Vec::new(),
        }
    }
}

/// One wrk run.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Requests per second.
    pub rps: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Requests that failed (socket errors, non-2xx/3xx).
    pub errors: u64,
}

/// wrk's options: one thread, 32 connections, latency percentiles, 2 s request timeout.
const WRK_ARGS: [&str; 6] = ["-t1", "-c32", "--latency", "--timeout", "2s", "-d"];

/// How wrk uses its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conns {
    /// Keep-alive: each connection carries request after request.
    KeepAlive,
    /// `Connection: close`: a new connection (over HTTPS, a new TLS handshake) per request.
    Close,
}

/// The arguments of `wrk` for `file` of `target`, `secs` seconds, connections used as `conns`.
pub fn wrk_args(target: &Target, file: &str, secs: u64, conns: Conns) -> Vec<String> {
    let mut args: Vec<String> = WRK_ARGS.iter().map(|s| s.to_string()).collect();
    args.push(format!("{secs}s"));
    args.extend(target.header_args());
    if conns == Conns::Close {
        args.extend(["-H".to_string(), "Connection: close".to_string()]);
    }
    args.push(target.url(file));
    args
}

/// Runs `wrk -t1 -c32 -d{secs}s --latency` against `file` of `target` from `client`.
pub async fn wrk(
    client: &Host,
    target: &Target,
    file: &str,
    secs: u64,
    conns: Conns,
) -> Result<Load> {
    let args = wrk_args(target, file, secs, conns);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = bounded(
        client.run(Path::new("wrk"), &args),
        Duration::from_secs(secs + 30),
    )
    .await?;
    parse_wrk(&out).with_context(|| format!("reading wrk's output:\n{out}"))
}

/// Reads requests/s, p50, p99 and errors from wrk's `--latency` report.
pub fn parse_wrk(out: &str) -> Result<Load> {
    let mut load = Load {
        rps: f64::NAN,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        errors: 0,
    };
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", n] => load.rps = n.parse()?,
            ["50%", t] => load.p50_ms = duration_ms(t)?,
            ["99%", t] => load.p99_ms = duration_ms(t)?,
            ["Non-2xx", "or", "3xx", "responses:", n] => load.errors += n.parse::<u64>()?,
            ["Socket", "errors:", rest @ ..] => {
                for n in rest.iter().skip(1).step_by(2) {
                    load.errors += n.trim_end_matches(',').parse::<u64>()?;
                }
            }
            _ => {}
        }
    }
    if load.rps.is_nan() || load.p50_ms.is_nan() || load.p99_ms.is_nan() {
        bail!("no requests/s or latency percentiles");
    }
    Ok(load)
}

/// wrk's durations: `812.00us`, `1.20ms`, `2.00s`, `1.00m`.
fn duration_ms(text: &str) -> Result<f64> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .context("a duration without unit")?;
    let (n, unit) = text.split_at(split);
    let n: f64 = n.parse()?;
    Ok(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        other => bail!("unknown unit {other}"),
    })
}

/// Downloads `file` of `target` once with curl from `client`, checking it is `bytes` long;
/// returns the speed in MB/s (10^6 bytes).
pub async fn download(client: &Host, target: &Target, file: &str, bytes: u64) -> Result<f64> {
    let out = curl(
        client,
        target,
        file,
        &["-w", "%{http_code} %{size_download} %{speed_download}"],
        120,
    )
    .await?;
    let fields: Vec<&str> = out.split_whitespace().collect();
    let [code, size, speed] = fields.as_slice() else {
        bail!("unexpected curl output {out:?}");
    };
    if *code != "200" || size.parse::<u64>()? != bytes {
        bail!("download of {file} answered {code} with {size} bytes, want 200 with {bytes}");
    }
    Ok(speed.parse::<f64>()? / 1e6)
}

/// Waits until `file` of `target` answers 200 from `from`, for at most `limit`.
pub async fn wait_ok(from: &Host, target: &Target, file: &str, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let last = match curl(from, target, file, &["-w", "%{http_code}"], 2).await {
            Ok(code) if code.trim() == "200" => return Ok(()),
            Ok(code) => format!("answered {}", code.trim()),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > deadline {
            bail!(
                "{} did not answer 200 within {limit:?}: {last}",
                target.url(file)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How long `count` full TLS handshakes of new HTTPS connections to `target` took from
/// `client`, one after the other, in ms: curl's `time_appconnect - time_connect` of each
/// transfer (HTTP/1.1 like wrk, `Connection: close`, `--no-sessionid` so none resumes). One
/// curl process makes `count + 1` connections and the first is dropped: it also loads curl's
/// CA store and starts OpenSSL, which every later one is spared. What is left includes curl's
/// per-connection TLS setup, the same for every server.
pub async fn handshakes_ms(
    client: &Host,
    target: &Target,
    file: &str,
    count: usize,
) -> Result<Vec<f64>> {
    let url = target.url(file);
    let mut args: Vec<&str> = vec![
        "-sS",
        "-k",
        "--no-sessionid",
        "--http1.1",
        "--max-time",
        "5",
        "-H",
        "Connection: close",
        "-w",
        "%{http_code} %{time_connect} %{time_appconnect}\\n",
    ];
    for _ in 0..=count {
        args.extend_from_slice(&["-o", "/dev/null", &url]);
    }
    let out = bounded(
        client.run(Path::new("curl"), &args),
        Duration::from_secs(5 * (count as u64 + 1) + 10),
    )
    .await?;
    let mut times = parse_handshakes(&out).with_context(|| format!("curl's timings:\n{out}"))?;
    if times.len() != count + 1 {
        bail!(
            "{} timings from {} transfers:\n{out}",
            times.len(),
            count + 1
        );
    }
    Ok(times.split_off(1))
}

/// Reads `CODE CONNECT APPCONNECT` lines (seconds) as [`handshakes_ms`] has curl write them:
/// each handshake in ms.
pub fn parse_handshakes(out: &str) -> Result<Vec<f64>> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [code, connect, appconnect] = fields.as_slice() else {
                bail!("want three fields in {line:?}");
            };
            if *code != "200" {
                bail!("answered {code}");
            }
            let (connect, appconnect): (f64, f64) = (connect.parse()?, appconnect.parse()?);
            if appconnect <= 0.0 || appconnect < connect {
                bail!("no TLS handshake timed in {line:?}");
            }
            Ok((appconnect - connect) * 1000.0)
        })
        .collect()
}

/// `curl -sS -o /dev/null --max-time SECS EXTRA URL` on `from`; its stdout. HTTPS is not
/// verified (`-k`): the edges answer with self-signed certificates without a CA, and the
/// seed stack with Caddy's internal CA.
async fn curl(
    from: &Host,
    target: &Target,
    file: &str,
    extra: &[&str],
    max_secs: u64,
) -> Result<String> {
    let max = max_secs.to_string();
    let url = target.url(file);
    let mut args = vec!["-sS", "-o", "/dev/null", "--max-time", &max];
    if url.starts_with("https://") {
        args.push("-k");
    }
    args.extend_from_slice(extra);
    let headers = target.header_args();
    args.extend(headers.iter().map(String::as_str));
    args.push(&url);
    bounded(
        from.run(Path::new("curl"), &args),
        Duration::from_secs(max_secs + 10),
    )
    .await
}

/// Fails if `work` takes longer than `limit` (a program it runs is killed on drop).
async fn bounded<T>(
    work: impl std::future::Future<Output = Result<T>>,
    limit: Duration,
) -> Result<T> {
    tokio::time::timeout(limit, work)
        .await
        .with_context(|| format!("gave up after {limit:?}"))?
}

/// Resident set size of process `pid`, in MB (VmRSS, 2^20 bytes).
pub fn rss_mb(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("process {pid} is gone"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .context("no VmRSS")?
        .parse()?;
    Ok(kb / 1024.0)
}

/// CPU time (user + system, all threads, in seconds) process `pid` has used so far.
pub fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("process {pid} is gone"))?;
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').context("no command name")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks =
        |i: usize| -> Result<f64> { Ok(fields.get(i).context("short stat line")?.parse::<f64>()?) };
    // USER_HZ is 100 on Linux.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// CPU seconds used so far by the processes of `pids` (host, pid), summed per host.
pub fn cpu_by_host(pids: &[(String, u32)]) -> Result<Vec<(String, f64)>> {
    let mut hosts: Vec<(String, f64)> = Vec::new();
    for (host, pid) in pids {
        let secs = cpu_secs(*pid)?;
        match hosts.iter_mut().find(|(h, _)| h == host) {
            Some((_, sum)) => *sum += secs,
            None => hosts.push((host.clone(), secs)),
        }
    }
    Ok(hosts)
}

/// Resident memory summed per host, in MB; a process that is gone is reported as an error.
pub fn rss_by_host(pids: &[(String, u32)]) -> Rss {
    let mut hosts: Vec<(String, f64)> = Vec::new();
    for (host, pid) in pids {
        let mb = match rss_mb(*pid) {
            Ok(mb) => mb,
            Err(e) => return Err(format!("{e:#}")),
        };
        match hosts.iter_mut().find(|(h, _)| h == host) {
            Some((_, sum)) => *sum += mb,
            None => hosts.push((host.clone(), mb)),
        }
    }
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_report_is_read() {
        let out = "Running 10s test @ http://x/1k\n  1 threads and 32 connections\n  Latency Distribution\n     50%  812.00us\n     75%    1.20ms\n     90%    1.50ms\n     99%    2.31ms\n  29000 requests in 10.00s, 33MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  Non-2xx or 3xx responses: 4\nRequests/sec:   2900.50\nTransfer/sec:      3.3MB\n";
        let load = parse_wrk(out).unwrap();
        assert_eq!(load.rps, 2900.5);
        assert!((load.p50_ms - 0.812).abs() < 1e-9);
        assert_eq!(load.p99_ms, 2.31);
        assert_eq!(load.errors, 7);
    }

    #[test]
    fn close_mode_asks_for_a_new_connection_per_request() {
        let target = Target {
            base: "https://bench.hearth.test:8443".into(),
            host_header: None,
        };
        let keep = wrk_args(&target, "/1k", 10, Conns::KeepAlive);
        assert_eq!(
            keep.join(" "),
            "-t1 -c32 --latency --timeout 2s -d 10s https://bench.hearth.test:8443/1k"
        );
        let close = wrk_args(&target, "/1k", 10, Conns::Close);
        assert_eq!(
            close[close.len() - 3..],
            [
                "-H",
                "Connection: close",
                "https://bench.hearth.test:8443/1k"
            ]
        );
    }

    #[test]
    fn handshake_times_are_read() {
        let ms = parse_handshakes("200 0.000412 0.002112\n200 0.000300 0.001300\n").unwrap();
        assert_eq!(ms.len(), 2);
        assert!((ms[0] - 1.7).abs() < 1e-9, "{ms:?}");
        assert!((ms[1] - 1.0).abs() < 1e-9, "{ms:?}");
        assert!(parse_handshakes("200 0.0004 0.002\n404 0.0004 0.002").is_err());
        assert!(parse_handshakes("200 0.000412 0.000000").is_err());
        assert!(parse_handshakes("200 0.1").is_err());
    }

    #[test]
    fn own_cpu_time_is_read() {
        assert!(cpu_secs(std::process::id()).unwrap() >= 0.0);
    }
}
