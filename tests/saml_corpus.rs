//! Every row of `tests/corpus/MANIFEST.tsv` with a clear verdict gets that verdict, with the clock at the row's `valid_at` and SHA-1 allowed only through the legacy switch.
//!
//! How a row is judged:
//! - Trust: the certificate that the manifest's independent xmlsec1 check names as verifying the
//!   signature ("OK with …[sha1=…]"), found among the corpus certificates; a certificate that only
//!   exists inside the message is trusted by its SHA-1 fingerprint (fingerprint mode). Rows whose
//!   signature nothing verifies get every certificate of the corpus: they must still be refused.
//! - Context: SP entity ID = the row's Audience, ACS URL = its Recipient (or Destination), IdP =
//!   its Issuer, request ID = its InResponseTo, clock = `valid_at`. These are the values the
//!   response was issued for, so an ACCEPT row passes the whole protocol check, not just the
//!   signature. Where the manifest cannot give them (encrypted assertions), `OVERRIDES` does.
//! - ACCEPT rows are accepted in full, unless `PROTOCOL_REFUSALS` names the deliberate, stricter
//!   policy that refuses the (validly signed) fixture, with its exact reason.
//! - Every other row (REJECT, parse-only, POLICY) is refused; `EXPECTED_REASONS` pins the reason
//!   for the rows where a specific defence must be the one that fires.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{Row, corpus_dir, manifest, record_cases};
use ssogate::saml::bindings::decode_post;
use ssogate::saml::logout::{LogoutBinding, LogoutMessage, verify_logout};
use ssogate::saml::metadata::{MetadataError, parse_idp_metadata};
use ssogate::saml::replay::InMemoryReplayCache;
use ssogate::saml::response::{
    ExpectedContext, Solicitation, UnverifiedResponse, UsernameSource, VerifyOptions,
};
use ssogate::saml::xmldsig::{
    AlgorithmPolicy, DigestAlgorithm, Fingerprint, IdpTrust, SigningKey, TrustedCertificate,
};
use ssogate::saml::{Error, UnixTime};

/// Context the manifest cannot give: (file, field, value).
const OVERRIDES: &[(&str, &str, &str)] = &[
    // Audience and Recipient are not in the manifest's fields for these rows (encrypted, or not
    // listed); the values are the SP settings of the source project's own tests.
    (
        "python3-saml/tests/data/responses/signed_message_response2.xml.base64",
        "Audience",
        "http://pytoolkit.com:8000/metadata/",
    ),
    // Its (encrypted) Assertion has no NameID; the user is in the uid attribute.
    (
        "python3-saml/tests/data/responses/signed_message_response2.xml.base64",
        "UsernameAttribute",
        "uid",
    ),
    // Nothing outside the ciphertext is signed, so the manifest's xmlsec1 column names no
    // certificate; the inner Assertion is signed by the same IdP as its sibling row
    // signed_message_encrypted_signed_assertion (settings2's certificate, SHA-1 ee174efb…).
    (
        "ruby-saml/test/responses/unsigned_message_encrypted_signed_assertion.xml.base64",
        "TrustSha1",
        "ee174efba88171120d2a7843bce70c075879f4f4",
    ),
    (
        "ruby-saml/test/responses/signed_message_encrypted_signed_assertion.xml.base64",
        "Audience",
        "http://rubysaml.com:3000/saml/metadata",
    ),
    (
        "ruby-saml/test/responses/unsigned_message_encrypted_signed_assertion.xml.base64",
        "Audience",
        "http://rubysaml.com:3000/saml/metadata",
    ),
    (
        "crewjam-saml/testdata/TestSPCanHandleOktaSignedResponseEncryptedAssertion_response",
        "Audience",
        "http://localhost:8000/saml/metadata",
    ),
    (
        "crewjam-saml/testdata/TestSPCanHandleOktaResponseEncryptedSignedAssertion_response",
        "Audience",
        "http://localhost:8000/saml/metadata",
    ),
    (
        "crewjam-saml/testdata/TestSPCanHandleOktaResponseEncryptedAssertionBothSigned_response",
        "Audience",
        "http://localhost:8000/saml/metadata",
    ),
    // valid_at is the Response's IssueInstant; the encrypted Assertion was issued later. The
    // source test's clock (test-signatures.spec.ts) is used instead.
    (
        "node-saml/test/static/signatures/valid/response.root-signed.assertion-unsigned-encrypted.xml",
        "now",
        "2020-09-25T16:59:00Z",
    ),
];

