//! `ssogate sp|idp|tenant|user|failures …`: administration on the same store the service uses
//! (it may be running). Each command checks all of its input before it changes anything.
//!
//! Exit status: 0 done; 1 refused (the message on stderr names the field and value); 2 usage or
//! I/O; 3 the database is unavailable.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};

use crate::clock::Clock;
use crate::config::Config;
use crate::domain::admin::{self, AdminError, IdpInput, SpInput, TenantInput, UserInput};
use crate::domain::audit::{Admin, session_handle};
use crate::domain::{Secret, TrustConfig};
use crate::rng::{Rng, SystemRng};
use crate::store::Store;

/// Where the store is: the service's configuration file and data directory.
#[derive(Args, Debug, Clone, Default)]
pub struct StoreArgs {
    /// Configuration file (TOML).
    #[arg(long, value_name = "FILE", global = true, help_heading = GLOBAL, display_order = 900)]
    pub config: Option<PathBuf>,
    /// Data directory (default ./ssogate-data).
    #[arg(long, value_name = "DIR", global = true, help_heading = GLOBAL, display_order = 901)]
    pub data_dir: Option<PathBuf>,
}

/// The help heading of the options every command takes.
pub const GLOBAL: &str = "Global options";

/// The values of an on/off switch (one vocabulary for every switch).
pub const ON_OFF: [&str; 2] = ["on", "off"];

impl StoreArgs {
    pub fn load(&self) -> Result<Config, String> {
        let mut c = Config::load(self.config.as_deref(), |k| std::env::var(k).ok())?;
        if let Some(d) = &self.data_dir {
            c.data_dir = d.clone();
        }
        Ok(c)
    }
}

#[derive(Subcommand, Debug)]
pub enum SpCommand {
    /// Add a service provider (the agent portal URL the IdP sends agents back to).
    Add {
        /// The agent portal URL, e.g. https://cc.example.com/agentportal.
        #[arg(long, value_name = "URL")]
        host_url: String,
        /// Entity ID (default: the host URL).
        #[arg(long, value_name = "URI")]
        entity_id: Option<String>,
        /// Certificate (PEM) to sign requests and decrypt assertions with, with --key.
        #[arg(long, value_name = "PEMFILE")]
        cert: Option<PathBuf>,
        /// Its private key (PEM).
        #[arg(long, value_name = "PEMFILE")]
        key: Option<PathBuf>,
        /// Generate an RSA-2048 key and a self-signed certificate (10 years).
        #[arg(long)]
        generate_key: bool,
    },
    /// Change a service provider: host URL, entity ID, key pair.
    Set {
        /// ID, entity ID or host URL.
        sp: String,
        /// The agent portal URL.
        #[arg(long, value_name = "URL")]
        host_url: Option<String>,
        /// Entity ID ("" for the host URL).
        #[arg(long, value_name = "URI")]
        entity_id: Option<String>,
        /// New certificate (PEM), with --key.
        #[arg(long, value_name = "PEMFILE")]
        cert: Option<PathBuf>,
        /// Its private key (PEM).
        #[arg(long, value_name = "PEMFILE")]
        key: Option<PathBuf>,
        /// Generate a new RSA-2048 key and self-signed certificate.
        #[arg(long)]
        generate_key: bool,
        /// Take the key pair away (requests go unsigned, encrypted assertions cannot be read).
        #[arg(long)]
        remove_key: bool,
        /// Certificate rollover: the next certificate (PEM), with --next-key; published in the
        /// metadata beside the current one until --promote-next.
        #[arg(long, value_name = "PEMFILE")]
        next_cert: Option<PathBuf>,
        /// Its private key (PEM).
        #[arg(long, value_name = "PEMFILE")]
        next_key: Option<PathBuf>,
        /// Generate the next key and self-signed certificate.
        #[arg(long)]
        generate_next_key: bool,
        /// The next certificate and key become the current ones (once every IdP has the metadata
        /// that carries it).
        #[arg(long)]
        promote_next: bool,
        /// Drop the next certificate.
        #[arg(long)]
        drop_next: bool,
    },
    /// List the service providers.
    List,
    /// Print an SP's metadata (to import into the IdP).
    Metadata {
        /// ID, entity ID or host URL (default: the only one).
        sp: Option<String>,
    },
    /// Remove a service provider.
    Rm {
        /// ID, entity ID or host URL.
        sp: String,
    },
}

/// Where an IdP is and how it signs: every one required by `idp add`.
#[derive(Args, Debug, Default)]
pub struct IdpRequired {
    /// Attribute (claim) whose value is the agent's user name, or NameID.
    #[arg(long, value_name = "NAME", required = true, display_order = 1)]
    username_claim: Option<String>,
    /// Entity ID (the Issuer of its messages).
    #[arg(long, value_name = "URI", required = true, display_order = 2)]
    entity_id: Option<String>,
    /// SingleSignOnService URL (for --sso-binding).
    #[arg(long, value_name = "URL", required = true, display_order = 3)]
    sso_url: Option<String>,
    /// A signing certificate (PEM or base64 DER); repeat for a rollover. Required unless
    /// --fingerprint is given.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "fingerprint",
        display_order = 4
    )]
    cert: Vec<PathBuf>,
    /// Trust the KeyInfo certificate with this fingerprint: ALG:HEX (sha256, sha384, sha512; sha1
    /// with --allow-sha1 on). Required unless --cert is given.
    #[arg(
        long,
        value_name = "ALG:HEX",
        conflicts_with = "cert",
        display_order = 5
    )]
    fingerprint: Option<String>,
}

