//! What the client hands the rest of the program: validated nodes and their content version.
//!
//! Wire formats (v4 protojson `treeNode`, v2 `restNode`) are parsed elsewhere in `client`;
//! nothing outside the client sees raw server JSON.

use crate::names::RemotePath;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeKind {
    File,
    Folder,
}

/// How a node's content version was obtained. Servers differ (see the Cells Sync
/// compatibility matrix): a v4+ install, or a v3 upgrade after `datasource rehash`, records the
/// Cells block hash; a v3 server, or a v3 upgrade without rehash, only has the storage ETag,
/// which is a plain MD5 for single-part uploads and an opaque `md5-N` for multipart ones.
/// The choice is made per node, because a non-rehashed datasource hashes new uploads only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashKind {
    /// `x-cells-hash` (v4) / `ContentHash` (v2): verifiable with [`crate::hash::CellsHasher`].
    CellsHash,
    /// Storage ETag that is a plain MD5 of the whole content: verifiable with MD5.
    PlainMd5,
    /// Storage ETag that cannot be recomputed locally (multipart `md5-N`, or anything else):
    /// identifies a version, verifies nothing.
    OpaqueEtag,
}

/// One version of one file's content, whatever the server offers. Two nodes with equal
/// `ContentVersion`s have equal bytes (for `OpaqueEtag`, equal as far as the storage knows).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContentVersion {
    pub kind: HashKind,
    /// Lowercase hex for the two hash kinds; the ETag as sent (quotes removed) otherwise.
    pub value: String,
}

impl ContentVersion {
    /// Picks the best version identity a node carries. `cells_hash` wins; otherwise the storage
    /// ETag is classified. Returns `None` for folders' pseudo-ETags and for the `temporary`
    /// marker of an upload in progress.
    pub fn from_server(cells_hash: Option<&str>, storage_etag: Option<&str>) -> Option<Self> {
        if let Some(h) = cells_hash
            .map(|h| h.trim_matches('"'))
            .filter(|h| is_md5_hex(h))
        {
            return Some(Self {
                kind: HashKind::CellsHash,
                value: h.to_ascii_lowercase(),
            });
        }
        let etag = storage_etag.map(|e| e.trim_matches('"'))?;
        if etag.is_empty() || etag == "-1" || etag == "temporary" {
            return None;
        }
        if is_md5_hex(etag) {
            return Some(Self {
                kind: HashKind::PlainMd5,
                value: etag.to_ascii_lowercase(),
            });
        }
        Some(Self {
            kind: HashKind::OpaqueEtag,
            value: etag.to_owned(),
        })
    }

    /// A string safe to use as a file name and as a cache key: a kind prefix plus a value
    /// reduced to `[0-9a-zA-Z_-]` (opaque ETags are hex-encoded when they contain anything
    /// else, so two different ETags never collide).
    pub fn cache_key(&self) -> String {
        match self.kind {
            HashKind::CellsHash => format!("c{}", self.value),
            HashKind::PlainMd5 => format!("m{}", self.value),
            HashKind::OpaqueEtag => {
                if self
                    .value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    && self.value.len() <= 128
                {
                    format!("e{}", self.value)
                } else {
                    let hashed = crate::hash::cells_hash(self.value.as_bytes());
                    format!("x{hashed}")
                }
            }
        }
    }
}

fn is_md5_hex(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A workspace as it appears at the root of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceInfo {
    pub slug: String,
    pub uuid: Option<String>,
    pub label: Option<String>,
}

/// A file or folder, validated: its path passed [`RemotePath::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub uuid: Option<String>,
    pub path: RemotePath,
    pub kind: NodeKind,
    /// Bytes for files; Cells reports a recursive size for folders, kept for `du`-like views.
    pub size: u64,
    /// Modification time, Unix seconds.
    pub mtime: i64,
    /// Content version for files (absent for folders and for uploads in progress).
    pub version: Option<ContentVersion>,
    /// The storage ETag as sent, for diagnostics and S3 conditional requests.
    pub storage_etag: Option<String>,
    /// True when the server says the node or its level is read-only for this user.
    pub read_only: bool,
    /// Set on workspace roots.
    pub workspace: Option<WorkspaceInfo>,
}

impl Node {
    pub fn name(&self) -> &str {
        self.path.name()
    }
    pub fn is_dir(&self) -> bool {
        self.kind == NodeKind::Folder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_classification_covers_the_four_server_cases() {
        // v4 install, or v3 upgraded and rehashed: the Cells hash, even when an ETag exists.
        let v = ContentVersion::from_server(
            Some("\"4FBC18713BFA7C8BA8C1BFF45C2F75F7\""),
            Some("d9a6fbf6e6dbdfe64365f218c62dbcd7"),
        )
        .unwrap();
        assert_eq!(v.kind, HashKind::CellsHash);
        assert_eq!(v.value, "4fbc18713bfa7c8ba8c1bff45c2f75f7");
        // v3, or v3 upgraded without rehash: single-part ETag is a plain MD5.
        let v = ContentVersion::from_server(None, Some("\"d9a6fbf6e6dbdfe64365f218c62dbcd7\""))
            .unwrap();
        assert_eq!(v.kind, HashKind::PlainMd5);
        // ... and a multipart ETag is opaque.
        let v = ContentVersion::from_server(Some(""), Some("0f343b0931126a20f133d67c2b018a3b-3"))
            .unwrap();
        assert_eq!(v.kind, HashKind::OpaqueEtag);
        assert_eq!(v.cache_key(), "e0f343b0931126a20f133d67c2b018a3b-3");
        // Uploads in progress and folders have no version.
        assert!(ContentVersion::from_server(None, Some("temporary")).is_none());
        assert!(ContentVersion::from_server(None, Some("-1")).is_none());
        assert!(ContentVersion::from_server(None, None).is_none());
    }

    #[test]
    fn cache_keys_are_safe_file_names() {
        let v = ContentVersion::from_server(None, Some("../../etc/passwd")).unwrap();
        let key = v.cache_key();
        assert!(key.starts_with('x'));
        assert!(key[1..].bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
