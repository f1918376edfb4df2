//! Routing: from a stamped stanza to the sessions or handlers that should see it.
//!
//! The envelope alone decides where a stanza goes (RFC 6120 §10, RFC 6121 §8); payloads are only
//! parsed by the module that handles them. [`Router`] holds the session registry (a trait object, so a
//! clustered registry can replace [`LocalRegistry`]), the IQ handler table built from module
//! registrations, and applies the RFC's default rules when no handler claims a stanza:
//! - to a local full JID: that session, else as if to the bare JID (§8.5.3.2);
//! - to a local bare JID: messages to the available resources with the highest non-negative priority
//!   (§8.5.2.1.1), IQs answered by the server on the account's behalf or `<service-unavailable/>`
//!   (§8.5.1), presence dropped until the presence module handles it;
//! - to an account that does not exist: `<service-unavailable/>` for messages and IQs, silence for
//!   presence (§8.5.1, to not reveal whether the account exists);
//! - to a local domain: IQs to the handler table or `<service-unavailable/>` (RFC 6120 §8.4);
//! - to another domain: the server-to-server service ([`Components::remote`]), or
//!   `<remote-server-not-found/>` when federation is off.
//!
//! An error is never answered with an error (RFC 6120 §8.3.1).
//!
//! A `to` written in a non-canonical form (`ALICE@LOCALHOST`, fullwidth letters) is parsed once,
//! normalised (RFC 7622 §3.2, RFC 6122 stringprep, through the `jid` crate) and written back in
//! its canonical form before any hook or recipient sees the stanza: routing already compared
//! normalised JIDs, and now what is delivered says the same address it was routed by.

mod registry;

pub use registry::LocalRegistry;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use starling_module_api::{
    BindInline, ComponentError, Components, Context, Delivered, DeliveredHook, Event,
    EventListener, HookPoint, HookRegistration, HookResult, IqHandler, IqOutcome, IqRequestError,
    IqRoute, IqTarget, IqType, Module, Offer, OutboundRegistration, Registrar, Resources,
    ServerInfo, SessionEntry, SessionRegistry, StanzaRouter,
};
use starling_proto::{
    BareJid, Element, FullJid, Jid, StanzaError, StanzaErrorCondition, StanzaKind, error_reply,
};
use starling_storage::Stores;
use tokio::sync::oneshot;

type IqKey = (IqTarget, IqType, String, String);

/// Why the router cannot start.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// A module registered a component domain that is a virtual host, or one registered twice.
    #[error("component domain: {0}")]
    Component(#[from] ComponentError),
    /// Two modules registered an ad-hoc command (XEP-0050) with the same node.
    #[error("the ad-hoc command node {0:?} is registered twice")]
    DuplicateCommand(String),
}

/// The stanza router and module host.
pub struct Router {
    ctx: Context,
    iq_handlers: HashMap<IqKey, Arc<dyn IqHandler>>,
    /// XEP-0386 Bind2 inline features by namespace.
    bind_inline: HashMap<&'static str, Arc<dyn BindInline>>,
    /// Event listeners, in registration order.
    listeners: Vec<Arc<dyn EventListener>>,
    /// Stanza hooks by (kind, point), highest priority first.
    hooks: HashMap<(StanzaKind, HookPoint), Vec<HookRegistration>>,
    /// Outbound hooks by kind ([`kind_index`]), highest priority first.
    outbound: [Vec<OutboundRegistration>; 3],
    /// Whether any outbound hook exists: without one, the outbound path is the queueing alone.
    any_outbound: bool,
    /// Told where messages were delivered, in registration order.
    delivered: Vec<Arc<dyn DeliveredHook>>,
    /// Server-originated IQ requests waiting for their answer, by id (see
    /// [`Router::request_iq`]). A lock held only for a map operation.
    pending: Mutex<HashMap<String, PendingIq>>,
    /// Makes generated IQ ids and pending entries unique.
    next_iq: AtomicU64,
}

/// A request of [`Router::request_iq`] waiting for its answer.
struct PendingIq {
    /// Tells this entry from a later one with the same id.
    serial: u64,
    /// Whom it was sent to: the answer must come from there (RFC 6120 §8.2.3).
    to: Jid,
    /// Whom it was sent from: the answer must be addressed there.
    from: Jid,
    answer: oneshot::Sender<Element>,
}

/// Removes a pending request when its waiter is done, answered or not (timed out, or the
/// caller's future dropped), so that nothing is left behind.
struct PendingGuard<'a> {
    router: &'a Router,
    id: String,
    serial: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        let mut pending = self.router.pending_map();
        if pending
            .get(&self.id)
            .is_some_and(|p| p.serial == self.serial)
        {
            pending.remove(&self.id);
        }
    }
}

