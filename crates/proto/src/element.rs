//! A small XML element tree for stanzas.
//!
//! Why not `minidom`: Starling needs exact control over serialisation (the stream's default namespace is
//! never repeated on each stanza, `stream:` is written as the prefix the stream header declared) and over
//! per-stanza memory. The tree is built from `rxml` events by the stream codec, so the XML rules
//! (restricted XML, namespaces, well-formedness) are still enforced by `rxml`; this type only holds the result.
//!
//! Unknown children are kept exactly (names, namespaces, attributes, text), so payloads such as receipts,
//! caps and avatars pass through the server intact.

use std::fmt::Write as _;

use crate::ns;

/// An attribute; `ns` is `None` for the usual unqualified attributes, `Some(ns::XML)` for `xml:lang`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ns: Option<String>,
    pub name: String,
    pub value: String,
}

/// A child node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
}

/// An XML element with its namespace URI (never a prefix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    name: String,
    ns: String,
    attrs: Vec<Attr>,
    children: Vec<Node>,
}

impl Element {
    /// A new empty element `name` in namespace `ns`.
    pub fn new(name: impl Into<String>, ns: impl Into<String>) -> Self {
        Element {
            name: name.into(),
            ns: ns.into(),
            attrs: Vec::new(),
            children: Vec::new(),
        }
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
        self.children.push(Node::Element(child));
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
        &self.ns
    }

    /// True when this element is `name` in namespace `ns`.
    pub fn is(&self, name: &str, ns: &str) -> bool {
        self.name == name && self.ns == ns
    }

    /// Value of the unqualified attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.is_none() && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// Value of the attribute `name` in namespace `ns`.
    pub fn attr_ns(&self, ns: &str, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.as_deref() == Some(ns) && a.name == name)
            .map(|a| a.value.as_str())
    }

    pub fn attrs(&self) -> &[Attr] {
        &self.attrs
    }

    /// Sets (or replaces) the unqualified attribute `name`.
    pub fn set_attr(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        if let Some(a) = self
            .attrs
            .iter_mut()
            .find(|a| a.ns.is_none() && a.name == name)
        {
            a.value = value;
        } else {
            self.attrs.push(Attr {
                ns: None,
                name: name.to_owned(),
                value,
            });
        }
    }

    /// Sets (or replaces) an attribute in a namespace (`ns::XML` for `xml:lang`).
    pub fn set_attr_ns(&mut self, ns: &str, name: &str, value: impl Into<String>) {
        let value = value.into();
        if let Some(a) = self
            .attrs
            .iter_mut()
            .find(|a| a.ns.as_deref() == Some(ns) && a.name == name)
        {
            a.value = value;
        } else {
            self.attrs.push(Attr {
                ns: Some(ns.to_owned()),
                name: name.to_owned(),
                value,
            });
        }
    }

    /// Removes the unqualified attribute `name`, returning its value.
    pub fn remove_attr(&mut self, name: &str) -> Option<String> {
        let pos = self
            .attrs
            .iter()
            .position(|a| a.ns.is_none() && a.name == name)?;
        Some(self.attrs.remove(pos).value)
    }

    pub fn nodes(&self) -> &[Node] {
        &self.children
    }

    /// Child elements, in order.
    pub fn children(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child `name` in `ns`.
    pub fn get_child(&self, name: &str, ns: &str) -> Option<&Element> {
        self.children().find(|c| c.is(name, ns))
    }

    /// The first child `name` in `ns`, mutably.
    pub fn get_child_mut(&mut self, name: &str, ns: &str) -> Option<&mut Element> {
        self.children.iter_mut().find_map(|n| match n {
            Node::Element(e) if e.is(name, ns) => Some(e),
            _ => None,
        })
    }

    /// Whether a child `name` in `ns` exists.
    pub fn has_child(&self, name: &str, ns: &str) -> bool {
        self.get_child(name, ns).is_some()
    }

    /// Appends a child element.
    pub fn append_child(&mut self, child: Element) {
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

    /// Number of elements in this tree, this one included.
    pub fn element_count(&self) -> usize {
        1 + self.children().map(Element::element_count).sum::<usize>()
    }

    /// Serialises as a top-level element of a stream whose default namespace is `stream_ns`
    /// (`jabber:client`): that namespace is not repeated, `stream:` is used as the prefix of
    /// `http://etherx.jabber.org/streams`, which the stream header declares.
    pub fn write_in_stream(&self, stream_ns: &str, out: &mut String) {
        self.write_inner(stream_ns, out);
    }

    /// Serialises as a standalone document fragment (the default namespace is declared).
    pub fn to_xml(&self) -> String {
        let mut s = String::new();
        self.write_inner("", &mut s);
        s
    }

    fn write_inner(&self, parent_ns: &str, out: &mut String) {
        let stream_prefixed = self.ns == ns::STREAM;
        out.push('<');
        if stream_prefixed {
            out.push_str("stream:");
        }
        out.push_str(&self.name);
        if !stream_prefixed && self.ns != parent_ns {
            out.push_str(" xmlns='");
            escape_attr(&self.ns, out);
            out.push('\'');
        }
        let mut prefix_n = 0usize;
        for a in &self.attrs {
            out.push(' ');
            match a.ns.as_deref() {
                None => {}
                Some(ns::XML) => out.push_str("xml:"),
                Some(other) => {
                    // Namespaced attributes other than xml:* are rare; declare a prefix for each.
                    let _ = write!(out, "xmlns:a{prefix_n}='");
                    escape_attr(other, out);
                    let _ = write!(out, "' a{prefix_n}:");
                    prefix_n += 1;
                }
            }
            out.push_str(&a.name);
            out.push_str("='");
            escape_attr(&a.value, out);
            out.push('\'');
        }
        if self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        let child_parent_ns = if stream_prefixed { parent_ns } else { &self.ns };
        for n in &self.children {
            match n {
                Node::Element(e) => e.write_inner(child_parent_ns, out),
                Node::Text(t) => escape_text(t, out),
            }
        }
        out.push_str("</");
        if stream_prefixed {
            out.push_str("stream:");
        }
        out.push_str(&self.name);
        out.push('>');
    }
}

impl std::fmt::Display for Element {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_xml())
    }
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
            "<message to='a@b/c' id='x&apos;1'><body>a &lt; b &amp; c</body><request xmlns='urn:xmpp:receipts'/></message>"
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
    }

    #[test]
    fn xml_lang_and_foreign_attrs() {
        let mut e = Element::new("body", ns::CLIENT);
        e.set_attr_ns(ns::XML, "lang", "de");
        e.set_attr_ns("urn:x", "k", "v");
        assert_eq!(
            e.to_xml(),
            "<body xmlns='jabber:client' xml:lang='de' xmlns:a0='urn:x' a0:k='v'/>"
        );
        assert_eq!(e.attr_ns(ns::XML, "lang"), Some("de"));
        assert_eq!(e.attr("lang"), None);
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
