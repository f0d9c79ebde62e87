//! Circuit sign-on per tenant (DESIGN §3.4): the tenant's registered OAuth 2.0 app (client ID and
//! secret), the agent portal URL its callback derives from, and the provider's login URL. A
//! generic OAuth 2.0 provider fits through the advanced fields (paths, scope, profile field,
//! PKCE, client authentication); OpenID Connect is the second kind (discovery, a signed ID token).
//!
//! The client secret must be sent back to the provider, so it is encrypted under the secrets key
//! (never hashed), bound to its tenant, and never shown: views say only whether one is set.

use serde::{Deserialize, Serialize};

use super::admin::{self, AdminError, at};
use super::audit::Admin;
use super::{Secret, TenantId};
use crate::saml::UnixTime;
use crate::secrets::SecretsKey;
use crate::store::Store;

type Result<T> = std::result::Result<T, AdminError>;

pub const DEFAULT_AUTHORIZE_PATH: &str = "/oauth/authorize";
pub const DEFAULT_TOKEN_PATH: &str = "/oauth/token";
pub const DEFAULT_PROFILE_PATH: &str = "/rest/v2/users/profile";
pub const DEFAULT_SCOPE: &str = "READ_USER_PROFILE";
pub const DEFAULT_PROFILE_FIELD: &str = "emailAddress";
pub const DEFAULT_OIDC_SCOPE: &str = "openid email";
pub const DEFAULT_OIDC_CLAIM: &str = "email";
/// The callback below the agent portal URL.
pub const CALLBACK_PATH: &str = "/oauth/circuit/callback";

/// Circuit's own OAuth 2.0 (a profile call after the token), or OpenID Connect (an ID token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    #[default]
    Oauth2,
    Oidc,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Oauth2 => "oauth2",
            ProviderKind::Oidc => "oidc",
        }
    }
    pub fn parse(s: &str) -> Option<ProviderKind> {
        match s {
            "oauth2" => Some(ProviderKind::Oauth2),
            "oidc" => Some(ProviderKind::Oidc),
            _ => None,
        }
    }
}

/// How the token request authenticates the client (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TokenAuth {
    /// `client_id` and `client_secret` in the form (Circuit's way).
    #[default]
    Post,
    /// HTTP Basic.
    Basic,
}

impl TokenAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenAuth::Post => "post",
            TokenAuth::Basic => "basic",
        }
    }
    pub fn parse(s: &str) -> Option<TokenAuth> {
        match s {
            "post" => Some(TokenAuth::Post),
            "basic" => Some(TokenAuth::Basic),
            _ => None,
        }
    }
}

/// A tenant's Circuit settings as stored (`client_secret` encrypted).
#[derive(Clone, PartialEq, Eq)]
pub struct CircuitSettings {
    pub tenant_id: TenantId,
    pub tenant: String,
    pub enabled: bool,
    pub kind: ProviderKind,
    pub client_id: String,
    /// `v1.<key id>.<base64>` (see [`crate::secrets`]).
    pub client_secret: Option<String>,
    /// The agent portal URL (an SP's host URL): the callback is below it.
    pub portal_url: String,
    /// The provider's base URL (for OpenID Connect: its issuer).
    pub login_url: String,
    pub authorize_path: String,
    pub token_path: String,
    pub profile_path: String,
    pub scope: String,
    /// The profile field (OAuth 2.0) or ID token claim (OpenID Connect) naming the Circuit user.
    pub profile_field: String,
    pub pkce: bool,
    pub token_auth: TokenAuth,
    pub version: i64,
    pub updated_at: UnixTime,
}

impl std::fmt::Debug for CircuitSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitSettings")
            .field("tenant", &self.tenant)
            .field("enabled", &self.enabled)
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .field("client_secret_set", &self.client_secret.is_some())
            .field("login_url", &self.login_url)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl CircuitSettings {
    /// What a tenant without settings shows: off, Circuit's paths.
    pub fn defaults(tenant_id: TenantId, tenant: &str) -> CircuitSettings {
        CircuitSettings {
            tenant_id,
            tenant: tenant.to_string(),
            enabled: false,
            kind: ProviderKind::Oauth2,
            client_id: String::new(),
            client_secret: None,
            portal_url: String::new(),
            login_url: String::new(),
            authorize_path: DEFAULT_AUTHORIZE_PATH.into(),
            token_path: DEFAULT_TOKEN_PATH.into(),
            profile_path: DEFAULT_PROFILE_PATH.into(),
            scope: DEFAULT_SCOPE.into(),
            profile_field: DEFAULT_PROFILE_FIELD.into(),
            pkce: false,
            token_auth: TokenAuth::Post,
            version: 0,
            updated_at: UnixTime::from_millis(0),
        }
    }

    /// `{portal URL}/oauth/circuit/callback`.
    pub fn callback_url(&self) -> String {
        format!("{}{CALLBACK_PATH}", self.portal_url)
    }

    pub fn authorize_url(&self) -> String {
        format!("{}{}", self.login_url, self.authorize_path)
    }
    pub fn token_url(&self) -> String {
        format!("{}{}", self.login_url, self.token_path)
    }
    pub fn profile_url(&self) -> String {
        format!("{}{}", self.login_url, self.profile_path)
    }
}

