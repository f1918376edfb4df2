//! XEP-0357 Push Notifications, revision 0.3/0.4 (`urn:xmpp:push:0`). Section numbers below are
//! the XEP's: §4 discovery, §5 enabling, §6 disabling, §7 publishing, §7.1 publish errors,
//! §9 security.
//!
//! # Procedure
//!
//! **Discovery (§4.1).** `urn:xmpp:push:0` is an account feature: it is in the disco#info of
//! every account's bare JID.
//!
//! **Enabling (§5).** The app server may not be one of this server's own hosts or an account at
//! one (`<not-acceptable/>`): notifications go out in the server's name.
//!
//! **Enabling, the request (§5).** `<iq type='set'><enable xmlns='urn:xmpp:push:0' jid='APP' node='NODE'>`,
//! optionally with a `jabber:x:data` form whose FORM_TYPE is
//! `http://jabber.org/protocol/pubsub#publish-options` (the app server's secret), from a bound
//! session without `to` or to its own bare JID, stores the registration (account, APP, NODE,
//! form) and answers an empty result. The same (APP, NODE) again replaces the form ("the last
//! received request", §5). The registration also belongs to the session that enabled it, the
//! *pushed session*, until that session ends (held here by full JID and session id, like the
//! carbons module does; a resumption keeps it). Refusals: no `jid` or no (or an empty) `node`
//! → `<bad-request/>` (the schema requires both; a publish needs a node); a `jid` that is no
//! JID → `<jid-malformed/>`; the account's own JID as app server → `<bad-request/>`; a form of
//! another FORM_TYPE → `<bad-request/>`; a form over [`MAX_OPTIONS`] bytes or a node over
//! [`MAX_NODE`] → `<not-acceptable/>`. Another account's enable or disable changes nothing and
//! gets `<service-unavailable/>`, the answer an account that does not exist gets, as in the
//! carbons module. An account keeps at most `max_registrations`; enabling one more removes the
//! oldest (a device reinstalled without disabling would otherwise hold a place forever).
//!
//! **Disabling (§6).** `<disable jid='APP' node='NODE'/>` removes that registration; without
//! `node`, every registration at APP. Answered with an empty result, also when nothing matched.
//! From then on nothing is published there (§6: MUST NOT), notifications already waiting for
//! their turn included.
//!
//! **When a notification is published (§7).** "An event warranting a push notification" is
//! here a message that [`warrants_push`] (a chat or normal message with a non-empty `<body/>`,
//! or carrying an OMEMO `<encrypted/>` without one; never a groupchat, headline or error, a
//! carbon or an archive result) reaching the account while
//! - no resource takes it: the router's [`HookPoint::Offline`] point (RFC 6121 §8.5.2.2.1).
//!   A stanza hook there at priority [`OFFLINE_PRIORITY`], above the offline module (0), which
//!   handles the message and stops the list, publishes to *every* registration of the account
//!   and passes;
//! - or a pushed session took it while detached (XEP-0198, its connection lost, waiting for a
//!   resumption) or inactive (XEP-0352): the delivered hook hears which full JIDs took a
//!   message, and c2s marks both states on the session's address
//!   (`SessionHandle::is_detached`, `is_inactive`). It publishes to the registrations of those
//!   pushed sessions only: the device whose client is away is the one to wake;
//! - or a group chat message naming the user reached such a session ([`Event::Mentioned`],
//!   from the conference service): the same, for that session.
//!
//! The delivered hook is used rather than an outbound hook because it reports only what a
//! session actually took (not what an outbound hook dropped), for messages routed to a full or
//! a bare JID alike, and never for what modules send themselves (carbons, the offline flush).
//!
//! **The notification (§7).** `<iq type='set' from='DOMAIN' to='APP' id='…'><pubsub
//! xmlns='http://jabber.org/protocol/pubsub'><publish node='NODE'><item><notification
//! xmlns='urn:xmpp:push:0'><x xmlns='jabber:x:data' type='submit'>` with the fields
//! `FORM_TYPE` = `urn:xmpp:push:summary`, `message-count`, `last-message-sender` (the sender's
//! full JID, unless `include_sender` is off) and `last-message-body` (only with `include_body`,
//! off by default: §9 asks servers to limit what passes through third parties), then
//! `<publish-options>` with the stored form when there is one (§7: SHOULD). `from` is the
//! account's domain, as revision 0.3 of the XEP changed it to be (and as Prosody's
//! mod_cloud_notify does): app servers accept publishes from the server's JID.
//! `message-count` is the number of messages this notification stands for: those that arrived
//! for the registration since the previous notification was sent (1 unless several were
//! coalesced, see below). Clients learn the real backlog when they reconnect; the XEP does not
//! say what to count.
//!
//! **Rate limit, per registration (device).** At most one notification to a registration is
//! in flight, and two are at least `min_interval` apart (from the sending of one to the next).
//! Messages that arrive meanwhile are counted; once the interval passed and the answer came
//! (or timed out) one notification with their count, and the last one's sender (and body), is
//! sent. A registration with nothing waiting holds no state here.
//!
//! **Publish errors (§7.1).** An IQ error answer disables the registration: it is removed from
//! the store and from its session, and anything waiting for it is dropped (SHOULD). An error of
//! type `wait` is transient (§7.1: MAY keep it), and so is no answer within `timeout`: both are
//! logged and the registration stays.
//!
//! **Not twice for one message.** A pushed session that ends without being resumed hands what
//! it held back to the router (c2s `Session::end`), which routes it again, usually to offline
//! storage: the `Offline` point would publish again for messages the device was already told
//! about. Each pushed session remembers keyed hashes of the last [`RECENT`] messages it
//! published for (sender, id); the `Offline` point skips a registration of that session for a
//! message it remembers (the session's state is forgotten only after it handed everything back).
//!
//! # Cost
//!
//! The delivered hook says in [`DeliveredHook::wants`] whether the account has a pushed session
//! that is detached or inactive: one atomic load while no session anywhere enabled push, else a
//! hash-map look-up under a mutex held for no await and two atomic loads per pushed session.
//! Other accounts keep the router's fast path. The `Offline` point costs one store read per
//! message that is about to be stored offline (beside the offline module's write). Each
//! notification is awaited in its own task, never in the routing of the message.
//!
//! # Hazards
//!
//! - The registration, not the device, is what the store knows: a client that enables a new
//!   node at each start without disabling the old one fills its account's places, and the
//!   oldest are removed; their app server may still get notifications until then.
//! - A message to a session that is neither detached nor inactive but whose client is gone
//!   without the server noticing yet (a half-open TCP connection) is not pushed.
//! - An enable IQ racing the end of the session that sent it stores the registration, but no
//!   session owns it: only the `Offline` point publishes to it.
//! - Messages without an `id` cannot be recognised when handed back by an ended session: they
//!   are published for again.
//! - `message-count` counts per registration: a message that reached two pushed sessions is
//!   counted once for each.
//! - Enabling the same (APP, NODE) again drops what waited for it, and a notification already in
//!   flight that the app server then refuses does not remove the new registration if another
//!   message started a notification with the new options meanwhile; if none did, it does.
//! - A registration read from the store just before a disable may still get one notification
//!   (the `Offline` point reads the store, then publishes).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use starling_module_api::{
    Context, DeliveredHook, Event, EventListener, HookPoint, HookResult, IqHandler, IqOutcome,
    IqRequestError, IqRoute, IqTarget, IqType, Module, Registrar, SessionHandle, SessionId,
    StanzaHook, parse_stored,
};
use starling_proto::element::Ns;
use starling_proto::{
    BareJid, Element, ErrorType, FullJid, Jid, StanzaError, StanzaErrorCondition, StanzaKind, ns,
};
use starling_storage::{PushRegistration, StorageError};
use tokio::time::Instant;

