//! The pubsub engine: XEP-0060's use cases on one service, whatever its front end.
//!
//! [`Engine::handle`] takes an IQ addressed to a service (PEP's bare JID, or a pubsub domain such
//! as `pubsub.example.org`) and returns the answer with the [`NodeEvent`]s to notify: the front
//! end decides who receives them (PEP adds the owner's resources and its contacts, filtered by
//! caps; the service notifies its subscribers).
//!
//! Who may do what:
//! - creating nodes: as [`Creators`] says (PEP: the account alone; a pubsub service: the
//!   accounts of this server's hosts), `<forbidden/>` otherwise (§8.1.1);
//! - a node's owners do everything: at PEP the account, implicitly the `owner` of every node;
//!   at a service the entities with the stored `owner` affiliation, at first the creator;
//! - publishing: owners and `publisher`s, subscribers when `pubsub#publish_model` is
//!   `subscribers`, anyone when `open` (§7.1.3.1: otherwise `<forbidden/>`);
//! - subscribing and retrieving items: owners, publishers and members always, `outcast`s never
//!   (`<forbidden/>`); others as the access model says (§6.1.3, §6.5.9): `open` anyone,
//!   `presence` a contact subscribed to the owner's presence (`<not-authorized/>` with
//!   `presence-subscription-required`), `roster` a contact in an allowed group
//!   (`not-in-roster-group`), `whitelist` nobody else (`<not-allowed/>` with `closed-node`);
//! - owner operations (`pubsub#owner`: configure, default, delete, purge, affiliations,
//!   subscriptions): owners only (`<forbidden/>`).

// A stanza error is the answer itself, built once per refused request.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use starling_module_api::forms::DataForm;
use starling_module_api::{Context, IqOutcome, IqRoute, IqType, parse_stored, random_id};
use starling_proto::{BareJid, Element, ErrorType, Jid, StanzaError, StanzaErrorCondition, ns};
use starling_storage::{NodeKey, StorageError, StoredItem, StoredNode, StoredSubscription};

use super::config::{AccessModel, MaxItems, NodeConfiguration, PUBLISH_OPTIONS, PublishModel};
use super::{Limits, NS, NS_EVENT, NS_OWNER, error, internal, not_found, unsupported};

/// A service: where nodes live.
#[derive(Clone, Debug)]
pub struct Service {
    /// The service's JID as nodes are stored under it (a bare JID for PEP, a domain for a
    /// pubsub service).
    pub jid: String,
    /// The account whose PEP service this is; `None` for a pubsub service.
    pub owner: Option<BareJid>,
}

impl Service {
    pub fn pep(owner: &BareJid) -> Service {
        Service {
            jid: owner.to_string(),
            owner: Some(owner.clone()),
        }
    }

    /// The pubsub service at `domain` (canonical, as stanzas address it).
    pub fn domain(domain: &str) -> Service {
        Service {
            jid: domain.to_owned(),
            owner: None,
        }
    }

    pub fn key(&self, node: &str) -> NodeKey {
        NodeKey::new(self.jid.clone(), node)
    }

    fn owner_parts(&self) -> Option<(&str, &str)> {
        crate::roster::account_parts(self.owner.as_ref()?)
    }
}

/// An entity's affiliation with a node (XEP-0060 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Affiliation {
    Outcast,
    None,
    Member,
    Publisher,
    Owner,
}

impl Affiliation {
    pub fn as_str(self) -> &'static str {
        match self {
            Affiliation::Outcast => "outcast",
            Affiliation::None => "none",
            Affiliation::Member => "member",
            Affiliation::Publisher => "publisher",
            Affiliation::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Affiliation> {
        Some(match s {
            "outcast" => Affiliation::Outcast,
            "none" => Affiliation::None,
            "member" => Affiliation::Member,
            "publisher" => Affiliation::Publisher,
            "owner" => Affiliation::Owner,
            _ => return None,
        })
    }
}

/// What happened to a node, for its front end to notify.
#[derive(Clone, Debug)]
pub struct NodeEvent {
    pub service: Service,
    pub node: String,
    pub config: NodeConfiguration,
    /// The explicit subscriptions at the time (before a deletion).
    pub subscriptions: Vec<StoredSubscription>,
    /// The child of `<event xmlns='…#event'/>`: `<items/>` (published or retracted items),
    /// `<delete/>`, `<purge/>`.
    pub payload: Element,
    /// Only to this entity (the last item for a new subscriber, XEP-0060 §6.1.7).
    pub only_to: Option<Jid>,
    /// Whether subscribers hear of it (`pubsub#deliver_notifications`, `notify_retract`,
    /// `notify_delete`). Events that are not notified still tell the front end what changed
    /// (XEP-0398 and XEP-0402 conversions follow every publication).
    pub notify: bool,
}

impl NodeEvent {
    /// An event on `node` of `service`: `<{kind} node='…'/>` (`items`, `delete`, `purge`,
    /// XEP-0060 §7.1.2, §7.2.2, §8.4, §8.5) with `children` (`<item/>`s or `<retract/>`s), for
    /// the explicit `subscriptions` and whoever else subscribes implicitly, heard if `notify`.
    pub fn new(
        service: &Service,
        node: &str,
        config: NodeConfiguration,
        subscriptions: Vec<StoredSubscription>,
        kind: &str,
        children: impl IntoIterator<Item = Element>,
        notify: bool,
    ) -> NodeEvent {
        let payload = children.into_iter().fold(
            Element::new(kind, NS_EVENT).with_attr("node", node),
            Element::with_child,
        );
        NodeEvent {
            service: service.clone(),
            node: node.to_owned(),
            config,
            subscriptions,
            payload,
            only_to: None,
            notify,
        }
    }

