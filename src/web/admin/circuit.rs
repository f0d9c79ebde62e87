//! Authentication configuration → Circuit: a tenant's Circuit sign-on. Central administrators
//! pick any tenant; a tenant manager sees and changes their own tenant's (the one page of the Web
//! Manager they may change). The client secret is never shown: `*****` when one is set, and an
//! empty field on Save keeps it.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::form::FormData;
use super::ui::{
    Halt, Page, admin_store, check_post, checkbox, csrf_field, field_error, form_error, layout,
    status_of, store_err, text_input, unavailable, urlenc,
};
use super::{PageAuthed, Principal};
use crate::domain::Secret;
use crate::domain::admin::AdminError;
use crate::domain::circuit::{CircuitInput, CircuitSettings, circuit_get};
use crate::web::AppState;
use crate::web::login::see_other;

const FIELDS: &[&str] = &[
    "enabled",
    "client_id",
    "client_secret",
    "portal_url",
    "login_url",
    "kind",
    "authorize_path",
    "token_path",
    "profile_path",
    "scope",
    "profile_field",
    "pkce",
    "token_auth",
];

/// Past the first steps (the password change, the second factor's set-up).
fn allowed(p: &Principal) -> Result<(), Halt> {
    if let Some(first) = p.first_step() {
        return Err(see_other(first).into());
    }
    Ok(())
}

fn forbidden(p: &Principal) -> Halt {
    let (s, t) = super::forbidden_text();
    layout(p, s, "Forbidden", html! { p { (t) } }).into()
}

/// The tenant named in the path, if this account may configure it.
async fn tenant_of(
    state: &AppState,
    p: &Principal,
    name: &str,
) -> Result<crate::domain::Tenant, Halt> {
    allowed(p)?;
    match state.store.tenant_by_name(name).await.map_err(store_err)? {
        Some(t) if p.may_watch(t.id) => Ok(t),
        Some(_) => Err(forbidden(p)),
        None => {
            Err(admin_store(AdminError::NotFound(format!("no tenant is named {name:?}"))).into())
        }
    }
}

#[derive(Deserialize, Default)]
pub struct Pick {
    pub tenant: Option<String>,
}

/// `/webmanager/circuit[?tenant=T]`: to the chosen tenant's tab (a tenant manager's own).
pub async fn pick(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    Query(q): Query<Pick>,
) -> Page {
    allowed(&p)?;
    let tenants = state.store.tenant_list().await.map_err(store_err)?;
    let mine: Vec<&crate::domain::Tenant> = tenants.iter().filter(|t| p.may_watch(t.id)).collect();
    let chosen = match q.tenant.as_deref().filter(|t| !t.is_empty()) {
        Some(name) => mine.iter().find(|t| t.name == name).copied(),
        None => mine.first().copied(),
    };
    match chosen {
        Some(t) => Ok(see_other(&format!(
            "/webmanager/circuit/{}",
            urlenc(&t.name)
        ))),
        None => Err(forbidden(&p)),
    }
}

fn values(c: &CircuitSettings) -> FormData {
    let mut f = FormData::default();
    for (k, v) in [
        ("client_id", c.client_id.as_str()),
        ("portal_url", &c.portal_url),
        ("login_url", &c.login_url),
        ("kind", c.kind.as_str()),
        ("authorize_path", &c.authorize_path),
        ("token_path", &c.token_path),
        ("profile_path", &c.profile_path),
        ("scope", &c.scope),
        ("profile_field", &c.profile_field),
        ("token_auth", c.token_auth.as_str()),
    ] {
        f.0.insert(k.into(), v.to_string());
    }
    if c.enabled {
        f.0.insert("enabled".into(), "on".into());
    }
    if c.pkce {
        f.0.insert("pkce".into(), "on".into());
    }
    f
}

