//! Round trips with a real IdP: SimpleSAMLphp on loopback (`tests/real-idp/idp.py`).
//!
//! - It loads our SP metadata (two SPs: one that signs its AuthnRequests, one that does not).
//! - It accepts our AuthnRequests: unsigned (HTTP-Redirect), signed (HTTP-Redirect query
//!   signature) and signed (HTTP-POST, enveloped). As a control, it refuses an unsigned request
//!   from the SP whose metadata says its requests are signed: so it really checked ours.
//! - Its signed responses (Response and Assertion both signed) verify in our core, with trust from
//!   its metadata, and the whole protocol check passes; so does an IdP-initiated response.
//!
//! The scripted browser (`tests/real-idp/browser.py login`) logs in and keeps the SAMLResponse the
//! IdP would POST to our ACS. Without PHP or SimpleSAMLphp the test fails naming them, unless
//! `SSOGATE_SKIP=real-idp` (`./run-tests` installs them).

mod common;

use common::real_idp::{self, RealIdp};

use std::io::{Read as _, Write as _};
use std::net::TcpListener;

use ssogate::saml::authn_request::{AuthnRequest, request_id};
use ssogate::saml::bindings::{MessageKind, decode_post, encode_redirect, post_form};
use ssogate::saml::metadata::idp::{BINDING_POST, BINDING_REDIRECT};
use ssogate::saml::metadata::{IdpDescriptor, SpMetadata, parse_idp_metadata};
use ssogate::saml::replay::InMemoryReplayCache;
use ssogate::saml::response::{
    ExpectedContext, Solicitation, UnverifiedResponse, UsernameSource, VerifyOptions,
};
use ssogate::saml::xmldsig::{IdpTrust, SignatureAlgorithm};
use ssogate::saml::{Assertion, UnixTime};

const WINDOWS_ACCOUNT: &str =
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/windowsaccountname";

struct Sp {
    entity_id: String,
    acs: String,
    signs: bool,
}

fn sp(name: &str, signs: bool) -> Sp {
    Sp {
        entity_id: format!("http://127.0.0.1:18099/{name}"),
        acs: format!("http://127.0.0.1:18099/{name}/saml/acs"),
        signs,
    }
}

/// Logs in through the scripted browser starting at `url`; returns the SAMLResponse form value
/// the IdP would POST to the ACS, or None when it issued none.
fn login(url: &str, user: &str) -> Option<String> {
    match real_idp::login(url, user) {
        Ok(r) => Some(r),
        Err(why) => {
            eprintln!("no SAMLResponse: {why}");
            None
        }
    }
}

fn validate(
    idp: &IdpDescriptor,
    sp: &Sp,
    form_value: &str,
    solicitation: Solicitation<'_>,
) -> Result<Assertion, ssogate::saml::Error> {
    // Every response of the IdP checked is a case of the suite's count.
    common::record_cases("real-idp", 1);
    let xml = decode_post(form_value.as_bytes(), &Default::default())?;
    let trust = IdpTrust::Certificates(idp.signing_certificates.clone());
    let verified = UnverifiedResponse::parse(&xml, &Default::default())?
        .verify(&trust, &VerifyOptions::default())?;
    assert!(
        verified.response_signed() && verified.assertion_signed(),
        "SimpleSAMLphp signs both"
    );
    let ctx = ExpectedContext {
        sp_entity_id: &sp.entity_id,
        acs_url: &sp.acs,
        idp_entity_id: &idp.entity_id,
        solicitation,
        clock_skew_secs: 180,
        username: UsernameSource::Attribute(WINDOWS_ACCOUNT),
    };
    verified
        .accept(&ctx, now())
        .and_then(|u| u.redeem(&InMemoryReplayCache::new(), now()))
}

fn now() -> UnixTime {
    ssogate::clock::Clock::now(&ssogate::clock::SystemClock)
}

