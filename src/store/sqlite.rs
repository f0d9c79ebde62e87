//! The embedded default: one SQLite file in WAL mode, through rusqlite.
//!
//! Statements are short (an indexed lookup or a one-row write: a few microseconds), so they run
//! inline on the calling task, like any other bit of CPU work, instead of being handed to a worker
//! thread and back (measured: that handoff cost more than the SAML verification itself). Writes go
//! through one connection (SQLite has one writer at a time), reads through several. The WAL is
//! checkpointed by a background thread every 100 ms, never inside a request's commit, and
//! restarted every second (a pause of a few milliseconds).
//!
//! Durability: `synchronous=NORMAL` in WAL mode loses nothing a process crash (SIGKILL) can take;
//! only a power loss can lose the last commits. `durability = "full"` makes every commit wait for
//! the disk.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use super::sp_keys::SpKeys;
use super::*;

/// Every 10 checkpoint ticks of 100 ms (1 s), the WAL is restarted (see the checkpointer).
const RESTART_TICKS: u64 = 10;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_initial.sql")),
    (
        2,
        include_str!("../../migrations/sqlite/0002_hostile_clients.sql"),
    ),
    (
        3,
        include_str!("../../migrations/sqlite/0003_web_manager.sql"),
    ),
    (
        4,
        include_str!("../../migrations/sqlite/0004_totp_and_refresh.sql"),
    ),
    (5, include_str!("../../migrations/sqlite/0005_circuit.sql")),
];

/// Durability of commits against power loss (a process crash loses nothing either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    #[default]
    Normal,
    Full,
}

struct Inner {
    /// Encrypts and decrypts the SP private keys (see [`SqliteStore::use_secrets`]).
    keys: SpKeys,
    write: Mutex<Connection>,
    /// Empty for an in-memory database: reads use the writer.
    read: Vec<Mutex<Connection>>,
    closed: std::sync::atomic::AtomicBool,
    /// The checkpointer of a store opened without the background thread (tests).
    manual: Mutex<Option<Checkpointer>>,
}

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

fn err(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, msg) = &e {
        let m = msg.clone().unwrap_or_default();
        match f.extended_code {
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                return StoreError::Conflict(format!(
                    "already exists: {}",
                    m.trim_start_matches("UNIQUE constraint failed: ")
                ));
            }
            rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => {
                return StoreError::Conflict("still referenced by another object".into());
            }
            _ => {}
        }
    }
    StoreError::Unavailable(e.to_string())
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn configure(c: &Connection, durability: Durability) -> rusqlite::Result<()> {
    c.busy_timeout(Duration::from_secs(10))?;
    c.pragma_update(None, "foreign_keys", true)?;
    c.pragma_update(None, "temp_store", "memory")?;
    c.pragma_update(
        None,
        "synchronous",
        if durability == Durability::Full {
            "FULL"
        } else {
            "NORMAL"
        },
    )?;
    // Checkpoints run in the background thread, not in a request's commit.
    c.pragma_update(None, "wal_autocheckpoint", 0)?;
    c.set_prepared_statement_cache_capacity(64);
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and applies the migrations.
    pub async fn open(path: &Path, durability: Durability) -> Result<Self> {
        let store = Self::open_inner(path, durability).await?;
        store.start_checkpointer(path, durability);
        Ok(store)
    }

    async fn open_inner(path: &Path, durability: Durability) -> Result<Self> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            create_private_dir(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        // The database holds keys and password hashes: owner-only. SQLite gives its -wal and -shm
        // files the database file's permissions, so creating (or tightening) it first covers all.
        make_private_file(path).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", path.display()))
        })?;
        let write = Connection::open(path).map_err(err)?;
        // 1 KiB pages (taken only when the file is created): a login changes a handful of pages
        // in random places (replay entry, session id, indexes), and each commit writes every page
        // it changed to the log, so smaller pages write a quarter of the bytes of the default.
        write.pragma_update(None, "page_size", 1024).map_err(err)?;
        write
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        configure(&write, durability).map_err(err)?;
        migrate(&write)?;
        let mut read = Vec::new();
        for _ in 0..4 {
            let c = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(err)?;
            configure(&c, durability).map_err(err)?;
            read.push(Mutex::new(c));
        }
        let store = SqliteStore {
            inner: Arc::new(Inner {
                keys: SpKeys::default(),
                write: Mutex::new(write),
                read,
                closed: false.into(),
                manual: Mutex::new(None),
            }),
        };
        Ok(store)
    }

    /// Opens an existing database to read only (the admin commands that only list): nothing is
    /// created or migrated, and every write fails.
    pub async fn open_read_only(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(StoreError::Unavailable(
                "no database here yet (`ssogate serve` or a command that changes something creates it)"
                    .into(),
            ));
        }
        let c = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        c.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                keys: SpKeys::default(),
                write: Mutex::new(c),
                read: Vec::new(),
                closed: false.into(),
                manual: Mutex::new(None),
            }),
        })
    }

    /// A private in-memory database (tests): one connection for everything.
    pub async fn memory() -> Result<Self> {
        let c = Connection::open_in_memory().map_err(err)?;
        configure(&c, Durability::Normal).map_err(err)?;
        migrate(&c)?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                keys: SpKeys::ephemeral(),
                write: Mutex::new(c),
                read: Vec::new(),
                closed: false.into(),
                manual: Mutex::new(None),
            }),
        })
    }

    /// Refuses every later operation, as a database that is down would.
    pub async fn close(&self) {
        self.inner
            .closed
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Checkpoints the WAL every 100 ms from its own connection (a thread that ends with the store),
    /// restarting it every [`RESTART_TICKS`] ticks; see [`Checkpointer::step`].
    fn start_checkpointer(&self, path: &Path, durability: Durability) {
        let weak = Arc::downgrade(&self.inner);
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("ssogate-checkpoint".into())
            .spawn(move || {
                let Some(mut cp) = Checkpointer::new(&path, durability) else {
                    return;
                };
                let mut tick = 0u64;
                loop {
                    std::thread::sleep(Duration::from_millis(100));
                    tick += 1;
                    let Some(inner) = weak.upgrade() else { return };
                    if inner.closed.load(std::sync::atomic::Ordering::SeqCst) {
                        return;
                    }
                    cp.step(&inner, tick.is_multiple_of(RESTART_TICKS));
                }
            })
            .ok();
    }

    /// Opens (creating if needed) the database at `path` without the background checkpointer:
    /// the caller runs each checkpoint with [`Self::checkpoint_step`] (tests that count
    /// checkpoints instead of waiting for them).
    pub async fn open_without_checkpointer(path: &Path, durability: Durability) -> Result<Self> {
        let store = Self::open_inner(path, durability).await?;
        let cp = Checkpointer::new(path, durability).ok_or_else(|| {
            StoreError::Unavailable("cannot open the checkpoint connection".into())
        })?;
        *store.inner.manual.lock().unwrap_or_else(|p| p.into_inner()) = Some(cp);
        Ok(store)
    }

    /// One checkpoint, as the background thread runs it every 100 ms (`restart`: as it does every
    /// second). Only for a store opened with [`Self::open_without_checkpointer`].
    pub fn checkpoint_step(&self, restart: bool) {
        let mut m = self.inner.manual.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cp) = m.as_mut() {
            cp.step(&self.inner, restart);
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the database is closed".into()));
        }
        Ok(())
    }

    /// Loads the secrets key the SP private keys are kept under, and encrypts any stored in
    /// clear (a database of schema 4 or older): in one transaction, with `secure_delete` on and
    /// the WAL truncated after, so that no copy in clear is left in the file or its log. Returns
    /// how many keys it encrypted. A store holds one key for its life.
    pub fn use_secrets(&self, key: Arc<crate::secrets::SecretsKey>) -> Result<u64> {
        self.set_secrets(key.clone())?;
        self.seal_clear_keys(&key)
    }

    /// Loads the secrets key without writing anything (a store opened to read only).
    pub fn set_secrets(&self, key: Arc<crate::secrets::SecretsKey>) -> Result<()> {
        self.inner.keys.set(key)
    }

    fn seal_clear_keys(&self, key: &crate::secrets::SecretsKey) -> Result<u64> {
        let mut c = self.writer()?;
        let clear: Vec<(i64, Option<String>, Option<String>)> = all(
            &c,
            "SELECT id, private_key_pem, next_private_key_pem FROM service_providers \
             WHERE private_key_pem NOT LIKE 'v1.%' OR next_private_key_pem NOT LIKE 'v1.%'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        if clear.is_empty() {
            return Ok(0);
        }
        c.pragma_update(None, "secure_delete", true).map_err(err)?;
        let done = (|| {
            let tx = c.transaction().map_err(err)?;
            let mut n = 0;
            for (id, k, next) in &clear {
                let mut seal = |v: &Option<String>| {
                    let (v, sealed) = SpKeys::seal_stored(key, v);
                    n += u64::from(sealed);
                    v
                };
                let (k, next) = (seal(k), seal(next));
                tx.execute(
                    "UPDATE service_providers SET private_key_pem = ?, next_private_key_pem = ? WHERE id = ?",
                    params![k, next, id],
                )
                .map_err(err)?;
            }
            tx.commit().map_err(err)?;
            Ok(n)
        })();
        let _ = c.pragma_update(None, "secure_delete", false);
        let n = done?;
        // The pages that held the keys in clear are in the main file until a checkpoint copies
        // the new ones over them; truncate the log too.
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .optional()
            .map_err(err)?;
        Ok(n)
    }

    fn writer(&self) -> Result<MutexGuard<'_, Connection>> {
        self.check_open()?;
        // A panic while holding the lock cannot leave a transaction open: rusqlite rolls back on drop.
        Ok(self.inner.write.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn reader(&self) -> Result<MutexGuard<'_, Connection>> {
        self.check_open()?;
        if self.inner.read.is_empty() {
            return self.writer();
        }
        for m in &self.inner.read {
            if let Ok(g) = m.try_lock() {
                return Ok(g);
            }
        }
        Ok(self.inner.read[0].lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// What the checkpointer keeps between its steps: its own connection, the database file (to sync
/// it), and the frame counts last synced and last restarted (an idle store is left alone).
///
/// What makes a commit wait is an fsync inside a lock, and an fsync costs what is dirty in the
/// file it syncs. So everything slow happens outside the locks: a PASSIVE checkpoint (which syncs
/// the log, then copies it into the database) and then an fsync of the database file, so that its
/// dirty pages reach the disk 100 ms at a time. Once a second a RESTART, with every connection's
/// lock held, copies the few frames written since and lets the next write begin the log again;
/// its fsyncs find almost nothing to write.
struct Checkpointer {
    c: Connection,
    db_file: Option<std::fs::File>,
    synced: (i64, i64),
    restarted: (i64, i64),
}

impl Checkpointer {
    fn new(path: &Path, durability: Durability) -> Option<Checkpointer> {
        let c = Connection::open(path).ok()?;
        configure(&c, durability).ok()?;
        // The same file SQLite writes: its fsync flushes the pages the checkpoint copied.
        let db_file = std::fs::File::open(path).ok();
        Some(Checkpointer {
            c,
            db_file,
            synced: (0, 0),
            restarted: (0, 0),
        })
    }

    fn step(&mut self, inner: &Inner, restart: bool) {
        // PASSIVE: never waits for readers or the writer; copies what it can.
        let (log, copied) = self
            .c
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            })
            .unwrap_or((0, 0));
        // A PASSIVE checkpoint that cannot copy the whole log (under continuous writes, never)
        // does not sync the database file; this does.
        if copied > 0
            && (log, copied) != self.synced
            && let Some(f) = &self.db_file
        {
            if let Err(e) = f.sync_data() {
                tracing::warn!(error = %e, "cannot sync the database file");
            }
            self.synced = (log, copied);
        }
        // Under continuous writes a PASSIVE checkpoint never catches up with the log, which then
        // never restarts: the WAL file and its shared-memory index (mapped into this process)
        // grow without end, and every read gets slower. A RESTART would sleep in SQLite's busy
        // handler until no reader uses the log, and readers never pause by themselves under load:
        // so it runs with every connection's lock held, which takes a few milliseconds now that
        // the slow part has happened above.
        if restart && log > 0 && (log, copied) != self.restarted {
            self.restarted = (log, copied);
            let _writer = inner.write.lock().unwrap_or_else(|p| p.into_inner());
            let _readers: Vec<_> = inner
                .read
                .iter()
                .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
                .collect();
            let started = std::time::Instant::now();
            let r = self
                .c
                .query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(0));
            tracing::debug!(
                frames = log,
                busy = ?r,
                ms = started.elapsed().as_millis() as u64,
                "WAL restarted"
            );
        }
    }
}

