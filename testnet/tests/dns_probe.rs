//! `hearth_testnet::dns_query` and `hearth-testnet probe dns` against the node's DNS server on
//! 127.0.0.1: what a query reads back, what the probe prints and when it exits 1.
#![allow(clippy::unwrap_used)]

use hearth_node::dns::{bind, serve, EdgeNs, ZoneView};
use hearth_testnet::dns_query::query;
use std::net::SocketAddr;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(5);

async fn probe(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth-testnet"))
        .arg("probe")
        .arg("dns")
        .args(args)
        .output()
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A DNS server for `hearth.test` on 127.0.0.1 with `blog.hearth.test` published, the
/// edges named `vps`, `vps2`, … at 127.0.0.11, 127.0.0.12, …
async fn server(edges: u8, serial: u32) -> (SocketAddr, CancellationToken) {
    let view = ZoneView {
        zone: "hearth.test".into(),
        ttl: 10,
        serial,
        edges: (1..=edges)
            .map(|i| EdgeNs {
                name: if i == 1 {
                    "vps".into()
                } else {
                    format!("vps{i}")
                },
                ips: vec![format!("127.0.0.{}", 10 + i).parse().unwrap()],
            })
            .collect(),
        hosts: ["blog.hearth.test".to_string()].into(),
        txt: Default::default(),
    };
    let (udp, tcp) = bind("127.0.0.1:0").await.unwrap();
    let addr = udp.local_addr().unwrap();
    let (_keep, rx) = watch::channel(Arc::new(view));
    let cancel = CancellationToken::new();
    tokio::spawn(serve(udp, tcp, rx, Default::default(), cancel.clone()));
    (addr, cancel)
}

#[tokio::test]
async fn a_query_reads_the_node_servers_answers() {
    let (addr, cancel) = server(1, 3).await;
    let a = query(addr, "Blog.hearth.test", "a", WAIT).await.unwrap();
    assert_eq!(
        a.lines(),
        ["rcode=NOERROR aa=true answers=1", "A 127.0.0.11 ttl=10"]
    );
    let ns = query(addr, "hearth.test.", "NS", WAIT).await.unwrap();
    assert_eq!(ns.records, [("NS".into(), "ns-vps.hearth.test.".into())]);
    let soa = query(addr, "hearth.test", "SOA", WAIT).await.unwrap();
    assert!(soa.records[0]
        .1
        .starts_with("ns-vps.hearth.test. hostmaster.hearth.test. 3"));
    let nx = query(addr, "nope.hearth.test", "AAAA", WAIT).await.unwrap();
    assert_eq!(nx.lines(), ["rcode=NXDOMAIN aa=true answers=0"]);
    let refused = query(addr, "example.org", "A", WAIT).await.unwrap();
    assert_eq!(
        (refused.rcode.as_str(), refused.authoritative),
        ("REFUSED", false)
    );
    cancel.cancel();
}

#[tokio::test]
async fn silence_is_an_error() {
    let quiet = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = quiet.local_addr().unwrap();
    let error = query(addr, "blog.hearth.test", "A", Duration::from_millis(150))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("no DNS answer"), "{error}");
    assert!(query(addr, "x", "BOGUS", WAIT).await.is_err());
}

#[tokio::test]
async fn the_probe_prints_the_answer_and_exits_by_whether_one_came() {
    let (addr, cancel) = server(2, 1).await;
    let addr = addr.to_string();

    let a = probe(&[&addr, "blog.hearth.test"]).await;
    assert!(a.status.success(), "{a:?}");
    assert_eq!(
        stdout(&a),
        "rcode=NOERROR aa=true answers=2\nA 127.0.0.11 ttl=10\nA 127.0.0.12 ttl=10\n"
    );

    let nx = probe(&[&addr, "nope.hearth.test", "--type", "AAAA"]).await;
    assert!(nx.status.success(), "NXDOMAIN is an answer: {nx:?}");
    assert_eq!(stdout(&nx), "rcode=NXDOMAIN aa=true answers=0\n");

    cancel.cancel();
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let none = probe(&[&silent_addr, "blog.hearth.test", "--timeout-ms", "150"]).await;
    assert_eq!(none.status.code(), Some(1), "{none:?}");
    assert!(stdout(&none).is_empty());
}
