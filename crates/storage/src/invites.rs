//! Invitations (XEP-0401, XEP-0379, XEP-0445): tokens that let someone register an account
//! without public registration, and/or become a contact of the inviter without a prompt.

use async_trait::async_trait;

use crate::{Credential, StorageError};

/// One invitation. The token itself is never stored: `token_hash` is what the caller derived
/// from it (Starling stores the hex SHA-256), and every look-up goes by that key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invite {
    /// The key derived from the token; unique.
    pub token_hash: String,
    /// The host the invitation is for: accounts it creates are on this domain.
    pub domain: String,
    /// The user name reserved for the invitee (an account invitation with a fixed name), or
    /// `None` to let the invitee choose.
    pub username: Option<String>,
    /// The local account `(localpart, domain)` the invitee becomes a mutual contact of, or
    /// `None`. Deleting that account deletes the invitation.
    pub contact: Option<(String, String)>,
    /// Whether the token may create an account (XEP-0445); a contact-only invitation
    /// (XEP-0379 without `ibr=y`) may not.
    pub register: bool,
    /// How many more times the token may be used (at least 1 while it is stored).
    pub uses_left: u32,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Expiry time, Unix seconds: from then on the token is worthless.
    pub expires_at: i64,
}

/// The invitations of all hosts.
///
/// Names are normalised and compared byte-for-byte (see the crate docs).
#[async_trait]
pub trait InviteStore: Send + Sync {
    /// Stores a new invitation.
    ///
    /// Fails with [`StorageError::AlreadyExists`] if `token_hash` is taken, with
    /// [`StorageError::NotFound`] if `contact` names an account that does not exist, and with
    /// [`StorageError::Backend`] if `uses_left` is 0.
    async fn create_invite(&self, invite: &Invite) -> Result<(), StorageError>;

    /// The invitation with this key, whether or not it expired; `None` if there is none.
    async fn invite(&self, token_hash: &str) -> Result<Option<Invite>, StorageError>;

    /// Creates the account `localpart@domain` with `creds` and spends one use of the
    /// invitation, in one transaction: either both happen or neither. Returns the invitation
    /// as it was before the use.
    ///
    /// Fails with [`StorageError::NotFound`] if there is no such invitation, it expired
    /// (`expires_at <= now`), it may not register, or it is for another domain or reserves
    /// another user name; with [`StorageError::AlreadyExists`] if the account exists. The
    /// invitation is deleted with its last use.
    async fn register_with_invite(
        &self,
        token_hash: &str,
        now: i64,
        localpart: &str,
        domain: &str,
        creds: &[Credential],
    ) -> Result<Invite, StorageError>;

    /// Spends one use of a valid invitation (not expired at `now`) without creating an
    /// account, and returns it as it was before; `None` if there is no valid one. The
    /// invitation is deleted with its last use. Atomic.
    async fn use_invite(&self, token_hash: &str, now: i64) -> Result<Option<Invite>, StorageError>;

    /// Whether an invitation that has not expired at `now` reserves `localpart@domain`
    /// (XEP-0445 §5: the name stays reserved until the token expires).
    async fn is_reserved(
        &self,
        localpart: &str,
        domain: &str,
        now: i64,
    ) -> Result<bool, StorageError>;

    /// The invitations, of `domain` only if given, oldest first (expired ones included).
    async fn list_invites(&self, domain: Option<&str>) -> Result<Vec<Invite>, StorageError>;

    /// Deletes the invitation; whether there was one.
    async fn delete_invite(&self, token_hash: &str) -> Result<bool, StorageError>;

    /// Deletes every invitation that expired at `now`; how many.
    async fn purge_expired(&self, now: i64) -> Result<u64, StorageError>;
}
