//! The command line. `ssogate saml …` diagnoses and exercises the SAML core offline:
//! `verify` (why did this login fail?), `metadata` (our SP metadata), `authn-request` (a login URL
//! or form for an IdP), `bench` (validation speed on one core).
//!
//! Exit status: 0 accepted / done, 1 rejected (one JSON object on stdout says why), 2 usage or I/O.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::json;

use crate::admin_cli::{
    self, IdpCommand, Refused, SpCommand, StoreArgs, TenantCommand, UserCommand,
};
use crate::clock::{Clock, SystemClock};
use crate::saml::authn_request::{AuthnRequest, NameIdPolicy, RequestedAuthnContext, request_id};
use crate::saml::bindings::{self, MessageKind};
use crate::saml::metadata::SpMetadata;
use crate::saml::metadata::idp::{BINDING_POST, BINDING_REDIRECT, parse_idp_metadata};
use crate::saml::replay::{InMemoryReplayCache, NoReplayCheck, ReplayCache};
use crate::saml::response::{
    ExpectedContext, Solicitation, UnverifiedResponse, UsernameSource, VerifyOptions,
};
use crate::saml::xml::Limits;
use crate::saml::xmldsig::{
    AlgorithmPolicy, Fingerprint, IdpTrust, SigningKey, TrustedCertificate,
};
use crate::saml::{Assertion, Error, UnixTime};

