//! SAML 2.0 bindings (SAML Bindings §3.4, §3.5): HTTP-Redirect (DEFLATE, base64, URL-encoding,
//! query-string signature) and HTTP-POST (base64 form value, auto-submitting form).
//!
//! Redirect signatures are verified over the *raw* query substrings exactly as received, in the
//! order the spec gives (`SAMLRequest`/`SAMLResponse`, `RelayState`, `SigAlg`): ADFS and Entra
//! percent-encode in lower case, and re-encoding would break their signatures. A parameter that
//! appears twice, or a missing `SigAlg`/`Signature` where a signature is required, is an error.

use std::io::Read as _;

use base64::Engine as _;
use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::error::{Error, MessageError, SignatureError};
use super::xml::Limits;
use super::xmldsig::trust::{decode_base64_bytes, decode_base64_ws};
use super::xmldsig::verify::verify_value;
use super::xmldsig::{AlgorithmPolicy, IdpTrust, SignatureAlgorithm, SigningKey};

/// Characters left as they are in query values: RFC 3986 unreserved.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Longest RelayState accepted (Bindings §3.4.3: "MUST NOT exceed 80 bytes"; we allow more, since
/// some IdPs send URLs, but not without bound).
pub const MAX_RELAY_STATE: usize = 1024;

/// Which parameter carries the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Request,
    Response,
}

impl MessageKind {
    pub fn param(self) -> &'static str {
        match self {
            MessageKind::Request => "SAMLRequest",
            MessageKind::Response => "SAMLResponse",
        }
    }
}

fn bad(s: impl Into<String>) -> Error {
    Error::Malformed(MessageError::BadQuery(s.into()))
}

/// Decodes a `SAMLResponse`/`SAMLRequest` HTTP-POST form value (base64, whitespace tolerated).
pub fn decode_post(value: &[u8], limits: &Limits) -> Result<Vec<u8>, Error> {
    // base64 is 4/3 of the XML, plus line breaks when wrapped (every 64 or 76 characters):
    // refuse before decoding anything bigger than the XML cap allows.
    let encoded = limits.max_bytes.div_ceil(3) * 4;
    let cap = encoded + encoded / 32 + 4096;
    if value.len() > cap {
        return Err(Error::Malformed(MessageError::Xml(super::xml::Malformed {
            kind: super::xml::MalformedKind::TooLarge {
                size: value.len(),
                limit: cap,
            },
            offset: 0,
        })));
    }
    let bytes = decode_base64_bytes(value)
        .map_err(|e| Error::Malformed(MessageError::Base64(e.to_string())))?;
    // A few IdPs DEFLATE the POSTed message as if it were the Redirect binding: XML starts with
    // '<' (or a byte-order mark, or whitespace); anything else gets one bounded inflate attempt.
    let looks_like_xml = matches!(
        bytes.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'<' | 0xEF)
    );
    if looks_like_xml {
        return Ok(bytes);
    }
    inflate_bounded(&bytes, limits.max_bytes).map_err(|_| {
        Error::Malformed(MessageError::Base64(
            "decodes to neither XML nor DEFLATE data".into(),
        ))
    })
}

/// A message received by HTTP-Redirect.
#[derive(Debug, Clone)]
pub struct RedirectMessage {
    pub kind: MessageKind,
    /// The inflated XML.
    pub xml: Vec<u8>,
    pub relay_state: Option<String>,
    signature: Option<RedirectSignature>,
}

#[derive(Debug, Clone)]
struct RedirectSignature {
    algorithm: Result<SignatureAlgorithm, SignatureError>,
    /// The exact octets that were signed: the raw query substrings.
    signed: String,
    value: Vec<u8>,
}

impl RedirectMessage {
    pub fn is_signed(&self) -> bool {
        self.signature.is_some()
    }

