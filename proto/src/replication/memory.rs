//! A store in memory, for simulations and tests of replication: the same admission rules as
//! the node's sled store, without a disk.

use super::records::RecordMap;
use crate::record::Genesis;
use crate::{Body, Kind, MeshId, Record, RecordId};
use std::collections::BTreeMap;

/// Records in a map, for a mesh.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    mesh: MeshId,
    records: BTreeMap<RecordId, Record>,
}

/// A memory store never fails; this is its (empty) error.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the memory store cannot fail")]
pub enum NoError {}

impl MemoryStore {
    /// An empty store of `mesh` (it accepts only that mesh's genesis until it holds one).
    pub fn new(mesh: MeshId) -> Self {
        Self {
            mesh,
            records: BTreeMap::new(),
        }
    }

    /// The records held, by id.
    pub fn records(&self) -> &BTreeMap<RecordId, Record> {
        &self.records
    }
}

impl RecordMap for MemoryStore {
    type Error = NoError;

    fn mesh(&self) -> Result<Option<MeshId>, NoError> {
        Ok(Some(self.mesh))
    }

    fn genesis(&self) -> Result<Option<Genesis>, NoError> {
        Ok(self
            .records
            .values()
            .find(|r| r.kind == Kind::Genesis)
            .and_then(|r| match r.decode_body() {
                Ok(Body::Genesis(genesis)) => Some(genesis),
                _ => None,
            }))
    }

    fn membership_records(&self) -> Result<Vec<(Record, Body)>, NoError> {
        Ok(self
            .records
            .values()
            .filter(|r| matches!(r.kind, Kind::Member | Kind::Revocation))
            .filter_map(|r| r.decode_body().ok().map(|body| (r.clone(), body)))
            .collect())
    }

    fn get(&self, id: &RecordId) -> Result<Option<Record>, NoError> {
        Ok(self.records.get(id).cloned())
    }

    fn records_of(&self, kind: Kind) -> Result<Vec<Record>, NoError> {
        Ok(self
            .records
            .values()
            .filter(|r| r.kind == kind)
            .cloned()
            .collect())
    }

    fn all_records(&self) -> Result<Vec<Record>, NoError> {
        Ok(self.records.values().cloned().collect())
    }

    fn insert(&mut self, record: &Record) -> Result<(), NoError> {
        self.records.insert(record.id(), record.clone());
        Ok(())
    }

    fn remove(&mut self, id: &RecordId) -> Result<(), NoError> {
        self.records.remove(id);
        Ok(())
    }
}
