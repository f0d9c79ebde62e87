//! The sign-on service over HTTP (axum): agent login pages, ACS, SLO, SP metadata, the portal
//! landing page and the forward-auth endpoints. Handlers take the request apart, call `saml`,
//! `domain` and `store`, and answer; a refusal is a [`Refusal`] whose page, log line and failure
//! record come from one middleware ([`refusal::record_refusals`]).
//!
//! Every anonymous request is bounded: CPU-heavy work runs in [`guard::WorkPool`]s, nothing is
//! stored before an IdP answers ([`pending`]), failure records are bounded and rate-limited per
//! client ([`refusal`]), and connections are capped and timed ([`server`]).

pub mod activity;
pub mod admin;
pub mod capture;
pub mod circuit;
pub mod client;
pub mod events;
pub mod guard;
mod login;
pub mod metrics;
mod pages;
pub mod pending;
pub mod refusal;
mod saml;
mod send;
pub mod server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{FromRef, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

pub use refusal::{Reason, Refusal, reference};

use crate::clock::Clock;
use crate::config::Config;
use crate::domain::ServiceProvider;
use crate::rng::Rng;
use crate::store::sessions::StoreSessions;
use crate::store::{Store, StoreError};

/// Everything a handler may use. Time and randomness come from here, never from globals.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub rng: Arc<dyn Rng>,
    pub config: Arc<Config>,
    /// Parsed trust anchors and SP keys, so a request does not parse certificates again.
    keys: Arc<KeyCache>,
    /// Work pools, the password throttle and the failure-record limiter.
    pub guards: Arc<guard::Guards>,
    trusted_proxies: Arc<[client::Cidr]>,
    /// The MAC key of pending-request cookies (from the store, shared by every instance).
    pending_key: Arc<tokio::sync::OnceCell<Vec<u8>>>,
    /// Several tenants or one: the stored setting (seeded from the configuration), switched by
    /// the Web Manager without a restart.
    multi_tenant: Arc<std::sync::atomic::AtomicBool>,
    /// Central administrators must use a second factor (the stored setting, seeded from the
    /// configuration).
    require_totp: Arc<std::sync::atomic::AtomicBool>,
    /// Encrypts secrets kept in the store (`serve` sets the configured one).
    pub secrets: Arc<crate::secrets::SecretsKey>,
    /// The client for calls the service makes itself (metadata URLs).
    pub outbound: crate::outbound::Outbound,
    /// Tenants whose failing SAML responses are kept for the tracer.
    pub captures: Arc<capture::Captures>,
    /// Sign-ins per tenant and hour (the Web Manager's chart).
    pub activity: Arc<activity::Activity>,
    /// Sign-ins, refusals and changes as they happen (`/api/v1/events`).
    pub events: Arc<events::Events>,
    /// Certificates the Web Manager has shown, read once.
    pub cert_views: Arc<crate::domain::audit::CertCache>,
    /// OpenID Connect providers' discovery documents and keys.
    pub oidc: Arc<circuit::OidcCache>,
    /// What `/metrics` reports.
    pub metrics: Arc<metrics::Metrics>,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn Rng>,
        config: Arc<Config>,
    ) -> Self {
        let secrets = Arc::new(crate::secrets::SecretsKey::ephemeral(rng.as_ref()));
        let outbound = crate::outbound::Outbound::new(&config);
        AppState {
            outbound,
            captures: Arc::default(),
            store,
            clock,
            rng,
            secrets,
            guards: Arc::new(guard::Guards::new(&config)),
            trusted_proxies: Arc::from(config.trusted_proxy_blocks()),
            multi_tenant: Arc::new(std::sync::atomic::AtomicBool::new(config.multi_tenant)),
            require_totp: Arc::new(std::sync::atomic::AtomicBool::new(
                config.admin_require_totp,
            )),
            config,
            keys: Arc::default(),
            pending_key: Arc::default(),
            activity: Arc::default(),
            events: Arc::default(),
            cert_views: Arc::default(),
            oidc: Arc::default(),
            metrics: Arc::default(),
        }
    }

    /// Whether the service runs several tenants (see [`crate::domain::admin::multi_tenant`]).
    pub fn multi_tenant(&self) -> bool {
        self.multi_tenant.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A sign-in happened: counted for the chart, told to the event streams.
    pub(crate) fn signed_in(
        &self,
        tenant: &str,
        user: &str,
        method: crate::store::SignInMethod,
        now: crate::saml::UnixTime,
    ) {
        self.activity.success(tenant, now);
        self.metrics.login(tenant, method.as_str(), "success");
        self.events.publish(|| events::Event::SignIn {
            at: events::at(now),
            tenant: tenant.to_string(),
            user: user.to_string(),
            method: method.as_str().into(),
        });
    }

    /// `tenant`'s sign-ins over the last 24 hours: the store's rows and what waits in memory.
    pub async fn chart(&self, tenant: &str) -> Result<activity::Chart, StoreError> {
        let now = self.clock.now();
        let from = activity::hour_of(now) - activity::HOURS as i64 + 1;
        let stored = self.store.activity_hours(tenant, from).await?;
        Ok(self.activity.chart(&stored, tenant, now))
    }

    /// Adds the counts waiting in memory to the store (every 10 seconds, and at shutdown); a
    /// store that is down gets them at the next try.
    pub async fn flush_activity(&self) -> Result<(), StoreError> {
        let rows = self.activity.take();
        let keep_from = activity::hour_of(self.clock.now()) - activity::HOURS as i64 - 1;
        if let Err(e) = self.store.activity_add(&rows, keep_from).await {
            self.activity.put_back(rows);
            return Err(e);
        }
        Ok(())
    }

    /// The key secrets in the store are encrypted with (a state without one has a key of its
    /// own, for this process only).
    pub fn with_secrets(mut self, key: Arc<crate::secrets::SecretsKey>) -> Self {
        self.secrets = key;
        self
    }

    /// Whether central administrators must use a second factor.
    pub fn require_totp(&self) -> bool {
        self.require_totp.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set_require_totp(&self, on: bool) {
        self.require_totp
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Takes the stored setting (at start, and after the Web Manager changed it).
    pub fn set_multi_tenant(&self, on: bool) {
        self.multi_tenant
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The pending-request MAC key: read (or made) once.
    pub(crate) async fn pending_key(&self) -> Result<&[u8], StoreError> {
        self.pending_key
            .get_or_try_init(|| async {
                let mut candidate = [0u8; 32];
                self.rng.fill(&mut candidate);
                self.store
                    .server_secret("pending-request-mac", &candidate)
                    .await
            })
            .await
            .map(Vec::as_slice)
    }
}

impl FromRef<AppState> for Arc<dyn Store> {
    fn from_ref(s: &AppState) -> Self {
        s.store.clone()
    }
}

impl FromRef<AppState> for Arc<dyn Clock> {
    fn from_ref(s: &AppState) -> Self {
        s.clock.clone()
    }
}

impl FromRef<AppState> for Arc<Config> {
    fn from_ref(s: &AppState) -> Self {
        s.config.clone()
    }
}

/// Certificates and keys parsed once per stored value (OpenSSL 3's decoders cost more than a
/// whole signature check). An entry is used only while the stored value is the same.
#[derive(Default)]
struct KeyCache {
    trust: std::sync::Mutex<
        std::collections::HashMap<
            crate::domain::IdpId,
            (
                crate::domain::TrustConfig,
                Arc<crate::saml::xmldsig::IdpTrust>,
            ),
        >,
    >,
    sp_keys: std::sync::Mutex<
        std::collections::HashMap<
            crate::domain::SpId,
            (String, Arc<crate::saml::xmldsig::SigningKey>),
        >,
    >,
}

impl KeyCache {
    fn trust(
        &self,
        idp: &crate::domain::IdentityProvider,
    ) -> Result<Arc<crate::saml::xmldsig::IdpTrust>, String> {
        let mut m = self.trust.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((cfg, t)) = m.get(&idp.id)
            && *cfg == idp.trust
        {
            return Ok(t.clone());
        }
        let t = Arc::new(idp.trust.to_trust()?);
        m.insert(idp.id, (idp.trust.clone(), t.clone()));
        Ok(t)
    }

    fn sp_key(
        &self,
        sp: &ServiceProvider,
    ) -> Result<Option<Arc<crate::saml::xmldsig::SigningKey>>, String> {
        let Some(pem) = &sp.private_key_pem else {
            return Ok(None);
        };
        let mut m = self.sp_keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((stored, k)) = m.get(&sp.id)
            && stored == pem.secret()
        {
            return Ok(Some(k.clone()));
        }
        let k = Arc::new(
            crate::saml::xmldsig::SigningKey::from_pem(pem.secret().as_bytes())
                .map_err(|e| e.to_string())?,
        );
        m.insert(sp.id, (pem.secret().to_string(), k.clone()));
        Ok(Some(k))
    }
}

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "ssogate_session";

/// The service provider a request came in for (by Host, then path prefix; see `resolve_sp`).
#[derive(Clone, Debug)]
pub struct CurrentSp(pub Arc<ServiceProvider>);

/// Whether cookies get the Secure flag: configured, or when every SP's host URL is https.
pub fn secure_cookies(config: &Config, sps: &[ServiceProvider]) -> bool {
    config
        .secure_cookies
        .unwrap_or_else(|| !sps.is_empty() && sps.iter().all(|s| s.is_https()))
}

/// The application: the agents' side and, unless `admin_listen` moves them to their own address,
/// the Web Manager and the JSON API. `secure` sets the cookies' Secure flag (see
/// [`secure_cookies`]).
pub fn app(state: AppState, secure: bool) -> Router {
    let portal = portal(state.clone(), secure);
    let router = if state.config.admin_listen.is_some() {
        portal
    } else {
        Router::new()
            .merge(admin::routes(state.clone(), secure))
            .merge(portal)
    };
    router
        .merge(probes(state))
        .layer(middleware::from_fn(security_headers))
}

/// The Web Manager and the JSON API alone (served on `admin_listen`).
pub fn admin_app(state: AppState, secure: bool) -> Router {
    admin::routes(state.clone(), secure)
        .merge(probes(state))
        .layer(middleware::from_fn(security_headers))
}

/// `/healthz` and `/readyz`: outside SP resolution (which reads the store), so that a process
/// whose database is down still says it is up.
fn probes(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(metrics::healthz))
        .route("/readyz", get(metrics::readyz))
        .with_state(state)
}

/// The agents' side: everything behind SP resolution.
fn portal(state: AppState, secure: bool) -> Router {
    let sessions =
        SessionManagerLayer::new(StoreSessions::new(state.store.clone(), state.clock.clone()))
            .with_name(SESSION_COOKIE)
            // Lax, not tower-sessions' default Strict: the agent arrives at the portal through a
            // redirect chain that began with the IdP's cross-site POST to the ACS; a Strict cookie
            // would not be sent there and the agent would look signed out.
            .with_same_site(SameSite::Lax)
            .with_http_only(true)
            .with_secure(secure)
            // The cookie lives as long as the browser; the session's end is enforced server side
            // (AgentSession::expires_at, from our clock).
            .with_expiry(Expiry::OnSessionEnd);
    let body_limit = state.config.max_message_bytes * 2 + 16 * 1024;
    // The login form is a name and a password: a few KiB at most.
    let login = Router::new()
        .route("/login", get(login::login_page).post(login::login_submit))
        .route(
            "/t/{tenant}/login",
            get(login::tenant_login_page).post(login::tenant_login_submit),
        )
        .route("/logout", get(login::logout_page).post(login::logout))
        .route("/oauth/circuit/start", post(circuit::start))
        .route("/oauth/circuit/callback", get(circuit::callback))
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024));
    Router::new()
        .route("/", get(login::portal))
        .route("/signed-out", get(login::signed_out_page))
        .route("/t/{tenant}", get(login::tenant_portal))
        .route("/t/{tenant}/", get(login::tenant_portal))
        .route("/saml/acs", post(saml::acs))
        .route("/saml/slo", get(saml::slo_redirect).post(saml::slo_post))
        .route("/saml/metadata", get(saml::metadata))
        .route("/auth/check", get(login::auth_check))
        .route("/auth/session", get(login::auth_session))
        .route("/static/ssogate.css", get(pages::stylesheet))
        .route("/static/autopost.js", get(pages::autopost_script))
        .merge(login)
        .fallback(pages::not_found)
        .layer(sessions)
        .layer(middleware::map_response(session_save_failed))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_timeout,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            refusal::record_refusals,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::time_requests,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), resolve_sp))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            client::client_addr,
        ))
        .with_state(state)
}

