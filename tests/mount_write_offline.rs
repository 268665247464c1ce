//! The write path through a real mount beyond the everyday: writes while the server is down
//! that go up by themselves once it is back, a 300 MiB file uploaded in parts whose server
//! hash equals the local Cells hash, and a git repository that stays sound across a remount.

mod common;

use cells_mount::names::RemotePath;
use common::mounted::{Env, cli, status_json};
use common::{fuse_available, pseudo_random, wait_for};
use std::io::Write;
use std::process::Command;
use std::time::Duration;

#[test]
fn writes_while_offline_upload_by_themselves_when_the_server_returns() {
    if !fuse_available("writes_while_offline_upload_by_themselves") {
        return;
    }
    let mut env = Env::new(|root| std::fs::write(root.join("seed.txt"), b"seed").expect("seed"));
    env.mount();
    let mnt = env.mnt();
    // Listed while online, so names can be created in it without the server.
    assert_eq!(std::fs::read_dir(&mnt).expect("list").count(), 1);
    // Read once, so its content is local: editing a file needs its current bytes.
    assert_eq!(std::fs::read(mnt.join("seed.txt")).unwrap(), b"seed");
    env.stop_server();
    let files: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| {
            (
                format!("offline-{i}.bin"),
                pseudo_random(150_000 * (i + 1), 40 + i as u64),
            )
        })
        .collect();
    for (name, data) in &files {
        std::fs::write(mnt.join(name), data).expect("write while offline");
    }
    std::fs::write(mnt.join("seed.txt"), b"seed, edited offline").expect("edit offline");
    assert!(!env.personal_dir().join("offline-0.bin").exists());
    assert!(status_json(&mnt)["pending_uploads"].as_u64() >= Some(5));

    env.start_server();
    wait_for(
        "the queue to drain by itself",
        Duration::from_secs(90),
        || {
            let s = status_json(&mnt);
            (s["pending_ops"] == 0 && s["online"] == true).then_some(())
        },
    );
    for (name, data) in &files {
        let on_server = std::fs::read(env.personal_dir().join(name)).expect("uploaded");
        assert!(on_server == *data, "{name} differs on the server");
    }
    assert_eq!(
        std::fs::read(env.personal_dir().join("seed.txt")).unwrap(),
        b"seed, edited offline"
    );
    assert!(
        status_json(&mnt)["conflicts"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    env.unmount();
}

#[test]
fn a_300_mib_file_uploads_in_parts_with_the_local_cells_hash() {
    if !fuse_available("a_300_mib_file_uploads_in_parts") {
        return;
    }
    let mut env = Env::new(|_| {});
    env.mount();
    let mnt = env.mnt();
    let local = env.dir.path().join("big.local");
    {
        let mut f = std::fs::File::create(mnt.join("big.bin")).expect("create");
        let mut copy = std::fs::File::create(&local).expect("local copy");
        for i in 0..300u64 {
            let block = pseudo_random(1 << 20, 1000 + i);
            f.write_all(&block).expect("write into the mount");
            copy.write_all(&block).expect("write the local copy");
        }
        f.sync_all().expect("fsync");
    }
    let want = cells_mount::hash::cells_hash_file(&local).expect("local hash");
    let o = cli(&["unmount", mnt.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(env.wait_mount_exit(), "{}", env.mount_log());
    let path = RemotePath::parse("personal-files/big.bin").unwrap();
    let node = env.rt.block_on(env.client().stat(&path)).expect("stat");
    assert_eq!(node.size, 300 << 20);
    let version = node.version.expect("the server reports a version");
    assert_eq!(
        version.value, want,
        "server x-cells-hash == local Cells hash"
    );
    let server_hash = cells_mount::hash::cells_hash_file(&env.personal_dir().join("big.bin"));
    assert_eq!(server_hash.expect("hash the server's copy"), want);
}

fn git(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.invalid",
        ])
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git")
}

#[test]
fn a_git_repository_in_the_mount_stays_sound_after_a_remount() {
    if !fuse_available("a_git_repository_in_the_mount") {
        return;
    }
    if Command::new("git").arg("--version").output().is_err() {
        eprintln!("\n!!! SKIPPING a_git_repository_in_the_mount: git is not installed !!!\n");
        return;
    }
    let mut env = Env::new(|_| {});
    env.mount();
    let repo = env.mnt().join("repo");
    std::fs::create_dir(&repo).expect("mkdir");
    let ok = |o: std::process::Output| {
        assert!(
            o.status.success(),
            "git: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    };
    ok(git(&repo, &["init"]));
    for i in 0..5 {
        std::fs::write(repo.join(format!("file{i}.txt")), format!("content {i}\n")).unwrap();
    }
    std::fs::write(repo.join("blob.bin"), pseudo_random(200_000, 9)).unwrap();
    ok(git(&repo, &["add", "."]));
    ok(git(&repo, &["commit", "-m", "first"]));
    std::fs::write(repo.join("file1.txt"), "changed\n").unwrap();
    ok(git(&repo, &["commit", "-am", "second"]));
    let o = cli(&["unmount", env.mnt().to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(env.wait_mount_exit(), "{}", env.mount_log());

    env.mount();
    let fsck = ok(git(&repo, &["fsck", "--full", "--strict"]));
    assert!(
        fsck.stderr.is_empty() || !String::from_utf8_lossy(&fsck.stderr).contains("error"),
        "{}",
        String::from_utf8_lossy(&fsck.stderr)
    );
    let log = ok(git(&repo, &["log", "--oneline"]));
    assert_eq!(String::from_utf8_lossy(&log.stdout).lines().count(), 2);
    let status = ok(git(&repo, &["status", "--porcelain"]));
    assert!(
        status.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    // The repository on the server is sound too.
    let on_server = env.personal_dir().join("repo");
    ok(git(&on_server, &["fsck", "--full", "--strict"]));
    env.unmount();
}
