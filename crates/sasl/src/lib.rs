//! Sans-IO SASL for Starling: the server side of SCRAM-SHA-1/-256/-512 and their `-PLUS`
//! variants (RFC 5802, RFC 7677; channel bindings `tls-exporter` (RFC 9266) and
//! `tls-server-end-point` (RFC 5929)), PLAIN (RFC 4616) and ANONYMOUS (RFC 4505), plus a small
//! client side ([`client`]) for tests and load generation.
//!
//! # Procedure (server)
//!
//! This crate does no I/O and no storage access. The XMPP layer base64-decodes the payload of
//! `<auth/>` / `<response/>` and passes raw bytes; it base64-encodes the bytes of every
//! [`Step::Challenge`] and of [`Step::Success::additional_data`](Step::Success).
//!
//! 1. [`ServerSession::start`] with the chosen [`Mechanism`], the stream's domain, the
//!    [`ChannelBindings`] this connection can offer, whether `-PLUS` mechanisms were advertised
//!    and the initial response (`None` if `<auth/>` carried none).
//! 2. React to the returned [`Step`]:
//!    - [`Step::NeedCredentials`]: look up the stored [`ScramCredential`] of `username` and call
//!      [`ServerSession::provide_credentials`] (`None` if there is no such user, or the name is
//!      not a valid localpart).
//!    - [`Step::Challenge`]: send it, feed the client's next `<response/>` to
//!      [`ServerSession::step`].
//!    - [`Step::Success`] / [`Step::Failure`]: done.
//!
//! ANONYMOUS (RFC 4505) never asks for credentials: its one message (optional trace
//! information) ends in [`Step::Success`] with an empty `username`. Which account the client
//! gets is the caller's choice (a fresh random one); the trace, if any, is only for logs
//! ([`ServerSession::anonymous_trace`]) and must never name anything.
//!
//! Credentials are stored as SCRAM `StoredKey`/`ServerKey` ([`ScramCredential`], RFC 5802 §3);
//! the plaintext password is never kept. PLAIN is checked by re-deriving `StoredKey` from the
//! offered password with the stored salt and iteration count.
//!
//! # Hazards
//!
//! - **User enumeration.** An unknown user must look like a wrong password. With `None`
//!   credentials SCRAM still answers with a plausible server-first message (salt derived from
//!   the username and a per-process secret, so it is stable across attempts; iteration count
//!   [`DEFAULT_ITERATIONS`] unless changed with [`ServerSession::set_unknown_user_iterations`],
//!   which should match what real accounts use) and fails with
//!   [`SaslFailure::NotAuthorized`] at the end. PLAIN runs PBKDF2 on a dummy salt so timing
//!   does not reveal the difference.
//! - **Channel-binding downgrade.** A client that supports channel binding but believes the
//!   server does not sends the GS2 flag `y`; if `-PLUS` was advertised that means a MITM
//!   stripped it and authentication fails (RFC 5802 §6).
//! - **Constant time.** Proofs and keys are compared with `subtle`.
//! - **PLAIN** discloses the password to the server; only offer it over TLS.
//! - **Iteration counts** come from storage on the server and from the server on the client;
//!   the client caps them ([`client::ScramClient::with_max_iterations`]).
//! - Every malformed input yields [`SaslFailure::MalformedRequest`]; no input panics.
//!
//! # Failure mapping (RFC 6120 §6.5)
//!
//! Syntax errors, a `p=` flag with a non-`PLUS` mechanism, `n`/`y` with a `-PLUS` mechanism and
//! unknown mandatory extensions (`m=`) → `malformed-request`; a wrong password, unknown user,
//! mismatching nonce or `c=` (channel binding), a downgrade (`y` while `-PLUS` was advertised)
//! → `not-authorized`; an authzid other than the user's own bare JID → `invalid-authzid`; API
//! misuse or unusable stored credentials → `temporary-auth-failure`.
//!
//! A channel-binding type this connection does not offer (unknown, like `tls-unique`, which TLS
//! 1.3 does not define, or known but unavailable here) → `malformed-request` with the RFC 5802 §7
//! server-error-value [`ScramServerError::UnsupportedChannelBindingType`], which
//! [`ServerSession::server_error`] reports. The client did nothing wrong with its password: it
//! picked a binding we do not do, and should try another mechanism.
//!
//! # What the caller learns beyond the condition
//!
//! - [`ServerSession::server_error`]: the `server-error-value` (RFC 5802 §7) to pass on to the
//!   client, where there is one worth telling (today only the one above).
//! - [`ServerSession::credentials_rejected`]: whether the exchange failed on the credentials
//!   themselves (a wrong SCRAM proof, a wrong PLAIN password, an unknown user): the only failures
//!   that are password guesses, for throttling. Malformed input, a wrong nonce or channel
//!   binding, a downgrade, an authzid, an abort are not.

