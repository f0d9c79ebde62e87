//! Hostile clients against a running `ssogate serve` (release build) on loopback, with the
//! default limits: what anonymous requests store, what concurrent wrong passwords cost in
//! memory, and how `/auth/check` answers another client while the costliest messages and a
//! connection flood arrive. Every attack is built here; the figures go to BENCHMARKS.md.
//!
//! ```sh
//! cargo build --release && cargo run --release --example hostile_load
//! ```
//!
//! Phases: (1) 10,000 anonymous `GET /t/default/login` of an SSO tenant from one address: growth of the
//! data directory; (2) 64 connections sending wrong passwords for 10 s (each for another user
//! name, so every one costs an argon2 check), then 50 at the Web Manager's sign-in: the server's
//! RSS before and at its peak; (3) a
//! probe `GET /auth/check` every 20 ms from another address, first alone, then while four
//! connections POST the costliest hostile messages (`tests/common/hostile_gen.rs`) and one
//! client holds and trickles 1,000 connections: p50, p99 and max of the probe.

#[path = "../tests/common/generate.rs"]
#[allow(dead_code)]
mod generate;
#[path = "../tests/common/hostile_gen.rs"]
mod hostile_gen;
#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use support::{cli, percentile, rss_kib};

async fn connect_from(from: [u8; 4], port: u16) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::from((from, 0)))?;
    let c = s.connect(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    c.set_nodelay(true)?;
    Ok(c)
}

/// One request on a kept-alive connection; the status (0 when the connection failed).
async fn exchange(s: &mut TcpStream, req: &[u8]) -> u16 {
    if s.write_all(req).await.is_err() {
        return 0;
    }
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        let Ok(n) = s.read(&mut chunk).await else {
            return 0;
        };
        if n == 0 {
            return 0;
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < end + 4 + len {
            let Ok(n) = s.read(&mut chunk).await else {
                return 0;
            };
            if n == 0 {
                return 0;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        return head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
    }
}

fn form_post(port: u16, path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The probe: `GET /auth/check` every 20 ms from 127.0.0.2 for `secs`; latencies in µs.
async fn probe(port: u16, secs: u64) -> (Vec<u64>, u64) {
    let req = format!("GET /auth/check HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").into_bytes();
    let mut lat = Vec::new();
    let mut failed = 0;
    let mut conn: Option<TcpStream> = None;
    let end = Instant::now() + Duration::from_secs(secs);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while Instant::now() < end {
        tick.tick().await;
        let t = Instant::now();
        if conn.is_none() {
            conn = connect_from([127, 0, 0, 2], port).await.ok();
        }
        let status = match conn.as_mut() {
            Some(c) => tokio::time::timeout(Duration::from_secs(5), exchange(c, &req))
                .await
                .unwrap_or_default(),
            None => 0,
        };
        if status == 401 {
            lat.push(t.elapsed().as_micros() as u64);
        } else {
            failed += 1;
            conn = None;
        }
    }
    lat.sort_unstable();
    (lat, failed)
}

/// `conns` connections posting wrong passwords to `path` for 10 s, each attempt for another
/// user name (`user` with `{c}` the connection, `{i}` the attempt); answers and their statuses.
async fn password_flood(
    port: u16,
    conns: u64,
    path: &'static str,
    user: &'static str,
) -> (u64, std::collections::BTreeMap<u16, u64>) {
    let n = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..conns {
        let n = n.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = connect_from([127, 0, 0, 1], port).await.expect("connect");
            let end = Instant::now() + Duration::from_secs(10);
            let mut seen = std::collections::BTreeMap::new();
            let mut i = 0u64;
            while Instant::now() < end {
                i += 1;
                let name = user
                    .replace("{c}", &c.to_string())
                    .replace("{i}", &i.to_string());
                let body = format!("username={name}&password=wrong-password");
                let s = exchange(&mut conn, &form_post(port, path, &body)).await;
                *seen.entry(s).or_insert(0u64) += 1;
                n.fetch_add(1, Ordering::Relaxed);
                if s == 0 {
                    conn = connect_from([127, 0, 0, 1], port).await.expect("connect");
                }
            }
            seen
        }));
    }
    let mut all = std::collections::BTreeMap::new();
    for t in tasks {
        for (k, v) in t.await.expect("task") {
            *all.entry(k).or_insert(0u64) += v;
        }
    }
    (n.load(Ordering::Relaxed), all)
}

