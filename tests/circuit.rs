//! Circuit sign-on against a real OAuth 2.0 / OpenID Connect server (oidc-provider from npm, on
//! loopback over https with a certificate of the test's own CA; `tests/oauth-server/`).
//!
//! In a real browser (Debian's chromium, headless, driven by playwright-core from
//! `tests/browser/circuit.mjs`) against `ssogate serve`, set up with the CLI: tenant `acme` with
//! Circuit on (login page → Sign in with Circuit → the provider's login and consent → the portal
//! as the mapped user; `/auth/check` 200 with `X-Auth-Method: circuit`; Sign out → 401), the same
//! for an SSO tenant (its choice page) and with PKCE on, and a consent cancelled at the provider.
//!
//! In process, with a clock the tests set, the provider's pages walked with a cookie jar
//! (`common::oauth::walk`): each failure with its reason, page and record; two tenants on one
//! provider; OpenID Connect's ID token checks; tinyproxy as the HTTPS proxy; the start bound.
//!
//! Without Node.js 20 or `tests/oauth-server/node_modules` (and tinyproxy, and for the browser
//! flows chromium and `tests/browser/node_modules`) a test fails naming what is missing, unless
//! `SSOGATE_SKIP=oauth` (or `browser`); `./run-tests` installs them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::app::{Answer, HOST, TestApp, cookie};
use common::oauth::{App, OauthServer, walk};
use common::process::{Server, cli, free_port};
use ssogate::clock::Clock as _;
use ssogate::config::Config;
use ssogate::domain::Secret;
use ssogate::domain::admin::{self, TenantInput, UserInput};
use ssogate::domain::audit::Admin;
use ssogate::domain::circuit::CircuitInput;
use ssogate::rng::SeededRng;
use ssogate::store::Store as _;

const CALLBACK: &str = "https://sp.example.test/oauth/circuit/callback";
const SECRET: &str = "acme-client-secret-0123456789";

/// The tests' configuration: starts not bounded (one test checks the bound).
fn base() -> Config {
    Config {
        oauth_starts_per_minute: 10_000,
        ..Config::default()
    }
}

fn ready() -> bool {
    common::require("oauth", common::oauth::missing()).is_some()
}

/// The service (its clock at the real time: the provider's tokens carry real times), with tenant
/// `acme` (no SSO) and its user `kate` (Circuit user kate@acme.example).
async fn service(config: Config) -> TestApp {
    let t = TestApp::with_config(Config {
        outbound_allow_private: true,
        failure_records_per_minute: 100_000,
        ..config
    })
    .await;
    t.clock.set(ssogate::clock::SystemClock.now());
    tenant_with_user(&t, "acme", "kate", "kate@acme.example").await;
    t
}

async fn tenant_with_user(t: &TestApp, tenant: &str, user: &str, circuit_user: &str) {
    let s = t.store.as_ref();
    if admin::tenant_find(s, tenant).await.is_err() {
        admin::tenant_add(
            s,
            tenant,
            TenantInput {
                login_domains: Some(vec![format!("{tenant}.example")]),
                ..Default::default()
            },
        )
        .await
        .expect("tenant");
    }
    admin::user_add(
        s,
        &SeededRng::new(5),
        tenant,
        UserInput {
            username: Some(user.into()),
            circuit_user: Some(circuit_user.into()),
            ..Default::default()
        },
    )
    .await
    .expect("user");
}

fn admin_of(t: &TestApp) -> Admin<'_> {
    Admin {
        store: t.store.as_ref(),
        rng: t.state.rng.as_ref(),
        actor: "test".into(),
        now: t.clock.now(),
        on_change: None,
    }
}

/// Turns Circuit on for `tenant` with `client_id` at `server`, plus `more`.
async fn circuit_on(
    t: &TestApp,
    tenant: &str,
    client_id: &str,
    secret: &str,
    server: &OauthServer,
    portal: &str,
    more: CircuitInput,
) {
    admin_of(t)
        .circuit_set(
            &t.state.secrets,
            tenant,
            CircuitInput {
                enabled: Some(true),
                client_id: Some(client_id.into()),
                client_secret: Some(Secret::new(secret.into())),
                portal_url: Some(portal.into()),
                login_url: Some(server.issuer.clone()),
                ..more
            },
        )
        .await
        .expect("circuit settings");
}

/// Circuit on for tenant `acme` with its app at `server`, on the test app's portal, plus `more`.
async fn acme_on(t: &TestApp, server: &OauthServer, more: CircuitInput) {
    circuit_on(t, "acme", "acme-app", SECRET, server, HOST, more).await;
}

