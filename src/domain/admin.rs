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

/// Why an administrative operation changed nothing. `field` names the input at fault (the JSON
/// API's field name; the Web Manager shows the message beside it).
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{message}")]
    Invalid {
        field: Option<&'static str>,
        message: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict {
        field: Option<&'static str>,
        message: String,
    },
    /// The object changed since the version the edit was based on.
    #[error("{0}")]
    Stale(String),
    #[error("{0}")]
    Store(StoreError),
}

impl AdminError {
    /// The same error, blamed on `field` unless it already names one.
    pub fn in_field(self, f: &'static str) -> AdminError {
        match self {
            AdminError::Invalid {
                field: None,
                message,
            } => AdminError::Invalid {
                field: Some(f),
                message,
            },
            AdminError::Conflict {
                field: None,
                message,
            } => AdminError::Conflict {
                field: Some(f),
                message,
            },
            other => other,
        }
    }

    /// The input field at fault, if one is.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            AdminError::Invalid { field, .. } | AdminError::Conflict { field, .. } => *field,
            _ => None,
        }
    }

    pub fn conflict(message: impl Into<String>) -> AdminError {
        AdminError::Conflict {
            field: None,
            message: message.into(),
        }
    }
}

/// `map_err` helper: blame `field`.
pub fn at(field: &'static str) -> impl Fn(AdminError) -> AdminError {
    move |e| e.in_field(field)
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => AdminError::conflict(m),
            StoreError::Stale(m) => AdminError::Stale(m),
            other => AdminError::Store(other),
        }
    }
}

pub type Result<T> = std::result::Result<T, AdminError>;

fn bad(m: impl Into<String>) -> AdminError {
    AdminError::Invalid {
        field: None,
        message: m.into(),
    }
}

fn invalid<T>(m: impl Into<String>) -> Result<T> {
    Err(bad(m))
}

fn invalid_in<T>(field: &'static str, m: impl Into<String>) -> Result<T> {
    Err(bad(m).in_field(field))
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
            .map_err(|e| bad(format!("{field}: not a PEM certificate ({e})")))?;
        for c in stack {
            let der = c.to_der().map_err(|e| bad(format!("{field}: {e}")))?;
            out.push(
                crate::saml::xmldsig::TrustedCertificate::from_der(&der)
                    .map_err(|e| bad(format!("{field}: {e}")))?
                    .base64(),
            );
        }
    } else {
        let c = crate::saml::xmldsig::TrustedCertificate::from_base64(text.trim())
            .map_err(|e| bad(format!("{field}: {e}")))?;
        out.push(c.base64());
    }
    if out.is_empty() {
        return invalid(format!("{field}: no certificate found"));
    }
    Ok(out)
}

/// SP certificate and key: both or neither, and the key must belong to the certificate.
fn check_sp_keypair(cert_pem: &str, key_pem: &str) -> Result<()> {
    let cert = openssl::x509::X509::from_pem(cert_pem.as_bytes()).map_err(|_| {
        bad("this is not a PEM certificate (-----BEGIN CERTIFICATE-----)").in_field("certificate")
    })?;
    if key_pem.contains("PUBLIC KEY-----") {
        return invalid_in(
            "private_key",
            "this is a public key: the certificate already carries it; give its private key",
        );
    }
    let key = openssl::pkey::PKey::private_key_from_pem(key_pem.as_bytes()).map_err(|_| {
        bad("this is not a PEM private key (-----BEGIN PRIVATE KEY-----)").in_field("private_key")
    })?;
    let public = cert
        .public_key()
        .map_err(|e| bad(format!("SP certificate: {e}")).in_field("certificate"))?;
    if !public.public_eq(&key) {
        return invalid_in(
            "private_key",
            "the SP private key does not belong to the SP certificate",
        );
    }
    crate::saml::xmldsig::SigningKey::from_pem(key_pem.as_bytes())
        .map_err(|e| bad(format!("SP private key: {e}")).in_field("private_key"))?;
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
    let fail = |e: openssl::error::ErrorStack| bad(format!("cannot generate a key: {e}"));
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
    let cert =
        String::from_utf8(b.build().to_pem().map_err(fail)?).map_err(|e| bad(e.to_string()))?;
    let key_pem = String::from_utf8(key.private_key_to_pem_pkcs8().map_err(fail)?)
        .map_err(|e| bad(e.to_string()))?;
    Ok((cert, Secret::new(key_pem)))
}

/// What `sp add` and `sp set` take (for `sp set`, absent fields stay as they are).
#[derive(Debug, Default)]
pub struct SpInput {
    pub host_url: String,
    pub entity_id: Option<String>,
    pub certificate_pem: Option<String>,
    pub private_key_pem: Option<Secret>,
    pub generate_key: bool,
    /// `sp set` only: take the key pair away (requests go unsigned).
    pub remove_key: bool,
    /// Certificate rollover (`sp set` only): the next certificate and key, given or generated;
    /// published beside the current one until promoted.
    pub next_certificate_pem: Option<String>,
    pub next_private_key_pem: Option<Secret>,
    pub generate_next_key: bool,
    /// The next certificate and key become the current ones.
    pub promote_next: bool,
    /// The next certificate is dropped.
    pub drop_next: bool,
    /// The version the edit is based on (`None`: whatever is stored).
    pub version: Option<i64>,
}

