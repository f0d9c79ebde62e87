//! The administration CLI on a real SQLite file: bad input is refused with a precise message and
//! exit status 1, and nothing changes then; good input shows up in the listings.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::generate::{attacker, idp, sp};

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

#[test]
fn bad_input_is_refused_precisely_and_changes_nothing() {
    let dir = common::scratch_dir("cli_admin");
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
        "already has entity ID",
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
    refused(
        &run(&data, &[&base[..], &["--cert", &idp_cert]].concat()),
        "username claim is missing",
    );
    refused(
        &run(&data, &[&base[..], &["--username-claim", "upn"]].concat()),
        "needs a certificate",
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
    refused(
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
        "is not redirect or post",
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
            &format!("SHA256:{}", idp().cert.sha256_hex()),
        ],
    );
    assert!(fp.contains("trust=fingerprint sha256:"), "{fp}");

    // Tenants.
    refused(
        &run(&data, &["tenant", "set", "nope", "--sso", "on"]),
        "no tenant named",
    );
    refused(
        &run(&data, &["tenant", "add", "acme", "--sso", "on"]),
        "needs an identity provider",
    );
    refused(
        &run(&data, &["tenant", "add", "acme", "--sso", "maybe"]),
        "say on or off",
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

    // Users.
    refused(
        &run(&data, &["user", "add", "agent1", "--tenant", "nope"]),
        "no tenant named",
    );
    refused(&run(&data, &["user", "add", " agent1"]), "white space");
    refused(
        &run(&data, &["user", "add", "agent1", "--role", "boss"]),
        "is not agent, tenant-manager or central-admin",
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
