//! A bounded, namespace-aware XML reader: one quick-xml pass into an arena that owns its text.
//!
//! What it refuses (each a [`Malformed`] with the byte offset): input over the size cap, anything
//! that is not UTF-8, any `<!DOCTYPE` (so no entity can ever be declared, expanded or fetched),
//! entity references other than the five predefined ones and character references, nesting deeper
//! than the depth cap, more attributes on one element than the attribute cap, unbound namespace
//! prefixes, duplicate attributes (by expanded name), text or a second element outside the root,
//! an XML declaration that names another version or encoding, and XML 1.0's forbidden characters.
//!
//! What it keeps: every element (with its resolved namespace URI), attribute (value decoded and
//! normalised as XML 1.0 §3.3.3 says), namespace declaration, text run, comment and processing
//! instruction inside the root, in document order. Text runs are decoded whole: character data,
//! references and CDATA sections that touch one another become one text node, so a value can never
//! be cut short at an `&amp;` or a CDATA boundary. A comment or PI splits text into two nodes, and
//! [`Document::text`] joins them again, as the XPath string-value does.
//!
//! Nothing here reads a file, opens a socket or looks at a clock.

use std::fmt;

use quick_xml::events::{BytesStart, Event};

use super::echo::Echo;
use quick_xml::reader::Reader;

/// Namespace URIs used by the SAML core.
pub mod ns {
    // Statics, not consts: each has one address, which lets `Document::is` recognise them.
    pub static SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
    pub static SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
    pub static MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
    pub static DS: &str = "http://www.w3.org/2000/09/xmldsig#";
    pub static XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
    pub static XENC11: &str = "http://www.w3.org/2009/xmlenc11#";
    pub static EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
    pub static XML: &str = "http://www.w3.org/XML/1998/namespace";
    pub static XMLNS: &str = "http://www.w3.org/2000/xmlns/";

    fn known() -> [&'static str; 7] {
        [SAML, SAMLP, MD, DS, XENC, XENC11, EXC_C14N]
    }

    /// 1-based index of `uri` among the namespaces SAML processing asks about, 0 for others.
    pub(crate) fn known_id(uri: &str) -> u8 {
        known()
            .iter()
            .position(|k| *k == uri)
            .map_or(0, |i| i as u8 + 1)
    }

    /// As [`known_id`], for a query that *is* one of the statics above (pointer identity, no
    /// string compare); 0 otherwise, and the caller compares strings.
    pub(crate) fn static_id(q: &str) -> u8 {
        known()
            .iter()
            .position(|k| std::ptr::eq(k.as_ptr(), q.as_ptr()) && k.len() == q.len())
            .map_or(0, |i| i as u8 + 1)
    }
}

/// Resource limits applied while parsing. Every limit is checked before the work it bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest document accepted, in bytes (default 256 KiB).
    pub max_bytes: usize,
    /// Deepest element nesting accepted (default 64; real SAML responses nest about 8 deep).
    pub max_depth: usize,
    /// Most attributes, namespace declarations included, on one element (default 32; real SAML
    /// elements carry one to five).
    pub max_attributes: usize,
    /// Most nodes of any kind and attributes together in one document (default 16,384: a real
    /// response has one per 20 to 30 bytes, so 256 KiB of real content fits; empty elements of
    /// one letter would give one per 4 bytes). Each costs a node's work in every walk, so this
    /// bounds what a message of any shape costs.
    pub max_nodes: usize,
    /// Most namespace declarations in scope at any element, its own and its ancestors' together
    /// (default 16; real messages have five to ten). Resolving a prefix and canonicalising scan
    /// this scope, so it bounds their cost per element.
    pub max_namespaces_in_scope: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 256 * 1024,
            max_depth: 64,
            max_attributes: 32,
            max_nodes: 16_384,
            max_namespaces_in_scope: 16,
        }
    }
}

/// Why a document could not be read. `offset` is the byte position in the input where known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub kind: MalformedKind,
    pub offset: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MalformedKind {
    TooLarge { size: usize, limit: usize },
    NotUtf8,
    Doctype,
    TooDeep { limit: usize },
    TooManyAttributes { limit: usize },
    TooManyNodes { limit: usize },
    TooManyNamespaces { limit: usize },
    UnknownEntity(String),
    BadCharacterReference(String),
    ForbiddenCharacter(u32),
    UnboundPrefix(String),
    DuplicateAttribute(String),
    BadNamespaceDeclaration(String),
    BadName(String),
    BadDeclaration(String),
    ContentOutsideRoot,
    MultipleRoots,
    NoRoot,
    Unclosed,
    Syntax(String),
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use MalformedKind::*;
        match &self.kind {
            TooLarge { size, limit } => {
                write!(f, "document is {size} bytes, over the {limit}-byte limit")
            }
            NotUtf8 => write!(f, "document is not UTF-8"),
            Doctype => write!(
                f,
                "document contains a DOCTYPE declaration (refused: no DTDs or entities)"
            ),
            TooDeep { limit } => write!(f, "elements nest deeper than {limit} levels"),
            TooManyAttributes { limit } => write!(f, "an element has more than {limit} attributes"),
            TooManyNodes { limit } => write!(
                f,
                "document has more than {limit} nodes and attributes together"
            ),
            TooManyNamespaces { limit } => write!(
                f,
                "more than {limit} namespace declarations are in scope at one element"
            ),
            UnknownEntity(e) => write!(f, "undeclared entity reference &{};", Echo(e)),
            BadCharacterReference(r) => write!(f, "invalid character reference &{};", Echo(r)),
            ForbiddenCharacter(c) => write!(f, "character U+{c:04X} is not allowed in XML 1.0"),
            UnboundPrefix(p) => write!(f, "namespace prefix '{}' is not declared", Echo(p)),
            DuplicateAttribute(a) => {
                write!(f, "attribute '{}' appears twice on one element", Echo(a))
            }
            BadNamespaceDeclaration(d) => write!(f, "invalid namespace declaration {}", Echo(d)),
            BadName(n) => write!(f, "invalid XML name '{}'", Echo(n)),
            BadDeclaration(d) => write!(f, "unsupported XML declaration: {}", Echo(d)),
            ContentOutsideRoot => write!(f, "text outside the root element"),
            MultipleRoots => write!(f, "more than one root element"),
            NoRoot => write!(f, "no root element"),
            Unclosed => write!(f, "document ends inside an element"),
            Syntax(s) => write!(f, "XML syntax error: {}", Echo(s)),
        }?;
        write!(f, " (at byte {})", self.offset)
    }
}

impl std::error::Error for Malformed {}

/// Index of a node in a [`Document`].
pub type NodeId = u32;

/// A piece of text owned by the document: a range of the source, or of the decoded-text buffer
/// (the top bit of `len` says which). Eight bytes, since there is one per name and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    start: u32,
    len: u32,
}

const DECODED: u32 = 1 << 31;

