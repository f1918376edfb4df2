//! The pubsub service (XEP-0060) at `pubsub.<host>` for every virtual host: nodes that local
//! users create and own, with subscribers anywhere.
//!
//! - Requests (`pubsub` and `pubsub#owner` IQs to the service's domain) go to the [`Engine`] with
//!   the service's defaults (open access, the last item on subscription, 20 items kept; the
//!   `presence` and `roster` access models are PEP's and refused here).
//! - Who may create nodes: the accounts of this server's hosts, not those of anonymous hosts
//!   (`<forbidden/>`, §8.1.3). The creator gets the `owner` affiliation, stored; owners may give
//!   it to others (§8.9) but not leave a node without one. There is no service administrator.
//! - Limits ([`Limits`]): `max_nodes` counts the nodes of the whole service (each
//!   `pubsub.<host>` is one service), whoever created them; `max_items` and `max_item_bytes` as
//!   for PEP.
//! - Notifications (§7.1.2.1, §7.2.2.1, §8.4.2, §8.5.2) go from the service's domain to each
//!   explicit subscription in state `subscribed` whose JID the access model still admits (an
//!   outcast never, a JID without affiliation only while the node is `open`): to a full JID as
//!   it is, to a bare JID as it is (a local account's bare JID: the router hands a `headline` to
//!   every available resource, RFC 6121 §8.5.2.1.1). Deletion goes to every subscriber. A SHIM
//!   `SubID` header is added only when the JID holds several subscriptions to the node (§13.16).
//!   A notification that bounces with an error of type `cancel` (the JID is gone, its server
//!   unreachable) ends that JID's subscriptions at the service (§13.4).
//! - disco#info of the service (§5.1: `pubsub/service` and [`SERVICE_FEATURES`]), of a node
//!   (§5.3, with the §5.4 meta-data form); disco#items of the service (its nodes, §5.2) and of a
//!   node (its items, §5.5), each only what the requester may read.
//! - When an account is deleted, its bare JID's subscriptions at the services end and its
//!   affiliations are removed, so that an account created again under the name inherits
//!   nothing; a node whose last owner it was is deleted, as a PEP node goes with its account
//!   (subscribers hear of it, §8.4.2). This reads every node of every service once per deleted
//!   account; accounts of anonymous hosts, whose names are random and never come back, only
//!   lose their subscriptions.
//! - Anything else: an IQ get/set is `<service-unavailable/>` (RFC 6120 §8.4), also at a JID of
//!   the domain other than the domain itself; a message (but an error or a headline) gets
//!   `<service-unavailable/>` too; presence is ignored; IQ results and errors are dropped (the
//!   service asks nothing); no error is ever answered (RFC 6120 §8.3.1).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use starling_module_api::forms::{DataForm, Field};
use starling_module_api::{
    ComponentDomain, ComponentHandler, Context, Event, EventListener, IqOutcome, IqRoute, IqType,
    Module, Registrar, random_id,
};
use starling_proto::{
    BareJid, Element, ErrorType, Jid, StanzaError, StanzaErrorCondition, error_reply, iq_result, ns,
};

use super::config::{AccessModel, NodeConfiguration};
use super::engine::{Affiliation, Creators, Engine, NodeCache, NodeEvent, Service};
use super::{
    Limits, NS, NS_OWNER, SERVICE_FEATURES, internal, not_found, notification, shared_notification,
};

/// The label of the service's domain under each host.
pub const SUBDOMAIN: &str = "pubsub";

/// `FORM_TYPE` of node meta-data (XEP-0060 §5.4).
pub const META_DATA: &str = "http://jabber.org/protocol/pubsub#meta-data";

/// The pubsub service module.
pub struct PubsubService {
    engine: Engine,
}

impl PubsubService {
    /// A service with these limits; the accounts of `anonymous_hosts` may not create nodes.
    pub fn new(limits: Limits, anonymous_hosts: Vec<String>) -> Arc<PubsubService> {
        Arc::new(PubsubService {
            engine: Engine {
                limits,
                defaults: NodeConfiguration::service_default(),
                personal: false,
                creators: Creators::LocalUsers {
                    except_hosts: anonymous_hosts,
                },
                cache: NodeCache::default(),
            },
        })
    }

