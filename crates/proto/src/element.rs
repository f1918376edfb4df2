//! A small XML element tree for stanzas, whose cost is bounded by its input.
//!
//! Why not `minidom`: Starling needs exact control over serialisation (the stream's default namespace is
//! never repeated on each stanza, `stream:` is written as the prefix the stream header declared) and over
//! per-stanza memory. The tree is built from `rxml` events by the stream codec, so the XML rules
//! (restricted XML, well-formedness) are still enforced by `rxml`; this type only holds the result.
//!
//! Unknown children are kept exactly (names, namespaces, attributes, text), so payloads such as receipts,
//! caps and avatars pass through the server intact.
//!
//! What keeps a stanza's cost proportional to its size (issue 11; `shared/design/hardening.md`):
//! - **Namespaces are shared, not copied.** [`Ns`] is a `'static` string for the namespaces Starling
//!   knows, or one reference-counted string per declaration the sender wrote: a thousand children
//!   in a namespace declared once hold one copy of its name. Two namespaces compare by pointer, then
//!   by a hash computed once (with a per-process random key), and by content only when the hashes are
//!   equal, so a long namespace name is never compared byte by byte over and over.
//! - **Declarations are written where the sender wrote them.** A parsed element keeps the prefixed
//!   declarations (`xmlns:p='…'`) that were on it; the serialiser writes them there again and uses a
//!   prefix in scope for every element or attribute in that namespace, and writes `xmlns='…'` only
//!   where the default namespace changes. A stanza the server did not modify serialises to at most
//!   its wire size.
//! - **`xml:` is special** (Namespaces in XML §3): elements and attributes in
//!   `http://www.w3.org/XML/1998/namespace` are always written with the `xml` prefix, which is never
//!   declared and never bound to anything else.
//! - **Small parts.** Names of up to 24 bytes live inline ([`Name`]), child elements are boxed so a
//!   child slot is three words, and an element without attributes, children or declarations owns no
//!   heap memory beyond its box.

use std::borrow::Cow;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, OnceLock};

use crate::ns;

/// An element or attribute name (local part, or a namespace prefix); inline up to 24 bytes.
pub type Name = compact_str::CompactString;

/// A namespace name: shared, cheap to clone and to compare.
#[derive(Clone)]
pub struct Ns(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Shared(Arc<SharedNs>),
}

struct SharedNs {
    hash: u64,
    uri: Box<str>,
}

fn hash_str(s: &str) -> u64 {
    static KEYS: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    KEYS.get_or_init(std::collections::hash_map::RandomState::new)
        .hash_one(s)
}

impl Ns {
    /// No namespace: unqualified attributes, and elements under `xmlns=''`.
    pub const NONE: Ns = Ns(Repr::Static(""));

    /// A namespace from a constant.
    pub const fn from_static(uri: &'static str) -> Ns {
        Ns(Repr::Static(uri))
    }

    /// A namespace by name: the shared constant when Starling knows it, else a new shared string.
    pub fn new(uri: &str) -> Ns {
        match ns::known(uri) {
            Some(s) => Ns(Repr::Static(s)),
            None => Ns(Repr::Shared(Arc::new(SharedNs {
                hash: hash_str(uri),
                uri: uri.into(),
            }))),
        }
    }

    /// Like [`Ns::new`], reusing the string's allocation.
    pub fn from_string(uri: String) -> Ns {
        match ns::known(&uri) {
            Some(s) => Ns(Repr::Static(s)),
            None => Ns(Repr::Shared(Arc::new(SharedNs {
                hash: hash_str(&uri),
                uri: uri.into_boxed_str(),
            }))),
        }
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(s) => s,
            Repr::Shared(s) => &s.uri,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.as_str().is_empty()
    }

    /// A hash of the name, computed once for shared names (constants are short).
    fn hash64(&self) -> u64 {
        match &self.0 {
            Repr::Static(s) => hash_str(s),
            Repr::Shared(s) => s.hash,
        }
    }
}

impl PartialEq for Ns {
    fn eq(&self, other: &Ns) -> bool {
        match (&self.0, &other.0) {
            (Repr::Shared(a), Repr::Shared(b)) => {
                Arc::ptr_eq(a, b) || (a.hash == b.hash && a.uri == b.uri)
            }
            // At least one side is one of our constants: short, or of a different length.
            (a, b) => {
                let (a, b) = (repr_str(a), repr_str(b));
                a.len() == b.len() && a == b
            }
        }
    }
}