/// ACCEPT rows (valid signature) that a strict SP still refuses, on purpose: (file, reason code).
const PROTOCOL_REFUSALS: &[(&str, &str)] = &[
    // RSA PKCS#1 v1.5 key transport is refused (Bleichenbacher; the issue: "RSA1_5 refused").
    (
        "python3-saml/tests/data/responses/signed_message_encrypted_assertion.xml.base64",
        "encryption_algorithm_forbidden",
    ),
    (
        "python3-saml/tests/data/responses/double_signed_encrypted_assertion.xml.base64",
        "encryption_algorithm_forbidden",
    ),
    // Inclusive C14N 1.0 as CanonicalizationMethod: only exclusive c14n is on the allow-list.
    (
        "ruby-saml/test/responses/starfield_response.xml.base64",
        "c14n_method_forbidden",
    ),
    // Response/Issuer is idp.example.com, Assertion/Issuer idp.myexample.org: both must be the IdP.
    (
        "ruby-saml/test/responses/response_with_signed_message_and_assertion.xml",
        "issuer_mismatch",
    ),
    // Destination (http://app.muda.no/sso/consume) and Recipient ("recipient") differ; both must be
    // our ACS URL. The signature verifies; `node_text_attack_keeps_the_whole_name_id` checks the NameID.
    (
        "ruby-saml/test/responses/response_node_text_attack2.xml.base64",
        "destination_mismatch",
    ),
    (
        "ruby-saml/test/responses/valid_response_without_x509certificate.xml.base64",
        "destination_mismatch",
    ),
    // node-saml's fixtures carry no AudienceRestriction (its tests run with audience=false); the
    // bearer profile requires one naming us.
    (
        "node-saml/test/static/signatures/valid/response.root-signed.assertion-signed.xml",
        "audience_missing",
    ),
    (
        "node-saml/test/static/signatures/valid/response.root-signed.assertion-unsigned.xml",
        "audience_missing",
    ),
    (
        "node-saml/test/static/signatures/valid/response.root-unsigned.assertion-signed.xml",
        "audience_missing",
    ),
    // Its signatures are the last children of Response and Assertion, not right after Issuer.
    (
        "node-saml/test/static/signatures/valid/response.root-signed.assertion-signed.1advice-signed.xml",
        "signature_misplaced",
    ),
    (
        "node-saml/test/static/signatures/valid/response.root-signed.assertion-signed.2advice-unsigned.xml",
        "audience_missing",
    ),
    (
        "node-saml/test/static/signatures/valid/response.root-signed.assertion-unsigned-13.xml",
        "audience_missing",
    ),
    (
        "node-saml/test/static/signatures/valid/response.root-signed.assertion-unsigned-xd-signature.xml",
        "audience_missing",
    ),
    // Inside its ciphertext, SubjectConfirmationData/@NotOnOrAfter is "2020-09-25T16=7:00:00+00:00".
    (
        "node-saml/test/static/signatures/valid/response.root-signed.assertion-unsigned-encrypted.xml",
        "bad_time",
    ),
];

