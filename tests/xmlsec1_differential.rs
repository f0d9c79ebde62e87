//! Differential test against Debian's `xmlsec1` (libxmlsec1 + libxml2), the reference verifier.
//!
//! Valid fixtures (ours, signed by our signer; the shipped example, signed by xmlsec1; real IdP
//! responses from the corpus) and a few thousand mutations of them: byte flips, namespace
//! declarations moved or prefixes renamed, whitespace inserted, attributes reordered. For each:
//! - ssogate never accepts what xmlsec1 rejects;
//! - where ssogate rejects what xmlsec1 accepts, the reason is one of `POLICIES`, each a
//!   deliberate rule that xmlsec1 (a signature library, not an SP) does not have.
//!
//! xmlsec1 runs with the configured certificate only (`--enabled-key-data rsa`: KeyInfo ignored)
//! and verifies, one by one, the signatures ssogate relied on when it accepted (a Response whose
//! own signature a mutation destroyed may still be accepted on its intact Assertion signature),
//! or else those the fixture carries.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::generate::{Template, idp};
use ssogate::saml::response::{UnverifiedResponse, VerifyOptions};
use ssogate::saml::xmldsig::{AlgorithmPolicy, IdpTrust, TrustedCertificate};

/// Reasons ssogate refuses while xmlsec1 accepts, on purpose. Anything else is a failure.
const POLICIES: &[(&str, &str)] = &[
    (
        "key_info_mismatch",
        "KeyInfo must carry the verifying key; xmlsec1 here ignores KeyInfo",
    ),
    (
        "signature_misplaced",
        "the signature must follow Issuer; xmlsec1 verifies a signature anywhere",
    ),
    (
        "multiple_assertions",
        "exactly one Assertion; xmlsec1 does not look at SAML structure",
    ),
    ("duplicate_id", "IDs are unique; xmlsec1 resolves the first"),
    (
        "malformed_xml",
        "XML 1.0 in UTF-8 with NCName names only; libxml2 also takes XML 1.1 and recovers some names",
    ),
    ("not_utf8", "UTF-8 only"),
    ("wrong_message_type", "the root must be samlp:Response"),
    ("unsupported_version", "SAML 2.0 only"),
    ("missing_attribute", "Response/@ID and Version are required"),
    (
        "status_not_success",
        "a failed status is reported as such before any signature",
    ),
    (
        "missing_element",
        "a Response needs Status/StatusCode (SAML Core §3.2.2), signed or not",
    ),
    (
        "no_assertion",
        "a Response without an Assertion has nothing to verify for us",
    ),
    (
        "unsigned",
        "an element the signature must cover lost it (e.g. a renamed Assertion)",
    ),
    (
        "reference_not_enveloping",
        "the Reference must name the element the signature sits in",
    ),
    (
        "signature_unexpected_element",
        "no ds:Object, Manifest or unknown children in a signature",
    ),
];

struct Fixture {
    name: String,
    xml: String,
    cert_pem: PathBuf,
    trust: IdpTrust,
    sha1: bool,
    /// XPaths of the signatures the fixture carries.
    signatures: Vec<&'static str>,
}

const RESPONSE_SIG: &str = "/*[local-name()='Response']/*[local-name()='Signature']";
const ASSERTION_SIG: &str =
    "/*[local-name()='Response']/*[local-name()='Assertion']/*[local-name()='Signature']";