/// Creates `dir` (and its parents) readable by the owner only (0700 on Unix).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Creates the file at `path` if it does not exist, and makes it owner-only (0600 on Unix).
fn make_private_file(path: &Path) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let f = o.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = f.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            f.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))?;
        }
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            if let Ok(m) = std::fs::metadata(&side)
                && m.permissions().mode() & 0o077 != 0
            {
                std::fs::set_permissions(
                    &side,
                    std::fs::Permissions::from_mode(m.permissions().mode() & 0o700),
                )?;
            }
        }
    }
    Ok(())
}

fn migrate(c: &Connection) -> Result<()> {
    c.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)",
        [],
    )
    .map_err(err)?;
    for &(version, sql) in MIGRATIONS {
        let done: Option<i64> = c
            .query_row(
                "SELECT version FROM schema_migrations WHERE version = ?",
                [version],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)?;
        if done.is_none() {
            c.execute_batch(&format!("BEGIN IMMEDIATE;\n{sql}\nINSERT INTO schema_migrations (version) VALUES ({version});\nCOMMIT;")).map_err(|e| {
                let _ = c.execute_batch("ROLLBACK");
                err(e)
            })?;
        }
    }
    Ok(())
}

const CIRCUIT_SELECT_ALL: &str = "SELECT c.*, t.name AS tenant FROM circuit_settings c \
     JOIN tenants t ON t.id = c.tenant_id ORDER BY t.name";
const CIRCUIT_SELECT_ONE: &str = "SELECT c.*, t.name AS tenant FROM circuit_settings c \
     JOIN tenants t ON t.id = c.tenant_id WHERE c.tenant_id = ?";

fn circuit_from_row(r: &Row<'_>) -> rusqlite::Result<CircuitSettings> {
    use crate::domain::circuit::{ProviderKind, TokenAuth};
    let text = |col: &str, v: String| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("circuit_settings.{col}: {v:?}").into(),
        )
    };
    let kind: String = r.get("kind")?;
    let token_auth: String = r.get("token_auth")?;
    Ok(CircuitSettings {
        tenant_id: TenantId(r.get("tenant_id")?),
        tenant: r.get("tenant")?,
        enabled: r.get("enabled")?,
        kind: ProviderKind::parse(&kind).ok_or_else(|| text("kind", kind.clone()))?,
        client_id: r.get("client_id")?,
        client_secret: r.get("client_secret")?,
        portal_url: r.get("portal_url")?,
        login_url: r.get("login_url")?,
        authorize_path: r.get("authorize_path")?,
        token_path: r.get("token_path")?,
        profile_path: r.get("profile_path")?,
        scope: r.get("scope")?,
        profile_field: r.get("profile_field")?,
        pkce: r.get("pkce")?,
        token_auth: TokenAuth::parse(&token_auth)
            .ok_or_else(|| text("token_auth", token_auth.clone()))?,
        version: r.get("version")?,
        updated_at: UnixTime::from_millis(r.get("updated_at")?),
    })
}

