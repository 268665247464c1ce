//! Restart persistence: data, pins, dirty flags and access order survive close/reopen;
//! a second opener of the same directory is refused.

mod common;
use cells_cache::{Cache, CacheError, EntryState};
use common::*;

#[test]
fn data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = content(3 * CHUNK as usize + 7, 4);
    let key = c_key(&data);
    {
        let cache = open(dir.path(), 1 << 30);
        store_all(&cache, &key, &data);
        cache.ensure_entry("epartial", 4 * CHUNK).unwrap();
        cache
            .write_range("epartial", CHUNK, &data[..CHUNK as usize])
            .unwrap();
    }
    let cache = open(dir.path(), 1 << 30);
    assert_eq!(cache.state(&key).unwrap(), EntryState::Complete);
    assert_eq!(cache.read(&key, 0, data.len()).unwrap().unwrap(), data);
    assert_eq!(cache.state("epartial").unwrap(), EntryState::Partial);
    assert_eq!(
        cache.missing_ranges("epartial", 0, 4 * CHUNK).unwrap(),
        vec![0..CHUNK, 2 * CHUNK..4 * CHUNK]
    );
    assert_eq!(
        cache.read("epartial", CHUNK, 10).unwrap().unwrap(),
        &data[..10]
    );
    let usage = cache.usage();
    assert_eq!(usage.entries, 2);
    assert_eq!(usage.bytes, data.len() as u64 + CHUNK);
}

#[test]
fn pins_and_dirty_flags_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("saved");
    std::fs::write(&saved, content(100, 5)).unwrap();
    {
        let cache = open(dir.path(), 1 << 30);
        cache.pin("epinned").unwrap();
        cache.pin("epinned").unwrap();
        cache.insert_file("edirty", &saved, true).unwrap();
        assert!(!saved.exists(), "insert_file consumes its source");
    }
    let cache = open(dir.path(), 1 << 30);
    assert_eq!(cache.pin_count("epinned"), 2);
    assert_eq!(cache.usage().dirty_bytes, 100);
    assert_eq!(
        cache.read("edirty", 0, 100).unwrap().unwrap(),
        content(100, 5)
    );
    cache.mark_clean("edirty").unwrap();
    cache.unpin("epinned").unwrap();
    drop(cache);
    let cache = open(dir.path(), 1 << 30);
    assert_eq!(cache.usage().dirty_bytes, 0);
    assert_eq!(cache.pin_count("epinned"), 1);
}

#[test]
fn lru_order_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let chunk = vec![7u8; CHUNK as usize];
    {
        let cache = open(dir.path(), 1 << 30);
        for key in ["ea", "eb", "ec"] {
            store_all(&cache, key, &chunk);
        }
        // "ea" becomes the most recently used.
        cache.read("ea", 0, 1).unwrap().unwrap();
    }
    let cache = open(dir.path(), 3 * CHUNK);
    store_all(&cache, "ed", &chunk);
    assert_eq!(cache.state("eb").unwrap(), EntryState::Absent);
    for key in ["ea", "ec", "ed"] {
        assert_eq!(cache.state(key).unwrap(), EntryState::Complete, "{key}");
    }
}

#[test]
fn a_lowered_limit_is_enforced_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cache = open(dir.path(), 1 << 30);
        for (i, key) in ["ea", "eb", "ec", "ed"].into_iter().enumerate() {
            store_all(&cache, key, &content(CHUNK as usize, i as u8));
        }
    }
    let cache = open(dir.path(), 2 * CHUNK);
    assert!(cache.usage().bytes <= 2 * CHUNK);
    assert_eq!(cache.state("ed").unwrap(), EntryState::Complete);
}

#[test]
fn one_process_per_directory() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path(), 1 << 20);
    assert!(matches!(
        Cache::open(config(dir.path(), 1 << 20)),
        Err(CacheError::Locked(_))
    ));
    drop(first);
    open(dir.path(), 1 << 20);
}

#[test]
fn orphan_files_are_swept_on_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path(), 1 << 20));
    let orphan = object_path(dir.path(), "eorphan");
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"left by a crash").unwrap();
    let cache = open(dir.path(), 1 << 20);
    assert!(!orphan.exists());
    assert_eq!(cache.state("eorphan").unwrap(), EntryState::Absent);
}

#[test]
fn a_dirty_insert_replaces_a_clean_copy_of_the_same_content() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 30);
    let data = content(2 * CHUNK as usize, 40);
    let key = m_key(&data);
    store_all(&cache, &key, &data);
    let src = dir.path().join("saved");
    std::fs::write(&src, &data).unwrap();
    cache.insert_file(&key, &src, true).unwrap();
    assert!(!src.exists());
    assert_eq!(cache.usage().dirty_bytes, data.len() as u64);
    assert_eq!(cache.usage().bytes, data.len() as u64);
    // A clean copy of content already cached is simply absorbed.
    std::fs::write(&src, &data).unwrap();
    cache.insert_file(&key, &src, false).unwrap();
    assert!(!src.exists());
    assert_eq!(cache.usage().dirty_bytes, data.len() as u64);
    assert_eq!(cache.read(&key, 0, data.len()).unwrap().unwrap(), data);
}
