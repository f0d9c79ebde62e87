//! The SAML side of the load examples: freshly signed IdP-initiated responses for the load IdP,
//! keep-alive connections that POST them to the ACS, the open loop and its report.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ssogate::clock::{Clock, SystemClock};
use ssogate::saml::xmldsig::{SigningKey, sign_enveloped};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{cli, keypair, percentile};

/// The load IdP (a `key` pair: rsa or ec) with IdP-initiated logins for the default tenant,
/// and its users agent0…agent49, in `data`; the IdP's signing key.
pub fn load_idp(
    bin: &std::path::Path,
    data: &std::path::Path,
    dir: &std::path::Path,
    key: &str,
) -> Arc<SigningKey> {
    let (pkey, cert) = keypair(key);
    let cert_file = dir.join("idp.crt");
    std::fs::write(&cert_file, cert.to_pem().expect("pem")).expect("cert");
    cli(
        bin,
        data,
        &[
            "idp",
            "add",
            "load",
            "--entity-id",
            IDP,
            "--sso-url",
            "https://idp.load.test/sso",
            "--username-claim",
            "uid",
            "--cert",
            cert_file.to_str().expect("utf-8"),
        ],
    );
    cli(
        bin,
        data,
        &[
            "tenant",
            "set",
            "default",
            "--sso",
            "on",
            "--idp",
            "load",
            "--idp-initiated",
            "on",
        ],
    );
    for u in 0..USERS {
        cli(bin, data, &["user", "add", &format!("agent{u}")]);
    }
    Arc::new(SigningKey::from_pem(&pkey.private_key_to_pem_pkcs8().expect("pem")).expect("key"))
}

/// The load IdP's entity ID.
pub const IDP: &str = "https://idp.load.test/";
/// The users the assertions name (agent0 … agent49).
pub const USERS: usize = 50;

/// One freshly signed, distinct, IdP-initiated Response (Assertion signed), as a form body.
pub fn signed_form(key: &SigningKey, sp: &str, n: u64) -> String {
    let now = SystemClock.now();
    let acs = format!("{sp}/saml/acs");
    let id = format!("_load-{}-{n}", now.millis());
    let user = format!("agent{}", n as usize % USERS);
    // Sessions end after 4 minutes, so that most of a 10-minute soak runs in the steady state of
    // a long-running service: sessions and replay entries expire (and are purged) as fast as
    // logins create them.
    let (nb, nooa, snooa) = (now.plus_secs(-5), now.plus_secs(300), now.plus_secs(240));
    let assertion = format!(
        "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{id}\" IssueInstant=\"{now}\" Version=\"2.0\">\
         <saml:Issuer>{IDP}</saml:Issuer><saml:Subject><saml:NameID Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:persistent\">{user}-nameid</saml:NameID>\
         <saml:SubjectConfirmation Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\"><saml:SubjectConfirmationData NotOnOrAfter=\"{nooa}\" Recipient=\"{acs}\"/></saml:SubjectConfirmation></saml:Subject>\
         <saml:Conditions NotBefore=\"{nb}\" NotOnOrAfter=\"{nooa}\"><saml:AudienceRestriction><saml:Audience>{sp}</saml:Audience></saml:AudienceRestriction></saml:Conditions>\
         <saml:AuthnStatement AuthnInstant=\"{now}\" SessionIndex=\"_s{n}\" SessionNotOnOrAfter=\"{snooa}\"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>\
         <saml:AttributeStatement><saml:Attribute Name=\"uid\"><saml:AttributeValue>{user}</saml:AttributeValue></saml:Attribute>\
         <saml:Attribute Name=\"displayName\"><saml:AttributeValue>Agent {n}</saml:AttributeValue></saml:Attribute>\
         <saml:Attribute Name=\"groups\"><saml:AttributeValue>agents</saml:AttributeValue><saml:AttributeValue>queue-{}</saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion>",
        n % 17
    );
    let at = assertion.find("</saml:Issuer>").expect("issuer") + "</saml:Issuer>".len();
    let signed =
        sign_enveloped(&assertion, &id, at, key, key.default_algorithm(), None).expect("sign");
    let response = format!(
        "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_r{id}\" Version=\"2.0\" IssueInstant=\"{now}\" Destination=\"{acs}\">\
         <saml:Issuer>{IDP}</saml:Issuer><samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status>{signed}</samlp:Response>"
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(response.as_bytes());
    format!(
        "SAMLResponse={}",
        percent_encoding::utf8_percent_encode(&b64, percent_encoding::NON_ALPHANUMERIC)
    )
}

pub fn presign(key: &Arc<SigningKey>, sp: &str, from: u64, count: u64) -> Vec<String> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2) as u64;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (key, sp) = (key.clone(), sp.to_string());
            std::thread::spawn(move || {
                (from..from + count)
                    .filter(|n| n % threads == t)
                    .map(|n| (n, signed_form(&key, &sp, n)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<(u64, String)> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("signer"))
        .collect();
    all.sort_by_key(|(n, _)| *n);
    all.into_iter().map(|(_, f)| f).collect()
}

/// A keep-alive HTTP/1.1 connection that POSTs forms to the ACS.
pub struct Conn {
    stream: TcpStream,
    port: u16,
    buf: Vec<u8>,
}

impl Conn {
    pub async fn open(port: u16) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            port,
            buf: Vec::with_capacity(8192),
        })
    }

    /// Returns (status, a session cookie was set).
    pub async fn post(&mut self, form: &str) -> std::io::Result<(u16, bool)> {
        let head = format!(
            "POST /saml/acs HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
            self.port,
            form.len()
        );
        self.stream.write_all(head.as_bytes()).await?;
        self.stream.write_all(form.as_bytes()).await?;
        self.buf.clear();
        let header_end = loop {
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::other("connection closed"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..header_end]).to_ascii_lowercase();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut have = self.buf.len() - header_end;
        while have < len {
            let mut chunk = vec![0u8; len - have];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::other("connection closed"));
            }
            have += n;
        }
        Ok((status, head.contains("set-cookie: ssogate_session=")))
    }
}

