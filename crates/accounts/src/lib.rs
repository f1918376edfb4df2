//! Accounts and credentials: the bridge between SASL's SCRAM keys and the account store, shared
//! by the server (SASL looks credentials up here) and the command line (`starling user …`,
//! `starling user import`). Account provisioning lives here, not in the client session.
//!
//! # New account names: stringprep and PRECIS must agree
//!
//! The server compares and stores JIDs with stringprep (RFC 6122 nodeprep, through the `jid`
//! crate), as Prosody and ejabberd do. RFC 7622 replaced it with PRECIS (RFC 7622 §3.3: the
//! localpart is an RFC 8265 `UsernameCaseMapped` string), and clients and servers are moving over.
//! A name on which the two disagree names different accounts, or none, depending on who looks:
//! nodeprep silently drops a ZERO WIDTH JOINER (U+200D) that PRECIS refuses, maps the ligature
//! "ﬃ" (U+FB03) to "ffi" where PRECIS refuses it, folds "ß" to "ss" where PRECIS keeps it. So a
//! new account ([`parse_new_account`], [`new_localpart`], and so [`create_account`]) must be valid
//! under both and normalise to the same string under both; existing accounts are left alone.

pub mod anonymous;
pub mod fast;
pub mod invites;
pub mod registration;

use precis_profiles::UsernameCaseMapped;
use precis_profiles::precis_core::profile::PrecisFastInvocation as _;
use precis_profiles::precis_core::{CodepointInfo, DerivedPropertyValue, Error as PrecisError};
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
    /// A user name stringprep takes but PRECIS does not, or that the two normalise differently
    /// (see the module docs): refused for new accounts.
    #[error("{name:?} cannot be the user name of a new account: {reason}")]
    RefusedName { name: String, reason: String },
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

/// Like [`parse_account`], for an account about to be created: the user name must also be a
/// valid PRECIS `UsernameCaseMapped` string that normalises to the same as under nodeprep
/// ([`new_localpart`]).
pub fn parse_new_account(jid: &str) -> Result<(String, String), AccountError> {
    let (local, domain) = parse_account(jid)?;
    // RFC 7622 §3.1: the localpart is what precedes the first '@' (parse_account checked there
    // is one, and no '/' before it).
    let raw = jid.split_once('@').map_or(jid, |(l, _)| l);
    let checked = new_localpart(raw)?;
    if checked != local {
        // Both are nodeprep of the same text; kept as a guard, not expected.
        return Err(AccountError::InvalidJid(format!(
            "{jid}: the user name normalises to both {checked:?} and {local:?}"
        )));
    }
    Ok((local, domain))
}

/// Normalises `raw`, the user name of a new account, or says why it cannot be one: it must pass
/// stringprep's nodeprep (RFC 6122 Appendix A, what the server uses everywhere) and PRECIS
/// `UsernameCaseMapped` (RFC 8265 §3.3, which RFC 7622 §3.3 requires for localparts), and both
/// must give the same string. Returns that string.
pub fn new_localpart(raw: &str) -> Result<String, AccountError> {
    let nodeprep = starling_proto::jid::NodePart::new(raw)
        .map_err(|e| AccountError::InvalidJid(format!("{raw}: {e}")))?
        .as_str()
        .to_owned();
    let refused = |reason: String| AccountError::RefusedName {
        name: raw.to_owned(),
        reason,
    };
    let nodeprep_says = if nodeprep == raw {
        "stringprep's nodeprep would keep it as it is".to_owned()
    } else {
        format!("stringprep's nodeprep would silently store it as {nodeprep:?}")
    };
    match UsernameCaseMapped::enforce(raw) {
        Err(e) => Err(refused(format!(
            "PRECIS (RFC 7622 §3.3: the UsernameCaseMapped profile of RFC 8265) refuses {}; \
             {nodeprep_says}",
            precis_reason(&e)
        ))),
        Ok(precis) if precis != nodeprep => Err(refused(format!(
            "PRECIS (RFC 7622 §3.3) makes it {precis:?} but stringprep's nodeprep (RFC 6122) \
             makes it {nodeprep:?}; a new name must be the same under both"
        ))),
        Ok(_) => Ok(nodeprep),
    }
}

/// What PRECIS refused in a name, in words: "U+FB03 'ﬃ' (character 2), which is …".
fn precis_reason(e: &PrecisError) -> String {
    let info = match e {
        PrecisError::BadCodepoint(info) => info,
        PrecisError::Unexpected(u) => return format!("it ({u})"),
        // Empty after the width mapping, or the bidi rule (RFC 5893) failed.
        PrecisError::Invalid => {
            return "it: it is empty, or mixes writing directions as RFC 5893 forbids".to_owned();
        }
    };
    let CodepointInfo {
        cp,
        position,
        property,
    } = info;
    let what = match property {
        DerivedPropertyValue::ContextJ => {
            "a joiner, allowed only after a virama (RFC 5892 Appendix A.1, A.2)"
        }
        DerivedPropertyValue::ContextO => {
            "allowed only in a context this name lacks (RFC 5892 Appendix A)"
        }
        DerivedPropertyValue::Unassigned => "unassigned in the Unicode version PRECIS uses",
        _ => "not allowed in user names (a compatibility form, symbol, space or control)",
    };
    // The character itself, where it is visible on its own.
    let shown = char::from_u32(*cp)
        .map(|c| format!("{c:?}"))
        .filter(|d| !d.contains('\\') && !d.contains(char::is_whitespace))
        .map(|d| format!(" {d}"))
        .unwrap_or_default();
    format!(
        "U+{cp:04X}{shown} (character {}), which is {what}",
        position + 1
    )
}

