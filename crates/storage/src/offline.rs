//! Offline messages (XEP-0160): message stanzas kept for an account that had
//! no available resource, until it next becomes available.

use async_trait::async_trait;

use crate::StorageError;

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineMessage {
    /// Assigned by the store. Ids of one store only ever grow, across all
    /// accounts, and are never reused (not even after a delete), so "up to
    /// and including id N" names exactly the messages handed out before.
    pub id: u64,
    /// The serialized stanza (XML text), exactly as given to
    /// [`OfflineStore::store`].
    pub stanza: String,
}

/// What [`OfflineStore::store`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineOutcome {
    /// The message was appended to the account's queue under this id.
    Stored {
        /// The id assigned to the new message.
        id: u64,
    },
    /// The account already holds `max` messages (or `max` is 0): nothing was
    /// stored.
    Full,
}

/// The offline message queues of all accounts, one queue per account.
///
/// `localpart` and `domain` name the owning account; they are already
/// normalised and compared byte-for-byte (see the crate docs). Deleting the
/// account deletes its queue.
#[async_trait]
pub trait OfflineStore: Send + Sync {
    /// Appends `stanza` (XML text, stored as given) to the account's queue,
    /// unless the queue already holds `max` or more messages. The count and
    /// the append are one atomic step, so concurrent stores never exceed
    /// `max`.
    ///
    /// Fails with [`StorageError::NotFound`] if the account does not exist
    /// (whatever `max` is).
    async fn store(
        &self,
        localpart: &str,
        domain: &str,
        stanza: &str,
        max: u64,
    ) -> Result<OfflineOutcome, StorageError>;

    /// The account's messages in arrival order (ascending ids). Empty for an
    /// unknown account.
    async fn load(
        &self,
        localpart: &str,
        domain: &str,
    ) -> Result<Vec<OfflineMessage>, StorageError>;

    /// Deletes the account's messages whose id is at most `up_to` and returns
    /// how many were deleted. Messages stored after a [`Self::load`] have
    /// larger ids than any it returned, so they survive a delete up to the
    /// last loaded id. An unknown account has nothing to delete (`Ok(0)`).
    async fn delete_up_to(
        &self,
        localpart: &str,
        domain: &str,
        up_to: u64,
    ) -> Result<u64, StorageError>;

    /// How many messages the account holds; 0 for an unknown account.
    async fn count(&self, localpart: &str, domain: &str) -> Result<u64, StorageError>;
}
