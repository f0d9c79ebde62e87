//! Load test of the ACS over loopback: `ssogate serve` on a fresh SQLite data directory, an IdP
//! configured through the CLI, and distinct, freshly signed assertions POSTed to `/saml/acs`
//! (IdP-initiated, so every one goes through signature verification, every protocol check, the
//! replay cache, the user lookup and a new session).
//!
//! ```sh
//! cargo build --release && cargo run --release --example load -- --rate 2000 --seconds 30
//! cargo run --release --example load -- --soak-seconds 600 --rate 1000 --key ec
//! ```
//!
//! Phases: (1) closed loop, `--connections` busy connections, to find the most logins per second;
//! (2) open loop at `--rate` logins per second for `--seconds` (latency measured from each
//! request's scheduled start, so a slow answer delays nothing it should not); (3) optionally a soak
//! at `--rate` for `--soak-seconds` with assertions signed as they are sent, sampling the server's
//! RSS. The server's RSS (VmRSS, VmHWM) comes from /proc. Prints a summary and one JSON line.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ssogate::clock::{Clock, SystemClock};
use ssogate::saml::xmldsig::{SigningKey, sign_enveloped};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "support/mod.rs"]
mod support;

use support::{cli, cpu_secs, keypair, percentile, rss_kib};

const IDP: &str = "https://idp.load.test/";
const USERS: usize = 50;

struct Args {
    rate: u64,
    seconds: u64,
    connections: usize,
    closed_seconds: u64,
    soak_seconds: u64,
    key: String,
    /// During the open loop, an administrator polls the sign-in activity (sessions and failures
    /// through the JSON API) every this many seconds; 0: no polling.
    admin_poll_secs: u64,
}

