//! Exclusive XML Canonicalization 1.0 (<https://www.w3.org/TR/xml-exc-c14n/>), streamed straight
//! from the parsed [`Document`]: no node-sets, no XPath, one walk over the subtree.
//!
//! The input is always "an element and its descendants" (a same-document `#id` reference, or
//! SignedInfo), optionally minus one element (the enveloped-signature transform removes the
//! ds:Signature). Comments are kept only when asked (`#WithComments` on SignedInfo); a `#id`
//! reference never includes them (XMLDSig §4.3.3.3).

use crate::saml::xml::{Document, NodeId, NodeKind, eq_short, ns};

/// How to canonicalise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExcC14n {
    pub with_comments: bool,
    /// The InclusiveNamespaces PrefixList (`#default` for the default namespace), treated as in
    /// inclusive c14n.
    pub inclusive_prefixes: Vec<String>,
}

/// Canonicalises the subtree at `apex`, leaving out the subtree at `exclude`, appending to `out`.
pub fn canonicalize(
    doc: &Document,
    apex: NodeId,
    exclude: Option<NodeId>,
    opts: &ExcC14n,
    out: &mut Vec<u8>,
) {
    // Namespace bindings in scope at the apex, outermost first: the context, then the ancestors'.
    let mut in_scope: Vec<(&str, &str)> = doc
        .context_ns
        .iter()
        .map(|(p, u)| (p.as_str(), u.as_str()))
        .collect();
    let mut chain = Vec::new();
    let mut cur = doc.parent(apex);
    while let Some(p) = cur {
        chain.push(p);
        cur = doc.parent(p);
    }
    for &a in chain.iter().rev() {
        push_decls(doc, a, &mut in_scope);
    }
    let out_start = out.len();
    let mut c = Canon {
        doc,
        opts,
        out,
        steps: std::cell::Cell::new(chain.len() as u64),
        in_scope,
        rendered: Vec::with_capacity(16),
        open: Vec::with_capacity(16),
        prefixes: Vec::with_capacity(8),
        decls: Vec::with_capacity(8),
        attrs: Vec::with_capacity(8),
    };
    c.run(apex, exclude);
    // Work: every node visited, every lookup step, every byte written (see Document::work).
    let written = (c.out.len() - out_start) as u64;
    doc.add_work(c.steps.get() + written);
}

fn push_decls<'d>(doc: &'d Document, e: NodeId, into: &mut Vec<(&'d str, &'d str)>) {
    if let Some(data) = doc.element_data(e) {
        let (a, b) = data.ns_decls;
        for d in &doc.ns_decls[a as usize..b as usize] {
            into.push((doc.span(d.prefix), doc.span(d.uri)));
        }
    }
}

/// One open output element: its name, where its scopes started, where its subtree ends.
struct Open<'d> {
    prefix: &'d str,
    local: &'d str,
    rendered_mark: usize,
    scope_mark: usize,
    end: NodeId,
}

struct Canon<'d, 'o> {
    doc: &'d Document,
    opts: &'o ExcC14n,
    out: &'o mut Vec<u8>,
    /// Nodes visited and namespace entries compared (see `Document::work`).
    steps: std::cell::Cell<u64>,
    /// Namespace bindings in scope in the document, innermost last.
    in_scope: Vec<(&'d str, &'d str)>,
    /// Namespace declarations rendered by output ancestors: (prefix, uri), innermost last.
    rendered: Vec<(&'d str, &'d str)>,
    open: Vec<Open<'d>>,
    prefixes: Vec<(&'d str, Option<&'d str>)>,
    decls: Vec<(&'d str, &'d str)>,
    attrs: Vec<(&'d str, &'d str, &'d str, &'d str)>,
}

