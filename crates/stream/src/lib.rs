//! Sans-IO XMPP stream decoder on `rxml`.
//!
//! Bytes in, whole frames out: the stream header, each top-level element (stanza or negotiation
//! element) as an [`Element`], and the stream's end. One parser frames *and* parses, so what the
//! server routes is exactly what it parsed (no "stanza smuggling" through a second parser), and it
//! re-serialises what it forwards instead of relaying bytes.
//!
//! Limits are enforced while bytes arrive, from the parser's own event byte counts, not after a
//! stanza is complete: a peer streaming one endless unclosed element is stopped once the byte count
//! passes the limit (plus at most one `rxml` token, bounded by `max_token_length`). The element count
//! and depth are checked at each start tag. `rxml` rejects DTDs, entity declarations and references
//! to undeclared entities, comments and processing instructions, which map to `<restricted-xml/>`.
//!
//! The decoder never reads past the frame it returns: [`Decoder::next_frame`] advances the caller's
//! input slice only over the bytes that made the frame, so a caller can restart the stream (after
//! SASL) with a fresh decoder over the remaining bytes, or drop them (after STARTTLS's `<proceed/>`,
//! where anything already received is plaintext pipelined by the peer and must never be processed).

use std::collections::HashMap;

use rxml::error::EndOrError;
use rxml::{Parse, RawEvent, RawParser, WithOptions};
use starling_proto::element::{Attr, Name, Ns};
use starling_proto::{Element, Node, StreamError, StreamErrorCondition, ns};

/// Per-stanza limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Maximum bytes of one top-level element, tags and text included.
    pub max_stanza_bytes: usize,
    /// Maximum number of elements in one top-level element (itself included).
    pub max_elements: usize,
    /// Maximum nesting depth inside a top-level element (the top-level element is depth 1).
    pub max_depth: usize,
    /// Maximum attributes on one element (namespace declarations not included).
    pub max_attributes_per_element: usize,
    /// Maximum attributes in one top-level element, its descendants included.
    pub max_attributes: usize,
    /// Maximum namespace declarations in one top-level element: every `xmlns:p='…'`, and every
    /// `xmlns='…'` that changes the default namespace (repeating the inherited one is free).
    pub max_namespace_declarations: usize,
}

impl Limits {
    /// Limits after authentication: 256 KiB, 5,000 elements, 64 attributes per element.
    pub const DEFAULT: Limits = Limits {
        max_stanza_bytes: 256 * 1024,
        max_elements: 5000,
        max_depth: 100,
        max_attributes_per_element: 64,
        max_attributes: 10_000,
        max_namespace_declarations: 128,
    };
    /// Limits before authentication: 8 KiB and 32 elements per stanza.
    pub const PREAUTH: Limits = Limits {
        max_stanza_bytes: 8 * 1024,
        max_elements: 32,
        max_depth: 16,
        max_attributes_per_element: 16,
        max_attributes: 64,
        max_namespace_declarations: 8,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Largest stream header accepted (`<stream:stream …>` with its attributes and declarations).
pub const MAX_HEADER_BYTES: usize = 4096;

/// The opening `<stream:stream>` tag.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamHeader {
    pub to: Option<String>,
    pub from: Option<String>,
    pub id: Option<String>,
    pub version: Option<String>,
    pub lang: Option<String>,
}

/// What the decoder produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Header(StreamHeader),
    Element(Element),
    /// `</stream:stream>`
    Close,
}

/// Why the stream cannot go on; each maps to one stream error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not well-formed: {0}")]
    NotWellFormed(String),
    #[error("restricted XML: {0}")]
    RestrictedXml(String),
    #[error("undeclared namespace prefix")]
    BadNamespacePrefix,
    #[error("the stream element is not in the streams namespace")]
    InvalidNamespace,
    #[error("bad format: {0}")]
    BadFormat(String),
    #[error("stanza exceeds {0} bytes")]
    StanzaTooBig(usize),
    #[error("stanza has more than {0} elements")]
    TooManyElements(usize),
    #[error("stanza nested deeper than {0}")]
    TooDeep(usize),
    /// Another per-stanza limit (attributes, namespace declarations, token or header size).
    #[error("{0}")]
    Policy(String),
}

