//! XEP-0077 in-band registration of new accounts, with XEP-0445 invitations: the rules, shared
//! by every transport that lets a client register before authenticating.
//!
//! The caller checks a submission with [`check_submission`], derives the credentials
//! ([`crate::make_credentials`], slow on purpose: off the async threads) and stores the
//! account with [`create`], which spends the invitation in the same transaction.

use starling_storage::{AccountStore, Credential, Invite, InviteStore, StorageError};

use crate::{AccountError, new_localpart};

/// Who may register, and what a password must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Anyone may register (public registration).
    pub open: bool,
    /// Holders of an invitation may register (XEP-0445).
    pub invites: bool,
    /// Shortest password, in characters.
    pub min_password_length: usize,
}

impl Policy {
    /// Whether in-band registration is offered at all.
    pub fn offered(&self) -> bool {
        self.open || self.invites
    }
}

/// Why a registration was refused; each maps to one XEP-0077 error (see [`Self::condition`]).
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("in-band registration is not offered here")]
    NotOffered,
    #[error("registration here needs an invitation")]
    NeedsInvitation,
    #[error("the invitation is invalid, used up or expired")]
    BadInvitation,
    #[error("the username and the password are both required")]
    Incomplete,
    #[error("{0}")]
    BadUsername(String),
    #[error("the password must have at least {0} characters")]
    ShortPassword(usize),
    #[error("the password is not acceptable (prohibited characters)")]
    BadPassword,
    #[error("the username is taken")]
    Taken,
    #[error("the invitation is for the username {0}")]
    WrongName(String),
    #[error("storage failure")]
    Storage(#[source] StorageError),
}

/// The stanza error condition of a [`RegisterError`] (XEP-0077 §3.1, XEP-0445 §4), and
/// whether its type is `modify` (else `cancel`; `wait` only for the caller's own rate limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    ServiceUnavailable,
    NotAllowed,
    ItemNotFound,
    NotAcceptable,
    Conflict,
    InternalServerError,
}

impl RegisterError {
    pub fn condition(&self) -> Condition {
        match self {
            RegisterError::NotOffered => Condition::ServiceUnavailable,
            RegisterError::NeedsInvitation => Condition::NotAllowed,
            RegisterError::BadInvitation => Condition::ItemNotFound,
            RegisterError::Incomplete
            | RegisterError::BadUsername(_)
            | RegisterError::ShortPassword(_)
            | RegisterError::BadPassword => Condition::NotAcceptable,
            RegisterError::Taken | RegisterError::WrongName(_) => Condition::Conflict,
            RegisterError::Storage(_) => Condition::InternalServerError,
        }
    }
}

/// A password the policy accepts: long enough and valid under SASLprep (RFC 4013), which
/// [`crate::make_credentials`] applies.
pub fn check_password(password: &str, policy: &Policy) -> Result<(), RegisterError> {
    if password.chars().count() < policy.min_password_length {
        return Err(RegisterError::ShortPassword(policy.min_password_length));
    }
    if starling_sasl::saslprep(password).is_err() {
        return Err(RegisterError::BadPassword);
    }
    Ok(())
}

/// Checks a registration before any work: whether this stream may register at all (`invite`:
/// the invitation it presented, valid when it did), the username (normalised, returned) and
/// the password. The name is checked against an invitation's reserved name here; that it is
/// free is checked by [`create`].
pub fn check_submission(
    policy: &Policy,
    invite: Option<&Invite>,
    username: Option<&str>,
    password: Option<&str>,
) -> Result<String, RegisterError> {
    if !policy.offered() {
        return Err(RegisterError::NotOffered);
    }
    if invite.is_none() && !policy.open {
        return Err(RegisterError::NeedsInvitation);
    }
    let (Some(username), Some(password)) = (username, password) else {
        return Err(RegisterError::Incomplete);
    };
    if username.is_empty() || password.is_empty() {
        return Err(RegisterError::Incomplete);
    }
    let local = new_localpart(username).map_err(|e| match e {
        AccountError::RefusedName { .. } | AccountError::InvalidJid(_) => {
            RegisterError::BadUsername(e.to_string())
        }
        other => RegisterError::BadUsername(other.to_string()),
    })?;
    if let Some(reserved) = invite.and_then(|i| i.username.as_deref())
        && reserved != local
    {
        return Err(RegisterError::WrongName(reserved.to_owned()));
    }
    check_password(password, policy)?;
    Ok(local)
}

/// Stores the account: with an invitation (its key, and the time it was presented, XEP-0445
/// §4: expiry is checked only then), spending one use in the same transaction; without one
/// (open registration) refusing names that an invitation reserves (XEP-0445 §5). Returns the
/// invitation used.
pub async fn create(
    accounts: &dyn AccountStore,
    invites: &dyn InviteStore,
    invite: Option<(&str, i64)>,
    localpart: &str,
    domain: &str,
    creds: &[Credential],
    now: i64,
) -> Result<Option<Invite>, RegisterError> {
    match invite {
        Some((hash, presented_at)) => invites
            .register_with_invite(hash, presented_at, localpart, domain, creds)
            .await
            .map(Some)
            .map_err(|e| match e {
                StorageError::AlreadyExists => RegisterError::Taken,
                StorageError::NotFound => RegisterError::BadInvitation,
                e => RegisterError::Storage(e),
            }),
        None => {
            if invites
                .is_reserved(localpart, domain, now)
                .await
                .map_err(RegisterError::Storage)?
            {
                return Err(RegisterError::Taken);
            }
            accounts
                .create_account(localpart, domain, creds)
                .await
                .map(|()| None)
                .map_err(|e| match e {
                    StorageError::AlreadyExists => RegisterError::Taken,
                    e => RegisterError::Storage(e),
                })
        }
    }
}
