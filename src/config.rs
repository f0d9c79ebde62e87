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
    /// Serve the Web Manager (`/webmanager`) and the JSON API (`/api/v1`) on this address
    /// instead (e.g. `127.0.0.1:8081`, reachable only from an admin network). Default: on
    /// `listen`, beside the agents' pages.
    pub admin_listen: Option<String>,

    /// Directory of the SQLite database (`ssogate.db`). Default `./ssogate-data`.
    pub data_dir: PathBuf,
    /// `postgres://user:password@host:port/database[?sslmode=require]`: everything in
    /// PostgreSQL (15 or later), shared by every instance, instead of SQLite in `data_dir`.
    /// Needs `secrets_key_file` (the same key on every instance).
    pub database_url: Option<SecretUrl>,
    /// `redis://[:password@]host:port[/db]`: sessions, pending logouts and pending Circuit
    /// requests in Redis (7 or later) instead of PostgreSQL (needs `database_url`; the replay
    /// cache stays in PostgreSQL). Redis keeps nothing across its restarts: agents sign in again.
    pub redis_url: Option<SecretUrl>,
    /// Connections to PostgreSQL per instance at most (one of them listens for the other
    /// instances' notifications). Default 16.
    pub database_pool_size: usize,
    /// Milliseconds a statement may wait for a free connection before the request gets 503.
    /// Default 2000.
    pub database_pool_wait_ms: u64,
    /// Milliseconds one statement may take (the server cancels it too) before 503: a database
    /// that hangs is answered 503 within this. Default 1500.
    pub database_statement_timeout_ms: u64,
    /// `normal` (default: a crash of the process loses nothing) or `full` (a power loss loses
    /// nothing either; every commit waits for the disk).
    pub durability: Durability,
    /// Several tenants (`/t/{tenant}/…`, login domains) instead of one implicit tenant. Default false.
    pub multi_tenant: bool,
    /// One clock skew, in seconds, applied to every SAML time check. Default 180.
    pub clock_skew_secs: i64,
    /// Longest session, in seconds, whatever the IdP's SessionNotOnOrAfter says. Default 8 h.
    pub session_max_secs: i64,
    /// An agent's session ends after this many seconds without a request (the portal's
    /// `/auth/check` counts). Default 3600; 0 for none.
    pub session_idle_secs: i64,
    /// How long an AuthnRequest or LogoutRequest waits for its answer, in seconds. Default 600.
    pub pending_request_secs: i64,
    /// Largest decoded SAML message accepted, in bytes. Default 256 KiB.
    pub max_message_bytes: usize,
    /// Most XML nodes and attributes together in one SAML message. Default 16,384 (a real
    /// response has one per 20 to 30 bytes; each costs a node's work in every walk).
    pub max_message_nodes: usize,
    /// Cookies with the `Secure` flag. Default: when every service provider's host URL is https.
    pub secure_cookies: Option<bool>,
    /// Log lines as `text` (default) or `json`.
    pub log_format: LogFormat,
    /// The key that encrypts secrets kept in the database (TOTP secrets): a file of 64 hex
    /// digits. Default: `secrets.key` in `data_dir`, made (mode 0600) on the first start. The
    /// database remembers the key's ID; a start with another key is refused.
    pub secrets_key_file: Option<PathBuf>,
    /// The agent portal's public URL (e.g. behind a reverse proxy or several instances): the
    /// first start's service provider gets it as host URL. Default: derived from `listen`.
    pub public_url: Option<String>,
    /// Central administrators must use a second factor (TOTP) in the Web Manager: one without
    /// is sent to enrol before anything else. Seeds the stored setting (switched in the Web
    /// Manager or the API). Default false.
    pub admin_require_totp: bool,

    // Calls the service makes itself (IdP metadata URLs).
    /// CA certificates (PEM) trusted besides the system's for outbound https.
    pub outbound_ca_file: Option<PathBuf>,
    /// `http://host:port`: outbound calls go through this proxy (https by CONNECT). Takes
    /// precedence over `HTTPS_PROXY`/`NO_PROXY`.
    pub outbound_proxy: Option<String>,
    /// Outbound calls may reach loopback, link-local and private addresses. Default false.
    pub outbound_allow_private: bool,
    /// Outbound calls in flight at most; more are refused at once. Default 16.
    pub outbound_max_in_flight: usize,

    // Limits against hostile clients (README, "Deploying safely").
    /// Reverse proxies whose `X-Forwarded-For` is believed: addresses or blocks
    /// (`["10.0.0.0/8", "::1"]`). Default none: the client is the TCP peer.
    pub trusted_proxies: Vec<String>,
    /// Open connections at most, in total. Default 4096 (lowered to fit the open-files limit).
    pub max_connections: usize,
    /// Open connections at most from one client address (a trusted proxy counts only against the
    /// total). Default 256.
    pub max_connections_per_client: usize,
    /// Seconds a request's header may take to arrive, counted from the connection's start or the
    /// previous response (so also how long a kept-alive connection may idle). Default 10.
    pub header_read_timeout_secs: u64,
    /// Seconds a whole request, body included, may take. Default 30.
    pub request_timeout_secs: u64,
    /// Seconds without a byte moving either way before a connection is closed. Default 60.
    pub idle_timeout_secs: u64,
    /// Threads verifying signatures at once. Default: the number of cores.
    pub verify_workers: Option<usize>,
    /// Messages waiting for a verifier beyond those; more are answered 503 at once. Default 64.
    pub verify_queue: usize,
    /// argon2 password checks at once (19 MiB each). Default: the number of cores.
    pub password_workers: Option<usize>,
    /// Password checks waiting beyond those; more are answered 503 at once. Default 1024.
    pub password_queue: usize,
    /// Seconds a password check may wait for its turn before 503. Default 15.
    pub password_wait_secs: u64,
    /// Wrong passwords for one user from one address before each further attempt waits
    /// (1 s, 2 s, 4 s, …). Default 5.
    pub password_free_attempts: u32,
    /// The longest such wait, in seconds. Default 900.
    pub password_max_delay_secs: i64,
    /// Failure records one client address may create per minute; its further refusals are
    /// counted in its latest record. Default 20.
    pub failure_records_per_minute: u32,
    /// Bytes the failure log may take (each record is at most 2 KiB). Default 16 MiB.
    pub failure_log_max_bytes: u64,
    /// "Sign in with Circuit" clicks one client address may make per minute (each stores a
    /// pending request for 10 minutes); more are answered 429. Default 30.
    pub oauth_starts_per_minute: u32,
    /// Such clicks from all addresses together per minute (bounds the pending requests kept:
    /// at most 10 times this). Default 12000.
    pub oauth_starts_per_minute_total: u32,
}

