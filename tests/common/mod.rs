//! Shared test support: where the shared material is, the corpus manifest, and throw-away keys.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub mod app;
pub mod generate;
pub mod hostile_gen;
pub mod http;

/// The team's shared folder (`../shared` beside the repository): `SSOGATE_SHARED_DIR`, or the first
/// `shared/` with a corpus manifest found walking up from the package.
pub fn shared_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("SSOGATE_SHARED_DIR") {
        let p = PathBuf::from(d);
        return p.join("corpus/MANIFEST.tsv").exists().then_some(p);
    }
    let mut dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")));
    while let Some(d) = dir {
        let cand = d.join("shared");
        if cand.join("corpus/MANIFEST.tsv").exists() {
            return Some(cand);
        }
        dir = d.parent();
    }
    None
}

/// The shared folder, or a line saying the test is skipped (returns None).
pub fn shared_or_skip(test: &str) -> Option<PathBuf> {
    let d = shared_dir();
    if d.is_none() {
        eprintln!("SKIPPED {test}: the shared corpus was not found (set SSOGATE_SHARED_DIR)");
    }
    d
}

/// One row of `corpus/MANIFEST.tsv`, by column name.
#[derive(Debug, Clone)]
pub struct Row(pub HashMap<String, String>);

impl Row {
    pub fn get(&self, k: &str) -> &str {
        self.0.get(k).map(String::as_str).unwrap_or("")
    }
    pub fn file(&self) -> &str {
        self.get("local_file")
    }
    /// `valid_at=` of conditions_valid_instant.
    pub fn valid_at(&self) -> Option<String> {
        let c = self.get("conditions_valid_instant");
        c.split_whitespace()
            .find_map(|w| w.strip_prefix("valid_at="))
            .map(str::to_string)
    }
    /// `Key=value` pairs of saml_fields.
    pub fn field(&self, key: &str) -> Option<String> {
        let f = self.get("saml_fields");
        f.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{key}=")))
            .map(str::to_string)
    }
}

pub fn manifest(shared: &Path) -> Vec<Row> {
    let text =
        std::fs::read_to_string(shared.join("corpus/MANIFEST.tsv")).expect("manifest readable");
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
