//! The one place that reads the wall clock. Everything else takes `now` as a parameter.

use crate::saml::UnixTime;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> UnixTime;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[expect(
        clippy::disallowed_methods,
        reason = "the SystemClock is the only reader of the wall clock"
    )]
    fn now(&self) -> UnixTime {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        UnixTime::from_millis(d.as_millis() as i64)
    }
}

/// A clock that says what it is told (tests).
#[derive(Debug)]
pub struct FixedClock(std::sync::atomic::AtomicI64);

impl FixedClock {
    pub fn new(t: UnixTime) -> Self {
        FixedClock(std::sync::atomic::AtomicI64::new(t.millis()))
    }
    pub fn set(&self, t: UnixTime) {
        self.0
            .store(t.millis(), std::sync::atomic::Ordering::SeqCst);
    }
    pub fn advance_secs(&self, s: i64) {
        self.0
            .fetch_add(s * 1000, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> UnixTime {
        UnixTime::from_millis(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}
