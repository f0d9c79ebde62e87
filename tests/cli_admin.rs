//! The administration CLI on a real SQLite file, one test per command family: bad input is
//! refused with a precise message and exit status 1 (a usage error, 2), and nothing changes then;
//! good input shows up in the listings. Also: the help (the command's options first, the global
//! ones last, every value list, the exit statuses), environment variables that do not parse,
//! listing commands that change nothing, and a backup taken while the service runs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::generate::{attacker, idp, sp};
use common::process::cli;

fn ssogate() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ssogate"))
}

fn run(data: &Path, args: &[&str]) -> Output {
    Command::new(ssogate())
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::null())
        .output()
        .expect("ssogate runs")
}

fn run_stdin(data: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write as _;
    let mut c = Command::new(ssogate())
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    c.wait_with_output().expect("wait")
}

fn ok(data: &Path, args: &[&str]) -> String {
    let o = run(data, args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Refused with exit 1 and a message containing `says`.
fn refused(o: &Output, says: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected a refusal saying {says:?}; got {:?}: {err}",
        o.status.code()
    );
    assert!(err.contains(says), "the message should say {says:?}: {err}");
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write");
    p.display().to_string()
}

/// A data directory with the IdP `adfs`.
fn with_adfs(name: &str) -> (PathBuf, PathBuf) {
    let dir = common::scratch_dir(name);
    let data = dir.join("data");
    let idp_cert = write(&dir, "idp.crt", &idp().cert_pem);
    ok(
        &data,
        &[
            "idp",
            "add",
            "adfs",
            "--entity-id",
            "http://adfs.example.com/adfs/services/trust",
            "--sso-url",
            "https://adfs.example.com/adfs/ls/",
            "--username-claim",
            "upn",
            "--cert",
            &idp_cert,
        ],
    );
    (dir, data)
}

/// A data directory with the IdP `adfs` and the tenant `acme` (login domain acme.com) using it.
fn with_acme(name: &str) -> (PathBuf, PathBuf) {
    let (dir, data) = with_adfs(name);
    ok(
        &data,
        &[
            "tenant",
            "add",
            "acme",
            "--login-domain",
            "acme.com",
            "--sso",
            "on",
            "--idp",
            "adfs",
        ],
    );
    (dir, data)
}

/// A usage error: exit 2, and clap's message naming the option.
fn usage(o: &Output, says: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "expected a usage error: {err}");
    assert!(err.contains(says), "the message should say {says:?}: {err}");
}

#[test]
fn service_providers() {
    let dir = common::scratch_dir("cli_admin_sp");
    let data = dir.join("data");
    // Service providers.
    refused(
        &run(&data, &["sp", "add", "--host-url", "ftp://cc.example.com"]),
        "must start with http:// or https://",
    );
    refused(
        &run(
            &data,
            &["sp", "add", "--host-url", "https://cc.example.com/?x=1"],
        ),
        "must not contain a query",
    );
    refused(
        &run(
            &data,
            &[
                "sp",
                "add",
                "--host-url",
                "https://cc.example.com",
                "--entity-id",
                "not a uri",
            ],
        ),
        "entity ID",
    );
    let cert = write(&dir, "sp.crt", &sp().cert_pem);
    let wrong_key = write(&dir, "other.key", &attacker().key_pem);
    refused(
        &run(
            &data,
            &[
                "sp",
                "add",
                "--host-url",
                "https://cc.example.com",
                "--cert",
                &cert,
            ],
        ),
        "needs its private key",
    );
    refused(
        &run(
            &data,
            &[
                "sp",
                "add",
                "--host-url",
                "https://cc.example.com",
                "--cert",
                &cert,
                "--key",
                &wrong_key,
            ],
        ),
        "does not belong to the SP certificate",
    );
    assert_eq!(ok(&data, &["sp", "list"]), "", "nothing was added");
    let key = write(&dir, "sp.key", &sp().key_pem);
    ok(
        &data,
        &[
            "sp",
            "add",
            "--host-url",
            "https://cc.example.com/agentportal/",
            "--cert",
            &cert,
            "--key",
            &key,
        ],
    );
    refused(
        &run(
            &data,
            &[
                "sp",
                "add",
                "--host-url",
                "https://cc.example.com/agentportal",
            ],
        ),
        "already has host URL",
    );
    let list = ok(&data, &["sp", "list"]);
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(
        list.contains("https://cc.example.com/agentportal\t"),
        "trailing slash trimmed: {list}"
    );
    let md = ok(&data, &["sp", "metadata"]);
    assert!(
        md.contains("AuthnRequestsSigned=\"true\"")
            && md.contains("https://cc.example.com/agentportal/saml/acs"),
        "{md}"
    );
    assert!(!md.contains("PRIVATE KEY"), "a key in metadata");
}

