//! Every refusal reason code is asserted by name somewhere in the tests. The first test reads the
//! codes (the SAML core's in `src/saml/error.rs`, the web layer's `Reason` table) and the test
//! sources, and lists every code no test names; the others assert the codes no other test
//! reached, one case each, with the refusal the service attaches to its answer.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::app::{Answer, HOST, TestApp, answering, unsolicited};
use common::generate::{self, IDP, Template, b64, idp, idp_ec};
use ssogate::domain::admin::{self, IdpInput, SpInput};
use ssogate::domain::{IdpId, SpId, TenantId, TrustConfig};
use ssogate::saml::xml::Limits;
use ssogate::saml::xmldsig::{Fingerprint, IdpTrust};
use ssogate::saml::{UnverifiedResponse, VerifyOptions};
use ssogate::store::Store;
use ssogate::web::pending::PendingRequest;

/// Codes that no input can reach, each with the reason it still exists.
const UNREACHABLE: &[(&str, &str)] = &[(
    "sign_failed",
    "signing a message we built fails only if OpenSSL does (the key was checked when it was stored)",
)];

/// The string literals of `=> "code"` match arms in `source` (the `code()` tables).
fn codes_in(source: &str) -> Vec<String> {
    source
        .split("=> \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn every_reason_code_is_asserted_by_name() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| std::fs::read_to_string(root.join(p)).expect("source");
    let mut codes = codes_in(&read("src/saml/error.rs"));
    codes.extend(codes_in(&read("src/web/refusal.rs")));
    codes.sort();
    codes.dedup();
    assert!(codes.len() >= 90, "only {} codes found", codes.len());
    // The test sources (this file's assertions count; its UNREACHABLE list is filtered below).
    let mut tests = String::new();
    for dir in ["tests", "tests/e2e"] {
        for e in std::fs::read_dir(root.join(dir)).expect("tests") {
            let p = e.expect("entry").path();
            let ext = p.extension().and_then(|x| x.to_str());
            if matches!(ext, Some("rs" | "py")) {
                tests.push_str(&std::fs::read_to_string(&p).expect("test source"));
            }
        }
    }
    let unnamed: Vec<&String> = codes
        .iter()
        .filter(|c| !UNREACHABLE.iter().any(|(u, _)| u == c))
        .filter(|c| !tests.contains(&format!("\"{c}\"")))
        .collect();
    assert!(
        unnamed.is_empty(),
        "{} reason codes are asserted by no test: {unnamed:?}",
        unnamed.len()
    );
}

/// The reason the service gave for `a` (from the refusal it attaches to its answer).
fn reason(a: &Answer) -> &'static str {
    a.refusal
        .as_ref()
        .map(|r| r.reason.code())
        .unwrap_or("(no refusal)")
}

fn core_code(xml: &str, trust: &IdpTrust, opts: &VerifyOptions) -> &'static str {
    UnverifiedResponse::parse(xml.as_bytes(), &opts.limits)
        .and_then(|u| u.verify(trust, opts))
        .err()
        .map(|e| e.code())
        .unwrap_or("(verified)")
}

fn trust() -> IdpTrust {
    IdpTrust::Certificates(vec![idp().cert.clone()])
}

#[test]
fn the_saml_core_refuses_each_shape_with_its_code() {
    let opts = VerifyOptions::default();
    let base = Template::default().signed_assertion(idp());
    // duplicate_element: two Status elements.
    let two = base.replacen(
        "<samlp:Status>",
        "<samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status><samlp:Status>",
        1,
    );
    assert_eq!(core_code(&two, &trust(), &opts), "duplicate_element");
    // signature_missing_element: a Signature holding SignedInfo only (no SignatureValue, no
    // KeyInfo after it).
    let i = base.find("<ds:SignatureValue>").expect("SignatureValue");
    let j = base.find("</ds:Signature>").expect("end");
    let stripped = format!("{}{}", &base[..i], &base[j..]);
    assert_eq!(
        core_code(&stripped, &trust(), &opts),
        "signature_missing_element"
    );
    // no_trusted_key: nothing configured.
    assert_eq!(
        core_code(&base, &IdpTrust::Certificates(vec![]), &opts),
        "no_trusted_key"
    );
    // key_algorithm_mismatch: an ECDSA signature, only an RSA key trusted.
    let ec = Template::default().signed_assertion(idp_ec());
    assert_eq!(core_code(&ec, &trust(), &opts), "key_algorithm_mismatch");
    // certificate_invalid: fingerprint trust, and KeyInfo holds no certificate that parses.
    let bad_cert = {
        let i = base.find("<ds:X509Certificate>").expect("cert") + "<ds:X509Certificate>".len();
        let j = base.find("</ds:X509Certificate>").expect("end");
        format!("{}AAAA{}", &base[..i], &base[j..])
    };
    let fp = IdpTrust::Fingerprint(
        Fingerprint::parse(&format!("sha256:{}", idp().cert.sha256_hex())).expect("fingerprint"),
    );
    assert_eq!(core_code(&bad_cert, &fp, &opts), "certificate_invalid");
    // too_many_nodes: more nodes than the limit, in a message under the size cap.
    let many = base.replacen(
        "<samlp:Status>",
        &format!(
            "<samlp:Extensions>{}</samlp:Extensions><samlp:Status>",
            "<a/>".repeat(Limits::default().max_nodes)
        ),
        1,
    );
    assert_eq!(core_code(&many, &trust(), &opts), "too_many_nodes");
    // decryption_failed: an EncryptedAssertion whose key is not for us.
    let encrypted = format!(
        "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" \
         ID=\"_r1\" Version=\"2.0\" IssueInstant=\"2026-01-01T00:00:00Z\"><saml:Issuer>{IDP}</saml:Issuer>\
         <samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status>\
         <saml:EncryptedAssertion><xenc:EncryptedData xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\">\
         <xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#aes128-cbc\"/>\
         <ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><xenc:EncryptedKey>\
         <xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p\"/>\
         <xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo>\
         <xenc:CipherData><xenc:CipherValue>AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA</xenc:CipherValue></xenc:CipherData>\
         </xenc:EncryptedData></saml:EncryptedAssertion></samlp:Response>",
        "A".repeat(344)
    );
    let signed =
        common::generate::sign_response_in(&encrypted, "_r1", idp(), idp().key.default_algorithm());
    let with_key = VerifyOptions {
        decryption_key: Some(generate::sp().key.clone()),
        ..VerifyOptions::default()
    };
    assert_eq!(core_code(&signed, &trust(), &with_key), "decryption_failed");
}

