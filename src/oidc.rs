//! OpenID Connect for the Circuit sign-on's second kind: the provider's discovery document, its
//! JWKS, and the ID token's checks (OpenID Connect Core 1.0 §3.1.3.7): a JWS signed with RS256,
//! PS256 or ES256 by a key of the JWKS (never `none` or an HMAC keyed with anything we hold),
//! `iss` the discovered issuer, `aud` our client ID, `exp` not passed and `iat` not ahead (both
//! with the clock skew allowed), `nonce` the one we sent.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Public};
use openssl::sign::Verifier;
use serde::Deserialize;

use crate::saml::UnixTime;

/// The most bytes of an ID token looked at.
pub const MAX_ID_TOKEN: usize = 16 * 1024;

/// What discovery tells (`{issuer}/.well-known/openid-configuration`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
}

impl Discovery {
    /// Parses the document and holds it to the issuer it was fetched for (§4.3: they must be
    /// identical).
    pub fn parse(body: &[u8], expected_issuer: &str) -> Result<Discovery, String> {
        let d: Discovery = serde_json::from_slice(body).map_err(|e| {
            format!("the discovery document is not what OpenID Connect sets out: {e}")
        })?;
        if d.issuer.trim_end_matches('/') != expected_issuer.trim_end_matches('/') {
            return Err(format!(
                "the discovery document names issuer {:?}, not {expected_issuer:?}",
                crate::saml::echo::Echo(&d.issuer).to_string()
            ));
        }
        Ok(d)
    }
}

/// One verification key of a JWKS.
pub struct Jwk {
    pub kid: Option<String>,
    key: PKey<Public>,
    ec: bool,
}

impl std::fmt::Debug for Jwk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwk")
            .field("kid", &self.kid)
            .field("ec", &self.ec)
            .finish()
    }
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<RawJwk>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// The signing keys of a JWKS document (RSA, and EC on P-256); others are left out.
pub fn parse_jwks(body: &[u8]) -> Result<Vec<Jwk>, String> {
    let raw: RawJwks =
        serde_json::from_slice(body).map_err(|e| format!("the JWKS is not a key set: {e}"))?;
    let mut out = Vec::new();
    for k in raw.keys.into_iter().take(50) {
        if k.use_.as_deref().is_some_and(|u| u != "sig") {
            continue;
        }
        let b = |s: &Option<String>| -> Option<BigNum> {
            let bytes = B64.decode(s.as_deref()?.trim_end_matches('=')).ok()?;
            BigNum::from_slice(&bytes).ok()
        };
        let key = match k.kty.as_str() {
            "RSA" => {
                let (Some(n), Some(e)) = (b(&k.n), b(&k.e)) else {
                    continue;
                };
                if n.num_bits() < 2048 {
                    continue;
                }
                openssl::rsa::Rsa::from_public_components(n, e)
                    .ok()
                    .and_then(|r| PKey::from_rsa(r).ok())
                    .map(|p| (p, false))
            }
            "EC" if k.crv.as_deref() == Some("P-256") => {
                let (Some(x), Some(y)) = (b(&k.x), b(&k.y)) else {
                    continue;
                };
                let group =
                    openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)
                        .map_err(|e| e.to_string())?;
                openssl::ec::EcKey::from_public_key_affine_coordinates(&group, &x, &y)
                    .ok()
                    .and_then(|k| PKey::from_ec_key(k).ok())
                    .map(|p| (p, true))
            }
            _ => None,
        };
        if let Some((key, ec)) = key {
            out.push(Jwk {
                kid: k.kid.map(|s| s.chars().take(128).collect()),
                key,
                ec,
            });
        }
    }
    if out.is_empty() {
        return Err("the JWKS has no RSA (2048 bits or more) or P-256 signing key".into());
    }
    Ok(out)
}

