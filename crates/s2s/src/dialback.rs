//! XEP-0220 server dialback, with XEP-0185 keys.
//!
//! The key an originating server sends in `<db:result/>` (and that the authoritative server
//! checks in `<db:verify/>`) is, by XEP-0185 §3, the lowercase hex HMAC-SHA256 keyed with the
//! hex SHA-256 of a secret only this server knows, over `receiving ' ' originating ' ' stream-id`.
//! Nothing is stored: the authoritative server recomputes the key from what the request names.

use hmac::{KeyInit as _, Mac as _};
use sha2::Digest as _;
use starling_proto::Element;
use subtle::ConstantTimeEq as _;

/// `jabber:server:dialback`, the namespace of `<db:result/>` and `<db:verify/>`.
pub const NS: &str = "jabber:server:dialback";
/// `urn:xmpp:features:dialback` (XEP-0220 §2.1): the stream feature saying dialback is offered.
pub const FEATURE_NS: &str = "urn:xmpp:features:dialback";

/// Dialback keys from one secret (XEP-0185 §3).
#[derive(Clone)]
pub struct DialbackKeys {
    /// Hex SHA-256 of the secret: the HMAC key.
    hmac_key: String,
}

impl std::fmt::Debug for DialbackKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DialbackKeys(..)")
    }
}

impl DialbackKeys {
    /// Keys derived from `secret`.
    pub fn new(secret: &str) -> Self {
        DialbackKeys {
            hmac_key: hex(&sha2::Sha256::digest(secret.as_bytes())),
        }
    }

