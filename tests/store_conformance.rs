//! One suite of the store's rules, generic over the `Store` trait, run on every engine: SQLite in
//! memory and in a file, and PostgreSQL (a fresh database on the server `./run-tests` starts;
//! the last test here checks that it and Redis answer). Pending requests
//! are taken once, also by 50 tasks at once; the replay cache records a key exactly once under 50
//! concurrent tasks, refuses a live key and forgets an expired one; sessions are found by IdP,
//! NameID and SessionIndex and do not load once expired; purging goes in batches and keeps what
//! is live; the failure log keeps its newest records; uniqueness conflicts name the field;
//! Circuit settings keep versions.

mod common;

use std::sync::Arc;

use ssogate::domain::{IdpId, TenantId, UserId};
use ssogate::saml::UnixTime;
use ssogate::store::sqlite::{Durability, SqliteStore};
use ssogate::store::{
    AgentSession, PendingLogout, SamlSessionRef, SessionRow, SignInFailure, SignInMethod, Store,
    StoreError,
};

fn t(secs: i64) -> UnixTime {
    UnixTime::from_millis(1_790_000_000_000 + secs * 1000)
}

fn pending(id: &str, expires: UnixTime) -> PendingLogout {
    PendingLogout {
        id: id.into(),
        idp_id: IdpId(1),
        expires_at: expires,
    }
}

fn failure(reference: &str) -> SignInFailure {
    SignInFailure {
        at: t(1),
        reference: reference.into(),
        endpoint: "acs".into(),
        tenant: None,
        idp: None,
        reason: "unknown_idp".into(),
        detail: "d".into(),
        client: Some("192.0.2.1".into()),
        repeats: 0,
        username: Some("kate".into()),
    }
}

fn session(id: &str, name_id: &str, index: &str, expires: UnixTime) -> SessionRow {
    let agent = AgentSession {
        tenant_id: TenantId(1),
        tenant: "default".into(),
        user_id: UserId(1),
        username: "jdoe".into(),
        display_name: "Jane".into(),
        method: SignInMethod::Saml,
        signed_in_at: t(0),
        expires_at: expires,
        last_active: None,
        saml: Some(SamlSessionRef {
            idp_id: IdpId(7),
            name_id: name_id.into(),
            name_id_format: None,
            name_qualifier: None,
            sp_name_qualifier: None,
            session_index: Some(index.into()),
        }),
    };
    SessionRow {
        id: id.into(),
        data: b"{}".to_vec(),
        expires_at: expires,
        agent: Some(agent),
    }
}

