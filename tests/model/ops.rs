//! The reference model: operations over a small namespace (so they collide often), their
//! proptest strategy, and what each should do (the new tree, or the errno) on a simple
//! in-memory file system with Cells' conflict rule: after an outage in which both sides
//! changed a file, the server's version keeps the name and ours is a conflict sibling.

use super::tree::{ConflictExpectation, Node, Tree};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// Paths the generated operations use: few enough that operations keep meeting each other.
pub const PATHS: [&str; 10] = [
    "a", "b.txt", "d", "e", "d/a", "d/b.txt", "d/e", "e/a", "e/d", "d/e/a",
];

#[derive(Debug, Clone)]
pub enum Op {
    /// open(O_CREAT|O_WRONLY), pwrite `len` bytes at `offset`, close.
    Write {
        path: usize,
        offset: u16,
        len: u16,
        seed: u8,
    },
    /// open(O_WRONLY), ftruncate, close.
    Truncate {
        path: usize,
        len: u16,
    },
    Unlink {
        path: usize,
    },
    Mkdir {
        path: usize,
    },
    Rmdir {
        path: usize,
    },
    Rename {
        from: usize,
        to: usize,
    },
    /// SIGTERM the mount and mount again.
    Remount,
    /// SIGKILL the mount, lazily unmount the dead mount, and mount again.
    Kill9,
    /// Another client uploads a new version of the file (server up, no outage).
    ServerWrite {
        path: usize,
        len: u16,
        seed: u8,
    },
    /// The server goes away (after the queue has drained).
    StopServer,
    StartServer,
    /// Another client's change lands on the server during the outage.
    ServerWriteOffline {
        path: usize,
        len: u16,
        seed: u8,
    },
}

pub fn op_strategy() -> impl Strategy<Value = Op> {
    let path = 0..PATHS.len();
    prop_oneof![
        6 => (path.clone(), 0u16..3000, 1u16..3000, any::<u8>())
            .prop_map(|(path, offset, len, seed)| Op::Write { path, offset, len, seed }),
        2 => (path.clone(), 0u16..4000).prop_map(|(path, len)| Op::Truncate { path, len }),
        2 => path.clone().prop_map(|path| Op::Unlink { path }),
        3 => path.clone().prop_map(|path| Op::Mkdir { path }),
        2 => path.clone().prop_map(|path| Op::Rmdir { path }),
        4 => (path.clone(), path.clone()).prop_map(|(from, to)| Op::Rename { from, to }),
        1 => Just(Op::Remount),
        1 => Just(Op::Kill9),
        1 => (path.clone(), 1u16..3000, any::<u8>())
            .prop_map(|(path, len, seed)| Op::ServerWrite { path, len, seed }),
        1 => Just(Op::StopServer),
        1 => Just(Op::StartServer),
        1 => (path, 1u16..3000, any::<u8>())
            .prop_map(|(path, len, seed)| Op::ServerWriteOffline { path, len, seed }),
    ]
}

/// The bytes of a generated write.
pub fn data(len: u16, seed: u8) -> Vec<u8> {
    super::common::pseudo_random(usize::from(len), u64::from(seed) + 1)
}

/// What the mount should answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Ok,
    Errno(i32),
    /// Some error (the errno depends on checks whose order the model does not pin).
    AnyError,
}

/// What happened in the current outage.
#[derive(Debug, Default)]
struct Outage {
    /// Files edited on the server meanwhile, with their new content.
    server_edits: BTreeMap<String, Vec<u8>>,
    /// Every local content of a file written during the outage.
    local_versions: BTreeMap<String, Vec<Vec<u8>>>,
    /// Paths a local namespace change touched (no server edit on them, to keep the model
    /// simple: see `server_edit_allowed`).
    moved: BTreeSet<String>,
    /// Files present before the outage began.
    start: BTreeSet<String>,
}

#[derive(Debug, Default)]
pub struct Model {
    pub tree: Tree,
    pub conflicts: BTreeMap<String, ConflictExpectation>,
    outage: Option<Outage>,
    /// Another client changed a file on the server at some point of the sequence.
    pub server_changed: bool,
}

/// True when `a` is `b` or one of its ancestors.
fn is_prefix(a: &str, b: &str) -> bool {
    a == b || b.starts_with(&format!("{a}/"))
}

