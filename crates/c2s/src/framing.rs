//! How stream-level frames travel on a connection. The connection's negotiation, SASL, binding
//! and stanza handling see only [`Frame`]s in and elements out; a [`Framing`] turns bytes into
//! frames and writes the stream's opening, its end, and each element.
//!
//! [`XmlStream`] is RFC 6120's framing over TCP: one XML document per stream, opened with
//! `<stream:stream>` and ended with `</stream:stream>`, top-level elements written in the
//! stream's default namespace (`jabber:client`, which they then omit).
//!
//! [`WebSocketFraming`] is RFC 7395's: each WebSocket message is one complete element; the
//! stream opens with `<open/>` and ends with `<close/>` in `urn:ietf:params:xml:ns:xmpp-framing`;
//! every element declares its own namespace. The connection's logic and the session are the same
//! for both.

use starling_proto::{Element, Jid, ns};
use starling_stream::{DecodeError, Decoder, Frame, Limits, StreamHeader};

/// The attributes of the server's stream opening (RFC 6120 §4.7).
pub struct Opening<'a> {
    /// The served domain.
    pub from: &'a str,
    /// The stream id.
    pub id: &'a str,
    /// The initiator's `from`, answered in `to` (RFC 6120 §4.7.2) when it is a valid JID.
    pub to: Option<&'a str>,
}

impl Opening<'_> {
    /// The id's value (after `id='` written by the caller), `from`, `to` when valid, version and
    /// language: what both framings' openings carry (RFC 6120 §4.7, RFC 7395 §3.3.2).
    fn write_attributes(&self, out: &mut String) {
        out.push_str(self.id);
        out.push_str("' from='");
        starling_proto::element::escape_attr(self.from, out);
        out.push('\'');
        if let Some(to) = self.to.filter(|f| Jid::new(f).is_ok()) {
            out.push_str(" to='");
            starling_proto::element::escape_attr(to, out);
            out.push('\'');
        }
        out.push_str(" version='1.0' xml:lang='en'");
    }
}

/// A connection's framing (see the module docs).
pub trait Framing: Send + Sync {
    /// Whether whitespace may be sent between elements and STARTTLS or a TLS handshake may
    /// come on this connection: a byte stream of its own (TCP), not messages inside another
    /// protocol.
    fn is_byte_stream(&self) -> bool {
        true
    }
    /// Starts a new stream (at connect, after TLS, after SASL success; RFC 6120 §4.3.3): what
    /// was parsed is forgotten, and `limits` apply from here.
    fn restart(&mut self, limits: Limits);
    /// Changes the limits from the next frame on, without a restart (XEP-0388 SASL2 success).
    fn set_limits(&mut self, limits: Limits);
    /// The next complete frame from `input` (consumed as far as it was read), or `None` when
    /// more bytes are needed.
    fn next_frame(&mut self, input: &mut &[u8]) -> Result<Option<Frame>, DecodeError>;
    /// Whether the peer's stream opening has been read.
    fn opening_seen(&self) -> bool;
    /// Bytes of partial input held.
    fn buffered_bytes(&self) -> usize;
    /// Writes the server's stream opening.
    fn write_opening(&self, opening: &Opening<'_>, out: &mut String);
    /// Writes the end of the stream.
    fn write_closing(&self, out: &mut String);
    /// Writes a keepalive (RFC 6120 §4.6.1: whitespace between elements).
    fn write_keepalive(&self, out: &mut String);
    /// Writes one top-level element (a stanza, a feature list, a SASL or stream management
    /// element, a stream error).
    fn write_element(&self, element: &Element, out: &mut String);
    /// The stanza itself in what [`Framing::write_element`] just wrote: what stream management
    /// keeps until the client acknowledges it, in a form any framing can write again.
    fn stanza_in<'a>(&self, written: &'a str) -> &'a str {
        written
    }
    /// Writes a stanza stream management kept ([`Framing::stanza_in`] of this framing or of
    /// another: a session resumed on a WebSocket after TCP, or the other way round). What
    /// either framing keeps is a `jabber:client` stanza an XML stream takes as it is.
    fn write_kept(&self, stanza: &str, out: &mut String) {
        out.push_str(stanza);
    }
}