async fn login_state_rules(s: &dyn Store) {
    // Pending logouts: consumed once; an expired one is gone.
    s.pending_logout_put(&pending("_a", t(600)))
        .await
        .expect("put");
    s.pending_logout_put(&pending("_b", t(5)))
        .await
        .expect("put");
    assert_eq!(
        s.pending_logout_take("_a", t(10)).await.expect("take"),
        Some(pending("_a", t(600)))
    );
    assert_eq!(
        s.pending_logout_take("_a", t(10)).await.expect("take"),
        None,
        "consumed once"
    );
    assert_eq!(
        s.pending_logout_take("_b", t(10)).await.expect("take"),
        None,
        "expired"
    );

    // The service's secret: the first candidate is kept, later ones are ignored.
    let first = s.server_secret("k", b"one").await.expect("secret");
    assert_eq!(first, b"one");
    assert_eq!(s.server_secret("k", b"two").await.expect("secret"), b"one");
    assert_eq!(
        s.server_secret("other", b"two").await.expect("secret"),
        b"two"
    );

    // Failure records: folded refusals counted on their record; the log trimmed to its cap.
    for i in 0..5 {
        s.failure_record(&failure(&format!("SG-{i}")))
            .await
            .expect("record");
    }
    s.failure_repeats("SG-4", 8).await.expect("repeats");
    let recent = s.failures_recent(10).await.expect("recent");
    assert_eq!(recent.len(), 5);
    assert_eq!(
        (recent[0].reference.as_str(), recent[0].repeats),
        ("SG-4", 8)
    );
    assert_eq!(recent[0].client.as_deref(), Some("192.0.2.1"));
    s.purge_expired(t(2), 100, 3).await.expect("purge");
    let kept: Vec<String> = s
        .failures_recent(10)
        .await
        .expect("recent")
        .into_iter()
        .map(|f| f.reference)
        .collect();
    assert_eq!(kept, ["SG-4", "SG-3", "SG-2"], "the newest 3 are kept");

    // Replay cache.
    assert!(
        s.replay_remember("idp\u{1f}_x", t(100), t(0))
            .await
            .expect("remember")
    );
    assert!(
        !s.replay_remember("idp\u{1f}_x", t(100), t(50))
            .await
            .expect("remember"),
        "live: a replay"
    );
    assert!(
        s.replay_remember("idp\u{1f}_x", t(300), t(100))
            .await
            .expect("remember"),
        "expired: forgotten"
    );
    assert!(
        !s.replay_remember("idp\u{1f}_x", t(300), t(200))
            .await
            .expect("remember")
    );

    // Sessions by IdP login.
    for (id, name, idx) in [
        ("s1", "alice", "i1"),
        ("s2", "alice", "i2"),
        ("s3", "bob", "i1"),
    ] {
        assert!(
            s.session_create(&session(id, name, idx, t(1000)))
                .await
                .expect("create")
        );
    }
    assert!(
        !s.session_create(&session("s1", "alice", "i1", t(1000)))
            .await
            .expect("create"),
        "an ID is never reused"
    );
    let mut all = s
        .sessions_by_saml(IdpId(7), "alice", &[])
        .await
        .expect("find");
    all.sort();
    assert_eq!(all, ["s1", "s2"]);
    assert_eq!(
        s.sessions_by_saml(IdpId(7), "alice", &["i2".into()])
            .await
            .expect("find"),
        ["s2"]
    );
    assert!(
        s.sessions_by_saml(IdpId(8), "alice", &[])
            .await
            .expect("find")
            .is_empty()
    );
    assert!(s.session_load("s3", t(10)).await.expect("load").is_some());
    assert!(
        s.session_load("s3", t(1000)).await.expect("load").is_none(),
        "expired sessions do not load"
    );

    // Purge, in batches, keeping what is live.
    for i in 0..5 {
        assert!(
            s.replay_remember(&format!("old{i}"), t(400), t(0))
                .await
                .expect("remember")
        );
    }
    assert!(
        s.replay_remember("live", t(5000), t(0))
            .await
            .expect("remember")
    );
    let now = t(2000);
    let first = s.purge_expired(now, 2, 10_000).await.expect("purge");
    assert_eq!(first, 2, "a full batch says there is more");
    let mut rounds = 1;
    while s.purge_expired(now, 2, 10_000).await.expect("purge") == 2 {
        rounds += 1;
        assert!(rounds < 10, "purge does not end");
    }
    assert!(
        !s.replay_remember("live", t(5000), now)
            .await
            .expect("remember"),
        "a live entry survived the purge"
    );
    assert!(
        s.sessions_by_saml(IdpId(7), "alice", &[])
            .await
            .expect("find")
            .is_empty(),
        "expired sessions were purged"
    );
    assert_eq!(s.purge_expired(now, 2, 10_000).await.expect("purge"), 0);
}

/// Circuit settings keep versions; pending OAuth requests are taken once (expired ones too, for
/// the caller to say so) and purged.
async fn circuit_rules(s: &dyn Store) {
    use ssogate::domain::SpId;
    use ssogate::domain::circuit::CircuitSettings;
    use ssogate::store::PendingOAuth;
    let tenant = ssogate::domain::admin::ensure_default_tenant(s)
        .await
        .expect("tenant");
    let sp = ssogate::domain::admin::sp_add(
        s,
        &ssogate::rng::SeededRng::new(1),
        ssogate::domain::admin::SpInput {
            host_url: "https://portal.example".into(),
            ..Default::default()
        },
    )
    .await
    .expect("sp");
    // Settings: inserted at version 0 → 1; a second insert of version 0 and a stale update are
    // refused; the current version updates.
    let mut c = CircuitSettings::defaults(tenant.id, &tenant.name);
    c.client_id = "app".into();
    let saved = s.circuit_put(&c).await.expect("insert");
    assert_eq!(saved.version, 1);
    assert!(matches!(
        s.circuit_put(&c).await,
        Err(ssogate::store::StoreError::Stale(_))
    ));
    let mut next = saved.clone();
    next.enabled = true;
    assert_eq!(s.circuit_put(&next).await.expect("update").version, 2);
    assert!(
        s.circuit_put(&next).await.is_err(),
        "version 1 is stale now"
    );
    let read = s.circuit_get(tenant.id).await.unwrap().expect("stored");
    assert!(read.enabled && read.version == 2 && read.tenant == "default");
    assert_eq!(s.circuit_list().await.unwrap().len(), 1);
    assert!(s.circuit_get(TenantId(999)).await.unwrap().is_none());
    // Pending requests: taken once (expired ones too, for the caller to say so), purged.
    let p = |h: &str, exp: UnixTime| PendingOAuth {
        state_hash: h.into(),
        tenant_id: tenant.id,
        sp_id: SpId(sp.id.0),
        binding_hash: "b".repeat(64),
        relay_target: "/".into(),
        expires_at: exp,
    };
    s.oauth_pending_put(&p("live", t(600))).await.unwrap();
    s.oauth_pending_put(&p("old", t(10))).await.unwrap();
    s.oauth_pending_put(&p("gone", t(10))).await.unwrap();
    assert!(
        s.oauth_pending_put(&p("live", t(600))).await.is_err(),
        "a state is stored once"
    );
    assert_eq!(
        s.oauth_pending_take("live").await.unwrap(),
        Some(p("live", t(600)))
    );
    assert_eq!(s.oauth_pending_take("live").await.unwrap(), None);
    assert_eq!(
        s.oauth_pending_take("old")
            .await
            .unwrap()
            .map(|p| p.expires_at),
        Some(t(10))
    );
    assert!(s.purge_expired(t(11), 100, 1000).await.unwrap() >= 1);
    assert_eq!(s.oauth_pending_take("gone").await.unwrap(), None, "purged");
}

