//! The SAML Response an IdP posts to our ACS, in three states:
//! [`UnverifiedResponse`] (parsed, bounded, nothing trusted) → [`VerifiedResponse`] (signature(s)
//! verified; knows exactly which element is signed) → [`Assertion`] (every protocol check passed).
//!
//! Identity and conditions are read only from the Assertion the verified signature covers: the
//! signed Assertion itself, or the one inside the signed Response. Nothing is looked up again by
//! ID or path after verification; the node found while checking the structure is the node used.

use std::collections::BTreeMap;

use super::error::{Error, MessageError, Rejection, SignatureError};
use super::replay::ReplayCache;
use super::time::UnixTime;
use super::trace::{NoTrace, Trace};
use super::xml::{Document, Limits, NodeId, ns};
use super::xmldsig::verify::{parse_signature, verify_enveloped};
use super::xmldsig::{AlgorithmPolicy, IdpTrust, SigningKey, TrustedCertificate};

pub const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
pub const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// What verification may use besides the trust anchor.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    pub algorithms: AlgorithmPolicy,
    pub limits: Limits,
    /// The SP's private key, to decrypt an EncryptedAssertion.
    pub decryption_key: Option<SigningKey>,
}

/// Which request the response must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Solicitation<'a> {
    /// SP-initiated: InResponseTo must be this request's ID.
    Request(&'a str),
    /// IdP-initiated: InResponseTo must be absent.
    Unsolicited,
}

/// Where the user name comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsernameSource<'a> {
    NameId,
    Attribute(&'a str),
}

/// What we expect of a response at our ACS.
#[derive(Debug, Clone)]
pub struct ExpectedContext<'a> {
    pub sp_entity_id: &'a str,
    pub acs_url: &'a str,
    pub idp_entity_id: &'a str,
    pub solicitation: Solicitation<'a>,
    /// One skew applied to every time check, in seconds (default 180).
    pub clock_skew_secs: i64,
    pub username: UsernameSource<'a>,
}

/// A SAML NameID with its qualifiers (echoed back in a LogoutRequest).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NameId {
    pub value: String,
    pub format: Option<String>,
    pub name_qualifier: Option<String>,
    pub sp_name_qualifier: Option<String>,
}

/// An assertion that passed every check but one: whether it was seen before. It becomes an
/// [`Assertion`] only by being redeemed against a replay cache, so no caller can use an assertion
/// without that check, or check it before everything else has passed.
#[must_use = "an assertion is usable only once redeemed against the replay cache"]
#[derive(Debug)]
pub struct UnredeemedAssertion {
    assertion: Assertion,
    replay_key: String,
    replay_until: UnixTime,
}

impl UnredeemedAssertion {
    /// The key to record in the replay cache (the issuer and the assertion ID).
    pub fn replay_key(&self) -> &str {
        &self.replay_key
    }
    /// Until when the key must be remembered: the assertion's last valid instant plus the skew.
    pub fn replay_until(&self) -> UnixTime {
        self.replay_until
    }
    /// The assertion's ID, for messages.
    pub fn id(&self) -> &str {
        &self.assertion.id
    }
    /// Records the key in `cache`; the assertion if it was not there yet.
    pub fn redeem(self, cache: &dyn ReplayCache, now: UnixTime) -> Result<Assertion, Error> {
        let fresh = cache.check_and_remember(&self.replay_key, self.replay_until, now);
        self.redeem_recorded(fresh)
    }
    /// The assertion, given the answer of a replay cache that was asked elsewhere (an
    /// asynchronous store): `newly_recorded` is whether the key was recorded by this call.
    pub fn redeem_recorded(self, newly_recorded: bool) -> Result<Assertion, Error> {
        if newly_recorded {
            Ok(self.assertion)
        } else {
            Err(Rejection::Replayed {
                id: self.assertion.id,
            }
            .into())
        }
    }
}

/// An accepted assertion: everything the service needs to sign the agent in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    pub id: String,
    pub issuer: String,
    pub username: String,
    pub name_id: Option<NameId>,
    pub session_index: Option<String>,
    pub session_not_on_or_after: Option<UnixTime>,
    /// The earliest NotOnOrAfter of Conditions and the bearer SubjectConfirmationData.
    pub not_on_or_after: UnixTime,
    pub in_response_to: Option<String>,
    pub attributes: Attributes,
    pub response_signed: bool,
    pub assertion_signed: bool,
    pub signing_certificate_sha256: String,
}

/// The attributes of an assertion, in document order (an attribute may occur in several
/// AttributeStatements). Values share one buffer: an assertion may carry a thousand group names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    /// (Name, first value, one past the last value).
    names: Vec<(String, u32, u32)>,
    values: Vec<(u32, u32)>,
    text: String,
}

impl Attributes {
    fn value(&self, i: u32) -> &str {
        let (a, b) = self.values[i as usize];
        &self.text[a as usize..b as usize]
    }

