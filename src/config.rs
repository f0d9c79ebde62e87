//! The service's configuration: defaults that work with nothing configured, a TOML file
//! (`--config`) over them, `SSOGATE_<FIELD>` environment variables over that, and command-line
//! flags last. Loaded once in `main` and passed down.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::sqlite::Durability;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address and port to listen on. Default `127.0.0.1:8080`.
    pub listen: String,
    /// Directory of the SQLite database (`ssogate.db`). Default `./ssogate-data`.
    pub data_dir: PathBuf,
    /// `normal` (default: a crash of the process loses nothing) or `full` (a power loss loses
    /// nothing either; every commit waits for the disk).
    pub durability: Durability,
    /// Several tenants (`/t/{tenant}/…`, login domains) instead of one implicit tenant. Default false.
    pub multi_tenant: bool,
    /// One clock skew, in seconds, applied to every SAML time check. Default 180.
    pub clock_skew_secs: i64,
    /// Longest session, in seconds, whatever the IdP's SessionNotOnOrAfter says. Default 8 h.
    pub session_max_secs: i64,
    /// How long an AuthnRequest or LogoutRequest waits for its answer, in seconds. Default 600.
    pub pending_request_secs: i64,
    /// Largest decoded SAML message accepted, in bytes. Default 256 KiB.
    pub max_message_bytes: usize,
    /// Cookies with the `Secure` flag. Default: when every service provider's host URL is https.
    pub secure_cookies: Option<bool>,
    /// Log lines as `text` (default) or `json`.
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("ssogate-data"),
            durability: Durability::Normal,
            multi_tenant: false,
            clock_skew_secs: 180,
            session_max_secs: 8 * 3600,
            pending_request_secs: 600,
            max_message_bytes: 256 * 1024,
            secure_cookies: None,
            log_format: LogFormat::Text,
        }
    }
}

const FIELDS: &[&str] = &[
    "listen",
    "data_dir",
    "durability",
    "multi_tenant",
    "clock_skew_secs",
    "session_max_secs",
    "pending_request_secs",
    "max_message_bytes",
    "secure_cookies",
    "log_format",
];

impl Config {
    /// Defaults, then `file` (if given), then `SSOGATE_*` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, String> {
        let mut table = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    format!("cannot read the configuration file {}: {e}", p.display())
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| format!("{}: {e}", p.display()))?
            }
            None => toml::Table::new(),
        };
        for field in FIELDS {
            let var = format!("SSOGATE_{}", field.to_ascii_uppercase());
            if let Some(v) = env(&var) {
                let value = if let Ok(b) = v.parse::<bool>() {
                    toml::Value::Boolean(b)
                } else if let Ok(i) = v.parse::<i64>() {
                    toml::Value::Integer(i)
                } else {
                    toml::Value::String(v)
                };
                table.insert((*field).to_string(), value);
            }
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| format!("configuration: {}", e.message()))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        if self.clock_skew_secs < 0 || self.clock_skew_secs > 3600 {
            return Err(format!(
                "clock_skew_secs is {}; it must be between 0 and 3600",
                self.clock_skew_secs
            ));
        }
        if self.session_max_secs < 60 {
            return Err(format!(
                "session_max_secs is {}; it must be at least 60",
                self.session_max_secs
            ));
        }
        if self.pending_request_secs < 10 {
            return Err(format!(
                "pending_request_secs is {}; it must be at least 10",
                self.pending_request_secs
            ));
        }
        if self.max_message_bytes < 4096 {
            return Err(format!(
                "max_message_bytes is {}; it must be at least 4096",
                self.max_message_bytes
            ));
        }
        Ok(())
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("ssogate.db")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_file_and_environment_in_that_order() {
        let dir = std::env::temp_dir().join(format!("ssogate-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ssogate.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nclock_skew_secs = 60\n").unwrap();
        let c = Config::load(Some(&file), |k| {
            (k == "SSOGATE_CLOCK_SKEW_SECS").then(|| "30".to_string())
        })
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:9000");
        assert_eq!(c.clock_skew_secs, 30);
        assert_eq!(c.session_max_secs, 8 * 3600);
        std::fs::write(&file, "listn = \"x\"\n").unwrap();
        let e = Config::load(Some(&file), |_| None).unwrap_err();
        assert!(e.contains("listn"), "{e}");
        let e = Config::load(None, |k| {
            (k == "SSOGATE_CLOCK_SKEW_SECS").then(|| "-5".to_string())
        })
        .unwrap_err();
        assert!(e.contains("clock_skew_secs is -5"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
