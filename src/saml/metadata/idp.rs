//! IdP metadata import (SAML Metadata §2.4.3): one entity out of an EntityDescriptor or an
//! EntitiesDescriptor (chosen by entity ID; the candidates are listed when the choice is
//! ambiguous), its SSO and SLO endpoints per binding, every signing certificate, NameIDFormats.
//!
//! ADFS FederationMetadata carries WS-Federation `RoleDescriptor`s and an `SPSSODescriptor` beside
//! the `IDPSSODescriptor`: they are skipped, not refused. The metadata's own signature is not
//! checked: trust comes from the administrator importing it, and the certificates in it become the
//! IdP's configured trust anchors.

use std::fmt;

use crate::saml::xml::{Document, Limits, Malformed, NodeId, ns};
use crate::saml::xmldsig::TrustedCertificate;

pub const BINDING_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
pub const BINDING_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
const PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";

/// Limits for metadata: federation aggregates are large, so the size cap is far above a
/// response's (the same no-DTD, depth and attribute rules apply).
pub fn metadata_limits() -> Limits {
    Limits {
        max_bytes: 64 * 1024 * 1024,
        max_depth: 64,
        max_attributes: 64,
        max_nodes: 20_000_000,
        max_namespaces_in_scope: 256,
    }
}

/// An endpoint of the IdP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub binding: String,
    pub location: String,
    pub response_location: Option<String>,
}

/// What an administrator imports: everything the SP needs to talk to this IdP.
#[derive(Debug, Clone, PartialEq)]
pub struct IdpDescriptor {
    pub entity_id: String,
    pub sso: Vec<Endpoint>,
    pub slo: Vec<Endpoint>,
    pub signing_certificates: Vec<TrustedCertificate>,
    pub name_id_formats: Vec<String>,
    pub want_authn_requests_signed: bool,
    /// The claims (attributes) the IdP says it offers: `saml:Attribute/@Name` in the
    /// IDPSSODescriptor and ADFS's `ClaimTypesOffered` (at most [`MAX_CLAIM_TYPES`]).
    pub claim_types: Vec<String>,
}

/// Claim types listed at most (a preview, not a catalogue).
pub const MAX_CLAIM_TYPES: usize = 200;
const NS_WSFED_AUTH: &str = "http://docs.oasis-open.org/wsfed/authorization/200706";

impl IdpDescriptor {
    /// The SSO location for `binding`, if the IdP offers it.
    pub fn sso_location(&self, binding: &str) -> Option<&str> {
        self.sso
            .iter()
            .find(|e| e.binding == binding)
            .map(|e| e.location.as_str())
    }
    pub fn slo_endpoint(&self, binding: &str) -> Option<&Endpoint> {
        self.slo.iter().find(|e| e.binding == binding)
    }
}

/// Why metadata could not be imported: which element, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetadataError {
    Xml(Malformed),
    NotMetadata {
        root: String,
    },
    NoIdp,
    Ambiguous {
        candidates: Vec<String>,
    },
    NotFound {
        entity_id: String,
        candidates: Vec<String>,
    },
    MissingAttribute {
        element: String,
        attribute: &'static str,
    },
    NoSsoService {
        entity_id: String,
    },
    NoSigningCertificate {
        entity_id: String,
    },
    BadCertificate {
        key_descriptor: usize,
        why: String,
    },
    BadLocation {
        element: String,
        value: String,
    },
}

