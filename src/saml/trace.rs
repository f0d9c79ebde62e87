//! A trace of the checks a response goes through, for the administrator's SAML tracer: each
//! check announces itself with the values it compares before it runs; when validation stops with
//! an error, the last check announced is the one that failed. Without tracing ([`NoTrace`]) the
//! calls compile to nothing: the values are built by closures that are never called.

/// Where the checks of a validation are announced.
pub trait Trace {
    /// The check `name` runs now, comparing `values` (built only when tracing).
    fn step(&mut self, name: &'static str, values: impl FnOnce() -> Vec<(&'static str, String)>);
}

/// No tracing: every call is empty.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTrace;

impl Trace for NoTrace {
    #[inline(always)]
    fn step(&mut self, _: &'static str, _: impl FnOnce() -> Vec<(&'static str, String)>) {}
}

/// One check as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub name: &'static str,
    pub values: Vec<(&'static str, String)>,
}

/// Records every check announced.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    pub steps: Vec<Step>,
}

impl Trace for Recorder {
    fn step(&mut self, name: &'static str, values: impl FnOnce() -> Vec<(&'static str, String)>) {
        self.steps.push(Step {
            name,
            values: values(),
        });
    }
}

/// How a traced check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    /// Refused, with the refusal's stable code and sentence.
    Failed {
        code: String,
        message: String,
    },
    /// Not run: an earlier check failed.
    NotReached,
}

/// One check of a traced validation, with the values it compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracedStep {
    pub name: String,
    pub values: Vec<(String, String)>,
    pub verdict: Verdict,
}

/// The checks of one response, in order. A run stops at the first failure (as the ACS does).
#[derive(Debug, Default, Clone)]
pub struct Tracer {
    pub steps: Vec<TracedStep>,
}

fn owned(values: Vec<(&'static str, String)>) -> Vec<(String, String)> {
    values
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

impl Tracer {
    /// Runs one check named `name`; records it passed or failed.
    pub fn check<T>(
        &mut self,
        name: &str,
        values: Vec<(&'static str, String)>,
        f: impl FnOnce() -> Result<T, crate::saml::Error>,
    ) -> Result<T, crate::saml::Error> {
        let r = f();
        let verdict = match &r {
            Ok(_) => Verdict::Passed,
            Err(e) => Verdict::Failed {
                code: e.code().to_string(),
                message: e.to_string(),
            },
        };
        self.steps.push(TracedStep {
            name: name.to_string(),
            values: owned(values),
            verdict,
        });
        r
    }

    /// A check outside the SAML core (the IdP or user lookup), with its outcome.
    pub fn record(
        &mut self,
        name: &str,
        values: Vec<(&'static str, String)>,
        failure: Option<(&str, String)>,
    ) {
        self.steps.push(TracedStep {
            name: name.to_string(),
            values: owned(values),
            verdict: match failure {
                None => Verdict::Passed,
                Some((code, message)) => Verdict::Failed {
                    code: code.to_string(),
                    message,
                },
            },
        });
    }

    /// Values learnt after a check passed (which certificate verified, the user name found).
    pub fn annotate(&mut self, key: &'static str, value: String) {
        if let Some(s) = self.steps.last_mut() {
            s.values.push((key.to_string(), value));
        }
    }

    /// The protocol checks of `accept`, each its own step.
    pub fn accept(
        &mut self,
        verified: &crate::saml::response::VerifiedResponse,
        ctx: &crate::saml::response::ExpectedContext<'_>,
        now: crate::saml::UnixTime,
    ) -> Result<crate::saml::response::UnredeemedAssertion, crate::saml::Error> {
        let mut rec = Recorder::default();
        let r = verified.accept_traced(ctx, now, &mut rec);
        let n = rec.steps.len();
        for (i, step) in rec.steps.into_iter().enumerate() {
            let verdict = match &r {
                Err(e) if i + 1 == n => Verdict::Failed {
                    code: e.code().to_string(),
                    message: e.to_string(),
                },
                _ => Verdict::Passed,
            };
            self.steps.push(TracedStep {
                name: step.name.to_string(),
                values: owned(step.values),
                verdict,
            });
        }
        r
    }

    /// The first failed check, if one failed.
    pub fn first_failure(&self) -> Option<&TracedStep> {
        self.steps
            .iter()
            .find(|s| matches!(s.verdict, Verdict::Failed { .. }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_trace_never_builds_the_values() {
        let mut built = false;
        NoTrace.step("x", || {
            built = true;
            vec![]
        });
        assert!(!built);
        let mut r = Recorder::default();
        r.step("issuer", || vec![("got", "a".into())]);
        assert_eq!(r.steps[0].name, "issuer");
    }
}