    /// The node's last item (`item`, an event `<item/>`), always heard: to a new subscriber
    /// (`only_to`, XEP-0060 §6.1.7), or to those the front end picks (`None`, XEP-0163 §4.3.4).
    pub fn last_item(
        service: &Service,
        node: &str,
        config: NodeConfiguration,
        item: Element,
        only_to: Option<Jid>,
    ) -> NodeEvent {
        NodeEvent {
            only_to,
            ..NodeEvent::new(service, node, config, Vec::new(), "items", [item], true)
        }
    }
}

/// The answer to a request and what to notify.
pub struct Outcome {
    pub reply: IqOutcome,
    pub events: Vec<NodeEvent>,
}

impl Outcome {
    fn reply(reply: Result<Option<Element>, StanzaError>) -> Outcome {
        Outcome {
            reply: match reply {
                Ok(payload) => IqOutcome::Result(payload),
                Err(e) => IqOutcome::Error(e),
            },
            events: Vec::new(),
        }
    }
}

type Answer = Result<(Option<Element>, Vec<NodeEvent>), StanzaError>;

/// Who may create nodes (XEP-0060 §8.1.1 lets a service decide by the requester's identity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Creators {
    /// The account whose PEP service it is (XEP-0163), alone.
    ServiceOwner,
    /// Accounts of this server's hosts, except those of `except_hosts` (anonymous hosts, whose
    /// accounts vanish with their session and would leave nodes nobody owns).
    LocalUsers { except_hosts: Vec<String> },
}

/// The engine with a service kind's defaults and limits.
pub struct Engine {
    pub limits: Limits,
    pub defaults: NodeConfiguration,
    /// PEP: the `presence` and `roster` access models exist, nodes are created by publishing.
    /// Otherwise (a pubsub service): owners are stored affiliations, instant nodes exist.
    pub personal: bool,
    /// Who may create nodes.
    pub creators: Creators,
    /// What publishing reads of a node, kept between publications.
    pub cache: NodeCache,
}

/// A node as publishing needs it: the node, its configuration and its subscriptions.
pub struct CachedNode {
    pub node: StoredNode,
    pub config: NodeConfiguration,
    pub subscriptions: Vec<StoredSubscription>,
    /// The stored affiliations `(bare JID, affiliation)` (a PEP owner's is implicit).
    pub affiliations: Vec<(String, String)>,
}

/// Nodes as publishing reads them, so that a publication costs one write and no reads (the
/// PEP fan-out of a busy server publishes far more often than nodes change). Every request
/// other than publish, retract and the gets forgets its node after it is handled; whoever
/// writes to the store outside the engine (account deletion, bounce handling) calls
/// [`NodeCache::clear`]. A read that raced with a change is not kept (a generation counter).
/// At most [`NodeCache::MAX`] nodes; beyond, it starts afresh.
#[derive(Default)]
pub struct NodeCache {
    nodes: std::sync::Mutex<std::collections::HashMap<NodeKey, Arc<CachedNode>>>,
    generation: std::sync::atomic::AtomicU64,
}

impl NodeCache {
    pub const MAX: usize = 50_000;

    fn map(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<NodeKey, Arc<CachedNode>>> {
        self.nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    fn get(&self, key: &NodeKey) -> Option<Arc<CachedNode>> {
        self.map().get(key).cloned()
    }

    /// Keeps `node` if nothing was forgotten since `generation` was read.
    fn put(&self, key: NodeKey, generation: u64, node: Arc<CachedNode>) {
        let mut map = self.map();
        if self.generation() != generation {
            return;
        }
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(key, node);
    }

    /// Forgets one node (it changed).
    pub fn forget(&self, key: &NodeKey) {
        let mut map = self.map();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        map.remove(key);
    }

    /// Forgets every node.
    pub fn clear(&self) {
        let mut map = self.map();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        map.clear();
    }
}

/// Who asks.
struct Requester<'a> {
    jid: &'a Jid,
    bare: BareJid,
}

impl Engine {
    /// Answers the `<pubsub/>` IQ `req` addressed to `service`.
    pub async fn handle(
        &self,
        ctx: &Context,
        service: &Service,
        req: &IqRoute<'_>,
        iq_type: IqType,
    ) -> Outcome {
        let requester = Requester {
            jid: req.from,
            bare: req.from.to_bare(),
        };
        let result = if req.payload.ns() == NS_OWNER {
            self.owner_request(ctx, service, &requester, req.payload, iq_type)
                .await
        } else {
            self.user_request(ctx, service, &requester, req.payload, iq_type)
                .await
        };
        // What may have changed a node's configuration, existence or subscriptions.
        let first = req.payload.children().next();
        let read_only = iq_type == IqType::Get
            || (req.payload.ns() == NS
                && first.is_some_and(|f| matches!(f.name(), "publish" | "retract")));
        if !read_only && let Some(node) = first.and_then(|f| f.attr("node")) {
            self.cache.forget(&service.key(node));
        }
        match result {
            Ok((payload, events)) => Outcome {
                reply: IqOutcome::Result(payload),
                events,
            },
            Err(e) => Outcome::reply(Err(e)),
        }
    }

    /// Publishes (`<publish/>`, with `<publish-options/>`) as `publisher`: the server acting
    /// for an account (XEP-0398 conversions, XEP-0402 §5 compatibility). The events to notify.
    pub async fn publish_as(
        &self,
        ctx: &Context,
        service: &Service,
        publisher: &Jid,
        publish: &Element,
        options: Option<&Element>,
    ) -> Result<Vec<NodeEvent>, StanzaError> {
        let who = Requester {
            jid: publisher,
            bare: publisher.to_bare(),
        };
        self.publish(ctx, service, &who, publish, options)
            .await
            .map(|(_, events)| events)
    }

    /// Retracts (`<retract/>`) as `publisher`, like [`publish_as`](Self::publish_as).
    pub async fn retract_as(
        &self,
        ctx: &Context,
        service: &Service,
        publisher: &Jid,
        retract: &Element,
    ) -> Result<Vec<NodeEvent>, StanzaError> {
        let who = Requester {
            jid: publisher,
            bare: publisher.to_bare(),
        };
        self.retract(ctx, service, &who, retract)
            .await
            .map(|(_, events)| events)
    }

