//! Administration with an actor: every change made by the Web Manager, the JSON API or the CLI
//! goes through [`Admin`], which runs the checked operation of [`super::admin`] and writes one
//! audit entry (who, what, when, the object before and after as a view without secrets). The
//! views are also what the JSON API answers.

use serde::Serialize;

use super::admin::{self, AdminError, IdpInput, SpInput, TenantInput, UserInput};
use super::*;
use crate::rng::Rng;
use crate::saml::UnixTime;
use crate::store::{ApiClient, ApiRole, AuditEntry, Store};

type Result<T> = std::result::Result<T, AdminError>;

/// Certificates are flagged this long before they expire.
pub const EXPIRY_WARNING_SECS: i64 = 30 * 24 * 3600;

/// A certificate as an administrator reads it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CertView {
    pub subject: String,
    pub sha256: String,
    pub not_after: Option<String>,
    /// Expired, or expiring within 30 days.
    pub expires_soon: bool,
}

/// `not_after` of a DER certificate, in seconds since the epoch.
fn not_after_secs(der: &[u8]) -> Option<i64> {
    let x = openssl::x509::X509::from_der(der).ok()?;
    let epoch = openssl::asn1::Asn1Time::from_unix(0).ok()?;
    let d = epoch.diff(x.not_after()).ok()?;
    Some(i64::from(d.days) * 86_400 + i64::from(d.secs))
}

/// What a certificate says, read once (OpenSSL's decoders cost ~0.3 ms a certificate: a list
/// of 200 IdPs would take 60 ms to show).
#[derive(Debug, Clone)]
struct CertFacts {
    subject: String,
    sha256: String,
    not_after: Option<i64>,
}

/// Certificates already read, by their text; bounded (cleared when full).
#[derive(Debug, Default)]
pub struct CertCache(std::sync::Mutex<std::collections::HashMap<String, Option<CertFacts>>>);

const CERT_CACHE_MAX: usize = 10_000;

impl CertCache {
    fn facts(&self, text: &str) -> Option<CertFacts> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = m.get(text) {
            return f.clone();
        }
        let f = crate::saml::xmldsig::TrustedCertificate::from_any(text.as_bytes())
            .ok()
            .map(|c| CertFacts {
                subject: c.subject(),
                sha256: c.sha256_hex(),
                not_after: not_after_secs(c.der()),
            });
        if m.len() >= CERT_CACHE_MAX {
            m.clear();
        }
        m.insert(text.to_string(), f.clone());
        f
    }

    /// The view of a certificate (PEM or base64 DER); `None` when it is not one.
    pub fn view(&self, text: &str, now: UnixTime) -> Option<CertView> {
        let f = self.facts(text)?;
        Some(CertView {
            subject: f.subject,
            sha256: f.sha256,
            not_after: f.not_after.map(|s| UnixTime::from_secs(s).to_rfc3339()),
            expires_soon: f
                .not_after
                .is_some_and(|s| s - EXPIRY_WARNING_SECS <= now.millis() / 1000),
        })
    }
}

