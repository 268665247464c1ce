//! Tests of the metadata index against real SQLite files in a temporary directory.

use super::*;
use crate::client::HashKind;
use std::collections::HashSet;

fn file(name: &str, uuid: &str, hash: &str) -> StagedNode {
    StagedNode {
        name: name.into(),
        kind: NodeKind::File,
        size: 10,
        mtime: 1_700_000_000,
        version: Some(ContentVersion {
            kind: HashKind::CellsHash,
            value: hash.into(),
        }),
        uuid: Some(uuid.into()),
        read_only: false,
    }
}

fn folder(name: &str, uuid: &str) -> StagedNode {
    StagedNode {
        name: name.into(),
        kind: NodeKind::Folder,
        size: 0,
        mtime: 1_700_000_000,
        version: None,
        uuid: Some(uuid.into()),
        read_only: false,
    }
}

fn list(store: &MetaStore, parent: Ino, nodes: &[StagedNode]) -> Vec<MetaChange> {
    store.clear_stage(parent).unwrap();
    store.stage_page(parent, nodes).unwrap();
    store.commit_listing(parent, now_ms()).unwrap()
}

fn root() -> RemotePath {
    RemotePath::parse("ws").unwrap()
}

#[test]
fn inodes_survive_a_restart_and_are_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = {
        let store = MetaStore::open(dir.path(), &root()).unwrap();
        list(
            &store,
            ROOT_INO,
            &[file("a", "u1", "h1"), folder("b", "u2")],
        );
        let a = store.child(ROOT_INO, "a").unwrap().unwrap();
        let b = store.child(ROOT_INO, "b").unwrap().unwrap();
        assert_eq!(a.path.as_str(), "ws/a");
        assert!(store.get(ROOT_INO).unwrap().unwrap().listed_at.is_some());
        (a.ino, b.ino)
    };
    let store = MetaStore::open(dir.path(), &root()).unwrap();
    assert_eq!(store.child(ROOT_INO, "a").unwrap().unwrap().ino, a);
    // Removing `a` and adding `c` must not hand out `a`'s number again.
    let changes = list(
        &store,
        ROOT_INO,
        &[folder("b", "u2"), file("c", "u3", "h3")],
    );
    assert!(changes.contains(&MetaChange::EntryGone {
        parent: ROOT_INO,
        name: "a".into()
    }));
    let c = store.child(ROOT_INO, "c").unwrap().unwrap().ino;
    assert!(c > a && c > b);
    assert!(store.get(a).unwrap().is_none());
    assert_eq!(store.child_inos(ROOT_INO).unwrap(), vec![b, c]);
}

#[test]
fn renames_and_moves_keep_the_inode_by_uuid() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetaStore::open(dir.path(), &root()).unwrap();
    list(&store, ROOT_INO, &[folder("d", "ud"), file("x", "ux", "h")]);
    let d = store.child(ROOT_INO, "d").unwrap().unwrap().ino;
    list(&store, d, &[file("inner", "ui", "h2")]);
    let inner = store.child(d, "inner").unwrap().unwrap().ino;
    let x = store.child(ROOT_INO, "x").unwrap().unwrap().ino;
    // Rename inside the folder, and rename the folder: same inodes, descendants follow.
    let changes = list(&store, ROOT_INO, &[folder("e", "ud"), file("y", "ux", "h")]);
    assert_eq!(store.child(ROOT_INO, "y").unwrap().unwrap().ino, x);
    assert_eq!(store.child(ROOT_INO, "e").unwrap().unwrap().ino, d);
    assert_eq!(
        store.get(inner).unwrap().unwrap().path.as_str(),
        "ws/e/inner"
    );
    assert!(changes.contains(&MetaChange::EntryGone {
        parent: ROOT_INO,
        name: "x".into()
    }));
    assert!(changes.contains(&MetaChange::EntryAdded {
        parent: ROOT_INO,
        name: "y".into()
    }));
    // Swapping two names keeps both identities.
    list(
        &store,
        d,
        &[file("inner", "ui", "h2"), file("other", "uo", "h3")],
    );
    let other = store.child(d, "other").unwrap().unwrap().ino;
    list(
        &store,
        d,
        &[file("inner", "uo", "h3"), file("other", "ui", "h2")],
    );
    assert_eq!(store.child(d, "inner").unwrap().unwrap().ino, other);
    assert_eq!(store.child(d, "other").unwrap().unwrap().ino, inner);
    // Moved into another folder by an event: same inode, gone from the old folder.
    let (moved, _) = store.upsert_child(d, &file("y2", "ux", "h")).unwrap();
    assert_eq!(moved, x);
    assert!(store.child(ROOT_INO, "y").unwrap().is_none());
}

