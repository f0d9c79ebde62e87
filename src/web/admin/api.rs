//! `/api/v1`: the JSON API. Every change goes through the same checked, audited operations as
//! the Web Manager and the CLI; an error is `{"error", "field", "message"}` with 400 (unreadable
//! body), 401, 403, 404, 409 (duplicate, in use, or stale version), 422 (a field is wrong) or
//! 503 (the database is unavailable). Lists are paginated (`?offset=&limit=`, at most 500).
//! Editable objects carry `version`; a change names the version it is based on (body field or
//! `If-Match`), and a stale one changes nothing.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Authed, CSRF_HEADER, Principal, csrf_ok};
use crate::domain::Secret;
use crate::domain::admin::{self, AdminError, IdpInput, SpInput, TenantInput, UserInput};
use crate::domain::audit::{ApiClientView, IdpView, SpView, TenantView, UserView, session_handle};
use crate::store::StoreError;
use crate::web::AppState;

/// An API error: status, stable code, the field at fault, and a sentence.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub field: Option<&'static str>,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            field: None,
            message: message.into(),
        }
    }

    pub fn store(e: &StoreError) -> ApiError {
        tracing::error!(error = %e, "API: the database is unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the database is unavailable; nothing was changed",
        )
    }

    pub fn unauthorized(bad_token: bool) -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            if bad_token {
                "the bearer token names no API client"
            } else {
                "sign in to the Web Manager, or send Authorization: Bearer TOKEN"
            },
        )
    }

    pub fn forbidden() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            super::forbidden_text().1,
        )
    }

    fn csrf() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "a change by a Web Manager session needs its X-CSRF-Token header",
        )
    }

    fn password_change() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "password_change_required",
            "replace the one-time password first (Web Manager)",
        )
    }

    fn bad_body(e: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            crate::web::refusal::bounded(&format!("the body is not the expected JSON: {e}"), 512),
        )
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> ApiError {
        let field = e.field();
        let (status, code) = match &e {
            AdminError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            AdminError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AdminError::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
            AdminError::Stale(_) => (StatusCode::CONFLICT, "stale"),
            AdminError::Store(s) => return ApiError::store(s),
        };
        ApiError {
            status,
            code,
            field,
            message: crate::web::refusal::bounded(&e.to_string(), 2048),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        AdminError::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({"error": self.code, "field": self.field, "message": self.message})),
        )
            .into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok<T: Serialize>(v: T) -> ApiResult {
    Ok(axum::Json(v).into_response())
}

fn created<T: Serialize>(v: T) -> ApiResult {
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

/// A Web Manager session whose one-time password is replaced and whose second factor is set up
/// where one is required (API clients have neither).
fn first_steps_done(p: &Principal) -> Result<(), ApiError> {
    if p.must_change_password() {
        return Err(ApiError::password_change());
    }
    if p.second_factor_missing {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "second_factor_required",
            "central administrators must set up two-step verification first (Web Manager: Your account)",
        ));
    }
    Ok(())
}

/// Central administrators only; a change also needs the CSRF token and a changed password.
fn central(p: &Principal) -> Result<(), ApiError> {
    first_steps_done(p)?;
    if !p.is_central() {
        return Err(ApiError::forbidden());
    }
    Ok(())
}

fn change(p: &Principal, headers: &HeaderMap) -> Result<(), ApiError> {
    central(p)?;
    csrf(p, headers)
}

fn csrf(p: &Principal, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    if !csrf_ok(p, given) {
        return Err(ApiError::csrf());
    }
    Ok(())
}

/// A JSON object body. A field given as `null` counts as left out (unchanged, or the default:
/// optional fields are `Option`s or read through [`null_is_default`]); an integer written as
/// `5.0` is the integer (JSON Schema says so).
fn body<T: for<'de> Deserialize<'de>>(b: &Bytes) -> Result<T, ApiError> {
    let v: Value = serde_json::from_slice(b).map_err(ApiError::bad_body)?;
    let Value::Object(mut fields) = v else {
        return Err(ApiError::bad_body("a JSON object ({…}) is expected"));
    };
    for v in fields.values_mut() {
        if let Some(f) = v.as_f64().filter(|_| v.is_f64())
            && f.fract() == 0.0
            && f.abs() <= MAX_VERSION as f64
        {
            *v = json!(f as i64);
        }
    }
    // Every body's `version` means the same: the version a change is based on.
    if let Some(v) = fields.get("version").filter(|v| !v.is_null())
        && v.as_u64().is_none_or(|n| n > MAX_VERSION)
    {
        return Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid",
            field: Some("version"),
            message: "version must be a whole number from 0 to 2^53 - 1".into(),
        });
    }
    serde_json::from_value(Value::Object(fields)).map_err(ApiError::bad_body)
}

/// The largest version taken (the OpenAPI document states the same bound).
pub const MAX_VERSION: u64 = 9_007_199_254_740_991;

