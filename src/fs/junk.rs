//! Names desktop environments probe for everywhere (`.DS_Store`, `Thumbs.db`, trash folders
//! ...). Answering them locally saves one server round trip per probe per folder.

/// True for names that are never looked up on the server.
pub fn is_desktop_junk(name: &str) -> bool {
    const EXACT: [&str; 8] = [
        ".DS_Store",
        "Thumbs.db",
        "desktop.ini",
        ".Trash",
        ".directory",
        ".hidden",
        ".xdg-volume-info",
        "autorun.inf",
    ];
    EXACT.iter().any(|j| name.eq_ignore_ascii_case(j))
        || name.starts_with("._")
        || name.starts_with(".Trash-")
        // Office's lock files (`~$Report.docx`), written next to every open document.
        || name.starts_with("~$")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junk_names_are_recognised_and_real_names_are_not() {
        for junk in [
            ".DS_Store",
            "._report.pdf",
            "Thumbs.db",
            "desktop.ini",
            ".Trash",
            ".Trash-1000",
            ".directory",
            ".hidden",
            ".xdg-volume-info",
            "autorun.inf",
            "THUMBS.DB",
            "~$Report.docx",
        ] {
            assert!(is_desktop_junk(junk), "{junk}");
        }
        for real in ["report.pdf", ".bashrc", "Trash", "_DS_Store", ".hiddenfile"] {
            assert!(!is_desktop_junk(real), "{real}");
        }
    }
}