#[derive(Parser, Debug)]
#[command(
    name = "ssogate",
    version,
    about = "SAML 2.0 single sign-on for the agent portal"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the sign-on service (SQLite in the data directory; no configuration needed).
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Service providers (the agent portal as the IdP knows it).
    Sp {
        #[command(subcommand)]
        cmd: SpCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Identity providers.
    Idp {
        #[command(subcommand)]
        cmd: IdpCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Tenants: who signs in how.
    Tenant {
        #[command(subcommand)]
        cmd: TenantCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Users (agents, tenant managers, central administrators).
    User {
        #[command(subcommand)]
        cmd: UserCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Recent sign-in failures, newest first, with their reference, reason and detail.
    Failures {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// API clients of the JSON API (bearer tokens).
    ApiClient {
        #[command(subcommand)]
        cmd: crate::admin_cli::ApiClientCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Circuit sign-on per tenant (OAuth 2.0; or OpenID Connect).
    Circuit {
        #[command(subcommand)]
        cmd: crate::admin_cli::CircuitCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Signed-in agents' sessions.
    Sessions {
        #[command(subcommand)]
        cmd: crate::admin_cli::SessionsCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The SAML tracer: takes a response through every check of the ACS, with the configured IdP,
    /// SP and tenant, and prints each step's verdict and values. Nothing is consumed or recorded.
    Trace {
        /// The tenant whose IdP should have sent it (default: the IdP the Issuer names).
        #[arg(long)]
        tenant: Option<String>,
        /// The SAMLResponse: base64 as posted, or its XML (- for standard input).
        #[arg(long, value_name = "FILE")]
        response: PathBuf,
        /// Evaluate as of this instant instead of now.
        #[arg(long, value_name = "RFC3339")]
        at: Option<String>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The audit log: every change, by whom, newest first.
    Audit {
        /// Only changes of objects starting with this (`idp:3`, `tenant:acme`, `user:acme/`).
        #[arg(long)]
        object: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// One JSON object per line, with the object before and after.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Write a consistent copy of the store to FILE, also while the service runs (README: "Backup
    /// and restore").
    Backup {
        /// A new file (it holds keys and password hashes: it is made readable by you only).
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The SAML core, offline.
    #[command(subcommand)]
    Saml(SamlCommand),
}

/// Runs an admin command on a small runtime.
fn admin<F: std::future::Future<Output = Result<(), Refused>>>(f: F) -> Result<i32, UsageError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| UsageError(format!("cannot start the runtime: {e}")))?;
    match rt.block_on(f) {
        Ok(()) => Ok(0),
        Err(Refused(code, m)) => {
            eprintln!("ssogate: {m}");
            Ok(code)
        }
    }
}

#[derive(Subcommand, Debug)]
enum SamlCommand {
    /// Verify a SAMLResponse and say exactly why it is accepted or refused (one JSON object).
    Verify(VerifyArgs),
    /// Measure validations per second on one thread (replay check off); for developers.
    #[command(hide = true)]
    Bench {
        #[command(flatten)]
        verify: VerifyArgs,
        /// How long to loop.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// Print our SP metadata.
    Metadata(MetadataArgs),
    /// Build an AuthnRequest for an IdP: prints {"id":…, "url":…} (Redirect) or {"id":…, "form":…} (POST).
    AuthnRequest(AuthnRequestArgs),
}

#[derive(Args, Debug, Clone)]
struct TrustArgs {
    /// IdP metadata file: its signing certificates and entity ID are used.
    #[arg(long, value_name = "FILE", group = "trust")]
    idp_metadata: Option<PathBuf>,
    /// An IdP signing certificate (PEM or DER); repeat for a key rollover.
    #[arg(long, value_name = "PEMFILE", group = "trust")]
    idp_cert: Vec<PathBuf>,
    /// Trust the certificate in the signature's KeyInfo if its fingerprint is ALG:HEX (sha1, sha256, sha384, sha512).
    #[arg(long, value_name = "ALG:HEX", group = "trust")]
    fingerprint: Option<String>,
}

#[derive(Args, Debug, Clone)]
struct VerifyArgs {
    /// The response: XML or base64 (auto-detected).
    #[arg(long, value_name = "FILE")]
    response: PathBuf,
    #[command(flatten)]
    trust: TrustArgs,
    /// Our entity ID (the expected Audience).
    #[arg(long, value_name = "URI")]
    sp_entity_id: String,
    /// Our ACS URL (the expected Destination and Recipient).
    #[arg(long, value_name = "URL")]
    acs_url: String,
    /// The IdP's entity ID (the expected Issuer); taken from --idp-metadata when given.
    #[arg(long, value_name = "URI")]
    idp_entity_id: Option<String>,
    /// Validate as of this instant instead of now.
    #[arg(long, value_name = "RFC3339")]
    now: Option<String>,
    /// Allowed clock skew for every time check.
    #[arg(long, value_name = "SECONDS", default_value_t = 180)]
    clock_skew: i64,
    /// The ID of the AuthnRequest this response must answer; without it the response must be unsolicited.
    #[arg(long, value_name = "ID")]
    request_id: Option<String>,
    /// Take the user name from this attribute instead of the NameID.
    #[arg(long, value_name = "NAME")]
    username_attribute: Option<String>,
    /// Accept RSA-SHA1 signatures and SHA-1 digests (legacy IdPs only).
    #[arg(long)]
    allow_sha1: bool,
    /// The SP private key (PEM), to decrypt an EncryptedAssertion.
    #[arg(long, value_name = "PEMFILE")]
    sp_key: Option<PathBuf>,
    /// Largest response accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024)]
    max_bytes: usize,
}

#[derive(Args, Debug)]
struct MetadataArgs {
    /// Our entity ID (defaults to the host URL in the service).
    #[arg(long, value_name = "URI")]
    entity_id: String,
    /// Our ACS URL.
    #[arg(long, value_name = "URL")]
    acs_url: String,
    /// Our single logout URL.
    #[arg(long, value_name = "URL")]
    slo_url: Option<String>,
    /// Our certificate (PEM), published for signing and encryption.
    #[arg(long, value_name = "PEMFILE")]
    cert: Option<PathBuf>,
    /// Say that our AuthnRequests are signed (needs --cert).
    #[arg(long)]
    sign_requests: bool,
    /// NameID formats we accept (repeatable).
    #[arg(long, value_name = "URN")]
    name_id_format: Vec<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Binding {
    Redirect,
    Post,
}

#[derive(Args, Debug)]
struct AuthnRequestArgs {
    /// IdP metadata (for its SSO location).
    #[arg(long, value_name = "FILE")]
    idp_metadata: PathBuf,
    #[arg(long, value_name = "URI")]
    idp_entity_id: Option<String>,
    #[arg(long, value_name = "URI")]
    sp_entity_id: String,
    #[arg(long, value_name = "URL")]
    acs_url: String,
    #[arg(long, value_enum, default_value_t = Binding::Redirect)]
    binding: Binding,
    /// Sign the request with this key (PEM).
    #[arg(long, value_name = "PEMFILE")]
    sp_key: Option<PathBuf>,
    /// With --binding post: include this certificate in KeyInfo.
    #[arg(long, value_name = "PEMFILE")]
    sp_cert: Option<PathBuf>,
    #[arg(long)]
    relay_state: Option<String>,
    #[arg(long)]
    force_authn: bool,
    /// NameIDPolicy Format (omit for none).
    #[arg(long, value_name = "URN")]
    name_id_format: Option<String>,
    /// RequestedAuthnContext class (repeatable; omitted by default: ADFS and Entra break on a fixed one).
    #[arg(long, value_name = "URN")]
    authn_context: Vec<String>,
    #[arg(long, value_name = "RFC3339")]
    now: Option<String>,
}

/// A failure that is not a verdict: exit 2.
struct UsageError(String);

impl<E: std::fmt::Display> From<E> for UsageError {
    fn from(e: E) -> Self {
        UsageError(e.to_string())
    }
}

/// What every `--help` ends with.
const EXIT_STATUS: &str = "Exit status:
  0  done (saml verify: the response is accepted)
  1  refused: a value is wrong, a name is taken or unknown, nothing was changed
     (saml verify: the response is refused; the JSON on stdout says why)
  2  usage error, or a file that cannot be read
  3  the database cannot be reached";

/// The command line, with the exit statuses at the end of every command's help.
fn command() -> clap::Command {
    fn with_exit_status(c: clap::Command) -> clap::Command {
        c.after_help(EXIT_STATUS).mut_subcommands(with_exit_status)
    }
    with_exit_status(<Cli as clap::CommandFactory>::command())
}

/// Runs the command line; returns the exit status.
pub fn main() -> i32 {
    let parsed = command()
        .try_get_matches()
        .and_then(|m| <Cli as clap::FromArgMatches>::from_arg_matches(&m));
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let r = match cli.command {
        Command::Serve { listen, store } => match store.load() {
            Ok(mut config) => {
                if let Some(l) = listen {
                    config.listen = l;
                }
                Ok(crate::serve::run(config))
            }
            Err(e) => Err(UsageError(e)),
        },
        Command::Sp { cmd, store } => admin(admin_cli::sp(&store, cmd)),
        Command::Idp { cmd, store } => admin(admin_cli::idp(&store, cmd)),
        Command::Tenant { cmd, store } => admin(admin_cli::tenant(&store, cmd)),
        Command::User { cmd, store } => admin(admin_cli::user(&store, cmd)),
        Command::Failures { limit, json, store } => admin(admin_cli::failures(&store, limit, json)),
        Command::ApiClient { cmd, store } => admin(admin_cli::api_client(&store, cmd)),
        Command::Sessions { cmd, store } => admin(admin_cli::sessions(&store, cmd)),
        Command::Circuit { cmd, store } => admin(admin_cli::circuit(&store, cmd)),
        Command::Trace {
            tenant,
            response,
            at,
            json,
            store,
        } => admin(admin_cli::trace(
            &store,
            tenant,
            &response,
            at.as_deref(),
            json,
        )),
        Command::Audit {
            object,
            limit,
            json,
            store,
        } => admin(admin_cli::audit(&store, object, limit, json)),
        Command::Backup { file, store } => admin(admin_cli::backup(&store, &file)),
        Command::Saml(SamlCommand::Verify(a)) => verify(&a),
        Command::Saml(SamlCommand::Bench { verify, seconds }) => bench(&verify, seconds),
        Command::Saml(SamlCommand::Metadata(a)) => metadata(&a),
        Command::Saml(SamlCommand::AuthnRequest(a)) => authn_request(&a),
    };
    match r {
        Ok(code) => code,
        Err(UsageError(m)) => {
            eprintln!("ssogate: {m}");
            2
        }
    }
}

/// Writes a line to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn say(line: &str) {
    use std::io::Write as _;
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
}

fn read(path: &PathBuf) -> Result<Vec<u8>, UsageError> {
    std::fs::read(path).map_err(|e| UsageError(format!("cannot read {}: {e}", path.display())))
}

fn parse_now(now: &Option<String>) -> Result<UnixTime, UsageError> {
    match now {
        Some(s) => UnixTime::parse(s)
            .ok_or_else(|| UsageError(format!("--now \"{s}\" is not an RFC 3339 instant"))),
        None => Ok(SystemClock.now()),
    }
}

/// Everything `verify` and `bench` prepare once.
struct Prepared {
    raw: Vec<u8>,
    trust: IdpTrust,
    idp_entity_id: String,
    opts: VerifyOptions,
    now: UnixTime,
}

fn prepare(a: &VerifyArgs) -> Result<Prepared, UsageError> {
    let raw = read(&a.response)?;
    let (trust, idp_entity_id) = if let Some(m) = &a.trust.idp_metadata {
        let d = parse_idp_metadata(&read(m)?, a.idp_entity_id.as_deref())
            .map_err(|e| UsageError(format!("{}: {e}", m.display())))?;
        (IdpTrust::Certificates(d.signing_certificates), d.entity_id)
    } else {
        let idp = a.idp_entity_id.clone().ok_or_else(|| {
            UsageError("--idp-entity-id is required without --idp-metadata".into())
        })?;
        if let Some(fp) = &a.trust.fingerprint {
            (
                IdpTrust::Fingerprint(Fingerprint::parse(fp).map_err(UsageError)?),
                idp,
            )
        } else if !a.trust.idp_cert.is_empty() {
            let mut certs = Vec::new();
            for p in &a.trust.idp_cert {
                certs.push(
                    TrustedCertificate::from_any(&read(p)?)
                        .map_err(|e| UsageError(format!("{}: {e}", p.display())))?,
                );
            }
            (IdpTrust::Certificates(certs), idp)
        } else {
            return Err(UsageError(
                "one of --idp-metadata, --idp-cert or --fingerprint is required".into(),
            ));
        }
    };
    let decryption_key = match &a.sp_key {
        Some(p) => Some(
            SigningKey::from_pem(&read(p)?)
                .map_err(|e| UsageError(format!("{}: {e}", p.display())))?,
        ),
        None => None,
    };
    let opts = VerifyOptions {
        algorithms: AlgorithmPolicy {
            allow_sha1: a.allow_sha1,
        },
        limits: Limits {
            max_bytes: a.max_bytes,
            ..Limits::default()
        },
        decryption_key,
    };
    Ok(Prepared {
        raw,
        trust,
        idp_entity_id,
        opts,
        now: parse_now(&a.now)?,
    })
}

/// The whole ACS pipeline on a posted value: decode, parse, verify, accept.
fn run_once(p: &Prepared, a: &VerifyArgs, replay: &dyn ReplayCache) -> Result<Assertion, Error> {
    let first = p.raw.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let unverified = if first == Some(b'<') {
        UnverifiedResponse::parse(&p.raw, &p.opts.limits)?
    } else {
        UnverifiedResponse::parse_owned(
            bindings::decode_post(&p.raw, &p.opts.limits)?,
            &p.opts.limits,
        )?
    };
    let verified = unverified.verify(&p.trust, &p.opts)?;
    let ctx = ExpectedContext {
        sp_entity_id: &a.sp_entity_id,
        acs_url: &a.acs_url,
        idp_entity_id: &p.idp_entity_id,
        solicitation: match &a.request_id {
            Some(r) => Solicitation::Request(r),
            None => Solicitation::Unsolicited,
        },
        clock_skew_secs: a.clock_skew,
        username: match &a.username_attribute {
            Some(n) => UsernameSource::Attribute(n),
            None => UsernameSource::NameId,
        },
    };
    verified
        .accept(&ctx, p.now)
        .and_then(|u| u.redeem(replay, p.now))
}

fn verify(a: &VerifyArgs) -> Result<i32, UsageError> {
    let p = prepare(a)?;
    let replay = InMemoryReplayCache::new();
    match run_once(&p, a, &replay) {
        Ok(asr) => {
            let out = json!({
                "valid": true,
                "username": asr.username,
                "name_id": asr.name_id.as_ref().map(|n| n.value.clone()),
                "name_id_format": asr.name_id.as_ref().and_then(|n| n.format.clone()),
                "session_index": asr.session_index,
                "issuer": asr.issuer,
                "attributes": asr.attributes.to_map(),
                "not_on_or_after": asr.not_on_or_after.to_rfc3339(),
                "assertion_id": asr.id,
                "response_signed": asr.response_signed,
                "assertion_signed": asr.assertion_signed,
                "signing_certificate_sha256": asr.signing_certificate_sha256,
            });
            say(&out.to_string());
            Ok(0)
        }
        Err(e) => {
            say(
                &json!({ "valid": false, "reason": e.code(), "detail": e.to_string() }).to_string(),
            );
            Ok(1)
        }
    }
}

fn bench(a: &VerifyArgs, seconds: u64) -> Result<i32, UsageError> {
    let p = prepare(a)?;
    if let Err(e) = run_once(&p, a, &NoReplayCheck) {
        say(&json!({ "valid": false, "reason": e.code(), "detail": e.to_string() }).to_string());
        return Ok(1);
    }
    // Warm up, then loop for the requested time, checking the clock every 64 iterations.
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(300) {
        let _ = run_once(&p, a, &NoReplayCheck);
    }
    let start = Instant::now();
    let limit = Duration::from_secs(seconds.max(1));
    let mut n: u64 = 0;
    loop {
        for _ in 0..64 {
            if run_once(&p, a, &NoReplayCheck).is_err() {
                return Err(UsageError(
                    "a verification failed during the benchmark".into(),
                ));
            }
        }
        n += 64;
        if start.elapsed() >= limit {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    say(&format!("iterations: {n}"));
    say(&format!("seconds: {secs:.3}"));
    say(&format!(
        "microseconds_per_verification: {:.2}",
        secs * 1e6 / n as f64
    ));
    say(&format!("verifications_per_second: {:.0}", n as f64 / secs));
    Ok(0)
}

fn metadata(a: &MetadataArgs) -> Result<i32, UsageError> {
    let cert = match &a.cert {
        Some(p) => Some(
            TrustedCertificate::from_any(&read(p)?)
                .map_err(|e| UsageError(format!("{}: {e}", p.display())))?,
        ),
        None => None,
    };
    if a.sign_requests && cert.is_none() {
        return Err(UsageError("--sign-requests needs --cert".into()));
    }
    let formats: Vec<&str> = a.name_id_format.iter().map(String::as_str).collect();
    let md = SpMetadata {
        next_certificate: None,
        entity_id: &a.entity_id,
        acs_url: &a.acs_url,
        slo_url: a.slo_url.as_deref(),
        certificate: cert.as_ref(),
        name_id_formats: &formats,
        authn_requests_signed: a.sign_requests,
        want_assertions_signed: true,
    };
    say(md.to_xml().trim_end());
    Ok(0)
}

fn authn_request(a: &AuthnRequestArgs) -> Result<i32, UsageError> {
    let idp = parse_idp_metadata(&read(&a.idp_metadata)?, a.idp_entity_id.as_deref())
        .map_err(|e| UsageError(format!("{}: {e}", a.idp_metadata.display())))?;
    let binding = match a.binding {
        Binding::Redirect => BINDING_REDIRECT,
        Binding::Post => BINDING_POST,
    };
    let destination = idp
        .sso_location(binding)
        .ok_or_else(|| UsageError(format!("the IdP has no SingleSignOnService for {binding}")))?;
    let key = match &a.sp_key {
        Some(p) => Some(
            SigningKey::from_pem(&read(p)?)
                .map_err(|e| UsageError(format!("{}: {e}", p.display())))?,
        ),
        None => None,
    };
    let cert = match &a.sp_cert {
        Some(p) => Some(
            TrustedCertificate::from_any(&read(p)?)
                .map_err(|e| UsageError(format!("{}: {e}", p.display())))?,
        ),
        None => None,
    };
    let mut random = [0u8; 16];
    openssl::rand::rand_bytes(&mut random)?;
    let id = request_id(random);
    let req = AuthnRequest {
        id: &id,
        issue_instant: parse_now(&a.now)?,
        destination,
        acs_url: &a.acs_url,
        sp_entity_id: &a.sp_entity_id,
        force_authn: a.force_authn,
        is_passive: false,
        name_id_policy: a.name_id_format.as_ref().map(|f| NameIdPolicy {
            format: Some(f.clone()),
            allow_create: true,
        }),
        requested_authn_context: (!a.authn_context.is_empty()).then(|| RequestedAuthnContext {
            comparison: "exact".into(),
            class_refs: a.authn_context.clone(),
        }),
    };
    let built = req.build();
    let out = match a.binding {
        Binding::Redirect => {
            let signer = key.as_ref().map(|k| (k, k.default_algorithm()));
            let url = bindings::encode_redirect(
                destination,
                MessageKind::Request,
                &built.xml,
                a.relay_state.as_deref(),
                signer,
            )
            .map_err(|e| UsageError(e.to_string()))?;
            json!({ "id": id, "binding": "redirect", "url": url, "xml": built.xml })
        }
        Binding::Post => {
            let xml = match &key {
                Some(k) => built.signed(k, k.default_algorithm(), cert.as_ref())?,
                None => built.xml.clone(),
            };
            let form = bindings::post_form(
                destination,
                MessageKind::Request,
                &xml,
                a.relay_state.as_deref(),
            );
            json!({ "id": id, "binding": "post", "destination": destination, "xml": xml, "form": form })
        }
    };
    say(&out.to_string());
    Ok(0)
}