/// The namespace of XEP-0357, also its account feature (§4.1).
pub const NS: &str = "urn:xmpp:push:0";
/// XEP-0060 publish.
pub const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";
/// The FORM_TYPE of the summary form (§7, §11.3).
pub const SUMMARY: &str = "urn:xmpp:push:summary";
/// The FORM_TYPE of the publish-options form given at enabling (§5).
pub const PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";
/// XEP-0384 OMEMO, the version most clients speak (0.3) and the current one.
const NS_OMEMO_LEGACY: &str = "eu.siacs.conversations.axolotl";
const NS_OMEMO: &str = "urn:xmpp:omemo:2";
/// XEP-0313 archive results are `<result xmlns='urn:xmpp:mam:N'/>`.
const NS_MAM_PREFIX: &str = "urn:xmpp:mam:";

/// Largest publish-options form accepted, serialised (bytes).
pub const MAX_OPTIONS: usize = 4096;
/// Longest node accepted (bytes).
pub const MAX_NODE: usize = 1024;
/// Messages remembered per pushed session, so that one handed back is not pushed again.
pub const RECENT: usize = 32;
/// Priority of the `Offline` hook: before the offline module (0), which stops the list.
pub const OFFLINE_PRIORITY: i32 = 10;

/// The module's settings (`[push]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PushOptions {
    /// `last-message-body` in notifications (§9: off by default).
    pub include_body: bool,
    /// `last-message-sender` in notifications.
    pub include_sender: bool,
    /// Least time between two notifications to one registration.
    pub min_interval: Duration,
    /// How long an app server has to answer a notification.
    pub timeout: Duration,
    /// Most registrations per account; enabling one more removes the oldest.
    pub max_registrations: usize,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            include_body: false,
            include_sender: true,
            min_interval: Duration::from_secs(2),
            timeout: Duration::from_secs(30),
            max_registrations: 10,
        }
    }
}

