//! The c2s negotiation state machine (RFC 6120 §4–§7), as data: which top-level element is
//! acceptable in which phase, and what happens to the others. The session performs the actions;
//! this module only decides, so every legal and illegal transition is tested in one table.

use starling_proto::{Element, StreamErrorCondition, ns};

/// Where a client stream is in its negotiation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for a stream header: at connect, after TLS, after SASL success.
    AwaitHeader,
    /// Features sent; not authenticated.
    PreAuth,
    /// A SASL exchange is in progress.
    Sasl,
    /// A XEP-0388 SASL2 exchange is in progress.
    Sasl2,
    /// Authenticated and the stream restarted; no resource bound yet.
    AwaitBind,
    /// A resource is bound: stanzas flow.
    Bound,
}

/// A top-level element, classified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    StartTls,
    Auth,
    SaslResponse,
    SaslAbort,
    /// XEP-0388 `<authenticate xmlns='urn:xmpp:sasl:2'/>`
    Sasl2Authenticate,
    /// XEP-0388 `<response xmlns='urn:xmpp:sasl:2'/>`
    Sasl2Response,
    /// XEP-0388 `<abort xmlns='urn:xmpp:sasl:2'/>`
    Sasl2Abort,
    /// `<iq type='set'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`
    Bind,
    /// `<iq type='set'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>` (RFC 3921 legacy)
    Session,
    /// An `<iq/>` whose payload is XEP-0077's `<query xmlns='jabber:iq:register'/>` or
    /// XEP-0445's `<preauth xmlns='urn:xmpp:pars:0'/>`: in-band registration before
    /// authentication; an ordinary stanza once bound.
    Register,
    /// message, presence or iq in `jabber:client`
    Stanza,
    /// XEP-0198 `<enable/>`
    SmEnable,
    /// XEP-0198 `<resume/>`
    SmResume,
    /// XEP-0198 `<a/>`
    SmAck,
    /// XEP-0198 `<r/>`
    SmRequest,
    /// XEP-0352 `<active/>` or `<inactive/>`
    Csi,
    /// message, presence or iq in another namespace than the stream's content namespace
    WrongNamespace,
    /// any other top-level element
    Unknown,
}

impl Input {
    pub fn classify(e: &Element) -> Input {
        match (e.ns(), e.name()) {
            (ns::TLS, "starttls") => Input::StartTls,
            (ns::SASL, "auth") => Input::Auth,
            (ns::SASL, "response") => Input::SaslResponse,
            (ns::SASL, "abort") => Input::SaslAbort,
            (ns::SASL2, "authenticate") => Input::Sasl2Authenticate,
            (ns::SASL2, "response") => Input::Sasl2Response,
            (ns::SASL2, "abort") => Input::Sasl2Abort,
            (ns::CLIENT, "iq") => {
                let mut children = e.children();
                match (children.next(), children.next()) {
                    (Some(c), None) if c.is("bind", ns::BIND) => Input::Bind,
                    (Some(c), None) if c.is("session", ns::SESSION) => Input::Session,
                    (Some(c), None) if c.is("query", ns::REGISTER) || c.is("preauth", ns::PARS) => {
                        Input::Register
                    }
                    _ => Input::Stanza,
                }
            }
            (ns::CLIENT, "message" | "presence") => Input::Stanza,
            (ns::SM, "enable") => Input::SmEnable,
            (ns::SM, "resume") => Input::SmResume,
            (ns::SM, "a") => Input::SmAck,
            (ns::SM, "r") => Input::SmRequest,
            (ns::CSI, "active" | "inactive") => Input::Csi,
            (_, "message" | "presence" | "iq") => Input::WrongNamespace,
            _ => Input::Unknown,
        }
    }
}

/// What to do with an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it.
    Accept,
    /// Answer `<failure><encryption-required/></failure>` (in the namespace of the SASL profile
    /// the input belongs to).
    SaslEncryptionRequired,
    /// A SASL element outside an exchange: `<failure><malformed-request/></failure>`
    /// (or `<aborted/>` for `<abort/>`).
    SaslOutOfSequence,
    /// Answer `<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>` and close (RFC 6120 §5.4.2.2).
    TlsFailure,
    /// An IQ error `<not-allowed/>` (a second bind).
    NotAllowed,
    /// Close the stream with this error.
    StreamError(StreamErrorCondition),
}

