//! Helpers of the login and log tests: a test server with OIDC, a private HOME/XDG layout
//! per test, the real binary run in it, the login flow played by a test "browser", and the
//! saved secrets read back.
#![allow(dead_code)] // each test binary uses a different subset

use cells_mount::auth::{SecretStore, StoredCredential};
use cells_mount::config::SecretStoreKind;
use cells_testserver::{ServerConfig, TestServer};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const WORKSPACE: &str = "personal-files";

pub struct Home {
    pub dir: tempfile::TempDir,
    pub rt: tokio::runtime::Runtime,
    pub server: Option<TestServer>,
}

impl Home {
    /// A server (tokens living `ttl`, if given) whose alice/personal-files holds what `seed`
    /// wrote, and an empty private home.
    pub fn new(ttl: Option<Duration>, seed: impl FnOnce(&Path)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let personal = dir.path().join("data").join(WORKSPACE).join("alice");
        std::fs::create_dir_all(&personal).expect("mkdir");
        seed(&personal);
        for d in ["home", "config", "cache", "run", "mnt"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("rt");
        let mut cfg = ServerConfig::new(dir.path().join("data"));
        cfg.token_ttl = ttl;
        let server = rt.block_on(TestServer::start(cfg)).expect("server");
        Self {
            dir,
            rt,
            server: Some(server),
        }
    }

    pub fn url(&self) -> String {
        self.server.as_ref().expect("server").url()
    }
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    pub fn config_dir(&self) -> PathBuf {
        self.path("config").join("pydio").join("cells-mount")
    }

    /// The binary with this home's environment (file secret store, no inherited token).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cells-mount"));
        cmd.args(args)
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("XDG_CACHE_HOME", self.path("cache"))
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env("CELLS_MOUNT_SECRET_STORE", "file")
            .env_remove("CELLS_TOKEN")
            .env_remove("CELLS_SERVER")
            .env_remove("CELLS_MOUNT_LOG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run cells-mount")
    }

    /// `login URL --no-browser` with a test client as the browser: GET the authorize URL
    /// (no redirects followed), then GET the redirect on our callback listener. Returns the
    /// login's combined output.
    pub fn login_oidc(&self, extra: &[&str]) -> String {
        let url = self.url();
        let mut args = vec!["login", url.as_str(), "--no-browser"];
        args.extend_from_slice(extra);
        let mut child: Child = self
            .cmd(&args)
            .stdin(Stdio::piped()) // kept open: the login also reads pasted answers
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn login");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut printed = String::new();
        let authorize = loop {
            let mut line = String::new();
            assert!(
                stdout.read_line(&mut line).expect("read") > 0,
                "no URL printed: {printed}"
            );
            printed.push_str(&line);
            if line.starts_with("http") {
                break line.trim().to_owned();
            }
        };
        let http = browser();
        let page = self.rt.block_on(async {
            let resp = http.get(&authorize).send().await.expect("authorize");
            assert!(
                resp.status().is_redirection(),
                "authorize: {}",
                resp.status()
            );
            let location = resp.headers()["location"]
                .to_str()
                .expect("location")
                .to_owned();
            assert!(location.starts_with("http://localhost:36"), "{location}");
            let done = http.get(&location).send().await.expect("callback");
            assert_eq!(done.status().as_u16(), 200);
            done.text().await.expect("page")
        });
        assert!(page.contains("signed in"), "{page}");
        // What the reader already buffered, then the rest, up to the exit.
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).expect("stdout");
        let out = child.wait_with_output().expect("login exit");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "login failed: {printed}{rest}{err}");
        format!("{printed}{rest}{err}")
    }

    pub fn saved(&self, account: &str) -> StoredCredential {
        SecretStore::new(&self.config_dir())
            .load(account, SecretStoreKind::File)
            .expect("saved credential")
    }

    pub fn secrets_file(&self, account: &str) -> PathBuf {
        SecretStore::new(&self.config_dir()).file(account)
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3")
            .arg("-uz")
            .arg(self.path("mnt"))
            .stderr(Stdio::null())
            .status();
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.stop());
        }
    }
}

/// The refresh token of an OIDC credential.
pub fn refresh_token(c: &StoredCredential) -> String {
    match c {
        StoredCredential::Oidc { refresh_token, .. } => refresh_token.clone().expect("refresh"),
        other => panic!("not an OIDC credential: {other:?}"),
    }
}

pub fn access_token(c: &StoredCredential) -> String {
    match c {
        StoredCredential::Oidc { access_token, .. } => access_token.clone(),
        StoredCredential::Token { token } => token.clone(),
    }
}

pub fn wait_for<T>(what: &str, timeout: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn is_mountpoint(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(me), Some(parent)) = (std::fs::metadata(path), path.parent()) else {
        return false;
    };
    std::fs::metadata(parent).is_ok_and(|p| p.dev() != me.dev())
}

pub fn fuse_available(test: &str) -> bool {
    if Path::new("/dev/fuse").exists() {
        return true;
    }
    eprintln!("\n!!! SKIPPING {test}: /dev/fuse is absent !!!\n");
    false
}

/// A test "browser" that does not follow redirects (it shows us where they go).
pub fn browser() -> reqwest::Client {
    cells_mount::client::http::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}