/// A service provider as stored: its private keys still encrypted.
type StoredSp = (ServiceProvider, Option<String>, Option<String>);

fn sp_from_row(r: &Row<'_>) -> rusqlite::Result<StoredSp> {
    Ok((
        sp_fields(r)?,
        r.get("private_key_pem")?,
        r.get("next_private_key_pem")?,
    ))
}

fn sp_fields(r: &Row<'_>) -> rusqlite::Result<ServiceProvider> {
    Ok(ServiceProvider {
        id: SpId(r.get("id")?),
        entity_id: r.get("entity_id")?,
        host_url: r.get("host_url")?,
        certificate_pem: r.get("certificate_pem")?,
        private_key_pem: None,
        next_certificate_pem: r.get("next_certificate_pem")?,
        next_private_key_pem: None,
        version: r.get("version")?,
    })
}

/// An IdP row with its JSON columns still as text (decoded outside rusqlite's closure).
struct IdpRow {
    idp: IdentityProvider,
    endpoints: String,
    sso_binding: String,
    slo_binding: String,
    username: String,
    trust: String,
}

fn idp_row(r: &Row<'_>) -> rusqlite::Result<IdpRow> {
    Ok(IdpRow {
        idp: IdentityProvider {
            id: IdpId(r.get("id")?),
            name: r.get("name")?,
            entity_id: r.get("entity_id")?,
            sso_url: r.get("sso_url")?,
            sso_binding: Binding::Redirect,
            slo_url: r.get("slo_url")?,
            slo_response_url: r.get("slo_response_url")?,
            slo_binding: Binding::Redirect,
            username: UsernameMapping::NameId,
            trust: TrustConfig::Certificates(Vec::new()),
            allow_sha1: r.get("allow_sha1")?,
            name_id_format: r.get("name_id_format")?,
            authn_context: r.get("authn_context")?,
            endpoints: IdpEndpoints::default(),
            metadata_url: r.get("metadata_url")?,
            metadata_status: r.get::<_, Option<i64>>("metadata_checked_at")?.map(|at| {
                MetadataStatus {
                    checked_at: UnixTime::from_millis(at),
                    error: r.get("metadata_error").ok().flatten(),
                }
            }),
            version: r.get("version")?,
        },
        endpoints: r.get("endpoints")?,
        sso_binding: r.get("sso_binding")?,
        slo_binding: r.get("slo_binding")?,
        username: r.get("username_mapping")?,
        trust: r.get("trust")?,
    })
}

fn idp_finish(row: IdpRow) -> Result<IdentityProvider> {
    let mut idp = row.idp;
    idp.sso_binding =
        Binding::parse(&row.sso_binding).ok_or_else(|| corrupt("binding", &row.sso_binding))?;
    idp.slo_binding =
        Binding::parse(&row.slo_binding).ok_or_else(|| corrupt("binding", &row.slo_binding))?;
    idp.username =
        serde_json::from_str(&row.username).map_err(|e| corrupt("username mapping", e))?;
    idp.trust = serde_json::from_str(&row.trust).map_err(|e| corrupt("trust", e))?;
    idp.endpoints =
        serde_json::from_str(&row.endpoints).map_err(|e| corrupt("IdP endpoints", e))?;
    // A store from before schema 2 knows only the locations in use.
    if idp.endpoints.sso.is_empty() {
        let url = idp.sso_url.clone();
        idp.endpoints.set_sso(idp.sso_binding, &url);
    }
    if idp.endpoints.slo.is_empty()
        && let Some(url) = idp.slo_url.clone()
    {
        let resp = idp.slo_response_url.clone();
        idp.endpoints
            .set_slo(idp.slo_binding, &url, resp.as_deref());
    }
    Ok(idp)
}

fn tenant_row(r: &Row<'_>) -> rusqlite::Result<(Tenant, String)> {
    Ok((
        Tenant {
            id: TenantId(r.get("id")?),
            name: r.get("name")?,
            display_name: r.get("display_name")?,
            login_domains: Vec::new(),
            sso_enabled: r.get("sso_enabled")?,
            idp_id: r.get::<_, Option<i64>>("idp_id")?.map(IdpId),
            slo_enabled: r.get("slo_enabled")?,
            idp_initiated: r.get("idp_initiated")?,
            username_rule: UsernameRule {
                strip_domain: r.get("strip_domain")?,
                case_insensitive: r.get("case_insensitive")?,
            },
            version: r.get("version")?,
        },
        r.get("login_domains")?,
    ))
}

fn tenant_finish((mut t, domains): (Tenant, String)) -> Result<Tenant> {
    t.login_domains = serde_json::from_str(&domains).map_err(|e| corrupt("login domains", e))?;
    Ok(t)
}

fn user_row(r: &Row<'_>) -> rusqlite::Result<(User, String)> {
    Ok((
        User {
            id: UserId(r.get("id")?),
            tenant_id: TenantId(r.get("tenant_id")?),
            username: r.get("username")?,
            display_name: r.get("display_name")?,
            circuit_user: r.get("circuit_user")?,
            password_hash: r
                .get::<_, Option<String>>("password_hash")?
                .map(Secret::new),
            roles: Vec::new(),
            must_change_password: r.get("must_change_password")?,
            version: r.get("version")?,
        },
        r.get("roles")?,
    ))
}

fn user_finish((mut u, roles): (User, String)) -> Result<User> {
    u.roles = serde_json::from_str(&roles).map_err(|e| corrupt("roles", e))?;
    Ok(u)
}

fn api_client_row(r: &Row<'_>) -> rusqlite::Result<Result<ApiClient>> {
    let role: String = r.get("role")?;
    let tenant: Option<i64> = r.get("tenant_id")?;
    let role = match (role.as_str(), tenant) {
        ("central-admin", None) => ApiRole::CentralAdmin,
        ("tenant-manager", Some(t)) => ApiRole::TenantManager(TenantId(t)),
        _ => return Ok(Err(corrupt("API client role", role))),
    };
    Ok(Ok(ApiClient {
        id: r.get("id")?,
        name: r.get("name")?,
        token_hash: r.get("token_hash")?,
        token_prefix: r.get("token_prefix")?,
        role,
        created_at: UnixTime::from_millis(r.get("created_at")?),
        last_used_at: r
            .get::<_, Option<i64>>("last_used_at")?
            .map(UnixTime::from_millis),
        version: r.get("version")?,
    }))
}

/// A `failure_captures` row: id, tenant, reference, at, reason, message (NULL in listings).
fn capture_row(r: &Row<'_>) -> rusqlite::Result<CapturedResponse> {
    Ok(CapturedResponse {
        id: r.get(0)?,
        tenant: r.get(1)?,
        reference: r.get(2)?,
        at: UnixTime::from_millis(r.get(3)?),
        reason: r.get(4)?,
        message: r.get(5)?,
    })
}

fn all<T>(
    c: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
    f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut st = c.prepare_cached(sql).map_err(err)?;
    let rows = st.query_map(p, f).map_err(err)?;
    rows.collect::<rusqlite::Result<Vec<T>>>().map_err(err)
}

