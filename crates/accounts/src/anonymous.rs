//! Accounts of anonymous hosts (`[[host]] anonymous = true`, as web guests and Jitsi Meet use
//! them): a client that logs in with SASL ANONYMOUS (RFC 4505) gets a fresh account with a random
//! name and no credentials, which exists only while its session does.
//!
//! # Why a real account
//!
//! The router's rules ask the account store whether an address exists (RFC 6121 §8.5: a message
//! to an account that does not exist is refused; roster, offline storage and archives belong to
//! accounts): a stored account, without credentials, makes an anonymous user an ordinary one for
//! as long as it lives. Nobody can log in to it: it has no password, and an anonymous login never
//! names an account ([`create`] picks the name).
//!
//! # Hazards
//!
//! - **Names** are [`LOCALPART_LEN`] characters of a 32-letter lowercase alphabet (100 random
//!   bits): unguessable, and already in the form nodeprep and PRECIS keep as is, so the stored
//!   name is the one every comparison sees. The client's RFC 4505 trace information never names
//!   anything.
//! - **Leftovers**: the account is deleted when its connection ends; a crash skips that, so the
//!   server deletes what remains at start ([`purge`]). An account *with* credentials on an
//!   anonymous host was not made here (the host was a normal one before): it is kept and reported,
//!   never deleted on a guess.

use starling_storage::{AccountStore, StorageError};

use crate::mechanism_name;

/// Characters in an anonymous account's name.
pub const LOCALPART_LEN: usize = 20;

/// 32 letters: each random byte gives 5 bits without bias.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Attempts at a fresh name before giving up (a collision of 100-bit names does not happen;
/// this only bounds the loop).
const ATTEMPTS: usize = 3;

/// A random name for an anonymous account ([`LOCALPART_LEN`] characters of `a`–`z`, `2`–`7`).
pub fn random_localpart() -> String {
    let mut bytes = [0u8; LOCALPART_LEN];
    rand::fill(&mut bytes[..]);
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
        .collect()
}

/// Creates a fresh anonymous account on `domain`, without credentials; returns its localpart.
pub async fn create(store: &dyn AccountStore, domain: &str) -> Result<String, StorageError> {
    for _ in 0..ATTEMPTS {
        let localpart = random_localpart();
        match store.create_account(&localpart, domain, &[]).await {
            Ok(()) => return Ok(localpart),
            Err(StorageError::AlreadyExists) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StorageError::AlreadyExists)
}

/// What [`purge`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Purged {
    /// Leftover anonymous accounts deleted (with everything they owned).
    pub deleted: usize,
    /// Accounts kept because they have a password: not anonymous ones (listed by localpart).
    pub kept: Vec<String>,
}

/// Deletes every account of the anonymous host `domain` that has no credentials: the leftovers
/// of sessions a crash ended without their cleanup. For the server's start, before any client
/// can log in.
pub async fn purge(store: &dyn AccountStore, domain: &str) -> Result<Purged, StorageError> {
    let mut purged = Purged::default();
    for (localpart, d) in store.list_accounts(Some(domain)).await? {
        if has_credentials(store, &localpart, &d).await? {
            purged.kept.push(localpart);
            continue;
        }
        match store.delete_account(&localpart, &d).await {
            Ok(()) | Err(StorageError::NotFound) => purged.deleted += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(purged)
}

async fn has_credentials(
    store: &dyn AccountStore,
    localpart: &str,
    domain: &str,
) -> Result<bool, StorageError> {
    for hash in starling_sasl::ScramHash::ALL {
        if store
            .credential(localpart, domain, mechanism_name(hash))
            .await?
            .is_some()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_random_and_already_normalised() {
        let a = random_localpart();
        let b = random_localpart();
        assert_ne!(a, b);
        assert_eq!(a.len(), LOCALPART_LEN);
        assert!(a.bytes().all(|c| ALPHABET.contains(&c)));
        // Valid under both stringprep and PRECIS, and unchanged by either.
        assert_eq!(crate::new_localpart(&a).ok().as_deref(), Some(a.as_str()));
    }
}
