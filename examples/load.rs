//! Load test of the ACS over loopback: `ssogate serve` on a fresh SQLite data directory, an IdP
//! configured through the CLI, and distinct, freshly signed assertions POSTed to `/saml/acs`
//! (IdP-initiated, so every one goes through signature verification, every protocol check, the
//! replay cache, the user lookup and a new session).
//!
//! ```sh
//! cargo build --release && cargo run --release --example load -- --rate 2000 --seconds 30
//! cargo run --release --example load -- --soak-seconds 600 --rate 1000 --key ec
//! cargo run --release --example load -- --instances 2 --database-url postgres://u@127.0.0.1:5432/postgres
//! ```
//!
//! With `--database-url` the instances share a fresh PostgreSQL database made on that server (and
//! dropped after); connections go to the `--instances` in turn, and the CPU reported is that of
//! every ssogate instance and every `postgres` process together.
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

#[path = "support/mod.rs"]
mod support;

use support::acs::{Conn, Tally, USERS, open_loop, presign, report, signed_form};
use support::{cli, cpu_secs, percentile, rss_kib};

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
    /// ssogate instances (each connection goes to one of them, in turn).
    instances: usize,
    /// A PostgreSQL server: the instances share a fresh database on it.
    database_url: Option<String>,
    /// Sessions and pending requests in this Redis (its database is emptied first).
    redis_url: Option<String>,
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
        instances: 1,
        database_url: None,
        redis_url: None,
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
            "--instances" => a.instances = val.parse().expect("--instances N"),
            "--database-url" => a.database_url = Some(val),
            "--redis-url" => a.redis_url = Some(val),
            "--admin-poll-seconds" => {
                a.admin_poll_secs = val.parse().expect("--admin-poll-seconds N")
            }
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    a
}

