//! Build script: link options the target platform needs.
//!
//! On Windows with MSVC, the WinFsp DLL is delay-loaded: WinFsp is installed by its own
//! installer in a folder found in the registry at run time (`winfsp::winfsp_init` does that),
//! so the DLL cannot be a normal load-time import or the program would not even start on a
//! machine without WinFsp, and could not say what is missing.
//! (`cfg!` in a build script describes the host, so the target is read from Cargo's env.)

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = |key: &str| std::env::var(format!("CARGO_CFG_TARGET_{key}")).unwrap_or_default();
    if target("OS") != "windows" || target("ENV") != "msvc" {
        return;
    }
    let dll = match target("ARCH").as_str() {
        "x86_64" => "winfsp-x64.dll",
        "aarch64" => "winfsp-a64.dll",
        "x86" => "winfsp-x86.dll",
        other => {
            println!("cargo:warning=no WinFsp DLL is known for architecture {other}");
            return;
        }
    };
    println!("cargo:rustc-link-lib=dylib=delayimp");
    println!("cargo:rustc-link-arg-bins=/DELAYLOAD:{dll}");
}