#[test]
fn identity_providers() {
    let dir = common::scratch_dir("cli_admin_idp");
    let data = dir.join("data");
    // Identity providers.
    let idp_cert = write(&dir, "idp.crt", &idp().cert_pem);
    let base = [
        "idp",
        "add",
        "adfs",
        "--entity-id",
        "http://adfs.example.com/adfs/services/trust",
        "--sso-url",
        "https://adfs.example.com/adfs/ls/",
    ];
    usage(
        &run(&data, &[&base[..], &["--cert", &idp_cert]].concat()),
        "--username-claim <NAME>",
    );
    usage(
        &run(&data, &[&base[..], &["--username-claim", "upn"]].concat()),
        "--cert <FILE>",
    );
    refused(
        &run(
            &data,
            &[
                &base[..],
                &["--username-claim", "upn", "--fingerprint", "sha256:abcd"],
            ]
            .concat(),
        ),
        "fingerprint",
    );
    refused(
        &run(
            &data,
            &[
                &base[..],
                &["--username-claim", "upn", "--fingerprint", "md5:00"],
            ]
            .concat(),
        ),
        "ALG:HEX",
    );
    let garbage = write(
        &dir,
        "garbage.pem",
        b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    );
    refused(
        &run(
            &data,
            &[&base[..], &["--username-claim", "upn", "--cert", &garbage]].concat(),
        ),
        "certificate 1",
    );
    refused(
        &run(
            &data,
            &[
                "idp",
                "add",
                "bad name!",
                "--entity-id",
                "urn:x",
                "--sso-url",
                "https://x/",
                "--username-claim",
                "upn",
                "--cert",
                &idp_cert,
            ],
        ),
        "IdP name",
    );
    usage(
        &run(
            &data,
            &[
                &base[..],
                &[
                    "--username-claim",
                    "upn",
                    "--cert",
                    &idp_cert,
                    "--sso-binding",
                    "soap",
                ],
            ]
            .concat(),
        ),
        "[possible values: redirect, post]",
    );
    let bad_md = write(&dir, "bad-metadata.xml", b"<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"urn:x\"/>");
    refused(
        &run(
            &data,
            &[
                "idp",
                "import",
                "x",
                "--metadata",
                &bad_md,
                "--username-claim",
                "upn",
            ],
        ),
        "IdP metadata",
    );
    let doctype = write(&dir, "doctype.xml", b"<!DOCTYPE x [<!ENTITY a \"b\">]><x/>");
    refused(
        &run(
            &data,
            &[
                "idp",
                "import",
                "x",
                "--metadata",
                &doctype,
                "--username-claim",
                "upn",
            ],
        ),
        "IdP metadata",
    );
    assert_eq!(ok(&data, &["idp", "list"]), "", "nothing was added");
    ok(
        &data,
        &[&base[..], &["--username-claim", "upn", "--cert", &idp_cert]].concat(),
    );
    refused(
        &run(
            &data,
            &[&base[..], &["--username-claim", "upn", "--cert", &idp_cert]].concat(),
        ),
        "already exists",
    );
    // The fingerprint as openssl computes it (colons, upper case): ours must take it as it is.
    let out = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-in",
            &idp_cert,
        ])
        .output()
        .expect("openssl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text.trim().split_once('=').expect("sha256 Fingerprint=…").1;
    let fp = ok(
        &data,
        &[
            "idp",
            "add",
            "okta",
            "--entity-id",
            "http://www.okta.com/exk1",
            "--sso-url",
            "https://okta.example/sso",
            "--username-claim",
            "NameID",
            "--fingerprint",
            &format!("SHA256:{hex}"),
        ],
    );
    let expected = hex.replace(':', "").to_ascii_lowercase();
    assert!(
        fp.contains(&format!("trust=fingerprint sha256:{expected}")),
        "{fp}"
    );
    // A SHA-1 fingerprint needs the legacy switch, said as on|off like every switch.
    let sha1 = format!("sha1:{}", "ab".repeat(20));
    let mut legacy = vec![
        "idp",
        "add",
        "legacy",
        "--entity-id",
        "urn:legacy",
        "--sso-url",
        "https://legacy.example/sso",
        "--username-claim",
        "upn",
        "--fingerprint",
        &sha1,
    ];
    refused(&run(&data, &legacy), "SHA-1 fingerprint");
    legacy.extend(["--allow-sha1", "on"]);
    assert!(ok(&data, &legacy).contains("sha1=allowed"));
}

