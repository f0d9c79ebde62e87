//! The configuration cached per instance, in front of a shared store (PostgreSQL): service
//! providers, identity providers, tenants, users, Circuit settings and settings are read once and
//! kept until the configuration changes. A change made through this instance clears the cache at
//! once; a change made by another instance arrives by `LISTEN ssogate_config` (a trigger notifies
//! on every change), and a poll of the configuration's version once a second covers a lost
//! notification. So a change is in force on every instance within a second, and in steady state a
//! login reads no configuration row.
//!
//! Everything else (pending requests, replay cache, sessions, failures, …) goes straight through.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::*;

/// Users kept per lookup kind at most (then the map starts again): lookups of names that do not
/// exist are kept too, and a hostile client may ask for many.
const MAX_USERS: usize = 20_000;

#[derive(Default)]
struct Cache {
    sps: Option<Arc<Vec<ServiceProvider>>>,
    idps: Option<Arc<Vec<IdentityProvider>>>,
    tenants: Option<Arc<Vec<Tenant>>>,
    circuits: Option<Arc<Vec<CircuitSettings>>>,
    users_by_norm: HashMap<(TenantId, String), Option<User>>,
    users_by_circuit: HashMap<(TenantId, String), Option<User>>,
    users_by_id: HashMap<UserId, Option<User>>,
    settings: HashMap<String, Option<String>>,
}

/// How the cache did (for `/metrics`).
#[derive(Default)]
pub struct CacheStats {
    /// Times the cache was cleared: a change here, a notification, or a new version seen.
    pub reloads: AtomicU64,
    /// Configuration reads answered from the cache, and those that went to the store.
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

pub struct CachedStore {
    inner: Arc<dyn Store>,
    cache: Mutex<Cache>,
    /// Bumped by every clearing: a read that began before a clearing does not fill the cache
    /// with what it read.
    generation: AtomicU64,
    stats: CacheStats,
}

impl CachedStore {
    pub fn new(inner: Arc<dyn Store>) -> Arc<CachedStore> {
        Arc::new(CachedStore {
            inner,
            cache: Mutex::default(),
            generation: AtomicU64::new(0),
            stats: CacheStats::default(),
        })
    }

    pub fn cache_stats(&self) -> &CacheStats {
        &self.stats
    }

    /// Forgets everything cached (the configuration changed).
    pub fn changed(&self) {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        *c = Cache::default();
        self.stats.reloads.fetch_add(1, Ordering::Relaxed);
    }

    /// Keeps the cache current with `pg`: its notifications (the listening connection, made
    /// again when lost, counts as a change), and its configuration version compared every
    /// second. Ends with the last reference to the cache.
    pub fn watch(self: &Arc<Self>, pg: super::postgres::PgStore) {
        let weak = Arc::downgrade(self);
        let mut notified = pg.notifications(super::postgres::CONFIG_CHANNEL);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut seen: Option<i64> = None;
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Ok(v) = pg.config_version().await && seen != Some(v) {
                            if seen.is_some() {
                                let Some(me) = weak.upgrade() else { return };
                                me.changed();
                            }
                            seen = Some(v);
                        }
                    }
                    n = notified.recv() => {
                        if let Err(tokio::sync::broadcast::error::RecvError::Closed) = n {
                            return;
                        }
                        // A change, a reconnection, or notifications lost (lagged): reload.
                        let Some(me) = weak.upgrade() else { return };
                        me.changed();
                    }
                }
                if weak.strong_count() == 0 {
                    return;
                }
            }
        });
    }

    /// `read` from the cache, else `load` from the store and `keep` it (unless the cache was
    /// cleared meanwhile).
    async fn cached<T: Clone>(
        &self,
        read: impl FnOnce(&Cache) -> Option<T>,
        load: impl std::future::Future<Output = Result<T>>,
        keep: impl FnOnce(&mut Cache, T),
    ) -> Result<T> {
        let generation = {
            let c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(v) = read(&c) {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(v);
            }
            self.generation.load(Ordering::SeqCst)
        };
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        let v = load.await?;
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Ordering::SeqCst) == generation {
            keep(&mut c, v.clone());
        }
        Ok(v)
    }

    async fn idps(&self) -> Result<Arc<Vec<IdentityProvider>>> {
        self.cached(
            |c| c.idps.clone(),
            async { Ok(Arc::new(self.inner.idp_list().await?)) },
            |c, v| c.idps = Some(v),
        )
        .await
    }

    async fn tenants(&self) -> Result<Arc<Vec<Tenant>>> {
        self.cached(
            |c| c.tenants.clone(),
            async { Ok(Arc::new(self.inner.tenant_list().await?)) },
            |c, v| c.tenants = Some(v),
        )
        .await
    }

    async fn circuits(&self) -> Result<Arc<Vec<CircuitSettings>>> {
        self.cached(
            |c| c.circuits.clone(),
            async { Ok(Arc::new(self.inner.circuit_list().await?)) },
            |c, v| c.circuits = Some(v),
        )
        .await
    }
}

