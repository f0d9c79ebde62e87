//! Refusals at the edge. A handler returns a [`Refusal`] (reason, precise cause, what the agent
//! reads); its `IntoResponse` answers with the status and carries the refusal in a response
//! extension. One middleware, [`record_refusals`], then does the rest for every endpoint: it
//! gives the agent a short page with a reference, writes one bounded log line, and records the
//! failure for the administrator, within these bounds:
//!
//! - every value echoed from the request is escaped and cut to 256 bytes where the sentence is
//!   built ([`crate::saml::echo`]), and the whole detail to [`MAX_DETAIL_BYTES`];
//! - one client address creates at most `failure_records_per_minute` records a minute; past
//!   that, its refusals are folded into its latest record (whose reference the page shows, so
//!   every reference an agent sees can be looked up) and counted there;
//! - the table keeps its newest `failure_log_max_bytes / MAX_RECORD_BYTES` records.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::client::ClientAddr;
use super::{AppState, CurrentSp, pages};
use crate::rng::Rng;
use crate::saml::UnixTime;
use crate::saml::echo::Echo;
use crate::store::{SignInFailure, StoreError};

/// The longest detail sentence kept (log line and record).
pub const MAX_DETAIL_BYTES: usize = 1024;
/// The most bytes one failure record can take (detail, names, reason, reference, client).
pub const MAX_RECORD_BYTES: usize = 2048;

/// A reference the agent can quote to an administrator: `SG-` and 10 hex digits.
pub fn reference(rng: &dyn Rng) -> String {
    let mut b = [0u8; 5];
    rng.fill(&mut b);
    format!("SG-{}", hex::encode_upper(b))
}

macro_rules! reasons {
    ($($variant:ident => $code:literal, $status:ident;)*) => {
        /// Why the web layer refused a request: one variant per stable code, plus the SAML core's
        /// own codes ([`crate::saml::Error::code`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($variant,)*
            /// A refusal by the SAML core, with its code.
            Saml(&'static str),
        }

        impl Reason {
            /// Every web-layer reason (the SAML core lists its own).
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];

            /// The stable snake_case code (logs, failure records, `ssogate failures`).
            pub fn code(self) -> &'static str {
                match self {
                    $(Reason::$variant => $code,)*
                    Reason::Saml(c) => c,
                }
            }

            /// The status the browser gets.
            pub fn status(self) -> StatusCode {
                match self {
                    $(Reason::$variant => StatusCode::$status,)*
                    Reason::Saml(_) => StatusCode::FORBIDDEN,
                }
            }
        }
    };
}

