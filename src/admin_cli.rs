//! `ssogate sp|idp|tenant|user|failures …`: administration on the same store the service uses
//! (it may be running). Each command checks all of its input before it changes anything.
//!
//! Exit status: 0 done; 1 refused (the message on stderr names the field and value); 2 usage or
//! I/O; 3 the database is unavailable.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};

use crate::config::Config;
use crate::domain::admin::{self, AdminError, IdpInput, SpInput, TenantInput, UserInput};
use crate::domain::{Secret, TrustConfig};
use crate::rng::{Rng, SystemRng};
use crate::store::Store;

/// Where the store is: the service's configuration file and data directory.
#[derive(Args, Debug, Clone, Default)]
pub struct StoreArgs {
    /// Configuration file (TOML).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Data directory (default ./ssogate-data).
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
}

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
    /// List the service providers.
    List,
    /// Print an SP's metadata (to import into the IdP).
    Metadata {
        /// ID, entity ID or host URL (default: the only one).
        sp: Option<String>,
    },
    /// Remove a service provider.
    Rm { sp: String },
}

#[derive(Args, Debug, Default)]
pub struct IdpFields {
    /// Attribute (claim) whose value is the agent's user name, or NameID.
    #[arg(long, value_name = "NAME")]
    username_claim: Option<String>,
    /// Entity ID.
    #[arg(long, value_name = "URI")]
    entity_id: Option<String>,
    /// SingleSignOnService URL.
    #[arg(long, value_name = "URL")]
    sso_url: Option<String>,
    /// How AuthnRequests are sent: redirect or post.
    #[arg(long, value_name = "BINDING")]
    sso_binding: Option<String>,
    /// SingleLogoutService URL ("" to remove).
    #[arg(long, value_name = "URL")]
    slo_url: Option<String>,
    /// Where LogoutResponses go when not the SLO URL ("" to remove).
    #[arg(long, value_name = "URL")]
    slo_response_url: Option<String>,
    /// How logout messages are sent: redirect or post.
    #[arg(long, value_name = "BINDING")]
    slo_binding: Option<String>,
    /// A signing certificate (PEM or base64 DER); repeat for a rollover. Replaces the trusted set.
    #[arg(long, value_name = "FILE")]
    cert: Vec<PathBuf>,
    /// Trust the KeyInfo certificate with this fingerprint: ALG:HEX (sha1, sha256, sha384, sha512).
    #[arg(long, value_name = "ALG:HEX")]
    fingerprint: Option<String>,
    /// Accept RSA-SHA1 and SHA-1 digests from this (legacy) IdP: true or false.
    #[arg(long, value_name = "BOOL")]
    allow_sha1: Option<bool>,
    /// NameIDPolicy Format to ask for ("" for none).
    #[arg(long, value_name = "URI")]
    name_id_format: Option<String>,
    /// AuthnContextClassRef to request, exact ("" for none: the default).
    #[arg(long, value_name = "URI")]
    authn_context: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum IdpCommand {
    /// Add an identity provider by hand.
    Add {
        /// Short name to refer to it by.
        name: String,
        #[command(flatten)]
        fields: IdpFields,
    },
    /// Import an identity provider from its metadata (file, or - for stdin).
    Import {
        name: String,
        /// The metadata XML file, or - for standard input.
        #[arg(long, value_name = "FILE")]
        metadata: PathBuf,
        /// Which entity of an EntitiesDescriptor.
        #[arg(long, value_name = "URI")]
        select_entity: Option<String>,
        #[command(flatten)]
        fields: IdpFields,
    },
    /// Change an identity provider's fields.
    Set {
        idp: String,
        /// New name.
        #[arg(long)]
        rename: Option<String>,
        #[command(flatten)]
        fields: IdpFields,
    },
    /// List the identity providers.
    List,
    /// Remove an identity provider (refused while a tenant uses it).
    Rm { idp: String },
}

#[derive(Args, Debug, Default)]
pub struct TenantFields {
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
    /// Single sign-on: on or off.
    #[arg(long, value_name = "on|off")]
    sso: Option<String>,
    /// The identity provider ("" for none).
    #[arg(long, value_name = "NAME")]
    idp: Option<String>,
    /// Single logout: on or off.
    #[arg(long, value_name = "on|off")]
    slo: Option<String>,
    /// IdP-initiated login: on or off.
    #[arg(long, value_name = "on|off")]
    idp_initiated: Option<String>,
    /// Username rule: strip-domain (DOMAIN\user, user@domain -> user) or keep.
    #[arg(long, value_name = "RULE")]
    username_rule: Option<String>,
    /// User names compared with case: on or off (default off).
    #[arg(long, value_name = "on|off")]
    case_sensitive: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Add a tenant.
    Add {
        name: String,
        #[command(flatten)]
        fields: TenantFields,
    },
    /// Change a tenant.
    Set {
        name: String,
        #[command(flatten)]
        fields: TenantFields,
    },
    /// List the tenants.
    List,
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
    /// Role (agent, tenant-manager, central-admin); repeat; replaces the list.
    #[arg(long = "role", value_name = "ROLE")]
    roles: Vec<String>,
    /// Shorthand for --role central-admin.
    #[arg(long)]
    central_admin: bool,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a user.
    Add {
        username: String,
        /// Tenant (default: the implicit one).
        #[arg(long, default_value = admin::DEFAULT_TENANT)]
        tenant: String,
        #[command(flatten)]
        fields: UserFields,
    },
    /// Change a user.
    Set {
        username: String,
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
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Remove a user (and end their sessions).
    Rm {
        username: String,
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

fn idp_input(name: Option<String>, f: IdpFields) -> Result<IdpInput, Refused> {
    let mut certificates = Vec::new();
    for p in &f.cert {
        certificates.push(read_text(p)?);
    }
    Ok(IdpInput {
        name,
        entity_id: f.entity_id,
        sso_url: f.sso_url,
        sso_binding: f.sso_binding,
        slo_url: f.slo_url,
        slo_response_url: f.slo_response_url,
        slo_binding: f.slo_binding,
        username: f.username_claim,
        certificates,
        fingerprint: f.fingerprint,
        allow_sha1: f.allow_sha1,
        name_id_format: f.name_id_format,
        authn_context: f.authn_context,
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
        login_domains: domains,
        add_login_domains: f.add_login_domains,
        remove_login_domains: f.remove_login_domains,
        sso_enabled: on_off("sso", &f.sso)?,
        idp: f.idp,
        slo_enabled: on_off("slo", &f.slo)?,
        idp_initiated: on_off("idp-initiated", &f.idp_initiated)?,
        strip_domain: strip,
        case_insensitive: on_off("case-sensitive", &f.case_sensitive)?.map(|c| !c),
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

async fn store_of(args: &StoreArgs) -> Result<(Config, Arc<dyn Store>), Refused> {
    let config = args.load().map_err(|e| Refused(2, e))?;
    let store = crate::serve::open_store(&config)
        .await
        .map_err(|e| Refused(3, e))?;
    admin::ensure_default_tenant(store.as_ref()).await?;
    Ok((config, store))
}

pub async fn sp(args: &StoreArgs, cmd: SpCommand) -> Result<(), Refused> {
    let (_, store) = store_of(args).await?;
    let rng = SystemRng;
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
            let sp = admin::sp_add(
                store.as_ref(),
                &rng,
                SpInput {
                    host_url,
                    entity_id,
                    certificate_pem,
                    private_key_pem,
                    generate_key,
                },
            )
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
        SpCommand::Rm { sp } => {
            let s = admin::sp_find(store.as_ref(), &sp).await?;
            store.sp_delete(s.id).await?;
            println!("removed service provider {} ({})", s.id, s.host_url);
        }
    }
    Ok(())
}

pub async fn idp(args: &StoreArgs, cmd: IdpCommand) -> Result<(), Refused> {
    let (_, store) = store_of(args).await?;
    match cmd {
        IdpCommand::Add { name, fields } => {
            let i = admin::idp_add(store.as_ref(), idp_input(Some(name), fields)?).await?;
            println!("added identity provider {}", describe_idp(&i));
        }
        IdpCommand::Import {
            name,
            metadata,
            select_entity,
            fields,
        } => {
            let xml = read_text(&metadata)?;
            let i = admin::idp_import(
                store.as_ref(),
                xml.as_bytes(),
                select_entity.as_deref(),
                idp_input(Some(name), fields)?,
            )
            .await?;
            println!("imported identity provider {}", describe_idp(&i));
        }
        IdpCommand::Set {
            idp,
            rename,
            fields,
        } => {
            let i = admin::idp_set(store.as_ref(), &idp, idp_input(rename, fields)?).await?;
            println!("changed identity provider {}", describe_idp(&i));
        }
        IdpCommand::List => {
            for i in store.idp_list().await? {
                println!("{}", describe_idp(&i));
            }
        }
        IdpCommand::Rm { idp } => {
            let i = admin::idp_find(store.as_ref(), &idp).await?;
            store.idp_delete(i.id).await?;
            println!("removed identity provider {}", i.name);
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
    let (_, store) = store_of(args).await?;
    match cmd {
        TenantCommand::Add { name, fields } => {
            let t = admin::tenant_add(store.as_ref(), &name, tenant_input(fields)?).await?;
            println!(
                "added tenant {}",
                describe_tenant(&t, &store.idp_list().await?)
            );
        }
        TenantCommand::Set { name, fields } => {
            let t = admin::tenant_set(store.as_ref(), &name, tenant_input(fields)?).await?;
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
    let (_, store) = store_of(args).await?;
    let rng: &dyn Rng = &SystemRng;
    match cmd {
        UserCommand::Add {
            username,
            tenant,
            fields,
        } => {
            let u = admin::user_add(
                store.as_ref(),
                rng,
                &tenant,
                user_input(Some(username), fields)?,
            )
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
            let u = admin::user_set(store.as_ref(), rng, &tenant, &username, input).await?;
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
            let u = admin::user_rm(store.as_ref(), &tenant, &username).await?;
            println!("removed user {} of tenant {tenant}", u.username);
        }
    }
    Ok(())
}

pub async fn failures(args: &StoreArgs, limit: u32, json: bool) -> Result<(), Refused> {
    let (_, store) = store_of(args).await?;
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