impl CertView {
    /// From PEM or base64 DER; `None` when it is not a certificate.
    pub fn of(text: &str, now: UnixTime) -> Option<CertView> {
        CertCache::default().view(text, now)
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SpView {
    pub id: i64,
    pub host_url: String,
    pub entity_id: String,
    pub acs_url: String,
    pub slo_url: String,
    pub metadata_url: String,
    pub has_key: bool,
    pub certificate: Option<CertView>,
    /// Certificate rollover: published beside the current one until promoted.
    pub next_certificate: Option<CertView>,
    pub version: i64,
}

impl SpView {
    pub fn of(sp: &ServiceProvider, now: UnixTime) -> SpView {
        SpView::of_with(sp, now, &CertCache::default())
    }

    pub fn of_with(sp: &ServiceProvider, now: UnixTime, certs: &CertCache) -> SpView {
        SpView {
            id: sp.id.0,
            host_url: sp.host_url.clone(),
            entity_id: sp.entity_id.clone(),
            acs_url: sp.acs_url(),
            slo_url: sp.slo_url(),
            metadata_url: sp.metadata_url(),
            has_key: sp.private_key_pem.is_some(),
            certificate: sp
                .certificate_pem
                .as_deref()
                .and_then(|c| certs.view(c, now)),
            next_certificate: sp
                .next_certificate_pem
                .as_deref()
                .and_then(|c| certs.view(c, now)),
            version: sp.version,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrustView {
    Certificates { certificates: Vec<CertView> },
    Fingerprint { algorithm: String, value: String },
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IdpView {
    pub id: i64,
    pub name: String,
    pub entity_id: String,
    pub sso_url: String,
    pub sso_binding: Binding,
    pub slo_url: Option<String>,
    pub slo_response_url: Option<String>,
    pub slo_binding: Binding,
    /// The claim compared with user names, or `NameID`.
    pub username_mapping: String,
    pub trust: TrustView,
    pub allow_sha1: bool,
    pub name_id_format: Option<String>,
    pub authn_context: Option<String>,
    pub metadata_url: Option<String>,
    /// The last fetch of the metadata URL: when, and why it failed.
    pub metadata_status: Option<MetadataStatusView>,
    pub endpoints: IdpEndpoints,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetadataStatusView {
    pub checked_at: String,
    pub error: Option<String>,
}

impl IdpView {
    pub fn of(i: &IdentityProvider, now: UnixTime) -> IdpView {
        IdpView::of_with(i, now, &CertCache::default())
    }

    /// The view, its certificates read through `certs`.
    pub fn of_with(i: &IdentityProvider, now: UnixTime, certs: &CertCache) -> IdpView {
        IdpView {
            id: i.id.0,
            name: i.name.clone(),
            entity_id: i.entity_id.clone(),
            sso_url: i.sso_url.clone(),
            sso_binding: i.sso_binding,
            slo_url: i.slo_url.clone(),
            slo_response_url: i.slo_response_url.clone(),
            slo_binding: i.slo_binding,
            username_mapping: mapping_text(&i.username),
            trust: match &i.trust {
                TrustConfig::Certificates(c) => TrustView::Certificates {
                    certificates: c.iter().filter_map(|c| certs.view(c, now)).collect(),
                },
                TrustConfig::Fingerprint { algorithm, hex } => TrustView::Fingerprint {
                    algorithm: algorithm.clone(),
                    value: hex.clone(),
                },
            },
            allow_sha1: i.allow_sha1,
            name_id_format: i.name_id_format.clone(),
            authn_context: i.authn_context.clone(),
            metadata_url: i.metadata_url.clone(),
            metadata_status: i.metadata_status.as_ref().map(|m| MetadataStatusView {
                checked_at: m.checked_at.to_rfc3339(),
                error: m.error.clone(),
            }),
            endpoints: i.endpoints.clone(),
            version: i.version,
        }
    }
}

/// The username mapping as typed in the forms: the claim name, or `NameID`.
pub fn mapping_text(m: &UsernameMapping) -> String {
    match m {
        UsernameMapping::NameId => "NameID".into(),
        UsernameMapping::Attribute(a) => a.clone(),
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TenantView {
    pub name: String,
    pub display_name: String,
    pub login_domains: Vec<String>,
    pub sso_enabled: bool,
    /// The IdP's name.
    pub idp: Option<String>,
    pub slo_enabled: bool,
    pub idp_initiated: bool,
    pub strip_domain: bool,
    pub case_insensitive: bool,
    pub version: i64,
}

impl TenantView {
    pub fn of(t: &Tenant, idps: &[IdentityProvider]) -> TenantView {
        TenantView {
            name: t.name.clone(),
            display_name: t.display_name.clone(),
            login_domains: t.login_domains.clone(),
            sso_enabled: t.sso_enabled,
            idp: t.idp_id.map(|id| {
                idps.iter()
                    .find(|i| i.id == id)
                    .map_or_else(|| id.to_string(), |i| i.name.clone())
            }),
            slo_enabled: t.slo_enabled,
            idp_initiated: t.idp_initiated,
            strip_domain: t.username_rule.strip_domain,
            case_insensitive: t.username_rule.case_insensitive,
            version: t.version,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UserView {
    pub tenant: String,
    pub username: String,
    pub display_name: String,
    pub circuit_user: Option<String>,
    pub roles: Vec<Role>,
    pub has_password: bool,
    pub must_change_password: bool,
    pub version: i64,
}

impl UserView {
    pub fn of(u: &User, tenant: &str) -> UserView {
        UserView {
            tenant: tenant.to_string(),
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            circuit_user: u.circuit_user.clone(),
            roles: u.roles.clone(),
            has_password: u.password_hash.is_some(),
            must_change_password: u.must_change_password,
            version: u.version,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ApiClientView {
    pub id: i64,
    pub name: String,
    pub token_prefix: String,
    pub role: &'static str,
    pub tenant: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub version: i64,
}

impl ApiClientView {
    pub fn of(c: &ApiClient, tenants: &[Tenant]) -> ApiClientView {
        let (role, tenant) = match &c.role {
            ApiRole::CentralAdmin => ("central-admin", None),
            ApiRole::TenantManager(t) => (
                "tenant-manager",
                Some(
                    tenants
                        .iter()
                        .find(|x| x.id == *t)
                        .map_or_else(|| t.to_string(), |x| x.name.clone()),
                ),
            ),
        };
        ApiClientView {
            id: c.id,
            name: c.name.clone(),
            token_prefix: c.token_prefix.clone(),
            role,
            tenant,
            created_at: c.created_at.to_rfc3339(),
            last_used_at: c.last_used_at.map(|t| t.to_rfc3339()),
            version: c.version,
        }
    }
}

/// The SHA-256 (hex) an API token or a session token is kept as.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// An API client just made (or given a new token): the token is in here once, never stored.
pub struct NewToken {
    pub client: ApiClient,
    pub token: Secret,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("client", &self.client)
            .field("token", &"[redacted]")
            .finish()
    }
}

/// Administration by someone: `actor` is `user:<tenant>/<name>`, `api:<client>` or
/// `cli:<os user>`.
pub struct Admin<'a> {
    pub store: &'a dyn Store,
    pub rng: &'a dyn Rng,
    pub actor: String,
    pub now: UnixTime,
    /// Told of every change once it is recorded (the service's event stream).
    pub on_change: Option<ChangeHook>,
}

/// What [`Admin`] calls after recording a change.
pub type ChangeHook = std::sync::Arc<dyn Fn(&AuditEntry) + Send + Sync>;

pub(crate) fn to_json<T: Serialize>(v: &T) -> String {
    // Our own plain views serialize without fail.
    serde_json::to_string(v).expect("invariant: plain data serializes")
}

impl Admin<'_> {
    pub(crate) async fn record(
        &self,
        action: &str,
        object: String,
        before: Option<String>,
        after: Option<String>,
    ) -> Result<()> {
        let entry = AuditEntry {
            id: 0,
            at: self.now,
            actor: self.actor.clone(),
            action: action.into(),
            object,
            before,
            after,
        };
        self.store.audit_record(&entry).await?;
        if let Some(hook) = &self.on_change {
            hook(&entry);
        }
        Ok(())
    }

    /// A stale edit, said with who changed the object last and when.
    pub(crate) async fn stale(&self, object: &str, e: AdminError) -> AdminError {
        let AdminError::Stale(m) = e else { return e };
        match self.store.audit_list(Some(object), None, 1).await {
            Ok(v) if !v.is_empty() && v[0].object == object => AdminError::Stale(format!(
                "changed by {} at {}: reload it and make your change again (nothing was saved)",
                v[0].actor, v[0].at
            )),
            _ => AdminError::Stale(format!("{m}: reload it and make your change again")),
        }
    }

    async fn idps(&self) -> Result<Vec<IdentityProvider>> {
        Ok(self.store.idp_list().await?)
    }

    pub async fn sp_add(&self, input: SpInput) -> Result<ServiceProvider> {
        let sp = admin::sp_add(self.store, self.rng, input).await?;
        let after = to_json(&SpView::of(&sp, self.now));
        self.record("sp.add", format!("sp:{}", sp.id), None, Some(after))
            .await?;
        Ok(sp)
    }

    pub async fn sp_set(&self, selector: &str, input: SpInput) -> Result<ServiceProvider> {
        let before = admin::sp_find(self.store, selector).await?;
        let object = format!("sp:{}", before.id);
        let sp = match admin::sp_set(self.store, self.rng, selector, input).await {
            Ok(sp) => sp,
            Err(e) => return Err(self.stale(&object, e).await),
        };
        self.record(
            "sp.set",
            object,
            Some(to_json(&SpView::of(&before, self.now))),
            Some(to_json(&SpView::of(&sp, self.now))),
        )
        .await?;
        Ok(sp)
    }

    pub async fn sp_rm(&self, selector: &str) -> Result<ServiceProvider> {
        let sp = admin::sp_rm(self.store, selector).await?;
        self.record(
            "sp.rm",
            format!("sp:{}", sp.id),
            Some(to_json(&SpView::of(&sp, self.now))),
            None,
        )
        .await?;
        Ok(sp)
    }

    pub async fn idp_add(&self, input: IdpInput) -> Result<IdentityProvider> {
        let i = admin::idp_add(self.store, input).await?;
        self.record(
            "idp.add",
            format!("idp:{}", i.id),
            None,
            Some(to_json(&IdpView::of(&i, self.now))),
        )
        .await?;
        Ok(i)
    }

    pub async fn idp_import(
        &self,
        metadata: &[u8],
        select_entity: Option<&str>,
        input: IdpInput,
    ) -> Result<IdentityProvider> {
        let i = admin::idp_import(self.store, metadata, select_entity, input).await?;
        self.record(
            "idp.import",
            format!("idp:{}", i.id),
            None,
            Some(to_json(&IdpView::of(&i, self.now))),
        )
        .await?;
        Ok(i)
    }

    pub async fn idp_set(&self, selector: &str, input: IdpInput) -> Result<IdentityProvider> {
        let before = admin::idp_find(self.store, selector).await?;
        let object = format!("idp:{}", before.id);
        let i = match admin::idp_set(self.store, selector, input).await {
            Ok(i) => i,
            Err(e) => return Err(self.stale(&object, e).await),
        };
        self.record(
            "idp.set",
            object,
            Some(to_json(&IdpView::of(&before, self.now))),
            Some(to_json(&IdpView::of(&i, self.now))),
        )
        .await?;
        Ok(i)
    }

    /// Takes what `idp`'s metadata URL gave (or why it gave nothing): its signing certificates
    /// replace the trusted ones when they differ (audited, before and after), and the outcome is
    /// kept on the IdP. A fingerprint-trusted IdP keeps its fingerprint; metadata without a
    /// signing certificate changes nothing (the trusted ones are kept, and it is said why).
    pub async fn idp_metadata_refresh(
        &self,
        idp: &IdentityProvider,
        fetched: std::result::Result<Vec<u8>, String>,
    ) -> Result<RefreshOutcome> {
        let outcome = match fetched {
            Err(e) => RefreshOutcome::Failed(e),
            Ok(bytes) => {
                match crate::saml::metadata::idp::parse_idp_metadata(&bytes, Some(&idp.entity_id)) {
                    Err(e) => RefreshOutcome::Failed(format!("the metadata: {e}")),
                    Ok(d) if d.signing_certificates.is_empty() => RefreshOutcome::Failed(
                        "the metadata names no signing certificate: the trusted ones are kept"
                            .into(),
                    ),
                    Ok(d) => {
                        let fresh: Vec<String> =
                            d.signing_certificates.iter().map(|c| c.base64()).collect();
                        match &idp.trust {
                            TrustConfig::Fingerprint { .. } => RefreshOutcome::Fingerprint,
                            TrustConfig::Certificates(old) => {
                                let same = old.len() == fresh.len()
                                    && fresh.iter().all(|c| old.contains(c));
                                if same {
                                    RefreshOutcome::Unchanged
                                } else {
                                    let object = format!("idp:{}", idp.id);
                                    let input = IdpInput {
                                        certificates: fresh.clone(),
                                        version: Some(idp.version),
                                        ..Default::default()
                                    };
                                    match admin::idp_set(self.store, &idp.id.0.to_string(), input)
                                        .await
                                    {
                                        Ok(_) => {
                                            let views = |v: &[String]| {
                                                let cs: Vec<CertView> = v
                                                    .iter()
                                                    .filter_map(|c| CertView::of(c, self.now))
                                                    .collect();
                                                to_json(&cs)
                                            };
                                            self.record(
                                                "idp.metadata_refresh",
                                                object,
                                                Some(views(old)),
                                                Some(views(&fresh)),
                                            )
                                            .await?;
                                            RefreshOutcome::Changed
                                        }
                                        Err(AdminError::Store(e)) => return Err(e.into()),
                                        Err(e) => RefreshOutcome::Failed(format!(
                                            "the metadata's certificates were not taken: {e}"
                                        )),
                                    }
                                }
                            }
                        }
                    }
                }
            }
        };
        let error = match &outcome {
            RefreshOutcome::Failed(e) => Some(e.chars().take(512).collect()),
            _ => None,
        };
        self.store
            .idp_metadata_status(
                idp.id,
                &MetadataStatus {
                    checked_at: self.now,
                    error,
                },
            )
            .await?;
        Ok(outcome)
    }

    /// Starts (`on`) or stops capturing `tenant`'s failing SAML responses for the tracer; the
    /// capture's end.
    pub async fn capture_set(
        &self,
        captures: &crate::web::capture::Captures,
        tenant: &str,
        on: bool,
    ) -> Result<Option<UnixTime>> {
        let t = admin::tenant_find(self.store, tenant).await?;
        let until = if on {
            let idp = match t.idp_id {
                Some(id) => self.store.idp_get(id).await?.map(|i| i.name),
                None => None,
            };
            Some(captures.start(&t.name, idp, self.now))
        } else {
            captures.stop(&t.name);
            None
        };
        self.record(
            if on {
                "tenant.capture_on"
            } else {
                "tenant.capture_off"
            },
            format!("tenant:{}", t.name),
            None,
            until.map(|u| format!("until {}", u.to_rfc3339())),
        )
        .await?;
        Ok(until)
    }

    pub async fn idp_rm(&self, selector: &str) -> Result<IdentityProvider> {
        let i = admin::idp_rm(self.store, selector).await?;
        self.record(
            "idp.rm",
            format!("idp:{}", i.id),
            Some(to_json(&IdpView::of(&i, self.now))),
            None,
        )
        .await?;
        Ok(i)
    }

    pub async fn tenant_add(&self, name: &str, input: TenantInput) -> Result<Tenant> {
        let t = admin::tenant_add(self.store, name, input).await?;
        let idps = self.idps().await?;
        self.record(
            "tenant.add",
            format!("tenant:{}", t.name),
            None,
            Some(to_json(&TenantView::of(&t, &idps))),
        )
        .await?;
        Ok(t)
    }

    pub async fn tenant_set(&self, name: &str, input: TenantInput) -> Result<Tenant> {
        let before = admin::tenant_find(self.store, name).await?;
        let object = format!("tenant:{}", before.name);
        let t = match admin::tenant_set(self.store, name, input).await {
            Ok(t) => t,
            Err(e) => return Err(self.stale(&object, e).await),
        };
        let idps = self.idps().await?;
        self.record(
            "tenant.set",
            object,
            Some(to_json(&TenantView::of(&before, &idps))),
            Some(to_json(&TenantView::of(&t, &idps))),
        )
        .await?;
        Ok(t)
    }

    pub async fn tenant_rm(&self, name: &str) -> Result<Tenant> {
        let t = admin::tenant_rm(self.store, name).await?;
        let idps = self.idps().await?;
        self.record(
            "tenant.rm",
            format!("tenant:{}", t.name),
            Some(to_json(&TenantView::of(&t, &idps))),
            None,
        )
        .await?;
        Ok(t)
    }

    pub async fn multi_tenant_set(&self, on: bool, seed: bool) -> Result<()> {
        self.setting_set(admin::SETTING_MULTI_TENANT, on, seed)
            .await
    }

    /// Switches a stored on/off setting (`seed`: its value while none is stored).
    pub async fn setting_set(&self, key: &str, on: bool, seed: bool) -> Result<()> {
        let before = admin::setting_bool(self.store, key, seed).await?;
        self.store
            .setting_put(key, if on { "true" } else { "false" })
            .await?;
        self.record(
            "settings.set",
            format!("settings:{key}"),
            Some(before.to_string()),
            Some(on.to_string()),
        )
        .await
    }

    pub async fn user_add(&self, tenant: &str, input: UserInput) -> Result<User> {
        let u = admin::user_add(self.store, self.rng, tenant, input).await?;
        self.record(
            "user.add",
            format!("user:{tenant}/{}", u.username),
            None,
            Some(to_json(&UserView::of(&u, tenant))),
        )
        .await?;
        Ok(u)
    }

    pub async fn user_set(&self, tenant: &str, username: &str, input: UserInput) -> Result<User> {
        let (_, before) = admin::user_find(self.store, tenant, username).await?;
        let object = format!("user:{tenant}/{}", before.username);
        let u = match admin::user_set(self.store, self.rng, tenant, username, input).await {
            Ok(u) => u,
            Err(e) => return Err(self.stale(&object, e).await),
        };
        self.record(
            "user.set",
            object,
            Some(to_json(&UserView::of(&before, tenant))),
            Some(to_json(&UserView::of(&u, tenant))),
        )
        .await?;
        Ok(u)
    }

    pub async fn user_rm(&self, tenant: &str, username: &str) -> Result<User> {
        let u = admin::user_rm(self.store, tenant, username).await?;
        self.record(
            "user.rm",
            format!("user:{tenant}/{}", u.username),
            Some(to_json(&UserView::of(&u, tenant))),
            None,
        )
        .await?;
        Ok(u)
    }

    /// The signed-in user's own new password.
    pub async fn password_change(
        &self,
        user: &User,
        tenant: &str,
        new: &Secret,
        confirm: &Secret,
    ) -> Result<User> {
        let u = admin::password_change(self.store, self.rng, user, new, confirm).await?;
        self.record(
            "user.password",
            format!("user:{tenant}/{}", u.username),
            None,
            None,
        )
        .await?;
        Ok(u)
    }

    /// `user` enrols a TOTP second factor: `secret` (raw bytes) is checked against `code`, then
    /// kept encrypted under `key`. The code's step counts as used.
    pub async fn totp_enable(
        &self,
        key: &crate::secrets::SecretsKey,
        user: &User,
        tenant: &str,
        secret: &[u8],
        code: &str,
    ) -> Result<()> {
        let Some(step) = super::totp::check(secret, code, self.now, i64::MIN) else {
            return Err(AdminError::Invalid {
                field: Some("code"),
                message: "that code is not the one your app shows now: check that the app has the new key, and the device's clock".into(),
            });
        };
        let row = crate::store::TotpRow {
            secret: key.encrypt(self.rng, &totp_purpose(user.id), secret),
            last_step: step,
            enabled_at: self.now,
        };
        self.store.totp_put(user.id, &row).await?;
        self.record(
            "user.totp_on",
            format!("user:{tenant}/{}", user.username),
            None,
            None,
        )
        .await
    }

    /// Removes `user`'s second factor (the account itself, or a central administrator for a
    /// lost device). Not found: nothing was enrolled.
    pub async fn totp_disable(&self, user: &User, tenant: &str) -> Result<()> {
        if !self.store.totp_delete(user.id).await? {
            return Err(AdminError::NotFound(format!(
                "user {:?} of tenant {tenant:?} has no two-step verification",
                user.username
            )));
        }
        self.record(
            "user.totp_off",
            format!("user:{tenant}/{}", user.username),
            None,
            None,
        )
        .await
    }

    fn new_token(&self) -> Secret {
        let mut b = [0u8; 64];
        self.rng.fill(&mut b);
        Secret::new(hex::encode(b))
    }

    fn check_token(token: &Secret) -> Result<()> {
        let t = token.secret();
        if t.len() < 32 || t.len() > 256 || !t.chars().all(|c| c.is_ascii_graphic()) {
            return Err(AdminError::Invalid {
                field: Some("token"),
                message:
                    "a client token has 32 to 256 visible ASCII characters (or choose Generate)"
                        .into(),
            });
        }
        Ok(())
    }

    async fn api_role(&self, role: &str, tenant: Option<&str>) -> Result<ApiRole> {
        match (role, tenant.map(str::trim).filter(|t| !t.is_empty())) {
            ("central-admin", None) => Ok(ApiRole::CentralAdmin),
            ("central-admin", Some(_)) => Err(AdminError::Invalid {
                field: Some("tenant"),
                message: "a central-admin client acts for every tenant: give no tenant".into(),
            }),
            ("tenant-manager", Some(t)) => Ok(ApiRole::TenantManager(
                admin::tenant_find(self.store, t)
                    .await
                    .map_err(|e| AdminError::Invalid {
                        field: Some("tenant"),
                        message: e.to_string(),
                    })?
                    .id,
            )),
            ("tenant-manager", None) => Err(AdminError::Invalid {
                field: Some("tenant"),
                message: "a tenant-manager client needs its tenant".into(),
            }),
            (other, _) => Err(AdminError::Invalid {
                field: Some("role"),
                message: format!("role {other:?} is not central-admin or tenant-manager"),
            }),
        }
    }

    /// A new API client; with no token given, one of 64 random bytes (128 hex digits).
    pub async fn api_client_add(
        &self,
        name: &str,
        role: &str,
        tenant: Option<&str>,
        token: Option<Secret>,
    ) -> Result<NewToken> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 32 || name.chars().any(|c| c.is_control()) {
            return Err(AdminError::Invalid {
                field: Some("name"),
                message: "a client name has 1 to 32 characters".into(),
            });
        }
        let token = match token.filter(|t| !t.secret().is_empty()) {
            Some(t) => {
                Self::check_token(&t)?;
                t
            }
            None => self.new_token(),
        };
        let role = self.api_role(role, tenant).await?;
        if self
            .store
            .api_client_list()
            .await?
            .iter()
            .any(|c| c.name == name)
        {
            return Err(AdminError::Conflict {
                field: Some("name"),
                message: format!("an API client named {name:?} already exists"),
            });
        }
        let client = self
            .store
            .api_client_insert(&ApiClient {
                id: 0,
                name: name.to_string(),
                token_hash: token_hash(token.secret()),
                token_prefix: token.secret().chars().take(8).collect(),
                role,
                created_at: self.now,
                last_used_at: None,
                version: 1,
            })
            .await
            .map_err(|e| match AdminError::from(e) {
                AdminError::Conflict { .. } => AdminError::Conflict {
                    field: Some("token"),
                    message: "another API client has this token".into(),
                },
                e => e,
            })?;
        let tenants = self.store.tenant_list().await?;
        self.record(
            "api_client.add",
            format!("api_client:{}", client.name),
            None,
            Some(to_json(&ApiClientView::of(&client, &tenants))),
        )
        .await?;
        Ok(NewToken { client, token })
    }

    pub async fn api_client_find(&self, name: &str) -> Result<ApiClient> {
        self.store
            .api_client_list()
            .await?
            .into_iter()
            .find(|c| c.name == name || c.id.to_string() == name)
            .ok_or_else(|| AdminError::NotFound(format!("no API client named {name:?}")))
    }

    /// A new token for the client (the old one stops working at once).
    pub async fn api_client_regenerate(
        &self,
        name: &str,
        token: Option<Secret>,
        version: Option<i64>,
    ) -> Result<NewToken> {
        let mut c = self.api_client_find(name).await?;
        let object = format!("api_client:{}", c.name);
        if let Some(v) = version
            && v != c.version
        {
            return Err(self
                .stale(
                    &object,
                    AdminError::Stale("the API client was changed".into()),
                )
                .await);
        }
        let token = match token.filter(|t| !t.secret().is_empty()) {
            Some(t) => {
                Self::check_token(&t)?;
                t
            }
            None => self.new_token(),
        };
        c.token_hash = token_hash(token.secret());
        c.token_prefix = token.secret().chars().take(8).collect();
        if let Err(e) = self.store.api_client_update(&c).await {
            return Err(self.stale(&object, e.into()).await);
        }
        c.version += 1;
        self.record("api_client.regenerate", object, None, None)
            .await?;
        Ok(NewToken { client: c, token })
    }

    pub async fn api_client_rm(&self, name: &str) -> Result<ApiClient> {
        let c = self.api_client_find(name).await?;
        self.store.api_client_delete(c.id).await?;
        let tenants = self.store.tenant_list().await?;
        self.record(
            "api_client.rm",
            format!("api_client:{}", c.name),
            Some(to_json(&ApiClientView::of(&c, &tenants))),
            None,
        )
        .await?;
        Ok(c)
    }

    /// Ends an agent's session (by its handle, see [`session_handle`]).
    pub async fn session_end(&self, tenant: Option<TenantId>, handle: &str) -> Result<()> {
        // Handles are hashes: the sessions are looked through a page at a time.
        let mut offset = 0;
        let row = loop {
            let rows = self
                .store
                .sessions_of_tenant(tenant, self.now, offset, 1000)
                .await?;
            if rows.is_empty() {
                return Err(AdminError::NotFound(format!(
                    "no signed-in session {handle:?} (it may have ended already)"
                )));
            }
            if let Some(r) = rows.into_iter().find(|r| session_handle(&r.id) == handle) {
                break r;
            }
            offset += 1000;
        };
        self.store.session_delete(&row.id).await?;
        let who = row
            .agent
            .as_ref()
            .map(|a| format!("{}/{}", a.tenant, a.username))
            .unwrap_or_default();
        self.record("session.end", format!("session:{who}"), None, None)
            .await
    }
}

/// What names a session in the activity view and the API: a hash of its ID (the ID itself is
/// the cookie's bearer secret).
pub fn session_handle(session_id: &str) -> String {
    token_hash(session_id)[..16].to_string()
}

/// What a TOTP secret is encrypted for: its account (a value moved to another row does not
/// decrypt).
pub fn totp_purpose(user: crate::domain::UserId) -> String {
    format!("totp:user:{}", user.0)
}

/// What a metadata refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The certificates are those trusted already.
    Unchanged,
    /// The trusted certificates were replaced by the metadata's.
    Changed,
    /// The IdP is trusted by fingerprint: nothing taken.
    Fingerprint,
    /// Nothing taken, and why.
    Failed(String),
}
