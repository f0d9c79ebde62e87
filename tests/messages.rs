//! Metadata (IdP import, SP export), AuthnRequest, logout messages and the bindings.

mod common;

use std::path::Path;

use common::generate::{ACS, IDP, SP, idp, idp2, t0};
use ssogate::saml::authn_request::{AuthnRequest, NameIdPolicy, RequestedAuthnContext, request_id};
use ssogate::saml::bindings::{self, MessageKind, decode_redirect, encode_redirect};
use ssogate::saml::logout::{
    LogoutBinding, LogoutContext, LogoutMessage, LogoutRequestParams, LogoutResponseParams,
    verify_logout,
};
use ssogate::saml::metadata::idp::{BINDING_POST, BINDING_REDIRECT};
use ssogate::saml::metadata::{MetadataError, SpMetadata, parse_idp_metadata};
use ssogate::saml::response::{NameId, VerifyOptions};
use ssogate::saml::xml::{Document, Limits, ns};
use ssogate::saml::xmldsig::verify::{parse_signature, verify_enveloped};
use ssogate::saml::xmldsig::{AlgorithmPolicy, DigestAlgorithm, IdpTrust, SignatureAlgorithm};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/idp-metadata")
            .join(name),
    )
    .expect("fixture")
}

fn sha256s(d: &ssogate::saml::metadata::IdpDescriptor) -> Vec<String> {
    d.signing_certificates
        .iter()
        .map(|c| c.sha256_hex())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// IdP metadata import

#[test]
fn adfs_federation_metadata() {
    let d = parse_idp_metadata(&fixture("adfs.xml"), None).expect("ADFS metadata imports");
    assert_eq!(d.entity_id, "http://adfs.contoso.com/adfs/services/trust");
    assert_eq!(
        d.sso_location(BINDING_REDIRECT),
        Some("https://adfs.contoso.com/adfs/ls/")
    );
    assert_eq!(
        d.sso_location(BINDING_POST),
        Some("https://adfs.contoso.com/adfs/ls/")
    );
    // The encryption certificate and the RoleDescriptors' keys are not signing trust anchors.
    assert_eq!(
        sha256s(&d),
        vec![
            "17:F0:CF:B6:F7:5D:6D:01:64:11:B0:39:7F:07:C3:FC:6F:F8:65:66:9F:5A:E5:AF:28:4E:5E:F2:0C:44:99:B8"
        ]
    );
    assert_eq!(d.slo.len(), 2);
    assert_eq!(d.name_id_formats.len(), 3);
}

#[test]
fn entra_id_metadata_with_two_signing_certificates() {
    let d = parse_idp_metadata(&fixture("entra-id.xml"), None).expect("Entra metadata imports");
    assert_eq!(
        d.entity_id,
        "https://sts.windows.net/9188040d-6c67-4c5b-b112-36a304b66dad/"
    );
    assert_eq!(
        sha256s(&d),
        vec![
            "30:42:D4:59:C6:50:B5:7A:EF:5B:6F:9A:3A:E8:C9:CC:65:00:CA:DC:A8:C6:D3:E8:B2:E5:0E:51:3B:94:A7:C0",
            "B7:E9:9E:EF:54:23:8E:2A:9D:18:24:AE:35:1E:DA:FF:49:22:0E:93:3F:41:5B:11:04:75:E4:F9:CE:CE:AC:19",
        ]
    );
    assert_eq!(
        d.slo_endpoint(BINDING_REDIRECT)
            .map(|e| e.location.as_str()),
        Some("https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/saml2")
    );
    assert!(d.slo_endpoint(BINDING_POST).is_none());
}

#[test]
fn okta_metadata() {
    let d = parse_idp_metadata(&fixture("okta.xml"), None).expect("Okta metadata imports");
    assert_eq!(d.entity_id, "http://www.okta.com/exk1fcia6d6EMsf331d8");
    assert_eq!(
        sha256s(&d),
        vec![
            "34:33:96:D3:CB:D0:DA:FE:68:06:06:6A:2B:73:E2:A6:93:EE:2D:D2:5B:C8:20:C0:43:C8:90:A0:57:B2:1B:B4"
        ]
    );
    assert_eq!(
        d.sso_location(BINDING_POST),
        Some("https://contoso.okta.com/app/contoso_agentportal_1/exk1fcia6d6EMsf331d8/sso/saml")
    );
    assert!(!d.want_authn_requests_signed);
}

#[test]
fn keycloak_entities_descriptor() {
    let d = parse_idp_metadata(&fixture("keycloak.xml"), None).expect("Keycloak metadata imports");
    assert_eq!(d.entity_id, "https://keycloak.contoso.com/realms/agents");
    assert_eq!(
        sha256s(&d),
        vec![
            "3D:80:88:01:01:56:90:08:44:0B:72:BE:BD:81:5A:8A:8F:7B:21:14:11:AE:E8:7A:C6:0C:51:7B:DD:2E:0E:40"
        ]
    );
    assert!(d.want_authn_requests_signed);
    assert_eq!(
        d.sso.len(),
        4,
        "all bindings are listed; we use POST and Redirect"
    );
    assert_eq!(d.name_id_formats.len(), 4);
}

#[test]
fn shibboleth_metadata() {
    let d =
        parse_idp_metadata(&fixture("shibboleth.xml"), None).expect("Shibboleth metadata imports");
    assert_eq!(d.entity_id, "https://idp.contoso.edu/idp/shibboleth");
    assert_eq!(
        d.signing_certificates.len(),
        2,
        "two signing KeyDescriptors, the encryption one skipped"
    );
    assert_eq!(
        d.sso_location(BINDING_REDIRECT),
        Some("https://idp.contoso.edu/idp/profile/SAML2/Redirect/SSO")
    );
    assert_eq!(
        d.sso_location(BINDING_POST),
        Some("https://idp.contoso.edu/idp/profile/SAML2/POST/SSO")
    );
    assert_eq!(
        d.slo_endpoint(BINDING_POST).map(|e| e.location.as_str()),
        Some("https://idp.contoso.edu/idp/profile/SAML2/POST/SLO")
    );
}

#[test]
fn simplesamlphp_metadata() {
    let d = parse_idp_metadata(&fixture("simplesamlphp.xml"), None)
        .expect("SimpleSAMLphp metadata imports");
    assert_eq!(
        d.entity_id,
        "https://sso.contoso.com/simplesaml/saml2/idp/metadata.php"
    );
    assert_eq!(
        sha256s(&d),
        vec![
            "C6:E5:B4:16:E2:1D:5D:14:6A:49:FC:ED:AE:0D:1C:5D:6D:20:DB:23:AA:B1:A8:8D:46:D9:E9:54:61:56:15:3C"
        ]
    );
    assert_eq!(d.sso_location(BINDING_POST), None);
    assert_eq!(
        d.name_id_formats,
        vec!["urn:oasis:names:tc:SAML:2.0:nameid-format:transient"]
    );
}

#[test]
fn entities_descriptor_choice_lists_the_candidates() {
    let a = String::from_utf8(fixture("okta.xml")).expect("utf8");
    let b = String::from_utf8(fixture("simplesamlphp.xml")).expect("utf8");
    let strip = |s: &str| {
        s.replace("<?xml version=\"1.0\" encoding=\"UTF-8\"?>", "")
            .replace("<?xml version=\"1.0\"?>", "")
    };
    let both = format!(
        "<md:EntitiesDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\">{}{}</md:EntitiesDescriptor>",
        strip(&a),
        strip(&b)
    );
    match parse_idp_metadata(both.as_bytes(), None) {
        Err(MetadataError::Ambiguous { candidates }) => {
            assert_eq!(
                candidates,
                vec![
                    "http://www.okta.com/exk1fcia6d6EMsf331d8",
                    "https://sso.contoso.com/simplesaml/saml2/idp/metadata.php"
                ]
            );
        }
        other => panic!("expected Ambiguous, got {other:?}"),
    }
    let d = parse_idp_metadata(
        both.as_bytes(),
        Some("https://sso.contoso.com/simplesaml/saml2/idp/metadata.php"),
    )
    .expect("chosen");
    assert_eq!(
        d.sso_location(BINDING_REDIRECT),
        Some("https://sso.contoso.com/simplesaml/saml2/idp/SSOService.php")
    );
    let e =
        parse_idp_metadata(both.as_bytes(), Some("https://nope.example/")).expect_err("not found");
    assert!(
        e.to_string()
            .contains("http://www.okta.com/exk1fcia6d6EMsf331d8"),
        "{e}"
    );
}

#[test]
fn bad_metadata_says_which_element_and_what() {
    let okta = String::from_utf8(fixture("okta.xml")).expect("utf8");
    let cases: Vec<(String, &str, &str)> = vec![
        (
            "<md:SPSSODescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\"/>".into(),
            "not_metadata",
            "md:SPSSODescriptor",
        ),
        (
            okta.replace(" entityID=\"http://www.okta.com/exk1fcia6d6EMsf331d8\"", ""),
            "missing_attribute",
            "entityID",
        ),
        (
            okta.replace("use=\"signing\"", "use=\"encryption\""),
            "no_signing_certificate",
            "signing certificate",
        ),
        (
            okta.replace("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST", "urn:x")
                .replace(
                    "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
                    "urn:y",
                ),
            "no_sso_service",
            "SingleSignOnService",
        ),
        (
            okta.replacen("https://contoso.okta.com/app", "javascript:alert(1)//", 1),
            "bad_location",
            "javascript:",
        ),
        (
            okta.replacen("<ds:X509Certificate>", "<ds:X509Certificate>AAAA", 1),
            "bad_certificate",
            "KeyDescriptor #1",
        ),
        (
            okta.replace(
                "urn:oasis:names:tc:SAML:2.0:protocol\"",
                "urn:oasis:names:tc:SAML:1.1:protocol\"",
            ),
            "no_idp",
            "IDPSSODescriptor",
        ),
        (
            format!("<!DOCTYPE x [<!ENTITY e \"x\">]>{okta}"),
            "malformed_xml",
            "DOCTYPE",
        ),
        (
            okta[..okta.len() / 2].to_string(),
            "malformed_xml",
            "ends inside",
        ),
    ];
    for (xml, code, mentions) in cases {
        let e = parse_idp_metadata(xml.as_bytes(), None).expect_err(code);
        assert_eq!(e.code(), code, "{e}");
        assert!(e.to_string().contains(mentions), "{code}: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// SP metadata

#[test]
fn sp_metadata_is_deterministic_and_complete() {
    let md = SpMetadata {
        next_certificate: None,
        entity_id: "https://cc.example.com/agentportal",
        acs_url: "https://cc.example.com/agentportal/saml/acs",
        slo_url: Some("https://cc.example.com/agentportal/saml/slo"),
        certificate: None,
        name_id_formats: &[],
        authn_requests_signed: false,
        want_assertions_signed: true,
    };
    let expected = r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://cc.example.com/agentportal">
  <md:SPSSODescriptor AuthnRequestsSigned="false" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://cc.example.com/agentportal/saml/slo"/>
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://cc.example.com/agentportal/saml/slo"/>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified</md:NameIDFormat>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://cc.example.com/agentportal/saml/acs" index="0" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"#;
    // The exact document (so also: the same every time, byte for byte).
    assert_eq!(md.to_xml(), expected);

    // With a certificate: one signing and one encryption KeyDescriptor, AuthnRequestsSigned.
    let cert = common::generate::sp().cert.clone();
    let signed = SpMetadata {
        next_certificate: None,
        certificate: Some(&cert),
        authn_requests_signed: true,
        ..md.clone()
    }
    .to_xml();
    assert!(signed.contains("AuthnRequestsSigned=\"true\""));
    assert_eq!(
        signed.matches("<md:KeyDescriptor use=\"signing\">").count(),
        1
    );
    assert_eq!(
        signed
            .matches("<md:KeyDescriptor use=\"encryption\">")
            .count(),
        1
    );
    assert_eq!(signed.matches(&cert.base64()).count(), 2);
    // AuthnRequestsSigned is never claimed without a key.
    assert!(
        SpMetadata {
            next_certificate: None,
            authn_requests_signed: true,
            ..md.clone()
        }
        .to_xml()
        .contains("AuthnRequestsSigned=\"false\"")
    );
    // It is well-formed SAML metadata, and special characters are escaped.
    let odd = SpMetadata {
        next_certificate: None,
        entity_id: "https://x.example/?a=1&b=\"2\"",
        ..md
    }
    .to_xml();
    let doc = Document::parse(odd.as_bytes(), &Limits::default()).expect("well-formed");
    assert_eq!(
        doc.attr(doc.root(), "entityID"),
        Some("https://x.example/?a=1&b=\"2\"")
    );
    assert!(doc.is(doc.root(), ns::MD, "EntityDescriptor"));
}

// ---------------------------------------------------------------------------------------------
// AuthnRequest and the Redirect binding

fn authn<'a>(id: &'a str) -> AuthnRequest<'a> {
    AuthnRequest {
        id,
        issue_instant: t0(),
        destination: "https://idp.example.test/sso",
        acs_url: ACS,
        sp_entity_id: SP,
        force_authn: false,
        is_passive: false,
        name_id_policy: None,
        requested_authn_context: None,
    }
}

#[test]
fn authn_request_defaults_omit_requested_authn_context() {
    let id = request_id([7u8; 16]);
    assert_eq!(id, "_07070707070707070707070707070707");
    let xml = authn(&id).build().xml;
    assert_eq!(
        xml,
        "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" \
         ID=\"_07070707070707070707070707070707\" Version=\"2.0\" IssueInstant=\"2026-01-01T00:00:00Z\" Destination=\"https://idp.example.test/sso\" \
         ProtocolBinding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" AssertionConsumerServiceURL=\"https://sp.example.test/saml/acs\">\
         <saml:Issuer>https://sp.example.test/</saml:Issuer></samlp:AuthnRequest>"
    );
    let full = AuthnRequest {
        force_authn: true,
        name_id_policy: Some(NameIdPolicy {
            format: Some("urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified".into()),
            allow_create: true,
        }),
        requested_authn_context: Some(RequestedAuthnContext {
            comparison: "minimum".into(),
            class_refs: vec![
                "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport".into(),
            ],
        }),
        ..authn(&id)
    }
    .build()
    .xml;
    let doc = Document::parse(full.as_bytes(), &Limits::default()).expect("well-formed");
    assert_eq!(doc.attr(doc.root(), "ForceAuthn"), Some("true"));
    let ctx = doc
        .children_named(doc.root(), ns::SAMLP, "RequestedAuthnContext")
        .next()
        .expect("context");
    assert_eq!(doc.attr(ctx, "Comparison"), Some("minimum"));
    assert!(
        doc.children_named(doc.root(), ns::SAMLP, "NameIDPolicy")
            .next()
            .is_some()
    );
}

#[test]
fn signed_post_authn_request_verifies() {
    let id = request_id([1u8; 16]);
    let built = authn(&id).build();
    let xml = built
        .signed(
            &common::generate::sp().key,
            SignatureAlgorithm::RSA_SHA256_ALG,
            Some(&common::generate::sp().cert),
        )
        .expect("signs");
    let doc = Document::parse(xml.as_bytes(), &Limits::default()).expect("parses");
    let sig = doc.find_all(ns::DS, "Signature").next().expect("signature");
    assert_eq!(doc.parent(sig), Some(doc.root()));
    let spec = parse_signature(&doc, sig, AlgorithmPolicy::default()).expect("shape");
    let trust = IdpTrust::Certificates(vec![common::generate::sp().cert.clone()]);
    verify_enveloped(
        &doc,
        &spec,
        doc.root(),
        &trust,
        "AuthnRequest",
        &mut Vec::new(),
    )
    .expect("verifies");
}

#[test]
fn redirect_round_trip_and_query_signature() {
    let id = request_id([2u8; 16]);
    let xml = authn(&id).build().xml;
    let k = idp();
    let url = encode_redirect(
        "https://idp.example.test/sso?tenant=a",
        MessageKind::Request,
        &xml,
        Some("/portal/home?x=1&y=2"),
        Some((&k.key, SignatureAlgorithm::RSA_SHA256_ALG)),
    )
    .expect("encodes");
    assert!(
        url.starts_with("https://idp.example.test/sso?tenant=a&SAMLRequest="),
        "{url}"
    );
    let query = url.split_once('?').expect("query").1;
    let msg =
        decode_redirect(query, &Limits::default(), AlgorithmPolicy::default()).expect("decodes");
    assert_eq!(msg.kind, MessageKind::Request);
    assert_eq!(String::from_utf8(msg.xml.clone()).expect("utf8"), xml);
    assert_eq!(msg.relay_state.as_deref(), Some("/portal/home?x=1&y=2"));
    let trust = IdpTrust::Certificates(vec![k.cert.clone()]);
    msg.verify_signature(&trust).expect("query signature");
    // Wrong key; tampered RelayState; fingerprint trust (no certificate in a Redirect message).
    assert_eq!(
        msg.verify_signature(&IdpTrust::Certificates(vec![idp2().cert.clone()]))
            .map_err(|e| e.code()),
        Err("signature_invalid")
    );
    let tampered = query.replace("RelayState=%2Fportal", "RelayState=%2Fevil");
    let m2 = decode_redirect(&tampered, &Limits::default(), AlgorithmPolicy::default())
        .expect("decodes");
    assert_eq!(
        m2.verify_signature(&trust).map_err(|e| e.code()),
        Err("signature_invalid")
    );
    let fp = IdpTrust::Fingerprint(
        ssogate::saml::xmldsig::Fingerprint::new(
            DigestAlgorithm::Sha256,
            k.cert.fingerprint(DigestAlgorithm::Sha256),
        )
        .expect("fp"),
    );
    assert_eq!(
        msg.verify_signature(&fp).map_err(|e| e.code()),
        Err("fingerprint_no_certificate")
    );
}

/// ADFS and Entra percent-encode in lower case and sign their own encoding: the signature is
/// over the raw query string as received.
#[test]
fn lower_case_percent_encoding_is_verified_as_received() {
    let k = idp();
    let xml = "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\"/>";
    let url = encode_redirect(
        "https://sp.example.test/slo",
        MessageKind::Request,
        xml,
        Some("a/b c"),
        None,
    )
    .expect("encodes");
    let unsigned = url.split_once('?').expect("q").1;
    // Re-encode the way ADFS does: lower-case hex digits.
    let lower: String = {
        let mut out = String::new();
        let mut chars = unsigned.chars().peekable();
        while let Some(c) = chars.next() {
            out.push(c);
            if c == '%' {
                for _ in 0..2 {
                    if let Some(h) = chars.next() {
                        out.push(h.to_ascii_lowercase());
                    }
                }
            }
        }
        out
    };
    assert_ne!(lower, unsigned, "the encoding really changed");
    let sig_alg = "SigAlg=http%3a%2f%2fwww.w3.org%2f2001%2f04%2fxmldsig-more%23rsa-sha256";
    let signed_part = format!("{lower}&{sig_alg}");
    let sig = k
        .key
        .sign(SignatureAlgorithm::RSA_SHA256_ALG, signed_part.as_bytes())
        .expect("sign");
    let query = format!(
        "{signed_part}&Signature={}",
        percent_encoding::utf8_percent_encode(
            &common::generate::b64_raw(&sig),
            percent_encoding::NON_ALPHANUMERIC
        )
    );
    let msg =
        decode_redirect(&query, &Limits::default(), AlgorithmPolicy::default()).expect("decodes");
    msg.verify_signature(&IdpTrust::Certificates(vec![k.cert.clone()]))
        .expect("lower-case encoding verifies");
    assert_eq!(msg.relay_state.as_deref(), Some("a/b c"));
}

#[test]
fn redirect_parameter_abuse_is_an_error_never_a_panic() {
    let k = idp();
    let url = encode_redirect(
        "https://x.example/",
        MessageKind::Request,
        "<a/>",
        None,
        Some((&k.key, SignatureAlgorithm::RSA_SHA256_ALG)),
    )
    .expect("enc");
    let q = url.split_once('?').expect("q").1.to_string();
    let (msg_part, rest) = q.split_once('&').expect("parts");
    let sig_alg = rest
        .split('&')
        .find(|p| p.starts_with("SigAlg="))
        .expect("sigalg");
    let sig = rest
        .split('&')
        .find(|p| p.starts_with("Signature="))
        .expect("sig");
    let cases = [
        (
            format!("{msg_part}&{msg_part}&{sig_alg}&{sig}"),
            "bad_query",
        ),
        (format!("{msg_part}&{sig_alg}&{sig}&{sig}"), "bad_query"),
        (format!("{msg_part}&{sig}"), "bad_query"),
        (format!("{msg_part}&{sig_alg}"), "bad_query"),
        (format!("{msg_part}&SAMLResponse=x"), "bad_query"),
        ("RelayState=x".to_string(), "bad_query"),
        ("SAMLRequest=%%%".to_string(), "bad_base64"),
        ("SAMLRequest=AAAA".to_string(), "bad_deflate"),
    ];
    for (query, code) in cases {
        let e = decode_redirect(&query, &Limits::default(), AlgorithmPolicy::default())
            .expect_err(&query);
        assert_eq!(e.code(), code, "{query}: {e}");
    }
    // Unknown or weak SigAlg: decoded, but the signature is refused with the reason.
    let weak = q.replace("rsa-sha256", "rsa-sha1");
    let m =
        decode_redirect(&weak, &Limits::default(), AlgorithmPolicy::default()).expect("decodes");
    assert_eq!(
        m.verify_signature(&IdpTrust::Certificates(vec![k.cert.clone()]))
            .map_err(|e| e.code()),
        Err("algorithm_forbidden")
    );
    // An unsigned message says so when a signature is required.
    let plain =
        decode_redirect(msg_part, &Limits::default(), AlgorithmPolicy::default()).expect("decodes");
    assert!(!plain.is_signed());
    assert_eq!(
        plain
            .verify_signature(&IdpTrust::Certificates(vec![k.cert.clone()]))
            .map_err(|e| e.code()),
        Err("unsigned")
    );
}

#[test]
fn inflate_bomb_is_bounded() {
    use std::io::Write as _;
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&vec![b'<'; 64 << 20]).expect("deflate");
    let bomb = enc.finish().expect("finish");
    assert!(
        bomb.len() < 200_000,
        "a small payload: {} bytes",
        bomb.len()
    );
    let q = format!(
        "SAMLRequest={}",
        percent_encoding::utf8_percent_encode(
            &common::generate::b64_raw(&bomb),
            percent_encoding::NON_ALPHANUMERIC
        )
    );
    let e = decode_redirect(
        &q,
        &Limits {
            max_bytes: 1 << 20,
            ..Limits::default()
        },
        AlgorithmPolicy::default(),
    )
    .expect_err("bomb");
    assert_eq!(e.code(), "bad_deflate");
    assert!(e.to_string().contains("more than"), "{e}");
}

#[test]
fn post_form_escapes_and_encodes() {
    let html = bindings::post_form(
        "https://idp.example.test/sso?a=1&b=\"2\"",
        MessageKind::Response,
        "<x/>",
        Some("\"><script>"),
    );
    assert!(html.contains("action=\"https://idp.example.test/sso?a=1&amp;b=&quot;2&quot;\""));
    assert!(html.contains("name=\"SAMLResponse\" value=\"PHgvPg==\""));
    assert!(html.contains("value=\"&quot;&gt;&lt;script&gt;\""));
    assert!(!html.contains("<script>"));
}

// ---------------------------------------------------------------------------------------------
// Single logout

fn name_id() -> NameId {
    NameId {
        value: "EXAMPLE\\jdoe".into(),
        format: Some("urn:oasis:names:tc:SAML:1.1:nameid-format:WindowsDomainQualifiedName".into()),
        name_qualifier: Some(IDP.into()),
        sp_name_qualifier: Some(SP.into()),
    }
}

const SLO: &str = "https://sp.example.test/saml/slo";

fn logout_ctx() -> LogoutContext<'static> {
    LogoutContext {
        idp_entity_id: IDP,
        slo_url: SLO,
        clock_skew_secs: 180,
    }
}