/// Why an ID token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("the ID token is malformed: {0}")]
    Malformed(String),
    /// The kid names no key of the JWKS (the caller may fetch the JWKS again once).
    #[error("the ID token's key {0:?} is not in the provider's JWKS")]
    UnknownKey(String),
    #[error("the ID token's signature does not verify: {0}")]
    Signature(String),
    #[error("the ID token's issuer is {found:?}, not {expected:?}")]
    Issuer { found: String, expected: String },
    #[error("the ID token is for {found:?}, not for client {expected:?}")]
    Audience { found: String, expected: String },
    #[error("the ID token expired at {0}")]
    Expired(String),
    #[error("the ID token's nonce is not the one this sign-in sent")]
    Nonce,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

fn bounded(s: &str) -> String {
    crate::saml::echo::Echo(s)
        .to_string()
        .chars()
        .take(200)
        .collect()
}

/// Checks `token` and returns its claims.
pub fn verify_id_token(
    token: &str,
    keys: &[Jwk],
    issuer: &str,
    client_id: &str,
    nonce: &str,
    now: UnixTime,
    skew_secs: i64,
) -> Result<serde_json::Map<String, serde_json::Value>, IdTokenError> {
    let malformed = |m: &str| IdTokenError::Malformed(m.to_string());
    if token.len() > MAX_ID_TOKEN {
        return Err(malformed("longer than 16 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("not three base64url parts (a signed JWT)"));
    };
    let header: Header = B64
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| malformed("the header is not base64url JSON"))?;
    let sig = B64
        .decode(s)
        .map_err(|_| malformed("the signature is not base64url"))?;
    let (digest, ec, pss) = match header.alg.as_str() {
        "RS256" => (MessageDigest::sha256(), false, false),
        "PS256" => (MessageDigest::sha256(), false, true),
        "ES256" => (MessageDigest::sha256(), true, false),
        other => {
            return Err(IdTokenError::Signature(format!(
                "the algorithm {:?} is not accepted (RS256, PS256, ES256)",
                bounded(other)
            )));
        }
    };
    let candidates: Vec<&Jwk> = keys
        .iter()
        .filter(|k| k.ec == ec)
        .filter(|k| match (&header.kid, &k.kid) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        })
        .collect();
    if candidates.is_empty() {
        return Err(IdTokenError::UnknownKey(bounded(
            header.kid.as_deref().unwrap_or("(none)"),
        )));
    }
    let signed = &token[..h.len() + 1 + p.len()];
    let sig = if ec {
        // JWS ES256: r ‖ s, 32 bytes each; OpenSSL wants DER.
        if sig.len() != 64 {
            return Err(IdTokenError::Signature(
                "an ES256 signature has 64 bytes".into(),
            ));
        }
        let r = BigNum::from_slice(&sig[..32]).map_err(|e| malformed(&e.to_string()))?;
        let s = BigNum::from_slice(&sig[32..]).map_err(|e| malformed(&e.to_string()))?;
        openssl::ecdsa::EcdsaSig::from_private_components(r, s)
            .and_then(|e| e.to_der())
            .map_err(|e| malformed(&e.to_string()))?
    } else {
        sig
    };
    let verified = candidates.iter().any(|k| {
        Verifier::new(digest, &k.key)
            .and_then(|mut v| {
                if pss {
                    v.set_rsa_padding(openssl::rsa::Padding::PKCS1_PSS)?;
                    v.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::DIGEST_LENGTH)?;
                }
                v.update(signed.as_bytes())?;
                v.verify(&sig)
            })
            .unwrap_or(false)
    });
    if !verified {
        return Err(IdTokenError::Signature(format!(
            "no key of the provider's JWKS verifies it ({} tried)",
            candidates.len()
        )));
    }
    let claims: serde_json::Map<String, serde_json::Value> = B64
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| malformed("the payload is not base64url JSON"))?;
    let iss = claims.get("iss").and_then(|v| v.as_str()).unwrap_or("");
    if iss != issuer {
        return Err(IdTokenError::Issuer {
            found: bounded(iss),
            expected: issuer.to_string(),
        });
    }
    let aud_ok = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => a == client_id,
        Some(serde_json::Value::Array(v)) => v.iter().any(|a| a.as_str() == Some(client_id)),
        _ => false,
    };
    // With several audiences, `azp` must be us (§3.1.3.7 item 5).
    let azp_ok = match claims.get("azp") {
        Some(v) => v.as_str() == Some(client_id),
        None => true,
    };
    if !aud_ok || !azp_ok {
        return Err(IdTokenError::Audience {
            found: bounded(
                &claims
                    .get("aud")
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "(none)".into()),
            ),
            expected: client_id.to_string(),
        });
    }
    let exp = claims
        .get("exp")
        .and_then(|v| v.as_i64())
        .ok_or_else(|| malformed("no exp"))?;
    let now_secs = now.millis() / 1000;
    if exp + skew_secs <= now_secs {
        return Err(IdTokenError::Expired(UnixTime::from_secs(exp).to_rfc3339()));
    }
    if let Some(iat) = claims.get("iat").and_then(|v| v.as_i64())
        && iat - skew_secs > now_secs
    {
        return Err(malformed("issued in the future (iat)"));
    }
    if claims.get("nonce").and_then(|v| v.as_str()) != Some(nonce) {
        return Err(IdTokenError::Nonce);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::rsa::Rsa;
    use openssl::sign::Signer;

    fn jwk_of(key: &PKey<openssl::pkey::Private>, kid: &str) -> String {
        let rsa = key.rsa().unwrap();
        serde_json::json!({"keys": [{
            "kty": "RSA", "kid": kid, "use": "sig",
            "n": B64.encode(rsa.n().to_vec()), "e": B64.encode(rsa.e().to_vec()),
        }]})
        .to_string()
    }

    fn token(key: &PKey<openssl::pkey::Private>, kid: &str, claims: serde_json::Value) -> String {
        let h = B64.encode(serde_json::json!({"alg": "RS256", "kid": kid}).to_string());
        let p = B64.encode(claims.to_string());
        let mut s = Signer::new(MessageDigest::sha256(), key).unwrap();
        s.update(format!("{h}.{p}").as_bytes()).unwrap();
        format!("{h}.{p}.{}", B64.encode(s.sign_to_vec().unwrap()))
    }

    #[test]
    fn id_tokens_are_checked_claim_by_claim() {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let other = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let keys = parse_jwks(jwk_of(&key, "k1").as_bytes()).unwrap();
        let now = UnixTime::from_secs(1_800_000_000);
        let good = serde_json::json!({"iss": "https://op", "aud": "app", "exp": 1_800_000_300,
            "iat": 1_800_000_000, "nonce": "n1", "email": "kate@acme.com"});
        let check = |t: &str| verify_id_token(t, &keys, "https://op", "app", "n1", now, 60);
        let claims = check(&token(&key, "k1", good.clone())).unwrap();
        assert_eq!(claims["email"], "kate@acme.com");

        let mut c = good.clone();
        c["aud"] = "other".into();
        assert!(matches!(
            check(&token(&key, "k1", c)),
            Err(IdTokenError::Audience { .. })
        ));
        let mut c = good.clone();
        c["exp"] = 1_799_999_000.into();
        assert!(matches!(
            check(&token(&key, "k1", c)),
            Err(IdTokenError::Expired(_))
        ));
        let mut c = good.clone();
        c["nonce"] = "n2".into();
        assert_eq!(check(&token(&key, "k1", c)), Err(IdTokenError::Nonce));
        let mut c = good.clone();
        c["iss"] = "https://evil".into();
        assert!(matches!(
            check(&token(&key, "k1", c)),
            Err(IdTokenError::Issuer { .. })
        ));
        assert!(matches!(
            check(&token(&other, "k1", good.clone())),
            Err(IdTokenError::Signature(_))
        ));
        assert!(matches!(
            check(&token(&key, "k9", good.clone())),
            Err(IdTokenError::UnknownKey(_))
        ));
        // alg none and HMAC are never taken.
        let h = B64.encode(r#"{"alg":"none"}"#);
        let p = B64.encode(good.to_string());
        assert!(matches!(
            check(&format!("{h}.{p}.")),
            Err(IdTokenError::Signature(_))
        ));
        let h = B64.encode(r#"{"alg":"HS256","kid":"k1"}"#);
        assert!(matches!(
            check(&format!("{h}.{p}.AAAA")),
            Err(IdTokenError::Signature(_))
        ));
        assert!(matches!(check("a.b"), Err(IdTokenError::Malformed(_))));
    }
}
