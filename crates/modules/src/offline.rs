//! XEP-0160 offline messages, stamped with XEP-0203 delayed delivery.
//!
//! # Procedure
//!
//! **Storing.** The router runs the [`HookPoint::Offline`] hook for a message to a local account
//! that exists but has no available resource with non-negative priority (RFC 6121 §8.5.2.2.1).
//! [`decide`] sorts it by type and hints (XEP-0160 §3, XEP-0334 §4):
//! - `normal` (or no type, or a type the server does not know, RFC 6121 §5.2.2) and `chat`
//!   messages are stored, whatever they carry (a body, or only an XEP-0184 receipt);
//! - a message that carries only chat-state notifications is dropped silently (XEP-0160 §3,
//!   XEP-0085 §5.8: SHOULD NOT be stored; bouncing typing notifications would only make noise);
//! - `headline` is left to the router, which drops it (XEP-0160 §3), unless it carries the
//!   XEP-0334 `<store/>` hint;
//! - a message with the XEP-0334 `<no-store/>` hint is left to the router, which bounces it
//!   with `<service-unavailable/>` as it does when no offline storage exists.
//!
//! A stored message is the stanza exactly as routed (its stamped `from`, every attribute and
//! child), plus `<delay xmlns='urn:xmpp:delay' from='DOMAIN' stamp='…Z'/>` (XEP-0160 §2,
//! XEP-0203 §2), `DOMAIN` being the recipient's (this server's) domain. A `<delay/>` the sender
//! put there claiming to come from that domain is removed first (XEP-0203 §5: a forged
//! notation). When the account already holds [`Offline::new`]'s `max_messages`, the message is
//! bounced to its sender with `<resource-constraint/>` of type `wait` and a text saying the
//! queue is full (RFC 6120 §8.3.3.18; XEP-0160 §2 step 3 suggests `<service-unavailable/>`,
//! which a client reads as final, and ejabberd answers the same way); a headline stored only
//! because of a `<store/>` hint is dropped, as the RFC does with headlines. With `max_messages`
//! 0 storage is off, every message is left to the router, which bounces it with
//! `<service-unavailable/>` (no storage exists), and `msgoffline` is not advertised.
//!
//! **Delivering.** When a session has sent available presence with non-negative priority
//! ([`Event::Available`], XEP-0160 §2 step 5), its account's messages are loaded in
//! arrival order and queued to that session, and then deleted up to the last one the session
//! accepted; if it accepts no more (it is gone, or its queue is full), the rest stay stored for
//! the next time. At most [`DELIVERY_BATCH`] messages are queued at once: the session's outbound
//! queue is bounded and is not drained while its own presence is being processed, so a larger
//! backlog continues from a background task whose sends wait for room in the session's queue
//! (the router's `offer_waiting_to`), for as long as the session stays available. Every message
//! goes through the router's outbound path, so outbound hooks (blocking) see the backlog too.
//!
//! # Hazards
//!
//! - Delivery per account is serialised by a lock, so two resources becoming available at once
//!   do not both get the backlog, and a delete never races a load of the same account.
//! - A message can be stored just after the recipient became available (the router looked for
//!   resources before that). The hook therefore checks for an available resource after storing
//!   and delivers to it; with the lock this ends either way with the message delivered once.
//! - "Accepted" means queued to the session. A connection that drops before writing its queue
//!   loses those messages (stream management, XEP-0198, does not exist yet).
//! - A backlog that is still being paced out can arrive after newer messages that went to the
//!   now available session directly; the delay stamps tell clients the order.
//! - A session that fetched messages from its archive (XEP-0313) before its initial presence
//!   does not get them again from here: they are deleted unsent (XEP-0313 §7.1.1, see
//!   [`crate::mam::seen`]).
//! - A stored message that no longer parses (a damaged database) is logged and dropped rather
//!   than blocking the queue forever.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use starling_module_api::parse_stored;
use starling_module_api::{
    Context, Event, EventListener, HookPoint, HookResult, Module, Offer, Registrar, SessionEntry,
    StanzaHook,
};
use starling_proto::{
    BareJid, Element, Jid, Node, StanzaError, StanzaErrorCondition, StanzaKind, error_reply,
};
use starling_storage::OfflineOutcome;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::clock;
use crate::mam::rules::archived_id;
use crate::mam::seen::Seen;

