//! XEP-0357 push notifications: the app servers each account asked the server to notify.

use async_trait::async_trait;

use crate::StorageError;

/// One registration: notifications go to the pubsub `node` at the app server `jid`, with the
/// `options` form (serialised `<x xmlns='jabber:x:data'/>`, the app server's secret) as
/// publish-options. An account has at most one registration per `(jid, node)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushRegistration {
    /// The app server's JID, as the client wrote it after normalisation.
    pub jid: String,
    /// The pubsub node at the app server.
    pub node: String,
    /// The publish-options form as given at enabling, serialised; `None` without one.
    pub options: Option<String>,
}

/// What [`PushStore::enable`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PushEnabled {
    /// The account's oldest registrations removed to stay within the bound.
    pub evicted: u64,
}

/// The push registrations of all accounts.
///
/// `localpart` and `domain` name the owning account, normalised and compared byte-for-byte
/// (see the crate docs); so are `jid` and `node`. Deleting the account deletes its
/// registrations.
#[async_trait]
pub trait PushStore: Send + Sync {
    /// The account's registrations, the oldest enabled first; empty for an account that has
    /// none or does not exist.
    async fn registrations(
        &self,
        localpart: &str,
        domain: &str,
    ) -> Result<Vec<PushRegistration>, StorageError>;

    /// Adds a registration, or replaces the one with the same `(jid, node)` (its options
    /// change, and it counts as the newest). When the account then has more than `max`, the
    /// oldest are removed. Atomic.
    ///
    /// Fails with [`StorageError::NotFound`] if the account does not exist.
    async fn enable(
        &self,
        localpart: &str,
        domain: &str,
        registration: &PushRegistration,
        max: u64,
    ) -> Result<PushEnabled, StorageError>;

    /// Removes the registration `(jid, node)`, or with `node` `None` every registration at
    /// `jid`. Returns how many were removed (0 for an account that does not exist).
    async fn disable(
        &self,
        localpart: &str,
        domain: &str,
        jid: &str,
        node: Option<&str>,
    ) -> Result<u64, StorageError>;
}