impl Span {
    fn source(start: usize, len: usize) -> Span {
        Span {
            start: start as u32,
            len: len as u32,
        }
    }
    fn decoded(start: usize, len: usize) -> Span {
        Span {
            start: start as u32,
            len: len as u32 | DECODED,
        }
    }
    pub(crate) fn len(self) -> usize {
        (self.len & !DECODED) as usize
    }
    /// Whether the text was decoded (references, CDATA, line ends) rather than taken as it stands
    /// in the source. Source character data never holds `<`, `&` or a carriage return.
    pub(crate) fn is_decoded(self) -> bool {
        self.len & DECODED != 0
    }
    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.start as usize + self.len()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ElementData {
    pub(crate) prefix: Span,
    pub(crate) local: Span,
    pub(crate) ns: Span,
    pub(crate) attrs: (u32, u32),
    pub(crate) ns_decls: (u32, u32),
    pub(crate) offset: u32,
    /// `ns::known_id` of `ns`.
    pub(crate) ns_known: u8,
}

#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
    /// Index into `Document::elements`.
    Element(u32),
    Text(Span),
    Comment(Span),
    /// Index into `Document::pis` (target, data).
    Pi(u32),
}

/// One node: 20 bytes, so that a walk over a thousand-element assertion stays in cache. Element
/// details live beside, in `Document::elements`.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) kind: NodeKind,
    parent: u32,
    /// One past the last node of this node's subtree (nodes are stored in document order).
    pub(crate) end: NodeId,
}

const NO_PARENT: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
pub(crate) struct AttrData {
    pub(crate) prefix: Span,
    pub(crate) local: Span,
    pub(crate) ns: Span,
    pub(crate) value: Span,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct NsDecl {
    /// Empty for the default namespace.
    pub(crate) prefix: Span,
    /// [`prefix_key`] of the prefix: lookups compare this first.
    pub(crate) key: u64,
    pub(crate) uri: Span,
    /// `ns::known_id` of the URI, computed once per declaration.
    pub(crate) known: u8,
}

/// A parsed document. Immutable once built; every query is by [`NodeId`].
#[derive(Clone)]
pub struct Document {
    src: String,
    decoded: String,
    pub(crate) nodes: Vec<Node>,
    pub(crate) elements: Vec<ElementData>,
    pub(crate) pis: Vec<(Span, Span)>,
    pub(crate) attrs: Vec<AttrData>,
    pub(crate) ns_decls: Vec<NsDecl>,
    /// Namespace bindings in scope around the root (for a decrypted fragment: those of the element
    /// it replaced). Consulted after the root's own declarations.
    pub(crate) context_ns: Vec<(String, String)>,
    root: NodeId,
    /// Work done on this document so far (see [`Document::work`]).
    work: WorkMeter,
}

/// A count of elementary steps (a byte read, a node visited, one comparison in a namespace
/// lookup, a byte of canonical output). Every routine that walks a document adds what it did, so
/// tests can check that no input makes the work grow faster than its size. Shared by the
/// document's clones (and read through [`WorkHandle`] after the document is consumed).
#[derive(Debug, Default, Clone)]
pub(crate) struct WorkMeter(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl WorkMeter {
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A reading of a document's work that outlives the document (see [`Document::work_handle`]).
#[derive(Debug, Clone)]
pub struct WorkHandle(WorkMeter);

impl WorkHandle {
    pub fn get(&self) -> u64 {
        self.0.get()
    }
    pub(crate) fn add(&self, n: u64) {
        self.0.add(n);
    }
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the document itself: it may hold an assertion.
        f.debug_struct("Document")
            .field("nodes", &self.nodes.len())
            .field("bytes", &self.src.len())
            .finish()
    }
}

/// An attribute of an element, as seen by callers.
#[derive(Debug, Clone, Copy)]
pub struct Attribute<'d> {
    pub prefix: &'d str,
    pub local: &'d str,
    pub ns: &'d str,
    pub value: &'d str,
}

impl Document {
    /// Parses `input` with `limits`.
    pub fn parse(input: &[u8], limits: &Limits) -> Result<Document, Malformed> {
        Self::parse_in_context(input, limits, Vec::new())
    }

    /// Parses `input` as if it stood where namespace bindings `context` are in scope (used for a
    /// decrypted assertion, whose prefixes may be declared on the elements around it).
    pub fn parse_in_context(
        input: &[u8],
        limits: &Limits,
        context: Vec<(String, String)>,
    ) -> Result<Document, Malformed> {
        if input.len() > limits.max_bytes {
            return Err(Malformed {
                kind: MalformedKind::TooLarge {
                    size: input.len(),
                    limit: limits.max_bytes,
                },
                offset: 0,
            });
        }
        Self::parse_owned_in_context(input.to_vec(), limits, context)
    }

    /// Parses `input`, keeping the buffer as the document's text (no copy).
    pub fn parse_owned(input: Vec<u8>, limits: &Limits) -> Result<Document, Malformed> {
        Self::parse_owned_in_context(input, limits, Vec::new())
    }

    fn parse_owned_in_context(
        input: Vec<u8>,
        limits: &Limits,
        context: Vec<(String, String)>,
    ) -> Result<Document, Malformed> {
        if input.len() > limits.max_bytes {
            return Err(Malformed {
                kind: MalformedKind::TooLarge {
                    size: input.len(),
                    limit: limits.max_bytes,
                },
                offset: 0,
            });
        }
        let mut text = String::from_utf8(input).map_err(|e| Malformed {
            kind: MalformedKind::NotUtf8,
            offset: e.utf8_error().valid_up_to(),
        })?;
        // A UTF-8 byte-order mark is allowed before the document (XML 1.0 §4.3.3).
        if text.starts_with('\u{feff}') {
            text.drain(..3);
        }
        let pre = prescan(&text)?;
        let builder = Builder::new(&text, limits, context, &pre);
        let work = builder.work.clone();
        let parts = builder
            .run()
            .inspect_err(|_| LAST_PARSE_WORK.set(work.get()))?;
        Ok(Document {
            src: text,
            decoded: parts.decoded,
            nodes: parts.nodes,
            elements: parts.elements,
            pis: parts.pis,
            attrs: parts.attrs,
            ns_decls: parts.ns_decls,
            context_ns: parts.context_ns,
            root: parts.root,
            work: WorkMeter(std::sync::Arc::new(parts.work.into())),
        })
    }

    /// The elementary steps spent on this document so far: parsing, and every walk, lookup and
    /// canonicalisation done on it since. Bounded by a constant times the input's size for any
    /// input (`tests/hostile_cost.rs`).
    pub fn work(&self) -> u64 {
        self.work.get()
    }

    /// Parses `input` and says how much work it took, also when the input is refused (tests of
    /// the cost bound; a refused document has no [`Document::work`] to ask).
    pub fn parse_with_work(input: &[u8], limits: &Limits) -> (Result<Document, Malformed>, u64) {
        LAST_PARSE_WORK.set(input.len() as u64);
        match Self::parse(input, limits) {
            Ok(d) => {
                let w = d.work();
                (Ok(d), w)
            }
            Err(e) => (Err(e), LAST_PARSE_WORK.get()),
        }
    }

    /// A handle on this document's work count, for reading it after the document is gone
    /// (verification consumes it).
    pub fn work_handle(&self) -> WorkHandle {
        WorkHandle(self.work.clone())
    }

    pub(crate) fn add_work(&self, n: u64) {
        self.work.add(n);
    }

    /// The size of the parsed text, in bytes.
    pub fn source_len(&self) -> usize {
        self.src.len()
    }

    /// The root element.
    pub fn root(&self) -> NodeId {
        self.root
    }

