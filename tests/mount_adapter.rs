//! The FUSE adapter on a real kernel mount, over an in-memory core: lookups, paged listings
//! (readdir and readdirplus), reads, statfs, the xattr size-probe convention, a panicking core
//! answered with EIO instead of a hang, errno mapping, and passthrough when the kernel has it.

mod common;

use cells_mount::platform::fuse::{FuseMount, MountOptions};
use common::fake_fs::*;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

struct Fixture {
    mount: Option<FuseMount>,
    fs: Arc<FakeFs>,
    dir: tempfile::TempDir,
    _rt: tokio::runtime::Runtime,
}

impl Fixture {
    fn new(passthrough: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).expect("mkdir");
        let passthrough_file = dir.path().join("cached.bin");
        let passthrough_content = common::pseudo_random(300_000, 7);
        std::fs::write(&passthrough_file, &passthrough_content).expect("write");
        let fs = Arc::new(FakeFs {
            file_content: common::pseudo_random(1_048_576 + 123, 3),
            dir_children: 2500,
            passthrough_file,
            passthrough_content,
            reads: Default::default(),
            passthrough_reads: Default::default(),
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("rt");
        let opts = MountOptions {
            passthrough,
            ..MountOptions::default()
        };
        let mount =
            FuseMount::mount(fs.clone(), &mnt, &opts, rt.handle().clone(), |_| {}).expect("mount");
        common::wait_for("mount to be live", Duration::from_secs(10), || {
            common::is_mountpoint(&mnt).then_some(())
        });
        Self {
            mount: Some(mount),
            fs,
            dir,
            _rt: rt,
        }
    }

    fn mnt(&self) -> std::path::PathBuf {
        self.dir.path().join("mnt")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(m) = self.mount.take() {
            let _ = m.unmount();
        }
    }
}

fn errno_of(r: std::io::Result<impl Sized>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

fn xattr_size(path: &Path, name: &str, buf: &mut [u8]) -> isize {
    let p = CString::new(path.as_os_str().as_bytes()).expect("path");
    let n = CString::new(name).expect("name");
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) }
}

#[test]
fn listing_reading_and_metadata_through_the_kernel() {
    if !common::fuse_available("listing_reading_and_metadata_through_the_kernel") {
        return;
    }
    let fx = Fixture::new(false);
    let mnt = fx.mnt();
    let mut names: Vec<String> = std::fs::read_dir(&mnt)
        .expect("read root")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["cached.bin", "dir", "file.bin"]);

    // 2,500 long names need many kernel readdir calls: every one must come back, once.
    let listed: Vec<_> = std::fs::read_dir(mnt.join("dir"))
        .expect("read dir")
        .map(|e| e.expect("entry"))
        .collect();
    assert_eq!(listed.len(), 2500);
    let unique: std::collections::HashSet<_> = listed.iter().map(|e| e.file_name()).collect();
    assert_eq!(unique.len(), 2500);
    assert!(
        listed
            .iter()
            .all(|e| e.file_type().is_ok_and(|t| t.is_file()))
    );

    let meta = std::fs::metadata(mnt.join("file.bin")).expect("stat");
    assert_eq!(meta.len(), fx.fs.file_content.len() as u64);
    assert_eq!(
        std::fs::read(mnt.join("file.bin")).expect("read"),
        fx.fs.file_content
    );
    assert_eq!(
        errno_of(std::fs::metadata(mnt.join("missing"))),
        Some(libc::ENOENT)
    );
    assert_eq!(
        errno_of(std::fs::metadata(mnt.join("offline"))),
        Some(libc::EHOSTDOWN)
    );

    // No write path yet: mutations say "read-only file system", not "not implemented".
    assert_eq!(
        errno_of(std::fs::create_dir(mnt.join("newdir"))),
        Some(libc::EROFS)
    );
    assert_eq!(
        errno_of(std::fs::write(mnt.join("new.txt"), b"x")),
        Some(libc::EROFS)
    );
    assert_eq!(
        errno_of(std::fs::remove_file(mnt.join("file.bin"))),
        Some(libc::EROFS)
    );

    let c = CString::new(mnt.as_os_str().as_bytes()).expect("path");
    // SAFETY: statvfs on a valid path into a zeroed struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    assert_eq!((st.f_blocks, st.f_bavail, st.f_namemax), (1000, 500, 255));
}

