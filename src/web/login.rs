//! The agent's side: portal landing page, login (SSO start or local password), logout, and the
//! forward-auth endpoints for the portal or its reverse proxy.
#![expect(
    clippy::result_large_err,
    reason = "a refusal is rare, and it carries its whole explanation to the log"
)]

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use sha2::Digest;
use tower_sessions::Session;

use super::error::{Failure, refuse};
use super::{AppState, BINDING_COOKIE, CurrentSp, pages};
use crate::domain::admin::{DEFAULT_TENANT, ensure_default_tenant, verify_password};
use crate::domain::username::{normalise, split};
use crate::domain::{Binding, ServiceProvider, Tenant};
use crate::saml::UnixTime;
use crate::saml::authn_request::{AuthnRequest, NameIdPolicy, RequestedAuthnContext, request_id};
use crate::saml::bindings::{MessageKind, encode_redirect};
use crate::saml::logout::LogoutRequestParams;
use crate::saml::response::NameId;
use crate::saml::xmldsig::SigningKey;
use crate::store::sessions::AGENT_KEY;
use crate::store::{AgentSession, PendingLogout, PendingRequest, SignInMethod};

#[derive(Debug, Deserialize, Default)]
pub struct TargetQuery {
    pub target: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
pub struct LoginForm {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    pub target: Option<String>,
}

/// A same-origin portal path to go to after login, or `/` (DESIGN §3.1 step 5: no open
/// redirect). Absolute URLs are accepted only below the SP's own host URL.
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
        && path.len() <= 1024
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

pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_string())
}

