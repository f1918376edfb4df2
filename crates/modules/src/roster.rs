//! RFC 6121 §2: the roster. Get (with versioning, §2.6), set (add or update), remove (which also
//! cancels subscriptions in both directions, §2.5.2), and a push to every interested resource for
//! every change (§2.1.6).
//!
//! [`RosterService`] is shared with the presence module, which changes subscription states: both
//! go through [`RosterService::update`], which serialises changes per account, stores, pushes,
//! and announces the change as [`Event::RosterChanged`]. The dependency is one-way: the presence
//! module uses the roster service; this module never calls the presence module. What a removal
//! means for presence (§2.5.2: subscriptions cancelled both ways, the contact sees the user go
//! unavailable) is done by the presence module when it hears of the removal.
//!
//! # Hazards
//!
//! * Changes of one account's roster are serialised by a striped lock held only around the
//!   read-modify-write of the store, never while routing: routing can re-enter the presence
//!   module for another account (or the same one), and tokio mutexes are not reentrant.
//! * Items that only hold an inbound request ("Pending In" from a contact the user never added)
//!   are hidden: never shown in results or pushes (§3.1.3).
//! * Every change goes through [`RosterService::update`], which also enforces the limits
//!   ([`RosterLimits`]): a change that would add a visible item to a full roster, or one more
//!   hidden request than allowed, is not stored. The count is read under the account's lock, so
//!   concurrent changes cannot overshoot.
//! * Item size is bounded too ([`MAX_ITEM_BYTES`]), so a full roster stays a bounded result.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use starling_module_api::{
    Context, Event, EventListener, IqHandler, IqOutcome, IqRoute, IqTarget, IqType, Module,
    Registrar, SessionEntry, SessionId,
};
use starling_proto::{BareJid, Element, Jid, StanzaError, StanzaErrorCondition, ns};
use starling_storage::{RosterCounts, RosterItem, StorageError, Subscription};

/// Longest accepted item name and group name, in bytes (RFC 6121 §2.3.3: "greater than a
/// server-configured limit", answered with `<not-acceptable/>`); as long as a JID part may be
/// (RFC 7622 §3.1).
pub const MAX_NAME_BYTES: usize = 1023;
/// Most groups on one item (refused with `<not-acceptable/>` like the limits of §2.3.3: RFC 6120
/// §8.3.3.9, "does not meet criteria defined by the server").
pub const MAX_GROUPS: usize = 32;
/// Largest roster item as a client receives it: its `<item/>` serialised, with the longest
/// subscription attributes a server can give it. A roster set whose item would be larger is
/// refused with `<not-acceptable/>`, so a roster result holds at most about
/// `max_items` × 4 KiB. An item without name and groups always fits (a bare JID has at most
/// 2,047 bytes, none of which need escaping).
pub const MAX_ITEM_BYTES: usize = 4096;
/// Largest inbound subscription request stored whole for redelivery at each login (RFC 6121
/// §3.1.3: its Security Warning invites limits on "the number or size" of stored requests). A
/// larger one is stored without its child elements; it is delivered live as it came.
pub const MAX_STORED_REQUEST_BYTES: usize = 4096;

const LOCK_STRIPES: usize = 64;
/// Accounts remembered as "at a limit, already logged" (see [`RosterService::note_limit`]);
/// beyond it the memory is cleared, which at worst logs an account's refusal once more.
const MAX_LOGGED_AT_LIMIT: usize = 10_000;

/// The per-account limits of rosters and stored requests (`[roster]` in the configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RosterLimits {
    /// Most visible items on one roster.
    pub max_items: usize,
    /// Most hidden items: requests kept from contacts not on the roster (§3.1.3).
    pub max_pending_requests: usize,
}

impl Default for RosterLimits {
    fn default() -> Self {
        RosterLimits {
            max_items: 1000,
            max_pending_requests: 100,
        }
    }
}