impl fmt::Display for MetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use MetadataError::*;
        match self {
            Xml(m) => write!(f, "metadata is not well-formed XML: {m}"),
            NotMetadata { root } => write!(
                f,
                "root element is {root}, expected md:EntityDescriptor or md:EntitiesDescriptor"
            ),
            NoIdp => write!(
                f,
                "no EntityDescriptor has an IDPSSODescriptor for SAML 2.0"
            ),
            Ambiguous { candidates } => write!(
                f,
                "the metadata describes {} identity providers; choose one by entity ID: {}",
                candidates.len(),
                candidates.join(", ")
            ),
            NotFound {
                entity_id,
                candidates,
            } => write!(
                f,
                "no identity provider with entity ID \"{entity_id}\"; the metadata has: {}",
                candidates.join(", ")
            ),
            MissingAttribute { element, attribute } => {
                write!(f, "{element} has no {attribute} attribute")
            }
            NoSsoService { entity_id } => write!(
                f,
                "IDPSSODescriptor of \"{entity_id}\" has no SingleSignOnService with the HTTP-Redirect or HTTP-POST binding"
            ),
            NoSigningCertificate { entity_id } => write!(
                f,
                "IDPSSODescriptor of \"{entity_id}\" has no signing certificate (KeyDescriptor use=\"signing\" or without use): \
                 without one nothing it sends could be verified"
            ),
            BadCertificate {
                key_descriptor,
                why,
            } => write!(f, "KeyDescriptor #{key_descriptor}: {why}"),
            BadLocation { element, value } => {
                write!(f, "{element}/@Location \"{value}\" is not an http(s) URL")
            }
        }
    }
}

impl std::error::Error for MetadataError {}

impl MetadataError {
    pub fn code(&self) -> &'static str {
        use MetadataError::*;
        match self {
            Xml(_) => "malformed_xml",
            NotMetadata { .. } => "not_metadata",
            NoIdp => "no_idp",
            Ambiguous { .. } => "ambiguous_entity",
            NotFound { .. } => "entity_not_found",
            MissingAttribute { .. } => "missing_attribute",
            NoSsoService { .. } => "no_sso_service",
            NoSigningCertificate { .. } => "no_signing_certificate",
            BadCertificate { .. } => "bad_certificate",
            BadLocation { .. } => "bad_location",
        }
    }
}