/// The associated data of a tenant's encrypted client secret: a value copied to another tenant's
/// row does not decrypt there.
fn secret_purpose(tenant: TenantId) -> String {
    format!("circuit client secret:{}", tenant.0)
}

/// The client secret in clear (for the token request).
pub fn client_secret(key: &SecretsKey, c: &CircuitSettings) -> std::result::Result<Secret, String> {
    let Some(stored) = &c.client_secret else {
        return Err("no client secret is set".into());
    };
    let plain = key
        .decrypt(&secret_purpose(c.tenant_id), stored)
        .map_err(|e| e.to_string())?;
    String::from_utf8(plain.to_vec())
        .map(Secret::new)
        .map_err(|_| "the client secret is not text".into())
}

/// What administrators read (and the API answers): never the secret.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CircuitView {
    pub tenant: String,
    pub enabled: bool,
    pub kind: ProviderKind,
    pub client_id: String,
    pub client_secret_set: bool,
    pub portal_url: String,
    pub login_url: String,
    /// Where the provider sends agents back: register it with the app.
    pub callback_url: Option<String>,
    pub authorize_path: String,
    pub token_path: String,
    pub profile_path: String,
    pub scope: String,
    pub profile_field: String,
    pub pkce: bool,
    pub token_auth: TokenAuth,
    pub version: i64,
}

impl CircuitView {
    pub fn of(c: &CircuitSettings) -> CircuitView {
        CircuitView {
            tenant: c.tenant.clone(),
            enabled: c.enabled,
            kind: c.kind,
            client_id: c.client_id.clone(),
            client_secret_set: c.client_secret.is_some(),
            portal_url: c.portal_url.clone(),
            login_url: c.login_url.clone(),
            callback_url: (!c.portal_url.is_empty()).then(|| c.callback_url()),
            authorize_path: c.authorize_path.clone(),
            token_path: c.token_path.clone(),
            profile_path: c.profile_path.clone(),
            scope: c.scope.clone(),
            profile_field: c.profile_field.clone(),
            pkce: c.pkce,
            token_auth: c.token_auth,
            version: c.version,
        }
    }
}

/// An edit: absent fields stay as they are; an empty or absent secret leaves the stored one.
#[derive(Debug, Default, Clone)]
pub struct CircuitInput {
    pub enabled: Option<bool>,
    pub kind: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    pub portal_url: Option<String>,
    pub login_url: Option<String>,
    pub authorize_path: Option<String>,
    pub token_path: Option<String>,
    pub profile_path: Option<String>,
    pub scope: Option<String>,
    pub profile_field: Option<String>,
    pub pkce: Option<bool>,
    pub token_auth: Option<String>,
    /// The version the edit is based on (`None`: whatever is stored).
    pub version: Option<i64>,
}

fn invalid<T>(field: &'static str, m: impl Into<String>) -> Result<T> {
    Err(AdminError::Invalid {
        field: Some(field),
        message: m.into(),
    })
}

fn visible_ascii(s: &str) -> bool {
    s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
}

/// An https URL (http only on loopback), without query or fragment or trailing slash.
pub fn check_login_url(url: &str) -> Result<String> {
    let u = admin::check_http_url("Circuit login URL", url).map_err(at("login_url"))?;
    if u.contains(['?', '#']) {
        return invalid(
            "login_url",
            format!("the Circuit login URL {u:?} must have no query or fragment"),
        );
    }
    if let Some(rest) = u.strip_prefix("http://") {
        let authority = rest.split('/').next().unwrap_or("");
        let host = match authority.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        };
        if !is_loopback_host(host) {
            return invalid(
                "login_url",
                format!(
                    "the Circuit login URL {u:?} must use https (plain http only on this machine's loopback)"
                ),
            );
        }
    }
    Ok(u)
}

fn check_path(field: &'static str, what: &str, p: &str) -> Result<String> {
    let p = p.trim();
    if !p.starts_with('/') || p.starts_with("//") || p.len() > 256 || !visible_ascii(p) {
        return invalid(
            field,
            format!("the {what} must be a path starting with / (at most 256 visible characters)"),
        );
    }
    if p.contains(['?', '#']) {
        return invalid(field, format!("the {what} must have no query or fragment"));
    }
    Ok(p.to_string())
}