/// Which limit a change ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Limit {
    Items,
    PendingRequests,
}

/// Why [`RosterService::update`] stored nothing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpdateError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The change would add a visible item to a roster holding `max_items` of them.
    #[error("the roster is full ({0} items)")]
    RosterFull(usize),
    /// The change would keep a request from one more contact not on the roster.
    #[error("{0} subscription requests are waiting already")]
    TooManyRequests(usize),
}

/// Roster state shared by the roster and presence modules.
pub struct RosterService {
    /// Sessions that requested the roster: "interested resources" (RFC 6121 §2.1.6).
    interested: Mutex<HashSet<SessionId>>,
    locks: Vec<tokio::sync::Mutex<()>>,
    next_push: AtomicU64,
    limits: RosterLimits,
    /// Accounts whose refusal at a limit was logged and that have not added anything of that kind
    /// since: refusals are logged once per account each time it reaches the limit.
    logged_at_limit: Mutex<HashSet<(BareJid, Limit)>>,
}

impl Default for RosterService {
    fn default() -> Self {
        RosterService::new(RosterLimits::default())
    }
}

/// The (localpart, domain) of a local account.
pub(crate) fn account_parts(jid: &BareJid) -> Option<(&str, &str)> {
    Some((jid.node()?.as_str(), jid.domain().as_str()))
}

/// A roster change as stored: the item before and after (`None`: absent).
pub(crate) struct Change {
    pub before: Option<RosterItem>,
    pub after: Option<RosterItem>,
}

impl RosterService {
    pub fn new(limits: RosterLimits) -> Self {
        RosterService {
            interested: Mutex::default(),
            locks: (0..LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            next_push: AtomicU64::new(1),
            limits,
            logged_at_limit: Mutex::default(),
        }
    }

    fn interested(&self) -> std::sync::MutexGuard<'_, HashSet<SessionId>> {
        self.interested.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set_interested(&self, id: SessionId) {
        self.interested().insert(id);
    }

    pub(crate) fn forget(&self, id: SessionId) {
        self.interested().remove(&id);
    }

    fn is_interested(&self, id: SessionId) -> bool {
        self.interested().contains(&id)
    }

    fn stripe(&self, account: &BareJid) -> &tokio::sync::Mutex<()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        account.hash(&mut h);
        // The modulo keeps the index below LOCK_STRIPES, which fits any usize.
        let i = usize::try_from(h.finish() % LOCK_STRIPES as u64).unwrap_or(0);
        &self.locks[i]
    }

    /// Logs a refusal at `limit` for `account`: once (at warn) each time the account reaches it,
    /// then only at debug until it adds something of that kind again
    /// ([`Self::note_below_limit`]).
    pub(crate) fn note_limit(&self, account: &BareJid, limit: Limit, err: &UpdateError) {
        if self.first_at_limit(account, limit) {
            tracing::warn!(%account, reason = %err, "roster limit reached; refusing further additions");
        } else {
            tracing::debug!(%account, reason = %err, "roster limit: refused");
        }
    }

    /// Whether this refusal is the first since `account` reached `limit`.
    fn first_at_limit(&self, account: &BareJid, limit: Limit) -> bool {
        let mut logged = self
            .logged_at_limit
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if logged.len() >= MAX_LOGGED_AT_LIMIT {
            logged.clear();
        }
        logged.insert((account.clone(), limit))
    }

    fn note_below_limit(&self, account: &BareJid, limit: Limit) {
        let mut logged = self
            .logged_at_limit
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !logged.is_empty() {
            logged.remove(&(account.clone(), limit));
        }
    }

    /// The error for adding one thing of kind `adds` to an account that holds `counts`, if that
    /// is over its limit.
    fn refusal(&self, adds: Limit, counts: RosterCounts) -> Option<UpdateError> {
        let full = |have: u64, max: usize| usize::try_from(have).map_or(true, |n| n >= max);
        match adds {
            Limit::Items if full(counts.visible, self.limits.max_items) => {
                Some(UpdateError::RosterFull(self.limits.max_items))
            }
            Limit::PendingRequests if full(counts.hidden, self.limits.max_pending_requests) => {
                Some(UpdateError::TooManyRequests(
                    self.limits.max_pending_requests,
                ))
            }
            _ => None,
        }
    }

