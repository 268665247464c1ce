//! The write path against the in-memory remote with a real journal, cache and index: local
//! content, shared staging, renames, deletes, and the overlay that listings must respect.

use super::*;
use crate::client::{HashKind, Node, NodeKind};
use crate::names::RemotePath;
use crate::sync::{Journal, OpKind, SyncHooks};

pub(super) struct Writable {
    _dir: tempfile::TempDir,
    pub remote: Arc<MemoryRemote>,
    pub fs: Arc<CellsFs<MemoryRemote>>,
    pub journal: Arc<Journal>,
}

pub(super) fn writable(remote: MemoryRemote) -> Writable {
    let dir = tempfile::tempdir().unwrap();
    let mut cache_cfg = CacheConfig::new(dir.path().join("cache"), 1 << 30);
    cache_cfg.chunk_size = CHUNK;
    let cache = Arc::new(Cache::open(cache_cfg).unwrap());
    let cfg = config();
    let root = CellsFs::<MemoryRemote>::root_path_for(&cfg).unwrap();
    let state = dir.path().join("state");
    let meta = MetaStore::open(&state, &root).unwrap();
    let remote = Arc::new(remote);
    let fs = CellsFs::new(cfg, remote.clone(), cache.clone(), meta).unwrap();
    let journal = Arc::new(Journal::open(&state, Some(cache)).unwrap());
    fs.enable_writes(journal.clone(), &state).unwrap();
    Writable {
        _dir: dir,
        remote,
        fs,
        journal,
    }
}

pub(super) fn tree() -> MemoryRemote {
    let r = MemoryRemote::new();
    r.add_file("ws/a.txt", b"hello".to_vec());
    r.add_dir("ws/docs");
    r
}

const RW: i32 = libc::O_RDWR;

async fn lookup(w: &Writable, parent: Ino, name: &str) -> FsResult<Entry> {
    w.fs.lookup(parent, OsStr::new(name)).await
}

pub(super) async fn read_all(w: &Writable, ino: Ino) -> Vec<u8> {
    let o = w.fs.open(ino, 0, Caller::default()).await.unwrap();
    let data = w.fs.read(ino, o.fh, 0, 1 << 20).await.unwrap();
    w.fs.release(ino, o.fh).await;
    data.to_vec()
}

pub(super) fn ops(w: &Writable) -> Vec<OpKind> {
    w.journal.pending().into_iter().map(|o| o.kind).collect()
}

async fn relist(w: &Writable, ino: Ino) {
    w.fs.meta.mark_stale(ino).unwrap();
    w.fs.opendir(ino).await.unwrap();
}

#[tokio::test]
async fn create_write_read_back_and_journal_on_release() {
    let w = writable(tree());
    w.fs.getattr(ROOT_INO).await.unwrap();
    lookup(&w, ROOT_INO, "a.txt").await.unwrap();
    let (e, o) =
        w.fs.create(
            ROOT_INO,
            OsStr::new("new.txt"),
            0o644,
            RW,
            Caller::default(),
        )
        .await
        .unwrap();
    let ino = e.attr.ino;
    assert_eq!(w.fs.write(ino, o.fh, 0, b"local first").await.unwrap(), 11);
    assert_eq!(w.fs.getattr(ino).await.unwrap().attr.size, 11);
    assert_eq!(&w.fs.read(ino, o.fh, 6, 100).await.unwrap()[..], b"first");
    assert!(ops(&w).is_empty(), "nothing is journaled before close");
    w.fs.flush(ino, o.fh).await.unwrap();
    w.fs.release(ino, o.fh).await;
    let pending = ops(&w);
    assert!(
        matches!(&pending[..], [OpKind::Upload { path, size: 11, base: None, .. }] if path.as_str() == "ws/new.txt"),
        "{pending:?}"
    );
    let rec = w.fs.meta.get(ino).unwrap().unwrap();
    assert_eq!(rec.version.as_ref().unwrap().kind, HashKind::CellsHash);
    assert_eq!(read_all(&w, ino).await, b"local first");
    let state =
        w.fs.getxattr(ino, OsStr::new("user.cells.state"))
            .await
            .unwrap();
    assert_eq!(state, b"pending");
}

