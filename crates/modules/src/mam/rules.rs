//! Which messages a user archive keeps (XEP-0313 §7.1.1 "User Archives", XEP-0334 hints), and
//! the XEP-0359 `<stanza-id/>` the archive gives them.

use starling_proto::{Element, Node, ns};

/// XEP-0359 namespace of `<stanza-id/>` and `<origin-id/>`.
pub const NS_SID: &str = ns::SID;
/// XEP-0384 OMEMO, the version Conversations and most clients speak.
pub const NS_OMEMO_LEGACY: &str = "eu.siacs.conversations.axolotl";
/// XEP-0384 OMEMO 0.8+.
pub const NS_OMEMO: &str = "urn:xmpp:omemo:2";
/// XEP-0380 explicit message encryption.
pub const NS_EME: &str = "urn:xmpp:eme:0";
/// XEP-0308 last message correction.
pub const NS_CORRECT: &str = "urn:xmpp:message-correct:0";
/// XEP-0424 message retraction (1.0 and the earlier fastening-based form).
pub const NS_RETRACT: &str = "urn:xmpp:message-retract:1";
pub const NS_RETRACT_0: &str = "urn:xmpp:message-retract:0";
/// XEP-0422 message fastening (carries XEP-0424 0.x retractions).
pub const NS_FASTEN: &str = "urn:xmpp:fasten:0";
/// XEP-0444 message reactions.
pub const NS_REACTIONS: &str = "urn:xmpp:reactions:0";
/// PGP-encrypted bodies (XEP-0027, still sent by some clients).
pub const NS_PGP: &str = "jabber:x:encrypted";
/// XEP-0373/0374 OpenPGP for XMPP.
pub const NS_OX: &str = "urn:xmpp:openpgp:0";

/// Whether a message a local user sent or received belongs in a user archive.
///
/// - XEP-0334 §4.3 / §4.2: `<no-permanent-store/>` and `<no-store/>` keep it out;
/// - XEP-0334 §4.4: `<store/>` puts a message of any type but error in;
/// - XEP-0313 §7.1.1: type chat or normal (the default) with a `<body/>`;
/// - and, since a conversation is more than its bodies, chat and normal messages that carry an
///   encrypted payload (OMEMO, OpenPGP, PGP, XEP-0380), a correction (XEP-0308), a retraction
///   (XEP-0424) or a reaction (XEP-0444): without them a device catching up shows stale or
///   undecryptable history.
///
/// Groupchat (the MUC service archives its rooms), headline and error are not archived.
pub fn archivable(message: &Element) -> bool {
    if message.has_child("no-permanent-store", ns::HINTS)
        || message.has_child("no-store", ns::HINTS)
    {
        return false;
    }
    let ty = message.attr("type").unwrap_or("normal");
    if ty == "error" {
        return false;
    }
    if message.has_child("store", ns::HINTS) {
        return true;
    }
    if !matches!(ty, "chat" | "normal") {
        return false;
    }
    message.children().any(|c| {
        matches!(
            (c.name(), c.ns()),
            ("body", ns::CLIENT)
                | ("encrypted", NS_OMEMO_LEGACY | NS_OMEMO)
                | ("openpgp", NS_OX)
                | ("x", NS_PGP)
                | ("encryption", NS_EME)
                | ("replace", NS_CORRECT)
                | ("retract", NS_RETRACT)
                | ("reactions", NS_REACTIONS)
        ) || (c.is("apply-to", NS_FASTEN) && c.has_child("retract", NS_RETRACT_0))
    })
}

/// The text of the message's first `<body/>` (for full-text search).
pub fn body_text(message: &Element) -> Option<String> {
    message.get_child("body", ns::CLIENT).map(Element::text)
}

/// Removes every `<stanza-id/>` that claims to come from `by` (XEP-0359 §4: an entity that adds
/// stanza ids MUST remove any a sender put there in its name; otherwise a sender could forge
/// the recipient's archive ids).
pub fn strip_stanza_ids(message: &mut Element, by: &str) {
    message.retain_nodes(
        |n| !matches!(n, Node::Element(e) if e.is("stanza-id", NS_SID) && e.attr("by") == Some(by)),
    );
}

