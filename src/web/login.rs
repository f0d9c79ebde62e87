//! The agent's side: portal landing page, login (SSO start or local password), logout, and the
//! forward-auth endpoints for the portal or its reverse proxy.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::client::ClientAddr;
use super::pending::{self, PendingRequest};
use super::refusal::{Reason, Refusal};
use super::send::{Outgoing, send};
use super::{AppState, CurrentSp, pages};
use crate::clock::Clock;
use crate::domain::admin::{DEFAULT_TENANT, ensure_default_tenant, verify_password};
use crate::domain::username::{IdentityError, claim_identity, domain_key, split};
use crate::domain::{ServiceProvider, Tenant};
use crate::saml::UnixTime;
use crate::saml::authn_request::{AuthnRequest, NameIdPolicy, RequestedAuthnContext, request_id};
use crate::saml::bindings::MessageKind;
use crate::saml::echo::Echo;
use crate::saml::logout::LogoutRequestParams;
use crate::saml::response::NameId;
use crate::saml::xmldsig::SigningKey;
use crate::store::sessions::AGENT_KEY;
use crate::store::{AgentSession, PendingLogout, SignInMethod, StoreError};

type Answer = Result<Response, Refusal>;

#[derive(Debug, Deserialize, Default)]
pub struct TargetQuery {
    pub target: Option<String>,
    /// The choice page's "Company sign-on": go to the IdP.
    pub sso: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct LoginForm {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    pub target: Option<String>,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginForm")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("target", &self.target)
            .finish()
    }
}

/// A same-origin portal path to go to after login, or `/` (DESIGN §3.1 step 5: no open
/// redirect). Absolute URLs are accepted only below the SP's own host URL; at most
/// [`pending::MAX_RELAY_TARGET`] bytes.
pub fn safe_target(sp: &ServiceProvider, target: Option<&str>) -> String {
    let Some(t) = target.map(str::trim).filter(|t| !t.is_empty()) else {
        return "/".into();
    };
    let path = if let Some(rest) = t.strip_prefix(sp.host_url.as_str()) {
        if rest.is_empty() {
            "/"
        } else if rest.starts_with('/') {
            rest
        } else {
            return "/".into();
        }
    } else {
        t
    };
    let ok = path.starts_with('/')
        && !path.starts_with("//")
        && path.len() <= pending::MAX_RELAY_TARGET
        && !path
            .chars()
            .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
        && !path.starts_with("/saml/")
        && !path.starts_with("/logout");
    if ok { path.to_string() } else { "/".into() }
}

pub fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(_) => pages::message(
            None,
            StatusCode::BAD_REQUEST,
            "Bad request",
            "The target address is not valid.",
            None,
        ),
    }
}

fn session_error(e: tower_sessions::session::Error) -> Refusal {
    Refusal::store(&StoreError::Unavailable(e.to_string()))
}

/// How often (at most) a session's `last_active` is written: once a minute, not per request.
const TOUCH_MILLIS: i64 = 60_000;

/// The signed-in agent, if the session holds one that has neither expired nor been idle for
/// `idle_secs` (0: no idle end). An idle session is deleted; an active one is marked active (at
/// most once a minute, so a busy portal's `/auth/check` costs no write per request).
pub async fn current_agent(
    session: &Session,
    now: UnixTime,
    idle_secs: i64,
) -> Result<Option<AgentSession>, Refusal> {
    let agent: Option<AgentSession> = session.get(AGENT_KEY).await.map_err(session_error)?;
    let Some(mut a) = agent.filter(|a| a.expires_at > now) else {
        return Ok(None);
    };
    let last = a.last_active.unwrap_or(a.signed_in_at);
    let quiet = now.millis() - last.millis();
    if idle_secs > 0 && quiet >= idle_secs * 1000 {
        session.flush().await.map_err(session_error)?;
        return Ok(None);
    }
    if quiet >= TOUCH_MILLIS {
        a.last_active = Some(now);
        session.insert(AGENT_KEY, &a).await.map_err(session_error)?;
    }
    Ok(Some(a))
}