fn bounded<K: std::hash::Hash + Eq, V>(m: &mut HashMap<K, V>, k: K, v: V) {
    if m.len() >= MAX_USERS {
        m.clear();
    }
    m.insert(k, v);
}

#[async_trait]
impl Store for CachedStore {
    async fn sp_list(&self) -> Result<Vec<ServiceProvider>> {
        let sps = self
            .cached(
                |c| c.sps.clone(),
                async { Ok(Arc::new(self.inner.sp_list().await?)) },
                |c, v| c.sps = Some(v),
            )
            .await?;
        Ok(sps.as_ref().clone())
    }

    async fn idp_list(&self) -> Result<Vec<IdentityProvider>> {
        Ok(self.idps().await?.as_ref().clone())
    }

    async fn idp_get(&self, id: IdpId) -> Result<Option<IdentityProvider>> {
        Ok(self.idps().await?.iter().find(|i| i.id == id).cloned())
    }

    async fn idp_by_entity_id(&self, entity_id: &str) -> Result<Option<IdentityProvider>> {
        Ok(self
            .idps()
            .await?
            .iter()
            .find(|i| i.entity_id == entity_id)
            .cloned())
    }

    async fn tenant_list(&self) -> Result<Vec<Tenant>> {
        Ok(self.tenants().await?.as_ref().clone())
    }

