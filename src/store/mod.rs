//! One `Store` trait for everything ssogate keeps: configuration, pending requests, the replay
//! cache, sessions and the sign-in failure log. Methods are named for the domain, not for SQL.
//! SQLite is the embedded default ([`sqlite::SqliteStore`]).

pub mod cached;
pub mod postgres;
pub mod redis_state;
pub mod sessions;
mod sp_keys;
pub mod sqlite;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::circuit::CircuitSettings;
use crate::domain::{
    Binding, IdentityProvider, IdpEndpoints, IdpId, MetadataStatus, Role, Secret, ServiceProvider,
    SpId, Tenant, TenantId, TrustConfig, User, UserId, UsernameMapping, UsernameRule,
};
use crate::saml::UnixTime;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or refused the operation.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule was violated; the sentence names the field.
    #[error("{0}")]
    Conflict(String),
    /// Stored data could not be read back.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// The object changed since the version the update was based on (nothing was written).
    #[error("{0}")]
    Stale(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A service provider before it has an ID.
#[derive(Debug, Clone)]
pub struct NewServiceProvider {
    pub entity_id: String,
    pub host_url: String,
    pub certificate_pem: Option<String>,
    pub private_key_pem: Option<Secret>,
}

/// An identity provider before it has an ID.
#[derive(Debug, Clone)]
pub struct NewIdentityProvider {
    pub name: String,
    pub entity_id: String,
    pub sso_url: String,
    pub sso_binding: Binding,
    pub slo_url: Option<String>,
    pub slo_response_url: Option<String>,
    pub slo_binding: Binding,
    pub username: UsernameMapping,
    pub trust: TrustConfig,
    pub allow_sha1: bool,
    pub name_id_format: Option<String>,
    pub authn_context: Option<String>,
    pub endpoints: IdpEndpoints,
    pub metadata_url: Option<String>,
}

impl NewIdentityProvider {
    pub fn with_id(self, id: IdpId) -> IdentityProvider {
        IdentityProvider {
            id,
            name: self.name,
            entity_id: self.entity_id,
            sso_url: self.sso_url,
            sso_binding: self.sso_binding,
            slo_url: self.slo_url,
            slo_response_url: self.slo_response_url,
            slo_binding: self.slo_binding,
            username: self.username,
            trust: self.trust,
            allow_sha1: self.allow_sha1,
            name_id_format: self.name_id_format,
            authn_context: self.authn_context,
            endpoints: self.endpoints,
            metadata_url: self.metadata_url,
            metadata_status: None,
            version: 1,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewTenant {
    pub name: String,
    pub display_name: String,
    pub login_domains: Vec<String>,
    pub sso_enabled: bool,
    pub idp_id: Option<IdpId>,
    pub slo_enabled: bool,
    pub idp_initiated: bool,
    pub username_rule: UsernameRule,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub tenant_id: TenantId,
    pub username: String,
    /// The name as the tenant's rule compares it (see `domain::username::normalise`).
    pub username_norm: String,
    pub display_name: String,
    pub circuit_user: Option<String>,
    /// The Circuit user as it is compared (see `domain::username::circuit_norm`).
    pub circuit_user_norm: Option<String>,
    pub password_hash: Option<Secret>,
    pub roles: Vec<Role>,
    pub must_change_password: bool,
}

/// A "Sign in with Circuit" waiting for the provider's answer (see `web::circuit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOAuth {
    /// SHA-256 (hex) of the state sent to the provider.
    pub state_hash: String,
    pub tenant_id: TenantId,
    pub sp_id: SpId,
    /// SHA-256 (hex) of the browser's binding cookie.
    pub binding_hash: String,
    pub relay_target: String,
    pub expires_at: UnixTime,
}

/// A LogoutRequest we sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogout {
    pub id: String,
    pub idp_id: IdpId,
    pub expires_at: UnixTime,
}

/// What a signed-in agent's session holds (in the tower-sessions record under [`sessions::AGENT_KEY`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSession {
    pub tenant_id: TenantId,
    pub tenant: String,
    pub user_id: UserId,
    pub username: String,
    pub display_name: String,
    pub method: SignInMethod,
    pub signed_in_at: UnixTime,
    pub expires_at: UnixTime,
    pub saml: Option<SamlSessionRef>,
    /// The last request the session was seen in, to the minute (for the idle timeout; `None`:
    /// none since sign-in).
    #[serde(default)]
    pub last_active: Option<UnixTime>,
}

impl AgentSession {
    /// `user` of `tenant`, signed in at `now` by `method` until `expires_at`.
    pub fn new(
        tenant: &Tenant,
        user: &User,
        method: SignInMethod,
        now: UnixTime,
        expires_at: UnixTime,
        saml: Option<SamlSessionRef>,
    ) -> AgentSession {
        AgentSession {
            tenant_id: tenant.id,
            tenant: tenant.name.clone(),
            user_id: user.id,
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            method,
            signed_in_at: now,
            expires_at,
            saml,
            last_active: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignInMethod {
    Saml,
    Password,
    Circuit,
}

impl SignInMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            SignInMethod::Saml => "saml",
            SignInMethod::Password => "password",
            SignInMethod::Circuit => "circuit",
        }
    }
}

/// What single logout needs to name the login at the IdP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamlSessionRef {
    pub idp_id: IdpId,
    pub name_id: String,
    pub name_id_format: Option<String>,
    pub name_qualifier: Option<String>,
    pub sp_name_qualifier: Option<String>,
    pub session_index: Option<String>,
}