fn main() {
    let bin = support::ssogate_bin();
    let dir = std::env::temp_dir().join(format!("ssogate-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let data = dir.join("data");
    let port = support::free_port();
    let sp = format!("http://127.0.0.1:{port}");
    let cert = dir.join("idp.crt");
    std::fs::write(&cert, &generate::idp().cert_pem).expect("cert");
    cli(&bin, &data, &["sp", "add", "--host-url", &sp]);
    cli(
        &bin,
        &data,
        &[
            "idp",
            "add",
            "test",
            "--entity-id",
            generate::IDP,
            "--sso-url",
            "https://idp.example.test/sso",
            "--username-claim",
            generate::USER_ATTR,
            "--cert",
            cert.to_str().expect("utf-8"),
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
            "test",
            "--idp-initiated",
            "on",
            "--login-domain",
            "example",
        ],
    );
    cli(
        &bin,
        &data,
        &["tenant", "add", "pw", "--login-domain", "pw.example"],
    );
    let server = support::serve(&bin, &data, port, &[("SSOGATE_MULTI_TENANT", "true")]);
    let pid = server.0.id();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut json = serde_json::Map::new();
    println!("ssogate {} on 127.0.0.1:{port}", bin.display());

    // (1) Storage per 10,000 anonymous login starts.
    std::thread::sleep(Duration::from_millis(500));
    let before = dir_bytes(&data);
    let started = Instant::now();
    let refused = rt.block_on(async {
        let req =
            format!("GET /t/default/login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").into_bytes();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let req = req.clone();
            tasks.push(tokio::spawn(async move {
                let mut c = connect_from([127, 0, 0, 1], port).await.expect("connect");
                let mut bad = 0;
                for _ in 0..2500 {
                    if exchange(&mut c, &req).await != 303 {
                        bad += 1;
                    }
                }
                bad
            }));
        }
        let mut bad = 0;
        for t in tasks {
            bad += t.await.expect("task");
        }
        bad
    });
    std::thread::sleep(Duration::from_millis(1500));
    let after = dir_bytes(&data);
    println!(
        "10,000 anonymous GET /login in {:.1} s ({} not 303): data directory {before} -> {after} bytes ({:+})",
        started.elapsed().as_secs_f64(),
        refused,
        after as i64 - before as i64
    );
    json.insert(
        "storage_per_10000_anonymous_logins_bytes".into(),
        (after as i64 - before as i64).into(),
    );

    // (2) 64 concurrent wrong passwords at the agents' login, each for another user name; then
    // 50 at the Web Manager's sign-in (the same argon2 pool and throttle).
    for (conns, path, key, user) in [
        (
            64u64,
            "/t/pw/login",
            "64_wrong_passwords",
            "guess{c}x{i}%40pw.example",
        ),
        (
            50,
            "/webmanager/signin",
            "50_wrong_admin_passwords",
            "admin{c}x{i}",
        ),
    ] {
        let rss_before = rss_kib(pid).0;
        let peak = Arc::new(AtomicU64::new(rss_before));
        let sampling = Arc::new(AtomicBool::new(true));
        {
            let (peak, sampling) = (peak.clone(), sampling.clone());
            std::thread::spawn(move || {
                while sampling.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_kib(pid).0, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
        let (answered, statuses) = rt.block_on(password_flood(port, conns, path, user));
        sampling.store(false, Ordering::Relaxed);
        let peak_kib = peak.load(Ordering::Relaxed);
        println!(
            "{conns} concurrent wrong passwords at {path} for 10 s: {answered} answers {statuses:?}; RSS {rss_before} KiB before, peak {peak_kib} KiB (+{} MB)",
            (peak_kib - rss_before) / 1024
        );
        json.insert(format!("rss_before_{key}_kib"), rss_before.into());
        json.insert(format!("rss_peak_{key}_kib"), peak_kib.into());
        json.insert(
            format!("rss_growth_{key}_mb"),
            ((peak_kib - rss_before) as f64 / 1024.0).into(),
        );
    }

    // (3) /auth/check from another client, alone and under attack.
    let (alone, failed) = rt.block_on(probe(port, 10));
    let row = |name: &str, lat: &[u64], failed: u64| {
        println!(
            "{name}: {} probes, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {failed} failed",
            lat.len(),
            percentile(lat, 0.5),
            percentile(lat, 0.99),
            percentile(lat, 1.0)
        );
        serde_json::json!({"probes": lat.len(), "p50_ms": percentile(lat, 0.5), "p99_ms": percentile(lat, 0.99), "max_ms": percentile(lat, 1.0), "failed": failed})
    };
    json.insert(
        "auth_check_alone".into(),
        row("/auth/check alone", &alone, failed),
    );

    let fams = hostile_gen::families();
    let costly: Vec<Vec<u8>> = [
        ("namespace_scope_attributes", 150_000),
        ("nested_prefixed_elements", 170_000),
        ("distinct_ids", 120_000),
        ("inclusive_namespaces_many", 240_000),
    ]
    .iter()
    .map(|(name, size)| {
        let f = fams.iter().find(|f| f.name == *name).expect("family");
        let body = format!(
            "SAMLResponse={}",
            percent_encoding::utf8_percent_encode(
                &generate::b64(&(f.build)(*size)),
                percent_encoding::NON_ALPHANUMERIC
            )
        );
        form_post(port, "/saml/acs", &body)
    })
    .collect();
    let (under, failed, attack) = rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let mut attackers = Vec::new();
        // Four connections sending the costliest messages back to back (from 127.0.0.3).
        for (i, msg) in costly.iter().enumerate() {
            let (msg, stop, sent) = (msg.clone(), stop.clone(), sent.clone());
            attackers.push(tokio::spawn(async move {
                let mut c = connect_from([127, 0, 0, 3], port).await.ok();
                while !stop.load(Ordering::Relaxed) {
                    let Some(conn) = c.as_mut() else {
                        c = connect_from([127, 0, 0, 3], port).await.ok();
                        continue;
                    };
                    if exchange(conn, &msg).await == 0 {
                        c = None;
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                    let _ = i;
                }
            }));
        }
        // One client (127.0.0.4) opening 1,000 connections and trickling header lines on them.
        {
            let stop = stop.clone();
            attackers.push(tokio::spawn(async move {
                let mut held = Vec::new();
                for _ in 0..1000 {
                    if let Ok(mut c) = connect_from([127, 0, 0, 4], port).await {
                        let _ = c.write_all(b"GET / HTTP/1.1\r\n").await;
                        held.push(c);
                    }
                }
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    for c in held.iter_mut() {
                        let _ = c.try_write(b"X-Slow: 1\r\n");
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (lat, failed) = probe(port, 20).await;
        stop.store(true, Ordering::Relaxed);
        for a in attackers {
            a.abort();
        }
        (lat, failed, sent.load(Ordering::Relaxed))
    });
    println!("costly messages answered during the probe: {attack}");
    json.insert(
        "auth_check_under_attack".into(),
        row(
            "/auth/check while the costliest messages and a connection flood arrive",
            &under,
            failed,
        ),
    );
    json.insert("costly_messages_answered".into(), attack.into());
    println!("{}", serde_json::Value::Object(json));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
