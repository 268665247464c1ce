//! Mounting on Windows: WinFsp's volume parameters (case-insensitive, case-preserving, with
//! ACLs), the security descriptor every node carries, and the drive letter or folder.

use super::adapter::CellsWinFs;
use crate::fs::FileSystem;
use std::io;
use std::sync::Arc;
use winfsp::host::{FileSystemHost, FineGuard, VolumeParams};

/// How to mount.
#[derive(Debug, Clone)]
pub struct WinMountOptions {
    /// `X:` for a drive letter, or a folder path that does not exist yet (WinFsp creates it).
    pub target: String,
    /// Shown by Explorer next to the drive letter (at most 32 characters).
    pub volume_label: String,
}

/// The nodes' security descriptor, in SDDL: owned by Administrators, full access for the
/// system, Administrators and the user who mounted (the drive letter lives in that user's
/// logon session, so nobody else sees it). Permissions that really apply are Cells' own,
/// enforced by the core and shown as FILE_ATTRIBUTE_READONLY.
const SDDL: &str = "O:BAG:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FA;;;IU)(A;;FA;;;OW)";

/// The self-relative binary form of [`SDDL`].
fn security_descriptor() -> io::Result<Vec<u8>> {
    use windows::Win32::Foundation::{HLOCAL, LocalFree};
    use windows::Win32::Security::Authorization::{
        ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
    };
    use windows::Win32::Security::PSECURITY_DESCRIPTOR;
    use windows::core::HSTRING;
    let sddl = HSTRING::from(SDDL);
    let mut descriptor = PSECURITY_DESCRIPTOR::default();
    let mut size = 0u32;
    // SAFETY: valid NUL-terminated input; on success we own `descriptor` (freed below).
    unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            &sddl,
            SDDL_REVISION_1,
            &mut descriptor,
            Some(&mut size),
        )
    }
    .map_err(|e| io::Error::other(format!("security descriptor: {e}")))?;
    // SAFETY: the call above allocated `size` bytes at `descriptor`.
    let bytes =
        unsafe { std::slice::from_raw_parts(descriptor.0.cast::<u8>(), size as usize) }.to_vec();
    // SAFETY: allocated by LocalAlloc in the conversion; freed once.
    unsafe {
        let _ = LocalFree(Some(HLOCAL(descriptor.0)));
    }
    Ok(bytes)
}

/// A live WinFsp mount. Dropping it unmounts.
pub struct WinFspMount<F: FileSystem> {
    host: FileSystemHost<CellsWinFs<F>, FineGuard>,
    target: String,
}

impl<F: FileSystem> WinFspMount<F> {
    /// Mounts `fs` at `opts.target`; requests run as tasks on `rt`. Needs WinFsp installed
    /// (its DLL is delay-loaded from the WinFsp folder by `winfsp_init`).
    pub fn mount(
        fs: Arc<F>,
        opts: &WinMountOptions,
        rt: tokio::runtime::Handle,
    ) -> io::Result<Self> {
        winfsp::winfsp_init().map_err(|e| {
            io::Error::other(format!(
                "WinFsp is not installed or cannot be loaded ({e:?}); install it from https://winfsp.dev"
            ))
        })?;
        let mut params = VolumeParams::new();
        params
            .filesystem_name("cells-mount")
            .sector_size(4096)
            .sectors_per_allocation_unit(1)
            .max_component_length(255)
            .case_sensitive_search(false)
            .case_preserved_names(true)
            .unicode_on_disk(true)
            .persistent_acls(true)
            .post_cleanup_when_modified_only(false)
            .file_info_timeout(1000)
            .volume_serial_number(volume_serial(&opts.volume_label));
        let label: String = opts.volume_label.chars().take(32).collect();
        let context = CellsWinFs::new(fs, rt, label, security_descriptor()?);
        let mut host = FileSystemHost::<CellsWinFs<F>, FineGuard>::new(params, context)
            .map_err(failed("WinFsp"))?;
        host.mount(opts.target.as_str())
            .map_err(failed(&format!("cannot mount on {}", opts.target)))?;
        host.start().map_err(failed("WinFsp dispatcher"))?;
        Ok(Self {
            host,
            target: opts.target.clone(),
        })
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    /// Stops the dispatcher and removes the drive letter or folder.
    pub fn unmount(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.host.stop();
        self.host.unmount();
    }
}

impl<F: FileSystem> Drop for WinFspMount<F> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Turns a WinFsp or Windows error into an `io::Error` that says what failed.
fn failed<E: std::fmt::Debug>(what: &str) -> impl FnOnce(E) -> io::Error {
    let what = what.to_owned();
    move |e| io::Error::other(format!("{what}: {e:?}"))
}

/// A serial number derived from the label, stable across mounts (Explorer and backup tools
/// use it to recognise a volume).
fn volume_serial(label: &str) -> u32 {
    label.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}
