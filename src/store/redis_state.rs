//! Short-lived state in Redis (7 or later), in front of the shared store: agent sessions with
//! their (IdP, NameID), user and tenant indexes, pending logouts and pending Circuit requests.
//! Everything else, the replay cache included, stays in PostgreSQL (the `inner` store).
//!
//! Why the replay cache stays in PostgreSQL: Redis here keeps nothing on disk, and a Redis that
//! restarts empty would forget which assertions were used, letting a captured IdP-initiated
//! assertion be replayed until its NotOnOrAfter. A restart of Redis loses the sessions (agents
//! sign in again) and the logins under way, nothing else.
//!
//! One command per once-only step: a session is created by `SET … NX`, a pending request taken by
//! `GETDEL`. Each value holds its own expiry, checked against the caller's clock; Redis's TTLs
//! only collect garbage. Expiry sorted sets (`exp:…`) let the purge remove what expired by that
//! clock, in batches. Redis that is down or slow: every operation fails within the timeout, and
//! the request gets 503 (logins are refused; nothing falls back to PostgreSQL).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use super::*;

/// The shortest TTL given to a key (its own expiry, checked on every read, is what counts).
const MIN_TTL_MS: i64 = 60_000;

/// How the store reaches Redis (`redis_url`).
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://[:password@]host:port[/db]` (or `rediss://` for TLS).
    pub url: String,
    /// Prepended to every key (tests give each store its own).
    pub prefix: String,
    /// How long one command may take before the request gets 503.
    pub timeout: Duration,
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &super::postgres::redact_url(&self.url))
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

pub struct RedisState {
    inner: Arc<dyn Store>,
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
}

/// A session as kept in Redis.
#[derive(Serialize, Deserialize)]
struct StoredSession {
    /// tower-sessions' record (base64).
    d: String,
    /// Expiry (Unix ms).
    e: i64,
    t: Option<i64>,
    u: Option<i64>,
    i: Option<i64>,
    n: Option<String>,
    x: Option<String>,
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

fn ttl_ms(expires: UnixTime, now_ms: i64) -> i64 {
    (expires.millis() - now_ms).max(MIN_TTL_MS)
}

/// The system clock (Redis's TTLs are in real time, whatever clock the caller's `now` is).
fn wall_ms() -> i64 {
    use crate::clock::Clock as _;
    crate::clock::SystemClock.now().millis()
}

fn name_hash(name_id: &str) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(name_id.as_bytes())[..16])
}

