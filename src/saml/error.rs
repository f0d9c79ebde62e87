//! Every way a SAML message can be refused: a stable snake_case [`Error::code`] for machines and
//! logs, and a sentence (`Display`) naming the element and the value for the administrator.
//! Neither is ever meant for the browser: the web layer answers "Authentication failed".

use std::fmt;

use super::echo::{Echo, EchoList};
use super::time::UnixTime;
use super::xml::{Malformed, MalformedKind};

/// A refused message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a well-formed message of the expected shape.
    Malformed(MessageError),
    /// The signature is missing, misplaced, of a refused kind, or does not verify.
    Signature(SignatureError),
    /// Well-formed and authentic, but not for us, not now, or not usable.
    Rejected(Rejection),
}

impl Error {
    /// The stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Malformed(e) => e.code(),
            Error::Signature(e) => e.code(),
            Error::Rejected(e) => e.code(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Malformed(e) => e.fmt(f),
            Error::Signature(e) => e.fmt(f),
            Error::Rejected(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {}

impl From<MessageError> for Error {
    fn from(e: MessageError) -> Self {
        Error::Malformed(e)
    }
}
impl From<SignatureError> for Error {
    fn from(e: SignatureError) -> Self {
        Error::Signature(e)
    }
}
impl From<Rejection> for Error {
    fn from(e: Rejection) -> Self {
        Error::Rejected(e)
    }
}
impl From<Malformed> for Error {
    fn from(e: Malformed) -> Self {
        Error::Malformed(MessageError::Xml(e))
    }
}

/// The message could not be read as the expected SAML message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageError {
    Xml(Malformed),
    Base64(String),
    Inflate(String),
    WrongRoot {
        expected: &'static str,
        got: String,
    },
    UnsupportedVersion {
        element: &'static str,
        version: String,
    },
    MissingElement {
        element: &'static str,
        parent: &'static str,
    },
    DuplicateElement {
        element: &'static str,
        parent: &'static str,
        count: usize,
    },
    MissingAttribute {
        element: &'static str,
        attribute: &'static str,
    },
    BadTime {
        element: &'static str,
        attribute: &'static str,
        value: String,
    },
    NoAssertion,
    MultipleAssertions {
        count: usize,
    },
    DuplicateId {
        id: String,
    },
    BadQuery(String),
}

impl MessageError {
    pub fn code(&self) -> &'static str {
        use MessageError::*;
        match self {
            Xml(m) => match m.kind {
                MalformedKind::TooLarge { .. } => "too_large",
                MalformedKind::Doctype => "doctype_forbidden",
                MalformedKind::TooDeep { .. } => "too_deep",
                MalformedKind::TooManyAttributes { .. } => "too_many_attributes",
                MalformedKind::TooManyNodes { .. } => "too_many_nodes",
                MalformedKind::TooManyNamespaces { .. } => "too_many_namespaces",
                MalformedKind::NotUtf8 => "not_utf8",
                MalformedKind::UnknownEntity(_) => "entity_forbidden",
                _ => "malformed_xml",
            },
            Base64(_) => "bad_base64",
            Inflate(_) => "bad_deflate",
            WrongRoot { .. } => "wrong_message_type",
            UnsupportedVersion { .. } => "unsupported_version",
            MissingElement { .. } => "missing_element",
            DuplicateElement { .. } => "duplicate_element",
            MissingAttribute { .. } => "missing_attribute",
            BadTime { .. } => "bad_time",
            NoAssertion => "no_assertion",
            MultipleAssertions { .. } => "multiple_assertions",
            DuplicateId { .. } => "duplicate_id",
            BadQuery(_) => "bad_query",
        }
    }
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use MessageError::*;
        match self {
            Xml(m) => write!(f, "{m}"),
            Base64(s) => write!(f, "not valid base64: {}", Echo(s)),
            Inflate(s) => write!(f, "HTTP-Redirect payload does not inflate: {}", Echo(s)),
            WrongRoot { expected, got } => {
                write!(f, "root element is {}, expected {expected}", Echo(got))
            }
            UnsupportedVersion { element, version } => {
                write!(
                    f,
                    "{element} has Version=\"{}\", expected \"2.0\"",
                    Echo(version)
                )
            }
            MissingElement { element, parent } => write!(f, "{parent} has no {element}"),
            DuplicateElement {
                element,
                parent,
                count,
            } => write!(f, "{parent} has {count} {element} elements, expected one"),
            MissingAttribute { element, attribute } => {
                write!(f, "{element} has no {attribute} attribute")
            }
            BadTime {
                element,
                attribute,
                value,
            } => write!(
                f,
                "{element}/@{attribute} is not an xs:dateTime: \"{}\"",
                Echo(value)
            ),
            NoAssertion => write!(f, "the Response holds no Assertion or EncryptedAssertion"),
            MultipleAssertions { count } => {
                write!(
                    f,
                    "the document holds {count} assertions; exactly one, as a child of the Response, is accepted"
                )
            }
            DuplicateId { id } => write!(f, "ID \"{}\" appears on more than one element", Echo(id)),
            BadQuery(s) => write!(f, "bad HTTP-Redirect query: {}", Echo(s)),
        }
    }
}