impl DecodeError {
    /// The stream error to send for this failure.
    pub fn to_stream_error(&self) -> StreamError {
        use StreamErrorCondition as C;
        match self {
            DecodeError::NotWellFormed(t) => {
                StreamError::new(C::NotWellFormed).with_text(t.clone())
            }
            DecodeError::RestrictedXml(t) => {
                StreamError::new(C::RestrictedXml).with_text(t.clone())
            }
            DecodeError::BadNamespacePrefix => StreamError::new(C::BadNamespacePrefix),
            DecodeError::InvalidNamespace => StreamError::new(C::InvalidNamespace),
            DecodeError::BadFormat(t) => StreamError::new(C::BadFormat).with_text(t.clone()),
            DecodeError::StanzaTooBig(n) => StreamError::stanza_too_big(*n),
            DecodeError::TooManyElements(n) => StreamError::new(C::PolicyViolation)
                .with_text(format!("stanza has more than {n} elements")),
            DecodeError::TooDeep(n) => StreamError::new(C::PolicyViolation)
                .with_text(format!("stanza nested deeper than {n} levels")),
            DecodeError::Policy(t) => StreamError::new(C::PolicyViolation).with_text(t.clone()),
        }
    }
}

fn map_rxml(e: rxml::Error) -> DecodeError {
    use rxml::Error as E;
    match e {
        // rxml's token limit: a name or an attribute value longer than MAX_TOKEN bytes. Not a
        // forbidden XML feature but a size limit (RFC 6120 §4.9.3.14 policy-violation).
        E::RestrictedXml("long name or reference" | "event too long") => DecodeError::Policy(
            format!("a name or attribute value is longer than {MAX_TOKEN} bytes"),
        ),
        E::RestrictedXml(what) => DecodeError::RestrictedXml(what.to_owned()),
        E::UndeclaredEntity => DecodeError::RestrictedXml("entity reference".to_owned()),
        // `<!` followed by anything but a comment or CDATA: a document type declaration
        // (RFC 6120 §11.1 forbids internal and external DTD subsets).
        E::InvalidSyntax("malformed cdata or comment section start") => {
            DecodeError::RestrictedXml("document type declaration".to_owned())
        }
        E::UndeclaredNamespacePrefix(_) => DecodeError::BadNamespacePrefix,
        other => DecodeError::NotWellFormed(other.to_string()),
    }
}

/// The largest single token (attribute value, name, text chunk) `rxml` buffers.
const MAX_TOKEN: usize = 16 * 1024;

