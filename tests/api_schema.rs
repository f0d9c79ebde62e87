//! schemathesis (PyPI, at the version locked in `tests/api-schema/requirements.txt`, in the venv
//! `./run-tests` makes at `tests/api-schema/.venv`) against a running `ssogate serve`: it reads
//! `/api/v1/openapi.json` and sends generated requests, valid and invalid, to every operation with
//! `--checks all` (no 5xx, only documented status codes and content types, answers matching their
//! schemas, schema-violating input refused, schema-valid input taken, authentication enforced,
//! stateful sequences through the document's links). Settings and the one widened expectation
//! are in `tests/api-schema/schemathesis.toml`, with the reason.
//!
//! Excluded, because they would end the run rather than test the API: `DELETE
//! /api/v1/api-clients/{name}` and `POST /api/v1/api-clients/{name}/regenerate` (they would
//! revoke or replace the harness' own token) and `GET /api/v1/events` (an event stream never
//! ends). `tests/admin_api.rs` covers those three. No operation can remove the last central
//! administrator here: the harness' API client is one, and it cannot delete itself.
//!
//! `SSOGATE_SCHEMATHESIS` names another `st` executable; `SSOGATE_SCHEMATHESIS_SECONDS` the time
//! budget (default 150); `SSOGATE_SCHEMATHESIS_SEED` replays a run. Without schemathesis the test
//! fails naming how to install it, unless `SSOGATE_SKIP=schemathesis`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::process::{Server, cli, free_port};

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api-schema")
}

fn st() -> PathBuf {
    std::env::var_os("SSOGATE_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| schema_dir().join(".venv/bin/st"))
}

fn missing() -> Option<String> {
    let ok = Command::new(st())
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    (!ok).then(|| {
        format!(
            "schemathesis is missing at {} (python3 -m venv tests/api-schema/.venv && \
             tests/api-schema/.venv/bin/pip install -r tests/api-schema/requirements.txt)",
            st().display()
        )
    })
}

/// The first number after `label` ("Tested: 33" → 33; "Test cases:\n  12934 generated" → 12934).
fn figure(out: &str, label: &str) -> Option<usize> {
    let rest = &out[out.find(label)? + label.len()..];
    rest.split(|c: char| c.is_whitespace() || c == '/')
        .find(|w| !w.is_empty())?
        .parse()
        .ok()
}

#[test]
fn schemathesis_finds_nothing_wrong_with_the_api() {
    if common::require("schemathesis", missing()).is_none() {
        return;
    }
    let dir = common::scratch_dir("api-schema");
    let data = dir.join("data");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let server = Server::start(&data, port, &dir.join("server.log"));
    let added = cli(&data, &["api-client", "add", "schemathesis"]);
    let token = added
        .lines()
        .find_map(|l| l.rsplit_once(": ").filter(|_| l.starts_with("token")))
        .map(|(_, t)| t.trim().to_string())
        .expect("api-client add prints the token");
    let seconds = std::env::var("SSOGATE_SCHEMATHESIS_SECONDS").unwrap_or_else(|_| "150".into());
    let mut cmd = Command::new(st());
    cmd.arg("--config-file")
        .arg(schema_dir().join("schemathesis.toml"))
        .args([
            "run",
            &format!("{base}/api/v1/openapi.json"),
            "--url",
            &base,
        ])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "all", "--max-time", &seconds])
        .args(["--request-timeout", "10", "--no-color"])
        .args([
            "--exclude-path-regex",
            r"^/api/v1/(api-clients/\{name\}(/regenerate)?|events)$",
        ]);
    if let Ok(seed) = std::env::var("SSOGATE_SCHEMATHESIS_SEED") {
        cmd.args(["--seed", &seed]);
    }
    let out = cmd
        .current_dir(&dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("st runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(dir.join("schemathesis.txt"), &text).expect("report written");
    let generated = figure(&text, "Test cases:").unwrap_or(0);
    let tested = figure(&text, "Tested:").unwrap_or(0);
    common::record_cases("schemathesis", generated);
    assert!(
        out.status.success(),
        "schemathesis found failures (seed in the report; replay with SSOGATE_SCHEMATHESIS_SEED):\n{text}\n\
         --- server log (tail) ---\n{}",
        server.tail(40)
    );
    // Every operation but the three excluded (and the document) was exercised, with many generated cases.
    let host = format!("127.0.0.1:{port}");
    let doc = common::http::request_to(port, &host, "GET", "/api/v1/openapi.json", None, None)
        .expect("the server answers");
    let doc: serde_json::Value = serde_json::from_str(&doc.body).expect("the document is JSON");
    let documented: usize = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|p| p.as_object().map_or(0, |m| m.len()))
        .sum();
    // (schemathesis leaves out the operation it read the document from.)
    assert_eq!(tested, documented - 1 - 3, "operations tested:\n{text}");
    assert!(
        generated >= 1000,
        "only {generated} cases generated:\n{text}"
    );
    // The run kept its own credentials and left the server healthy, without a panic or a token
    // in its log.
    let me = bearer_get(port, "/api/v1/me", &token);
    assert!(me.starts_with("HTTP/1.1 200"), "{me}");
    let log = server.output();
    assert!(!log.contains("panicked"), "a panic in the server log");
    assert!(
        !log.contains(&token),
        "the API token reached the server log"
    );
}

/// `GET path` with a bearer token; the raw answer.
fn bearer_get(port: u16, path: &str, token: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connects");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .expect("request sent");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("answer read");
    answer
}