const SESSION_UPSERT: &str = "INSERT INTO sessions (id, data, expires_at, tenant_id, user_id, idp_id, name_id, session_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";

#[async_trait]
impl Store for SqliteStore {
    async fn sp_insert(&self, sp: NewServiceProvider) -> Result<ServiceProvider> {
        let sealed = self.inner.keys.seal(sp.private_key_pem.as_ref())?;
        let c = self.writer()?;
        let id: i64 = c
            .query_row(
                "INSERT INTO service_providers (entity_id, host_url, certificate_pem, private_key_pem) VALUES (?, ?, ?, ?) RETURNING id",
                params![sp.entity_id, sp.host_url, sp.certificate_pem, sealed],
                |r| r.get(0),
            )
            .map_err(err)?;
        Ok(ServiceProvider {
            id: SpId(id),
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
        let stored = all(
            &*self.reader()?,
            "SELECT * FROM service_providers ORDER BY id",
            [],
            sp_from_row,
        )?;
        stored
            .into_iter()
            .map(|(mut sp, k, next)| {
                sp.private_key_pem = self.inner.keys.open(&sp, false, k)?;
                sp.next_private_key_pem = self.inner.keys.open(&sp, true, next)?;
                Ok(sp)
            })
            .collect()
    }

    async fn sp_delete(&self, id: SpId) -> Result<bool> {
        Ok(self
            .writer()?
            .execute("DELETE FROM service_providers WHERE id = ?", [id.0])
            .map_err(err)?
            > 0)
    }

    async fn sp_update(&self, sp: &ServiceProvider) -> Result<()> {
        let sealed = self.inner.keys.seal(sp.private_key_pem.as_ref())?;
        let next_sealed = self.inner.keys.seal(sp.next_private_key_pem.as_ref())?;
        let c = self.writer()?;
        let n = c
            .execute(
                "UPDATE service_providers SET entity_id = ?, host_url = ?, certificate_pem = ?, private_key_pem = ?, \
                 next_certificate_pem = ?, next_private_key_pem = ?, version = version + 1 WHERE id = ? AND version = ?",
                params![
                    sp.entity_id,
                    sp.host_url,
                    sp.certificate_pem,
                    sealed,
                    sp.next_certificate_pem,
                    next_sealed,
                    sp.id.0,
                    sp.version
                ],
            )
            .map_err(err)?;
        stale_unless(n as u64, "service provider")
    }

    async fn idp_insert(&self, idp: NewIdentityProvider) -> Result<IdentityProvider> {
        let c = self.writer()?;
        let id: i64 = c
            .query_row(
                "INSERT INTO identity_providers (name, entity_id, sso_url, sso_binding, slo_url, slo_response_url, slo_binding, \
                 username_mapping, trust, allow_sha1, name_id_format, authn_context, endpoints, metadata_url) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                params![
                    idp.name,
                    idp.entity_id,
                    idp.sso_url,
                    idp.sso_binding.as_str(),
                    idp.slo_url,
                    idp.slo_response_url,
                    idp.slo_binding.as_str(),
                    json(&idp.username),
                    json(&idp.trust),
                    idp.allow_sha1,
                    idp.name_id_format,
                    idp.authn_context,
                    json(&idp.endpoints),
                    idp.metadata_url
                ],
                |r| r.get(0),
            )
            .map_err(err)?;
        Ok(idp.with_id(IdpId(id)))
    }

    async fn idp_update(&self, idp: &IdentityProvider) -> Result<()> {
        let n = self.writer()?
            .execute(
                "UPDATE identity_providers SET name = ?, entity_id = ?, sso_url = ?, sso_binding = ?, slo_url = ?, slo_response_url = ?, \
                 slo_binding = ?, username_mapping = ?, trust = ?, allow_sha1 = ?, name_id_format = ?, authn_context = ?, endpoints = ?, \
                 metadata_url = ?, version = version + 1 WHERE id = ? AND version = ?",
                params![
                    idp.name,
                    idp.entity_id,
                    idp.sso_url,
                    idp.sso_binding.as_str(),
                    idp.slo_url,
                    idp.slo_response_url,
                    idp.slo_binding.as_str(),
                    json(&idp.username),
                    json(&idp.trust),
                    idp.allow_sha1,
                    idp.name_id_format,
                    idp.authn_context,
                    json(&idp.endpoints),
                    idp.metadata_url,
                    idp.id.0,
                    idp.version
                ],
            )
            .map_err(err)?;
        stale_unless(n as u64, "identity provider")
    }

    async fn idp_list(&self) -> Result<Vec<IdentityProvider>> {
        all(
            &*self.reader()?,
            "SELECT * FROM identity_providers ORDER BY id",
            [],
            idp_row,
        )?
        .into_iter()
        .map(idp_finish)
        .collect()
    }

    async fn idp_get(&self, id: IdpId) -> Result<Option<IdentityProvider>> {
        let row = self
            .reader()?
            .prepare_cached("SELECT * FROM identity_providers WHERE id = ?")
            .map_err(err)?
            .query_row([id.0], idp_row)
            .optional()
            .map_err(err)?;
        row.map(idp_finish).transpose()
    }

    async fn idp_by_entity_id(&self, entity_id: &str) -> Result<Option<IdentityProvider>> {
        let row = self
            .reader()?
            .prepare_cached("SELECT * FROM identity_providers WHERE entity_id = ?")
            .map_err(err)?
            .query_row([entity_id], idp_row)
            .optional()
            .map_err(err)?;
        row.map(idp_finish).transpose()
    }

    async fn idp_delete(&self, id: IdpId) -> Result<bool> {
        let mut c = self.writer()?;
        let tx = c.transaction().map_err(err)?;
        let users = all(
            &tx,
            "SELECT name FROM tenants WHERE idp_id = ? ORDER BY name",
            [id.0],
            |r| r.get::<_, String>(0),
        )?;
        if !users.is_empty() {
            return Err(StoreError::Conflict(format!(
                "the identity provider is used by tenant(s) {}",
                users.join(", ")
            )));
        }
        let n = tx
            .execute("DELETE FROM identity_providers WHERE id = ?", [id.0])
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(n > 0)
    }

    async fn tenant_insert(&self, t: NewTenant) -> Result<Tenant> {
        let c = self.writer()?;
        let id: i64 = c
            .query_row(
                "INSERT INTO tenants (name, login_domains, sso_enabled, idp_id, slo_enabled, idp_initiated, strip_domain, case_insensitive, display_name) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                params![
                    t.name,
                    json(&t.login_domains),
                    t.sso_enabled,
                    t.idp_id.map(|i| i.0),
                    t.slo_enabled,
                    t.idp_initiated,
                    t.username_rule.strip_domain,
                    t.username_rule.case_insensitive,
                    t.display_name
                ],
                |r| r.get(0),
            )
            .map_err(err)?;
        Ok(Tenant {
            id: TenantId(id),
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
        let mut c = self.writer()?;
        let tx = c.transaction().map_err(err)?;
        let n = tx.execute(
            "UPDATE tenants SET name = ?, login_domains = ?, sso_enabled = ?, idp_id = ?, slo_enabled = ?, idp_initiated = ?, \
             strip_domain = ?, case_insensitive = ?, display_name = ?, version = version + 1 WHERE id = ? AND version = ?",
            params![
                t.name,
                json(&t.login_domains),
                t.sso_enabled,
                t.idp_id.map(|i| i.0),
                t.slo_enabled,
                t.idp_initiated,
                t.username_rule.strip_domain,
                t.username_rule.case_insensitive,
                t.display_name,
                t.id.0,
                t.version
            ],
        )
        .map_err(err)?;
        stale_unless(n as u64, "tenant")?;
        // New compared forms: cleared first, so that a swap of two names is no conflict; two
        // users that now compare equal make the whole change fail (unique index).
        if !renormalised.is_empty() {
            tx.execute(
                "UPDATE users SET username_norm = '#' || id WHERE tenant_id = ?",
                [t.id.0],
            )
            .map_err(err)?;
            for (id, norm) in renormalised {
                tx.execute(
                    "UPDATE users SET username_norm = ? WHERE id = ? AND tenant_id = ?",
                    params![norm, id.0, t.id.0],
                )
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(())
    }

    async fn tenant_list(&self) -> Result<Vec<Tenant>> {
        all(
            &*self.reader()?,
            "SELECT * FROM tenants ORDER BY id",
            [],
            tenant_row,
        )?
        .into_iter()
        .map(tenant_finish)
        .collect()
    }

    async fn tenant_get(&self, id: TenantId) -> Result<Option<Tenant>> {
        let row = self
            .reader()?
            .prepare_cached("SELECT * FROM tenants WHERE id = ?")
            .map_err(err)?
            .query_row([id.0], tenant_row)
            .optional()
            .map_err(err)?;
        row.map(tenant_finish).transpose()
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>> {
        let row = self
            .reader()?
            .prepare_cached("SELECT * FROM tenants WHERE name = ?")
            .map_err(err)?
            .query_row([name], tenant_row)
            .optional()
            .map_err(err)?;
        row.map(tenant_finish).transpose()
    }

    async fn tenant_delete(&self, id: TenantId) -> Result<bool> {
        let mut c = self.writer()?;
        let tx = c.transaction().map_err(err)?;
        let users: i64 = tx
            .query_row(
                "SELECT count(*) FROM users WHERE tenant_id = ?",
                [id.0],
                |r| r.get(0),
            )
            .map_err(err)?;
        if users > 0 {
            return Err(StoreError::Conflict(format!(
                "the tenant still has {users} user(s); delete them first"
            )));
        }
        tx.execute("DELETE FROM api_clients WHERE tenant_id = ?", [id.0])
            .map_err(err)?;
        let n = tx
            .execute("DELETE FROM tenants WHERE id = ?", [id.0])
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(n > 0)
    }

    async fn user_get(&self, id: UserId) -> Result<Option<User>> {
        let row = self
            .reader()?
            .prepare_cached("SELECT * FROM users WHERE id = ?")
            .map_err(err)?
            .query_row([id.0], user_row)
            .optional()
            .map_err(err)?;
        row.map(user_finish).transpose()
    }

    async fn user_by_circuit(&self, tenant: TenantId, circuit_norm: &str) -> Result<Option<User>> {
        let row = self
            .reader()?
            .prepare_cached("SELECT * FROM users WHERE tenant_id = ? AND circuit_user_norm = ?")
            .map_err(err)?
            .query_row(params![tenant.0, circuit_norm], user_row)
            .optional()
            .map_err(err)?;
        row.map(user_finish).transpose()
    }

    async fn sessions_of_tenant(
        &self,
        tenant: Option<TenantId>,
        now: UnixTime,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<SessionRow>> {
        let rows = all(
            &*self.reader()?,
            "SELECT id, data, expires_at FROM sessions WHERE user_id IS NOT NULL AND expires_at > ? \
             AND (? IS NULL OR tenant_id = ?) ORDER BY rowid DESC LIMIT ? OFFSET ?",
            params![
                now.millis(),
                tenant.map(|t| t.0),
                tenant.map(|t| t.0),
                limit,
                offset as i64
            ],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            },
        )?;
        Ok(rows
            .into_iter()
            .map(|(id, data, exp)| SessionRow {
                id,
                agent: sessions::agent_of(&data),
                data,
                expires_at: UnixTime::from_millis(exp),
            })
            .collect())
    }

    async fn admin_session_put(&self, s: &AdminSessionRow) -> Result<()> {
        self.writer()?
            .execute(
                "INSERT INTO admin_sessions (id_hash, user_id, created_at, last_seen, expires_at) VALUES (?, ?, ?, ?, ?)",
                params![
                    s.id_hash,
                    s.user_id.0,
                    s.created_at.millis(),
                    s.last_seen.millis(),
                    s.expires_at.millis()
                ],
            )
            .map_err(err)?;
        Ok(())
    }

    async fn admin_session_get(
        &self,
        id_hash: &str,
        now: UnixTime,
    ) -> Result<Option<AdminSessionRow>> {
        self.reader()?
            .prepare_cached(
                "SELECT id_hash, user_id, created_at, last_seen, expires_at FROM admin_sessions WHERE id_hash = ? AND expires_at > ?",
            )
            .map_err(err)?
            .query_row(params![id_hash, now.millis()], |r| {
                Ok(AdminSessionRow {
                    id_hash: r.get(0)?,
                    user_id: UserId(r.get(1)?),
                    created_at: UnixTime::from_millis(r.get(2)?),
                    last_seen: UnixTime::from_millis(r.get(3)?),
                    expires_at: UnixTime::from_millis(r.get(4)?),
                })
            })
            .optional()
            .map_err(err)
    }

    async fn admin_session_touch(&self, id_hash: &str, last_seen: UnixTime) -> Result<()> {
        self.writer()?
            .prepare_cached("UPDATE admin_sessions SET last_seen = ? WHERE id_hash = ?")
            .map_err(err)?
            .execute(params![last_seen.millis(), id_hash])
            .map_err(err)?;
        Ok(())
    }

    async fn admin_session_delete(&self, id_hash: &str) -> Result<()> {
        self.writer()?
            .execute("DELETE FROM admin_sessions WHERE id_hash = ?", [id_hash])
            .map_err(err)?;
        Ok(())
    }

    async fn api_client_insert(&self, a: &ApiClient) -> Result<ApiClient> {
        let (role, tenant) = api_role_columns(&a.role);
        let id: i64 = self
            .writer()?
            .query_row(
                "INSERT INTO api_clients (name, token_hash, token_prefix, role, tenant_id, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                params![a.name, a.token_hash, a.token_prefix, role, tenant, a.created_at.millis()],
                |r| r.get(0),
            )
            .map_err(err)?;
        Ok(ApiClient {
            id,
            version: 1,
            last_used_at: None,
            ..a.clone()
        })
    }

    async fn api_client_list(&self) -> Result<Vec<ApiClient>> {
        all(
            &*self.reader()?,
            "SELECT * FROM api_clients ORDER BY name",
            [],
            api_client_row,
        )?
        .into_iter()
        .collect()
    }

    async fn api_client_by_token(&self, token_hash: &str) -> Result<Option<ApiClient>> {
        let row = self
            .reader()?
            .prepare_cached("SELECT * FROM api_clients WHERE token_hash = ?")
            .map_err(err)?
            .query_row([token_hash], api_client_row)
            .optional()
            .map_err(err)?;
        row.transpose()
    }

    async fn api_client_update(&self, a: &ApiClient) -> Result<()> {
        let (role, tenant) = api_role_columns(&a.role);
        let n = self
            .writer()?
            .execute(
                "UPDATE api_clients SET name = ?, token_hash = ?, token_prefix = ?, role = ?, tenant_id = ?, version = version + 1 \
                 WHERE id = ? AND version = ?",
                params![a.name, a.token_hash, a.token_prefix, role, tenant, a.id, a.version],
            )
            .map_err(err)?;
        stale_unless(n as u64, "API client")
    }

    async fn api_client_used(&self, id: i64, at: UnixTime) -> Result<()> {
        self.writer()?
            .prepare_cached("UPDATE api_clients SET last_used_at = ? WHERE id = ?")
            .map_err(err)?
            .execute(params![at.millis(), id])
            .map_err(err)?;
        Ok(())
    }

    async fn api_client_delete(&self, id: i64) -> Result<bool> {
        Ok(self
            .writer()?
            .execute("DELETE FROM api_clients WHERE id = ?", [id])
            .map_err(err)?
            > 0)
    }

    async fn audit_record(&self, e: &AuditEntry) -> Result<()> {
        self.writer()?
            .prepare_cached(
                "INSERT INTO audit_log (at, actor, action, object, before, after) VALUES (?, ?, ?, ?, ?, ?)",
            )
            .map_err(err)?
            .execute(params![e.at.millis(), e.actor, e.action, e.object, e.before, e.after])
            .map_err(err)?;
        Ok(())
    }

    async fn audit_list(
        &self,
        object_prefix: Option<&str>,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        // A prefix match by range, so the index serves it (no LIKE escaping either).
        let (from, to) = match object_prefix {
            Some(p) => (p.to_string(), format!("{p}\u{10FFFF}")),
            None => (String::new(), "\u{10FFFF}".to_string()),
        };
        all(
            &*self.reader()?,
            "SELECT id, at, actor, action, object, before, after FROM audit_log \
             WHERE object >= ? AND object < ? AND id < ? ORDER BY id DESC LIMIT ?",
            params![from, to, before_id.unwrap_or(i64::MAX), limit],
            |r| {
                Ok(AuditEntry {
                    id: r.get(0)?,
                    at: UnixTime::from_millis(r.get(1)?),
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    object: r.get(4)?,
                    before: r.get(5)?,
                    after: r.get(6)?,
                })
            },
        )
    }

    async fn setting(&self, key: &str) -> Result<Option<String>> {
        self.reader()?
            .prepare_cached("SELECT value FROM settings WHERE key = ?")
            .map_err(err)?
            .query_row([key], |r| r.get(0))
            .optional()
            .map_err(err)
    }

    async fn idp_metadata_status(&self, id: IdpId, status: &MetadataStatus) -> Result<()> {
        self.writer()?
            .execute(
                "UPDATE identity_providers SET metadata_checked_at = ?, metadata_error = ? WHERE id = ?",
                params![status.checked_at.millis(), status.error, id.0],
            )
            .map_err(err)?;
        Ok(())
    }

    async fn capture_put(
        &self,
        c: &CapturedResponse,
        per_tenant: u32,
        total: u32,
        drop_before: UnixTime,
    ) -> Result<()> {
        let mut conn = self.writer()?;
        let tx = conn.transaction().map_err(err)?;
        tx.execute(
            "INSERT INTO failure_captures (tenant, reference, at, reason, message) VALUES (?, ?, ?, ?, ?)",
            params![c.tenant, c.reference, c.at.millis(), c.reason, c.message],
        )
        .map_err(err)?;
        tx.execute(
            "DELETE FROM failure_captures WHERE tenant = ? AND id NOT IN \
             (SELECT id FROM failure_captures WHERE tenant = ? ORDER BY id DESC LIMIT ?)",
            params![c.tenant, c.tenant, per_tenant],
        )
        .map_err(err)?;
        tx.execute(
            "DELETE FROM failure_captures WHERE id NOT IN (SELECT id FROM failure_captures ORDER BY id DESC LIMIT ?)",
            [total],
        )
        .map_err(err)?;
        tx.execute(
            "DELETE FROM failure_captures WHERE at < ?",
            [drop_before.millis()],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    async fn capture_list(&self, tenant: &str) -> Result<Vec<CapturedResponse>> {
        all(
            &*self.reader()?,
            "SELECT id, tenant, reference, at, reason, NULL FROM failure_captures WHERE tenant = ? ORDER BY id DESC",
            [tenant],
            capture_row,
        )
    }

    async fn capture_get(&self, tenant: &str, id: i64) -> Result<Option<CapturedResponse>> {
        self.reader()?
            .prepare_cached(
                "SELECT id, tenant, reference, at, reason, message FROM failure_captures WHERE tenant = ? AND id = ?",
            )
            .map_err(err)?
            .query_row(params![tenant, id], capture_row)
            .optional()
            .map_err(err)
    }

    async fn activity_add(&self, rows: &[ActivityRow], keep_from: i64) -> Result<()> {
        let mut c = self.writer()?;
        let tx = c.transaction().map_err(err)?;
        {
            let mut add = tx
                .prepare_cached(
                    "INSERT INTO activity_hours (tenant, hour, successes, failures) VALUES (?, ?, ?, ?) \
                     ON CONFLICT (tenant, hour) DO UPDATE SET successes = successes + excluded.successes, \
                     failures = failures + excluded.failures",
                )
                .map_err(err)?;
            for r in rows {
                add.execute(params![
                    r.tenant,
                    r.hour,
                    r.successes as i64,
                    r.failures as i64
                ])
                .map_err(err)?;
            }
        }
        tx.execute("DELETE FROM activity_hours WHERE hour < ?", [keep_from])
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    async fn activity_hours(&self, tenant: &str, from: i64) -> Result<Vec<ActivityRow>> {
        all(
            &*self.reader()?,
            "SELECT tenant, hour, successes, failures FROM activity_hours WHERE tenant = ? AND hour >= ? ORDER BY hour",
            params![tenant, from],
            |r| {
                Ok(ActivityRow {
                    tenant: r.get(0)?,
                    hour: r.get(1)?,
                    successes: r.get::<_, i64>(2)? as u64,
                    failures: r.get::<_, i64>(3)? as u64,
                })
            },
        )
    }

    async fn totp_get(&self, user: UserId) -> Result<Option<TotpRow>> {
        self.reader()?
            .prepare_cached(
                "SELECT secret, last_step, enabled_at FROM admin_totp WHERE user_id = ?",
            )
            .map_err(err)?
            .query_row([user.0], |r| {
                Ok(TotpRow {
                    secret: r.get(0)?,
                    last_step: r.get(1)?,
                    enabled_at: UnixTime::from_millis(r.get(2)?),
                })
            })
            .optional()
            .map_err(err)
    }

    async fn totp_put(&self, user: UserId, row: &TotpRow) -> Result<()> {
        self.writer()?
            .execute(
                "INSERT INTO admin_totp (user_id, secret, last_step, enabled_at) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, last_step = excluded.last_step, \
                 enabled_at = excluded.enabled_at",
                params![user.0, row.secret, row.last_step, row.enabled_at.millis()],
            )
            .map_err(err)?;
        Ok(())
    }

    async fn totp_delete(&self, user: UserId) -> Result<bool> {
        Ok(self
            .writer()?
            .execute("DELETE FROM admin_totp WHERE user_id = ?", [user.0])
            .map_err(err)?
            > 0)
    }

    async fn totp_use_step(&self, user: UserId, step: i64) -> Result<bool> {
        Ok(self
            .writer()?
            .prepare_cached(
                "UPDATE admin_totp SET last_step = ? WHERE user_id = ? AND last_step < ?",
            )
            .map_err(err)?
            .execute(params![step, user.0, step])
            .map_err(err)?
            > 0)
    }

    async fn setting_put(&self, key: &str, value: &str) -> Result<()> {
        self.writer()?
            .execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(err)?;
        Ok(())
    }

    async fn user_insert(&self, u: NewUser) -> Result<User> {
        let c = self.writer()?;
        let id: i64 = c
            .query_row(
                "INSERT INTO users (tenant_id, username, username_norm, display_name, circuit_user, circuit_user_norm, password_hash, roles, \
                 must_change_password) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                params![
                    u.tenant_id.0,
                    u.username,
                    u.username_norm,
                    u.display_name,
                    u.circuit_user,
                    u.circuit_user_norm,
                    u.password_hash.as_ref().map(|h| h.secret()),
                    json(&u.roles),
                    u.must_change_password
                ],
                |r| r.get(0),
            )
            .map_err(err)?;
        Ok(User {
            id: UserId(id),
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
        let n = self.writer()?
            .execute(
                "UPDATE users SET tenant_id = ?, username = ?, username_norm = ?, display_name = ?, circuit_user = ?, circuit_user_norm = ?, \
                 password_hash = ?, roles = ?, must_change_password = ?, version = version + 1 WHERE id = ? AND version = ?",
                params![
                    u.tenant_id.0,
                    u.username,
                    username_norm,
                    u.display_name,
                    u.circuit_user,
                    circuit_norm,
                    u.password_hash.as_ref().map(|h| h.secret()),
                    json(&u.roles),
                    u.must_change_password,
                    u.id.0,
                    u.version
                ],
            )
            .map_err(err)?;
        stale_unless(n as u64, "user")
    }

    async fn user_list(&self, tenant: Option<TenantId>) -> Result<Vec<User>> {
        let c = self.reader()?;
        let rows = match tenant {
            Some(t) => all(
                &c,
                "SELECT * FROM users WHERE tenant_id = ? ORDER BY username_norm",
                [t.0],
                user_row,
            )?,
            None => all(
                &c,
                "SELECT * FROM users ORDER BY tenant_id, username_norm",
                [],
                user_row,
            )?,
        };
        rows.into_iter().map(user_finish).collect()
    }

    async fn user_by_norm(&self, tenant: TenantId, username_norm: &str) -> Result<Option<User>> {
        let row = self
            .reader()?
            .prepare_cached("SELECT * FROM users WHERE tenant_id = ? AND username_norm = ?")
            .map_err(err)?
            .query_row(params![tenant.0, username_norm], user_row)
            .optional()
            .map_err(err)?;
        row.map(user_finish).transpose()
    }

    async fn user_delete(&self, id: UserId) -> Result<bool> {
        let mut c = self.writer()?;
        let tx = c.transaction().map_err(err)?;
        tx.execute("DELETE FROM sessions WHERE user_id = ?", [id.0])
            .map_err(err)?;
        let n = tx
            .execute("DELETE FROM users WHERE id = ?", [id.0])
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(n > 0)
    }

    async fn user_count_with_role(&self, role: Role) -> Result<u64> {
        let n: i64 = self
            .reader()?
            .query_row(
                "SELECT count(*) FROM users, json_each(users.roles) WHERE json_each.value = ?",
                [role.as_str()],
                |r| r.get(0),
            )
            .map_err(err)?;
        Ok(n.max(0) as u64)
    }

    async fn session_count(&self, now: UnixTime) -> Result<u64> {
        self.reader()?
            .prepare_cached("SELECT count(*) FROM sessions WHERE expires_at > ?")
            .map_err(err)?
            .query_row([now.millis()], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(err)
    }

    async fn circuit_get(&self, tenant: TenantId) -> Result<Option<CircuitSettings>> {
        self.reader()?
            .prepare_cached(CIRCUIT_SELECT_ONE)
            .map_err(err)?
            .query_row([tenant.0], circuit_from_row)
            .optional()
            .map_err(err)
    }

    async fn circuit_list(&self) -> Result<Vec<CircuitSettings>> {
        all(&*self.reader()?, CIRCUIT_SELECT_ALL, [], circuit_from_row)
    }

    async fn circuit_put(&self, c: &CircuitSettings) -> Result<CircuitSettings> {
        let w = self.writer()?;
        let p = params![
            c.tenant_id.0,
            c.enabled,
            c.kind.as_str(),
            c.client_id,
            c.client_secret,
            c.portal_url,
            c.login_url,
            c.authorize_path,
            c.token_path,
            c.profile_path,
            c.scope,
            c.profile_field,
            c.pkce,
            c.token_auth.as_str(),
            c.updated_at.millis(),
            c.version,
        ];
        // Insert when none is stored (version 0), else update the version read: one statement
        // each, so that two concurrent edits cannot both win.
        let n = if c.version == 0 {
            w.prepare_cached(
                "INSERT INTO circuit_settings (tenant_id, enabled, kind, client_id, client_secret, portal_url, login_url, \
                 authorize_path, token_path, profile_path, scope, profile_field, pkce, token_auth, updated_at, version) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16 + 1) \
                 ON CONFLICT (tenant_id) DO NOTHING",
            )
            .map_err(err)?
            .execute(p)
            .map_err(err)?
        } else {
            w.prepare_cached(
                "UPDATE circuit_settings SET enabled = ?2, kind = ?3, client_id = ?4, client_secret = ?5, portal_url = ?6, \
                 login_url = ?7, authorize_path = ?8, token_path = ?9, profile_path = ?10, scope = ?11, profile_field = ?12, \
                 pkce = ?13, token_auth = ?14, updated_at = ?15, version = version + 1 WHERE tenant_id = ?1 AND version = ?16",
            )
            .map_err(err)?
            .execute(p)
            .map_err(err)?
        };
        stale_unless(n as u64, "Circuit settings")?;
        let mut saved = c.clone();
        saved.version += 1;
        Ok(saved)
    }

    async fn oauth_pending_put(&self, p: &PendingOAuth) -> Result<()> {
        self.writer()?
            .prepare_cached(
                "INSERT INTO oauth_pending (state_hash, tenant_id, sp_id, binding_hash, relay_target, expires_at) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .map_err(err)?
            .execute(params![
                p.state_hash,
                p.tenant_id.0,
                p.sp_id.0,
                p.binding_hash,
                p.relay_target,
                p.expires_at.millis()
            ])
            .map_err(err)?;
        Ok(())
    }

    async fn oauth_pending_take(&self, state_hash: &str) -> Result<Option<PendingOAuth>> {
        self.writer()?
            .prepare_cached(
                "DELETE FROM oauth_pending WHERE state_hash = ? \
                 RETURNING state_hash, tenant_id, sp_id, binding_hash, relay_target, expires_at",
            )
            .map_err(err)?
            .query_row([state_hash], |r| {
                Ok(PendingOAuth {
                    state_hash: r.get(0)?,
                    tenant_id: TenantId(r.get(1)?),
                    sp_id: SpId(r.get(2)?),
                    binding_hash: r.get(3)?,
                    relay_target: r.get(4)?,
                    expires_at: UnixTime::from_millis(r.get(5)?),
                })
            })
            .optional()
            .map_err(err)
    }

    async fn pending_logout_put(&self, p: &PendingLogout) -> Result<()> {
        self.writer()?
            .prepare_cached("INSERT INTO pending_logouts (id, idp_id, expires_at) VALUES (?, ?, ?)")
            .map_err(err)?
            .execute(params![p.id, p.idp_id.0, p.expires_at.millis()])
            .map_err(err)?;
        Ok(())
    }

    async fn pending_logout_take(&self, id: &str, now: UnixTime) -> Result<Option<PendingLogout>> {
        let p = self
            .writer()?
            .prepare_cached(
                "DELETE FROM pending_logouts WHERE id = ? RETURNING id, idp_id, expires_at",
            )
            .map_err(err)?
            .query_row([id], |r| {
                Ok(PendingLogout {
                    id: r.get(0)?,
                    idp_id: IdpId(r.get(1)?),
                    expires_at: UnixTime::from_millis(r.get(2)?),
                })
            })
            .optional()
            .map_err(err)?;
        Ok(p.filter(|p| p.expires_at > now))
    }

    async fn replay_remember(&self, key: &str, expires: UnixTime, now: UnixTime) -> Result<bool> {
        // One statement: insert, or take over an entry that has expired; a live entry stays and
        // no row changes, which is the replay.
        let n = self
            .writer()?
            .prepare_cached(
                "INSERT INTO replay_cache (key, expires_at) VALUES (?, ?) \
                 ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE replay_cache.expires_at <= ?",
            )
            .map_err(err)?
            .execute(params![key, expires.millis(), now.millis()])
            .map_err(err)?;
        Ok(n == 1)
    }

    async fn replay_seen(&self, key: &str, now: UnixTime) -> Result<bool> {
        Ok(self
            .reader()?
            .prepare_cached("SELECT 1 FROM replay_cache WHERE key = ? AND expires_at > ?")
            .map_err(err)?
            .query_row(params![key, now.millis()], |_| Ok(()))
            .optional()
            .map_err(err)?
            .is_some())
    }

    async fn session_create(&self, row: &SessionRow) -> Result<bool> {
        let (tenant, user, idp, name_id, index) = session_columns(row);
        let n = self
            .writer()?
            .prepare_cached(&format!("{SESSION_UPSERT} ON CONFLICT (id) DO NOTHING"))
            .map_err(err)?
            .execute(params![
                row.id,
                row.data,
                row.expires_at.millis(),
                tenant,
                user,
                idp,
                name_id,
                index
            ])
            .map_err(err)?;
        Ok(n == 1)
    }

    async fn session_save(&self, row: &SessionRow) -> Result<()> {
        let (tenant, user, idp, name_id, index) = session_columns(row);
        self.writer()?
            .prepare_cached(&format!(
                "{SESSION_UPSERT} ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at, tenant_id = excluded.tenant_id, \
                 user_id = excluded.user_id, idp_id = excluded.idp_id, name_id = excluded.name_id, session_index = excluded.session_index"
            ))
            .map_err(err)?
            .execute(params![row.id, row.data, row.expires_at.millis(), tenant, user, idp, name_id, index])
            .map_err(err)?;
        Ok(())
    }

    async fn session_load(&self, id: &str, now: UnixTime) -> Result<Option<SessionRow>> {
        let row = self
            .reader()?
            .prepare_cached(
                "SELECT id, data, expires_at FROM sessions WHERE id = ? AND expires_at > ?",
            )
            .map_err(err)?
            .query_row(params![id, now.millis()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .optional()
            .map_err(err)?;
        Ok(row.map(|(id, data, exp)| SessionRow {
            id,
            agent: sessions::agent_of(&data),
            data,
            expires_at: UnixTime::from_millis(exp),
        }))
    }

    async fn session_delete(&self, id: &str) -> Result<()> {
        self.writer()?
            .prepare_cached("DELETE FROM sessions WHERE id = ?")
            .map_err(err)?
            .execute([id])
            .map_err(err)?;
        Ok(())
    }

    async fn sessions_by_saml(
        &self,
        idp: IdpId,
        name_id: &str,
        session_indexes: &[String],
    ) -> Result<Vec<String>> {
        let rows = all(
            &*self.writer()?,
            "SELECT id, session_index FROM sessions WHERE idp_id = ? AND name_id = ?",
            params![idp.0, name_id],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)),
        )?;
        Ok(rows
            .into_iter()
            .filter(|(_, si)| {
                session_indexes.is_empty()
                    || si.as_ref().is_some_and(|si| session_indexes.contains(si))
            })
            .map(|(id, _)| id)
            .collect())
    }

    async fn failure_record(&self, f: &SignInFailure) -> Result<()> {
        self.writer()?
            .prepare_cached("INSERT INTO signin_failures (at, reference, endpoint, tenant, idp, reason, detail, client, repeats, username) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            .map_err(err)?
            .execute(params![f.at.millis(), f.reference, f.endpoint, f.tenant, f.idp, f.reason, f.detail, f.client, f.repeats as i64, f.username])
            .map_err(err)?;
        Ok(())
    }

    async fn failure_repeats(&self, reference: &str, repeats: u64) -> Result<()> {
        self.writer()?
            .prepare_cached("UPDATE signin_failures SET repeats = ? WHERE reference = ?")
            .map_err(err)?
            .execute(params![repeats as i64, reference])
            .map_err(err)?;
        Ok(())
    }

    async fn failures_recent(&self, limit: u32) -> Result<Vec<SignInFailure>> {
        all(
            &*self.reader()?,
            "SELECT at, reference, endpoint, tenant, idp, reason, detail, client, repeats, username FROM signin_failures ORDER BY id DESC LIMIT ?",
            [limit as i64],
            |r| {
                Ok(SignInFailure {
                    at: UnixTime::from_millis(r.get(0)?),
                    reference: r.get(1)?,
                    endpoint: r.get(2)?,
                    tenant: r.get(3)?,
                    idp: r.get(4)?,
                    reason: r.get(5)?,
                    detail: r.get(6)?,
                    client: r.get(7)?,
                    repeats: r.get::<_, i64>(8)?.max(0) as u64,
                    username: r.get(9)?,
                })
            },
        )
    }

    async fn server_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>> {
        let c = self.writer()?;
        c.prepare_cached(
            "INSERT INTO server_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .map_err(err)?
        .execute(params![name, candidate])
        .map_err(err)?;
        c.prepare_cached("SELECT value FROM server_secrets WHERE name = ?")
            .map_err(err)?
            .query_row([name], |r| r.get(0))
            .map_err(err)
    }

    async fn backup(&self, dest: &Path) -> Result<()> {
        if dest.exists() && std::fs::metadata(dest).map(|m| m.len()).unwrap_or(1) > 0 {
            return Err(StoreError::Conflict(format!(
                "{} already exists; give a new file",
                dest.display()
            )));
        }
        // The copy holds keys and password hashes: owner-only, like the database.
        make_private_file(dest)
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", dest.display())))?;
        let target = dest.to_string_lossy().into_owned();
        // VACUUM INTO reads one consistent snapshot (a read transaction), while the service goes
        // on writing: the copy is the database as of one commit.
        self.reader()?
            .execute("VACUUM INTO ?", [target])
            .map_err(err)?;
        Ok(())
    }

    async fn purge_expired(&self, now: UnixTime, batch: u32, failure_rows: u64) -> Result<u64> {
        let mut c = self.writer()?;
        let tx = c.transaction().map_err(err)?;
        let mut n = 0;
        // At most `batch` rows per table: the writer is held for a few milliseconds.
        for (table, key) in [
            ("pending_logouts", "id"),
            ("oauth_pending", "state_hash"),
            ("replay_cache", "key"),
            ("sessions", "id"),
            ("admin_sessions", "id_hash"),
        ] {
            let sql = format!(
                "DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE expires_at <= ? LIMIT ?)"
            );
            n = n.max(
                tx.execute(&sql, params![now.millis(), batch])
                    .map_err(err)? as u64,
            );
        }
        // The failure log keeps its newest `failure_rows` records (each one bounded in bytes).
        tx.execute(
            "DELETE FROM signin_failures WHERE id <= (SELECT max(id) FROM signin_failures) - ?",
            [failure_rows as i64],
        )
        .map_err(err)?;
        // Captured responses live 24 hours (at most MAX_TOTAL rows: no batching needed).
        tx.execute(
            "DELETE FROM failure_captures WHERE at <= ?",
            [now.millis() - crate::web::capture::KEEP_SECS * 1000],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(n)
    }
}