impl RedisState {
    /// Connects (a URL that is no Redis URL, or a server that does not answer, is an error
    /// naming the reason).
    pub async fn open(inner: Arc<dyn Store>, o: RedisOptions) -> Result<RedisState> {
        let client = redis::Client::open(o.url.as_str()).map_err(|e| {
            StoreError::Unavailable(format!(
                "redis_url is not a Redis URL: {}",
                e.detail().unwrap_or("")
            ))
        })?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(o.timeout.min(Duration::from_secs(1))))
            .set_response_timeout(Some(o.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = tokio::time::timeout(
            o.timeout + Duration::from_secs(1),
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| StoreError::Unavailable("redis: no answer".into()))?
        .map_err(unavailable)?;
        let s = RedisState {
            inner,
            conn,
            prefix: o.prefix,
            timeout: o.timeout,
        };
        s.ping().await?;
        Ok(s)
    }

    fn key(&self, suffix: impl std::fmt::Display) -> String {
        format!("{}{suffix}", self.prefix)
    }

    async fn run<T: redis::FromRedisValue>(&self, c: &redis::Cmd) -> Result<T> {
        let mut conn = self.conn.clone();
        tokio::time::timeout(self.timeout, c.query_async(&mut conn))
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "redis did not answer within {} ms",
                    self.timeout.as_millis()
                ))
            })?
            .map_err(unavailable)
    }

    async fn pipe<T: redis::FromRedisValue>(&self, p: &redis::Pipeline) -> Result<T> {
        let mut conn = self.conn.clone();
        tokio::time::timeout(self.timeout, p.query_async(&mut conn))
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "redis did not answer within {} ms",
                    self.timeout.as_millis()
                ))
            })?
            .map_err(unavailable)
    }

    async fn ping(&self) -> Result<()> {
        let pong: String = self.run(&redis::cmd("PING")).await?;
        if pong != "PONG" {
            return Err(StoreError::Unavailable(format!(
                "redis answered {pong:?} to PING"
            )));
        }
        Ok(())
    }

    fn session_key(&self, id: &str) -> String {
        self.key(format!("s:{id}"))
    }

    /// Writes `row` (`nx`: only if no session has its ID) with its indexes; whether it was written.
    async fn put_session(&self, row: &SessionRow, nx: bool) -> Result<bool> {
        let (t, u, i, n, x) = session_columns(row);
        let v = StoredSession {
            d: base64::engine::general_purpose::STANDARD.encode(&row.data),
            e: row.expires_at.millis(),
            t,
            u,
            i,
            n: n.clone(),
            x,
        };
        let value = serde_json::to_string(&v).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let ttl = ttl_ms(row.expires_at, wall_ms());
        let mut set = redis::cmd("SET");
        set.arg(self.session_key(&row.id))
            .arg(value)
            .arg("PX")
            .arg(ttl);
        if nx {
            set.arg("NX");
        }
        let written: Option<String> = self.run(&set).await?;
        if written.is_none() {
            return Ok(false);
        }
        // The indexes: found by (IdP, NameID) for IdP-initiated logout, by user when a user is
        // deleted, by tenant (newest first) for the Web Manager, and by expiry for the purge.
        let e = row.expires_at.millis();
        let mut p = redis::pipe();
        p.cmd("ZADD")
            .arg(self.key("exp:s"))
            .arg(e)
            .arg(&row.id)
            .ignore();
        if let Some(t) = t {
            p.cmd("ZADD")
                .arg(self.key(format!("ts:{t}")))
                .arg(e)
                .arg(&row.id)
                .ignore();
            p.cmd("ZADD")
                .arg(self.key("ts:all"))
                .arg(e)
                .arg(&row.id)
                .ignore();
            p.cmd("SADD").arg(self.key("tenants")).arg(t).ignore();
        }
        let mut sets = Vec::new();
        if let Some(u) = u {
            sets.push(self.key(format!("u:{u}")));
        }
        if let (Some(i), Some(n)) = (i, &n) {
            sets.push(self.key(format!("saml:{i}:{}", name_hash(n))));
        }
        for k in sets {
            p.cmd("SADD").arg(&k).arg(&row.id).ignore();
            // A new set has no TTL: NX gives it one, GT lengthens it for a later session.
            p.cmd("PEXPIRE").arg(&k).arg(ttl).arg("NX").ignore();
            p.cmd("PEXPIRE").arg(&k).arg(ttl).arg("GT").ignore();
        }
        self.pipe::<()>(&p).await?;
        Ok(true)
    }

    async fn get_sessions(&self, ids: &[String]) -> Result<Vec<Option<StoredSession>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = redis::cmd("MGET");
        for id in ids {
            c.arg(self.session_key(id));
        }
        let raw: Vec<Option<String>> = self.run(&c).await?;
        Ok(raw
            .into_iter()
            .map(|v| v.and_then(|v| serde_json::from_str(&v).ok()))
            .collect())
    }

    fn row_of(id: String, s: StoredSession) -> Option<SessionRow> {
        let data = base64::engine::general_purpose::STANDARD
            .decode(&s.d)
            .ok()?;
        Some(SessionRow {
            id,
            agent: sessions::agent_of(&data),
            data,
            expires_at: UnixTime::from_millis(s.e),
        })
    }

    /// Deletes sessions and their index entries.
    async fn delete_sessions(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let stored = self.get_sessions(ids).await?;
        let mut p = redis::pipe();
        for (id, s) in ids.iter().zip(stored) {
            p.cmd("DEL").arg(self.session_key(id)).ignore();
            p.cmd("ZREM").arg(self.key("exp:s")).arg(id).ignore();
            p.cmd("ZREM").arg(self.key("ts:all")).arg(id).ignore();
            if let Some(s) = s {
                if let Some(t) = s.t {
                    p.cmd("ZREM")
                        .arg(self.key(format!("ts:{t}")))
                        .arg(id)
                        .ignore();
                }
                if let Some(u) = s.u {
                    p.cmd("SREM")
                        .arg(self.key(format!("u:{u}")))
                        .arg(id)
                        .ignore();
                }
                if let (Some(i), Some(n)) = (s.i, &s.n) {
                    p.cmd("SREM")
                        .arg(self.key(format!("saml:{i}:{}", name_hash(n))))
                        .arg(id)
                        .ignore();
                }
            }
        }
        self.pipe::<()>(&p).await
    }

    /// Removes up to `batch` members of the expiry set `set` that expired by `now`, deleting
    /// their keys (`key_of`); how many.
    async fn purge_set(
        &self,
        set: &str,
        now: UnixTime,
        batch: u32,
        key_of: impl Fn(&str) -> String,
    ) -> Result<Vec<String>> {
        let set = self.key(set);
        let expired: Vec<String> = self
            .run(
                redis::cmd("ZRANGE")
                    .arg(&set)
                    .arg("-inf")
                    .arg(now.millis())
                    .arg("BYSCORE")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(batch),
            )
            .await?;
        if expired.is_empty() {
            return Ok(expired);
        }
        let mut p = redis::pipe();
        for m in &expired {
            p.cmd("DEL").arg(key_of(m)).ignore();
            p.cmd("ZREM").arg(&set).arg(m).ignore();
        }
        self.pipe::<()>(&p).await?;
        Ok(expired)
    }
}