    /// Whether a subscription request from `from` to the local `account` would be refused at
    /// [`RosterLimits::max_pending_requests`]: `from` is not on the roster, has no request
    /// waiting, and the account keeps as many requests as allowed. Read without the account's
    /// lock: [`Self::update`] decides for good when the request arrives.
    pub(crate) async fn request_would_be_refused(
        &self,
        ctx: &Context,
        account: &BareJid,
        from: &str,
    ) -> Result<Option<UpdateError>, StorageError> {
        let Some((local, domain)) = account_parts(account) else {
            return Ok(None);
        };
        if ctx
            .stores
            .rosters
            .item(local, domain, from)
            .await?
            .is_some()
        {
            return Ok(None);
        }
        let counts = ctx.stores.rosters.counts(local, domain).await?;
        Ok(self.refusal(Limit::PendingRequests, counts))
    }

    /// Reads the item for `contact`, lets `f` change it (set to `None` to remove it), stores the
    /// result if it differs and the limits allow it, pushes it to the account's interested
    /// resources and emits [`Event::RosterChanged`] (awaiting its listeners: the presence module
    /// acts on a removal before this returns). Returns the change and the new roster version
    /// when something was stored.
    pub(crate) async fn update(
        &self,
        ctx: &Context,
        account: &BareJid,
        contact: &BareJid,
        f: impl FnOnce(&mut Option<RosterItem>),
    ) -> Result<(Change, Option<u64>), UpdateError> {
        let Some((local, domain)) = account_parts(account) else {
            return Err(StorageError::NotFound.into());
        };
        let contact_str = contact.to_string();
        let contact_str = contact_str.as_str();
        let (change, version) = {
            let _guard = self.stripe(account).lock().await;
            let before = ctx.stores.rosters.item(local, domain, contact_str).await?;
            let mut after = before.clone();
            f(&mut after);
            // An item kept only for a request that is no longer pending disappears.
            if after.as_ref().is_some_and(|i| i.hidden && !i.pending_in) {
                after = None;
            }
            if let Some(adds) = addition(before.as_ref(), after.as_ref()) {
                let counts = ctx.stores.rosters.counts(local, domain).await?;
                if let Some(e) = self.refusal(adds, counts) {
                    self.note_limit(account, adds, &e);
                    return Err(e);
                }
                self.note_below_limit(account, adds);
            }
            let version = if after == before {
                None
            } else {
                match &after {
                    Some(item) => Some(ctx.stores.rosters.put_item(local, domain, item).await?),
                    None => {
                        ctx.stores
                            .rosters
                            .remove_item(local, domain, contact_str)
                            .await?
                    }
                }
            };
            (Change { before, after }, version)
        };
        if let Some(ver) = version {
            let visible_before = change.before.as_ref().is_some_and(|i| !i.hidden);
            match &change.after {
                Some(item) if !item.hidden => {
                    if visible_before && change.before.as_ref().map(shown) == Some(shown(item)) {
                        // Only hidden fields changed (the stored request): nothing to push.
                    } else {
                        self.push(ctx, account, item_element(item), ver).await;
                    }
                }
                _ if visible_before => {
                    let removed = Element::new("item", ns::ROSTER)
                        .with_attr("jid", contact_str)
                        .with_attr("subscription", "remove");
                    self.push(ctx, account, removed, ver).await;
                }
                _ => {}
            }
            ctx.router
                .emit(Event::RosterChanged {
                    account: account.clone(),
                    contact: contact.clone(),
                    before: change.before.clone().map(Box::new),
                    after: change.after.clone().map(Box::new),
                })
                .await;
        }
        Ok((change, version))
    }