/// The certificate and key an input asks for: `Some(None)` for none, `None` for "unchanged".
fn sp_keys(
    input: &SpInput,
    host_url: &str,
    rng: &dyn Rng,
) -> Result<Option<(Option<String>, Option<Secret>)>> {
    let given = |s: &Option<String>| s.as_deref().is_some_and(|v| !v.trim().is_empty());
    let cert = given(&input.certificate_pem);
    let key = input
        .private_key_pem
        .as_ref()
        .is_some_and(|k| !k.secret().trim().is_empty());
    if input.generate_key && (cert || key) {
        return invalid_in(
            "certificate",
            "give either a certificate and key, or Generate, not both",
        );
    }
    if input.remove_key && (cert || key || input.generate_key) {
        return invalid_in("certificate", "give a new key pair or remove it, not both");
    }
    match (cert, key) {
        (true, true) => {
            let (c, k) = (
                input.certificate_pem.clone().unwrap_or_default(),
                input
                    .private_key_pem
                    .clone()
                    .unwrap_or_else(|| Secret::new(String::new())),
            );
            check_sp_keypair(&c, k.secret())?;
            Ok(Some((Some(c), Some(k))))
        }
        (true, false) => invalid_in(
            "private_key",
            "a certificate needs its private key (or choose Generate)",
        ),
        (false, true) => invalid_in("certificate", "a private key needs its certificate"),
        (false, false) if input.generate_key => {
            let cn = host_url
                .split("://")
                .nth(1)
                .unwrap_or(host_url)
                .split('/')
                .next()
                .unwrap_or("ssogate")
                .to_string();
            let (c, k) = generate_sp_keypair(&cn, rng)?;
            Ok(Some((Some(c), Some(k))))
        }
        (false, false) if input.remove_key => Ok(Some((None, None))),
        (false, false) => Ok(None),
    }
}

/// No other SP may have the same entity ID or host URL.
fn check_sp_unique(
    existing: &[ServiceProvider],
    me: Option<SpId>,
    entity_id: &str,
    host_url: &str,
) -> Result<()> {
    let others = || existing.iter().filter(|s| Some(s.id) != me);
    if let Some(s) = others().find(|s| s.host_url == host_url) {
        return Err(AdminError::conflict(format!(
            "service provider {} already has host URL {host_url}",
            s.id
        ))
        .in_field("host_url"));
    }
    if let Some(s) = others().find(|s| s.entity_id == entity_id) {
        return Err(AdminError::conflict(format!(
            "service provider {} ({}) already has entity ID {entity_id}",
            s.id, s.host_url
        ))
        .in_field("entity_id"));
    }
    Ok(())
}

fn check_version(what: &str, stored: i64, expected: Option<i64>) -> Result<()> {
    match expected {
        Some(v) if v != stored => Err(AdminError::Stale(format!(
            "the {what} was changed since it was read (version {v}, now {stored})"
        ))),
        _ => Ok(()),
    }
}

pub async fn sp_add(store: &dyn Store, rng: &dyn Rng, input: SpInput) -> Result<ServiceProvider> {
    let host_url = check_http_url("host URL", &input.host_url).map_err(at("host_url"))?;
    let entity_id = match input.entity_id.as_deref().map(str::trim) {
        None | Some("") => host_url.clone(),
        Some(e) => e.to_string(),
    };
    let entity_id = check_entity_id("entity ID", &entity_id).map_err(at("entity_id"))?;
    let (certificate_pem, private_key_pem) =
        sp_keys(&input, &host_url, rng)?.unwrap_or((None, None));
    check_sp_unique(&store.sp_list().await?, None, &entity_id, &host_url)?;
    Ok(store
        .sp_insert(NewServiceProvider {
            entity_id,
            host_url,
            certificate_pem,
            private_key_pem,
        })
        .await?)
}

/// `sp set`: host URL, entity ID (empty: the host URL), key pair (given, generated or removed).
pub async fn sp_set(
    store: &dyn Store,
    rng: &dyn Rng,
    selector: &str,
    input: SpInput,
) -> Result<ServiceProvider> {
    let mut sp = sp_find(store, selector).await?;
    check_version("service provider", sp.version, input.version)?;
    if !input.host_url.trim().is_empty() {
        sp.host_url = check_http_url("host URL", &input.host_url).map_err(at("host_url"))?;
    }
    if let Some(e) = input.entity_id.as_deref() {
        let e = if e.trim().is_empty() {
            sp.host_url.clone()
        } else {
            e.to_string()
        };
        sp.entity_id = check_entity_id("entity ID", &e).map_err(at("entity_id"))?;
    }
    if let Some((c, k)) = sp_keys(&input, &sp.host_url, rng)? {
        sp.certificate_pem = c;
        sp.private_key_pem = k;
    }
    // Certificate rollover: the next pair first (given or generated), then a promotion.
    let next = SpInput {
        certificate_pem: input.next_certificate_pem.clone(),
        private_key_pem: input.next_private_key_pem.clone(),
        generate_key: input.generate_next_key,
        ..Default::default()
    };
    if let Some((c, k)) = sp_keys(&next, &sp.host_url, rng).map_err(|e| match e {
        AdminError::Invalid {
            field: Some("certificate"),
            message,
        } => AdminError::Invalid {
            field: Some("next_certificate"),
            message,
        },
        AdminError::Invalid {
            field: Some("private_key"),
            message,
        } => AdminError::Invalid {
            field: Some("next_private_key"),
            message,
        },
        e => e,
    })? {
        sp.next_certificate_pem = c;
        sp.next_private_key_pem = k;
    }
    if input.drop_next {
        sp.next_certificate_pem = None;
        sp.next_private_key_pem = None;
    }
    if input.promote_next {
        let (Some(c), Some(k)) = (
            sp.next_certificate_pem.take(),
            sp.next_private_key_pem.take(),
        ) else {
            return invalid_in(
                "promote_next",
                "there is no next certificate to promote: add one first (and give the IdPs the metadata that carries it)",
            );
        };
        sp.certificate_pem = Some(c);
        sp.private_key_pem = Some(k);
    }
    check_sp_unique(
        &store.sp_list().await?,
        Some(sp.id),
        &sp.entity_id,
        &sp.host_url,
    )?;
    store.sp_update(&sp).await?;
    sp.version += 1;
    Ok(sp)
}

