//! Enveloped XML Signature verification, strict: the shape of ds:Signature is checked in full
//! before any cryptography runs, and a signature only ever vouches for the element it sits in.
//!
//! Accepted shape (anything else is a typed [`SignatureError`]):
//! ```text
//! <ds:Signature>                       direct child of the signed element (position: caller)
//!   <ds:SignedInfo>
//!     <ds:CanonicalizationMethod Algorithm=exc-c14n[#WithComments]> [ec:InclusiveNamespaces]
//!     <ds:SignatureMethod Algorithm=rsa-sha256|384|512, ecdsa-sha256|384|512 (rsa-sha1: legacy)/>
//!     <ds:Reference URI="#<ID of the signed element>">      exactly one
//!       <ds:Transforms> enveloped-signature, then exc-c14n [ec:InclusiveNamespaces] </ds:Transforms>
//!       <ds:DigestMethod Algorithm=sha256|384|512 (sha1: legacy)/>  <ds:DigestValue>
//!   <ds:SignatureValue>
//!   [<ds:KeyInfo>]  read only for fingerprint trust; RetrievalMethod refused
//! ```
//! No ds:Object, no ds:Manifest, no XPath/XSLT/XPointer, nothing outside the document.

use openssl::ecdsa::EcdsaSig;
use openssl::pkey::{Id, PKey, Public};
use subtle::ConstantTimeEq as _;

use super::algorithms::{
    AlgorithmPolicy, DigestAlgorithm, ENVELOPED_SIGNATURE, KeyKind, SignatureAlgorithm,
};
use super::c14n::{self, ExcC14n};
use super::trust::{IdpTrust, TrustedCertificate, decode_base64_ws};
use crate::saml::error::SignatureError;
use crate::saml::xml::{Document, NodeId, ns};

/// The most X509Certificate elements a signature's KeyInfo may carry (IdPs send one, sometimes
/// with its chain).
pub const MAX_KEY_INFO_CERTIFICATES: usize = 4;

/// A ds:Signature whose shape has been checked; nothing verified yet.
#[derive(Debug, Clone)]
pub struct SignatureSpec {
    pub node: NodeId,
    pub signed_info: NodeId,
    pub c14n: ExcC14n,
    pub algorithm: SignatureAlgorithm,
    pub reference_uri: String,
    pub reference_c14n: ExcC14n,
    pub digest: DigestAlgorithm,
    pub digest_value: Vec<u8>,
    pub value: Vec<u8>,
    /// X509Certificate elements in KeyInfo/X509Data.
    pub key_info_certs: Vec<NodeId>,
}

fn unexpected(doc: &Document, el: NodeId, parent: &'static str) -> SignatureError {
    SignatureError::UnexpectedElement {
        element: doc.qname(el),
        parent,
    }
}