use std::fmt;

use subtle::ConstantTimeEq as _;

pub mod client;
mod crypto;
pub mod ht;
mod server;
mod syntax;

pub use server::{MAX_TRACE_CHARS, ServerSession, Step};

/// The SCRAM attribute-syntax parsers (RFC 5802 §7), reachable from outside only for the fuzz
/// targets in `fuzz/` (feature `fuzzing`); not part of the API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::syntax::{
        attr, authzid_matches, b64_decode, b64_encode, decode_saslname, encode_saslname,
        is_valid_cb_name, is_valid_extension, is_valid_nonce,
    };
}

/// Iteration count used by [`ScramCredential::generate`] and for unknown users
/// (RFC 7677 §4 recommends at least 4096).
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// Length of the salt generated by [`ScramCredential::generate`].
pub const SALT_LEN: usize = 16;

/// Errors of the non-protocol API: credential derivation and the [`client`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// A username or password is prohibited by SASLprep (RFC 4013) or empty after it.
    #[error("string rejected by SASLprep")]
    Saslprep,
    /// The iteration count is 0 (Hi requires i ≥ 1).
    #[error("iteration count must be at least 1")]
    ZeroIterations,
    /// The server asked for more iterations than the client accepts.
    #[error("iteration count {0} exceeds the client's limit")]
    TooManyIterations(u32),
    /// A client nonce given to the client is empty or contains invalid characters.
    #[error("invalid nonce")]
    InvalidNonce,
    /// A server message could not be parsed.
    #[error("malformed server message: {0}")]
    MalformedServerMessage(&'static str),
    /// The server's nonce does not extend the client nonce.
    #[error("server nonce does not start with the client nonce")]
    NonceMismatch,
    /// The server requires an extension we do not support (`m=`).
    #[error("server requires an unsupported extension")]
    UnsupportedExtension,
    /// The server-final message carried `e=<value>`.
    #[error("server reported error: {0}")]
    ServerError(String),
    /// The server's signature (`v=`) is wrong: the server does not know the password.
    #[error("server signature mismatch")]
    ServerSignatureMismatch,
    /// A client method was called out of order.
    #[error("method called in the wrong state")]
    InvalidState,
}

/// A SCRAM `server-error-value` (RFC 5802 §7), sent as `e=<value>` in place of the
/// server-final message's verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramServerError {
    /// `invalid-encoding`.
    InvalidEncoding,
    /// `extensions-not-supported`.
    ExtensionsNotSupported,
    /// `invalid-proof`.
    InvalidProof,
    /// `channel-bindings-dont-match`.
    ChannelBindingsDontMatch,
    /// `server-does-support-channel-binding`.
    ServerDoesSupportChannelBinding,
    /// `channel-binding-not-supported`.
    ChannelBindingNotSupported,
    /// `unsupported-channel-binding-type`: the `p=` type is not one this connection offers.
    UnsupportedChannelBindingType,
    /// `unknown-user` (never sent by this server: it would reveal which accounts exist).
    UnknownUser,
    /// `invalid-username-encoding`.
    InvalidUsernameEncoding,
    /// `no-resources`.
    NoResources,
    /// `other-error`.
    OtherError,
}