reasons! {
    BadForm => "form_malformed", BAD_REQUEST;
    SamlResponseMissing => "saml_response_missing", BAD_REQUEST;
    SamlMessageMissing => "saml_message_missing", BAD_REQUEST;
    IssuerMissing => "issuer_missing", FORBIDDEN;
    UnknownIdp => "unknown_idp", FORBIDDEN;
    IdpTrustUnusable => "idp_trust_unusable", INTERNAL_SERVER_ERROR;
    SpKeyUnusable => "sp_key_unusable", INTERNAL_SERVER_ERROR;
    SignFailed => "sign_failed", INTERNAL_SERVER_ERROR;
    SpMetadata => "sp_metadata", INTERNAL_SERVER_ERROR;
    UnknownInResponseTo => "unknown_in_response_to", FORBIDDEN;
    InResponseToOtherIdp => "in_response_to_other_idp", FORBIDDEN;
    InResponseToOtherSp => "in_response_to_other_sp", FORBIDDEN;
    BrowserBindingMismatch => "browser_binding_mismatch", FORBIDDEN;
    RequestAlreadyAnswered => "request_already_answered", FORBIDDEN;
    TenantMissing => "tenant_missing", FORBIDDEN;
    NoTenantForIdp => "no_tenant_for_idp", FORBIDDEN;
    IdpInitiatedDisabled => "idp_initiated_disabled", FORBIDDEN;
    IdpInitiatedAmbiguous => "idp_initiated_ambiguous", FORBIDDEN;
    ForeignDomain => "foreign_domain", FORBIDDEN;
    TenantMismatch => "tenant_mismatch", FORBIDDEN;
    UsernameInvalid => "username_invalid", FORBIDDEN;
    UnknownUser => "unknown_user", FORBIDDEN;
    UnknownTenant => "unknown_tenant", NOT_FOUND;
    IdpMissing => "idp_missing", SERVICE_UNAVAILABLE;
    CrossOrigin => "cross_origin", FORBIDDEN;
    PasswordRefused => "password_refused", UNAUTHORIZED;
    PasswordThrottled => "password_throttled", TOO_MANY_REQUESTS;
    AdminNotAllowed => "admin_not_allowed", FORBIDDEN;
    LogoutTooOld => "logout_too_old", FORBIDDEN;
    LogoutReplayed => "logout_replayed", FORBIDDEN;
    CircuitDisabled => "circuit_disabled", FORBIDDEN;
    CircuitStartLimited => "circuit_start_limited", TOO_MANY_REQUESTS;
    ConsentDenied => "consent_denied", FORBIDDEN;
    StateInvalid => "state_invalid", BAD_REQUEST;
    StateExpired => "state_expired", FORBIDDEN;
    StateOtherBrowser => "state_other_browser", FORBIDDEN;
    TokenExchangeFailed => "token_exchange_failed", FORBIDDEN;
    ProviderUnreachable => "provider_unreachable", FAILED_DEPENDENCY;
    ProviderTimeout => "provider_timeout", FAILED_DEPENDENCY;
    ProfileInvalid => "profile_invalid", FAILED_DEPENDENCY;
    IdTokenInvalid => "id_token_invalid", FORBIDDEN;
    IdTokenAudience => "id_token_audience", FORBIDDEN;
    IdTokenExpired => "id_token_expired", FORBIDDEN;
    IdTokenNonce => "id_token_nonce", FORBIDDEN;
    UnknownCircuitUser => "unknown_circuit_user", FORBIDDEN;
    Overloaded => "overloaded", SERVICE_UNAVAILABLE;
    StoreUnavailable => "store_unavailable", SERVICE_UNAVAILABLE;
}

/// A page rendered by the handler's own code, given the reference (the Web Manager's sign-in).
#[derive(Clone)]
pub struct CustomPage(pub Arc<dyn Fn(&str) -> Response + Send + Sync>);

impl std::fmt::Debug for CustomPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomPage")
    }
}

/// What the agent's browser is shown for a refusal.
#[derive(Debug, Clone)]
pub enum Page {
    /// Rendered by the handler's function.
    Custom(CustomPage),
    /// A short message page (with the reference).
    Message { title: &'static str, text: String },
    /// The password form again, with a message above it.
    LoginForm {
        action: String,
        target: String,
        tenant: Option<String>,
        message: String,
    },
}

const FAILED_TEXT: &str = "Your sign-in could not be completed. Please try again, or give the reference below to your administrator.";

/// A refused request: why (for the log and the administrator) and what the agent sees. Boxed:
/// it travels in every handler's `Err`.
#[derive(Debug, Clone)]
pub struct Refusal(Box<RefusalBody>);

impl std::ops::Deref for Refusal {
    type Target = RefusalBody;
    fn deref(&self) -> &RefusalBody {
        &self.0
    }
}

impl std::ops::DerefMut for Refusal {
    fn deref_mut(&mut self) -> &mut RefusalBody {
        &mut self.0
    }
}

#[derive(Debug, Clone)]
pub struct RefusalBody {
    pub reason: Reason,
    /// The precise cause; values from the request in it are already [`Echo`]ed.
    pub detail: String,
    pub status: StatusCode,
    pub page: Page,
    pub tenant: Option<String>,
    pub idp: Option<String>,
    /// The user name the refused sign-in named (bounded), for the activity view's filter.
    pub username: Option<String>,
    /// The refused SAMLResponse, held while some tenant captures failing responses.
    pub captured: Option<Arc<String>>,
}

impl Refusal {
    pub fn new(reason: Reason, detail: impl Into<String>) -> Refusal {
        let page = match reason {
            Reason::StoreUnavailable => Page::Message {
                title: "Sign-in is unavailable",
                text: "The service cannot complete sign-ins right now. Please try again in a moment."
                    .into(),
            },
            Reason::Overloaded => Page::Message {
                title: "Sign-in is busy",
                text: "The service is handling too many sign-ins right now. Please try again in a moment."
                    .into(),
            },
            _ => Page::Message {
                title: "Authentication failed",
                text: FAILED_TEXT.into(),
            },
        };
        Refusal(Box::new(RefusalBody {
            reason,
            detail: detail.into(),
            status: reason.status(),
            page,
            tenant: None,
            idp: None,
            username: None,
            captured: None,
        }))
    }

