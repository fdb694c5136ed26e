//! Which process of a member each connection goes to.
//!
//! A restarted member is a new process behind the same key. Connections to its old process
//! stay open until the QUIC idle timeout (30 s), and libp2p spreads requests for the peer over
//! all of its connections, so until then some failure-detector packets and replication
//! requests to the member go to a dead process and are lost. On a VPS whose home member
//! restarted, that was enough for the home to declare the VPS down and lose its only edge.
//!
//! So every node names its process in its identify agent version (`started/<Unix ms>`, the
//! same start time its NodeInfo carries), and a connection whose process is older than the
//! newest start heard from that member is closed. A connection not identified yet counts by
//! when it came up, with a clock-skew margin. The start times compared are all the member's
//! own clock; only the fallback compares across clocks.

use super::actor::{MeshActor, PeerState};
use super::peer_id::{node_id, peer_id};
use hearth_proto::NodeId;
use libp2p::swarm::ConnectionId;
use libp2p::PeerId;
use std::time::Duration;
use tracing::info;

/// Clock difference tolerated between members when telling a connection that is not
/// identified yet to a member's old process from one to its new process.
const RESTART_SKEW: Duration = Duration::from_secs(2);

/// The marker in the agent version that precedes the process start time.
const STARTED_MARKER: &str = " started/";

/// The identify agent version of a process started at `started_ms`.
pub fn agent_version(started_ms: u64) -> String {
    format!(
        "hearthd/{}{STARTED_MARKER}{started_ms}",
        env!("CARGO_PKG_VERSION")
    )
}

/// The process start time in a peer's agent version (`None` from an older hearthd or from
/// something else).
pub fn started_of(agent_version: &str) -> Option<u64> {
    let (_, started) = agent_version.rsplit_once(STARTED_MARKER)?;
    started.parse().ok()
}

/// The connections of `state` that go to a process older than one started at `started_ms`:
/// those identified as such; and, of those not identified, the ones that came up before the
/// first connection identified as the newest process (identify takes one round trip, so a
/// live process would have answered on the older one first: the old process died before it
/// could) or well before the start by this node's clock.
pub(super) fn to_older_processes(state: &PeerState, started_ms: u64) -> Vec<ConnectionId> {
    let skew = RESTART_SKEW.as_millis() as u64;
    let first_current = state
        .process_ms
        .iter()
        .filter(|(_, process)| **process >= started_ms)
        .filter_map(|(id, _)| state.established_ms.get(id))
        .min()
        .copied();
    state
        .established_ms
        .iter()
        .filter(|(id, at)| match state.process_ms.get(id) {
            Some(process) => *process < started_ms,
            None => at.saturating_add(skew) < started_ms || first_current.is_some_and(|f| **at < f),
        })
        .map(|(id, _)| *id)
        .collect()
}

impl MeshActor {
    /// `node` announced a start time (in its NodeInfo, or on a connection): if it is newer
    /// than any heard before (the member restarted), its dial backoff ends now and the
    /// connections to its old process are closed.
    pub(super) fn heard_start(&mut self, node: NodeId, started_ms: u64) {
        if self.note_start(node, started_ms) {
            self.close_older_processes(peer_id(&node), started_ms);
        }
    }

    /// Identify named the process at the other end of `connection`.
    pub(super) fn identified(&mut self, peer: PeerId, connection: ConnectionId, agent: &str) {
        let (Some(node), Some(started_ms)) = (node_id(&peer), started_of(agent)) else {
            return;
        };
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        if !state.established_ms.contains_key(&connection) {
            return;
        }
        state.process_ms.insert(connection, started_ms);
        if !self.membership.is_member(&node) {
            return;
        }
        self.note_start(node, started_ms);
        // This connection may itself go to an old process whose successor was heard first.
        let newest = self.peer_starts.get(&node).copied().unwrap_or(started_ms);
        self.close_older_processes(peer, newest);
    }

    /// Records `started_ms` as `node`'s newest start; whether it is newer than any before.
    fn note_start(&mut self, node: NodeId, started_ms: u64) -> bool {
        if node == self.me
            || self
                .peer_starts
                .get(&node)
                .is_some_and(|k| *k >= started_ms)
        {
            return false;
        }
        self.peer_starts.insert(node, started_ms);
        self.backoff.remove(&node);
        true
    }

    fn close_older_processes(&mut self, peer: PeerId, started_ms: u64) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        let stale = to_older_processes(state, started_ms);
        if stale.is_empty() {
            return;
        }
        // Closing takes a moment; a later start heard before it ends does not close again.
        for connection in &stale {
            state.established_ms.remove(connection);
            state.process_ms.remove(connection);
        }
        info!(
            peer = %node_id(&peer).map(|n| n.short()).unwrap_or_default(),
            closing = stale.len(),
            "the member restarted: closing the connections to its old process"
        );
        for connection in stale {
            self.swarm.close_connection(connection);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Instant;

    #[test]
    fn the_agent_version_names_the_process() {
        let agent = agent_version(1_764_633_600_123);
        assert_eq!(
            agent,
            format!(
                "hearthd/{} started/1764633600123",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(started_of(&agent), Some(1_764_633_600_123));
        assert_eq!(started_of("hearthd/0.1.0"), None);
        assert_eq!(started_of("hearthd/0.1.0 started/soon"), None);
    }

    fn state(connections: &[(usize, u64, Option<u64>)]) -> PeerState {
        PeerState {
            node: None,
            connections: connections.len(),
            relayed: HashMap::new(),
            rtt: HashMap::new(),
            remotes: HashMap::new(),
            guest_until: None,
            since: Instant::now(),
            established_ms: connections
                .iter()
                .map(|(id, at, _)| (ConnectionId::new_unchecked(*id), *at))
                .collect(),
            process_ms: connections
                .iter()
                .filter_map(|(id, _, p)| p.map(|p| (ConnectionId::new_unchecked(*id), p)))
                .collect(),
        }
    }

    #[test]
    fn identified_connections_go_by_process_others_by_age() {
        let restart = 100_000;
        let state = state(&[
            // Identified as the old process, though it came up after the restart by this
            // node's clock (the member's clock is behind).
            (1, restart + 5_000, Some(restart - 60_000)),
            // The new process's, though it came up before the restart by this node's clock
            // (the member's clock is ahead).
            (2, restart - 5_000, Some(restart)),
            // Not identified: by age, beyond the skew margin.
            (3, restart - 10_000, None),
            // Not identified, within the margin: kept.
            (4, restart - 1_000, None),
        ]);
        let mut stale = to_older_processes(&state, restart);
        stale.sort();
        assert_eq!(
            stale,
            vec![
                ConnectionId::new_unchecked(1),
                ConnectionId::new_unchecked(3)
            ]
        );
    }

    #[test]
    fn an_unidentified_connection_older_than_the_new_process_first_one_is_stale() {
        let restart = 100_000;
        let state = state(&[
            // The old process died 100 ms after connecting, before identify answered.
            (1, restart - 300, None),
            (2, restart + 50, Some(restart)),
            // Came up after the new process's first: it may be the new process's.
            (3, restart + 80, None),
        ]);
        assert_eq!(
            to_older_processes(&state, restart),
            vec![ConnectionId::new_unchecked(1)]
        );
        // Until a connection is identified as the new process, the clock rule alone holds.
        let unidentified = self::state(&[(1, restart - 300, None)]);
        assert!(to_older_processes(&unidentified, restart).is_empty());
    }
}
