//! Property tests: no input makes the decoders panic, and none takes unbounded time or memory
//! (every limit is checked before the work it bounds). Random bytes, and random edits of a valid
//! signed response, through the whole pipeline; the same for metadata and Redirect queries.
//! `fuzz/` holds the coverage-guided versions of these targets.

mod common;

use std::sync::OnceLock;

use common::generate::{Template, idp};
use proptest::prelude::*;
use ssogate::saml::bindings::{decode_post, decode_redirect};
use ssogate::saml::logout::{LogoutBinding, verify_logout};
use ssogate::saml::metadata::parse_idp_metadata;
use ssogate::saml::replay::NoReplayCheck;
use ssogate::saml::response::{
    ExpectedContext, Solicitation, UnverifiedResponse, UsernameSource, VerifyOptions,
};
use ssogate::saml::xml::{Document, Limits};
use ssogate::saml::xmldsig::c14n::{ExcC14n, canonicalize};
use ssogate::saml::xmldsig::{AlgorithmPolicy, IdpTrust};

fn baseline() -> &'static str {
    static B: OnceLock<String> = OnceLock::new();
    B.get_or_init(|| Template::default().signed_both(idp()))
}

fn okta_metadata() -> &'static str {
    static M: OnceLock<String> = OnceLock::new();
    M.get_or_init(|| {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/idp-metadata/okta.xml"
        ))
        .expect("fixture")
    })
}

/// The whole ACS pipeline; the result is irrelevant, reaching the end without a panic is the point.
fn pipeline(bytes: &[u8]) {
    let trust = IdpTrust::Certificates(vec![idp().cert.clone()]);
    let opts = VerifyOptions {
        algorithms: AlgorithmPolicy { allow_sha1: true },
        decryption_key: Some(common::generate::sp().key.clone()),
        ..Default::default()
    };
    let ctx = ExpectedContext {
        sp_entity_id: common::generate::SP,
        acs_url: common::generate::ACS,
        idp_entity_id: common::generate::IDP,
        solicitation: Solicitation::Request(common::generate::REQ),
        clock_skew_secs: 180,
        username: UsernameSource::Attribute(common::generate::USER_ATTR),
    };
    if let Ok(u) = UnverifiedResponse::parse(bytes, &opts.limits) {
        let _ = u.issuer_hint();
        if let Ok(v) = u.verify(&trust, &opts) {
            let _ = v.in_response_to();
            let _ = v.name_id();
            let _ = v
                .accept(&ctx, common::generate::now())
                .and_then(|u| u.redeem(&NoReplayCheck, common::generate::now()));
        }
    }
    let _ = verify_logout(LogoutBinding::Post(bytes), &trust, &opts);
    if let Ok(doc) = Document::parse(bytes, &Limits::default()) {
        let mut out = Vec::new();
        canonicalize(
            &doc,
            doc.root(),
            None,
            &ExcC14n {
                with_comments: true,
                inclusive_prefixes: vec!["#default".into(), "xs".into()],
            },
            &mut out,
        );
    }
}

/// An edit of a valid document: replace, insert or delete a run of bytes.
fn edit(base: &str) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len();
    (
        0..len,
        0usize..16,
        prop::collection::vec(any::<u8>(), 0..16),
        0u8..3,
    )
        .prop_map(move |(at, del, ins, kind)| {
            let mut v = base.as_bytes().to_vec();
            let end = (at + del).min(v.len());
            match kind {
                0 => {
                    v.splice(at..end, ins);
                }
                1 => {
                    v.splice(at..at, ins);
                }
                _ => {
                    v.drain(at..end);
                }
            }
            v
        })
}

/// Fragments that exercise the parser's corners, glued at random.
fn xmlish() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop::sample::select(vec![
        "<",
        ">",
        "</",
        "/>",
        "<?xml version=\"1.0\"?>",
        "<!DOCTYPE x>",
        "<!--",
        "-->",
        "<![CDATA[",
        "]]>",
        "&amp;",
        "&#x41;",
        "&#1114112;",
        "&bogus;",
        "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"a\">",
        "</saml:Assertion>",
        "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"r\" Version=\"2.0\">",
        "</samlp:Response>",
        "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">",
        "</ds:Signature>",
        " a=\"",
        "\"",
        "xmlns:p=\"urn:p\"",
        "p:",
        "\u{feff}",
        "\r\n",
        "\u{0}",
        "é",
        "\u{FFFE}",
    ]);
    prop::collection::vec(pieces, 0..40).prop_map(|v| v.concat().into_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        pipeline(&bytes);
        let _ = decode_post(&bytes, &Limits::default());
    }

    #[test]
    fn xml_like_input_never_panics(bytes in xmlish()) {
        pipeline(&bytes);
    }

    #[test]
    fn edited_signed_responses_never_panic(bytes in edit(baseline())) {
        pipeline(&bytes);
    }

    #[test]
    fn edited_metadata_never_panics(bytes in edit(okta_metadata())) {
        let _ = parse_idp_metadata(&bytes, None);
        let _ = parse_idp_metadata(&bytes, Some("http://www.okta.com/exk1fcia6d6EMsf331d8"));
    }

    #[test]
    fn redirect_queries_never_panic(
        params in prop::collection::vec((prop::sample::select(vec!["SAMLRequest", "SAMLResponse", "RelayState", "SigAlg", "Signature", "x", ""]), "[A-Za-z0-9%+/=&._~-]{0,64}"), 0..6)
    ) {
        let q: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let q = q.join("&");
        if let Ok(m) = decode_redirect(&q, &Limits::default(), AlgorithmPolicy::default()) {
            let _ = m.verify_signature(&IdpTrust::Certificates(vec![idp().cert.clone()]));
            let _ = verify_logout(LogoutBinding::Redirect(&m), &IdpTrust::Certificates(vec![idp().cert.clone()]), &VerifyOptions::default());
        }
    }
}
