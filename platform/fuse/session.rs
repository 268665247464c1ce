//! Mounting and unmounting: mount options, the FUSE session threads, and the kernel cache
//! invalidator the core uses when the server changes something behind the kernel's back.

use super::adapter::FuseAdapter;
use super::errno::ErrorStats;
use crate::fs::{FileSystem, Ino, Invalidator};
use fuser::{Config, INodeNo, MountOption, Notifier, Session, SessionACL, SessionUnmounter};
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

/// How to mount.
#[derive(Debug, Clone)]
pub struct MountOptions {
    /// Let other users than the mounting one see the files (`allow_other`; needs
    /// `user_allow_other` in /etc/fuse.conf for non-root). Also enables `auto_unmount`, which
    /// fusermount only supports together with it.
    pub allow_other: bool,
    /// FUSE threads reading requests from the kernel (the work itself runs on tokio).
    pub threads: usize,
    /// Try FUSE passthrough for fully cached files (Linux 6.9+, needs CAP_SYS_ADMIN).
    pub passthrough: bool,
    /// Platform-specific `-o` options passed through as they are (macFUSE's `volname` and
    /// `volicon`, built and checked by `platform::macos`).
    pub extra: Vec<String>,
}

impl Default for MountOptions {
    fn default() -> Self {
        Self {
            allow_other: false,
            threads: 4,
            passthrough: true,
            extra: Vec::new(),
        }
    }
}

fn fuser_config(opts: &MountOptions) -> Config {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("cells-mount".into()),
        MountOption::Subtype("cells".into()),
        MountOption::DefaultPermissions,
        MountOption::NoAtime,
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    for option in &opts.extra {
        config
            .mount_options
            .push(MountOption::CUSTOM(option.clone()));
    }
    if opts.allow_other {
        config.acl = SessionACL::All;
        config.mount_options.push(MountOption::AutoUnmount);
    }
    // Several threads read requests only on Linux (fuser refuses elsewhere).
    config.n_threads = Some(if cfg!(target_os = "linux") {
        opts.threads.max(1)
    } else {
        1
    });
    config
}

enum Notice {
    Entry(Ino, OsString),
    Inode(Ino),
    Stop,
}

/// [`Invalidator`] over fuser's `Notifier`. Notifications are queued to a thread of their own:
/// writing one to /dev/fuse from inside a request handler can deadlock with the kernel, which
/// may hold locks the notification waits for.
pub struct FuseInvalidator {
    queue: Mutex<mpsc::Sender<Notice>>,
}

impl FuseInvalidator {
    fn start(notifier: Notifier) -> io::Result<(Arc<Self>, JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("fuse-inval".into())
            .spawn(move || {
                while let Ok(notice) = rx.recv() {
                    let result = match &notice {
                        Notice::Entry(parent, name) => notifier.inval_entry(INodeNo(*parent), name),
                        Notice::Inode(ino) => notifier.inval_inode(INodeNo(*ino), 0, 0),
                        Notice::Stop => break,
                    };
                    // ENOENT: the kernel does not know the inode/entry; nothing to invalidate.
                    if let Err(e) = result
                        && e.raw_os_error() != Some(libc::ENOENT)
                    {
                        tracing::debug!("kernel invalidation failed: {e}");
                    }
                }
            })?;
        Ok((
            Arc::new(Self {
                queue: Mutex::new(tx),
            }),
            thread,
        ))
    }

    fn push(&self, notice: Notice) {
        let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        // A closed queue means we are unmounted: there is no kernel cache left to invalidate.
        let _ = queue.send(notice);
    }
}

impl Invalidator for FuseInvalidator {
    fn inval_entry(&self, parent: Ino, name: &OsStr) {
        self.push(Notice::Entry(parent, name.to_owned()));
    }

    fn inval_inode(&self, ino: Ino) {
        self.push(Notice::Inode(ino));
    }
}

/// A live mount. Dropping it unmounts.
pub struct FuseMount {
    mountpoint: PathBuf,
    unmounter: SessionUnmounter,
    session: Option<JoinHandle<io::Result<()>>>,
    invalidator: Arc<FuseInvalidator>,
    inval_thread: Option<JoinHandle<()>>,
    stats: Arc<ErrorStats>,
    passthrough: Arc<AtomicBool>,
}

impl FuseMount {
    /// Mounts `fs` at `mountpoint`; requests run as tasks on `rt`. Returns once the kernel
    /// handshake is done, i.e. the mount is live. `on_end` is called from the session thread
    /// when the session ends (unmounted from here or from outside).
    pub fn mount<F: FileSystem>(
        fs: Arc<F>,
        mountpoint: &Path,
        opts: &MountOptions,
        rt: tokio::runtime::Handle,
        on_end: impl FnOnce(&io::Result<()>) + Send + 'static,
    ) -> io::Result<Self> {
        let stats = Arc::new(ErrorStats::default());
        let adapter = FuseAdapter::new(fs, rt, stats.clone(), opts.passthrough);
        let passthrough = adapter.passthrough_flag();
        let mut session = Session::new(adapter, mountpoint, &fuser_config(opts))?;
        let unmounter = session.unmount_callable();
        let (invalidator, inval_thread) = FuseInvalidator::start(session.notifier())?;
        let session = std::thread::Builder::new()
            .name("fuse-session".into())
            .spawn(move || {
                let result = session.run();
                on_end(&result);
                result
            })?;
        Ok(Self {
            mountpoint: mountpoint.to_owned(),
            unmounter,
            session: Some(session),
            invalidator,
            inval_thread: Some(inval_thread),
            stats,
            passthrough,
        })
    }

    /// The invalidator to hand to the core (`set_invalidator`).
    pub fn invalidator(&self) -> Arc<FuseInvalidator> {
        self.invalidator.clone()
    }

    /// Error counters of this mount.
    pub fn stats(&self) -> Arc<ErrorStats> {
        self.stats.clone()
    }

    /// Whether the kernel accepted FUSE passthrough.
    pub fn passthrough_enabled(&self) -> bool {
        self.passthrough.load(Ordering::Acquire)
    }

    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Unmounts and waits for the session threads.
    pub fn unmount(mut self) -> io::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> io::Result<()> {
        let unmounted = self.unmounter.unmount();
        let mut result = unmounted;
        if let Some(session) = self.session.take() {
            let ended = session
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("FUSE session thread panicked")));
            if result.is_ok() {
                result = ended;
            }
        }
        self.invalidator.push(Notice::Stop);
        if let Some(t) = self.inval_thread.take() {
            let _ = t.join();
        }
        result
    }
}

impl Drop for FuseMount {
    fn drop(&mut self) {
        if self.session.is_some()
            && let Err(e) = self.shutdown()
        {
            tracing::warn!("unmounting {}: {e}", self.mountpoint.display());
        }
    }
}