#[test]
fn tenants() {
    let (_dir, data) = with_adfs("cli_admin_tenant");
    // Tenants.
    refused(
        &run(&data, &["tenant", "set", "nope", "--sso", "on"]),
        "no tenant named",
    );
    refused(
        &run(&data, &["tenant", "add", "acme", "--sso", "on"]),
        "needs an identity provider",
    );
    usage(
        &run(&data, &["tenant", "add", "acme", "--sso", "maybe"]),
        "[possible values: on, off]",
    );
    refused(
        &run(
            &data,
            &["tenant", "add", "acme", "--login-domain", "bad domain"],
        ),
        "login domain",
    );
    refused(
        &run(&data, &["tenant", "add", "acme", "--idp", "nosuch"]),
        "no identity provider",
    );
    refused(
        &run(&data, &["tenant", "set", "default", "--slo", "on"]),
        "single logout needs SSO on",
    );
    ok(
        &data,
        &[
            "tenant",
            "add",
            "acme",
            "--login-domain",
            "acme.com",
            "--sso",
            "on",
            "--idp",
            "adfs",
        ],
    );
    refused(
        &run(
            &data,
            &["tenant", "add", "beta", "--login-domain", "ACME.com"],
        ),
        "already belongs to tenant \"acme\"",
    );
    refused(
        &run(&data, &["idp", "rm", "adfs"]),
        "used by tenant(s) acme",
    );
    let tenants = ok(&data, &["tenant", "list"]);
    assert!(
        tenants.contains("acme\tdomains=acme.com\tsso=on\tidp=adfs") && !tenants.contains("beta"),
        "{tenants}"
    );
    assert!(
        tenants.contains("default\tdomains=-\tsso=off"),
        "the failed set changed nothing: {tenants}"
    );
}