    /// The key proving that `originating` opened stream `stream_id` to `receiving`.
    pub fn key(&self, receiving: &str, originating: &str, stream_id: &str) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(self.hmac_key.as_bytes())
            // HMAC takes keys of any length.
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(receiving.as_bytes());
        mac.update(b" ");
        mac.update(originating.as_bytes());
        mac.update(b" ");
        mac.update(stream_id.as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// Whether `key` is the one [`key`](Self::key) gives (compared in constant time).
    pub fn check(&self, receiving: &str, originating: &str, stream_id: &str, key: &str) -> bool {
        let expected = self.key(receiving, originating, stream_id);
        bool::from(expected.as_bytes().ct_eq(key.trim().as_bytes()))
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Writes a dialback element with the `db:` prefix our stream header declares
/// (`<db:result …>`), as XEP-0220 writes them.
///
/// COMPAT(ejabberd): ejabberd 23.01 matches dialback elements by their prefixed name; an
/// equivalent `<result xmlns='jabber:server:dialback'>` is ignored and the peer never answers.
pub fn write_prefixed(e: &Element, out: &mut String) {
    use starling_proto::element::{escape_attr, escape_text};
    out.push_str("<db:");
    out.push_str(e.name());
    for a in e.attrs() {
        if a.namespace().is_some() {
            continue;
        }
        out.push(' ');
        out.push_str(a.name.as_str());
        out.push_str("='");
        escape_attr(&a.value, out);
        out.push('\'');
    }
    let text = e.text();
    let children: Vec<&Element> = e.children().collect();
    if text.is_empty() && children.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    escape_text(&text, out);
    for child in children {
        child.write_in_stream(starling_proto::ns::SERVER, out);
    }
    out.push_str("</db:");
    out.push_str(e.name());
    out.push('>');
}

/// `<db:result from to>key</db:result>` (XEP-0220 §2.1.1).
pub fn result_request(from: &str, to: &str, key: &str) -> Element {
    let mut e = Element::new("result", NS);
    e.set_attr("from", from);
    e.set_attr("to", to);
    e.append_text(key);
    e
}

/// `<db:result type='valid|invalid' from to/>` (XEP-0220 §2.4).
pub fn result_answer(from: &str, to: &str, valid: bool) -> Element {
    let mut e = Element::new("result", NS);
    e.set_attr("from", from);
    e.set_attr("to", to);
    e.set_attr("type", if valid { "valid" } else { "invalid" });
    e
}

/// `<db:verify from to id>key</db:verify>` (XEP-0220 §2.3.1).
pub fn verify_request(from: &str, to: &str, id: &str, key: &str) -> Element {
    let mut e = Element::new("verify", NS);
    e.set_attr("from", from);
    e.set_attr("to", to);
    e.set_attr("id", id);
    e.append_text(key);
    e
}

/// `<db:verify type='valid|invalid' from to id/>` (XEP-0220 §2.3.2).
pub fn verify_answer(from: &str, to: &str, id: &str, valid: bool) -> Element {
    let mut e = Element::new("verify", NS);
    e.set_attr("from", from);
    e.set_attr("to", to);
    e.set_attr("id", id);
    e.set_attr("type", if valid { "valid" } else { "invalid" });
    e
}

/// A dialback element answered with `type='error'` and a stanza error condition (XEP-0220
/// §2.4, §4): `<db:result type='error' from to><error type='cancel'><item-not-found/>…`.
pub fn error_answer(request: &Element, condition: starling_proto::StanzaErrorCondition) -> Element {
    let mut e = Element::new(request.name(), NS);
    // Addressed back: the request's `to` becomes our `from`.
    if let Some(to) = request.attr("to") {
        e.set_attr("from", to);
    }
    if let Some(from) = request.attr("from") {
        e.set_attr("to", from);
    }
    if let Some(id) = request.attr("id") {
        e.set_attr("id", id);
    }
    e.set_attr("type", "error");
    let mut error = starling_proto::StanzaError::new(condition).to_element();
    error.rename_ns(
        starling_proto::ns::CLIENT,
        &starling_proto::element::Ns::from_static(starling_proto::ns::SERVER),
    );
    e.append_child(error);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XEP-0185 §4: the worked example (secret `s3cr3tf0rd14lb4ck`, receiving server
    /// `xmpp.example.com`, originating `example.org`, stream id `D60000229F`).
    #[test]
    fn xep0185_example_key() {
        let keys = DialbackKeys::new("s3cr3tf0rd14lb4ck");
        assert_eq!(
            keys.hmac_key,
            "a7136eb1f46c9ef18c5e78c36ca257067c69b3d518285f0b18a96c33beae9acc"
        );
        let key = keys.key("xmpp.example.com", "example.org", "D60000229F");
        assert_eq!(
            key,
            "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643"
        );
        assert!(keys.check("xmpp.example.com", "example.org", "D60000229F", &key));
        // Another stream, another pair of names, another secret: not the key.
        assert!(!keys.check("xmpp.example.com", "example.org", "D60000229G", &key));
        assert!(!keys.check("example.org", "xmpp.example.com", "D60000229F", &key));
        assert!(!DialbackKeys::new("other").check(
            "xmpp.example.com",
            "example.org",
            "D60000229F",
            &key
        ));
    }

    /// XEP-0220 §2.1.1 and §2.4: the elements, as they go on the wire (with the `db:` prefix).
    #[test]
    fn elements() {
        let mut out = String::new();
        write_prefixed(&result_request("a.example", "b.example", "k1"), &mut out);
        assert_eq!(
            out,
            "<db:result from='a.example' to='b.example'>k1</db:result>"
        );
        out.clear();
        write_prefixed(
            &verify_answer("a.example", "b.example", "i1", false),
            &mut out,
        );
        assert_eq!(
            out,
            "<db:verify from='a.example' to='b.example' id='i1' type='invalid'/>"
        );
        out.clear();
        let request = result_request("a.example", "b.example", "k1");
        write_prefixed(
            &error_answer(&request, starling_proto::StanzaErrorCondition::ItemNotFound),
            &mut out,
        );
        assert_eq!(
            out,
            "<db:result from='b.example' to='a.example' type='error'><error type='cancel'>\
             <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>"
        );
    }
}