    pub(crate) fn span(&self, s: Span) -> &str {
        let buf: &str = if s.is_decoded() {
            &self.decoded
        } else {
            &self.src
        };
        // Spans are built by the parser from valid char boundaries of these same buffers.
        buf.get(s.range()).unwrap_or("")
    }

    pub(crate) fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }

    pub(crate) fn element_data(&self, id: NodeId) -> Option<&ElementData> {
        match &self.nodes.get(id as usize)?.kind {
            NodeKind::Element(ix) => self.elements.get(*ix as usize),
            _ => None,
        }
    }

    /// Whether `id` is an element.
    pub fn is_element(&self, id: NodeId) -> bool {
        self.element_data(id).is_some()
    }

    /// Local name of element `id` ("" for other nodes).
    pub fn local_name(&self, id: NodeId) -> &str {
        self.element_data(id)
            .map(|e| self.span(e.local))
            .unwrap_or("")
    }

    /// Prefix of element `id` ("" when unprefixed).
    pub fn prefix(&self, id: NodeId) -> &str {
        self.element_data(id)
            .map(|e| self.span(e.prefix))
            .unwrap_or("")
    }

    /// Namespace URI of element `id` ("" when in no namespace).
    pub fn namespace(&self, id: NodeId) -> &str {
        self.element_data(id).map(|e| self.span(e.ns)).unwrap_or("")
    }

    /// Whether element `id` is `{ns}local`. With one of the `ns` statics the namespace check is
    /// a byte compare (the hot loops over a thousand attribute values ask this).
    pub fn is(&self, id: NodeId, ns: &str, local: &str) -> bool {
        let Some(e) = self.element_data(id) else {
            return false;
        };
        let ns_ok = match ns::static_id(ns) {
            0 => self.span(e.ns) == ns,
            k => e.ns_known == k,
        };
        ns_ok && self.span(e.local) == local
    }

    /// `prefix:local` or `local`, for messages.
    pub fn qname(&self, id: NodeId) -> String {
        let (p, l) = (self.prefix(id), self.local_name(id));
        if p.is_empty() {
            l.to_string()
        } else {
            format!("{p}:{l}")
        }
    }

    /// Byte offset of element `id` in the input.
    pub fn offset(&self, id: NodeId) -> usize {
        self.element_data(id)
            .map(|e| e.offset as usize)
            .unwrap_or(0)
    }

    pub fn parent(&self, id: NodeId) -> Option<NodeId> {
        let p = self.node(id).parent;
        (p != NO_PARENT).then_some(p)
    }

    /// The attributes of element `id`, in document order.
    pub fn attributes(&self, id: NodeId) -> impl Iterator<Item = Attribute<'_>> + '_ {
        let (a, b) = self.element_data(id).map(|e| e.attrs).unwrap_or((0, 0));
        self.attrs[a as usize..b as usize]
            .iter()
            .map(move |at| Attribute {
                prefix: self.span(at.prefix),
                local: self.span(at.local),
                ns: self.span(at.ns),
                value: self.span(at.value),
            })
    }

    /// The value of the attribute `local` in no namespace (the usual case for SAML attributes).
    pub fn attr(&self, id: NodeId, local: &str) -> Option<&str> {
        let (a, b) = self.element_data(id)?.attrs;
        self.attrs[a as usize..b as usize]
            .iter()
            .find(|at| at.ns.len() == 0 && self.span(at.local) == local)
            .map(|at| self.span(at.value))
    }

    /// The values of the ID-typed attributes of element `id`, as SAML and XML Signature name them
    /// (`ID` and `Id`, in no namespace).
    pub fn id_attrs(&self, id: NodeId) -> impl Iterator<Item = &str> + '_ {
        let (a, b) = self.element_data(id).map(|e| e.attrs).unwrap_or((0, 0));
        self.attrs[a as usize..b as usize]
            .iter()
            .filter(|at| {
                at.ns.len() == 0
                    && at.local.len() == 2
                    && matches!(self.span(at.local), "ID" | "Id")
            })
            .map(|at| self.span(at.value))
    }

    /// The value of the attribute `{ns}local`.
    pub fn attr_ns(&self, id: NodeId, ns: &str, local: &str) -> Option<&str> {
        let (a, b) = self.element_data(id)?.attrs;
        self.attrs[a as usize..b as usize]
            .iter()
            .find(|at| self.span(at.ns) == ns && self.span(at.local) == local)
            .map(|at| self.span(at.value))
    }

    /// Children of `id` (all node kinds), in document order.
    pub fn children(&self, id: NodeId) -> Children<'_> {
        let end = self.node(id).end;
        Children {
            doc: self,
            next: id + 1,
            end,
        }
    }

    /// Element children of `id`.
    pub fn child_elements(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        self.children(id).filter(move |c| self.is_element(*c))
    }

    /// Element children named `{ns}local`.
    pub fn children_named<'a>(
        &'a self,
        id: NodeId,
        ns: &'a str,
        local: &'a str,
    ) -> impl Iterator<Item = NodeId> + 'a {
        self.child_elements(id)
            .filter(move |c| self.is(*c, ns, local))
    }

    /// The one child `{ns}local` of `id`, if there is exactly one; `Err(n)` with the count otherwise
    /// (n = 0: none, n > 1: ambiguous).
    pub fn only_child(&self, id: NodeId, ns: &str, local: &str) -> Result<NodeId, usize> {
        let mut it = self.children_named(id, ns, local);
        match (it.next(), it.next()) {
            (Some(c), None) => Ok(c),
            (None, _) => Err(0),
            (Some(_), Some(_)) => Err(2 + it.count()),
        }
    }

    /// The optional child `{ns}local`: `Ok(None)` when absent, `Err(n)` when it appears n > 1 times.
    pub fn opt_child(&self, id: NodeId, ns: &str, local: &str) -> Result<Option<NodeId>, usize> {
        match self.only_child(id, ns, local) {
            Ok(c) => Ok(Some(c)),
            Err(0) => Ok(None),
            Err(n) => Err(n),
        }
    }

    /// All nodes of the subtree rooted at `id`, `id` included, in document order.
    pub fn descendants(&self, id: NodeId) -> std::ops::Range<NodeId> {
        id..self.node(id).end
    }

    /// Whether `anc` is `id` or one of its ancestors.
    pub fn is_ancestor_or_self(&self, anc: NodeId, id: NodeId) -> bool {
        anc <= id && id < self.node(anc).end
    }

    /// The string value of element `id`: all its descendant text, concatenated, in document order
    /// (comments and processing instructions contribute nothing and cut nothing short).
    pub fn text(&self, id: NodeId) -> String {
        let mut out = String::new();
        for n in self.descendants(id) {
            if let NodeKind::Text(s) = &self.node(n).kind {
                out.push_str(self.span(*s));
            }
        }
        out
    }

    /// The text of an element that must hold only text (no child elements): `None` when it has
    /// child elements. Comments and PIs inside are skipped; the text around them is joined.
    pub fn simple_text(&self, id: NodeId) -> Option<String> {
        self.simple_text_cow(id).map(std::borrow::Cow::into_owned)
    }

    /// As [`Self::simple_text`], borrowing when the text is a single run (the usual case).
    pub fn simple_text_cow(&self, id: NodeId) -> Option<std::borrow::Cow<'_, str>> {
        // Fast path: an empty element, or one whose only child is a text run.
        let end = self.nodes.get(id as usize)?.end;
        if end == id + 1 {
            return Some(std::borrow::Cow::Borrowed(""));
        }
        if end == id + 2
            && let NodeKind::Text(s) = &self.nodes[id as usize + 1].kind
        {
            return Some(std::borrow::Cow::Borrowed(self.span(*s)));
        }
        let mut first: Option<&str> = None;
        let mut joined: Option<String> = None;
        for c in self.children(id) {
            match &self.node(c).kind {
                NodeKind::Element(_) => return None,
                NodeKind::Text(s) => {
                    let t = self.span(*s);
                    match (&mut joined, first) {
                        (Some(j), _) => j.push_str(t),
                        (None, None) => first = Some(t),
                        (None, Some(f)) => joined = Some(format!("{f}{t}")),
                    }
                }
                _ => {}
            }
        }
        Some(match joined {
            Some(j) => std::borrow::Cow::Owned(j),
            None => std::borrow::Cow::Borrowed(first.unwrap_or("")),
        })
    }

    /// The namespace URI bound to `prefix` ("" = default) at element `id`, if any.
    pub fn lookup_namespace(&self, id: NodeId, prefix: &str) -> Option<&str> {
        if prefix == "xml" {
            return Some(ns::XML);
        }
        let mut cur = Some(id);
        while let Some(e) = cur {
            if let Some(data) = self.element_data(e) {
                let (a, b) = data.ns_decls;
                for d in &self.ns_decls[a as usize..b as usize] {
                    if self.span(d.prefix) == prefix {
                        return Some(self.span(d.uri));
                    }
                }
            }
            cur = self.parent(e);
        }
        self.context_ns
            .iter()
            .rev()
            .find(|(p, _)| p == prefix)
            .map(|(_, u)| u.as_str())
    }

    /// Every namespace binding in scope at element `id` (innermost wins), for re-parsing a fragment
    /// that stood there.
    pub fn in_scope_namespaces(&self, id: NodeId) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut cur = Some(id);
        while let Some(e) = cur {
            if let Some(data) = self.element_data(e) {
                let (a, b) = data.ns_decls;
                for d in &self.ns_decls[a as usize..b as usize] {
                    let p = self.span(d.prefix);
                    if !out.iter().any(|(q, _)| q == p) {
                        out.push((p.to_string(), self.span(d.uri).to_string()));
                    }
                }
            }
            cur = self.parent(e);
        }
        for (p, u) in self.context_ns.iter().rev() {
            if !out.iter().any(|(q, _)| q == p) {
                out.push((p.clone(), u.clone()));
            }
        }
        out
    }

    /// Every element of the document named `{ns}local`, in document order.
    pub fn find_all<'a>(
        &'a self,
        ns: &'a str,
        local: &'a str,
    ) -> impl Iterator<Item = NodeId> + 'a {
        (0..self.nodes.len() as NodeId).filter(move |&i| self.is(i, ns, local))
    }
}

