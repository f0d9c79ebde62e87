//! The embedded default: one SQLite file in WAL mode. Writes go through one connection (SQLite
//! has one writer at a time; queueing them in the pool avoids SQLITE_BUSY sleeps), reads through
//! several. `synchronous=NORMAL` in WAL mode loses nothing a process crash (SIGKILL) could take;
//! only a power loss can lose the last commits (`durability = "full"` closes that too).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use super::*;

const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../../migrations/sqlite/0001_initial.sql"))];

#[derive(Clone)]
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

fn unavailable(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            let what = d
                .message()
                .trim_start_matches("UNIQUE constraint failed: ")
                .to_string();
            StoreError::Conflict(format!("already exists: {what}"))
        }
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            StoreError::Conflict("still referenced by another object".into())
        }
        other => StoreError::Unavailable(other.to_string()),
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// Durability of commits against power loss (a process crash loses nothing either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    #[default]
    Normal,
    Full,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and applies the migrations.
    pub async fn open(path: &Path, durability: Durability) -> Result<Self> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let sync = match durability {
            Durability::Normal => SqliteSynchronous::Normal,
            Durability::Full => SqliteSynchronous::Full,
        };
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sync)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("temp_store", "memory");
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(opts.clone())
            .await
            .map_err(unavailable)?;
        let store = SqliteStore {
            write: write.clone(),
            read: write,
        };
        store.migrate().await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await
            .map_err(unavailable)?;
        Ok(SqliteStore { read, ..store })
    }

    /// A private in-memory database (tests): one connection, kept for the store's lifetime.
    pub async fn memory() -> Result<Self> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(unavailable)?
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts)
            .await
            .map_err(unavailable)?;
        let store = SqliteStore {
            write: pool.clone(),
            read: pool,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Closes every connection: later operations fail as with a database that is down.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)")
            .execute(&self.write)
            .await
            .map_err(unavailable)?;
        for &(version, sql) in MIGRATIONS {
            let mut tx = self.write.begin().await.map_err(unavailable)?;
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?")
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            if done.is_none() {
                sqlx::raw_sql(sql)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                sqlx::query("INSERT INTO schema_migrations (version) VALUES (?)")
                    .bind(version)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            }
            tx.commit().await.map_err(unavailable)?;
        }
        Ok(())
    }

    async fn begin(&self) -> Result<Transaction<'_, Sqlite>> {
        self.write.begin().await.map_err(unavailable)
    }
}

fn sp_from_row(r: &SqliteRow) -> Result<ServiceProvider> {
    Ok(ServiceProvider {
        id: SpId(r.try_get("id").map_err(unavailable)?),
        entity_id: r.try_get("entity_id").map_err(unavailable)?,
        host_url: r.try_get("host_url").map_err(unavailable)?,
        certificate_pem: r.try_get("certificate_pem").map_err(unavailable)?,
        private_key_pem: r
            .try_get::<Option<String>, _>("private_key_pem")
            .map_err(unavailable)?
            .map(Secret::new),
    })
}

fn binding(s: &str) -> Result<Binding> {
    Binding::parse(s).ok_or_else(|| corrupt("binding", s))
}

fn idp_from_row(r: &SqliteRow) -> Result<IdentityProvider> {
    let username: String = r.try_get("username_mapping").map_err(unavailable)?;
    let trust: String = r.try_get("trust").map_err(unavailable)?;
    Ok(IdentityProvider {
        id: IdpId(r.try_get("id").map_err(unavailable)?),
        name: r.try_get("name").map_err(unavailable)?,
        entity_id: r.try_get("entity_id").map_err(unavailable)?,
        sso_url: r.try_get("sso_url").map_err(unavailable)?,
        sso_binding: binding(&r.try_get::<String, _>("sso_binding").map_err(unavailable)?)?,
        slo_url: r.try_get("slo_url").map_err(unavailable)?,
        slo_response_url: r.try_get("slo_response_url").map_err(unavailable)?,
        slo_binding: binding(&r.try_get::<String, _>("slo_binding").map_err(unavailable)?)?,
        username: serde_json::from_str(&username).map_err(|e| corrupt("username mapping", e))?,
        trust: serde_json::from_str(&trust).map_err(|e| corrupt("trust", e))?,
        allow_sha1: r.try_get("allow_sha1").map_err(unavailable)?,
        name_id_format: r.try_get("name_id_format").map_err(unavailable)?,
        authn_context: r.try_get("authn_context").map_err(unavailable)?,
    })
}