/// Whether a message warrants a notification (module docs): chat or normal (or no type, or one
/// the server does not know) with a non-empty body or an OMEMO payload; never a groupchat,
/// headline or error, a carbon, or an archive result.
pub fn warrants_push(message: &Element) -> bool {
    if matches!(
        message.attr("type"),
        Some("groupchat" | "headline" | "error")
    ) {
        return false;
    }
    let mut content = false;
    for child in message.children() {
        match (child.ns(), child.name()) {
            (crate::carbons::NS, "received" | "sent") => return false,
            (n, "result") if n.starts_with(NS_MAM_PREFIX) => return false,
            (ns::CLIENT, "body") => content |= !child.text().trim().is_empty(),
            (NS_OMEMO_LEGACY | NS_OMEMO, "encrypted") => content = true,
            _ => {}
        }
    }
    content
}

/// What a notification says (§7): how many messages, the last one's sender and body, as the
/// options allow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub count: u64,
    pub sender: Option<String>,
    pub body: Option<String>,
}

/// The publish IQ for `registration` (§7), from `domain`, without an id (the router gives one).
/// `options` is the registration's publish-options form, parsed.
pub fn notification(
    domain: &str,
    registration: &PushRegistration,
    options: Option<Element>,
    summary: &Summary,
) -> Element {
    let data = Ns::from_static(ns::DATA_FORMS);
    let field = |var: &str, value: &str| {
        Element::new("field", data.clone())
            .with_attr("var", var)
            .with_child(Element::new("value", data.clone()).with_text(value))
    };
    let mut form = Element::new("x", data.clone())
        .with_attr("type", "submit")
        .with_child(field("FORM_TYPE", SUMMARY))
        .with_child(field("message-count", &summary.count.to_string()));
    if let Some(sender) = &summary.sender {
        form.append_child(field("last-message-sender", sender));
    }
    if let Some(body) = &summary.body {
        form.append_child(field("last-message-body", body));
    }
    let mut pubsub = Element::new("pubsub", Ns::from_static(NS_PUBSUB)).with_child(
        Element::new("publish", Ns::from_static(NS_PUBSUB))
            .with_attr("node", registration.node.as_str())
            .with_child(
                Element::new("item", Ns::from_static(NS_PUBSUB))
                    .with_child(Element::new("notification", Ns::from_static(NS)).with_child(form)),
            ),
    );
    if let Some(options) = options {
        pubsub.append_child(
            Element::new("publish-options", Ns::from_static(NS_PUBSUB)).with_child(options),
        );
    }
    Element::new("iq", Ns::from_static(ns::CLIENT))
        .with_attr("type", "set")
        .with_attr("from", domain)
        .with_attr("to", registration.jid.as_str())
        .with_child(pubsub)
}

/// The account a message is for: its `to`, or, without one, the sender's own account
/// (RFC 6120 §8.1.1.1).
fn recipient(message: &Element) -> Option<BareJid> {
    let addr = message.attr("to").or_else(|| message.attr("from"))?;
    let bare = Jid::new(addr).ok()?.to_bare();
    bare.node().is_some().then_some(bare)
}

/// The bare JID part of a JID written canonically: everything before the first `/`.
fn bare_of(jid: &str) -> &str {
    jid.split_once('/').map_or(jid, |(bare, _)| bare)
}

/// A registration as the rate limit knows it: (account, app server JID, node).
type RegKey = (String, String, String);

