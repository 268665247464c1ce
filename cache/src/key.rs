//! Cache keys: validation (keys become file names) and what each key lets us verify.

use crate::error::CacheError;
use md5::{Digest, Md5};

/// Longest accepted key: a one-letter kind prefix plus up to 129 characters.
pub const MAX_KEY_LEN: usize = 130;

/// What a key says about its content, i.e. how a complete entry can be verified as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `c` + 32 lowercase hex: the Cells hash (MD5 of the MD5s of 10 MiB blocks).
    CellsHash,
    /// `m` + 32 lowercase hex: the plain MD5 of the whole content.
    PlainMd5,
    /// Anything else (`e<etag>`, `x<hex>`, ...): identifies a version, verifies nothing.
    Opaque,
}

/// Refuses anything that is not 1..=130 characters from `[0-9A-Za-z_-]`.
pub fn validate_key(key: &str) -> Result<(), CacheError> {
    let ok = !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        // Truncate what we echo back: the key may be long garbage from a server.
        let shown: String = key.chars().take(MAX_KEY_LEN + 2).collect();
        Err(CacheError::InvalidKey(shown))
    }
}

/// Classifies a (valid) key. Only the exact shapes `ContentVersion::cache_key()` produces for
/// hashes count as verifiable; a `c` key of another shape is treated as opaque.
pub fn key_kind(key: &str) -> KeyKind {
    let is_hash = |s: &str| {
        s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    match key.split_at_checked(1) {
        Some(("c", rest)) if is_hash(rest) => KeyKind::CellsHash,
        Some(("m", rest)) if is_hash(rest) => KeyKind::PlainMd5,
        _ => KeyKind::Opaque,
    }
}

/// The data file name for a key: the hex MD5 of the key. Keys are case-sensitive (`e` keys
/// carry ETags as sent) while macOS and Windows file systems usually are not, so the key itself
/// is not used as a name; the digest is lowercase, fixed-length and spreads evenly over shards.
pub fn object_name(key: &str) -> String {
    hex::encode(Md5::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_shapes_cache_key_produces() {
        for key in [
            "c4fbc18713bfa7c8ba8c1bff45c2f75f7",
            "md9a6fbf6e6dbdfe64365f218c62dbcd7",
            "e0f343b0931126a20f133d67c2b018a3b-3",
            "x_abc",
        ] {
            validate_key(key).unwrap();
        }
        validate_key(&"e".repeat(MAX_KEY_LEN)).unwrap();
    }

    #[test]
    fn refuses_path_like_empty_and_long_keys() {
        for key in ["", "../x", "a/b", "a\\b", "a.b", "a b", "é", "k\0"] {
            assert!(
                matches!(validate_key(key), Err(CacheError::InvalidKey(_))),
                "{key:?}"
            );
        }
        assert!(validate_key(&"e".repeat(MAX_KEY_LEN + 1)).is_err());
    }

    #[test]
    fn kinds() {
        assert_eq!(
            key_kind("c4fbc18713bfa7c8ba8c1bff45c2f75f7"),
            KeyKind::CellsHash
        );
        assert_eq!(
            key_kind("md9a6fbf6e6dbdfe64365f218c62dbcd7"),
            KeyKind::PlainMd5
        );
        assert_eq!(key_kind("cABC"), KeyKind::Opaque);
        assert_eq!(
            key_kind("C4FBC18713BFA7C8BA8C1BFF45C2F75F7"),
            KeyKind::Opaque
        );
        assert_eq!(key_kind("e123"), KeyKind::Opaque);
    }

    #[test]
    fn object_names_differ_by_case() {
        assert_ne!(object_name("eAbc"), object_name("eabc"));
        assert_eq!(object_name("eAbc").len(), 32);
    }
}
