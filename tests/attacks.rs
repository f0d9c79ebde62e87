//! The SAML attack catalogue (XML signature wrapping, stripping, injection, key and algorithm
//! confusion, references, resource limits, every protocol check), built from our own baseline responses
//! signed at test time with throw-away keys (`common::generate`). Each test asserts the exact
//! reason code: a test that failed for another reason would prove nothing.

mod common;

use std::io::Read as _;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::generate::*;
use ssogate::saml::replay::InMemoryReplayCache;
use ssogate::saml::response::{
    ExpectedContext, Solicitation, UnverifiedResponse, UsernameSource, VerifyOptions,
};
use ssogate::saml::xmldsig::{
    AlgorithmPolicy, DigestAlgorithm, Fingerprint, IdpTrust, SignatureAlgorithm,
};
use ssogate::saml::{Assertion, Error, UnixTime};

fn trust() -> IdpTrust {
    IdpTrust::Certificates(vec![idp().cert.clone()])
}

fn ctx() -> ExpectedContext<'static> {
    ExpectedContext {
        sp_entity_id: SP,
        acs_url: ACS,
        idp_entity_id: IDP,
        solicitation: Solicitation::Request(REQ),
        clock_skew_secs: 180,
        username: UsernameSource::Attribute(USER_ATTR),
    }
}

fn check_with(
    xml: &str,
    trust: &IdpTrust,
    opts: &VerifyOptions,
    ctx: &ExpectedContext<'_>,
    now: UnixTime,
) -> Result<Assertion, Error> {
    // Every message checked is a case of the suite's count.
    common::record_cases("attacks", 1);
    let v = UnverifiedResponse::parse(xml.as_bytes(), &opts.limits)?.verify(trust, opts)?;
    v.accept(ctx, now)
        .and_then(|u| u.redeem(&InMemoryReplayCache::new(), now))
}

fn check(xml: &str) -> Result<Assertion, Error> {
    check_with(xml, &trust(), &VerifyOptions::default(), &ctx(), now())
}

#[track_caller]
fn refused(xml: &str, code: &str) {
    match check(xml) {
        Ok(a) => panic!("accepted (username {:?}); expected {code}", a.username),
        Err(e) => assert_eq!(e.code(), code, "refused for another reason: {e}"),
    }
}

/// Refused, by one of several defences that each suffice (the first that fires wins).
#[track_caller]
fn refused_any(xml: &str, codes: &[&str]) {
    match check(xml) {
        Ok(a) => panic!(
            "accepted (username {:?}); expected one of {codes:?}",
            a.username
        ),
        Err(e) => assert!(
            codes.contains(&e.code()),
            "refused with {} ({e}), expected one of {codes:?}",
            e.code()
        ),
    }
}

#[track_caller]
fn accepted(xml: &str) -> Assertion {
    check(xml).unwrap_or_else(|e| panic!("refused: {} ({e})", e.code()))
}

// ---------------------------------------------------------------------------------------------
// Baselines

#[test]
fn baselines_are_accepted() {
    let t = Template::default();
    for xml in [
        t.signed_assertion(idp()),
        t.signed_response(idp()),
        t.signed_both(idp()),
    ] {
        let a = accepted(&xml);
        assert_eq!(a.username, "EXAMPLE\\jdoe");
        assert_eq!(
            a.name_id.as_ref().map(|n| n.value.as_str()),
            Some("jdoe@example.com")
        );
        assert_eq!(a.session_index.as_deref(), Some("_sess-1"));
        assert_eq!(a.attributes.get("groups"), vec!["agents", "supervisors"]);
    }
    // EC keys, and the other RSA digests.
    let ec = IdpTrust::Certificates(vec![idp_ec().cert.clone()]);
    check_with(
        &t.signed_assertion(idp_ec()),
        &ec,
        &VerifyOptions::default(),
        &ctx(),
        now(),
    )
    .expect("ECDSA-SHA256");
    for d in [DigestAlgorithm::Sha384, DigestAlgorithm::Sha512] {
        let alg = SignatureAlgorithm {
            key: ssogate::saml::xmldsig::KeyKind::Rsa,
            digest: d,
        };
        accepted(&sign_element(&t.unsigned(), &t.assertion_id, idp(), alg));
    }
}

#[test]
fn key_rollover_accepts_either_configured_certificate() {
    let t = Template::default();
    let both = IdpTrust::Certificates(vec![idp2().cert.clone(), idp().cert.clone()]);
    check_with(
        &t.signed_assertion(idp()),
        &both,
        &VerifyOptions::default(),
        &ctx(),
        now(),
    )
    .expect("old key");
    check_with(
        &t.signed_assertion(idp2()),
        &both,
        &VerifyOptions::default(),
        &ctx(),
        now(),
    )
    .expect("new key");
}

// ---------------------------------------------------------------------------------------------
// 1.A Signature presence and coverage

#[test]
fn a1_a3_stripped_signatures() {
    let t = Template::default();
    refused(&t.unsigned(), "unsigned");
    // Strip the signature from a signed document and change the user.
    let signed = t.signed_assertion(idp());
    let start = signed.find("<ds:Signature").expect("sig");
    let end = signed.find("</ds:Signature>").expect("sig end") + "</ds:Signature>".len();
    let stripped = format!("{}{}", &signed[..start], &signed[end..])
        .replace("EXAMPLE\\jdoe", "EXAMPLE\\admin");
    refused(&stripped, "unsigned");
}

#[test]
fn a4_unsigned_envelope_is_only_ever_a_reason_to_refuse() {
    let t = Template::default();
    let signed = t.signed_assertion(idp());
    // Changing the unsigned Response's fields never lets anything through that the signed
    // Assertion does not say, and a wrong Destination/Issuer/Status still refuses.
    refused(
        &replace_once(
            &signed,
            &format!("Destination=\"{ACS}\""),
            "Destination=\"https://evil.example/acs\"",
        ),
        "destination_mismatch",
    );
    refused(
        &replace_once(
            &signed,
            &format!("<saml:Issuer>{IDP}</saml:Issuer><samlp:Status>"),
            "<saml:Issuer>https://evil.example/</saml:Issuer><samlp:Status>",
        ),
        "issuer_mismatch",
    );
    refused(
        &replace_once(
            &signed,
            &format!("InResponseTo=\"{REQ}\">"),
            "InResponseTo=\"_other\">",
        ),
        "in_response_to_mismatch",
    );
}