#[test]
fn users() {
    let (_dir, data) = with_acme("cli_admin_user");
    // Users.
    refused(
        &run(&data, &["user", "add", "agent1", "--tenant", "nope"]),
        "no tenant named",
    );
    refused(&run(&data, &["user", "add", " agent1"]), "white space");
    usage(
        &run(&data, &["user", "add", "agent1", "--role", "boss"]),
        "[possible values: agent, tenant-manager, central-admin]",
    );
    refused(
        &run_stdin(
            &data,
            &["user", "add", "agent1", "--password-stdin"],
            "short\n",
        ),
        "fewer than 8 characters",
    );
    ok(
        &data,
        &[
            "user",
            "add",
            "agent1",
            "--tenant",
            "acme",
            "--display-name",
            "Agent One",
            "--circuit-user",
            "agent1@acme.com",
        ],
    );
    refused(
        &run(&data, &["user", "add", "AGENT1", "--tenant", "acme"]),
        "already has user \"agent1\"",
    );
    refused(
        &run(&data, &["user", "add", "ACME\\agent1", "--tenant", "acme"]),
        "already has user",
    );
    refused(
        &run(
            &data,
            &[
                "user",
                "add",
                "agent2",
                "--tenant",
                "acme",
                "--circuit-user",
                "AGENT1@acme.com",
            ],
        ),
        "Circuit user",
    );
    let o = run_stdin(
        &data,
        &[
            "user",
            "set",
            "agent1",
            "--tenant",
            "acme",
            "--password-stdin",
        ],
        "a good password\n",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let users = ok(&data, &["user", "list", "--tenant", "acme"]);
    assert_eq!(users.lines().count(), 1, "{users}");
    assert!(
        users.contains("agent1\tAgent One\tcircuit=agent1@acme.com\tpassword=set\troles=agent"),
        "{users}"
    );
    assert!(
        !users.contains("argon2"),
        "a password hash was printed: {users}"
    );
    refused(
        &run(&data, &["user", "rm", "ghost", "--tenant", "acme"]),
        "has no user",
    );
}

#[test]
fn the_last_central_administrator_stays() {
    let (_dir, data) = with_acme("cli_admin_central");
    ok(&data, &["user", "add", "agent1", "--tenant", "acme"]);
    // The first central administrator (from `serve`, or added by hand) cannot be removed last.
    ok(&data, &["user", "add", "root", "--central-admin"]);
    refused(
        &run(&data, &["user", "rm", "root"]),
        "last central administrator",
    );
    refused(
        &run(&data, &["user", "set", "root", "--role", "agent"]),
        "last central administrator",
    );
    ok(&data, &["user", "rm", "agent1", "--tenant", "acme"]);
    assert_eq!(ok(&data, &["user", "list", "--tenant", "acme"]), "");
}

#[test]
fn a_username_rule_that_merges_two_users_is_refused_whole() {
    let dir = common::scratch_dir("cli_admin_rule");
    let data = dir.join("data");
    // A changed username rule that would merge two users is refused whole.
    ok(
        &data,
        &[
            "tenant",
            "set",
            "default",
            "--username-rule",
            "keep",
            "--case-sensitive",
            "on",
        ],
    );
    ok(&data, &["user", "add", "Bob"]);
    ok(&data, &["user", "add", "bob"]);
    refused(
        &run(
            &data,
            &["tenant", "set", "default", "--case-sensitive", "off"],
        ),
        "would have the same name",
    );
    assert!(ok(&data, &["tenant", "list"]).contains("default\tdomains=-\tsso=off\tidp=-\tslo=off\tidp-initiated=off\tusername-rule=keep,case-sensitive"));
}

#[test]
fn usage_errors_and_unreadable_files_are_exit_2() {
    let dir = common::scratch_dir("cli_admin_usage");
    let data = dir.join("data");
    // Usage errors are exit 2, unreadable files too.
    assert_eq!(run(&data, &["sp", "add"]).status.code(), Some(2));
    assert_eq!(
        run(
            &data,
            &[
                "idp",
                "import",
                "x",
                "--metadata",
                "/nonexistent/file.xml",
                "--username-claim",
                "upn"
            ]
        )
        .status
        .code(),
        Some(2)
    );
}

#[test]
fn help_lists_the_commands_options_first_the_global_ones_last_values_and_exit_statuses() {
    for cmd in [
        &["idp", "add"][..],
        &["tenant", "set"][..],
        &["user", "add"][..],
    ] {
        let o = Command::new(ssogate())
            .args(cmd)
            .arg("--help")
            .output()
            .expect("runs");
        assert!(o.status.success());
        let help = String::from_utf8_lossy(&o.stdout);
        let at = |s: &str| {
            help.find(s)
                .unwrap_or_else(|| panic!("{cmd:?} --help lacks {s:?}:\n{help}"))
        };
        // The command's own options, then the global ones under their heading, then the exit statuses.
        assert!(at("Options:") < at("Global options:"), "{help}");
        assert!(at("Global options:") < at("--data-dir"), "{help}");
        assert!(at("--config") > at("Global options:"), "{help}");
        assert!(at("Global options:") < at("Exit status:"), "{help}");
        for code in ["  0  ", "  1  ", "  2  ", "  3  "] {
            at(code);
        }
        // Every positional argument is described.
        let args = &help[at("Arguments:")..at("Options:")];
        assert!(
            args.lines()
                .skip(1)
                .filter(|l| !l.trim().is_empty())
                .all(|l| l.trim().split_once("  ").is_some()),
            "an undescribed argument:\n{args}"
        );
    }
    let help = |cmd: &[&str]| {
        let o = Command::new(ssogate())
            .args(cmd)
            .arg("--help")
            .output()
            .expect("runs");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let idp = help(&["idp", "add"]);
    for s in [
        "[possible values: redirect, post]",
        "--allow-sha1 <on|off>",
        "[possible values: on, off]",
        "--username-claim <NAME> --entity-id <URI> --sso-url <URL>",
    ] {
        assert!(idp.contains(s), "idp add --help lacks {s:?}:\n{idp}");
    }
    let tenant = help(&["tenant", "set"]);
    assert!(
        tenant.contains("[possible values: strip-domain, keep]"),
        "{tenant}"
    );
    let user = help(&["user", "add"]);
    assert!(
        user.contains("[possible values: agent, tenant-manager, central-admin]"),
        "{user}"
    );
    // The developer's benchmark is out of the administrator's way.
    let saml = help(&["saml"]);
    assert!(saml.contains("verify") && !saml.contains("bench"), "{saml}");
}

#[test]
fn an_environment_variable_that_does_not_parse_is_named() {
    let dir = common::scratch_dir("cli_admin_env");
    let o = Command::new(ssogate())
        .args(["failures", "--data-dir"])
        .arg(dir.join("data"))
        .env("SSOGATE_CLOCK_SKEW_SECS", "abc")
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("SSOGATE_CLOCK_SKEW_SECS=\"abc\""), "{err}");
}

#[test]
fn listing_commands_change_nothing() {
    let dir = common::scratch_dir("cli_admin_readonly");
    let data = dir.join("data");
    // Nothing there yet: a listing creates no database.
    for cmd in [
        &["failures"][..],
        &["sp", "list"][..],
        &["idp", "list"][..],
        &["tenant", "list"][..],
        &["user", "list"][..],
    ] {
        let o = run(&data, cmd);
        assert_eq!(o.status.code(), Some(3), "{cmd:?}");
        assert!(!data.exists(), "{cmd:?} created {}", data.display());
    }
    ok(
        &data,
        &["sp", "add", "--host-url", "https://cc.example.com"],
    );
    let db = data.join("ssogate.db");
    let snapshot = |p: &Path| {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(p)
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .filter(|f| !f.to_string_lossy().ends_with("-shm"))
            .map(|f| (f.display().to_string(), std::fs::read(&f).expect("read")))
            .collect();
        files.sort();
        files
    };
    let before = snapshot(&data);
    for cmd in [
        &["failures"][..],
        &["sp", "list"][..],
        &["sp", "metadata"][..],
        &["idp", "list"][..],
        &["tenant", "list"][..],
        &["user", "list"][..],
    ] {
        ok(&data, cmd);
    }
    assert!(db.exists());
    assert!(
        before == snapshot(&data),
        "a listing changed the store's files"
    );
}

#[test]
fn a_backup_taken_while_the_service_runs_restores_everything() {
    let dir = common::scratch_dir("cli_admin_backup");
    let data = dir.join("data");
    ok(&data, &["sp", "add", "--host-url", "http://127.0.0.1:1"]);
    ok(
        &data,
        &["user", "add", "agent1", "--display-name", "Agent One"],
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let mut server = Command::new(ssogate())
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let t = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed().as_secs() < 20, "the server did not start");
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    // Changes go on while the copy is taken.
    ok(&data, &["user", "add", "agent2"]);
    let copy = dir.join("backup.db");
    let out = ok(&data, &["backup", copy.to_str().expect("utf-8")]);
    assert!(out.contains("backed up"), "{out}");
    let _ = server.kill();
    let _ = server.wait();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&copy).expect("copy").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the backup holds keys: owner-only");
    }
    // A second backup to the same file is refused (nothing overwritten).
    refused(
        &run(&data, &["backup", copy.to_str().expect("utf-8")]),
        "already exists",
    );
    // Restored into a fresh data directory, it has everything.
    let restored = dir.join("restored");
    std::fs::create_dir_all(&restored).expect("dir");
    std::fs::copy(&copy, restored.join("ssogate.db")).expect("restore");
    let users = ok(&restored, &["user", "list"]);
    assert!(
        users.contains("agent1\tAgent One") && users.contains("agent2"),
        "{users}"
    );
    assert!(ok(&restored, &["sp", "list"]).contains("http://127.0.0.1:1"));
}