    async fn user_request(
        &self,
        ctx: &Context,
        service: &Service,
        who: &Requester<'_>,
        pubsub: &Element,
        iq_type: IqType,
    ) -> Answer {
        let mut children = pubsub.children();
        let Some(first) = children.next() else {
            return Err(StanzaError::new(StanzaErrorCondition::BadRequest));
        };
        match (iq_type, first.name()) {
            (IqType::Set, "publish") => {
                let options = pubsub.get_child("publish-options", NS);
                self.publish(ctx, service, who, first, options).await
            }
            (IqType::Set, "retract") => self.retract(ctx, service, who, first).await,
            (IqType::Set, "create") => {
                let configure = pubsub.get_child("configure", NS);
                self.create(ctx, service, who, first, configure).await
            }
            (IqType::Set, "subscribe") => self.subscribe(ctx, service, who, first).await,
            (IqType::Set, "unsubscribe") => self.unsubscribe(ctx, service, who, first).await,
            (IqType::Get, "items") => self.items(ctx, service, who, first).await,
            (IqType::Get, "subscriptions") => {
                self.own_subscriptions(ctx, service, who, first).await
            }
            (IqType::Get, "affiliations") => self.own_affiliations(ctx, service, who, first).await,
            (_, "options") => Err(unsupported("subscription-options")),
            (_, "default") => Err(unsupported("retrieve-default-sub")),
            _ => Err(StanzaError::new(StanzaErrorCondition::BadRequest)),
        }
    }

    async fn owner_request(
        &self,
        ctx: &Context,
        service: &Service,
        who: &Requester<'_>,
        pubsub: &Element,
        iq_type: IqType,
    ) -> Answer {
        let Some(first) = pubsub.children().next() else {
            return Err(StanzaError::new(StanzaErrorCondition::BadRequest));
        };
        if first.name() == "default" {
            if iq_type != IqType::Get {
                return Err(StanzaError::new(StanzaErrorCondition::BadRequest));
            }
            // XEP-0060 §8.3: the default configuration.
            let form = self.defaults.form(self.personal).to_element();
            let default = Element::new("default", NS_OWNER).with_child(form);
            return Ok((
                Some(Element::new("pubsub", NS_OWNER).with_child(default)),
                vec![],
            ));
        }
        let node_name = node_attr(first)?;
        let key = service.key(node_name);
        let node = self.existing(ctx, &key).await?;
        if self.affiliation(ctx, service, &node, &who.bare).await? != Affiliation::Owner {
            return Err(StanzaError::new(StanzaErrorCondition::Forbidden));
        }
        let config = self.config_of(&node);
        match (iq_type, first.name()) {
            (IqType::Get, "configure") => {
                // XEP-0060 §8.2.1.
                let form = config.form(self.personal).to_element();
                let configure = Element::new("configure", NS_OWNER)
                    .with_attr("node", node_name)
                    .with_child(form);
                Ok((
                    Some(Element::new("pubsub", NS_OWNER).with_child(configure)),
                    vec![],
                ))
            }
            (IqType::Set, "configure") => {
                let Some(x) = first.get_child("x", ns::DATA_FORMS) else {
                    return Err(StanzaError::new(StanzaErrorCondition::BadRequest));
                };
                let form = DataForm::parse(x)
                    .map_err(|_| StanzaError::new(StanzaErrorCondition::BadRequest))?;
                if form.kind.as_str() == "cancel" {
                    return Ok((None, vec![]));
                }
                let new = self.checked(config.apply(&form, self.personal))?;
                ctx.stores
                    .pubsub
                    .set_config(&key, &new.to_stored())
                    .await
                    .map_err(|e| internal(&e))?;
                Ok((None, vec![]))
            }
            (IqType::Set, "delete") => {
                // XEP-0060 §8.4: subscribers hear of it (with notify_delete).
                let subs = self.subscriptions_of(ctx, &key).await?;
                ctx.stores
                    .pubsub
                    .delete_node(&key)
                    .await
                    .map_err(|e| internal(&e))?;
                let notify = config.notify_delete && config.deliver_notifications;
                let event = NodeEvent::new(service, node_name, config, subs, "delete", [], notify);
                Ok((None, vec![event]))
            }
            (IqType::Set, "purge") => {
                // XEP-0060 §8.5.
                if !config.persist_items {
                    // §8.5.3.3.
                    return Err(unsupported("persistent-items"));
                }
                ctx.stores
                    .pubsub
                    .purge(&key)
                    .await
                    .map_err(|e| internal(&e))?;
                let subs = self.subscriptions_of(ctx, &key).await?;
                let notify = config.deliver_notifications;
                let event = NodeEvent::new(service, node_name, config, subs, "purge", [], notify);
                Ok((None, vec![event]))
            }
            (IqType::Get, "affiliations") => {
                // XEP-0060 §8.9.1.
                let mut list = Element::new("affiliations", NS_OWNER).with_attr("node", node_name);
                if let Some(owner) = &service.owner {
                    list.append_child(
                        Element::new("affiliation", NS_OWNER)
                            .with_attr("jid", owner.to_string())
                            .with_attr("affiliation", "owner"),
                    );
                }
                for (jid, affiliation) in ctx
                    .stores
                    .pubsub
                    .affiliations(&key)
                    .await
                    .map_err(|e| internal(&e))?
                {
                    list.append_child(
                        Element::new("affiliation", NS_OWNER)
                            .with_attr("jid", jid)
                            .with_attr("affiliation", affiliation),
                    );
                }
                Ok((
                    Some(Element::new("pubsub", NS_OWNER).with_child(list)),
                    vec![],
                ))
            }
            (IqType::Set, "affiliations") => {
                // XEP-0060 §8.9.2: all or nothing.
                let mut changes: Vec<(String, Affiliation)> = Vec::new();
                for a in first.children().filter(|c| c.is("affiliation", NS_OWNER)) {
                    let jid = a
                        .attr("jid")
                        .and_then(|j| BareJid::new(j).ok())
                        .ok_or_else(|| StanzaError::new(StanzaErrorCondition::JidMalformed))?;
                    let affiliation = a
                        .attr("affiliation")
                        .and_then(Affiliation::parse)
                        .ok_or_else(|| StanzaError::new(StanzaErrorCondition::BadRequest))?;
                    if service.owner.as_ref() == Some(&jid) {
                        // The PEP owner's affiliation is not the node's to change.
                        return Err(StanzaError::new(StanzaErrorCondition::NotAcceptable)
                            .with_text("the account owns its PEP nodes"));
                    }
                    let jid = jid.to_string();
                    if changes.iter().any(|(j, _)| *j == jid) {
                        // §8.9.2.5: one element per entity.
                        return Err(StanzaError::new(StanzaErrorCondition::BadRequest));
                    }
                    changes.push((jid, affiliation));
                }
                let stored = ctx
                    .stores
                    .pubsub
                    .affiliations(&key)
                    .await
                    .map_err(|e| internal(&e))?;
                if service.owner.is_none() {
                    // §8.9.2.5: a node's last owner stays one (a PEP node has its account).
                    let kept = stored.iter().any(|(jid, a)| {
                        a == Affiliation::Owner.as_str() && !changes.iter().any(|(j, _)| j == jid)
                    });
                    if !kept && !changes.iter().any(|(_, a)| *a == Affiliation::Owner) {
                        return Err(StanzaError::new(StanzaErrorCondition::NotAcceptable)
                            .with_text("a node keeps at least one owner"));
                    }
                }
                let subscriptions = if changes.iter().any(|(_, a)| *a == Affiliation::Outcast) {
                    self.subscriptions_of(ctx, &key).await?
                } else {
                    Vec::new()
                };
                for (jid, affiliation) in changes {
                    let value = (affiliation != Affiliation::None).then(|| affiliation.as_str());
                    ctx.stores
                        .pubsub
                        .set_affiliation(&key, &jid, value)
                        .await
                        .map_err(|e| internal(&e))?;
                    if affiliation == Affiliation::Outcast {
                        // §4.1: an outcast is subscribed no more, with any of its resources.
                        for s in subscriptions
                            .iter()
                            .filter(|s| Jid::new(&s.jid).is_ok_and(|j| j.to_bare().as_str() == jid))
                        {
                            ctx.stores
                                .pubsub
                                .unsubscribe(&key, &s.jid, Some(&s.subid))
                                .await
                                .map_err(|e| internal(&e))?;
                        }
                    }
                }
                Ok((None, vec![]))
            }
            (IqType::Get, "subscriptions") => {
                // XEP-0060 §8.8.1.
                let mut list = Element::new("subscriptions", NS_OWNER).with_attr("node", node_name);
                for s in self.subscriptions_of(ctx, &key).await? {
                    list.append_child(subscription_element(NS_OWNER, None, &s));
                }
                Ok((
                    Some(Element::new("pubsub", NS_OWNER).with_child(list)),
                    vec![],
                ))
            }
            (IqType::Set, "subscriptions") => {
                // XEP-0060 §8.8.2: 'none' removes, 'subscribed' adds.
                for s in first.children().filter(|c| c.is("subscription", NS_OWNER)) {
                    let jid = s
                        .attr("jid")
                        .and_then(|j| Jid::new(j).ok())
                        .ok_or_else(|| StanzaError::new(StanzaErrorCondition::JidMalformed))?;
                    match s.attr("subscription") {
                        Some("none") => {
                            ctx.stores
                                .pubsub
                                .unsubscribe(&key, &jid.to_string(), s.attr("subid"))
                                .await
                                .map_err(|e| internal(&e))?;
                        }
                        Some("subscribed") => {
                            let subscription = StoredSubscription {
                                jid: jid.to_string(),
                                subid: s.attr("subid").map_or_else(random_id, str::to_owned),
                                state: "subscribed".to_owned(),
                            };
                            ctx.stores
                                .pubsub
                                .subscribe(&key, &subscription)
                                .await
                                .map_err(|e| internal(&e))?;
                        }
                        _ => return Err(StanzaError::new(StanzaErrorCondition::BadRequest)),
                    }
                }
                Ok((None, vec![]))
            }
            _ => Err(StanzaError::new(StanzaErrorCondition::BadRequest)),
        }
    }

