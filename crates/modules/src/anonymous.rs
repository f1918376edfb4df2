//! Anonymous hosts keep to themselves: no outbound federation unless the operator allows it
//! (`[[host]] anonymous_federation = true`).
//!
//! An anonymous account (SASL ANONYMOUS, RFC 4505; made at login by c2s, see
//! `starling_accounts::anonymous`) costs nothing to get, so it must not become a free relay
//! for spam and abuse towards other servers, which would hold this server responsible (Prosody's
//! `mod_auth_anonymous` and ejabberd's anonymous hosts refuse server-to-server traffic of such
//! users by default for the same reason).
//!
//! # Rule
//!
//! At [`HookPoint::ToRemote`] (a stanza for no local host), a stanza from an account of a
//! restricted anonymous host to a domain that is no component's (a component, such as a future
//! MUC service, is part of this server) is refused: the sending session gets `<not-allowed/>`
//! with a text (RFC 6120 §8.3.3.9; type `cancel`), and nothing leaves. Errors and IQ results are
//! never answered with an error (RFC 6120 §8.3.1); what the server sends on the account's behalf
//! from its bare JID (presence broadcasts, probes) is dropped without an answer. Local users and
//! components are reached as usual.
//!
//! Starling has no federation yet: a host with `anonymous_federation = true` gets the router's
//! `<remote-server-not-found/>` for the same stanzas, as every other user does today.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use starling_module_api::{Context, HookPoint, HookResult, Module, Registrar, StanzaHook};
use starling_proto::{Element, Jid, StanzaError, StanzaErrorCondition, StanzaKind, error_reply};

/// Before blocking's `ToRemote` hook would drop a blocked JID's stanza silently: the refusal is
/// the same either way, and the sender should hear why.
const PRIORITY: i32 = 1100;

/// The `<text/>` of the refusal.
pub const REFUSAL_TEXT: &str = "users of this anonymous host cannot reach other servers";

/// An anonymous host, as the module needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnonymousHost {
    pub domain: String,
    /// `anonymous_federation`: its users may reach other servers.
    pub federation: bool,
}

/// Refuses outbound federation to the accounts of anonymous hosts that do not allow it.
pub struct Anonymous {
    /// The anonymous hosts without `anonymous_federation`.
    restricted: HashSet<String>,
}

impl Anonymous {
    /// `None` when no host needs the rule (then the module is not loaded at all).
    pub fn new(hosts: &[AnonymousHost]) -> Option<Self> {
        let restricted: HashSet<String> = hosts
            .iter()
            .filter(|h| !h.federation)
            .map(|h| h.domain.clone())
            .collect();
        (!restricted.is_empty()).then_some(Anonymous { restricted })
    }

    async fn leaving(&self, ctx: &Context, stanza: &Element) -> HookResult {
        let Some(from) = stanza.attr("from").and_then(|f| Jid::new(f).ok()) else {
            return HookResult::Pass;
        };
        if from.node().is_none() || !self.restricted.contains(from.domain().as_str()) {
            return HookResult::Pass;
        }
        let Some(to) = stanza.attr("to").and_then(|t| Jid::new(t).ok()) else {
            return HookResult::Pass;
        };
        // A component is this server's own service (a MUC later): allowed.
        if ctx.components.serves(to.domain().as_str()) {
            return HookResult::Pass;
        }
        tracing::debug!(%from, %to, kind = stanza.name(), "anonymous account: outbound federation refused");
        let answers = !matches!(
            (stanza.name(), stanza.attr("type")),
            (_, Some("error")) | ("iq", Some("result"))
        );
        if answers
            && let Ok(full) = from.try_into_full()
            && let Some(entry) = ctx.sessions.get(&full).await
        {
            let err = StanzaError::new(StanzaErrorCondition::NotAllowed).with_text(REFUSAL_TEXT);
            // From the address it was for, as the router's own bounces are.
            ctx.send_to(&entry, error_reply(stanza, &err)).await;
        }
        HookResult::Handled
    }
}

impl Module for Anonymous {
    fn name(&self) -> &'static str {
        "anonymous"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        for kind in [StanzaKind::Message, StanzaKind::Presence, StanzaKind::Iq] {
            reg.stanza_hook(kind, HookPoint::ToRemote, PRIORITY, self.clone());
        }
    }
}

#[async_trait]
impl StanzaHook for Anonymous {
    async fn on_stanza(&self, ctx: &Context, point: HookPoint, stanza: &mut Element) -> HookResult {
        match point {
            HookPoint::ToRemote => self.leaving(ctx, stanza).await,
            _ => HookResult::Pass,
        }
    }
}
