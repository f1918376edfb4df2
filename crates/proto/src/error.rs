//! Stream errors (RFC 6120 §4.9) and stanza errors (RFC 6120 §8.3).

use crate::{Element, ns};

macro_rules! conditions {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),* }
        impl $name {
            /// The defined-condition element name.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $s),* }
            }
            /// Parses a defined-condition element name.
            pub fn from_name(s: &str) -> Option<Self> {
                match s { $($s => Some(Self::$variant),)* _ => None }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

conditions! {
    /// RFC 6120 §4.9.3 stream error conditions.
    StreamErrorCondition {
        BadFormat => "bad-format",
        BadNamespacePrefix => "bad-namespace-prefix",
        Conflict => "conflict",
        ConnectionTimeout => "connection-timeout",
        HostGone => "host-gone",
        HostUnknown => "host-unknown",
        ImproperAddressing => "improper-addressing",
        InternalServerError => "internal-server-error",
        InvalidFrom => "invalid-from",
        InvalidNamespace => "invalid-namespace",
        InvalidXml => "invalid-xml",
        NotAuthorized => "not-authorized",
        NotWellFormed => "not-well-formed",
        PolicyViolation => "policy-violation",
        RemoteConnectionFailed => "remote-connection-failed",
        Reset => "reset",
        ResourceConstraint => "resource-constraint",
        RestrictedXml => "restricted-xml",
        SeeOtherHost => "see-other-host",
        SystemShutdown => "system-shutdown",
        UndefinedCondition => "undefined-condition",
        UnsupportedEncoding => "unsupported-encoding",
        UnsupportedFeature => "unsupported-feature",
        UnsupportedStanzaType => "unsupported-stanza-type",
        UnsupportedVersion => "unsupported-version",
    }
}

conditions! {
    /// RFC 6120 §8.3.3 stanza error conditions.
    StanzaErrorCondition {
        BadRequest => "bad-request",
        Conflict => "conflict",
        FeatureNotImplemented => "feature-not-implemented",
        Forbidden => "forbidden",
        Gone => "gone",
        InternalServerError => "internal-server-error",
        ItemNotFound => "item-not-found",
        JidMalformed => "jid-malformed",
        NotAcceptable => "not-acceptable",
        NotAllowed => "not-allowed",
        NotAuthorized => "not-authorized",
        PolicyViolation => "policy-violation",
        RecipientUnavailable => "recipient-unavailable",
        Redirect => "redirect",
        RegistrationRequired => "registration-required",
        RemoteServerNotFound => "remote-server-not-found",
        RemoteServerTimeout => "remote-server-timeout",
        ResourceConstraint => "resource-constraint",
        ServiceUnavailable => "service-unavailable",
        SubscriptionRequired => "subscription-required",
        UndefinedCondition => "undefined-condition",
        UnexpectedRequest => "unexpected-request",
    }
}

conditions! {
    /// RFC 6120 §8.3.2 error types.
    ErrorType {
        Auth => "auth",
        Cancel => "cancel",
        Continue => "continue",
        Modify => "modify",
        Wait => "wait",
    }
}

impl StanzaErrorCondition {
    /// The error type RFC 6120 §8.3.3 gives as usual for this condition.
    pub fn default_type(self) -> ErrorType {
        use StanzaErrorCondition::*;
        match self {
            BadRequest | JidMalformed | NotAcceptable | PolicyViolation | Redirect => {
                ErrorType::Modify
            }
            Forbidden | NotAuthorized | RegistrationRequired | SubscriptionRequired => {
                ErrorType::Auth
            }
            InternalServerError | RecipientUnavailable | RemoteServerTimeout
            | ResourceConstraint | UnexpectedRequest => ErrorType::Wait,
            _ => ErrorType::Cancel,
        }
    }
}

/// A stream error to send before closing the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamError {
    pub condition: StreamErrorCondition,
    pub text: Option<String>,
    /// Application-specific condition, e.g. `<stanza-too-big xmlns='urn:xmpp:errors'/>` (boxed:
    /// stream errors travel in `Result`s and should stay small).
    pub app: Option<Box<Element>>,
}

impl StreamError {
    pub fn new(condition: StreamErrorCondition) -> Self {
        StreamError {
            condition,
            text: None,
            app: None,
        }
    }

    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// `<policy-violation/>` with `<stanza-too-big xmlns='urn:xmpp:errors'/>` (XEP-0478).
    pub fn stanza_too_big(limit: usize) -> Self {
        StreamError {
            condition: StreamErrorCondition::PolicyViolation,
            text: Some(format!("stanza exceeds the limit of {limit} bytes")),
            app: Some(Box::new(Element::new("stanza-too-big", ns::XMPP_ERRORS))),
        }
    }

