//! Where signature keys come from: the IdP's configured certificates (several, for rollover), or
//! a configured fingerprint that the certificate carried in the message must match. Never from the
//! message alone.

use std::fmt;

use base64::Engine as _;
use openssl::pkey::{Id, PKey, Public};
use openssl::x509::X509;
use subtle::ConstantTimeEq as _;

use super::algorithms::DigestAlgorithm;
use crate::saml::error::SignatureError;

/// A certificate parsed once, at configuration time.
#[derive(Clone)]
pub struct TrustedCertificate {
    der: Vec<u8>,
    key: PKey<Public>,
    sha256: [u8; 32],
    x509: X509,
}

impl fmt::Debug for TrustedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedCertificate")
            .field("sha256", &self.sha256_hex())
            .field("subject", &self.subject())
            .finish()
    }
}

impl PartialEq for TrustedCertificate {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl TrustedCertificate {
    /// Reads a certificate given as PEM (one or more `BEGIN CERTIFICATE` blocks: the first is
    /// used), as DER, or as bare base64 (what metadata and KeyInfo hold; whitespace tolerated).
    pub fn from_any(input: &[u8]) -> Result<Self, SignatureError> {
        let text = String::from_utf8_lossy(input);
        if text.contains("-----BEGIN CERTIFICATE-----") {
            let x = X509::from_pem(input)
                .map_err(|e| cert_err(format!("PEM certificate does not parse: {e}")))?;
            let der = x.to_der().map_err(|e| cert_err(e.to_string()))?;
            return Self::from_der(&der);
        }
        if input.first() == Some(&0x30) {
            return Self::from_der(input);
        }
        Self::from_base64(&text)
    }

    /// Reads the base64 text of an `X509Certificate` element. Some ADFS exports put base64 of the
    /// *PEM text* there (double encoded): that is unwrapped, and the fingerprint is the real DER's.
    pub fn from_base64(text: &str) -> Result<Self, SignatureError> {
        let bytes = decode_base64_ws(text)
            .map_err(|e| cert_err(format!("certificate is not base64: {e}")))?;
        if bytes.starts_with(b"-----BEGIN CERTIFICATE-----") {
            let x = X509::from_pem(&bytes)
                .map_err(|e| cert_err(format!("PEM certificate does not parse: {e}")))?;
            let der = x.to_der().map_err(|e| cert_err(e.to_string()))?;
            return Self::from_der(&der);
        }
        Self::from_der(&bytes)
    }

    pub fn from_der(der: &[u8]) -> Result<Self, SignatureError> {
        let x = X509::from_der(der)
            .map_err(|e| cert_err(format!("certificate does not parse: {e}")))?;
        let key = x
            .public_key()
            .map_err(|e| cert_err(format!("certificate has no usable public key: {e}")))?;
        match key.id() {
            Id::RSA | Id::EC => {}
            other => {
                return Err(cert_err(format!(
                    "certificate key type {other:?} is not RSA or EC"
                )));
            }
        }
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(&DigestAlgorithm::Sha256.digest(der));
        Ok(TrustedCertificate {
            der: der.to_vec(),
            key,
            sha256,
            x509: x,
        })
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }
    pub(crate) fn key(&self) -> &PKey<Public> {
        &self.key
    }
    /// The subject, as `CN=…, O=…` (computed when asked: only messages need it).
    pub fn subject(&self) -> String {
        self.x509
            .subject_name()
            .entries()
            .map(|e| {
                let k = e.object().nid().short_name().unwrap_or("?");
                let v = e.data().to_string().unwrap_or_default();
                format!("{k}={v}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
    pub fn sha256_hex(&self) -> String {
        colon_hex(&self.sha256)
    }
    pub fn fingerprint(&self, alg: DigestAlgorithm) -> Vec<u8> {
        alg.digest(&self.der)
    }
    /// The certificate as base64 DER on one line (for metadata).
    pub fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.der)
    }
    /// A short description for messages: SHA-256 fingerprint and subject.
    pub fn describe(&self) -> String {
        format!(
            "certificate SHA-256 {} ({})",
            self.sha256_hex(),
            self.subject()
        )
    }
}

fn cert_err(why: String) -> SignatureError {
    SignatureError::Certificate { why }
}

/// A configured certificate fingerprint.
#[derive(Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub algorithm: DigestAlgorithm,
    value: Vec<u8>,
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.algorithm.name(), colon_hex(&self.value))
    }
}

