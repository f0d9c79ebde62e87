//! Administration shared by the CLI (and the JSON API and Web Manager to come): every operation
//! validates all of its input first and changes nothing when any of it is wrong; the error names
//! the field and the value.

use std::sync::Arc;

use super::username::{check_username, circuit_norm, normalise};
use super::*;
use crate::rng::Rng;
use crate::saml::metadata::idp::{BINDING_POST, BINDING_REDIRECT, parse_idp_metadata};
use crate::store::{
    NewIdentityProvider, NewServiceProvider, NewTenant, NewUser, Store, StoreError,
};

/// The implicit tenant of single-tenant mode (and the home of the first central administrator).
pub const DEFAULT_TENANT: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Store(StoreError),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => AdminError::Conflict(m),
            other => AdminError::Store(other),
        }
    }
}

type Result<T> = std::result::Result<T, AdminError>;

fn invalid<T>(m: impl Into<String>) -> Result<T> {
    Err(AdminError::Invalid(m.into()))
}

/// An absolute http(s) URL with a host, no query or fragment, returned without a trailing slash.
pub fn check_http_url(field: &str, url: &str) -> Result<String> {
    let u = url.trim();
    let rest = if let Some(r) = u.strip_prefix("https://") {
        r
    } else if let Some(r) = u.strip_prefix("http://") {
        r
    } else {
        return invalid(format!(
            "{field} {url:?} must start with http:// or https://"
        ));
    };
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return invalid(format!("{field} {url:?} has no host"));
    }
    if u.contains(['?', '#']) || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid(format!(
            "{field} {url:?} must not contain a query, a fragment or white space"
        ));
    }
    if u.len() > 1024 {
        return invalid(format!("{field} is longer than 1024 characters"));
    }
    Ok(u.trim_end_matches('/').to_string())
}