/// Starts a fresh session for `agent` (a new session ID: no fixation). A browser that brought a
/// session cookie gets a new ID (the old record is deleted); one without gets its first ID when
/// the session is saved, and nothing is deleted (a login costs one statement less).
pub async fn sign_in(session: &Session, agent: &AgentSession) -> Result<(), Refusal> {
    if session.id().is_some() {
        session.cycle_id().await.map_err(session_error)?;
    }
    session
        .insert(AGENT_KEY, agent)
        .await
        .map_err(session_error)?;
    Ok(())
}

/// `scheme://host[:port]` of a URL, lower case, without the scheme's default port: an origin as
/// browsers send it in `Origin`.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = match (scheme.as_str(), authority.rsplit_once(':')) {
        ("https", Some((h, "443"))) | ("http", Some((h, "80"))) => h.to_string(),
        _ => authority,
    };
    Some(format!("{scheme}://{authority}"))
}

/// Login CSRF (and logout CSRF): a state-changing POST must come from the SP's own origin,
/// compared exactly (scheme, host, port). `Origin: null` (sandboxed frames, data: URLs) is
/// refused. Without `Origin`, a `Referer` is held to the same; without either (no browser
/// sends a form POST so), the request is let through.
pub fn check_origin(headers: &HeaderMap, sp: &ServiceProvider) -> Result<(), Refusal> {
    let expected = origin_of(&sp.host_url);
    let refuse = |what: &str, got: &str| {
        Refusal::new(
            Reason::CrossOrigin,
            format!(
                "the form was posted from {what} \"{}\", not from this service's origin \"{}\"",
                Echo(got),
                expected.as_deref().unwrap_or("?")
            ),
        )
    };
    if let Some(o) = headers.get(header::ORIGIN) {
        let got = o.to_str().unwrap_or("(not ASCII)");
        if got == "null" || origin_of(got).is_none() || origin_of(got) != expected {
            return Err(refuse("origin", got));
        }
        return Ok(());
    }
    if let Some(r) = headers.get(header::REFERER) {
        let got = r.to_str().unwrap_or("(not ASCII)");
        if origin_of(got) != expected {
            return Err(refuse("page", got));
        }
    }
    Ok(())
}

fn tenant_base(sp: &ServiceProvider, path_tenant: Option<&str>) -> String {
    match path_tenant {
        Some(t) => format!(
            "{}/t/{}",
            sp.host_url,
            percent_encoding::utf8_percent_encode(t, percent_encoding::NON_ALPHANUMERIC)
        ),
        None => sp.host_url.clone(),
    }
}

fn form_action(path_tenant: Option<&str>) -> String {
    match path_tenant {
        Some(t) => format!(
            "/t/{}/login",
            percent_encoding::utf8_percent_encode(t, percent_encoding::NON_ALPHANUMERIC)
        ),
        None => "/login".into(),
    }
}

/// The tenant a request is for: from the path, the implicit one (single-tenant), or the domain of
/// the login name (multi-tenant). `Ok(None)`: not known yet (ask for the login name).
async fn resolve_tenant(
    state: &AppState,
    path_tenant: Option<&str>,
    login_name: Option<&str>,
) -> Result<Option<Tenant>, Refusal> {
    if let Some(name) = path_tenant {
        return match state.store.tenant_by_name(name).await? {
            Some(t) => Ok(Some(t)),
            None => Err(Refusal::new(
                Reason::UnknownTenant,
                format!("no tenant is named \"{}\"", Echo(name)),
            )
            .with_page(
                "Unknown organisation",
                "This sign-in address names no organisation.",
            )),
        };
    }
    if !state.multi_tenant() {
        return ensure_default_tenant(state.store.as_ref())
            .await
            .map(Some)
            .map_err(|e| Refusal::new(Reason::StoreUnavailable, e.to_string()));
    }
    let Some(domain) = login_name
        .and_then(|n| split(n).domain)
        .and_then(domain_key)
    else {
        return Ok(None);
    };
    let tenants = state.store.tenant_list().await?;
    Ok(tenants
        .into_iter()
        .find(|t| t.login_domains.contains(&domain)))
}