impl ScramServerError {
    /// The value as written after `e=`, e.g. `"unsupported-channel-binding-type"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ScramServerError::InvalidEncoding => "invalid-encoding",
            ScramServerError::ExtensionsNotSupported => "extensions-not-supported",
            ScramServerError::InvalidProof => "invalid-proof",
            ScramServerError::ChannelBindingsDontMatch => "channel-bindings-dont-match",
            ScramServerError::ServerDoesSupportChannelBinding => {
                "server-does-support-channel-binding"
            }
            ScramServerError::ChannelBindingNotSupported => "channel-binding-not-supported",
            ScramServerError::UnsupportedChannelBindingType => "unsupported-channel-binding-type",
            ScramServerError::UnknownUser => "unknown-user",
            ScramServerError::InvalidUsernameEncoding => "invalid-username-encoding",
            ScramServerError::NoResources => "no-resources",
            ScramServerError::OtherError => "other-error",
        }
    }

    /// The whole server-final message carrying this error: `e=<value>`.
    pub fn server_final(&self) -> String {
        format!("e={}", self.as_str())
    }
}

impl fmt::Display for ScramServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Hash function of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramHash {
    /// SHA-1 (RFC 5802).
    Sha1,
    /// SHA-256 (RFC 7677).
    Sha256,
    /// SHA-512.
    Sha512,
}

impl ScramHash {
    /// All hashes, strongest first.
    pub const ALL: [ScramHash; 3] = [ScramHash::Sha512, ScramHash::Sha256, ScramHash::Sha1];

    /// The hash name as used in mechanism names: `"SHA-1"`, `"SHA-256"`, `"SHA-512"`.
    pub fn name(&self) -> &'static str {
        match self {
            ScramHash::Sha1 => "SHA-1",
            ScramHash::Sha256 => "SHA-256",
            ScramHash::Sha512 => "SHA-512",
        }
    }

    /// Parses [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.name() == name)
    }

    /// Output length in bytes (20, 32, 64).
    pub fn output_len(&self) -> usize {
        match self {
            ScramHash::Sha1 => 20,
            ScramHash::Sha256 => 32,
            ScramHash::Sha512 => 64,
        }
    }
}

impl fmt::Display for ScramHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Applies SASLprep (RFC 4013, stored-string rules); rejects failures and empty results.
pub fn saslprep(s: &str) -> Result<String, SaslError> {
    match stringprep::saslprep(s) {
        Ok(p) if !p.is_empty() => Ok(p.into_owned()),
        _ => Err(SaslError::Saslprep),
    }
}

/// `SaltedPassword := Hi(Normalize(password), salt, i)` (RFC 5802 §3), remembered together with
/// the parameters it was computed for.
///
/// Deriving it is the expensive part of a SCRAM login; a client that logs in repeatedly (load
/// generator) can keep it and hand it to [`client::ScramClient::with_salted_password`].
#[derive(Clone, PartialEq, Eq)]
pub struct SaltedPassword {
    hash: ScramHash,
    salt: Vec<u8>,
    iterations: u32,
    bytes: Vec<u8>,
}