/// `sp rm`: never the last one (nothing could sign in any more).
pub async fn sp_rm(store: &dyn Store, selector: &str) -> Result<ServiceProvider> {
    let sp = sp_find(store, selector).await?;
    if store.sp_list().await?.len() <= 1 {
        return Err(AdminError::conflict(format!(
            "service provider {} is the only one: without it no agent can sign in; add another first",
            sp.host_url
        )));
    }
    store.sp_delete(sp.id).await?;
    Ok(sp)
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
                .map_err(|e| bad(format!("stored SP certificate: {e}")))?,
        ),
        None => None,
    };
    let next = match &sp.next_certificate_pem {
        Some(pem) => Some(
            crate::saml::xmldsig::TrustedCertificate::from_any(pem.as_bytes())
                .map_err(|e| bad(format!("stored next SP certificate: {e}")))?,
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
        next_certificate: next.as_ref(),
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
    /// Where the IdP publishes its metadata ("" to clear); kept for the periodic refresh to come.
    pub metadata_url: Option<String>,
    /// The version the edit is based on (`None`: whatever is stored).
    pub version: Option<i64>,
}

/// The IdP's name when none is given: its entity ID's host (`idp.example.com`), else its last
/// path segment, made to fit the name rule.
fn default_idp_name(entity_id: &str) -> String {
    let rest = entity_id.split_once("://").map_or(entity_id, |(_, r)| r);
    let host = rest.split(['/', ':']).next().unwrap_or("");
    let base = if host.is_empty() {
        entity_id.rsplit([':', '/']).next().unwrap_or("")
    } else {
        host
    };
    let name: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() { "idp".into() } else { name }
}

fn idp_name(input: &IdpInput, entity_id: &str) -> Result<String> {
    match input.name.as_deref().map(str::trim) {
        None | Some("") => Ok(default_idp_name(entity_id)),
        Some(n) => check_name("IdP name", n).map_err(at("name")),
    }
}

fn username_mapping(s: &str) -> Result<UsernameMapping> {
    let s = s.trim();
    if s.is_empty() {
        return invalid_in(
            "username_mapping",
            "the username mapping is empty: give a claim (attribute) name, or NameID",
        );
    }
    if s.len() > 1024 || s.chars().any(|c| c.is_control()) {
        return invalid_in(
            "username_mapping",
            "the username mapping must be at most 1024 characters, without control characters",
        );
    }
    if s.eq_ignore_ascii_case("nameid") {
        return Ok(UsernameMapping::NameId);
    }
    Ok(UsernameMapping::Attribute(s.to_string()))
}

fn binding_of(field: &'static str, s: &str) -> Result<Binding> {
    Binding::parse(s).ok_or_else(|| {
        bad(format!(
            "{} {s:?} is not redirect or post",
            field.replace('_', " ")
        ))
        .in_field(field)
    })
}

fn opt_url(field: &'static str, v: &Option<String>) -> Result<Option<String>> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(u) => check_http_url(
            &field
                .replace('_', " ")
                .replace("url", "URL")
                .replace("slo", "SLO"),
            u,
        )
        .map(Some)
        .map_err(at(field)),
    }
}