fn reg_key(account: &str, r: &PushRegistration) -> RegKey {
    (account.to_owned(), r.jid.clone(), r.node.clone())
}

/// A session that enabled push, while it lasts.
struct Pushed {
    jid: FullJid,
    handle: SessionHandle,
    /// The registrations it enabled (and that were not disabled since).
    registrations: Vec<PushRegistration>,
    /// Keyed hashes of (sender, id) of the last messages published for; 0 is free.
    recent: [u64; RECENT],
    next: usize,
}

impl Pushed {
    fn id(&self) -> SessionId {
        self.handle.id()
    }

    /// Whether its client is away: no connection (XEP-0198) or inactive (XEP-0352).
    fn away(&self) -> bool {
        !self.handle.is_closing() && (self.handle.is_detached() || self.handle.is_inactive())
    }

    fn remember(&mut self, key: u64) {
        if self.recent.contains(&key) {
            return;
        }
        if let Some(slot) = self.recent.get_mut(self.next) {
            *slot = key;
        }
        self.next = (self.next + 1) % RECENT;
    }
}

/// Notifications waiting for one registration (see the rate limit in the module docs).
struct Waiting {
    /// Which publisher task serves it.
    serial: u64,
    summary: Summary,
}

#[derive(Default)]
struct State {
    /// Pushed sessions by account (bare JID, as written canonically).
    sessions: HashMap<String, Vec<Pushed>>,
    /// Registrations with a publisher task: what it has still to send.
    waiting: HashMap<RegKey, Waiting>,
}

impl State {
    /// Forgets registrations of `account` that `gone` says are gone, in every session and in
    /// the waiting list.
    fn forget(&mut self, account: &str, gone: impl Fn(&PushRegistration) -> bool) {
        if let Some(list) = self.sessions.get_mut(account) {
            for p in list.iter_mut() {
                p.registrations.retain(|r| !gone(r));
            }
        }
        self.waiting.retain(|(a, jid, node), _| {
            !(a == account
                && gone(&PushRegistration {
                    jid: jid.clone(),
                    node: node.clone(),
                    options: None,
                }))
        });
    }
}

struct Inner {
    options: PushOptions,
    state: Mutex<State>,
    /// Whether any session enabled push: without one the delivered hook returns at once.
    any: AtomicBool,
    /// Keys the hashes of remembered messages, so that nobody can choose colliding ids.
    keys: RandomState,
    /// Tells publisher tasks apart.
    serial: AtomicU64,
}

/// The XEP-0357 module. See the module docs.
pub struct Push {
    inner: Arc<Inner>,
}

impl Push {
    pub fn new(options: PushOptions) -> Self {
        Push {
            inner: Arc::new(Inner {
                options,
                state: Mutex::default(),
                any: AtomicBool::new(false),
                keys: RandomState::new(),
                serial: AtomicU64::new(1),
            }),
        }
    }

