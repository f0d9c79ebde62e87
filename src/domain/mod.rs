//! What an administrator configures (DESIGN §1): service providers, identity providers, tenants
//! and users, with the rules that belong to them (derived endpoints, username normalisation,
//! tenant resolution). The admin operations shared by the CLI (and later the API and the Web
//! Manager) live in [`admin`]; they validate every field before the store sees anything.

pub mod admin;
pub mod audit;
pub mod circuit;
pub mod refresh;
pub mod totp;
pub mod trace;
pub mod username;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::saml::xmldsig::{DigestAlgorithm, Fingerprint, IdpTrust, TrustedCertificate};

macro_rules! id_type {
    ($name:ident) => {
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        pub struct $name(pub i64);
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}
id_type!(SpId);
id_type!(IdpId);
id_type!(TenantId);
id_type!(UserId);

/// A secret string (a private key, a password hash): `Debug` never shows it; read it with
/// [`Secret::secret`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Secret(s)
    }
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// SAML bindings an administrator chooses between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Binding {
    Redirect,
    Post,
}

impl Binding {
    pub fn parse(s: &str) -> Option<Binding> {
        match s.to_ascii_lowercase().as_str() {
            "redirect" | "http-redirect" => Some(Binding::Redirect),
            "post" | "http-post" => Some(Binding::Post),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Binding::Redirect => "redirect",
            Binding::Post => "post",
        }
    }
}

/// A service provider: the agent portal as the IdP sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceProvider {
    pub id: SpId,
    pub entity_id: String,
    /// The agent portal URL, without a trailing slash; every endpoint derives from it.
    pub host_url: String,
    pub certificate_pem: Option<String>,
    pub private_key_pem: Option<Secret>,
    /// Certificate rollover: published in the metadata beside the current one until promoted.
    pub next_certificate_pem: Option<String>,
    pub next_private_key_pem: Option<Secret>,
    /// Bumped by every change (a stale edit is refused).
    pub version: i64,
}

impl ServiceProvider {
    pub fn acs_url(&self) -> String {
        format!("{}/saml/acs", self.host_url)
    }
    pub fn slo_url(&self) -> String {
        format!("{}/saml/slo", self.host_url)
    }
    pub fn metadata_url(&self) -> String {
        format!("{}/saml/metadata", self.host_url)
    }
    /// The path the host URL has (`/agentportal`), or "" at the root.
    pub fn path_prefix(&self) -> &str {
        let after_scheme = self
            .host_url
            .split_once("://")
            .map(|(_, r)| r)
            .unwrap_or(&self.host_url);
        after_scheme
            .find('/')
            .map(|i| &after_scheme[i..])
            .unwrap_or("")
    }
    /// `host[:port]` of the host URL, lower case.
    pub fn authority(&self) -> String {
        let after_scheme = self
            .host_url
            .split_once("://")
            .map(|(_, r)| r)
            .unwrap_or(&self.host_url);
        after_scheme
            .split('/')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
    }
    pub fn is_https(&self) -> bool {
        self.host_url.starts_with("https://")
    }
}

/// Where the username comes from in an assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", content = "name", rename_all = "snake_case")]
pub enum UsernameMapping {
    NameId,
    Attribute(String),
}

impl fmt::Display for UsernameMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsernameMapping::NameId => f.write_str("NameID"),
            UsernameMapping::Attribute(a) => f.write_str(a),
        }
    }
}

/// How an IdP's signatures are trusted: its certificates (several, for a rollover), or the
/// fingerprint of the certificate it sends in KeyInfo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustConfig {
    /// Base64 DER of each certificate.
    Certificates(Vec<String>),
    Fingerprint {
        algorithm: String,
        hex: String,
    },
}