pub fn binding_hash(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// The signed-in agent, if the session holds one that has not expired.
pub async fn current_agent(
    session: &Session,
    now: UnixTime,
) -> Result<Option<AgentSession>, Failure> {
    let agent: Option<AgentSession> = session
        .get(AGENT_KEY)
        .await
        .map_err(|e| Failure::store(&crate::store::StoreError::Unavailable(e.to_string())))?;
    Ok(agent.filter(|a| a.expires_at > now))
}

/// Starts a fresh session for `agent` (a new session ID: no fixation).
pub async fn sign_in(session: &Session, agent: &AgentSession) -> Result<(), Failure> {
    let err = |e: tower_sessions::session::Error| {
        Failure::store(&crate::store::StoreError::Unavailable(e.to_string()))
    };
    session.cycle_id().await.map_err(err)?;
    session.insert(AGENT_KEY, agent).await.map_err(err)?;
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

/// The tenant a request is for: from the path, the implicit one (single-tenant), or the domain of
/// the login name (multi-tenant). `Ok(None)`: not known yet (ask for the login name).
async fn resolve_tenant(
    state: &AppState,
    path_tenant: Option<&str>,
    login_name: Option<&str>,
) -> Result<Option<Tenant>, Failure> {
    if let Some(name) = path_tenant {
        return match state.store.tenant_by_name(name).await? {
            Some(t) => Ok(Some(t)),
            None => Err(Failure::new(
                StatusCode::NOT_FOUND,
                "unknown_tenant",
                format!("no tenant is named {name:?}"),
            )
            .with_public(
                "Unknown organisation",
                "This sign-in address names no organisation.",
            )),
        };
    }
    if !state.config.multi_tenant {
        return ensure_default_tenant(state.store.as_ref())
            .await
            .map(Some)
            .map_err(|e| {
                Failure::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    e.to_string(),
                )
            });
    }
    let Some(domain) = login_name
        .and_then(|n| split(n).domain)
        .map(str::to_lowercase)
    else {
        return Ok(None);
    };
    let tenants = state.store.tenant_list().await?;
    Ok(tenants
        .into_iter()
        .find(|t| t.login_domains.contains(&domain)))
}

pub async fn portal(State(state): State<AppState>, sp: CurrentSp, session: Session) -> Response {
    portal_for(state, sp, session, None).await
}

pub async fn tenant_portal(
    State(state): State<AppState>,
    sp: CurrentSp,
    session: Session,
    Path(tenant): Path<String>,
) -> Response {
    portal_for(state, sp, session, Some(tenant)).await
}

async fn portal_for(
    state: AppState,
    CurrentSp(sp): CurrentSp,
    session: Session,
    tenant: Option<String>,
) -> Response {
    let now = state.clock.now();
    match current_agent(&session, now).await {
        Ok(Some(a)) => {
            let body = format!(
                "<h1>Agent portal</h1><p>Signed in as <strong>{}</strong> (<code>{}</code>, tenant <code>{}</code>) by {}.</p>\
                 <p><a href=\"{}/logout\">Sign out</a></p>",
                esc(&a.display_name),
                esc(&a.username),
                esc(&a.tenant),
                if a.method == SignInMethod::Saml {
                    "single sign-on"
                } else {
                    "password"
                },
                esc(&sp.host_url)
            );
            Html(pages::layout(Some(&sp), "Agent portal", &body)).into_response()
        }
        Ok(None) => see_other(&format!("{}/login", tenant_base(&sp, tenant.as_deref()))),
        Err(f) => refuse(&state, Some(&sp), "portal", now, f).await,
    }
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
) -> Response {
    login_page_for(state, sp, session, headers, None, q).await
}

pub async fn tenant_login_page(
    State(state): State<AppState>,
    sp: CurrentSp,
    session: Session,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    Query(q): Query<TargetQuery>,
) -> Response {
    login_page_for(state, sp, session, headers, Some(tenant), q).await
}

async fn login_page_for(
    state: AppState,
    CurrentSp(sp): CurrentSp,
    session: Session,
    headers: HeaderMap,
    path_tenant: Option<String>,
    q: TargetQuery,
) -> Response {
    let now = state.clock.now();
    let target = safe_target(&sp, q.target.as_deref());
    let result: Result<Response, Failure> = async {
        let tenant = resolve_tenant(&state, path_tenant.as_deref(), None).await?;
        if let Some(a) = current_agent(&session, now).await?
            && tenant.as_ref().is_none_or(|t| t.id == a.tenant_id)
        {
            return Ok(see_other(&format!("{}{target}", sp.host_url)));
        }
        let action = match &path_tenant {
            Some(t) => format!(
                "/t/{}/login",
                percent_encoding::utf8_percent_encode(t, percent_encoding::NON_ALPHANUMERIC)
            ),
            None => "/login".into(),
        };
        match tenant {
            Some(t) if t.sso_enabled => start_sso(&state, &sp, &t, &target, &headers, now).await,
            Some(t) => Ok(pages::login_form(
                &sp,
                &action,
                &target,
                Some(&t.name),
                None,
                StatusCode::OK,
            )),
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
    .await;
    match result {
        Ok(r) => r,
        Err(f) => refuse(&state, Some(&sp), "login", now, f).await,
    }
}

pub async fn login_submit(
    State(state): State<AppState>,
    sp: CurrentSp,
    session: Session,
    headers: HeaderMap,
    form: axum::extract::Form<LoginForm>,
) -> Response {
    login_submit_for(state, sp, session, headers, None, form.0).await
}

pub async fn tenant_login_submit(
    State(state): State<AppState>,
    sp: CurrentSp,
    session: Session,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    form: axum::extract::Form<LoginForm>,
) -> Response {
    login_submit_for(state, sp, session, headers, Some(tenant), form.0).await
}

/// A password hash to check against when the user does not exist, so that the answer takes as
/// long as for a wrong password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c3NvZ2F0ZWR1bW15c2FsdA$2cv5S9W5r0M9m3Hh1dR9lCj7WZ0mUQ2Z8l9r7sY3wJQ";

async fn login_submit_for(
    state: AppState,
    CurrentSp(sp): CurrentSp,
    session: Session,
    headers: HeaderMap,
    path_tenant: Option<String>,
    form: LoginForm,
) -> Response {
    let now = state.clock.now();
    let target = safe_target(&sp, form.target.as_deref());
    let action = match &path_tenant {
        Some(t) => format!(
            "/t/{}/login",
            percent_encoding::utf8_percent_encode(t, percent_encoding::NON_ALPHANUMERIC)
        ),
        None => "/login".into(),
    };
    // Login CSRF: a browser that says where the form came from must say it came from us.
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok())
        && origin != "null"
        && !sp.host_url.starts_with(origin)
    {
        let f = Failure::new(
            StatusCode::FORBIDDEN,
            "cross_origin_login",
            format!("login form posted from origin {origin:?}"),
        );
        return refuse(&state, Some(&sp), "login", now, f).await;
    }
    let result: Result<Response, Failure> = async {
        let Some(tenant) = resolve_tenant(&state, path_tenant.as_deref(), Some(&form.username)).await? else {
            let msg = if split(&form.username).domain.is_none() {
                "Enter your user name with its domain: user@domain or DOMAIN\\user.".to_string()
            } else {
                format!("No organisation signs in with the domain of {:?}.", form.username.trim())
            };
            return Ok(pages::login_form(&sp, &action, &target, None, Some(&msg), StatusCode::BAD_REQUEST));
        };
        if tenant.sso_enabled {
            return start_sso(&state, &sp, &tenant, &target, &headers, now).await;
        }
        let norm = normalise(&form.username, tenant.username_rule);
        let user = if norm.is_empty() { None } else { state.store.user_by_norm(tenant.id, &norm).await? };
        let hash = user.as_ref().and_then(|u| u.password_hash.clone());
        let password = form.password.clone();
        let checked = match hash {
            Some(h) => tokio::task::spawn_blocking(move || verify_password(&password, &h)).await.unwrap_or(false),
            None => {
                let dummy = crate::domain::Secret::new(DUMMY_HASH.into());
                let _ = tokio::task::spawn_blocking(move || verify_password(&password, &dummy)).await;
                false
            }
        };
        let Some(user) = user.filter(|_| checked) else {
            let r = super::reference(state.rng.as_ref());
            tracing::warn!(reference = %r, tenant = %tenant.name, username = %form.username, "password sign-in refused");
            let rec = crate::store::SignInFailure {
                at: now,
                reference: r.clone(),
                endpoint: "login".into(),
                tenant: Some(tenant.name.clone()),
                idp: None,
                reason: "password_refused".into(),
                detail: format!("wrong user name or password for {:?} (normalised {:?})", form.username, norm),
            };
            if let Err(e) = state.store.failure_record(&rec).await {
                tracing::error!(error = %e, "cannot record the sign-in failure");
            }
            return Ok(pages::login_form(&sp, &action, &target, Some(&tenant.name), Some("The user name or password is wrong."), StatusCode::UNAUTHORIZED));
        };
        let agent = AgentSession {
            tenant_id: tenant.id,
            tenant: tenant.name.clone(),
            user_id: user.id,
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            method: SignInMethod::Password,
            signed_in_at: now,
            expires_at: now.plus_secs(state.config.session_max_secs),
            saml: None,
        };
        sign_in(&session, &agent).await?;
        tracing::info!(tenant = %tenant.name, user = %user.username, method = "password", "signed in");
        Ok(see_other(&format!("{}{target}", sp.host_url)))
    }
    .await;
    match result {
        Ok(r) => r,
        Err(f) => refuse(&state, Some(&sp), "login", now, f).await,
    }
}

fn sp_signing_key(
    state: &AppState,
    sp: &ServiceProvider,
) -> Result<Option<std::sync::Arc<SigningKey>>, Failure> {
    state.keys.sp_key(sp).map_err(|e| {
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "sp_key_unusable",
            format!("the SP's stored private key cannot sign: {e}"),
        )
    })
}

fn binding_cookie(state: &AppState, sp: &ServiceProvider, token: &str) -> HeaderValue {
    // SameSite=None: the IdP's answer arrives as a cross-site POST, on which a Lax or Strict
    // cookie is not sent. Browsers accept None only with Secure, so on plain http (a test or
    // development setup, where IdP and SP are usually the same site) it falls back to Lax.
    let secure = state.config.secure_cookies.unwrap_or(sp.is_https());
    let attrs = if secure {
        "SameSite=None; Secure"
    } else {
        "SameSite=Lax"
    };
    let v = format!(
        "{BINDING_COOKIE}={token}; Path=/; HttpOnly; {attrs}; Max-Age={}",
        state.config.pending_request_secs
    );
    // The token is base64url, so the header value is visible ASCII.
    HeaderValue::from_str(&v)
        .unwrap_or_else(|_| HeaderValue::from_static("ssogate_binding=; Max-Age=0"))
}

/// Sends the browser to the tenant's IdP with an AuthnRequest, remembering it as pending and
/// bound to this browser.
pub async fn start_sso(
    state: &AppState,
    sp: &ServiceProvider,
    tenant: &Tenant,
    target: &str,
    headers: &HeaderMap,
    now: UnixTime,
) -> Result<Response, Failure> {
    let Some(idp_id) = tenant.idp_id else {
        return Err(Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "idp_missing",
            format!(
                "tenant {:?} has SSO on but no identity provider",
                tenant.name
            ),
        )
        .tenant(&tenant.name));
    };
    let Some(idp) = state.store.idp_get(idp_id).await? else {
        return Err(Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "idp_missing",
            format!(
                "tenant {:?} uses identity provider {idp_id}, which does not exist",
                tenant.name
            ),
        )
        .tenant(&tenant.name));
    };
    let id = request_id(state.rng.bytes16());
    let token = cookie_value(headers, BINDING_COOKIE)
        .filter(|t| {
            t.len() == 43
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .unwrap_or_else(|| state.rng.token());
    state
        .store
        .pending_request_put(&PendingRequest {
            id: id.clone(),
            sp_id: sp.id,
            tenant_id: tenant.id,
            idp_id: idp.id,
            relay_target: target.to_string(),
            binding_hash: binding_hash(&token),
            expires_at: now.plus_secs(state.config.pending_request_secs),
        })
        .await?;
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
    let key = sp_signing_key(state, sp)?;
    let cookie = binding_cookie(state, sp, &token);
    tracing::info!(tenant = %tenant.name, idp = %idp.name, request_id = %id, binding = idp.sso_binding.as_str(), "AuthnRequest sent");
    let mut res = match idp.sso_binding {
        Binding::Redirect => {
            let signer = key.as_deref().map(|k| (k, k.default_algorithm()));
            let url = encode_redirect(
                &idp.sso_url,
                MessageKind::Request,
                &request.xml,
                None,
                signer,
            )
            .map_err(|e| {
                Failure::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "sign_failed",
                    e.to_string(),
                )
            })?;
            see_other(&url)
        }
        Binding::Post => {
            let xml = match &key {
                Some(k) => request
                    .signed(k, k.default_algorithm(), None)
                    .map_err(|e| {
                        Failure::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "sign_failed",
                            e.to_string(),
                        )
                    })?,
                None => request.xml.clone(),
            };
            let b64 = base64::engine::general_purpose::STANDARD.encode(xml.as_bytes());
            pages::saml_post(sp, &idp.sso_url, "SAMLRequest", &b64, None)
        }
    };
    res.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(res)
}