    /// Answers an IQ get/set to the service and sends what it causes.
    async fn iq(&self, ctx: &Context, iq: &Element, from: &Jid, to: &Jid) {
        // Results and errors: the service awaits nothing.
        let Some(iq_type) = iq.attr("type").and_then(IqType::from_attr) else {
            return;
        };
        let mut events = Vec::new();
        let outcome = if to.node().is_some() || to.resource().is_some() {
            // Nobody lives at the service's domain but the service.
            IqOutcome::Error(StanzaError::new(StanzaErrorCondition::ServiceUnavailable))
        } else {
            let mut children = iq.children();
            match (children.next(), children.next()) {
                (Some(payload), None) => {
                    let req = IqRoute {
                        iq,
                        payload,
                        from,
                        account: None,
                    };
                    let service = Service::domain(to.domain().as_str());
                    self.request(ctx, &service, &req, iq_type, &mut events)
                        .await
                }
                // RFC 6120 §8.2.3: exactly one payload.
                _ => IqOutcome::Error(StanzaError::new(StanzaErrorCondition::BadRequest)),
            }
        };
        let reply = match outcome {
            IqOutcome::Result(payload) => {
                let mut r = iq_result(iq);
                if let Some(p) = payload {
                    r.append_child(p);
                }
                r
            }
            IqOutcome::Error(e) => error_reply(iq, &e),
        };
        ctx.router.route(reply).await;
        for event in &events {
            self.notify(ctx, event).await;
        }
    }

    async fn request(
        &self,
        ctx: &Context,
        service: &Service,
        req: &IqRoute<'_>,
        iq_type: IqType,
        events: &mut Vec<NodeEvent>,
    ) -> IqOutcome {
        let payload = req.payload;
        match (iq_type, payload.name(), payload.ns()) {
            (IqType::Get, "query", ns::DISCO_INFO) => self.disco_info(ctx, service, req).await,
            (IqType::Get, "query", ns::DISCO_ITEMS) => self.disco_items(ctx, service, req).await,
            (_, "pubsub", NS | NS_OWNER) => {
                let outcome = self.engine.handle(ctx, service, req, iq_type).await;
                events.extend(outcome.events);
                outcome.reply
            }
            _ => IqOutcome::Error(StanzaError::new(StanzaErrorCondition::ServiceUnavailable)),
        }
    }

    /// Sends `event` to the subscribers (see the module docs).
    async fn notify(&self, ctx: &Context, event: &NodeEvent) {
        if !event.notify {
            return;
        }
        let from = event.service.jid.as_str();
        if let Some(to) = &event.only_to {
            // The last item for a new subscriber (§6.1.7).
            ctx.router
                .route(notification(from, &to.to_string(), event, None))
                .await;
            return;
        }
        // §8.4.2: every subscriber hears of a deletion; the node's affiliations are gone.
        let deleted = event.payload.name() == "delete";
        let affiliations: HashMap<String, Affiliation> = if deleted {
            HashMap::new()
        } else {
            match ctx
                .stores
                .pubsub
                .affiliations(&event.service.key(&event.node))
                .await
            {
                Ok(list) => list
                    .into_iter()
                    .filter_map(|(jid, a)| Some((jid, Affiliation::parse(&a)?)))
                    .collect(),
                Err(e) => {
                    tracing::warn!(node = %event.node, error = %e, "pubsub notification: affiliations unreadable");
                    return;
                }
            }
        };
        let subscribed = |jid: &str| {
            event
                .subscriptions
                .iter()
                .filter(|s| s.state == "subscribed" && s.jid == jid)
                .count()
        };
        // Built at the first subscriber who gets it.
        let mut shared: Option<Element> = None;
        for s in &event.subscriptions {
            if s.state != "subscribed" {
                continue;
            }
            let Ok(jid) = Jid::new(&s.jid) else {
                continue;
            };
            if !deleted {
                let affiliation = affiliations
                    .get(jid.to_bare().as_str())
                    .copied()
                    .unwrap_or(Affiliation::None);
                let admitted = match affiliation {
                    Affiliation::Outcast => false,
                    Affiliation::Owner | Affiliation::Publisher | Affiliation::Member => true,
                    Affiliation::None => event.config.access_model == AccessModel::Open,
                };
                if !admitted {
                    continue;
                }
            }
            let message = if subscribed(&s.jid) > 1 {
                // §13.16: which of the JID's subscriptions it is for, in a message of its own.
                notification(from, &s.jid, event, Some(&s.subid))
            } else {
                // The `<event/>` serialised once, shared by every copy.
                let mut copy = shared
                    .get_or_insert_with(|| shared_notification(from, event))
                    .clone();
                copy.set_attr("to", s.jid.as_str());
                copy.set_attr("id", random_id());
                copy
            };
            ctx.router.route(message).await;
        }
    }

