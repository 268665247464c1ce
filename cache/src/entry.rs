//! One cached content in memory: its layout, accounting, and the chunk presence / verified
//! bitmaps that let a hot read skip both the index and rehashing.

use crate::hash::SumKind;
use crate::key::KeyKind;
use crate::layout::Layout;
use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// Locks a mutex, recovering the data if a panicking thread poisoned it: every critical
/// section here leaves the state consistent before anything that could panic.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Entry {
    pub id: i64,
    pub key: String,
    pub kind: KeyKind,
    pub layout: Layout,
    /// How this entry's chunk checksums are computed (fixed for its lifetime).
    pub sums: SumKind,
    pub path: PathBuf,
    /// Bytes of present chunks; changed only under `chunks`' lock.
    pub stored: AtomicU64,
    /// Not yet uploaded: never evicted.
    pub dirty: AtomicBool,
    /// LRU tick of the last use, and the value last written to the index.
    pub last_access: AtomicU64,
    pub saved_access: AtomicU64,
    pub chunks: Mutex<ChunkState>,
    /// Held while writing into the data file. Parallel fetches of one file would otherwise
    /// contend for the kernel's inode lock, which spins while waiting: on a small machine that
    /// spinning took CPU from the reads themselves. Waiting here sleeps.
    pub writing: Mutex<()>,
    file: OnceLock<Arc<File>>,
}

pub struct ChunkState {
    /// False until the chunk rows were read from the index (done on first use).
    pub loaded: bool,
    /// Present chunks by index. Sparse: memory follows what is stored, not the declared size
    /// (which comes from a server).
    present: HashMap<u64, Chunk>,
    /// The complete content was checked against the key (persisted).
    pub whole_verified: bool,
    /// The entry was evicted or removed: no more index writes for it.
    pub removed: bool,
}

pub struct EntryInit {
    pub id: i64,
    pub key: String,
    pub kind: KeyKind,
    pub layout: Layout,
    pub path: PathBuf,
    pub stored: u64,
    pub dirty: bool,
    pub whole_verified: bool,
    pub last_access: u64,
}

impl Entry {
    pub fn new(init: EntryInit) -> Self {
        Self {
            id: init.id,
            key: init.key,
            kind: init.kind,
            layout: init.layout,
            sums: SumKind::CURRENT,
            path: init.path,
            stored: AtomicU64::new(init.stored),
            dirty: AtomicBool::new(init.dirty),
            last_access: AtomicU64::new(init.last_access),
            saved_access: AtomicU64::new(init.last_access),
            chunks: Mutex::new(ChunkState {
                loaded: false,
                present: HashMap::new(),
                whole_verified: init.whole_verified,
                removed: false,
            }),
            writing: Mutex::new(()),
            file: OnceLock::new(),
        }
    }

    /// The same entry with checksums of `kind` (entries loaded from the index).
    pub fn with_sums(mut self, kind: SumKind) -> Self {
        self.sums = kind;
        self
    }

    pub fn is_complete(&self) -> bool {
        self.stored.load(Ordering::Acquire) == self.layout.size
    }

    /// The data file, opened once (read-write) and shared by all readers and writers.
    pub fn file(&self) -> std::io::Result<Arc<File>> {
        if let Some(f) = self.file.get() {
            return Ok(f.clone());
        }
        let opened = Arc::new(crate::fsio::private_options().open(&self.path)?);
        // A racing opener may have won; use whichever handle got stored.
        Ok(self.file.get_or_init(|| opened).clone())
    }

    /// Installs a handle opened while creating the file.
    pub fn set_file(&self, file: File) {
        let _ = self.file.set(Arc::new(file));
    }
}

#[derive(Clone, Copy)]
struct Chunk {
    sum: [u8; 16],
    /// Checked against its checksum in this process (never persisted).
    verified: bool,
}

impl ChunkState {
    /// Checksum of chunk `idx` if present.
    pub fn sum(&self, idx: u64) -> Option<[u8; 16]> {
        self.present.get(&idx).map(|c| c.sum)
    }

    pub fn is_present(&self, idx: u64) -> bool {
        self.present.contains_key(&idx)
    }

    pub fn is_verified(&self, idx: u64) -> bool {
        self.present.get(&idx).is_some_and(|c| c.verified)
    }

    /// Records a present, not yet verified chunk.
    pub fn insert(&mut self, idx: u64, sum: [u8; 16]) {
        self.present.insert(
            idx,
            Chunk {
                sum,
                verified: false,
            },
        );
    }

    /// Marks chunk `idx` verified if its checksum is still `sum`.
    pub fn set_verified(&mut self, idx: u64, sum: [u8; 16]) {
        if let Some(c) = self.present.get_mut(&idx)
            && c.sum == sum
        {
            c.verified = true;
        }
    }

    pub fn remove(&mut self, idx: u64) {
        self.present.remove(&idx);
    }

    /// Present chunks, unordered.
    pub fn present(&self) -> impl Iterator<Item = (u64, [u8; 16])> + '_ {
        self.present.iter().map(|(i, c)| (*i, c.sum))
    }
}
