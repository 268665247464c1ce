//! `cells-mount login URL`: log in through the browser (OAuth2 + PKCE), or save a personal
//! access token (`--token-file`, `--token`), and record the account in `config.toml`.

use cells_mount::auth::flow::DEFAULT_CLIENT_ID;
use cells_mount::auth::login::{self, LOGIN_TIMEOUT, OidcLogin};
use cells_mount::auth::{AuthError, StoredCredential};
use cells_mount::client::{CellsClient, ClientConfig, ClientError, Secret};
use cells_mount::config::{AccountConfig, AuthKind, SecretStoreKind, config_dir};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// Cells server URL, e.g. https://cells.example.com
    pub server: String,
    /// Name of the account to create or replace [default: USER@HOST]
    #[arg(long)]
    pub name: Option<String>,
    /// OAuth2 client id registered on the server.
    #[arg(long, default_value = DEFAULT_CLIENT_ID)]
    pub client_id: String,
    /// Print the login address instead of opening a browser (log in from another device,
    /// then paste the address the browser ends on, or the code, here).
    #[arg(long)]
    pub no_browser: bool,
    /// Save this personal access token instead of logging in (prefer --token-file: a
    /// command line is visible to other users).
    #[arg(long, conflicts_with = "token_file")]
    pub token: Option<String>,
    /// Save the personal access token in this file (mode 0600) instead of logging in.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// PEM certificate of a private CA that signed the server's certificate.
    #[arg(long, value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,
    /// Make this the default account (the first account always is).
    #[arg(long)]
    pub default: bool,
}

pub fn run(args: LoginArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cells-mount: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(login(args)) {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cells-mount: login failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn login(args: LoginArgs) -> Result<String, String> {
    let server = cells_mount::client::config::parse_server_url(&args.server)
        .map_err(|e| e.to_string())?
        .to_string();
    let server = server.trim_end_matches('/').to_owned();
    let ca_cert = args
        .ca_cert
        .as_deref()
        .map(std::path::absolute)
        .transpose()
        .map_err(|e| format!("--ca-cert: {e}"))?;
    if let Some(name) = &args.name {
        cells_mount::config::validate_account_name(name).map_err(|e| format!("--name: {e}"))?;
    }
    let dir = config_dir().map_err(|e| e.to_string())?;
    let pat = match (&args.token_file, &args.token) {
        (Some(path), _) => Some(super::args::read_token_file(path)?),
        (None, Some(t)) if !t.trim().is_empty() => Some(Secret::new(t.trim())),
        (None, Some(_)) => return Err("--token is empty".into()),
        (None, None) => None,
    };
    let (secret, user, token_url, auth) = match pat {
        Some(token) => {
            check_token(&server, &token, ca_cert.clone()).await?;
            (
                StoredCredential::Token {
                    token: token.expose().to_owned(),
                },
                None,
                None,
                AuthKind::Token,
            )
        }
        None => {
            let opts = OidcLogin {
                server: server.clone(),
                client_id: args.client_id.clone(),
                ca_cert: ca_cert.clone(),
                open_browser: !args.no_browser,
                timeout: LOGIN_TIMEOUT,
            };
            let done = login::login_oidc(&opts, show_url, pasted_lines())
                .await
                .map_err(|e| explain(e, &server))?;
            let g = &done.grant;
            let secret =
                StoredCredential::oidc(&g.access_token, g.refresh_token.as_ref(), g.expires_at);
            (
                secret,
                g.user.clone(),
                Some(done.endpoints.token.to_string()),
                AuthKind::Oidc,
            )
        }
    };
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| login::default_account_name(&server, user.as_deref()));
    let account = AccountConfig {
        server: server.clone(),
        user: user.clone(),
        auth,
        client_id: (auth == AuthKind::Oidc).then(|| args.client_id.clone()),
        ca_cert,
        token_url,
        secret_store: SecretStoreKind::Keyring,
    };
    let (dir2, name2) = (dir.clone(), name.clone());
    let kind = tokio::task::spawn_blocking(move || {
        login::save_account(&dir2, &name2, account, &secret, args.default)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let place = match kind {
        SecretStoreKind::Keyring => "the system keyring".to_owned(),
        SecretStoreKind::File => format!(
            "{} (mode 0600; no system keyring answered)",
            cells_mount::auth::SecretStore::new(&dir)
                .file(&name)
                .display()
        ),
    };
    Ok(format!(
        "Logged in to {server}{} as account {name:?}; credentials saved in {place}.\n\
         Mount with: cells-mount ~/Cells --account {name}",
        user.map(|u| format!(" as {u}")).unwrap_or_default()
    ))
}

/// Checks a personal access token before saving it: a typo is caught now, not at mount.
async fn check_token(server: &str, token: &Secret, ca: Option<PathBuf>) -> Result<(), String> {
    let mut cfg = ClientConfig::new(server, token.clone()).map_err(|e| e.to_string())?;
    cfg.extra_ca_pem = ca;
    let client = CellsClient::new(cfg).map_err(|e| e.to_string())?;
    match client
        .list_page(&cells_mount::names::RemotePath::root(), 0, 1)
        .await
    {
        Ok(_) => Ok(()),
        Err(ClientError::Unauthorized(_)) | Err(ClientError::Forbidden(_)) => Err(format!(
            "{server} refused this token (expired, revoked or mistyped?)"
        )),
        Err(e) => {
            eprintln!("cells-mount: could not check the token ({e}); saving it anyway");
            Ok(())
        }
    }
}

fn explain(e: AuthError, server: &str) -> String {
    match e {
        AuthError::Expired(m) => format!("the server refused the login code ({m}); try again"),
        AuthError::Rejected(m) if m.contains("invalid_client") => format!(
            "{m}. The client id is not registered on {server}: pass the right one with --client-id"
        ),
        other => other.to_string(),
    }
}

fn show_url(url: &url::Url, opened: bool) {
    if opened {
        println!("Your browser should open to log in. If it does not, open this address:");
    } else {
        println!("Open this address in a browser (on this or any other device) to log in:");
    }
    println!("\n{url}\n");
    println!(
        "Waiting for the login. With a browser on another device, paste here the address it \
         ends on (an error page on localhost), or the code."
    );
}

/// Lines typed on stdin, read on a thread of their own (a blocked read must not keep the
/// runtime from shutting down; the thread ends with the process).
fn pasted_lines() -> tokio::sync::mpsc::Receiver<String> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let _ = std::thread::Builder::new()
        .name("login-stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { return };
                if tx.blocking_send(line).is_err() {
                    return;
                }
            }
        });
    rx
}