    /// The `<stream:error/>` element.
    pub fn to_element(&self) -> Element {
        let mut e = Element::new("error", ns::STREAM)
            .with_child(Element::new(self.condition.as_str(), ns::STREAMS));
        if let Some(t) = &self.text {
            e.append_child(Element::new("text", ns::STREAMS).with_text(t.clone()));
        }
        if let Some(app) = &self.app {
            e.append_child(app.as_ref().clone());
        }
        e
    }
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.text {
            Some(t) => write!(f, "{} ({t})", self.condition),
            None => write!(f, "{}", self.condition),
        }
    }
}

impl std::error::Error for StreamError {}

/// A stanza error (RFC 6120 §8.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StanzaError {
    pub error_type: ErrorType,
    pub condition: StanzaErrorCondition,
    pub text: Option<String>,
    /// The entity that generated the error (RFC 6120 §8.3.2 `by`).
    pub by: Option<String>,
    pub app: Option<Element>,
}

impl StanzaError {
    /// The condition with its usual type.
    pub fn new(condition: StanzaErrorCondition) -> Self {
        StanzaError {
            error_type: condition.default_type(),
            condition,
            text: None,
            by: None,
            app: None,
        }
    }

    pub fn with_type(mut self, t: ErrorType) -> Self {
        self.error_type = t;
        self
    }

    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// The `<error/>` element (in `jabber:client`).
    pub fn to_element(&self) -> Element {
        let mut e = Element::new("error", ns::CLIENT)
            .with_attr("type", self.error_type.as_str())
            .with_opt_attr("by", self.by.clone())
            .with_child(Element::new(self.condition.as_str(), ns::STANZAS));
        if let Some(t) = &self.text {
            e.append_child(Element::new("text", ns::STANZAS).with_text(t.clone()));
        }
        if let Some(app) = &self.app {
            e.append_child(app.clone());
        }
        e
    }

    /// Parses an `<error/>` child.
    pub fn from_element(e: &Element) -> Option<StanzaError> {
        let error_type = ErrorType::from_name(e.attr("type")?)?;
        let condition = e
            .children()
            .filter(|c| c.ns() == ns::STANZAS)
            .find_map(|c| StanzaErrorCondition::from_name(c.name()))?;
        Some(StanzaError {
            error_type,
            condition,
            text: e.get_child("text", ns::STANZAS).map(Element::text),
            by: e.attr("by").map(str::to_owned),
            app: e.children().find(|c| c.ns() != ns::STANZAS).cloned(),
        })
    }
}

impl std::fmt::Display for StanzaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.error_type, self.condition)
    }
}

impl std::error::Error for StanzaError {}

/// Builds the error response to `stanza` (RFC 6120 §8.3.1): same name and id, `to` and `from` swapped,
/// `type='error'`, and the error. The original payload is not echoed (the RFC makes it optional, and not
/// echoing keeps error bounces small).
pub fn error_reply(stanza: &Element, err: &StanzaError) -> Element {
    Element::new(stanza.name(), stanza.ns())
        .with_opt_attr("id", stanza.attr("id"))
        .with_opt_attr("to", stanza.attr("from"))
        .with_opt_attr("from", stanza.attr("to"))
        .with_attr("type", "error")
        .with_child(err.to_element())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_error_serialises() {
        let mut s = String::new();
        StreamError::stanza_too_big(10)
            .to_element()
            .write_in_stream(ns::CLIENT, &mut s);
        assert_eq!(
            s,
            "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>stanza exceeds the limit of 10 bytes</text>\
             <stanza-too-big xmlns='urn:xmpp:errors'/></stream:error>"
        );
    }

    #[test]
    fn error_reply_swaps_addresses() {
        let iq = Element::new("iq", ns::CLIENT)
            .with_attr("id", "1")
            .with_attr("from", "a@b/c")
            .with_attr("to", "b")
            .with_attr("type", "get")
            .with_child(Element::new("query", "urn:x"));
        let r = error_reply(
            &iq,
            &StanzaError::new(StanzaErrorCondition::ServiceUnavailable),
        );
        let mut s = String::new();
        r.write_in_stream(ns::CLIENT, &mut s);
        assert_eq!(
            s,
            "<iq id='1' to='a@b/c' from='b' type='error'><error type='cancel'>\
             <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        );
        let parsed = StanzaError::from_element(r.get_child("error", ns::CLIENT).unwrap()).unwrap();
        assert_eq!(parsed.condition, StanzaErrorCondition::ServiceUnavailable);
        assert_eq!(parsed.error_type, ErrorType::Cancel);
    }

    #[test]
    fn condition_names_round_trip() {
        for c in [
            "bad-format",
            "restricted-xml",
            "system-shutdown",
            "host-unknown",
        ] {
            assert_eq!(StreamErrorCondition::from_name(c).unwrap().as_str(), c);
        }
        assert_eq!(StanzaErrorCondition::from_name("nope"), None);
    }
}
