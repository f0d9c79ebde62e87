//! Exclusive XML Canonicalization 1.0 (<https://www.w3.org/TR/xml-exc-c14n/>), streamed straight
//! from the parsed [`Document`]: no node-sets, no XPath, one walk over the subtree.
//!
//! The input is always "an element and its descendants" (a same-document `#id` reference, or
//! SignedInfo), optionally minus one element (the enveloped-signature transform removes the
//! ds:Signature). Comments are kept only when asked (`#WithComments` on SignedInfo); a `#id`
//! reference never includes them (XMLDSig §4.3.3.3).

use crate::saml::xml::{Document, NodeId, NodeKind, ns};

/// How to canonicalise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExcC14n {
    pub with_comments: bool,
    /// The InclusiveNamespaces PrefixList (`#default` for the default namespace), treated as in
    /// inclusive c14n.
    pub inclusive_prefixes: Vec<String>,
}

/// Canonicalises the subtree at `apex`, leaving out the subtree at `exclude`, appending to `out`.
pub fn canonicalize(doc: &Document, apex: NodeId, exclude: Option<NodeId>, opts: &ExcC14n, out: &mut Vec<u8>) {
    let mut c = Canon { doc, opts, out, rendered: Vec::with_capacity(16), open: Vec::with_capacity(16), scratch: Scratch::default() };
    c.run(apex, exclude);
}

#[derive(Default)]
struct Scratch<'d> {
    decls: Vec<(&'d str, &'d str)>,
    attrs: Vec<(&'d str, &'d str, &'d str, &'d str)>,
    prefixes: Vec<&'d str>,
}

struct Canon<'d, 'o> {
    doc: &'d Document,
    opts: &'o ExcC14n,
    out: &'o mut Vec<u8>,
    /// Namespace declarations rendered by output ancestors: (prefix, uri), innermost last.
    rendered: Vec<(&'d str, &'d str)>,
    /// Open output elements: (element, rendered.len() before it, subtree end).
    open: Vec<(NodeId, usize, NodeId)>,
    scratch: Scratch<'d>,
}

impl<'d> Canon<'d, '_> {
    fn run(&mut self, apex: NodeId, exclude: Option<NodeId>) {
        let doc = self.doc;
        let end = doc.node(apex).end;
        let mut i = apex;
        while i < end {
            self.close_until(i);
            if Some(i) == exclude {
                i = doc.node(i).end;
                continue;
            }
            match &doc.node(i).kind {
                NodeKind::Element(_) => {
                    let mark = self.rendered.len();
                    self.start_tag(i);
                    self.open.push((i, mark, doc.node(i).end));
                }
                NodeKind::Text(s) => escape_text(doc.span(*s), self.out),
                NodeKind::Comment(s) => {
                    if self.opts.with_comments {
                        self.out.extend_from_slice(b"<!--");
                        self.out.extend_from_slice(doc.span(*s).as_bytes());
                        self.out.extend_from_slice(b"-->");
                    }
                }
                NodeKind::Pi { target, data } => {
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
        while let Some(&(e, mark, eend)) = self.open.last() {
            if i < eend {
                break;
            }
            self.out.extend_from_slice(b"</");
            self.write_qname(self.doc.prefix(e), self.doc.local_name(e));
            self.out.push(b'>');
            self.rendered.truncate(mark);
            self.open.pop();
        }
    }

    fn write_qname(&mut self, prefix: &str, local: &str) {
        if !prefix.is_empty() {
            self.out.extend_from_slice(prefix.as_bytes());
            self.out.push(b':');
        }
        self.out.extend_from_slice(local.as_bytes());
    }

    fn rendered_uri(&self, prefix: &str) -> Option<&'d str> {
        self.rendered.iter().rev().find(|(p, _)| *p == prefix).map(|(_, u)| *u)
    }

    fn start_tag(&mut self, e: NodeId) {
        let doc = self.doc;
        let mut s = std::mem::take(&mut self.scratch);
        s.prefixes.clear();
        s.decls.clear();
        s.attrs.clear();

        // Visibly utilised prefixes: the element's own (default namespace when unprefixed) and its
        // attributes' (unprefixed attributes are in no namespace and utilise nothing).
        s.prefixes.push(doc.prefix(e));
        for a in doc.attributes(e) {
            if !a.prefix.is_empty() && a.prefix != "xml" && !s.prefixes.contains(&a.prefix) {
                s.prefixes.push(a.prefix);
            }
            s.attrs.push((a.ns, a.local, a.prefix, a.value));
        }
        let n_visible = s.prefixes.len();
        for p in &self.opts.inclusive_prefixes {
            let p: &str = if p == "#default" { "" } else { p.as_str() };
            // The list's strings live in opts; look the prefix up in the document to borrow 'd.
            if let Some(bound) = find_prefix_in_scope(doc, e, p)
                && !s.prefixes.contains(&bound)
            {
                s.prefixes.push(bound);
            }
        }
        for (k, &p) in s.prefixes.iter().enumerate() {
            if p == "xml" {
                continue;
            }
            let uri = doc.lookup_namespace(e, p);
            if k >= n_visible && uri.is_none() {
                continue;
            }
            let uri = uri.unwrap_or("");
            let current = self.rendered_uri(p);
            let emit = if p.is_empty() { current.unwrap_or("") != uri } else { current != Some(uri) };
            if emit {
                s.decls.push((p, uri));
            }
        }
        s.decls.sort_unstable_by(|a, b| a.0.cmp(b.0));
        s.attrs.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));

        self.out.push(b'<');
        self.write_qname(doc.prefix(e), doc.local_name(e));
        for &(p, uri) in &s.decls {
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
        for &(_, local, prefix, value) in &s.attrs {
            self.out.push(b' ');
            self.write_qname(prefix, local);
            self.out.extend_from_slice(b"=\"");
            escape_attr(value, self.out);
            self.out.push(b'"');
        }
        self.out.push(b'>');
        self.scratch = s;
    }
}