    /// Sends a roster push with `item` to every interested resource of `account` (§2.1.6).
    pub(crate) async fn push(&self, ctx: &Context, account: &BareJid, item: Element, ver: u64) {
        for entry in ctx.sessions.resources(account).await.iter() {
            if !self.is_interested(entry.handle.id()) {
                continue;
            }
            let id = self.next_push.fetch_add(1, Ordering::Relaxed);
            // §2.1.6: a push has no 'from' (it comes from the account itself).
            let push = Element::new("iq", ns::CLIENT)
                .with_attr("type", "set")
                .with_attr("id", format!("push{id}"))
                .with_attr("to", entry.jid.to_string())
                .with_child(
                    Element::new("query", ns::ROSTER)
                        .with_attr("ver", ver.to_string())
                        .with_child(item.clone()),
                );
            ctx.send_to(entry, push).await;
        }
    }
}

/// What replacing `before` by `after` adds that a limit counts: a visible item (new, or a hidden
/// one made visible) or a hidden one (a request from a contact not on the roster).
fn addition(before: Option<&RosterItem>, after: Option<&RosterItem>) -> Option<Limit> {
    let visible = |i: Option<&RosterItem>| i.is_some_and(|i| !i.hidden);
    let hidden = |i: Option<&RosterItem>| i.is_some_and(|i| i.hidden);
    if visible(after) && !visible(before) {
        Some(Limit::Items)
    } else if hidden(after) && !hidden(before) {
        Some(Limit::PendingRequests)
    } else {
        None
    }
}

/// What a client sees of an item (everything but the stored request and the hidden flag).
fn shown(item: &RosterItem) -> (Option<&str>, Subscription, bool, bool, &[String]) {
    (
        item.name.as_deref(),
        item.subscription,
        item.ask_out,
        item.preapproved,
        &item.groups,
    )
}

/// The `<item/>` of a roster result or push (RFC 6121 §2.1.2).
pub(crate) fn item_element(item: &RosterItem) -> Element {
    let mut el = Element::new("item", ns::ROSTER).with_attr("jid", item.jid.as_str());
    if let Some(name) = &item.name {
        el.set_attr("name", name.as_str());
    }
    el.set_attr("subscription", item.subscription.as_str());
    if item.ask_out {
        // §2.1.2.2: only "subscribe" exists.
        el.set_attr("ask", "subscribe");
    }
    if item.preapproved {
        // §2.1.2.1 / §3.4
        el.set_attr("approved", "true");
    }
    for g in &item.groups {
        el.append_child(Element::new("group", ns::ROSTER).with_text(g.as_str()));
    }
    el
}

/// The roster module.
pub struct Roster {
    service: Arc<RosterService>,
}

impl Roster {
    pub fn new(service: Arc<RosterService>) -> Self {
        Roster { service }
    }
}

impl Module for Roster {
    fn name(&self) -> &'static str {
        "roster"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        reg.iq(
            IqTarget::Account,
            IqType::Get,
            ns::ROSTER,
            "query",
            self.clone(),
        );
        reg.iq(
            IqTarget::Account,
            IqType::Set,
            ns::ROSTER,
            "query",
            self.clone(),
        );
        // RFC 6121 §2.6.1: roster versioning is advertised as a stream feature.
        reg.stream_feature(Element::new("ver", ns::ROSTER_VER));
        reg.events(self);
    }
}

#[async_trait]
impl EventListener for Roster {
    async fn on_event(&self, _ctx: &Context, event: &Event) {
        if let Event::Ended(last) = event {
            // A session that ended is no longer an interested resource (§2.1.6).
            self.service.forget(last.handle.id());
        }
    }
}

fn error(cond: StanzaErrorCondition, text: &str) -> IqOutcome {
    IqOutcome::Error(StanzaError::new(cond).with_text(text))
}