impl TrustConfig {
    /// The verifier's trust anchor. Stored values were validated when they were saved; a stored
    /// value that no longer parses is reported, not ignored.
    pub fn to_trust(&self) -> Result<IdpTrust, String> {
        match self {
            TrustConfig::Certificates(certs) => {
                let parsed: Result<Vec<_>, _> = certs
                    .iter()
                    .map(|c| TrustedCertificate::from_base64(c))
                    .collect();
                Ok(IdpTrust::Certificates(
                    parsed.map_err(|e| format!("stored certificate: {e}"))?,
                ))
            }
            TrustConfig::Fingerprint { algorithm, hex } => Ok(IdpTrust::Fingerprint(
                Fingerprint::parse(&format!("{algorithm}:{hex}"))?,
            )),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            TrustConfig::Certificates(c) => {
                let parts: Vec<String> = c
                    .iter()
                    .map(|b| {
                        TrustedCertificate::from_base64(b)
                            .map(|c| c.describe())
                            .unwrap_or_else(|e| format!("unreadable: {e}"))
                    })
                    .collect();
                format!("certificates: {}", parts.join("; "))
            }
            TrustConfig::Fingerprint { algorithm, hex } => format!("fingerprint {algorithm}:{hex}"),
        }
    }
}

/// Every SingleSignOnService and SingleLogoutService location an IdP offers, by binding (from
/// its metadata, or as given by hand). Shibboleth and others publish a different URL per
/// binding: the location in use always belongs to the binding in use.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IdpEndpoints {
    #[serde(default)]
    pub sso: Vec<SsoEndpoint>,
    #[serde(default)]
    pub slo: Vec<SloEndpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsoEndpoint {
    pub binding: Binding,
    pub location: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SloEndpoint {
    pub binding: Binding,
    pub location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_location: Option<String>,
}

impl IdpEndpoints {
    pub fn sso_location(&self, b: Binding) -> Option<&str> {
        self.sso
            .iter()
            .find(|e| e.binding == b)
            .map(|e| e.location.as_str())
    }
    pub fn slo_endpoint(&self, b: Binding) -> Option<&SloEndpoint> {
        self.slo.iter().find(|e| e.binding == b)
    }
    /// Records `location` as the SSO location for `b` (replacing the one known for it).
    pub fn set_sso(&mut self, b: Binding, location: &str) {
        self.sso.retain(|e| e.binding != b);
        self.sso.push(SsoEndpoint {
            binding: b,
            location: location.to_string(),
        });
    }
    pub fn set_slo(&mut self, b: Binding, location: &str, response_location: Option<&str>) {
        self.slo.retain(|e| e.binding != b);
        self.slo.push(SloEndpoint {
            binding: b,
            location: location.to_string(),
            response_location: response_location.map(str::to_string),
        });
    }
    /// "redirect and post", for messages.
    pub fn sso_bindings(&self) -> String {
        names(self.sso.iter().map(|e| e.binding))
    }
    pub fn slo_bindings(&self) -> String {
        names(self.slo.iter().map(|e| e.binding))
    }
}

fn names(it: impl Iterator<Item = Binding>) -> String {
    let v: Vec<&str> = it.map(Binding::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(" and ")
    }
}

/// An identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityProvider {
    pub id: IdpId,
    /// Short name the administrator refers to it by.
    pub name: String,
    pub entity_id: String,
    /// SingleSignOnService location for `sso_binding`.
    pub sso_url: String,
    pub sso_binding: Binding,
    pub slo_url: Option<String>,
    /// Where LogoutResponses go when it differs from `slo_url` (Entra).
    pub slo_response_url: Option<String>,
    pub slo_binding: Binding,
    pub username: UsernameMapping,
    pub trust: TrustConfig,
    /// RSA-SHA1 / SHA-1 digests accepted (legacy IdPs only).
    pub allow_sha1: bool,
    /// NameIDPolicy Format to ask for, if any.
    pub name_id_format: Option<String>,
    /// AuthnContextClassRef to request (Comparison exact); omitted when empty (ADFS, Entra MFA).
    pub authn_context: Option<String>,
    /// Every location the IdP offers, by binding (`sso_url`/`slo_url` are those of the bindings
    /// in use).
    pub endpoints: IdpEndpoints,
    /// Where the IdP publishes its metadata, if given: fetched every 6 hours, its signing
    /// certificates taken.
    pub metadata_url: Option<String>,
    /// The last fetch of `metadata_url`, if any.
    pub metadata_status: Option<MetadataStatus>,
    /// Bumped by every change (a stale edit is refused).
    pub version: i64,
}