/// Changes tenant acme's settings.
async fn acme_set(t: &TestApp, input: CircuitInput) {
    admin_of(t)
        .circuit_set(&t.state.secrets, "acme", input)
        .await
        .expect("circuit settings");
}

/// "Sign in with Circuit" for acme and the provider's answer for `login` (consent granted or
/// cancelled): the answer's URL and the browser's binding cookie.
async fn answered(
    t: &TestApp,
    server: &OauthServer,
    login: &str,
    consent: bool,
) -> (String, String) {
    let (url, binding) = start(t, "acme").await;
    let answer = walk(
        &server.pki.ca_file,
        &server.issuer,
        &url,
        CALLBACK,
        login,
        consent,
    )
    .await;
    (answer, binding)
}

/// A sign-in of `login` for acme, consent granted, refused with `code` and `status`; its detail.
async fn refused_for(
    t: &TestApp,
    server: &OauthServer,
    login: &str,
    code: &str,
    status: StatusCode,
) -> String {
    let (answer, binding) = answered(t, server, login, true).await;
    assert_refused(t, &deliver(t, &answer, &[&binding]).await, code, status).await
}

/// The provider's answer for `login` (consent granted) to the authorization request `url`.
async fn walk_as(server: &OauthServer, url: &str, login: &str) -> String {
    walk(
        &server.pki.ca_file,
        &server.issuer,
        url,
        CALLBACK,
        login,
        true,
    )
    .await
}

/// A test app whose outbound client trusts the server's CA.
async fn with_server(
    dir_name: &str,
    apps: &[App],
    users: &[(&str, &str)],
    config: Config,
) -> (TestApp, OauthServer) {
    let dir = common::scratch_dir(dir_name);
    let server = OauthServer::start(&dir, apps, users);
    let t = service(Config {
        outbound_ca_file: Some(server.pki.ca_file.clone()),
        ..config
    })
    .await;
    (t, server)
}

fn acme_app() -> App {
    App::new("acme-app", SECRET, CALLBACK)
}

/// "Sign in with Circuit" for `tenant` on `host`: the provider URL and the binding cookie.
async fn start_on(
    t: &TestApp,
    host: &str,
    tenant: &str,
    binding: Option<&str>,
) -> (String, String) {
    let mut b = Request::post(format!("https://{host}/oauth/circuit/start"))
        .header(header::HOST, host)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = binding {
        b = b.header(header::COOKIE, c);
    }
    let a = t
        .send(
            b.body(Body::from(format!("tenant={tenant}&target=%2Fqueue")))
                .unwrap(),
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "start: {}", a.body);
    let binding = cookie(&a, "ssogate_oauth")
        .or_else(|| binding.map(str::to_string))
        .expect("the binding cookie");
    (a.location.clone().expect("location"), binding)
}

async fn start(t: &TestApp, tenant: &str) -> (String, String) {
    start_on(t, "sp.example.test", tenant, None).await
}

/// The provider's answer delivered to the service (on `host`) with `cookies`.
async fn deliver(t: &TestApp, url: &str, cookies: &[&str]) -> Answer {
    let (host, path) = url
        .trim_start_matches("https://")
        .split_once('/')
        .expect("a path");
    let mut b = Request::get(format!("https://{host}/{path}")).header(header::HOST, host);
    if !cookies.is_empty() {
        b = b.header(header::COOKIE, cookies.join("; "));
    }
    t.send(b.body(Body::empty()).unwrap()).await
}

fn reason(a: &Answer) -> Option<&'static str> {
    a.refusal.as_ref().map(|r| r.reason.code())
}

/// The newest failure record: (endpoint, tenant, provider, user, reason, detail).
async fn last_record(
    t: &TestApp,
) -> (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
) {
    let f = t
        .store
        .failures_recent(1)
        .await
        .unwrap()
        .into_iter()
        .next()
        .expect("a failure record");
    (f.endpoint, f.tenant, f.idp, f.username, f.reason, f.detail)
}

/// Refused with `code` and `status`, a failure record of endpoint `circuit` naming it, a page
/// with a reference.
async fn assert_refused(t: &TestApp, a: &Answer, code: &str, status: StatusCode) -> String {
    assert_eq!(reason(a), Some(code), "{} {}", a.status, a.body);
    assert_eq!(a.status, status, "{code}: {}", a.body);
    assert!(
        a.body.contains("SG-"),
        "the page shows a reference: {}",
        a.body
    );
    let (endpoint, _, _, _, r, detail) = last_record(t).await;
    assert_eq!(
        (endpoint.as_str(), r.as_str()),
        ("circuit", code),
        "{detail}"
    );
    detail
}