#[test]
fn a5_response_signature_covers_the_assertion() {
    let t = Template::default();
    let signed = t.signed_response(idp());
    refused(
        &replace_once(&signed, "EXAMPLE\\jdoe", "EXAMPLE\\admin"),
        "digest_mismatch",
    );
}

#[test]
fn a7_signature_over_another_element_is_not_a_signature_of_ours() {
    // A signed element that is not the Response or the consumed Assertion (here: Extensions).
    let t = Template::default();
    let ext = "<samlp:Extensions ID=\"_ext1\"><saml:Issuer>x</saml:Issuer></samlp:Extensions>";
    let xml = replace_once(
        &t.unsigned(),
        "<samlp:Status>",
        &format!("{ext}<samlp:Status>"),
    );
    let signed = sign_element(&xml, "_ext1", idp(), SignatureAlgorithm::RSA_SHA256_ALG);
    refused(&signed, "signature_misplaced");
}

#[test]
fn a8_a9_reference_uri_empty_or_several_references() {
    let t = Template::default();
    let signed = t.signed_assertion(idp());
    refused(
        &replace_once(&signed, &format!("URI=\"#{}\"", t.assertion_id), "URI=\"\""),
        "reference_uri_forbidden",
    );
    let two = replace_once(
        &signed,
        "</ds:Reference>",
        &format!(
            "</ds:Reference><ds:Reference URI=\"#{}\"><ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/><ds:DigestValue>AAAA</ds:DigestValue></ds:Reference>",
            t.response_id
        ),
    );
    refused(&two, "reference_count");
}

#[test]
fn a10_comment_inside_digest_value_changes_nothing() {
    let t = Template::default();
    let signed = t.signed_assertion(idp());
    let i = signed.find("<ds:DigestValue>").expect("dv") + "<ds:DigestValue>".len();
    let with_comment = format!("{}<!--x-->{}", &signed[..i + 4], &signed[i + 4..]);
    // SignedInfo is canonicalised without comments and DigestValue is read whole: the comment
    // changes neither what is verified nor what is used (xml-crypto read only the first text node).
    assert_eq!(accepted(&with_comment).username, "EXAMPLE\\jdoe");
    // A second DigestValue text run that changes the value does break the signature.
    let changed = format!("{}<!--x-->AAAA{}", &signed[..i + 4], &signed[i + 4..]);
    refused_any(&changed, &["signature_invalid", "signature_bad_value"]);
}

#[test]
fn a11_signature_must_be_enveloped_in_place() {
    let t = Template::default();
    let signed = t.signed_assertion(idp());
    let start = signed.find("<ds:Signature").expect("sig");
    let end = signed.find("</ds:Signature>").expect("end") + "</ds:Signature>".len();
    let sig = &signed[start..end];
    let without = format!("{}{}", &signed[..start], &signed[end..]);
    // Moved into the Response (same URI), and moved to the end of the Assertion.
    refused(
        &replace_once(&without, "<samlp:Status>", &format!("{sig}<samlp:Status>")),
        "reference_not_enveloping",
    );
    refused(
        &replace_once(
            &without,
            "</saml:Assertion>",
            &format!("{sig}</saml:Assertion>"),
        ),
        "signature_misplaced",
    );
}

#[test]
fn a12_object_and_manifest_are_refused() {
    let t = Template::default();
    let signed = t.signed_assertion(idp());
    let obj = replace_once(
        &signed,
        "</ds:Signature>",
        &format!(
            "<ds:Object>{}</ds:Object></ds:Signature>",
            t.assertion_xml().replace(&t.assertion_id, "_obj")
        ),
    );
    // The copy inside ds:Object is a second assertion as well; either defence is a refusal.
    assert!(matches!(
        check(&obj).map_err(|e| e.code()),
        Err("multiple_assertions" | "signature_unexpected_element")
    ));
    let manifest = replace_once(
        &signed,
        "</ds:Signature>",
        "<ds:Object><ds:Manifest><ds:Reference URI=\"#x\"/></ds:Manifest></ds:Object></ds:Signature>",
    );
    refused(&manifest, "signature_unexpected_element");
}

// ---------------------------------------------------------------------------------------------
// 1.B Signature wrapping (mutations as SAMLRaider implements them)

fn evil(t: &Template) -> Template {
    let mut e = t.clone();
    e.attributes[0].1 = vec!["EXAMPLE\\admin".into()];
    e.name_id = "admin@example.com".into();
    e
}

#[test]
fn xsw1_xsw2_response_wrapping() {
    let t = Template::default();
    let signed = t.signed_response(idp());
    let sig_start = signed.find("<ds:Signature").expect("sig");
    let sig_end = signed.find("</ds:Signature>").expect("end");
    let original_without_sig = format!(
        "{}{}",
        &signed[..sig_start],
        &signed[sig_end + "</ds:Signature>".len()..]
    );
    let mut e = evil(&t);
    e.response_id = "_evil_response_ID".into();
    let evil_unsigned = e.unsigned();
    // XSW1: the original (signature removed) inside the signature of an evil Response.
    let sig = &signed[sig_start..sig_end];
    let xsw1 = replace_once(
        &evil_unsigned,
        "<samlp:Status>",
        &format!("{sig}{original_without_sig}</ds:Signature><samlp:Status>"),
    );
    refused_any(
        &xsw1,
        &[
            "duplicate_id",
            "reference_not_enveloping",
            "multiple_assertions",
            "signature_misplaced",
        ],
    );
    // XSW2: the original as a sibling before the signature.
    let xsw2 = replace_once(
        &evil_unsigned,
        "<samlp:Status>",
        &format!("{original_without_sig}{sig}</ds:Signature><samlp:Status>"),
    );
    refused_any(
        &xsw2,
        &[
            "duplicate_id",
            "reference_not_enveloping",
            "multiple_assertions",
            "signature_misplaced",
        ],
    );
}

