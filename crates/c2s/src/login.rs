//! Whether an account whose credentials were just verified may log in: the one place every login
//! path asks (SASL today; SASL2 and FAST tokens call it too), so that a rule added here holds for
//! all of them.
//!
//! Today the rule is the disabled flag (XEP-0133 §4.3, "the prevention of further user logins
//! until the account is re-enabled"), answered with RFC 6120 §6.5.1's `<account-disabled/>`. It is
//! checked after the password, not before: only someone who knows the password learns that the
//! account is disabled, and a wrong password costs the same as for any account. The flag comes
//! with the credential ([`starling_accounts::login_credential`], one query); a path whose lookup
//! did not read it (a FAST token) passes `None` and it is read here.

use starling_proto::BareJid;
use starling_sasl::SaslFailure;
use starling_storage::{StorageError, Stores};

/// Why an authenticated account may not log in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginRefusal {
    /// The account is disabled (XEP-0133 §4.3).
    Disabled,
    /// The account is gone (deleted since its credential was read).
    Gone,
    /// The store did not answer.
    Unavailable,
}

impl LoginRefusal {
    /// The SASL failure condition to answer with (RFC 6120 §6.5).
    pub fn failure(self) -> SaslFailure {
        match self {
            // §6.5.1: "The account of the initiating entity has been temporarily disabled".
            LoginRefusal::Disabled => SaslFailure::AccountDisabled,
            LoginRefusal::Gone => SaslFailure::NotAuthorized,
            LoginRefusal::Unavailable => SaslFailure::TemporaryAuthFailure,
        }
    }

    /// The `<text/>` of the failure.
    pub fn text(self) -> &'static str {
        match self {
            LoginRefusal::Disabled => "this account is disabled",
            LoginRefusal::Gone => "this account no longer exists",
            LoginRefusal::Unavailable => "the account cannot be checked now; try again later",
        }
    }
}

/// Decides whether `account`, whose credentials were just verified, may log in. `disabled` is the
/// flag read with the credential, `None` when the caller's lookup did not read it (then it is read
/// here).
pub async fn may_log_in(
    stores: &Stores,
    account: &BareJid,
    disabled: Option<bool>,
) -> Result<(), LoginRefusal> {
    let disabled = match disabled {
        Some(d) => d,
        None => {
            let Some(node) = account.node() else {
                return Err(LoginRefusal::Gone);
            };
            match stores
                .accounts
                .is_disabled(node.as_str(), account.domain().as_str())
                .await
            {
                Ok(d) => d,
                Err(StorageError::NotFound) => return Err(LoginRefusal::Gone),
                Err(e) => {
                    tracing::error!(%account, error = %e, "cannot read the account's state");
                    return Err(LoginRefusal::Unavailable);
                }
            }
        }
    };
    if disabled {
        return Err(LoginRefusal::Disabled);
    }
    Ok(())
}