/// RFC 6120 XML stream framing, over TCP (with or without TLS).
pub struct XmlStream {
    decoder: Decoder,
}

impl XmlStream {
    pub fn new(limits: Limits) -> Self {
        XmlStream {
            decoder: Decoder::new(limits),
        }
    }
}

impl Framing for XmlStream {
    fn restart(&mut self, limits: Limits) {
        self.decoder = Decoder::new(limits);
    }

    fn set_limits(&mut self, limits: Limits) {
        self.decoder.set_limits(limits);
    }

    fn next_frame(&mut self, input: &mut &[u8]) -> Result<Option<Frame>, DecodeError> {
        self.decoder.next_frame(input)
    }

    fn opening_seen(&self) -> bool {
        self.decoder.header_seen()
    }

    fn buffered_bytes(&self) -> usize {
        self.decoder.buffered_bytes()
    }

    fn write_opening(&self, opening: &Opening<'_>, out: &mut String) {
        out.push_str(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' id='",
        );
        opening.write_attributes(out);
        out.push('>');
    }

    fn write_closing(&self, out: &mut String) {
        out.push_str("</stream:stream>");
    }

    fn write_keepalive(&self, out: &mut String) {
        out.push(' ');
    }

    fn write_element(&self, element: &Element, out: &mut String) {
        element.write_in_stream(ns::CLIENT, out);
    }
}

/// RFC 7395 framing: XMPP over WebSocket.
///
/// # Input
///
/// The transport hands over the text of each message as it arrives. The messages are parsed as
/// the children of a stream header this framing feeds the decoder itself (`jabber:client`
/// default namespace, `stream` prefix bound), so one decoder, with the same limits and the same
/// rules as TCP, reads them: `<open/>` becomes the stream's header frame, `<close/>` its end,
/// and anything else a top-level element. `<open/>` is accepted only where a stream begins
/// (first, and after a restart: RFC 7395 §3.4 and §3.7); an element before it, or an `<open/>`
/// in the middle of a stream, is a `bad-format` stream error.
///
/// # Output
///
/// What the connection writes is a sequence of records, one per WebSocket message, each the
/// message's length in bytes as eight hexadecimal digits, a `:`, and the message
/// ([`split_record`] reads them back). A record of length 0 is a keepalive: the transport sends
/// a WebSocket ping instead (RFC 7395 §3.8: whitespace keepalives are not allowed). Length
/// prefixes make the split independent of the content, so nothing a stanza holds can cut a
/// message short.
pub struct WebSocketFraming {
    decoder: Decoder,
    /// Whether the client's `<open/>` for the current stream was read.
    opened: bool,
}

/// What the framing feeds its decoder before the client's first message.
const WS_ROOT: &[u8] =
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/// Bytes of a record's header: eight hex digits and `:`.
pub const RECORD_HEADER: usize = 9;

impl WebSocketFraming {
    pub fn new(limits: Limits) -> Self {
        WebSocketFraming {
            decoder: root_decoder(limits),
            opened: false,
        }
    }

    /// Reserves a record's header; [`end_record`] fills it in once the message is written.
    fn start_record(out: &mut String) -> usize {
        let start = out.len();
        out.push_str("00000000:");
        start
    }

    fn end_record(out: &mut String, start: usize) {
        let len = out.len() - start - RECORD_HEADER;
        // Eight hex digits over the placeholder, in place and without a temporary string:
        // this runs for every stanza written to a WebSocket.
        let mut digits = [b'0'; 8];
        for (i, d) in digits.iter_mut().rev().enumerate() {
            *d = b"0123456789abcdef"[(len >> (4 * i)) & 0xf];
        }
        let hex = std::str::from_utf8(&digits).unwrap_or("00000000");
        out.replace_range(start..start + 8, hex);
    }
}

/// A decoder that has read the framing's own stream header.
fn root_decoder(limits: Limits) -> Decoder {
    let mut decoder = Decoder::new(limits);
    let mut root = WS_ROOT;
    // A fixed, valid header under every limit: the decoder returns its header frame.
    let _ = decoder.next_frame(&mut root);
    decoder
}