#[test]
fn xattr_size_probe_and_errors() {
    if !common::fuse_available("xattr_size_probe_and_errors") {
        return;
    }
    let fx = Fixture::new(false);
    let file = fx.mnt().join("file.bin");
    assert_eq!(xattr_size(&file, "user.cells.hash", &mut []), 16);
    let mut small = [0u8; 4];
    assert_eq!(xattr_size(&file, "user.cells.hash", &mut small), -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::ERANGE)
    );
    let mut buf = [0u8; 64];
    assert_eq!(xattr_size(&file, "user.cells.hash", &mut buf), 16);
    assert_eq!(&buf[..16], b"0123456789abcdef");
    assert_eq!(xattr_size(&file, "user.nope", &mut buf), -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::ENODATA)
    );
    // A namespace we do not implement is "not supported", which `ls -l` remembers per file
    // system instead of asking again for every entry.
    for (name, errno) in [
        ("security.selinux", libc::ENOTSUP),
        ("system.posix_acl_access", libc::ENOTSUP),
    ] {
        assert_eq!(xattr_size(&file, name, &mut buf), -1, "{name}");
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(errno),
            "{name}"
        );
    }

    let p = CString::new(file.as_os_str().as_bytes()).expect("path");
    // SAFETY: size probe with a null buffer, then a real buffer of the given length.
    let need = unsafe { libc::listxattr(p.as_ptr(), std::ptr::null_mut(), 0) };
    assert_eq!(need, "user.cells.hash\0user.cells.uuid\0".len() as isize);
    let mut list = vec![0u8; need as usize];
    let got = unsafe { libc::listxattr(p.as_ptr(), list.as_mut_ptr().cast(), list.len()) };
    assert_eq!(got, need);
    assert_eq!(list, b"user.cells.hash\0user.cells.uuid\0");
}

#[test]
fn a_panicking_core_gets_eio_not_a_hang() {
    if !common::fuse_available("a_panicking_core_gets_eio_not_a_hang") {
        return;
    }
    let fx = Fixture::new(false);
    let mnt = fx.mnt();
    let (tx, rx) = std::sync::mpsc::channel();
    let probe = mnt.join("panics");
    std::thread::spawn(move || {
        let _ = tx.send(errno_of(std::fs::metadata(probe)));
    });
    let got = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("stat of a panicking lookup hung");
    assert_eq!(got, Some(libc::EIO));
    assert_eq!(
        fx.mount.as_ref().map(|m| m.stats().snapshot().unanswered),
        Some(1)
    );
    // The mount survives the panic.
    assert!(std::fs::metadata(mnt.join("file.bin")).is_ok());
}

#[test]
fn passthrough_serves_cached_files_without_read_requests_when_the_kernel_allows() {
    if !common::fuse_available("passthrough_serves_cached_files") {
        return;
    }
    let fx = Fixture::new(true);
    let path = fx.mnt().join("cached.bin");
    // Two handles open at once share the inode's backing file.
    let a = std::fs::read(&path).expect("read a");
    let f = std::fs::File::open(&path).expect("open");
    let b = std::fs::read(&path).expect("read b");
    drop(f);
    assert_eq!(a, fx.fs.passthrough_content);
    assert_eq!(b, fx.fs.passthrough_content);
    let enabled = fx.mount.as_ref().is_some_and(|m| m.passthrough_enabled());
    let core_reads = fx.fs.passthrough_reads.load(Ordering::Relaxed);
    if enabled {
        assert_eq!(
            core_reads, 0,
            "passthrough is on: the kernel must read the backing file"
        );
    } else {
        eprintln!(
            "kernel did not accept FUSE passthrough; reads went through the core ({core_reads})"
        );
        assert!(core_reads > 0);
    }
}