/// A LogoutRequest as the IdP would send it (we play the IdP with its key).
fn idp_logout_request(destination: &str) -> ssogate::saml::authn_request::BuiltMessage {
    let n = name_id();
    LogoutRequestParams {
        id: "_lr1",
        issue_instant: t0(),
        destination,
        sp_entity_id: IDP,
        name_id: &n,
        session_index: Some("_sess-1"),
        not_on_or_after: Some(t0().plus_secs(300)),
    }
    .build()
}

#[test]
fn logout_request_post_round_trip() {
    let k = idp();
    let trust = IdpTrust::Certificates(vec![k.cert.clone()]);
    let signed = idp_logout_request(SLO)
        .signed(&k.key, SignatureAlgorithm::RSA_SHA256_ALG, Some(&k.cert))
        .expect("sign");
    let got = verify_logout(
        LogoutBinding::Post(signed.as_bytes()),
        &trust,
        &VerifyOptions::default(),
    )
    .expect("verifies");
    let LogoutMessage::Request(r) = got else {
        panic!("a request")
    };
    // NameID with its Format and qualifiers, and SessionIndex, come back exactly.
    assert_eq!(r.name_id, name_id());
    assert_eq!(r.session_indexes, vec!["_sess-1"]);
    r.check(&logout_ctx(), t0().plus_secs(10)).expect("checks");
    assert_eq!(
        r.check(&logout_ctx(), t0().plus_secs(300 + 180))
            .map_err(|e| e.code()),
        Err("expired")
    );
    let other = LogoutContext {
        slo_url: "https://sp.example.test/other",
        ..logout_ctx()
    };
    assert_eq!(
        r.check(&other, t0()).map_err(|e| e.code()),
        Err("destination_mismatch")
    );
    let other_idp = LogoutContext {
        idp_entity_id: "https://evil.example/",
        ..logout_ctx()
    };
    assert_eq!(
        r.check(&other_idp, t0()).map_err(|e| e.code()),
        Err("issuer_mismatch")
    );

    // Unsigned, signed by someone else, tampered after signing: refused.
    let unsigned = idp_logout_request(SLO).xml;
    let e = verify_logout(
        LogoutBinding::Post(unsigned.as_bytes()),
        &trust,
        &VerifyOptions::default(),
    )
    .expect_err("unsigned");
    assert_eq!(e.code(), "unsigned");
    let forged = idp_logout_request(SLO)
        .signed(
            &idp2().key,
            SignatureAlgorithm::RSA_SHA256_ALG,
            Some(&idp2().cert),
        )
        .expect("sign");
    assert_eq!(
        verify_logout(
            LogoutBinding::Post(forged.as_bytes()),
            &trust,
            &VerifyOptions::default()
        )
        .map_err(|e| e.code())
        .err(),
        Some("signature_invalid")
    );
    let tampered = signed.replace("EXAMPLE\\jdoe", "EXAMPLE\\boss");
    assert_eq!(
        verify_logout(
            LogoutBinding::Post(tampered.as_bytes()),
            &trust,
            &VerifyOptions::default()
        )
        .map_err(|e| e.code())
        .err(),
        Some("digest_mismatch")
    );
}

