//! The replay cache: every accepted assertion ID is remembered until it could no longer be valid
//! (its NotOnOrAfter plus the clock skew). The caller supplies the implementation; a store shared
//! by all instances in production, this in-memory one in tests and the CLI.

use std::collections::HashMap;
use std::sync::Mutex;

use super::time::UnixTime;

/// Remembers keys until they expire: assertion IDs (with their issuer), request IDs, LogoutRequest
/// IDs. A key names everything that makes it unique (`accept` makes `issuer \u{1f} assertion ID`).
pub trait ReplayCache {
    /// Records `key` as used until `expires`. Returns `false` if it was already recorded and has
    /// not expired yet (a replay).
    fn check_and_remember(&self, key: &str, expires: UnixTime, now: UnixTime) -> bool;
}

/// A process-local cache, purged of expired entries as it grows.
#[derive(Debug, Default)]
pub struct InMemoryReplayCache {
    seen: Mutex<HashMap<String, UnixTime>>,
}

impl InMemoryReplayCache {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn len(&self) -> usize {
        self.seen.lock().map(|m| m.len()).unwrap_or(0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ReplayCache for InMemoryReplayCache {
    fn check_and_remember(&self, key: &str, expires: UnixTime, now: UnixTime) -> bool {
        // A poisoned lock only means another thread panicked mid-insert; the map is still usable.
        let mut m = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= 4096 && m.len().is_power_of_two() {
            m.retain(|_, exp| *exp > now);
        }
        match m.get(key) {
            Some(exp) if *exp > now => false,
            _ => {
                m.insert(key.to_string(), expires);
                true
            }
        }
    }
}

/// No replay check at all: only for `ssogate saml bench` and one-off diagnosis.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoReplayCheck;

impl ReplayCache for NoReplayCheck {
    fn check_and_remember(&self, _key: &str, _expires: UnixTime, _now: UnixTime) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_expiry() {
        let c = InMemoryReplayCache::new();
        let t0 = UnixTime::from_secs(1000);
        assert!(c.check_and_remember("a", t0.plus_secs(60), t0));
        assert!(!c.check_and_remember("a", t0.plus_secs(60), t0.plus_secs(59)));
        assert!(c.check_and_remember("b", t0.plus_secs(60), t0));
        // After expiry the entry no longer blocks (the assertion itself would be expired anyway).
        assert!(c.check_and_remember("a", t0.plus_secs(200), t0.plus_secs(60)));
    }
}
