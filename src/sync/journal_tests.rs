//! Journal unit tests on real SQLite files in temporary folders.

use super::*;

fn p(s: &str) -> RemotePath {
    RemotePath::parse(s).unwrap()
}

fn file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let f = dir.join(name);
    std::fs::write(&f, data).unwrap();
    f
}

fn staged_files(state: &Path) -> usize {
    std::fs::read_dir(state.join("staging")).unwrap().count()
}

#[test]
fn pending_ops_survive_a_reopen_in_order() {
    let state = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    {
        let j = Journal::open(state.path(), None).unwrap();
        j.enqueue_mkdir(&p("ws/d")).unwrap();
        let up = j
            .enqueue_upload(&p("ws/d/a.txt"), &file(src.path(), "a", b"hello"), None)
            .unwrap();
        assert_eq!(up.size, 5);
        assert_eq!(up.cells_hash, crate::hash::cells_hash(b"hello"));
        assert_eq!(up.cache_key, format!("c{}", up.cells_hash));
        j.enqueue_rename(&p("ws/d/a.txt"), &p("ws/d/b.txt"))
            .unwrap();
        let base = ContentVersion {
            kind: HashKind::PlainMd5,
            value: "0".repeat(32),
        };
        j.enqueue_delete(&p("ws/old.txt"), Some(base)).unwrap();
        // Dropped without any shutdown, like a crash.
    }
    let j = Journal::open(state.path(), None).unwrap();
    let ops = j.pending();
    let labels: Vec<_> = ops.iter().map(|o| o.kind.label()).collect();
    assert_eq!(labels, vec!["mkdir", "upload", "rename", "delete"]);
    let OpKind::Upload { staging, .. } = &ops[1].kind else {
        panic!()
    };
    assert_eq!(std::fs::read(j.staging_path(staging)).unwrap(), b"hello");
    let OpKind::Delete { base, .. } = &ops[3].kind else {
        panic!()
    };
    assert_eq!(base.as_ref().unwrap().kind, HashKind::PlainMd5);
    let stats = j.stats();
    assert_eq!(
        (
            stats.pending_uploads,
            stats.pending_bytes,
            stats.pending_ops
        ),
        (1, 5, 4)
    );
}

#[test]
fn repeated_saves_coalesce_and_keep_their_place_in_line() {
    let state = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let j = Journal::open(state.path(), None).unwrap();
    let first = j
        .enqueue_upload(&p("ws/a.txt"), &file(src.path(), "1", b"v1"), None)
        .unwrap();
    j.enqueue_upload(&p("ws/b.txt"), &file(src.path(), "2", b"other"), None)
        .unwrap();
    let again = j
        .enqueue_upload(&p("ws/a.txt"), &file(src.path(), "3", b"v2!"), None)
        .unwrap();
    assert!(again.coalesced);
    assert_eq!(again.seq, first.seq);
    let ops = j.pending();
    assert_eq!(ops.len(), 2);
    assert_eq!(ops[0].seq, first.seq);
    let OpKind::Upload {
        size, cells_hash, ..
    } = &ops[0].kind
    else {
        panic!()
    };
    assert_eq!(
        (*size, cells_hash.as_str()),
        (3, crate::hash::cells_hash(b"v2!").as_str())
    );
    // The replaced version's staged copy is gone.
    assert_eq!(staged_files(state.path()), 2);
}

#[test]
fn a_save_after_a_later_rename_is_not_merged_into_the_earlier_one() {
    let state = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let j = Journal::open(state.path(), None).unwrap();
    j.enqueue_upload(&p("ws/a.txt"), &file(src.path(), "1", b"v1"), None)
        .unwrap();
    j.enqueue_rename(&p("ws/a.txt"), &p("ws/b.txt")).unwrap();
    let again = j
        .enqueue_upload(&p("ws/a.txt"), &file(src.path(), "2", b"v2"), None)
        .unwrap();
    assert!(!again.coalesced);
    assert_eq!(j.pending().len(), 3);
}

#[test]
fn an_in_flight_save_is_not_replaced() {
    let state = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let j = Journal::open(state.path(), None).unwrap();
    j.enqueue_upload(&p("ws/a.txt"), &file(src.path(), "1", b"v1"), None)
        .unwrap();
    let (claimed, _) = j.claim_ready(10);
    assert_eq!(claimed.len(), 1);
    let again = j
        .enqueue_upload(&p("ws/a.txt"), &file(src.path(), "2", b"v2"), None)
        .unwrap();
    assert!(!again.coalesced);
    // The second waits for the first.
    assert!(j.claim_ready(10).0.is_empty());
    j.complete(claimed[0].seq).unwrap();
    assert_eq!(j.claim_ready(10).0[0].seq, again.seq);
}

