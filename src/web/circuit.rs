//! Circuit sign-on (OAuth 2.0 authorization code, RFC 6749 §4.1; or OpenID Connect): the agent's
//! "Sign in with Circuit" (`POST /oauth/circuit/start`) and the provider's answer
//! (`GET /oauth/circuit/callback`).
//!
//! The start stores a pending request found by the SHA-256 of its state (32 random bytes that
//! only the browser and the provider see), bound to the browser by the SHA-256 of the
//! `ssogate_oauth` cookie (32 random bytes, HttpOnly, never sent to the provider). The PKCE
//! verifier and the OpenID Connect nonce are derived from that cookie and the state (HMAC), so
//! nothing secret is stored. Each start is an anonymous write: bounded per client address and in
//! all ([`super::guard::StartLimiter`]); pending requests live 10 minutes and are taken once.
//!
//! The callback takes the pending request (once), checks tenant, portal, expiry and browser,
//! exchanges the code at the token endpoint and reads the Circuit user from the profile (or the
//! checked ID token), then signs in the tenant's user with that Circuit user. Every refusal is a
//! [`Refusal`]: a short page with a reference, a log line and a failure record (endpoint
//! `circuit`).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Form, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tower_sessions::Session;

use super::client::ClientAddr;
use super::login::{check_origin, safe_target, see_other, sign_in};
use super::pending::hmac_sha256::hmac;
use super::refusal::{Reason, Refusal};
use super::{AppState, CurrentSp};
use crate::domain::ServiceProvider;
use crate::domain::audit::token_hash;
use crate::domain::circuit::{CircuitSettings, ProviderKind, TokenAuth, client_secret};
use crate::domain::username::circuit_norm;
use crate::outbound::{Call, OutboundError};
use crate::saml::UnixTime;
use crate::saml::echo::Echo;
use crate::store::{AgentSession, PendingOAuth, SignInMethod};

type Answer = Result<Response, Refusal>;

/// The cookie that binds pending Circuit sign-ins to the browser.
pub const BINDING_COOKIE: &str = "ssogate_oauth";
/// How long a pending Circuit sign-in waits for the provider.
pub const PENDING_SECS: i64 = 600;
/// The most bytes read of any answer of the provider.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The longest callback query looked at.
pub const MAX_CALLBACK_QUERY: usize = 8 * 1024;
const MAX_CODE: usize = 2048;
const MAX_ERROR: usize = 256;

