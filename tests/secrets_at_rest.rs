//! Secrets at rest (the Circuit issue): the Circuit client secret and the SP private keys are
//! AES-256-GCM under the secrets key in the SQLite file and its WAL, never in clear; a database of
//! schema 4 (keys in clear) is encrypted by the first start of this version, and its SP still
//! signs; another key stops the CLI, naming what it cannot read.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::process::{Server, cli, free_port, ssogate};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Verifier;

const CLIENT_SECRET: &str = "circuit-client-secret-XYZZY-0042";

/// A line of a PEM's base64 body: found in any copy of it kept in clear.
fn marker(pem: &str) -> String {
    pem.lines().nth(2).expect("a PEM body line").to_string()
}

/// Whether `needle` occurs in the database file or its WAL.
fn in_database(data: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for f in ["ssogate.db", "ssogate.db-wal"] {
        let Ok(bytes) = std::fs::read(data.join(f)) else {
            continue;
        };
        if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            found.push(f.to_string());
        }
    }
    found
}

fn keypair(dir: &Path) -> (String, String) {
    let k = common::generate::idp();
    let cert = String::from_utf8(k.cert_pem.clone()).unwrap();
    let key = String::from_utf8(k.key_pem.clone()).unwrap();
    std::fs::write(dir.join("sp.crt"), &cert).unwrap();
    std::fs::write(dir.join("sp.key"), &key).unwrap();
    (cert, key)
}

fn run(data: &Path, args: &[&str], key_file: Option<&Path>) -> std::process::Output {
    let mut c = Command::new(ssogate());
    c.args(args)
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::null());
    if let Some(k) = key_file {
        c.env("SSOGATE_SECRETS_KEY_FILE", k);
    }
    c.output().expect("ssogate runs")
}

#[test]
fn the_client_secret_and_sp_keys_are_never_in_clear_on_disk_or_in_answers() {
    let dir = common::scratch_dir("secrets-at-rest");
    let data = dir.join("data");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let server = Server::start(&data, port, &dir.join("server.log"));
    std::fs::create_dir_all(&dir).unwrap();
    let (_, key) = keypair(&dir);
    cli(
        &data,
        &[
            "sp",
            "set",
            "1",
            "--cert",
            dir.join("sp.crt").to_str().unwrap(),
            "--key",
            dir.join("sp.key").to_str().unwrap(),
        ],
    );
    std::fs::write(dir.join("secret"), format!("{CLIENT_SECRET}\n")).unwrap();
    let out = cli(
        &data,
        &[
            "circuit",
            "set",
            "default",
            "--enabled",
            "on",
            "--client-id",
            "app",
            "--client-secret-file",
            dir.join("secret").to_str().unwrap(),
            "--portal-url",
            &base,
            "--login-url",
            "https://circuit.example.com",
        ],
    );
    assert!(out.contains("client secret: *****"), "{out}");
    let shown = cli(&data, &["circuit", "show", "default"]);
    let token = cli(&data, &["api-client", "add", "robot"]);
    let token = token
        .split_whitespace()
        .find(|w| w.len() >= 64)
        .expect("the token")
        .to_string();
    // The API's answers (the settings, the SPs, the audit log) carry neither.
    let mut answers = String::new();
    for path in [
        "/api/v1/tenants/default/circuit",
        "/api/v1/sps",
        "/api/v1/audit",
    ] {
        let auth = format!("Bearer {token}");
        let a = common::http::request_with(
            port,
            &format!("127.0.0.1:{port}"),
            "GET",
            path,
            None,
            None,
            &[("Authorization", &auth)],
        )
        .expect("the API answers");
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        answers.push_str(&a.body);
    }
    assert!(answers.contains("\"client_secret_set\":true"), "{answers}");
    drop(server);
    let key_line = marker(&key);
    for (what, text) in [
        ("circuit show", shown.as_str()),
        ("API answers", answers.as_str()),
        ("circuit set", out.as_str()),
    ] {
        assert!(
            !text.contains(CLIENT_SECRET),
            "{what} shows the client secret"
        );
        assert!(!text.contains(&key_line), "{what} shows the SP key");
    }
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap();
    assert!(!log.contains(CLIENT_SECRET) && !log.contains(&key_line));
    assert_eq!(in_database(&data, CLIENT_SECRET), Vec::<String>::new());
    assert_eq!(in_database(&data, &key_line), Vec::<String>::new());
    assert!(
        !in_database(&data, "v1.").is_empty(),
        "the encrypted values are there"
    );

    // Another key: every command that opens the store stops, naming what it cannot read.
    let other = dir.join("other.key");
    std::fs::write(&other, format!("{}\n", "cd".repeat(32))).unwrap();
    let o = run(
        &data,
        &["circuit", "set", "default", "--client-id", "x"],
        Some(&other),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("secrets were encrypted with key"), "{err}");
    let o = run(&data, &["sp", "list"], Some(&other));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("private key of service provider") && err.contains("cannot be read"),
        "{err}"
    );
}