    /// A refusal by the SAML core: malformed input is the client's (400), the rest a refusal (403).
    pub fn saml(e: &crate::saml::Error) -> Refusal {
        let mut r = Refusal::new(Reason::Saml(e.code()), e.to_string());
        if matches!(e, crate::saml::Error::Malformed(_)) {
            r.status = StatusCode::BAD_REQUEST;
        }
        r
    }

    pub fn store(e: &StoreError) -> Refusal {
        Refusal::new(Reason::StoreUnavailable, e.to_string())
    }

    /// The page comes from `render` (given the reference the agent can quote).
    pub fn with_custom(
        mut self,
        render: impl Fn(&str) -> Response + Send + Sync + 'static,
    ) -> Refusal {
        self.page = Page::Custom(CustomPage(Arc::new(render)));
        self
    }

    pub fn with_page(mut self, title: &'static str, text: impl Into<String>) -> Refusal {
        self.page = Page::Message {
            title,
            text: text.into(),
        };
        self
    }

    pub fn with_status(mut self, status: StatusCode) -> Refusal {
        self.status = status;
        self
    }

    pub fn login_form(
        mut self,
        action: &str,
        target: &str,
        tenant: Option<&str>,
        message: impl Into<String>,
    ) -> Refusal {
        self.page = Page::LoginForm {
            action: action.into(),
            target: target.into(),
            tenant: tenant.map(str::to_string),
            message: message.into(),
        };
        self
    }

    pub fn tenant(mut self, t: &str) -> Refusal {
        self.tenant = Some(t.to_string());
        self
    }

    pub fn idp(mut self, i: &str) -> Refusal {
        self.idp = Some(i.to_string());
        self
    }

    /// The user name the request named (cut to 256 bytes).
    pub fn username(mut self, u: &str) -> Refusal {
        self.username = Some(bounded(u, 256));
        self
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::store(&e)
    }
}

impl From<crate::saml::Error> for Refusal {
    fn from(e: crate::saml::Error) -> Self {
        Refusal::saml(&e)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        // The page is rendered by `record_refusals`, which knows the reference; this body is
        // only what a router without that middleware would send.
        let mut res = (self.status, "Authentication failed").into_response();
        res.extensions_mut().insert(Arc::new(self));
        res
    }
}

/// Cuts `s` to at most `max` bytes at a character boundary, saying how much was cut.
pub fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(32);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[{} more bytes]", &s[..end], s.len() - end)
}

/// Per client address: how many records it made this minute, and its latest.
#[derive(Debug)]
struct ClientWindow {
    window_start: UnixTime,
    recorded: u32,
    last_reference: Option<String>,
    folded: u64,
}

/// The per-address rate limit on failure records. Bounded: at most `MAX_CLIENTS` addresses are
/// tracked; when full, windows that ended are dropped, and if none has, addresses beyond share
/// one overflow window.
#[derive(Debug, Default)]
pub struct FailureLimiter {
    clients: Mutex<HashMap<Option<IpAddr>, ClientWindow>>,
}

const MAX_CLIENTS: usize = 10_000;

