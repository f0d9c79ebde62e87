//! Our SP metadata (SAML Metadata §2.4.4), for the administrator to import into the IdP (an ADFS
//! "relying party trust", an Entra enterprise app, ...). The output is deterministic: no
//! timestamps, no generated IDs, elements in schema order, so it can be diffed and golden-tested.

use crate::saml::bindings::xml_escape;
use crate::saml::metadata::idp::{BINDING_POST, BINDING_REDIRECT};
use crate::saml::xmldsig::TrustedCertificate;

pub const NAMEID_UNSPECIFIED: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";

/// Everything SP metadata says.
#[derive(Debug, Clone)]
pub struct SpMetadata<'a> {
    pub entity_id: &'a str,
    pub acs_url: &'a str,
    /// Our SLO endpoint (both Redirect and POST are offered at it).
    pub slo_url: Option<&'a str>,
    /// The SP certificate: published once for signing and once for encryption.
    pub certificate: Option<&'a TrustedCertificate>,
    /// Certificate rollover: the next certificate, published for signing beside the current one
    /// until it is promoted (the IdPs learn it before it signs anything).
    pub next_certificate: Option<&'a TrustedCertificate>,
    pub name_id_formats: &'a [&'a str],
    pub authn_requests_signed: bool,
    pub want_assertions_signed: bool,
}

impl SpMetadata<'_> {
    /// The EntityDescriptor XML.
    pub fn to_xml(&self) -> String {
        let mut x = String::with_capacity(2048);
        x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        x.push_str(&format!(
            "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"{}\">\n",
            xml_escape(self.entity_id)
        ));
        x.push_str(&format!(
            "  <md:SPSSODescriptor AuthnRequestsSigned=\"{}\" WantAssertionsSigned=\"{}\" protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">\n",
            self.authn_requests_signed && self.certificate.is_some(),
            self.want_assertions_signed
        ));
        if let Some(c) = self.certificate {
            for usage in ["signing", "encryption"] {
                x.push_str(&format!(
                    "    <md:KeyDescriptor use=\"{usage}\">\n      <ds:KeyInfo>\n        <ds:X509Data>\n          <ds:X509Certificate>{}</ds:X509Certificate>\n        </ds:X509Data>\n      </ds:KeyInfo>\n    </md:KeyDescriptor>\n",
                    c.base64()
                ));
            }
        }
        if let Some(c) = self.next_certificate {
            x.push_str(&format!(
                "    <md:KeyDescriptor use=\"signing\">\n      <ds:KeyInfo>\n        <ds:X509Data>\n          <ds:X509Certificate>{}</ds:X509Certificate>\n        </ds:X509Data>\n      </ds:KeyInfo>\n    </md:KeyDescriptor>\n",
                c.base64()
            ));
        }
        if let Some(slo) = self.slo_url {
            for b in [BINDING_REDIRECT, BINDING_POST] {
                x.push_str(&format!(
                    "    <md:SingleLogoutService Binding=\"{b}\" Location=\"{}\"/>\n",
                    xml_escape(slo)
                ));
            }
        }
        let formats: &[&str] = if self.name_id_formats.is_empty() {
            &[NAMEID_UNSPECIFIED]
        } else {
            self.name_id_formats
        };
        for f in formats {
            x.push_str(&format!(
                "    <md:NameIDFormat>{}</md:NameIDFormat>\n",
                xml_escape(f)
            ));
        }
        x.push_str(&format!(
            "    <md:AssertionConsumerService Binding=\"{BINDING_POST}\" Location=\"{}\" index=\"0\" isDefault=\"true\"/>\n",
            xml_escape(self.acs_url)
        ));
        x.push_str("  </md:SPSSODescriptor>\n</md:EntityDescriptor>\n");
        x
    }
}