    /// Sessions that enabled push and have not ended (for tests and metrics).
    pub fn pushed_sessions(&self) -> usize {
        self.inner.lock().sessions.values().map(Vec::len).sum()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change is a few map operations: a panic elsewhere leaves the maps usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update_any(&self, state: &State) {
        self.any
            .store(!state.sessions.is_empty(), Ordering::Release);
    }

    /// The keyed hash of a message's (sender, id), never 0; `None` without an id.
    fn message_key(&self, message: &Element) -> Option<u64> {
        let id = message.attr("id")?;
        Some(self.keys.hash_one((message.attr("from").unwrap_or(""), id)) | 1)
    }

    /// `registration` now belongs to session `id` bound to `jid` (and to no other session).
    fn attach(&self, jid: &FullJid, handle: &SessionHandle, registration: PushRegistration) {
        let account = bare_of(jid.as_str());
        let mut state = self.lock();
        let list = state.sessions.entry(account.to_owned()).or_default();
        for p in list.iter_mut() {
            p.registrations
                .retain(|r| !(r.jid == registration.jid && r.node == registration.node));
        }
        match list
            .iter_mut()
            .find(|p| p.id() == handle.id() && p.jid == *jid)
        {
            Some(p) => p.registrations.push(registration),
            None => list.push(Pushed {
                jid: jid.clone(),
                handle: handle.clone(),
                registrations: vec![registration],
                recent: [0; RECENT],
                next: 0,
            }),
        }
        list.retain(|p| !p.registrations.is_empty());
        if list.is_empty() {
            state.sessions.remove(account);
        }
        self.update_any(&state);
    }

    /// Forgets session `id` bound to `jid` (it ended).
    fn detach_session(&self, jid: &FullJid, id: SessionId) {
        let account = bare_of(jid.as_str());
        let mut state = self.lock();
        if let Some(list) = state.sessions.get_mut(account) {
            list.retain(|p| !(p.id() == id && p.jid == *jid));
            if list.is_empty() {
                state.sessions.remove(account);
            }
        }
        self.update_any(&state);
    }

    /// Forgets the registrations of `account` that `gone` matches, everywhere.
    fn forget(&self, account: &str, gone: impl Fn(&PushRegistration) -> bool) {
        let mut state = self.lock();
        state.forget(account, gone);
        if let Some(list) = state.sessions.get_mut(account) {
            list.retain(|p| !p.registrations.is_empty());
            if list.is_empty() {
                state.sessions.remove(account);
            }
        }
        self.update_any(&state);
    }

    /// Counts `message` for each registration, and starts a publisher for those without one.
    fn notify(
        self: &Arc<Self>,
        ctx: &Context,
        account: &BareJid,
        message: &Element,
        registrations: Vec<PushRegistration>,
    ) {
        let sender = message
            .attr("from")
            .filter(|_| self.options.include_sender)
            .map(str::to_owned);
        let body = self
            .options
            .include_body
            .then(|| message.get_child("body", ns::CLIENT).map(Element::text))
            .flatten()
            .filter(|b| !b.trim().is_empty());
        let mut start = Vec::new();
        {
            let mut state = self.lock();
            for r in registrations {
                let key = reg_key(account.as_str(), &r);
                let waiting = state.waiting.entry(key).or_insert_with(|| {
                    let serial = self.serial.fetch_add(1, Ordering::Relaxed);
                    start.push((serial, r));
                    Waiting {
                        serial,
                        summary: Summary::default(),
                    }
                });
                waiting.summary.count += 1;
                waiting.summary.sender.clone_from(&sender);
                waiting.summary.body.clone_from(&body);
            }
        }
        for (serial, registration) in start {
            let (inner, ctx, account) = (self.clone(), ctx.clone(), account.clone());
            tokio::spawn(async move {
                inner.publisher(&ctx, &account, registration, serial).await;
            });
        }
    }

    /// Sends what waits for `registration`, one notification at a time, at most one per
    /// `min_interval`, until nothing waits (module docs: rate limit, publish errors).
    async fn publisher(
        &self,
        ctx: &Context,
        account: &BareJid,
        registration: PushRegistration,
        serial: u64,
    ) {
        let key = reg_key(account.as_str(), &registration);
        let options = registration.options.as_deref().and_then(|xml| match parse_stored(xml) {
            Ok(form) => Some(form),
            Err(e) => {
                tracing::error!(%account, error = %e, "unreadable publish-options: published without");
                None
            }
        });
        loop {
            let summary = {
                let mut state = self.lock();
                let Some(w) = state.waiting.get_mut(&key).filter(|w| w.serial == serial) else {
                    // Disabled meanwhile.
                    return;
                };
                if w.summary.count == 0 {
                    state.waiting.remove(&key);
                    return;
                }
                std::mem::take(&mut w.summary)
            };
            let sent = Instant::now();
            let iq = notification(
                account.domain().as_str(),
                &registration,
                options.clone(),
                &summary,
            );
            tracing::debug!(%account, app = %registration.jid, node = %registration.node,
                count = summary.count, "push notification");
            match ctx.router.request_iq(iq, self.options.timeout).await {
                Ok(_) => {}
                Err(e @ IqRequestError::Error(_))
                    if e.stanza_error()
                        .is_some_and(|s| s.error_type == ErrorType::Wait) =>
                {
                    // §7.1: a transient error keeps the registration.
                    tracing::info!(%account, app = %registration.jid, "app server asks to wait");
                }
                Err(e @ IqRequestError::Error(_)) => {
                    // Re-enabled meanwhile (another publisher runs for it now): the refusal was
                    // of the old options, and the new registration stays.
                    let replaced = self
                        .lock()
                        .waiting
                        .get(&key)
                        .is_some_and(|w| w.serial != serial);
                    if replaced {
                        return;
                    }
                    let condition = e.stanza_error().map(|s| s.condition);
                    tracing::info!(%account, app = %registration.jid, node = %registration.node,
                        ?condition, "app server refused a notification: registration disabled");
                    self.disable(ctx, account, &registration).await;
                    return;
                }
                Err(IqRequestError::Timeout(t)) => {
                    tracing::info!(%account, app = %registration.jid, timeout = ?t,
                        "app server did not answer a notification");
                }
                Err(e) => {
                    // Shutdown, or an address the router cannot route (validated at enabling).
                    tracing::warn!(%account, app = %registration.jid, error = %e, "push notification not sent");
                    let mut state = self.lock();
                    if state.waiting.get(&key).is_some_and(|w| w.serial == serial) {
                        state.waiting.remove(&key);
                    }
                    return;
                }
            }
            tokio::time::sleep_until(sent + self.options.min_interval).await;
        }
    }

    /// §7.1: an error answer disables the registration.
    async fn disable(&self, ctx: &Context, account: &BareJid, registration: &PushRegistration) {
        if let Some(node) = account.node() {
            let done = ctx
                .stores
                .push
                .disable(
                    node.as_str(),
                    account.domain().as_str(),
                    &registration.jid,
                    Some(&registration.node),
                )
                .await;
            if let Err(e) = done {
                tracing::error!(%account, error = %e, "removing a push registration failed");
            }
        }
        self.forget(account.as_str(), |r| {
            r.jid == registration.jid && r.node == registration.node
        });
    }
}

/// An IQ error of `condition`.
fn error(condition: StanzaErrorCondition, text: Option<&str>) -> IqOutcome {
    let e = StanzaError::new(condition);
    IqOutcome::Error(match text {
        Some(t) => e.with_text(t),
        None => e,
    })
}

/// Why an enable or disable is refused: the condition and its text (small, unlike the
/// [`IqOutcome`] it becomes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Refusal(StanzaErrorCondition, Option<&'static str>);

impl From<Refusal> for IqOutcome {
    fn from(r: Refusal) -> Self {
        error(r.0, r.1)
    }
}

/// The `jid` attribute of an enable or disable, parsed (§5, §6: MUST be there).
fn app_jid(payload: &Element) -> Result<Jid, Refusal> {
    let Some(raw) = payload.attr("jid") else {
        return Err(Refusal(
            StanzaErrorCondition::BadRequest,
            Some("missing 'jid'"),
        ));
    };
    Jid::new(raw).map_err(|_| Refusal(StanzaErrorCondition::JidMalformed, None))
}

/// The publish-options form of an enable, checked and serialised (§5).
fn options_form(payload: &Element) -> Result<Option<String>, Refusal> {
    let Some(form) = payload.get_child("x", ns::DATA_FORMS) else {
        return Ok(None);
    };
    let form_type = form
        .children()
        .find(|f| f.is("field", ns::DATA_FORMS) && f.attr("var") == Some("FORM_TYPE"))
        .and_then(|f| f.get_child("value", ns::DATA_FORMS))
        .map(Element::text);
    if form_type.as_deref() != Some(PUBLISH_OPTIONS) {
        return Err(Refusal(
            StanzaErrorCondition::BadRequest,
            Some("the form's FORM_TYPE must be http://jabber.org/protocol/pubsub#publish-options"),
        ));
    }
    let xml = form.to_xml();
    if xml.len() > MAX_OPTIONS {
        return Err(Refusal(
            StanzaErrorCondition::NotAcceptable,
            Some("the publish-options form is too large"),
        ));
    }
    Ok(Some(xml))
}

impl Push {
    async fn enable(&self, ctx: &Context, req: &IqRoute<'_>, account: &BareJid) -> IqOutcome {
        let app = match app_jid(req.payload) {
            Ok(j) => j,
            Err(e) => return e.into(),
        };
        if app.to_bare() == *account {
            return error(
                StanzaErrorCondition::BadRequest,
                Some("the app server cannot be the account itself"),
            );
        }
        // Notifications go out in the server's name: never to this server's own hosts or their
        // accounts, where a publish from the domain could pass for the server's own request.
        if ctx.is_local_domain(app.domain().as_str()) {
            return error(
                StanzaErrorCondition::NotAcceptable,
                Some("the app server must not be one of this server's hosts"),
            );
        }
        let node = match req.payload.attr("node") {
            Some(n) if !n.is_empty() && n.len() <= MAX_NODE => n,
            Some(n) if n.len() > MAX_NODE => {
                return error(
                    StanzaErrorCondition::NotAcceptable,
                    Some("'node' is too long"),
                );
            }
            _ => return error(StanzaErrorCondition::BadRequest, Some("missing 'node'")),
        };
        let options = match options_form(req.payload) {
            Ok(o) => o,
            Err(e) => return e.into(),
        };
        let registration = PushRegistration {
            jid: app.as_str().to_owned(),
            node: node.to_owned(),
            options,
        };
        let Some(local) = account.node() else {
            return error(StanzaErrorCondition::ServiceUnavailable, None);
        };
        let max = u64::try_from(self.inner.options.max_registrations).unwrap_or(u64::MAX);
        match ctx
            .stores
            .push
            .enable(
                local.as_str(),
                account.domain().as_str(),
                &registration,
                max,
            )
            .await
        {
            Ok(done) => {
                if done.evicted > 0 {
                    // Which ones is the store's business: reread what is left.
                    self.resync(ctx, account).await;
                }
            }
            Err(StorageError::NotFound) => {
                return error(StanzaErrorCondition::ServiceUnavailable, None);
            }
            Err(e) => {
                tracing::error!(%account, error = %e, "storing a push registration failed");
                return error(StanzaErrorCondition::InternalServerError, None);
            }
        }
        tracing::debug!(%account, app = %registration.jid, node = %registration.node, "push enabled");
        // §5: the last request wins. A notification waiting for its turn, or a publisher still
        // running, would go on with the options it read before: it is dropped, and the next
        // message starts a new one with these.
        self.inner.lock().waiting.remove(&(
            account.to_string(),
            registration.jid.clone(),
            registration.node.clone(),
        ));
        // The enabling session is the pushed session (module docs).
        if let Ok(jid) = req.from.try_as_full()
            && let Some(entry) = ctx.sessions.get(jid).await
        {
            let id = entry.handle.id();
            self.inner.attach(jid, &entry.handle, registration);
            // It may have ended while this was handled, its end heard before it was attached.
            if ctx
                .sessions
                .get(jid)
                .await
                .is_none_or(|e| e.handle.id() != id)
            {
                self.inner.detach_session(jid, id);
            }
        }
        IqOutcome::Result(None)
    }