/// SP-initiated logout: the session ends here at once; with single logout on, the IdP is asked
/// to end its session too (DESIGN §3.3).
pub async fn logout(
    State(state): State<AppState>,
    CurrentSp(sp): CurrentSp,
    session: Session,
) -> Response {
    let now = state.clock.now();
    let result: Result<Response, Failure> = async {
        let agent = current_agent(&session, now).await?;
        session.flush().await.map_err(|e| Failure::store(&crate::store::StoreError::Unavailable(e.to_string())))?;
        let Some(agent) = agent else { return Ok(signed_out(&sp, None)) };
        tracing::info!(tenant = %agent.tenant, user = %agent.username, "signed out");
        let Some(saml) = agent.saml.as_ref() else { return Ok(signed_out(&sp, Some(&agent))) };
        let tenant = state.store.tenant_get(agent.tenant_id).await?;
        let idp = state.store.idp_get(saml.idp_id).await?;
        let (Some(tenant), Some(idp)) = (tenant, idp) else { return Ok(signed_out(&sp, Some(&agent))) };
        let Some(slo_url) = idp.slo_url.clone().filter(|_| tenant.slo_enabled) else { return Ok(signed_out(&sp, Some(&agent))) };
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
        state.store.pending_logout_put(&PendingLogout { id: id.clone(), idp_id: idp.id, expires_at: now.plus_secs(state.config.pending_request_secs) }).await?;
        let key = sp_signing_key(&state, &sp)?;
        tracing::info!(tenant = %tenant.name, idp = %idp.name, request_id = %id, "LogoutRequest sent");
        Ok(match idp.slo_binding {
            Binding::Redirect => {
                let signer = key.as_deref().map(|k| (k, k.default_algorithm()));
                let url = encode_redirect(&slo_url, MessageKind::Request, &msg.xml, None, signer)
                    .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "sign_failed", e.to_string()))?;
                see_other(&url)
            }
            Binding::Post => {
                let xml = match &key {
                    Some(k) => msg.signed(k, k.default_algorithm(), None).map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "sign_failed", e.to_string()))?,
                    None => msg.xml.clone(),
                };
                let b64 = base64::engine::general_purpose::STANDARD.encode(xml.as_bytes());
                pages::saml_post(&sp, &slo_url, "SAMLRequest", &b64, None)
            }
        })
    }
    .await;
    match result {
        Ok(r) => r,
        Err(f) => refuse(&state, Some(&sp), "logout", now, f).await,
    }
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
pub async fn auth_check(State(state): State<AppState>, session: Session) -> Response {
    let now = state.clock.now();
    match current_agent(&session, now).await {
        Ok(Some(a)) => {
            let mut res = StatusCode::OK.into_response();
            let h = res.headers_mut();
            h.insert("x-auth-user", header_value(&a.username));
            h.insert("x-auth-tenant", header_value(&a.tenant));
            h.insert("x-auth-display-name", header_value(&a.display_name));
            res
        }
        Ok(None) => StatusCode::UNAUTHORIZED.into_response(),
        Err(f) => {
            tracing::error!(detail = %f.detail, "auth check cannot read the session");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// The session as JSON (for the portal).
pub async fn auth_session(State(state): State<AppState>, session: Session) -> Response {
    let now = state.clock.now();
    match current_agent(&session, now).await {
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
