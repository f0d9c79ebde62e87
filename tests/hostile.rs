//! Hostile clients against the service in process (fixed clock, throw-away keys, every attack
//! built here): the wrong user is never signed in, anonymous requests store nothing and leave
//! bounded records, wrong passwords slow down only their (user, address) pair, a captured logout
//! message works once, forms posted from elsewhere are refused, and the IdP's own location is
//! used for each binding. Connection limits are in `hostile_connections.rs`, the cost of parsing
//! in `hostile_cost.rs`.

mod common;

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use common::app::{Answer, HOST, TestApp, answering, cookie, unsolicited};
use common::generate::{self, IDP, Template, USER_ATTR, b64, idp};
use ssogate::config::Config;
use ssogate::domain::Secret;
use ssogate::domain::admin::{self, IdpInput, TenantInput, UserInput};
use ssogate::rng::SeededRng;
use ssogate::saml::logout::LogoutRequestParams;
use ssogate::saml::response::NameId;
use ssogate::store::Store;
use ssogate::store::sqlite::{Durability, SqliteStore};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

const A: &str = "198.51.100.7";
const B: &str = "203.0.113.9";

/// A response for `user` (the windowsaccountname claim), answering `id` or unsolicited.
fn claiming(user: &str, id: Option<&str>, assertion_id: &str) -> String {
    let base = match id {
        Some(i) => answering(i),
        None => unsolicited(),
    };
    Template {
        attributes: vec![(USER_ATTR.into(), vec![user.into()])],
        assertion_id: assertion_id.into(),
        ..base
    }
    .signed_assertion(idp())
}

async fn failure(t: &TestApp) -> ssogate::store::SignInFailure {
    t.store
        .failures_recent(1)
        .await
        .expect("failures")
        .into_iter()
        .next()
        .expect("a failure record")
}

