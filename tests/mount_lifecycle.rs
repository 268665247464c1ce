//! The mount lifecycle through the real binary: argument errors, detaching, SIGTERM, the
//! `unmount` command, refusing a busy mountpoint or state directory, and repairing a stale
//! mount after kill -9.

mod common;

use common::mounted::{Env, TOKEN, WORKSPACE};
use common::{is_mountpoint, wait_for};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::time::Duration;

fn cells_mount<S: AsRef<std::ffi::OsStr>>(args: &[S], token: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cells-mount"));
    cmd.args(args)
        .env_remove("CELLS_TOKEN")
        .env_remove("CELLS_SERVER");
    if let Some(t) = token {
        cmd.env("CELLS_TOKEN", t);
    }
    cmd.output().expect("run cells-mount")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The command failed and its error message says `what`.
fn assert_fails_with(o: &Output, what: &str) {
    assert!(!o.status.success(), "expected a failure saying {what:?}");
    assert!(stderr(o).contains(what), "{}", stderr(o));
}

/// `mount MNT --server URL [--workspace WS] --cache-dir C --state-dir S` for `env`, detached.
fn detached_mount_args(env: &Env, workspace: Option<&str>) -> Vec<String> {
    let d = |p: std::path::PathBuf| p.to_string_lossy().into_owned();
    let mut args = vec!["mount".to_owned(), d(env.mnt()), "--server".to_owned()];
    args.push(env.server().url());
    if let Some(ws) = workspace {
        args.extend(["--workspace".to_owned(), ws.to_owned()]);
    }
    args.extend(["--cache-dir".to_owned(), d(env.cache_dir())]);
    args.extend(["--state-dir".to_owned(), d(env.state_dir())]);
    args
}

fn seed_hello(dir: &std::path::Path) {
    std::fs::write(dir.join("hello.txt"), b"hello from cells\n").expect("seed");
}

#[test]
fn bad_arguments_fail_clearly_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = |p: &str| dir.path().join(p).to_string_lossy().into_owned();
    std::fs::create_dir(dir.path().join("mnt")).expect("mkdir");

    let o = cells_mount(
        &["mount", &d("mnt"), "--cache-dir", &d("c")],
        Some("t0psecret"),
    );
    assert_fails_with(&o, "--server");

    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "t0psecret\n").expect("write");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let o = cells_mount(
        &[
            &d("mnt"),
            "--server",
            "http://127.0.0.1:9",
            "--token-file",
            &d("token"),
            "--cache-dir",
            &d("c"),
        ],
        None,
    );
    assert_fails_with(&o, "chmod 600");
    assert!(
        !stderr(&o).contains("t0psecret"),
        "the token leaked: {}",
        stderr(&o)
    );

    let o = cells_mount(
        &[
            &d("missing"),
            "--server",
            "http://127.0.0.1:9",
            "--cache-dir",
            &d("c"),
            "--state-dir",
            &d("s"),
        ],
        Some("t0psecret"),
    );
    assert_fails_with(&o, "does not exist");
    assert!(!stderr(&o).contains("t0psecret"));
    assert!(
        !dir.path().join("c").exists() && !dir.path().join("s").exists(),
        "bad input must change nothing"
    );

    let o = cells_mount(
        &[
            "mount",
            &d("mnt"),
            "--server",
            "http://x",
            "--cache-size",
            "ten",
        ],
        Some("t"),
    );
    assert_fails_with(&o, "--cache-size");

    let o = cells_mount(&["unmount", &d("mnt")], None);
    assert_fails_with(&o, "not mounted");
}

#[test]
fn sigterm_unmounts_cleanly_and_dirs_are_private() {
    if !common::fuse_available("sigterm_unmounts_cleanly") {
        return;
    }
    let mut env = Env::new(seed_hello);
    std::fs::remove_dir(env.cache_dir()).expect("rmdir");
    env.mount();
    assert_eq!(
        std::fs::read(env.mnt().join("hello.txt")).expect("read"),
        b"hello from cells\n"
    );
    let mode = std::fs::metadata(env.cache_dir())
        .expect("cache dir")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    env.unmount(); // asserts exit status 0 and the mount gone
}

#[test]
fn stale_mount_is_repaired_by_the_next_mount() {
    if !common::fuse_available("stale_mount_is_repaired_by_the_next_mount") {
        return;
    }
    let mut env = Env::new(seed_hello);
    env.mount();
    assert!(env.mnt().join("hello.txt").exists());
    env.kill_mount();
    let err = std::fs::read_dir(env.mnt()).expect_err("a dead FUSE mount cannot be listed");
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN));
    env.mount();
    assert_eq!(
        std::fs::read(env.mnt().join("hello.txt")).expect("read"),
        b"hello from cells\n"
    );
    env.unmount();
}

