//! How stream-level frames travel on a connection. The connection's negotiation, SASL, binding
//! and stanza handling see only [`Frame`]s in and elements out; a [`Framing`] turns bytes into
//! frames and writes the stream's opening, its end, and each element.
//!
//! [`XmlStream`] is RFC 6120's framing over TCP: one XML document per stream, opened with
//! `<stream:stream>` and ended with `</stream:stream>`, top-level elements written in the
//! stream's default namespace (`jabber:client`, which they then omit). RFC 7395's WebSocket
//! framing differs in exactly these places (each message is one element; `<open/>` and
//! `<close/>` in `urn:ietf:params:xml:ns:xmpp-framing`; every stanza carries its own `xmlns`),
//! so it can be added as another implementation without touching the connection's logic or the
//! session.

use starling_proto::{Element, Jid, ns};
use starling_stream::{DecodeError, Decoder, Frame, Limits};

/// The attributes of the server's stream opening (RFC 6120 §4.7).
pub struct Opening<'a> {
    /// The served domain.
    pub from: &'a str,
    /// The stream id.
    pub id: &'a str,
    /// The initiator's `from`, answered in `to` (RFC 6120 §4.7.2) when it is a valid JID.
    pub to: Option<&'a str>,
}

/// A connection's framing (see the module docs).
pub trait Framing: Send + Sync {
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
        out.push_str(opening.id);
        out.push_str("' from='");
        starling_proto::element::escape_attr(opening.from, out);
        out.push('\'');
        if let Some(to) = opening.to.filter(|f| Jid::new(f).is_ok()) {
            out.push_str(" to='");
            starling_proto::element::escape_attr(to, out);
            out.push('\'');
        }
        out.push_str(" version='1.0' xml:lang='en'>");
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
}
