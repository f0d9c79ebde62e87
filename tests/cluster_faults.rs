//! Several instances on one PostgreSQL of the test's own, and what happens when things fail:
//! PostgreSQL stopped (`pg_ctl stop -m immediate`) and hung (SIGSTOP) under load; two
//! administrators saving one tenant on two instances; three instances started at the same moment
//! on an empty database, and a fourth whose configuration disagrees with the stored settings;
//! `/metrics` counting every login, and `/readyz` following PostgreSQL.
//!
//! Each asserts what the agent sees (503 with a reference, never a hang or a 500), that nothing
//! committed is lost (sessions answered before the fault answer after it), and what the log says
//! (one line per outage). Needs PostgreSQL's server binaries (`./run-tests` installs them); missing,
//! the tests fail naming them, unless `SSOGATE_SKIP=engines`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::cluster::{Instance, Shared};
use common::engines::PrivatePostgres;
use common::http::request;

const PASSWORD: &str = "correct horse battery";

/// One test of this file at a time: each runs a PostgreSQL and several instances of its own, and
/// their timings (503 within 2 s, back within 5 s) are about ssogate, not about 2 cores shared by
/// eight of them starting at once.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Signs `user` in with its password on `port`; the session cookie.
fn sign_in(port: u16, user: &str) -> String {
    let form = format!("username={user}&password={}", PASSWORD.replace(' ', "+"));
    let a = request(port, "POST", "/login", None, Some(&form)).expect("login answers");
    assert_eq!(a.status, 303, "password login of {user}: {}", a.body);
    a.cookie("ssogate_session").expect("a session cookie")
}

fn auth_check(port: u16, cookie: &str) -> (u16, Duration) {
    let t = Instant::now();
    let status = request(port, "GET", "/auth/check", Some(cookie), None)
        .map(|a| a.status)
        .unwrap_or(0);
    (status, t.elapsed())
}

/// One agent per instance and tenant `default` with passwords, SSO off.
fn setup(shared: &Shared, users: &[&str]) {
    for u in users {
        shared.cli_stdin(
            &["user", "add", u, "--password-stdin"],
            &format!("{PASSWORD}\n"),
        );
    }
}

/// What a load thread saw: (when the request was sent, since the test's start; instance;
/// status; latency).
type Seen = Vec<(Duration, usize, u16, Duration)>;

/// `/auth/check` with `cookie` on each instance in turn, until `stop`.
fn load(ports: Vec<u16>, cookie: String, stop: Arc<AtomicBool>, t0: Instant) -> Seen {
    let mut seen = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        let n = i % ports.len();
        let sent = t0.elapsed();
        let (s, took) = auth_check(ports[n], &cookie);
        seen.push((sent, n, s, took));
        i += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    seen
}

/// Every request sent between `from` and `to` (the fault's start and end) was answered 503
/// within 2 s, on each instance; how many there were per instance.
fn refused_within_2s(seen: &Seen, from: Duration, to: Duration, instances: usize) -> Vec<usize> {
    // The fault is in place once the signal or `pg_ctl` returned: requests sent from then on.
    let during: Vec<_> = seen
        .iter()
        .filter(|(sent, ..)| *sent >= from && *sent + Duration::from_secs(2) < to)
        .collect();
    for (sent, n, status, took) in &during {
        assert!(
            *status == 503 && *took <= Duration::from_secs(2),
            "instance {n}: a request sent {:?} into the fault got {status} after {took:?}",
            *sent - from
        );
    }
    (0..instances)
        .map(|i| during.iter().filter(|(_, n, ..)| *n == i).count())
        .collect()
}

/// How long after `from` each instance first answered 200.
fn back_after(seen: &Seen, from: Duration, instances: usize) -> Vec<Option<Duration>> {
    (0..instances)
        .map(|n| {
            seen.iter()
                .find(|(sent, i, s, _)| *sent >= from && *i == n && *s == 200)
                .map(|(sent, _, _, took)| *sent + *took - from)
        })
        .collect()
}

fn count(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}

