//! `hearth-testnet probe dns` against the node's DNS server on 127.0.0.1: what it prints and
//! when it exits 1.
#![allow(clippy::unwrap_used)]

use hearth_node::dns::{bind, serve, EdgeNs, ZoneView};
use std::net::SocketAddr;
use std::process::Output;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

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

async fn server() -> (SocketAddr, CancellationToken) {
    let view = ZoneView {
        zone: "hearth.test".into(),
        ttl: 10,
        serial: 1,
        edges: vec![
            EdgeNs {
                name: "vps".into(),
                ips: vec!["127.0.0.11".parse().unwrap()],
            },
            EdgeNs {
                name: "vps2".into(),
                ips: vec!["127.0.0.12".parse().unwrap()],
            },
        ],
        hosts: ["blog.hearth.test".to_string()].into(),
    };
    let (udp, tcp) = bind("127.0.0.1:0").await.unwrap();
    let addr = udp.local_addr().unwrap();
    let (_keep, rx) = watch::channel(Arc::new(view));
    let cancel = CancellationToken::new();
    tokio::spawn(serve(udp, tcp, rx, cancel.clone()));
    (addr, cancel)
}

#[tokio::test]
async fn the_probe_prints_the_answer_and_exits_by_whether_one_came() {
    let (addr, cancel) = server().await;
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
