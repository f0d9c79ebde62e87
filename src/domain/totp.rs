//! Time-based one-time passwords (RFC 6238) for Web Manager accounts: HMAC-SHA1, 6 digits,
//! 30-second steps (what every authenticator app reads from an `otpauth://` URI), a code of the
//! previous, current or next step taken (clocks drift), each step at most once per account.

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

use crate::rng::Rng;
use crate::saml::UnixTime;

/// Seconds per time step.
pub const STEP_SECS: i64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// Bytes of a new shared secret (160 bits, RFC 4226's recommendation).
pub const SECRET_BYTES: usize = 20;

/// The time step `at` falls in.
pub fn step_of(at: UnixTime) -> i64 {
    at.secs().div_euclid(STEP_SECS)
}

/// The code of `step` (RFC 4226's HOTP with the step as counter).
pub fn code_at(secret: &[u8], step: i64) -> u32 {
    let key = PKey::hmac(secret).expect("invariant: any byte string is an HMAC key");
    let mut signer =
        Signer::new(MessageDigest::sha1(), &key).expect("invariant: HMAC-SHA1 is available");
    let mac = signer
        .sign_oneshot_to_vec(&step.to_be_bytes())
        .expect("invariant: HMAC-SHA1 signs");
    let offset = (mac[19] & 0x0f) as usize;
    let n = u32::from_be_bytes([
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]) & 0x7fff_ffff;
    n % 10u32.pow(DIGITS)
}

/// The step whose code `code` is, among the previous, current and next steps and after
/// `last_used`; None if it is none of them (or not 6 digits).
pub fn check(secret: &[u8], code: &str, now: UnixTime, last_used: i64) -> Option<i64> {
    let code = code.trim().replace(' ', "");
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let given: u32 = code.parse().ok()?;
    let now = step_of(now);
    // Every candidate is computed and compared, so the time taken tells nothing.
    let mut found = None;
    for step in [now - 1, now, now + 1] {
        let same: bool = subtle::ConstantTimeEq::ct_eq(&code_at(secret, step), &given).into();
        if same && step > last_used && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// A new shared secret.
pub fn new_secret(rng: &dyn Rng) -> [u8; SECRET_BYTES] {
    let mut b = [0u8; SECRET_BYTES];
    rng.fill(&mut b);
    b
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding (what authenticator apps take).
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Reads [`base32`] back (case and spaces ignored); None when it is not base32.
pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| *c != b' ' && *c != b'=') {
        let v = BASE32.iter().position(|x| *x == c.to_ascii_uppercase())? as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= (1 << bits) - 1;
    }
    Some(out)
}

/// The `otpauth://` URI an authenticator app scans (issuer `ssogate`, account `user@tenant`).
pub fn otpauth_uri(account: &str, secret: &[u8]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    format!(
        "otpauth://totp/ssogate:{}?secret={}&issuer=ssogate&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        enc(account),
        base32(secret)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows (8 digits there; the last 6 are ours).
    #[test]
    fn the_rfc_6238_test_vectors() {
        let secret = b"12345678901234567890";
        for (t, eight) in [
            (59, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(
                code_at(secret, step_of(UnixTime::from_millis(t * 1000))),
                eight % 1_000_000,
                "T = {t}"
            );
        }
    }

    #[test]
    fn a_code_is_taken_in_its_window_once_and_nothing_else_is() {
        let secret = b"12345678901234567890";
        let now = UnixTime::from_millis(1_111_111_111_000);
        let step = step_of(now);
        let code = |s: i64| format!("{:06}", code_at(secret, s));
        assert_eq!(check(secret, &code(step), now, 0), Some(step));
        assert_eq!(check(secret, &code(step - 1), now, 0), Some(step - 1));
        assert_eq!(check(secret, &code(step + 1), now, 0), Some(step + 1));
        assert_eq!(check(secret, &code(step - 2), now, 0), None);
        assert_eq!(check(secret, &code(step + 2), now, 0), None);
        // Used already (that step or a later one).
        assert_eq!(check(secret, &code(step), now, step), None);
        assert_eq!(check(secret, &code(step - 1), now, step), None);
        // Spaces between digit groups are fine; anything else is not a code.
        let c = code(step);
        assert_eq!(
            check(secret, &format!("{} {}", &c[..3], &c[3..]), now, 0),
            Some(step)
        );
        for bad in ["", "12345", "1234567", "abcdef", "１２３４５６", "-12345"] {
            assert_eq!(check(secret, bad, now, 0), None, "{bad:?}");
        }
    }

    #[test]
    fn base32_round_trips_and_the_uri_names_issuer_and_account() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        for n in 0..=25 {
            let b: Vec<u8> = (0..n).map(|i| (i * 37) as u8).collect();
            assert_eq!(from_base32(&base32(&b)).unwrap(), b);
        }
        assert_eq!(from_base32("mzxw 6ytb oi").unwrap(), b"foobar");
        assert!(from_base32("MZ1").is_none());
        let uri = otpauth_uri("kate@acme corp", b"12345678901234567890");
        assert_eq!(
            uri,
            "otpauth://totp/ssogate:kate@acme%20corp?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ssogate&algorithm=SHA1&digits=6&period=30"
        );
    }
}
