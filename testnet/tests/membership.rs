//! In-process membership tests on 127.0.0.1: joining, gating, revocation, restarts.
#![allow(clippy::unwrap_used)]

use anyhow::{bail, Result};
use hearth_node::join::join;
use hearth_node::mesh::behaviour::{build_swarm, MeshBehaviourEvent, SwarmRole};
use hearth_node::mesh::peer_id::{keypair, peer_id};
use hearth_node::NodeError;
use hearth_proto::invite::InviteError;
use hearth_proto::wire::{SyncRequest, SyncRequestV1, SyncResponse, SyncResponseV1};
use hearth_proto::NodeKey;
use hearth_testnet::eventually::{eventually, CONVERGE};
use hearth_testnet::local::LocalMesh;
use libp2p::futures::StreamExt;
use libp2p::request_response::{Event, Message};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::SwarmEvent;
use libp2p::Multiaddr;
use std::time::Duration;

fn quiet(_: &[String]) {}

#[tokio::test]
async fn three_nodes_list_three_members() -> Result<()> {
    let mesh = LocalMesh::with_nodes(3).await?;
    mesh.converged(&mesh.ids()).await?;
    for i in 0..3 {
        let rows = mesh.members(i).await?;
        assert_eq!(rows.len(), 3, "node {i}: {rows:?}");
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        for name in ["n0", "n1", "n2"] {
            assert!(names.contains(&name), "node {i} lacks {name}: {names:?}");
        }
        assert!(
            rows.iter().all(|r| !r.addrs.is_empty()),
            "addresses known: {rows:?}"
        );
    }
    mesh.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_revoked_member_is_cut_off_and_stays_out_after_restart() -> Result<()> {
    let mut mesh = LocalMesh::with_nodes(3).await?;
    mesh.converged(&mesh.ids()).await?;
    let revoked = mesh.nodes[2].id;
    let response = mesh.nodes[0]
        .client()
        .call(hearth_proto::api::CommandV1::Revoke { node: "n2".into() })
        .await?;
    assert!(
        matches!(response, hearth_proto::api::ResponseV1::Revoked { node, .. } if node == revoked)
    );

    // Connected members hand the revoked node its Revocation before closing it.
    eventually("n2 learns it was revoked", CONVERGE, || async {
        match mesh.status(2).await?.role {
            None => Ok(()),
            Some(role) => bail!("n2 still thinks it is {role}"),
        }
    })
    .await?;
    let remaining = [mesh.nodes[0].id, mesh.nodes[1].id];
    mesh.converged(&remaining).await?;
    eventually("n2 is disconnected from everyone", CONVERGE, || async {
        let peers = mesh.status(2).await?.peers_connected;
        if !peers.is_empty() {
            bail!("still connected to {peers:?}");
        }
        Ok(())
    })
    .await?;

    // After its restart the revoked node keeps dialing; every attempt is refused.
    let refused_before =
        mesh.status(1).await?.refused_connections + mesh.status(0).await?.refused_connections;
    mesh.restart(2).await?;
    eventually(
        "members refuse the restarted revoked node",
        CONVERGE,
        || async {
            let refused = mesh.status(1).await?.refused_connections
                + mesh.status(0).await?.refused_connections;
            if refused <= refused_before {
                bail!("no refusal yet ({refused})");
            }
            Ok(())
        },
    )
    .await?;
    for i in 0..2 {
        let status = mesh.status(i).await?;
        assert!(
            !status.peers_connected.contains(&revoked),
            "node {i} still connected to n2"
        );
        assert_eq!(status.members, 2);
    }
    assert!(mesh.status(2).await?.peers_connected.is_empty());

    // A member that restarts reads the revocation from its own store and still refuses. It
    // listens on new ports, so the revoked node is told to dial them.
    mesh.restart(1).await?;
    for addr in mesh.status(1).await?.listen_addrs {
        let response = mesh.nodes[2]
            .client()
            .call(hearth_proto::api::CommandV1::Dial { addr })
            .await?;
        assert!(matches!(
            response,
            hearth_proto::api::ResponseV1::Dialing { .. }
        ));
    }
    eventually(
        "the restarted member refuses the revoked node",
        CONVERGE,
        || async {
            let status = mesh.status(1).await?;
            if status.refused_connections == 0 {
                bail!("no refusal yet");
            }
            if status.peers_connected.contains(&revoked) {
                bail!("connected to the revoked node");
            }
            Ok(())
        },
    )
    .await?;
    assert_eq!(mesh.status(1).await?.members, 2);
    mesh.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_restarted_member_comes_back_with_its_membership() -> Result<()> {
    let mut mesh = LocalMesh::with_nodes(3).await?;
    mesh.converged(&mesh.ids()).await?;
    mesh.stop(1).await;
    eventually("n0 sees n1 go", CONVERGE, || async {
        let rows = mesh.members(0).await?;
        match rows.iter().find(|r| r.name == "n1") {
            Some(r) if !r.connected && r.last_seen_ms.is_some() => Ok(()),
            other => bail!("n1 row: {other:?}"),
        }
    })
    .await?;
    mesh.restart(1).await?;
    mesh.converged(&mesh.ids()).await?;
    assert_eq!(mesh.status(1).await?.role, Some(hearth_proto::Role::Member));
    // The founder restarting must also bring everyone back.
    mesh.restart(0).await?;
    mesh.converged(&mesh.ids()).await?;
    mesh.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_single_use_code_admits_exactly_one_of_two_concurrent_joiners() -> Result<()> {
    let mesh = LocalMesh::found().await?;
    let code = mesh.invite(0, 1, 600).await?;
    let (a, b) = (mesh.fresh_config("a"), mesh.fresh_config("b"));
    let timeout = Duration::from_secs(30);
    let (ra, rb) = tokio::join!(
        join(&a, "a", &code, timeout, &quiet),
        join(&b, "b", &code, timeout, &quiet)
    );
    let outcomes = [ra, rb];
    let admitted = outcomes.iter().filter(|r| r.is_ok()).count();
    assert_eq!(admitted, 1, "{outcomes:?}");
    let refused = outcomes.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert!(
        matches!(refused, NodeError::Invite(InviteError::UsedUp)),
        "{refused}"
    );
    assert!(refused.to_string().contains("used up"));
    eventually("founder lists two members", CONVERGE, || async {
        let n = mesh.members(0).await?.len();
        if n != 2 {
            bail!("{n} members");
        }
        Ok(())
    })
    .await?;
    mesh.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn codes_for_another_mesh_or_expired_are_refused_with_their_reason() -> Result<()> {
    let mesh_a = LocalMesh::found().await?;
    let mut mesh_b = LocalMesh::found().await?;
    let timeout = Duration::from_secs(30);

    // While a node runs, its data dir is locked, and the message says so.
    let code_a = mesh_a.invite(0, 1, 600).await?;
    let err = join(&mesh_b.nodes[0].config, "x", &code_a, timeout, &quiet)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("in use by another hearthd"),
        "{err}"
    );

    // A member of mesh B cannot use a code for mesh A.
    mesh_b.stop(0).await;
    let err = join(&mesh_b.nodes[0].config, "x", &code_a, timeout, &quiet)
        .await
        .unwrap_err();
    assert!(
        matches!(err, NodeError::Invite(InviteError::WrongMesh { .. })),
        "{err}"
    );

    // Damaged codes never leave the joining machine.
    let fresh = mesh_a.fresh_config("fresh");
    let truncated = &code_a[..code_a.len() - 9];
    let err = join(&fresh, "fresh", truncated, timeout, &quiet)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    let mut tampered = code_a.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'a' { b'b' } else { b'a' };
    let err = join(
        &fresh,
        "fresh",
        std::str::from_utf8(&tampered)?,
        timeout,
        &quiet,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("damaged"), "{err}");

    // An expired code is refused.
    let short = mesh_a.invite(0, 1, 1).await?;
    let expires_ms = hearth_proto::invite::Invite::decode(&short)?.expires_ms;
    eventually("the code expires", CONVERGE, || async {
        if hearth_node::clock::now_ms() <= expires_ms {
            bail!("not yet expired");
        }
        Ok(())
    })
    .await?;
    let err = join(&fresh, "fresh", &short, timeout, &quiet)
        .await
        .unwrap_err();
    assert!(
        matches!(err, NodeError::Invite(InviteError::Expired { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("expired"), "{err}");

    // A used-up code is refused by the inviter.
    join(&fresh, "fresh", &code_a, timeout, &quiet).await?;
    let late = mesh_a.fresh_config("late");
    let err = join(&late, "late", &code_a, timeout, &quiet)
        .await
        .unwrap_err();
    assert!(
        matches!(err, NodeError::Invite(InviteError::UsedUp)),
        "{err}"
    );
    mesh_a.shutdown().await;
    mesh_b.shutdown().await;
    Ok(())
}

/// A process with a fresh libp2p key connects to every member: non-admins refuse it at the
/// handshake; the admin with a live invite lets it in as a guest that cannot read records and
/// is closed.
#[tokio::test]
async fn a_stranger_cannot_stay_connected_or_read_records() -> Result<()> {
    let mesh = LocalMesh::with_nodes(2).await?;
    mesh.converged(&mesh.ids()).await?;
    let stranger = NodeKey::generate();
    let mut swarm = build_swarm(
        keypair(&stranger),
        SwarmRole::Joiner,
        hearth_testnet::clock_ms(),
    )?;
    // The stranger's own gate lets the members in; only theirs decides.
    for node in &mesh.nodes {
        swarm
            .behaviour_mut()
            .gate
            .policy
            .members
            .insert(peer_id(&node.id));
    }

    // A non-admin member refuses at the handshake.
    let member_addrs: Vec<Multiaddr> = mesh
        .status(1)
        .await?
        .listen_addrs
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let member = peer_id(&mesh.nodes[1].id);
    swarm.dial(DialOpts::peer_id(member).addresses(member_addrs).build())?;
    let refused = tokio::time::timeout(CONVERGE, async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionClosed { peer_id, .. } if peer_id == member => return true,
                SwarmEvent::OutgoingConnectionError {
                    peer_id: Some(p), ..
                } if p == member => return true,
                _ => {}
            }
        }
    })
    .await?;
    assert!(refused);

    // The founder holds a live invite, so it admits a guest; the guest's sync request is
    // answered with NotAMember and the connection is closed.
    let _code = mesh.invite(0, 1, 600).await?;
    let founder = peer_id(&mesh.nodes[0].id);
    let founder_addrs: Vec<Multiaddr> = mesh
        .status(0)
        .await?
        .listen_addrs
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    swarm.dial(DialOpts::peer_id(founder).addresses(founder_addrs).build())?;
    let mut answer = None;
    let closed = tokio::time::timeout(CONVERGE, async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == founder => {
                    swarm.behaviour_mut().sync.send_request(
                        &founder,
                        SyncRequest::V1(SyncRequestV1::Summary {
                            digest: [0; 32],
                            versions: Vec::new(),
                        }),
                    );
                }
                SwarmEvent::Behaviour(MeshBehaviourEvent::Sync(Event::Message {
                    message: Message::Response { response, .. },
                    ..
                })) => answer = Some(response),
                SwarmEvent::ConnectionClosed {
                    peer_id,
                    num_established: 0,
                    ..
                } if peer_id == founder => return true,
                _ => {}
            }
        }
    })
    .await?;
    assert!(closed);
    assert!(
        matches!(
            answer,
            Some(SyncResponse::V1(SyncResponseV1::NotAMember)) | None
        ),
        "a stranger must read nothing: {answer:?}"
    );
    assert!(mesh.status(1).await?.refused_connections >= 1);
    mesh.shutdown().await;
    Ok(())
}