fn repr_str(r: &Repr) -> &str {
    match r {
        Repr::Static(s) => s,
        Repr::Shared(s) => &s.uri,
    }
}

impl Eq for Ns {}

impl Hash for Ns {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash64());
    }
}

impl PartialEq<str> for Ns {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Ns {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Debug for Ns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for Ns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Ns {
    fn from(s: &str) -> Ns {
        Ns::new(s)
    }
}

impl From<String> for Ns {
    fn from(s: String) -> Ns {
        Ns::from_string(s)
    }
}

impl From<&String> for Ns {
    fn from(s: &String) -> Ns {
        Ns::new(s)
    }
}

impl From<&Ns> for Ns {
    fn from(s: &Ns) -> Ns {
        s.clone()
    }
}

/// An attribute; `ns` is [`Ns::NONE`] for the usual unqualified attributes, `ns::XML` for `xml:lang`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ns: Ns,
    pub name: Name,
    pub value: String,
}

impl Attr {
    /// The attribute's namespace, `None` when unqualified.
    pub fn namespace(&self) -> Option<&str> {
        (!self.ns.is_empty()).then(|| self.ns.as_str())
    }
}

/// A child node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Element(Box<Element>),
    Text(String),
    /// A subtree the server serialised once ([`Element::to_xml`]: its namespaces declared on
    /// it) to send to many recipients: written out as it is, shared rather than copied, and
    /// invisible to [`Element::children`] and [`Element::text`]. Never built from what a peer
    /// sent; see [`Element::append_serialised`].
    Raw(std::sync::Arc<str>),
}

/// An XML element with its namespace name (never a prefix).
///
/// Equality is XML's: names, namespaces, attributes and children; which prefixes were declared
/// where is presentation and does not count.
#[derive(Clone, Debug)]
pub struct Element {
    name: Name,
    ns: Ns,
    attrs: Vec<Attr>,
    children: Vec<Node>,
    /// Prefixed namespace declarations written on this element (as the sender wrote them), and
    /// under the empty prefix the default namespace a prefixed element declared for its children;
    /// boxed, as most elements have none (one word instead of a vector's three).
    #[allow(clippy::box_collection)]
    decls: Option<Box<Vec<(Name, Ns)>>>,
}

impl PartialEq for Element {
    fn eq(&self, other: &Element) -> bool {
        self.name == other.name
            && self.ns == other.ns
            && self.attrs == other.attrs
            && self.children == other.children
    }
}

impl Eq for Element {}

impl Element {
    /// A new empty element `name` in namespace `ns`.
    pub fn new(name: impl Into<Name>, ns: impl Into<Ns>) -> Self {
        Element {
            name: name.into(),
            ns: ns.into(),
            attrs: Vec::new(),
            children: Vec::new(),
            decls: None,
        }
    }

    /// An element as parsed: its attributes (unique by namespace and name: the caller checked)
    /// and the prefixed namespace declarations that were written on it.
    pub fn from_parts(name: Name, ns: Ns, attrs: Vec<Attr>, decls: Vec<(Name, Ns)>) -> Self {
        Element {
            name,
            ns,
            attrs,
            children: Vec::new(),
            decls: (!decls.is_empty()).then(|| Box::new(decls)),
        }
    }

    /// Adds prefixed namespace declarations to this element (the decoder moves declarations of
    /// the stream header that a stanza uses onto the stanza's top element).
    pub fn add_declarations(&mut self, decls: impl IntoIterator<Item = (Name, Ns)>) {
        self.decls.get_or_insert_default().extend(decls);
    }

    /// Builder: sets an unqualified attribute.
    pub fn with_attr(mut self, name: &str, value: impl Into<String>) -> Self {
        self.set_attr(name, value);
        self
    }

    /// Builder: sets an unqualified attribute when `value` is `Some`.
    pub fn with_opt_attr(mut self, name: &str, value: Option<impl Into<String>>) -> Self {
        if let Some(v) = value {
            self.set_attr(name, v);
        }
        self
    }

    /// Builder: appends a child element.
    pub fn with_child(mut self, child: Element) -> Self {
        self.append_child(child);
        self
    }