#[test]
fn xsw3_to_xsw8_assertion_wrapping() {
    let t = Template::default();
    let signed = t.signed_assertion(idp());
    let a_start = signed.find("<saml:Assertion").expect("a");
    let a_end = signed.find("</saml:Assertion>").expect("a end") + "</saml:Assertion>".len();
    let signed_a = &signed[a_start..a_end];
    let mut e = evil(&t);
    e.assertion_id = "_evil_assertion_ID".into();
    let evil_a = e.assertion_xml();

    // XSW3: evil assertion inserted before the signed one.
    refused(
        &replace_once(
            &signed,
            "<saml:Assertion",
            &format!("{evil_a}<saml:Assertion"),
        ),
        "multiple_assertions",
    );
    // XSW4: evil assertion wraps the signed one.
    let wrapped = replace_once(
        &evil_a,
        "</saml:Assertion>",
        &format!("{signed_a}</saml:Assertion>"),
    );
    refused_any(
        &signed.replace(signed_a, &wrapped),
        &["multiple_assertions", "signature_misplaced"],
    );
    // XSW5: the signed assertion mutated in place, a pristine copy appended.
    let mutated = signed_a
        .replace("EXAMPLE\\jdoe", "EXAMPLE\\admin")
        .replace(&t.assertion_id, "_evil_assertion_ID");
    let pristine = signed_a.to_string();
    let xsw5 = signed.replace(signed_a, &format!("{mutated}{pristine}"));
    refused(&xsw5, "multiple_assertions");
    // XSW6: pristine copy inside the original signature.
    let m2 = signed_a.replace("EXAMPLE\\jdoe", "EXAMPLE\\admin");
    let xsw6 = signed.replace(
        signed_a,
        &replace_once(
            &m2,
            "</ds:Signature>",
            &format!("{pristine}</ds:Signature>"),
        ),
    );
    assert!(matches!(
        check(&xsw6).map_err(|e| e.code()),
        Err("multiple_assertions" | "duplicate_id")
    ));
    // XSW7: evil assertion (same ID) inside Extensions.
    let same_id_evil = evil(&t).assertion_xml();
    let xsw7 = replace_once(
        &signed,
        "<samlp:Status>",
        &format!("<samlp:Extensions>{same_id_evil}</samlp:Extensions><samlp:Status>"),
    );
    assert!(matches!(
        check(&xsw7).map_err(|e| e.code()),
        Err("multiple_assertions" | "duplicate_id")
    ));
    // XSW8: mutated in place, pristine copy in ds:Object.
    let xsw8 = signed.replace(
        signed_a,
        &replace_once(
            &m2,
            "</ds:Signature>",
            &format!("<ds:Object>{pristine}</ds:Object></ds:Signature>"),
        ),
    );
    assert!(matches!(
        check(&xsw8).map_err(|e| e.code()),
        Err("multiple_assertions" | "duplicate_id" | "signature_unexpected_element")
    ));
}

#[test]
fn xsw9_second_signed_info() {
    let t = Template::default();
    let signed = t.signed_assertion(idp());
    let si_start = signed.find("<ds:SignedInfo>").expect("si");
    let si_end = signed.find("</ds:SignedInfo>").expect("si end") + "</ds:SignedInfo>".len();
    let si = &signed[si_start..si_end];
    refused(
        &replace_once(
            &signed,
            "</ds:SignatureValue>",
            &format!("</ds:SignatureValue>{si}"),
        ),
        "signature_unexpected_element",
    );
}

#[test]
fn xsw_ma_and_fs_extra_assertion_or_signature() {
    let t = Template::default();
    let signed = t.signed_assertion(idp());
    // CVE-2022-41912: an unsigned assertion after the signed one.
    let mut e = evil(&t);
    e.assertion_id = "_second".into();
    refused(
        &replace_once(
            &signed,
            "</samlp:Response>",
            &format!("{}</samlp:Response>", e.assertion_xml()),
        ),
        "multiple_assertions",
    );
    // Two signatures on one element.
    let sig_start = signed.find("<ds:Signature").expect("sig");
    let sig_end = signed.find("</ds:Signature>").expect("end") + "</ds:Signature>".len();
    let sig = &signed[sig_start..sig_end];
    refused(
        &replace_once(&signed, sig, &format!("{sig}{sig}")),
        "multiple_signatures",
    );
}

#[test]
fn c10_duplicate_ids() {
    let t = Template::default();
    let signed = t.signed_assertion(idp());
    let ext = format!(
        "<samlp:Extensions><x:y xmlns:x=\"urn:x\" ID=\"{}\"/></samlp:Extensions>",
        t.assertion_id
    );
    refused(
        &replace_once(&signed, "<samlp:Status>", &format!("{ext}<samlp:Status>")),
        "duplicate_id",
    );
}

// ---------------------------------------------------------------------------------------------
// 1.C Parser differentials and text extraction

#[test]
fn c1_c3_injected_comment_pi_or_cdata_never_shortens_a_name() {
    // The IdP signs a name containing a comment / PI / CDATA split: the name read is whole.
    for (inject, whole) in [
        (
            "admin@victim.com<!---->.evil.com",
            "admin@victim.com.evil.com",
        ),
        (
            "admin@victim.com<?x ?>.evil.com",
            "admin@victim.com.evil.com",
        ),
        (
            "admin@victim.com<![CDATA[.evil.com]]>",
            "admin@victim.com.evil.com",
        ),
        ("a&amp;b&#x2E;c", "a&b.c"),
    ] {
        let t = Template::default();
        let xml = replace_once(&t.unsigned(), "EXAMPLE\\jdoe", inject);
        let signed = sign_element(
            &xml,
            &t.assertion_id,
            idp(),
            SignatureAlgorithm::RSA_SHA256_ALG,
        );
        assert_eq!(accepted(&signed).username, whole, "{inject}");
    }
    // And after signing, inserting a comment keeps the digest but cannot shorten the name.
    let t = Template::default();
    let mut long = t.clone();
    long.attributes[0].1 = vec!["admin@victim.com.evil.com".into()];
    let signed = long.signed_assertion(idp());
    let injected = replace_once(
        &signed,
        "admin@victim.com.evil.com",
        "admin@victim.com<!---->.evil.com",
    );
    assert_eq!(accepted(&injected).username, "admin@victim.com.evil.com");
    // CDATA after signing changes the canonical text only if it changes characters; a split
    // that keeps them is still the whole name.
    let cdata = replace_once(
        &signed,
        "admin@victim.com.evil.com",
        "admin@victim.com<![CDATA[.evil.com]]>",
    );
    assert_eq!(accepted(&cdata).username, "admin@victim.com.evil.com");
}

