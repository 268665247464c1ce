//! `cells-mount accounts`: the configured accounts (name, server, user, auth kind, token
//! expiry, default marker; `--json`), `accounts default NAME`, and `accounts remove NAME`
//! (forgets the secret; mounts' caches and pending uploads are left alone).

use cells_mount::auth::SecretStore;
use cells_mount::config::{Config, config_dir};
use serde::Serialize;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct AccountsArgs {
    #[command(subcommand)]
    pub action: Option<AccountsAction>,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum AccountsAction {
    /// Make NAME the account used when a mount names none.
    Default { name: String },
    /// Forget NAME and its saved credentials (cached files and pending uploads stay).
    Remove { name: String },
}

#[derive(Serialize)]
struct Row {
    name: String,
    server: String,
    user: Option<String>,
    auth: String,
    /// Unix seconds when the saved access token expires (OIDC; renewed automatically).
    token_expires_at: Option<u64>,
    secret_store: String,
    default: bool,
}

pub fn run(args: AccountsArgs) -> ExitCode {
    match act(args) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cells-mount: {e}");
            ExitCode::FAILURE
        }
    }
}

fn act(args: AccountsArgs) -> Result<String, String> {
    let dir = config_dir().map_err(|e| e.to_string())?;
    let mut config = Config::load(&dir).map_err(|e| e.to_string())?;
    match args.action {
        None => Ok(list(&dir, &config, args.json)),
        Some(AccountsAction::Default { name }) => {
            config.account(Some(&name)).map_err(|e| e.to_string())?;
            config.defaults.account = Some(name.clone());
            config.save(&dir).map_err(|e| e.to_string())?;
            Ok(format!("{name} is now the default account"))
        }
        Some(AccountsAction::Remove { name }) => {
            config.account(Some(&name)).map_err(|e| e.to_string())?;
            SecretStore::new(&dir).delete(&name);
            config.accounts.remove(&name);
            if config.defaults.account.as_deref() == Some(name.as_str()) {
                config.defaults.account = None;
            }
            config.save(&dir).map_err(|e| e.to_string())?;
            Ok(format!(
                "removed account {name}; its cache and any pending uploads were kept"
            ))
        }
    }
}

fn list(dir: &std::path::Path, config: &Config, json: bool) -> String {
    let store = SecretStore::new(dir);
    let default = config
        .account(None)
        .ok()
        .map(|(name, _)| name)
        .unwrap_or_default();
    let rows: Vec<Row> = config
        .accounts
        .iter()
        .map(|(name, a)| Row {
            name: name.clone(),
            server: a.server.clone(),
            user: a.user.clone(),
            auth: a.auth.to_string(),
            token_expires_at: store
                .load(name, a.secret_store)
                .ok()
                .and_then(|c| c.expires_at())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
            secret_store: format!("{:?}", a.secret_store).to_lowercase(),
            default: *name == default,
        })
        .collect();
    if json {
        return serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".into());
    }
    if rows.is_empty() {
        return "no accounts: log in with `cells-mount login https://your.cells.server`".into();
    }
    let mut out = format!(
        "  {:<28} {:<34} {:<14} {:<6} {}\n",
        "NAME", "SERVER", "USER", "AUTH", "TOKEN EXPIRES"
    );
    for r in rows {
        let expires = r.token_expires_at.map_or_else(
            || "-".to_owned(),
            |t| {
                jiff::Timestamp::from_second(t as i64)
                    .map(|ts| ts.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_else(|_| t.to_string())
            },
        );
        out.push_str(&format!(
            "{} {:<28} {:<34} {:<14} {:<6} {}\n",
            if r.default { "*" } else { " " },
            r.name,
            r.server,
            r.user.as_deref().unwrap_or("-"),
            r.auth,
            expires
        ));
    }
    out.trim_end().to_owned()
}
