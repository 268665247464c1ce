//! Which pending operations may start now. An operation waits while any earlier pending one
//! (in flight, backing off, or in error) touches the same path, an ancestor or a descendant of
//! it, counting both ends of renames: a folder exists before its children, a rename follows
//! the upload it depends on. Operations are considered in line order, so an old one is never
//! starved by newer ones.

use super::op::{Op, OpState};
use crate::names::RemotePath;
use std::collections::HashSet;

/// The paths of the operations seen so far, indexed so that a conflict check costs one
/// lookup per ancestor (O(depth)), not one per earlier operation.
#[derive(Default)]
struct Seen {
    exact: HashSet<String>,
    /// Proper ancestors of every path in `exact`.
    ancestors: HashSet<String>,
}

impl Seen {
    fn add(&mut self, path: &RemotePath) {
        self.exact.insert(path.as_str().to_owned());
        for a in proper_ancestors(path.as_str()) {
            if !self.ancestors.insert(a.to_owned()) {
                // Its own ancestors are already in.
                break;
            }
        }
    }

    /// True when `path` equals, is below, or is above some path seen.
    fn conflicts(&self, path: &RemotePath) -> bool {
        let p = path.as_str();
        self.exact.contains(p)
            || self.ancestors.contains(p)
            || proper_ancestors(p).any(|a| self.exact.contains(a))
    }
}

/// `a/b/c` yields `a/b`, then `a`.
fn proper_ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.char_indices()
        .rev()
        .filter(|&(_, c)| c == '/')
        .map(move |(i, _)| &path[..i])
}

/// Result of one scan of the line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Sequence numbers that may start now, oldest first.
    pub ready: Vec<i64>,
    /// Earliest time an operation that is only held by its backoff becomes ready.
    pub next_wake_ms: Option<i64>,
}

/// Picks up to `limit` operations that may start at `now_ms`. `ops` must be in line order;
/// `in_flight` ones are pending but not startable.
pub fn scan<'a>(
    ops: impl Iterator<Item = &'a Op>,
    in_flight: &HashSet<i64>,
    now_ms: i64,
    limit: usize,
) -> Scan {
    let mut seen = Seen::default();
    let mut out = Scan::default();
    if limit == 0 {
        // Nothing could start: the caller looks again when a running operation ends. (A
        // scan per journal change while all workers are busy made a burst of N saves cost
        // N^2 path lookups.)
        return out;
    }
    for op in ops {
        let paths = op.kind.paths();
        let blocked = paths.iter().any(|p| seen.conflicts(p));
        if !blocked && !in_flight.contains(&op.seq) {
            if op.not_before_ms <= now_ms {
                out.ready.push(op.seq);
                if out.ready.len() == limit {
                    // Full: the wake-up time of later ones does not matter until one of
                    // these ends, which wakes the caller anyway.
                    out.next_wake_ms = None;
                    return out;
                }
            } else {
                out.next_wake_ms = Some(
                    out.next_wake_ms
                        .map_or(op.not_before_ms, |w| w.min(op.not_before_ms)),
                );
            }
        }
        for p in paths {
            seen.add(p);
        }
    }
    out
}

