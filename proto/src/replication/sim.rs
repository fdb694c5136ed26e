//! Deterministic tests of the replication core on a simulated network of 50 nodes: loss,
//! reordering, partitions and restarts; after the faults end every digest is equal, no
//! acknowledged record is lost, and every entry holds the documented winner.

mod network;

use crate::merge::supersedes;
use crate::record::NodeInfo;
use crate::route::{Route, RouteSpec, RouteTls};
use crate::{Body, Record, RecordId};
use network::{Sim, ANTI_ENTROPY_MS};
use std::collections::BTreeMap;

const NODES: usize = 50;
const ADMINS: usize = 3;

/// A route for `host` on node `host_node`, written by whoever is given it.
fn route(sim: &Sim, host: usize, host_node: usize, port: u16) -> Body {
    Body::Route(Route {
        spec: RouteSpec::Http {
            host: format!("h{host}.example.com"),
        },
        node: sim.id(host_node),
        target: Some(format!("127.0.0.1:{port}")),
        proxy_protocol: false,
        container: None,
        tls: RouteTls::Off,
    })
}

/// A random write: an admin's route for a random node, a node's own route, or a node's
/// NodeInfo. Hosts and nodes are few, so conflicting writes to one entry are common.
fn random_write(sim: &mut Sim, port: u16) -> (usize, Body) {
    let host = sim.pick(4);
    let host_node = ADMINS + sim.pick(6);
    match sim.pick(3) {
        0 => (sim.pick(ADMINS), route(sim, host, host_node, port)),
        1 => (host_node, route(sim, host, host_node, port)),
        _ => {
            let writer = sim.pick(sim.len());
            let info = Body::NodeInfo(NodeInfo {
                name: format!("n{writer}"),
                version: format!("v{port}"),
                ..NodeInfo::default()
            });
            (writer, info)
        }
    }
}

/// Runs `steps` steps of 100 ms with a write on a random running node in each.
fn write_for(sim: &mut Sim, steps: u32, port: &mut u16, spread: bool) {
    for _ in 0..steps {
        let (writer, body) = random_write(sim, *port);
        *port = port.wrapping_add(1).max(1);
        if sim.is_up(writer) {
            sim.write(writer, &body, spread);
        }
        sim.run_for(100);
    }
}

/// Runs until every digest is equal, at most `limit_ms`; returns the time it took.
fn until_converged(sim: &mut Sim, limit_ms: u64) -> Option<u64> {
    let start = sim.elapsed_ms();
    while sim.elapsed_ms() - start <= limit_ms {
        if sim.converged() {
            return Some(sim.elapsed_ms() - start);
        }
        sim.run_for(250);
    }
    None
}

/// Every acknowledged record is held everywhere, or superseded by a newer one, and every
/// entry holds the greatest version written to it (last writer wins by `(hlc, author,
/// signature)`), whatever order the records travelled in.
fn check_no_loss_and_documented_winner(sim: &Sim) {
    let mut winners: BTreeMap<RecordId, Record> = BTreeMap::new();
    for record in &sim.acknowledged {
        let id = record.id();
        match winners.get(&id) {
            Some(best) if !supersedes(record, best) => {}
            _ => {
                winners.insert(id, record.clone());
            }
        }
    }
    for i in 0..sim.len() {
        for (id, winner) in &winners {
            let held = sim.record(i, id);
            assert_eq!(
                held.as_ref(),
                Some(winner),
                "node {i} holds the wrong version of {id:?}"
            );
        }
    }
}

fn faulty_run(nodes: usize, seed: u64) -> Sim {
    let mut sim = Sim::new(nodes, ADMINS, 3, 2, seed);
    sim.loss_percent = 10;
    sim.max_delay_ms = 300;
    let mut port = 1;

    write_for(&mut sim, 50, &mut port, true);

    // Partition: two of the three hubs and 22 homes on one side, the rest on the other,
    // with writes (conflicting ones among them) on both sides.
    let side_b: Vec<usize> = (2..nodes).filter(|i| *i == 2 || i % 2 == 1).collect();
    sim.partition(&side_b);
    write_for(&mut sim, 100, &mut port, true);
    let a = sim.digest(0);
    assert!(side_b.iter().all(|i| sim.digest(*i) != a));

    // Restarts: nodes stop, some crash right after a write before pushing it.
    let restarted = [5, 6, 7, 8, nodes - 10];
    for i in restarted {
        sim.stop(i);
    }
    write_for(&mut sim, 30, &mut port, true);
    for i in restarted {
        sim.start(i);
        let (_, body) = random_write(&mut sim, port);
        port += 1;
        if let Body::NodeInfo(_) = body {
            sim.write(i, &body, false);
        }
    }
    sim.heal();
    write_for(&mut sim, 50, &mut port, true);
    sim
}