/// An entity ID: an absolute URI (URL or URN), at most 1024 characters, compared exactly.
pub fn check_entity_id(field: &str, id: &str) -> Result<String> {
    if id.is_empty() || id.len() > 1024 {
        return invalid(format!("{field} must have 1 to 1024 characters"));
    }
    if id.trim() != id || id.chars().any(|c| c.is_control()) {
        return invalid(format!(
            "{field} {id:?} has white space or control characters"
        ));
    }
    let scheme_ok = id.split_once(':').is_some_and(|(s, rest)| {
        !rest.is_empty()
            && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if !scheme_ok {
        return invalid(format!(
            "{field} {id:?} is not an absolute URI (https://… or urn:…)"
        ));
    }
    Ok(id.to_string())
}

fn check_name(field: &str, name: &str) -> Result<String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !ok {
        return invalid(format!(
            "{field} {name:?} must be 1 to 64 letters, digits, '-', '_' or '.'"
        ));
    }
    Ok(name.to_string())
}

/// Reads a certificate given as PEM (one or several) or bare base64 DER; returns base64 DER of each.
pub fn parse_certificates(field: &str, text: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if text.contains("-----BEGIN") {
        let stack = openssl::x509::X509::stack_from_pem(text.as_bytes())
            .map_err(|e| AdminError::Invalid(format!("{field}: not a PEM certificate ({e})")))?;
        for c in stack {
            let der = c
                .to_der()
                .map_err(|e| AdminError::Invalid(format!("{field}: {e}")))?;
            out.push(
                crate::saml::xmldsig::TrustedCertificate::from_der(&der)
                    .map_err(|e| AdminError::Invalid(format!("{field}: {e}")))?
                    .base64(),
            );
        }
    } else {
        let c = crate::saml::xmldsig::TrustedCertificate::from_base64(text.trim())
            .map_err(|e| AdminError::Invalid(format!("{field}: {e}")))?;
        out.push(c.base64());
    }
    if out.is_empty() {
        return invalid(format!("{field}: no certificate found"));
    }
    Ok(out)
}

/// SP certificate and key: both or neither, and the key must belong to the certificate.
fn check_sp_keypair(cert_pem: &str, key_pem: &str) -> Result<()> {
    let cert = openssl::x509::X509::from_pem(cert_pem.as_bytes())
        .map_err(|e| AdminError::Invalid(format!("SP certificate: not a PEM certificate ({e})")))?;
    let key = openssl::pkey::PKey::private_key_from_pem(key_pem.as_bytes())
        .map_err(|_| AdminError::Invalid("SP private key: not a PEM private key".into()))?;
    let public = cert
        .public_key()
        .map_err(|e| AdminError::Invalid(format!("SP certificate: {e}")))?;
    if !public.public_eq(&key) {
        return invalid("the SP private key does not belong to the SP certificate");
    }
    crate::saml::xmldsig::SigningKey::from_pem(key_pem.as_bytes())
        .map_err(|e| AdminError::Invalid(format!("SP private key: {e}")))?;
    Ok(())
}

/// A new RSA-2048 key and a self-signed certificate for it (10 years), as PEM.
pub fn generate_sp_keypair(common_name: &str, rng: &dyn Rng) -> Result<(String, Secret)> {
    use openssl::asn1::{Asn1Integer, Asn1Time};
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::{X509, X509NameBuilder};
    let fail =
        |e: openssl::error::ErrorStack| AdminError::Invalid(format!("cannot generate a key: {e}"));
    let rsa = Rsa::generate(2048).map_err(fail)?;
    let key = PKey::from_rsa(rsa).map_err(fail)?;
    let mut name = X509NameBuilder::new().map_err(fail)?;
    let cn: String = common_name.chars().take(64).collect();
    name.append_entry_by_text("CN", &cn).map_err(fail)?;
    let name = name.build();
    let mut b = X509::builder().map_err(fail)?;
    b.set_version(2).map_err(fail)?;
    let serial = BigNum::from_slice(&rng.bytes16()).map_err(fail)?;
    let serial = Asn1Integer::from_bn(&serial).map_err(fail)?;
    b.set_serial_number(&serial).map_err(fail)?;
    b.set_subject_name(&name).map_err(fail)?;
    b.set_issuer_name(&name).map_err(fail)?;
    b.set_pubkey(&key).map_err(fail)?;
    let (from, until) = (
        Asn1Time::days_from_now(0).map_err(fail)?,
        Asn1Time::days_from_now(3650).map_err(fail)?,
    );
    b.set_not_before(&from).map_err(fail)?;
    b.set_not_after(&until).map_err(fail)?;
    b.sign(&key, MessageDigest::sha256()).map_err(fail)?;
    let cert = String::from_utf8(b.build().to_pem().map_err(fail)?)
        .map_err(|e| AdminError::Invalid(e.to_string()))?;
    let key_pem = String::from_utf8(key.private_key_to_pem_pkcs8().map_err(fail)?)
        .map_err(|e| AdminError::Invalid(e.to_string()))?;
    Ok((cert, Secret::new(key_pem)))
}

/// What `sp add` takes.
#[derive(Debug, Default)]
pub struct SpInput {
    pub host_url: String,
    pub entity_id: Option<String>,
    pub certificate_pem: Option<String>,
    pub private_key_pem: Option<Secret>,
    pub generate_key: bool,
}

pub async fn sp_add(store: &dyn Store, rng: &dyn Rng, input: SpInput) -> Result<ServiceProvider> {
    let host_url = check_http_url("host URL", &input.host_url)?;
    let entity_id = check_entity_id("entity ID", input.entity_id.as_deref().unwrap_or(&host_url))?;
    let (certificate_pem, private_key_pem) = match (
        input.certificate_pem,
        input.private_key_pem,
        input.generate_key,
    ) {
        (Some(_), _, true) | (_, Some(_), true) => {
            return invalid("give either a certificate and key, or --generate-key, not both");
        }
        (Some(c), Some(k), false) => {
            check_sp_keypair(&c, k.secret())?;
            (Some(c), Some(k))
        }
        (Some(_), None, false) => {
            return invalid("an SP certificate needs its private key (--key)");
        }
        (None, Some(_), false) => {
            return invalid("an SP private key needs its certificate (--cert)");
        }
        (None, None, true) => {
            let cn = host_url
                .split("://")
                .nth(1)
                .unwrap_or(&host_url)
                .split('/')
                .next()
                .unwrap_or("ssogate")
                .to_string();
            let (c, k) = generate_sp_keypair(&cn, rng)?;
            (Some(c), Some(k))
        }
        (None, None, false) => (None, None),
    };
    let existing = store.sp_list().await?;
    if let Some(s) = existing.iter().find(|s| s.entity_id == entity_id) {
        return Err(AdminError::Conflict(format!(
            "service provider {} already has entity ID {entity_id}",
            s.id
        )));
    }
    if let Some(s) = existing.iter().find(|s| s.host_url == host_url) {
        return Err(AdminError::Conflict(format!(
            "service provider {} already has host URL {host_url}",
            s.id
        )));
    }
    Ok(store
        .sp_insert(NewServiceProvider {
            entity_id,
            host_url,
            certificate_pem,
            private_key_pem,
        })
        .await?)
}

/// Finds an SP by ID, entity ID or host URL.
pub async fn sp_find(store: &dyn Store, selector: &str) -> Result<ServiceProvider> {
    let sel = selector.trim().trim_end_matches('/');
    let all = store.sp_list().await?;
    all.into_iter()
        .find(|s| s.id.0.to_string() == sel || s.entity_id == selector || s.host_url == sel)
        .ok_or_else(|| AdminError::NotFound(format!("no service provider has ID, entity ID or host URL {selector:?} (see `ssogate sp list`)")))
}

/// The SP's metadata document.
pub fn sp_metadata_xml(sp: &ServiceProvider) -> Result<String> {
    let cert = match &sp.certificate_pem {
        Some(pem) => Some(
            crate::saml::xmldsig::TrustedCertificate::from_any(pem.as_bytes())
                .map_err(|e| AdminError::Invalid(format!("stored SP certificate: {e}")))?,
        ),
        None => None,
    };
    let acs = sp.acs_url();
    let slo = sp.slo_url();
    let formats = [crate::saml::metadata::sp::NAMEID_UNSPECIFIED];
    Ok(crate::saml::metadata::sp::SpMetadata {
        entity_id: &sp.entity_id,
        acs_url: &acs,
        slo_url: Some(&slo),
        certificate: cert.as_ref(),
        name_id_formats: &formats,
        authn_requests_signed: cert.is_some(),
        want_assertions_signed: true,
    }
    .to_xml())
}

/// IdP fields given by hand (all) or overriding an import (any).
#[derive(Debug, Default, Clone)]
pub struct IdpInput {
    pub name: Option<String>,
    pub entity_id: Option<String>,
    pub sso_url: Option<String>,
    pub sso_binding: Option<String>,
    pub slo_url: Option<String>,
    pub slo_response_url: Option<String>,
    pub slo_binding: Option<String>,
    /// Attribute name, or "NameID".
    pub username: Option<String>,
    /// PEM or base64 texts of certificates.
    pub certificates: Vec<String>,
    /// `ALG:HEX`.
    pub fingerprint: Option<String>,
    pub allow_sha1: Option<bool>,
    pub name_id_format: Option<String>,
    pub authn_context: Option<String>,
}

fn username_mapping(s: &str) -> Result<UsernameMapping> {
    let s = s.trim();
    if s.is_empty() {
        return invalid("the username claim is empty: give an attribute name or NameID");
    }
    if s.eq_ignore_ascii_case("nameid") {
        return Ok(UsernameMapping::NameId);
    }
    Ok(UsernameMapping::Attribute(s.to_string()))
}

fn binding_of(field: &str, s: &str) -> Result<Binding> {
    Binding::parse(s)
        .ok_or_else(|| AdminError::Invalid(format!("{field} {s:?} is not redirect or post")))
}

fn opt_url(field: &str, v: &Option<String>) -> Result<Option<String>> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(u) => check_http_url(field, u).map(Some),
    }
}

