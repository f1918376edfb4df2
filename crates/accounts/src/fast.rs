//! XEP-0484 FAST tokens: issuing, checking and rotating them, for every connection.
//!
//! # How tokens are kept
//!
//! The HT mechanisms (`starling_sasl::ht`) need the token itself on the server: it is the key
//! of the HMAC the client proves it holds. So instead of the token, the store keeps a random
//! `nonce`, and the token is derived from it with the server's secret ([`ServerSecret`], 32
//! random bytes in a file of the data directory, created with mode 0600 at the first start):
//! `token = base64url(HMAC-SHA-256(secret, "starling fast token" ‖ account ‖ user agent ‖
//! mechanism ‖ nonce))`. A copy of the database alone (a backup, a leaked file) gives nonces
//! and no token; someone who has both the database and the secret file has the server.
//! Binding the account, the client (`<user-agent id/>`) and the mechanism into the derivation
//! means a token never works for another of them even if rows were swapped.
//!
//! # Rotation (XEP-0484 §4.5, §7.1)
//!
//! Tokens live in two slots per client ([`FastSlot`]): a new token goes to `New`, the first
//! login with it moves it to `Current` and deletes the older one; a client that never got the
//! newest token (its connection dropped) still logs in with the previous one. A login whose
//! token has less than half of its lifetime left gets a new one unasked.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use starling_sasl::ht::{self, HtMechanism};
use starling_storage::{FastSlot, FastToken, FastTokenStore, FastUse, StorageError};

/// Length of the server secret and of a token's nonce.
pub const SECRET_LEN: usize = 32;

/// Why the server secret could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read or create the server secret {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the server secret {path} must hold exactly {SECRET_LEN} bytes (it holds {len}); delete it to make a new one (every FAST token is then invalid)"
    )]
    Length { path: String, len: usize },
}

/// The server's secret: FAST tokens and Bind2's stable resources are derived from it.
#[derive(Clone)]
pub struct ServerSecret([u8; SECRET_LEN]);

impl std::fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerSecret(..)")
    }
}

impl ServerSecret {
    /// Reads the secret at `path`, or creates it (32 random bytes, mode 0600 on Unix, never
    /// overwriting a file another process created meanwhile).
    pub fn load_or_create(path: &Path) -> Result<ServerSecret, SecretError> {
        let io = |source| SecretError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read(path) {
            Ok(bytes) => return Self::from_file_bytes(path, &bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let mut secret = [0u8; SECRET_LEN];
        rand::fill(&mut secret[..]);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        match options.open(path) {
            Ok(mut file) => {
                use std::io::Write as _;
                file.write_all(&secret).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok(ServerSecret(secret))
            }
            // Another process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let bytes = std::fs::read(path).map_err(io)?;
                Self::from_file_bytes(path, &bytes)
            }
            Err(e) => Err(io(e)),
        }
    }

    fn from_file_bytes(path: &Path, bytes: &[u8]) -> Result<ServerSecret, SecretError> {
        <[u8; SECRET_LEN]>::try_from(bytes)
            .map(ServerSecret)
            .map_err(|_| SecretError::Length {
                path: path.display().to_string(),
                len: bytes.len(),
            })
    }

    /// A secret from bytes (tests, or a secret kept elsewhere).
    pub fn from_bytes(bytes: [u8; SECRET_LEN]) -> ServerSecret {
        ServerSecret(bytes)
    }

    /// `HMAC-SHA-256(secret, label ‖ NUL-separated parts)`.
    fn derive(&self, label: &str, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        mac.update(label.as_bytes());
        for p in parts {
            mac.update(&[0]);
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// A key for another use of the secret, named by `label` (HTTP upload URLs sign with
    /// `derive_key("starling upload url")`): each use has its own key, and none reveals the
    /// secret or another use's key.
    pub fn derive_key(&self, label: &str) -> [u8; 32] {
        self.derive(label, &[])
    }

    /// The token of (account, client, mechanism) stored with `nonce` (see the module docs).
    pub fn token(&self, account: &str, user_agent: &str, mechanism: &str, nonce: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.derive(
            "starling fast token",
            &[
                account.as_bytes(),
                user_agent.as_bytes(),
                mechanism.as_bytes(),
                nonce,
            ],
        ))
    }

    /// XEP-0386 §3.2.1: the server-generated part of a stable resource for a client: the same
    /// for the same account, `<user-agent id/>` and `<tag/>`, and revealing none of them.
    pub fn stable_resource_id(&self, account: &str, user_agent: &str, tag: &str) -> String {
        let d = self.derive(
            "starling bind2 resource",
            &[account.as_bytes(), user_agent.as_bytes(), tag.as_bytes()],
        );
        // 72 bits: unguessable and short enough to read in a JID.
        URL_SAFE_NO_PAD.encode(&d[..9])
    }
}

pub use crate::unix_now;

/// A token handed to a client (`<token xmlns='urn:xmpp:fast:0' token expiry/>`).
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The secret the client keeps.
    pub token: String,
    /// When it expires, seconds since the Unix epoch.
    pub expires_at: i64,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Whose a token is: a client (`user_agent`, its XEP-0388 `<user-agent id/>`) of the account
/// `localpart@domain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenOwner<'a> {
    pub localpart: &'a str,
    pub domain: &'a str,
    pub user_agent: &'a str,
}

/// What a client presents in a token login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenProof<'a> {
    /// The HT mechanism it uses.
    pub mechanism: HtMechanism,
    /// This connection's channel-binding data for it (empty for `-NONE`).
    pub cb_data: &'a [u8],
    /// The HT initiator hash.
    pub proof: &'a [u8],
    /// XEP-0484's `count`, if given.
    pub count: Option<u64>,
}

