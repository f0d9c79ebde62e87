//! The SAML endpoints: ACS (SP- and IdP-initiated login), SLO (both directions, Redirect and
//! POST), and our SP metadata.
#![expect(
    clippy::result_large_err,
    reason = "a refusal is rare, and it carries its whole explanation to the log"
)]

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use subtle::ConstantTimeEq;
use tower_sessions::Session;

use super::error::{Failure, refuse};
use super::login::{
    binding_hash, cookie_value, current_agent, safe_target, see_other, sign_in, signed_out,
};
use super::{AppState, BINDING_COOKIE, CurrentSp, pages};
use crate::domain::admin::sp_metadata_xml;
use crate::domain::username::normalise;
use crate::domain::{Binding, IdentityProvider, ServiceProvider, Tenant, UsernameMapping};
use crate::saml::bindings::{MessageKind, decode_post, decode_redirect, encode_redirect};
use crate::saml::logout::{
    LogoutBinding, LogoutContext, LogoutMessage, LogoutResponseParams, verify_logout,
};
use crate::saml::replay::ReplayCache;
use crate::saml::response::STATUS_SUCCESS;
use crate::saml::xml::{Document, Limits, ns};
use crate::saml::xmldsig::{AlgorithmPolicy, SigningKey};
use crate::saml::{
    ExpectedContext, Rejection, Solicitation, UnixTime, UnverifiedResponse, UsernameSource,
    VerifyOptions,
};
use crate::store::{AgentSession, SamlSessionRef, SignInMethod};

/// Collects the replay key `accept` asks about, so the check can go to the (async) store right
/// after: `accept` consults the replay cache last, so nothing else can fail after it.
#[derive(Default)]
struct DeferredReplay(Mutex<Option<(String, UnixTime)>>);

impl ReplayCache for DeferredReplay {
    fn check_and_remember(&self, key: &str, expires: UnixTime, _now: UnixTime) -> bool {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((key.to_string(), expires));
        true
    }
}

fn limits(state: &AppState) -> Limits {
    Limits {
        max_bytes: state.config.max_message_bytes,
        ..Limits::default()
    }
}

/// The fields of an `application/x-www-form-urlencoded` body; a SAML field given twice is refused.
fn form_fields(body: &[u8]) -> Result<Vec<(String, String)>, Failure> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|e| {
        Failure::bad_request(
            "form_malformed",
            format!("the form body cannot be decoded: {e}"),
        )
    })?;
    for name in ["SAMLResponse", "SAMLRequest", "RelayState"] {
        if fields.iter().filter(|(n, _)| n == name).count() > 1 {
            return Err(Failure::bad_request(
                "form_malformed",
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

fn sp_key(state: &AppState, sp: &ServiceProvider) -> Result<Option<Arc<SigningKey>>, Failure> {
    state.keys.sp_key(sp).map_err(|e| {
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "sp_key_unusable",
            format!("the SP's stored private key is unusable: {e}"),
        )
    })
}

async fn idp_by_issuer(
    state: &AppState,
    issuer: Option<String>,
    what: &str,
) -> Result<IdentityProvider, Failure> {
    let Some(issuer) = issuer else {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            "issuer_missing",
            format!("the {what} names no Issuer"),
        ));
    };
    match state.store.idp_by_entity_id(&issuer).await? {
        Some(i) => Ok(i),
        None => Err(Failure::new(
            StatusCode::FORBIDDEN,
            "unknown_idp",
            format!(
                "no identity provider is configured with entity ID {issuer:?} (the {what}'s Issuer)"
            ),
        )),
    }
}

fn trust_of(
    state: &AppState,
    idp: &IdentityProvider,
) -> Result<Arc<crate::saml::xmldsig::IdpTrust>, Failure> {
    state.keys.trust(idp).map_err(|e| {
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "idp_trust_unusable",
            format!("identity provider {:?}: {e}", idp.name),
        )
        .idp(&idp.name)
    })
}