/// Closed loop: each connection sends the next form as soon as the last answer arrives.
async fn closed_loop(
    ports: &[u16],
    forms: Arc<Vec<String>>,
    connections: usize,
    limit: Duration,
) -> (Tally, Duration) {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|k| {
            let (forms, next) = (forms.clone(), next.clone());
            let port = ports[k % ports.len()];
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
    assert!(
        a.instances == 1 || a.database_url.is_some(),
        "several instances need --database-url (SQLite is one instance's)"
    );
    let ports: Vec<u16> = (0..a.instances.max(1))
        .map(|_| support::free_port())
        .collect();
    let port = ports[0];
    let sp = format!("http://127.0.0.1:{port}");
    // PostgreSQL: a fresh database, named in the environment every ssogate command below
    // inherits (with the secrets key every instance must share).
    let database = a.database_url.as_deref().map(|url| {
        let name = format!("ssogate_load_{}", std::process::id());
        let db = support::fresh_database(url, &name);
        let key = dir.join("secrets.key");
        std::fs::write(&key, support::random_hex(32)).expect("key");
        // SAFETY: set before any other thread exists.
        unsafe {
            std::env::set_var("SSOGATE_DATABASE_URL", &db);
            std::env::set_var("SSOGATE_SECRETS_KEY_FILE", &key);
        }
        if let Some(r) = &a.redis_url {
            let o = std::process::Command::new("redis-cli")
                .args(["-u", r, "FLUSHDB"])
                .output()
                .expect("redis-cli");
            assert!(o.status.success(), "redis-cli FLUSHDB");
            // SAFETY: as above.
            unsafe { std::env::set_var("SSOGATE_REDIS_URL", r) };
        }
        (url.to_string(), name)
    });

    cli(&bin, &data, &["sp", "add", "--host-url", &sp]);
    let key = support::acs::load_idp(&bin, &data, &dir, &a.key);
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
    let servers: Vec<support::Server> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            // On SQLite the one instance serves the data directory the CLI configured; on
            // PostgreSQL each has its own (unused) directory.
            let d = if database.is_some() {
                data.join(format!("i{i}"))
            } else {
                data.clone()
            };
            support::serve(&bin, &d, *p, &[])
        })
        .collect();
    let pid = servers[0].0.id();
    let pids: Vec<u32> = servers.iter().map(|s| s.0.id()).collect();
    // CPU of everything serving the logins: every instance, and PostgreSQL's processes.
    let serving_cpu = {
        let pids = pids.clone();
        let with_pg = database.is_some();
        move || -> f64 {
            let mut all = pids.clone();
            if with_pg {
                all.extend(support::pids_named("postgres"));
            }
            all.iter().map(|p| cpu_secs(*p)).sum()
        }
    };

    let peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    {
        let (peak, sampling, pids) = (peak.clone(), sampling.clone(), pids.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                let rss: u64 = pids.iter().map(|p| rss_kib(*p).0).sum();
                peak.fetch_max(rss, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(250));
            }
        });
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "ssogate {} ×{} on 127.0.0.1:{ports:?} ({}), IdP key {}, {USERS} users; RSS at start {} KiB",
        bin.display(),
        ports.len(),
        if database.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
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
    let cpu0 = serving_cpu();
    let (mut closed, el) = rt.block_on(closed_loop(
        &ports,
        forms,
        a.connections,
        Duration::from_secs(a.closed_seconds),
    ));
    let closed_json = report(
        &format!("closed loop, {} connections", a.connections),
        &mut closed,
        el,
        serving_cpu() - cpu0,
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
    if let Some((url, _)) = &database {
        support::pg_stat_reset(url);
    }
    let cpu0 = serving_cpu();
    let (mut open, el) = rt.block_on(open_loop(&ports, source, a.rate, total, 64));
    let mut open_json = report(
        &format!("open loop at {} logins/s offered", a.rate),
        &mut open,
        el,
        serving_cpu() - cpu0,
    );
    if let Some((url, name)) = &database {
        open_json["statements"] = support::pg_stat_report(url, name, open.ok);
    }
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
    for p in &pids {
        let (rss, hwm) = rss_kib(*p);
        println!("server {p} RSS after the runs {rss} KiB, peak (VmHWM) {hwm} KiB");
    }

    // Phase 3: soak, signed as sent.
    let mut soak_json = serde_json::Value::Null;
    let mut soak_json_extra = None;
    if a.soak_seconds > 0 {
        if let Some((url, _)) = &database {
            support::pg_stat_reset(url);
        }
        let total = a.rate * a.soak_seconds;
        let (k, s) = (key.clone(), sp.clone());
        let source: Arc<dyn Fn(u64) -> String + Send + Sync> =
            Arc::new(move |i| signed_form(&k, &s, 10_000_000 + i));
        let rss_before = rss_kib(pid).0;
        let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
        {
            let samples = samples.clone();
            let pids_all = pids.clone();
            let secs = a.soak_seconds;
            std::thread::spawn(move || {
                for m in 0..=secs / 60 {
                    let each: Vec<u64> = pids_all.iter().map(|p| rss_kib(*p).0).collect();
                    samples.lock().expect("lock").push((m, each));
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
        let cpu0 = serving_cpu();
        let (mut soak, el) = rt.block_on(open_loop(&ports, source, a.rate, total, 64));
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
            serving_cpu() - cpu0,
        );
        if let Some((url, name)) = &database {
            soak_json_extra = Some(support::pg_soak_report(url, name, soak.ok, a.instances));
        }
        let per_minute = samples.lock().expect("lock").clone();
        println!(
            "soak RSS: before {rss_before} KiB, after {} KiB, peak {} KiB; per minute {:?}",
            after.0, after.1, per_minute
        );
        let p99s = p99_by_minute(&soak, a.rate);
        println!("soak p99 by minute (ms): {p99s:?}");
        soak_json = serde_json::json!({"postgres": soak_json_extra, "result": r, "admin_polls": soak_polls, "rss_before_kib": rss_before, "rss_after_kib": after.0, "rss_peak_kib": after.1, "rss_per_minute_kib": per_minute, "p99_ms_by_minute": p99s});
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
        "instances": ports.len(),
        "engine": if database.is_some() { "postgresql" } else { "sqlite" },
        "database_bytes": std::fs::metadata(data.join("ssogate.db")).map(|m| m.len()).unwrap_or(0),
    });
    println!("{json}");
    drop(servers);
    if let Some((url, name)) = database {
        support::drop_database(&url, &name);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