/// Rows whose refusal must come from one specific defence: (file, reason code).
const EXPECTED_REASONS: &[(&str, &str)] = &[
    (
        "python3-saml/tests/data/responses/response_without_reference_uri.xml.base64",
        "reference_uri_forbidden",
    ),
    (
        "python3-saml/tests/data/responses/invalids/signature_wrapping_attack2.xml.base64",
        "multiple_assertions",
    ),
    (
        "python3-saml/tests/data/responses/invalids/multiple_assertions.xml.base64",
        "multiple_assertions",
    ),
    (
        "python3-saml/tests/data/responses/valid_encrypted_assertion.xml.base64",
        "encryption_algorithm_forbidden",
    ),
    (
        "ruby-saml/test/responses/adfs_response_sha1.xml",
        "algorithm_forbidden",
    ),
    (
        "ruby-saml/test/responses/adfs_response_sha384.xml",
        "algorithm_forbidden",
    ),
    (
        "ruby-saml/test/responses/invalids/response_with_concealed_signed_assertion.xml",
        "multiple_assertions",
    ),
    (
        "ruby-saml/test/responses/invalids/response_with_doubled_signed_assertion.xml",
        "multiple_assertions",
    ),
    (
        "ruby-saml/test/responses/response_assertion_wrapped.xml.base64",
        "multiple_assertions",
    ),
    (
        "ruby-saml/test/responses/invalids/multiple_signed.xml.base64",
        "multiple_signatures",
    ),
    (
        "ruby-saml/test/responses/invalids/invalid_signature_position.xml.base64",
        "signature_misplaced",
    ),
    (
        "ruby-saml/test/responses/invalids/response_invalid_signed_element.xml.base64",
        "signature_misplaced",
    ),
    (
        "ruby-saml/test/responses/response_node_text_attack3.xml.base64",
        "digest_mismatch",
    ),
    (
        "ruby-saml/test/responses/attackxee.xml",
        "doctype_forbidden",
    ),
    (
        "ruby-saml/test/responses/unsigned_message_encrypted_unsigned_assertion.xml.base64",
        "unsigned",
    ),
    (
        "node-saml/test/static/signatures/invalid/response.root-unsigned.assertion-unsigned.xml",
        "unsigned",
    ),
    (
        "node-saml/test/static/signatures/invalid/response.root-signed-transforms.assertion-unsigned.xml",
        "transform_forbidden",
    ),
    (
        "node-saml/test/static/signatures/invalid/response.root-unsigned.assertion-signed-transforms.xml",
        "transform_forbidden",
    ),
    (
        "node-saml/test/static/signatures/invalid/response.root-resigned-by-attacker-assertion-unsigned-attackers-cert-at-keyinfo.xml",
        "signature_invalid",
    ),
    (
        "node-saml/test/static/signatures/invalid/response.root-signed.multiple-root-elements.xml",
        "malformed_xml",
    ),
    (
        "crewjam-saml/testdata/TestXswPermutationThreeIsRejected_response",
        "multiple_assertions",
    ),
    (
        "crewjam-saml/testdata/TestXswPermutationFiveIsRejected_response",
        "multiple_assertions",
    ),
    (
        "crewjam-saml/testdata/TestXswPermutationSixIsRejected_response",
        "multiple_assertions",
    ),
    (
        "samael/test_vectors/object_attack_response.xml",
        "multiple_assertions",
    ),
    (
        "pysaml2/tests/xsw/signed-xsw-assertion-wrapper.xml",
        "multiple_assertions",
    ),
    (
        "pysaml2/tests/xsw/signed-xsw-assertion-extensions.xml",
        "multiple_assertions",
    ),
    (
        "pysaml2/tests/xsw/signed-xsw-assertion-assertion.xml",
        "multiple_assertions",
    ),
    (
        "pysaml2/tests/xmlsec1-keydata/signed-response-with-hmac.xml",
        "algorithm_forbidden",
    ),
    (
        "pysaml2/tests/xmlsec1-keydata/signed-assertion-with-hmac.xml",
        "algorithm_forbidden",
    ),
    (
        "pysaml2/tests/xmlsec1-keydata/signed-assertion-random-embedded-cert.xml",
        "key_info_mismatch",
    ),
    (
        "perl-Net-SAML2/t/data/failed-assertion.xml",
        "status_not_success",
    ),
];

struct Corpus {
    dir: std::path::PathBuf,
    rows: Vec<Row>,
    /// Certificates by lower-case SHA-1 hex, with the file they came from.
    certs: HashMap<String, (TrustedCertificate, String)>,
}