fn trust_of(input: &IdpInput) -> Result<Option<TrustConfig>> {
    match (input.certificates.is_empty(), &input.fingerprint) {
        (false, Some(_)) => invalid_in(
            "fingerprint",
            "give certificates or a fingerprint, not both",
        ),
        (true, None) => Ok(None),
        (true, Some(f)) => {
            let (alg, hex) = match f.split_once(':') {
                Some((a, rest)) if a.to_ascii_lowercase().starts_with("sha") => {
                    parse_fingerprint(a, rest)
                }
                _ => {
                    return invalid_in("fingerprint", format!(
                        "fingerprint {f:?} must be ALG:HEX, ALG one of sha1, sha256, sha384, sha512"
                    ));
                }
            }
            .map_err(|e| bad(format!("fingerprint: {e}")).in_field("fingerprint"))?;
            Ok(Some(TrustConfig::Fingerprint {
                algorithm: alg,
                hex,
            }))
        }
        (false, None) => {
            let mut all = Vec::new();
            for (i, c) in input.certificates.iter().enumerate() {
                for b in parse_certificates(&format!("certificate {}", i + 1), c)
                    .map_err(at("certificates"))?
                {
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
    let entity_id = check_entity_id("IdP entity ID", input.entity_id.as_deref().unwrap_or(""))
        .map_err(at("entity_id"))?;
    let name = idp_name(&input, &entity_id)?;
    let sso_url =
        check_http_url("SSO URL", input.sso_url.as_deref().unwrap_or("")).map_err(at("sso_url"))?;
    let Some(username) = input.username.as_deref() else {
        return invalid_in(
            "username_mapping",
            "the username mapping is missing (--username-claim NAME, or NameID)",
        );
    };
    let username = username_mapping(username)?;
    let Some(trust) = trust_of(&input)? else {
        return invalid_in(
            "certificates",
            "the IdP needs a certificate (--cert) or a fingerprint (--fingerprint ALG:HEX)",
        );
    };
    let metadata_url = opt_url("metadata_url", &input.metadata_url)?;
    let new = NewIdentityProvider {
        name,
        entity_id,
        sso_url,
        sso_binding: binding_of(
            "sso_binding",
            input.sso_binding.as_deref().unwrap_or("redirect"),
        )?,
        slo_url: opt_url("slo_url", &input.slo_url)?,
        slo_response_url: opt_url("slo_response_url", &input.slo_response_url)?,
        slo_binding: binding_of(
            "slo_binding",
            input.slo_binding.as_deref().unwrap_or("redirect"),
        )?,
        username,
        trust,
        allow_sha1: input.allow_sha1.unwrap_or(false),
        name_id_format: input.name_id_format.clone().filter(|s| !s.is_empty()),
        authn_context: input.authn_context.clone().filter(|s| !s.is_empty()),
        endpoints: IdpEndpoints::default(),
        metadata_url,
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
            invalid_in(
                "fingerprint",
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
            return Err(AdminError::conflict(format!(
                "an identity provider named {:?} already exists",
                new.name
            ))
            .in_field("name"));
        }
        if other.entity_id == new.entity_id {
            return Err(AdminError::conflict(format!(
                "identity provider {:?} already has entity ID {}",
                other.name, new.entity_id
            ))
            .in_field("entity_id"));
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
    let Some(username) = input.username.as_deref() else {
        return invalid_in(
            "username_mapping",
            "the username mapping is missing (--username-claim NAME, or NameID): metadata does not say which claim names the agent",
        );
    };
    let username = username_mapping(username)?;
    let d = parse_idp_metadata(metadata, select_entity)
        .map_err(|e| bad(format!("IdP metadata: {e}")).in_field("metadata"))?;
    let name = idp_name(&input, &d.entity_id)?;
    let metadata_url = opt_url("metadata_url", &input.metadata_url)?;
    let sso_binding = match input.sso_binding.as_deref() {
        Some(b) => binding_of("sso_binding", b)?,
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
        Some(u) => check_http_url("SSO URL", u).map_err(at("sso_url"))?,
        None => match d.sso_location(uri(sso_binding)) {
            Some(u) => check_http_url("SSO URL from metadata", u)?,
            None => {
                return invalid_in(
                    "sso_binding",
                    format!(
                        "the metadata has no SingleSignOnService for the {} binding",
                        sso_binding.as_str()
                    ),
                );
            }
        },
    };
    let slo_binding = match input.slo_binding.as_deref() {
        Some(b) => binding_of("slo_binding", b)?,
        None if d.slo_endpoint(BINDING_REDIRECT).is_some() => Binding::Redirect,
        None => Binding::Post,
    };
    let slo = d.slo_endpoint(uri(slo_binding));
    let slo_url = match &input.slo_url {
        Some(_) => opt_url("slo_url", &input.slo_url)?,
        None => slo
            .map(|e| check_http_url("SLO URL from metadata", &e.location))
            .transpose()?,
    };
    let slo_response_url = match &input.slo_response_url {
        Some(_) => opt_url("slo_response_url", &input.slo_response_url)?,
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
        metadata_url,
    };
    insert_idp(store, new).await
}

/// What an import would take from metadata, shown before anything is added.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IdpPreview {
    /// The entity chosen (None: the metadata describes several; choose one of `entities`).
    pub entity_id: Option<String>,
    /// Every IdP entity of the metadata (one for a plain EntityDescriptor).
    pub entities: Vec<String>,
    pub sso: Vec<PreviewEndpoint>,
    pub slo: Vec<PreviewEndpoint>,
    pub certificates: Vec<super::audit::CertView>,
    pub claim_types: Vec<String>,
    pub name_id_formats: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PreviewEndpoint {
    /// `redirect`, `post`, or the binding URI when it is another one.
    pub binding: String,
    pub location: String,
    pub response_location: Option<String>,
}

fn preview_endpoint(e: &crate::saml::metadata::idp::Endpoint) -> PreviewEndpoint {
    PreviewEndpoint {
        binding: match e.binding.as_str() {
            BINDING_POST => "post".into(),
            BINDING_REDIRECT => "redirect".into(),
            other => other.to_string(),
        },
        location: e.location.clone(),
        response_location: e.response_location.clone(),
    }
}

/// The largest IdP metadata the Web Manager and the API import (a file, pasted text or a URL;
/// the CLI reads a federation's aggregate of any size).
pub const MAX_METADATA_BYTES: usize = 1024 * 1024;

pub fn check_metadata_size(metadata: &[u8]) -> Result<()> {
    if metadata.len() > MAX_METADATA_BYTES {
        return invalid_in(
            "metadata",
            format!(
                "the metadata has {} bytes; at most {MAX_METADATA_BYTES} (1 MiB) are imported",
                metadata.len()
            ),
        );
    }
    Ok(())
}

/// The preview of an import (nothing is stored).
pub fn idp_preview(
    metadata: &[u8],
    select_entity: Option<&str>,
    now: crate::saml::UnixTime,
) -> Result<IdpPreview> {
    use crate::saml::metadata::idp::MetadataError;
    check_metadata_size(metadata)?;
    let d = match parse_idp_metadata(metadata, select_entity) {
        Ok(d) => d,
        Err(MetadataError::Ambiguous { candidates }) => {
            return Ok(IdpPreview {
                entity_id: None,
                entities: candidates,
                sso: Vec::new(),
                slo: Vec::new(),
                certificates: Vec::new(),
                claim_types: Vec::new(),
                name_id_formats: Vec::new(),
            });
        }
        Err(e @ MetadataError::NotFound { .. }) => {
            return invalid_in("entity", format!("IdP metadata: {e}"));
        }
        Err(e) => return invalid_in("metadata", format!("IdP metadata: {e}")),
    };
    let entities = match select_entity {
        Some(_) => match parse_idp_metadata(metadata, None) {
            Err(MetadataError::Ambiguous { candidates }) => candidates,
            _ => vec![d.entity_id.clone()],
        },
        None => vec![d.entity_id.clone()],
    };
    Ok(IdpPreview {
        entity_id: Some(d.entity_id.clone()),
        entities,
        sso: d.sso.iter().map(preview_endpoint).collect(),
        slo: d.slo.iter().map(preview_endpoint).collect(),
        certificates: d
            .signing_certificates
            .iter()
            .filter_map(|c| super::audit::CertView::of(&c.base64(), now))
            .collect(),
        claim_types: d.claim_types,
        name_id_formats: d.name_id_formats,
    })
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
    check_version("identity provider", idp.version, input.version)?;
    if let Some(e) = &input.entity_id {
        idp.entity_id = check_entity_id("IdP entity ID", e).map_err(at("entity_id"))?;
    }
    if input.name.is_some() {
        idp.name = idp_name(&input, &idp.entity_id)?;
    }
    if input.metadata_url.is_some() {
        idp.metadata_url = opt_url("metadata_url", &input.metadata_url)?;
    }
    // SSO: a new binding brings its own location (the one the IdP offers for it), unless a
    // location is given with it; a binding the IdP offers no location for is refused.
    let sso_binding = match &input.sso_binding {
        Some(b) => binding_of("sso_binding", b)?,
        None => idp.sso_binding,
    };
    match &input.sso_url {
        Some(u) => {
            idp.sso_url = check_http_url("SSO URL", u).map_err(at("sso_url"))?;
            idp.endpoints.set_sso(sso_binding, &idp.sso_url.clone());
        }
        None if sso_binding != idp.sso_binding => {
            let Some(u) = idp.endpoints.sso_location(sso_binding) else {
                return invalid_in(
                    "sso_binding",
                    format!(
                        "identity provider {:?} offers single sign-on by the {} binding only; it has no {} location \
                     (give one with --sso-url URL, or import its metadata again)",
                        idp.name,
                        idp.endpoints.sso_bindings(),
                        sso_binding.as_str()
                    ),
                );
            };
            idp.sso_url = u.to_string();
        }
        None => {}
    }
    idp.sso_binding = sso_binding;
    // SLO: the same, with the response location that belongs to the binding.
    let slo_binding = match &input.slo_binding {
        Some(b) => binding_of("slo_binding", b)?,
        None => idp.slo_binding,
    };
    if input.slo_url.is_some() || input.slo_response_url.is_some() {
        if input.slo_url.is_some() {
            idp.slo_url = opt_url("slo_url", &input.slo_url)?;
        }
        if input.slo_response_url.is_some() {
            idp.slo_response_url = opt_url("slo_response_url", &input.slo_response_url)?;
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
            return invalid_in(
                "slo_binding",
                format!(
                    "identity provider {:?} offers single logout by the {} binding only; it has no {} location \
                 (give one with --slo-url URL, or import its metadata again)",
                    idp.name,
                    idp.endpoints.slo_bindings(),
                    slo_binding.as_str()
                ),
            );
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
        if other.id != idp.id && other.name == idp.name {
            return Err(AdminError::conflict(format!(
                "an identity provider named {:?} already exists",
                other.name
            ))
            .in_field("name"));
        }
        if other.id != idp.id && other.entity_id == idp.entity_id {
            return Err(AdminError::conflict(format!(
                "identity provider {:?} already has entity ID {}",
                other.name, idp.entity_id
            ))
            .in_field("entity_id"));
        }
    }
    store.idp_update(&idp).await?;
    idp.version += 1;
    Ok(idp)
}

/// `idp rm`: refused while a tenant uses it (the store names them).
pub async fn idp_rm(store: &dyn Store, selector: &str) -> Result<IdentityProvider> {
    let idp = idp_find(store, selector).await?;
    store.idp_delete(idp.id).await?;
    Ok(idp)
}

/// Tenant fields (`tenant add` / `tenant set`).
#[derive(Debug, Default, Clone)]
pub struct TenantInput {
    /// What agents read ("Sign in to Acme"); "" for the tenant's name.
    pub display_name: Option<String>,
    /// The version the edit is based on (`None`: whatever is stored).
    pub version: Option<i64>,
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
            return invalid_in(
                "login_domains",
                format!(
                    "login domain {d:?} must be a DNS or NetBIOS domain name (letters, digits, '-', '.')"
                ),
            );
        }
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

async fn apply_tenant(store: &dyn Store, t: &mut Tenant, input: &TenantInput) -> Result<()> {
    check_version("tenant", t.version, input.version)?;
    if let Some(d) = &input.display_name {
        let d = d.trim();
        if d.chars().count() > 100 || d.chars().any(|c| c.is_control()) {
            return invalid_in(
                "display_name",
                "the display name must be at most 100 characters, without control characters",
            );
        }
        t.display_name = d.to_string();
    }
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
            return Err(AdminError::conflict(format!(
                "login domain {d:?} already belongs to tenant {:?}",
                other.name
            ))
            .in_field("login_domains"));
        }
    }
    if let Some(i) = &input.idp {
        t.idp_id = if i.is_empty() {
            None
        } else {
            Some(
                idp_find(store, i)
                    .await
                    .map_err(|e| match e {
                        AdminError::NotFound(m) => bad(m).in_field("idp"),
                        e => e,
                    })?
                    .id,
            )
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
        return invalid_in(
            "idp",
            format!(
                "tenant {:?}: single sign-on needs an identity provider (--idp NAME)",
                t.name
            ),
        );
    }
    if t.slo_enabled && !t.sso_enabled {
        return invalid_in(
            "slo_enabled",
            format!("tenant {:?}: single logout needs SSO on", t.name),
        );
    }
    // Single logout sends a LogoutRequest to the IdP's SLO URL: without one, "on" would quietly
    // be a local logout.
    if t.slo_enabled
        && let Some(idp) = t.idp_id
        && let Some(i) = store.idp_get(idp).await?
        && i.slo_url.is_none()
    {
        return invalid_in(
            "slo_enabled",
            format!(
                "identity provider {:?} has no SLO URL: give it one (idp set {} --slo-url URL) before turning single logout on",
                i.name, i.name
            ),
        );
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
            return Err(AdminError::Conflict {
                field: Some("login_domains"),
                message: format!(
                    "identity provider {idp_name:?} is also used by tenant {:?}; a shared identity provider \
                 needs login domains on every tenant that uses it, so that each identity goes to one tenant: \
                 give tenant {:?} its domains (--login-domain DOMAIN, repeated)",
                    other.name, t.name
                ),
            });
        }
        if let Some(bare) = others
            .iter()
            .find(|o| o.idp_id == Some(idp) && o.login_domains.is_empty())
        {
            return Err(AdminError::Conflict {
                field: Some("idp"),
                message: format!(
                    "identity provider {idp_name:?} is also used by tenant {:?}, which has no login domains; \
                 a shared identity provider needs login domains on every tenant that uses it: first \
                 `ssogate tenant set {} --login-domain DOMAIN`",
                    bare.name, bare.name
                ),
            });
        }
    }
    Ok(())
}

pub async fn tenant_add(store: &dyn Store, name: &str, input: TenantInput) -> Result<Tenant> {
    let name = check_name("tenant name", name).map_err(at("name"))?;
    if store.tenant_by_name(&name).await?.is_some() {
        return Err(
            AdminError::conflict(format!("a tenant named {name:?} already exists"))
                .in_field("name"),
        );
    }
    let mut t = Tenant {
        id: TenantId(0),
        name,
        display_name: String::new(),
        version: 0,
        login_domains: Vec::new(),
        sso_enabled: false,
        idp_id: None,
        slo_enabled: false,
        idp_initiated: false,
        username_rule: UsernameRule::default(),
    };
    apply_tenant(
        store,
        &mut t,
        &TenantInput {
            version: None,
            ..input
        },
    )
    .await?;
    Ok(store
        .tenant_insert(NewTenant {
            name: t.name,
            display_name: t.display_name,
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
            let norm = normalise(&u.username, t.username_rule)
                .map_err(|e| bad(format!("under the new username rule, user {e}")))?;
            if let Some(prev) = seen.insert(norm.clone(), u.username.clone()) {
                return Err(AdminError::conflict(format!(
                    "under the new username rule, users {prev:?} and {:?} of tenant {:?} would have the same name",
                    u.username, t.name
                )));
            }
            renormalised.push((u.id, norm));
        }
    }
    store.tenant_update(&t, &renormalised).await?;
    t.version += 1;
    Ok(t)
}

/// `tenant rm`: refused while it has users (and never `default`).
pub async fn tenant_rm(store: &dyn Store, name: &str) -> Result<Tenant> {
    let t = tenant_find(store, name).await?;
    if t.name == DEFAULT_TENANT {
        return Err(AdminError::conflict(
            "the default tenant cannot be deleted: it is the home of the central administrators",
        ));
    }
    store.tenant_delete(t.id).await.map_err(|e| match e {
        StoreError::Conflict(m) => AdminError::conflict(format!("tenant {:?}: {m}", t.name)),
        e => e.into(),
    })?;
    Ok(t)
}

/// The stored `multi_tenant` switch (seeded from the configuration on first start).
pub const SETTING_MULTI_TENANT: &str = "multi_tenant";

/// The stored `admin_require_totp` switch (seeded from the configuration on first start).
pub const SETTING_REQUIRE_TOTP: &str = "admin_require_totp";

/// Whether the service runs several tenants: the stored setting, else `seed`.
pub async fn multi_tenant(store: &dyn Store, seed: bool) -> Result<bool> {
    setting_bool(store, SETTING_MULTI_TENANT, seed).await
}

/// A stored on/off setting, else `seed`.
pub async fn setting_bool(store: &dyn Store, key: &str, seed: bool) -> Result<bool> {
    Ok(match store.setting(key).await?.as_deref() {
        Some("true") => true,
        Some("false") => false,
        _ => seed,
    })
}

/// The implicit tenant, created on first use.
pub async fn ensure_default_tenant(store: &dyn Store) -> Result<Tenant> {
    if let Some(t) = store.tenant_by_name(DEFAULT_TENANT).await? {
        return Ok(t);
    }
    match tenant_add(store, DEFAULT_TENANT, TenantInput::default()).await {
        Ok(t) => Ok(t),
        // Another process created it in between.
        Err(AdminError::Conflict { .. }) => tenant_find(store, DEFAULT_TENANT).await,
        Err(e) => Err(e),
    }
}

/// Argon2id hash (PHC string) of `password`.
pub fn hash_password(password: &str, rng: &dyn Rng) -> Result<Secret> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    if password.chars().count() < 8 {
        return invalid_in("password", "the password has fewer than 8 characters");
    }
    if password.len() > 1024 {
        return invalid_in("password", "the password is longer than 1024 bytes");
    }
    let salt = SaltString::encode_b64(&rng.bytes16()).map_err(|e| bad(e.to_string()))?;
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| bad(e.to_string()))?;
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
    /// The password given is a one-time one: it must be replaced at the next Web Manager sign-in.
    pub one_time_password: bool,
    /// The version the edit is based on (`None`: whatever is stored).
    pub version: Option<i64>,
}

fn roles_of(v: &[String]) -> Result<Vec<Role>> {
    let mut out = Vec::new();
    for r in v {
        let role = Role::parse(r.trim()).ok_or_else(|| {
            bad(format!(
                "role {r:?} is not agent, tenant-manager or central-admin"
            ))
            .in_field("roles")
        })?;
        if !out.contains(&role) {
            out.push(role);
        }
    }
    if out.is_empty() {
        return invalid_in("roles", "a user needs at least one role");
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
    let shaped = c.split_once('@').is_some_and(|(l, d)| {
        !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
    }) || c.split_once(':').is_some_and(|(scheme, rest)| {
        !rest.is_empty()
            && scheme
                .chars()
                .next()
                .is_some_and(|ch| ch.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "+-.".contains(ch))
    });
    if c.len() > 320 || c.chars().any(|ch| ch.is_whitespace() || ch.is_control()) || !shaped {
        return invalid_in(
            "circuit_user",
            format!("Circuit user {c:?} must be an e-mail address or URI without white space"),
        );
    }
    let norm =
        circuit_norm(c).map_err(|e| bad(format!("Circuit user: {e}")).in_field("circuit_user"))?;
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
    check_username(&username).map_err(|e| bad(e).in_field("username"))?;
    let norm = normalise(&username, t.username_rule)
        .map_err(|e| bad(format!("{e} (after the tenant's username rule)")).in_field("username"))?;
    let circuit = check_circuit(input.circuit_user.as_deref().unwrap_or(""))?;
    let (circuit_user, circuit_user_norm) = circuit.unzip();
    let roles = roles_of(&input.roles.unwrap_or_else(|| vec!["agent".into()]))?;
    let display_name = match input.display_name.as_deref().map(str::trim) {
        None | Some("") => username.clone(),
        Some(d) => check_display_name(d)?,
    };
    if let Some(u) = store.user_by_norm(t.id, &norm).await? {
        return Err(AdminError::conflict(format!(
            "tenant {:?} already has user {:?}, which the username rule makes the same name",
            t.name, u.username
        ))
        .in_field("username"));
    }
    check_circuit_free(store, &t, None, circuit_user_norm.as_deref()).await?;
    let password_hash = match &input.password {
        Some(p) => Some(hash_password(p.secret(), rng)?),
        None => None,
    };
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
            must_change_password: input.one_time_password,
        })
        .await
        .map_err(|e| user_conflict(&t, e))
}

fn check_display_name(d: &str) -> Result<String> {
    let d = d.trim();
    if d.is_empty() || d.chars().count() > 100 || d.chars().any(|c| c.is_control()) {
        return invalid_in(
            "display_name",
            "the display name must have 1 to 100 characters, without control characters",
        );
    }
    Ok(d.to_string())
}

/// A Circuit user belongs to one user of a tenant: the error names the one who has it.
async fn check_circuit_free(
    store: &dyn Store,
    t: &Tenant,
    me: Option<UserId>,
    circuit_norm: Option<&str>,
) -> Result<()> {
    if let Some(c) = circuit_norm
        && let Some(holder) = store.user_by_circuit(t.id, c).await?
        && Some(holder.id) != me
    {
        return Err(AdminError::conflict(format!(
            "user {:?} of tenant {:?} already has this Circuit user",
            holder.username, t.name
        ))
        .in_field("circuit_user"));
    }
    Ok(())
}

/// A store conflict on a user, said for the administrator.
fn user_conflict(t: &Tenant, e: StoreError) -> AdminError {
    match e {
        StoreError::Conflict(_) => AdminError::conflict(format!(
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
    check_version("user", u.version, input.version)?;
    if let Some(n) = &input.username {
        check_username(n).map_err(|e| bad(e).in_field("username"))?;
        u.username = n.clone();
    }
    if let Some(d) = &input.display_name {
        u.display_name = check_display_name(d)?;
    }
    if let Some(c) = &input.circuit_user {
        u.circuit_user = check_circuit(c)?.map(|(c, _)| c);
    }
    if input.clear_password && input.password.is_some() {
        return invalid_in("password", "give a new password or --no-password, not both");
    }
    if let Some(r) = &input.roles {
        let roles = roles_of(r)?;
        if u.roles.contains(&Role::CentralAdmin)
            && !roles.contains(&Role::CentralAdmin)
            && store.user_count_with_role(Role::CentralAdmin).await? <= 1
        {
            return invalid_in(
                "roles",
                "this is the last central administrator; give another user that role first",
            );
        }
        u.roles = roles;
    }
    let norm = normalise(&u.username, t.username_rule)
        .map_err(|e| bad(format!("{e} (after the tenant's username rule)")).in_field("username"))?;
    if let Some(other) = store.user_by_norm(t.id, &norm).await?
        && other.id != u.id
    {
        return Err(AdminError::conflict(format!(
            "tenant {:?} already has user {:?}",
            t.name, other.username
        ))
        .in_field("username"));
    }
    let cnorm = match &u.circuit_user {
        Some(c) => Some(
            circuit_norm(c)
                .map_err(|e| bad(format!("Circuit user: {e}")).in_field("circuit_user"))?,
        ),
        None => None,
    };
    check_circuit_free(store, &t, Some(u.id), cnorm.as_deref()).await?;
    // The slow hash last, once everything else is known to be right.
    if let Some(p) = &input.password {
        u.password_hash = Some(hash_password(p.secret(), rng)?);
        u.must_change_password = input.one_time_password;
    }
    if input.clear_password {
        u.password_hash = None;
        u.must_change_password = false;
    }
    store
        .user_update(&u, &norm, cnorm.as_deref())
        .await
        .map_err(|e| user_conflict(&t, e))?;
    u.version += 1;
    Ok(u)
}

/// A user changes their own password (the Web Manager's forced change, or any later one): the
/// current password must be right, the new one given twice, and different.
pub async fn password_change(
    store: &dyn Store,
    rng: &dyn Rng,
    user: &User,
    new: &Secret,
    confirm: &Secret,
) -> Result<User> {
    if new.secret() != confirm.secret() {
        return invalid_in("confirm", "the two new passwords differ");
    }
    if let Some(h) = &user.password_hash
        && verify_password(new.secret(), h)
    {
        return invalid_in(
            "password",
            "the new password must differ from the current one",
        );
    }
    let mut u = user.clone();
    u.password_hash = Some(hash_password(new.secret(), rng)?);
    u.must_change_password = false;
    let t = store
        .tenant_get(u.tenant_id)
        .await?
        .ok_or_else(|| AdminError::NotFound("the user's tenant is gone".into()))?;
    let norm = normalise(&u.username, t.username_rule).map_err(|e| bad(e.to_string()))?;
    let cnorm = u
        .circuit_user
        .as_deref()
        .map(circuit_norm)
        .transpose()
        .map_err(|e| bad(e.to_string()))?;
    store.user_update(&u, &norm, cnorm.as_deref()).await?;
    u.version += 1;
    Ok(u)
}

pub async fn user_rm(store: &dyn Store, tenant: &str, username: &str) -> Result<User> {
    let (_, u) = user_find(store, tenant, username).await?;
    if u.roles.contains(&Role::CentralAdmin)
        && store.user_count_with_role(Role::CentralAdmin).await? <= 1
    {
        return Err(AdminError::conflict(
            "this is the last central administrator; give another user that role first",
        ));
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
        one_time_password: true,
        ..Default::default()
    };
    match user_add(store.as_ref(), rng, DEFAULT_TENANT, input).await {
        Ok(u) => Ok(Some((u.username, password))),
        Err(AdminError::Conflict { .. }) => Ok(None),
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