/// The disco feature of XEP-0160 (§4).
pub const FEATURE: &str = "msgoffline";
pub use starling_proto::ns::{CHATSTATES as NS_CHATSTATES, DELAY as NS_DELAY, HINTS as NS_HINTS};

/// The `<text/>` of the error a sender gets when the recipient's offline queue is full.
pub const QUEUE_FULL_TEXT: &str = "The recipient's offline message queue is full";

/// Most messages queued to a session at once.
pub const DELIVERY_BATCH: usize = 100;

/// What to do with a message that reached the offline hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Store it for later delivery.
    Store,
    /// Drop it silently (handled: no error to the sender).
    Drop,
    /// Not for offline storage: the router's default applies (bounce, or drop a headline).
    Pass,
}

/// Sorts a message for offline storage by its type and hints (see the module docs).
pub fn decide(message: &Element) -> Decision {
    // XEP-0334 §4.2: not even temporarily, e.g. for later delivery.
    if message.has_child("no-store", NS_HINTS) {
        return Decision::Pass;
    }
    // XEP-0334 §4.4: a message (not of type error) with <store/> SHOULD be stored.
    let store_hint = message.has_child("store", NS_HINTS);
    match message.attr("type").unwrap_or("normal") {
        "headline" if store_hint => Decision::Store,
        // XEP-0160 §3. The router never hands over groupchat or error messages anyway.
        "headline" | "groupchat" | "error" => Decision::Pass,
        // XEP-0160 §3 (chat), XEP-0085 §5.8: standalone notifications are not stored.
        _ if !store_hint && starling_proto::is_standalone_chat_state(message) => Decision::Drop,
        _ => Decision::Store,
    }
}

/// `message` as stored: any `<delay/>` claiming to be from `domain` removed (XEP-0203 §5), then
/// the server's own `<delay from=domain stamp=stamp/>` appended (XEP-0160 §2).
pub fn stamped(message: &Element, domain: &str, stamp: &str) -> Element {
    let forged = |e: &Element| e.is("delay", NS_DELAY) && e.attr("from") == Some(domain);
    let mut out = message.clone();
    // Keeps the message's namespace declarations and attributes as they were.
    out.retain_nodes(|n| !matches!(n, Node::Element(e) if forged(e)));
    out.append_child(
        Element::new("delay", NS_DELAY)
            .with_attr("from", domain)
            .with_attr("stamp", stamp),
    );
    out
}

/// The account a message reaching the offline hook is for: its `to`, or, without one, the
/// sender's own account (RFC 6120 §8.1.1.1).
fn recipient(message: &Element) -> Option<BareJid> {
    let addr = message.attr("to").or_else(|| message.attr("from"))?;
    let bare = Jid::new(addr).ok()?.to_bare();
    bare.node().is_some().then_some(bare)
}

/// The XEP-0160 module. See the module docs.
pub struct Offline {
    inner: Arc<Inner>,
}

struct Inner {
    /// 0: storage off.
    max_messages: u64,
    /// What sessions already got from their archive (delivered no more).
    seen: Arc<Seen>,
    /// One delivery lock per account that is being delivered to (or waited for).
    delivering: Mutex<HashMap<BareJid, Arc<AsyncMutex<()>>>>,
}

/// An account's delivery lock, held; removes the account's entry on drop if nobody else wants it.
struct Held {
    inner: Arc<Inner>,
    account: BareJid,
    _guard: OwnedMutexGuard<()>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut map = self
            .inner
            .delivering
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The map's reference and our guard's: nobody waits. Clones are only made under the
        // map's lock, so the count cannot grow while we look.
        if map
            .get(&self.account)
            .is_some_and(|l| Arc::strong_count(l) == 2)
        {
            map.remove(&self.account);
        }
    }
}

