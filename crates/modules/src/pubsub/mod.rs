//! Publish-subscribe (XEP-0060): one engine ([`engine`]) for every service, and its front ends:
//! PEP ([`pep`], XEP-0163), a virtual service at each account's bare JID, with notifications to
//! the owner's and its contacts' resources filtered by their XEP-0115 `+notify` interests; and
//! the pubsub service ([`service`]) at `pubsub.<host>`, whose nodes local users create and own,
//! with notifications to explicit subscribers.
//!
//! Items are stored with their XML ([`starling_storage::PubsubStore`]); a node's configuration is
//! typed in [`config`]. Limits ([`Limits`]) bound what one account, or one service, can store.

pub mod config;
pub mod engine;
pub mod pep;
pub mod service;

use starling_module_api::random_id;
use starling_proto::{Element, ErrorType, StanzaError, StanzaErrorCondition, ns};

use engine::NodeEvent;

/// XEP-0060 namespaces.
pub const NS: &str = "http://jabber.org/protocol/pubsub";
pub const NS_EVENT: &str = "http://jabber.org/protocol/pubsub#event";
pub const NS_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
pub const NS_ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";

/// What one account (PEP) or one service may store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Nodes per PEP account, or per pubsub service (all its creators together)
    /// (`policy-violation` beyond).
    pub max_nodes: u64,
    /// Items kept per node: what `pubsub#max_items` `max` means, and the most it may be set to.
    pub max_items: u64,
    /// Bytes of one item's payload, serialised (`not-acceptable` with `payload-too-big`).
    pub max_item_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // OMEMO's legacy bundles take one node per device; bookmarks, avatars, nick, device
            // lists and a handful more take one each.
            max_nodes: 256,
            // Bookmarks 2 keeps one item per room, OMEMO 2 one bundle per device.
            max_items: 1000,
            // An avatar's data node (XEP-0084) holds the image in base64: 256 KiB fits the
            // 192-pixel images clients publish several times over.
            max_item_bytes: 256 * 1024,
        }
    }
}

impl Limits {
    /// A pubsub service's defaults: PEP's item limits, and 10000 nodes for the whole service.
    pub fn service_default() -> Self {
        Limits {
            max_nodes: 10_000,
            ..Limits::default()
        }
    }
}

/// The PEP features a service supports (XEP-0060 §10), advertised in each account's disco#info
/// (XEP-0163 §6.1).
pub const FEATURES: &[&str] = &[
    NS,
    "http://jabber.org/protocol/pubsub#access-open",
    "http://jabber.org/protocol/pubsub#access-presence",
    "http://jabber.org/protocol/pubsub#access-roster",
    "http://jabber.org/protocol/pubsub#access-whitelist",
    "http://jabber.org/protocol/pubsub#auto-create",
    "http://jabber.org/protocol/pubsub#auto-subscribe",
    "http://jabber.org/protocol/pubsub#config-node",
    "http://jabber.org/protocol/pubsub#config-node-max",
    "http://jabber.org/protocol/pubsub#create-and-configure",
    "http://jabber.org/protocol/pubsub#create-nodes",
    "http://jabber.org/protocol/pubsub#delete-items",
    "http://jabber.org/protocol/pubsub#delete-nodes",
    "http://jabber.org/protocol/pubsub#filtered-notifications",
    "http://jabber.org/protocol/pubsub#item-ids",
    "http://jabber.org/protocol/pubsub#last-published",
    "http://jabber.org/protocol/pubsub#manage-subscriptions",
    "http://jabber.org/protocol/pubsub#modify-affiliations",
    "http://jabber.org/protocol/pubsub#multi-items",
    "http://jabber.org/protocol/pubsub#persistent-items",
    "http://jabber.org/protocol/pubsub#publish",
    "http://jabber.org/protocol/pubsub#publish-options",
    "http://jabber.org/protocol/pubsub#purge-nodes",
    "http://jabber.org/protocol/pubsub#retract-items",
    "http://jabber.org/protocol/pubsub#retrieve-affiliations",
    "http://jabber.org/protocol/pubsub#retrieve-default",
    "http://jabber.org/protocol/pubsub#retrieve-items",
    "http://jabber.org/protocol/pubsub#retrieve-subscriptions",
    "http://jabber.org/protocol/pubsub#subscribe",
];