/// What is wrong with a signature (or the lack of one).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureError {
    /// Neither the Response nor the Assertion carries a signature.
    Unsigned {
        what: &'static str,
    },
    /// A ds:Signature that is not the enveloped signature of the Response or Assertion (after Issuer).
    Misplaced {
        parent: String,
    },
    /// Two ds:Signature children on one element.
    MultipleSignatures {
        parent: String,
    },
    /// ds:Object, ds:Manifest or another unexpected child.
    UnexpectedElement {
        element: String,
        parent: &'static str,
    },
    MissingElement {
        element: &'static str,
    },
    /// SignedInfo has more than one (or no) Reference.
    ReferenceCount {
        count: usize,
    },
    /// Reference URI is not `#` + the ID of the signed element.
    ReferenceUri {
        uri: String,
    },
    ReferenceTarget {
        uri: String,
        expected: String,
    },
    /// A transform outside {enveloped-signature, exc-c14n}, or a bad combination.
    Transform {
        algorithm: String,
    },
    CanonicalizationMethod {
        algorithm: String,
    },
    /// More than one InclusiveNamespaces, or a PrefixList that is too long or not prefixes.
    InclusiveNamespaces {
        why: String,
    },
    /// More X509Certificate elements in KeyInfo than any IdP sends.
    KeyInfoCertificates {
        count: usize,
    },
    /// An algorithm this IdP may not use (SHA-1 without the legacy switch, HMAC, DSA, MD5).
    AlgorithmForbidden {
        algorithm: String,
        why: &'static str,
    },
    AlgorithmUnknown {
        algorithm: String,
    },
    /// RetrievalMethod or another KeyInfo child that would make us fetch something.
    KeyInfoForbidden {
        element: String,
    },
    BadValue {
        element: &'static str,
        why: String,
    },
    DigestMismatch {
        reference: String,
        algorithm: &'static str,
    },
    /// The signature value does not verify with the trusted key(s).
    Invalid {
        element: &'static str,
        expected: String,
        carried: String,
    },
    /// Fingerprint mode: the KeyInfo certificate's fingerprint is not the configured one.
    FingerprintMismatch {
        expected: String,
        got: String,
    },
    /// Fingerprint mode: no (or more than one) X509Certificate in KeyInfo.
    FingerprintCertificateCount {
        count: usize,
    },
    Certificate {
        why: String,
    },
    KeyMismatch {
        algorithm: &'static str,
        key: String,
    },
    /// The signature verifies with a configured key, but KeyInfo carries only other keys.
    KeyInfoMismatch {
        verified_with: String,
        carried: String,
    },
    NoTrustedKey,
}