#[test]
fn postgres_stopped_then_hung_gives_503_and_every_session_survives() {
    let _serial = serial();
    let dir = common::scratch_dir("cluster_faults_pg");
    let Some(pg) = PrivatePostgres::start(&dir) else {
        return;
    };
    let shared = Shared::new(&dir, pg.url(), "");
    let users = ["agent1", "agent2", "agent3", "agent4"];
    setup(&shared, &users);
    let instances: Vec<Instance> = (1..=2).map(|n| shared.instance(n)).collect();
    let ports: Vec<u16> = instances.iter().map(|i| i.port).collect();
    // Sessions made before any fault, on both instances, each answering on the other.
    let cookies: Vec<String> = users
        .iter()
        .enumerate()
        .map(|(i, u)| sign_in(ports[i % 2], u))
        .collect();
    for c in &cookies {
        for p in &ports {
            assert_eq!(auth_check(*p, c).0, 200);
        }
    }

    // 1. Stopped (immediate: no clean shutdown) under load, then started again.
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let loader = {
        let (p, c, s) = (ports.clone(), cookies[0].clone(), stop.clone());
        std::thread::spawn(move || load(p, c, s, t0))
    };
    std::thread::sleep(Duration::from_millis(500));
    pg.stop_immediate();
    let stopped_at = t0.elapsed();
    std::thread::sleep(Duration::from_millis(2500));
    for p in &ports {
        let r = request(*p, "GET", "/readyz", None, None).expect("readyz answers");
        assert_eq!(r.status, 503, "/readyz while PostgreSQL is stopped");
        let page = request(*p, "GET", "/auth/check", Some(&cookies[1]), None).expect("answers");
        assert_eq!(page.status, 503);
        let login = request(
            *p,
            "POST",
            "/login",
            None,
            Some(&format!(
                "username=agent1&password={}",
                PASSWORD.replace(' ', "+")
            )),
        )
        .expect("login answers");
        assert_eq!(login.status, 503, "a login while PostgreSQL is down");
        assert!(
            login.body.contains("Reference: <code>SG-"),
            "the 503 page gives a reference: {}",
            login.body
        );
    }
    let restarted_at = t0.elapsed();
    pg.start_again();
    std::thread::sleep(Duration::from_secs(6));
    stop.store(true, Ordering::SeqCst);
    let seen = loader.join().expect("load thread");
    let statuses: std::collections::BTreeSet<u16> = seen.iter().map(|s| s.2).collect();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "only 200 and 503 (no 500, no dropped connection): {statuses:?}"
    );
    let slowest = seen.iter().map(|s| s.3).max().unwrap_or_default();
    assert!(
        slowest <= Duration::from_secs(2),
        "no request hung: {slowest:?}"
    );
    let refused = refused_within_2s(&seen, stopped_at, restarted_at, 2);
    assert!(refused.iter().all(|n| *n > 0), "{refused:?}");
    for (n, d) in back_after(&seen, restarted_at, 2).iter().enumerate() {
        let d = d.unwrap_or_else(|| panic!("instance {n}: never back after the restart"));
        assert!(
            d <= Duration::from_secs(5),
            "instance {n}: back {d:?} after pg_ctl start returned"
        );
        println!("stopped: instance {n} answered 200 again {d:?} after PostgreSQL was back");
    }
    for c in &cookies {
        for p in &ports {
            assert_eq!(auth_check(*p, c).0, 200, "a session from before the stop");
        }
    }
    for (n, i) in instances.iter().enumerate() {
        let log = i.server.output();
        assert_eq!(
            count(&log, "the store does not answer"),
            1,
            "instance {n}: one line for the outage:\n{}",
            i.server.tail(30)
        );
        assert_eq!(count(&log, "the store answers again"), 1, "instance {n}");
    }

    // 2. Hung for 10 s (every PostgreSQL process stopped: connections are accepted, nothing
    // answers), then continued.
    let rss_before: Vec<u64> = instances.iter().map(|i| i.server.rss_kib()).collect();
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let loaders: Vec<_> = (0..4)
        .map(|k| {
            let (p, c, s) = (ports.clone(), cookies[k].clone(), stop.clone());
            std::thread::spawn(move || load(p, c, s, t0))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    pg.signal_all("STOP");
    let hung_at = t0.elapsed();
    std::thread::sleep(Duration::from_secs(10));
    let rss_hung: Vec<u64> = instances.iter().map(|i| i.server.rss_kib()).collect();
    let continued_at = t0.elapsed();
    pg.signal_all("CONT");
    std::thread::sleep(Duration::from_secs(6));
    stop.store(true, Ordering::SeqCst);
    let seen: Seen = loaders
        .into_iter()
        .flat_map(|l| l.join().expect("load thread"))
        .collect();
    let statuses: std::collections::BTreeSet<u16> = seen.iter().map(|s| s.2).collect();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "only 200 and 503 while hung: {statuses:?}"
    );
    let slowest = seen.iter().map(|s| s.3).max().unwrap_or_default();
    assert!(
        slowest <= Duration::from_millis(2500),
        "each request answered within the statement timeout and pool wait: {slowest:?}"
    );
    let refused = refused_within_2s(&seen, hung_at, continued_at, 2);
    assert!(refused.iter().all(|n| *n > 0), "{refused:?}");
    for (n, d) in back_after(&seen, continued_at, 2).iter().enumerate() {
        let d = d.unwrap_or_else(|| panic!("instance {n}: never back after SIGCONT"));
        assert!(
            d <= Duration::from_secs(5),
            "instance {n}: back after {d:?}"
        );
        println!("hung: instance {n} answered 200 again {d:?} after SIGCONT");
    }
    for (n, (b, h)) in rss_before.iter().zip(&rss_hung).enumerate() {
        println!("hung: instance {n} RSS {b} KiB before, {h} KiB after 10 s hung");
        assert!(
            *h < b + 64 * 1024,
            "instance {n}: RSS grew from {b} to {h} KiB while PostgreSQL hung"
        );
    }
    for c in &cookies {
        for p in &ports {
            assert_eq!(auth_check(*p, c).0, 200, "a session from before the hang");
        }
    }
}