#[derive(Serialize, Deserialize)]
struct StoredOAuth {
    tenant: i64,
    sp: i64,
    binding: String,
    relay: String,
    e: i64,
}

#[async_trait]
impl Store for RedisState {
    async fn oauth_pending_put(&self, p: &PendingOAuth) -> Result<()> {
        let v = serde_json::to_string(&StoredOAuth {
            tenant: p.tenant_id.0,
            sp: p.sp_id.0,
            binding: p.binding_hash.clone(),
            relay: p.relay_target.clone(),
            e: p.expires_at.millis(),
        })
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let written: Option<String> = self
            .run(
                redis::cmd("SET")
                    .arg(self.key(format!("oauth:{}", p.state_hash)))
                    .arg(v)
                    .arg("PX")
                    .arg(ttl_ms(p.expires_at, wall_ms()))
                    .arg("NX"),
            )
            .await?;
        if written.is_none() {
            return Err(StoreError::Conflict(
                "already exists: oauth_pending.state_hash".into(),
            ));
        }
        self.run::<()>(
            redis::cmd("ZADD")
                .arg(self.key("exp:oauth"))
                .arg(p.expires_at.millis())
                .arg(&p.state_hash),
        )
        .await
    }

    async fn oauth_pending_take(&self, state_hash: &str) -> Result<Option<PendingOAuth>> {
        let v: Option<String> = self
            .run(redis::cmd("GETDEL").arg(self.key(format!("oauth:{state_hash}"))))
            .await?;
        let Some(v) = v else { return Ok(None) };
        let s: StoredOAuth =
            serde_json::from_str(&v).map_err(|e| StoreError::Corrupt(format!("oauth: {e}")))?;
        let _ = self
            .run::<()>(
                redis::cmd("ZREM")
                    .arg(self.key("exp:oauth"))
                    .arg(state_hash),
            )
            .await;
        Ok(Some(PendingOAuth {
            state_hash: state_hash.to_string(),
            tenant_id: TenantId(s.tenant),
            sp_id: SpId(s.sp),
            binding_hash: s.binding,
            relay_target: s.relay,
            expires_at: UnixTime::from_millis(s.e),
        }))
    }

    async fn pending_logout_put(&self, p: &PendingLogout) -> Result<()> {
        let written: Option<String> = self
            .run(
                redis::cmd("SET")
                    .arg(self.key(format!("plo:{}", p.id)))
                    .arg(format!("{}:{}", p.idp_id.0, p.expires_at.millis()))
                    .arg("PX")
                    .arg(ttl_ms(p.expires_at, wall_ms()))
                    .arg("NX"),
            )
            .await?;
        if written.is_none() {
            return Err(StoreError::Conflict(
                "already exists: pending_logouts.id".into(),
            ));
        }
        self.run::<()>(
            redis::cmd("ZADD")
                .arg(self.key("exp:plo"))
                .arg(p.expires_at.millis())
                .arg(&p.id),
        )
        .await
    }

    async fn pending_logout_take(&self, id: &str, now: UnixTime) -> Result<Option<PendingLogout>> {
        let v: Option<String> = self
            .run(redis::cmd("GETDEL").arg(self.key(format!("plo:{id}"))))
            .await?;
        let Some(v) = v else { return Ok(None) };
        let _ = self
            .run::<()>(redis::cmd("ZREM").arg(self.key("exp:plo")).arg(id))
            .await;
        let parsed = v
            .split_once(':')
            .and_then(|(i, e)| Some((i.parse().ok()?, e.parse().ok()?)));
        let Some((idp, e)) = parsed else {
            return Err(StoreError::Corrupt(format!("pending logout: {v:?}")));
        };
        let p = PendingLogout {
            id: id.to_string(),
            idp_id: IdpId(idp),
            expires_at: UnixTime::from_millis(e),
        };
        Ok((p.expires_at > now).then_some(p))
    }

    async fn session_create(&self, row: &SessionRow) -> Result<bool> {
        self.put_session(row, true).await
    }

    async fn session_save(&self, row: &SessionRow) -> Result<()> {
        self.put_session(row, false).await.map(|_| ())
    }