fn internal(e: &StorageError) -> IqOutcome {
    tracing::error!(error = %e, "roster storage failed");
    IqOutcome::Error(StanzaError::new(StanzaErrorCondition::InternalServerError))
}

/// The answer to a roster change [`RosterService::update`] did not store.
fn refused(e: &UpdateError) -> IqOutcome {
    match e {
        UpdateError::Storage(e) => internal(e),
        _ => IqOutcome::Error(limit_error(e)),
    }
}

/// The stanza error for a change refused at a limit. RFC 6121 names none for a full roster
/// (§2.3.3: "other stanza errors can occur"), so RFC 6120 §8.3.3 decides:
/// * a full roster: `<policy-violation/>` (§8.3.3.12: a local service policy, stated in the
///   `<text/>`; type "modify": removing an item makes room). Not `<not-allowed/>` (§8.3.3.10:
///   "does not allow any entity to perform the action", which RFC 6121 §2.3.3 uses for servers
///   that refuse roster sets altogether) nor `<resource-constraint/>` (the server is not busy).
/// * too many stored requests for the contact: `<resource-constraint/>` (§8.3.3.18: the
///   recipient "lacks the system resources necessary to service the request"; type "wait": room
///   is made when the contact answers requests). The sender can do nothing else about it.
pub(crate) fn limit_error(e: &UpdateError) -> StanzaError {
    let cond = match e {
        UpdateError::RosterFull(_) => StanzaErrorCondition::PolicyViolation,
        UpdateError::TooManyRequests(_) => StanzaErrorCondition::ResourceConstraint,
        // Not a limit; callers log and answer storage failures themselves.
        UpdateError::Storage(_) => {
            return StanzaError::new(StanzaErrorCondition::InternalServerError);
        }
    };
    StanzaError::new(cond).with_text(e.to_string())
}

/// The size of an item with these values as a client can receive it: serialised, with every
/// state attribute at its longest (compared with [`MAX_ITEM_BYTES`]).
fn item_bytes(jid: &str, name: Option<&str>, groups: &[String]) -> usize {
    let item = RosterItem {
        name: name.map(str::to_owned),
        subscription: Subscription::Both,
        ask_out: true,
        preapproved: true,
        groups: groups.to_vec(),
        ..RosterItem::new(jid)
    };
    item_element(&item).to_xml().len()
}

#[async_trait]
impl IqHandler for Roster {
    async fn handle_iq(&self, ctx: &Context, req: IqRoute<'_>) -> IqOutcome {
        // §2.1.5 / §2.3.3: only the account itself reads or changes its roster; nothing about
        // another account's roster is disclosed.
        let Ok(from) = req.from.try_as_full() else {
            return error(
                StanzaErrorCondition::Forbidden,
                "not a session of this account",
            );
        };
        let account = from.to_bare();
        if req.account != Some(&account) {
            return error(StanzaErrorCondition::Forbidden, "not your roster");
        }
        let Some(session) = ctx.sessions.get(from).await else {
            return error(
                StanzaErrorCondition::Forbidden,
                "not a session of this account",
            );
        };
        match req.iq.attr("type") {
            Some("get") => self.get(ctx, &account, &session, req.payload).await,
            _ => self.set(ctx, &account, req.payload).await,
        }
    }
}

impl Roster {
    /// §2.2 roster get, §2.6.3 with versioning.
    async fn get(
        &self,
        ctx: &Context,
        account: &BareJid,
        session: &SessionEntry,
        query: &Element,
    ) -> IqOutcome {
        let Some((local, domain)) = account_parts(account) else {
            return error(StanzaErrorCondition::Forbidden, "not an account");
        };
        // §2.2.1: the request makes this resource interested, whatever the answer.
        self.service.set_interested(session.handle.id());
        let version = match ctx.stores.rosters.version(local, domain).await {
            Ok(v) => v,
            Err(e) => return internal(&e),
        };
        let ver = version.to_string();
        if query.attr("ver") == Some(ver.as_str()) {
            // §2.6.3: the client's copy is current: an empty result, changes come as pushes.
            return IqOutcome::Result(None);
        }
        let items = match ctx.stores.rosters.items(local, domain).await {
            Ok(items) => items,
            Err(e) => return internal(&e),
        };
        let mut result = Element::new("query", ns::ROSTER).with_attr("ver", ver);
        for item in items.iter().filter(|i| !i.hidden) {
            result.append_child(item_element(item));
        }
        IqOutcome::Result(Some(result))
    }