/// `null` is the field's default, as if it were left out.
fn null_is_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The version a change is based on: `If-Match` (a number, quoted or not), else the body's.
fn version(headers: &HeaderMap, body: Option<i64>) -> Result<Option<i64>, ApiError> {
    match headers.get(header::IF_MATCH) {
        None => Ok(body),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(if_match_version)
            .map(Some)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "If-Match must name the version the change is based on (a number)",
                )
            }),
    }
}

/// Query parameters, read as axum's `Query` but refused as the API's own JSON error (400,
/// naming what is wrong) rather than axum's plain text.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    crate::web::refusal::bounded(
                        &format!("query parameters: {}", e.body_text()),
                        512,
                    ),
                )
            })
    }
}

/// `12`, `"12"` or `W/"12"`: 1 to 15 digits (the OpenAPI document's pattern says the same).
fn if_match_version(v: &str) -> Option<i64> {
    let v = v.strip_prefix("W/").unwrap_or(v);
    let digits = match v.strip_prefix('"') {
        Some(quoted) => quoted.strip_suffix('"')?,
        None => v,
    };
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    offset: Option<u64>,
    limit: Option<u64>,
    /// A search text (lists that have one).
    q: Option<String>,
}

const MAX_PAGE: u64 = 500;
/// The largest `offset` (and audit `before`) taken: the OpenAPI document states the same bound.
pub const MAX_OFFSET: u64 = 1_000_000_000;

