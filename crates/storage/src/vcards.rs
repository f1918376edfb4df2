//! vcard-temp (XEP-0054): one vCard per account.

use async_trait::async_trait;

use crate::StorageError;

/// The vCards of all accounts: at most one per account, stored as the
/// serialized `<vCard xmlns='vcard-temp'/>` element (XML text).
///
/// `localpart` and `domain` name the owning account; they are already
/// normalised and compared byte-for-byte (see the crate docs). Deleting the
/// account deletes its vCard.
#[async_trait]
pub trait VcardStore: Send + Sync {
    /// The account's vCard, exactly as last set; `None` if it never set one
    /// or the account does not exist.
    async fn vcard(&self, localpart: &str, domain: &str) -> Result<Option<String>, StorageError>;

    /// Sets (replaces) the account's vCard.
    ///
    /// Fails with [`StorageError::NotFound`] if the account does not exist.
    async fn set_vcard(
        &self,
        localpart: &str,
        domain: &str,
        vcard: &str,
    ) -> Result<(), StorageError>;
}
