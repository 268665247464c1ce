//! Conflicts and refusals against the real test server: nothing is silently overwritten or
//! dropped. Edit vs edit keeps both versions, edit vs remote delete re-creates the file, a
//! delete never removes a newer server version, and 423/422 leave the data queued in error.

mod client_support;
mod sync_support;

use cells_mount::client::ContentVersion;
use cells_mount::names::RemotePath;
use client_support::*;
use std::sync::Arc;
use std::time::Duration;
use sync_support::*;

/// A server with `doc.txt` = "original" in alice's personal files, and its current version.
async fn seeded() -> (Env, ContentVersion) {
    let env = start_with(|_, data| {
        let dir = data.join("personal-files").join("alice");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("doc.txt"), b"original").unwrap();
    })
    .await;
    let node = env.client.stat(&p("personal-files/doc.txt")).await.unwrap();
    (env, node.version.expect("seeded file has a version"))
}

async fn server_edit(env: &Env, path: &RemotePath, text: &[u8]) {
    let tmp = tempfile::tempdir().unwrap();
    env.client
        .upload_file(path, &local_file(tmp.path(), "edit", text))
        .await
        .unwrap();
}

#[tokio::test]
async fn edit_vs_edit_keeps_the_server_version_and_saves_ours_beside_it() {
    let (env, base) = seeded().await;
    let path = p("personal-files/doc.txt");
    server_edit(&env, &path, b"edited on the server").await;
    let state = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let journal = open_journal(state.path());
    journal
        .enqueue_upload(
            &path,
            &local_file(src.path(), "l", b"edited here"),
            Some(base),
        )
        .unwrap();
    let hooks = Arc::new(Recorder::default());
    let uploader = start_uploader(&env.client, &journal, &hooks);
    let stats = drain(&uploader).await;
    let dir = env.personal_dir();
    assert_eq!(
        std::fs::read(dir.join("doc.txt")).unwrap(),
        b"edited on the server"
    );
    let names = names_in(&dir);
    assert_eq!(names.len(), 2, "{names:?}");
    let copy = names.iter().find(|n| *n != "doc.txt").unwrap();
    assert!(
        copy.starts_with("doc (conflict testhost ") && copy.ends_with(").txt"),
        "{copy}"
    );
    assert_eq!(std::fs::read(dir.join(copy)).unwrap(), b"edited here");
    assert_eq!(stats.conflicts.len(), 1);
    assert!(stats.conflicts[0].contains(copy.as_str()));
    assert!(hooks.events().contains(&format!(
        "conflict personal-files/doc.txt -> personal-files/{copy}"
    )));
}

#[tokio::test]
async fn an_edit_survives_a_remote_delete() {
    let (env, base) = seeded().await;
    let path = p("personal-files/doc.txt");
    env.client.delete(&path).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let journal = open_journal(state.path());
    journal
        .enqueue_upload(
            &path,
            &local_file(src.path(), "l", b"still needed"),
            Some(base),
        )
        .unwrap();
    let uploader = start_uploader(&env.client, &journal, &Arc::new(Recorder::default()));
    let stats = drain(&uploader).await;
    // Recorded, so the user learns that the delete made elsewhere was undone.
    assert!(
        stats.errors.is_empty()
            && stats.conflicts.len() == 1
            && stats.conflicts[0].contains("deleted on the server"),
        "{stats:?}"
    );
    assert_eq!(
        std::fs::read(env.personal_dir().join("doc.txt")).unwrap(),
        b"still needed"
    );
}

#[tokio::test]
async fn a_local_delete_does_not_remove_a_newer_server_version() {
    let (env, base) = seeded().await;
    let path = p("personal-files/doc.txt");
    server_edit(&env, &path, b"newer").await;
    let state = tempfile::tempdir().unwrap();
    let journal = open_journal(state.path());
    journal.enqueue_delete(&path, Some(base.clone())).unwrap();
    let hooks = Arc::new(Recorder::default());
    let uploader = start_uploader(&env.client, &journal, &hooks);
    let stats = drain(&uploader).await;
    assert_eq!(
        std::fs::read(env.personal_dir().join("doc.txt")).unwrap(),
        b"newer"
    );
    assert_eq!(stats.conflicts.len(), 1);
    assert_eq!(hooks.events(), vec!["kept personal-files/doc.txt"]);
    // The unchanged version is deleted as asked.
    let current = env.client.stat(&path).await.unwrap().version;
    journal.enqueue_delete(&path, current).unwrap();
    drain(&uploader).await;
    assert!(!env.personal_dir().join("doc.txt").exists());
}

#[tokio::test]
async fn a_locked_file_stays_queued_in_error_and_goes_up_once_unlocked() {
    let (env, base) = seeded().await;
    env.server.lock("personal-files/doc.txt");
    let path = p("personal-files/doc.txt");
    let state = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let journal = open_journal(state.path());
    journal
        .enqueue_upload(&path, &local_file(src.path(), "l", b"mine"), Some(base))
        .unwrap();
    let hooks = Arc::new(Recorder::default());
    let uploader = start_uploader(&env.client, &journal, &hooks);
    let stats = drain(&uploader).await;
    assert_eq!(stats.errors.len(), 1, "{stats:?}");
    assert_eq!(stats.errors[0].0, "personal-files/doc.txt");
    assert!(
        stats.errors[0].1.contains("locked"),
        "{}",
        stats.errors[0].1
    );
    assert_eq!(stats.pending_uploads, 1, "the data is kept");
    assert_eq!(
        std::fs::read(env.personal_dir().join("doc.txt")).unwrap(),
        b"original"
    );
    env.server.unlock("personal-files/doc.txt");
    wait_for(
        Duration::from_secs(30),
        "the upload after unlocking",
        || {
            let j = journal.clone();
            async move { j.pending().is_empty().then_some(()) }
        },
    )
    .await;
    assert_eq!(
        std::fs::read(env.personal_dir().join("doc.txt")).unwrap(),
        b"mine"
    );
}

#[tokio::test]
async fn quota_exceeded_keeps_the_data_and_reports_the_reason() {
    let env = start().await;
    env.server.set_quota("alice", Some(100));
    let path = p("personal-files/large.bin");
    let state = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let journal = open_journal(state.path());
    let data = pattern(5000);
    journal
        .enqueue_upload(&path, &local_file(src.path(), "l", &data), None)
        .unwrap();
    let uploader = start_uploader(&env.client, &journal, &Arc::new(Recorder::default()));
    let stats = drain(&uploader).await;
    assert_eq!(stats.errors.len(), 1, "{stats:?}");
    assert!(stats.errors[0].1.contains("quota"), "{}", stats.errors[0].1);
    assert_eq!((stats.pending_uploads, stats.pending_bytes), (1, 5000));
    assert!(!env.personal_dir().join("large.bin").exists());
    env.server.set_quota("alice", None);
    wait_for(
        Duration::from_secs(30),
        "the upload after the quota is lifted",
        || {
            let j = journal.clone();
            async move { j.pending().is_empty().then_some(()) }
        },
    )
    .await;
    assert_eq!(
        std::fs::read(env.personal_dir().join("large.bin")).unwrap(),
        data
    );
}
