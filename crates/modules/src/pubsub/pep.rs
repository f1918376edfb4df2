//! XEP-0163 Personal Eventing Protocol: every account is a pubsub service at its bare JID.
//!
//! - Requests (`pubsub` and `pubsub#owner` IQs to the account, or without `to` from its own
//!   resources) go to the [`Engine`] with PEP's defaults: nodes auto-created by the owner's first
//!   publish (§3), `presence` access by default, one item kept (§8).
//! - Notifications (§4.3) go from the bare JID, as `headline` messages, to:
//!   the owner's available resources, and the available resources of contacts subscribed to the
//!   owner's presence (`from`/`both`) that the access model lets read the node, in both cases
//!   only those with non-negative priority whose XEP-0115 caps include `NODE+notify` (§4.3.1
//!   filtered notifications; caps resolved once per hash by [`CapsCache`]); and to explicit
//!   subscribers (XEP-0060 §6.1) the access model still admits: a full JID once, a bare JID at
//!   its interested resources, or at the bare JID when none is known (§4.3.2). Each goes through
//!   the router, so blocking (XEP-0191) drops what a blocked JID would get (§4.3.3 item 3).
//! - The last item of each node (`send_last_published_item` `on_sub_and_presence`) goes to a
//!   resource as soon as its interests are known after its initial presence (a new caps `ver`
//!   counts as new), for the account's own nodes and those of the contacts it is subscribed to
//!   (`to`/`both`), with a XEP-0203 `<delay/>` (§4.3.4).
//! - disco#info of the account shows `pubsub/pep` and the features (§6.1); disco#items lists
//!   the nodes the requester may read (XEP-0060 §5.2), disco#info of a node its identity (§5.3).
//!
//! Contacts at other servers get nothing until federation exists.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use starling_module_api::{
    Context, DiscoNodes, Event, EventListener, Identity, IqHandler, IqOutcome, IqRoute, IqTarget,
    IqType, Module, Registrar, SessionEntry,
};
use starling_proto::{BareJid, Element, FullJid, Jid, StanzaError, StanzaErrorCondition, ns};
use starling_storage::Subscription;

use super::config::{AccessModel, NodeConfiguration, SendLast};
use super::engine::{
    Creators, Engine, NodeCache, NodeEvent, Service, item_element, shares_presence,
};
use super::{FEATURES, Limits, NS, NS_EVENT, NS_OWNER, notification, shared_notification};
use crate::caps::{CapsCache, CapsWatcher};

/// Hears of every change to a PEP node made by a request (publish, retract, purge, delete),
/// notified or not: features that keep another representation of PEP data in step (XEP-0398
/// avatars in the vCard, XEP-0402 §5 bookmarks in private XML). What they publish themselves
/// through [`Pep::publish_for`] is not reported back.
#[async_trait]
pub trait PepObserver: Send + Sync {
    async fn changed(&self, ctx: &Context, owner: &BareJid, event: &NodeEvent);
}

/// The PEP module.
pub struct Pep {
    engine: Engine,
    caps: Arc<CapsCache>,
    observers: std::sync::Mutex<Vec<Arc<dyn PepObserver>>>,
    /// Each owner's local contacts subscribed to its presence (`from`/`both`), with their roster
    /// groups: whom a publication may notify, read once and kept until the owner's roster
    /// changes (`Event::RosterChanged`). A read that raced with a change is not kept.
    subscribers: std::sync::Mutex<HashMap<BareJid, Subscribers>>,
    subscribers_generation: AtomicU64,
}

/// An owner's local presence subscribers and their roster groups.
type Subscribers = Arc<[(BareJid, Vec<String>)]>;

/// Owners whose presence subscribers are kept; beyond, the memory starts afresh.
const MAX_SUBSCRIBER_LISTS: usize = 100_000;

impl Pep {
    pub fn new(limits: Limits, caps: Arc<CapsCache>) -> Arc<Pep> {
        let pep = Arc::new(Pep {
            engine: Engine {
                limits,
                defaults: NodeConfiguration::pep_default(),
                personal: true,
                creators: Creators::ServiceOwner,
                cache: NodeCache::default(),
            },
            caps: caps.clone(),
            observers: std::sync::Mutex::default(),
            subscribers: std::sync::Mutex::default(),
            subscribers_generation: AtomicU64::new(0),
        });
        caps.watch(pep.clone());
        pep
    }

