//! What keeps one client from taking the service down: CPU-heavy work (signature verification,
//! argon2) runs on a bounded number of threads off the async workers, with a bounded queue; wrong
//! passwords slow down only the (user, address) pair they come from.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::refusal::FailureLimiter;
use crate::config::Config;
use crate::saml::UnixTime;
use crate::store::Store;

/// The work could not be queued: the pool and its queue are full (answer 503 at once), or it
/// waited longer than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    QueueFull,
    WaitedTooLong,
    /// The work panicked (a bug): reported, never propagated into the request's task.
    Failed,
}

/// A fixed number of blocking threads' worth of CPU work, with a bounded queue in front.
#[derive(Debug)]
pub struct WorkPool {
    /// Permits for running and queued jobs together: when none is left, refuse at once.
    slots: Arc<Semaphore>,
    /// Permits for running jobs.
    workers: Arc<Semaphore>,
    max_wait: Duration,
}

impl WorkPool {
    pub fn new(workers: usize, queue: usize, max_wait: Duration) -> WorkPool {
        let workers = workers.max(1);
        WorkPool {
            slots: Arc::new(Semaphore::new(workers + queue)),
            workers: Arc::new(Semaphore::new(workers)),
            max_wait,
        }
    }

    /// Runs `f` on the blocking pool once a worker is free.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Busy::QueueFull)?;
        let worker = tokio::time::timeout(self.max_wait, self.workers.clone().acquire_owned())
            .await
            .map_err(|_| Busy::WaitedTooLong)?
            .map_err(|_| Busy::QueueFull)?;
        tokio::task::spawn_blocking(move || {
            let _held = (slot, worker);
            f()
        })
        .await
        .map_err(|_| Busy::Failed)
    }
}

/// Wrong passwords per (tenant, user name, client address): after `free` failures the pair waits
/// 1 s, then 2, 4, … up to `max_delay` before the next attempt is even checked. A success ends
/// it. Another address is never slowed by this pair's failures. Bounded: at most `MAX_PAIRS`
/// pairs are tracked (expired ones dropped first, then the oldest).
#[derive(Debug)]
pub struct PasswordThrottle {
    pairs: Mutex<HashMap<(i64, String, IpAddr), Attempts>>,
    free: u32,
    max_delay_secs: i64,
}

#[derive(Debug, Clone, Copy)]
struct Attempts {
    failures: u32,
    next_allowed: UnixTime,
    last: UnixTime,
}

const MAX_PAIRS: usize = 100_000;

impl PasswordThrottle {
    pub fn new(free: u32, max_delay_secs: i64) -> PasswordThrottle {
        PasswordThrottle {
            pairs: Mutex::default(),
            free,
            max_delay_secs,
        }
    }

    /// `Err(seconds)` while the pair must wait.
    pub fn check(&self, tenant: i64, user: &str, client: IpAddr, now: UnixTime) -> Result<(), i64> {
        let m = self.pairs.lock().unwrap_or_else(|p| p.into_inner());
        match m.get(&(tenant, user.to_string(), client)) {
            Some(a) if a.next_allowed > now => {
                Err((a.next_allowed.millis() - now.millis() + 999) / 1000)
            }
            _ => Ok(()),
        }
    }

    /// Records a wrong password; returns the wait now imposed, in seconds (0 while free).
    pub fn failed(&self, tenant: i64, user: &str, client: IpAddr, now: UnixTime) -> i64 {
        let mut m = self.pairs.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= MAX_PAIRS {
            let horizon = self.max_delay_secs.max(60) * 1000;
            m.retain(|_, a| now.millis() - a.last.millis() < horizon);
            if m.len() >= MAX_PAIRS
                && let Some(oldest) = m.iter().min_by_key(|(_, a)| a.last).map(|(k, _)| k.clone())
            {
                m.remove(&oldest);
            }
        }
        let a = m
            .entry((tenant, user.to_string(), client))
            .or_insert(Attempts {
                failures: 0,
                next_allowed: now,
                last: now,
            });
        a.failures = a.failures.saturating_add(1);
        a.last = now;
        let over = a.failures.saturating_sub(self.free);
        let delay = if over == 0 {
            0
        } else {
            (1i64 << (over - 1).min(30)).min(self.max_delay_secs)
        };
        a.next_allowed = now.plus_secs(delay);
        delay
    }

    pub fn succeeded(&self, tenant: i64, user: &str, client: IpAddr) {
        let mut m = self.pairs.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(&(tenant, user.to_string(), client));
    }

    /// The wait after `failures` wrong passwords.
    fn delay_after(&self, failures: i64) -> i64 {
        let over = failures.saturating_sub(i64::from(self.free));
        if over <= 0 {
            0
        } else {
            (1i64 << (over - 1).min(30)).min(self.max_delay_secs)
        }
    }

