//! `cells-mount service install|uninstall MOUNTPOINT`: start a mount at login. Linux: a
//! systemd user unit; macOS: a launchd agent. The unit runs `cells-mount mount MOUNTPOINT
//! --foreground --account NAME` and stops with `cells-mount unmount MOUNTPOINT` (which waits
//! for pending uploads).

use cells_mount::config::{Config, config_dir};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

#[derive(clap::Args, Debug)]
pub struct ServiceArgs {
    #[command(subcommand)]
    pub action: ServiceAction,
}

#[derive(clap::Subcommand, Debug)]
pub enum ServiceAction {
    /// Mount MOUNTPOINT at every login (and now).
    Install {
        /// Existing, empty directory to mount on.
        mountpoint: PathBuf,
        /// Account to mount [default: the default account, fixed now].
        #[arg(long)]
        account: Option<String>,
        /// Only write the unit; print the commands that would enable and start it.
        #[arg(long)]
        no_start: bool,
    },
    /// Stop mounting MOUNTPOINT at login (unmounts it first).
    Uninstall {
        mountpoint: PathBuf,
        #[arg(long)]
        no_start: bool,
    },
}

pub fn run(args: ServiceArgs) -> ExitCode {
    let result = match args.action {
        ServiceAction::Install {
            mountpoint,
            account,
            no_start,
        } => install(&mountpoint, account, no_start),
        ServiceAction::Uninstall {
            mountpoint,
            no_start,
        } => uninstall(&mountpoint, no_start),
    };
    match result {
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

fn install(mountpoint: &Path, account: Option<String>, no_start: bool) -> Result<String, String> {
    let mountpoint =
        std::path::absolute(mountpoint).map_err(|e| format!("{}: {e}", mountpoint.display()))?;
    if !mountpoint.is_dir() {
        return Err(format!(
            "{} is not a directory: create it first (mkdir -p {})",
            mountpoint.display(),
            mountpoint.display()
        ));
    }
    let text = mountpoint
        .to_str()
        .filter(|s| !s.contains(['\n', '\r']))
        .ok_or("the mountpoint's path must be UTF-8 without line breaks")?;
    let dir = config_dir().map_err(|e| e.to_string())?;
    let config = Config::load(&dir).map_err(|e| e.to_string())?;
    let (name, _) = config
        .account(account.as_deref())
        .map_err(|e| e.to_string())?;
    let binary = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| format!("cannot locate the cells-mount binary: {e}"))?;
    let binary = binary
        .to_str()
        .ok_or("the cells-mount binary's path is not UTF-8")?
        .to_owned();
    platform::install(&binary, text, &name, no_start)
}

fn uninstall(mountpoint: &Path, no_start: bool) -> Result<String, String> {
    let mountpoint =
        std::path::absolute(mountpoint).map_err(|e| format!("{}: {e}", mountpoint.display()))?;
    let text = mountpoint
        .to_str()
        .ok_or("the mountpoint's path is not UTF-8")?;
    platform::uninstall(text, no_start)
}

/// `systemd-escape --path`: `/home/a/My Cells` → `home-a-My\x20Cells`.
pub fn systemd_escape_path(path: &str) -> String {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return "-".into();
    }
    let mut out = String::new();
    for (i, b) in trimmed.bytes().enumerate() {
        match b {
            b'/' => out.push('-'),
            b'.' if i == 0 => out.push_str("\\x2e"),
            b if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b':' => {
                out.push(b as char)
            }
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// One argument of a systemd `Exec*=` line: quoted, with specifiers (`%`) and variable
/// expansion (`$`) disabled.
#[cfg(not(target_os = "macos"))]
pub fn systemd_quote(arg: &str) -> String {
    let escaped = arg
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$");
    format!("\"{escaped}\"")
}

/// The systemd user unit that mounts `mountpoint` at login (not used on macOS: launchd).
#[cfg(not(target_os = "macos"))]
pub fn systemd_unit(binary: &str, mountpoint: &str, account: &str) -> String {
    let (b, m, a) = (
        systemd_quote(binary),
        systemd_quote(mountpoint),
        systemd_quote(account),
    );
    format!(
        "[Unit]\n\
         Description=cells-mount: Pydio Cells account {account} on {mountpoint}\n\
         Wants=network-online.target\n\
         After=network-online.target\n\n\
         [Service]\n\
         Type=simple\n\
         ExecStart={b} mount {m} --foreground --account {a}\n\
         ExecStop={b} unmount {m}\n\
         # Unmounting waits for pending uploads; they stay queued on disk if this runs out.\n\
         TimeoutStopSec=120\n\
         Restart=on-failure\n\
         RestartSec=10\n\n\
         [Install]\n\
         WantedBy=default.target\n",
        account = account.replace('%', "%%"),
        mountpoint = mountpoint.replace('%', "%%"),
    )
}

#[cfg(not(target_os = "macos"))]
mod platform {
    use super::*;

    fn unit_path(mountpoint: &str) -> Result<(String, PathBuf), String> {
        let base = directories::BaseDirs::new().ok_or("cannot find a home directory")?;
        let name = format!("cells-mount-{}.service", systemd_escape_path(mountpoint));
        Ok((
            name.clone(),
            base.config_dir().join("systemd").join("user").join(name),
        ))
    }

    fn systemctl_usable() -> bool {
        Command::new("systemctl")
            .args(["--user", "show-environment"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn systemctl(args: &[&str]) -> Result<(), String> {
        let status = Command::new("systemctl")
            .arg("--user")
            .args(args)
            .status()
            .map_err(|e| format!("systemctl: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "systemctl --user {} failed ({status})",
                args.join(" ")
            ))
        }
    }

    pub fn install(
        binary: &str,
        mountpoint: &str,
        account: &str,
        no_start: bool,
    ) -> Result<String, String> {
        let (name, path) = unit_path(mountpoint)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&path, systemd_unit(binary, mountpoint, account))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let commands =
            format!("systemctl --user daemon-reload\nsystemctl --user enable --now '{name}'");
        if no_start || !systemctl_usable() {
            return Ok(format!(
                "wrote {}\nto enable and start it, run:\n{commands}",
                path.display()
            ));
        }
        systemctl(&["daemon-reload"])?;
        systemctl(&["enable", "--now", &name])?;
        Ok(format!("installed and started {name} ({})", path.display()))
    }

    pub fn uninstall(mountpoint: &str, no_start: bool) -> Result<String, String> {
        let (name, path) = unit_path(mountpoint)?;
        if !path.exists() {
            return Err(format!(
                "no service for {mountpoint} ({} does not exist)",
                path.display()
            ));
        }
        let usable = !no_start && systemctl_usable();
        if usable {
            systemctl(&["disable", "--now", &name])?;
        }
        std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if usable {
            systemctl(&["daemon-reload"])?;
            Ok(format!("stopped and removed {name}"))
        } else {
            Ok(format!(
                "removed {}; if it was running, run:\nsystemctl --user disable --now '{name}'\n\
                 systemctl --user daemon-reload",
                path.display()
            ))
        }
    }
}

#[cfg(target_os = "macos")]
mod platform {
    use super::*;

    fn xml(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    }

    fn plist_path(mountpoint: &str) -> Result<(String, PathBuf), String> {
        let base = directories::BaseDirs::new().ok_or("cannot find a home directory")?;
        let label = format!(
            "com.pydio.cells-mount.{}",
            systemd_escape_path(mountpoint).replace('\\', "_")
        );
        let path = base
            .home_dir()
            .join("Library/LaunchAgents")
            .join(format!("{label}.plist"));
        Ok((label, path))
    }

    pub fn install(
        binary: &str,
        mountpoint: &str,
        account: &str,
        no_start: bool,
    ) -> Result<String, String> {
        let (label, path) = plist_path(mountpoint)?;
        let args = [
            binary,
            "mount",
            mountpoint,
            "--foreground",
            "--account",
            account,
        ]
        .iter()
        .map(|a| format!("    <string>{}</string>\n", xml(a)))
        .collect::<String>();
        let plist = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \
             \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\"><dict>\n\
             <key>Label</key><string>{}</string>\n<key>ProgramArguments</key><array>\n{args}</array>\n\
             <key>RunAtLoad</key><true/>\n<key>KeepAlive</key><dict><key>SuccessfulExit</key><false/></dict>\n\
             </dict></plist>\n",
            xml(&label)
        );
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&path, plist).map_err(|e| format!("{}: {e}", path.display()))?;
        let load = format!("launchctl load -w '{}'", path.display());
        if no_start {
            return Ok(format!(
                "wrote {}\nto start it, run:\n{load}",
                path.display()
            ));
        }
        let ok = Command::new("launchctl")
            .args(["load", "-w"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            Ok(format!("installed and started {label}"))
        } else {
            Ok(format!(
                "wrote {}; launchctl failed, run:\n{load}",
                path.display()
            ))
        }
    }

    pub fn uninstall(mountpoint: &str, no_start: bool) -> Result<String, String> {
        let (_, path) = plist_path(mountpoint)?;
        if !path.exists() {
            return Err(format!("no service for {mountpoint}"));
        }
        if !no_start {
            let _ = Command::new("launchctl")
                .args(["unload", "-w"])
                .arg(&path)
                .status();
        }
        std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(format!("removed {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_escape_like_systemd_escape() {
        assert_eq!(systemd_escape_path("/home/a/Cells"), "home-a-Cells");
        assert_eq!(
            systemd_escape_path("/home/a/My Cells/"),
            "home-a-My\\x20Cells"
        );
        assert_eq!(systemd_escape_path("/mnt/x-y"), "mnt-x\\x2dy");
        assert_eq!(systemd_escape_path("/.hidden"), "\\x2ehidden");
        assert_eq!(systemd_escape_path("/"), "-");
    }

    #[test]
    fn units_quote_their_arguments() {
        let unit = systemd_unit("/opt/cm/cells-mount", "/home/a/50% \"off\" $HOME", "work");
        assert!(unit.contains(
            "ExecStart=\"/opt/cm/cells-mount\" mount \"/home/a/50%% \\\"off\\\" $$HOME\" --foreground --account \"work\""
        ), "{unit}");
        assert!(unit.contains("ExecStop=\"/opt/cm/cells-mount\" unmount \"/home/a/50%%"));
        assert!(unit.contains("Restart=on-failure"));
    }
}
