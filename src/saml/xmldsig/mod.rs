//! XML Signature (enveloped, exclusive c14n) written for SAML: verify what the IdP signed, sign
//! what we send.

pub mod algorithms;
pub mod c14n;
pub mod sign;
pub mod trust;
pub mod verify;

pub use algorithms::{AlgorithmPolicy, DigestAlgorithm, KeyKind, SignatureAlgorithm};
pub use sign::{SignError, SigningKey, sign_enveloped};
pub use trust::{Fingerprint, IdpTrust, TrustedCertificate};
pub use verify::MAX_KEY_INFO_CERTIFICATES;
