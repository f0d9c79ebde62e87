//! `/webmanager`: the administrators' pages. Templates are maud (every value escaped); no
//! inline script or style (the CSP stays): Copy uses `/webmanager/static/admin.js`, and
//! everything else works without JavaScript. A refused form comes back with its input (never
//! a password or a key) and the message beside the field; nothing is saved.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;

use super::form::FormData;
use super::{PageAuthed, Principal, Scope, Secure, csrf_ok};
use crate::domain::admin::{self, AdminError, IdpInput, SpInput, TenantInput, UserInput};
use crate::domain::audit::{ApiClientView, CertView, IdpView, SpView, TrustView, mapping_text};
use crate::domain::username::{claim_identity, domain_key, split};
use crate::domain::{Binding, Secret};
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::client::ClientAddr;
use crate::web::login::see_other;
use crate::web::refusal::{Reason, Refusal};

const CSS: &str = include_str!("admin.css");
const JS: &str = include_str!("admin.js");

/// Username mappings offered in the list beside the text field.
pub const MAPPINGS: &[(&str, &str)] = &[
    (
        "http://schemas.microsoft.com/ws/2008/06/identity/claims/windowsaccountname",
        "ADFS windowsaccountname (DOMAIN\\user)",
    ),
    (
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
        "UPN (user@domain)",
    ),
    (
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
        "E-mail address",
    ),
    ("NameID", "NameID (the subject)"),
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/static/admin.css", get(stylesheet))
        .route("/static/admin.js", get(script))
        .route("/signin", get(signin_page).post(signin_submit))
        .route(
            "/signin/code",
            get(super::account::code_page).post(super::account::code_submit),
        )
        .route("/account", get(super::account::account))
        .route("/account/totp", post(super::account::totp_enable))
        .route("/account/totp/disable", post(super::account::totp_disable))
        .route("/signout", post(signout))
        .route("/password", get(password_page).post(password_submit))
        .route("/sps", get(sp_list))
        .route("/sps/new", get(sp_new).post(sp_create))
        .route("/sps/{id}", get(sp_edit).post(sp_update))
        .route("/sps/{id}/delete", post(sp_delete))
        .route("/sps/{id}/metadata", get(sp_metadata))
        .route("/sps/{id}/metadata.xml", get(sp_metadata_download))
        .route("/idps", get(idp_list))
        .route("/idps/new", get(idp_new).post(idp_create))
        .route("/idps/import", get(idp_import_page).post(idp_import_submit))
        .route("/idps/{name}", get(idp_edit).post(idp_update))
        .route("/idps/{name}/delete", post(idp_delete))
        .route("/idps/{name}/refresh", post(idp_refresh))
        .route("/tenants", get(tenant_list))
        .route("/settings", post(settings_submit))
        .route("/tenants/new", get(tenant_new).post(tenant_create))
        .route("/tenants/{name}", get(tenant_edit).post(tenant_update))
        .route("/tenants/{name}/delete", post(tenant_delete))
        .route("/circuit", get(super::circuit::pick))
        .route(
            "/circuit/{tenant}",
            get(super::circuit::edit).post(super::circuit::update),
        )
        .route("/users", get(user_list))
        .route("/users/new", get(user_new).post(user_create))
        .route(
            "/users/{tenant}/{username}",
            get(user_edit).post(user_update),
        )
        .route("/users/{tenant}/{username}/delete", post(user_delete))
        .route(
            "/users/{tenant}/{username}/totp-reset",
            post(super::account::totp_reset),
        )
        .route("/api-clients", get(client_list))
        .route("/api-clients/new", get(client_new).post(client_create))
        .route("/api-clients/{name}/regenerate", post(client_regenerate))
        .route("/api-clients/{name}/delete", post(client_delete))
        .route("/activity", get(activity))
        .route("/activity/end", post(activity_end))
        .route("/audit", get(audit))
        .route("/tracer", get(tracer_page).post(tracer_submit))
        .route("/tracer/capture", post(capture_submit))
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        JS,
    )
        .into_response()
}

/// A page, or the page that stops the request early (boxed: a `Response` is large).
pub(super) type Page = Result<Response, Halt>;

pub struct Halt(Box<Response>);

impl From<Response> for Halt {
    fn from(r: Response) -> Halt {
        Halt(Box::new(r))
    }
}

impl IntoResponse for Halt {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// The page for a database that is down (the cause goes to the log).
pub fn unavailable(e: &StoreError) -> Response {
    tracing::error!(error = %e, "Web Manager: the database is unavailable");
    bare(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        html! { h1 { "The Web Manager is unavailable" } p { "The database cannot be reached. Nothing was changed; please try again in a moment." } },
    )
}

pub(super) fn store_err(e: StoreError) -> Response {
    unavailable(&e)
}

pub(super) fn admin_store(e: AdminError) -> Response {
    match e {
        AdminError::Store(s) => unavailable(&s),
        other => message(StatusCode::NOT_FOUND, "Not found", &other.to_string()),
    }
}

pub(super) fn bare(status: StatusCode, title: &str, body: Markup) -> Response {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width";
                title { (title) " · ssogate Web Manager" }
                link rel="stylesheet" href="/webmanager/static/admin.css";
            }
            body.narrow { main { (body) } }
        }
    };
    (status, Html(page.into_string())).into_response()
}

pub(super) fn message(status: StatusCode, title: &str, text: &str) -> Response {
    bare(
        status,
        title,
        html! { h1 { (title) } p { (text) } p { a href="/webmanager/" { "Back" } } },
    )
}

/// A page of the signed-in Web Manager: navigation, the account, sign-out.
pub(super) fn layout(p: &Principal, status: StatusCode, title: &str, body: Markup) -> Response {
    let csrf = p.csrf.clone().unwrap_or_default();
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width";
                title { (title) " · ssogate Web Manager" }
                link rel="stylesheet" href="/webmanager/static/admin.css";
                script src="/webmanager/static/admin.js" defer {}
            }
            body {
                header {
                    span.brand { "ssogate Web Manager" }
                    nav {
                        @if p.is_central() {
                            span.group { "Authentication configuration:" }
                            a href="/webmanager/sps" { "Service providers" }
                            a href="/webmanager/idps" { "Identity providers" }
                            a href="/webmanager/tenants" { "Tenants" }
                            a href="/webmanager/circuit" { "Circuit" }
                            a href="/webmanager/users" { "Users" }
                            a href="/webmanager/api-clients" { "API clients" }
                        } @else {
                            span.group { "Authentication configuration:" }
                            a href="/webmanager/circuit" { "Circuit" }
                        }
                        a href="/webmanager/activity" { "Sign-in activity" }
                        @if p.is_central() {
                            a href="/webmanager/tracer" { "SAML tracer" }
                            a href="/webmanager/audit" { "Audit log" }
                        }
                    }
                    div.account {
                        @if p.user.is_some() { a href="/webmanager/account" { (p.display) } } @else { span { (p.display) } }
                        form method="post" action="/webmanager/signout" {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    };
    (status, Html(page.into_string())).into_response()
}

pub(super) fn csrf_field(p: &Principal) -> Markup {
    html! { input type="hidden" name="csrf" value=(p.csrf.clone().unwrap_or_default()); }
}

/// The message of `err` if it belongs to `field`.
pub(super) fn field_error(err: Option<&AdminError>, field: &str) -> Markup {
    match err {
        Some(e) if e.field() == Some(field) => {
            html! { p.error id={"error-" (field)} role="alert" { (e.to_string()) } }
        }
        _ => html! {},
    }
}

/// An error that names no field of the form, shown above it.
pub(super) fn form_error(err: Option<&AdminError>, fields: &[&str]) -> Markup {
    match err {
        Some(e) if e.field().is_none_or(|f| !fields.contains(&f)) => {
            html! { p.error.banner role="alert" { (e.to_string()) } }
        }
        _ => html! {},
    }
}

pub(super) fn text_input(
    label: &str,
    name: &str,
    value: &str,
    err: Option<&AdminError>,
    hint: &str,
) -> Markup {
    html! {
        div.field {
            label for=(name) { (label) }
            input type="text" id=(name) name=(name) value=(value);
            @if !hint.is_empty() { p.hint { (hint) } }
            (field_error(err, name))
        }
    }
}

fn area(label: &str, name: &str, value: &str, err: Option<&AdminError>, hint: &str) -> Markup {
    html! {
        div.field {
            label for=(name) { (label) }
            textarea id=(name) name=(name) rows="6" { (value) }
            @if !hint.is_empty() { p.hint { (hint) } }
            (field_error(err, name))
        }
    }
}

pub(super) fn checkbox(label: &str, name: &str, on: bool) -> Markup {
    html! {
        div.field.check {
            input type="checkbox" id=(name) name=(name) value="on" checked[on];
            label for=(name) { (label) }
        }
    }
}

fn binding_select(name: &str, value: Binding) -> Markup {
    html! {
        select id=(name) name=(name) {
            option value="post" selected[value == Binding::Post] { "HTTP-POST" }
            option value="redirect" selected[value == Binding::Redirect] { "HTTP-Redirect" }
        }
    }
}

fn cert_cell(c: &Option<CertView>) -> Markup {
    match c {
        None => html! { "none" },
        Some(c) => html! {
            span title=(c.sha256) { (c.subject) }
            br;
            @if c.expires_soon {
                span.warn { "expires " (c.not_after.clone().unwrap_or_default()) " — renew it" }
            } @else {
                span.hint { "until " (c.not_after.clone().unwrap_or_default()) }
            }
        },
    }
}

/// A state change must carry the session's CSRF token (403 otherwise) and, but for the
/// password change itself, come after the one-time password was replaced.
pub(super) fn check_post(p: &Principal, form: &FormData) -> Result<(), Halt> {
    if !csrf_ok(p, Some(form.get("csrf"))) {
        return Err(Halt::from(message(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "The form is missing its security token (or it is from another session). Reload the page and try again.",
        )));
    }
    Ok(())
}

/// Central administrators only, past the forced password change.
pub(super) fn central(p: &Principal) -> Result<(), Halt> {
    if let Some(first) = p.first_step() {
        return Err(see_other(first).into());
    }
    if !p.is_central() {
        let (s, t) = super::forbidden_text();
        return Err(layout(p, s, "Forbidden", html! { p { (t) } }).into());
    }
    Ok(())
}

pub async fn home(PageAuthed(p): PageAuthed) -> Response {
    if let Some(first) = p.first_step() {
        return see_other(first);
    }
    see_other(if p.is_central() {
        "/webmanager/sps"
    } else {
        "/webmanager/activity"
    })
}

// Sign-in, sign-out, password.

fn signin_form(
    status: StatusCode,
    username: &str,
    tenant: &str,
    error: Option<&str>,
    reference: Option<&str>,
) -> Response {
    bare(
        status,
        "Sign in",
        html! {
            h1 { "Web Manager" }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            @if let Some(r) = reference { p.hint { "Reference: " code { (r) } } }
            form method="post" action="/webmanager/signin" {
                div.field {
                    label for="username" { "User name" }
                    input type="text" id="username" name="username" value=(username) autocomplete="username" autofocus;
                    p.hint { "user@domain, DOMAIN\\user, or the user name with its tenant below (central administrators: tenant default)." }
                }
                div.field {
                    label for="tenant" { "Tenant (optional)" }
                    input type="text" id="tenant" name="tenant" value=(tenant);
                }
                div.field {
                    label for="password" { "Password" }
                    input type="password" id="password" name="password" autocomplete="current-password";
                }
                button type="submit" { "Sign in" }
            }
        },
    )
}

async fn signin_page() -> Response {
    signin_form(StatusCode::OK, "", "", None, None)
}

async fn signin_submit(
    State(state): State<AppState>,
    axum::Extension(Secure(secure)): axum::Extension<Secure>,
    client: Option<axum::Extension<ClientAddr>>,
    headers: HeaderMap,
    form: FormData,
) -> Result<Response, Refusal> {
    let now = state.clock.now();
    let name = form.get("username").to_string();
    let tenant_field = form.get("tenant").to_string();
    let password = form.raw("password").to_string();
    let client = client.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.0);
    let (n2, t2) = (name.clone(), tenant_field.clone());
    let wrong = move |reason: Reason, detail: String, text: &'static str| {
        let (n, t) = (n2.clone(), t2.clone());
        Refusal::new(reason, detail)
            .username(&n)
            .with_custom(move |r| {
                signin_form(StatusCode::UNAUTHORIZED, &n, &t, Some(text), Some(r))
            })
    };
    // The tenant: given, else from the name's domain, else the central administrators' home.
    let tenant = if !tenant_field.is_empty() {
        state.store.tenant_by_name(&tenant_field).await?
    } else if let Some(d) = split(&name).domain.and_then(domain_key) {
        state
            .store
            .tenant_list()
            .await?
            .into_iter()
            .find(|t| t.login_domains.contains(&d))
    } else {
        state.store.tenant_by_name(admin::DEFAULT_TENANT).await?
    };
    let Some(tenant) = tenant else {
        return Err(wrong(
            Reason::PasswordRefused,
            format!(
                "Web Manager sign-in as \"{}\": no tenant {}",
                crate::saml::echo::Echo(&name),
                if tenant_field.is_empty() {
                    "has the name's domain".to_string()
                } else {
                    format!("is named \"{}\"", crate::saml::echo::Echo(&tenant_field))
                }
            ),
            "The user name or password is wrong.",
        ));
    };
    let norm = claim_identity(&name, &tenant, &[]);
    let key = match &norm {
        Ok(n) => format!("admin:{n}"),
        Err(_) => format!("admin:{}", crate::web::refusal::bounded(&name, 256)),
    };
    if let Err(wait) = state
        .guards
        .throttle
        .check_shared(state.store.as_ref(), tenant.id.0, &key, client, now)
        .await
    {
        let (n, t) = (name.clone(), tenant_field.clone());
        let r = Refusal::new(
            Reason::PasswordThrottled,
            format!(
                "Web Manager: too many wrong passwords for \"{}\" from {client}: the next attempt is checked in {wait} s",
                crate::saml::echo::Echo(&name)
            ),
        )
        .tenant(&tenant.name)
        .username(&name)
        .with_custom(move |r| {
            signin_form(
                StatusCode::TOO_MANY_REQUESTS,
                &n,
                &t,
                Some(&format!("Too many wrong passwords. Please wait {wait} seconds and try again.")),
                Some(r),
            )
        });
        return Ok(super::throttled(r, wait));
    }
    let user = crate::web::login::password_user(
        &state,
        &tenant,
        norm.as_ref().ok().map(String::as_str),
        password,
    )
    .await?;
    let Some(user) = user else {
        let wait = state
            .guards
            .throttle
            .failed_shared(state.store.as_ref(), tenant.id.0, &key, client, now)
            .await;
        return Err(wrong(
            Reason::PasswordRefused,
            format!(
                "Web Manager: wrong user name or password for \"{}\" of tenant {:?} from {client}{}",
                crate::saml::echo::Echo(&name),
                tenant.name,
                if wait > 0 { format!("; the next attempt waits {wait} s") } else { String::new() }
            ),
            "The user name or password is wrong.",
        )
        .tenant(&tenant.name));
    };
    state
        .guards
        .throttle
        .succeeded_shared(state.store.as_ref(), tenant.id.0, &key, client)
        .await;
    if super::scope_of(&user, &tenant.name).is_none() {
        return Err(wrong(
            Reason::AdminNotAllowed,
            format!(
                "Web Manager: user {:?} of tenant {:?} has neither the central-admin nor the tenant-manager role",
                user.username, tenant.name
            ),
            "This account may not use the Web Manager.",
        )
        .tenant(&tenant.name));
    }
    // A new session ID at every sign-in; the one the browser had ends.
    super::end_old_session(&state, &headers).await?;
    // With a second factor, the code comes first; the session only after it.
    if let Some(res) = super::account::second_factor_step(&state, &user, now, secure).await? {
        return Ok(res);
    }
    tracing::info!(tenant = %tenant.name, user = %user.username, "Web Manager sign-in");
    Ok(super::signed_in_answer(&state, &user, now, secure).await?)
}