fn tenant_from_row(r: &SqliteRow) -> Result<Tenant> {
    let domains: String = r.try_get("login_domains").map_err(unavailable)?;
    Ok(Tenant {
        id: TenantId(r.try_get("id").map_err(unavailable)?),
        name: r.try_get("name").map_err(unavailable)?,
        login_domains: serde_json::from_str(&domains).map_err(|e| corrupt("login domains", e))?,
        sso_enabled: r.try_get("sso_enabled").map_err(unavailable)?,
        idp_id: r
            .try_get::<Option<i64>, _>("idp_id")
            .map_err(unavailable)?
            .map(IdpId),
        slo_enabled: r.try_get("slo_enabled").map_err(unavailable)?,
        idp_initiated: r.try_get("idp_initiated").map_err(unavailable)?,
        username_rule: UsernameRule {
            strip_domain: r.try_get("strip_domain").map_err(unavailable)?,
            case_insensitive: r.try_get("case_insensitive").map_err(unavailable)?,
        },
    })
}

fn user_from_row(r: &SqliteRow) -> Result<User> {
    let roles: String = r.try_get("roles").map_err(unavailable)?;
    Ok(User {
        id: UserId(r.try_get("id").map_err(unavailable)?),
        tenant_id: TenantId(r.try_get("tenant_id").map_err(unavailable)?),
        username: r.try_get("username").map_err(unavailable)?,
        display_name: r.try_get("display_name").map_err(unavailable)?,
        circuit_user: r.try_get("circuit_user").map_err(unavailable)?,
        password_hash: r
            .try_get::<Option<String>, _>("password_hash")
            .map_err(unavailable)?
            .map(Secret::new),
        roles: serde_json::from_str(&roles).map_err(|e| corrupt("roles", e))?,
    })
}

fn json<T: serde::Serialize>(v: &T) -> String {
    // Serializing our own plain data types to JSON cannot fail.
    serde_json::to_string(v).expect("invariant: plain data serializes")
}

fn session_from_row(r: &SqliteRow) -> Result<SessionRow> {
    let data: Vec<u8> = r.try_get("data").map_err(unavailable)?;
    Ok(SessionRow {
        id: r.try_get("id").map_err(unavailable)?,
        agent: sessions::agent_of(&data),
        data,
        expires_at: UnixTime::from_millis(r.try_get("expires_at").map_err(unavailable)?),
    })
}

fn circuit_norm(c: &Option<String>) -> Option<String> {
    c.as_ref().map(|c| c.trim().to_lowercase())
}