fn trust_of(input: &IdpInput) -> Result<Option<TrustConfig>> {
    match (input.certificates.is_empty(), &input.fingerprint) {
        (false, Some(_)) => invalid("give certificates or a fingerprint, not both"),
        (true, None) => Ok(None),
        (true, Some(f)) => {
            let (alg, hex) = match f.split_once(':') {
                Some((a, rest)) if a.to_ascii_lowercase().starts_with("sha") => {
                    parse_fingerprint(a, rest)
                }
                _ => {
                    return invalid(format!(
                        "fingerprint {f:?} must be ALG:HEX, ALG one of sha1, sha256, sha384, sha512"
                    ));
                }
            }
            .map_err(|e| AdminError::Invalid(format!("fingerprint: {e}")))?;
            Ok(Some(TrustConfig::Fingerprint {
                algorithm: alg,
                hex,
            }))
        }
        (false, None) => {
            let mut all = Vec::new();
            for (i, c) in input.certificates.iter().enumerate() {
                for b in parse_certificates(&format!("certificate {}", i + 1), c)? {
                    if !all.contains(&b) {
                        all.push(b);
                    }
                }
            }
            Ok(Some(TrustConfig::Certificates(all)))
        }
    }
}

/// `idp add`: every field by hand.
pub async fn idp_add(store: &dyn Store, input: IdpInput) -> Result<IdentityProvider> {
    let name = check_name("IdP name", input.name.as_deref().unwrap_or(""))?;
    let entity_id = check_entity_id("IdP entity ID", input.entity_id.as_deref().unwrap_or(""))?;
    let sso_url = check_http_url("SSO URL", input.sso_url.as_deref().unwrap_or(""))?;
    let Some(username) = input.username.as_deref() else {
        return invalid("the username claim is missing (--username-claim NAME, or NameID)");
    };
    let username = username_mapping(username)?;
    let Some(trust) = trust_of(&input)? else {
        return invalid(
            "the IdP needs a certificate (--cert) or a fingerprint (--fingerprint ALG:HEX)",
        );
    };
    let new = NewIdentityProvider {
        name,
        entity_id,
        sso_url,
        sso_binding: binding_of(
            "SSO binding",
            input.sso_binding.as_deref().unwrap_or("redirect"),
        )?,
        slo_url: opt_url("SLO URL", &input.slo_url)?,
        slo_response_url: opt_url("SLO response URL", &input.slo_response_url)?,
        slo_binding: binding_of(
            "SLO binding",
            input.slo_binding.as_deref().unwrap_or("redirect"),
        )?,
        username,
        trust,
        allow_sha1: input.allow_sha1.unwrap_or(false),
        name_id_format: input.name_id_format.clone().filter(|s| !s.is_empty()),
        authn_context: input.authn_context.clone().filter(|s| !s.is_empty()),
        endpoints: IdpEndpoints::default(),
    };
    // By hand, the IdP offers what was given: one location per service, for its binding.
    let mut new = new;
    new.endpoints.set_sso(new.sso_binding, &new.sso_url);
    if let Some(u) = &new.slo_url {
        new.endpoints
            .set_slo(new.slo_binding, u, new.slo_response_url.as_deref());
    }
    insert_idp(store, new).await
}