    /// §2.3 add/update, §2.5 remove.
    async fn set(&self, ctx: &Context, account: &BareJid, query: &Element) -> IqOutcome {
        let mut items = query.children();
        let (Some(item), None) = (items.next(), items.next()) else {
            // §2.3.3: exactly one item.
            return error(
                StanzaErrorCondition::BadRequest,
                "a roster set carries exactly one item",
            );
        };
        if item.name() != "item" || item.ns() != ns::ROSTER {
            return error(StanzaErrorCondition::BadRequest, "expected <item/>");
        }
        let Some(contact) = item.attr("jid").and_then(|j| Jid::new(j).ok()) else {
            return error(
                StanzaErrorCondition::BadRequest,
                "the item needs a valid 'jid'",
            );
        };
        // Subscriptions are between bare JIDs; an item's JID is kept as a bare JID.
        let contact = contact.to_bare();
        if item.attr("subscription") == Some("remove") {
            return self.remove(ctx, account, &contact).await;
        }
        // §2.1.2.2 / §2.1.2.5: 'ask' and any other 'subscription' value are the server's to set;
        // a client's values are ignored.
        let name = item.attr("name").map(str::to_owned);
        if name.as_ref().is_some_and(|n| n.len() > MAX_NAME_BYTES) {
            return error(StanzaErrorCondition::NotAcceptable, "the name is too long");
        }
        let mut groups: Vec<String> = Vec::new();
        for g in item.children() {
            if g.name() != "group" || g.ns() != ns::ROSTER {
                continue;
            }
            let text = g.text();
            if text.is_empty() {
                // §2.3.3: an empty group name.
                return error(StanzaErrorCondition::NotAcceptable, "a group name is empty");
            }
            if text.len() > MAX_NAME_BYTES {
                return error(
                    StanzaErrorCondition::NotAcceptable,
                    "a group name is too long",
                );
            }
            if groups.contains(&text) {
                // §2.3.3: duplicate groups.
                return error(StanzaErrorCondition::BadRequest, "a group is named twice");
            }
            if groups.len() == MAX_GROUPS {
                // Checked before the next one is compared with all the others.
                return error(StanzaErrorCondition::NotAcceptable, "too many groups");
            }
            groups.push(text);
        }
        let contact_str = contact.to_string();
        if item_bytes(&contact_str, name.as_deref(), &groups) > MAX_ITEM_BYTES {
            return error(
                StanzaErrorCondition::NotAcceptable,
                "the item is too large (name and groups)",
            );
        }
        let res = self
            .service
            .update(ctx, account, &contact, |slot| {
                let item = slot.get_or_insert_with(|| RosterItem::new(contact_str.clone()));
                item.name = name;
                item.groups = groups;
                item.hidden = false;
            })
            .await;
        match res {
            Ok(_) => IqOutcome::Result(None),
            Err(e) => refused(&e),
        }
    }