/// When an IdP's metadata URL was last fetched, and why that failed (None: it worked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataStatus {
    pub checked_at: crate::saml::UnixTime,
    pub error: Option<String>,
}

impl IdentityProvider {
    /// Where our LogoutResponse goes.
    pub fn slo_response_target(&self) -> Option<&str> {
        self.slo_response_url.as_deref().or(self.slo_url.as_deref())
    }
    pub fn digest_policy(&self) -> crate::saml::xmldsig::AlgorithmPolicy {
        crate::saml::xmldsig::AlgorithmPolicy {
            allow_sha1: self.allow_sha1,
        }
    }
}

/// How a username from the IdP is turned into the name of a user of the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsernameRule {
    /// Strip `DOMAIN\` in front and `@domain` behind.
    pub strip_domain: bool,
    /// Compare without regard to case.
    pub case_insensitive: bool,
}

impl Default for UsernameRule {
    fn default() -> Self {
        UsernameRule {
            strip_domain: true,
            case_insensitive: true,
        }
    }
}

/// A tenant: who signs in how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    /// What agents read ("Sign in to Acme"); the name when empty.
    pub display_name: String,
    /// Lower-case domains (`example.com`, `EXAMPLE` for `EXAMPLE\user` is stored as `example`).
    pub login_domains: Vec<String>,
    pub sso_enabled: bool,
    pub idp_id: Option<IdpId>,
    pub slo_enabled: bool,
    pub idp_initiated: bool,
    pub username_rule: UsernameRule,
    /// Bumped by every change (a stale edit is refused).
    pub version: i64,
}

impl Tenant {
    /// The name agents read.
    pub fn title(&self) -> &str {
        if self.display_name.is_empty() {
            &self.name
        } else {
            &self.display_name
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Agent,
    TenantManager,
    CentralAdmin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "agent" => Some(Role::Agent),
            "tenant-manager" => Some(Role::TenantManager),
            "central-admin" => Some(Role::CentralAdmin),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::TenantManager => "tenant-manager",
            Role::CentralAdmin => "central-admin",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub tenant_id: TenantId,
    pub username: String,
    pub display_name: String,
    pub circuit_user: Option<String>,
    pub password_hash: Option<Secret>,
    pub roles: Vec<Role>,
    /// The password is a one-time one: the Web Manager asks for a new one before anything else.
    pub must_change_password: bool,
    /// Bumped by every change (a stale edit is refused).
    pub version: i64,
}

/// Parses a fingerprint given as `ALG:HEX` or bare hex with a separate algorithm.
pub fn parse_fingerprint(algorithm: &str, value: &str) -> Result<(String, String), String> {
    let alg = match algorithm.to_ascii_lowercase().replace('-', "").as_str() {
        "sha1" => DigestAlgorithm::Sha1,
        "sha256" => DigestAlgorithm::Sha256,
        "sha384" => DigestAlgorithm::Sha384,
        "sha512" => DigestAlgorithm::Sha512,
        other => {
            return Err(format!(
                "fingerprint algorithm \"{other}\" is not one of sha1, sha256, sha384, sha512"
            ));
        }
    };
    let f = Fingerprint::parse(&format!(
        "{}:{value}",
        alg.name().to_ascii_lowercase().replace('-', "")
    ))?;
    Ok((
        alg.name().to_ascii_lowercase().replace('-', ""),
        hex::encode(f.value()),
    ))
}
