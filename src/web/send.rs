//! Sending a SAML message to the IdP through the browser, by the binding the IdP uses for it:
//! HTTP-Redirect (deflated, with the query signature when we have a key) or HTTP-POST (an
//! auto-submitting form, the message signed when we have a key). The one place that does it for
//! AuthnRequests, LogoutRequests and LogoutResponses alike.

use axum::response::Response;
use base64::Engine as _;

use super::login::see_other;
use super::pages;
use super::refusal::{Reason, Refusal};
use crate::domain::{Binding, ServiceProvider};
use crate::saml::authn_request::BuiltMessage;
use crate::saml::bindings::{MessageKind, encode_redirect};
use crate::saml::xmldsig::SigningKey;

/// What to send and where.
pub struct Outgoing<'a> {
    pub binding: Binding,
    pub destination: &'a str,
    pub kind: MessageKind,
    pub message: &'a BuiltMessage,
    pub relay_state: Option<&'a str>,
}

/// The browser's next step carrying `out`, signed with `key` when there is one.
pub fn send(
    sp: &ServiceProvider,
    key: Option<&SigningKey>,
    out: Outgoing<'_>,
) -> Result<Response, Refusal> {
    let failed = |e: String| Refusal::new(Reason::SignFailed, e);
    match out.binding {
        Binding::Redirect => {
            let signer = key.map(|k| (k, k.default_algorithm()));
            let url = encode_redirect(
                out.destination,
                out.kind,
                &out.message.xml,
                out.relay_state,
                signer,
            )
            .map_err(|e| failed(e.to_string()))?;
            Ok(see_other(&url))
        }
        Binding::Post => {
            let xml = match key {
                Some(k) => out
                    .message
                    .signed(k, k.default_algorithm(), None)
                    .map_err(|e| failed(e.to_string()))?,
                None => out.message.xml.clone(),
            };
            let b64 = base64::engine::general_purpose::STANDARD.encode(xml.as_bytes());
            Ok(pages::saml_post(
                sp,
                out.destination,
                out.kind.param(),
                &b64,
                out.relay_state,
            ))
        }
    }
}