/// Output that does not start with a record header (only a bug on the writing side could make
/// it).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("output is not in WebSocket records")]
pub struct NotARecord;

/// The first complete record in `buf`: the message's byte range (after the header) and the
/// record's total length, or `None` while the record is incomplete.
pub fn split_record(buf: &[u8]) -> Result<Option<(std::ops::Range<usize>, usize)>, NotARecord> {
    if buf.len() < RECORD_HEADER {
        return Ok(None);
    }
    if buf[8] != b':' {
        return Err(NotARecord);
    }
    let digits = std::str::from_utf8(&buf[..8]).map_err(|_| NotARecord)?;
    let len = usize::from_str_radix(digits, 16).map_err(|_| NotARecord)?;
    let end = RECORD_HEADER + len;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some((RECORD_HEADER..end, end)))
}

/// RFC 7395 §3.3.2: `<open/>`'s attributes are those of the stream header.
fn header_of(open: &Element) -> StreamHeader {
    StreamHeader {
        to: open.attr("to").map(str::to_owned),
        from: open.attr("from").map(str::to_owned),
        id: open.attr("id").map(str::to_owned),
        version: open.attr("version").map(str::to_owned),
        lang: open.attr_ns(ns::XML, "lang").map(str::to_owned),
    }
}

impl Framing for WebSocketFraming {
    fn is_byte_stream(&self) -> bool {
        false
    }

    fn restart(&mut self, limits: Limits) {
        self.decoder = root_decoder(limits);
        self.opened = false;
    }

    fn set_limits(&mut self, limits: Limits) {
        self.decoder.set_limits(limits);
    }

    fn next_frame(&mut self, input: &mut &[u8]) -> Result<Option<Frame>, DecodeError> {
        match self.decoder.next_frame(input)? {
            Some(Frame::Element(e)) if e.ns() == ns::FRAMING => match e.name() {
                "open" if !self.opened => {
                    self.opened = true;
                    Ok(Some(Frame::Header(header_of(&e))))
                }
                "open" => Err(DecodeError::BadFormat(
                    "<open/> only begins a stream (RFC 7395 §3.4, §3.7)".to_owned(),
                )),
                "close" => Ok(Some(Frame::Close)),
                other => Err(DecodeError::BadFormat(format!(
                    "<{other}/> is not an element of the WebSocket framing (RFC 7395 §3.3.2)"
                ))),
            },
            Some(Frame::Element(_)) if !self.opened => Err(DecodeError::BadFormat(
                "the stream must begin with <open/> (RFC 7395 §3.4)".to_owned(),
            )),
            // `</stream:stream>` cannot come: the root is the framing's own.
            other => Ok(other),
        }
    }

    fn opening_seen(&self) -> bool {
        self.opened
    }

    fn buffered_bytes(&self) -> usize {
        self.decoder.buffered_bytes()
    }

    fn write_opening(&self, opening: &Opening<'_>, out: &mut String) {
        let start = Self::start_record(out);
        out.push_str("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='");
        opening.write_attributes(out);
        out.push_str("/>");
        Self::end_record(out, start);
    }

    fn write_closing(&self, out: &mut String) {
        let start = Self::start_record(out);
        out.push_str("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>");
        Self::end_record(out, start);
    }

    fn write_keepalive(&self, out: &mut String) {
        out.push_str("00000000:");
    }

