//! The control server and client over a real Unix socket, with a real cache and journal.

use super::proto::{Command, MAX_REQUEST_LINE, Reply};
use super::*;
use crate::names::RemotePath;
use crate::sync::Journal;
use cells_cache::{Cache, CacheConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Connectivity the test sets: 0 = online, else offline since that many ms.
#[derive(Default)]
struct FakeLink(AtomicI64);

impl Connectivity for FakeLink {
    fn offline_since_ms(&self) -> Option<i64> {
        let v = self.0.load(Ordering::Acquire);
        (v != 0).then_some(v)
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    link: Arc<FakeLink>,
    journal: Arc<Journal>,
    server: Option<ControlServer>,
    unmounts: mpsc::Receiver<UnmountRequest>,
}

fn p(s: &str) -> RemotePath {
    RemotePath::parse(s).expect("path")
}

fn harness() -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    std::fs::write(mnt.join("plain.txt"), b"x").expect("write");
    std::fs::create_dir(mnt.join("sub")).expect("mkdir");
    let cache =
        Arc::new(Cache::open(CacheConfig::new(dir.path().join("cache"), 1 << 30)).expect("cache"));
    let journal = Arc::new(Journal::open(&dir.path().join("state"), None).expect("journal"));
    let link = Arc::new(FakeLink::default());
    let view = Arc::new(MountView {
        server: "https://cells.example".into(),
        workspace: Some("personal-files".into()),
        mountpoint: mnt,
        root: p("personal-files"),
        connectivity: link.clone(),
        cache,
        journal: Some(journal.clone()),
        pins: None,
    });
    let socket = dir.path().join("run/c.sock");
    let (tx, unmounts) = mpsc::channel(1);
    let server = ControlServer::start_at(&socket, view, tx).expect("start");
    Harness {
        _dir: dir,
        socket,
        link,
        journal,
        server: Some(server),
        unmounts,
    }
}

async fn raw_exchange(socket: &Path, request: &[u8]) -> String {
    let mut s = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect");
    s.write_all(request).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

#[tokio::test]
async fn status_reports_the_mount_and_flips_offline() {
    let h = harness();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&h.socket)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let dir_mode = std::fs::metadata(h.socket.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);

    let Reply::Status(s) = ControlClient::request(&h.socket, Command::Status)
        .await
        .unwrap()
    else {
        panic!("not a status")
    };
    assert!(s.online && s.offline_since.is_none());
    assert_eq!((s.pending_uploads, s.pending_ops), (0, 0));
    assert_eq!(s.cache_limit_bytes, 1 << 30);
    assert_eq!(s.workspace.as_deref(), Some("personal-files"));

    h.journal
        .enqueue_mkdir(&p("personal-files/new"))
        .expect("mkdir");
    h.link.0.store(1_700_000_000_000, Ordering::Release);
    let Reply::Status(s) = ControlClient::request(&h.socket, Command::Status)
        .await
        .unwrap()
    else {
        panic!("not a status")
    };
    assert!(!s.online);
    assert_eq!(s.offline_since.as_deref(), Some("2023-11-14T22:13:20Z"));
    assert_eq!(s.pending_ops, 1);
}

#[tokio::test]
async fn unknown_commands_and_oversized_lines_get_error_replies() {
    let h = harness();
    let out = raw_exchange(&h.socket, b"{\"v\":1,\"cmd\":\"reboot\"}\n").await;
    assert!(
        out.contains("\"type\":\"error\"") && out.contains("unknown command"),
        "{out}"
    );
    let mut huge = vec![b'a'; MAX_REQUEST_LINE + 10];
    huge.push(b'\n');
    let out = raw_exchange(&h.socket, &huge).await;
    assert!(out.contains("longer than"), "{out}");
    // The server still answers after bad requests.
    assert!(matches!(
        ControlClient::request(&h.socket, Command::Status).await,
        Ok(Reply::Status(_))
    ));
}

#[tokio::test]
async fn path_state_stays_inside_the_mount_and_reads_the_journal() {
    let h = harness();
    for bad in ["../etc/passwd", "/etc/passwd", "a/../../x", "sub/./x"] {
        let r = ControlClient::request(&h.socket, Command::PathState { path: bad.into() }).await;
        assert!(matches!(r, Err(ControlError::Refused(_))), "{bad}: {r:?}");
    }
    h.journal
        .enqueue_mkdir(&p("personal-files/sub"))
        .expect("mkdir");
    let r = ControlClient::request(&h.socket, Command::PathState { path: "sub".into() }).await;
    let Ok(Reply::PathState(state)) = r else {
        panic!("{r:?}")
    };
    assert_eq!(state.state, "pending");
    // A plain directory (no FUSE here): a file has no sync state attribute.
    let r = ControlClient::request(
        &h.socket,
        Command::PathState {
            path: "plain.txt".into(),
        },
    )
    .await;
    assert!(
        matches!(r, Err(ControlError::Refused(ref m)) if m.contains("no sync state")),
        "{r:?}"
    );
}

#[tokio::test]
async fn drain_streams_progress_until_only_errors_remain() {
    let h = harness();
    let first = h
        .journal
        .enqueue_mkdir(&p("personal-files/a"))
        .expect("mkdir");
    let second = h
        .journal
        .enqueue_mkdir(&p("personal-files/b"))
        .expect("mkdir");
    let mut c = ControlClient::connect(&h.socket).await.expect("connect");
    c.send(Command::Drain).await.expect("send");
    let Some(Reply::Progress(q)) = c.next().await.expect("reply") else {
        panic!("progress")
    };
    assert_eq!(q.pending_ops, 2);
    h.journal.complete(first).expect("complete");
    h.journal
        .defer(second, 60_000, "quota exceeded", true)
        .expect("defer");
    let last = loop {
        match c.next().await.expect("reply") {
            Some(Reply::Progress(_)) => continue,
            other => break other,
        }
    };
    let Some(Reply::Drained(q)) = last else {
        panic!("{last:?}")
    };
    assert_eq!(q.pending_ops, 1);
    assert_eq!(q.errors.len(), 1);
    assert_eq!(q.errors[0].reason, "quota exceeded");
}

#[tokio::test]
async fn unmount_is_forwarded_and_answered_when_finished() {
    let mut h = harness();
    let mut c = ControlClient::connect(&h.socket).await.expect("connect");
    c.send(Command::Unmount { force: true })
        .await
        .expect("send");
    let Some(Reply::Unmounting(_)) = c.next().await.expect("reply") else {
        panic!("unmounting")
    };
    assert_eq!(
        h.unmounts.recv().await,
        Some(UnmountRequest { force: true })
    );
    let server = h.server.take().expect("server");
    server.finish(Ok(())).await;
    assert_eq!(
        c.next().await.expect("reply"),
        Some(Reply::Unmounted { error: None })
    );
    assert!(!h.socket.exists(), "the socket is removed on finish");
}

#[tokio::test]
async fn a_stale_socket_is_replaced_and_a_live_one_refused() {
    let h = harness();
    let (tx, _rx) = mpsc::channel(1);
    let view = Arc::new(MountView {
        server: "s".into(),
        workspace: None,
        mountpoint: PathBuf::from("/"),
        root: RemotePath::root(),
        connectivity: h.link.clone(),
        cache: Arc::new(
            Cache::open(CacheConfig::new(h._dir.path().join("cache2"), 1 << 20)).expect("cache"),
        ),
        journal: None,
        pins: None,
    });
    let live = ControlServer::start_at(&h.socket, view.clone(), tx.clone());
    assert!(live.is_err_and(|e| e.contains("already serves")));

    // A socket file nobody listens on (a crashed mount).
    let stale = h._dir.path().join("run/stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    assert!(stale.exists());
    let server = ControlServer::start_at(&stale, view, tx).expect("replaces a stale socket");
    assert!(matches!(
        ControlClient::request(&stale, Command::Status).await,
        Ok(Reply::Status(_))
    ));
    drop(server);
    assert!(matches!(
        ControlClient::connect(&stale).await,
        Err(ControlError::NotRunning(_))
    ));
}