/// Serves `body` once, on a loopback port; returns its URL.
fn serve_once(body: String) -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://127.0.0.1:{}/login",
        l.local_addr().expect("addr").port()
    );
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn round_trips_with_simplesamlphp() {
    if common::require("real-idp", real_idp::missing()).is_none() {
        return;
    }
    let dir = common::scratch_dir("real_idp");
    let keys = common::generate::sp();
    let plain = sp("sp-plain", false);
    let signing = sp("sp-signing", true);

    // Our SP metadata, exactly as `ssogate saml metadata` writes it.
    let mut files = Vec::new();
    for s in [&plain, &signing] {
        let slo = format!("{}/saml/slo", s.entity_id);
        let md = SpMetadata {
            next_certificate: None,
            entity_id: &s.entity_id,
            acs_url: &s.acs,
            slo_url: Some(&slo),
            certificate: s.signs.then_some(&keys.cert),
            name_id_formats: &[],
            authn_requests_signed: s.signs,
            want_assertions_signed: true,
        };
        let f = dir.join(format!(
            "{}.xml",
            s.entity_id.rsplit('/').next().expect("name")
        ));
        std::fs::write(&f, md.to_xml()).expect("write metadata");
        files.push(f);
    }
    let port = std::env::var("SSOGATE_TEST_IDP_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(18088);
    let running = RealIdp::start(&dir, port, &files);
    let md_file = running.metadata_file.clone();
    let idp = parse_idp_metadata(&std::fs::read(&md_file).expect("idp metadata"), None)
        .expect("we import its metadata");
    let redirect = idp
        .sso_location(BINDING_REDIRECT)
        .expect("Redirect SSO")
        .to_string();
    let post = idp
        .sso_location(BINDING_POST)
        .unwrap_or(&redirect)
        .to_string();

    let request = |s: &Sp, seed: u8, destination: &str| {
        let id = request_id([seed; 16]);
        let xml = AuthnRequest {
            id: &id,
            issue_instant: now(),
            destination,
            acs_url: &s.acs,
            sp_entity_id: &s.entity_id,
            force_authn: false,
            is_passive: false,
            name_id_policy: None,
            requested_authn_context: None,
        }
        .build();
        (id, xml)
    };

    // 1. Unsigned AuthnRequest, HTTP-Redirect.
    let (id1, req1) = request(&plain, 1, &redirect);
    let url1 = encode_redirect(
        &redirect,
        MessageKind::Request,
        &req1.xml,
        Some("/portal"),
        None,
    )
    .expect("url");
    let r1 = login(&url1, "agent1").expect("the IdP answers our unsigned request");
    let a1 = validate(&idp, &plain, &r1, Solicitation::Request(&id1))
        .expect("its response passes every check");
    assert_eq!(a1.username, "EXAMPLE\\agent1");
    assert!(a1.session_index.is_some());
    assert_eq!(a1.attributes.first("uid"), Some("agent1"));

    // 2. Signed AuthnRequest, HTTP-Redirect query signature.
    let (id2, req2) = request(&signing, 2, &redirect);
    let url2 = encode_redirect(
        &redirect,
        MessageKind::Request,
        &req2.xml,
        Some("/portal"),
        Some((&keys.key, SignatureAlgorithm::RSA_SHA256_ALG)),
    )
    .expect("url");
    let r2 = login(&url2, "agent2").expect("the IdP accepts our Redirect-signed request");
    assert_eq!(
        validate(&idp, &signing, &r2, Solicitation::Request(&id2))
            .expect("valid")
            .username,
        "EXAMPLE\\agent2"
    );

    // 3. Signed AuthnRequest, HTTP-POST (enveloped signature), from an auto-submitting form.
    let (id3, req3) = request(&signing, 3, &post);
    let signed3 = req3
        .signed(
            &keys.key,
            SignatureAlgorithm::RSA_SHA256_ALG,
            Some(&keys.cert),
        )
        .expect("sign");
    let page = serve_once(post_form(
        &post,
        MessageKind::Request,
        &signed3,
        Some("/portal"),
    ));
    let r3 = login(&page, "agent1").expect("the IdP accepts our POST-signed request");
    assert_eq!(
        validate(&idp, &signing, &r3, Solicitation::Request(&id3))
            .expect("valid")
            .username,
        "EXAMPLE\\agent1"
    );

    // Control: the signing SP's request without a signature is refused by the IdP, and so is
    // one signed by another key. So the IdP really verified requests 2 and 3.
    let (_, req4) = request(&signing, 4, &redirect);
    let url4 =
        encode_redirect(&redirect, MessageKind::Request, &req4.xml, None, None).expect("url");
    assert!(
        login(&url4, "agent1").is_none(),
        "the IdP must refuse an unsigned request from a signing SP"
    );
    common::record_cases("real-idp", 1);
    let other = common::generate::attacker();
    let url5 = encode_redirect(
        &redirect,
        MessageKind::Request,
        &req4.xml,
        None,
        Some((&other.key, SignatureAlgorithm::RSA_SHA256_ALG)),
    )
    .expect("url");
    assert!(
        login(&url5, "agent1").is_none(),
        "the IdP must refuse a request signed by another key"
    );
    common::record_cases("real-idp", 1);

    // 4. IdP-initiated: an unsolicited response, accepted only as such.
    let sso = running.sso_url.clone();
    let idp_init = format!(
        "{sso}?spentityid={}",
        percent_encoding::utf8_percent_encode(&plain.entity_id, percent_encoding::NON_ALPHANUMERIC)
    );
    let r6 = login(&idp_init, "agent2").expect("IdP-initiated response");
    assert_eq!(
        validate(&idp, &plain, &r6, Solicitation::Unsolicited)
            .expect("valid")
            .username,
        "EXAMPLE\\agent2"
    );
    assert_eq!(
        validate(&idp, &plain, &r6, Solicitation::Request(&id1))
            .map_err(|e| e.code())
            .err(),
        Some("in_response_to_missing")
    );

    // Its responses are bound to their SP and request: the plain SP's response is refused at the
    // signing SP, and request 1's response does not answer request 2.
    assert_eq!(
        validate(&idp, &signing, &r1, Solicitation::Request(&id1))
            .map_err(|e| e.code())
            .err(),
        Some("destination_mismatch")
    );
    assert_eq!(
        validate(&idp, &plain, &r1, Solicitation::Request(&id2))
            .map_err(|e| e.code())
            .err(),
        Some("in_response_to_mismatch")
    );
}
