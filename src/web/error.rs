//! Refusals at the edge: the agent sees a short page with a reference; the log and the
//! "recent sign-in failures" table get the reason code and the precise sentence.

use axum::http::StatusCode;
use axum::response::Response;

use super::{AppState, pages};
use crate::domain::ServiceProvider;
use crate::rng::Rng;
use crate::saml::UnixTime;
use crate::store::{SignInFailure, StoreError};

/// A reference the agent can quote to an administrator: `SG-` and 10 hex digits.
pub fn reference(rng: &dyn Rng) -> String {
    let mut b = [0u8; 5];
    rng.fill(&mut b);
    format!("SG-{}", hex::encode_upper(b))
}

/// Why a sign-in (or logout) was refused.
#[derive(Debug)]
pub struct Failure {
    pub status: StatusCode,
    /// Stable snake_case code.
    pub reason: String,
    /// The precise cause, for the log and the administrator.
    pub detail: String,
    /// What the agent reads.
    pub title: &'static str,
    pub public: String,
    pub tenant: Option<String>,
    pub idp: Option<String>,
}

impl Failure {
    pub fn new(status: StatusCode, reason: &str, detail: impl Into<String>) -> Failure {
        Failure {
            status,
            reason: reason.into(),
            detail: detail.into(),
            title: "Authentication failed",
            public: "Your sign-in could not be completed. Please try again, or give the reference below to your administrator.".into(),
            tenant: None,
            idp: None,
        }
    }

    /// A refusal by the SAML core: malformed input is the client's (400), the rest a refusal (403).
    pub fn saml(e: &crate::saml::Error) -> Failure {
        let status = match e {
            crate::saml::Error::Malformed(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::FORBIDDEN,
        };
        Failure::new(status, e.code(), e.to_string())
    }

    pub fn store(e: &StoreError) -> Failure {
        let mut f = Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        );
        f.title = "Sign-in is unavailable";
        f.public =
            "The service cannot complete sign-ins right now. Please try again in a moment.".into();
        f
    }

    pub fn bad_request(reason: &str, detail: impl Into<String>) -> Failure {
        Failure::new(StatusCode::BAD_REQUEST, reason, detail)
    }

    pub fn with_public(mut self, title: &'static str, text: impl Into<String>) -> Failure {
        self.title = title;
        self.public = text.into();
        self
    }

    pub fn tenant(mut self, t: &str) -> Failure {
        self.tenant = Some(t.to_string());
        self
    }

    pub fn idp(mut self, i: &str) -> Failure {
        self.idp = Some(i.to_string());
        self
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::store(&e)
    }
}

/// Logs the failure, records it for the administrator, and renders the agent's page.
pub async fn refuse(
    state: &AppState,
    sp: Option<&ServiceProvider>,
    endpoint: &str,
    now: UnixTime,
    f: Failure,
) -> Response {
    let r = reference(state.rng.as_ref());
    tracing::warn!(
        reference = %r,
        endpoint,
        reason = %f.reason,
        detail = %f.detail,
        tenant = f.tenant.as_deref().unwrap_or("-"),
        idp = f.idp.as_deref().unwrap_or("-"),
        "sign-in refused"
    );
    if f.reason != "store_unavailable" {
        let record = SignInFailure {
            at: now,
            reference: r.clone(),
            endpoint: endpoint.into(),
            tenant: f.tenant.clone(),
            idp: f.idp.clone(),
            reason: f.reason.clone(),
            detail: f.detail.clone(),
        };
        if let Err(e) = state.store.failure_record(&record).await {
            tracing::error!(reference = %r, error = %e, "cannot record the sign-in failure");
        }
    }
    pages::message(sp, f.status, f.title, &f.public, Some(&r))
}
