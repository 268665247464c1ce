//! Conflicts through a real mount: the local change is made while the server is down and left
//! queued by a forced unmount, the other side changes the file through the Cells API, and the
//! remount's upload meets that change. Both versions must survive every time, visible on the
//! server and in the mount, with `user.cells.state` = `conflict` and a line in `status --json`.

mod common;

use cells_mount::names::RemotePath;
use common::mounted::{Env, cli, status_json};
use common::{fuse_available, wait_for};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const OLD: &[u8] = b"the version both sides started from\n";
const OURS: &[u8] = b"edited in the mount while offline\n";
const THEIRS: &[u8] = b"edited on the server meanwhile\n";

fn remote(rel: &str) -> RemotePath {
    RemotePath::parse(&format!("personal-files/{rel}")).unwrap()
}

/// File name -> content of every file directly in `dir` (the server's recycle bin aside).
fn files_in(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("list")
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap_or_default())
        })
        .collect()
}

/// `user.cells.state` of `path`, as the mount reports it.
fn cells_state(path: &Path) -> Option<String> {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let name = CString::new("user.cells.state").unwrap();
    let mut buf = [0u8; 256];
    // SAFETY: both strings are NUL-terminated and `buf` is writable for its length.
    let n = unsafe {
        libc::getxattr(
            c.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| String::from_utf8_lossy(&buf[..n as usize]).into_owned())
}

/// Mounts over a server holding `doc.txt` = OLD, lets the mount learn it, stops the server,
/// runs `local` in the mount, force-unmounts (the change stays queued), restarts the server,
/// runs `remote_change` through the API, remounts and waits until the queue is empty.
fn scenario(local: impl FnOnce(&Path), remote_change: impl FnOnce(&Env)) -> Env {
    let mut env = Env::new(|root| std::fs::write(root.join("doc.txt"), OLD).expect("seed"));
    env.mount();
    let mnt = env.mnt();
    assert_eq!(std::fs::read(mnt.join("doc.txt")).unwrap(), OLD);
    env.stop_server();
    local(&mnt);
    let o = cli(&["unmount", "--force", mnt.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(env.wait_mount_exit(), "{}", env.mount_log());
    env.start_server();
    remote_change(&env);
    env.mount();
    wait_for("the queue to drain", WAIT, || {
        let s = status_json(&env.mnt());
        (s["pending_ops"] == 0).then_some(())
    });
    env
}

fn upload_theirs(env: &Env, rel: &str) {
    let tmp = env.dir.path().join("theirs.tmp");
    std::fs::write(&tmp, THEIRS).unwrap();
    env.rt
        .block_on(env.client().upload_file(&remote(rel), &tmp))
        .expect("upload through the API");
}

/// The conflict on `rel` is shown by the mount and listed by `status --json`.
fn conflict_reported(env: &Env, rel: &str) {
    let path = env.mnt().join(rel);
    wait_for(&format!("{rel} marked as a conflict"), WAIT, || {
        (cells_state(&path).as_deref() == Some("conflict")).then_some(())
    });
    let s = status_json(&env.mnt());
    let listed = s["conflicts"].as_array().is_some_and(|c| {
        c.iter()
            .any(|l| l.as_str().is_some_and(|l| l.contains(rel)))
    });
    assert!(listed, "status --json lists no conflict on {rel}: {s}");
}

/// The mount shows exactly the server's files (names and contents), once refreshed.
fn mount_matches_server(env: &Env) {
    wait_for("the mount to show the server's files", WAIT, || {
        let server = files_in(&env.personal_dir());
        (files_in(&env.mnt()) == server).then_some(())
    });
}

fn conflict_copy_of<'a>(files: &'a BTreeMap<String, Vec<u8>>, stem: &str) -> Vec<&'a String> {
    files
        .keys()
        .filter(|n| n.starts_with(&format!("{stem} (conflict ")))
        .collect()
}

#[test]
fn edit_edit_keeps_both_versions() {
    if !fuse_available("edit_edit_keeps_both_versions") {
        return;
    }
    let env = scenario(
        |mnt| std::fs::write(mnt.join("doc.txt"), OURS).expect("local edit"),
        |env| upload_theirs(env, "doc.txt"),
    );
    let server = files_in(&env.personal_dir());
    assert_eq!(
        server["doc.txt"], THEIRS,
        "the server's edit keeps the name"
    );
    let copies = conflict_copy_of(&server, "doc");
    assert_eq!(copies.len(), 1, "{:?}", server.keys());
    assert!(copies[0].ends_with(".txt"));
    assert_eq!(server[copies[0]], OURS, "our edit is the conflict copy");
    assert_eq!(server.len(), 2, "{:?}", server.keys());
    mount_matches_server(&env);
    conflict_reported(&env, "doc.txt");
}

#[test]
fn edit_here_delete_there_keeps_the_edit() {
    if !fuse_available("edit_here_delete_there_keeps_the_edit") {
        return;
    }
    let env = scenario(
        |mnt| std::fs::write(mnt.join("doc.txt"), OURS).expect("local edit"),
        |env| {
            env.rt
                .block_on(env.client().delete(&remote("doc.txt")))
                .expect("delete through the API")
        },
    );
    let server = files_in(&env.personal_dir());
    assert_eq!(server.len(), 1, "{:?}", server.keys());
    assert_eq!(server["doc.txt"], OURS, "the edit is re-created");
    mount_matches_server(&env);
    conflict_reported(&env, "doc.txt");
}

#[test]
fn delete_here_edit_there_keeps_the_edit() {
    if !fuse_available("delete_here_edit_there_keeps_the_edit") {
        return;
    }
    let env = scenario(
        |mnt| std::fs::remove_file(mnt.join("doc.txt")).expect("local delete"),
        |env| upload_theirs(env, "doc.txt"),
    );
    let server = files_in(&env.personal_dir());
    assert_eq!(server.len(), 1, "{:?}", server.keys());
    assert_eq!(
        server["doc.txt"], THEIRS,
        "the newer server version is not deleted"
    );
    mount_matches_server(&env);
    conflict_reported(&env, "doc.txt");
}

#[test]
fn edit_and_rename_here_edit_there_keeps_both_versions() {
    if !fuse_available("edit_and_rename_here_edit_there_keeps_both_versions") {
        return;
    }
    let env = scenario(
        |mnt| {
            std::fs::write(mnt.join("doc.txt"), OURS).expect("local edit");
            std::fs::rename(mnt.join("doc.txt"), mnt.join("renamed.txt")).expect("local rename");
        },
        |env| upload_theirs(env, "doc.txt"),
    );
    let server = files_in(&env.personal_dir());
    let mut contents: Vec<&[u8]> = server.values().map(Vec::as_slice).collect();
    contents.sort();
    let mut want = vec![OURS, THEIRS];
    want.sort();
    assert_eq!(
        contents,
        want,
        "each version exactly once: {:?}",
        server.keys()
    );
    mount_matches_server(&env);
    let s = status_json(&env.mnt());
    assert!(
        s["conflicts"].as_array().is_some_and(|c| !c.is_empty()),
        "the conflict is listed: {s}"
    );
    let marked = server
        .keys()
        .any(|n| cells_state(&env.mnt().join(n)).as_deref() == Some("conflict"));
    assert!(marked, "one of {:?} is marked as a conflict", server.keys());
}
