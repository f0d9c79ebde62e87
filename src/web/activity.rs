//! Sign-in activity per tenant: successes and failures per hour over the last 24 hours, counted
//! in memory (a login costs an increment, no write). Bounded: at most [`MAX_TENANTS`] tenants are
//! counted (names come from the store, never from a request).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::saml::UnixTime;

const HOURS: usize = 24;
/// Tenants counted at most; beyond, new names are not counted.
pub const MAX_TENANTS: usize = 10_000;

#[derive(Debug, Clone, Copy, Default)]
struct Hour {
    /// Hours since the epoch this slot counts (a slot is reused 24 hours later).
    hour: i64,
    successes: u64,
    failures: u64,
}

#[derive(Debug, Default)]
pub struct Activity {
    tenants: Mutex<HashMap<String, [Hour; HOURS]>>,
}

fn hour_of(t: UnixTime) -> i64 {
    t.millis().div_euclid(3_600_000)
}

impl Activity {
    fn count(&self, tenant: &str, now: UnixTime, success: bool) {
        let mut m = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= MAX_TENANTS && !m.contains_key(tenant) {
            return;
        }
        let h = hour_of(now);
        let slots = m.entry(tenant.to_string()).or_default();
        let slot = &mut slots[h.rem_euclid(HOURS as i64) as usize];
        if slot.hour != h {
            *slot = Hour {
                hour: h,
                ..Hour::default()
            };
        }
        if success {
            slot.successes += 1;
        } else {
            slot.failures += 1;
        }
    }

    pub fn success(&self, tenant: &str, now: UnixTime) {
        self.count(tenant, now, true);
    }

    pub fn failure(&self, tenant: &str, now: UnixTime) {
        self.count(tenant, now, false);
    }

    /// The last 24 hours of `tenant`, oldest first.
    pub fn chart(&self, tenant: &str, now: UnixTime) -> Chart {
        let m = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        let h = hour_of(now);
        let mut hours = Vec::with_capacity(HOURS);
        for back in (0..HOURS as i64).rev() {
            let want = h - back;
            let (s, f) = m
                .get(tenant)
                .map(|slots| slots[want.rem_euclid(HOURS as i64) as usize])
                .filter(|slot| slot.hour == want)
                .map_or((0, 0), |slot| (slot.successes, slot.failures));
            hours.push((want, s, f));
        }
        Chart { hours }
    }
}

/// Successes and failures per hour (hour since the epoch, successes, failures), oldest first.
#[derive(Debug, Clone)]
pub struct Chart {
    pub hours: Vec<(i64, u64, u64)>,
}

impl Chart {
    pub fn successes(&self) -> u64 {
        self.hours.iter().map(|h| h.1).sum()
    }

    pub fn failures(&self) -> u64 {
        self.hours.iter().map(|h| h.2).sum()
    }

    /// An inline SVG bar chart: presentation attributes only (the CSP allows no inline style).
    pub fn svg(&self) -> String {
        let (w, h, pad) = (720.0f64, 160.0f64, 20.0f64);
        let max = self
            .hours
            .iter()
            .map(|x| x.1.max(x.2))
            .max()
            .unwrap_or(0)
            .max(1) as f64;
        let slot = (w - 2.0 * pad) / self.hours.len().max(1) as f64;
        let bar = (slot / 2.0 - 1.0).max(1.0);
        let mut out = format!(
            "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"sign-ins per hour\">\
             <line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\" stroke-width=\"1\"/>",
            h - pad,
            w - pad,
            h - pad
        );
        for (i, (hour, s, f)) in self.hours.iter().enumerate() {
            let x = pad + i as f64 * slot;
            let hs = (*s as f64 / max) * (h - 2.0 * pad);
            let hf = (*f as f64 / max) * (h - 2.0 * pad);
            out.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{hs:.1}\" fill=\"#2f9e44\"><title>{s} successful</title></rect>\
                 <rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{hf:.1}\" fill=\"#e03131\"><title>{f} failed</title></rect>",
                h - pad - hs,
                x + bar + 1.0,
                h - pad - hf
            ));
            if hour.rem_euclid(6) == 0 {
                out.push_str(&format!(
                    "<text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#555\">{:02}:00</text>",
                    h - 4.0,
                    hour.rem_euclid(24)
                ));
            }
        }
        out.push_str("</svg>");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_hour_and_forgets_after_a_day() {
        let a = Activity::default();
        let t0 = UnixTime::from_secs(1_000 * 3600);
        a.success("acme", t0);
        a.success("acme", t0);
        a.failure("acme", t0.plus_secs(3600));
        a.success("globex", t0);
        let c = a.chart("acme", t0.plus_secs(3600));
        assert_eq!((c.successes(), c.failures()), (2, 1));
        assert_eq!(c.hours.len(), 24);
        assert_eq!(c.hours[22], (1000, 2, 0));
        assert_eq!(c.hours[23], (1001, 0, 1));
        // A day later the slot is reused: the old counts are gone.
        a.success("acme", t0.plus_secs(24 * 3600));
        let c = a.chart("acme", t0.plus_secs(24 * 3600));
        assert_eq!((c.successes(), c.failures()), (1, 1));
        let svg = c.svg();
        assert!(svg.starts_with("<svg") && !svg.contains("style="));
    }
}
