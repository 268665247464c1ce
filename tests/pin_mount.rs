//! Offline pins through the real binary: `cells-mount pin`/`unpin`/`status` against a real
//! FUSE mount of the test server. Pinned content must stay readable with the server gone,
//! follow new files created on the server, survive a remount, and become evictable on unpin.

mod common;

use cells_mount::names::RemotePath;
use common::mounted::{Env, WORKSPACE};
use common::{fuse_available, pseudo_random, wait_for};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cells-mount"))
        .args(args)
        .output()
        .expect("run cells-mount")
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// The value of extended attribute `name`, `None` when absent.
fn xattr(path: &Path, name: &str) -> Option<String> {
    let p = std::ffi::CString::new(s(path)).expect("path");
    let n = std::ffi::CString::new(name).expect("name");
    let mut buf = [0u8; 256];
    // SAFETY: NUL-terminated strings; the buffer pointer and length match.
    let len = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| String::from_utf8_lossy(&buf[..len as usize]).into_owned())
}

fn status_json(env: &Env) -> serde_json::Value {
    let o = cli(&["status", s(&env.mnt()), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).expect("status JSON")
}

fn file_content(i: usize) -> Vec<u8> {
    pseudo_random(500 + i * 37, i as u64 + 1)
}

fn seed_docs(personal: &Path, files: usize) {
    let docs = personal.join("docs");
    std::fs::create_dir_all(docs.join("deep")).expect("mkdir");
    for i in 0..files {
        let dir = if i.is_multiple_of(10) {
            docs.join("deep")
        } else {
            docs.clone()
        };
        std::fs::write(dir.join(format!("f{i:03}.bin")), file_content(i)).expect("seed");
    }
}

fn doc_path(mnt: &Path, i: usize) -> std::path::PathBuf {
    let docs = mnt.join("docs");
    let dir = if i.is_multiple_of(10) {
        docs.join("deep")
    } else {
        docs
    };
    dir.join(format!("f{i:03}.bin"))
}

#[test]
fn a_pinned_folder_of_300_files_is_readable_with_the_server_stopped() {
    if !fuse_available("a_pinned_folder_of_300_files_is_readable_with_the_server_stopped") {
        return;
    }
    let mut env = Env::new(|p| seed_docs(p, 300));
    env.mount();
    let mnt = env.mnt();

    let o = cli(&["pin", s(&mnt.join("docs"))]);
    assert!(o.status.success(), "{}\n{}", text(&o), env.mount_log());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("300 files"),
        "{}",
        text(&o)
    );
    let status = status_json(&env);
    assert_eq!(status["pinned_files"], 300, "{status}");
    assert_eq!(status["pin_pending_files"], 0, "{status}");
    let bytes: u64 = (0..300).map(|i| file_content(i).len() as u64).sum();
    assert_eq!(status["pinned_bytes"], bytes, "{status}");
    let human = cli(&["status", s(&mnt)]);
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("300 files"),
        "{}",
        text(&human)
    );

    let sample = doc_path(&mnt, 7);
    assert_eq!(
        xattr(&sample, "user.cells.state").as_deref(),
        Some("pinned")
    );
    assert_eq!(xattr(&sample, "user.cells.pinned").as_deref(), Some("yes"));
    let path_state = cli(&["status", s(&sample)]);
    assert!(
        String::from_utf8_lossy(&path_state.stdout).contains("pinned"),
        "{}",
        text(&path_state)
    );

    env.stop_server();
    for i in 0..300 {
        let got = std::fs::read(doc_path(&mnt, i)).unwrap_or_else(|e| panic!("file {i}: {e}"));
        assert!(got == file_content(i), "file {i} differs");
    }
}

