//! `cells-mount login` end to end through the real binary: the OIDC flow against the test
//! server (a test client plays the browser), a pasted answer, personal access tokens from a
//! private file, diagnoses of wrong URLs, `accounts`, and a mount that outlives its tokens.

mod login_support;

use login_support::*;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn oidc_login_saves_a_private_account_that_accounts_lists() {
    let home = Home::new(None, |_| {});
    let out = home.login_oidc(&["--name", "work"]);
    assert!(
        out.contains("as alice") && out.contains("\"work\""),
        "{out}"
    );
    let saved = home.saved("work");
    let (access, refresh) = (access_token(&saved), refresh_token(&saved));
    assert!(saved.expires_at().is_some());
    assert_eq!(mode(&home.secrets_file("work")), 0o600);
    assert_eq!(mode(home.secrets_file("work").parent().unwrap()), 0o700);
    let config = std::fs::read_to_string(home.config_dir().join("config.toml")).unwrap();
    assert!(
        config.contains("[accounts.work]") && config.contains("token_url"),
        "{config}"
    );
    assert!(!config.contains(&access) && !config.contains(&refresh));
    assert!(!out.contains(&access) && !out.contains(&refresh), "{out}");

    let listed = home.run(&["accounts"]);
    assert!(listed.status.success(), "{}", text(&listed));
    let table = String::from_utf8_lossy(&listed.stdout);
    let row = table.lines().find(|l| l.contains("work")).expect("row");
    assert!(
        row.starts_with('*') && row.contains("alice") && row.contains("oidc"),
        "{table}"
    );
    assert!(row.contains(&home.url()) && row.contains("UTC"), "{table}");

    let json = home.run(&["accounts", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(rows[0]["name"], "work");
    assert_eq!(rows[0]["default"], true);
    assert_eq!(rows[0]["auth"], "oidc");
    assert_eq!(rows[0]["secret_store"], "file");
    assert!(rows[0]["token_expires_at"].as_u64().is_some());
}

#[test]
fn an_answer_pasted_on_stdin_completes_the_login() {
    let home = Home::new(None, |_| {});
    let url = home.url();
    let mut child = home
        .cmd(&["login", &url, "--no-browser", "--name", "pasted"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let authorize = loop {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).expect("read") > 0);
        if line.starts_with("http") {
            break line.trim().to_owned();
        }
    };
    // The "other device": follows the authorize redirect but cannot reach our listener; the
    // user pastes the address the browser ended on. A forged one first: refused, not fatal.
    let http = browser();
    let location = home.rt.block_on(async {
        let resp = http.get(&authorize).send().await.unwrap();
        resp.headers()["location"].to_str().unwrap().to_owned()
    });
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(
        stdin,
        "http://localhost:3636/servers/callback?code=x&state=forged"
    )
    .unwrap();
    writeln!(stdin, "{location}").unwrap();
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("state mismatch"), "{err}");
    assert!(refresh_token(&home.saved("pasted")).len() > 8);
}

#[test]
fn personal_access_tokens_come_from_private_files_and_are_checked() {
    let home = Home::new(None, |_| {});
    let url = home.url();
    let file = home.path("token");
    std::fs::write(&file, "alice-token\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let f = file.to_str().unwrap();
    let o = home.run(&["login", &url, "--token-file", f]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("chmod 600") && !text(&o).contains("alice-token"),
        "{}",
        text(&o)
    );
    assert!(
        !home.config_dir().join("config.toml").exists(),
        "bad input changes nothing"
    );

    std::fs::write(&file, "wrong-token\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = home.run(&["login", &url, "--token-file", f, "--name", "pat"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("refused") && !text(&o).contains("wrong-token"),
        "{}",
        text(&o)
    );
    assert!(!home.config_dir().join("config.toml").exists());

    std::fs::write(&file, "alice-token\n").unwrap();
    let o = home.run(&["login", &url, "--token-file", f, "--name", "pat"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(access_token(&home.saved("pat")), "alice-token");
    assert_eq!(mode(&home.secrets_file("pat")), 0o600);
    let listed = String::from_utf8_lossy(&home.run(&["accounts"]).stdout).into_owned();
    let row = listed.lines().find(|l| l.contains("pat")).expect("row");
    assert!(row.starts_with('*') && row.contains("token"), "{listed}");
    assert!(!listed.contains("alice-token"));

    // A second account does not take the default; `accounts default` moves it.
    let o = home.run(&["login", &url, "--token-file", f, "--name", "second"]);
    assert!(o.status.success(), "{}", text(&o));
    let rows: serde_json::Value =
        serde_json::from_slice(&home.run(&["accounts", "--json"]).stdout).unwrap();
    let default: Vec<_> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["default"] == true)
        .collect();
    assert_eq!(default.len(), 1);
    assert_eq!(default[0]["name"], "pat");
    assert!(
        home.run(&["accounts", "default", "second"])
            .status
            .success()
    );
    assert!(home.run(&["accounts", "default", "nope"]).status.code() != Some(0));
    assert!(home.run(&["accounts", "remove", "pat"]).status.success());
    assert!(!home.secrets_file("pat").exists());
    let rows: serde_json::Value =
        serde_json::from_slice(&home.run(&["accounts", "--json"]).stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["default"], true);
}

#[test]
fn wrong_urls_are_diagnosed() {
    let home = Home::new(None, |_| {});
    // A Cells path that has no OIDC below it: 404 on discovery.
    let o = home.run(&[
        "login",
        &format!("{}/not-cells", home.url()),
        "--no-browser",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("EXTERNAL_URL"), "{}", text(&o));

    // Something else entirely: say what answered.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut s = stream;
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut s, &mut buf);
            let body = "<html><body>Welcome to nginx!</body></html>";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let o = home.run(&["login", &format!("http://{addr}"), "--no-browser"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("does not look like a Cells server") && t.contains("text/html"),
        "{t}"
    );
    assert!(t.contains("Welcome to nginx"), "{t}");

    // Nothing listening.
    let o = home.run(&["login", "http://127.0.0.1:9", "--no-browser"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("cannot reach"), "{}", text(&o));
    assert!(!home.config_dir().join("config.toml").exists());
}

#[test]
fn a_mount_keeps_reading_after_its_tokens_expire_and_rotates_the_saved_refresh_token() {
    if !fuse_available("a_mount_keeps_reading_after_its_tokens_expire") {
        return;
    }
    let home = Home::new(Some(Duration::from_secs(2)), |dir| {
        std::fs::write(dir.join("a.txt"), b"first file\n").unwrap();
        std::fs::create_dir(dir.join("later")).unwrap();
        std::fs::write(dir.join("later").join("b.txt"), b"read after expiry\n").unwrap();
    });
    home.login_oidc(&["--name", "short"]);
    let logged_in = Instant::now();
    let first_refresh = refresh_token(&home.saved("short"));
    let mnt = home.path("mnt");
    let log = std::fs::File::create(home.path("mount.log")).unwrap();
    let mut child = home
        .cmd(&[
            "mount",
            mnt.to_str().unwrap(),
            "--foreground",
            "--account",
            "short",
        ])
        .args(["--workspace", WORKSPACE])
        .arg("--state-dir")
        .arg(home.path("state"))
        .stderr(log)
        .spawn()
        .expect("mount");
    wait_for("the mount", Duration::from_secs(20), || {
        if let Ok(Some(s)) = child.try_wait() {
            panic!(
                "mount exited {s}: {}",
                std::fs::read_to_string(home.path("mount.log")).unwrap()
            );
        }
        (is_mountpoint(&mnt) && std::fs::read_dir(&mnt).is_ok()).then_some(())
    });
    assert_eq!(std::fs::read(mnt.join("a.txt")).unwrap(), b"first file\n");
    // Past the first access token's life, with the refresh token rotated and saved.
    wait_for("a rotated refresh token", Duration::from_secs(20), || {
        (logged_in.elapsed() > Duration::from_secs(3)
            && refresh_token(&home.saved("short")) != first_refresh)
            .then_some(())
    });
    let names: Vec<_> = std::fs::read_dir(mnt.join("later"))
        .expect("list after expiry")
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["b.txt"]);
    assert_eq!(
        std::fs::read(mnt.join("later/b.txt")).unwrap(),
        b"read after expiry\n"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_for("exit", Duration::from_secs(20), || {
        child.try_wait().ok().flatten()
    });
    let log = std::fs::read_to_string(home.path("mount.log")).unwrap();
    assert!(status.success(), "{log}");
    let logs = home.path("state").join("logs");
    assert_eq!(
        cells_mount::config::logs::log_files(&logs).len(),
        1,
        "one rotated log file"
    );
}
