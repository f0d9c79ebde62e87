//! Several instances on one PostgreSQL (15 or later) database, through tokio-postgres with a
//! deadpool pool.
//!
//! Every step that must happen once across instances is one statement: a pending request is
//! taken by `DELETE … RETURNING`, a replay key recorded by `INSERT … ON CONFLICT` (its row count
//! says whether it was new). Each statement waits at most the pool wait for a connection and the
//! statement timeout for its answer (also enforced by the server); either timeout is
//! [`StoreError::Unavailable`], which the web layer answers with 503. Migrations run under an
//! advisory lock, so instances started together migrate once. Purges are done by one instance at
//! a time (a transaction-level advisory lock), in batches that skip rows another holds.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, ToSql};

use super::sp_keys::SpKeys;
use super::*;

const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        include_str!("../../migrations/postgres/0002_shared_counters.sql"),
    ),
];

/// The advisory lock key of migrations (any constant: "ssogate" in ASCII).
const MIGRATION_LOCK: i64 = 0x0073_736f_6761_7465;
/// The advisory lock key of the purge.
const PURGE_LOCK: i64 = MIGRATION_LOCK + 1;
/// The advisory lock key of a first start's bootstrap.
const STARTUP_LOCK: i64 = MIGRATION_LOCK + 2;

/// The channel a configuration change is notified on (see the schema's trigger).
pub const CONFIG_CHANNEL: &str = "ssogate_config";

/// How the store reaches PostgreSQL (`database_*` settings).
#[derive(Clone)]
pub struct PgOptions {
    /// `postgres://user:password@host:port/database?sslmode=…`.
    pub url: String,
    /// Connections per instance at most.
    pub pool_size: usize,
    /// How long a statement may wait for a free connection.
    pub pool_wait: Duration,
    /// How long one statement may take (the server cancels it too).
    pub statement_timeout: Duration,
    /// How long opening a connection may take.
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("PgOptions")
            .field("url", &redact_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("pool_wait", &self.pool_wait)
            .field("statement_timeout", &self.statement_timeout)
            .finish_non_exhaustive()
    }
}

impl PgOptions {
    pub fn new(url: &str) -> PgOptions {
        PgOptions {
            url: url.to_string(),
            pool_size: 16,
            pool_wait: Duration::from_secs(2),
            statement_timeout: Duration::from_millis(1500),
            // A hung server accepts the TCP connection and then says nothing: a request that
            // must open a connection then gives up within this (a live one answers in ms).
            connect_timeout: Duration::from_secs(1),
        }
    }
}

/// The URL without its password (for messages).
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(not a URL)".into(),
    }
}

/// Counters of the pool and statements (for `/metrics`).
#[derive(Default)]
pub struct PgStats {
    /// Statements run, and their total time in microseconds.
    pub statements: AtomicU64,
    pub statement_micros: AtomicU64,
    /// Statements that failed for want of the database (timeouts, lost connections).
    pub unavailable: AtomicU64,
}

#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    keys: Arc<SpKeys>,
    statement_timeout: Duration,
    stats: Arc<PgStats>,
    options: Arc<PgOptions>,
    /// The one connection that `LISTEN`s for every channel (see [`PgStore::notifications`]).
    notifier: Arc<Notifier>,
}

/// Every channel the service listens on.
const CHANNELS: [&str; 2] = [CONFIG_CHANNEL, EVENTS_CHANNEL];

/// The channel the Web Manager's events travel on between instances.
pub const EVENTS_CHANNEL: &str = "ssogate_events";

/// One listening connection per instance, shared by every channel's subscribers.
#[derive(Default)]
struct Notifier {
    senders: std::sync::OnceLock<
        std::collections::HashMap<&'static str, tokio::sync::broadcast::Sender<String>>,
    >,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgStore")
    }
}

/// The reason of a driver error, with its causes (tokio-postgres says only "db error" at the top).
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

fn err(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        if *db.code() == SqlState::UNIQUE_VIOLATION {
            // `<table>_<field>_key` (see the schema): "already exists: <table>.<field>".
            let table = db.table().unwrap_or("");
            let field = db
                .constraint()
                .unwrap_or("")
                .trim_start_matches(table)
                .trim_start_matches('_')
                .trim_end_matches("_key")
                .trim_end_matches("_pkey");
            return StoreError::Conflict(format!("already exists: {table}.{field}"));
        }
        if *db.code() == SqlState::FOREIGN_KEY_VIOLATION {
            return StoreError::Conflict("still referenced by another object".into());
        }
        if *db.code() == SqlState::CHARACTER_NOT_IN_REPERTOIRE {
            return StoreError::Conflict("text with a NUL character cannot be stored".into());
        }
    }
    StoreError::Unavailable(describe(&e))
}

fn get<'a, T: FromSql<'a>>(r: &'a Row, col: &str) -> Result<T> {
    r.try_get(col)
        .map_err(|e| StoreError::Corrupt(format!("column {col}: {}", describe(&e))))
}

fn at(r: &Row, col: &str) -> Result<UnixTime> {
    Ok(UnixTime::from_millis(get::<i64>(r, col)?))
}

/// Text as PostgreSQL stores it: a NUL character (which no stored name or key holds, and which
/// PostgreSQL's text refuses) becomes U+FFFD, so that a lookup by hostile text finds nothing
/// instead of failing.
fn txt(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}").into()
    } else {
        s.into()
    }
}

fn opt_txt(s: &Option<String>) -> Option<std::borrow::Cow<'_, str>> {
    s.as_deref().map(txt)
}

type P<'a> = &'a (dyn ToSql + Sync);

/// The TLS connector for `sslmode`: `require` encrypts without checking the certificate (as
/// libpq does), `verify-ca` checks it against `sslrootcert` (else the system's CAs), `verify-full`
/// checks the host name too.
fn tls_for(
    mode: &str,
    root: Option<&str>,
) -> std::result::Result<postgres_openssl::MakeTlsConnector, String> {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| e.to_string())?;
    if let Some(root) = root {
        b.set_ca_file(root)
            .map_err(|e| format!("sslrootcert {root}: {e}"))?;
    }
    let verify = matches!(mode, "verify-ca" | "verify-full");
    if !verify {
        b.set_verify(SslVerifyMode::NONE);
    }
    let mut c = postgres_openssl::MakeTlsConnector::new(b.build());
    if mode == "verify-ca" {
        c.set_callback(|cfg, _| {
            cfg.set_verify_hostname(false);
            Ok(())
        });
    }
    Ok(c)
}

/// Parses `url` into the driver's settings and the TLS connector its `sslmode` asks for.
fn parse_url(
    o: &PgOptions,
) -> std::result::Result<(tokio_postgres::Config, postgres_openssl::MakeTlsConnector), String> {
    let mut u = url::Url::parse(&o.url).map_err(|e| format!("database_url is not a URL: {e}"))?;
    if !matches!(u.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "database_url must start with postgres:// (not {}://)",
            u.scheme()
        ));
    }
    let mut mode = "prefer".to_string();
    let mut root = None;
    let rest: Vec<(String, String)> = u
        .query_pairs()
        .filter_map(|(k, v)| match &*k {
            "sslmode" => {
                mode = v.into_owned();
                None
            }
            "sslrootcert" => {
                root = Some(v.into_owned());
                None
            }
            _ => Some((k.into_owned(), v.into_owned())),
        })
        .collect();
    if rest.is_empty() {
        u.set_query(None);
    } else {
        u.query_pairs_mut().clear().extend_pairs(rest);
    }
    let mut cfg = tokio_postgres::Config::from_str(u.as_str())
        .map_err(|e| format!("database_url: {}", describe(&e)))?;
    cfg.ssl_mode(match mode.as_str() {
        "disable" => tokio_postgres::config::SslMode::Disable,
        "allow" | "prefer" => tokio_postgres::config::SslMode::Prefer,
        "require" | "verify-ca" | "verify-full" => tokio_postgres::config::SslMode::Require,
        other => {
            return Err(format!(
                "database_url: sslmode {other:?} is none of disable, prefer, require, verify-ca, verify-full"
            ));
        }
    });
    cfg.connect_timeout(o.connect_timeout);
    cfg.application_name("ssogate");
    cfg.options(format!(
        "-c statement_timeout={} -c lock_timeout={} -c client_min_messages=warning",
        o.statement_timeout.as_millis(),
        o.statement_timeout.as_millis()
    ));
    // A connection whose peer vanished (a host gone, a cable pulled) is noticed.
    cfg.keepalives_idle(Duration::from_secs(30));
    let tls = tls_for(&mode, root.as_deref())?;
    Ok((cfg, tls))
}

