//! A whole session at the highest verbosity (login, mount -vv with RUST_LOG=trace, list,
//! read, write, status, unmount) with tokens that expire every 2 s, then every log file and
//! every captured output is searched for every token value seen: none may appear.

mod login_support;

use login_support::*;
use std::collections::BTreeSet;
use std::time::Duration;

#[test]
fn no_token_value_reaches_any_log_or_output() {
    if !fuse_available("no_token_value_reaches_any_log_or_output") {
        return;
    }
    let home = Home::new(Some(Duration::from_secs(2)), |dir| {
        std::fs::write(dir.join("hello.txt"), b"hello\n").unwrap();
    });
    let mut outputs = vec![home.login_oidc(&["--name", "s"])];
    let mut tokens = BTreeSet::new();
    let remember = |home: &Home, tokens: &mut BTreeSet<String>| {
        let c = home.saved("s");
        tokens.insert(access_token(&c));
        tokens.insert(refresh_token(&c));
    };
    remember(&home, &mut tokens);

    let mnt = home.path("mnt");
    let m = mnt.to_str().unwrap().to_owned();
    let state = home.path("state");
    let stderr_file = home.path("mount.stderr");
    let mut child = home
        .cmd(&[
            "mount",
            &m,
            "--foreground",
            "-v",
            "-v",
            "--workspace",
            WORKSPACE,
        ])
        .arg("--state-dir")
        .arg(&state)
        .env("RUST_LOG", "trace")
        .stdout(std::fs::File::create(home.path("mount.stdout")).unwrap())
        .stderr(std::fs::File::create(&stderr_file).unwrap())
        .spawn()
        .expect("mount");
    wait_for("the mount", Duration::from_secs(20), || {
        if let Ok(Some(s)) = child.try_wait() {
            panic!(
                "mount exited {s}: {}",
                std::fs::read_to_string(&stderr_file).unwrap()
            );
        }
        (is_mountpoint(&mnt) && std::fs::read_dir(&mnt).is_ok()).then_some(())
    });
    assert_eq!(std::fs::read(mnt.join("hello.txt")).unwrap(), b"hello\n");
    std::fs::write(mnt.join("new.txt"), b"written through the mount\n").unwrap();
    // Let several refreshes happen, remembering every token the store held.
    let initial = refresh_token(&home.saved("s"));
    let mut rotations = 0;
    wait_for("three rotations", Duration::from_secs(30), || {
        let now = home.saved("s");
        if tokens.insert(refresh_token(&now)) {
            rotations += 1;
        }
        tokens.insert(access_token(&now));
        (rotations >= 3).then_some(())
    });
    assert_ne!(refresh_token(&home.saved("s")), initial);
    let listed: Vec<_> = std::fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(listed.iter().any(|n| n == "new.txt"), "{listed:?}");
    let uploaded = home
        .path("data")
        .join(WORKSPACE)
        .join("alice")
        .join("new.txt");
    wait_for("the upload", Duration::from_secs(20), || {
        (std::fs::read(&uploaded).ok()? == b"written through the mount\n").then_some(())
    });
    for args in [
        vec!["status", m.as_str()],
        vec!["accounts"],
        vec!["unmount", m.as_str()],
    ] {
        let o = home.run(&args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "{args:?}: {text}");
        outputs.push(text);
    }
    let status = wait_for("exit", Duration::from_secs(30), || {
        child.try_wait().ok().flatten()
    });
    remember(&home, &mut tokens);
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&stderr_file).unwrap()
    );

    let mut files = cells_mount::config::logs::log_files(&state.join("logs"));
    assert!(!files.is_empty(), "no rotated log file");
    files.extend([stderr_file, home.path("mount.stdout")]);
    let mut logged = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        logged += text.len();
        outputs.push(text);
    }
    assert!(
        logged > 1000,
        "trace logging produced almost nothing ({logged} bytes)"
    );
    assert!(tokens.len() >= 6, "{} tokens", tokens.len());
    for out in &outputs {
        for token in &tokens {
            assert!(!out.contains(token.as_str()), "a token leaked into:\n{out}");
        }
    }
}