fn input(f: &FormData) -> CircuitInput {
    CircuitInput {
        enabled: Some(f.checked("enabled")),
        kind: Some(f.get("kind").to_string()).filter(|k| !k.is_empty()),
        client_id: Some(f.get("client_id").to_string()),
        client_secret: Some(Secret::new(f.raw("client_secret").to_string())),
        portal_url: Some(f.get("portal_url").to_string()),
        login_url: Some(f.get("login_url").to_string()),
        authorize_path: Some(f.get("authorize_path").to_string()),
        token_path: Some(f.get("token_path").to_string()),
        profile_path: Some(f.get("profile_path").to_string()),
        scope: Some(f.get("scope").to_string()),
        profile_field: Some(f.get("profile_field").to_string()),
        pkce: Some(f.checked("pkce")),
        token_auth: Some(f.get("token_auth").to_string()).filter(|t| !t.is_empty()),
        version: f.version(),
    }
}

#[allow(clippy::too_many_arguments)]
fn form(
    p: &Principal,
    status: StatusCode,
    tenants: &[crate::domain::Tenant],
    stored: &CircuitSettings,
    sps: &[crate::domain::ServiceProvider],
    f: &FormData,
    err: Option<&AdminError>,
    saved: bool,
) -> Response {
    let tenant = &stored.tenant;
    let action = format!("/webmanager/circuit/{}", urlenc(tenant));
    let kind = f.get("kind");
    let auth = f.get("token_auth");
    let callback = if f.get("portal_url").is_empty() {
        None
    } else {
        Some(format!(
            "{}{}",
            f.get("portal_url").trim_end_matches('/'),
            crate::domain::circuit::CALLBACK_PATH
        ))
    };
    let sp_urls: Vec<&str> = sps.iter().map(|s| s.host_url.as_str()).collect();
    let mine: Vec<&crate::domain::Tenant> = tenants.iter().filter(|t| p.may_watch(t.id)).collect();
    let body: Markup = html! {
        @if mine.len() > 1 {
            form.inline method="get" action="/webmanager/circuit" {
                label for="tenant-pick" { "Tenant " }
                select id="tenant-pick" name="tenant" {
                    @for t in &mine { option value=(t.name) selected[t.name == *tenant] { (t.name) } }
                }
                " "
                button type="submit" { "Show" }
            }
        }
        @if saved { p.ok role="status" { "Saved." } }
        (form_error(err, FIELDS))
        form method="post" action=(action) {
            (csrf_field(p))
            input type="hidden" name="version" value=(stored.version);
            (checkbox("Enable Circuit Sign On", "enabled", f.checked("enabled")))
            (field_error(err, "enabled"))
            (text_input("Client ID", "client_id", f.get("client_id"), err, "The app's client ID at Circuit (1 to 128 visible characters)."))
            div.field {
                label for="client_secret" { "Client Secret" }
                input type="password" id="client_secret" name="client_secret" value="" autocomplete="off"
                    placeholder=(if stored.client_secret.is_some() { "*****" } else { "" });
                p.hint {
                    @if stored.client_secret.is_some() { "***** is set. Leave empty to keep it; type a new one to replace it." }
                    @else { "None yet (1 to 512 characters). Kept encrypted; never shown again." }
                }
                (field_error(err, "client_secret"))
            }
            (text_input("Agent Portal URL", "portal_url", f.get("portal_url"), err,
                &format!("https://<domain>/agentportal: a service provider's host URL ({}).",
                    if sp_urls.is_empty() { "none yet".to_string() } else { sp_urls.join(", ") })))
            @if let Some(cb) = &callback {
                p.hint { "Redirect URI to register with the app at Circuit: " code id="callback-url" { (cb) } }
            }
            (text_input("Circuit Login URL", "login_url", f.get("login_url"), err, "https://eu.yourcircuit.com (for OpenID Connect: the issuer)."))
            details open[err.is_some_and(|e| e.field().is_some_and(|f| !["enabled", "client_id", "client_secret", "portal_url", "login_url"].contains(&f)))] {
                summary { "Advanced (another OAuth 2.0 provider, or OpenID Connect)" }
                div.field {
                    label for="kind" { "Provider kind" }
                    select id="kind" name="kind" {
                        option value="oauth2" selected[kind != "oidc"] { "OAuth 2.0 (Circuit: token, then profile)" }
                        option value="oidc" selected[kind == "oidc"] { "OpenID Connect (discovery, signed ID token)" }
                    }
                    (field_error(err, "kind"))
                }
                (text_input("Authorization path", "authorize_path", f.get("authorize_path"), err, "Below the login URL (OAuth 2.0)."))
                (text_input("Token path", "token_path", f.get("token_path"), err, ""))
                (text_input("Profile path", "profile_path", f.get("profile_path"), err, "Read with the access token (OAuth 2.0)."))
                (text_input("Scope", "scope", f.get("scope"), err, "Circuit: READ_USER_PROFILE; OpenID Connect: openid email."))
                (text_input("Profile field", "profile_field", f.get("profile_field"), err, "The field (or ID token claim) that holds the Circuit user: emailAddress; email or preferred_username."))
                (checkbox("PKCE (S256)", "pkce", f.checked("pkce")))
                div.field {
                    label for="token_auth" { "Client authentication at the token endpoint" }
                    select id="token_auth" name="token_auth" {
                        option value="post" selected[auth != "basic"] { "In the form (client_secret_post)" }
                        option value="basic" selected[auth == "basic"] { "HTTP Basic (client_secret_basic)" }
                    }
                    (field_error(err, "token_auth"))
                }
            }
            button type="submit" { "Save" }
            " "
            a href=(action) { "Cancel" }
        }
    };
    layout(
        p,
        status,
        &format!("Circuit sign-on of tenant {tenant}"),
        body,
    )
}