/// A SHA-1 fingerprint trusts by SHA-1: only for an IdP marked legacy (SHA-1 allowed).
fn check_trust_policy(trust: &TrustConfig, allow_sha1: bool) -> Result<()> {
    match trust {
        TrustConfig::Fingerprint { algorithm, .. } if algorithm == "sha1" && !allow_sha1 => {
            invalid(
                "a SHA-1 fingerprint is accepted only for an IdP that allows SHA-1 (--allow-sha1 on); \
             give a sha256 fingerprint, or the certificate itself",
            )
        }
        _ => Ok(()),
    }
}

async fn insert_idp(store: &dyn Store, new: NewIdentityProvider) -> Result<IdentityProvider> {
    check_trust_policy(&new.trust, new.allow_sha1)?;
    for other in store.idp_list().await? {
        if other.name == new.name {
            return Err(AdminError::Conflict(format!(
                "an identity provider named {:?} already exists",
                new.name
            )));
        }
        if other.entity_id == new.entity_id {
            return Err(AdminError::Conflict(format!(
                "identity provider {:?} already has entity ID {}",
                other.name, new.entity_id
            )));
        }
    }
    Ok(store.idp_insert(new).await?)
}

/// `idp import`: from metadata XML, with the username claim given (and optional overrides).
pub async fn idp_import(
    store: &dyn Store,
    metadata: &[u8],
    select_entity: Option<&str>,
    input: IdpInput,
) -> Result<IdentityProvider> {
    let name = check_name("IdP name", input.name.as_deref().unwrap_or(""))?;
    let Some(username) = input.username.as_deref() else {
        return invalid(
            "the username claim is missing (--username-claim NAME, or NameID): metadata does not say which claim names the agent",
        );
    };
    let username = username_mapping(username)?;
    let d = parse_idp_metadata(metadata, select_entity)
        .map_err(|e| AdminError::Invalid(format!("IdP metadata: {e}")))?;
    let sso_binding = match input.sso_binding.as_deref() {
        Some(b) => binding_of("SSO binding", b)?,
        None if d.sso_location(BINDING_REDIRECT).is_some() => Binding::Redirect,
        None => Binding::Post,
    };
    let uri = |b: Binding| {
        if b == Binding::Redirect {
            BINDING_REDIRECT
        } else {
            BINDING_POST
        }
    };
    let sso_url = match &input.sso_url {
        Some(u) => check_http_url("SSO URL", u)?,
        None => match d.sso_location(uri(sso_binding)) {
            Some(u) => check_http_url("SSO URL from metadata", u)?,
            None => {
                return invalid(format!(
                    "the metadata has no SingleSignOnService for the {} binding",
                    sso_binding.as_str()
                ));
            }
        },
    };
    let slo_binding = match input.slo_binding.as_deref() {
        Some(b) => binding_of("SLO binding", b)?,
        None if d.slo_endpoint(BINDING_REDIRECT).is_some() => Binding::Redirect,
        None => Binding::Post,
    };
    let slo = d.slo_endpoint(uri(slo_binding));
    let slo_url = match &input.slo_url {
        Some(_) => opt_url("SLO URL", &input.slo_url)?,
        None => slo
            .map(|e| check_http_url("SLO URL from metadata", &e.location))
            .transpose()?,
    };
    let slo_response_url = match &input.slo_response_url {
        Some(_) => opt_url("SLO response URL", &input.slo_response_url)?,
        None => slo
            .and_then(|e| e.response_location.as_deref())
            .map(|u| check_http_url("SLO response URL from metadata", u))
            .transpose()?,
    };
    let trust = match trust_of(&input)? {
        Some(t) => t,
        None => {
            TrustConfig::Certificates(d.signing_certificates.iter().map(|c| c.base64()).collect())
        }
    };
    // Every location the metadata offers, by binding (DESIGN §1): switching the binding later
    // switches to the IdP's own location for it.
    let mut endpoints = IdpEndpoints::default();
    for b in [Binding::Redirect, Binding::Post] {
        if let Some(u) = d.sso_location(uri(b)) {
            endpoints.set_sso(b, &check_http_url("SSO URL from metadata", u)?);
        }
        if let Some(e) = d.slo_endpoint(uri(b)) {
            let loc = check_http_url("SLO URL from metadata", &e.location)?;
            let resp = e
                .response_location
                .as_deref()
                .map(|u| check_http_url("SLO response URL from metadata", u))
                .transpose()?;
            endpoints.set_slo(b, &loc, resp.as_deref());
        }
    }
    // Locations given by hand override the metadata's for the binding in use.
    endpoints.set_sso(sso_binding, &sso_url);
    if let Some(u) = &slo_url {
        endpoints.set_slo(slo_binding, u, slo_response_url.as_deref());
    }
    let new = NewIdentityProvider {
        name,
        entity_id: check_entity_id("IdP entity ID from metadata", &d.entity_id)?,
        sso_url,
        sso_binding,
        slo_url,
        slo_response_url,
        slo_binding,
        username,
        trust,
        allow_sha1: input.allow_sha1.unwrap_or(false),
        name_id_format: input.name_id_format.clone().filter(|s| !s.is_empty()),
        authn_context: input.authn_context.clone().filter(|s| !s.is_empty()),
        endpoints,
    };
    insert_idp(store, new).await
}

