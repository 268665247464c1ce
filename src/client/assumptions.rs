//! Every inference about the Cells API that was not verified against a live server, in one
//! place so that correcting one is a one-line change.
//!
//! Marks follow the API notes: **[M]** inferred from code or SDK usage, **[L]** plausible.
//! Facts read directly in upstream code (**[H]**) live next to the code that uses them.

use crate::hash::CELLS_HASH_BLOCK;
use crate::names::RemotePath;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Prefix of the v4 REST API (`DefaultRouteREST`), present on v4 and v5. [H]
pub const REST_PREFIX: &str = "a";

/// Prefix of the v5 "REST v2" API. [M] The SDK example uses `<base>/v2`; not used yet, kept so
/// that the day we switch, the guess is here.
pub const REST_V2_PREFIX: &str = "v2";

/// Secret half of the S3 gateway's SigV4 credentials; the access key is the token itself.
/// [M] cells-sdk-go's default; the gateway re-signs internally after checking the token.
pub const S3_SECRET: &str = "gatewaysecret";

/// SigV4 region of the gateway. [M] cells-sdk-go's default.
pub const S3_REGION: &str = "us-east-1";

/// SigV4 service name. [H] standard S3.
pub const S3_SERVICE: &str = "s3";

/// Bucket exposing all workspaces, path-style: `/io/<ws-slug>/<path>`. [H]
pub const S3_BUCKET: &str = "io";

/// Whether the gateway accepts `X-Pydio-Bearer` without SigV4. [M] Not relied upon: we always
/// sign, which works on every version; kept to document the alternative.
pub const S3_ACCEPTS_BEARER_HEADER: bool = false;

/// Path of the change-feed websocket, relative to the server root. [H] for the path, [M] for
/// behaviour with personal access tokens (see [`EVENTS_RESUBSCRIBE_MARGIN_SECS`]).
pub const EVENTS_PATH: &str = "ws/event";

/// Re-subscribe this many seconds before the token expires. [M] the server drops the
/// subscription when the JWT it was given expires.
pub const EVENTS_RESUBSCRIBE_MARGIN_SECS: u64 = 60;

