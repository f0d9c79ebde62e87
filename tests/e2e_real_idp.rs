//! End to end with the real IdP: `ssogate serve` and SimpleSAMLphp on loopback, ssogate configured
//! only through its command line (SP with a generated key; IdP imported from SimpleSAMLphp's
//! metadata with the windowsaccountname claim; the tenant with SSO, SLO and IdP-initiated login
//! on; users agent1 and agent2). `tests/e2e/flows.py` then drives the browser flows with the
//! scripted browser of `tests/real-idp/browser.py`: SP-initiated login (Redirect and POST), SSO
//! reuse, IdP-initiated login, SP- and IdP-initiated SLO, an IdP user with no ssogate user,
//! replayed responses, and `/auth/check` 401 → 200 → 401.
//!
//! Without python3, PHP or SimpleSAMLphp the test fails naming them, unless
//! `SSOGATE_SKIP=e2e` (`./run-tests` installs them).

mod common;

use std::path::Path;
use std::process::Command;

use common::process::{Server, cli, free_port, ssogate};

const WINDOWS_ACCOUNT: &str =
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/windowsaccountname";

#[test]
fn agents_sign_in_and_out_through_simplesamlphp() {
    if common::require("e2e", common::real_idp::missing()).is_none() {
        return;
    }
    let dir = common::scratch_dir("e2e_real_idp");
    let data = dir.join("data");
    let port = free_port();
    let sp_url = format!("http://127.0.0.1:{port}");

    // The SP, and its metadata for the IdP.
    cli(
        &data,
        &["sp", "add", "--host-url", &sp_url, "--generate-key"],
    );
    let sp_xml = dir.join("sp-metadata.xml");
    std::fs::write(&sp_xml, cli(&data, &["sp", "metadata"])).expect("write SP metadata");

    // The IdP, trusting our metadata (stopped when `idp` is dropped).
    let idp_port = std::env::var("SSOGATE_TEST_E2E_IDP_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(18090);
    let idp = common::real_idp::RealIdp::start(&dir, idp_port, std::slice::from_ref(&sp_xml));
    let idp_metadata = idp.metadata_file.clone();

    // Everything else through the CLI.
    cli(
        &data,
        &[
            "idp",
            "import",
            "ssp",
            "--metadata",
            &idp_metadata,
            "--username-claim",
            WINDOWS_ACCOUNT,
        ],
    );
    cli(
        &data,
        &[
            "tenant",
            "set",
            "default",
            "--sso",
            "on",
            "--idp",
            "ssp",
            "--slo",
            "on",
            "--idp-initiated",
            "on",
            // The IdP asserts EXAMPLE\agent1 (windowsaccountname): its NetBIOS domain.
            "--login-domain",
            "example",
        ],
    );
    cli(
        &data,
        &["user", "add", "agent1", "--display-name", "Agent One"],
    );
    cli(&data, &["user", "add", "agent2"]);
    let listed = cli(&data, &["user", "list"]);
    assert!(
        listed.contains("agent1") && listed.contains("agent2"),
        "{listed}"
    );

    let server = Server::start(&data, port, &dir.join("server.log"));

    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/flows.py"))
        .args(["--sp", &sp_url, "--idp-metadata", &idp_metadata])
        .args(["--idp-sso-url", &idp.sso_url, "--idp-slo-url", &idp.slo_url])
        .arg("--ssogate")
        .arg(ssogate())
        .arg("--data-dir")
        .arg(&data)
        .arg("--out")
        .arg(dir.join("flows"))
        .output()
        .expect("flows.py runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("PASS") || l.starts_with("FAIL") || l.ends_with(" failed"))
        .collect();
    println!("{}", summary.join("\n"));
    let server_log = server.output();
    assert!(
        out.status.success(),
        "end-to-end flows failed:\n{stdout}\n{}\n--- server log (tail) ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        server_log
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        summary.last().is_some_and(|l| l.ends_with(" 0 failed")),
        "{stdout}"
    );
    // The server logged the refusals with their reasons, never the assertion itself.
    assert!(
        server_log.contains("unknown_user") && server_log.contains("replayed"),
        "{server_log}"
    );
    assert!(
        !server_log.contains("SAMLResponse="),
        "a SAML message reached the log"
    );
    let checks = summary.iter().filter(|l| l.starts_with("PASS")).count();
    common::record_cases("e2e", checks);
}