thread_local! {
    /// Parsers parked between stanzas on this worker thread, with their token limits.
    ///
    /// rxml reserves its whole token limit (16 KiB) for the token buffer the first time it reads a
    /// token after its buffers were released. Releasing them after every stanza, so that idle
    /// streams hold none, made every stanza allocate 16 KiB, which glibc serves from a slow path
    /// whose cost grew with the number of sessions (1.5x per message at 5,000 users; BENCHMARKS.md).
    /// Instead, a stream between stanzas hands its parser, buffer and all, to this pool, and takes
    /// one back (or makes one) when bytes arrive: a few parsers per thread serve every stream, no
    /// token buffer is allocated per stanza, and an idle stream holds no parser at all.
    ///
    /// A parser is parked only in a state any other stream can continue from: after a complete
    /// stanza (or the header) with no byte of the next one read, inside a root `<stream:stream>`.
    /// A parser made for the pool reads a synthetic `<stream:stream>` to get there.
    static IDLE_PARSERS: std::cell::RefCell<Vec<(usize, Box<RawParser>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Parsers kept per thread: a worker serves one stream at a time, so a few cover the streams
/// that a task switch leaves mid-frame.
const IDLE_PARSERS_PER_THREAD: usize = 8;

fn new_parser(max_token: usize) -> Box<RawParser> {
    let options = rxml::parser::Options {
        max_token_length: max_token,
        ..Default::default()
    };
    let mut parser = Box::new(RawParser::with_options(options));
    // Hand text over as it arrives: errors in it (bad UTF-8) surface at once and bytes are
    // counted against the limit without waiting for a token to fill.
    parser.set_text_buffering(false);
    parser
}

/// A parser positioned inside a root `<stream:stream>`, between its children.
fn parser_between_stanzas(max_token: usize) -> Box<RawParser> {
    let pooled = IDLE_PARSERS.with_borrow_mut(|pool| {
        let i = pool.iter().rposition(|(t, _)| *t == max_token)?;
        Some(pool.swap_remove(i).1)
    });
    if let Some(p) = pooled {
        return p;
    }
    let mut p = new_parser(max_token);
    let mut root: &[u8] = b"<stream:stream>";
    // The head's two events; the root stays open.
    while let Ok(Some(_)) = p.parse(&mut root, false) {}
    p
}

/// An element whose head (name and attributes) is being received.
#[derive(Debug, Default)]
struct Head {
    prefix: Option<Name>,
    name: Name,
    /// Attributes as written; those with a prefix other than `xml` wait in `attr_prefixes` for
    /// their namespace, which a declaration later in the same tag may bind.
    attrs: Vec<Attr>,
    attr_prefixes: Vec<(usize, Name)>,
    /// `xmlns='…'`, when present.
    default_decl: Option<Ns>,
    /// `xmlns:p='…'`, in order.
    decls: Vec<(Name, Ns)>,
}

/// An open element of the current stanza.
#[derive(Debug)]
struct Open {
    el: Element,
    /// The default namespace inside it.
    default: Ns,
    /// How many prefixed declarations it pushed onto `Work::prefixes`.
    decls: usize,
}

/// A header or stanza being received. Boxed and dropped after each frame: an idle stream holds
/// none of it.
#[derive(Debug, Default)]
struct Work {
    head: Option<Head>,
    /// Elements under construction, outermost first.
    stack: Vec<Open>,
    /// Prefix → bindings made inside the stanza, innermost last (a lookup costs the prefix's
    /// length, whatever the number of bindings).
    prefixes: HashMap<Name, Vec<Ns>>,
    /// Prefixes declared by each open element, innermost last, to unbind at its end.
    declared: Vec<Name>,
}

/// The stream decoder. One per stream: after a stream restart (SASL success, STARTTLS) make a new one.
///
/// Namespaces are resolved here, on rxml's raw events, so that the tree keeps the declarations
/// where the sender wrote them (see `starling_proto::element`); elements that inherit a namespace
/// share its name instead of copying it.
#[derive(Debug)]
pub struct Decoder {
    /// `None` while parked: between stanzas a parser goes back to its thread's pool (see
    /// [`IDLE_PARSERS`]), so an idle stream holds none and a busy one does not allocate a token
    /// buffer per stanza.
    parser: Option<Box<RawParser>>,
    /// rxml's token limit for this stream.
    max_token: usize,
    /// Whether this stream's parser may be parked between stanzas: its root is
    /// `<stream:stream>`, which a pooled parser has read.
    poolable: bool,
    limits: Limits,
    /// 0 before the header, 1 between stanzas, >1 inside a stanza.
    depth: usize,
    /// Whether any byte went to the parser (whitespace before the header is skipped).
    started: bool,
    closed: bool,
    /// The last text ended with a CR made a LF by [`normalise_cr_after_bracket`]: a LF starting
    /// the next text was its CRLF's.
    cr_made_lf: bool,
    work: Option<Box<Work>>,
    /// The header's default namespace (`jabber:client` for a client).
    header_default: Ns,
    /// Whether the header bound `stream` to the streams namespace (as every client does).
    header_stream: bool,
    /// Any other prefixes the header bound (rare: boxed, one word in every decoder).
    #[allow(clippy::box_collection)]
    header_prefixes: Option<Box<HashMap<Name, Ns>>>,
    /// Bytes of the current top-level element (or of the header) already reported in events.
    stanza_bytes: usize,
    stanza_elements: usize,
    stanza_attributes: usize,
    stanza_declarations: usize,
    /// Bytes consumed by the parser but not yet reported in an event (a partial token).
    pending_bytes: usize,
    failed: Option<DecodeError>,
}

impl Decoder {
    pub fn new(limits: Limits) -> Self {
        let max_token = limits.max_stanza_bytes.clamp(256, MAX_TOKEN);
        Decoder {
            parser: Some(new_parser(max_token)),
            max_token,
            poolable: false,
            limits,
            depth: 0,
            started: false,
            cr_made_lf: false,
            closed: false,
            work: None,
            header_default: Ns::NONE,
            header_stream: false,
            header_prefixes: None,
            stanza_bytes: 0,
            stanza_elements: 0,
            stanza_attributes: 0,
            stanza_declarations: 0,
            pending_bytes: 0,
            failed: None,
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Changes the limits for the frames that follow, without a stream restart: XEP-0388
    /// (SASL2) authenticates with no new header, and the post-authentication limits apply from
    /// the next stanza. Call between frames only (after one was returned, before feeding the
    /// bytes that follow it). A parser parked with the old token limit stays in the pool; the
    /// next stanza takes one made for the new limit. A parser that cannot be parked (its root
    /// is not `<stream:stream>`) keeps its token limit.
    pub fn set_limits(&mut self, limits: Limits) {
        self.park_parser();
        self.limits = limits;
        if self.parser.is_none() {
            self.max_token = limits.max_stanza_bytes.clamp(256, MAX_TOKEN);
        }
    }

    /// Whether the stream header has been received.
    pub fn header_seen(&self) -> bool {
        self.depth > 0 || self.closed
    }

    /// Whether a top-level element is partly received.
    pub fn in_stanza(&self) -> bool {
        self.depth >= 1 && self.work.is_some()
    }

    /// Bytes of input held for a frame not yet complete: the part of a stanza (or header)
    /// received so far, and a token still arriving.
    pub fn buffered_bytes(&self) -> usize {
        let partial = if self.work.is_some() {
            self.stanza_bytes
        } else {
            0
        };
        partial + self.pending_bytes
    }

    /// The limit on the frame being received: the header's or a stanza's.
    fn frame_limit(&self) -> usize {
        if self.depth == 0 {
            MAX_HEADER_BYTES
        } else {
            self.limits.max_stanza_bytes
        }
    }

    /// Parses from `input` until one frame is complete, advancing `input` past the bytes consumed.
    /// `Ok(None)` means all of `input` was consumed and more bytes are needed. After an error, every
    /// later call returns the same error.
    pub fn next_frame(&mut self, input: &mut &[u8]) -> Result<Option<Frame>, DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.closed {
            // Nothing may follow the stream's end; ignore whitespace, reject the rest.
            if input.iter().all(|b| b.is_ascii_whitespace()) {
                *input = &input[input.len()..];
                return Ok(None);
            }
            return Err(self.fail(DecodeError::NotWellFormed(
                "data after the end of the stream".to_owned(),
            )));
        }
        if !self.started {
            // Whitespace before the header is legal (XML 1.0 §2.8, `Misc`). A client restarting
            // the stream after SASL may send a line break after `</auth>` that reaches this new
            // decoder first (go-sendxmpp does).
            let skip = input
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
                .count();
            *input = &input[skip..];
        }
        if input.is_empty() {
            // Asking rxml with nothing to read would make its lexer reserve a token buffer
            // that an idle stream would then hold.
            self.park_parser();
            return Ok(None);
        }
        self.started = true;
        loop {
            let before = input.len();
            let max_token = self.max_token;
            let parser = self
                .parser
                .get_or_insert_with(|| parser_between_stanzas(max_token));
            let ev = parser.parse(input, false);
            self.pending_bytes += before - input.len();
            if let Ok(Some(ev)) = &ev {
                self.pending_bytes = self.pending_bytes.saturating_sub(ev.metrics().len());
            }
            let ev = match ev {
                Ok(Some(ev)) => ev,
                Ok(None) => {
                    return Err(self.fail(DecodeError::NotWellFormed("end of document".into())));
                }
                Err(EndOrError::NeedMoreData) => {
                    // Nothing complete yet: what is buffered counts against the limit already, so an
                    // endless token cannot grow past it.
                    if self.buffered_bytes() > self.frame_limit() {
                        return Err(self.fail(self.too_big()));
                    }
                    self.park_parser();
                    return Ok(None);
                }
                Err(EndOrError::Error(e)) => return Err(self.fail(map_rxml(e))),
            };
            match self.handle(ev) {
                Ok(Some(frame)) => return Ok(Some(frame)),
                Ok(None) => {}
                Err(e) => return Err(self.fail(e)),
            }
        }
    }

    /// Between stanzas, with nothing half read, the parser goes back to its thread's pool.
    fn park_parser(&mut self) {
        if self.poolable
            && self.depth == 1
            && self.work.is_none()
            && self.pending_bytes == 0
            && self.failed.is_none()
            && let Some(p) = self.parser.take()
        {
            IDLE_PARSERS.with_borrow_mut(|pool| {
                if pool.len() < IDLE_PARSERS_PER_THREAD {
                    pool.push((self.max_token, p));
                }
            });
        }
    }

    /// What a parser that is not pooled gives back after each stanza: its token buffer.
    fn release_temporaries(&mut self) {
        if !self.poolable
            && let Some(p) = self.parser.as_mut()
        {
            p.release_temporaries();
        }
    }

    fn too_big(&self) -> DecodeError {
        if self.depth == 0 {
            DecodeError::Policy(format!(
                "stream header longer than {} bytes",
                self.frame_limit()
            ))
        } else {
            DecodeError::StanzaTooBig(self.limits.max_stanza_bytes)
        }
    }

    fn fail(&mut self, e: DecodeError) -> DecodeError {
        self.failed = Some(e.clone());
        self.work = None;
        e
    }

    fn work(&mut self) -> Result<&mut Work, DecodeError> {
        self.work
            .as_deref_mut()
            .ok_or_else(|| DecodeError::NotWellFormed("content outside an element".into()))
    }

    fn handle(&mut self, ev: RawEvent) -> Result<Option<Frame>, DecodeError> {
        if !matches!(ev, RawEvent::Text(..)) {
            self.cr_made_lf = false;
        }
        // Count the bytes of the header or of the top-level element being received; whitespace
        // between stanzas is not part of any stanza.
        if self.work.is_none() && matches!(ev, RawEvent::ElementHeadOpen(..)) {
            self.work = Some(Box::default());
            self.stanza_bytes = 0;
            self.stanza_elements = 0;
            self.stanza_attributes = 0;
            self.stanza_declarations = 0;
        }
        if self.work.is_some() {
            self.stanza_bytes += ev.metrics().len();
            if self.stanza_bytes > self.frame_limit() {
                return Err(self.too_big());
            }
        }
        match ev {
            RawEvent::XmlDeclaration(..) => Ok(None),
            RawEvent::ElementHeadOpen(_, (prefix, name)) => {
                if self.depth >= 1 {
                    self.stanza_elements += 1;
                    if self.stanza_elements > self.limits.max_elements {
                        return Err(DecodeError::TooManyElements(self.limits.max_elements));
                    }
                    if self.depth > self.limits.max_depth {
                        return Err(DecodeError::TooDeep(self.limits.max_depth));
                    }
                }
                self.work()?.head = Some(Head {
                    prefix: prefix.map(|p| p.into_inner()),
                    name: name.into_inner(),
                    ..Head::default()
                });
                Ok(None)
            }
            RawEvent::Attribute(_, (prefix, name), value) => {
                self.attribute(prefix.map(|p| p.into_inner()), name.into_inner(), value)?;
                Ok(None)
            }
            RawEvent::ElementHeadClose(_) => {
                let Some(head) = self.work()?.head.take() else {
                    return Err(DecodeError::NotWellFormed("element head".into()));
                };
                if self.depth == 0 {
                    return self.header(head).map(Some);
                }
                self.open_element(head)?;
                Ok(None)
            }
            RawEvent::Text(_, text) => {
                match self.work.as_deref_mut().and_then(|w| w.stack.last_mut()) {
                    Some(top) => {
                        let cr_made_lf = std::mem::take(&mut self.cr_made_lf);
                        let text: &str = if cr_made_lf {
                            text.strip_prefix('\n').unwrap_or(&text)
                        } else {
                            &text
                        };
                        if text.contains('\r') {
                            let after_bracket = matches!(
                                top.el.nodes().last(),
                                Some(Node::Text(t)) if t.ends_with(']')
                            );
                            let (normal, ends_with_cr) =
                                normalise_cr_after_bracket(text, after_bracket);
                            self.cr_made_lf = ends_with_cr;
                            top.el.append_text(normal);
                        } else if !text.is_empty() {
                            top.el.append_text(text);
                        }
                    }
                    None => {
                        // Between stanzas only whitespace (keepalives) is allowed.
                        if !text.chars().all(|c| c.is_ascii_whitespace()) {
                            return Err(DecodeError::BadFormat(
                                "character data between stanzas".into(),
                            ));
                        }
                        // Keepalives must not leave a token buffer behind either.
                        self.release_temporaries();
                    }
                }
                Ok(None)
            }
            RawEvent::ElementFoot(_) => {
                if self.depth == 1 {
                    self.depth = 0;
                    self.closed = true;
                    return Ok(Some(Frame::Close));
                }
                self.depth -= 1;
                let work = self.work()?;
                let Some(done) = work.stack.pop() else {
                    return Err(DecodeError::NotWellFormed("unbalanced end tag".into()));
                };
                for _ in 0..done.decls {
                    if let Some(p) = work.declared.pop()
                        && let Some(stack) = work.prefixes.get_mut(&p)
                    {
                        stack.pop();
                        if stack.is_empty() {
                            work.prefixes.remove(&p);
                        }
                    }
                }
                match work.stack.last_mut() {
                    Some(parent) => {
                        parent.el.append_child(done.el);
                        Ok(None)
                    }
                    None => {
                        // Give back the token buffer and the working state after every stanza:
                        // an idle stream then holds none.
                        self.work = None;
                        self.release_temporaries();
                        Ok(Some(Frame::Element(done.el)))
                    }
                }
            }
        }
    }

    /// One attribute of the element head being received: a namespace declaration or an attribute.
    fn attribute(
        &mut self,
        prefix: Option<Name>,
        name: Name,
        value: String,
    ) -> Result<(), DecodeError> {
        let limits = self.limits;
        let in_stanza = self.depth > 0;
        let inherited = match self.work.as_deref().and_then(|w| w.stack.last()) {
            Some(open) => open.default.clone(),
            None => self.header_default.clone(),
        };
        let Some(head) = self.work.as_deref_mut().and_then(|w| w.head.as_mut()) else {
            return Err(DecodeError::NotWellFormed("attribute outside a tag".into()));
        };
        let duplicate = || DecodeError::NotWellFormed("duplicate attribute".into());
        match prefix.as_deref() {
            Some("xmlns") => {
                // rxml refuses to bind `xmlns`, to bind `xml` to anything but its namespace, and
                // to bind another prefix to the XML namespace. `xmlns:xml` is redundant: the
                // prefix is bound by definition and never declared again (Namespaces in XML §3).
                if name == "xml" {
                    return Ok(());
                }
                if head.decls.iter().any(|(p, _)| *p == name) {
                    return Err(duplicate());
                }
                self.stanza_declarations += 1;
                if self.stanza_declarations > limits.max_namespace_declarations {
                    return Err(too_many_declarations(limits));
                }
                head.decls.push((name, Ns::from_string(value)));
            }
            None if name == "xmlns" => {
                if head.default_decl.is_some() {
                    return Err(duplicate());
                }
                // Namespaces in XML §3: neither reserved namespace may be the default.
                if value == ns::XML || value == ns::XMLNS {
                    return Err(DecodeError::NotWellFormed(
                        "a reserved namespace cannot be the default namespace".into(),
                    ));
                }
                let ns = Ns::from_string(value);
                if in_stanza && ns != inherited {
                    self.stanza_declarations += 1;
                    if self.stanza_declarations > limits.max_namespace_declarations {
                        return Err(too_many_declarations(limits));
                    }
                }
                head.default_decl = Some(ns);
            }
            _ => {
                if head.attrs.len() >= limits.max_attributes_per_element {
                    return Err(DecodeError::Policy(format!(
                        "an element has more than {} attributes",
                        limits.max_attributes_per_element
                    )));
                }
                self.stanza_attributes += 1;
                if in_stanza && self.stanza_attributes > limits.max_attributes {
                    return Err(DecodeError::Policy(format!(
                        "stanza has more than {} attributes",
                        limits.max_attributes
                    )));
                }
                let ns = match prefix {
                    None => Ns::NONE,
                    Some(p) if p == "xml" => Ns::from_static(ns::XML),
                    Some(p) => {
                        head.attr_prefixes.push((head.attrs.len(), p));
                        Ns::NONE
                    }
                };
                head.attrs.push(Attr { ns, name, value });
            }
        }
        Ok(())
    }

    /// The stream header: its namespace scope is the bottom of every stanza's.
    fn header(&mut self, head: Head) -> Result<Frame, DecodeError> {
        self.work = None;
        for (p, ns) in head.decls {
            if p == "stream" && ns == ns::STREAM {
                self.header_stream = true;
            } else {
                self.header_prefixes.get_or_insert_default().insert(p, ns);
            }
        }
        self.header_default = head.default_decl.unwrap_or(Ns::NONE);
        let elem_ns = match head.prefix.as_deref() {
            None => self.header_default.clone(),
            Some(p) => self.header_prefix(p)?,
        };
        if elem_ns != ns::STREAM {
            return Err(DecodeError::InvalidNamespace);
        }
        if head.name != "stream" {
            return Err(DecodeError::BadFormat(
                "the root element must be <stream:stream>".into(),
            ));
        }
        // A pooled parser has read `<stream:stream>`: it expects that end tag.
        self.poolable = head.prefix.as_deref() == Some("stream")
            && (self.max_token == MAX_TOKEN || self.max_token == Limits::PREAUTH.max_stanza_bytes);
        for (_, p) in &head.attr_prefixes {
            self.header_prefix(p)?;
        }
        // The content namespace (`xmlns='jabber:client'`) is checked by the session on each
        // top-level element.
        let mut h = StreamHeader::default();
        for (i, a) in head.attrs.into_iter().enumerate() {
            if head.attr_prefixes.iter().any(|(j, _)| *j == i) {
                continue;
            }
            match (a.namespace(), a.name.as_str()) {
                (None, "to") => h.to = Some(a.value),
                (None, "from") => h.from = Some(a.value),
                (None, "id") => h.id = Some(a.value),
                (None, "version") => h.version = Some(a.value),
                (Some(ns::XML), "lang") => h.lang = Some(a.value),
                _ => {}
            }
        }
        self.stanza_bytes = 0;
        self.depth = 1;
        Ok(Frame::Header(h))
    }

    /// A prefix bound by the stream header.
    fn header_prefix(&self, p: &str) -> Result<Ns, DecodeError> {
        if p == "stream" && self.header_stream {
            return Ok(Ns::from_static(ns::STREAM));
        }
        self.header_prefixes
            .as_ref()
            .and_then(|m| m.get(p))
            .cloned()
            .ok_or(DecodeError::BadNamespacePrefix)
    }

    /// The namespace bound to `p` inside the stanza. A binding made by the stream header is
    /// copied onto the stanza's top element (`root_decls`), so that the stanza carries every
    /// declaration it needs wherever it is written.
    fn resolve(&self, p: &str, root_decls: &mut Vec<(Name, Ns)>) -> Result<Ns, DecodeError> {
        if p == "xml" {
            return Ok(Ns::from_static(ns::XML));
        }
        if let Some(ns) = self
            .work
            .as_deref()
            .and_then(|w| w.prefixes.get(p))
            .and_then(|s| s.last())
        {
            return Ok(ns.clone());
        }
        let ns = self.header_prefix(p)?;
        let ours = p == "stream" && self.header_stream;
        if !ours && !root_decls.iter().any(|(q, _)| q == p) {
            root_decls.push((p.into(), ns.clone()));
        }
        Ok(ns)
    }

    /// A complete element head inside the stream: resolves its names and opens it.
    fn open_element(&mut self, head: Head) -> Result<(), DecodeError> {
        let Head {
            prefix,
            name,
            mut attrs,
            attr_prefixes,
            default_decl,
            decls,
        } = head;
        let ndecls = decls.len();
        let default_decl_kept = default_decl.clone();
        let default = match default_decl {
            Some(d) => d,
            None => match self.work.as_deref().and_then(|w| w.stack.last()) {
                Some(open) => open.default.clone(),
                None => self.header_default.clone(),
            },
        };
        if ndecls > 0 {
            let work = self.work()?;
            for (p, ns) in &decls {
                work.prefixes.entry(p.clone()).or_default().push(ns.clone());
                work.declared.push(p.clone());
            }
        }
        // Header bindings used inside the stanza are declared again on its top element.
        let mut root_extra = Vec::new();
        let elem_ns = match prefix.as_deref() {
            None => default.clone(),
            Some(p) => self.resolve(p, &mut root_extra)?,
        };
        for (i, p) in &attr_prefixes {
            let ns = self.resolve(p, &mut root_extra)?;
            if let Some(a) = attrs.get_mut(*i) {
                a.ns = ns;
            }
        }
        check_unique(&attrs)?;
        let mut decls = decls;
        let prefixes_in_scope = self.work.as_deref().is_some_and(|w| !w.prefixes.is_empty())
            || self.header_prefixes.is_some();
        if let Some(d) = default_decl_kept
            && (prefix.is_some() || prefixes_in_scope)
        {
            // The default namespace this element declared is kept on it (empty prefix) when
            // the serialiser could not tell otherwise: on a prefixed element (or each child
            // would declare it again), and where a prefix bound to the same namespace is in
            // scope (or the element would be written with that prefix, perhaps longer).
            decls.push((Name::default(), d));
        }
        let mut el = Element::from_parts(name, elem_ns, attrs, decls);
        let work = self.work()?;
        if !root_extra.is_empty() {
            let root = match work.stack.first_mut() {
                Some(root) => &mut root.el,
                None => &mut el,
            };
            // At most once per prefix: bounded by the header's declarations.
            root_extra.retain(|(p, _)| !root.declarations().iter().any(|(q, _)| q == p));
            root.add_declarations(root_extra);
        }
        work.stack.push(Open {
            el,
            default,
            decls: ndecls,
        });
        self.depth += 1;
        Ok(())
    }
}

fn too_many_declarations(limits: Limits) -> DecodeError {
    DecodeError::Policy(format!(
        "stanza has more than {} namespace declarations",
        limits.max_namespace_declarations
    ))
}

/// XML 1.0 "Unique Att Spec" and Namespaces in XML §6.3: no two attributes with the same
/// namespace and local name. Hashed beyond a few, so that it costs the attributes' length.
fn check_unique(attrs: &[Attr]) -> Result<(), DecodeError> {
    let dup = || DecodeError::NotWellFormed("duplicate attribute".into());
    if attrs.len() <= 8 {
        for (i, a) in attrs.iter().enumerate() {
            if attrs[..i].iter().any(|b| b.name == a.name && b.ns == a.ns) {
                return Err(dup());
            }
        }
        return Ok(());
    }
    let mut seen = std::collections::HashSet::with_capacity(attrs.len());
    for a in attrs {
        if !seen.insert((&a.ns, a.name.as_str())) {
            return Err(dup());
        }
    }
    Ok(())
}

/// Parses one stanza stored as text (as [`Element::to_xml`] wrote it: `xmlns='jabber:client'` on
/// the top element) with the same restricted parser as the wire. Used for what the server stored
/// itself (offline messages, pending subscription requests, vCards): it was parsed once under the
/// wire's limits already, so the limits here only guard against a damaged database.
pub fn parse_stored(xml: &str) -> Result<Element, DecodeError> {
    // No default namespace around it: `to_xml` wrote the element as a document of its own, with
    // its namespace declared (an element in no namespace inside it is then unqualified).
    parse_one(xml, None)
}

/// Parses one top-level element as [`Element::write_in_stream`] wrote it into a stream whose
/// default namespace is `stream_ns` (so without its own `xmlns`): what a session wrote to its
/// client and kept until acknowledged, read back when it must be routed again.
pub fn parse_written(xml: &str, stream_ns: &str) -> Result<Element, DecodeError> {
    parse_one(xml, Some(stream_ns))
}

fn parse_one(xml: &str, default_ns: Option<&str>) -> Result<Element, DecodeError> {
    let limits = Limits {
        max_stanza_bytes: xml.len().saturating_add(1),
        max_elements: usize::MAX,
        max_depth: 1024,
        max_attributes_per_element: usize::MAX,
        max_attributes: usize::MAX,
        max_namespace_declarations: usize::MAX,
    };
    let mut dec = Decoder::new(limits);
    let header = match default_ns {
        None => format!("<stream:stream xmlns:stream='{}'>", ns::STREAM),
        Some(d) => {
            let mut h = String::from("<stream:stream xmlns='");
            starling_proto::element::escape_attr(d, &mut h);
            h.push_str("' xmlns:stream='");
            h.push_str(ns::STREAM);
            h.push_str("'>");
            h
        }
    };
    let mut input = header.as_bytes();
    match dec.next_frame(&mut input)? {
        Some(Frame::Header(_)) => {}
        _ => return Err(DecodeError::BadFormat("stream header".into())),
    }
    let mut input = xml.as_bytes();
    let el = match dec.next_frame(&mut input)? {
        Some(Frame::Element(el)) => el,
        _ => return Err(DecodeError::BadFormat("not one complete element".into())),
    };
    if !input.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError::BadFormat("more than one element".into()));
    }
    Ok(el)
}

#[cfg(test)]
mod tests;

/// COMPAT(rxml 0.14): inside a CDATA section, a raw CR right after a `]` (where rxml checks for
/// `]]>`) reaches us as it was, while XML 1.0 §2.11 makes every raw CR a LF and every CRLF one
/// LF, which rxml does everywhere else. Left alone, such a CR would be written back as `&#13;`:
/// a stanza could grow on its way through (hardening: never amplify), and would not mean what
/// its sender's XML means. A CR after `]` is normalised here (`after_bracket`: the text before
/// this run ended with `]`). The only other CR text can hold is a character reference
/// (`&#13;`), which a sender writing `]&#13;` would see become a LF: nothing a client sends.
fn normalise_cr_after_bracket(text: &str, after_bracket: bool) -> (String, bool) {
    let mut out = String::with_capacity(text.len());
    let mut prev_bracket = after_bracket;
    let mut chars = text.chars().peekable();
    let mut last_made_lf = false;
    while let Some(c) = chars.next() {
        last_made_lf = false;
        if c == '\r' && prev_bracket {
            match chars.peek() {
                Some('\n') => {}
                Some(_) => out.push('\n'),
                // The LF of a CRLF may come with the next text.
                None => {
                    out.push('\n');
                    last_made_lf = true;
                }
            }
            prev_bracket = false;
            continue;
        }
        prev_bracket = c == ']';
        out.push(c);
    }
    (out, last_made_lf)
}

#[cfg(test)]
mod cdata_cr_tests {
    use super::*;

    /// XML 1.0 §2.11 in CDATA after `]`, the case rxml 0.14 leaves (found by the
    /// stream_roundtrip fuzz target: the re-serialised stanza was longer than the wire's).
    #[test]
    fn cr_after_a_bracket_in_cdata_is_a_line_feed() {
        let e =
            parse_stored("<body xmlns='jabber:client'><![CDATA[a]\rb]]\r\nc]\r]]></body>").unwrap();
        assert_eq!(e.text(), "a]\nb]]\nc]\n");
    }

    #[test]
    fn the_fuzzed_stanza_does_not_grow() {
        let wire = "<message xmlns='jabber:client'><body><![CDATA[<n(ot-niqdy<>mes/y&apos;\
                    iqmdOstream:O_OOOOOOqW\npen:qW\npen:ietW\npen:ietf:par\n>]\rtge>& ]]></body>\
                    </message>";
        let e = parse_stored(wire).unwrap();
        let mut out = String::new();
        e.write_in_stream("jabber:client", &mut out);
        assert!(out.len() <= wire.len(), "{out}");
    }

    #[test]
    fn character_references_to_cr_stay() {
        let e = parse_stored("<body xmlns='jabber:client'>a&#13;b</body>").unwrap();
        assert_eq!(e.text(), "a\rb");
    }
}
