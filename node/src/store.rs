//! The sled-backed record store.
//!
//! Records are validated by `hearth_proto::membership::authorize` and merged by
//! `hearth_proto::merge` before they touch disk; every accepted write is flushed before it is
//! acknowledged, so an acknowledged record survives `kill -9`. The engine is hidden behind
//! [`Store`] so it can be swapped.

use crate::services::ContainerRoute;
use hearth_proto::invite::{InviteError, InviteState};
use hearth_proto::membership::{Membership, Rejection};
use hearth_proto::merge::digest;
use hearth_proto::record::Genesis;
use hearth_proto::replication::RecordMap;
use hearth_proto::{Body, Hlc, Kind, MeshId, Record, RecordId, RecordVersion};
use std::path::{Path, PathBuf};

pub mod flusher;

/// Directory of the sled database inside the data dir.
pub const STORE_DIR: &str = "store";

/// The on-disk format this build reads and writes, kept under the meta key `format`: 1 is
/// the first numbered one, whose record bodies begin with their layout version
/// (`hearth_proto::record::layout`). A store without it (written before) or with another
/// number is refused at open, before anything in it is decoded.
pub const STORE_FORMAT: u32 = 1;

/// Storage failures. Messages name the path and the way out.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the database.
    #[error(
        "the store {0} is in use by another hearthd; stop it first (one hearthd per --data-dir)"
    )]
    Locked(PathBuf),
    /// The database cannot be read.
    #[error("the store {path} is corrupt or unreadable ({reason}). The mesh state is replicated on every member: stop hearthd, move the whole directory {path} aside (keep node.key), get a fresh code from an admin and run `hearthd join CODE` to resync from peers")]
    Corrupt {
        /// Database path.
        path: PathBuf,
        /// What sled or the decoder said.
        reason: String,
    },
    /// Written by an older hearthd, in a format this one does not read (bodies without layout
    /// versions). Nothing in it is changed.
    #[error("the store {path} was written by an older hearthd ({found}; this hearthd reads store format {STORE_FORMAT}) and cannot be read; nothing in it was changed. Stop hearthd and move the directory {path} aside (keep node.key), then get a fresh code from an admin and run `hearthd join CODE` to resync from peers, or run `hearthd init` to found a new mesh")]
    OldFormat {
        /// Database path.
        path: PathBuf,
        /// What the store says about its format.
        found: String,
    },
    /// Written by a newer hearthd.
    #[error("the store {path} was written by a newer hearthd (store format {found}; this hearthd reads format {STORE_FORMAT}); upgrade hearthd")]
    NewerFormat {
        /// Database path.
        path: PathBuf,
        /// The store's format.
        found: u32,
    },
    /// I/O failure on a working database.
    #[error("store I/O error at {path}: {reason}")]
    Io {
        /// Database path.
        path: PathBuf,
        /// What sled said.
        reason: String,
    },
}

/// Outcome of offering a record to the store (admission is `proto`'s, shared with the
/// replication simulations).
pub use hearth_proto::replication::Applied;

/// Why a record was not applied.
pub type ApplyError = hearth_proto::replication::ApplyError<StoreError>;

/// File beside the sled database recording the least the store must hold.
const WATERMARK_FILE: &str = "hearth-watermark.json";

/// What the store held when the watermark was written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Watermark {
    mesh: Option<MeshId>,
    max_hlc: Hlc,
}

/// One node's persistent state: records, mesh id, and outstanding invites.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
    db: sled::Db,
    records: sled::Tree,
    meta: sled::Tree,
    invites: sled::Tree,
    /// When this node stored each record version (Unix ms): local, never replicated.
    arrivals: sled::Tree,
    /// Flushes and watermark writes since the store was opened, for `hearthctl status`: an
    /// idle mesh must not write at all.
    writes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The membership the stored records make, kept between changes to the Genesis, Member
    /// and Revocation records: admission asks for it for every other record, and replaying
    /// it means reading and decoding every member's record.
    membership_now: std::sync::Arc<std::sync::Mutex<Option<std::sync::Arc<Membership>>>>,
}

