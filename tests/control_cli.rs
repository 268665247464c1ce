//! `cells-mount status` and `unmount` through the real binary, a real FUSE mount and the test
//! server (restarted on the same address, so it comes back under the same URL).

mod common;

use common::mounted::{Env, WORKSPACE, cli, status_json};
use common::{is_mountpoint, pseudo_random, wait_for};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A server seeded with `files` in alice's personal files.
fn env_with(files: &[(&str, &[u8])]) -> Env {
    Env::new(|dir| {
        for (name, data) in files {
            std::fs::write(dir.join(name), data).expect("seed");
        }
    })
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn status_of_a_folder_that_is_not_mounted_fails_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [vec!["status"], vec!["status", "--json"]] {
        let mut args = args;
        args.insert(1, path_str(dir.path()));
        let o = cli(&args);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(o.stdout.is_empty(), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("no cells-mount is running"),
            "{}",
            text(&o)
        );
    }
}

#[test]
fn status_reports_every_field_and_follows_the_server_going_away_and_back() {
    if !common::fuse_available("status_reports_every_field") {
        return;
    }
    let mut b = env_with(&[
        ("hello.txt", b"hello\n"),
        ("later.bin", &pseudo_random(50_000, 3)),
    ]);
    b.mount();
    let mnt = b.mnt();
    let s = status_json(&mnt);
    for field in [
        "pending_uploads",
        "pending_bytes",
        "in_flight",
        "cache_bytes",
        "cache_limit_bytes",
    ] {
        assert!(s[field].is_u64(), "{field} in {s}");
    }
    assert_eq!(s["online"], true, "{s}");
    assert!(s["offline_since"].is_null(), "{s}");
    assert!(s["conflicts"].is_array() && s["errors"].is_array(), "{s}");
    assert_eq!(s["workspace"], WORKSPACE);
    assert!(
        s["server"]
            .as_str()
            .is_some_and(|u| u.contains("127.0.0.1")),
        "{s}"
    );
    assert_eq!(
        s["mountpoint"].as_str(),
        Some(path_str(&mnt.canonicalize().unwrap()))
    );
    assert_eq!(s["cache_limit_bytes"], 10u64 << 30);
    let table = cli(&["status", path_str(&mnt)]);
    assert!(
        String::from_utf8_lossy(&table.stdout).contains("online"),
        "{}",
        text(&table)
    );

    // One path's state, as the xattr says.
    assert_eq!(
        std::fs::read(mnt.join("hello.txt")).expect("read"),
        b"hello\n"
    );
    let o = cli(&["status", path_str(&mnt.join("hello.txt")), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let p: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(p["state"], "cached", "{p}");

    b.stop_server();
    // A read that needs the server notices it is gone.
    assert!(std::fs::read(mnt.join("later.bin")).is_err());
    let s = wait_for("status to say offline", Duration::from_secs(20), || {
        let s = status_json(&mnt);
        (s["online"] == false).then_some(s)
    });
    assert!(
        s["offline_since"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{s}"
    );
    assert!(String::from_utf8_lossy(&cli(&["status", path_str(&mnt)]).stdout).contains("OFFLINE"));

    b.start_server();
    wait_for(
        "status to say online again",
        Duration::from_secs(60),
        || {
            let s = status_json(&mnt);
            (s["online"] == true && s["offline_since"].is_null()).then_some(())
        },
    );
}

#[test]
fn unmount_waits_for_the_uploads_then_the_mount_exits() {
    if !common::fuse_available("unmount_waits_for_the_uploads") {
        return;
    }
    let mut b = env_with(&[]);
    b.mount();
    let files: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| {
            (
                format!("new-{i}.bin"),
                pseudo_random(600_000 + i, i as u64 + 1),
            )
        })
        .collect();
    for (name, data) in &files {
        std::fs::write(b.mnt().join(name), data).expect("write into the mount");
    }
    let o = cli(&["unmount", path_str(&b.mnt())]);
    assert!(
        o.status.success(),
        "{}\nmount log:\n{}",
        text(&o),
        b.mount_log()
    );
    assert!(!is_mountpoint(&b.mnt()), "still mounted");
    assert!(
        b.wait_mount_exit(),
        "the mount process failed:\n{}",
        b.mount_log()
    );
    for (name, data) in &files {
        let on_server =
            std::fs::read(b.personal_dir().join(name)).expect("uploaded before unmount");
        assert!(on_server == *data, "{name} differs on the server");
    }
}

#[test]
fn forced_unmount_leaves_pending_uploads_for_the_next_mount() {
    if !common::fuse_available("forced_unmount_leaves_pending_uploads") {
        return;
    }
    let mut b = env_with(&[("seed.txt", b"seed")]);
    b.mount();
    // Listed while online, so creating names in it needs no server.
    assert_eq!(std::fs::read_dir(b.mnt()).expect("list").count(), 1);
    b.stop_server();
    let files: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| {
            (
                format!("offline-{i}.bin"),
                pseudo_random(300_000, 10 + i as u64),
            )
        })
        .collect();
    for (name, data) in &files {
        std::fs::write(b.mnt().join(name), data).expect("write while offline");
    }
    let o = cli(&["unmount", "--force", path_str(&b.mnt())]);
    assert!(
        o.status.success(),
        "{}\nmount log:\n{}",
        text(&o),
        b.mount_log()
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("3 files (")
            && out.contains("left pending; they will upload at the next mount"),
        "{}",
        text(&o)
    );
    assert!(
        b.wait_mount_exit(),
        "the mount process failed:\n{}",
        b.mount_log()
    );
    assert!(!b.personal_dir().join("offline-0.bin").exists());

    b.start_server();
    b.mount();
    for (name, data) in &files {
        let path = b.personal_dir().join(name);
        wait_for(
            "the pending upload after remount",
            Duration::from_secs(60),
            || std::fs::read(&path).ok().filter(|d| d == data).map(|_| ()),
        );
    }
    let o = cli(&["unmount", path_str(&b.mnt())]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn unmount_without_a_live_control_socket_falls_back_to_fusermount() {
    if !common::fuse_available("unmount_falls_back") {
        return;
    }
    let mut b = env_with(&[("seed.txt", b"seed")]);
    b.mount();
    // kill -9: a stale mount and a socket file nobody answers on.
    b.kill_mount();
    let o = cli(&["status", path_str(&b.mnt())]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no cells-mount process answers"),
        "{}",
        text(&o)
    );
    let o = cli(&["unmount", path_str(&b.mnt())]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("warning: cannot reach"),
        "{}",
        text(&o)
    );
    assert!(!is_mountpoint(&b.mnt()));
    // The dead socket is gone: the folder reads as not mounted, not as a crashed mount.
    let o = cli(&["status", path_str(&b.mnt())]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no cells-mount is running"),
        "{}",
        text(&o)
    );
}

#[test]
fn ctrl_c_during_the_wait_stops_waiting_and_keeps_the_mount() {
    if !common::fuse_available("ctrl_c_during_the_wait") {
        return;
    }
    let mut b = env_with(&[("seed.txt", b"seed")]);
    b.mount();
    assert_eq!(std::fs::read_dir(b.mnt()).expect("list").count(), 1);
    b.stop_server();
    std::fs::write(b.mnt().join("waiting.bin"), pseudo_random(200_000, 7)).expect("write");
    let err_path = b.dir.path().join("unmount.err");
    let mut waiting = Command::new(env!("CARGO_BIN_EXE_cells-mount"))
        .args(["unmount", path_str(&b.mnt())])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn unmount");
    wait_for("plain progress lines", Duration::from_secs(20), || {
        let err = std::fs::read_to_string(&err_path).unwrap_or_default();
        err.contains("uploading: 1 file (195.3 KiB) left")
            .then_some(())
    });
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(waiting.id() as i32, libc::SIGINT) };
    let status = wait_for("unmount to stop waiting", Duration::from_secs(10), || {
        waiting.try_wait().ok().flatten()
    });
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("still mounted"), "{err}");
    assert!(is_mountpoint(&b.mnt()));
    let s = status_json(&b.mnt());
    assert_eq!(s["pending_uploads"], 1, "{s}");
    assert_eq!(s["pending_bytes"], 200_000, "{s}");
}