/// Applies `input` to `c` (the stored settings, or the defaults) and checks the result.
async fn apply(
    store: &dyn Store,
    key: &SecretsKey,
    rng: &dyn crate::rng::Rng,
    c: &mut CircuitSettings,
    input: CircuitInput,
) -> Result<()> {
    if let Some(k) = input.kind.as_deref() {
        let kind = ProviderKind::parse(k).ok_or_else(|| AdminError::Invalid {
            field: Some("kind"),
            message: format!("the provider kind {k:?} is none of oauth2, oidc"),
        })?;
        if kind != c.kind {
            // The other kind's defaults follow unless the edit names its own.
            if kind == ProviderKind::Oidc {
                if c.scope == DEFAULT_SCOPE && input.scope.is_none() {
                    c.scope = DEFAULT_OIDC_SCOPE.into();
                }
                if c.profile_field == DEFAULT_PROFILE_FIELD && input.profile_field.is_none() {
                    c.profile_field = DEFAULT_OIDC_CLAIM.into();
                }
            } else {
                if c.scope == DEFAULT_OIDC_SCOPE && input.scope.is_none() {
                    c.scope = DEFAULT_SCOPE.into();
                }
                if c.profile_field == DEFAULT_OIDC_CLAIM && input.profile_field.is_none() {
                    c.profile_field = DEFAULT_PROFILE_FIELD.into();
                }
            }
            c.kind = kind;
        }
    }
    if let Some(id) = input.client_id {
        let id = id.trim();
        if !id.is_empty() && (id.len() > 128 || !visible_ascii(id)) {
            return invalid(
                "client_id",
                "the client ID must have 1 to 128 visible ASCII characters (no spaces)",
            );
        }
        c.client_id = id.to_string();
    }
    if let Some(s) = input.client_secret
        && !s.secret().is_empty()
    {
        let s = s.secret();
        if s.chars().count() > 512 || s.chars().any(char::is_control) {
            return invalid(
                "client_secret",
                "the client secret must have 1 to 512 characters, without control characters",
            );
        }
        c.client_secret = Some(key.encrypt(rng, &secret_purpose(c.tenant_id), s.as_bytes()));
    }
    if let Some(u) = input.portal_url {
        let u = u.trim().trim_end_matches('/');
        if u.is_empty() {
            c.portal_url = String::new();
        } else {
            let sps = store.sp_list().await?;
            if !sps.iter().any(|s| s.host_url == u) {
                let known: Vec<&str> = sps.iter().map(|s| s.host_url.as_str()).collect();
                return invalid(
                    "portal_url",
                    format!(
                        "the agent portal URL {u:?} is no service provider's host URL (the callback is below it); the service providers are: {}",
                        if known.is_empty() {
                            "none yet".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
            c.portal_url = u.to_string();
        }
    }
    if let Some(u) = input.login_url {
        c.login_url = if u.trim().is_empty() {
            String::new()
        } else {
            check_login_url(&u)?
        };
    }
    // The advanced fields: empty is the default (of the kind, for scope and field).
    let or = |v: Option<String>, default: &str| {
        v.map(|s| {
            if s.trim().is_empty() {
                default.to_string()
            } else {
                s
            }
        })
    };
    let oidc = c.kind == ProviderKind::Oidc;
    if let Some(p) = or(input.authorize_path, DEFAULT_AUTHORIZE_PATH) {
        c.authorize_path = check_path("authorize_path", "authorization path", &p)?;
    }
    if let Some(p) = or(input.token_path, DEFAULT_TOKEN_PATH) {
        c.token_path = check_path("token_path", "token path", &p)?;
    }
    if let Some(p) = or(input.profile_path, DEFAULT_PROFILE_PATH) {
        c.profile_path = check_path("profile_path", "profile path", &p)?;
    }
    let scope = or(
        input.scope,
        if oidc {
            DEFAULT_OIDC_SCOPE
        } else {
            DEFAULT_SCOPE
        },
    );
    let field = or(
        input.profile_field,
        if oidc {
            DEFAULT_OIDC_CLAIM
        } else {
            DEFAULT_PROFILE_FIELD
        },
    );
    if let Some(s) = scope {
        let s = s.trim();
        if s.is_empty()
            || s.len() > 256
            || !s.bytes().all(|b| b == b' ' || (0x21..=0x7e).contains(&b))
            || s.contains("  ")
        {
            return invalid(
                "scope",
                "the scope must be 1 to 256 visible ASCII characters, words separated by one space",
            );
        }
        c.scope = s.to_string();
    }
    if let Some(f) = field {
        let f = f.trim();
        if f.is_empty()
            || f.len() > 64
            || !f
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
        {
            return invalid(
                "profile_field",
                "the profile field must be 1 to 64 letters, digits or _ - . :",
            );
        }
        c.profile_field = f.to_string();
    }
    if let Some(p) = input.pkce {
        c.pkce = p;
    }
    if let Some(t) = input.token_auth.as_deref() {
        c.token_auth = TokenAuth::parse(t).ok_or_else(|| AdminError::Invalid {
            field: Some("token_auth"),
            message: format!("the client authentication {t:?} is none of post, basic"),
        })?;
    }
    if let Some(e) = input.enabled {
        c.enabled = e;
    }
    if c.enabled {
        let missing: Vec<(&'static str, &str)> = [
            ("client_id", "Client ID", c.client_id.is_empty()),
            ("client_secret", "Client Secret", c.client_secret.is_none()),
            ("portal_url", "Agent Portal URL", c.portal_url.is_empty()),
            ("login_url", "Circuit Login URL", c.login_url.is_empty()),
        ]
        .into_iter()
        .filter(|(_, _, m)| *m)
        .map(|(f, n, _)| (f, n))
        .collect();
        if let Some((field, _)) = missing.first() {
            let names: Vec<&str> = missing.iter().map(|(_, n)| *n).collect();
            return invalid(
                field,
                format!(
                    "Circuit sign-on needs every field to be turned on; missing: {}",
                    names.join(", ")
                ),
            );
        }
    }
    Ok(())
}

/// The tenant's settings, or the defaults when it has none.
pub async fn circuit_get(store: &dyn Store, tenant: &str) -> Result<CircuitSettings> {
    let t = admin::tenant_find(store, tenant).await?;
    Ok(store
        .circuit_get(t.id)
        .await?
        .unwrap_or_else(|| CircuitSettings::defaults(t.id, &t.name)))
}

impl Admin<'_> {
    /// Changes a tenant's Circuit settings (audited, the secret never in the entry).
    pub async fn circuit_set(
        &self,
        key: &SecretsKey,
        tenant: &str,
        input: CircuitInput,
    ) -> Result<CircuitSettings> {
        let before = circuit_get(self.store, tenant).await?;
        let object = format!("circuit:{}", before.tenant);
        if let Some(v) = input.version
            && v != before.version
        {
            return Err(self
                .stale(
                    &object,
                    AdminError::Stale(format!(
                        "the Circuit settings were changed since they were read (version {v}, now {})",
                        before.version
                    )),
                )
                .await);
        }
        let mut c = before.clone();
        apply(self.store, key, self.rng, &mut c, input).await?;
        c.updated_at = self.now;
        let saved = match self.store.circuit_put(&c).await {
            Ok(s) => s,
            Err(e) => return Err(self.stale(&object, e.into()).await),
        };
        self.record(
            "circuit.set",
            object,
            Some(super::audit::to_json(&CircuitView::of(&before))),
            Some(super::audit::to_json(&CircuitView::of(&saved))),
        )
        .await?;
        Ok(saved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_urls_are_https_or_loopback() {
        assert_eq!(
            check_login_url("https://circuit.example.com/").unwrap(),
            "https://circuit.example.com"
        );
        assert!(check_login_url("http://127.0.0.1:9443").is_ok());
        assert!(check_login_url("http://localhost:9443").is_ok());
        assert!(check_login_url("http://[::1]:9443").is_ok());
        for bad in [
            "http://circuit.example.com",
            "ftp://x",
            "https://x/?a=1",
            "circuit.example.com",
        ] {
            assert!(check_login_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_debug_output_hides_the_secret() {
        let mut c = CircuitSettings::defaults(TenantId(1), "acme");
        c.client_secret = Some("v1.abcd.c2VjcmV0LWNpcGhlcnRleHQ".into());
        let d = format!("{c:?}");
        assert!(!d.contains("c2VjcmV0"), "{d}");
        assert!(d.contains("client_secret_set: true"), "{d}");
    }

    #[test]
    fn the_secret_is_bound_to_its_tenant() {
        let key = SecretsKey::from_bytes([7; 32]);
        let rng = crate::rng::SystemRng;
        let mut a = CircuitSettings::defaults(TenantId(1), "a");
        a.client_secret = Some(key.encrypt(&rng, &secret_purpose(a.tenant_id), b"s3cret"));
        assert_eq!(client_secret(&key, &a).unwrap().secret(), "s3cret");
        let mut b = CircuitSettings::defaults(TenantId(2), "b");
        b.client_secret = a.client_secret.clone();
        assert!(client_secret(&key, &b).is_err());
    }
}