#[test]
fn the_secrets_key_is_made_once_and_another_one_stops_the_start() {
    let dir = common::scratch_dir("cli_admin_secrets");
    let data = dir.join("data");
    let port = common::process::free_port();
    {
        let server = common::process::Server::start(&data, port, &dir.join("first.log"));
        drop(server);
    }
    let key = data.join("secrets.key");
    let text = std::fs::read_to_string(&key).expect("serve made the secrets key");
    assert_eq!(text.trim().len(), 64, "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is its owner's only");
    }
    let serve_with_key = |key: &Path| {
        Command::new(ssogate())
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(&data)
            .env("SSOGATE_SECRETS_KEY_FILE", key)
            .stdin(Stdio::null())
            .output()
            .expect("ssogate runs")
    };
    // Another key for the same database: serve stops at once, naming both key IDs.
    let other = dir.join("other.key");
    std::fs::write(&other, format!("{}\n", "ab".repeat(32))).unwrap();
    let o = serve_with_key(&other);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("secrets were encrypted with key") && err.contains("secrets_key_file"),
        "{err}"
    );
    assert!(
        !err.contains(&"ab".repeat(32)),
        "the key itself is never printed"
    );
    // A key file that is not one: named.
    std::fs::write(&other, "not a key").unwrap();
    let o = serve_with_key(&other);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("64 hexadecimal digits"));
    // Resetting a second factor nobody set up: refused, saying so.
    refused(
        &run(&data, &["user", "reset-totp", "admin"]),
        "has no two-step verification",
    );
}