/// The same fields, each optional (`idp import` takes them from metadata, `idp set` changes only
/// those given).
#[derive(Args, Debug, Default)]
pub struct IdpOptional {
    /// Entity ID (the Issuer of its messages).
    #[arg(long, value_name = "URI", display_order = 2)]
    entity_id: Option<String>,
    /// SingleSignOnService URL (for --sso-binding).
    #[arg(long, value_name = "URL", display_order = 3)]
    sso_url: Option<String>,
    /// A signing certificate (PEM or base64 DER); repeat for a rollover. Replaces the trusted set.
    #[arg(long, value_name = "FILE", display_order = 4)]
    cert: Vec<PathBuf>,
    /// Trust the KeyInfo certificate with this fingerprint: ALG:HEX (sha256, sha384, sha512; sha1
    /// with --allow-sha1 on).
    #[arg(
        long,
        value_name = "ALG:HEX",
        conflicts_with = "cert",
        display_order = 5
    )]
    fingerprint: Option<String>,
}

/// How to talk to the IdP: every one optional.
#[derive(Args, Debug, Default)]
pub struct IdpFields {
    /// How AuthnRequests are sent (switching takes the IdP's location for that binding).
    #[arg(long, value_name = "BINDING", value_parser = ["redirect", "post"], display_order = 10)]
    sso_binding: Option<String>,
    /// SingleLogoutService URL ("" to remove).
    #[arg(long, value_name = "URL", display_order = 11)]
    slo_url: Option<String>,
    /// Where LogoutResponses go when not the SLO URL ("" to remove).
    #[arg(long, value_name = "URL", display_order = 12)]
    slo_response_url: Option<String>,
    /// How logout messages are sent.
    #[arg(long, value_name = "BINDING", value_parser = ["redirect", "post"], display_order = 13)]
    slo_binding: Option<String>,
    /// Accept RSA-SHA1 signatures, SHA-1 digests and SHA-1 fingerprints (legacy IdPs only).
    #[arg(long, value_name = "on|off", value_parser = ON_OFF, display_order = 14)]
    allow_sha1: Option<String>,
    /// NameIDPolicy Format to ask for ("" for none).
    #[arg(long, value_name = "URI", display_order = 15)]
    name_id_format: Option<String>,
    /// AuthnContextClassRef to request, exact ("" for none: the default).
    #[arg(long, value_name = "URI", display_order = 16)]
    authn_context: Option<String>,
    /// Where the IdP publishes its metadata, kept with it ("" to clear; the periodic refresh is
    /// not built yet).
    #[arg(long, value_name = "URL", display_order = 17)]
    metadata_url: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum IdpCommand {
    /// Add an identity provider by hand.
    Add {
        /// Short name to refer to it by (letters, digits, '-', '_', '.').
        name: String,
        #[command(flatten)]
        required: IdpRequired,
        #[command(flatten)]
        fields: IdpFields,
    },
    /// Import an identity provider from its metadata (file, or - for stdin).
    Import {
        /// Short name to refer to it by (letters, digits, '-', '_', '.').
        name: String,
        /// The metadata XML file, or - for standard input.
        #[arg(long, value_name = "FILE", display_order = 0)]
        metadata: PathBuf,
        /// Which entity of an EntitiesDescriptor.
        #[arg(long, value_name = "URI", display_order = 0)]
        select_entity: Option<String>,
        /// Attribute (claim) whose value is the agent's user name, or NameID (metadata does not
        /// say which).
        #[arg(long, value_name = "NAME", display_order = 1)]
        username_claim: String,
        #[command(flatten)]
        given: IdpOptional,
        #[command(flatten)]
        fields: IdpFields,
    },
    /// Change an identity provider's fields.
    Set {
        /// The identity provider: its name, entity ID or ID.
        idp: String,
        /// New name.
        #[arg(long, display_order = 0)]
        rename: Option<String>,
        /// Attribute (claim) whose value is the agent's user name, or NameID.
        #[arg(long, value_name = "NAME", display_order = 1)]
        username_claim: Option<String>,
        #[command(flatten)]
        given: IdpOptional,
        #[command(flatten)]
        fields: IdpFields,
    },
    /// List the identity providers.
    List,
    /// Remove an identity provider (refused while a tenant uses it).
    Rm {
        /// The identity provider: its name, entity ID or ID.
        idp: String,
    },
    /// Fetch the IdP's metadata URL now (the service does every 6 hours): new signing
    /// certificates are taken (audit log); a failure is kept and the trusted ones stay.
    Refresh {
        /// The identity provider: its name, entity ID or ID.
        idp: String,
    },
}

#[derive(Args, Debug, Default)]
pub struct TenantFields {
    /// What agents read on the login page ("Sign in to Acme"); "" for the tenant's name.
    #[arg(long, value_name = "TEXT")]
    display_name: Option<String>,
    /// Login domain (UPN suffix of user@domain, or NetBIOS name of DOMAIN\user); repeat;
    /// replaces the list. "" clears it. An identity naming another domain is refused.
    #[arg(long = "login-domain", value_name = "DOMAIN")]
    login_domains: Vec<String>,
    /// Adds a login domain to the list; repeat.
    #[arg(long = "add-login-domain", value_name = "DOMAIN")]
    add_login_domains: Vec<String>,
    /// Takes a login domain off the list; repeat.
    #[arg(long = "remove-login-domain", value_name = "DOMAIN")]
    remove_login_domains: Vec<String>,
    /// Single sign-on through the tenant's identity provider.
    #[arg(long, value_name = "on|off", value_parser = ON_OFF)]
    sso: Option<String>,
    /// The identity provider ("" for none).
    #[arg(long, value_name = "NAME")]
    idp: Option<String>,
    /// Single logout (needs SSO on).
    #[arg(long, value_name = "on|off", value_parser = ON_OFF)]
    slo: Option<String>,
    /// IdP-initiated (unsolicited) login.
    #[arg(long, value_name = "on|off", value_parser = ON_OFF)]
    idp_initiated: Option<String>,
    /// Username rule: strip-domain (DOMAIN\user, user@domain -> user, for the tenant's own domains)
    /// or keep (compare the whole name).
    #[arg(long, value_name = "RULE", value_parser = ["strip-domain", "keep"])]
    username_rule: Option<String>,
    /// User names compared with case (default off).
    #[arg(long, value_name = "on|off", value_parser = ON_OFF)]
    case_sensitive: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Add a tenant.
    Add {
        /// The tenant's name, as in /t/NAME/login (letters, digits, '-', '_', '.').
        name: String,
        #[command(flatten)]
        fields: TenantFields,
    },
    /// Change a tenant.
    Set {
        /// The tenant's name.
        name: String,
        #[command(flatten)]
        fields: TenantFields,
    },
    /// List the tenants.
    List,
    /// Remove a tenant (refused while it has users).
    Rm {
        /// The tenant's name.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ApiClientCommand {
    /// Add an API client; prints its token once (only its SHA-256 is kept).
    Add {
        /// A unique name, 1 to 32 characters.
        name: String,
        /// What it may do.
        #[arg(long, value_parser = ["central-admin", "tenant-manager"], default_value = "central-admin")]
        role: String,
        /// The tenant of a tenant-manager client.
        #[arg(long)]
        tenant: Option<String>,
        /// Read the token (32 characters or more) from the first line of standard input instead of
        /// generating one.
        #[arg(long)]
        token_stdin: bool,
    },
    /// List the API clients (name, token prefix, role, created, last used).
    List,
    /// Give a client a new token (the old one stops working); prints it once.
    Regenerate { name: String },
    /// Remove an API client.
    Rm { name: String },
}

// One value per command line: the size of `Set` costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum CircuitCommand {
    /// Change a tenant's Circuit sign-on (absent options stay as they are).
    Set {
        /// The tenant's name.
        tenant: String,
        /// Enable Circuit Sign On (needs client ID, secret, portal URL and login URL).
        #[arg(long, value_name = "on|off", value_parser = ON_OFF)]
        enabled: Option<String>,
        /// The app's client ID at Circuit.
        #[arg(long, value_name = "ID")]
        client_id: Option<String>,
        /// Read the client secret from the first line of standard input.
        #[arg(long)]
        client_secret_stdin: bool,
        /// Read the client secret from the first line of this file.
        #[arg(long, value_name = "FILE")]
        client_secret_file: Option<PathBuf>,
        /// The agent portal URL (an SP's host URL): Circuit sends agents back to
        /// URL/oauth/circuit/callback.
        #[arg(long, value_name = "URL")]
        portal_url: Option<String>,
        /// The Circuit login URL (https://eu.yourcircuit.com); for OpenID Connect, the issuer.
        #[arg(long, value_name = "URL")]
        login_url: Option<String>,
        /// Advanced: oauth2 (Circuit, or a generic OAuth 2.0 provider: token, then profile) or
        /// oidc (OpenID Connect: discovery and a signed ID token).
        #[arg(long, value_name = "KIND", value_parser = ["oauth2", "oidc"])]
        kind: Option<String>,
        /// Advanced: the authorization path below the login URL (default /oauth/authorize).
        #[arg(long, value_name = "PATH")]
        authorize_path: Option<String>,
        /// Advanced: the token path (default /oauth/token).
        #[arg(long, value_name = "PATH")]
        token_path: Option<String>,
        /// Advanced: the profile path (default /rest/v2/users/profile).
        #[arg(long, value_name = "PATH")]
        profile_path: Option<String>,
        /// Advanced: the scope (default READ_USER_PROFILE; OpenID Connect: "openid email").
        #[arg(long, value_name = "SCOPE")]
        scope: Option<String>,
        /// Advanced: the profile field (or ID token claim) naming the Circuit user (default
        /// emailAddress; OpenID Connect: email).
        #[arg(long, value_name = "NAME")]
        profile_field: Option<String>,
        /// Advanced: PKCE (S256) on the authorization request.
        #[arg(long, value_name = "on|off", value_parser = ON_OFF)]
        pkce: Option<String>,
        /// Advanced: how the token request authenticates (post: in the form; basic: HTTP Basic).
        #[arg(long, value_name = "HOW", value_parser = ["post", "basic"])]
        token_auth: Option<String>,
    },
    /// Show one tenant's Circuit settings, or every tenant's (the secret only as set or not).
    Show {
        /// The tenant's name (default: every tenant).
        tenant: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum SessionsCommand {
    /// The signed-in agents: handle, tenant, user, method, since, until.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// End a session (by the handle `sessions list` shows).
    End { handle: String },
}

#[derive(Args, Debug, Default)]
pub struct UserFields {
    /// Display name.
    #[arg(long, value_name = "TEXT")]
    display_name: Option<String>,
    /// Circuit user (e-mail or URI), unique in the tenant ("" clears it).
    #[arg(long, value_name = "EMAIL")]
    circuit_user: Option<String>,
    /// Read a local password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
    /// Read a local password from the first line of this file.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Role; repeat; replaces the list (default agent).
    #[arg(long = "role", value_name = "ROLE", value_parser = ["agent", "tenant-manager", "central-admin"])]
    roles: Vec<String>,
    /// Shorthand for --role central-admin.
    #[arg(long)]
    central_admin: bool,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a user.
    Add {
        /// The user name, as the identity provider's claim gives it after the tenant's rule.
        username: String,
        /// Tenant (default: the implicit one).
        #[arg(long, default_value = admin::DEFAULT_TENANT)]
        tenant: String,
        #[command(flatten)]
        fields: UserFields,
    },
    /// Change a user.
    Set {
        /// The user's name.
        username: String,
        /// Tenant (default: the implicit one).
        #[arg(long, default_value = admin::DEFAULT_TENANT)]
        tenant: String,
        /// New user name.
        #[arg(long)]
        rename: Option<String>,
        /// Remove the local password.
        #[arg(long)]
        no_password: bool,
        #[command(flatten)]
        fields: UserFields,
    },
    /// List users.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Remove a user (and end their sessions).
    Rm {
        /// The user's name.
        username: String,
        /// Tenant (default: the implicit one).
        #[arg(long, default_value = admin::DEFAULT_TENANT)]
        tenant: String,
    },
    /// Reset a Web Manager account's two-step verification (a lost device): the password alone
    /// signs in again, and the account sets it up anew.
    ResetTotp {
        /// The user's name.
        username: String,
        /// Tenant (default: the implicit one).
        #[arg(long, default_value = admin::DEFAULT_TENANT)]
        tenant: String,
    },
}

/// Errors of a command, with their exit status.
pub struct Refused(pub i32, pub String);

impl From<AdminError> for Refused {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Store(s) => Refused(3, s.to_string()),
            other => Refused(1, other.to_string()),
        }
    }
}

impl From<crate::store::StoreError> for Refused {
    fn from(e: crate::store::StoreError) -> Self {
        Refused::from(AdminError::from(e))
    }
}

fn read_text(path: &PathBuf) -> Result<String, Refused> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| Refused(2, format!("standard input: {e}")))?;
        return Ok(s);
    }
    std::fs::read_to_string(path).map_err(|e| Refused(2, format!("{}: {e}", path.display())))
}

