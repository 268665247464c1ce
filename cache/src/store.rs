//! The shared state behind `Cache` and opening a cache directory: permissions, the process
//! lock, loading the index, and the cheap start-up checks (no rehash: file present and sized,
//! orphan files swept; chunk contents are checked lazily on first read).

use crate::entry::{Entry, EntryInit, lock};
use crate::error::CacheError;
use crate::hash::SumKind;
use crate::key::{key_kind, object_name, validate_key};
use crate::layout::Layout;
use crate::{CacheConfig, fsio, index};
use rusqlite::Connection;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Smallest and largest accepted chunk sizes.
pub const MIN_CHUNK: u64 = 512;
pub const MAX_CHUNK: u64 = 256 * 1024 * 1024;
/// Access ticks are written to the index once per this many reads.
const ACCESS_FLUSH_EVERY: u64 = 1024;

/// Lock order (outermost first): `acct` -> an entry's `chunks` -> `entries` / `pins` / `holds`
/// -> `db`. Nobody holds `entries` while taking a `chunks` lock, so reads only ever take
/// `entries` (shared) briefly and then their own entry's lock.
pub struct Inner {
    pub objects: PathBuf,
    pub chunk_size: u64,
    pub limit: AtomicU64,
    /// Bytes of present chunks of all entries plus in-flight reservations.
    pub used: AtomicU64,
    pub tick: AtomicU64,
    /// Serialises structural changes: creating, evicting and removing entries, pins, holds.
    pub acct: Mutex<()>,
    pub entries: RwLock<HashMap<String, Arc<Entry>>>,
    pub pins: Mutex<HashMap<String, u32>>,
    pub holds: Mutex<HashMap<String, u32>>,
    pub db: Mutex<Connection>,
    _dir_lock: File,
}

