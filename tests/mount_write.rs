//! The write path through the real binary and kernel, checked on the server's disk: editor
//! save patterns, truncate and rewrite, a copied tree, an extracted archive, and an SQLite
//! database that survives unmount and remount.

mod common;

use common::mounted::Env;
use common::{fuse_available, pseudo_random, wait_for};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const UPLOAD_WAIT: Duration = Duration::from_secs(60);

fn seed(root: &Path) {
    std::fs::write(root.join("notes.txt"), b"first version\n").expect("seed");
    std::fs::write(root.join("vim.txt"), b"old vim text\n").expect("seed");
}

/// Waits until the server's copy of `rel` holds `want`.
fn server_has(env: &Env, rel: &str, want: &[u8]) {
    let path = env.personal_dir().join(rel);
    wait_for(&format!("{rel} on the server"), UPLOAD_WAIT, || {
        (std::fs::read(&path).ok()? == want).then_some(())
    });
}

fn server_lacks(env: &Env, rel: &str) {
    let path = env.personal_dir().join(rel);
    wait_for(&format!("{rel} gone from the server"), UPLOAD_WAIT, || {
        (!path.exists()).then_some(())
    });
}

#[test]
fn editor_save_patterns_reach_the_server() {
    if !fuse_available("editor_save_patterns_reach_the_server") {
        return;
    }
    let mut env = Env::new(seed);
    env.mount();
    let mnt = env.mnt();

    // Safe save: write a temporary file, rename it over the original.
    std::fs::write(mnt.join(".notes.txt.swp"), b"second version\n").expect("write tmp");
    std::fs::rename(mnt.join(".notes.txt.swp"), mnt.join("notes.txt")).expect("rename over");
    assert_eq!(
        std::fs::read(mnt.join("notes.txt")).unwrap(),
        b"second version\n"
    );
    server_has(&env, "notes.txt", b"second version\n");
    server_lacks(&env, ".notes.txt.swp");

    // vim with backupcopy=no: original to `file~`, new `file`, `file~` removed.
    std::fs::rename(mnt.join("vim.txt"), mnt.join("vim.txt~")).expect("backup");
    std::fs::write(mnt.join("vim.txt"), b"new vim text\n").expect("write new");
    std::fs::remove_file(mnt.join("vim.txt~")).expect("drop backup");
    assert_eq!(
        std::fs::read(mnt.join("vim.txt")).unwrap(),
        b"new vim text\n"
    );
    server_has(&env, "vim.txt", b"new vim text\n");
    server_lacks(&env, "vim.txt~");

    // Truncate and rewrite in place.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(mnt.join("notes.txt"))
            .expect("open trunc");
        f.write_all(b"third").expect("rewrite");
    }
    server_has(&env, "notes.txt", b"third");

    // Junk files stay local.
    std::fs::write(mnt.join(".DS_Store"), b"junk").expect("junk");
    assert_eq!(std::fs::read(mnt.join(".DS_Store")).unwrap(), b"junk");
    server_has(&env, "notes.txt", b"third");
    assert!(!env.personal_dir().join(".DS_Store").exists());

    // Links are not supported, with a clear errno.
    let err = std::os::unix::fs::symlink("notes.txt", mnt.join("link")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTSUP));
    env.unmount();
}

#[test]
fn copied_tree_and_extracted_archive_reach_the_server() {
    if !fuse_available("copied_tree_and_extracted_archive_reach_the_server") {
        return;
    }
    let mut env = Env::new(|_| {});
    let src = env.dir.path().join("src-tree");
    for d in 0..10 {
        let dir = src.join(format!("d{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..50 {
            let n = d * 50 + f;
            std::fs::write(
                dir.join(format!("f{f}")),
                pseudo_random(n * 37 % 5000, n as u64 + 1),
            )
            .unwrap();
        }
    }
    env.mount();
    let mnt = env.mnt();
    let status = Command::new("cp")
        .arg("-r")
        .arg(&src)
        .arg(mnt.join("tree"))
        .status()
        .expect("cp");
    assert!(status.success());
    for d in 0..10 {
        for f in 0..50 {
            let n = d * 50 + f;
            let rel = format!("tree/d{d}/f{f}");
            assert_eq!(
                std::fs::read(mnt.join(&rel)).unwrap(),
                pseudo_random(n * 37 % 5000, n as u64 + 1)
            );
        }
    }
    server_has(&env, "tree/d9/f49", &pseudo_random(499 * 37 % 5000, 500));
    server_has(&env, "tree/d0/f0", &pseudo_random(0, 1));

    let archive = env.dir.path().join("a.tar");
    let tar = Command::new("tar")
        .arg("cf")
        .arg(&archive)
        .arg("-C")
        .arg(&src)
        .arg("d3")
        .status()
        .expect("tar c");
    assert!(tar.success());
    std::fs::create_dir(mnt.join("x")).expect("mkdir");
    let tar = Command::new("tar")
        .arg("xf")
        .arg(&archive)
        .arg("-C")
        .arg(mnt.join("x"))
        .status()
        .expect("tar x");
    assert!(tar.success());
    server_has(&env, "x/d3/f7", &pseudo_random(157 * 37 % 5000, 158));
    env.unmount();
}

#[test]
fn sqlite_database_survives_remount() {
    if !fuse_available("sqlite_database_survives_remount") {
        return;
    }
    let Ok(py) = Command::new("python3")
        .arg("-c")
        .arg("import sqlite3")
        .status()
    else {
        eprintln!("!!! SKIPPING sqlite_database_survives_remount: python3 is missing !!!");
        return;
    };
    assert!(py.success(), "python3 has no sqlite3 module");
    let mut env = Env::new(|_| {});
    env.mount();
    let db = env.mnt().join("app.db");
    let script = r#"
import sqlite3, sys, random
c = sqlite3.connect(sys.argv[1])
c.execute("create table t (id integer primary key, v blob)")
random.seed(7)
for i in range(200):
    c.execute("insert or replace into t values (?, ?)", (random.randrange(50), random.randbytes(random.randrange(1, 3000))))
    if i % 20 == 0:
        c.commit()
c.commit()
c.close()
"#;
    let ok = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&db)
        .status()
        .expect("python3");
    assert!(ok.success());
    env.unmount();
    env.mount();
    let check = Command::new("python3")
        .arg("-c")
        .arg("import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('pragma integrity_check').fetchone()[0])")
        .arg(&db)
        .output()
        .expect("python3");
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), "ok");
    let local = std::fs::read(&db).unwrap();
    server_has(&env, "app.db", &local);
    env.unmount();
}