    /// XEP-0060 §13.4 (notification-related errors): an error of type `cancel` (the
    /// entity is gone, its server unreachable) ends every subscription of that exact JID at the
    /// service, since which node's notification bounced is not tracked; other errors (`wait`,
    /// `auth`, `modify`) change nothing.
    async fn bounced(&self, ctx: &Context, error: &Element, from: &Jid, to: &Jid) {
        if to.node().is_some() || to.resource().is_some() {
            return;
        }
        let cancel = error
            .get_child("error", ns::CLIENT)
            .and_then(StanzaError::from_element)
            .is_some_and(|e| e.error_type == ErrorType::Cancel);
        if !cancel {
            return;
        }
        let store = &ctx.stores.pubsub;
        let jid = from.to_string();
        let found = match store
            .subscriptions_of(Some(to.domain().as_str()), &jid)
            .await
        {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(%jid, error = %e, "pubsub: subscriptions unreadable after a bounce");
                return;
            }
        };
        self.engine.cache.clear();
        for (key, s) in found {
            tracing::debug!(%jid, node = %key.node, "pubsub: a notification bounced; subscription ended");
            if let Err(e) = store.unsubscribe(&key, &s.jid, Some(&s.subid)).await {
                tracing::warn!(%jid, error = %e, "pubsub: cannot end a bounced subscription");
            }
        }
    }

    /// Removes what the deleted `account` had at the services (see the module docs).
    async fn forget(&self, ctx: &Context, account: &BareJid) {
        self.engine.cache.clear();
        let jid = account.to_string();
        let anonymous = matches!(&self.engine.creators, Creators::LocalUsers { except_hosts }
            if except_hosts.iter().any(|h| h == account.domain().as_str()));
        for host in &ctx.server.domains {
            let service = Service::domain(&format!("{SUBDOMAIN}.{host}"));
            if let Err(e) = self.forget_at(ctx, &service, &jid, !anonymous).await {
                tracing::warn!(%account, service = %service.jid, error = %e, "pubsub: cannot forget a deleted account");
            }
        }
        // Before and after: what was read meanwhile is not kept.
        self.engine.cache.clear();
    }

    async fn forget_at(
        &self,
        ctx: &Context,
        service: &Service,
        jid: &str,
        affiliations: bool,
    ) -> Result<(), starling_storage::StorageError> {
        let store = &ctx.stores.pubsub;
        for (key, s) in store.subscriptions_of(Some(&service.jid), jid).await? {
            store.unsubscribe(&key, &s.jid, Some(&s.subid)).await?;
        }
        if !affiliations {
            return Ok(());
        }
        for node in store.nodes(&service.jid).await? {
            let list = store.affiliations(&node.key).await?;
            let Some((_, held)) = list.iter().find(|(j, _)| j == jid) else {
                continue;
            };
            let owner = Affiliation::Owner.as_str();
            if held == owner && !list.iter().any(|(j, a)| j != jid && a == owner) {
                let subscriptions = store.subscriptions(&node.key).await?;
                store.delete_node(&node.key).await?;
                let config = self.engine.config_of(&node);
                if config.notify_delete {
                    let name = &node.key.node;
                    let event =
                        NodeEvent::new(service, name, config, subscriptions, "delete", [], true);
                    self.notify(ctx, &event).await;
                }
            } else {
                store.set_affiliation(&node.key, jid, None).await?;
            }
        }
        Ok(())
    }

    /// XEP-0060 §5.1 (the service), §5.3 and §5.4 (a node).
    async fn disco_info(&self, ctx: &Context, service: &Service, req: &IqRoute<'_>) -> IqOutcome {
        let Some(node) = req.payload.attr("node") else {
            let mut query = Element::new("query", ns::DISCO_INFO).with_child(
                Element::new("identity", ns::DISCO_INFO)
                    .with_attr("category", "pubsub")
                    .with_attr("type", "service"),
            );
            for f in [ns::DISCO_INFO, ns::DISCO_ITEMS]
                .iter()
                .chain(SERVICE_FEATURES)
            {
                query.append_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", *f));
            }
            return IqOutcome::Result(Some(query));
        };
        match self.node_info(ctx, service, req, node).await {
            Ok(query) => IqOutcome::Result(Some(query)),
            Err(e) => IqOutcome::Error(e),
        }
    }

    async fn node_info(
        &self,
        ctx: &Context,
        service: &Service,
        req: &IqRoute<'_>,
        node: &str,
    ) -> Result<Element, StanzaError> {
        let key = service.key(node);
        let stored = ctx
            .stores
            .pubsub
            .node(&key)
            .await
            .map_err(|e| internal(&e))?
            .ok_or_else(not_found)?;
        let config = self.engine.config_of(&stored);
        self.engine
            .may_read(ctx, service, &stored, &config, &req.from.to_bare())
            .await?;
        let affiliations = ctx
            .stores
            .pubsub
            .affiliations(&key)
            .await
            .map_err(|e| internal(&e))?;
        let subscribers = ctx
            .stores
            .pubsub
            .subscriptions(&key)
            .await
            .map_err(|e| internal(&e))?
            .iter()
            .filter(|s| s.state == "subscribed")
            .count();
        let with = |wanted: Affiliation| {
            affiliations
                .iter()
                .filter(move |(_, a)| Affiliation::parse(a) == Some(wanted))
                .map(|(jid, _)| jid.clone())
        };
        let metadata = config
            .metadata_fields(false)
            .into_iter()
            .fold(DataForm::result(Some(META_DATA)), DataForm::field)
            .field(
                Field::text_single("pubsub#creation_date")
                    .label("Creation date")
                    .value(crate::clock::format_unix(stored.created_at)),
            )
            .field(
                Field::jid_multi("pubsub#owner")
                    .label("Node owners")
                    .values(with(Affiliation::Owner)),
            )
            .field(
                Field::jid_multi("pubsub#publisher")
                    .label("Publishers to this node")
                    .values(with(Affiliation::Publisher)),
            )
            .field(
                Field::text_single("pubsub#num_subscribers")
                    .label("Number of subscribers to this node")
                    .value(subscribers.to_string()),
            );
        Ok(Element::new("query", ns::DISCO_INFO)
            .with_attr("node", node)
            .with_child(
                Element::new("identity", ns::DISCO_INFO)
                    .with_attr("category", "pubsub")
                    .with_attr("type", "leaf"),
            )
            .with_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", NS))
            .with_child(metadata.to_element()))
    }

    /// XEP-0060 §5.2 (the nodes the requester may read, named by their title) and §5.5 (a
    /// node's items, by id).
    async fn disco_items(&self, ctx: &Context, service: &Service, req: &IqRoute<'_>) -> IqOutcome {
        let requester = req.from.to_bare();
        let node = req.payload.attr("node");
        let mut query = Element::new("query", ns::DISCO_ITEMS).with_opt_attr("node", node);
        let Some(node) = node else {
            let nodes = match ctx.stores.pubsub.nodes(&service.jid).await {
                Ok(n) => n,
                Err(e) => return IqOutcome::Error(internal(&e)),
            };
            for stored in nodes {
                let config = self.engine.config_of(&stored);
                if self
                    .engine
                    .may_read(ctx, service, &stored, &config, &requester)
                    .await
                    .is_ok()
                {
                    query.append_child(
                        Element::new("item", ns::DISCO_ITEMS)
                            .with_attr("jid", service.jid.clone())
                            .with_attr("node", stored.key.node.clone())
                            .with_opt_attr(
                                "name",
                                (!config.title.is_empty()).then_some(config.title.as_str()),
                            ),
                    );
                }
            }
            return IqOutcome::Result(Some(query));
        };
        let key = service.key(node);
        let stored = match ctx.stores.pubsub.node(&key).await {
            Ok(Some(n)) => n,
            Ok(None) => return IqOutcome::Error(not_found()),
            Err(e) => return IqOutcome::Error(internal(&e)),
        };
        let config = self.engine.config_of(&stored);
        if let Err(e) = self
            .engine
            .may_read(ctx, service, &stored, &config, &requester)
            .await
        {
            return IqOutcome::Error(e);
        }
        let items = match ctx.stores.pubsub.items(&key, None).await {
            Ok(items) => items,
            Err(e) => return IqOutcome::Error(internal(&e)),
        };
        for item in items {
            query.append_child(
                Element::new("item", ns::DISCO_ITEMS)
                    .with_attr("jid", service.jid.clone())
                    .with_attr("name", item.id),
            );
        }
        IqOutcome::Result(Some(query))
    }
}