const META_MESH: &[u8] = b"mesh";
const META_BOOTSTRAP: &[u8] = b"bootstrap";
const META_NAME: &[u8] = b"name";
const META_CONTAINER_ROUTES: &[u8] = b"container_routes";
const META_FORMAT: &[u8] = b"format";

fn record_key(kind: Kind, key: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(key.len() + 1);
    bytes.push(kind as u8);
    bytes.extend_from_slice(key.as_bytes());
    bytes
}

impl Store {
    /// Opens (or creates) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(STORE_DIR);
        let db = Self::open_db(&path)?;
        let tree = |name: &str| db.open_tree(name).map_err(|e| Self::classify(&path, e));
        let store = Store {
            records: tree("records")?,
            meta: tree("meta")?,
            invites: tree("invites")?,
            arrivals: tree("arrivals")?,
            db,
            path,
            writes: Default::default(),
            membership_now: Default::default(),
        };
        let fresh = store.check_format()?;
        // Decode everything once so corruption is found at start, not mid-request.
        store.all_records()?;
        store.check_watermark()?;
        if fresh {
            store
                .meta
                .insert(META_FORMAT, &STORE_FORMAT.to_be_bytes())
                .map_err(|e| store.io(e))?;
            store.flush()?;
        }
        Ok(store)
    }

    /// Refuses a store of another format, before anything in it is decoded: records written
    /// in an older format could misread instead of failing. Returns whether the store is new
    /// and empty, to be stamped with [`STORE_FORMAT`].
    fn check_format(&self) -> Result<bool, StoreError> {
        let found = match self.meta.get(META_FORMAT).map_err(|e| self.io(e))? {
            Some(bytes) => <[u8; 4]>::try_from(bytes.as_ref())
                .map(u32::from_be_bytes)
                .map_err(|_| self.corrupt("the store format number is damaged"))?,
            None if self.records.is_empty() && self.meta.is_empty() && self.invites.is_empty() => {
                return Ok(true);
            }
            None => {
                return Err(StoreError::OldFormat {
                    path: self.path.clone(),
                    found: "no format number, from before record bodies carried versions".into(),
                })
            }
        };
        match found {
            STORE_FORMAT => Ok(false),
            newer if newer > STORE_FORMAT => Err(StoreError::NewerFormat {
                path: self.path.clone(),
                found: newer,
            }),
            older => Err(StoreError::OldFormat {
                path: self.path.clone(),
                found: format!("store format {older}"),
            }),
        }
    }

    /// sled releases its file lock from background threads a moment after the last handle
    /// is dropped, so a store closed just now by this process (`hearthd join` followed by
    /// `run`, a restart in the tests) can look locked. A lock that outlives the grace period
    /// belongs to another process.
    fn open_db(path: &Path) -> Result<sled::Db, StoreError> {
        const GRACE: std::time::Duration = std::time::Duration::from_secs(2);
        const STEP: std::time::Duration = std::time::Duration::from_millis(25);
        let started = std::time::Instant::now();
        loop {
            // No periodic flush of sled's own: the group-commit thread (`flusher`) flushes
            // what needs it, and sled's 500 ms timer woke an idle node for nothing.
            match sled::Config::new().path(path).flush_every_ms(None).open() {
                Ok(db) => return Ok(db),
                Err(e) => match Self::classify(path, e) {
                    StoreError::Locked(_) if started.elapsed() < GRACE => std::thread::sleep(STEP),
                    other => return Err(other),
                },
            }
        }
    }

    fn watermark_path(&self) -> PathBuf {
        self.path.join(WATERMARK_FILE)
    }

    fn current_watermark(&self) -> Result<Watermark, StoreError> {
        Ok(Watermark {
            mesh: self.mesh()?,
            max_hlc: self.max_hlc()?,
        })
    }

    /// sled recovers a damaged log by dropping what it cannot read, which would silently reset
    /// the node. The watermark, kept beside the database, says what the store held at least;
    /// a store that holds less is corrupt.
    fn check_watermark(&self) -> Result<(), StoreError> {
        let path = self.watermark_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.corrupt(format!("cannot read {}: {e}", path.display()))),
        };
        let expected: Watermark = serde_json::from_str(&text)
            .map_err(|e| self.corrupt(format!("{} is damaged: {e}", path.display())))?;
        let found = self.current_watermark()?;
        if expected.mesh.is_some() && found.mesh != expected.mesh {
            return Err(
                self.corrupt("the database lost its mesh id (sled dropped unreadable data)")
            );
        }
        if found.max_hlc < expected.max_hlc {
            return Err(self.corrupt(format!(
                "records written up to {} ms since the epoch are missing (sled dropped unreadable data)",
                expected.max_hlc.millis
            )));
        }
        Ok(())
    }

    /// Records what the store holds now; called after founding or joining, periodically, and
    /// at shutdown. Written atomically (temporary file, then rename), and only when it
    /// changed, so an idle node does not write.
    pub fn save_watermark(&self) -> Result<(), StoreError> {
        let path = self.watermark_path();
        let io = |e: std::io::Error| StoreError::Io {
            path: path.clone(),
            reason: e.to_string(),
        };
        let bytes = serde_json::to_vec(&self.current_watermark()?).map_err(|e| self.corrupt(e))?;
        if std::fs::read(&path).is_ok_and(|held| held == bytes) {
            return Ok(());
        }
        self.count_write();
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        std::io::Write::write_all(&mut file, &bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(())
    }

    fn classify(path: &Path, error: sled::Error) -> StoreError {
        let reason = error.to_string();
        match error {
            sled::Error::Io(e)
                if e.kind() == std::io::ErrorKind::WouldBlock || reason.contains("lock") =>
            {
                StoreError::Locked(path.to_path_buf())
            }
            sled::Error::Io(_) => StoreError::Io {
                path: path.to_path_buf(),
                reason,
            },
            _ => StoreError::Corrupt {
                path: path.to_path_buf(),
                reason,
            },
        }
    }

    fn io(&self, error: sled::Error) -> StoreError {
        Self::classify(&self.path, error)
    }

    fn corrupt(&self, reason: impl ToString) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.count_write();
        self.db.flush().map(|_| ()).map_err(|e| self.io(e))
    }

    /// Makes everything applied so far durable: for [`flusher::Flusher`], and at shutdown.
    pub fn flush_now(&self) -> Result<(), StoreError> {
        self.flush()
    }

    fn count_write(&self) {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Flushes and watermark writes since the store was opened.
    pub fn writes(&self) -> u64 {
        self.writes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The mesh this node belongs to, once founded or joined.
    pub fn mesh(&self) -> Result<Option<MeshId>, StoreError> {
        match self.meta.get(META_MESH).map_err(|e| self.io(e))? {
            None => Ok(None),
            Some(bytes) => {
                let raw: [u8; 32] = bytes
                    .as_ref()
                    .try_into()
                    .map_err(|_| self.corrupt("mesh id"))?;
                Ok(Some(MeshId::from_bytes(raw)))
            }
        }
    }

    /// Forgets the kept membership when a record of `kind` changed.
    fn membership_changes(&self, kind: Kind) {
        if matches!(kind, Kind::Genesis | Kind::Member | Kind::Revocation) {
            *self
                .membership_now
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        }
    }

    /// Records the mesh after a verified genesis; refuses to switch meshes.
    pub fn set_mesh(&self, mesh: MeshId) -> Result<(), StoreError> {
        self.meta
            .insert(META_MESH, mesh.as_bytes().as_slice())
            .map_err(|e| self.io(e))?;
        self.membership_changes(Kind::Genesis);
        self.flush()
    }

    /// A JSON list kept under `key` in the local meta tree; empty when absent.
    fn meta_list<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Vec<T>, StoreError> {
        match self.meta.get(key).map_err(|e| self.io(e))? {
            None => Ok(Vec::new()),
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| self.corrupt(e)),
        }
    }

    /// Replaces the JSON list under `key`, flushed before returning.
    fn set_meta_list<T: serde::Serialize>(
        &self,
        key: &[u8],
        items: &[T],
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(items).map_err(|e| self.corrupt(e))?;
        self.meta.insert(key, bytes).map_err(|e| self.io(e))?;
        self.flush()
    }

    /// Addresses to try at start before any NodeInfo is known (from the invite).
    pub fn bootstrap(&self) -> Result<Vec<String>, StoreError> {
        self.meta_list(META_BOOTSTRAP)
    }

    /// Saves the invite's bootstrap addresses.
    pub fn set_bootstrap(&self, addrs: &[String]) -> Result<(), StoreError> {
        self.set_meta_list(META_BOOTSTRAP, addrs)
    }

    /// The name this node was given at `init` or `join`.
    pub fn local_name(&self) -> Result<Option<String>, StoreError> {
        let value = self.meta.get(META_NAME).map_err(|e| self.io(e))?;
        value
            .map(|bytes| String::from_utf8(bytes.to_vec()).map_err(|e| self.corrupt(e)))
            .transpose()
    }

    /// Saves this node's name.
    pub fn set_local_name(&self, name: &str) -> Result<(), StoreError> {
        self.meta
            .insert(META_NAME, name.as_bytes())
            .map_err(|e| self.io(e))?;
        self.flush()
    }

    /// Routes this node was asked to keep pointed at containers (`publish --container`).
    pub fn container_routes(&self) -> Result<Vec<ContainerRoute>, StoreError> {
        self.meta_list(META_CONTAINER_ROUTES)
    }

    /// Saves the container routes this node follows.
    pub fn set_container_routes(&self, routes: &[ContainerRoute]) -> Result<(), StoreError> {
        self.set_meta_list(META_CONTAINER_ROUTES, routes)
    }

    /// Every stored record, in `(kind, key)` order.
    pub fn all_records(&self) -> Result<Vec<Record>, StoreError> {
        self.records
            .iter()
            .values()
            .map(|value| {
                let bytes = value.map_err(|e| self.io(e))?;
                postcard::from_bytes(&bytes).map_err(|e| self.corrupt(e))
            })
            .collect()
    }

    /// Every stored record of one kind, tombstones included.
    pub fn records_of(&self, kind: Kind) -> Result<Vec<Record>, StoreError> {
        self.records
            .scan_prefix([kind as u8])
            .values()
            .map(|value| {
                let bytes = value.map_err(|e| self.io(e))?;
                postcard::from_bytes(&bytes).map_err(|e| self.corrupt(e))
            })
            .collect()
    }

    /// One record by id.
    pub fn get(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
        match self
            .records
            .get(record_key(id.kind, &id.key))
            .map_err(|e| self.io(e))?
        {
            None => Ok(None),
            Some(bytes) => postcard::from_bytes(&bytes)
                .map(Some)
                .map_err(|e| self.corrupt(e)),
        }
    }

    /// The genesis (verified when it was stored).
    pub fn genesis(&self) -> Result<Option<Genesis>, StoreError> {
        let id = RecordId {
            kind: Kind::Genesis,
            key: hearth_proto::record::GENESIS_KEY.into(),
        };
        match self.get(&id)? {
            None => Ok(None),
            Some(record) => match record.decode_body() {
                Ok(Body::Genesis(genesis)) => Ok(Some(genesis)),
                Ok(_) => Err(self.corrupt("genesis record holds another kind")),
                Err(e) => Err(self.corrupt(e)),
            },
        }
    }

    /// Stored Member and Revocation records with their bodies. Stored records were verified
    /// on the way in, so only their bodies are decoded here.
    pub fn membership_records(&self) -> Result<Vec<(Record, Body)>, StoreError> {
        let mut out = Vec::new();
        for kind in [Kind::Member, Kind::Revocation] {
            for record in self.records_of(kind)? {
                let body = record.decode_body().map_err(|e| self.corrupt(e))?;
                out.push((record, body));
            }
        }
        Ok(out)
    }

    /// The current membership, once the node has a mesh.
    pub fn membership(&self) -> Result<Option<Membership>, StoreError> {
        let (Some(mesh), Some(genesis)) = (self.mesh()?, self.genesis()?) else {
            return Ok(None);
        };
        let records = self.membership_records()?;
        Ok(Some(Membership::replay(
            mesh,
            &genesis,
            records.iter().map(|(r, b)| (r, b)),
        )))
    }

    /// Validates and merges one record; flushes before returning `Stored`.
    pub fn apply(&self, record: &Record) -> Result<Applied, ApplyError> {
        let applied = self.apply_unflushed(record)?;
        if applied == Applied::Stored {
            self.flush().map_err(ApplyError::Store)?;
        }
        Ok(applied)
    }

    /// Validates and merges one record, leaving the flush to the caller (the mesh actor's
    /// group commit, [`flusher::Flusher`]): readers see it at once, the disk later.
    pub fn apply_unflushed(&self, record: &Record) -> Result<Applied, ApplyError> {
        hearth_proto::replication::apply(&mut self.clone(), record)
    }

    /// Applies a batch whose records may depend on each other (an admin's Member record after
    /// records it signed); repeats passes until nothing more applies. One flush covers the
    /// whole batch, before the call returns.
    pub fn apply_batch(
        &self,
        pending: Vec<Record>,
    ) -> Result<(Vec<Record>, Vec<Rejection>), StoreError> {
        let (stored, rejected) = self.apply_batch_unflushed(pending)?;
        if !stored.is_empty() {
            self.flush()?;
        }
        Ok((stored, rejected))
    }

    /// [`Store::apply_batch`] leaving the flush to the caller, like
    /// [`Store::apply_unflushed`].
    pub fn apply_batch_unflushed(
        &self,
        pending: Vec<Record>,
    ) -> Result<(Vec<Record>, Vec<Rejection>), StoreError> {
        hearth_proto::replication::apply_batch(&mut self.clone(), pending)
    }

    /// Stored routes (tombstones included) with their decoded bodies.
    pub fn routes(&self) -> Result<Vec<(Record, hearth_proto::route::Route)>, StoreError> {
        let mut out = Vec::new();
        for record in self.records_of(Kind::Route)? {
            match record.decode_body() {
                Ok(Body::Route(route)) => out.push((record, route)),
                Ok(_) => return Err(self.corrupt("route record holds another kind")),
                Err(e) => return Err(self.corrupt(e)),
            }
        }
        Ok(out)
    }

    /// When this node stored the current version of `id` (Unix ms), if known.
    pub fn arrival_ms(&self, id: &RecordId) -> Result<Option<u64>, StoreError> {
        let value = self
            .arrivals
            .get(record_key(id.kind, &id.key))
            .map_err(|e| self.io(e))?;
        Ok(value.and_then(|bytes| {
            <[u8; 8]>::try_from(bytes.as_ref())
                .ok()
                .map(u64::from_be_bytes)
        }))
    }

    /// Versions of every record, in order, for anti-entropy.
    pub fn versions(&self) -> Result<Vec<RecordVersion>, StoreError> {
        hearth_proto::replication::versions(self)
    }

    /// Digest of the whole store; equal on two nodes means equal state.
    pub fn digest(&self) -> Result<[u8; 32], StoreError> {
        hearth_proto::replication::store_digest(self)
    }

    /// Digest of everything but the NodeInfo records, which change with a node's addresses
    /// and reachability: equal on two nodes means the same members, revocations and routes. What `hearthctl status`
    /// shows, so people (and tests) can compare nodes.
    pub fn state_digest(&self) -> Result<[u8; 32], StoreError> {
        let versions: Vec<RecordVersion> = self
            .versions()?
            .into_iter()
            .filter(|v| v.id.kind != Kind::NodeInfo)
            .collect();
        Ok(digest(&versions))
    }

    /// The highest timestamp stored, to start this node's clock after it.
    pub fn max_hlc(&self) -> Result<Hlc, StoreError> {
        hearth_proto::replication::max_hlc(self)
    }

    /// Keeps an outstanding invite (only the hash of its secret).
    pub fn put_invite(&self, state: &InviteState) -> Result<(), StoreError> {
        let bytes = postcard::to_stdvec(state).map_err(|e| self.corrupt(e))?;
        self.invites
            .insert(state.secret_hash, bytes)
            .map_err(|e| self.io(e))?;
        self.flush()
    }

    /// Whether an invite with this hash exists and is not expired.
    pub fn invite(&self, secret_hash: &[u8; 32]) -> Result<Option<InviteState>, StoreError> {
        match self.invites.get(secret_hash).map_err(|e| self.io(e))? {
            None => Ok(None),
            Some(bytes) => postcard::from_bytes(&bytes)
                .map(Some)
                .map_err(|e| self.corrupt(e)),
        }
    }

    /// Consumes one use of an invite atomically: of two concurrent redemptions of a
    /// single-use invite, exactly one gets `Ok`.
    pub fn redeem_invite(
        &self,
        secret_hash: &[u8; 32],
        now_ms: u64,
    ) -> Result<Result<InviteState, InviteError>, StoreError> {
        loop {
            let Some(current) = self.invites.get(secret_hash).map_err(|e| self.io(e))? else {
                return Ok(Err(InviteError::Unknown));
            };
            let state: InviteState = postcard::from_bytes(&current).map_err(|e| self.corrupt(e))?;
            let next = match state.redeem(now_ms) {
                Ok(next) => next,
                Err(e) => return Ok(Err(e)),
            };
            let bytes = postcard::to_stdvec(&next).map_err(|e| self.corrupt(e))?;
            let swapped = self
                .invites
                .compare_and_swap(secret_hash, Some(current), Some(bytes))
                .map_err(|e| self.io(e))?;
            if swapped.is_ok() {
                self.flush()?;
                return Ok(Ok(next));
            }
        }
    }
}