pub async fn portal(State(state): State<AppState>, sp: CurrentSp, session: Session) -> Answer {
    portal_for(state, sp, session, None).await
}

pub async fn tenant_portal(
    State(state): State<AppState>,
    sp: CurrentSp,
    session: Session,
    Path(tenant): Path<String>,
) -> Answer {
    portal_for(state, sp, session, Some(tenant)).await
}

async fn portal_for(
    state: AppState,
    CurrentSp(sp): CurrentSp,
    session: Session,
    tenant: Option<String>,
) -> Answer {
    let now = state.clock.now();
    let Some(a) = current_agent(&session, now, state.config.session_idle_secs).await? else {
        return Ok(see_other(&format!(
            "{}/login",
            tenant_base(&sp, tenant.as_deref())
        )));
    };
    let body = format!(
        "<h1>Agent portal</h1><p>Signed in as <strong>{}</strong> (<code>{}</code>, tenant <code>{}</code>) by {}.</p>{}",
        esc(&a.display_name),
        esc(&a.username),
        esc(&a.tenant),
        match a.method {
            SignInMethod::Saml => "single sign-on",
            SignInMethod::Password => "password",
            SignInMethod::Circuit => "Circuit",
        },
        pages::logout_button(&sp)
    );
    Ok(Html(pages::layout(Some(&sp), "Agent portal", &body)).into_response())
}

fn esc(s: &str) -> String {
    crate::saml::bindings::xml_escape(s)
}

pub async fn login_page(
    State(state): State<AppState>,
    sp: CurrentSp,
    session: Session,
    headers: HeaderMap,
    Query(q): Query<TargetQuery>,
) -> Answer {
    login_page_for(state, sp, session, headers, None, q).await
}

pub async fn tenant_login_page(
    State(state): State<AppState>,
    sp: CurrentSp,
    session: Session,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    Query(q): Query<TargetQuery>,
) -> Answer {
    login_page_for(state, sp, session, headers, Some(tenant), q).await
}

async fn login_page_for(
    state: AppState,
    CurrentSp(sp): CurrentSp,
    session: Session,
    headers: HeaderMap,
    path_tenant: Option<String>,
    q: TargetQuery,
) -> Answer {
    let now = state.clock.now();
    let target = safe_target(&sp, q.target.as_deref());
    let tenant = resolve_tenant(&state, path_tenant.as_deref(), None).await?;
    if let Some(a) = current_agent(&session, now, state.config.session_idle_secs).await?
        && tenant.as_ref().is_none_or(|t| t.id == a.tenant_id)
    {
        return Ok(see_other(&format!("{}{target}", sp.host_url)));
    }
    let action = form_action(path_tenant.as_deref());
    match tenant {
        Some(t) if t.sso_enabled => {
            if q.sso.is_none() && circuit_on(&state, &t).await? {
                return Ok(sign_in_choice(&sp, &t, path_tenant.as_deref(), &target));
            }
            start_sso(&state, &sp, &t, &target, &headers, now).await
        }
        Some(t) => {
            let extra = if circuit_on(&state, &t).await? {
                pages::circuit_button(&sp, &t.name, &target)
            } else {
                String::new()
            };
            Ok(pages::login_form_with(
                &sp,
                &action,
                &target,
                Some(t.title()),
                None,
                StatusCode::OK,
                &extra,
            ))
        }
        None => Ok(pages::login_form(
            &sp,
            &action,
            &target,
            None,
            None,
            StatusCode::OK,
        )),
    }
}

pub async fn login_submit(
    State(state): State<AppState>,
    sp: CurrentSp,
    session: Session,
    client: Option<axum::Extension<ClientAddr>>,
    headers: HeaderMap,
    form: axum::extract::Form<LoginForm>,
) -> Answer {
    login_submit_for(state, sp, session, client, headers, None, form.0).await
}

pub async fn tenant_login_submit(
    State(state): State<AppState>,
    sp: CurrentSp,
    session: Session,
    client: Option<axum::Extension<ClientAddr>>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    form: axum::extract::Form<LoginForm>,
) -> Answer {
    login_submit_for(state, sp, session, client, headers, Some(tenant), form.0).await
}

