//! `/metrics` in the Prometheus text format (0.0.4), and `/healthz`, `/readyz`.
//!
//! Counted in memory as requests pass (no store write): sign-ins by tenant, method and outcome,
//! refusals by reason, the ACS's and the Circuit callback's latency, store errors seen by the
//! refusal layer. Bounded: at most [`MAX_SERIES`] (tenant, method, outcome) series; beyond, the
//! tenant is counted as `other`. `/metrics` names tenants: it answers a central administrator's
//! API token (or session) only.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;

/// The most (tenant, method, outcome) series kept.
pub const MAX_SERIES: usize = 4096;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A latency histogram (cumulative buckets, as Prometheus reads them).
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                self.counts[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// What `/metrics` reports.
#[derive(Debug, Default)]
pub struct Metrics {
    logins: Mutex<HashMap<(String, &'static str, &'static str), u64>>,
    refusals: Mutex<HashMap<&'static str, u64>>,
    pub acs_latency: Histogram,
    pub callback_latency: Histogram,
    store_errors: AtomicU64,
    /// Whether a store outage is being reported (see [`Metrics::store_outage`]).
    outage: std::sync::atomic::AtomicBool,
    outage_refusals: AtomicU64,
}

impl Metrics {
    /// One sign-in of `tenant` by `method` ("saml", "password", "circuit"), "success" or
    /// "failure".
    pub fn login(&self, tenant: &str, method: &'static str, outcome: &'static str) {
        let mut m = self.logins.lock().unwrap_or_else(|p| p.into_inner());
        let key = (tenant.to_string(), method, outcome);
        if m.len() >= MAX_SERIES && !m.contains_key(&key) {
            *m.entry(("other".into(), method, outcome)).or_insert(0) += 1;
            return;
        }
        *m.entry(key).or_insert(0) += 1;
    }

    /// One refusal with its reason code.
    pub fn refusal(&self, code: &'static str) {
        let mut m = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(code).or_insert(0) += 1;
    }

    pub fn store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A request was refused because the store did not answer. The first of an outage is
    /// logged, with its reference and reason, and a watcher asks the store every half second
    /// until it answers, then logs the end and how many requests were refused meanwhile: one
    /// line when it fails and one when it is back, never one per request. Returns whether this
    /// refusal began the outage.
    pub fn store_outage(
        self: &std::sync::Arc<Self>,
        store: std::sync::Arc<dyn crate::store::Store>,
        reference: &str,
        detail: &str,
    ) -> bool {
        self.outage_refusals.fetch_add(1, Ordering::Relaxed);
        if self.outage.swap(true, Ordering::SeqCst) {
            return false;
        }
        self.outage_refusals.store(1, Ordering::Relaxed);
        tracing::error!(
            reference,
            error = %detail,
            "the store does not answer: requests get 503 until it does (logged once per outage)"
        );
        let me = self.clone();
        let started = std::time::Instant::now();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if let Ok(Ok(())) =
                    tokio::time::timeout(Duration::from_secs(2), store.ready()).await
                {
                    break;
                }
            }
            let refused = me.outage_refusals.swap(0, Ordering::Relaxed);
            me.outage.store(false, Ordering::SeqCst);
            tracing::warn!(
                seconds = started.elapsed().as_secs(),
                refused,
                "the store answers again"
            );
        });
        true
    }

    /// The text exposition; `sessions`: live agent sessions (`None`: the store did not answer).
    pub fn render(&self, sessions: Option<u64>, store: &crate::store::StoreStats) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP ssogate_logins_total Sign-ins by tenant, method and outcome.\n# TYPE ssogate_logins_total counter\n");
        let mut logins: Vec<_> = self
            .logins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        logins.sort();
        for ((tenant, method, outcome), n) in logins {
            let _ = writeln!(
                out,
                "ssogate_logins_total{{tenant=\"{}\",method=\"{method}\",outcome=\"{outcome}\"}} {n}",
                label(&tenant)
            );
        }
        out.push_str("# HELP ssogate_refusals_total Refused requests by reason.\n# TYPE ssogate_refusals_total counter\n");
        let mut refusals: Vec<_> = self
            .refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        refusals.sort();
        for (reason, n) in refusals {
            let _ = writeln!(out, "ssogate_refusals_total{{reason=\"{reason}\"}} {n}");
        }
        self.acs_latency.write(
            &mut out,
            "ssogate_acs_seconds",
            "Time to answer a POST to the ACS.",
        );
        self.callback_latency.write(
            &mut out,
            "ssogate_circuit_callback_seconds",
            "Time to answer a Circuit callback (the provider's calls included).",
        );
        let _ = writeln!(
            out,
            "# HELP ssogate_store_errors_total Requests refused because the store did not answer.\n# TYPE ssogate_store_errors_total counter\nssogate_store_errors_total {}",
            self.store_errors.load(Ordering::Relaxed)
        );
        if let Some(n) = sessions {
            let _ = writeln!(
                out,
                "# HELP ssogate_sessions Live agent sessions.\n# TYPE ssogate_sessions gauge\nssogate_sessions {n}"
            );
        }
        out.push_str(&render_store(store));
        out
    }
}

