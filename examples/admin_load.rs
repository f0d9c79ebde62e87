//! The Web Manager and the JSON API on a big configuration: 200 IdPs, 50 tenants, 10,000 users
//! and 10,000 failure records, written into a fresh data directory through the library, then
//! `ssogate serve` (release build) on loopback. Each page and each API list is requested
//! `--requests` times in a row by one client (keep-alive off, one connection per request);
//! prints p50/p99/max per URL and one JSON line. Targets: pages p99 < 100 ms, API lists p99 <
//! 20 ms.
//!
//! ```sh
//! cargo build --release && cargo run --release --example admin_load
//! ```

#[path = "../tests/common/generate.rs"]
#[allow(dead_code)]
mod generate;
#[path = "support/mod.rs"]
mod support;

use std::time::Instant;

use ssogate::domain::Secret;
use ssogate::domain::admin::{self, IdpInput, TenantInput, UserInput};
use ssogate::rng::SystemRng;
use ssogate::store::sqlite::SqliteStore;
use ssogate::store::{SignInFailure, Store};
use support::{free_port, percentile, request, ssogate_bin};

const PASSWORD: &str = "load-admin-password";

async fn seed(data: &std::path::Path) -> SqliteStore {
    std::fs::create_dir_all(data).expect("data dir");
    let store = SqliteStore::open(&data.join("ssogate.db"), Default::default())
        .await
        .expect("store");
    let s: &dyn Store = &store;
    let rng = SystemRng;
    admin::ensure_default_tenant(s).await.expect("default");
    admin::user_add(
        s,
        &rng,
        "default",
        UserInput {
            username: Some("root".into()),
            password: Some(Secret::new(PASSWORD.into())),
            roles: Some(vec!["central-admin".into()]),
            ..Default::default()
        },
    )
    .await
    .expect("root");
    let cert = String::from_utf8(generate::idp().cert_pem.clone()).expect("pem");
    for i in 0..200 {
        admin::idp_add(
            s,
            IdpInput {
                name: Some(format!("idp{i:03}")),
                entity_id: Some(format!("https://idp{i:03}.example/idp")),
                sso_url: Some(format!("https://idp{i:03}.example/sso")),
                username: Some("upn".into()),
                certificates: vec![cert.clone()],
                ..Default::default()
            },
        )
        .await
        .expect("idp");
    }
    for i in 0..50 {
        admin::tenant_add(
            s,
            &format!("tenant{i:02}"),
            TenantInput {
                login_domains: Some(vec![format!("t{i:02}.example")]),
                sso_enabled: Some(true),
                idp: Some(format!("idp{i:03}")),
                ..Default::default()
            },
        )
        .await
        .expect("tenant");
    }
    // 10,000 users: 200 in each tenant (no password: argon2 is not what is measured).
    for i in 0..10_000 {
        admin::user_add(
            s,
            &rng,
            &format!("tenant{:02}", i % 50),
            UserInput {
                username: Some(format!("agent{i:05}")),
                display_name: Some(format!("Agent {i}")),
                ..Default::default()
            },
        )
        .await
        .expect("user");
    }
    for i in 0..10_000u64 {
        store
            .failure_record(&SignInFailure {
                at: ssogate::saml::UnixTime::from_secs(1_800_000_000 + i as i64),
                reference: format!("SG-{i:010X}"),
                endpoint: "acs".into(),
                tenant: Some(format!("tenant{:02}", i % 50)),
                idp: Some(format!("idp{:03}", i % 50)),
                reason: "unknown_user".into(),
                detail: format!("identity provider signed in \"agent-x{i}\", no such user"),
                client: Some("192.0.2.1".into()),
                repeats: 0,
                username: Some(format!("agent-x{i}")),
            })
            .await
            .expect("failure");
    }
    store
}

fn main() {
    let mut requests = 200usize;
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--requests") {
        requests = args[i + 1].parse().expect("--requests N");
    }
    let bin = ssogate_bin();
    let dir = std::env::temp_dir().join(format!("ssogate-admin-load-{}", std::process::id()));
    let data = dir.join("data");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let t = Instant::now();
    drop(rt.block_on(seed(&data)));
    println!(
        "seeded 200 IdPs, 50 tenants, 10,000 users, 10,000 failures in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let port = free_port();
    let server = support::serve(&bin, &data, port, &[]);
    // A Web Manager session (pages) and an API token (lists).
    let (_, _, signin) = request(
        port,
        "POST",
        "/webmanager/signin",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        &format!("username=root&tenant=default&password={PASSWORD}"),
    );
    let cookie = signin
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("session cookie")
        .to_string();
    let (_, _, me) = request(
        port,
        "GET",
        "/api/v1/me",
        &format!("Cookie: {cookie}\r\n"),
        "",
    );
    let csrf = me
        .split("\"csrf_token\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("csrf")
        .to_string();
    let (_, _, created) = request(
        port,
        "POST",
        "/api/v1/api-clients",
        &format!("Cookie: {cookie}\r\nX-CSRF-Token: {csrf}\r\nContent-Type: application/json\r\n"),
        "{\"name\":\"load\"}",
    );
    let token = created
        .split("\"token\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("token")
        .to_string();
    let page_headers = format!("Cookie: {cookie}\r\n");
    let api_headers = format!("Authorization: Bearer {token}\r\n");
    let cases: Vec<(&str, &str, &String)> = vec![
        ("page", "/webmanager/sps", &page_headers),
        ("page", "/webmanager/idps", &page_headers),
        ("page", "/webmanager/tenants", &page_headers),
        ("page", "/webmanager/users?tenant=tenant07", &page_headers),
        (
            "page",
            "/webmanager/users?tenant=tenant07&q=agent0",
            &page_headers,
        ),
        (
            "page",
            "/webmanager/activity?tenant=tenant07",
            &page_headers,
        ),
        (
            "page",
            "/webmanager/activity?tenant=tenant07&q=SG-00000001",
            &page_headers,
        ),
        ("page", "/webmanager/audit", &page_headers),
        ("api", "/api/v1/idps?limit=50", &api_headers),
        ("api", "/api/v1/tenants?limit=50", &api_headers),
        (
            "api",
            "/api/v1/tenants/tenant07/users?limit=50",
            &api_headers,
        ),
        (
            "api",
            "/api/v1/tenants/tenant07/users?limit=50&q=agent0",
            &api_headers,
        ),
        (
            "api",
            "/api/v1/tenants/tenant07/failures?limit=50",
            &api_headers,
        ),
        (
            "api",
            "/api/v1/tenants/tenant07/sessions?limit=50",
            &api_headers,
        ),
        ("api", "/api/v1/audit?limit=50", &api_headers),
    ];
    let mut json = serde_json::Map::new();
    for (kind, path, headers) in cases {
        let mut lat = Vec::with_capacity(requests);
        for _ in 0..requests {
            let (status, us, body) = request(port, "GET", path, headers, "");
            assert_eq!(status, 200, "{path}: {}", &body[..body.len().min(300)]);
            lat.push(us);
        }
        lat.sort_unstable();
        let (p50, p99, max) = (
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            percentile(&lat, 1.0),
        );
        println!("{kind:4} {path:58} p50 {p50:7.2} ms  p99 {p99:7.2} ms  max {max:7.2} ms");
        json.insert(
            path.to_string(),
            serde_json::json!({"kind": kind, "p50_ms": p50, "p99_ms": p99, "max_ms": max}),
        );
    }
    println!("{}", serde_json::Value::Object(json));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
