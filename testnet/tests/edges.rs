//! The election acting on the data plane, in one process on 127.0.0.1: when the edge set
//! shrinks, the demoted edge stops serving and members close the tunnels they dialed to it;
//! when it grows back, the edge serves again and members dial it again. Loopback nodes are
//! never public, so the edges here are `edge = "always"`; AutoNAT and NAT are the namespace
//! labs' part (tests/lab/edges.rs).

use anyhow::{ensure, Result};
use hearth_node::config::EdgePreference;
use hearth_proto::api::{CommandV1, ResponseV1};
use hearth_proto::election::{NotElected, Verdict};
use hearth_proto::NodeId;
use hearth_testnet::eventually::{eventually, CONVERGE};
use hearth_testnet::local::LocalMesh;

/// The edges node `i` elects, and its verdict on `of`.
async fn election(mesh: &LocalMesh, i: usize, of: NodeId) -> Result<(Vec<NodeId>, Verdict)> {
    let ResponseV1::Edges(report) = mesh.call(i, CommandV1::Edges).await? else {
        anyhow::bail!("no edges report");
    };
    let edges = report
        .rows
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Edge { .. }))
        .map(|r| r.node)
        .collect();
    let verdict = report
        .rows
        .iter()
        .find(|r| r.node == of)
        .map(|r| r.verdict.clone())
        .ok_or_else(|| anyhow::anyhow!("{of:?} not in the report"))?;
    Ok((edges, verdict))
}

/// Waits until node `edge` serves (or not) and has a tunnel from `member` (or not).
async fn until_serving(mesh: &LocalMesh, edge: usize, member: NodeId, serving: bool) -> Result<()> {
    eventually(
        &format!("n{edge} serving={serving} with a tunnel from the member"),
        CONVERGE,
        || async {
            let plane = mesh.status(edge).await?.data_plane;
            ensure!(plane.edge == serving, "edge={}", plane.edge);
            ensure!(
                plane.http_listen.is_some() == serving,
                "http={:?}",
                plane.http_listen
            );
            ensure!(
                plane.tunnels.contains(&member) == serving,
                "tunnels {:?}",
                plane.tunnels
            );
            Ok(())
        },
    )
    .await
}

#[tokio::test]
async fn a_smaller_edge_set_closes_ingress_and_tunnels_and_a_larger_one_reopens_them() -> Result<()>
{
    let mut mesh = LocalMesh::found().await?;
    mesh.add_node_with(|c| c.edge = EdgePreference::Always)
        .await?;
    let member = mesh.add_node().await?;
    // A second plain node whose edges.max changes; the member keeps running throughout, so
    // what happens to its tunnels follows from the set alone.
    let limiter = mesh.add_node().await?;
    let ids = mesh.ids();
    mesh.converged(&ids).await?;
    let member_id = ids[member];

    // Two `always` nodes, room for three: both edges, both with the member's tunnel.
    for i in 0..4 {
        eventually(&format!("n{i} elects n0 and n1"), CONVERGE, || async {
            let (mut edges, verdict) = election(&mesh, i, member_id).await?;
            edges.sort();
            let mut want = vec![ids[0], ids[1]];
            want.sort();
            ensure!(edges == want, "elects {edges:?}");
            // The loopback member is never public, and says so.
            ensure!(
                matches!(verdict, Verdict::NotEdge(NotElected::NotPublic { .. })),
                "{verdict:?}"
            );
            Ok(())
        })
        .await?;
    }
    until_serving(&mesh, 0, member_id, true).await?;
    until_serving(&mesh, 1, member_id, true).await?;

    // The limiter now announces edges.max = 1, the smallest live value: only the first of the
    // two (by id, as both are `always`) stays an edge.
    mesh.nodes[limiter].config.edges.max = 1;
    mesh.restart(limiter).await?;
    let (kept, demoted) = if ids[0] < ids[1] { (0, 1) } else { (1, 0) };
    eventually("every node elects one edge", CONVERGE, || async {
        for i in 0..4 {
            let (edges, verdict) = election(&mesh, i, ids[demoted]).await?;
            ensure!(edges == vec![ids[kept]], "n{i} elects {edges:?}");
            ensure!(
                verdict == Verdict::NotEdge(NotElected::NoRoom { max: 1 }),
                "n{i}: {verdict:?}"
            );
        }
        Ok(())
    })
    .await?;
    until_serving(&mesh, demoted, member_id, false).await?;
    until_serving(&mesh, kept, member_id, true).await?;

    // Room again: the demoted node serves again and the member dials it again.
    mesh.nodes[limiter].config.edges.max = 3;
    mesh.restart(limiter).await?;
    until_serving(&mesh, demoted, member_id, true).await?;
    until_serving(&mesh, kept, member_id, true).await?;
    mesh.shutdown().await;
    Ok(())
}