impl Inner {
    pub fn open(cfg: &CacheConfig) -> Result<Self, CacheError> {
        if !(MIN_CHUNK..=MAX_CHUNK).contains(&cfg.chunk_size) {
            return Err(CacheError::InvalidConfig(format!(
                "chunk size {} is outside {MIN_CHUNK}..={MAX_CHUNK}",
                cfg.chunk_size
            )));
        }
        fsio::ensure_private_dir(&cfg.dir)?;
        let objects = cfg.dir.join("objects");
        fsio::ensure_private_dir(&objects)?;
        let dir_lock = fsio::lock_exclusive(&cfg.dir.join("lock"))?
            .ok_or_else(|| CacheError::Locked(cfg.dir.clone()))?;
        let db_path = cfg.dir.join("index.sqlite");
        // Create the index owner-only before SQLite does; its -wal/-shm files inherit the mode.
        fsio::private_options()
            .create(true)
            .truncate(false)
            .open(&db_path)?;
        for suffix in ["", "-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", db_path.display()));
            if p.exists() {
                fsio::ensure_private_file(&p)?;
            }
        }
        let conn = index::open(&db_path)?;
        let inner = Self {
            objects,
            chunk_size: cfg.chunk_size,
            limit: AtomicU64::new(cfg.limit_bytes),
            used: AtomicU64::new(0),
            tick: AtomicU64::new(1),
            acct: Mutex::new(()),
            entries: RwLock::new(HashMap::new()),
            pins: Mutex::new(HashMap::new()),
            holds: Mutex::new(HashMap::new()),
            db: Mutex::new(conn),
            _dir_lock: dir_lock,
        };
        inner.load()?;
        Ok(inner)
    }

    fn load(&self) -> Result<(), CacheError> {
        let db = lock(&self.db);
        let rows = index::load_entries(&db)?;
        let mut map = HashMap::new();
        let mut used = 0u64;
        let mut max_tick = 0u64;
        for row in rows {
            let path = self.object_path(&row.key);
            if let Some(reason) = self.startup_problem(&row, &path)? {
                if row.dirty {
                    tracing::error!(key = %row.key, reason, "dropping a not-yet-uploaded cache entry");
                } else {
                    tracing::warn!(key = %row.key, reason, "dropping cache entry");
                }
                index::delete_entry(&db, row.id)?;
                continue;
            }
            let Some(sums) = SumKind::from_sql(row.sum_kind) else {
                // Written by a newer version: its checksums cannot be checked here.
                tracing::warn!(key = %row.key, "unknown chunk checksum kind; dropping cache entry");
                index::delete_entry(&db, row.id)?;
                continue;
            };
            used += row.stored;
            max_tick = max_tick.max(row.last_access);
            let entry = Entry::new(EntryInit {
                id: row.id,
                kind: key_kind(&row.key),
                layout: Layout::new(row.size, row.chunk_size),
                path,
                stored: row.stored,
                dirty: row.dirty,
                whole_verified: row.whole_verified,
                last_access: row.last_access,
                key: row.key.clone(),
            })
            .with_sums(sums);
            map.insert(row.key, Arc::new(entry));
        }
        let pins = index::load_pins(&db)?;
        drop(db);
        self.sweep_orphans(&map)?;
        self.used.store(used, Ordering::Release);
        self.tick.store(max_tick + 1, Ordering::Release);
        *lock(&self.pins) = pins.into_iter().collect();
        *self.entries.write().unwrap_or_else(|e| e.into_inner()) = map;
        // The limit may have been lowered since the last run.
        let guard = lock(&self.acct);
        self.make_room(&guard, 0, None)?;
        Ok(())
    }

    /// Cheap checks of one index row: key valid, data file present. A file of the wrong
    /// length is resized: chunks it lacked then fail their checksum and are refetched.
    fn startup_problem(
        &self,
        row: &index::EntryRow,
        path: &Path,
    ) -> Result<Option<&'static str>, CacheError> {
        if validate_key(&row.key).is_err() {
            return Ok(Some("invalid key in index"));
        }
        if !(MIN_CHUNK..=MAX_CHUNK).contains(&row.chunk_size) {
            return Ok(Some("invalid chunk size in index"));
        }
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => {
                if meta.len() != row.size {
                    fsio::private_options().open(path)?.set_len(row.size)?;
                }
                fsio::ensure_private_file(path)?;
                Ok(None)
            }
            Ok(_) => Ok(Some("data path is not a file")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Some("data file missing")),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes files under `objects/` that no entry owns (left by a crash between writing a
    /// file and committing or deleting its row, or by an interrupted copy).
    fn sweep_orphans(&self, map: &HashMap<String, Arc<Entry>>) -> Result<(), CacheError> {
        let owned: HashSet<&Path> = map.values().map(|e| e.path.as_path()).collect();
        for shard in std::fs::read_dir(&self.objects)? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(shard.path())? {
                let path = file?.path();
                if !owned.contains(path.as_path()) && path.is_file() {
                    tracing::debug!(path = %path.display(), "removing orphan cache file");
                    std::fs::remove_file(&path)?;
                }
            }
        }
        Ok(())
    }

    pub fn object_path(&self, key: &str) -> PathBuf {
        let name = object_name(key);
        self.objects.join(&name[..2]).join(name)
    }

    pub fn get(&self, key: &str) -> Option<Arc<Entry>> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// Records a use for LRU; the index is updated in batches.
    pub fn touch(&self, entry: &Entry) {
        let t = self.tick.fetch_add(1, Ordering::AcqRel);
        entry.last_access.store(t, Ordering::Release);
        if t.is_multiple_of(ACCESS_FLUSH_EVERY)
            && let Err(e) = self.flush_access()
        {
            tracing::warn!(error = %e, "could not save cache access times");
        }
    }

    pub fn flush_access(&self) -> Result<(), CacheError> {
        let changed: Vec<(Arc<Entry>, u64)> = self
            .entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter_map(|e| {
                let t = e.last_access.load(Ordering::Acquire);
                (t != e.saved_access.load(Ordering::Acquire)).then(|| (e.clone(), t))
            })
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        let ticks: Vec<(i64, u64)> = changed.iter().map(|(e, t)| (e.id, *t)).collect();
        index::save_access(&mut lock(&self.db), &ticks)?;
        for (e, t) in changed {
            e.saved_access.store(t, Ordering::Release);
        }
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.flush_access() {
            tracing::warn!(error = %e, "could not save cache access times on close");
        }
    }
}