/// Two administrators read one tenant on two instances and both save: the second is refused
/// with 409 and changes nothing.
#[test]
fn two_admins_saving_one_tenant_on_two_instances_one_gets_409() {
    let _serial = serial();
    let dir = common::scratch_dir("cluster_faults_409");
    let Some(pg) = PrivatePostgres::start(&dir) else {
        return;
    };
    let shared = Shared::new(&dir, pg.url(), "");
    let token = shared.api_token("ops");
    let a = shared.instance(1);
    let b = shared.instance(2);
    let bearer = format!("Bearer {token}");
    let api = |port: u16, method: &str, body: Option<&str>, version: Option<i64>| {
        let v = version.map(|v| v.to_string());
        let mut headers = vec![("Authorization", bearer.as_str())];
        if let Some(v) = &v {
            headers.push(("If-Match", v.as_str()));
        }
        let r = common::http::request_json(port, method, "/api/v1/tenants/default", body, &headers)
            .expect("API answers");
        let json: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
        (r.status, json)
    };
    let (s, read_a) = api(a.port, "GET", None, None);
    assert_eq!(s, 200, "{read_a}");
    let (_, read_b) = api(b.port, "GET", None, None);
    let version = read_a["version"].as_i64().expect("version");
    assert_eq!(read_b["version"].as_i64(), Some(version));
    let (s1, j1) = api(
        a.port,
        "PUT",
        Some(r#"{"display_name": "Saved on A"}"#),
        Some(version),
    );
    let (s2, j2) = api(
        b.port,
        "PUT",
        Some(r#"{"display_name": "Saved on B"}"#),
        Some(version),
    );
    assert_eq!((s1, s2), (200, 409), "{j1} {j2}");
    let (_, now_b) = api(b.port, "GET", None, None);
    assert_eq!(now_b["display_name"], "Saved on A", "{now_b}");
    assert_eq!(now_b["version"].as_i64(), Some(version + 1));
}

/// Three instances started at the same moment on an empty database: migrations once, one
/// administrator with one printed password, one SP for `public_url`. A fourth whose configuration
/// says `multi_tenant = true` starts, logs the difference, and serves the stored setting.
#[test]
fn instances_started_together_bootstrap_once_and_stored_settings_win() {
    let _serial = serial();
    let dir = common::scratch_dir("cluster_faults_start");
    let Some(pg) = PrivatePostgres::start(&dir) else {
        return;
    };
    let shared = Arc::new(Shared::new(&dir, pg.url(), "multi_tenant = false"));
    let starters: Vec<_> = (1..=3)
        .map(|n| {
            let s = shared.clone();
            std::thread::spawn(move || s.instance(n))
        })
        .collect();
    let instances: Vec<Instance> = starters
        .into_iter()
        .map(|t| t.join().expect("instance starts"))
        .collect();
    // Each printed what it made before listening.
    let outputs: Vec<String> = instances.iter().map(|i| i.server.output()).collect();
    let all = outputs.join("\n");
    assert_eq!(
        count(&all, "one-time password"),
        1,
        "one administrator, one password:\n{all}"
    );
    assert_eq!(count(&all, "Created service provider"), 1, "{all}");
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .expect("migrations")
        .count();
    assert_eq!(
        count(&all, "applied database migration"),
        files,
        "each migration applied by one instance:\n{all}"
    );
    let q = |sql: &str| -> i64 {
        let out = std::process::Command::new("psql")
            .args([pg.url().as_str(), "-Atc", sql])
            .output()
            .expect("psql");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(-1)
    };
    assert_eq!(q("SELECT count(*) FROM schema_migrations"), files as i64);
    assert_eq!(q("SELECT count(*) FROM service_providers"), 1);
    assert_eq!(q("SELECT count(*) FROM users"), 1);
    let sp = std::process::Command::new("psql")
        .args([
            pg.url().as_str(),
            "-Atc",
            "SELECT host_url FROM service_providers",
        ])
        .output()
        .expect("psql");
    assert_eq!(
        String::from_utf8_lossy(&sp.stdout).trim(),
        shared.public_url
    );
    for i in &instances {
        assert_eq!(
            request(i.port, "GET", "/readyz", None, None)
                .map(|r| r.status)
                .ok(),
            Some(200)
        );
    }

    // The fourth disagrees about multi_tenant.
    let other = dir.join("other.toml");
    let text = std::fs::read_to_string(&shared.config)
        .expect("config")
        .replace("multi_tenant = false", "multi_tenant = true");
    std::fs::write(&other, text).expect("config");
    let fourth = common::process::Server::start_with(
        &dir.join("instance4"),
        common::process::free_port(),
        &dir.join("instance4.log"),
        Some(&other),
    );
    std::thread::sleep(Duration::from_millis(300));
    let log = fourth.output();
    assert!(
        log.contains("the stored setting applies") && log.contains("setting=\"multi_tenant\""),
        "the difference is logged:\n{log}"
    );
    assert!(
        log.contains("multi_tenant=false"),
        "the stored setting is served:\n{log}"
    );
    assert_eq!(count(&log, "one-time password"), 0);
}

/// `/metrics` of each instance counts the logins it served: after N logins spread over two
/// instances the counters add up to N exactly; the pool, statement and configuration-cache
/// series are there.
#[test]
fn metrics_count_every_login_across_instances() {
    let _serial = serial();
    let dir = common::scratch_dir("cluster_faults_metrics");
    let Some(pg) = PrivatePostgres::start(&dir) else {
        return;
    };
    let shared = Shared::new(&dir, pg.url(), "");
    setup(&shared, &["agent1", "agent2"]);
    let token = shared.api_token("prometheus");
    let instances: Vec<Instance> = (1..=2).map(|n| shared.instance(n)).collect();
    const N: usize = 9;
    for i in 0..N {
        sign_in(
            instances[i % 2].port,
            if i % 3 == 0 { "agent1" } else { "agent2" },
        );
    }
    // One refused (a wrong password) is a failure, not a success.
    let bad = request(
        instances[0].port,
        "POST",
        "/login",
        None,
        Some("username=agent1&password=wrong+password"),
    )
    .expect("answers");
    assert_ne!(bad.status, 303);
    let bearer = format!("Bearer {token}");
    let mut successes = 0;
    let mut failures = 0;
    for i in &instances {
        let m = common::http::request_json(
            i.port,
            "GET",
            "/metrics",
            None,
            &[("Authorization", &bearer)],
        )
        .expect("metrics answer");
        assert_eq!(m.status, 200, "{}", m.body);
        for line in m.body.lines() {
            let value = |l: &str| {
                l.rsplit(' ')
                    .next()
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0)
            };
            if line.starts_with(
                "ssogate_logins_total{tenant=\"default\",method=\"password\",outcome=\"success\"}",
            ) {
                successes += value(line);
            }
            if line.starts_with(
                "ssogate_logins_total{tenant=\"default\",method=\"password\",outcome=\"failure\"}",
            ) {
                failures += value(line);
            }
        }
        for series in [
            "ssogate_store_pool_connections ",
            "ssogate_store_pool_waiting ",
            "ssogate_store_statements_total ",
            "ssogate_store_statement_seconds_total ",
            "ssogate_config_reloads_total ",
            "ssogate_sessions ",
        ] {
            assert!(m.body.contains(series), "{series} missing:\n{}", m.body);
        }
    }
    assert_eq!((successes, failures), (N, 1));
}

/// The per-client limits hold for the cluster: refusals from one address spread over two
/// instances make `failure_records_per_minute` records in all (not that many per instance), and
/// wrong passwords counted on one instance delay the next attempt on the other.
#[test]
fn per_client_limits_hold_across_instances() {
    let _serial = serial();
    let dir = common::scratch_dir("cluster_faults_limits");
    let Some(pg) = PrivatePostgres::start(&dir) else {
        return;
    };
    let shared = Shared::new(
        &dir,
        pg.url(),
        "failure_records_per_minute = 3\npassword_free_attempts = 2\npassword_max_delay_secs = 60",
    );
    setup(&shared, &["agent1"]);
    let instances: Vec<Instance> = (1..=2).map(|n| shared.instance(n)).collect();
    let wrong = |port: u16, user: &str| {
        request(
            port,
            "POST",
            "/login",
            None,
            Some(&format!("username={user}&password=wrong+password")),
        )
        .expect("answers")
        .status
    };
    // Ten refusals of unknown users (no throttle applies: each names another user), alternating.
    for i in 0..10 {
        let s = wrong(instances[i % 2].port, &format!("nobody{i}"));
        assert_eq!(s, 401, "refusal {i}");
    }
    let out = shared.cli(&["failures", "--limit", "100", "--json"]);
    let records: Vec<serde_json::Value> = out
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let repeats: u64 = records
        .iter()
        .map(|r| r["repeats"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        records.len(),
        3,
        "three records for the cluster, the rest folded into them: {out}"
    );
    assert!(repeats <= 7, "{out}");

    // Wrong passwords for agent1: two free, the third (on A) imposes 1 s, the fourth on B waits.
    assert_eq!(wrong(instances[0].port, "agent1"), 401);
    assert_eq!(wrong(instances[1].port, "agent1"), 401);
    assert_eq!(wrong(instances[0].port, "agent1"), 401);
    assert_eq!(
        wrong(instances[1].port, "agent1"),
        429,
        "the failures counted on A delay the attempt on B"
    );
}

/// The event stream of one instance shows the sign-ins another instance served (relayed by
/// `NOTIFY` while someone in the cluster watches).
#[test]
fn the_event_stream_shows_every_instance() {
    let _serial = serial();
    use std::io::{Read as _, Write as _};
    let dir = common::scratch_dir("cluster_faults_events");
    let Some(pg) = PrivatePostgres::start(&dir) else {
        return;
    };
    let shared = Shared::new(&dir, pg.url(), "");
    setup(&shared, &["agent1"]);
    let token = shared.api_token("watcher");
    let a = shared.instance(1);
    let b = shared.instance(2);
    // A stream open on B.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", b.port)).expect("connect");
    write!(
        stream,
        "GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n",
        b.port
    )
    .expect("write");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let started = Instant::now();
    let mut seen = String::new();
    let mut logins = 0;
    // Sign-ins on A until B's stream shows one (the relay starts once B's watcher is known).
    while started.elapsed() < Duration::from_secs(20) && !seen.contains("\"agent1\"") {
        sign_in(a.port, "agent1");
        logins += 1;
        let mut buf = [0u8; 4096];
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(_) => {}
            }
        }
    }
    assert!(
        seen.contains("sign_in") && seen.contains("\"agent1\""),
        "B's stream shows A's sign-in after {logins} logins in {:?}:\n{seen}",
        started.elapsed()
    );
    println!(
        "B's stream showed A's sign-in {:?} after it opened ({logins} logins)",
        started.elapsed()
    );
}

