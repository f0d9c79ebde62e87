//! The real OAuth 2.0 / OpenID Connect server of the Circuit tests (`tests/oauth-server/`:
//! oidc-provider from npm, on loopback over https with a certificate of the test's own CA), and a
//! scripted walk through its login and consent pages (a cookie jar, the forms as a browser would
//! post them) for the tests that do not need the real browser.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process::free_port;
use super::tls::{Pki, pki};

pub fn server_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oauth-server")
}

/// What the OAuth server lacks, or None.
pub fn missing() -> Option<String> {
    let version = Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let major: Option<u32> = version
        .as_deref()
        .and_then(|v| v.trim_start_matches('v').split('.').next()?.parse().ok());
    if major.is_none_or(|m| m < 20) {
        return Some(format!(
            "Node.js 20 or later is needed for oidc-provider (found {})",
            version.unwrap_or_else(|| "none".into())
        ));
    }
    if !server_dir()
        .join("node_modules/oidc-provider/package.json")
        .exists()
    {
        return Some(
            "tests/oauth-server/node_modules is missing (npm ci --prefix tests/oauth-server)"
                .into(),
        );
    }
    None
}

/// One registered app.
#[derive(Clone, Debug)]
pub struct App {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    /// HTTP Basic at the token endpoint (else the secret is in the form).
    pub basic: bool,
    pub pkce: bool,
}

impl App {
    pub fn new(client_id: &str, secret: &str, redirect_uri: &str) -> App {
        App {
            client_id: client_id.into(),
            client_secret: secret.into(),
            redirect_uri: redirect_uri.into(),
            basic: false,
            pkce: false,
        }
    }
}

/// oidc-provider, running; killed when dropped (resumed first if paused).
pub struct OauthServer {
    child: Option<Child>,
    pub port: u16,
    /// `https://localhost:PORT`: the login URL (and OpenID Connect issuer).
    pub issuer: String,
    pub pki: Pki,
    pub log: PathBuf,
}

impl OauthServer {
    /// Starts the server for `apps`, with `users` (login name → e-mail). A port another process
    /// took in the meantime is tried again with another.
    pub fn start(dir: &Path, apps: &[App], users: &[(&str, &str)]) -> OauthServer {
        std::fs::create_dir_all(dir).expect("dir");
        let pki = pki(&dir.join("pki"));
        let log = dir.join("oauth-server.log");
        let mut failures = String::new();
        for _ in 0..3 {
            let port = free_port();
            match Self::spawn(dir, &pki, port, apps, users, &log) {
                Ok(child) => {
                    return OauthServer {
                        child: Some(child),
                        port,
                        issuer: format!("https://localhost:{port}"),
                        pki,
                        log,
                    };
                }
                Err(e) => failures.push_str(&e),
            }
        }
        panic!("the OAuth server did not start:\n{failures}");
    }

    fn spawn(
        dir: &Path,
        pki: &Pki,
        port: u16,
        apps: &[App],
        users: &[(&str, &str)],
        log: &Path,
    ) -> Result<Child, String> {
        let users: serde_json::Map<String, serde_json::Value> = users
            .iter()
            .map(|(l, e)| {
                (
                    l.to_string(),
                    serde_json::json!({"email": e, "name": format!("Agent {l}")}),
                )
            })
            .collect();
        let config = serde_json::json!({
            "port": port,
            "cert": pki.cert_file,
            "key": pki.key_file,
            "clients": apps.iter().map(|a| serde_json::json!({
                "client_id": a.client_id,
                "client_secret": a.client_secret,
                "redirect_uris": [a.redirect_uri],
                "token_endpoint_auth_method": if a.basic { "client_secret_basic" } else { "client_secret_post" },
                "pkce": a.pkce,
            })).collect::<Vec<_>>(),
            "users": users,
        });
        let config_file = dir.join("oauth-server.json");
        std::fs::write(&config_file, config.to_string()).expect("config");
        let mut child = Command::new("node")
            .arg(server_dir().join("server.mjs"))
            .arg("--config")
            .arg(&config_file)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("log"))
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("READY") {
                    let _ = tx.send(());
                }
            }
        });
        let began = Instant::now();
        while began.elapsed() < Duration::from_secs(60) {
            if rx.recv_timeout(Duration::from_millis(200)).is_ok() {
                return Ok(child);
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "port {port}: node ended ({status}): {}\n",
                    std::fs::read_to_string(log).unwrap_or_default()
                ));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(format!(
            "port {port}: no READY within 60 s: {}\n",
            std::fs::read_to_string(log).unwrap_or_default()
        ))
    }

    fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child's PID.
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    /// SIGSTOP: connections are accepted by the kernel, nothing answers.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Stops it for good: its port refuses connections.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's PID.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGCONT);
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OauthServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A cookie-keeping client that trusts the test CA and follows no redirect.
pub fn client(ca: &Path) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).expect("CA")).expect("CA pem");
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(ca)
        .build()
        .expect("client")
}

fn attr<'a>(html: &'a str, before: &str, name: &str) -> Option<&'a str> {
    let i = html.find(before)?;
    let rest = &html[i..];
    let j = rest.find(&format!("{name}=\""))? + name.len() + 2;
    rest[j..].split('"').next()
}

/// Walks the provider's pages, in a fresh cookie jar, from `authorize_url` as `login` (any password), granting consent
/// or cancelling, until the provider sends the browser to a URL starting with `callback`;
/// returns that URL (with `code` and `state`, or `error`).
pub async fn walk(
    ca: &Path,
    issuer: &str,
    authorize_url: &str,
    callback: &str,
    login: &str,
    consent: bool,
) -> String {
    let absolute = |u: &str| {
        if u.starts_with('/') {
            format!("{issuer}{u}")
        } else {
            u.to_string()
        }
    };
    // A fresh browser each time: no provider session of an earlier walk.
    let http = client(ca);
    let started = Instant::now();
    let mut next = http.get(authorize_url);
    for _ in 0..20 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the walk takes too long"
        );
        let res = next.send().await.expect("the provider answers");
        let status = res.status();
        if status.is_redirection() {
            let loc = res
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .expect("location")
                .to_string();
            if loc.starts_with(callback) {
                return loc;
            }
            next = http.get(absolute(&loc));
            continue;
        }
        let html = res.text().await.expect("page");
        assert!(
            status.is_success(),
            "the provider answered {status}: {html}"
        );
        if html.contains("name=\"prompt\" value=\"login\"") {
            let action = attr(&html, "<form", "action").expect("login form");
            next = http.post(absolute(&html_unescape(action))).form(&[
                ("prompt", "login"),
                ("login", login),
                ("password", "any-password"),
            ]);
        } else if html.contains("name=\"prompt\" value=\"consent\"") {
            if consent {
                let action = attr(&html, "<form", "action").expect("consent form");
                next = http
                    .post(absolute(&html_unescape(action)))
                    .form(&[("prompt", "consent")]);
            } else {
                let i = html.find("[ Cancel ]").expect("the cancel link");
                let href = html[..i]
                    .rsplit("href=\"")
                    .next()
                    .and_then(|h| h.split('"').next())
                    .expect("href");
                next = http.get(absolute(&html_unescape(href)));
            }
        } else {
            panic!("an unexpected page of the provider: {html}");
        }
    }
    panic!("the provider never sent the browser back");
}

fn html_unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&#x2F;", "/")
        .replace("&#47;", "/")
        .replace("&quot;", "\"")
}
