//! The Web Manager (`/webmanager`) and the JSON API (`/api/v1`): the administrators' side, on
//! the same checked and audited operations as the CLI ([`crate::domain::audit::Admin`]).
//!
//! Access: a Web Manager session (cookie `ssogate_admin`, HttpOnly, SameSite=Strict; signed in
//! by local password only, never by a portal session; 30 minutes idle, 8 hours at most) or an
//! API client's bearer token. Central administrators may do everything; a tenant manager only
//! sees and ends its own tenant's sign-in activity. Every state change by cookie carries the
//! session's CSRF token (a form field, or the `X-CSRF-Token` header for API calls).
//!
//! These routes sit outside the SP-resolution middleware: they work with no SP, several SPs,
//! and any Host.

mod account;
pub mod api;
mod circuit;
mod form;
pub mod openapi;
pub mod ui;

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::domain::audit::{Admin, token_hash};
use crate::domain::{Role, TenantId, User};
use crate::saml::UnixTime;
use crate::store::{ApiRole, StoreError};

/// The Web Manager session cookie.
pub const ADMIN_COOKIE: &str = "ssogate_admin";
/// A Web Manager session ends after this long without a request.
pub const IDLE_SECS: i64 = 30 * 60;
/// … and this long after sign-in, whatever happens.
pub const ABSOLUTE_SECS: i64 = 8 * 3600;
/// `last_seen` is written at most this often (not on every request).
const TOUCH_SECS: i64 = 60;
/// The header a cookie-authenticated API call carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// What the signed-in administrator (or API client) may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything.
    Central,
    /// Only this tenant's sign-in activity (and, later, its Circuit settings).
    Tenant { id: TenantId, name: String },
}

/// Who makes a request to the Web Manager or the API.
#[derive(Clone)]
pub struct Principal {
    /// For the audit log: `user:<tenant>/<name>` or `api:<client>`.
    pub actor: String,
    /// What the header shows.
    pub display: String,
    pub scope: Scope,
    /// The Web Manager account (None for an API client).
    pub user: Option<User>,
    pub user_tenant: String,
    /// The session (SHA-256 of its token), for a cookie session.
    pub session_hash: Option<String>,
    /// The CSRF token every state change by this session must carry (None: bearer token).
    pub csrf: Option<String>,
    /// A central administrator without a second factor while one is required: sent to set it
    /// up before anything else.
    pub second_factor_missing: bool,
}

impl std::fmt::Debug for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principal")
            .field("actor", &self.actor)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl Principal {
    pub fn is_central(&self) -> bool {
        self.scope == Scope::Central
    }

    /// May see and end `tenant`'s sign-in activity.
    pub fn may_watch(&self, tenant: TenantId) -> bool {
        match &self.scope {
            Scope::Central => true,
            Scope::Tenant { id, .. } => *id == tenant,
        }
    }

    /// Must replace a one-time password before anything else.
    pub fn must_change_password(&self) -> bool {
        self.user.as_ref().is_some_and(|u| u.must_change_password)
    }

    /// The page a session must go through before any other: the password change, then the
    /// second factor's set-up where one is required.
    pub fn first_step(&self) -> Option<&'static str> {
        if self.must_change_password() {
            Some("/webmanager/password")
        } else if self.second_factor_missing {
            Some("/webmanager/account")
        } else {
            None
        }
    }

    pub fn admin<'a>(&self, state: &'a AppState) -> Admin<'a> {
        let events = state.events.clone();
        Admin {
            store: state.store.as_ref(),
            rng: state.rng.as_ref(),
            actor: self.actor.clone(),
            now: state.clock.now(),
            on_change: Some(std::sync::Arc::new(move |e: &crate::store::AuditEntry| {
                events.publish(|| crate::web::events::Event::Change {
                    at: crate::web::events::at(e.at),
                    actor: e.actor.clone(),
                    action: e.action.clone(),
                    object: e.object.clone(),
                });
            })),
        }
    }
}

/// Why a request reached no principal.
#[derive(Debug)]
pub enum AuthFailure {
    /// No credentials, or a session that ended.
    Missing,
    /// A bearer token that names no client.
    BadToken,
    Store(StoreError),
}

impl From<StoreError> for AuthFailure {
    fn from(e: StoreError) -> Self {
        AuthFailure::Store(e)
    }
}

pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The session token of a request (the cookie's value), if it looks like one.
pub fn session_token(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, ADMIN_COOKIE)
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The CSRF token of a session: a MAC of its token under the service's secret.
pub async fn csrf_of(state: &AppState, token: &str) -> Result<String, StoreError> {
    let key = state.pending_key().await?;
    Ok(hex::encode(
        &super::pending::hmac_sha256::hmac(key, &[b"ssogate admin csrf v1\0", token.as_bytes()])
            [..16],
    ))
}

/// Whether `user` may sign in to the Web Manager, and with what scope.
pub fn scope_of(user: &User, tenant_name: &str) -> Option<Scope> {
    if user.roles.contains(&Role::CentralAdmin) {
        Some(Scope::Central)
    } else if user.roles.contains(&Role::TenantManager) {
        Some(Scope::Tenant {
            id: user.tenant_id,
            name: tenant_name.to_string(),
        })
    } else {
        None
    }
}

/// Finds who makes the request: a bearer token first, then the Web Manager cookie.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, AuthFailure> {
    let now = state.clock.now();
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let token = auth
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 256)
            .ok_or(AuthFailure::BadToken)?;
        let client = state
            .store
            .api_client_by_token(&token_hash(token))
            .await?
            .ok_or(AuthFailure::BadToken)?;
        // "Last used" to the minute: no write on every call.
        if client
            .last_used_at
            .is_none_or(|t| now.millis() - t.millis() >= TOUCH_SECS * 1000)
        {
            state.store.api_client_used(client.id, now).await?;
        }
        let scope = match client.role {
            ApiRole::CentralAdmin => Scope::Central,
            ApiRole::TenantManager(id) => Scope::Tenant {
                id,
                name: state
                    .store
                    .tenant_get(id)
                    .await?
                    .map(|t| t.name)
                    .unwrap_or_default(),
            },
        };
        return Ok(Principal {
            actor: format!("api:{}", client.name),
            display: client.name,
            scope,
            user: None,
            user_tenant: String::new(),
            session_hash: None,
            csrf: None,
            second_factor_missing: false,
        });
    }
    let token = session_token(headers).ok_or(AuthFailure::Missing)?;
    let hash = token_hash(token);
    let s = state
        .store
        .admin_session_get(&hash, now)
        .await?
        .ok_or(AuthFailure::Missing)?;
    if now.millis() - s.last_seen.millis() >= IDLE_SECS * 1000 {
        state.store.admin_session_delete(&hash).await?;
        return Err(AuthFailure::Missing);
    }
    let user = state
        .store
        .user_get(s.user_id)
        .await?
        .ok_or(AuthFailure::Missing)?;
    let tenant = state
        .store
        .tenant_get(user.tenant_id)
        .await?
        .ok_or(AuthFailure::Missing)?;
    // A role taken away ends what the session may do at once.
    let scope = scope_of(&user, &tenant.name).ok_or(AuthFailure::Missing)?;
    if now.millis() - s.last_seen.millis() >= TOUCH_SECS * 1000 {
        state.store.admin_session_touch(&hash, now).await?;
    }
    let second_factor_missing = scope == Scope::Central
        && state.require_totp()
        && state.store.totp_get(user.id).await?.is_none();
    Ok(Principal {
        actor: format!("user:{}/{}", tenant.name, user.username),
        display: format!("{} ({})", user.display_name, user.username),
        scope,
        user_tenant: tenant.name,
        user: Some(user),
        session_hash: Some(hash),
        csrf: Some(csrf_of(state, token).await?),
        second_factor_missing,
    })
}

/// A new Web Manager session for `user`: the cookie to set.
pub async fn start_session(
    state: &AppState,
    user: &User,
    now: UnixTime,
    secure: bool,
) -> Result<HeaderValue, StoreError> {
    let mut b = [0u8; 32];
    state.rng.fill(&mut b);
    let token = hex::encode(b);
    state
        .store
        .admin_session_put(&crate::store::AdminSessionRow {
            id_hash: token_hash(&token),
            user_id: user.id,
            created_at: now,
            last_seen: now,
            expires_at: now.plus_secs(ABSOLUTE_SECS),
        })
        .await?;
    Ok(cookie_header(&token, secure, Some(ABSOLUTE_SECS)))
}