#[test]
fn a_file_created_on_the_server_inside_a_pin_is_fetched_unread() {
    if !fuse_available("a_file_created_on_the_server_inside_a_pin_is_fetched_unread") {
        return;
    }
    let mut env = Env::new(|p| seed_docs(p, 5));
    env.mount();
    let mnt = env.mnt();
    let o = cli(&["pin", s(&mnt.join("docs"))]);
    assert!(o.status.success(), "{}", text(&o));

    let local = env.dir.path().join("upload.bin");
    let data = pseudo_random(70_000, 99);
    std::fs::write(&local, &data).expect("write");
    let client = env.client();
    env.rt.block_on(async {
        let target = RemotePath::parse(&format!("{WORKSPACE}/docs/deep/later.bin")).expect("path");
        client.upload_file(&target, &local).await.expect("upload");
    });
    let later = mnt.join("docs/deep/later.bin");
    // Only attributes are read: the content must arrive without anyone reading it.
    wait_for(
        "the new file pinned and cached",
        Duration::from_secs(20),
        || (xattr(&later, "user.cells.state").as_deref() == Some("pinned")).then_some(()),
    );
    assert_eq!(xattr(&later, "user.cells.pinned").as_deref(), Some("yes"));
    assert_eq!(status_json(&env)["pinned_files"], 6);
    env.stop_server();
    assert_eq!(std::fs::read(&later).expect("read offline"), data);
}

#[test]
fn pins_survive_a_remount_and_unpin_makes_content_evictable() {
    if !fuse_available("pins_survive_a_remount_and_unpin_makes_content_evictable") {
        return;
    }
    let size = 200 * 1024;
    let mut env = Env::new(|p| {
        for dir in ["keep", "other", "more"] {
            std::fs::create_dir_all(p.join(dir)).expect("mkdir");
        }
        for i in 0..2 {
            std::fs::write(p.join(format!("keep/k{i}")), pseudo_random(size, i)).expect("seed");
        }
        for i in 0..6 {
            // Distinct contents: the cache is content-addressed.
            let other = pseudo_random(size, 10 + i);
            std::fs::write(p.join(format!("other/o{i}")), other).expect("seed");
            let more = pseudo_random(size, 20 + i);
            std::fs::write(p.join(format!("more/m{i}")), more).expect("seed");
        }
    });
    env.mount_args = vec!["--cache-size".into(), "1M".into()];
    env.mount();
    let mnt = env.mnt();
    let o = cli(&["pin", s(&mnt.join("keep"))]);
    assert!(o.status.success(), "{}", text(&o));
    let not_pinned = cli(&["unpin", s(&mnt.join("other"))]);
    assert!(!not_pinned.status.success(), "{}", text(&not_pinned));
    assert!(
        String::from_utf8_lossy(&not_pinned.stderr).contains("not pinned"),
        "{}",
        text(&not_pinned)
    );

    env.unmount();
    env.mount();
    assert_eq!(status_json(&env)["pinned_files"], 2);
    let keep = [mnt.join("keep/k0"), mnt.join("keep/k1")];
    for k in &keep {
        assert_eq!(xattr(k, "user.cells.state").as_deref(), Some("pinned"));
    }
    // Reading more than the cache holds evicts unpinned content only.
    for i in 0..6 {
        std::fs::read(mnt.join(format!("other/o{i}"))).expect("read other");
    }
    for k in &keep {
        assert_eq!(xattr(k, "user.cells.state").as_deref(), Some("pinned"));
    }

    let o = cli(&["unpin", s(&mnt.join("keep"))]);
    assert!(o.status.success(), "{}", text(&o));
    for k in &keep {
        assert_eq!(xattr(k, "user.cells.state").as_deref(), Some("cached"));
        assert_eq!(xattr(k, "user.cells.pinned"), None);
    }
    assert_eq!(status_json(&env)["pinned_files"], 0);
    for i in 0..6 {
        std::fs::read(mnt.join(format!("more/m{i}"))).expect("read more");
    }
    for k in &keep {
        assert_eq!(
            xattr(k, "user.cells.state").as_deref(),
            Some("online-only"),
            "{} should have been evicted",
            k.display()
        );
    }
}
