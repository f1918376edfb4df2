//! The server side: [`ServerSession`] and its [`Step`]s.

use std::fmt;
use std::sync::OnceLock;

use subtle::ConstantTimeEq as _;

use crate::syntax::{
    attr, authzid_matches, b64_decode, b64_encode, decode_saslname, is_valid_cb_name,
    is_valid_extension, is_valid_nonce,
};
use crate::{
    ChannelBindingType, ChannelBindings, DEFAULT_ITERATIONS, Mechanism, SALT_LEN, SaslFailure,
    ScramCredential, ScramHash, ScramServerError, crypto, saslprep,
};

/// Number of random bytes in a server nonce (base64-encoded to 24 characters).
const SERVER_NONCE_BYTES: usize = 18;

/// What the caller has to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Look up the credentials of `username` (already SASLprep'd; the caller still has to
    /// check that it is a valid localpart and treat it as unknown otherwise) for `hash` and call
    /// [`ServerSession::provide_credentials`].
    ///
    /// For PLAIN `hash` is only a preference ([`ScramHash::Sha256`]): a credential of any hash
    /// is accepted.
    NeedCredentials {
        /// SASLprep'd authentication identity.
        username: String,
        /// Hash whose credential is needed.
        hash: ScramHash,
    },
    /// Send a `<challenge/>` with this payload (raw bytes; the caller base64-encodes).
    Challenge(Vec<u8>),
    /// Authentication succeeded. For SCRAM `additional_data` is the server-final message
    /// (`v=...`), to be sent in `<success/>` (RFC 6120 §6.3.10).
    Success {
        /// The authenticated (SASLprep'd) username.
        username: String,
        /// Additional data for `<success/>`.
        additional_data: Option<Vec<u8>>,
    },
    /// Authentication failed; send `<failure/>` with this condition. The session is finished.
    Failure(SaslFailure),
}

/// A server-side SASL exchange for one `<auth/>` attempt. See the crate docs for the procedure.
pub struct ServerSession {
    mechanism: Mechanism,
    domain: String,
    bindings: ChannelBindings,
    plus_advertised: bool,
    fixed_server_nonce: Option<String>,
    unknown_user_iterations: u32,
    /// XEP-0474 SSDP: the string S of the advertised mechanisms and channel-binding types, hashed
    /// into the server-first message's `h` attribute.
    downgrade_protection: Option<String>,
    state: State,
    /// The RFC 5802 §7 server-error-value of the failure, if the client should hear one.
    server_error: Option<ScramServerError>,
    /// The failure was a wrong proof or password, or an unknown user.
    credentials_rejected: bool,
    /// ANONYMOUS: the trace information the client sent (RFC 4505 §2), if any.
    trace: Option<String>,
}

/// Why a client-first message was refused: the condition and, if any, the server error.
struct Rejection(SaslFailure, Option<ScramServerError>);

impl From<SaslFailure> for Rejection {
    fn from(f: SaslFailure) -> Self {
        Rejection(f, None)
    }
}

enum State {
    ScramAwaitingFirst,
    ScramAwaitingCredentials(ScramFirst),
    ScramAwaitingFinal(ScramPending),
    PlainAwaitingFirst,
    PlainAwaitingCredentials { username: String, password: String },
    AnonymousAwaitingMessage,
    Done,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::ScramAwaitingFirst => "ScramAwaitingFirst",
            State::ScramAwaitingCredentials(_) => "ScramAwaitingCredentials",
            State::ScramAwaitingFinal(_) => "ScramAwaitingFinal",
            State::PlainAwaitingFirst => "PlainAwaitingFirst",
            State::PlainAwaitingCredentials { .. } => "PlainAwaitingCredentials",
            State::AnonymousAwaitingMessage => "AnonymousAwaitingMessage",
            State::Done => "Done",
        }
    }
}

/// What we keep from a valid client-first message.
struct ScramFirst {
    hash: ScramHash,
    username: String,
    /// `c=` must decode to exactly this: gs2-header as sent + cb-data (RFC 5802 §7).
    expected_cbind_input: Vec<u8>,
    client_first_bare: String,
    client_nonce: String,
}

/// State between server-first and client-final.
struct ScramPending {
    hash: ScramHash,
    username: String,
    expected_cbind_input: Vec<u8>,
    /// `client-first-message-bare + "," + server-first-message + ","`.
    auth_message_prefix: String,
    nonce: String,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
    /// False for the unknown-user path: the exchange always fails at the end.
    real: bool,
}

