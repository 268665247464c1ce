//! The `mount` options, and their validation into a [`MountPlan`] before anything is mounted
//! or forked: token source, directories, sizes. Errors name the option at fault and never the
//! token's value.

use super::size::parse_size;
use cells_mount::client::Secret;
use md5::{Digest, Md5};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct MountArgs {
    /// Empty directory to mount on.
    pub mountpoint: PathBuf,
    /// Cells server URL, e.g. https://cells.example.com
    #[arg(long, env = "CELLS_SERVER")]
    pub server: Option<String>,
    /// Personal access token (prefer --token-file: a command line is visible to other users).
    #[arg(
        long,
        env = "CELLS_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,
    /// File holding the personal access token; must not be readable by group or others (0600).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Workspace slug to mount (e.g. personal-files); all workspaces when absent.
    #[arg(long, value_name = "SLUG")]
    pub workspace: Option<String>,
    /// Content cache directory [default: ~/.cache/cells-mount/<account>]
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Metadata index and upload journal [default: ~/.config/pydio/cells-mount/<account>]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Maximum size of the content cache (K, M, G, T suffixes).
    #[arg(long, default_value = "10G", value_name = "SIZE")]
    pub cache_size: String,
    /// Stay in the foreground instead of detaching once mounted.
    #[arg(long, short = 'f')]
    pub foreground: bool,
    /// Let other users access the mount (needs user_allow_other in /etc/fuse.conf).
    #[arg(long)]
    pub allow_other: bool,
    /// More logging (-v: debug, -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Everything `mount` needs, validated.
pub struct MountPlan {
    pub mountpoint: PathBuf,
    pub server: String,
    pub token: Secret,
    pub workspace: Option<String>,
    pub cache_dir: PathBuf,
    pub state_dir: PathBuf,
    pub cache_size: u64,
    pub foreground: bool,
    pub allow_other: bool,
}

impl MountArgs {
    pub fn validate(self) -> Result<MountPlan, String> {
        let server = self
            .server
            .filter(|s| !s.trim().is_empty())
            .ok_or("no server given: use --server URL or set CELLS_SERVER")?;
        let token = match (&self.token_file, self.token) {
            (Some(path), _) => read_token_file(path)?,
            (None, Some(t)) if !t.trim().is_empty() => Secret::new(t.trim()),
            _ => {
                return Err("no token given: use --token-file PATH, --token or CELLS_TOKEN".into());
            }
        };
        if let Some(ws) = &self.workspace {
            cells_mount::names::validate_name(ws)
                .map_err(|e| format!("--workspace {ws:?}: {e}"))?;
        }
        let cache_size = parse_size(&self.cache_size).map_err(|e| format!("--cache-size: {e}"))?;
        let mountpoint = check_mountpoint_path(&self.mountpoint)?;
        let account = account_id(&server, self.workspace.as_deref());
        let cache_dir = match self.cache_dir {
            Some(d) => absolute(&d)?,
            None => base_dir("XDG_CACHE_HOME", ".cache")?
                .join("cells-mount")
                .join(&account),
        };
        let state_dir = match self.state_dir {
            Some(d) => absolute(&d)?,
            None => base_dir("XDG_CONFIG_HOME", ".config")?
                .join("pydio")
                .join("cells-mount")
                .join(&account),
        };
        Ok(MountPlan {
            mountpoint,
            server,
            token,
            workspace: self.workspace,
            cache_dir,
            state_dir,
            cache_size,
            foreground: self.foreground,
            allow_other: self.allow_other,
        })
    }
}

/// Reads a token file, refusing one that group or others can read: a leaked token is a
/// leaked account.
fn read_token_file(path: &Path) -> Result<Secret, String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("--token-file {shown}: {e}"))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "--token-file {shown} is readable by others (mode {mode:04o}); run: chmod 600 {shown}"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("--token-file {shown}: {e}"))?;
    let token = text.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(format!(
            "--token-file {shown}: expected one token on one line"
        ));
    }
    Ok(Secret::new(token))
}

