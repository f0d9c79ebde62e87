//! The exact-URI allow-list of XML Signature algorithms, and digests.

use sha2::Digest as _;

use crate::saml::error::SignatureError;

/// Whether SHA-1 may be used (only for an IdP explicitly marked legacy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlgorithmPolicy {
    pub allow_sha1: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl DigestAlgorithm {
    pub const SHA1_URI: &'static str = "http://www.w3.org/2000/09/xmldsig#sha1";
    pub const SHA256_URI: &'static str = "http://www.w3.org/2001/04/xmlenc#sha256";
    pub const SHA384_URI: &'static str = "http://www.w3.org/2001/04/xmldsig-more#sha384";
    pub const SHA512_URI: &'static str = "http://www.w3.org/2001/04/xmlenc#sha512";

    pub fn from_uri(uri: &str, policy: AlgorithmPolicy) -> Result<Self, SignatureError> {
        let alg = match uri {
            Self::SHA1_URI => DigestAlgorithm::Sha1,
            Self::SHA256_URI => DigestAlgorithm::Sha256,
            Self::SHA384_URI => DigestAlgorithm::Sha384,
            Self::SHA512_URI => DigestAlgorithm::Sha512,
            "http://www.w3.org/2001/04/xmldsig-more#md5" => {
                return Err(forbidden(uri, "MD5 is broken"));
            }
            // Non-standard URIs that lenient libraries map to something (ruby-saml's ADFS fixtures).
            "http://www.w3.org/2001/04/xmlenc#sha1" | "http://www.w3.org/2001/04/xmlenc#sha384" => {
                return Err(forbidden(uri, "not a standard XML Signature digest URI"));
            }
            _ => {
                return Err(SignatureError::AlgorithmUnknown {
                    algorithm: uri.to_string(),
                });
            }
        };
        if alg == DigestAlgorithm::Sha1 && !policy.allow_sha1 {
            return Err(forbidden(
                uri,
                "SHA-1 is accepted only for an IdP marked legacy (--allow-sha1)",
            ));
        }
        Ok(alg)
    }

    pub fn uri(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha1 => Self::SHA1_URI,
            DigestAlgorithm::Sha256 => Self::SHA256_URI,
            DigestAlgorithm::Sha384 => Self::SHA384_URI,
            DigestAlgorithm::Sha512 => Self::SHA512_URI,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha1 => "SHA-1",
            DigestAlgorithm::Sha256 => "SHA-256",
            DigestAlgorithm::Sha384 => "SHA-384",
            DigestAlgorithm::Sha512 => "SHA-512",
        }
    }

    pub fn output_len(self) -> usize {
        match self {
            DigestAlgorithm::Sha1 => 20,
            DigestAlgorithm::Sha256 => 32,
            DigestAlgorithm::Sha384 => 48,
            DigestAlgorithm::Sha512 => 64,
        }
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            DigestAlgorithm::Sha1 => sha1::Sha1::digest(data).to_vec(),
            DigestAlgorithm::Sha256 => sha2::Sha256::digest(data).to_vec(),
            DigestAlgorithm::Sha384 => sha2::Sha384::digest(data).to_vec(),
            DigestAlgorithm::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    pub(crate) fn message_digest(self) -> openssl::hash::MessageDigest {
        use openssl::hash::MessageDigest;
        match self {
            DigestAlgorithm::Sha1 => MessageDigest::sha1(),
            DigestAlgorithm::Sha256 => MessageDigest::sha256(),
            DigestAlgorithm::Sha384 => MessageDigest::sha384(),
            DigestAlgorithm::Sha512 => MessageDigest::sha512(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    Ecdsa,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureAlgorithm {
    pub key: KeyKind,
    pub digest: DigestAlgorithm,
}

impl SignatureAlgorithm {
    pub const RSA_SHA1: &'static str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
    pub const RSA_SHA256: &'static str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
    pub const RSA_SHA384: &'static str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384";
    pub const RSA_SHA512: &'static str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512";
    pub const ECDSA_SHA256: &'static str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";
    pub const ECDSA_SHA384: &'static str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384";
    pub const ECDSA_SHA512: &'static str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512";

    pub const RSA_SHA256_ALG: SignatureAlgorithm = SignatureAlgorithm {
        key: KeyKind::Rsa,
        digest: DigestAlgorithm::Sha256,
    };

    pub fn from_uri(uri: &str, policy: AlgorithmPolicy) -> Result<Self, SignatureError> {
        use DigestAlgorithm::*;
        use KeyKind::*;
        let (key, digest) = match uri {
            Self::RSA_SHA1 => (Rsa, Sha1),
            Self::RSA_SHA256 => (Rsa, Sha256),
            Self::RSA_SHA384 => (Rsa, Sha384),
            Self::RSA_SHA512 => (Rsa, Sha512),
            Self::ECDSA_SHA256 => (Ecdsa, Sha256),
            Self::ECDSA_SHA384 => (Ecdsa, Sha384),
            Self::ECDSA_SHA512 => (Ecdsa, Sha512),
            u if u.contains("hmac") => {
                return Err(forbidden(
                    u,
                    "HMAC signatures use a shared secret, never an IdP's public key",
                ));
            }
            u if u.contains("dsa-") && !u.contains("ecdsa") => {
                return Err(forbidden(u, "DSA is not accepted"));
            }
            u if u.contains("md5") => return Err(forbidden(u, "MD5 is broken")),
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha1"
            | "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1" => {
                return Err(forbidden(
                    uri,
                    "not accepted (non-standard or SHA-1 ECDSA URI)",
                ));
            }
            _ => {
                return Err(SignatureError::AlgorithmUnknown {
                    algorithm: uri.to_string(),
                });
            }
        };
        if digest == Sha1 && !policy.allow_sha1 {
            return Err(forbidden(
                uri,
                "SHA-1 is accepted only for an IdP marked legacy (--allow-sha1)",
            ));
        }
        Ok(SignatureAlgorithm { key, digest })
    }

    pub fn uri(self) -> &'static str {
        use DigestAlgorithm::*;
        match (self.key, self.digest) {
            (KeyKind::Rsa, Sha1) => Self::RSA_SHA1,
            (KeyKind::Rsa, Sha256) => Self::RSA_SHA256,
            (KeyKind::Rsa, Sha384) => Self::RSA_SHA384,
            (KeyKind::Rsa, Sha512) => Self::RSA_SHA512,
            (KeyKind::Ecdsa, Sha1) => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1",
            (KeyKind::Ecdsa, Sha256) => Self::ECDSA_SHA256,
            (KeyKind::Ecdsa, Sha384) => Self::ECDSA_SHA384,
            (KeyKind::Ecdsa, Sha512) => Self::ECDSA_SHA512,
        }
    }

    pub fn name(self) -> &'static str {
        use DigestAlgorithm::*;
        match (self.key, self.digest) {
            (KeyKind::Rsa, Sha1) => "RSA-SHA1",
            (KeyKind::Rsa, Sha256) => "RSA-SHA256",
            (KeyKind::Rsa, Sha384) => "RSA-SHA384",
            (KeyKind::Rsa, Sha512) => "RSA-SHA512",
            (KeyKind::Ecdsa, Sha1) => "ECDSA-SHA1",
            (KeyKind::Ecdsa, Sha256) => "ECDSA-SHA256",
            (KeyKind::Ecdsa, Sha384) => "ECDSA-SHA384",
            (KeyKind::Ecdsa, Sha512) => "ECDSA-SHA512",
        }
    }
}

fn forbidden(uri: &str, why: &'static str) -> SignatureError {
    SignatureError::AlgorithmForbidden {
        algorithm: uri.to_string(),
        why,
    }
}

/// Transform URIs.
pub const ENVELOPED_SIGNATURE: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