    /// Every value of attribute `name`, in document order.
    pub fn get(&self, name: &str) -> Vec<&str> {
        self.names
            .iter()
            .filter(|(n, _, _)| n == name)
            .flat_map(|&(_, a, b)| (a..b).map(|i| self.value(i)))
            .collect()
    }

    /// The first value of `name`, if any.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.get(name).into_iter().next()
    }

    /// Attribute names and values, merged by name, sorted by name.
    pub fn to_map(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut m: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for &(ref n, a, b) in &self.names {
            m.entry(n.as_str())
                .or_default()
                .extend((a..b).map(|i| self.value(i)));
        }
        m
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// A parsed Response; nothing in it is trusted yet.
#[derive(Debug)]
pub struct UnverifiedResponse {
    doc: Document,
}

fn msg(e: MessageError) -> Error {
    Error::Malformed(e)
}

fn trim_xml_ws(s: &str) -> &str {
    let ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r');
    let b = s.as_bytes();
    let start = b.iter().position(|c| !ws(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !ws(c)).map_or(start, |e| e + 1);
    // Both ends sit next to ASCII whitespace or at the edges: valid char boundaries.
    s.get(start..end).unwrap_or("")
}

/// `s` without surrounding XML whitespace, reusing the allocation when nothing is trimmed.
fn trimmed(s: String) -> String {
    let t = trim_xml_ws(&s);
    if t.len() == s.len() { s } else { t.to_string() }
}

impl UnverifiedResponse {
    /// Parses the XML of a Response (the decoded `SAMLResponse` form value).
    pub fn parse(xml: &[u8], limits: &Limits) -> Result<Self, Error> {
        Self::from_document(Document::parse(xml, limits)?)
    }

    /// As [`Self::parse`], keeping `xml` as the document's buffer (no copy).
    pub fn parse_owned(xml: Vec<u8>, limits: &Limits) -> Result<Self, Error> {
        Self::from_document(Document::parse_owned(xml, limits)?)
    }

    /// A Response from a document already parsed (with [`Document::parse`]).
    pub fn from_document(doc: Document) -> Result<Self, Error> {
        let root = doc.root();
        if !doc.is(root, ns::SAMLP, "Response") {
            return Err(msg(MessageError::WrongRoot {
                expected: "samlp:Response",
                got: describe_element(&doc, root),
            }));
        }
        Ok(UnverifiedResponse { doc })
    }

    /// The Response's Issuer, *unverified*: a hint for finding the IdP configuration (IdP-initiated
    /// login), never an identity.
    pub fn issuer_hint(&self) -> Option<String> {
        let d = &self.doc;
        let r = d.root();
        let from_response = d.children_named(r, ns::SAML, "Issuer").next();
        let from_assertion = || {
            d.children_named(r, ns::SAML, "Assertion")
                .next()
                .and_then(|a| d.children_named(a, ns::SAML, "Issuer").next())
        };
        from_response
            .or_else(from_assertion)
            .map(|i| trim_xml_ws(&d.text(i)).to_string())
    }

    /// The Response's Destination, *unverified*: which SP the message says it is for (the SAML
    /// tracer picks the SP by it).
    pub fn destination_hint(&self) -> Option<String> {
        self.doc
            .attr(self.doc.root(), "Destination")
            .map(str::to_string)
    }

    /// Checks the structure, then verifies every signature that vouches for the assertion, with the
    /// keys `trust` allows. Decrypts an EncryptedAssertion with `opts.decryption_key`.
    pub fn verify(self, trust: &IdpTrust, opts: &VerifyOptions) -> Result<VerifiedResponse, Error> {
        trust.check_policy(opts.algorithms)?;
        let doc = self.doc;
        let root = doc.root();
        check_version(&doc, root, "Response")?;
        if doc.attr(root, "ID").is_none_or(str::is_empty) {
            return Err(msg(MessageError::MissingAttribute {
                element: "Response",
                attribute: "ID",
            }));
        }
        // A failure status needs no assertion and no signature to be reported as what it is.
        check_status(&doc, root)?;

        // 1. Exactly one Assertion or EncryptedAssertion, a child of the Response.
        let candidates: Vec<NodeId> = doc
            .child_elements(root)
            .filter(|&c| {
                doc.is(c, ns::SAML, "Assertion") || doc.is(c, ns::SAML, "EncryptedAssertion")
            })
            .collect();
        let assertion = match candidates.as_slice() {
            [] => return Err(msg(MessageError::NoAssertion)),
            [one] => *one,
            many => return Err(msg(MessageError::MultipleAssertions { count: many.len() })),
        };
        let encrypted = doc.is(assertion, ns::SAML, "EncryptedAssertion");

        // 2. One walk over the document: unique IDs, no other assertion outside the consumed one's
        //    Advice, and every ds:Signature either the Response's, the Assertion's, or inside Advice.
        let sigs = check_document(&doc, root, assertion)?;

        // 3. The shape of each signature, before any cryptography.
        let response_sig = sigs
            .response
            .map(|s| parse_signature(&doc, s, opts.algorithms))
            .transpose()?;
        let assertion_sig = sigs
            .assertion
            .map(|s| parse_signature(&doc, s, opts.algorithms))
            .transpose()?;
        if response_sig.is_none() && assertion_sig.is_none() && !encrypted {
            return Err(SignatureError::Unsigned {
                what: "neither the Response nor the Assertion is signed",
            }
            .into());
        }

        // 4. Cryptography: every present signature must verify.
        // Canonical output is about the size of the signed element: size the buffer once.
        let mut buf = Vec::with_capacity(doc.source_len() + 1024);
        let mut signing_cert: Option<TrustedCertificate> = None;
        if let Some(spec) = &response_sig {
            signing_cert = Some(verify_enveloped(
                &doc, spec, root, trust, "Response", &mut buf,
            )?);
        }
        if let Some(spec) = &assertion_sig {
            signing_cert = Some(verify_enveloped(
                &doc,
                spec,
                assertion,
                trust,
                "Assertion",
                &mut buf,
            )?);
        }

        if !encrypted {
            let signing_cert = signing_cert.ok_or(SignatureError::Unsigned {
                what: "nothing is signed",
            })?;
            return Ok(VerifiedResponse {
                doc,
                decrypted: None,
                assertion,
                response_signed: response_sig.is_some(),
                assertion_signed: assertion_sig.is_some(),
                signing_cert,
            });
        }

        // 5. EncryptedAssertion: decrypt (the outer signature, if any, was verified first), then
        //    apply the same rules to the Assertion inside.
        let key = opts
            .decryption_key
            .as_ref()
            .ok_or(Rejection::DecryptionKeyMissing)?;
        let inner = super::xmlenc::decrypt_assertion(&doc, assertion, key, &opts.limits)?;
        // The decrypted assertion's work counts as the message's.
        let inner_work = inner.work_handle();
        let outer_work = doc.work_handle();
        let _count = CountOnDrop(inner_work, outer_work);
        let inner_root = inner.root();
        let inner_sigs = check_document(&inner, inner_root, inner_root)?;
        let inner_spec = inner_sigs
            .assertion
            .map(|s| parse_signature(&inner, s, opts.algorithms))
            .transpose()?;
        if let Some(spec) = &inner_spec {
            signing_cert = Some(verify_enveloped(
                &inner,
                spec,
                inner_root,
                trust,
                "Assertion",
                &mut buf,
            )?);
        }
        let signing_cert = signing_cert.ok_or(SignatureError::Unsigned {
            what: "the EncryptedAssertion is not covered by a Response signature and the decrypted Assertion is unsigned",
        })?;
        Ok(VerifiedResponse {
            doc,
            decrypted: Some(inner),
            assertion: inner_root,
            response_signed: response_sig.is_some(),
            assertion_signed: inner_spec.is_some(),
            signing_cert,
        })
    }
}

/// Adds the first handle's work to the second's when dropped (on every path out of a scope).
struct CountOnDrop(crate::saml::xml::WorkHandle, crate::saml::xml::WorkHandle);

impl Drop for CountOnDrop {
    fn drop(&mut self) {
        self.1.add(self.0.get());
    }
}

/// Signatures found by [`check_document`].
struct FoundSignatures {
    response: Option<NodeId>,
    assertion: Option<NodeId>,
}

/// Walks the whole document once. `root` is the message root, `assertion` the consumed assertion
/// (for a decrypted assertion, both are its root).
fn check_document(
    doc: &Document,
    root: NodeId,
    assertion: NodeId,
) -> Result<FoundSignatures, Error> {
    // A hash set: the check is linear in the number of IDs, however many there are.
    let mut ids: std::collections::HashSet<&str> = std::collections::HashSet::with_capacity(4);
    // Work: one step per node, and the ancestor walks of inside_advice (depth-bounded).
    let mut steps = u64::from(doc.descendants(root).end - root);
    let mut found = FoundSignatures {
        response: None,
        assertion: None,
    };
    let mut assertions = 1usize;
    let mut stray_assertion = false;
    for n in doc.descendants(root) {
        if !doc.is_element(n) {
            continue;
        }
        for id in doc.id_attrs(n) {
            if !ids.insert(id) {
                return Err(msg(MessageError::DuplicateId { id: id.to_string() }));
            }
        }
        // One look at the local name decides whether the element matters here at all.
        if !matches!(
            doc.local_name(n),
            "Assertion" | "EncryptedAssertion" | "Signature"
        ) {
            continue;
        }
        steps += 64;
        let in_advice = || inside_advice(doc, n, assertion);
        if (doc.is(n, ns::SAML, "Assertion") || doc.is(n, ns::SAML, "EncryptedAssertion"))
            && n != assertion
        {
            assertions += 1;
            if !in_advice() {
                stray_assertion = true;
            }
        } else if doc.is(n, ns::DS, "Signature") {
            let parent = doc.parent(n);
            let slot = if parent == Some(root) && root != assertion {
                &mut found.response
            } else if parent == Some(assertion) {
                &mut found.assertion
            } else if in_advice() {
                // Signatures of assertions quoted in Advice are covered by the outer digest and
                // never used.
                continue;
            } else {
                let p = parent.map(|p| doc.qname(p)).unwrap_or_default();
                return Err(SignatureError::Misplaced { parent: p }.into());
            };
            let Some(parent) = parent else { continue };
            if slot.replace(n).is_some() {
                return Err(SignatureError::MultipleSignatures {
                    parent: doc.qname(parent),
                }
                .into());
            }
            // Schema order (SAML Core §3.2.1, §2.3.3): the enveloped signature comes right after
            // Issuer (first, for a Response without Issuer). A signature appended elsewhere in
            // the element is refused, as ruby-saml's invalid_signature_position case requires.
            let before: Vec<NodeId> = doc.child_elements(parent).take_while(|&c| c != n).collect();
            let in_place = match before.as_slice() {
                [] => parent != assertion,
                [i] => doc.is(*i, ns::SAML, "Issuer"),
                _ => false,
            };
            if !in_place {
                return Err(SignatureError::Misplaced {
                    parent: doc.qname(parent),
                }
                .into());
            }
        }
    }
    doc.add_work(steps);
    if stray_assertion {
        return Err(msg(MessageError::MultipleAssertions { count: assertions }));
    }
    Ok(found)
}

/// Whether `n` lies inside a saml:Advice that is inside `assertion`.
fn inside_advice(doc: &Document, n: NodeId, assertion: NodeId) -> bool {
    let mut cur = doc.parent(n);
    while let Some(p) = cur {
        if p == assertion {
            return false;
        }
        if doc.is(p, ns::SAML, "Advice") && doc.is_ancestor_or_self(assertion, p) {
            return true;
        }
        cur = doc.parent(p);
    }
    false
}

fn describe_element(doc: &Document, n: NodeId) -> String {
    let ns = doc.namespace(n);
    if ns.is_empty() {
        doc.qname(n)
    } else {
        format!("{} ({ns})", doc.qname(n))
    }
}

fn check_version(doc: &Document, el: NodeId, name: &'static str) -> Result<(), Error> {
    match doc.attr(el, "Version") {
        Some("2.0") => Ok(()),
        Some(v) => Err(msg(MessageError::UnsupportedVersion {
            element: name,
            version: v.to_string(),
        })),
        None => Err(msg(MessageError::MissingAttribute {
            element: name,
            attribute: "Version",
        })),
    }
}

/// SAML Core §3.2.2.2: the top-level StatusCode must be Success.
pub(crate) fn check_status(doc: &Document, root: NodeId) -> Result<(), Error> {
    let status = doc.only_child(root, ns::SAMLP, "Status").map_err(|n| {
        if n == 0 {
            msg(MessageError::MissingElement {
                element: "Status",
                parent: "Response",
            })
        } else {
            msg(MessageError::DuplicateElement {
                element: "Status",
                parent: "Response",
                count: n,
            })
        }
    })?;
    let code = doc
        .only_child(status, ns::SAMLP, "StatusCode")
        .map_err(|_| {
            msg(MessageError::MissingElement {
                element: "StatusCode",
                parent: "Status",
            })
        })?;
    let value = doc.attr(code, "Value").unwrap_or("");
    if value == STATUS_SUCCESS {
        return Ok(());
    }
    let sub = doc
        .children_named(code, ns::SAMLP, "StatusCode")
        .next()
        .and_then(|s| doc.attr(s, "Value"))
        .map(str::to_string);
    let message = doc
        .children_named(status, ns::SAMLP, "StatusMessage")
        .next()
        .map(|m| trim_xml_ws(&doc.text(m)).to_string());
    Err(Rejection::StatusNotSuccess {
        code: value.to_string(),
        sub_code: sub,
        message,
    }
    .into())
}

/// A Response whose signature(s) verified.
#[derive(Debug)]
pub struct VerifiedResponse {
    doc: Document,
    decrypted: Option<Document>,
    /// The consumed Assertion: in `decrypted` when present, else in `doc`.
    assertion: NodeId,
    response_signed: bool,
    assertion_signed: bool,
    signing_cert: TrustedCertificate,
}

fn time_attr(
    doc: &Document,
    el: NodeId,
    element: &'static str,
    attribute: &'static str,
) -> Result<Option<UnixTime>, Error> {
    match doc.attr(el, attribute) {
        None => Ok(None),
        Some(v) => UnixTime::parse(v).map(Some).ok_or_else(|| {
            msg(MessageError::BadTime {
                element,
                attribute,
                value: v.to_string(),
            })
        }),
    }
}

impl VerifiedResponse {
    fn adoc(&self) -> &Document {
        self.decrypted.as_ref().unwrap_or(&self.doc)
    }

    /// InResponseTo as the signed assertion states it (bearer SubjectConfirmationData), falling
    /// back to the Response's: for finding the pending request before [`Self::accept`].
    pub fn in_response_to(&self) -> Option<String> {
        let d = self.adoc();
        let a = self.assertion;
        let from_assertion = d
            .children_named(a, ns::SAML, "Subject")
            .flat_map(|s| d.children_named(s, ns::SAML, "SubjectConfirmation"))
            .filter(|sc| d.attr(*sc, "Method") == Some(BEARER))
            .flat_map(|sc| d.children_named(sc, ns::SAML, "SubjectConfirmationData"))
            .find_map(|scd| d.attr(scd, "InResponseTo"));
        from_assertion
            .or_else(|| self.doc.attr(self.doc.root(), "InResponseTo"))
            .map(str::to_string)
    }

    /// Whether the Response's own signature was verified.
    pub fn response_signed(&self) -> bool {
        self.response_signed
    }

    /// Whether the Assertion's own signature was verified.
    pub fn assertion_signed(&self) -> bool {
        self.assertion_signed
    }

    /// The signed assertion's Subject/NameID (for diagnosis: whom the assertion names).
    pub fn name_id(&self) -> Option<NameId> {
        let d = self.adoc();
        let subject = d
            .children_named(self.assertion, ns::SAML, "Subject")
            .next()?;
        read_name_id(d, subject).ok().flatten()
    }

    /// The certificate whose key verified the signature(s).
    pub fn signing_certificate(&self) -> &TrustedCertificate {
        &self.signing_cert
    }

    /// Applies every protocol check, in the order of SAML Profiles §4.1.4.3 and Core §2, then
    /// records the assertion ID in `replay` (last, so that a rejected assertion is not remembered).
    pub fn accept(
        &self,
        ctx: &ExpectedContext<'_>,
        now: UnixTime,
    ) -> Result<UnredeemedAssertion, Error> {
        self.accept_traced(ctx, now, &mut NoTrace)
    }

    /// [`accept`](Self::accept), announcing each check to `trace` (the SAML tracer).
    pub fn accept_traced<T: Trace>(
        &self,
        ctx: &ExpectedContext<'_>,
        now: UnixTime,
        trace: &mut T,
    ) -> Result<UnredeemedAssertion, Error> {
        let skew = ctx.clock_skew_secs;
        let rdoc = &self.doc;
        let root = rdoc.root();
        let d = self.adoc();
        let a = self.assertion;

        // Core §3.2.2: Status (already refused in verify when not Success; the Response may be
        // unsigned, so its fields below can only ever add reasons to refuse).
        trace.step("status", Vec::new);
        check_status(rdoc, root)?;

        // Core §3.2.2: the Response's Issuer, when present, is the IdP.
        if let Some(i) = rdoc.children_named(root, ns::SAML, "Issuer").next() {
            let got = trim_xml_ws(&rdoc.text(i)).to_string();
            trace.step("response issuer", || {
                vec![("expected", ctx.idp_entity_id.into()), ("got", got.clone())]
            });
            if got != ctx.idp_entity_id {
                return Err(Rejection::IssuerMismatch {
                    element: "Response",
                    expected: ctx.idp_entity_id.into(),
                    got,
                }
                .into());
            }
        }

        // Bindings §3.5.5.2: Destination must be our ACS URL; a signed Response must carry one.
        trace.step("destination", || {
            vec![
                ("expected", ctx.acs_url.into()),
                (
                    "got",
                    rdoc.attr(root, "Destination").unwrap_or("(none)").into(),
                ),
            ]
        });
        match rdoc.attr(root, "Destination") {
            Some(dest) if dest != ctx.acs_url => {
                return Err(Rejection::DestinationMismatch {
                    expected: ctx.acs_url.into(),
                    got: dest.into(),
                }
                .into());
            }
            None if self.response_signed => return Err(Rejection::DestinationMissing.into()),
            _ => {}
        }

        // Core §3.2.2: the Response's InResponseTo, when present, answers our request.
        trace.step("in response to", || {
            vec![
                (
                    "expected",
                    match ctx.solicitation {
                        Solicitation::Request(id) => id.to_string(),
                        Solicitation::Unsolicited => "(unsolicited)".into(),
                    },
                ),
                (
                    "got",
                    rdoc.attr(root, "InResponseTo").unwrap_or("(none)").into(),
                ),
            ]
        });
        if let Some(irt) = rdoc.attr(root, "InResponseTo") {
            match ctx.solicitation {
                Solicitation::Request(id) if irt != id => {
                    return Err(Rejection::InResponseToMismatch {
                        element: "Response",
                        expected: id.into(),
                        got: irt.into(),
                    }
                    .into());
                }
                Solicitation::Unsolicited => {
                    return Err(Rejection::UnsolicitedNotExpected { got: irt.into() }.into());
                }
                _ => {}
            }
        }

        // From here on, only the signed Assertion.
        trace.step("assertion", || {
            vec![("ID", d.attr(a, "ID").unwrap_or("(none)").into())]
        });
        check_version(d, a, "Assertion")?;
        let id = d.attr(a, "ID").filter(|s| !s.is_empty()).ok_or(msg(
            MessageError::MissingAttribute {
                element: "Assertion",
                attribute: "ID",
            },
        ))?;

        // Core §2.3.3: Issuer is required; Profiles §4.1.4.2: it is the IdP.
        trace.step("issuer", || {
            vec![
                ("expected", ctx.idp_entity_id.into()),
                (
                    "got",
                    d.only_child(a, ns::SAML, "Issuer")
                        .map(|i| trim_xml_ws(&d.text(i)).to_string())
                        .unwrap_or_else(|_| "(none)".into()),
                ),
            ]
        });
        let issuer = d
            .only_child(a, ns::SAML, "Issuer")
            .map_err(|_| Rejection::IssuerMissing {
                element: "Assertion",
            })?;
        let issuer = trim_xml_ws(&d.text(issuer)).to_string();
        if issuer != ctx.idp_entity_id {
            return Err(Rejection::IssuerMismatch {
                element: "Assertion",
                expected: ctx.idp_entity_id.into(),
                got: issuer,
            }
            .into());
        }

        // Core §2.3.3: IssueInstant is required; one from the future is refused.
        trace.step("issue instant", || {
            vec![
                (
                    "IssueInstant",
                    d.attr(a, "IssueInstant").unwrap_or("(none)").into(),
                ),
                ("now", now.to_rfc3339()),
                ("skew", format!("{skew} s")),
            ]
        });
        let issue_instant = time_attr(d, a, "Assertion", "IssueInstant")?.ok_or(msg(
            MessageError::MissingAttribute {
                element: "Assertion",
                attribute: "IssueInstant",
            },
        ))?;
        if issue_instant > now.plus_secs(skew) {
            return Err(Rejection::IssuedInFuture {
                issue_instant,
                now,
                skew,
            }
            .into());
        }

        // Profiles §4.1.4.2: a bearer SubjectConfirmation with Recipient, NotOnOrAfter, InResponseTo.
        let subject = d.opt_child(a, ns::SAML, "Subject").map_err(|n| {
            msg(MessageError::DuplicateElement {
                element: "Subject",
                parent: "Assertion",
                count: n,
            })
        })?;
        trace.step("subject confirmation", || {
            vec![
                ("method", "bearer".into()),
                ("expected Recipient", ctx.acs_url.into()),
                ("now", now.to_rfc3339()),
            ]
        });
        let subject = subject.ok_or(Rejection::SubjectConfirmationMissing)?;
        let scd_not_on_or_after = self.check_subject_confirmation(d, subject, ctx, now)?;

        // Core §2.5: Conditions (time window, audience). The bearer profile requires an
        // AudienceRestriction naming us.
        let conditions = d.opt_child(a, ns::SAML, "Conditions").map_err(|n| {
            msg(MessageError::DuplicateElement {
                element: "Conditions",
                parent: "Assertion",
                count: n,
            })
        })?;
        let mut not_on_or_after = scd_not_on_or_after;
        trace.step("conditions", || {
            let attr = |n| {
                conditions
                    .and_then(|c| d.attr(c, n))
                    .unwrap_or("(none)")
                    .to_string()
            };
            vec![
                ("NotBefore", attr("NotBefore")),
                ("NotOnOrAfter", attr("NotOnOrAfter")),
                ("now", now.to_rfc3339()),
                ("skew", format!("{skew} s")),
            ]
        });
        let Some(conditions) = conditions else {
            return Err(Rejection::AudienceMissing.into());
        };
        if let Some(nb) = time_attr(d, conditions, "Conditions", "NotBefore")?
            && now < nb.plus_secs(-skew)
        {
            return Err(Rejection::NotYetValid {
                element: "Conditions",
                not_before: nb,
                now,
                skew,
            }
            .into());
        }
        if let Some(na) = time_attr(d, conditions, "Conditions", "NotOnOrAfter")? {
            if now >= na.plus_secs(skew) {
                return Err(Rejection::Expired {
                    element: "Conditions",
                    not_on_or_after: na,
                    now,
                    skew,
                }
                .into());
            }
            not_on_or_after = not_on_or_after.min(na);
        }
        trace.step("audience", || {
            let got: Vec<String> = d
                .children_named(conditions, ns::SAML, "AudienceRestriction")
                .flat_map(|r| d.children_named(r, ns::SAML, "Audience"))
                .map(|x| trim_xml_ws(&d.text(x)).to_string())
                .collect();
            vec![
                ("expected", ctx.sp_entity_id.into()),
                ("got", got.join(", ")),
            ]
        });
        let mut restrictions = d
            .children_named(conditions, ns::SAML, "AudienceRestriction")
            .peekable();
        if restrictions.peek().is_none() {
            return Err(Rejection::AudienceMissing.into());
        }
        // Core §2.5.1.4: several AudienceRestrictions must each be satisfied.
        for r in restrictions {
            let audiences: Vec<String> = d
                .children_named(r, ns::SAML, "Audience")
                .map(|x| trim_xml_ws(&d.text(x)).to_string())
                .collect();
            if !audiences.iter().any(|x| x == ctx.sp_entity_id) {
                return Err(Rejection::AudienceMismatch {
                    expected: ctx.sp_entity_id.into(),
                    got: audiences,
                }
                .into());
            }
        }

        // AuthnStatement: SessionIndex and SessionNotOnOrAfter (for SLO and the session's end).
        let authn = d.children_named(a, ns::SAML, "AuthnStatement").next();
        trace.step("session", || {
            let attr = |n| {
                authn
                    .and_then(|s| d.attr(s, n))
                    .unwrap_or("(none)")
                    .to_string()
            };
            vec![
                ("SessionIndex", attr("SessionIndex")),
                ("SessionNotOnOrAfter", attr("SessionNotOnOrAfter")),
            ]
        });
        let session_index = authn
            .and_then(|s| d.attr(s, "SessionIndex"))
            .map(str::to_string);
        let session_not_on_or_after = match authn {
            Some(s) => time_attr(d, s, "AuthnStatement", "SessionNotOnOrAfter")?,
            None => None,
        };
        if let Some(snoa) = session_not_on_or_after
            && now >= snoa.plus_secs(skew)
        {
            return Err(Rejection::SessionExpired {
                session_not_on_or_after: snoa,
                now,
            }
            .into());
        }

        trace.step("username", || {
            vec![(
                "from",
                match ctx.username {
                    UsernameSource::NameId => "Subject/NameID".to_string(),
                    UsernameSource::Attribute(n) => format!("attribute {n}"),
                },
            )]
        });
        let name_id = read_name_id(d, subject)?;
        let attributes = read_attributes(d, a);
        let username = match ctx.username {
            UsernameSource::NameId => match &name_id {
                Some(n) if !n.value.is_empty() => n.value.clone(),
                _ => {
                    return Err(Rejection::UsernameMissing {
                        source: "Subject/NameID".into(),
                    }
                    .into());
                }
            },
            UsernameSource::Attribute(name) => read_username_attribute(d, a, name)?,
        };

        // Replay: remembered until it could no longer be accepted anyway. The check itself is
        // the caller's (its cache may be asynchronous and shared): the assertion is handed over
        // only in a form that has to be redeemed against it.
        let key = format!("{}\u{1f}{}", ctx.idp_entity_id, id);

        let in_response_to = match ctx.solicitation {
            Solicitation::Request(r) => Some(r.to_string()),
            Solicitation::Unsolicited => None,
        };
        Ok(UnredeemedAssertion {
            replay_key: key,
            replay_until: not_on_or_after.plus_secs(skew),
            assertion: Assertion {
                id: id.to_string(),
                issuer: ctx.idp_entity_id.to_string(),
                username,
                name_id,
                session_index,
                session_not_on_or_after,
                not_on_or_after,
                in_response_to,
                attributes,
                response_signed: self.response_signed,
                assertion_signed: self.assertion_signed,
                signing_certificate_sha256: self.signing_cert.sha256_hex(),
            },
        })
    }

    /// Returns the NotOnOrAfter of the bearer confirmation that satisfied every rule.
    fn check_subject_confirmation(
        &self,
        d: &Document,
        subject: NodeId,
        ctx: &ExpectedContext<'_>,
        now: UnixTime,
    ) -> Result<UnixTime, Error> {
        let skew = ctx.clock_skew_secs;
        let mut first_err: Option<Error> = None;
        for sc in d.children_named(subject, ns::SAML, "SubjectConfirmation") {
            if d.attr(sc, "Method") != Some(BEARER) {
                continue;
            }
            let r = (|| -> Result<UnixTime, Error> {
                let scd = d
                    .only_child(sc, ns::SAML, "SubjectConfirmationData")
                    .map_err(|_| Rejection::SubjectConfirmationIncomplete {
                        attribute: "SubjectConfirmationData",
                    })?;
                // Recipient: our ACS URL, compared as the exact string.
                let recipient =
                    d.attr(scd, "Recipient")
                        .ok_or(Rejection::SubjectConfirmationIncomplete {
                            attribute: "Recipient",
                        })?;
                if recipient != ctx.acs_url {
                    return Err(Rejection::RecipientMismatch {
                        expected: ctx.acs_url.into(),
                        got: recipient.into(),
                    }
                    .into());
                }
                let noa = time_attr(d, scd, "SubjectConfirmationData", "NotOnOrAfter")?.ok_or(
                    Rejection::SubjectConfirmationIncomplete {
                        attribute: "NotOnOrAfter",
                    },
                )?;
                if now >= noa.plus_secs(skew) {
                    return Err(Rejection::Expired {
                        element: "SubjectConfirmationData",
                        not_on_or_after: noa,
                        now,
                        skew,
                    }
                    .into());
                }
                if let Some(nb) = time_attr(d, scd, "SubjectConfirmationData", "NotBefore")?
                    && now < nb.plus_secs(-skew)
                {
                    return Err(Rejection::NotYetValid {
                        element: "SubjectConfirmationData",
                        not_before: nb,
                        now,
                        skew,
                    }
                    .into());
                }
                match (ctx.solicitation, d.attr(scd, "InResponseTo")) {
                    (Solicitation::Request(id), Some(irt)) if irt == id => {}
                    (Solicitation::Request(id), Some(irt)) => {
                        return Err(Rejection::InResponseToMismatch {
                            element: "SubjectConfirmationData",
                            expected: id.into(),
                            got: irt.into(),
                        }
                        .into());
                    }
                    (Solicitation::Request(id), None) => {
                        return Err(Rejection::InResponseToMissing {
                            expected: id.into(),
                        }
                        .into());
                    }
                    (Solicitation::Unsolicited, Some(irt)) => {
                        return Err(Rejection::UnsolicitedNotExpected { got: irt.into() }.into());
                    }
                    (Solicitation::Unsolicited, None) => {}
                }
                Ok(noa)
            })();
            match r {
                Ok(noa) => return Ok(noa),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or(Rejection::SubjectConfirmationMissing.into()))
    }
}

fn read_name_id(d: &Document, subject: NodeId) -> Result<Option<NameId>, Error> {
    let Some(n) = d.opt_child(subject, ns::SAML, "NameID").map_err(|c| {
        msg(MessageError::DuplicateElement {
            element: "NameID",
            parent: "Subject",
            count: c,
        })
    })?
    else {
        return Ok(None);
    };
    let value = d.simple_text(n).ok_or(Rejection::UsernameNotSimple {
        source: "Subject/NameID".into(),
    })?;
    Ok(Some(NameId {
        value: trimmed(value),
        format: d.attr(n, "Format").map(str::to_string),
        name_qualifier: d.attr(n, "NameQualifier").map(str::to_string),
        sp_name_qualifier: d.attr(n, "SPNameQualifier").map(str::to_string),
    }))
}

fn read_attributes(d: &Document, a: NodeId) -> Attributes {
    let mut out = Attributes::default();
    // One reservation for all values: at most one per node of the statements, and at most the
    // assertion's own text.
    let (nodes, text) =
        d.children_named(a, ns::SAML, "AttributeStatement")
            .fold((0, 0), |(n, t), st| {
                (
                    n + d.descendants(st).len(),
                    t + d.source_len().min(64 * 1024),
                )
            });
    out.values.reserve(nodes / 2);
    out.text.reserve(text.min(d.source_len()));
    for st in d.children_named(a, ns::SAML, "AttributeStatement") {
        for at in d.children_named(st, ns::SAML, "Attribute") {
            let Some(name) = d.attr(at, "Name") else {
                continue;
            };
            let first = out.values.len() as u32;
            for v in d.children_named(at, ns::SAML, "AttributeValue") {
                if let Some(t) = d.simple_text_cow(v) {
                    let t = trim_xml_ws(&t);
                    let start = out.text.len() as u32;
                    out.text.push_str(t);
                    out.values.push((start, out.text.len() as u32));
                }
            }
            out.names
                .push((name.to_string(), first, out.values.len() as u32));
        }
    }
    out
}

/// The username attribute must occur once, with one plain-text value.
fn read_username_attribute(d: &Document, a: NodeId, name: &str) -> Result<String, Error> {
    let source = format!("Attribute \"{name}\"");
    let attrs: Vec<NodeId> = d
        .children_named(a, ns::SAML, "AttributeStatement")
        .flat_map(|st| d.children_named(st, ns::SAML, "Attribute"))
        .filter(|at| d.attr(*at, "Name") == Some(name))
        .collect();
    let at = match attrs.as_slice() {
        [] => return Err(Rejection::UsernameMissing { source }.into()),
        [one] => *one,
        many => {
            return Err(Rejection::UsernameAmbiguous {
                source,
                count: many.len(),
            }
            .into());
        }
    };
    let values: Vec<NodeId> = d.children_named(at, ns::SAML, "AttributeValue").collect();
    let v = match values.as_slice() {
        [] => {
            return Err(Rejection::UsernameMissing {
                source: format!("value for {source}"),
            }
            .into());
        }
        [one] => *one,
        many => {
            return Err(Rejection::UsernameAmbiguous {
                source,
                count: many.len(),
            }
            .into());
        }
    };
    let text = d.simple_text(v).ok_or(Rejection::UsernameNotSimple {
        source: source.clone(),
    })?;
    let text = trim_xml_ws(&text);
    if text.is_empty() {
        return Err(Rejection::UsernameMissing {
            source: format!("value for {source}"),
        }
        .into());
    }
    Ok(text.to_string())
}