impl Model {
    /// ENOENT / ENOTDIR when a folder on the way to `path` is missing or a file.
    fn parent_check(&self, path: &str) -> Result<(), Expect> {
        let mut prefix = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            match self.tree.get(&prefix) {
                None => return Err(Expect::Errno(libc::ENOENT)),
                Some(Node::File(_)) => return Err(Expect::Errno(libc::ENOTDIR)),
                Some(Node::Dir) => {}
            }
        }
        Ok(())
    }

    fn has_children(&self, dir: &str) -> bool {
        let prefix = format!("{dir}/");
        self.tree.keys().any(|k| k.starts_with(&prefix))
            || self.conflicts.keys().any(|k| k.starts_with(&prefix))
    }

    /// During an outage, a namespace change on `path` marks it (and what is below) moved.
    /// Refused (Skip) when it would touch a file the server changed meanwhile.
    fn namespace_change(&mut self, paths: &[&str]) -> bool {
        let Some(o) = &mut self.outage else {
            return true;
        };
        if o.server_edits
            .keys()
            .any(|e| paths.iter().any(|p| is_prefix(p, e) || is_prefix(e, p)))
        {
            return false;
        }
        for p in paths {
            o.moved.insert((*p).to_owned());
        }
        true
    }

    fn record_local_version(&mut self, path: &str) {
        if let (Some(o), Some(Node::File(d))) = (&mut self.outage, self.tree.get(path)) {
            o.local_versions
                .entry(path.to_owned())
                .or_default()
                .push(d.clone());
        }
    }

    /// Applies a local operation to the model; `None` means the operation is skipped.
    pub fn apply_local(&mut self, op: &Op) -> Option<Expect> {
        let res = match *op {
            Op::Write {
                path,
                offset,
                len,
                seed,
            } => self.write(PATHS[path], offset, len, seed)?,
            Op::Truncate { path, len } => self.truncate(PATHS[path], len),
            Op::Unlink { path } => self.unlink(PATHS[path])?,
            Op::Mkdir { path } => self.mkdir(PATHS[path])?,
            Op::Rmdir { path } => self.rmdir(PATHS[path])?,
            Op::Rename { from, to } => self.rename(PATHS[from], PATHS[to])?,
            _ => return None,
        };
        Some(match res {
            Ok(()) => Expect::Ok,
            Err(e) => e,
        })
    }

    fn write(&mut self, path: &str, offset: u16, len: u16, seed: u8) -> Option<Result<(), Expect>> {
        if let Err(e) = self.parent_check(path) {
            return Some(Err(e));
        }
        let mut content = match self.tree.get(path) {
            Some(Node::Dir) => return Some(Err(Expect::Errno(libc::EISDIR))),
            Some(Node::File(d)) => d.clone(),
            None => {
                if !self.namespace_change(&[path]) {
                    return None;
                }
                Vec::new()
            }
        };
        let (offset, bytes) = (usize::from(offset), data(len, seed));
        if content.len() < offset + bytes.len() {
            content.resize(offset + bytes.len(), 0);
        }
        content[offset..offset + bytes.len()].copy_from_slice(&bytes);
        self.tree.insert(path.to_owned(), Node::File(content));
        self.record_local_version(path);
        Some(Ok(()))
    }

    fn truncate(&mut self, path: &str, len: u16) -> Result<(), Expect> {
        self.parent_check(path)?;
        let content = match self.tree.get_mut(path) {
            None => return Err(Expect::Errno(libc::ENOENT)),
            Some(Node::Dir) => return Err(Expect::Errno(libc::EISDIR)),
            Some(Node::File(d)) => d,
        };
        let changed = content.len() != usize::from(len) || len == 0;
        content.resize(usize::from(len), 0);
        if changed {
            self.record_local_version(path);
        }
        Ok(())
    }

    fn unlink(&mut self, path: &str) -> Option<Result<(), Expect>> {
        if let Err(e) = self.parent_check(path) {
            return Some(Err(e));
        }
        match self.tree.get(path) {
            None => Some(Err(Expect::Errno(libc::ENOENT))),
            Some(Node::Dir) => Some(Err(Expect::Errno(libc::EISDIR))),
            Some(Node::File(_)) => {
                if !self.namespace_change(&[path]) {
                    return None;
                }
                self.tree.remove(path);
                Some(Ok(()))
            }
        }
    }

    fn mkdir(&mut self, path: &str) -> Option<Result<(), Expect>> {
        if let Err(e) = self.parent_check(path) {
            return Some(Err(e));
        }
        if self.tree.contains_key(path) {
            return Some(Err(Expect::Errno(libc::EEXIST)));
        }
        if !self.namespace_change(&[path]) {
            return None;
        }
        self.tree.insert(path.to_owned(), Node::Dir);
        Some(Ok(()))
    }

    fn rmdir(&mut self, path: &str) -> Option<Result<(), Expect>> {
        if let Err(e) = self.parent_check(path) {
            return Some(Err(e));
        }
        match self.tree.get(path) {
            None => Some(Err(Expect::Errno(libc::ENOENT))),
            Some(Node::File(_)) => Some(Err(Expect::Errno(libc::ENOTDIR))),
            Some(Node::Dir) if self.has_children(path) => Some(Err(Expect::Errno(libc::ENOTEMPTY))),
            Some(Node::Dir) => {
                if !self.namespace_change(&[path]) {
                    return None;
                }
                self.tree.remove(path);
                Some(Ok(()))
            }
        }
    }

    fn rename(&mut self, from: &str, to: &str) -> Option<Result<(), Expect>> {
        if self.parent_check(from).is_err() || self.parent_check(to).is_err() {
            return Some(Err(Expect::AnyError));
        }
        let Some(src) = self.tree.get(from).cloned() else {
            return Some(Err(Expect::Errno(libc::ENOENT)));
        };
        if from == to {
            return Some(Ok(()));
        }
        if src == Node::Dir && is_prefix(from, to) {
            return Some(Err(Expect::Errno(libc::EINVAL)));
        }
        // The kernel refuses a target that is an ancestor of the source before asking us.
        if is_prefix(to, from) {
            return Some(Err(Expect::Errno(libc::ENOTEMPTY)));
        }
        if let Some(dst) = self.tree.get(to) {
            let refused = match (&src, dst) {
                (Node::File(_), Node::Dir) => Some(Expect::Errno(libc::EISDIR)),
                (Node::Dir, Node::File(_)) => Some(Expect::Errno(libc::ENOTDIR)),
                // ENOTEMPTY or EEXIST, as the kernel sees fit; also the case of `to` being an
                // ancestor of `from`.
                (Node::Dir, Node::Dir) if self.has_children(to) => Some(Expect::AnyError),
                _ => None,
            };
            if let Some(e) = refused {
                return Some(Err(e));
            }
        }
        if !self.namespace_change(&[from, to]) {
            return None;
        }
        self.tree.remove(to);
        let moved: Vec<(String, Node)> = self
            .tree
            .iter()
            .filter(|(k, _)| is_prefix(from, k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in moved {
            self.tree.remove(&k);
            self.tree.insert(format!("{to}{}", &k[from.len()..]), v);
        }
        let conflicts: Vec<String> = self
            .conflicts
            .keys()
            .filter(|k| k.starts_with(&format!("{from}/")))
            .cloned()
            .collect();
        for k in conflicts {
            if let Some(c) = self.conflicts.remove(&k) {
                self.conflicts
                    .insert(format!("{to}{}", &k[from.len()..]), c);
            }
        }
        Some(Ok(()))
    }

    /// Whether another client may upload `path` now, online: a file, or a new name in an
    /// existing folder.
    pub fn server_write_allowed(&self, path: &str) -> bool {
        self.outage.is_none()
            && self.parent_check(path).is_ok()
            && !matches!(self.tree.get(path), Some(Node::Dir))
            && !self.conflicts.contains_key(path)
    }

    pub fn server_write(&mut self, path: &str, content: Vec<u8>) {
        self.server_changed = true;
        self.tree.insert(path.to_owned(), Node::File(content));
    }

    pub fn begin_outage(&mut self) {
        let start = self
            .tree
            .iter()
            .filter(|(_, n)| matches!(n, Node::File(_)))
            .map(|(k, _)| k.clone())
            .collect();
        self.outage = Some(Outage {
            start,
            ..Outage::default()
        });
    }

    /// During an outage, another client may change a file that existed before it and that
    /// no local namespace change has touched since (its name still means the same node).
    pub fn server_edit_allowed(&self, path: &str) -> bool {
        let Some(o) = &self.outage else { return false };
        o.start.contains(path)
            && matches!(self.tree.get(path), Some(Node::File(_)))
            && !o
                .moved
                .iter()
                .any(|m| is_prefix(m, path) || is_prefix(path, m))
    }

    pub fn server_edit(&mut self, path: &str, content: Vec<u8>) {
        self.server_changed = true;
        if let Some(o) = &mut self.outage {
            o.server_edits.insert(path.to_owned(), content);
        }
    }

    /// The server is back: each file both sides changed keeps the server's content under its
    /// name, and ours appears beside it as a conflict copy.
    pub fn end_outage(&mut self) {
        let Some(o) = self.outage.take() else { return };
        for (path, server) in o.server_edits {
            if let Some(versions) = o.local_versions.get(&path)
                && let Some(last) = versions.last()
            {
                let c = self.conflicts.entry(path.clone()).or_default();
                c.required.insert(last.clone());
                c.allowed.extend(versions.iter().cloned());
            }
            self.tree.insert(path, Node::File(server));
        }
    }
}
