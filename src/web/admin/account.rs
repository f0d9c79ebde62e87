//! The second factor of Web Manager accounts (TOTP, RFC 6238): enrolment by the account itself
//! (`/webmanager/account`), the code step of the sign-in, and the reset of a lost device by a
//! central administrator.
//!
//! Between the password and the code the browser holds only `ssogate_admin_2fa`: the user's ID
//! and an expiry (5 minutes) under a MAC of the service's key, so that a password alone stores
//! nothing and grants nothing. Wrong codes count in the password throttle (per account and
//! address), and a code is taken once ([`crate::store::Store::totp_use_step`]). API clients
//! (bearer tokens) are machine credentials and have no second factor.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use maud::{Markup, html};

use super::form::FormData;
use super::ui::{
    Halt, Page, after_change, bare, central, check_post, csrf_field, delete_button, field_error,
    form_error, layout, message, status_of, store_err, unavailable, urlenc,
};
use super::{PageAuthed, Principal, Secure};
use crate::domain::admin::{self, AdminError};
use crate::domain::audit::totp_purpose;
use crate::domain::{User, totp};
use crate::saml::UnixTime;
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::client::ClientAddr;
use crate::web::login::see_other;
use crate::web::pending::hmac_sha256::hmac;
use crate::web::refusal::{Reason, Refusal};

/// The cookie between password and code.
const STEP_COOKIE: &str = "ssogate_admin_2fa";
/// How long the code may take after the password.
const STEP_SECS: i64 = 300;

async fn step_mac(state: &AppState, user: i64, expires: i64) -> Result<String, StoreError> {
    let key = state.pending_key().await?;
    Ok(hex::encode(hmac(
        key,
        &[
            b"ssogate admin second factor v1\0",
            format!("{user}.{expires}").as_bytes(),
        ],
    )))
}

fn step_cookie(value: &str, secure: bool, max_age: i64) -> HeaderValue {
    let v = format!(
        "{STEP_COOKIE}={value}; Path=/webmanager; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&v).expect("invariant: the cookie is digits, dots and hex")
}

/// After a right password: to the code page when `user` has a second factor (None otherwise).
pub async fn second_factor_step(
    state: &AppState,
    user: &User,
    now: UnixTime,
    secure: bool,
) -> Result<Option<Response>, StoreError> {
    if state.store.totp_get(user.id).await?.is_none() {
        return Ok(None);
    }
    let expires = now.millis() + STEP_SECS * 1000;
    let mac = step_mac(state, user.id.0, expires).await?;
    let mut res = see_other("/webmanager/signin/code");
    res.headers_mut().append(
        header::SET_COOKIE,
        step_cookie(&format!("{}.{expires}.{mac}", user.id.0), secure, STEP_SECS),
    );
    Ok(Some(res))
}

/// The user whose password was right, from the step cookie (None: none, forged or expired).
async fn step_user(
    state: &AppState,
    headers: &HeaderMap,
    now: UnixTime,
) -> Result<Option<User>, StoreError> {
    let Some(v) = super::cookie(headers, STEP_COOKIE) else {
        return Ok(None);
    };
    let mut parts = v.splitn(3, '.');
    let (Some(Ok(user)), Some(Ok(expires)), Some(mac)) = (
        parts.next().map(str::parse::<i64>),
        parts.next().map(str::parse::<i64>),
        parts.next(),
    ) else {
        return Ok(None);
    };
    if expires <= now.millis() || expires > now.millis() + STEP_SECS * 1000 {
        return Ok(None);
    }
    let want = step_mac(state, user, expires).await?;
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        want.as_bytes(),
        mac.as_bytes(),
    )) {
        return Ok(None);
    }
    state.store.user_get(crate::domain::UserId(user)).await
}

fn code_form(status: StatusCode, error: Option<&str>, reference: Option<&str>) -> Response {
    bare(
        status,
        "Verification code",
        html! {
            h1 { "Web Manager" }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            @if let Some(r) = reference { p.hint { "Reference: " code { (r) } } }
            form method="post" action="/webmanager/signin/code" {
                div.field {
                    label for="code" { "Verification code" }
                    input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" autofocus;
                    p.hint { "The 6-digit code your authenticator app shows for ssogate." }
                }
                button type="submit" { "Verify" }
            }
            p { a href="/webmanager/signin" { "Start again" } }
        },
    )
}

