//! The shared engines `./run-tests` starts (`tests/engines/up`): a fresh PostgreSQL database per
//! test, so that tests never see each other's rows.

#![allow(dead_code)]

/// The test server's URL (`SSOGATE_TEST_DATABASE_URL`), or `None` after recording the opt-out
/// (`SSOGATE_SKIP=engines`); missing without opting out, the test fails naming it.
pub fn database_url() -> Option<String> {
    let url = std::env::var("SSOGATE_TEST_DATABASE_URL").ok();
    super::require(
        "engines",
        url.is_none().then(|| {
            "SSOGATE_TEST_DATABASE_URL is not set (./run-tests starts PostgreSQL: apt-get install postgresql)"
                .to_string()
        }),
    )?;
    url
}

/// `SSOGATE_TEST_REDIS_URL`, as [`database_url`].
pub fn redis_url() -> Option<String> {
    let url = std::env::var("SSOGATE_TEST_REDIS_URL").ok();
    super::require(
        "engines",
        url.is_none().then(|| {
            "SSOGATE_TEST_REDIS_URL is not set (./run-tests starts Redis: apt-get install redis-server)"
                .to_string()
        }),
    )?;
    url
}

/// A new, empty database on the test server, named after `label`; its URL.
pub async fn fresh_database(label: &str) -> Option<String> {
    let base = database_url()?;
    let name = format!(
        "t_{}_{}_{}",
        label.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .expect("the test PostgreSQL answers");
    tokio::spawn(conn);
    for sql in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        client
            .batch_execute(&sql)
            .await
            .expect("create a test database");
    }
    let mut u = url::Url::parse(&base).expect("URL");
    u.set_path(&format!("/{name}"));
    Some(u.to_string())
}

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
