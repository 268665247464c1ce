//! Many threads reading, filling and evicting at once: every read that succeeds returns the
//! right bytes, and usage never exceeds the limit.

mod common;
use cells_cache::Cache;
use common::*;
use std::sync::Arc;

#[test]
fn concurrent_readers_and_writers() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 24 * CHUNK;
    let cache = Arc::new(open(dir.path(), limit));
    let keys: Vec<(String, Vec<u8>)> = (0..12u8)
        .map(|i| {
            let data = content(4 * CHUNK as usize + 100, i);
            (c_key(&data), data)
        })
        .collect();
    let keys = Arc::new(keys);
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let cache: Arc<Cache> = cache.clone();
            let keys = keys.clone();
            std::thread::spawn(move || {
                for round in 0..40usize {
                    let (key, data) = &keys[(round * 7 + t * 3) % keys.len()];
                    let size = data.len() as u64;
                    let _hold = cache.hold(key);
                    cache.ensure_entry(key, size).unwrap();
                    let offset = ((round as u64 * 5 + t as u64) % 5) * CHUNK;
                    for r in cache.missing_ranges(key, offset, 2 * CHUNK).unwrap() {
                        let bytes = &data[r.start as usize..r.end as usize];
                        match cache.write_range(key, r.start, bytes) {
                            Ok(()) | Err(cells_cache::CacheError::Full) => {}
                            Err(e) => panic!("write failed: {e}"),
                        }
                    }
                    if let Some(got) = cache.read(key, offset, 2 * CHUNK as usize).unwrap() {
                        let end = (offset + 2 * CHUNK).min(size) as usize;
                        assert_eq!(got, &data[offset.min(size) as usize..end]);
                    }
                    assert!(cache.usage().bytes <= limit);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(cache.usage().bytes <= limit);
    assert!(cache.verify_all().unwrap().is_empty());
}