pub async fn idp_find(store: &dyn Store, selector: &str) -> Result<IdentityProvider> {
    store
        .idp_list()
        .await?
        .into_iter()
        .find(|i| i.name == selector || i.entity_id == selector || i.id.0.to_string() == selector)
        .ok_or_else(|| AdminError::NotFound(format!("no identity provider has name, entity ID or ID {selector:?} (see `ssogate idp list`)")))
}

/// `idp set`: changes the given fields; certificates given replace the trusted set (rollover:
/// give the old and the new one).
pub async fn idp_set(
    store: &dyn Store,
    selector: &str,
    input: IdpInput,
) -> Result<IdentityProvider> {
    let mut idp = idp_find(store, selector).await?;
    if let Some(n) = &input.name {
        idp.name = check_name("IdP name", n)?;
    }
    if let Some(e) = &input.entity_id {
        idp.entity_id = check_entity_id("IdP entity ID", e)?;
    }
    // SSO: a new binding brings its own location (the one the IdP offers for it), unless a
    // location is given with it; a binding the IdP offers no location for is refused.
    let sso_binding = match &input.sso_binding {
        Some(b) => binding_of("SSO binding", b)?,
        None => idp.sso_binding,
    };
    match &input.sso_url {
        Some(u) => {
            idp.sso_url = check_http_url("SSO URL", u)?;
            idp.endpoints.set_sso(sso_binding, &idp.sso_url.clone());
        }
        None if sso_binding != idp.sso_binding => {
            let Some(u) = idp.endpoints.sso_location(sso_binding) else {
                return invalid(format!(
                    "identity provider {:?} offers single sign-on by the {} binding only; it has no {} location \
                     (give one with --sso-url URL, or import its metadata again)",
                    idp.name,
                    idp.endpoints.sso_bindings(),
                    sso_binding.as_str()
                ));
            };
            idp.sso_url = u.to_string();
        }
        None => {}
    }
    idp.sso_binding = sso_binding;
    // SLO: the same, with the response location that belongs to the binding.
    let slo_binding = match &input.slo_binding {
        Some(b) => binding_of("SLO binding", b)?,
        None => idp.slo_binding,
    };
    if input.slo_url.is_some() || input.slo_response_url.is_some() {
        if input.slo_url.is_some() {
            idp.slo_url = opt_url("SLO URL", &input.slo_url)?;
        }
        if input.slo_response_url.is_some() {
            idp.slo_response_url = opt_url("SLO response URL", &input.slo_response_url)?;
        }
        match &idp.slo_url {
            Some(u) => {
                let (u, r) = (u.clone(), idp.slo_response_url.clone());
                idp.endpoints.set_slo(slo_binding, &u, r.as_deref());
            }
            None => idp.endpoints.slo.retain(|e| e.binding != slo_binding),
        }
    } else if slo_binding != idp.slo_binding && idp.slo_url.is_some() {
        let Some(e) = idp.endpoints.slo_endpoint(slo_binding) else {
            return invalid(format!(
                "identity provider {:?} offers single logout by the {} binding only; it has no {} location \
                 (give one with --slo-url URL, or import its metadata again)",
                idp.name,
                idp.endpoints.slo_bindings(),
                slo_binding.as_str()
            ));
        };
        idp.slo_url = Some(e.location.clone());
        idp.slo_response_url = e.response_location.clone();
    }
    idp.slo_binding = slo_binding;
    if let Some(u) = &input.username {
        idp.username = username_mapping(u)?;
    }
    if let Some(t) = trust_of(&input)? {
        idp.trust = t;
    }
    if let Some(s) = input.allow_sha1 {
        idp.allow_sha1 = s;
    }
    if let Some(f) = &input.name_id_format {
        idp.name_id_format = Some(f.clone()).filter(|s| !s.is_empty());
    }
    if let Some(c) = &input.authn_context {
        idp.authn_context = Some(c.clone()).filter(|s| !s.is_empty());
    }
    check_trust_policy(&idp.trust, idp.allow_sha1)?;
    for other in store.idp_list().await? {
        if other.id != idp.id && (other.name == idp.name || other.entity_id == idp.entity_id) {
            return Err(AdminError::Conflict(format!(
                "identity provider {:?} already has that name or entity ID",
                other.name
            )));
        }
    }
    store.idp_update(&idp).await?;
    Ok(idp)
}

/// Tenant fields (`tenant add` / `tenant set`).
#[derive(Debug, Default, Clone)]
pub struct TenantInput {
    /// Replaces the list.
    pub login_domains: Option<Vec<String>>,
    /// Added to the list (after any replacement).
    pub add_login_domains: Vec<String>,
    /// Taken off the list.
    pub remove_login_domains: Vec<String>,
    pub sso_enabled: Option<bool>,
    /// IdP name ("" to clear).
    pub idp: Option<String>,
    pub slo_enabled: Option<bool>,
    pub idp_initiated: Option<bool>,
    pub strip_domain: Option<bool>,
    pub case_insensitive: Option<bool>,
}

