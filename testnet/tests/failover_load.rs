//! The failover load probe against tiny HTTP servers on 127.0.0.1: a dead edge's requests
//! move to the live one, a 502 is retried elsewhere, requests fail only when every edge does,
//! and `probe failover-load` prints a line that reads back.
#![allow(clippy::unwrap_used)]

use hearth_testnet::eventually::{eventually, CONVERGE};
use hearth_testnet::visitor::failover::{run, LoadConfig, LoadReport};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// An HTTP/1.1 server answering every request with one fixed status and closing.
struct Server {
    addr: SocketAddr,
    /// Answers written.
    served: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl Server {
    async fn start(status: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(AtomicU64::new(0));
        let count = served.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let answer = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: 3\r\nConnection: close\r\n\r\nhi\n"
                    );
                    if stream.write_all(answer.as_bytes()).await.is_ok() {
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self {
            addr,
            served,
            accept,
        }
    }

    fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }

    /// Closes the listener: new connections are refused from when this returns.
    async fn stop(&mut self) {
        self.accept.abort();
        let _ = (&mut self.accept).await;
    }
}

/// An address nothing listens on (connections are refused).
async fn refused() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
}

fn config(edges: Vec<SocketAddr>) -> LoadConfig {
    LoadConfig {
        duration: Duration::from_secs(60),
        ..LoadConfig::new(edges, "app.hearth.test")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_edges_requests_move_to_the_live_one() {
    let live = Server::start("200 OK").await;
    let mut dying = Server::start("200 OK").await;
    let dir = tempfile::tempdir().unwrap();
    let stop_file = dir.path().join("stop");
    let config = LoadConfig {
        concurrency: 3,
        max_requests: 500_000,
        stop_file: Some(stop_file.clone()),
        ..config(vec![live.addr, dying.addr])
    };
    let before_run = Instant::now();
    let load = tokio::spawn(async move { run(&config).await });

    eventually("both edges serve the load", CONVERGE, || async {
        let (a, b) = (live.served(), dying.served());
        anyhow::ensure!(a >= 20 && b >= 20, "served {a} and {b}");
        Ok(())
    })
    .await
    .unwrap();
    dying.stop().await;
    let stopped_ms = before_run.elapsed().as_millis() as u64 + 1;
    let live_at_stop = live.served();
    eventually("the live edge serves on", CONVERGE, || async {
        let more = live.served() - live_at_stop;
        anyhow::ensure!(more >= 50, "{more} more answers");
        Ok(())
    })
    .await
    .unwrap();
    std::fs::write(&stop_file, b"").unwrap();
    let report = load.await.unwrap().unwrap();

    let summary = format!("{report} (stopped at ~{stopped_ms} ms)");
    assert!(report.ok > 0, "{summary}");
    assert_eq!(report.failed, 0, "{summary}");
    assert!(report.retried > 0, "{summary}");
    let per_edge: Vec<u64> = report.per_edge_ok.iter().map(|(_, n)| *n).collect();
    assert!(per_edge[0] > 0 && per_edge[1] > 0, "{summary}");
    // The run started after `before_run`, so a request whose start_ms is past `stopped_ms`
    // really started after the dying edge closed.
    let after: Vec<_> = report
        .requests
        .iter()
        .filter(|r| r.start_ms > stopped_ms)
        .collect();
    assert!(!after.is_empty(), "{summary}");
    assert!(after.iter().all(|r| r.edge == Some(live.addr)), "{summary}");
    assert!(
        after.iter().any(|r| r.attempts == 2),
        "no request after the stop went to the dead edge first: {summary}"
    );
    assert!(
        report
            .requests
            .iter()
            .filter(|r| r.edge == Some(dying.addr))
            .all(|r| r.start_ms <= stopped_ms),
        "{summary}"
    );
    assert_eq!(report.gap_to_ms - report.gap_from_ms, report.max_gap_ms);
    assert!(report.first_ms <= report.gap_from_ms && report.gap_to_ms <= report.last_ms);
}

#[tokio::test]
async fn a_502_is_retried_on_the_next_edge() {
    let bad = Server::start("502 Bad Gateway").await;
    let good = Server::start("200 OK").await;
    let config = LoadConfig {
        concurrency: 2,
        max_requests: 40,
        ..config(vec![bad.addr, good.addr])
    };
    let report = run(&config).await.unwrap();
    assert_eq!(
        (report.ok, report.failed, report.abandoned),
        (40, 0, 0),
        "{report}"
    );
    // Every even request starts at the bad edge and needs a second attempt.
    assert_eq!((report.retried, report.attempts), (20, 60), "{report}");
    assert_eq!(
        report.per_edge_ok,
        vec![(bad.addr, 0), (good.addr, 40)],
        "{report}"
    );
    assert_eq!(bad.served(), 20);
}

#[tokio::test]
async fn a_request_fails_only_after_every_edge_did() {
    let edges = vec![refused().await, refused().await];
    let config = LoadConfig {
        max_requests: 10,
        ..config(edges.clone())
    };
    let report = run(&config).await.unwrap();
    assert_eq!(
        (report.ok, report.failed, report.retried, report.attempts),
        (0, 10, 10, 20),
        "{report}"
    );
    assert_eq!(
        (report.max_gap_ms, report.first_ms, report.last_ms),
        (0, 0, 0)
    );
    assert!(report.requests.iter().all(|r| r.error.is_some()));
}

#[tokio::test]
async fn a_bad_config_does_not_run() {
    let server = Server::start("200 OK").await;
    assert!(run(&config(Vec::new())).await.is_err());
    for bad in [
        LoadConfig {
            concurrency: 0,
            ..config(vec![server.addr])
        },
        LoadConfig {
            path: "no-slash".into(),
            ..config(vec![server.addr])
        },
        LoadConfig {
            host: "bad\nhost".into(),
            ..config(vec![server.addr])
        },
    ] {
        assert!(run(&bad).await.is_err(), "{bad:?}");
    }
    assert_eq!(server.served(), 0);
}

#[tokio::test]
async fn the_probe_prints_one_line_that_reads_back() {
    let a = Server::start("200 OK").await;
    let b = Server::start("200 OK").await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth-testnet"))
        .args(["probe", "failover-load", "--host", "app.hearth.test"])
        .args(["--edge", &a.addr.to_string(), "--edge", &b.addr.to_string()])
        .args(["--max-requests", "20", "--duration-ms", "60000"])
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let report = LoadReport::parse_line(&stdout).unwrap();
    assert_eq!((report.ok, report.failed, report.retried), (20, 0, 0));
    assert_eq!(report.per_edge_ok, vec![(a.addr, 10), (b.addr, 10)]);
    assert_eq!(report.to_string(), stdout.trim_end());

    let usage = tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth-testnet"))
        .args(["probe", "failover-load", "--host", "app.hearth.test"])
        .args(["--edge", &a.addr.to_string(), "--concurrency", "0"])
        .output()
        .await
        .unwrap();
    assert_eq!(usage.status.code(), Some(1), "{usage:?}");
}
