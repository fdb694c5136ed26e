use super::*;
use crate::id::NodeKey;
use proptest::prelude::*;

const LEASE: u64 = 4_000;

fn id(i: u8) -> NodeId {
    NodeKey::from_secret([i + 1; 32]).id()
}

fn public(since_ms: u64, heartbeat_ms: u64) -> NodeInfo {
    NodeInfo {
        reach: Reach::Public {
            since_ms,
            addrs: vec!["/ip4/198.18.0.11/udp/7700/quic-v1".into()],
        },
        heartbeat_ms,
        lease_ms: LEASE,
        edges_max: DEFAULT_MAX_EDGES,
        ..NodeInfo::default()
    }
}

fn private(heartbeat_ms: u64) -> NodeInfo {
    NodeInfo {
        reach: Reach::Private {
            reason: "AutoNAT could not dial back".into(),
        },
        ..public(0, heartbeat_ms)
    }
}

fn with_pref(info: NodeInfo, edge_pref: EdgePreference) -> NodeInfo {
    NodeInfo { edge_pref, ..info }
}

/// The election with liveness as a failure detector with a `LEASE` would see it: a member
/// is alive when it was heard from (`heartbeat_ms`) within the lease.
fn run(infos: &[(NodeId, NodeInfo)], now_ms: u64) -> Election {
    let alive = infos
        .iter()
        .filter(|(_, i)| now_ms.saturating_sub(i.heartbeat_ms) <= LEASE)
        .map(|(n, _)| *n)
        .collect();
    elect(
        infos.iter().map(|(n, _)| *n),
        infos.iter().map(|(n, i)| (*n, i)),
        &alive,
        now_ms,
    )
}

