//! The store's login-state rules, on in-memory SQLite and on a file: pending logouts are consumed
//! once and expire; the service's secret is made once and then kept; the replay cache refuses a live key and forgets an expired one; sessions are
//! found by IdP, NameID and SessionIndex; purging goes in batches and keeps what is live.

mod common;

use ssogate::domain::{IdpId, TenantId, UserId};
use ssogate::saml::UnixTime;
use ssogate::store::sqlite::{Durability, SqliteStore};
use ssogate::store::{
    AgentSession, PendingLogout, SamlSessionRef, SessionRow, SignInFailure, SignInMethod, Store,
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

#[tokio::test]
async fn login_state_in_memory() {
    login_state_rules(&SqliteStore::memory().await.expect("store")).await;
}

#[tokio::test]
async fn login_state_in_a_file_and_after_reopening() {
    let dir = common::scratch_dir("store");
    let path = dir.join("ssogate.db");
    let s = SqliteStore::open(&path, Durability::Normal)
        .await
        .expect("open");
    login_state_rules(&s).await;
    assert!(
        s.replay_remember("kept", t(9000), t(0))
            .await
            .expect("remember")
    );
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

/// Under continuous writes (and reads) the WAL must start again from its beginning: a log that
/// only grows takes the disk, and its -shm index (mapped into the process) the memory. Counted,
/// not timed: one checkpoint step per 20 commits (the background thread's 100 ms) and a restart
/// every 10 steps (its second). A reader holds a snapshot across each PASSIVE step, as readers
/// under load always do, so a PASSIVE checkpoint never copies the whole log and never lets it
/// begin again by itself; the restart must. The control, the same commits without restarts,
/// shows the log growing with every commit: what the test would catch.
async fn wal_after(restart: bool, name: &str) -> (u64, u64) {
    let dir = common::scratch_dir(name);
    let path = dir.join("ssogate.db");
    let s = SqliteStore::open_without_checkpointer(&path, Durability::Normal)
        .await
        .expect("open");
    let reader =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("reader");
    let wal = || {
        std::fs::metadata(dir.join("ssogate.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let mut after_first_period = 0;
    for commit in 0..4000u64 {
        if commit % 20 == 10 {
            // A read transaction whose snapshot the next ten commits go past.
            reader.execute_batch("BEGIN").expect("begin");
            let _: i64 = reader
                .query_row("SELECT count(*) FROM replay_cache", [], |r| r.get(0))
                .expect("read");
        }
        assert!(
            s.replay_remember(&format!("_assertion-{commit}"), t(9000), t(0))
                .await
                .expect("remember")
        );
        s.session_load("nobody", t(0)).await.expect("read");
        if commit % 20 == 19 {
            let restart_now = restart && (commit / 20) % 10 == 9;
            if restart_now {
                reader.execute_batch("COMMIT").expect("end read");
                s.checkpoint_step(true);
            } else {
                s.checkpoint_step(false);
                reader.execute_batch("COMMIT").expect("end read");
            }
        }
        if commit == 199 {
            after_first_period = wal();
        }
    }
    (after_first_period, wal())
}

#[tokio::test]
async fn the_wal_starts_again_under_continuous_writes_and_reads() {
    let (period, with_restarts) = wal_after(true, "store-wal").await;
    let (_, without) = wal_after(false, "store-wal-control").await;
    assert!(period > 0, "the first restart period wrote to the log");
    // 4,000 commits: twenty restart periods. Restarted, the log stays about one period long.
    assert!(
        with_restarts <= 2 * period,
        "the WAL is {with_restarts} bytes after 4,000 commits; one restart period wrote {period}"
    );
    // Without restarts it holds every commit: the test would see a log that never restarts.
    assert!(
        without >= 10 * period,
        "control: without restarts the WAL is only {without} bytes ({period} a period)"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_and_its_files_are_the_owners_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = common::scratch_dir("store_private").join("data");
    let path = dir.join("ssogate.db");
    let s = SqliteStore::open(&path, Durability::Normal)
        .await
        .expect("store");
    s.replay_remember("k", t(100), t(0)).await.expect("write");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "data directory");
    assert_eq!(mode(&path), 0o600, "database");
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    assert_eq!(mode(std::path::Path::new(&wal)), 0o600, "write-ahead log");
    // A database made before, readable by others, is made private when opened.
    drop(s);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let _s = SqliteStore::open(&path, Durability::Normal)
        .await
        .expect("store");
    assert_eq!(mode(&path), 0o600);
}

#[tokio::test]
async fn sign_in_counts_add_up_per_hour_survive_reopening_and_age_out() {
    use ssogate::store::ActivityRow;
    let dir = common::scratch_dir("store-activity");
    let path = dir.join("ssogate.db");
    let row = |tenant: &str, hour, s, f| ActivityRow {
        tenant: tenant.into(),
        hour,
        successes: s,
        failures: f,
    };
    {
        let s = SqliteStore::open(&path, Durability::Normal)
            .await
            .expect("open");
        s.activity_add(&[row("acme", 100, 2, 1), row("globex", 100, 5, 0)], 0)
            .await
            .unwrap();
        // A second flush (or another instance's) adds to the same hour.
        s.activity_add(&[row("acme", 100, 1, 0), row("acme", 101, 0, 3)], 0)
            .await
            .unwrap();
    }
    let s = SqliteStore::open(&path, Durability::Normal)
        .await
        .expect("reopen");
    assert_eq!(
        s.activity_hours("acme", 0).await.unwrap(),
        vec![row("acme", 100, 3, 1), row("acme", 101, 0, 3)]
    );
    // Hours before keep_from go at the next flush, even an empty one.
    s.activity_add(&[], 101).await.unwrap();
    assert_eq!(
        s.activity_hours("acme", 0).await.unwrap(),
        vec![row("acme", 101, 0, 3)]
    );
    assert!(s.activity_hours("globex", 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn captured_responses_are_bounded_per_tenant_in_all_and_in_time() {
    use ssogate::store::CapturedResponse;
    use ssogate::web::capture::{KEEP_SECS, MAX_CAPTURE_BYTES, MAX_PER_TENANT, MAX_TOTAL};
    let s = SqliteStore::memory().await.expect("store");
    let t0 = UnixTime::from_secs(2_000_000_000);
    let big = "A".repeat(MAX_CAPTURE_BYTES);
    // 10 tenants × 60 refusals of the largest size kept.
    for i in 0..600u32 {
        let c = CapturedResponse {
            id: 0,
            tenant: format!("t{}", i % 10),
            reference: format!("ref{i}"),
            at: t0.plus_secs(i64::from(i)),
            reason: "signature_invalid".into(),
            message: Some(big.clone()),
        };
        s.capture_put(&c, MAX_PER_TENANT, MAX_TOTAL, t0.plus_secs(-KEEP_SECS))
            .await
            .unwrap();
    }
    let mut total = 0;
    for t in 0..10 {
        let l = s.capture_list(&format!("t{t}")).await.unwrap();
        assert!(l.len() <= MAX_PER_TENANT as usize);
        total += l.len();
    }
    assert_eq!(total, MAX_TOTAL as usize, "all tenants together");
    // The newest are kept, with their messages; the listing carries none.
    let l = s.capture_list("t9").await.unwrap();
    assert_eq!(l[0].reference, "ref599");
    assert!(l[0].message.is_none());
    let one = s.capture_get("t9", l[0].id).await.unwrap().unwrap();
    assert_eq!(
        one.message.as_deref().map(str::len),
        Some(MAX_CAPTURE_BYTES)
    );
    // Another tenant's ID is not found through this one.
    assert!(s.capture_get("t8", l[0].id).await.unwrap().is_none());
    // 24 hours later the purge takes them all.
    s.purge_expired(t0.plus_secs(KEEP_SECS + 601), 100, 1_000_000)
        .await
        .unwrap();
    assert!(s.capture_list("t9").await.unwrap().is_empty());
}

#[tokio::test]
async fn circuit_settings_keep_versions_and_pending_oauth_requests_are_taken_once() {
    use ssogate::domain::SpId;
    use ssogate::domain::circuit::CircuitSettings;
    use ssogate::store::PendingOAuth;
    let dir = common::scratch_dir("store-circuit");
    let path = dir.join("ssogate.db");
    let s = SqliteStore::open(&path, Durability::Normal)
        .await
        .expect("store");
    let tenant = ssogate::domain::admin::ensure_default_tenant(&s)
        .await
        .expect("tenant");
    let sp = ssogate::domain::admin::sp_add(
        &s,
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