impl Module for PubsubService {
    fn name(&self) -> &'static str {
        "pubsub"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        reg.events(self.clone());
        reg.component(ComponentDomain::Subdomain(SUBDOMAIN), self);
    }
}

#[async_trait]
impl EventListener for PubsubService {
    async fn on_event(&self, ctx: &Context, event: &Event) {
        if let Event::AccountDeleted(account) = event {
            self.forget(ctx, account).await;
        }
    }
}

#[async_trait]
impl ComponentHandler for PubsubService {
    async fn on_stanza(&self, ctx: &Context, stanza: Element) {
        let (Some(from), Some(to)) = (
            stanza.attr("from").and_then(|f| Jid::new(f).ok()),
            stanza.attr("to").and_then(|t| Jid::new(t).ok()),
        ) else {
            return;
        };
        match stanza.name() {
            "iq" => self.iq(ctx, &stanza, &from, &to).await,
            // A notification bounced (it is never answered, RFC 6120 §8.3.1).
            "message" if stanza.attr("type") == Some("error") => {
                self.bounced(ctx, &stanza, &from, &to).await;
            }
            // Nothing is done with other messages; a headline needs no answer.
            "message" if stanza.attr("type") != Some("headline") => {
                let error = StanzaError::new(StanzaErrorCondition::ServiceUnavailable);
                ctx.router.route(error_reply(&stanza, &error)).await;
            }
            // Presence means nothing to the service; other messages get no answer.
            _ => {}
        }
    }
}