/// A Redis of the test's own: `redis-server` on a free port, keeping nothing; killed when dropped.
struct PrivateRedis {
    child: std::process::Child,
    port: u16,
}

impl PrivateRedis {
    fn start(port: u16) -> PrivateRedis {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts (apt-get install redis-server)");
        assert!(
            common::process::wait_for_port(port, Duration::from_secs(10)),
            "redis-server did not listen"
        );
        PrivateRedis { child, port }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An IdP-initiated response for `user` to `sp` as a form, signed by the test IdP, valid now.
fn assertion_for(user: &str, id: &str, sp: &str) -> String {
    common::http::saml_form(&common::generate::signed_now(user, id, sp))
}

/// Redis (sessions) stopped: 503 with a reference, never a hang; started again empty: the
/// sessions are gone (agents sign in again, as documented), the replay cache in PostgreSQL still
/// refuses an assertion used before, and new logins work without restarting ssogate.
#[test]
fn redis_stopped_and_emptied_signs_agents_out_and_still_refuses_replays() {
    let _serial = serial();
    let dir = common::scratch_dir("cluster_faults_redis");
    let Some(pg) = PrivatePostgres::start(&dir) else {
        return;
    };
    common::engines::redis_url().expect("engines");
    let redis_port = common::process::free_port();
    let redis = PrivateRedis::start(redis_port);
    let shared = Shared::new(
        &dir,
        pg.url(),
        &format!("redis_url = \"redis://127.0.0.1:{}/\"", redis.port),
    );
    let cert = dir.join("idp.crt");
    std::fs::write(&cert, &common::generate::idp().cert_pem).expect("cert");
    shared.cli(&["sp", "add", "--host-url", &shared.public_url]);
    shared.cli(&[
        "idp",
        "add",
        "idp",
        "--entity-id",
        common::generate::IDP,
        "--sso-url",
        "https://idp.example.test/sso",
        "--username-claim",
        common::generate::USER_ATTR,
        "--cert",
        cert.to_str().expect("utf-8"),
    ]);
    shared.cli(&[
        "tenant",
        "set",
        "default",
        "--sso",
        "on",
        "--idp",
        "idp",
        "--idp-initiated",
        "on",
        "--login-domain",
        "example",
    ]);
    shared.cli(&["user", "add", "agent0"]);
    let a = shared.instance(1);
    let b = shared.instance(2);
    let acs = |port: u16, form: &str| {
        request(port, "POST", "/saml/acs", None, Some(form)).expect("ACS answers")
    };
    let used = assertion_for("agent0", "_redis-used", &shared.public_url);
    let first = acs(a.port, &used);
    assert_eq!(first.status, 303, "{}", first.body);
    let cookie = first.cookie("ssogate_session").expect("session");
    assert_eq!(
        auth_check(b.port, &cookie).0,
        200,
        "the session answers on B"
    );
    let keys = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis_port.to_string(),
            "--scan",
            "--pattern",
            "ssogate:s:*",
        ])
        .output()
        .expect("redis-cli");
    assert!(
        String::from_utf8_lossy(&keys.stdout).lines().count() >= 1,
        "the session is in Redis"
    );