impl Fingerprint {
    /// Parses `ALG:HEX` (ALG one of sha1, sha256, sha384, sha512; HEX with or without colons or
    /// spaces, any case), or a bare HEX whose length tells the algorithm.
    pub fn parse(s: &str) -> Result<Fingerprint, String> {
        let s = s.trim();
        let (alg_name, hex_part) = match s.split_once(':') {
            Some((a, rest)) if a.to_ascii_lowercase().starts_with("sha") => {
                (Some(a.to_ascii_lowercase()), rest)
            }
            _ => (None, s),
        };
        let clean: String = hex_part
            .chars()
            .filter(|c| !matches!(c, ':' | ' ' | '-'))
            .collect();
        let value = hex::decode(&clean)
            .map_err(|_| format!("fingerprint \"{hex_part}\" is not hexadecimal"))?;
        let by_len = match value.len() {
            20 => DigestAlgorithm::Sha1,
            32 => DigestAlgorithm::Sha256,
            48 => DigestAlgorithm::Sha384,
            64 => DigestAlgorithm::Sha512,
            n => {
                return Err(format!(
                    "fingerprint has {n} bytes; SHA-1/256/384/512 have 20/32/48/64"
                ));
            }
        };
        let algorithm = match alg_name.as_deref() {
            None => by_len,
            Some("sha1" | "sha-1") => DigestAlgorithm::Sha1,
            Some("sha256" | "sha-256") => DigestAlgorithm::Sha256,
            Some("sha384" | "sha-384") => DigestAlgorithm::Sha384,
            Some("sha512" | "sha-512") => DigestAlgorithm::Sha512,
            Some(other) => return Err(format!("unknown fingerprint algorithm \"{other}\"")),
        };
        if algorithm != by_len {
            return Err(format!(
                "a {} fingerprint has {} bytes, this one {}",
                algorithm.name(),
                algorithm.output_len(),
                value.len()
            ));
        }
        Ok(Fingerprint { algorithm, value })
    }

    pub fn new(algorithm: DigestAlgorithm, value: Vec<u8>) -> Result<Self, String> {
        if value.len() != algorithm.output_len() {
            return Err(format!(
                "a {} fingerprint has {} bytes",
                algorithm.name(),
                algorithm.output_len()
            ));
        }
        Ok(Fingerprint { algorithm, value })
    }

    /// The fingerprint's bytes.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// Constant-time comparison with the certificate's fingerprint.
    pub fn matches(&self, cert: &TrustedCertificate) -> bool {
        let got = cert.fingerprint(self.algorithm);
        got.len() == self.value.len() && bool::from(got.ct_eq(&self.value))
    }
}

/// How an IdP's signatures are trusted.
#[derive(Debug, Clone, PartialEq)]
pub enum IdpTrust {
    /// Any of these certificates (several during a key rollover).
    Certificates(Vec<TrustedCertificate>),
    /// The single certificate in the signature's KeyInfo, if its fingerprint is this one.
    Fingerprint(Fingerprint),
}

