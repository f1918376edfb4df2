//! Publish-subscribe (XEP-0060) nodes, items, affiliations and subscriptions, shared by PEP
//! (XEP-0163: one service per account, named by the account's bare JID) and a pubsub service
//! (`pubsub.<domain>`).
//!
//! The store knows no protocol: a node's configuration, an affiliation and a subscription state
//! are strings it keeps as given; access models, defaults and limits are the engine's business.

use async_trait::async_trait;

use crate::StorageError;

/// A node's configuration as data-form field values (`pubsub#max_items` → `["10"]`), in the
/// order given; opaque to the store, which returns it exactly as set.
pub type NodeConfig = Vec<(String, Vec<String>)>;

/// Names a node: the service (a PEP account's bare JID, or `pubsub.example.org`) and the node
/// name within it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeKey {
    /// The service's JID, normalised.
    pub service: String,
    /// The node's name (NodeID).
    pub node: String,
}

impl NodeKey {
    /// The node `node` of `service`.
    pub fn new(service: impl Into<String>, node: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            node: node.into(),
        }
    }
}

/// A node as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredNode {
    /// Which node.
    pub key: NodeKey,
    /// The local account `(localpart, domain)` that owns the node's service (PEP), or `None`
    /// (a pubsub service's node). Deleting that account deletes the node with its items,
    /// affiliations and subscriptions.
    pub owner: Option<(String, String)>,
    /// The node's configuration.
    pub config: NodeConfig,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// One published item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredItem {
    /// The ItemID, unique within its node.
    pub id: String,
    /// The publisher's JID, if the node records it.
    pub publisher: Option<String>,
    /// The item's XML (the `<item/>` element or its payload, as the engine chooses), stored
    /// and returned byte-for-byte.
    pub payload: String,
    /// Publication time, Unix seconds.
    pub published_at: i64,
}

/// One subscription to a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSubscription {
    /// The subscriber's JID (bare or full), normalised.
    pub jid: String,
    /// The SubID, unique among the JID's subscriptions to the node.
    pub subid: String,
    /// The state (`subscribed`, `pending`, `unconfigured`), as given.
    pub state: String,
}

/// The pubsub nodes of every service.
///
/// Services, node names, item ids, JIDs and subids are normalised by the caller and compared
/// byte-for-byte (see the crate docs). Writes to a node that does not exist fail with
/// [`StorageError::NotFound`]; reads of one return nothing (`None`, empty, 0), so a caller that
/// must tell "no node" from "no items" asks [`PubsubStore::node`]. Every write is atomic.
#[async_trait]
pub trait PubsubStore: Send + Sync {
    /// Creates the node `key` with `config`, owned by the account `owner` (PEP) or by none.
    ///
    /// Fails with [`StorageError::AlreadyExists`] if the node exists, and with
    /// [`StorageError::NotFound`] if `owner` names an account that does not exist.
    async fn create_node(
        &self,
        key: &NodeKey,
        owner: Option<(&str, &str)>,
        config: &NodeConfig,
        created_at: i64,
    ) -> Result<(), StorageError>;

    /// The node, `None` if it does not exist.
    async fn node(&self, key: &NodeKey) -> Result<Option<StoredNode>, StorageError>;

    /// The nodes of `service`, sorted by name (UTF-8 byte order); empty for an unknown service.
    async fn nodes(&self, service: &str) -> Result<Vec<StoredNode>, StorageError>;

    /// Replaces the node's configuration. Items already stored stay (the engine trims them
    /// with its next [`publish`](Self::publish), or by [`purge`](Self::purge)).
    async fn set_config(&self, key: &NodeKey, config: &NodeConfig) -> Result<(), StorageError>;

    /// Deletes the node with its items, affiliations and subscriptions.
    async fn delete_node(&self, key: &NodeKey) -> Result<(), StorageError>;

    /// Publishes `item`: it replaces the item with the same id (and becomes the newest), then
    /// the oldest items beyond `max_items` are deleted (`None`: no limit, XEP-0060's `max`;
    /// `Some(0)` keeps nothing, not even `item`). Returns how many items the limit deleted
    /// (the replaced item is not counted). One transaction.
    async fn publish(
        &self,
        key: &NodeKey,
        item: &StoredItem,
        max_items: Option<u64>,
    ) -> Result<u64, StorageError>;

    /// Deletes the item `item_id`; whether there was one.
    async fn retract(&self, key: &NodeKey, item_id: &str) -> Result<bool, StorageError>;

    /// The node's items, newest first, at most `limit` of them (`None`: all).
    async fn items(
        &self,
        key: &NodeKey,
        limit: Option<u64>,
    ) -> Result<Vec<StoredItem>, StorageError>;

    /// The items with these ids, in the order asked (an id asked twice comes twice); ids with no
    /// item are skipped.
    async fn items_by_id(
        &self,
        key: &NodeKey,
        ids: &[String],
    ) -> Result<Vec<StoredItem>, StorageError>;

    /// The newest item, `None` if there is none.
    async fn last_item(&self, key: &NodeKey) -> Result<Option<StoredItem>, StorageError>;

    /// Deletes every item of the node (XEP-0060 §8.5); how many.
    async fn purge(&self, key: &NodeKey) -> Result<u64, StorageError>;

    /// Sets `jid`'s affiliation with the node, or with `None` removes it.
    async fn set_affiliation(
        &self,
        key: &NodeKey,
        jid: &str,
        affiliation: Option<&str>,
    ) -> Result<(), StorageError>;

    /// The node's affiliations `(jid, affiliation)`, sorted by JID.
    async fn affiliations(&self, key: &NodeKey) -> Result<Vec<(String, String)>, StorageError>;

    /// `jid`'s affiliation with the node, `None` without one.
    async fn affiliation(&self, key: &NodeKey, jid: &str) -> Result<Option<String>, StorageError>;

    /// Stores `subscription`, replacing the one with the same JID and subid (its state changes).
    async fn subscribe(
        &self,
        key: &NodeKey,
        subscription: &StoredSubscription,
    ) -> Result<(), StorageError>;

    /// Removes `jid`'s subscription `subid`, or with `None` all of `jid`'s subscriptions to the
    /// node; how many.
    async fn unsubscribe(
        &self,
        key: &NodeKey,
        jid: &str,
        subid: Option<&str>,
    ) -> Result<u64, StorageError>;

    /// The node's subscriptions, sorted by JID, then subid.
    async fn subscriptions(&self, key: &NodeKey) -> Result<Vec<StoredSubscription>, StorageError>;

    /// `jid`'s subscriptions to the nodes of `service` (`None`: of every service), sorted by
    /// service, node, then subid (XEP-0060 §5.6).
    async fn subscriptions_of(
        &self,
        service: Option<&str>,
        jid: &str,
    ) -> Result<Vec<(NodeKey, StoredSubscription)>, StorageError>;

    /// How many nodes `service` has.
    async fn node_count(&self, service: &str) -> Result<u64, StorageError>;

    /// How many items the node holds.
    async fn item_count(&self, key: &NodeKey) -> Result<u64, StorageError>;
}