#[test]
fn content_changes_and_replacements_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetaStore::open(dir.path(), &root()).unwrap();
    list(
        &store,
        ROOT_INO,
        &[file("a", "u1", "h1"), file("b", "u2", "h2")],
    );
    let a = store.child(ROOT_INO, "a").unwrap().unwrap().ino;
    let b = store.child(ROOT_INO, "b").unwrap().unwrap().ino;
    let changes = list(
        &store,
        ROOT_INO,
        &[file("a", "u1", "h9"), folder("b", "u2")],
    );
    assert!(changes.contains(&MetaChange::Changed {
        ino: a,
        content: true
    }));
    // `b` became a folder: a new inode, the old one is gone.
    let nb = store.child(ROOT_INO, "b").unwrap().unwrap();
    assert_ne!(nb.ino, b);
    assert!(nb.is_dir());
    assert_eq!(
        store
            .get(a)
            .unwrap()
            .unwrap()
            .version
            .clone()
            .unwrap()
            .value,
        "h9",
        "the moka cache must not serve the old version"
    );
}

#[test]
fn removal_deletes_subtrees_and_staleness_is_tracked() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetaStore::open(dir.path(), &root()).unwrap();
    list(&store, ROOT_INO, &[folder("d", "ud")]);
    let d = store.child(ROOT_INO, "d").unwrap().unwrap().ino;
    list(&store, d, &[file("f", "uf", "h")]);
    let f = store.child(d, "f").unwrap().unwrap().ino;
    store.mark_stale(d).unwrap();
    assert_eq!(store.get(d).unwrap().unwrap().listed_at, Some(0));
    // A resync keeps every listing readable and only moves the staleness boundary past it.
    let root_listed = store.get(ROOT_INO).unwrap().unwrap().listed_at.unwrap();
    store.mark_all_stale();
    assert_eq!(
        store.get(ROOT_INO).unwrap().unwrap().listed_at,
        Some(root_listed)
    );
    assert!(store.stale_before_ms() > root_listed);
    store.remove(d).unwrap();
    assert!(store.get(d).unwrap().is_none());
    assert!(store.get(f).unwrap().is_none());
    assert_eq!(store.count().unwrap(), 1);
}

#[test]
fn a_different_root_resets_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let store = MetaStore::open(dir.path(), &root()).unwrap();
        list(&store, ROOT_INO, &[file("a", "u1", "h1")]);
        store.child(ROOT_INO, "a").unwrap().unwrap().ino
    };
    let other = RemotePath::parse("other-ws").unwrap();
    let store = MetaStore::open(dir.path(), &other).unwrap();
    assert!(store.child(ROOT_INO, "a").unwrap().is_none());
    assert_eq!(store.get(ROOT_INO).unwrap().unwrap().path, other);
    list(&store, ROOT_INO, &[file("a", "u1", "h1")]);
    assert!(store.child(ROOT_INO, "a").unwrap().unwrap().ino > first);
}

#[test]
fn a_big_listing_streams_in_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetaStore::open(dir.path(), &root()).unwrap();
    store.clear_stage(ROOT_INO).unwrap();
    for page in 0..20 {
        let nodes: Vec<_> = (0..500)
            .map(|i| {
                file(
                    &format!("f{:06}", page * 500 + i),
                    &format!("u{page}-{i}"),
                    "h",
                )
            })
            .collect();
        store.stage_page(ROOT_INO, &nodes).unwrap();
    }
    // Staged pages are invisible until the commit.
    assert!(store.child_inos(ROOT_INO).unwrap().is_empty());
    store.commit_listing(ROOT_INO, now_ms()).unwrap();
    let inos = store.child_inos(ROOT_INO).unwrap();
    assert_eq!(inos.len(), 10_000);
    assert_eq!(store.get(inos[0]).unwrap().unwrap().name, "f000000");
    // A readdir snapshot is the same list, and leaves every record cached.
    assert_eq!(store.snapshot_children(ROOT_INO).unwrap(), inos);
    assert_eq!(store.cached(inos[9_999]).unwrap().name, "f009999");
    assert_eq!(
        store.cached_child(ROOT_INO, "f000001").unwrap().ino,
        inos[1]
    );
}

#[test]
fn a_listing_keeps_what_the_server_described_after_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetaStore::open(dir.path(), &root()).unwrap();
    list(&store, ROOT_INO, &[file("a", "ua", "h1")]);
    // A listing starts; while its pages come in, an event adds `b` and changes `a`.
    let mut started = now_ms();
    while started <= store.get(ROOT_INO).unwrap().unwrap().listed_at.unwrap() {
        started = now_ms();
    }
    store.clear_stage(ROOT_INO).unwrap();
    store
        .stage_page(ROOT_INO, &[file("a", "ua", "h1")])
        .unwrap();
    while now_ms() <= started {
        std::thread::yield_now();
    }
    store.upsert_child(ROOT_INO, &file("b", "ub", "h")).unwrap();
    store
        .upsert_child(ROOT_INO, &file("a", "ua", "h2"))
        .unwrap();
    store.commit_listing(ROOT_INO, started).unwrap();
    assert!(
        store.child(ROOT_INO, "b").unwrap().is_some(),
        "the new child survives"
    );
    let a = store.child(ROOT_INO, "a").unwrap().unwrap();
    assert_eq!(
        a.version.as_ref().unwrap().value,
        "h2",
        "the newer description wins"
    );
    // The folder counts as listed when the listing started, not when it committed.
    assert_eq!(
        store.get(ROOT_INO).unwrap().unwrap().listed_at,
        Some(started)
    );
}