    fn shared_key(tenant: i64, user: &str, client: IpAddr) -> String {
        counter_key("pw", &[&tenant.to_string(), user, &client.to_string()])
    }

    /// [`Self::check`], for the whole cluster when the store keeps shared counters (several
    /// instances): the failures every instance saw count. A store that does not answer leaves
    /// the instance's own count.
    pub async fn check_shared(
        &self,
        store: &dyn Store,
        tenant: i64,
        user: &str,
        client: IpAddr,
        now: UnixTime,
    ) -> Result<(), i64> {
        self.check(tenant, user, client, now)?;
        let key = Self::shared_key(tenant, user, client);
        if let Ok(Some(Some((failures, last)))) = store.counter_get(&key, now).await {
            let until = last.plus_secs(self.delay_after(failures));
            if until > now {
                return Err((until.millis() - now.millis() + 999) / 1000);
            }
        }
        Ok(())
    }

    /// [`Self::failed`], counted for the cluster too: the longer of the two waits.
    pub async fn failed_shared(
        &self,
        store: &dyn Store,
        tenant: i64,
        user: &str,
        client: IpAddr,
        now: UnixTime,
    ) -> i64 {
        let local = self.failed(tenant, user, client, now);
        let key = Self::shared_key(tenant, user, client);
        // Kept as long as the longest wait, at least a minute.
        let keep = now.plus_secs(self.max_delay_secs.max(60) * 2);
        match store.counter_add(&key, 1, now, keep).await {
            Ok(Some((failures, _))) => local.max(self.delay_after(failures)),
            _ => local,
        }
    }

    pub async fn succeeded_shared(
        &self,
        store: &dyn Store,
        tenant: i64,
        user: &str,
        client: IpAddr,
    ) {
        self.succeeded(tenant, user, client);
        let _ = store
            .counter_delete(&Self::shared_key(tenant, user, client))
            .await;
    }
}

/// A shared counter's key: `kind` and a hash of what it counts (bounded, whatever the user
/// name's length).
pub(crate) fn counter_key(kind: &str, parts: &[&str]) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    format!("{kind}:{}", &hex::encode(h.finalize())[..32])
}

/// Every limiter of the service, built once from the configuration.
#[derive(Debug)]
pub struct Guards {
    /// Signature verification and message parsing.
    pub verify: WorkPool,
    /// argon2 (19 MiB each): at most as many at once as there are workers.
    pub passwords: WorkPool,
    pub throttle: PasswordThrottle,
    pub failures: FailureLimiter,
    /// "Sign in with Circuit" clicks (each stores a pending request).
    pub oauth_starts: StartLimiter,
}

/// Writes an anonymous client may cause per minute: `per_client` for each address, `total` for
/// all together. Bounded: at most `MAX_STARTERS` addresses are tracked (windows that ended are
/// dropped first; beyond, addresses share one window).
#[derive(Debug)]
pub struct StartLimiter {
    /// Per address, and for all: (the minute, starts in it).
    windows: Mutex<(HashMap<Option<IpAddr>, Window>, Window)>,
    per_client: u32,
    total: u32,
}

const MAX_STARTERS: usize = 10_000;

/// A minute (since the epoch) and the starts counted in it.
type Window = (i64, u32);

impl StartLimiter {
    pub fn new(per_client: u32, total: u32) -> StartLimiter {
        StartLimiter {
            windows: Mutex::new((HashMap::new(), (0, 0))),
            per_client,
            total,
        }
    }

    /// Counts one start by `client` at `now`; `Err(seconds to wait)` when over either limit.
    pub fn check(&self, client: Option<IpAddr>, now: UnixTime) -> Result<(), u64> {
        let minute = now.millis().div_euclid(60_000);
        let wait = (60 - now.millis().rem_euclid(60_000) / 1000).max(1) as u64;
        let mut g = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let (clients, all) = &mut *g;
        if all.0 != minute {
            *all = (minute, 0);
        }
        if all.1 >= self.total {
            return Err(wait);
        }
        if clients.len() >= MAX_STARTERS && !clients.contains_key(&client) {
            clients.retain(|_, w| w.0 == minute);
        }
        let key = if clients.len() >= MAX_STARTERS && !clients.contains_key(&client) {
            None
        } else {
            client
        };
        let w = clients.entry(key).or_insert((minute, 0));
        if w.0 != minute {
            *w = (minute, 0);
        }
        if w.1 >= self.per_client {
            return Err(wait);
        }
        w.1 += 1;
        all.1 += 1;
        Ok(())
    }
}