fn check_domains(domains: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for d in domains {
        let d = d.trim().to_lowercase();
        let ok = !d.is_empty()
            && d.len() <= 253
            && d.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
            && !d.starts_with(['.', '-']);
        if !ok {
            return invalid(format!(
                "login domain {d:?} must be a DNS or NetBIOS domain name (letters, digits, '-', '.')"
            ));
        }
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

async fn apply_tenant(store: &dyn Store, t: &mut Tenant, input: &TenantInput) -> Result<()> {
    if let Some(d) = &input.login_domains {
        t.login_domains = check_domains(d)?;
    }
    for d in check_domains(&input.add_login_domains)? {
        if !t.login_domains.contains(&d) {
            t.login_domains.push(d);
        }
    }
    let remove = check_domains(&input.remove_login_domains)?;
    t.login_domains.retain(|d| !remove.contains(d));
    let others: Vec<Tenant> = store
        .tenant_list()
        .await?
        .into_iter()
        .filter(|o| o.id != t.id)
        .collect();
    for other in &others {
        if let Some(d) = other
            .login_domains
            .iter()
            .find(|d| t.login_domains.contains(d))
        {
            return Err(AdminError::Conflict(format!(
                "login domain {d:?} already belongs to tenant {:?}",
                other.name
            )));
        }
    }
    if let Some(i) = &input.idp {
        t.idp_id = if i.is_empty() {
            None
        } else {
            Some(idp_find(store, i).await?.id)
        };
    }
    if let Some(v) = input.sso_enabled {
        t.sso_enabled = v;
    }
    if let Some(v) = input.slo_enabled {
        t.slo_enabled = v;
    }
    if let Some(v) = input.idp_initiated {
        t.idp_initiated = v;
    }
    if let Some(v) = input.strip_domain {
        t.username_rule.strip_domain = v;
    }
    if let Some(v) = input.case_insensitive {
        t.username_rule.case_insensitive = v;
    }
    if t.sso_enabled && t.idp_id.is_none() {
        return invalid(format!(
            "tenant {:?}: SSO on needs an identity provider (--idp NAME)",
            t.name
        ));
    }
    if t.slo_enabled && !t.sso_enabled {
        return invalid(format!("tenant {:?}: single logout needs SSO on", t.name));
    }
    // DESIGN §1: an IdP shared by several tenants routes each identity by the domain it names,
    // so every tenant that shares it needs login domains (and no two share one: checked above).
    if let Some(idp) = t.idp_id
        && let Some(other) = others.iter().find(|o| o.idp_id == Some(idp))
    {
        let idp_name = store
            .idp_get(idp)
            .await?
            .map(|i| i.name)
            .unwrap_or_else(|| idp.to_string());
        if t.login_domains.is_empty() {
            return Err(AdminError::Conflict(format!(
                "identity provider {idp_name:?} is also used by tenant {:?}; a shared identity provider \
                 needs login domains on every tenant that uses it, so that each identity goes to one tenant: \
                 give tenant {:?} its domains (--login-domain DOMAIN, repeated)",
                other.name, t.name
            )));
        }
        if let Some(bare) = others
            .iter()
            .find(|o| o.idp_id == Some(idp) && o.login_domains.is_empty())
        {
            return Err(AdminError::Conflict(format!(
                "identity provider {idp_name:?} is also used by tenant {:?}, which has no login domains; \
                 a shared identity provider needs login domains on every tenant that uses it: first \
                 `ssogate tenant set {} --login-domain DOMAIN`",
                bare.name, bare.name
            )));
        }
    }
    Ok(())
}

pub async fn tenant_add(store: &dyn Store, name: &str, input: TenantInput) -> Result<Tenant> {
    let name = check_name("tenant name", name)?;
    if store.tenant_by_name(&name).await?.is_some() {
        return Err(AdminError::Conflict(format!(
            "a tenant named {name:?} already exists"
        )));
    }
    let mut t = Tenant {
        id: TenantId(0),
        name,
        login_domains: Vec::new(),
        sso_enabled: false,
        idp_id: None,
        slo_enabled: false,
        idp_initiated: false,
        username_rule: UsernameRule::default(),
    };
    apply_tenant(store, &mut t, &input).await?;
    Ok(store
        .tenant_insert(NewTenant {
            name: t.name,
            login_domains: t.login_domains,
            sso_enabled: t.sso_enabled,
            idp_id: t.idp_id,
            slo_enabled: t.slo_enabled,
            idp_initiated: t.idp_initiated,
            username_rule: t.username_rule,
        })
        .await?)
}

pub async fn tenant_find(store: &dyn Store, name: &str) -> Result<Tenant> {
    store.tenant_by_name(name).await?.ok_or_else(|| {
        AdminError::NotFound(format!(
            "no tenant named {name:?} (see `ssogate tenant list`)"
        ))
    })
}

pub async fn tenant_set(store: &dyn Store, name: &str, input: TenantInput) -> Result<Tenant> {
    let mut t = tenant_find(store, name).await?;
    let old_rule = t.username_rule;
    apply_tenant(store, &mut t, &input).await?;
    // A changed username rule changes every user's compared form: computed here, all of them
    // checked before anything is written.
    let mut renormalised = Vec::new();
    if t.username_rule != old_rule {
        let users = store.user_list(Some(t.id)).await?;
        let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        for u in &users {
            let norm = normalise(&u.username, t.username_rule).map_err(|e| {
                AdminError::Invalid(format!("under the new username rule, user {e}"))
            })?;
            if let Some(prev) = seen.insert(norm.clone(), u.username.clone()) {
                return Err(AdminError::Conflict(format!(
                    "under the new username rule, users {prev:?} and {:?} of tenant {:?} would have the same name",
                    u.username, t.name
                )));
            }
            renormalised.push((u.id, norm));
        }
    }
    store.tenant_update(&t, &renormalised).await?;
    Ok(t)
}

/// The implicit tenant, created on first use.
pub async fn ensure_default_tenant(store: &dyn Store) -> Result<Tenant> {
    if let Some(t) = store.tenant_by_name(DEFAULT_TENANT).await? {
        return Ok(t);
    }
    match tenant_add(store, DEFAULT_TENANT, TenantInput::default()).await {
        Ok(t) => Ok(t),
        // Another process created it in between.
        Err(AdminError::Conflict(_)) => tenant_find(store, DEFAULT_TENANT).await,
        Err(e) => Err(e),
    }
}

/// Argon2id hash (PHC string) of `password`.
pub fn hash_password(password: &str, rng: &dyn Rng) -> Result<Secret> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    if password.chars().count() < 8 {
        return invalid("the password has fewer than 8 characters");
    }
    if password.len() > 1024 {
        return invalid("the password is longer than 1024 bytes");
    }
    let salt =
        SaltString::encode_b64(&rng.bytes16()).map_err(|e| AdminError::Invalid(e.to_string()))?;
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| AdminError::Invalid(e.to_string()))?;
    Ok(Secret::new(hash.to_string()))
}

