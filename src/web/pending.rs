//! A pending AuthnRequest, kept by the browser that started it: nothing is stored for an
//! anonymous visitor before the IdP answers, so no number of `GET /login` can fill the disk.
//!
//! The request (its ID, SP, tenant, IdP, relay target and expiry) travels in a cookie named after
//! the request ID, authenticated with HMAC-SHA256 under a key of the service (the same for every
//! instance: kept in the store). Being a cookie, it binds the request to the browser: a response
//! carried to another browser finds no cookie there. At the ACS the cookie for the signed
//! assertion's InResponseTo is read only after the signature verified; the request is consumed
//! (its ID recorded in the replay cache, shared by all instances) only after the signed
//! InResponseTo, the cookie, its MAC and every check of the response passed.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use subtle::ConstantTimeEq as _;

use crate::domain::{IdpId, SpId, TenantId};
use crate::saml::UnixTime;

/// The prefix of the cookies that carry pending requests.
pub const COOKIE_PREFIX: &str = "ssogate_rq_";
/// The most pending requests one browser keeps (older ones are dropped when it starts more).
pub const MAX_PER_BROWSER: usize = 4;
/// The longest relay target kept with a request (a portal path; longer ones go to the home page).
pub const MAX_RELAY_TARGET: usize = 512;

/// An AuthnRequest we sent and expect an answer to.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingRequest {
    pub id: String,
    pub sp_id: SpId,
    pub tenant_id: TenantId,
    pub idp_id: IdpId,
    /// Same-origin path to go to after the login.
    pub relay_target: String,
    pub expires_at: UnixTime,
}

impl std::fmt::Debug for PendingRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRequest")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("idp_id", &self.idp_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The cookie name for request `id` (`_` and 32 hex digits, as `authn_request::request_id`
/// makes them); `None` for anything else, which then names no pending request.
pub fn cookie_name(id: &str) -> Option<String> {
    let hex = id.strip_prefix('_')?;
    (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("{COOKIE_PREFIX}{}", &hex[..16]))
}

fn mac(key: &[u8], payload: &str) -> Vec<u8> {
    use hmac_sha256::hmac;
    hmac(key, &[b"ssogate pending request v1\0", payload.as_bytes()])
}

/// HMAC-SHA256 (RFC 2104) over the concatenation of `parts`.
pub(crate) mod hmac_sha256 {
    use sha2::{Digest, Sha256};

    pub fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let mut k = [0u8; 64];
        if key.len() > 64 {
            k[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let mut inner = Sha256::new();
        inner.update(k.map(|b| b ^ 0x36));
        for p in parts {
            inner.update(p);
        }
        let mut outer = Sha256::new();
        outer.update(k.map(|b| b ^ 0x5c));
        outer.update(inner.finalize());
        outer.finalize().to_vec()
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn rfc4231_case_2() {
            let out = super::hmac(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
            assert_eq!(
                hex::encode(out),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
            );
        }
    }
}

impl PendingRequest {
    /// The cookie value: the request, and its MAC under `key`.
    pub fn seal(&self, key: &[u8]) -> String {
        let payload = format!(
            "1|{}|{}|{}|{}|{}|{}",
            self.id,
            self.sp_id.0,
            self.tenant_id.0,
            self.idp_id.0,
            self.expires_at.millis(),
            self.relay_target
        );
        let p = B64.encode(payload.as_bytes());
        let m = B64.encode(mac(key, &p));
        format!("{p}.{m}")
    }

    /// The request a cookie value carries, if its MAC is ours and it has not expired.
    pub fn open(value: &str, key: &[u8], now: UnixTime) -> Result<PendingRequest, &'static str> {
        if value.len() > 2048 {
            return Err("the cookie is too long to be ours");
        }
        let (p, m) = value.split_once('.').ok_or("the cookie is not ours")?;
        let given = B64
            .decode(m)
            .map_err(|_| "the cookie's MAC is not base64")?;
        if !bool::from(mac(key, p).ct_eq(&given)) {
            return Err("the cookie's MAC does not verify (altered, or not made by this service)");
        }
        let raw = B64.decode(p).map_err(|_| "the cookie is not base64")?;
        let text = String::from_utf8(raw).map_err(|_| "the cookie is not UTF-8")?;
        let mut f = text.splitn(7, '|');
        let (Some("1"), Some(id), Some(sp), Some(tenant), Some(idp), Some(exp), Some(target)) = (
            f.next(),
            f.next(),
            f.next(),
            f.next(),
            f.next(),
            f.next(),
            f.next(),
        ) else {
            return Err("the cookie has an unknown layout");
        };
        let num = |s: &str| {
            s.parse::<i64>()
                .map_err(|_| "the cookie has an unknown layout")
        };
        let p = PendingRequest {
            id: id.to_string(),
            sp_id: SpId(num(sp)?),
            tenant_id: TenantId(num(tenant)?),
            idp_id: IdpId(num(idp)?),
            expires_at: UnixTime::from_millis(num(exp)?),
            relay_target: target.to_string(),
        };
        if p.expires_at <= now {
            return Err("the request expired");
        }
        Ok(p)
    }
}

/// The names of the pending-request cookies a browser sent, with their values.
pub fn cookies_of(headers: &axum::http::HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .filter(|(n, _)| n.starts_with(COOKIE_PREFIX))
        .take(64)
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> PendingRequest {
        PendingRequest {
            id: "_00112233445566778899aabbccddeeff".into(),
            sp_id: SpId(1),
            tenant_id: TenantId(2),
            idp_id: IdpId(3),
            relay_target: "/queue?x=1|2".into(),
            expires_at: UnixTime::from_secs(2000),
        }
    }

    #[test]
    fn seals_and_opens() {
        let key = [7u8; 32];
        let v = req().seal(&key);
        let now = UnixTime::from_secs(1000);
        assert_eq!(PendingRequest::open(&v, &key, now), Ok(req()));
        assert_eq!(
            cookie_name(&req().id).as_deref(),
            Some("ssogate_rq_0011223344556677")
        );
        assert_eq!(cookie_name("_short"), None);
        assert_eq!(cookie_name("x00112233445566778899aabbccddeeff"), None);
    }

    #[test]
    fn refuses_other_keys_edits_and_expiry() {
        let key = [7u8; 32];
        let v = req().seal(&key);
        let now = UnixTime::from_secs(1000);
        assert!(PendingRequest::open(&v, &[8u8; 32], now).is_err());
        let (p, m) = v.split_once('.').unwrap();
        let mut other = req();
        other.tenant_id = TenantId(9);
        let (p2, _) = other
            .seal(&key)
            .split_once('.')
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .unwrap();
        assert!(PendingRequest::open(&format!("{p2}.{m}"), &key, now).is_err());
        assert!(PendingRequest::open(p, &key, now).is_err());
        assert_eq!(
            PendingRequest::open(&v, &key, UnixTime::from_secs(2000)),
            Err("the request expired")
        );
    }
}