pub async fn acs(
    State(state): State<AppState>,
    CurrentSp(sp): CurrentSp,
    session: Session,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = state.clock.now();
    match acs_inner(&state, &sp, &session, &headers, &body, now).await {
        Ok(r) => r,
        Err(f) => refuse(&state, Some(&sp), "acs", now, f).await,
    }
}

/// DESIGN §3.1 step 3 to 5 and §3.2.
async fn acs_inner(
    state: &AppState,
    sp: &ServiceProvider,
    session: &Session,
    headers: &HeaderMap,
    body: &[u8],
    now: UnixTime,
) -> Result<Response, Failure> {
    let fields = form_fields(body)?;
    let Some(value) = field(&fields, "SAMLResponse") else {
        return Err(Failure::bad_request(
            "saml_response_missing",
            "the POST carries no SAMLResponse",
        ));
    };
    let limits = limits(state);
    let xml = decode_post(value.as_bytes(), &limits).map_err(|e| Failure::saml(&e))?;
    let unverified =
        UnverifiedResponse::parse_owned(xml, &limits).map_err(|e| Failure::saml(&e))?;
    let idp = idp_by_issuer(state, unverified.issuer_hint(), "Response").await?;
    let trust = trust_of(state, &idp)?;
    let opts = VerifyOptions {
        algorithms: idp.digest_policy(),
        limits,
        decryption_key: sp_key(state, sp)?.map(|k| (*k).clone()),
    };
    let verified = unverified
        .verify(&trust, &opts)
        .map_err(|e| Failure::saml(&e).idp(&idp.name))?;

    // Which request this answers: a pending request of this browser, or none (IdP-initiated).
    let in_response_to = verified.in_response_to();
    let (tenant, target): (Tenant, String) = match &in_response_to {
        Some(irt) => {
            let Some(pending) = state.store.pending_request_take(irt, now).await? else {
                return Err(Failure::new(StatusCode::FORBIDDEN, "unknown_in_response_to", format!("InResponseTo {irt:?} matches no pending request (unknown, already used, or expired)"))
                    .idp(&idp.name));
            };
            if pending.idp_id != idp.id {
                return Err(Failure::new(StatusCode::FORBIDDEN, "in_response_to_other_idp", format!("request {irt:?} was sent to identity provider {}, the response comes from {:?}", pending.idp_id, idp.name)).idp(&idp.name));
            }
            if pending.sp_id != sp.id {
                return Err(Failure::new(StatusCode::FORBIDDEN, "in_response_to_other_sp", format!("request {irt:?} was sent for service provider {}, the response arrived at {}", pending.sp_id, sp.id)).idp(&idp.name));
            }
            let bound = cookie_value(headers, BINDING_COOKIE)
                .map(|t| binding_hash(&t))
                .is_some_and(|h| bool::from(h.as_bytes().ct_eq(pending.binding_hash.as_bytes())));
            if !bound {
                return Err(Failure::new(
                    StatusCode::FORBIDDEN,
                    "browser_binding_mismatch",
                    format!("request {irt:?} was started by another browser (the {BINDING_COOKIE} cookie is missing or different)"),
                )
                .idp(&idp.name));
            }
            let Some(t) = state.store.tenant_get(pending.tenant_id).await? else {
                return Err(Failure::new(
                    StatusCode::FORBIDDEN,
                    "tenant_missing",
                    format!(
                        "tenant {} of request {irt:?} no longer exists",
                        pending.tenant_id
                    ),
                ));
            };
            (t, pending.relay_target)
        }
        None => {
            let tenants: Vec<Tenant> = state
                .store
                .tenant_list()
                .await?
                .into_iter()
                .filter(|t| t.sso_enabled && t.idp_id == Some(idp.id))
                .collect();
            let allowed: Vec<&Tenant> = tenants.iter().filter(|t| t.idp_initiated).collect();
            let t = match (tenants.len(), allowed.as_slice()) {
                (0, _) => {
                    return Err(Failure::new(
                        StatusCode::FORBIDDEN,
                        "no_tenant_for_idp",
                        format!(
                            "no tenant with SSO on uses identity provider {:?}",
                            idp.name
                        ),
                    )
                    .idp(&idp.name));
                }
                (_, []) => {
                    let names: Vec<&str> = tenants.iter().map(|t| t.name.as_str()).collect();
                    return Err(Failure::new(StatusCode::FORBIDDEN, "idp_initiated_disabled", format!("an unsolicited response from {:?}, and IdP-initiated login is off for tenant(s) {}", idp.name, names.join(", ")))
                        .idp(&idp.name)
                        .with_public("Sign-in must start here", "Please open the agent portal and sign in from there."));
                }
                (_, [t]) => (*t).clone(),
                (_, many) => {
                    let names: Vec<&str> = many.iter().map(|t| t.name.as_str()).collect();
                    return Err(Failure::new(StatusCode::FORBIDDEN, "idp_initiated_ambiguous", format!("an unsolicited response from {:?}, whose tenants {} all allow IdP-initiated login: which one is meant cannot be told", idp.name, names.join(", "))).idp(&idp.name));
                }
            };
            // RelayState of an unsolicited response is the attacker's to choose: same-origin paths only.
            (t, safe_target(sp, field(&fields, "RelayState")))
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
    let replay = DeferredReplay::default();
    let assertion = verified
        .accept(&ctx, now, &replay)
        .map_err(|e| Failure::saml(&e).idp(&idp.name).tenant(&tenant.name))?;
    let (key, expires) = replay
        .0
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .ok_or_else(|| {
            Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "replay_not_checked",
                "the replay check was not asked for".to_string(),
            )
        })?;
    if !state.store.replay_remember(&key, expires, now).await? {
        return Err(Failure::saml(
            &Rejection::Replayed {
                id: assertion.id.clone(),
            }
            .into(),
        )
        .idp(&idp.name)
        .tenant(&tenant.name));
    }

    // DESIGN §3.1 step 4: the username, normalised by the tenant's rule, names a user of the tenant.
    let norm = normalise(&assertion.username, tenant.username_rule);
    let user = if norm.is_empty() {
        None
    } else {
        state.store.user_by_norm(tenant.id, &norm).await?
    };
    let Some(user) = user else {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            "unknown_user",
            format!("identity provider {:?} signed in {:?} ({}), which is {:?} under the tenant's rule; tenant {:?} has no such user", idp.name, assertion.username, idp.username, norm, tenant.name),
        )
        .idp(&idp.name)
        .tenant(&tenant.name)
        .with_public("No account", format!("Your identity provider signed you in as \u{201c}{}\u{201d}, but this organisation has no agent account of that name. Please ask your administrator to add you.", assertion.username)));
    };

    let max = now.plus_secs(state.config.session_max_secs);
    let expires_at = match assertion.session_not_on_or_after {
        Some(t) if t < max => t,
        _ => max,
    };
    let name_id = assertion.name_id.clone().unwrap_or_default();
    let agent = AgentSession {
        tenant_id: tenant.id,
        tenant: tenant.name.clone(),
        user_id: user.id,
        username: user.username.clone(),
        display_name: user.display_name.clone(),
        method: SignInMethod::Saml,
        signed_in_at: now,
        expires_at,
        saml: Some(SamlSessionRef {
            idp_id: idp.id,
            name_id: name_id.value,
            name_id_format: name_id.format,
            name_qualifier: name_id.name_qualifier,
            sp_name_qualifier: name_id.sp_name_qualifier,
            session_index: assertion.session_index.clone(),
        }),
    };
    sign_in(session, &agent).await?;
    tracing::info!(tenant = %tenant.name, user = %user.username, idp = %idp.name, assertion_id = %assertion.id, unsolicited = in_response_to.is_none(), "signed in");
    let mut res = see_other(&format!("{}{target}", sp.host_url));
    if in_response_to.is_some() {
        let clear = format!("{BINDING_COOKIE}=; Path=/; HttpOnly; Max-Age=0");
        if let Ok(v) = header::HeaderValue::from_str(&clear) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(res)
}

