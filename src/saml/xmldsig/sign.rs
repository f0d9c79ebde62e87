//! Enveloped signatures on messages we write (AuthnRequest and logout messages for the POST
//! binding), and raw signatures for the HTTP-Redirect query string.

use std::fmt;

use base64::Engine as _;
use openssl::ecdsa::EcdsaSig;
use openssl::pkey::{Id, PKey, Private};

use super::algorithms::{KeyKind, SignatureAlgorithm};
use super::c14n::{self, ExcC14n};
use super::trust::TrustedCertificate;
use crate::saml::xml::{Document, Limits};

/// A private key. Its `Debug` never shows key material.
#[derive(Clone)]
pub struct SigningKey {
    key: PKey<Private>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey([redacted {:?}])", self.key.id())
    }
}

/// Why a signature could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignError(pub String);

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot sign: {}", self.0)
    }
}
impl std::error::Error for SignError {}

impl SigningKey {
    /// Reads a PEM private key (PKCS#8 or traditional RSA/EC). Encrypted keys are refused.
    pub fn from_pem(pem: &[u8]) -> Result<Self, SignError> {
        let key = PKey::private_key_from_pem(pem)
            .map_err(|e| SignError(format!("private key does not parse: {e}")))?;
        match key.id() {
            Id::RSA | Id::EC => Ok(SigningKey { key }),
            other => Err(SignError(format!("key type {other:?} is not RSA or EC"))),
        }
    }

    pub fn kind(&self) -> KeyKind {
        if self.key.id() == Id::EC {
            KeyKind::Ecdsa
        } else {
            KeyKind::Rsa
        }
    }

    /// The SHA-256 signature algorithm for this key's type.
    pub fn default_algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm {
            key: self.kind(),
            digest: super::algorithms::DigestAlgorithm::Sha256,
        }
    }

    pub(crate) fn pkey(&self) -> &PKey<Private> {
        &self.key
    }

    /// Signs `data`, returning the XMLDSig signature value (PKCS#1 v1.5, or r||s for ECDSA).
    pub fn sign(&self, alg: SignatureAlgorithm, data: &[u8]) -> Result<Vec<u8>, SignError> {
        if alg.key != self.kind() {
            return Err(SignError(format!(
                "{} needs a different key type",
                alg.name()
            )));
        }
        let mut s = openssl::sign::Signer::new(alg.digest.message_digest(), &self.key)
            .map_err(|e| SignError(e.to_string()))?;
        let sig = s
            .sign_oneshot_to_vec(data)
            .map_err(|e| SignError(e.to_string()))?;
        if alg.key == KeyKind::Rsa {
            return Ok(sig);
        }
        let es = EcdsaSig::from_der(&sig).map_err(|e| SignError(e.to_string()))?;
        let ec = self.key.ec_key().map_err(|e| SignError(e.to_string()))?;
        let bits = ec.group().degree() as usize;
        let n = bits.div_ceil(8);
        let mut out = vec![0u8; 2 * n];
        let (r, s) = (es.r().to_vec(), es.s().to_vec());
        if r.len() > n || s.len() > n {
            return Err(SignError("ECDSA component too long".into()));
        }
        out[n - r.len()..n].copy_from_slice(&r);
        out[2 * n - s.len()..].copy_from_slice(&s);
        Ok(out)
    }
}

const PLACEHOLDER: &str = "SSOGATE-SIGNATURE-VALUE-PLACEHOLDER";

/// Adds an enveloped signature to the element whose `ID` is `target_id`, inserting the
/// ds:Signature at byte offset `insert_at` of `xml` (right after the element's Issuer). The
/// signature uses exclusive c14n, `alg`, a digest of the same strength, and carries `cert` in
/// KeyInfo when given.
pub fn sign_enveloped(
    xml: &str,
    target_id: &str,
    insert_at: usize,
    key: &SigningKey,
    alg: SignatureAlgorithm,
    cert: Option<&TrustedCertificate>,
) -> Result<String, SignError> {
    let limits = Limits {
        max_bytes: usize::MAX,
        ..Limits::default()
    };
    let doc = Document::parse(xml.as_bytes(), &limits)
        .map_err(|e| SignError(format!("unsigned XML does not parse: {e}")))?;
    let target = (0..doc.nodes.len() as u32)
        .find(|&n| doc.is_element(n) && doc.attr(n, "ID") == Some(target_id))
        .ok_or_else(|| SignError(format!("no element with ID {target_id}")))?;
    let mut buf = Vec::new();
    c14n::canonicalize(&doc, target, None, &ExcC14n::default(), &mut buf);
    let b64 = base64::engine::general_purpose::STANDARD;
    let digest = b64.encode(alg.digest.digest(&buf));
    let key_info = cert
        .map(|c| format!("<ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>", c.base64()))
        .unwrap_or_default();
    let signature = format!(
        "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo>\
         <ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>\
         <ds:SignatureMethod Algorithm=\"{}\"/><ds:Reference URI=\"#{target_id}\"><ds:Transforms>\
         <ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>\
         <ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/></ds:Transforms>\
         <ds:DigestMethod Algorithm=\"{}\"/><ds:DigestValue>{digest}</ds:DigestValue></ds:Reference>\
         </ds:SignedInfo><ds:SignatureValue>{PLACEHOLDER}</ds:SignatureValue>{key_info}</ds:Signature>",
        alg.uri(),
        alg.digest.uri(),
    );
    if insert_at > xml.len() || !xml.is_char_boundary(insert_at) {
        return Err(SignError("insertion point outside the document".into()));
    }
    let with_sig = format!("{}{}{}", &xml[..insert_at], signature, &xml[insert_at..]);
    // Canonicalise SignedInfo as a verifier will: in place, in its final context.
    let doc2 = Document::parse(with_sig.as_bytes(), &limits)
        .map_err(|e| SignError(format!("signed XML does not parse: {e}")))?;
    let si = doc2
        .find_all(crate::saml::xml::ns::DS, "SignedInfo")
        .find(|&n| doc2.parent(n).and_then(|p| doc2.parent(p)) == Some(target))
        .ok_or_else(|| SignError("signature not placed inside the target element".into()))?;
    buf.clear();
    c14n::canonicalize(&doc2, si, None, &ExcC14n::default(), &mut buf);
    let value = b64.encode(key.sign(alg, &buf)?);
    Ok(with_sig.replacen(PLACEHOLDER, &value, 1))
}
