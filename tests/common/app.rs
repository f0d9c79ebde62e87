//! The service in process, for tests: `app().oneshot(…)` on in-memory SQLite with a fixed clock
//! and a seeded random generator; one SP, one IdP (the generated test keys) and the default
//! tenant with SSO on, login domains `example` and `example.com`, and the user `jdoe`.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use ssogate::clock::FixedClock;
use ssogate::config::Config;
use ssogate::domain::admin::{self, IdpInput, SpInput, TenantInput, UserInput};
use ssogate::rng::SeededRng;
use ssogate::saml::bindings::decode_redirect;
use ssogate::saml::xml::Limits;
use ssogate::saml::xmldsig::AlgorithmPolicy;
use ssogate::store::Store;
use ssogate::store::sqlite::SqliteStore;
use ssogate::web::client::Peer;
use ssogate::web::{AppState, app};
use tower::ServiceExt;

use super::generate::{self, IDP, SP, Template, USER_ATTR, b64, idp};

pub const HOST: &str = "https://sp.example.test";

pub struct TestApp {
    pub state: AppState,
    pub router: Router,
    pub store: Arc<SqliteStore>,
    pub clock: Arc<FixedClock>,
}

pub struct Answer {
    /// The refusal the service attached to its answer, if it refused.
    pub refusal: Option<Arc<ssogate::web::Refusal>>,
    pub status: StatusCode,
    pub location: Option<String>,
    pub cookies: Vec<String>,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

pub async fn answer(res: Response<Body>) -> Answer {
    let status = res.status();
    let refusal = res
        .extensions()
        .get::<Arc<ssogate::web::Refusal>>()
        .cloned();
    let headers = res.headers().clone();
    let location = headers
        .get(header::LOCATION)
        .map(|l| l.to_str().expect("ascii location").to_string());
    let cookies = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|c| c.to_str().expect("ascii cookie").to_string())
        .collect();
    let body = String::from_utf8_lossy(&res.into_body().collect().await.expect("body").to_bytes())
        .into_owned();
    Answer {
        refusal,
        status,
        location,
        cookies,
        headers,
        body,
    }
}

/// `name=value` of the cookie `name` set by `a`.
pub fn cookie(a: &Answer, name: &str) -> Option<String> {
    a.cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap_or("").to_string())
}

impl TestApp {
    pub async fn new(multi_tenant: bool) -> TestApp {
        TestApp::with_config(Config {
            multi_tenant,
            // Every refusal of these tests gets its own record (the per-client fold has its own
            // test in tests/hostile.rs).
            failure_records_per_minute: 100_000,
            ..Config::default()
        })
        .await
    }

    /// The standard setup under `config`.
    pub async fn with_config(config: Config) -> TestApp {
        let store = Arc::new(SqliteStore::memory().await.expect("in-memory store"));
        TestApp::with_store(config, store).await
    }

    /// The standard setup under `config`, on `store`.
    pub async fn with_store(config: Config, store: Arc<SqliteStore>) -> TestApp {
        let rng = SeededRng::new(7);
        let s: &dyn Store = store.as_ref();
        admin::ensure_default_tenant(s)
            .await
            .expect("default tenant");
        admin::sp_add(
            s,
            &rng,
            SpInput {
                host_url: HOST.into(),
                entity_id: Some(SP.into()),
                ..Default::default()
            },
        )
        .await
        .expect("sp");
        let cert = String::from_utf8(idp().cert_pem.clone()).expect("pem");
        let input = IdpInput {
            name: Some("idp".into()),
            entity_id: Some(IDP.into()),
            sso_url: Some("https://idp.example.test/sso".into()),
            slo_url: Some("https://idp.example.test/slo".into()),
            username: Some(USER_ATTR.into()),
            certificates: vec![cert],
            ..Default::default()
        };
        admin::idp_add(s, input).await.expect("idp");
        let sso = TenantInput {
            sso_enabled: Some(true),
            idp: Some("idp".into()),
            // The IdP asserts EXAMPLE\jdoe: its domain is the tenant's.
            login_domains: Some(vec!["example".into(), "example.com".into()]),
            ..Default::default()
        };
        admin::tenant_set(s, "default", sso).await.expect("tenant");
        admin::user_add(
            s,
            &rng,
            "default",
            UserInput {
                username: Some("jdoe".into()),
                display_name: Some("Jane Doe".into()),
                ..Default::default()
            },
        )
        .await
        .expect("user");
        let clock = Arc::new(FixedClock::new(generate::now()));
        let state = AppState::new(
            store.clone(),
            clock.clone(),
            Arc::new(SeededRng::new(11)),
            Arc::new(config),
        );
        TestApp {
            router: app(state.clone(), true),
            store,
            clock,
            state,
        }
    }

