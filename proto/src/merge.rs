//! Last-writer-wins merge of records, and digests of a record set.
//!
//! For one `(kind, key)` the record with the greatest `(hlc, author, signature)` wins. The
//! signature only breaks the tie of one author writing two bodies at one timestamp, which keeps
//! the merge a total order and therefore commutative, associative and idempotent.

use crate::record::{Body, Record, RecordId, RecordVersion};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// True when `incoming` should replace `existing` for their shared key.
pub fn supersedes(incoming: &Record, existing: &Record) -> bool {
    (incoming.hlc, incoming.author, &incoming.signature)
        > (existing.hlc, existing.author, &existing.signature)
}

/// Merges one record into a state map; returns whether the state changed.
pub fn merge_into(state: &mut BTreeMap<RecordId, Record>, incoming: Record) -> bool {
    match state.get(&incoming.id()) {
        Some(existing) if !supersedes(&incoming, existing) => false,
        _ => {
            state.insert(incoming.id(), incoming);
            true
        }
    }
}

/// Whether a stored record is a tombstone (a withdrawn route) older than `ttl_ms` at `now_ms`,
/// which may be purged. A node offline for longer than the TTL can bring a purged route back
/// by anti-entropy, so the TTL must exceed any expected offline time.
pub fn tombstone_expired(record: &Record, body: &Body, now_ms: u64, ttl_ms: u64) -> bool {
    matches!(body, Body::Route(route) if route.target.is_none())
        && now_ms.saturating_sub(record.hlc.millis) > ttl_ms
}

/// A hash of a set of record versions; equal digests mean equal replicated state.
///
/// The versions must be given in ascending order (as a sled tree or `BTreeMap` yields them).
pub fn digest<'a>(versions: impl IntoIterator<Item = &'a RecordVersion>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for version in versions {
        hasher.update(postcard::to_stdvec(version).unwrap_or_default());
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{MeshId, NodeKey};
    use crate::record::NodeInfo;
    use crate::Hlc;
    use proptest::prelude::*;

    /// Records over a few keys and authors so that conflicts are common.
    fn arbitrary_records() -> impl Strategy<Value = Vec<Record>> {
        let keys: Vec<NodeKey> = (0..3).map(|_| NodeKey::generate()).collect();
        let secrets: Vec<[u8; 32]> = keys.iter().map(NodeKey::secret_bytes).collect();
        proptest::collection::vec((0..3usize, 0..4u64, 0..3u32, "[a-c]{1,2}"), 0..24).prop_map(
            move |specs| {
                specs
                    .into_iter()
                    .map(|(author, millis, counter, name)| {
                        let key = NodeKey::from_secret(secrets[author]);
                        let body = Body::NodeInfo(NodeInfo {
                            name,
                            ..NodeInfo::default()
                        });
                        Record::sign(
                            &key,
                            MeshId::from_bytes([0; 32]),
                            &body,
                            Hlc { millis, counter },
                        )
                    })
                    .collect()
            },
        )
    }

    fn merged(records: impl IntoIterator<Item = Record>) -> BTreeMap<RecordId, Record> {
        let mut state = BTreeMap::new();
        for record in records {
            merge_into(&mut state, record);
        }
        state
    }

    proptest! {
        #[test]
        fn merge_is_commutative(records in arbitrary_records(), seed in any::<u64>()) {
            let mut shuffled = records.clone();
            // A deterministic permutation derived from the seed.
            let len = shuffled.len().max(1);
            shuffled.rotate_left((seed as usize) % len);
            shuffled.reverse();
            prop_assert_eq!(merged(records), merged(shuffled));
        }

        #[test]
        fn merge_is_associative(a in arbitrary_records(), b in arbitrary_records(), c in arbitrary_records()) {
            let ab_then_c = merged(merged(a.clone().into_iter().chain(b.clone())).into_values().chain(c.clone()));
            let a_then_bc = merged(a.into_iter().chain(merged(b.into_iter().chain(c)).into_values()));
            prop_assert_eq!(ab_then_c, a_then_bc);
        }

        #[test]
        fn merge_is_idempotent(records in arbitrary_records()) {
            let once = merged(records.clone());
            let twice = merged(once.clone().into_values().chain(records));
            prop_assert_eq!(once, twice);
        }

        #[test]
        fn tombstones_expire_only_after_their_ttl(age in 0u64..20_000, ttl in 0u64..20_000) {
            use crate::route::{Route, RouteSpec};
            let key = NodeKey::generate();
            let body = Body::Route(Route {
                spec: RouteSpec::Tcp { port: 22 },
                node: key.id(),
                target: None,
                proxy_protocol: false,
                container: None,
                tls: Default::default(),
            });
            let record = Record::sign(&key, MeshId::from_bytes([0; 32]), &body, Hlc::at(1_000));
            prop_assert_eq!(tombstone_expired(&record, &body, 1_000 + age, ttl), age > ttl);
            let live = Body::Route(Route {
                spec: RouteSpec::Tcp { port: 22 },
                node: key.id(),
                target: Some("127.0.0.1:22".into()),
                proxy_protocol: false,
                container: None,
                tls: Default::default(),
            });
            prop_assert!(!tombstone_expired(&record, &live, u64::MAX, ttl));
        }

        #[test]
        fn equal_states_have_equal_digests(records in arbitrary_records()) {
            let forward = merged(records.clone());
            let backward = merged(records.into_iter().rev());
            let digest_of = |s: &BTreeMap<RecordId, Record>| {
                let versions: Vec<_> = s.values().map(Record::version).collect();
                digest(&versions)
            };
            prop_assert_eq!(digest_of(&forward), digest_of(&backward));
        }
    }
}