pub async fn code_page(State(state): State<AppState>, headers: HeaderMap) -> Page {
    match step_user(&state, &headers, state.clock.now()).await {
        Ok(Some(_)) => Ok(code_form(StatusCode::OK, None, None)),
        Ok(None) => Ok(see_other("/webmanager/signin")),
        Err(e) => Err(store_err(e).into()),
    }
}

pub async fn code_submit(
    State(state): State<AppState>,
    axum::Extension(Secure(secure)): axum::Extension<Secure>,
    client: Option<axum::Extension<ClientAddr>>,
    headers: HeaderMap,
    form: FormData,
) -> Result<Response, Refusal> {
    let now = state.clock.now();
    let Some(user) = step_user(&state, &headers, now).await? else {
        return Ok(see_other("/webmanager/signin"));
    };
    let client = client.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.0);
    let tenant = state
        .store
        .tenant_get(user.tenant_id)
        .await?
        .map(|t| t.name)
        .unwrap_or_default();
    let key = format!("admin-code:{}", user.id.0);
    if let Err(wait) = state
        .guards
        .throttle
        .check(user.tenant_id.0, &key, client, now)
    {
        let r = Refusal::new(
            Reason::PasswordThrottled,
            format!(
                "Web Manager: too many wrong verification codes for {:?} of tenant {tenant:?} from {client}: the next attempt is checked in {wait} s",
                user.username
            ),
        )
        .tenant(&tenant)
        .username(&user.username)
        .with_custom(move |r| {
            code_form(
                StatusCode::TOO_MANY_REQUESTS,
                Some(&format!("Too many wrong codes. Please wait {wait} seconds and try again.")),
                Some(r),
            )
        });
        return Ok(super::throttled(r, wait));
    }
    let taken = match state.store.totp_get(user.id).await? {
        None => None,
        Some(row) => match state.secrets.decrypt(&totp_purpose(user.id), &row.secret) {
            Ok(secret) => match totp::check(&secret, form.get("code"), now, row.last_step) {
                Some(step) => state
                    .store
                    .totp_use_step(user.id, step)
                    .await?
                    .then_some(step),
                None => None,
            },
            Err(e) => {
                tracing::error!(user = %user.username, tenant = %tenant, error = %e, "Web Manager: the account's TOTP secret cannot be read (a central administrator can reset it)");
                None
            }
        },
    };
    if taken.is_none() {
        let wait = state
            .guards
            .throttle
            .failed(user.tenant_id.0, &key, client, now);
        return Err(Refusal::new(
            Reason::PasswordRefused,
            format!(
                "Web Manager: wrong or reused verification code for {:?} of tenant {tenant:?} from {client}{}",
                user.username,
                if wait > 0 { format!("; the next attempt waits {wait} s") } else { String::new() }
            ),
        )
        .tenant(&tenant)
        .username(&user.username)
        .with_custom(|r| {
            code_form(
                StatusCode::UNAUTHORIZED,
                Some("That code is not right (or was used already). Enter the code your app shows now."),
                Some(r),
            )
        }));
    }
    state
        .guards
        .throttle
        .succeeded(user.tenant_id.0, &key, client);
    super::end_old_session(&state, &headers).await?;
    tracing::info!(tenant = %tenant, user = %user.username, "Web Manager sign-in (with a verification code)");
    let mut res = super::signed_in_answer(&state, &user, now, secure).await?;
    res.headers_mut()
        .append(header::SET_COOKIE, step_cookie("", secure, 0));
    Ok(res)
}

// The account page: enrolment and turning it off.

/// The MAC that ties an offered secret to the session that was shown it.
async fn offer_mac(state: &AppState, p: &Principal, secret: &str) -> Result<String, StoreError> {
    let key = state.pending_key().await?;
    Ok(hex::encode(hmac(
        key,
        &[
            b"ssogate totp offer v1\0",
            p.session_hash.as_deref().unwrap_or("").as_bytes(),
            b"\0",
            secret.as_bytes(),
        ],
    )))
}