/// Iterator over the children of a node.
pub struct Children<'d> {
    doc: &'d Document,
    next: NodeId,
    end: NodeId,
}

impl Iterator for Children<'_> {
    type Item = NodeId;
    fn next(&mut self) -> Option<NodeId> {
        if self.next >= self.end {
            return None;
        }
        let id = self.next;
        self.next = self.doc.node(id).end;
        Some(id)
    }
}

thread_local! {
    /// The work of the last parse on this thread that was refused (see `parse_with_work`).
    static LAST_PARSE_WORK: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

// ------------------------------------------------------------------------------------------------
// The builder

/// What the builder produces; the document adds the source text it borrowed.
struct Parts {
    decoded: String,
    nodes: Vec<Node>,
    elements: Vec<ElementData>,
    pis: Vec<(Span, Span)>,
    attrs: Vec<AttrData>,
    ns_decls: Vec<NsDecl>,
    context_ns: Vec<(String, String)>,
    root: NodeId,
    work: u64,
}

struct Builder<'s> {
    src: &'s str,
    limits: Limits,
    decoded: String,
    nodes: Vec<Node>,
    elements: Vec<ElementData>,
    pis: Vec<(Span, Span)>,
    attrs: Vec<AttrData>,
    ns_decls: Vec<NsDecl>,
    context_ns: Vec<(String, String)>,
    /// Open elements, innermost last.
    stack: Vec<NodeId>,
    /// Namespace declarations in scope (of the open elements), innermost last, and where each open
    /// element's declarations start in it.
    scope: Vec<NsDecl>,
    scope_marks: Vec<usize>,
    /// Scratch for one start tag's attributes (kept to avoid an allocation per element).
    raw_attrs: Vec<(&'s str, &'s str)>,
    /// Scratch: one element's attribute-name keys (see `name_key`).
    attr_keys: Vec<u64>,
    /// Pending text run: pieces already pushed into a span.
    text: Option<Span>,
    text_offset: usize,
    root: Option<NodeId>,
    seen_decl_or_content: bool,
    /// Whether the input holds a carriage return at all (most do not: no line-end work then).
    has_cr: bool,
    /// Steps beyond one per byte: namespace lookups and duplicate checks (see `WorkMeter`).
    work: std::rc::Rc<std::cell::Cell<u64>>,
}

/// A prefix's length and first seven bytes in one word: two prefixes with different keys differ,
/// and prefixes of up to seven bytes are equal exactly when their keys are.
#[inline]
pub(crate) fn prefix_key(p: &str) -> u64 {
    let b = p.as_bytes();
    let mut k = (b.len().min(255) as u64) << 56;
    for (i, &c) in b.iter().take(7).enumerate() {
        k |= u64::from(c) << (8 * i);
    }
    k
}