pub async fn metadata(State(state): State<AppState>, CurrentSp(sp): CurrentSp) -> Response {
    let now = state.clock.now();
    match sp_metadata_xml(&sp) {
        Ok(xml) => (
            [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
            xml,
        )
            .into_response(),
        Err(e) => {
            refuse(
                &state,
                Some(&sp),
                "metadata",
                now,
                Failure::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "sp_metadata",
                    e.to_string(),
                ),
            )
            .await
        }
    }
}

/// The Issuer of a logout message, read before anything is trusted (to pick the IdP's keys).
fn issuer_of(xml: &[u8], limits: &Limits) -> Result<Option<String>, Failure> {
    let doc =
        Document::parse(xml, limits).map_err(|e| Failure::saml(&crate::saml::Error::from(e)))?;
    let root = doc.root();
    Ok(doc
        .only_child(root, ns::SAML, "Issuer")
        .ok()
        .map(|i| doc.text(i).trim().to_string()))
}

pub async fn slo_redirect(
    State(state): State<AppState>,
    CurrentSp(sp): CurrentSp,
    session: Session,
    RawQuery(query): RawQuery,
) -> Response {
    let now = state.clock.now();
    let result = async {
        let raw = query.unwrap_or_default();
        let limits = limits(&state);
        let msg = decode_redirect(&raw, &limits, AlgorithmPolicy::default())
            .map_err(|e| Failure::saml(&e))?;
        let idp = idp_by_issuer(&state, issuer_of(&msg.xml, &limits)?, "logout message").await?;
        // SHA-1 query signatures only for an IdP marked legacy: decode again under its policy.
        let msg = if idp.allow_sha1 {
            decode_redirect(&raw, &limits, idp.digest_policy()).map_err(|e| Failure::saml(&e))?
        } else {
            msg
        };
        let trust = trust_of(&state, &idp)?;
        let opts = VerifyOptions {
            algorithms: idp.digest_policy(),
            limits,
            decryption_key: None,
        };
        let verified = verify_logout(LogoutBinding::Redirect(&msg), &trust, &opts)
            .map_err(|e| Failure::saml(&e).idp(&idp.name))?;
        slo_handle(
            &state,
            &sp,
            &session,
            &idp,
            verified,
            msg.relay_state.as_deref(),
            now,
        )
        .await
    }
    .await;
    match result {
        Ok(r) => r,
        Err(f) => refuse(&state, Some(&sp), "slo", now, f).await,
    }
}

