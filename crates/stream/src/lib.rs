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

use rxml::error::EndOrError;
use rxml::{Event, Parse, Parser, WithOptions};
use starling_proto::{Element, StreamError, StreamErrorCondition, ns};

/// Per-stanza limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Maximum bytes of one top-level element, tags and text included.
    pub max_stanza_bytes: usize,
    /// Maximum number of elements in one top-level element (itself included).
    pub max_elements: usize,
    /// Maximum nesting depth inside a top-level element (the top-level element is depth 1).
    pub max_depth: usize,
}

impl Limits {
    /// Limits after authentication: 256 KiB, no element-count limit beyond what the bytes allow.
    pub const DEFAULT: Limits = Limits {
        max_stanza_bytes: 256 * 1024,
        max_elements: usize::MAX,
        max_depth: 100,
    };
    /// Limits before authentication: 8 KiB and 32 elements per stanza.
    pub const PREAUTH: Limits = Limits {
        max_stanza_bytes: 8 * 1024,
        max_elements: 32,
        max_depth: 16,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

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
        }
    }
}

fn map_rxml(e: rxml::Error) -> DecodeError {
    use rxml::Error as E;
    match e {
        E::RestrictedXml(what) => DecodeError::RestrictedXml(what.to_owned()),
        E::UndeclaredEntity => DecodeError::RestrictedXml("entity reference".to_owned()),
        E::UndeclaredNamespacePrefix(_) => DecodeError::BadNamespacePrefix,
        other => DecodeError::NotWellFormed(other.to_string()),
    }
}

/// The stream decoder. One per stream: after a stream restart (SASL success, STARTTLS) make a new one.
#[derive(Debug)]
pub struct Decoder {
    parser: Parser,
    limits: Limits,
    /// 0 before the header, 1 between stanzas, >1 inside a stanza.
    depth: usize,
    /// Elements under construction, outermost first.
    stack: Vec<Element>,
    /// Bytes of the current top-level element already reported in events.
    stanza_bytes: usize,
    stanza_elements: usize,
    /// Bytes consumed by the parser but not yet reported in an event (a partial token, or an element
    /// head whose attributes are still arriving).
    pending_bytes: usize,
    failed: Option<DecodeError>,
    closed: bool,
}

/// The largest single token (attribute value, name, text chunk) `rxml` buffers.
const MAX_TOKEN: usize = 16 * 1024;

impl Decoder {
    pub fn new(limits: Limits) -> Self {
        let options = rxml::parser::Options {
            max_token_length: limits.max_stanza_bytes.clamp(256, MAX_TOKEN),
            ..Default::default()
        };
        let mut parser = Parser::with_options(options);
        // Hand text over as it arrives: errors in it (bad UTF-8) surface at once and bytes are counted
        // against the limit without waiting for a token to fill.
        parser.set_text_buffering(false);
        Decoder {
            parser,
            limits,
            depth: 0,
            stack: Vec::new(),
            stanza_bytes: 0,
            stanza_elements: 0,
            pending_bytes: 0,
            failed: None,
            closed: false,
        }
    }

    /// Changes the limits for the following stanzas (token size stays as constructed).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether the stream header has been received.
    pub fn header_seen(&self) -> bool {
        self.depth > 0 || self.closed
    }

    /// Whether a top-level element is partly received.
    pub fn in_stanza(&self) -> bool {
        self.depth > 1
    }