#[test]
fn a_logout_request_without_a_name_id_is_refused() {
    use ssogate::saml::logout::{LogoutBinding, verify_logout};
    let xml = format!(
        "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" \
         ID=\"_lr1\" Version=\"2.0\" IssueInstant=\"2026-01-01T00:00:00Z\" Destination=\"{HOST}/saml/slo\">\
         <saml:Issuer>{IDP}</saml:Issuer></samlp:LogoutRequest>"
    );
    let signed = common::generate::sign_element(&xml, "_lr1", idp(), idp().key.default_algorithm());
    let r = verify_logout(
        LogoutBinding::Post(signed.as_bytes()),
        &trust(),
        &VerifyOptions::default(),
    );
    assert_eq!(r.err().map(|e| e.code()), Some("name_id_missing"));
}

#[tokio::test]
async fn the_acs_refuses_each_misconfiguration_with_its_code() {
    let t = TestApp::new(false).await;
    let s: &dyn Store = t.store.as_ref();
    // issuer_missing: neither the Response nor the Assertion names an Issuer.
    let xml = Template {
        response_issuer: None,
        ..unsolicited()
    }
    .unsigned()
    .replace(&format!("<saml:Issuer>{IDP}</saml:Issuer>"), "");
    assert_eq!(reason(&t.acs(&xml, &[]).await), "issuer_missing");
    // form_malformed: SAMLResponse twice.
    let a = t
        .post(
            "/saml/acs",
            &[("SAMLResponse", "PHg+"), ("SAMLResponse", "PHg+")],
            &[],
        )
        .await;
    assert_eq!(reason(&a), "form_malformed");
    // saml_message_missing: a logout POST with neither message.
    let a = t.post("/saml/slo", &[("RelayState", "/")], &[]).await;
    assert_eq!(reason(&a), "saml_message_missing");
    // no_tenant_for_idp: an unsolicited response from an IdP no tenant uses.
    admin::idp_add(
        s,
        IdpInput {
            name: Some("spare".into()),
            entity_id: Some("https://spare.example/".into()),
            sso_url: Some("https://spare.example/sso".into()),
            username: Some(generate::USER_ATTR.into()),
            certificates: vec![String::from_utf8(idp().cert_pem.clone()).expect("pem")],
            ..Default::default()
        },
    )
    .await
    .expect("idp");
    let spare = Template {
        response_issuer: Some("https://spare.example/".into()),
        assertion_issuer: "https://spare.example/".into(),
        ..unsolicited()
    }
    .signed_assertion(idp());
    assert_eq!(reason(&t.acs(&spare, &[]).await), "no_tenant_for_idp");
    // in_response_to_other_idp: a request sent to our IdP, answered by the spare one.
    let (id, pending) = t.start_login("/login").await;
    let other = Template {
        response_issuer: Some("https://spare.example/".into()),
        assertion_issuer: "https://spare.example/".into(),
        ..answering(&id)
    }
    .signed_assertion(idp());
    assert_eq!(
        reason(&t.acs(&other, &[&pending]).await),
        "in_response_to_other_idp"
    );
    // tenant_missing: a (genuinely sealed) pending request for a tenant that is gone.
    let key = s
        .server_secret("pending-request-mac", b"unused")
        .await
        .expect("key");
    let ghost = PendingRequest {
        id: "_00000000000000000000000000000001".into(),
        sp_id: SpId(1),
        tenant_id: TenantId(999),
        idp_id: IdpId(1),
        relay_target: "/".into(),
        expires_at: generate::now().plus_secs(600),
    };
    let cookie = format!(
        "{}={}",
        ssogate::web::pending::cookie_name(&ghost.id).expect("name"),
        ghost.seal(&key)
    );
    let a = t
        .acs(
            &Template {
                assertion_id: "_ghost".into(),
                ..answering(&ghost.id)
            }
            .signed_assertion(idp()),
            &[&cookie],
        )
        .await;
    assert_eq!(reason(&a), "tenant_missing");
    // unknown_tenant: a path naming no tenant.
    assert_eq!(reason(&t.get("/t/nope/login", &[]).await), "unknown_tenant");
}