#[test]
fn c5_c6_c8_doctype_in_any_form_is_refused() {
    let t = Template::default();
    let signed = t.signed_assertion(idp());
    for dt in [
        "<!DOCTYPE response SYSTEM 'x\"><!--'>",
        "<!DOCTYPE Response [<!ATTLIST Signature xmlns CDATA #FIXED \"http://www.w3.org/2000/09/xmldsig#\">]>",
        "<!DOCTYPE response [<!ENTITY idViaEntity \"_x\">]>",
    ] {
        refused(&format!("{dt}{signed}"), "doctype_forbidden");
    }
}

#[test]
fn c11_trailing_root_and_broken_xml() {
    let t = Template::default();
    let signed = t.signed_assertion(idp());
    refused(&format!("{signed}<samlp:Response/>"), "malformed_xml");
    refused(&signed[..signed.len() - 5], "malformed_xml");
    refused(
        &signed.replacen("<saml:Issuer>", "<saml:Issuer a=\"1\" a=\"2\">", 1),
        "malformed_xml",
    );
}

#[test]
fn c12_namespace_confusion() {
    let t = Template::default();
    let signed = t.signed_assertion(idp());
    // An Assertion in another namespace is not an Assertion: nothing to consume.
    let other_ns = signed.replace(
        "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\"",
        "<saml:Assertion xmlns:saml=\"urn:evil\"",
    );
    assert!(check(&other_ns).is_err());
    refused(
        &replace_once(
            &t.unsigned(),
            "samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\"",
            "samlp:Response xmlns:samlp=\"urn:evil\"",
        ),
        "wrong_message_type",
    );
}

#[test]
fn c13_structured_username_is_refused() {
    let t = Template::default();
    let xml = replace_once(
        &t.unsigned(),
        "EXAMPLE\\jdoe</saml:AttributeValue>",
        "victim<x:y xmlns:x=\"urn:x\">z</x:y></saml:AttributeValue>",
    );
    refused(
        &sign_element(
            &xml,
            &t.assertion_id,
            idp(),
            SignatureAlgorithm::RSA_SHA256_ALG,
        ),
        "username_not_simple",
    );
}

// ---------------------------------------------------------------------------------------------
// 1.D Keys, certificates, fingerprints, algorithms

#[test]
fn d1_attacker_certificate_in_key_info() {
    let t = Template::default();
    let forged = evil(&t).signed_assertion(attacker());
    refused(&forged, "signature_invalid");
    // Fingerprint mode: the attacker's certificate does not have the configured fingerprint.
    let fp = IdpTrust::Fingerprint(
        Fingerprint::new(
            DigestAlgorithm::Sha256,
            idp().cert.fingerprint(DigestAlgorithm::Sha256),
        )
        .expect("fp"),
    );
    let r = check_with(&forged, &fp, &VerifyOptions::default(), &ctx(), now());
    assert_eq!(r.err().map(|e| e.code()), Some("fingerprint_mismatch"));
    // ... and the genuine message passes in fingerprint mode.
    check_with(
        &t.signed_assertion(idp()),
        &fp,
        &VerifyOptions::default(),
        &ctx(),
        now(),
    )
    .expect("fingerprint trust");
}

#[test]
fn d3_fingerprint_substitution() {
    let t = Template::default();
    let fp = IdpTrust::Fingerprint(
        Fingerprint::new(
            DigestAlgorithm::Sha256,
            idp().cert.fingerprint(DigestAlgorithm::Sha256),
        )
        .expect("fp"),
    );
    let genuine = t.signed_assertion(idp());
    let genuine_b64 = idp().cert.base64();
    let forged = evil(&t).signed_assertion(attacker());
    let attacker_b64 = attacker().cert.base64();
    // (a) the genuine certificate in KeyInfo, the attacker's signature: the key does not verify.
    let swapped = forged.replace(&attacker_b64, &genuine_b64);
    let r = check_with(&swapped, &fp, &VerifyOptions::default(), &ctx(), now());
    assert_eq!(r.err().map(|e| e.code()), Some("signature_invalid"));
    // (b) two certificates in KeyInfo: ambiguous, refused before any verification.
    let two = replace_once(
        &genuine,
        "</ds:X509Data>",
        &format!("<ds:X509Certificate>{attacker_b64}</ds:X509Certificate></ds:X509Data>"),
    );
    let r = check_with(&two, &fp, &VerifyOptions::default(), &ctx(), now());
    assert_eq!(
        r.err().map(|e| e.code()),
        Some("fingerprint_no_certificate")
    );
    // (e) no certificate at all: nothing to fingerprint.
    let ki_start = genuine.find("<ds:KeyInfo>").expect("ki");
    let ki_end = genuine.find("</ds:KeyInfo>").expect("ki end") + "</ds:KeyInfo>".len();
    let none = format!("{}{}", &genuine[..ki_start], &genuine[ki_end..]);
    let r = check_with(&none, &fp, &VerifyOptions::default(), &ctx(), now());
    assert_eq!(
        r.err().map(|e| e.code()),
        Some("fingerprint_no_certificate")
    );
}

#[test]
fn d2_d4_hmac_weak_and_unknown_algorithms() {
    let t = Template::default();
    let signed = t.signed_assertion(idp());
    for alg in [
        "http://www.w3.org/2000/09/xmldsig#hmac-sha1",
        "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256",
        "http://www.w3.org/2000/09/xmldsig#dsa-sha1",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-md5",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha1",
    ] {
        refused(
            &replace_once(&signed, SignatureAlgorithm::RSA_SHA256, alg),
            "algorithm_forbidden",
        );
    }
    refused(
        &replace_once(&signed, SignatureAlgorithm::RSA_SHA256, "urn:made-up"),
        "algorithm_unknown",
    );
    refused(
        &replace_once(
            &signed,
            "http://www.w3.org/2001/04/xmlenc#sha256\"",
            "http://www.w3.org/2001/04/xmlenc#sha1\"",
        ),
        "algorithm_forbidden",
    );
    // SHA-1 only through the legacy switch.
    let sha1 = SignatureAlgorithm {
        key: ssogate::saml::xmldsig::KeyKind::Rsa,
        digest: DigestAlgorithm::Sha1,
    };
    let legacy = sign_element(&t.unsigned(), &t.assertion_id, idp(), sha1);
    refused(&legacy, "algorithm_forbidden");
    let opts = VerifyOptions {
        algorithms: AlgorithmPolicy { allow_sha1: true },
        ..Default::default()
    };
    check_with(&legacy, &trust(), &opts, &ctx(), now()).expect("legacy IdP");
    // An HMACOutputLength child (CVE-2009-0217 class) is refused even on an allowed algorithm.
    refused(
        &replace_once(
            &signed,
            &format!("{}\"/>", SignatureAlgorithm::RSA_SHA256),
            &format!(
                "{}\"><ds:HMACOutputLength>8</ds:HMACOutputLength></ds:SignatureMethod>",
                SignatureAlgorithm::RSA_SHA256
            ),
        ),
        "signature_unexpected_element",
    );
}