#[derive(Default)]
pub struct Tally {
    pub latencies_us: Vec<u64>,
    /// (request index, latency) for the open loop: latency by minute of the run.
    pub by_index: Vec<(u64, u64)>,
    pub ok: u64,
    pub refused: u64,
    pub errors: u64,
}

/// Open loop: request i is due at start + i/rate; its latency counts from then. Connections
/// go to `ports` in turn (several instances: round robin).
pub async fn open_loop(
    ports: &[u16],
    source: Arc<dyn Fn(u64) -> String + Send + Sync>,
    rate: u64,
    total: u64,
    connections: usize,
) -> (Tally, Duration) {
    let start = Instant::now() + Duration::from_millis(50);
    let tasks: Vec<_> = (0..connections as u64)
        .map(|k| {
            let source = source.clone();
            let connections = connections as u64;
            let port = ports[k as usize % ports.len()];
            tokio::spawn(async move {
                let mut t = Tally::default();
                let Ok(mut c) = Conn::open(port).await else {
                    return t;
                };
                let mut i = k;
                while i < total {
                    let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
                    let form = source(i);
                    tokio::time::sleep_until(due.into()).await;
                    match c.post(&form).await {
                        Ok((303, true)) => t.ok += 1,
                        Ok(_) => t.refused += 1,
                        Err(_) => {
                            t.errors += 1;
                            if let Ok(n) = Conn::open(port).await {
                                c = n;
                            }
                        }
                    }
                    let l = due.elapsed().as_micros() as u64;
                    t.latencies_us.push(l);
                    t.by_index.push((i, l));
                    i += connections;
                }
                t
            })
        })
        .collect();
    let mut all = Tally::default();
    for task in tasks {
        let t = task.await.expect("task");
        all.ok += t.ok;
        all.refused += t.refused;
        all.errors += t.errors;
        all.latencies_us.extend(t.latencies_us);
        all.by_index.extend(t.by_index);
    }
    (all, start.elapsed())
}

/// Prints and returns one phase's figures; `cpu` is the server's CPU seconds in the phase.
pub fn report(name: &str, t: &mut Tally, elapsed: Duration, cpu: f64) -> serde_json::Value {
    t.latencies_us.sort_unstable();
    let rate = t.ok as f64 / elapsed.as_secs_f64();
    let per_cpu = if cpu > 0.0 { t.ok as f64 / cpu } else { 0.0 };
    let (p50, p99, max) = (
        percentile(&t.latencies_us, 0.50),
        percentile(&t.latencies_us, 0.99),
        percentile(&t.latencies_us, 1.0),
    );
    println!(
        "{name}: {} logins in {:.1} s = {rate:.0} logins/s; p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.1} ms; refused {}, connection errors {}",
        t.ok,
        elapsed.as_secs_f64(),
        t.refused,
        t.errors
    );
    println!(
        "  server CPU {cpu:.1} s ({:.2} cores) = {per_cpu:.0} logins per CPU-second",
        cpu / elapsed.as_secs_f64()
    );
    serde_json::json!({"server_cpu_seconds": cpu, "logins_per_cpu_second": per_cpu, "logins": t.ok, "seconds": elapsed.as_secs_f64(), "logins_per_second": rate, "p50_ms": p50, "p99_ms": p99, "max_ms": max, "refused": t.refused, "errors": t.errors})
}