/// Whether `t` has Circuit sign-on on.
async fn circuit_on(state: &AppState, t: &Tenant) -> Result<bool, Refusal> {
    Ok(state
        .store
        .circuit_get(t.id)
        .await?
        .is_some_and(|c| c.enabled))
}

/// An SSO tenant with Circuit on too: company sign-on or Circuit.
fn sign_in_choice(
    sp: &ServiceProvider,
    t: &Tenant,
    path_tenant: Option<&str>,
    target: &str,
) -> Response {
    let sso = format!(
        "{}/login?sso=1&target={}",
        tenant_base(sp, path_tenant),
        percent_encoding::utf8_percent_encode(target, percent_encoding::NON_ALPHANUMERIC)
    );
    pages::sign_in_choice(
        sp,
        t.title(),
        &sso,
        &pages::circuit_button(sp, &t.name, target),
    )
}

/// A password hash to check against when the user does not exist, so that the answer takes as
/// long as for a wrong password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c3NvZ2F0ZWR1bW15c2FsdA$2cv5S9W5r0M9m3Hh1dR9lCj7WZ0mUQ2Z8l9r7sY3wJQ";

async fn login_submit_for(
    state: AppState,
    CurrentSp(sp): CurrentSp,
    session: Session,
    client: Option<axum::Extension<ClientAddr>>,
    headers: HeaderMap,
    path_tenant: Option<String>,
    form: LoginForm,
) -> Answer {
    let now = state.clock.now();
    let target = safe_target(&sp, form.target.as_deref());
    let action = form_action(path_tenant.as_deref());
    check_origin(&headers, &sp)?;
    let Some(tenant) = resolve_tenant(&state, path_tenant.as_deref(), Some(&form.username)).await?
    else {
        let msg = if split(&form.username).domain.is_none() {
            "Enter your user name with its domain: user@domain or DOMAIN\\user.".to_string()
        } else {
            "No organisation signs in with the domain of this user name.".to_string()
        };
        return Ok(pages::login_form(
            &sp,
            &action,
            &target,
            None,
            Some(&msg),
            StatusCode::BAD_REQUEST,
        ));
    };
    let circuit = circuit_on(&state, &tenant).await?;
    if tenant.sso_enabled {
        if circuit {
            return Ok(sign_in_choice(
                &sp,
                &tenant,
                path_tenant.as_deref(),
                &target,
            ));
        }
        return start_sso(&state, &sp, &tenant, &target, &headers, now).await;
    }
    if circuit && form.password.is_empty() {
        // The login domain named a tenant that signs in with Circuit: offer it.
        return Ok(pages::login_form_with(
            &sp,
            &action,
            &target,
            Some(tenant.title()),
            None,
            StatusCode::OK,
            &pages::circuit_button(&sp, &tenant.name, &target),
        ));
    }
    let client = client.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.0);
    let wrong = |detail: String| {
        Refusal::new(Reason::PasswordRefused, detail)
            .tenant(&tenant.name)
            .username(&form.username)
            .login_form(
                &action,
                &target,
                Some(tenant.title()),
                "The user name or password is wrong.",
            )
    };
    // The name as the tenant compares it; a name of another domain, or no valid name, is a
    // wrong user name (checked against the dummy hash all the same).
    let norm = claim_identity(&form.username, &tenant, &[]);
    let throttle_key = match &norm {
        Ok(n) => n.clone(),
        Err(_) => crate::web::refusal::bounded(&form.username, 256),
    };
    if let Err(wait) = state
        .guards
        .throttle
        .check_shared(
            state.store.as_ref(),
            tenant.id.0,
            &throttle_key,
            client,
            now,
        )
        .await
    {
        let r = Refusal::new(
            Reason::PasswordThrottled,
            format!(
                "{} wrong passwords for \"{}\" from {client}: the next attempt is checked in {wait} s",
                state.config.password_free_attempts,
                Echo(&form.username)
            ),
        )
        .tenant(&tenant.name)
        .login_form(
            &action,
            &target,
            Some(tenant.title()),
            format!("Too many wrong passwords. Please wait {wait} seconds and try again."),
        );
        return Ok((
            [(header::RETRY_AFTER, HeaderValue::from(wait.max(1) as u64))],
            r,
        )
            .into_response());
    }
    let user = password_user(
        &state,
        &tenant,
        norm.as_ref().ok().map(String::as_str),
        form.password.clone(),
    )
    .await?;
    let Some(user) = user else {
        let wait = state
            .guards
            .throttle
            .failed_shared(
                state.store.as_ref(),
                tenant.id.0,
                &throttle_key,
                client,
                now,
            )
            .await;
        let why = match &norm {
            Err(IdentityError::ForeignDomain { domain }) => format!(
                "; its domain \"{}\" is not a login domain of the tenant",
                Echo(domain)
            ),
            Err(IdentityError::Invalid(e)) => format!("; {e}"),
            _ => String::new(),
        };
        let then = if wait > 0 {
            format!(" (from {client}; the next attempt waits {wait} s)")
        } else {
            String::new()
        };
        return Err(wrong(format!(
            "wrong user name or password for \"{}\"{why}{then}",
            Echo(&form.username)
        )));
    };
    state
        .guards
        .throttle
        .succeeded_shared(state.store.as_ref(), tenant.id.0, &throttle_key, client)
        .await;
    let agent = AgentSession::new(
        &tenant,
        &user,
        SignInMethod::Password,
        now,
        now.plus_secs(state.config.session_max_secs),
        None,
    );
    sign_in(&session, &agent).await?;
    state.signed_in(&tenant.name, &user.username, SignInMethod::Password, now);
    tracing::info!(tenant = %tenant.name, user = %user.username, method = "password", "signed in");
    Ok(see_other(&format!("{}{target}", sp.host_url)))
}

