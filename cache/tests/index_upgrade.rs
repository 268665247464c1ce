//! An index written by the previous version (MD5 chunk checksums, index version 1) stays
//! readable after the upgrade to XXH3 checksums: its entries keep their MD5 sums and are
//! checked with them; new entries use the new kind.

mod common;
use cells_cache::EntryState;
use common::*;
use md5::{Digest, Md5};
use rusqlite::{Connection, params};

/// Rewrites the cache's index as version 1 wrote it: no `sum_kind` column, MD5 sums.
fn downgrade_to_version_1(dir: &std::path::Path, contents: &[(&str, &[u8])]) {
    let conn = Connection::open(dir.join("cache").join("index.sqlite")).unwrap();
    conn.execute_batch("ALTER TABLE entries DROP COLUMN sum_kind; PRAGMA user_version = 1;")
        .unwrap();
    for (key, data) in contents {
        let id: i64 = conn
            .query_row("SELECT id FROM entries WHERE key = ?1", [key], |r| r.get(0))
            .unwrap();
        let idx: Vec<i64> = conn
            .prepare("SELECT idx FROM chunks WHERE entry_id = ?1")
            .unwrap()
            .query_map([id], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for i in idx {
            let start = i as usize * CHUNK as usize;
            let end = (start + CHUNK as usize).min(data.len());
            let sum = Md5::digest(&data[start..end]).to_vec();
            conn.execute(
                "UPDATE chunks SET sum = ?3 WHERE entry_id = ?1 AND idx = ?2",
                params![id, i, sum],
            )
            .unwrap();
        }
    }
}

#[test]
fn entries_with_md5_checksums_stay_readable_after_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let whole = content(3 * CHUNK as usize + 5, 40);
    let partial = content(4 * CHUNK as usize, 41);
    let key = c_key(&whole);
    {
        let cache = open(dir.path(), 1 << 30);
        store_all(&cache, &key, &whole);
        cache.ensure_entry("epart", partial.len() as u64).unwrap();
        cache
            .write_range("epart", 0, &partial[..CHUNK as usize])
            .unwrap();
    }
    downgrade_to_version_1(dir.path(), &[(&key, &whole), ("epart", &partial)]);

    let cache = open(dir.path(), 1 << 30);
    // Served, checked against their MD5 sums (read as XXH3 sums they would all be dropped).
    assert_eq!(cache.state(&key).unwrap(), EntryState::Complete);
    assert_eq!(cache.read(&key, 0, whole.len()).unwrap().unwrap(), whole);
    assert_eq!(
        cache.read("epart", 0, CHUNK as usize).unwrap().unwrap(),
        &partial[..CHUNK as usize]
    );
    // The old partial entry grows with sums of its own kind, and survives a restart.
    cache
        .write_range("epart", CHUNK, &partial[CHUNK as usize..])
        .unwrap();
    drop(cache);
    let cache = open(dir.path(), 1 << 30);
    assert_eq!(
        cache.read("epart", 0, partial.len()).unwrap().unwrap(),
        partial
    );
    assert!(cache.verify_all().unwrap().is_empty());
    // A new entry next to them.
    store_all(&cache, "enew", &whole);
    assert_eq!(cache.read("enew", 0, whole.len()).unwrap().unwrap(), whole);
}

#[test]
fn damage_to_an_md5_checked_entry_is_still_found() {
    let dir = tempfile::tempdir().unwrap();
    let data = content(2 * CHUNK as usize, 42);
    {
        let cache = open(dir.path(), 1 << 30);
        store_all(&cache, "eold", &data);
    }
    downgrade_to_version_1(dir.path(), &[("eold", &data)]);
    let path = object_path(dir.path(), "eold");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[CHUNK as usize + 3] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let cache = open(dir.path(), 1 << 30);
    assert_eq!(cache.read("eold", 0, 10).unwrap().unwrap(), &data[..10]);
    assert_eq!(cache.read("eold", CHUNK, 10).unwrap(), None);
    assert_eq!(
        cache.missing_ranges("eold", 0, 2 * CHUNK).unwrap(),
        vec![CHUNK..2 * CHUNK]
    );
}
