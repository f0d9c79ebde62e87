//! The attack generator: baseline Responses signed at test time with throw-away keys, and the
//! mutations applied to them. Nothing here is a hand-edited signed file: every signed document is
//! produced by signing (ours, or xmlsec1 in the differential test) after the mutation, or is a
//! mutation of a signed document that must then fail.

use std::sync::OnceLock;

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::{X509, X509NameBuilder};
use ssogate::saml::UnixTime;
use ssogate::saml::xmldsig::{SignatureAlgorithm, SigningKey, TrustedCertificate, sign_enveloped};

pub const SP: &str = "https://sp.example.test/";
pub const ACS: &str = "https://sp.example.test/saml/acs";
pub const IDP: &str = "https://idp.example.test/";
pub const REQ: &str = "_req-3f1c6a0e8d52";
pub const USER_ATTR: &str =
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/windowsaccountname";

/// The instant the baseline was issued; tests validate at `t0() + 10 s`.
pub fn t0() -> UnixTime {
    UnixTime::parse("2026-01-01T00:00:00Z").expect("valid")
}
pub fn now() -> UnixTime {
    t0().plus_secs(10)
}

/// A throw-away IdP (or attacker): key, certificate, and their PEM.
pub struct Keys {
    pub key: SigningKey,
    pub cert: TrustedCertificate,
    pub key_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
}

fn make(pkey: PKey<Private>, cn: &str) -> Keys {
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_nid(Nid::COMMONNAME, cn).expect("cn");
    let name = name.build();
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("v3");
    b.set_serial_number(
        &BigNum::from_u32(7)
            .expect("bn")
            .to_asn1_integer()
            .expect("serial"),
    )
    .expect("serial");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(&name).expect("issuer");
    b.set_pubkey(&pkey).expect("pubkey");
    b.set_not_before(&Asn1Time::from_unix(1_700_000_000).expect("t"))
        .expect("nb");
    b.set_not_after(&Asn1Time::from_unix(2_500_000_000).expect("t"))
        .expect("na");
    b.sign(&pkey, MessageDigest::sha256()).expect("self-sign");
    let x = b.build();
    let key_pem = pkey.private_key_to_pem_pkcs8().expect("pem");
    let cert_pem = x.to_pem().expect("pem");
    Keys {
        key: SigningKey::from_pem(&key_pem).expect("key"),
        cert: TrustedCertificate::from_der(&x.to_der().expect("der")).expect("cert"),
        key_pem,
        cert_pem,
    }
}

fn rsa(cn: &str) -> Keys {
    make(
        PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("pkey"),
        cn,
    )
}

/// The IdP's RSA-2048 key (generated once per test process).
pub fn idp() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| rsa("Test IdP signing"))
}
/// A second IdP key (rollover, or another tenant's IdP).
pub fn idp2() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| rsa("Test IdP signing 2"))
}
/// The attacker's key: self-signed, never configured.
pub fn attacker() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| rsa("Test IdP signing"))
}
/// An EC P-256 IdP key.
pub fn idp_ec() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let g = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("group");
        make(
            PKey::from_ec_key(EcKey::generate(&g).expect("ec")).expect("pkey"),
            "Test IdP EC",
        )
    })
}
/// The SP's key (decryption).
pub fn sp() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| rsa("Test SP"))
}

/// Everything a baseline Response says. Change one field to build a negative case.
#[derive(Debug, Clone)]
pub struct Template {
    pub response_id: String,
    pub assertion_id: String,
    pub issue_instant: UnixTime,
    pub response_issuer: Option<String>,
    pub assertion_issuer: String,
    pub destination: Option<String>,
    pub response_in_response_to: Option<String>,
    pub status: String,
    pub name_id: String,
    pub name_id_format: String,
    pub method: String,
    pub recipient: Option<String>,
    pub scd_in_response_to: Option<String>,
    pub scd_not_on_or_after: Option<UnixTime>,
    pub not_before: Option<UnixTime>,
    pub not_on_or_after: Option<UnixTime>,
    /// None: no AudienceRestriction at all.
    pub audiences: Option<Vec<String>>,
    pub session_index: String,
    pub session_not_on_or_after: Option<UnixTime>,
    pub attributes: Vec<(String, Vec<String>)>,
}