impl SaltedPassword {
    /// Computes `Hi(SASLprep(password), salt, iterations)`.
    pub fn derive(
        hash: ScramHash,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, SaslError> {
        let password = saslprep(password)?;
        Self::derive_prepared(hash, &password, salt, iterations)
    }

    /// Like [`derive`](Self::derive) for an already SASLprep'd password.
    pub(crate) fn derive_prepared(
        hash: ScramHash,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, SaslError> {
        if iterations == 0 {
            return Err(SaslError::ZeroIterations);
        }
        let bytes = crypto::hi(hash, password.as_bytes(), salt, iterations);
        Ok(SaltedPassword {
            hash,
            salt: salt.to_vec(),
            iterations,
            bytes,
        })
    }

    /// Rebuilds a value kept from an earlier [`derive`](Self::derive) (a client's cache of salted
    /// passwords). `None` if `bytes` is not one `hash` output long or `iterations` is zero.
    pub fn from_parts(
        hash: ScramHash,
        salt: Vec<u8>,
        iterations: u32,
        bytes: Vec<u8>,
    ) -> Option<Self> {
        (bytes.len() == hash.output_len() && iterations > 0).then_some(SaltedPassword {
            hash,
            salt,
            iterations,
            bytes,
        })
    }

    /// The hash this was derived with.
    pub fn hash(&self) -> ScramHash {
        self.hash
    }

    /// The salt this was derived with.
    pub fn salt(&self) -> &[u8] {
        &self.salt
    }

    /// The iteration count this was derived with.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// The raw `SaltedPassword` bytes (secret: equivalent to the password for this salt).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether this was derived for exactly these parameters.
    pub(crate) fn matches(&self, hash: ScramHash, salt: &[u8], iterations: u32) -> bool {
        self.hash == hash && self.iterations == iterations && self.salt == salt
    }

    /// `ClientKey := HMAC(SaltedPassword, "Client Key")`.
    pub(crate) fn client_key(&self) -> Vec<u8> {
        crypto::hmac(self.hash, &self.bytes, b"Client Key")
    }

    /// `ServerKey := HMAC(SaltedPassword, "Server Key")`.
    pub(crate) fn server_key(&self) -> Vec<u8> {
        crypto::hmac(self.hash, &self.bytes, b"Server Key")
    }
}

impl fmt::Debug for SaltedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaltedPassword")
            .field("hash", &self.hash)
            .field("salt", &syntax::b64_encode(&self.salt))
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// What the server stores per user and hash (RFC 5802 §3): enough to verify SCRAM and PLAIN,
/// not enough to impersonate the user to another server without the ServerKey/StoredKey pair.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    /// Hash the keys were derived with.
    pub hash: ScramHash,
    /// Salt (raw bytes).
    pub salt: Vec<u8>,
    /// PBKDF2 iteration count.
    pub iterations: u32,
    /// `StoredKey := H(ClientKey)`.
    pub stored_key: Vec<u8>,
    /// `ServerKey := HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// Derives the credential from a password (SASLprep'd first), salt and iteration count.
    pub fn derive(
        hash: ScramHash,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, SaslError> {
        Ok(Self::from_salted_password(&SaltedPassword::derive(
            hash, password, salt, iterations,
        )?))
    }

    /// Derives the credential with a fresh random [`SALT_LEN`]-byte salt.
    pub fn generate(hash: ScramHash, password: &str, iterations: u32) -> Result<Self, SaslError> {
        let mut salt = [0u8; SALT_LEN];
        rand::fill(&mut salt[..]);
        Self::derive(hash, password, &salt, iterations)
    }

    /// Computes StoredKey and ServerKey from an already derived [`SaltedPassword`].
    pub fn from_salted_password(salted: &SaltedPassword) -> Self {
        ScramCredential {
            hash: salted.hash,
            salt: salted.salt.clone(),
            iterations: salted.iterations,
            stored_key: crypto::digest(salted.hash, &salted.client_key()),
            server_key: salted.server_key(),
        }
    }

    /// Checks a plaintext password against this credential (constant-time on the keys).
    /// Returns `false` if the password fails SASLprep or the credential is unusable.
    pub fn verify_password(&self, password: &str) -> bool {
        let Ok(password) = saslprep(password) else {
            return false;
        };
        self.verify_prepared(&password)
    }

    pub(crate) fn verify_prepared(&self, password: &str) -> bool {
        if !self.is_well_formed() {
            return false;
        }
        match SaltedPassword::derive_prepared(self.hash, password, &self.salt, self.iterations) {
            Ok(salted) => {
                let candidate = Self::from_salted_password(&salted);
                bool::from(candidate.stored_key.ct_eq(&self.stored_key))
            }
            Err(_) => false,
        }
    }

    /// Iterations ≥ 1 and key lengths equal to the hash length.
    pub(crate) fn is_well_formed(&self) -> bool {
        let n = self.hash.output_len();
        self.iterations >= 1 && self.stored_key.len() == n && self.server_key.len() == n
    }
}

impl fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredential")
            .field("hash", &self.hash)
            .field("salt", &syntax::b64_encode(&self.salt))
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// A SASL mechanism supported by this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// `SCRAM-SHA-1` (RFC 5802).
    ScramSha1,
    /// `SCRAM-SHA-1-PLUS` (RFC 5802, with channel binding).
    ScramSha1Plus,
    /// `SCRAM-SHA-256` (RFC 7677).
    ScramSha256,
    /// `SCRAM-SHA-256-PLUS` (RFC 7677, with channel binding).
    ScramSha256Plus,
    /// `SCRAM-SHA-512`.
    ScramSha512,
    /// `SCRAM-SHA-512-PLUS`.
    ScramSha512Plus,
    /// `PLAIN` (RFC 4616).
    Plain,
    /// `ANONYMOUS` (RFC 4505): no credentials at all. Only for hosts that give every client a
    /// fresh account; never offered beside the others.
    Anonymous,
}

impl Mechanism {
    /// All mechanisms in order of preference (strongest first): `-PLUS` before plain SCRAM,
    /// larger hashes first, then PLAIN, and ANONYMOUS, which authenticates nobody, last.
    pub const ALL: [Mechanism; 8] = [
        Mechanism::ScramSha512Plus,
        Mechanism::ScramSha256Plus,
        Mechanism::ScramSha1Plus,
        Mechanism::ScramSha512,
        Mechanism::ScramSha256,
        Mechanism::ScramSha1,
        Mechanism::Plain,
        Mechanism::Anonymous,
    ];

