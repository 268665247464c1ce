//! The one place where core errors become NTSTATUS codes, and core attributes become what
//! Explorer shows (FILETIME timestamps, FILE_ATTRIBUTE_* bits). Pure, so it is compiled and
//! tested on every platform; the WinFsp adapter is its user.

use crate::fs::{Attr, FileKind, FsError};
use std::time::{Duration, SystemTime};

/// NTSTATUS values (winnt.h / ntstatus.h); plain constants so this module needs no Windows
/// crate and stays testable on Linux.
pub mod status {
    pub const SUCCESS: i32 = 0;
    pub const END_OF_FILE: i32 = 0xC000_0011_u32 as i32;
    pub const OBJECT_NAME_NOT_FOUND: i32 = 0xC000_0034_u32 as i32;
    pub const OBJECT_PATH_NOT_FOUND: i32 = 0xC000_003A_u32 as i32;
    pub const NOT_A_DIRECTORY: i32 = 0xC000_0103_u32 as i32;
    pub const FILE_IS_A_DIRECTORY: i32 = 0xC000_00BA_u32 as i32;
    pub const DIRECTORY_NOT_EMPTY: i32 = 0xC000_0101_u32 as i32;
    pub const OBJECT_NAME_COLLISION: i32 = 0xC000_0035_u32 as i32;
    pub const ACCESS_DENIED: i32 = 0xC000_0022_u32 as i32;
    pub const MEDIA_WRITE_PROTECTED: i32 = 0xC000_00A2_u32 as i32;
    pub const OBJECT_NAME_INVALID: i32 = 0xC000_0033_u32 as i32;
    pub const NAME_TOO_LONG: i32 = 0xC000_0106_u32 as i32;
    pub const INVALID_PARAMETER: i32 = 0xC000_000D_u32 as i32;
    pub const EA_NOT_FOUND: i32 = 0xC000_0052_u32 as i32;
    pub const BUFFER_TOO_SMALL: i32 = 0xC000_0023_u32 as i32;
    pub const INVALID_HANDLE: i32 = 0xC000_0008_u32 as i32;
    pub const NOT_SUPPORTED: i32 = 0xC000_00BB_u32 as i32;
    pub const NETWORK_UNREACHABLE: i32 = 0xC000_023C_u32 as i32;
    pub const BAD_NETWORK_PATH: i32 = 0xC000_00BE_u32 as i32;
    pub const LOGON_FAILURE: i32 = 0xC000_006D_u32 as i32;
    pub const SHARING_VIOLATION: i32 = 0xC000_0043_u32 as i32;
    pub const QUOTA_EXCEEDED: i32 = 0xC000_0044_u32 as i32;
    pub const DISK_FULL: i32 = 0xC000_007F_u32 as i32;
    pub const CANCELLED: i32 = 0xC000_0120_u32 as i32;
    pub const UNEXPECTED_IO_ERROR: i32 = 0xC000_00E9_u32 as i32;
}

/// The NTSTATUS Windows hands to the application for `err` (Win32 error in brackets).
///
/// Choices that are not obvious:
/// - `Offline` → `STATUS_NETWORK_UNREACHABLE` (ERROR_NETWORK_UNREACHABLE, "The network
///   location cannot be reached"): it is what Explorer and Office show for an unreachable
///   share, and it is transient. `STATUS_BAD_NETWORK_PATH` ("network path not found") reads
///   as "this path does not exist", which makes sync tools and Office treat the file as gone.
/// - `NotFound` → `STATUS_OBJECT_NAME_NOT_FOUND` (ERROR_FILE_NOT_FOUND); the adapter answers
///   `STATUS_OBJECT_PATH_NOT_FOUND` itself when an intermediate folder is missing.
/// - `Locked` → `STATUS_SHARING_VIOLATION` (ERROR_SHARING_VIOLATION): what Office expects
///   when another user has the document open, and it reports it as "locked for editing".
/// - `Unauthenticated` → `STATUS_LOGON_FAILURE`: the user must log in again.
/// - `ReadOnly` → `STATUS_MEDIA_WRITE_PROTECTED` (ERROR_WRITE_PROTECT), as for a read-only
///   volume; a Cells ACL refusal (`Denied`) is `STATUS_ACCESS_DENIED`.
pub fn ntstatus(err: &FsError) -> i32 {
    match err {
        FsError::NotFound => status::OBJECT_NAME_NOT_FOUND,
        FsError::NotDir => status::NOT_A_DIRECTORY,
        FsError::IsDir => status::FILE_IS_A_DIRECTORY,
        FsError::NotEmpty => status::DIRECTORY_NOT_EMPTY,
        FsError::Exists => status::OBJECT_NAME_COLLISION,
        FsError::Denied(_) => status::ACCESS_DENIED,
        FsError::ReadOnly => status::MEDIA_WRITE_PROTECTED,
        FsError::NotPermitted(_) => status::ACCESS_DENIED,
        FsError::InvalidName(_) => status::OBJECT_NAME_INVALID,
        FsError::NameTooLong => status::NAME_TOO_LONG,
        FsError::Invalid(_) => status::INVALID_PARAMETER,
        FsError::NoAttr => status::EA_NOT_FOUND,
        FsError::Range(_) => status::BUFFER_TOO_SMALL,
        FsError::BadHandle => status::INVALID_HANDLE,
        FsError::Unsupported => status::NOT_SUPPORTED,
        FsError::Offline => status::NETWORK_UNREACHABLE,
        FsError::Unauthenticated => status::LOGON_FAILURE,
        FsError::Locked => status::SHARING_VIOLATION,
        FsError::Quota => status::QUOTA_EXCEEDED,
        FsError::NoSpace => status::DISK_FULL,
        FsError::Interrupted => status::CANCELLED,
        FsError::Io(_) => status::UNEXPECTED_IO_ERROR,
    }
}

