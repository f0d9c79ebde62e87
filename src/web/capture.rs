//! Failing SAML responses kept for the tracer: a central administrator turns capture on for a
//! tenant for [`CAPTURE_SECS`]; meanwhile a response the ACS refuses for that tenant (or its
//! IdP) is stored with the failure's reference, to be picked in the tracer. Anonymous input, so
//! bounded: only refusals that get a failure record of their own are kept (the per-client
//! limit of the failure log applies), a message over [`MAX_CAPTURE_BYTES`] is not kept, a tenant
//! keeps its latest [`MAX_PER_TENANT`], all tenants together [`MAX_TOTAL`], none past 24 hours.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::saml::UnixTime;

/// How long a capture runs.
pub const CAPTURE_SECS: i64 = 15 * 60;
/// How long a captured response is kept.
pub const KEEP_SECS: i64 = 24 * 3600;
/// Captured responses per tenant at most (the oldest go first).
pub const MAX_PER_TENANT: u32 = 50;
/// Captured responses in all at most.
pub const MAX_TOTAL: u32 = 200;
/// The largest SAMLResponse value (base64) kept.
pub const MAX_CAPTURE_BYTES: usize = 384 * 1024;

/// Which tenants capture, until when. Read on every ACS request: one atomic load while none does.
#[derive(Debug, Default)]
pub struct Captures {
    /// The latest end of any capture (milliseconds; 0: none ever).
    latest_end: AtomicI64,
    /// Tenant name → (end, the tenant's IdP name).
    active: Mutex<HashMap<String, (UnixTime, Option<String>)>>,
}

impl Captures {
    pub fn any_active(&self, now: UnixTime) -> bool {
        self.latest_end.load(Ordering::Relaxed) > now.millis()
    }

    /// Starts (or extends) `tenant`'s capture; its end.
    pub fn start(&self, tenant: &str, idp: Option<String>, now: UnixTime) -> UnixTime {
        let end = now.plus_secs(CAPTURE_SECS);
        let mut m = self.active.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, (until, _)| until.millis() > now.millis());
        m.insert(tenant.to_string(), (end, idp));
        self.latest_end.fetch_max(end.millis(), Ordering::Relaxed);
        end
    }

    pub fn stop(&self, tenant: &str) {
        let mut m = self.active.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(tenant);
    }

    /// When `tenant`'s capture ends, if it runs.
    pub fn until(&self, tenant: &str, now: UnixTime) -> Option<UnixTime> {
        let m = self.active.lock().unwrap_or_else(|p| p.into_inner());
        m.get(tenant)
            .map(|(u, _)| *u)
            .filter(|u| u.millis() > now.millis())
    }

    /// The capturing tenant a refusal belongs to: named by it, or using the IdP it names.
    pub fn tenant_for(
        &self,
        tenant: Option<&str>,
        idp: Option<&str>,
        now: UnixTime,
    ) -> Option<String> {
        let m = self.active.lock().unwrap_or_else(|p| p.into_inner());
        m.iter()
            .filter(|(_, (until, _))| until.millis() > now.millis())
            .find(|(name, (_, i))| {
                tenant == Some(name.as_str()) || (idp.is_some() && i.as_deref() == idp)
            })
            .map(|(name, _)| name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_runs_fifteen_minutes_for_its_tenant_and_its_idp() {
        let c = Captures::default();
        let t0 = UnixTime::from_secs(1_000_000);
        assert!(!c.any_active(t0));
        c.start("acme", Some("adfs".into()), t0);
        assert!(c.any_active(t0.plus_secs(60)));
        assert_eq!(
            c.tenant_for(Some("acme"), None, t0).as_deref(),
            Some("acme")
        );
        assert_eq!(
            c.tenant_for(None, Some("adfs"), t0).as_deref(),
            Some("acme")
        );
        assert_eq!(c.tenant_for(Some("globex"), Some("okta"), t0), None);
        assert_eq!(c.tenant_for(None, None, t0), None);
        let later = t0.plus_secs(CAPTURE_SECS + 1);
        assert!(!c.any_active(later));
        assert_eq!(c.tenant_for(Some("acme"), None, later), None);
        c.start("acme", None, t0);
        c.stop("acme");
        assert_eq!(c.until("acme", t0), None);
    }
}