/// A QR code of `text` as inline SVG (presentation attributes only: the CSP stays).
fn qr_svg(text: &str) -> Markup {
    let Ok(code) = qrcode::QrCode::new(text.as_bytes()) else {
        return html! {};
    };
    let w = code.width();
    let mut d = String::new();
    for (i, c) in code.to_colors().iter().enumerate() {
        if *c == qrcode::Color::Dark {
            d.push_str(&format!("M{} {}h1v1h-1z", i % w + 4, i / w + 4));
        }
    }
    let size = w + 8;
    html! {
        svg.qr xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (size) " " (size)} width="220" height="220" role="img" aria-label="QR code of the key" {
            rect width=(size) height=(size) fill="#ffffff" {}
            path d=(d) fill="#000000" {}
        }
    }
}

fn account_user(p: &Principal) -> Result<User, Halt> {
    p.user.clone().ok_or_else(|| {
        Halt::from(message(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "API clients have no account page.",
        ))
    })
}

async fn account_page(
    state: &AppState,
    p: &Principal,
    status: StatusCode,
    offered: Option<String>,
    err: Option<&AdminError>,
) -> Page {
    let user = account_user(p)?;
    let row = state.store.totp_get(user.id).await.map_err(store_err)?;
    let required = state.require_totp() && p.is_central();
    let body = match row {
        Some(row) => html! {
            h2 { "Two-step verification" }
            p { "On since " (row.enabled_at.to_rfc3339()) ": signing in asks for the code of your authenticator app after the password." }
            (form_error(err, &["code"]))
            @if required {
                p.hint { "Central administrators must use it here, so it cannot be turned off. If the device is lost, another central administrator resets it (Users → the account → Reset two-step verification)." }
            } @else {
                form method="post" action="/webmanager/account/totp/disable" {
                    (csrf_field(p))
                    div.field {
                        label for="code" { "Code from your app" }
                        input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code";
                        (field_error(err, "code"))
                    }
                    button type="submit" { "Turn off two-step verification" }
                }
            }
        },
        None => {
            let secret = match offered {
                Some(s) => s,
                None => totp::base32(&totp::new_secret(state.rng.as_ref())),
            };
            let bytes = totp::from_base32(&secret).unwrap_or_default();
            let account = format!("{}@{}", user.username, p.user_tenant);
            let uri = totp::otpauth_uri(&account, &bytes);
            let mac = offer_mac(state, p, &secret).await.map_err(store_err)?;
            let grouped: Vec<String> = secret
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            html! {
                h2 { "Two-step verification" }
                @if required {
                    p.banner { "Central administrators must use two-step verification: set it up before you go on." }
                }
                p { "Off. With it on, signing in asks for a code from an authenticator app (any app for TOTP codes) after the password." }
                (form_error(err, &["code"]))
                ol {
                    li { "In the app, add an account by scanning this code, or by typing the key below it." }
                    li { "Enter the 6-digit code the app then shows, to check that it has the key." }
                }
                (qr_svg(&uri))
                p { "Key: " code.key { (grouped.join(" ")) } }
                form method="post" action="/webmanager/account/totp" {
                    (csrf_field(p))
                    input type="hidden" name="secret" value=(secret);
                    input type="hidden" name="offer" value=(mac);
                    div.field {
                        label for="code" { "Code from your app" }
                        input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code";
                        (field_error(err, "code"))
                    }
                    button type="submit" { "Turn on two-step verification" }
                }
            }
        }
    };
    Ok(layout(
        p,
        status,
        "Your account",
        html! {
            p { "Signed in as " strong { (user.username) } " of tenant " strong { (p.user_tenant) } "." }
            p { a href="/webmanager/password" { "Change your password" } }
            (body)
        },
    ))
}

pub async fn account(State(state): State<AppState>, PageAuthed(p): PageAuthed) -> Page {
    if p.must_change_password() {
        return Ok(see_other("/webmanager/password"));
    }
    account_page(&state, &p, StatusCode::OK, None, None).await
}