pub async fn slo_post(
    State(state): State<AppState>,
    CurrentSp(sp): CurrentSp,
    session: Session,
    body: Bytes,
) -> Response {
    let now = state.clock.now();
    let result = async {
        let fields = form_fields(&body)?;
        let value = match (
            field(&fields, "SAMLRequest"),
            field(&fields, "SAMLResponse"),
        ) {
            (Some(v), None) | (None, Some(v)) => v,
            (Some(_), Some(_)) => {
                return Err(Failure::bad_request(
                    "form_malformed",
                    "the POST carries both SAMLRequest and SAMLResponse",
                ));
            }
            (None, None) => {
                return Err(Failure::bad_request(
                    "saml_message_missing",
                    "the POST carries neither SAMLRequest nor SAMLResponse",
                ));
            }
        };
        let limits = limits(&state);
        let xml = decode_post(value.as_bytes(), &limits).map_err(|e| Failure::saml(&e))?;
        let idp = idp_by_issuer(&state, issuer_of(&xml, &limits)?, "logout message").await?;
        let trust = trust_of(&state, &idp)?;
        let opts = VerifyOptions {
            algorithms: idp.digest_policy(),
            limits,
            decryption_key: None,
        };
        let verified = verify_logout(LogoutBinding::Post(&xml), &trust, &opts)
            .map_err(|e| Failure::saml(&e).idp(&idp.name))?;
        slo_handle(
            &state,
            &sp,
            &session,
            &idp,
            verified,
            field(&fields, "RelayState"),
            now,
        )
        .await
    }
    .await;
    match result {
        Ok(r) => r,
        Err(f) => refuse(&state, Some(&sp), "slo", now, f).await,
    }
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
) -> Result<Response, Failure> {
    let slo_url = sp.slo_url();
    let ctx = LogoutContext {
        idp_entity_id: &idp.entity_id,
        slo_url: &slo_url,
        clock_skew_secs: state.config.clock_skew_secs,
    };
    match message {
        LogoutMessage::Request(req) => {
            req.check(&ctx, now)
                .map_err(|e| Failure::saml(&e).idp(&idp.name))?;
            let ids = state
                .store
                .sessions_by_saml(idp.id, &req.name_id.value, &req.session_indexes)
                .await?;
            for id in &ids {
                state.store.session_delete(id).await?;
            }
            // This browser's own session, if it is one of them, must not be saved back.
            let mine: Option<AgentSession> = current_agent(session, now).await?;
            if mine
                .as_ref()
                .and_then(|a| a.saml.as_ref())
                .is_some_and(|s| s.idp_id == idp.id && s.name_id == req.name_id.value)
            {
                session.flush().await.map_err(|e| {
                    Failure::store(&crate::store::StoreError::Unavailable(e.to_string()))
                })?;
            }
            tracing::info!(idp = %idp.name, request_id = %req.id, sessions_ended = ids.len(), "IdP-initiated logout");
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
            let key = sp_key(state, sp)?;
            Ok(match idp.slo_binding {
                Binding::Redirect => {
                    let signer = key.as_deref().map(|k| (k, k.default_algorithm()));
                    let url = encode_redirect(
                        &dest,
                        MessageKind::Response,
                        &msg.xml,
                        relay_state,
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
                        Some(k) => msg.signed(k, k.default_algorithm(), None).map_err(|e| {
                            Failure::new(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "sign_failed",
                                e.to_string(),
                            )
                        })?,
                        None => msg.xml.clone(),
                    };
                    let b64 = base64::engine::general_purpose::STANDARD.encode(xml.as_bytes());
                    pages::saml_post(sp, &dest, "SAMLResponse", &b64, relay_state)
                }
            })
        }
        LogoutMessage::Response(resp) => {
            let Some(irt) = resp.in_response_to.clone() else {
                return Err(Failure::saml(
                    &Rejection::InResponseToMissing {
                        expected: "our LogoutRequest".into(),
                    }
                    .into(),
                )
                .idp(&idp.name));
            };
            let Some(pending) = state.store.pending_logout_take(&irt, now).await? else {
                return Err(Failure::new(
                    StatusCode::FORBIDDEN,
                    "unknown_in_response_to",
                    format!("LogoutResponse InResponseTo {irt:?} matches no pending LogoutRequest"),
                )
                .idp(&idp.name));
            };
            if pending.idp_id != idp.id {
                return Err(Failure::new(
                    StatusCode::FORBIDDEN,
                    "in_response_to_other_idp",
                    format!("LogoutRequest {irt:?} went to another identity provider"),
                )
                .idp(&idp.name));
            }
            if let Err(e) = resp.check(&ctx, &pending.id) {
                // The local session is gone either way; say that the IdP's may not be.
                let f = Failure::saml(&e).idp(&idp.name);
                tracing::warn!(reason = %f.reason, detail = %f.detail, idp = %idp.name, "LogoutResponse refused");
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