/// The user `norm` names in `tenant`, if `password` is theirs. The argon2 check runs in the
/// bounded password pool, against a dummy hash when there is no such user or it has no
/// password, so that every answer takes as long (the agents' login and the Web Manager's).
pub(crate) async fn password_user(
    state: &AppState,
    tenant: &Tenant,
    norm: Option<&str>,
    password: String,
) -> Result<Option<crate::domain::User>, Refusal> {
    let user = match norm {
        Some(n) => state.store.user_by_norm(tenant.id, n).await?,
        None => None,
    };
    let hash = user
        .as_ref()
        .and_then(|u| u.password_hash.clone())
        .unwrap_or_else(|| crate::domain::Secret::new(DUMMY_HASH.into()));
    let has_password = user.as_ref().is_some_and(|u| u.password_hash.is_some());
    let checked = state
        .guards
        .passwords
        .run(move || verify_password(&password, &hash))
        .await
        .map_err(|b| {
            Refusal::new(
                Reason::Overloaded,
                format!("no password checker free ({b:?})"),
            )
        })?
        && has_password;
    Ok(user.filter(|_| checked))
}

pub(crate) fn sp_signing_key(
    state: &AppState,
    sp: &ServiceProvider,
) -> Result<Option<Arc<SigningKey>>, Refusal> {
    state.keys.sp_key(sp).map_err(|e| {
        Refusal::new(
            Reason::SpKeyUnusable,
            format!("the SP's stored private key cannot be used: {e}"),
        )
    })
}

/// A pending-request cookie (see `web::pending`).
fn pending_cookie(
    state: &AppState,
    sp: &ServiceProvider,
    name: &str,
    value: &str,
    max_age: i64,
) -> HeaderValue {
    // SameSite=None: the IdP's answer arrives as a cross-site POST, on which a Lax or Strict
    // cookie is not sent. Browsers accept None only with Secure, so on plain http (a test or
    // development setup, where IdP and SP are usually the same site) it falls back to Lax.
    let secure = state.config.secure_cookies.unwrap_or(sp.is_https());
    let attrs = if secure {
        "SameSite=None; Secure"
    } else {
        "SameSite=Lax"
    };
    let v = format!("{name}={value}; Path=/; HttpOnly; {attrs}; Max-Age={max_age}");
    // Names and values are base64url and hex: visible ASCII.
    HeaderValue::from_str(&v)
        .unwrap_or_else(|_| HeaderValue::from_static("ssogate_rq_=; Max-Age=0"))
}