    fn stanza_in<'a>(&self, written: &'a str) -> &'a str {
        written.get(RECORD_HEADER..).unwrap_or_default()
    }

    fn write_kept(&self, stanza: &str, out: &mut String) {
        // Kept by an XML stream, a stanza may rely on the stream's default namespace; a
        // message declares its own: parsed and written again (only at a resumption).
        match starling_stream::parse_written(stanza, ns::CLIENT) {
            Ok(element) => self.write_element(&element, out),
            // Written by this server: not expected.
            Err(e) => tracing::error!(error = %e, "a kept stanza does not parse back"),
        }
    }

    fn write_element(&self, element: &Element, out: &mut String) {
        let start = Self::start_record(out);
        if element.ns() == ns::STREAM {
            // RFC 7395 §3.4, §3.5: `<stream:features/>` and `<stream:error/>` declare the
            // prefix themselves. Once or twice per stream: the copy does not matter.
            let mut e = element.clone();
            e.add_declarations([("stream".into(), ns::STREAM.into())]);
            e.write_standalone(out);
        } else {
            element.write_standalone(out);
        }
        Self::end_record(out, start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_xml_stream_opening_answers_a_valid_from_only() {
        let f = XmlStream::new(Limits::PREAUTH);
        let mut out = String::new();
        f.write_opening(
            &Opening {
                from: "example.org",
                id: "abc",
                to: Some("juliet@example.org"),
            },
            &mut out,
        );
        assert_eq!(
            out,
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' id='abc' from='example.org' \
             to='juliet@example.org' version='1.0' xml:lang='en'>"
        );
        out.clear();
        f.write_opening(
            &Opening {
                from: "example.org",
                id: "abc",
                to: Some("not a jid@"),
            },
            &mut out,
        );
        assert!(!out.contains(" to="), "{out}");
        out.clear();
        f.write_closing(&mut out);
        assert_eq!(out, "</stream:stream>");
    }

    fn ws_messages(out: &str) -> Vec<&str> {
        let mut rest = out.as_bytes();
        let mut messages = Vec::new();
        while !rest.is_empty() {
            let (range, len) = split_record(rest).unwrap().unwrap();
            messages.push(std::str::from_utf8(&rest[range]).unwrap());
            rest = &rest[len..];
        }
        messages
    }

    fn ws_frames(f: &mut WebSocketFraming, input: &str) -> Result<Vec<Frame>, DecodeError> {
        let mut bytes = input.as_bytes();
        let mut frames = Vec::new();
        while let Some(frame) = f.next_frame(&mut bytes)? {
            frames.push(frame);
        }
        Ok(frames)
    }

    /// RFC 7395 §3.3.2, §3.4: the client's `<open/>` is the stream header; its elements each
    /// come whole; `<close/>` ends the stream (§3.6).
    #[test]
    fn websocket_input_is_open_elements_close() {
        let mut f = WebSocketFraming::new(Limits::PREAUTH);
        assert!(!f.opening_seen());
        let frames = ws_frames(
            &mut f,
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' \
             version='1.0' xml:lang='fr'/>\
             <iq xmlns='jabber:client' type='get' id='1'/>",
        )
        .unwrap();
        assert_eq!(
            frames[0],
            Frame::Header(StreamHeader {
                to: Some("example.org".into()),
                from: None,
                id: None,
                version: Some("1.0".into()),
                lang: Some("fr".into()),
            })
        );
        assert!(f.opening_seen());
        let Frame::Element(iq) = &frames[1] else {
            panic!("{frames:?}")
        };
        assert_eq!(iq.to_xml(), "<iq xmlns='jabber:client' type='get' id='1'/>");
        let frames = ws_frames(
            &mut f,
            "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
        );
        assert_eq!(frames.unwrap(), vec![Frame::Close]);
    }

    /// RFC 7395 §3.4 and §3.7: `<open/>` begins a stream, first and after a restart only.
    #[test]
    fn websocket_open_only_begins_a_stream() {
        let mut f = WebSocketFraming::new(Limits::PREAUTH);
        let err = ws_frames(&mut f, "<iq xmlns='jabber:client' type='get' id='1'/>");
        assert_eq!(
            err.unwrap_err().to_stream_error().to_element().to_xml(),
            "<error xmlns='http://etherx.jabber.org/streams'><bad-format \
             xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text \
             xmlns='urn:ietf:params:xml:ns:xmpp-streams'>the stream must begin with <open/> \
             (RFC 7395 §3.4)</text></error>"
                .replace("<open/> (", "&lt;open/> (")
        );
        let mut f = WebSocketFraming::new(Limits::PREAUTH);
        let open =
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' version='1.0'/>";
        assert_eq!(ws_frames(&mut f, open).unwrap().len(), 1);
        assert!(matches!(
            ws_frames(&mut f, open),
            Err(DecodeError::BadFormat(t)) if t.contains("only begins a stream")
        ));
        // After a restart (SASL success) a new <open/> is expected.
        f.restart(Limits::DEFAULT);
        assert!(!f.opening_seen());
        assert!(matches!(
            ws_frames(&mut f, open).unwrap()[..],
            [Frame::Header(_)]
        ));
    }

    /// RFC 7395 §3.3.3: the stanza limits are those of TCP, whatever the messages.
    #[test]
    fn websocket_input_has_the_stanza_limits() {
        let mut f = WebSocketFraming::new(Limits::PREAUTH);
        let open =
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' version='1.0'/>";
        ws_frames(&mut f, open).unwrap();
        let big = format!(
            "<message xmlns='jabber:client'><body>{}</body></message>",
            "a".repeat(9000)
        );
        assert_eq!(
            ws_frames(&mut f, &big),
            Err(DecodeError::StanzaTooBig(Limits::PREAUTH.max_stanza_bytes))
        );
    }

    /// RFC 7395 §3.3.2, §3.4, §3.5, §3.6: each message a complete element with its namespace.
    #[test]
    fn websocket_output_is_one_element_per_message() {
        let f = WebSocketFraming::new(Limits::PREAUTH);
        let mut out = String::new();
        f.write_opening(
            &Opening {
                from: "example.org",
                id: "abc",
                to: Some("juliet@example.org"),
            },
            &mut out,
        );
        let features =
            Element::new("features", ns::STREAM).with_child(Element::new("bind", ns::BIND));
        f.write_element(&features, &mut out);
        f.write_element(
            &Element::new("message", ns::CLIENT).with_attr("to", "romeo@example.net"),
            &mut out,
        );
        f.write_keepalive(&mut out);
        f.write_closing(&mut out);
        assert!(out.starts_with("00000083:<open "), "{out}");
        assert_eq!(
            ws_messages(&out),
            vec![
                "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='abc' from='example.org' \
                 to='juliet@example.org' version='1.0' xml:lang='en'/>",
                "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind \
                 xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
                "<message xmlns='jabber:client' to='romeo@example.net'/>",
                "",
                "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
            ]
        );
    }

    /// XEP-0198 §5 across framings: what one framing keeps, the other writes as its own.
    #[test]
    fn kept_stanzas_cross_framings() {
        let ws = WebSocketFraming::new(Limits::DEFAULT);
        let tcp = XmlStream::new(Limits::DEFAULT);
        let message = Element::new("message", ns::CLIENT)
            .with_attr("to", "juliet@example.org")
            .with_child(Element::new("body", ns::CLIENT).with_text("hi"));
        let mut out = String::new();
        ws.write_element(&message, &mut out);
        let kept_ws = ws.stanza_in(&out).to_owned();
        assert_eq!(
            kept_ws,
            "<message xmlns='jabber:client' to='juliet@example.org'><body>hi</body></message>"
        );
        out.clear();
        tcp.write_element(&message, &mut out);
        let kept_tcp = tcp.stanza_in(&out).to_owned();
        assert_eq!(
            kept_tcp,
            "<message to='juliet@example.org'><body>hi</body></message>"
        );
        // TCP after WebSocket: the explicit default namespace is fine in the stream.
        out.clear();
        tcp.write_kept(&kept_ws, &mut out);
        assert_eq!(out, kept_ws);
        // WebSocket after TCP: one message, with its namespace.
        out.clear();
        ws.write_kept(&kept_tcp, &mut out);
        assert_eq!(ws_messages(&out), vec![kept_ws.as_str()]);
    }

    #[test]
    fn records_split_only_when_whole() {
        assert_eq!(split_record(b"0000000"), Ok(None));
        assert_eq!(split_record(b"00000003:ab"), Ok(None));
        assert_eq!(split_record(b"00000003:abcd"), Ok(Some((9..12, 12))));
        assert_eq!(split_record(b"0000000x:abcd"), Err(NotARecord));
        assert_eq!(split_record(b"00000003;abc"), Err(NotARecord));
    }
}