    /// XEP-0060 §7.1 (and §7.1.5 publish-options; PEP auto-creates, XEP-0163 §3).
    async fn publish(
        &self,
        ctx: &Context,
        service: &Service,
        who: &Requester<'_>,
        publish: &Element,
        options: Option<&Element>,
    ) -> Answer {
        let node_name = publish
            .attr("node")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| error(StanzaErrorCondition::BadRequest, "nodeid-required"))?;
        bounded("node name", node_name)?;
        let options = match options.and_then(|o| o.get_child("x", ns::DATA_FORMS)) {
            Some(x) => {
                let form = DataForm::parse(x)
                    .map_err(|_| StanzaError::new(StanzaErrorCondition::BadRequest))?;
                if form.form_type().is_some_and(|t| t != PUBLISH_OPTIONS) {
                    return Err(StanzaError::new(StanzaErrorCondition::BadRequest)
                        .with_text("publish-options must be of FORM_TYPE pubsub#publish-options"));
                }
                Some(form)
            }
            None => None,
        };
        let mut items = publish.children().filter(|c| c.is("item", NS));
        let item = items.next();
        if items.next().is_some() {
            // §7.1.3.6: one item per request.
            return Err(error(StanzaErrorCondition::BadRequest, "invalid-payload"));
        }
        let key = service.key(node_name);
        // The node, or the configuration it will be created with (auto-create, §7.1.4,
        // configured by the publish-options) once the item is known to be acceptable.
        let (existing, config) = match self.cached(ctx, &key).await? {
            Some(cached) => {
                let config = cached.config.clone();
                if let Some(options) = &options
                    && !config.meets(options, self.personal)
                {
                    // §7.1.5: the node's configuration is not what the publisher requires.
                    return Err(error(
                        StanzaErrorCondition::Conflict,
                        "precondition-not-met",
                    ));
                }
                (Some(cached), config)
            }
            None => {
                if !self.personal || service.owner.as_ref() != Some(&who.bare) {
                    return Err(not_found());
                }
                let config = match &options {
                    Some(options) => self.checked(self.defaults.apply(options, self.personal))?,
                    None => self.defaults.clone(),
                };
                (None, config)
            }
        };
        if let Some(cached) = &existing
            && !self
                .may_publish(ctx, service, &cached.node, &config, who)
                .await?
        {
            return Err(StanzaError::new(StanzaErrorCondition::Forbidden));
        }
        let mut payloads = item.map(|i| i.children()).into_iter().flatten();
        let payload = payloads.next();
        if payloads.next().is_some() {
            return Err(error(StanzaErrorCondition::BadRequest, "invalid-payload"));
        }
        if payload.is_none() && (config.persist_items || config.deliver_payloads) {
            // §7.1.3.6: a persistent node or one delivering payloads needs one.
            return Err(error(
                StanzaErrorCondition::BadRequest,
                if item.is_none() {
                    "item-required"
                } else {
                    "payload-required"
                },
            ));
        }
        let xml = payload.map(Element::to_xml).unwrap_or_default();
        if xml.len() > self.limits.max_item_bytes {
            // §7.1.3.4.
            return Err(
                error(StanzaErrorCondition::NotAcceptable, "payload-too-big").with_text(format!(
                    "items are limited to {} bytes",
                    self.limits.max_item_bytes
                )),
            );
        }
        if existing.is_none() {
            self.create_node(ctx, service, &key, &config).await?;
            self.cache.forget(&key);
        }
        let id = item
            .and_then(|i| i.attr("id"))
            .filter(|id| !id.is_empty())
            .map_or_else(random_id, str::to_owned);
        bounded("item id", &id)?;
        if config.persist_items {
            let stored = StoredItem {
                id: id.clone(),
                publisher: Some(who.bare.to_string()),
                payload: xml,
                published_at: starling_accounts::unix_now(),
            };
            let keep = config.max_items.effective(self.limits.max_items);
            ctx.stores
                .pubsub
                .publish(&key, &stored, Some(keep))
                .await
                .map_err(|e| internal(&e))?;
        }
        let reply = Element::new("pubsub", NS).with_child(
            Element::new("publish", NS)
                .with_attr("node", node_name)
                .with_child(Element::new("item", NS).with_attr("id", id.clone())),
        );
        // The payload goes whole into the event; the front end leaves it out of notifications
        // when the node does not deliver payloads.
        let mut event_item = Element::new("item", NS_EVENT).with_attr("id", id);
        if let Some(payload) = payload {
            event_item.append_child(payload.clone());
        }
        let subs = match &existing {
            Some(cached) => cached.subscriptions.clone(),
            None => Vec::new(),
        };
        let notify = config.deliver_notifications;
        let event = NodeEvent::new(
            service,
            node_name,
            config,
            subs,
            "items",
            [event_item],
            notify,
        );
        Ok((Some(reply), vec![event]))
    }