/// Ends the Web Manager session the browser had, if any (a new ID at every sign-in).
pub async fn end_old_session(state: &AppState, headers: &HeaderMap) -> Result<(), StoreError> {
    if let Some(old) = session_token(headers) {
        state.store.admin_session_delete(&token_hash(old)).await?;
    }
    Ok(())
}

/// The answer to a completed sign-in: a new session, and on to the first page (the password
/// change first, when the password is a one-time one).
pub async fn signed_in_answer(
    state: &AppState,
    user: &User,
    now: UnixTime,
    secure: bool,
) -> Result<Response, StoreError> {
    let cookie = start_session(state, user, now, secure).await?;
    let mut res = super::login::see_other(if user.must_change_password {
        "/webmanager/password"
    } else {
        "/webmanager/"
    });
    res.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(res)
}

/// A refusal for too many wrong attempts, with `Retry-After`.
pub fn throttled(r: crate::web::refusal::Refusal, wait: i64) -> Response {
    (
        [(header::RETRY_AFTER, HeaderValue::from(wait.max(1) as u64))],
        r,
    )
        .into_response()
}

/// `Set-Cookie` for the session (or, with an empty token, its removal).
pub fn cookie_header(token: &str, secure: bool, max_age: Option<i64>) -> HeaderValue {
    let age = max_age.map_or_else(|| "; Max-Age=0".to_string(), |a| format!("; Max-Age={a}"));
    let v = format!(
        "{ADMIN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{age}{}",
        if secure { "; Secure" } else { "" }
    );
    // Hex, digits and fixed words only.
    HeaderValue::from_str(&v).expect("invariant: the cookie is ASCII")
}

/// Whether a state change by `p` carries the session's CSRF token (bearer calls need none).
pub fn csrf_ok(p: &Principal, given: Option<&str>) -> bool {
    match &p.csrf {
        None => true,
        Some(expected) => given.is_some_and(|g| {
            subtle::ConstantTimeEq::ct_eq(g.as_bytes(), expected.as_bytes()).into()
        }),
    }
}

/// Whether cookies get the Secure flag (the state's knowledge of it).
#[derive(Debug, Clone, Copy)]
pub struct Secure(pub bool);

/// The Web Manager and the API, with their own limits and headers (no SP resolution).
pub fn routes(state: AppState, secure: bool) -> Router {
    Router::new()
        .route("/webmanager/", axum::routing::get(ui::home))
        .nest("/webmanager", ui::routes())
        .nest("/api/v1", api::routes())
        .route("/metrics", axum::routing::get(super::metrics::metrics))
        .layer(axum::Extension(Secure(secure)))
        // Forms and JSON documents. Metadata is imported up to 1 MiB: a body up to 4 MiB is read,
        // so that a bigger file gets its message beside the field rather than a bare 413.
        .layer(axum::extract::DefaultBodyLimit::max(4 * 1024 * 1024))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            super::request_timeout,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            super::refusal::record_refusals,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            super::client::client_addr,
        ))
        .layer(middleware::from_fn(no_cache))
        .with_state(state)
}

async fn no_cache(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The principal of an API call (401 without one).
pub struct Authed(pub Principal);

impl FromRequestParts<AppState> for Authed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match authenticate(state, &parts.headers).await {
            Ok(p) => Ok(Authed(p)),
            Err(AuthFailure::Store(e)) => Err(api::ApiError::store(&e).into_response()),
            Err(f) => {
                Err(api::ApiError::unauthorized(matches!(f, AuthFailure::BadToken)).into_response())
            }
        }
    }
}

/// The principal of a Web Manager page (without one: to the sign-in page).
pub struct PageAuthed(pub Principal);

impl FromRequestParts<AppState> for PageAuthed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Pages take the session cookie only: a bearer token is for the API.
        let mut headers = parts.headers.clone();
        headers.remove(header::AUTHORIZATION);
        match authenticate(state, &headers).await {
            Ok(p) => Ok(PageAuthed(p)),
            Err(AuthFailure::Store(e)) => Err(ui::unavailable(&e)),
            Err(_) => Err(super::login::see_other("/webmanager/signin")),
        }
    }
}

/// `StatusCode` helper for pages and answers.
pub fn forbidden_text() -> (StatusCode, &'static str) {
    (
        StatusCode::FORBIDDEN,
        "Your account may not do this: it needs the central administrator role.",
    )
}
