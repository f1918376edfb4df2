//! The contract between Starling's core and its feature modules.
//!
//! A module is one feature (an RFC section or a XEP). It declares what it does, once, through a
//! [`Registrar`]: the IQ payloads it answers, the hooks it wants to see, the disco features and
//! identities it adds, the stream features it offers after binding. The core builds service
//! discovery from these lists, never from a hand-kept one, and dispatches stanzas with no
//! knowledge of any particular module.
//!
//! Modules reach the rest of the server only through a [`Context`]: the router (to route stanzas,
//! deliver them to local sessions through the one outbound path, emit [`Event`]s and await IQ
//! answers), the session registry (who is online, behind an async trait so a clustered registry
//! can replace the local one), the stores, and the component domains. `docs/hooks.md` lists every
//! registration call, hook point and event.

mod command_errors;
pub mod commands;
pub mod components;
pub mod events;
pub mod forms;
pub mod mam;
mod registrar;
mod session;

pub use components::{ComponentDomain, ComponentError, ComponentHandler, Components};
pub use events::{Event, EventListener};
pub use registrar::{
    BindInline, CAPS_NODE, Commands, DeliveredHook, DiscoNodeHandlers, DiscoNodes, HookPoint,
    HookRegistration, HookResult, Identity, IqHandler, IqOutcome, IqRegistration, IqRoute,
    IqTarget, IqType, Module, OutboundHook, OutboundRegistration, Registrar, ServerInfo,
    StanzaHook,
};
pub use session::{
    DEFAULT_MAX_QUEUED_BYTES, Delivered, Offer, Queued, Resources, SessionCommand, SessionEntry,
    SessionHandle, SessionId, SessionRegistry, presence_priority, stanza_weight,
};

use std::sync::Arc;

/// A random identifier (96 bits, URL-safe base64, 16 characters): stream ids, generated
/// resources, stream management tokens, archive ids (XEP-0359 asks them to be unique and
/// unguessable), ids of stanzas the server sends.
pub fn random_id() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 12];
    rand::fill(&mut bytes[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Parses XML the server stored itself (an offline message, a pending subscription request, a
/// vCard) back into an element, with the wire's restricted parser: modules never parse XML
/// themselves, and need nothing below this crate to read what they stored.
pub fn parse_stored(xml: &str) -> Result<Element, StoredXmlError> {
    starling_stream::parse_stored(xml).map_err(StoredXmlError)
}

/// Stored XML that does not parse (a damaged database).
#[derive(Debug, thiserror::Error)]
#[error("stored XML does not parse: {0}")]
pub struct StoredXmlError(starling_stream::DecodeError);
use std::time::Duration;

use async_trait::async_trait;
use starling_proto::{BareJid, Element, StanzaError, ns};
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
    /// full, never waiting and never closing the session ([`SessionHandle::offer`]). The outbound
    /// hooks run first: a stanza then refused for room ([`Offer::NoRoom`]) stays with the caller,
    /// who offers it again later, and the hooks see it again.
    async fn offer_to(&self, to: &SessionEntry, stanza: Element) -> Offer;
    /// The outbound path for one stanza of a bulk delivery from another task: waits while the
    /// session's queue is half full ([`SessionHandle::send_waiting`]). [`Offer::Queued`],
    /// [`Offer::Dropped`] or [`Offer::Gone`].
    async fn offer_waiting_to(&self, to: &SessionEntry, stanza: Element) -> Offer;
    /// Sends an IQ get or set from the server (or a module's own address) and waits at most
    /// `timeout` for its answer (RFC 6120 §8.2.3): the `result`, or the `error` as
    /// [`IqRequestError::Error`], also when the router itself answers (the recipient is gone,
    /// the domain unreachable). `id` is generated when absent, `from` is the server's domain
    /// when absent; only an answer with that id, from the request's `to` and to its `from`
    /// completes it. Nothing stays behind after a timeout or when the caller gives up waiting.
    async fn request_iq(&self, iq: Element, timeout: Duration) -> Result<Element, IqRequestError>;
    /// Tells every [`EventListener`], in registration order, awaiting each (see [`events`]).
    async fn emit(&self, event: Event);
}

/// Why [`StanzaRouter::request_iq`] has no result.
#[derive(Debug, thiserror::Error)]
pub enum IqRequestError {
    /// Not an `<iq/>` of type `get` or `set`, or its `from` is no JID.
    #[error("not an IQ request: {0}")]
    Invalid(&'static str),
    /// The request has no `to`, or one that is no JID (RFC 6120 §8.1.1: the server must know
    /// where it goes).
    #[error("the request has no valid 'to'")]
    NotRoutable,
    /// Another request with this id is waiting for its answer.
    #[error("a request with id '{0}' is already waiting")]
    DuplicateId(String),
    /// No answer within the time given.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The answer is an error (RFC 6120 §8.3): the whole `<iq type='error'/>`, from the
    /// recipient or from the router on its behalf.
    #[error("answered with an error")]
    Error(Element),
    /// The router is gone (the server is shutting down).
    #[error("the router is gone")]
    Shutdown,
}

impl IqRequestError {
    /// The stanza error of an [`IqRequestError::Error`] answer, if it carries a valid one.
    pub fn stanza_error(&self) -> Option<StanzaError> {
        match self {
            IqRequestError::Error(iq) => iq
                .get_child("error", ns::CLIENT)
                .and_then(StanzaError::from_element),
            _ => None,
        }
    }
}

/// What a module handler can reach.
#[derive(Clone)]
pub struct Context {
    pub router: Arc<dyn StanzaRouter>,
    pub sessions: Arc<dyn SessionRegistry>,
    pub stores: Stores,
    pub server: Arc<ServerInfo>,
    /// The component domains (internal services and, later, XEP-0114 components): disco#items
    /// lists them, and a subscription to a JID at one is deliverable.
    pub components: Arc<Components>,
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