/// Sends the browser to the tenant's IdP with an AuthnRequest, the request itself kept in a
/// cookie of this browser (nothing stored here).
pub async fn start_sso(
    state: &AppState,
    sp: &ServiceProvider,
    tenant: &Tenant,
    target: &str,
    headers: &HeaderMap,
    now: UnixTime,
) -> Answer {
    let Some(idp_id) = tenant.idp_id else {
        return Err(Refusal::new(
            Reason::IdpMissing,
            format!(
                "tenant {:?} has SSO on but no identity provider",
                tenant.name
            ),
        )
        .tenant(&tenant.name));
    };
    let Some(idp) = state.store.idp_get(idp_id).await? else {
        return Err(Refusal::new(
            Reason::IdpMissing,
            format!(
                "tenant {:?} uses identity provider {idp_id}, which does not exist",
                tenant.name
            ),
        )
        .tenant(&tenant.name));
    };
    let id = request_id(state.rng.bytes16());
    let pending = PendingRequest {
        id: id.clone(),
        sp_id: sp.id,
        tenant_id: tenant.id,
        idp_id: idp.id,
        relay_target: target.to_string(),
        expires_at: now.plus_secs(state.config.pending_request_secs),
    };
    let key = state.pending_key().await?;
    let Some(name) = pending::cookie_name(&id) else {
        return Err(Refusal::new(
            Reason::SignFailed,
            format!("request ID {id} does not name a cookie"),
        ));
    };
    let sealed = pending.seal(key);
    let acs = sp.acs_url();
    let request = AuthnRequest {
        id: &id,
        issue_instant: now,
        destination: &idp.sso_url,
        acs_url: &acs,
        sp_entity_id: &sp.entity_id,
        force_authn: false,
        is_passive: false,
        name_id_policy: idp.name_id_format.as_ref().map(|f| NameIdPolicy {
            format: Some(f.clone()),
            allow_create: true,
        }),
        requested_authn_context: idp.authn_context.as_ref().map(|c| RequestedAuthnContext {
            comparison: "exact".into(),
            class_refs: vec![c.clone()],
        }),
    }
    .build();
    let sp_key = sp_signing_key(state, sp)?;
    tracing::info!(tenant = %tenant.name, idp = %idp.name, request_id = %id, binding = idp.sso_binding.as_str(), "AuthnRequest sent");
    let mut res = send(
        sp,
        sp_key.as_deref(),
        Outgoing {
            binding: idp.sso_binding,
            destination: &idp.sso_url,
            kind: MessageKind::Request,
            message: &request,
            relay_state: None,
        },
    )?;
    // A browser keeps a few pending requests (several tabs); starting more drops the oldest.
    let mut older: Vec<(UnixTime, String)> = pending::cookies_of(headers)
        .into_iter()
        .map(|(n, v)| {
            let exp = PendingRequest::open(&v, key, now)
                .map(|p| p.expires_at)
                .unwrap_or(UnixTime::from_millis(0));
            (exp, n)
        })
        .collect();
    older.sort();
    let excess = older.len().saturating_sub(pending::MAX_PER_BROWSER - 1);
    for (_, n) in older.iter().take(excess) {
        res.headers_mut()
            .append(header::SET_COOKIE, pending_cookie(state, sp, n, "", 0));
    }
    res.headers_mut().append(
        header::SET_COOKIE,
        pending_cookie(state, sp, &name, &sealed, state.config.pending_request_secs),
    );
    Ok(res)
}

/// The cookie that clears a pending request once answered.
pub fn clear_pending(state: &AppState, sp: &ServiceProvider, name: &str) -> HeaderValue {
    pending_cookie(state, sp, name, "", 0)
}

/// `GET /logout`: changes nothing (a link or an image on another site must not sign anyone
/// out); a signed-in agent gets a one-button form that POSTs.
pub async fn logout_page(
    State(state): State<AppState>,
    CurrentSp(sp): CurrentSp,
    session: Session,
) -> Answer {
    let now = state.clock.now();
    match current_agent(&session, now, state.config.session_idle_secs).await? {
        Some(a) => {
            let body = format!(
                "<h1>Sign out</h1><p>Signed in as <strong>{}</strong>.</p>{}",
                esc(&a.display_name),
                pages::logout_button(&sp)
            );
            Ok(Html(pages::layout(Some(&sp), "Sign out", &body)).into_response())
        }
        None => Ok(signed_out(&sp, None)),
    }
}

