//! Server names ↔ Windows names, reversibly. Windows forbids `<>:"|?*\`, control characters,
//! a trailing dot or space and device names (`CON`, `com1.txt`...) that Cells allows, and it
//! compares names case-insensitively where Cells does not. Pure Rust, so it is compiled and
//! tested on every platform; the WinFsp adapter is its only user.
//!
//! Encoding (as Cygwin and Samba's `catia` do): each forbidden character `c` becomes the
//! private-use character U+F000 + `c`. A server name that already contains a character of
//! U+F000..=U+F0FF gets it escaped as [`ESCAPE`] + that character, so decoding is unambiguous.
//! Decoding accepts only canonical encodings (`encode(decode(w)) == w`): a name typed on
//! Windows that no server name encodes to is refused rather than silently renamed.

use md5::{Digest, Md5};
use std::collections::HashMap;

/// Start of the private-use block forbidden characters are shifted into.
const PUA_BASE: u32 = 0xF000;
/// Escapes a private-use character of the server name itself.
pub const ESCAPE: char = '\u{F0FF}';
/// Marks the suffix that separates names differing only in case (never produced otherwise).
pub const CASE_MARK: char = '\u{F0FE}';

const FORBIDDEN: &[char] = &['<', '>', ':', '"', '|', '?', '*', '\\'];
const DEVICES: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "COM¹", "COM²", "COM³", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8",
    "LPT9", "LPT¹", "LPT²", "LPT³",
];

/// A Windows name that no server name maps to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid name on this volume: {0:?}")]
pub struct WinNameError(pub String);

fn shifted(c: char) -> char {
    // U+F000 + an ASCII code is always a valid scalar value.
    char::from_u32(PUA_BASE + c as u32).unwrap_or(c)
}

fn is_pua(c: char) -> bool {
    (PUA_BASE..=PUA_BASE + 0xFF).contains(&(c as u32))
}

/// Whether `name` (or its part before the first dot, trailing spaces ignored) is a DOS device.
/// Windows matches device names ASCII-case-insensitively.
fn is_device(name: &str) -> bool {
    let base = name.split('.').next().unwrap_or(name).trim_end_matches(' ');
    DEVICES.iter().any(|d| base.eq_ignore_ascii_case(d))
}

/// The Windows name of server name `server` (one component, already valid on the server).
pub fn to_windows(server: &str) -> String {
    let chars: Vec<char> = server.chars().collect();
    let mut out = String::with_capacity(server.len() + 4);
    let device_end = if is_device(server) {
        // Shift the last character of the base name: `CON.txt` → `CO\u{F04E}.txt`.
        let base = server.split('.').next().unwrap_or(server);
        Some(base.chars().count() - 1)
    } else {
        None
    };
    for (i, &c) in chars.iter().enumerate() {
        let last = i + 1 == chars.len();
        if is_pua(c) {
            out.push(ESCAPE);
            out.push(c);
        } else if FORBIDDEN.contains(&c)
            || (c as u32) < 0x20
            || (last && (c == '.' || c == ' '))
            || (device_end == Some(i) && c.is_ascii())
        {
            out.push(shifted(c));
        } else if device_end == Some(i) {
            // Superscript digit of COM¹/LPT²: no ASCII shift exists; escape the name's start.
            out.insert(0, ESCAPE);
            out.push(c);
        } else {
            out.push(c);
        }
    }
    out
}

/// The server name a Windows name stands for; refuses names that are not canonical encodings.
pub fn from_windows(win: &str) -> Result<String, WinNameError> {
    let mut out = String::with_capacity(win.len());
    let mut chars = win.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ESCAPE {
            match chars.next() {
                Some(next) if is_pua(next) => out.push(next),
                // An escape at the start of a COM¹/LPT¹ name: the next character is literal.
                Some(next) if out.is_empty() => out.push(next),
                _ => return Err(WinNameError(win.into())),
            }
        } else if is_pua(c) {
            let code = c as u32 - PUA_BASE;
            match char::from_u32(code).filter(|_| code < 0x80) {
                Some(plain) => out.push(plain),
                None => return Err(WinNameError(win.into())),
            }
        } else {
            out.push(c);
        }
    }
    if out.is_empty() || to_windows(&out) != win {
        return Err(WinNameError(win.into()));
    }
    Ok(out)
}

/// The key Windows compares names by (case-insensitive).
/// Character by character, like NTFS's upcase table: a character whose upper case is several
/// characters (`ß` → `SS`) stays as it is.
pub fn fold(win: &str) -> String {
    win.chars()
        .map(|c| {
            let mut upper = c.to_uppercase();
            match (upper.next(), upper.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

/// Names Windows creates for itself that stay on this machine and are never uploaded:
/// Explorer's `desktop.ini` and `Thumbs.db`, and Office's `~$NAME` lock files (they would
/// otherwise appear, empty and owned by a stranger, in every other user's folder).
pub fn is_kept_local(win: &str) -> bool {
    win.starts_with("~$")
        || win.eq_ignore_ascii_case("desktop.ini")
        || win.eq_ignore_ascii_case("Thumbs.db")
}

/// The Windows names of one folder's server names, unique case-insensitively. Of names that
/// differ only in case, the first in byte order keeps its name; each other gets a suffix
/// derived from its own name (stable whatever else the folder holds): `a~1b2c3d4\u{F0FE}.txt`.
#[derive(Debug, Default, Clone)]
pub struct DirNames {
    to_win: HashMap<String, String>,
    by_fold: HashMap<String, String>,
}

impl DirNames {
    pub fn new<'a>(server_names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut names: Vec<&str> = server_names.into_iter().collect();
        names.sort_unstable();
        names.dedup();
        let mut table = Self::default();
        for server in names {
            let plain = to_windows(server);
            let win = if table.by_fold.contains_key(&fold(&plain)) {
                case_suffixed(&plain, server)
            } else {
                plain
            };
            table.by_fold.insert(fold(&win), server.to_owned());
            table.to_win.insert(server.to_owned(), win);
        }
        table
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.to_win.len()
    }

    pub fn is_empty(&self) -> bool {
        self.to_win.is_empty()
    }

    /// The Windows name of a server name of this folder.
    pub fn windows_name(&self, server: &str) -> Option<&str> {
        self.to_win.get(server).map(String::as_str)
    }

    /// The server name a Windows name designates, case-insensitively.
    pub fn resolve(&self, win: &str) -> Option<&str> {
        self.by_fold.get(&fold(win)).map(String::as_str)
    }

    /// The server name for a Windows name: an existing entry (any case), else a new name.
    pub fn server_name(&self, win: &str) -> Result<String, WinNameError> {
        match self.resolve(win) {
            Some(existing) => Ok(existing.to_owned()),
            None if win.contains(CASE_MARK) => Err(WinNameError(win.into())),
            None => from_windows(win),
        }
    }
}

fn case_suffixed(win: &str, server: &str) -> String {
    let digest = Md5::digest(server.as_bytes());
    let tag = hex::encode(&digest[..4]);
    match win.rfind('.').filter(|&dot| dot > 0) {
        Some(dot) => format!("{}~{tag}{CASE_MARK}{}", &win[..dot], &win[dot..]),
        None => format!("{win}~{tag}{CASE_MARK}"),
    }
}

#[cfg(test)]
#[path = "winnames_tests.rs"]
mod tests;