/// `<stanza-id xmlns='urn:xmpp:sid:0' by=by id=id/>` (XEP-0359 §3).
pub fn stanza_id(by: &str, id: &str) -> Element {
    Element::new("stanza-id", NS_SID)
        .with_attr("by", by)
        .with_attr("id", id)
}

/// The archive id of a `<stanza-id/>` the archive of `by` put on `message`, if any.
pub fn archived_id<'m>(message: &'m Element, by: &str) -> Option<&'m str> {
    message
        .children()
        .find(|c| c.is("stanza-id", NS_SID) && c.attr("by") == Some(by))
        .and_then(|c| c.attr("id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(ty: Option<&str>, children: &[(&str, &str)]) -> Element {
        let mut m = Element::new("message", ns::CLIENT);
        if let Some(ty) = ty {
            m.set_attr("type", ty);
        }
        for (name, ns) in children {
            m.append_child(Element::new(*name, *ns));
        }
        m
    }

    #[test]
    fn bodies_of_chat_and_normal_are_archived() {
        // XEP-0313 §7.1.1.
        assert!(archivable(&message(Some("chat"), &[("body", ns::CLIENT)])));
        assert!(archivable(&message(None, &[("body", ns::CLIENT)])));
        assert!(archivable(&message(
            Some("normal"),
            &[("body", ns::CLIENT)]
        )));
        assert!(!archivable(&message(
            Some("headline"),
            &[("body", ns::CLIENT)]
        )));
        assert!(!archivable(&message(
            Some("groupchat"),
            &[("body", ns::CLIENT)]
        )));
        assert!(!archivable(&message(
            Some("error"),
            &[("body", ns::CLIENT)]
        )));
        // A body in another namespace is not the message's body.
        assert!(!archivable(&message(
            Some("chat"),
            &[("body", "urn:other")]
        )));
    }

    #[test]
    fn conversation_payloads_without_body_are_archived() {
        for (name, ns) in [
            ("encrypted", NS_OMEMO_LEGACY),
            ("encrypted", NS_OMEMO),
            ("openpgp", NS_OX),
            ("x", NS_PGP),
            ("encryption", NS_EME),
            ("replace", NS_CORRECT),
            ("retract", NS_RETRACT),
            ("reactions", NS_REACTIONS),
        ] {
            assert!(
                archivable(&message(Some("chat"), &[(name, ns)])),
                "{name} {ns}"
            );
        }
        let mut fastened = message(Some("chat"), &[]);
        fastened.append_child(
            Element::new("apply-to", NS_FASTEN).with_child(Element::new("retract", NS_RETRACT_0)),
        );
        assert!(archivable(&fastened));
    }

    #[test]
    fn notifications_alone_are_not_archived() {
        assert!(!archivable(&message(
            Some("chat"),
            &[("active", ns::CHATSTATES)]
        )));
        assert!(!archivable(&message(
            Some("chat"),
            &[("received", ns::RECEIPTS)]
        )));
        assert!(!archivable(&message(
            Some("chat"),
            &[("displayed", ns::MARKERS)]
        )));
    }

    #[test]
    fn hints_are_honoured() {
        // XEP-0334 §4.2, §4.3, §4.4.
        assert!(!archivable(&message(
            Some("chat"),
            &[("body", ns::CLIENT), ("no-store", ns::HINTS)]
        )));
        assert!(!archivable(&message(
            Some("chat"),
            &[("body", ns::CLIENT), ("no-permanent-store", ns::HINTS)]
        )));
        assert!(archivable(&message(Some("chat"), &[("store", ns::HINTS)])));
        assert!(archivable(&message(
            Some("headline"),
            &[("store", ns::HINTS)]
        )));
        assert!(!archivable(&message(
            Some("error"),
            &[("store", ns::HINTS)]
        )));
    }

    #[test]
    fn forged_stanza_ids_are_removed() {
        // XEP-0359 §4.
        let mut m = message(Some("chat"), &[("body", ns::CLIENT)]);
        m.append_child(stanza_id("juliet@capulet.lit", "forged"));
        m.append_child(stanza_id("room@muc.example", "kept"));
        strip_stanza_ids(&mut m, "juliet@capulet.lit");
        assert_eq!(archived_id(&m, "juliet@capulet.lit"), None);
        assert_eq!(archived_id(&m, "room@muc.example"), Some("kept"));
    }
}
