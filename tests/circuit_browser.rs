//! Circuit sign-on in a real browser (Debian's chromium, headless, driven by playwright-core from
//! `tests/browser/circuit.mjs`) against `ssogate serve` and the real OAuth server (oidc-provider,
//! `tests/oauth-server/`, https with the test's own CA, given to ssogate as `outbound_ca_file`),
//! set up with the CLI:
//!
//! 1. tenant `acme` with Circuit on: login page → Sign in with Circuit → the provider's login
//!    and consent → the portal as the mapped user; `/auth/check` 200 with `X-Auth-Method:
//!    circuit`; Sign out → 401;
//! 2. the same for tenant `globex`, which has single sign-on too: its login page is the choice;
//! 3. tenant `pkceco`, whose app requires PKCE, with PKCE on;
//! 4. a consent cancelled at the provider: "Circuit sign-in was cancelled or refused", 403.
//!
//! Without node 20, chromium, `tests/browser/node_modules` or `tests/oauth-server/node_modules`
//! the test fails naming what is missing, unless `SSOGATE_SKIP=browser` (or `oauth`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::oauth::{App, OauthServer};
use common::process::{Server, cli, free_port};

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn missing() -> Option<String> {
    let chromium = std::env::var("SSOGATE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!("{chromium} is missing (apt-get install chromium)"));
    }
    if !browser_dir().join("node_modules/playwright-core").exists() {
        return Some(
            "tests/browser/node_modules is missing (npm ci --prefix tests/browser)".into(),
        );
    }
    None
}

/// One run of the browser script: (passed, failed, output).
fn run(args: &[&str], artifacts: &Path) -> (usize, usize, String) {
    let out = Command::new("node")
        .arg(browser_dir().join("circuit.mjs"))
        .args(args)
        .env("SSOGATE_ARTIFACTS", artifacts)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let counts: Vec<usize> = stdout
        .lines()
        .last()
        .unwrap_or("")
        .split([' ', ','])
        .filter_map(|w| w.parse().ok())
        .collect();
    let (p, f) = match counts.as_slice() {
        [p, f] => (*p, *f),
        _ => (0, 1),
    };
    (
        p,
        f,
        format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn agents_sign_in_with_circuit_in_a_real_browser() {
    if common::require("browser", missing()).is_none()
        || common::require("oauth", common::oauth::missing()).is_none()
    {
        return;
    }
    let dir = common::scratch_dir("circuit-browser");
    let data = dir.join("data");
    let artifacts = std::env::var("SSOGATE_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| dir.join("artifacts"));
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let callback = format!("{base}/oauth/circuit/callback");
    let mut pkce_app = App::new("pkce-app", "pkce-client-secret-555", &callback);
    pkce_app.pkce = true;
    let server = OauthServer::start(
        &dir.join("oauth"),
        &[
            App::new("acme-app", "acme-client-secret-111", &callback),
            App::new("globex-app", "globex-client-secret-222", &callback),
            pkce_app,
        ],
        &[
            ("kate", "kate@acme.example"),
            ("gina", "gina@globex.example"),
            ("pete", "pete@pkce.example"),
        ],
    );
    let config = dir.join("ssogate.toml");
    std::fs::write(
        &config,
        format!(
            "outbound_ca_file = {:?}\noutbound_allow_private = true\n",
            server.pki.ca_file.to_string_lossy()
        ),
    )
    .unwrap();
    let ssogate = Server::start_with(&data, port, &dir.join("server.log"), Some(&config));
    // An IdP for the SSO tenant (never reached: the test only sees the choice and its link).
    cli(
        &data,
        &[
            "idp",
            "add",
            "corp",
            "--entity-id",
            "https://idp.corp.example",
            "--sso-url",
            "https://idp.corp.example/sso",
            "--username-claim",
            "NameID",
            "--fingerprint",
            &format!("sha256:{}", "ab".repeat(32)),
        ],
    );
    for (tenant, user, circuit_user, app, secret, extra) in [
        (
            "acme",
            "kate",
            "kate@acme.example",
            "acme-app",
            "acme-client-secret-111",
            vec![],
        ),
        (
            "globex",
            "gina",
            "gina@globex.example",
            "globex-app",
            "globex-client-secret-222",
            vec![],
        ),
        (
            "pkceco",
            "pete",
            "pete@pkce.example",
            "pkce-app",
            "pkce-client-secret-555",
            vec!["--pkce", "on"],
        ),
    ] {
        let mut add = vec!["tenant", "add", tenant, "--login-domain"];
        let domain = format!("{tenant}.example");
        add.push(&domain);
        if tenant == "globex" {
            add.extend(["--sso", "on", "--idp", "corp"]);
        }
        cli(&data, &add);
        cli(
            &data,
            &[
                "user",
                "add",
                user,
                "--tenant",
                tenant,
                "--circuit-user",
                circuit_user,
            ],
        );
        let secret_file = dir.join(format!("{tenant}.secret"));
        std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
        let mut set = vec![
            "circuit",
            "set",
            tenant,
            "--enabled",
            "on",
            "--client-id",
            app,
            "--client-secret-file",
            secret_file.to_str().unwrap(),
            "--portal-url",
            &base,
            "--login-url",
            &server.issuer,
        ];
        set.extend(extra);
        let out = cli(&data, &set);
        assert!(
            out.contains("client secret: *****") && !out.contains(secret),
            "{out}"
        );
    }
    let mut passed = 0;
    let mut report = String::new();
    for (tenant, login, user, more) in [
        ("acme", "kate", "kate", vec![]),
        ("globex", "gina", "gina", vec!["--choice", "yes"]),
        ("pkceco", "pete", "pete", vec![]),
        ("acme", "kate", "kate", vec!["--deny", "yes"]),
    ] {
        let mut args = vec![
            "login",
            "--base",
            &base,
            "--provider",
            &server.issuer,
            "--tenant",
            tenant,
            "--login",
            login,
            "--user",
            user,
            "--out",
        ];
        let out = dir.to_string_lossy().into_owned();
        args.push(&out);
        args.extend(more);
        let (p, f, text) = run(&args, &artifacts);
        report.push_str(&text);
        assert_eq!(
            f,
            0,
            "browser run for {tenant} failed:\n{text}\n--- server log ---\n{}",
            ssogate.tail(30)
        );
        passed += p;
    }
    println!("{report}");
    // The client secrets reached neither the log nor the pages' text.
    let log = ssogate.output();
    for s in [
        "acme-client-secret-111",
        "globex-client-secret-222",
        "pkce-client-secret-555",
    ] {
        assert!(!log.contains(s), "the server log carries a client secret");
    }
    common::record_cases("circuit-browser", passed);
}
