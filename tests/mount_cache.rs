//! The persistent cache through the real binary: a warm cache serves reads and listings
//! after a restart with the server stopped, a corrupted cached block is detected and fetched
//! again, and the cache stays within its limit under a workload three times its size.

mod common;

use common::mounted::Env;
use common::pseudo_random;
use std::path::Path;

fn seed_files(count: usize, size: usize) -> impl FnOnce(&Path) {
    move |d: &Path| {
        std::fs::create_dir_all(d.join("docs")).expect("mkdir");
        for i in 0..count {
            std::fs::write(
                d.join("docs").join(format!("f{i}.bin")),
                pseudo_random(size, i as u64 + 1),
            )
            .expect("seed");
        }
    }
}

fn read_all(env: &Env, count: usize, size: usize) {
    for i in 0..count {
        let got = std::fs::read(env.mnt().join("docs").join(format!("f{i}.bin"))).expect("read");
        assert!(got == pseudo_random(size, i as u64 + 1), "f{i}.bin differs");
    }
}

/// Apparent bytes of all regular files under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Flips one byte in the middle of every cached content file; returns how many.
fn corrupt_cache(dir: &Path) -> usize {
    use std::os::unix::fs::FileExt;
    let mut corrupted = 0;
    let mut stack = vec![dir.join("objects")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.len() > 0 {
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(e.path())
                    .expect("open cache file");
                let mut b = [0u8; 1];
                f.read_exact_at(&mut b, m.len() / 2).expect("read");
                f.write_all_at(&[b[0] ^ 0xff], m.len() / 2).expect("write");
                corrupted += 1;
            }
        }
    }
    corrupted
}

#[test]
fn a_warm_cache_serves_reads_and_listings_with_the_server_stopped() {
    if !common::fuse_available("a_warm_cache_serves_reads_with_the_server_stopped") {
        return;
    }
    let mut env = Env::new(seed_files(20, 100_000));
    env.mount();
    read_all(&env, 20, 100_000);
    env.unmount();
    env.stop_server();
    env.mount();
    let mut names: Vec<_> = std::fs::read_dir(env.mnt().join("docs"))
        .expect("listing from the index while offline")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names.sort();
    assert_eq!(names.len(), 20);
    read_all(&env, 20, 100_000);
    env.unmount();
}

#[test]
fn a_corrupted_cache_block_is_detected_and_fetched_again() {
    if !common::fuse_available("a_corrupted_cache_block_is_detected") {
        return;
    }
    let mut env = Env::new(seed_files(3, 3 << 20));
    env.mount();
    read_all(&env, 3, 3 << 20);
    env.unmount();
    assert!(
        corrupt_cache(&env.cache_dir()) > 0,
        "nothing was cached under objects/"
    );
    // A fresh mount: the kernel's page cache is gone, reads reach the disk cache.
    env.mount();
    read_all(&env, 3, 3 << 20);
    env.unmount();
}

#[test]
fn the_cache_limit_holds_under_three_times_its_size() {
    if !common::fuse_available("the_cache_limit_holds") {
        return;
    }
    const LIMIT: u64 = 8 << 20;
    let mut env = Env::new(seed_files(12, 2 << 20)); // 24 MiB read through an 8 MiB cache
    env.mount_args = vec!["--cache-size".into(), "8M".into()];
    env.mount();
    // Eviction happens as the cache fills (space is made before a range is stored), not
    // by a later scan: the limit holds after every single file, with no waiting.
    let objects = env.cache_dir().join("objects");
    let mut peak = 0;
    for round in 0..2 {
        for i in 0..12 {
            let got =
                std::fs::read(env.mnt().join("docs").join(format!("f{i}.bin"))).expect("read");
            assert!(
                got == pseudo_random(2 << 20, i as u64 + 1),
                "f{i}.bin differs"
            );
            let used = bytes_under(&objects);
            assert!(
                used <= LIMIT,
                "round {round}, file {i}: {used} bytes cached, limit {LIMIT}"
            );
            peak = peak.max(used);
        }
    }
    eprintln!("peak {peak} bytes cached (limit {LIMIT})");
    assert!(peak > LIMIT / 2, "the cache was barely used ({peak} bytes)");
    env.unmount();
}