/// Whether `password` matches the stored hash (false for an unreadable hash).
pub fn verify_password(password: &str, hash: &Secret) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    match PasswordHash::new(hash.secret()) {
        Ok(h) => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// User fields (`user add` / `user set`).
#[derive(Debug, Default, Clone)]
pub struct UserInput {
    pub username: Option<String>,
    pub display_name: Option<String>,
    /// "" clears it.
    pub circuit_user: Option<String>,
    pub password: Option<Secret>,
    pub clear_password: bool,
    pub roles: Option<Vec<String>>,
}

fn roles_of(v: &[String]) -> Result<Vec<Role>> {
    let mut out = Vec::new();
    for r in v {
        let role = Role::parse(r.trim()).ok_or_else(|| {
            AdminError::Invalid(format!(
                "role {r:?} is not agent, tenant-manager or central-admin"
            ))
        })?;
        if !out.contains(&role) {
            out.push(role);
        }
    }
    if out.is_empty() {
        return invalid("a user needs at least one role");
    }
    out.sort();
    Ok(out)
}

/// A Circuit user and its compared form (RFC 8265 UsernameCaseMapped, as user names).
fn check_circuit(c: &str) -> Result<Option<(String, String)>> {
    let c = c.trim();
    if c.is_empty() {
        return Ok(None);
    }
    if c.len() > 320 || c.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
        return invalid(format!(
            "Circuit user {c:?} must be an e-mail address or URI without white space"
        ));
    }
    let norm = circuit_norm(c).map_err(|e| AdminError::Invalid(format!("Circuit user: {e}")))?;
    Ok(Some((c.to_string(), norm)))
}

pub async fn user_add(
    store: &dyn Store,
    rng: &dyn Rng,
    tenant: &str,
    input: UserInput,
) -> Result<User> {
    let t = tenant_find(store, tenant).await?;
    let username = input.username.unwrap_or_default();
    check_username(&username).map_err(AdminError::Invalid)?;
    let norm = normalise(&username, t.username_rule)
        .map_err(|e| AdminError::Invalid(format!("{e} (after the tenant's username rule)")))?;
    let circuit = check_circuit(input.circuit_user.as_deref().unwrap_or(""))?;
    let (circuit_user, circuit_user_norm) = circuit.unzip();
    let roles = roles_of(&input.roles.unwrap_or_else(|| vec!["agent".into()]))?;
    let password_hash = match &input.password {
        Some(p) => Some(hash_password(p.secret(), rng)?),
        None => None,
    };
    if let Some(u) = store.user_by_norm(t.id, &norm).await? {
        return Err(AdminError::Conflict(format!(
            "tenant {:?} already has user {:?}, which the username rule makes the same name",
            t.name, u.username
        )));
    }
    let display_name = input
        .display_name
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| username.clone());
    store
        .user_insert(NewUser {
            tenant_id: t.id,
            username,
            username_norm: norm,
            display_name,
            circuit_user,
            circuit_user_norm,
            password_hash,
            roles,
        })
        .await
        .map_err(|e| user_conflict(&t, e))
}