fn why(election: &Election, node: NodeId) -> NotElected {
    match &election.verdicts[&node] {
        Verdict::NotEdge(why) => why.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn public_members_are_elected_and_every_other_member_says_why() {
    let now = 100_000;
    let infos = vec![
        (id(0), public(50_000, now - 500)),
        (id(1), public(10_000, now - 100)),
        (id(2), private(now - 200)),
        (id(3), with_pref(public(1, now), EdgePreference::Never)),
        (id(4), public(1, now - LEASE - 1)),
        (
            id(5),
            NodeInfo {
                reach: Reach::Unknown,
                ..public(0, now)
            },
        ),
    ];
    let election = run(&infos, now);
    // The more senior public node ranks first.
    assert_eq!(election.edges, vec![id(1), id(0)]);
    assert_eq!(election.verdicts[&id(1)], Verdict::Edge { rank: 0 });
    assert!(matches!(
        why(&election, id(2)),
        NotElected::NotPublic { .. }
    ));
    assert_eq!(why(&election, id(3)), NotElected::Refuses);
    assert_eq!(why(&election, id(4)), NotElected::Down);
    assert!(matches!(
        why(&election, id(5)),
        NotElected::NotPublic {
            reach: Reach::Unknown
        }
    ));
    assert!(why(&election, id(2)).to_string().contains("not public"));
}

#[test]
fn members_without_records_and_records_of_non_members_do_not_count() {
    let now = 50_000;
    let stranger = id(9);
    let infos = [(stranger, public(1, now))];
    let alive = [id(0), stranger].into();
    let election = elect([id(0)], infos.iter().map(|(n, i)| (*n, i)), &alive, now);
    assert!(election.edges.is_empty());
    assert_eq!(why(&election, id(0)), NotElected::NoHeartbeat);
    assert!(!election.verdicts.contains_key(&stranger));
}

#[test]
fn always_ranks_first_and_the_smallest_live_max_applies() {
    let now = 100_000;
    let mut infos = vec![
        (id(0), public(1, now)),
        (id(1), public(2, now)),
        (id(2), with_pref(private(now), EdgePreference::Always)),
    ];
    assert_eq!(run(&infos, now).edges, vec![id(2), id(0), id(1)]);
    // A live member announcing a lower limit lowers it for everyone.
    infos.push((
        id(3),
        NodeInfo {
            edges_max: 2,
            ..private(now)
        },
    ));
    let election = run(&infos, now);
    assert_eq!(election.max, 2);
    assert_eq!(election.edges, vec![id(2), id(0)]);
    assert_eq!(why(&election, id(1)), NotElected::NoRoom { max: 2 });
    // Once that member is dead, its announcement no longer counts.
    infos[3].1.heartbeat_ms = now - LEASE - 1;
    assert_eq!(run(&infos, now).max, DEFAULT_MAX_EDGES);
}

#[test]
fn a_new_public_node_settles_before_it_is_elected() {
    let since = 100_000;
    let infos = vec![(id(0), public(since, since + 500))];
    assert_eq!(
        why(&run(&infos, since + 500), id(0)),
        NotElected::Settling {
            remaining_ms: SETTLE_MS - 500
        }
    );
    assert_eq!(
        run(&infos, since + 500).changes_in_ms(),
        Some(SETTLE_MS - 500),
        "the settling candidate is the next change"
    );
    let mut later = infos.clone();
    later[0].1.heartbeat_ms = since + SETTLE_MS;
    let settled = run(&later, since + SETTLE_MS);
    assert_eq!(settled.edges, vec![id(0)]);
    assert_eq!(
        settled.changes_in_ms(),
        None,
        "only records or liveness change it now"
    );
}

#[test]
fn a_dead_edge_drops_out_once_its_lease_ends() {
    let infos = vec![(id(0), public(1, 10_000)), (id(1), public(2, 10_000))];
    assert_eq!(run(&infos, 10_000 + LEASE).edges, vec![id(0), id(1)]);
    let mut one_dead = infos.clone();
    one_dead[1].1.heartbeat_ms = 10_000 + LEASE;
    assert_eq!(run(&one_dead, 10_000 + LEASE + 1).edges, vec![id(1)]);
}

#[test]
fn a_newcomer_never_displaces_a_live_incumbent() {
    let now = 100_000;
    let mut infos = vec![(id(5), public(10_000, now)), (id(6), public(20_000, now))];
    for info in &mut infos {
        info.1.edges_max = 2;
    }
    let before = run(&infos, now).edges;
    // A new public node with a smaller id, public for a long while by now.
    infos.push((
        id(0),
        NodeInfo {
            edges_max: 2,
            ..public(30_000, now)
        },
    ));
    assert_eq!(run(&infos, now).edges, before);
}

#[test]
fn a_node_that_lapsed_returns_behind_its_replacement() {
    // Edge 0 lapsed (its tracker restarted its seniority at 90 s) while 1 and 2 held on.
    let now = 100_000;
    let mut infos: Vec<(NodeId, NodeInfo)> = vec![
        (id(0), public(90_000, now)),
        (id(1), public(20_000, now)),
        (id(2), public(30_000, now)),
    ];
    for info in &mut infos {
        info.1.edges_max = 2;
    }
    assert_eq!(run(&infos, now).edges, vec![id(1), id(2)]);
}

#[test]
fn edge_ips_prefer_confirmed_then_internet_then_any() {
    let confirmed = public(1, 1);
    assert_eq!(
        edge_ips(&confirmed),
        vec!["198.18.0.11".parse::<IpAddr>().unwrap()]
    );
    let vouched = NodeInfo {
        addrs: vec![
            "/ip4/127.0.0.1/udp/7700/quic-v1".into(),
            "/ip4/198.18.0.12/udp/7700/quic-v1".into(),
            "/ip4/198.18.0.12/tcp/7700".into(),
            "/ip4/198.18.0.99/udp/7700/quic-v1/p2p/x/p2p-circuit".into(),
        ],
        ..private(1)
    };
    assert_eq!(
        edge_ips(&vouched),
        vec!["198.18.0.12".parse::<IpAddr>().unwrap()]
    );
    let loopback = NodeInfo {
        addrs: vec!["/ip4/127.0.0.1/udp/1/quic-v1".into()],
        ..private(1)
    };
    assert_eq!(
        edge_ips(&loopback),
        vec!["127.0.0.1".parse::<IpAddr>().unwrap()]
    );
}

/// A member as the property tests draw it: preference, reachability, seniority, heartbeat age
/// and announced limit.
fn arbitrary_member() -> impl Strategy<Value = NodeInfo> {
    (0..3u8, 0..3u8, 0..50_000u64, 0..8_000u64, 1..5u8).prop_map(
        |(pref, reach, since, age, max)| NodeInfo {
            edge_pref: [
                EdgePreference::Auto,
                EdgePreference::Always,
                EdgePreference::Never,
            ][pref as usize],
            reach: match reach {
                0 => Reach::Unknown,
                1 => Reach::Private {
                    reason: "nat".into(),
                },
                _ => Reach::Public {
                    since_ms: since,
                    addrs: vec![],
                },
            },
            heartbeat_ms: 60_000 - age,
            lease_ms: LEASE,
            edges_max: max,
            ..NodeInfo::default()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every node computes the same set from the same records, however they are ordered.
    #[test]
    fn the_election_is_deterministic_and_ignores_record_order(
        members in proptest::collection::vec(arbitrary_member(), 1..10),
        seed in any::<u64>(),
    ) {
        let infos: Vec<(NodeId, NodeInfo)> = members
            .into_iter()
            .enumerate()
            .map(|(i, info)| (id(i as u8), info))
            .collect();
        let now = 60_000;
        let reference = run(&infos, now);
        prop_assert_eq!(&run(&infos, now), &reference);
        let mut shuffled = infos.clone();
        // A seeded Fisher-Yates shuffle: the order of both inputs varies.
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut members: Vec<NodeId> = shuffled.iter().map(|(n, _)| *n).collect();
        members.reverse();
        let alive = shuffled
            .iter()
            .filter(|(_, i)| now.saturating_sub(i.heartbeat_ms) <= LEASE)
            .map(|(n, _)| *n)
            .collect();
        let again = elect(members, shuffled.iter().map(|(n, i)| (*n, i)), &alive, now);
        prop_assert_eq!(&again, &reference);
        prop_assert!(reference.edges.len() <= usize::from(reference.max));
        for edge in &reference.edges {
            let info = &infos.iter().find(|(n, _)| n == edge).unwrap().1;
            prop_assert!(info.edge_pref != EdgePreference::Never);
        }
    }
}
