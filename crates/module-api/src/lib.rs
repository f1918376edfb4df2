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
    CAPS_NODE, HookPoint, HookRegistration, HookResult, Identity, IqHandler, IqOutcome,
    IqRegistration, IqRoute, IqTarget, IqType, Module, Registrar, ServerInfo, StanzaHook,
};
pub use session::{
    DEFAULT_MAX_QUEUED_BYTES, Offer, Queued, SessionCommand, SessionEntry, SessionHandle,
    SessionId, SessionRegistry, presence_priority, stanza_weight,
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