/// A store conflict on a user, said for the administrator.
fn user_conflict(t: &Tenant, e: StoreError) -> AdminError {
    match e {
        StoreError::Conflict(_) => AdminError::Conflict(format!(
            "tenant {:?} already has a user with that name or Circuit user",
            t.name
        )),
        other => AdminError::Store(other),
    }
}

pub async fn user_find(store: &dyn Store, tenant: &str, username: &str) -> Result<(Tenant, User)> {
    let t = tenant_find(store, tenant).await?;
    let norm = normalise(username, t.username_rule)
        .map_err(|e| AdminError::NotFound(format!("tenant {:?} has no user: {e}", t.name)))?;
    let u = store.user_by_norm(t.id, &norm).await?.ok_or_else(|| {
        AdminError::NotFound(format!(
            "tenant {:?} has no user {username:?} (see `ssogate user list`)",
            t.name
        ))
    })?;
    Ok((t, u))
}

pub async fn user_set(
    store: &dyn Store,
    rng: &dyn Rng,
    tenant: &str,
    username: &str,
    input: UserInput,
) -> Result<User> {
    let (t, mut u) = user_find(store, tenant, username).await?;
    if let Some(n) = &input.username {
        check_username(n).map_err(AdminError::Invalid)?;
        u.username = n.clone();
    }
    if let Some(d) = &input.display_name {
        if d.trim().is_empty() {
            return invalid("the display name is empty");
        }
        u.display_name = d.clone();
    }
    if let Some(c) = &input.circuit_user {
        u.circuit_user = check_circuit(c)?.map(|(c, _)| c);
    }
    if input.clear_password && input.password.is_some() {
        return invalid("give a new password or --no-password, not both");
    }
    if let Some(p) = &input.password {
        u.password_hash = Some(hash_password(p.secret(), rng)?);
    }
    if input.clear_password {
        u.password_hash = None;
    }
    if let Some(r) = &input.roles {
        let roles = roles_of(r)?;
        if u.roles.contains(&Role::CentralAdmin)
            && !roles.contains(&Role::CentralAdmin)
            && store.user_count_with_role(Role::CentralAdmin).await? <= 1
        {
            return invalid(
                "this is the last central administrator; give another user that role first",
            );
        }
        u.roles = roles;
    }
    let norm = normalise(&u.username, t.username_rule)
        .map_err(|e| AdminError::Invalid(format!("{e} (after the tenant's username rule)")))?;
    if let Some(other) = store.user_by_norm(t.id, &norm).await?
        && other.id != u.id
    {
        return Err(AdminError::Conflict(format!(
            "tenant {:?} already has user {:?}",
            t.name, other.username
        )));
    }
    let cnorm = match &u.circuit_user {
        Some(c) => {
            Some(circuit_norm(c).map_err(|e| AdminError::Invalid(format!("Circuit user: {e}")))?)
        }
        None => None,
    };
    store
        .user_update(&u, &norm, cnorm.as_deref())
        .await
        .map_err(|e| user_conflict(&t, e))?;
    Ok(u)
}

pub async fn user_rm(store: &dyn Store, tenant: &str, username: &str) -> Result<User> {
    let (_, u) = user_find(store, tenant, username).await?;
    if u.roles.contains(&Role::CentralAdmin)
        && store.user_count_with_role(Role::CentralAdmin).await? <= 1
    {
        return invalid(
            "this is the last central administrator; give another user that role first",
        );
    }
    store.user_delete(u.id).await?;
    Ok(u)
}

/// On first start: the default tenant, and a central administrator `admin` with a one-time
/// password (returned once, never stored in clear) when there is none.
pub async fn bootstrap(store: &Arc<dyn Store>, rng: &dyn Rng) -> Result<Option<(String, String)>> {
    ensure_default_tenant(store.as_ref()).await?;
    if store.user_count_with_role(Role::CentralAdmin).await? > 0 {
        return Ok(None);
    }
    let password = rng.token();
    let input = UserInput {
        username: Some("admin".into()),
        display_name: Some("Central administrator".into()),
        password: Some(Secret::new(password.clone())),
        roles: Some(vec!["central-admin".into()]),
        ..Default::default()
    };
    match user_add(store.as_ref(), rng, DEFAULT_TENANT, input).await {
        Ok(u) => Ok(Some((u.username, password))),
        Err(AdminError::Conflict(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_entity_ids() {
        assert_eq!(
            check_http_url("x", "https://cc.example.com/agentportal/").unwrap(),
            "https://cc.example.com/agentportal"
        );
        assert!(check_http_url("x", "ftp://a").is_err());
        assert!(check_http_url("x", "https://a/b?c").is_err());
        assert!(check_http_url("x", "https:///b").is_err());
        assert!(check_entity_id("x", "urn:example:idp").is_ok());
        assert!(check_entity_id("x", "no-scheme").is_err());
        assert!(check_entity_id("x", "").is_err());
    }
}