/// SP-initiated logout (`POST /logout`): the session ends here at once; with single logout on,
/// the IdP is asked to end its session too (DESIGN §3.3).
pub async fn logout(
    State(state): State<AppState>,
    CurrentSp(sp): CurrentSp,
    session: Session,
    headers: HeaderMap,
) -> Answer {
    let now = state.clock.now();
    check_origin(&headers, &sp)?;
    let agent = current_agent(&session, now, state.config.session_idle_secs).await?;
    session.flush().await.map_err(session_error)?;
    let Some(agent) = agent else {
        return Ok(signed_out(&sp, None));
    };
    tracing::info!(tenant = %agent.tenant, user = %agent.username, "signed out");
    let Some(saml) = agent.saml.as_ref() else {
        return Ok(signed_out(&sp, Some(&agent)));
    };
    let tenant = state.store.tenant_get(agent.tenant_id).await?;
    let idp = state.store.idp_get(saml.idp_id).await?;
    let (Some(tenant), Some(idp)) = (tenant, idp) else {
        return Ok(signed_out(&sp, Some(&agent)));
    };
    let Some(slo_url) = idp.slo_url.clone().filter(|_| tenant.slo_enabled) else {
        return Ok(signed_out(&sp, Some(&agent)));
    };
    let id = request_id(state.rng.bytes16());
    let name_id = NameId {
        value: saml.name_id.clone(),
        format: saml.name_id_format.clone(),
        name_qualifier: saml.name_qualifier.clone(),
        sp_name_qualifier: saml.sp_name_qualifier.clone(),
    };
    let msg = LogoutRequestParams {
        id: &id,
        issue_instant: now,
        destination: &slo_url,
        sp_entity_id: &sp.entity_id,
        name_id: &name_id,
        session_index: saml.session_index.as_deref(),
        not_on_or_after: Some(now.plus_secs(state.config.pending_request_secs)),
    }
    .build();
    state
        .store
        .pending_logout_put(&PendingLogout {
            id: id.clone(),
            idp_id: idp.id,
            expires_at: now.plus_secs(state.config.pending_request_secs),
        })
        .await?;
    let key = sp_signing_key(&state, &sp)?;
    tracing::info!(tenant = %tenant.name, idp = %idp.name, request_id = %id, "LogoutRequest sent");
    send(
        &sp,
        key.as_deref(),
        Outgoing {
            binding: idp.slo_binding,
            destination: &slo_url,
            kind: MessageKind::Request,
            message: &msg,
            relay_state: None,
        },
    )
}

/// A page that needs no session: where an IdP's logout may send the browser back to.
pub async fn signed_out_page(CurrentSp(sp): CurrentSp) -> Response {
    signed_out(&sp, None)
}

pub fn signed_out(sp: &ServiceProvider, agent: Option<&AgentSession>) -> Response {
    let again = match agent {
        Some(a) if a.tenant != DEFAULT_TENANT => format!(
            "{}/t/{}/login",
            sp.host_url,
            percent_encoding::utf8_percent_encode(&a.tenant, percent_encoding::NON_ALPHANUMERIC)
        ),
        _ => format!("{}/login", sp.host_url),
    };
    let body = format!(
        "<h1>Signed out</h1><p>You are signed out.</p><p><a href=\"{}\">Sign in again</a></p>",
        esc(&again)
    );
    Html(pages::layout(Some(sp), "Signed out", &body)).into_response()
}