    /// The IANA mechanism name, e.g. `"SCRAM-SHA-256-PLUS"`.
    pub fn name(&self) -> &'static str {
        match self {
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::ScramSha1Plus => "SCRAM-SHA-1-PLUS",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
            Mechanism::ScramSha512Plus => "SCRAM-SHA-512-PLUS",
            Mechanism::Plain => "PLAIN",
            Mechanism::Anonymous => "ANONYMOUS",
        }
    }

    /// Parses a mechanism name (exact, case-sensitive match).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The SCRAM hash, `None` for PLAIN and ANONYMOUS.
    pub fn hash(&self) -> Option<ScramHash> {
        match self {
            Mechanism::ScramSha1 | Mechanism::ScramSha1Plus => Some(ScramHash::Sha1),
            Mechanism::ScramSha256 | Mechanism::ScramSha256Plus => Some(ScramHash::Sha256),
            Mechanism::ScramSha512 | Mechanism::ScramSha512Plus => Some(ScramHash::Sha512),
            Mechanism::Plain | Mechanism::Anonymous => None,
        }
    }

    /// Whether this is a `-PLUS` (channel-binding) variant.
    pub fn is_plus(&self) -> bool {
        matches!(
            self,
            Mechanism::ScramSha1Plus | Mechanism::ScramSha256Plus | Mechanism::ScramSha512Plus
        )
    }

