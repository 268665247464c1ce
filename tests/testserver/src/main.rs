//! The `cells-testserver` binary: starts the test double and prints
//! `listening on http://127.0.0.1:PORT` as its first stdout line, then serves until
//! SIGTERM/SIGINT.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use cells_testserver::{Faults, ServerConfig, TestServer};
use clap::Parser;

#[derive(Parser)]
#[command(about = "A Cells-compatible test double (not a Cells replacement)")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Data folder: `common-files/` and `personal-files/USER/` live here.
    #[arg(long)]
    data: PathBuf,
    /// LOGIN:PASSWORD (repeatable)
    #[arg(long = "user")]
    users: Vec<String>,
    /// LOGIN:TOKEN personal access token (repeatable)
    #[arg(long = "token")]
    tokens: Vec<String>,
    /// Lifetime of issued JWTs, e.g. 30s, 5m, 1h.
    #[arg(long)]
    token_ttl: Option<String>,
    #[arg(long)]
    legacy_hash: bool,
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    #[arg(long, default_value_t = 0)]
    bandwidth: u64,
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    #[arg(long, default_value_t = 0.0)]
    reset_rate: f64,
    #[arg(long, default_value_t = 50)]
    job_delay_ms: u64,
}

fn pair(s: &str, what: &str) -> anyhow::Result<(String, String)> {
    match s.split_once(':') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a.to_string(), b.to_string())),
        _ => bail!("--{what} wants LOGIN:VALUE"),
    }
}

fn duration(s: &str) -> anyhow::Result<Duration> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().with_context(|| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "ms" => return Ok(Duration::from_millis(n)),
        _ => bail!("bad duration unit in {s:?} (use ms, s, m, h)"),
    };
    Ok(Duration::from_secs(secs))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "cells_testserver=info".into()),
        )
        .init();
    let args = Args::parse();
    for rate in [args.error_rate, args.reset_rate] {
        if !(0.0..=1.0).contains(&rate) {
            bail!("rates must be within 0..1");
        }
    }
    let mut cfg = ServerConfig::new(&args.data);
    cfg.listen = args.listen;
    if !args.users.is_empty() {
        cfg.users = args
            .users
            .iter()
            .map(|u| pair(u, "user"))
            .collect::<Result<_, _>>()?;
    }
    if !args.tokens.is_empty() {
        cfg.tokens = args
            .tokens
            .iter()
            .map(|t| pair(t, "token"))
            .collect::<Result<_, _>>()?;
    }
    cfg.token_ttl = args.token_ttl.as_deref().map(duration).transpose()?;
    cfg.legacy_hash = args.legacy_hash;
    cfg.job_delay = Duration::from_millis(args.job_delay_ms);
    cfg.faults = Faults {
        latency_ms: args.latency_ms,
        bandwidth_bytes_per_sec: args.bandwidth,
        error_rate: args.error_rate,
        reset_rate: args.reset_rate,
    };
    let server = TestServer::start(cfg).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", server.url())?;
        out.flush()?;
    }
    wait_for_signal().await?;
    tracing::info!("shutting down");
    server.stop().await;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_for_signal() -> anyhow::Result<()> {
    tokio::signal::ctrl_c().await?;
    Ok(())
}