/// The index of a stanza kind in per-kind arrays.
fn kind_index(kind: StanzaKind) -> usize {
    match kind {
        StanzaKind::Message => 0,
        StanzaKind::Presence => 1,
        StanzaKind::Iq => 2,
    }
}

/// `StanzaRouter` for modules: a weak reference, so the router and its context do not keep each
/// other alive.
struct WeakRouter(Weak<Router>);

#[async_trait]
impl StanzaRouter for WeakRouter {
    async fn route(&self, stanza: Element) {
        if let Some(r) = self.0.upgrade() {
            r.route_stanza(stanza).await;
        }
    }

    async fn deliver_to(&self, to: &SessionEntry, stanza: Element) -> Result<Delivered, Element> {
        match self.0.upgrade() {
            Some(r) => r.deliver_to(to, stanza).await,
            None => Err(stanza),
        }
    }

    async fn offer_to(&self, to: &SessionEntry, stanza: Element) -> Offer {
        match self.0.upgrade() {
            Some(r) => r.offer_to(to, stanza).await,
            None => Offer::Gone,
        }
    }

    async fn offer_waiting_to(&self, to: &SessionEntry, stanza: Element) -> Offer {
        match self.0.upgrade() {
            Some(r) => r.offer_waiting_to(to, stanza).await,
            None => Offer::Gone,
        }
    }

    async fn emit(&self, event: Event) {
        if let Some(r) = self.0.upgrade() {
            r.emit(event).await;
        }
    }

    async fn request_iq(&self, iq: Element, timeout: Duration) -> Result<Element, IqRequestError> {
        match self.0.upgrade() {
            Some(r) => r.request_iq(iq, timeout).await,
            None => Err(IqRequestError::Shutdown),
        }
    }
}

impl Router {
    /// Builds the router: registers every module, then freezes what they declared. Fails when a
    /// module's component domain is a virtual host or taken twice (a configuration error).
    pub fn new(
        domains: Vec<String>,
        sessions: Arc<dyn SessionRegistry>,
        stores: Stores,
        modules: Vec<Arc<dyn Module>>,
    ) -> Result<Arc<Router>, RouterError> {
        let mut reg = Registrar::new();
        for m in modules {
            tracing::debug!(module = m.name(), "registering module");
            m.register(&mut reg);
        }
        let server = Arc::new(reg.server_info(domains));
        if let Some(node) = server.commands.duplicate() {
            return Err(RouterError::DuplicateCommand(node.to_owned()));
        }
        let mut iq_handlers = HashMap::new();
        for (target, ty, ns, name, h) in reg.take_iq_handlers() {
            iq_handlers.insert((target, ty, ns.to_owned(), name.to_owned()), h);
        }
        let listeners = reg.take_event_listeners();
        let bind_inline = reg.take_bind_inline().into_iter().collect();
        let mut hooks: HashMap<(StanzaKind, HookPoint), Vec<HookRegistration>> = HashMap::new();
        for h in reg.take_hooks() {
            hooks.entry((h.kind, h.point)).or_default().push(h);
        }
        for list in hooks.values_mut() {
            // Stable: equal priorities keep registration order.
            list.sort_by_key(|h| std::cmp::Reverse(h.priority));
        }
        let mut outbound: [Vec<OutboundRegistration>; 3] = Default::default();
        for h in reg.take_outbound_hooks() {
            outbound[kind_index(h.kind)].push(h);
        }
        for list in &mut outbound {
            list.sort_by_key(|h| std::cmp::Reverse(h.priority));
        }
        let any_outbound = outbound.iter().any(|l| !l.is_empty());
        let delivered = reg.take_delivered_hooks();
        let components = Arc::new(Components::new(server.domains.clone()));
        for (domain, handler) in reg.take_components() {
            for d in domain.resolve(&server.domains) {
                components.attach(&d, handler.clone())?;
            }
        }
        Ok(Arc::new_cyclic(|weak| Router {
            ctx: Context {
                router: Arc::new(WeakRouter(weak.clone())),
                sessions,
                stores,
                server,
                components,
            },
            iq_handlers,
            bind_inline,
            listeners,
            hooks,
            outbound,
            any_outbound,
            delivered,
            pending: Mutex::default(),
            next_iq: AtomicU64::new(1),
        }))
    }

    /// The component domains: external components (XEP-0114) attach and detach here at run
    /// time.
    pub fn components(&self) -> &Arc<Components> {
        &self.ctx.components
    }

    pub fn context(&self) -> &Context {
        &self.ctx
    }

    pub fn server_info(&self) -> &Arc<ServerInfo> {
        &self.ctx.server
    }

