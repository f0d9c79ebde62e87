//! The Web Manager and the JSON API in process: administrators, sessions, API calls.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;
use ssogate::domain::Secret;
use ssogate::domain::admin::{self, UserInput};
use ssogate::rng::SeededRng;

use super::app::{Answer, HOST, TestApp, cookie};

pub const ROOT_PASSWORD: &str = "root-password-1";

/// How a call authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    /// A Web Manager session: its cookie and CSRF token (sent as the header when `csrf`).
    Session {
        cookie: String,
        csrf: String,
    },
    /// The session's cookie without its CSRF token.
    SessionNoCsrf {
        cookie: String,
    },
    Bearer(String),
    /// Any other cookie (an agent's portal session).
    Cookie(String),
}

/// Adds a user with a password and roles to `tenant`.
pub async fn add_user(t: &TestApp, tenant: &str, name: &str, password: &str, roles: &[&str]) {
    admin::user_add(
        t.store.as_ref(),
        &SeededRng::new(3),
        tenant,
        UserInput {
            username: Some(name.into()),
            password: Some(Secret::new(password.into())),
            roles: Some(roles.iter().map(|r| r.to_string()).collect()),
            ..Default::default()
        },
    )
    .await
    .expect("user");
}

/// Signs in to the Web Manager; the answer.
pub async fn sign_in(t: &TestApp, username: &str, tenant: &str, password: &str) -> Answer {
    t.post(
        "/webmanager/signin",
        &[
            ("username", username),
            ("tenant", tenant),
            ("password", password),
        ],
        &[],
    )
    .await
}

/// A signed-in session of `username` (whose password is no one-time one).
pub async fn session(t: &TestApp, username: &str, tenant: &str, password: &str) -> Auth {
    let a = sign_in(t, username, tenant, password).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "sign-in: {}", a.body);
    let c = cookie(&a, "ssogate_admin").expect("the admin cookie");
    let me = call(
        t,
        "GET",
        "/api/v1/me",
        None,
        &Auth::SessionNoCsrf { cookie: c.clone() },
    )
    .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    let csrf = json(&me)["csrf_token"].as_str().expect("csrf").to_string();
    Auth::Session { cookie: c, csrf }
}

/// A central administrator `root` of the default tenant, signed in.
pub async fn root(t: &TestApp) -> Auth {
    add_user(t, "default", "root", ROOT_PASSWORD, &["central-admin"]).await;
    session(t, "root", "default", ROOT_PASSWORD).await
}

pub fn json(a: &Answer) -> Value {
    serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", a.body))
}

/// One call: `method path` with an optional JSON body.
pub async fn call(
    t: &TestApp,
    method: &str,
    path: &str,
    body: Option<&Value>,
    auth: &Auth,
) -> Answer {
    call_with(t, method, path, body, auth, &[]).await
}

pub async fn call_with(
    t: &TestApp,
    method: &str,
    path: &str,
    body: Option<&Value>,
    auth: &Auth,
    headers: &[(&str, &str)],
) -> Answer {
    let mut b = Request::builder()
        .method(method)
        .uri(format!("{HOST}{path}"))
        .header(header::HOST, "sp.example.test");
    match auth {
        Auth::None => {}
        Auth::Session { cookie, csrf } => {
            b = b
                .header(header::COOKIE, cookie)
                .header("x-csrf-token", csrf);
        }
        Auth::SessionNoCsrf { cookie } | Auth::Cookie(cookie) => {
            b = b.header(header::COOKIE, cookie);
        }
        Auth::Bearer(token) => {
            b = b.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
    }
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    let req = match body {
        Some(v) => b
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(v.to_string())),
        None => b.body(Body::empty()),
    }
    .expect("request");
    t.send(req).await
}

/// A form POST to a Web Manager page as `auth` (its CSRF token added unless `csrf` is false).
pub async fn form(
    t: &TestApp,
    path: &str,
    fields: &[(&str, &str)],
    auth: &Auth,
    csrf: bool,
) -> Answer {
    let mut f: Vec<(&str, &str)> = fields.to_vec();
    let (cookie, token) = match auth {
        Auth::Session { cookie, csrf } => (cookie.as_str(), csrf.as_str()),
        Auth::SessionNoCsrf { cookie } | Auth::Cookie(cookie) => (cookie.as_str(), ""),
        _ => ("", ""),
    };
    if csrf {
        f.push(("csrf", token));
    }
    let cookies: Vec<&str> = if cookie.is_empty() {
        vec![]
    } else {
        vec![cookie]
    };
    t.post(path, &f, &cookies).await
}

pub fn page_get_cookie(auth: &Auth) -> Vec<String> {
    match auth {
        Auth::Session { cookie, .. } | Auth::SessionNoCsrf { cookie } | Auth::Cookie(cookie) => {
            vec![cookie.clone()]
        }
        _ => vec![],
    }
}

/// GET of a Web Manager page as `auth`.
pub async fn page(t: &TestApp, path: &str, auth: &Auth) -> Answer {
    let c = page_get_cookie(auth);
    let refs: Vec<&str> = c.iter().map(String::as_str).collect();
    t.get(path, &refs).await
}

/// The request of [`call`], answered without reading the body (an event stream never ends).
pub async fn open(t: &TestApp, path: &str, auth: &Auth) -> axum::http::Response<Body> {
    use tower::ServiceExt;
    let mut b = Request::builder()
        .method("GET")
        .uri(format!("{HOST}{path}"))
        .header(header::HOST, "sp.example.test");
    match auth {
        Auth::Session { cookie, .. } | Auth::SessionNoCsrf { cookie } | Auth::Cookie(cookie) => {
            b = b.header(header::COOKIE, cookie);
        }
        Auth::Bearer(token) => {
            b = b.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        Auth::None => {}
    }
    t.router
        .clone()
        .oneshot(b.body(Body::empty()).expect("request"))
        .await
        .expect("infallible")
}

/// Reads `body` until `want` appears in it or `limit` passes; what was read.
pub async fn read_until(body: &mut Body, want: &str, limit: std::time::Duration) -> String {
    use http_body_util::BodyExt;
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + limit;
    while !seen.contains(want) {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    seen.push_str(&String::from_utf8_lossy(d));
                }
            }
            _ => break,
        }
    }
    seen
}
