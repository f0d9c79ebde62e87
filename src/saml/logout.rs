//! Single logout messages (SAML Core §3.7): LogoutRequest and LogoutResponse, built for the IdP
//! and verified when they come from it. POST: an enveloped signature on the message root.
//! Redirect: the query-string signature (see [`super::bindings`]). ADFS requires our messages to
//! be signed, and the NameID (with its Format and qualifiers) and SessionIndex must echo the
//! login's, so [`LogoutRequestParams`] takes the [`NameId`] the assertion gave.

use super::authn_request::BuiltMessage;
use super::bindings::{RedirectMessage, xml_escape};
use super::error::{Error, MessageError, Rejection, SignatureError};
use super::response::{NameId, STATUS_SUCCESS, VerifyOptions};
use super::time::UnixTime;
use super::xml::{Document, NodeId, ns};
use super::xmldsig::IdpTrust;
use super::xmldsig::verify::{parse_signature, verify_enveloped};

/// What a LogoutRequest we send contains.
#[derive(Debug, Clone)]
pub struct LogoutRequestParams<'a> {
    pub id: &'a str,
    pub issue_instant: UnixTime,
    pub destination: &'a str,
    pub sp_entity_id: &'a str,
    pub name_id: &'a NameId,
    pub session_index: Option<&'a str>,
    pub not_on_or_after: Option<UnixTime>,
}

impl LogoutRequestParams<'_> {
    pub fn build(&self) -> BuiltMessage {
        let mut x = String::with_capacity(1024);
        x.push_str("<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\"");
        x.push_str(&format!(
            " ID=\"{}\" Version=\"2.0\" IssueInstant=\"{}\" Destination=\"{}\"",
            xml_escape(self.id),
            self.issue_instant,
            xml_escape(self.destination)
        ));
        if let Some(t) = self.not_on_or_after {
            x.push_str(&format!(" NotOnOrAfter=\"{t}\""));
        }
        x.push('>');
        x.push_str(&format!(
            "<saml:Issuer>{}</saml:Issuer>",
            xml_escape(self.sp_entity_id)
        ));
        let signature_at = x.len();
        x.push_str("<saml:NameID");
        let n = self.name_id;
        for (attr, v) in [
            ("NameQualifier", &n.name_qualifier),
            ("SPNameQualifier", &n.sp_name_qualifier),
            ("Format", &n.format),
        ] {
            if let Some(v) = v {
                x.push_str(&format!(" {attr}=\"{}\"", xml_escape(v)));
            }
        }
        x.push_str(&format!(">{}</saml:NameID>", xml_escape(&n.value)));
        if let Some(s) = self.session_index {
            x.push_str(&format!(
                "<samlp:SessionIndex>{}</samlp:SessionIndex>",
                xml_escape(s)
            ));
        }
        x.push_str("</samlp:LogoutRequest>");
        BuiltMessage {
            xml: x,
            id: self.id.to_string(),
            signature_at,
        }
    }
}

/// What a LogoutResponse we send contains.
#[derive(Debug, Clone)]
pub struct LogoutResponseParams<'a> {
    pub id: &'a str,
    pub issue_instant: UnixTime,
    pub destination: &'a str,
    pub sp_entity_id: &'a str,
    pub in_response_to: &'a str,
    pub status: &'a str,
}

impl LogoutResponseParams<'_> {
    pub fn build(&self) -> BuiltMessage {
        let mut x = String::with_capacity(768);
        x.push_str("<samlp:LogoutResponse xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\"");
        x.push_str(&format!(
            " ID=\"{}\" Version=\"2.0\" IssueInstant=\"{}\" Destination=\"{}\" InResponseTo=\"{}\">",
            xml_escape(self.id),
            self.issue_instant,
            xml_escape(self.destination),
            xml_escape(self.in_response_to)
        ));
        x.push_str(&format!(
            "<saml:Issuer>{}</saml:Issuer>",
            xml_escape(self.sp_entity_id)
        ));
        let signature_at = x.len();
        x.push_str(&format!(
            "<samlp:Status><samlp:StatusCode Value=\"{}\"/></samlp:Status>",
            xml_escape(self.status)
        ));
        x.push_str("</samlp:LogoutResponse>");
        BuiltMessage {
            xml: x,
            id: self.id.to_string(),
            signature_at,
        }
    }
}

/// A verified LogoutRequest from the IdP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequest {
    pub id: String,
    pub issuer: String,
    pub destination: Option<String>,
    pub issue_instant: Option<UnixTime>,
    pub not_on_or_after: Option<UnixTime>,
    pub name_id: NameId,
    pub session_indexes: Vec<String>,
}

/// A verified LogoutResponse from the IdP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutResponse {
    pub id: String,
    pub issuer: String,
    pub destination: Option<String>,
    pub in_response_to: Option<String>,
    pub status: String,
    pub sub_status: Option<String>,
}