    /// Switches on the XEP-0386 Bind2 inline feature `request` asks for (a child of the
    /// client's `<bind/>`) for `session`, through the module that registered its namespace.
    /// `None` if no module did (c2s handles the features it owns itself); otherwise what goes
    /// into `<bound/>`, if anything.
    pub async fn bind_inline(
        &self,
        session: &SessionEntry,
        request: &Element,
    ) -> Option<Option<Element>> {
        let handler = self.bind_inline.get(request.ns())?;
        Some(handler.bind_inline(&self.ctx, session, request).await)
    }

    pub fn sessions(&self) -> &Arc<dyn SessionRegistry> {
        &self.ctx.sessions
    }

    fn pending_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, PendingIq>> {
        // Each operation is a single insert or remove: a panic elsewhere cannot leave the map
        // inconsistent.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Server-originated IQ requests still waiting for an answer (for tests and metrics).
    pub fn pending_iqs(&self) -> usize {
        self.pending_map().len()
    }

    /// Sends an IQ get or set and waits for its answer (see [`StanzaRouter::request_iq`]).
    pub async fn request_iq(
        &self,
        mut iq: Element,
        timeout: Duration,
    ) -> Result<Element, IqRequestError> {
        if StanzaKind::of(&iq) != Some(StanzaKind::Iq) {
            return Err(IqRequestError::Invalid("not an <iq/>"));
        }
        if !matches!(iq.attr("type"), Some("get" | "set")) {
            return Err(IqRequestError::Invalid(
                "the type is neither 'get' nor 'set'",
            ));
        }
        let Ok(Some(to)) = canonical_to(&mut iq) else {
            return Err(IqRequestError::NotRoutable);
        };
        let from = match iq.attr("from") {
            Some(f) => Jid::new(f).map_err(|_| IqRequestError::Invalid("'from' is no JID"))?,
            None => {
                let domain = self.server_domain_for(&to);
                iq.set_attr("from", domain.as_str());
                Jid::new(&domain).map_err(|_| IqRequestError::Invalid("no server domain"))?
            }
        };
        let serial = self.next_iq.fetch_add(1, Ordering::Relaxed);
        let id = match iq.attr("id") {
            Some(id) => id.to_owned(),
            None => {
                // RFC 6120 §8.2.3: unique within the stream; these are unique in the process.
                let id = format!("starling-iq-{serial}");
                iq.set_attr("id", id.as_str());
                id
            }
        };
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending_map();
            if pending.contains_key(&id) {
                return Err(IqRequestError::DuplicateId(id));
            }
            pending.insert(
                id.clone(),
                PendingIq {
                    serial,
                    to: to.clone(),
                    from,
                    answer: tx,
                },
            );
        }
        let _guard = PendingGuard {
            router: self,
            id,
            serial,
        };
        Box::pin(self.route_parsed(iq, Ok(Some(to)), None)).await;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) if answer.attr("type") == Some("error") => {
                Err(IqRequestError::Error(answer))
            }
            Ok(Ok(answer)) => Ok(answer),
            // The sender went without answering: only when the router itself goes.
            Ok(Err(_)) => Err(IqRequestError::Shutdown),
            Err(_) => Err(IqRequestError::Timeout(timeout)),
        }
    }

    /// The virtual host a server-originated request to `to` comes from: `to`'s own domain, or
    /// the host it is a subdomain of, else the default (first) host.
    fn server_domain_for(&self, to: &Jid) -> String {
        let domain = to.domain().as_str();
        let domains = &self.ctx.server.domains;
        domains
            .iter()
            .find(|d| {
                domain == d.as_str()
                    || domain
                        .strip_suffix(d.as_str())
                        .is_some_and(|rest| rest.ends_with('.'))
            })
            .or_else(|| domains.first())
            .cloned()
            .unwrap_or_default()
    }

    /// Completes the pending request `answer` (an IQ result or error) answers, if any: same id,
    /// from the request's `to`, addressed to its `from` (RFC 6120 §8.2.3). `to` is the answer's
    /// parsed `to`; without one, a client's answer is for its own server (RFC 6120 §8.1.1.1).
    /// Hands the answer back when it completes nothing.
    fn complete_request(
        &self,
        answer: Element,
        to: Option<&Jid>,
        client: Option<&FullJid>,
    ) -> Result<(), Element> {
        let Some(id) = answer.attr("id") else {
            return Err(answer);
        };
        let mut pending = self.pending_map();
        let Some(p) = pending.get(id) else {
            return Err(answer);
        };
        let from_ok = answer
            .attr("from")
            .and_then(|f| Jid::new(f).ok())
            .is_some_and(|f| f == p.to);
        let to_ok = match (to, client) {
            (Some(to), _) => *to == p.from,
            (None, Some(client)) => p.from.as_str() == client.domain().as_str(),
            (None, None) => false,
        };
        if !(from_ok && to_ok) {
            return Err(answer);
        }
        let Some(p) = pending.remove(id) else {
            return Err(answer);
        };
        drop(pending);
        // The waiter may have given up just now: then the answer is dropped, as it would be
        // after a timeout.
        let _ = p.answer.send(answer);
        Ok(())
    }

    /// Tells every event listener about `event`, in registration order, awaiting each. c2s
    /// emits [`Event::Bound`], [`Event::Resumed`] and [`Event::Ended`]; modules emit the rest
    /// through their context.
    pub async fn emit(&self, event: Event) {
        for l in &self.listeners {
            l.on_event(&self.ctx, &event).await;
        }
    }

    /// The one outbound path (see [`StanzaRouter::deliver_to`]): every stanza queued to a local
    /// session passes here. Without outbound hooks it is the queueing alone: no allocation, no
    /// copy; the hooks' work is boxed, so that without them the routing steps that await this
    /// stay small (see `each_routing_step_fits_the_allocators_cache`).
    pub async fn deliver_to(
        &self,
        to: &SessionEntry,
        stanza: Element,
    ) -> Result<Delivered, Element> {
        if self.any_outbound {
            return Box::pin(self.deliver_hooked(to, stanza)).await;
        }
        Self::queue(to, stanza)
    }

    async fn deliver_hooked(
        &self,
        to: &SessionEntry,
        mut stanza: Element,
    ) -> Result<Delivered, Element> {
        if self.run_outbound(to, &mut stanza).await {
            return Ok(Delivered::Dropped);
        }
        Self::queue(to, stanza)
    }

    /// The outbound path's last step, and the whole path while no outbound hook exists: queues
    /// the stanza to the session, or hands it back. Called by [`Self::deliver_to`] and, where a
    /// future per recipient would weigh on a routing step, directly when `any_outbound` is false.
    fn queue(to: &SessionEntry, stanza: Element) -> Result<Delivered, Element> {
        to.handle.deliver(stanza).map(|()| Delivered::Queued)
    }

    /// The outbound path for a bulk delivery from the session's own task (see
    /// [`StanzaRouter::offer_to`]).
    pub async fn offer_to(&self, to: &SessionEntry, mut stanza: Element) -> Offer {
        if self.any_outbound && Box::pin(self.run_outbound(to, &mut stanza)).await {
            return Offer::Dropped;
        }
        to.handle.offer(stanza)
    }

    /// The outbound path for a bulk delivery from another task, waiting for room (see
    /// [`StanzaRouter::offer_waiting_to`]).
    pub async fn offer_waiting_to(&self, to: &SessionEntry, mut stanza: Element) -> Offer {
        if self.any_outbound && Box::pin(self.run_outbound(to, &mut stanza)).await {
            return Offer::Dropped;
        }
        if to.handle.send_waiting(stanza).await {
            Offer::Queued
        } else {
            Offer::Gone
        }
    }

    /// Runs the outbound hooks of the stanza's kind for the session `to`; true if one dropped it.
    /// A session that is gone or closing is not asked about: it takes nothing, and the stanza is
    /// handed back unchanged, to go where it would if the session did not exist.
    async fn run_outbound(&self, to: &SessionEntry, stanza: &mut Element) -> bool {
        let Some(kind) = StanzaKind::of(stanza) else {
            return false;
        };
        if to.handle.is_closing() || to.handle.is_closed() {
            return false;
        }
        for h in &self.outbound[kind_index(kind)] {
            if h.hook.on_outbound(&self.ctx, &to.jid, stanza).await == HookResult::Handled {
                return true;
            }
        }
        false
    }

    /// Whether a delivered hook wants to hear of a message delivered to `to` (see
    /// [`DeliveredHook::wants`]): without one, nothing is copied for them.
    fn wants_delivered(&self, to: &FullJid) -> bool {
        self.delivered.iter().any(|h| h.wants(to))
    }

    /// The outbound path to one full JID's session, then, for a message queued there, the
    /// delivered hooks that want it. The message is copied for them only when one does.
    async fn deliver_reporting(
        &self,
        entry: &SessionEntry,
        stanza: Element,
    ) -> Result<Delivered, Element> {
        let copy = (stanza.name() == "message" && self.wants_delivered(&entry.jid))
            .then(|| stanza.clone());
        let delivered = self.deliver_to(entry, stanza).await;
        if let (Ok(Delivered::Queued), Some(message)) = (&delivered, copy) {
            Box::pin(self.run_delivered(&message, std::slice::from_ref(&entry.jid))).await;
        }
        delivered
    }

    /// Tells the delivered hooks that want it that `message` went to the sessions `to` (never
    /// empty).
    async fn run_delivered(&self, message: &Element, to: &[FullJid]) {
        let Some(first) = to.first() else {
            return;
        };
        for h in &self.delivered {
            if h.wants(first) {
                h.delivered(&self.ctx, message, to).await;
            }
        }
    }

    /// Runs the hooks registered for `kind` at `point`, each seeing the stanza as the ones before
    /// left it; true if one handled the stanza.
    async fn run_hooks(&self, kind: StanzaKind, point: HookPoint, stanza: &mut Element) -> bool {
        let Some(list) = self.hooks.get(&(kind, point)) else {
            return false;
        };
        for h in list {
            if h.hook.on_stanza(&self.ctx, point, stanza).await == HookResult::Handled {
                return true;
            }
        }
        false
    }

    /// Routes a stanza from a local client session; `from` has been stamped by the session.
    /// Timed for the routing latency histogram (`starling-metrics`; the clock is read only while
    /// a metrics recorder is installed).
    pub async fn route_from_client(&self, session: &FullJid, stanza: Element) {
        let started = starling_metrics::route_started();
        self.route_client_stanza(session, stanza).await;
        starling_metrics::route_done(started);
    }

    async fn route_client_stanza(&self, session: &FullJid, mut stanza: Element) {
        let to = canonical_to(&mut stanza);
        if let Some(kind) = StanzaKind::of(&stanza)
            && self
                .run_hooks(kind, HookPoint::FromClient, &mut stanza)
                .await
        {
            return;
        }
        // RFC 6120 §8.1.1.1: a stanza without 'to' is for the sender's own account.
        self.route_parsed(stanza, to, Some(session)).await;
    }

    /// Routes a stanza whose `from` is trusted.
    pub async fn route_stanza(&self, stanza: Element) {
        self.route_with_default(stanza, None).await;
    }

    async fn route_with_default(&self, mut stanza: Element, client: Option<&FullJid>) {
        let to = canonical_to(&mut stanza);
        self.route_parsed(stanza, to, client).await;
    }

    /// Routes a stanza whose `to` was parsed (and rewritten canonically) by [`canonical_to`].
    async fn route_parsed(
        &self,
        stanza: Element,
        to: Result<Option<Jid>, ()>,
        client: Option<&FullJid>,
    ) {
        let Some(kind) = StanzaKind::of(&stanza) else {
            tracing::debug!(name = stanza.name(), "not a stanza; dropped");
            return;
        };
        let to = match to {
            Ok(to) => to,
            Err(()) => {
                Box::pin(self.bounce(&stanza, StanzaErrorCondition::JidMalformed)).await;
                return;
            }
        };
        // An answer to a request of the server's own (`request_iq`) goes to its waiter.
        let mut stanza =
            if kind == StanzaKind::Iq && matches!(stanza.attr("type"), Some("result" | "error")) {
                match self.complete_request(stanza, to.as_ref(), client) {
                    Ok(()) => return,
                    Err(stanza) => stanza,
                }
            } else {
                stanza
            };
        match to {
            None => match client {
                Some(own) => Box::pin(self.to_account(kind, stanza, own.to_bare(), true)).await,
                None => tracing::debug!("stanza without 'to' from the server; dropped"),
            },
            Some(to) => {
                let domain = to.domain().as_str().to_owned();
                if !self.ctx.is_local_domain(&domain) {
                    // Leaving the server: the last point a module sees it (blocking stops what a
                    // user sends, or the server sends for a user, to a blocked JID).
                    if self.run_hooks(kind, HookPoint::ToRemote, &mut stanza).await {
                        return;
                    }
                    // A component domain: every stanza to it or a JID at it is the component's.
                    if let Some(component) = self.ctx.components.get(&domain) {
                        component.on_stanza(&self.ctx, stanza).await;
                        return;
                    }
                    // Another server's (RFC 6120 §10.4.2), when federation is on.
                    if let Some(remote) = self.ctx.components.remote() {
                        remote.on_stanza(&self.ctx, stanza).await;
                        return;
                    }
                    Box::pin(self.bounce(&stanza, StanzaErrorCondition::RemoteServerNotFound))
                        .await;
                    return;
                }
                match (to.node().is_some(), to.try_into_full()) {
                    (_, Ok(full)) => Box::pin(self.to_full(kind, stanza, full)).await,
                    (true, Err(bare)) => Box::pin(self.to_account(kind, stanza, bare, false)).await,
                    (false, Err(_)) => Box::pin(self.to_host(kind, stanza, &domain)).await,
                }
            }
        }
    }

    async fn to_host(&self, kind: StanzaKind, stanza: Element, _domain: &str) {
        match kind {
            StanzaKind::Iq => Box::pin(self.handle_iq(IqTarget::Server, &stanza, None)).await,
            // RFC 6121 §8.5.1 does not apply to the server itself; messages and presence addressed to
            // the server are not acted on yet.
            StanzaKind::Message | StanzaKind::Presence => {
                tracing::trace!(kind = kind.as_str(), "stanza to the server ignored");
            }
        }
    }

    async fn to_full(&self, kind: StanzaKind, stanza: Element, to: FullJid) {
        // A session that is closing (it stopped reading, or a newer one took its resource) is
        // treated as gone: what it cannot take goes where it would if it were.
        let mut stanza = stanza;
        if let Some(entry) = self
            .ctx
            .sessions
            .get(&to)
            .await
            .filter(|e| !e.handle.is_closing())
        {
            if self.run_hooks(kind, HookPoint::ToFull, &mut stanza).await {
                return;
            }
            // RFC 6121 §8.5.3.1: deliver to the resource. Presence directed to a resource that has
            // not sent available presence is still delivered.
            match self.deliver_reporting(&entry, stanza).await {
                Ok(_) => return,
                Err(back) => {
                    tracing::debug!(to = %to, "recipient session cannot take it; routing as if gone");
                    stanza = back;
                }
            }
        }
        // RFC 6121 §8.5.3.2: no such resource.
        match kind {
            // §8.5.3.2.1: normal/chat/headline are treated as if to the bare JID; groupchat and
            // error are not.
            StanzaKind::Message => {
                let ty = stanza.attr("type").unwrap_or("normal");
                match ty {
                    "groupchat" => {
                        Box::pin(self.bounce(&stanza, StanzaErrorCondition::ServiceUnavailable))
                            .await
                    }
                    "error" => {}
                    _ => Box::pin(self.to_account(kind, stanza, to.to_bare(), false)).await,
                }
            }
            // §8.5.3.2.3: presence to an unavailable resource is silently dropped (subscription
            // states are the presence module's business).
            StanzaKind::Presence => {}
            // §8.5.3.2.2: IQ to a resource that does not exist.
            StanzaKind::Iq => {
                Box::pin(self.bounce(&stanza, StanzaErrorCondition::ServiceUnavailable)).await
            }
        }
    }

    async fn to_account(&self, kind: StanzaKind, mut stanza: Element, to: BareJid, own: bool) {
        if kind == StanzaKind::Iq {
            // Another entity's IQ to the account passes the ToBare hooks first (blocking refuses
            // one from a blocked JID, XEP-0191 §3.3); the account's own never does.
            if !own && self.run_hooks(kind, HookPoint::ToBare, &mut stanza).await {
                return;
            }
            // RFC 6120 §10.3.3 / RFC 6121 §8.5.2.1.3: the server answers IQs to a bare JID on the
            // account's behalf. The account's existence is checked by the handler when it matters;
            // a non-existent account gets the same answer as an unhandled payload.
            if own || self.ctx.account_exists(&to).await {
                Box::pin(self.handle_iq(IqTarget::Account, &stanza, Some(&to))).await;
            } else {
                Box::pin(self.bounce(&stanza, StanzaErrorCondition::ServiceUnavailable)).await;
            }
            return;
        }
        if own && kind == StanzaKind::Presence {
            // Presence without 'to' (broadcast) belongs to the presence module (a FromClient hook).
            return;
        }
        if self.run_hooks(kind, HookPoint::ToBare, &mut stanza).await {
            return;
        }
        let resources = self.ctx.sessions.resources(&to).await;
        match kind {
            StanzaKind::Message => self.message_to_bare(stanza, &to, resources).await,
            // Presence to a bare JID: subscription handling and probes are the presence module's.
            StanzaKind::Presence | StanzaKind::Iq => {}
        }
    }

    /// RFC 6121 §8.5.2: a message to a bare JID of a local account.
    async fn message_to_bare(&self, stanza: Element, to: &BareJid, resources: Resources) {
        // Chat and normal are handled alike below.
        let ty: &'static str = match stanza.attr("type") {
            Some("groupchat") => "groupchat",
            Some("error") => "error",
            Some("headline") => "headline",
            _ => "normal",
        };
        if ty == "groupchat" {
            // §8.5.2.1.1 / §8.5.2.2.1: groupchat to a bare JID is an error, whether or not the
            // account exists.
            Box::pin(self.bounce(&stanza, StanzaErrorCondition::ServiceUnavailable)).await;
            return;
        }
        let available: Vec<&SessionEntry> = resources
            .iter()
            .filter(|e| e.receives_bare_messages() && !e.handle.is_closing())
            .collect();
        let mut stanza = if available.is_empty() {
            stanza
        } else {
            match self.deliver_to_available(stanza, ty, &available).await {
                Ok(()) => return,
                // None of them could take it (each is closing now): as if none were available.
                Err(back) => back,
            }
        };
        {
            if ty == "error" {
                // §8.5.2.2.1: silently ignored.
                return;
            }
            // §8.5.2.2.1: no available resource: offline storage decides (XEP-0160). What it
            // does not take, and anything for an account that does not exist (§8.5.1), bounces;
            // headlines are dropped instead, which the RFC allows.
            let stored = self.ctx.account_exists(to).await
                && self
                    .run_hooks(StanzaKind::Message, HookPoint::Offline, &mut stanza)
                    .await;
            if !stored && ty != "headline" {
                Box::pin(self.bounce(&stanza, StanzaErrorCondition::ServiceUnavailable)).await;
            }
        }
    }

    /// RFC 6121 §8.5.2.1.1: a message to the available resources of an account. Hands the
    /// message back when none of the chosen sessions could take it.
    async fn deliver_to_available(
        &self,
        stanza: Element,
        ty: &str,
        available: &[&SessionEntry],
    ) -> Result<(), Element> {
        let chosen: Vec<&SessionEntry> = if ty == "headline" {
            // Headline goes to every available resource with non-negative priority.
            available.to_vec()
        } else {
            // chat / normal: the highest priority wins; ties all get it (the RFC permits either
            // one or all; all is what users expect from several devices).
            let top = available
                .iter()
                .filter_map(|e| e.priority)
                .max()
                .unwrap_or(0);
            available
                .iter()
                .copied()
                .filter(|e| e.priority == Some(top))
                .collect()
        };
        // The chosen resources are one account's: the first stands for it.
        let report = chosen.first().is_some_and(|e| self.wants_delivered(&e.jid));
        if self.any_outbound || report {
            return Box::pin(self.deliver_to_chosen(stanza, chosen, report)).await;
        }
        // Nothing hooked: the outbound path is its last step alone, called here without holding
        // a future per recipient (a message to a bare JID is the hot path).
        // The last recipient takes the stanza itself, and hands it back if it cannot: one
        // recipient (the usual case) costs no copy.
        let mut taken = false;
        let Some((last, others)) = chosen.split_last() else {
            return Err(stanza);
        };
        for e in others {
            taken |= Self::queue(e, stanza.clone()).is_ok();
        }
        match Self::queue(last, stanza) {
            Err(back) if !taken => Err(back),
            _ => Ok(()),
        }
    }

    /// [`Self::deliver_to_available`] with outbound or delivered hooks: each chosen session
    /// through the whole outbound path, then, if `report`, the delivered hooks with those that
    /// took it. The last session takes the stanza itself unless the delivered hooks need it
    /// afterwards: one recipient without delivered hooks (an outbound hook is always there
    /// while blocking is on) costs no copy.
    async fn deliver_to_chosen(
        &self,
        stanza: Element,
        chosen: Vec<&SessionEntry>,
        report: bool,
    ) -> Result<(), Element> {
        let Some((last, others)) = chosen.split_last() else {
            return Err(stanza);
        };
        let mut taken = false;
        // The recipients are collected only for the delivered hooks: no allocation without one.
        let mut received: Option<Vec<FullJid>> = report.then(Vec::new);
        let mut note = |delivered: &Result<Delivered, Element>, e: &SessionEntry| match delivered {
            Ok(Delivered::Queued) => {
                taken = true;
                if let Some(r) = &mut received {
                    r.push(e.jid.clone());
                }
            }
            // An outbound hook took it for this session: not to be stored or bounced.
            Ok(Delivered::Dropped) => taken = true,
            Err(_) => {}
        };
        for e in others {
            let delivered = self.deliver_to(e, stanza.clone()).await;
            note(&delivered, e);
        }
        let kept = report.then(|| stanza.clone());
        let delivered = self.deliver_to(last, stanza).await;
        note(&delivered, last);
        if let (Some(to), Some(message)) = (received.filter(|r| !r.is_empty()), &kept) {
            self.run_delivered(message, &to).await;
        }
        match delivered {
            // None took it: the last one handed it back.
            Err(back) if !taken => Err(back),
            _ => Ok(()),
        }
    }

    async fn handle_iq(&self, target: IqTarget, iq: &Element, account: Option<&BareJid>) {
        let ty = iq.attr("type").unwrap_or("");
        let Some(iq_type) = IqType::from_attr(ty) else {
            // Results and errors addressed to the server or an account are not awaited by anyone.
            return;
        };
        let Some(from) = iq.attr("from").and_then(|f| Jid::new(f).ok()) else {
            return;
        };
        // RFC 6120 §8.2.3: a get or set has exactly one payload child.
        let mut children = iq.children();
        let (Some(payload), None) = (children.next(), children.next()) else {
            self.reply(
                iq,
                IqOutcome::Error(StanzaError::new(StanzaErrorCondition::BadRequest)),
            )
            .await;
            return;
        };
        let key = (
            target,
            iq_type,
            payload.ns().to_owned(),
            payload.name().to_owned(),
        );
        let handler = self.iq_handlers.get(&key).or_else(|| {
            // No 'to' at all: a payload only the server itself answers (ping without 'to') is
            // still answered.
            if target == IqTarget::Account && iq.attr("to").is_none() {
                self.iq_handlers
                    .get(&(IqTarget::Server, key.1, key.2.clone(), key.3.clone()))
            } else {
                None
            }
        });
        let outcome = match handler {
            Some(h) => {
                h.handle_iq(
                    &self.ctx,
                    IqRoute {
                        iq,
                        payload,
                        from: &from,
                        account,
                    },
                )
                .await
            }
            // RFC 6120 §8.4: an IQ nobody understands.
            None => IqOutcome::Error(StanzaError::new(StanzaErrorCondition::ServiceUnavailable)),
        };
        self.reply(iq, outcome).await;
    }

    async fn reply(&self, iq: &Element, outcome: IqOutcome) {
        let reply = match outcome {
            IqOutcome::Result(payload) => {
                let mut r = starling_proto::iq_result(iq);
                if let Some(p) = payload {
                    r.append_child(p);
                }
                r
            }
            IqOutcome::Error(e) => error_reply(iq, &e),
        };
        self.deliver_reply(reply).await;
    }

    /// Sends the error `condition` back to the sender of `stanza`, unless it is itself an error.
    pub async fn bounce(&self, stanza: &Element, condition: StanzaErrorCondition) {
        // RFC 6120 §8.3.1: an error is never answered with an error. RFC 6120 §8.2.3 and
        // RFC 6121 §8.5.2.2.3/§8.5.3.2.2: an IQ result nobody can take is silently ignored.
        match stanza.attr("type") {
            Some("error") => return,
            Some("result") if stanza.name() == "iq" => return,
            _ => {}
        }
        let reply = error_reply(stanza, &StanzaError::new(condition));
        self.deliver_reply(reply).await;
    }

    /// Delivers a reply generated by the server: to the waiter of a request of the server's own,
    /// to a component, or to the full JID of a local session (the sender); anything else is
    /// dropped rather than routed, so errors can never loop.
    async fn deliver_reply(&self, mut reply: Element) {
        let Some(to) = reply.attr("to").and_then(|t| Jid::new(t).ok()) else {
            return;
        };
        // The router's own answer to a request of the server's (the recipient is gone, the
        // domain unreachable, or the server answered on an account's behalf) completes it.
        if reply.name() == "iq" && self.pending_iqs() > 0 {
            match self.complete_request(reply, Some(&to), None) {
                Ok(()) => return,
                Err(r) => reply = r,
            }
        }
        let domain = to.domain().as_str();
        if !self.ctx.is_local_domain(domain) {
            // A component hears of its stanzas' failures like any sender (it never answers an
            // error with an error, RFC 6120 §8.3.1); so does a sender at another server (the
            // s2s service answers no error or result with an error either).
            if let Some(component) = self.ctx.components.get(domain) {
                component.on_stanza(&self.ctx, reply).await;
            } else if let Some(remote) = self.ctx.components.remote() {
                remote.on_stanza(&self.ctx, reply).await;
            }
            return;
        }
        let Ok(to) = to.try_into_full() else {
            return;
        };
        // A reply from the server itself has the domain as 'from' when the request had no 'to'
        // (RFC 6120 §8.1.2.1 allows either; the domain is clearest).
        if reply.attr("from").is_none() && reply.name() != "iq" {
            reply.set_attr("from", to.domain().as_str());
        }
        let Some(entry) = self.ctx.sessions.get(&to).await else {
            return;
        };
        // A message error the server generated is delivered to a full JID like any other, and
        // the delivered hooks hear of it (carbons copy an error that answers a message they
        // copied, XEP-0280 §6.1).
        if self.deliver_reporting(&entry, reply).await.is_err() {
            tracing::debug!(%to, "the session cannot take the server's reply; dropped");
        }
    }
}

/// Parses the stanza's `to` (RFC 7622 §3.2: stringprep normalisation, RFC 6122) and writes it
/// back in canonical form if it was written otherwise (`BOB@LOCALHOST/Phone` becomes
/// `bob@localhost/Phone`), so hooks and the recipient see the address the stanza is routed by.
/// `Ok(None)` without `to`; `Err` if it is no valid JID (left as written, for the error reply).
fn canonical_to(stanza: &mut Element) -> Result<Option<Jid>, ()> {
    let Some(raw) = stanza.attr("to") else {
        return Ok(None);
    };
    let jid = Jid::new(raw).map_err(|_| ())?;
    if jid.as_str() != raw {
        stanza.set_attr("to", jid.as_str());
    }
    Ok(Some(jid))
}

#[cfg(test)]
mod tests;
