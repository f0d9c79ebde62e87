//! The SAML tracer: a response an administrator pastes is taken through the ACS's checks, one
//! step each with its verdict and the values it compared: decode, parse, the IdP (by the
//! tenant, or by Issuer), signature (which certificate), then the protocol checks of the SAML
//! core, replay (looked up, never recorded), the tenant, the username mapping and the user.
//! Nothing is consumed or recorded: the replay cache, the pending requests and the failure log
//! stay as they are.

use serde::Serialize;

use super::admin::AdminError;
use super::username::{claim_identity, tenant_of_claim};
use super::{IdentityProvider, ServiceProvider, Tenant, UsernameMapping};
use crate::config::Config;
use crate::saml::UnixTime;
use crate::saml::bindings::decode_post;
use crate::saml::response::{
    ExpectedContext, Solicitation, UnverifiedResponse, UsernameSource, VerifyOptions,
};
use crate::saml::trace::{Tracer, Verdict};
use crate::saml::xml::Limits;
use crate::store::Store;

/// What the tracer is asked.
#[derive(Debug, Clone, Default)]
pub struct TraceRequest {
    /// The SAMLResponse: base64 (as posted) or the XML itself.
    pub response: Vec<u8>,
    /// The tenant whose IdP should have sent it (`None`: the IdP named by the Issuer).
    pub tenant: Option<String>,
    /// Evaluate as of this instant instead of now.
    pub at: Option<UnixTime>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    pub step: String,
    /// `passed`, `failed` or `not reached`.
    pub verdict: &'static str,
    pub code: Option<String>,
    pub message: Option<String>,
    pub values: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TraceReport {
    /// Whether the ACS would sign the agent in (given the browser holds the request it answers).
    pub accepted: bool,
    pub evaluated_at: String,
    pub steps: Vec<StepView>,
}

impl TraceReport {
    /// The first failed step.
    pub fn first_failure(&self) -> Option<&StepView> {
        self.steps.iter().find(|s| s.verdict == "failed")
    }
}

fn view(t: Tracer, evaluated_at: UnixTime) -> TraceReport {
    let accepted = t.first_failure().is_none();
    TraceReport {
        accepted,
        evaluated_at: evaluated_at.to_rfc3339(),
        steps: t
            .steps
            .into_iter()
            .map(|s| {
                let (verdict, code, message) = match s.verdict {
                    Verdict::Passed => ("passed", None, None),
                    Verdict::Failed { code, message } => ("failed", Some(code), Some(message)),
                    Verdict::NotReached => ("not reached", None, None),
                };
                StepView {
                    step: s.name,
                    verdict,
                    code,
                    message,
                    values: s.values,
                }
            })
            .collect(),
    }
}

/// The SP a response is for: the one whose ACS URL is its Destination, else the only one.
fn sp_for(sps: &[ServiceProvider], destination: Option<&str>) -> Option<ServiceProvider> {
    destination
        .and_then(|d| sps.iter().find(|s| s.acs_url() == d))
        .or(match sps {
            [only] => Some(only),
            _ => None,
        })
        .cloned()
}

/// Runs the trace. Errors only when the store cannot be read (every refusal is a step).
pub async fn trace(
    store: &dyn Store,
    config: &Config,
    req: &TraceRequest,
    now: UnixTime,
) -> Result<TraceReport, AdminError> {
    let now = req.at.unwrap_or(now);
    let mut t = Tracer::default();
    let limits = Limits {
        max_bytes: config.max_message_bytes,
        max_nodes: config.max_message_nodes,
        ..Limits::default()
    };
    let raw = &req.response;
    let first = raw.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let xml = if first == Some(b'<') {
        t.record(
            "decode",
            vec![
                ("encoding", "XML as given".into()),
                ("bytes", raw.len().to_string()),
            ],
            None,
        );
        raw.clone()
    } else {
        match t.check(
            "decode",
            vec![
                ("encoding", "base64 (HTTP-POST)".into()),
                ("bytes", raw.len().to_string()),
            ],
            || decode_post(raw, &limits),
        ) {
            Ok(x) => {
                t.annotate("decoded bytes", x.len().to_string());
                x
            }
            Err(_) => return Ok(view(t, now)),
        }
    };
    let Ok(unverified) = t.check(
        "parse",
        vec![(
            "limits",
            format!("{} bytes, {} nodes", limits.max_bytes, limits.max_nodes),
        )],
        || UnverifiedResponse::parse_owned(xml, &limits),
    ) else {
        return Ok(view(t, now));
    };
    let issuer = unverified.issuer_hint();
    let destination = unverified.destination_hint();
    t.annotate("Issuer", issuer.clone().unwrap_or_else(|| "(none)".into()));
    t.annotate(
        "Destination",
        destination.clone().unwrap_or_else(|| "(none)".into()),
    );

    // The IdP: the tenant's, or the one the Issuer names.
    let chosen_tenant = match &req.tenant {
        Some(name) => match store.tenant_by_name(name).await? {
            Some(tn) => Some(tn),
            None => {
                t.record(
                    "identity provider",
                    vec![("tenant", name.clone())],
                    Some(("unknown_tenant", format!("no tenant is named {name:?}"))),
                );
                return Ok(view(t, now));
            }
        },
        None => None,
    };
    let idp: Option<IdentityProvider> = match &chosen_tenant {
        Some(tn) => match tn.idp_id {
            Some(id) => store.idp_get(id).await?,
            None => None,
        },
        None => match &issuer {
            Some(i) => store.idp_by_entity_id(i).await?,
            None => None,
        },
    };
    let idp_values = vec![
        (
            "by",
            if chosen_tenant.is_some() {
                "the tenant's".to_string()
            } else {
                "the Issuer".to_string()
            },
        ),
        ("Issuer", issuer.clone().unwrap_or_else(|| "(none)".into())),
    ];
    let Some(idp) = idp else {
        let why = match (&chosen_tenant, &issuer) {
            (Some(tn), _) => (
                "idp_missing",
                format!("tenant {:?} has no identity provider", tn.name),
            ),
            (None, None) => ("issuer_missing", "the Response names no Issuer".to_string()),
            (None, Some(i)) => (
                "unknown_idp",
                format!("no identity provider is configured with entity ID {i:?}"),
            ),
        };
        t.record("identity provider", idp_values, Some((why.0, why.1)));
        return Ok(view(t, now));
    };
    t.record("identity provider", idp_values, None);
    t.annotate("name", idp.name.clone());
    t.annotate("entity ID", idp.entity_id.clone());

    let sps = store.sp_list().await?;
    let Some(sp) = sp_for(&sps, destination.as_deref()) else {
        t.record(
            "service provider",
            vec![(
                "Destination",
                destination.clone().unwrap_or_else(|| "(none)".into()),
            )],
            Some((
                "unknown_sp",
                "no service provider has this ACS URL, and there are several".into(),
            )),
        );
        return Ok(view(t, now));
    };
    t.record(
        "service provider",
        vec![
            ("host URL", sp.host_url.clone()),
            ("ACS URL", sp.acs_url()),
            ("entity ID", sp.entity_id.clone()),
        ],
        None,
    );

    // Signature: with the IdP's trust, as the ACS verifies.
    let trust = match idp.trust.to_trust() {
        Ok(tr) => tr,
        Err(e) => {
            t.record("signature", vec![], Some(("idp_trust_unusable", e)));
            return Ok(view(t, now));
        }
    };
    let decryption_key = match &sp.private_key_pem {
        Some(k) => crate::saml::xmldsig::SigningKey::from_pem(k.secret().as_bytes()).ok(),
        None => None,
    };
    let opts = VerifyOptions {
        algorithms: idp.digest_policy(),
        limits,
        decryption_key,
    };
    let Ok(verified) = t.check(
        "signature",
        vec![
            ("trusted", trust.describe()),
            (
                "SHA-1",
                if idp.allow_sha1 {
                    "allowed".into()
                } else {
                    "refused".into()
                },
            ),
        ],
        || unverified.verify(&trust, &opts),
    ) else {
        return Ok(view(t, now));
    };
    t.annotate("verified by", verified.signing_certificate().describe());
    t.annotate(
        "signed",
        match (verified.response_signed(), verified.assertion_signed()) {
            (true, true) => "Response and Assertion",
            (true, false) => "Response",
            (false, true) => "Assertion",
            (false, false) => "(encrypted assertion)",
        }
        .into(),
    );

    // The protocol checks. A response that answers a request is checked as the answer to it
    // (whether this browser holds it, only the agent's browser can show).
    let irt = verified.in_response_to();
    let acs_url = sp.acs_url();
    let ctx = ExpectedContext {
        sp_entity_id: &sp.entity_id,
        acs_url: &acs_url,
        idp_entity_id: &idp.entity_id,
        solicitation: match &irt {
            Some(r) => Solicitation::Request(r),
            None => Solicitation::Unsolicited,
        },
        clock_skew_secs: config.clock_skew_secs,
        username: match &idp.username {
            UsernameMapping::NameId => UsernameSource::NameId,
            UsernameMapping::Attribute(a) => UsernameSource::Attribute(a),
        },
    };
    let Ok(unredeemed) = t.accept(&verified, &ctx, now) else {
        return Ok(view(t, now));
    };
    if irt.is_some() {
        t.annotate(
            "note",
            "the agent's browser must hold this request (its pending-request cookie)".into(),
        );
    }

    // Replay: looked up, never recorded.
    let seen = store.replay_seen(unredeemed.replay_key(), now).await?;
    let replay_values = vec![
        ("assertion ID", unredeemed.id().to_string()),
        ("remembered until", unredeemed.replay_until().to_rfc3339()),
        ("seen before", if seen { "yes".into() } else { "no".into() }),
    ];
    let Ok(assertion) = t.check("replay", replay_values, || {
        unredeemed.redeem_recorded(!seen)
    }) else {
        return Ok(view(t, now));
    };

    // The tenant, the username mapping, the user.
    let sharing: Vec<Tenant> = store
        .tenant_list()
        .await?
        .into_iter()
        .filter(|tn| tn.sso_enabled && tn.idp_id == Some(idp.id))
        .collect();
    let tenant =
        match chosen_tenant.or_else(|| tenant_of_claim(&assertion.username, &sharing).cloned()) {
            Some(tn) => tn,
            None => {
                let names: Vec<&str> = sharing.iter().map(|tn| tn.name.as_str()).collect();
                let (code, m) = if sharing.is_empty() {
                    (
                        "no_tenant_for_idp",
                        format!(
                            "no tenant with SSO on uses identity provider {:?}",
                            idp.name
                        ),
                    )
                } else {
                    (
                        "idp_initiated_ambiguous",
                        format!(
                            "the identity names no login domain of the tenants {}",
                            names.join(", ")
                        ),
                    )
                };
                t.record(
                    "tenant",
                    vec![("claim", assertion.username.clone())],
                    Some((code, m)),
                );
                return Ok(view(t, now));
            }
        };
    t.record(
        "tenant",
        vec![
            ("tenant", tenant.name.clone()),
            ("login domains", tenant.login_domains.join(", ")),
        ],
        None,
    );
    let mapping_values = vec![
        ("mapping", crate::domain::audit::mapping_text(&idp.username)),
        ("claim", assertion.username.clone()),
        (
            "rule",
            format!(
                "{}{}",
                if tenant.username_rule.strip_domain {
                    "strip the tenant's domain"
                } else {
                    "keep the domain"
                },
                if tenant.username_rule.case_insensitive {
                    ", case-insensitive"
                } else {
                    ", case-sensitive"
                }
            ),
        ),
    ];
    let norm = match claim_identity(&assertion.username, &tenant, &sharing) {
        Ok(n) => {
            t.record("username mapping", mapping_values, None);
            t.annotate("user name", n.clone());
            n
        }
        Err(e) => {
            use super::username::IdentityError;
            let (code, m) = match &e {
                IdentityError::Invalid(why) => ("username_invalid", why.to_string()),
                IdentityError::ForeignDomain { domain } => (
                    "foreign_domain",
                    format!(
                        "its domain {domain:?} is not a login domain of tenant {:?}",
                        tenant.name
                    ),
                ),
                IdentityError::OtherTenant { domain, other } => (
                    "tenant_mismatch",
                    format!("its domain {domain:?} belongs to tenant {other:?}"),
                ),
                IdentityError::NoDomain => (
                    "tenant_mismatch",
                    "it names no domain, and the identity provider serves several tenants"
                        .to_string(),
                ),
            };
            t.record("username mapping", mapping_values, Some((code, m)));
            return Ok(view(t, now));
        }
    };
    match store.user_by_norm(tenant.id, &norm).await? {
        Some(u) => {
            t.record(
                "user",
                vec![
                    ("user", u.username.clone()),
                    ("display name", u.display_name.clone()),
                ],
                None,
            );
        }
        None => {
            t.record(
                "user",
                vec![("user name", norm.clone())],
                Some((
                    "unknown_user",
                    format!("tenant {:?} has no user {norm:?}", tenant.name),
                )),
            );
        }
    }
    Ok(view(t, now))
}