/// A 64-bit key of an expanded attribute name (FNV-1a over local name, a separator, namespace):
/// equal names have equal keys; names whose keys differ are different.
#[inline]
fn name_key(local: &str, ns: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in local.as_bytes().iter().chain(b"\xff").chain(ns.as_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// String equality without a library call for the short strings names and prefixes are: a
/// length check, then the bytes in place (a `memcmp` call costs more than comparing a dozen
/// bytes).
#[inline]
pub(crate) fn eq_short(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    if a.len() <= 16 {
        let mut diff = 0u8;
        for i in 0..a.len() {
            diff |= a[i] ^ b[i];
        }
        return diff == 0;
    }
    a == b
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// One pass over the whole input, written branch-free so that it vectorises: XML 1.0 §2.2
/// forbids C0 controls other than tab, newline and return anywhere in a document (text,
/// attributes, comments, PIs, names), and U+FFFE/U+FFFF; the same pass counts `<` (an upper bound
/// on the node count) and notices carriage returns (line-end normalisation is needed only then).
struct Prescan {
    lt: usize,
    has_cr: bool,
}

fn prescan(s: &str) -> Result<Prescan, Malformed> {
    let b = s.as_bytes();
    let (mut bad, mut lt, mut cr) = (0u8, 0usize, 0u8);
    let mut blocks = b.chunks_exact(64);
    for block in &mut blocks {
        // u8 lanes, no branches: LLVM turns this into a few vector compares per block.
        let (mut cb, mut cl, mut cc) = (0u8, 0u8, 0u8);
        for &c in block {
            cb |= u8::from(c < 0x20)
                & u8::from(c != b'\t')
                & u8::from(c != b'\n')
                & u8::from(c != b'\r');
            cl += u8::from(c == b'<');
            cc |= u8::from(c == b'\r');
        }
        bad |= cb;
        lt += usize::from(cl);
        cr |= cc;
    }
    for &c in blocks.remainder() {
        bad |= u8::from(c < 0x20 && c != b'\t' && c != b'\n' && c != b'\r');
        lt += usize::from(c == b'<');
        cr |= u8::from(c == b'\r');
    }
    if bad != 0 {
        let i = b
            .iter()
            .position(|&c| c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r'))
            .unwrap_or(0);
        return Err(Malformed {
            kind: MalformedKind::ForbiddenCharacter(u32::from(b[i])),
            offset: i,
        });
    }
    // U+FFFE and U+FFFF are EF BF BE / EF BF BF in UTF-8.
    for j in memchr::memchr_iter(0xEF, b) {
        if b.get(j + 1) == Some(&0xBF) && matches!(b.get(j + 2), Some(0xBE | 0xBF)) {
            let c = if b[j + 2] == 0xBE { 0xFFFE } else { 0xFFFF };
            return Err(Malformed {
                kind: MalformedKind::ForbiddenCharacter(c),
                offset: j,
            });
        }
    }
    Ok(Prescan {
        lt,
        has_cr: cr != 0,
    })
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || (c as u32) >= 0xC0
}

fn is_name_char(c: char) -> bool {
    is_name_start(c) || c.is_ascii_digit() || c == '-' || c == '.' || c == '\u{B7}'
}

fn is_ncname(s: &str) -> bool {
    let b = s.as_bytes();
    if let Some(&f) = b.first()
        && (f.is_ascii_alphabetic() || f == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
    {
        return true;
    }
    let mut it = s.chars();
    match it.next() {
        Some(c) if is_name_start(c) => it.all(is_name_char),
        _ => false,
    }
}

/// Per ASCII byte: 0 = an NCName character, 1 = ':', 4 = not allowed in a name; 2 for every
/// non-ASCII byte (the general rules decide those).
static NAME_BYTE: [u8; 256] = {
    let mut t = [4u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = if b >= 0x80 {
            2
        } else if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.' {
            0
        } else if b == b':' {
            1
        } else {
            4
        };
        c += 1;
    }
    t
};

fn ncname_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

/// Splits a QName into (prefix, local); both parts must be NCNames. For ASCII names (all SAML
/// names) one branch-free pass classifies every byte; the general rules handle the rest.
fn split_qname(q: &str) -> Option<(&str, &str)> {
    let b = q.as_bytes();
    let classes = b
        .iter()
        .fold(0u8, |acc, &c| acc | NAME_BYTE[usize::from(c)]);
    if classes & 4 != 0 {
        return None;
    }
    if classes & 2 != 0 {
        return split_qname_slow(q);
    }
    if classes & 1 == 0 {
        return b
            .first()
            .is_some_and(|&f| ncname_start(f))
            .then_some(("", q));
    }
    let i = b.iter().position(|&c| c == b':')?;
    let (p, l) = (&q[..i], &q[i + 1..]);
    let ok = p.as_bytes().first().is_some_and(|&f| ncname_start(f))
        && l.as_bytes().first().is_some_and(|&f| ncname_start(f))
        && !l.contains(':');
    ok.then_some((p, l))
}

fn split_qname_slow(q: &str) -> Option<(&str, &str)> {
    match q.split_once(':') {
        Some((p, l)) if is_ncname(p) && is_ncname(l) => Some((p, l)),
        Some(_) => None,
        None if is_ncname(q) => Some(("", q)),
        None => None,
    }
}

/// A namespace name must be an absolute URI (Namespaces in XML §2.2 deprecates relative ones and
/// Canonical XML refuses them), written with RFC 3986 characters only: a scheme, then unreserved
/// and delimiter characters, `%` only as `%HH`. libxml2 refuses to canonicalise a document with
/// any other namespace name, so anything laxer here could accept what xmlsec1 rejects.
fn is_absolute_uri(u: &str) -> bool {
    let Some((scheme, _)) = u.split_once(':') else {
        return false;
    };
    let mut sc = scheme.bytes();
    if !(sc.next().is_some_and(|c| c.is_ascii_alphabetic())
        && sc.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.')))
    {
        return false;
    }
    let b = u.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let ok = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b':'
                    | b'/'
                    | b'?'
                    | b'#'
                    | b'@'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            )
            || (c == b'%'
                && b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit));
        if !ok {
            return false;
        }
        i += 1;
    }
    true
}

/// The XML declaration, strictly (XML 1.0 §2.8, §4.3.3, §2.9): `xml`, then `version="1.0"`, then
/// optionally `encoding` (UTF-8 only) and `standalone` ("yes" or "no"), in that order, nothing else.
fn check_declaration(raw: &str) -> Result<(), String> {
    let mut rest = raw
        .strip_prefix("xml")
        .ok_or_else(|| "not an XML declaration".to_string())?;
    let mut seen: Vec<&str> = Vec::new();
    loop {
        let trimmed = rest.trim_start_matches([' ', '\t', '\n', '\r']);
        if trimmed.is_empty() {
            break;
        }
        if trimmed.len() == rest.len() {
            return Err(format!("missing white space before \"{trimmed}\""));
        }
        let (name, after) = trimmed
            .split_once('=')
            .ok_or_else(|| format!("malformed pseudo-attribute \"{trimmed}\""))?;
        let name = name.trim_end_matches([' ', '\t', '\n', '\r']);
        let after = after.trim_start_matches([' ', '\t', '\n', '\r']);
        let quote = after
            .chars()
            .next()
            .filter(|q| *q == '"' || *q == '\'')
            .ok_or_else(|| format!("{name} is not quoted"))?;
        let body = &after[1..];
        let end = body
            .find(quote)
            .ok_or_else(|| format!("{name} is not closed"))?;
        let value = &body[..end];
        let ok = match (name, seen.as_slice()) {
            ("version", []) => value == "1.0",
            ("encoding", ["version"]) => value.eq_ignore_ascii_case("utf-8"),
            ("standalone", ["version"] | ["version", "encoding"]) => {
                value == "yes" || value == "no"
            }
            _ => return Err(format!("unexpected \"{name}\" in the XML declaration")),
        };
        if !ok {
            return Err(format!("{name}=\"{value}\""));
        }
        seen.push(name);
        rest = &body[end + 1..];
    }
    if seen.first() != Some(&"version") {
        return Err("no version".into());
    }
    Ok(())
}

/// Decodes a reference body (`name` in `&name;`).
fn decode_reference(name: &str) -> Result<char, MalformedKind> {
    if let Some(num) = name.strip_prefix('#') {
        let code = if let Some(hex) = num.strip_prefix('x') {
            if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) || hex.len() > 8 {
                return Err(MalformedKind::BadCharacterReference(name.to_string()));
            }
            u32::from_str_radix(hex, 16).ok()
        } else {
            if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) || num.len() > 10 {
                return Err(MalformedKind::BadCharacterReference(name.to_string()));
            }
            num.parse::<u32>().ok()
        };
        return match code.and_then(char::from_u32) {
            Some(c) if is_xml_char(c) => Ok(c),
            _ => Err(MalformedKind::BadCharacterReference(name.to_string())),
        };
    }
    match name {
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "amp" => Ok('&'),
        "apos" => Ok('\''),
        "quot" => Ok('"'),
        _ => Err(MalformedKind::UnknownEntity(name.to_string())),
    }
}