impl PgStore {
    /// Connects, and applies the migrations (once, whatever number of instances start together).
    /// A bad URL or an unreachable server is an error naming the reason.
    pub async fn open(o: PgOptions) -> Result<PgStore> {
        let (cfg, tls) = parse_url(&o).map_err(StoreError::Unavailable)?;
        let mgr = Manager::from_config(
            cfg,
            tls,
            ManagerConfig {
                // A closed connection (the server restarted) is dropped when taken back.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // One of the instance's `pool_size` connections listens for notifications.
        let pool = Pool::builder(mgr)
            .max_size(o.pool_size.saturating_sub(1).max(1))
            .wait_timeout(Some(o.pool_wait))
            .create_timeout(Some(o.connect_timeout))
            .recycle_timeout(Some(o.statement_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let store = PgStore {
            pool,
            keys: Arc::new(SpKeys::default()),
            statement_timeout: o.statement_timeout,
            stats: Default::default(),
            options: Arc::new(o),
            notifier: Arc::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Loads the secrets key the SP private keys are kept under (a store holds one for its life).
    pub fn use_secrets(&self, key: Arc<crate::secrets::SecretsKey>) -> Result<()> {
        self.keys.set(key)
    }

    pub fn stats(&self) -> &PgStats {
        &self.stats
    }

    /// Connections open, idle, and requests waiting for one.
    pub fn pool_status(&self) -> (usize, usize, usize) {
        let s = self.pool.status();
        (s.size, s.available, s.waiting)
    }

    pub fn options(&self) -> &PgOptions {
        &self.options
    }

    async fn conn(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| {
            self.stats.unavailable.fetch_add(1, Ordering::Relaxed);
            StoreError::Unavailable(match e {
                deadpool_postgres::PoolError::Timeout(_) => format!(
                    "no database connection free or made within {} ms",
                    self.options.pool_wait.as_millis()
                ),
                deadpool_postgres::PoolError::Backend(e) => describe(&e),
                other => other.to_string(),
            })
        })
    }

    /// Runs `f` within the statement timeout (also when the server does not answer at all).
    async fn timed<T>(
        &self,
        f: impl std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    ) -> Result<T> {
        let started = Instant::now();
        let r = match tokio::time::timeout(self.statement_timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                let e = err(e);
                if matches!(e, StoreError::Unavailable(_)) {
                    self.stats.unavailable.fetch_add(1, Ordering::Relaxed);
                }
                Err(e)
            }
            Err(_) => {
                self.stats.unavailable.fetch_add(1, Ordering::Relaxed);
                Err(StoreError::Unavailable(format!(
                    "the database did not answer within {} ms",
                    self.statement_timeout.as_millis()
                )))
            }
        };
        self.stats.statements.fetch_add(1, Ordering::Relaxed);
        self.stats
            .statement_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        r
    }

    async fn query(&self, sql: &str, p: &[P<'_>]) -> Result<Vec<Row>> {
        let c = self.conn().await?;
        let st = self.timed(c.prepare_cached(sql)).await?;
        self.timed(c.query(&st, p)).await
    }

    async fn opt(&self, sql: &str, p: &[P<'_>]) -> Result<Option<Row>> {
        let c = self.conn().await?;
        let st = self.timed(c.prepare_cached(sql)).await?;
        self.timed(c.query_opt(&st, p)).await
    }

    async fn one(&self, sql: &str, p: &[P<'_>]) -> Result<Row> {
        let c = self.conn().await?;
        let st = self.timed(c.prepare_cached(sql)).await?;
        self.timed(c.query_one(&st, p)).await
    }

    async fn exec(&self, sql: &str, p: &[P<'_>]) -> Result<u64> {
        let c = self.conn().await?;
        let st = self.timed(c.prepare_cached(sql)).await?;
        self.timed(c.execute(&st, p)).await
    }

    async fn migrate(&self) -> Result<()> {
        let mut c = self.conn().await?;
        // Session-level: held across the transactions below, released at the end (or when the
        // connection drops). Others starting now wait here, then find everything applied.
        self.timed(c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]))
            .await
            .map_err(|e| match e {
                StoreError::Unavailable(m) => StoreError::Unavailable(format!(
                    "waiting for another instance's migration: {m}"
                )),
                e => e,
            })?;
        let r = async {
            self.timed(c.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            ))
            .await?;
            for &(version, sql) in MIGRATIONS {
                let done = self
                    .timed(c.query_opt(
                        "SELECT version FROM schema_migrations WHERE version = $1",
                        &[&version],
                    ))
                    .await?;
                if done.is_some() {
                    continue;
                }
                let tx = self.timed(c.transaction()).await?;
                // No statement timeout for a migration: it may rewrite big tables.
                tx.batch_execute("SET LOCAL statement_timeout = 0")
                    .await
                    .map_err(err)?;
                tx.batch_execute(sql).await.map_err(|e| {
                    StoreError::Unavailable(format!("migration {version}: {}", describe(&e)))
                })?;
                tx.execute(
                    "INSERT INTO schema_migrations (version) VALUES ($1)",
                    &[&version],
                )
                .await
                .map_err(err)?;
                self.timed(tx.commit()).await?;
                tracing::info!(version, "applied database migration");
            }
            Ok::<(), StoreError>(())
        }
        .await;
        let unlocked = self
            .timed(c.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]))
            .await;
        r?;
        unlocked.map(|_| ())
    }

    /// The highest migration applied (readiness: the schema this build expects is there).
    pub async fn schema_version(&self) -> Result<i64> {
        let r = self
            .one(
                "SELECT coalesce(max(version), 0) AS v FROM schema_migrations",
                &[],
            )
            .await?;
        get(&r, "v")
    }

    /// The configuration's version, bumped by every change of configuration on any instance.
    pub async fn config_version(&self) -> Result<i64> {
        let r = self.one("SELECT version FROM config_version", &[]).await?;
        get(&r, "version")
    }

    /// `NOTIFY channel, payload` (at most 8,000 bytes, PostgreSQL's limit).
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<()> {
        self.exec("SELECT pg_notify($1, $2)", &[&channel, &payload])
            .await?;
        Ok(())
    }

    /// Notifications on `channel` (one of [`CONFIG_CHANNEL`], [`EVENTS_CHANNEL`]): their
    /// payloads, and an empty one each time the listening connection was made again (what was
    /// notified meanwhile is lost: a subscriber that must not miss a change reloads then). One
    /// connection per instance listens for every channel; it is made again a second after it is
    /// lost, for as long as the store lives.
    pub fn notifications(&self, channel: &str) -> tokio::sync::broadcast::Receiver<String> {
        let senders = self.notifier.senders.get_or_init(|| {
            let senders: std::collections::HashMap<_, _> = CHANNELS
                .iter()
                .map(|c| (*c, tokio::sync::broadcast::channel(1024).0))
                .collect();
            let (weak, me) = (
                Arc::downgrade(&self.notifier),
                self.clone_without_notifier(),
            );
            tokio::spawn(async move {
                loop {
                    let Some(n) = weak.upgrade() else { return };
                    let Some(senders) = n.senders.get().cloned() else {
                        return;
                    };
                    drop(n);
                    let _ = me.listen_all(&senders).await;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
            senders
        });
        match senders.get(channel) {
            Some(s) => s.subscribe(),
            None => tokio::sync::broadcast::channel(1).1,
        }
    }

    /// The same pool without the notifier (the listening task must not keep it alive).
    fn clone_without_notifier(&self) -> PgStore {
        PgStore {
            notifier: Arc::default(),
            ..self.clone()
        }
    }

    /// Listens on every channel until the connection is lost.
    async fn listen_all(
        &self,
        senders: &std::collections::HashMap<&'static str, tokio::sync::broadcast::Sender<String>>,
    ) -> Result<()> {
        let (mut cfg, tls) = parse_url(&self.options).map_err(StoreError::Unavailable)?;
        // In the background: no request waits for it, so a busy server gets more time.
        let patience = self.options.connect_timeout.max(Duration::from_secs(5));
        cfg.connect_timeout(patience);
        let (client, mut connection) = tokio::time::timeout(patience, cfg.connect(tls))
            .await
            .map_err(|_| StoreError::Unavailable("connecting timed out".into()))?
            .map_err(err)?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let pump = tokio::spawn(async move {
            use futures_util::StreamExt as _;
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(m)) = messages.next().await {
                if let tokio_postgres::AsyncMessage::Notification(n) = m
                    && tx
                        .send((n.channel().to_string(), n.payload().to_string()))
                        .is_err()
                {
                    break;
                }
            }
        });
        let listen: String = CHANNELS.iter().map(|c| format!("LISTEN {c};")).collect();
        let listening = tokio::time::timeout(self.statement_timeout, client.batch_execute(&listen))
            .await
            .map_err(|_| StoreError::Unavailable("LISTEN timed out".into()))
            .and_then(|r| r.map_err(err));
        if let Err(e) = listening {
            pump.abort();
            return Err(e);
        }
        // Listening (again): whatever was notified before is unknown.
        for s in senders.values() {
            let _ = s.send(String::new());
        }
        while let Some((channel, payload)) = rx.recv().await {
            if let Some(s) = senders.get(channel.as_str()) {
                let _ = s.send(payload);
            }
        }
        drop(client);
        Ok(())
    }
}

/// A stored SP with its private keys still encrypted.
fn sp_row(r: &Row) -> Result<(ServiceProvider, Option<String>, Option<String>)> {
    Ok((
        ServiceProvider {
            id: SpId(get(r, "id")?),
            entity_id: get(r, "entity_id")?,
            host_url: get(r, "host_url")?,
            certificate_pem: get(r, "certificate_pem")?,
            private_key_pem: None,
            next_certificate_pem: get(r, "next_certificate_pem")?,
            next_private_key_pem: None,
            version: get(r, "version")?,
        },
        get(r, "private_key_pem")?,
        get(r, "next_private_key_pem")?,
    ))
}

fn idp_row(r: &Row) -> Result<IdentityProvider> {
    let corrupt =
        |what: &str, e: &dyn std::fmt::Display| StoreError::Corrupt(format!("{what}: {e}"));
    let sso_binding: String = get(r, "sso_binding")?;
    let slo_binding: String = get(r, "slo_binding")?;
    let username: String = get(r, "username_mapping")?;
    let trust: String = get(r, "trust")?;
    let endpoints: String = get(r, "endpoints")?;
    let checked: Option<i64> = get(r, "metadata_checked_at")?;
    Ok(IdentityProvider {
        id: IdpId(get(r, "id")?),
        name: get(r, "name")?,
        entity_id: get(r, "entity_id")?,
        sso_url: get(r, "sso_url")?,
        sso_binding: Binding::parse(&sso_binding)
            .ok_or_else(|| corrupt("binding", &sso_binding))?,
        slo_url: get(r, "slo_url")?,
        slo_response_url: get(r, "slo_response_url")?,
        slo_binding: Binding::parse(&slo_binding)
            .ok_or_else(|| corrupt("binding", &slo_binding))?,
        username: serde_json::from_str(&username).map_err(|e| corrupt("username mapping", &e))?,
        trust: serde_json::from_str(&trust).map_err(|e| corrupt("trust", &e))?,
        allow_sha1: get(r, "allow_sha1")?,
        name_id_format: get(r, "name_id_format")?,
        authn_context: get(r, "authn_context")?,
        endpoints: serde_json::from_str(&endpoints).map_err(|e| corrupt("IdP endpoints", &e))?,
        metadata_url: get(r, "metadata_url")?,
        metadata_status: match checked {
            Some(at) => Some(MetadataStatus {
                checked_at: UnixTime::from_millis(at),
                error: get(r, "metadata_error")?,
            }),
            None => None,
        },
        version: get(r, "version")?,
    })
}

fn tenant_row(r: &Row) -> Result<Tenant> {
    let domains: String = get(r, "login_domains")?;
    Ok(Tenant {
        id: TenantId(get(r, "id")?),
        name: get(r, "name")?,
        display_name: get(r, "display_name")?,
        login_domains: serde_json::from_str(&domains)
            .map_err(|e| StoreError::Corrupt(format!("login domains: {e}")))?,
        sso_enabled: get(r, "sso_enabled")?,
        idp_id: get::<Option<i64>>(r, "idp_id")?.map(IdpId),
        slo_enabled: get(r, "slo_enabled")?,
        idp_initiated: get(r, "idp_initiated")?,
        username_rule: UsernameRule {
            strip_domain: get(r, "strip_domain")?,
            case_insensitive: get(r, "case_insensitive")?,
        },
        version: get(r, "version")?,
    })
}

fn user_row(r: &Row) -> Result<User> {
    let roles: String = get(r, "roles")?;
    Ok(User {
        id: UserId(get(r, "id")?),
        tenant_id: TenantId(get(r, "tenant_id")?),
        username: get(r, "username")?,
        display_name: get(r, "display_name")?,
        circuit_user: get(r, "circuit_user")?,
        password_hash: get::<Option<String>>(r, "password_hash")?.map(Secret::new),
        roles: serde_json::from_str(&roles)
            .map_err(|e| StoreError::Corrupt(format!("roles: {e}")))?,
        must_change_password: get(r, "must_change_password")?,
        version: get(r, "version")?,
    })
}

fn api_client_row(r: &Row) -> Result<ApiClient> {
    let role: String = get(r, "role")?;
    let tenant: Option<i64> = get(r, "tenant_id")?;
    let role = match (role.as_str(), tenant) {
        ("central-admin", None) => ApiRole::CentralAdmin,
        ("tenant-manager", Some(t)) => ApiRole::TenantManager(TenantId(t)),
        _ => return Err(StoreError::Corrupt(format!("API client role: {role}"))),
    };
    Ok(ApiClient {
        id: get(r, "id")?,
        name: get(r, "name")?,
        token_hash: get(r, "token_hash")?,
        token_prefix: get(r, "token_prefix")?,
        role,
        created_at: at(r, "created_at")?,
        last_used_at: get::<Option<i64>>(r, "last_used_at")?.map(UnixTime::from_millis),
        version: get(r, "version")?,
    })
}

fn circuit_row(r: &Row) -> Result<CircuitSettings> {
    use crate::domain::circuit::{ProviderKind, TokenAuth};
    let kind: String = get(r, "kind")?;
    let token_auth: String = get(r, "token_auth")?;
    Ok(CircuitSettings {
        tenant_id: TenantId(get(r, "tenant_id")?),
        tenant: get(r, "tenant")?,
        enabled: get(r, "enabled")?,
        kind: ProviderKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("circuit_settings.kind: {kind:?}")))?,
        client_id: get(r, "client_id")?,
        client_secret: get(r, "client_secret")?,
        portal_url: get(r, "portal_url")?,
        login_url: get(r, "login_url")?,
        authorize_path: get(r, "authorize_path")?,
        token_path: get(r, "token_path")?,
        profile_path: get(r, "profile_path")?,
        scope: get(r, "scope")?,
        profile_field: get(r, "profile_field")?,
        pkce: get(r, "pkce")?,
        token_auth: TokenAuth::parse(&token_auth).ok_or_else(|| {
            StoreError::Corrupt(format!("circuit_settings.token_auth: {token_auth:?}"))
        })?,
        version: get(r, "version")?,
        updated_at: at(r, "updated_at")?,
    })
}

fn session_row(r: &Row) -> Result<SessionRow> {
    let data: Vec<u8> = get(r, "data")?;
    Ok(SessionRow {
        id: get(r, "id")?,
        agent: sessions::agent_of(&data),
        data,
        expires_at: at(r, "expires_at")?,
    })
}

fn capture_row(r: &Row) -> Result<CapturedResponse> {
    Ok(CapturedResponse {
        id: get(r, "id")?,
        tenant: get(r, "tenant")?,
        reference: get(r, "reference")?,
        at: at(r, "at")?,
        reason: get(r, "reason")?,
        message: get(r, "message")?,
    })
}

/// The columns that find a session, as PostgreSQL stores text.
fn session_columns(row: &SessionRow) -> SessionColumns {
    let (tenant, user, idp, name_id, index) = super::session_columns(row);
    let clean = |v: Option<String>| v.map(|v| txt(&v).into_owned());
    (tenant, user, idp, clean(name_id), clean(index))
}

const SESSION_INSERT: &str = "INSERT INTO sessions (id, data, expires_at, tenant_id, user_id, idp_id, name_id, session_index) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

#[async_trait]
impl Store for PgStore {
    async fn sp_insert(&self, sp: NewServiceProvider) -> Result<ServiceProvider> {
        let sealed = self.keys.seal(sp.private_key_pem.as_ref())?;
        let r = self
            .one(
                "INSERT INTO service_providers (entity_id, host_url, certificate_pem, private_key_pem) \
                 VALUES ($1, $2, $3, $4) RETURNING id",
                &[&txt(&sp.entity_id), &txt(&sp.host_url), &sp.certificate_pem, &sealed],
            )
            .await?;
        Ok(ServiceProvider {
            id: SpId(get(&r, "id")?),
            entity_id: sp.entity_id,
            host_url: sp.host_url,
            certificate_pem: sp.certificate_pem,
            private_key_pem: sp.private_key_pem,
            next_certificate_pem: None,
            next_private_key_pem: None,
            version: 1,
        })
    }

    async fn sp_list(&self) -> Result<Vec<ServiceProvider>> {
        self.query("SELECT * FROM service_providers ORDER BY id", &[])
            .await?
            .iter()
            .map(|r| {
                let (mut sp, k, next) = sp_row(r)?;
                sp.private_key_pem = self.keys.open(&sp, false, k)?;
                sp.next_private_key_pem = self.keys.open(&sp, true, next)?;
                Ok(sp)
            })
            .collect()
    }

    async fn sp_delete(&self, id: SpId) -> Result<bool> {
        Ok(self
            .exec("DELETE FROM service_providers WHERE id = $1", &[&id.0])
            .await?
            > 0)
    }

    async fn sp_update(&self, sp: &ServiceProvider) -> Result<()> {
        let sealed = self.keys.seal(sp.private_key_pem.as_ref())?;
        let next_sealed = self.keys.seal(sp.next_private_key_pem.as_ref())?;
        let n = self
            .exec(
                "UPDATE service_providers SET entity_id = $1, host_url = $2, certificate_pem = $3, private_key_pem = $4, \
                 next_certificate_pem = $5, next_private_key_pem = $6, version = version + 1 WHERE id = $7 AND version = $8",
                &[
                    &txt(&sp.entity_id),
                    &txt(&sp.host_url),
                    &sp.certificate_pem,
                    &sealed,
                    &sp.next_certificate_pem,
                    &next_sealed,
                    &sp.id.0,
                    &sp.version,
                ],
            )
            .await?;
        stale_unless(n, "service provider")
    }

    async fn idp_insert(&self, idp: NewIdentityProvider) -> Result<IdentityProvider> {
        let r = self
            .one(
                "INSERT INTO identity_providers (name, entity_id, sso_url, sso_binding, slo_url, slo_response_url, slo_binding, \
                 username_mapping, trust, allow_sha1, name_id_format, authn_context, endpoints, metadata_url) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
                &[
                    &txt(&idp.name),
                    &txt(&idp.entity_id),
                    &txt(&idp.sso_url),
                    &idp.sso_binding.as_str(),
                    &opt_txt(&idp.slo_url),
                    &opt_txt(&idp.slo_response_url),
                    &idp.slo_binding.as_str(),
                    &json(&idp.username),
                    &json(&idp.trust),
                    &idp.allow_sha1,
                    &opt_txt(&idp.name_id_format),
                    &opt_txt(&idp.authn_context),
                    &json(&idp.endpoints),
                    &opt_txt(&idp.metadata_url),
                ],
            )
            .await?;
        Ok(idp.with_id(IdpId(get(&r, "id")?)))
    }

    async fn idp_update(&self, idp: &IdentityProvider) -> Result<()> {
        let n = self
            .exec(
                "UPDATE identity_providers SET name = $1, entity_id = $2, sso_url = $3, sso_binding = $4, slo_url = $5, \
                 slo_response_url = $6, slo_binding = $7, username_mapping = $8, trust = $9, allow_sha1 = $10, name_id_format = $11, \
                 authn_context = $12, endpoints = $13, metadata_url = $14, version = version + 1 WHERE id = $15 AND version = $16",
                &[
                    &txt(&idp.name),
                    &txt(&idp.entity_id),
                    &txt(&idp.sso_url),
                    &idp.sso_binding.as_str(),
                    &opt_txt(&idp.slo_url),
                    &opt_txt(&idp.slo_response_url),
                    &idp.slo_binding.as_str(),
                    &json(&idp.username),
                    &json(&idp.trust),
                    &idp.allow_sha1,
                    &opt_txt(&idp.name_id_format),
                    &opt_txt(&idp.authn_context),
                    &json(&idp.endpoints),
                    &opt_txt(&idp.metadata_url),
                    &idp.id.0,
                    &idp.version,
                ],
            )
            .await?;
        stale_unless(n, "identity provider")
    }

    async fn idp_list(&self) -> Result<Vec<IdentityProvider>> {
        self.query("SELECT * FROM identity_providers ORDER BY id", &[])
            .await?
            .iter()
            .map(idp_row)
            .collect()
    }

    async fn idp_get(&self, id: IdpId) -> Result<Option<IdentityProvider>> {
        self.opt("SELECT * FROM identity_providers WHERE id = $1", &[&id.0])
            .await?
            .as_ref()
            .map(idp_row)
            .transpose()
    }

    async fn idp_by_entity_id(&self, entity_id: &str) -> Result<Option<IdentityProvider>> {
        self.opt(
            "SELECT * FROM identity_providers WHERE entity_id = $1",
            &[&txt(entity_id)],
        )
        .await?
        .as_ref()
        .map(idp_row)
        .transpose()
    }

    async fn idp_delete(&self, id: IdpId) -> Result<bool> {
        let mut c = self.conn().await?;
        let tx = self.timed(c.transaction()).await?;
        // Locks the IdP row first: a tenant taking it up meanwhile waits, then fails (foreign key).
        self.timed(tx.execute(
            "SELECT 1 FROM identity_providers WHERE id = $1 FOR UPDATE",
            &[&id.0],
        ))
        .await?;
        let users = self
            .timed(tx.query(
                "SELECT name FROM tenants WHERE idp_id = $1 ORDER BY name",
                &[&id.0],
            ))
            .await?;
        if !users.is_empty() {
            let names: Vec<String> = users
                .iter()
                .map(|r| get(r, "name"))
                .collect::<Result<_>>()?;
            return Err(StoreError::Conflict(format!(
                "the identity provider is used by tenant(s) {}",
                names.join(", ")
            )));
        }
        let n = self
            .timed(tx.execute("DELETE FROM identity_providers WHERE id = $1", &[&id.0]))
            .await?;
        self.timed(tx.commit()).await?;
        Ok(n > 0)
    }

    async fn tenant_insert(&self, t: NewTenant) -> Result<Tenant> {
        let r = self
            .one(
                "INSERT INTO tenants (name, login_domains, sso_enabled, idp_id, slo_enabled, idp_initiated, strip_domain, \
                 case_insensitive, display_name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                &[
                    &txt(&t.name),
                    &json(&t.login_domains),
                    &t.sso_enabled,
                    &t.idp_id.map(|i| i.0),
                    &t.slo_enabled,
                    &t.idp_initiated,
                    &t.username_rule.strip_domain,
                    &t.username_rule.case_insensitive,
                    &txt(&t.display_name),
                ],
            )
            .await?;
        Ok(Tenant {
            id: TenantId(get(&r, "id")?),
            name: t.name,
            display_name: t.display_name,
            login_domains: t.login_domains,
            sso_enabled: t.sso_enabled,
            idp_id: t.idp_id,
            slo_enabled: t.slo_enabled,
            idp_initiated: t.idp_initiated,
            username_rule: t.username_rule,
            version: 1,
        })
    }

    async fn tenant_update(&self, t: &Tenant, renormalised: &[(UserId, String)]) -> Result<()> {
        let mut c = self.conn().await?;
        let tx = self.timed(c.transaction()).await?;
        let n = self
            .timed(tx.execute(
                "UPDATE tenants SET name = $1, login_domains = $2, sso_enabled = $3, idp_id = $4, slo_enabled = $5, \
                 idp_initiated = $6, strip_domain = $7, case_insensitive = $8, display_name = $9, version = version + 1 \
                 WHERE id = $10 AND version = $11",
                &[
                    &txt(&t.name),
                    &json(&t.login_domains),
                    &t.sso_enabled,
                    &t.idp_id.map(|i| i.0),
                    &t.slo_enabled,
                    &t.idp_initiated,
                    &t.username_rule.strip_domain,
                    &t.username_rule.case_insensitive,
                    &txt(&t.display_name),
                    &t.id.0,
                    &t.version,
                ],
            ))
            .await?;
        stale_unless(n, "tenant")?;
        if !renormalised.is_empty() {
            // Cleared first, so that a swap of two names is no conflict; two users that now
            // compare equal make the whole change fail (unique constraint).
            self.timed(tx.execute(
                "UPDATE users SET username_norm = '#' || id WHERE tenant_id = $1",
                &[&t.id.0],
            ))
            .await?;
            let st = self
                .timed(tx.prepare(
                    "UPDATE users SET username_norm = $1 WHERE id = $2 AND tenant_id = $3",
                ))
                .await?;
            for (id, norm) in renormalised {
                self.timed(tx.execute(&st, &[&txt(norm), &id.0, &t.id.0]))
                    .await?;
            }
        }
        self.timed(tx.commit()).await
    }

    async fn tenant_list(&self) -> Result<Vec<Tenant>> {
        self.query("SELECT * FROM tenants ORDER BY id", &[])
            .await?
            .iter()
            .map(tenant_row)
            .collect()
    }

    async fn tenant_get(&self, id: TenantId) -> Result<Option<Tenant>> {
        self.opt("SELECT * FROM tenants WHERE id = $1", &[&id.0])
            .await?
            .as_ref()
            .map(tenant_row)
            .transpose()
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>> {
        self.opt("SELECT * FROM tenants WHERE name = $1", &[&txt(name)])
            .await?
            .as_ref()
            .map(tenant_row)
            .transpose()
    }

    async fn tenant_delete(&self, id: TenantId) -> Result<bool> {
        let mut c = self.conn().await?;
        let tx = self.timed(c.transaction()).await?;
        self.timed(tx.execute("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE", &[&id.0]))
            .await?;
        let users: i64 = get(
            &self
                .timed(tx.query_one(
                    "SELECT count(*) AS n FROM users WHERE tenant_id = $1",
                    &[&id.0],
                ))
                .await?,
            "n",
        )?;
        if users > 0 {
            return Err(StoreError::Conflict(format!(
                "the tenant still has {users} user(s); delete them first"
            )));
        }
        self.timed(tx.execute("DELETE FROM api_clients WHERE tenant_id = $1", &[&id.0]))
            .await?;
        let n = self
            .timed(tx.execute("DELETE FROM tenants WHERE id = $1", &[&id.0]))
            .await?;
        self.timed(tx.commit()).await?;
        Ok(n > 0)
    }

    async fn user_insert(&self, u: NewUser) -> Result<User> {
        let r = self
            .one(
                "INSERT INTO users (tenant_id, username, username_norm, display_name, circuit_user, circuit_user_norm, \
                 password_hash, roles, must_change_password) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                &[
                    &u.tenant_id.0,
                    &txt(&u.username),
                    &txt(&u.username_norm),
                    &txt(&u.display_name),
                    &opt_txt(&u.circuit_user),
                    &opt_txt(&u.circuit_user_norm),
                    &u.password_hash.as_ref().map(|h| h.secret()),
                    &json(&u.roles),
                    &u.must_change_password,
                ],
            )
            .await?;
        Ok(User {
            id: UserId(get(&r, "id")?),
            tenant_id: u.tenant_id,
            username: u.username,
            display_name: u.display_name,
            circuit_user: u.circuit_user,
            password_hash: u.password_hash,
            roles: u.roles,
            must_change_password: u.must_change_password,
            version: 1,
        })
    }

    async fn user_update(
        &self,
        u: &User,
        username_norm: &str,
        circuit_norm: Option<&str>,
    ) -> Result<()> {
        let n = self
            .exec(
                "UPDATE users SET tenant_id = $1, username = $2, username_norm = $3, display_name = $4, circuit_user = $5, \
                 circuit_user_norm = $6, password_hash = $7, roles = $8, must_change_password = $9, version = version + 1 \
                 WHERE id = $10 AND version = $11",
                &[
                    &u.tenant_id.0,
                    &txt(&u.username),
                    &txt(username_norm),
                    &txt(&u.display_name),
                    &opt_txt(&u.circuit_user),
                    &circuit_norm.map(txt),
                    &u.password_hash.as_ref().map(|h| h.secret()),
                    &json(&u.roles),
                    &u.must_change_password,
                    &u.id.0,
                    &u.version,
                ],
            )
            .await?;
        stale_unless(n, "user")
    }

    async fn user_list(&self, tenant: Option<TenantId>) -> Result<Vec<User>> {
        let rows = match tenant {
            Some(t) => {
                self.query(
                    "SELECT * FROM users WHERE tenant_id = $1 ORDER BY username_norm COLLATE \"C\"",
                    &[&t.0],
                )
                .await?
            }
            None => {
                self.query(
                    "SELECT * FROM users ORDER BY tenant_id, username_norm COLLATE \"C\"",
                    &[],
                )
                .await?
            }
        };
        rows.iter().map(user_row).collect()
    }

    async fn user_by_norm(&self, tenant: TenantId, username_norm: &str) -> Result<Option<User>> {
        self.opt(
            "SELECT * FROM users WHERE tenant_id = $1 AND username_norm = $2",
            &[&tenant.0, &txt(username_norm)],
        )
        .await?
        .as_ref()
        .map(user_row)
        .transpose()
    }

    async fn user_get(&self, id: UserId) -> Result<Option<User>> {
        self.opt("SELECT * FROM users WHERE id = $1", &[&id.0])
            .await?
            .as_ref()
            .map(user_row)
            .transpose()
    }

    async fn user_by_circuit(&self, tenant: TenantId, circuit_norm: &str) -> Result<Option<User>> {
        self.opt(
            "SELECT * FROM users WHERE tenant_id = $1 AND circuit_user_norm = $2",
            &[&tenant.0, &txt(circuit_norm)],
        )
        .await?
        .as_ref()
        .map(user_row)
        .transpose()
    }

    async fn user_delete(&self, id: UserId) -> Result<bool> {
        let mut c = self.conn().await?;
        let tx = self.timed(c.transaction()).await?;
        self.timed(tx.execute("DELETE FROM sessions WHERE user_id = $1", &[&id.0]))
            .await?;
        let n = self
            .timed(tx.execute("DELETE FROM users WHERE id = $1", &[&id.0]))
            .await?;
        self.timed(tx.commit()).await?;
        Ok(n > 0)
    }

    async fn user_count_with_role(&self, role: Role) -> Result<u64> {
        let r = self
            .one(
                "SELECT count(*) AS n FROM users WHERE jsonb_exists(roles::jsonb, $1)",
                &[&role.as_str()],
            )
            .await?;
        Ok(get::<i64>(&r, "n")?.max(0) as u64)
    }

    async fn circuit_get(&self, tenant: TenantId) -> Result<Option<CircuitSettings>> {
        self.opt(
            "SELECT c.*, t.name AS tenant FROM circuit_settings c JOIN tenants t ON t.id = c.tenant_id WHERE c.tenant_id = $1",
            &[&tenant.0],
        )
        .await?
        .as_ref()
        .map(circuit_row)
        .transpose()
    }

    async fn circuit_list(&self) -> Result<Vec<CircuitSettings>> {
        self.query(
            "SELECT c.*, t.name AS tenant FROM circuit_settings c JOIN tenants t ON t.id = c.tenant_id ORDER BY t.name COLLATE \"C\"",
            &[],
        )
        .await?
        .iter()
        .map(circuit_row)
        .collect()
    }

    async fn circuit_put(&self, c: &CircuitSettings) -> Result<CircuitSettings> {
        let p: [P<'_>; 16] = [
            &c.tenant_id.0,
            &c.enabled,
            &c.kind.as_str(),
            &c.client_id,
            &c.client_secret,
            &c.portal_url,
            &c.login_url,
            &c.authorize_path,
            &c.token_path,
            &c.profile_path,
            &c.scope,
            &c.profile_field,
            &c.pkce,
            &c.token_auth.as_str(),
            &c.updated_at.millis(),
            &c.version,
        ];
        // Insert when none is stored (version 0), else update the version read: one statement
        // each, so that two concurrent edits cannot both win.
        let n = if c.version == 0 {
            self.exec(
                "INSERT INTO circuit_settings (tenant_id, enabled, kind, client_id, client_secret, portal_url, login_url, \
                 authorize_path, token_path, profile_path, scope, profile_field, pkce, token_auth, updated_at, version) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16::BIGINT + 1) \
                 ON CONFLICT (tenant_id) DO NOTHING",
                &p,
            )
            .await?
        } else {
            self.exec(
                "UPDATE circuit_settings SET enabled = $2, kind = $3, client_id = $4, client_secret = $5, portal_url = $6, \
                 login_url = $7, authorize_path = $8, token_path = $9, profile_path = $10, scope = $11, profile_field = $12, \
                 pkce = $13, token_auth = $14, updated_at = $15, version = version + 1 WHERE tenant_id = $1 AND version = $16",
                &p,
            )
            .await?
        };
        stale_unless(n, "Circuit settings")?;
        let mut saved = c.clone();
        saved.version += 1;
        Ok(saved)
    }

    async fn oauth_pending_put(&self, p: &PendingOAuth) -> Result<()> {
        self.exec(
            "INSERT INTO oauth_pending (state_hash, tenant_id, sp_id, binding_hash, relay_target, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &p.state_hash,
                &p.tenant_id.0,
                &p.sp_id.0,
                &p.binding_hash,
                &txt(&p.relay_target),
                &p.expires_at.millis(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn oauth_pending_take(&self, state_hash: &str) -> Result<Option<PendingOAuth>> {
        self.opt(
            "DELETE FROM oauth_pending WHERE state_hash = $1 \
             RETURNING state_hash, tenant_id, sp_id, binding_hash, relay_target, expires_at",
            &[&txt(state_hash)],
        )
        .await?
        .map(|r| {
            Ok(PendingOAuth {
                state_hash: get(&r, "state_hash")?,
                tenant_id: TenantId(get(&r, "tenant_id")?),
                sp_id: SpId(get(&r, "sp_id")?),
                binding_hash: get(&r, "binding_hash")?,
                relay_target: get(&r, "relay_target")?,
                expires_at: at(&r, "expires_at")?,
            })
        })
        .transpose()
    }

    async fn pending_logout_put(&self, p: &PendingLogout) -> Result<()> {
        self.exec(
            "INSERT INTO pending_logouts (id, idp_id, expires_at) VALUES ($1, $2, $3)",
            &[&txt(&p.id), &p.idp_id.0, &p.expires_at.millis()],
        )
        .await?;
        Ok(())
    }

    async fn pending_logout_take(&self, id: &str, now: UnixTime) -> Result<Option<PendingLogout>> {
        let p = self
            .opt(
                "DELETE FROM pending_logouts WHERE id = $1 RETURNING id, idp_id, expires_at",
                &[&txt(id)],
            )
            .await?
            .map(|r| {
                Ok::<_, StoreError>(PendingLogout {
                    id: get(&r, "id")?,
                    idp_id: IdpId(get(&r, "idp_id")?),
                    expires_at: at(&r, "expires_at")?,
                })
            })
            .transpose()?;
        Ok(p.filter(|p| p.expires_at > now))
    }

    async fn replay_remember(&self, key: &str, expires: UnixTime, now: UnixTime) -> Result<bool> {
        // One statement: insert, or take over an entry that has expired; a live entry stays and
        // no row changes, which is the replay (atomic across instances).
        let n = self
            .exec(
                "INSERT INTO replay_cache (key, expires_at) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE replay_cache.expires_at <= $3",
                &[&txt(key), &expires.millis(), &now.millis()],
            )
            .await?;
        Ok(n == 1)
    }

    async fn replay_seen(&self, key: &str, now: UnixTime) -> Result<bool> {
        Ok(self
            .opt(
                "SELECT 1 FROM replay_cache WHERE key = $1 AND expires_at > $2",
                &[&txt(key), &now.millis()],
            )
            .await?
            .is_some())
    }

    async fn session_create(&self, row: &SessionRow) -> Result<bool> {
        let (tenant, user, idp, name_id, index) = session_columns(row);
        let n = self
            .exec(
                &format!("{SESSION_INSERT} ON CONFLICT (id) DO NOTHING"),
                &[
                    &row.id,
                    &row.data,
                    &row.expires_at.millis(),
                    &tenant,
                    &user,
                    &idp,
                    &name_id,
                    &index,
                ],
            )
            .await?;
        Ok(n == 1)
    }

    async fn session_save(&self, row: &SessionRow) -> Result<()> {
        let (tenant, user, idp, name_id, index) = session_columns(row);
        self.exec(
            &format!(
                "{SESSION_INSERT} ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at, \
                 tenant_id = excluded.tenant_id, user_id = excluded.user_id, idp_id = excluded.idp_id, \
                 name_id = excluded.name_id, session_index = excluded.session_index"
            ),
            &[
                &row.id,
                &row.data,
                &row.expires_at.millis(),
                &tenant,
                &user,
                &idp,
                &name_id,
                &index,
            ],
        )
        .await?;
        Ok(())
    }

    async fn session_load(&self, id: &str, now: UnixTime) -> Result<Option<SessionRow>> {
        self.opt(
            "SELECT id, data, expires_at FROM sessions WHERE id = $1 AND expires_at > $2",
            &[&txt(id), &now.millis()],
        )
        .await?
        .as_ref()
        .map(session_row)
        .transpose()
    }

    async fn session_delete(&self, id: &str) -> Result<()> {
        self.exec("DELETE FROM sessions WHERE id = $1", &[&txt(id)])
            .await?;
        Ok(())
    }

    async fn sessions_by_saml(
        &self,
        idp: IdpId,
        name_id: &str,
        session_indexes: &[String],
    ) -> Result<Vec<String>> {
        let rows = self
            .query(
                "SELECT id, session_index FROM sessions WHERE idp_id = $1 AND name_id = $2",
                &[&idp.0, &txt(name_id)],
            )
            .await?;
        let mut out = Vec::new();
        for r in &rows {
            let si: Option<String> = get(r, "session_index")?;
            if session_indexes.is_empty()
                || si.is_some_and(|si| session_indexes.iter().any(|s| *txt(s) == si))
            {
                out.push(get(r, "id")?);
            }
        }
        Ok(out)
    }

    async fn sessions_of_tenant(
        &self,
        tenant: Option<TenantId>,
        now: UnixTime,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<SessionRow>> {
        self.query(
            "SELECT id, data, expires_at FROM sessions WHERE user_id IS NOT NULL AND expires_at > $1 \
             AND ($2::BIGINT IS NULL OR tenant_id = $2) ORDER BY seq DESC LIMIT $3 OFFSET $4",
            &[
                &now.millis(),
                &tenant.map(|t| t.0),
                &i64::from(limit),
                &(offset.min(i64::MAX as u64) as i64),
            ],
        )
        .await?
        .iter()
        .map(session_row)
        .collect()
    }

    async fn session_count(&self, now: UnixTime) -> Result<u64> {
        let r = self
            .one(
                "SELECT count(*) AS n FROM sessions WHERE expires_at > $1",
                &[&now.millis()],
            )
            .await?;
        Ok(get::<i64>(&r, "n")?.max(0) as u64)
    }

    async fn admin_session_put(&self, s: &AdminSessionRow) -> Result<()> {
        self.exec(
            "INSERT INTO admin_sessions (id_hash, user_id, created_at, last_seen, expires_at) VALUES ($1, $2, $3, $4, $5)",
            &[
                &s.id_hash,
                &s.user_id.0,
                &s.created_at.millis(),
                &s.last_seen.millis(),
                &s.expires_at.millis(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn admin_session_get(
        &self,
        id_hash: &str,
        now: UnixTime,
    ) -> Result<Option<AdminSessionRow>> {
        self.opt(
            "SELECT id_hash, user_id, created_at, last_seen, expires_at FROM admin_sessions WHERE id_hash = $1 AND expires_at > $2",
            &[&txt(id_hash), &now.millis()],
        )
        .await?
        .map(|r| {
            Ok(AdminSessionRow {
                id_hash: get(&r, "id_hash")?,
                user_id: UserId(get(&r, "user_id")?),
                created_at: at(&r, "created_at")?,
                last_seen: at(&r, "last_seen")?,
                expires_at: at(&r, "expires_at")?,
            })
        })
        .transpose()
    }

    async fn admin_session_touch(&self, id_hash: &str, last_seen: UnixTime) -> Result<()> {
        self.exec(
            "UPDATE admin_sessions SET last_seen = $1 WHERE id_hash = $2",
            &[&last_seen.millis(), &txt(id_hash)],
        )
        .await?;
        Ok(())
    }

    async fn admin_session_delete(&self, id_hash: &str) -> Result<()> {
        self.exec(
            "DELETE FROM admin_sessions WHERE id_hash = $1",
            &[&txt(id_hash)],
        )
        .await?;
        Ok(())
    }

    async fn api_client_insert(&self, a: &ApiClient) -> Result<ApiClient> {
        let (role, tenant) = api_role_columns(&a.role);
        let r = self
            .one(
                "INSERT INTO api_clients (name, token_hash, token_prefix, role, tenant_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[
                    &txt(&a.name),
                    &a.token_hash,
                    &a.token_prefix,
                    &role,
                    &tenant,
                    &a.created_at.millis(),
                ],
            )
            .await?;
        Ok(ApiClient {
            id: get(&r, "id")?,
            version: 1,
            last_used_at: None,
            ..a.clone()
        })
    }

    async fn api_client_list(&self) -> Result<Vec<ApiClient>> {
        self.query("SELECT * FROM api_clients ORDER BY name COLLATE \"C\"", &[])
            .await?
            .iter()
            .map(api_client_row)
            .collect()
    }

    async fn api_client_by_token(&self, token_hash: &str) -> Result<Option<ApiClient>> {
        self.opt(
            "SELECT * FROM api_clients WHERE token_hash = $1",
            &[&txt(token_hash)],
        )
        .await?
        .as_ref()
        .map(api_client_row)
        .transpose()
    }

    async fn api_client_update(&self, a: &ApiClient) -> Result<()> {
        let (role, tenant) = api_role_columns(&a.role);
        let n = self
            .exec(
                "UPDATE api_clients SET name = $1, token_hash = $2, token_prefix = $3, role = $4, tenant_id = $5, \
                 version = version + 1 WHERE id = $6 AND version = $7",
                &[
                    &txt(&a.name),
                    &a.token_hash,
                    &a.token_prefix,
                    &role,
                    &tenant,
                    &a.id,
                    &a.version,
                ],
            )
            .await?;
        stale_unless(n, "API client")
    }

    async fn api_client_used(&self, id: i64, at: UnixTime) -> Result<()> {
        self.exec(
            "UPDATE api_clients SET last_used_at = $1 WHERE id = $2",
            &[&at.millis(), &id],
        )
        .await?;
        Ok(())
    }

    async fn api_client_delete(&self, id: i64) -> Result<bool> {
        Ok(self
            .exec("DELETE FROM api_clients WHERE id = $1", &[&id])
            .await?
            > 0)
    }

    async fn audit_record(&self, e: &AuditEntry) -> Result<()> {
        self.exec(
            "INSERT INTO audit_log (at, actor, action, object, before, after) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &e.at.millis(),
                &txt(&e.actor),
                &e.action,
                &txt(&e.object),
                &opt_txt(&e.before),
                &opt_txt(&e.after),
            ],
        )
        .await?;
        Ok(())
    }

    async fn audit_list(
        &self,
        object_prefix: Option<&str>,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        self.query(
            "SELECT id, at, actor, action, object, before, after FROM audit_log \
             WHERE ($1::TEXT IS NULL OR starts_with(object, $1)) AND id < $2 ORDER BY id DESC LIMIT $3",
            &[
                &object_prefix.map(txt),
                &before_id.unwrap_or(i64::MAX),
                &i64::from(limit),
            ],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(AuditEntry {
                id: get(r, "id")?,
                at: at(r, "at")?,
                actor: get(r, "actor")?,
                action: get(r, "action")?,
                object: get(r, "object")?,
                before: get(r, "before")?,
                after: get(r, "after")?,
            })
        })
        .collect()
    }

    async fn idp_metadata_status(&self, id: IdpId, status: &MetadataStatus) -> Result<()> {
        self.exec(
            "UPDATE identity_providers SET metadata_checked_at = $1, metadata_error = $2 WHERE id = $3",
            &[&status.checked_at.millis(), &opt_txt(&status.error), &id.0],
        )
        .await?;
        Ok(())
    }

    async fn capture_put(
        &self,
        c: &CapturedResponse,
        per_tenant: u32,
        total: u32,
        drop_before: UnixTime,
    ) -> Result<()> {
        let mut conn = self.conn().await?;
        let tx = self.timed(conn.transaction()).await?;
        self.timed(tx.execute(
            "INSERT INTO failure_captures (tenant, reference, at, reason, message) VALUES ($1, $2, $3, $4, $5)",
            &[
                &txt(&c.tenant),
                &c.reference,
                &c.at.millis(),
                &c.reason,
                &c.message.as_deref().map(txt).unwrap_or_default(),
            ],
        ))
        .await?;
        self.timed(tx.execute(
            "DELETE FROM failure_captures WHERE tenant = $1 AND id NOT IN \
             (SELECT id FROM failure_captures WHERE tenant = $1 ORDER BY id DESC LIMIT $2)",
            &[&txt(&c.tenant), &i64::from(per_tenant)],
        ))
        .await?;
        self.timed(tx.execute(
            "DELETE FROM failure_captures WHERE id NOT IN (SELECT id FROM failure_captures ORDER BY id DESC LIMIT $1)",
            &[&i64::from(total)],
        ))
        .await?;
        self.timed(tx.execute(
            "DELETE FROM failure_captures WHERE at < $1",
            &[&drop_before.millis()],
        ))
        .await?;
        self.timed(tx.commit()).await
    }

    async fn capture_list(&self, tenant: &str) -> Result<Vec<CapturedResponse>> {
        self.query(
            "SELECT id, tenant, reference, at, reason, NULL::TEXT AS message FROM failure_captures WHERE tenant = $1 ORDER BY id DESC",
            &[&txt(tenant)],
        )
        .await?
        .iter()
        .map(capture_row)
        .collect()
    }

    async fn capture_get(&self, tenant: &str, id: i64) -> Result<Option<CapturedResponse>> {
        self.opt(
            "SELECT id, tenant, reference, at, reason, message FROM failure_captures WHERE tenant = $1 AND id = $2",
            &[&txt(tenant), &id],
        )
        .await?
        .as_ref()
        .map(capture_row)
        .transpose()
    }

    async fn activity_add(&self, rows: &[ActivityRow], keep_from: i64) -> Result<()> {
        let mut c = self.conn().await?;
        let tx = self.timed(c.transaction()).await?;
        let st = self
            .timed(tx.prepare(
                "INSERT INTO activity_hours (tenant, hour, successes, failures) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant, hour) DO UPDATE SET successes = activity_hours.successes + excluded.successes, \
                 failures = activity_hours.failures + excluded.failures",
            ))
            .await?;
        // Rows in one order on every instance: two adding at once cannot deadlock.
        let mut sorted: Vec<&ActivityRow> = rows.iter().collect();
        sorted.sort_by(|a, b| (&a.tenant, a.hour).cmp(&(&b.tenant, b.hour)));
        for r in sorted {
            self.timed(tx.execute(
                &st,
                &[
                    &txt(&r.tenant),
                    &r.hour,
                    &(r.successes.min(i64::MAX as u64) as i64),
                    &(r.failures.min(i64::MAX as u64) as i64),
                ],
            ))
            .await?;
        }
        self.timed(tx.execute("DELETE FROM activity_hours WHERE hour < $1", &[&keep_from]))
            .await?;
        self.timed(tx.commit()).await
    }

    async fn activity_hours(&self, tenant: &str, from: i64) -> Result<Vec<ActivityRow>> {
        self.query(
            "SELECT tenant, hour, successes, failures FROM activity_hours WHERE tenant = $1 AND hour >= $2 ORDER BY hour",
            &[&txt(tenant), &from],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(ActivityRow {
                tenant: get(r, "tenant")?,
                hour: get(r, "hour")?,
                successes: get::<i64>(r, "successes")?.max(0) as u64,
                failures: get::<i64>(r, "failures")?.max(0) as u64,
            })
        })
        .collect()
    }

    async fn totp_get(&self, user: UserId) -> Result<Option<TotpRow>> {
        self.opt(
            "SELECT secret, last_step, enabled_at FROM admin_totp WHERE user_id = $1",
            &[&user.0],
        )
        .await?
        .map(|r| {
            Ok(TotpRow {
                secret: get(&r, "secret")?,
                last_step: get(&r, "last_step")?,
                enabled_at: at(&r, "enabled_at")?,
            })
        })
        .transpose()
    }

    async fn totp_put(&self, user: UserId, row: &TotpRow) -> Result<()> {
        self.exec(
            "INSERT INTO admin_totp (user_id, secret, last_step, enabled_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, last_step = excluded.last_step, \
             enabled_at = excluded.enabled_at",
            &[&user.0, &row.secret, &row.last_step, &row.enabled_at.millis()],
        )
        .await?;
        Ok(())
    }

    async fn totp_delete(&self, user: UserId) -> Result<bool> {
        Ok(self
            .exec("DELETE FROM admin_totp WHERE user_id = $1", &[&user.0])
            .await?
            > 0)
    }

    async fn totp_use_step(&self, user: UserId, step: i64) -> Result<bool> {
        Ok(self
            .exec(
                "UPDATE admin_totp SET last_step = $1 WHERE user_id = $2 AND last_step < $1",
                &[&step, &user.0],
            )
            .await?
            > 0)
    }

    async fn setting(&self, key: &str) -> Result<Option<String>> {
        self.opt("SELECT value FROM settings WHERE key = $1", &[&txt(key)])
            .await?
            .map(|r| get(&r, "value"))
            .transpose()
    }

    async fn setting_put(&self, key: &str, value: &str) -> Result<()> {
        self.exec(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&txt(key), &txt(value)],
        )
        .await?;
        Ok(())
    }

    async fn failure_record(&self, f: &SignInFailure) -> Result<()> {
        self.exec(
            "INSERT INTO signin_failures (at, reference, endpoint, tenant, idp, reason, detail, client, repeats, username) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &f.at.millis(),
                &txt(&f.reference),
                &txt(&f.endpoint),
                &opt_txt(&f.tenant),
                &opt_txt(&f.idp),
                &txt(&f.reason),
                &txt(&f.detail),
                &opt_txt(&f.client),
                &(f.repeats.min(i64::MAX as u64) as i64),
                &opt_txt(&f.username),
            ],
        )
        .await?;
        Ok(())
    }

    async fn failure_repeats(&self, reference: &str, repeats: u64) -> Result<()> {
        self.exec(
            "UPDATE signin_failures SET repeats = $1 WHERE reference = $2",
            &[&(repeats.min(i64::MAX as u64) as i64), &txt(reference)],
        )
        .await?;
        Ok(())
    }

    async fn failures_recent(&self, limit: u32) -> Result<Vec<SignInFailure>> {
        self.query(
            "SELECT at, reference, endpoint, tenant, idp, reason, detail, client, repeats, username \
             FROM signin_failures ORDER BY id DESC LIMIT $1",
            &[&i64::from(limit)],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(SignInFailure {
                at: at(r, "at")?,
                reference: get(r, "reference")?,
                endpoint: get(r, "endpoint")?,
                tenant: get(r, "tenant")?,
                idp: get(r, "idp")?,
                reason: get(r, "reason")?,
                detail: get(r, "detail")?,
                client: get(r, "client")?,
                repeats: get::<i64>(r, "repeats")?.max(0) as u64,
                username: get(r, "username")?,
            })
        })
        .collect()
    }

    async fn server_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>> {
        // One statement: two instances starting together both read the one that was stored.
        let r = self
            .one(
                "WITH ins AS (INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING value) \
                 SELECT value FROM ins UNION ALL SELECT value FROM server_secrets WHERE name = $1 LIMIT 1",
                &[&txt(name), &candidate],
            )
            .await?;
        get(&r, "value")
    }

    async fn counter_add(
        &self,
        key: &str,
        n: i64,
        now: UnixTime,
        expires: UnixTime,
    ) -> Result<Option<(i64, UnixTime)>> {
        // One statement: concurrent additions on several instances all count.
        let r = self
            .one(
                "INSERT INTO shared_counters (key, value, updated_at, expires_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (key) DO UPDATE SET \
                 value = CASE WHEN shared_counters.expires_at <= $3 THEN $2 ELSE shared_counters.value + $2 END, \
                 updated_at = $3, expires_at = $4 RETURNING value",
                &[&txt(key), &n, &now.millis(), &expires.millis()],
            )
            .await?;
        Ok(Some((get(&r, "value")?, now)))
    }

    async fn counter_get(
        &self,
        key: &str,
        now: UnixTime,
    ) -> Result<Option<Option<(i64, UnixTime)>>> {
        let r = self
            .opt(
                "SELECT value, updated_at FROM shared_counters WHERE key = $1 AND expires_at > $2",
                &[&txt(key), &now.millis()],
            )
            .await?;
        Ok(Some(match r {
            Some(r) => Some((get(&r, "value")?, at(&r, "updated_at")?)),
            None => None,
        }))
    }

    async fn counter_delete(&self, key: &str) -> Result<()> {
        self.exec("DELETE FROM shared_counters WHERE key = $1", &[&txt(key)])
            .await?;
        Ok(())
    }

    async fn ready(&self) -> Result<()> {
        let have = self.schema_version().await?;
        let want = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
        if have < want {
            return Err(StoreError::Unavailable(format!(
                "the database has schema {have}; this build needs {want}"
            )));
        }
        Ok(())
    }

    fn stats(&self) -> StoreStats {
        let s = self.pool.status();
        StoreStats {
            statements: Some(self.stats.statements.load(Ordering::Relaxed)),
            statement_micros: Some(self.stats.statement_micros.load(Ordering::Relaxed)),
            unavailable: Some(self.stats.unavailable.load(Ordering::Relaxed)),
            pool_open: Some(s.size as u64),
            pool_in_use: Some(s.size.saturating_sub(s.available) as u64),
            pool_waiting: Some(s.waiting as u64),
            config_reloads: None,
        }
    }

    async fn startup_lock(&self) -> Result<Option<StartupLock>> {
        let c = self.conn().await?;
        // Waits for another instance's first start to finish (no statement timeout: that may
        // take a few seconds, making keys).
        tokio::time::timeout(
            Duration::from_secs(60),
            c.batch_execute(&format!(
                "SET statement_timeout = 0; SELECT pg_advisory_lock({STARTUP_LOCK})"
            )),
        )
        .await
        .map_err(|_| {
            StoreError::Unavailable("another instance held the start-up lock for 60 s".into())
        })?
        .map_err(err)?;
        // Released with the session: the connection leaves the pool and closes when the lock is
        // dropped.
        Ok(Some(StartupLock::new(deadpool_postgres::Object::take(c))))
    }

    async fn backup(&self, _dest: &std::path::Path) -> Result<()> {
        // Refused (not "unavailable": the database answers; this is the wrong tool for it).
        Err(StoreError::Conflict(
            "the store is PostgreSQL: back it up with pg_dump (or the server's own backups)".into(),
        ))
    }

    async fn purge_expired(&self, now: UnixTime, batch: u32, failure_rows: u64) -> Result<u64> {
        let mut c = self.conn().await?;
        let tx = self.timed(c.transaction()).await?;
        // One instance purges at a time; the others find the lock taken and leave it.
        let mine: bool = get(
            &self
                .timed(tx.query_one(
                    "SELECT pg_try_advisory_xact_lock($1) AS mine",
                    &[&PURGE_LOCK],
                ))
                .await?,
            "mine",
        )?;
        if !mine {
            return Ok(0);
        }
        let mut n = 0;
        for (table, key) in [
            ("pending_logouts", "id"),
            ("oauth_pending", "state_hash"),
            ("replay_cache", "key"),
            ("sessions", "id"),
            ("admin_sessions", "id_hash"),
            ("shared_counters", "key"),
        ] {
            // Rows a login holds right now are skipped (the next round takes them).
            let sql = format!(
                "DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)"
            );
            n = n.max(
                self.timed(tx.execute(&sql, &[&now.millis(), &i64::from(batch)]))
                    .await?,
            );
        }
        self.timed(tx.execute(
            "DELETE FROM signin_failures WHERE id <= (SELECT max(id) FROM signin_failures) - $1",
            &[&(failure_rows.min(i64::MAX as u64) as i64)],
        ))
        .await?;
        self.timed(tx.execute(
            "DELETE FROM failure_captures WHERE at <= $1",
            &[&(now.millis() - crate::web::capture::KEEP_SECS * 1000)],
        ))
        .await?;
        self.timed(tx.commit()).await?;
        Ok(n)
    }
}
