//! The SAML endpoints: ACS (SP- and IdP-initiated login), SLO (both directions, Redirect and
//! POST), and our SP metadata.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use tower_sessions::Session;

use super::guard::Busy;
use super::login::{clear_pending, current_agent, see_other, sign_in, signed_out, sp_signing_key};
use super::pending::{self, PendingRequest};
use super::refusal::{Reason, Refusal};
use super::send::{Outgoing, send};
use super::{AppState, CurrentSp, pages};
use crate::domain::admin::sp_metadata_xml;
use crate::domain::username::{IdentityError, claim_identity, domain_key, split, tenant_of_claim};
use crate::domain::{IdentityProvider, ServiceProvider, Tenant, UsernameMapping};
use crate::saml::bindings::{MessageKind, decode_post, decode_redirect};
use crate::saml::echo::Echo;
use crate::saml::logout::{
    LogoutBinding, LogoutContext, LogoutMessage, LogoutRequest, LogoutResponseParams, verify_logout,
};
use crate::saml::response::STATUS_SUCCESS;
use crate::saml::xml::{Document, Limits, ns};
use crate::saml::xmldsig::AlgorithmPolicy;
use crate::saml::{
    Assertion, ExpectedContext, Rejection, Solicitation, UnixTime, UnverifiedResponse,
    UsernameSource, VerifyOptions,
};
use crate::store::{AgentSession, SamlSessionRef, SignInMethod};

type Answer = Result<Response, Refusal>;

/// A LogoutRequest issued longer ago than the clock skew plus this is refused (a captured one
/// cannot be played back later); its ID is remembered this long.
pub const LOGOUT_MAX_AGE_SECS: i64 = 600;

fn limits(state: &AppState) -> Limits {
    Limits {
        max_bytes: state.config.max_message_bytes,
        max_nodes: state.config.max_message_nodes,
        ..Limits::default()
    }
}

fn busy(b: Busy) -> Refusal {
    Refusal::new(
        Reason::Overloaded,
        format!("no verifier free for this message ({b:?})"),
    )
}

/// The fields of an `application/x-www-form-urlencoded` body; a SAML field given twice is refused.
fn form_fields(body: &[u8]) -> Result<Vec<(String, String)>, Refusal> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|e| {
        Refusal::new(
            Reason::BadForm,
            format!("the form body cannot be decoded: {}", Echo(&e.to_string())),
        )
    })?;
    for name in ["SAMLResponse", "SAMLRequest", "RelayState"] {
        if fields.iter().filter(|(n, _)| n == name).count() > 1 {
            return Err(Refusal::new(
                Reason::BadForm,
                format!("the form carries {name} more than once"),
            ));
        }
    }
    Ok(fields)
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

async fn idp_by_issuer(
    state: &AppState,
    issuer: Option<String>,
    what: &str,
) -> Result<IdentityProvider, Refusal> {
    let Some(issuer) = issuer else {
        return Err(Refusal::new(
            Reason::IssuerMissing,
            format!("the {what} names no Issuer"),
        ));
    };
    match state.store.idp_by_entity_id(&issuer).await? {
        Some(i) => Ok(i),
        None => Err(Refusal::new(
            Reason::UnknownIdp,
            format!(
                "no identity provider is configured with entity ID \"{}\" (the {what}'s Issuer)",
                Echo(&issuer)
            ),
        )),
    }
}

fn trust_of(
    state: &AppState,
    idp: &IdentityProvider,
) -> Result<Arc<crate::saml::xmldsig::IdpTrust>, Refusal> {
    state.keys.trust(idp).map_err(|e| {
        Refusal::new(
            Reason::IdpTrustUnusable,
            format!("identity provider {:?}: {e}", idp.name),
        )
        .idp(&idp.name)
    })
}

/// The replay-cache key that consumes pending request `id`.
fn request_key(id: &str) -> String {
    format!("request\u{1f}{id}")
}