impl Default for Template {
    fn default() -> Self {
        let t = t0();
        Template {
            response_id: "_resp-9b7f2e614a3c".into(),
            assertion_id: "_asrt-c2d84f175e0b".into(),
            issue_instant: t,
            response_issuer: Some(IDP.into()),
            assertion_issuer: IDP.into(),
            destination: Some(ACS.into()),
            response_in_response_to: Some(REQ.into()),
            status: "urn:oasis:names:tc:SAML:2.0:status:Success".into(),
            name_id: "jdoe@example.com".into(),
            name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
            method: "urn:oasis:names:tc:SAML:2.0:cm:bearer".into(),
            recipient: Some(ACS.into()),
            scd_in_response_to: Some(REQ.into()),
            scd_not_on_or_after: Some(t.plus_secs(300)),
            not_before: Some(t),
            not_on_or_after: Some(t.plus_secs(300)),
            audiences: Some(vec![SP.into()]),
            session_index: "_sess-1".into(),
            session_not_on_or_after: Some(t.plus_secs(8 * 3600)),
            attributes: vec![
                (USER_ATTR.into(), vec!["EXAMPLE\\jdoe".into()]),
                ("displayName".into(), vec!["Jane Doe".into()]),
                ("groups".into(), vec!["agents".into(), "supervisors".into()]),
            ],
        }
    }
}

fn esc(s: &str) -> String {
    ssogate::saml::bindings::xml_escape(s)
}

impl Template {
    /// The Assertion element (unsigned), with `xmlns:saml` declared on it.
    pub fn assertion_xml(&self) -> String {
        let mut x = String::new();
        x.push_str(&format!(
            "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{}\" IssueInstant=\"{}\" Version=\"2.0\">",
            esc(&self.assertion_id),
            self.issue_instant
        ));
        x.push_str(&format!(
            "<saml:Issuer>{}</saml:Issuer>",
            esc(&self.assertion_issuer)
        ));
        x.push_str(&format!(
            "<saml:Subject><saml:NameID Format=\"{}\">{}</saml:NameID>",
            esc(&self.name_id_format),
            esc(&self.name_id)
        ));
        x.push_str(&format!(
            "<saml:SubjectConfirmation Method=\"{}\"><saml:SubjectConfirmationData",
            esc(&self.method)
        ));
        if let Some(v) = &self.scd_in_response_to {
            x.push_str(&format!(" InResponseTo=\"{}\"", esc(v)));
        }
        if let Some(v) = self.scd_not_on_or_after {
            x.push_str(&format!(" NotOnOrAfter=\"{v}\""));
        }
        if let Some(v) = &self.recipient {
            x.push_str(&format!(" Recipient=\"{}\"", esc(v)));
        }
        x.push_str("/></saml:SubjectConfirmation></saml:Subject>");
        x.push_str("<saml:Conditions");
        if let Some(v) = self.not_before {
            x.push_str(&format!(" NotBefore=\"{v}\""));
        }
        if let Some(v) = self.not_on_or_after {
            x.push_str(&format!(" NotOnOrAfter=\"{v}\""));
        }
        x.push('>');
        if let Some(a) = &self.audiences {
            x.push_str("<saml:AudienceRestriction>");
            for au in a {
                x.push_str(&format!("<saml:Audience>{}</saml:Audience>", esc(au)));
            }
            x.push_str("</saml:AudienceRestriction>");
        }
        x.push_str("</saml:Conditions>");
        x.push_str(&format!(
            "<saml:AuthnStatement AuthnInstant=\"{}\" SessionIndex=\"{}\"",
            self.issue_instant,
            esc(&self.session_index)
        ));
        if let Some(v) = self.session_not_on_or_after {
            x.push_str(&format!(" SessionNotOnOrAfter=\"{v}\""));
        }
        x.push_str("><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>");
        if !self.attributes.is_empty() {
            x.push_str("<saml:AttributeStatement>");
            for (n, vs) in &self.attributes {
                x.push_str(&format!("<saml:Attribute Name=\"{}\">", esc(n)));
                for v in vs {
                    x.push_str(&format!(
                        "<saml:AttributeValue>{}</saml:AttributeValue>",
                        esc(v)
                    ));
                }
                x.push_str("</saml:Attribute>");
            }
            x.push_str("</saml:AttributeStatement>");
        }
        x.push_str("</saml:Assertion>");
        x
    }