/// A URL that may carry a password: shown without it (`Debug`), serialized as given.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> SecretUrl {
        SecretUrl(url.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::store::postgres::redact_url(&self.0))
    }
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
            admin_listen: None,
            data_dir: PathBuf::from("ssogate-data"),
            durability: Durability::Normal,
            database_url: None,
            redis_url: None,
            database_pool_size: 16,
            database_pool_wait_ms: 2000,
            database_statement_timeout_ms: 1500,
            multi_tenant: false,
            clock_skew_secs: 180,
            session_max_secs: 8 * 3600,
            session_idle_secs: 3600,
            pending_request_secs: 600,
            max_message_bytes: 256 * 1024,
            max_message_nodes: 16_384,
            secure_cookies: None,
            log_format: LogFormat::Text,
            secrets_key_file: None,
            public_url: None,
            admin_require_totp: false,
            outbound_ca_file: None,
            outbound_proxy: None,
            outbound_allow_private: false,
            outbound_max_in_flight: 16,
            trusted_proxies: Vec::new(),
            max_connections: 4096,
            max_connections_per_client: 256,
            header_read_timeout_secs: 10,
            request_timeout_secs: 30,
            idle_timeout_secs: 60,
            verify_workers: None,
            verify_queue: 64,
            password_workers: None,
            password_queue: 1024,
            password_wait_secs: 15,
            password_free_attempts: 5,
            password_max_delay_secs: 900,
            failure_records_per_minute: 20,
            failure_log_max_bytes: 16 * 1024 * 1024,
            oauth_starts_per_minute: 30,
            oauth_starts_per_minute_total: 12_000,
        }
    }
}