    /// Drops from memory the registrations of `account` the store no longer has.
    async fn resync(&self, ctx: &Context, account: &BareJid) {
        let Some(local) = account.node() else {
            return;
        };
        match ctx
            .stores
            .push
            .registrations(local.as_str(), account.domain().as_str())
            .await
        {
            Ok(kept) => self.inner.forget(account.as_str(), |r| {
                !kept.iter().any(|k| k.jid == r.jid && k.node == r.node)
            }),
            Err(e) => tracing::error!(%account, error = %e, "reading push registrations failed"),
        }
    }

    async fn disable(&self, ctx: &Context, req: &IqRoute<'_>, account: &BareJid) -> IqOutcome {
        let app = match app_jid(req.payload) {
            Ok(j) => j,
            Err(e) => return e.into(),
        };
        let node = req.payload.attr("node");
        let Some(local) = account.node() else {
            return error(StanzaErrorCondition::ServiceUnavailable, None);
        };
        match ctx
            .stores
            .push
            .disable(
                local.as_str(),
                account.domain().as_str(),
                app.as_str(),
                node,
            )
            .await
        {
            Ok(n) => tracing::debug!(%account, app = %app, removed = n, "push disabled"),
            Err(e) => {
                tracing::error!(%account, error = %e, "removing push registrations failed");
                return error(StanzaErrorCondition::InternalServerError, None);
            }
        }
        // §6: nothing more is published there, what waited included.
        self.inner.forget(account.as_str(), |r| {
            r.jid == app.as_str() && node.is_none_or(|n| r.node == n)
        });
        IqOutcome::Result(None)
    }