/// A listing or lookup that read a file's record while the file was being closed must not
/// show the size from before the close (the kernel would then cut the file short).
#[tokio::test]
async fn a_record_read_during_a_close_shows_the_closed_size() {
    let w = writable(tree());
    w.fs.getattr(ROOT_INO).await.unwrap();
    let (e, o) =
        w.fs.create(ROOT_INO, OsStr::new("n"), 0o644, RW, Caller::default())
            .await
            .unwrap();
    let ino = e.attr.ino;
    w.fs.write(ino, o.fh, 0, b"606 bytes, say").await.unwrap();
    let closes_before = w.fs.write_closes();
    let read_before_close = w.fs.meta.get(ino).unwrap().unwrap();
    assert_eq!(
        read_before_close.size, 0,
        "the index learns the size at close"
    );
    w.fs.flush(ino, o.fh).await.unwrap();
    w.fs.release(ino, o.fh).await;
    let attr =
        w.fs.current_attr(read_before_close.clone(), closes_before)
            .await
            .unwrap();
    assert_eq!(attr.size, 14);
}

#[tokio::test]
async fn existing_content_is_copied_in_truncate_and_handles_share_one_file() {
    let w = writable(tree());
    let a = lookup(&w, ROOT_INO, "a.txt").await.unwrap().attr.ino;
    let o1 = w.fs.open(a, RW, Caller::default()).await.unwrap();
    let o2 = w.fs.open(a, 0, Caller::default()).await.unwrap();
    w.fs.write(a, o1.fh, 5, b", world").await.unwrap();
    assert_eq!(
        &w.fs.read(a, o2.fh, 0, 100).await.unwrap()[..],
        b"hello, world"
    );
    let attr = SetAttr {
        size: Some(4),
        ..SetAttr::default()
    };
    assert_eq!(w.fs.setattr(a, attr).await.unwrap().attr.size, 4);
    assert_eq!(&w.fs.read(a, o2.fh, 0, 100).await.unwrap()[..], b"hell");
    w.fs.release(a, o1.fh).await;
    assert!(ops(&w).is_empty(), "another handle is still open");
    w.fs.release(a, o2.fh).await;
    let pending = ops(&w);
    let base = w.remote.node("ws/a.txt").unwrap().version;
    assert!(
        matches!(&pending[..], [OpKind::Upload { size: 4, base: b, .. }] if *b == base),
        "{pending:?}"
    );
    assert_eq!(read_all(&w, a).await, b"hell");
    let denied = SetAttr {
        uid: Some(4242),
        ..SetAttr::default()
    };
    assert!(matches!(
        w.fs.setattr(a, denied).await,
        Err(FsError::NotPermitted(_))
    ));
}

#[tokio::test]
async fn rename_over_an_existing_file_replaces_it_atomically() {
    let w = writable(tree());
    let a = lookup(&w, ROOT_INO, "a.txt").await.unwrap().attr.ino;
    let (e, o) =
        w.fs.create(
            ROOT_INO,
            OsStr::new("a.txt.tmp"),
            0o644,
            RW,
            Caller::default(),
        )
        .await
        .unwrap();
    w.fs.write(e.attr.ino, o.fh, 0, b"saved").await.unwrap();
    w.fs.release(e.attr.ino, o.fh).await;
    let no_replace = RenameFlags {
        no_replace: true,
        ..RenameFlags::default()
    };
    let refused =
        w.fs.rename(
            ROOT_INO,
            OsStr::new("a.txt.tmp"),
            ROOT_INO,
            OsStr::new("a.txt"),
            no_replace,
        )
        .await;
    assert_eq!(refused, Err(FsError::Exists));
    w.fs.rename(
        ROOT_INO,
        OsStr::new("a.txt.tmp"),
        ROOT_INO,
        OsStr::new("a.txt"),
        RenameFlags::default(),
    )
    .await
    .unwrap();
    let now = lookup(&w, ROOT_INO, "a.txt").await.unwrap().attr.ino;
    assert_eq!(now, e.attr.ino);
    assert_ne!(now, a);
    assert_eq!(read_all(&w, now).await, b"saved");
    assert_eq!(
        lookup(&w, ROOT_INO, "a.txt.tmp").await.unwrap_err(),
        FsError::NotFound
    );
    let exchange = RenameFlags {
        exchange: true,
        ..RenameFlags::default()
    };
    let swapped =
        w.fs.rename(
            ROOT_INO,
            OsStr::new("a.txt"),
            ROOT_INO,
            OsStr::new("docs"),
            exchange,
        )
        .await;
    assert_eq!(swapped, Err(FsError::Unsupported));
    // The server still has the old a.txt: a listing keeps our version.
    relist(&w, ROOT_INO).await;
    assert_eq!(lookup(&w, ROOT_INO, "a.txt").await.unwrap().attr.ino, now);
    assert_eq!(read_all(&w, now).await, b"saved");
}

