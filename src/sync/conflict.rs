//! Names for conflict copies: `NAME (conflict HOST YYYY-MM-DD HHMMSS).EXT`, the format users
//! of the Cells desktop client already know, kept a valid name of at most 255 bytes.

use crate::names::{MAX_NAME_BYTES, validate_name};
use jiff::civil::DateTime;

/// Longest host part kept in a conflict name; longer host names are cut.
const MAX_HOST_BYTES: usize = 63;

/// The conflict name for `name`, made on `host` at local time `at`. `number` 1 is the plain
/// name; 2, 3... (used when the plain one is taken) append ` 2`, ` 3` after the parenthesis.
///
/// EXT is the text after the last dot, unless that dot starts the name (`.bashrc` has none)
/// or nothing follows it; without an EXT no dot is added. When the result would exceed 255
/// bytes, the stem is cut on a character boundary (and an overlong EXT is treated as stem).
pub fn conflict_name(name: &str, host: &str, at: DateTime, number: u32) -> String {
    let host = clean_host(host);
    let mut tag = format!(
        " (conflict {host} {:04}-{:02}-{:02} {:02}{:02}{:02})",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    if number > 1 {
        tag.push_str(&format!(" {number}"));
    }
    let (mut stem, mut ext) = split_ext(name);
    // An extension so long that not even one stem byte would fit is treated as stem.
    if tag.len() + 1 + ext.len() + 1 > MAX_NAME_BYTES {
        stem = name;
        ext = "";
    }
    let ext_len = if ext.is_empty() { 0 } else { ext.len() + 1 };
    let room = MAX_NAME_BYTES.saturating_sub(tag.len() + ext_len);
    let stem = truncate_on_char(stem, room);
    let mut out = String::with_capacity(stem.len() + tag.len() + ext_len);
    out.push_str(stem);
    out.push_str(&tag);
    if !ext.is_empty() {
        out.push('.');
        out.push_str(ext);
    }
    debug_assert!(validate_name(&out).is_ok() || validate_name(name).is_err());
    out
}

/// `(stem, ext)`; ext is empty when there is none.
fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(0) | None => (name, ""),
        Some(i) if i + 1 == name.len() => (name, ""),
        Some(i) => (&name[..i], &name[i + 1..]),
    }
}

fn truncate_on_char(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The host name reduced to characters that are safe in a file name on every platform.
fn clean_host(host: &str) -> String {
    let cleaned: String = host
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cut = truncate_on_char(&cleaned, MAX_HOST_BYTES);
    if cut.is_empty() {
        "unknown-host".to_owned()
    } else {
        cut.to_owned()
    }
}

/// This machine's short host name (first label), `localhost` when it cannot be read.
pub fn local_host_name() -> String {
    let full = raw_host_name().unwrap_or_default();
    let short = full.split('.').next().unwrap_or("").trim();
    if short.is_empty() {
        "localhost".to_owned()
    } else {
        short.to_owned()
    }
}

#[cfg(unix)]
fn raw_host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length; gethostname NUL-terminates within it
    // or truncates, and we stop at the first NUL or at the end either way.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

#[cfg(not(unix))]
fn raw_host_name() -> Option<String> {
    std::env::var("COMPUTERNAME").ok()
}

/// Local wall-clock time now, in the system time zone.
pub fn local_now() -> DateTime {
    jiff::Zoned::now().datetime()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime {
        jiff::civil::date(2024, 3, 7).at(9, 5, 2, 0)
    }

    #[test]
    fn extension_is_kept_after_the_tag() {
        assert_eq!(
            conflict_name("report.final.docx", "laptop", at(), 1),
            "report.final (conflict laptop 2024-03-07 090502).docx"
        );
    }

    #[test]
    fn dotfiles_and_names_without_extension_get_no_dot() {
        assert_eq!(
            conflict_name(".bashrc", "h", at(), 1),
            ".bashrc (conflict h 2024-03-07 090502)"
        );
        assert_eq!(
            conflict_name("Makefile", "h", at(), 1),
            "Makefile (conflict h 2024-03-07 090502)"
        );
        assert_eq!(
            conflict_name("trailing.", "h", at(), 1),
            "trailing. (conflict h 2024-03-07 090502)"
        );
    }

    #[test]
    fn numbering_goes_inside_the_name_before_the_extension() {
        assert_eq!(
            conflict_name("a.txt", "h", at(), 3),
            "a (conflict h 2024-03-07 090502) 3.txt"
        );
    }

    #[test]
    fn long_multibyte_names_are_cut_on_a_character_boundary() {
        let name = format!("{}.txt", "é".repeat(126)); // 252 + 4 bytes
        let out = conflict_name(&name, "h", at(), 12);
        assert!(out.len() <= MAX_NAME_BYTES, "{}", out.len());
        assert!(validate_name(&out).is_ok());
        assert!(out.ends_with(" (conflict h 2024-03-07 090502) 12.txt"));
        assert!(out.starts_with("éé"));
        let huge_ext = format!("a.{}", "x".repeat(250));
        let out = conflict_name(&huge_ext, "h", at(), 1);
        assert!(out.len() <= MAX_NAME_BYTES && validate_name(&out).is_ok());
    }

    #[test]
    fn hostile_host_names_cannot_break_the_name() {
        let out = conflict_name("a.txt", "evil/../\u{1b}host", at(), 1);
        assert!(validate_name(&out).is_ok(), "{out:?}");
        assert!(!out.contains('/'));
        let out = conflict_name("a.txt", &"h".repeat(300), at(), 1);
        assert!(validate_name(&out).is_ok());
        assert!(!local_host_name().is_empty());
    }
}