impl<'d> Canon<'d, '_> {
    fn run(&mut self, apex: NodeId, exclude: Option<NodeId>) {
        let doc = self.doc;
        let end = doc.node(apex).end;
        let mut i = apex;
        while i < end {
            if self.open.last().is_some_and(|top| i >= top.end) {
                self.close_until(i);
            }
            if Some(i) == exclude {
                i = doc.node(i).end;
                continue;
            }
            self.steps.set(self.steps.get() + 1);
            match &doc.node(i).kind {
                NodeKind::Element(ix) => {
                    let data = &doc.elements[*ix as usize];
                    let prefix = doc.span(data.prefix);
                    let local = doc.span(data.local);
                    let own_ns = doc.span(data.ns);
                    let rendered_mark = self.rendered.len();
                    let scope_mark = self.in_scope.len();
                    for d in &doc.ns_decls[data.ns_decls.0 as usize..data.ns_decls.1 as usize] {
                        self.in_scope.push((doc.span(d.prefix), doc.span(d.uri)));
                    }
                    self.start_tag(i, data.attrs.0 == data.attrs.1, prefix, local, own_ns);
                    self.open.push(Open {
                        prefix,
                        local,
                        rendered_mark,
                        scope_mark,
                        end: doc.node(i).end,
                    });
                }
                // Source character data can only need '>' escaped (see Span::is_decoded).
                NodeKind::Text(s) if !s.is_decoded() => escape_gt(doc.span(*s), self.out),
                NodeKind::Text(s) => escape_text(doc.span(*s), self.out),
                NodeKind::Comment(s) => {
                    if self.opts.with_comments {
                        self.out.extend_from_slice(b"<!--");
                        self.out.extend_from_slice(doc.span(*s).as_bytes());
                        self.out.extend_from_slice(b"-->");
                    }
                }
                NodeKind::Pi(ix) => {
                    let (target, data) = &doc.pis[*ix as usize];
                    self.out.extend_from_slice(b"<?");
                    self.out.extend_from_slice(doc.span(*target).as_bytes());
                    let d = doc.span(*data);
                    if !d.is_empty() {
                        self.out.push(b' ');
                        self.out.extend_from_slice(d.as_bytes());
                    }
                    self.out.extend_from_slice(b"?>");
                }
            }
            i += 1;
        }
        self.close_until(NodeId::MAX);
    }

    fn close_until(&mut self, i: NodeId) {
        while let Some(top) = self.open.last() {
            if i < top.end {
                break;
            }
            self.out.extend_from_slice(b"</");
            write_qname(self.out, top.prefix, top.local);
            self.out.push(b'>');
            self.rendered.truncate(top.rendered_mark);
            self.in_scope.truncate(top.scope_mark);
            self.open.pop();
        }
    }

    fn rendered_uri(&self, prefix: &str) -> Option<&'d str> {
        let mut n = 1u64;
        let found = self
            .rendered
            .iter()
            .rev()
            .find(|(p, _)| {
                n += 1;
                eq_short(p, prefix)
            })
            .map(|(_, u)| *u);
        self.steps.set(self.steps.get() + n);
        found
    }

    fn start_tag(
        &mut self,
        e: NodeId,
        no_attrs: bool,
        prefix: &'d str,
        local: &'d str,
        own_ns: &'d str,
    ) {
        let doc = self.doc;
        // The common cases, an element without attributes or with attributes in no namespace
        // only: only its own prefix can need a declaration, and attributes sort by local name.
        let unprefixed = self.opts.inclusive_prefixes.is_empty()
            && (no_attrs || doc.attributes(e).all(|a| a.prefix.is_empty()));
        if unprefixed {
            let current = self.rendered_uri(prefix);
            let emit = if prefix.is_empty() {
                !same(current.unwrap_or(""), own_ns)
            } else {
                !current.is_some_and(|c| same(c, own_ns))
            };
            self.out.push(b'<');
            write_qname(self.out, prefix, local);
            if emit {
                if prefix.is_empty() {
                    self.out.extend_from_slice(b" xmlns=\"");
                } else {
                    self.out.extend_from_slice(b" xmlns:");
                    self.out.extend_from_slice(prefix.as_bytes());
                    self.out.extend_from_slice(b"=\"");
                }
                escape_attr(own_ns, self.out);
                self.out.push(b'"');
                self.rendered.push((prefix, own_ns));
            }
            if !no_attrs {
                self.attrs.clear();
                for a in doc.attributes(e) {
                    self.attrs.push((a.ns, a.local, a.prefix, a.value));
                }
                if self.attrs.len() > 1 {
                    self.attrs.sort_unstable_by(|a, b| a.1.cmp(b.1));
                }
                self.steps
                    .set(self.steps.get() + (self.attrs.len() * 6) as u64);
                for &(_, local, _, value) in &self.attrs {
                    self.out.push(b' ');
                    self.out.extend_from_slice(local.as_bytes());
                    self.out.extend_from_slice(b"=\"");
                    escape_attr(value, self.out);
                    self.out.push(b'"');
                }
            }
            self.out.push(b'>');
            return;
        }
        self.prefixes.clear();
        self.decls.clear();
        self.attrs.clear();

        // Visibly utilised prefixes with the namespace each is bound to (resolved by the parser):
        // the element's own (default namespace when unprefixed) and its attributes' (unprefixed
        // attributes are in no namespace and utilise nothing).
        self.prefixes.push((prefix, Some(own_ns)));
        for a in doc.attributes(e) {
            if !a.prefix.is_empty()
                && a.prefix != "xml"
                && !self.prefixes.iter().any(|(p, _)| eq_short(p, a.prefix))
            {
                self.prefixes.push((a.prefix, Some(a.ns)));
            }
            self.attrs.push((a.ns, a.local, a.prefix, a.value));
        }
        // InclusiveNamespaces: rendered as inclusive c14n would, when in scope.
        self.steps.set(
            self.steps.get()
                + (self.opts.inclusive_prefixes.len() * (self.in_scope.len() + 1)) as u64
                + (self.attrs.len() * (self.prefixes.len() + 1)) as u64,
        );
        for p in &self.opts.inclusive_prefixes {
            let p: &str = if p == "#default" { "" } else { p.as_str() };
            if let Some(&(bound, uri)) = self.in_scope.iter().rev().find(|(q, _)| eq_short(q, p))
                && !self.prefixes.iter().any(|(q, _)| eq_short(q, bound))
            {
                self.prefixes.push((bound, Some(uri)));
            }
        }
        for k in 0..self.prefixes.len() {
            let (p, uri) = self.prefixes[k];
            if p == "xml" {
                continue;
            }
            let uri = uri.unwrap_or("");
            let current = self.rendered_uri(p);
            let emit = if p.is_empty() {
                !same(current.unwrap_or(""), uri)
            } else {
                !current.is_some_and(|c| same(c, uri))
            };
            if emit {
                self.decls.push((p, uri));
            }
        }
        if self.decls.len() > 1 {
            self.decls.sort_unstable_by(|a, b| a.0.cmp(b.0));
        }
        if self.attrs.len() > 1 {
            self.attrs
                .sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        }

        self.out.push(b'<');
        write_qname(self.out, prefix, local);
        for &(p, uri) in &self.decls {
            if p.is_empty() {
                self.out.extend_from_slice(b" xmlns=\"");
            } else {
                self.out.extend_from_slice(b" xmlns:");
                self.out.extend_from_slice(p.as_bytes());
                self.out.extend_from_slice(b"=\"");
            }
            escape_attr(uri, self.out);
            self.out.push(b'"');
            self.rendered.push((p, uri));
        }
        for &(_, local, prefix, value) in &self.attrs {
            self.out.push(b' ');
            write_qname(self.out, prefix, local);
            self.out.extend_from_slice(b"=\"");
            escape_attr(value, self.out);
            self.out.push(b'"');
        }
        self.out.push(b'>');
    }
}