/// The document's own string for `prefix` if some element from `e` up declares it (so that the
/// borrowed prefix outlives the options), or the context binding's prefix.
fn find_prefix_in_scope<'d>(doc: &'d Document, e: NodeId, prefix: &str) -> Option<&'d str> {
    let mut cur = Some(e);
    while let Some(id) = cur {
        if let Some(data) = doc.element_data(id) {
            let (a, b) = data.ns_decls;
            for d in &doc.ns_decls[a as usize..b as usize] {
                let p = doc.span(d.prefix);
                if p == prefix {
                    return Some(p);
                }
            }
        }
        cur = doc.parent(id);
    }
    if prefix == "xml" {
        return None;
    }
    doc.context_ns.iter().rev().find(|(p, _)| p == prefix).map(|(p, _)| p.as_str())
}

fn escape_text(s: &str, out: &mut Vec<u8>) {
    let b = s.as_bytes();
    let mut last = 0;
    for (i, &c) in b.iter().enumerate() {
        let rep: &[u8] = match c {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'\r' => b"&#xD;",
            _ => continue,
        };
        out.extend_from_slice(&b[last..i]);
        out.extend_from_slice(rep);
        last = i + 1;
    }
    out.extend_from_slice(&b[last..]);
}

fn escape_attr(s: &str, out: &mut Vec<u8>) {
    let b = s.as_bytes();
    let mut last = 0;
    for (i, &c) in b.iter().enumerate() {
        let rep: &[u8] = match c {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'"' => b"&quot;",
            b'\t' => b"&#x9;",
            b'\n' => b"&#xA;",
            b'\r' => b"&#xD;",
            _ => continue,
        };
        out.extend_from_slice(&b[last..i]);
        out.extend_from_slice(rep);
        last = i + 1;
    }
    out.extend_from_slice(&b[last..]);
}

/// Whether `uri` names exclusive c14n, and whether with comments.
pub(crate) fn exc_c14n_uri(uri: &str) -> Option<bool> {
    match uri {
        "http://www.w3.org/2001/10/xml-exc-c14n#" => Some(false),
        "http://www.w3.org/2001/10/xml-exc-c14n#WithComments" => Some(true),
        _ => None,
    }
}

/// Reads an `ec:InclusiveNamespaces PrefixList` child of a Transform / CanonicalizationMethod.
pub(crate) fn inclusive_prefixes(doc: &Document, method: NodeId) -> Vec<String> {
    doc.children_named(method, ns::EXC_C14N, "InclusiveNamespaces")
        .filter_map(|n| doc.attr(n, "PrefixList"))
        .flat_map(|l| l.split_ascii_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saml::xml::Limits;

    fn c14n(xml: &str, id_local: &str, opts: &ExcC14n) -> String {
        let doc = Document::parse(xml.as_bytes(), &Limits::default()).expect("parses");
        let apex = (0..doc.nodes.len() as NodeId).find(|&i| doc.local_name(i) == id_local).expect("apex");
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
        assert_eq!(c14n(xml, "B", &ExcC14n::default()), r#"<B xmlns="urn:d"><C xmlns=""><D></D></C></B>"#);
        let xml2 = r#"<Root><B><C xmlns=""/></B></Root>"#;
        assert_eq!(c14n(xml2, "B", &ExcC14n::default()), r#"<B><C></C></B>"#);
    }

    #[test]
    fn inclusive_prefix_list_renders_unused_prefix() {
        let xml = r#"<r:Root xmlns:r="urn:r" xmlns:xs="urn:xs"><r:B>t</r:B></r:Root>"#;
        let opts = ExcC14n { with_comments: false, inclusive_prefixes: vec!["xs".into()] };
        assert_eq!(c14n(xml, "B", &opts), r#"<r:B xmlns:r="urn:r" xmlns:xs="urn:xs">t</r:B>"#);
    }

    #[test]
    fn escapes_and_comments() {
        let xml = "<a><b at=\"x&#9;&#10;&#13;&quot;&lt;&gt;\">1 &lt; 2 &amp; 3 &gt; 2&#13;<!-- c --><?pi data?><![CDATA[<x>]]></b></a>";
        assert_eq!(
            c14n(xml, "b", &ExcC14n::default()),
            "<b at=\"x&#x9;&#xA;&#xD;&quot;&lt;>\">1 &lt; 2 &amp; 3 &gt; 2&#xD;<?pi data?>&lt;x&gt;</b>"
        );
        let with = ExcC14n { with_comments: true, inclusive_prefixes: vec![] };
        assert!(c14n(xml, "b", &with).contains("<!-- c -->"));
    }

    #[test]
    fn attribute_whitespace_is_normalised_by_the_parser() {
        let xml = "<a b=\"x\ny\r\nz\tw\"/>";
        assert_eq!(c14n(xml, "a", &ExcC14n::default()), "<a b=\"x y z w\"></a>");
    }
}
