//! Shared test support: the corpus and its manifest, the real-IdP harness, prerequisites and
//! suite reports, throw-away keys, the in-process service.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub mod admin;
pub mod app;
pub mod cluster;
pub mod engines;
pub mod generate;
pub mod hostile_gen;
pub mod http;
pub mod oauth;
pub mod process;
pub mod real_idp;
pub mod tls;

/// The corpus of real IdP messages the tests read: `tests/corpus/` (see its README).
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// The real-IdP harness (`tests/real-idp/`: SimpleSAMLphp on loopback and a scripted browser).
pub fn real_idp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/real-idp")
}

/// Suites the person running the tests opted out of by name: `SSOGATE_SKIP=real-idp,xmlsec1`
/// (`real-idp` covers the end-to-end suite too, which needs the same IdP).
fn opted_out(suite: &str) -> bool {
    std::env::var("SSOGATE_SKIP").is_ok_and(|v| {
        v.split(',')
            .map(str::trim)
            .any(|s| s == suite || (s == "real-idp" && suite == "e2e"))
    })
}

/// Where suites report what they ran (read by `./run-tests` for its closing lines).
fn report_dir() -> PathBuf {
    let d = std::env::var_os("SSOGATE_SUITE_REPORT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("suite-report"));
    let _ = std::fs::create_dir_all(&d);
    d
}

/// Records that `suite` executed `cases` cases (added up over the suite's tests).
pub fn record_cases(suite: &str, cases: usize) {
    use std::io::Write as _;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(report_dir().join(format!("{suite}.cases")))
    {
        // One write of the whole line: tests of a suite record in parallel, and `writeln!`
        // could interleave their digits and newlines.
        let _ = f.write_all(format!("{cases}\n").as_bytes());
    }
}

/// A suite's prerequisite: `Some(())` when `missing` is `None`. When something is missing, the
/// test fails naming it and the command that installs it, unless the suite was opted out of by
/// name (`SSOGATE_SKIP`), in which case it records that it did not run and returns `None`.
pub fn require(suite: &str, missing: Option<String>) -> Option<()> {
    let Some(what) = missing else {
        return Some(());
    };
    if opted_out(suite) {
        let _ = std::fs::write(
            report_dir().join(format!("{suite}.skipped")),
            format!("SSOGATE_SKIP={suite} ({what})"),
        );
        return None;
    }
    panic!(
        "suite {suite}: {what}. Install it (./run-tests does, as root), or opt out by name: \
         SSOGATE_SKIP={suite}"
    );
}

/// `Some(description)` of the commands among `programs` that are not on PATH, with the Debian
/// packages that provide them.
pub fn missing_programs(programs: &[(&str, &str)]) -> Option<String> {
    let gone: Vec<&(&str, &str)> = programs
        .iter()
        .filter(|(cmd, _)| {
            std::process::Command::new(cmd)
                .arg("--version")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_err()
        })
        .collect();
    if gone.is_empty() {
        return None;
    }
    let cmds: Vec<&str> = gone.iter().map(|(c, _)| *c).collect();
    let pkgs: Vec<&str> = gone.iter().map(|(_, p)| *p).collect();
    Some(format!(
        "{} not found (apt-get install {})",
        cmds.join(", "),
        pkgs.join(" ")
    ))
}

/// One row of `tests/corpus/MANIFEST.tsv`, by column name.
#[derive(Debug, Clone)]
pub struct Row(pub HashMap<String, String>);

impl Row {
    pub fn get(&self, k: &str) -> &str {
        self.0.get(k).map(String::as_str).unwrap_or("")
    }
    pub fn file(&self) -> &str {
        self.get("file")
    }
    /// The instant the test clock is set to.
    pub fn valid_at(&self) -> Option<String> {
        Some(self.get("valid_at").to_string()).filter(|v| !v.is_empty())
    }
    /// `Key=value` pairs of `fields`.
    pub fn field(&self, key: &str) -> Option<String> {
        let f = self.get("fields");
        f.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{key}=")))
            .map(str::to_string)
    }
    /// Whether the corpus expects the message to be accepted.
    pub fn accept(&self) -> bool {
        self.get("expect") == "ACCEPT"
    }
}

/// The rows of `tests/corpus/MANIFEST.tsv`.
pub fn manifest() -> Vec<Row> {
    let text = std::fs::read_to_string(corpus_dir().join("MANIFEST.tsv"))
        .expect("tests/corpus/MANIFEST.tsv is readable");
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .expect("header")
        .split('\t')
        .map(str::to_string)
        .collect();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            Row(header
                .iter()
                .cloned()
                .zip(l.split('\t').map(str::to_string))
                .collect())
        })
        .collect()
}

/// Runs `f` in a fresh directory under the target dir and returns that directory.
pub fn scratch_dir(name: &str) -> PathBuf {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).expect("scratch dir");
    base
}