#[test]
fn d5_d6_other_idps_key_or_another_tenants_assertion() {
    let t = Template::default();
    // Signed by another IdP's key (another tenant's): not this tenant's trust.
    refused(&t.signed_assertion(idp2()), "signature_invalid");
    // A genuine assertion for another SP (G13): audience and recipient say so.
    let mut other = t.clone();
    other.audiences = Some(vec!["https://other-tenant.example/".into()]);
    refused(&other.signed_assertion(idp()), "audience_mismatch");
}

// ---------------------------------------------------------------------------------------------
// 1.E Transforms and Reference URIs: refused before any cryptography

fn with_transform(signed: &str, transform: &str) -> String {
    replace_once(
        signed,
        "<ds:Transforms>",
        &format!("<ds:Transforms>{transform}"),
    )
}

#[test]
fn e1_e2_xslt_and_xpath_transforms() {
    let t = Template::default();
    let signed = t.signed_assertion(idp());
    refused(
        &with_transform(
            &signed,
            "<ds:Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xslt-19991116\"><xsl:stylesheet xmlns:xsl=\"http://www.w3.org/1999/XSL/Transform\" version=\"1.0\"/></ds:Transform>",
        ),
        "transform_forbidden",
    );
    refused(
        &with_transform(
            &signed,
            "<ds:Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xpath-19991116\"><ds:XPath>not(ancestor-or-self::x)</ds:XPath></ds:Transform>",
        ),
        "transform_forbidden",
    );
    refused(
        &with_transform(
            &signed,
            "<ds:Transform Algorithm=\"http://www.w3.org/TR/2001/REC-xml-c14n-20010315\"/>",
        ),
        "transform_forbidden",
    );
}

#[test]
fn e3_xpointer_references() {
    let t = Template::default();
    let signed = t.signed_assertion(idp());
    for uri in ["#xpointer(/)", "#element(/1/3)", "#xpointer(id('x'))"] {
        refused(
            &replace_once(
                &signed,
                &format!("URI=\"#{}\"", t.assertion_id),
                &format!("URI=\"{uri}\""),
            ),
            "reference_uri_forbidden",
        );
    }
}

#[test]
fn e4_remote_reference_is_never_fetched() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let t = Template::default();
    let signed = t.signed_assertion(idp());
    let remote = replace_once(
        &signed,
        &format!("URI=\"#{}\"", t.assertion_id),
        &format!("URI=\"http://127.0.0.1:{port}/x\""),
    );
    let extra = replace_once(
        &signed,
        "</ds:Reference>",
        &format!(
            "</ds:Reference><ds:Reference URI=\"http://127.0.0.1:{port}/y\"><ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/><ds:DigestValue>AAAA</ds:DigestValue></ds:Reference>"
        ),
    );
    let retrieval = replace_once(
        &signed,
        "<ds:KeyInfo>",
        &format!("<ds:KeyInfo><ds:RetrievalMethod URI=\"http://127.0.0.1:{port}/k\"/>"),
    );
    refused(&remote, "reference_uri_forbidden");
    refused(&extra, "reference_count");
    refused(&retrieval, "key_info_forbidden");
    std::thread::sleep(Duration::from_millis(100));
    let mut connections = 0;
    while let Ok((mut s, _)) = listener.accept() {
        let mut b = [0u8; 64];
        let _ = s.read(&mut b);
        connections += 1;
    }
    assert_eq!(connections, 0, "the verifier connected to a Reference URI");
}