/// The pending request `irt` answers, from this browser's cookie for it. Nothing is consumed
/// here: the caller does that once every check has passed.
async fn pending_of(
    state: &AppState,
    sp: &ServiceProvider,
    headers: &HeaderMap,
    irt: &str,
    idp: &IdentityProvider,
    now: UnixTime,
) -> Result<PendingRequest, Refusal> {
    let refuse = |reason: Reason, why: String| Refusal::new(reason, why).idp(&idp.name);
    let Some(name) = pending::cookie_name(irt) else {
        return Err(refuse(
            Reason::UnknownInResponseTo,
            format!("InResponseTo \"{}\" names no request of ours", Echo(irt)),
        ));
    };
    let Some(value) = pending::cookies_of(headers)
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
    else {
        return Err(refuse(
            Reason::BrowserBindingMismatch,
            format!(
                "request \"{}\" was not started by this browser (it has no {name} cookie: another browser, \
                 an expired request, or cookies refused)",
                Echo(irt)
            ),
        ));
    };
    let key = state.pending_key().await?;
    let p = PendingRequest::open(&value, key, now).map_err(|why| {
        let reason = if why == "the request expired" {
            Reason::UnknownInResponseTo
        } else {
            Reason::BrowserBindingMismatch
        };
        refuse(reason, format!("request \"{}\": {why}", Echo(irt)))
    })?;
    if p.id != irt {
        return Err(refuse(
            Reason::BrowserBindingMismatch,
            format!(
                "this browser's {name} cookie is for request {}, not \"{}\"",
                p.id,
                Echo(irt)
            ),
        ));
    }
    if p.idp_id != idp.id {
        return Err(refuse(
            Reason::InResponseToOtherIdp,
            format!(
                "request {} was sent to identity provider {}, the response comes from {:?}",
                p.id, p.idp_id, idp.name
            ),
        ));
    }
    if p.sp_id != sp.id {
        return Err(refuse(
            Reason::InResponseToOtherSp,
            format!(
                "request {} was sent for service provider {}, the response arrived at {}",
                p.id, p.sp_id, sp.id
            ),
        ));
    }
    Ok(p)
}

/// The tenants that sign in through `idp` (SSO on).
async fn tenants_of(state: &AppState, idp: &IdentityProvider) -> Result<Vec<Tenant>, Refusal> {
    Ok(state
        .store
        .tenant_list()
        .await?
        .into_iter()
        .filter(|t| t.sso_enabled && t.idp_id == Some(idp.id))
        .collect())
}

/// The refusal for an identity that does not belong to `tenant`, with what would allow it.
fn identity_refusal(
    e: IdentityError,
    a: &Assertion,
    idp: &IdentityProvider,
    tenant: &Tenant,
    sharing: &[Tenant],
) -> Refusal {
    let claim = format!(
        "identity provider {:?} signed in \"{}\" ({})",
        idp.name,
        Echo(&a.username),
        idp.username
    );
    let r = match e {
        IdentityError::Invalid(why) => {
            Refusal::new(Reason::UsernameInvalid, format!("{claim}: {why}"))
        }
        IdentityError::ForeignDomain { domain } => {
            let allowed = if tenant.login_domains.is_empty() {
                "it has none".to_string()
            } else {
                format!("its login domains: {}", tenant.login_domains.join(", "))
            };
            let fix = match domain_key(&domain) {
                Some(k) => format!(
                    "; to accept identities of that domain: ssogate tenant set {} --add-login-domain {k}",
                    tenant.name
                ),
                None => "; that cannot be a login domain".to_string(),
            };
            Refusal::new(
                Reason::ForeignDomain,
                format!(
                    "{claim}, whose domain \"{}\" is not a login domain of tenant {:?} ({allowed}){fix}",
                    Echo(&domain),
                    tenant.name
                ),
            )
        }
        IdentityError::OtherTenant { domain, other } => Refusal::new(
            Reason::TenantMismatch,
            format!(
                "{claim}, whose domain \"{}\" belongs to tenant {other:?}, but the sign-in is for tenant {:?}",
                Echo(&domain),
                tenant.name
            ),
        ),
        IdentityError::NoDomain => {
            let names: Vec<&str> = sharing.iter().map(|t| t.name.as_str()).collect();
            Refusal::new(
                Reason::TenantMismatch,
                format!(
                    "{claim}, which names no domain; the identity provider serves tenants {}, so the \
                     identity must name one of their login domains (user@domain or DOMAIN\\user)",
                    names.join(", ")
                ),
            )
        }
    };
    r.idp(&idp.name).tenant(&tenant.name).username(&a.username)
}

