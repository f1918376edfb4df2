//! Namespace names used across Starling.

pub const XML: &str = "http://www.w3.org/XML/1998/namespace";
pub const STREAM: &str = "http://etherx.jabber.org/streams";
/// RFC 7395 §3.3.2: `<open/>` and `<close/>` of XMPP over WebSocket.
pub const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";
pub const CLIENT: &str = "jabber:client";
pub const SERVER: &str = "jabber:server";
pub const STREAMS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
/// XEP-0388 Extensible SASL Profile (SASL2).
pub const SASL2: &str = "urn:xmpp:sasl:2";
/// XEP-0386 Bind 2.
pub const BIND2: &str = "urn:xmpp:bind:0";
/// XEP-0484 Fast Authentication Streamlining Tokens.
pub const FAST: &str = "urn:xmpp:fast:0";
/// XEP-0440 SASL channel-binding type capability.
pub const SASL_CB: &str = "urn:xmpp:sasl-cb:0";
/// XEP-0478 stream limits advertisement.
pub const STREAM_LIMITS: &str = "urn:xmpp:stream-limits:0";
/// Application-specific stream error conditions (`<stanza-too-big/>`).
pub const XMPP_ERRORS: &str = "urn:xmpp:errors";
pub const PING: &str = "urn:xmpp:ping";
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
pub const ROSTER: &str = "jabber:iq:roster";
/// RFC 6121 §2.6.1 roster versioning stream feature.
pub const ROSTER_VER: &str = "urn:xmpp:features:rosterver";
/// RFC 6121 §3.4.1 subscription pre-approval stream feature.
pub const PRE_APPROVAL: &str = "urn:xmpp:features:pre-approval";
/// XEP-0115 entity capabilities.
pub const CAPS: &str = "http://jabber.org/protocol/caps";
/// XEP-0203 delayed delivery.
pub const DELAY: &str = "urn:xmpp:delay";
/// XEP-0334 message processing hints.
pub const HINTS: &str = "urn:xmpp:hints";
/// XEP-0085 chat state notifications.
pub const CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
/// XEP-0184 message delivery receipts.
pub const RECEIPTS: &str = "urn:xmpp:receipts";
/// XEP-0359 unique and stable stanza ids.
pub const SID: &str = "urn:xmpp:sid:0";
/// XEP-0054 vcard-temp.
pub const VCARD: &str = "vcard-temp";
/// XEP-0092 software version.
pub const VERSION: &str = "jabber:iq:version";
/// XEP-0202 entity time.
pub const TIME: &str = "urn:xmpp:time";
/// XEP-0004 data forms.
pub const DATA_FORMS: &str = "jabber:x:data";
/// XEP-0333 chat markers.
pub const MARKERS: &str = "urn:xmpp:chat-markers:0";
/// XEP-0114 external components: the content namespace of their streams.
pub const COMPONENT: &str = "jabber:component:accept";
/// XEP-0198 stream management.
pub const SM: &str = "urn:xmpp:sm:3";
/// XEP-0352 client state indication.
pub const CSI: &str = "urn:xmpp:csi:0";
/// The namespace of namespace declarations themselves (Namespaces in XML §3); never bindable.
pub const XMLNS: &str = "http://www.w3.org/2000/xmlns/";

/// The `'static` copy of a namespace name Starling knows, so that elements in the usual
/// namespaces share one string instead of each owning a copy.
pub fn known(uri: &str) -> Option<&'static str> {
    const ALL: &[&str] = &[
        CLIENT,
        COMPONENT,
        SM,
        CSI,
        STREAM,
        XML,
        SERVER,
        STREAMS,
        STANZAS,
        TLS,
        SASL,
        BIND,
        SESSION,
        SASL_CB,
        SASL2,
        BIND2,
        FAST,
        STREAM_LIMITS,
        XMPP_ERRORS,
        PING,
        DISCO_INFO,
        DISCO_ITEMS,
        ROSTER,
        ROSTER_VER,
        PRE_APPROVAL,
        CAPS,
        DELAY,
        HINTS,
        CHATSTATES,
        RECEIPTS,
        SID,
        VCARD,
        VERSION,
        TIME,
        DATA_FORMS,
        MARKERS,
    ];
    // Namespace names are compared by length first, so a long unknown URI costs one pass.
    ALL.iter().copied().find(|k| *k == uri)
}
/// XEP-0077 in-band registration.
pub const REGISTER: &str = "jabber:iq:register";
/// XEP-0077 §9 in-band registration stream feature.
pub const REGISTER_FEATURE: &str = "http://jabber.org/features/iq-register";
/// XEP-0379/XEP-0445 pre-authentication tokens (`<preauth token='…'/>`).
pub const PARS: &str = "urn:xmpp:pars:0";
/// XEP-0445 §3 stream feature: registration with an invitation token.
pub const IBR_TOKEN: &str = "urn:xmpp:ibr-token:0";
