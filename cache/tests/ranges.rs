//! Partial ranges: what is stored, what is reported missing, what reads return.

mod common;
use cells_cache::{CacheError, EntryState};
use common::*;

#[test]
fn partial_writes_record_only_whole_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 30);
    let size = 3 * CHUNK + 100; // last chunk is short
    let data = content(size as usize, 1);
    cache.ensure_entry("e1", size).unwrap();
    assert_eq!(cache.state("e1").unwrap(), EntryState::Partial);
    assert_eq!(cache.missing_ranges("e1", 0, size).unwrap(), vec![0..size]);

    // Unaligned write: covers chunk 1 only; partial data of chunks 0 and 2 is ignored.
    let (from, to) = (CHUNK as usize - 10, 2 * CHUNK as usize + 10);
    cache
        .write_range("e1", from as u64, &data[from..to])
        .unwrap();
    assert_eq!(
        cache.missing_ranges("e1", 0, size).unwrap(),
        vec![0..CHUNK, 2 * CHUNK..size]
    );
    assert_eq!(
        cache.read("e1", CHUNK + 5, 100).unwrap().unwrap(),
        &data[CHUNK as usize + 5..CHUNK as usize + 105]
    );
    // A read touching a missing chunk is a miss.
    assert_eq!(cache.read("e1", CHUNK - 1, 2).unwrap(), None);

    // The final short chunk counts once the write reaches the end.
    cache
        .write_range("e1", 3 * CHUNK, &data[3 * CHUNK as usize..])
        .unwrap();
    assert_eq!(
        cache.missing_ranges("e1", 0, size).unwrap(),
        vec![0..CHUNK, 2 * CHUNK..3 * CHUNK]
    );
    assert_eq!(
        cache.read("e1", size - 50, 1000).unwrap().unwrap(),
        &data[size as usize - 50..]
    );
    cache.write_range("e1", 0, &data).unwrap();
    assert_eq!(cache.state("e1").unwrap(), EntryState::Complete);
    assert!(cache.missing_ranges("e1", 0, size).unwrap().is_empty());
    assert_eq!(cache.read("e1", 0, size as usize).unwrap().unwrap(), data);
    assert_eq!(cache.usage().bytes, size);
}

#[test]
fn missing_ranges_edges() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 30);
    let size = 2 * CHUNK + 1;
    cache.ensure_entry("e2", size).unwrap();
    // Clipped to the entry size, aligned outward to chunks.
    assert_eq!(cache.missing_ranges("e2", 5, 10).unwrap(), vec![0..CHUNK]);
    assert_eq!(
        cache.missing_ranges("e2", CHUNK * 2, 1 << 40).unwrap(),
        vec![2 * CHUNK..size]
    );
    // Past EOF and empty requests: nothing to fetch.
    assert!(cache.missing_ranges("e2", size, 10).unwrap().is_empty());
    assert!(
        cache
            .missing_ranges("e2", size + 100, 10)
            .unwrap()
            .is_empty()
    );
    assert!(cache.missing_ranges("e2", 0, 0).unwrap().is_empty());
    assert!(
        cache
            .missing_ranges("e2", u64::MAX, u64::MAX)
            .unwrap()
            .is_empty()
    );
    // Reads past EOF are empty, not misses.
    assert_eq!(cache.read("e2", size, 10).unwrap(), Some(Vec::new()));
    // Writes past EOF change nothing.
    cache.write_range("e2", size + 10, &[1, 2, 3]).unwrap();
    assert_eq!(cache.usage().bytes, 0);
    // Unknown entries.
    assert!(matches!(
        cache.missing_ranges("nope", 0, 1),
        Err(CacheError::UnknownEntry(_))
    ));
    assert!(matches!(
        cache.write_range("nope", 0, &[0; 10]),
        Err(CacheError::UnknownEntry(_))
    ));
    assert_eq!(cache.read("nope", 0, 1).unwrap(), None);
    assert_eq!(cache.state("nope").unwrap(), EntryState::Absent);
}

#[test]
fn zero_size_entries_are_complete() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 30);
    let empty_c = c_key(b"");
    cache.ensure_entry(&empty_c, 0).unwrap();
    assert_eq!(cache.state(&empty_c).unwrap(), EntryState::Complete);
    assert!(cache.missing_ranges(&empty_c, 0, 100).unwrap().is_empty());
    assert_eq!(cache.read(&empty_c, 0, 100).unwrap(), Some(Vec::new()));
    assert!(cache.complete_path(&empty_c).unwrap().is_some());
    // An empty entry under the key of non-empty content is refused.
    let wrong = c_key(b"not empty");
    assert!(matches!(
        cache.ensure_entry(&wrong, 0),
        Err(CacheError::Corrupt(_))
    ));
    assert_eq!(cache.state(&wrong).unwrap(), EntryState::Absent);
}

#[test]
fn declaring_another_size_replaces_a_clean_entry() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 30);
    let data = content(CHUNK as usize * 2, 3);
    store_all(&cache, "e3", &data);
    cache.ensure_entry("e3", CHUNK * 2).unwrap();
    assert_eq!(cache.state("e3").unwrap(), EntryState::Complete);
    cache.ensure_entry("e3", CHUNK).unwrap();
    assert_eq!(cache.state("e3").unwrap(), EntryState::Partial);
    assert_eq!(cache.usage().bytes, 0);
}

#[test]
fn equal_content_is_shared_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 30);
    let data = content(5000, 9);
    let key = c_key(&data);
    store_all(&cache, &key, &data);
    // A second file with the same content (or the same file renamed) finds it complete.
    cache.ensure_entry(&key, data.len() as u64).unwrap();
    assert!(cache.missing_ranges(&key, 0, 5000).unwrap().is_empty());
    assert_eq!(cache.usage().entries, 1);
    assert_eq!(cache.usage().bytes, 5000);
}

#[test]
fn a_huge_declared_size_costs_nothing_until_stored() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 30);
    // Sizes come from the server. Memory follows stored chunks, not the declared size; a size
    // the file system cannot hold is an I/O error, nothing worse.
    match cache.ensure_entry("ehuge", 1 << 50) {
        Ok(()) => {
            assert_eq!(
                cache.missing_ranges("ehuge", (1 << 50) - 10, 100).unwrap(),
                vec![(1 << 50) - CHUNK..1 << 50]
            );
            assert_eq!(cache.read("ehuge", 0, 10).unwrap(), None);
        }
        Err(e) => assert!(matches!(e, CacheError::Io(_)), "{e}"),
    }
    assert!(matches!(
        cache.ensure_entry("emax", u64::MAX),
        Err(CacheError::Io(_))
    ));
    assert_eq!(cache.state("emax").unwrap(), EntryState::Absent);
    assert!(!object_path(dir.path(), "emax").exists());
}
