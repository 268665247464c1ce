//! A test environment around the real `cells-mount` binary: a seeded `cells-testserver` in a
//! runtime of its own (restarted on the same address, so an outage is a stop and a start under
//! one URL), `cells-mount --foreground` as a child process (stopped cleanly, SIGKILLed, started
//! again), and a Cells client acting as another device. Everything is killed and lazily
//! unmounted on drop, so a failed test never leaves a mount behind.

use super::{is_mountpoint, wait_for};
use cells_mount::client::{CellsClient, ClientConfig, Secret};
use cells_mount::control::socket::{canonical_mountpoint, socket_path};
use cells_mount::names::RemotePath;
use cells_testserver::{ServerConfig, TestServer};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const TOKEN: &str = "alice-token";
pub const WORKSPACE: &str = "personal-files";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub rt: tokio::runtime::Runtime,
    server: Option<TestServer>,
    mount: Option<MountProcess>,
    /// Extra options for every mount of this environment (e.g. a small --cache-size).
    pub mount_args: Vec<String>,
    /// The server's address once started: a restart reuses it, so mounts keep their URL.
    addr: Option<std::net::SocketAddr>,
}

impl Env {
    /// A server whose alice/personal-files folder was filled by `seed` before it started.
    pub fn new(seed: impl FnOnce(&Path)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let personal = dir.path().join("data").join(WORKSPACE).join("alice");
        std::fs::create_dir_all(&personal).expect("mkdir data");
        seed(&personal);
        for d in ["mnt", "cache", "state"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("rt");
        let mut env = Self {
            dir,
            rt,
            server: None,
            mount: None,
            mount_args: Vec::new(),
            addr: None,
        };
        env.start_server();
        env
    }

    /// Where seeded files live on the server's disk.
    pub fn personal_dir(&self) -> PathBuf {
        self.dir.path().join("data").join(WORKSPACE).join("alice")
    }
    pub fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn server(&self) -> &TestServer {
        self.server.as_ref().expect("server running")
    }

    pub fn server_running(&self) -> bool {
        self.server.is_some()
    }

    pub fn is_mounted(&self) -> bool {
        self.mount.is_some()
    }

    /// Every mount's stderr, appended: it outlives the mount process, for failure reports.
    fn log_path(&self) -> PathBuf {
        self.dir.path().join("mount.log")
    }

    pub fn start_server(&mut self) {
        let mut cfg = ServerConfig::new(self.dir.path().join("data"));
        if let Some(addr) = self.addr {
            cfg.listen = addr;
        }
        let server = self
            .rt
            .block_on(TestServer::start(cfg))
            .expect("start test server");
        self.addr = Some(server.addr());
        self.server = Some(server);
    }

    pub fn stop_server(&mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.stop());
        }
    }

    /// A Cells client as alice, to change things "on the server" behind the mount's back.
    pub fn client(&self) -> CellsClient {
        let cfg =
            ClientConfig::new(&self.server().url(), Secret::new(TOKEN)).expect("client config");
        CellsClient::new(cfg).expect("client")
    }

    /// Starts `cells-mount --foreground` and waits until the mount and its control socket
    /// are live. With the server stopped, the mount still gets its address, so it reconnects
    /// when the server comes back.
    pub fn mount(&mut self) {
        let url = self.addr.map_or_else(
            || "http://127.0.0.1:9".to_string(),
            |a| format!("http://{a}"),
        );
        let m = MountProcess::start(
            &url,
            &self.mnt(),
            &self.cache_dir(),
            &self.state_dir(),
            &self.mount_args,
            &self.log_path(),
        );
        self.mount = Some(m);
    }

    /// Stops the mount process cleanly (SIGTERM) and waits until the folder is unmounted.
    pub fn unmount(&mut self) {
        if let Some(mut m) = self.mount.take() {
            m.terminate();
        }
    }

    /// Kills the mount process with SIGKILL, leaving a stale mount behind.
    pub fn kill_mount(&mut self) {
        if let Some(mut m) = self.mount.take() {
            m.kill_only();
        }
    }

    /// SIGKILL, then a lazy unmount of the dead mount (as a user's `fusermount -u` would).
    pub fn kill9(&mut self) {
        self.kill_mount();
        remove_dead_socket(&self.mnt());
        lazy_unmount(&self.mnt());
    }

    /// Waits until the mount process exits by itself (after `cells-mount unmount`); returns
    /// whether it exited cleanly.
    pub fn wait_mount_exit(&mut self) -> bool {
        let Some(mut m) = self.mount.take() else {
            return true;
        };
        let status = wait_for(
            "the mount process to exit",
            Duration::from_secs(120),
            || m.child.try_wait().ok().flatten(),
        );
        m.live = false;
        status.success()
    }

    /// The mount process's id (to kill it from another thread).
    pub fn mount_pid(&self) -> Option<u32> {
        self.mount.as_ref().map(|m| m.child.id())
    }

    pub fn mount_log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Uploads `data` as `rel` (relative to the workspace) through the Cells API, as another
    /// client would.
    pub fn server_upload(&self, rel: &str, data: &[u8]) {
        let local = self.dir.path().join("upload.tmp");
        std::fs::write(&local, data).expect("write upload source");
        self.rt
            .block_on(self.client().upload_file(&remote_path(rel), &local))
            .unwrap_or_else(|e| panic!("server-side upload of {rel}: {e}"));
    }
}