    /// The `Offline` point: every registration of the account, except those of a pushed session
    /// that already published for this message (module docs).
    async fn offline(&self, ctx: &Context, message: &Element) {
        let Some(account) = recipient(message) else {
            return;
        };
        let Some(local) = account.node() else {
            return;
        };
        let registrations = match ctx
            .stores
            .push
            .registrations(local.as_str(), account.domain().as_str())
            .await
        {
            Ok(r) if r.is_empty() => return,
            Ok(r) => r,
            Err(e) => {
                tracing::error!(%account, error = %e, "reading push registrations failed");
                return;
            }
        };
        let registrations = match self.inner.message_key(message) {
            Some(key) if self.inner.any.load(Ordering::Acquire) => {
                let state = self.inner.lock();
                let sessions = state.sessions.get(account.as_str());
                registrations
                    .into_iter()
                    .filter(|r| {
                        !sessions.is_some_and(|list| {
                            list.iter().any(|p| {
                                p.recent.contains(&key)
                                    && p.registrations
                                        .iter()
                                        .any(|o| o.jid == r.jid && o.node == r.node)
                            })
                        })
                    })
                    .collect()
            }
            _ => registrations,
        };
        if !registrations.is_empty() {
            self.inner.notify(ctx, &account, message, registrations);
        }
    }
}

impl Module for Push {
    fn name(&self) -> &'static str {
        "push"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        reg.iq(IqTarget::Account, IqType::Set, NS, "enable", self.clone());
        reg.iq(IqTarget::Account, IqType::Set, NS, "disable", self.clone());
        // §4.1: on the account's bare JID.
        reg.account_feature(NS);
        reg.stanza_hook(
            StanzaKind::Message,
            HookPoint::Offline,
            OFFLINE_PRIORITY,
            self.clone(),
        );
        reg.delivered_hook(self.clone());
        reg.events(self);
    }
}