async fn signed_in_as(t: &TestApp, a: &Answer) -> Option<(String, String)> {
    let session = cookie(a, "ssogate_session")?;
    let c = t.get("/auth/check", &[&session]).await;
    if c.status != StatusCode::OK {
        return None;
    }
    let h = |n: &str| {
        c.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    Some((h("x-auth-user"), h("x-auth-tenant")))
}

async fn add_user(t: &TestApp, tenant: &str, name: &str) {
    admin::user_add(
        t.store.as_ref(),
        &SeededRng::new(3),
        tenant,
        UserInput {
            username: Some(name.into()),
            ..Default::default()
        },
    )
    .await
    .expect("user");
}

async fn set_tenant(t: &TestApp, name: &str, input: TenantInput) {
    admin::tenant_set(t.store.as_ref(), name, input)
        .await
        .expect("tenant set");
}

// ------------------------------------------------------------------------------------------------
// Identities bound to their tenant

#[tokio::test]
async fn a_name_of_a_foreign_domain_signs_no_one_in_and_the_detail_says_how_to_allow_it() {
    let t = TestApp::new(false).await;
    set_tenant(
        &t,
        "default",
        TenantInput {
            idp_initiated: Some(true),
            ..Default::default()
        },
    )
    .await;
    for (n, claim) in [
        "EVIL\\jdoe",
        "jdoe@evil.example",
        "jdoe@example.com.evil.example",
    ]
    .into_iter()
    .enumerate()
    {
        // SP-initiated and IdP-initiated alike.
        let (id, pending) = t.start_login("/login").await;
        let a = t
            .acs(
                &claiming(claim, Some(&id), &format!("_sp-{n}")),
                &[&pending],
            )
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{claim}");
        assert_eq!(signed_in_as(&t, &a).await, None, "{claim}");
        let f = failure(&t).await;
        assert_eq!(f.reason, "foreign_domain", "{claim}: {}", f.detail);
        let a = t
            .acs(&claiming(claim, None, &format!("_idp-{n}")), &[])
            .await;
        assert_eq!(signed_in_as(&t, &a).await, None, "{claim}");
        let f = failure(&t).await;
        assert_eq!(f.reason, "foreign_domain", "{claim}: {}", f.detail);
    }
    let f = failure(&t).await;
    assert!(
        f.detail
            .contains("ssogate tenant set default --add-login-domain example.com.evil.example"),
        "{}",
        f.detail
    );
    // The tenant's own domains, in any case, both forms.
    for (n, claim) in ["EXAMPLE\\JDoe", "jdoe@Example.COM", "jdoe"]
        .into_iter()
        .enumerate()
    {
        let a = t
            .acs(&claiming(claim, None, &format!("_ok-{n}")), &[])
            .await;
        assert_eq!(
            signed_in_as(&t, &a).await,
            Some(("jdoe".into(), "default".into())),
            "{claim}: {}",
            a.body
        );
    }
}

/// acme and globex share the one IdP, each with its login domains.
async fn two_tenants_one_idp() -> TestApp {
    let t = TestApp::new(true).await;
    for (name, domains) in [
        ("acme", ["acme.example", "acme"]),
        ("globex", ["globex.example", "globex"]),
    ] {
        admin::tenant_add(
            t.store.as_ref(),
            name,
            TenantInput {
                login_domains: Some(domains.iter().map(|d| d.to_string()).collect()),
                sso_enabled: Some(true),
                idp: Some("idp".into()),
                idp_initiated: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("tenant");
        add_user(&t, name, "agent1").await;
    }
    // The default tenant gives the IdP up: the two above share it.
    set_tenant(
        &t,
        "default",
        TenantInput {
            sso_enabled: Some(false),
            idp: Some(String::new()),
            ..Default::default()
        },
    )
    .await;
    t
}

#[tokio::test]
async fn an_idp_of_two_tenants_signs_in_only_the_tenant_the_domain_names() {
    let t = two_tenants_one_idp().await;
    // Started at acme, answered for a globex identity: refused, nobody signed in.
    let (id, pending) = t.start_login("/t/acme/login").await;
    let a = t
        .acs(
            &claiming("agent1@globex.example", Some(&id), "_cross-1"),
            &[&pending],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(signed_in_as(&t, &a).await, None);
    let f = failure(&t).await;
    assert_eq!(f.reason, "tenant_mismatch", "{}", f.detail);
    assert!(f.detail.contains("globex"), "{}", f.detail);
    // A name without a domain cannot be attributed when the IdP serves two tenants.
    let (id, pending) = t.start_login("/t/acme/login").await;
    let a = t
        .acs(&claiming("agent1", Some(&id), "_cross-2"), &[&pending])
        .await;
    assert_eq!(signed_in_as(&t, &a).await, None);
    assert_eq!(failure(&t).await.reason, "tenant_mismatch");
    // The right domain signs in at the right tenant.
    let (id, pending) = t.start_login("/t/acme/login").await;
    let a = t
        .acs(
            &claiming("ACME\\agent1", Some(&id), "_cross-3"),
            &[&pending],
        )
        .await;
    assert_eq!(
        signed_in_as(&t, &a).await,
        Some(("agent1".into(), "acme".into())),
        "{}",
        a.body
    );

    // IdP-initiated: routed by the domain, never to the other tenant.
    let a = t
        .acs(&claiming("agent1@globex.example", None, "_un-1"), &[])
        .await;
    assert_eq!(
        signed_in_as(&t, &a).await,
        Some(("agent1".into(), "globex".into()))
    );
    let a = t.acs(&claiming("agent1", None, "_un-2"), &[]).await;
    assert_eq!(signed_in_as(&t, &a).await, None);
    assert_eq!(failure(&t).await.reason, "idp_initiated_ambiguous");
    let a = t
        .acs(&claiming("agent1@evil.example", None, "_un-3"), &[])
        .await;
    assert_eq!(signed_in_as(&t, &a).await, None);
    assert_eq!(failure(&t).await.reason, "foreign_domain");
}

#[tokio::test]
async fn sharing_an_idp_needs_login_domains_on_every_tenant() {
    let t = two_tenants_one_idp().await;
    let s: &dyn Store = t.store.as_ref();
    // A third tenant without domains may not take the IdP the two use.
    admin::tenant_add(s, "initech", TenantInput::default())
        .await
        .expect("tenant");
    let e = admin::tenant_set(
        s,
        "initech",
        TenantInput {
            sso_enabled: Some(true),
            idp: Some("idp".into()),
            ..Default::default()
        },
    )
    .await
    .expect_err("no domains");
    assert!(e.to_string().contains("acme"), "{e}");
    // Nor may a sharing tenant drop its domains.
    let e = admin::tenant_set(
        s,
        "globex",
        TenantInput {
            login_domains: Some(vec![]),
            ..Default::default()
        },
    )
    .await
    .expect_err("domains dropped");
    assert!(e.to_string().contains("acme"), "{e}");
    // Nor take another tenant's domain.
    let e = admin::tenant_set(
        s,
        "globex",
        TenantInput {
            add_login_domains: vec!["ACME".into()],
            ..Default::default()
        },
    )
    .await
    .expect_err("overlap");
    assert!(e.to_string().contains("acme"), "{e}");
    // Nothing changed.
    let g = admin::tenant_find(s, "globex").await.expect("globex");
    assert_eq!(g.login_domains, ["globex.example", "globex"]);
}

#[tokio::test]
async fn compatibility_characters_never_name_a_user() {
    let t = TestApp::new(false).await;
    set_tenant(
        &t,
        "default",
        TenantInput {
            idp_initiated: Some(true),
            ..Default::default()
        },
    )
    .await;
    add_user(&t, "default", "kate").await;
    // U+212A KELVIN SIGN: to_lowercase makes it 'k'; PRECIS refuses it.
    let kelvin = "\u{212A}ate";
    let a = t
        .acs(&claiming(&format!("EXAMPLE\\{kelvin}"), None, "_k1"), &[])
        .await;
    assert_eq!(signed_in_as(&t, &a).await, None);
    let f = failure(&t).await;
    assert_eq!(f.reason, "username_invalid", "{}", f.detail);
    // Fullwidth letters map to the same user (RFC 8265 width mapping).
    let a = t
        .acs(&claiming("EXAMPLE\\ＫＡＴＥ", None, "_k2"), &[])
        .await;
    assert_eq!(
        signed_in_as(&t, &a).await,
        Some(("kate".into(), "default".into()))
    );
    // Nor can such a name be added, as a user name or as a Circuit user.
    let s: &dyn Store = t.store.as_ref();
    let rng = SeededRng::new(9);
    for input in [
        UserInput {
            username: Some(kelvin.into()),
            ..Default::default()
        },
        UserInput {
            username: Some("kate2".into()),
            circuit_user: Some(format!("{kelvin}@example.com")),
            ..Default::default()
        },
    ] {
        let e = admin::user_add(s, &rng, "default", input)
            .await
            .expect_err("refused");
        assert!(e.to_string().contains("U+212A"), "{e}");
    }
    // Circuit users compare case-insensitively: a second spelling is the same Circuit user.
    admin::user_add(
        s,
        &rng,
        "default",
        UserInput {
            username: Some("kate3".into()),
            circuit_user: Some("Kate@Example.com".into()),
            ..Default::default()
        },
    )
    .await
    .expect("user");
    admin::user_add(
        s,
        &rng,
        "default",
        UserInput {
            username: Some("kate4".into()),
            circuit_user: Some("kate@example.COM".into()),
            ..Default::default()
        },
    )
    .await
    .expect_err("the same Circuit user twice");
}

// ------------------------------------------------------------------------------------------------
// Storage and records

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_anonymous_login_starts_store_nothing() {
    let dir = common::scratch_dir("hostile_pending");
    let path = dir.join("ssogate.db");
    let store = Arc::new(
        SqliteStore::open(&path, Durability::Normal)
            .await
            .expect("store"),
    );
    let t = TestApp::with_store(Config::default(), store).await;
    // One start first: the MAC key of pending requests is made then.
    let _ = t.start_login("/login").await;
    let size = || {
        ["", "-wal"]
            .iter()
            .map(|s| {
                let mut p = path.as_os_str().to_owned();
                p.push(s);
                std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0)
            })
            .sum::<u64>()
    };
    // Let the checkpointer settle, then measure.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before = size();
    let long_target = format!("/{}", "q".repeat(4000));
    for i in 0..10_000 {
        let path = if i % 2 == 0 {
            "/login".to_string()
        } else {
            format!("/login?target={long_target}")
        };
        let a = t.request_from(ip(A), "GET", &path, None, &[], &[]).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER);
        if i == 1 {
            // The long relay target is not kept: the cookie stays small.
            let c = a
                .cookies
                .iter()
                .find(|c| c.starts_with("ssogate_rq_"))
                .expect("cookie");
            assert!(c.len() < 600, "{} bytes", c.len());
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let grown = size().saturating_sub(before);
    assert!(
        grown < 2 * 1024 * 1024,
        "10,000 anonymous requests grew the store by {grown} bytes"
    );
    // Not a byte per request, in fact: nothing is written for them.
    assert!(grown < 64 * 1024, "grew by {grown} bytes");
}

#[tokio::test]
async fn echoed_values_are_bounded_and_one_client_gets_few_records() {
    let t = TestApp::with_config(Config {
        failure_records_per_minute: 5,
        ..Config::default()
    })
    .await;
    // An unverified Issuer of 100,000 combining marks (200 KB of name).
    let marks = "\u{0301}".repeat(100_000);
    let xml = Template {
        response_issuer: Some(marks),
        ..unsolicited()
    }
    .unsigned();
    let form = b64(&xml);
    // The reference the refusal page shows to a client at `from`.
    let refused_from = |from: &'static str| {
        let (t, form) = (&t, &form);
        async move {
            let a = t
                .request_from(
                    ip(from),
                    "POST",
                    "/saml/acs",
                    Some(&[("SAMLResponse", form)]),
                    &[],
                    &[],
                )
                .await;
            assert_eq!(a.status, StatusCode::FORBIDDEN);
            assert!(a.body.len() < 4096, "page of {} bytes", a.body.len());
            let i = a.body.find("SG-").expect("a reference");
            a.body[i..i + 13].to_string()
        }
    };
    let mut references = Vec::new();
    for _ in 0..40 {
        references.push(refused_from(A).await);
    }
    let records = t.store.failures_recent(1000).await.expect("records");
    assert_eq!(records.len(), 5, "five records a minute for one client");
    for r in &records {
        let bytes = r.detail.len()
            + r.reference.len()
            + r.reason.len()
            + r.tenant.as_deref().map_or(0, str::len)
            + r.idp.as_deref().map_or(0, str::len);
        assert!(bytes <= 2048, "a record of {bytes} bytes");
        assert!(r.detail.contains("unknown_idp") || r.reason == "unknown_idp");
    }
    // Every reference a browser was shown can be looked up; the folded ones are counted.
    for r in &references {
        assert!(
            records.iter().any(|x| &x.reference == r),
            "reference {r} is not in the failure log"
        );
    }
    let folded: u64 = records.iter().map(|r| r.repeats).max().unwrap_or(0);
    assert!(
        folded >= 16,
        "the last record counts the folded refusals: {folded}"
    );
    // Another address is not affected by A's flood.
    assert!(!references.contains(&refused_from(B).await));
    assert_eq!(
        t.store.failures_recent(1000).await.expect("records").len(),
        6
    );
}

#[tokio::test]
async fn a_huge_login_post_or_slo_query_leaves_a_bounded_trace() {
    let t = TestApp::new(false).await;
    set_tenant(
        &t,
        "default",
        TenantInput {
            sso_enabled: Some(false),
            ..Default::default()
        },
    )
    .await;
    // 520 KB of user name: refused before it is read.
    let name = "x".repeat(520 * 1024);
    let a = t
        .request_from(
            ip(A),
            "POST",
            "/login",
            Some(&[("username", &name), ("password", "whatever1")]),
            &[],
            &[],
        )
        .await;
    assert_eq!(
        a.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        &a.body[..200.min(a.body.len())]
    );
    // A long name that fits is echoed at most 256 bytes.
    let name = format!("{}@example", "y".repeat(12_000));
    let a = t
        .request_from(
            ip(A),
            "POST",
            "/login",
            Some(&[("username", &name), ("password", "whatever1")]),
            &[],
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let f = failure(&t).await;
    assert_eq!(f.reason, "password_refused");
    assert!(f.detail.len() <= 1024, "{}", f.detail.len());
    assert!(!f.detail.contains(&"y".repeat(257)), "{}", f.detail);
    // A GET (an <img> on any page) with a huge garbage query.
    let q = format!("SAMLRequest={}", "A".repeat(60_000));
    let a = t
        .request_from(ip(A), "GET", &format!("/saml/slo?{q}"), None, &[], &[])
        .await;
    assert!(a.status.is_client_error(), "{}", a.status);
    let f = failure(&t).await;
    assert!(f.detail.len() <= 1024, "{}", f.detail.len());
}

// ------------------------------------------------------------------------------------------------
// Passwords

async fn password_tenant(t: &TestApp, users: usize) {
    set_tenant(
        t,
        "default",
        TenantInput {
            sso_enabled: Some(false),
            ..Default::default()
        },
    )
    .await;
    for i in 0..users {
        admin::user_add(
            t.store.as_ref(),
            &SeededRng::new(i as u64),
            "default",
            UserInput {
                username: Some(format!("agent{i}")),
                password: Some(Secret::new(format!("pass-{i}-correct"))),
                ..Default::default()
            },
        )
        .await
        .expect("user");
    }
}

async fn password_login(t: &TestApp, from: &str, user: &str, pw: &str) -> Answer {
    t.request_from(
        ip(from),
        "POST",
        "/login",
        Some(&[("username", user), ("password", pw)]),
        &[],
        &[],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_slow_down_only_their_user_and_address() {
    let t = TestApp::new(false).await;
    password_tenant(&t, 2).await;
    for _ in 0..5 {
        let a = password_login(&t, A, "agent0", "wrong-password").await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    }
    // The sixth wrong one sets a wait; during it even the right password is not checked.
    let a = password_login(&t, A, "agent0", "wrong-password").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = password_login(&t, A, "agent0", "pass-0-correct").await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
    assert!(a.headers.get("retry-after").is_some());
    assert_eq!(failure(&t).await.reason, "password_throttled");
    // From address B the same user signs in at once; from A another user does too.
    let a = password_login(&t, B, "agent0", "pass-0-correct").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let a = password_login(&t, A, "agent1", "pass-1-correct").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    // The wait grows with each further failure and ends by itself.
    t.clock.advance_secs(1);
    let a = password_login(&t, A, "agent0", "pass-0-correct").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_good_logins_from_one_address_within_a_minute_all_succeed() {
    let t = TestApp::with_config(Config::default()).await;
    // Single sign-on: every login from one contact center's NAT address.
    for i in 0..500 {
        let a = t.request_from(ip(A), "GET", "/login", None, &[], &[]).await;
        let pending = a
            .cookies
            .iter()
            .find(|c| c.starts_with("ssogate_rq_"))
            .map(|c| c.split(';').next().unwrap_or("").to_string())
            .expect("pending cookie");
        let loc = a.location.expect("to the IdP");
        let id = request_id_of(&loc);
        let a = t
            .request_from(
                ip(A),
                "POST",
                "/saml/acs",
                Some(&[(
                    "SAMLResponse",
                    &b64(&claiming("EXAMPLE\\jdoe", Some(&id), &format!("_nat-{i}"))),
                )]),
                &[&pending],
                &[],
            )
            .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "login {i}: {}", a.body);
    }
    // Passwords: 500 logins of 25 agents, all from the same address.
    let t = TestApp::with_config(Config::default()).await;
    password_tenant(&t, 25).await;
    for i in 0..500 {
        let u = i % 25;
        let a = password_login(&t, A, &format!("agent{u}"), &format!("pass-{u}-correct")).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "login {i}: {}", a.body);
    }
}

fn request_id_of(location: &str) -> String {
    use ssogate::saml::bindings::decode_redirect;
    let query = location.split_once('?').expect("query").1;
    let msg = decode_redirect(
        query,
        &ssogate::saml::xml::Limits::default(),
        ssogate::saml::xmldsig::AlgorithmPolicy::default(),
    )
    .expect("decodes");
    let xml = String::from_utf8(msg.xml).expect("utf-8");
    let i = xml.find(" ID=\"").expect("ID") + 5;
    xml[i..i + xml[i..].find('"').expect("quote")].to_string()
}

// ------------------------------------------------------------------------------------------------
// Logout, CSRF, and the order of the ACS checks

fn logout_request(id: &str, issued: ssogate::saml::UnixTime) -> String {
    let name_id = NameId {
        value: "jdoe@example.com".into(),
        format: Some("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into()),
        name_qualifier: None,
        sp_name_qualifier: None,
    };
    let slo = format!("{HOST}/saml/slo");
    let msg = LogoutRequestParams {
        id,
        issue_instant: issued,
        destination: &slo,
        // The issuer of this message is the IdP.
        sp_entity_id: IDP,
        name_id: &name_id,
        session_index: None,
        not_on_or_after: None,
    }
    .build();
    let k = &idp().key;
    msg.signed(k, k.default_algorithm(), None).expect("signs")
}

async fn sign_in_jdoe(t: &TestApp, n: usize) -> String {
    let (id, pending) = t.start_login("/login").await;
    let a = t
        .acs(
            &claiming("EXAMPLE\\jdoe", Some(&id), &format!("_in-{n}")),
            &[&pending],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    cookie(&a, "ssogate_session").expect("session")
}

async fn slo(t: &TestApp, xml: &str) -> Answer {
    t.post("/saml/slo", &[("SAMLRequest", &b64(xml))], &[])
        .await
}

#[tokio::test]
async fn a_captured_logout_request_ends_sessions_once_and_an_old_one_never() {
    let t = TestApp::new(false).await;
    let session = sign_in_jdoe(&t, 1).await;
    let captured = logout_request("_logout-1", generate::now());
    let a = slo(&t, &captured).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(
        t.get("/auth/check", &[&session]).await.status,
        StatusCode::UNAUTHORIZED
    );
    // The victim signs in again; the captured message played back changes nothing.
    let session = sign_in_jdoe(&t, 2).await;
    let a = slo(&t, &captured).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(failure(&t).await.reason, "logout_replayed");
    assert_eq!(
        t.get("/auth/check", &[&session]).await.status,
        StatusCode::OK
    );
    // A year-old LogoutRequest (no NotOnOrAfter) is refused, and so is one just over the age.
    let old = logout_request("_logout-2", generate::now().plus_secs(-365 * 86400));
    assert_eq!(slo(&t, &old).await.status, StatusCode::FORBIDDEN);
    assert_eq!(failure(&t).await.reason, "logout_too_old");
    let edge = logout_request("_logout-3", generate::now().plus_secs(-(180 + 600) - 1));
    assert_eq!(slo(&t, &edge).await.status, StatusCode::FORBIDDEN);
    assert_eq!(failure(&t).await.reason, "logout_too_old");
    let inside = logout_request("_logout-4", generate::now().plus_secs(-(180 + 600) + 1));
    assert_eq!(slo(&t, &inside).await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        t.get("/auth/check", &[&session]).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn forms_posted_from_elsewhere_are_refused_and_a_get_signs_no_one_out() {
    let t = TestApp::new(false).await;
    password_tenant(&t, 1).await;
    for origin in [
        "null",
        "https://sp.example.tes",
        "https://sp.example.test.evil.example",
        "http://sp.example.test",
        "https://sp.example.test:8443",
    ] {
        let a = t
            .request_from(
                ip(A),
                "POST",
                "/login",
                Some(&[("username", "agent0"), ("password", "pass-0-correct")]),
                &[],
                &[("origin", origin)],
            )
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{origin}");
        assert!(cookie(&a, "ssogate_session").is_none(), "{origin}");
        assert_eq!(failure(&t).await.reason, "cross_origin");
    }
    let a = t
        .request_from(
            ip(A),
            "POST",
            "/login",
            Some(&[("username", "agent0"), ("password", "pass-0-correct")]),
            &[],
            &[("origin", "https://sp.example.test")],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let session = cookie(&a, "ssogate_session").expect("session");
    // A cross-site GET of /logout (a link, an <img>) changes nothing.
    let g = t.get("/logout", &[&session]).await;
    assert_eq!(g.status, StatusCode::OK);
    assert_eq!(
        t.get("/auth/check", &[&session]).await.status,
        StatusCode::OK
    );
    // A logout POST from another origin is refused too.
    let p = t
        .request_from(
            ip(A),
            "POST",
            "/logout",
            Some(&[]),
            &[&session],
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert_eq!(
        t.get("/auth/check", &[&session]).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn no_forged_answer_can_spend_the_victims_request() {
    let t = TestApp::new(false).await;
    let (id, pending) = t.start_login("/login").await;
    // The attacker knows the victim's request ID, but not the IdP's key, nor the victim's cookie.
    let forged = [
        answering(&id).unsigned(),
        answering(&id).signed_assertion(generate::attacker()),
    ];
    for xml in &forged {
        let a = t.acs(xml, &[]).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        let a = t.acs(xml, &[&pending]).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
    }
    // A genuine answer carried to another browser does not spend it either.
    let genuine = claiming("EXAMPLE\\jdoe", Some(&id), "_victim");
    assert_eq!(t.acs(&genuine, &[]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(failure(&t).await.reason, "browser_binding_mismatch");
    // The victim's own answer still signs the victim in.
    let a = t.acs(&genuine, &[&pending]).await;
    assert_eq!(
        signed_in_as(&t, &a).await,
        Some(("jdoe".into(), "default".into())),
        "{}",
        a.body
    );
}

// ------------------------------------------------------------------------------------------------
// Interop: the IdP's own location for each binding

#[tokio::test]
async fn switching_the_binding_switches_to_the_idps_location_for_it() {
    let t = TestApp::new(false).await;
    let s: &dyn Store = t.store.as_ref();
    // Shibboleth publishes one location per binding; its POST SLO gets a ResponseLocation here.
    let metadata = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/idp-metadata/shibboleth.xml"
    ))
    .expect("fixture")
    .replace(
        "Location=\"https://idp.contoso.edu/idp/profile/SAML2/POST/SLO\"",
        "Location=\"https://idp.contoso.edu/idp/profile/SAML2/POST/SLO\" \
         ResponseLocation=\"https://idp.contoso.edu/idp/profile/SAML2/POST/SLO/Response\"",
    )
    .into_bytes();
    admin::idp_import(
        s,
        &metadata,
        None,
        IdpInput {
            name: Some("shib".into()),
            username: Some(USER_ATTR.into()),
            ..Default::default()
        },
    )
    .await
    .expect("import");
    let shib = admin::idp_find(s, "shib").await.expect("idp");
    assert_eq!(
        shib.sso_url,
        "https://idp.contoso.edu/idp/profile/SAML2/Redirect/SSO"
    );
    assert_eq!(
        shib.slo_url.as_deref(),
        Some("https://idp.contoso.edu/idp/profile/SAML2/Redirect/SLO")
    );
    let shib = admin::idp_set(
        s,
        "shib",
        IdpInput {
            sso_binding: Some("post".into()),
            slo_binding: Some("post".into()),
            ..Default::default()
        },
    )
    .await
    .expect("set");
    assert_eq!(
        shib.sso_url,
        "https://idp.contoso.edu/idp/profile/SAML2/POST/SSO"
    );
    assert_eq!(
        shib.slo_url.as_deref(),
        Some("https://idp.contoso.edu/idp/profile/SAML2/POST/SLO")
    );
    assert_eq!(
        shib.slo_response_url.as_deref(),
        Some("https://idp.contoso.edu/idp/profile/SAML2/POST/SLO/Response")
    );
    // The login now POSTs the AuthnRequest to the POST location.
    set_tenant(
        &t,
        "default",
        TenantInput {
            idp: Some("shib".into()),
            ..Default::default()
        },
    )
    .await;
    let a = t.get("/login", &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.body
            .contains("action=\"https://idp.contoso.edu/idp/profile/SAML2/POST/SSO\""),
        "{}",
        a.body
    );
    // And back.
    let shib = admin::idp_set(
        s,
        "shib",
        IdpInput {
            sso_binding: Some("redirect".into()),
            ..Default::default()
        },
    )
    .await
    .expect("set");
    assert_eq!(
        shib.sso_url,
        "https://idp.contoso.edu/idp/profile/SAML2/Redirect/SSO"
    );

    // An IdP configured by hand offers only what was given: another binding is refused, naming it.
    let e = admin::idp_set(
        s,
        "idp",
        IdpInput {
            sso_binding: Some("post".into()),
            ..Default::default()
        },
    )
    .await
    .expect_err("no POST location known");
    let m = e.to_string();
    assert!(
        m.contains("redirect binding only") && m.contains("--sso-url"),
        "{m}"
    );
    let idp_now = admin::idp_find(s, "idp").await.expect("idp");
    assert_eq!(idp_now.sso_binding.as_str(), "redirect", "nothing changed");
    // With its location, it is taken.
    let changed = admin::idp_set(
        s,
        "idp",
        IdpInput {
            sso_binding: Some("post".into()),
            sso_url: Some("https://idp.example.test/sso-post".into()),
            ..Default::default()
        },
    )
    .await
    .expect("set");
    assert_eq!(changed.sso_url, "https://idp.example.test/sso-post");
}

#[tokio::test]
async fn a_sha1_fingerprint_needs_the_legacy_switch() {
    let t = TestApp::new(false).await;
    let s: &dyn Store = t.store.as_ref();
    let sha1 = hex::encode(
        generate::idp()
            .cert
            .fingerprint(ssogate::saml::xmldsig::DigestAlgorithm::Sha1),
    );
    let input = |allow: Option<bool>| IdpInput {
        name: Some(format!("legacy{}", allow.is_some())),
        entity_id: Some(format!("https://legacy{}.example/", allow.is_some())),
        sso_url: Some("https://legacy.example/sso".into()),
        username: Some(USER_ATTR.into()),
        fingerprint: Some(format!("sha1:{sha1}")),
        allow_sha1: allow,
        ..Default::default()
    };
    let e = admin::idp_add(s, input(None)).await.expect_err("refused");
    assert!(e.to_string().contains("SHA-1"), "{e}");
    admin::idp_add(s, input(Some(true)))
        .await
        .expect("with the legacy switch");
    // The verifier holds to the same rule whatever the configuration says.
    let trust = ssogate::saml::xmldsig::IdpTrust::Fingerprint(
        ssogate::saml::xmldsig::Fingerprint::parse(&format!("sha1:{sha1}")).expect("fingerprint"),
    );
    let r = ssogate::saml::UnverifiedResponse::parse(
        unsolicited().signed_assertion(idp()).as_bytes(),
        &ssogate::saml::xml::Limits::default(),
    )
    .and_then(|u| u.verify(&trust, &ssogate::saml::VerifyOptions::default()));
    assert_eq!(r.err().map(|e| e.code()), Some("algorithm_forbidden"));
}

// ------------------------------------------------------------------------------------------------
// Secrets in Debug output

#[test]
fn debug_output_never_shows_a_secret() {
    use ssogate::web::pending::PendingRequest;
    let row = ssogate::store::SessionRow {
        id: "session-token-value-1234567890".into(),
        data: vec![],
        expires_at: generate::now(),
        agent: None,
    };
    let d = format!("{row:?}");
    assert!(!d.contains("session-token-value"), "{d}");
    let sp = ssogate::domain::ServiceProvider {
        id: ssogate::domain::SpId(1),
        entity_id: "https://sp".into(),
        host_url: "https://sp".into(),
        certificate_pem: None,
        private_key_pem: Some(Secret::new(
            "-----BEGIN PRIVATE KEY-----\nMIIsecret\n-----END PRIVATE KEY-----".into(),
        )),
        next_certificate_pem: None,
        next_private_key_pem: None,
        version: 1,
    };
    let d = format!("{sp:?}");
    assert!(!d.contains("MIIsecret"), "{d}");
    let p = PendingRequest {
        id: "_00112233445566778899aabbccddeeff".into(),
        sp_id: ssogate::domain::SpId(1),
        tenant_id: ssogate::domain::TenantId(1),
        idp_id: ssogate::domain::IdpId(1),
        relay_target: "/private/target".into(),
        expires_at: generate::now(),
    };
    let sealed = p.seal(&[1u8; 32]);
    let d = format!("{p:?}");
    assert!(
        !d.contains(&sealed) && !d.contains("/private/target"),
        "{d}"
    );
    let key = format!("{:?}", generate::idp().key);
    assert!(
        !key.contains("PRIVATE KEY") && !key.contains("MII"),
        "{key}"
    );
}