#[test]
fn logout_request_redirect_round_trip() {
    let k = idp();
    let trust = IdpTrust::Certificates(vec![k.cert.clone()]);
    let xml = idp_logout_request(SLO).xml;
    let url = encode_redirect(
        SLO,
        MessageKind::Request,
        &xml,
        Some("rs"),
        Some((&k.key, SignatureAlgorithm::RSA_SHA256_ALG)),
    )
    .expect("encode");
    let msg = decode_redirect(
        url.split_once('?').expect("q").1,
        &Limits::default(),
        AlgorithmPolicy::default(),
    )
    .expect("decode");
    let got = verify_logout(
        LogoutBinding::Redirect(&msg),
        &trust,
        &VerifyOptions::default(),
    )
    .expect("verifies");
    assert!(matches!(got, LogoutMessage::Request(ref r) if r.name_id == name_id()));
    // Without the query signature: refused.
    let unsigned_url =
        encode_redirect(SLO, MessageKind::Request, &xml, None, None).expect("encode");
    let m = decode_redirect(
        unsigned_url.split_once('?').expect("q").1,
        &Limits::default(),
        AlgorithmPolicy::default(),
    )
    .expect("decode");
    assert_eq!(
        verify_logout(
            LogoutBinding::Redirect(&m),
            &trust,
            &VerifyOptions::default()
        )
        .map_err(|e| e.code())
        .err(),
        Some("unsigned")
    );
}