/// True when nothing is left but operations in error and those waiting behind them: what
/// `drain` waits for.
pub fn only_errors_left<'a>(ops: impl Iterator<Item = &'a Op>) -> bool {
    let mut stuck = Seen::default();
    for op in ops {
        let paths = op.kind.paths();
        let behind_error = paths.iter().any(|p| stuck.conflicts(p));
        if op.state != OpState::Error && !behind_error {
            return false;
        }
        for p in paths {
            stuck.add(p);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::op::OpKind;

    fn p(s: &str) -> RemotePath {
        RemotePath::parse(s).unwrap()
    }

    fn op(seq: i64, kind: OpKind) -> Op {
        Op::queued(seq, kind)
    }

    fn upload(seq: i64, path: &str) -> Op {
        op(
            seq,
            OpKind::Upload {
                path: p(path),
                staging: format!("s{seq}"),
                size: 1,
                cells_hash: String::new(),
                md5: String::new(),
                base: None,
            },
        )
    }

    fn ready(ops: &[Op], in_flight: &[i64]) -> Vec<i64> {
        let in_flight = in_flight.iter().copied().collect();
        scan(ops.iter(), &in_flight, 1000, 100).ready
    }

    #[test]
    fn a_child_waits_for_its_folder_and_unrelated_paths_run_in_parallel() {
        let ops = vec![
            op(1, OpKind::Mkdir { path: p("ws/dir") }),
            upload(2, "ws/dir/a.txt"),
            upload(3, "ws/other.txt"),
            upload(4, "ws/dirt.txt"), // shares a prefix, not an ancestor
        ];
        assert_eq!(ready(&ops, &[]), vec![1, 3, 4]);
        // Still waiting while the mkdir is in flight.
        assert_eq!(ready(&ops, &[1]), vec![3, 4]);
        assert_eq!(ready(&ops[1..], &[]), vec![2, 3, 4]);
    }

    #[test]
    fn a_folder_operation_waits_for_pending_work_below_it() {
        let ops = vec![
            upload(1, "ws/dir/a.txt"),
            op(
                2,
                OpKind::Delete {
                    path: p("ws/dir"),
                    base: None,
                },
            ),
        ];
        assert_eq!(ready(&ops, &[]), vec![1]);
    }

    #[test]
    fn renames_wait_on_both_ends_and_block_both_ends() {
        let ops = vec![
            upload(1, "ws/a.txt"),
            op(
                2,
                OpKind::Rename {
                    from: p("ws/a.txt"),
                    to: p("ws/sub/b.txt"),
                },
            ),
            upload(3, "ws/sub/b.txt"),
            upload(4, "ws/sub/c.txt"),
        ];
        assert_eq!(ready(&ops, &[]), vec![1, 4]);
        assert_eq!(ready(&ops[1..], &[]), vec![2, 4]);
        assert_eq!(ready(&ops[2..], &[]), vec![3, 4]);
        // A rename into a folder waits for its creation.
        let ops = vec![
            op(1, OpKind::Mkdir { path: p("ws/new") }),
            op(
                2,
                OpKind::Rename {
                    from: p("ws/x"),
                    to: p("ws/new/x"),
                },
            ),
        ];
        assert_eq!(ready(&ops, &[]), vec![1]);
    }

    #[test]
    fn backoff_holds_an_op_and_everything_behind_it_and_sets_the_wake_time() {
        let mut first = upload(1, "ws/a.txt");
        first.not_before_ms = 5000;
        let ops = [first, upload(2, "ws/a.txt"), upload(3, "ws/b.txt")];
        let in_flight = HashSet::new();
        let s = scan(ops.iter(), &in_flight, 1000, 10);
        assert_eq!(s.ready, vec![3]);
        assert_eq!(s.next_wake_ms, Some(5000));
    }

    #[test]
    fn the_oldest_ready_ops_are_picked_first_so_none_starves() {
        let ops: Vec<Op> = (1..=50).map(|i| upload(i, &format!("ws/f{i}"))).collect();
        let in_flight = HashSet::new();
        assert_eq!(scan(ops.iter(), &in_flight, 0, 3).ready, vec![1, 2, 3]);
    }

    #[test]
    fn drain_ends_when_only_errors_and_their_dependants_remain() {
        let mut failed = upload(1, "ws/a.txt");
        failed.state = OpState::Error;
        let behind = op(
            2,
            OpKind::Rename {
                from: p("ws/a.txt"),
                to: p("ws/b.txt"),
            },
        );
        assert!(only_errors_left([failed.clone(), behind.clone()].iter()));
        assert!(!only_errors_left(
            [failed, behind, upload(3, "ws/c")].iter()
        ));
        assert!(only_errors_left([].iter()));
    }
}
