//! Helpers shared by the cache integration tests: a cache in a tempdir, test content and keys.
#![allow(dead_code)]

use cells_cache::{Cache, CacheConfig, CellsHasher};
use md5::{Digest, Md5};
use std::path::{Path, PathBuf};

pub const CHUNK: u64 = 4096;

pub fn config(dir: &Path, limit: u64) -> CacheConfig {
    CacheConfig {
        dir: dir.join("cache"),
        limit_bytes: limit,
        chunk_size: CHUNK,
    }
}

pub fn open(dir: &Path, limit: u64) -> Cache {
    Cache::open(config(dir, limit)).unwrap()
}

/// Deterministic, non-repeating-per-chunk content, different per `seed`.
pub fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 7) as u8).wrapping_mul(31) ^ (i as u8) ^ seed)
        .collect()
}

pub fn c_key(data: &[u8]) -> String {
    let mut h = CellsHasher::default();
    h.update(data);
    format!("c{}", h.finalize_hex())
}

pub fn m_key(data: &[u8]) -> String {
    format!("m{}", hex::encode(Md5::digest(data)))
}

/// Stores the whole content through write_range in chunk-aligned pieces.
pub fn store_all(cache: &Cache, key: &str, data: &[u8]) {
    cache.ensure_entry(key, data.len() as u64).unwrap();
    cache.write_range(key, 0, data).unwrap();
}

/// The data file of a complete entry.
pub fn data_path(cache: &Cache, key: &str) -> PathBuf {
    cache.complete_path(key).unwrap().expect("entry complete")
}

/// Where the README says an entry's data lives: `objects/<2 hex>/<md5(key) hex>`.
pub fn object_path(dir: &Path, key: &str) -> PathBuf {
    let name = hex::encode(Md5::digest(key.as_bytes()));
    dir.join("cache")
        .join("objects")
        .join(&name[..2])
        .join(name)
}