impl fmt::Debug for ServerSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSession")
            .field("mechanism", &self.mechanism)
            .field("domain", &self.domain)
            .field("plus_advertised", &self.plus_advertised)
            .field("state", &self.state.name())
            .field("server_error", &self.server_error)
            .field("credentials_rejected", &self.credentials_rejected)
            .finish_non_exhaustive()
    }
}

/// Per-process secret for the unknown-user salts.
fn process_secret() -> &'static [u8; 32] {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    SECRET.get_or_init(|| {
        let mut s = [0u8; 32];
        rand::fill(&mut s[..]);
        s
    })
}

/// A salt for a user that does not exist: deterministic per (process, hash, username) so that
/// repeated attempts see the same salt, as they would for a real account.
fn unknown_user_salt(hash: ScramHash, username: &str) -> Vec<u8> {
    let mut input = Vec::with_capacity(32 + username.len());
    input.extend_from_slice(b"starling-sasl unknown-user salt\0");
    input.extend_from_slice(hash.name().as_bytes());
    input.push(0);
    input.extend_from_slice(username.as_bytes());
    let mut salt = crypto::hmac(ScramHash::Sha256, process_secret(), &input);
    salt.truncate(SALT_LEN);
    salt
}

/// The string S of XEP-0474 §5.1 (see [`ServerSession::set_downgrade_protection`]).
pub(crate) fn ssdp_string(mechanisms: &[&str], channel_bindings: Option<&[&str]>) -> String {
    // "i;octet" collation (RFC 4790 §9.3): byte order, which `str`'s `Ord` is.
    let mut mechs = mechanisms.to_vec();
    mechs.sort_unstable();
    let mut s = mechs.join("\u{1e}");
    if let Some(cb) = channel_bindings {
        let mut cb = cb.to_vec();
        cb.sort_unstable();
        s.push('\u{1f}');
        s.push_str(&cb.join("\u{1e}"));
    }
    s
}

fn random_nonce() -> String {
    let mut bytes = [0u8; SERVER_NONCE_BYTES];
    rand::fill(&mut bytes[..]);
    b64_encode(&bytes)
}

impl ServerSession {
    /// Starts an exchange for `mechanism`.
    ///
    /// - `domain`: the stream's domain; an authzid is accepted only if it is empty/absent or
    ///   equals `username@domain` (anything else → [`SaslFailure::InvalidAuthzid`]).
    /// - `bindings`: channel-binding data this connection can offer.
    /// - `plus_advertised`: whether `-PLUS` mechanisms were offered to the client (a GS2 `y`
    ///   flag then signals a downgrade attack, RFC 5802 §6).
    /// - `initial_response`: the payload of `<auth/>`; `None` (or empty, which no mechanism
    ///   here accepts as a first message) makes the server answer with an empty challenge.
    pub fn start(
        mechanism: Mechanism,
        domain: &str,
        bindings: ChannelBindings,
        plus_advertised: bool,
        initial_response: Option<&[u8]>,
    ) -> (Self, Step) {
        Self::start_inner(
            mechanism,
            domain,
            bindings,
            plus_advertised,
            initial_response,
            None,
        )
    }

    /// Like [`start`](Self::start) but with a fixed server nonce part instead of a random one —
    /// for test vectors and reproducible transcripts only; a fixed nonce in production breaks
    /// SCRAM's replay protection. `server_nonce` must be non-empty printable ASCII without
    /// `,` (RFC 5802 §7); otherwise a random nonce is used.
    pub fn start_with_server_nonce(
        mechanism: Mechanism,
        domain: &str,
        bindings: ChannelBindings,
        plus_advertised: bool,
        initial_response: Option<&[u8]>,
        server_nonce: &str,
    ) -> (Self, Step) {
        let fixed = is_valid_nonce(server_nonce).then(|| server_nonce.to_owned());
        Self::start_inner(
            mechanism,
            domain,
            bindings,
            plus_advertised,
            initial_response,
            fixed,
        )
    }

