//! Reference-model property test: generated sequences of file operations, remounts, kill -9,
//! server-side edits by another client and server outages are applied both to a real mount of
//! the test server and to an in-memory model (`tests/model/ops.rs`). Every operation's result
//! (success or errno) must match the model's, and at the end the mount, the model and (once
//! the upload queue drained) the server's disk must hold the same tree, byte for byte, with
//! conflict copies matched by their name pattern. Failing sequences shrink to a minimal case,
//! saved under `tests/model/proptest-regressions/` and replayed first on every run.
//!
//! Size: `MODEL_CASES` sequences (default 48, about a minute) of up to `MODEL_OPS` operations (default 14);
//! `scripts/model-long` runs many more.

mod common;
#[path = "model/ops.rs"]
mod ops;
#[path = "model/tree.rs"]
mod tree;

use common::mounted::Env;
use ops::{Expect, Model, Op, PATHS, data, op_strategy};
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long the queue may take to drain, or the mount to show a server change.
const SETTLE: Duration = Duration::from_secs(60);

fn env_num(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Applies a local operation to the mount.
fn apply_to_mount(mnt: &Path, op: &Op) -> std::io::Result<()> {
    let p = |i: usize| mnt.join(PATHS[i]);
    match *op {
        Op::Write {
            path,
            offset,
            len,
            seed,
        } => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(p(path))?;
            f.write_all_at(&data(len, seed), u64::from(offset))
        }
        Op::Truncate { path, len } => std::fs::OpenOptions::new()
            .write(true)
            .open(p(path))?
            .set_len(u64::from(len)),
        Op::Unlink { path } => std::fs::remove_file(p(path)),
        Op::Mkdir { path } => std::fs::create_dir(p(path)),
        Op::Rmdir { path } => std::fs::remove_dir(p(path)),
        Op::Rename { from, to } => std::fs::rename(p(from), p(to)),
        _ => Ok(()),
    }
}

fn matches(expect: &Expect, got: &std::io::Result<()>) -> bool {
    match (expect, got) {
        (Expect::Ok, Ok(())) => true,
        (Expect::Errno(n), Err(e)) => e.raw_os_error() == Some(*n),
        (Expect::AnyError, Err(_)) => true,
        _ => false,
    }
}