#[test]
fn fifty_nodes_converge_after_loss_reordering_partitions_and_restarts() {
    for seed in [1, 2, 3] {
        let mut sim = faulty_run(NODES, seed);
        let took = until_converged(&mut sim, 6 * ANTI_ENTROPY_MS);
        let Some(took) = took else {
            panic!(
                "seed {seed}: digests still differ {} s after the last write",
                6 * ANTI_ENTROPY_MS / 1000
            );
        };
        eprintln!("seed {seed}: every digest equal {took} ms (simulated) after the last write");
        assert_eq!(sim.refused, 0, "seed {seed}: a member's write was refused");
        check_no_loss_and_documented_winner(&sim);
    }
}

#[test]
fn a_crashed_writers_record_reaches_everyone_through_anti_entropy_alone() {
    let mut sim = Sim::new(NODES, ADMINS, 3, 2, 9);
    sim.max_delay_ms = 50;
    let body = route(&sim, 0, 20, 8080);
    let record = sim.write(20, &body, false).expect("written");
    sim.stop(20);
    sim.start(20);
    assert!(until_converged(&mut sim, 12 * ANTI_ENTROPY_MS).is_some());
    for i in 0..sim.len() {
        assert_eq!(sim.record(i, &record.id()), Some(record.clone()));
    }
}

#[test]
fn an_idle_mesh_exchanges_only_digests() {
    let mut sim = Sim::new(NODES, ADMINS, 3, 2, 4);
    sim.max_delay_ms = 50;
    let mut port = 1;
    write_for(&mut sim, 20, &mut port, true);
    assert!(until_converged(&mut sim, 6 * ANTI_ENTROPY_MS).is_some());
    sim.run_for(2 * ANTI_ENTROPY_MS);
    let before = sim.traffic;
    let idle_ms = 6 * ANTI_ENTROPY_MS;
    sim.run_for(idle_ms);
    let idle = network::Traffic {
        messages: sim.traffic.messages - before.messages,
        bytes: sim.traffic.bytes - before.bytes,
        with_records: sim.traffic.with_records - before.with_records,
    };
    assert_eq!(idle.with_records, 0, "{idle:?}");
    // One digest-only summary and its InSync answer per node and round.
    let rounds = idle_ms / ANTI_ENTROPY_MS;
    assert!(
        idle.messages <= 2 * rounds * NODES as u64 + 2 * NODES as u64,
        "{idle:?}"
    );
    let per_node_per_second = idle.bytes * 1000 / (idle_ms * NODES as u64);
    assert!(
        per_node_per_second < 16,
        "{per_node_per_second} B/s: {idle:?}"
    );
}

#[test]
fn the_same_run_is_the_same_every_time() {
    let one = faulty_run(20, 7);
    let two = faulty_run(20, 7);
    assert_eq!(one.traffic, two.traffic);
    assert_eq!(
        (0..20).map(|i| one.digest(i)).collect::<Vec<_>>(),
        (0..20).map(|i| two.digest(i)).collect::<Vec<_>>()
    );
}

#[test]
fn a_write_reaches_everyone_in_two_hops_with_about_one_push_per_hub_and_member() {
    const HUBS: usize = 3;
    let mut sim = Sim::new(NODES, ADMINS, HUBS, 2, 11);
    sim.max_delay_ms = 20;
    // Let the connection-time exchanges finish before counting.
    sim.run_for(1_000);
    let before = sim.traffic;
    let body = route(&sim, 0, 30, 8080);
    let record = sim.write(30, &body, true).expect("written");
    // Two hops of at most 20 ms each, and no anti-entropy round in between to help.
    sim.run_for(100);
    for i in 0..sim.len() {
        assert_eq!(
            sim.record(i, &record.id()),
            Some(record.clone()),
            "node {i} lacks the write after two hops"
        );
    }
    let pushes = sim.traffic.with_records - before.with_records;
    // Each hub passes it to every other member; the author and its peers add a few.
    let bound = ((HUBS + 1) * NODES) as u64;
    eprintln!("{pushes} pushes carried the write to {NODES} nodes");
    assert!(
        pushes <= bound,
        "{pushes} pushes for one write (at most {bound}): flooding, not two hops through the hubs"
    );
}
