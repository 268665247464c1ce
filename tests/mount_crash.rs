//! The mount process killed with SIGKILL through a real FUSE mount: an edit written but never
//! closed is recovered at the next start, and a seeded write workload killed at 20+ random
//! moments ends, after remounts and a draining unmount, with every closed file on the server
//! byte-identical, no extra or conflict copy and no unfinished upload left behind.

mod common;

use cells_mount::names::RemotePath;
use cells_mount::sync::InterruptedUploads;
use common::mounted::{Env, cli};
use common::{fuse_available, pseudo_random, wait_for};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const UPLOAD_WAIT: Duration = Duration::from_secs(90);

/// Waits until the server's copy of `rel` holds `want`.
fn server_has(env: &Env, rel: &str, want: &[u8]) {
    let path = env.personal_dir().join(rel);
    wait_for(&format!("{rel} on the server"), UPLOAD_WAIT, || {
        (std::fs::read(&path).ok()? == want).then_some(())
    });
}

/// Names of the files directly in `dir`.
fn names_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// No unfinished multipart upload left in the server's private folder. (Its `tmp` folder is
/// not checked: the test server leaves the temp file of a single PUT whose connection died
/// mid-body, a cancellation leak of the double, not of the mount; the data folders are
/// compared name by name instead.)
fn assert_no_server_leftovers(env: &Env) {
    let private = env.dir.path().join("data").join(".cells-testserver");
    let left = names_in(&private.join("multipart"));
    assert!(
        left.is_empty(),
        "multipart uploads left on the server: {left:?}"
    );
}

