//! The few HTML pages an agent sees. Every value is escaped; no inline script or style (the CSP
//! allows only our own static files).

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::domain::ServiceProvider;
use crate::saml::bindings::xml_escape as esc;

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}\
main{max-width:28rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002}\
h1{font-size:1.3rem;margin-top:0}label{display:block;margin:.8rem 0 .2rem}input[type=text],input[type=password]{width:100%;padding:.5rem;box-sizing:border-box}\
button{margin-top:1rem;padding:.5rem 1.2rem}a.button{display:inline-block;margin-top:1rem;padding:.5rem 1.2rem;border:1px solid #889;border-radius:3px;color:inherit;text-decoration:none}.ref{color:#667;font-size:.85rem}.error{color:#a00}";

const AUTOPOST_JS: &str = "document.addEventListener('DOMContentLoaded',function(){var f=document.getElementById('saml-post');if(f){f.submit();}});";

pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

pub async fn autopost_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        AUTOPOST_JS,
    )
        .into_response()
}

fn base(sp: Option<&ServiceProvider>) -> String {
    sp.map(|s| s.host_url.clone()).unwrap_or_default()
}

/// A whole page around `body` (already escaped HTML).
pub fn layout(sp: Option<&ServiceProvider>, title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{}</title><link rel=\"stylesheet\" href=\"{}/static/ssogate.css\"></head><body><main>{body}</main></body></html>",
        esc(title),
        esc(&base(sp))
    )
}

/// A short message page, with a reference when something failed.
pub fn message(
    sp: Option<&ServiceProvider>,
    status: StatusCode,
    title: &str,
    text: &str,
    reference: Option<&str>,
) -> Response {
    let r = reference
        .map(|r| format!("<p class=\"ref\">Reference: <code>{}</code></p>", esc(r)))
        .unwrap_or_default();
    let body = format!("<h1>{}</h1><p>{}</p>{r}", esc(title), esc(text));
    (status, Html(layout(sp, title, &body))).into_response()
}

/// The login form: login name (and password for local accounts).
pub fn login_form(
    sp: &ServiceProvider,
    action: &str,
    target: &str,
    tenant: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    login_form_with(sp, action, target, tenant, error, status, "")
}

/// The "Sign in with Circuit" button: a form that POSTs (no JavaScript) the tenant and target.
pub fn circuit_button(sp: &ServiceProvider, tenant: &str, target: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}/oauth/circuit/start\" class=\"circuit\">\
         <input type=\"hidden\" name=\"tenant\" value=\"{}\"><input type=\"hidden\" name=\"target\" value=\"{}\">\
         <button type=\"submit\" id=\"circuit-sign-in\">Sign in with Circuit</button></form>",
        esc(&sp.host_url),
        esc(tenant),
        esc(target)
    )
}

/// A tenant with single sign-on and Circuit: the agent chooses.
pub fn sign_in_choice(
    sp: &ServiceProvider,
    title: &str,
    sso_href: &str,
    circuit: &str,
) -> Response {
    let title = format!("Sign in to {title}");
    let body = format!(
        "<h1>{}</h1><p>Choose how to sign in.</p>\
         <p><a class=\"button\" id=\"company-sign-on\" href=\"{}\">Company sign-on</a></p>{circuit}",
        esc(&title),
        esc(sso_href)
    );
    (StatusCode::OK, Html(layout(Some(sp), &title, &body))).into_response()
}

/// The login form with `extra` (already escaped HTML: the Circuit button) below it.
pub fn login_form_with(
    sp: &ServiceProvider,
    action: &str,
    target: &str,
    tenant: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
    extra: &str,
) -> Response {
    let err = error
        .map(|e| format!("<p class=\"error\">{}</p>", esc(e)))
        .unwrap_or_default();
    let hint = if tenant.is_none() {
        "<p class=\"ref\">With single sign-on or Circuit, enter <code>user@domain</code> and leave the password empty.</p>"
    } else {
        ""
    };
    let title = match tenant {
        Some(t) => format!("Sign in to {t}"),
        None => "Sign in".to_string(),
    };
    let body = format!(
        "<h1>{}</h1>{err}<form method=\"post\" action=\"{}\">\
         <input type=\"hidden\" name=\"target\" value=\"{}\">\
         <label for=\"username\">User name</label><input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" autofocus>\
         <label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\">\
         <button type=\"submit\">Sign in</button></form>{extra}{hint}",
        esc(&title),
        esc(&format!("{}{action}", sp.host_url)),
        esc(target)
    );
    (status, Html(layout(Some(sp), &title, &body))).into_response()
}

/// The sign-out button: a form that POSTs to `/logout` (a GET changes nothing).
pub fn logout_button(sp: &ServiceProvider) -> String {
    format!(
        "<form method=\"post\" action=\"{}/logout\"><button type=\"submit\">Sign out</button></form>",
        esc(&sp.host_url)
    )
}

/// An auto-submitting form that carries a SAML message by HTTP-POST.
pub fn saml_post(
    sp: &ServiceProvider,
    destination: &str,
    param: &str,
    b64: &str,
    relay_state: Option<&str>,
) -> Response {
    let relay = relay_state
        .map(|r| {
            format!(
                "<input type=\"hidden\" name=\"RelayState\" value=\"{}\">",
                esc(r)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<h1>Signing in…</h1><form id=\"saml-post\" method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"{}\" value=\"{}\">{relay}\
         <noscript><p>JavaScript is off: press Continue.</p></noscript><button type=\"submit\">Continue</button></form>\
         <script src=\"{}/static/autopost.js\"></script>",
        esc(destination),
        esc(param),
        esc(b64),
        esc(&sp.host_url)
    );
    let mut res = Html(layout(Some(sp), "Signing in", &body)).into_response();
    // The form goes to the IdP: the CSP's form-action must allow it.
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("default-src 'none'; style-src 'self'; script-src 'self'; base-uri 'none'; frame-ancestors 'none'"),
    );
    res
}

pub async fn not_found() -> Response {
    message(
        None,
        StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing at this address.",
        None,
    )
}