const FIELDS: &[&str] = &[
    "listen",
    "admin_listen",
    "data_dir",
    "durability",
    "database_url",
    "redis_url",
    "database_pool_size",
    "database_pool_wait_ms",
    "database_statement_timeout_ms",
    "multi_tenant",
    "clock_skew_secs",
    "session_max_secs",
    "session_idle_secs",
    "pending_request_secs",
    "max_message_bytes",
    "max_message_nodes",
    "secure_cookies",
    "log_format",
    "secrets_key_file",
    "public_url",
    "admin_require_totp",
    "outbound_ca_file",
    "outbound_proxy",
    "outbound_allow_private",
    "outbound_max_in_flight",
    "trusted_proxies",
    "max_connections",
    "max_connections_per_client",
    "header_read_timeout_secs",
    "request_timeout_secs",
    "idle_timeout_secs",
    "verify_workers",
    "verify_queue",
    "password_workers",
    "password_queue",
    "password_wait_secs",
    "password_free_attempts",
    "password_max_delay_secs",
    "failure_records_per_minute",
    "failure_log_max_bytes",
    "oauth_starts_per_minute",
    "oauth_starts_per_minute_total",
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
        // Each variable is checked alone first, so that a value that does not parse is reported
        // with the variable's name.
        for field in FIELDS {
            let var = format!("SSOGATE_{}", field.to_ascii_uppercase());
            if let Some(v) = env(&var) {
                let value = if *field == "trusted_proxies" {
                    // A comma-separated list in the environment.
                    toml::Value::Array(
                        v.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(|s| toml::Value::String(s.to_string()))
                            .collect(),
                    )
                } else if let Ok(b) = v.parse::<bool>() {
                    toml::Value::Boolean(b)
                } else if let Ok(i) = v.parse::<i64>() {
                    toml::Value::Integer(i)
                } else {
                    toml::Value::String(v.clone())
                };
                let mut alone = toml::Table::new();
                alone.insert((*field).to_string(), value.clone());
                if let Err(e) = toml::Value::Table(alone).try_into::<Config>() {
                    return Err(format!("environment variable {var}={v:?}: {}", e.message()));
                }
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
        if self.session_idle_secs != 0 && self.session_idle_secs < 120 {
            return Err(format!(
                "session_idle_secs is {}; it must be 0 (none) or at least 120",
                self.session_idle_secs
            ));
        }
        if self.pending_request_secs < 10 {
            return Err(format!(
                "pending_request_secs is {}; it must be at least 10",
                self.pending_request_secs
            ));
        }
        for p in &self.trusted_proxies {
            crate::web::client::Cidr::parse(p).map_err(|e| format!("trusted_proxies: {e}"))?;
        }
        let positive = [
            ("max_message_nodes", self.max_message_nodes as u64),
            ("max_connections", self.max_connections as u64),
            (
                "max_connections_per_client",
                self.max_connections_per_client as u64,
            ),
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("request_timeout_secs", self.request_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("password_wait_secs", self.password_wait_secs),
            (
                "failure_records_per_minute",
                u64::from(self.failure_records_per_minute),
            ),
            (
                "oauth_starts_per_minute",
                u64::from(self.oauth_starts_per_minute),
            ),
            (
                "oauth_starts_per_minute_total",
                u64::from(self.oauth_starts_per_minute_total),
            ),
            ("verify_workers", self.verify_workers.unwrap_or(1) as u64),
            ("database_pool_size", self.database_pool_size as u64),
            ("database_pool_wait_ms", self.database_pool_wait_ms),
            (
                "database_statement_timeout_ms",
                self.database_statement_timeout_ms,
            ),
            ("outbound_max_in_flight", self.outbound_max_in_flight as u64),
            (
                "password_workers",
                self.password_workers.unwrap_or(1) as u64,
            ),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(format!("{name} is 0; it must be at least 1"));
            }
        }
        if self.password_max_delay_secs < 1 {
            return Err(format!(
                "password_max_delay_secs is {}; it must be at least 1",
                self.password_max_delay_secs
            ));
        }
        if self.failure_log_max_bytes < 1024 * 1024 {
            return Err(format!(
                "failure_log_max_bytes is {}; it must be at least 1048576 (1 MiB)",
                self.failure_log_max_bytes
            ));
        }
        if self.max_message_bytes < 4096 {
            return Err(format!(
                "max_message_bytes is {}; it must be at least 4096",
                self.max_message_bytes
            ));
        }
        if self.redis_url.is_some() && self.database_url.is_none() {
            return Err(
                "redis_url needs database_url: Redis keeps the sessions of instances that share a PostgreSQL database"
                    .into(),
            );
        }
        if self.database_url.is_some() && self.secrets_key_file.is_none() {
            return Err(
                "database_url needs secrets_key_file: every instance must use the same secrets key \
                 (make one with: openssl rand -hex 32 > secrets.key; chmod 600 secrets.key)"
                    .into(),
            );
        }
        Ok(())
    }

    /// PostgreSQL's settings, when `database_url` is set.
    pub fn postgres(&self) -> Option<crate::store::postgres::PgOptions> {
        let url = self.database_url.as_ref()?;
        let mut o = crate::store::postgres::PgOptions::new(url.expose());
        o.pool_size = self.database_pool_size;
        o.pool_wait = std::time::Duration::from_millis(self.database_pool_wait_ms);
        o.statement_timeout = std::time::Duration::from_millis(self.database_statement_timeout_ms);
        Some(o)
    }

    /// The trusted proxies, parsed (checked when the configuration was loaded).
    pub fn trusted_proxy_blocks(&self) -> Vec<crate::web::client::Cidr> {
        self.trusted_proxies
            .iter()
            .filter_map(|p| crate::web::client::Cidr::parse(p).ok())
            .collect()
    }

    /// How many failure records the log keeps.
    pub fn failure_rows(&self) -> u64 {
        self.failure_log_max_bytes / crate::web::refusal::MAX_RECORD_BYTES as u64
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