async fn signout(
    State(state): State<AppState>,
    axum::Extension(Secure(secure)): axum::Extension<Secure>,
    PageAuthed(p): PageAuthed,
    form: FormData,
) -> Page {
    check_post(&p, &form)?;
    if let Some(h) = &p.session_hash {
        state
            .store
            .admin_session_delete(h)
            .await
            .map_err(store_err)?;
    }
    let mut res = see_other("/webmanager/signin");
    res.headers_mut()
        .append(header::SET_COOKIE, super::cookie_header("", secure, None));
    Ok(res)
}

fn password_form(p: &Principal, status: StatusCode, err: Option<&AdminError>) -> Response {
    let forced = p.must_change_password();
    layout(
        p,
        status,
        "Change your password",
        html! {
            @if forced { p.banner { "Your password was a one-time password: choose your own before you go on." } }
            (form_error(err, &["password", "confirm"]))
            form method="post" action="/webmanager/password" {
                (csrf_field(p))
                div.field {
                    label for="password" { "New password" }
                    input type="password" id="password" name="password" autocomplete="new-password";
                    p.hint { "At least 8 characters." }
                    (field_error(err, "password"))
                }
                div.field {
                    label for="confirm" { "New password again" }
                    input type="password" id="confirm" name="confirm" autocomplete="new-password";
                    (field_error(err, "confirm"))
                }
                button type="submit" { "Change password" }
            }
        },
    )
}

async fn password_page(PageAuthed(p): PageAuthed) -> Page {
    if p.user.is_none() {
        return Err(message(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "API clients have no password.",
        )
        .into());
    }
    Ok(password_form(&p, StatusCode::OK, None))
}

async fn password_submit(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    form: FormData,
) -> Page {
    check_post(&p, &form)?;
    let Some(user) = p.user.clone() else {
        return Err(message(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "API clients have no password.",
        )
        .into());
    };
    let new = Secret::new(form.raw("password").to_string());
    let confirm = Secret::new(form.raw("confirm").to_string());
    match p
        .admin(&state)
        .password_change(&user, &p.user_tenant, &new, &confirm)
        .await
    {
        Ok(_) => Ok(see_other("/webmanager/")),
        Err(AdminError::Store(e)) => Err(unavailable(&e).into()),
        Err(e) => Ok(password_form(
            &p,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(&e),
        )),
    }
}

/// After a change that has no form to come back to (a delete): on to `next`, or a page saying
/// why nothing changed (with a way `back`).
pub(super) fn after_change(
    p: &Principal,
    r: Result<(), AdminError>,
    next: &str,
    title: &str,
    back: &str,
) -> Page {
    match r {
        Ok(()) => Ok(see_other(next)),
        Err(AdminError::Store(e)) => Err(unavailable(&e).into()),
        Err(e) => Ok(layout(
            p,
            status_of(&e),
            title,
            html! { p.error role="alert" { (e.to_string()) } p { a href=(back) { "Back" } } },
        )),
    }
}