impl<'s> Builder<'s> {
    fn new(
        src: &'s str,
        limits: &Limits,
        context_ns: Vec<(String, String)>,
        pre: &Prescan,
    ) -> Self {
        // Every node but the last text run starts with '<' or ends at one: an upper bound, so
        // the node vector never grows (and never copies) while parsing.
        let est = pre.lt + 2;
        Builder {
            src,
            limits: *limits,
            decoded: String::new(),
            nodes: Vec::with_capacity(est),
            elements: Vec::with_capacity(est / 2 + 1),
            pis: Vec::new(),
            attrs: Vec::with_capacity(est.min(64)),
            ns_decls: Vec::with_capacity(8),
            context_ns,
            stack: Vec::with_capacity(16),
            scope: Vec::with_capacity(16),
            scope_marks: Vec::with_capacity(16),
            raw_attrs: Vec::with_capacity(16),
            attr_keys: Vec::with_capacity(32),
            text: None,
            text_offset: 0,
            root: None,
            seen_decl_or_content: false,
            has_cr: pre.has_cr,
            work: std::rc::Rc::new(std::cell::Cell::new(src.len() as u64)),
        }
    }

    fn err(&self, kind: MalformedKind, offset: usize) -> Malformed {
        Malformed { kind, offset }
    }

    /// A span for `s`, which is a slice of the source when possible, else copied to `decoded`.
    fn span_of(&mut self, s: &str) -> Span {
        let base = self.src.as_ptr() as usize;
        let p = s.as_ptr() as usize;
        if p >= base && p + s.len() <= base + self.src.len() {
            Span::source(p - base, s.len())
        } else {
            self.owned_span(s)
        }
    }

    fn owned_span(&mut self, s: &str) -> Span {
        let start = self.decoded.len();
        self.decoded.push_str(s);
        Span::decoded(start, s.len())
    }

    fn span_str(&self, s: Span) -> &str {
        let buf: &str = if s.is_decoded() {
            &self.decoded
        } else {
            self.src
        };
        buf.get(s.range()).unwrap_or("")
    }

    fn push_node(&mut self, kind: NodeKind, offset: usize) -> Result<NodeId, Malformed> {
        if self.nodes.len() + self.attrs.len() + self.ns_decls.len() >= self.limits.max_nodes {
            return Err(self.err(
                MalformedKind::TooManyNodes {
                    limit: self.limits.max_nodes,
                },
                offset,
            ));
        }
        let id = self.nodes.len() as NodeId;
        self.nodes.push(Node {
            kind,
            parent: self.stack.last().copied().unwrap_or(NO_PARENT),
            end: id + 1,
        });
        Ok(id)
    }

    /// Appends a piece of decoded text to the pending run.
    fn add_text(&mut self, piece: &str, offset: usize) -> Result<(), Malformed> {
        if piece.is_empty() {
            return Ok(());
        }
        if self.stack.is_empty() {
            if piece.chars().all(|c| matches!(c, ' ' | '\t' | '\n' | '\r')) {
                return Ok(());
            }
            return Err(self.err(MalformedKind::ContentOutsideRoot, offset));
        }
        match self.text {
            None => {
                self.text_offset = offset;
                self.text = Some(self.span_of(piece));
            }
            Some(cur) if cur.is_decoded() && cur.range().end == self.decoded.len() => {
                self.decoded.push_str(piece);
                self.text = Some(Span::decoded(cur.range().start, cur.len() + piece.len()));
            }
            Some(cur) => {
                let start = self.decoded.len();
                let first = self.span_str(cur).to_string();
                self.decoded.push_str(&first);
                self.decoded.push_str(piece);
                self.text = Some(Span::decoded(start, first.len() + piece.len()));
            }
        }
        Ok(())
    }

    fn flush_text(&mut self) -> Result<(), Malformed> {
        if let Some(span) = self.text.take() {
            let off = self.text_offset;
            self.push_node(NodeKind::Text(span), off)?;
        }
        Ok(())
    }

    /// Text content with XML line-end normalisation (§2.11): CR LF and lone CR become LF.
    fn add_raw_text(&mut self, raw: &'s str, offset: usize) -> Result<(), Malformed> {
        // ']]>' may not appear in character data (XML 1.0 §2.4); '>' itself is rare in text.
        if memchr::memchr(b'>', raw.as_bytes()).is_some() && raw.contains("]]>") {
            return Err(self.err(MalformedKind::Syntax("']]>' in text".into()), offset));
        }
        if self.has_cr && memchr::memchr(b'\r', raw.as_bytes()).is_some() {
            let norm = raw.replace("\r\n", "\n").replace('\r', "\n");
            self.add_text(&norm, offset)
        } else {
            self.add_text(raw, offset)
        }
    }

    /// Attribute-value decoding and normalisation for CDATA attributes (XML 1.0 §3.3.3).
    fn attr_value(&mut self, raw: &str, offset: usize) -> Result<Span, Malformed> {
        if !raw
            .bytes()
            .any(|b| matches!(b, b'&' | b'<' | b'\t' | b'\n' | b'\r'))
        {
            return Ok(self.span_of(raw));
        }
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(i) = rest.find(['&', '<', '\t', '\n', '\r']) {
            out.push_str(&rest[..i]);
            let c = rest.as_bytes()[i];
            match c {
                b'<' => {
                    return Err(self.err(
                        MalformedKind::Syntax("'<' in attribute value".into()),
                        offset,
                    ));
                }
                b'&' => {
                    let tail = &rest[i + 1..];
                    let Some(semi) = tail.find(';') else {
                        return Err(self.err(
                            MalformedKind::Syntax("unterminated reference in attribute".into()),
                            offset,
                        ));
                    };
                    let ch = decode_reference(&tail[..semi]).map_err(|k| self.err(k, offset))?;
                    out.push(ch);
                    rest = &tail[semi + 1..];
                }
                b'\r' => {
                    out.push(' ');
                    rest = rest[i + 1..].strip_prefix('\n').unwrap_or(&rest[i + 1..]);
                }
                _ => {
                    out.push(' ');
                    rest = &rest[i + 1..];
                }
            }
        }
        out.push_str(rest);
        Ok(self.owned_span(&out))
    }

    fn resolve(&self, prefix: &str, elem_decls: (u32, u32)) -> Option<(Span, u8)> {
        // Innermost first: this element's declarations, then those in scope from the open elements.
        // Every declaration looked at is a step of work (bounded by max_namespaces_in_scope).
        let steps = std::cell::Cell::new(1u64);
        let key = prefix_key(prefix);
        let matches = |d: &&NsDecl| {
            steps.set(steps.get() + 1);
            d.key == key && (prefix.len() <= 7 || eq_short(self.span_str(d.prefix), prefix))
        };
        let found = self.ns_decls[elem_decls.0 as usize..elem_decls.1 as usize]
            .iter()
            .rev()
            .find(matches)
            .or_else(|| self.scope.iter().rev().find(matches))
            .map(|d| (d.uri, d.known));
        self.work.set(self.work.get() + steps.get());
        found
    }

