//! XEP-0363 HTTP File Upload: the slots handed out and the files stored through them.
//!
//! A slot is reserved when a user asks for one (`<request/>`), and completed when the file was
//! stored by its HTTP PUT. The rows say whose each file is, for the per-user quota, and when it
//! was made, for expiry. The files themselves are on disk, the upload service's to write and
//! delete: a row is deleted only after its file (see the service).
//!
//! Slots belong to no account row: the owner is a bare JID. Deleting an account leaves its slots
//! to the upload service, which deletes the files and then the rows
//! ([`UploadStore::slots_of`], [`UploadStore::delete`]) when it hears of the deletion.

use async_trait::async_trait;

use crate::StorageError;

/// One slot as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadSlot {
    /// The slot's random id (the first path segment of its URLs), unique.
    pub id: String,
    /// Who asked for it: a bare JID, normalised.
    pub owner: String,
    /// The file name, as the service sanitised it.
    pub filename: String,
    /// The size announced in the request, in bytes: the PUT must send exactly this.
    pub size: u64,
    /// The Content-Type of the request, if it named one.
    pub content_type: Option<String>,
    /// When the slot was handed out, seconds since the Unix epoch.
    pub created_at: i64,
    /// Whether the file was stored (its PUT completed).
    pub completed: bool,
}

/// The upload slots of every user.
///
/// Ids and owners are compared byte-for-byte (see the crate docs).
#[async_trait]
pub trait UploadStore: Send + Sync {
    /// Records `slot` (with `completed` false, whatever it says) if the owner's slots, completed
    /// or not, plus this one stay within `quota` bytes; returns whether it was recorded. Atomic:
    /// two reservations of one owner never both pass on the same room.
    ///
    /// Fails with [`StorageError::AlreadyExists`] when the id is taken.
    async fn reserve(&self, slot: &UploadSlot, quota: u64) -> Result<bool, StorageError>;

    /// The slot with this id.
    async fn slot(&self, id: &str) -> Result<Option<UploadSlot>, StorageError>;

    /// Marks the slot completed; false when there is no such slot or it was completed already.
    async fn complete(&self, id: &str) -> Result<bool, StorageError>;

    /// Bytes the owner's slots take, completed or not.
    async fn used(&self, owner: &str) -> Result<u64, StorageError>;

    /// Every slot of `owner`, oldest first.
    async fn slots_of(&self, owner: &str) -> Result<Vec<UploadSlot>, StorageError>;

    /// Completed slots created before `completed_before` and slots not completed created before
    /// `pending_before` (seconds since the Unix epoch; `None`: completed ones never expire),
    /// oldest first, at most `limit`.
    async fn expired(
        &self,
        completed_before: Option<i64>,
        pending_before: i64,
        limit: u32,
    ) -> Result<Vec<UploadSlot>, StorageError>;

    /// Deletes the slot's row; false when there was none.
    async fn delete(&self, id: &str) -> Result<bool, StorageError>;
}