#[tokio::test]
async fn broken_stored_configuration_is_said_precisely() {
    let t = TestApp::new(false).await;
    let s: &dyn Store = t.store.as_ref();
    // idp_trust_unusable: a stored certificate that no longer parses.
    let mut i = admin::idp_find(s, "idp").await.expect("idp");
    i.trust = TrustConfig::Certificates(vec!["AAAA".into()]);
    s.idp_update(&i).await.expect("update");
    let a = t.acs(&unsolicited().signed_assertion(idp()), &[]).await;
    assert_eq!(
        (a.status, reason(&a)),
        (StatusCode::INTERNAL_SERVER_ERROR, "idp_trust_unusable")
    );
    // idp_missing: SSO on without an identity provider (as an older store could hold).
    let mut tenant = admin::tenant_find(s, "default").await.expect("tenant");
    tenant.idp_id = None;
    s.tenant_update(&tenant, &[]).await.expect("update");
    let a = t.get("/login", &[]).await;
    assert_eq!(
        (a.status, reason(&a)),
        (StatusCode::SERVICE_UNAVAILABLE, "idp_missing")
    );
}

#[tokio::test]
async fn unusable_sp_keys_and_certificates_are_said_precisely() {
    let t = TestApp::new(false).await;
    let s: &dyn Store = t.store.as_ref();
    // The one SP replaced by one whose stored certificate and key do not parse.
    let sp = s.sp_list().await.expect("sps").remove(0);
    assert!(s.sp_delete(sp.id).await.expect("delete"));
    s.sp_insert(ssogate::store::NewServiceProvider {
        entity_id: common::generate::SP.into(),
        host_url: HOST.into(),
        certificate_pem: Some(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
        ),
        private_key_pem: Some(ssogate::domain::Secret::new("not a key".into())),
    })
    .await
    .expect("sp");
    // sp_metadata: the stored certificate does not parse.
    let a = t.get("/saml/metadata", &[]).await;
    assert_eq!(reason(&a), "sp_metadata");
    // sp_key_unusable: the stored key cannot sign the AuthnRequest.
    let a = t.get("/login", &[]).await;
    assert_eq!(reason(&a), "sp_key_unusable");
}

#[tokio::test]
async fn a_response_for_another_sp_is_refused() {
    let t = TestApp::new(false).await;
    let s: &dyn Store = t.store.as_ref();
    admin::sp_add(
        s,
        &ssogate::rng::SeededRng::new(4),
        SpInput {
            host_url: "https://sp2.example.test".into(),
            ..Default::default()
        },
    )
    .await
    .expect("second sp");
    // Started at the first SP, posted to the second one's ACS with the same browser.
    let (id, pending) = t.start_login("/login").await;
    let xml = answering(&id).signed_assertion(idp());
    let body = serde_urlencoded::to_string([("SAMLResponse", b64(&xml))]).expect("form");
    let req = Request::post("https://sp2.example.test/saml/acs")
        .header(header::HOST, "sp2.example.test")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, &pending)
        .body(Body::from(body))
        .expect("request");
    let a = t.send(req).await;
    assert_eq!(reason(&a), "in_response_to_other_sp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_verification_pool_answers_503_at_once() {
    let t = TestApp::with_config(ssogate::config::Config {
        verify_workers: Some(1),
        verify_queue: 0,
        ..Default::default()
    })
    .await;
    // The one verifier is busy until we say so.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let guards = t.state.guards.clone();
    let busy = tokio::spawn(async move {
        guards
            .verify
            .run(move || {
                let _ = started_tx.send(());
                let _ = rx.recv();
            })
            .await
    });
    started_rx.await.expect("the verifier took the job");
    // Were the request queued, it would wait for the busy verifier, which waits for us.
    let a = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        t.acs(&unsolicited().signed_assertion(idp()), &[]),
    )
    .await
    .expect("answered without waiting for the busy verifier");
    assert_eq!(
        (a.status, reason(&a)),
        (StatusCode::SERVICE_UNAVAILABLE, "overloaded")
    );
    tx.send(()).expect("release");
    busy.await.expect("task").expect("ran");
}

#[tokio::test]
async fn a_database_that_is_down_is_store_unavailable() {
    let t = TestApp::new(false).await;
    t.store.close().await;
    let a = t.acs(&unsolicited().signed_assertion(idp()), &[]).await;
    assert_eq!(
        (a.status, reason(&a)),
        (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
    );
}