pub async fn totp_enable(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    form: FormData,
) -> Page {
    check_post(&p, &form)?;
    let user = account_user(&p)?;
    let secret = form.get("secret").to_string();
    let want = offer_mac(&state, &p, &secret).await.map_err(store_err)?;
    let offered = subtle::ConstantTimeEq::ct_eq(want.as_bytes(), form.get("offer").as_bytes());
    let bytes = totp::from_base32(&secret).filter(|b| b.len() == totp::SECRET_BYTES);
    let (true, Some(bytes)) = (bool::from(offered), bytes) else {
        // Not the key this session was shown: a new one is offered.
        let e = AdminError::Invalid {
            field: None,
            message:
                "The key on the page had changed; here is a new one: add it to your app again."
                    .into(),
        };
        return account_page(&state, &p, StatusCode::UNPROCESSABLE_ENTITY, None, Some(&e)).await;
    };
    match p
        .admin(&state)
        .totp_enable(
            &state.secrets,
            &user,
            &p.user_tenant,
            &bytes,
            form.get("code"),
        )
        .await
    {
        Ok(()) => Ok(see_other("/webmanager/account")),
        Err(AdminError::Store(e)) => Err(unavailable(&e).into()),
        Err(e) => account_page(&state, &p, status_of(&e), Some(secret), Some(&e)).await,
    }
}

pub async fn totp_disable(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    form: FormData,
) -> Page {
    check_post(&p, &form)?;
    let user = account_user(&p)?;
    if state.require_totp() && p.is_central() {
        let e = AdminError::Invalid {
            field: None,
            message: "Central administrators must use two-step verification: it stays on.".into(),
        };
        return account_page(&state, &p, StatusCode::CONFLICT, None, Some(&e)).await;
    }
    let now = state.clock.now();
    let row = state.store.totp_get(user.id).await.map_err(store_err)?;
    let right = match &row {
        Some(row) => state
            .secrets
            .decrypt(&totp_purpose(user.id), &row.secret)
            .ok()
            .and_then(|s| totp::check(&s, form.get("code"), now, row.last_step))
            .is_some(),
        None => false,
    };
    if !right {
        let e = AdminError::Invalid {
            field: Some("code"),
            message:
                "That code is not right (or was used already): enter the code your app shows now."
                    .into(),
        };
        return account_page(&state, &p, StatusCode::UNPROCESSABLE_ENTITY, None, Some(&e)).await;
    }
    match p.admin(&state).totp_disable(&user, &p.user_tenant).await {
        Ok(()) => Ok(see_other("/webmanager/account")),
        Err(AdminError::Store(e)) => Err(unavailable(&e).into()),
        Err(e) => account_page(&state, &p, status_of(&e), None, Some(&e)).await,
    }
}

/// A central administrator resets another account's second factor (a lost device).
pub async fn totp_reset(
    State(state): State<AppState>,
    PageAuthed(p): PageAuthed,
    Path((tenant, username)): Path<(String, String)>,
    form: FormData,
) -> Page {
    central(&p)?;
    check_post(&p, &form)?;
    let back = format!(
        "/webmanager/users/{}/{}",
        urlenc(&tenant),
        urlenc(&username)
    );
    let r = match admin::user_find(state.store.as_ref(), &tenant, &username).await {
        Ok((t, u)) => p.admin(&state).totp_disable(&u, &t.name).await,
        Err(e) => Err(e),
    };
    after_change(&p, r, &back, "Nothing reset", &back)
}

/// The reset button of the user page (when the account has a second factor).
pub async fn reset_button(
    state: &AppState,
    p: &Principal,
    user: &User,
    action: &str,
) -> Result<Markup, StoreError> {
    Ok(match state.store.totp_get(user.id).await? {
        Some(_) => html! {
            p.hint { "Two-step verification is on for this account." }
            (delete_button(p, &format!("{action}/totp-reset"), "Reset two-step verification (a lost device)"))
        },
        None => html! {},
    })
}