/// One line of the "recent sign-in failures" view. Every field is bounded by the web layer
/// before it gets here (see `web::refusal`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignInFailure {
    pub at: UnixTime,
    /// The reference shown to the agent.
    pub reference: String,
    pub endpoint: String,
    pub tenant: Option<String>,
    pub idp: Option<String>,
    pub reason: String,
    pub detail: String,
    /// The client address the refused request came from.
    pub client: Option<String>,
    /// How many more refusals from that client were folded into this record (rate limit).
    pub repeats: u64,
    /// The user name the refused sign-in named, if it named one.
    pub username: Option<String>,
}

/// A stored session record (tower-sessions' data, serialized), with the columns that find it.
#[derive(Clone)]
pub struct SessionRow {
    pub id: String,
    pub data: Vec<u8>,
    pub expires_at: UnixTime,
    pub agent: Option<AgentSession>,
}

impl std::fmt::Debug for SessionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The ID is the session cookie's value: a bearer secret.
        f.debug_struct("SessionRow")
            .field("id", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

/// A Web Manager session: the SHA-256 of its cookie's token, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSessionRow {
    pub id_hash: String,
    pub user_id: UserId,
    pub created_at: UnixTime,
    pub last_seen: UnixTime,
    /// The absolute end (8 h after sign-in by default); the idle end is `last_seen` + idle.
    pub expires_at: UnixTime,
}

/// Who an API client acts as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", content = "tenant", rename_all = "kebab-case")]
pub enum ApiRole {
    CentralAdmin,
    TenantManager(TenantId),
}

/// An API client: its token is kept as SHA-256 only (shown once, at creation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiClient {
    pub id: i64,
    pub name: String,
    pub token_hash: String,
    /// The token's first 8 characters, to recognise it in a list.
    pub token_prefix: String,
    pub role: ApiRole,
    pub created_at: UnixTime,
    pub last_used_at: Option<UnixTime>,
    pub version: i64,
}

/// Sign-ins of a tenant in one hour (hours since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRow {
    pub tenant: String,
    pub hour: i64,
    pub successes: u64,
    pub failures: u64,
}

/// A SAML response the ACS refused while its tenant captured failures (for the tracer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedResponse {
    pub id: i64,
    pub tenant: String,
    /// The failure's reference (its row in the failure log).
    pub reference: String,
    pub at: UnixTime,
    pub reason: String,
    /// The SAMLResponse value as posted (None in listings).
    pub message: Option<String>,
}

/// A Web Manager account's TOTP enrolment. (No `Debug`: the secret, though encrypted, stays out
/// of logs.)
#[derive(Clone)]
pub struct TotpRow {
    /// The shared secret, encrypted ([`crate::secrets::SecretsKey`]).
    pub secret: String,
    /// The time step of the last code taken.
    pub last_step: i64,
    pub enabled_at: UnixTime,
}

/// One change, by whom, with the object before and after (JSON views without secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: UnixTime,
    /// `user:<tenant>/<name>`, `api:<client>` or `cli:<os user>`.
    pub actor: String,
    /// `sp.add`, `idp.set`, `user.rm`, …
    pub action: String,
    /// `sp:3`, `idp:2`, `tenant:acme`, `user:acme/kate`, …
    pub object: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// The columns that find a session: tenant, user, IdP, NameID, SessionIndex.
