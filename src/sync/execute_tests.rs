//! Operations whose request an earlier run (cut short by a crash) left for the server to
//! finish: the retry must find the work done, not fail and hold back everything behind it.

use super::*;
use crate::client::{ClientResult, ListPage, Pieces, UploadOutcome};
use crate::fs::testing::MemoryRemote;
use crate::sync::NoHooks;
use async_trait::async_trait;
use std::ops::Range;

fn p(s: &str) -> RemotePath {
    RemotePath::parse(s).unwrap()
}

/// A server that, on the first move or delete, first finishes the same request from a
/// run that died, then answers ours as the real server does once the source is gone.
struct FinishesTheDeadRunFirst {
    tree: MemoryRemote,
}

#[async_trait]
impl Remote for FinishesTheDeadRunFirst {
    async fn stat(&self, path: &RemotePath) -> ClientResult<Node> {
        self.tree.stat(path).await
    }
    async fn list_page(&self, dir: &RemotePath, offset: u64, limit: u32) -> ClientResult<ListPage> {
        self.tree.list_page(dir, offset, limit).await
    }
    async fn read_range(&self, path: &RemotePath, range: Range<u64>) -> ClientResult<Pieces> {
        self.tree.read_range(path, range).await
    }
    async fn upload_file(&self, path: &RemotePath, local: &Path) -> ClientResult<UploadOutcome> {
        self.tree.upload_file(path, local).await
    }
    async fn mkdir(&self, path: &RemotePath) -> ClientResult<()> {
        self.tree.mkdir(path).await
    }
    async fn delete(&self, path: &RemotePath) -> ClientResult<()> {
        self.tree.delete(path).await?;
        Err(ClientError::JobFailed(format!("{path} not found")))
    }
    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> ClientResult<()> {
        self.tree.rename(from, to).await?;
        Err(ClientError::JobFailed(format!("{from} not found")))
    }
    async fn copy(&self, from: &RemotePath, to: &RemotePath) -> ClientResult<()> {
        self.tree.copy(from, to).await
    }
}

fn ctx(state: &Path, tree: MemoryRemote) -> Ctx {
    Ctx {
        journal: Arc::new(Journal::open(state, None).unwrap()),
        remote: Arc::new(FinishesTheDeadRunFirst { tree }),
        hooks: Arc::new(NoHooks),
        config: UploaderConfig::default(),
    }
}

fn op(kind: OpKind) -> Op {
    Op::queued(1, kind)
}

#[tokio::test]
async fn a_move_the_server_finished_for_a_dead_run_is_done() {
    let state = tempfile::tempdir().unwrap();
    let tree = MemoryRemote::new();
    tree.add_file("ws/a.txt", "a");
    let ctx = ctx(state.path(), tree);
    let rename = op(OpKind::Rename {
        from: p("ws/a.txt"),
        to: p("ws/b.txt"),
    });
    let outcome = run(&ctx, &rename).await;
    assert!(outcome.is_ok(), "{outcome:?}");
    assert!(ctx.remote.stat(&p("ws/b.txt")).await.is_ok());
    assert!(ctx.remote.stat(&p("ws/a.txt")).await.is_err());
}

#[tokio::test]
async fn a_delete_the_server_finished_for_a_dead_run_is_done() {
    let state = tempfile::tempdir().unwrap();
    let tree = MemoryRemote::new();
    tree.add_file("ws/a.txt", "a");
    let base = tree.node("ws/a.txt").and_then(|n| n.version);
    let ctx = ctx(state.path(), tree);
    let delete = op(OpKind::Delete {
        path: p("ws/a.txt"),
        base,
    });
    let outcome = run(&ctx, &delete).await;
    assert!(outcome.is_ok(), "{outcome:?}");
    assert!(ctx.remote.stat(&p("ws/a.txt")).await.is_err());
}