    /// Builder: appends text.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.append_text(text);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn ns(&self) -> &str {
        self.ns.as_str()
    }

    /// The namespace as a shared value (to build an element in the same namespace without a copy).
    pub fn namespace(&self) -> &Ns {
        &self.ns
    }

    /// True when this element is `name` in namespace `ns`.
    pub fn is(&self, name: &str, ns: &str) -> bool {
        self.name == name && self.ns.as_str() == ns
    }

    /// Value of the unqualified attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.is_empty() && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// Value of the attribute `name` in namespace `ns`.
    pub fn attr_ns(&self, ns: &str, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.name == name && a.ns.as_str() == ns)
            .map(|a| a.value.as_str())
    }

    pub fn attrs(&self) -> &[Attr] {
        &self.attrs
    }

    /// The prefixed namespace declarations written on this element.
    pub fn declarations(&self) -> &[(Name, Ns)] {
        self.decls.as_deref().map_or(&[], Vec::as_slice)
    }

    /// Sets (or replaces) the unqualified attribute `name`.
    pub fn set_attr(&mut self, name: &str, value: impl Into<String>) {
        self.set_attr_ns(Ns::NONE, name, value);
    }

    /// Sets (or replaces) an attribute in a namespace (`ns::XML` for `xml:lang`).
    pub fn set_attr_ns(&mut self, ns: impl Into<Ns>, name: &str, value: impl Into<String>) {
        let ns = ns.into();
        let value = value.into();
        if let Some(a) = self.attrs.iter_mut().find(|a| a.name == name && a.ns == ns) {
            a.value = value;
        } else {
            self.attrs.push(Attr {
                ns,
                name: name.into(),
                value,
            });
        }
    }

    /// Removes the unqualified attribute `name`, returning its value.
    pub fn remove_attr(&mut self, name: &str) -> Option<String> {
        let pos = self
            .attrs
            .iter()
            .position(|a| a.ns.is_empty() && a.name == name)?;
        Some(self.attrs.remove(pos).value)
    }

    pub fn nodes(&self) -> &[Node] {
        &self.children
    }

    /// Adds `child`, serialised now, as a [`Node::Raw`] to be shared: what a notification to
    /// many recipients carries (each recipient's copy of this element then costs a reference
    /// count, and writing it a copy of bytes). Returns the shared text for further elements.
    pub fn append_serialised(&mut self, child: &Element) -> std::sync::Arc<str> {
        let xml: std::sync::Arc<str> = child.to_xml().into();
        self.children.push(Node::Raw(xml.clone()));
        xml
    }

    /// Serialises every child node now, in the scope of this element (its namespace the
    /// default, so children in it repeat no declaration), and keeps them as one shared
    /// [`Node::Raw`]: a stanza sent to many recipients (a groupchat message reflected to every
    /// occupant) is then copied for each with a reference count, and written with a copy of
    /// bytes. Afterwards [`Element::children`] sees none of them: do it last.
    pub fn share_children(&mut self) {
        if self.children.is_empty() {
            return;
        }
        let mut out = String::new();
        let mut w = Writer {
            bindings: Vec::new(),
            stream_prefix: false,
            out: &mut out,
        };
        for n in &self.children {
            match n {
                Node::Element(e) => w.element(e, &self.ns),
                Node::Text(t) => write_text(t, w.out),
                Node::Raw(xml) => w.out.push_str(xml),
            }
        }
        self.children = vec![Node::Raw(out.into())];
    }

    /// Child elements, in order.
    pub fn children(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(&**e),
            Node::Text(_) | Node::Raw(_) => None,
        })
    }

    /// The first child `name` in `ns`.
    pub fn get_child(&self, name: &str, ns: &str) -> Option<&Element> {
        self.children().find(|c| c.is(name, ns))
    }

    /// The first child `name` in `ns`, mutably.
    pub fn get_child_mut(&mut self, name: &str, ns: &str) -> Option<&mut Element> {
        self.children.iter_mut().find_map(|n| match n {
            Node::Element(e) if e.is(name, ns) => Some(&mut **e),
            _ => None,
        })
    }

    /// Whether a child `name` in `ns` exists.
    pub fn has_child(&self, name: &str, ns: &str) -> bool {
        self.get_child(name, ns).is_some()
    }

    /// Appends a child element.
    pub fn append_child(&mut self, child: Element) {
        self.children.push(Node::Element(Box::new(child)));
    }

    /// Appends a child element that is already boxed.
    pub fn append_boxed(&mut self, child: Box<Element>) {
        self.children.push(Node::Element(child));
    }

    /// Appends text, merging with a preceding text node.
    pub fn append_text(&mut self, text: impl Into<String>) {
        let text = text.into();
        if text.is_empty() {
            return;
        }
        if let Some(Node::Text(t)) = self.children.last_mut() {
            t.push_str(&text);
        } else {
            self.children.push(Node::Text(text));
        }
    }

    /// Removes every child node.
    pub fn clear_children(&mut self) {
        self.children.clear();
    }

    /// Keeps only the child nodes for which `keep` returns true.
    pub fn retain_nodes(&mut self, keep: impl FnMut(&Node) -> bool) {
        self.children.retain(keep);
    }

    /// Concatenated direct text content.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                s.push_str(t);
            }
        }
        s
    }

    /// Moves this element, and every descendant and declaration in namespace `from`, to `to`:
    /// for a stanza crossing from a stream with one content namespace to a stream with another
    /// (`jabber:component:accept` and `jabber:client`, XEP-0114 §3).
    pub fn rename_ns(&mut self, from: &str, to: &Ns) {
        if self.ns.as_str() == from {
            self.ns = to.clone();
        }
        if let Some(decls) = self.decls.as_mut() {
            for (_, ns) in decls.iter_mut() {
                if ns.as_str() == from {
                    *ns = to.clone();
                }
            }
        }
        for node in &mut self.children {
            if let Node::Element(e) = node {
                e.rename_ns(from, to);
            }
        }
    }

    /// Number of elements in this tree, this one included.
    pub fn element_count(&self) -> usize {
        1 + self.children().map(Element::element_count).sum::<usize>()
    }

    /// Serialises as a top-level element of a stream whose default namespace is `stream_ns`
    /// (`jabber:client`) and which declared the `stream` prefix: that namespace is not repeated,
    /// `stream:` is used as the prefix of `http://etherx.jabber.org/streams`.
    pub fn write_in_stream(&self, stream_ns: &str, out: &mut String) {
        let default = Ns::new(stream_ns);
        let mut w = Writer {
            bindings: Vec::new(),
            stream_prefix: true,
            out,
        };
        w.element(self, &default);
    }

    /// Serialises as a standalone document fragment (the default namespace is declared).
    pub fn to_xml(&self) -> String {
        let mut s = String::new();
        self.write_standalone(&mut s);
        s
    }

    /// Appends the element as a standalone document fragment, as [`Element::to_xml`] does: its
    /// namespace and every prefix it uses are declared on it (RFC 7395 §3.3.3: each WebSocket
    /// message is a complete element).
    pub fn write_standalone(&self, out: &mut String) {
        let mut w = Writer {
            bindings: Vec::new(),
            stream_prefix: false,
            out,
        };
        w.element(self, &Ns::NONE);
    }
}

