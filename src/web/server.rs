//! The HTTP/1.1 server: an accept loop that bounds what connections can hold.
//!
//! - At most `max_connections` at once, and `max_connections_per_client` from one peer address
//!   (a trusted proxy's connections count only against the total): one client's flood leaves
//!   room for everyone else. A connection over a cap is answered `503` and closed at once.
//! - A request's header must arrive within `header_read_timeout_secs`, counted from the
//!   connection's start or the end of the previous response: a kept-alive connection idle that
//!   long is closed, and so is one that trickles header lines.
//! - Nothing moving in either direction for `idle_timeout_secs` closes the connection.
//! - The whole request, body included, must be handled within `request_timeout_secs` (a
//!   middleware, see `web::app`).
//! - Headers are at most 64 KiB and 100 lines.
//! - `accept` failing for lack of file descriptors (`EMFILE`, `ENFILE`) pauses the loop for a
//!   moment instead of ending it or spinning.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt as _;

use super::client::{Cidr, Peer, canonical, is_trusted};

/// The limits the server enforces (from `Config`).
#[derive(Debug, Clone)]
pub struct ServerLimits {
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub trusted_proxies: Arc<[Cidr]>,
}

/// Open connections, in total and per peer address.
#[derive(Debug, Default)]
pub struct Connections {
    total: AtomicUsize,
    per_client: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Admitted {
    table: Arc<Connections>,
    ip: Option<IpAddr>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.table.total.fetch_sub(1, Ordering::SeqCst);
        if let Some(ip) = self.ip {
            let mut m = self
                .table
                .per_client
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(n) = m.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&ip);
                }
            }
        }
    }
}

impl Connections {
    /// A place for a connection from `ip`, if both caps allow it.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, limits: &ServerLimits) -> Option<Admitted> {
        if self.total.fetch_add(1, Ordering::SeqCst) >= limits.max_connections {
            self.total.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        if is_trusted(&limits.trusted_proxies, ip) {
            return Some(Admitted {
                table: self.clone(),
                ip: None,
            });
        }
        let mut m = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= limits.max_connections_per_client {
            drop(m);
            self.total.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        *n += 1;
        Some(Admitted {
            table: self.clone(),
            ip: Some(ip),
        })
    }

    pub fn open(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }
}

/// The soft limit on open files, raised to the hard limit when allowed; `None` if unknown.
pub fn raise_fd_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
                return None;
            }
            if r.rlim_cur < r.rlim_max {
                let want = libc::rlimit {
                    rlim_cur: r.rlim_max,
                    rlim_max: r.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                    r.rlim_cur = r.rlim_max;
                }
            }
        }
        Some(r.rlim_cur)
    }
    #[cfg(not(unix))]
    None
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open requests finish (up to
/// ten seconds).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    table: Arc<Connections>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_warning: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors (or kernel memory): every other connection is still
                // served; wait for some to close instead of failing or spinning.
                let exhausted = matches!(
                    e.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                );
                if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(error = %e, open = table.open(), "accept failed");
                    last_warning = Some(Instant::now());
                }
                if exhausted {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
        };
        let ip = canonical(peer.ip());
        let Some(admitted) = table.admit(ip, &limits) else {
            refuse(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let svc = app
            .clone()
            .map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(Peer(peer));
                req
            });
        let svc = TowerToHyperService::new(svc);
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Tracked {
            inner: stream,
            activity: activity.clone(),
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .keep_alive(true)
            .max_buf_size(64 * 1024)
            .max_headers(100);
        let conn = graceful.watch(builder.serve_connection(io, svc));
        let idle = limits.idle_timeout;
        tokio::spawn(async move {
            let _admitted = admitted;
            tokio::select! {
                r = conn => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                }
                () = activity.idle_for(idle) => {
                    tracing::debug!(%peer, "connection closed: idle");
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("shutdown: connections still open after 10 s are closed");
        }
    }
}

/// Answers a connection over a cap with a 503 (if the socket takes it at once) and closes it.
fn refuse(stream: TcpStream) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\n\r\n";
    let _ = stream.try_write(BUSY);
    drop(stream);
}

/// When bytes last moved on a connection.
#[derive(Debug)]
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
    fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    /// Completes once nothing moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let since = self.start.elapsed().saturating_sub(last);
            if since >= idle {
                return;
            }
            tokio::time::sleep(idle - since).await;
        }
    }
}

/// A stream that records when bytes move.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per: usize) -> ServerLimits {
        ServerLimits {
            max_connections: total,
            max_connections_per_client: per,
            header_read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            trusted_proxies: Arc::from(vec![Cidr::parse("10.0.0.1").unwrap()]),
        }
    }

    #[test]
    fn caps_per_client_and_in_total() {
        let t = Arc::new(Connections::default());
        let l = limits(5, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let a1 = t.admit(a, &l).expect("first from a");
        let _a2 = t.admit(a, &l).expect("second from a");
        assert!(t.admit(a, &l).is_none(), "third from a is over its cap");
        let _b1 = t.admit(b, &l).expect("b is not affected by a");
        // A trusted proxy counts only against the total.
        let _p1 = t.admit(proxy, &l).expect("proxy");
        let _p2 = t.admit(proxy, &l).expect("proxy again, no per-client cap");
        assert_eq!(t.open(), 5);
        assert!(t.admit(b, &l).is_none(), "the total is reached");
        drop(a1);
        assert_eq!(t.open(), 4);
        assert!(t.admit(a, &l).is_some(), "a freed place is usable again");
    }
}