    fn start_inner(
        mechanism: Mechanism,
        domain: &str,
        bindings: ChannelBindings,
        plus_advertised: bool,
        initial_response: Option<&[u8]>,
        fixed_server_nonce: Option<String>,
    ) -> (Self, Step) {
        let mut session = ServerSession {
            mechanism,
            domain: domain.to_owned(),
            bindings,
            plus_advertised,
            fixed_server_nonce,
            downgrade_protection: None,
            unknown_user_iterations: DEFAULT_ITERATIONS,
            state: match mechanism {
                Mechanism::Plain => State::PlainAwaitingFirst,
                Mechanism::Anonymous => State::AnonymousAwaitingMessage,
                _ => State::ScramAwaitingFirst,
            },
            server_error: None,
            credentials_rejected: false,
            trace: None,
        };
        let step = match initial_response {
            Some(data) if !data.is_empty() => session.step(data),
            // RFC 4505 §3: the message may be empty (no trace information); it is the whole
            // exchange, so an empty initial response completes it.
            Some(data) if mechanism == Mechanism::Anonymous => session.step(data),
            // RFC 6120 §6.4.2: no initial response → empty challenge, client sends it then.
            _ => Step::Challenge(Vec::new()),
        };
        (session, step)
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Iteration count announced for unknown users (default [`DEFAULT_ITERATIONS`]). Set it to
    /// what real accounts use, or the count itself tells users apart. Ignored if 0.
    pub fn set_unknown_user_iterations(&mut self, iterations: u32) {
        if iterations > 0 {
            self.unknown_user_iterations = iterations;
        }
    }

    /// XEP-0474 (SASL SCRAM Downgrade Protection, version 0.5.0) §5.1: the server-first message
    /// carries `h=`, the base64 of the SCRAM hash of the mechanisms advertised on the SASL
    /// profile in use (sorted by octets, joined by U+001E) and, if XEP-0440 advertised
    /// channel-binding types (`Some`, even empty), U+001F and those types (sorted, joined by
    /// U+001E). A client compares it with what it saw: a man in the middle who removed a
    /// mechanism or a binding type is caught, since the hash is part of the AuthMessage the
    /// client's proof signs. Ignored for PLAIN. Call before answering
    /// [`Step::NeedCredentials`], which makes the server-first message.
    pub fn set_downgrade_protection(
        &mut self,
        mechanisms: &[&str],
        channel_bindings: Option<&[&str]>,
    ) {
        self.downgrade_protection = Some(ssdp_string(mechanisms, channel_bindings));
    }

    /// ANONYMOUS: the trace information the client sent (RFC 4505 §2: an e-mail address or an
    /// opaque string, at most [`MAX_TRACE_CHARS`] characters), once the exchange succeeded.
    /// It has no meaning and proves nothing: for logs only, never to name an account.
    pub fn anonymous_trace(&self) -> Option<&str> {
        self.trace.as_deref()
    }

    /// Ends the exchange because the client sent `<abort/>`.
    pub fn abort(&mut self) -> Step {
        self.fail(SaslFailure::Aborted)
    }

    /// Whether the exchange is finished (success or failure was returned).
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The RFC 5802 §7 `server-error-value` that goes with the [`Step::Failure`] this exchange
    /// ended with, if the client should be told one: today only
    /// [`ScramServerError::UnsupportedChannelBindingType`] (a `p=` type this connection does not
    /// offer). `None` while the exchange runs and for every other failure.
    pub fn server_error(&self) -> Option<ScramServerError> {
        self.server_error
    }

    /// Whether the exchange failed on the credentials themselves: a wrong SCRAM proof, a wrong
    /// PLAIN password, or a user that does not exist (which looks the same to the client). These
    /// are the failures that are password guesses; malformed input, a wrong nonce or channel
    /// binding, a downgrade, an authzid, an unsupported channel-binding type and an abort are not.
    pub fn credentials_rejected(&self) -> bool {
        self.credentials_rejected
    }

    fn fail(&mut self, failure: SaslFailure) -> Step {
        self.state = State::Done;
        Step::Failure(failure)
    }

    fn reject(&mut self, Rejection(failure, server_error): Rejection) -> Step {
        self.server_error = server_error;
        self.fail(failure)
    }

    /// Fails because the proof or password was wrong, or the user unknown.
    fn fail_credentials(&mut self) -> Step {
        self.credentials_rejected = true;
        self.fail(SaslFailure::NotAuthorized)
    }

    /// Feeds the client's `<response/>` payload (raw bytes).
    pub fn step(&mut self, response: &[u8]) -> Step {
        match std::mem::replace(&mut self.state, State::Done) {
            State::ScramAwaitingFirst => self.scram_client_first(response),
            State::ScramAwaitingFinal(pending) => self.scram_client_final(pending, response),
            State::PlainAwaitingFirst => self.plain_message(response),
            State::AnonymousAwaitingMessage => self.anonymous_message(response),
            // The caller must answer NeedCredentials before reading more from the client.
            State::ScramAwaitingCredentials(_) | State::PlainAwaitingCredentials { .. } => {
                self.fail(SaslFailure::TemporaryAuthFailure)
            }
            State::Done => self.fail(SaslFailure::MalformedRequest),
        }
    }

    /// Answers [`Step::NeedCredentials`]; `None` means there is no such user (or the username is
    /// not acceptable), which is handled indistinguishably from a wrong password.
    ///
    /// A credential whose hash differs from the requested one (SCRAM) or that is malformed
    /// (iterations 0, wrong key lengths) yields [`SaslFailure::TemporaryAuthFailure`].
    pub fn provide_credentials(&mut self, cred: Option<ScramCredential>) -> Step {
        match std::mem::replace(&mut self.state, State::Done) {
            State::ScramAwaitingCredentials(first) => self.scram_server_first(first, cred),
            State::PlainAwaitingCredentials { username, password } => {
                self.plain_verify(username, &password, cred)
            }
            _ => self.fail(SaslFailure::TemporaryAuthFailure),
        }
    }

    // ---- SCRAM ---------------------------------------------------------------------------

    fn scram_client_first(&mut self, response: &[u8]) -> Step {
        let Some(hash) = self.mechanism.hash() else {
            return self.fail(SaslFailure::TemporaryAuthFailure);
        };
        match self.parse_client_first(hash, response) {
            Ok(first) => {
                let step = Step::NeedCredentials {
                    username: first.username.clone(),
                    hash,
                };
                self.state = State::ScramAwaitingCredentials(first);
                step
            }
            Err(rejection) => self.reject(rejection),
        }
    }

    /// Parses and checks `client-first-message` (RFC 5802 §7).
    fn parse_client_first(&self, hash: ScramHash, msg: &[u8]) -> Result<ScramFirst, Rejection> {
        use SaslFailure::{InvalidAuthzid, MalformedRequest, NotAuthorized};

        let msg = std::str::from_utf8(msg).map_err(|_| MalformedRequest)?;
        let (flag, rest) = msg.split_once(',').ok_or(MalformedRequest)?;
        let (authz_field, bare) = rest.split_once(',').ok_or(MalformedRequest)?;
        // gs2-header = gs2-cbind-flag "," [ authzid ] "," — kept verbatim for c= (RFC 5802 §7).
        let gs2_header = &msg[..flag.len() + authz_field.len() + 2];

        // Syntax of the whole message first, so errors don't depend on policy.
        let cb_type_name = match flag {
            "n" | "y" => None,
            _ => match attr(flag, 'p') {
                Some(name) if is_valid_cb_name(name) => Some(name),
                _ => return Err(MalformedRequest.into()),
            },
        };
        let authzid = if authz_field.is_empty() {
            None
        } else {
            let value = attr(authz_field, 'a').ok_or(MalformedRequest)?;
            Some(decode_saslname(value).ok_or(MalformedRequest)?)
        };

        let mut fields = bare.split(',');
        let user_field = fields.next().ok_or(MalformedRequest)?;
        // RFC 5802 §5.1: "m" is reserved for a mandatory extension we don't support.
        if user_field.starts_with("m=") {
            return Err(MalformedRequest.into());
        }
        let raw_username = attr(user_field, 'n')
            .and_then(decode_saslname)
            .ok_or(MalformedRequest)?;
        let client_nonce = fields
            .next()
            .and_then(|f| attr(f, 'r'))
            .filter(|n| is_valid_nonce(n))
            .ok_or(MalformedRequest)?;
        if !fields.all(is_valid_extension) {
            return Err(MalformedRequest.into());
        }

        // Channel-binding policy (RFC 5802 §6).
        let cb_data: &[u8] = match cb_type_name {
            None if self.mechanism.is_plus() => return Err(MalformedRequest.into()),
            // "y": client supports binding but thinks we don't. If we advertised -PLUS, someone
            // removed it: downgrade attack.
            None if flag == "y" && self.plus_advertised => return Err(NotAuthorized.into()),
            None => &[],
            Some(_) if !self.mechanism.is_plus() => return Err(MalformedRequest.into()),
            // RFC 5802 §7: a type we do not offer on this connection (`tls-unique`, which TLS 1.3
            // lacks, or a known one whose data is unavailable) is `e=unsupported-channel-binding-
            // type`: a fact about the binding, not the password, so the client can fall back.
            Some(name) => ChannelBindingType::from_name(name)
                .and_then(|t| self.bindings.get(t))
                .ok_or(Rejection(
                    MalformedRequest,
                    Some(ScramServerError::UnsupportedChannelBindingType),
                ))?,
        };

        // RFC 5802 §5.1: SASLprep the username; failure → no account can match.
        let username = saslprep(&raw_username).map_err(|_| NotAuthorized)?;

        if let Some(authzid) = &authzid
            && !authzid_matches(authzid, &username, &self.domain)
        {
            return Err(InvalidAuthzid.into());
        }

        let mut expected_cbind_input = gs2_header.as_bytes().to_vec();
        expected_cbind_input.extend_from_slice(cb_data);
        Ok(ScramFirst {
            hash,
            username,
            expected_cbind_input,
            client_first_bare: bare.to_owned(),
            client_nonce: client_nonce.to_owned(),
        })
    }

    fn scram_server_first(&mut self, first: ScramFirst, cred: Option<ScramCredential>) -> Step {
        let hash = first.hash;
        let (salt, iterations, stored_key, server_key, real) = match cred {
            Some(c) if c.hash == hash && c.is_well_formed() => {
                (c.salt, c.iterations, c.stored_key, c.server_key, true)
            }
            Some(_) => return self.fail(SaslFailure::TemporaryAuthFailure),
            None => {
                let n = hash.output_len();
                (
                    unknown_user_salt(hash, &first.username),
                    self.unknown_user_iterations,
                    vec![0; n],
                    vec![0; n],
                    false,
                )
            }
        };
        let server_nonce = self.fixed_server_nonce.clone().unwrap_or_else(random_nonce);
        let nonce = format!("{}{}", first.client_nonce, server_nonce);
        let mut server_first = format!("r={nonce},s={},i={iterations}", b64_encode(&salt));
        if let Some(s) = &self.downgrade_protection {
            server_first.push_str(",h=");
            server_first.push_str(&b64_encode(&crypto::digest(hash, s.as_bytes())));
        }
        let auth_message_prefix = format!("{},{server_first},", first.client_first_bare);
        self.state = State::ScramAwaitingFinal(ScramPending {
            hash,
            username: first.username,
            expected_cbind_input: first.expected_cbind_input,
            auth_message_prefix,
            nonce,
            stored_key,
            server_key,
            real,
        });
        Step::Challenge(server_first.into_bytes())
    }

    fn scram_client_final(&mut self, p: ScramPending, response: &[u8]) -> Step {
        use SaslFailure::{MalformedRequest, NotAuthorized};

        let parsed = (|| {
            let msg = std::str::from_utf8(response).ok()?;
            // proof is the last attribute and its value has no ',' (RFC 5802 §7).
            let idx = msg.rfind(",p=")?;
            let without_proof = &msg[..idx];
            let proof = b64_decode(&msg[idx + 3..])?;
            let mut fields = without_proof.split(',');
            let cbind = b64_decode(attr(fields.next()?, 'c')?)?;
            let nonce = attr(fields.next()?, 'r')?;
            if !fields.all(is_valid_extension) {
                return None;
            }
            Some((without_proof, cbind, nonce, proof))
        })();
        let Some((without_proof, cbind, nonce, proof)) = parsed else {
            return self.fail(MalformedRequest);
        };

        // RFC 5802 §6: c= must carry our view of gs2-header + channel binding data.
        if !bool::from(cbind.ct_eq(&p.expected_cbind_input)) {
            return self.fail(NotAuthorized);
        }
        if nonce != p.nonce {
            return self.fail(NotAuthorized);
        }
        if proof.len() != p.hash.output_len() {
            return self.fail(NotAuthorized);
        }

        // RFC 5802 §3: ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage);
        // accept iff H(ClientKey) == StoredKey.
        let auth_message = format!("{}{without_proof}", p.auth_message_prefix);
        let client_signature = crypto::hmac(p.hash, &p.stored_key, auth_message.as_bytes());
        let client_key = crypto::xor(&proof, &client_signature);
        let computed_stored_key = crypto::digest(p.hash, &client_key);
        let ok = computed_stored_key.ct_eq(&p.stored_key) & subtle::Choice::from(u8::from(p.real));
        if !bool::from(ok) {
            return self.fail_credentials();
        }
        let server_signature = crypto::hmac(p.hash, &p.server_key, auth_message.as_bytes());
        Step::Success {
            username: p.username,
            additional_data: Some(format!("v={}", b64_encode(&server_signature)).into_bytes()),
        }
    }

    // ---- PLAIN ---------------------------------------------------------------------------

    /// `message = [authzid] UTF8NUL authcid UTF8NUL passwd` (RFC 4616 §2).
    fn plain_message(&mut self, response: &[u8]) -> Step {
        use SaslFailure::{InvalidAuthzid, MalformedRequest, NotAuthorized};

        let mut parts = response.split(|b| *b == 0);
        let (Some(authzid), Some(authcid), Some(passwd), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return self.fail(MalformedRequest);
        };
        let (Ok(authzid), Ok(authcid), Ok(passwd)) = (
            std::str::from_utf8(authzid),
            std::str::from_utf8(authcid),
            std::str::from_utf8(passwd),
        ) else {
            return self.fail(MalformedRequest);
        };
        if authcid.is_empty() || passwd.is_empty() {
            return self.fail(MalformedRequest);
        }
        let Ok(username) = saslprep(authcid) else {
            return self.fail(NotAuthorized);
        };
        if !authzid.is_empty() && !authzid_matches(authzid, &username, &self.domain) {
            return self.fail(InvalidAuthzid);
        }
        let Ok(password) = saslprep(passwd) else {
            return self.fail(NotAuthorized);
        };
        self.state = State::PlainAwaitingCredentials {
            username: username.clone(),
            password,
        };
        Step::NeedCredentials {
            username,
            hash: ScramHash::Sha256,
        }
    }

    fn plain_verify(
        &mut self,
        username: String,
        password: &str,
        cred: Option<ScramCredential>,
    ) -> Step {
        let ok = match cred {
            Some(c) if c.is_well_formed() => c.verify_prepared(password),
            Some(_) => return self.fail(SaslFailure::TemporaryAuthFailure),
            None => {
                // Same PBKDF2 cost as a real account, so timing doesn't reveal existence.
                let hash = ScramHash::Sha256;
                let dummy = ScramCredential {
                    hash,
                    salt: unknown_user_salt(hash, &username),
                    iterations: self.unknown_user_iterations,
                    stored_key: vec![0; hash.output_len()],
                    server_key: vec![0; hash.output_len()],
                };
                let _ = dummy.verify_prepared(password);
                false
            }
        };
        if ok {
            Step::Success {
                username,
                additional_data: None,
            }
        } else {
            self.fail_credentials()
        }
    }
}

/// Longest ANONYMOUS trace accepted, in characters (RFC 4505 §3: `token = 1*255TCHAR`, and an
/// e-mail address is held to the same 255 characters).
pub const MAX_TRACE_CHARS: usize = 255;

impl ServerSession {
    // ---- ANONYMOUS -----------------------------------------------------------------------

