//! The uploader against the real test server: queued files reach the server, repeated saves
//! coalesce, folders come before their children, renames follow uploads, and a crash in the
//! middle of a multipart upload ends with the file uploaded exactly once and nothing left over.

mod client_support;
mod sync_support;

use client_support::*;
use std::sync::Arc;
use std::time::Duration;
use sync_support::*;

#[tokio::test]
async fn a_queued_file_is_uploaded_and_leaves_the_journal() {
    let env = start().await;
    let state = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let journal = open_journal(state.path());
    let hooks = Arc::new(Recorder::default());
    let uploader = start_uploader(&env.client, &journal, &hooks);
    let data = pattern(100_000);
    journal
        .enqueue_upload(
            &p("personal-files/new.bin"),
            &local_file(src.path(), "f", &data),
            None,
        )
        .unwrap();
    let stats = drain(&uploader).await;
    assert_eq!(stats.pending_ops, 0);
    assert!(stats.errors.is_empty() && stats.conflicts.is_empty());
    assert_eq!(
        std::fs::read(env.personal_dir().join("new.bin")).unwrap(),
        data
    );
    assert_eq!(hooks.events(), vec!["uploaded personal-files/new.bin"]);
    let staged = std::fs::read_dir(state.path().join("staging"))
        .unwrap()
        .count();
    assert_eq!(staged, 0, "staged copy removed after upload");
}

#[tokio::test]
async fn repeated_saves_upload_only_the_latest_version() {
    let env = start().await;
    let state = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let journal = open_journal(state.path());
    let path = p("personal-files/doc.txt");
    for (i, text) in ["one", "two", "three"].iter().enumerate() {
        let f = local_file(src.path(), &format!("v{i}"), text.as_bytes());
        journal.enqueue_upload(&path, &f, None).unwrap();
    }
    assert_eq!(
        journal.pending().len(),
        1,
        "three saves, one pending upload"
    );
    let hooks = Arc::new(Recorder::default());
    let uploader = start_uploader(&env.client, &journal, &hooks);
    drain(&uploader).await;
    assert_eq!(
        std::fs::read(env.personal_dir().join("doc.txt")).unwrap(),
        b"three"
    );
    assert_eq!(hooks.events().len(), 1);
}

#[tokio::test]
async fn a_folder_is_created_before_its_children_and_a_rename_follows_its_upload() {
    let env = start().await;
    let state = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let journal = open_journal(state.path());
    journal
        .enqueue_mkdir(&p("personal-files/projects"))
        .unwrap();
    journal
        .enqueue_mkdir(&p("personal-files/projects/empty"))
        .unwrap();
    let f = local_file(src.path(), "a", b"draft");
    journal
        .enqueue_upload(&p("personal-files/projects/draft.txt"), &f, None)
        .unwrap();
    journal
        .enqueue_rename(
            &p("personal-files/projects/draft.txt"),
            &p("personal-files/projects/final.txt"),
        )
        .unwrap();
    let hooks = Arc::new(Recorder::default());
    let uploader = start_uploader(&env.client, &journal, &hooks);
    let stats = drain(&uploader).await;
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    let dir = env.personal_dir().join("projects");
    assert_eq!(names_in(&dir), vec!["empty", "final.txt"]);
    assert!(dir.join("empty").is_dir());
    assert_eq!(std::fs::read(dir.join("final.txt")).unwrap(), b"draft");
    let events = hooks.events();
    let pos = |s: &str| events.iter().position(|e| e == s).unwrap();
    assert!(
        pos("uploaded personal-files/projects") < pos("uploaded personal-files/projects/draft.txt")
    );
    assert!(
        pos("uploaded personal-files/projects/draft.txt")
            < pos("uploaded personal-files/projects/final.txt")
    );
}

#[tokio::test]
async fn a_crash_mid_upload_ends_with_one_upload_and_no_leftover() {
    let env = start().await;
    let state = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let data = pattern(21 * 1024 * 1024); // multipart: three parts
    let path = p("personal-files/big.bin");
    let multipart_dir = env.dir.path().join(".cells-testserver").join("multipart");
    env.server.set_faults(cells_testserver::Faults {
        bandwidth_bytes_per_sec: 4 * 1024 * 1024,
        ..Default::default()
    });
    {
        let journal = open_journal(state.path());
        journal
            .enqueue_upload(&path, &local_file(src.path(), "big", &data), None)
            .unwrap();
        let uploader = start_uploader(&env.client, &journal, &Arc::new(Recorder::default()));
        wait_for(
            Duration::from_secs(30),
            "a multipart upload in progress",
            || {
                let dir = multipart_dir.clone();
                async move { (std::fs::read_dir(&dir).ok()?.count() > 0).then_some(()) }
            },
        )
        .await;
        // The crash: every task is dropped mid-transfer, nothing is told to the journal.
        uploader.shutdown().await;
    }
    env.server.set_faults(cells_testserver::Faults::default());
    let journal = open_journal(state.path());
    assert_eq!(journal.pending().len(), 1, "the upload is still journaled");
    let hooks = Arc::new(Recorder::default());
    let uploader = start_uploader(&env.client, &journal, &hooks);
    let stats = drain(&uploader).await;
    assert!(
        stats.errors.is_empty() && stats.conflicts.is_empty(),
        "{stats:?}"
    );
    assert_eq!(names_in(&env.personal_dir()), vec!["big.bin"]);
    assert!(std::fs::read(env.personal_dir().join("big.bin")).unwrap() == data);
    assert_eq!(hooks.events(), vec!["uploaded personal-files/big.bin"]);
    // No unfinished upload is left on the server.
    let leftover = std::fs::read_dir(&multipart_dir).unwrap().count();
    assert_eq!(leftover, 0, "multipart parts left on the server");
    use cells_mount::sync::InterruptedUploads;
    assert_eq!(env.client.abort_interrupted(&path).await.unwrap(), 0);
}