impl std::fmt::Display for Element {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_xml())
    }
}

/// A prefix binding in scope while serialising.
struct Binding<'a> {
    prefix: Cow<'a, str>,
    ns: &'a Ns,
    /// A later (inner) binding of the same prefix hides this one.
    shadowed: bool,
    /// The binding this one hides, made visible again when this one goes out of scope.
    shadows: Option<usize>,
}

/// The serialiser: the prefix bindings in scope, outermost first.
struct Writer<'a, 'o> {
    bindings: Vec<Binding<'a>>,
    /// Inside a stream whose header bound `stream` (kept out of `bindings` so that writing a
    /// stanza allocates nothing for its scope).
    stream_prefix: bool,
    out: &'o mut String,
}

/// Where an element's or attribute's prefix comes from.
#[derive(Clone, Copy)]
enum Prefix {
    /// A binding in scope.
    At(usize),
    /// The stream header's `stream` prefix.
    Stream,
}

impl<'a> Writer<'a, '_> {
    fn bind(&mut self, prefix: Cow<'a, str>, ns: &'a Ns) {
        let shadows = self
            .bindings
            .iter()
            .rposition(|b| !b.shadowed && b.prefix == prefix);
        if let Some(i) = shadows {
            self.bindings[i].shadowed = true;
        }
        self.bindings.push(Binding {
            prefix,
            ns,
            shadowed: false,
            shadows,
        });
    }

    fn unbind_to(&mut self, mark: usize) {
        while self.bindings.len() > mark {
            if let Some(b) = self.bindings.pop()
                && let Some(i) = b.shadows
            {
                self.bindings[i].shadowed = false;
            }
        }
    }

    /// The shortest visible prefix bound to `ns` (the innermost of equal length). Shortest, not
    /// innermost: the sender used one of the visible prefixes, so the one written is never
    /// longer than the sender's, even when a long prefix for the same namespace was declared
    /// further in.
    fn prefix_for(&self, ns: &Ns) -> Option<Prefix> {
        let mut best: Option<(usize, usize)> = None;
        for (i, b) in self.bindings.iter().enumerate() {
            if !b.shadowed && *b.ns == *ns && best.is_none_or(|(_, len)| b.prefix.len() <= len) {
                best = Some((i, b.prefix.len()));
            }
        }
        let stream_visible = self.stream_prefix
            && ns.as_str() == ns::STREAM
            && !self
                .bindings
                .iter()
                .any(|b| !b.shadowed && b.prefix == "stream");
        match best {
            Some((_, len)) if stream_visible && "stream".len() < len => Some(Prefix::Stream),
            Some((i, _)) => Some(Prefix::At(i)),
            None => stream_visible.then_some(Prefix::Stream),
        }
    }

    fn push_prefix(&mut self, p: Prefix) {
        match p {
            Prefix::At(i) => {
                let Writer { bindings, out, .. } = self;
                out.push_str(&bindings[i].prefix);
            }
            Prefix::Stream => self.out.push_str("stream"),
        }
        self.out.push(':');
    }

    /// A prefix not visible in scope, for a namespace that has none.
    fn fresh_prefix(&self) -> String {
        (0..)
            .map(|n| format!("ns{n}"))
            .find(|p| {
                !self
                    .bindings
                    .iter()
                    .any(|b| !b.shadowed && b.prefix == p.as_str())
            })
            .unwrap_or_default()
    }

    fn element(&mut self, el: &'a Element, default: &'a Ns) {
        let mark = self.bindings.len();
        // A declaration with an empty prefix is the default namespace a prefixed element
        // declared for its children (kept, or each child would declare it again).
        let mut declared_default = None;
        for (p, n) in el.declarations() {
            if p.is_empty() {
                declared_default = Some(n);
            } else {
                self.bind(Cow::Borrowed(p.as_str()), n);
            }
        }
        let scope_default = declared_default.unwrap_or(default);
        let mut new_default = declared_default.filter(|d| **d != *default);
        // The element's prefix: `xml`, none (the default namespace), a visible prefix, a new
        // default namespace declared here, or (when the default is taken) a new prefix.
        let mut fresh = None;
        let prefix: Option<Prefix> = if el.ns.as_str() == ns::XML || el.ns == *scope_default {
            None
        } else if let Some(p) = self.prefix_for(&el.ns) {
            Some(p)
        } else if declared_default.is_none() {
            new_default = Some(&el.ns);
            None
        } else {
            let p = self.fresh_prefix();
            fresh = Some(p.clone());
            self.bind(Cow::Owned(p), &el.ns);
            Some(Prefix::At(self.bindings.len() - 1))
        };
        let xml_prefixed = el.ns.as_str() == ns::XML;
        self.out.push('<');
        self.write_qname(xml_prefixed, prefix, &el.name);
        for (p, n) in el.declarations() {
            if !p.is_empty() {
                self.out.push_str(" xmlns:");
                self.out.push_str(p);
                write_attr_value(n.as_str(), self.out);
            }
        }
        if let Some(p) = fresh {
            self.out.push_str(" xmlns:");
            self.out.push_str(&p);
            write_attr_value(el.ns.as_str(), self.out);
        }
        if let Some(d) = new_default {
            self.out.push_str(" xmlns");
            write_attr_value(d.as_str(), self.out);
        }
        for a in &el.attrs {
            self.out.push(' ');
            if a.ns.is_empty() {
            } else if a.ns.as_str() == ns::XML {
                self.out.push_str("xml:");
            } else {
                let p = match self.prefix_for(&a.ns) {
                    Some(p) => p,
                    None => {
                        // Only trees built by the server get here: parsed attributes always
                        // have a prefix in scope.
                        let p = self.fresh_prefix();
                        self.out.push_str("xmlns:");
                        self.out.push_str(&p);
                        write_attr_value(a.ns.as_str(), self.out);
                        self.out.push(' ');
                        self.bind(Cow::Owned(p), &a.ns);
                        Prefix::At(self.bindings.len() - 1)
                    }
                };
                self.push_prefix(p);
            }
            self.out.push_str(&a.name);
            write_attr_value(&a.value, self.out);
        }
        if el.children.is_empty() {
            self.out.push_str("/>");
        } else {
            self.out.push('>');
            let child_default = new_default.unwrap_or(default);
            for n in &el.children {
                match n {
                    Node::Element(e) => self.element(e, child_default),
                    Node::Text(t) => write_text(t, self.out),
                    Node::Raw(xml) => self.out.push_str(xml),
                }
            }
            self.out.push_str("</");
            self.write_qname(xml_prefixed, prefix, &el.name);
            self.out.push('>');
        }
        self.unbind_to(mark);
    }

    fn write_qname(&mut self, xml_prefixed: bool, prefix: Option<Prefix>, name: &str) {
        if xml_prefixed {
            self.out.push_str("xml:");
        } else if let Some(p) = prefix {
            self.push_prefix(p);
        }
        self.out.push_str(name);
    }
}

