//! Logging in and saving the result: the interactive OIDC login (browser or pasted answer),
//! and recording an account (secret in the store, settings in `config.toml`).

use super::callback::CallbackListener;
use super::flow::{self, Grant};
use super::store::{SecretStore, StoredCredential};
use super::{AuthError, OidcEndpoints, discover, http_client};
use crate::config::{AccountConfig, Config, SecretStoreKind};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;
use url::Url;

/// How long we wait for the user to finish logging in.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(600);

pub struct OidcLogin {
    pub server: String,
    pub client_id: String,
    pub ca_cert: Option<PathBuf>,
    /// Launch the system browser (else only print the URL).
    pub open_browser: bool,
    pub timeout: Duration,
}

/// A finished OIDC login.
pub struct LoggedIn {
    pub grant: Grant,
    pub endpoints: OidcEndpoints,
}

/// Runs the authorization-code flow. `show` gets the URL to visit (print it); `pasted`
/// yields lines the user types (a redirected URL or a code, for a browser on another
/// device). The first valid answer, from the listener or pasted, wins.
pub async fn login_oidc(
    opts: &OidcLogin,
    show: impl FnOnce(&Url, bool),
    mut pasted: mpsc::Receiver<String>,
) -> Result<LoggedIn, AuthError> {
    let http = http_client(opts.ca_cert.as_deref())?;
    let endpoints = discover(&http, &opts.server).await?;
    let listener = CallbackListener::bind()
        .await
        .map_err(|e| AuthError::Config(e.to_string()))?;
    let pending = flow::begin(&endpoints, &opts.client_id, &listener.redirect_uri())?;
    let opened = opts.open_browser && open_browser(pending.authorize_url.as_str()).is_ok();
    show(&pending.authorize_url, opened);
    let from_listener = listener.wait(|query| match pending.code_from(query) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("cells-mount: ignored an answer: {e}");
            false
        }
    });
    let from_paste = async {
        while let Some(line) = pasted.recv().await {
            if line.trim().is_empty() {
                continue;
            }
            match pending.code_from(&line) {
                Ok(code) => return Some(code),
                Err(e) => eprintln!("cells-mount: {e}; paste the whole address, or the code"),
            }
        }
        // stdin closed: only the browser can answer now.
        std::future::pending().await
    };
    let code = tokio::select! {
        query = from_listener => {
            let query = query.map_err(|e| AuthError::Config(format!("login callback: {e}")))?;
            pending.code_from(&query)?
        }
        Some(code) = from_paste => code,
        _ = tokio::time::sleep(opts.timeout) => {
            return Err(AuthError::Rejected(format!(
                "no login answer within {} s", opts.timeout.as_secs()
            )));
        }
    };
    drop(listener);
    let grant = pending.exchange(&http, code).await?;
    Ok(LoggedIn { grant, endpoints })
}

/// Opens `url` in the user's browser without a shell (the URL is never interpreted).
pub fn open_browser(url: &str) -> Result<(), String> {
    let mut cmd = if cfg!(target_os = "macos") {
        std::process::Command::new("open")
    } else if cfg!(windows) {
        let mut c = std::process::Command::new("rundll32");
        c.arg("url.dll,FileProtocolHandler");
        c
    } else {
        std::process::Command::new("xdg-open")
    };
    cmd.arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Records account `name`: the secret first (blocking: keyring), then its settings; the
/// first account becomes the default, as does any when `make_default`.
pub fn save_account(
    config_dir: &Path,
    name: &str,
    mut account: AccountConfig,
    secret: &StoredCredential,
    make_default: bool,
) -> Result<SecretStoreKind, AuthError> {
    crate::config::validate_account_name(name).map_err(AuthError::Config)?;
    let mut config = Config::load(config_dir).map_err(|e| AuthError::Config(e.to_string()))?;
    let store = SecretStore::new(config_dir);
    let prefer = std::env::var(super::store::STORE_ENV)
        .ok()
        .filter(|v| v == "file")
        .map(|_| SecretStoreKind::File);
    let kind = store.save(name, secret, prefer)?;
    account.secret_store = kind;
    config.accounts.insert(name.to_owned(), account);
    if make_default || config.defaults.account.is_none() {
        config.defaults.account = Some(name.to_owned());
    }
    config
        .save(config_dir)
        .map_err(|e| AuthError::Config(e.to_string()))?;
    Ok(kind)
}

/// The account name used when `--name` is not given: `user@host[:port]`, or the host.
pub fn default_account_name(server: &str, user: Option<&str>) -> String {
    let host = Url::parse(server.trim())
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| {
                format!(
                    "{h}{}",
                    u.port().map(|p| format!(":{p}")).unwrap_or_default()
                )
            })
        })
        .unwrap_or_else(|| "cells".to_owned());
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-@:".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let name = match user {
        Some(u) if !u.is_empty() => format!("{}@{}", clean(u), clean(&host)),
        _ => clean(&host),
    };
    let name: String = name
        .trim_start_matches(['.', '-'])
        .chars()
        .take(64)
        .collect();
    if name.is_empty() {
        "cells".to_owned()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_valid_account_names() {
        assert_eq!(
            default_account_name("https://cells.example.com/", Some("alice")),
            "alice@cells.example.com"
        );
        assert_eq!(
            default_account_name("http://127.0.0.1:8080", None),
            "127.0.0.1:8080"
        );
        for (server, user) in [
            ("https://h", Some("a b/c")),
            ("junk", None),
            ("https://h", Some("..")),
        ] {
            let name = default_account_name(server, user);
            assert!(
                crate::config::validate_account_name(&name).is_ok(),
                "{name}"
            );
        }
    }
}