#[test]
fn logout_response_checks_in_response_to_and_status() {
    let k = idp();
    let trust = IdpTrust::Certificates(vec![k.cert.clone()]);
    let build = |status: &str, irt: &str| {
        LogoutResponseParams {
            id: "_lresp",
            issue_instant: t0(),
            destination: SLO,
            sp_entity_id: IDP,
            in_response_to: irt,
            status,
        }
        .build()
        .signed(&k.key, SignatureAlgorithm::RSA_SHA256_ALG, Some(&k.cert))
        .expect("sign")
    };
    let ok = build("urn:oasis:names:tc:SAML:2.0:status:Success", "_our-request");
    let LogoutMessage::Response(r) = verify_logout(
        LogoutBinding::Post(ok.as_bytes()),
        &trust,
        &VerifyOptions::default(),
    )
    .expect("verifies") else {
        panic!("a response")
    };
    r.check(&logout_ctx(), "_our-request").expect("ours");
    assert_eq!(
        r.check(&logout_ctx(), "_another").map_err(|e| e.code()),
        Err("in_response_to_mismatch")
    );
    let failed = build(
        "urn:oasis:names:tc:SAML:2.0:status:Responder",
        "_our-request",
    );
    let LogoutMessage::Response(f) = verify_logout(
        LogoutBinding::Post(failed.as_bytes()),
        &trust,
        &VerifyOptions::default(),
    )
    .expect("verifies") else {
        panic!("a response")
    };
    assert_eq!(
        f.check(&logout_ctx(), "_our-request").map_err(|e| e.code()),
        Err("status_not_success")
    );
}