    async fn tenant_get(&self, id: TenantId) -> Result<Option<Tenant>> {
        Ok(self.tenants().await?.iter().find(|t| t.id == id).cloned())
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>> {
        Ok(self
            .tenants()
            .await?
            .iter()
            .find(|t| t.name == name)
            .cloned())
    }

    async fn circuit_get(&self, tenant: TenantId) -> Result<Option<CircuitSettings>> {
        Ok(self
            .circuits()
            .await?
            .iter()
            .find(|c| c.tenant_id == tenant)
            .cloned())
    }

    async fn circuit_list(&self) -> Result<Vec<CircuitSettings>> {
        Ok(self.circuits().await?.as_ref().clone())
    }

    async fn user_by_norm(&self, tenant: TenantId, username_norm: &str) -> Result<Option<User>> {
        let key = (tenant, username_norm.to_string());
        self.cached(
            |c| c.users_by_norm.get(&key).cloned(),
            self.inner.user_by_norm(tenant, username_norm),
            |c, v| bounded(&mut c.users_by_norm, key.clone(), v),
        )
        .await
    }

    async fn user_get(&self, id: UserId) -> Result<Option<User>> {
        self.cached(
            |c| c.users_by_id.get(&id).cloned(),
            self.inner.user_get(id),
            |c, v| bounded(&mut c.users_by_id, id, v),
        )
        .await
    }

    async fn user_by_circuit(&self, tenant: TenantId, circuit_norm: &str) -> Result<Option<User>> {
        let key = (tenant, circuit_norm.to_string());
        self.cached(
            |c| c.users_by_circuit.get(&key).cloned(),
            self.inner.user_by_circuit(tenant, circuit_norm),
            |c, v| bounded(&mut c.users_by_circuit, key.clone(), v),
        )
        .await
    }

    async fn setting(&self, key: &str) -> Result<Option<String>> {
        self.cached(
            |c| c.settings.get(key).cloned(),
            self.inner.setting(key),
            |c, v| {
                // Few keys exist; a caller never asks for arbitrary ones, but the map stays small.
                if c.settings.len() < 256 {
                    c.settings.insert(key.to_string(), v);
                }
            },
        )
        .await
    }

    async fn startup_lock(&self) -> Result<Option<StartupLock>> {
        self.inner.startup_lock().await
    }

    async fn counter_add(
        &self,
        key: &str,
        n: i64,
        now: UnixTime,
        expires: UnixTime,
    ) -> Result<Option<(i64, UnixTime)>> {
        self.inner.counter_add(key, n, now, expires).await
    }

    async fn counter_get(
        &self,
        key: &str,
        now: UnixTime,
    ) -> Result<Option<Option<(i64, UnixTime)>>> {
        self.inner.counter_get(key, now).await
    }

    async fn counter_delete(&self, key: &str) -> Result<()> {
        self.inner.counter_delete(key).await
    }

    async fn ready(&self) -> Result<()> {
        self.inner.ready().await
    }

    fn stats(&self) -> StoreStats {
        let mut s = self.inner.stats();
        s.config_reloads = Some(self.stats.reloads.load(Ordering::Relaxed));
        s
    }

    async fn sp_insert(&self, sp: NewServiceProvider) -> Result<ServiceProvider> {
        let r = self.inner.sp_insert(sp).await;
        self.changed();
        r
    }

    async fn sp_delete(&self, id: SpId) -> Result<bool> {
        let r = self.inner.sp_delete(id).await;
        self.changed();
        r
    }

    async fn sp_update(&self, sp: &ServiceProvider) -> Result<()> {
        let r = self.inner.sp_update(sp).await;
        self.changed();
        r
    }

    async fn idp_insert(&self, idp: NewIdentityProvider) -> Result<IdentityProvider> {
        let r = self.inner.idp_insert(idp).await;
        self.changed();
        r
    }

    async fn idp_update(&self, idp: &IdentityProvider) -> Result<()> {
        let r = self.inner.idp_update(idp).await;
        self.changed();
        r
    }

    async fn idp_delete(&self, id: IdpId) -> Result<bool> {
        let r = self.inner.idp_delete(id).await;
        self.changed();
        r
    }

    async fn tenant_insert(&self, t: NewTenant) -> Result<Tenant> {
        let r = self.inner.tenant_insert(t).await;
        self.changed();
        r
    }

    async fn tenant_update(&self, t: &Tenant, renormalised: &[(UserId, String)]) -> Result<()> {
        let r = self.inner.tenant_update(t, renormalised).await;
        self.changed();
        r
    }

    async fn tenant_delete(&self, id: TenantId) -> Result<bool> {
        let r = self.inner.tenant_delete(id).await;
        self.changed();
        r
    }

    async fn user_insert(&self, u: NewUser) -> Result<User> {
        let r = self.inner.user_insert(u).await;
        self.changed();
        r
    }

    async fn user_update(
        &self,
        u: &User,
        username_norm: &str,
        circuit_norm: Option<&str>,
    ) -> Result<()> {
        let r = self.inner.user_update(u, username_norm, circuit_norm).await;
        self.changed();
        r
    }

    async fn user_list(&self, tenant: Option<TenantId>) -> Result<Vec<User>> {
        self.inner.user_list(tenant).await
    }

    async fn user_delete(&self, id: UserId) -> Result<bool> {
        let r = self.inner.user_delete(id).await;
        self.changed();
        r
    }

    async fn user_count_with_role(&self, role: Role) -> Result<u64> {
        self.inner.user_count_with_role(role).await
    }

    async fn circuit_put(&self, c: &CircuitSettings) -> Result<CircuitSettings> {
        let r = self.inner.circuit_put(c).await;
        self.changed();
        r
    }

    async fn oauth_pending_put(&self, p: &PendingOAuth) -> Result<()> {
        self.inner.oauth_pending_put(p).await
    }

    async fn oauth_pending_take(&self, state_hash: &str) -> Result<Option<PendingOAuth>> {
        self.inner.oauth_pending_take(state_hash).await
    }

    async fn pending_logout_put(&self, p: &PendingLogout) -> Result<()> {
        self.inner.pending_logout_put(p).await
    }

    async fn pending_logout_take(&self, id: &str, now: UnixTime) -> Result<Option<PendingLogout>> {
        self.inner.pending_logout_take(id, now).await
    }

    async fn replay_remember(&self, key: &str, expires: UnixTime, now: UnixTime) -> Result<bool> {
        self.inner.replay_remember(key, expires, now).await
    }

    async fn replay_seen(&self, key: &str, now: UnixTime) -> Result<bool> {
        self.inner.replay_seen(key, now).await
    }

    async fn session_create(&self, row: &SessionRow) -> Result<bool> {
        self.inner.session_create(row).await
    }

    async fn session_save(&self, row: &SessionRow) -> Result<()> {
        self.inner.session_save(row).await
    }

    async fn session_load(&self, id: &str, now: UnixTime) -> Result<Option<SessionRow>> {
        self.inner.session_load(id, now).await
    }

    async fn session_delete(&self, id: &str) -> Result<()> {
        self.inner.session_delete(id).await
    }

    async fn sessions_by_saml(
        &self,
        idp: IdpId,
        name_id: &str,
        session_indexes: &[String],
    ) -> Result<Vec<String>> {
        self.inner
            .sessions_by_saml(idp, name_id, session_indexes)
            .await
    }

    async fn sessions_of_tenant(
        &self,
        tenant: Option<TenantId>,
        now: UnixTime,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<SessionRow>> {
        self.inner
            .sessions_of_tenant(tenant, now, offset, limit)
            .await
    }

    async fn session_count(&self, now: UnixTime) -> Result<u64> {
        self.inner.session_count(now).await
    }

    async fn admin_session_put(&self, s: &AdminSessionRow) -> Result<()> {
        self.inner.admin_session_put(s).await
    }

    async fn admin_session_get(
        &self,
        id_hash: &str,
        now: UnixTime,
    ) -> Result<Option<AdminSessionRow>> {
        self.inner.admin_session_get(id_hash, now).await
    }

    async fn admin_session_touch(&self, id_hash: &str, last_seen: UnixTime) -> Result<()> {
        self.inner.admin_session_touch(id_hash, last_seen).await
    }

    async fn admin_session_delete(&self, id_hash: &str) -> Result<()> {
        self.inner.admin_session_delete(id_hash).await
    }

    async fn api_client_insert(&self, c: &ApiClient) -> Result<ApiClient> {
        self.inner.api_client_insert(c).await
    }

    async fn api_client_list(&self) -> Result<Vec<ApiClient>> {
        self.inner.api_client_list().await
    }

    async fn api_client_by_token(&self, token_hash: &str) -> Result<Option<ApiClient>> {
        self.inner.api_client_by_token(token_hash).await
    }

    async fn api_client_update(&self, c: &ApiClient) -> Result<()> {
        self.inner.api_client_update(c).await
    }

    async fn api_client_used(&self, id: i64, at: UnixTime) -> Result<()> {
        self.inner.api_client_used(id, at).await
    }

    async fn api_client_delete(&self, id: i64) -> Result<bool> {
        self.inner.api_client_delete(id).await
    }

    async fn audit_record(&self, e: &AuditEntry) -> Result<()> {
        self.inner.audit_record(e).await
    }

    async fn audit_list(
        &self,
        object_prefix: Option<&str>,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        self.inner.audit_list(object_prefix, before_id, limit).await
    }

    async fn idp_metadata_status(&self, id: IdpId, status: &MetadataStatus) -> Result<()> {
        let r = self.inner.idp_metadata_status(id, status).await;
        self.changed();
        r
    }

    async fn capture_put(
        &self,
        c: &CapturedResponse,
        per_tenant: u32,
        total: u32,
        drop_before: UnixTime,
    ) -> Result<()> {
        self.inner
            .capture_put(c, per_tenant, total, drop_before)
            .await
    }

    async fn capture_list(&self, tenant: &str) -> Result<Vec<CapturedResponse>> {
        self.inner.capture_list(tenant).await
    }

    async fn capture_get(&self, tenant: &str, id: i64) -> Result<Option<CapturedResponse>> {
        self.inner.capture_get(tenant, id).await
    }

    async fn activity_add(&self, rows: &[ActivityRow], keep_from: i64) -> Result<()> {
        self.inner.activity_add(rows, keep_from).await
    }

    async fn activity_hours(&self, tenant: &str, from: i64) -> Result<Vec<ActivityRow>> {
        self.inner.activity_hours(tenant, from).await
    }

    async fn totp_get(&self, user: UserId) -> Result<Option<TotpRow>> {
        self.inner.totp_get(user).await
    }

    async fn totp_put(&self, user: UserId, row: &TotpRow) -> Result<()> {
        self.inner.totp_put(user, row).await
    }

    async fn totp_delete(&self, user: UserId) -> Result<bool> {
        self.inner.totp_delete(user).await
    }

    async fn totp_use_step(&self, user: UserId, step: i64) -> Result<bool> {
        self.inner.totp_use_step(user, step).await
    }

    async fn setting_put(&self, key: &str, value: &str) -> Result<()> {
        let r = self.inner.setting_put(key, value).await;
        self.changed();
        r
    }

    async fn failure_record(&self, f: &SignInFailure) -> Result<()> {
        self.inner.failure_record(f).await
    }

    async fn failure_repeats(&self, reference: &str, repeats: u64) -> Result<()> {
        self.inner.failure_repeats(reference, repeats).await
    }

    async fn failures_recent(&self, limit: u32) -> Result<Vec<SignInFailure>> {
        self.inner.failures_recent(limit).await
    }

    async fn server_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>> {
        self.inner.server_secret(name, candidate).await
    }

    async fn backup(&self, dest: &std::path::Path) -> Result<()> {
        self.inner.backup(dest).await
    }

    async fn purge_expired(&self, now: UnixTime, batch: u32, failure_rows: u64) -> Result<u64> {
        self.inner.purge_expired(now, batch, failure_rows).await
    }
}