/// 50 tasks at once: one replay key is recorded once, one pending logout and one pending OAuth
/// request are taken once.
async fn concurrency_rules(s: Arc<dyn Store>) {
    let remembered = futures_all(50, |_| {
        let s = s.clone();
        async move {
            s.replay_remember("idp\u{1f}_concurrent", t(600), t(0))
                .await
                .expect("remember")
        }
    })
    .await;
    assert_eq!(
        remembered.iter().filter(|r| **r).count(),
        1,
        "exactly one of 50 records the key"
    );
    s.pending_logout_put(&pending("_once", t(600)))
        .await
        .expect("put");
    let taken = futures_all(50, |_| {
        let s = s.clone();
        async move { s.pending_logout_take("_once", t(1)).await.expect("take") }
    })
    .await;
    assert_eq!(taken.iter().filter(|p| p.is_some()).count(), 1);
}

/// Runs `n` tasks made by `f` at once; their results.
async fn futures_all<T: Send + 'static, F: std::future::Future<Output = T> + Send + 'static>(
    n: usize,
    f: impl Fn(usize) -> F,
) -> Vec<T> {
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(f(i))).collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

/// A second object with a unique value: a conflict that names the field.
async fn conflict_rules(s: &dyn Store) {
    use ssogate::domain::admin::{self, SpInput, TenantInput, UserInput};
    let rng = ssogate::rng::SeededRng::new(2);
    admin::tenant_add(s, "acme", TenantInput::default())
        .await
        .expect("tenant");
    let tenant = s.tenant_by_name("acme").await.unwrap().expect("acme");
    let again = s
        .tenant_insert(ssogate::store::NewTenant {
            name: "acme".into(),
            display_name: String::new(),
            login_domains: vec![],
            sso_enabled: false,
            idp_id: None,
            slo_enabled: false,
            idp_initiated: false,
            username_rule: tenant.username_rule,
        })
        .await;
    let conflict = |r: Result<(), StoreError>, field: &str| match r {
        Err(StoreError::Conflict(m)) => assert!(m.contains(field), "{m:?} names {field}"),
        other => panic!("expected a conflict naming {field}, got {other:?}"),
    };
    conflict(again.map(|_| ()), "name");
    admin::user_add(
        s,
        &rng,
        "acme",
        UserInput {
            username: Some("kate".into()),
            ..Default::default()
        },
    )
    .await
    .expect("user");
    let dup = s
        .user_insert(ssogate::store::NewUser {
            tenant_id: tenant.id,
            username: "kate".into(),
            username_norm: "kate".into(),
            display_name: "Kate".into(),
            circuit_user: None,
            circuit_user_norm: None,
            password_hash: None,
            roles: vec![ssogate::domain::Role::Agent],
            must_change_password: false,
        })
        .await;
    conflict(dup.map(|_| ()), "username");
    admin::sp_add(
        s,
        &rng,
        SpInput {
            host_url: "https://one.example".into(),
            ..Default::default()
        },
    )
    .await
    .expect("sp");
    let dup = s
        .sp_insert(ssogate::store::NewServiceProvider {
            entity_id: "https://other.example".into(),
            host_url: "https://one.example".into(),
            certificate_pem: None,
            private_key_pem: None,
        })
        .await;
    conflict(dup.map(|_| ()), "host_url");
}

