//! The real IdP of the tests (SimpleSAMLphp on loopback, `tests/real-idp/idp.py`) and its
//! scripted browser (`tests/real-idp/browser.py`), driven from Rust.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use super::real_idp_dir;

/// What is missing for the real IdP (python3, PHP, SimpleSAMLphp, openssl), or None.
pub fn missing() -> Option<String> {
    if let Some(m) = super::missing_programs(&[("python3", "python3")]) {
        return Some(m);
    }
    let out = Command::new("python3")
        .arg(real_idp_dir().join("idp.py"))
        .arg("check")
        .output()
        .ok()?;
    (!out.status.success()).then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A running IdP; stopped when dropped, whatever the test's outcome.
pub struct RealIdp {
    workdir: PathBuf,
    pub metadata_file: String,
    pub entity_id: String,
    pub sso_url: String,
    pub slo_url: String,
    pub cert_file: String,
}

impl Drop for RealIdp {
    fn drop(&mut self) {
        let _ = Command::new("python3")
            .arg(real_idp_dir().join("idp.py"))
            .args(["stop", "--workdir"])
            .arg(&self.workdir)
            .status();
    }
}

impl RealIdp {
    /// Starts the IdP in `dir/idp` on `port`, trusting the SPs of `sp_metadata`.
    pub fn start(dir: &Path, port: u16, sp_metadata: &[PathBuf]) -> RealIdp {
        RealIdp::start_as(dir, "127.0.0.1", port, sp_metadata)
    }

    /// The same, with `host` (127.0.0.1 or localhost) in its URLs.
    pub fn start_as(dir: &Path, host: &str, port: u16, sp_metadata: &[PathBuf]) -> RealIdp {
        let workdir = dir.join("idp");
        let out = Command::new("python3")
            .arg(real_idp_dir().join("idp.py"))
            .args([
                "start",
                "--host",
                host,
                "--port",
                &port.to_string(),
                "--workdir",
            ])
            .arg(&workdir)
            .args(sp_metadata)
            .output()
            .expect("idp.py runs");
        assert!(
            out.status.success(),
            "the IdP did not start (does it accept our SP metadata?):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("idp.py prints JSON");
        let s = |k: &str| v[k].as_str().expect("a string").to_string();
        RealIdp {
            metadata_file: s("metadata_file"),
            entity_id: s("entity_id"),
            sso_url: s("sso_url"),
            slo_url: s("slo_url"),
            cert_file: s("cert_file"),
            workdir,
        }
    }
}

/// Signs in as `user` (password `<user>pass`) through the scripted browser starting at `url`;
/// the SAMLResponse the IdP would POST to the SP, or None (with the browser's reason) when it
/// issued none.
pub fn login(url: &str, user: &str) -> Result<String, String> {
    let out = Command::new("python3")
        .arg(real_idp_dir().join("browser.py"))
        .args([
            "login",
            "--url",
            url,
            "--user",
            user,
            "--password",
            &format!("{user}pass"),
        ])
        .output()
        .expect("browser.py runs");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    v["saml_response"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "no saml_response".into())
}