pub async fn acs(
    State(state): State<AppState>,
    CurrentSp(sp): CurrentSp,
    session: Session,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let fields = form_fields(&body)?;
    let Some(value) = field(&fields, "SAMLResponse").map(str::to_string) else {
        return Err(Refusal::new(
            Reason::SamlResponseMissing,
            "the POST carries no SAMLResponse",
        ));
    };
    let relay_state = field(&fields, "RelayState").map(str::to_string);
    drop(fields);
    // While a tenant captures failing responses (the tracer's, 15 minutes), a refused one is
    // kept for it; otherwise this costs one atomic load.
    let now = state.clock.now();
    let keep = state.captures.any_active(now).then(|| value.clone());
    let answer = acs_checked(&state, now, sp, session, headers, value, relay_state).await;
    match (answer, keep) {
        (Err(mut refusal), Some(message)) => {
            refusal.captured = Some(std::sync::Arc::new(message));
            Err(refusal)
        }
        (answer, _) => answer,
    }
}

async fn acs_checked(
    state: &AppState,
    now: crate::saml::UnixTime,
    sp: Arc<ServiceProvider>,
    session: Session,
    headers: HeaderMap,
    value: String,
    relay_state: Option<String>,
) -> Answer {
    let limits = limits(state);

    // DESIGN §3.1 step 3. Decoding, parsing and verifying cost what the message is big: off the
    // async workers, in one trip to the bounded verification pool (the IdP is looked up there).
    let decryption_key = sp_signing_key(state, &sp)?;
    let st = state.clone();
    let handle = tokio::runtime::Handle::current();
    let (idp, verified) = state
        .guards
        .verify
        .run(move || {
            let xml = decode_post(value.as_bytes(), &limits)?;
            let unverified = UnverifiedResponse::parse_owned(xml, &limits)?;
            let idp = handle.block_on(idp_by_issuer(&st, unverified.issuer_hint(), "Response"))?;
            let trust = trust_of(&st, &idp)?;
            let opts = VerifyOptions {
                algorithms: idp.digest_policy(),
                limits,
                decryption_key: decryption_key.map(|k| (*k).clone()),
            };
            match unverified.verify(&trust, &opts) {
                Ok(v) => Ok((idp, v)),
                Err(e) => Err(Refusal::saml(&e).idp(&idp.name)),
            }
        })
        .await
        .map_err(busy)??;

    // Which request this answers: one this browser holds (read, not yet consumed), or none.
    let in_response_to = verified.in_response_to();
    let pending = match &in_response_to {
        Some(irt) => Some(pending_of(state, &sp, &headers, irt, &idp, now).await?),
        None => {
            // §3.2: refused early when no tenant of this IdP takes unsolicited responses.
            let tenants = tenants_of(state, &idp).await?;
            if tenants.is_empty() {
                return Err(Refusal::new(
                    Reason::NoTenantForIdp,
                    format!(
                        "no tenant with SSO on uses identity provider {:?}",
                        idp.name
                    ),
                )
                .idp(&idp.name));
            }
            if !tenants.iter().any(|t| t.idp_initiated) {
                let names: Vec<&str> = tenants.iter().map(|t| t.name.as_str()).collect();
                return Err(unsolicited_off(&idp, &names.join(", ")));
            }
            None
        }
    };

    let acs_url = sp.acs_url();
    let ctx = ExpectedContext {
        sp_entity_id: &sp.entity_id,
        acs_url: &acs_url,
        idp_entity_id: &idp.entity_id,
        solicitation: match &in_response_to {
            Some(r) => Solicitation::Request(r),
            None => Solicitation::Unsolicited,
        },
        clock_skew_secs: state.config.clock_skew_secs,
        username: match &idp.username {
            UsernameMapping::NameId => UsernameSource::NameId,
            UsernameMapping::Attribute(a) => UsernameSource::Attribute(a),
        },
    };
    let unredeemed = verified
        .accept(&ctx, now)
        .map_err(|e| Refusal::saml(&e).idp(&idp.name))?;

    // Every check passed: consume the request (once, on every instance), then the assertion.
    if let Some(p) = &pending
        && !state
            .store
            .replay_remember(&request_key(&p.id), p.expires_at, now)
            .await?
    {
        return Err(Refusal::new(
            Reason::RequestAlreadyAnswered,
            format!("request {} was already answered by another response", p.id),
        )
        .idp(&idp.name));
    }
    let fresh = state
        .store
        .replay_remember(unredeemed.replay_key(), unredeemed.replay_until(), now)
        .await?;
    let assertion = unredeemed
        .redeem_recorded(fresh)
        .map_err(|e| Refusal::saml(&e).idp(&idp.name))?;

    // DESIGN §3.1 step 4 and §3.2: the tenant, and the user the identity names in it.
    let sharing = tenants_of(state, &idp).await?;
    let (tenant, target) = match &pending {
        Some(p) => {
            let Some(t) = state.store.tenant_get(p.tenant_id).await? else {
                return Err(Refusal::new(
                    Reason::TenantMissing,
                    format!(
                        "tenant {} of request {} no longer exists",
                        p.tenant_id, p.id
                    ),
                ));
            };
            (t, p.relay_target.clone())
        }
        None => {
            let t = unsolicited_tenant(&assertion, &idp, &sharing)?;
            // RelayState of an unsolicited response is the attacker's to choose: same-origin paths only.
            let target = super::login::safe_target(&sp, relay_state.as_deref());
            (t, target)
        }
    };
    let norm = claim_identity(&assertion.username, &tenant, &sharing)
        .map_err(|e| identity_refusal(e, &assertion, &idp, &tenant, &sharing))?;
    let Some(user) = state.store.user_by_norm(tenant.id, &norm).await? else {
        return Err(Refusal::new(
            Reason::UnknownUser,
            format!(
                "identity provider {:?} signed in \"{}\" ({}), which is \"{}\" under the tenant's rule; tenant {:?} has no such user",
                idp.name,
                Echo(&assertion.username),
                idp.username,
                Echo(&norm),
                tenant.name
            ),
        )
        .idp(&idp.name)
        .tenant(&tenant.name)
        .username(&assertion.username)
        .with_page(
            "No account",
            format!(
                "Your identity provider signed you in as \u{201c}{}\u{201d}, but this organisation has no agent account of that name. Please ask your administrator to add you.",
                crate::web::refusal::bounded(&assertion.username, 128)
            ),
        ));
    };

    let max = now.plus_secs(state.config.session_max_secs);
    let expires_at = match assertion.session_not_on_or_after {
        Some(t) if t < max => t,
        _ => max,
    };
    let name_id = assertion.name_id.clone().unwrap_or_default();
    let agent = AgentSession::new(
        &tenant,
        &user,
        SignInMethod::Saml,
        now,
        expires_at,
        Some(SamlSessionRef {
            idp_id: idp.id,
            name_id: name_id.value,
            name_id_format: name_id.format,
            name_qualifier: name_id.name_qualifier,
            sp_name_qualifier: name_id.sp_name_qualifier,
            session_index: assertion.session_index.clone(),
        }),
    );
    sign_in(&session, &agent).await?;
    state.signed_in(&tenant.name, &user.username, SignInMethod::Saml, now);
    tracing::info!(tenant = %tenant.name, user = %user.username, idp = %idp.name, assertion_id = %assertion.id, unsolicited = pending.is_none(), "signed in");
    let mut res = see_other(&format!("{}{target}", sp.host_url));
    if let Some(name) = pending.as_ref().and_then(|p| pending::cookie_name(&p.id)) {
        res.headers_mut()
            .append(header::SET_COOKIE, clear_pending(state, &sp, &name));
    }
    Ok(res)
}