fn absolute(path: &Path) -> Result<PathBuf, String> {
    std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The mountpoint as an absolute path (the daemon changes directory to `/`). Its state
/// (stale, busy) is checked later, in `mountpoint::prepare`.
fn check_mountpoint_path(path: &Path) -> Result<PathBuf, String> {
    if path.as_os_str().is_empty() {
        return Err("empty mountpoint".into());
    }
    absolute(path)
}

/// `$XDG_VAR` if set to an absolute path, else `$HOME/fallback`.
fn base_dir(xdg_var: &str, fallback: &str) -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os(xdg_var)
        .map(PathBuf::from)
        .filter(|d| d.is_absolute())
    {
        return Ok(dir);
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute())
        .map(|h| h.join(fallback))
        .ok_or_else(|| {
            format!(
                "cannot find a home directory: set HOME or {xdg_var}, or pass the directory option"
            )
        })
}

/// A stable directory name for one server + workspace: the same mount reuses its cache and
/// index across restarts and token renewals, and two accounts never share one. The server
/// is the key (not the token, which changes); the user is separated by the home directory.
pub fn account_id(server: &str, workspace: Option<&str>) -> String {
    let mut h = Md5::new();
    h.update(
        server
            .trim()
            .trim_end_matches('/')
            .to_ascii_lowercase()
            .as_bytes(),
    );
    h.update(b"\0");
    h.update(workspace.unwrap_or("").as_bytes());
    hex::encode(&h.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn args(dir: &Path) -> MountArgs {
        MountArgs {
            mountpoint: dir.join("mnt"),
            server: Some("https://cells.example".into()),
            token: None,
            token_file: None,
            workspace: Some("personal-files".into()),
            cache_dir: Some(dir.join("cache")),
            state_dir: Some(dir.join("state")),
            cache_size: "1G".into(),
            foreground: true,
            allow_other: false,
            verbose: 0,
        }
    }

    #[test]
    fn token_file_must_be_private_and_errors_never_show_the_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cr3t-token-value\n").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let mut a = args(dir.path());
        a.token_file = Some(file.clone());
        let err = a.validate().err().expect("must refuse 0644");
        assert!(
            err.contains("chmod 600") && !err.contains("s3cr3t"),
            "{err}"
        );

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let mut a = args(dir.path());
        a.token_file = Some(file);
        let plan = a.validate().expect("valid");
        assert_eq!(plan.token.expose(), "s3cr3t-token-value");
        assert_eq!(plan.cache_size, 1 << 30);
    }

    #[test]
    fn missing_server_token_or_bad_values_are_clear_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = args(dir.path());
        a.token = Some("t0ken".into());
        a.server = None;
        assert!(a.validate().err().is_some_and(|e| e.contains("--server")));
        assert!(
            args(dir.path())
                .validate()
                .err()
                .is_some_and(|e| e.contains("no token"))
        );
        let mut a = args(dir.path());
        a.token = Some("t0ken".into());
        a.cache_size = "lots".into();
        assert!(
            a.validate()
                .err()
                .is_some_and(|e| e.starts_with("--cache-size"))
        );
        let mut a = args(dir.path());
        a.token = Some("t0ken".into());
        a.workspace = Some("../etc".into());
        assert!(
            a.validate()
                .err()
                .is_some_and(|e| e.contains("--workspace"))
        );
    }

    #[test]
    fn account_id_is_stable_and_separates_servers_and_workspaces() {
        let a = account_id("https://Cells.example/", Some("personal-files"));
        assert_eq!(
            a,
            account_id("https://cells.example", Some("personal-files"))
        );
        assert_ne!(
            a,
            account_id("https://other.example", Some("personal-files"))
        );
        assert_ne!(a, account_id("https://cells.example", Some("common-files")));
        assert_eq!(a.len(), 16);
    }
}
