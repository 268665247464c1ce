//! Keys are file names: anything outside [0-9A-Za-z_-] is refused, and nothing is created.
//! Cache files are private to the user.
#![cfg(unix)]

mod common;
use cells_cache::{Cache, CacheError, MAX_KEY_LEN};
use common::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn invalid_keys_are_refused_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), 1 << 20);
    let long = "e".repeat(MAX_KEY_LEN + 1);
    let src = dir.path().join("src");
    std::fs::write(&src, b"x").unwrap();
    for key in ["../x", "a/b", "", long.as_str(), "..", "a\\b", "a.b"] {
        let invalid = |r: Result<_, CacheError>| matches!(r, Err(CacheError::InvalidKey(_)));
        assert!(invalid(cache.ensure_entry(key, 1)), "{key:?}");
        assert!(invalid(cache.read(key, 0, 1).map(|_| ())), "{key:?}");
        assert!(invalid(cache.write_range(key, 0, b"x")), "{key:?}");
        assert!(invalid(cache.missing_ranges(key, 0, 1).map(|_| ())));
        assert!(invalid(cache.insert_file(key, &src, true)));
        assert!(invalid(cache.pin(key)));
        assert!(invalid(cache.remove(key)));
        assert!(invalid(cache.state(key).map(|_| ())));
        assert!(invalid(cache.complete_path(key).map(|_| ())));
    }
    assert!(src.exists());
    assert_eq!(cache.usage().entries, 0);
    let objects = dir.path().join("cache").join("objects");
    assert_eq!(std::fs::read_dir(objects).unwrap().count(), 0);
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn directories_are_0700_and_files_0600() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cache");
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cache = open(dir.path(), 1 << 20);
    store_all(&cache, "eperm", &content(100, 1));
    let src = dir.path().join("saved");
    std::fs::write(&src, b"saved").unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o644)).unwrap();
    cache.insert_file("esaved", &src, true).unwrap();
    assert_eq!(mode(&root), 0o700);
    let data = object_path(dir.path(), "eperm");
    assert_eq!(mode(data.parent().unwrap()), 0o700);
    assert_eq!(mode(&data), 0o600);
    assert_eq!(mode(&object_path(dir.path(), "esaved")), 0o600);
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), expected, "{}", path.display());
    }
}

#[test]
fn bad_configuration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 1 << 20);
    cfg.chunk_size = 0;
    assert!(matches!(
        Cache::open(cfg),
        Err(CacheError::InvalidConfig(_))
    ));
    let cache = open(dir.path(), 1 << 20);
    let err = cache.insert_file("edir", dir.path(), true).unwrap_err();
    assert!(matches!(err, CacheError::InvalidConfig(_)));
    // A symlink is not moved in (the object would point outside the cache).
    let target = dir.path().join("target");
    std::fs::write(&target, b"x").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = cache.insert_file("elink", &link, true).unwrap_err();
    assert!(matches!(err, CacheError::InvalidConfig(_)));
    assert!(link.exists());
}
