//! The event stream of the Web Manager and the API (`GET /api/v1/events`, Server-Sent Events):
//! sign-ins, refusals and administrative changes as they happen. One broadcast channel per
//! instance; a slow reader skips what it missed (it is told how many), and never holds the
//! sender back. Streams are capped ([`MAX_STREAMS`]); each ends when its session does.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::borrow::Cow;
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use crate::saml::UnixTime;

/// Events kept for slow readers.
const CAPACITY: usize = 1024;
/// Event streams open at once on one instance; more are answered 503.
pub const MAX_STREAMS: usize = 64;

/// One thing that happened.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    SignIn {
        at: String,
        tenant: String,
        user: String,
        method: Cow<'static, str>,
    },
    Failure {
        at: String,
        tenant: Option<String>,
        reason: Cow<'static, str>,
        reference: String,
    },
    Change {
        at: String,
        actor: String,
        action: String,
        object: String,
    },
}

impl Event {
    /// The tenant the event belongs to (`None`: a change, for central administrators only).
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Event::SignIn { tenant, .. } => Some(tenant),
            Event::Failure { tenant, .. } => tenant.as_deref(),
            Event::Change { .. } => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Event::SignIn { .. } => "sign_in",
            Event::Failure { .. } => "failure",
            Event::Change { .. } => "change",
        }
    }
}

pub fn at(t: UnixTime) -> String {
    t.to_rfc3339()
}

/// Events waiting to be relayed to the other instances; beyond, they are dropped (a watcher
/// elsewhere misses them, nothing else does).
pub const RELAY_QUEUE: usize = 4096;

#[derive(Debug)]
pub struct Events {
    tx: broadcast::Sender<Event>,
    open: Arc<AtomicUsize>,
    /// Several instances: events for the other instances' streams, while someone in the
    /// cluster watches (see `serve`'s relay).
    relay: std::sync::OnceLock<mpsc::Sender<Event>>,
    cluster_watching: AtomicBool,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(CAPACITY).0,
            open: Arc::default(),
            relay: std::sync::OnceLock::new(),
            cluster_watching: AtomicBool::new(false),
        }
    }
}

/// A place in the stream cap, given back when dropped.
#[derive(Debug)]
pub struct StreamSlot(Arc<AtomicUsize>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Events {
    /// Sends the event `e` builds to every open stream; with none open (the usual case on the
    /// ACS's path) the event is not even built.
    pub fn publish(&self, e: impl FnOnce() -> Event) {
        let here = self.tx.receiver_count() > 0;
        let relay = self
            .relay
            .get()
            .filter(|_| self.cluster_watching.load(Ordering::Relaxed));
        if !here && relay.is_none() {
            return;
        }
        let e = e();
        if let Some(r) = relay {
            let _ = r.try_send(e.clone());
        }
        if here {
            let _ = self.tx.send(e);
        }
    }

    /// An event another instance relayed: to this instance's streams only.
    pub fn publish_relayed(&self, e: Event) {
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(e);
        }
    }

    /// Relays every event published from now on (while [`Self::set_cluster_watching`] says
    /// someone watches) into the returned queue.
    pub fn relay_to_cluster(&self) -> Option<mpsc::Receiver<Event>> {
        let (tx, rx) = mpsc::channel(RELAY_QUEUE);
        self.relay.set(tx).ok()?;
        Some(rx)
    }

    pub fn set_cluster_watching(&self, on: bool) {
        self.cluster_watching.store(on, Ordering::Relaxed);
    }

    /// A new stream, if fewer than [`MAX_STREAMS`] are open.
    pub fn subscribe(&self) -> Option<(StreamSlot, broadcast::Receiver<Event>)> {
        let mut n = self.open.load(Ordering::Acquire);
        loop {
            if n >= MAX_STREAMS {
                return None;
            }
            match self
                .open
                .compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some((StreamSlot(self.open.clone()), self.tx.subscribe())),
                Err(now) => n = now,
            }
        }
    }

    pub fn open_streams(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}