#[test]
fn detached_mount_returns_once_live_and_unmount_command_ends_it() {
    if !common::fuse_available("detached_mount_returns_once_live") {
        return;
    }
    let env = Env::new(seed_hello);
    let mnt = env.mnt().to_string_lossy().into_owned();
    let args = detached_mount_args(&env, Some(WORKSPACE));
    let o = cells_mount(&args, Some(TOKEN));
    assert!(o.status.success(), "detached mount failed: {}", stderr(&o));
    // The parent returned only once the child said the mount is live: no waiting needed.
    assert!(is_mountpoint(&env.mnt()));
    assert!(env.mnt().join("hello.txt").exists());

    let again = cells_mount(&args, Some(TOKEN));
    assert_fails_with(&again, "already a mount point");
    // A second mountpoint with the same state directory: refused, never sharing the journal.
    let other = tempfile::tempdir().expect("tempdir");
    let mut shared = args.clone();
    let idx = shared
        .iter()
        .position(|a| a == "--cache-dir")
        .expect("cache arg");
    shared[idx + 1] = other.path().join("cache").to_string_lossy().into_owned();
    shared[1] = other.path().join("mnt").to_string_lossy().into_owned();
    std::fs::create_dir(other.path().join("mnt")).expect("mkdir");
    let refused = cells_mount(&shared, Some(TOKEN));
    assert_fails_with(&refused, "in use by another cells-mount process");
    assert!(!is_mountpoint(&other.path().join("mnt")));

    let o = cells_mount(&["unmount", &mnt], None);
    assert!(o.status.success(), "unmount failed: {}", stderr(&o));
    assert!(!is_mountpoint(&env.mnt()));
    // The daemon notices the unmount and exits: its log says so.
    let log = env.state_dir().join("cells-mount.log");
    wait_for(
        "the daemon to log its exit",
        Duration::from_secs(10),
        || {
            std::fs::read_to_string(&log)
                .ok()
                .filter(|l| l.contains("unmounting"))
                .map(|_| ())
        },
    );
}

#[test]
fn detached_mount_reports_the_childs_error() {
    if !common::fuse_available("detached_mount_reports_the_childs_error") {
        return;
    }
    let env = Env::new(seed_hello);
    // The server is up but refuses this token: the detached child must fail, and the parent
    // must say why and exit non-zero, without echoing the token.
    let args = detached_mount_args(&env, Some(WORKSPACE));
    let o = cells_mount(&args, Some("secret-token-value"));
    assert!(!o.status.success(), "mount with a refused token succeeded");
    assert!(stderr(&o).contains("refused the token"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("secret-token-value"));
    assert!(!is_mountpoint(&env.mnt()));
}

#[test]
fn first_mount_against_an_unreachable_server_is_refused() {
    if !common::fuse_available("first_mount_against_an_unreachable_server_is_refused") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("mnt")).expect("mkdir");
    let d = |p: &str| dir.path().join(p).to_string_lossy().into_owned();
    // Nothing listens on port 9 and nothing was ever mounted from this state directory: an
    // empty offline mount would look like data loss, so the mount is refused with a reason.
    let o = cells_mount(
        &[
            "mount",
            &d("mnt"),
            "--server",
            "http://127.0.0.1:9",
            "--workspace",
            WORKSPACE,
            "--cache-dir",
            &d("c"),
            "--state-dir",
            &d("s"),
        ],
        Some("secret-token-value"),
    );
    assert!(!o.status.success(), "mount succeeded with nothing to show");
    assert!(stderr(&o).contains("never been mounted"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("secret-token-value"));
    assert!(!is_mountpoint(&dir.path().join("mnt")));
}

#[test]
fn without_a_workspace_the_root_lists_every_workspace() {
    if !common::fuse_available("without_a_workspace_the_root_lists_every_workspace") {
        return;
    }
    let env = Env::new(seed_hello);
    let mnt = env.mnt().to_string_lossy().into_owned();
    let args = detached_mount_args(&env, None);
    let o = cells_mount(&args, Some(TOKEN));
    assert!(
        o.status.success(),
        "mount of all workspaces failed: {}",
        stderr(&o)
    );
    let mut names: Vec<String> = std::fs::read_dir(env.mnt())
        .expect("list the root")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["common-files", "personal-files"]);
    let hello = std::fs::read(env.mnt().join("personal-files/hello.txt")).expect("read");
    assert_eq!(hello, b"hello from cells\n");
    let o = cells_mount(&["unmount", &mnt], None);
    assert!(o.status.success(), "unmount failed: {}", stderr(&o));
}
