//! What the load examples share: throw-away IdP keys, the server process (start, RSS, CPU time),
//! the admin CLI, percentiles.
#![allow(dead_code)]

pub mod acs;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use openssl::asn1::Asn1Time;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::{X509, X509NameBuilder};

pub fn keypair(kind: &str) -> (PKey<Private>, X509) {
    let key = match kind {
        "ec" => PKey::from_ec_key(
            EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256"))
                .expect("ec key"),
        )
        .expect("pkey"),
        _ => PKey::from_rsa(Rsa::generate(2048).expect("rsa key")).expect("pkey"),
    };
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", "load-test IdP")
        .expect("cn");
    let name = name.build();
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("v3");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(&name).expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&Asn1Time::days_from_now(0).expect("t"))
        .expect("nb");
    b.set_not_after(&Asn1Time::days_from_now(30).expect("t"))
        .expect("na");
    b.sign(&key, MessageDigest::sha256()).expect("sign");
    (key, b.build())
}

pub fn rss_kib(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The process IDs of every running process named `name` (from /proc: e.g. PostgreSQL's
/// server processes, whose CPU counts with ssogate's).
pub fn pids_named(name: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .collect()
}

/// CPU seconds (user + system) the process has used so far, from /proc/PID/stat.
pub fn cpu_secs(pid: u32) -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let hz = *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    });
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) in parentheses.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / hz
}

pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

pub fn cli(bin: &Path, data: &Path, args: &[&str]) {
    let o = Command::new(bin)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("ssogate runs");
    assert!(
        o.status.success(),
        "ssogate {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

pub struct Server(pub Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The release binary next to this example (or `SSOGATE_BIN`).
pub fn ssogate_bin() -> PathBuf {
    let bin = std::env::var_os("SSOGATE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("exe");
            exe.parent()
                .and_then(|p| p.parent())
                .expect("target dir")
                .join("ssogate")
        });
    assert!(
        bin.exists(),
        "{} missing: cargo build --release first (or set SSOGATE_BIN)",
        bin.display()
    );
    bin
}

/// A free port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// `ssogate serve` on `port` with `data`, extra environment `env`; waits until it listens.
pub fn serve(bin: &Path, data: &Path, port: u16, env: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new(bin);
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(data)
    .env(
        "SSOGATE_LOG",
        std::env::var("SSOGATE_LOG").unwrap_or_else(|_| "warn".into()),
    )
    .stdout(Stdio::null())
    .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let server = Server(cmd.spawn().expect("serve"));
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

/// One HTTP/1.1 request on a new connection to `127.0.0.1:port` (`headers`: whole lines with
/// their CRLF); the status, the time it took in microseconds, and the whole answer.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, u64, String) {
    let t = Instant::now();
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    let micros = t.elapsed().as_micros() as u64;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, micros, text)
}

/// `n` random bytes as hex (a secrets key file's content).
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    openssl::rand::rand_bytes(&mut b).expect("random bytes");
    hex::encode(b)
}

fn psql(url: &str, sql: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL answers at --database-url");
        tokio::spawn(conn);
        client.batch_execute(sql).await.expect(sql);
    });
}

/// Makes database `name` on the server of `url` (dropping an old one); its URL.
pub fn fresh_database(url: &str, name: &str) -> String {
    psql(url, &format!("DROP DATABASE IF EXISTS {name}"));
    psql(url, &format!("CREATE DATABASE {name}"));
    let mut u = url::Url::parse(url).expect("--database-url is a URL");
    u.set_path(&format!("/{name}"));
    u.to_string()
}

pub fn drop_database(url: &str, name: &str) {
    psql(url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
}

fn pg_query(
    url: &str,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Option<Vec<tokio_postgres::Row>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .ok()?;
        tokio::spawn(conn);
        client.query(sql, params).await.ok()
    })
}

/// Empties pg_stat_statements (when the server loads it: `shared_preload_libraries`).
pub fn pg_stat_reset(url: &str) {
    let _ = pg_query(
        url,
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
        &[],
    );
    let _ = pg_query(url, "SELECT pg_stat_statements_reset()", &[]);
}

/// The statements database `name` ran since the reset, by calls, and those per login: the
/// configuration tables must not appear among them.
pub fn pg_stat_report(url: &str, name: &str, logins: u64) -> serde_json::Value {
    let Some(rows) = pg_query(
        url,
        "SELECT s.calls, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 110) FROM pg_stat_statements s \
         JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1 ORDER BY s.calls DESC LIMIT 12",
        &[&name],
    ) else {
        println!(
            "pg_stat_statements is not loaded (shared_preload_libraries): no statement counts"
        );
        return serde_json::Value::Null;
    };
    let config_tables = [
        "service_providers",
        "identity_providers",
        "tenants",
        "users",
        "settings",
        "circuit_settings",
    ];
    let mut out = Vec::new();
    let mut config_calls = 0i64;
    println!("statements during the run ({logins} logins), by calls:");
    for r in rows {
        let calls: i64 = r.get(0);
        let q: String = r.get(1);
        let is_config = config_tables
            .iter()
            .any(|t| q.contains(&format!("FROM {t} ")) || q.ends_with(&format!("FROM {t}")));
        if is_config {
            config_calls += calls;
        }
        println!(
            "  {calls:>9} ({:.3}/login) {q}",
            calls as f64 / logins.max(1) as f64
        );
        out.push(serde_json::json!({"calls": calls, "query": q}));
    }
    println!(
        "configuration reads among them: {config_calls} ({:.5} per login)",
        config_calls as f64 / logins.max(1) as f64
    );
    serde_json::json!({"top": out, "configuration_reads": config_calls})
}

/// After a soak: connections to database `name`, and the size of the state tables.
pub fn pg_soak_report(url: &str, name: &str, logins: u64, instances: usize) -> serde_json::Value {
    let stats = pg_stat_report(url, name, logins);
    let conns: i64 = pg_query(
        url,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
        &[&name],
    )
    .and_then(|r| r.first().map(|r| r.get(0)))
    .unwrap_or(-1);
    let mut db = url::Url::parse(url).expect("url");
    db.set_path(&format!("/{name}"));
    let sizes: Vec<(String, i64, i64)> = pg_query(
        db.as_str(),
        "SELECT relname::text, n_live_tup, pg_total_relation_size(relid) FROM pg_stat_user_tables \
         WHERE relname IN ('sessions', 'replay_cache', 'pending_logouts', 'signin_failures', 'shared_counters') ORDER BY relname",
        &[],
    )
    .unwrap_or_default()
    .into_iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect();
    println!(
        "PostgreSQL connections to the database at the end: {conns} (pool 16 x {instances} instances)"
    );
    for (t, rows, bytes) in &sizes {
        println!("  table {t}: {rows} live rows, {} KiB", bytes / 1024);
    }
    serde_json::json!({"statements": stats, "connections": conns, "tables": sizes})
}