/// Checks the structure of the ds:Signature at `sig` against the allow-lists.
pub fn parse_signature(
    doc: &Document,
    sig: NodeId,
    policy: AlgorithmPolicy,
) -> Result<SignatureSpec, SignatureError> {
    let mut signed_info = None;
    let mut value = None;
    let mut key_info = None;
    for c in doc.child_elements(sig) {
        let slot = if doc.namespace(c) != ns::DS {
            return Err(unexpected(doc, c, "ds:Signature"));
        } else {
            match doc.local_name(c) {
                "SignedInfo" if value.is_none() && key_info.is_none() => &mut signed_info,
                "SignatureValue" if signed_info.is_some() && key_info.is_none() => &mut value,
                "KeyInfo" if value.is_some() => &mut key_info,
                _ => return Err(unexpected(doc, c, "ds:Signature")),
            }
        };
        if slot.replace(c).is_some() {
            return Err(unexpected(doc, c, "ds:Signature"));
        }
    }
    let signed_info = signed_info.ok_or(SignatureError::MissingElement {
        element: "SignedInfo",
    })?;
    let value_node = value.ok_or(SignatureError::MissingElement {
        element: "SignatureValue",
    })?;

    // SignedInfo: CanonicalizationMethod, SignatureMethod, exactly one Reference.
    let mut c14n_method = None;
    let mut sig_method = None;
    let mut references = Vec::new();
    for c in doc.child_elements(signed_info) {
        if doc.namespace(c) != ns::DS {
            return Err(unexpected(doc, c, "ds:SignedInfo"));
        }
        match doc.local_name(c) {
            "CanonicalizationMethod" if c14n_method.is_none() && sig_method.is_none() => {
                c14n_method = Some(c)
            }
            "SignatureMethod" if c14n_method.is_some() && sig_method.is_none() => {
                sig_method = Some(c)
            }
            "Reference" if sig_method.is_some() => references.push(c),
            _ => return Err(unexpected(doc, c, "ds:SignedInfo")),
        }
    }
    let c14n_method = c14n_method.ok_or(SignatureError::MissingElement {
        element: "CanonicalizationMethod",
    })?;
    let sig_method = sig_method.ok_or(SignatureError::MissingElement {
        element: "SignatureMethod",
    })?;
    if references.len() != 1 {
        return Err(SignatureError::ReferenceCount {
            count: references.len(),
        });
    }
    let reference = references[0];

    let c14n_uri = doc.attr(c14n_method, "Algorithm").unwrap_or("");
    let with_comments =
        c14n::exc_c14n_uri(c14n_uri).ok_or_else(|| SignatureError::CanonicalizationMethod {
            algorithm: c14n_uri.to_string(),
        })?;
    only_inclusive_namespaces(doc, c14n_method, "ds:CanonicalizationMethod")?;
    let c14n = ExcC14n {
        with_comments,
        inclusive_prefixes: c14n::inclusive_prefixes(doc, c14n_method)
            .map_err(|why| SignatureError::InclusiveNamespaces { why })?,
    };

    let alg_uri = doc.attr(sig_method, "Algorithm").unwrap_or("");
    let algorithm = SignatureAlgorithm::from_uri(alg_uri, policy)?;
    if let Some(c) = doc.child_elements(sig_method).next() {
        // e.g. HMACOutputLength: never meaningful for an asymmetric algorithm.
        return Err(unexpected(doc, c, "ds:SignatureMethod"));
    }

    // Reference URI: "#" + an NCName, nothing else (no XPointer, no empty URI, no external URI).
    let uri = doc.attr(reference, "URI").unwrap_or("");
    // (An xs:ID may not start with a digit, but real IdPs use bare UUIDs: the ID only has to be
    // the signed element's, byte for byte.)
    let id = uri.strip_prefix('#').unwrap_or("");
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(SignatureError::ReferenceUri {
            uri: uri.to_string(),
        });
    }

    let mut transforms = None;
    let mut digest_method = None;
    let mut digest_value = None;
    for c in doc.child_elements(reference) {
        if doc.namespace(c) != ns::DS {
            return Err(unexpected(doc, c, "ds:Reference"));
        }
        match doc.local_name(c) {
            "Transforms" if transforms.is_none() && digest_method.is_none() => transforms = Some(c),
            "DigestMethod" if digest_method.is_none() => digest_method = Some(c),
            "DigestValue" if digest_method.is_some() && digest_value.is_none() => {
                digest_value = Some(c)
            }
            _ => return Err(unexpected(doc, c, "ds:Reference")),
        }
    }
    let reference_c14n = check_transforms(doc, transforms)?;
    let digest_method = digest_method.ok_or(SignatureError::MissingElement {
        element: "DigestMethod",
    })?;
    let digest_value = digest_value.ok_or(SignatureError::MissingElement {
        element: "DigestValue",
    })?;
    let digest =
        DigestAlgorithm::from_uri(doc.attr(digest_method, "Algorithm").unwrap_or(""), policy)?;
    let dv = read_base64(doc, digest_value, "DigestValue")?;
    if dv.len() != digest.output_len() {
        return Err(SignatureError::BadValue {
            element: "DigestValue",
            why: format!(
                "{} bytes, a {} digest has {}",
                dv.len(),
                digest.name(),
                digest.output_len()
            ),
        });
    }
    let sv = read_base64(doc, value_node, "SignatureValue")?;
    if sv.is_empty() || sv.len() > 1024 {
        return Err(SignatureError::BadValue {
            element: "SignatureValue",
            why: format!("{} bytes", sv.len()),
        });
    }

    let mut key_info_certs = Vec::new();
    if let Some(ki) = key_info {
        for c in doc.child_elements(ki) {
            if doc.is(c, ns::DS, "RetrievalMethod") {
                return Err(SignatureError::KeyInfoForbidden {
                    element: doc.qname(c),
                });
            }
            if doc.is(c, ns::DS, "X509Data") {
                key_info_certs.extend(doc.children_named(c, ns::DS, "X509Certificate"));
            }
            // Each certificate may be parsed below: their number is bounded before any is.
            if key_info_certs.len() > MAX_KEY_INFO_CERTIFICATES {
                return Err(SignatureError::KeyInfoCertificates {
                    count: key_info_certs.len(),
                });
            }
        }
    }

    Ok(SignatureSpec {
        node: sig,
        signed_info,
        c14n,
        algorithm,
        reference_uri: uri.to_string(),
        reference_c14n,
        digest,
        digest_value: dv,
        value: sv,
        key_info_certs,
    })
}