/// Creates an account with SCRAM credentials. `localpart` is checked and normalised as a new
/// account's name ([`new_localpart`]) and stored in that form.
pub async fn create_account(
    store: &dyn AccountStore,
    localpart: &str,
    domain: &str,
    password: &str,
    iterations: u32,
) -> Result<(), AccountError> {
    let localpart = new_localpart(localpart)?;
    let creds = make_credentials(password, iterations)?;
    store.create_account(&localpart, domain, &creds).await?;
    Ok(())
}

/// The SCRAM credential of `localpart@domain` for `hash`, for SASL. With `any_hash` (PLAIN, which
/// checks the password against whatever credential exists) a credential of another hash will do.
/// `Ok(None)` for an unknown account or one without such a credential.
pub async fn scram_credential(
    store: &dyn AccountStore,
    localpart: &str,
    domain: &str,
    hash: ScramHash,
    any_hash: bool,
) -> Result<Option<ScramCredential>, StorageError> {
    Ok(login_credential(store, localpart, domain, hash, any_hash)
        .await?
        .map(|l| l.credential))
}

/// What the login path reads of an account: its SCRAM credential and whether it is disabled.
#[derive(Clone, Debug)]
pub struct LoginCredential {
    pub credential: ScramCredential,
    /// The account is disabled (XEP-0133 §4.3): even with the right password it may not log in.
    pub disabled: bool,
}

/// [`scram_credential`] with the account's disabled flag, read in the same query
/// ([`AccountStore::login_credential`]): what SASL looks up.
pub async fn login_credential(
    store: &dyn AccountStore,
    localpart: &str,
    domain: &str,
    hash: ScramHash,
    any_hash: bool,
) -> Result<Option<LoginCredential>, StorageError> {
    let wanted = std::iter::once(hash).chain(
        ScramHash::ALL
            .into_iter()
            .filter(move |h| any_hash && *h != hash),
    );
    for h in wanted {
        if let Some((c, disabled)) = store
            .login_credential(localpart, domain, mechanism_name(h))
            .await?
        {
            return Ok(to_scram(&c).map(|credential| LoginCredential {
                credential,
                disabled,
            }));
        }
    }
    Ok(None)
}

/// Seconds since the Unix epoch, the clock of stored expiry times (invitations, FAST tokens);
/// 0 before 1970.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
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

    /// RFC 7622 §3.3 / RFC 8265 §3.3 (PRECIS) against RFC 6122 Appendix A (nodeprep): a new
    /// account's name must be valid under both and come out the same.
    #[test]
    fn new_account_names_agree_under_precis_and_nodeprep() {
        let refused = |jid: &str| match parse_new_account(jid) {
            Err(e @ AccountError::RefusedName { .. }) => e.to_string(),
            other => panic!("{jid}: {other:?}"),
        };
        // Same under both: accepted, in the normalised form (case, fullwidth letters).
        for (jid, local) in [
            ("Alice@LocalHost", "alice"),
            ("\u{FF42}\u{FF4F}\u{FF42}@localhost", "bob"),
            ("jos\u{E9}@localhost", "jos\u{E9}"),
            ("\u{3A3}\u{391}\u{3A3}@localhost", "\u{3C3}\u{3B1}\u{3C3}"),
        ] {
            assert_eq!(
                parse_new_account(jid).unwrap(),
                (local.to_owned(), "localhost".to_owned()),
                "{jid}"
            );
        }
        // nodeprep maps the ligature to "ffi"; PRECIS refuses compatibility characters.
        assert_eq!(
            refused("a\u{FB03}@localhost"),
            "\"a\u{FB03}\" cannot be the user name of a new account: PRECIS (RFC 7622 §3.3: the \
             UsernameCaseMapped profile of RFC 8265) refuses U+FB03 '\u{FB03}' (character 2), \
             which is not allowed in user names (a compatibility form, symbol, space or control); \
             stringprep's nodeprep would silently store it as \"affi\""
        );
        // nodeprep drops a ZERO WIDTH JOINER; PRECIS allows it only after a virama.
        assert_eq!(
            refused("a\u{200D}b@localhost"),
            // The name is quoted with escapes, so the invisible character shows.
            "\"a\\u{200d}b\" cannot be the user name of a new account: PRECIS (RFC 7622 §3.3: the \
             UsernameCaseMapped profile of RFC 8265) refuses U+200D (character 2), which is a \
             joiner, allowed only after a virama (RFC 5892 Appendix A.1, A.2); stringprep's \
             nodeprep would silently store it as \"ab\""
        );
        // Both valid, different results: nodeprep case-folds ß to "ss", PRECIS keeps it.
        assert_eq!(
            refused("Stra\u{DF}e@localhost"),
            "\"Stra\u{DF}e\" cannot be the user name of a new account: PRECIS (RFC 7622 §3.3) \
             makes it \"stra\u{DF}e\" but stringprep's nodeprep (RFC 6122) makes it \
             \"strasse\"; a new name must be the same under both"
        );
        // A symbol nodeprep keeps as it is.
        assert!(refused("\u{2665}@localhost").ends_with(
            "which is not allowed in user names (a compatibility form, symbol, space or \
             control); stringprep's nodeprep would keep it as it is"
        ));
        // What nodeprep itself refuses stays an invalid address.
        assert!(matches!(
            parse_new_account("a b@localhost"),
            Err(AccountError::InvalidJid(_))
        ));
        assert!(matches!(
            parse_new_account("localhost"),
            Err(AccountError::InvalidJid(_))
        ));
    }
}
