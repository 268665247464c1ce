//! A file edited here and moved on the server before the edit was uploaded: the edit follows
//! the file to its new name (rather than re-creating the old name beside the moved file).

use super::core::CellsFs;
use super::errors::from_join_error;
use super::{FsError, FsResult};
use crate::client::{Node, Remote};

impl<R: Remote> CellsFs<R> {
    /// Handles a server move of `source` to `target` when a pending edit of the moved content
    /// waits in the journal: the upload is retargeted and the local row moved with it.
    /// Returns false (nothing done) in every other case, for the ordinary event handling.
    pub(super) async fn follow_remote_move(&self, source: &Node, target: &Node) -> FsResult<bool> {
        let Some(setup) = self.write_setup.get() else {
            return Ok(false);
        };
        let Some(version) = target.version.clone() else {
            return Ok(false);
        };
        let journal = setup.journal.clone();
        let (old, new) = (source.path.clone(), target.path.clone());
        let followed =
            tokio::task::spawn_blocking(move || journal.retarget_edit(&old, &new, &version))
                .await
                .map_err(from_join_error)?
                .map_err(|e| FsError::Io(format!("upload journal: {e}")))?;
        if followed == 0 {
            return Ok(false);
        }
        let (old, new) = (source.path.clone(), target.path.clone());
        let changes = self
            .meta(move |m| {
                let (Some(row), Some(parent)) = (m.by_path(&old)?, m.by_path(&new.parent())?)
                else {
                    return Ok(Vec::new());
                };
                if !parent.is_dir() {
                    return Ok(Vec::new());
                }
                m.rename_local(row.ino, parent.ino, new.name(), &[])
            })
            .await?;
        self.deliver(changes);
        tracing::info!(
            "{} was moved on the server to {}: the pending edit follows it",
            source.path,
            target.path
        );
        Ok(true)
    }
}