#[async_trait]
impl Store for SqliteStore {
    async fn sp_insert(&self, sp: NewServiceProvider) -> Result<ServiceProvider> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO service_providers (entity_id, host_url, certificate_pem, private_key_pem) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(&sp.entity_id)
        .bind(&sp.host_url)
        .bind(&sp.certificate_pem)
        .bind(sp.private_key_pem.as_ref().map(|k| k.secret().to_string()))
        .fetch_one(&self.write)
        .await
        .map_err(unavailable)?;
        Ok(ServiceProvider {
            id: SpId(id),
            entity_id: sp.entity_id,
            host_url: sp.host_url,
            certificate_pem: sp.certificate_pem,
            private_key_pem: sp.private_key_pem,
        })
    }

    async fn sp_list(&self) -> Result<Vec<ServiceProvider>> {
        let rows = sqlx::query("SELECT * FROM service_providers ORDER BY id")
            .fetch_all(&self.read)
            .await
            .map_err(unavailable)?;
        rows.iter().map(sp_from_row).collect()
    }

    async fn sp_delete(&self, id: SpId) -> Result<bool> {
        let r = sqlx::query("DELETE FROM service_providers WHERE id = ?")
            .bind(id.0)
            .execute(&self.write)
            .await
            .map_err(unavailable)?;
        Ok(r.rows_affected() > 0)
    }

    async fn idp_insert(&self, idp: NewIdentityProvider) -> Result<IdentityProvider> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO identity_providers (name, entity_id, sso_url, sso_binding, slo_url, slo_response_url, slo_binding, \
             username_mapping, trust, allow_sha1, name_id_format, authn_context) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&idp.name)
        .bind(&idp.entity_id)
        .bind(&idp.sso_url)
        .bind(idp.sso_binding.as_str())
        .bind(&idp.slo_url)
        .bind(&idp.slo_response_url)
        .bind(idp.slo_binding.as_str())
        .bind(json(&idp.username))
        .bind(json(&idp.trust))
        .bind(idp.allow_sha1)
        .bind(&idp.name_id_format)
        .bind(&idp.authn_context)
        .fetch_one(&self.write)
        .await
        .map_err(unavailable)?;
        Ok(idp.with_id(IdpId(id)))
    }

    async fn idp_update(&self, idp: &IdentityProvider) -> Result<()> {
        sqlx::query(
            "UPDATE identity_providers SET name = ?, entity_id = ?, sso_url = ?, sso_binding = ?, slo_url = ?, slo_response_url = ?, \
             slo_binding = ?, username_mapping = ?, trust = ?, allow_sha1 = ?, name_id_format = ?, authn_context = ? WHERE id = ?",
        )
        .bind(&idp.name)
        .bind(&idp.entity_id)
        .bind(&idp.sso_url)
        .bind(idp.sso_binding.as_str())
        .bind(&idp.slo_url)
        .bind(&idp.slo_response_url)
        .bind(idp.slo_binding.as_str())
        .bind(json(&idp.username))
        .bind(json(&idp.trust))
        .bind(idp.allow_sha1)
        .bind(&idp.name_id_format)
        .bind(&idp.authn_context)
        .bind(idp.id.0)
        .execute(&self.write)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn idp_list(&self) -> Result<Vec<IdentityProvider>> {
        let rows = sqlx::query("SELECT * FROM identity_providers ORDER BY id")
            .fetch_all(&self.read)
            .await
            .map_err(unavailable)?;
        rows.iter().map(idp_from_row).collect()
    }

    async fn idp_get(&self, id: IdpId) -> Result<Option<IdentityProvider>> {
        let row = sqlx::query("SELECT * FROM identity_providers WHERE id = ?")
            .bind(id.0)
            .fetch_optional(&self.read)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(idp_from_row).transpose()
    }

    async fn idp_by_entity_id(&self, entity_id: &str) -> Result<Option<IdentityProvider>> {
        let row = sqlx::query("SELECT * FROM identity_providers WHERE entity_id = ?")
            .bind(entity_id)
            .fetch_optional(&self.read)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(idp_from_row).transpose()
    }

    async fn idp_delete(&self, id: IdpId) -> Result<bool> {
        let mut tx = self.begin().await?;
        let users: Vec<String> =
            sqlx::query_scalar("SELECT name FROM tenants WHERE idp_id = ? ORDER BY name")
                .bind(id.0)
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable)?;
        if !users.is_empty() {
            return Err(StoreError::Conflict(format!(
                "the identity provider is used by tenant(s) {}",
                users.join(", ")
            )));
        }
        let r = sqlx::query("DELETE FROM identity_providers WHERE id = ?")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(r.rows_affected() > 0)
    }

    async fn tenant_insert(&self, t: NewTenant) -> Result<Tenant> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tenants (name, login_domains, sso_enabled, idp_id, slo_enabled, idp_initiated, strip_domain, case_insensitive) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&t.name)
        .bind(json(&t.login_domains))
        .bind(t.sso_enabled)
        .bind(t.idp_id.map(|i| i.0))
        .bind(t.slo_enabled)
        .bind(t.idp_initiated)
        .bind(t.username_rule.strip_domain)
        .bind(t.username_rule.case_insensitive)
        .fetch_one(&self.write)
        .await
        .map_err(unavailable)?;
        Ok(Tenant {
            id: TenantId(id),
            name: t.name,
            login_domains: t.login_domains,
            sso_enabled: t.sso_enabled,
            idp_id: t.idp_id,
            slo_enabled: t.slo_enabled,
            idp_initiated: t.idp_initiated,
            username_rule: t.username_rule,
        })
    }

    async fn tenant_update(&self, t: &Tenant) -> Result<()> {
        let mut tx = self.begin().await?;
        let old: Option<(bool, bool)> =
            sqlx::query_as("SELECT strip_domain, case_insensitive FROM tenants WHERE id = ?")
                .bind(t.id.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
        sqlx::query(
            "UPDATE tenants SET name = ?, login_domains = ?, sso_enabled = ?, idp_id = ?, slo_enabled = ?, idp_initiated = ?, \
             strip_domain = ?, case_insensitive = ? WHERE id = ?",
        )
        .bind(&t.name)
        .bind(json(&t.login_domains))
        .bind(t.sso_enabled)
        .bind(t.idp_id.map(|i| i.0))
        .bind(t.slo_enabled)
        .bind(t.idp_initiated)
        .bind(t.username_rule.strip_domain)
        .bind(t.username_rule.case_insensitive)
        .bind(t.id.0)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        // A changed username rule changes every user's compared form; two users that now compare
        // equal make the whole change fail (unique index), and nothing is changed then.
        if old.is_some_and(|(s, c)| {
            s != t.username_rule.strip_domain || c != t.username_rule.case_insensitive
        }) {
            let users: Vec<(i64, String)> =
                sqlx::query_as("SELECT id, username FROM users WHERE tenant_id = ?")
                    .bind(t.id.0)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            sqlx::query("UPDATE users SET username_norm = '#' || id WHERE tenant_id = ?")
                .bind(t.id.0)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            for (id, name) in users {
                let norm = crate::domain::username::normalise(&name, t.username_rule);
                sqlx::query("UPDATE users SET username_norm = ? WHERE id = ?").bind(&norm).bind(id).execute(&mut *tx).await.map_err(|e| {
                    match unavailable(e) {
                        StoreError::Conflict(_) => StoreError::Conflict(format!("under the new username rule, user \"{name}\" would have the same name as another user of the tenant")),
                        other => other,
                    }
                })?;
            }
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(())
    }

    async fn tenant_list(&self) -> Result<Vec<Tenant>> {
        let rows = sqlx::query("SELECT * FROM tenants ORDER BY id")
            .fetch_all(&self.read)
            .await
            .map_err(unavailable)?;
        rows.iter().map(tenant_from_row).collect()
    }

    async fn tenant_get(&self, id: TenantId) -> Result<Option<Tenant>> {
        let row = sqlx::query("SELECT * FROM tenants WHERE id = ?")
            .bind(id.0)
            .fetch_optional(&self.read)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>> {
        let row = sqlx::query("SELECT * FROM tenants WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    async fn user_insert(&self, u: NewUser) -> Result<User> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (tenant_id, username, username_norm, display_name, circuit_user, circuit_user_norm, password_hash, roles) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(u.tenant_id.0)
        .bind(&u.username)
        .bind(&u.username_norm)
        .bind(&u.display_name)
        .bind(&u.circuit_user)
        .bind(circuit_norm(&u.circuit_user))
        .bind(u.password_hash.as_ref().map(|h| h.secret().to_string()))
        .bind(json(&u.roles))
        .fetch_one(&self.write)
        .await
        .map_err(unavailable)?;
        Ok(User {
            id: UserId(id),
            tenant_id: u.tenant_id,
            username: u.username,
            display_name: u.display_name,
            circuit_user: u.circuit_user,
            password_hash: u.password_hash,
            roles: u.roles,
        })
    }

    async fn user_update(&self, u: &User, username_norm: &str) -> Result<()> {
        sqlx::query(
            "UPDATE users SET tenant_id = ?, username = ?, username_norm = ?, display_name = ?, circuit_user = ?, circuit_user_norm = ?, \
             password_hash = ?, roles = ? WHERE id = ?",
        )
        .bind(u.tenant_id.0)
        .bind(&u.username)
        .bind(username_norm)
        .bind(&u.display_name)
        .bind(&u.circuit_user)
        .bind(circuit_norm(&u.circuit_user))
        .bind(u.password_hash.as_ref().map(|h| h.secret().to_string()))
        .bind(json(&u.roles))
        .bind(u.id.0)
        .execute(&self.write)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn user_list(&self, tenant: Option<TenantId>) -> Result<Vec<User>> {
        let rows = match tenant {
            Some(t) => {
                sqlx::query("SELECT * FROM users WHERE tenant_id = ? ORDER BY username_norm")
                    .bind(t.0)
                    .fetch_all(&self.read)
                    .await
            }
            None => {
                sqlx::query("SELECT * FROM users ORDER BY tenant_id, username_norm")
                    .fetch_all(&self.read)
                    .await
            }
        }
        .map_err(unavailable)?;
        rows.iter().map(user_from_row).collect()
    }

    async fn user_by_norm(&self, tenant: TenantId, username_norm: &str) -> Result<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE tenant_id = ? AND username_norm = ?")
            .bind(tenant.0)
            .bind(username_norm)
            .fetch_optional(&self.read)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_delete(&self, id: UserId) -> Result<bool> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = ?")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let r = sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(r.rows_affected() > 0)
    }

    async fn user_count_with_role(&self, role: Role) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM users, json_each(users.roles) WHERE json_each.value = ?",
        )
        .bind(role.as_str())
        .fetch_one(&self.read)
        .await
        .map_err(unavailable)?;
        Ok(n.max(0) as u64)
    }

    async fn pending_request_put(&self, p: &PendingRequest) -> Result<()> {
        sqlx::query(
            "INSERT INTO pending_requests (id, sp_id, tenant_id, idp_id, relay_target, binding_hash, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&p.id)
        .bind(p.sp_id.0)
        .bind(p.tenant_id.0)
        .bind(p.idp_id.0)
        .bind(&p.relay_target)
        .bind(&p.binding_hash)
        .bind(p.expires_at.millis())
        .execute(&self.write)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn pending_request_take(
        &self,
        id: &str,
        now: UnixTime,
    ) -> Result<Option<PendingRequest>> {
        let row = sqlx::query("DELETE FROM pending_requests WHERE id = ? RETURNING *")
            .bind(id)
            .fetch_optional(&self.write)
            .await
            .map_err(unavailable)?;
        let Some(r) = row else { return Ok(None) };
        let p = PendingRequest {
            id: r.try_get("id").map_err(unavailable)?,
            sp_id: SpId(r.try_get("sp_id").map_err(unavailable)?),
            tenant_id: TenantId(r.try_get("tenant_id").map_err(unavailable)?),
            idp_id: IdpId(r.try_get("idp_id").map_err(unavailable)?),
            relay_target: r.try_get("relay_target").map_err(unavailable)?,
            binding_hash: r.try_get("binding_hash").map_err(unavailable)?,
            expires_at: UnixTime::from_millis(r.try_get("expires_at").map_err(unavailable)?),
        };
        Ok((p.expires_at > now).then_some(p))
    }

    async fn pending_logout_put(&self, p: &PendingLogout) -> Result<()> {
        sqlx::query("INSERT INTO pending_logouts (id, idp_id, expires_at) VALUES (?, ?, ?)")
            .bind(&p.id)
            .bind(p.idp_id.0)
            .bind(p.expires_at.millis())
            .execute(&self.write)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn pending_logout_take(&self, id: &str, now: UnixTime) -> Result<Option<PendingLogout>> {
        let row: Option<(String, i64, i64)> = sqlx::query_as(
            "DELETE FROM pending_logouts WHERE id = ? RETURNING id, idp_id, expires_at",
        )
        .bind(id)
        .fetch_optional(&self.write)
        .await
        .map_err(unavailable)?;
        Ok(row
            .map(|(id, idp, exp)| PendingLogout {
                id,
                idp_id: IdpId(idp),
                expires_at: UnixTime::from_millis(exp),
            })
            .filter(|p| p.expires_at > now))
    }

    async fn replay_remember(&self, key: &str, expires: UnixTime, now: UnixTime) -> Result<bool> {
        // One statement: insert, or take over an entry that has expired; a live entry stays and
        // no row changes, which is the replay.
        let r = sqlx::query(
            "INSERT INTO replay_cache (key, expires_at) VALUES (?, ?) \
             ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE replay_cache.expires_at <= ?",
        )
        .bind(key)
        .bind(expires.millis())
        .bind(now.millis())
        .execute(&self.write)
        .await
        .map_err(unavailable)?;
        Ok(r.rows_affected() == 1)
    }

    async fn session_create(&self, row: &SessionRow) -> Result<bool> {
        let a = row.agent.as_ref();
        let saml = a.and_then(|a| a.saml.as_ref());
        let r = sqlx::query(
            "INSERT INTO sessions (id, data, expires_at, tenant_id, user_id, idp_id, name_id, session_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&row.id)
        .bind(&row.data)
        .bind(row.expires_at.millis())
        .bind(a.map(|a| a.tenant_id.0))
        .bind(a.map(|a| a.user_id.0))
        .bind(saml.map(|s| s.idp_id.0))
        .bind(saml.map(|s| s.name_id.clone()))
        .bind(saml.and_then(|s| s.session_index.clone()))
        .execute(&self.write)
        .await
        .map_err(unavailable)?;
        Ok(r.rows_affected() == 1)
    }

    async fn session_save(&self, row: &SessionRow) -> Result<()> {
        let a = row.agent.as_ref();
        let saml = a.and_then(|a| a.saml.as_ref());
        sqlx::query(
            "INSERT INTO sessions (id, data, expires_at, tenant_id, user_id, idp_id, name_id, session_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at, tenant_id = excluded.tenant_id, \
             user_id = excluded.user_id, idp_id = excluded.idp_id, name_id = excluded.name_id, session_index = excluded.session_index",
        )
        .bind(&row.id)
        .bind(&row.data)
        .bind(row.expires_at.millis())
        .bind(a.map(|a| a.tenant_id.0))
        .bind(a.map(|a| a.user_id.0))
        .bind(saml.map(|s| s.idp_id.0))
        .bind(saml.map(|s| s.name_id.clone()))
        .bind(saml.and_then(|s| s.session_index.clone()))
        .execute(&self.write)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn session_load(&self, id: &str, now: UnixTime) -> Result<Option<SessionRow>> {
        let row = sqlx::query(
            "SELECT id, data, expires_at FROM sessions WHERE id = ? AND expires_at > ?",
        )
        .bind(id)
        .bind(now.millis())
        .fetch_optional(&self.read)
        .await
        .map_err(unavailable)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn session_delete(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id = ?")
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn sessions_by_saml(
        &self,
        idp: IdpId,
        name_id: &str,
        session_indexes: &[String],
    ) -> Result<Vec<String>> {
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT id, session_index FROM sessions WHERE idp_id = ? AND name_id = ?",
        )
        .bind(idp.0)
        .bind(name_id)
        .fetch_all(&self.write)
        .await
        .map_err(unavailable)?;
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
        sqlx::query("INSERT INTO signin_failures (at, reference, endpoint, tenant, idp, reason, detail) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(f.at.millis())
            .bind(&f.reference)
            .bind(&f.endpoint)
            .bind(&f.tenant)
            .bind(&f.idp)
            .bind(&f.reason)
            .bind(&f.detail)
            .execute(&self.write)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn failures_recent(&self, limit: u32) -> Result<Vec<SignInFailure>> {
        let rows = sqlx::query("SELECT * FROM signin_failures ORDER BY id DESC LIMIT ?")
            .bind(limit as i64)
            .fetch_all(&self.read)
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|r| {
                Ok(SignInFailure {
                    at: UnixTime::from_millis(r.try_get("at").map_err(unavailable)?),
                    reference: r.try_get("reference").map_err(unavailable)?,
                    endpoint: r.try_get("endpoint").map_err(unavailable)?,
                    tenant: r.try_get("tenant").map_err(unavailable)?,
                    idp: r.try_get("idp").map_err(unavailable)?,
                    reason: r.try_get("reason").map_err(unavailable)?,
                    detail: r.try_get("detail").map_err(unavailable)?,
                })
            })
            .collect()
    }

    async fn purge_expired(&self, now: UnixTime) -> Result<u64> {
        let mut tx = self.begin().await?;
        let mut n = 0;
        for table in [
            "pending_requests",
            "pending_logouts",
            "replay_cache",
            "sessions",
        ] {
            let r = sqlx::query(&format!("DELETE FROM {table} WHERE expires_at <= ?"))
                .bind(now.millis())
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            n += r.rows_affected();
        }
        // The failure log keeps its newest 10,000 lines.
        let r = sqlx::query(
            "DELETE FROM signin_failures WHERE id <= (SELECT max(id) FROM signin_failures) - 10000",
        )
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        n += r.rows_affected();
        tx.commit().await.map_err(unavailable)?;
        Ok(n)
    }
}
