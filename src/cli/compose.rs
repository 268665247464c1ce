//! Composition of a running mount, in one place: Cells client + content cache + metadata
//! index + file-system core + change feed. The FUSE session is attached by `mount`.

use super::args::{Credentials, MountPlan};
use cells_cache::sqlite::held_elsewhere;
use cells_cache::{Cache, CacheConfig};
use cells_mount::client::{CellsClient, ClientConfig, ClientError};
#[cfg(unix)]
use cells_mount::control::MountView;
use cells_mount::fs::{CellsFs, FsConfig};
use cells_mount::meta::MetaStore;
#[cfg(unix)]
use cells_mount::platform::fuse::FuseInvalidator;
use cells_mount::sync::{Journal, Uploader, UploaderConfig};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How long the start-up credential check may take before we mount anyway (offline start).
const STARTUP_PROBE: Duration = Duration::from_secs(10);

pub struct Core {
    fs: Arc<CellsFs<CellsClient>>,
    feed: JoinHandle<()>,
    /// Uploads the journal; stopping it leaves pending rows in the journal (durable).
    uploader: Arc<Uploader>,
    /// Tells the uploader when the server is reachable again.
    online: JoinHandle<()>,
    /// Read by the control socket (`status`, `unmount` draining the queue); no control
    /// socket on Windows yet.
    #[cfg_attr(windows, allow(dead_code))]
    cache: Arc<Cache>,
    #[cfg_attr(windows, allow(dead_code))]
    journal: Arc<Journal>,
}

impl Core {
    pub fn fs(&self) -> Arc<CellsFs<CellsClient>> {
        self.fs.clone()
    }

    /// What the control socket answers from: handles on this core, the cache and journal.
    #[cfg(unix)]
    pub fn control_view(
        &self,
        plan: &MountPlan,
        canonical_mountpoint: std::path::PathBuf,
    ) -> Result<MountView, String> {
        let root = CellsFs::<CellsClient>::root_path_for(&FsConfig {
            workspace: plan.workspace.clone(),
            ..FsConfig::default()
        })
        .map_err(|e| format!("--workspace: {e}"))?;
        Ok(MountView {
            server: plan.server.clone(),
            workspace: plan.workspace.clone(),
            mountpoint: canonical_mountpoint,
            root,
            connectivity: self.fs.clone(),
            cache: self.cache.clone(),
            journal: Some(self.journal.clone()),
            pins: Some(self.fs.clone()),
        })
    }

    /// Connects the core to the mounted session's kernel cache invalidation.
    #[cfg(unix)]
    pub fn attach(&self, invalidator: Arc<FuseInvalidator>) {
        self.fs.set_invalidator(invalidator);
    }

    /// Stops background work (the change feed; its websocket closes with the receiver).
    pub fn shutdown(self, rt: &tokio::runtime::Runtime) {
        self.feed.abort();
        self.online.abort();
        let _ = rt.block_on(self.feed);
        let _ = rt.block_on(self.online);
        // Every acknowledged change is already committed in the journal; in-flight uploads
        // simply resume at the next start. What is not synced yet is synced now.
        match Arc::try_unwrap(self.uploader) {
            Ok(uploader) => rt.block_on(uploader.shutdown()),
            Err(_) => {
                if let Err(e) = self.journal.sync() {
                    tracing::error!("could not sync the upload journal: {e}");
                }
            }
        }
    }
}

