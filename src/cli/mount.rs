//! `cells-mount mount`: the mount lifecycle. Validated plan → mountpoint repaired → private
//! directories → detach → runtime → core (see `compose`) → FUSE session → wait for a signal
//! or an outside unmount → clean unmount.

use super::args::MountPlan;
use super::compose::build_core;
use super::daemon::{self, Readiness};
use super::mountpoint;
use cells_mount::control::socket::canonical_mountpoint;
use cells_mount::control::{ControlServer, UnmountRequest};
use cells_mount::platform::fuse::{FuseMount, MountOptions};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

pub fn run(plan: MountPlan) -> ExitCode {
    match prepare(&plan) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("cells-mount: {e}");
            return ExitCode::FAILURE;
        }
    }
    // Everything goes to daily-rotated files in STATE/logs (a week kept), and to stderr in
    // the foreground; a detached mount's stderr is STATE/cells-mount.log, which does not
    // rotate: lifecycle lines and warnings only.
    use cells_mount::config::logs::{self, LevelFilter};
    let log_dir = plan.state_dir.join(logs::LOG_DIR);
    let stderr_max = match plan.foreground {
        true => LevelFilter::TRACE,
        false => LevelFilter::INFO,
    };
    if let Err(e) = logs::init(plan.verbose, Some(&log_dir), Some(stderr_max)) {
        eprintln!("cells-mount: {e}");
        return ExitCode::FAILURE;
    }
    let mut readiness = if plan.foreground {
        Readiness::foreground()
    } else {
        match daemon::detach(&plan.state_dir.join("cells-mount.log")) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("cells-mount: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    match serve(&plan, &mut readiness) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            readiness.failed(&e);
            if plan.foreground {
                eprintln!("cells-mount: {e}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Everything that can be checked before detaching, so the user sees errors on the terminal.
fn prepare(plan: &MountPlan) -> Result<(), String> {
    mountpoint::prepare(&plan.mountpoint)?;
    private_dir(&plan.cache_dir)?;
    private_dir(&plan.state_dir)?;
    Ok(())
}

/// Creates `dir` (and parents) owner-only, and narrows an existing one to 0700: the cache holds
/// the user's files and the state directory their metadata.
fn private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot make {} private (0700): {e}", dir.display()))?;
    }
    Ok(())
}

fn serve(plan: &MountPlan, readiness: &mut Readiness) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cells-worker")
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let core = rt.block_on(build_core(plan))?;
    // Resolved while the mountpoint is still a plain directory: the control socket's name.
    let canonical = canonical_mountpoint(&plan.mountpoint)?;
    let (ended_tx, mut ended_rx) = tokio::sync::oneshot::channel::<String>();
    let on_end = move |result: &std::io::Result<()>| {
        let why = match result {
            Ok(()) => "unmounted".to_string(),
            Err(e) => format!("FUSE session failed: {e}"),
        };
        let _ = ended_tx.send(why);
    };
    let opts = MountOptions {
        allow_other: plan.allow_other,
        extra: platform_mount_options(plan)?,
        ..MountOptions::default()
    };
    let mount = FuseMount::mount(
        core.fs(),
        &plan.mountpoint,
        &opts,
        rt.handle().clone(),
        on_end,
    )
    .map_err(|e| format!("cannot mount on {}: {e}", plan.mountpoint.display()))?;
    core.attach(mount.invalidator());
    tracing::info!(
        passthrough = mount.passthrough_enabled(),
        "mounted {} on {}",
        plan.workspace.as_deref().unwrap_or("all workspaces"),
        plan.mountpoint.display()
    );
    let (unmount_tx, mut unmount_rx) = tokio::sync::mpsc::channel::<UnmountRequest>(1);
    let control = start_control(&rt, &core, plan, canonical, unmount_tx);
    readiness.ready();
    let outcome = rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return Err("cannot install signal handlers".to_string());
        };
        tokio::select! {
            _ = int.recv() => Ok("SIGINT".to_string()),
            _ = term.recv() => Ok("SIGTERM".to_string()),
            why = &mut ended_rx => Ok(why.unwrap_or_else(|_| "session ended".into())),
            Some(req) = unmount_rx.recv() => Ok(format!(
                "unmount requested{}",
                if req.force { " (--force)" } else { "" }
            )),
        }
    });
    let why = outcome.unwrap_or_else(|e| e);
    tracing::info!("{why}: unmounting {}", plan.mountpoint.display());
    let counts = mount.stats().snapshot();
    let unmounted = mount.unmount();
    core.shutdown(&rt);
    tracing::info!(?counts, "request errors during this mount");
    if let Some(control) = control {
        let outcome = unmounted.as_ref().map(|_| ()).map_err(|e| e.to_string());
        rt.block_on(control.finish(outcome));
    }
    match unmounted {
        Ok(()) => Ok(()),
        // Unmounted from outside (fusermount -u): nothing left to undo.
        Err(e) if why == "unmounted" => {
            tracing::debug!("{e}");
            Ok(())
        }
        Err(e) => Err(format!("unmounting {}: {e}", plan.mountpoint.display())),
    }
}

/// Starts the control socket (`status`, `unmount`). A mount without one still works, so a
/// failure is logged, not fatal.
fn start_control(
    rt: &tokio::runtime::Runtime,
    core: &super::compose::Core,
    plan: &MountPlan,
    canonical: std::path::PathBuf,
    unmount: tokio::sync::mpsc::Sender<UnmountRequest>,
) -> Option<ControlServer> {
    let started = core
        .control_view(plan, canonical)
        .and_then(|view| rt.block_on(async { ControlServer::start(Arc::new(view), unmount) }));
    match started {
        Ok(server) => {
            tracing::debug!("control socket {}", server.socket_path().display());
            Some(server)
        }
        Err(e) => {
            tracing::warn!("no control socket (status and unmount will not reach this mount): {e}");
            None
        }
    }
}

/// Finder shows the volume under the workspace's name (macFUSE `volname`).
#[cfg(target_os = "macos")]
fn platform_mount_options(plan: &MountPlan) -> Result<Vec<String>, String> {
    use cells_mount::platform::macos::{FinderLook, default_volume_name, macfuse_options};
    macfuse_options(&FinderLook {
        volume_name: default_volume_name(plan.workspace.as_deref()),
        icon: None,
    })
}

/// Other platforms need no extra mount options.
#[cfg(not(target_os = "macos"))]
fn platform_mount_options(_plan: &MountPlan) -> Result<Vec<String>, String> {
    Ok(Vec::new())
}
