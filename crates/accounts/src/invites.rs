//! Invitations: tokens, their URIs, and redeeming them (XEP-0401, XEP-0379, XEP-0445).
//!
//! A token is 128 random bits in URL-safe base64 (XEP-0379 §5.1 asks for at least 80 bits
//! in an encoding that fits a URI). Only its SHA-256 ([`token_hash`]) is stored, so a copy of
//! the database invites nobody; the token exists only in the URI handed to the invitee.
//!
//! Three kinds of invitation, told apart by [`Invite::contact`] and [`Invite::register`]:
//!
//! | made by | contact | register | URI |
//! |---|---|---|---|
//! | an operator, for a new account | — | yes | `xmpp:example.org?register;preauth=T` (or `xmpp:juliet@example.org?…` with a reserved name) |
//! | a user or an operator, for a new contact who may register here | the inviter | yes | `xmpp:romeo@example.org?roster;preauth=T;ibr=y` |
//! | a user, for a contact only | the inviter | no | `xmpp:romeo@example.org?roster;preauth=T` |

use std::time::Duration;

use base64::Engine as _;
use rand::RngExt as _;
use sha2::Digest as _;
use starling_storage::{Invite, InviteStore, StorageError};

/// What to invite for; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InviteRequest {
    /// The host accounts are created on (the contact's domain for a contact invitation).
    pub domain: String,
    /// A user name reserved for the invitee, already normalised ([`crate::new_localpart`]).
    pub username: Option<String>,
    /// The local account the invitee becomes a mutual contact of, normalised.
    pub contact: Option<(String, String)>,
    /// Whether the token may create an account.
    pub register: bool,
    /// How many times the token may be used (at least 1).
    pub uses: u32,
    /// How long the token is valid.
    pub lifetime: Duration,
}

/// A stored invitation with its token: the only moment the token is known.
#[derive(Clone, Debug)]
pub struct CreatedInvite {
    pub token: String,
    pub invite: Invite,
}

impl CreatedInvite {
    /// The `xmpp:` URI the invitee opens (XEP-0401 §5.1, XEP-0445 §2, RFC 5122).
    pub fn uri(&self) -> String {
        invite_uri(&self.invite, &self.token)
    }
}

/// Why an invitation could not be created.
#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    #[error("an invitation needs at least one use")]
    NoUses,
    #[error("the lifetime is too long")]
    Lifetime,
    #[error("{0} is not an account of this server")]
    NoSuchContact(String),
    #[error("a reserved user name needs an invitation that may register")]
    NameWithoutRegistration,
    #[error(transparent)]
    Storage(StorageError),
}

/// A new random token.
pub fn new_token() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The key an invitation is stored under: the hex SHA-256 of its token.
pub fn token_hash(token: &str) -> String {
    let digest = sha2::Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Creates and stores an invitation; `now` in Unix seconds.
pub async fn create_invite(
    store: &dyn InviteStore,
    req: &InviteRequest,
    now: i64,
) -> Result<CreatedInvite, InviteError> {
    if req.uses == 0 {
        return Err(InviteError::NoUses);
    }
    if req.username.is_some() && !req.register {
        return Err(InviteError::NameWithoutRegistration);
    }
    let secs = i64::try_from(req.lifetime.as_secs()).map_err(|_| InviteError::Lifetime)?;
    let expires_at = now.checked_add(secs).ok_or(InviteError::Lifetime)?;
    let token = new_token();
    let invite = Invite {
        token_hash: token_hash(&token),
        domain: req.domain.clone(),
        username: req.username.clone(),
        contact: req.contact.clone(),
        register: req.register,
        uses_left: req.uses,
        created_at: now,
        expires_at,
    };
    match store.create_invite(&invite).await {
        Ok(()) => Ok(CreatedInvite { token, invite }),
        Err(StorageError::NotFound) => Err(InviteError::NoSuchContact(
            req.contact
                .as_ref()
                .map(|(l, d)| format!("{l}@{d}"))
                .unwrap_or_default(),
        )),
        Err(e) => Err(InviteError::Storage(e)),
    }
}

/// The URI of an account invitation (XEP-0445 §2), even when it also makes the invitee a
/// contact: what XEP-0401 §5.4's "Create account" hands out.
pub fn register_uri(invite: &Invite, token: &str) -> String {
    let token = iri_escape(token);
    match &invite.username {
        Some(u) => format!(
            "xmpp:{}@{}?register;preauth={token}",
            iri_escape(u),
            invite.domain
        ),
        None => format!("xmpp:{}?register;preauth={token}", invite.domain),
    }
}

/// The URI of `invite` with `token`; see the module docs.
pub fn invite_uri(invite: &Invite, token: &str) -> String {
    match &invite.contact {
        Some((l, d)) => {
            let ibr = if invite.register { ";ibr=y" } else { "" };
            format!(
                "xmpp:{}@{d}?roster;preauth={}{ibr}",
                iri_escape(l),
                iri_escape(token)
            )
        }
        None => register_uri(invite, token),
    }
}

/// Percent-encodes what RFC 5122 §2.2 does not let stand in a node or query value: everything
/// but RFC 3987's unreserved characters (ASCII letters, digits, `-._~`, and non-ASCII).
fn iri_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || "-._~".contains(c) || !c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)].to_ascii_uppercase()));
                out.push(char::from(HEX[usize::from(b & 15)].to_ascii_uppercase()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(contact: Option<(&str, &str)>, username: Option<&str>, register: bool) -> Invite {
        Invite {
            token_hash: String::new(),
            domain: "example.org".to_owned(),
            username: username.map(str::to_owned),
            contact: contact.map(|(l, d)| (l.to_owned(), d.to_owned())),
            register,
            uses_left: 1,
            created_at: 0,
            expires_at: 1,
        }
    }

    /// XEP-0401 §5.1, XEP-0445 §2 and XEP-0379 §3.1: the three URI shapes.
    #[test]
    fn uris() {
        assert_eq!(
            invite_uri(&invite(None, None, true), "T0k-_"),
            "xmpp:example.org?register;preauth=T0k-_"
        );
        assert_eq!(
            invite_uri(&invite(None, Some("juliet"), true), "T"),
            "xmpp:juliet@example.org?register;preauth=T"
        );
        assert_eq!(
            invite_uri(&invite(Some(("romeo", "example.org")), None, true), "T"),
            "xmpp:romeo@example.org?roster;preauth=T;ibr=y"
        );
        assert_eq!(
            invite_uri(&invite(Some(("romeo", "example.org")), None, false), "T"),
            "xmpp:romeo@example.org?roster;preauth=T"
        );
        // RFC 5122 §2.2: a ';' or '=' in a localpart would end the node or the key.
        assert_eq!(
            invite_uri(&invite(Some(("a;b=c", "example.org")), None, false), "T"),
            "xmpp:a%3Bb%3Dc@example.org?roster;preauth=T"
        );
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = new_token();
        assert_eq!(a.len(), 22);
        assert_ne!(a, new_token());
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
