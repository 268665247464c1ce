//! A bench for whole-system tests: a test server on a fixed loopback port (so an outage is a
//! stop and a start on the same URL), the real `cells-mount` binary as a child process we can
//! stop cleanly, SIGKILL and start again, and a Cells client acting as another user's device.
#![allow(dead_code)] // each test binary uses a different subset

use super::common::{is_mountpoint, wait_for};
use cells_mount::client::{CellsClient, ClientConfig, Secret};
use cells_mount::control::socket::{canonical_mountpoint, socket_path};
use cells_mount::names::RemotePath;
use cells_testserver::{ServerConfig, TestServer};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub const TOKEN: &str = "alice-token";
pub const WORKSPACE: &str = "personal-files";

pub struct Bench {
    pub dir: tempfile::TempDir,
    pub rt: tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
    server: Option<TestServer>,
    mount: Option<Child>,
    /// Extra `mount` options.
    pub mount_args: Vec<String>,
}

impl Bench {
    /// A running server whose alice/personal-files folder was filled by `seed`; not mounted.
    pub fn new(seed: impl FnOnce(&Path)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let personal = dir.path().join("data").join(WORKSPACE).join("alice");
        std::fs::create_dir_all(&personal).expect("mkdir");
        seed(&personal);
        for d in ["mnt", "cache", "state"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("rt");
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port");
        let mut bench = Self {
            dir,
            rt,
            addr,
            server: None,
            mount: None,
            mount_args: Vec::new(),
        };
        bench.start_server();
        bench
    }

    pub fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }
    /// The server's disk copy of the mounted workspace.
    pub fn personal(&self) -> PathBuf {
        self.dir.path().join("data").join(WORKSPACE).join("alice")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("mount.log")
    }
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    pub fn server_running(&self) -> bool {
        self.server.is_some()
    }

    pub fn start_server(&mut self) {
        if self.server.is_some() {
            return;
        }
        let cfg = ServerConfig {
            listen: self.addr,
            ..ServerConfig::new(self.dir.path().join("data"))
        };
        // The port may linger for a moment after a stop.
        let rt = &self.rt;
        let server = wait_for("the test server to start", Duration::from_secs(20), || {
            rt.block_on(TestServer::start(ServerConfig {
                listen: cfg.listen,
                ..ServerConfig::new(cfg.data_dir.clone())
            }))
            .ok()
        });
        self.server = Some(server);
    }

    pub fn stop_server(&mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.stop());
        }
    }

    pub fn is_mounted(&self) -> bool {
        self.mount.is_some()
    }

    /// Starts `cells-mount --foreground` and waits for the mount and its control socket.
    pub fn mount(&mut self) {
        assert!(self.mount.is_none(), "already mounted");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("log");
        let d = |p: &str| self.dir.path().join(p);
        let child = Command::new(env!("CARGO_BIN_EXE_cells-mount"))
            .arg("mount")
            .arg(self.mnt())
            .args(["--foreground", "--workspace", WORKSPACE])
            .args(["--server", &format!("http://{}", self.addr)])
            .arg("--cache-dir")
            .arg(d("cache"))
            .arg("--state-dir")
            .arg(d("state"))
            .args(&self.mount_args)
            .env("CELLS_TOKEN", TOKEN)
            .env("CELLS_MOUNT_LOG", "cells_mount=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn cells-mount");
        self.mount = Some(child);
        let mnt = self.mnt();
        wait_for(
            "the mount and its control socket",
            Duration::from_secs(30),
            || {
                if let Some(Ok(Some(status))) = self.mount.as_mut().map(Child::try_wait) {
                    panic!("mount exited ({status}):\n{}", self.log_text());
                }
                (is_mountpoint(&mnt)
                    && std::fs::read_dir(&mnt).is_ok()
                    && cli(&["status", path_str(&mnt)]).status.success())
                .then_some(())
            },
        );
    }

    /// SIGTERM, and wait for a clean exit and the unmount (pending uploads stay journaled).
    pub fn terminate(&mut self) {
        let Some(mut child) = self.mount.take() else {
            return;
        };
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = wait_for("cells-mount to exit", Duration::from_secs(30), || {
            child.try_wait().ok().flatten()
        });
        assert!(status.success(), "exit {status}:\n{}", self.log_text());
        assert!(!is_mountpoint(&self.mnt()), "still mounted after exit");
    }

    /// SIGKILL, then a lazy unmount of the dead mount (as a user's `fusermount -u` would).
    pub fn kill9(&mut self) {
        let Some(mut child) = self.mount.take() else {
            return;
        };
        let _ = child.kill();
        let _ = child.wait();
        self.cleanup_dead_mount();
    }

    fn cleanup_dead_mount(&self) {
        if let Ok(socket) = canonical_mountpoint(&self.mnt()).and_then(|m| socket_path(&m)) {
            let _ = std::fs::remove_file(socket);
        }
        let _ = Command::new("fusermount3")
            .arg("-uz")
            .arg(self.mnt())
            .stderr(Stdio::null())
            .status();
    }

    /// `cells-mount status MNT --json`.
    pub fn status_json(&self) -> serde_json::Value {
        let o = cli(&["status", path_str(&self.mnt()), "--json"]);
        assert!(o.status.success(), "{}", text(&o));
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
    }

    /// A Cells client as alice: another device changing things behind the mount's back.
    pub fn client(&self) -> CellsClient {
        let server = self.server.as_ref().expect("server running");
        let cfg = ClientConfig::new(&server.url(), Secret::new(TOKEN)).expect("client config");
        CellsClient::new(cfg).expect("client")
    }

    /// The Cells path of `rel` (slash-separated, relative to the mount root).
    pub fn remote_path(rel: &str) -> RemotePath {
        let mut p = RemotePath::root().join(WORKSPACE).expect("workspace");
        for part in rel.split('/').filter(|s| !s.is_empty()) {
            p = p.join(part).expect("valid name");
        }
        p
    }

    /// Uploads `data` as `rel` through the Cells API, as another client would.
    pub fn server_upload(&self, rel: &str, data: &[u8]) {
        let local = self.dir.path().join("upload.tmp");
        std::fs::write(&local, data).expect("write upload source");
        let client = self.client();
        let path = Self::remote_path(rel);
        self.rt
            .block_on(client.upload_file(&path, &local))
            .unwrap_or_else(|e| panic!("server-side upload of {rel}: {e}"));
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(mut child) = self.mount.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.cleanup_dead_mount();
        self.stop_server();
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

pub fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cells-mount"))
        .args(args)
        .output()
        .expect("run cells-mount")
}

pub fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
