//! Group commit: records that arrive together share one flush, and are acknowledged only
//! after it.
#![allow(clippy::unwrap_used)]

use anyhow::Result;
use hearth_proto::route::{Route, RouteSpec};
use hearth_proto::wire::SyncResponseV1;
use hearth_proto::{Body, Hlc, Record};
use hearth_testnet::local::LocalMesh;

/// A push of forty routes from one member is stored with a single flush of the store (the
/// store counts its flushes), not forty.
#[tokio::test]
async fn a_batch_of_records_is_stored_with_one_flush() -> Result<()> {
    let mut mesh = LocalMesh::with_nodes(3).await?;
    mesh.converged(&mesh.ids()).await?;
    mesh.stop(2).await;
    let key = hearth_node::identity::load(&mesh.nodes[2].config.data_dir())?;
    let mesh_id = mesh.status(0).await?.mesh;
    let now = hearth_testnet::clock_ms();
    let records: Vec<Record> = (0..40)
        .map(|i| {
            let route = Route {
                spec: RouteSpec::Http {
                    host: format!("r{i}.example.com"),
                },
                node: key.id(),
                target: Some("127.0.0.1:8080".into()),
                proxy_protocol: false,
                container: None,
                tls: Default::default(),
            };
            Record::sign(&key, mesh_id, &Body::Route(route), Hlc::at(now + i))
        })
        .collect();
    let before = mesh.status(0).await?.store_writes;
    let answer = mesh.push_as(0, &key, records).await?;
    let after = mesh.status(0).await?.store_writes;
    assert!(
        matches!(
            answer,
            SyncResponseV1::Ack {
                stored: 40,
                rejected: 0
            }
        ),
        "{answer:?}"
    );
    // One flush for the batch; an anti-entropy round may save the watermark meanwhile.
    assert!(
        (1..=2).contains(&(after - before)),
        "{} writes for one batch",
        after - before
    );
    mesh.shutdown().await;
    Ok(())
}
