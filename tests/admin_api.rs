//! The Web Manager's access rules and the JSON API, in process: sign-in (local password only,
//! throttled, the one-time password replaced first), the session cookie and its timeouts, CSRF,
//! the authorisation of every route for every kind of caller, validation with the field named,
//! stale versions, API tokens kept hashed, no secret in any answer, and the OpenAPI document
//! against the router.

mod common;

use std::collections::BTreeSet;

use axum::http::StatusCode;
use common::admin::{
    Auth, ROOT_PASSWORD, add_user, call, call_with, form, json, page, root, session, sign_in,
};
use common::app::{Answer, TestApp, answering, cookie};
use common::generate::idp;
use serde_json::{Value, json};
use ssogate::domain::admin;
use ssogate::rng::SeededRng;
use ssogate::store::Store;

#[tokio::test]
async fn the_one_time_password_is_replaced_before_anything_else() {
    let t = TestApp::new(false).await;
    // `serve`'s first start: `admin` with a one-time password.
    let store: std::sync::Arc<dyn Store> = t.store.clone();
    admin::user_rm(t.store.as_ref(), "default", "jdoe")
        .await
        .ok();
    let (user, password) = admin::bootstrap(&store, &SeededRng::new(5))
        .await
        .expect("bootstrap")
        .expect("an administrator is created");
    let a = sign_in(&t, &user, "", &password).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.location.as_deref(), Some("/webmanager/password"));
    let set = a
        .cookies
        .iter()
        .find(|c| c.starts_with("ssogate_admin="))
        .expect("cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let c = cookie(&a, "ssogate_admin").expect("cookie");
    let me = json(
        &call(
            &t,
            "GET",
            "/api/v1/me",
            None,
            &Auth::SessionNoCsrf { cookie: c.clone() },
        )
        .await,
    );
    assert_eq!(me["must_change_password"], true);
    let csrf = me["csrf_token"].as_str().expect("csrf").to_string();
    let s = Auth::Session {
        cookie: c.clone(),
        csrf: csrf.clone(),
    };
    // Every page but the password form sends it there; the API refuses.
    let p = page(&t, "/webmanager/sps", &s).await;
    assert_eq!(p.location.as_deref(), Some("/webmanager/password"));
    let api = call(&t, "GET", "/api/v1/sps", None, &s).await;
    assert_eq!(api.status, StatusCode::FORBIDDEN);
    assert_eq!(json(&api)["error"], "password_change_required");
    // Without the CSRF token: refused, nothing changed.
    let no = form(
        &t,
        "/webmanager/password",
        &[
            ("password", "a-new-password"),
            ("confirm", "a-new-password"),
        ],
        &s,
        false,
    )
    .await;
    assert_eq!(no.status, StatusCode::FORBIDDEN);
    // Two different passwords: the message beside the second field; nothing changed.
    let diff = form(
        &t,
        "/webmanager/password",
        &[("password", "a-new-password"), ("confirm", "another-one")],
        &s,
        true,
    )
    .await;
    assert_eq!(diff.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(diff.body.contains("id=\"error-confirm\""), "{}", diff.body);
    assert!(
        !diff.body.contains("a-new-password"),
        "a password came back in the page"
    );
    let short = form(
        &t,
        "/webmanager/password",
        &[("password", "short"), ("confirm", "short")],
        &s,
        true,
    )
    .await;
    assert!(
        short.body.contains("id=\"error-password\""),
        "{}",
        short.body
    );
    let ok = form(
        &t,
        "/webmanager/password",
        &[
            ("password", "a-new-password"),
            ("confirm", "a-new-password"),
        ],
        &s,
        true,
    )
    .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert_eq!(page(&t, "/webmanager/sps", &s).await.status, StatusCode::OK);
    // The one-time password no longer works; the new one does.
    assert_eq!(
        sign_in(&t, &user, "", &password).await.status,
        StatusCode::UNAUTHORIZED
    );
    let again = sign_in(&t, &user, "default", "a-new-password").await;
    assert_eq!(again.location.as_deref(), Some("/webmanager/"));
    // The audit log says who changed the password (never the password).
    let audit = t
        .store
        .audit_list(Some("user:default/admin"), None, 10)
        .await
        .expect("audit");
    assert!(
        audit
            .iter()
            .any(|e| e.action == "user.password" && e.actor == "user:default/admin")
    );
}

#[tokio::test]
async fn sessions_get_a_new_id_end_when_idle_or_old_and_at_sign_out() {
    let t = TestApp::new(false).await;
    let s1 = root(&t).await;
    let s2 = session(&t, "root", "default", ROOT_PASSWORD).await;
    let (
        Auth::Session { cookie: c1, .. },
        Auth::Session {
            cookie: c2,
            csrf: x2,
        },
    ) = (&s1, &s2)
    else {
        unreachable!()
    };
    assert_ne!(c1, c2, "each sign-in gets a new session ID");
    // 29 minutes idle: still in; 31 more: out.
    t.clock.advance_secs(29 * 60);
    assert_eq!(
        call(&t, "GET", "/api/v1/me", None, &s2).await.status,
        StatusCode::OK
    );
    t.clock.advance_secs(31 * 60);
    assert_eq!(
        call(&t, "GET", "/api/v1/me", None, &s2).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        page(&t, "/webmanager/sps", &s2).await.location.as_deref(),
        Some("/webmanager/signin")
    );
    // Active all the time: out after 8 hours all the same.
    let s3 = session(&t, "root", "default", ROOT_PASSWORD).await;
    for _ in 0..23 {
        t.clock.advance_secs(20 * 60);
        assert_eq!(
            call(&t, "GET", "/api/v1/me", None, &s3).await.status,
            StatusCode::OK
        );
    }
    t.clock.advance_secs(20 * 60 + 1);
    assert_eq!(
        call(&t, "GET", "/api/v1/me", None, &s3).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Sign-out ends the session at once (and needs the CSRF token).
    let s4 = session(&t, "root", "default", ROOT_PASSWORD).await;
    let Auth::Session { cookie: c4, .. } = &s4 else {
        unreachable!()
    };
    let no = form(
        &t,
        "/webmanager/signout",
        &[],
        &Auth::SessionNoCsrf { cookie: c4.clone() },
        false,
    )
    .await;
    assert_eq!(no.status, StatusCode::FORBIDDEN);
    let out = form(&t, "/webmanager/signout", &[], &s4, true).await;
    assert_eq!(out.location.as_deref(), Some("/webmanager/signin"));
    assert_eq!(
        call(&t, "GET", "/api/v1/me", None, &s4).await.status,
        StatusCode::UNAUTHORIZED
    );
    let _ = x2;
}

#[tokio::test]
async fn a_portal_session_never_opens_the_web_manager() {
    let t = TestApp::new(false).await;
    // jdoe is a central administrator who signs in to the portal by SAML.
    admin::user_set(
        t.store.as_ref(),
        &SeededRng::new(1),
        "default",
        "jdoe",
        admin::UserInput {
            roles: Some(vec!["agent".into(), "central-admin".into()]),
            ..Default::default()
        },
    )
    .await
    .expect("role");
    let (id, binding) = t.start_login("/login").await;
    let a = t
        .acs(&answering(&id).signed_assertion(idp()), &[&binding])
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let portal = Auth::Cookie(cookie(&a, "ssogate_session").expect("portal session"));
    assert_eq!(
        call(&t, "GET", "/api/v1/sps", None, &portal).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        page(&t, "/webmanager/sps", &portal)
            .await
            .location
            .as_deref(),
        Some("/webmanager/signin")
    );
    // And jdoe has no password: the Web Manager's sign-in refuses whatever is typed.
    assert_eq!(
        sign_in(&t, "jdoe", "default", "anything-at-all")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn admin_sign_in_is_throttled_per_user_and_address() {
    let t = TestApp::new(false).await;
    add_user(&t, "default", "root", ROOT_PASSWORD, &["central-admin"]).await;
    let a: std::net::IpAddr = "192.0.2.10".parse().unwrap();
    let b: std::net::IpAddr = "192.0.2.20".parse().unwrap();
    let attempt = |from, pw: &'static str| {
        let t = &t;
        async move {
            t.request_from(
                from,
                "POST",
                "/webmanager/signin",
                Some(&[("username", "root"), ("password", pw)]),
                &[],
                &[],
            )
            .await
        }
    };
    for _ in 0..5 {
        let r = attempt(a, "wrong-password").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.refusal.as_ref().map(|r| r.reason.code()),
            Some("password_refused")
        );
    }
    // The sixth from A waits; the right password from B goes in at once.
    let r = attempt(a, "wrong-password").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = attempt(a, ROOT_PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert_eq!(
        r.refusal.as_ref().map(|r| r.reason.code()),
        Some("password_throttled")
    );
    assert!(r.headers.get("retry-after").is_some());
    let ok = attempt(b, ROOT_PASSWORD).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    // Each refusal is in the failure log with the name it tried and a reference.
    let f = t.store.failures_recent(10).await.expect("failures");
    assert!(
        f.iter()
            .any(|f| f.endpoint == "webmanager" && f.username.as_deref() == Some("root"))
    );
    // An agent with a password may not use the Web Manager.
    add_user(&t, "default", "kate", "kates-password", &["agent"]).await;
    let r = sign_in(&t, "kate", "", "kates-password").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.refusal.as_ref().map(|r| r.reason.code()),
        Some("admin_not_allowed")
    );
    assert!(r.body.contains("may not use the Web Manager"), "{}", r.body);
}

/// Every `.route("path", methods)` of a router source: (path, METHOD).
fn routes_in(source: &str, prefix: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for chunk in source.split(".route(").skip(1) {
        let Some(path) = chunk
            .trim_start()
            .strip_prefix('"')
            .and_then(|r| r.split('"').next())
        else {
            continue;
        };
        // The methods: up to the next route (or the end of the chain).
        let rest = chunk.split(";").next().unwrap_or(chunk);
        for (token, method) in [
            ("get(", "GET"),
            ("post(", "POST"),
            ("put(", "PUT"),
            ("delete(", "DELETE"),
        ] {
            let found = rest.match_indices(token).any(|(i, _)| {
                i == 0
                    || !rest.as_bytes()[i - 1].is_ascii_alphanumeric()
                        && rest.as_bytes()[i - 1] != b'_'
            });
            if found {
                out.insert((format!("{prefix}{path}"), method.to_string()));
            }
        }
    }
    out
}

fn source(p: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(p))
        .expect("source")
}

fn api_routes() -> BTreeSet<(String, String)> {
    routes_in(&source("src/web/admin/api.rs"), "/api/v1")
}

fn ui_routes() -> BTreeSet<(String, String)> {
    routes_in(&source("src/web/admin/ui.rs"), "/webmanager")
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_only_those() {
    let t = TestApp::new(false).await;
    let doc = call(&t, "GET", "/api/v1/openapi.json", None, &Auth::None).await;
    assert_eq!(doc.status, StatusCode::OK);
    let doc = json(&doc);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut described = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for method in ops.as_object().expect("operations").keys() {
            described.insert((path.clone(), method.to_uppercase()));
        }
    }
    let routes = api_routes();
    assert!(routes.len() >= 30, "only {} routes parsed", routes.len());
    assert_eq!(
        described, routes,
        "the OpenAPI document and the router differ"
    );
}

/// A path of the route list with its parameters filled with objects that exist.
fn fill(path: &str) -> String {
    path.replace("{id}", "1")
        .replace("/idps/{name}", "/idps/idp")
        .replace("/api-clients/{name}", "/api-clients/other")
        .replace("{tenant}", "default")
        .replace("{username}", "jdoe")
        .replace("{handle}", "0000000000000000")
}

/// What a caller may reach: (path, method) → allowed.
fn tenant_manager_may(path: &str, method: &str) -> bool {
    let p = path.trim_start_matches("/api/v1");
    matches!(
        (method, p),
        (
            "GET",
            "/me"
                | "/openapi.json"
                | "/tenants"
                | "/tenants/{tenant}"
                | "/tenants/{tenant}/sessions"
                | "/tenants/{tenant}/failures"
                | "/tenants/{tenant}/circuit"
        ) | ("DELETE", "/tenants/{tenant}/sessions/{handle}")
            | ("PUT", "/tenants/{tenant}/circuit")
    )
}

#[tokio::test]
async fn every_route_answers_each_kind_of_caller_as_its_role_allows() {
    let t = TestApp::new(true).await;
    let rootie = root(&t).await;
    // Another tenant with its own manager; an agent with a portal session.
    let tm_globex = {
        call(
            &t,
            "POST",
            "/api/v1/tenants",
            Some(&json!({"name": "globex", "login_domains": ["globex.example"]})),
            &rootie,
        )
        .await;
        add_user(&t, "globex", "gm", "gm-password-1", &["tenant-manager"]).await;
        session(&t, "gm", "globex", "gm-password-1").await
    };
    let (id, binding) = t.start_login("/t/default/login").await;
    let a = t
        .acs(&answering(&id).signed_assertion(idp()), &[&binding])
        .await;
    let agent = Auth::Cookie(cookie(&a, "ssogate_session").expect("portal session"));
    let tm_client = token_of(
        &t,
        &rootie,
        json!({"name": "tm", "role": "tenant-manager", "tenant": "default"}),
    )
    .await;
    let central_client = token_of(&t, &rootie, json!({"name": "central"})).await;
    call(
        &t,
        "POST",
        "/api/v1/api-clients",
        Some(&json!({"name": "other"})),
        &rootie,
    )
    .await;
    let Auth::Session {
        cookie: root_cookie,
        ..
    } = &rootie
    else {
        unreachable!()
    };
    let mut cases = 0;
    let empty = json!({});
    for (path, method) in api_routes() {
        let url = fill(&path);
        if path.ends_with("/events") {
            // A stream: its own test below (reading it here would never end).
            continue;
        }
        let public = path.ends_with("/openapi.json");
        let change = method != "GET";
        // Anonymous, an agent's portal session: 401.
        for who in [Auth::None, agent.clone()] {
            let r = call(&t, &method, &url, None, &who).await;
            let want = if public {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            };
            assert_eq!(r.status, want, "{method} {url} as {who:?}: {}", r.body);
            cases += 1;
        }
        // A central administrator's session without the CSRF token may not change anything.
        if change {
            let r = call(
                &t,
                &method,
                &url,
                Some(&json!({})),
                &Auth::SessionNoCsrf {
                    cookie: root_cookie.clone(),
                },
            )
            .await;
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{method} {url} without CSRF: {}",
                r.body
            );
            cases += 1;
        }
        // Tenant managers: their own tenant's activity and Circuit tab; another tenant's: 403.
        for (who, own) in [
            (tm_globex.clone(), false),
            (Auth::Bearer(tm_client.clone()), true),
        ] {
            let r = call(
                &t,
                &method,
                &url,
                if change { Some(&empty) } else { None },
                &who,
            )
            .await;
            let allowed = public || tenant_manager_may(&path, &method);
            if !allowed {
                assert_eq!(
                    r.status,
                    StatusCode::FORBIDDEN,
                    "{method} {url} as tenant manager (own {own}): {}",
                    r.body
                );
            } else if path.contains("{tenant}") && !own {
                assert_eq!(
                    r.status,
                    StatusCode::FORBIDDEN,
                    "{method} {url} as another tenant's manager: {}",
                    r.body
                );
            } else {
                assert!(
                    r.status != StatusCode::FORBIDDEN && r.status != StatusCode::UNAUTHORIZED,
                    "{method} {url} as tenant manager: {}",
                    r.body
                );
            }
            cases += 1;
        }
    }
    // Central administrators (an API client here) reach every route; run last, it changes things.
    for (path, method) in api_routes() {
        let url = fill(&path);
        if path.ends_with("/events") {
            continue;
        }
        let r = call(
            &t,
            &method,
            &url,
            if method == "GET" { None } else { Some(&empty) },
            &Auth::Bearer(central_client.clone()),
        )
        .await;
        assert!(
            r.status != StatusCode::FORBIDDEN
                && r.status != StatusCode::UNAUTHORIZED
                && r.status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {url} as central administrator: {} {}",
            r.status,
            r.body
        );
        assert!(
            r.status.as_u16() < 500,
            "{method} {url}: {} {}",
            r.status,
            r.body
        );
        cases += 1;
    }
    // The pages: anonymous → sign-in; a tenant manager → only the activity pages.
    for (path, method) in ui_routes() {
        let url = fill(&path);
        let open = path.ends_with("/signin")
            || path.ends_with("/signin/code")
            || path.contains("/static/");
        let r = if method == "GET" {
            page(&t, &url, &Auth::None).await
        } else {
            form(&t, &url, &[], &Auth::None, false).await
        };
        if !open {
            assert_eq!(
                r.location.as_deref(),
                Some("/webmanager/signin"),
                "{method} {url} anonymous: {}",
                r.status
            );
        }
        if path == "/webmanager/signout" {
            // (Sign-out has its own test; here it would end the session the loop goes on with.)
            continue;
        }
        let r = if method == "GET" {
            page(&t, &url, &tm_globex).await
        } else {
            form(&t, &url, &[], &tm_globex, true).await
        };
        let tm_page = path.starts_with("/webmanager/activity")
            || path == "/webmanager/circuit"
            || path == "/webmanager/"
            || path == "/webmanager/signout"
            || path == "/webmanager/password"
            || path.starts_with("/webmanager/account")
            || open;
        if !tm_page {
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{method} {url} as tenant manager: {}",
                r.body
            );
        }
        cases += 2;
    }
    assert!(cases > 200, "{cases}");
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_named_and_nothing_changes() {
    let t = TestApp::new(true).await;
    let s = root(&t).await;
    let before_sps = call(&t, "GET", "/api/v1/sps", None, &s).await.body;
    let before_idps = call(&t, "GET", "/api/v1/idps", None, &s).await.body;
    let pubkey = String::from_utf8(
        openssl::pkey::PKey::private_key_from_pem(&idp().key_pem)
            .unwrap()
            .public_key_to_pem()
            .unwrap(),
    )
    .unwrap();
    let cert = String::from_utf8(idp().cert_pem.clone()).unwrap();
    let cases: Vec<(&str, &str, Value, StatusCode, &str, &str)> = vec![
        (
            "POST",
            "/api/v1/sps",
            json!({"host_url": "cc.example.com/portal"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "host_url",
            "must start with http",
        ),
        (
            "POST",
            "/api/v1/sps",
            json!({"host_url": "https://cc.example.com/p?x=1"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "host_url",
            "query",
        ),
        (
            "POST",
            "/api/v1/sps",
            json!({"host_url": "https://cc.example.com/p", "certificate": "hello"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "private_key",
            "needs its private key",
        ),
        (
            "POST",
            "/api/v1/sps",
            json!({"host_url": "https://cc.example.com/p", "certificate": cert, "private_key": pubkey}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "private_key",
            "the certificate already carries it",
        ),
        (
            "POST",
            "/api/v1/sps",
            json!({"host_url": "https://cc.example.com/p", "certificate": "not a cert", "private_key": "-----BEGIN PRIVATE KEY-----\nAA\n-----END PRIVATE KEY-----"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "certificate",
            "not a PEM certificate",
        ),
        (
            "POST",
            "/api/v1/sps",
            json!({"host_url": common::app::HOST}),
            StatusCode::CONFLICT,
            "host_url",
            "already has host URL",
        ),
        (
            "POST",
            "/api/v1/idps",
            json!({"entity_id": "https://other.example/idp", "sso_url": "https://other.example/sso", "username_mapping": "upn", "fingerprint": "AB:CD", "fingerprint_algorithm": "sha256"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "fingerprint",
            "fingerprint",
        ),
        (
            "POST",
            "/api/v1/idps",
            json!({"entity_id": "https://other.example/idp", "sso_url": "https://other.example/sso", "username_mapping": "upn", "fingerprint": "zz".repeat(32), "fingerprint_algorithm": "sha256"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "fingerprint",
            "fingerprint",
        ),
        (
            "POST",
            "/api/v1/idps",
            json!({"entity_id": "https://other.example/idp", "sso_url": "https://other.example/sso", "username_mapping": "", "certificates": [cert]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "username_mapping",
            "username mapping",
        ),
        (
            "POST",
            "/api/v1/idps",
            json!({"entity_id": "https://other.example/idp", "sso_url": "https://other.example/sso", "username_mapping": "upn", "certificates": ["-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "certificates",
            "certificate",
        ),
        (
            "POST",
            "/api/v1/idps",
            json!({"name": "idp", "entity_id": "https://other.example/idp", "sso_url": "https://other.example/sso", "username_mapping": "upn", "certificates": [cert]}),
            StatusCode::CONFLICT,
            "name",
            "already exists",
        ),
        (
            "POST",
            "/api/v1/idps/import",
            json!({"metadata": "<!DOCTYPE x><md:EntityDescriptor/>", "username_mapping": "upn"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "metadata",
            "IdP metadata",
        ),
        (
            "POST",
            "/api/v1/idps/import",
            json!({"metadata": "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"https://x\"/>", "username_mapping": "upn"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "metadata",
            "IDPSSODescriptor",
        ),
        (
            "POST",
            "/api/v1/tenants",
            json!({"name": "acme", "login_domains": ["example.com"]}),
            StatusCode::CONFLICT,
            "login_domains",
            "already belongs to tenant",
        ),
        (
            "POST",
            "/api/v1/tenants/default/users",
            json!({"username": "JDOE"}),
            StatusCode::CONFLICT,
            "username",
            "already has user",
        ),
        (
            "POST",
            "/api/v1/api-clients",
            json!({"name": "short", "token": "too-short"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "token",
            "32",
        ),
        (
            "POST",
            "/api/v1/sps",
            json!({"host_url": "https://cc.example.com/p", "surprise": 1}),
            StatusCode::BAD_REQUEST,
            "",
            "unknown field",
        ),
    ];
    for (method, path, body, status, field, words) in &cases {
        let r = call(&t, method, path, Some(body), &s).await;
        assert_eq!(r.status, *status, "{method} {path} {body}: {}", r.body);
        let j = json(&r);
        if !field.is_empty() {
            assert_eq!(j["field"], *field, "{method} {path}: {}", r.body);
        }
        assert!(
            j["message"].as_str().unwrap_or("").contains(words),
            "{method} {path}: {}",
            r.body
        );
    }
    assert_eq!(
        call(&t, "GET", "/api/v1/sps", None, &s).await.body,
        before_sps
    );
    assert_eq!(
        call(&t, "GET", "/api/v1/idps", None, &s).await.body,
        before_idps
    );
    // A Circuit user belongs to one user of a tenant: the error names who has it.
    call(
        &t,
        "POST",
        "/api/v1/tenants/default/users",
        Some(&json!({"username": "kate", "circuit_user": "kate@circuit.example"})),
        &s,
    )
    .await;
    let r = call(
        &t,
        "POST",
        "/api/v1/tenants/default/users",
        Some(&json!({"username": "kim", "circuit_user": "KATE@circuit.example"})),
        &s,
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(json(&r)["field"], "circuit_user");
    assert!(
        json(&r)["message"].as_str().unwrap().contains("\"kate\""),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn a_stale_edit_is_refused_naming_who_changed_it_and_when() {
    let t = TestApp::new(false).await;
    let s = root(&t).await;
    let client = token_of(&t, &s, json!({"name": "robot"})).await;
    let v = json(&call(&t, "GET", "/api/v1/idps/idp", None, &s).await)["version"]
        .as_i64()
        .unwrap();
    let first = call(
        &t,
        "PUT",
        "/api/v1/idps/idp",
        Some(&json!({"authn_context": "urn:first", "version": v})),
        &Auth::Bearer(client),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let second = call_with(
        &t,
        "PUT",
        "/api/v1/idps/idp",
        Some(&json!({"authn_context": "urn:second"})),
        &s,
        &[("if-match", &format!("\"{v}\""))],
    )
    .await;
    assert_eq!(second.status, StatusCode::CONFLICT, "{}", second.body);
    let m = json(&second)["message"].as_str().unwrap().to_string();
    assert!(m.contains("changed by api:robot at 20"), "{m}");
    assert_eq!(
        json(&call(&t, "GET", "/api/v1/idps/idp", None, &s).await)["authn_context"],
        "urn:first"
    );
}

#[tokio::test]
async fn api_tokens_are_kept_hashed_and_no_answer_carries_a_secret() {
    let dir = common::scratch_dir("admin-api-secrets");
    let path = dir.join("ssogate.db");
    let store = std::sync::Arc::new(
        ssogate::store::sqlite::SqliteStore::open(&path, Default::default())
            .await
            .expect("store"),
    );
    store
        .use_secrets(std::sync::Arc::new(
            ssogate::secrets::SecretsKey::ephemeral(&ssogate::rng::SystemRng),
        ))
        .expect("secrets key");
    let t = TestApp::with_store(ssogate::config::Config::default(), store).await;
    let s = root(&t).await;
    let sp = call(
        &t,
        "POST",
        "/api/v1/sps",
        Some(&json!({"host_url": "https://cc.example.com/agentportal", "generate_key": true})),
        &s,
    )
    .await;
    assert_eq!(sp.status, StatusCode::CREATED, "{}", sp.body);
    assert_eq!(json(&sp)["has_key"], true);
    let created = json(
        &call(
            &t,
            "POST",
            "/api/v1/api-clients",
            Some(&json!({"name": "robot"})),
            &s,
        )
        .await,
    );
    let token = created["token"].as_str().expect("token once").to_string();
    assert_eq!(token.len(), 128);
    let robot = Auth::Bearer(token.clone());
    assert_eq!(
        call(&t, "GET", "/api/v1/sps", None, &robot).await.status,
        StatusCode::OK
    );
    // Listed with its prefix and last use, never the token.
    let list = call(&t, "GET", "/api/v1/api-clients", None, &s).await;
    assert!(
        !list.body.contains(&token) && list.body.contains(&token[..8]),
        "{}",
        list.body
    );
    // Regenerated: the old token stops working.
    let fresh =
        json(&call(&t, "POST", "/api/v1/api-clients/robot/regenerate", None, &s).await)["token"]
            .as_str()
            .unwrap()
            .to_string();
    assert_eq!(
        call(&t, "GET", "/api/v1/sps", None, &robot).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&t, "GET", "/api/v1/sps", None, &Auth::Bearer(fresh.clone()))
            .await
            .status,
        StatusCode::OK
    );
    // No answer of the API or the pages carries a key, a token, a password or its hash.
    let mut seen = String::new();
    for p in [
        "/api/v1/sps",
        "/api/v1/sps/2",
        "/api/v1/idps",
        "/api/v1/tenants",
        "/api/v1/tenants/default/users",
        "/api/v1/api-clients",
        "/api/v1/audit",
        "/api/v1/me",
    ] {
        seen.push_str(&call(&t, "GET", p, None, &s).await.body);
    }
    for p in [
        "/webmanager/sps",
        "/webmanager/sps/2",
        "/webmanager/sps/2/metadata",
        "/webmanager/users",
        "/webmanager/users/default/root",
        "/webmanager/api-clients",
        "/webmanager/audit",
    ] {
        let a = page(&t, p, &s).await;
        assert_eq!(a.status, StatusCode::OK, "{p}");
        seen.push_str(&a.body);
    }
    for secret in [
        "PRIVATE KEY",
        "$argon2",
        ROOT_PASSWORD,
        token.as_str(),
        fresh.as_str(),
    ] {
        assert!(!seen.contains(secret), "an answer carries {secret:?}");
    }
    // In the database file: only the tokens' SHA-256.
    t.store.checkpoint_step(false);
    let mut bytes = std::fs::read(&path).expect("db");
    if let Ok(wal) = std::fs::read(dir.join("ssogate.db-wal")) {
        bytes.extend(wal);
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        !text.contains(&token) && !text.contains(&fresh),
        "a token is stored in clear"
    );
    assert!(text.contains(&ssogate::domain::audit::token_hash(&fresh)));
}

/// A new API client's token (in the answer once).
async fn token_of(t: &TestApp, s: &Auth, body: Value) -> String {
    let r = call(t, "POST", "/api/v1/api-clients", Some(&body), s).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    json(&r)["token"].as_str().expect("token").to_string()
}

fn step<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {report}"))
}

/// The first failed step of a trace.
fn failed_step(report: &Value) -> Value {
    report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["verdict"] == "failed")
        .unwrap_or_else(|| panic!("no failed step: {report}"))
        .clone()
}

fn value(step: &Value, key: &str) -> String {
    step["values"]
        .as_array()
        .expect("values")
        .iter()
        .find(|kv| kv[0] == key)
        .and_then(|kv| kv[1].as_str())
        .unwrap_or_else(|| panic!("no value {key}: {step}"))
        .to_string()
}

#[tokio::test]
async fn the_tracer_shows_each_step_and_consumes_nothing() {
    let t = TestApp::new(false).await;
    let s = root(&t).await;
    let (id, binding) = t.start_login("/login").await;
    let xml = answering(&id).signed_assertion(idp());
    let b64 = common::generate::b64(&xml);
    // Traced first: every step passes, and nothing is recorded.
    let r = call(
        &t,
        "POST",
        "/api/v1/trace",
        Some(&json!({"response": b64, "tenant": "default"})),
        &s,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let report = json(&r);
    assert_eq!(report["accepted"], true, "{report}");
    let names: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    for n in [
        "decode",
        "parse",
        "identity provider",
        "signature",
        "destination",
        "issuer",
        "audience",
        "replay",
        "username mapping",
        "user",
    ] {
        assert!(names.contains(&n), "no step {n}: {names:?}");
    }
    assert!(
        value(step(&report, "signature"), "verified by").contains("SHA-256"),
        "{report}"
    );
    assert_eq!(value(step(&report, "replay"), "seen before"), "no");
    assert_eq!(value(step(&report, "user"), "user"), "jdoe");
    // The ACS still accepts it (the tracer consumed neither the request nor the assertion)...
    let a = t.acs(&xml, &[&binding]).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    // ...after which the tracer says it was seen before, and the replay cache has not changed.
    let again = json(
        &call(
            &t,
            "POST",
            "/api/v1/trace",
            Some(&json!({"response": b64})),
            &s,
        )
        .await,
    );
    assert_eq!(again["accepted"], false);
    let replay = step(&again, "replay");
    assert_eq!(replay["verdict"], "failed");
    assert_eq!(replay["code"], "replayed");
    assert_eq!(value(replay, "seen before"), "yes");
    let third = json(
        &call(
            &t,
            "POST",
            "/api/v1/trace",
            Some(&json!({"response": b64})),
            &s,
        )
        .await,
    );
    assert_eq!(third["steps"], again["steps"], "tracing changes nothing");
    // A wrong audience: the failing step with what was expected and what came.
    let (id, _) = t.start_login("/login").await;
    let mut tpl = answering(&id);
    tpl.audiences = Some(vec!["https://someone-else.example".into()]);
    let bad = json(
        &call(
            &t,
            "POST",
            "/api/v1/trace",
            Some(&json!({"response": tpl.signed_assertion(idp())})),
            &s,
        )
        .await,
    );
    let f = failed_step(&bad);
    assert_eq!(f["step"], "audience");
    assert_eq!(f["code"], "audience_mismatch");
    assert_eq!(value(&f, "got"), "https://someone-else.example");
    // "Evaluate at": the same response a day later is expired.
    let later = (common::generate::now().plus_secs(86_400)).to_rfc3339();
    let (id, _) = t.start_login("/login").await;
    let late = json(
        &call(
            &t,
            "POST",
            "/api/v1/trace",
            Some(&json!({"response": answering(&id).signed_assertion(idp()), "at": later})),
            &s,
        )
        .await,
    );
    let f = failed_step(&late);
    assert_eq!(f["code"], "expired", "{late}");
    // A user the tenant does not have.
    let (id, _) = t.start_login("/login").await;
    let mut tpl = answering(&id);
    tpl.assertion_id = "_another-assertion".into();
    tpl.attributes = vec![(
        common::generate::USER_ATTR.into(),
        vec!["EXAMPLE\\nobody".into()],
    )];
    let unknown = json(
        &call(
            &t,
            "POST",
            "/api/v1/trace",
            Some(&json!({"response": tpl.signed_assertion(idp())})),
            &s,
        )
        .await,
    );
    let f = failed_step(&unknown);
    assert_eq!(f["step"], "user");
    assert_eq!(f["code"], "unknown_user");
    // The page shows the same steps.
    let p = form(
        &t,
        "/webmanager/tracer",
        &[("response", &b64), ("tenant", "")],
        &s,
        true,
    )
    .await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(
        p.body.contains("<td class=\"step\">replay</td>") && p.body.contains("seen before"),
        "{}",
        p.body
    );
}

#[tokio::test]
async fn a_sign_in_reaches_the_event_stream_within_a_second_and_streams_are_capped() {
    use common::admin::{open, read_until};
    use std::time::Duration;
    let t = TestApp::new(true).await;
    let s = root(&t).await;
    let central = token_of(&t, &s, json!({"name": "watcher"})).await;
    call(
        &t,
        "POST",
        "/api/v1/tenants",
        Some(&json!({"name": "globex", "login_domains": ["globex.example"]})),
        &s,
    )
    .await;
    let other = token_of(
        &t,
        &s,
        json!({"name": "globex-tm", "role": "tenant-manager", "tenant": "globex"}),
    )
    .await;
    // Anonymous: 401, no stream.
    assert_eq!(
        open(&t, "/api/v1/events", &Auth::None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let res = open(&t, "/api/v1/events", &Auth::Bearer(central.clone())).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut body = res.into_body();
    let res2 = open(&t, "/api/v1/events", &Auth::Bearer(other)).await;
    let mut other_body = res2.into_body();
    // A SAML sign-in at tenant default.
    let (id, binding) = t.start_login("/t/default/login").await;
    let a = t
        .acs(&answering(&id).signed_assertion(idp()), &[&binding])
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let seen = read_until(&mut body, "event: sign_in", Duration::from_secs(1)).await;
    assert!(
        seen.contains("event: sign_in") && seen.contains("\"user\":\"jdoe\""),
        "within 1 s: {seen:?}"
    );
    // A change, too.
    call(
        &t,
        "PUT",
        "/api/v1/tenants/globex",
        Some(&json!({"display_name": "Globex"})),
        &s,
    )
    .await;
    let seen = read_until(&mut body, "event: change", Duration::from_secs(1)).await;
    assert!(seen.contains("tenant:globex"), "{seen:?}");
    // Another tenant's manager sees neither.
    let theirs = read_until(&mut other_body, "event:", Duration::from_millis(300)).await;
    assert!(!theirs.contains("event:"), "{theirs:?}");
    drop(other_body);
    // At most 64 streams; the 65th is refused at once and takes nothing.
    let mut held = Vec::new();
    while t.state.events.open_streams() < ssogate::web::events::MAX_STREAMS {
        let r = open(&t, "/api/v1/events", &Auth::Bearer(central.clone())).await;
        assert_eq!(r.status(), StatusCode::OK);
        held.push(r);
    }
    let refused = open(&t, "/api/v1/events", &Auth::Bearer(central.clone())).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    held.pop();
    drop(body);
    assert!(t.state.events.open_streams() < ssogate::web::events::MAX_STREAMS);
    assert_eq!(
        open(&t, "/api/v1/events", &Auth::Bearer(central))
            .await
            .status(),
        StatusCode::OK
    );
}

async fn put_sp(t: &TestApp, s: &Auth, body: Value) -> Value {
    let r = call(t, "PUT", "/api/v1/sps/1", Some(&body), s).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    json(&r)
}

async fn metadata(t: &TestApp, s: &Auth) -> String {
    call(t, "GET", "/api/v1/sps/1/metadata", None, s).await.body
}

#[tokio::test]
async fn certificate_rollover_publishes_the_next_certificate_then_promotes_it() {
    let t = TestApp::new(false).await;
    let s = root(&t).await;
    let sp = put_sp(&t, &s, json!({"generate_key": true})).await;
    let current = sp["certificate"]["sha256"]
        .as_str()
        .expect("a certificate")
        .to_string();
    assert!(sp["next_certificate"].is_null());
    let certs = |xml: &str| xml.matches("<ds:X509Certificate>").count();
    assert_eq!(certs(&metadata(&t, &s).await), 2, "signing and encryption");
    // Promoting with no next certificate: refused, naming the field.
    let r = call(
        &t,
        "PUT",
        "/api/v1/sps/1",
        Some(&json!({"promote_next": true})),
        &s,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json(&r)["field"], "promote_next");
    // The next one is published beside the current one (for signing), and signs nothing yet.
    let sp = put_sp(&t, &s, json!({"generate_next_key": true})).await;
    let next = sp["next_certificate"]["sha256"]
        .as_str()
        .expect("next")
        .to_string();
    assert_eq!(sp["certificate"]["sha256"], current.as_str());
    assert_ne!(next, current);
    let md = metadata(&t, &s).await;
    assert_eq!(certs(&md), 3, "{md}");
    // Promoted: it is the certificate now; the old one is gone from the metadata.
    let sp = put_sp(&t, &s, json!({"promote_next": true})).await;
    assert_eq!(sp["certificate"]["sha256"], next.as_str());
    assert!(sp["next_certificate"].is_null());
    assert_eq!(certs(&metadata(&t, &s).await), 2);
    // The pages show it, and the audit log has every step.
    let page = common::admin::page(&t, "/webmanager/sps/1", &s).await;
    assert!(page.body.contains("Certificate rollover"), "{}", page.body);
    let audit = t
        .store
        .audit_list(Some("sp:1"), None, 10)
        .await
        .expect("audit");
    assert!(audit.len() >= 3, "{audit:?}");
}

#[tokio::test]
async fn a_database_that_is_down_gets_a_clear_answer_and_changes_nothing() {
    let t = TestApp::new(false).await;
    let s = root(&t).await;
    t.store.close().await;
    let page = common::admin::page(&t, "/webmanager/sps", &s).await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        page.body.contains("The Web Manager is unavailable"),
        "{}",
        page.body
    );
    let api = call(&t, "GET", "/api/v1/sps", None, &s).await;
    assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(&api)["error"], "store_unavailable");
    let change = call(
        &t,
        "POST",
        "/api/v1/tenants",
        Some(&json!({"name": "acme"})),
        &s,
    )
    .await;
    assert_eq!(
        change.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        change.body
    );
    let signin = sign_in(&t, "root", "default", ROOT_PASSWORD).await;
    assert_eq!(
        signin.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        signin.body
    );
    assert_eq!(
        signin.refusal.as_ref().map(|r| r.reason.code()),
        Some("store_unavailable")
    );
}

#[tokio::test]
async fn the_api_edge_refuses_what_its_document_refuses_and_takes_what_it_allows() {
    let t = TestApp::new(true).await;
    let s = root(&t).await;
    // Query parameters: out of the documented bounds, unknown or unreadable → 400 as JSON.
    for path in [
        "/api/v1/idps?limit=501",
        "/api/v1/idps?limit=0",
        "/api/v1/idps?offset=1000000001",
        "/api/v1/idps?offset=abc",
        "/api/v1/idps?colour=red",
        "/api/v1/audit?before=-1",
    ] {
        let r = call(&t, "GET", path, None, &s).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.body);
        assert_eq!(json(&r)["error"], "bad_request", "{path}");
    }
    let r = call(
        &t,
        "GET",
        "/api/v1/idps?limit=500&offset=1000000000",
        None,
        &s,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // A body that is not an object, an unknown field, a negative version → refused.
    for (body, status) in [
        (json!([null]), StatusCode::BAD_REQUEST),
        (json!({"": null}), StatusCode::BAD_REQUEST),
        (
            json!({"multi_tenant": true, "version": -1}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let r = call(&t, "PUT", "/api/v1/settings", Some(&body), &s).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
    }
    let r = call(
        &t,
        "POST",
        "/api/v1/tenants",
        Some(&json!({"name": "n1", "version": -1})),
        &s,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(json(&r)["field"], "version");
    // null is "left out"; 2.0 is the integer 2.
    let r = call(
        &t,
        "POST",
        "/api/v1/tenants",
        Some(&json!({"name": "n1", "display_name": null, "sso_enabled": null, "version": 2.0})),
        &s,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let version = json(&r)["version"].as_i64().unwrap();
    // If-Match: a number, quoted or weak; anything else is 400 and changes nothing.
    for bad in ["", "abc", " 1", "\"1", "1234567890123456"] {
        let r = call_with(
            &t,
            "PUT",
            "/api/v1/tenants/n1",
            Some(&json!({"display_name": "X"})),
            &s,
            &[("if-match", bad)],
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "If-Match {bad:?}: {}",
            r.body
        );
    }
    let r = call_with(
        &t,
        "PUT",
        "/api/v1/tenants/n1",
        Some(&json!({"display_name": "N One"})),
        &s,
        &[("if-match", &format!("W/\"{version}\""))],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(json(&r)["display_name"], "N One");
    // Audit entries carry RFC 3339 instants.
    let r = call(&t, "GET", "/api/v1/audit", None, &s).await;
    let at = json(&r)["items"][0]["at"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(at.ends_with('Z') && at.contains('T'), "{}", r.body);
}

/// The value of the form field `name` in a page.
fn field_value(body: &str, name: &str) -> String {
    let at = body
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no field {name} in:\n{body}"));
    let rest = &body[at + name.len() + 15..];
    rest[..rest.find('"').expect("the value ends")].to_string()
}

fn code_now(t: &TestApp, secret: &[u8]) -> String {
    use ssogate::clock::Clock as _;
    let step = ssogate::domain::totp::step_of(t.clock.now());
    format!("{:06}", ssogate::domain::totp::code_at(secret, step))
}

#[tokio::test]
async fn a_second_factor_is_set_up_by_the_account_then_asked_at_every_sign_in() {
    let t = TestApp::new(false).await;
    let s = root(&t).await;
    let user = t
        .store
        .user_by_norm(
            t.store.tenant_by_name("default").await.unwrap().unwrap().id,
            "root",
        )
        .await
        .unwrap()
        .unwrap();
    // The account page offers a key (QR code and text).
    let p = page(&t, "/webmanager/account", &s).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains("<svg") && p.body.contains("Turn on two-step verification"));
    let key = field_value(&p.body, "secret");
    let offer = field_value(&p.body, "offer");
    let secret = ssogate::domain::totp::from_base32(&key).unwrap();
    // A wrong code: the message beside the field, the same key still offered, nothing stored.
    let wrong = form(
        &t,
        "/webmanager/account/totp",
        &[("secret", &key), ("offer", &offer), ("code", "000000")],
        &s,
        true,
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.body.contains("id=\"error-code\""), "{}", wrong.body);
    assert_eq!(field_value(&wrong.body, "secret"), key);
    // A key this session was not shown (another's choosing): refused, a new key offered.
    let forged = ssogate::domain::totp::base32(&[7u8; 20]);
    let r = form(
        &t,
        "/webmanager/account/totp",
        &[
            ("secret", &forged),
            ("offer", &offer),
            ("code", &code_now(&t, &[7u8; 20])),
        ],
        &s,
        true,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_ne!(field_value(&r.body, "secret"), forged);
    assert!(t.store.totp_get(user.id).await.unwrap().is_none());
    // The right code turns it on; the secret is stored encrypted only.
    let r = form(
        &t,
        "/webmanager/account/totp",
        &[
            ("secret", &key),
            ("offer", &offer),
            ("code", &code_now(&t, &secret)),
        ],
        &s,
        true,
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let row = t.store.totp_get(user.id).await.unwrap().expect("enrolled");
    assert!(row.secret.starts_with("v1."));
    assert!(!row.secret.contains(&key) && !row.secret.contains(&hex::encode(&secret)));
    let audit = call(&t, "GET", "/api/v1/audit", None, &s).await;
    assert!(audit.body.contains("user.totp_on"), "{}", audit.body);
    assert!(!audit.body.contains(&key));

    // Sign-in now stops after the password: no session yet, only the step cookie.
    t.clock.advance_secs(30);
    let a = sign_in(&t, "root", "", ROOT_PASSWORD).await;
    assert_eq!(a.location.as_deref(), Some("/webmanager/signin/code"));
    assert!(cookie(&a, "ssogate_admin").is_none());
    let step = cookie(&a, "ssogate_admin_2fa").expect("the step cookie");
    // The step cookie opens nothing else.
    let r = t.get("/webmanager/sps", &[&step]).await;
    assert_eq!(r.location.as_deref(), Some("/webmanager/signin"));
    // A forged one (another user ID, same MAC) is no step at all.
    let (_, rest) = step.split_once('.').unwrap();
    let forged = format!("ssogate_admin_2fa=999.{rest}");
    let r = t
        .post("/webmanager/signin/code", &[("code", "123456")], &[&forged])
        .await;
    assert_eq!(r.location.as_deref(), Some("/webmanager/signin"));
    // A wrong code: refused with a reference; the code of the step used at enrolment: refused.
    let r = t
        .post("/webmanager/signin/code", &[("code", "000000")], &[&step])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.refusal.as_ref().map(|r| r.reason.code()),
        Some("password_refused")
    );
    let reused = {
        use ssogate::clock::Clock as _;
        let s = ssogate::domain::totp::step_of(t.clock.now()) - 1;
        format!("{:06}", ssogate::domain::totp::code_at(&secret, s))
    };
    let r = t
        .post("/webmanager/signin/code", &[("code", &reused)], &[&step])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a used step is refused");
    // The current code: in, with a new session, the step cookie cleared.
    let r = t
        .post(
            "/webmanager/signin/code",
            &[("code", &code_now(&t, &secret))],
            &[&step],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(cookie(&r, "ssogate_admin").is_some());
    assert!(
        r.cookies
            .iter()
            .any(|c| c.starts_with("ssogate_admin_2fa=;"))
    );
    // …and that code is not good twice.
    let r = t
        .post(
            "/webmanager/signin/code",
            &[("code", &code_now(&t, &secret))],
            &[&step],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Wrong codes are throttled like wrong passwords (per account and address).
    let mut last = StatusCode::OK;
    for _ in 0..7 {
        last = t
            .post("/webmanager/signin/code", &[("code", "000000")], &[&step])
            .await
            .status;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    // The step cookie lasts 5 minutes.
    t.clock.advance_secs(301);
    let r = t.get("/webmanager/signin/code", &[&step]).await;
    assert_eq!(r.location.as_deref(), Some("/webmanager/signin"));

    // Required for central administrators: one without it is sent to set it up first, and the
    // API by session says why; API clients are machine credentials and are not held up.
    add_user(
        &t,
        "default",
        "carol",
        "carols-password-1",
        &["central-admin"],
    )
    .await;
    let carol = session(&t, "carol", "default", "carols-password-1").await;
    let client = token_of(&t, &carol, json!({"name": "automation"})).await;
    let r = call(
        &t,
        "PUT",
        "/api/v1/settings",
        Some(&json!({"admin_require_totp": true})),
        &carol,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(json(&r)["admin_require_totp"], true);
    let r = page(&t, "/webmanager/sps", &carol).await;
    assert_eq!(r.location.as_deref(), Some("/webmanager/account"));
    let r = call(&t, "GET", "/api/v1/sps", None, &carol).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(json(&r)["error"], "second_factor_required");
    let r = call(
        &t,
        "GET",
        "/api/v1/sps",
        None,
        &Auth::Bearer(client.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = page(&t, "/webmanager/account", &carol).await;
    assert!(
        r.body.contains("must use two-step verification"),
        "{}",
        r.body
    );
    // While required, a central administrator cannot turn it off.
    let root_again = {
        let a = sign_in(&t, "root", "", ROOT_PASSWORD).await;
        let step = cookie(&a, "ssogate_admin_2fa").expect("step");
        t.clock.advance_secs(30);
        let r = t
            .post(
                "/webmanager/signin/code",
                &[("code", &code_now(&t, &secret))],
                &[&step],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        cookie(&r, "ssogate_admin").unwrap()
    };
    let me = call(
        &t,
        "GET",
        "/api/v1/me",
        None,
        &Auth::SessionNoCsrf {
            cookie: root_again.clone(),
        },
    )
    .await;
    assert_eq!(json(&me)["second_factor_required"], false);
    let root_s = Auth::Session {
        cookie: root_again,
        csrf: json(&me)["csrf_token"].as_str().unwrap().to_string(),
    };
    t.clock.advance_secs(30);
    let r = form(
        &t,
        "/webmanager/account/totp/disable",
        &[("code", &code_now(&t, &secret))],
        &root_s,
        true,
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(t.store.totp_get(user.id).await.unwrap().is_some());
    // A lost device: another central administrator resets it (API), and the password alone
    // signs in again (to set it up anew).
    let r = call(
        &t,
        "DELETE",
        "/api/v1/tenants/default/users/root/totp",
        None,
        &Auth::Bearer(client),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert!(t.store.totp_get(user.id).await.unwrap().is_none());
    let a = sign_in(&t, "root", "", ROOT_PASSWORD).await;
    assert!(cookie(&a, "ssogate_admin").is_some());
    assert_eq!(a.location.as_deref(), Some("/webmanager/"));
}

#[tokio::test]
async fn the_chart_counts_a_sign_in_and_keeps_it_once_flushed() {
    let t = TestApp::new(false).await;
    let s = root(&t).await;
    let (id, binding) = t.start_login("/login").await;
    let a = t
        .acs(&answering(&id).signed_assertion(idp()), &[&binding])
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let before = t.state.chart("default").await.unwrap();
    assert_eq!(before.successes(), 1);
    // Flushed: nothing waits in memory, and the store alone gives the same chart (what a
    // restarted service shows).
    t.state.flush_activity().await.unwrap();
    assert!(t.state.activity.take().is_empty());
    let after = t.state.chart("default").await.unwrap();
    assert_eq!(after.hours, before.hours);
    let p = page(&t, "/webmanager/activity?tenant=default", &s).await;
    assert!(p.body.contains("1 successful"), "{}", p.body);
}

/// A login answered by a response signed with an attacker's key: refused at the ACS.
async fn refused(t: &TestApp) -> (String, Answer) {
    let (id, binding) = t.start_login("/login").await;
    let xml = answering(&id).signed_assertion(common::generate::attacker());
    let a = t.acs(&xml, &[&binding]).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    (xml, a)
}

#[tokio::test]
async fn failing_responses_are_captured_for_the_tracer_while_a_capture_runs() {
    // The failure log's per-client limit as deployed (20 records a minute).
    let t = TestApp::with_config(ssogate::config::Config {
        failure_records_per_minute: 20,
        ..ssogate::config::Config::default()
    })
    .await;
    let s = root(&t).await;
    // No capture: nothing kept.
    refused(&t).await;
    let r = call(&t, "GET", "/api/v1/tenants/default/captures", None, &s).await;
    assert_eq!(json(&r)["items"].as_array().unwrap().len(), 0, "{}", r.body);
    assert!(json(&r)["capturing_until"].is_null());
    // Capture on: the refused response is kept under the failure's reference.
    let r = call(&t, "POST", "/api/v1/tenants/default/captures", None, &s).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(json(&r)["capturing_until"].is_string());
    let (xml, a) = refused(&t).await;
    let r = call(&t, "GET", "/api/v1/tenants/default/captures", None, &s).await;
    let items = json(&r)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "{}", r.body);
    assert!(
        a.body.contains(items[0]["reference"].as_str().unwrap()),
        "the agent's reference"
    );
    let id = items[0]["id"].as_i64().unwrap();
    let one = call(
        &t,
        "GET",
        &format!("/api/v1/tenants/default/captures/{id}"),
        None,
        &s,
    )
    .await;
    assert_eq!(
        json(&one)["response"].as_str().unwrap(),
        common::generate::b64(&xml),
        "kept as posted"
    );
    // The tracer traces it, failing at the signature.
    let p = page(
        &t,
        &format!("/webmanager/tracer?tenant=default&capture={id}"),
        &s,
    )
    .await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(
        p.body.contains("Refused") && p.body.contains("signature"),
        "{}",
        p.body
    );
    // A flood from one client: captures follow the failure log's per-client limit.
    let flooder: std::net::IpAddr = "192.0.2.7".parse().unwrap();
    for _ in 0..40 {
        let (id, binding) = t.start_login("/login").await;
        let xml = answering(&id).signed_assertion(common::generate::attacker());
        let form = common::generate::b64(&xml);
        let a = t
            .request_from(
                flooder,
                "POST",
                "/saml/acs",
                Some(&[("SAMLResponse", form.as_str())]),
                &[&binding],
                &[],
            )
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
    }
    let r = call(&t, "GET", "/api/v1/tenants/default/captures", None, &s).await;
    let n = json(&r)["items"].as_array().unwrap().len();
    assert_eq!(
        n,
        1 + 20,
        "the flooder's first 20 kept, no more, in a minute"
    );
    // Fifteen minutes later the capture has ended by itself.
    t.clock.advance_secs(15 * 60 + 1);
    let before = n;
    refused(&t).await;
    let r = call(&t, "GET", "/api/v1/tenants/default/captures", None, &s).await;
    assert_eq!(json(&r)["items"].as_array().unwrap().len(), before);
    assert!(json(&r)["capturing_until"].is_null());
    let audit = call(&t, "GET", "/api/v1/audit", None, &s).await;
    assert!(audit.body.contains("tenant.capture_on"));
}

#[tokio::test]
async fn a_circuit_user_belongs_to_one_user_of_a_tenant_by_api_and_page() {
    let t = TestApp::new(true).await;
    let s = root(&t).await;
    for tenant in ["acme", "globex"] {
        let r = call(
            &t,
            "POST",
            "/api/v1/tenants",
            Some(&json!({"name": tenant, "login_domains": [format!("{tenant}.example")]})),
            &s,
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let add = |tenant: &str, user: &str, circuit: &str| {
        (
            format!("/api/v1/tenants/{tenant}/users"),
            json!({"username": user, "circuit_user": circuit}),
        )
    };
    let (path, body) = add("acme", "kate", "kate@circuit.example");
    assert_eq!(
        call(&t, "POST", &path, Some(&body), &s).await.status,
        StatusCode::CREATED
    );
    let users = |tenant: &'static str| {
        let t = &t;
        let s = &s;
        async move {
            call(
                t,
                "GET",
                &format!("/api/v1/tenants/{tenant}/users"),
                None,
                s,
            )
            .await
            .body
        }
    };
    let before = users("acme").await;
    // The API: another case of the same address, in the same tenant: refused naming kate.
    let (path, body) = add("acme", "kim", "Kate@CIRCUIT.example");
    let r = call(&t, "POST", &path, Some(&body), &s).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(json(&r)["field"], "circuit_user");
    assert!(
        json(&r)["message"].as_str().unwrap().contains("\"kate\""),
        "{}",
        r.body
    );
    // Changing an existing user to it: the same.
    let (path, body) = add("acme", "kim", "kim@circuit.example");
    assert_eq!(
        call(&t, "POST", &path, Some(&body), &s).await.status,
        StatusCode::CREATED
    );
    let before_kim = users("acme").await;
    let r = call(
        &t,
        "PUT",
        "/api/v1/tenants/acme/users/kim",
        Some(&json!({"circuit_user": "KATE@circuit.example"})),
        &s,
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body.contains("\\\"kate\\\""), "{}", r.body);
    assert_eq!(users("acme").await, before_kim, "nothing was saved");
    // The page: refused beside the field, naming kate; nothing saved.
    let a = form(
        &t,
        "/webmanager/users/new?tenant=acme",
        &[
            ("username", "kai"),
            ("circuit_user", "kATE@circuit.example"),
            ("role_agent", "on"),
        ],
        &s,
        true,
    )
    .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    assert!(a.body.contains("id=\"error-circuit_user\""), "{}", a.body);
    assert!(
        a.body.contains("&quot;kate&quot;") || a.body.contains("\"kate\""),
        "{}",
        a.body
    );
    assert!(!users("acme").await.contains("\"kai\""));
    assert_ne!(before, users("acme").await);
    // The same address in another tenant: accepted.
    let (path, body) = add("globex", "kate", "kate@circuit.example");
    let r = call(&t, "POST", &path, Some(&body), &s).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

#[tokio::test]
async fn a_tenant_manager_configures_their_own_tenants_circuit_tab_only() {
    let t = TestApp::new(true).await;
    let s = root(&t).await;
    for tenant in ["acme", "globex"] {
        call(
            &t,
            "POST",
            "/api/v1/tenants",
            Some(&json!({"name": tenant, "login_domains": [format!("{tenant}.example")]})),
            &s,
        )
        .await;
    }
    add_user(&t, "acme", "am", "am-password-1", &["tenant-manager"]).await;
    let am = session(&t, "am", "acme", "am-password-1").await;
    // The tab: the pick leads to their own tenant; Save works there.
    let a = page(&t, "/webmanager/circuit", &am).await;
    assert_eq!(a.location.as_deref(), Some("/webmanager/circuit/acme"));
    let a = page(&t, "/webmanager/circuit/acme", &am).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("Enable Circuit Sign On") && a.body.contains("Client Secret"));
    let a = form(
        &t,
        "/webmanager/circuit/acme",
        &[
            ("version", "0"),
            ("enabled", "on"),
            ("client_id", "acme-app"),
            ("client_secret", "tm-secret-value-1"),
            ("portal_url", common::app::HOST),
            ("login_url", "https://eu.yourcircuit.com"),
        ],
        &am,
        true,
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let a = page(&t, "/webmanager/circuit/acme?saved=1", &am).await;
    assert!(
        a.body.contains("Saved.") && a.body.contains("*****"),
        "{}",
        a.body
    );
    assert!(!a.body.contains("tm-secret-value-1"));
    // The API: their own tenant's settings; the secret only as set.
    let r = call(&t, "GET", "/api/v1/tenants/acme/circuit", None, &am).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(json(&r)["client_secret_set"], true);
    assert_eq!(json(&r)["enabled"], true);
    assert!(!r.body.contains("tm-secret-value-1"));
    // Another tenant's tab, page and API, and every other page: 403.
    assert_eq!(
        page(&t, "/webmanager/circuit/globex", &am).await.status,
        StatusCode::FORBIDDEN
    );
    let a = form(
        &t,
        "/webmanager/circuit/globex",
        &[("client_id", "x")],
        &am,
        true,
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    for (method, path) in [
        ("GET", "/api/v1/tenants/globex/circuit"),
        ("PUT", "/api/v1/tenants/globex/circuit"),
        ("GET", "/api/v1/tenants/globex/sessions"),
        ("GET", "/api/v1/tenants/nosuch/circuit"),
        ("GET", "/api/v1/sps"),
        ("PUT", "/api/v1/tenants/acme"),
    ] {
        let body = (method == "PUT").then(|| json!({"client_id": "x"}));
        let r = call(&t, method, path, body.as_ref(), &am).await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            r.body
        );
    }
    for p in [
        "/webmanager/sps",
        "/webmanager/tenants",
        "/webmanager/users",
        "/webmanager/tracer",
    ] {
        assert_eq!(page(&t, p, &am).await.status, StatusCode::FORBIDDEN, "{p}");
    }
    // Refused input on the tab: named beside its field, nothing saved.
    let a = form(
        &t,
        "/webmanager/circuit/acme",
        &[
            ("version", "1"),
            ("enabled", "on"),
            ("client_id", "acme-app"),
            ("portal_url", "https://elsewhere.example"),
            ("login_url", "https://eu.yourcircuit.com"),
        ],
        &am,
        true,
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert!(
        a.body.contains("id=\"error-portal_url\"") && a.body.contains(common::app::HOST),
        "{}",
        a.body
    );
    let r = call(&t, "GET", "/api/v1/tenants/acme/circuit", None, &am).await;
    assert_eq!(json(&r)["portal_url"], common::app::HOST);
    assert_eq!(json(&r)["version"], 1);
}

#[tokio::test]
async fn metrics_count_each_login_and_readiness_follows_the_store() {
    let t = TestApp::new(false).await;
    let s = root(&t).await;
    let token = token_of(&t, &s, json!({"name": "prometheus"})).await;
    // N logins through the ACS, then one replay of the last.
    const N: usize = 7;
    let mut last = None;
    for i in 0..N {
        let (id, binding) = t.start_login("/login").await;
        let mut tpl = answering(&id);
        tpl.assertion_id = format!("_metrics-{i}");
        let xml = tpl.signed_assertion(idp());
        let a = t.acs(&xml, &[&binding]).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        last = Some((xml, binding));
    }
    let (xml, binding) = last.unwrap();
    let replay = t.acs(&xml, &[&binding]).await;
    assert!(replay.status.is_client_error());
    let m = call(&t, "GET", "/metrics", None, &Auth::Bearer(token.clone())).await;
    assert_eq!(m.status, StatusCode::OK, "{}", m.body);
    assert!(
        m.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let value = |series: &str| -> f64 {
        m.body
            .lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{}", m.body))
    };
    assert_eq!(
        value("ssogate_logins_total{tenant=\"default\",method=\"saml\",outcome=\"success\"}"),
        N as f64
    );
    assert_eq!(value("ssogate_acs_seconds_count"), (N + 1) as f64);
    assert_eq!(
        value("ssogate_refusals_total{reason=\"request_already_answered\"}"),
        1.0
    );
    assert_eq!(value("ssogate_sessions"), N as f64);
    // Not for anyone else: anonymous, an agent's cookie, a tenant manager.
    assert_eq!(
        call(&t, "GET", "/metrics", None, &Auth::None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let tm = token_of(
        &t,
        &s,
        json!({"name": "tm", "role": "tenant-manager", "tenant": "default"}),
    )
    .await;
    assert_eq!(
        call(&t, "GET", "/metrics", None, &Auth::Bearer(tm))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // Liveness and readiness: both up; with the store down, alive but not ready.
    assert_eq!(t.get("/healthz", &[]).await.status, StatusCode::OK);
    assert_eq!(t.get("/readyz", &[]).await.status, StatusCode::OK);
    t.store.close().await;
    assert_eq!(t.get("/healthz", &[]).await.status, StatusCode::OK);
    let r = t.get("/readyz", &[]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
}