fn only_inclusive_namespaces(
    doc: &Document,
    method: NodeId,
    parent: &'static str,
) -> Result<(), SignatureError> {
    for c in doc.child_elements(method) {
        if !doc.is(c, ns::EXC_C14N, "InclusiveNamespaces") {
            return Err(unexpected(doc, c, parent));
        }
    }
    Ok(())
}

/// The only accepted transform chains: [enveloped-signature, exc-c14n].
fn check_transforms(doc: &Document, transforms: Option<NodeId>) -> Result<ExcC14n, SignatureError> {
    let Some(t) = transforms else {
        return Err(SignatureError::Transform {
            algorithm: "(none: the enveloped-signature transform is required)".into(),
        });
    };
    // Only a chain of two is ever accepted: a third is enough to refuse (and bounds the work).
    let list: Vec<NodeId> = doc.child_elements(t).take(3).collect();
    for &c in &list {
        if !doc.is(c, ns::DS, "Transform") {
            return Err(unexpected(doc, c, "ds:Transforms"));
        }
    }
    let alg = |n: NodeId| doc.attr(n, "Algorithm").unwrap_or("").to_string();
    match list.as_slice() {
        [env, exc] if alg(*env) == ENVELOPED_SIGNATURE => {
            if let Some(c) = doc.child_elements(*env).next() {
                return Err(unexpected(doc, c, "ds:Transform"));
            }
            let uri = alg(*exc);
            if c14n::exc_c14n_uri(&uri).is_none() {
                return Err(SignatureError::Transform { algorithm: uri });
            }
            only_inclusive_namespaces(doc, *exc, "ds:Transform")?;
            // A same-document "#id" reference yields a node-set without comments (XMLDSig
            // §4.3.3.3), so #WithComments changes nothing here.
            Ok(ExcC14n {
                with_comments: false,
                inclusive_prefixes: c14n::inclusive_prefixes(doc, *exc)
                    .map_err(|why| SignatureError::InclusiveNamespaces { why })?,
            })
        }
        [only] if alg(*only) == ENVELOPED_SIGNATURE => Err(SignatureError::Transform {
            algorithm: format!("{ENVELOPED_SIGNATURE} alone (implicit inclusive c14n)"),
        }),
        _ => {
            let bad = list
                .iter()
                .map(|n| alg(*n))
                .find(|a| a != ENVELOPED_SIGNATURE && c14n::exc_c14n_uri(a).is_none());
            Err(SignatureError::Transform {
                algorithm: bad.unwrap_or_else(|| format!("a chain of {} transforms", list.len())),
            })
        }
    }
}

fn read_base64(doc: &Document, el: NodeId, name: &'static str) -> Result<Vec<u8>, SignatureError> {
    let text = doc.simple_text(el).ok_or(SignatureError::BadValue {
        element: name,
        why: "holds elements".into(),
    })?;
    decode_base64_ws(&text).map_err(|e| SignatureError::BadValue {
        element: name,
        why: format!("not base64: {e}"),
    })
}

