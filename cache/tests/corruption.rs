//! Integrity: corrupt or torn chunks are never served, whole contents are checked against
//! `c`/`m` keys, and `verify_all` finds damage.

mod common;
use cells_cache::{CacheError, EntryState};
use common::*;
use std::io::{Seek, SeekFrom, Write};

fn flip_byte(path: &std::path::Path, at: u64) {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(at)).unwrap();
    std::io::Read::read_exact(&mut f, &mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[b[0] ^ 0xff]).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn a_flipped_byte_is_dropped_and_refetched() {
    let dir = tempfile::tempdir().unwrap();
    let data = content(3 * CHUNK as usize, 11);
    {
        let cache = open(dir.path(), 1 << 30);
        store_all(&cache, "eflip", &data);
    }
    flip_byte(&object_path(dir.path(), "eflip"), CHUNK + 17);
    let cache = open(dir.path(), 1 << 30);
    // Undamaged chunks still serve.
    assert_eq!(cache.read("eflip", 0, 100).unwrap().unwrap(), &data[..100]);
    // The damaged one is a miss, once and for all.
    assert_eq!(cache.read("eflip", CHUNK, 10).unwrap(), None);
    assert_eq!(
        cache.missing_ranges("eflip", 0, 3 * CHUNK).unwrap(),
        vec![CHUNK..2 * CHUNK]
    );
    assert_eq!(cache.state("eflip").unwrap(), EntryState::Partial);
    assert_eq!(cache.usage().bytes, 2 * CHUNK);
    // Refetching repairs it.
    cache
        .write_range("eflip", CHUNK, &data[CHUNK as usize..2 * CHUNK as usize])
        .unwrap();
    assert_eq!(cache.read("eflip", 0, data.len()).unwrap().unwrap(), data);
}

#[test]
fn torn_writes_are_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let data = content(4 * CHUNK as usize, 12);
    {
        let cache = open(dir.path(), 1 << 30);
        store_all(&cache, "etorn", &data);
    }
    // Simulate a crash that kept index rows but lost data: zero one chunk, cut the file short.
    let path = object_path(dir.path(), "etorn");
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all(&vec![0u8; CHUNK as usize]).unwrap();
    f.set_len(2 * CHUNK + 10).unwrap();
    drop(f);
    let cache = open(dir.path(), 1 << 30);
    assert_eq!(cache.read("etorn", 0, 10).unwrap(), None);
    assert_eq!(cache.read("etorn", 3 * CHUNK, 10).unwrap(), None);
    assert_eq!(
        cache.read("etorn", CHUNK, 10).unwrap().unwrap(),
        &data[CHUNK as usize..CHUNK as usize + 10]
    );
    assert_eq!(cache.read("etorn", 2 * CHUNK, 10).unwrap(), None);
    assert_eq!(
        cache.missing_ranges("etorn", 0, 4 * CHUNK).unwrap(),
        vec![0..CHUNK, 2 * CHUNK..4 * CHUNK]
    );
}

#[test]
fn a_missing_data_file_drops_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cache = open(dir.path(), 1 << 30);
        store_all(&cache, "egone", &content(100, 1));
    }
    std::fs::remove_file(object_path(dir.path(), "egone")).unwrap();
    let cache = open(dir.path(), 1 << 30);
    assert_eq!(cache.state("egone").unwrap(), EntryState::Absent);
    assert_eq!(cache.usage().bytes, 0);
}

#[test]
fn complete_contents_are_checked_against_c_and_m_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 30);
    let data = content(2 * CHUNK as usize + 3, 13);
    for key in [c_key(&data), m_key(&data)] {
        store_all(&cache, &key, &data);
        assert_eq!(cache.state(&key).unwrap(), EntryState::Complete);
        assert!(cache.complete_path(&key).unwrap().is_some());
    }
    // The server sent other bytes than the key promises: the completing write reports it and
    // the whole entry is gone.
    let other = content(data.len(), 14);
    for key in [c_key(&other), m_key(&other)] {
        cache.ensure_entry(&key, data.len() as u64).unwrap();
        cache.write_range(&key, 0, &data[..CHUNK as usize]).unwrap();
        assert!(matches!(
            cache.write_range(&key, 0, &data),
            Err(CacheError::Corrupt(_))
        ));
        assert_eq!(cache.state(&key).unwrap(), EntryState::Absent);
        assert_eq!(cache.read(&key, 0, 1).unwrap(), None);
    }
    // Opaque keys verify nothing as a whole but still get chunk checks.
    store_all(&cache, "eopaque-1", &data);
    assert_eq!(cache.state("eopaque-1").unwrap(), EntryState::Complete);
}

#[test]
fn insert_file_refuses_content_that_does_not_match_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 30);
    let src = dir.path().join("upload");
    std::fs::write(&src, b"actual bytes").unwrap();
    let err = cache
        .insert_file(&c_key(b"other bytes"), &src, true)
        .unwrap_err();
    assert!(matches!(err, CacheError::Corrupt(_)));
    assert_eq!(std::fs::read(&src).unwrap(), b"actual bytes");
    let key = m_key(b"actual bytes");
    cache.insert_file(&key, &src, true).unwrap();
    assert_eq!(cache.read(&key, 0, 100).unwrap().unwrap(), b"actual bytes");
    assert!(cache.complete_path(&key).unwrap().is_some());
}