/// A kill after an upload started: its bytes may be on the server, so a later save (the
/// crash recovery of an edit made on top of it) queues behind it instead of replacing it.
#[test]
fn a_save_after_a_started_upload_is_not_merged_into_it() {
    let state = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let first = {
        let j = Journal::open(state.path(), None).unwrap();
        let first = j
            .enqueue_upload(&p("ws/a.txt"), &file(src.path(), "1", b"v1"), None)
            .unwrap();
        let (claimed, _) = j.claim_ready(10);
        j.mark_started(claimed[0].seq, &p("ws/a.txt")).unwrap();
        first
    };
    let j = Journal::open(state.path(), None).unwrap();
    let v1 = ContentVersion {
        kind: HashKind::CellsHash,
        value: first.cells_hash.clone(),
    };
    let again = j
        .enqueue_upload(
            &p("ws/a.txt"),
            &file(src.path(), "2", b"v2"),
            Some(v1.clone()),
        )
        .unwrap();
    assert!(!again.coalesced);
    let ops = j.pending();
    assert_eq!(ops.len(), 2, "{ops:?}");
    assert!(
        matches!(&ops[0].kind, OpKind::Upload { cells_hash, .. } if *cells_hash == first.cells_hash)
    );
    assert!(matches!(&ops[1].kind, OpKind::Upload { base: Some(b), .. } if *b == v1));
}

/// The save of a new file deleted before it left is dropped; the delete stays, as the
/// record a restart replays (the server answers it "not found").
#[test]
fn deleting_a_new_file_that_never_left_drops_its_save() {
    let state = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    {
        let j = Journal::open(state.path(), None).unwrap();
        j.enqueue_upload(&p("ws/tmp.txt"), &file(src.path(), "1", b"x"), None)
            .unwrap();
        j.enqueue_delete(&p("ws/tmp.txt"), None).unwrap();
        assert_eq!(staged_files(state.path()), 0);
    }
    let j = Journal::open(state.path(), None).unwrap();
    let ops: Vec<OpKind> = j.pending().into_iter().map(|o| o.kind).collect();
    assert!(
        matches!(&ops[..], [OpKind::Delete { base: None, .. }]),
        "{ops:?}"
    );
}

#[test]
fn retarget_moves_pending_ops_below_the_old_path() {
    let state = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    {
        let j = Journal::open(state.path(), None).unwrap();
        j.enqueue_upload(&p("ws/dir/a.txt"), &file(src.path(), "1", b"x"), None)
            .unwrap();
        j.enqueue_rename(&p("ws/dir/a.txt"), &p("ws/dir/b.txt"))
            .unwrap();
        j.enqueue_mkdir(&p("ws/dirt")).unwrap();
        assert_eq!(j.retarget(&p("ws/dir"), &p("ws/moved/dir2")).unwrap(), 2);
    }
    let j = Journal::open(state.path(), None).unwrap();
    let paths: Vec<Vec<String>> = j
        .pending()
        .iter()
        .map(|o| o.kind.paths().iter().map(|p| p.to_string()).collect())
        .collect();
    assert_eq!(
        paths,
        vec![
            vec!["ws/moved/dir2/a.txt".to_string()],
            vec!["ws/moved/dir2/a.txt".into(), "ws/moved/dir2/b.txt".into()],
            vec!["ws/dirt".into()],
        ]
    );
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let state = tempfile::tempdir().unwrap();
    let j = Journal::open(state.path(), None).unwrap();
    assert!(matches!(
        j.enqueue_mkdir(&p("ws")),
        Err(SyncError::Invalid(_))
    ));
    assert!(matches!(
        j.enqueue_rename(&p("ws/a"), &p("ws/a/b")),
        Err(SyncError::Invalid(_))
    ));
    let missing = state.path().join("nope");
    assert!(j.enqueue_upload(&p("ws/a"), &missing, None).is_err());
    assert!(j.enqueue_upload(&p("ws/a"), state.path(), None).is_err());
    assert!(j.pending().is_empty());
    assert_eq!(staged_files(state.path()), 0);
}

#[test]
fn failures_are_persisted_and_orphan_staging_files_are_collected() {
    let state = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    {
        let j = Journal::open(state.path(), None).unwrap();
        let up = j
            .enqueue_upload(&p("ws/a"), &file(src.path(), "1", b"x"), None)
            .unwrap();
        j.claim_ready(1);
        j.defer(up.seq, 1_000_000, "quota exceeded", true).unwrap();
        j.record_conflict(
            &p("ws/b.txt"),
            Some(&p("ws/b (conflict h 2024-01-01 000000).txt")),
        )
        .unwrap();
    }
    let orphan = state
        .path()
        .join("staging")
        .join(format!("{:032x}.data", 7));
    std::fs::write(&orphan, b"left by a crash").unwrap();
    let j = Journal::open(state.path(), None).unwrap();
    assert!(!orphan.exists());
    let stats = j.stats();
    assert_eq!(
        stats.errors,
        vec![("ws/a".to_string(), "quota exceeded".to_string())]
    );
    assert_eq!(stats.conflicts.len(), 1);
    assert!(j.drained());
    // Backing off: not claimable yet.
    assert!(j.claim_ready(1).0.is_empty());
    let id = j.conflicts().unwrap()[0].id;
    j.dismiss_conflict(id).unwrap();
    assert!(j.stats().conflicts.is_empty());
}