    /// Adds an observer (at start).
    pub fn observe(&self, observer: Arc<dyn PepObserver>) {
        self.observers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(observer);
    }

    fn observers(&self) -> Vec<Arc<dyn PepObserver>> {
        self.observers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Publishes `publish` (a `<publish/>` of the pubsub namespace, with `options` as
    /// `<publish-options/>`) to `owner`'s PEP service on the account's behalf, and notifies.
    pub async fn publish_for(
        &self,
        ctx: &Context,
        owner: &BareJid,
        publish: &Element,
        options: Option<&Element>,
    ) -> Result<(), StanzaError> {
        let service = Service::pep(owner);
        let events = self
            .engine
            .publish_as(ctx, &service, &Jid::from(owner.clone()), publish, options)
            .await?;
        for event in &events {
            self.notify(ctx, event).await;
        }
        Ok(())
    }

    /// Retracts items (`<retract/>`) on `owner`'s behalf, like [`publish_for`](Self::publish_for).
    pub async fn retract_for(
        &self,
        ctx: &Context,
        owner: &BareJid,
        retract: &Element,
    ) -> Result<(), StanzaError> {
        let service = Service::pep(owner);
        let events = self
            .engine
            .retract_as(ctx, &service, &Jid::from(owner.clone()), retract)
            .await?;
        for event in &events {
            self.notify(ctx, event).await;
        }
        Ok(())
    }

    /// The items of `owner`'s `node`, newest first; empty when there is no such node.
    pub async fn items_of(&self, ctx: &Context, owner: &BareJid, node: &str) -> Vec<Element> {
        let key = Service::pep(owner).key(node);
        let Ok(items) = ctx.stores.pubsub.items(&key, None).await else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|i| item_element(NS, i, true).ok())
            .collect()
    }

    /// Whether `owner` has the PEP node `node`.
    pub async fn has_node(&self, ctx: &Context, owner: &BareJid, node: &str) -> bool {
        let key = Service::pep(owner).key(node);
        matches!(ctx.stores.pubsub.node(&key).await, Ok(Some(_)))
    }

    fn subscriber_lists(&self) -> std::sync::MutexGuard<'_, HashMap<BareJid, Subscribers>> {
        self.subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `owner`'s local presence subscribers (see the field).
    async fn presence_subscribers(&self, ctx: &Context, owner: &BareJid) -> Subscribers {
        if let Some(known) = self.subscriber_lists().get(owner) {
            return known.clone();
        }
        let generation = self.subscribers_generation.load(Ordering::Acquire);
        let Some((local, domain)) = crate::roster::account_parts(owner) else {
            return Arc::from([]);
        };
        let roster = match ctx.stores.rosters.items(local, domain).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%owner, error = %e, "PEP notification: roster unreadable");
                return Arc::from([]);
            }
        };
        let list: Subscribers = roster
            .into_iter()
            .filter(|item| shares_presence(item.subscription))
            .filter_map(|item| {
                let contact = BareJid::new(&item.jid).ok()?;
                // Contacts at other servers get nothing until federation exists.
                ctx.is_local_domain(contact.domain().as_str())
                    .then_some((contact, item.groups))
            })
            .collect();
        let mut lists = self.subscriber_lists();
        if self.subscribers_generation.load(Ordering::Acquire) == generation {
            if lists.len() >= MAX_SUBSCRIBER_LISTS {
                lists.clear();
            }
            lists.insert(owner.clone(), list.clone());
        }
        list
    }

    fn forget_subscribers(&self, owner: &BareJid) {
        let mut lists = self.subscriber_lists();
        self.subscribers_generation.fetch_add(1, Ordering::AcqRel);
        lists.remove(owner);
    }

    /// Whether the resource `entry` wants notifications of `node` (§4.3.1): available with a
    /// non-negative priority, advertising `node+notify`.
    fn interested(&self, entry: &SessionEntry, notify: &str) -> bool {
        entry.receives_bare_messages()
            && self
                .caps
                .features(&entry.jid)
                .is_some_and(|f| f.binary_search_by(|v| v.as_str().cmp(notify)).is_ok())
    }

    /// Sends `event` to everyone who should hear of it (see the module docs).
    async fn notify(&self, ctx: &Context, event: &NodeEvent) {
        let Some(owner) = &event.service.owner else {
            return;
        };
        if !event.notify {
            return;
        }
        if let Some(to) = &event.only_to {
            route_notification(ctx, owner, &to.to_string(), event, None).await;
            return;
        }
        let notify = format!("{}+notify", event.node);
        // Who got one, when explicit subscribers follow (each gets one notification at most).
        let track = !event.subscriptions.is_empty();
        let mut sent: HashSet<FullJid> = HashSet::new();
        let message = shared_notification(&owner.to_string(), event);
        // The owner's resources, then those of the contacts sharing presence with the owner
        // that the access model lets read the node; straight to their sessions, through the
        // outbound path (where blocking drops what a blocked contact would get).
        for entry in ctx.sessions.resources(owner).await.iter() {
            if self.interested(entry, &notify) && (!track || sent.insert(entry.jid.clone())) {
                send_copy(ctx, entry, &message).await;
            }
        }
        // The node's affiliations decide before the access model (XEP-0060 §4.1): outcasts
        // never, members, publishers and owners always. Read from the engine's cache, not per
        // contact.
        let cached = self
            .engine
            .cached(ctx, &event.service.key(&event.node))
            .await
            .ok()
            .flatten();
        let affiliations = cached.as_ref().map_or(&[][..], |c| &c.affiliations[..]);
        for (contact, groups) in self.presence_subscribers(ctx, owner).await.iter() {
            let affiliation = if affiliations.is_empty() {
                None
            } else {
                let jid = contact.to_string();
                affiliations
                    .iter()
                    .find(|(j, _)| *j == jid)
                    .map(|(_, a)| a.as_str())
            };
            let allowed = match (affiliation, event.config.access_model) {
                (Some("outcast"), _) => false,
                (Some("owner" | "publisher" | "member"), _) => true,
                (_, AccessModel::Open | AccessModel::Presence) => true,
                (_, AccessModel::Roster) => groups
                    .iter()
                    .any(|g| event.config.roster_groups_allowed.contains(g)),
                (_, AccessModel::Whitelist) => false,
            };
            if !allowed {
                continue;
            }
            for entry in ctx.sessions.resources(contact).await.iter() {
                if self.interested(entry, &notify) && (!track || sent.insert(entry.jid.clone())) {
                    send_copy(ctx, entry, &message).await;
                }
            }
        }
        // Explicit subscribers.
        for s in &event.subscriptions {
            if s.state != "subscribed" {
                continue;
            }
            let Ok(jid) = Jid::new(&s.jid) else {
                continue;
            };
            let bare = jid.to_bare();
            if bare != *owner && !self.admitted(ctx, event, &bare).await {
                continue;
            }
            let subid = Some(s.subid.as_str());
            match jid.try_into_full() {
                Ok(full) => {
                    if sent.insert(full.clone()) {
                        route_notification(ctx, owner, &full.to_string(), event, subid).await;
                    }
                }
                Err(bare) => {
                    let mut any = false;
                    if ctx.is_local_domain(bare.domain().as_str()) {
                        for entry in ctx.sessions.resources(&bare).await.iter() {
                            if self.interested(entry, &notify) {
                                any = true;
                                if sent.insert(entry.jid.clone()) {
                                    route_notification(
                                        ctx,
                                        owner,
                                        &entry.jid.to_string(),
                                        event,
                                        subid,
                                    )
                                    .await;
                                }
                            }
                        }
                    }
                    if !any {
                        route_notification(ctx, owner, &bare.to_string(), event, subid).await;
                    }
                }
            }
        }
    }

    /// Whether the access model lets `bare` read the event's node now.
    async fn admitted(&self, ctx: &Context, event: &NodeEvent, bare: &BareJid) -> bool {
        let key = event.service.key(&event.node);
        let Ok(cached) = self.engine.cached(ctx, &key).await else {
            return false;
        };
        let deleted;
        let node = match &cached {
            Some(cached) => &cached.node,
            // A deleted node: judge by the configuration it had.
            None => {
                deleted = starling_storage::StoredNode {
                    key,
                    owner: None,
                    config: event.config.to_stored(),
                    created_at: 0,
                };
                &deleted
            }
        };
        self.engine
            .may_read(ctx, &event.service, node, &event.config, bare)
            .await
            .is_ok()
    }

    /// Sends `to` the last item of each node of `service` it wants (`notify`: the node names
    /// from its `+notify` features) and may read (XEP-0163 §4.3.4).
    async fn send_last_items(
        &self,
        ctx: &Context,
        service: &Service,
        to: &FullJid,
        notify: &HashSet<&str>,
    ) {
        let Some(owner) = &service.owner else {
            return;
        };
        let nodes = match ctx.stores.pubsub.nodes(&service.jid).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(service = %service.jid, error = %e, "PEP nodes unreadable");
                return;
            }
        };
        let bare = to.to_bare();
        for node in nodes {
            if !notify.contains(node.key.node.as_str()) {
                continue;
            }
            let config = self.engine.config_of(&node);
            if config.send_last_published_item != SendLast::OnSubAndPresence
                || !config.deliver_notifications
            {
                continue;
            }
            if self
                .engine
                .may_read(ctx, service, &node, &config, &bare)
                .await
                .is_err()
            {
                continue;
            }
            let item = match ctx.stores.pubsub.last_item(&node.key).await {
                Ok(Some(item)) => item,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "PEP last item unreadable");
                    continue;
                }
            };
            let Ok(event_item) = item_element(NS_EVENT, &item, config.deliver_payloads) else {
                continue;
            };
            let event = NodeEvent::last_item(service, &node.key.node, config, event_item, None);
            let mut message = notification(&owner.to_string(), &to.to_string(), &event, None);
            // §4.3.4: when it was published.
            message.append_child(
                Element::new("delay", ns::DELAY)
                    .with_attr("from", owner.to_string())
                    .with_attr("stamp", crate::clock::format_unix(item.published_at)),
            );
            ctx.router.route(message).await;
        }
    }
}