/// Verifies `spec`, the enveloped signature of element `signed`, with the keys `trust` allows.
/// `what` names the element in messages ("Response", "Assertion", "LogoutRequest"…). `buf` is
/// scratch space, reused across calls.
pub fn verify_enveloped(
    doc: &Document,
    spec: &SignatureSpec,
    signed: NodeId,
    trust: &IdpTrust,
    what: &'static str,
    buf: &mut Vec<u8>,
) -> Result<TrustedCertificate, SignatureError> {
    // 1. The Reference must name the element the signature sits in, by its ID.
    let id = doc.attr(signed, "ID").unwrap_or("");
    if id.is_empty() || spec.reference_uri.get(1..) != Some(id) {
        return Err(SignatureError::ReferenceTarget {
            uri: spec.reference_uri.clone(),
            expected: id.to_string(),
        });
    }

    // 2. The keys: configuration, or the KeyInfo certificate that matches the configured fingerprint.
    let fingerprinted;
    let keys: &[TrustedCertificate] = match trust {
        IdpTrust::Certificates(c) if c.is_empty() => return Err(SignatureError::NoTrustedKey),
        IdpTrust::Certificates(c) => c,
        IdpTrust::Fingerprint(fp) => {
            if spec.key_info_certs.len() != 1 {
                return Err(SignatureError::FingerprintCertificateCount {
                    count: spec.key_info_certs.len(),
                });
            }
            let cert = TrustedCertificate::from_base64(&doc.text(spec.key_info_certs[0]))?;
            if !fp.matches(&cert) {
                let got = super::trust::colon_hex(&cert.fingerprint(fp.algorithm));
                return Err(SignatureError::FingerprintMismatch {
                    expected: fp.to_string(),
                    got: format!("{} {got}", fp.algorithm.name()),
                });
            }
            fingerprinted = [cert];
            &fingerprinted
        }
    };

    // 3. SignatureValue over the canonical SignedInfo, with one of those keys.
    buf.clear();
    c14n::canonicalize(doc, spec.signed_info, None, &spec.c14n, buf);
    let mut verified_with = None;
    let mut mismatched = 0;
    for k in keys {
        match verify_value(k.key(), spec.algorithm, buf, &spec.value) {
            Ok(true) => {
                verified_with = Some(k);
                break;
            }
            Ok(false) => {}
            // A key of another type (an EC certificate beside RSA ones during a rollover): skip it,
            // but say so if no key of the right type exists at all.
            Err(e) => {
                mismatched += 1;
                if mismatched == keys.len() {
                    return Err(e);
                }
            }
        }
    }
    let Some(cert) = verified_with else {
        return Err(SignatureError::Invalid {
            element: what,
            expected: trust.describe(),
            carried: describe_key_info(doc, spec),
        });
    };

    // 3b. A message whose KeyInfo names certificates must name the key that signed it (compared by
    //     public key, so a reissued certificate for the same key still matches). A signature by the
    //     configured key beside unrelated certificates is a tampered or confused message.
    if !spec.key_info_certs.is_empty() {
        let carries_key = spec.key_info_certs.iter().any(|c| {
            let text = doc.text(*c);
            // Usually the very certificate we trust: compare bytes, parse nothing.
            decode_base64_ws(&text).is_ok_and(|der| der == cert.der())
                || TrustedCertificate::from_base64(&text)
                    .is_ok_and(|kc| kc.key().public_eq(cert.key()))
        });
        if !carries_key {
            return Err(SignatureError::KeyInfoMismatch {
                verified_with: cert.describe(),
                carried: describe_key_info(doc, spec),
            });
        }
    }

    // 4. The digest of the signed element, without this signature, must be DigestValue.
    buf.clear();
    c14n::canonicalize(doc, signed, Some(spec.node), &spec.reference_c14n, buf);
    let digest = spec.digest.digest(buf);
    if !bool::from(digest.ct_eq(&spec.digest_value)) {
        return Err(SignatureError::DigestMismatch {
            reference: spec.reference_uri.clone(),
            algorithm: spec.digest.name(),
        });
    }
    Ok(cert.clone())
}

fn describe_key_info(doc: &Document, spec: &SignatureSpec) -> String {
    match spec.key_info_certs.as_slice() {
        [] => "no certificate".to_string(),
        certs => certs
            .iter()
            .map(|c| match TrustedCertificate::from_base64(&doc.text(*c)) {
                Ok(cert) => cert.describe(),
                Err(_) => "an unparseable certificate".to_string(),
            })
            .collect::<Vec<_>>()
            .join(" and "),
    }
}

/// Verifies a raw signature value (PKCS#1 v1.5 for RSA; r||s for ECDSA, as XMLDSig writes it).
pub(crate) fn verify_value(
    key: &PKey<Public>,
    alg: SignatureAlgorithm,
    data: &[u8],
    sig: &[u8],
) -> Result<bool, SignatureError> {
    let md = alg.digest.message_digest();
    let der;
    let sig_bytes: &[u8] = match (alg.key, key.id()) {
        (KeyKind::Rsa, Id::RSA) => sig,
        (KeyKind::Ecdsa, Id::EC) => {
            if sig.is_empty() || !sig.len().is_multiple_of(2) || sig.len() > 264 {
                return Ok(false);
            }
            let (r, s) = sig.split_at(sig.len() / 2);
            let (Ok(r), Ok(s)) = (
                openssl::bn::BigNum::from_slice(r),
                openssl::bn::BigNum::from_slice(s),
            ) else {
                return Ok(false);
            };
            let Ok(es) = EcdsaSig::from_private_components(r, s) else {
                return Ok(false);
            };
            let Ok(d) = es.to_der() else { return Ok(false) };
            der = d;
            &der
        }
        (_, id) => {
            return Err(SignatureError::KeyMismatch {
                algorithm: alg.name(),
                key: format!("{id:?}"),
            });
        }
    };
    let Ok(mut v) = openssl::sign::Verifier::new(md, key) else {
        return Ok(false);
    };
    Ok(v.verify_oneshot(sig_bytes, data).unwrap_or(false))
}
