//! The journal's pending operations in memory: by sequence number, with an index of the
//! paths they touch, so that "the newest operation touching this path" costs a few lookups
//! instead of a scan of the whole queue (a `cp -r` of thousands of files asks it per file).

use super::op::Op;
use crate::names::RemotePath;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeBounds;

#[derive(Default)]
pub(crate) struct OpTable {
    by_seq: BTreeMap<i64, Op>,
    /// Every path an operation names (both ends of a rename) → the operations naming it.
    by_path: BTreeMap<String, BTreeSet<i64>>,
}

impl OpTable {
    /// Adds `op`, or replaces the operation of the same sequence number.
    pub fn insert(&mut self, op: Op) {
        let seq = op.seq;
        self.remove(&seq);
        for path in op.kind.paths() {
            self.by_path
                .entry(path.as_str().to_owned())
                .or_default()
                .insert(seq);
        }
        self.by_seq.insert(seq, op);
    }

    pub fn remove(&mut self, seq: &i64) -> Option<Op> {
        let op = self.by_seq.remove(seq)?;
        for path in op.kind.paths() {
            if let Some(seqs) = self.by_path.get_mut(path.as_str()) {
                seqs.remove(seq);
                if seqs.is_empty() {
                    self.by_path.remove(path.as_str());
                }
            }
        }
        Some(op)
    }

    pub fn get(&self, seq: &i64) -> Option<&Op> {
        self.by_seq.get(seq)
    }

    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    /// In sequence order (oldest first).
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Op> {
        self.by_seq.values()
    }

    /// For changes to an operation's state and schedule only: its paths are indexed, so its
    /// `kind` must not change here (replace the operation with [`OpTable::insert`] instead).
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Op> {
        self.by_seq.values_mut()
    }

    pub fn range(&self, seqs: impl RangeBounds<i64>) -> impl DoubleEndedIterator<Item = &Op> {
        self.by_seq.range(seqs).map(|(_, op)| op)
    }

    /// The newest operation touching `path`: naming it, a folder above it, or something
    /// below it (either end of a rename).
    pub fn latest_touching(&self, path: &RemotePath) -> Option<&Op> {
        if path.is_root() {
            return self.by_seq.values().next_back();
        }
        let newest_in = |seqs: Option<&BTreeSet<i64>>| seqs.and_then(|s| s.last().copied());
        let key = path.as_str();
        // The path itself and every folder above it.
        let mut newest = newest_in(self.by_path.get(key));
        for (i, _) in key.match_indices('/') {
            newest = newest.max(newest_in(self.by_path.get(&key[..i])));
        }
        // Everything below it: the keys starting with "path/", which sort from "path/" up to
        // (not including) "path0", '0' being the character after '/'.
        let below = self
            .by_path
            .range(format!("{key}/")..format!("{key}0"))
            .filter_map(|(_, seqs)| seqs.last().copied())
            .max();
        newest = newest.max(below);
        newest.and_then(|seq| self.by_seq.get(&seq))
    }
}

impl FromIterator<Op> for OpTable {
    fn from_iter<I: IntoIterator<Item = Op>>(ops: I) -> Self {
        let mut table = OpTable::default();
        for op in ops {
            table.insert(op);
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::OpKind;

    fn path(p: &str) -> RemotePath {
        RemotePath::parse(p).expect("valid path")
    }

    fn mkdir(seq: i64, p: &str) -> Op {
        Op::queued(seq, OpKind::Mkdir { path: path(p) })
    }

    fn rename(seq: i64, from: &str, to: &str) -> Op {
        Op::queued(
            seq,
            OpKind::Rename {
                from: path(from),
                to: path(to),
            },
        )
    }

    /// The definition the index stands for: a scan of every operation.
    fn scanned(table: &OpTable, p: &RemotePath) -> Option<i64> {
        table
            .values()
            .rev()
            .find(|op| {
                op.kind
                    .paths()
                    .iter()
                    .any(|q| q.starts_with(p) || p.starts_with(q))
            })
            .map(|op| op.seq)
    }

    #[test]
    fn the_newest_operation_touching_a_path_is_found_above_at_and_below_it() {
        let mut table: OpTable = [
            mkdir(1, "ws/a"),
            mkdir(2, "ws/a/b"),
            rename(3, "ws/x/f", "ws/a/b/g"),
            mkdir(4, "ws/ab"),
            mkdir(5, "ws/a.b"),
            mkdir(6, "ws/a0"),
            mkdir(7, "ws/c"),
        ]
        .into_iter()
        .collect();
        let probes = [
            "ws",
            "ws/a",
            "ws/a/b",
            "ws/a/b/g",
            "ws/a/b/g/h",
            "ws/x",
            "ws/x/f",
            "ws/ab",
            "ws/a.b",
            "ws/a0",
            "ws/c/d",
            "ws/z",
            "other",
        ];
        let check = |table: &OpTable| {
            for p in probes.iter().map(|p| path(p)) {
                let found = table.latest_touching(&p).map(|op| op.seq);
                assert_eq!(found, scanned(table, &p), "{p}");
            }
            assert_eq!(
                table.latest_touching(&RemotePath::root()).map(|op| op.seq),
                table.values().last().map(|op| op.seq)
            );
        };
        check(&table);
        assert_eq!(table.latest_touching(&path("ws/a")).map(|o| o.seq), Some(3));
        assert_eq!(
            table.latest_touching(&path("ws/a.b")).map(|o| o.seq),
            Some(5)
        );
        assert_eq!(table.latest_touching(&path("ws/z")), None);
        // Replaced and removed operations leave the index with them.
        table.insert(mkdir(3, "ws/q"));
        check(&table);
        assert_eq!(table.latest_touching(&path("ws/x/f")), None);
        table.remove(&2);
        table.remove(&7);
        check(&table);
        assert_eq!(
            table.latest_touching(&path("ws/a/b")).map(|o| o.seq),
            Some(1)
        );
        assert_eq!(table.len(), 5);
    }
}
