//! Where an account's secret lives: the OS keyring when one answers, else a mode-0600 JSON
//! file in `CONFIG/secrets/`. The value is one JSON document per account (a personal access
//! token, or an OIDC access + refresh token pair), replaced whole and atomically.

use crate::client::Secret;
use crate::config::SecretStoreKind;
use crate::config::files::write_private_atomic;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Keyring service name of every entry we create (the entry's user is the account name).
pub const KEYRING_SERVICE: &str = "cells-mount";
/// `CELLS_MOUNT_SECRET_STORE=file` skips the keyring (headless machines, tests).
pub const STORE_ENV: &str = "CELLS_MOUNT_SECRET_STORE";

/// What is stored for one account. Debug never shows the values.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum StoredCredential {
    Token {
        token: String,
    },
    Oidc {
        access_token: String,
        refresh_token: Option<String>,
        /// Unix seconds at which the access token expires.
        expires_at: Option<u64>,
    },
}

impl std::fmt::Debug for StoredCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoredCredential::Token { .. } => f.write_str("Token(***)"),
            StoredCredential::Oidc { expires_at, .. } => {
                write!(f, "Oidc(***, expires_at: {expires_at:?})")
            }
        }
    }
}

impl StoredCredential {
    pub fn oidc(access: &Secret, refresh: Option<&Secret>, expires: Option<SystemTime>) -> Self {
        StoredCredential::Oidc {
            access_token: access.expose().to_owned(),
            refresh_token: refresh.map(|r| r.expose().to_owned()),
            expires_at: expires
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())),
        }
    }

    /// The access token's expiry, if known (personal access tokens: unknown).
    pub fn expires_at(&self) -> Option<SystemTime> {
        match self {
            StoredCredential::Oidc {
                expires_at: Some(t),
                ..
            } => Some(UNIX_EPOCH + Duration::from_secs(*t)),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no saved credentials for account {0:?}: log in again (cells-mount login)")]
    Missing(String),
    #[error("saved credentials of account {account:?}: {message}")]
    Unreadable { account: String, message: String },
    #[error("cannot save the credentials of account {account:?}: {message}")]
    Write { account: String, message: String },
}

/// The secrets of all accounts, under one config directory.
#[derive(Debug, Clone)]
pub struct SecretStore {
    dir: PathBuf,
}

impl SecretStore {
    pub fn new(config_dir: &Path) -> Self {
        Self {
            dir: config_dir.join("secrets"),
        }
    }

    /// Saves `cred` in the keyring when `prefer` is `Keyring` (or unset) and one works, else
    /// in the file; returns where it went. Blocking (the keyring talks D-Bus on Linux).
    pub fn save(
        &self,
        account: &str,
        cred: &StoredCredential,
        prefer: Option<SecretStoreKind>,
    ) -> Result<SecretStoreKind, StoreError> {
        let json = serde_json::to_string(cred).map_err(|e| StoreError::Write {
            account: account.into(),
            message: e.to_string(),
        })?;
        if prefer != Some(SecretStoreKind::File) && keyring_allowed() {
            match keyring_entry(account).and_then(|e| e.set_password(&json)) {
                Ok(()) => {
                    // A file left from an earlier fallback would be stale: remove it.
                    let _ = std::fs::remove_file(self.file(account));
                    return Ok(SecretStoreKind::Keyring);
                }
                Err(e) if prefer == Some(SecretStoreKind::Keyring) => {
                    tracing::warn!(
                        "keyring unavailable ({e}); saving credentials to a private file"
                    );
                }
                Err(e) => tracing::debug!("keyring unavailable ({e}); using a private file"),
            }
        }
        write_private_atomic(&self.file(account), json.as_bytes()).map_err(|e| {
            StoreError::Write {
                account: account.into(),
                message: format!("{}: {e}", self.file(account).display()),
            }
        })?;
        Ok(SecretStoreKind::File)
    }

    /// Loads the credential saved by [`save`](Self::save) in `kind`. Blocking.
    pub fn load(
        &self,
        account: &str,
        kind: SecretStoreKind,
    ) -> Result<StoredCredential, StoreError> {
        let unreadable = |message: String| StoreError::Unreadable {
            account: account.into(),
            message,
        };
        let json = match kind {
            SecretStoreKind::Keyring => match keyring_entry(account).and_then(|e| e.get_password())
            {
                Ok(j) => j,
                Err(keyring::Error::NoEntry) => return Err(StoreError::Missing(account.into())),
                Err(e) => return Err(unreadable(format!("keyring: {e}"))),
            },
            SecretStoreKind::File => {
                let path = self.file(account);
                check_private(&path).map_err(unreadable)?;
                match std::fs::read_to_string(&path) {
                    Ok(j) => j,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(StoreError::Missing(account.into()));
                    }
                    Err(e) => return Err(unreadable(format!("{}: {e}", path.display()))),
                }
            }
        };
        // serde's message could quote the content: keep only its position.
        serde_json::from_str(&json).map_err(|e| {
            unreadable(format!(
                "not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })
    }

    /// Forgets an account's secret wherever it is.
    pub fn delete(&self, account: &str) {
        if keyring_allowed() {
            let _ = keyring_entry(account).and_then(|e| e.delete_credential());
        }
        let _ = std::fs::remove_file(self.file(account));
    }

    /// The fallback file of `account`: named by a digest, as account names may hold
    /// characters some file systems refuse (`:`).
    pub fn file(&self, account: &str) -> PathBuf {
        use md5::{Digest, Md5};
        let digest = hex::encode(&Md5::digest(account.as_bytes())[..8]);
        self.dir.join(format!("{digest}.json"))
    }
}

fn keyring_allowed() -> bool {
    std::env::var(STORE_ENV).map_or(true, |v| v != "file")
}

fn keyring_entry(account: &str) -> keyring::Result<keyring::Entry> {
    keyring::Entry::new(KEYRING_SERVICE, account)
}

/// Refuses a secrets file that others could read (somebody loosened it by hand).
fn check_private(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(format!(
                    "{} is readable by others (mode {mode:04o}); run: chmod 600 {}",
                    path.display(),
                    path.display()
                ));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_store_round_trips_privately_and_never_prints_values() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::new(dir.path());
        let cred = StoredCredential::oidc(
            &Secret::new("acc-123456"),
            Some(&Secret::new("ref-654321")),
            Some(UNIX_EPOCH + Duration::from_secs(1_900_000_000)),
        );
        assert!(matches!(
            store.load("a@b:1", SecretStoreKind::File),
            Err(StoreError::Missing(_))
        ));
        let kind = store
            .save("a@b:1", &cred, Some(SecretStoreKind::File))
            .unwrap();
        assert_eq!(kind, SecretStoreKind::File);
        assert_eq!(store.load("a@b:1", kind).unwrap(), cred);
        assert_eq!(
            cred.expires_at(),
            Some(UNIX_EPOCH + Duration::from_secs(1_900_000_000))
        );
        let shown = format!("{cred:?}");
        assert!(
            !shown.contains("acc-") && !shown.contains("ref-"),
            "{shown}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let file = store.file("a@b:1");
            assert_eq!(
                std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
                0o600
            );
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = store.load("a@b:1", kind).unwrap_err().to_string();
            assert!(err.contains("chmod 600") && !err.contains("acc-"), "{err}");
        }
        store.delete("a@b:1");
        assert!(!store.file("a@b:1").exists());
    }

    #[test]
    fn a_corrupt_file_is_an_error_that_does_not_quote_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::new(dir.path());
        write_private_atomic(
            &store.file("x"),
            b"{\"kind\":\"token\",\"token\":secret-value}",
        )
        .unwrap();
        let err = store
            .load("x", SecretStoreKind::File)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret-value"), "{err}");
    }
}