    pub async fn send(&self, req: Request<Body>) -> Answer {
        answer(self.router.clone().oneshot(req).await.expect("infallible")).await
    }

    /// A request from client address `from` (the TCP peer the server would see), with extra
    /// headers.
    pub async fn request_from(
        &self,
        from: IpAddr,
        method: &str,
        path: &str,
        form: Option<&[(&str, &str)]>,
        cookies: &[&str],
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{HOST}{path}"))
            .header(header::HOST, "sp.example.test");
        if !cookies.is_empty() {
            b = b.header(header::COOKIE, cookies.join("; "));
        }
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        let body = match form {
            Some(f) => {
                b = b.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(serde_urlencoded::to_string(f).expect("form"))
            }
            None => Body::empty(),
        };
        let mut req = b.body(body).expect("request");
        req.extensions_mut()
            .insert(Peer(SocketAddr::new(from, 40000)));
        self.send(req).await
    }

    pub async fn get(&self, path: &str, cookies: &[&str]) -> Answer {
        let mut b = Request::get(format!("{HOST}{path}")).header(header::HOST, "sp.example.test");
        if !cookies.is_empty() {
            b = b.header(header::COOKIE, cookies.join("; "));
        }
        self.send(b.body(Body::empty()).expect("request")).await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)], cookies: &[&str]) -> Answer {
        let body = serde_urlencoded::to_string(form).expect("form");
        let mut b = Request::post(format!("{HOST}{path}"))
            .header(header::HOST, "sp.example.test")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if !cookies.is_empty() {
            b = b.header(header::COOKIE, cookies.join("; "));
        }
        self.send(b.body(Body::from(body)).expect("request")).await
    }

    /// Starts a login; returns the AuthnRequest ID and the cookie that holds the pending request.
    pub async fn start_login(&self, path: &str) -> (String, String) {
        let a = self.get(path, &[]).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        let loc = a.location.clone().expect("location");
        assert!(
            loc.starts_with("https://idp.example.test/sso?SAMLRequest="),
            "{loc}"
        );
        let query = loc.split_once('?').expect("query").1;
        let msg = decode_redirect(query, &Limits::default(), AlgorithmPolicy::default())
            .expect("our own request decodes");
        let xml = String::from_utf8(msg.xml).expect("utf-8");
        let i = xml.find(" ID=\"").expect("ID") + 5;
        let id = xml[i..i + xml[i..].find('"').expect("quote")].to_string();
        let pending = a
            .cookies
            .iter()
            .find(|c| c.starts_with("ssogate_rq_"))
            .map(|c| c.split(';').next().unwrap_or("").to_string())
            .expect("pending-request cookie");
        (id, pending)
    }

    pub async fn acs(&self, response_xml: &str, cookies: &[&str]) -> Answer {
        self.post(
            "/saml/acs",
            &[("SAMLResponse", &b64(response_xml))],
            cookies,
        )
        .await
    }

    pub async fn last_failure(&self) -> Option<(String, String)> {
        self.store
            .failures_recent(1)
            .await
            .expect("failures")
            .into_iter()
            .next()
            .map(|f| (f.reason, f.detail))
    }
}

/// One field changed in a response template.
pub type Change = Box<dyn Fn(Template) -> Template>;

pub fn answering(id: &str) -> Template {
    Template {
        response_in_response_to: Some(id.into()),
        scd_in_response_to: Some(id.into()),
        ..Template::default()
    }
}

pub fn unsolicited() -> Template {
    Template {
        response_in_response_to: None,
        scd_in_response_to: None,
        ..Template::default()
    }
}
