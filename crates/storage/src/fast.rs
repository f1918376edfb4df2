//! XEP-0484 FAST tokens.

use std::fmt;

use async_trait::async_trait;

use crate::StorageError;

/// Which of a client's two slots a token is in (XEP-0484 §7.1, "Server-side handling of
/// multiple active tokens"): a token is issued into `New`; the first login with it moves it to
/// `Current`, replacing the token there. So at most two tokens per client are valid at once,
/// and a client that lost the newest token before it used it still has the previous one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FastSlot {
    /// Used at least once since it was issued.
    Current,
    /// Issued and not used yet.
    New,
}

/// One stored FAST token. The token itself is **not** stored: only `nonce`, from which the
/// server derives it with a secret kept outside the database (see `starling_accounts::fast`),
/// so that a copy of the database alone lets nobody log in.
#[derive(Clone, PartialEq, Eq)]
pub struct FastToken {
    /// The client it was issued to: the XEP-0388 `<user-agent id/>`.
    pub user_agent: String,
    /// The SASL mechanism it is bound to (`HT-SHA-256-NONE`, …; XEP-0484 §4.4).
    pub mechanism: String,
    /// Random bytes the token is derived from.
    pub nonce: Vec<u8>,
    /// When it expires, in seconds since the Unix epoch.
    pub expires_at: i64,
    /// Its slot.
    pub slot: FastSlot,
    /// The highest XEP-0484 `count` a login with it carried, if any did.
    pub last_count: Option<u64>,
}

impl fmt::Debug for FastToken {
    // The nonce is half of a secret: show its length only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FastToken")
            .field("user_agent", &self.user_agent)
            .field("mechanism", &self.mechanism)
            .field("nonce_len", &self.nonce.len())
            .field("expires_at", &self.expires_at)
            .field("slot", &self.slot)
            .field("last_count", &self.last_count)
            .finish()
    }
}

/// What [`FastTokenStore::use_token`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastUse {
    /// Recorded: the token is (now) the client's current one.
    Accepted,
    /// The login carried a `count` not above the highest one seen with this token (a replay,
    /// XEP-0484 §4.4): nothing changed.
    Replayed,
    /// No such token any more (revoked, or replaced meanwhile): nothing changed.
    Gone,
}

/// FAST tokens per account and client (XEP-0484).
///
/// `localpart` and `domain` are normalised, as for [`AccountStore`](crate::AccountStore).
/// Besides these methods, the contract has two parts in [`AccountStore`](crate::AccountStore):
/// `set_credentials` and `delete_account` delete every token of the account in the same
/// transaction, so that every password change and every deletion revokes the tokens, whoever
/// makes it.
#[async_trait]
pub trait FastTokenStore: Send + Sync {
    /// The tokens of `user_agent` on the account (at most one per slot), expired ones
    /// included: the caller checks expiry. Empty for an unknown account.
    async fn tokens(
        &self,
        localpart: &str,
        domain: &str,
        user_agent: &str,
    ) -> Result<Vec<FastToken>, StorageError>;

    /// Stores `token` in the `New` slot of its user agent (its `slot` field is ignored),
    /// replacing a token issued before and never used (XEP-0484 §4.5: those SHOULD be
    /// invalidated). The `Current` token stays. Fails with [`StorageError::NotFound`] if the
    /// account does not exist. Atomic.
    async fn issue(
        &self,
        localpart: &str,
        domain: &str,
        token: &FastToken,
    ) -> Result<(), StorageError>;

    /// Records a successful login with the token of `user_agent` derived from `nonce`: with a
    /// `count`, it must exceed the highest one recorded for that token ([`FastUse::Replayed`]
    /// otherwise) and becomes it; a `New` token becomes `Current` and the token that was current
    /// is deleted (XEP-0484 §4.5: tokens with an earlier expiry are invalidated once a later
    /// one is used). Atomic: two logins with the same count cannot both be accepted.
    async fn use_token(
        &self,
        localpart: &str,
        domain: &str,
        user_agent: &str,
        nonce: &[u8],
        count: Option<u64>,
    ) -> Result<FastUse, StorageError>;

    /// Deletes the token of `user_agent` derived from `nonce` (XEP-0484 §4.6, `invalidate`).
    /// Whether it existed.
    async fn revoke(
        &self,
        localpart: &str,
        domain: &str,
        user_agent: &str,
        nonce: &[u8],
    ) -> Result<bool, StorageError>;

    /// Deletes every token of the account (an administrator's revocation); how many there
    /// were. 0 for an unknown account.
    async fn revoke_all(&self, localpart: &str, domain: &str) -> Result<u64, StorageError>;

    /// Deletes every token that expired before `now` (seconds since the Unix epoch); how many.
    async fn delete_expired(&self, now: i64) -> Result<u64, StorageError>;
}