pub(crate) type SessionColumns = (
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

pub(crate) fn session_columns(row: &SessionRow) -> SessionColumns {
    let a = row.agent.as_ref();
    let saml = a.and_then(|a| a.saml.as_ref());
    (
        a.map(|a| a.tenant_id.0),
        a.map(|a| a.user_id.0),
        saml.map(|s| s.idp_id.0),
        saml.map(|s| s.name_id.clone()),
        saml.and_then(|s| s.session_index.clone()),
    )
}

/// An API client's role as stored: (role, tenant).
pub(crate) fn api_role_columns(r: &ApiRole) -> (&'static str, Option<i64>) {
    match r {
        ApiRole::CentralAdmin => ("central-admin", None),
        ApiRole::TenantManager(t) => ("tenant-manager", Some(t.0)),
    }
}

/// An update by version that changed no row: the object changed (or went) in between.
pub(crate) fn stale_unless(rows: u64, what: &str) -> Result<()> {
    if rows == 0 {
        return Err(StoreError::Stale(format!(
            "the {what} was changed or deleted since it was read"
        )));
    }
    Ok(())
}

/// Our own plain data as a JSON column.
pub(crate) fn json<T: serde::Serialize>(v: &T) -> String {
    // Serializing our own plain data types to JSON cannot fail.
    serde_json::to_string(v).expect("invariant: plain data serializes")
}

/// What a store reports of its engine (see [`Store::stats`]).
#[derive(Debug, Clone, Default)]
pub struct StoreStats {
    /// Statements run, their total time (µs), and those that failed for want of the database.
    pub statements: Option<u64>,
    pub statement_micros: Option<u64>,
    pub unavailable: Option<u64>,
    /// Connections open, in use, and requests waiting for one.
    pub pool_open: Option<u64>,
    pub pool_in_use: Option<u64>,
    pub pool_waiting: Option<u64>,
    /// Times the configuration cache was cleared.
    pub config_reloads: Option<u64>,
}

/// Released when dropped (see [`Store::startup_lock`]).
pub struct StartupLock(#[allow(dead_code)] Box<dyn Send + Sync>);

impl StartupLock {
    pub fn new(held: impl Send + Sync + 'static) -> StartupLock {
        StartupLock(Box::new(held))
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // Service providers.
    async fn sp_insert(&self, sp: NewServiceProvider) -> Result<ServiceProvider>;
    async fn sp_list(&self) -> Result<Vec<ServiceProvider>>;
    async fn sp_delete(&self, id: SpId) -> Result<bool>;
    /// Writes `sp` if its stored version is still `sp.version` (then bumps it); else `Stale`.
    async fn sp_update(&self, sp: &ServiceProvider) -> Result<()>;

    // Identity providers.
    async fn idp_insert(&self, idp: NewIdentityProvider) -> Result<IdentityProvider>;
    /// Writes `idp` if its stored version is still `idp.version` (then bumps it); else `Stale`.
    async fn idp_update(&self, idp: &IdentityProvider) -> Result<()>;
    async fn idp_list(&self) -> Result<Vec<IdentityProvider>>;
    async fn idp_get(&self, id: IdpId) -> Result<Option<IdentityProvider>>;
    async fn idp_by_entity_id(&self, entity_id: &str) -> Result<Option<IdentityProvider>>;
    /// Refused (Conflict) while a tenant uses it.
    async fn idp_delete(&self, id: IdpId) -> Result<bool>;

    // Tenants.
    async fn tenant_insert(&self, t: NewTenant) -> Result<Tenant>;
    /// `renormalised`: every user of the tenant with the compared form of its name under the
    /// tenant's (new) username rule, when the rule changed; all or nothing.
    async fn tenant_update(&self, t: &Tenant, renormalised: &[(UserId, String)]) -> Result<()>;
    async fn tenant_list(&self) -> Result<Vec<Tenant>>;
    async fn tenant_get(&self, id: TenantId) -> Result<Option<Tenant>>;
    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>>;
    /// Refused (Conflict) while it has users.
    async fn tenant_delete(&self, id: TenantId) -> Result<bool>;

    // Users.
    async fn user_insert(&self, u: NewUser) -> Result<User>;
    /// `username_norm` and `circuit_norm` are computed by the caller (`domain::username`).
    async fn user_update(
        &self,
        u: &User,
        username_norm: &str,
        circuit_norm: Option<&str>,
    ) -> Result<()>;
    async fn user_list(&self, tenant: Option<TenantId>) -> Result<Vec<User>>;
    async fn user_by_norm(&self, tenant: TenantId, username_norm: &str) -> Result<Option<User>>;
    async fn user_get(&self, id: UserId) -> Result<Option<User>>;
    /// The user of `tenant` whose Circuit user compares equal to `circuit_norm`.
    async fn user_by_circuit(&self, tenant: TenantId, circuit_norm: &str) -> Result<Option<User>>;
    async fn user_delete(&self, id: UserId) -> Result<bool>;
    async fn user_count_with_role(&self, role: Role) -> Result<u64>;

    // Login state. (A pending AuthnRequest is kept by the browser, in a MAC'd cookie: nothing is
    // stored before the IdP answers. See `web::pending`.)
    /// A tenant's Circuit settings (`None`: never set).
    async fn circuit_get(&self, tenant: TenantId) -> Result<Option<CircuitSettings>>;
    /// Every tenant's Circuit settings.
    async fn circuit_list(&self) -> Result<Vec<CircuitSettings>>;
    /// Saves `c` if the stored version is still `c.version` (0: none stored yet), as version + 1.
    async fn circuit_put(&self, c: &CircuitSettings) -> Result<CircuitSettings>;

    async fn oauth_pending_put(&self, p: &PendingOAuth) -> Result<()>;
    /// Takes the pending request with this state hash (once: it is deleted), expired or not.
    async fn oauth_pending_take(&self, state_hash: &str) -> Result<Option<PendingOAuth>>;

    async fn pending_logout_put(&self, p: &PendingLogout) -> Result<()>;
    async fn pending_logout_take(&self, id: &str, now: UnixTime) -> Result<Option<PendingLogout>>;
    /// Records `key` until `expires`; `false` if it is already recorded and not expired (a replay).
    async fn replay_remember(&self, key: &str, expires: UnixTime, now: UnixTime) -> Result<bool>;
    /// Whether `key` is recorded and not expired (looked up only: the SAML tracer).
    async fn replay_seen(&self, key: &str, now: UnixTime) -> Result<bool>;

    // Sessions (the rows behind tower-sessions).
    async fn session_create(&self, row: &SessionRow) -> Result<bool>;
    async fn session_save(&self, row: &SessionRow) -> Result<()>;
    async fn session_load(&self, id: &str, now: UnixTime) -> Result<Option<SessionRow>>;
    async fn session_delete(&self, id: &str) -> Result<()>;
    /// Sessions of this IdP login: NameID value, and one of `session_indexes` unless empty.
    async fn sessions_by_saml(
        &self,
        idp: IdpId,
        name_id: &str,
        session_indexes: &[String],
    ) -> Result<Vec<String>>;

    /// The signed-in sessions of a tenant (or of every tenant), newest first: `limit` of them
    /// after the first `offset`.
    async fn sessions_of_tenant(
        &self,
        tenant: Option<TenantId>,
        now: UnixTime,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<SessionRow>>;

    /// Agent sessions that have not expired at `now`.
    async fn session_count(&self, now: UnixTime) -> Result<u64>;

    // Web Manager sessions.
    async fn admin_session_put(&self, s: &AdminSessionRow) -> Result<()>;
    async fn admin_session_get(
        &self,
        id_hash: &str,
        now: UnixTime,
    ) -> Result<Option<AdminSessionRow>>;
    async fn admin_session_touch(&self, id_hash: &str, last_seen: UnixTime) -> Result<()>;
    async fn admin_session_delete(&self, id_hash: &str) -> Result<()>;

    // API clients.
    async fn api_client_insert(&self, c: &ApiClient) -> Result<ApiClient>;
    async fn api_client_list(&self) -> Result<Vec<ApiClient>>;
    async fn api_client_by_token(&self, token_hash: &str) -> Result<Option<ApiClient>>;
    /// Writes a new token for `c` if its stored version is still `c.version`; else `Stale`.
    async fn api_client_update(&self, c: &ApiClient) -> Result<()>;
    async fn api_client_used(&self, id: i64, at: UnixTime) -> Result<()>;
    async fn api_client_delete(&self, id: i64) -> Result<bool>;

    // Audit log.
    async fn audit_record(&self, e: &AuditEntry) -> Result<()>;
    /// Newest first: entries whose object starts with `object_prefix`, older than `before_id`.
    async fn audit_list(
        &self,
        object_prefix: Option<&str>,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>>;

    /// Records the outcome of fetching an IdP's metadata URL (not an edit: the version stays).
    async fn idp_metadata_status(&self, id: IdpId, status: &MetadataStatus) -> Result<()>;

    // Failing responses captured for the tracer.
    /// Keeps `c`; then drops `c.tenant`'s beyond the newest `per_tenant`, all beyond the newest
    /// `total`, and every one from before `drop_before`.
    async fn capture_put(
        &self,
        c: &CapturedResponse,
        per_tenant: u32,
        total: u32,
        drop_before: UnixTime,
    ) -> Result<()>;
    /// `tenant`'s captured responses, newest first, without their messages.
    async fn capture_list(&self, tenant: &str) -> Result<Vec<CapturedResponse>>;
    /// One captured response with its message.
    async fn capture_get(&self, tenant: &str, id: i64) -> Result<Option<CapturedResponse>>;

    // The sign-in chart.
    /// Adds counts to their (tenant, hour) rows, and drops rows before `keep_from` (an hour).
    async fn activity_add(&self, rows: &[ActivityRow], keep_from: i64) -> Result<()>;
    /// `tenant`'s rows from hour `from` on.
    async fn activity_hours(&self, tenant: &str, from: i64) -> Result<Vec<ActivityRow>>;

    // Second factors of Web Manager accounts.
    async fn totp_get(&self, user: UserId) -> Result<Option<TotpRow>>;
    /// Enrols (or replaces) `user`'s TOTP secret.
    async fn totp_put(&self, user: UserId, row: &TotpRow) -> Result<()>;
    async fn totp_delete(&self, user: UserId) -> Result<bool>;
    /// Records that a code of time step `step` was used: false when that step (or a later one)
    /// already was, so that each code is taken once even by two requests at the same moment.
    async fn totp_use_step(&self, user: UserId, step: i64) -> Result<bool>;

    // Settings shared by every instance.
    async fn setting(&self, key: &str) -> Result<Option<String>>;
    async fn setting_put(&self, key: &str, value: &str) -> Result<()>;

    // Failures.
    async fn failure_record(&self, f: &SignInFailure) -> Result<()>;
    /// Sets how many later refusals were folded into the record `reference`.
    async fn failure_repeats(&self, reference: &str, repeats: u64) -> Result<()>;
    async fn failures_recent(&self, limit: u32) -> Result<Vec<SignInFailure>>;

    /// A secret of the service (a MAC key), the same for every instance: the stored one, or
    /// `candidate` stored now when there is none yet.
    async fn server_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>>;

    /// Writes a consistent copy of everything stored to `dest` (a new file), while the service
    /// runs.
    async fn backup(&self, dest: &std::path::Path) -> Result<()>;

    /// Adds `n` to the shared counter `key` (a new or expired one starts from 0) and keeps it
    /// until `expires`; its value and when it was last added to. `None`: this store keeps no
    /// shared counters (one instance: its limiters count in memory).
    async fn counter_add(
        &self,
        _key: &str,
        _n: i64,
        _now: UnixTime,
        _expires: UnixTime,
    ) -> Result<Option<(i64, UnixTime)>> {
        Ok(None)
    }

    /// A shared counter's value and when it was last added to (`Some(None)`: none live).
    async fn counter_get(
        &self,
        _key: &str,
        _now: UnixTime,
    ) -> Result<Option<Option<(i64, UnixTime)>>> {
        Ok(None)
    }

    async fn counter_delete(&self, _key: &str) -> Result<()> {
        Ok(())
    }

    /// Answers when the store can serve: reachable, and its schema is the one this build expects.
    async fn ready(&self) -> Result<()> {
        self.setting(crate::secrets::SETTING_KEY_ID)
            .await
            .map(|_| ())
    }

    /// Counters of the engine behind the store (for `/metrics`); empty where there are none.
    fn stats(&self) -> StoreStats {
        StoreStats::default()
    }

    /// Held by one instance at a time while it makes what a first start makes (the default
    /// tenant, the first administrator, the first SP, the seeded settings): instances started
    /// together on an empty shared database make them once. `None` where one process owns the
    /// store (SQLite).
    async fn startup_lock(&self) -> Result<Option<StartupLock>> {
        Ok(None)
    }

    /// Deletes up to `batch` expired rows from each of pending logouts, replay entries and
    /// sessions, and trims the failure log to its newest `failure_rows` records; returns the most
    /// rows deleted from one of them, so a result equal to `batch` means there is more to do.
    async fn purge_expired(&self, now: UnixTime, batch: u32, failure_rows: u64) -> Result<u64>;
}