fn on_off(field: &str, v: &Option<String>) -> Result<Option<bool>, Refused> {
    match v.as_deref() {
        None => Ok(None),
        Some("on" | "true" | "yes") => Ok(Some(true)),
        Some("off" | "false" | "no") => Ok(Some(false)),
        Some(other) => Err(Refused(1, format!("--{field} {other:?}: say on or off"))),
    }
}

/// The identity fields given (`idp add` gives them all).
struct IdpGiven {
    username_claim: Option<String>,
    entity_id: Option<String>,
    sso_url: Option<String>,
    cert: Vec<PathBuf>,
    fingerprint: Option<String>,
}

impl From<IdpRequired> for IdpGiven {
    fn from(r: IdpRequired) -> Self {
        IdpGiven {
            username_claim: r.username_claim,
            entity_id: r.entity_id,
            sso_url: r.sso_url,
            cert: r.cert,
            fingerprint: r.fingerprint,
        }
    }
}

impl IdpGiven {
    fn optional(username_claim: Option<String>, r: IdpOptional) -> Self {
        IdpGiven {
            username_claim,
            entity_id: r.entity_id,
            sso_url: r.sso_url,
            cert: r.cert,
            fingerprint: r.fingerprint,
        }
    }
}

fn idp_input(name: Option<String>, g: IdpGiven, f: IdpFields) -> Result<IdpInput, Refused> {
    let mut certificates = Vec::new();
    for p in &g.cert {
        certificates.push(read_text(p)?);
    }
    Ok(IdpInput {
        name,
        entity_id: g.entity_id,
        sso_url: g.sso_url,
        sso_binding: f.sso_binding,
        slo_url: f.slo_url,
        slo_response_url: f.slo_response_url,
        slo_binding: f.slo_binding,
        username: g.username_claim,
        certificates,
        fingerprint: g.fingerprint,
        allow_sha1: on_off("allow-sha1", &f.allow_sha1)?,
        name_id_format: f.name_id_format,
        authn_context: f.authn_context,
        metadata_url: f.metadata_url,
        ..Default::default()
    })
}