/// The sled store as admission and the replication core see it (`proto::replication`).
/// Writes are not flushed here: the mesh actor's group commit does that. (A `Store` is a set
/// of shared handles, so the clones the `&self` methods make for it are cheap.)
impl RecordMap for Store {
    type Error = StoreError;

    fn mesh(&self) -> Result<Option<MeshId>, StoreError> {
        Store::mesh(self)
    }

    fn genesis(&self) -> Result<Option<Genesis>, StoreError> {
        Store::genesis(self)
    }

    fn membership_records(&self) -> Result<Vec<(Record, Body)>, StoreError> {
        Store::membership_records(self)
    }

    fn get(&self, id: &RecordId) -> Result<Option<Record>, StoreError> {
        Store::get(self, id)
    }

    fn membership_now(&self) -> Result<Option<std::sync::Arc<Membership>>, StoreError> {
        let mut kept = self
            .membership_now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if kept.is_none() {
            *kept = self.membership()?.map(std::sync::Arc::new);
        }
        Ok(kept.clone())
    }

    fn records_of(&self, kind: Kind) -> Result<Vec<Record>, StoreError> {
        Store::records_of(self, kind)
    }

    fn all_records(&self) -> Result<Vec<Record>, StoreError> {
        Store::all_records(self)
    }