impl SignatureError {
    pub fn code(&self) -> &'static str {
        use SignatureError::*;
        match self {
            Unsigned { .. } => "unsigned",
            Misplaced { .. } => "signature_misplaced",
            MultipleSignatures { .. } => "multiple_signatures",
            UnexpectedElement { .. } => "signature_unexpected_element",
            MissingElement { .. } => "signature_missing_element",
            ReferenceCount { .. } => "reference_count",
            ReferenceUri { .. } => "reference_uri_forbidden",
            ReferenceTarget { .. } => "reference_not_enveloping",
            Transform { .. } => "transform_forbidden",
            CanonicalizationMethod { .. } => "c14n_method_forbidden",
            InclusiveNamespaces { .. } => "inclusive_namespaces_refused",
            KeyInfoCertificates { .. } => "key_info_too_many_certificates",
            AlgorithmForbidden { .. } => "algorithm_forbidden",
            AlgorithmUnknown { .. } => "algorithm_unknown",
            KeyInfoForbidden { .. } => "key_info_forbidden",
            BadValue { .. } => "signature_bad_value",
            DigestMismatch { .. } => "digest_mismatch",
            Invalid { .. } => "signature_invalid",
            FingerprintMismatch { .. } => "fingerprint_mismatch",
            FingerprintCertificateCount { .. } => "fingerprint_no_certificate",
            Certificate { .. } => "certificate_invalid",
            KeyMismatch { .. } => "key_algorithm_mismatch",
            KeyInfoMismatch { .. } => "key_info_mismatch",
            NoTrustedKey => "no_trusted_key",
        }
    }
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SignatureError::*;
        match self {
            Unsigned { what } => write!(f, "{what}"),
            Misplaced { parent } => write!(
                f,
                "a ds:Signature inside {} is not the enveloped signature of the Response or the Assertion \
                 (it must be their direct child, right after Issuer)",
                Echo(parent)
            ),
            MultipleSignatures { parent } => {
                write!(f, "{} carries more than one ds:Signature", Echo(parent))
            }
            UnexpectedElement { element, parent } => {
                write!(
                    f,
                    "{parent} contains {}, which is not allowed",
                    Echo(element)
                )
            }
            MissingElement { element } => write!(f, "ds:Signature lacks {element}"),
            ReferenceCount { count } => write!(
                f,
                "SignedInfo has {count} References; exactly one is accepted"
            ),
            ReferenceUri { uri } => write!(
                f,
                "Reference URI \"{}\" is refused: only \"#ID\" of the signed element is accepted (no XPointer, \
                 no empty URI, nothing outside the document)",
                Echo(uri)
            ),
            ReferenceTarget { uri, expected } => {
                write!(
                    f,
                    "Reference URI \"{}\" does not point to the element the signature sits in (ID \"{}\")",
                    Echo(uri),
                    Echo(expected)
                )
            }
            Transform { algorithm } => write!(
                f,
                "transform {} is refused: only enveloped-signature followed by exclusive c14n is accepted",
                Echo(algorithm)
            ),
            CanonicalizationMethod { algorithm } => write!(
                f,
                "CanonicalizationMethod {} is refused: only exclusive c14n (with or without comments) is accepted",
                Echo(algorithm)
            ),
            InclusiveNamespaces { why } => write!(f, "InclusiveNamespaces refused: {why}"),
            KeyInfoCertificates { count } => write!(
                f,
                "KeyInfo carries {count} X509Certificate elements; at most {} are read",
                crate::saml::xmldsig::MAX_KEY_INFO_CERTIFICATES
            ),
            AlgorithmForbidden { algorithm, why } => {
                write!(f, "algorithm {} is refused: {why}", Echo(algorithm))
            }
            AlgorithmUnknown { algorithm } => {
                write!(f, "algorithm {} is not supported", Echo(algorithm))
            }
            KeyInfoForbidden { element } => write!(
                f,
                "KeyInfo contains {}, which is refused (nothing is ever fetched)",
                Echo(element)
            ),
            BadValue { element, why } => write!(f, "{element} is unusable: {}", Echo(why)),
            DigestMismatch {
                reference,
                algorithm,
            } => write!(
                f,
                "the {algorithm} digest of the element {} does not match DigestValue: the content changed after signing",
                Echo(reference)
            ),
            Invalid {
                element,
                expected,
                carried,
            } => write!(
                f,
                "the {element} signature does not verify with {expected}; the message's KeyInfo carried {}",
                Echo(carried)
            ),
            FingerprintMismatch { expected, got } => {
                write!(
                    f,
                    "the certificate in KeyInfo has fingerprint {}, expected {expected}",
                    Echo(got)
                )
            }
            FingerprintCertificateCount { count } => write!(
                f,
                "fingerprint trust needs exactly one X509Certificate in the signature's KeyInfo, found {count}"
            ),
            Certificate { why } => write!(f, "certificate unusable: {}", Echo(why)),
            KeyMismatch { algorithm, key } => write!(
                f,
                "signature algorithm {algorithm} cannot be verified with a {key} key"
            ),
            KeyInfoMismatch {
                verified_with,
                carried,
            } => write!(
                f,
                "the signature verifies with the configured {verified_with}, but the message's KeyInfo carries {}, \
                 none of which holds that key",
                Echo(carried)
            ),
            NoTrustedKey => write!(
                f,
                "no trusted signing certificate or fingerprint is configured for this IdP"
            ),
        }
    }
}