/// A verified logout message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogoutMessage {
    Request(LogoutRequest),
    Response(LogoutResponse),
}

/// How a logout message arrived.
#[derive(Debug, Clone, Copy)]
pub enum LogoutBinding<'a> {
    /// The decoded XML of an HTTP-POST form value: needs an enveloped signature.
    Post(&'a [u8]),
    /// A decoded HTTP-Redirect message: needs its query-string signature.
    Redirect(&'a RedirectMessage),
}

/// What a logout message must satisfy here.
#[derive(Debug, Clone)]
pub struct LogoutContext<'a> {
    pub idp_entity_id: &'a str,
    /// Our SLO endpoint: Destination must be it.
    pub slo_url: &'a str,
    pub clock_skew_secs: i64,
}

fn msg(e: MessageError) -> Error {
    Error::Malformed(e)
}

/// Verifies the signature of a logout message and reads it. Unsigned messages are refused: a
/// forged LogoutRequest would end any agent's session.
pub fn verify_logout(
    binding: LogoutBinding<'_>,
    trust: &IdpTrust,
    opts: &VerifyOptions,
) -> Result<LogoutMessage, Error> {
    trust.check_policy(opts.algorithms)?;
    let (xml, redirect_verified) = match binding {
        LogoutBinding::Post(x) => (x, false),
        LogoutBinding::Redirect(m) => {
            m.verify_signature(trust)?;
            (m.xml.as_slice(), true)
        }
    };
    let doc = Document::parse(xml, &opts.limits)?;
    let root = doc.root();
    let is_request = doc.is(root, ns::SAMLP, "LogoutRequest");
    if !is_request && !doc.is(root, ns::SAMLP, "LogoutResponse") {
        return Err(msg(MessageError::WrongRoot {
            expected: "samlp:LogoutRequest or samlp:LogoutResponse",
            got: doc.qname(root),
        }));
    }
    if doc.attr(root, "Version") != Some("2.0") {
        return Err(msg(MessageError::UnsupportedVersion {
            element: "logout message",
            version: doc.attr(root, "Version").unwrap_or("").into(),
        }));
    }

    // Every ID unique; the only ds:Signature allowed is the root's, right after Issuer.
    // A hash set: the check is linear in the number of IDs, however many there are.
    let mut ids: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut sig = None;
    doc.add_work(u64::from(doc.descendants(root).end - root));
    for n in doc.descendants(root).filter(|&n| doc.is_element(n)) {
        for a in doc.attributes(n) {
            if a.ns.is_empty() && (a.local == "ID" || a.local == "Id") && !ids.insert(a.value) {
                return Err(msg(MessageError::DuplicateId { id: a.value.into() }));
            }
        }
        if doc.is(n, ns::DS, "Signature") {
            let parent = doc.parent(n);
            let before: Vec<NodeId> = parent
                .map(|p| doc.child_elements(p).take_while(|&c| c != n).collect())
                .unwrap_or_default();
            let placed = parent == Some(root)
                && matches!(before.as_slice(), [] | [_])
                && before.iter().all(|&b| doc.is(b, ns::SAML, "Issuer"));
            if !placed || sig.replace(n).is_some() {
                return Err(SignatureError::Misplaced {
                    parent: parent.map(|p| doc.qname(p)).unwrap_or_default(),
                }
                .into());
            }
        }
    }
    match sig {
        Some(s) => {
            let spec = parse_signature(&doc, s, opts.algorithms)?;
            let mut buf = Vec::new();
            verify_enveloped(
                &doc,
                &spec,
                root,
                trust,
                if is_request {
                    "LogoutRequest"
                } else {
                    "LogoutResponse"
                },
                &mut buf,
            )?;
        }
        None if redirect_verified => {}
        None => {
            return Err(SignatureError::Unsigned {
                what: "the logout message is not signed",
            }
            .into());
        }
    }

    let id = doc.attr(root, "ID").filter(|s| !s.is_empty()).ok_or(msg(
        MessageError::MissingAttribute {
            element: "logout message",
            attribute: "ID",
        },
    ))?;
    let issuer = doc
        .only_child(root, ns::SAML, "Issuer")
        .map(|i| doc.text(i).trim().to_string())
        .map_err(|_| Rejection::IssuerMissing {
            element: if is_request {
                "LogoutRequest"
            } else {
                "LogoutResponse"
            },
        })?;
    let destination = doc.attr(root, "Destination").map(str::to_string);
    if is_request {
        let name_id = doc
            .only_child(root, ns::SAML, "NameID")
            .map_err(|_| Rejection::LogoutNameIdMissing)?;
        let value = doc
            .simple_text(name_id)
            .ok_or(Rejection::UsernameNotSimple {
                source: "LogoutRequest/NameID".into(),
            })?;
        let time = |attr: &'static str| -> Result<Option<UnixTime>, Error> {
            match doc.attr(root, attr) {
                None => Ok(None),
                Some(v) => UnixTime::parse(v).map(Some).ok_or_else(|| {
                    msg(MessageError::BadTime {
                        element: "LogoutRequest",
                        attribute: attr,
                        value: v.into(),
                    })
                }),
            }
        };
        Ok(LogoutMessage::Request(LogoutRequest {
            id: id.into(),
            issuer,
            destination,
            issue_instant: time("IssueInstant")?,
            not_on_or_after: time("NotOnOrAfter")?,
            name_id: NameId {
                value: value.trim().to_string(),
                format: doc.attr(name_id, "Format").map(str::to_string),
                name_qualifier: doc.attr(name_id, "NameQualifier").map(str::to_string),
                sp_name_qualifier: doc.attr(name_id, "SPNameQualifier").map(str::to_string),
            },
            session_indexes: doc
                .children_named(root, ns::SAMLP, "SessionIndex")
                .map(|s| doc.text(s).trim().to_string())
                .collect(),
        }))
    } else {
        let status = doc.only_child(root, ns::SAMLP, "Status").map_err(|_| {
            msg(MessageError::MissingElement {
                element: "Status",
                parent: "LogoutResponse",
            })
        })?;
        let code = doc
            .only_child(status, ns::SAMLP, "StatusCode")
            .map_err(|_| {
                msg(MessageError::MissingElement {
                    element: "StatusCode",
                    parent: "Status",
                })
            })?;
        Ok(LogoutMessage::Response(LogoutResponse {
            id: id.into(),
            issuer,
            destination,
            in_response_to: doc.attr(root, "InResponseTo").map(str::to_string),
            status: doc.attr(code, "Value").unwrap_or("").to_string(),
            sub_status: doc
                .children_named(code, ns::SAMLP, "StatusCode")
                .next()
                .and_then(|s| doc.attr(s, "Value"))
                .map(str::to_string),
        }))
    }
}