    /// XEP-0060 §7.2.
    async fn retract(
        &self,
        ctx: &Context,
        service: &Service,
        who: &Requester<'_>,
        retract: &Element,
    ) -> Answer {
        let node_name = node_attr(retract)?;
        let key = service.key(node_name);
        let node = self.existing(ctx, &key).await?;
        let config = self.config_of(&node);
        let affiliation = self.affiliation(ctx, service, &node, &who.bare).await?;
        if affiliation < Affiliation::Publisher {
            return Err(StanzaError::new(StanzaErrorCondition::Forbidden));
        }
        let ids: Vec<&str> = retract
            .children()
            .filter(|c| c.is("item", NS))
            .filter_map(|c| c.attr("id"))
            .collect();
        if ids.is_empty() {
            // §7.2.3.3.
            return Err(error(StanzaErrorCondition::BadRequest, "item-required"));
        }
        let mut retracted = Vec::new();
        for id in ids {
            if ctx
                .stores
                .pubsub
                .retract(&key, id)
                .await
                .map_err(|e| internal(&e))?
            {
                retracted.push(id);
            }
        }
        if retracted.is_empty() {
            // §7.2.3.5.
            return Err(not_found());
        }
        let notify = config.deliver_notifications
            && (matches!(retract.attr("notify"), Some("1" | "true")) || config.notify_retract);
        let retracts = retracted
            .iter()
            .map(|id| Element::new("retract", NS_EVENT).with_attr("id", *id));
        let subs = self.subscriptions_of(ctx, &key).await?;
        let event = NodeEvent::new(service, node_name, config, subs, "items", retracts, notify);
        Ok((None, vec![event]))
    }

    /// XEP-0060 §8.1 (with §8.1.3 create-and-configure).
    async fn create(
        &self,
        ctx: &Context,
        service: &Service,
        who: &Requester<'_>,
        create: &Element,
        configure: Option<&Element>,
    ) -> Answer {
        let allowed = match &self.creators {
            // XEP-0163: only the account creates nodes on its PEP service.
            Creators::ServiceOwner => service.owner.as_ref() == Some(&who.bare),
            Creators::LocalUsers { except_hosts } => {
                let domain = who.bare.domain().as_str();
                who.bare.node().is_some()
                    && ctx.is_local_domain(domain)
                    && !except_hosts.iter().any(|h| h == domain)
            }
        };
        if !allowed {
            // §8.1.3.
            return Err(StanzaError::new(StanzaErrorCondition::Forbidden));
        }
        if configure.is_some_and(|c| c.attr("node").is_some()) {
            // §8.1.3: the NodeID is the <create/>'s.
            return Err(StanzaError::new(StanzaErrorCondition::BadRequest));
        }
        let (node_name, instant) = match create.attr("node").filter(|n| !n.is_empty()) {
            Some(n) => (n.to_owned(), false),
            // §8.1.2: an instant node, with a NodeID of the service's choosing.
            None if !self.personal => (random_id(), true),
            // XEP-0163 nodes are named.
            None => {
                return Err(error(
                    StanzaErrorCondition::NotAcceptable,
                    "nodeid-required",
                ));
            }
        };
        bounded("node name", &node_name)?;
        let config = match configure.and_then(|c| c.get_child("x", ns::DATA_FORMS)) {
            Some(x) => {
                let form = DataForm::parse(x)
                    .map_err(|_| StanzaError::new(StanzaErrorCondition::BadRequest))?;
                self.checked(self.defaults.apply(&form, self.personal))?
            }
            None => self.defaults.clone(),
        };
        let key = service.key(&node_name);
        self.create_node(ctx, service, &key, &config).await?;
        if service.owner.is_none() {
            // The creator is the node's owner (§4.1), stored: owners may change.
            let stored = ctx
                .stores
                .pubsub
                .set_affiliation(
                    &key,
                    &who.bare.to_string(),
                    Some(Affiliation::Owner.as_str()),
                )
                .await;
            if let Err(e) = stored {
                // A node nobody owns would be nobody's to delete.
                let _ = ctx.stores.pubsub.delete_node(&key).await;
                return Err(internal(&e));
            }
        }
        let reply = instant.then(|| {
            Element::new("pubsub", NS)
                .with_child(Element::new("create", NS).with_attr("node", node_name))
        });
        Ok((reply, vec![]))
    }

