//! Validation of names and paths that come from the server or from the user.
//!
//! Nothing from a server reply becomes a path, a cache key or a directory entry before it has
//! passed through here: a hostile reply must be an error, never a way out of the mount.

use thiserror::Error;

/// Longest single name we accept (bytes). Linux's NAME_MAX; Cells itself allows longer, but
/// such entries could not be shown by any local file system anyway.
pub const MAX_NAME_BYTES: usize = 255;
/// Longest full remote path we accept (bytes), `workspace/a/b/...`.
pub const MAX_PATH_BYTES: usize = 4096;
/// Deepest path we accept.
pub const MAX_DEPTH: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("empty name")]
    Empty,
    #[error("name {0:?} is reserved (`.` or `..`)")]
    Dot(String),
    #[error("name contains a NUL byte")]
    Nul,
    #[error("name {0:?} contains a path separator")]
    Separator(String),
    #[error("name is {0} bytes long (limit {MAX_NAME_BYTES})")]
    TooLong(usize),
    #[error("path is {0} bytes long (limit {MAX_PATH_BYTES})")]
    PathTooLong(usize),
    #[error("path is {0} levels deep (limit {MAX_DEPTH})")]
    TooDeep(usize),
    #[error("name contains a control character")]
    Control,
}

/// Checks one path component. Control characters other than NUL are refused too: they make
/// names that terminals and file managers render misleadingly, and Cells clients never
/// create them.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name == "." || name == ".." {
        return Err(NameError::Dot(name.to_owned()));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong(name.len()));
    }
    if name.contains('\0') {
        return Err(NameError::Nul);
    }
    if name.contains('/') || name.contains('\\') {
        return Err(NameError::Separator(name.to_owned()));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(NameError::Control);
    }
    Ok(())
}

/// A validated remote path: `workspace-slug/dir/file`, no leading or trailing slash, every
/// component valid. The empty path is the root (the list of workspaces).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RemotePath(String);

impl RemotePath {
    pub fn root() -> Self {
        Self(String::new())
    }

    /// Parses a path as the server writes it. Leading and trailing slashes are tolerated
    /// (servers differ); empty components (`a//b`) are not.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        if raw.len() > MAX_PATH_BYTES {
            return Err(NameError::PathTooLong(raw.len()));
        }
        let trimmed = raw.trim_matches('/');
        if trimmed.is_empty() {
            return Ok(Self::root());
        }
        let mut depth = 0;
        for part in trimmed.split('/') {
            validate_name(part)?;
            depth += 1;
        }
        if depth > MAX_DEPTH {
            return Err(NameError::TooDeep(depth));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The child `name` of this path, after validating `name`.
    pub fn join(&self, name: &str) -> Result<Self, NameError> {
        validate_name(name)?;
        let joined = if self.0.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{}", self.0, name)
        };
        Self::parse(&joined)
    }

    /// Last component (empty for the root).
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// Parent path; the root's parent is the root.
    pub fn parent(&self) -> Self {
        match self.0.rfind('/') {
            Some(i) => Self(self.0[..i].to_owned()),
            None => Self::root(),
        }
    }

    /// The workspace slug (first component), if any.
    pub fn workspace(&self) -> Option<&str> {
        if self.0.is_empty() {
            None
        } else {
            self.0.split('/').next()
        }
    }

    /// True when `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &RemotePath) -> bool {
        other.is_root()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }

    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|s| !s.is_empty())
    }
}

impl std::fmt::Display for RemotePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a\\b",
            "a\0b",
            "tab\there",
            "\u{1b}[31m",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(validate_name(&"x".repeat(256)).is_err());
        assert!(validate_name(&"x".repeat(255)).is_ok());
        assert!(validate_name("résumé (final).docx").is_ok());
    }

    #[test]
    fn hostile_paths_are_refused() {
        for bad in ["ws/../etc", "ws/./a", "ws//a", "../x", "ws/a\0/b"] {
            assert!(RemotePath::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let deep = vec!["d"; MAX_DEPTH + 1].join("/");
        assert_eq!(
            RemotePath::parse(&deep),
            Err(NameError::TooDeep(MAX_DEPTH + 1))
        );
    }

    #[test]
    fn path_helpers() {
        let p = RemotePath::parse("/personal-files/a/b.txt").unwrap();
        assert_eq!(p.as_str(), "personal-files/a/b.txt");
        assert_eq!(p.name(), "b.txt");
        assert_eq!(p.parent().as_str(), "personal-files/a");
        assert_eq!(p.workspace(), Some("personal-files"));
        assert!(p.starts_with(&RemotePath::parse("personal-files/a").unwrap()));
        assert!(!p.starts_with(&RemotePath::parse("personal-files/a/b").unwrap()));
        assert!(p.starts_with(&RemotePath::root()));
        assert!(p.parent().join("..").is_err());
        assert_eq!(RemotePath::root().join("ws").unwrap().as_str(), "ws");
    }
}
