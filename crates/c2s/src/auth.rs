//! Accounts and credentials: the bridge between SASL's SCRAM keys and the account store.

use starling_sasl::{ScramCredential, ScramHash};
use starling_storage::{AccountStore, Credential, StorageError};

/// The storage name of the SCRAM mechanism for `hash` (`"SCRAM-SHA-256"`).
pub fn mechanism_name(hash: ScramHash) -> &'static str {
    match hash {
        ScramHash::Sha1 => "SCRAM-SHA-1",
        ScramHash::Sha256 => "SCRAM-SHA-256",
        ScramHash::Sha512 => "SCRAM-SHA-512",
    }
}

/// Converts a stored credential; `None` if it is not a SCRAM credential we know.
pub fn to_scram(c: &Credential) -> Option<ScramCredential> {
    let hash = ScramHash::ALL
        .into_iter()
        .find(|h| mechanism_name(*h) == c.mechanism)?;
    Some(ScramCredential {
        hash,
        salt: c.salt.clone(),
        iterations: c.iterations,
        stored_key: c.stored_key.clone(),
        server_key: c.server_key.clone(),
    })
}

fn from_scram(c: &ScramCredential) -> Credential {
    Credential {
        mechanism: mechanism_name(c.hash).to_owned(),
        salt: c.salt.clone(),
        iterations: c.iterations,
        stored_key: c.stored_key.clone(),
        server_key: c.server_key.clone(),
    }
}

/// Errors creating credentials or accounts.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("invalid address: {0}")]
    InvalidJid(String),
    #[error("the password is not acceptable (empty, or prohibited characters)")]
    BadPassword,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// SCRAM keys for every supported hash (never the password itself).
pub fn make_credentials(password: &str, iterations: u32) -> Result<Vec<Credential>, AccountError> {
    ScramHash::ALL
        .into_iter()
        .map(|h| {
            ScramCredential::generate(h, password, iterations)
                .map(|c| from_scram(&c))
                .map_err(|_| AccountError::BadPassword)
        })
        .collect()
}

/// Splits and normalises `user@domain` (nodeprep/nameprep). The localpart is required.
pub fn parse_account(jid: &str) -> Result<(String, String), AccountError> {
    let bare = starling_proto::BareJid::new(jid)
        .map_err(|e| AccountError::InvalidJid(format!("{jid}: {e}")))?;
    let Some(node) = bare.node() else {
        return Err(AccountError::InvalidJid(format!(
            "{jid}: a user name is required (user@domain)"
        )));
    };
    Ok((node.as_str().to_owned(), bare.domain().as_str().to_owned()))
}

/// Creates an account with SCRAM credentials.
pub async fn create_account(
    store: &dyn AccountStore,
    localpart: &str,
    domain: &str,
    password: &str,
    iterations: u32,
) -> Result<(), AccountError> {
    let creds = make_credentials(password, iterations)?;
    store.create_account(localpart, domain, &creds).await?;
    Ok(())
}

/// Replaces an account's credentials.
pub async fn set_password(
    store: &dyn AccountStore,
    localpart: &str,
    domain: &str,
    password: &str,
    iterations: u32,
) -> Result<(), AccountError> {
    let creds = make_credentials(password, iterations)?;
    store.set_credentials(localpart, domain, &creds).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_hold_no_password() {
        let creds = make_credentials("s3cret-pässword", 4096).unwrap();
        assert_eq!(
            creds
                .iter()
                .map(|c| c.mechanism.as_str())
                .collect::<Vec<_>>(),
            ["SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1"]
        );
        for c in &creds {
            assert_eq!(c.iterations, 4096);
            let scram = to_scram(c).unwrap();
            assert!(scram.verify_password("s3cret-pässword"));
            assert!(!scram.verify_password("wrong"));
            for field in [&c.salt, &c.stored_key, &c.server_key] {
                assert!(!field.windows(6).any(|w| w == b"s3cret"));
            }
        }
        assert!(make_credentials("", 4096).is_err());
    }

    #[test]
    fn account_names_are_normalised() {
        assert_eq!(
            parse_account("Alice@LocalHost").unwrap(),
            ("alice".to_owned(), "localhost".to_owned())
        );
        assert!(parse_account("localhost").is_err());
        assert!(parse_account("a@b/c").is_err());
        assert!(parse_account("").is_err());
    }
}
