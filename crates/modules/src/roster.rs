//! RFC 6121 §2: the roster. Get (with versioning, §2.6), set (add or update), remove (which also
//! cancels subscriptions in both directions, §2.5.2), and a push to every interested resource for
//! every change (§2.1.6).
//!
//! [`RosterService`] is shared with the presence module, which changes subscription states: both
//! go through [`RosterService::update`], which serialises changes per account, stores, and pushes.
//!
//! # Hazards
//!
//! * Changes of one account's roster are serialised by a striped lock held only around the
//!   read-modify-write of the store, never while routing: routing can re-enter the presence
//!   module for another account (or the same one), and tokio mutexes are not reentrant.
//! * Items that only hold an inbound request ("Pending In" from a contact the user never added)
//!   are hidden: never shown in results or pushes (§3.1.3).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use starling_module_api::{
    Context, IqHandler, IqOutcome, IqRoute, IqTarget, IqType, Lifecycle, Module, Registrar,
    SessionEntry, SessionId,
};
use starling_proto::{BareJid, Element, Jid, StanzaError, StanzaErrorCondition, ns};
use starling_storage::{RosterItem, StorageError, Subscription};

use crate::subscription::{State, SubKind};

/// Longest accepted item name and group name, in bytes (RFC 6121 §2.3.3: a server-configured
/// limit, answered with `<not-acceptable/>`).
pub const MAX_NAME_BYTES: usize = 1024;
/// Most groups on one item.
pub const MAX_GROUPS: usize = 64;

const LOCK_STRIPES: usize = 64;

/// Roster state shared by the roster and presence modules.
pub struct RosterService {
    /// Sessions that requested the roster: "interested resources" (RFC 6121 §2.1.6).
    interested: Mutex<HashSet<SessionId>>,
    locks: Vec<tokio::sync::Mutex<()>>,
    next_push: AtomicU64,
}

impl Default for RosterService {
    fn default() -> Self {
        RosterService {
            interested: Mutex::default(),
            locks: (0..LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            next_push: AtomicU64::new(1),
        }
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

    /// Reads the item for `contact`, lets `f` change it (set to `None` to remove it), stores the
    /// result if it differs, and pushes it to the account's interested resources. Returns the
    /// change and the new roster version when something was stored.
    pub(crate) async fn update(
        &self,
        ctx: &Context,
        account: &BareJid,
        contact: &str,
        f: impl FnOnce(&mut Option<RosterItem>),
    ) -> Result<(Change, Option<u64>), StorageError> {
        let Some((local, domain)) = account_parts(account) else {
            return Err(StorageError::NotFound);
        };
        let (change, version) = {
            let _guard = self.stripe(account).lock().await;
            let before = ctx.stores.rosters.item(local, domain, contact).await?;
            let mut after = before.clone();
            f(&mut after);
            // An item kept only for a request that is no longer pending disappears.
            if after.as_ref().is_some_and(|i| i.hidden && !i.pending_in) {
                after = None;
            }
            let version = if after == before {
                None
            } else {
                match &after {
                    Some(item) => Some(ctx.stores.rosters.put_item(local, domain, item).await?),
                    None => {
                        ctx.stores
                            .rosters
                            .remove_item(local, domain, contact)
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
                        self.push(ctx, account, item_element(item), ver);
                    }
                }
                _ if visible_before => {
                    let removed = Element::new("item", ns::ROSTER)
                        .with_attr("jid", contact)
                        .with_attr("subscription", "remove");
                    self.push(ctx, account, removed, ver);
                }
                _ => {}
            }
        }
        Ok((change, version))
    }

    /// Sends a roster push with `item` to every interested resource of `account` (§2.1.6).
    pub(crate) fn push(&self, ctx: &Context, account: &BareJid, item: Element, ver: u64) {
        for entry in ctx.sessions.resources(account) {
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
            entry.handle.send(push);
        }
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
        reg.lifecycle(self);
    }
}

#[async_trait]
impl Lifecycle for Roster {
    async fn session_ended(&self, _ctx: &Context, last: &SessionEntry) {
        self.service.forget(last.handle.id());
    }
}

fn error(cond: StanzaErrorCondition, text: &str) -> IqOutcome {
    IqOutcome::Error(StanzaError::new(cond).with_text(text))
}

fn internal(e: &StorageError) -> IqOutcome {
    tracing::error!(error = %e, "roster storage failed");
    IqOutcome::Error(StanzaError::new(StanzaErrorCondition::InternalServerError))
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
        let Some(session) = ctx.sessions.get(from) else {
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
            groups.push(text);
        }
        if groups.len() > MAX_GROUPS {
            return error(StanzaErrorCondition::NotAcceptable, "too many groups");
        }
        let contact_str = contact.to_string();
        let res = self
            .service
            .update(ctx, account, &contact_str, |slot| {
                let item = slot.get_or_insert_with(|| RosterItem::new(contact_str.clone()));
                item.name = name;
                item.groups = groups;
                item.hidden = false;
            })
            .await;
        match res {
            Ok(_) => IqOutcome::Result(None),
            Err(e) => internal(&e),
        }
    }

    /// §2.5: remove the item, cancelling subscriptions both ways (§2.5.2).
    async fn remove(&self, ctx: &Context, account: &BareJid, contact: &BareJid) -> IqOutcome {
        let contact_str = contact.to_string();
        let res = self
            .service
            .update(ctx, account, &contact_str, |slot| {
                if slot.as_ref().is_some_and(|i| !i.hidden) {
                    *slot = None;
                }
            })
            .await;
        let before = match res {
            Ok((
                Change {
                    before: Some(b),
                    after: None,
                },
                _,
            )) => b,
            Ok(_) => {
                // §2.5.3: removing an item that is not there.
                return error(StanzaErrorCondition::ItemNotFound, "no such roster item");
            }
            Err(e) => return internal(&e),
        };
        let s = State::of(Some(&before));
        // §2.5.2: the contact's subscription to the user ends (and a request of theirs is
        // refused) with `unsubscribed`, the user's (and a request of the user's) with
        // `unsubscribe`; both are stamped from the user's bare JID.
        if s.from || s.pending_in {
            crate::presence::send_unavailable_to(ctx, account, contact).await;
            ctx.router
                .route(subscription_stanza(SubKind::Unsubscribed, account, contact))
                .await;
        }
        if s.to || s.pending_out {
            ctx.router
                .route(subscription_stanza(SubKind::Unsubscribe, account, contact))
                .await;
        }
        IqOutcome::Result(None)
    }
}

/// A subscription stanza from `from` to `to` (bare JIDs), as the server generates it.
pub(crate) fn subscription_stanza(kind: SubKind, from: &BareJid, to: &BareJid) -> Element {
    Element::new("presence", ns::CLIENT)
        .with_attr("type", kind.as_str())
        .with_attr("from", from.to_string())
        .with_attr("to", to.to_string())
}