    /// Verifies the query-string signature with the IdP's certificates. Fingerprint trust cannot be
    /// used here: a Redirect message carries no certificate.
    pub fn verify_signature(&self, trust: &IdpTrust) -> Result<(), Error> {
        let sig = self.signature.as_ref().ok_or(SignatureError::Unsigned {
            what: "the HTTP-Redirect message has no Signature",
        })?;
        let alg = sig.algorithm.clone()?;
        let certs = match trust {
            IdpTrust::Certificates(c) if !c.is_empty() => c,
            IdpTrust::Certificates(_) => return Err(SignatureError::NoTrustedKey.into()),
            IdpTrust::Fingerprint(_) => {
                return Err(SignatureError::FingerprintCertificateCount { count: 0 }.into());
            }
        };
        for c in certs {
            if verify_value(c.key(), alg, sig.signed.as_bytes(), &sig.value).unwrap_or(false) {
                return Ok(());
            }
        }
        Err(SignatureError::Invalid {
            element: "HTTP-Redirect query",
            expected: trust.describe(),
            carried: "no certificate (Redirect binding)".into(),
        }
        .into())
    }
}

/// Splits a raw query string into the SAML parameters, keeping each value's raw encoding.
/// Returns (kind, message raw, relay raw, sigalg raw, signature raw).
type RawParams<'q> = (
    MessageKind,
    &'q str,
    Option<&'q str>,
    Option<&'q str>,
    Option<&'q str>,
);

fn split_query(query: &str) -> Result<RawParams<'_>, Error> {
    let query = query.strip_prefix('?').unwrap_or(query);
    let (mut req, mut resp, mut relay, mut sigalg, mut sig) = (None, None, None, None, None);
    for pair in query.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (name, _) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match name {
            "SAMLRequest" => &mut req,
            "SAMLResponse" => &mut resp,
            "RelayState" => &mut relay,
            "SigAlg" => &mut sigalg,
            "Signature" => &mut sig,
            _ => continue,
        };
        if slot.replace(pair).is_some() {
            return Err(bad(format!("parameter {name} appears more than once")));
        }
    }
    let (kind, msg) = match (req, resp) {
        (Some(r), None) => (MessageKind::Request, r),
        (None, Some(r)) => (MessageKind::Response, r),
        (Some(_), Some(_)) => return Err(bad("both SAMLRequest and SAMLResponse are present")),
        (None, None) => return Err(bad("neither SAMLRequest nor SAMLResponse is present")),
    };
    Ok((kind, msg, relay, sigalg, sig))
}

fn value_of(pair: &str) -> &str {
    pair.split_once('=').map(|(_, v)| v).unwrap_or("")
}

fn url_decode(raw: &str, plus_is_space: bool) -> Result<String, Error> {
    let s = if plus_is_space {
        raw.replace('+', " ")
    } else {
        raw.to_string()
    };
    percent_decode_str(&s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| bad("parameter is not UTF-8"))
}

/// Decodes an HTTP-Redirect message from the raw query string (as received, not re-encoded).
pub fn decode_redirect(
    raw_query: &str,
    limits: &Limits,
    policy: AlgorithmPolicy,
) -> Result<RedirectMessage, Error> {
    if raw_query.len() > limits.max_bytes {
        return Err(bad(format!(
            "query string is {} bytes, over the {}-byte limit",
            raw_query.len(),
            limits.max_bytes
        )));
    }
    let (kind, msg, relay, sigalg, sig) = split_query(raw_query)?;
    let b64 = url_decode(value_of(msg), false)?;
    let deflated = decode_base64_ws(&b64)
        .map_err(|e| Error::Malformed(MessageError::Base64(e.to_string())))?;
    let xml = inflate_bounded(&deflated, limits.max_bytes)?;
    let relay_state = match relay {
        Some(r) => {
            let v = url_decode(value_of(r), true)?;
            if v.len() > MAX_RELAY_STATE {
                return Err(bad(format!(
                    "RelayState is {} bytes, over {MAX_RELAY_STATE}",
                    v.len()
                )));
            }
            Some(v)
        }
        None => None,
    };
    let signature = match (sigalg, sig) {
        (None, None) => None,
        (Some(_), None) => return Err(bad("SigAlg is present but Signature is missing")),
        (None, Some(_)) => return Err(bad("Signature is present but SigAlg is missing")),
        (Some(a), Some(s)) => {
            // Bindings §3.4.4.1: the signed octets are the raw "name=value" substrings joined by '&'.
            let mut signed = String::with_capacity(msg.len() + 256);
            signed.push_str(msg);
            if let Some(r) = relay {
                signed.push('&');
                signed.push_str(r);
            }
            signed.push('&');
            signed.push_str(a);
            let alg_uri = url_decode(value_of(a), true)?;
            let value = decode_base64_ws(&url_decode(value_of(s), false)?)
                .map_err(|e| bad(format!("Signature is not base64: {e}")))?;
            Some(RedirectSignature {
                algorithm: SignatureAlgorithm::from_uri(&alg_uri, policy),
                signed,
                value,
            })
        }
    };
    Ok(RedirectMessage {
        kind,
        xml,
        relay_state,
        signature,
    })
}

