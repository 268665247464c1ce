//! What the server does shows through the mount: a change made through the Cells API is
//! visible within 2 s, and hostile names injected by the server never break the mount nor
//! escape it.

mod common;

use cells_mount::names::RemotePath;
use common::mounted::Env;
use common::wait_for;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn a_change_made_through_the_server_is_visible_within_two_seconds() {
    if !common::fuse_available("a_change_made_through_the_server_is_visible") {
        return;
    }
    let mut env = Env::new(|d| std::fs::write(d.join("note.txt"), b"version one").expect("seed"));
    env.mount();
    let mnt = env.mnt();
    assert_eq!(
        std::fs::read(mnt.join("note.txt")).expect("read"),
        b"version one"
    );
    assert!(!mnt.join("new.txt").exists());

    let local = env.dir.path().join("upload.txt");
    std::fs::write(&local, b"version two, longer").expect("write");
    let client = env.client();
    let started = Instant::now();
    env.rt.block_on(async {
        let note = RemotePath::parse("personal-files/note.txt").expect("path");
        let new = RemotePath::parse("personal-files/new.txt").expect("path");
        client
            .upload_file(&note, &local)
            .await
            .expect("upload note");
        client.upload_file(&new, &local).await.expect("upload new");
    });
    let uploaded = started.elapsed();
    wait_for(
        "the new content through the mount",
        Duration::from_secs(2),
        || (std::fs::read(mnt.join("note.txt")).ok()? == b"version two, longer").then_some(()),
    );
    wait_for(
        "the new file in the listing",
        Duration::from_secs(2),
        || {
            std::fs::read_dir(&mnt)
                .ok()?
                .flatten()
                .any(|e| e.file_name() == "new.txt")
                .then_some(())
        },
    );
    eprintln!(
        "uploads took {uploaded:?}; visible {:?} after they started",
        started.elapsed()
    );
    env.unmount();
}

#[test]
fn hostile_names_from_the_server_never_break_or_escape_the_mount() {
    if !common::fuse_available("hostile_names_from_the_server") {
        return;
    }
    let mut env = Env::new(|d| std::fs::write(d.join("good.txt"), b"fine").expect("seed"));
    let long = "x".repeat(300);
    let hostile = [
        "personal-files/../../../etc/passwd".to_string(),
        "personal-files/..".to_string(),
        "personal-files/.".to_string(),
        "personal-files/a\\..\\..\\b".to_string(),
        "personal-files/nul\u{0}byte".to_string(),
        "personal-files/line\nbreak".to_string(),
        format!("personal-files/{long}"),
        "personal-files/".to_string(),
        "/etc/shadow".to_string(),
        "personal-files/sub/deeper".to_string(),
    ];
    for (i, path) in hostile.iter().enumerate() {
        let kind = if i % 2 == 0 { "LEAF" } else { "COLLECTION" };
        env.server().inject_raw_child(
            "personal-files",
            json!({"Uuid": format!("evil-{i}"), "Path": path, "Type": kind, "Size": "4"}),
        );
    }
    env.mount();
    let mnt = env.mnt();
    let names: Vec<String> = std::fs::read_dir(&mnt)
        .expect("the listing must survive hostile names")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"good.txt".to_string()), "{names:?}");
    for n in &names {
        assert!(
            n != "." && n != ".." && !n.contains('/') && !n.contains('\0') && n.len() <= 255,
            "{n:?}"
        );
        assert!(
            !n.contains('\\') && !n.contains('\n'),
            "unsafe name served: {n:?}"
        );
    }
    assert_eq!(std::fs::read(mnt.join("good.txt")).expect("read"), b"fine");
    // Nothing landed outside the mount's own directories.
    for dir in [env.dir.path().to_owned(), env.dir.path().join("data")] {
        for e in std::fs::read_dir(&dir).expect("read").flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            assert!(
                !n.contains("passwd") && !n.contains("shadow") && !n.starts_with('x'),
                "{n}"
            );
        }
    }
    assert!(std::fs::metadata(mnt.join("..").join("passwd")).is_err());
    env.unmount();
}

#[test]
fn a_restarted_mount_lists_a_known_folder_at_once_then_shows_what_changed_meanwhile() {
    if !common::fuse_available("a_restarted_mount_lists_a_known_folder_at_once") {
        return;
    }
    let mut env = Env::new(|d| {
        std::fs::create_dir(d.join("docs")).expect("mkdir");
        std::fs::write(d.join("docs/a.txt"), b"a").expect("seed");
    });
    let names = |dir: &std::path::Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read_dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    env.mount();
    let docs = env.mnt().join("docs");
    assert_eq!(names(&docs), ["a.txt"]);
    env.unmount();
    env.server_upload("docs/b.txt", b"b");
    env.mount();
    // Every server request now takes 3 s: the earlier listing must not wait for one.
    env.server().set_faults(cells_testserver::Faults {
        latency_ms: 3000,
        ..Default::default()
    });
    let started = Instant::now();
    assert_eq!(names(&docs), ["a.txt"]);
    let answered = started.elapsed();
    assert!(
        answered < Duration::from_secs(2),
        "the known folder took {answered:?} to list"
    );
    wait_for("the refreshed listing", Duration::from_secs(20), || {
        (names(&docs) == ["a.txt", "b.txt"]).then_some(())
    });
    env.server().set_faults(cells_testserver::Faults::default());
    env.unmount();
}
