//! SQLite's own side of the store: the WAL starts again under continuous writes, the data
//! directory and its files are the owner's only, the sign-in chart's counts and captured responses
//! stay bounded. The rules every engine keeps are in `tests/store_conformance.rs`.

mod common;

use ssogate::saml::UnixTime;
use ssogate::store::Store;
use ssogate::store::sqlite::{Durability, SqliteStore};

fn t(secs: i64) -> UnixTime {
    UnixTime::from_millis(1_790_000_000_000 + secs * 1000)
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
