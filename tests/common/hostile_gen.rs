//! Hostile documents by family: each a Response (from the signed baseline) with one structure
//! blown up to about a target size, in the place where it is read before any signature is
//! verified. Used by `tests/hostile_cost.rs` (work bounded by the size) and `benches/hostile.rs`
//! (time against a 64 KiB signed response).
#![allow(dead_code)]

use std::fmt::Write as _;

use ssogate::saml::xml::Limits;

use super::generate::{Template, idp};

/// Namespace declarations a family may put in scope (the limit, less the baseline's own).
fn scope() -> usize {
    Limits::default().max_namespaces_in_scope - 4
}

/// Attributes a family may put on one element.
fn attrs_max() -> usize {
    Limits::default().max_attributes
}

const EXC: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const DS: &str = "http://www.w3.org/2000/09/xmldsig#";

/// The signed baseline every family starts from.
pub fn baseline() -> String {
    Template::default().signed_both(idp())
}

fn insert_before(xml: &str, marker: &str, what: &str) -> String {
    let i = xml.find(marker).expect("marker in the baseline");
    format!("{}{what}{}", &xml[..i], &xml[i..])
}

fn insert_after(xml: &str, marker: &str, what: &str) -> String {
    let i = xml.find(marker).expect("marker in the baseline") + marker.len();
    format!("{}{what}{}", &xml[..i], &xml[i..])
}

/// Repeats `piece(k)` until `budget` bytes are used.
fn fill(budget: usize, mut piece: impl FnMut(usize) -> String) -> String {
    let mut out = String::with_capacity(budget + 256);
    let mut k = 0;
    while out.len() < budget {
        out.push_str(&piece(k));
        k += 1;
    }
    out
}

/// Content for samlp:Extensions (before Status, where any element may stand).
fn in_extensions(body: &str, decls: &str) -> String {
    insert_before(
        &baseline(),
        "<samlp:Status>",
        &format!("<samlp:Extensions{decls}>{body}</samlp:Extensions>"),
    )
}

const C14N_METHOD: &str =
    "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>";

/// One hostile family.
pub struct Family {
    pub name: &'static str,
    /// The XML of about `size` bytes.
    pub build: fn(usize) -> String,
}

pub fn families() -> Vec<Family> {
    vec![
        Family {
            name: "inclusive_namespaces_many",
            build: inclusive_namespaces_many,
        },
        Family {
            name: "prefix_list_huge",
            build: prefix_list_huge,
        },
        Family {
            name: "namespace_scope_attributes",
            build: namespace_scope_attributes,
        },
        Family {
            name: "deep_declarations",
            build: deep_declarations,
        },
        Family {
            name: "distinct_ids",
            build: distinct_ids,
        },
        Family {
            name: "attributes_per_element",
            build: attributes_per_element,
        },
        Family {
            name: "keyinfo_certificates",
            build: keyinfo_certificates,
        },
        Family {
            name: "transforms_many",
            build: transforms_many,
        },
        Family {
            name: "advice_signatures",
            build: advice_signatures,
        },
        Family {
            name: "signedinfo_text_and_pis",
            build: signedinfo_text_and_pis,
        },
        Family {
            name: "issuer_split_by_comments",
            build: issuer_split_by_comments,
        },
        Family {
            name: "nested_prefixed_elements",
            build: nested_prefixed_elements,
        },
        Family {
            name: "tiny_elements",
            build: tiny_elements,
        },
    ]
}

/// Thousands of InclusiveNamespaces, each with a long PrefixList, in the CanonicalizationMethod
/// of SignedInfo (was: elements × tokens × declarations in c14n, ~40 s).
fn inclusive_namespaces_many(size: usize) -> String {
    let list: String = (0..100).map(|i| format!("p{i} ")).collect();
    let body = fill(size, |_| {
        format!("<ec:InclusiveNamespaces xmlns:ec=\"{EXC}\" PrefixList=\"{list}\"/>")
    });
    insert_after(
        &baseline().replacen(
            C14N_METHOD,
            "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"></ds:CanonicalizationMethod>",
            1,
        ),
        "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\">",
        &body,
    )
}

/// One InclusiveNamespaces whose PrefixList names tens of thousands of prefixes.
fn prefix_list_huge(size: usize) -> String {
    let list = fill(size, |k| format!("p{k} "));
    insert_after(
        &baseline().replacen(
            C14N_METHOD,
            "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"></ds:CanonicalizationMethod>",
            1,
        ),
        "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\">",
        &format!("<ec:InclusiveNamespaces xmlns:ec=\"{EXC}\" PrefixList=\"{list}\"/>"),
    )
}

/// As many prefixes declared as the scope limit allows, then elements with as many attributes as
/// allowed, using them all in turn: every
/// attribute's prefix is looked up through the whole scope (the most lookup work the limits let
/// through).
fn namespace_scope_attributes(size: usize) -> String {
    let n = scope();
    let decls: String = (0..n)
        .map(|i| format!(" xmlns:n{i}=\"urn:n{i}\""))
        .collect();
    let attrs: String = (0..attrs_max())
        .map(|i| format!(" n{}:a{i}=\"\"", i % n))
        .collect();
    in_extensions(&fill(size, |_| format!("<x{attrs}/>")), &decls)
}

/// Elements nested as deep as the scope limit allows, each declaring a prefix; inside, elements
/// using the outermost one.
fn deep_declarations(size: usize) -> String {
    let mut open = String::new();
    let mut close = String::new();
    let n = scope();
    for i in 0..n {
        write!(open, "<q{i}:d xmlns:q{i}=\"urn:q{i}\">").expect("string");
        close.insert_str(0, &format!("</q{i}:d>"));
    }
    let last = n - 1;
    let body = fill(size, |_| format!("<q0:x q0:a=\"1\" q{last}:b=\"2\"/>"));
    in_extensions(&format!("{open}{body}{close}"), "")
}