/// The features of the pubsub service (XEP-0060 §10), advertised in its disco#info (§5.1):
/// PEP's without what only PEP does (auto-create, auto-subscribe, filtered notifications, the
/// presence and roster access models), with instant nodes, node meta-data and the affiliations
/// owners may set.
pub const SERVICE_FEATURES: &[&str] = &[
    NS,
    "http://jabber.org/protocol/pubsub#access-open",
    "http://jabber.org/protocol/pubsub#access-whitelist",
    "http://jabber.org/protocol/pubsub#config-node",
    "http://jabber.org/protocol/pubsub#config-node-max",
    "http://jabber.org/protocol/pubsub#create-and-configure",
    "http://jabber.org/protocol/pubsub#create-nodes",
    "http://jabber.org/protocol/pubsub#delete-items",
    "http://jabber.org/protocol/pubsub#delete-nodes",
    "http://jabber.org/protocol/pubsub#instant-nodes",
    "http://jabber.org/protocol/pubsub#item-ids",
    "http://jabber.org/protocol/pubsub#last-published",
    "http://jabber.org/protocol/pubsub#manage-subscriptions",
    "http://jabber.org/protocol/pubsub#member-affiliation",
    "http://jabber.org/protocol/pubsub#meta-data",
    "http://jabber.org/protocol/pubsub#modify-affiliations",
    "http://jabber.org/protocol/pubsub#multi-items",
    "http://jabber.org/protocol/pubsub#outcast-affiliation",
    "http://jabber.org/protocol/pubsub#persistent-items",
    "http://jabber.org/protocol/pubsub#publish",
    "http://jabber.org/protocol/pubsub#publish-options",
    "http://jabber.org/protocol/pubsub#publisher-affiliation",
    "http://jabber.org/protocol/pubsub#purge-nodes",
    "http://jabber.org/protocol/pubsub#retract-items",
    "http://jabber.org/protocol/pubsub#retrieve-affiliations",
    "http://jabber.org/protocol/pubsub#retrieve-default",
    "http://jabber.org/protocol/pubsub#retrieve-items",
    "http://jabber.org/protocol/pubsub#retrieve-subscriptions",
    "http://jabber.org/protocol/pubsub#subscribe",
];

/// The notification `event` (XEP-0060 §7.1.2.1, §7.2.2.1, §8.4.2, §8.5.2) as a message from the
/// service `from` to `to`, with the SHIM header naming the subscription it is for, if given
/// (§13.16, numbered as in version 1.26).
pub(crate) fn notification(
    from: &str,
    to: &str,
    event: &NodeEvent,
    subid: Option<&str>,
) -> Element {
    let mut message = Element::new("message", ns::CLIENT)
        .with_attr("from", from)
        .with_attr("to", to)
        .with_attr("type", event.config.notification_type)
        .with_attr("id", random_id())
        .with_child(event_element(event));
    if let Some(subid) = subid {
        // XEP-0060 §13.16: which subscription a notification is for.
        message.append_child(
            Element::new("headers", "http://jabber.org/protocol/shim").with_child(
                Element::new("header", "http://jabber.org/protocol/shim")
                    .with_attr("name", "SubID")
                    .with_text(subid),
            ),
        );
    }
    message
}

/// [`notification`] for many recipients: its `<event/>` serialised once and shared by every
/// copy (a [`starling_proto::Node::Raw`]), its `to` left empty for each copy to set. The
/// notifications of one publication share its id.
pub(crate) fn shared_notification(from: &str, event: &NodeEvent) -> Element {
    let mut message = Element::new("message", ns::CLIENT)
        .with_attr("from", from)
        .with_attr("to", "")
        .with_attr("type", event.config.notification_type)
        .with_attr("id", random_id());
    message.append_serialised(&event_element(event));
    message
}

/// The `<event/>` of a notification: the payload, less the items' payloads when the node does
/// not deliver them (XEP-0060 §7.1.2.2: the item ids only).
fn event_element(event: &NodeEvent) -> Element {
    let mut payload = event.payload.clone();
    if !event.config.deliver_payloads && payload.name() == "items" {
        let ids: Vec<Element> = payload
            .children()
            .map(|i| Element::new(i.name(), NS_EVENT).with_opt_attr("id", i.attr("id")))
            .collect();
        payload.clear_children();
        for i in ids {
            payload.append_child(i);
        }
    }
    Element::new("event", NS_EVENT).with_child(payload)
}

/// A stanza error with a XEP-0060 §14 application condition (`pubsub#errors`).
pub(crate) fn error(condition: StanzaErrorCondition, app: &str) -> StanzaError {
    let mut e = StanzaError::new(condition);
    e.app = Some(Element::new(app, NS_ERRORS));
    e
}

/// `<feature-not-implemented/>` with `<unsupported feature='…'/>` (XEP-0060 §14).
pub(crate) fn unsupported(feature: &str) -> StanzaError {
    let mut e =
        StanzaError::new(StanzaErrorCondition::FeatureNotImplemented).with_type(ErrorType::Cancel);
    e.app = Some(Element::new("unsupported", NS_ERRORS).with_attr("feature", feature));
    e
}

/// `<item-not-found/>`: no such node (or item).
pub(crate) fn not_found() -> StanzaError {
    StanzaError::new(StanzaErrorCondition::ItemNotFound)
}

/// The answer to a storage failure.
pub(crate) fn internal(e: &starling_storage::StorageError) -> StanzaError {
    tracing::warn!(error = %e, "pubsub storage failed");
    StanzaError::new(StanzaErrorCondition::InternalServerError)
}