/// Writes character data no longer than any sender could have written it: split at each CR
/// (written `&#13;`, kept through the receiver's line-end normalisation) and at each `]]>`
/// (written `]]&gt;`), and each run between either escaped (`&lt;`, `&amp;`) or as one CDATA
/// section, whichever is shorter: a sender who put many `<` in a CDATA section gets them back
/// that way, not at four times the size.
fn write_text(s: &str, out: &mut String) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, b) in bytes.iter().enumerate() {
        let sep = match b {
            b'\r' => "&#13;",
            b'>' if i >= 2 && bytes[i - 2..i] == *b"]]" => "&gt;",
            _ => continue,
        };
        write_text_run(&s[start..i], out);
        out.push_str(sep);
        start = i + 1;
    }
    write_text_run(&s[start..], out);
}

/// A run of text without CR and without `]]>`.
fn write_text_run(r: &str, out: &mut String) {
    const CDATA_MARKUP: usize = "<![CDATA[]]>".len();
    let extra: usize = r
        .bytes()
        .map(|b| match b {
            b'<' => 3,
            b'&' => 4,
            _ => 0,
        })
        .sum();
    if extra <= CDATA_MARKUP {
        for c in r.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                c => out.push(c),
            }
        }
    } else {
        out.push_str("<![CDATA[");
        out.push_str(r);
        out.push_str("]]>");
    }
}