/// String equality with a pointer shortcut: the parser hands out the same slice for every use of
/// one namespace declaration.
fn same(a: &str, b: &str) -> bool {
    (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || eq_short(a, b)
}

fn write_qname(out: &mut Vec<u8>, prefix: &str, local: &str) {
    if !prefix.is_empty() {
        out.extend_from_slice(prefix.as_bytes());
        out.push(b':');
    }
    out.extend_from_slice(local.as_bytes());
}

fn escape_gt(s: &str, out: &mut Vec<u8>) {
    let b = s.as_bytes();
    if !b.contains(&b'>') {
        out.extend_from_slice(b);
        return;
    }
    escape_with(b, out, |c| (c == b'>').then_some(b"&gt;".as_slice()));
}

fn escape_text(s: &str, out: &mut Vec<u8>) {
    let b = s.as_bytes();
    // Most text runs are short attribute values or names: a plain scan beats two memchr calls.
    let plain = if b.len() <= 64 {
        !b.iter().any(|&c| matches!(c, b'&' | b'<' | b'>' | b'\r'))
    } else {
        memchr::memchr3(b'&', b'<', b'>', b).is_none() && memchr::memchr(b'\r', b).is_none()
    };
    if plain {
        out.extend_from_slice(b);
        return;
    }
    escape_with(b, out, |c| match c {
        b'&' => Some(b"&amp;"),
        b'<' => Some(b"&lt;"),
        b'>' => Some(b"&gt;"),
        b'\r' => Some(b"&#xD;"),
        _ => None,
    });
}

/// Copies `b` to `out`, replacing each byte `rep` maps.
fn escape_with(b: &[u8], out: &mut Vec<u8>, rep: impl Fn(u8) -> Option<&'static [u8]>) {
    let mut last = 0;
    for (i, &c) in b.iter().enumerate() {
        if let Some(r) = rep(c) {
            out.extend_from_slice(&b[last..i]);
            out.extend_from_slice(r);
            last = i + 1;
        }
    }
    out.extend_from_slice(&b[last..]);
}

fn escape_attr(s: &str, out: &mut Vec<u8>) {
    let b = s.as_bytes();
    if !b
        .iter()
        .any(|c| matches!(c, b'&' | b'<' | b'"' | b'\t' | b'\n' | b'\r'))
    {
        out.extend_from_slice(b);
        return;
    }
    escape_with(b, out, |c| match c {
        b'&' => Some(b"&amp;"),
        b'<' => Some(b"&lt;"),
        b'"' => Some(b"&quot;"),
        b'\t' => Some(b"&#x9;"),
        b'\n' => Some(b"&#xA;"),
        b'\r' => Some(b"&#xD;"),
        _ => None,
    });
}

/// Whether `uri` names exclusive c14n, and whether with comments.
pub(crate) fn exc_c14n_uri(uri: &str) -> Option<bool> {
    match uri {
        "http://www.w3.org/2001/10/xml-exc-c14n#" => Some(false),
        "http://www.w3.org/2001/10/xml-exc-c14n#WithComments" => Some(true),
        _ => None,
    }
}

/// Most distinct prefixes an InclusiveNamespaces PrefixList may name. Real IdPs name two to five
/// (`xs xsi`, `saml samlp ds xs xsi`); every prefix listed costs a lookup at every element
/// canonicalised.
pub const MAX_INCLUSIVE_PREFIXES: usize = 16;

/// Reads the `ec:InclusiveNamespaces PrefixList` child of a Transform / CanonicalizationMethod:
/// at most one such child, at most [`MAX_INCLUSIVE_PREFIXES`] distinct prefixes (duplicates
/// dropped), each an NCName or `#default`. `Err` says what is wrong.
pub(crate) fn inclusive_prefixes(doc: &Document, method: NodeId) -> Result<Vec<String>, String> {
    let mut found = doc.children_named(method, ns::EXC_C14N, "InclusiveNamespaces");
    let Some(n) = found.next() else {
        return Ok(Vec::new());
    };
    if found.next().is_some() {
        return Err("more than one InclusiveNamespaces element".into());
    }
    let list = doc.attr(n, "PrefixList").unwrap_or("");
    let mut out: Vec<String> = Vec::new();
    for token in list.split_ascii_whitespace() {
        if out.iter().any(|p| p == token) {
            continue;
        }
        let name_ok = token == "#default"
            || (token
                .chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && token
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.')));
        if !name_ok || token.len() > 64 {
            return Err(format!(
                "PrefixList names \"{}\", which is not a namespace prefix",
                crate::saml::echo::Echo(token)
            ));
        }
        if out.len() == MAX_INCLUSIVE_PREFIXES {
            return Err(format!(
                "PrefixList names more than {MAX_INCLUSIVE_PREFIXES} distinct prefixes"
            ));
        }
        out.push(token.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saml::xml::Limits;

    fn c14n(xml: &str, id_local: &str, opts: &ExcC14n) -> String {
        let doc = Document::parse(xml.as_bytes(), &Limits::default()).expect("parses");
        let apex = (0..doc.nodes.len() as NodeId)
            .find(|&i| doc.local_name(i) == id_local)
            .expect("apex");
        let mut out = Vec::new();
        canonicalize(&doc, apex, None, opts, &mut out);
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn renders_only_visibly_used_namespaces() {
        let xml = r#"<r:Root xmlns:r="urn:r" xmlns:u="urn:unused" xmlns:a="urn:a"><a:B z="2" a:y="1" x="0"><C/></a:B></r:Root>"#;
        assert_eq!(
            c14n(xml, "B", &ExcC14n::default()),
            r#"<a:B xmlns:a="urn:a" x="0" z="2" a:y="1"><C></C></a:B>"#
        );
    }

    #[test]
    fn default_namespace_is_undeclared_only_when_needed() {
        let xml = r#"<Root xmlns="urn:d"><B><C xmlns=""><D/></C></B></Root>"#;
        assert_eq!(
            c14n(xml, "B", &ExcC14n::default()),
            r#"<B xmlns="urn:d"><C xmlns=""><D></D></C></B>"#
        );
        let xml2 = r#"<Root><B><C xmlns=""/></B></Root>"#;
        assert_eq!(c14n(xml2, "B", &ExcC14n::default()), r#"<B><C></C></B>"#);
    }

    #[test]
    fn inclusive_prefix_list_renders_unused_prefix() {
        let xml = r#"<r:Root xmlns:r="urn:r" xmlns:xs="urn:xs"><r:B>t</r:B></r:Root>"#;
        let opts = ExcC14n {
            with_comments: false,
            inclusive_prefixes: vec!["xs".into()],
        };
        assert_eq!(
            c14n(xml, "B", &opts),
            r#"<r:B xmlns:r="urn:r" xmlns:xs="urn:xs">t</r:B>"#
        );
    }

    #[test]
    fn escapes_and_comments() {
        let xml = "<a><b at=\"x&#9;&#10;&#13;&quot;&lt;&gt;\">1 &lt; 2 &amp; 3 &gt; 2&#13;<!-- c --><?pi data?><![CDATA[<x>]]></b></a>";
        assert_eq!(
            c14n(xml, "b", &ExcC14n::default()),
            "<b at=\"x&#x9;&#xA;&#xD;&quot;&lt;>\">1 &lt; 2 &amp; 3 &gt; 2&#xD;<?pi data?>&lt;x&gt;</b>"
        );
        let with = ExcC14n {
            with_comments: true,
            inclusive_prefixes: vec![],
        };
        assert!(c14n(xml, "b", &with).contains("<!-- c -->"));
    }

    #[test]
    fn source_text_and_cdata_escape_alike() {
        // Plain source text (only '>' possible), CDATA alone, and CDATA next to source text.
        assert_eq!(
            c14n("<a>x > y</a>", "a", &ExcC14n::default()),
            "<a>x &gt; y</a>"
        );
        assert_eq!(
            c14n("<a><![CDATA[a&b<c>\r]]></a>", "a", &ExcC14n::default()),
            "<a>a&amp;b&lt;c&gt;\n</a>"
        );
        assert_eq!(
            c14n("<a>p<![CDATA[&]]>q>r</a>", "a", &ExcC14n::default()),
            "<a>p&amp;q&gt;r</a>"
        );
    }

    #[test]
    fn attribute_whitespace_is_normalised_by_the_parser() {
        let xml = "<a b=\"x\ny\r\nz\tw\"/>";
        assert_eq!(c14n(xml, "a", &ExcC14n::default()), "<a b=\"x y z w\"></a>");
    }
}
