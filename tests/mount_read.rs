//! The read path through the real binary and kernel: a large nested tree read back
//! byte-identical, random-offset reads, concurrent readers of one file and of many, and a
//! 200 MiB file read by two readers while its fetch is under way.

mod common;

use common::mounted::Env;
use common::pseudo_random;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// 1,040 files in 3 levels of folders, sizes from 0 to ~70 KiB.
fn seed_tree(root: &Path) {
    for a in 0..8 {
        for b in 0..10 {
            let dir = root.join(format!("level-{a}")).join(format!("sub {b}"));
            std::fs::create_dir_all(&dir).expect("mkdir");
            for f in 0..13 {
                let n = (a * 130 + b * 13 + f) as u64;
                let data = pseudo_random((n as usize * 67) % 70_000, n + 1);
                std::fs::write(dir.join(format!("file-{f}.bin")), data).expect("write");
            }
        }
    }
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read_dir") {
            let e = e.expect("entry");
            if e.file_type().expect("type").is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_thousand_file_tree_reads_back_identical_and_concurrently() {
    if !common::fuse_available("a_thousand_file_tree_reads_back_identical") {
        return;
    }
    let mut env = Env::new(seed_tree);
    env.mount();
    let source = env.personal_dir();
    let expected = files_under(&source);
    assert!(expected.len() >= 1000);
    let mounted = files_under(&env.mnt());
    let rel = |root: &Path, v: &[PathBuf]| -> Vec<PathBuf> {
        v.iter()
            .map(|p| p.strip_prefix(root).expect("prefix").to_owned())
            .collect()
    };
    assert_eq!(
        rel(&env.mnt(), &mounted),
        rel(&source, &expected),
        "the listing differs"
    );

    // Many readers on many files at once, each file checked byte for byte.
    let rels = Arc::new(rel(&source, &expected));
    let (src, mnt) = (Arc::new(source.clone()), Arc::new(env.mnt()));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (rels, src, mnt) = (rels.clone(), src.clone(), mnt.clone());
            std::thread::spawn(move || {
                for r in rels.iter().skip(w).step_by(8) {
                    let want = std::fs::read(src.join(r)).expect("source");
                    let got = std::fs::read(mnt.join(r)).expect("mounted read");
                    assert!(got == want, "{} differs", r.display());
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("reader panicked");
    }
    env.unmount();
}

#[test]
fn random_offset_reads_and_concurrent_readers_of_one_file() {
    if !common::fuse_available("random_offset_reads") {
        return;
    }
    let data = pseudo_random(24 << 20, 99);
    let seeded = data.clone();
    let mut env = Env::new(move |d| std::fs::write(d.join("big.bin"), &seeded).expect("seed"));
    env.mount();
    let path = env.mnt().join("big.bin");
    let data = Arc::new(data);
    let workers: Vec<_> = (0..6u64)
        .map(|w| {
            let (path, data) = (path.clone(), data.clone());
            std::thread::spawn(move || {
                let mut f = std::fs::File::open(&path).expect("open");
                let rand = pseudo_random(4096, w + 5);
                for i in 0..200 {
                    let r = u64::from_le_bytes(
                        rand[i * 8 % 4088..i * 8 % 4088 + 8]
                            .try_into()
                            .expect("8 bytes"),
                    );
                    let off = r % data.len() as u64;
                    let len = ((r >> 40) % 300_000 + 1) as usize;
                    let end = (off as usize + len).min(data.len());
                    let mut buf = vec![0u8; end - off as usize];
                    f.seek(SeekFrom::Start(off)).expect("seek");
                    f.read_exact(&mut buf).expect("read");
                    assert!(
                        buf[..] == data[off as usize..end],
                        "worker {w}: bytes at {off}+{len} differ"
                    );
                }
                // Past the end: a short read, then EOF.
                f.seek(SeekFrom::Start(data.len() as u64 - 10))
                    .expect("seek");
                let mut tail = Vec::new();
                f.read_to_end(&mut tail).expect("tail");
                assert_eq!(tail[..], data[data.len() - 10..]);
            })
        })
        .collect();
    for w in workers {
        w.join().expect("reader panicked");
    }
    env.unmount();
}

#[test]
fn a_200_mib_file_read_by_two_readers_during_its_fetch() {
    if !common::fuse_available("a_200_mib_file_read_by_two_readers") {
        return;
    }
    const SIZE: usize = 200 << 20;
    let mut env = Env::new(|d| {
        std::fs::write(d.join("huge.bin"), pseudo_random(SIZE, 2024)).expect("seed");
    });
    env.mount();
    let source = env.personal_dir().join("huge.bin");
    let path = env.mnt().join("huge.bin");
    let progress = Arc::new(AtomicU64::new(0));
    let reader = |path: PathBuf, source: PathBuf, progress: Option<Arc<AtomicU64>>| {
        std::thread::spawn(move || {
            let mut f = std::fs::File::open(&path).expect("open");
            let mut s = std::fs::File::open(&source).expect("open source");
            let (mut a, mut b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
            let mut total = 0usize;
            loop {
                let n = f.read(&mut a).expect("read");
                if n == 0 {
                    break;
                }
                s.read_exact(&mut b[..n]).expect("source read");
                assert!(a[..n] == b[..n], "bytes at {total} differ");
                total += n;
                if let Some(p) = &progress {
                    p.store(total as u64, Ordering::Relaxed);
                }
            }
            total
        })
    };
    let first = reader(path.clone(), source.clone(), Some(progress.clone()));
    // The second reader starts while the first is still early in the file.
    common::wait_for(
        "the first reader to start",
        std::time::Duration::from_secs(60),
        || (progress.load(Ordering::Relaxed) >= 1 << 20).then_some(()),
    );
    let second = reader(path, source, None);
    assert_eq!(first.join().expect("first reader"), SIZE);
    assert_eq!(second.join().expect("second reader"), SIZE);
    env.unmount();
}