#[tokio::test]
async fn unlink_while_open_keeps_the_handle_and_listings_respect_tombstones() {
    let w = writable(tree());
    let a = lookup(&w, ROOT_INO, "a.txt").await.unwrap().attr.ino;
    let o = w.fs.open(a, RW, Caller::default()).await.unwrap();
    w.fs.unlink(ROOT_INO, OsStr::new("a.txt")).await.unwrap();
    assert_eq!(
        lookup(&w, ROOT_INO, "a.txt").await.unwrap_err(),
        FsError::NotFound
    );
    assert_eq!(&w.fs.read(a, o.fh, 0, 100).await.unwrap()[..], b"hello");
    w.fs.write(a, o.fh, 0, b"J").await.unwrap();
    w.fs.release(a, o.fh).await;
    // Only the delete is queued: content written to a deleted file goes with it.
    let pending = ops(&w);
    assert!(
        matches!(&pending[..], [OpKind::Delete { .. }]),
        "{pending:?}"
    );
    relist(&w, ROOT_INO).await;
    assert_eq!(
        lookup(&w, ROOT_INO, "a.txt").await.unwrap_err(),
        FsError::NotFound
    );
    // The server kept its newer version instead: the tombstone goes, the file comes back.
    let path = RemotePath::parse("/ws/a.txt").unwrap();
    let hooks = w.fs.sync_hooks();
    hooks.kept_remote(&path);
    complete_ops_on(&w, &path);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        relist(&w, ROOT_INO).await;
        if lookup(&w, ROOT_INO, "a.txt").await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "a.txt never came back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A new file made under a name the journal is still moving away, then deleted before its
/// save left: its content never goes to the server, and the name stays hidden until the
/// move is done (else a listing would show the server's copy the move is about to take
/// away).
#[tokio::test]
async fn a_new_file_deleted_under_a_name_still_being_moved_stays_hidden() {
    let w = writable(tree());
    lookup(&w, ROOT_INO, "a.txt").await.unwrap();
    let (a, b) = (OsStr::new("a.txt"), OsStr::new("b.txt"));
    let flags = RenameFlags::default();
    w.fs.rename(ROOT_INO, a, ROOT_INO, b, flags).await.unwrap();
    let (e, o) =
        w.fs.create(ROOT_INO, a, 0o644, RW, Caller::default())
            .await
            .unwrap();
    w.fs.write(e.attr.ino, o.fh, 0, b"short-lived")
        .await
        .unwrap();
    w.fs.release(e.attr.ino, o.fh).await;
    w.fs.unlink(ROOT_INO, a).await.unwrap();
    // The save is dropped; the delete stays (the server answers it "not found").
    let pending = ops(&w);
    assert!(
        matches!(
            &pending[..],
            [OpKind::Rename { .. }, OpKind::Delete { base: None, .. }]
        ),
        "{pending:?}"
    );
    relist(&w, ROOT_INO).await;
    assert_eq!(
        lookup(&w, ROOT_INO, "a.txt").await.unwrap_err(),
        FsError::NotFound
    );
}

/// A desktop junk file made here is found again by every lookup (the kernel forgets its
/// entry after a second; Finder reads its `.DS_Store` back), with no server request.
#[tokio::test]
async fn a_desktop_junk_file_made_here_is_found_again() {
    let w = writable(tree());
    lookup(&w, ROOT_INO, "a.txt").await.unwrap();
    let junk = OsStr::new(".DS_Store");
    let (e, o) =
        w.fs.create(ROOT_INO, junk, 0o644, RW, Caller::default())
            .await
            .unwrap();
    w.fs.release(e.attr.ino, o.fh).await;
    let lists = w.remote.lists();
    let found = w.fs.lookup(ROOT_INO, junk).await.unwrap();
    assert_eq!(found.attr.ino, e.attr.ino);
    // The FUSE thread's answer, when it gives one, agrees (`None` falls back to `lookup`).
    let now = w.fs.lookup_now(ROOT_INO, junk);
    assert!(
        now.as_ref()
            .is_none_or(|r| r.as_ref().is_ok_and(|n| n.attr.ino == e.attr.ino)),
        "{now:?}"
    );
    w.fs.meta.mark_stale(ROOT_INO).unwrap();
    assert_eq!(
        w.fs.lookup(ROOT_INO, junk).await.unwrap().attr.ino,
        e.attr.ino
    );
    assert_eq!(w.remote.lists(), lists, "no listing for a junk name");
}

/// The uploader's side: the operations on `path` leave the journal.
fn complete_ops_on(w: &Writable, path: &RemotePath) {
    for op in w.journal.pending() {
        if op.kind.paths().contains(&path) {
            w.journal.complete(op.seq).unwrap();
        }
    }
}

#[tokio::test]
async fn overlay_survives_relisting_and_hooks_clear_it() {
    let w = writable(tree());
    let docs = lookup(&w, ROOT_INO, "docs").await.unwrap().attr.ino;
    let sub =
        w.fs.mkdir(docs, OsStr::new("sub"), 0o755, Caller::default())
            .await
            .unwrap();
    let (e, o) =
        w.fs.create(
            sub.attr.ino,
            OsStr::new("n.txt"),
            0o644,
            RW,
            Caller::default(),
        )
        .await
        .unwrap();
    w.fs.write(e.attr.ino, o.fh, 0, b"x").await.unwrap();
    w.fs.release(e.attr.ino, o.fh).await;
    w.fs.rename(
        ROOT_INO,
        OsStr::new("a.txt"),
        docs,
        OsStr::new("moved.txt"),
        RenameFlags::default(),
    )
    .await
    .unwrap();
    relist(&w, ROOT_INO).await;
    relist(&w, docs).await;
    assert_eq!(
        lookup(&w, ROOT_INO, "a.txt").await.unwrap_err(),
        FsError::NotFound
    );
    assert!(lookup(&w, docs, "moved.txt").await.is_ok());
    assert_eq!(
        lookup(&w, docs, "sub").await.unwrap().attr.ino,
        sub.attr.ino
    );
    assert!(lookup(&w, sub.attr.ino, "n.txt").await.is_ok());
    // An upload error is shown on the node.
    let hooks = w.fs.sync_hooks();
    let n_path = RemotePath::parse("/ws/docs/sub/n.txt").unwrap();
    hooks.error(&n_path, "quota exceeded");
    let fs = w.fs.clone();
    let ino = e.attr.ino;
    wait_until("error state", || {
        fs.meta.get(ino).unwrap().unwrap().local_error.as_deref() == Some("quota exceeded")
    })
    .await;
    assert_eq!(
        w.fs.getxattr(ino, OsStr::new("user.cells.error"))
            .await
            .unwrap(),
        b"quota exceeded"
    );
    assert_eq!(
        w.fs.setxattr(ino, OsStr::new("user.cells.state"), b"x")
            .await,
        Err(FsError::NotPermitted(
            "user.cells.* attributes are maintained by cells-mount".into()
        ))
    );
    // The server got the file: the uploaded hook brings its description and lifts the overlay.
    w.remote.add_file("ws/docs/sub/n.txt", b"x".to_vec());
    let node: Node = w.remote.node("ws/docs/sub/n.txt").unwrap();
    assert!(
        w.journal.pending().len() >= 3,
        "mkdir, upload and rename are queued"
    );
    hooks.uploaded(&n_path, Some(&node));
    complete_ops_on(&w, &n_path);
    wait_until("overlay lifted", || {
        let rec = fs.meta.get(ino).unwrap().unwrap();
        rec.local.is_none() && rec.uuid == node.uuid
    })
    .await;
    assert_eq!(node.kind, NodeKind::File);
}