impl StartLimiter {
    /// [`Self::check`], then the same limits for the whole cluster when the store keeps shared
    /// counters: the instance's own count is an upper bound's lower part, so a start it refuses
    /// costs no store write.
    pub async fn check_shared(
        &self,
        store: &dyn Store,
        client: Option<IpAddr>,
        now: UnixTime,
    ) -> Result<(), u64> {
        self.check(client, now)?;
        let minute = now.millis().div_euclid(60_000);
        let wait = (60 - now.millis().rem_euclid(60_000) / 1000).max(1) as u64;
        let expires = UnixTime::from_millis((minute + 2) * 60_000);
        let all = format!("oauth-all:{minute}");
        if let Ok(Some((n, _))) = store.counter_add(&all, 1, now, expires).await
            && n > i64::from(self.total)
        {
            return Err(wait);
        }
        let ip = client.map_or_else(|| "-".to_string(), |c| c.to_string());
        let mine = counter_key("oauth", &[&ip, &minute.to_string()]);
        if let Ok(Some((n, _))) = store.counter_add(&mine, 1, now, expires).await
            && n > i64::from(self.per_client)
        {
            return Err(wait);
        }
        Ok(())
    }
}

impl Guards {
    pub fn new(config: &Config) -> Guards {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Guards {
            verify: WorkPool::new(
                config.verify_workers.unwrap_or(cores),
                config.verify_queue,
                Duration::from_secs(5),
            ),
            passwords: WorkPool::new(
                config.password_workers.unwrap_or(cores),
                config.password_queue,
                Duration::from_secs(config.password_wait_secs),
            ),
            throttle: PasswordThrottle::new(
                config.password_free_attempts,
                config.password_max_delay_secs,
            ),
            failures: FailureLimiter::default(),
            oauth_starts: StartLimiter::new(
                config.oauth_starts_per_minute,
                config.oauth_starts_per_minute_total,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_are_bounded_per_client_and_in_all() {
        let l = StartLimiter::new(3, 5);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let c: IpAddr = "192.0.2.3".parse().unwrap();
        let now = UnixTime::from_secs(6_000);
        for _ in 0..3 {
            assert_eq!(l.check(Some(a), now), Ok(()));
        }
        assert_eq!(l.check(Some(a), now), Err(60));
        assert_eq!(l.check(Some(b), now), Ok(()));
        assert_eq!(l.check(Some(b), now), Ok(()));
        // Five in all this minute: a third address waits too.
        assert!(l.check(Some(c), now).is_err());
        // The next minute starts afresh.
        assert_eq!(l.check(Some(a), now.plus_secs(60)), Ok(()));
        assert_eq!(l.check(Some(c), now.plus_secs(61)), Ok(()));
    }

    #[test]
    fn wrong_passwords_slow_only_their_pair() {
        let t = PasswordThrottle::new(5, 900);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let now = UnixTime::from_secs(10_000);
        for _ in 0..5 {
            assert_eq!(t.failed(1, "kate", a, now), 0);
        }
        assert_eq!(t.check(1, "kate", a, now), Ok(()));
        assert_eq!(t.failed(1, "kate", a, now), 1);
        assert_eq!(t.check(1, "kate", a, now), Err(1));
        assert_eq!(t.failed(1, "kate", a, now), 2);
        assert_eq!(t.failed(1, "kate", a, now), 4);
        assert_eq!(t.check(1, "kate", a, now), Err(4));
        // Same user from another address, another user from the same address: free.
        assert_eq!(t.check(1, "kate", b, now), Ok(()));
        assert_eq!(t.check(1, "bob", a, now), Ok(()));
        assert_eq!(t.check(2, "kate", a, now), Ok(()));
        // The wait ends; a success clears the pair.
        assert_eq!(t.check(1, "kate", a, now.plus_secs(4)), Ok(()));
        t.succeeded(1, "kate", a);
        assert_eq!(t.failed(1, "kate", a, now), 0);
        // The delay is capped.
        for _ in 0..40 {
            t.failed(1, "cap", a, now);
        }
        assert_eq!(t.check(1, "cap", a, now), Err(900));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_pool_refuses_at_once() {
        let pool = Arc::new(WorkPool::new(1, 1, Duration::from_secs(10)));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let rx = Arc::new(Mutex::new(rx));
        let p1 = pool.clone();
        let r1 = rx.clone();
        let running = tokio::spawn(async move {
            p1.run(move || {
                let _ = r1.lock().unwrap().recv();
            })
            .await
        });
        // Wait until the first job holds the worker.
        while pool.workers.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let p2 = pool.clone();
        let r2 = rx.clone();
        let queued = tokio::spawn(async move {
            p2.run(move || {
                let _ = r2.lock().unwrap().recv();
            })
            .await
        });
        while pool.slots.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        // One running, one queued: a third is refused without waiting.
        assert_eq!(pool.run(|| ()).await, Err(Busy::QueueFull));
        tx.send(()).unwrap();
        tx.send(()).unwrap();
        assert_eq!(running.await.unwrap(), Ok(()));
        assert_eq!(queued.await.unwrap(), Ok(()));
        assert_eq!(pool.run(|| 7).await, Ok(7));
    }
}
