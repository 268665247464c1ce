//! Trees compared by path and bytes: the reference model's, the mount's and the server's
//! disk, with conflict copies (`NAME (conflict HOST YYYY-MM-DD HHMMSS[ N]).EXT`) matched by
//! pattern instead of by exact name (host and time are not the model's to know).
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    File(Vec<u8>),
}

/// Server-managed folder at the workspace root, outside the model.
pub const RECYCLE_BIN: &str = "recycle_bin";

/// Relative slash-separated path → node. The root is not in it.
pub type Tree = BTreeMap<String, Node>;

/// What the model expects of the conflict copies beside one original file.
#[derive(Debug, Clone, Default)]
pub struct ConflictExpectation {
    /// Contents that must be among the copies (our last local version of each outage).
    pub required: BTreeSet<Vec<u8>>,
    /// Every content a copy may hold (each local version of the outage).
    pub allowed: BTreeSet<Vec<u8>>,
}

/// In the error of [`walk`] for a file whose size and content disagree.
pub const SIZE_MISMATCH: &str = "size and content disagree";

/// In the error of [`walk`] when the mount refused a read for being offline.
pub const OFFLINE: &str = "offline";

/// An error of [`walk`]: what failed where, marked [`OFFLINE`] for the mount's offline errno.
fn walk_error(what: &str, path: &Path, e: &std::io::Error) -> String {
    let offline = if e.raw_os_error() == Some(libc::EHOSTDOWN) {
        format!(" ({OFFLINE})")
    } else {
        String::new()
    };
    format!("{what} {}: {e}{offline}", path.display())
}

/// Reads a directory tree from disk (or through the mount). Errors are reported, not hidden.
pub fn walk(root: &Path) -> Result<Tree, String> {
    let mut tree = Tree::new();
    walk_into(root, "", &mut tree)?;
    Ok(tree)
}

fn walk_into(dir: &Path, prefix: &str, tree: &mut Tree) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| walk_error("list", dir, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| walk_error("list", dir, &e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // The workspace's recycle bin is the server's (deleted folders go there, as in Cells).
        if prefix.is_empty() && name == RECYCLE_BIN {
            continue;
        }
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).map_err(|e| walk_error("stat", &path, &e))?;
        if meta.is_dir() {
            tree.insert(rel.clone(), Node::Dir);
            walk_into(&path, &rel, tree)?;
        } else {
            let data = std::fs::read(&path).map_err(|e| walk_error("read", &path, &e))?;
            if data.len() as u64 != meta.len() {
                return Err(format!(
                    "{rel}: {SIZE_MISMATCH}: stat says {} bytes, read gave {}",
                    meta.len(),
                    data.len()
                ));
            }
            tree.insert(rel, Node::File(data));
        }
    }
    Ok(())
}

/// The original name a conflict copy was made for, or `None` for an ordinary name.
pub fn conflict_original(name: &str) -> Option<String> {
    let start = name.find(" (conflict ")?;
    let rest = &name[start + " (conflict ".len()..];
    let close = rest.find(')')?;
    let inner: Vec<&str> = rest[..close].split(' ').collect();
    // HOST DATE TIME
    let [host, date, time] = inner.as_slice() else {
        return None;
    };
    let date_ok = date.len() == 10
        && date.chars().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                c == '-'
            } else {
                c.is_ascii_digit()
            }
        });
    if host.is_empty() || !date_ok || time.len() != 6 || !time.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut after = &rest[close + 1..];
    // An optional " N" number.
    if let Some(num) = after.strip_prefix(' ') {
        let digits = num.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        after = &num[digits..];
    }
    let stem = &name[..start];
    match after {
        "" => Some(stem.to_owned()),
        ext if ext.starts_with('.') && ext.len() > 1 => Some(format!("{stem}{ext}")),
        _ => None,
    }
}

/// Compares `actual` with the model's tree and conflict expectations (original path → what
/// the copies beside it may hold). Returns every difference, one line each.
pub fn diff(
    actual: &Tree,
    expected: &Tree,
    conflicts: &BTreeMap<String, ConflictExpectation>,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut copies: BTreeMap<String, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    for (path, node) in actual {
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (format!("{d}/"), n),
            None => (String::new(), path.as_str()),
        };
        if let (Some(orig), Node::File(data)) = (conflict_original(name), node)
            && !expected.contains_key(path)
        {
            copies
                .entry(format!("{dir}{orig}"))
                .or_default()
                .push((path.clone(), data.clone()));
            continue;
        }
        match expected.get(path) {
            None => out.push(format!("unexpected {path} ({})", describe(node))),
            Some(want) if want != node => out.push(format!(
                "{path}: is {}, expected {}",
                describe(node),
                describe(want)
            )),
            Some(_) => {}
        }
    }
    for (path, want) in expected {
        if !actual.contains_key(path) {
            out.push(format!("missing {path} ({})", describe(want)));
        }
    }
    for (orig, want) in conflicts {
        let found = copies.remove(orig).unwrap_or_default();
        for required in &want.required {
            if !found.iter().any(|(_, d)| d == required) {
                out.push(format!(
                    "no conflict copy of {orig} holds our version of {} bytes; copies: {:?}",
                    required.len(),
                    found.iter().map(|(p, d)| (p, d.len())).collect::<Vec<_>>()
                ));
            }
        }
        for (p, d) in &found {
            if !want.allowed.contains(d) {
                out.push(format!(
                    "conflict copy {p} holds no local version of {orig}"
                ));
            }
        }
    }
    for (orig, found) in copies {
        for (p, _) in found {
            out.push(format!("unexpected conflict copy {p} (of {orig})"));
        }
    }
    out
}

fn describe(node: &Node) -> String {
    match node {
        Node::Dir => "folder".into(),
        Node::File(d) => format!("file of {} bytes, hash {:016x}", d.len(), fnv(d)),
    }
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

#[test]
fn conflict_names_are_recognised_and_others_are_not() {
    assert_eq!(
        conflict_original("a (conflict host-1 2024-03-07 090502).txt").as_deref(),
        Some("a.txt")
    );
    assert_eq!(
        conflict_original("a (conflict h 2024-03-07 090502) 3.txt").as_deref(),
        Some("a.txt")
    );
    assert_eq!(
        conflict_original("Makefile (conflict h 2024-03-07 090502)").as_deref(),
        Some("Makefile")
    );
    for plain in [
        "a.txt",
        "a (conflict h 2024-3-07 090502).txt",
        "a (conflict h 2024-03-07 0905).txt",
        "a (conflict 2024-03-07 090502).txt",
    ] {
        assert_eq!(conflict_original(plain), None, "{plain}");
    }
}
