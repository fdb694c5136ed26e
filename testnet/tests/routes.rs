//! In-process route tests on 127.0.0.1: publish, replicate, withdraw, validate, authorize.
#![allow(clippy::unwrap_used)]

use anyhow::{bail, Result};
use hearth_proto::api::{ApiErrorKind, CommandV1, ResponseV1};
use hearth_proto::route::RouteSpec;
use hearth_testnet::eventually::{eventually, CONVERGE};
use hearth_testnet::local::LocalMesh;

fn http(host: &str) -> RouteSpec {
    RouteSpec::Http { host: host.into() }
}

fn publish(host: &str, target: &str, node: Option<&str>) -> CommandV1 {
    CommandV1::Publish {
        spec: http(host),
        target: target.into(),
        node: node.map(String::from),
        proxy_protocol: false,
        tls: Default::default(),
    }
}

/// Waits until every node lists exactly `expected` (route, hosting node name, target) rows.
async fn everyone_lists(mesh: &LocalMesh, expected: &[(&str, &str, &str)]) -> Result<()> {
    let mut want: Vec<String> = expected
        .iter()
        .map(|(r, n, t)| format!("{r} {n} {t}"))
        .collect();
    want.sort();
    for i in 0..mesh.nodes.len() {
        let want = want.clone();
        eventually(&format!("n{i} lists the routes"), CONVERGE, || {
            let want = want.clone();
            async move {
                let mut seen: Vec<String> = mesh
                    .routes(i)
                    .await?
                    .iter()
                    .map(|r| format!("{} {} {}", r.spec, r.node_name, r.target))
                    .collect();
                seen.sort();
                if seen != want {
                    bail!("{seen:?}, want {want:?}");
                }
                Ok(())
            }
        })
        .await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_published_route_reaches_every_node_and_its_withdrawal_too() -> Result<()> {
    let mesh = LocalMesh::with_nodes(3).await?;
    mesh.converged(&mesh.ids()).await?;
    let answer = mesh
        .call(1, publish("blog.example.com", "127.0.0.1:2368", None))
        .await?;
    assert!(
        matches!(answer, ResponseV1::Published(ref row) if row.node == mesh.nodes[1].id),
        "{answer:?}"
    );
    let tcp = CommandV1::Publish {
        spec: RouteSpec::Tcp { port: 2222 },
        target: "127.0.0.1:22".into(),
        node: None,
        proxy_protocol: false,
        tls: Default::default(),
    };
    assert!(matches!(mesh.call(2, tcp).await?, ResponseV1::Published(_)));
    // The same host on a second member: both serve it.
    mesh.call(2, publish("blog.example.com", "127.0.0.1:2369", None))
        .await?;
    everyone_lists(
        &mesh,
        &[
            ("blog.example.com", "n1", "127.0.0.1:2368"),
            ("blog.example.com", "n2", "127.0.0.1:2369"),
            ("tcp/2222", "n2", "127.0.0.1:22"),
        ],
    )
    .await?;

    let withdraw = CommandV1::Unpublish {
        spec: http("blog.example.com"),
        node: None,
    };
    assert!(matches!(
        mesh.call(1, withdraw.clone()).await?,
        ResponseV1::Unpublished { .. }
    ));
    everyone_lists(
        &mesh,
        &[
            ("blog.example.com", "n2", "127.0.0.1:2369"),
            ("tcp/2222", "n2", "127.0.0.1:22"),
        ],
    )
    .await?;
    // Withdrawing again says there is nothing to withdraw.
    match mesh.call(1, withdraw).await? {
        ResponseV1::Error(e) => assert_eq!(e.kind, ApiErrorKind::NotFound),
        other => panic!("{other:?}"),
    }
    eventually("digests agree", CONVERGE, || async {
        let mut seen = Vec::new();
        for i in 0..3 {
            seen.push(mesh.status(i).await?.digest);
        }
        if seen.iter().any(|d| *d != seen[0]) {
            bail!("{seen:?}");
        }
        Ok(())
    })
    .await?;
    mesh.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn bad_routes_and_foreign_hosting_are_refused_with_reasons() -> Result<()> {
    let mesh = LocalMesh::with_nodes(2).await?;
    mesh.converged(&mesh.ids()).await?;
    let refused = |answer: ResponseV1| match answer {
        ResponseV1::Error(e) => e,
        other => panic!("accepted: {other:?}"),
    };
    let e = refused(
        mesh.call(1, publish("bad_host!", "127.0.0.1:80", None))
            .await?,
    );
    assert_eq!(e.kind, ApiErrorKind::BadRequest);
    assert!(e.message.contains("bad_host!"), "{}", e.message);
    let e = refused(
        mesh.call(1, publish("ok.example.com", "127.0.0.1", None))
            .await?,
    );
    assert!(e.message.contains("127.0.0.1"), "{}", e.message);
    let e = refused(
        mesh.call(1, publish("ok.example.com", "127.0.0.1:80", Some("nobody")))
            .await?,
    );
    assert_eq!(e.kind, ApiErrorKind::NotFound);

    // A plain member may not publish a route hosted by another node; the admin may.
    let e = refused(
        mesh.call(1, publish("x.example.com", "127.0.0.1:80", Some("n0")))
            .await?,
    );
    assert_eq!(e.kind, ApiErrorKind::Forbidden, "{}", e.message);
    assert!(matches!(
        mesh.call(0, publish("x.example.com", "127.0.0.1:80", Some("n1")))
            .await?,
        ResponseV1::Published(_)
    ));
    everyone_lists(&mesh, &[("x.example.com", "n1", "127.0.0.1:80")]).await?;
    mesh.shutdown().await;
    Ok(())
}