fn tenant_input(f: TenantFields) -> Result<TenantInput, Refused> {
    let strip = match f.username_rule.as_deref() {
        None => None,
        Some("strip-domain") => Some(true),
        Some("keep") => Some(false),
        Some(o) => {
            return Err(Refused(
                1,
                format!("--username-rule {o:?}: say strip-domain or keep"),
            ));
        }
    };
    let domains = if f.login_domains.is_empty() {
        None
    } else {
        Some(
            f.login_domains
                .into_iter()
                .filter(|d| !d.is_empty())
                .collect(),
        )
    };
    Ok(TenantInput {
        display_name: f.display_name,
        login_domains: domains,
        add_login_domains: f.add_login_domains,
        remove_login_domains: f.remove_login_domains,
        sso_enabled: on_off("sso", &f.sso)?,
        idp: f.idp,
        slo_enabled: on_off("slo", &f.slo)?,
        idp_initiated: on_off("idp-initiated", &f.idp_initiated)?,
        strip_domain: strip,
        case_insensitive: on_off("case-sensitive", &f.case_sensitive)?.map(|c| !c),
        ..Default::default()
    })
}

fn user_input(username: Option<String>, f: UserFields) -> Result<UserInput, Refused> {
    let password = match (f.password_stdin, &f.password_file) {
        (true, Some(_)) => {
            return Err(Refused(
                2,
                "give --password-stdin or --password-file, not both".into(),
            ));
        }
        (true, None) => Some(read_text(&PathBuf::from("-"))?),
        (false, Some(p)) => Some(read_text(p)?),
        (false, None) => None,
    };
    let password = password.map(|p| Secret::new(p.lines().next().unwrap_or("").to_string()));
    let mut roles = f.roles;
    if f.central_admin && !roles.iter().any(|r| r == "central-admin") {
        if roles.is_empty() {
            roles.push("agent".into());
        }
        roles.push("central-admin".into());
    }
    Ok(UserInput {
        username,
        display_name: f.display_name,
        circuit_user: f.circuit_user,
        password,
        clear_password: false,
        roles: if roles.is_empty() { None } else { Some(roles) },
        ..Default::default()
    })
}