#[tokio::test]
async fn a_restart_after_the_upload_but_before_its_record_does_not_upload_again() {
    let env = start().await;
    let state = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let path = p("personal-files/once.txt");
    let journal = open_journal(state.path());
    let f = local_file(src.path(), "x", b"exactly once");
    journal.enqueue_upload(&path, &f, None).unwrap();
    // The upload happened, then the process died before the journal heard of it.
    let copy = local_file(src.path(), "copy", b"exactly once");
    env.client.upload_file(&path, &copy).await.unwrap();
    let hooks = Arc::new(Recorder::default());
    let uploader = start_uploader(&env.client, &journal, &hooks);
    let stats = drain(&uploader).await;
    assert!(stats.conflicts.is_empty(), "{:?}", stats.conflicts);
    assert_eq!(names_in(&env.personal_dir()), vec!["once.txt"]);
    assert_eq!(hooks.events(), vec!["uploaded personal-files/once.txt"]);
}

#[tokio::test]
async fn with_a_cache_the_new_version_is_dirty_until_uploaded() {
    let env = start().await;
    let state = tempfile::tempdir().unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let cache = Arc::new(
        cells_cache::Cache::open(cells_cache::CacheConfig::new(cache_dir.path(), 1 << 30)).unwrap(),
    );
    let journal =
        Arc::new(cells_mount::sync::Journal::open(state.path(), Some(cache.clone())).unwrap());
    let data = pattern(300_000);
    let f = local_file(src.path(), "f", &data);
    let queued = journal
        .enqueue_upload(&p("personal-files/cached.bin"), &f, None)
        .unwrap();
    assert!(queued.cached);
    assert!(!f.exists(), "the version was moved into the cache");
    assert_eq!(cache.usage().dirty_bytes, data.len() as u64);
    assert_eq!(
        cache.read(&queued.cache_key, 0, 10).unwrap().unwrap(),
        &data[..10]
    );
    let uploader = start_uploader(&env.client, &journal, &Arc::new(Recorder::default()));
    drain(&uploader).await;
    assert_eq!(cache.usage().dirty_bytes, 0, "clean once on the server");
    assert_eq!(
        std::fs::read(env.personal_dir().join("cached.bin")).unwrap(),
        data
    );
}

/// Journals `data` as a save of `personal-files/NAME` in a journal of `state` that is then
/// dropped, as by a crash; `then` sees the journal before.
fn save_in_an_earlier_run(
    state: &std::path::Path,
    src: &std::path::Path,
    name: &str,
    data: &[u8],
    then: impl FnOnce(&cells_mount::sync::Journal),
) {
    let journal = open_journal(state);
    journal
        .enqueue_upload(
            &p(&format!("personal-files/{name}")),
            &local_file(src, name, data),
            None,
        )
        .unwrap();
    then(&journal);
}

/// Closes are synced in the background, not at once: a power loss can leave the staged copy of
/// a save from an earlier run torn. It is checked before upload and never replaces the
/// server's version; it stays in the journal, in error.
#[tokio::test]
async fn a_staged_copy_damaged_before_a_restart_is_never_uploaded() {
    let env = start().await;
    let state = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let original = pattern(50_000);
    std::fs::write(env.personal_dir().join("kept.bin"), &original).unwrap();
    save_in_an_earlier_run(
        state.path(),
        src.path(),
        "kept.bin",
        &pattern(60_000),
        |_| {},
    );
    let staged: Vec<_> = std::fs::read_dir(state.path().join("staging"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(staged.len(), 1);
    // What a power loss before the data reached the disk leaves: the right size, zeros.
    std::fs::write(&staged[0], vec![0u8; 60_000]).unwrap();
    let journal = open_journal(state.path());
    let hooks = Arc::new(Recorder::default());
    let uploader = start_uploader(&env.client, &journal, &hooks);
    let stats = drain(&uploader).await;
    assert_eq!(stats.errors.len(), 1, "{:?}", stats.errors);
    assert!(stats.errors[0].1.contains("damaged"), "{:?}", stats.errors);
    assert_eq!(
        std::fs::read(env.personal_dir().join("kept.bin")).unwrap(),
        original,
        "the server's version is untouched"
    );
    assert!(staged[0].exists(), "the staged copy is kept for the user");
}

/// A save journaled in this run is uploaded as is (its copy cannot have been torn), and a
/// restart with a sound staged copy uploads it after checking it.
#[tokio::test]
async fn a_sound_staged_copy_from_an_earlier_run_is_uploaded() {
    let env = start().await;
    let state = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let data = pattern(70_000);
    save_in_an_earlier_run(state.path(), src.path(), "later.bin", &data, |journal| {
        assert!(journal.needs_sync());
        journal.sync().unwrap();
        assert!(!journal.needs_sync());
    });
    let journal = open_journal(state.path());
    let hooks = Arc::new(Recorder::default());
    let uploader = start_uploader(&env.client, &journal, &hooks);
    let stats = drain(&uploader).await;
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    assert_eq!(
        std::fs::read(env.personal_dir().join("later.bin")).unwrap(),
        data
    );
}
