//! `cargo bench`: where validation time goes, phase by phase, on responses built here (the
//! shipped xmlsec1-signed example, and a 1,000-group response signed with a throw-away key).
//! Reports the best of 7 batches per phase (the machine is shared; the best batch is the one
//! least disturbed). For comparisons with the peer libraries use `ssogate saml bench` through
//! `../shared/tools/peerbench/run-all` (see BENCHMARKS.md).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/common/generate.rs"]
#[allow(dead_code)]
mod generate;
mod support;

use std::hint::black_box;
use support::best_of;

use ssogate::saml::UnixTime;
use ssogate::saml::bindings::decode_post;
use ssogate::saml::replay::NoReplayCheck;
use ssogate::saml::response::{
    ExpectedContext, Solicitation, UnverifiedResponse, UsernameSource, VerifyOptions,
};
use ssogate::saml::trace::Tracer;
use ssogate::saml::xml::Document;
use ssogate::saml::xmldsig::c14n::canonicalize;
use ssogate::saml::xmldsig::{IdpTrust, TrustedCertificate};

struct Case {
    name: &'static str,
    b64: Vec<u8>,
    trust: IdpTrust,
    ctx: ExpectedContext<'static>,
    now: UnixTime,
}

fn run(c: &Case) {
    let opts = VerifyOptions::default();
    let n = if c.b64.len() > 20_000 { 300 } else { 3000 };
    let xml = decode_post(&c.b64, &opts.limits).expect("decodes");
    let doc = Document::parse(&xml, &opts.limits).expect("parses");
    let mut buf = Vec::new();
    let full = || {
        let x = decode_post(&c.b64, &opts.limits).expect("decodes");
        let v = UnverifiedResponse::parse_owned(x, &opts.limits)
            .and_then(|u| u.verify(&c.trust, &opts))
            .expect("verifies");
        v.accept(&c.ctx, c.now)
            .and_then(|u| u.redeem(&NoReplayCheck, c.now))
            .expect("accepted")
    };
    let username = full().username;
    let rows = [
        (
            "base64 decode",
            best_of(n, || drop(black_box(decode_post(&c.b64, &opts.limits)))),
        ),
        (
            "parse (quick-xml into the arena)",
            best_of(n, || drop(black_box(Document::parse(&xml, &opts.limits)))),
        ),
        (
            "exclusive c14n of the root",
            best_of(n, || {
                buf.clear();
                canonicalize(&doc, doc.root(), None, &Default::default(), &mut buf);
            }),
        ),
        (
            "parse + verify",
            best_of(n, || {
                drop(black_box(
                    UnverifiedResponse::parse(&xml, &opts.limits)
                        .and_then(|u| u.verify(&c.trust, &opts)),
                ))
            }),
        ),
        (
            "whole pipeline (decode, parse, verify, accept)",
            best_of(n, || drop(black_box(full()))),
        ),
        (
            "the SAML tracer's steps (the same, each check recorded with its values)",
            best_of(n / 3 + 1, || {
                let mut t = Tracer::default();
                let x = t
                    .check("decode", vec![], || decode_post(&c.b64, &opts.limits))
                    .expect("decodes");
                let u = t
                    .check("parse", vec![], || {
                        UnverifiedResponse::parse_owned(x, &opts.limits)
                    })
                    .expect("parses");
                let v = t
                    .check("signature", vec![], || u.verify(&c.trust, &opts))
                    .expect("verifies");
                drop(black_box(t.accept(&v, &c.ctx, c.now)));
                black_box(t);
            }),
        ),
    ];
    println!(
        "{} ({} B base64, {} B XML, user {username}):",
        c.name,
        c.b64.len(),
        xml.len()
    );
    for (what, us) in rows {
        println!("  {us:9.1} µs  {what}");
    }
    let total = rows[4].1;
    println!("  {:9.0} verifications/s on one thread", 1e6 / total);
    println!(
        "  {:9.2} ms  the tracer (target < 50 ms); {:.2}× the pipeline",
        rows[5].1 / 1000.0,
        rows[5].1 / total
    );
}

fn main() {
    let root = env!("CARGO_MANIFEST_DIR");
    let example = Case {
        name: "example (ADFS shape, Assertion signed by xmlsec1)",
        b64: std::fs::read(format!("{root}/fixtures/examples/adfs-response.b64")).expect("example"),
        trust: IdpTrust::Certificates(vec![
            TrustedCertificate::from_any(
                &std::fs::read(format!("{root}/fixtures/examples/idp-cert.pem")).expect("cert"),
            )
            .expect("cert"),
        ]),
        ctx: ExpectedContext {
            sp_entity_id: "https://cc.example.com/agentportal",
            acs_url: "https://cc.example.com/agentportal/saml/acs",
            idp_entity_id: "http://adfs.example.com/adfs/services/trust",
            solicitation: Solicitation::Unsolicited,
            clock_skew_secs: 180,
            username: UsernameSource::Attribute(
                "http://schemas.microsoft.com/ws/2008/06/identity/claims/windowsaccountname",
            ),
        },
        now: UnixTime::parse("2030-01-01T00:00:00Z").expect("time"),
    };
    let mut big = generate::Template::default();
    big.attributes.push((
        "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups".into(),
        (0..1000)
            .map(|i| format!("EXAMPLE\\grp-{i:04}-contact-center-agents"))
            .collect(),
    ));
    let big_case = Case {
        name: "big (1,000 group values, Assertion signed)",
        b64: generate::b64(&big.signed_assertion(generate::idp())).into_bytes(),
        trust: IdpTrust::Certificates(vec![generate::idp().cert.clone()]),
        ctx: ExpectedContext {
            sp_entity_id: generate::SP,
            acs_url: generate::ACS,
            idp_entity_id: generate::IDP,
            solicitation: Solicitation::Request(generate::REQ),
            clock_skew_secs: 180,
            username: UsernameSource::Attribute(generate::USER_ATTR),
        },
        now: generate::now(),
    };
    run(&example);
    run(&big_case);
}