/// Writes `='value'` or `="value"`, whichever quote the value holds fewer of, escaping `&`, `<`,
/// that quote (as a 5-byte character reference, the shortest a sender can write it in) and the
/// whitespace that attribute-value normalisation would turn into spaces. A value is never written
/// longer than it arrived: a sender must have escaped at least as many of either quote.
fn write_attr_value(s: &str, out: &mut String) {
    let singles = s.bytes().filter(|b| *b == b'\'').count();
    let doubles = s.bytes().filter(|b| *b == b'"').count();
    let quote = if singles > doubles { '"' } else { '\'' };
    out.push('=');
    out.push(quote);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '\'' if quote == '\'' => out.push_str("&#39;"),
            '"' if quote == '"' => out.push_str("&#34;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Escapes character data.
pub fn escape_text(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // Keep CR through the receiver's line-end normalisation.
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

/// Escapes an attribute value written between single quotes.
pub fn escape_attr(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            // Attribute-value normalisation would turn these into spaces.
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shared children are written as they were, with no namespace repeated for those in the
    /// stanza's own, and are shared by every clone.
    #[test]
    fn shared_children_serialise_in_the_parents_scope() {
        let mut m = Element::new("message", ns::CLIENT)
            .with_attr("type", "groupchat")
            .with_child(Element::new("body", ns::CLIENT).with_text("a < b"))
            .with_child(Element::new("stanza-id", ns::SID).with_attr("id", "x"));
        m.share_children();
        let mut copy = m.clone();
        assert!(
            matches!((&m.nodes()[0], &copy.nodes()[0]), (Node::Raw(a), Node::Raw(b)) if std::sync::Arc::ptr_eq(a, b))
        );
        copy.set_attr("to", "r@c/n");
        let mut out = String::new();
        copy.write_in_stream(ns::CLIENT, &mut out);
        assert_eq!(
            out,
            "<message type='groupchat' to='r@c/n'><body>a &lt; b</body><stanza-id xmlns='urn:xmpp:sid:0' id='x'/></message>"
        );
    }

    /// A serialised subtree is written as it is, with the namespaces it declared, inside any
    /// parent; it is shared by clones and invisible to `children()`.
    #[test]
    fn serialised_children_are_written_as_they_are() {
        let event = Element::new("event", "urn:example:event")
            .with_child(Element::new("item", "urn:example:event").with_attr("id", "a<b"));
        let mut m = Element::new("message", ns::CLIENT).with_attr("to", "x@y");
        let xml = m.append_serialised(&event);
        let copy = m.clone();
        assert!(matches!(&copy.nodes()[0], Node::Raw(r) if std::sync::Arc::ptr_eq(r, &xml)));
        assert_eq!(copy.children().count(), 0);
        let mut out = String::new();
        copy.write_in_stream(ns::CLIENT, &mut out);
        assert_eq!(
            out,
            "<message to='x@y'><event xmlns='urn:example:event'><item id='a&lt;b'/></event></message>"
        );
    }

    #[test]
    fn serialises_in_stream_without_repeating_default_namespace() {
        let e = Element::new("message", ns::CLIENT)
            .with_attr("to", "a@b/c")
            .with_attr("id", "x'1")
            .with_child(Element::new("body", ns::CLIENT).with_text("a < b & c"))
            .with_child(Element::new("request", "urn:xmpp:receipts"));
        let mut s = String::new();
        e.write_in_stream(ns::CLIENT, &mut s);
        assert_eq!(
            s,
            "<message to='a@b/c' id=\"x'1\"><body>a &lt; b &amp; c</body><request xmlns='urn:xmpp:receipts'/></message>"
        );
    }

    /// Text full of `<` (as a sender may write it in CDATA) comes out as CDATA, not 4x longer.
    #[test]
    fn markup_heavy_text_is_written_as_cdata() {
        let e = Element::new("body", ns::CLIENT).with_text("<<<<<<<<&&&& x ]]> <<<<<<<<<");
        let mut s = String::new();
        e.write_in_stream(ns::CLIENT, &mut s);
        assert_eq!(
            s,
            "<body><![CDATA[<<<<<<<<&&&& x ]]]]>&gt;<![CDATA[ <<<<<<<<<]]></body>"
        );
    }

    /// Escaping never makes a value longer than the sender had to write it (found by the
    /// stream fuzzer: `'` inside a `"`-quoted attribute was written as `&apos;`, `>` as `&gt;`).
    #[test]
    fn escaping_does_not_grow_what_was_parsed() {
        let e = Element::new("m", ns::CLIENT)
            .with_attr("a", "'".repeat(120))
            .with_attr("b", "both ' and \"\"")
            .with_text("a > b ]]> c\r");
        let mut s = String::new();
        e.write_in_stream(ns::CLIENT, &mut s);
        assert_eq!(
            s,
            format!(
                "<m a=\"{}\" b='both &#39; and \"\"'>a > b ]]&gt; c&#13;</m>",
                "'".repeat(120)
            )
        );
    }

    #[test]
    fn stream_namespace_uses_prefix() {
        let e = Element::new("error", ns::STREAM).with_child(Element::new("conflict", ns::STREAMS));
        let mut s = String::new();
        e.write_in_stream(ns::CLIENT, &mut s);
        assert_eq!(
            s,
            "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
        );
        // Outside a stream there is no `stream` prefix: the namespace is declared.
        assert_eq!(
            e.to_xml(),
            "<error xmlns='http://etherx.jabber.org/streams'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></error>"
        );
    }

    #[test]
    fn xml_lang_and_foreign_attrs() {
        let mut e = Element::new("body", ns::CLIENT);
        e.set_attr_ns(ns::XML, "lang", "de");
        e.set_attr_ns("urn:x", "k", "v");
        e.set_attr_ns("urn:x", "l", "w");
        assert_eq!(
            e.to_xml(),
            "<body xmlns='jabber:client' xml:lang='de' xmlns:ns0='urn:x' ns0:k='v' ns0:l='w'/>"
        );
        assert_eq!(e.attr_ns(ns::XML, "lang"), Some("de"));
        assert_eq!(e.attr("lang"), None);
    }

    /// Namespaces in XML §3: the `xml` prefix is bound by definition and must not be declared;
    /// no other prefix and no default namespace may be bound to its namespace.
    #[test]
    fn elements_in_the_xml_namespace_keep_the_xml_prefix() {
        let e = Element::new("message", ns::CLIENT).with_child(Element::new("foo", ns::XML));
        let mut s = String::new();
        e.write_in_stream(ns::CLIENT, &mut s);
        assert_eq!(s, "<message><xml:foo/></message>");
    }

    #[test]
    fn declared_prefixes_are_reused_not_repeated() {
        let uri = Ns::new("urn:long");
        let mut x = Element::from_parts(
            "x".into(),
            Ns::new("urn:x"),
            Vec::new(),
            vec![("p".into(), uri.clone())],
        );
        for _ in 0..3 {
            x.append_child(Element::new("a", uri.clone()));
        }
        let mut a = Element::new("b", uri.clone());
        a.set_attr_ns(uri.clone(), "k", "v");
        x.append_child(a);
        let mut s = String::new();
        x.write_in_stream(ns::CLIENT, &mut s);
        assert_eq!(
            s,
            "<x xmlns:p='urn:long' xmlns='urn:x'><p:a/><p:a/><p:a/><p:b p:k='v'/></x>"
        );
    }

    #[test]
    fn shadowed_prefixes_are_not_used() {
        let n = Ns::new("urn:n");
        let m = Ns::new("urn:m");
        let mut inner =
            Element::from_parts("y".into(), m.clone(), Vec::new(), vec![("p".into(), m)]);
        inner.append_child(Element::new("a", n.clone()));
        let mut outer =
            Element::from_parts("x".into(), n.clone(), Vec::new(), vec![("p".into(), n)]);
        outer.append_child(inner);
        assert_eq!(
            outer.to_xml(),
            "<p:x xmlns:p='urn:n'><p:y xmlns:p='urn:m'><a xmlns='urn:n'/></p:y></p:x>"
        );
    }

    /// Found by the `stream_roundtrip` fuzzer: a long prefix declared further in for a namespace
    /// that already has a short one must not replace the short one the sender kept using.
    #[test]
    fn the_shortest_visible_prefix_is_used() {
        let n = Ns::new("urn:n");
        let long = "o".repeat(80);
        let mut inner = Element::from_parts(
            "y".into(),
            n.clone(),
            Vec::new(),
            vec![(long.as_str().into(), n.clone())],
        );
        inner.append_child(Element::new("a", n.clone()));
        let mut outer =
            Element::from_parts("x".into(), n.clone(), Vec::new(), vec![("p".into(), n)]);
        outer.append_child(inner);
        assert_eq!(
            outer.to_xml(),
            format!("<p:x xmlns:p='urn:n'><p:y xmlns:{long}='urn:n'><p:a/></p:y></p:x>")
        );
    }

    #[test]
    fn namespaces_compare_by_value() {
        let a = Ns::new("urn:a");
        let b = Ns::from_string("urn:a".to_owned());
        assert_eq!(a, b);
        assert_eq!(Ns::new(ns::CLIENT), Ns::from_static(ns::CLIENT));
        assert_eq!(Ns::from_static("urn:a"), a);
        assert_ne!(Ns::new("urn:b"), a);
        assert_eq!(Ns::NONE, Ns::new(""));
    }

    #[test]
    fn attribute_helpers() {
        let mut e = Element::new("iq", ns::CLIENT).with_attr("type", "get");
        e.set_attr("type", "result");
        assert_eq!(e.attr("type"), Some("result"));
        assert_eq!(e.remove_attr("type").as_deref(), Some("result"));
        assert_eq!(e.attr("type"), None);
        e.append_text("a");
        e.append_text("b");
        assert_eq!(e.nodes().len(), 1);
        assert_eq!(e.text(), "ab");
        assert_eq!(e.element_count(), 1);
    }
}
