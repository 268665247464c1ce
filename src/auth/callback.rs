//! The redirect target of the login: a tiny HTTP listener on `localhost`, on the first free
//! port of 3636–3666 (the range Cells servers allow for the `cells-sync` client), that takes
//! `GET /servers/callback?code=…&state=…` and answers a friendly page.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

/// Ports Cells allows in the `cells-sync` client's redirect URIs.
pub const PORTS: std::ops::RangeInclusive<u16> = 3636..=3666;
pub const CALLBACK_PATH: &str = "/servers/callback";
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// How long one browser connection may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

const DONE_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>cells-mount</title>\
<style>body{font-family:sans-serif;margin:4em auto;max-width:32em;text-align:center}</style></head>\
<body><h1>You are signed in</h1><p>cells-mount received your login. You can close this tab \
and go back to the terminal.</p></body></html>";
const FAILED_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>cells-mount</title>\
<style>body{font-family:sans-serif;margin:4em auto;max-width:32em;text-align:center}</style></head>\
<body><h1>Login not completed</h1><p>This answer does not belong to the login cells-mount is \
waiting for. Go back to the terminal for details.</p></body></html>";

/// The bound listeners (IPv4 and, when possible, IPv6 loopback on the same port: browsers
/// may resolve `localhost` to either).
pub struct CallbackListener {
    v4: TcpListener,
    v6: Option<TcpListener>,
    port: u16,
}

impl CallbackListener {
    /// Binds the first free port of [`PORTS`].
    pub async fn bind() -> std::io::Result<Self> {
        let mut last = None;
        for port in PORTS {
            match TcpListener::bind(("127.0.0.1", port)).await {
                Ok(v4) => {
                    let v6 = TcpListener::bind(("::1", port)).await.ok();
                    return Ok(Self { v4, v6, port });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!(
                "no free port in {}-{} for the login callback ({})",
                PORTS.start(),
                PORTS.end(),
                last.map(|e| e.to_string()).unwrap_or_default()
            ),
        ))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://localhost:PORT/servers/callback`, the redirect URI to register in the request.
    pub fn redirect_uri(&self) -> Url {
        let raw = format!("http://localhost:{}{CALLBACK_PATH}", self.port);
        // A fixed, valid shape: parsing cannot fail.
        Url::parse(&raw).unwrap_or_else(|_| unreachable!("{raw} is a valid URL"))
    }

    /// Serves connections until `accept` takes a callback's query string (returns it), or
    /// forever. Other paths get 404; a query `accept` refuses gets the failure page and we
    /// keep waiting (a stale tab must not end the login).
    pub async fn wait(&self, mut accept: impl FnMut(&str) -> bool) -> std::io::Result<String> {
        loop {
            let (stream, _) = match &self.v6 {
                Some(v6) => tokio::select! {
                    r = self.v4.accept() => r?,
                    r = v6.accept() => r?,
                },
                None => self.v4.accept().await?,
            };
            let Ok(Some(target)) = read_target(&stream).await.map_err(|e| {
                tracing::debug!("login callback: unreadable request: {e}");
            }) else {
                let _ = respond(stream, 400, "Bad Request", FAILED_PAGE).await;
                continue;
            };
            let (path, query) = target.split_once('?').unwrap_or((target.as_str(), ""));
            if path != CALLBACK_PATH {
                let _ = respond(stream, 404, "Not Found", "not found").await;
                continue;
            }
            if accept(query) {
                let _ = respond(stream, 200, "OK", DONE_PAGE).await;
                return Ok(query.to_owned());
            }
            let _ = respond(stream, 400, "Bad Request", FAILED_PAGE).await;
        }
    }
}

/// The request target of a `GET`, read with a size cap and a timeout.
async fn read_target(stream: &TcpStream) -> std::io::Result<Option<String>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    let read = async {
        loop {
            stream.readable().await?;
            match stream.try_read(&mut buf) {
                Ok(0) => return Ok::<_, std::io::Error>(()),
                Ok(n) => {
                    head.extend_from_slice(&buf[..n]);
                    if head.windows(4).any(|w| w == b"\r\n\r\n") || head.len() > MAX_REQUEST_HEAD {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    };
    tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "slow request"))??;
    let text = String::from_utf8_lossy(&head);
    let mut words = text.lines().next().unwrap_or("").split(' ');
    match (words.next(), words.next()) {
        (Some("GET"), Some(target)) => Ok(Some(target.to_owned())),
        _ => Ok(None),
    }
}

async fn respond(
    mut stream: TcpStream,
    code: u16,
    reason: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await?;
    // Drain what the client may still send, so closing does not reset the connection
    // before it has read our answer.
    let mut sink = [0u8; 512];
    let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut sink)).await;
    Ok(())
}