fn bad_query(message: &'static str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

fn check_limit(limit: Option<u64>) -> Result<u64, ApiError> {
    match limit {
        None => Ok(50),
        Some(l @ 1..=MAX_PAGE) => Ok(l),
        Some(_) => Err(bad_query("query parameters: limit must be 1 to 500")),
    }
}

fn check_offset(offset: Option<u64>) -> Result<u64, ApiError> {
    match offset {
        None => Ok(0),
        Some(o) if o <= MAX_OFFSET => Ok(o),
        Some(_) => Err(bad_query(
            "query parameters: offset must be 0 to 1000000000",
        )),
    }
}

impl Page {
    /// (offset, limit), each within its documented range.
    fn bounds(&self) -> Result<(u64, u64), ApiError> {
        Ok((check_offset(self.offset)?, check_limit(self.limit)?))
    }
}

fn paginate<T: Serialize>(items: Vec<T>, page: &Page) -> ApiResult {
    let total = items.len() as u64;
    let (offset, limit) = page.bounds()?;
    let offset = offset.min(total);
    let items: Vec<T> = items
        .into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .collect();
    ok(json!({"items": items, "total": total, "offset": offset, "limit": limit}))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me", get(me))
        .route("/openapi.json", get(openapi))
        .route("/settings", get(settings_get).put(settings_put))
        .route("/sps", get(sp_list).post(sp_add))
        .route("/sps/{id}", get(sp_get).put(sp_put).delete(sp_delete))
        .route("/sps/{id}/metadata", get(sp_metadata))
        .route("/idps", get(idp_list).post(idp_add))
        .route("/idps/import", post(idp_import))
        .route("/idps/preview", post(idp_preview))
        .route("/idps/{name}", get(idp_get).put(idp_put).delete(idp_delete))
        .route("/idps/{name}/refresh", post(idp_refresh))
        .route("/tenants", get(tenant_list).post(tenant_add))
        .route(
            "/tenants/{tenant}",
            get(tenant_get).put(tenant_put).delete(tenant_delete),
        )
        .route("/tenants/{tenant}/users", get(user_list).post(user_add))
        .route(
            "/tenants/{tenant}/users/{username}",
            get(user_get).put(user_put).delete(user_delete),
        )
        .route(
            "/tenants/{tenant}/captures",
            get(capture_list).post(capture_start).delete(capture_stop),
        )
        .route("/tenants/{tenant}/captures/{id}", get(capture_get))
        .route(
            "/tenants/{tenant}/users/{username}/totp",
            axum::routing::delete(user_totp_reset),
        )
        .route(
            "/tenants/{tenant}/circuit",
            get(circuit_get).put(circuit_put),
        )
        .route("/tenants/{tenant}/sessions", get(session_list))
        .route(
            "/tenants/{tenant}/sessions/{handle}",
            axum::routing::delete(session_end),
        )
        .route("/tenants/{tenant}/failures", get(failure_list))
        .route("/api-clients", get(client_list).post(client_add))
        .route("/api-clients/{name}", axum::routing::delete(client_delete))
        .route("/api-clients/{name}/regenerate", post(client_regenerate))
        .route("/audit", get(audit_list))
        .route("/trace", post(trace))
        .route("/events", get(events))
}

/// How often an event stream checks that its session (or token) is still good.
const EVENTS_RECHECK_SECS: u64 = 60;

/// `GET /api/v1/events`: Server-Sent Events of sign-ins, refusals and changes (a tenant
/// manager sees its own tenant's sign-ins and refusals). At most
/// [`crate::web::events::MAX_STREAMS`] at once; 503 beyond.
async fn events(State(state): State<AppState>, Authed(p): Authed, headers: HeaderMap) -> ApiResult {
    use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
    use tokio::sync::broadcast::error::RecvError;
    first_steps_done(&p)?;
    let Some((slot, rx)) = state.events.subscribe() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many event streams are open; try again later",
        ));
    };
    // Only the credentials, to check them again while the stream lasts.
    let mut creds = HeaderMap::new();
    for h in [header::AUTHORIZATION, header::COOKIE] {
        if let Some(v) = headers.get(&h) {
            creds.insert(h, v.clone());
        }
    }
    struct Stream {
        rx: tokio::sync::broadcast::Receiver<crate::web::events::Event>,
        _slot: crate::web::events::StreamSlot,
        scope: super::Scope,
        state: AppState,
        creds: HeaderMap,
        next_check: tokio::time::Instant,
    }
    let st = Stream {
        rx,
        _slot: slot,
        scope: p.scope.clone(),
        state,
        creds,
        next_check: tokio::time::Instant::now()
            + std::time::Duration::from_secs(EVENTS_RECHECK_SECS),
    };
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        loop {
            tokio::select! {
                r = st.rx.recv() => match r {
                    Ok(e) => {
                        let visible = match &st.scope {
                            super::Scope::Central => true,
                            super::Scope::Tenant { name, .. } => e.tenant() == Some(name.as_str()),
                        };
                        if visible {
                            let ev = SseEvent::default()
                                .event(e.name())
                                .json_data(&e)
                                .unwrap_or_else(|_| SseEvent::default().comment("unencodable event"));
                            return Some((Ok::<_, std::convert::Infallible>(ev), st));
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        let ev = SseEvent::default().event("missed").data(n.to_string());
                        return Some((Ok(ev), st));
                    }
                    Err(RecvError::Closed) => return None,
                },
                _ = tokio::time::sleep_until(st.next_check) => {
                    // A session that ended (sign-out, timeout) or a token deleted ends the stream.
                    if super::authenticate(&st.state, &st.creds).await.is_err() {
                        return None;
                    }
                    st.next_check = tokio::time::Instant::now()
                        + std::time::Duration::from_secs(EVENTS_RECHECK_SECS);
                }
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TraceBody {
    /// The SAMLResponse: base64 or XML.
    response: String,
    tenant: Option<String>,
    /// RFC 3339.
    at: Option<String>,
}

/// The SAML tracer (nothing is consumed or recorded).
async fn trace(
    State(state): State<AppState>,
    Authed(p): Authed,
    headers: HeaderMap,
    b: Bytes,
) -> ApiResult {
    central(&p)?;
    csrf(&p, &headers)?;
    let input: TraceBody = body(&b)?;
    let at = match input.at.as_deref().filter(|a| !a.is_empty()) {
        Some(a) => Some(crate::saml::UnixTime::parse(a).ok_or_else(|| {
            ApiError::from(AdminError::Invalid {
                field: Some("at"),
                message: format!("{a:?} is not an RFC 3339 instant (2026-01-31T12:00:00Z)"),
            })
        })?),
        None => None,
    };
    let req = crate::domain::trace::TraceRequest {
        response: input.response.into_bytes(),
        tenant: input.tenant.filter(|t| !t.is_empty()),
        at,
    };
    let report =
        crate::domain::trace::trace(state.store.as_ref(), &state.config, &req, state.clock.now())
            .await?;
    ok(report)
}

async fn me(Authed(p): Authed) -> ApiResult {
    let (scope, tenant) = match &p.scope {
        super::Scope::Central => ("central-admin", None),
        super::Scope::Tenant { name, .. } => ("tenant-manager", Some(name.clone())),
    };
    ok(json!({
        "actor": p.actor,
        "role": scope,
        "tenant": tenant,
        "csrf_token": p.csrf,
        "must_change_password": p.must_change_password(),
        "second_factor_required": p.second_factor_missing,
    }))
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi::document(),
    )
        .into_response()
}

// Settings.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsBody {
    multi_tenant: Option<bool>,
    admin_require_totp: Option<bool>,
}

fn settings_view(state: &AppState) -> Value {
    json!({"multi_tenant": state.multi_tenant(), "admin_require_totp": state.require_totp()})
}

async fn settings_get(State(state): State<AppState>, Authed(p): Authed) -> ApiResult {
    central(&p)?;
    ok(settings_view(&state))
}

async fn settings_put(
    State(state): State<AppState>,
    Authed(p): Authed,
    headers: HeaderMap,
    b: Bytes,
) -> ApiResult {
    change(&p, &headers)?;
    let s: SettingsBody = body(&b)?;
    if let Some(on) = s.multi_tenant {
        p.admin(&state)
            .multi_tenant_set(on, state.config.multi_tenant)
            .await?;
        state.set_multi_tenant(on);
    }
    if let Some(on) = s.admin_require_totp {
        p.admin(&state)
            .setting_set(
                admin::SETTING_REQUIRE_TOTP,
                on,
                state.config.admin_require_totp,
            )
            .await?;
        state.set_require_totp(on);
    }
    ok(settings_view(&state))
}

// Service providers.

/// (No `Debug`: it may hold a private key.)
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SpBody {
    pub host_url: Option<String>,
    pub entity_id: Option<String>,
    pub certificate: Option<String>,
    pub private_key: Option<String>,
    #[serde(default, deserialize_with = "null_is_default")]
    pub generate_key: bool,
    #[serde(default, deserialize_with = "null_is_default")]
    pub remove_key: bool,
    pub next_certificate: Option<String>,
    pub next_private_key: Option<String>,
    #[serde(default, deserialize_with = "null_is_default")]
    pub generate_next_key: bool,
    #[serde(default, deserialize_with = "null_is_default")]
    pub promote_next: bool,
    #[serde(default, deserialize_with = "null_is_default")]
    pub drop_next: bool,
    pub version: Option<i64>,
}

impl SpBody {
    pub fn input(self, version: Option<i64>) -> SpInput {
        SpInput {
            host_url: self.host_url.unwrap_or_default(),
            entity_id: self.entity_id,
            certificate_pem: self.certificate,
            private_key_pem: self.private_key.map(Secret::new),
            generate_key: self.generate_key,
            remove_key: self.remove_key,
            version,
            next_certificate_pem: self.next_certificate,
            next_private_key_pem: self.next_private_key.map(Secret::new),
            generate_next_key: self.generate_next_key,
            promote_next: self.promote_next,
            drop_next: self.drop_next,
        }
    }
}

async fn sp_list(
    State(state): State<AppState>,
    Authed(p): Authed,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult {
    central(&p)?;
    let now = state.clock.now();
    let v: Vec<SpView> = state
        .store
        .sp_list()
        .await?
        .iter()
        .map(|s| SpView::of_with(s, now, &state.cert_views))
        .collect();
    paginate(v, &page)
}

async fn sp_get(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(id): Path<String>,
) -> ApiResult {
    central(&p)?;
    let sp = admin::sp_find(state.store.as_ref(), &id).await?;
    ok(SpView::of_with(&sp, state.clock.now(), &state.cert_views))
}

async fn sp_add(
    State(state): State<AppState>,
    Authed(p): Authed,
    headers: HeaderMap,
    b: Bytes,
) -> ApiResult {
    change(&p, &headers)?;
    let input: SpBody = body(&b)?;
    let sp = p.admin(&state).sp_add(input.input(None)).await?;
    created(SpView::of_with(&sp, state.clock.now(), &state.cert_views))
}

async fn sp_put(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Bytes,
) -> ApiResult {
    change(&p, &headers)?;
    let input: SpBody = body(&b)?;
    let v = version(&headers, input.version)?;
    let sp = p.admin(&state).sp_set(&id, input.input(v)).await?;
    ok(SpView::of_with(&sp, state.clock.now(), &state.cert_views))
}

async fn sp_delete(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    change(&p, &headers)?;
    p.admin(&state).sp_rm(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn sp_metadata(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(id): Path<String>,
) -> ApiResult {
    central(&p)?;
    let sp = admin::sp_find(state.store.as_ref(), &id).await?;
    let xml = admin::sp_metadata_xml(&sp)?;
    Ok((
        [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
        xml,
    )
        .into_response())
}

// Identity providers.

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct IdpBody {
    pub name: Option<String>,
    pub entity_id: Option<String>,
    pub sso_url: Option<String>,
    pub sso_binding: Option<String>,
    pub slo_url: Option<String>,
    pub slo_response_url: Option<String>,
    pub slo_binding: Option<String>,
    pub username_mapping: Option<String>,
    pub certificates: Option<Vec<String>>,
    pub fingerprint: Option<String>,
    pub fingerprint_algorithm: Option<String>,
    pub allow_sha1: Option<bool>,
    pub name_id_format: Option<String>,
    pub authn_context: Option<String>,
    pub metadata_url: Option<String>,
    pub version: Option<i64>,
}

impl IdpBody {
    pub fn input(self, version: Option<i64>) -> IdpInput {
        let fingerprint = match (
            self.fingerprint.filter(|f| !f.trim().is_empty()),
            self.fingerprint_algorithm.filter(|a| !a.trim().is_empty()),
        ) {
            (Some(f), Some(a)) => Some(format!("{}:{}", a.trim(), f.trim())),
            (f, _) => f,
        };
        IdpInput {
            name: self.name,
            entity_id: self.entity_id,
            sso_url: self.sso_url,
            sso_binding: self.sso_binding,
            slo_url: self.slo_url,
            slo_response_url: self.slo_response_url,
            slo_binding: self.slo_binding,
            username: self.username_mapping,
            certificates: self
                .certificates
                .unwrap_or_default()
                .into_iter()
                .filter(|c| !c.trim().is_empty())
                .collect(),
            fingerprint,
            allow_sha1: self.allow_sha1,
            name_id_format: self.name_id_format,
            authn_context: self.authn_context,
            metadata_url: self.metadata_url,
            version,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportBody {
    /// The metadata XML.
    metadata: String,
    /// Which entity of an EntitiesDescriptor.
    entity: Option<String>,
    #[serde(flatten)]
    fields: IdpBody,
}

async fn idp_list(
    State(state): State<AppState>,
    Authed(p): Authed,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult {
    central(&p)?;
    let now = state.clock.now();
    let v: Vec<IdpView> = state
        .store
        .idp_list()
        .await?
        .iter()
        .map(|i| IdpView::of_with(i, now, &state.cert_views))
        .collect();
    paginate(v, &page)
}

async fn idp_get(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(name): Path<String>,
) -> ApiResult {
    central(&p)?;
    let i = admin::idp_find(state.store.as_ref(), &name).await?;
    ok(IdpView::of_with(&i, state.clock.now(), &state.cert_views))
}

/// Fetches the IdP's metadata URL now (as the 6-hourly refresh does).
async fn idp_refresh(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    use crate::domain::audit::RefreshOutcome;
    change(&p, &headers)?;
    let idp = admin::idp_find(state.store.as_ref(), &name).await?;
    let outcome =
        crate::domain::refresh::refresh_idp(&p.admin(&state), &state.outbound, &idp).await?;
    let (code, error) = match outcome {
        RefreshOutcome::Unchanged => ("unchanged", None),
        RefreshOutcome::Changed => ("changed", None),
        RefreshOutcome::Fingerprint => ("fingerprint", None),
        RefreshOutcome::Failed(e) => ("failed", Some(e)),
    };
    let now = admin::idp_find(state.store.as_ref(), &idp.id.0.to_string()).await?;
    ok(json!({"outcome": code, "error": error,
        "idp": IdpView::of_with(&now, state.clock.now(), &state.cert_views)}))
}

async fn idp_add(
    State(state): State<AppState>,
    Authed(p): Authed,
    headers: HeaderMap,
    b: Bytes,
) -> ApiResult {
    change(&p, &headers)?;
    let input: IdpBody = body(&b)?;
    let i = p.admin(&state).idp_add(input.input(None)).await?;
    created(IdpView::of_with(&i, state.clock.now(), &state.cert_views))
}

async fn idp_import(
    State(state): State<AppState>,
    Authed(p): Authed,
    headers: HeaderMap,
    b: Bytes,
) -> ApiResult {
    change(&p, &headers)?;
    let input: ImportBody = body(&b)?;
    admin::check_metadata_size(input.metadata.as_bytes())?;
    let i = p
        .admin(&state)
        .idp_import(
            input.metadata.as_bytes(),
            input.entity.as_deref().filter(|e| !e.is_empty()),
            input.fields.input(None),
        )
        .await?;
    created(IdpView::of_with(&i, state.clock.now(), &state.cert_views))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewBody {
    metadata: String,
    entity: Option<String>,
}

async fn idp_preview(
    State(state): State<AppState>,
    Authed(p): Authed,
    headers: HeaderMap,
    b: Bytes,
) -> ApiResult {
    central(&p)?;
    csrf(&p, &headers)?;
    let input: PreviewBody = body(&b)?;
    let preview = admin::idp_preview(
        input.metadata.as_bytes(),
        input.entity.as_deref().filter(|e| !e.is_empty()),
        state.clock.now(),
    )?;
    ok(preview)
}

async fn idp_put(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(name): Path<String>,
    headers: HeaderMap,
    b: Bytes,
) -> ApiResult {
    change(&p, &headers)?;
    let input: IdpBody = body(&b)?;
    let v = version(&headers, input.version)?;
    let i = p.admin(&state).idp_set(&name, input.input(v)).await?;
    ok(IdpView::of_with(&i, state.clock.now(), &state.cert_views))
}

async fn idp_delete(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    change(&p, &headers)?;
    p.admin(&state).idp_rm(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// Tenants.

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TenantBody {
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub login_domains: Option<Vec<String>>,
    pub sso_enabled: Option<bool>,
    /// The IdP's name ("" for none).
    pub idp: Option<String>,
    pub slo_enabled: Option<bool>,
    pub idp_initiated: Option<bool>,
    pub strip_domain: Option<bool>,
    pub case_insensitive: Option<bool>,
    pub version: Option<i64>,
}

impl TenantBody {
    pub fn input(self, version: Option<i64>) -> TenantInput {
        TenantInput {
            display_name: self.display_name,
            version,
            login_domains: self.login_domains,
            sso_enabled: self.sso_enabled,
            idp: self.idp,
            slo_enabled: self.slo_enabled,
            idp_initiated: self.idp_initiated,
            strip_domain: self.strip_domain,
            case_insensitive: self.case_insensitive,
            ..Default::default()
        }
    }
}

async fn tenant_list(
    State(state): State<AppState>,
    Authed(p): Authed,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult {
    first_steps_done(&p)?;
    let idps = state.store.idp_list().await?;
    let v: Vec<TenantView> = state
        .store
        .tenant_list()
        .await?
        .iter()
        .filter(|t| p.may_watch(t.id))
        .map(|t| TenantView::of(t, &idps))
        .collect();
    paginate(v, &page)
}

async fn tenant_get(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(name): Path<String>,
) -> ApiResult {
    let t = watched_tenant(&state, &p, &name).await?;
    ok(TenantView::of(&t, &state.store.idp_list().await?))
}

async fn tenant_add(
    State(state): State<AppState>,
    Authed(p): Authed,
    headers: HeaderMap,
    b: Bytes,
) -> ApiResult {
    change(&p, &headers)?;
    let mut input: TenantBody = body(&b)?;
    let name = input.name.take().unwrap_or_default();
    let t = p.admin(&state).tenant_add(&name, input.input(None)).await?;
    created(TenantView::of(&t, &state.store.idp_list().await?))
}

async fn tenant_put(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(name): Path<String>,
    headers: HeaderMap,
    b: Bytes,
) -> ApiResult {
    change(&p, &headers)?;
    let input: TenantBody = body(&b)?;
    if input.name.as_deref().is_some_and(|n| n != name) {
        return Err(AdminError::Invalid {
            field: Some("name"),
            message: "a tenant's name cannot change (it is in its sign-in addresses)".into(),
        }
        .into());
    }
    let v = version(&headers, input.version)?;
    let t = p.admin(&state).tenant_set(&name, input.input(v)).await?;
    ok(TenantView::of(&t, &state.store.idp_list().await?))
}

async fn tenant_delete(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    change(&p, &headers)?;
    p.admin(&state).tenant_rm(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The tenant `name`, if `p` may watch it (404 otherwise: a tenant manager does not learn which
/// other tenants exist).
async fn watched_tenant(
    state: &AppState,
    p: &Principal,
    name: &str,
) -> Result<crate::domain::Tenant, ApiError> {
    first_steps_done(p)?;
    match state.store.tenant_by_name(name).await? {
        Some(t) if p.may_watch(t.id) => Ok(t),
        // A tenant manager: nothing outside their tenant, whether it exists or not.
        _ if !p.is_central() => Err(ApiError::forbidden()),
        _ => Err(AdminError::NotFound(format!("no tenant named {name:?}")).into()),
    }
}

// Circuit sign-on: central administrators for every tenant, a tenant manager for their own.

/// (No `Debug`: it holds the client secret.)
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CircuitBody {
    pub enabled: Option<bool>,
    pub kind: Option<String>,
    pub client_id: Option<String>,
    /// Empty or left out: the stored one stays.
    pub client_secret: Option<String>,
    pub portal_url: Option<String>,
    pub login_url: Option<String>,
    pub authorize_path: Option<String>,
    pub token_path: Option<String>,
    pub profile_path: Option<String>,
    pub scope: Option<String>,
    pub profile_field: Option<String>,
    pub pkce: Option<bool>,
    pub token_auth: Option<String>,
    pub version: Option<i64>,
}

impl CircuitBody {
    pub fn input(self, version: Option<i64>) -> crate::domain::circuit::CircuitInput {
        crate::domain::circuit::CircuitInput {
            enabled: self.enabled,
            kind: self.kind,
            client_id: self.client_id,
            client_secret: self.client_secret.map(crate::domain::Secret::new),
            portal_url: self.portal_url,
            login_url: self.login_url,
            authorize_path: self.authorize_path,
            token_path: self.token_path,
            profile_path: self.profile_path,
            scope: self.scope,
            profile_field: self.profile_field,
            pkce: self.pkce,
            token_auth: self.token_auth,
            version,
        }
    }
}

async fn circuit_get(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(name): Path<String>,
) -> ApiResult {
    let t = watched_tenant(&state, &p, &name).await?;
    let c = crate::domain::circuit::circuit_get(state.store.as_ref(), &t.name).await?;
    ok(crate::domain::circuit::CircuitView::of(&c))
}

async fn circuit_put(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(name): Path<String>,
    headers: HeaderMap,
    b: Bytes,
) -> ApiResult {
    let t = watched_tenant(&state, &p, &name).await?;
    csrf(&p, &headers)?;
    let input: CircuitBody = body(&b)?;
    let v = version(&headers, input.version)?;
    let c = p
        .admin(&state)
        .circuit_set(&state.secrets, &t.name, input.input(v))
        .await?;
    ok(crate::domain::circuit::CircuitView::of(&c))
}

// Users.

/// (No `Debug`: it holds a password.)
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UserBody {
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub circuit_user: Option<String>,
    pub password: Option<String>,
    pub roles: Option<Vec<String>>,
    pub version: Option<i64>,
}

impl UserBody {
    pub fn input(self, version: Option<i64>) -> UserInput {
        UserInput {
            username: self.username,
            display_name: self.display_name,
            circuit_user: self.circuit_user,
            password: self.password.filter(|p| !p.is_empty()).map(Secret::new),
            roles: self.roles,
            version,
            ..Default::default()
        }
    }
}

async fn user_list(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(tenant): Path<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult {
    central(&p)?;
    let t = admin::tenant_find(state.store.as_ref(), &tenant).await?;
    let q = page.q.as_deref().map(str::to_lowercase).unwrap_or_default();
    let v: Vec<UserView> = state
        .store
        .user_list(Some(t.id))
        .await?
        .iter()
        .filter(|u| {
            q.is_empty()
                || u.username.to_lowercase().contains(&q)
                || u.display_name.to_lowercase().contains(&q)
                || u.circuit_user
                    .as_deref()
                    .is_some_and(|c| c.to_lowercase().contains(&q))
        })
        .map(|u| UserView::of(u, &t.name))
        .collect();
    paginate(v, &page)
}

async fn user_get(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path((tenant, username)): Path<(String, String)>,
) -> ApiResult {
    central(&p)?;
    let (t, u) = admin::user_find(state.store.as_ref(), &tenant, &username).await?;
    ok(UserView::of(&u, &t.name))
}

async fn user_add(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    b: Bytes,
) -> ApiResult {
    change(&p, &headers)?;
    let input: UserBody = body(&b)?;
    let u = p.admin(&state).user_add(&tenant, input.input(None)).await?;
    created(UserView::of(&u, &tenant))
}

async fn user_put(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path((tenant, username)): Path<(String, String)>,
    headers: HeaderMap,
    b: Bytes,
) -> ApiResult {
    change(&p, &headers)?;
    let input: UserBody = body(&b)?;
    let v = version(&headers, input.version)?;
    let u = p
        .admin(&state)
        .user_set(&tenant, &username, input.input(v))
        .await?;
    ok(UserView::of(&u, &tenant))
}

async fn user_delete(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path((tenant, username)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    change(&p, &headers)?;
    p.admin(&state).user_rm(&tenant, &username).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A central administrator resets an account's second factor (a lost device).
async fn user_totp_reset(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path((tenant, username)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    change(&p, &headers)?;
    let (t, u) = admin::user_find(state.store.as_ref(), &tenant, &username).await?;
    p.admin(&state).totp_disable(&u, &t.name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// Failing responses captured for the tracer.

fn capture_json(c: &crate::store::CapturedResponse) -> Value {
    json!({"id": c.id, "tenant": c.tenant, "reference": c.reference, "at": c.at.to_rfc3339(),
        "reason": c.reason, "response": c.message})
}

async fn capture_list(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(tenant): Path<String>,
) -> ApiResult {
    central(&p)?;
    let t = admin::tenant_find(state.store.as_ref(), &tenant).await?;
    let items: Vec<Value> = state
        .store
        .capture_list(&t.name)
        .await?
        .iter()
        .map(capture_json)
        .collect();
    let until = state
        .captures
        .until(&t.name, state.clock.now())
        .map(|u| u.to_rfc3339());
    ok(json!({"capturing_until": until, "items": items}))
}

async fn capture_start(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    change(&p, &headers)?;
    let until = p
        .admin(&state)
        .capture_set(&state.captures, &tenant, true)
        .await?;
    ok(json!({"capturing_until": until.map(|u| u.to_rfc3339())}))
}

async fn capture_stop(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    change(&p, &headers)?;
    p.admin(&state)
        .capture_set(&state.captures, &tenant, false)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn capture_get(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult {
    central(&p)?;
    let t = admin::tenant_find(state.store.as_ref(), &tenant).await?;
    let found = match id.parse::<i64>() {
        Ok(id) => state.store.capture_get(&t.name, id).await?,
        Err(_) => None,
    };
    match found {
        Some(c) => ok(capture_json(&c)),
        None => Err(AdminError::NotFound(format!(
            "tenant {:?} has no captured response {id:?} (they are kept 24 hours)",
            t.name
        ))
        .into()),
    }
}

// Sign-in activity.

#[derive(Debug, Serialize)]
pub struct SessionView {
    pub handle: String,
    pub tenant: String,
    pub username: String,
    pub display_name: String,
    pub method: &'static str,
    pub since: String,
    pub expires: String,
}

/// A page of the signed-in sessions of `tenant` (newest first), and whether there are more.
/// (No total: counting a busy tenant's tens of thousands of sessions costs more than a page.)
pub async fn sessions_of(
    state: &AppState,
    tenant: crate::domain::TenantId,
    offset: u64,
    limit: u32,
) -> Result<(Vec<SessionView>, bool), StoreError> {
    let now = state.clock.now();
    let mut rows = state
        .store
        .sessions_of_tenant(Some(tenant), now, offset, limit.saturating_add(1))
        .await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let views = rows
        .iter()
        .filter_map(|r| {
            r.agent.as_ref().map(|a| SessionView {
                handle: session_handle(&r.id),
                tenant: a.tenant.clone(),
                username: a.username.clone(),
                display_name: a.display_name.clone(),
                method: a.method.as_str(),
                since: a.signed_in_at.to_rfc3339(),
                expires: a.expires_at.to_rfc3339(),
            })
        })
        .collect();
    Ok((views, more))
}

async fn session_list(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(tenant): Path<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult {
    let t = watched_tenant(&state, &p, &tenant).await?;
    // Paged in the database: a busy tenant has tens of thousands of sessions.
    let (offset, limit) = page.bounds()?;
    let (items, more) = sessions_of(&state, t.id, offset, limit as u32).await?;
    ok(json!({"items": items, "more": more, "offset": offset, "limit": limit}))
}

async fn session_end(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path((tenant, handle)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let t = watched_tenant(&state, &p, &tenant).await?;
    csrf(&p, &headers)?;
    p.admin(&state).session_end(Some(t.id), &handle).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The failures of `tenant` (newest first) whose reference, user name, reason or detail
/// contains `q`, from the whole failure log (it keeps `failure_log_max_bytes / 2 KiB` records:
/// 8,192 by default).
pub async fn failures_of(
    state: &AppState,
    tenant: &str,
    q: &str,
) -> Result<Vec<crate::store::SignInFailure>, StoreError> {
    let q = q.trim().to_lowercase();
    Ok(state
        .store
        .failures_recent(u32::try_from(state.config.failure_rows()).unwrap_or(u32::MAX))
        .await?
        .into_iter()
        .filter(|f| f.tenant.as_deref() == Some(tenant))
        .filter(|f| {
            q.is_empty()
                || f.reference.to_lowercase().contains(&q)
                || f.username
                    .as_deref()
                    .is_some_and(|u| u.to_lowercase().contains(&q))
                || f.reason.contains(&q)
                || f.detail.to_lowercase().contains(&q)
        })
        .collect())
}

async fn failure_list(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(tenant): Path<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult {
    let t = watched_tenant(&state, &p, &tenant).await?;
    let v = failures_of(&state, &t.name, page.q.as_deref().unwrap_or("")).await?;
    paginate(v, &page)
}

// API clients.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientBody {
    name: String,
    role: Option<String>,
    tenant: Option<String>,
    token: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RegenerateBody {
    token: Option<String>,
    version: Option<i64>,
}

async fn client_list(
    State(state): State<AppState>,
    Authed(p): Authed,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult {
    central(&p)?;
    let tenants = state.store.tenant_list().await?;
    let v: Vec<ApiClientView> = state
        .store
        .api_client_list()
        .await?
        .iter()
        .map(|c| ApiClientView::of(c, &tenants))
        .collect();
    paginate(v, &page)
}

fn with_token(v: ApiClientView, token: &Secret) -> Value {
    let mut j = serde_json::to_value(v).unwrap_or_default();
    j["token"] = Value::String(token.secret().to_string());
    j
}

async fn client_add(
    State(state): State<AppState>,
    Authed(p): Authed,
    headers: HeaderMap,
    b: Bytes,
) -> ApiResult {
    change(&p, &headers)?;
    let input: ClientBody = body(&b)?;
    let n = p
        .admin(&state)
        .api_client_add(
            &input.name,
            input.role.as_deref().unwrap_or("central-admin"),
            input.tenant.as_deref(),
            input.token.map(Secret::new),
        )
        .await?;
    let tenants = state.store.tenant_list().await?;
    // The token is in this answer once; only its SHA-256 is kept.
    created(with_token(ApiClientView::of(&n.client, &tenants), &n.token))
}

async fn client_regenerate(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(name): Path<String>,
    headers: HeaderMap,
    b: Bytes,
) -> ApiResult {
    change(&p, &headers)?;
    let input: RegenerateBody = if b.is_empty() {
        RegenerateBody::default()
    } else {
        body(&b)?
    };
    let v = version(&headers, input.version)?;
    let n = p
        .admin(&state)
        .api_client_regenerate(&name, input.token.map(Secret::new), v)
        .await?;
    let tenants = state.store.tenant_list().await?;
    ok(with_token(ApiClientView::of(&n.client, &tenants), &n.token))
}

async fn client_delete(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    change(&p, &headers)?;
    p.admin(&state).api_client_rm(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// Audit log.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    object: Option<String>,
    before: Option<u64>,
    limit: Option<u64>,
}

async fn audit_list(
    State(state): State<AppState>,
    Authed(p): Authed,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult {
    central(&p)?;
    let limit = check_limit(q.limit)? as u32;
    let before = match q.before {
        None => None,
        Some(b) => Some(check_offset(Some(b))? as i64),
    };
    let items = state
        .store
        .audit_list(q.object.as_deref(), before, limit)
        .await?;
    let next = (items.len() as u32 == limit)
        .then(|| items.last().map(|e| e.id))
        .flatten();
    let items: Vec<Value> = items
        .into_iter()
        .map(|e| {
            json!({"id": e.id, "at": e.at.to_rfc3339(), "actor": e.actor, "action": e.action,
                "object": e.object, "before": e.before, "after": e.after})
        })
        .collect();
    ok(json!({"items": items, "next_before": next}))
}