#[async_trait]
impl IqHandler for Push {
    async fn handle_iq(&self, ctx: &Context, req: IqRoute<'_>) -> IqOutcome {
        // Registered for IqTarget::Account only: the router names the account.
        let Some(account) = req.account else {
            return error(StanzaErrorCondition::ServiceUnavailable, None);
        };
        if req.from.to_bare() != *account {
            // Another account's registrations are nobody else's business: the answer an
            // account that does not exist gets (RFC 6121 §8.5.1).
            return error(StanzaErrorCondition::ServiceUnavailable, None);
        }
        if req.payload.name() == "enable" {
            self.enable(ctx, &req, account).await
        } else {
            self.disable(ctx, &req, account).await
        }
    }
}

#[async_trait]
impl StanzaHook for Push {
    async fn on_stanza(&self, ctx: &Context, point: HookPoint, stanza: &mut Element) -> HookResult {
        if point == HookPoint::Offline && warrants_push(stanza) {
            self.offline(ctx, stanza).await;
        }
        HookResult::Pass
    }
}

#[async_trait]
impl DeliveredHook for Push {
    /// Only accounts with a pushed session that is away: for the others the router copies
    /// nothing.
    fn wants(&self, to: &FullJid) -> bool {
        self.inner.any.load(Ordering::Acquire)
            && self
                .inner
                .lock()
                .sessions
                .get(bare_of(to.as_str()))
                .is_some_and(|list| list.iter().any(Pushed::away))
    }

    async fn delivered(&self, ctx: &Context, message: &Element, to: &[FullJid]) {
        if warrants_push(message) {
            self.away_sessions_took(ctx, message, to);
        }
    }
}

impl Push {
    /// `message` reached the sessions `to` (of one account): those of them that are pushed and
    /// away wake their devices.
    fn away_sessions_took(&self, ctx: &Context, message: &Element, to: &[FullJid]) {
        let Some(first) = to.first() else {
            return;
        };
        let key = self.inner.message_key(message);
        let registrations: Vec<PushRegistration> = {
            let mut state = self.inner.lock();
            let Some(list) = state.sessions.get_mut(bare_of(first.as_str())) else {
                return;
            };
            let mut regs = Vec::new();
            for p in list.iter_mut().filter(|p| p.away() && to.contains(&p.jid)) {
                if let Some(k) = key {
                    p.remember(k);
                }
                regs.extend(p.registrations.iter().cloned());
            }
            regs
        };
        if !registrations.is_empty() {
            self.inner
                .notify(ctx, &first.to_bare(), message, registrations);
        }
    }
}

#[async_trait]
impl EventListener for Push {
    async fn on_event(&self, ctx: &Context, event: &Event) {
        match event {
            // Resumed keeps the session, and so its registrations; its registrations stay
            // stored when it ends, for the Offline point.
            Event::Ended(entry) => self.inner.detach_session(&entry.jid, entry.handle.id()),
            // A group chat message naming the user: worth waking the device for, unlike the
            // room's other traffic.
            Event::Mentioned { to, message } => {
                self.away_sessions_took(ctx, message, std::slice::from_ref(to));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
