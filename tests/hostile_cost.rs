//! What a message can cost before its signature is verified: for every family of hostile
//! documents (`common::hostile_gen`), at every size up to the message cap, and for random mixes
//! of all of them (proptest), the work counted while parsing, checking the document and the
//! signature's shape, and canonicalising SignedInfo stays within [`K`] steps per input byte.
//! Work is counted (nodes, namespace comparisons, bytes canonicalised), not timed; the times are
//! in `benches/hostile.rs`.

mod common;

use common::generate::{idp, now};
use common::hostile_gen::{families, random_mix};
use proptest::prelude::*;
use ssogate::saml::bindings::decode_post;
use ssogate::saml::xml::{Document, Limits};
use ssogate::saml::xmldsig::IdpTrust;
use ssogate::saml::{UnverifiedResponse, VerifyOptions};

/// Steps of work allowed per byte of input, for any document.
const K: u64 = 16;

/// Parses and verifies `xml` against the test IdP; the work it took and the refusal code.
fn work_of(xml: &[u8]) -> (u64, Option<&'static str>) {
    let limits = Limits::default();
    let (doc, parse_work) = Document::parse_with_work(xml, &limits);
    let doc = match doc {
        Ok(d) => d,
        Err(e) => {
            return (parse_work, Some(ssogate::saml::Error::from(e).code()));
        }
    };
    let handle = doc.work_handle();
    let r = UnverifiedResponse::from_document(doc).and_then(|u| {
        u.verify(
            &IdpTrust::Certificates(vec![idp().cert.clone()]),
            &VerifyOptions::default(),
        )
    });
    (handle.get(), r.err().map(|e| e.code()))
}

fn assert_bounded(name: &str, xml: &[u8]) -> (u64, Option<&'static str>) {
    let (work, code) = work_of(xml);
    assert!(
        work <= K * xml.len() as u64,
        "{name}: {work} steps for {} bytes ({:.1} per byte; refused as {code:?})",
        xml.len(),
        work as f64 / xml.len() as f64
    );
    (work, code)
}

#[test]
fn every_family_at_every_size_stays_within_the_bound() {
    let cap = Limits::default().max_bytes;
    for f in families() {
        let mut worst = (0.0f64, 0usize, "");
        for size in (1..=8).map(|i| cap * i / 8 - 16 * 1024).chain([1024]) {
            let xml = (f.build)(size);
            let (work, code) = assert_bounded(f.name, xml.as_bytes());
            assert!(
                code.is_some(),
                "{}: a hostile document was accepted",
                f.name
            );
            let per_byte = work as f64 / xml.len() as f64;
            if per_byte > worst.0 {
                worst = (per_byte, xml.len(), code.unwrap_or("-"));
            }
        }
        eprintln!(
            "{:<28} worst {:>5.1} steps/byte at {:>7} bytes ({})",
            f.name, worst.0, worst.1, worst.2
        );
    }
}

#[test]
fn the_families_named_in_the_issue_are_refused_early() {
    let fam = |n: &str| {
        families()
            .into_iter()
            .find(|f| f.name == n)
            .expect("family")
    };
    let size = 200 * 1024;
    for (name, code) in [
        ("inclusive_namespaces_many", "inclusive_namespaces_refused"),
        ("prefix_list_huge", "inclusive_namespaces_refused"),
        ("keyinfo_certificates", "key_info_too_many_certificates"),
        ("transforms_many", "transform_forbidden"),
    ] {
        let xml = (fam(name).build)(size);
        let (_, got) = assert_bounded(name, xml.as_bytes());
        assert_eq!(got, Some(code), "{name}");
    }
    // Namespace declarations beyond the scope limit are refused by the parser.
    // (Half the limit on each of two nested elements: each within the attribute limit.)
    let half = Limits::default().max_namespaces_in_scope / 2 + 1;
    let decls = |from: usize| -> String {
        (from..from + half)
            .map(|i| format!(" xmlns:z{i}=\"urn:z{i}\""))
            .collect()
    };
    let xml = common::generate::Template::default()
        .signed_both(idp())
        .replacen(
            "<samlp:Status>",
            &format!(
                "<samlp:Extensions{}><x{}/></samlp:Extensions><samlp:Status>",
                decls(0),
                decls(half)
            ),
            1,
        );
    assert_eq!(work_of(xml.as_bytes()).1, Some("too_many_namespaces"));
}

#[test]
fn a_good_signed_response_costs_what_its_size_says_too() {
    let xml = common::generate::Template::default().signed_both(idp());
    let (work, code) = assert_bounded("baseline", xml.as_bytes());
    assert_eq!(code, None, "the baseline verifies");
    assert!(work > xml.len() as u64, "work is counted at all: {work}");
    let _ = now();
}

#[test]
fn a_deflated_post_inflates_at_most_64_times_its_size() {
    use std::io::Write as _;
    let limits = Limits::default();
    // 200 KiB of one repeated element deflates to a few hundred bytes.
    let xml = format!("<a>{}</a>", "<b/>".repeat(50_000));
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(xml.as_bytes()).expect("deflate");
    let deflated = z.finish().expect("deflate");
    assert!(deflated.len() * 64 < xml.len(), "the test input is a bomb");
    let b64 = common::generate::b64_raw(&deflated);
    let e = decode_post(b64.as_bytes(), &limits).expect_err("refused");
    assert_eq!(e.code(), "bad_base64", "{e}");
    // A normal deflated message (ratio well under 64) still decodes.
    let msg = common::generate::Template::default().signed_both(idp());
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(msg.as_bytes()).expect("deflate");
    let b64 = common::generate::b64_raw(&z.finish().expect("deflate"));
    assert_eq!(
        decode_post(b64.as_bytes(), &limits).expect("decodes"),
        msg.as_bytes()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random mixes of every hostile structure, at random sizes: the bound holds for all.
    #[test]
    fn random_mixes_stay_within_the_bound(seed in any::<u64>(), size in 512usize..200_000) {
        let xml = random_mix(seed, size);
        let (work, _) = work_of(xml.as_bytes());
        prop_assert!(
            work <= K * xml.len() as u64,
            "{} steps for {} bytes", work, xml.len()
        );
    }

    /// Any family at any size.
    #[test]
    fn any_family_at_any_size(f in 0usize..13, size in 256usize..240_000) {
        let fams = families();
        let fam = &fams[f % fams.len()];
        let xml = (fam.build)(size);
        let (work, _) = work_of(xml.as_bytes());
        prop_assert!(
            work <= K * xml.len() as u64,
            "{}: {} steps for {} bytes", fam.name, work, xml.len()
        );
    }
}