#[test]
fn an_unchanged_relisting_keeps_cached_records_and_refreshes_seen_at() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetaStore::open(dir.path(), &root()).unwrap();
    list(&store, ROOT_INO, &[file("a", "ua", "h1")]);
    let before = store.child(ROOT_INO, "a").unwrap().unwrap();
    while now_ms() <= before.seen_at {
        std::thread::yield_now();
    }
    assert!(list(&store, ROOT_INO, &[file("a", "ua", "h1")]).is_empty());
    let cached = store.cached(before.ino).expect("still cached");
    assert!(cached.seen_at > before.seen_at);
    // The same in SQLite: a fresh store reads the row from disk.
    drop(store);
    let store = MetaStore::open(dir.path(), &root()).unwrap();
    assert_eq!(
        store.get(before.ino).unwrap().unwrap().seen_at,
        cached.seen_at
    );
}

#[test]
fn applied_journal_ops_are_recorded_and_unknown_after_an_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = MetaStore::open(dir.path(), &root()).unwrap();
        assert_eq!(store.applied_journal_ops().unwrap(), Some(HashSet::new()));
        store.mark_journal_ops_applied(&[3, 5]).unwrap();
        store
            .forget_applied_journal_ops_except(&HashSet::from([5, 9]))
            .unwrap();
        assert_eq!(
            store.applied_journal_ops().unwrap(),
            Some(HashSet::from([5]))
        );
        // An index written before the record existed.
        store
            .conn()
            .execute_batch("DROP TABLE applied_ops")
            .unwrap();
    }
    let store = MetaStore::open(dir.path(), &root()).unwrap();
    assert_eq!(store.applied_journal_ops().unwrap(), None);
    store.mark_journal_ops_applied(&[7]).unwrap();
    assert_eq!(
        store.applied_journal_ops().unwrap(),
        Some(HashSet::from([7]))
    );
}

#[test]
fn a_settled_sweep_lifts_only_what_it_may() {
    let dir = tempfile::tempdir().unwrap();
    let store = MetaStore::open(dir.path(), &root()).unwrap();
    let names = ["a", "b", "c"];
    let nodes: Vec<_> = names
        .iter()
        .map(|n| file(n, &format!("u-{n}"), "h"))
        .collect();
    list(&store, ROOT_INO, &nodes);
    let ino = |name: &str| store.child(ROOT_INO, name).unwrap().unwrap().ino;
    let (a, b, c) = (ino("a"), ino("b"), ino("c"));
    for i in [a, b] {
        store
            .set_local_state(i, Some(LocalState::Pending), None)
            .unwrap();
    }
    store.delete_local(c, &[1]).unwrap();
    let state = |i: Ino| store.get(i).unwrap().unwrap().local;
    let stoned = || local::is_tombstoned(&store.conn(), ROOT_INO, "c").unwrap();
    let nothing = |_: &str| false;
    let since_ms = now_ms() + 1_000;
    let sweep =
        |only: Option<&[String]>, pending: &dyn Fn(&str) -> bool, keep: &dyn Fn(&str) -> bool| {
            let settled = Settled {
                pending,
                keep_stone: keep,
                since_ms,
                only,
            };
            store.clear_settled(&settled).unwrap()
        };

    // A report about ws/a lifts ws/a only.
    assert_eq!(
        sweep(Some(&["ws/a".to_owned()]), &nothing, &nothing),
        vec![a]
    );
    assert_eq!(state(a), None);
    assert_eq!(state(b), Some(LocalState::Pending));
    assert!(stoned());
    // A tombstone in its grace period stays, then goes.
    let c_path = ["ws/c".to_owned()];
    sweep(Some(&c_path), &nothing, &|p| p == "ws/c");
    assert!(stoned());
    sweep(Some(&c_path), &nothing, &nothing);
    assert!(!stoned());
    // The periodic sweep looks at everything, and leaves what is still queued.
    assert!(sweep(None, &|p| p == "ws/b", &nothing).is_empty());
    assert_eq!(state(b), Some(LocalState::Pending));
    assert_eq!(sweep(None, &nothing, &nothing), vec![b]);
    assert_eq!(state(b), None);
}