/// Signed in: the session cookie, `/auth/check` 200 with X-Auth-Method circuit for `user`.
async fn assert_signed_in(t: &TestApp, a: &Answer, tenant: &str, user: &str) -> String {
    assert_eq!(
        a.status,
        StatusCode::SEE_OTHER,
        "{:?} {}",
        reason(a),
        a.body
    );
    assert_eq!(a.location.as_deref(), Some(&*format!("{HOST}/queue")));
    let session = cookie(a, "ssogate_session").expect("a session");
    let check = t.get("/auth/check", &[&session]).await;
    assert_eq!(check.status, StatusCode::OK);
    let h = |n: &str| {
        check
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(h("x-auth-method"), "circuit");
    assert_eq!(h("x-auth-user"), user);
    assert_eq!(h("x-auth-tenant"), tenant);
    session
}

#[tokio::test]
async fn an_agent_signs_in_with_circuit_and_each_answer_is_taken_once() {
    if !ready() {
        return;
    }
    let (t, server) = with_server(
        "circuit-login",
        &[acme_app()],
        &[("kate", "KATE@acme.example")],
        base(),
    )
    .await;
    acme_on(&t, &server, CircuitInput::default()).await;
    let (url, binding) = start(&t, "acme").await;
    assert!(
        url.starts_with(&format!("{}/oauth/authorize?", server.issuer)),
        "{url}"
    );
    assert!(
        url.contains("scope=READ_USER_PROFILE") && !url.contains("code_challenge"),
        "{url}"
    );
    let answer = walk_as(&server, &url, "kate").await;
    let a = deliver(&t, &answer, &[&binding]).await;
    // The e-mail differs in case from the stored Circuit user: compared case-insensitively.
    let session = assert_signed_in(&t, &a, "acme", "kate").await;
    let timing = a
        .headers
        .get("server-timing")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        timing.contains("provider;dur=") && timing.contains("total;dur="),
        "{timing}"
    );
    // Logout is local: the session ends, /auth/check is 401.
    let out = t.post("/logout", &[], &[&session]).await;
    assert!(
        out.status.is_success() || out.status.is_redirection(),
        "{}",
        out.body
    );
    assert_eq!(
        t.get("/auth/check", &[&session]).await.status,
        StatusCode::UNAUTHORIZED
    );

    // The same answer again: its state was taken.
    let again = deliver(&t, &answer, &[&binding]).await;
    assert_refused(&t, &again, "state_invalid", StatusCode::BAD_REQUEST).await;
    // Its code with a fresh state of the same browser: the provider refuses a used code.
    let (url2, _) = start_on(&t, "sp.example.test", "acme", Some(&binding)).await;
    let state2 = url2
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let code = answer
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let replay = format!("{CALLBACK}?code={code}&state={state2}");
    let a = deliver(&t, &replay, &[&binding]).await;
    let detail = assert_refused(&t, &a, "token_exchange_failed", StatusCode::FORBIDDEN).await;
    assert!(
        detail.contains("HTTP 400") && detail.contains("invalid_grant"),
        "{detail}"
    );
    // No secret anywhere in what the service recorded or answered.
    for f in t.store.failures_recent(100).await.unwrap() {
        assert!(!f.detail.contains(SECRET), "{}", f.detail);
    }
}

#[tokio::test]
async fn with_pkce_and_http_basic_the_login_works_and_without_the_verifier_it_does_not() {
    if !ready() {
        return;
    }
    let mut app = acme_app();
    app.pkce = true;
    app.basic = true;
    let (t, server) = with_server(
        "circuit-pkce",
        &[app],
        &[("kate", "kate@acme.example")],
        base(),
    )
    .await;
    // PKCE off while the provider requires it: the provider refuses at the authorization step.
    acme_on(
        &t,
        &server,
        CircuitInput {
            token_auth: Some("basic".into()),
            ..Default::default()
        },
    )
    .await;
    let (url, _) = start(&t, "acme").await;
    let refused = walk_as(&server, &url, "kate").await;
    assert!(refused.contains("error=invalid_request"), "{refused}");
    // PKCE on: S256 challenge sent, verifier derived at the callback.
    acme_set(
        &t,
        CircuitInput {
            pkce: Some(true),
            ..Default::default()
        },
    )
    .await;
    let (url, binding) = start(&t, "acme").await;
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    let answer = walk_as(&server, &url, "kate").await;
    assert_signed_in(&t, &deliver(&t, &answer, &[&binding]).await, "acme", "kate").await;
}