#[test]
fn verify_all_finds_damage() {
    let dir = tempfile::tempdir().unwrap();
    let good = content(2 * CHUNK as usize, 20);
    let bad = content(2 * CHUNK as usize, 21);
    let (good_key, bad_key) = (c_key(&good), c_key(&bad));
    {
        let cache = open(dir.path(), 1 << 30);
        store_all(&cache, &good_key, &good);
        store_all(&cache, &bad_key, &bad);
        cache.ensure_entry("epart", 3 * CHUNK).unwrap();
        cache
            .write_range("epart", 0, &good[..CHUNK as usize])
            .unwrap();
        // Reads verify chunks in this process...
        cache.read(&bad_key, 0, bad.len()).unwrap().unwrap();
        // ...so the scan must rehash regardless.
        flip_byte(&object_path(dir.path(), &bad_key), 5);
        flip_byte(&object_path(dir.path(), "epart"), 5);
        let mut dropped = cache.verify_all().unwrap();
        dropped.sort();
        let mut expected = vec![bad_key.clone(), "epart".to_owned()];
        expected.sort();
        assert_eq!(dropped, expected);
        assert_eq!(cache.read(&bad_key, 0, 10).unwrap(), None);
        assert_eq!(cache.read(&good_key, 0, 10).unwrap().unwrap(), &good[..10]);
        assert!(cache.verify_all().unwrap().is_empty());
    }
}

#[test]
fn cells_hash_spans_several_10_mib_blocks_with_default_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 1 << 30);
    cfg.chunk_size = cells_cache::DEFAULT_CHUNK_SIZE;
    let cache = cells_cache::Cache::open(cfg).unwrap();
    let data = content(cells_cache::CELLS_HASH_BLOCK + 5, 30);
    let key = c_key(&data);
    cache.ensure_entry(&key, data.len() as u64).unwrap();
    // Fetched out of order, in two halves.
    let half = 5 * cells_cache::DEFAULT_CHUNK_SIZE as usize;
    cache.write_range(&key, half as u64, &data[half..]).unwrap();
    assert_eq!(cache.state(&key).unwrap(), EntryState::Partial);
    cache.write_range(&key, 0, &data[..half]).unwrap();
    assert_eq!(cache.state(&key).unwrap(), EntryState::Complete);
    let path = cache.complete_path(&key).unwrap().unwrap();
    assert_eq!(std::fs::read(path).unwrap(), data);
}

#[test]
fn fetched_ranges_lost_in_a_crash_are_refetched_not_served() {
    // Fetched ranges are stored without fsync: a crash may keep their index rows while the
    // bytes never reached the disk. The file then reads as zeros (holes) or is cut short.
    let dir = tempfile::tempdir().unwrap();
    let data = content(5 * CHUNK as usize, 13);
    {
        let cache = open(dir.path(), 1 << 30);
        cache.ensure_entry("elost", data.len() as u64).unwrap();
        // One multi-chunk range, as read-ahead stores it.
        cache.write_range("elost", 0, &data).unwrap();
        assert_eq!(cache.read("elost", 0, data.len()).unwrap().unwrap(), data);
    }
    let path = object_path(dir.path(), "elost");
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(0).unwrap();
    f.set_len(data.len() as u64).unwrap();
    drop(f);
    let cache = open(dir.path(), 1 << 30);
    for idx in 0..5 {
        assert_eq!(cache.read("elost", idx * CHUNK, 10).unwrap(), None);
    }
    assert_eq!(
        cache.missing_ranges("elost", 0, 5 * CHUNK).unwrap(),
        vec![0..5 * CHUNK]
    );
    cache.write_range("elost", 0, &data).unwrap();
    assert_eq!(cache.read("elost", 0, data.len()).unwrap().unwrap(), data);
}

#[test]
fn a_deferred_whole_check_runs_when_asked_and_drops_content_that_fails_it() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 30);
    let data = content(2 * CHUNK as usize + 3, 15);
    let key = c_key(&data);
    cache.ensure_entry(&key, data.len() as u64).unwrap();
    assert!(
        !cache
            .write_range_deferred(&key, 0, &[&data[..CHUNK as usize]])
            .unwrap()
    );
    // The completing write reports the check as due instead of making it. Its bytes come in
    // pieces that straddle chunk boundaries, as a response body does.
    let cut = (CHUNK as usize + 7, 2 * CHUNK as usize - 1);
    let pieces = [&data[..cut.0], &data[cut.0..cut.1], &data[cut.1..]];
    assert!(cache.write_range_deferred(&key, 0, &pieces).unwrap());
    assert_eq!(cache.read(&key, 0, data.len()).unwrap().unwrap(), data);
    cache.check_content(&key).unwrap();
    assert!(cache.complete_path(&key).unwrap().is_some());

    // Other bytes than the key promises: the check drops the entry.
    let other = content(data.len(), 16);
    let key = c_key(&other);
    cache.ensure_entry(&key, data.len() as u64).unwrap();
    assert!(cache.write_range_deferred(&key, 0, &[&data]).unwrap());
    assert!(matches!(
        cache.check_content(&key),
        Err(CacheError::Corrupt(_))
    ));
    assert_eq!(cache.state(&key).unwrap(), EntryState::Absent);
    // Absent, opaque and already checked entries: nothing to do.
    cache.check_content(&key).unwrap();
    store_all(&cache, "eopaque-2", &data);
    cache.check_content("eopaque-2").unwrap();
}
