//! The user's configuration: where it lives (platform config directory), `config.toml` with
//! `[defaults]` and `[accounts.NAME]`, and account-name validation. Secrets are never here
//! (see `auth::store`).

pub mod files;
pub mod logs;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File name of the configuration inside [`config_dir`].
pub const CONFIG_FILE: &str = "config.toml";

/// Why the configuration could not be read or written. Messages name the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot find a home directory: set HOME (or XDG_CONFIG_HOME)")]
    NoHome,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid configuration: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// `~/.config/pydio/cells-mount` on Linux (XDG_CONFIG_HOME honoured), beside the other Cells
/// desktop tools' data; the platform's own config directory elsewhere (`~/Library/Application
/// Support/pydio/cells-mount`, `%APPDATA%\pydio\cells-mount`). The per-mount state
/// directories live below it too.
pub fn config_dir() -> Result<PathBuf, ConfigError> {
    let base = directories::BaseDirs::new().ok_or(ConfigError::NoHome)?;
    Ok(base.config_dir().join("pydio").join("cells-mount"))
}

/// How an account authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    /// OAuth2/OIDC login: short-lived access tokens and a rotating refresh token.
    Oidc,
    /// A personal access token (no refresh).
    Token,
}

impl std::fmt::Display for AuthKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthKind::Oidc => "oidc",
            AuthKind::Token => "token",
        })
    }
}

/// Where an account's secret is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretStoreKind {
    /// The OS keyring (Secret Service, Keychain, Credential Manager).
    Keyring,
    /// A mode-0600 file under the config directory.
    File,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Cache size used when `--cache-size` is not given (e.g. "20G").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_size: Option<String>,
    /// Account used when neither `--account` nor `--server` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Workspace slug used when `--workspace` is not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub auth: AuthKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// PEM file of a private CA trusted for this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    /// OIDC token endpoint found at login, so that a mount can refresh without discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    pub secret_store: SecretStoreKind,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub accounts: BTreeMap<String, AccountConfig>,
}

impl Config {
    /// Reads `dir/config.toml`; a missing file is an empty configuration.
    pub fn load(dir: &Path) -> Result<Config, ConfigError> {
        let path = dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(source) => return Err(ConfigError::Io { path, source }),
        };
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
            path: path.clone(),
            message: e.message().to_owned(),
        })?;
        for name in config.accounts.keys() {
            validate_account_name(name).map_err(|message| ConfigError::Syntax {
                path: path.clone(),
                message,
            })?;
        }
        Ok(config)
    }

    /// Writes `dir/config.toml` atomically (a crash leaves the old or the new file, whole).
    pub fn save(&self, dir: &Path) -> Result<(), ConfigError> {
        let text = toml::to_string_pretty(self)
            .map_err(|e| ConfigError::Invalid(format!("cannot encode the configuration: {e}")))?;
        let path = dir.join(CONFIG_FILE);
        files::write_private_atomic(&path, text.as_bytes())
            .map_err(|source| ConfigError::Io { path, source })
    }

    /// The account `name`, or the default one when `name` is `None`.
    pub fn account(&self, name: Option<&str>) -> Result<(String, AccountConfig), ConfigError> {
        let name = match name.or(self.defaults.account.as_deref()) {
            Some(n) => n.to_owned(),
            None if self.accounts.len() == 1 => {
                self.accounts.keys().next().cloned().unwrap_or_default()
            }
            None if self.accounts.is_empty() => {
                return Err(ConfigError::Invalid(
                    "no account configured: run `cells-mount login https://your.cells.server` \
                     first, or give --server and --token-file"
                        .into(),
                ));
            }
            None => {
                return Err(ConfigError::Invalid(format!(
                    "several accounts and no default: choose one with --account ({})",
                    self.accounts.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        };
        match self.accounts.get(&name) {
            Some(a) => Ok((name, a.clone())),
            None => Err(ConfigError::Invalid(format!(
                "no account named {name:?}; `cells-mount accounts` lists them"
            ))),
        }
    }
}

/// Account names appear in file names, keyring entries and unit names: letters, digits and
/// `. _ - @ :`, 1 to 64 characters, not starting with `.` or `-`.
pub fn validate_account_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "._-@:".contains(c);
    if name.is_empty() || name.len() > 64 {
        return Err(format!("account name {name:?}: 1 to 64 characters"));
    }
    if name.starts_with(['.', '-']) || !name.chars().all(ok_char) {
        return Err(format!(
            "account name {name:?}: only letters, digits and . _ - @ : (not first . or -)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(server: &str) -> AccountConfig {
        AccountConfig {
            server: server.into(),
            user: Some("alice".into()),
            auth: AuthKind::Oidc,
            client_id: Some("cells-sync".into()),
            ca_cert: None,
            token_url: Some(format!("{server}/oidc/oauth2/token")),
            secret_store: SecretStoreKind::File,
        }
    }

    #[test]
    fn round_trips_and_picks_the_default_account() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Config::load(dir.path()).unwrap(), Config::default());
        let mut cfg = Config::default();
        cfg.accounts.insert("work".into(), account("https://a"));
        assert_eq!(
            cfg.account(None).unwrap().0,
            "work",
            "a single account is the default"
        );
        cfg.accounts.insert("home".into(), account("https://b"));
        assert!(
            cfg.account(None)
                .unwrap_err()
                .to_string()
                .contains("--account")
        );
        cfg.defaults.account = Some("home".into());
        cfg.defaults.cache_size = Some("2G".into());
        cfg.save(dir.path()).unwrap();
        let back = Config::load(dir.path()).unwrap();
        assert_eq!(back, cfg);
        assert_eq!(back.account(None).unwrap().1.server, "https://b");
        assert_eq!(back.account(Some("work")).unwrap().1.server, "https://a");
        assert!(back.account(Some("nope")).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(CONFIG_FILE))
                .unwrap()
                .permissions();
            assert_eq!(mode.mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn bad_files_and_names_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "[accounts.x]\nserver = 3\n").unwrap();
        let err = Config::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains(CONFIG_FILE), "{err}");
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "[accounts.\"../x\"]\nserver = \"https://a\"\nauth = \"oidc\"\nsecret_store = \"file\"\n",
        )
        .unwrap();
        assert!(Config::load(dir.path()).is_err());
        for bad in ["", ".x", "-x", "a/b", "a b", "a\\b", &"x".repeat(65)] {
            assert!(validate_account_name(bad).is_err(), "{bad:?}");
        }
        for good in ["work", "alice@cells.example.com", "host:8080", "a_b-c.d"] {
            assert!(validate_account_name(good).is_ok(), "{good:?}");
        }
    }
}