#[test]
fn an_edit_written_but_never_closed_survives_a_kill() {
    if !fuse_available("an_edit_written_but_never_closed_survives_a_kill") {
        return;
    }
    let old = pseudo_random(200_000, 5);
    let mut env = Env::new(|root| std::fs::write(root.join("edited.bin"), &old).expect("seed"));
    env.mount();
    let mnt = env.mnt();
    let fresh = pseudo_random(3 << 20, 6);
    let mut new_file = std::fs::File::create(mnt.join("fresh.bin")).expect("create");
    new_file.write_all(&fresh).expect("write");
    let edit = std::fs::OpenOptions::new()
        .write(true)
        .open(mnt.join("edited.bin"))
        .expect("open for writing");
    edit.write_all_at(b"PATCHED", 1000).expect("write in place");
    // No close, flush or fsync: the bytes are only in the mount's staging files.
    env.kill_mount();
    drop((new_file, edit));
    assert!(!env.personal_dir().join("fresh.bin").exists());

    env.mount();
    let mut want = old.clone();
    want[1000..1007].copy_from_slice(b"PATCHED");
    server_has(&env, "fresh.bin", &fresh);
    server_has(&env, "edited.bin", &want);
    assert_eq!(std::fs::read(mnt.join("edited.bin")).unwrap(), want);
    assert!(
        env.mount_log().contains("recovered after a crash"),
        "the recovery is logged"
    );
    let o = cli(&["unmount", mnt.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(env.wait_mount_exit());
    assert_eq!(
        names_in(&env.personal_dir()),
        BTreeSet::from(["edited.bin".to_string(), "fresh.bin".to_string()]),
        "no conflict copy: the recovered edit was based on the server's version"
    );
    assert_no_server_leftovers(&env);
}

/// The lines of the mount's log that explain a wrong outcome: warnings, errors and
/// deferred operations (the whole log runs to thousands of debug lines).
fn notable_log_lines(env: &Env) -> String {
    let log = env.mount_log();
    let notable: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("deferred"))
        .collect();
    notable[notable.len().saturating_sub(80)..].join("\n")
}

/// SplitMix64: a seeded generator the test can print and replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What the test knows of each name: its content once the last operation on it returned
/// (`None` = absent); a name touched by an operation cut by the kill is left out until the
/// next mount shows what became of it.
#[derive(Default)]
struct Model {
    known: BTreeMap<String, Option<Vec<u8>>>,
    uncertain: BTreeSet<String>,
}

const NAMES: usize = 10;

/// The names an operation set, and to what (`None` = absent).
type Outcome = Vec<(String, Option<Vec<u8>>)>;

fn name(i: u64) -> String {
    format!("f{i}.bin")
}

/// One round of the workload: operations until one fails (the kill). An error before the
/// kill was sent is a bug and panics.
fn workload(
    mnt: PathBuf,
    mut model: Model,
    mut rng: Rng,
    written: Arc<AtomicU64>,
    killed: Arc<AtomicBool>,
) -> (Model, Rng) {
    loop {
        let present: Vec<String> = model
            .known
            .iter()
            .filter(|(_, c)| c.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        let target = name(rng.below(NAMES as u64));
        let op = if present.is_empty() { 0 } else { rng.below(10) };
        let pick = |rng: &mut Rng| present[rng.below(present.len() as u64) as usize].clone();
        let (touched, result): (Vec<String>, std::io::Result<Outcome>) = match op {
            // create or overwrite, sometimes big
            0..=4 => {
                let len = if rng.below(10) == 0 {
                    (10 << 20) + rng.below(1 << 20)
                } else {
                    rng.below(300_000)
                };
                let data = pseudo_random(len as usize, rng.next());
                model.uncertain.insert(target.clone());
                let r = write_chunks(&mnt.join(&target), &data, false, &written)
                    .map(|()| vec![(target.clone(), Some(data))]);
                (vec![target], r)
            }
            5 | 6 => {
                let n = pick(&mut rng);
                let extra = pseudo_random(1 + rng.below(100_000) as usize, rng.next());
                let mut full = model.known[&n].clone().unwrap_or_default();
                full.extend_from_slice(&extra);
                model.uncertain.insert(n.clone());
                let r = write_chunks(&mnt.join(&n), &extra, true, &written)
                    .map(|()| vec![(n.clone(), Some(full))]);
                (vec![n], r)
            }
            7 | 8 => {
                let from = pick(&mut rng);
                if from == target {
                    continue;
                }
                let content = model.known[&from].clone();
                model.uncertain.extend([from.clone(), target.clone()]);
                let r = std::fs::rename(mnt.join(&from), mnt.join(&target))
                    .map(|()| vec![(from.clone(), None), (target.clone(), content)]);
                (vec![from, target], r)
            }
            _ => {
                let n = pick(&mut rng);
                model.uncertain.insert(n.clone());
                let r = std::fs::remove_file(mnt.join(&n)).map(|()| vec![(n.clone(), None)]);
                (vec![n], r)
            }
        };
        match result {
            Ok(outcome) => {
                for n in &touched {
                    model.uncertain.remove(n);
                }
                model.known.extend(outcome);
            }
            Err(e) => {
                assert!(
                    killed.load(Ordering::SeqCst),
                    "{touched:?} failed before any kill: {e}"
                );
                for n in &touched {
                    model.known.remove(n);
                }
                return (model, rng);
            }
        }
    }
}

/// Writes `data` in 256 KiB steps (counting bytes for the kill trigger), then closes.
fn write_chunks(
    path: &Path,
    data: &[u8],
    append: bool,
    written: &AtomicU64,
) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    if append {
        opts.append(true);
    } else {
        opts.write(true).create(true).truncate(true);
    }
    let mut f = opts.open(path)?;
    for chunk in data.chunks(256 * 1024) {
        f.write_all(chunk)?;
        written.fetch_add(chunk.len() as u64, Ordering::SeqCst);
    }
    // close(2) reports the flush result; std ignores it, so flush explicitly first.
    f.sync_all()?;
    drop(f);
    Ok(())
}

/// After a remount, what became of the names an interrupted operation touched.
fn settle_uncertain(mnt: &Path, model: &mut Model) {
    for n in std::mem::take(&mut model.uncertain) {
        let now = match std::fs::read(mnt.join(&n)) {
            Ok(data) => Some(data),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => panic!("reading {n} after a remount: {e}"),
        };
        model.known.insert(n, now);
    }
}

#[test]
fn random_kills_during_a_write_workload_lose_nothing_closed() {
    if !fuse_available("random_kills_during_a_write_workload_lose_nothing_closed") {
        return;
    }
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("crash workload seed: {seed} (replay with CRASH_SEED={seed})");
    let started = Instant::now();
    let mut env = Env::new(|_| {});
    let mut rng = Rng(seed);
    let mut model = Model::default();
    const ROUNDS: usize = 20;
    for round in 0..ROUNDS {
        let round_start = Instant::now();
        env.mount();
        let mounted_in = round_start.elapsed();
        settle_uncertain(&env.mnt(), &mut model);
        let written = Arc::new(AtomicU64::new(0));
        let killed = Arc::new(AtomicBool::new(false));
        // Kill after a random number of bytes (0 to 12 MiB) of this round's writes.
        let threshold = rng.below(12 << 20);
        let worker_rng = Rng(rng.next());
        let worker = {
            let (mnt, w, k) = (env.mnt(), written.clone(), killed.clone());
            let m = std::mem::take(&mut model);
            std::thread::spawn(move || workload(mnt, m, worker_rng, w, k))
        };
        wait_for(
            &format!("round {round}: {threshold} bytes written"),
            Duration::from_secs(60),
            || (written.load(Ordering::SeqCst) >= threshold || worker.is_finished()).then_some(()),
        );
        killed.store(true, Ordering::SeqCst);
        env.kill_mount();
        let Ok((m, _)) = worker.join() else {
            let log = env.mount_log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "round {round}: the workload failed (above); mount log tail:\n{}",
                tail.join("\n")
            );
        };
        model = m;
        eprintln!(
            "round {round}: mounted in {mounted_in:?}, killed after {} bytes, {:?} elapsed",
            written.load(Ordering::SeqCst),
            started.elapsed()
        );
    }
    env.mount();
    let mnt = env.mnt();
    settle_uncertain(&mnt, &mut model);
    let o = cli(&["unmount", mnt.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "unmount: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(env.wait_mount_exit(), "the mount exited uncleanly");

    let expected: BTreeMap<&String, &Vec<u8>> = model
        .known
        .iter()
        .filter_map(|(n, c)| c.as_ref().map(|c| (n, c)))
        .collect();
    let mut on_server = names_in(&env.personal_dir());
    // The server's own folder of deleted files, not one of ours.
    on_server.remove("recycle_bin");
    let want: BTreeSet<String> = expected.keys().map(|n| n.to_string()).collect();
    assert_eq!(
        on_server,
        want,
        "seed {seed}: names on the server; the mount's warnings:\n{}",
        notable_log_lines(&env)
    );
    for (n, content) in &expected {
        let got = std::fs::read(env.personal_dir().join(n)).expect("read the server's copy");
        assert!(
            got == **content,
            "seed {seed}: {n} differs on the server ({} bytes, want {}); the mount's warnings:\n{}",
            got.len(),
            content.len(),
            notable_log_lines(&env)
        );
    }
    assert_no_server_leftovers(&env);
    let client = env.client();
    for n in NAMES_ALL.iter().map(|i| name(*i)) {
        let path = RemotePath::parse(&format!("personal-files/{n}")).unwrap();
        let aborted = env.rt.block_on(client.abort_interrupted(&path)).unwrap();
        assert_eq!(aborted, 0, "seed {seed}: an unfinished upload of {n}");
    }
    eprintln!("crash workload done in {:?}", started.elapsed());
}

const NAMES_ALL: [u64; NAMES] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
