//! `cells-mount service install|uninstall` through the real binary in a private home: the
//! systemd user unit it writes (escaped name, quoted ExecStart/ExecStop with the account),
//! and refusals that change nothing.

mod login_support;

use login_support::*;

#[test]
fn service_install_writes_a_user_unit_for_the_default_account() {
    let home = Home::new(None, |_| {});
    let mnt = home.path("mnt");
    let m = mnt.to_str().unwrap();
    let o = home.run(&["service", "install", m, "--no-start"]);
    assert!(!o.status.success(), "no account yet");
    assert!(String::from_utf8_lossy(&o.stderr).contains("cells-mount login"));

    let token = home.path("token");
    std::fs::write(&token, "alice-token").unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let url = home.url();
    let o = home.run(&[
        "login",
        &url,
        "--token-file",
        token.to_str().unwrap(),
        "--name",
        "w",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let o = home.run(&["service", "install", m, "--no-start"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("systemctl --user enable --now"), "{out}");
    let units = home.path("config").join("systemd").join("user");
    let escaped = m
        .trim_start_matches('/')
        .replace('-', "\\x2d")
        .replace('/', "-");
    let unit = units.join(format!("cells-mount-{escaped}.service"));
    let text = std::fs::read_to_string(&unit).unwrap_or_else(|e| panic!("{}: {e}", unit.display()));
    let binary = std::fs::canonicalize(env!("CARGO_BIN_EXE_cells-mount")).unwrap();
    assert!(
        text.contains(&format!(
            "ExecStart=\"{}\" mount \"{m}\" --foreground --account \"w\"",
            binary.display()
        )),
        "{text}"
    );
    assert!(text.contains(&format!(
        "ExecStop=\"{}\" unmount \"{m}\"",
        binary.display()
    )));
    assert!(text.contains("Restart=on-failure") && text.contains("WantedBy=default.target"));
    assert!(!text.contains("alice-token"));

    let o = home.run(&["service", "uninstall", m, "--no-start"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!unit.exists());
    let o = home.run(&[
        "service",
        "install",
        home.path("missing").to_str().unwrap(),
        "--no-start",
    ]);
    assert!(!o.status.success());
    assert_eq!(
        std::fs::read_dir(&units).unwrap().count(),
        0,
        "bad input wrote nothing"
    );
}