    fn resolve_or_context(&mut self, prefix: &str, elem_decls: (u32, u32)) -> Option<(Span, u8)> {
        if let Some(s) = self.resolve(prefix, elem_decls) {
            return Some(s);
        }
        if prefix == "xml" {
            return Some((self.owned_span(ns::XML), 0));
        }
        let uri = self
            .context_ns
            .iter()
            .rev()
            .find(|(p, _)| p == prefix)
            .map(|(_, u)| u.clone())?;
        let known = ns::known_id(&uri);
        Some((self.owned_span(&uri), known))
    }

    fn start(&mut self, e: &BytesStart<'s>, offset: usize, empty: bool) -> Result<(), Malformed> {
        self.flush_text()?;
        if self.stack.is_empty() && self.root.is_some() {
            return Err(self.err(MalformedKind::MultipleRoots, offset));
        }
        if self.stack.len() >= self.limits.max_depth {
            return Err(self.err(
                MalformedKind::TooDeep {
                    limit: self.limits.max_depth,
                },
                offset,
            ));
        }
        self.seen_decl_or_content = true;
        let qname: &'s str = self.name_of(e);
        let Some((p, l)) = split_qname(qname) else {
            return Err(self.err(MalformedKind::BadName(qname.to_string()), offset));
        };
        let prefix = self.span_of(p);
        let local = self.span_of(l);

        // Most tags have no attributes at all: nothing to declare, resolve or decode but the name.
        if e.attributes_raw()
            .bytes()
            .all(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
        {
            let (n_decl, n_attr) = (self.ns_decls.len() as u32, self.attrs.len() as u32);
            let (ns, ns_known) = match self.resolve_or_context(p, (n_decl, n_decl)) {
                Some(u) => u,
                None if p.is_empty() => (Span::default(), 0),
                None => return Err(self.err(MalformedKind::UnboundPrefix(p.to_string()), offset)),
            };
            let data = ElementData {
                prefix,
                local,
                ns,
                attrs: (n_attr, n_attr),
                ns_decls: (n_decl, n_decl),
                offset: offset as u32,
                ns_known,
            };
            return self.open_element(data, offset, empty);
        }

        // First pass: namespace declarations; raw attributes kept for the second pass.
        let decl_start = self.ns_decls.len() as u32;
        let mut raw_attrs = std::mem::take(&mut self.raw_attrs);
        raw_attrs.clear();
        let mut count = 0usize;
        // Duplicates are checked below on expanded names (a stricter test than quick-xml's on QNames).
        for a in e.attributes().with_checks(false) {
            let a = a.map_err(|er| self.err(MalformedKind::Syntax(er.to_string()), offset))?;
            count += 1;
            if count > self.limits.max_attributes {
                return Err(self.err(
                    MalformedKind::TooManyAttributes {
                        limit: self.limits.max_attributes,
                    },
                    offset,
                ));
            }
            let key: &'s str = self.key_of(a.key.into_inner());
            let Some(raw) = self.reborrow(&a.value) else {
                return Err(self.err(
                    MalformedKind::Syntax("attribute value outside the input".into()),
                    offset,
                ));
            };
            if key == "xmlns" || key.starts_with("xmlns:") {
                let dp = if key == "xmlns" { "" } else { &key[6..] };
                let uri = self.attr_value(raw, offset)?;
                let uri_s = self.span_str(uri).to_string();
                if (!dp.is_empty() && (!is_ncname(dp) || uri_s.is_empty()))
                    || (!uri_s.is_empty() && !is_absolute_uri(&uri_s))
                    || dp == "xmlns"
                    || (dp == "xml" && uri_s != ns::XML)
                    || (dp != "xml" && uri_s == ns::XML)
                    || uri_s == ns::XMLNS
                {
                    return Err(self.err(
                        MalformedKind::BadNamespaceDeclaration(format!("{key}=\"{uri_s}\"")),
                        offset,
                    ));
                }
                let dps = self.span_of(dp);
                self.work
                    .set(self.work.get() + (self.ns_decls.len() - decl_start as usize) as u64);
                if self.ns_decls[decl_start as usize..]
                    .iter()
                    .any(|d| eq_short(self.span_str(d.prefix), dp))
                {
                    return Err(
                        self.err(MalformedKind::DuplicateAttribute(key.to_string()), offset)
                    );
                }
                self.ns_decls.push(NsDecl {
                    prefix: dps,
                    key: prefix_key(dp),
                    uri,
                    known: ns::known_id(&uri_s),
                });
            } else {
                raw_attrs.push((key, raw));
            }
        }
        let decls = (decl_start, self.ns_decls.len() as u32);

        let (ns, ns_known) = match self.resolve_or_context(p, decls) {
            Some(u) => u,
            None if p.is_empty() => (Span::default(), 0),
            None => return Err(self.err(MalformedKind::UnboundPrefix(p.to_string()), offset)),
        };

        let attr_start = self.attrs.len() as u32;
        // Duplicates (by expanded name): every pair compared by a 64-bit key of the name first,
        // the strings only when keys are equal (a handful of integer compares per attribute).
        let mut keys = std::mem::take(&mut self.attr_keys);
        keys.clear();
        for &(key, raw) in &raw_attrs {
            let Some((ap, al)) = split_qname(key) else {
                return Err(self.err(MalformedKind::BadName(key.to_string()), offset));
            };
            // Unprefixed attributes are in no namespace (Namespaces in XML §6.2).
            let ans = if ap.is_empty() {
                Span::default()
            } else {
                match self.resolve_or_context(ap, decls) {
                    Some((u, _)) => u,
                    None => {
                        return Err(self.err(MalformedKind::UnboundPrefix(ap.to_string()), offset));
                    }
                }
            };
            let value = self.attr_value(raw, offset)?;
            let a = AttrData {
                prefix: self.span_of(ap),
                local: self.span_of(al),
                ns: ans,
                value,
            };
            let ans_str = self.span_str(ans);
            let k = name_key(al, ans_str);
            self.work.set(self.work.get() + keys.len() as u64 + 1);
            let dup = keys.iter().enumerate().any(|(j, &kj)| {
                kj == k && {
                    let b = &self.attrs[attr_start as usize + j];
                    eq_short(self.span_str(b.local), al)
                        && (b.ns == ans || eq_short(self.span_str(b.ns), ans_str))
                }
            });
            if dup {
                return Err(self.err(MalformedKind::DuplicateAttribute(key.to_string()), offset));
            }
            keys.push(k);
            self.attrs.push(a);
        }
        self.attr_keys = keys;
        let attrs = (attr_start, self.attrs.len() as u32);
        self.raw_attrs = raw_attrs;

        self.open_element(
            ElementData {
                prefix,
                local,
                ns,
                attrs,
                ns_decls: decls,
                offset: offset as u32,
                ns_known,
            },
            offset,
            empty,
        )
    }

    fn open_element(
        &mut self,
        data: ElementData,
        offset: usize,
        empty: bool,
    ) -> Result<(), Malformed> {
        let decls = data.ns_decls;
        let ix = self.elements.len() as u32;
        self.elements.push(data);
        let id = self.push_node(NodeKind::Element(ix), offset)?;
        if self.root.is_none() {
            self.root = Some(id);
        }
        if empty {
            self.close(id);
        } else {
            self.stack.push(id);
            self.scope_marks.push(self.scope.len());
            if decls.1 > decls.0 {
                self.scope
                    .extend_from_slice(&self.ns_decls[decls.0 as usize..decls.1 as usize]);
            }
        }
        // The scope every lookup below this element scans (an empty element's own declarations
        // count too: its attributes were resolved against them).
        let in_scope = self.scope.len()
            + self.context_ns.len()
            + if empty {
                (decls.1 - decls.0) as usize
            } else {
                0
            };
        if in_scope > self.limits.max_namespaces_in_scope {
            return Err(self.err(
                MalformedKind::TooManyNamespaces {
                    limit: self.limits.max_namespaces_in_scope,
                },
                offset,
            ));
        }
        Ok(())
    }

    fn close(&mut self, id: NodeId) {
        let end = self.nodes.len() as NodeId;
        self.nodes[id as usize].end = end;
    }

    fn name_of(&self, e: &BytesStart<'s>) -> &'s str {
        // BytesStart from a slice reader borrows the source; fall back to a safe empty name.
        let n = e.name().into_inner();
        self.key_of(n)
    }

    /// Re-borrows a name slice with the source's lifetime (it always points into the source).
    fn key_of(&self, k: &str) -> &'s str {
        self.reborrow(k).unwrap_or("")
    }

    /// `k` as a slice of the source, if it is one (the slice reader borrows everything it returns).
    fn reborrow(&self, k: &str) -> Option<&'s str> {
        let base = self.src.as_ptr() as usize;
        let p = k.as_ptr() as usize;
        if p >= base && p + k.len() <= base + self.src.len() {
            self.src.get(p - base..p - base + k.len())
        } else {
            None
        }
    }