    fn insert(&mut self, record: &Record) -> Result<(), StoreError> {
        let bytes = postcard::to_stdvec(record).map_err(|e| self.corrupt(e))?;
        let key = record_key(record.kind, &record.key);
        self.records.insert(&key, bytes).map_err(|e| self.io(e))?;
        self.membership_changes(record.kind);
        self.arrivals
            .insert(key, &crate::clock::now_ms().to_be_bytes())
            .map_err(|e| self.io(e))?;
        Ok(())
    }

    fn remove(&mut self, id: &RecordId) -> Result<(), StoreError> {
        let key = record_key(id.kind, &id.key);
        self.records.remove(&key).map_err(|e| self.io(e))?;
        self.membership_changes(id.kind);
        self.arrivals.remove(key).map_err(|e| self.io(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_proto::record::{Genesis, Member, NodeInfo};
    use hearth_proto::route::{Route, RouteSpec};
    use hearth_proto::{NodeKey, Role};
    use proptest::prelude::*;

    /// A store founded by key 0, with key 1 a plain member; keys 2.. are strangers.
    fn founded(keys: &[NodeKey]) -> (tempfile::TempDir, Store, MeshId) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let nonce = [1; 16];
        let mesh = MeshId::derive(&keys[0].id(), &nonce);
        store.set_mesh(mesh).unwrap();
        let genesis = Body::Genesis(Genesis {
            name: "t".into(),
            founder: keys[0].id(),
            nonce,
            created_ms: 1,
        });
        let member = Body::Member(Member {
            node: keys[1].id(),
            name: "m".into(),
            role: Role::Member,
        });
        let (_, rejected) = store
            .apply_batch(vec![
                Record::sign(&keys[0], mesh, &genesis, Hlc::at(1)),
                Record::sign(&keys[0], mesh, &member, Hlc::at(2)),
            ])
            .unwrap();
        assert!(rejected.is_empty());
        (dir, store, mesh)
    }

    /// A record by key `author` of one of three kinds, about key `subject`.
    fn record(
        keys: &[NodeKey],
        mesh: MeshId,
        author: usize,
        subject: usize,
        kind: u8,
        millis: u64,
    ) -> Record {
        let body = match kind {
            0 => Body::NodeInfo(NodeInfo {
                name: "n".into(),
                ..NodeInfo::default()
            }),
            1 => Body::Member(Member {
                node: keys[subject].id(),
                name: "x".into(),
                role: Role::Member,
            }),
            _ => Body::Route(Route {
                spec: RouteSpec::Http {
                    host: "a.example.com".into(),
                },
                node: keys[subject].id(),
                target: millis.is_multiple_of(2).then(|| "127.0.0.1:80".to_string()),
                proxy_protocol: false,
                container: None,
                tls: Default::default(),
            }),
        };
        Record::sign(&keys[author], mesh, &body, Hlc::at(millis))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Whatever arrives and in whatever order, a refused record leaves the store as it was.
        #[test]
        fn a_rejected_record_never_changes_the_store(
            ops in proptest::collection::vec((0..4usize, 0..4usize, 0..3u8, 3..40u64), 1..24)
        ) {
            let keys: Vec<NodeKey> = (0..4).map(|i| NodeKey::from_secret([i as u8 + 1; 32])).collect();
            let (_dir, store, mesh) = founded(&keys);
            for (author, subject, kind, millis) in ops {
                let before = store.digest().unwrap();
                let candidate = record(&keys, mesh, author, subject, kind, millis);
                match store.apply(&candidate) {
                    Err(ApplyError::Rejected(_)) => prop_assert_eq!(store.digest().unwrap(), before),
                    Err(ApplyError::Store(e)) => panic!("{e}"),
                    Ok(Applied::Stale) => prop_assert_eq!(store.digest().unwrap(), before),
                    Ok(Applied::Stored) => prop_assert_ne!(store.digest().unwrap(), before),
                }
            }
        }
    }

    /// Opens the sled database under `dir` as it is, without [`Store::open`]'s checks (but
    /// with its wait for a just-dropped store's lock).
    fn raw(dir: &Path) -> sled::Db {
        Store::open_db(&dir.join(STORE_DIR)).unwrap()
    }

    #[test]
    fn a_new_store_is_stamped_with_the_format_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let db = raw(dir.path());
        let format = db.open_tree("meta").unwrap().get(META_FORMAT).unwrap();
        assert_eq!(format.as_deref(), Some(&STORE_FORMAT.to_be_bytes()[..]));
        drop(db);
        let store = Store::open(dir.path()).unwrap();
        // Reopening a stamped store writes nothing.
        assert_eq!(store.writes(), 0);
    }

    #[test]
    fn a_store_from_before_the_format_number_is_refused_and_kept() {
        let keys: Vec<NodeKey> = (0..2)
            .map(|i| NodeKey::from_secret([i as u8 + 1; 32]))
            .collect();
        let (dir, store, _) = founded(&keys);
        let records = store.all_records().unwrap().len();
        drop(store);
        // What an older hearthd left: the same trees, no format number, and bodies without
        // layout versions.
        {
            let db = raw(dir.path());
            db.open_tree("meta").unwrap().remove(META_FORMAT).unwrap();
            let tree = db.open_tree("records").unwrap();
            for entry in tree.iter() {
                let (key, value) = entry.unwrap();
                let mut record: Record = postcard::from_bytes(&value).unwrap();
                record.body.remove(0);
                tree.insert(key, postcard::to_stdvec(&record).unwrap())
                    .unwrap();
            }
            db.flush().unwrap();
        }
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::OldFormat { .. }), "{err}");
        let message = err.to_string();
        let path = dir.path().join(STORE_DIR).display().to_string();
        assert!(
            message.contains(&path)
                && message.contains("move the directory")
                && message.contains("hearthd join")
                && message.contains("hearthd init"),
            "{message}"
        );
        // Nothing was deleted, and it is still refused the next time.
        let db = raw(dir.path());
        assert_eq!(db.open_tree("records").unwrap().len(), records);
        assert!(db
            .open_tree("meta")
            .unwrap()
            .get(META_MESH)
            .unwrap()
            .is_some());
        drop(db);
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::OldFormat { .. })
        ));
    }

    #[test]
    fn a_store_from_a_newer_hearthd_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        {
            let db = raw(dir.path());
            let meta = db.open_tree("meta").unwrap();
            meta.insert(META_FORMAT, &(STORE_FORMAT + 1).to_be_bytes())
                .unwrap();
            db.flush().unwrap();
        }
        let err = Store::open(dir.path()).unwrap_err();
        assert!(
            matches!(err, StoreError::NewerFormat { found, .. } if found == STORE_FORMAT + 1),
            "{err}"
        );
        assert!(err.to_string().contains("upgrade hearthd"), "{err}");
    }

    #[test]
    fn a_reset_database_is_refused_not_accepted_as_empty() {
        let keys: Vec<NodeKey> = (0..2)
            .map(|i| NodeKey::from_secret([i as u8 + 1; 32]))
            .collect();
        let (dir, store, _) = founded(&keys);
        store.save_watermark().unwrap();
        drop(store);
        // What sled does with a damaged log: it comes back empty.
        let path = dir.path().join(STORE_DIR);
        for entry in std::fs::read_dir(&path).unwrap() {
            let entry = entry.unwrap().path();
            if entry.file_name().is_some_and(|n| n != WATERMARK_FILE) {
                if entry.is_dir() {
                    std::fs::remove_dir_all(entry).unwrap();
                } else {
                    std::fs::remove_file(entry).unwrap();
                }
            }
        }
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains(&path.display().to_string()) && message.contains("resync"),
            "{message}"
        );
    }
}
