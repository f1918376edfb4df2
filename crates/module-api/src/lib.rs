//! The contract between Starling's core and its feature modules.
//!
//! A module is one feature (an RFC section or a XEP). It declares what it does, once, through a
//! [`Registrar`]: the IQ payloads it answers, the hooks it wants to see, the disco features and
//! identities it adds, the stream features it offers after binding. The core builds service
//! discovery from these lists, never from a hand-kept one, and dispatches stanzas with no
//! knowledge of any particular module.
//!
//! Modules reach the rest of the server only through a [`Context`]: the router (to send stanzas),
//! the session registry (who is online, behind a trait so a clustered registry can replace the
//! local one), and the stores.

pub mod events;
mod registrar;
mod session;

pub use events::{Event, EventListener};
pub use registrar::{
    CAPS_NODE, DeliveredHook, HookPoint, HookRegistration, HookResult, Identity, IqHandler,
    IqOutcome, IqRegistration, IqRoute, IqTarget, IqType, Module, OutboundHook,
    OutboundRegistration, Registrar, ServerInfo, StanzaHook,
};
pub use session::{
    DEFAULT_MAX_QUEUED_BYTES, Delivered, Offer, Queued, SessionCommand, SessionEntry,
    SessionHandle, SessionId, SessionRegistry, presence_priority, stanza_weight,
};

use std::sync::Arc;

use async_trait::async_trait;
use starling_proto::{BareJid, Element};
use starling_storage::Stores;

/// Sends stanzas into the server: to local sessions, to the server's own handlers, and later to
/// other servers. The `from` of a stanza given here is trusted: callers stamp it.
#[async_trait]
pub trait StanzaRouter: Send + Sync {
    async fn route(&self, stanza: Element);
    /// The one outbound path: runs the outbound hooks for the session `to` (see
    /// [`OutboundHook`]), then queues the stanza to it. Every stanza for a local session goes
    /// this way, the router's own deliveries included. Hands the stanza back when the session
    /// is gone, closing, or its queue is full (then it is told to close; see
    /// [`SessionHandle::deliver`]); a caller to whom that does not matter uses
    /// [`Context::send_to`].
    async fn deliver_to(&self, to: &SessionEntry, stanza: Element) -> Result<Delivered, Element>;
    /// The outbound path for one stanza of a bulk delivery from the session's own task (an
    /// offline backlog at initial presence): queued only while the queue is less than half
    /// full, never waiting and never closing the session ([`SessionHandle::offer`]).
    async fn offer_to(&self, to: &SessionEntry, stanza: Element) -> Offer;
    /// The outbound path for one stanza of a bulk delivery from another task: waits while the
    /// session's queue is half full ([`SessionHandle::send_waiting`]). [`Offer::Queued`],
    /// [`Offer::Dropped`] or [`Offer::Gone`].
    async fn offer_waiting_to(&self, to: &SessionEntry, stanza: Element) -> Offer;
    /// Tells every [`EventListener`], in registration order, awaiting each (see [`events`]).
    async fn emit(&self, event: Event);
}

/// What a module handler can reach.
#[derive(Clone)]
pub struct Context {
    pub router: Arc<dyn StanzaRouter>,
    pub sessions: Arc<dyn SessionRegistry>,
    pub stores: Stores,
    pub server: Arc<ServerInfo>,
}

impl Context {
    /// Delivers through the outbound path ([`StanzaRouter::deliver_to`]), for callers to whom a
    /// stanza the session cannot take does not matter (presence broadcasts, roster pushes to a
    /// session that is closing anyway): it is dropped.
    pub async fn send_to(&self, to: &SessionEntry, stanza: Element) {
        if self.router.deliver_to(to, stanza).await.is_err() {
            tracing::trace!(to = %to.jid, "session cannot take it; dropped");
        }
    }

    /// Whether `domain` is one of this server's virtual hosts.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.server.domains.iter().any(|d| d == domain)
    }

    /// Whether the account exists (on a local domain).
    pub async fn account_exists(&self, jid: &BareJid) -> bool {
        let Some(node) = jid.node() else {
            return false;
        };
        if !self.is_local_domain(jid.domain().as_str()) {
            return false;
        }
        match self
            .stores
            .accounts
            .account_exists(node.as_str(), jid.domain().as_str())
            .await
        {
            Ok(exists) => exists,
            Err(e) => {
                tracing::error!(error = %e, "account lookup failed");
                false
            }
        }
    }
}
