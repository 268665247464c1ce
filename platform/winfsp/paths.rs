//! Windows paths (`\Docs\Report.txt`) to core inodes: each component is looked up in its
//! folder's name table, case-insensitively, so Windows names map back to server names.

use super::adapter::run;
use crate::fs::{FileSystem, FsError, Ino, ROOT_INO};
use crate::platform::winnames::DirNames;
use std::ffi::OsStr;
use std::sync::Arc;

/// A resolved node: its inode, its parent, and its names on the server and on Windows.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub ino: Ino,
    pub parent: Ino,
    pub server_name: String,
    pub win_name: String,
}

/// The components of a Windows path, without empty ones (leading `\`, doubled separators).
pub fn components(path: &str) -> Vec<&str> {
    path.split(['\\', '/']).filter(|c| !c.is_empty()).collect()
}

/// The server names of folder `dir`, as a Windows name table.
pub fn dir_names<F: FileSystem>(
    fs: &Arc<F>,
    rt: &tokio::runtime::Handle,
    dir: Ino,
) -> Result<DirNames, FsError> {
    let fs = fs.clone();
    run(rt, async move {
        let fh = fs.opendir(dir).await?;
        let mut names = Vec::new();
        let mut offset = 0;
        let listed = loop {
            match fs.readdir(dir, fh, offset).await {
                Ok(batch) if batch.is_empty() => break Ok(()),
                Ok(batch) => {
                    offset = batch.last().map_or(offset, |e| e.next_offset);
                    names.extend(
                        batch
                            .into_iter()
                            .map(|e| e.name)
                            .filter(|n| n != "." && n != ".."),
                    );
                }
                Err(e) => break Err(e),
            }
        };
        fs.releasedir(dir, fh).await;
        listed.map(|()| DirNames::new(names.iter().map(String::as_str)))
    })
}

/// Resolves a whole path; the root resolves to itself. Every folder on the way is listed
/// (the core answers from its index) because only the listing maps names case-insensitively.
pub fn resolve<F: FileSystem>(
    fs: &Arc<F>,
    rt: &tokio::runtime::Handle,
    path: &str,
) -> Result<Resolved, FsError> {
    let mut node = Resolved {
        ino: ROOT_INO,
        parent: ROOT_INO,
        server_name: String::new(),
        win_name: String::new(),
    };
    for win in components(path) {
        let names = dir_names(fs, rt, node.ino)?;
        let server = names.resolve(win).ok_or(FsError::NotFound)?.to_owned();
        let win_name = names.windows_name(&server).unwrap_or(win).to_owned();
        let (fs2, parent, name) = (fs.clone(), node.ino, server.clone());
        let entry = run(
            rt,
            async move { fs2.lookup(parent, OsStr::new(&name)).await },
        )?;
        node = Resolved {
            ino: entry.attr.ino,
            parent,
            server_name: server,
            win_name,
        };
    }
    Ok(node)
}

/// The parent folder of `path` and the server name its last component stands for (an
/// existing entry in any case, or the decoding of a new Windows name).
pub fn resolve_parent<F: FileSystem>(
    fs: &Arc<F>,
    rt: &tokio::runtime::Handle,
    path: &str,
) -> Result<(Ino, String), FsError> {
    let parts = components(path);
    let Some((last, dirs)) = parts.split_last() else {
        return Err(FsError::Invalid("the root has no parent".into()));
    };
    let parent = resolve(fs, rt, &dirs.join("\\"))?;
    let names = dir_names(fs, rt, parent.ino)?;
    let server = names
        .server_name(last)
        .map_err(|e| FsError::InvalidName(e.0))?;
    Ok((parent.ino, server))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_skip_separators() {
        assert_eq!(components("\\a\\b/c\\"), ["a", "b", "c"]);
        assert!(components("\\").is_empty());
    }
}