/// What to do with one refusal.
enum Decision {
    /// A new record with this reference.
    Record(String),
    /// Folded into the record `reference`, which now stands for `folded` more refusals; the
    /// count is written when it reaches a power of two (so a flood costs log-many writes).
    Fold {
        reference: String,
        folded: u64,
        write: bool,
    },
}

impl FailureLimiter {
    /// Whether `client` already had its records this minute on this instance (then it has
    /// them for the cluster too: no need to ask the store).
    fn over_here(&self, client: Option<IpAddr>, now: UnixTime, per_minute: u32) -> bool {
        let m = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&client).is_some_and(|w| {
            now.millis() - w.window_start.millis() < 60_000 && w.recorded >= per_minute
        })
    }

    /// `shared`: the refusals of `client` this minute on every instance, when the store counts
    /// them (several instances); over the limit, a refusal is folded into this instance's
    /// latest record of the client, if it has one.
    fn decide(
        &self,
        client: Option<IpAddr>,
        now: UnixTime,
        per_minute: u32,
        fresh: String,
        shared: Option<i64>,
    ) -> Decision {
        let mut m = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= MAX_CLIENTS && !m.contains_key(&client) {
            m.retain(|_, w| now.millis() - w.window_start.millis() < 60_000);
        }
        let key = if m.len() >= MAX_CLIENTS && !m.contains_key(&client) {
            None
        } else {
            client
        };
        let w = m.entry(key).or_insert(ClientWindow {
            window_start: now,
            recorded: 0,
            last_reference: None,
            folded: 0,
        });
        if now.millis() - w.window_start.millis() >= 60_000 {
            w.window_start = now;
            w.recorded = 0;
        }
        let over = w.recorded >= per_minute || shared.is_some_and(|n| n > i64::from(per_minute));
        match &w.last_reference {
            Some(r) if over => {
                w.folded += 1;
                Decision::Fold {
                    reference: r.clone(),
                    folded: w.folded,
                    write: w.folded.is_power_of_two(),
                }
            }
            _ => {
                w.recorded += 1;
                w.folded = 0;
                w.last_reference = Some(fresh.clone());
                Decision::Record(fresh)
            }
        }
    }
}

/// The endpoint a path belongs to, for records.
fn endpoint_of(path: &str) -> &'static str {
    let p = path.trim_end_matches('/');
    if p.ends_with("/saml/acs") {
        "acs"
    } else if p.ends_with("/saml/slo") {
        "slo"
    } else if p.ends_with("/saml/metadata") {
        "metadata"
    } else if p.contains("/oauth/circuit/") {
        "circuit"
    } else if p.ends_with("/login") {
        "login"
    } else if p.ends_with("/logout") {
        "logout"
    } else if p.starts_with("/auth/") {
        "auth"
    } else if p.starts_with("/webmanager") {
        "webmanager"
    } else if p.starts_with("/api/") {
        "api"
    } else {
        "portal"
    }
}

/// Logs and records every refusal a handler returned, and renders the agent's page.
pub async fn record_refusals(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let client = req.extensions().get::<ClientAddr>().copied();
    let endpoint = endpoint_of(req.uri().path());
    let sp = req.extensions().get::<CurrentSp>().cloned();
    let res = next.run(req).await;
    finish(&state, client, endpoint, sp, res).await
}

/// Answers a refusal met before any handler ran (the SP could not be resolved), as
/// [`record_refusals`] answers a handler's.
pub fn refuse_early(
    state: &AppState,
    req: &Request,
    refusal: Refusal,
) -> impl Future<Output = Response> + Send + 'static {
    let client = req.extensions().get::<ClientAddr>().copied();
    let endpoint = endpoint_of(req.uri().path());
    let state = state.clone();
    async move { finish(&state, client, endpoint, None, refusal.into_response()).await }
}

