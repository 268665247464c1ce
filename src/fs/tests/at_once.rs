//! The answers the core gives at once on the adapter's thread (`create_now`, `write_now`,
//! `flush_now`): given exactly when memory and local disk suffice, and then the same as the
//! async way's.

use super::writes::{ops, read_all, tree, writable};
use super::*;
use crate::sync::OpKind;

#[tokio::test]
async fn a_create_is_answered_at_once_only_in_a_listed_folder_and_for_a_free_name() {
    let w = writable(tree());
    let name = OsStr::new("new.txt");
    w.fs.getattr(ROOT_INO).await.unwrap();
    assert!(
        w.fs.create_now(ROOT_INO, name).is_none(),
        "an unlisted folder needs the server first"
    );
    w.fs.opendir(ROOT_INO).await.unwrap();
    let (entry, opened) =
        w.fs.create_now(ROOT_INO, name)
            .expect("a listed folder answers at once")
            .unwrap();
    let ino = entry.attr.ino;
    assert_eq!(entry.attr.size, 0);
    assert!(
        w.fs.create_now(ROOT_INO, name).is_none(),
        "an existing name is opened (or refused) the async way"
    );
    assert!(matches!(
        w.fs.create_now(ROOT_INO, OsStr::new("..")),
        Some(Err(_))
    ));
    assert_eq!(
        w.fs.lookup(ROOT_INO, name).await.unwrap().attr.ino,
        ino,
        "the index has the file"
    );

    // Writes in order, then one elsewhere: all at once, all in the content.
    assert_eq!(
        w.fs.write_now(ino, opened.fh, 0, b"hello ")
            .unwrap()
            .unwrap(),
        6
    );
    assert_eq!(
        w.fs.write_now(ino, opened.fh, 6, b"world")
            .unwrap()
            .unwrap(),
        5
    );
    assert_eq!(w.fs.write_now(ino, opened.fh, 0, b"H").unwrap().unwrap(), 1);
    assert!(
        w.fs.write_now(ino, 999_999, 0, b"x").is_none(),
        "unknown handle"
    );
    assert!(
        w.fs.write_now(ino + 1, opened.fh, 0, b"x").is_none(),
        "wrong inode"
    );
    assert_eq!(w.fs.getattr(ino).await.unwrap().attr.size, 11);

    w.fs.flush_now(ino, opened.fh).unwrap().unwrap();
    w.fs.release(ino, opened.fh).await;
    let pending = ops(&w);
    assert!(
        matches!(&pending[..], [OpKind::Upload { path, size: 11, .. }] if path.as_str() == "ws/new.txt"),
        "{pending:?}"
    );
    assert_eq!(read_all(&w, ino).await, b"Hello world");
}

#[tokio::test]
async fn a_write_after_a_save_goes_the_async_way_and_keeps_the_saved_version_intact() {
    let w = writable(tree());
    w.fs.opendir(ROOT_INO).await.unwrap();
    let (entry, opened) = w.fs.create_now(ROOT_INO, OsStr::new("f")).unwrap().unwrap();
    let ino = entry.attr.ino;
    w.fs.write_now(ino, opened.fh, 0, b"first")
        .unwrap()
        .unwrap();
    // fsync hands the staging file to the journal, which may keep it as its staged copy.
    w.fs.fsync(ino, opened.fh).await.unwrap();
    assert!(
        w.fs.write_now(ino, opened.fh, 0, b"second").is_none(),
        "a handed-over file is copied before it changes, off the adapter's thread"
    );
    w.fs.write(ino, opened.fh, 0, b"second").await.unwrap();
    assert_eq!(
        w.fs.write_now(ino, opened.fh, 6, b"!").unwrap().unwrap(),
        1,
        "the fresh copy takes writes at once again"
    );
    w.fs.flush_now(ino, opened.fh).unwrap().unwrap();
    w.fs.release(ino, opened.fh).await;
    assert_eq!(read_all(&w, ino).await, b"second!");
    let sizes: Vec<u64> = ops(&w)
        .iter()
        .filter_map(|op| match op {
            OpKind::Upload { size, .. } => Some(*size),
            _ => None,
        })
        .collect();
    assert_eq!(sizes.last(), Some(&7), "{sizes:?}");
}