/// Issues a new token for `mechanism` to `owner`, valid for `lifetime` from `now` (XEP-0484
/// §4.2), into the client's `New` slot.
pub async fn issue(
    store: &dyn FastTokenStore,
    secret: &ServerSecret,
    owner: TokenOwner<'_>,
    mechanism: HtMechanism,
    lifetime: Duration,
    now: i64,
) -> Result<IssuedToken, StorageError> {
    let TokenOwner {
        localpart,
        domain,
        user_agent,
    } = owner;
    let mut nonce = vec![0u8; SECRET_LEN];
    rand::fill(&mut nonce[..]);
    let life = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
    let expires_at = now.saturating_add(life);
    let row = FastToken {
        user_agent: user_agent.to_owned(),
        mechanism: mechanism.name().to_owned(),
        nonce,
        expires_at,
        slot: FastSlot::New,
        last_count: None,
    };
    store.issue(localpart, domain, &row).await?;
    let account = format!("{localpart}@{domain}");
    Ok(IssuedToken {
        token: secret.token(&account, user_agent, mechanism.name(), &row.nonce),
        expires_at,
    })
}

/// A login with a token that was accepted and recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastLogin {
    /// The HT responder hash for `<additional-data/>`.
    pub responder: Vec<u8>,
    /// The nonce of the token used (for `invalidate`).
    pub nonce: Vec<u8>,
    /// Whether the token is due for rotation: less than half its lifetime left.
    pub rotate: bool,
}

/// Why a token login failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FastRefusal {
    /// No token of this client matches (unknown, revoked, rotated away, another mechanism or
    /// channel binding): `<not-authorized/>`.
    NoMatch,
    /// The matching token expired: `<credentials-expired/>` (XEP-0484 §5.2).
    Expired,
    /// The `count` was not above one already seen (XEP-0484 §4.4): `<not-authorized/>`.
    Replayed,
}

/// Checks a token login (XEP-0484 §4.4): `owner` proves with `attempt` (the HT initiator hash
/// over the channel-binding data) that it holds one of its tokens for that mechanism; the match
/// is recorded with the attempt's `count` ([`FastTokenStore::use_token`]).
pub async fn login(
    store: &dyn FastTokenStore,
    secret: &ServerSecret,
    owner: TokenOwner<'_>,
    attempt: TokenProof<'_>,
    lifetime: Duration,
    now: i64,
) -> Result<Result<FastLogin, FastRefusal>, StorageError> {
    let TokenOwner {
        localpart,
        domain,
        user_agent,
    } = owner;
    let TokenProof {
        mechanism,
        cb_data,
        proof,
        count,
    } = attempt;
    let account = format!("{localpart}@{domain}");
    let tokens = store.tokens(localpart, domain, user_agent).await?;
    // Every candidate is checked, in constant time each, whatever matched before.
    let mut found = None;
    for t in tokens {
        if t.mechanism != mechanism.name() {
            continue;
        }
        let token = secret.token(&account, user_agent, &t.mechanism, &t.nonce);
        if ht::verify(token.as_bytes(), cb_data, proof) {
            found = Some((t, token));
        }
    }
    let Some((t, token)) = found else {
        return Ok(Err(FastRefusal::NoMatch));
    };
    if t.expires_at <= now {
        return Ok(Err(FastRefusal::Expired));
    }
    match store
        .use_token(localpart, domain, user_agent, &t.nonce, count)
        .await?
    {
        FastUse::Accepted => {}
        FastUse::Replayed => return Ok(Err(FastRefusal::Replayed)),
        FastUse::Gone => return Ok(Err(FastRefusal::NoMatch)),
    }
    let life = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
    Ok(Ok(FastLogin {
        responder: ht::responder_hash(token.as_bytes(), cb_data),
        nonce: t.nonce,
        rotate: t.expires_at.saturating_sub(now) < life / 2,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_what_they_were_issued_for() {
        let s = ServerSecret::from_bytes([7; SECRET_LEN]);
        let t = s.token("a@x", "ua", "HT-SHA-256-NONE", b"n");
        assert_eq!(t.len(), 43);
        assert_eq!(t, s.token("a@x", "ua", "HT-SHA-256-NONE", b"n"));
        for other in [
            s.token("b@x", "ua", "HT-SHA-256-NONE", b"n"),
            s.token("a@x", "ub", "HT-SHA-256-NONE", b"n"),
            s.token("a@x", "ua", "HT-SHA-256-EXPR", b"n"),
            s.token("a@x", "ua", "HT-SHA-256-NONE", b"m"),
            ServerSecret::from_bytes([8; SECRET_LEN]).token("a@x", "ua", "HT-SHA-256-NONE", b"n"),
        ] {
            assert_ne!(t, other);
        }
        let r = s.stable_resource_id("a@x", "ua", "tag");
        assert_eq!(r, s.stable_resource_id("a@x", "ua", "tag"));
        assert_ne!(r, s.stable_resource_id("a@x", "ub", "tag"));
        assert_ne!(r, s.stable_resource_id("a@x", "ua", "other"));
        assert_eq!(r.len(), 12);
    }

    #[test]
    fn the_secret_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("secret");
        let a = ServerSecret::load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        let b = ServerSecret::load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.0, b.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path)
                .unwrap_or_else(|e| panic!("{e}"))
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, b"short").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            ServerSecret::load_or_create(&path),
            Err(SecretError::Length { len: 5, .. })
        ));
    }
}