/// 100-ns intervals between 1601-01-01 (FILETIME's epoch) and 1970-01-01.
const FILETIME_UNIX_EPOCH: u64 = 116_444_736_000_000_000;

/// A FILETIME value (100 ns since 1601); times before 1601 clamp to 0.
pub fn filetime(t: SystemTime) -> u64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => FILETIME_UNIX_EPOCH.saturating_add((after.as_nanos() / 100) as u64),
        Err(before) => {
            FILETIME_UNIX_EPOCH.saturating_sub((before.duration().as_nanos() / 100) as u64)
        }
    }
}

/// The `SystemTime` of a FILETIME; `None` for 0, which Windows uses for "leave unchanged".
pub fn system_time(filetime: u64) -> Option<SystemTime> {
    if filetime == 0 {
        return None;
    }
    let unix = SystemTime::UNIX_EPOCH;
    Some(if filetime >= FILETIME_UNIX_EPOCH {
        unix + Duration::from_nanos((filetime - FILETIME_UNIX_EPOCH).saturating_mul(100))
    } else {
        unix - Duration::from_nanos((FILETIME_UNIX_EPOCH - filetime).saturating_mul(100))
    })
}

pub const FILE_ATTRIBUTE_READONLY: u32 = 0x1;
pub const FILE_ATTRIBUTE_HIDDEN: u32 = 0x2;
pub const FILE_ATTRIBUTE_DIRECTORY: u32 = 0x10;
pub const FILE_ATTRIBUTE_ARCHIVE: u32 = 0x20;

/// FILE_ATTRIBUTE_* bits for a node named `win_name`: folders are directories; files carry
/// the archive bit (as on NTFS) and READONLY when Cells refuses writes; dot-files are hidden,
/// as Samba's `hide dot files` does, so Unix clutter stays out of Explorer's default view.
pub fn file_attributes(attr: &Attr, win_name: &str) -> u32 {
    let mut bits = match attr.kind {
        FileKind::Dir => FILE_ATTRIBUTE_DIRECTORY,
        FileKind::File => FILE_ATTRIBUTE_ARCHIVE,
    };
    if attr.kind == FileKind::File && attr.perm & 0o200 == 0 {
        bits |= FILE_ATTRIBUTE_READONLY;
    }
    if win_name.starts_with('.') && win_name != "." && win_name != ".." {
        bits |= FILE_ATTRIBUTE_HIDDEN;
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: FileKind, perm: u16) -> Attr {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        Attr {
            ino: 2,
            kind,
            size: 10,
            mtime: t,
            ctime: t,
            perm,
            nlink: 1,
            uid: 0,
            gid: 0,
        }
    }

    #[test]
    fn every_error_maps_to_an_error_status_and_key_choices_hold() {
        let all = FsError::one_of_each();
        for e in &all {
            // Severity "error": the two top bits set.
            assert_eq!((ntstatus(e) as u32) >> 30, 0b11, "{e:?}");
        }
        assert_eq!(ntstatus(&FsError::Offline), status::NETWORK_UNREACHABLE);
        assert_ne!(ntstatus(&FsError::Offline), ntstatus(&FsError::NotFound));
        assert_eq!(ntstatus(&FsError::Locked), status::SHARING_VIOLATION);
        assert_eq!(ntstatus(&FsError::NoSpace), status::DISK_FULL);
    }

    #[test]
    fn filetime_round_trips_and_knows_its_epoch() {
        assert_eq!(filetime(SystemTime::UNIX_EPOCH), FILETIME_UNIX_EPOCH);
        let t = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_700);
        assert_eq!(system_time(filetime(t)), Some(t));
        let old = SystemTime::UNIX_EPOCH - Duration::from_secs(86_400);
        assert_eq!(system_time(filetime(old)), Some(old));
        assert_eq!(system_time(0), None);
    }

    #[test]
    fn attributes_as_explorer_shows_them() {
        assert_eq!(
            file_attributes(&attr(FileKind::Dir, 0o755), "Docs"),
            FILE_ATTRIBUTE_DIRECTORY
        );
        assert_eq!(
            file_attributes(&attr(FileKind::File, 0o644), "a.txt"),
            FILE_ATTRIBUTE_ARCHIVE
        );
        assert_eq!(
            file_attributes(&attr(FileKind::File, 0o444), ".profile"),
            FILE_ATTRIBUTE_ARCHIVE | FILE_ATTRIBUTE_READONLY | FILE_ATTRIBUTE_HIDDEN
        );
    }
}