/// A data directory as version 4 of the schema left it: the SP's key pair in clear.
fn schema_4_database(data: &Path, host_url: &str, cert: &str, key: &str) {
    std::fs::create_dir_all(data).unwrap();
    let c = rusqlite::Connection::open(data.join("ssogate.db")).unwrap();
    c.execute_batch("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY);")
        .unwrap();
    for (v, sql) in [
        (1, include_str!("../migrations/sqlite/0001_initial.sql")),
        (
            2,
            include_str!("../migrations/sqlite/0002_hostile_clients.sql"),
        ),
        (3, include_str!("../migrations/sqlite/0003_web_manager.sql")),
        (
            4,
            include_str!("../migrations/sqlite/0004_totp_and_refresh.sql"),
        ),
    ] {
        c.execute_batch(sql).unwrap();
        c.execute("INSERT INTO schema_migrations (version) VALUES (?)", [v])
            .unwrap();
    }
    c.execute(
        "INSERT INTO service_providers (entity_id, host_url, certificate_pem, private_key_pem) VALUES (?, ?, ?, ?)",
        [host_url, host_url, cert, key],
    )
    .unwrap();
}

#[test]
fn an_upgrade_encrypts_the_sp_keys_and_the_sp_still_signs() {
    let dir = common::scratch_dir("secrets-upgrade");
    let data = dir.join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let (cert, key) = keypair(&dir);
    schema_4_database(&data, &base, &cert, &key);
    let key_line = marker(&key);
    assert_eq!(
        in_database(&data, &key_line),
        vec!["ssogate.db".to_string()]
    );

    // A listing command only reads: it works on the old database and changes nothing.
    let listed = cli(&data, &["sp", "list"]);
    assert!(listed.contains(&base), "{listed}");
    assert_eq!(
        in_database(&data, &key_line),
        vec!["ssogate.db".to_string()]
    );

    let server = Server::start(&data, port, &dir.join("server.log"));
    assert!(
        server
            .output()
            .contains("encrypted the SP private keys stored in clear"),
        "{}",
        server.output()
    );
    assert_eq!(
        in_database(&data, &key_line),
        Vec::<String>::new(),
        "a copy in clear is left"
    );
    // Single sign-on for the default tenant: the AuthnRequest is signed with the decrypted key.
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
    cli(
        &data,
        &["tenant", "set", "default", "--sso", "on", "--idp", "corp"],
    );
    let a = common::http::request_to(
        port,
        &format!("127.0.0.1:{port}"),
        "GET",
        "/login",
        None,
        None,
    )
    .expect("the login page answers");
    assert_eq!(a.status, 303, "{}", a.body);
    let location = a
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("location"))
        .map(|(_, v)| v.clone())
        .expect("location");
    let query = location.split_once('?').expect("a query").1;
    let (signed, signature) = query.split_once("&Signature=").expect("signed");
    assert!(signed.contains("SigAlg="), "{query}");
    let sig = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        percent_encoding::percent_decode_str(signature)
            .decode_utf8()
            .unwrap()
            .as_ref(),
    )
    .unwrap();
    let public = openssl::x509::X509::from_pem(cert.as_bytes())
        .unwrap()
        .public_key()
        .unwrap();
    let mut v = Verifier::new(MessageDigest::sha256(), &public).unwrap();
    v.update(signed.as_bytes()).unwrap();
    assert!(v.verify(&sig).unwrap(), "the SP's key signs as before");
    let _ = PKey::private_key_from_pem(key.as_bytes()).unwrap();
    drop(server);
    assert_eq!(in_database(&data, &key_line), Vec::<String>::new());
}
