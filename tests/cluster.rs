//! Three `ssogate serve` instances behind nginx (round robin), on one PostgreSQL database, with
//! the real IdP (SimpleSAMLphp) and the scripted browser (`tests/cluster/flows.py`): an
//! AuthnRequest issued by one instance completes on another; SSO reuse across instances; an
//! IdP-initiated logout arriving at one instance ends the session on all; `ssogate tenant set` is
//! in force on every instance within a second; one assertion POSTed 50 times at once across the
//! instances makes one session and 49 replay refusals; instance A SIGKILLed while logins it
//! started wait at the IdP: they finish on the others. nginx protects a location with
//! `auth_request` to `/auth/check`, as the README shows.
//!
//! Needs PostgreSQL (`SSOGATE_TEST_DATABASE_URL`, started by `./run-tests`), nginx, python3,
//! PHP and SimpleSAMLphp; missing, the test fails naming them, unless `SSOGATE_SKIP=cluster`.

mod common;

use std::path::Path;
use std::process::Command;

use common::cluster::{Nginx, Shared};
use common::process::{free_port, ssogate};

const WINDOWS_ACCOUNT: &str =
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/windowsaccountname";

fn database(label: &str) -> Option<String> {
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(common::engines::fresh_database(label))
}

#[test]
fn three_instances_behind_nginx_share_logins_logouts_and_changes() {
    flows("cluster", |_| Some(String::new()));
}

/// The same flows with the sessions and pending requests in Redis (a database of its own on the
/// test server).
#[test]
fn the_same_with_redis_for_sessions() {
    flows("cluster_redis", |_| {
        let url = common::engines::redis_url()?;
        let mut u = url::Url::parse(&url).expect("redis URL");
        u.set_path("/1");
        // A clean database for this test.
        let out = Command::new("redis-cli")
            .args(["-u", u.as_str(), "FLUSHDB"])
            .output()
            .expect("redis-cli");
        assert!(out.status.success());
        Some(format!("redis_url = {:?}", u.to_string()))
    });
}

fn flows(label: &str, extra: impl Fn(&Path) -> Option<String>) {
    if common::require("cluster", common::cluster::missing()).is_none() {
        return;
    }
    let Some(url) = database(label) else {
        return;
    };
    let dir = common::scratch_dir(label);
    let Some(extra) = extra(&dir) else {
        return;
    };
    let shared = Shared::new(&dir, url, &extra);

    // The SP for the public URL, and its metadata for the IdP (through the CLI, on PostgreSQL).
    shared.cli(&[
        "sp",
        "add",
        "--host-url",
        &shared.public_url,
        "--generate-key",
    ]);
    let sp_xml = dir.join("sp-metadata.xml");
    std::fs::write(&sp_xml, shared.cli(&["sp", "metadata"])).expect("SP metadata");
    let idp = common::real_idp::RealIdp::start(&dir, free_port(), std::slice::from_ref(&sp_xml));
    shared.cli(&[
        "idp",
        "import",
        "ssp",
        "--metadata",
        &idp.metadata_file,
        "--username-claim",
        WINDOWS_ACCOUNT,
    ]);
    shared.cli(&[
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
        "--login-domain",
        "example",
    ]);
    shared.cli(&["user", "add", "agent1", "--display-name", "Agent One"]);
    shared.cli(&["user", "add", "agent2"]);

    let instances: Vec<_> = (1..=3).map(|n| shared.instance(n)).collect();
    let ports: Vec<u16> = instances.iter().map(|i| i.port).collect();
    let _nginx = Nginx::start(&dir, shared.nginx_port, &ports);

    let mut cmd = Command::new("python3");
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cluster/flows.py"))
        .args(["--public", &shared.public_url])
        .args(["--idp-sso-url", &idp.sso_url, "--idp-slo-url", &idp.slo_url])
        .arg("--ssogate")
        .arg(ssogate())
        .arg("--config")
        .arg(&shared.config)
        .args(["--victim-pid", &instances[0].server.pid().to_string()]);
    for i in &instances {
        cmd.args(["--instance", &i.url]);
    }
    let out = cmd.output().expect("flows.py runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let logs: String = instances
        .iter()
        .enumerate()
        .map(|(n, i)| format!("--- instance {} ---\n{}\n", n + 1, i.server.tail(25)))
        .collect();
    assert!(
        out.status.success(),
        "cluster flows failed:\n{stdout}\n{}\n{logs}",
        String::from_utf8_lossy(&out.stderr)
    );
    let passed = stdout.lines().filter(|l| l.starts_with("PASS")).count();
    assert!(
        stdout
            .lines()
            .last()
            .is_some_and(|l| l.ends_with(" 0 failed"))
            && passed >= 25,
        "{stdout}"
    );
    println!("{stdout}");
    common::record_cases("cluster", passed);
}