pub(super) fn status_of(e: &AdminError) -> StatusCode {
    match e {
        AdminError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        AdminError::NotFound(_) => StatusCode::NOT_FOUND,
        AdminError::Conflict { .. } | AdminError::Stale(_) => StatusCode::CONFLICT,
        AdminError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

// Service providers.

async fn sp_list(State(state): State<AppState>, PageAuthed(p): PageAuthed) -> Page {
    central(&p)?;
    let now = state.clock.now();
    let sps: Vec<SpView> = state
        .store
        .sp_list()
        .await
        .map_err(store_err)?
        .iter()
        .map(|s| SpView::of_with(s, now, &state.cert_views))
        .collect();
    Ok(layout(
        &p,
        StatusCode::OK,
        "Service providers",
        html! {
            p { "The agent portal as identity providers see it. Give an IdP the SP's metadata (Get metadata)." }
            p { a.button href="/webmanager/sps/new" { "Add service provider" } }
            table {
                thead { tr { th { "Host URL" } th { "Entity ID" } th { "Endpoints" } th { "Key" } th { "Certificate" } th {} } }
                tbody {
                    @for s in &sps {
                        tr {
                            td { (s.host_url) }
                            td { (s.entity_id) }
                            td.small { "ACS " (s.acs_url) br; "SLO " (s.slo_url) br; "Metadata " (s.metadata_url) }
                            td { @if s.has_key { "yes" } @else { "no" } }
                            td { (cert_cell(&s.certificate))
                                @if let Some(n) = &s.next_certificate { br; span.hint { "next: " (n.subject) " (published)" } } }
                            td.actions {
                                a href={"/webmanager/sps/" (s.id) "/metadata"} { "Get metadata" }
                                " "
                                a href={"/webmanager/sps/" (s.id)} { "Edit" }
                                (delete_button(&p, &format!("/webmanager/sps/{}/delete", s.id), "Delete"))
                            }
                        }
                    }
                }
            }
        },
    ))
}

fn sp_form(
    p: &Principal,
    status: StatusCode,
    action: &str,
    f: &FormData,
    err: Option<&AdminError>,
    editing: Option<&SpView>,
) -> Response {
    let title = if editing.is_some() {
        "Edit service provider"
    } else {
        "Add service provider"
    };
    let fields = [
        "host_url",
        "entity_id",
        "certificate",
        "private_key",
        "next_certificate",
        "next_private_key",
        "promote_next",
    ];
    layout(
        p,
        status,
        title,
        html! {
            (form_error(err, &fields))
            form method="post" action=(action) enctype="multipart/form-data" {
                (csrf_field(p))
                @if let Some(v) = editing { input type="hidden" name="version" value=(v.version); }
                (text_input("Host URL", "host_url", f.get("host_url"), err, "The agent portal URL exactly as the portal is configured, e.g. https://cc.example.com/agentportal."))
                (text_input("Entity ID", "entity_id", f.get("entity_id"), err, "Empty: the host URL."))
                fieldset {
                    legend { "Certificate and private key (optional: to sign requests and decrypt assertions)" }
                    @if let Some(v) = editing {
                        p.hint { "Now: " (cert_cell(&v.certificate)) ". Leave both empty to keep them." }
                    }
                    (area("Certificate (PEM)", "certificate", f.get("certificate"), err, ""))
                    div.field { label for="certificate_file" { "…or upload" } input type="file" id="certificate_file" name="certificate" accept=".pem,.crt,.cer"; }
                    (area("Private key (PEM)", "private_key", "", err, "Never shown again once saved."))
                    div.field { label for="private_key_file" { "…or upload" } input type="file" id="private_key_file" name="private_key" accept=".pem,.key"; }
                    (checkbox("Generate a new key and self-signed certificate", "generate_key", f.checked("generate_key")))
                    @if editing.is_some() { (checkbox("Remove the key pair", "remove_key", f.checked("remove_key"))) }
                }
                @if let Some(v) = editing {
                    fieldset {
                        legend { "Certificate rollover" }
                        p.hint { "A next certificate is published in the metadata beside the current one. Once every IdP has the new metadata, promote it: it signs from then on." }
                        @if let Some(n) = &v.next_certificate {
                            p { "Next: " (cert_cell(&Some(n.clone()))) }
                            (checkbox("Promote the next certificate now", "promote_next", f.checked("promote_next")))
                            (field_error(err, "promote_next"))
                            (checkbox("Drop the next certificate", "drop_next", f.checked("drop_next")))
                        } @else {
                            (checkbox("Generate the next key and certificate", "generate_next_key", f.checked("generate_next_key")))
                            (area("Next certificate (PEM)", "next_certificate", f.get("next_certificate"), err, ""))
                            (area("Its private key (PEM)", "next_private_key", "", err, ""))
                        }
                    }
                }
                button type="submit" { "Save" }
                " "
                a href="/webmanager/sps" { "Cancel" }
            }
        },
    )
}

fn sp_input(f: &FormData, version: Option<i64>) -> SpInput {
    SpInput {
        host_url: f.get("host_url").to_string(),
        entity_id: Some(f.get("entity_id").to_string()),
        certificate_pem: Some(f.get("certificate").to_string()).filter(|s| !s.is_empty()),
        private_key_pem: Some(f.get("private_key").to_string())
            .filter(|s| !s.is_empty())
            .map(Secret::new),
        generate_key: f.checked("generate_key"),
        remove_key: f.checked("remove_key"),
        version,
        next_certificate_pem: Some(f.get("next_certificate").to_string()).filter(|s| !s.is_empty()),
        next_private_key_pem: Some(f.get("next_private_key").to_string())
            .filter(|s| !s.is_empty())
            .map(Secret::new),
        generate_next_key: f.checked("generate_next_key"),
        promote_next: f.checked("promote_next"),
        drop_next: f.checked("drop_next"),
    }
}

async fn sp_new(PageAuthed(p): PageAuthed) -> Page {
    central(&p)?;
    Ok(sp_form(
        &p,
        StatusCode::OK,
        "/webmanager/sps/new",
        &FormData::default(),
        None,
        None,
    ))
}

async fn sp_create(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    form: FormData,
) -> Page {
    central(&p)?;
    check_post(&p, &form)?;
    match p.admin(&state).sp_add(sp_input(&form, None)).await {
        Ok(sp) => Ok(see_other(&format!("/webmanager/sps/{}/metadata", sp.id))),
        Err(AdminError::Store(e)) => Err(unavailable(&e).into()),
        Err(e) => Ok(sp_form(
            &p,
            status_of(&e),
            "/webmanager/sps/new",
            &form,
            Some(&e),
            None,
        )),
    }
}

async fn sp_edit(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    Path(id): Path<String>,
) -> Page {
    central(&p)?;
    let sp = admin::sp_find(state.store.as_ref(), &id)
        .await
        .map_err(admin_store)?;
    let v = SpView::of_with(&sp, state.clock.now(), &state.cert_views);
    let mut f = FormData::default();
    f.0.insert("host_url".into(), sp.host_url.clone());
    f.0.insert("entity_id".into(), sp.entity_id.clone());
    Ok(sp_form(
        &p,
        StatusCode::OK,
        &format!("/webmanager/sps/{}", sp.id),
        &f,
        None,
        Some(&v),
    ))
}

async fn sp_update(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    Path(id): Path<String>,
    form: FormData,
) -> Page {
    central(&p)?;
    check_post(&p, &form)?;
    let sp = admin::sp_find(state.store.as_ref(), &id)
        .await
        .map_err(admin_store)?;
    match p
        .admin(&state)
        .sp_set(&id, sp_input(&form, form.version()))
        .await
    {
        Ok(_) => Ok(see_other("/webmanager/sps")),
        Err(AdminError::Store(e)) => Err(unavailable(&e).into()),
        Err(e) => {
            let v = SpView::of_with(&sp, state.clock.now(), &state.cert_views);
            Ok(sp_form(
                &p,
                status_of(&e),
                &format!("/webmanager/sps/{}", sp.id),
                &form,
                Some(&e),
                Some(&v),
            ))
        }
    }
}

async fn sp_delete(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    Path(id): Path<String>,
    form: FormData,
) -> Page {
    central(&p)?;
    check_post(&p, &form)?;
    after_change(
        &p,
        p.admin(&state).sp_rm(&id).await.map(|_| ()),
        "/webmanager/sps",
        "Service provider not deleted",
        "/webmanager/sps",
    )
}

/// The download's file name: `ssogate_<host>_metadata.xml`.
fn metadata_file_name(host_url: &str) -> String {
    let host = host_url
        .split_once("://")
        .map_or(host_url, |(_, r)| r)
        .split('/')
        .next()
        .unwrap_or("sp");
    let safe: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("ssogate_{safe}_metadata.xml")
}

async fn sp_metadata(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    Path(id): Path<String>,
) -> Page {
    central(&p)?;
    let sp = admin::sp_find(state.store.as_ref(), &id)
        .await
        .map_err(admin_store)?;
    let xml = admin::sp_metadata_xml(&sp).map_err(admin_store)?;
    let v = SpView::of_with(&sp, state.clock.now(), &state.cert_views);
    Ok(layout(
        &p,
        StatusCode::OK,
        "SP metadata",
        html! {
            p { "Import this into the identity provider (ADFS: Add Relying Party Trust → Import data about the relying party from a file)." }
            p.small { "Host URL " (v.host_url) " · entity ID " (v.entity_id) " · also at " a href=(v.metadata_url) { (v.metadata_url) } }
            div.toolbar {
                button type="button" id="copy-metadata" data-copy="metadata" hidden { "Copy to clipboard" }
                " "
                a.button id="download-metadata" href={"/webmanager/sps/" (sp.id) "/metadata.xml"} download=(metadata_file_name(&sp.host_url)) { "Download" }
                " "
                span id="copy-status" role="status" {}
            }
            pre id="metadata" { (xml) }
            p { a href="/webmanager/sps" { "Back to the service providers" } }
        },
    ))
}

async fn sp_metadata_download(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    Path(id): Path<String>,
) -> Page {
    central(&p)?;
    let sp = admin::sp_find(state.store.as_ref(), &id)
        .await
        .map_err(admin_store)?;
    let xml = admin::sp_metadata_xml(&sp).map_err(admin_store)?;
    let disposition = format!(
        "attachment; filename=\"{}\"",
        metadata_file_name(&sp.host_url)
    );
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/samlmetadata+xml"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or(HeaderValue::from_static("attachment")),
            ),
        ],
        xml,
    )
        .into_response())
}

// Identity providers.

