//! The bounded clock: a member with a badly set clock cannot drag the mesh's clocks forward.
#![allow(clippy::unwrap_used)]

use anyhow::{bail, Result};
use hearth_proto::record::NodeInfo;
use hearth_proto::wire::SyncResponseV1;
use hearth_proto::{Body, Hlc, Record};
use hearth_testnet::local::LocalMesh;
use std::time::{SystemTime, UNIX_EPOCH};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Node 2's clock is an hour fast: its record is refused by the node it reaches, counted in
/// `status`, and no node's clock moves; a record dated within the bound is taken and
/// replicated as usual.
#[tokio::test]
async fn a_far_future_record_is_refused_and_no_clock_moves() -> Result<()> {
    let mut mesh = LocalMesh::with_nodes(3).await?;
    mesh.converged(&mesh.ids()).await?;
    mesh.stop(2).await;
    let key = hearth_node::identity::load(&mesh.nodes[2].config.data_dir())?;
    let info = Body::NodeInfo(NodeInfo {
        name: "n2".into(),
        ..NodeInfo::default()
    });
    let hour_ahead = now_ms() + 3_600_000;
    let record = Record::sign(&key, mesh.status(0).await?.mesh, &info, Hlc::at(hour_ahead));
    let answer = mesh.push_as(0, &key, vec![record]).await?;
    assert!(
        matches!(
            answer,
            SyncResponseV1::Ack {
                stored: 0,
                rejected: 1
            }
        ),
        "{answer:?}"
    );
    let status = mesh.status(0).await?;
    assert!(
        status
            .rejected_records
            .iter()
            .any(|(label, n)| label == "clock_ahead" && *n == 1),
        "{:?}",
        status.rejected_records
    );
    for i in 0..2 {
        let clock = mesh.status(i).await?.clock_ms;
        assert!(
            clock < hour_ahead - 3_000_000,
            "node {i}'s clock moved to {clock}"
        );
    }

    // Within the bound (30 s by default), the same author's record is taken.
    let soon = now_ms() + 10_000;
    let info = Body::NodeInfo(NodeInfo {
        name: "n2-fixed".into(),
        ..NodeInfo::default()
    });
    let record = Record::sign(&key, mesh.status(0).await?.mesh, &info, Hlc::at(soon));
    let answer = mesh.push_as(0, &key, vec![record]).await?;
    if !matches!(answer, SyncResponseV1::Ack { stored: 1, .. }) {
        bail!("a record 10 s ahead must be taken: {answer:?}");
    }
    assert!(mesh.status(0).await?.clock_ms >= soon);
    mesh.shutdown().await;
    Ok(())
}