    /// XEP-0060 §6.1.
    async fn subscribe(
        &self,
        ctx: &Context,
        service: &Service,
        who: &Requester<'_>,
        subscribe: &Element,
    ) -> Answer {
        let node_name = node_attr(subscribe)?;
        let jid = subscribe
            .attr("jid")
            .and_then(|j| Jid::new(j).ok())
            .ok_or_else(|| error(StanzaErrorCondition::BadRequest, "invalid-jid"))?;
        if jid.to_bare() != who.bare {
            // §6.1.3.1.
            return Err(error(StanzaErrorCondition::BadRequest, "invalid-jid"));
        }
        let key = service.key(node_name);
        let node = self.existing(ctx, &key).await?;
        let config = self.config_of(&node);
        self.may_read(ctx, service, &node, &config, &who.bare)
            .await?;
        let jid_str = jid.to_string();
        let all = self.subscriptions_of(ctx, &key).await?;
        let existing = all.iter().find(|s| s.jid == jid_str).cloned();
        if existing.is_none()
            && all
                .iter()
                .filter(|s| Jid::new(&s.jid).is_ok_and(|j| j.to_bare() == who.bare))
                .count()
                >= MAX_SUBSCRIPTIONS_PER_ENTITY
        {
            return Err(
                StanzaError::new(StanzaErrorCondition::PolicyViolation).with_text(format!(
                    "at most {MAX_SUBSCRIPTIONS_PER_ENTITY} subscriptions to a node per account"
                )),
            );
        }
        let subscription = match existing {
            Some(s) => s,
            None => {
                let s = StoredSubscription {
                    jid: jid_str,
                    subid: random_id(),
                    state: "subscribed".to_owned(),
                };
                ctx.stores
                    .pubsub
                    .subscribe(&key, &s)
                    .await
                    .map_err(|e| internal(&e))?;
                s
            }
        };
        let reply = Element::new("pubsub", NS).with_child(subscription_element(
            NS,
            Some(node_name),
            &subscription,
        ));
        let mut events = Vec::new();
        // §6.1.7: the last item to the new subscriber.
        if config.send_last_published_item != super::config::SendLast::Never
            && let Some(item) = self.last_item(ctx, &key, &config).await?
        {
            events.push(NodeEvent::last_item(
                service,
                node_name,
                config,
                item,
                Some(jid),
            ));
        }
        Ok((Some(reply), events))
    }

    /// XEP-0060 §6.2.
    async fn unsubscribe(
        &self,
        ctx: &Context,
        service: &Service,
        who: &Requester<'_>,
        unsubscribe: &Element,
    ) -> Answer {
        let node_name = node_attr(unsubscribe)?;
        let jid = unsubscribe
            .attr("jid")
            .and_then(|j| Jid::new(j).ok())
            .ok_or_else(|| error(StanzaErrorCondition::BadRequest, "invalid-jid"))?;
        if jid.to_bare() != who.bare {
            // §6.2.3.3.
            return Err(StanzaError::new(StanzaErrorCondition::Forbidden));
        }
        let key = service.key(node_name);
        self.existing(ctx, &key).await?;
        let removed = ctx
            .stores
            .pubsub
            .unsubscribe(&key, &jid.to_string(), unsubscribe.attr("subid"))
            .await
            .map_err(|e| internal(&e))?;
        if removed == 0 {
            // §6.2.3.2, of type cancel (RFC 6120 would say wait).
            return Err(
                error(StanzaErrorCondition::UnexpectedRequest, "not-subscribed")
                    .with_type(ErrorType::Cancel),
            );
        }
        Ok((None, vec![]))
    }

    /// XEP-0060 §6.5: every item (newest first), the `max_items` most recent, or those asked.
    async fn items(
        &self,
        ctx: &Context,
        service: &Service,
        who: &Requester<'_>,
        items: &Element,
    ) -> Answer {
        let node_name = node_attr(items)?;
        let key = service.key(node_name);
        let node = self.existing(ctx, &key).await?;
        let config = self.config_of(&node);
        self.may_read(ctx, service, &node, &config, &who.bare)
            .await?;
        let ids: Vec<String> = items
            .children()
            .filter(|c| c.is("item", NS))
            .filter_map(|c| c.attr("id").map(str::to_owned))
            .collect();
        let stored = if ids.is_empty() {
            let max = match items.attr("max_items") {
                Some(m) => Some(
                    m.parse::<u64>()
                        .map_err(|_| StanzaError::new(StanzaErrorCondition::BadRequest))?,
                ),
                None => None,
            };
            ctx.stores.pubsub.items(&key, max).await
        } else {
            ctx.stores.pubsub.items_by_id(&key, &ids).await
        }
        .map_err(|e| internal(&e))?;
        let mut list = Element::new("items", NS).with_attr("node", node_name);
        for item in &stored {
            list.append_child(item_element(NS, item, true)?);
        }
        Ok((Some(Element::new("pubsub", NS).with_child(list)), vec![]))
    }