#[test]
fn a_circuit_user_is_refused_twice_in_a_tenant_naming_its_holder() {
    let dir = common::scratch_dir("cli_admin_circuit_user");
    let data = dir.join("data");
    for t in ["acme", "globex"] {
        cli(
            &data,
            &[
                "tenant",
                "add",
                t,
                "--login-domain",
                &format!("{t}.example"),
            ],
        );
    }
    cli(
        &data,
        &[
            "user",
            "add",
            "kate",
            "--tenant",
            "acme",
            "--circuit-user",
            "kate@circuit.example",
        ],
    );
    let before = cli(&data, &["user", "list", "--tenant", "acme"]);
    refused(
        &run(
            &data,
            &[
                "user",
                "add",
                "kim",
                "--tenant",
                "acme",
                "--circuit-user",
                "KATE@Circuit.Example",
            ],
        ),
        "user \"kate\" of tenant \"acme\" already has this Circuit user",
    );
    cli(&data, &["user", "add", "kim", "--tenant", "acme"]);
    let with_kim = cli(&data, &["user", "list", "--tenant", "acme"]);
    assert_ne!(before, with_kim);
    refused(
        &run(
            &data,
            &[
                "user",
                "set",
                "kim",
                "--tenant",
                "acme",
                "--circuit-user",
                "kate@CIRCUIT.example",
            ],
        ),
        "\"kate\"",
    );
    assert_eq!(
        cli(&data, &["user", "list", "--tenant", "acme"]),
        with_kim,
        "nothing was saved"
    );
    // Shape: an e-mail or a URI, no spaces.
    refused(
        &run(
            &data,
            &[
                "user",
                "set",
                "kim",
                "--tenant",
                "acme",
                "--circuit-user",
                "not an address",
            ],
        ),
        "e-mail address or URI",
    );
    // Another tenant: the same address is fine.
    cli(
        &data,
        &[
            "user",
            "add",
            "kate",
            "--tenant",
            "globex",
            "--circuit-user",
            "kate@circuit.example",
        ],
    );
}

#[test]
fn the_first_start_takes_its_service_provider_from_public_url() {
    let dir = common::scratch_dir("cli_admin_public_url");
    let data = dir.join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("ssogate.toml");
    std::fs::write(
        &config,
        "public_url = \"https://cc.example.com/agentportal\"\n",
    )
    .unwrap();
    let port = common::process::free_port();
    let server =
        common::process::Server::start_with(&data, port, &dir.join("serve.log"), Some(&config));
    let listed = cli(&data, &["sp", "list"]);
    drop(server);
    assert!(
        listed.contains("https://cc.example.com/agentportal") && !listed.contains("127.0.0.1"),
        "{listed}"
    );
    // A public URL that is none stops the first start, saying why.
    std::fs::write(&config, "public_url = \"cc.example.com\"\n").unwrap();
    let o = Command::new(ssogate())
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--config",
        ])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("other"))
        .stdin(Stdio::null())
        .output()
        .expect("ssogate runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cc.example.com") && err.contains("http"),
        "{err}"
    );
}