/// `message` (a notification without `to`) addressed to `entry`'s full JID, queued to it.
async fn send_copy(ctx: &Context, entry: &SessionEntry, message: &Element) {
    let mut copy = message.clone();
    copy.set_attr("to", entry.jid.to_string());
    ctx.send_to(entry, copy).await;
}

async fn route_notification(
    ctx: &Context,
    owner: &BareJid,
    to: &str,
    event: &NodeEvent,
    subid: Option<&str>,
) {
    ctx.router
        .route(notification(&owner.to_string(), to, event, subid))
        .await;
}

impl Module for Pep {
    fn name(&self) -> &'static str {
        "pep"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        for ns in [NS, NS_OWNER] {
            reg.iq(IqTarget::Account, IqType::Get, ns, "pubsub", self.clone());
            reg.iq(IqTarget::Account, IqType::Set, ns, "pubsub", self.clone());
        }
        // XEP-0163 §6.1.
        reg.account_identity(Identity {
            category: "pubsub",
            kind: "pep",
            name: None,
        });
        for f in FEATURES {
            reg.account_feature(f);
        }
        reg.disco_nodes(self.clone());
        reg.events(self);
    }
}

#[async_trait]
impl IqHandler for Pep {
    async fn handle_iq(&self, ctx: &Context, req: IqRoute<'_>) -> IqOutcome {
        let Some(account) = req.account else {
            return IqOutcome::Error(StanzaError::new(StanzaErrorCondition::ServiceUnavailable));
        };
        let Some(iq_type) = req.iq.attr("type").and_then(IqType::from_attr) else {
            return IqOutcome::Error(StanzaError::new(StanzaErrorCondition::BadRequest));
        };
        let service = Service::pep(account);
        let outcome = self.engine.handle(ctx, &service, &req, iq_type).await;
        let observers = self.observers();
        for event in &outcome.events {
            self.notify(ctx, event).await;
            if event.only_to.is_none() {
                for o in &observers {
                    o.changed(ctx, account, event).await;
                }
            }
        }
        outcome.reply
    }
}