/// The inviter cannot be dialed (as when every member is behind NAT): the joiner waits and
/// names its own addresses; `dial` on the inviter connects out and the join completes.
#[tokio::test]
async fn a_joiner_that_cannot_reach_the_inviter_is_dialed_by_it() -> Result<()> {
    let mesh = LocalMesh::found().await?;
    let code = mesh.invite(0, 1, 600).await?;
    let mut invite = hearth_proto::invite::Invite::decode(&code)?;
    // Nothing listens on port 9 of 127.0.0.1 in the tests: the code's addresses are dead.
    invite.addrs = vec!["/ip4/127.0.0.1/udp/9/quic-v1".into()];
    let unreachable_code = invite.encode();

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<String>>();
    let hint = move |listening: &[String]| {
        let _ = tx.send(listening.to_vec());
    };
    let vps = mesh.fresh_config("vps");
    let joining = join(
        &vps,
        "vps",
        &unreachable_code,
        Duration::from_secs(60),
        &hint,
    );
    let dialer = async {
        let listening = rx.recv().await.expect("the joiner names its addresses");
        assert!(!listening.is_empty());
        for addr in listening {
            let response = mesh.nodes[0]
                .client()
                .call(hearth_proto::api::CommandV1::Dial { addr })
                .await
                .unwrap();
            assert!(matches!(
                response,
                hearth_proto::api::ResponseV1::Dialing { .. }
            ));
        }
    };
    let (joined, ()) = tokio::join!(joining, dialer);
    let joined = joined?;
    assert_eq!(joined.role, hearth_proto::Role::Member);
    assert_eq!(mesh.members(0).await?.len(), 2);
    mesh.shutdown().await;
    Ok(())
}