/// tower-sessions answers a bare 500 when it cannot save the session after the handler ran
/// (the store stopped answering in between, or at a login's first write): the store's outage,
/// answered like any other (503 with a reference, logged once per outage), never a 500.
async fn session_save_failed(res: Response) -> Response {
    use axum::response::IntoResponse as _;
    if res.status() == StatusCode::INTERNAL_SERVER_ERROR
        && res.extensions().get::<Arc<Refusal>>().is_none()
    {
        return Refusal::new(
            refusal::Reason::StoreUnavailable,
            "the session could not be saved: the store did not answer",
        )
        .into_response();
    }
    res
}

/// A request (its body included) that takes longer than `request_timeout_secs` is answered 408
/// and dropped: a client trickling its body holds nothing for long.
async fn request_timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = Duration::from_secs(state.config.request_timeout_secs);
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => {
            tracing::debug!("request timed out");
            let mut r = pages::message(
                None,
                StatusCode::REQUEST_TIMEOUT,
                "Request timeout",
                "The request took too long to arrive.",
                None,
            );
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        }
    }
}

/// Finds the SP the request is for (by Host, then path prefix) and strips the SP's path prefix,
/// so `https://cc.example.com/agentportal/saml/acs` and a proxy that strips `/agentportal` both
/// reach `/saml/acs`. With a single SP, every request is for it.
async fn resolve_sp(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let sps = match state.store.sp_list().await {
        Ok(s) => s,
        Err(e) => return refusal::refuse_early(&state, &req, Refusal::store(&e)).await,
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let path = req.uri().path().to_string();
    let chosen = if sps.len() == 1 {
        sps.into_iter().next()
    } else {
        let mut by_host: Vec<ServiceProvider> =
            sps.into_iter().filter(|s| s.authority() == host).collect();
        // The longest matching path prefix wins (two portals on one host).
        by_host.sort_by_key(|s| std::cmp::Reverse(s.path_prefix().len()));
        let pos = by_host
            .iter()
            .position(|s| has_prefix(&path, s.path_prefix()));
        pos.map(|i| by_host.swap_remove(i))
    };
    if let Some(sp) = chosen {
        let prefix = sp.path_prefix().to_string();
        if !prefix.is_empty() && has_prefix(&path, &prefix) {
            let rest = &path[prefix.len()..];
            let new_path = if rest.is_empty() { "/" } else { rest };
            let pq = match req.uri().query() {
                Some(q) => format!("{new_path}?{q}"),
                None => new_path.to_string(),
            };
            if let Ok(uri) = pq.parse() {
                *req.uri_mut() = uri;
            }
        }
        req.extensions_mut().insert(CurrentSp(Arc::new(sp)));
    }
    next.run(req).await
}

fn has_prefix(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|r| r.starts_with('/'))
}

/// Security headers on every answer, and one log line per request (path without the query:
/// it may carry a SAML message).
async fn security_headers(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = Instant::now();
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    // SAML messages travel in query strings: never let them leak in a Referer to another site.
    // `same-origin`, not `no-referrer`: under `no-referrer` browsers send `Origin: null` with a
    // form POST, and the login and logout forms are checked by their Origin (found by the
    // browser test: chromium's sign-out was refused as cross-origin).
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::CACHE_CONTROL, "no-store");
    tracing::debug!(%method, %path, status = res.status().as_u16(), micros = started.elapsed().as_micros() as u64, "request");
    res
}

/// A response for when no SP matches the request.
fn no_sp() -> Response {
    pages::message(
        None,
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-in is not set up",
        "No service provider matches this address. An administrator adds one with `ssogate sp add --host-url URL`.",
        None,
    )
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for CurrentSp {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<CurrentSp>()
            .cloned()
            .ok_or_else(no_sp)
    }
}