#[async_trait]
impl EventListener for Pep {
    async fn on_event(&self, ctx: &Context, event: &Event) {
        if let Event::RosterChanged { account, .. } | Event::AccountDeleted(account) = event {
            self.forget_subscribers(account);
        }
        match event {
            // XEP-0060 §6.1.7 on_sub: a contact newly subscribed to the owner's presence gets
            // the last items its online resources want (XEP-0163 §4.3.4's "new subscriber").
            Event::RosterChanged {
                account,
                contact,
                before,
                after: Some(after),
            } if shares_presence(after.subscription)
                && !before
                    .as_ref()
                    .is_some_and(|b| shares_presence(b.subscription)) =>
            {
                if !ctx.is_local_domain(contact.domain().as_str()) {
                    return;
                }
                let service = Service::pep(account);
                for entry in ctx.sessions.resources(contact).await.iter() {
                    let Some(features) = self.caps.features(&entry.jid) else {
                        continue;
                    };
                    let notify: HashSet<&str> = features
                        .iter()
                        .filter_map(|f| f.strip_suffix("+notify"))
                        .collect();
                    if !notify.is_empty() {
                        self.send_last_items(ctx, &service, &entry.jid, &notify)
                            .await;
                    }
                }
            }
            // Its nodes went with it (the store's cascade); its subscriptions to other
            // accounts' nodes go too.
            Event::AccountDeleted(account) => {
                // Its nodes went with it, and its subscriptions are going.
                self.engine.cache.clear();
                let jid = account.to_string();
                let Ok(subscriptions) = ctx.stores.pubsub.subscriptions_of(None, &jid).await else {
                    return;
                };
                for (key, s) in subscriptions {
                    if let Err(e) = ctx
                        .stores
                        .pubsub
                        .unsubscribe(&key, &s.jid, Some(&s.subid))
                        .await
                    {
                        tracing::warn!(%account, error = %e, "a deleted account's subscription stayed");
                    }
                }
                self.engine.cache.clear();
            }
            _ => {}
        }
    }
}