    async fn session_load(&self, id: &str, now: UnixTime) -> Result<Option<SessionRow>> {
        let v: Option<String> = self
            .run(redis::cmd("GET").arg(self.session_key(id)))
            .await?;
        let Some(v) = v else { return Ok(None) };
        let s: StoredSession =
            serde_json::from_str(&v).map_err(|e| StoreError::Corrupt(format!("session: {e}")))?;
        if s.e <= now.millis() {
            return Ok(None);
        }
        Ok(Self::row_of(id.to_string(), s))
    }

    async fn session_delete(&self, id: &str) -> Result<()> {
        self.delete_sessions(&[id.to_string()]).await
    }

    async fn sessions_by_saml(
        &self,
        idp: IdpId,
        name_id: &str,
        session_indexes: &[String],
    ) -> Result<Vec<String>> {
        let set = self.key(format!("saml:{}:{}", idp.0, name_hash(name_id)));
        let ids: Vec<String> = self.run(redis::cmd("SMEMBERS").arg(&set)).await?;
        let stored = self.get_sessions(&ids).await?;
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for (id, s) in ids.into_iter().zip(stored) {
            match s {
                Some(s) if s.n.as_deref() == Some(name_id) && s.i == Some(idp.0) => {
                    if session_indexes.is_empty()
                        || s.x.as_ref().is_some_and(|x| session_indexes.contains(x))
                    {
                        out.push(id);
                    }
                }
                Some(_) => {}
                None => gone.push(id),
            }
        }
        if !gone.is_empty() {
            let mut c = redis::cmd("SREM");
            c.arg(&set);
            for g in &gone {
                c.arg(g);
            }
            let _ = self.run::<()>(&c).await;
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
        // Newest first, by expiry (sessions last alike: the latest to end began last).
        let set = match tenant {
            Some(t) => self.key(format!("ts:{}", t.0)),
            None => self.key("ts:all"),
        };
        let ids: Vec<String> = self
            .run(
                redis::cmd("ZRANGE")
                    .arg(&set)
                    .arg("+inf")
                    .arg(format!("({}", now.millis()))
                    .arg("BYSCORE")
                    .arg("REV")
                    .arg("LIMIT")
                    .arg(offset)
                    .arg(limit),
            )
            .await?;
        let stored = self.get_sessions(&ids).await?;
        Ok(ids
            .into_iter()
            .zip(stored)
            .filter_map(|(id, s)| s.and_then(|s| Self::row_of(id, s)))
            .filter(|r| r.agent.is_some())
            .collect())
    }

    async fn session_count(&self, now: UnixTime) -> Result<u64> {
        self.run(
            redis::cmd("ZCOUNT")
                .arg(self.key("exp:s"))
                .arg(format!("({}", now.millis()))
                .arg("+inf"),
        )
        .await
    }

    async fn user_delete(&self, id: UserId) -> Result<bool> {
        let deleted = self.inner.user_delete(id).await?;
        let ids: Vec<String> = self
            .run(redis::cmd("SMEMBERS").arg(self.key(format!("u:{}", id.0))))
            .await?;
        self.delete_sessions(&ids).await?;
        Ok(deleted)
    }

    async fn purge_expired(&self, now: UnixTime, batch: u32, failure_rows: u64) -> Result<u64> {
        let mut n = self.inner.purge_expired(now, batch, failure_rows).await?;
        let sessions = {
            let expired: Vec<String> = self
                .run(
                    redis::cmd("ZRANGE")
                        .arg(self.key("exp:s"))
                        .arg("-inf")
                        .arg(now.millis())
                        .arg("BYSCORE")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(batch),
                )
                .await?;
            self.delete_sessions(&expired).await?;
            expired.len() as u64
        };
        let plo = self
            .purge_set("exp:plo", now, batch, |m| self.key(format!("plo:{m}")))
            .await?
            .len() as u64;
        let oauth = self
            .purge_set("exp:oauth", now, batch, |m| self.key(format!("oauth:{m}")))
            .await?
            .len() as u64;
        n = n.max(sessions).max(plo).max(oauth);
        // The per-tenant lists lose what expired.
        let tenants: Vec<String> = self
            .run(redis::cmd("SMEMBERS").arg(self.key("tenants")))
            .await?;
        let mut p = redis::pipe();
        for t in tenants {
            p.cmd("ZREMRANGEBYSCORE")
                .arg(self.key(format!("ts:{t}")))
                .arg("-inf")
                .arg(now.millis())
                .ignore();
        }
        p.cmd("ZREMRANGEBYSCORE")
            .arg(self.key("ts:all"))
            .arg("-inf")
            .arg(now.millis())
            .ignore();
        self.pipe::<()>(&p).await?;
        Ok(n)
    }

    async fn ready(&self) -> Result<()> {
        self.inner.ready().await?;
        self.ping().await
    }

    fn stats(&self) -> StoreStats {
        self.inner.stats()
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

    // Everything else: the shared store's.

    async fn sp_insert(&self, sp: NewServiceProvider) -> Result<ServiceProvider> {
        self.inner.sp_insert(sp).await
    }

    async fn sp_list(&self) -> Result<Vec<ServiceProvider>> {
        self.inner.sp_list().await
    }

    async fn sp_delete(&self, id: SpId) -> Result<bool> {
        self.inner.sp_delete(id).await
    }

    async fn sp_update(&self, sp: &ServiceProvider) -> Result<()> {
        self.inner.sp_update(sp).await
    }

    async fn idp_insert(&self, idp: NewIdentityProvider) -> Result<IdentityProvider> {
        self.inner.idp_insert(idp).await
    }

    async fn idp_update(&self, idp: &IdentityProvider) -> Result<()> {
        self.inner.idp_update(idp).await
    }

    async fn idp_list(&self) -> Result<Vec<IdentityProvider>> {
        self.inner.idp_list().await
    }

    async fn idp_get(&self, id: IdpId) -> Result<Option<IdentityProvider>> {
        self.inner.idp_get(id).await
    }

    async fn idp_by_entity_id(&self, entity_id: &str) -> Result<Option<IdentityProvider>> {
        self.inner.idp_by_entity_id(entity_id).await
    }

    async fn idp_delete(&self, id: IdpId) -> Result<bool> {
        self.inner.idp_delete(id).await
    }

    async fn tenant_insert(&self, t: NewTenant) -> Result<Tenant> {
        self.inner.tenant_insert(t).await
    }

    async fn tenant_update(&self, t: &Tenant, renormalised: &[(UserId, String)]) -> Result<()> {
        self.inner.tenant_update(t, renormalised).await
    }

    async fn tenant_list(&self) -> Result<Vec<Tenant>> {
        self.inner.tenant_list().await
    }

    async fn tenant_get(&self, id: TenantId) -> Result<Option<Tenant>> {
        self.inner.tenant_get(id).await
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>> {
        self.inner.tenant_by_name(name).await
    }

    async fn tenant_delete(&self, id: TenantId) -> Result<bool> {
        self.inner.tenant_delete(id).await
    }

    async fn user_insert(&self, u: NewUser) -> Result<User> {
        self.inner.user_insert(u).await
    }

    async fn user_update(
        &self,
        u: &User,
        username_norm: &str,
        circuit_norm: Option<&str>,
    ) -> Result<()> {
        self.inner.user_update(u, username_norm, circuit_norm).await
    }

    async fn user_list(&self, tenant: Option<TenantId>) -> Result<Vec<User>> {
        self.inner.user_list(tenant).await
    }

    async fn user_by_norm(&self, tenant: TenantId, username_norm: &str) -> Result<Option<User>> {
        self.inner.user_by_norm(tenant, username_norm).await
    }

    async fn user_get(&self, id: UserId) -> Result<Option<User>> {
        self.inner.user_get(id).await
    }

    async fn user_by_circuit(&self, tenant: TenantId, circuit_norm: &str) -> Result<Option<User>> {
        self.inner.user_by_circuit(tenant, circuit_norm).await
    }

    async fn user_count_with_role(&self, role: Role) -> Result<u64> {
        self.inner.user_count_with_role(role).await
    }

    async fn circuit_get(&self, tenant: TenantId) -> Result<Option<CircuitSettings>> {
        self.inner.circuit_get(tenant).await
    }

    async fn circuit_list(&self) -> Result<Vec<CircuitSettings>> {
        self.inner.circuit_list().await
    }

    async fn circuit_put(&self, c: &CircuitSettings) -> Result<CircuitSettings> {
        self.inner.circuit_put(c).await
    }

    async fn replay_remember(&self, key: &str, expires: UnixTime, now: UnixTime) -> Result<bool> {
        self.inner.replay_remember(key, expires, now).await
    }

    async fn replay_seen(&self, key: &str, now: UnixTime) -> Result<bool> {
        self.inner.replay_seen(key, now).await
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
        self.inner.idp_metadata_status(id, status).await
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

    async fn setting(&self, key: &str) -> Result<Option<String>> {
        self.inner.setting(key).await
    }

    async fn setting_put(&self, key: &str, value: &str) -> Result<()> {
        self.inner.setting_put(key, value).await
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
}
