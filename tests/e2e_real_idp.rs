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

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const WINDOWS_ACCOUNT: &str =
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/windowsaccountname";

fn ssogate() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ssogate"))
}

/// Runs an ssogate CLI command on `data`; panics with its stderr when it fails.
fn cli(data: &Path, args: &[&str]) -> String {
    let out = Command::new(ssogate())
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("ssogate runs");
    assert!(
        out.status.success(),
        "ssogate {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Processes stopped when the test ends, whatever its outcome.
struct Cleanup {
    server: Option<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn wait_for_port(port: u16, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn agents_sign_in_and_out_through_simplesamlphp() {
    if common::require("e2e", common::real_idp::missing()).is_none() {
        return;
    }
    let dir = common::scratch_dir("e2e_real_idp");
    let data = dir.join("data");
    let port = free_port();
    let sp_url = format!("http://127.0.0.1:{port}");
    let mut cleanup = Cleanup { server: None };

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

    let log = std::fs::File::create(dir.join("server.log")).expect("server log");
    let server = Command::new(ssogate())
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .env("SSOGATE_LOG", "info")
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .expect("ssogate serve starts");
    cleanup.server = Some(server);
    assert!(
        wait_for_port(port, Duration::from_secs(20)),
        "ssogate did not listen on {port}"
    );

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
    let server_log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
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