/// A well-formed, authentic message that is still not acceptable here and now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    StatusNotSuccess {
        code: String,
        sub_code: Option<String>,
        message: Option<String>,
    },
    IssuerMismatch {
        element: &'static str,
        expected: String,
        got: String,
    },
    IssuerMissing {
        element: &'static str,
    },
    DestinationMismatch {
        expected: String,
        got: String,
    },
    DestinationMissing,
    RecipientMismatch {
        expected: String,
        got: String,
    },
    AudienceMissing,
    AudienceMismatch {
        expected: String,
        got: Vec<String>,
    },
    NotYetValid {
        element: &'static str,
        not_before: UnixTime,
        now: UnixTime,
        skew: i64,
    },
    Expired {
        element: &'static str,
        not_on_or_after: UnixTime,
        now: UnixTime,
        skew: i64,
    },
    IssuedInFuture {
        issue_instant: UnixTime,
        now: UnixTime,
        skew: i64,
    },
    SubjectConfirmationMissing,
    SubjectConfirmationIncomplete {
        attribute: &'static str,
    },
    InResponseToMissing {
        expected: String,
    },
    InResponseToMismatch {
        element: &'static str,
        expected: String,
        got: String,
    },
    UnsolicitedNotExpected {
        got: String,
    },
    UsernameMissing {
        source: String,
    },
    UsernameAmbiguous {
        source: String,
        count: usize,
    },
    UsernameNotSimple {
        source: String,
    },
    Replayed {
        id: String,
    },
    SessionExpired {
        session_not_on_or_after: UnixTime,
        now: UnixTime,
    },
    DecryptionKeyMissing,
    DecryptionFailed {
        why: String,
    },
    EncryptionAlgorithmForbidden {
        algorithm: String,
    },
    LogoutNameIdMissing,
}

