//! macOS specifics of the FUSE adapter: the macFUSE mount options that name the volume in
//! Finder and give it an icon. Finder's `.DS_Store` and `._*` files need nothing here: the
//! core keeps them local and never uploads them (`fs::junk`). Pure, so tested everywhere.

use std::path::Path;

/// What Finder shows for the mount.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinderLook {
    /// Volume name in Finder's sidebar (macFUSE `volname`); the workspace name by default.
    pub volume_name: String,
    /// A `.icns` file for the volume icon (macFUSE `volicon`).
    pub icon: Option<std::path::PathBuf>,
}

/// The macFUSE `-o` options for `look`, checked: mount options are comma-separated, so a
/// comma (or a control character) in a name or path would inject another option.
pub fn macfuse_options(look: &FinderLook) -> Result<Vec<String>, String> {
    let unsafe_char = |c: char| c == ',' || c.is_control();
    let name = look.volume_name.trim();
    if name.is_empty() || name.contains(unsafe_char) || name.contains('/') {
        return Err(format!(
            "volume name {:?}: must be non-empty, without commas, slashes or control characters",
            look.volume_name
        ));
    }
    let mut options = vec![format!("volname={name}")];
    if let Some(icon) = &look.icon {
        check_icon(icon)?;
        options.push(format!("volicon={}", icon.display()));
    }
    Ok(options)
}

fn check_icon(icon: &Path) -> Result<(), String> {
    let shown = icon.display().to_string();
    if shown.contains(|c: char| c == ',' || c.is_control()) || !icon.is_absolute() {
        return Err(format!(
            "--icon {shown}: give an absolute path without commas"
        ));
    }
    if icon.extension().and_then(|e| e.to_str()) != Some("icns") {
        return Err(format!("--icon {shown}: expected a .icns file"));
    }
    match std::fs::metadata(icon) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(format!("--icon {shown}: not a file")),
        Err(e) => Err(format!("--icon {shown}: {e}")),
    }
}

/// The default volume name: the workspace slug, or "Cells" for all workspaces.
pub fn default_volume_name(workspace: Option<&str>) -> String {
    workspace
        .map(|w| w.replace([',', '/'], "-"))
        .filter(|w| !w.trim().is_empty())
        .unwrap_or_else(|| "Cells".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_name_and_icon_become_macfuse_options() {
        let dir = tempfile::tempdir().expect("tempdir");
        let icon = dir.path().join("cells.icns");
        std::fs::write(&icon, b"icns").expect("write");
        let look = FinderLook {
            volume_name: "Personal Files".into(),
            icon: Some(icon.clone()),
        };
        assert_eq!(
            macfuse_options(&look),
            Ok(vec![
                "volname=Personal Files".to_string(),
                format!("volicon={}", icon.display())
            ])
        );
    }

    #[test]
    fn option_injection_and_bad_icons_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        for bad in ["", "  ", "a,allow_other", "a/b", "x\ny"] {
            let look = FinderLook {
                volume_name: bad.into(),
                icon: None,
            };
            assert!(macfuse_options(&look).is_err(), "{bad:?}");
        }
        let png = dir.path().join("icon.png");
        std::fs::write(&png, b"png").expect("write");
        for icon in [png, dir.path().join("missing.icns"), "rel.icns".into()] {
            let look = FinderLook {
                volume_name: "Cells".into(),
                icon: Some(icon.clone()),
            };
            assert!(macfuse_options(&look).is_err(), "{icon:?}");
        }
    }

    #[test]
    fn default_name_comes_from_the_workspace() {
        assert_eq!(
            default_volume_name(Some("personal-files")),
            "personal-files"
        );
        assert_eq!(default_volume_name(None), "Cells");
        assert_eq!(default_volume_name(Some("a,b")), "a-b");
    }
}