fn describe_idp(i: &crate::domain::IdentityProvider) -> String {
    let trust = match &i.trust {
        TrustConfig::Certificates(c) => format!("{} certificate(s)", c.len()),
        TrustConfig::Fingerprint { algorithm, hex } => format!("fingerprint {algorithm}:{hex}"),
    };
    format!(
        "{}\t{}\tsso={} ({})\tslo={}{}\tusername={}\ttrust={trust}{}",
        i.name,
        i.entity_id,
        i.sso_url,
        i.sso_binding.as_str(),
        i.slo_url.as_deref().unwrap_or("-"),
        i.slo_response_url
            .as_deref()
            .map(|r| format!(" (responses to {r})"))
            .unwrap_or_default(),
        i.username,
        if i.allow_sha1 { "\tsha1=allowed" } else { "" }
    )
}

/// Who runs the command, for the audit log: `cli:<os user>`.
fn cli_actor() -> String {
    let name = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| {
            // SAFETY: getuid has no preconditions and cannot fail.
            format!("uid {}", unsafe { libc::getuid() })
        });
    format!("cli:{}", name.chars().take(64).collect::<String>())
}

fn admin_of<'a>(store: &'a Arc<dyn Store>, rng: &'a dyn Rng) -> Admin<'a> {
    Admin {
        store: store.as_ref(),
        rng,
        actor: cli_actor(),
        now: crate::clock::SystemClock.now(),
        on_change: None,
    }
}

/// The store, for a command that changes something (created and migrated when needed).
async fn store_of(args: &StoreArgs) -> Result<(Config, Arc<dyn Store>), Refused> {
    let config = args.load().map_err(|e| Refused(2, e))?;
    let (store, _) = crate::serve::open_store(&config)
        .await
        .map_err(|e| Refused(3, e))?;
    admin::ensure_default_tenant(store.as_ref()).await?;
    Ok((config, store))
}

/// The store and its secrets key, for a command that stores a secret.
async fn store_and_key_of(
    args: &StoreArgs,
) -> Result<(Config, Arc<dyn Store>, Arc<crate::secrets::SecretsKey>), Refused> {
    let config = args.load().map_err(|e| Refused(2, e))?;
    let (store, key) = crate::serve::open_store(&config)
        .await
        .map_err(|e| Refused(3, e))?;
    admin::ensure_default_tenant(store.as_ref()).await?;
    Ok((config, store, key))
}

/// The store, for a command that only reads: nothing is created, migrated or written.
async fn read_store_of(args: &StoreArgs) -> Result<Arc<dyn Store>, Refused> {
    let config = args.load().map_err(|e| Refused(2, e))?;
    crate::serve::open_store_read_only(&config)
        .await
        .map_err(|e| Refused(3, e))
}

/// `ssogate backup FILE`: a consistent copy of the store, while the service runs.
pub async fn backup(args: &StoreArgs, file: &std::path::Path) -> Result<(), Refused> {
    let store = read_store_of(args).await?;
    store.backup(file).await?;
    println!("backed up to {}", file.display());
    Ok(())
}

pub async fn sp(args: &StoreArgs, cmd: SpCommand) -> Result<(), Refused> {
    let store = match &cmd {
        SpCommand::List | SpCommand::Metadata { .. } => read_store_of(args).await?,
        _ => store_of(args).await?.1,
    };
    let rng = SystemRng;
    let admin = admin_of(&store, &rng);
    match cmd {
        SpCommand::Add {
            host_url,
            entity_id,
            cert,
            key,
            generate_key,
        } => {
            let certificate_pem = cert.as_ref().map(read_text).transpose()?;
            let private_key_pem = key.as_ref().map(read_text).transpose()?.map(Secret::new);
            let sp = admin
                .sp_add(SpInput {
                    host_url,
                    entity_id,
                    certificate_pem,
                    private_key_pem,
                    generate_key,
                    ..Default::default()
                })
                .await?;
            println!(
                "added service provider {}: {} (entity ID {})",
                sp.id, sp.host_url, sp.entity_id
            );
            println!(
                "ACS {}  SLO {}  metadata {}",
                sp.acs_url(),
                sp.slo_url(),
                sp.metadata_url()
            );
        }
        SpCommand::List => {
            for sp in store.sp_list().await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    sp.id,
                    sp.host_url,
                    sp.entity_id,
                    if sp.private_key_pem.is_some() {
                        "key"
                    } else {
                        "no key"
                    }
                );
            }
        }
        SpCommand::Metadata { sp } => {
            let sp =
                match sp {
                    Some(s) => admin::sp_find(store.as_ref(), &s).await?,
                    None => {
                        let all = store.sp_list().await?;
                        match all.as_slice() {
                            [one] => one.clone(),
                            [] => return Err(Refused(
                                1,
                                "there is no service provider yet (ssogate sp add --host-url URL)"
                                    .into(),
                            )),
                            _ => return Err(Refused(
                                1,
                                "there are several service providers: name one (ssogate sp list)"
                                    .into(),
                            )),
                        }
                    }
                };
            print!("{}", admin::sp_metadata_xml(&sp)?);
        }
        SpCommand::Set {
            sp,
            host_url,
            entity_id,
            cert,
            key,
            generate_key,
            remove_key,
            next_cert,
            next_key,
            generate_next_key,
            promote_next,
            drop_next,
        } => {
            let certificate_pem = cert.as_ref().map(read_text).transpose()?;
            let private_key_pem = key.as_ref().map(read_text).transpose()?.map(Secret::new);
            let next_certificate_pem = next_cert.as_ref().map(read_text).transpose()?;
            let next_private_key_pem = next_key
                .as_ref()
                .map(read_text)
                .transpose()?
                .map(Secret::new);
            let s = admin
                .sp_set(
                    &sp,
                    SpInput {
                        host_url: host_url.unwrap_or_default(),
                        entity_id,
                        certificate_pem,
                        private_key_pem,
                        generate_key,
                        remove_key,
                        version: None,
                        next_certificate_pem,
                        next_private_key_pem,
                        generate_next_key,
                        promote_next,
                        drop_next,
                    },
                )
                .await?;
            println!(
                "changed service provider {}: {} (entity ID {}, {})",
                s.id,
                s.host_url,
                s.entity_id,
                if s.private_key_pem.is_some() {
                    "key"
                } else {
                    "no key"
                }
            );
        }
        SpCommand::Rm { sp } => {
            let s = admin.sp_rm(&sp).await?;
            println!("removed service provider {} ({})", s.id, s.host_url);
        }
    }
    Ok(())
}