fn load() -> Corpus {
    let dir = corpus_dir();
    let rows = manifest();
    let mut certs = HashMap::new();
    for r in &rows {
        let path = dir.join(r.file());
        match r.get("kind") {
            "cert" => {
                if let Ok(c) =
                    TrustedCertificate::from_any(&std::fs::read(&path).expect("cert readable"))
                {
                    certs.insert(
                        hex::encode(c.fingerprint(DigestAlgorithm::Sha1)),
                        (c, r.file().to_string()),
                    );
                }
            }
            "metadata" => {
                // Certificates of every entity in the file.
                let xml = std::fs::read(&path).expect("metadata readable");
                let ids = entity_ids(&xml);
                for id in ids {
                    if let Ok(d) = parse_idp_metadata(&xml, Some(&id)) {
                        for c in d.signing_certificates {
                            certs.insert(
                                hex::encode(c.fingerprint(DigestAlgorithm::Sha1)),
                                (c, r.file().to_string()),
                            );
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Corpus { dir, rows, certs }
}

fn entity_ids(xml: &[u8]) -> Vec<String> {
    match parse_idp_metadata(xml, None) {
        Ok(d) => vec![d.entity_id],
        Err(MetadataError::Ambiguous { candidates }) => candidates,
        Err(_) => vec![],
    }
}

fn lookup<'a>(table: &'a [(&str, &str)], file: &str) -> Option<&'a str> {
    table.iter().find(|(f, _)| *f == file).map(|(_, v)| *v)
}

fn override_field(file: &str, field: &str) -> Option<String> {
    OVERRIDES
        .iter()
        .find(|(f, k, _)| *f == file && *k == field)
        .map(|(_, _, v)| v.to_string())
}

/// The SHA-1 (hex) of the certificate the xmlsec1 column says verified the first good signature,
/// and whether that certificate only exists embedded in the message.
fn verifying_cert(row: &Row) -> Option<(String, bool)> {
    let sha = row.get("verified_by_sha1");
    (sha.len() == 40).then(|| (sha.to_string(), row.get("verified_by_embedded") == "yes"))
}

fn sp_key(c: &Corpus, row: &Row) -> Option<SigningKey> {
    let source = row.file().split('/').next()?;
    let key_row = c
        .rows
        .iter()
        .find(|r| r.get("kind") == "key" && r.file().starts_with(source))?;
    SigningKey::from_pem(&std::fs::read(c.dir.join(key_row.file())).ok()?).ok()
}

fn read_message(c: &Corpus, row: &Row) -> Vec<u8> {
    let raw = std::fs::read(c.dir.join(row.file())).expect("fixture readable");
    if row.get("encoding").contains("base64") {
        decode_post(&raw, &Default::default()).expect("fixture base64 decodes")
    } else {
        raw
    }
}

fn trust_for(c: &Corpus, row: &Row) -> IdpTrust {
    if let Some(sha) = override_field(row.file(), "TrustSha1") {
        return IdpTrust::Certificates(vec![c.certs[&sha].0.clone()]);
    }
    let source = row.file().split('/').next().unwrap_or("");
    let accept = row.accept();
    match verifying_cert(row) {
        // A corpus certificate verifies it: configure that one.
        Some((sha, _)) if c.certs.contains_key(&sha) => {
            IdpTrust::Certificates(vec![c.certs[&sha].0.clone()])
        }
        // Only a certificate inside the message verifies it. For a message that should pass, that is
        // fingerprint trust; for one that should not, it may be the attacker's own certificate, so
        // configure what the source project's SP trusts instead.
        Some((sha, _)) if accept => {
            IdpTrust::Fingerprint(Fingerprint::parse(&format!("sha1:{sha}")).expect("sha1 hex"))
        }
        _ => {
            let own: Vec<TrustedCertificate> = c
                .certs
                .values()
                .filter(|(_, f)| f.starts_with(source))
                .map(|(c, _)| c.clone())
                .collect();
            if own.is_empty() {
                IdpTrust::Certificates(c.certs.values().map(|(c, _)| c.clone()).collect())
            } else {
                IdpTrust::Certificates(own)
            }
        }
    }
}

/// The values a row's response was issued for (see the module comment).
struct RowContext {
    acs: String,
    sp: String,
    idp: String,
    irt: Option<String>,
    user_attr: Option<String>,
    now: UnixTime,
}

impl RowContext {
    fn of(row: &Row) -> RowContext {
        let file = row.file();
        let field = |k: &str| override_field(file, k).or_else(|| row.field(k));
        let now = field("now").or_else(|| row.valid_at()).expect("valid_at");
        RowContext {
            acs: field("Recipient")
                .or_else(|| field("Destination"))
                .unwrap_or_default(),
            sp: field("Audience").unwrap_or_default(),
            idp: field("Issuer").unwrap_or_default(),
            irt: field("InResponseTo"),
            user_attr: field("UsernameAttribute"),
            now: UnixTime::parse(&now).expect("valid_at parses"),
        }
    }

    fn expected(&self) -> ExpectedContext<'_> {
        ExpectedContext {
            sp_entity_id: &self.sp,
            acs_url: &self.acs,
            idp_entity_id: &self.idp,
            solicitation: match &self.irt {
                Some(i) => Solicitation::Request(i),
                None => Solicitation::Unsolicited,
            },
            clock_skew_secs: 180,
            username: match &self.user_attr {
                Some(a) => UsernameSource::Attribute(a),
                None => UsernameSource::NameId,
            },
        }
    }
}

struct Outcome {
    verify: Result<(), Error>,
    accept: Option<Result<ssogate::saml::Assertion, Error>>,
}

fn judge(c: &Corpus, row: &Row, allow_sha1: bool, trust: &IdpTrust) -> Outcome {
    let xml = read_message(c, row);
    let opts = VerifyOptions {
        algorithms: AlgorithmPolicy { allow_sha1 },
        decryption_key: sp_key(c, row),
        ..VerifyOptions::default()
    };
    let verified =
        match UnverifiedResponse::parse(&xml, &opts.limits).and_then(|u| u.verify(trust, &opts)) {
            Ok(v) => v,
            Err(e) => {
                return Outcome {
                    verify: Err(e),
                    accept: None,
                };
            }
        };
    let rc = RowContext::of(row);
    let (ctx, now) = (rc.expected(), rc.now);
    let replay = InMemoryReplayCache::new();
    Outcome {
        verify: Ok(()),
        accept: Some(
            verified
                .accept(&ctx, now)
                .and_then(|u| u.redeem(&replay, now)),
        ),
    }
}

/// Whether the strict policy refuses the row for SHA-1 (then only the legacy switch lets it through).
fn refused_for_sha1(out: &Outcome) -> bool {
    match (&out.verify, &out.accept) {
        (Err(e), _) | (Ok(()), Some(Err(e))) => {
            e.code() == "algorithm_forbidden" && e.to_string().contains("SHA-1 is accepted only")
        }
        _ => false,
    }
}

#[test]
fn every_response_row_gets_its_verdict() {
    let c = load();
    let mut checked = 0;
    let mut sha1_rows = 0;
    let mut failures = Vec::new();
    for row in c.rows.iter().filter(|r| r.get("kind") == "response") {
        let file = row.file();
        let expect = row.get("expectation");
        let accept_expected = row.accept();
        let trust = trust_for(&c, row);
        let strict = judge(&c, row, false, &trust);
        let sha1 = refused_for_sha1(&strict);
        let out = if sha1 {
            judge(&c, row, true, &trust)
        } else {
            strict
        };
        let report = match (&out.verify, &out.accept) {
            (Err(e), _) => format!("refused at verify: {} ({e})", e.code()),
            (Ok(()), Some(Err(e))) => format!("refused at accept: {} ({e})", e.code()),
            (Ok(()), Some(Ok(a))) => format!("accepted: username {:?}", a.username),
            (Ok(()), None) => unreachable!(),
        };
        eprintln!("{file}: {report}");
        checked += 1;
        if accept_expected {
            if let Err(e) = &out.verify {
                if lookup(PROTOCOL_REFUSALS, file) != Some(e.code()) {
                    failures.push(format!("{file}: expected ACCEPT, {report}"));
                }
                continue;
            }
            match (
                out.accept.as_ref().expect("verified"),
                lookup(PROTOCOL_REFUSALS, file),
            ) {
                (Ok(a), None) => {
                    if let Some(n) = row.field("NameID").filter(|n| !n.contains('{'))
                        && a.username != n
                    {
                        failures.push(format!(
                            "{file}: username {:?}, manifest NameID {n:?}",
                            a.username
                        ));
                    }
                }
                (Ok(_), Some(code)) => failures.push(format!(
                    "{file}: expected protocol refusal {code}, accepted"
                )),
                (Err(e), Some(code)) if e.code() == code => {}
                (Err(_), _) => failures.push(format!("{file}: expected ACCEPT, {report}")),
            }
            if sha1 {
                sha1_rows += 1;
            }
        } else {
            let refused = match (&out.verify, &out.accept) {
                (Err(e), _) | (Ok(()), Some(Err(e))) => Some(e.code()),
                _ => None,
            };
            match (refused, lookup(EXPECTED_REASONS, file)) {
                (None, _) => failures.push(format!("{file}: expected REJECT ({expect}), {report}")),
                (Some(got), Some(want)) if got != want => {
                    failures.push(format!("{file}: refused with {got}, expected {want}"))
                }
                _ => {}
            }
        }
    }
    assert!(checked >= 100, "only {checked} response rows found");
    record_cases("corpus", checked);
    // The SHA-1 ACCEPT rows were refused (algorithm_forbidden) without the legacy switch.
    assert!(
        sha1_rows >= 8,
        "SHA-1 rows that needed the legacy switch: {sha1_rows}"
    );
    assert!(
        failures.is_empty(),
        "{} rows disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn fingerprint_only_trust_needs_a_certificate_in_the_message() {
    let c = load();
    // "ACCEPT only with configured cert (ruby-saml.crt); fingerprint-only config must REJECT".
    let row = c
        .rows
        .iter()
        .find(|r| {
            r.file()
                .ends_with("valid_response_without_x509certificate.xml.base64")
        })
        .expect("row");
    let fp = IdpTrust::Fingerprint(
        Fingerprint::parse("sha1:4b68c453c7d994aad9025c99d5efcf566287fe8d").expect("fp"),
    );
    let out = judge(&c, row, true, &fp);
    assert_eq!(
        out.verify.err().map(|e| e.code()),
        Some("fingerprint_no_certificate")
    );
}

#[test]
fn node_text_attack_keeps_the_whole_name_id() {
    let c = load();
    // "ACCEPT signature (ruby-saml.crt); NameID must be the full \"test@onelogin.com\"": a comment
    // splits the NameID text; the signature verifies and the name comes back whole.
    let row = c
        .rows
        .iter()
        .find(|r| r.file().ends_with("response_node_text_attack2.xml.base64"))
        .expect("row");
    let xml = read_message(&c, row);
    let opts = VerifyOptions {
        algorithms: AlgorithmPolicy { allow_sha1: true },
        ..Default::default()
    };
    let v = UnverifiedResponse::parse(&xml, &opts.limits)
        .and_then(|u| u.verify(&trust_for(&c, row), &opts))
        .expect("verifies");
    assert!(
        String::from_utf8_lossy(&xml).contains("<!--"),
        "the fixture splits the NameID with a comment"
    );
    assert_eq!(
        v.name_id().map(|n| n.value).as_deref(),
        Some("test@onelogin.com")
    );
}

#[test]
fn logout_rows_get_their_verdict() {
    let c = load();
    let mut n = 0;
    for row in c.rows.iter().filter(|r| r.get("kind") == "logout") {
        let xml = read_message(&c, row);
        let trust = trust_for(&c, row);
        let opts = VerifyOptions {
            algorithms: AlgorithmPolicy { allow_sha1: true },
            ..Default::default()
        };
        let got = verify_logout(LogoutBinding::Post(&xml), &trust, &opts);
        let expect_accept = row.accept();
        eprintln!(
            "{}: {:?}",
            row.file(),
            got.as_ref().map(|_| "verified").map_err(|e| e.code())
        );
        if expect_accept {
            match got {
                Ok(LogoutMessage::Request(r)) => {
                    assert_eq!(Some(r.name_id.value), row.field("NameID"), "{}", row.file());
                }
                other => panic!(
                    "{}: expected a verified LogoutRequest, got {other:?}",
                    row.file()
                ),
            }
        } else {
            // Unsigned logout messages are refused: signed logout is required.
            assert!(got.is_err(), "{}: expected refusal", row.file());
        }
        n += 1;
    }
    assert_eq!(n, 4, "logout rows");
    record_cases("corpus", n);
}

#[test]
fn metadata_rows_parse() {
    let c = load();
    let mut n = 0;
    for row in c.rows.iter().filter(|r| r.get("kind") == "metadata") {
        let xml = std::fs::read(c.dir.join(row.file())).expect("readable");
        let ids = entity_ids(&xml);
        assert!(!ids.is_empty(), "{}: no IdP found", row.file());
        for id in &ids {
            let d = parse_idp_metadata(&xml, Some(id))
                .unwrap_or_else(|e| panic!("{} {id}: {e}", row.file()));
            assert!(
                !d.signing_certificates.is_empty(),
                "{} {id}: no signing certificate",
                row.file()
            );
        }
        // For a file that is one EntityDescriptor, our signing certificates are among those the
        // manifest lists (it lists every embedded certificate, encryption ones included; for
        // aggregates it lists only the first few).
        let doc = ssogate::saml::xml::Document::parse(
            &xml,
            &ssogate::saml::metadata::idp::metadata_limits(),
        )
        .expect("parses");
        if doc.local_name(doc.root()) == "EntityDescriptor" {
            let d = parse_idp_metadata(&xml, None).expect("single entity");
            let listed = row.get("certificates");
            for cert in &d.signing_certificates {
                let sha = hex::encode(cert.fingerprint(DigestAlgorithm::Sha1));
                assert!(
                    listed.contains(&sha),
                    "{}: signing certificate {sha} not in the manifest's list",
                    row.file()
                );
            }
        }
        n += 1;
    }
    assert!(n >= 15, "metadata rows: {n}");
    record_cases("corpus", n);
}

#[test]
fn the_corpus_is_where_the_tests_say() {
    let c = load();
    assert!(Path::new(&c.dir).join("README.md").exists());
    // Every source folder carries its licence and where it came from.
    for row in &c.rows {
        let source = row.file().split('/').next().expect("folder");
        for f in ["LICENSE", "SOURCE"] {
            assert!(
                c.dir.join(source).join(f).exists(),
                "{source}/{f} is missing"
            );
        }
    }
    assert!(
        c.certs.len() >= 10,
        "certificates indexed: {}",
        c.certs.len()
    );
}

/// The SAML tracer's steps over every refused response row: the first failing step carries the
/// reason the verification pipeline gives (the one `ssogate saml verify` prints: the same
/// decode, parse, verify, accept and redeem), and every step before it passed.
#[test]
fn the_tracer_fails_at_the_step_that_refuses() {
    use ssogate::saml::trace::{Tracer, Verdict};
    let c = load();
    let mut compared = 0;
    let mut failures = Vec::new();
    for row in c.rows.iter().filter(|r| r.get("kind") == "response") {
        let trust = trust_for(&c, row);
        let strict = judge(&c, row, false, &trust);
        let allow_sha1 = refused_for_sha1(&strict);
        let out = if allow_sha1 {
            judge(&c, row, true, &trust)
        } else {
            strict
        };
        let expected = match (&out.verify, &out.accept) {
            (Err(e), _) | (Ok(()), Some(Err(e))) => e.code(),
            _ => continue,
        };
        // The same row through the tracer, step by step.
        let file = row.file();
        let opts = VerifyOptions {
            algorithms: AlgorithmPolicy { allow_sha1 },
            decryption_key: sp_key(&c, row),
            ..VerifyOptions::default()
        };
        let raw = std::fs::read(c.dir.join(file)).expect("fixture");
        let mut t = Tracer::default();
        let traced = (|| -> Result<(), Error> {
            let xml = if row.get("encoding").contains("base64") {
                t.check("decode", vec![], || decode_post(&raw, &opts.limits))?
            } else {
                raw.clone()
            };
            let u = t.check("parse", vec![], || {
                UnverifiedResponse::parse(&xml, &opts.limits)
            })?;
            let v = t.check("signature", vec![], || u.verify(&trust, &opts))?;
            let rc = RowContext::of(row);
            let (ctx, now) = (rc.expected(), rc.now);
            let un = t.accept(&v, &ctx, now)?;
            let replay = InMemoryReplayCache::new();
            t.check("replay", vec![], || un.redeem(&replay, now))?;
            Ok(())
        })();
        compared += 1;
        let first = t.first_failure();
        match (traced, first) {
            (Err(e), Some(step)) => {
                let Verdict::Failed { code, .. } = &step.verdict else {
                    unreachable!()
                };
                if code != expected || e.code() != expected {
                    failures.push(format!(
                        "{file}: tracer fails at {} with {code}, pipeline with {expected}",
                        step.name
                    ));
                }
                let before_ok = t
                    .steps
                    .iter()
                    .take_while(|s| s.name != step.name)
                    .all(|s| s.verdict == Verdict::Passed);
                if !before_ok {
                    failures.push(format!(
                        "{file}: a step before the failing one did not pass"
                    ));
                }
            }
            (r, f) => failures.push(format!(
                "{file}: tracer {:?}, first failure {:?}; pipeline refused with {expected}",
                r.map_err(|e| e.code()),
                f.map(|s| &s.name)
            )),
        }
    }
    assert!(compared >= 60, "only {compared} refused rows traced");
    assert!(
        failures.is_empty(),
        "{} rows differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
