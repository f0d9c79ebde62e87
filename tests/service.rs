//! The service in process: `app().oneshot(…)` on in-memory SQLite with a fixed clock and a seeded
//! random generator. Each ACS refusal reaches the right status, a page with a reference (and
//! nothing of the cause), and a failure record with its reason; tenant resolution; local password
//! login; IdP-initiated login refused when off; open-redirect attempts; a database that is down.

mod common;

use common::app::{Answer, Change, HOST, TestApp, answering, cookie, unsolicited};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::generate::{self, ACS, Template, USER_ATTR, b64, idp};
use ssogate::domain::Secret;
use ssogate::domain::admin::{self, TenantInput, UserInput};
use ssogate::rng::SeededRng;
use ssogate::store::Store;

#[tokio::test]
async fn sp_initiated_login_signs_the_agent_in_and_auth_check_follows() {
    let t = TestApp::new(false).await;
    let a = t.get("/auth/check", &[]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let (id, binding) = t.start_login("/login?target=/queue/7").await;
    let a = t
        .acs(&answering(&id).signed_assertion(idp()), &[&binding])
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(
        a.location.as_deref(),
        Some("https://sp.example.test/queue/7")
    );
    let session = cookie(&a, "ssogate_session").expect("session cookie");
    let set = a
        .cookies
        .iter()
        .find(|c| c.starts_with("ssogate_session="))
        .expect("session cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Secure"),
        "{set}"
    );
    let c = t.get("/auth/check", &[&session]).await;
    assert_eq!(c.status, StatusCode::OK);
    assert_eq!(
        c.headers.get("x-auth-user").and_then(|v| v.to_str().ok()),
        Some("jdoe")
    );
    assert_eq!(
        c.headers.get("x-auth-tenant").and_then(|v| v.to_str().ok()),
        Some("default")
    );
    assert_eq!(
        c.headers
            .get("x-auth-display-name")
            .and_then(|v| v.to_str().ok()),
        Some("Jane Doe")
    );
    let s = t.get("/auth/session", &[&session]).await;
    let v: serde_json::Value = serde_json::from_str(&s.body).expect("json");
    assert_eq!(v["user"], "jdoe");
    assert_eq!(v["method"], "saml");
    // The session ends at the configured maximum (8 h) from the fixed clock.
    t.clock.advance_secs(8 * 3600 + 1);
    assert_eq!(
        t.get("/auth/check", &[&session]).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_agent_session_ends_after_an_hour_without_a_request() {
    let t = TestApp::new(false).await;
    let (id, binding) = t.start_login("/login").await;
    let a = t
        .acs(&answering(&id).signed_assertion(idp()), &[&binding])
        .await;
    let session = cookie(&a, "ssogate_session").expect("session cookie");
    // Requests 59 minutes apart keep it open (the portal's /auth/check counts as activity)...
    for _ in 0..3 {
        t.clock.advance_secs(59 * 60);
        assert_eq!(
            t.get("/auth/check", &[&session]).await.status,
            StatusCode::OK
        );
    }
    // ...an hour of silence ends it, and it stays ended.
    t.clock.advance_secs(3600);
    assert_eq!(
        t.get("/auth/check", &[&session]).await.status,
        StatusCode::UNAUTHORIZED
    );
    t.clock.advance_secs(-3600);
    assert_eq!(
        t.get("/auth/check", &[&session]).await.status,
        StatusCode::UNAUTHORIZED,
        "the idle session was deleted"
    );
}

#[tokio::test]
async fn the_pending_request_cookie_is_samesite_none_and_secure() {
    let t = TestApp::new(false).await;
    let a = t.get("/login", &[]).await;
    let set = a
        .cookies
        .iter()
        .find(|c| c.starts_with("ssogate_rq_"))
        .expect("pending-request cookie");
    // The IdP's POST to the ACS is cross-site: only SameSite=None (with Secure) is sent on it.
    assert!(
        set.contains("SameSite=None") && set.contains("Secure") && set.contains("HttpOnly"),
        "{set}"
    );
}

/// One refusal: what the browser gets and what the failure log says.
async fn assert_refused(t: &TestApp, a: &Answer, status: StatusCode, reason: &str) {
    assert_eq!(a.status, status, "{reason}: {}", a.body);
    assert!(
        a.body.contains("Reference: <code>SG-"),
        "{reason}: no reference in {}",
        a.body
    );
    let (got, detail) = t.last_failure().await.expect("a failure record");
    assert_eq!(got, reason, "{detail}");
    assert!(!detail.is_empty());
    // The page carries no part of the precise cause.
    assert!(
        !a.body.contains(&detail),
        "the cause leaked to the browser: {detail}"
    );
    assert!(
        t.get(
            "/auth/check",
            &cookie(a, "ssogate_session")
                .as_deref()
                .into_iter()
                .collect::<Vec<_>>()
        )
        .await
        .status
            == StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn malformed_messages_are_refused_as_the_clients_fault() {
    let t = TestApp::new(false).await;

    // Message-level problems: 400.
    let a = t.post("/saml/acs", &[("RelayState", "/")], &[]).await;
    assert_refused(&t, &a, StatusCode::BAD_REQUEST, "saml_response_missing").await;
    let a = t
        .post("/saml/acs", &[("SAMLResponse", "%%%not base64%%%")], &[])
        .await;
    assert_refused(&t, &a, StatusCode::BAD_REQUEST, "bad_base64").await;
    let doctype = format!(
        "<!DOCTYPE r [<!ENTITY x \"y\">]>{}",
        unsolicited().signed_assertion(idp())
    );
    assert_refused(
        &t,
        &t.acs(&doctype, &[]).await,
        StatusCode::BAD_REQUEST,
        "doctype_forbidden",
    )
    .await;
}

#[tokio::test]
async fn unsigned_foreign_and_unknown_signers_are_refused() {
    let t = TestApp::new(false).await;

    // Signature and trust: 403.
    assert_refused(
        &t,
        &t.acs(&unsolicited().unsigned(), &[]).await,
        StatusCode::FORBIDDEN,
        "unsigned",
    )
    .await;
    assert_refused(
        &t,
        &t.acs(&unsolicited().signed_assertion(generate::attacker()), &[])
            .await,
        StatusCode::FORBIDDEN,
        "signature_invalid",
    )
    .await;
    let stranger = Template {
        response_issuer: Some("https://stranger.example/".into()),
        assertion_issuer: "https://stranger.example/".into(),
        ..unsolicited()
    };
    assert_refused(
        &t,
        &t.acs(&stranger.signed_assertion(idp()), &[]).await,
        StatusCode::FORBIDDEN,
        "unknown_idp",
    )
    .await;
}

#[tokio::test]
async fn an_answer_must_be_to_our_request_in_this_browser_and_only_once() {
    let t = TestApp::new(false).await;

    // SP-initiated: the request must be ours, of this browser, and answered once.
    let (id, binding) = t.start_login("/login").await;
    assert_refused(
        &t,
        &t.acs(
            &answering("_never-sent").signed_assertion(idp()),
            &[&binding],
        )
        .await,
        StatusCode::FORBIDDEN,
        "unknown_in_response_to",
    )
    .await;
    let (name, value) = binding.split_once('=').expect("cookie");
    let forged = format!("{name}={}x", &value[..value.len() - 1]);
    for cookies in [vec![], vec![forged.as_str()]] {
        assert_refused(
            &t,
            &t.acs(
                &Template {
                    assertion_id: format!("_other-browser-{}", cookies.len()),
                    ..answering(&id)
                }
                .signed_assertion(idp()),
                &cookies,
            )
            .await,
            StatusCode::FORBIDDEN,
            "browser_binding_mismatch",
        )
        .await;
    }
    // Those attempts consumed nothing: the genuine answer in the right browser signs in, once.
    let ok = t
        .acs(
            &Template {
                assertion_id: "_genuine-answer".into(),
                ..answering(&id)
            }
            .signed_assertion(idp()),
            &[&binding],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert_refused(
        &t,
        &t.acs(
            &Template {
                assertion_id: "_second-answer".into(),
                ..answering(&id)
            }
            .signed_assertion(idp()),
            &[&binding],
        )
        .await,
        StatusCode::FORBIDDEN,
        "request_already_answered",
    )
    .await;
}

#[tokio::test]
async fn protocol_checks_refuse_one_changed_field_each() {
    let t = TestApp::new(false).await;

    // Protocol checks, one field changed each (on fresh requests).
    let cases: Vec<(&str, Change)> = vec![
        (
            "audience_mismatch",
            Box::new(|t| Template {
                audiences: Some(vec!["https://other.example/".into()]),
                ..t
            }),
        ),
        (
            "recipient_mismatch",
            Box::new(|t| Template {
                recipient: Some("https://other.example/acs".into()),
                ..t
            }),
        ),
        (
            "destination_mismatch",
            Box::new(|t| Template {
                destination: Some("https://other.example/acs".into()),
                ..t
            }),
        ),
        (
            "status_not_success",
            Box::new(|t| Template {
                status: "urn:oasis:names:tc:SAML:2.0:status:Responder".into(),
                ..t
            }),
        ),
        (
            "issuer_mismatch",
            Box::new(|t| Template {
                assertion_issuer: "https://other.example/".into(),
                ..t
            }),
        ),
        (
            "username_missing",
            Box::new(|t| Template {
                attributes: vec![],
                ..t
            }),
        ),
    ];
    for (reason, change) in cases {
        let (id, binding) = t.start_login("/login").await;
        let a = t
            .acs(&change(answering(&id)).signed_assertion(idp()), &[&binding])
            .await;
        assert_refused(&t, &a, StatusCode::FORBIDDEN, reason).await;
    }
}

#[tokio::test]
async fn an_assertion_past_its_lifetime_and_the_skew_is_expired() {
    let t = TestApp::new(false).await;

    // Expiry at the skew edge (180 s): NotOnOrAfter + skew is refused.
    let (id, binding) = t.start_login("/login").await;
    t.clock.set(generate::t0().plus_secs(300 + 180));
    assert_refused(
        &t,
        &t.acs(&answering(&id).signed_assertion(idp()), &[&binding])
            .await,
        StatusCode::FORBIDDEN,
        "expired",
    )
    .await;
    t.clock.set(generate::now());
}

#[tokio::test]
async fn an_unsolicited_response_is_refused_while_idp_initiated_is_off() {
    let t = TestApp::new(false).await;

    // IdP-initiated while it is off for the tenant.
    assert_refused(
        &t,
        &t.acs(&unsolicited().signed_assertion(idp()), &[]).await,
        StatusCode::FORBIDDEN,
        "idp_initiated_disabled",
    )
    .await;
}

/// With IdP-initiated login on, an assertion for a user the tenant does not have: refused.
async fn refuse_an_unknown_user(t: &TestApp) -> (Template, Answer) {
    admin::tenant_set(
        t.store.as_ref(),
        "default",
        TenantInput {
            idp_initiated: Some(true),
            ..Default::default()
        },
    )
    .await
    .expect("tenant");
    let nobody = Template {
        attributes: vec![(USER_ATTR.into(), vec!["EXAMPLE\\nobody".into()])],
        ..unsolicited()
    };
    let a = t.acs(&nobody.signed_assertion(idp()), &[]).await;
    assert_refused(t, &a, StatusCode::FORBIDDEN, "unknown_user").await;
    (nobody, a)
}

#[tokio::test]
async fn a_user_the_tenant_lacks_is_named_on_the_page() {
    let t = TestApp::new(false).await;

    // A user the tenant does not have: the page says so.
    let (_, a) = refuse_an_unknown_user(&t).await;
    assert!(
        a.body.contains("no agent account") && a.body.contains("EXAMPLE\\nobody"),
        "{}",
        a.body
    );
}

#[tokio::test]
async fn an_assertion_is_accepted_once_and_replays_are_refused() {
    let t = TestApp::new(false).await;
    let (nobody, _) = refuse_an_unknown_user(&t).await;

    // Replay: accepted once, refused after (an assertion for a user the tenant lacks is used up too).
    let fresh = Template {
        assertion_id: "_fresh-1".into(),
        ..unsolicited()
    }
    .signed_assertion(idp());
    let ok = t.acs(&fresh, &[]).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert_refused(
        &t,
        &t.acs(&fresh, &[]).await,
        StatusCode::FORBIDDEN,
        "replayed",
    )
    .await;
    assert_refused(
        &t,
        &t.acs(&nobody.signed_assertion(idp()), &[]).await,
        StatusCode::FORBIDDEN,
        "replayed",
    )
    .await;
}

#[tokio::test]
async fn idp_initiated_login_is_refused_when_off_and_accepted_when_on() {
    let t = TestApp::new(false).await;
    let a = t.acs(&unsolicited().signed_assertion(idp()), &[]).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.body.contains("Sign-in must start here"), "{}", a.body);
    admin::tenant_set(
        t.store.as_ref(),
        "default",
        TenantInput {
            idp_initiated: Some(true),
            ..Default::default()
        },
    )
    .await
    .expect("tenant");
    let a = t
        .acs(
            &Template {
                assertion_id: "_second".into(),
                ..unsolicited()
            }
            .signed_assertion(idp()),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.location.as_deref(), Some("https://sp.example.test/"));
}

#[tokio::test]
async fn relay_targets_never_leave_the_portal() {
    let t = TestApp::new(false).await;
    admin::tenant_set(
        t.store.as_ref(),
        "default",
        TenantInput {
            idp_initiated: Some(true),
            ..Default::default()
        },
    )
    .await
    .expect("tenant");
    let hostile = [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
        "https://sp.example.test.evil.example/",
        "https://sp.example.testx/",
        "/ok\r\nSet-Cookie: x=y",
        "http://sp.example.test/",
        "/saml/acs",
    ];
    for (i, relay) in hostile.iter().enumerate() {
        let tmpl = Template {
            assertion_id: format!("_relay-{i}"),
            ..unsolicited()
        };
        let a = t
            .post(
                "/saml/acs",
                &[
                    ("SAMLResponse", &b64(&tmpl.signed_assertion(idp()))),
                    ("RelayState", relay),
                ],
                &[],
            )
            .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{relay}: {}", a.body);
        assert_eq!(
            a.location.as_deref(),
            Some("https://sp.example.test/"),
            "RelayState {relay:?}"
        );
    }
    let fine = [
        ("/queue/7?tab=2", "https://sp.example.test/queue/7?tab=2"),
        (
            "https://sp.example.test/desk",
            "https://sp.example.test/desk",
        ),
    ];
    for (i, (relay, want)) in fine.iter().enumerate() {
        let tmpl = Template {
            assertion_id: format!("_fine-{i}"),
            ..unsolicited()
        };
        let a = t
            .post(
                "/saml/acs",
                &[
                    ("SAMLResponse", &b64(&tmpl.signed_assertion(idp()))),
                    ("RelayState", relay),
                ],
                &[],
            )
            .await;
        assert_eq!(a.location.as_deref(), Some(*want), "RelayState {relay:?}");
    }
    // SP-initiated: the target given to /login is checked the same way.
    let (id, binding) = t
        .start_login("/login?target=https%3A%2F%2Fevil.example%2F")
        .await;
    let a = t
        .acs(
            &Template {
                assertion_id: "_sp".into(),
                ..answering(&id)
            }
            .signed_assertion(idp()),
            &[&binding],
        )
        .await;
    assert_eq!(a.location.as_deref(), Some("https://sp.example.test/"));
}

async fn set_password(t: &TestApp, tenant: &str, user: &str, pw: &str) {
    admin::user_set(
        t.store.as_ref(),
        &SeededRng::new(3),
        tenant,
        user,
        UserInput {
            password: Some(Secret::new(pw.into())),
            ..Default::default()
        },
    )
    .await
    .expect("password");
}

#[tokio::test]
async fn local_password_login_for_a_tenant_without_sso() {
    let t = TestApp::new(false).await;
    admin::tenant_set(
        t.store.as_ref(),
        "default",
        TenantInput {
            sso_enabled: Some(false),
            slo_enabled: Some(false),
            ..Default::default()
        },
    )
    .await
    .expect("sso off");
    set_password(&t, "default", "jdoe", "correct horse").await;
    let form = t.get("/login", &[]).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("type=\"password\""), "{}", form.body);

    let bad = t
        .post(
            "/login",
            &[("username", "jdoe"), ("password", "wrong horse")],
            &[],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(bad.body.contains("The user name or password is wrong."));
    assert_eq!(
        t.last_failure().await.map(|f| f.0).as_deref(),
        Some("password_refused")
    );
    let nobody = t
        .post(
            "/login",
            &[("username", "nobody"), ("password", "correct horse")],
            &[],
        )
        .await;
    assert_eq!(nobody.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        nobody.body.replace("nobody", "jdoe"),
        bad.body.replace("wrong horse", "correct horse"),
        "an unknown user must look like a wrong password"
    );

    // DOMAIN\user and different case reach the same user under the default rule.
    let ok = t
        .post(
            "/login",
            &[
                ("username", "EXAMPLE\\JDoe"),
                ("password", "correct horse"),
                ("target", "/desk"),
            ],
            &[],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert_eq!(ok.location.as_deref(), Some("https://sp.example.test/desk"));
    let session = cookie(&ok, "ssogate_session").expect("session");
    let c = t.get("/auth/check", &[&session]).await;
    assert_eq!(
        c.headers.get("x-auth-user").and_then(|v| v.to_str().ok()),
        Some("jdoe")
    );

    // Signing in again with that session's cookie gives a new session ID (no fixation): the
    // old one no longer answers.
    let again = t
        .post(
            "/login",
            &[("username", "jdoe"), ("password", "correct horse")],
            &[&session],
        )
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.body);
    let renewed = cookie(&again, "ssogate_session").expect("a new session cookie");
    assert_ne!(renewed, session, "the session ID changes at sign-in");
    assert_eq!(
        t.get("/auth/check", &[&session]).await.status,
        StatusCode::UNAUTHORIZED,
        "the replaced session is gone"
    );
    assert_eq!(
        t.get("/auth/check", &[&renewed]).await.status,
        StatusCode::OK
    );
    let session = renewed;

    // A form posted from another origin is refused (login CSRF).
    let req = Request::post(format!("{HOST}/login"))
        .header(header::HOST, "sp.example.test")
        .header(header::ORIGIN, "https://evil.example")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("username=jdoe&password=correct+horse"))
        .expect("request");
    let a = t.send(req).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(cookie(&a, "ssogate_session").is_none());

    // GET /logout changes nothing (a link or image elsewhere must not sign anyone out): it
    // shows a button that POSTs.
    let page = t.get("/logout", &[&session]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("method=\"post\"") && page.body.contains("/logout"),
        "{}",
        page.body
    );
    assert_eq!(
        t.get("/auth/check", &[&session]).await.status,
        StatusCode::OK
    );
    // Logout without SLO: the session ends here.
    let out = t.post("/logout", &[], &[&session]).await;
    assert_eq!(out.status, StatusCode::OK);
    assert!(out.body.contains("signed out"), "{}", out.body);
    assert_eq!(
        t.get("/auth/check", &[&session]).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn tenants_resolve_from_path_login_domain_or_the_implicit_one() {
    let t = TestApp::new(true).await;
    let s: &dyn Store = t.store.as_ref();
    let rng = SeededRng::new(5);
    admin::tenant_add(
        s,
        "acme",
        TenantInput {
            login_domains: Some(vec!["acme.com".into(), "ACME".into()]),
            sso_enabled: Some(true),
            idp: Some("idp".into()),
            ..Default::default()
        },
    )
    .await
    .expect("acme");
    admin::tenant_add(
        s,
        "beta",
        TenantInput {
            login_domains: Some(vec!["beta.org".into()]),
            ..Default::default()
        },
    )
    .await
    .expect("beta");
    admin::user_add(
        s,
        &rng,
        "beta",
        UserInput {
            username: Some("bob".into()),
            password: Some(Secret::new("bobs password".into())),
            ..Default::default()
        },
    )
    .await
    .expect("bob");

    // Multi-tenant, no tenant in the path: ask for the login name.
    let a = t.get("/login", &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("user@domain"), "{}", a.body);
    // The login domain picks the tenant: acme has SSO, so off to the IdP.
    let a = t
        .post("/login", &[("username", "agent@ACME.com")], &[])
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(
        a.location
            .as_deref()
            .is_some_and(|l| l.starts_with("https://idp.example.test/sso?SAMLRequest="))
    );
    let a = t.post("/login", &[("username", "ACME\\agent")], &[]).await;
    assert!(
        a.location
            .as_deref()
            .is_some_and(|l| l.starts_with("https://idp.example.test/sso?"))
    );
    // beta has no SSO: its password.
    let a = t
        .post(
            "/login",
            &[("username", "bob@beta.org"), ("password", "bobs password")],
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let session = cookie(&a, "ssogate_session").expect("session");
    let c = t.get("/auth/check", &[&session]).await;
    assert_eq!(
        c.headers.get("x-auth-tenant").and_then(|v| v.to_str().ok()),
        Some("beta")
    );
    // An unknown domain: said on the form.
    let a = t
        .post(
            "/login",
            &[("username", "x@nowhere.net"), ("password", "whatever1")],
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.body.contains("No organisation signs in with the domain"),
        "{}",
        a.body
    );
    let a = t
        .post(
            "/login",
            &[("username", "bob"), ("password", "bobs password")],
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("with its domain"), "{}", a.body);
    // The path names the tenant.
    let a = t.get("/t/acme/login", &[]).await;
    assert!(
        a.location
            .as_deref()
            .is_some_and(|l| l.starts_with("https://idp.example.test/sso?"))
    );
    let a = t.get("/t/beta/login", &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("Sign in to beta"));
    // With a display name, agents read it (the key stays in the path).
    admin::tenant_set(
        t.store.as_ref(),
        "beta",
        TenantInput {
            display_name: Some("Beta & Sons".into()),
            ..Default::default()
        },
    )
    .await
    .expect("display name");
    let a = t.get("/t/beta/login", &[]).await;
    assert!(a.body.contains("Sign in to Beta &amp; Sons"), "{}", a.body);
    let a = t.get("/t/nope/login", &[]).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    // The portal page of a tenant sends an unknown browser to that tenant's login.
    let a = t.get("/t/beta/", &[]).await;
    assert_eq!(
        a.location.as_deref(),
        Some("https://sp.example.test/t/beta/login")
    );

    // Single-tenant mode would use the implicit tenant: see the other tests.
}

#[tokio::test]
async fn security_headers_and_a_database_that_is_down() {
    let t = TestApp::new(false).await;
    let a = t.get("/login", &[]).await;
    for h in [
        "content-security-policy",
        "x-content-type-options",
        "referrer-policy",
        "x-frame-options",
    ] {
        assert!(a.headers.contains_key(h), "{h} missing");
    }
    assert!(
        a.headers["content-security-policy"]
            .to_str()
            .expect("ascii")
            .contains("frame-ancestors 'none'")
    );
    let m = t.get("/saml/metadata", &[]).await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(
        m.body.contains("entityID=\"https://sp.example.test/\"") && m.body.contains(ACS),
        "{}",
        m.body
    );

    t.store.close().await;
    let a = t.acs(&unsolicited().signed_assertion(idp()), &[]).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(a.body.contains("Reference: <code>SG-"), "{}", a.body);
    let a = t.get("/auth/check", &["ssogate_session=abc"]).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    let a = t.get("/login", &[]).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
}

/// Bytes no IdP or browser would send, at every endpoint that reads a request: each gets an
/// answer below 500 (a refusal, a redirect or a page), never a server error or a panic.
#[tokio::test]
async fn untrusted_bytes_never_reach_a_server_error() {
    use base64::Engine as _;
    use std::io::Write as _;

    let t = TestApp::new(false).await;
    let deflated = |b: &[u8]| {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b).expect("deflate");
        base64::engine::general_purpose::STANDARD.encode(e.finish().expect("deflate"))
    };
    let enc = |s: &str| serde_urlencoded::to_string([("v", s)]).expect("encode")[2..].to_string();
    // A small xorshift: the same bytes on every run, so a failure can be replayed.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    };

    let mut payloads: Vec<String> = vec![
        String::new(),
        "A".into(),
        "%%%".into(),
        "====".into(),
        b64("<x/>"),
        b64("<!DOCTYPE x [<!ENTITY a SYSTEM \"file:///etc/passwd\">]><x>&a;</x>"),
        b64("<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\"/>"),
        b64("<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_1\"/>"),
        b64("<samlp:LogoutResponse xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" InResponseTo=\"_x\"/>"),
        deflated(b"<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_1\"/>"),
        deflated(&random(300)),
        "A".repeat(400 * 1024),
    ];
    for n in [1, 7, 64, 1000] {
        payloads.push(base64::engine::general_purpose::STANDARD.encode(random(n)));
    }

    let mut requests: Vec<(String, String, Vec<u8>)> = Vec::new(); // (method, path and query, body)
    for p in &payloads {
        let p = enc(p);
        for field in ["SAMLResponse", "SAMLRequest"] {
            for path in ["/saml/acs", "/saml/slo", "/login", "/logout"] {
                requests.push((
                    "POST".into(),
                    path.into(),
                    format!("{field}={p}&RelayState={p}").into_bytes(),
                ));
            }
            if p.len() < 8 * 1024 {
                for q in [
                    format!("{field}={p}"),
                    format!(
                        "{field}={p}&SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256"
                    ),
                    format!("{field}={p}&SigAlg=x&SigAlg=y&Signature={p}"),
                    format!("{field}={p}&Signature={p}&Signature=AAAA"),
                    format!("{field}={p}&{field}={p}"),
                ] {
                    requests.push(("GET".into(), format!("/saml/slo?{q}"), Vec::new()));
                }
            }
        }
    }
    for body in [
        random(200),
        vec![0xff, 0xfe, 0x00, b'=', 0xc3],
        b"SAMLResponse=%ff%fe%00".to_vec(),
        b"username=&password=".to_vec(),
        b"username=%00&password=%ff".to_vec(),
        format!("username={}&password=x", "a".repeat(100_000)).into_bytes(),
        b"tenant=..%2F..&username=a%40b&password=x".to_vec(),
    ] {
        for path in [
            "/saml/acs",
            "/saml/slo",
            "/login",
            "/t/default/login",
            "/logout",
        ] {
            requests.push(("POST".into(), path.into(), body.clone()));
        }
    }
    for q in [
        "/login?target=%ff%fe",
        "/login?target=%2F%2Fevil.example",
        "/login?target=",
        "/t/%ff/login",
        "/t/..%2F..%2Fetc/login",
        "/t/a%00b/",
        "/saml/slo?",
        "/saml/slo?SAMLRequest",
        "/saml/slo?=&=&&",
        "/saml/slo?SAMLRequest=%zz",
        "/signed-out?x=%ff",
    ] {
        requests.push(("GET".into(), q.into(), Vec::new()));
    }

    let long = "x".repeat(8000);
    let cookie_sets: [&[&str]; 3] = [
        &[],
        &["ssogate_session=not-a-session-id", "ssogate_binding=%ff%00"],
        &[&format!("ssogate_session={long}")],
    ];
    let mut answered = 0;
    for (method, path, body) in &requests {
        for cookies in cookie_sets {
            let mut b = Request::builder()
                .method(method.as_str())
                .uri(format!("{HOST}{path}"))
                .header(header::HOST, "sp.example.test")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            if !cookies.is_empty() {
                b = b.header(header::COOKIE, cookies.join("; "));
            }
            let a = t
                .send(b.body(Body::from(body.clone())).expect("request"))
                .await;
            assert!(
                !a.status.is_server_error(),
                "{method} {path} with {} body bytes and cookies {:?}: {} {}",
                body.len(),
                cookies
                    .iter()
                    .map(|c| &c[..c.len().min(40)])
                    .collect::<Vec<_>>(),
                a.status,
                &a.body[..a.body.len().min(300)]
            );
            answered += 1;
        }
    }
    for path in ["/auth/check", "/auth/session", "/", "/saml/metadata"] {
        for cookies in cookie_sets {
            let a = t.get(path, cookies).await;
            assert!(!a.status.is_server_error(), "GET {path}: {}", a.status);
            answered += 1;
        }
    }
    assert!(answered > 500, "{answered} requests");
    // The refusals at the SAML endpoints were recorded with a reason.
    let (reason, detail) = t.last_failure().await.expect("a failure record");
    assert!(
        !reason.is_empty() && !detail.is_empty(),
        "{reason}: {detail}"
    );
}