async fn idp_list(State(state): State<AppState>, PageAuthed(p): PageAuthed) -> Page {
    central(&p)?;
    let now = state.clock.now();
    let idps: Vec<IdpView> = state
        .store
        .idp_list()
        .await
        .map_err(store_err)?
        .iter()
        .map(|i| IdpView::of_with(i, now, &state.cert_views))
        .collect();
    Ok(layout(
        &p,
        StatusCode::OK,
        "Identity providers",
        html! {
            p { a.button href="/webmanager/idps/import" { "Import from metadata" } " " a.button href="/webmanager/idps/new" { "Add by hand" } }
            table {
                thead { tr { th { "Name" } th { "Entity ID" } th { "Single sign-on" } th { "Username mapping" } th { "Trust" } th {} } }
                tbody {
                    @for i in &idps {
                        tr {
                            td { (i.name) }
                            td { (i.entity_id) }
                            td.small { (i.sso_url) " (" (i.sso_binding.as_str()) ")"
                                @if let Some(s) = &i.slo_url { br; "SLO " (s) } }
                            td.small { (i.username_mapping) }
                            td.small {
                                @match &i.trust {
                                    TrustView::Certificates { certificates } => {
                                        @for c in certificates {
                                            div { (cert_cell(&Some(c.clone()))) br; span.hint { "SHA-256 " (c.sha256) } }
                                        }
                                    }
                                    TrustView::Fingerprint { algorithm, value } => { "fingerprint " (algorithm) " " (value) }
                                }
                                @if let Some(url) = &i.metadata_url {
                                    div.hint { "Metadata URL " (url) }
                                    @match &i.metadata_status {
                                        None => div.hint { "not fetched yet (every 6 hours)" },
                                        Some(st) => {
                                            @if let Some(e) = &st.error {
                                                div.warn role="alert" { "Refresh failed at " (st.checked_at) ": " (e) }
                                            } @else {
                                                div.hint { "refreshed " (st.checked_at) }
                                            }
                                        }
                                    }
                                }
                            }
                            td.actions {
                                a href={"/webmanager/idps/" (i.name)} { "Edit" }
                                @if i.metadata_url.is_some() {
                                    form method="post" action={"/webmanager/idps/" (urlenc(&i.name)) "/refresh"} {
                                        (csrf_field(&p))
                                        button type="submit" { "Refresh now" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}

fn mapping_field(value: &str, err: Option<&AdminError>) -> Markup {
    html! {
        div.field {
            label for="username_mapping" { "Username mapping" }
            input type="text" id="username_mapping" name="username_mapping" value=(value) list="mappings";
            datalist id="mappings" {
                @for (v, label) in MAPPINGS { option value=(v) { (label) } }
            }
            p.hint { "The claim (attribute) whose value is the agent's user name, or NameID. Common ones: "
                @for (i, (v, label)) in MAPPINGS.iter().enumerate() { @if i > 0 { "; " } (label) ": " code { (v) } } }
            (field_error(err, "username_mapping"))
        }
    }
}

const IDP_FIELDS: &[&str] = &[
    "name",
    "entity_id",
    "sso_url",
    "sso_binding",
    "username_mapping",
    "slo_url",
    "slo_response_url",
    "slo_binding",
    "certificates",
    "fingerprint",
    "metadata_url",
];

fn idp_form(
    p: &Principal,
    status: StatusCode,
    action: &str,
    f: &FormData,
    err: Option<&AdminError>,
    version: Option<i64>,
    extra: Markup,
) -> Response {
    let sso_b = Binding::parse(f.get("sso_binding")).unwrap_or(Binding::Post);
    let slo_b = Binding::parse(f.get("slo_binding")).unwrap_or(Binding::Redirect);
    let alg = f.get("fingerprint_algorithm");
    layout(
        p,
        status,
        if version.is_some() {
            "Edit identity provider"
        } else {
            "Add identity provider by hand"
        },
        html! {
            (form_error(err, IDP_FIELDS))
            form method="post" action=(action) enctype="multipart/form-data" {
                (csrf_field(p))
                @if let Some(v) = version { input type="hidden" name="version" value=(v); }
                (text_input("Name", "name", f.get("name"), err, "Empty: the entity ID's host."))
                (text_input("Entity ID", "entity_id", f.get("entity_id"), err, "The Issuer of its messages, e.g. http://adfs.example.com/adfs/services/trust."))
                div.field {
                    label for="sso_url" { "SSO URL" }
                    input type="text" id="sso_url" name="sso_url" value=(f.get("sso_url"));
                    label for="sso_binding" { "Binding" }
                    (binding_select("sso_binding", sso_b))
                    p.hint { "Copy the IdP's HTTP-POST SingleSignOnService location." }
                    (field_error(err, "sso_url")) (field_error(err, "sso_binding"))
                }
                (mapping_field(f.get("username_mapping"), err))
                div.field {
                    label for="slo_url" { "SLO URL" }
                    input type="text" id="slo_url" name="slo_url" value=(f.get("slo_url"));
                    label for="slo_binding" { "Binding" }
                    (binding_select("slo_binding", slo_b))
                    (field_error(err, "slo_url")) (field_error(err, "slo_binding"))
                }
                (text_input("SLO response URL", "slo_response_url", f.get("slo_response_url"), err, "Usually empty = the SLO URL (Entra needs its own)."))
                fieldset {
                    legend { "Trust: x509 certificate(s) or a fingerprint" }
                    (area("Certificate(s)", "certificates", f.get("certificates"), err, "PEM or bare base64; several for a rollover; text around the armour is ignored."))
                    div.field { label for="certificates_file" { "…or upload" } input type="file" id="certificates_file" name="certificates" accept=".pem,.crt,.cer"; }
                    div.field {
                        label for="fingerprint" { "Fingerprint" }
                        input type="text" id="fingerprint" name="fingerprint" value=(f.get("fingerprint"));
                        label for="fingerprint_algorithm" { "Algorithm" }
                        select id="fingerprint_algorithm" name="fingerprint_algorithm" {
                            @for a in ["sha256", "sha384", "sha512", "sha1"] { option value=(a) selected[alg == a] { (a.to_uppercase()) } }
                        }
                        p.hint { "Hex, colons optional. SHA1 needs \"Allow SHA-1\"." }
                        (field_error(err, "fingerprint"))
                    }
                }
                details {
                    summary { "Advanced" }
                    (checkbox("Allow SHA-1 (legacy IdPs only)", "allow_sha1", f.checked("allow_sha1")))
                    (text_input("NameID format", "name_id_format", f.get("name_id_format"), err, "Empty: none asked for."))
                    (text_input("AuthnContextClassRef", "authn_context", f.get("authn_context"), err, "Empty (the default) suits ADFS Windows login and Entra MFA."))
                    (text_input("Metadata URL", "metadata_url", f.get("metadata_url"), err, "Where the IdP publishes its metadata (https): fetched every 6 hours, its signing certificates replace the trusted ones when they change (audit log); a failed fetch shows on the list and keeps the certificates."))
                }
                button type="submit" { "Save" }
                " "
                a href="/webmanager/idps" { "Cancel" }
            }
            (extra)
        },
    )
}

fn idp_input(f: &FormData, version: Option<i64>) -> IdpInput {
    let fingerprint = Some(f.get("fingerprint"))
        .filter(|s| !s.is_empty())
        .map(|v| {
            format!(
                "{}:{v}",
                f.get("fingerprint_algorithm").to_ascii_lowercase()
            )
        });
    let certs = f.get("certificates");
    IdpInput {
        name: f.opt("name"),
        entity_id: f.opt("entity_id"),
        sso_url: f.opt("sso_url"),
        sso_binding: f.opt("sso_binding"),
        slo_url: f.opt("slo_url"),
        slo_response_url: f.opt("slo_response_url"),
        slo_binding: f.opt("slo_binding"),
        username: f.opt("username_mapping"),
        certificates: if certs.is_empty() {
            Vec::new()
        } else {
            vec![certs.to_string()]
        },
        fingerprint,
        allow_sha1: Some(f.checked("allow_sha1")),
        name_id_format: f.opt("name_id_format"),
        authn_context: f.opt("authn_context"),
        metadata_url: f.opt("metadata_url"),
        version,
    }
}

async fn idp_new(PageAuthed(p): PageAuthed) -> Page {
    central(&p)?;
    Ok(idp_form(
        &p,
        StatusCode::OK,
        "/webmanager/idps/new",
        &FormData::default(),
        None,
        None,
        html! {},
    ))
}

async fn idp_create(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    form: FormData,
) -> Page {
    central(&p)?;
    check_post(&p, &form)?;
    match p.admin(&state).idp_add(idp_input(&form, None)).await {
        Ok(_) => Ok(see_other("/webmanager/idps")),
        Err(AdminError::Store(e)) => Err(unavailable(&e).into()),
        Err(e) => Ok(idp_form(
            &p,
            status_of(&e),
            "/webmanager/idps/new",
            &form,
            Some(&e),
            None,
            html! {},
        )),
    }
}

fn idp_values(i: &crate::domain::IdentityProvider) -> FormData {
    let mut f = FormData::default();
    let mut put = |k: &str, v: &str| {
        f.0.insert(k.to_string(), v.to_string());
    };
    put("name", &i.name);
    put("entity_id", &i.entity_id);
    put("sso_url", &i.sso_url);
    put("sso_binding", i.sso_binding.as_str());
    put("slo_url", i.slo_url.as_deref().unwrap_or(""));
    put(
        "slo_response_url",
        i.slo_response_url.as_deref().unwrap_or(""),
    );
    put("slo_binding", i.slo_binding.as_str());
    put("username_mapping", &mapping_text(&i.username));
    put("name_id_format", i.name_id_format.as_deref().unwrap_or(""));
    put("authn_context", i.authn_context.as_deref().unwrap_or(""));
    put("metadata_url", i.metadata_url.as_deref().unwrap_or(""));
    match &i.trust {
        crate::domain::TrustConfig::Certificates(c) => {
            let pem: Vec<String> = c
                .iter()
                .map(|b| {
                    let body: Vec<String> = b
                        .as_bytes()
                        .chunks(64)
                        .map(|l| String::from_utf8_lossy(l).into_owned())
                        .collect();
                    format!(
                        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----",
                        body.join("\n")
                    )
                })
                .collect();
            put("certificates", &pem.join("\n"));
        }
        crate::domain::TrustConfig::Fingerprint { algorithm, hex } => {
            put("fingerprint", hex);
            put("fingerprint_algorithm", algorithm);
        }
    }
    if i.allow_sha1 {
        put("allow_sha1", "on");
    }
    f
}

async fn idp_edit(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    Path(name): Path<String>,
) -> Page {
    central(&p)?;
    let i = admin::idp_find(state.store.as_ref(), &name)
        .await
        .map_err(admin_store)?;
    Ok(idp_edit_page(&p, StatusCode::OK, &i, &idp_values(&i), None))
}

fn idp_edit_page(
    p: &Principal,
    status: StatusCode,
    i: &crate::domain::IdentityProvider,
    f: &FormData,
    err: Option<&AdminError>,
) -> Response {
    let delete = delete_button(
        p,
        &format!("/webmanager/idps/{}/delete", urlenc(&i.name)),
        "Delete this identity provider",
    );
    idp_form(
        p,
        status,
        &format!("/webmanager/idps/{}", urlenc(&i.name)),
        f,
        err,
        Some(i.version),
        delete,
    )
}

pub(super) fn delete_button(p: &Principal, action: &str, label: &str) -> Markup {
    html! {
        form.danger method="post" action=(action) {
            (csrf_field(p))
            button type="submit" { (label) }
        }
    }
}

async fn idp_update(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    Path(name): Path<String>,
    form: FormData,
) -> Page {
    central(&p)?;
    check_post(&p, &form)?;
    let i = admin::idp_find(state.store.as_ref(), &name)
        .await
        .map_err(admin_store)?;
    match p
        .admin(&state)
        .idp_set(&name, idp_input(&form, form.version()))
        .await
    {
        Ok(_) => Ok(see_other("/webmanager/idps")),
        Err(AdminError::Store(e)) => Err(unavailable(&e).into()),
        Err(e) => Ok(idp_edit_page(&p, status_of(&e), &i, &form, Some(&e))),
    }
}

async fn idp_refresh(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    Path(name): Path<String>,
    form: FormData,
) -> Page {
    central(&p)?;
    check_post(&p, &form)?;
    // The outcome shows on the list (refreshed at, or why not); the certificates in the audit log.
    let r = match admin::idp_find(state.store.as_ref(), &name).await {
        Ok(idp) => crate::domain::refresh::refresh_idp(&p.admin(&state), &state.outbound, &idp)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    after_change(
        &p,
        r,
        "/webmanager/idps",
        "Identity provider not refreshed",
        "/webmanager/idps",
    )
}

async fn idp_delete(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    Path(name): Path<String>,
    form: FormData,
) -> Page {
    central(&p)?;
    check_post(&p, &form)?;
    after_change(
        &p,
        p.admin(&state).idp_rm(&name).await.map(|_| ()),
        "/webmanager/idps",
        "Identity provider not deleted",
        "/webmanager/idps",
    )
}

fn import_form(
    p: &Principal,
    status: StatusCode,
    f: &FormData,
    err: Option<&AdminError>,
    preview: Option<&admin::IdpPreview>,
) -> Response {
    let ready = preview.is_some_and(|pv| pv.entity_id.is_some());
    layout(
        p,
        status,
        "Import an identity provider from metadata",
        html! {
            (form_error(err, &["username_mapping", "metadata", "entity", "name"]))
            form method="post" action="/webmanager/idps/import" enctype="multipart/form-data" {
                (csrf_field(p))
                (mapping_field(f.get("username_mapping"), err))
                div.field {
                    label for="metadata_file" { "Upload the metadata file" }
                    input type="file" id="metadata_file" name="metadata" accept=".xml";
                }
                (area("…or enter the metadata", "metadata", f.get("metadata"), err, "The IdP's metadata XML (ADFS: https://adfs.example.com/FederationMetadata/2007-06/FederationMetadata.xml)."))
                @if let Some(pv) = preview {
                    @if pv.entities.len() > 1 {
                        div.field {
                            label for="entity" { "Identity provider in this aggregate" }
                            select id="entity" name="entity" {
                                @for e in &pv.entities { option value=(e) selected[pv.entity_id.as_deref() == Some(e.as_str())] { (e) } }
                            }
                            (field_error(err, "entity"))
                        }
                    }
                    @if let Some(eid) = &pv.entity_id {
                        section.preview id="preview" {
                            h2 { "Preview" }
                            p { "Entity ID: " strong { (eid) } }
                            table {
                                thead { tr { th { "Service" } th { "Binding" } th { "Location" } } }
                                tbody {
                                    @for e in &pv.sso { tr.sso { td { "Single sign-on" } td.binding { (e.binding) } td.location { (e.location) } } }
                                    @for e in &pv.slo { tr.slo { td { "Single logout" } td.binding { (e.binding) } td.location { (e.location) @if let Some(r) = &e.response_location { " (responses to " (r) ")" } } } }
                                }
                            }
                            h3 { "Signing certificates" }
                            ul { @for c in &pv.certificates { li { (c.subject) " · SHA-256 " code { (c.sha256) } " · until " (c.not_after.clone().unwrap_or_default()) @if c.expires_soon { " " span.warn { "expires soon" } } } } }
                            @if !pv.claim_types.is_empty() {
                                h3 { "Claim types offered" }
                                ul.small { @for c in &pv.claim_types { li { code { (c) } } } }
                            }
                        }
                        (text_input("Name", "name", f.get("name"), err, "Empty: the entity ID's host."))
                    } @else {
                        p.banner { "The metadata describes several identity providers: choose one, then Preview again." }
                    }
                }
                button type="submit" name="step" value="preview" { "Preview" }
                @if ready { " " button type="submit" name="step" value="add" { "Add" } }
                " "
                a href="/webmanager/idps" { "Cancel" }
            }
        },
    )
}

async fn idp_import_page(PageAuthed(p): PageAuthed) -> Page {
    central(&p)?;
    let mut f = FormData::default();
    f.0.insert("username_mapping".into(), String::new());
    Ok(import_form(&p, StatusCode::OK, &f, None, None))
}

async fn idp_import_submit(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    form: FormData,
) -> Page {
    central(&p)?;
    check_post(&p, &form)?;
    let entity = Some(form.get("entity")).filter(|e| !e.is_empty());
    if form.get("metadata").is_empty() {
        let e = AdminError::Invalid {
            field: Some("metadata"),
            message: "upload the metadata file or enter its XML".into(),
        };
        return Ok(import_form(
            &p,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form,
            Some(&e),
            None,
        ));
    }
    let preview =
        match admin::idp_preview(form.get("metadata").as_bytes(), entity, state.clock.now()) {
            Ok(pv) => pv,
            Err(e) => return Ok(import_form(&p, status_of(&e), &form, Some(&e), None)),
        };
    if form.get("step") != "add" || preview.entity_id.is_none() {
        return Ok(import_form(&p, StatusCode::OK, &form, None, Some(&preview)));
    }
    let input = IdpInput {
        name: form.opt("name"),
        username: form.opt("username_mapping"),
        // Admins copy the POST location: it is the one preselected.
        sso_binding: preview
            .sso
            .iter()
            .any(|e| e.binding == "post")
            .then(|| "post".to_string()),
        ..Default::default()
    };
    match p
        .admin(&state)
        .idp_import(
            form.get("metadata").as_bytes(),
            preview.entity_id.as_deref(),
            input,
        )
        .await
    {
        Ok(_) => Ok(see_other("/webmanager/idps")),
        Err(AdminError::Store(e)) => Err(unavailable(&e).into()),
        Err(e) => Ok(import_form(
            &p,
            status_of(&e),
            &form,
            Some(&e),
            Some(&preview),
        )),
    }
}

// Tenants.

async fn tenant_list(State(state): State<AppState>, PageAuthed(p): PageAuthed) -> Page {
    central(&p)?;
    let tenants = state.store.tenant_list().await.map_err(store_err)?;
    let idps = state.store.idp_list().await.map_err(store_err)?;
    let multi = state.multi_tenant();
    Ok(layout(
        &p,
        StatusCode::OK,
        "Tenants",
        html! {
            form.mode method="post" action="/webmanager/settings" {
                (csrf_field(&p))
                p {
                    strong { @if multi { "Multi-tenant mode" } @else { "Single-tenant mode" } }
                    ": "
                    @if multi { "each tenant has its own settings; agents sign in at /t/TENANT/login or by their login domain." }
                    @else { "one tenant, default; its settings are system-wide." }
                }
                input type="hidden" name="multi_tenant" value=(if multi { "off" } else { "on" });
                button type="submit" { @if multi { "Switch to single-tenant mode" } @else { "Switch to multi-tenant mode" } }
            }
            @if multi { p { a.button href="/webmanager/tenants/new" { "Add tenant" } } }
            table {
                thead { tr { th { "Tenant" } th { "Display name" } th { "Login domains" } th { "Single sign-on" } th { "Identity provider" } th { "Single logout" } th {} } }
                tbody {
                    @for t in &tenants {
                        @if multi || t.name == admin::DEFAULT_TENANT {
                            tr {
                                td { (t.name) @if !multi { " " span.hint { "(system-wide)" } } }
                                td { (t.display_name) }
                                td { (t.login_domains.join(", ")) }
                                td { @if t.sso_enabled { "on" } @else { "off" } }
                                td { (t.idp_id.and_then(|id| idps.iter().find(|i| i.id == id)).map(|i| i.name.as_str()).unwrap_or("-")) }
                                td { @if t.slo_enabled { "on" } @else { "off" } }
                                td.actions { a href={"/webmanager/tenants/" (t.name)} { "Configure" } }
                            }
                        }
                    }
                }
            }
        },
    ))
}

async fn settings_submit(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    form: FormData,
) -> Page {
    central(&p)?;
    check_post(&p, &form)?;
    // One switch per form: the tenants page's mode, or the users page's second-factor rule.
    if form.0.contains_key("admin_require_totp") {
        let on = form.get("admin_require_totp") == "on";
        return match p
            .admin(&state)
            .setting_set(
                admin::SETTING_REQUIRE_TOTP,
                on,
                state.config.admin_require_totp,
            )
            .await
        {
            Ok(()) => {
                state.set_require_totp(on);
                Ok(see_other("/webmanager/users"))
            }
            Err(e) => Err(admin_store(e).into()),
        };
    }
    let on = form.get("multi_tenant") == "on";
    match p
        .admin(&state)
        .multi_tenant_set(on, state.config.multi_tenant)
        .await
    {
        Ok(()) => {
            state.set_multi_tenant(on);
            Ok(see_other("/webmanager/tenants"))
        }
        Err(e) => Err(admin_store(e).into()),
    }
}

const TENANT_FIELDS: &[&str] = &[
    "name",
    "display_name",
    "login_domains",
    "idp",
    "slo_enabled",
    "sso_enabled",
];

fn tenant_form(
    p: &Principal,
    status: StatusCode,
    action: &str,
    f: &FormData,
    err: Option<&AdminError>,
    idps: &[crate::domain::IdentityProvider],
    editing: Option<(&str, i64, bool)>,
) -> Response {
    let chosen = f.get("idp");
    let sp_warn = editing.is_some_and(|(_, _, no_key)| no_key);
    layout(
        p,
        status,
        &match editing {
            Some((n, _, _)) => format!("Configure tenant {n}"),
            None => "Add tenant".into(),
        },
        html! {
            (form_error(err, TENANT_FIELDS))
            form method="post" action=(action) {
                (csrf_field(p))
                @if let Some((_, v, _)) = editing { input type="hidden" name="version" value=(v); }
                @else { (text_input("Tenant", "name", f.get("name"), err, "Letters, digits, '-', '_', '.': it is in /t/TENANT/login.")) }
                (text_input("Display name", "display_name", f.get("display_name"), err, "What agents read: \"Sign in to Acme\". Empty: the tenant's name."))
                (text_input("Login domains", "login_domains", f.get("login_domains"), err, "Comma-separated: UPN suffixes (example.com) and NetBIOS names (EXAMPLE)."))
                (checkbox("Single sign-on", "sso_enabled", f.checked("sso_enabled")))
                div.field {
                    label for="idp" { "Identity provider" }
                    select id="idp" name="idp" {
                        option value="" selected[chosen.is_empty()] { "(none)" }
                        @for i in idps { option value=(i.name) selected[chosen == i.name] { (i.name) } }
                    }
                    (field_error(err, "idp"))
                }
                (checkbox("Single logout (needs single sign-on and the IdP's SLO URL)", "slo_enabled", f.checked("slo_enabled")))
                (field_error(err, "slo_enabled"))
                @if sp_warn { p.warn { "No service provider has a key: LogoutRequests go unsigned, and ADFS refuses them." } }
                (checkbox("IdP-initiated login", "idp_initiated", f.checked("idp_initiated")))
                (checkbox("Username rule: strip the tenant's own domain (DOMAIN\\user, user@domain → user)", "strip_domain", f.checked("strip_domain")))
                (checkbox("Compare user names without regard to case", "case_insensitive", f.checked("case_insensitive")))
                button type="submit" { "Save" }
                " "
                a href="/webmanager/tenants" { "Cancel" }
            }
            @if let Some((n, _, _)) = editing {
                @if n != admin::DEFAULT_TENANT {
                    (delete_button(p, &format!("/webmanager/tenants/{}/delete", urlenc(n)), "Delete this tenant"))
                }
            }
        },
    )
}

fn tenant_input(f: &FormData, version: Option<i64>) -> TenantInput {
    TenantInput {
        display_name: Some(f.get("display_name").to_string()),
        version,
        login_domains: Some(
            f.get("login_domains")
                .split([',', ' ', '\n'])
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .collect(),
        ),
        sso_enabled: Some(f.checked("sso_enabled")),
        idp: Some(f.get("idp").to_string()),
        slo_enabled: Some(f.checked("slo_enabled")),
        idp_initiated: Some(f.checked("idp_initiated")),
        strip_domain: Some(f.checked("strip_domain")),
        case_insensitive: Some(f.checked("case_insensitive")),
        ..Default::default()
    }
}

async fn no_sp_key(state: &AppState) -> Result<bool, Halt> {
    Ok(state
        .store
        .sp_list()
        .await
        .map_err(store_err)?
        .iter()
        .all(|s| s.private_key_pem.is_none()))
}

async fn tenant_new(State(state): State<AppState>, PageAuthed(p): PageAuthed) -> Page {
    central(&p)?;
    let idps = state.store.idp_list().await.map_err(store_err)?;
    let mut f = FormData::default();
    f.0.insert("strip_domain".into(), "on".into());
    f.0.insert("case_insensitive".into(), "on".into());
    Ok(tenant_form(
        &p,
        StatusCode::OK,
        "/webmanager/tenants/new",
        &f,
        None,
        &idps,
        None,
    ))
}

async fn tenant_create(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    form: FormData,
) -> Page {
    central(&p)?;
    check_post(&p, &form)?;
    match p
        .admin(&state)
        .tenant_add(form.get("name"), tenant_input(&form, None))
        .await
    {
        Ok(_) => Ok(see_other("/webmanager/tenants")),
        Err(AdminError::Store(e)) => Err(unavailable(&e).into()),
        Err(e) => {
            let idps = state.store.idp_list().await.map_err(store_err)?;
            Ok(tenant_form(
                &p,
                status_of(&e),
                "/webmanager/tenants/new",
                &form,
                Some(&e),
                &idps,
                None,
            ))
        }
    }
}

fn tenant_values(t: &crate::domain::Tenant, idps: &[crate::domain::IdentityProvider]) -> FormData {
    let mut f = FormData::default();
    f.0.insert("display_name".into(), t.display_name.clone());
    f.0.insert("login_domains".into(), t.login_domains.join(", "));
    let idp = t
        .idp_id
        .and_then(|id| idps.iter().find(|i| i.id == id))
        .map(|i| i.name.clone())
        .unwrap_or_default();
    f.0.insert("idp".into(), idp);
    for (k, on) in [
        ("sso_enabled", t.sso_enabled),
        ("slo_enabled", t.slo_enabled),
        ("idp_initiated", t.idp_initiated),
        ("strip_domain", t.username_rule.strip_domain),
        ("case_insensitive", t.username_rule.case_insensitive),
    ] {
        if on {
            f.0.insert(k.into(), "on".into());
        }
    }
    f
}

async fn tenant_edit(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    Path(name): Path<String>,
) -> Page {
    central(&p)?;
    let t = admin::tenant_find(state.store.as_ref(), &name)
        .await
        .map_err(admin_store)?;
    let idps = state.store.idp_list().await.map_err(store_err)?;
    let no_key = no_sp_key(&state).await?;
    Ok(tenant_form(
        &p,
        StatusCode::OK,
        &format!("/webmanager/tenants/{}", t.name),
        &tenant_values(&t, &idps),
        None,
        &idps,
        Some((&t.name, t.version, no_key && t.slo_enabled)),
    ))
}

async fn tenant_update(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    Path(name): Path<String>,
    form: FormData,
) -> Page {
    central(&p)?;
    check_post(&p, &form)?;
    let t = admin::tenant_find(state.store.as_ref(), &name)
        .await
        .map_err(admin_store)?;
    match p
        .admin(&state)
        .tenant_set(&name, tenant_input(&form, form.version()))
        .await
    {
        Ok(_) => Ok(see_other("/webmanager/tenants")),
        Err(AdminError::Store(e)) => Err(unavailable(&e).into()),
        Err(e) => {
            let idps = state.store.idp_list().await.map_err(store_err)?;
            Ok(tenant_form(
                &p,
                status_of(&e),
                &format!("/webmanager/tenants/{}", t.name),
                &form,
                Some(&e),
                &idps,
                Some((&t.name, t.version, false)),
            ))
        }
    }
}

async fn tenant_delete(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    Path(name): Path<String>,
    form: FormData,
) -> Page {
    central(&p)?;
    check_post(&p, &form)?;
    after_change(
        &p,
        p.admin(&state).tenant_rm(&name).await.map(|_| ()),
        "/webmanager/tenants",
        "Tenant not deleted",
        "/webmanager/tenants",
    )
}

// Users.

#[derive(Debug, Deserialize, Default)]
struct UserQuery {
    tenant: Option<String>,
    q: Option<String>,
    page: Option<usize>,
}

const USERS_PER_PAGE: usize = 50;

async fn user_list(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    Query(q): Query<UserQuery>,
) -> Page {
    central(&p)?;
    let tenants = state.store.tenant_list().await.map_err(store_err)?;
    let tname = q
        .tenant
        .clone()
        .unwrap_or_else(|| admin::DEFAULT_TENANT.to_string());
    let t = admin::tenant_find(state.store.as_ref(), &tname)
        .await
        .map_err(admin_store)?;
    let search = q.q.clone().unwrap_or_default();
    let needle = search.to_lowercase();
    let users: Vec<_> = state
        .store
        .user_list(Some(t.id))
        .await
        .map_err(store_err)?
        .into_iter()
        .filter(|u| {
            needle.is_empty()
                || u.username.to_lowercase().contains(&needle)
                || u.display_name.to_lowercase().contains(&needle)
                || u.circuit_user
                    .as_deref()
                    .is_some_and(|c| c.to_lowercase().contains(&needle))
        })
        .collect();
    let page = q.page.unwrap_or(1).max(1);
    let pages = users.len().div_ceil(USERS_PER_PAGE).max(1);
    let shown = users
        .iter()
        .skip((page - 1) * USERS_PER_PAGE)
        .take(USERS_PER_PAGE);
    let link = |n: usize| {
        format!(
            "/webmanager/users?tenant={}&q={}&page={n}",
            urlenc(&t.name),
            urlenc(&search)
        )
    };
    let required = state.require_totp();
    Ok(layout(
        &p,
        StatusCode::OK,
        "Users",
        html! {
            form.mode method="post" action="/webmanager/settings" {
                (csrf_field(&p))
                p {
                    strong { "Two-step verification" }
                    ": "
                    @if required { "required for central administrators (one without it sets it up at the next sign-in)." }
                    @else { "optional: each account may turn it on (Your account)." }
                }
                input type="hidden" name="admin_require_totp" value=(if required { "off" } else { "on" });
                button type="submit" { @if required { "Make it optional" } @else { "Require it for central administrators" } }
            }
            form.inline method="get" action="/webmanager/users" {
                label for="tenant" { "Tenant" }
                select id="tenant" name="tenant" { @for x in &tenants { option value=(x.name) selected[x.id == t.id] { (x.name) } } }
                label for="q" { "Search" }
                input type="text" id="q" name="q" value=(search);
                button type="submit" { "Show" }
            }
            p { a.button href={"/webmanager/users/new?tenant=" (urlenc(&t.name))} { "Add user" } }
            table {
                thead { tr { th { "User name" } th { "Display name" } th { "Circuit user" } th { "Roles" } th { "Password" } th {} } }
                tbody {
                    @for u in shown {
                        tr {
                            td { (u.username) }
                            td { (u.display_name) }
                            td { (u.circuit_user.as_deref().unwrap_or("")) }
                            td { (u.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")) }
                            td { @if u.password_hash.is_some() { "set" } @else { "none" } }
                            td.actions { a href={"/webmanager/users/" (urlenc(&t.name)) "/" (urlenc(&u.username))} { "Edit" } }
                        }
                    }
                }
            }
            p.pager { "Page " (page) " of " (pages) " (" (users.len()) " users)"
                @if page > 1 { " " a href=(link(page - 1)) { "Previous" } }
                @if page < pages { " " a href=(link(page + 1)) { "Next" } } }
        },
    ))
}

pub(super) fn urlenc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

const USER_FIELDS: &[&str] = &[
    "username",
    "display_name",
    "circuit_user",
    "roles",
    "password",
    "confirm",
];

#[expect(clippy::too_many_arguments, reason = "a form's parts")]
fn user_form(
    p: &Principal,
    status: StatusCode,
    action: &str,
    tenant: &str,
    f: &FormData,
    err: Option<&AdminError>,
    version: Option<i64>,
    extra: Markup,
) -> Response {
    layout(
        p,
        status,
        &if version.is_some() {
            format!("Edit user of {tenant}")
        } else {
            format!("Add user to {tenant}")
        },
        html! {
            (form_error(err, USER_FIELDS))
            form method="post" action=(action) {
                (csrf_field(p))
                @if let Some(v) = version { input type="hidden" name="version" value=(v); }
                (text_input("User name", "username", f.get("username"), err, "As the IdP's claim gives it after the tenant's username rule."))
                (text_input("Display name", "display_name", f.get("display_name"), err, ""))
                (text_input("Circuit user", "circuit_user", f.get("circuit_user"), err, "The e-mail or URI the agent signs in to Circuit with; unique in the tenant."))
                fieldset {
                    legend { "Roles" }
                    (checkbox("Agent", "role_agent", f.checked("role_agent")))
                    (checkbox("Tenant manager", "role_tenant-manager", f.checked("role_tenant-manager")))
                    (checkbox("Central administrator", "role_central-admin", f.checked("role_central-admin")))
                    (field_error(err, "roles"))
                }
                div.field {
                    label for="password" { "Password" }
                    input type="password" id="password" name="password" autocomplete="new-password";
                    p.hint { @if version.is_some() { "Empty: unchanged. " } "For local sign-in and the Web Manager; at least 8 characters." }
                    (field_error(err, "password"))
                }
                div.field {
                    label for="confirm" { "Password again" }
                    input type="password" id="confirm" name="confirm" autocomplete="new-password";
                    (field_error(err, "confirm"))
                }
                button type="submit" { "Save" }
                " "
                a href={"/webmanager/users?tenant=" (urlenc(tenant))} { "Cancel" }
            }
            (extra)
        },
    )
}

fn user_input(f: &FormData, version: Option<i64>) -> Result<UserInput, AdminError> {
    if f.raw("password") != f.raw("confirm") {
        return Err(AdminError::Invalid {
            field: Some("confirm"),
            message: "the two passwords differ".into(),
        });
    }
    let roles: Vec<String> = ["agent", "tenant-manager", "central-admin"]
        .iter()
        .filter(|r| f.checked(&format!("role_{r}")))
        .map(|r| r.to_string())
        .collect();
    Ok(UserInput {
        username: f.opt("username"),
        display_name: f.opt("display_name"),
        circuit_user: f.opt("circuit_user"),
        password: Some(f.raw("password").to_string())
            .filter(|s| !s.is_empty())
            .map(Secret::new),
        roles: Some(roles),
        version,
        ..Default::default()
    })
}

#[derive(Debug, Deserialize, Default)]
struct TenantQuery {
    tenant: Option<String>,
}

async fn user_new(PageAuthed(p): PageAuthed, Query(q): Query<TenantQuery>) -> Page {
    central(&p)?;
    let t = q.tenant.unwrap_or_else(|| admin::DEFAULT_TENANT.into());
    let mut f = FormData::default();
    f.0.insert("role_agent".into(), "on".into());
    Ok(user_form(
        &p,
        StatusCode::OK,
        &format!("/webmanager/users/new?tenant={}", urlenc(&t)),
        &t,
        &f,
        None,
        None,
        html! {},
    ))
}

async fn user_create(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    Query(q): Query<TenantQuery>,
    form: FormData,
) -> Page {
    central(&p)?;
    check_post(&p, &form)?;
    let t = q.tenant.unwrap_or_else(|| admin::DEFAULT_TENANT.into());
    let action = format!("/webmanager/users/new?tenant={}", urlenc(&t));
    let result = match user_input(&form, None) {
        Ok(i) => p.admin(&state).user_add(&t, i).await.map(|_| ()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(see_other(&format!(
            "/webmanager/users?tenant={}",
            urlenc(&t)
        ))),
        Err(AdminError::Store(e)) => Err(unavailable(&e).into()),
        Err(e) => Ok(user_form(
            &p,
            status_of(&e),
            &action,
            &t,
            &form,
            Some(&e),
            None,
            html! {},
        )),
    }
}

async fn user_edit(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    Path((tenant, username)): Path<(String, String)>,
) -> Page {
    central(&p)?;
    let (t, u) = admin::user_find(state.store.as_ref(), &tenant, &username)
        .await
        .map_err(admin_store)?;
    let mut f = FormData::default();
    f.0.insert("username".into(), u.username.clone());
    f.0.insert("display_name".into(), u.display_name.clone());
    f.0.insert(
        "circuit_user".into(),
        u.circuit_user.clone().unwrap_or_default(),
    );
    for r in &u.roles {
        f.0.insert(format!("role_{}", r.as_str()), "on".into());
    }
    let action = format!(
        "/webmanager/users/{}/{}",
        urlenc(&t.name),
        urlenc(&u.username)
    );
    let reset = super::account::reset_button(&state, &p, &u, &action)
        .await
        .map_err(store_err)?;
    let delete = html! {
        (reset)
        (delete_button(
            &p,
            &format!("{action}/delete"),
            "Delete this user (ends their sessions)",
        ))
    };
    Ok(user_form(
        &p,
        StatusCode::OK,
        &action,
        &t.name,
        &f,
        None,
        Some(u.version),
        delete,
    ))
}

async fn user_update(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    Path((tenant, username)): Path<(String, String)>,
    form: FormData,
) -> Page {
    central(&p)?;
    check_post(&p, &form)?;
    let action = format!(
        "/webmanager/users/{}/{}",
        urlenc(&tenant),
        urlenc(&username)
    );
    let result = match user_input(&form, form.version()) {
        Ok(i) => p
            .admin(&state)
            .user_set(&tenant, &username, i)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(see_other(&format!(
            "/webmanager/users?tenant={}",
            urlenc(&tenant)
        ))),
        Err(AdminError::Store(e)) => Err(unavailable(&e).into()),
        Err(e) => Ok(user_form(
            &p,
            status_of(&e),
            &action,
            &tenant,
            &form,
            Some(&e),
            form.version(),
            html! {},
        )),
    }
}

async fn user_delete(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    Path((tenant, username)): Path<(String, String)>,
    form: FormData,
) -> Page {
    central(&p)?;
    check_post(&p, &form)?;
    match p.admin(&state).user_rm(&tenant, &username).await {
        Ok(_) => Ok(see_other(&format!(
            "/webmanager/users?tenant={}",
            urlenc(&tenant)
        ))),
        Err(AdminError::Store(e)) => Err(unavailable(&e).into()),
        Err(e) => Ok(layout(
            &p,
            status_of(&e),
            "User not deleted",
            html! { p.error role="alert" { (e.to_string()) } p { a href="/webmanager/users" { "Back" } } },
        )),
    }
}

// API clients.

async fn client_list(State(state): State<AppState>, PageAuthed(p): PageAuthed) -> Page {
    central(&p)?;
    let tenants = state.store.tenant_list().await.map_err(store_err)?;
    let clients: Vec<ApiClientView> = state
        .store
        .api_client_list()
        .await
        .map_err(store_err)?
        .iter()
        .map(|c| ApiClientView::of(c, &tenants))
        .collect();
    Ok(layout(
        &p,
        StatusCode::OK,
        "API clients",
        html! {
            p { "Programs that use the JSON API at /api/v1 with " code { "Authorization: Bearer TOKEN" } ". Tokens are kept as SHA-256 only: they are shown once." }
            p { a.button href="/webmanager/api-clients/new" { "+ Add API client" } }
            table {
                thead { tr { th { "Name" } th { "Token" } th { "Role" } th { "Created" } th { "Last used" } th {} } }
                tbody {
                    @for c in &clients {
                        tr {
                            td { (c.name) }
                            td { code { (c.token_prefix) "…" } }
                            td { (c.role) @if let Some(t) = &c.tenant { " of " (t) } }
                            td { (c.created_at) }
                            td { (c.last_used_at.clone().unwrap_or_else(|| "never".into())) }
                            td.actions {
                                form.inline method="post" action={"/webmanager/api-clients/" (urlenc(&c.name)) "/regenerate"} {
                                    (csrf_field(&p)) input type="hidden" name="version" value=(c.version);
                                    button type="submit" { "Regenerate" }
                                }
                                form.inline method="post" action={"/webmanager/api-clients/" (urlenc(&c.name)) "/delete"} {
                                    (csrf_field(&p)) button type="submit" { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}

fn client_form(
    p: &Principal,
    status: StatusCode,
    f: &FormData,
    err: Option<&AdminError>,
    tenants: &[crate::domain::Tenant],
) -> Response {
    let generated = f.get("token");
    layout(
        p,
        status,
        "Add API client",
        html! {
            (form_error(err, &["name", "token", "role", "tenant"]))
            form method="post" action="/webmanager/api-clients/new" {
                (csrf_field(p))
                (text_input("Client name", "name", f.get("name"), err, "Unique, 1 to 32 characters."))
                div.field {
                    label for="token" { "Client token" }
                    input type="text" id="token" name="token" value=(generated) autocomplete="off";
                    p.hint { "At least 32 characters, or leave it empty and a token of 64 random bytes (128 hex digits) is generated. It is shown once." }
                    (field_error(err, "token"))
                }
                div.field {
                    label for="role" { "Role" }
                    select id="role" name="role" {
                        option value="central-admin" selected[f.get("role") != "tenant-manager"] { "Central administrator" }
                        option value="tenant-manager" selected[f.get("role") == "tenant-manager"] { "Tenant manager" }
                    }
                    (field_error(err, "role"))
                }
                div.field {
                    label for="tenant" { "Tenant (tenant manager only)" }
                    select id="tenant" name="tenant" {
                        option value="" { "(none)" }
                        @for t in tenants { option value=(t.name) selected[f.get("tenant") == t.name] { (t.name) } }
                    }
                    (field_error(err, "tenant"))
                }
                button type="submit" { "Add" }
                " "
                a href="/webmanager/api-clients" { "Cancel" }
            }
        },
    )
}

async fn client_new(State(state): State<AppState>, PageAuthed(p): PageAuthed) -> Page {
    central(&p)?;
    let tenants = state.store.tenant_list().await.map_err(store_err)?;
    Ok(client_form(
        &p,
        StatusCode::OK,
        &FormData::default(),
        None,
        &tenants,
    ))
}

fn token_page(p: &Principal, name: &str, token: &Secret) -> Response {
    layout(
        p,
        StatusCode::OK,
        "API client token",
        html! {
            p { "The token of " strong { (name) } ". Copy it now: it is not kept and cannot be shown again." }
            div.toolbar {
                button type="button" data-copy="token" hidden { "Copy" }
                " " span id="copy-status" role="status" {}
            }
            input type="text" id="token" readonly value=(token.secret());
            p { a href="/webmanager/api-clients" { "Done" } }
        },
    )
}

async fn client_create(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    form: FormData,
) -> Page {
    central(&p)?;
    check_post(&p, &form)?;
    let token = Some(form.get("token").to_string())
        .filter(|t| !t.is_empty())
        .map(Secret::new);
    match p
        .admin(&state)
        .api_client_add(
            form.get("name"),
            form.get("role"),
            Some(form.get("tenant")),
            token,
        )
        .await
    {
        Ok(n) => Ok(token_page(&p, &n.client.name, &n.token)),
        Err(AdminError::Store(e)) => Err(unavailable(&e).into()),
        Err(e) => {
            let tenants = state.store.tenant_list().await.map_err(store_err)?;
            Ok(client_form(&p, status_of(&e), &form, Some(&e), &tenants))
        }
    }
}

async fn client_regenerate(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    Path(name): Path<String>,
    form: FormData,
) -> Page {
    central(&p)?;
    check_post(&p, &form)?;
    match p
        .admin(&state)
        .api_client_regenerate(&name, None, form.version())
        .await
    {
        Ok(n) => Ok(token_page(&p, &n.client.name, &n.token)),
        Err(AdminError::Store(e)) => Err(unavailable(&e).into()),
        Err(e) => Ok(layout(
            &p,
            status_of(&e),
            "Token not changed",
            html! { p.error role="alert" { (e.to_string()) } p { a href="/webmanager/api-clients" { "Back" } } },
        )),
    }
}

async fn client_delete(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    Path(name): Path<String>,
    form: FormData,
) -> Page {
    central(&p)?;
    check_post(&p, &form)?;
    after_change(
        &p,
        p.admin(&state).api_client_rm(&name).await.map(|_| ()),
        "/webmanager/api-clients",
        "API client not deleted",
        "/webmanager/api-clients",
    )
}

// Sign-in activity.

#[derive(Debug, Deserialize, Default)]
struct ActivityQuery {
    tenant: Option<String>,
    q: Option<String>,
}

async fn activity(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    Query(q): Query<ActivityQuery>,
) -> Page {
    if let Some(first) = p.first_step() {
        return Err(see_other(first).into());
    }
    let tenants: Vec<_> = state
        .store
        .tenant_list()
        .await
        .map_err(store_err)?
        .into_iter()
        .filter(|t| p.may_watch(t.id))
        .collect();
    let wanted = match (&p.scope, q.tenant.as_deref()) {
        (Scope::Tenant { name, .. }, _) => name.clone(),
        (Scope::Central, Some(t)) => t.to_string(),
        (Scope::Central, None) => admin::DEFAULT_TENANT.to_string(),
    };
    let Some(t) = tenants.iter().find(|t| t.name == wanted).cloned() else {
        return Err(message(StatusCode::NOT_FOUND, "Not found", "No such tenant.").into());
    };
    let (sessions, more) = super::api::sessions_of(&state, t.id, 0, 200)
        .await
        .map_err(store_err)?;
    let search = q.q.clone().unwrap_or_default();
    let failures = super::api::failures_of(&state, &t.name, &search)
        .await
        .map_err(store_err)?;
    let chart = state.chart(&t.name).await.map_err(store_err)?;
    Ok(layout(
        &p,
        StatusCode::OK,
        &format!("Sign-in activity of {}", t.name),
        html! {
            @if tenants.len() > 1 {
                form.inline method="get" action="/webmanager/activity" {
                    label for="tenant" { "Tenant" }
                    select id="tenant" name="tenant" { @for x in &tenants { option value=(x.name) selected[x.id == t.id] { (x.name) } } }
                    button type="submit" { "Show" }
                }
            }
            h2 { "Sign-ins per hour, last 24 hours" }
            (PreEscaped(chart.svg()))
            p.small id="chart-totals" { "Successes: " span id="chart-successes" { (chart.successes()) } " · failures: " span id="chart-failures" { (chart.failures()) } }
            h2 { "Signed in now" }
            @if more { p.small { "The newest " (sessions.len()) " sessions (there are more): " code { "ssogate sessions list" } " or the API list them all." } }
            table id="sessions" {
                thead { tr { th { "User" } th { "Method" } th { "Since" } th { "Expires" } th {} } }
                tbody {
                    @for s in &sessions {
                        tr {
                            td.user { (s.username) " " span.hint { (s.display_name) } }
                            td { (s.method) }
                            td { (s.since) }
                            td { (s.expires) }
                            td.actions {
                                form.inline method="post" action="/webmanager/activity/end" {
                                    (csrf_field(&p))
                                    input type="hidden" name="tenant" value=(t.name);
                                    input type="hidden" name="handle" value=(s.handle);
                                    button type="submit" { "End session" }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Recent failures" }
            form.inline method="get" action="/webmanager/activity" {
                input type="hidden" name="tenant" value=(t.name);
                label for="q" { "Filter (reference, user, reason)" }
                input type="text" id="q" name="q" value=(search);
                button type="submit" { "Filter" }
            }
            table id="failures" {
                thead { tr { th { "When" } th { "Reference" } th { "User" } th { "Reason" } th { "Detail" } } }
                tbody {
                    @for f in failures.iter().take(200) {
                        tr {
                            td { (f.at) }
                            td { code { (f.reference) } @if f.repeats > 0 { " (+" (f.repeats) ")" } }
                            td { (f.username.as_deref().unwrap_or("")) }
                            td { (f.reason) }
                            td.small { (f.detail) }
                        }
                    }
                }
            }
        },
    ))
}

async fn activity_end(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    form: FormData,
) -> Page {
    if let Some(first) = p.first_step() {
        return Err(see_other(first).into());
    }
    check_post(&p, &form)?;
    let t = state
        .store
        .tenant_by_name(form.get("tenant"))
        .await
        .map_err(store_err)?
        .filter(|t| p.may_watch(t.id))
        .ok_or_else(|| message(StatusCode::NOT_FOUND, "Not found", "No such tenant."))?;
    match p
        .admin(&state)
        .session_end(Some(t.id), form.get("handle"))
        .await
    {
        Ok(()) | Err(AdminError::NotFound(_)) => Ok(see_other(&format!(
            "/webmanager/activity?tenant={}",
            urlenc(&t.name)
        ))),
        Err(e) => Err(admin_store(e).into()),
    }
}

// Audit log.

#[derive(Debug, Deserialize, Default)]
struct AuditQuery {
    object: Option<String>,
    before: Option<i64>,
}

async fn audit(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    Query(q): Query<AuditQuery>,
) -> Page {
    central(&p)?;
    let object = q.object.clone().unwrap_or_default();
    let entries = state
        .store
        .audit_list(
            Some(&object).filter(|o| !o.is_empty()).map(|s| s.as_str()),
            q.before,
            100,
        )
        .await
        .map_err(store_err)?;
    let next = (entries.len() == 100)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(layout(
        &p,
        StatusCode::OK,
        "Audit log",
        html! {
            form.inline method="get" action="/webmanager/audit" {
                label for="object" { "Object (prefix: idp:, tenant:acme, user:acme/)" }
                input type="text" id="object" name="object" value=(object);
                button type="submit" { "Show" }
            }
            table {
                thead { tr { th { "When" } th { "Who" } th { "What" } th { "Object" } th { "Before" } th { "After" } } }
                tbody {
                    @for e in &entries {
                        tr {
                            td { (e.at) }
                            td { (e.actor) }
                            td { (e.action) }
                            td { (e.object) }
                            td.small { code { (e.before.clone().unwrap_or_default()) } }
                            td.small { code { (e.after.clone().unwrap_or_default()) } }
                        }
                    }
                }
            }
            @if let Some(n) = next { p { a href={"/webmanager/audit?object=" (urlenc(&object)) "&before=" (n)} { "Older" } } }
        },
    ))
}

// SAML tracer.

/// The capture section of the tracer: turn it on for a tenant, and what it kept.
pub(super) struct CaptureView {
    tenant: String,
    until: Option<String>,
    items: Vec<crate::store::CapturedResponse>,
}

async fn capture_view(state: &AppState, tenant: &str) -> Result<CaptureView, StoreError> {
    let now = state.clock.now();
    Ok(CaptureView {
        tenant: tenant.to_string(),
        until: state.captures.until(tenant, now).map(|u| u.to_rfc3339()),
        items: state.store.capture_list(tenant).await?,
    })
}

fn capture_section(p: &Principal, tenants: &[crate::domain::Tenant], c: &CaptureView) -> Markup {
    html! {
        h2 { "Captured failures" }
        form.inline method="get" action="/webmanager/tracer" {
            label for="capture_tenant" { "Tenant" }
            select id="capture_tenant" name="tenant" { @for t in tenants { option value=(t.name) selected[t.name == c.tenant] { (t.name) } } }
            button type="submit" { "Show" }
        }
        form method="post" action="/webmanager/tracer/capture" {
            (csrf_field(p))
            input type="hidden" name="tenant" value=(c.tenant);
            @if let Some(u) = &c.until {
                p { "Capturing " (c.tenant) "'s failing SAML responses until " (u) "." }
                input type="hidden" name="stop" value="1";
                button type="submit" { "Stop capturing" }
            } @else {
                p.hint { "While on, a response the ACS refuses for this tenant (or its IdP) is kept here with the failure's reference, for 24 hours (the latest 50)." }
                button type="submit" { "Capture failing responses for 15 minutes" }
            }
        }
        @if !c.items.is_empty() {
            table id="captures" {
                thead { tr { th { "At" } th { "Reference" } th { "Reason" } th {} } }
                tbody {
                    @for i in &c.items {
                        tr {
                            td { (i.at.to_rfc3339()) }
                            td { code { (i.reference) } }
                            td { (i.reason) }
                            td.actions { a href={"/webmanager/tracer?tenant=" (urlenc(&c.tenant)) "&capture=" (i.id)} { "Trace" } }
                        }
                    }
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn tracer_form(
    p: &Principal,
    status: StatusCode,
    f: &FormData,
    err: Option<&AdminError>,
    tenants: &[crate::domain::Tenant],
    report: Option<&crate::domain::trace::TraceReport>,
    captures: &CaptureView,
) -> Response {
    layout(
        p,
        status,
        "SAML tracer",
        html! {
            p { "Paste or upload a SAMLResponse (base64 as the IdP posted it, or its XML): every check of the ACS runs on it and says what it compared. Nothing is consumed or recorded." }
            (form_error(err, &["response", "at"]))
            form method="post" action="/webmanager/tracer" enctype="multipart/form-data" {
                (csrf_field(p))
                (area("SAMLResponse", "response", f.get("response"), err, ""))
                div.field { label for="response_file" { "…or upload" } input type="file" id="response_file" name="response"; }
                div.field {
                    label for="tenant" { "Tenant" }
                    select id="tenant" name="tenant" {
                        option value="" { "(the IdP named by the Issuer)" }
                        @for t in tenants { option value=(t.name) selected[f.get("tenant") == t.name] { (t.name) } }
                    }
                }
                (text_input("Evaluate at (optional)", "at", f.get("at"), err, "RFC 3339, e.g. 2026-01-31T12:00:00Z: to see a response as it was when it arrived."))
                button type="submit" { "Trace" }
            }
            @if let Some(r) = report {
                h2 { @if r.accepted { "Accepted" } @else { "Refused" } " (evaluated at " (r.evaluated_at) ")" }
                table id="trace" {
                    thead { tr { th { "Step" } th { "Verdict" } th { "Values" } } }
                    tbody {
                        @for st in &r.steps {
                            tr class=(st.verdict.replace(' ', "-")) {
                                td.step { (st.step) }
                                td.verdict {
                                    (st.verdict)
                                    @if let Some(c) = &st.code { br; code { (c) } }
                                }
                                td.small {
                                    @if let Some(m) = &st.message { p.error { (m) } }
                                    @for (k, v) in &st.values { div { strong { (k) ": " } (v) } }
                                }
                            }
                        }
                    }
                }
            }
            (capture_section(p, tenants, captures))
        },
    )
}

#[derive(Debug, Deserialize)]
struct TracerQuery {
    tenant: Option<String>,
    /// A captured response to trace.
    capture: Option<i64>,
}

async fn tracer_page(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    Query(q): Query<TracerQuery>,
) -> Page {
    central(&p)?;
    let tenants = state.store.tenant_list().await.map_err(store_err)?;
    let tenant = q
        .tenant
        .clone()
        .unwrap_or_else(|| admin::DEFAULT_TENANT.to_string());
    let captures = capture_view(&state, &tenant).await.map_err(store_err)?;
    let mut f = FormData::default();
    let mut report = None;
    if let Some(id) = q.capture {
        let Some(c) = state
            .store
            .capture_get(&tenant, id)
            .await
            .map_err(store_err)?
        else {
            return Err(message(
                StatusCode::NOT_FOUND,
                "Not found",
                "No such captured response (kept 24 hours).",
            )
            .into());
        };
        // Traced as it was when it arrived, for its tenant.
        let message = c.message.unwrap_or_default();
        f.0.insert("response".into(), message.clone());
        f.0.insert("tenant".into(), tenant.clone());
        f.0.insert("at".into(), c.at.to_rfc3339());
        let req = crate::domain::trace::TraceRequest {
            response: message.into_bytes(),
            tenant: Some(tenant.clone()),
            at: Some(c.at),
        };
        report = Some(
            crate::domain::trace::trace(
                state.store.as_ref(),
                &state.config,
                &req,
                state.clock.now(),
            )
            .await
            .map_err(admin_store)?,
        );
    }
    Ok(tracer_form(
        &p,
        StatusCode::OK,
        &f,
        None,
        &tenants,
        report.as_ref(),
        &captures,
    ))
}

async fn capture_submit(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    form: FormData,
) -> Page {
    central(&p)?;
    check_post(&p, &form)?;
    let tenant = form.get("tenant").to_string();
    let r = p
        .admin(&state)
        .capture_set(&state.captures, &tenant, form.get("stop") != "1")
        .await
        .map(|_| ());
    after_change(
        &p,
        r,
        &format!("/webmanager/tracer?tenant={}", urlenc(&tenant)),
        "Capture not started",
        "/webmanager/tracer",
    )
}

async fn tracer_submit(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    form: FormData,
) -> Page {
    central(&p)?;
    check_post(&p, &form)?;
    let tenants = state.store.tenant_list().await.map_err(store_err)?;
    let captures = capture_view(
        &state,
        Some(form.get("tenant"))
            .filter(|t| !t.is_empty())
            .unwrap_or(admin::DEFAULT_TENANT),
    )
    .await
    .map_err(store_err)?;
    if form.get("response").is_empty() {
        let e = AdminError::Invalid {
            field: Some("response"),
            message: "paste or upload a SAMLResponse".into(),
        };
        return Ok(tracer_form(
            &p,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form,
            Some(&e),
            &tenants,
            None,
            &captures,
        ));
    }
    let at = match Some(form.get("at")).filter(|a| !a.is_empty()) {
        Some(a) => match crate::saml::UnixTime::parse(a) {
            Some(t) => Some(t),
            None => {
                let e = AdminError::Invalid {
                    field: Some("at"),
                    message: format!("{a:?} is not an RFC 3339 instant (2026-01-31T12:00:00Z)"),
                };
                return Ok(tracer_form(
                    &p,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &form,
                    Some(&e),
                    &tenants,
                    None,
                    &captures,
                ));
            }
        },
        None => None,
    };
    let req = crate::domain::trace::TraceRequest {
        response: form.get("response").as_bytes().to_vec(),
        tenant: Some(form.get("tenant").to_string()).filter(|t| !t.is_empty()),
        at,
    };
    let report =
        crate::domain::trace::trace(state.store.as_ref(), &state.config, &req, state.clock.now())
            .await
            .map_err(admin_store)?;
    Ok(tracer_form(
        &p,
        StatusCode::OK,
        &form,
        None,
        &tenants,
        Some(&report),
        &captures,
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn metadata_file_names_are_safe() {
        assert_eq!(
            super::metadata_file_name("https://cc.example.com:8443/agentportal"),
            "ssogate_cc.example.com_8443_metadata.xml"
        );
        assert_eq!(
            super::metadata_file_name("http://a\"b/"),
            "ssogate_a_b_metadata.xml"
        );
    }
}