fn xmlsec1_available() -> bool {
    Command::new("xmlsec1")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether xmlsec1 verifies every signature at `positions`.
fn xmlsec1_accepts(dir: &Path, f: &Fixture, positions: &[&str], xml: &[u8], n: usize) -> bool {
    let file = dir.join(format!("m{n}.xml"));
    std::fs::write(&file, xml).expect("write mutation");
    let ok = !positions.is_empty()
        && positions.iter().all(|xpath| {
            Command::new("xmlsec1")
                .args(["--verify", "--enabled-key-data", "rsa", "--pubkey-cert-pem"])
                .arg(&f.cert_pem)
                .args([
                    "--id-attr:ID",
                    "urn:oasis:names:tc:SAML:2.0:protocol:Response",
                    "--id-attr:ID",
                    "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
                    "--node-xpath",
                    xpath,
                ])
                .arg(&file)
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let _ = std::fs::remove_file(&file);
    ok
}

/// ssogate's verdict, and on acceptance the positions of the signatures it relied on.
fn ssogate_verdict(f: &Fixture, xml: &[u8]) -> Result<Vec<&'static str>, &'static str> {
    let opts = VerifyOptions {
        algorithms: AlgorithmPolicy { allow_sha1: f.sha1 },
        ..Default::default()
    };
    let v = UnverifiedResponse::parse(xml, &opts.limits)
        .and_then(|u| u.verify(&f.trust, &opts))
        .map_err(|e| e.code())?;
    let mut used = Vec::new();
    if v.response_signed() {
        used.push(RESPONSE_SIG);
    }
    if v.assertion_signed() {
        used.push(ASSERTION_SIG);
    }
    Ok(used)
}

fn fixtures(dir: &Path) -> Vec<Fixture> {
    let mut out = Vec::new();
    let pem = dir.join("ours.pem");
    std::fs::write(&pem, &idp().cert_pem).expect("pem");
    let ours = IdpTrust::Certificates(vec![idp().cert.clone()]);
    let t = Template::default();
    for (name, xml, sigs) in [
        (
            "ours-assertion",
            t.signed_assertion(idp()),
            vec![ASSERTION_SIG],
        ),
        (
            "ours-response",
            t.signed_response(idp()),
            vec![RESPONSE_SIG],
        ),
        (
            "ours-both",
            t.signed_both(idp()),
            vec![RESPONSE_SIG, ASSERTION_SIG],
        ),
    ] {
        out.push(Fixture {
            name: name.into(),
            xml,
            cert_pem: pem.clone(),
            trust: ours.clone(),
            sha1: false,
            signatures: sigs,
        });
    }
    let ex = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/examples");
    let ex_cert =
        TrustedCertificate::from_any(&std::fs::read(ex.join("idp-cert.pem")).expect("cert"))
            .expect("cert");
    out.push(Fixture {
        name: "example-adfs".into(),
        xml: std::fs::read_to_string(ex.join("adfs-response.xml")).expect("example"),
        cert_pem: ex.join("idp-cert.pem"),
        trust: IdpTrust::Certificates(vec![ex_cert]),
        sha1: false,
        signatures: vec![ASSERTION_SIG],
    });
    // Real IdP output from the corpus (Google, OneLogin via crewjam; samael's IdP).
    {
        let c = common::corpus_dir();
        let md_cert = |md: &str| {
            let d = ssogate::saml::metadata::parse_idp_metadata(
                &std::fs::read(c.join(md)).expect("md"),
                None,
            )
            .expect("md parses");
            d.signing_certificates[0].clone()
        };
        for (name, resp, md, sha1) in [
            (
                "google",
                "crewjam-saml/testdata/TestSPCanHandlePlaintextResponse_response",
                "crewjam-saml/testdata/TestSPCanHandlePlaintextResponse_IDPMetadata",
                false,
            ),
            (
                "onelogin",
                "crewjam-saml/testdata/TestSPCanHandleOneloginResponse_response",
                "crewjam-saml/testdata/TestSPCanHandleOneloginResponse_IDPMetadata",
                true,
            ),
            (
                "samael-idp2",
                "samael/test_vectors/response_signed_by_idp_2.xml",
                "samael/test_vectors/idp_2_metadata.xml",
                true,
            ),
        ] {
            let raw = std::fs::read(c.join(resp)).expect("fixture");
            let xml = match ssogate::saml::bindings::decode_post(&raw, &Default::default()) {
                Ok(x) if !raw.starts_with(b"<") => String::from_utf8(x).expect("utf8"),
                _ => String::from_utf8(raw).expect("utf8"),
            };
            let cert = md_cert(md);
            let pem = dir.join(format!("{name}.pem"));
            let x = openssl::x509::X509::from_der(cert.der()).expect("der");
            std::fs::write(&pem, x.to_pem().expect("pem")).expect("write");
            let sigs = signature_positions(&xml);
            out.push(Fixture {
                name: name.into(),
                xml,
                cert_pem: pem,
                trust: IdpTrust::Certificates(vec![cert]),
                sha1,
                signatures: sigs,
            });
        }
    }
    out
}

/// Where the fixture is signed: the Response, its Assertion, or both.
fn signature_positions(xml: &str) -> Vec<&'static str> {
    use ssogate::saml::xml::{Document, ns};
    let doc = Document::parse(xml.as_bytes(), &Default::default()).expect("fixture parses");
    let root = doc.root();
    let mut v = Vec::new();
    if doc
        .children_named(root, ns::DS, "Signature")
        .next()
        .is_some()
    {
        v.push(RESPONSE_SIG);
    }
    if doc
        .children_named(root, ns::SAML, "Assertion")
        .any(|a| doc.children_named(a, ns::DS, "Signature").next().is_some())
    {
        v.push(ASSERTION_SIG);
    }
    v
}

/// A small deterministic generator (xorshift64*), so a failure can be replayed by its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Positions just after '<' of start tags (for attribute and whitespace mutations).
fn start_tags(xml: &str) -> Vec<usize> {
    xml.match_indices('<')
        .filter(|(i, _)| xml[i + 1..].starts_with(|c: char| c.is_ascii_alphabetic()))
        .map(|(i, _)| i)
        .collect()
}

fn mutate(xml: &str, rng: &mut Rng) -> (String, Vec<u8>) {
    let b = xml.as_bytes();
    match rng.below(6) {
        // Byte flip: one byte, one bit or a replacement from a telling alphabet.
        0 | 1 => {
            let i = rng.below(b.len());
            let mut v = b.to_vec();
            let alphabet = b"<>&\"'=:/ \t\n#x0aZ_-.";
            v[i] = if rng.below(2) == 0 {
                v[i] ^ (1 << rng.below(8))
            } else {
                alphabet[rng.below(alphabet.len())]
            };
            (format!("flip@{i}"), v)
        }
        // Whitespace inside a start tag (before an attribute or before '>').
        2 => {
            let tags = start_tags(xml);
            let t = tags[rng.below(tags.len())];
            let end = xml[t..].find('>').map_or(t, |e| t + e);
            let spaces: Vec<usize> = xml[t..end].match_indices(' ').map(|(i, _)| t + i).collect();
            let at = if spaces.is_empty() {
                end
            } else {
                spaces[rng.below(spaces.len())]
            };
            let ws = [" ", "\n", "\t", "  \n "][rng.below(4)];
            (
                format!("ws@{at}"),
                format!("{}{ws}{}", &xml[..at], &xml[at..]).into_bytes(),
            )
        }
        // Attribute order: swap the first two attributes of a start tag.
        3 => {
            let tags = start_tags(xml);
            let t = tags[rng.below(tags.len())];
            let end = xml[t..].find('>').map_or(t, |e| t + e);
            let tag = &xml[t..end];
            let attrs: Vec<&str> = split_attrs(tag);
            if attrs.len() < 3 {
                return ("noop".into(), xml.as_bytes().to_vec());
            }
            let mut v: Vec<&str> = attrs.clone();
            v.swap(1, 2);
            (
                format!("swap@{t}"),
                format!("{}{}{}", &xml[..t], v.join(" "), &xml[end..]).into_bytes(),
            )
        }
        // Namespace declaration moved from an element to the root (or the root's to an element).
        4 => {
            let decls: Vec<(usize, &str)> = xml.match_indices(" xmlns").collect();
            if decls.len() < 2 {
                return ("noop".into(), xml.as_bytes().to_vec());
            }
            let (i, _) = decls[1 + rng.below(decls.len() - 1)];
            let rest = &xml[i..];
            let q1 = rest.find('"').unwrap_or(0);
            let q2 = rest[q1 + 1..].find('"').map_or(0, |q| q1 + 1 + q);
            let decl = &rest[..=q2];
            let without = format!("{}{}", &xml[..i], &xml[i + decl.len()..]);
            let root_end = without.find('>').unwrap_or(0);
            let root_end = if without[..root_end].ends_with('/') {
                root_end - 1
            } else {
                root_end
            };
            (
                format!("nsmove@{i}"),
                format!("{}{decl}{}", &without[..root_end], &without[root_end..]).into_bytes(),
            )
        }
        // Prefix renamed on one element's start and end tag (changes the canonical form).
        _ => {
            let tags = start_tags(xml);
            let t = tags[rng.below(tags.len())];
            let name_end = xml[t + 1..].find([' ', '>', '/']).map_or(t, |e| t + 1 + e);
            let name = &xml[t + 1..name_end];
            match name.split_once(':') {
                Some((p, l)) => {
                    let renamed = xml.replacen(
                        &format!("<{name}"),
                        &format!("<{p}x:{l} xmlns:{p}x=\"{}\"", ns_of(xml, p)),
                        1,
                    );
                    let renamed =
                        renamed.replacen(&format!("</{name}>"), &format!("</{p}x:{l}>"), 1);
                    (format!("prefix@{t}"), renamed.into_bytes())
                }
                None => ("noop".into(), xml.as_bytes().to_vec()),
            }
        }
    }
}

fn split_attrs(tag: &str) -> Vec<&str> {
    // tag = "<name a=\"1\" b=\"2\"" without '>' (values never hold spaces in our fixtures'
    // first attributes often enough; a broken split only makes a malformed mutation).
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_q = false;
    for (i, c) in tag.char_indices() {
        match c {
            '"' => in_q = !in_q,
            ' ' if !in_q => {
                out.push(&tag[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&tag[start..]);
    out.into_iter().filter(|s| !s.is_empty()).collect()
}

fn ns_of<'a>(xml: &'a str, prefix: &str) -> &'a str {
    let key = format!("xmlns:{prefix}=\"");
    xml.find(&key)
        .map(|i| &xml[i + key.len()..])
        .and_then(|r| r.split('"').next())
        .unwrap_or("urn:x")
}

#[test]
fn never_accept_what_xmlsec1_rejects() {
    let missing =
        (!xmlsec1_available()).then(|| "xmlsec1 not found (apt-get install xmlsec1)".to_string());
    if common::require("xmlsec1", missing).is_none() {
        return;
    }
    let dir = common::scratch_dir("xmlsec1_differential");
    let fixtures = fixtures(&dir);
    let per_fixture: usize = std::env::var("SSOGATE_DIFF_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);

    // Every fixture is valid for both.
    for f in &fixtures {
        assert!(
            xmlsec1_accepts(&dir, f, &f.signatures, f.xml.as_bytes(), 0),
            "{}: xmlsec1 rejects the unmutated fixture",
            f.name
        );
        assert_eq!(
            ssogate_verdict(f, f.xml.as_bytes()).as_deref(),
            Ok(f.signatures.as_slice()),
            "{}: ssogate's verdict on the unmutated fixture",
            f.name
        );
    }

    let results = std::sync::Mutex::new((
        Vec::<String>::new(),
        BTreeMap::<String, usize>::new(),
        0usize,
    ));
    std::thread::scope(|s| {
        for (k, f) in fixtures.iter().enumerate() {
            let dir = &dir;
            let results = &results;
            s.spawn(move || {
                let mut rng = Rng(0x5EED_0000 + k as u64 * 7919);
                for n in 0..per_fixture {
                    let (what, m) = mutate(&f.xml, &mut rng);
                    if what == "noop" {
                        continue;
                    }
                    let ours = ssogate_verdict(f, &m);
                    // xmlsec1 checks what ssogate relied on when it accepted; otherwise the
                    // signatures the fixture carries.
                    let positions: &[&str] = match &ours {
                        Ok(used) => used,
                        Err(_) => &f.signatures,
                    };
                    let theirs = xmlsec1_accepts(dir, f, positions, &m, k * 100_000 + n);
                    let mut r = results.lock().expect("lock");
                    r.2 += 1;
                    let key = match (&ours, theirs) {
                        (Ok(_), true) => "both accept".to_string(),
                        (Err(code), false) => format!("both reject (ours: {code})"),
                        (Ok(_), false) => {
                            let keep = dir.join(format!("disagree-{}-{what}.xml", f.name));
                            let _ = std::fs::write(&keep, &m);
                            r.0.push(format!("{} {what}: ssogate ACCEPTS what xmlsec1 rejects (kept: {})", f.name, keep.display()));
                            "ssogate accepts, xmlsec1 rejects".into()
                        }
                        (Err(code), true) => {
                            if !POLICIES.iter().any(|(c, _)| c == code) {
                                let _ = std::fs::write(dir.join(format!("disagree-{}-{what}.xml", f.name)), &m);
                                r.0.push(format!("{} {what}: ssogate rejects ({code}) what xmlsec1 accepts, and no policy says why", f.name));
                            }
                            format!("policy: {code}")
                        }
                    };
                    *r.1.entry(key).or_default() += 1;
                }
            });
        }
    });
    let (failures, tally, total) = results.into_inner().expect("lock");
    eprintln!("{total} mutations of {} fixtures:", fixtures.len());
    for (k, v) in &tally {
        eprintln!("  {v:5}  {k}");
    }
    assert!(
        total >= fixtures.len() * per_fixture * 8 / 10,
        "too few mutations ran: {total}"
    );
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
    common::record_cases("differential", total);
}
