//! The Web Manager in a real browser (Debian's chromium, headless, driven by playwright-core from
//! `tests/browser/webmanager.mjs`) against `ssogate serve` and SimpleSAMLphp on loopback, set up
//! only through the pages:
//!
//! 1. the first start's one-time password must be changed at the first sign-in;
//! 2. an SP is added with Generate; its metadata copied (read back from the clipboard) and
//!    downloaded are byte-equal to `GET /saml/metadata` and `ssogate sp metadata`;
//! 3. SimpleSAMLphp starts trusting that metadata; its own metadata is uploaded with the
//!    windowsaccountname mapping (the preview shows its POST location); the tenant gets SSO, the
//!    IdP and SLO; agent1 is added;
//! 4. in a fresh context agent1 signs in through SimpleSAMLphp (`/auth/check` 200), the activity
//!    page shows agent1 and a chart count of 1, single logout signs agent1 out everywhere.
//!
//! Screenshots go to `$SSOGATE_ARTIFACTS` (default: the test's scratch directory). Without node
//! 20, chromium, `tests/browser/node_modules` or SimpleSAMLphp the test fails naming what is
//! missing, unless `SSOGATE_SKIP=browser` (`./run-tests` installs them).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::process::{Server, cli, free_port};

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// What the browser suite lacks, or None.
fn missing() -> Option<String> {
    let node = Command::new("node").arg("--version").output().ok();
    let version = node
        .as_ref()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let major: Option<u32> = version
        .as_deref()
        .and_then(|v| v.trim_start_matches('v').split('.').next()?.parse().ok());
    if major.is_none_or(|m| m < 20) {
        return Some(format!(
            "Node.js 20 or later is needed (found {})",
            version.unwrap_or_else(|| "none".into())
        ));
    }
    let chromium = std::env::var("SSOGATE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!("{chromium} is missing (apt-get install chromium)"));
    }
    if !browser_dir().join("node_modules/playwright-core").exists() {
        return Some(
            "tests/browser/node_modules is missing (npm ci --prefix tests/browser)".into(),
        );
    }
    common::real_idp::missing()
}

/// Runs one phase of the browser script; its PASS/FAIL lines and counts.
fn phase(name: &str, args: &[&str], artifacts: &Path) -> (usize, usize, String) {
    let out = Command::new("node")
        .arg(browser_dir().join("webmanager.mjs"))
        .arg(name)
        .args(args)
        .env("SSOGATE_ARTIFACTS", artifacts)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let last = stdout.lines().last().unwrap_or("");
    let counts: Vec<usize> = last
        .split([' ', ','])
        .filter_map(|w| w.parse().ok())
        .collect();
    let (passed, failed) = match counts.as_slice() {
        [p, f] => (*p, *f),
        _ => (0, 1),
    };
    (
        passed,
        failed,
        format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
    )
}