/// How a delivery batch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Batch {
    /// Nothing left to deliver now (or the session accepts no more).
    Done,
    /// More messages wait than one batch held.
    More,
}

impl Offline {
    /// The module, keeping at most `max_messages` per account (0: storage off); messages a
    /// session already got from its archive (`seen`, XEP-0313 §7.1.1) are not delivered again.
    pub fn new(max_messages: usize, seen: Arc<Seen>) -> Self {
        Offline {
            inner: Arc::new(Inner {
                max_messages: u64::try_from(max_messages).unwrap_or(u64::MAX),
                seen,
                delivering: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Delivers `account`'s stored messages to the session `to` (see the module docs). Returns
    /// once the first batch is queued; a larger backlog continues in the background.
    pub async fn deliver(&self, ctx: &Context, account: &BareJid, to: &SessionEntry) {
        self.inner.deliver(ctx, account, to).await;
    }
}

impl Inner {
    async fn acquire(self: &Arc<Self>, account: &BareJid) -> Held {
        let lock = {
            let mut map = self
                .delivering
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            map.entry(account.clone()).or_default().clone()
        };
        Held {
            inner: self.clone(),
            account: account.clone(),
            _guard: lock.lock_owned().await,
        }
    }

    async fn deliver(self: &Arc<Self>, ctx: &Context, account: &BareJid, to: &SessionEntry) {
        let held = self.acquire(account).await;
        let seen = self.seen.take(to.handle.id());
        // In the session's own task: never more than one batch, never waiting on its queue.
        if deliver_batch(ctx, account, to, &seen, false).await == Batch::Done {
            return;
        }
        tracing::debug!(account = %account, "large offline backlog: delivering in the background");
        let (ctx, account, to) = (ctx.clone(), account.clone(), to.clone());
        tokio::spawn(async move {
            // The lock travels with the task: no other delivery to this account meanwhile.
            let _held = held;
            loop {
                let still_there =
                    ctx.sessions.get(&to.jid).await.is_some_and(|e| {
                        e.handle.id() == to.handle.id() && e.receives_bare_messages()
                    });
                // Another task: each send waits for room in the session's queue.
                if !still_there
                    || deliver_batch(&ctx, &account, &to, &seen, true).await == Batch::Done
                {
                    return;
                }
            }
        });
    }
}

/// Queues up to [`DELIVERY_BATCH`] of the account's messages to `to`, oldest first, and deletes
/// those it accepted, and those whose archive id is in `seen` without queueing them.
async fn deliver_batch(
    ctx: &Context,
    account: &BareJid,
    to: &SessionEntry,
    seen: &HashSet<String>,
    wait: bool,
) -> Batch {
    let Some(node) = account.node() else {
        return Batch::Done;
    };
    let (localpart, domain) = (node.as_str(), account.domain().as_str());
    let messages = match ctx.stores.offline.load(localpart, domain).await {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(account = %account, error = %e, "loading offline messages failed");
            return Batch::Done;
        }
    };
    let account_s = account.to_string();
    let mut handed_over = None;
    let mut accepted = true;
    let mut no_room = false;
    for m in messages.iter().take(DELIVERY_BATCH) {
        match parse_stored(&m.stanza) {
            Ok(stanza) if archived_id(&stanza, &account_s).is_some_and(|id| seen.contains(id)) => {
                tracing::trace!(account = %account, id = m.id, "already fetched from the archive");
            }
            Ok(stanza) => {
                let queued = if wait {
                    ctx.router.offer_waiting_to(to, stanza).await
                } else {
                    // In the session's own task: only while the queue has room, never closing
                    // the session for a backlog; the background task does the rest.
                    ctx.router.offer_to(to, stanza).await
                };
                match queued {
                    // An outbound hook dropped it: handed over all the same.
                    Offer::Queued | Offer::Dropped => {}
                    Offer::NoRoom => {
                        no_room = true;
                        break;
                    }
                    Offer::Gone => {
                        accepted = false;
                        break;
                    }
                }
            }
            Err(e) => {
                tracing::error!(account = %account, id = m.id, error = %e, "unreadable offline message dropped");
            }
        }
        handed_over = Some(m.id);
    }
    if let Some(up_to) = handed_over
        && let Err(e) = ctx
            .stores
            .offline
            .delete_up_to(localpart, domain, up_to)
            .await
    {
        // They stay stored and come again next time: duplicates, never loss.
        tracing::error!(account = %account, error = %e, "deleting delivered offline messages failed");
        return Batch::Done;
    }
    if accepted && (no_room || messages.len() > DELIVERY_BATCH) {
        Batch::More
    } else {
        Batch::Done
    }
}

impl Module for Offline {
    fn name(&self) -> &'static str {
        "offline"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        reg.stanza_hook(StanzaKind::Message, HookPoint::Offline, 0, self.clone());
        // Registered even with storage off, so that messages stored before still get delivered.
        reg.events(self.clone());
        if self.inner.max_messages > 0 {
            // XEP-0160 §4.
            reg.server_feature(FEATURE);
        }
    }
}

#[async_trait]
impl StanzaHook for Offline {
    async fn on_stanza(
        &self,
        ctx: &Context,
        _point: HookPoint,
        stanza: &mut Element,
    ) -> HookResult {
        if self.inner.max_messages == 0 {
            return HookResult::Pass;
        }
        match decide(stanza) {
            Decision::Pass => return HookResult::Pass,
            Decision::Drop => {
                tracing::trace!("standalone chat state for an unavailable account dropped");
                return HookResult::Handled;
            }
            Decision::Store => {}
        }
        let Some(account) = recipient(stanza) else {
            return HookResult::Pass;
        };
        let Some(node) = account.node() else {
            return HookResult::Pass;
        };
        let domain = account.domain().as_str();
        let text = stamped(stanza, domain, &clock::now_utc()).to_xml();
        let outcome = ctx
            .stores
            .offline
            .store(node.as_str(), domain, &text, self.inner.max_messages)
            .await;
        match outcome {
            Ok(OfflineOutcome::Stored { .. }) => {
                starling_metrics::offline_written();
                // Closes the race with a session that became available meanwhile (module docs).
                let resources = ctx.sessions.resources(&account).await;
                let best = resources
                    .iter()
                    // A session that is closing (one ending routes what it held through here)
                    // takes nothing more.
                    .filter(|e| e.receives_bare_messages() && !e.handle.is_closing())
                    .max_by_key(|e| e.priority);
                if let Some(entry) = best {
                    self.inner.deliver(ctx, &account, entry).await;
                }
                HookResult::Handled
            }
            Ok(OfflineOutcome::Full) => {
                tracing::debug!(account = %account, "offline queue full: message bounced");
                if stanza.attr("type") == Some("headline") {
                    // Stored only because of a <store/> hint: dropped by the router, as the RFC
                    // does with headlines.
                    return HookResult::Pass;
                }
                // XEP-0160 §2 step 3 answers a full queue with <service-unavailable/>; we answer
                // <resource-constraint/> (RFC 6120 §8.3.3.18, type wait, as ejabberd does), so
                // the sender's client can tell "try later" from "nobody will ever take this".
                let error = StanzaError::new(StanzaErrorCondition::ResourceConstraint)
                    .with_text(QUEUE_FULL_TEXT);
                ctx.router.route(error_reply(stanza, &error)).await;
                HookResult::Handled
            }
            Err(e) => {
                // Unstored: the router bounces it, so the sender knows.
                tracing::error!(account = %account, error = %e, "storing an offline message failed");
                HookResult::Pass
            }
        }
    }
}

#[async_trait]
impl EventListener for Offline {
    async fn on_event(&self, ctx: &Context, event: &Event) {
        let Event::Available(jid) = event else {
            return;
        };
        // XEP-0160 §2 step 5: only a resource with non-negative priority receives them.
        let Some(entry) = ctx.sessions.get(jid).await else {
            return;
        };
        if entry.receives_bare_messages() {
            self.inner.deliver(ctx, &jid.to_bare(), &entry).await;
        }
    }
}

#[cfg(test)]
mod tests;
