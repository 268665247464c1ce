//! The one place where core errors become errno values, and where every failed request is
//! logged and counted, so the mapping and the error statistics cannot drift apart.

use crate::fs::FsError;
use std::sync::atomic::{AtomicU64, Ordering};

/// The errno the kernel hands to the application for `err`.
///
/// Choices that are not obvious:
/// - `Offline` → `EHOSTDOWN` ("Host is down"): the Cells server cannot be reached and the data
///   is not cached. It says what happened without claiming the local network is down
///   (`ENETDOWN`), and unlike `EAGAIN` it does not make programs spin in retry loops, and
///   unlike `ENOENT` it never makes a sync tool conclude the file was deleted.
/// - `Unauthenticated` → `EACCES`: the user must log in again; nothing local is wrong.
/// - `Locked` → `EBUSY` ("Device or resource busy"): another user holds the Cells lock.
///   `ETXTBSY` would name executables, `EAGAIN` would invite busy retries.
/// - `Denied` → `EACCES` (a Cells ACL refusal is a permission check, not `EPERM`'s
///   "operation needs privileges").
/// - `NoAttr` → `ENODATA` on Linux, `ENOATTR` on macOS (what `getxattr(2)` callers test).
pub fn errno(err: &FsError) -> i32 {
    match err {
        FsError::NotFound => libc::ENOENT,
        FsError::NotDir => libc::ENOTDIR,
        FsError::IsDir => libc::EISDIR,
        FsError::NotEmpty => libc::ENOTEMPTY,
        FsError::Exists => libc::EEXIST,
        FsError::Denied(_) => libc::EACCES,
        FsError::ReadOnly => libc::EROFS,
        FsError::NotPermitted(_) => libc::EPERM,
        FsError::InvalidName(_) => libc::EINVAL,
        FsError::NameTooLong => libc::ENAMETOOLONG,
        FsError::Invalid(_) => libc::EINVAL,
        FsError::NoAttr => fuser::Errno::NO_XATTR.code(),
        FsError::Range(_) => libc::ERANGE,
        FsError::BadHandle => libc::EBADF,
        FsError::Unsupported => libc::ENOTSUP,
        FsError::Offline => libc::EHOSTDOWN,
        FsError::Unauthenticated => libc::EACCES,
        FsError::Locked => libc::EBUSY,
        FsError::Quota => libc::EDQUOT,
        FsError::NoSpace => libc::ENOSPC,
        FsError::Interrupted => libc::EINTR,
        FsError::Io(_) => libc::EIO,
    }
}

/// Errors that are part of normal operation (a shell probing for a file that is not there,
/// a tool asking for an attribute we do not have): logged at debug level only.
fn is_routine(err: &FsError) -> bool {
    matches!(
        err,
        FsError::NotFound | FsError::NoAttr | FsError::Range(_) | FsError::Exists
    )
}

/// Counts of failed requests, by errno class, plus requests the core never answered.
#[derive(Debug, Default)]
pub struct ErrorStats {
    routine: AtomicU64,
    offline: AtomicU64,
    auth: AtomicU64,
    other: AtomicU64,
    unanswered: AtomicU64,
}

/// A point-in-time copy of [`ErrorStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    pub routine: u64,
    pub offline: u64,
    pub auth: u64,
    pub other: u64,
    /// Requests answered with EIO by the reply guard because the core failed or panicked.
    pub unanswered: u64,
}

impl ErrorStats {
    /// Logs and counts one failed request; returns the errno to reply with.
    pub fn record(&self, op: &'static str, err: &FsError) -> i32 {
        let code = errno(err);
        let counter = match err {
            e if is_routine(e) => &self.routine,
            FsError::Offline => &self.offline,
            FsError::Unauthenticated => &self.auth,
            _ => &self.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if is_routine(err) {
            tracing::debug!(op, errno = code, "{err}");
        } else {
            tracing::warn!(op, errno = code, "{err}");
        }
        code
    }

    /// Counts a request that reached its end without a reply (the core panicked or its task
    /// was dropped).
    pub fn record_unanswered(&self, op: &'static str) {
        self.unanswered.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            op,
            "request ended without a reply (core failed or panicked): EIO"
        );
    }

    pub fn snapshot(&self) -> ErrorCounts {
        ErrorCounts {
            routine: self.routine.load(Ordering::Relaxed),
            offline: self.offline.load(Ordering::Relaxed),
            auth: self.auth.load(Ordering::Relaxed),
            other: self.other.load(Ordering::Relaxed),
            unanswered: self.unanswered.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_maps_to_a_positive_errno_and_key_choices_hold() {
        let all = FsError::one_of_each();
        for e in &all {
            assert!(errno(e) > 0, "{e:?}");
        }
        assert_eq!(errno(&FsError::Offline), libc::EHOSTDOWN);
        assert_eq!(errno(&FsError::Unauthenticated), libc::EACCES);
        assert_eq!(errno(&FsError::Quota), libc::EDQUOT);
        assert_eq!(errno(&FsError::NoSpace), libc::ENOSPC);
        assert_eq!(errno(&FsError::Locked), libc::EBUSY);
    }

    #[test]
    fn record_counts_by_class() {
        let stats = ErrorStats::default();
        stats.record("lookup", &FsError::NotFound);
        stats.record("read", &FsError::Offline);
        stats.record("read", &FsError::Offline);
        stats.record("open", &FsError::Unauthenticated);
        stats.record("read", &FsError::Io("x".into()));
        stats.record_unanswered("read");
        let c = stats.snapshot();
        assert_eq!(
            c,
            ErrorCounts {
                routine: 1,
                offline: 2,
                auth: 1,
                other: 1,
                unanswered: 1
            }
        );
    }
}