/// The one-time password `serve` printed on its first start.
fn one_time_password(server: &Server) -> String {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        if let Some(line) = server
            .output()
            .lines()
            .find(|l| l.contains("one-time password: "))
        {
            return line
                .rsplit("one-time password: ")
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("serve printed no one-time password:\n{}", server.output());
}

/// `GET url` (an http URL on loopback, by its own host name).
fn get(url: &str) -> String {
    let (host_port, path) = url
        .trim_start_matches("http://")
        .split_once('/')
        .expect("a path");
    let port: u16 = host_port
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let a = common::http::request_to(port, host_port, "GET", &format!("/{path}"), None, None)
        .expect("the server answers");
    assert_eq!(a.status, 200, "GET {url}: {}", a.body);
    a.body
}

/// The files the bad-input cases upload or paste.
fn bad_input_files(dir: &Path, ssp_entity_id: &str, ssp_xml: &str) {
    std::fs::create_dir_all(dir).expect("files dir");
    let w = |name: &str, text: &str| std::fs::write(dir.join(name), text).expect("write");
    let k = common::generate::idp();
    w("cert.pem", std::str::from_utf8(&k.cert_pem).expect("pem"));
    w("key.pem", std::str::from_utf8(&k.key_pem).expect("pem"));
    w(
        "other-key.pem",
        std::str::from_utf8(&common::generate::attacker().key_pem).expect("pem"),
    );
    let public = openssl::pkey::PKey::private_key_from_pem(&k.key_pem)
        .and_then(|p| p.public_key_to_pem())
        .expect("public key");
    w("public.pem", std::str::from_utf8(&public).expect("pem"));
    w("ssp-entity-id.txt", ssp_entity_id);
    w(
        "sp-only.xml",
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://sp.only.example"><md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://sp.only.example/acs" index="0"/></md:SPSSODescriptor></md:EntityDescriptor>"#,
    );
    w(
        "doctype.xml",
        &format!(
            r#"<!DOCTYPE md:EntityDescriptor [<!ENTITY x "y">]>{}"#,
            ssp_xml.split_once("?>").map_or(ssp_xml, |(_, r)| r)
        ),
    );
    // The IdP's own metadata under other entity IDs: one alone, two in an aggregate.
    let renamed = |id: &str| {
        let body = ssp_xml.split_once("?>").map_or(ssp_xml, |(_, r)| r);
        body.replace(ssp_entity_id, id)
    };
    w("single.xml", &renamed("https://single.idp.example/idp"));
    w(
        "aggregate.xml",
        &format!(
            r#"<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">{}{}</md:EntitiesDescriptor>"#,
            renamed("https://one.idp.example/idp"),
            renamed("https://two.idp.example/idp")
        ),
    );
    let mut big = renamed("https://big.idp.example/idp");
    let pad = format!("<!-- {} -->", "x".repeat(1100 * 1024));
    big = big.replacen(
        "<md:IDPSSODescriptor",
        &format!("{pad}<md:IDPSSODescriptor"),
        1,
    );
    w("oversized.xml", &big);
}

#[test]
fn an_administrator_sets_up_sign_on_in_the_web_manager() {
    if common::require("browser", missing()).is_none() {
        return;
    }
    let dir = common::scratch_dir("browser");
    let data = dir.join("data");
    let artifacts = std::env::var("SSOGATE_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| dir.join("artifacts"));
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    // The SP the administrator adds: the same server, by another host name.
    let sp_url = format!("http://localhost:{port}");
    let server = Server::start(&data, port, &dir.join("server.log"));
    let otp = one_time_password(&server);
    let new_password = "web-manager-password-1";
    let out = dir.to_string_lossy().into_owned();
    let mut passed = 0;
    let mut report = String::new();
    let mut run = |name: &str, args: &[&str]| {
        let (p, f, text) = phase(name, args, &artifacts);
        report.push_str(&text);
        passed += p;
        assert_eq!(
            f,
            0,
            "browser phase {name} failed:\n{text}\n--- server log (tail) ---\n{}",
            server.tail(40)
        );
    };

    run(
        "setup",
        &[
            "--base",
            &base,
            "--password",
            &otp,
            "--new-password",
            new_password,
            "--sp-url",
            &sp_url,
            "--out",
            &out,
        ],
    );
    // Copied, downloaded, served and printed by the CLI: the same bytes.
    let copied = std::fs::read(dir.join("copied.xml")).expect("copied");
    let downloaded = std::fs::read(dir.join("downloaded.xml")).expect("downloaded");
    let served = get(&format!("{sp_url}/saml/metadata"));
    let setup: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("setup.json")).expect("setup.json"))
            .expect("json");
    let sp_id = setup["sp_id"].as_str().expect("sp id").to_string();
    let printed = cli(&data, &["sp", "metadata", &sp_id]);
    assert_eq!(copied, downloaded, "copied and downloaded metadata differ");
    assert_eq!(
        downloaded,
        served.as_bytes(),
        "downloaded and served metadata differ"
    );
    assert_eq!(
        downloaded,
        printed.as_bytes(),
        "downloaded and printed metadata differ"
    );
    assert!(
        printed.contains("<ds:X509Certificate>") || printed.contains("X509Certificate"),
        "the generated key's certificate is published"
    );

    // SimpleSAMLphp, trusting the downloaded metadata (stopped when dropped).
    let idp_port = std::env::var("SSOGATE_TEST_BROWSER_IDP_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(18091);
    // On localhost like the SP: one site, as an IdP and a portal of one company's domain are (on
    // plain http the pending-request cookie is SameSite=Lax; https makes it None; Secure).
    let idp = common::real_idp::RealIdp::start_as(
        &dir,
        "localhost",
        idp_port,
        &[dir.join("downloaded.xml")],
    );
    let idp_xml = std::fs::read_to_string(&idp.metadata_file).expect("IdP metadata");
    // The POST location the preview must show.
    let post_sso = idp_xml
        .split("<md:SingleSignOnService")
        .skip(1)
        .find(|e| e.contains("HTTP-POST"))
        .and_then(|e| e.split("Location=\"").nth(1))
        .and_then(|l| l.split('"').next())
        .expect("the IdP offers an HTTP-POST SingleSignOnService")
        .to_string();
    run(
        "configure",
        &[
            "--base",
            &base,
            "--new-password",
            new_password,
            "--idp-metadata",
            &idp.metadata_file,
            "--idp-sso-post",
            &post_sso,
            "--out",
            &out,
        ],
    );
    run(
        "login",
        &[
            "--base",
            &base,
            "--new-password",
            new_password,
            "--sp-url",
            &sp_url,
            "--out",
            &out,
        ],
    );
    // Bad input, page by page: nothing of it changes anything.
    let files = dir.join("files");
    bad_input_files(&files, &idp.entity_id, &idp_xml);
    cli(
        &data,
        &[
            "tenant",
            "add",
            "globex",
            "--login-domain",
            "globex.example",
        ],
    );
    cli(
        &data,
        &[
            "user",
            "add",
            "agent2",
            "--circuit-user",
            "agent2@circuit.example",
        ],
    );
    cli(&data, &["api-client", "add", "ci"]);
    let lists = || {
        ["sp", "idp", "tenant", "user", "api-client"]
            .map(|what| cli(&data, &[what, "list"]))
            .join("\n")
    };
    let before = lists();
    run(
        "badinput",
        &[
            "--base",
            &base,
            "--new-password",
            new_password,
            "--files",
            &files.to_string_lossy(),
            "--out",
            &out,
        ],
    );
    assert_eq!(lists(), before, "refused input changed something");
    run(
        "stale",
        &[
            "--base",
            &base,
            "--new-password",
            new_password,
            "--out",
            &out,
        ],
    );
    println!("{report}");
    // The same real response through `ssogate trace`: refused at the replay step, "seen before",
    // and tracing it again finds the same (it records nothing).
    let response = dir.join("agent1-response.b64");
    // Both traces at one instant, so that they can be compared whole.
    let at = ssogate::clock::Clock::now(&ssogate::clock::SystemClock).to_rfc3339();
    let traced = |_: u8| {
        let out = Command::new(common::process::ssogate())
            .args(["trace", "--json", "--at", &at, "--response"])
            .arg(&response)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .expect("ssogate trace runs");
        assert_eq!(out.status.code(), Some(1), "a replayed response is refused");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("trace JSON");
        v
    };
    let first = traced(1);
    let failed = first["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["verdict"] == "failed")
        .expect("a failed step")
        .clone();
    assert_eq!(failed["step"], "replay", "{first}");
    assert_eq!(failed["code"], "replayed", "{first}");
    assert!(
        failed["values"]
            .to_string()
            .contains("[\"seen before\",\"yes\"]"),
        "{failed}"
    );
    assert_eq!(
        traced(2)["steps"],
        first["steps"],
        "tracing changed something"
    );
    // The server never logged a password, a key or a token.
    let log = server.output();
    for secret in [otp.as_str(), new_password, "PRIVATE KEY", "agent1pass"] {
        let logged = log
            .lines()
            .filter(|l| !l.contains("one-time password: "))
            .any(|l| l.contains(secret));
        assert!(!logged, "the server log carries {secret:?}");
    }
    drop(idp);
    common::record_cases("browser", passed);
}
