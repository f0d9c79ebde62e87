//! The service's one HTTP client for calls it makes itself (IdP metadata URLs; OAuth token and
//! profile calls later): connect within 5 s, done within 10 s, answers read up to a limit per
//! call, TLS verified against the system's CAs plus `outbound_ca_file`, `outbound_proxy`
//! (`http://host:port`, CONNECT for https; it takes precedence over `HTTPS_PROXY`/`NO_PROXY`),
//! no redirect followed, at most `outbound_max_in_flight` calls at once (more wait for a free
//! one within their own 10 s), and no destination in loopback, link-local, private or otherwise internal ranges
//! unless `outbound_allow_private` is on — checked on every address a name resolves to, and on
//! addresses written in the URL. Plain `http://` is taken for loopback destinations only.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;

/// Connect timeout.
pub const CONNECT_SECS: u64 = 5;
/// Whole-call timeout (connect, TLS, request, answer).
pub const TOTAL_SECS: u64 = 10;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum OutboundError {
    #[error("{0}")]
    BadUrl(String),
    #[error("{0} is in a loopback, link-local or private range (outbound_allow_private is off)")]
    Private(String),
    #[error(
        "all {0} outbound calls allowed at once (outbound_max_in_flight) stayed busy for {TOTAL_SECS} s"
    )]
    Busy(usize),
    #[error("no answer in time ({CONNECT_SECS} s to connect, {TOTAL_SECS} s in all)")]
    Timeout,
    #[error("{0}")]
    Failed(String),
    #[error("the server answered HTTP {0}")]
    Status(u16),
    #[error("the server redirects to {0:?}; redirects are not followed: give the final URL")]
    Redirect(String),
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("outbound HTTP is not configured: {0}")]
    Config(String),
}

/// The client. Cheap to share (`Arc` inside).
#[derive(Clone)]
pub struct Outbound {
    client: Result<reqwest::Client, String>,
    allow_private: bool,
    slots: Arc<tokio::sync::Semaphore>,
    max_in_flight: usize,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("allow_private", &self.allow_private)
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

/// Whether `ip` is an address the service may call without `outbound_allow_private`.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                // Carrier-grade NAT 100.64/10, benchmarking 198.18/15, reserved 240/4.
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x64 && s[1] == 0xff9b)) // NAT64 (would reach IPv4 ranges)
        }
    }
}

/// How long a name's addresses are reused (getaddrinfo gives no TTL; the system's resolver may
/// cache longer).
const DNS_CACHE_SECS: u64 = 30;
/// Names whose addresses are kept.
const DNS_CACHE_NAMES: usize = 256;
/// Lookups at once (each takes a blocking thread): a burst of calls to one provider waits for
/// the first lookup instead of starting hundreds of threads.
const DNS_LOOKUPS: usize = 4;

type DnsCache =
    std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Vec<SocketAddr>)>>;

/// Resolves names and keeps only the addresses the service may call.
struct GuardedResolver {
    allow_private: bool,
    /// The configured proxy's host: the proxy itself may be on a private network.
    proxy_host: Option<String>,
    cache: Arc<DnsCache>,
    lookups: Arc<tokio::sync::Semaphore>,
}

