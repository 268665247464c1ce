//! Size limit: synchronous LRU eviction of whole entries, never of pinned, held or dirty ones.

mod common;
use cells_cache::{CacheError, EntryState};
use common::*;

#[test]
fn a_workload_three_times_the_limit_stays_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 8 * CHUNK;
    let cache = open(dir.path(), limit);
    let pinned = content(CHUNK as usize, 100);
    store_all(&cache, "epinned", &pinned);
    cache.pin("epinned").unwrap();
    let held_data = content(CHUNK as usize, 101);
    store_all(&cache, "eheld", &held_data);
    let hold = cache.hold("eheld");
    let src = dir.path().join("saved");
    std::fs::write(&src, content(CHUNK as usize, 102)).unwrap();
    cache.insert_file("edirty", &src, true).unwrap();

    let mut written = 0;
    let mut i = 0u8;
    while written < 3 * limit {
        let key = format!("ework{i}");
        let data = content(2 * CHUNK as usize, i);
        store_all(&cache, &key, &data);
        written += data.len() as u64;
        assert!(cache.usage().bytes <= limit, "usage {:?}", cache.usage());
        assert_eq!(cache.read(&key, 0, data.len()).unwrap().unwrap(), data);
        i += 1;
    }
    assert_eq!(
        cache.read("epinned", 0, 10).unwrap().unwrap(),
        &pinned[..10]
    );
    assert_eq!(
        cache.read("eheld", 0, 10).unwrap().unwrap(),
        &held_data[..10]
    );
    assert_eq!(cache.state("edirty").unwrap(), EntryState::Complete);
    assert_eq!(cache.state("ework0").unwrap(), EntryState::Absent);
    let usage = cache.usage();
    assert_eq!(usage.pinned_bytes, CHUNK);
    assert_eq!(usage.dirty_bytes, CHUNK);

    // Released protections make entries evictable again.
    drop(hold);
    cache.unpin("epinned").unwrap();
    cache.mark_clean("edirty").unwrap();
    cache.set_limit(0);
    assert_eq!(cache.usage().bytes, 0);
    for key in ["epinned", "eheld", "edirty"] {
        assert_eq!(cache.state(key).unwrap(), EntryState::Absent, "{key}");
    }
}

#[test]
fn least_recently_used_goes_first() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 3 * CHUNK);
    for (i, key) in ["ea", "eb", "ec"].into_iter().enumerate() {
        store_all(&cache, key, &content(CHUNK as usize, i as u8));
    }
    cache.read("ea", 0, 1).unwrap().unwrap();
    store_all(&cache, "ed", &content(CHUNK as usize, 3));
    assert_eq!(cache.state("eb").unwrap(), EntryState::Absent);
    cache.ensure_entry("ec", CHUNK).unwrap(); // declaring counts as a use
    store_all(&cache, "ee", &content(CHUNK as usize, 4));
    assert_eq!(cache.state("ea").unwrap(), EntryState::Absent);
    for key in ["ec", "ed", "ee"] {
        assert_eq!(cache.state(key).unwrap(), EntryState::Complete, "{key}");
    }
}

#[test]
fn full_refuses_clean_data_but_accepts_dirty_data() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 2 * CHUNK);
    store_all(&cache, "ea", &content(CHUNK as usize, 1));
    cache.pin("ea").unwrap();
    store_all(&cache, "eb", &content(CHUNK as usize, 2));
    let _hold = cache.hold("eb");
    cache.ensure_entry("ec", CHUNK).unwrap();
    assert!(matches!(
        cache.write_range("ec", 0, &content(CHUNK as usize, 3)),
        Err(CacheError::Full)
    ));
    assert_eq!(cache.state("ec").unwrap(), EntryState::Partial);
    assert_eq!(cache.usage().bytes, 2 * CHUNK);
    let src = dir.path().join("saved");
    std::fs::write(&src, content(CHUNK as usize, 4)).unwrap();
    let clean_src = dir.path().join("clean");
    std::fs::write(&clean_src, content(CHUNK as usize, 5)).unwrap();
    assert!(matches!(
        cache.insert_file("eclean", &clean_src, false),
        Err(CacheError::Full)
    ));
    assert!(
        clean_src.exists(),
        "a refused insert leaves the source alone"
    );
    cache.insert_file("ed", &src, true).unwrap();
    assert_eq!(cache.usage().bytes, 3 * CHUNK);
    assert_eq!(
        cache.read("ed", 0, 10).unwrap().unwrap(),
        &content(CHUNK as usize, 4)[..10]
    );
}

#[test]
fn a_partial_entry_being_filled_is_not_evicted_by_its_own_writes() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 3 * CHUNK);
    let data = content(3 * CHUNK as usize, 9);
    cache.ensure_entry("ebig", 3 * CHUNK).unwrap();
    for i in 0..3 {
        let r = (i * CHUNK) as usize..((i + 1) * CHUNK) as usize;
        cache.write_range("ebig", i * CHUNK, &data[r]).unwrap();
    }
    assert_eq!(cache.read("ebig", 0, data.len()).unwrap().unwrap(), data);
    // Removing is explicit and frees the space.
    cache.remove("ebig").unwrap();
    assert_eq!(cache.usage().bytes, 0);
    assert_eq!(cache.usage().entries, 0);
}