/// Header values are visible ASCII: anything else (and '%') is percent-encoded UTF-8.
fn header_value(s: &str) -> HeaderValue {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%').add(b'\x7f');
    let enc = percent_encoding::utf8_percent_encode(s, SET).to_string();
    HeaderValue::from_str(&enc).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Forward auth: 200 with the agent in headers, or 401.
pub async fn auth_check(
    State(clock): State<Arc<dyn Clock>>,
    State(config): State<Arc<crate::config::Config>>,
    session: Session,
) -> Response {
    match current_agent(&session, clock.now(), config.session_idle_secs).await {
        Ok(Some(a)) => {
            let mut res = StatusCode::OK.into_response();
            let h = res.headers_mut();
            h.insert("x-auth-user", header_value(&a.username));
            h.insert("x-auth-tenant", header_value(&a.tenant));
            h.insert("x-auth-display-name", header_value(&a.display_name));
            h.insert("x-auth-method", HeaderValue::from_static(a.method.as_str()));
            res
        }
        Ok(None) => StatusCode::UNAUTHORIZED.into_response(),
        Err(r) => {
            tracing::error!(detail = %r.detail, "auth check cannot read the session");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// The session as JSON (for the portal).
pub async fn auth_session(
    State(clock): State<Arc<dyn Clock>>,
    State(config): State<Arc<crate::config::Config>>,
    session: Session,
) -> Response {
    match current_agent(&session, clock.now(), config.session_idle_secs).await {
        Ok(Some(a)) => Json(serde_json::json!({
            "authenticated": true,
            "user": a.username,
            "display_name": a.display_name,
            "tenant": a.tenant,
            "method": a.method,
            "signed_in_at": a.signed_in_at.to_rfc3339(),
            "expires_at": a.expires_at.to_rfc3339(),
        }))
        .into_response(),
        Ok(None) => (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"authenticated": false})),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"authenticated": false, "error": "store_unavailable"})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(url: &str) -> ServiceProvider {
        ServiceProvider {
            id: crate::domain::SpId(1),
            entity_id: url.into(),
            host_url: url.into(),
            certificate_pem: None,
            private_key_pem: None,
            next_certificate_pem: None,
            next_private_key_pem: None,
            version: 1,
        }
    }

    fn origin(o: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        h
    }

    #[test]
    fn origins_compare_exactly() {
        let s = sp("https://portal.acme.com/agentportal");
        assert!(check_origin(&origin("https://portal.acme.com"), &s).is_ok());
        assert!(check_origin(&origin("https://PORTAL.acme.com:443"), &s).is_ok());
        for bad in [
            "null",
            "https://portal.acme.co",
            "https://portal.acme.com.evil.example",
            "http://portal.acme.com",
            "https://portal.acme.com:8443",
            "garbage",
        ] {
            let r = check_origin(&origin(bad), &s).expect_err(bad);
            assert_eq!(r.reason, Reason::CrossOrigin, "{bad}");
        }
        let local = sp("http://127.0.0.1:8080");
        assert!(check_origin(&origin("http://127.0.0.1:8080"), &local).is_ok());
        assert!(check_origin(&origin("http://127.0.0.1"), &local).is_err());
        // Without Origin, the Referer must be ours; without either, nothing to compare.
        let mut h = HeaderMap::new();
        h.insert(
            header::REFERER,
            HeaderValue::from_static("https://evil.example/x"),
        );
        assert!(check_origin(&h, &s).is_err());
        h.insert(
            header::REFERER,
            HeaderValue::from_static("https://portal.acme.com/agentportal/login"),
        );
        assert!(check_origin(&h, &s).is_ok());
        assert!(check_origin(&HeaderMap::new(), &s).is_ok());
    }

    #[test]
    fn relay_targets_are_short_same_origin_paths() {
        let s = sp("https://portal.acme.com");
        assert_eq!(safe_target(&s, Some("/queue?x=1")), "/queue?x=1");
        assert_eq!(safe_target(&s, Some("https://evil.example/")), "/");
        assert_eq!(safe_target(&s, Some("//evil.example/")), "/");
        let long = format!("/{}", "a".repeat(pending::MAX_RELAY_TARGET));
        assert_eq!(safe_target(&s, Some(&long)), "/");
    }

    #[test]
    fn the_login_form_debug_hides_the_password() {
        let f = LoginForm {
            username: "kate".into(),
            password: "hunter2-secret".into(),
            target: None,
        };
        let d = format!("{f:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("kate"));
    }
}
