//! Admission of records into a store: the one place that decides whether an offered record is
//! stale, refused or stored, for the node's sled store and for simulations alike.

use crate::membership::{authorize, authorize_by, Membership, Rejection};
use crate::merge::{digest, supersedes, tombstone_expired};
use crate::record::Genesis;
use crate::{Body, Kind, MeshId, Record, RecordId, RecordVersion};
use std::sync::Arc;

/// What admission needs of a store of records: reads by id and kind, writes, and the
/// membership it authorizes against. The node implements it over sled, simulations in memory
/// ([`super::MemoryStore`]).
pub trait RecordMap {
    /// Why the store failed (I/O, corruption).
    type Error: std::error::Error;

    /// The mesh this store belongs to, once it has one.
    fn mesh(&self) -> Result<Option<MeshId>, Self::Error>;
    /// The stored genesis, decoded.
    fn genesis(&self) -> Result<Option<Genesis>, Self::Error>;
    /// The stored Member and Revocation records with their bodies.
    fn membership_records(&self) -> Result<Vec<(Record, Body)>, Self::Error>;
    /// One record by id.
    fn get(&self, id: &RecordId) -> Result<Option<Record>, Self::Error>;
    /// Every record of one kind.
    fn records_of(&self, kind: Kind) -> Result<Vec<Record>, Self::Error>;
    /// Every record, in `(kind, key)` order.
    fn all_records(&self) -> Result<Vec<Record>, Self::Error>;
    /// Stores `record` under its id, replacing what was there (admission already decided).
    fn insert(&mut self, record: &Record) -> Result<(), Self::Error>;
    /// Deletes the record under `id`.
    fn remove(&mut self, id: &RecordId) -> Result<(), Self::Error>;

    /// The membership the stored Genesis, Member and Revocation records make, once there is
    /// a genesis. Admission asks for it for every record of another kind: a store may keep
    /// it between changes instead of replaying the membership each time.
    fn membership_now(&self) -> Result<Option<Arc<Membership>>, Self::Error> {
        let (Some(mesh), Some(genesis)) = (self.mesh()?, self.genesis()?) else {
            return Ok(None);
        };
        let records = self.membership_records()?;
        Ok(Some(Arc::new(Membership::replay(
            mesh,
            &genesis,
            records.iter().map(|(r, b)| (r, b)),
        ))))
    }
}

/// Outcome of offering a record to a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// New state; replicate it further.
    Stored,
    /// Already held this version or a newer one.
    Stale,
}

/// Why a record was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError<E: std::error::Error> {
    /// Refused by validation; never stored.
    #[error("record refused: {0}")]
    Rejected(#[from] Rejection),
    /// The store failed.
    #[error(transparent)]
    Store(E),
}

/// Validates and merges one record: stale when the store holds this version or a newer one,
/// refused when [`authorize`] says so, stored otherwise.
pub fn apply<S: RecordMap>(
    store: &mut S,
    record: &Record,
) -> Result<Applied, ApplyError<S::Error>> {
    let Some(mesh) = store.mesh().map_err(ApplyError::Store)? else {
        return Err(ApplyError::Rejected(Rejection::GenesisMismatch));
    };
    if let Some(existing) = store.get(&record.id()).map_err(ApplyError::Store)? {
        if !supersedes(record, &existing) {
            return Ok(Applied::Stale);
        }
    }
    match record.kind {
        Kind::Genesis | Kind::Member | Kind::Revocation => {
            let genesis = store.genesis().map_err(ApplyError::Store)?;
            let current = if matches!(record.kind, Kind::Genesis) {
                Vec::new()
            } else {
                store.membership_records().map_err(ApplyError::Store)?
            };
            authorize(mesh, genesis.as_ref(), &current, record)?;
        }
        _ => {
            let Some(membership) = store.membership_now().map_err(ApplyError::Store)? else {
                return Err(ApplyError::Rejected(Rejection::GenesisMismatch));
            };
            authorize_by(&membership, record)?;
        }
    }
    store.insert(record).map_err(ApplyError::Store)?;
    Ok(Applied::Stored)
}

/// Applies a batch whose records may depend on each other (an admin's Member record after
/// records it signed), repeating passes until nothing more applies. Returns the stored records
/// and the refusals of the last pass.
pub fn apply_batch<S: RecordMap>(
    store: &mut S,
    mut pending: Vec<Record>,
) -> Result<(Vec<Record>, Vec<Rejection>), S::Error> {
    pending.sort_by_key(|r| (r.kind, r.hlc));
    let mut stored = Vec::new();
    loop {
        let mut progress = false;
        let mut rejected = Vec::new();
        let mut retry = Vec::new();
        for record in pending {
            match apply(store, &record) {
                Ok(Applied::Stored) => {
                    progress = true;
                    stored.push(record);
                }
                Ok(Applied::Stale) => {}
                Err(ApplyError::Rejected(rejection)) => {
                    rejected.push(rejection);
                    retry.push(record);
                }
                Err(ApplyError::Store(e)) => return Err(e),
            }
        }
        if !progress || retry.is_empty() {
            return Ok((stored, rejected));
        }
        pending = retry;
    }
}

/// Deletes route tombstones older than `ttl_ms` at `now_ms`; returns how many.
pub fn purge_tombstones<S: RecordMap>(
    store: &mut S,
    now_ms: u64,
    ttl_ms: u64,
) -> Result<usize, S::Error> {
    let mut purged = 0;
    for record in store.records_of(Kind::Route)? {
        let Ok(body) = record.decode_body() else {
            continue;
        };
        if tombstone_expired(&record, &body, now_ms, ttl_ms) {
            store.remove(&record.id())?;
            purged += 1;
        }
    }
    Ok(purged)
}

/// Versions of every record, in order, for anti-entropy.
pub fn versions<S: RecordMap>(store: &S) -> Result<Vec<RecordVersion>, S::Error> {
    Ok(store.all_records()?.iter().map(Record::version).collect())
}

/// Digest of the whole store; equal on two nodes means equal state.
pub fn store_digest<S: RecordMap>(store: &S) -> Result<[u8; 32], S::Error> {
    Ok(digest(&versions(store)?))
}

/// The highest timestamp stored, to start a node's clock after it.
pub fn max_hlc<S: RecordMap>(store: &S) -> Result<crate::Hlc, S::Error> {
    Ok(store
        .all_records()?
        .iter()
        .map(|r| r.hlc)
        .max()
        .unwrap_or_default())
}