/// Tens of thousands of distinct IDs (was: a quadratic uniqueness check).
fn distinct_ids(size: usize) -> String {
    in_extensions(&fill(size, |k| format!("<x ID=\"i{k}\"/>")), "")
}

/// Elements with as many attributes as allowed (the duplicate check is per element).
fn attributes_per_element(size: usize) -> String {
    let attrs: String = (0..attrs_max()).map(|i| format!(" a{i}=\"\"")).collect();
    in_extensions(&fill(size, |_| format!("<x{attrs}/>")), "")
}

/// Thousands of certificates in the signature's KeyInfo.
fn keyinfo_certificates(size: usize) -> String {
    let body = fill(size, |_| {
        "<ds:X509Certificate>AAAA</ds:X509Certificate>".to_string()
    });
    insert_after(&baseline(), "<ds:X509Data>", &body)
}

/// Thousands of Transforms.
fn transforms_many(size: usize) -> String {
    let body = fill(size, |_| format!("<ds:Transform Algorithm=\"{EXC}\"/>"));
    insert_after(&baseline(), "<ds:Transforms>", &body)
}

/// Thousands of (empty) signatures quoted in Advice.
fn advice_signatures(size: usize) -> String {
    let body = fill(size, |_| format!("<ds:Signature xmlns:ds=\"{DS}\"/>"));
    insert_before(
        &baseline(),
        "<saml:AuthnStatement",
        &format!("<saml:Advice>{body}</saml:Advice>"),
    )
}

/// SignedInfo (canonicalised before the RSA check) padded with text runs and PIs.
fn signedinfo_text_and_pis(size: usize) -> String {
    let body = fill(size, |_| "\n  <?pi some data?>\n".to_string());
    insert_after(&baseline(), "<ds:SignedInfo>", &body)
}

/// The Response's Issuer cut into thousands of text runs by comments.
fn issuer_split_by_comments(size: usize) -> String {
    let body = fill(size, |_| "a<!---->".to_string());
    insert_after(&baseline(), "<saml:Issuer>", &body)
}

/// Elements nested as deep as the scope allows, again and again, each level with its own prefix and a prefixed
/// attribute (the c14n and parser scopes at their deepest).
fn nested_prefixed_elements(size: usize) -> String {
    let n = scope().min(attrs_max());
    let decls: String = (0..n)
        .map(|i| format!(" xmlns:m{i}=\"urn:m{i}\""))
        .collect();
    let mut one = String::new();
    for i in 0..n {
        write!(one, "<m{i}:e m{}:a=\"\">", n - 1 - i).expect("string");
    }
    for i in (0..n).rev() {
        write!(one, "</m{i}:e>").expect("string");
    }
    in_extensions(&fill(size, |_| one.clone()), &decls)
}

/// The most nodes per byte: empty elements of one letter.
fn tiny_elements(size: usize) -> String {
    in_extensions(&"<a/>".repeat(size / 4), "")
}

/// Closes the innermost element `random_mix` opened (its prefix is kept between two NULs).
fn close_innermost(out: &mut String) {
    let i = out.rfind('\u{0}').expect("marker");
    let j = out[..i].rfind('\u{0}').expect("marker");
    let p = out[j + 1..i].to_string();
    out.replace_range(j..=i, "");
    write!(out, "</r{p}:e>").expect("string");
}

/// Random XML-ish content for Extensions from a seed: nested elements with declared and used
/// prefixes, IDs, attributes, comments, PIs and text, in any mix.
pub fn random_mix(seed: u64, size: usize) -> String {
    let mut r = seed | 1;
    let mut next = move |n: u64| {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        r % n.max(1)
    };
    let nd = scope().min(attrs_max()) / 2;
    let decls: String = (0..nd)
        .map(|i| format!(" xmlns:r{i}=\"urn:r{i}\""))
        .collect();
    let mut out = String::new();
    let mut depth = 0usize;
    let mut k = 0u64;
    while out.len() < size {
        k += 1;
        match next(8) {
            0 | 1 if depth < 50 => {
                let p = next(nd as u64);
                write!(out, "<r{p}:e").expect("string");
                if next(3) == 0 && depth < 10 {
                    write!(out, " xmlns:l{k}=\"urn:l{k}\"").expect("string");
                }
                for a in 0..next(attrs_max() as u64 / 2) {
                    write!(out, " r{}:a{a}=\"v\"", next(nd as u64)).expect("string");
                }
                if next(4) == 0 {
                    write!(out, " ID=\"id{k}\"").expect("string");
                }
                out.push('>');
                depth += 1;
                out.push_str(&format!("<!--{p}-->"));
                // Closed below, with the prefix it was opened with.
                out.push_str(&format!("\u{0}{p}\u{0}"));
            }
            2 => out.push_str("text &amp; more "),
            3 => out.push_str("<?pi data?>"),
            4 => {
                let n = next(attrs_max() as u64 + 1);
                let attrs: String = (0..n).map(|i| format!(" b{i}=\"\"")).collect();
                write!(out, "<y{attrs}/>").expect("string");
            }
            _ if depth > 0 => {
                close_innermost(&mut out);
                depth -= 1;
            }
            _ => out.push_str("<z/>"),
        }
    }
    for _ in 0..depth {
        close_innermost(&mut out);
    }
    in_extensions(&out, &decls)
}
