//! XEP-0054 vcard-temp: the server keeps one vCard per account and answers for it (§3).
//!
//! - get with no `to`, or to one's own bare JID: one's own vCard; an empty
//!   `<vCard xmlns='vcard-temp'/>` when none was ever set (§3.1 allows it or an error; the empty
//!   result spares clients an error path on first login);
//! - get to another local account's bare JID: its vCard, answered by the server (§3.3: never
//!   forwarded to the user's resources); `<service-unavailable/>` when it has none, the same
//!   answer as for an account that does not exist (§3.3: against directory harvesting; the
//!   router already gives it for unknown accounts);
//! - set of one's own: replaces it, empty result (§3.2: the whole vCard is sent every time);
//!   set with another account as `to`: `<forbidden/>` (§3.2);
//! - a vCard larger than [`MAX_VCARD_BYTES`] serialised: `<not-acceptable/>`, so one account
//!   cannot grow the database without bound (avatars belong in XEP-0084 or HTTP upload).
//!
//! The stored text is the `<vCard/>` element exactly as the client sent it (re-serialised), and a
//! get returns exactly that element. vCards are world-readable (§5): anyone who can address the
//! account may read it.

use std::sync::Arc;

use async_trait::async_trait;
use starling_module_api::parse_stored;
use starling_module_api::{
    Context, IqHandler, IqOutcome, IqRoute, IqTarget, IqType, Module, Registrar,
};
use starling_proto::{Element, StanzaError, StanzaErrorCondition};

/// The `vcard-temp` namespace, also the disco feature (§4).
pub const NS: &str = "vcard-temp";

/// The largest vCard accepted, in bytes of its serialisation.
pub const MAX_VCARD_BYTES: usize = 64 * 1024;

pub struct Vcard;

impl Module for Vcard {
    fn name(&self) -> &'static str {
        "vcard"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        reg.iq(IqTarget::Account, IqType::Get, NS, "vCard", self.clone());
        reg.iq(IqTarget::Account, IqType::Set, NS, "vCard", self);
        // §4: an entity supporting vcard-temp MUST advertise the feature; the server supports it
        // (its example asks the server's domain), and answers for every account.
        reg.server_feature(NS);
        reg.account_feature(NS);
    }
}

fn error(condition: StanzaErrorCondition) -> IqOutcome {
    IqOutcome::Error(StanzaError::new(condition))
}

#[async_trait]
impl IqHandler for Vcard {
    async fn handle_iq(&self, ctx: &Context, req: IqRoute<'_>) -> IqOutcome {
        // Registered for IqTarget::Account only: the router always names the account.
        let Some(account) = req.account else {
            return error(StanzaErrorCondition::ServiceUnavailable);
        };
        let Some(node) = account.node() else {
            return error(StanzaErrorCondition::ServiceUnavailable);
        };
        let (localpart, domain) = (node.as_str(), account.domain().as_str());
        let own = req.from.to_bare() == *account;

        if req.iq.attr("type") == Some("set") {
            if !own {
                // §3.2: only one's own vCard can be set.
                return error(StanzaErrorCondition::Forbidden);
            }
            let text = req.payload.to_xml();
            if text.len() > MAX_VCARD_BYTES {
                return IqOutcome::Error(
                    StanzaError::new(StanzaErrorCondition::NotAcceptable)
                        .with_text(format!("the vCard exceeds {MAX_VCARD_BYTES} bytes")),
                );
            }
            return match ctx.stores.vcards.set_vcard(localpart, domain, &text).await {
                Ok(()) => {
                    ctx.router
                        .emit(starling_module_api::Event::VcardChanged(account.clone()))
                        .await;
                    IqOutcome::Result(None)
                }
                Err(e) => {
                    tracing::error!(account = %account, error = %e, "storing a vCard failed");
                    error(StanzaErrorCondition::InternalServerError)
                }
            };
        }

        match ctx.stores.vcards.vcard(localpart, domain).await {
            Ok(Some(text)) => match parse_stored(&text) {
                Ok(vcard) => IqOutcome::Result(Some(vcard)),
                Err(e) => {
                    tracing::error!(account = %account, error = %e, "stored vCard unreadable");
                    error(StanzaErrorCondition::InternalServerError)
                }
            },
            // §3.1: an empty vCard for one's own.
            Ok(None) if own => IqOutcome::Result(Some(Element::new("vCard", NS))),
            // §3.3: the same error as for an account that does not exist.
            Ok(None) => error(StanzaErrorCondition::ServiceUnavailable),
            Err(e) => {
                tracing::error!(account = %account, error = %e, "loading a vCard failed");
                error(StanzaErrorCondition::InternalServerError)
            }
        }
    }
}