pub async fn build_core(plan: &MountPlan) -> Result<Core, String> {
    let (token, source, oidc) = match &plan.credentials {
        Credentials::Token(t) => (t.clone(), None, None),
        Credentials::Account {
            name,
            config_dir,
            account,
        } => {
            let (name, dir, account) = (name.clone(), config_dir.clone(), account.clone());
            let auth = tokio::task::spawn_blocking(move || {
                cells_mount::auth::open_account(&dir, &name, &account)
            })
            .await
            .map_err(|e| format!("loading the account's credentials: {e}"))?
            .map_err(|e| e.to_string())?;
            (auth.token, Some(auth.source), auth.oidc)
        }
    };
    let mut client_cfg =
        ClientConfig::new(&plan.server, token).map_err(|e| format!("--server: {e}"))?;
    client_cfg.extra_ca_pem = plan.ca_cert.clone();
    let client = match source {
        Some(tokens) => CellsClient::with_token_source(client_cfg, tokens),
        None => CellsClient::new(client_cfg),
    }
    .map_err(|e| format!("cannot set up the Cells client: {e}"))?;
    // Refreshes OIDC tokens ahead of expiry; ends when the client (its token source) goes.
    if let Some(tokens) = &oidc {
        drop(tokens.spawn_keeper());
    }
    #[cfg(unix)]
    // SAFETY: getuid/getgid cannot fail and have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // Windows has no uid/gid; the WinFsp adapter shows ownership through its ACL.
    #[cfg(windows)]
    let (uid, gid) = (0, 0);
    let fs_cfg = FsConfig {
        workspace: plan.workspace.clone(),
        uid,
        gid,
        ..FsConfig::default()
    };
    let root =
        CellsFs::<CellsClient>::root_path_for(&fs_cfg).map_err(|e| format!("--workspace: {e}"))?;
    // The index and the cache open on blocking threads while the server answers the probe:
    // start-up pays for the slower of the two, not for both.
    let state_dir = plan.state_dir.clone();
    let meta_root = root.clone();
    let open_meta = tokio::task::spawn_blocking(move || MetaStore::open(&state_dir, &meta_root));
    let cache_cfg = CacheConfig::new(&plan.cache_dir, plan.cache_size);
    let open_cache = tokio::task::spawn_blocking(move || Cache::open(cache_cfg));
    let reachability = check_server(&client, &root).await?;
    let meta = open_meta
        .await
        .map_err(|e| format!("opening the metadata index: {e}"))?
        .map_err(|e| match e {
            cells_mount::meta::MetaError::Sqlite(s) if held_elsewhere(&s) => in_use(plan),
            e => format!("metadata index in {}: {e}", plan.state_dir.display()),
        })?;
    if let Reachability::Unreachable(why) = reachability {
        // Starting offline only makes sense with something to show: a first mount against an
        // unreachable server would present an empty folder, which looks like data loss.
        let known = meta
            .get(cells_mount::fs::ROOT_INO)
            .ok()
            .flatten()
            .is_some_and(|root| root.listed_at.is_some());
        if !known {
            return Err(format!(
                "cannot reach {} ({why}), and this workspace has never been mounted from this \
                 state directory, so there is no offline copy to show; mount once while online",
                plan.server
            ));
        }
        tracing::warn!("server not reachable ({why}): starting offline from the index and cache");
    }
    let cache = open_cache
        .await
        .map_err(|e| format!("opening the cache: {e}"))?
        .map_err(|e| format!("cache in {}: {e}", plan.cache_dir.display()))?;

    let cache = Arc::new(cache);
    let control_cache = cache.clone();
    let fs = CellsFs::new(fs_cfg, Arc::new(client.clone()), cache.clone(), meta)
        .map_err(|e| format!("cannot start the file system: {e}"))?;
    let state_dir = plan.state_dir.clone();
    let journal = tokio::task::spawn_blocking(move || Journal::open(&state_dir, Some(cache)))
        .await
        .map_err(|e| format!("opening the upload journal: {e}"))?
        .map_err(|e| match e {
            cells_mount::sync::SyncError::Db(s) if held_elsewhere(&s) => in_use(plan),
            e => format!("upload journal in {}: {e}", plan.state_dir.display()),
        })?;
    let journal = Arc::new(journal);
    fs.enable_writes(journal.clone(), &plan.state_dir)
        .map_err(|e| format!("cannot enable writes: {e}"))?;
    let control_journal = journal.clone();
    let uploader = Arc::new(Uploader::spawn(
        journal,
        Arc::new(client.clone()),
        fs.sync_hooks(),
        UploaderConfig {
            interrupted: Some(Arc::new(client.clone())),
            write_back: plan.write_back,
            ..UploaderConfig::default()
        },
    ));
    let online = {
        let (fs, uploader) = (Arc::downgrade(&fs), Arc::downgrade(&uploader));
        tokio::spawn(async move {
            loop {
                let Some(core) = fs.upgrade() else { return };
                core.back_online().await;
                match uploader.upgrade() {
                    Some(u) => u.online(),
                    None => return,
                }
            }
        })
    };
    let feed = fs.spawn_feed(client.subscribe());
    // Ends with the core (it holds it only while a pass runs).
    drop(fs.spawn_pins());
    Ok(Core {
        fs,
        feed,
        uploader,
        online,
        cache: control_cache,
        journal: control_journal,
    })
}

/// Whether the server answered the start-up probe.
enum Reachability {
    Online,
    Unreachable(String),
}

/// Refuses to mount with a token the server rejects or a workspace that does not exist. An
/// unreachable server is not an error by itself: the caller starts offline when it has an
/// index to serve.
async fn check_server(
    client: &CellsClient,
    root: &cells_mount::names::RemotePath,
) -> Result<Reachability, String> {
    // The root of all workspaces is not a node the server can stat: list it instead.
    let probe = async {
        if root.is_root() {
            client.list_page(root, 0, 1).await.map(|_| ())
        } else {
            client.stat(root).await.map(|_| ())
        }
    };
    match tokio::time::timeout(STARTUP_PROBE, probe).await {
        Ok(Ok(_)) => Ok(Reachability::Online),
        Ok(Err(ClientError::Unauthorized(_))) => Err(
            "the server refused the token (expired or revoked?): log in again with \
             `cells-mount login SERVER`, or create a new personal access token"
                .into(),
        ),
        Ok(Err(ClientError::NotFound(_))) => {
            Err(format!("workspace {root} does not exist on the server"))
        }
        Ok(Err(ClientError::Forbidden(m))) => Err(format!("access to {root} is denied: {m}")),
        Ok(Err(e)) => Ok(Reachability::Unreachable(e.to_string())),
        Err(_) => Ok(Reachability::Unreachable(format!(
            "no answer within {STARTUP_PROBE:?}"
        ))),
    }
}

/// The error for a state directory that another running mount uses: its index and journal
/// are one process's own.
fn in_use(plan: &MountPlan) -> String {
    format!(
        "the state directory {} is in use by another cells-mount process; each mount needs \
         its own (--state-dir)",
        plan.state_dir.display()
    )
}