fn unsolicited_off(idp: &IdentityProvider, tenants: &str) -> Refusal {
    Refusal::new(
        Reason::IdpInitiatedDisabled,
        format!(
            "an unsolicited response from {:?}, and IdP-initiated login is off for tenant(s) {tenants}",
            idp.name
        ),
    )
    .idp(&idp.name)
    .with_page(
        "Sign-in must start here",
        "Please open the agent portal and sign in from there.",
    )
}

/// DESIGN §3.2: the tenant of an unsolicited response is the one of this IdP whose login domains
/// hold the identity's domain (or the only one, for an identity without a domain).
fn unsolicited_tenant(
    a: &Assertion,
    idp: &IdentityProvider,
    candidates: &[Tenant],
) -> Result<Tenant, Refusal> {
    let Some(t) = tenant_of_claim(&a.username, candidates) else {
        let names: Vec<&str> = candidates.iter().map(|t| t.name.as_str()).collect();
        let r = match split(&a.username).domain {
            Some(d) => {
                let fix = match (candidates, domain_key(d)) {
                    ([only], Some(k)) => format!(
                        "; to accept identities of that domain: ssogate tenant set {} --add-login-domain {k}",
                        only.name
                    ),
                    _ => String::new(),
                };
                Refusal::new(
                    Reason::ForeignDomain,
                    format!(
                        "an unsolicited response from {:?} signed in \"{}\", whose domain \"{}\" is a login domain of none \
                         of its tenants ({}){fix}",
                        idp.name,
                        Echo(&a.username),
                        Echo(d),
                        names.join(", ")
                    ),
                )
            }
            None => Refusal::new(
                Reason::IdpInitiatedAmbiguous,
                format!(
                    "an unsolicited response from {:?} signed in \"{}\", which names no domain, and the identity provider \
                     serves tenants {}: which one is meant cannot be told",
                    idp.name,
                    Echo(&a.username),
                    names.join(", ")
                ),
            ),
        };
        return Err(r.idp(&idp.name));
    };
    if !t.idp_initiated {
        return Err(unsolicited_off(idp, &t.name).tenant(&t.name));
    }
    Ok(t.clone())
}

