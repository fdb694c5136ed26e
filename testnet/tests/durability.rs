//! Durability with real processes on 127.0.0.1: acknowledged writes survive kill -9, and a
//! damaged database is refused with a way out, never silently reset.
#![allow(clippy::unwrap_used)]

use anyhow::{Context, Result};
use hearth_testnet::procs::{Binaries, ProcNode};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::watch;

#[tokio::test]
async fn every_acknowledged_publish_survives_kill_9() -> Result<()> {
    let bins = Binaries::locate()?;
    let dir = tempfile::tempdir()?;
    let mut node = ProcNode::new(&bins, dir.path().join("n"), "n");
    node.init().await?;
    node.run().await?;

    // Publish one route after another with the real CLI, recording each it reports as done,
    // until the node is gone.
    let (count_tx, mut count_rx) = watch::channel(0usize);
    let hearthctl = bins.hearthctl.clone();
    let socket = node.socket();
    let publisher = tokio::spawn(async move {
        let mut acknowledged = BTreeSet::new();
        for i in 0..2000 {
            let host = format!("h{i}.example.com");
            let out = tokio::process::Command::new(&hearthctl)
                .arg("--socket")
                .arg(&socket)
                .args(["publish", &host, "--to", "127.0.0.1:80"])
                .output()
                .await
                .unwrap();
            if !out.status.success() {
                break;
            }
            acknowledged.insert(host);
            let _ = count_tx.send(acknowledged.len());
        }
        acknowledged
    });
    while *count_rx.borrow() < 25 {
        count_rx.changed().await?;
    }
    node.kill().await;
    let acknowledged = tokio::time::timeout(Duration::from_secs(60), publisher).await??;
    assert!(acknowledged.len() >= 25);

    node.run().await?;
    let answer = node
        .client()
        .call(hearth_proto::api::CommandV1::Routes)
        .await?;
    let hearth_proto::api::ResponseV1::Routes(rows) = answer else {
        anyhow::bail!("routes: {answer:?}");
    };
    let stored: BTreeSet<String> = rows.iter().map(|r| r.spec.to_string()).collect();
    let lost: Vec<&String> = acknowledged.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "acknowledged but lost after kill -9: {lost:?}"
    );
    node.kill().await;
    Ok(())
}

#[tokio::test]
async fn a_damaged_database_is_refused_with_the_way_out() -> Result<()> {
    let bins = Binaries::locate()?;
    let dir = tempfile::tempdir()?;
    let node = ProcNode::new(&bins, dir.path().join("n"), "n");
    node.init().await?;
    let db = node.dir.join("store").join("db");
    let len = std::fs::metadata(&db).context("sled db file")?.len() as usize;
    std::fs::write(&db, vec![0xa5u8; len])?;

    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(&bins.hearthd)
            .arg("--data-dir")
            .arg(&node.dir)
            .arg("run")
            .env("HEARTH_LISTEN", "/ip4/127.0.0.1/udp/0/quic-v1")
            .output(),
    )
    .await??;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let store_dir = node.dir.join("store").display().to_string();
    assert!(stderr.contains(&store_dir), "names the store: {stderr}");
    assert!(
        stderr.contains("hearthd join"),
        "says the way out: {stderr}"
    );
    Ok(())
}