async fn page_for(
    state: &AppState,
    p: &Principal,
    name: &str,
    f: Option<(&FormData, &AdminError)>,
    status: StatusCode,
    saved: bool,
) -> Page {
    let t = tenant_of(state, p, name).await?;
    let stored = circuit_get(state.store.as_ref(), &t.name)
        .await
        .map_err(admin_store)?;
    let tenants = state.store.tenant_list().await.map_err(store_err)?;
    let sps = state.store.sp_list().await.map_err(store_err)?;
    let v = values(&stored);
    let (f, err) = match f {
        Some((f, e)) => (f, Some(e)),
        None => (&v, None),
    };
    Ok(form(p, status, &tenants, &stored, &sps, f, err, saved))
}

#[derive(Deserialize, Default)]
pub struct Saved {
    pub saved: Option<String>,
}

pub async fn edit(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    Path(name): Path<String>,
    Query(q): Query<Saved>,
) -> Page {
    page_for(&state, &p, &name, None, StatusCode::OK, q.saved.is_some()).await
}

pub async fn update(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    Path(name): Path<String>,
    form: FormData,
) -> Page {
    let t = tenant_of(&state, &p, &name).await?;
    check_post(&p, &form)?;
    match p
        .admin(&state)
        .circuit_set(&state.secrets, &t.name, input(&form))
        .await
    {
        Ok(_) => Ok(see_other(&format!(
            "/webmanager/circuit/{}?saved=1",
            urlenc(&t.name)
        ))),
        Err(AdminError::Store(e)) => Err(unavailable(&e).into()),
        Err(e) => page_for(&state, &p, &name, Some((&form, &e)), status_of(&e), false).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_values_never_carry_the_secret() {
        let mut c = CircuitSettings::defaults(crate::domain::TenantId(1), "acme");
        c.client_secret = Some("v1.abcd.ZW5jcnlwdGVk".into());
        let f = values(&c);
        assert!(f.0.values().all(|v| !v.contains("ZW5jcnlwdGVk")));
        assert!(!f.0.contains_key("client_secret"));
    }
}