pub async fn metadata(CurrentSp(sp): CurrentSp) -> Answer {
    let xml = sp_metadata_xml(&sp).map_err(|e| Refusal::new(Reason::SpMetadata, e.to_string()))?;
    Ok((
        [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
        xml,
    )
        .into_response())
}

/// The Issuer of a logout message, read before anything is trusted (to pick the IdP's keys).
fn issuer_of(xml: &[u8], limits: &Limits) -> Result<Option<String>, crate::saml::Error> {
    let doc = Document::parse(xml, limits)?;
    let root = doc.root();
    Ok(doc
        .only_child(root, ns::SAML, "Issuer")
        .ok()
        .map(|i| doc.text(i).trim().to_string()))
}

/// A logout message as it arrived: the raw query string (HTTP-Redirect) or the form value
/// (HTTP-POST).
enum IncomingLogout {
    Redirect(String),
    Post(String),
}

/// A logout message decoded, before its signature is checked.
enum DecodedLogout {
    Redirect(crate::saml::bindings::RedirectMessage),
    Post(Vec<u8>),
}

impl DecodedLogout {
    fn xml(&self) -> &[u8] {
        match self {
            DecodedLogout::Redirect(m) => &m.xml,
            DecodedLogout::Post(x) => x,
        }
    }
}

/// One trip to the verification pool for a logout message: decode, find the IdP by its Issuer,
/// verify. The IdP, the verified message and the RelayState of a Redirect.
async fn verify_incoming_logout(
    state: &AppState,
    incoming: IncomingLogout,
) -> Result<(IdentityProvider, LogoutMessage, Option<String>), Refusal> {
    let limits = limits(state);
    let st = state.clone();
    let handle = tokio::runtime::Handle::current();
    state
        .guards
        .verify
        .run(move || {
            let decoded = match &incoming {
                IncomingLogout::Redirect(raw) => DecodedLogout::Redirect(decode_redirect(
                    raw,
                    &limits,
                    AlgorithmPolicy::default(),
                )?),
                IncomingLogout::Post(value) => {
                    DecodedLogout::Post(decode_post(value.as_bytes(), &limits)?)
                }
            };
            let issuer = issuer_of(decoded.xml(), &limits)?;
            let idp = handle.block_on(idp_by_issuer(&st, issuer, "logout message"))?;
            let trust = trust_of(&st, &idp)?;
            let policy = idp.digest_policy();
            let opts = VerifyOptions {
                algorithms: policy,
                limits,
                decryption_key: None,
            };
            let (verified, relay_state) = match (decoded, &incoming) {
                (DecodedLogout::Redirect(msg), IncomingLogout::Redirect(raw)) => {
                    // SHA-1 query signatures only for an IdP marked legacy: decode again under
                    // its policy.
                    let msg = if policy.allow_sha1 {
                        decode_redirect(raw, &limits, policy)?
                    } else {
                        msg
                    };
                    let v = verify_logout(LogoutBinding::Redirect(&msg), &trust, &opts);
                    (v, msg.relay_state)
                }
                (decoded, _) => (
                    verify_logout(LogoutBinding::Post(decoded.xml()), &trust, &opts),
                    None,
                ),
            };
            match verified {
                Ok(v) => Ok((idp, v, relay_state)),
                Err(e) => Err(Refusal::saml(&e).idp(&idp.name)),
            }
        })
        .await
        .map_err(busy)?
}

pub async fn slo_redirect(
    State(state): State<AppState>,
    CurrentSp(sp): CurrentSp,
    session: Session,
    RawQuery(query): RawQuery,
) -> Answer {
    let now = state.clock.now();
    let incoming = IncomingLogout::Redirect(query.unwrap_or_default());
    let (idp, verified, relay_state) = verify_incoming_logout(&state, incoming).await?;
    slo_handle(
        &state,
        &sp,
        &session,
        &idp,
        verified,
        relay_state.as_deref(),
        now,
    )
    .await
}

pub async fn slo_post(
    State(state): State<AppState>,
    CurrentSp(sp): CurrentSp,
    session: Session,
    body: Bytes,
) -> Answer {
    let now = state.clock.now();
    let fields = form_fields(&body)?;
    let value = match (
        field(&fields, "SAMLRequest"),
        field(&fields, "SAMLResponse"),
    ) {
        (Some(v), None) | (None, Some(v)) => v.to_string(),
        (Some(_), Some(_)) => {
            return Err(Refusal::new(
                Reason::BadForm,
                "the POST carries both SAMLRequest and SAMLResponse",
            ));
        }
        (None, None) => {
            return Err(Refusal::new(
                Reason::SamlMessageMissing,
                "the POST carries neither SAMLRequest nor SAMLResponse",
            ));
        }
    };
    let relay_state = field(&fields, "RelayState").map(str::to_string);
    drop(fields);
    let (idp, verified, _) = verify_incoming_logout(&state, IncomingLogout::Post(value)).await?;
    slo_handle(
        &state,
        &sp,
        &session,
        &idp,
        verified,
        relay_state.as_deref(),
        now,
    )
    .await
}

/// A LogoutRequest may end sessions once, and only soon after it was issued: its IssueInstant is
/// at most skew + [`LOGOUT_MAX_AGE_SECS`] old, and its ID goes into the replay cache (shared by
/// every instance) for as long as it could be accepted.
async fn check_fresh_logout(
    state: &AppState,
    idp: &IdentityProvider,
    req: &LogoutRequest,
    now: UnixTime,
) -> Result<(), Refusal> {
    let skew = state.config.clock_skew_secs;
    let Some(issued) = req.issue_instant else {
        return Err(Refusal::new(
            Reason::LogoutTooOld,
            format!("LogoutRequest \"{}\" has no IssueInstant", Echo(&req.id)),
        )
        .idp(&idp.name));
    };
    let oldest = now.plus_secs(-(skew + LOGOUT_MAX_AGE_SECS));
    if issued < oldest {
        return Err(Refusal::new(
            Reason::LogoutTooOld,
            format!(
                "LogoutRequest \"{}\" was issued at {issued}; now is {now}, and a LogoutRequest is accepted for \
                 {LOGOUT_MAX_AGE_SECS} s (plus the clock skew of {skew} s) after it was issued",
                Echo(&req.id)
            ),
        )
        .idp(&idp.name));
    }
    let key = format!("logout\u{1f}{}\u{1f}{}", idp.entity_id, req.id);
    let until = issued.plus_secs(2 * skew + LOGOUT_MAX_AGE_SECS);
    if !state.store.replay_remember(&key, until, now).await? {
        return Err(Refusal::new(
            Reason::LogoutReplayed,
            format!(
                "LogoutRequest \"{}\" was already received once",
                Echo(&req.id)
            ),
        )
        .idp(&idp.name));
    }
    Ok(())
}

/// DESIGN §3.3: an IdP-initiated LogoutRequest ends every session it names and is answered; a
/// LogoutResponse completes our own LogoutRequest (the local session ended when it was sent).
async fn slo_handle(
    state: &AppState,
    sp: &ServiceProvider,
    session: &Session,
    idp: &IdentityProvider,
    message: LogoutMessage,
    relay_state: Option<&str>,
    now: UnixTime,
) -> Answer {
    let slo_url = sp.slo_url();
    let ctx = LogoutContext {
        idp_entity_id: &idp.entity_id,
        slo_url: &slo_url,
        clock_skew_secs: state.config.clock_skew_secs,
    };
    match message {
        LogoutMessage::Request(req) => {
            req.check(&ctx, now)
                .map_err(|e| Refusal::saml(&e).idp(&idp.name))?;
            check_fresh_logout(state, idp, &req, now).await?;
            let ids = state
                .store
                .sessions_by_saml(idp.id, &req.name_id.value, &req.session_indexes)
                .await?;
            for id in &ids {
                state.store.session_delete(id).await?;
            }
            // This browser's own session, if it is one of them, must not be saved back.
            let mine: Option<AgentSession> =
                current_agent(session, now, state.config.session_idle_secs).await?;
            if mine
                .as_ref()
                .and_then(|a| a.saml.as_ref())
                .is_some_and(|s| s.idp_id == idp.id && s.name_id == req.name_id.value)
            {
                session.flush().await.map_err(|e| {
                    Refusal::store(&crate::store::StoreError::Unavailable(e.to_string()))
                })?;
            }
            tracing::info!(idp = %idp.name, request_id = %Echo(&req.id), sessions_ended = ids.len(), "IdP-initiated logout");
            let Some(dest) = idp.slo_response_target().map(str::to_string) else {
                return Ok(signed_out(sp, mine.as_ref()));
            };
            let id = crate::saml::authn_request::request_id(state.rng.bytes16());
            let msg = LogoutResponseParams {
                id: &id,
                issue_instant: now,
                destination: &dest,
                sp_entity_id: &sp.entity_id,
                in_response_to: &req.id,
                status: STATUS_SUCCESS,
            }
            .build();
            let key = sp_signing_key(state, sp)?;
            send(
                sp,
                key.as_deref(),
                Outgoing {
                    binding: idp.slo_binding,
                    destination: &dest,
                    kind: MessageKind::Response,
                    message: &msg,
                    relay_state,
                },
            )
        }
        LogoutMessage::Response(resp) => {
            let Some(irt) = resp.in_response_to.clone() else {
                return Err(Refusal::saml(
                    &Rejection::InResponseToMissing {
                        expected: "our LogoutRequest".into(),
                    }
                    .into(),
                )
                .idp(&idp.name));
            };
            let Some(pending) = state.store.pending_logout_take(&irt, now).await? else {
                return Err(Refusal::new(
                    Reason::UnknownInResponseTo,
                    format!(
                        "LogoutResponse InResponseTo \"{}\" matches no pending LogoutRequest",
                        Echo(&irt)
                    ),
                )
                .idp(&idp.name));
            };
            if pending.idp_id != idp.id {
                return Err(Refusal::new(
                    Reason::InResponseToOtherIdp,
                    format!(
                        "LogoutRequest {} went to another identity provider",
                        pending.id
                    ),
                )
                .idp(&idp.name));
            }
            if let Err(e) = resp.check(&ctx, &pending.id) {
                // The local session is gone either way; say that the IdP's may not be.
                let detail = crate::web::refusal::bounded(&e.to_string(), 1024);
                tracing::warn!(reason = e.code(), detail = %detail, idp = %idp.name, "LogoutResponse refused");
                let body = "<h1>Signed out here</h1><p>You are signed out of the agent portal, but your identity provider did not confirm \
                            that it ended its own session. Close the browser to be sure.</p>";
                return Ok((
                    StatusCode::OK,
                    Html(pages::layout(Some(sp), "Signed out", body)),
                )
                    .into_response());
            }
            tracing::info!(idp = %idp.name, request_id = %irt, "single logout completed");
            Ok(signed_out(sp, None))
        }
    }
}