/// The addresses `host` had within the last [`DNS_CACHE_SECS`].
fn cached(cache: &DnsCache, host: &str) -> Option<Vec<SocketAddr>> {
    let m = cache.lock().unwrap_or_else(|p| p.into_inner());
    m.get(host)
        .filter(|(at, _)| at.elapsed() < Duration::from_secs(DNS_CACHE_SECS))
        .map(|(_, a)| a.clone())
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        let allow = self.allow_private || self.proxy_host.as_deref() == Some(host.as_str());
        let (cache, lookups) = (self.cache.clone(), self.lookups.clone());
        Box::pin(async move {
            let all = match cached(&cache, &host) {
                Some(a) => a,
                None => {
                    let _turn = lookups.acquire().await.map_err(std::io::Error::other)?;
                    match cached(&cache, &host) {
                        Some(a) => a,
                        None => {
                            let a: Vec<SocketAddr> =
                                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
                            let mut m = cache.lock().unwrap_or_else(|p| p.into_inner());
                            if m.len() >= DNS_CACHE_NAMES {
                                m.clear();
                            }
                            m.insert(host.clone(), (std::time::Instant::now(), a.clone()));
                            a
                        }
                    }
                }
            };
            let kept: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| allow || is_public(a.ip()))
                .collect();
            if kept.is_empty() {
                let what = if all.is_empty() {
                    format!("{host} does not resolve")
                } else {
                    OutboundError::Private(format!("{host} ({})", all[0].ip())).to_string()
                };
                return Err(Box::new(std::io::Error::other(what)) as _);
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn build(config: &Config) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(CONNECT_SECS))
        .timeout(Duration::from_secs(TOTAL_SECS))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ssogate/", env!("CARGO_PKG_VERSION")))
        // Connections are reused: as many kept per host as may be in flight at once, so a
        // steady stream of calls (Circuit's token and profile) opens no new ones.
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(config.outbound_max_in_flight.max(1));
    if let Some(path) = &config.outbound_ca_file {
        let pem =
            std::fs::read(path).map_err(|e| format!("outbound_ca_file {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            format!(
                "outbound_ca_file {}: not PEM certificates ({e})",
                path.display()
            )
        })?;
        if certs.is_empty() {
            return Err(format!(
                "outbound_ca_file {}: no certificate in it",
                path.display()
            ));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    let mut proxy_host = None;
    if let Some(p) = &config.outbound_proxy {
        let url =
            reqwest::Url::parse(p).map_err(|e| format!("outbound_proxy {p:?}: not a URL ({e})"))?;
        if url.scheme() != "http" || url.host_str().is_none() {
            return Err(format!(
                "outbound_proxy {p:?}: give it as http://host:port (https calls go through it by CONNECT)"
            ));
        }
        proxy_host = url.host_str().map(str::to_string);
        // An explicit proxy replaces HTTPS_PROXY/NO_PROXY from the environment.
        b = b.proxy(reqwest::Proxy::all(url).map_err(|e| format!("outbound_proxy {p:?}: {e}"))?);
    }
    b = b.dns_resolver(Arc::new(GuardedResolver {
        allow_private: config.outbound_allow_private,
        proxy_host,
        cache: Arc::default(),
        lookups: Arc::new(tokio::sync::Semaphore::new(DNS_LOOKUPS)),
    }));
    b.build().map_err(|e| format!("outbound HTTP client: {e}"))
}

/// The causes of a reqwest error, innermost included ("error sending request" alone says
/// nothing), bounded.
fn cause(e: &reqwest::Error) -> OutboundError {
    if e.is_timeout() {
        return OutboundError::Timeout;
    }
    let mut parts = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(x) = cur {
        let s = x.to_string();
        if !parts.iter().any(|p: &String| p.contains(&s)) {
            parts.push(s);
        }
        cur = x.source();
    }
    let text = parts.join(": ");
    OutboundError::Failed(text.chars().take(400).collect())
}

impl Outbound {
    pub fn new(config: &Config) -> Outbound {
        let max = config.outbound_max_in_flight.max(1);
        Outbound {
            client: build(config),
            allow_private: config.outbound_allow_private,
            slots: Arc::new(tokio::sync::Semaphore::new(max)),
            max_in_flight: max,
        }
    }

    /// Why the client cannot be used (a CA file that is not one, a proxy that is no URL).
    pub fn problem(&self) -> Option<&str> {
        self.client.as_ref().err().map(String::as_str)
    }

    /// Checks a URL the service is to call: absolute http(s), https unless the host is
    /// loopback, no address of a private range written in it (unless allowed).
    pub fn check_url(&self, url: &str) -> Result<reqwest::Url, OutboundError> {
        let u = reqwest::Url::parse(url)
            .map_err(|e| OutboundError::BadUrl(format!("{url:?} is not a URL ({e})")))?;
        let host = u
            .host()
            .ok_or_else(|| OutboundError::BadUrl(format!("{url:?} has no host")))?;
        let literal: Option<IpAddr> = match host {
            url::Host::Ipv4(a) => Some(a.into()),
            url::Host::Ipv6(a) => Some(a.into()),
            url::Host::Domain(_) => None,
        };
        let loopback = literal.is_some_and(|a| a.is_loopback())
            || u.host_str()
                .is_some_and(|h| h.eq_ignore_ascii_case("localhost"));
        match u.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(OutboundError::BadUrl(format!(
                    "{url:?}: only https is called (plain http only on loopback)"
                )));
            }
            s => {
                return Err(OutboundError::BadUrl(format!(
                    "{url:?}: the scheme {s:?} is not called (https)"
                )));
            }
        }
        if let Some(a) = literal
            && !self.allow_private
            && !is_public(a)
        {
            return Err(OutboundError::Private(a.to_string()));
        }
        Ok(u)
    }

    /// `GET url`; the body of a 200 answer, at most `max_bytes`.
    pub async fn get(&self, url: &str, max_bytes: usize) -> Result<Vec<u8>, OutboundError> {
        let (status, body) = self
            .send(url, Call::Get { bearer: None }, max_bytes)
            .await?;
        if status != 200 {
            return Err(OutboundError::Status(status));
        }
        Ok(body)
    }

    /// One call; the status and body of any answer that is not a redirect, at most `max_bytes`
    /// (an OAuth error comes as a 400 with a JSON body the caller reads).
    pub async fn send(
        &self,
        url: &str,
        call: Call<'_>,
        max_bytes: usize,
    ) -> Result<(u16, Vec<u8>), OutboundError> {
        let client = self
            .client
            .as_ref()
            .map_err(|e| OutboundError::Config(e.clone()))?;
        let u = self.check_url(url)?;
        // At most `max_in_flight` calls at once; beyond, a call waits for a free one within its
        // own time limit (the wait counts in its 10 s), holding nothing but its place in line.
        let started = std::time::Instant::now();
        let budget = Duration::from_secs(TOTAL_SECS);
        let _slot = match self.slots.try_acquire() {
            Ok(p) => p,
            Err(_) => tokio::time::timeout(budget, self.slots.acquire())
                .await
                .map_err(|_| OutboundError::Busy(self.max_in_flight))?
                .map_err(|_| OutboundError::Busy(self.max_in_flight))?,
        };
        let remaining = budget.saturating_sub(started.elapsed());
        if remaining.is_zero() {
            return Err(OutboundError::Busy(self.max_in_flight));
        }
        let req = match call {
            Call::Get { bearer } => {
                let r = client.get(u);
                match bearer {
                    Some(t) => r.bearer_auth(t),
                    None => r,
                }
            }
            Call::PostForm { form, basic } => {
                let r = client.post(u).form(form);
                match basic {
                    Some((user, password)) => r.basic_auth(user, Some(password)),
                    None => r,
                }
            }
        }
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(remaining);
        let mut res = req.send().await.map_err(|e| cause(&e))?;
        let status = res.status();
        if status.is_redirection() {
            let to = res
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .chars()
                .take(200)
                .collect();
            return Err(OutboundError::Redirect(to));
        }
        if res.content_length().is_some_and(|n| n > max_bytes as u64) {
            return Err(OutboundError::TooLarge(max_bytes));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| cause(&e))? {
            if body.len() + chunk.len() > max_bytes {
                return Err(OutboundError::TooLarge(max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status.as_u16(), body))
    }
}

/// What [`Outbound::send`] sends.
#[derive(Clone, Copy)]
pub enum Call<'a> {
    /// A GET, with a bearer token when given.
    Get { bearer: Option<&'a str> },
    /// A POST of `application/x-www-form-urlencoded` fields, with HTTP Basic when given.
    PostForm {
        form: &'a [(&'a str, &'a str)],
        basic: Option<(&'a str, &'a str)>,
    },
}

impl std::fmt::Debug for Call<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens and secrets never in Debug output.
        match self {
            Call::Get { bearer } => f
                .debug_struct("Get")
                .field("bearer", &bearer.map(|_| "[redacted]"))
                .finish(),
            Call::PostForm { form, basic } => f
                .debug_struct("PostForm")
                .field("fields", &form.iter().map(|(k, _)| *k).collect::<Vec<_>>())
                .field("basic", &basic.map(|(u, _)| u))
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ranges_are_not_public() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(a.parse().unwrap()), "{a}");
        }
        for a in [
            "93.184.215.14",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn urls_are_checked_before_any_call() {
        let strict = Outbound::new(&Config::default());
        let open = Outbound::new(&Config {
            outbound_allow_private: true,
            ..Config::default()
        });
        for (url, says) in [
            ("ftp://idp.example.com/m", "scheme"),
            ("http://idp.example.com/m", "only https"),
            ("https://10.0.0.5/m", "private"),
            ("https://[::1]/m", "private"),
            ("https://169.254.169.254/latest", "private"),
            ("not a url", "not a URL"),
        ] {
            let e = strict.check_url(url).unwrap_err().to_string();
            assert!(e.contains(says), "{url}: {e}");
        }
        assert!(strict.check_url("https://idp.example.com/m").is_ok());
        // Loopback over plain http, and private ranges, when allowed (tests, labs).
        assert!(
            strict
                .check_url("http://127.0.0.1:8080/m")
                .unwrap_err()
                .to_string()
                .contains("private")
        );
        assert!(open.check_url("http://127.0.0.1:8080/m").is_ok());
        assert!(open.check_url("https://10.0.0.5/m").is_ok());
    }
}