/// Waits until the mount and the server's disk both agree with the model.
fn converge(bench: &Env, model: &Model, when: &str) -> Result<(), String> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let mount = match tree::walk(&bench.mnt()) {
            Ok(tree) => tree,
            // After another client's change the kernel may show a file's former size for
            // up to its attribute TTL (SEMANTICS.md) while its content is already the new
            // one. Without such a change, size and content must agree at every moment.
            // After an outage, the mount notices by itself that the server is back.
            Err(e)
                if (model.server_changed && e.contains(tree::SIZE_MISMATCH))
                    || e.ends_with(&format!("({})", tree::OFFLINE)) =>
            {
                if Instant::now() > deadline {
                    return Err(format!("{when}: mount: {e}"));
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            Err(e) => return Err(format!("{when}: mount: {e}")),
        };
        let server =
            tree::walk(&bench.personal_dir()).map_err(|e| format!("{when}: server: {e}"))?;
        let dm = tree::diff(&mount, &model.tree, &model.conflicts);
        let ds = tree::diff(&server, &model.tree, &model.conflicts);
        if dm.is_empty() && ds.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{when}: no agreement after {SETTLE:?}\nmount vs model:\n  {}\nserver vs model:\n  {}\nstatus: {}",
                dm.join("\n  "),
                ds.join("\n  "),
                common::mounted::status_json(&bench.mnt())
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs one operation on both sides; `Err` describes a disagreement.
fn step(bench: &mut Env, model: &mut Model, op: &Op) -> Result<(), String> {
    match *op {
        Op::Remount => {
            bench.unmount();
            bench.mount();
        }
        Op::Kill9 => {
            bench.kill9();
            bench.mount();
        }
        Op::ServerWrite { path, len, seed } => {
            let rel = PATHS[path];
            if !bench.server_running() || !model.server_write_allowed(rel) {
                return Ok(());
            }
            converge(bench, model, "before a server-side write")?;
            let content = data(len, seed);
            bench.server_upload(rel, &content);
            model.server_write(rel, content.clone());
            let target = bench.mnt().join(rel);
            let deadline = Instant::now() + SETTLE;
            while std::fs::read(&target).ok().as_ref() != Some(&content) {
                if Instant::now() > deadline {
                    return Err(format!("the mount never showed the server's new {rel}"));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Op::StopServer => {
            if !bench.server_running() {
                return Ok(());
            }
            converge(bench, model, "before the outage")?;
            model.begin_outage();
            bench.stop_server();
        }
        Op::StartServer => {
            if bench.server_running() {
                return Ok(());
            }
            bench.start_server();
            model.end_outage();
            converge(bench, model, "after the outage")?;
        }
        Op::ServerWriteOffline { path, len, seed } => {
            let rel = PATHS[path];
            if bench.server_running() || !model.server_edit_allowed(rel) {
                return Ok(());
            }
            let content = data(len, seed);
            let disk = bench.personal_dir().join(rel);
            let old = std::fs::metadata(&disk)
                .and_then(|m| m.modified())
                .map_err(|e| format!("server copy of {rel}: {e}"))?;
            std::fs::write(&disk, &content).map_err(|e| e.to_string())?;
            // The server's start-up scan notices changes by size and mtime: make sure it does.
            std::fs::File::options()
                .write(true)
                .open(&disk)
                .and_then(|f| f.set_modified(old + Duration::from_secs(17)))
                .map_err(|e| e.to_string())?;
            model.server_edit(rel, content);
        }
        _ => {
            let Some(expect) = model.apply_local(op) else {
                return Ok(());
            };
            let got = apply_to_mount(&bench.mnt(), op);
            if !matches(&expect, &got) {
                return Err(format!("expected {expect:?}, the mount answered {got:?}"));
            }
        }
    }
    Ok(())
}

fn run_sequence(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut bench = Env::new(|_| {});
    bench.mount();
    let mut model = Model::default();
    let fail = |bench: &Env, i: usize, msg: String| {
        let log = bench.mount_log();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        TestCaseError::fail(format!(
            "step {i} of {ops:?}: {msg}\n--- mount log (last lines) ---\n{}",
            tail.join("\n")
        ))
    };
    for (i, op) in ops.iter().enumerate() {
        if std::env::var_os("MODEL_TRACE").is_some() {
            eprintln!("model: step {i}: {op:?}");
        }
        step(&mut bench, &mut model, op).map_err(|m| fail(&bench, i, format!("{op:?}: {m}")))?;
    }
    if !bench.server_running() {
        bench.start_server();
        model.end_outage();
    }
    converge(&bench, &model, "at the end").map_err(|m| fail(&bench, ops.len(), m))?;
    // What was agreed survives a clean restart.
    bench.unmount();
    bench.mount();
    converge(&bench, &model, "after a final remount").map_err(|m| fail(&bench, ops.len(), m))?;
    Ok(())
}

#[test]
fn mount_agrees_with_the_reference_model() {
    if !common::fuse_available("mount_agrees_with_the_reference_model") {
        return;
    }
    let cases = env_num("MODEL_CASES", 48);
    let max_ops = env_num("MODEL_OPS", 14) as usize;
    let config = Config {
        cases,
        max_shrink_iters: env_num("MODEL_SHRINK", 64),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/model/proptest-regressions/model.txt",
        ))),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = proptest::collection::vec(op_strategy(), 1..=max_ops.max(1));
    let started = Instant::now();
    let result = runner.run(&strategy, |ops| run_sequence(&ops));
    eprintln!(
        "model: {cases} generated sequences of up to {max_ops} operations (plus saved regressions) in {:?}",
        started.elapsed()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