/// Parses IdP metadata, choosing the entity `entity_id` when given (required when several IdPs
/// are described).
pub fn parse_idp_metadata(
    xml: &[u8],
    entity_id: Option<&str>,
) -> Result<IdpDescriptor, MetadataError> {
    let doc = Document::parse(xml, &metadata_limits()).map_err(MetadataError::Xml)?;
    let root = doc.root();
    if !(doc.is(root, ns::MD, "EntityDescriptor") || doc.is(root, ns::MD, "EntitiesDescriptor")) {
        return Err(MetadataError::NotMetadata {
            root: doc.qname(root),
        });
    }
    // Every EntityDescriptor (EntitiesDescriptor may nest) with a SAML 2.0 IDPSSODescriptor.
    let mut candidates: Vec<(String, NodeId, NodeId)> = Vec::new();
    for ed in doc
        .descendants(root)
        .filter(|&n| doc.is(n, ns::MD, "EntityDescriptor"))
    {
        let Some(idp) = doc
            .children_named(ed, ns::MD, "IDPSSODescriptor")
            .find(|&i| {
                doc.attr(i, "protocolSupportEnumeration")
                    .is_some_and(|p| p.split_ascii_whitespace().any(|x| x == PROTOCOL))
            })
        else {
            continue;
        };
        let id = doc
            .attr(ed, "entityID")
            .ok_or(MetadataError::MissingAttribute {
                element: "EntityDescriptor".into(),
                attribute: "entityID",
            })?;
        candidates.push((id.to_string(), ed, idp));
    }
    let names = || candidates.iter().map(|c| c.0.clone()).collect::<Vec<_>>();
    let (eid, ed, idp) = match entity_id {
        Some(want) => candidates
            .iter()
            .find(|c| c.0 == want)
            .cloned()
            .ok_or_else(|| MetadataError::NotFound {
                entity_id: want.to_string(),
                candidates: names(),
            })?,
        None => match candidates.as_slice() {
            [] => return Err(MetadataError::NoIdp),
            [one] => one.clone(),
            _ => {
                return Err(MetadataError::Ambiguous {
                    candidates: names(),
                });
            }
        },
    };

    let endpoint = |n: NodeId, what: &str| -> Result<Endpoint, MetadataError> {
        let binding = doc
            .attr(n, "Binding")
            .ok_or(MetadataError::MissingAttribute {
                element: what.to_string(),
                attribute: "Binding",
            })?;
        let location = doc
            .attr(n, "Location")
            .ok_or(MetadataError::MissingAttribute {
                element: what.to_string(),
                attribute: "Location",
            })?;
        check_url(location, what)?;
        let response_location = doc.attr(n, "ResponseLocation").filter(|s| !s.is_empty());
        if let Some(r) = response_location {
            check_url(r, what)?;
        }
        Ok(Endpoint {
            binding: binding.to_string(),
            location: location.trim().to_string(),
            response_location: response_location.map(|s| s.trim().to_string()),
        })
    };
    let mut sso = Vec::new();
    for n in doc.children_named(idp, ns::MD, "SingleSignOnService") {
        sso.push(endpoint(n, "SingleSignOnService")?);
    }
    if !sso
        .iter()
        .any(|e| e.binding == BINDING_REDIRECT || e.binding == BINDING_POST)
    {
        return Err(MetadataError::NoSsoService { entity_id: eid });
    }
    let mut slo = Vec::new();
    for n in doc.children_named(idp, ns::MD, "SingleLogoutService") {
        slo.push(endpoint(n, "SingleLogoutService")?);
    }

    let mut signing_certificates: Vec<TrustedCertificate> = Vec::new();
    for (i, kd) in doc.children_named(idp, ns::MD, "KeyDescriptor").enumerate() {
        match doc.attr(kd, "use") {
            None | Some("signing") => {}
            Some(_) => continue,
        }
        let Ok(Some(ki)) = doc.opt_child(kd, ns::DS, "KeyInfo") else {
            continue;
        };
        for x in doc.children_named(ki, ns::DS, "X509Data") {
            for c in doc.children_named(x, ns::DS, "X509Certificate") {
                let cert = TrustedCertificate::from_base64(&doc.text(c)).map_err(|e| {
                    MetadataError::BadCertificate {
                        key_descriptor: i + 1,
                        why: e.to_string(),
                    }
                })?;
                if !signing_certificates.contains(&cert) {
                    signing_certificates.push(cert);
                }
            }
        }
    }
    if signing_certificates.is_empty() {
        return Err(MetadataError::NoSigningCertificate { entity_id: eid });
    }
    let name_id_formats = doc
        .children_named(idp, ns::MD, "NameIDFormat")
        .map(|n| doc.text(n).trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let want_authn_requests_signed = doc
        .attr(idp, "WantAuthnRequestsSigned")
        .is_some_and(|v| v == "true" || v == "1");
    let mut claim_types: Vec<String> = Vec::new();
    let offered = doc
        .children_named(idp, ns::SAML, "Attribute")
        .filter_map(|a| doc.attr(a, "Name"))
        .chain(
            doc.descendants(ed)
                .filter(|&n| doc.is(n, NS_WSFED_AUTH, "ClaimType"))
                .filter_map(|n| doc.attr(n, "Uri")),
        );
    for c in offered {
        let c = c.trim();
        if claim_types.len() >= MAX_CLAIM_TYPES {
            break;
        }
        if !c.is_empty() && !claim_types.iter().any(|x| x == c) {
            claim_types.push(c.to_string());
        }
    }
    Ok(IdpDescriptor {
        entity_id: eid,
        sso,
        slo,
        signing_certificates,
        name_id_formats,
        want_authn_requests_signed,
        claim_types,
    })
}

fn check_url(u: &str, element: &str) -> Result<(), MetadataError> {
    let t = u.trim();
    let lower = t.to_ascii_lowercase();
    let ok = (lower.starts_with("https://") || lower.starts_with("http://"))
        && t.len() > 8
        && !t
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '<' || c == '>' || c == ' ');
    if ok {
        Ok(())
    } else {
        Err(MetadataError::BadLocation {
            element: element.to_string(),
            value: u.to_string(),
        })
    }
}
