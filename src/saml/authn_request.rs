//! AuthnRequest (SAML Core §3.4.1), built as text we control. RequestedAuthnContext is omitted by
//! default: a fixed PasswordProtectedTransport breaks ADFS Windows login and Entra MFA (AADSTS75011).

use super::bindings::xml_escape;
use super::metadata::idp::BINDING_POST;
use super::time::UnixTime;
use super::xmldsig::{
    SignError, SignatureAlgorithm, SigningKey, TrustedCertificate, sign_enveloped,
};

/// NameIDPolicy (Core §3.4.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameIdPolicy {
    pub format: Option<String>,
    pub allow_create: bool,
}

/// RequestedAuthnContext (Core §3.3.2.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedAuthnContext {
    /// exact | minimum | maximum | better
    pub comparison: String,
    pub class_refs: Vec<String>,
}

/// What goes into one AuthnRequest.
#[derive(Debug, Clone)]
pub struct AuthnRequest<'a> {
    pub id: &'a str,
    pub issue_instant: UnixTime,
    /// The IdP's SingleSignOnService location for the binding used.
    pub destination: &'a str,
    pub acs_url: &'a str,
    pub sp_entity_id: &'a str,
    pub force_authn: bool,
    pub is_passive: bool,
    pub name_id_policy: Option<NameIdPolicy>,
    pub requested_authn_context: Option<RequestedAuthnContext>,
}

/// A request ID from 16 random bytes: `_` + 32 hex digits (an xs:ID must not start with a digit).
pub fn request_id(random: [u8; 16]) -> String {
    format!("_{}", hex::encode(random))
}

/// Built XML plus where an enveloped signature belongs (right after Issuer).
#[derive(Debug, Clone)]
pub struct BuiltMessage {
    pub xml: String,
    pub id: String,
    pub signature_at: usize,
}

impl BuiltMessage {
    /// Adds an enveloped signature (for the HTTP-POST binding).
    pub fn signed(
        &self,
        key: &SigningKey,
        alg: SignatureAlgorithm,
        cert: Option<&TrustedCertificate>,
    ) -> Result<String, SignError> {
        sign_enveloped(&self.xml, &self.id, self.signature_at, key, alg, cert)
    }
}

impl AuthnRequest<'_> {
    pub fn build(&self) -> BuiltMessage {
        let mut x = String::with_capacity(1024);
        x.push_str("<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\"");
        x.push_str(&format!(
            " ID=\"{}\" Version=\"2.0\" IssueInstant=\"{}\"",
            xml_escape(self.id),
            self.issue_instant
        ));
        x.push_str(&format!(
            " Destination=\"{}\"",
            xml_escape(self.destination)
        ));
        if self.force_authn {
            x.push_str(" ForceAuthn=\"true\"");
        }
        if self.is_passive {
            x.push_str(" IsPassive=\"true\"");
        }
        x.push_str(&format!(
            " ProtocolBinding=\"{BINDING_POST}\" AssertionConsumerServiceURL=\"{}\">",
            xml_escape(self.acs_url)
        ));
        x.push_str(&format!(
            "<saml:Issuer>{}</saml:Issuer>",
            xml_escape(self.sp_entity_id)
        ));
        let signature_at = x.len();
        if let Some(p) = &self.name_id_policy {
            x.push_str("<samlp:NameIDPolicy");
            if let Some(f) = &p.format {
                x.push_str(&format!(" Format=\"{}\"", xml_escape(f)));
            }
            x.push_str(&format!(" AllowCreate=\"{}\"/>", p.allow_create));
        }
        if let Some(c) = &self.requested_authn_context {
            x.push_str(&format!(
                "<samlp:RequestedAuthnContext Comparison=\"{}\">",
                xml_escape(&c.comparison)
            ));
            for r in &c.class_refs {
                x.push_str(&format!(
                    "<saml:AuthnContextClassRef>{}</saml:AuthnContextClassRef>",
                    xml_escape(r)
                ));
            }
            x.push_str("</samlp:RequestedAuthnContext>");
        }
        x.push_str("</samlp:AuthnRequest>");
        BuiltMessage {
            xml: x,
            id: self.id.to_string(),
            signature_at,
        }
    }
}