impl Rejection {
    pub fn code(&self) -> &'static str {
        use Rejection::*;
        match self {
            StatusNotSuccess { .. } => "status_not_success",
            IssuerMismatch { .. } => "issuer_mismatch",
            IssuerMissing { .. } => "issuer_missing",
            DestinationMismatch { .. } => "destination_mismatch",
            DestinationMissing => "destination_missing",
            RecipientMismatch { .. } => "recipient_mismatch",
            AudienceMissing => "audience_missing",
            AudienceMismatch { .. } => "audience_mismatch",
            NotYetValid { .. } => "not_yet_valid",
            Expired { .. } => "expired",
            IssuedInFuture { .. } => "issued_in_future",
            SubjectConfirmationMissing => "subject_confirmation_missing",
            SubjectConfirmationIncomplete { .. } => "subject_confirmation_incomplete",
            InResponseToMissing { .. } => "in_response_to_missing",
            InResponseToMismatch { .. } => "in_response_to_mismatch",
            UnsolicitedNotExpected { .. } => "unexpected_in_response_to",
            UsernameMissing { .. } => "username_missing",
            UsernameAmbiguous { .. } => "username_ambiguous",
            UsernameNotSimple { .. } => "username_not_simple",
            Replayed { .. } => "replayed",
            SessionExpired { .. } => "session_expired",
            DecryptionKeyMissing => "decryption_key_missing",
            DecryptionFailed { .. } => "decryption_failed",
            EncryptionAlgorithmForbidden { .. } => "encryption_algorithm_forbidden",
            LogoutNameIdMissing => "name_id_missing",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Rejection::*;
        match self {
            StatusNotSuccess {
                code,
                sub_code,
                message,
            } => {
                write!(f, "the IdP answered StatusCode {}", Echo(code))?;
                if let Some(s) = sub_code {
                    write!(f, " / {}", Echo(s))?;
                }
                if let Some(m) = message {
                    write!(f, " (StatusMessage: \"{}\")", Echo(m))?;
                }
                Ok(())
            }
            IssuerMismatch {
                element,
                expected,
                got,
            } => write!(
                f,
                "{element}/Issuer is \"{}\", expected \"{expected}\"",
                Echo(got)
            ),
            IssuerMissing { element } => write!(f, "{element} has no Issuer"),
            DestinationMismatch { expected, got } => write!(
                f,
                "Response/@Destination is \"{}\", expected our ACS URL \"{expected}\"",
                Echo(got)
            ),
            DestinationMissing => write!(
                f,
                "the signed Response has no Destination (required for signed messages)"
            ),
            RecipientMismatch { expected, got } => write!(
                f,
                "SubjectConfirmationData/@Recipient is \"{}\", expected our ACS URL \"{expected}\"",
                Echo(got)
            ),
            AudienceMissing => write!(
                f,
                "the Assertion has no AudienceRestriction (required by the bearer profile)"
            ),
            AudienceMismatch { expected, got } => {
                write!(
                    f,
                    "AudienceRestriction lists {}, which does not include our entity ID \"{expected}\"",
                    EchoList(got)
                )
            }
            NotYetValid {
                element,
                not_before,
                now,
                skew,
            } => write!(
                f,
                "{element}/@NotBefore is {not_before}; now is {now} (allowed clock skew {skew} s): not yet valid"
            ),
            Expired {
                element,
                not_on_or_after,
                now,
                skew,
            } => write!(
                f,
                "{element}/@NotOnOrAfter is {not_on_or_after}; now is {now} (allowed clock skew {skew} s): expired"
            ),
            IssuedInFuture {
                issue_instant,
                now,
                skew,
            } => write!(
                f,
                "Assertion/@IssueInstant is {issue_instant}, in the future (now {now}, allowed clock skew {skew} s)"
            ),
            SubjectConfirmationMissing => {
                write!(f, "the Assertion has no bearer SubjectConfirmation")
            }
            SubjectConfirmationIncomplete { attribute } => {
                write!(f, "the bearer SubjectConfirmationData has no {attribute}")
            }
            InResponseToMissing { expected } => write!(
                f,
                "the response answers no request (no InResponseTo), but we sent request \"{expected}\""
            ),
            InResponseToMismatch {
                element,
                expected,
                got,
            } => {
                write!(
                    f,
                    "{element}/@InResponseTo is \"{}\", expected our request \"{expected}\"",
                    Echo(got)
                )
            }
            UnsolicitedNotExpected { got } => write!(
                f,
                "the response answers request \"{}\", but no request of ours is pending for it",
                Echo(got)
            ),
            UsernameMissing { source } => write!(f, "the Assertion has no {source}"),
            UsernameAmbiguous { source, count } => write!(
                f,
                "the Assertion has {count} values for {source}; exactly one is accepted"
            ),
            UsernameNotSimple { source } => write!(f, "{source} holds elements, not plain text"),
            Replayed { id } => write!(f, "assertion \"{}\" was already used", Echo(id)),
            SessionExpired {
                session_not_on_or_after,
                now,
            } => write!(
                f,
                "AuthnStatement/@SessionNotOnOrAfter is {session_not_on_or_after}, already past (now {now})"
            ),
            DecryptionKeyMissing => write!(
                f,
                "the assertion is encrypted and no SP decryption key is configured"
            ),
            DecryptionFailed { why } => write!(
                f,
                "the EncryptedAssertion could not be decrypted with the SP key: {}",
                Echo(why)
            ),
            EncryptionAlgorithmForbidden { algorithm } => {
                write!(f, "encryption algorithm {} is refused", Echo(algorithm))
            }
            LogoutNameIdMissing => write!(f, "the LogoutRequest has no NameID"),
        }
    }
}