    /// Bytes of input held for a frame not yet complete: the part of a stanza received so far,
    /// and a token still arriving.
    pub fn buffered_bytes(&self) -> usize {
        let partial = if self.depth > 1 { self.stanza_bytes } else { 0 };
        partial + self.pending_bytes
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
        if input.is_empty() {
            // Asking rxml with nothing to read would make its lexer reserve a token buffer
            // (`max_token_length` bytes) that an idle stream would then hold.
            return Ok(None);
        }
        loop {
            let before = input.len();
            let ev = self.parser.parse(input, false);
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
                    // endless element head or token cannot grow past it.
                    if self.depth != 1 || self.pending_bytes > 0 {
                        let partial = if self.depth > 1 { self.stanza_bytes } else { 0 };
                        if partial + self.pending_bytes > self.limits.max_stanza_bytes {
                            let e = DecodeError::StanzaTooBig(self.limits.max_stanza_bytes);
                            return Err(self.fail(e));
                        }
                    }
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

    fn fail(&mut self, e: DecodeError) -> DecodeError {
        self.failed = Some(e.clone());
        self.stack = Vec::new();
        e
    }

    fn handle(&mut self, ev: Event) -> Result<Option<Frame>, DecodeError> {
        // Count the bytes of the top-level element being received; whitespace between stanzas is not
        // part of any stanza.
        let starts_stanza = self.depth == 1 && matches!(ev, Event::StartElement(..));
        if starts_stanza {
            self.stanza_bytes = 0;
        }
        if self.depth > 1 || starts_stanza {
            self.stanza_bytes += ev.metrics().len();
            self.check_bytes()?;
        }
        match ev {
            Event::XmlDeclaration(..) => Ok(None),
            Event::StartElement(_, (elem_ns, name), attrs) => {
                if self.depth == 0 {
                    if elem_ns.as_str() != ns::STREAM {
                        return Err(DecodeError::InvalidNamespace);
                    }
                    if name.as_str() != "stream" {
                        return Err(DecodeError::BadFormat(
                            "the root element must be <stream:stream>".into(),
                        ));
                    }
                    // The content namespace (`xmlns='jabber:client'`) is not visible here: `rxml` resolves
                    // it. The session checks the namespace of each top-level element instead.
                    let mut h = StreamHeader::default();
                    for ((ans, aname), value) in attrs.into_iter() {
                        match (ans.as_str(), aname.as_str()) {
                            ("", "to") => h.to = Some(value),
                            ("", "from") => h.from = Some(value),
                            ("", "id") => h.id = Some(value),
                            ("", "version") => h.version = Some(value),
                            (ns::XML, "lang") => h.lang = Some(value),
                            _ => {}
                        }
                    }
                    self.depth = 1;
                    return Ok(Some(Frame::Header(h)));
                }
                if self.depth == 1 {
                    self.stanza_elements = 0;
                }
                self.stanza_elements += 1;
                if self.stanza_elements > self.limits.max_elements {
                    return Err(DecodeError::TooManyElements(self.limits.max_elements));
                }
                if self.depth > self.limits.max_depth {
                    return Err(DecodeError::TooDeep(self.limits.max_depth));
                }
                let mut el = Element::new(name.as_str(), elem_ns.as_str());
                for ((ans, aname), value) in attrs.into_iter() {
                    if ans.is_empty() {
                        el.set_attr(aname.as_str(), value);
                    } else {
                        el.set_attr_ns(ans.as_str(), aname.as_str(), value);
                    }
                }
                self.stack.push(el);
                self.depth += 1;
                Ok(None)
            }
            Event::Text(_, text) => {
                match self.stack.last_mut() {
                    Some(top) => top.append_text(text),
                    None => {
                        // Between stanzas only whitespace (keepalives) is allowed.
                        if !text.chars().all(|c| c.is_ascii_whitespace()) {
                            return Err(DecodeError::BadFormat(
                                "character data between stanzas".into(),
                            ));
                        }
                        // Keepalives must not leave a token buffer behind either.
                        self.parser.release_temporaries();
                    }
                }
                Ok(None)
            }
            Event::EndElement(_) => {
                if self.depth == 1 {
                    self.depth = 0;
                    self.closed = true;
                    return Ok(Some(Frame::Close));
                }
                self.depth -= 1;
                let Some(done) = self.stack.pop() else {
                    return Err(DecodeError::NotWellFormed("unbalanced end tag".into()));
                };
                match self.stack.last_mut() {
                    Some(parent) => {
                        parent.append_child(done);
                        Ok(None)
                    }
                    None => {
                        // Give back the token buffer after every stanza: an idle stream then
                        // holds none. Keeping it until the stream goes quiet instead was tried:
                        // no CPU saved, and ~3 KiB more RSS per connection after a login storm,
                        // from the heap's fragmentation. The buffer starts at 256 bytes and grows
                        // to `max_token_length` only for long tokens (our rxml patch,
                        // vendor/rxml/PATCHES.md), so this costs a small allocation per stanza.
                        self.parser.release_temporaries();
                        Ok(Some(Frame::Element(done)))
                    }
                }
            }
        }
    }

    fn check_bytes(&self) -> Result<(), DecodeError> {
        if self.stanza_bytes > self.limits.max_stanza_bytes {
            return Err(DecodeError::StanzaTooBig(self.limits.max_stanza_bytes));
        }
        Ok(())
    }
}

/// Parses one stanza stored as text (as [`Element::to_xml`] wrote it: `xmlns='jabber:client'` on
/// the top element) with the same restricted parser as the wire. Used for what the server stored
/// itself (offline messages, pending subscription requests, vCards): it was parsed once under the
/// wire's limits already, so the limits here only guard against a damaged database.
pub fn parse_stored(xml: &str) -> Result<Element, DecodeError> {
    let limits = Limits {
        max_stanza_bytes: xml.len().saturating_add(1),
        max_elements: usize::MAX,
        max_depth: 1024,
    };
    let mut dec = Decoder::new(limits);
    let header = format!(
        "<stream:stream xmlns='{}' xmlns:stream='{}'>",
        ns::CLIENT,
        ns::STREAM
    );
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
