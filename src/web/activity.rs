//! Sign-in activity per tenant: successes and failures per hour over the last 24 hours. A login
//! costs an increment in memory; every 10 seconds the counts are added to the store
//! ([`crate::store::Store::activity_add`]), which keeps the chart across restarts (and, with a
//! shared store, sums every instance's). Bounded: at most [`MAX_PENDING`] (tenant, hour) counters
//! wait in memory between flushes (names come from the store, never from a request).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::saml::UnixTime;
use crate::store::ActivityRow;

/// Hours the chart shows.
pub const HOURS: usize = 24;
/// (tenant, hour) counters held between flushes at most; beyond, new ones are not counted.
pub const MAX_PENDING: usize = 20_000;

#[derive(Debug, Default)]
pub struct Activity {
    pending: Mutex<HashMap<(String, i64), (u64, u64)>>,
}

pub fn hour_of(t: UnixTime) -> i64 {
    t.millis().div_euclid(3_600_000)
}

impl Activity {
    fn count(&self, tenant: &str, now: UnixTime, success: bool) {
        let mut m = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let key = (tenant.to_string(), hour_of(now));
        if m.len() >= MAX_PENDING && !m.contains_key(&key) {
            return;
        }
        let c = m.entry(key).or_default();
        if success {
            c.0 += 1;
        } else {
            c.1 += 1;
        }
    }

    pub fn success(&self, tenant: &str, now: UnixTime) {
        self.count(tenant, now, true);
    }

    pub fn failure(&self, tenant: &str, now: UnixTime) {
        self.count(tenant, now, false);
    }

    /// The counts not yet in the store, taken out (to be added to it).
    pub fn take(&self) -> Vec<ActivityRow> {
        let mut m = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        m.drain()
            .map(|((tenant, hour), (successes, failures))| ActivityRow {
                tenant,
                hour,
                successes,
                failures,
            })
            .collect()
    }

    /// Puts back counts a flush could not write (the next one tries again).
    pub fn put_back(&self, rows: Vec<ActivityRow>) {
        let mut m = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for r in rows {
            if m.len() >= MAX_PENDING && !m.contains_key(&(r.tenant.clone(), r.hour)) {
                continue;
            }
            let c = m.entry((r.tenant, r.hour)).or_default();
            c.0 += r.successes;
            c.1 += r.failures;
        }
    }

    /// The last 24 hours of `tenant`, oldest first: `stored` (the store's rows of those hours)
    /// plus what waits in memory.
    pub fn chart(&self, stored: &[ActivityRow], tenant: &str, now: UnixTime) -> Chart {
        let m = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let h = hour_of(now);
        let mut hours = Vec::with_capacity(HOURS);
        for back in (0..HOURS as i64).rev() {
            let want = h - back;
            let (mut s, mut f) = m
                .get(&(tenant.to_string(), want))
                .copied()
                .unwrap_or((0, 0));
            for r in stored
                .iter()
                .filter(|r| r.hour == want && r.tenant == tenant)
            {
                s += r.successes;
                f += r.failures;
            }
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
    fn counts_per_hour_flush_and_forget_after_a_day() {
        let a = Activity::default();
        let t0 = UnixTime::from_secs(1_000 * 3600);
        a.success("acme", t0);
        a.success("acme", t0);
        a.failure("acme", t0.plus_secs(3600));
        a.success("globex", t0);
        let c = a.chart(&[], "acme", t0.plus_secs(3600));
        assert_eq!((c.successes(), c.failures()), (2, 1));
        assert_eq!(c.hours.len(), 24);
        assert_eq!(c.hours[22], (1000, 2, 0));
        assert_eq!(c.hours[23], (1001, 0, 1));
        // Flushed: memory is empty, and the stored rows chart the same.
        let mut rows = a.take();
        rows.sort_by(|x, y| (&x.tenant, x.hour).cmp(&(&y.tenant, y.hour)));
        assert_eq!(rows.len(), 3);
        assert!(a.take().is_empty());
        let c = a.chart(&rows, "acme", t0.plus_secs(3600));
        assert_eq!((c.successes(), c.failures()), (2, 1));
        // Stored and pending counts of one hour add up; a failed flush puts its rows back.
        a.success("acme", t0.plus_secs(3600));
        let c = a.chart(&rows, "acme", t0.plus_secs(3600));
        assert_eq!(c.hours[23], (1001, 1, 1));
        let again = a.take();
        a.put_back(again);
        assert_eq!(a.take().len(), 1);
        // A day later the old hours are out of the chart.
        let c = a.chart(&rows, "acme", t0.plus_secs(24 * 3600));
        assert_eq!((c.successes(), c.failures()), (0, 1));
        let svg = c.svg();
        assert!(svg.starts_with("<svg") && !svg.contains("style="));
    }

    #[test]
    fn counters_between_flushes_are_bounded() {
        let a = Activity::default();
        let t0 = UnixTime::from_secs(1_000 * 3600);
        for i in 0..MAX_PENDING + 100 {
            a.success(&format!("t{i}"), t0);
        }
        assert_eq!(a.take().len(), MAX_PENDING);
    }
}