#[test]
fn our_logout_request_echoes_the_login() {
    // What we send to the IdP (signed: ADFS requires it): the NameID with its qualifiers and the
    // SessionIndex of the login.
    let n = name_id();
    let built = LogoutRequestParams {
        id: "_ours",
        issue_instant: t0(),
        destination: "https://idp.example.test/slo",
        sp_entity_id: SP,
        name_id: &n,
        session_index: Some("_sess-9"),
        not_on_or_after: None,
    }
    .build();
    let sp = common::generate::sp();
    let signed = built
        .signed(&sp.key, SignatureAlgorithm::RSA_SHA256_ALG, Some(&sp.cert))
        .expect("sign");
    let trust = IdpTrust::Certificates(vec![sp.cert.clone()]);
    let LogoutMessage::Request(r) = verify_logout(
        LogoutBinding::Post(signed.as_bytes()),
        &trust,
        &VerifyOptions::default(),
    )
    .expect("verifies") else {
        panic!("a request")
    };
    assert_eq!(r.name_id, n);
    assert_eq!(r.session_indexes, vec!["_sess-9"]);
    assert_eq!(r.issuer, SP);
}

#[test]
fn post_value_size_cap_matches_the_xml_cap() {
    use ssogate::saml::bindings::decode_post;
    let limits = Limits {
        max_bytes: 30_000,
        ..Limits::default()
    };
    // XML just under the cap, base64 wrapped at 64 columns (as some IdPs post it): accepted.
    let xml = format!("<a>{}</a>", "x".repeat(30_000 - 7));
    let b64 = common::generate::b64_raw(xml.as_bytes());
    let wrapped: String = b64
        .as_bytes()
        .chunks(64)
        .map(|c| format!("{}\r\n", String::from_utf8_lossy(c)))
        .collect();
    assert_eq!(
        decode_post(wrapped.as_bytes(), &limits).expect("within the cap"),
        xml.as_bytes()
    );
    // Far over the cap: refused before decoding, as too large.
    let big = common::generate::b64_raw(&vec![b'x'; 60_000]);
    assert_eq!(
        decode_post(big.as_bytes(), &limits)
            .expect_err("too large")
            .code(),
        "too_large"
    );
}
