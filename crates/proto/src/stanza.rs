//! The stanza envelope: what routing needs to know without parsing payloads.

use crate::{Element, ns};

/// The three stanza kinds of RFC 6120 §8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StanzaKind {
    Message,
    Presence,
    Iq,
}

impl StanzaKind {
    /// The kind of a top-level element in `jabber:client` (or `jabber:server`), if it is a stanza.
    pub fn of(e: &Element) -> Option<StanzaKind> {
        if e.ns() != ns::CLIENT && e.ns() != ns::SERVER {
            return None;
        }
        match e.name() {
            "message" => Some(StanzaKind::Message),
            "presence" => Some(StanzaKind::Presence),
            "iq" => Some(StanzaKind::Iq),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StanzaKind::Message => "message",
            StanzaKind::Presence => "presence",
            StanzaKind::Iq => "iq",
        }
    }
}

/// An empty `type='result'` reply to an IQ (RFC 6120 §8.2.3), `to`/`from` swapped.
pub fn iq_result(iq: &Element) -> Element {
    Element::new("iq", ns::CLIENT)
        .with_opt_attr("id", iq.attr("id"))
        .with_opt_attr("to", iq.attr("from"))
        .with_opt_attr("from", iq.attr("to"))
        .with_attr("type", "result")
}

/// Whether a message carries an XEP-0085 chat state and nothing else of substance: no body, no
/// receipt, no payload; a thread id, XEP-0334 hints and XEP-0359 stanza ids do not count. Such
/// a notification is not stored offline (XEP-0085 §5.8) and may wait while a client is
/// inactive (XEP-0352 §6).
pub fn is_standalone_chat_state(message: &Element) -> bool {
    let mut has_state = false;
    for child in message.children() {
        match child.ns() {
            ns::CHATSTATES => has_state = true,
            ns::HINTS | ns::SID => {}
            ns::CLIENT if child.name() == "thread" => {}
            _ => return false,
        }
    }
    has_state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(
            StanzaKind::of(&Element::new("iq", ns::CLIENT)),
            Some(StanzaKind::Iq)
        );
        assert_eq!(StanzaKind::of(&Element::new("iq", "urn:other")), None);
        assert_eq!(StanzaKind::of(&Element::new("foo", ns::CLIENT)), None);
    }
}