pub async fn idp(args: &StoreArgs, cmd: IdpCommand) -> Result<(), Refused> {
    let (config, store) = match &cmd {
        IdpCommand::List => (
            args.load().map_err(|e| Refused(2, e))?,
            read_store_of(args).await?,
        ),
        _ => store_of(args).await?,
    };
    let admin = admin_of(&store, &SystemRng);
    match cmd {
        IdpCommand::Add {
            name,
            required,
            fields,
        } => {
            let input = idp_input(Some(name), required.into(), fields)?;
            let i = admin.idp_add(input).await?;
            println!("added identity provider {}", describe_idp(&i));
        }
        IdpCommand::Import {
            name,
            metadata,
            select_entity,
            username_claim,
            given,
            fields,
        } => {
            let xml = read_text(&metadata)?;
            let given = IdpGiven::optional(Some(username_claim), given);
            let i = admin
                .idp_import(
                    xml.as_bytes(),
                    select_entity.as_deref(),
                    idp_input(Some(name), given, fields)?,
                )
                .await?;
            println!("imported identity provider {}", describe_idp(&i));
        }
        IdpCommand::Set {
            idp,
            rename,
            username_claim,
            given,
            fields,
        } => {
            let input = idp_input(rename, IdpGiven::optional(username_claim, given), fields)?;
            let i = admin.idp_set(&idp, input).await?;
            println!("changed identity provider {}", describe_idp(&i));
        }
        IdpCommand::List => {
            for i in store.idp_list().await? {
                println!("{}", describe_idp(&i));
            }
        }
        IdpCommand::Rm { idp } => {
            let i = admin.idp_rm(&idp).await?;
            println!("removed identity provider {}", i.name);
        }
        IdpCommand::Refresh { idp } => {
            use crate::domain::audit::RefreshOutcome;
            let outbound = crate::outbound::Outbound::new(&config);
            if let Some(p) = outbound.problem() {
                return Err(Refused(2, p.to_string()));
            }
            let i = admin::idp_find(store.as_ref(), &idp).await?;
            match crate::domain::refresh::refresh_idp(&admin, &outbound, &i).await? {
                RefreshOutcome::Unchanged => {
                    println!("{}: the metadata's certificates are those trusted", i.name)
                }
                RefreshOutcome::Changed => println!(
                    "{}: took the metadata's new signing certificates (see ssogate audit)",
                    i.name
                ),
                RefreshOutcome::Fingerprint => println!(
                    "{}: trusted by fingerprint; nothing taken from the metadata",
                    i.name
                ),
                RefreshOutcome::Failed(e) => {
                    return Err(Refused(1, format!("{}: refresh failed: {e}", i.name)));
                }
            }
        }
    }
    Ok(())
}

fn describe_tenant(t: &crate::domain::Tenant, idps: &[crate::domain::IdentityProvider]) -> String {
    let idp = t
        .idp_id
        .and_then(|id| idps.iter().find(|i| i.id == id))
        .map(|i| i.name.as_str())
        .unwrap_or("-");
    let flag = |b: bool| if b { "on" } else { "off" };
    format!(
        "{}\tdomains={}\tsso={}\tidp={idp}\tslo={}\tidp-initiated={}\tusername-rule={}{}",
        t.name,
        if t.login_domains.is_empty() {
            "-".to_string()
        } else {
            t.login_domains.join(",")
        },
        flag(t.sso_enabled),
        flag(t.slo_enabled),
        flag(t.idp_initiated),
        if t.username_rule.strip_domain {
            "strip-domain"
        } else {
            "keep"
        },
        if t.username_rule.case_insensitive {
            ""
        } else {
            ",case-sensitive"
        }
    )
}

pub async fn tenant(args: &StoreArgs, cmd: TenantCommand) -> Result<(), Refused> {
    let store = match &cmd {
        TenantCommand::List => read_store_of(args).await?,
        _ => store_of(args).await?.1,
    };
    let admin = admin_of(&store, &SystemRng);
    match cmd {
        TenantCommand::Add { name, fields } => {
            let t = admin.tenant_add(&name, tenant_input(fields)?).await?;
            println!(
                "added tenant {}",
                describe_tenant(&t, &store.idp_list().await?)
            );
        }
        TenantCommand::Set { name, fields } => {
            let t = admin.tenant_set(&name, tenant_input(fields)?).await?;
            println!(
                "changed tenant {}",
                describe_tenant(&t, &store.idp_list().await?)
            );
        }
        TenantCommand::List => {
            let idps = store.idp_list().await?;
            for t in store.tenant_list().await? {
                println!("{}", describe_tenant(&t, &idps));
            }
        }
        TenantCommand::Rm { name } => {
            let t = admin.tenant_rm(&name).await?;
            println!("removed tenant {}", t.name);
        }
    }
    Ok(())
}

fn describe_user(u: &crate::domain::User, tenant: &str) -> String {
    let roles: Vec<&str> = u.roles.iter().map(|r| r.as_str()).collect();
    format!(
        "{tenant}\t{}\t{}\tcircuit={}\tpassword={}\troles={}",
        u.username,
        u.display_name,
        u.circuit_user.as_deref().unwrap_or("-"),
        if u.password_hash.is_some() {
            "set"
        } else {
            "none"
        },
        roles.join(",")
    )
}