/// Logs and records the refusal `res` carries (if any) and renders its page.
async fn finish(
    state: &AppState,
    client: Option<ClientAddr>,
    endpoint: &'static str,
    sp: Option<CurrentSp>,
    res: Response,
) -> Response {
    let Some(refusal) = res.extensions().get::<Arc<Refusal>>().cloned() else {
        return res;
    };
    let now = state.clock.now();
    let addr = client.map(|c| c.0);
    let detail = bounded(&refusal.detail, MAX_DETAIL_BYTES);
    let tenant = refusal
        .tenant
        .as_deref()
        .map(|t| bounded(&Echo(t).to_string(), 128));
    let idp = refusal
        .idp
        .as_deref()
        .map(|i| bounded(&Echo(i).to_string(), 128));
    if let Some(t) = &refusal.tenant
        && !matches!(
            refusal.reason,
            Reason::StoreUnavailable | Reason::Overloaded
        )
    {
        state.activity.failure(t, now);
        if let Some(method) = match endpoint {
            "acs" | "slo" => Some("saml"),
            "circuit" => Some("circuit"),
            "login" => Some("password"),
            _ => None,
        } {
            state.metrics.login(t, method, "failure");
        }
    }
    state.metrics.refusal(refusal.reason.code());
    if refusal.reason == Reason::StoreUnavailable {
        state.metrics.store_error();
    }
    let fresh = reference(state.rng.as_ref());
    // A database that is down gets no record (it could not be written), and an overload none
    // either (writing would add to it): both are logged with their reference.
    let recorded = !matches!(
        refusal.reason,
        Reason::StoreUnavailable | Reason::Overloaded
    );
    let decision = if recorded {
        let per_minute = state.config.failure_records_per_minute;
        // The cluster's count (several instances), unless this instance alone is over already.
        let shared = if state.guards.failures.over_here(addr, now, per_minute) {
            None
        } else {
            let minute = now.millis().div_euclid(60_000);
            let ip = addr.map_or_else(|| "-".to_string(), |a| a.to_string());
            let key = super::guard::counter_key("fail", &[&ip, &minute.to_string()]);
            let expires = UnixTime::from_millis((minute + 2) * 60_000);
            match state.store.counter_add(&key, 1, now, expires).await {
                Ok(Some((n, _))) => Some(n),
                _ => None,
            }
        };
        state
            .guards
            .failures
            .decide(addr, now, per_minute, fresh, shared)
    } else {
        Decision::Record(fresh)
    };
    let shown = match &decision {
        Decision::Record(r) => r.clone(),
        Decision::Fold { reference, .. } => reference.clone(),
    };
    state.events.publish(|| super::events::Event::Failure {
        at: super::events::at(now),
        tenant: refusal.tenant.clone(),
        reason: refusal.reason.code().into(),
        reference: shown.clone(),
    });
    let client_text = addr.map(|a| a.to_string());
    // An outage is logged once, not per request (see `Metrics::store_outage`).
    let quiet = refusal.reason == Reason::StoreUnavailable;
    if quiet {
        state
            .metrics
            .store_outage(state.store.clone(), &shown, &detail);
    }
    match &decision {
        Decision::Record(r) if quiet => {
            tracing::debug!(reference = %r, endpoint, detail = %detail, "store unavailable");
        }
        Decision::Record(r) => {
            tracing::warn!(
                reference = %r,
                endpoint,
                reason = refusal.reason.code(),
                detail = %detail,
                tenant = tenant.as_deref().unwrap_or("-"),
                idp = idp.as_deref().unwrap_or("-"),
                client = client_text.as_deref().unwrap_or("-"),
                "sign-in refused"
            );
            if recorded {
                let record = SignInFailure {
                    at: now,
                    reference: r.clone(),
                    endpoint: endpoint.into(),
                    tenant: tenant.clone(),
                    idp: idp.clone(),
                    reason: refusal.reason.code().into(),
                    detail: detail.clone(),
                    client: client_text.clone(),
                    repeats: 0,
                    username: refusal.username.clone(),
                };
                if let Err(e) = state.store.failure_record(&record).await {
                    tracing::error!(reference = %r, error = %e, "cannot record the sign-in failure");
                }
                // A capturing tenant's failing response, kept under the same reference (only
                // refusals with a record of their own: the per-client limit applies).
                if let Some(message) = &refusal.captured
                    && message.len() <= super::capture::MAX_CAPTURE_BYTES
                    && let Some(t) = state.captures.tenant_for(
                        refusal.tenant.as_deref(),
                        refusal.idp.as_deref(),
                        now,
                    )
                {
                    let c = crate::store::CapturedResponse {
                        id: 0,
                        tenant: t,
                        reference: r.clone(),
                        at: now,
                        reason: refusal.reason.code().into(),
                        message: Some(message.as_str().to_string()),
                    };
                    if let Err(e) = state
                        .store
                        .capture_put(
                            &c,
                            super::capture::MAX_PER_TENANT,
                            super::capture::MAX_TOTAL,
                            now.plus_secs(-super::capture::KEEP_SECS),
                        )
                        .await
                    {
                        tracing::error!(reference = %r, error = %e, "cannot keep the captured response");
                    }
                }
            }
        }
        Decision::Fold {
            reference,
            folded,
            write,
        } => {
            // One line per power of two: a flood of refusals costs log-many lines and writes.
            if *write {
                tracing::warn!(
                    reference = %reference,
                    endpoint,
                    reason = refusal.reason.code(),
                    client = client_text.as_deref().unwrap_or("-"),
                    folded = *folded,
                    "sign-in refusals from one client folded into one record"
                );
                if let Err(e) = state.store.failure_repeats(reference, *folded).await {
                    tracing::error!(reference = %reference, error = %e, "cannot update the sign-in failure");
                }
            } else {
                tracing::debug!(reference = %reference, reason = refusal.reason.code(), "sign-in refusal folded");
            }
        }
    }
    let sp = sp.as_ref().map(|s| s.0.as_ref());
    let mut out = match &refusal.page {
        Page::Custom(c) => {
            let mut r = (c.0)(&shown);
            *r.status_mut() = refusal.status;
            r
        }
        Page::Message { title, text } => {
            pages::message(sp, refusal.status, title, text, Some(&shown))
        }
        Page::LoginForm {
            action,
            target,
            tenant,
            message,
        } => match sp {
            Some(sp) => pages::login_form(
                sp,
                action,
                target,
                tenant.as_deref(),
                Some(message),
                refusal.status,
            ),
            None => pages::message(None, refusal.status, "Sign in", message, Some(&shown)),
        },
    };
    // Headers the handler set (Retry-After, cookies to clear) stay.
    for (name, value) in res.headers() {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out.extensions_mut().insert(refusal);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            let c = r.code();
            assert!(seen.insert(c), "code {c} twice");
            assert!(
                c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{c}"
            );
        }
    }

    #[test]
    fn bounded_cuts_at_a_character() {
        let s = "é".repeat(2000);
        let b = bounded(&s, MAX_DETAIL_BYTES);
        assert!(b.len() <= MAX_DETAIL_BYTES + 32, "{}", b.len());
        assert!(b.ends_with("more bytes]"));
        assert_eq!(bounded("short", 10), "short");
    }

    #[test]
    fn one_client_folds_past_its_quota_and_keeps_its_reference() {
        let l = FailureLimiter::default();
        let a: Option<IpAddr> = Some("192.0.2.1".parse().unwrap());
        let b: Option<IpAddr> = Some("192.0.2.2".parse().unwrap());
        let t0 = UnixTime::from_secs(1000);
        for i in 0..3 {
            assert!(matches!(
                l.decide(a, t0, 3, format!("R{i}"), None),
                Decision::Record(_)
            ));
        }
        let Decision::Fold {
            reference, folded, ..
        } = l.decide(a, t0, 3, "R3".into(), None)
        else {
            panic!("the fourth within the minute is folded")
        };
        assert_eq!((reference.as_str(), folded), ("R2", 1));
        // Another address is not affected; a new minute starts afresh.
        assert!(matches!(
            l.decide(b, t0, 3, "B0".into(), None),
            Decision::Record(_)
        ));
        assert!(matches!(
            l.decide(a, t0.plus_secs(60), 3, "R4".into(), None),
            Decision::Record(_)
        ));
    }
}
