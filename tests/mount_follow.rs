//! A file edited in the mount and moved on the server before the edit could be uploaded: the
//! edit follows the file to its new name, instead of re-creating the old name beside it.

mod common;

use cells_mount::names::RemotePath;
use common::mounted::{Env, status_json};
use common::{fuse_available, wait_for};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const OLD: &[u8] = b"the version both sides started from\n";
const OURS: &[u8] = b"edited in the mount\n";

fn remote(rel: &str) -> RemotePath {
    RemotePath::parse(&format!("personal-files/{rel}")).unwrap()
}

#[test]
fn a_pending_edit_follows_a_move_made_on_the_server() {
    if !fuse_available("a_pending_edit_follows_a_move_made_on_the_server") {
        return;
    }
    let mut env = Env::new(|root| std::fs::write(root.join("doc.txt"), OLD).expect("seed"));
    env.mount();
    let mnt = env.mnt();
    assert_eq!(std::fs::read(mnt.join("doc.txt")).unwrap(), OLD);

    // Hold the upload back: the server refuses writes to the locked file (423), which leaves
    // the edit queued in the error state with a long backoff.
    env.server().lock("personal-files/doc.txt");
    std::fs::write(mnt.join("doc.txt"), OURS).unwrap();
    wait_for("the locked upload to be reported", WAIT, || {
        let s = status_json(&mnt);
        (s["errors"].as_array().is_some_and(|e| !e.is_empty())).then_some(())
    });

    // Someone else renames the file through the API; the mount hears of it on the feed.
    env.server().unlock("personal-files/doc.txt");
    env.rt
        .block_on(
            env.client()
                .rename(&remote("doc.txt"), &remote("moved.txt")),
        )
        .expect("rename through the API");

    let server = env.personal_dir();
    wait_for("the edit to reach the moved file", WAIT, || {
        (std::fs::read(server.join("moved.txt")).ok().as_deref() == Some(OURS)).then_some(())
    });
    wait_for("the queue to drain", WAIT, || {
        (status_json(&mnt)["pending_ops"] == 0).then_some(())
    });
    let mut names: Vec<String> = std::fs::read_dir(&server)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "recycle_bin")
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["moved.txt"],
        "the old name came back, or a copy appeared"
    );
    assert_eq!(std::fs::read(mnt.join("moved.txt")).unwrap(), OURS);
    assert!(
        !mnt.join("doc.txt").exists(),
        "the mount still shows the old name"
    );
    assert!(
        status_json(&mnt)["conflicts"]
            .as_array()
            .is_some_and(|c| c.is_empty())
    );
}