    /// The Response around `inner` (an Assertion, or anything a test wants there).
    pub fn response_around(&self, inner: &str) -> String {
        let mut x = String::new();
        x.push_str(&format!(
            "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{}\" Version=\"2.0\" IssueInstant=\"{}\"",
            esc(&self.response_id),
            self.issue_instant
        ));
        if let Some(d) = &self.destination {
            x.push_str(&format!(" Destination=\"{}\"", esc(d)));
        }
        if let Some(i) = &self.response_in_response_to {
            x.push_str(&format!(" InResponseTo=\"{}\"", esc(i)));
        }
        x.push('>');
        if let Some(i) = &self.response_issuer {
            x.push_str(&format!("<saml:Issuer>{}</saml:Issuer>", esc(i)));
        }
        x.push_str(&format!(
            "<samlp:Status><samlp:StatusCode Value=\"{}\"/></samlp:Status>",
            esc(&self.status)
        ));
        x.push_str(inner);
        x.push_str("</samlp:Response>");
        x
    }

    /// The unsigned Response.
    pub fn unsigned(&self) -> String {
        self.response_around(&self.assertion_xml())
    }

    /// Response with the Assertion signed by `k` (RSA-SHA256 unless `alg` says otherwise).
    pub fn signed_assertion(&self, k: &Keys) -> String {
        sign_assertion_in(
            &self.unsigned(),
            &self.assertion_id,
            k,
            k.key.default_algorithm(),
        )
    }

    /// Response with only the Response signed.
    pub fn signed_response(&self, k: &Keys) -> String {
        sign_response_in(
            &self.unsigned(),
            &self.response_id,
            k,
            k.key.default_algorithm(),
        )
    }

    /// Both signed: the Assertion first, then the Response over it.
    pub fn signed_both(&self, k: &Keys) -> String {
        sign_response_in(
            &self.signed_assertion(k),
            &self.response_id,
            k,
            k.key.default_algorithm(),
        )
    }
}

/// Signs the element with `ID=id` whose Issuer ends at the first `</saml:Issuer>` after it.
pub fn sign_element(xml: &str, id: &str, k: &Keys, alg: SignatureAlgorithm) -> String {
    let at = xml
        .find(&format!("ID=\"{id}\""))
        .expect("element with that ID");
    let issuer_end = xml[at..]
        .find("</saml:Issuer>")
        .expect("issuer after the element")
        + at
        + "</saml:Issuer>".len();
    sign_enveloped(xml, id, issuer_end, &k.key, alg, Some(&k.cert)).expect("signs")
}

pub fn sign_assertion_in(xml: &str, id: &str, k: &Keys, alg: SignatureAlgorithm) -> String {
    sign_element(xml, id, k, alg)
}

pub fn sign_response_in(xml: &str, id: &str, k: &Keys, alg: SignatureAlgorithm) -> String {
    sign_element(xml, id, k, alg)
}

/// Replaces the first occurrence of `from`, insisting that it exists (a mutation that silently did
/// nothing would make a negative test pass for the wrong reason).
pub fn replace_once(xml: &str, from: &str, to: &str) -> String {
    assert!(xml.contains(from), "mutation target {from:?} not found");
    xml.replacen(from, to, 1)
}

pub fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

pub fn b64_raw(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// An IdP-initiated response for `user` (asserted as `EXAMPLE\user`) to the SP `sp`, its
/// assertion signed by [`idp`], valid now on the system clock (for tests that run the server).
pub fn signed_now(user: &str, assertion_id: &str, sp: &str) -> String {
    use ssogate::clock::Clock as _;
    let now = ssogate::clock::SystemClock.now();
    let acs = format!("{sp}/saml/acs");
    let t = Template {
        assertion_id: assertion_id.into(),
        response_id: format!("_r{assertion_id}"),
        issue_instant: now,
        response_in_response_to: None,
        scd_in_response_to: None,
        destination: Some(acs.clone()),
        recipient: Some(acs),
        audiences: Some(vec![sp.into()]),
        not_before: Some(now.plus_secs(-5)),
        not_on_or_after: Some(now.plus_secs(300)),
        scd_not_on_or_after: Some(now.plus_secs(300)),
        session_not_on_or_after: Some(now.plus_secs(3600)),
        attributes: vec![(USER_ATTR.into(), vec![format!("EXAMPLE\\{user}")])],
        ..Template::default()
    };
    t.signed_assertion(idp())
}
