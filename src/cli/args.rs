//! The `mount` options, and their validation into a [`MountPlan`] before anything is mounted
//! or forked: token source, directories, sizes. Errors name the option at fault and never the
//! token's value.

use super::size::{parse_duration, parse_size};
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
    /// Account from `cells-mount login` [default: the default account, when neither
    /// --server nor a token is given].
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// PEM certificate of a private CA that signed the server's certificate.
    #[arg(long, value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,
    /// Workspace slug to mount (e.g. personal-files); all workspaces when absent.
    #[arg(long, value_name = "SLUG")]
    pub workspace: Option<String>,
    /// Content cache directory [default: ~/.cache/cells-mount/<account>]
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Metadata index and upload journal [default: ~/.config/pydio/cells-mount/<account>]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Maximum size of the content cache (K, M, G, T suffixes) [default: config's
    /// `defaults.cache_size`, else 10G].
    #[arg(long, value_name = "SIZE")]
    pub cache_size: Option<String>,
    /// While files are being saved one after another, uploads wait for this much quiet
    /// (seconds, or e.g. 500ms; never longer than 5 times it from the burst's start), so a
    /// copy or an archive extracting runs at local speed; 0 uploads each save at once
    /// [default: 1].
    #[arg(long, value_name = "SECONDS")]
    pub write_back: Option<String>,
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

/// How a mount authenticates.
pub enum Credentials {
    /// A personal access token given on the command line or in the environment.
    Token(Secret),
    /// A saved account; its secret is loaded after the daemon forks (the keyring client
    /// starts threads).
    Account {
        name: String,
        config_dir: PathBuf,
        account: cells_mount::config::AccountConfig,
    },
}

/// Everything `mount` needs, validated.
pub struct MountPlan {
    pub mountpoint: PathBuf,
    pub server: String,
    pub credentials: Credentials,
    /// Extra trusted CA (`--ca-cert`, or the account's).
    pub ca_cert: Option<PathBuf>,
    /// `-v` count, for the log set-up once the state directory exists.
    pub verbose: u8,
    pub workspace: Option<String>,
    pub cache_dir: PathBuf,
    pub state_dir: PathBuf,
    pub cache_size: u64,
    /// See [`MountArgs::write_back`].
    pub write_back: std::time::Duration,
    pub foreground: bool,
    pub allow_other: bool,
}

impl MountArgs {
    pub fn validate(self) -> Result<MountPlan, String> {
        use cells_mount::config::{Config, config_dir};
        let explicit = self.server.is_some() || self.token.is_some() || self.token_file.is_some();
        let use_account = self.account.is_some() || !explicit;
        // The config only matters without --server, or for its defaults: an unreadable one
        // is an error only when it is needed.
        let config = match use_account {
            true => {
                let dir = config_dir().map_err(|e| e.to_string())?;
                Some((Config::load(&dir).map_err(|e| e.to_string())?, dir))
            }
            false => config_dir()
                .ok()
                .and_then(|dir| Config::load(&dir).ok().map(|c| (c, dir))),
        };
        let defaults = config
            .as_ref()
            .map(|(c, _)| c.defaults.clone())
            .unwrap_or_default();
        let (server, credentials, account_ca) = match (use_account, &config) {
            (true, Some((cfg, dir))) => {
                if self.token.is_some() || self.token_file.is_some() {
                    return Err("--account and a token (--token, --token-file or CELLS_TOKEN)                                 exclude each other"
                        .into());
                }
                let (name, account) = cfg.account(self.account.as_deref()).map_err(|e| {
                    format!("{e}\n(or mount without an account: --server URL --token-file PATH)")
                })?;
                if let Some(s) = self.server.as_deref().filter(|s| {
                    s.trim().trim_end_matches('/') != account.server.trim_end_matches('/')
                }) {
                    return Err(format!(
                        "--server {s} differs from account {name}'s server {}",
                        account.server
                    ));
                }
                let ca = account.ca_cert.clone();
                let server = account.server.clone();
                let creds = Credentials::Account {
                    name,
                    config_dir: dir.clone(),
                    account,
                };
                (server, creds, ca)
            }
            _ => {
                let server = self
                    .server
                    .filter(|s| !s.trim().is_empty())
                    .ok_or("no server given: use --server URL or set CELLS_SERVER")?;
                let token = match (&self.token_file, self.token) {
                    (Some(path), _) => read_token_file(path)?,
                    (None, Some(t)) if !t.trim().is_empty() => Secret::new(t.trim()),
                    _ => {
                        return Err(
                            "no token given: use --token-file PATH, --token or CELLS_TOKEN".into(),
                        );
                    }
                };
                (server, Credentials::Token(token), None)
            }
        };
        let workspace = self.workspace.or(defaults.workspace);
        let cache_size = self
            .cache_size
            .or(defaults.cache_size)
            .unwrap_or_else(|| "10G".to_owned());
        let ca_cert = self
            .ca_cert
            .map(|p| absolute(&p))
            .transpose()?
            .or(account_ca);
        if let Some(ws) = &workspace {
            cells_mount::names::validate_name(ws)
                .map_err(|e| format!("--workspace {ws:?}: {e}"))?;
        }
        let cache_size = parse_size(&cache_size).map_err(|e| format!("--cache-size: {e}"))?;
        let write_back = match &self.write_back {
            Some(text) => parse_duration(text, std::time::Duration::from_secs(60))
                .map_err(|e| format!("--write-back: {e}"))?,
            None => std::time::Duration::from_secs(1),
        };
        let mountpoint = check_mountpoint_path(&self.mountpoint)?;
        // Two accounts on one server (two users) must never share a cache or an index.
        let account = match &credentials {
            Credentials::Account { name, .. } => {
                account_id(&format!("{server}\0{name}"), workspace.as_deref())
            }
            Credentials::Token(_) => account_id(&server, workspace.as_deref()),
        };
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
            credentials,
            ca_cert,
            verbose: self.verbose,
            workspace,
            cache_dir,
            state_dir,
            cache_size,
            write_back,
            foreground: self.foreground,
            allow_other: self.allow_other,
        })
    }
}

/// Reads a token file, refusing one that group or others can read: a leaked token is a
/// leaked account.
pub fn read_token_file(path: &Path) -> Result<Secret, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("--token-file {shown}: {e}"))?;
    // Windows has no mode bits: a file in the user's profile is private by its inherited ACL.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "--token-file {shown} is readable by others (mode {mode:04o}); run: chmod 600 {shown}"
            ));
        }
    }
    if !meta.is_file() {
        return Err(format!("--token-file {shown}: not a file"));
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
            account: None,
            ca_cert: None,
            workspace: Some("personal-files".into()),
            cache_dir: Some(dir.join("cache")),
            state_dir: Some(dir.join("state")),
            cache_size: Some("1G".into()),
            write_back: None,
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
        assert!(
            matches!(&plan.credentials, Credentials::Token(t) if t.expose() == "s3cr3t-token-value")
        );
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
        a.cache_size = Some("lots".into());
        assert!(
            a.validate()
                .err()
                .is_some_and(|e| e.starts_with("--cache-size"))
        );
        let mut a = args(dir.path());
        a.token = Some("t0ken".into());
        a.write_back = Some("soon".into());
        assert!(
            a.validate()
                .err()
                .is_some_and(|e| e.starts_with("--write-back"))
        );
        let mut a = args(dir.path());
        a.token = Some("t0ken".into());
        a.write_back = Some("250ms".into());
        let plan = a.validate().expect("valid");
        assert_eq!(plan.write_back, std::time::Duration::from_millis(250));
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