    // Stopped.
    drop(redis);
    for p in [a.port, b.port] {
        let (s, took) = auth_check(p, &cookie);
        assert_eq!(s, 503, "Redis down: 503");
        assert!(took <= Duration::from_secs(2), "answered in {took:?}");
        let login = acs(
            p,
            &assertion_for("agent0", &format!("_redis-down-{p}"), &shared.public_url),
        );
        assert_eq!(login.status, 503, "logins are refused while Redis is down");
        assert!(
            login.body.contains("Reference: <code>SG-"),
            "{}",
            login.body
        );
        let ready = request(p, "GET", "/readyz", None, None).expect("answers");
        assert_eq!(ready.status, 503);
    }

    // Started again, empty.
    let _redis = PrivateRedis::start(redis_port);
    let t = Instant::now();
    let mut back = None;
    while t.elapsed() < Duration::from_secs(10) {
        let s = auth_check(a.port, &cookie).0;
        if s != 503 {
            back = Some((s, t.elapsed()));
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, after) = back.expect("ssogate answers again once Redis is back");
    println!("Redis back: auth/check answered {status} after {after:?}");
    assert!(after <= Duration::from_secs(5), "back after {after:?}");
    assert_eq!(
        status, 401,
        "the session was in the Redis that restarted: signed out"
    );
    let replay = acs(b.port, &used);
    assert_eq!(
        replay.status, 403,
        "the assertion used before Redis restarted is still refused (replay cache in PostgreSQL): {}",
        replay.body
    );
    let fresh = acs(
        b.port,
        &assertion_for("agent0", "_redis-after", &shared.public_url),
    );
    assert_eq!(fresh.status, 303, "a new login works: {}", fresh.body);
    for i in [&a, &b] {
        assert_eq!(
            count(&i.server.output(), "the store does not answer"),
            1,
            "one line for the outage: {}",
            i.server.tail(20)
        );
    }
}

/// `ssogate serve` with `config`: it must stop by itself (within 20 s); its exit status and output.
fn serve_refused(dir: &std::path::Path, config: &std::path::Path) -> (bool, String) {
    let mut child = std::process::Command::new(common::process::ssogate())
        .args(["serve", "--listen"])
        .arg(format!("127.0.0.1:{}", common::process::free_port()))
        .arg("--data-dir")
        .arg(dir.join("refused-data"))
        .arg("--config")
        .arg(config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ssogate runs");
    let t = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if t.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("ssogate serve did not stop by itself");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// What stops `serve` at start, each saying why: another secrets key than the database's, a
/// database_url or redis_url that does not work, a shared database without a secrets key. The
/// password in the URL is never printed.
#[test]
fn bad_shared_settings_stop_the_start_saying_why() {
    let _serial = serial();
    let dir = common::scratch_dir("cluster_faults_refused");
    let Some(pg) = PrivatePostgres::start(&dir) else {
        return;
    };
    let shared = Shared::new(&dir, pg.url(), "");
    let first = shared.instance(1);
    drop(first);
    let base = std::fs::read_to_string(&shared.config).expect("config");
    let variant = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("config");
        p
    };
    // Another key.
    let other_key = dir.join("other.key");
    std::fs::write(&other_key, "ab".repeat(32)).expect("key");
    let key_line = base
        .lines()
        .find(|l| l.starts_with("secrets_key_file"))
        .expect("key line")
        .to_string();
    let cases = [
        (
            "other-key.toml",
            base.replace(&key_line, &format!("secrets_key_file = {other_key:?}")),
            "secrets key",
        ),
        (
            "bad-db.toml",
            base.replace(
                &pg.url(),
                "postgres://ssogate:hunter2-secret@127.0.0.1:1/nowhere",
            ),
            "database_url",
        ),
        (
            "bad-redis.toml",
            format!("{base}\nredis_url = \"redis://:hunter2-secret@127.0.0.1:1/\"\n"),
            "redis_url",
        ),
        (
            "no-key.toml",
            base.replace(&key_line, ""),
            "secrets_key_file",
        ),
    ];
    for (name, text, says) in cases {
        let (ok, out) = serve_refused(&dir, &variant(name, text));
        assert!(!ok, "{name}: serve must not start:\n{out}");
        assert!(
            out.contains(says),
            "{name}: the reason names {says}:\n{out}"
        );
        assert!(
            !out.contains("hunter2-secret"),
            "{name}: a password printed:\n{out}"
        );
    }
}