/// A label value: backslash, quote and newline escaped (tenant names are plain already).
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Times the ACS and the Circuit callback.
pub async fn time_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let which = if path.ends_with("/saml/acs") {
        Some(&state.metrics.acs_latency)
    } else if path.ends_with("/oauth/circuit/callback") {
        Some(&state.metrics.callback_latency)
    } else {
        None
    };
    let Some(h) = which else {
        return next.run(req).await;
    };
    let started = std::time::Instant::now();
    let res = next.run(req).await;
    h.observe(started.elapsed());
    res
}

/// The store engine's counters, those it has (PostgreSQL: statements, pool, configuration cache).
fn render_store(s: &crate::store::StoreStats) -> String {
    let mut out = String::new();
    let rows: [(&str, &str, &str, Option<String>); 7] = [
        (
            "ssogate_store_statements_total",
            "counter",
            "Statements sent to the database.",
            s.statements.map(|v| v.to_string()),
        ),
        (
            "ssogate_store_statement_seconds_total",
            "counter",
            "Time spent waiting for the database's answers (divided by the statements: the mean).",
            s.statement_micros.map(|us| (us as f64 / 1e6).to_string()),
        ),
        (
            "ssogate_store_unavailable_total",
            "counter",
            "Statements that failed for want of the database (timeouts, lost connections).",
            s.unavailable.map(|v| v.to_string()),
        ),
        (
            "ssogate_store_pool_connections",
            "gauge",
            "Database connections open.",
            s.pool_open.map(|v| v.to_string()),
        ),
        (
            "ssogate_store_pool_in_use",
            "gauge",
            "Database connections in use.",
            s.pool_in_use.map(|v| v.to_string()),
        ),
        (
            "ssogate_store_pool_waiting",
            "gauge",
            "Requests waiting for a database connection.",
            s.pool_waiting.map(|v| v.to_string()),
        ),
        (
            "ssogate_config_reloads_total",
            "counter",
            "Times the configuration cache was cleared (a change here or on another instance).",
            s.config_reloads.map(|v| v.to_string()),
        ),
    ];
    for (name, kind, help, v) in rows {
        if let Some(v) = v {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
    }
    out
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// `GET /readyz`: the store answers within 1 s, with the schema this build expects.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let probe = state.store.ready();
    match tokio::time::timeout(Duration::from_secs(1), probe).await {
        Ok(Ok(_)) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the store does not answer\n",
            )
                .into_response()
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the store did not answer within 1 s\n",
        )
            .into_response(),
    }
}

/// `GET /metrics` (a central administrator's API token or session).
pub async fn metrics(
    State(state): State<AppState>,
    super::admin::Authed(p): super::admin::Authed,
) -> Response {
    if !p.is_central() {
        return (StatusCode::FORBIDDEN, "central administrators only\n").into_response();
    }
    let sessions = state.store.session_count(state.clock.now()).await.ok();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(sessions, &state.store.stats()),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_counts_and_bounds_series() {
        let m = Metrics::default();
        m.login("acme", "saml", "success");
        m.login("acme", "saml", "success");
        m.login("a\"b", "circuit", "failure");
        m.refusal("replayed");
        m.acs_latency.observe(Duration::from_millis(3));
        let text = m.render(Some(7), &Default::default());
        assert!(text.contains(
            "ssogate_logins_total{tenant=\"acme\",method=\"saml\",outcome=\"success\"} 2"
        ));
        assert!(text.contains("tenant=\"a\\\"b\""), "{text}");
        assert!(text.contains("ssogate_refusals_total{reason=\"replayed\"} 1"));
        assert!(text.contains("ssogate_acs_seconds_bucket{le=\"0.0025\"} 0"));
        assert!(text.contains("ssogate_acs_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("ssogate_acs_seconds_count 1"));
        assert!(text.contains("ssogate_sessions 7"));
        for i in 0..MAX_SERIES + 10 {
            m.login(&format!("t{i}"), "password", "success");
        }
        assert!(m.logins.lock().unwrap().len() <= MAX_SERIES + 1);
        assert!(
            m.render(None, &Default::default())
                .contains("tenant=\"other\"")
        );
    }
}