#[async_trait]
impl CapsWatcher for Pep {
    async fn interests_known(&self, ctx: &Context, jid: &FullJid, features: &[String]) {
        let notify: HashSet<&str> = features
            .iter()
            .filter_map(|f| f.strip_suffix("+notify"))
            .collect();
        if notify.is_empty() {
            return;
        }
        let bare = jid.to_bare();
        let Some((local, domain)) = crate::roster::account_parts(&bare) else {
            return;
        };
        if !ctx.is_local_domain(domain) {
            return;
        }
        // The account's own nodes, then those of the contacts it is subscribed to.
        self.send_last_items(ctx, &Service::pep(&bare), jid, &notify)
            .await;
        let roster = ctx
            .stores
            .rosters
            .items(local, domain)
            .await
            .unwrap_or_default();
        for item in roster {
            if !matches!(item.subscription, Subscription::To | Subscription::Both) {
                continue;
            }
            let Ok(contact) = BareJid::new(&item.jid) else {
                continue;
            };
            if ctx.is_local_domain(contact.domain().as_str()) {
                self.send_last_items(ctx, &Service::pep(&contact), jid, &notify)
                    .await;
            }
        }
    }
}

#[async_trait]
impl DiscoNodes for Pep {
    async fn disco_node(
        &self,
        ctx: &Context,
        req: &IqRoute<'_>,
        node: &str,
        info: bool,
    ) -> Option<IqOutcome> {
        let account = req.account?;
        let service = Service::pep(account);
        let stored = ctx.stores.pubsub.node(&service.key(node)).await.ok()??;
        let config = self.engine.config_of(&stored);
        if let Err(e) = self
            .engine
            .may_read(ctx, &service, &stored, &config, &req.from.to_bare())
            .await
        {
            return Some(IqOutcome::Error(e));
        }
        let mut query = Element::new("query", req.payload.ns()).with_attr("node", node);
        if info {
            // XEP-0060 §5.3: a leaf node.
            query.append_child(
                Element::new("identity", ns::DISCO_INFO)
                    .with_attr("category", "pubsub")
                    .with_attr("type", "leaf"),
            );
            query.append_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", NS));
        } else {
            // XEP-0060 §5.5: the items, by id.
            for item in ctx
                .stores
                .pubsub
                .items(&stored.key, None)
                .await
                .unwrap_or_default()
            {
                query.append_child(
                    Element::new("item", ns::DISCO_ITEMS)
                        .with_attr("jid", account.to_string())
                        .with_attr("name", item.id),
                );
            }
        }
        Some(IqOutcome::Result(Some(query)))
    }

    async fn account_items(&self, ctx: &Context, req: &IqRoute<'_>) -> Vec<Element> {
        let Some(account) = req.account else {
            return Vec::new();
        };
        let service = Service::pep(account);
        let requester = req.from.to_bare();
        let mut items = Vec::new();
        for node in ctx
            .stores
            .pubsub
            .nodes(&service.jid)
            .await
            .unwrap_or_default()
        {
            let config = self.engine.config_of(&node);
            if self
                .engine
                .may_read(ctx, &service, &node, &config, &requester)
                .await
                .is_ok()
            {
                items.push(
                    Element::new("item", ns::DISCO_ITEMS)
                        .with_attr("jid", account.to_string())
                        .with_attr("node", node.key.node.clone()),
                );
            }
        }
        items
    }
}