    /// XEP-0060 §5.6: the requester's subscriptions at this service.
    async fn own_subscriptions(
        &self,
        ctx: &Context,
        service: &Service,
        who: &Requester<'_>,
        request: &Element,
    ) -> Answer {
        let mut found = ctx
            .stores
            .pubsub
            .subscriptions_of(Some(&service.jid), &who.bare.to_string())
            .await
            .map_err(|e| internal(&e))?;
        if let Ok(full) = who.jid.try_as_full() {
            found.extend(
                ctx.stores
                    .pubsub
                    .subscriptions_of(Some(&service.jid), &full.to_string())
                    .await
                    .map_err(|e| internal(&e))?,
            );
        }
        let only = request.attr("node");
        let mut list = Element::new("subscriptions", NS).with_opt_attr("node", only);
        for (key, s) in found {
            if only.is_none_or(|n| n == key.node) {
                list.append_child(subscription_element(NS, Some(&key.node), &s));
            }
        }
        Ok((Some(Element::new("pubsub", NS).with_child(list)), vec![]))
    }

    /// XEP-0060 §5.7: the requester's affiliations at this service.
    async fn own_affiliations(
        &self,
        ctx: &Context,
        service: &Service,
        who: &Requester<'_>,
        request: &Element,
    ) -> Answer {
        let only = request.attr("node");
        let mut list = Element::new("affiliations", NS).with_opt_attr("node", only);
        let nodes = ctx
            .stores
            .pubsub
            .nodes(&service.jid)
            .await
            .map_err(|e| internal(&e))?;
        for node in nodes {
            if only.is_some_and(|n| n != node.key.node) {
                continue;
            }
            let affiliation = self.affiliation(ctx, service, &node, &who.bare).await?;
            if affiliation != Affiliation::None {
                list.append_child(
                    Element::new("affiliation", NS)
                        .with_attr("node", node.key.node.clone())
                        .with_attr("affiliation", affiliation.as_str()),
                );
            }
        }
        Ok((Some(Element::new("pubsub", NS).with_child(list)), vec![]))
    }

    /// The node as publishing reads it, from the cache or the store.
    pub(crate) async fn cached(
        &self,
        ctx: &Context,
        key: &NodeKey,
    ) -> Result<Option<Arc<CachedNode>>, StanzaError> {
        if let Some(cached) = self.cache.get(key) {
            return Ok(Some(cached));
        }
        let generation = self.cache.generation();
        let Some(node) = ctx
            .stores
            .pubsub
            .node(key)
            .await
            .map_err(|e| internal(&e))?
        else {
            return Ok(None);
        };
        let cached = Arc::new(CachedNode {
            config: self.config_of(&node),
            subscriptions: self.subscriptions_of(ctx, key).await?,
            affiliations: ctx
                .stores
                .pubsub
                .affiliations(key)
                .await
                .map_err(|e| internal(&e))?,
            node,
        });
        self.cache.put(key.clone(), generation, cached.clone());
        Ok(Some(cached))
    }

    /// The node's configuration, with this engine's defaults for what is not stored.
    pub fn config_of(&self, node: &StoredNode) -> NodeConfiguration {
        NodeConfiguration::from_stored(&node.config, &self.defaults)
    }

    /// A configuration as asked, if it is within the limits (`max_items`).
    fn checked(
        &self,
        config: Result<NodeConfiguration, super::config::ConfigError>,
    ) -> Result<NodeConfiguration, StanzaError> {
        let config = config.map_err(|e| e.to_stanza_error())?;
        if let MaxItems::Count(n) = config.max_items
            && n > self.limits.max_items
        {
            return Err(
                StanzaError::new(StanzaErrorCondition::NotAcceptable).with_text(format!(
                    "pubsub#max_items is at most {} here (or max)",
                    self.limits.max_items
                )),
            );
        }
        Ok(config)
    }

    async fn create_node(
        &self,
        ctx: &Context,
        service: &Service,
        key: &NodeKey,
        config: &NodeConfiguration,
    ) -> Result<StoredNode, StanzaError> {
        let count = ctx
            .stores
            .pubsub
            .node_count(&service.jid)
            .await
            .map_err(|e| internal(&e))?;
        if count >= self.limits.max_nodes {
            let whose = if service.owner.is_some() {
                "an account"
            } else {
                "this service"
            };
            return Err(
                StanzaError::new(StanzaErrorCondition::PolicyViolation).with_text(format!(
                    "{whose} may have at most {} nodes",
                    self.limits.max_nodes
                )),
            );
        }
        let stored = config.to_stored();
        let now = starling_accounts::unix_now();
        match ctx
            .stores
            .pubsub
            .create_node(key, service.owner_parts(), &stored, now)
            .await
        {
            Ok(()) => {}
            // §8.1.3.2 (or a concurrent auto-create).
            Err(StorageError::AlreadyExists) => {
                return Err(StanzaError::new(StanzaErrorCondition::Conflict));
            }
            Err(e) => return Err(internal(&e)),
        }
        Ok(StoredNode {
            key: key.clone(),
            owner: service
                .owner_parts()
                .map(|(l, d)| (l.to_owned(), d.to_owned())),
            config: stored,
            created_at: now,
        })
    }

    async fn existing(&self, ctx: &Context, key: &NodeKey) -> Result<StoredNode, StanzaError> {
        ctx.stores
            .pubsub
            .node(key)
            .await
            .map_err(|e| internal(&e))?
            .ok_or_else(not_found)
    }

    async fn subscriptions_of(
        &self,
        ctx: &Context,
        key: &NodeKey,
    ) -> Result<Vec<StoredSubscription>, StanzaError> {
        ctx.stores
            .pubsub
            .subscriptions(key)
            .await
            .map_err(|e| internal(&e))
    }