impl IdpTrust {
    /// A SHA-1 fingerprint is a SHA-1 trust decision: allowed only where SHA-1 is (an IdP marked
    /// legacy), like SHA-1 digests and signatures.
    pub fn check_policy(
        &self,
        policy: super::AlgorithmPolicy,
    ) -> Result<(), crate::saml::SignatureError> {
        match self {
            IdpTrust::Fingerprint(f)
                if f.algorithm == super::DigestAlgorithm::Sha1 && !policy.allow_sha1 =>
            {
                Err(crate::saml::SignatureError::AlgorithmForbidden {
                    algorithm: "SHA-1 certificate fingerprint".into(),
                    why: "SHA-1 is accepted only for an IdP marked legacy (allow SHA-1); configure \
                          a SHA-256 fingerprint or the certificate itself",
                })
            }
            _ => Ok(()),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            IdpTrust::Certificates(c) if c.len() == 1 => {
                format!("the configured {}", c[0].describe())
            }
            IdpTrust::Certificates(c) => {
                let list: Vec<String> = c.iter().map(|c| c.sha256_hex()).collect();
                format!(
                    "any of the {} configured certificates (SHA-256 {})",
                    c.len(),
                    list.join("; ")
                )
            }
            IdpTrust::Fingerprint(f) => format!("the certificate with fingerprint {f}"),
        }
    }
}

pub(crate) fn colon_hex(b: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(b.len() * 3);
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push(char::from(HEX[usize::from(x >> 4)]));
        s.push(char::from(HEX[usize::from(x & 15)]));
    }
    s
}

/// Base64 with any ASCII whitespace inside (as XML text carries it). Padding is required.
pub(crate) fn decode_base64_ws(text: &str) -> Result<Vec<u8>, Base64Error> {
    decode_base64_bytes(text.as_bytes())
}

/// Why base64 did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base64Error;

impl fmt::Display for Base64Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid base64 (bad character, length or padding)")
    }
}

pub(crate) fn decode_base64_bytes(b: &[u8]) -> Result<Vec<u8>, Base64Error> {
    let has_ws = memchr::memchr3(b' ', b'\n', b'\r', b).is_some()
        || memchr::memchr2(b'\t', b'\x0c', b).is_some();
    if !has_ws {
        return base64_simd::STANDARD
            .decode_to_vec(b)
            .map_err(|_| Base64Error);
    }
    // Line-wrapped base64 (76 columns is common): copy the runs between line breaks and spaces.
    let mut clean = Vec::with_capacity(b.len());
    let mut rest = b;
    while let Some(i) = memchr::memchr3(b'\n', b'\r', b' ', rest) {
        clean.extend_from_slice(&rest[..i]);
        rest = &rest[i + 1..];
    }
    clean.extend_from_slice(rest);
    if memchr::memchr2(b'\t', b'\x0c', &clean).is_some() {
        clean.retain(|c| !c.is_ascii_whitespace());
    }
    base64_simd::STANDARD
        .decode_to_vec(&clean)
        .map_err(|_| Base64Error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_with_any_whitespace() {
        assert_eq!(
            decode_base64_ws("aGVs\nbG8g\r\nd29y\tbGQ=").expect("ok"),
            b"hello world"
        );
        assert_eq!(
            decode_base64_ws(" aGVsbG8gd29ybGQ= ").expect("ok"),
            b"hello world"
        );
        assert!(
            decode_base64_ws("aGVsbG8gd29ybGQ").is_err(),
            "padding is required"
        );
        assert!(decode_base64_ws("aGVs*G8=").is_err());
    }

    #[test]
    fn fingerprint_parsing_tolerates_colons_and_case() {
        let a =
            Fingerprint::parse("sha1:AF:E7:1C:28:EF:74:0B:C8:74:25:BE:13:A2:26:3D:37:97:1D:A1:F9")
                .expect("ok");
        let b = Fingerprint::parse("afe71c28ef740bc87425be13a2263d37971da1f9").expect("ok");
        assert_eq!(a, b);
        assert_eq!(a.algorithm, DigestAlgorithm::Sha1);
        assert!(Fingerprint::parse("sha256:afe71c28ef740bc87425be13a2263d37971da1f9").is_err());
        assert!(Fingerprint::parse("sha1:zz").is_err());
        assert!(Fingerprint::parse("md5:00112233445566778899aabbccddeeff").is_err());
    }
}