/// The Cells path of `rel` (slash-separated, relative to the mounted workspace).
pub fn remote_path(rel: &str) -> RemotePath {
    RemotePath::parse(&format!("{WORKSPACE}/{rel}")).expect("valid test path")
}

impl Drop for Env {
    fn drop(&mut self) {
        self.mount.take();
        // A killed mount cannot remove its control socket (outside the tempdir).
        remove_dead_socket(&self.mnt());
        // A stale mount left by a test that failed midway would make the tempdir undeletable.
        lazy_unmount(&self.mnt());
        self.stop_server();
    }
}

fn remove_dead_socket(mountpoint: &Path) {
    if let Ok(socket) = canonical_mountpoint(mountpoint).and_then(|m| socket_path(&m)) {
        let _ = std::fs::remove_file(socket);
    }
}

fn lazy_unmount(mountpoint: &Path) {
    let _ = Command::new("fusermount3")
        .arg("-uz")
        .arg(mountpoint)
        .stderr(Stdio::null())
        .status();
}

pub struct MountProcess {
    child: Child,
    mountpoint: PathBuf,
    live: bool,
    unmount_on_drop: bool,
}

impl MountProcess {
    pub fn start(
        url: &str,
        mnt: &Path,
        cache: &Path,
        state: &Path,
        extra: &[String],
        log: &Path,
    ) -> Self {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_cells-mount"))
            .arg("mount")
            .arg(mnt)
            .args(["--foreground", "--server", url, "--workspace", WORKSPACE])
            .arg("--cache-dir")
            .arg(cache)
            .arg("--state-dir")
            .arg(state)
            .args(extra)
            .env("CELLS_TOKEN", TOKEN)
            .env("CELLS_MOUNT_LOG", "cells_mount=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn cells-mount");
        let mut m = Self {
            child,
            mountpoint: mnt.to_owned(),
            live: true,
            unmount_on_drop: true,
        };
        let mnt_arg = mnt.to_str().expect("utf-8 temp path");
        wait_for("the mount to be live", Duration::from_secs(60), || {
            if let Ok(Some(status)) = m.child.try_wait() {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                panic!("cells-mount exited ({status}) before mounting:\n{log}");
            }
            // A stale mount from a killed process is a mount point too, but cannot be listed;
            // `status` answering means the control socket is up as well.
            (is_mountpoint(&m.mountpoint)
                && std::fs::read_dir(&m.mountpoint).is_ok()
                && cli(&["status", mnt_arg]).status.success())
            .then_some(())
        });
        m
    }

    fn terminate(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = wait_for(
            "cells-mount to exit after SIGTERM",
            Duration::from_secs(60),
            || self.child.try_wait().ok().flatten(),
        );
        assert!(
            status.success(),
            "cells-mount exited with {status} after SIGTERM"
        );
        assert!(
            !is_mountpoint(&self.mountpoint),
            "still mounted after a clean exit"
        );
        self.live = false;
    }

    /// SIGKILL, and leave the (now stale) mount for the next mount to repair.
    fn kill_only(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.live = false;
        self.unmount_on_drop = false;
    }
}

impl Drop for MountProcess {
    fn drop(&mut self) {
        if self.live {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if self.unmount_on_drop {
            lazy_unmount(&self.mountpoint);
        }
    }
}

/// Runs the `cells-mount` binary with `args` (status, unmount...).
pub fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cells-mount"))
        .args(args)
        .output()
        .expect("run cells-mount")
}

/// `cells-mount status MNT --json`, parsed.
pub fn status_json(mnt: &Path) -> serde_json::Value {
    let mnt = mnt.to_str().expect("utf-8 temp path");
    let o = cli(&["status", mnt, "--json"]);
    assert!(
        o.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("status --json output")
}