    /// The SCRAM mechanism for `hash`, with or without `-PLUS`.
    pub fn scram(hash: ScramHash, plus: bool) -> Self {
        match (hash, plus) {
            (ScramHash::Sha1, false) => Mechanism::ScramSha1,
            (ScramHash::Sha1, true) => Mechanism::ScramSha1Plus,
            (ScramHash::Sha256, false) => Mechanism::ScramSha256,
            (ScramHash::Sha256, true) => Mechanism::ScramSha256Plus,
            (ScramHash::Sha512, false) => Mechanism::ScramSha512,
            (ScramHash::Sha512, true) => Mechanism::ScramSha512Plus,
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A channel-binding type usable with the `-PLUS` mechanisms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelBindingType {
    /// `tls-exporter` (RFC 9266): TLS exporter, label "EXPORTER-Channel-Binding", no context,
    /// 32 bytes. The one to use with TLS 1.3.
    TlsExporter,
    /// `tls-server-end-point` (RFC 5929 §4): hash of the server certificate.
    TlsServerEndPoint,
}

impl ChannelBindingType {
    /// Both types, preferred first.
    pub const ALL: [ChannelBindingType; 2] = [
        ChannelBindingType::TlsExporter,
        ChannelBindingType::TlsServerEndPoint,
    ];

    /// The registered name: `"tls-exporter"` or `"tls-server-end-point"`.
    pub fn name(&self) -> &'static str {
        match self {
            ChannelBindingType::TlsExporter => "tls-exporter",
            ChannelBindingType::TlsServerEndPoint => "tls-server-end-point",
        }
    }

    /// Parses [`name`](Self::name) (exact match).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl fmt::Display for ChannelBindingType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The channel-binding data this connection can offer (computed by the TLS layer);
/// `None` for a type that is unavailable (e.g. no TLS, or `tls-exporter` on TLS 1.2 without
/// extended master secret).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ChannelBindings {
    /// `tls-exporter` data (RFC 9266).
    pub tls_exporter: Option<Vec<u8>>,
    /// `tls-server-end-point` data (RFC 5929 §4.1).
    pub tls_server_end_point: Option<Vec<u8>>,
}

impl ChannelBindings {
    /// No channel binding available (plaintext connection).
    pub fn none() -> Self {
        Self::default()
    }

    /// The data for `ty`, if available.
    pub fn get(&self, ty: ChannelBindingType) -> Option<&[u8]> {
        match ty {
            ChannelBindingType::TlsExporter => self.tls_exporter.as_deref(),
            ChannelBindingType::TlsServerEndPoint => self.tls_server_end_point.as_deref(),
        }
    }

    /// The available types, preferred first (e.g. for XEP-0440 advertisement).
    pub fn available(&self) -> Vec<ChannelBindingType> {
        ChannelBindingType::ALL
            .into_iter()
            .filter(|t| self.get(*t).is_some())
            .collect()
    }

    /// Whether no type is available (then `-PLUS` must not be advertised).
    pub fn is_empty(&self) -> bool {
        self.tls_exporter.is_none() && self.tls_server_end_point.is_none()
    }
}

impl fmt::Debug for ChannelBindings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelBindings")
            .field("tls_exporter", &self.tls_exporter.is_some())
            .field("tls_server_end_point", &self.tls_server_end_point.is_some())
            .finish()
    }
}

/// SASL failure conditions (RFC 6120 §6.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaslFailure {
    /// `<aborted/>` (§6.5.1).
    Aborted,
    /// `<account-disabled/>` (§6.5.2).
    AccountDisabled,
    /// `<credentials-expired/>` (§6.5.3).
    CredentialsExpired,
    /// `<encryption-required/>` (§6.5.4).
    EncryptionRequired,
    /// `<incorrect-encoding/>` (§6.5.5).
    IncorrectEncoding,
    /// `<invalid-authzid/>` (§6.5.6).
    InvalidAuthzid,
    /// `<invalid-mechanism/>` (§6.5.7).
    InvalidMechanism,
    /// `<malformed-request/>` (§6.5.8).
    MalformedRequest,
    /// `<mechanism-too-weak/>` (§6.5.9).
    MechanismTooWeak,
    /// `<not-authorized/>` (§6.5.10).
    NotAuthorized,
    /// `<temporary-auth-failure/>` (§6.5.11).
    TemporaryAuthFailure,
}

impl SaslFailure {
    /// The element name, e.g. `"not-authorized"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SaslFailure::Aborted => "aborted",
            SaslFailure::AccountDisabled => "account-disabled",
            SaslFailure::CredentialsExpired => "credentials-expired",
            SaslFailure::EncryptionRequired => "encryption-required",
            SaslFailure::IncorrectEncoding => "incorrect-encoding",
            SaslFailure::InvalidAuthzid => "invalid-authzid",
            SaslFailure::InvalidMechanism => "invalid-mechanism",
            SaslFailure::MalformedRequest => "malformed-request",
            SaslFailure::MechanismTooWeak => "mechanism-too-weak",
            SaslFailure::NotAuthorized => "not-authorized",
            SaslFailure::TemporaryAuthFailure => "temporary-auth-failure",
        }
    }
}