#[cfg(unix)]
#[test]
fn e4_file_reference_is_never_opened() {
    // A FIFO: opening it for writing without blocking succeeds only while someone has it open
    // for reading. A watcher tries all along; if the verifier ever opened it, the watcher sees it.
    let dir = common::scratch_dir("e4_fifo");
    let fifo = dir.join("probe");
    let c = std::ffi::CString::new(fifo.to_str().expect("utf8")).expect("cstring");
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc_mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let seen = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicUsize::new(0));
    let (s2, st2, f2) = (seen.clone(), stop.clone(), fifo.clone());
    let watcher = std::thread::spawn(move || {
        use std::os::unix::fs::OpenOptionsExt as _;
        while st2.load(Ordering::SeqCst) == 0 {
            if std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(0o4000 /* O_NONBLOCK */)
                .open(&f2)
                .is_ok()
            {
                s2.fetch_add(1, Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let t = Template::default();
    let signed = t.signed_assertion(idp());
    let uri = format!("file://{}", fifo.display());
    let local = replace_once(
        &signed,
        &format!("URI=\"#{}\"", t.assertion_id),
        &format!("URI=\"{uri}\""),
    );
    let zero = replace_once(
        &signed,
        &format!("URI=\"#{}\"", t.assertion_id),
        "URI=\"file:///dev/zero\"",
    );
    let started = Instant::now();
    refused(&local, "reference_uri_forbidden");
    refused(&zero, "reference_uri_forbidden");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "file references must be refused without reading anything"
    );
    std::thread::sleep(Duration::from_millis(50));
    stop.store(1, Ordering::SeqCst);
    watcher.join().expect("watcher");
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "the verifier opened the file named by the Reference URI"
    );
}

#[cfg(unix)]
unsafe extern "C" {
    #[link_name = "mkfifo"]
    fn libc_mkfifo(path: *const std::ffi::c_char, mode: u32) -> i32;
}

// ---------------------------------------------------------------------------------------------
// 1.F Resource attacks: refused quickly, before any expansion

#[test]
fn f1_f2_xxe_and_billion_laughs() {
    let t = Template::default();
    let signed = t.signed_assertion(idp());
    let xxe = format!(
        "<!DOCTYPE foo [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>{}",
        signed.replace("jdoe@example.com", "&xxe;")
    );
    refused(&xxe, "doctype_forbidden");
    let mut lol = String::from("<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">");
    for i in 1..10 {
        lol.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">",
            format!(
                "&lol{};",
                if i == 1 {
                    String::new()
                } else {
                    (i - 1).to_string()
                }
            )
            .repeat(10)
        ));
    }
    lol.push_str("]><lolz>&lol9;</lolz>");
    let started = Instant::now();
    refused(&lol, "doctype_forbidden");
    // An undeclared entity without a DOCTYPE is refused as such.
    refused(
        &signed.replace("jdoe@example.com", "&lol9;"),
        "entity_forbidden",
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn f3_f4_f6_depth_attributes_and_size() {
    let t = Template::default();
    let deep = replace_once(
        &t.unsigned(),
        "<samlp:Status>",
        &format!(
            "<x:a xmlns:x=\"urn:x\">{}{}<samlp:Status>",
            // One declaration: this is about depth (a declaration per level would reach the
            // in-scope namespace limit first).
            "<x:a>".repeat(99_999),
            "</x:a>".repeat(100_000)
        ),
    );
    let started = Instant::now();
    // Too large at the default 256 KiB cap already; with a larger cap, too deep.
    refused(&deep, "too_large");
    let opts = VerifyOptions {
        limits: ssogate::saml::xml::Limits {
            max_bytes: 8 << 20,
            ..Default::default()
        },
        ..Default::default()
    };
    let r = check_with(&deep, &trust(), &opts, &ctx(), now());
    assert_eq!(r.err().map(|e| e.code()), Some("too_deep"));
    let attrs: String = (0..100_000).map(|i| format!(" a{i}=\"1\"")).collect();
    let r = check_with(
        &replace_once(
            &t.unsigned(),
            "<samlp:Status>",
            &format!("<samlp:Status{attrs}>"),
        ),
        &trust(),
        &opts,
        &ctx(),
        now(),
    );
    assert_eq!(r.err().map(|e| e.code()), Some("too_many_attributes"));
    let nsbomb: String = (0..100_000)
        .map(|i| format!(" xmlns:p{i}=\"urn:{i}\""))
        .collect();
    let r = check_with(
        &replace_once(
            &t.unsigned(),
            "<samlp:Status>",
            &format!("<samlp:Status{nsbomb}>"),
        ),
        &trust(),
        &opts,
        &ctx(),
        now(),
    );
    assert_eq!(r.err().map(|e| e.code()), Some("too_many_attributes"));
    assert!(started.elapsed() < Duration::from_secs(10));
    // 50 MB posted value: refused before decoding.
    let huge = vec![b'A'; 50 << 20];
    let e =
        ssogate::saml::bindings::decode_post(&huge, &Default::default()).expect_err("too large");
    assert_eq!(e.code(), "too_large");
}

#[test]
fn f7_encodings_other_than_utf8() {
    let t = Template::default();
    let signed = t.signed_assertion(idp());
    refused(
        &format!("<?xml version=\"1.0\" encoding=\"UTF-16\"?>{signed}"),
        "malformed_xml",
    );
    let mut latin1 = signed.clone().into_bytes();
    latin1.extend_from_slice(b"\xe9");
    let r = UnverifiedResponse::parse(&latin1, &Default::default());
    assert_eq!(r.err().map(|e| e.code()), Some("not_utf8"));
}

// ---------------------------------------------------------------------------------------------
// 1.G Protocol checks: one per rejection, with its exact reason

#[track_caller]
fn refused_template(f: impl FnOnce(&mut Template), code: &str) {
    let mut t = Template::default();
    f(&mut t);
    refused(&t.signed_both(idp()), code);
}

#[test]
fn g_every_protocol_check_has_its_reason() {
    refused_template(
        |t| t.status = "urn:oasis:names:tc:SAML:2.0:status:Responder".into(),
        "status_not_success",
    );
    refused_template(
        |t| t.response_issuer = Some("https://evil.example/".into()),
        "issuer_mismatch",
    );
    refused_template(
        |t| t.assertion_issuer = "https://evil.example/".into(),
        "issuer_mismatch",
    );
    refused_template(
        |t| t.destination = Some("https://sp.example.test/other".into()),
        "destination_mismatch",
    );
    refused_template(
        |t| t.destination = Some(String::new()),
        "destination_mismatch",
    );
    refused_template(|t| t.destination = None, "destination_missing");
    refused_template(
        |t| t.recipient = Some("https://other.example/acs".into()),
        "recipient_mismatch",
    );
    refused_template(|t| t.recipient = None, "subject_confirmation_incomplete");
    refused_template(
        |t| t.scd_not_on_or_after = None,
        "subject_confirmation_incomplete",
    );
    refused_template(
        |t| t.method = "urn:oasis:names:tc:SAML:2.0:cm:sender-vouches".into(),
        "subject_confirmation_missing",
    );
    refused_template(|t| t.audiences = None, "audience_missing");
    refused_template(
        |t| t.audiences = Some(vec!["https://other.example/".into()]),
        "audience_mismatch",
    );
    refused_template(
        |t| {
            t.response_in_response_to = None;
            t.scd_in_response_to = Some("_someone-elses".into())
        },
        "in_response_to_mismatch",
    );
    refused_template(
        |t| {
            t.response_in_response_to = None;
            t.scd_in_response_to = None
        },
        "in_response_to_missing",
    );
    refused_template(
        |t| t.issue_instant = t0().plus_secs(3600),
        "issued_in_future",
    );
    refused_template(
        |t| t.session_not_on_or_after = Some(t0().plus_secs(-3600)),
        "session_expired",
    );
    refused_template(
        |t| t.attributes.retain(|(n, _)| n != USER_ATTR),
        "username_missing",
    );
    refused_template(
        |t| {
            t.attributes
                .push((USER_ATTR.into(), vec!["EXAMPLE\\other".into()]))
        },
        "username_ambiguous",
    );
    refused_template(
        |t| t.attributes[0].1.push("EXAMPLE\\second".into()),
        "username_ambiguous",
    );
    refused_template(
        |t| t.attributes[0].1 = vec!["   ".into()],
        "username_missing",
    );

    // Unsolicited: an IdP-initiated response is refused where a request was expected, and a
    // solicited one where none was.
    let unsolicited = Template {
        response_in_response_to: None,
        scd_in_response_to: None,
        ..Template::default()
    };
    let idp_initiated = ExpectedContext {
        solicitation: Solicitation::Unsolicited,
        ..ctx()
    };
    check_with(
        &unsolicited.signed_both(idp()),
        &trust(),
        &VerifyOptions::default(),
        &idp_initiated,
        now(),
    )
    .expect("IdP-initiated");
    let r = check_with(
        &Template::default().signed_both(idp()),
        &trust(),
        &VerifyOptions::default(),
        &idp_initiated,
        now(),
    );
    assert_eq!(r.err().map(|e| e.code()), Some("unexpected_in_response_to"));
}

#[test]
fn g1_replay_is_refused_once_remembered() {
    let t = Template::default();
    let xml = t.signed_both(idp());
    let replay = InMemoryReplayCache::new();
    let opts = VerifyOptions::default();
    let once = |r: &InMemoryReplayCache| {
        UnverifiedResponse::parse(xml.as_bytes(), &opts.limits)
            .and_then(|u| u.verify(&trust(), &opts))
            .and_then(|v| v.accept(&ctx(), now()).and_then(|u| u.redeem(r, now())))
    };
    once(&replay).expect("first use");
    assert_eq!(once(&replay).err().map(|e| e.code()), Some("replayed"));
    // A refused assertion is not remembered: the same ID, rejected for audience, then valid.
    let fresh = InMemoryReplayCache::new();
    let mut bad = t.clone();
    bad.audiences = Some(vec!["https://other.example/".into()]);
    let bad_xml = bad.signed_both(idp());
    let r = UnverifiedResponse::parse(bad_xml.as_bytes(), &opts.limits)
        .and_then(|u| u.verify(&trust(), &opts))
        .and_then(|v| {
            v.accept(&ctx(), now())
                .and_then(|u| u.redeem(&fresh, now()))
        });
    assert_eq!(r.err().map(|e| e.code()), Some("audience_mismatch"));
    assert!(fresh.is_empty());
}

#[test]
fn g2_g3_expiry_edges_at_skew_plus_minus_one_second() {
    let t = Template::default();
    let xml = t.signed_both(idp());
    let skew = 180;
    let at = |now: UnixTime| {
        check_with(&xml, &trust(), &VerifyOptions::default(), &ctx(), now)
            .map(|_| ())
            .map_err(|e| e.code())
    };
    // NotOnOrAfter (Conditions and SubjectConfirmationData) = t0 + 300.
    let noa = t0().plus_secs(300);
    assert_eq!(at(noa.plus_secs(skew - 1)), Ok(()));
    assert_eq!(at(noa.plus_secs(skew)), Err("expired"));
    // NotBefore later than IssueInstant, so that each edge is its own check.
    let mut nb = t.clone();
    nb.not_before = Some(t0().plus_secs(60));
    let nbx = nb.signed_both(idp());
    let at_nb = |now: UnixTime| {
        check_with(&nbx, &trust(), &VerifyOptions::default(), &ctx(), now)
            .map(|_| ())
            .map_err(|e| e.code())
    };
    assert_eq!(at_nb(t0().plus_secs(60 - skew)), Ok(()));
    assert_eq!(at_nb(t0().plus_secs(60 - skew - 1)), Err("not_yet_valid"));
    // IssueInstant = t0: one from beyond the skew in the future is refused.
    assert_eq!(at(t0().plus_secs(-skew)), Ok(()));
    assert_eq!(at(t0().plus_secs(-skew - 1)), Err("issued_in_future"));
    // The Conditions window alone (SubjectConfirmationData outlives it).
    let mut c = t.clone();
    c.scd_not_on_or_after = Some(t0().plus_secs(3600));
    let cx = c.signed_both(idp());
    let r = check_with(
        &cx,
        &trust(),
        &VerifyOptions::default(),
        &ctx(),
        noa.plus_secs(skew),
    );
    assert_eq!(r.err().map(|e| e.code()), Some("expired"));
    // The skew is a parameter: with 0 s, one second past NotOnOrAfter is too late.
    let strict = ExpectedContext {
        clock_skew_secs: 0,
        ..ctx()
    };
    let r = check_with(&xml, &trust(), &VerifyOptions::default(), &strict, noa);
    assert_eq!(r.err().map(|e| e.code()), Some("expired"));
    let r = check_with(
        &xml,
        &trust(),
        &VerifyOptions::default(),
        &strict,
        noa.plus_secs(-1),
    );
    assert!(r.is_ok());
}

// ---------------------------------------------------------------------------------------------
// 1.H Encrypted assertions

fn encrypt_assertion(t: &Template, assertion_xml: &str, key_transport: &str) -> String {
    use openssl::encrypt::Encrypter;
    use openssl::rsa::Padding;
    use openssl::symm::{Cipher, encrypt_aead};
    let mut cek = [0u8; 32];
    let mut iv = [0u8; 12];
    openssl::rand::rand_bytes(&mut cek).expect("rand");
    openssl::rand::rand_bytes(&mut iv).expect("rand");
    let mut tag = [0u8; 16];
    let ct = encrypt_aead(
        Cipher::aes_256_gcm(),
        &cek,
        Some(&iv),
        &[],
        assertion_xml.as_bytes(),
        &mut tag,
    )
    .expect("gcm");
    let data = [iv.as_slice(), &ct, &tag].concat();
    let pkey = openssl::x509::X509::from_pem(&sp().cert_pem)
        .expect("cert")
        .public_key()
        .expect("key");
    let mut enc = Encrypter::new(&pkey).expect("encrypter");
    let oaep = key_transport.contains("oaep");
    enc.set_rsa_padding(if oaep {
        Padding::PKCS1_OAEP
    } else {
        Padding::PKCS1
    })
    .expect("padding");
    let mut wrapped = vec![0u8; enc.encrypt_len(&cek).expect("len")];
    let n = enc.encrypt(&cek, &mut wrapped).expect("wrap");
    wrapped.truncate(n);
    let inner = format!(
        "<saml:EncryptedAssertion><xenc:EncryptedData xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\" Type=\"http://www.w3.org/2001/04/xmlenc#Element\">\
         <xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2009/xmlenc11#aes256-gcm\"/><ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">\
         <xenc:EncryptedKey><xenc:EncryptionMethod Algorithm=\"{key_transport}\"/><xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey>\
         </ds:KeyInfo><xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData></saml:EncryptedAssertion>",
        b64_bytes(&wrapped),
        b64_bytes(&data)
    );
    t.response_around(&inner)
}

fn b64_bytes(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn with_sp_key() -> VerifyOptions {
    VerifyOptions {
        decryption_key: Some(sp().key.clone()),
        ..Default::default()
    }
}

const OAEP: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";

#[test]
fn h_encrypted_assertions() {
    let t = Template::default();
    let opts = with_sp_key();
    // Response signed over the EncryptedAssertion: accepted.
    let enc = encrypt_assertion(&t, &t.assertion_xml(), OAEP);
    let signed = sign_element(
        &enc,
        &t.response_id,
        idp(),
        SignatureAlgorithm::RSA_SHA256_ALG,
    );
    let a = check_with(&signed, &trust(), &opts, &ctx(), now())
        .expect("signed response, encrypted assertion");
    assert_eq!(a.username, "EXAMPLE\\jdoe");
    // Assertion signed inside, Response unsigned: decrypt, then verify.
    let inner_signed = {
        let signed_resp = t.signed_assertion(idp());
        let s = signed_resp.find("<saml:Assertion").expect("a");
        let e = signed_resp.find("</saml:Assertion>").expect("end") + "</saml:Assertion>".len();
        signed_resp[s..e].to_string()
    };
    check_with(
        &encrypt_assertion(&t, &inner_signed, OAEP),
        &trust(),
        &opts,
        &ctx(),
        now(),
    )
    .expect("decrypt-then-verify");
    // H1: nothing signed (anyone can encrypt to the SP's public certificate).
    let r = check_with(&enc, &trust(), &opts, &ctx(), now());
    assert_eq!(r.err().map(|e| e.code()), Some("unsigned"));
    // H2: an inner signature by the attacker.
    let forged = evil(&t).signed_assertion(attacker());
    let s = forged.find("<saml:Assertion").expect("a");
    let e = forged.find("</saml:Assertion>").expect("end") + "</saml:Assertion>".len();
    let r = check_with(
        &encrypt_assertion(&t, &forged[s..e], OAEP),
        &trust(),
        &opts,
        &ctx(),
        now(),
    );
    assert_eq!(r.err().map(|e| e.code()), Some("signature_invalid"));
    // H3: RSA PKCS#1 v1.5 key transport is refused.
    let v15 = sign_element(
        &encrypt_assertion(
            &t,
            &t.assertion_xml(),
            "http://www.w3.org/2001/04/xmlenc#rsa-1_5",
        ),
        &t.response_id,
        idp(),
        SignatureAlgorithm::RSA_SHA256_ALG,
    );
    let r = check_with(&v15, &trust(), &opts, &ctx(), now());
    assert_eq!(
        r.err().map(|e| e.code()),
        Some("encryption_algorithm_forbidden")
    );
    // Without an SP key: a clear reason.
    let r = check_with(&signed, &trust(), &VerifyOptions::default(), &ctx(), now());
    assert_eq!(r.err().map(|e| e.code()), Some("decryption_key_missing"));
    // Tampered ciphertext: GCM refuses it.
    let flipped = signed.replacen(
        "<xenc:CipherData><xenc:CipherValue>",
        "<xenc:CipherData><xenc:CipherValue>AAAA",
        2,
    );
    assert!(check_with(&flipped, &trust(), &opts, &ctx(), now()).is_err());
}

/// AES-128-CBC content with xmlenc 1.1 RSA-OAEP (SHA-256 digest, MGF1-SHA256) key transport,
/// the EncryptedKey beside EncryptedData (as Okta and Shibboleth place it).
#[test]
fn h_cbc_and_oaep_sha256() {
    use openssl::encrypt::Encrypter;
    use openssl::hash::MessageDigest;
    use openssl::rsa::Padding;
    use openssl::symm::{Cipher, encrypt};
    let t = Template::default();
    let mut cek = [0u8; 16];
    let mut iv = [0u8; 16];
    openssl::rand::rand_bytes(&mut cek).expect("rand");
    openssl::rand::rand_bytes(&mut iv).expect("rand");
    // XML Encryption padding: the last byte is the pad length (PKCS#7 padding satisfies that).
    let ct = encrypt(
        Cipher::aes_128_cbc(),
        &cek,
        Some(&iv),
        t.assertion_xml().as_bytes(),
    )
    .expect("cbc");
    let data = [iv.as_slice(), &ct].concat();
    let pkey = openssl::x509::X509::from_pem(&sp().cert_pem)
        .expect("cert")
        .public_key()
        .expect("key");
    let mut enc = Encrypter::new(&pkey).expect("encrypter");
    enc.set_rsa_padding(Padding::PKCS1_OAEP).expect("oaep");
    enc.set_rsa_oaep_md(MessageDigest::sha256()).expect("md");
    enc.set_rsa_mgf1_md(MessageDigest::sha256()).expect("mgf");
    let mut wrapped = vec![0u8; enc.encrypt_len(&cek).expect("len")];
    let n = enc.encrypt(&cek, &mut wrapped).expect("wrap");
    wrapped.truncate(n);
    let response = |mgf: &str| {
        let inner = format!(
            "<saml:EncryptedAssertion><xenc:EncryptedData xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\" Type=\"http://www.w3.org/2001/04/xmlenc#Element\">\
             <xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#aes128-cbc\"/>\
             <xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData>\
             <xenc:EncryptedKey xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\" xmlns:xenc11=\"http://www.w3.org/2009/xmlenc11#\" xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">\
             <xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2009/xmlenc11#rsa-oaep\"><ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/>\
             <xenc11:MGF Algorithm=\"http://www.w3.org/2009/xmlenc11#{mgf}\"/></xenc:EncryptionMethod>\
             <xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey></saml:EncryptedAssertion>",
            b64_bytes(&data),
            b64_bytes(&wrapped)
        );
        sign_element(
            &t.response_around(&inner),
            &t.response_id,
            idp(),
            SignatureAlgorithm::RSA_SHA256_ALG,
        )
    };
    let a = check_with(
        &response("mgf1sha256"),
        &trust(),
        &with_sp_key(),
        &ctx(),
        now(),
    )
    .expect("AES-128-CBC with RSA-OAEP-SHA256");
    assert_eq!(a.username, "EXAMPLE\\jdoe");
    // An MGF outside the allow-list is refused by name (the signature over it is valid).
    let r = check_with(
        &response("mgf1sha512"),
        &trust(),
        &with_sp_key(),
        &ctx(),
        now(),
    );
    assert_eq!(
        r.err().map(|e| e.code()),
        Some("encryption_algorithm_forbidden")
    );
}