#[test]
fn only_an_edit_of_the_moved_version_follows_a_server_move() {
    let state = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let j = Journal::open(state.path(), None).unwrap();
    let v1 = ContentVersion {
        kind: HashKind::CellsHash,
        value: "1".repeat(32),
    };
    let v2 = ContentVersion {
        kind: HashKind::CellsHash,
        value: "2".repeat(32),
    };
    let edit = file(src.path(), "edit", b"edited");
    j.enqueue_upload(&p("ws/a.txt"), &edit, Some(v1.clone()))
        .unwrap();
    let fresh = file(src.path(), "fresh", b"new file");
    j.enqueue_upload(&p("ws/b.txt"), &fresh, None).unwrap();

    // Another version moved, or another file: nothing follows.
    assert_eq!(
        j.retarget_edit(&p("ws/a.txt"), &p("ws/c.txt"), &v2)
            .unwrap(),
        0
    );
    assert_eq!(
        j.retarget_edit(&p("ws/b.txt"), &p("ws/c.txt"), &v1)
            .unwrap(),
        0
    );
    // The moved version: the edit follows it.
    assert_eq!(
        j.retarget_edit(&p("ws/a.txt"), &p("ws/c.txt"), &v1)
            .unwrap(),
        1
    );
    let paths: Vec<String> = j
        .pending()
        .iter()
        .map(|op| op.kind.main_path().to_string())
        .collect();
    assert_eq!(paths, ["ws/c.txt", "ws/b.txt"]);
}

#[test]
fn a_save_queued_behind_a_running_upload_is_absorbed_when_that_upload_fails_unsent() {
    let state = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let j = Journal::open(state.path(), None).unwrap();
    let base = ContentVersion {
        kind: HashKind::CellsHash,
        value: "b".repeat(32),
    };
    let first = j
        .enqueue_upload(
            &p("ws/f.txt"),
            &file(src.path(), "1", b""),
            Some(base.clone()),
        )
        .unwrap();
    let (claimed, _) = j.claim_ready(4);
    assert_eq!(claimed.len(), 1);
    // Saved again while the first upload runs: no coalescing possible yet.
    let second = j
        .enqueue_upload(&p("ws/f.txt"), &file(src.path(), "2", b"content"), None)
        .unwrap();
    assert!(!second.coalesced);
    let stats = j.stats();
    assert_eq!(
        (stats.pending_ops, stats.pending_uploads),
        (2, 1),
        "one file, two rows"
    );
    assert_eq!(stats.pending_bytes, 7);

    // The running upload fails before sending anything (server unreachable).
    j.defer(first.seq, 0, "offline", false).unwrap();
    let ops = j.pending();
    assert_eq!(ops.len(), 1, "{ops:?}");
    let OpKind::Upload {
        cells_hash,
        base: b,
        ..
    } = &ops[0].kind
    else {
        panic!("{ops:?}")
    };
    assert_eq!(ops[0].seq, first.seq, "the entry keeps its place in line");
    assert_eq!(
        cells_hash, &second.cells_hash,
        "only the latest content goes up"
    );
    assert_eq!(
        b.as_ref(),
        Some(&base),
        "the base the edit started from is kept"
    );
    assert_eq!(
        staged_files(state.path()),
        1,
        "the superseded staged copy is gone"
    );
    // Survives a reopen.
    drop(j);
    let j = Journal::open(state.path(), None).unwrap();
    assert_eq!(j.pending().len(), 1);
}

/// A closed save still being handed over counts as pending (status must never say "nothing
/// pending" while it is) and holds back "drained" until it is journaled or dropped.
#[test]
fn an_announced_save_is_pending_until_its_guard_goes() {
    let state = tempfile::tempdir().unwrap();
    let j = Arc::new(Journal::open(state.path(), None).unwrap());
    assert!(j.drained());
    let incoming = j.announce_save(1234);
    let stats = j.stats();
    assert_eq!((stats.pending_uploads, stats.pending_bytes), (1, 1234));
    assert_eq!(stats.pending_ops, 1);
    assert!(!j.drained());
    drop(incoming);
    assert_eq!(j.stats().pending_uploads, 0);
    assert!(j.drained());
}