    /// RFC 4505 §3: `message = [ email / token ]`, UTF-8, at most [`MAX_TRACE_CHARS`]
    /// characters. Anything else (invalid UTF-8, too long, control characters, which neither
    /// production nor the "trace" stringprep profile allows) is `malformed-request`.
    fn anonymous_message(&mut self, response: &[u8]) -> Step {
        let Ok(trace) = std::str::from_utf8(response) else {
            return self.fail(SaslFailure::MalformedRequest);
        };
        if trace.chars().count() > MAX_TRACE_CHARS || trace.chars().any(char::is_control) {
            return self.fail(SaslFailure::MalformedRequest);
        }
        self.trace = (!trace.is_empty()).then(|| trace.to_owned());
        self.state = State::Done;
        Step::Success {
            username: String::new(),
            additional_data: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XEP-0474 §6 (Full Example): S for SCRAM-SHA-1 and SCRAM-SHA-1-PLUS with tls-exporter and
    /// tls-server-end-point, whose SHA-1 is `G6k/rBLDqgOhRRaCuuatSDFkJ08=`; the lists are
    /// sorted whatever order they come in.
    #[test]
    fn ssdp_string_matches_the_xep_example() {
        let s = ssdp_string(
            &["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1"],
            Some(&["tls-server-end-point", "tls-exporter"]),
        );
        assert_eq!(
            s,
            "SCRAM-SHA-1\u{1e}SCRAM-SHA-1-PLUS\u{1f}tls-exporter\u{1e}tls-server-end-point"
        );
        assert_eq!(
            b64_encode(&crypto::digest(ScramHash::Sha1, s.as_bytes())),
            "G6k/rBLDqgOhRRaCuuatSDFkJ08="
        );
        // Without XEP-0440: no U+001F.
        assert_eq!(
            ssdp_string(&["PLAIN", "SCRAM-SHA-1"], None),
            "PLAIN\u{1e}SCRAM-SHA-1"
        );
    }
}