pub async fn user(args: &StoreArgs, cmd: UserCommand) -> Result<(), Refused> {
    let store = match &cmd {
        UserCommand::List { .. } => read_store_of(args).await?,
        _ => store_of(args).await?.1,
    };
    let rng: &dyn Rng = &SystemRng;
    let admin = admin_of(&store, rng);
    match cmd {
        UserCommand::Add {
            username,
            tenant,
            fields,
        } => {
            let u = admin
                .user_add(&tenant, user_input(Some(username), fields)?)
                .await?;
            println!("added user {}", describe_user(&u, &tenant));
        }
        UserCommand::Set {
            username,
            tenant,
            rename,
            no_password,
            fields,
        } => {
            let mut input = user_input(rename, fields)?;
            input.clear_password = no_password;
            let u = admin.user_set(&tenant, &username, input).await?;
            println!("changed user {}", describe_user(&u, &tenant));
        }
        UserCommand::List { tenant } => {
            let tenants = store.tenant_list().await?;
            let filter = match &tenant {
                Some(t) => Some(admin::tenant_find(store.as_ref(), t).await?.id),
                None => None,
            };
            for u in store.user_list(filter).await? {
                let tname = tenants
                    .iter()
                    .find(|t| t.id == u.tenant_id)
                    .map(|t| t.name.as_str())
                    .unwrap_or("?");
                println!("{}", describe_user(&u, tname));
            }
        }
        UserCommand::Rm { username, tenant } => {
            let u = admin.user_rm(&tenant, &username).await?;
            println!("removed user {} of tenant {tenant}", u.username);
        }
        UserCommand::ResetTotp { username, tenant } => {
            let (t, u) = admin::user_find(admin.store, &tenant, &username).await?;
            admin.totp_disable(&u, &t.name).await?;
            println!(
                "reset two-step verification of user {} of tenant {}",
                u.username, t.name
            );
        }
    }
    Ok(())
}

fn describe_circuit(c: &crate::domain::circuit::CircuitSettings) -> String {
    let v = crate::domain::circuit::CircuitView::of(c);
    let or_none = |s: &str| {
        if s.is_empty() {
            "(none)".to_string()
        } else {
            s.to_string()
        }
    };
    format!(
        "tenant {}: Circuit sign-on {}\n  kind: {}\n  client ID: {}\n  client secret: {}\n  agent portal URL: {}\n  \
         callback URL: {}\n  login URL: {}\n  paths: authorize {}, token {}, profile {}\n  scope: {}\n  \
         profile field: {}\n  PKCE: {}\n  client authentication: {}\n  version: {}",
        v.tenant,
        if v.enabled { "on" } else { "off" },
        v.kind.as_str(),
        or_none(&v.client_id),
        if v.client_secret_set {
            "*****"
        } else {
            "(none)"
        },
        or_none(&v.portal_url),
        v.callback_url.as_deref().unwrap_or("(none)"),
        or_none(&v.login_url),
        v.authorize_path,
        v.token_path,
        v.profile_path,
        v.scope,
        v.profile_field,
        if v.pkce { "on" } else { "off" },
        v.token_auth.as_str(),
        v.version,
    )
}

pub async fn circuit(args: &StoreArgs, cmd: CircuitCommand) -> Result<(), Refused> {
    use crate::domain::circuit::{CircuitInput, circuit_get};
    match cmd {
        CircuitCommand::Show { tenant } => {
            let store = read_store_of(args).await?;
            match tenant {
                Some(t) => println!(
                    "{}",
                    describe_circuit(&circuit_get(store.as_ref(), &t).await?)
                ),
                None => {
                    for t in store.tenant_list().await? {
                        println!(
                            "{}",
                            describe_circuit(&circuit_get(store.as_ref(), &t.name).await?)
                        );
                    }
                }
            }
        }
        CircuitCommand::Set {
            tenant,
            enabled,
            client_id,
            client_secret_stdin,
            client_secret_file,
            portal_url,
            login_url,
            kind,
            authorize_path,
            token_path,
            profile_path,
            scope,
            profile_field,
            pkce,
            token_auth,
        } => {
            let secret = match (client_secret_stdin, &client_secret_file) {
                (true, Some(_)) => {
                    return Err(Refused(
                        2,
                        "give --client-secret-stdin or --client-secret-file, not both".into(),
                    ));
                }
                (true, None) => Some(read_text(&PathBuf::from("-"))?),
                (false, Some(p)) => Some(read_text(p)?),
                (false, None) => None,
            };
            let client_secret = match secret {
                Some(s) => {
                    let line = s.lines().next().unwrap_or("").to_string();
                    if line.is_empty() {
                        return Err(Refused(1, "the client secret read is empty".into()));
                    }
                    Some(Secret::new(line))
                }
                None => None,
            };
            let (_, store, key) = store_and_key_of(args).await?;
            let rng: &dyn Rng = &SystemRng;
            let admin = admin_of(&store, rng);
            let c = admin
                .circuit_set(
                    &key,
                    &tenant,
                    CircuitInput {
                        enabled: on_off("enabled", &enabled)?,
                        kind,
                        client_id,
                        client_secret,
                        portal_url,
                        login_url,
                        authorize_path,
                        token_path,
                        profile_path,
                        scope,
                        profile_field,
                        pkce: on_off("pkce", &pkce)?,
                        token_auth,
                        version: None,
                    },
                )
                .await?;
            println!("changed {}", describe_circuit(&c));
        }
    }
    Ok(())
}