fn args() -> Args {
    let mut a = Args {
        rate: 2000,
        seconds: 30,
        connections: 8,
        closed_seconds: 15,
        soak_seconds: 0,
        key: "rsa".into(),
        admin_poll_secs: 0,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let val = v.get(i + 1).cloned().unwrap_or_default();
        match v[i].as_str() {
            "--rate" => a.rate = val.parse().expect("--rate N"),
            "--seconds" => a.seconds = val.parse().expect("--seconds N"),
            "--connections" => a.connections = val.parse().expect("--connections N"),
            "--closed-seconds" => a.closed_seconds = val.parse().expect("--closed-seconds N"),
            "--soak-seconds" => a.soak_seconds = val.parse().expect("--soak-seconds N"),
            "--key" => a.key = val,
            "--admin-poll-seconds" => {
                a.admin_poll_secs = val.parse().expect("--admin-poll-seconds N")
            }
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    a
}

/// One freshly signed, distinct, IdP-initiated Response (Assertion signed), as a form body.
fn signed_form(key: &SigningKey, sp: &str, n: u64) -> String {
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

fn presign(key: &Arc<SigningKey>, sp: &str, from: u64, count: u64) -> Vec<String> {
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
struct Conn {
    stream: TcpStream,
    port: u16,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(port: u16) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            port,
            buf: Vec::with_capacity(8192),
        })
    }

    /// Returns (status, a session cookie was set).
    async fn post(&mut self, form: &str) -> std::io::Result<(u16, bool)> {
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
struct Tally {
    latencies_us: Vec<u64>,
    /// (request index, latency) for the open loop: latency by minute of the run.
    by_index: Vec<(u64, u64)>,
    ok: u64,
    refused: u64,
    errors: u64,
}

/// Closed loop: each connection sends the next form as soon as the last answer arrives.
async fn closed_loop(
    port: u16,
    forms: Arc<Vec<String>>,
    connections: usize,
    limit: Duration,
) -> (Tally, Duration) {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (forms, next) = (forms.clone(), next.clone());
            tokio::spawn(async move {
                let mut t = Tally::default();
                let Ok(mut c) = Conn::open(port).await else {
                    return t;
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= forms.len() || start.elapsed() > limit {
                        break;
                    }
                    let s = Instant::now();
                    match c.post(&forms[i]).await {
                        Ok((303, true)) => t.ok += 1,
                        Ok(_) => t.refused += 1,
                        Err(_) => {
                            t.errors += 1;
                            match Conn::open(port).await {
                                Ok(n) => c = n,
                                Err(_) => break,
                            }
                        }
                    }
                    t.latencies_us.push(s.elapsed().as_micros() as u64);
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
    }
    (all, start.elapsed())
}

/// Open loop: request i is due at start + i/rate; its latency counts from then.
async fn open_loop(
    port: u16,
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

/// p99 (ms) of each minute of an open-loop run at `rate`.
fn p99_by_minute(t: &Tally, rate: u64) -> Vec<f64> {
    let mut minutes: Vec<Vec<u64>> = Vec::new();
    for &(i, l) in &t.by_index {
        let m = (i / (rate * 60)) as usize;
        if minutes.len() <= m {
            minutes.resize(m + 1, Vec::new());
        }
        minutes[m].push(l);
    }
    minutes
        .into_iter()
        .map(|mut v| {
            v.sort_unstable();
            percentile(&v, 0.99)
        })
        .collect()
}

/// Prints and returns one phase's figures; `cpu` is the server's CPU seconds in the phase.
fn report(name: &str, t: &mut Tally, elapsed: Duration, cpu: f64) -> serde_json::Value {
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

/// Polls `GET /api/v1/tenants/default/sessions` and `…/failures` every `every` seconds until
/// `on` is false; each poll's time (both requests) in microseconds.
fn admin_poll(port: u16, token: &str, every: u64, on: &AtomicBool) -> Vec<u64> {
    let headers = format!("Authorization: Bearer {token}\r\n");
    let get = |path: &str| {
        let (status, _, text) = support::request(port, "GET", path, &headers, "");
        assert_eq!(status, 200, "{}", &text[..text.len().min(200)]);
        // The rows of the page (each session has a handle; failures a reference).
        (text.matches("\"handle\"").count() + text.matches("\"reference\"").count()) as u64
    };
    let mut times = Vec::new();
    let mut sessions = 0;
    while on.load(Ordering::Relaxed) {
        let t = Instant::now();
        sessions = get("/api/v1/tenants/default/sessions?limit=50");
        get("/api/v1/tenants/default/failures?limit=50");
        times.push(t.elapsed().as_micros() as u64);
        std::thread::sleep(Duration::from_secs(every).saturating_sub(t.elapsed()));
    }
    println!("the last poll listed {sessions} signed-in sessions (a page of at most 50)");
    times
}

fn main() {
    let a = args();
    let bin = support::ssogate_bin();
    let dir = std::env::temp_dir().join(format!("ssogate-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let data = dir.join("data");
    let port = support::free_port();
    let sp = format!("http://127.0.0.1:{port}");

    let (pkey, cert) = keypair(&a.key);
    let cert_file = dir.join("idp.crt");
    std::fs::write(&cert_file, cert.to_pem().expect("pem")).expect("cert");
    let key = Arc::new(
        SigningKey::from_pem(&pkey.private_key_to_pem_pkcs8().expect("pem")).expect("key"),
    );
    cli(&bin, &data, &["sp", "add", "--host-url", &sp]);
    cli(
        &bin,
        &data,
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
        &bin,
        &data,
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
        cli(&bin, &data, &["user", "add", &format!("agent{u}")]);
    }
    // The administrator's API token (printed once by the CLI).
    let token = if a.admin_poll_secs > 0 {
        let out = std::process::Command::new(&bin)
            .args(["api-client", "add", "poller", "--data-dir"])
            .arg(&data)
            .output()
            .expect("ssogate api-client add");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix("token ").and_then(|r| r.rsplit(": ").next()))
            .map(str::to_string)
            .expect("a token")
    } else {
        String::new()
    };
    let server = support::serve(&bin, &data, port, &[]);
    let pid = server.0.id();

    let peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid).0, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(250));
            }
        });
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "ssogate {} on 127.0.0.1:{port}, IdP key {}, {USERS} users; RSS at start {} KiB",
        bin.display(),
        a.key,
        rss_kib(pid).0
    );
    let _ = std::io::stdout().flush();

    // Phase 1: closed loop.
    let n_closed = (a.closed_seconds * 6000).max(1000);
    let t = Instant::now();
    let forms = Arc::new(presign(&key, &sp, 0, n_closed));
    println!(
        "signed {} assertions in {:.1} s",
        forms.len(),
        t.elapsed().as_secs_f64()
    );
    let cpu0 = cpu_secs(pid);
    let (mut closed, el) = rt.block_on(closed_loop(
        port,
        forms,
        a.connections,
        Duration::from_secs(a.closed_seconds),
    ));
    let closed_json = report(
        &format!("closed loop, {} connections", a.connections),
        &mut closed,
        el,
        cpu_secs(pid) - cpu0,
    );

    // Phase 2: open loop at the target rate.
    let total = a.rate * a.seconds;
    let t = Instant::now();
    let forms = Arc::new(presign(&key, &sp, 1_000_000, total));
    println!(
        "signed {} assertions in {:.1} s",
        forms.len(),
        t.elapsed().as_secs_f64()
    );
    let source: Arc<dyn Fn(u64) -> String + Send + Sync> = {
        let forms = forms.clone();
        Arc::new(move |i| forms[i as usize].clone())
    };
    let polling = Arc::new(AtomicBool::new(a.admin_poll_secs > 0));
    let poller = (a.admin_poll_secs > 0).then(|| {
        let (polling, token, every) = (polling.clone(), token.clone(), a.admin_poll_secs);
        std::thread::spawn(move || admin_poll(port, &token, every, &polling))
    });
    let cpu0 = cpu_secs(pid);
    let (mut open, el) = rt.block_on(open_loop(port, source, a.rate, total, 64));
    let mut open_json = report(
        &format!("open loop at {} logins/s offered", a.rate),
        &mut open,
        el,
        cpu_secs(pid) - cpu0,
    );
    polling.store(false, Ordering::Relaxed);
    if let Some(p) = poller {
        let mut polls = p.join().expect("poller");
        polls.sort_unstable();
        let (p50, p99, max) = (
            percentile(&polls, 0.5),
            percentile(&polls, 0.99),
            percentile(&polls, 1.0),
        );
        println!(
            "admin polls of the activity (sessions + failures) during the open loop: {}, p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms",
            polls.len()
        );
        open_json["admin_polls"] =
            serde_json::json!({"count": polls.len(), "p50_ms": p50, "p99_ms": p99, "max_ms": max});
    }
    drop(forms);
    let (rss, hwm) = rss_kib(pid);
    println!("server RSS after the runs {rss} KiB, peak (VmHWM) {hwm} KiB");

    // Phase 3: soak, signed as sent.
    let mut soak_json = serde_json::Value::Null;
    if a.soak_seconds > 0 {
        let total = a.rate * a.soak_seconds;
        let (k, s) = (key.clone(), sp.clone());
        let source: Arc<dyn Fn(u64) -> String + Send + Sync> =
            Arc::new(move |i| signed_form(&k, &s, 10_000_000 + i));
        let rss_before = rss_kib(pid).0;
        let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
        {
            let samples = samples.clone();
            let secs = a.soak_seconds;
            std::thread::spawn(move || {
                for m in 0..=secs / 60 {
                    samples.lock().expect("lock").push((m, rss_kib(pid).0));
                    std::thread::sleep(Duration::from_secs(60));
                }
            });
        }
        // The administrator keeps watching through the soak, when asked to.
        let soak_polling = Arc::new(AtomicBool::new(a.admin_poll_secs > 0));
        let soak_poller = (a.admin_poll_secs > 0).then(|| {
            let (polling, token, every) = (soak_polling.clone(), token.clone(), a.admin_poll_secs);
            std::thread::spawn(move || admin_poll(port, &token, every, &polling))
        });
        let cpu0 = cpu_secs(pid);
        let (mut soak, el) = rt.block_on(open_loop(port, source, a.rate, total, 64));
        soak_polling.store(false, Ordering::Relaxed);
        let soak_polls = soak_poller.map(|p| {
            let mut polls = p.join().expect("poller");
            polls.sort_unstable();
            let (p50, p99) = (percentile(&polls, 0.5), percentile(&polls, 0.99));
            println!(
                "admin polls during the soak: {}, p50 {p50:.2} ms, p99 {p99:.2} ms",
                polls.len()
            );
            serde_json::json!({"count": polls.len(), "p50_ms": p50, "p99_ms": p99})
        });
        let after = rss_kib(pid);
        let r = report(
            &format!("soak {} s at {} logins/s", a.soak_seconds, a.rate),
            &mut soak,
            el,
            cpu_secs(pid) - cpu0,
        );
        let per_minute = samples.lock().expect("lock").clone();
        println!(
            "soak RSS: before {rss_before} KiB, after {} KiB, peak {} KiB; per minute {:?}",
            after.0, after.1, per_minute
        );
        let p99s = p99_by_minute(&soak, a.rate);
        println!("soak p99 by minute (ms): {p99s:?}");
        soak_json = serde_json::json!({"result": r, "admin_polls": soak_polls, "rss_before_kib": rss_before, "rss_after_kib": after.0, "rss_peak_kib": after.1, "rss_per_minute_kib": per_minute, "p99_ms_by_minute": p99s});
    }
    sampling.store(false, Ordering::Relaxed);
    let (rss, hwm) = rss_kib(pid);
    let json = serde_json::json!({
        "key": a.key,
        "closed_loop": closed_json,
        "open_loop": open_json,
        "soak": soak_json,
        "server_rss_kib": rss,
        "server_peak_rss_kib": hwm.max(peak.load(Ordering::Relaxed)),
        "database_bytes": std::fs::metadata(data.join("ssogate.db")).map(|m| m.len()).unwrap_or(0),
    });
    println!("{json}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