/// 32 random bytes as base64url: 43 characters of that alphabet.
fn is_token(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The browser's binding cookie, if it carries a well-formed one.
fn binding_of(headers: &HeaderMap) -> Option<String> {
    super::admin::cookie(headers, BINDING_COOKIE)
        .filter(|v| is_token(v))
        .map(str::to_string)
}

/// PKCE verifier (RFC 7636: 43 characters) and nonce of one sign-in, from the browser's binding
/// secret and the state: recomputed at the callback, never stored.
fn derived(binding: &str, label: &str, state: &str) -> String {
    B64.encode(hmac(
        binding.as_bytes(),
        &[b"ssogate oauth ", label.as_bytes(), b"\0", state.as_bytes()],
    ))
}

fn binding_cookie(state: &AppState, sp: &ServiceProvider, value: &str) -> HeaderValue {
    // Lax: the provider sends the browser back by a top-level GET, which carries Lax cookies.
    let secure = state.config.secure_cookies.unwrap_or(sp.is_https());
    let v = format!(
        "{BINDING_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={PENDING_SECS}{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&v)
        .unwrap_or_else(|_| HeaderValue::from_static("ssogate_oauth=; Max-Age=0"))
}

/// The provider as failure records name it.
fn provider_name(c: &CircuitSettings) -> String {
    let host = c
        .login_url
        .split_once("://")
        .map(|(_, r)| r.split('/').next().unwrap_or(r))
        .unwrap_or(&c.login_url);
    format!("circuit {host}")
}

fn refuse(reason: Reason, detail: impl Into<String>) -> Refusal {
    let r = Refusal::new(reason, detail);
    match reason {
        Reason::ConsentDenied => r.with_page(
            "Sign-in cancelled",
            "Circuit sign-in was cancelled or refused. Go back to the sign-in page to try again.",
        ),
        Reason::StateExpired => r.with_page(
            "Sign-in took too long",
            "The Circuit sign-in took longer than 10 minutes. Please start again from the sign-in page.",
        ),
        Reason::ProviderUnreachable | Reason::ProviderTimeout => r.with_page(
            "Circuit is not reachable",
            "The service cannot reach Circuit right now. Please try again in a moment, or give the reference below to your administrator.",
        ),
        Reason::UnknownCircuitUser => r.with_page(
            "No user for this Circuit account",
            "Your Circuit account is not linked to a user of this organisation. Give the reference below to your administrator.",
        ),
        _ => r,
    }
}

/// A refusal of `tenant`'s sign-in through `c`.
fn refuse_for(c: &CircuitSettings, reason: Reason, detail: impl Into<String>) -> Refusal {
    refuse(reason, detail)
        .tenant(&c.tenant)
        .idp(&provider_name(c))
}

/// An outbound failure, said as the agent and the administrator need it.
fn outbound_refusal(c: &CircuitSettings, call: &str, url: &str, e: OutboundError) -> Refusal {
    let reason = match e {
        // Every call slot held for the whole 10 s: the provider's calls hang.
        OutboundError::Timeout | OutboundError::Busy(_) => Reason::ProviderTimeout,
        OutboundError::TooLarge(_) if call == "profile" => Reason::ProfileInvalid,
        OutboundError::TooLarge(_) => Reason::TokenExchangeFailed,
        _ => Reason::ProviderUnreachable,
    };
    refuse_for(c, reason, format!("the {call} call to {url}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// OpenID Connect: discovery and keys, cached per provider.

/// A provider's discovery document and keys, fetched at most once an hour (the keys again when
/// a token names a key they lack, at most once a minute).
#[derive(Debug, Default)]
pub struct OidcCache(Mutex<std::collections::HashMap<String, Arc<OidcProvider>>>);

#[derive(Debug)]
pub struct OidcProvider {
    pub discovery: crate::oidc::Discovery,
    pub keys: Vec<crate::oidc::Jwk>,
    fetched_at: UnixTime,
}

const OIDC_TTL_SECS: i64 = 3600;
const OIDC_MAX_PROVIDERS: usize = 1000;

impl OidcCache {
    fn cached(&self, issuer: &str, now: UnixTime, max_age_secs: i64) -> Option<Arc<OidcProvider>> {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.get(issuer)
            .filter(|p| now.millis() - p.fetched_at.millis() < max_age_secs * 1000)
            .cloned()
    }

    fn put(&self, issuer: &str, p: Arc<OidcProvider>) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= OIDC_MAX_PROVIDERS && !m.contains_key(issuer) {
            m.clear();
        }
        m.insert(issuer.to_string(), p);
    }
}

/// The provider of `c` (an OpenID Connect one): cached, or fetched now (`fresh`: unless fetched
/// within the last minute).
async fn oidc_provider(
    state: &AppState,
    c: &CircuitSettings,
    fresh: bool,
) -> Result<Arc<OidcProvider>, Refusal> {
    let now = state.clock.now();
    let max_age = if fresh { 60 } else { OIDC_TTL_SECS };
    if let Some(p) = state.oidc.cached(&c.login_url, now, max_age) {
        return Ok(p);
    }
    let url = format!("{}/.well-known/openid-configuration", c.login_url);
    let body = state
        .outbound
        .get(&url, MAX_ANSWER_BYTES)
        .await
        .map_err(|e| outbound_refusal(c, "discovery", &url, e))?;
    let discovery = crate::oidc::Discovery::parse(&body, &c.login_url)
        .map_err(|e| refuse_for(c, Reason::ProviderUnreachable, format!("{url}: {e}")))?;
    let body = state
        .outbound
        .get(&discovery.jwks_uri, MAX_ANSWER_BYTES)
        .await
        .map_err(|e| outbound_refusal(c, "JWKS", &discovery.jwks_uri, e))?;
    let keys = crate::oidc::parse_jwks(&body).map_err(|e| {
        refuse_for(
            c,
            Reason::ProviderUnreachable,
            format!("{}: {e}", discovery.jwks_uri),
        )
    })?;
    let p = Arc::new(OidcProvider {
        discovery,
        keys,
        fetched_at: now,
    });
    state.oidc.put(&c.login_url, p.clone());
    Ok(p)
}

// ---------------------------------------------------------------------------------------------
// The start.

#[derive(Deserialize, Default, Debug)]
pub struct StartForm {
    #[serde(default)]
    pub tenant: String,
    pub target: Option<String>,
}

/// `POST /oauth/circuit/start`: stores the pending sign-in and sends the browser to the provider.
pub async fn start(
    State(state): State<AppState>,
    CurrentSp(sp): CurrentSp,
    client: Option<axum::Extension<ClientAddr>>,
    headers: HeaderMap,
    Form(f): Form<StartForm>,
) -> Answer {
    let now = state.clock.now();
    check_origin(&headers, &sp)?;
    let name = f.tenant.trim();
    let tenant = if name.is_empty() || name.len() > 128 {
        None
    } else {
        state.store.tenant_by_name(name).await?
    };
    let Some(tenant) = tenant else {
        return Err(Refusal::new(
            Reason::UnknownTenant,
            format!(
                "Circuit sign-in for tenant \"{}\", which does not exist",
                Echo(name)
            ),
        )
        .with_page(
            "Unknown organisation",
            "This sign-in names no organisation.",
        ));
    };
    let c = state.store.circuit_get(tenant.id).await?;
    let Some(c) = c.filter(|c| c.enabled) else {
        return Err(refuse(
            Reason::CircuitDisabled,
            format!("tenant {:?} has Circuit sign-on off", tenant.name),
        )
        .tenant(&tenant.name));
    };
    let target = safe_target(&sp, f.target.as_deref());
    if c.portal_url != sp.host_url {
        // The callback and the binding cookie are the portal URL's: start over there.
        return Ok(see_other(&format!(
            "{}/t/{}/login?target={}",
            c.portal_url,
            percent_encoding::utf8_percent_encode(&tenant.name, percent_encoding::NON_ALPHANUMERIC),
            percent_encoding::utf8_percent_encode(&target, percent_encoding::NON_ALPHANUMERIC)
        )));
    }
    if let Err(wait) = state
        .guards
        .oauth_starts
        .check_shared(state.store.as_ref(), client.map(|c| c.0.0), now)
        .await
    {
        let r = refuse_for(
            &c,
            Reason::CircuitStartLimited,
            format!(
                "more Circuit sign-ins started from {} this minute than allowed (oauth_starts_per_minute {}, oauth_starts_per_minute_total {})",
                client.map_or("?".to_string(), |c| c.0.0.to_string()),
                state.config.oauth_starts_per_minute,
                state.config.oauth_starts_per_minute_total
            ),
        )
        .with_page(
            "Too many sign-ins",
            format!("Too many sign-ins were started. Please wait {wait} seconds and try again."),
        );
        return Ok(([(header::RETRY_AFTER, HeaderValue::from(wait))], r).into_response());
    }
    let authorize = match c.kind {
        ProviderKind::Oauth2 => c.authorize_url(),
        ProviderKind::Oidc => oidc_provider(&state, &c, false)
            .await?
            .discovery
            .authorization_endpoint
            .clone(),
    };
    let st = state.rng.token();
    let binding = binding_of(&headers).unwrap_or_else(|| state.rng.token());
    state
        .store
        .oauth_pending_put(&PendingOAuth {
            state_hash: token_hash(&st),
            tenant_id: tenant.id,
            sp_id: sp.id,
            binding_hash: token_hash(&binding),
            relay_target: target,
            expires_at: now.plus_secs(PENDING_SECS),
        })
        .await?;
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", &c.client_id)
        .append_pair("redirect_uri", &c.callback_url())
        .append_pair("scope", &c.scope)
        .append_pair("state", &st);
    if c.pkce {
        let verifier = derived(&binding, "pkce", &st);
        q.append_pair(
            "code_challenge",
            &B64.encode(Sha256::digest(verifier.as_bytes())),
        )
        .append_pair("code_challenge_method", "S256");
    }
    if c.kind == ProviderKind::Oidc {
        q.append_pair("nonce", &derived(&binding, "nonce", &st));
    }
    let sep = if authorize.contains('?') { '&' } else { '?' };
    let mut res = see_other(&format!("{authorize}{sep}{}", q.finish()));
    res.headers_mut()
        .append(header::SET_COOKIE, binding_cookie(&state, &sp, &binding));
    tracing::info!(tenant = %tenant.name, provider = %provider_name(&c), "Circuit sign-in started");
    Ok(res)
}

// ---------------------------------------------------------------------------------------------
// The callback.

/// The callback's parameters, each bounded; `None` when a parameter comes twice.
#[derive(Default)]
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

fn parse_callback(q: &str) -> Result<CallbackParams, String> {
    if q.len() > MAX_CALLBACK_QUERY {
        return Err(format!(
            "the callback's query has {} bytes (at most {MAX_CALLBACK_QUERY} are read)",
            q.len()
        ));
    }
    let mut p = CallbackParams::default();
    for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
        let (slot, max) = match k.as_ref() {
            "code" => (&mut p.code, MAX_CODE),
            "state" => (&mut p.state, 64),
            "error" => (&mut p.error, MAX_ERROR),
            "error_description" => (&mut p.error_description, 512),
            _ => continue,
        };
        if slot.is_some() {
            return Err(format!("the callback names {k} twice"));
        }
        if v.len() > max {
            return Err(format!(
                "the callback's {k} has {} bytes (at most {max})",
                v.len()
            ));
        }
        *slot = Some(v.into_owned());
    }
    Ok(p)
}

/// Who the provider says signed in.
struct Identity {
    circuit_user: String,
    user_id: Option<String>,
    display_name: Option<String>,
}

/// `GET /oauth/circuit/callback`.
pub async fn callback(
    State(state): State<AppState>,
    CurrentSp(sp): CurrentSp,
    session: Session,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Answer {
    let started = Instant::now();
    let now = state.clock.now();
    let p = parse_callback(query.as_deref().unwrap_or(""))
        .map_err(|e| refuse(Reason::StateInvalid, e))?;
    let Some(st) = p.state.as_deref() else {
        return Err(match &p.error {
            Some(e) => refuse(
                Reason::ConsentDenied,
                format!(
                    "the provider answered error \"{}\" without a state",
                    Echo(e)
                ),
            ),
            None => refuse(Reason::StateInvalid, "the callback has no state"),
        });
    };
    if !is_token(st) {
        return Err(refuse(
            Reason::StateInvalid,
            format!("the state \"{}\" is none this service makes", Echo(st)),
        ));
    }
    let Some(pending) = state.store.oauth_pending_take(&token_hash(st)).await? else {
        return Err(refuse(
            Reason::StateInvalid,
            "no Circuit sign-in waits for this state: unknown, already answered, or purged after 10 minutes",
        ));
    };
    let tenant = state.store.tenant_get(pending.tenant_id).await?;
    let c = match &tenant {
        Some(t) => state.store.circuit_get(t.id).await?,
        None => None,
    };
    let (Some(tenant), Some(c)) = (tenant, c) else {
        return Err(refuse(
            Reason::StateInvalid,
            "the tenant this Circuit sign-in was started for is gone",
        ));
    };
    if pending.sp_id != sp.id {
        return Err(refuse_for(
            &c,
            Reason::StateInvalid,
            format!(
                "this state was issued for tenant {:?}'s agent portal, but it arrived at {}",
                tenant.name, sp.host_url
            ),
        ));
    }
    if let Some(e) = &p.error {
        return Err(refuse_for(
            &c,
            Reason::ConsentDenied,
            format!(
                "the provider answered error \"{}\"{}",
                Echo(e),
                p.error_description
                    .as_deref()
                    .map(|d| format!(" ({})", Echo(d)))
                    .unwrap_or_default()
            ),
        ));
    }
    if pending.expires_at <= now {
        return Err(refuse_for(
            &c,
            Reason::StateExpired,
            format!(
                "the Circuit sign-in was started at {} and answered after its 10 minutes",
                UnixTime::from_millis(pending.expires_at.millis() - PENDING_SECS * 1000)
                    .to_rfc3339()
            ),
        ));
    }
    let binding = binding_of(&headers);
    let Some(binding) = binding.filter(|b| token_hash(b) == pending.binding_hash) else {
        return Err(refuse_for(
            &c,
            Reason::StateOtherBrowser,
            "the answer arrived in another browser than the one that started this sign-in (its binding cookie is missing or differs)",
        ));
    };
    if !c.enabled {
        return Err(refuse_for(
            &c,
            Reason::CircuitDisabled,
            format!(
                "tenant {:?} turned Circuit sign-on off since the sign-in started",
                tenant.name
            ),
        ));
    }
    let Some(code) = p.code.as_deref().filter(|c| !c.is_empty()) else {
        return Err(refuse_for(
            &c,
            Reason::TokenExchangeFailed,
            "the provider's answer has neither a code nor an error",
        ));
    };
    let mut provider_time = std::time::Duration::ZERO;
    let identity = match c.kind {
        ProviderKind::Oauth2 => {
            oauth2_identity(&state, &c, code, &binding, st, &mut provider_time).await?
        }
        ProviderKind::Oidc => {
            oidc_identity(&state, &c, code, &binding, st, &mut provider_time).await?
        }
    };
    let norm = circuit_norm(&identity.circuit_user).map_err(|e| {
        refuse_for(
            &c,
            Reason::ProfileInvalid,
            format!(
                "the provider's {} \"{}\" is not a Circuit user: {e}",
                c.profile_field,
                Echo(&identity.circuit_user)
            ),
        )
    })?;
    let Some(user) = state.store.user_by_circuit(tenant.id, &norm).await? else {
        return Err(refuse_for(
            &c,
            Reason::UnknownCircuitUser,
            format!(
                "no user of tenant {:?} has Circuit user \"{}\" (Circuit user ID \"{}\", name \"{}\")",
                tenant.name,
                Echo(&identity.circuit_user),
                Echo(identity.user_id.as_deref().unwrap_or("?")),
                Echo(identity.display_name.as_deref().unwrap_or("?"))
            ),
        )
        .username(&identity.circuit_user));
    };
    let agent = AgentSession::new(
        &tenant,
        &user,
        SignInMethod::Circuit,
        now,
        now.plus_secs(state.config.session_max_secs),
        None,
    );
    sign_in(&session, &agent).await?;
    state.signed_in(&tenant.name, &user.username, SignInMethod::Circuit, now);
    let total = started.elapsed();
    tracing::info!(
        tenant = %tenant.name,
        user = %user.username,
        method = "circuit",
        circuit_user = %Echo(&identity.circuit_user),
        provider_ms = provider_time.as_secs_f64() * 1000.0,
        own_ms = total.saturating_sub(provider_time).as_secs_f64() * 1000.0,
        "signed in"
    );
    let mut res = see_other(&format!("{}{}", sp.host_url, pending.relay_target));
    // What the callback cost, the provider's calls apart (the load script reads it).
    if let Ok(v) = HeaderValue::from_str(&format!(
        "provider;dur={:.3}, total;dur={:.3}",
        provider_time.as_secs_f64() * 1000.0,
        total.as_secs_f64() * 1000.0
    )) {
        res.headers_mut().insert("server-timing", v);
    }
    Ok(res)
}

/// The token endpoint's answer, read (RFC 6749 §5.1/§5.2).
struct Tokens {
    access_token: String,
    id_token: Option<String>,
}

async fn exchange(
    state: &AppState,
    c: &CircuitSettings,
    token_url: &str,
    code: &str,
    verifier: Option<&str>,
    provider_time: &mut std::time::Duration,
) -> Result<Tokens, Refusal> {
    let secret = client_secret(&state.secrets, c).map_err(|e| {
        refuse_for(
            c,
            Reason::TokenExchangeFailed,
            format!("tenant {:?}'s client secret cannot be used: {e}", c.tenant),
        )
    })?;
    let redirect = c.callback_url();
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &redirect),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    let basic = match c.token_auth {
        TokenAuth::Post => {
            form.push(("client_id", &c.client_id));
            form.push(("client_secret", secret.secret()));
            None
        }
        TokenAuth::Basic => Some((c.client_id.as_str(), secret.secret())),
    };
    let t = Instant::now();
    let answer = state
        .outbound
        .send(
            token_url,
            Call::PostForm { form: &form, basic },
            MAX_ANSWER_BYTES,
        )
        .await;
    *provider_time += t.elapsed();
    let (status, body) = answer.map_err(|e| outbound_refusal(c, "token", token_url, e))?;
    let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let field = |k: &str| {
        json.as_ref()
            .and_then(|j| j.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    if status != 200 {
        return Err(refuse_for(
            c,
            Reason::TokenExchangeFailed,
            format!(
                "the token endpoint {token_url} answered HTTP {status}, error \"{}\"{}",
                Echo(&field("error").unwrap_or_else(|| "(none)".into())),
                field("error_description")
                    .map(|d| format!(" ({})", Echo(&d)))
                    .unwrap_or_default()
            ),
        ));
    }
    let Some(access_token) = field("access_token").filter(|t| !t.is_empty() && t.len() <= 8192)
    else {
        return Err(refuse_for(
            c,
            Reason::TokenExchangeFailed,
            format!("the token endpoint {token_url} answered 200 without an access_token"),
        ));
    };
    if let Some(tt) = field("token_type")
        && !tt.eq_ignore_ascii_case("bearer")
    {
        return Err(refuse_for(
            c,
            Reason::TokenExchangeFailed,
            format!(
                "the token endpoint gave a token of type \"{}\", not Bearer",
                Echo(&tt)
            ),
        ));
    }
    Ok(Tokens {
        access_token,
        id_token: field("id_token"),
    })
}

async fn oauth2_identity(
    state: &AppState,
    c: &CircuitSettings,
    code: &str,
    binding: &str,
    st: &str,
    provider_time: &mut std::time::Duration,
) -> Result<Identity, Refusal> {
    let verifier = c.pkce.then(|| derived(binding, "pkce", st));
    let tokens = exchange(
        state,
        c,
        &c.token_url(),
        code,
        verifier.as_deref(),
        provider_time,
    )
    .await?;
    let url = c.profile_url();
    let t = Instant::now();
    let answer = state
        .outbound
        .send(
            &url,
            Call::Get {
                bearer: Some(&tokens.access_token),
            },
            MAX_ANSWER_BYTES,
        )
        .await;
    *provider_time += t.elapsed();
    let (status, body) = answer.map_err(|e| outbound_refusal(c, "profile", &url, e))?;
    if status != 200 {
        return Err(refuse_for(
            c,
            Reason::ProfileInvalid,
            format!("the profile call to {url} answered HTTP {status}"),
        ));
    }
    let profile: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&body)
        .map_err(|e| {
            refuse_for(
                c,
                Reason::ProfileInvalid,
                format!("the profile from {url} is not a JSON object: {e}"),
            )
        })?;
    identity_from(c, &profile, "profile")
}

/// The Circuit user in the profile (or ID token claims) field the settings name.
fn identity_from(
    c: &CircuitSettings,
    fields: &serde_json::Map<String, serde_json::Value>,
    what: &str,
) -> Result<Identity, Refusal> {
    let text = |k: &str| -> Option<String> {
        match fields.get(k)? {
            serde_json::Value::String(s) => Some(s.chars().take(320).collect()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let Some(user) = text(&c.profile_field).filter(|u| !u.trim().is_empty()) else {
        return Err(refuse_for(
            c,
            Reason::ProfileInvalid,
            format!(
                "the {what} has no text field \"{}\" (it has: {})",
                c.profile_field,
                fields
                    .keys()
                    .take(20)
                    .map(|k| Echo(k).to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    };
    Ok(Identity {
        circuit_user: user,
        user_id: text("userId").or_else(|| text("sub")),
        display_name: text("displayName").or_else(|| text("name")),
    })
}

async fn oidc_identity(
    state: &AppState,
    c: &CircuitSettings,
    code: &str,
    binding: &str,
    st: &str,
    provider_time: &mut std::time::Duration,
) -> Result<Identity, Refusal> {
    let provider = oidc_provider(state, c, false).await?;
    let verifier = c.pkce.then(|| derived(binding, "pkce", st));
    let tokens = exchange(
        state,
        c,
        &provider.discovery.token_endpoint,
        code,
        verifier.as_deref(),
        provider_time,
    )
    .await?;
    let Some(id_token) = tokens.id_token else {
        return Err(refuse_for(
            c,
            Reason::IdTokenInvalid,
            "the token endpoint answered without an id_token (is the scope \"openid\"?)",
        ));
    };
    let nonce = derived(binding, "nonce", st);
    let now = state.clock.now();
    let skew = state.config.clock_skew_secs;
    let check = |p: &OidcProvider| {
        crate::oidc::verify_id_token(
            &id_token,
            &p.keys,
            &p.discovery.issuer,
            &c.client_id,
            &nonce,
            now,
            skew,
        )
    };
    let claims = match check(&provider) {
        Err(crate::oidc::IdTokenError::UnknownKey(_)) => {
            // A key rollover: fetch the keys again (at most once a minute).
            check(&*oidc_provider(state, c, true).await?)
        }
        other => other,
    }
    .map_err(|e| {
        use crate::oidc::IdTokenError as E;
        let reason = match e {
            E::Audience { .. } => Reason::IdTokenAudience,
            E::Expired(_) => Reason::IdTokenExpired,
            E::Nonce => Reason::IdTokenNonce,
            _ => Reason::IdTokenInvalid,
        };
        refuse_for(c, reason, e.to_string())
    })?;
    identity_from(c, &claims, "ID token")
}