    fn run(mut self) -> Result<Parts, Malformed> {
        let mut reader = Reader::from_str(self.src);
        {
            let c = reader.config_mut();
            c.check_end_names = true;
            c.check_comments = true;
            c.expand_empty_elements = false;
            c.trim_text_start = false;
            c.trim_text_end = false;
            c.allow_dangling_amp = false;
            c.allow_unmatched_ends = false;
        }
        loop {
            let before = reader.buffer_position() as usize;
            // A plain match, not map_err + `?`: the event is moved once (measurably cheaper on
            // a thousand-element assertion).
            let ev = match reader.read_event() {
                Ok(ev) => ev,
                Err(e) => {
                    return Err(self.err(
                        MalformedKind::Syntax(e.to_string()),
                        reader.error_position() as usize,
                    ));
                }
            };
            match ev {
                Event::Start(e) => self.start(&e, before, false)?,
                Event::Empty(e) => self.start(&e, before, true)?,
                Event::End(_) => {
                    self.flush_text()?;
                    let Some(id) = self.stack.pop() else {
                        return Err(
                            self.err(MalformedKind::Syntax("unmatched end tag".into()), before)
                        );
                    };
                    if let Some(mark) = self.scope_marks.pop() {
                        self.scope.truncate(mark);
                    }
                    self.close(id);
                }
                Event::Text(t) => {
                    let raw = match t.into_inner() {
                        std::borrow::Cow::Borrowed(s) => s,
                        std::borrow::Cow::Owned(_) => {
                            return Err(
                                self.err(MalformedKind::Syntax("owned text".into()), before)
                            );
                        }
                    };
                    if !self.stack.is_empty()
                        || !raw.trim_matches([' ', '\t', '\n', '\r']).is_empty()
                    {
                        self.seen_decl_or_content = true;
                    }
                    self.add_raw_text(raw, before)?;
                }
                Event::GeneralRef(r) => {
                    let name = r.into_inner();
                    let c = decode_reference(&name).map_err(|k| self.err(k, before))?;
                    let mut buf = [0u8; 4];
                    self.add_text(c.encode_utf8(&mut buf), before)?;
                }
                Event::CData(c) => {
                    let raw = match c.into_inner() {
                        std::borrow::Cow::Borrowed(s) => s,
                        std::borrow::Cow::Owned(_) => {
                            return Err(
                                self.err(MalformedKind::Syntax("owned CDATA".into()), before)
                            );
                        }
                    };
                    if self.stack.is_empty() {
                        return Err(self.err(MalformedKind::ContentOutsideRoot, before));
                    }
                    // CDATA may hold '<' and '&': it always goes to the decoded buffer, so that
                    // source spans keep the invariant Span::is_decoded relies on.
                    let norm = raw.replace("\r\n", "\n").replace('\r', "\n");
                    if self.text.is_none() {
                        self.text_offset = before;
                        self.text = Some(self.owned_span(&norm));
                    } else {
                        self.add_text(&norm, before)?;
                    }
                }
                Event::Comment(c) => {
                    let raw = match c.into_inner() {
                        std::borrow::Cow::Borrowed(s) => s,
                        std::borrow::Cow::Owned(_) => {
                            return Err(
                                self.err(MalformedKind::Syntax("owned comment".into()), before)
                            );
                        }
                    };
                    self.seen_decl_or_content = true;
                    if !self.stack.is_empty() {
                        self.flush_text()?;
                        let s = if raw.contains('\r') {
                            let norm = raw.replace("\r\n", "\n").replace('\r', "\n");
                            self.owned_span(&norm)
                        } else {
                            self.span_of(raw)
                        };
                        self.push_node(NodeKind::Comment(s), before)?;
                    }
                }
                Event::PI(p) => {
                    let target = p.target();
                    if target.eq_ignore_ascii_case("xml") {
                        return Err(self.err(
                            MalformedKind::BadDeclaration(
                                "XML declaration not at the start".into(),
                            ),
                            before,
                        ));
                    }
                    if !is_ncname(target) {
                        return Err(self.err(MalformedKind::BadName(target.to_string()), before));
                    }
                    self.seen_decl_or_content = true;
                    if !self.stack.is_empty() {
                        self.flush_text()?;
                        let target: &'s str = self.key_of(target);
                        let data: &'s str =
                            self.key_of(p.content().trim_start_matches([' ', '\t', '\n', '\r']));
                        let t = self.span_of(target);
                        let d = self.span_of(data);
                        let ix = self.pis.len() as u32;
                        self.pis.push((t, d));
                        self.push_node(NodeKind::Pi(ix), before)?;
                    }
                }
                Event::Decl(d) => {
                    if self.seen_decl_or_content || before != 0 {
                        return Err(self.err(
                            MalformedKind::BadDeclaration(
                                "XML declaration not at the start".into(),
                            ),
                            before,
                        ));
                    }
                    self.seen_decl_or_content = true;
                    let raw: &str = d.as_ref();
                    check_declaration(raw)
                        .map_err(|why| self.err(MalformedKind::BadDeclaration(why), before))?;
                }
                Event::DocType(_) => return Err(self.err(MalformedKind::Doctype, before)),
                Event::Eof => break,
            }
        }
        if !self.stack.is_empty() {
            return Err(self.err(MalformedKind::Unclosed, self.src.len()));
        }
        let Some(root) = self.root else {
            return Err(self.err(MalformedKind::NoRoot, self.src.len()));
        };
        let work = self.work.get() + self.nodes.len() as u64;
        Ok(Parts {
            decoded: self.decoded,
            nodes: self.nodes,
            elements: self.elements,
            pis: self.pis,
            attrs: self.attrs,
            ns_decls: self.ns_decls,
            context_ns: self.context_ns,
            root,
            work,
        })
    }
}

#[cfg(test)]
#[path = "xml_tests.rs"]
mod tests;