pub async fn api_client(args: &StoreArgs, cmd: ApiClientCommand) -> Result<(), Refused> {
    let store = match &cmd {
        ApiClientCommand::List => read_store_of(args).await?,
        _ => store_of(args).await?.1,
    };
    let admin = admin_of(&store, &SystemRng);
    let tenants = store.tenant_list().await?;
    let show = |c: &crate::store::ApiClient| {
        let v = crate::domain::audit::ApiClientView::of(c, &tenants);
        format!(
            "{}\t{}…\t{}{}\tcreated {}\tlast used {}",
            v.name,
            v.token_prefix,
            v.role,
            v.tenant.map(|t| format!(" of {t}")).unwrap_or_default(),
            v.created_at,
            v.last_used_at.as_deref().unwrap_or("never")
        )
    };
    match cmd {
        ApiClientCommand::Add {
            name,
            role,
            tenant,
            token_stdin,
        } => {
            let token = if token_stdin {
                let t = read_text(&PathBuf::from("-"))?;
                Some(Secret::new(t.lines().next().unwrap_or("").to_string()))
            } else {
                None
            };
            let n = admin
                .api_client_add(&name, &role, tenant.as_deref(), token)
                .await?;
            println!("added API client {}", show(&n.client));
            println!(
                "token (shown once; send it as Authorization: Bearer TOKEN): {}",
                n.token.secret()
            );
        }
        ApiClientCommand::List => {
            for c in store.api_client_list().await? {
                println!("{}", show(&c));
            }
        }
        ApiClientCommand::Regenerate { name } => {
            let n = admin.api_client_regenerate(&name, None, None).await?;
            println!(
                "new token for API client {} (shown once): {}",
                n.client.name,
                n.token.secret()
            );
        }
        ApiClientCommand::Rm { name } => {
            let c = admin.api_client_rm(&name).await?;
            println!("removed API client {}", c.name);
        }
    }
    Ok(())
}

pub async fn sessions(args: &StoreArgs, cmd: SessionsCommand) -> Result<(), Refused> {
    match cmd {
        SessionsCommand::List { tenant } => {
            let store = read_store_of(args).await?;
            let filter = match &tenant {
                Some(t) => Some(admin::tenant_find(store.as_ref(), t).await?.id),
                None => None,
            };
            let now = crate::clock::SystemClock.now();
            for r in store.sessions_of_tenant(filter, now, 0, 10_000).await? {
                if let Some(a) = &r.agent {
                    println!(
                        "{}\t{}\t{}\t{}\tsince {}\tuntil {}",
                        session_handle(&r.id),
                        a.tenant,
                        a.username,
                        a.method.as_str(),
                        a.signed_in_at,
                        a.expires_at
                    );
                }
            }
        }
        SessionsCommand::End { handle } => {
            let store = store_of(args).await?.1;
            admin_of(&store, &SystemRng)
                .session_end(None, &handle)
                .await?;
            println!("ended session {handle}");
        }
    }
    Ok(())
}

pub async fn trace(
    args: &StoreArgs,
    tenant: Option<String>,
    response: &std::path::Path,
    at: Option<&str>,
    json: bool,
) -> Result<(), Refused> {
    let config = args.load().map_err(|e| Refused(2, e))?;
    let store = read_store_of(args).await?;
    let raw = if response.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)
            .map_err(|e| Refused(2, format!("standard input: {e}")))?;
        b
    } else {
        std::fs::read(response).map_err(|e| Refused(2, format!("{}: {e}", response.display())))?
    };
    let at = match at {
        Some(a) => Some(crate::saml::UnixTime::parse(a).ok_or_else(|| {
            Refused(
                2,
                format!("--at {a:?}: not an RFC 3339 instant (2026-01-31T12:00:00Z)"),
            )
        })?),
        None => None,
    };
    let req = crate::domain::trace::TraceRequest {
        response: raw,
        tenant,
        at,
    };
    let report = crate::domain::trace::trace(
        store.as_ref(),
        &config,
        &req,
        crate::clock::SystemClock.now(),
    )
    .await?;
    if json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        for s in &report.steps {
            println!(
                "{:<20} {}{}",
                s.step,
                s.verdict,
                s.code
                    .as_ref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default()
            );
            if let Some(m) = &s.message {
                println!("{:<20}   {m}", "");
            }
            for (k, v) in &s.values {
                println!("{:<20}   {k}: {v}", "");
            }
        }
        println!(
            "{} (evaluated at {})",
            if report.accepted {
                "accepted"
            } else {
                "refused"
            },
            report.evaluated_at
        );
    }
    if report.accepted {
        Ok(())
    } else {
        Err(Refused(
            1,
            report.first_failure().map_or_else(
                || "refused".to_string(),
                |f| {
                    format!(
                        "refused at {}: {}",
                        f.step,
                        f.message.clone().unwrap_or_default()
                    )
                },
            ),
        ))
    }
}

pub async fn audit(
    args: &StoreArgs,
    object: Option<String>,
    limit: u32,
    json: bool,
) -> Result<(), Refused> {
    let store = read_store_of(args).await?;
    for e in store.audit_list(object.as_deref(), None, limit).await? {
        if json {
            println!("{}", serde_json::to_string(&e).unwrap_or_default());
        } else {
            println!("{}\t{}\t{}\t{}", e.at, e.actor, e.action, e.object);
        }
    }
    Ok(())
}

pub async fn failures(args: &StoreArgs, limit: u32, json: bool) -> Result<(), Refused> {
    let store = read_store_of(args).await?;
    for f in store.failures_recent(limit).await? {
        if json {
            println!("{}", serde_json::to_string(&f).unwrap_or_default());
        } else {
            println!(
                "{}\t{}\t{}\ttenant={}\tidp={}\t{}\t{}",
                f.at.to_rfc3339(),
                f.reference,
                f.endpoint,
                f.tenant.as_deref().unwrap_or("-"),
                f.idp.as_deref().unwrap_or("-"),
                f.reason,
                f.detail
            );
        }
    }
    Ok(())
}