    /// The node's last item as a `<item/>` of `#event`, if it has one.
    pub async fn last_item(
        &self,
        ctx: &Context,
        key: &NodeKey,
        config: &NodeConfiguration,
    ) -> Result<Option<Element>, StanzaError> {
        let Some(item) = ctx
            .stores
            .pubsub
            .last_item(key)
            .await
            .map_err(|e| internal(&e))?
        else {
            return Ok(None);
        };
        item_element(NS_EVENT, &item, config.deliver_payloads).map(Some)
    }

    /// `bare`'s affiliation with the node.
    pub async fn affiliation(
        &self,
        ctx: &Context,
        service: &Service,
        node: &StoredNode,
        bare: &BareJid,
    ) -> Result<Affiliation, StanzaError> {
        if service.owner.as_ref() == Some(bare) {
            return Ok(Affiliation::Owner);
        }
        Ok(ctx
            .stores
            .pubsub
            .affiliation(&node.key, &bare.to_string())
            .await
            .map_err(|e| internal(&e))?
            .as_deref()
            .and_then(Affiliation::parse)
            .unwrap_or(Affiliation::None))
    }

    async fn may_publish(
        &self,
        ctx: &Context,
        service: &Service,
        node: &StoredNode,
        config: &NodeConfiguration,
        who: &Requester<'_>,
    ) -> Result<bool, StanzaError> {
        let affiliation = self.affiliation(ctx, service, node, &who.bare).await?;
        Ok(match affiliation {
            Affiliation::Owner | Affiliation::Publisher => true,
            Affiliation::Outcast => false,
            Affiliation::None | Affiliation::Member => match config.publish_model {
                PublishModel::Publishers => false,
                PublishModel::Open => true,
                PublishModel::Subscribers => ctx
                    .stores
                    .pubsub
                    .subscriptions(&node.key)
                    .await
                    .map_err(|e| internal(&e))?
                    .iter()
                    .any(|s| Jid::new(&s.jid).is_ok_and(|j| j.to_bare() == who.bare)),
            },
        })
    }

    /// Whether `bare` may subscribe to and read the node (XEP-0060 §4.5, §6.1.3, §6.5.9).
    pub async fn may_read(
        &self,
        ctx: &Context,
        service: &Service,
        node: &StoredNode,
        config: &NodeConfiguration,
        bare: &BareJid,
    ) -> Result<(), StanzaError> {
        match self.affiliation(ctx, service, node, bare).await? {
            Affiliation::Owner | Affiliation::Publisher | Affiliation::Member => return Ok(()),
            Affiliation::Outcast => return Err(StanzaError::new(StanzaErrorCondition::Forbidden)),
            Affiliation::None => {}
        }
        match config.access_model {
            AccessModel::Open => Ok(()),
            AccessModel::Whitelist => Err(error(StanzaErrorCondition::NotAllowed, "closed-node")),
            AccessModel::Presence => {
                let item = roster_item(ctx, service, bare).await?;
                if item.is_some_and(|i| shares_presence(i.subscription)) {
                    Ok(())
                } else {
                    Err(error(
                        StanzaErrorCondition::NotAuthorized,
                        "presence-subscription-required",
                    ))
                }
            }
            AccessModel::Roster => {
                let item = roster_item(ctx, service, bare).await?;
                if item.is_some_and(|i| {
                    i.groups
                        .iter()
                        .any(|g| config.roster_groups_allowed.contains(g))
                }) {
                    Ok(())
                } else {
                    Err(error(
                        StanzaErrorCondition::NotAuthorized,
                        "not-in-roster-group",
                    ))
                }
            }
        }
    }
}

/// Whether a roster item's contact is subscribed to the owner's presence (RFC 6121 `from` or
/// `both`).
pub(crate) fn shares_presence(s: starling_storage::Subscription) -> bool {
    matches!(
        s,
        starling_storage::Subscription::From | starling_storage::Subscription::Both
    )
}

/// The PEP owner's roster item for `bare`.
async fn roster_item(
    ctx: &Context,
    service: &Service,
    bare: &BareJid,
) -> Result<Option<starling_storage::RosterItem>, StanzaError> {
    let Some((local, domain)) = service.owner_parts() else {
        return Ok(None);
    };
    ctx.stores
        .rosters
        .item(local, domain, &bare.to_string())
        .await
        .map_err(|e| internal(&e))
}

/// The `node` attribute, required (XEP-0060 §14, `nodeid-required`).
/// The longest node name or item id accepted, in bytes.
pub const MAX_ID_BYTES: usize = 1024;
/// Most subscriptions of one account (its bare JID and its full JIDs) to one node.
pub const MAX_SUBSCRIPTIONS_PER_ENTITY: usize = 16;

/// A node name or item id within [`MAX_ID_BYTES`] (`<not-acceptable/>` beyond).
fn bounded(what: &str, id: &str) -> Result<(), StanzaError> {
    if id.len() > MAX_ID_BYTES {
        return Err(StanzaError::new(StanzaErrorCondition::NotAcceptable)
            .with_text(format!("a {what} is at most {MAX_ID_BYTES} bytes")));
    }
    Ok(())
}

fn node_attr(el: &Element) -> Result<&str, StanzaError> {
    el.attr("node")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| error(StanzaErrorCondition::BadRequest, "nodeid-required"))
}

/// A stored item as `<item id='…'>payload</item>` in `namespace`.
pub(crate) fn item_element(
    namespace: &str,
    item: &StoredItem,
    with_payload: bool,
) -> Result<Element, StanzaError> {
    let mut el = Element::new("item", namespace).with_attr("id", item.id.clone());
    if with_payload && !item.payload.is_empty() {
        let payload = parse_stored(&item.payload).map_err(|e| {
            tracing::warn!(error = %e, "a stored pubsub item does not parse");
            StanzaError::new(StanzaErrorCondition::InternalServerError)
        })?;
        el.append_child(payload);
    }
    Ok(el)
}

fn subscription_element(namespace: &str, node: Option<&str>, s: &StoredSubscription) -> Element {
    Element::new("subscription", namespace)
        .with_opt_attr("node", node)
        .with_attr("jid", s.jid.clone())
        .with_attr("subid", s.subid.clone())
        .with_attr("subscription", s.state.clone())
}