impl fmt::Display for SaslFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salted_password_round_trips_through_its_parts() {
        let salted = SaltedPassword::derive(ScramHash::Sha1, "pencil", b"salt", 64).unwrap();
        let again = SaltedPassword::from_parts(
            salted.hash(),
            salted.salt().to_vec(),
            salted.iterations(),
            salted.as_bytes().to_vec(),
        );
        assert_eq!(again.as_ref(), Some(&salted));
        // A SHA-1 output is 20 bytes; anything else, or zero iterations, is refused.
        assert_eq!(
            SaltedPassword::from_parts(ScramHash::Sha1, vec![], 64, vec![0; 32]),
            None
        );
        assert_eq!(
            SaltedPassword::from_parts(ScramHash::Sha1, vec![], 0, vec![0; 20]),
            None
        );
    }

    #[test]
    fn names_round_trip() {
        for m in Mechanism::ALL {
            assert_eq!(Mechanism::from_name(m.name()), Some(m));
            if let Some(h) = m.hash() {
                assert_eq!(Mechanism::scram(h, m.is_plus()), m);
            }
        }
        assert_eq!(Mechanism::from_name("scram-sha-1"), None);
        assert_eq!(Mechanism::ScramSha256Plus.name(), "SCRAM-SHA-256-PLUS");
        assert_eq!(Mechanism::Plain.hash(), None);
        assert!(!Mechanism::ScramSha512.is_plus());
        assert_eq!(ScramHash::Sha1.name(), "SHA-1");
        assert_eq!(ScramHash::from_name("SHA-512"), Some(ScramHash::Sha512));
        assert_eq!(
            ChannelBindingType::from_name("tls-server-end-point"),
            Some(ChannelBindingType::TlsServerEndPoint)
        );
        assert_eq!(ChannelBindingType::TlsExporter.name(), "tls-exporter");
        assert_eq!(SaslFailure::NotAuthorized.as_str(), "not-authorized");
        assert_eq!(
            SaslFailure::TemporaryAuthFailure.as_str(),
            "temporary-auth-failure"
        );
    }

    #[test]
    fn credential_rfc5802_keys() {
        // RFC 5802 §5: salt QSXCR+Q6sek8bf92, i=4096, password "pencil".
        let salt = syntax::b64_decode("QSXCR+Q6sek8bf92").unwrap();
        let c = ScramCredential::derive(ScramHash::Sha1, "pencil", &salt, 4096).unwrap();
        assert_eq!(c.stored_key.len(), 20);
        assert_eq!(c.server_key.len(), 20);
        assert!(c.verify_password("pencil"));
        assert!(!c.verify_password("pencil2"));
        assert_eq!(
            ScramCredential::derive(ScramHash::Sha1, "pencil", &salt, 0),
            Err(SaslError::ZeroIterations)
        );
        assert_eq!(
            ScramCredential::derive(ScramHash::Sha1, "a\u{7}b", &salt, 1),
            Err(SaslError::Saslprep)
        );
    }

    #[test]
    fn saslprep_applied_to_password() {
        // RFC 4013 §3: U+00AD (soft hyphen) maps to nothing, U+00A0 to SPACE.
        let a = ScramCredential::derive(ScramHash::Sha256, "I\u{AD}X", b"salt", 2).unwrap();
        let b = ScramCredential::derive(ScramHash::Sha256, "IX", b"salt", 2).unwrap();
        assert_eq!(a, b);
        assert!(a.verify_password("I\u{AD}X"));
    }

    #[test]
    fn generate_uses_random_salt() {
        let a = ScramCredential::generate(ScramHash::Sha512, "pw", 2).unwrap();
        let b = ScramCredential::generate(ScramHash::Sha512, "pw", 2).unwrap();
        assert_eq!(a.salt.len(), SALT_LEN);
        assert_ne!(a.salt, b.salt);
        assert_eq!(a.stored_key.len(), 64);
        assert!(a.verify_password("pw"));
    }

    #[test]
    fn debug_redacts_keys() {
        let c = ScramCredential::derive(ScramHash::Sha1, "pencil", b"s", 1).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("stored_key"));
        assert!(!dbg.contains("server_key"));
    }
}