/// Every rule, on one store.
async fn all_rules(s: Arc<dyn Store>) {
    login_state_rules(s.as_ref()).await;
    concurrency_rules(s.clone()).await;
    conflict_rules(s.as_ref()).await;
    circuit_rules(s.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_in_memory() {
    all_rules(Arc::new(SqliteStore::memory().await.expect("store"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_in_a_file_and_after_reopening() {
    let dir = common::scratch_dir("store-conformance");
    let path = dir.join("ssogate.db");
    let s = SqliteStore::open(&path, Durability::Normal)
        .await
        .expect("open");
    all_rules(Arc::new(s.clone())).await;
    assert!(
        s.replay_remember("kept", t(9000), t(0))
            .await
            .expect("remember")
    );
    s.close().await;
    drop(s);
    let again = SqliteStore::open(&path, Durability::Full)
        .await
        .expect("reopen");
    assert!(
        !again
            .replay_remember("kept", t(9000), t(1))
            .await
            .expect("remember"),
        "the replay cache is on disk"
    );
}

fn pg_options(url: &str) -> ssogate::store::postgres::PgOptions {
    ssogate::store::postgres::PgOptions::new(url)
}

async fn postgres(label: &str) -> Option<ssogate::store::postgres::PgStore> {
    let url = common::engines::fresh_database(label).await?;
    let s = ssogate::store::postgres::PgStore::open(pg_options(&url))
        .await
        .expect("open PostgreSQL");
    s.use_secrets(Arc::new(ssogate::secrets::SecretsKey::ephemeral(
        &ssogate::rng::SystemRng,
    )))
    .expect("key");
    Some(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql() {
    let Some(s) = postgres("conformance").await else {
        return;
    };
    all_rules(Arc::new(s.clone())).await;
    // Committed: a second store (another instance) on the same database sees the entry.
    assert!(
        s.replay_remember("kept", t(9000), t(0))
            .await
            .expect("remember")
    );
    let other = ssogate::store::postgres::PgStore::open(s.options().clone())
        .await
        .expect("a second instance");
    assert!(
        !other
            .replay_remember("kept", t(9000), t(1))
            .await
            .expect("remember"),
        "the replay cache is shared"
    );
}

/// The state part in Redis (sessions and their indexes, pending logouts and Circuit requests), in
/// front of PostgreSQL (everything else, the replay cache included): every rule again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_for_the_state_part() {
    let Some(pg) = postgres("redis").await else {
        return;
    };
    let Some(url) = common::engines::redis_url() else {
        return;
    };
    let o = ssogate::store::redis_state::RedisOptions {
        url,
        prefix: format!("t{}-{}:", std::process::id(), t(0).millis() % 100_000),
        timeout: std::time::Duration::from_millis(1500),
    };
    let s = ssogate::store::redis_state::RedisState::open(Arc::new(pg.clone()), o.clone())
        .await
        .expect("open Redis");
    all_rules(Arc::new(s)).await;
    // The sessions are in Redis, not in PostgreSQL.
    let in_pg = pg.session_count(t(0)).await.expect("count");
    assert_eq!(in_pg, 0, "no session row in PostgreSQL");
    let again = ssogate::store::redis_state::RedisState::open(Arc::new(pg), o)
        .await
        .expect("open Redis");
    assert!(
        again
            .session_create(&session("r1", "carol", "i9", t(100)))
            .await
            .expect("create")
    );
    assert_eq!(
        again
            .sessions_by_saml(IdpId(7), "carol", &[])
            .await
            .expect("find"),
        ["r1"]
    );
    assert_eq!(again.session_count(t(0)).await.expect("count"), 1);
    again.session_delete("r1").await.expect("delete");
    assert!(
        again
            .session_load("r1", t(0))
            .await
            .expect("load")
            .is_none()
    );
    assert_eq!(again.session_count(t(0)).await.expect("count"), 0);
    // A bad URL says why.
    let bad = ssogate::store::redis_state::RedisOptions {
        url: "http://127.0.0.1:1/".into(),
        prefix: String::new(),
        timeout: std::time::Duration::from_millis(500),
    };
    let e = ssogate::store::redis_state::RedisState::open(
        Arc::new(SqliteStore::memory().await.expect("m")),
        bad,
    )
    .await
    .err()
    .expect("refused");
    assert!(e.to_string().contains("redis"), "{e}");
}

/// Instances started at once on an empty database migrate it once (the advisory lock), and a
/// migration that already ran is not run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_migrates_once_when_instances_start_together() {
    let Some(url) = common::engines::fresh_database("migrate").await else {
        return;
    };
    let opens: Vec<_> = (0..3)
        .map(|_| {
            let o = pg_options(&url);
            tokio::spawn(async move { ssogate::store::postgres::PgStore::open(o).await })
        })
        .collect();
    for o in opens {
        let s = o.await.expect("task").expect("open");
        assert!(s.schema_version().await.expect("version") >= 1);
    }
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let n: i64 = client
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .expect("count")
        .get(0);
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'sessions'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .expect("migrations")
        .count() as i64;
    assert_eq!(
        (n, tables),
        (files, 1),
        "each migration recorded once, one sessions table"
    );
}

/// A bad URL or a server that does not answer stops `open` with the reason, never a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_bad_urls_say_why() {
    use ssogate::store::postgres::PgStore;
    for (url, says) in [
        ("mysql://x@127.0.0.1/db", "postgres://"),
        ("postgres://x@127.0.0.1/db?sslmode=sometimes", "sslmode"),
        ("not a url", "not a URL"),
    ] {
        let e = PgStore::open(pg_options(url)).await.expect_err(url);
        assert!(e.to_string().contains(says), "{url}: {e}");
    }
    // Nothing listens on this port: refused at once.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let port = free.local_addr().expect("addr").port();
    drop(free);
    let started = std::time::Instant::now();
    let e = PgStore::open(pg_options(&format!(
        "postgres://ssogate:secret-pw@127.0.0.1:{port}/db"
    )))
    .await
    .expect_err("nothing listens");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(!e.to_string().contains("secret-pw"), "{e}");
}

/// The shared engines `./run-tests` starts (`tests/engines/up`) answer on loopback: PostgreSQL
/// (`SSOGATE_TEST_DATABASE_URL`, through `psql`) and Redis (`SSOGATE_TEST_REDIS_URL`, through
/// `redis-cli`). Missing, the test fails naming them, unless `SSOGATE_SKIP=engines`.
#[test]
fn the_shared_engines_answer_on_loopback() {
    let db = std::env::var("SSOGATE_TEST_DATABASE_URL").ok();
    let redis = std::env::var("SSOGATE_TEST_REDIS_URL").ok();
    let missing = match (&db, &redis) {
        (Some(_), Some(_)) => None,
        _ => Some(
            "SSOGATE_TEST_DATABASE_URL and SSOGATE_TEST_REDIS_URL are not set (./run-tests starts PostgreSQL and Redis: apt-get install postgresql redis-server)"
                .to_string(),
        ),
    };
    if common::require("engines", missing).is_none() {
        return;
    }
    let (db, redis) = (db.unwrap(), redis.unwrap());
    let out = std::process::Command::new("psql")
        .args([db.as_str(), "-Atc", "SHOW server_version"])
        .output()
        .expect("psql runs");
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        version.trim().starts_with("15"),
        "PostgreSQL 15 expected: {version}"
    );
    let out = std::process::Command::new("redis-cli")
        .args(["-u", redis.as_str(), "INFO", "server"])
        .output()
        .expect("redis-cli runs");
    let info = String::from_utf8_lossy(&out.stdout);
    assert!(
        info.contains("redis_version:7."),
        "Redis 7 expected: {info}"
    );
}

/// `sslmode` through OpenSSL, against a server that accepts TLS connections only: `disable` is
/// refused by the server, `require` connects (certificate not checked, as libpq), `verify-full`
/// connects with the server's certificate as root and is refused with another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_over_tls() {
    use ssogate::store::postgres::PgStore;
    let dir = common::scratch_dir("store-conformance-tls");
    let Some(pg) = common::engines::PrivatePostgres::start_tls(&dir) else {
        return;
    };
    let cert = pg.tls_cert.clone().expect("cert");
    let url = |q: &str| format!("postgres://ssogate@127.0.0.1:{}/postgres?{q}", pg.port);
    let e = PgStore::open(pg_options(&url("sslmode=disable")))
        .await
        .expect_err("refused without TLS");
    assert!(
        e.to_string().contains("no encryption") || e.to_string().contains("pg_hba"),
        "{e}"
    );
    let s = PgStore::open(pg_options(&url("sslmode=require")))
        .await
        .expect("sslmode=require connects");
    assert!(s.schema_version().await.expect("version") >= 1);
    PgStore::open(pg_options(&url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        cert.display()
    ))))
    .await
    .expect("verify-full with the server's certificate");
    // Another root: the certificate does not verify.
    let other = dir.join("other.crt");
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=other",
        ])
        .arg("-keyout")
        .arg(dir.join("other.key"))
        .arg("-out")
        .arg(&other)
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok);
    let e = PgStore::open(pg_options(&url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        other.display()
    ))))
    .await
    .expect_err("refused: another root");
    assert!(e.to_string().contains("certificate"), "{e}");
    drop(pg);
}