    /// §2.5: remove the item. Cancelling the subscriptions both ways (§2.5.2) is the presence
    /// module's, which hears of the removal ([`Event::RosterChanged`]) before `update` returns,
    /// so the stanzas it sends precede this IQ's result as §2.5.2 describes.
    async fn remove(&self, ctx: &Context, account: &BareJid, contact: &BareJid) -> IqOutcome {
        let res = self
            .service
            .update(ctx, account, contact, |slot| {
                if slot.as_ref().is_some_and(|i| !i.hidden) {
                    *slot = None;
                }
            })
            .await;
        match res {
            Ok((
                Change {
                    before: Some(_),
                    after: None,
                },
                _,
            )) => IqOutcome::Result(None),
            // §2.5.3: removing an item that is not there.
            Ok(_) => error(StanzaErrorCondition::ItemNotFound, "no such roster item"),
            Err(e) => refused(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn jid(s: &str) -> BareJid {
        BareJid::new(s).unwrap()
    }

    #[test]
    fn a_limit_is_logged_once_per_account_each_time_it_is_reached() {
        let service = RosterService::default();
        let (alice, bob) = (jid("alice@localhost"), jid("bob@localhost"));
        assert!(service.first_at_limit(&alice, Limit::PendingRequests));
        assert!(!service.first_at_limit(&alice, Limit::PendingRequests));
        assert!(!service.first_at_limit(&alice, Limit::PendingRequests));
        // Another account, another limit: their own first time.
        assert!(service.first_at_limit(&bob, Limit::PendingRequests));
        assert!(service.first_at_limit(&alice, Limit::Items));
        // Once something was added again, reaching the limit is a new event.
        service.note_below_limit(&alice, Limit::PendingRequests);
        assert!(service.first_at_limit(&alice, Limit::PendingRequests));
        assert!(!service.first_at_limit(&bob, Limit::PendingRequests));
    }

    #[test]
    fn the_memory_of_logged_accounts_is_bounded() {
        let service = RosterService::default();
        for i in 0..MAX_LOGGED_AT_LIMIT + 10 {
            let account = jid(&format!("u{i}@localhost"));
            assert!(service.first_at_limit(&account, Limit::Items));
        }
        let held = service.logged_at_limit.lock().unwrap().len();
        assert!(held <= MAX_LOGGED_AT_LIMIT, "{held}");
    }

    #[test]
    fn any_item_without_name_and_groups_fits() {
        // The longest bare JID (RFC 7622 §3.1: 1023 bytes per part) with every state attribute.
        let longest = format!("{}@{}", "a".repeat(1023), "b".repeat(1023));
        assert!(item_bytes(&longest, None, &[]) <= MAX_ITEM_BYTES);
        // The bound is what a client receives: a name that needs escaping counts escaped.
        let n = MAX_NAME_BYTES.min(MAX_ITEM_BYTES / 5);
        let amps = "&".repeat(n);
        assert!(item_bytes("a@b", Some(&amps), &[]) > 5 * n);
    }

    #[test]
    fn limits_refuse_only_additions_beyond_them() {
        let service = RosterService::new(RosterLimits {
            max_items: 2,
            max_pending_requests: 1,
        });
        let counts = |visible, hidden| RosterCounts { visible, hidden };
        assert!(service.refusal(Limit::Items, counts(1, 5)).is_none());
        assert!(matches!(
            service.refusal(Limit::Items, counts(2, 0)),
            Some(UpdateError::RosterFull(2))
        ));
        assert!(
            service
                .refusal(Limit::PendingRequests, counts(9, 0))
                .is_none()
        );
        assert!(matches!(
            service.refusal(Limit::PendingRequests, counts(0, 1)),
            Some(UpdateError::TooManyRequests(1))
        ));
        let visible = RosterItem::new("a@b");
        let hidden = RosterItem {
            hidden: true,
            pending_in: true,
            ..RosterItem::new("a@b")
        };
        assert_eq!(addition(None, Some(&visible)), Some(Limit::Items));
        assert_eq!(addition(Some(&hidden), Some(&visible)), Some(Limit::Items));
        assert_eq!(addition(None, Some(&hidden)), Some(Limit::PendingRequests));
        assert_eq!(addition(Some(&visible), Some(&visible)), None);
        assert_eq!(addition(Some(&hidden), Some(&hidden)), None);
        assert_eq!(addition(Some(&visible), None), None);
    }
}