#[tokio::test]
async fn each_failure_is_refused_with_its_reason_page_and_record() {
    if !ready() {
        return;
    }
    let users = [
        ("kate", "kate@acme.example"),
        ("stranger", "stranger@elsewhere.example"),
    ];
    let (t, mut server) = with_server("circuit-failures", &[acme_app()], &users, base()).await;
    acme_on(&t, &server, CircuitInput::default()).await;

    // Consent denied at the provider.
    let (answer, binding) = answered(&t, &server, "kate", false).await;
    assert!(answer.contains("error=access_denied"), "{answer}");
    let a = deliver(&t, &answer, &[&binding]).await;
    assert_refused(&t, &a, "consent_denied", StatusCode::FORBIDDEN).await;
    assert!(
        a.body.contains("Circuit sign-in was cancelled or refused"),
        "{}",
        a.body
    );
    let (_, tenant, provider, ..) = last_record(&t).await;
    assert_eq!(tenant.as_deref(), Some("acme"));
    assert!(provider.is_some_and(|p| p.contains("localhost")));

    // A tampered state, and one that is no state at all.
    let (answer, binding) = answered(&t, &server, "kate", true).await;
    let st = answer
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    let mut tampered = st.clone().into_bytes();
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    let bad = answer.replace(&st, std::str::from_utf8(&tampered).unwrap());
    assert_refused(
        &t,
        &deliver(&t, &bad, &[&binding]).await,
        "state_invalid",
        StatusCode::BAD_REQUEST,
    )
    .await;
    let junk = answer.replace(&st, "%3Cscript%3E");
    assert_refused(
        &t,
        &deliver(&t, &junk, &[&binding]).await,
        "state_invalid",
        StatusCode::BAD_REQUEST,
    )
    .await;
    // Oversized and repeated parameters.
    let long = format!("{CALLBACK}?code={}&state={st}", "c".repeat(3000));
    assert_refused(
        &t,
        &deliver(&t, &long, &[&binding]).await,
        "state_invalid",
        StatusCode::BAD_REQUEST,
    )
    .await;
    let twice = format!("{answer}&state={st}");
    assert_refused(
        &t,
        &deliver(&t, &twice, &[&binding]).await,
        "state_invalid",
        StatusCode::BAD_REQUEST,
    )
    .await;

    // From another browser (no binding cookie; another one): refused, and the state is spent.
    let a = deliver(&t, &answer, &[]).await;
    assert_refused(&t, &a, "state_other_browser", StatusCode::FORBIDDEN).await;
    let (answer, binding) = answered(&t, &server, "kate", true).await;
    let (_, other) = start(&t, "acme").await;
    assert_ne!(other, binding);
    assert_refused(
        &t,
        &deliver(&t, &answer, &[&other]).await,
        "state_other_browser",
        StatusCode::FORBIDDEN,
    )
    .await;

    // Expired: answered 10 minutes and a second after the start (the clock moved, not waited).
    let (answer, binding) = answered(&t, &server, "kate", true).await;
    t.clock.advance_secs(601);
    assert_refused(
        &t,
        &deliver(&t, &answer, &[&binding]).await,
        "state_expired",
        StatusCode::FORBIDDEN,
    )
    .await;
    t.clock.set(ssogate::clock::SystemClock.now());

    // An e-mail no user of the tenant has: named in the record.
    let detail = refused_for(
        &t,
        &server,
        "stranger",
        "unknown_circuit_user",
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(detail.contains("stranger@elsewhere.example"), "{detail}");
    assert_eq!(
        last_record(&t).await.3.as_deref(),
        Some("stranger@elsewhere.example")
    );

    // A profile larger than 64 KiB.
    let detail = refused_for(
        &t,
        &server,
        "oversized",
        "profile_invalid",
        StatusCode::FAILED_DEPENDENCY,
    )
    .await;
    assert!(detail.contains("65536"), "{detail}");

    // A wrong client secret.
    acme_set(
        &t,
        CircuitInput {
            client_secret: Some(Secret::new("not-the-secret".into())),
            ..Default::default()
        },
    )
    .await;
    let detail = refused_for(
        &t,
        &server,
        "kate",
        "token_exchange_failed",
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(
        detail.contains("HTTP 401") && detail.contains("invalid_client"),
        "{detail}"
    );
    assert!(!detail.contains("not-the-secret"), "{detail}");
    acme_set(
        &t,
        CircuitInput {
            client_secret: Some(Secret::new(SECRET.into())),
            ..Default::default()
        },
    )
    .await;

    // The provider stopped (SIGSTOP) after the agent signed in: no answer within the 10 s limit.
    let (answer, binding) = answered(&t, &server, "kate", true).await;
    server.pause();
    let began = Instant::now();
    let a = deliver(&t, &answer, &[&binding]).await;
    let took = began.elapsed();
    server.resume();
    assert_refused(&t, &a, "provider_timeout", StatusCode::FAILED_DEPENDENCY).await;
    assert!(took <= Duration::from_secs(11), "answered after {took:?}");

    // The provider gone: its port refuses.
    let (answer, binding) = answered(&t, &server, "kate", true).await;
    server.stop();
    let detail = assert_refused(
        &t,
        &deliver(&t, &answer, &[&binding]).await,
        "provider_unreachable",
        StatusCode::FAILED_DEPENDENCY,
    )
    .await;
    assert!(detail.contains("token call"), "{detail}");

    // Circuit off: the start is refused; none of the refusals above was a 5xx of our own.
    acme_set(
        &t,
        CircuitInput {
            enabled: Some(false),
            ..Default::default()
        },
    )
    .await;
    let a = t
        .post("/oauth/circuit/start", &[("tenant", "acme")], &[])
        .await;
    assert_refused(&t, &a, "circuit_disabled", StatusCode::FORBIDDEN).await;
    let a = t.get("/oauth/circuit/callback", &[]).await;
    assert_refused(&t, &a, "state_invalid", StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn two_tenants_on_one_provider_stay_apart() {
    if !ready() {
        return;
    }
    const B_HOST: &str = "https://b.example.test";
    let b_callback = format!("{B_HOST}/oauth/circuit/callback");
    let apps = [
        acme_app(),
        App::new("globex-app", "globex-client-secret-987", &b_callback),
    ];
    let (t, server) = with_server(
        "circuit-tenants",
        &apps,
        &[("sam", "sam@shared.example")],
        base(),
    )
    .await;
    // A second portal for tenant globex; the same Circuit e-mail in both tenants.
    admin::sp_add(
        t.store.as_ref(),
        &SeededRng::new(1),
        admin::SpInput {
            host_url: B_HOST.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    tenant_with_user(&t, "acme", "sam-a", "sam@shared.example").await;
    tenant_with_user(&t, "globex", "sam-b", "SAM@shared.example").await;
    acme_on(&t, &server, CircuitInput::default()).await;
    circuit_on(
        &t,
        "globex",
        "globex-app",
        "globex-client-secret-987",
        &server,
        B_HOST,
        CircuitInput::default(),
    )
    .await;

    // Each lands in their own tenant only.
    let (url, binding) = start_on(&t, "sp.example.test", "acme", None).await;
    let answer = walk_as(&server, &url, "sam").await;
    assert_signed_in(
        &t,
        &deliver(&t, &answer, &[&binding]).await,
        "acme",
        "sam-a",
    )
    .await;
    let (url, binding_b) = start_on(&t, "b.example.test", "globex", None).await;
    let answer_b = walk(
        &server.pki.ca_file,
        &server.issuer,
        &url,
        &b_callback,
        "sam",
        true,
    )
    .await;
    let a = deliver(&t, &answer_b, &[&binding_b]).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.location.as_deref(), Some(&*format!("{B_HOST}/queue")));

    // Tenant acme's state at tenant globex's callback: refused.
    let (url, binding) = start_on(&t, "sp.example.test", "acme", None).await;
    let answer = walk_as(&server, &url, "sam").await;
    let moved = answer.replace(HOST, B_HOST);
    let detail = assert_refused(
        &t,
        &deliver(&t, &moved, &[&binding]).await,
        "state_invalid",
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(detail.contains("acme"), "{detail}");
    // A start for globex on acme's portal goes to globex's own portal first.
    let a = t
        .post("/oauth/circuit/start", &[("tenant", "globex")], &[])
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(
        a.location
            .as_deref()
            .unwrap_or("")
            .starts_with(&format!("{B_HOST}/t/globex/login")),
        "{:?}",
        a.location
    );
}

#[tokio::test]
async fn openid_connect_logins_check_the_id_token() {
    if !ready() {
        return;
    }
    let mut users = vec![("kate", "kate@acme.example")];
    let tampers = [
        ("tamper-signature", "id_token_invalid"),
        ("tamper-aud", "id_token_audience"),
        ("tamper-expired", "id_token_expired"),
        ("tamper-nonce", "id_token_nonce"),
    ];
    for (login, _) in tampers {
        users.push((login, "kate@acme.example"));
    }
    let (t, server) = with_server("circuit-oidc", &[acme_app()], &users, base()).await;
    acme_on(
        &t,
        &server,
        CircuitInput {
            kind: Some("oidc".into()),
            ..Default::default()
        },
    )
    .await;
    let c = ssogate::domain::circuit::circuit_get(t.store.as_ref(), "acme")
        .await
        .unwrap();
    assert_eq!(
        (c.scope.as_str(), c.profile_field.as_str()),
        ("openid email", "email")
    );
    let (url, binding) = start(&t, "acme").await;
    assert!(
        url.contains("nonce=") && url.contains("scope=openid+email"),
        "{url}"
    );
    let answer = walk_as(&server, &url, "kate").await;
    assert_signed_in(&t, &deliver(&t, &answer, &[&binding]).await, "acme", "kate").await;
    for (login, code) in tampers {
        let (answer, binding) = answered(&t, &server, login, true).await;
        let a = deliver(&t, &answer, &[&binding]).await;
        assert_eq!(reason(&a), Some(code), "{login}: {}", a.body);
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{login}");
        assert!(cookie(&a, "ssogate_session").is_none(), "{login} signed in");
    }
}

/// tinyproxy on loopback (foreground), logging to `dir/tinyproxy.log`; killed when dropped.
struct Tinyproxy {
    child: std::process::Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Tinyproxy {
    fn start(dir: &std::path::Path, connect_port: u16) -> Tinyproxy {
        let port = free_port();
        let log = dir.join("tinyproxy.log");
        let conf = dir.join("tinyproxy.conf");
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{}\"\nLogLevel Info\nMaxClients 64\n\
                 Allow 127.0.0.1\nConnectPort {connect_port}\nDisableViaHeader Yes\n",
                log.display()
            ),
        )
        .unwrap();
        let child = std::process::Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("tinyproxy starts");
        assert!(
            common::process::wait_for_port(port, Duration::from_secs(10)),
            "tinyproxy did not listen"
        );
        Tinyproxy { child, port, log }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn through_an_https_proxy_the_provider_calls_are_connects() {
    if !ready()
        || common::require(
            "oauth",
            common::missing_programs(&[("tinyproxy", "tinyproxy")]),
        )
        .is_none()
    {
        return;
    }
    let dir = common::scratch_dir("circuit-proxy");
    let server = OauthServer::start(&dir, &[acme_app()], &[("kate", "kate@acme.example")]);
    let mut proxy = Tinyproxy::start(&dir, server.port);
    let t = service(Config {
        outbound_ca_file: Some(server.pki.ca_file.clone()),
        outbound_proxy: Some(format!("http://127.0.0.1:{}", proxy.port)),
        ..base()
    })
    .await;
    acme_on(&t, &server, CircuitInput::default()).await;
    let (answer, binding) = answered(&t, &server, "kate", true).await;
    assert_signed_in(&t, &deliver(&t, &answer, &[&binding]).await, "acme", "kate").await;
    let log = std::fs::read_to_string(&proxy.log).unwrap_or_default();
    let connects = log
        .lines()
        .filter(|l| l.contains(&format!("CONNECT localhost:{}", server.port)))
        .count();
    assert!(
        connects >= 1,
        "no CONNECT to the provider in tinyproxy's log:\n{log}"
    );
    // The proxy gone: the provider cannot be reached.
    proxy.stop();
    let detail = refused_for(
        &t,
        &server,
        "kate",
        "provider_unreachable",
        StatusCode::FAILED_DEPENDENCY,
    )
    .await;
    assert!(detail.contains("token call"), "{detail}");
}

#[tokio::test]
async fn circuit_starts_are_bounded_per_client() {
    if !ready() {
        return;
    }
    let (t, server) = with_server(
        "circuit-starts",
        &[acme_app()],
        &[],
        Config {
            oauth_starts_per_minute: 3,
            ..Config::default()
        },
    )
    .await;
    acme_on(&t, &server, CircuitInput::default()).await;
    let from = |last: u8| std::net::IpAddr::from([192, 0, 2, last]);
    async fn start_from(t: &TestApp, addr: std::net::IpAddr) -> Answer {
        t.request_from(
            addr,
            "POST",
            "/oauth/circuit/start",
            Some(&[("tenant", "acme")]),
            &[],
            &[],
        )
        .await
    }
    for _ in 0..3 {
        let a = t
            .request_from(
                from(1),
                "POST",
                "/oauth/circuit/start",
                Some(&[("tenant", "acme")]),
                &[],
                &[],
            )
            .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    }
    let a = start_from(&t, from(1)).await;
    assert_refused(
        &t,
        &a,
        "circuit_start_limited",
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    assert!(a.headers.get("retry-after").is_some());
    // Another client is not held up; a minute later the first starts again.
    let a = start_from(&t, from(2)).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    t.clock.advance_secs(60);
    let a = start_from(&t, from(1)).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    // Four pending requests stored; expired ones are purged.
    t.clock.advance_secs(601);
    let purged = t
        .store
        .purge_expired(t.clock.now(), 100, 1_000_000)
        .await
        .unwrap();
    assert!(purged >= 3, "purged {purged}");
}

/// Circuit on for `tenant` with a provider that is never called (the pages only link to it).
async fn circuit_on_paper(t: &TestApp, tenant: &str) {
    admin_of(t)
        .circuit_set(
            &t.state.secrets,
            tenant,
            CircuitInput {
                enabled: Some(true),
                client_id: Some("app".into()),
                client_secret: Some(Secret::new("paper-secret".into())),
                portal_url: Some(HOST.into()),
                login_url: Some("https://eu.yourcircuit.com".into()),
                ..Default::default()
            },
        )
        .await
        .expect("circuit settings");
}

#[tokio::test]
async fn login_pages_offer_circuit_where_the_tenant_has_it() {
    // Several tenants: acme (password and Circuit), default (SSO and Circuit).
    let t = TestApp::new(true).await;
    tenant_with_user(&t, "acme", "kate", "kate@acme.example").await;
    let a = t.get("/t/acme/login", &[]).await;
    assert!(!a.body.contains("Sign in with Circuit"), "Circuit is off");
    circuit_on_paper(&t, "acme").await;
    let a = t.get("/t/acme/login?target=%2Fqueue", &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("id=\"circuit-sign-in\""), "{}", a.body);
    assert!(
        a.body.contains("name=\"tenant\" value=\"acme\"") && a.body.contains("value=\"/queue\"")
    );
    assert!(
        a.body.contains("id=\"password\""),
        "the password form stays"
    );
    // Without a tenant in the path: once the login name's domain names acme.
    let a = t.get("/login", &[]).await;
    assert!(!a.body.contains("circuit-sign-in"));
    let a = t
        .post(
            "/login",
            &[("username", "kate@acme.example"), ("password", "")],
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(
        a.body.contains("id=\"circuit-sign-in\"") && a.body.contains("Sign in to acme"),
        "{}",
        a.body
    );
    // The SSO tenant: the choice instead of the IdP at once; its company sign-on goes on.
    let a = t.get("/t/default/login", &[]).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "SSO alone goes to the IdP");
    circuit_on_paper(&t, "default").await;
    let a = t.get("/t/default/login", &[]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains("id=\"company-sign-on\"") && a.body.contains("id=\"circuit-sign-in\""));
    let (id, _) = t.start_login("/t/default/login?sso=1").await;
    assert!(id.starts_with('_'));
    // A start posted from another site is refused.
    let a = t
        .request_from(
            std::net::IpAddr::from([192, 0, 2, 9]),
            "POST",
            "/oauth/circuit/start",
            Some(&[("tenant", "acme")]),
            &[],
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(reason(&a), Some("cross_origin"));
    // An unknown tenant.
    let a = t
        .post("/oauth/circuit/start", &[("tenant", "nosuch")], &[])
        .await;
    assert_eq!(reason(&a), Some("unknown_tenant"));
}

// The browser flows.

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn browser_missing() -> Option<String> {
    let chromium = std::env::var("SSOGATE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!("{chromium} is missing (apt-get install chromium)"));
    }
    if !browser_dir().join("node_modules/playwright-core").exists() {
        return Some(
            "tests/browser/node_modules is missing (npm ci --prefix tests/browser)".into(),
        );
    }
    None
}

/// One run of the browser script: (passed, failed, output).
fn run_browser(args: &[&str], artifacts: &Path) -> (usize, usize, String) {
    let out = Command::new("node")
        .arg(browser_dir().join("circuit.mjs"))
        .args(args)
        .env("SSOGATE_ARTIFACTS", artifacts)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let counts: Vec<usize> = stdout
        .lines()
        .last()
        .unwrap_or("")
        .split([' ', ','])
        .filter_map(|w| w.parse().ok())
        .collect();
    let (p, f) = match counts.as_slice() {
        [p, f] => (*p, *f),
        _ => (0, 1),
    };
    (
        p,
        f,
        format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn agents_sign_in_with_circuit_in_a_real_browser() {
    if common::require("browser", browser_missing()).is_none()
        || common::require("oauth", common::oauth::missing()).is_none()
    {
        return;
    }
    let dir = common::scratch_dir("circuit-browser");
    let data = dir.join("data");
    let artifacts = std::env::var("SSOGATE_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| dir.join("artifacts"));
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let callback = format!("{base}/oauth/circuit/callback");
    let mut pkce_app = App::new("pkce-app", "pkce-client-secret-555", &callback);
    pkce_app.pkce = true;
    let server = OauthServer::start(
        &dir.join("oauth"),
        &[
            App::new("acme-app", "acme-client-secret-111", &callback),
            App::new("globex-app", "globex-client-secret-222", &callback),
            pkce_app,
        ],
        &[
            ("kate", "kate@acme.example"),
            ("gina", "gina@globex.example"),
            ("pete", "pete@pkce.example"),
        ],
    );
    let config = dir.join("ssogate.toml");
    std::fs::write(
        &config,
        format!(
            "outbound_ca_file = {:?}\noutbound_allow_private = true\n",
            server.pki.ca_file.to_string_lossy()
        ),
    )
    .unwrap();
    let ssogate = Server::start_with(&data, port, &dir.join("server.log"), Some(&config));
    // An IdP for the SSO tenant (never reached: the test only sees the choice and its link).
    cli(
        &data,
        &[
            "idp",
            "add",
            "corp",
            "--entity-id",
            "https://idp.corp.example",
            "--sso-url",
            "https://idp.corp.example/sso",
            "--username-claim",
            "NameID",
            "--fingerprint",
            &format!("sha256:{}", "ab".repeat(32)),
        ],
    );
    for (tenant, user, circuit_user, app, secret, extra) in [
        (
            "acme",
            "kate",
            "kate@acme.example",
            "acme-app",
            "acme-client-secret-111",
            vec![],
        ),
        (
            "globex",
            "gina",
            "gina@globex.example",
            "globex-app",
            "globex-client-secret-222",
            vec![],
        ),
        (
            "pkceco",
            "pete",
            "pete@pkce.example",
            "pkce-app",
            "pkce-client-secret-555",
            vec!["--pkce", "on"],
        ),
    ] {
        let mut add = vec!["tenant", "add", tenant, "--login-domain"];
        let domain = format!("{tenant}.example");
        add.push(&domain);
        if tenant == "globex" {
            add.extend(["--sso", "on", "--idp", "corp"]);
        }
        cli(&data, &add);
        cli(
            &data,
            &[
                "user",
                "add",
                user,
                "--tenant",
                tenant,
                "--circuit-user",
                circuit_user,
            ],
        );
        let secret_file = dir.join(format!("{tenant}.secret"));
        std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
        let mut set = vec![
            "circuit",
            "set",
            tenant,
            "--enabled",
            "on",
            "--client-id",
            app,
            "--client-secret-file",
            secret_file.to_str().unwrap(),
            "--portal-url",
            &base,
            "--login-url",
            &server.issuer,
        ];
        set.extend(extra);
        let out = cli(&data, &set);
        assert!(
            out.contains("client secret: *****") && !out.contains(secret),
            "{out}"
        );
    }
    let mut passed = 0;
    let mut report = String::new();
    for (tenant, login, user, more) in [
        ("acme", "kate", "kate", vec![]),
        ("globex", "gina", "gina", vec!["--choice", "yes"]),
        ("pkceco", "pete", "pete", vec![]),
        ("acme", "kate", "kate", vec!["--deny", "yes"]),
    ] {
        let mut args = vec![
            "login",
            "--base",
            &base,
            "--provider",
            &server.issuer,
            "--tenant",
            tenant,
            "--login",
            login,
            "--user",
            user,
            "--out",
        ];
        let out = dir.to_string_lossy().into_owned();
        args.push(&out);
        args.extend(more);
        let (p, f, text) = run_browser(&args, &artifacts);
        report.push_str(&text);
        assert_eq!(
            f,
            0,
            "browser run for {tenant} failed:\n{text}\n--- server log ---\n{}",
            ssogate.tail(30)
        );
        passed += p;
    }
    println!("{report}");
    // The client secrets reached neither the log nor the pages' text.
    let log = ssogate.output();
    for s in [
        "acme-client-secret-111",
        "globex-client-secret-222",
        "pkce-client-secret-555",
    ] {
        assert!(!log.contains(s), "the server log carries a client secret");
    }
    common::record_cases("circuit-browser", passed);
}
