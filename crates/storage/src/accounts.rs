//! Accounts and their SCRAM credentials.

use std::fmt;

use async_trait::async_trait;

use crate::StorageError;

/// One SCRAM credential of an account, as stored by the server
/// (RFC 5802 §3: the server keeps `salt`, `i`, `StoredKey`, `ServerKey`,
/// never the password).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// SASL mechanism name: `"SCRAM-SHA-1"`, `"SCRAM-SHA-256"` or
    /// `"SCRAM-SHA-512"`. An account has at most one credential per mechanism.
    pub mechanism: String,
    /// The salt, arbitrary bytes (may contain zero bytes).
    pub salt: Vec<u8>,
    /// The PBKDF2 iteration count `i`.
    pub iterations: u32,
    /// `StoredKey := H(ClientKey)`.
    pub stored_key: Vec<u8>,
    /// `ServerKey := HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
}

impl fmt::Debug for Credential {
    // The keys are secret-equivalent (see crate docs): show only their sizes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("mechanism", &self.mechanism)
            .field("salt_len", &self.salt.len())
            .field("iterations", &self.iterations)
            .field("stored_key_len", &self.stored_key.len())
            .field("server_key_len", &self.server_key.len())
            .finish_non_exhaustive()
    }
}

/// Rejects a credential set naming the same mechanism twice.
///
/// Backends call this before writing, so that [`AccountStore::create_account`]
/// and [`AccountStore::set_credentials`] fail whole with
/// [`StorageError::Backend`] instead of keeping an arbitrary one of the two.
pub fn check_distinct_mechanisms(creds: &[Credential]) -> Result<(), StorageError> {
    for (i, c) in creds.iter().enumerate() {
        if creds[..i].iter().any(|p| p.mechanism == c.mechanism) {
            return Err(StorageError::backend(format!(
                "duplicate credential for mechanism {:?}",
                c.mechanism
            )));
        }
    }
    Ok(())
}

/// One account for [`AccountStore::create_accounts`].
///
/// Everything is borrowed, so that a batch can share one credential slice
/// (bulk provisioning gives every account the same password) and the caller
/// decides how to hold the names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewAccount<'a> {
    /// The localpart, already normalised.
    pub localpart: &'a str,
    /// The domain, already normalised.
    pub domain: &'a str,
    /// The account's credentials (possibly none), at most one per mechanism.
    pub creds: &'a [Credential],
}

/// Accounts and their SASL credentials.
///
/// `localpart` and `domain` are already normalised and compared
/// byte-for-byte (see the crate docs).
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Creates an account with the given credentials (possibly none).
    ///
    /// Fails with [`StorageError::AlreadyExists`] if the account exists, in
    /// which case its credentials are left untouched. Atomic.
    async fn create_account(
        &self,
        localpart: &str,
        domain: &str,
        creds: &[Credential],
    ) -> Result<(), StorageError>;

    /// Creates every account of `accounts` with its credentials, all or
    /// nothing: on error none of them was created. An empty batch succeeds.
    ///
    /// Fails with [`StorageError::AlreadyExists`] if one of them exists or
    /// the batch names one account twice, and with [`StorageError::Backend`]
    /// if one's credentials name a mechanism twice
    /// ([`check_distinct_mechanisms`]). Atomic.
    ///
    /// Meant for bulk provisioning (`starling user import`): a backend makes
    /// this one transaction with statements prepared once, not one
    /// [`Self::create_account`] per account (thousands of commits). A batch
    /// holds the backend's write lock for its whole duration, so callers
    /// split very large imports into chunks.
    async fn create_accounts(&self, accounts: &[NewAccount<'_>]) -> Result<(), StorageError>;

    /// Replaces **all** credentials of the account with `creds`: a mechanism
    /// not in `creds` is gone afterwards. Every FAST token of the account
    /// ([`FastTokenStore`](crate::FastTokenStore)) is deleted in the same
    /// transaction: a new password revokes them.
    ///
    /// Fails with [`StorageError::NotFound`] if the account does not exist.
    /// Atomic.
    async fn set_credentials(
        &self,
        localpart: &str,
        domain: &str,
        creds: &[Credential],
    ) -> Result<(), StorageError>;

    /// Deletes the account and everything it owns, its FAST tokens included
    /// (in the same transaction).
    ///
    /// Fails with [`StorageError::NotFound`] if the account does not exist.
    async fn delete_account(&self, localpart: &str, domain: &str) -> Result<(), StorageError>;

    /// Whether the account exists.
    async fn account_exists(&self, localpart: &str, domain: &str) -> Result<bool, StorageError>;

    /// The account's credential for `mechanism`, or `None` if the account or
    /// that credential does not exist.
    async fn credential(
        &self,
        localpart: &str,
        domain: &str,
        mechanism: &str,
    ) -> Result<Option<Credential>, StorageError>;

    /// Disables (`disabled = true`) or re-enables the account. A disabled account keeps
    /// everything it owns (XEP-0133 §4.3: disabling "MUST NOT result in the destruction of any
    /// implementation-specific data") but may not log in. Setting the state the account already
    /// has succeeds; a new account is enabled, and so is one created again after a deletion.
    /// Disabling also deletes the account's FAST tokens (XEP-0484) in the same transaction, as
    /// [`Self::set_credentials`] does.
    ///
    /// Fails with [`StorageError::NotFound`] if the account does not exist.
    async fn set_disabled(
        &self,
        localpart: &str,
        domain: &str,
        disabled: bool,
    ) -> Result<(), StorageError>;

    /// Whether the account is disabled ([`Self::set_disabled`]).
    ///
    /// Fails with [`StorageError::NotFound`] if the account does not exist.
    async fn is_disabled(&self, localpart: &str, domain: &str) -> Result<bool, StorageError>;

    /// The login path's one lookup: the account's credential for `mechanism` and whether the
    /// account is disabled, or `None` if the account or that credential does not exist.
    ///
    /// The default asks [`Self::credential`] then [`Self::is_disabled`]; a backend answers it
    /// with one query (every login pays for it).
    async fn login_credential(
        &self,
        localpart: &str,
        domain: &str,
        mechanism: &str,
    ) -> Result<Option<(Credential, bool)>, StorageError> {
        let Some(c) = self.credential(localpart, domain, mechanism).await? else {
            return Ok(None);
        };
        match self.is_disabled(localpart, domain).await {
            Ok(disabled) => Ok(Some((c, disabled))),
            // Deleted between the two lookups.
            Err(StorageError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// All accounts as `(localpart, domain)`, only those of `domain` if given.
    ///
    /// Sorted the way `Vec::sort` sorts the tuples: by localpart, then
    /// domain, comparing the UTF-8 bytes.
    async fn list_accounts(
        &self,
        domain: Option<&str>,
    ) -> Result<Vec<(String, String)>, StorageError>;
}