/// How many times its compressed size a DEFLATEd message may inflate to (above a 16 KiB floor).
/// XML compresses by a factor of 3 to 20; more than this is a bomb, refused before it costs the
/// parser anything.
pub const MAX_INFLATE_RATIO: usize = 64;

/// Inflates raw DEFLATE, refusing output beyond `limit` bytes or beyond [`MAX_INFLATE_RATIO`]
/// times the input (decompression bombs).
pub fn inflate_bounded(data: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
    let by_ratio = data.len().saturating_mul(MAX_INFLATE_RATIO).max(16 * 1024);
    let limit = limit.min(by_ratio);
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(limit));
    let mut dec = DeflateDecoder::new(data).take(limit as u64 + 1);
    dec.read_to_end(&mut out)
        .map_err(|e| Error::Malformed(MessageError::Inflate(e.to_string())))?;
    if out.len() > limit {
        return Err(Error::Malformed(MessageError::Inflate(format!(
            "inflates to more than {limit} bytes"
        ))));
    }
    Ok(out)
}

fn deflate(xml: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = DeflateEncoder::new(Vec::new(), Compression::default());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(xml);
    enc.finish().unwrap_or_default()
}

/// Builds the HTTP-Redirect URL for `xml` at `destination`, signed with `signer` when given.
pub fn encode_redirect(
    destination: &str,
    kind: MessageKind,
    xml: &str,
    relay_state: Option<&str>,
    signer: Option<(&SigningKey, SignatureAlgorithm)>,
) -> Result<String, Error> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut query = format!(
        "{}={}",
        kind.param(),
        utf8_percent_encode(&b64.encode(deflate(xml.as_bytes())), QUERY_VALUE)
    );
    if let Some(r) = relay_state {
        query.push_str("&RelayState=");
        query.extend(utf8_percent_encode(r, QUERY_VALUE));
    }
    if let Some((key, alg)) = signer {
        query.push_str("&SigAlg=");
        query.extend(utf8_percent_encode(alg.uri(), QUERY_VALUE));
        let sig = key
            .sign(alg, query.as_bytes())
            .map_err(|e| bad(e.to_string()))?;
        query.push_str("&Signature=");
        query.extend(utf8_percent_encode(&b64.encode(sig), QUERY_VALUE));
    }
    let sep = if destination.contains('?') { '&' } else { '?' };
    Ok(format!("{destination}{sep}{query}"))
}

/// An auto-submitting HTML form that POSTs `xml` (base64) to `destination` (HTTP-POST binding).
pub fn post_form(
    destination: &str,
    kind: MessageKind,
    xml: &str,
    relay_state: Option<&str>,
) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(xml.as_bytes());
    let relay = relay_state
        .map(|r| {
            format!(
                "<input type=\"hidden\" name=\"RelayState\" value=\"{}\"/>",
                xml_escape(r)
            )
        })
        .unwrap_or_default();
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Signing in…</title></head>\
         <body onload=\"document.forms[0].submit()\"><form method=\"post\" action=\"{}\">\
         <input type=\"hidden\" name=\"{}\" value=\"{}\"/>{relay}\
         <noscript><button type=\"submit\">Continue</button></noscript></form></body></html>",
        xml_escape(destination),
        kind.param(),
        b64
    )
}

/// Escapes text for XML or HTML content or a quoted attribute (`&`, `<`, `>`, `"`, `'`).
pub fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}