/// Characters left as they are inside one path segment of a URL: RFC 3986 unreserved
/// characters. Everything else, `/` included, is percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Encodes each segment of `path` and joins them with literal `/`.
pub fn encode_segments(path: &RemotePath) -> String {
    path.components()
        .map(|c| utf8_percent_encode(c, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// URL path (relative to the server root) of `GET /a/tree/stat/{Node}`. [M] Slashes inside the
/// `{Node}` parameter are sent as literal `/`, each segment percent-encoded: the gateway's
/// grpc-gateway route uses a `**` wildcard, which matches several segments.
pub fn tree_stat_path(path: &RemotePath) -> String {
    format!("{REST_PREFIX}/tree/stat/{}", encode_segments(path))
}

/// The `NodePaths` entry that lists the children of `dir` with `POST /a/tree/stats`. [H] for
/// `dir/*`; [M] for the root, where `/*` is assumed to expand to the workspaces.
pub fn children_pattern(dir: &RemotePath) -> String {
    if dir.is_root() {
        "/*".to_owned()
    } else {
        format!("{}/*", dir.as_str())
    }
}

/// URL path (relative to the server root) of an object on the S3 gateway.
pub fn s3_object_path(path: &RemotePath) -> String {
    format!("{S3_BUCKET}/{}", encode_segments(path))
}

/// Files strictly larger than this go through multipart upload; smaller ones are one PUT.
pub const MULTIPART_THRESHOLD: u64 = CELLS_HASH_BLOCK as u64;

/// S3's limit on the number of parts of one upload. [H] standard S3 (MinIO applies it too).
pub const S3_MAX_PARTS: u64 = 10_000;

/// Part size for a multipart upload of `len` bytes: the smallest multiple of the Cells hash
/// block (10 MiB) that keeps the number of parts within [`S3_MAX_PARTS`]. [H] for the
/// multiple-of-10-MiB rule: otherwise the server's recorded hash differs from the whole-file
/// hash, because it concatenates per-part block digests.
pub fn multipart_part_size(len: u64) -> u64 {
    let block = CELLS_HASH_BLOCK as u64;
    let blocks = len.div_ceil(block);
    let blocks_per_part = blocks.div_ceil(S3_MAX_PARTS).max(1);
    blocks_per_part * block
}

/// A job that `POST /a/jobs/user` no longer returns has finished and was cleaned up. [M] user
/// jobs (move, copy, delete) are created with auto-clean on some versions.
pub const JOB_MISSING_MEANS_DONE: bool = true;

/// Interprets `ExpireTime` from `POST /a/frontend/session`. [M] cells-sdk-go reads it as an
/// absolute Unix time; older front-ends sent a lifetime in seconds. Values below ten years'
/// worth of seconds can only be lifetimes, so both readings are accepted.
pub fn session_expiry(expire_time: i64, now_unix: i64) -> Option<i64> {
    const TEN_YEARS: i64 = 10 * 365 * 24 * 3600;
    match expire_time {
        t if t <= 0 => None,
        t if t < TEN_YEARS => Some(now_unix.saturating_add(t)),
        t => Some(t),
    }
}

/// Name of the folder that Cells moves deleted nodes into, at the root of each workspace
/// (pydio/cells `common/naming.go`, [H]). The mount hides it, as Cells Sync and other
/// on-demand clients hide their server's trash: a delete must not reappear as a new folder.
pub const RECYCLE_BIN: &str = "recycle_bin";

/// True for a workspace's recycle bin and everything inside it.
pub fn is_in_recycle_bin(path: &RemotePath) -> bool {
    path.components().nth(1) == Some(RECYCLE_BIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded_one_by_one() {
        let p = RemotePath::parse("personal-files/a b/c%d?#é.txt").unwrap();
        assert_eq!(
            encode_segments(&p),
            "personal-files/a%20b/c%25d%3F%23%C3%A9.txt"
        );
        assert_eq!(
            tree_stat_path(&p),
            "a/tree/stat/personal-files/a%20b/c%25d%3F%23%C3%A9.txt"
        );
        assert_eq!(
            s3_object_path(&p),
            "io/personal-files/a%20b/c%25d%3F%23%C3%A9.txt"
        );
    }

    #[test]
    fn session_expiry_accepts_both_readings() {
        assert_eq!(session_expiry(600, 1_700_000_000), Some(1_700_000_600));
        assert_eq!(
            session_expiry(1_700_000_900, 1_700_000_000),
            Some(1_700_000_900)
        );
        assert_eq!(session_expiry(0, 1_700_000_000), None);
    }

    #[test]
    fn recycle_bin_is_the_second_component_only() {
        let p = |s: &str| RemotePath::parse(s).unwrap();
        assert!(is_in_recycle_bin(&p("ws/recycle_bin")));
        assert!(is_in_recycle_bin(&p("ws/recycle_bin/old.txt")));
        assert!(!is_in_recycle_bin(&p("recycle_bin")));
        assert!(!is_in_recycle_bin(&p("ws/docs/recycle_bin")));
        assert!(!is_in_recycle_bin(&p("ws/recycle_bin2")));
    }

    #[test]
    fn children_patterns() {
        assert_eq!(children_pattern(&RemotePath::root()), "/*");
        let d = RemotePath::parse("ws/d").unwrap();
        assert_eq!(children_pattern(&d), "ws/d/*");
    }

    #[test]
    fn part_sizes_are_block_multiples_within_the_part_limit() {
        let block = CELLS_HASH_BLOCK as u64;
        assert_eq!(multipart_part_size(25 * 1024 * 1024), block);
        assert_eq!(multipart_part_size(0), block);
        let huge = block * S3_MAX_PARTS + 1;
        let part = multipart_part_size(huge);
        assert_eq!(part % block, 0);
        assert!(huge.div_ceil(part) <= S3_MAX_PARTS);
    }
}