fn check_common(
    issuer: &str,
    destination: Option<&str>,
    what: &'static str,
    ctx: &LogoutContext<'_>,
) -> Result<(), Error> {
    if issuer != ctx.idp_entity_id {
        return Err(Rejection::IssuerMismatch {
            element: what,
            expected: ctx.idp_entity_id.into(),
            got: issuer.into(),
        }
        .into());
    }
    // Bindings §3.4.5.2 / §3.5.5.2: a signed message names where it was sent.
    match destination {
        Some(d) if d == ctx.slo_url => Ok(()),
        Some(d) => Err(Rejection::DestinationMismatch {
            expected: ctx.slo_url.into(),
            got: d.into(),
        }
        .into()),
        None => Err(Rejection::DestinationMissing.into()),
    }
}

impl LogoutRequest {
    /// Issuer, Destination and time checks. Matching the NameID and SessionIndex to live sessions
    /// is the caller's (it owns the sessions).
    pub fn check(&self, ctx: &LogoutContext<'_>, now: UnixTime) -> Result<(), Error> {
        check_common(
            &self.issuer,
            self.destination.as_deref(),
            "LogoutRequest",
            ctx,
        )?;
        let skew = ctx.clock_skew_secs;
        if let Some(t) = self.not_on_or_after
            && now >= t.plus_secs(skew)
        {
            return Err(Rejection::Expired {
                element: "LogoutRequest",
                not_on_or_after: t,
                now,
                skew,
            }
            .into());
        }
        if let Some(t) = self.issue_instant
            && t > now.plus_secs(skew)
        {
            return Err(Rejection::IssuedInFuture {
                issue_instant: t,
                now,
                skew,
            }
            .into());
        }
        Ok(())
    }
}

impl LogoutResponse {
    /// Issuer, Destination, InResponseTo (our outstanding LogoutRequest) and Status.
    pub fn check(&self, ctx: &LogoutContext<'_>, expected_request: &str) -> Result<(), Error> {
        check_common(
            &self.issuer,
            self.destination.as_deref(),
            "LogoutResponse",
            ctx,
        )?;
        match self.in_response_to.as_deref() {
            Some(i) if i == expected_request => {}
            Some(i) => {
                return Err(Rejection::InResponseToMismatch {
                    element: "LogoutResponse",
                    expected: expected_request.into(),
                    got: i.into(),
                }
                .into());
            }
            None => {
                return Err(Rejection::InResponseToMissing {
                    expected: expected_request.into(),
                }
                .into());
            }
        }
        if self.status != STATUS_SUCCESS {
            return Err(Rejection::StatusNotSuccess {
                code: self.status.clone(),
                sub_code: self.sub_status.clone(),
                message: None,
            }
            .into());
        }
        Ok(())
    }
}