/// Decides what `input` means in `phase`. `secure`: TLS is in place; `tls_offered`: STARTTLS is
/// possible on this connection; `tls_required`: authentication needs TLS.
pub fn admit(
    phase: Phase,
    secure: bool,
    tls_offered: bool,
    tls_required: bool,
    input: Input,
) -> Verdict {
    use Input as I;
    use StreamErrorCondition as C;
    use Verdict as V;
    match (phase, input) {
        (_, I::WrongNamespace) => V::StreamError(C::InvalidNamespace),
        (_, I::Unknown) => V::StreamError(C::UnsupportedStanzaType),
        // The decoder never yields an element before a header.
        (Phase::AwaitHeader, _) => V::StreamError(C::NotWellFormed),

        (Phase::PreAuth, I::StartTls) if !secure && tls_offered => V::Accept,
        (Phase::PreAuth, I::StartTls) => V::TlsFailure,
        (Phase::PreAuth, I::Auth) if !secure && tls_required => V::SaslEncryptionRequired,
        (Phase::PreAuth, I::Auth) => V::Accept,
        (Phase::PreAuth, I::SaslResponse | I::SaslAbort) => V::SaslOutOfSequence,
        // XEP-0077 §3.1 and its security considerations (§13: not "unless the channel ... has
        // been secured"): registration before authentication, only over TLS.
        (Phase::PreAuth, I::Register) if secure => V::Accept,
        // XEP-0388 §4: SASL2 only after TLS, whatever `require_encryption` says.
        (Phase::PreAuth, I::Sasl2Authenticate) if !secure => V::SaslEncryptionRequired,
        (Phase::PreAuth, I::Sasl2Authenticate) => V::Accept,
        (Phase::PreAuth, I::Sasl2Response | I::Sasl2Abort) => V::SaslOutOfSequence,
        // RFC 6120 §4.9.3.12 / §8.1.1: nothing else before authentication.
        (
            Phase::PreAuth,
            I::Bind
            | I::Session
            | I::Register
            | I::Stanza
            | I::SmEnable
            | I::SmResume
            | I::SmAck
            | I::SmRequest
            | I::Csi,
        ) => V::StreamError(C::NotAuthorized),

        (Phase::Sasl, I::SaslResponse | I::SaslAbort) => V::Accept,
        // A new <auth/> in the middle of an exchange aborts it (RFC 6120 §6.4.2 allows one at a time).
        (Phase::Sasl, I::Auth) => V::SaslOutOfSequence,
        (Phase::Sasl, _) => V::StreamError(C::NotAuthorized),

        (Phase::Sasl2, I::Sasl2Response | I::Sasl2Abort) => V::Accept,
        // XEP-0388 §2.5 "During Authentication": anything else and the server MUST disconnect.
        (Phase::Sasl2, _) => V::StreamError(C::PolicyViolation),

        (Phase::AwaitBind, I::Bind) => V::Accept,
        // XEP-0198 and XEP-0352 after authentication: the handlers answer what comes too early
        // or too late (`<failed><unexpected-request/></failed>` for <enable/> before binding,
        // XEP-0198 §3; <resume/> after binding, §5).
        (
            Phase::AwaitBind | Phase::Bound,
            I::SmEnable | I::SmResume | I::SmAck | I::SmRequest | I::Csi,
        ) => V::Accept,
        // Stanzas (and the legacy session request) need a bound resource first.
        (Phase::AwaitBind, I::Session | I::Stanza | I::Register) => {
            V::StreamError(C::NotAuthorized)
        }
        // XEP-0388 §3.8: after success, another <authenticate/> is a stream error.
        (
            Phase::AwaitBind | Phase::Bound,
            I::StartTls
            | I::Auth
            | I::SaslResponse
            | I::SaslAbort
            | I::Sasl2Authenticate
            | I::Sasl2Response
            | I::Sasl2Abort,
        ) => V::StreamError(C::PolicyViolation),

        (Phase::Bound, I::Stanza | I::Session | I::Register) => V::Accept,
        (Phase::Bound, I::Bind) => V::NotAllowed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Input as I;
    use Phase as P;
    use StreamErrorCondition as C;
    use Verdict as V;

    #[test]
    fn classify() {
        let iq_bind = Element::new("iq", ns::CLIENT)
            .with_attr("type", "set")
            .with_child(Element::new("bind", ns::BIND));
        assert_eq!(Input::classify(&iq_bind), I::Bind);
        let iq_sess =
            Element::new("iq", ns::CLIENT).with_child(Element::new("session", ns::SESSION));
        assert_eq!(Input::classify(&iq_sess), I::Session);
        let iq_ping = Element::new("iq", ns::CLIENT).with_child(Element::new("ping", ns::PING));
        assert_eq!(Input::classify(&iq_ping), I::Stanza);
        let iq_reg = Element::new("iq", ns::CLIENT).with_child(Element::new("query", ns::REGISTER));
        assert_eq!(Input::classify(&iq_reg), I::Register);
        let iq_preauth =
            Element::new("iq", ns::CLIENT).with_child(Element::new("preauth", ns::PARS));
        assert_eq!(Input::classify(&iq_preauth), I::Register);
        assert_eq!(
            Input::classify(&Element::new("message", ns::SERVER)),
            I::WrongNamespace
        );
        assert_eq!(
            Input::classify(&Element::new("message", "")),
            I::WrongNamespace
        );
        assert_eq!(
            Input::classify(&Element::new("starttls", ns::TLS)),
            I::StartTls
        );
        assert_eq!(Input::classify(&Element::new("auth", ns::SASL)), I::Auth);
        assert_eq!(
            Input::classify(&Element::new("authenticate", ns::SASL2)),
            I::Sasl2Authenticate
        );
        assert_eq!(
            Input::classify(&Element::new("response", ns::SASL2)),
            I::Sasl2Response
        );
        assert_eq!(
            Input::classify(&Element::new("abort", ns::SASL2)),
            I::Sasl2Abort
        );
        // SASL2's element names in the legacy namespace and the other way round.
        assert_eq!(
            Input::classify(&Element::new("authenticate", ns::SASL)),
            I::Unknown
        );
        assert_eq!(
            Input::classify(&Element::new("auth", ns::SASL2)),
            I::Unknown
        );
        assert_eq!(
            Input::classify(&Element::new("foo", ns::CLIENT)),
            I::Unknown
        );
        assert_eq!(
            Input::classify(&Element::new("stream", ns::STREAM)),
            I::Unknown
        );
        assert_eq!(
            Input::classify(&Element::new("enable", ns::SM)),
            I::SmEnable
        );
        assert_eq!(
            Input::classify(&Element::new("resume", ns::SM)),
            I::SmResume
        );
        assert_eq!(Input::classify(&Element::new("a", ns::SM)), I::SmAck);
        assert_eq!(Input::classify(&Element::new("r", ns::SM)), I::SmRequest);
        assert_eq!(Input::classify(&Element::new("inactive", ns::CSI)), I::Csi);
        assert_eq!(
            Input::classify(&Element::new("enabled", ns::SM)),
            I::Unknown
        );
    }

    /// Every phase × input, with TLS state (secure, offered, required).
    #[test]
    fn transition_table() {
        let all_inputs = [
            I::StartTls,
            I::Auth,
            I::SaslResponse,
            I::SaslAbort,
            I::Sasl2Authenticate,
            I::Sasl2Response,
            I::Sasl2Abort,
            I::Bind,
            I::Session,
            I::Register,
            I::Stanza,
            I::SmEnable,
            I::SmResume,
            I::SmAck,
            I::SmRequest,
            I::Csi,
            I::WrongNamespace,
            I::Unknown,
        ];
        // (phase, secure, offered, required, input, expected)
        let rows: &[(P, bool, bool, bool, I, V)] = &[
            (P::PreAuth, false, true, true, I::StartTls, V::Accept),
            (P::PreAuth, true, true, true, I::StartTls, V::TlsFailure),
            (P::PreAuth, false, false, false, I::StartTls, V::TlsFailure),
            (
                P::PreAuth,
                false,
                true,
                true,
                I::Auth,
                V::SaslEncryptionRequired,
            ),
            (P::PreAuth, false, true, false, I::Auth, V::Accept),
            (P::PreAuth, true, true, true, I::Auth, V::Accept),
            (
                P::PreAuth,
                true,
                true,
                true,
                I::SaslResponse,
                V::SaslOutOfSequence,
            ),
            (
                P::PreAuth,
                true,
                true,
                true,
                I::SaslAbort,
                V::SaslOutOfSequence,
            ),
            (
                P::PreAuth,
                true,
                true,
                true,
                I::Bind,
                V::StreamError(C::NotAuthorized),
            ),
            (
                P::PreAuth,
                true,
                true,
                true,
                I::Session,
                V::StreamError(C::NotAuthorized),
            ),
            (
                P::PreAuth,
                false,
                true,
                true,
                I::Stanza,
                V::StreamError(C::NotAuthorized),
            ),
            (
                P::PreAuth,
                true,
                true,
                true,
                I::Stanza,
                V::StreamError(C::NotAuthorized),
            ),
            // XEP-0077 §3.1 and §13: registration before authentication, over TLS only.
            (P::PreAuth, true, true, true, I::Register, V::Accept),
            (P::PreAuth, true, false, false, I::Register, V::Accept),
            (
                P::PreAuth,
                false,
                false,
                false,
                I::Register,
                V::StreamError(C::NotAuthorized),
            ),
            (
                P::PreAuth,
                false,
                true,
                true,
                I::Register,
                V::StreamError(C::NotAuthorized),
            ),
            (
                P::Sasl,
                true,
                true,
                true,
                I::Register,
                V::StreamError(C::NotAuthorized),
            ),
            (
                P::AwaitBind,
                true,
                true,
                true,
                I::Register,
                V::StreamError(C::NotAuthorized),
            ),
            (P::Bound, true, true, true, I::Register, V::Accept),
            (P::Sasl, true, true, true, I::SaslResponse, V::Accept),
            (P::Sasl, true, true, true, I::SaslAbort, V::Accept),
            (P::Sasl, true, true, true, I::Auth, V::SaslOutOfSequence),
            (
                P::Sasl,
                true,
                true,
                true,
                I::StartTls,
                V::StreamError(C::NotAuthorized),
            ),
            (
                P::Sasl,
                true,
                true,
                true,
                I::Bind,
                V::StreamError(C::NotAuthorized),
            ),
            (
                P::Sasl,
                true,
                true,
                true,
                I::Stanza,
                V::StreamError(C::NotAuthorized),
            ),
            (P::AwaitBind, true, true, true, I::Bind, V::Accept),
            (P::AwaitBind, true, true, true, I::SmResume, V::Accept),
            (P::AwaitBind, true, true, true, I::SmEnable, V::Accept),
            (P::Bound, true, true, true, I::SmEnable, V::Accept),
            (P::Bound, true, true, true, I::SmAck, V::Accept),
            (P::Bound, true, true, true, I::SmRequest, V::Accept),
            (P::Bound, true, true, true, I::Csi, V::Accept),
            (
                P::PreAuth,
                true,
                true,
                true,
                I::SmResume,
                V::StreamError(C::NotAuthorized),
            ),
            (
                P::Sasl,
                true,
                true,
                true,
                I::SmEnable,
                V::StreamError(C::NotAuthorized),
            ),
            (
                P::AwaitBind,
                true,
                true,
                true,
                I::Session,
                V::StreamError(C::NotAuthorized),
            ),
            (
                P::AwaitBind,
                true,
                true,
                true,
                I::Stanza,
                V::StreamError(C::NotAuthorized),
            ),
            (
                P::AwaitBind,
                true,
                true,
                true,
                I::StartTls,
                V::StreamError(C::PolicyViolation),
            ),
            (
                P::AwaitBind,
                true,
                true,
                true,
                I::Auth,
                V::StreamError(C::PolicyViolation),
            ),
            // XEP-0388: SASL2 needs TLS; its responses only during its exchange.
            (
                P::PreAuth,
                true,
                true,
                true,
                I::Sasl2Authenticate,
                V::Accept,
            ),
            (
                P::PreAuth,
                false,
                true,
                false,
                I::Sasl2Authenticate,
                V::SaslEncryptionRequired,
            ),
            (
                P::PreAuth,
                true,
                true,
                true,
                I::Sasl2Response,
                V::SaslOutOfSequence,
            ),
            (
                P::PreAuth,
                true,
                true,
                true,
                I::Sasl2Abort,
                V::SaslOutOfSequence,
            ),
            (P::Sasl2, true, true, true, I::Sasl2Response, V::Accept),
            (P::Sasl2, true, true, true, I::Sasl2Abort, V::Accept),
            // §2.5: nothing else during the exchange, legacy SASL and stanzas included.
            (
                P::Sasl2,
                true,
                true,
                true,
                I::Sasl2Authenticate,
                V::StreamError(C::PolicyViolation),
            ),
            (
                P::Sasl2,
                true,
                true,
                true,
                I::Auth,
                V::StreamError(C::PolicyViolation),
            ),
            (
                P::Sasl2,
                true,
                true,
                true,
                I::Stanza,
                V::StreamError(C::PolicyViolation),
            ),
            (
                P::Sasl2,
                true,
                true,
                true,
                I::SmResume,
                V::StreamError(C::PolicyViolation),
            ),
            // A legacy exchange does not take SASL2 elements.
            (
                P::Sasl,
                true,
                true,
                true,
                I::Sasl2Response,
                V::StreamError(C::NotAuthorized),
            ),
            // §3.8: a second authentication after success is a stream error.
            (
                P::AwaitBind,
                true,
                true,
                true,
                I::Sasl2Authenticate,
                V::StreamError(C::PolicyViolation),
            ),
            (
                P::Bound,
                true,
                true,
                true,
                I::Sasl2Authenticate,
                V::StreamError(C::PolicyViolation),
            ),
            (
                P::Bound,
                true,
                true,
                true,
                I::Sasl2Response,
                V::StreamError(C::PolicyViolation),
            ),
            (P::Bound, true, true, true, I::Stanza, V::Accept),
            (P::Bound, true, true, true, I::Session, V::Accept),
            (P::Bound, true, true, true, I::Bind, V::NotAllowed),
            (
                P::Bound,
                true,
                true,
                true,
                I::StartTls,
                V::StreamError(C::PolicyViolation),
            ),
            (
                P::Bound,
                true,
                true,
                true,
                I::Auth,
                V::StreamError(C::PolicyViolation),
            ),
            (
                P::Bound,
                true,
                true,
                true,
                I::SaslResponse,
                V::StreamError(C::PolicyViolation),
            ),
        ];
        for &(phase, secure, offered, required, input, expected) in rows {
            assert_eq!(
                admit(phase, secure, offered, required, input),
                expected,
                "{phase:?} secure={secure} offered={offered} required={required} {input:?}"
            );
        }
        // In every phase, a stanza in a foreign namespace and an unknown element end the stream.
        for phase in [
            P::AwaitHeader,
            P::PreAuth,
            P::Sasl,
            P::Sasl2,
            P::AwaitBind,
            P::Bound,
        ] {
            assert_eq!(
                admit(phase, true, true, true, I::WrongNamespace),
                V::StreamError(C::InvalidNamespace)
            );
            assert_eq!(
                admit(phase, true, true, true, I::Unknown),
                V::StreamError(C::UnsupportedStanzaType)
            );
        }
        // Nothing is accepted before a header.
        for input in all_inputs {
            assert!(matches!(
                admit(P::AwaitHeader, false, true, true, input),
                V::StreamError(_)
            ));
        }
        // Only a bound stream accepts stanzas.
        for phase in [P::AwaitHeader, P::PreAuth, P::Sasl, P::Sasl2, P::AwaitBind] {
            for (secure, offered, required) in [
                (false, true, true),
                (true, true, true),
                (false, false, false),
            ] {
                assert_ne!(
                    admit(phase, secure, offered, required, I::Stanza),
                    V::Accept
                );
            }
        }
    }
}
