//! Client side, for tests and the load generator: [`ScramClient`] and [`plain`].
//!
//! ```
//! use starling_sasl::{ChannelBindings, Mechanism, ScramCredential, ScramHash, ServerSession, Step};
//! use starling_sasl::client::ScramClient;
//!
//! let cred = ScramCredential::generate(ScramHash::Sha256, "pencil", 4096).unwrap();
//! let mut client = ScramClient::new(ScramHash::Sha256, "user", "pencil", None, None).unwrap();
//! let (mut server, step) = ServerSession::start(
//!     Mechanism::ScramSha256, "example.com", ChannelBindings::none(), false,
//!     Some(&client.client_first()));
//! assert!(matches!(step, Step::NeedCredentials { .. }));
//! let Step::Challenge(server_first) = server.provide_credentials(Some(cred)) else { panic!() };
//! let client_final = client.handle_server_first(&server_first).unwrap();
//! let Step::Success { additional_data: Some(server_final), .. } = server.step(&client_final)
//! else { panic!() };
//! client.verify_server_final(&server_final).unwrap();
//! ```

use std::fmt;

use subtle::ConstantTimeEq as _;

use crate::syntax::{
    attr, b64_decode, b64_encode, encode_saslname, is_valid_extension, is_valid_nonce,
};
use crate::{
    ChannelBindingType, Mechanism, SaltedPassword, SaslError, ScramHash, crypto, saslprep,
};

/// Default cap on the iteration count a server may demand (PBKDF2 cost is the client's).
pub const DEFAULT_MAX_ITERATIONS: u32 = 1_000_000;

/// Number of random bytes in a client nonce (base64-encoded to 24 characters).
const CLIENT_NONCE_BYTES: usize = 18;

/// The PLAIN message `[authzid] NUL authcid NUL passwd` (RFC 4616 §2). No SASLprep is applied
/// here (the server prepares both strings).
pub fn plain(authzid: Option<&str>, username: &str, password: &str) -> Vec<u8> {
    let authzid = authzid.unwrap_or("");
    let mut out = Vec::with_capacity(authzid.len() + username.len() + password.len() + 2);
    out.extend_from_slice(authzid.as_bytes());
    out.push(0);
    out.extend_from_slice(username.as_bytes());
    out.push(0);
    out.extend_from_slice(password.as_bytes());
    out
}

enum ClientState {
    Initial,
    AwaitingServerFinal { server_signature: Vec<u8> },
    Done,
}

/// A SCRAM client exchange: `client_first` → `handle_server_first` → `verify_server_final`.
pub struct ScramClient {
    hash: ScramHash,
    /// SASLprep'd and `saslname`-encoded.
    username: String,
    /// SASLprep'd.
    password: String,
    binding: Option<(ChannelBindingType, Vec<u8>)>,
    claim_binding_support: bool,
    authzid: Option<String>,
    client_nonce: String,
    max_iterations: u32,
    salted: Option<SaltedPassword>,
    state: ClientState,
}

impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramClient")
            .field("mechanism", &self.mechanism())
            .field("username", &self.username)
            .field("authzid", &self.authzid)
            .finish_non_exhaustive()
    }
}

impl ScramClient {
    /// Creates a client for `SCRAM-<hash>` (or `-PLUS` if `binding` is given, sending
    /// `p=<type>` and the binding data in `c=`). `username` and `password` are SASLprep'd;
    /// `authzid` is sent as `a=` verbatim (encoded).
    pub fn new(
        hash: ScramHash,
        username: &str,
        password: &str,
        binding: Option<(ChannelBindingType, Vec<u8>)>,
        authzid: Option<&str>,
    ) -> Result<Self, SaslError> {
        let username = encode_saslname(&saslprep(username)?);
        let password = saslprep(password)?;
        let mut nonce = [0u8; CLIENT_NONCE_BYTES];
        rand::fill(&mut nonce[..]);
        Ok(ScramClient {
            hash,
            username,
            password,
            binding,
            claim_binding_support: false,
            authzid: authzid.map(str::to_owned),
            client_nonce: b64_encode(&nonce),
            max_iterations: DEFAULT_MAX_ITERATIONS,
            salted: None,
            state: ClientState::Initial,
        })
    }

    /// Replaces the random client nonce (test vectors only). Must be printable ASCII without `,`.
    pub fn with_client_nonce(mut self, nonce: &str) -> Result<Self, SaslError> {
        if !is_valid_nonce(nonce) {
            return Err(SaslError::InvalidNonce);
        }
        self.client_nonce = nonce.to_owned();
        Ok(self)
    }

    /// Supplies a cached [`SaltedPassword`]; it is used instead of PBKDF2 if the server's salt,
    /// iteration count and hash match it (otherwise PBKDF2 runs as usual).
    pub fn with_salted_password(mut self, salted: SaltedPassword) -> Self {
        self.salted = Some(salted);
        self
    }

    /// Caps the iteration count the server may demand (default [`DEFAULT_MAX_ITERATIONS`]).
    pub fn with_max_iterations(mut self, max: u32) -> Self {
        self.max_iterations = max;
        self
    }

    /// Without a binding, send the GS2 flag `y` ("I support channel binding but think you
    /// don't") instead of `n`. Used to exercise the server's downgrade check.
    pub fn with_binding_support_claimed(mut self) -> Self {
        self.claim_binding_support = true;
        self
    }

    /// The mechanism this client speaks.
    pub fn mechanism(&self) -> Mechanism {
        Mechanism::scram(self.hash, self.binding.is_some())
    }

    /// The `SaltedPassword` used (or supplied), for caching; `Some` after
    /// [`handle_server_first`](Self::handle_server_first) succeeded.
    pub fn salted_password(&self) -> Option<&SaltedPassword> {
        self.salted.as_ref()
    }

    /// `gs2-header` (RFC 5802 §7).
    fn gs2_header(&self) -> String {
        let flag = match (&self.binding, self.claim_binding_support) {
            (Some((ty, _)), _) => format!("p={}", ty.name()),
            (None, true) => "y".to_owned(),
            (None, false) => "n".to_owned(),
        };
        let authzid = match &self.authzid {
            Some(a) => format!("a={}", encode_saslname(a)),
            None => String::new(),
        };
        format!("{flag},{authzid},")
    }

    fn client_first_bare(&self) -> String {
        format!("n={},r={}", self.username, self.client_nonce)
    }

    /// The client-first message (gs2-header + client-first-message-bare).
    pub fn client_first(&self) -> Vec<u8> {
        format!("{}{}", self.gs2_header(), self.client_first_bare()).into_bytes()
    }

    /// Processes server-first (`r=,s=,i=`) and returns client-final (`c=,r=,p=`).
    pub fn handle_server_first(&mut self, msg: &[u8]) -> Result<Vec<u8>, SaslError> {
        use SaslError::MalformedServerMessage as Bad;

        if !matches!(self.state, ClientState::Initial) {
            return Err(SaslError::InvalidState);
        }
        self.state = ClientState::Done;
        let server_first = std::str::from_utf8(msg).map_err(|_| Bad("not UTF-8"))?;
        let mut fields = server_first.split(',');
        let first = fields.next().unwrap_or("");
        if first.starts_with("m=") {
            return Err(SaslError::UnsupportedExtension);
        }
        let nonce = attr(first, 'r').ok_or(Bad("missing r="))?;
        if !is_valid_nonce(nonce) {
            return Err(Bad("invalid nonce"));
        }
        // RFC 5802 §5.1: the server appends to our nonce; it must add something.
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(SaslError::NonceMismatch);
        }
        let salt = fields
            .next()
            .and_then(|f| attr(f, 's'))
            .and_then(b64_decode)
            .ok_or(Bad("missing or invalid s="))?;
        let iterations: u32 = fields
            .next()
            .and_then(|f| attr(f, 'i'))
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse().ok())
            .ok_or(Bad("missing or invalid i="))?;
        if !fields.all(is_valid_extension) {
            return Err(Bad("invalid extension"));
        }
        if iterations == 0 {
            return Err(SaslError::ZeroIterations);
        }
        if iterations > self.max_iterations {
            return Err(SaslError::TooManyIterations(iterations));
        }

        let salted = match self.salted.take() {
            Some(s) if s.matches(self.hash, &salt, iterations) => s,
            _ => SaltedPassword::derive_prepared(self.hash, &self.password, &salt, iterations)?,
        };

        let mut cbind_input = self.gs2_header().into_bytes();
        if let Some((_, data)) = &self.binding {
            cbind_input.extend_from_slice(data);
        }
        let without_proof = format!("c={},r={nonce}", b64_encode(&cbind_input));
        let auth_message = format!(
            "{},{server_first},{without_proof}",
            self.client_first_bare()
        );

        // RFC 5802 §3.
        let client_key = salted.client_key();
        let stored_key = crypto::digest(self.hash, &client_key);
        let client_signature = crypto::hmac(self.hash, &stored_key, auth_message.as_bytes());
        let proof = crypto::xor(&client_key, &client_signature);
        let server_signature =
            crypto::hmac(self.hash, &salted.server_key(), auth_message.as_bytes());

        self.salted = Some(salted);
        self.state = ClientState::AwaitingServerFinal { server_signature };
        Ok(format!("{without_proof},p={}", b64_encode(&proof)).into_bytes())
    }

    /// Checks server-final (`v=...`); `e=...` becomes [`SaslError::ServerError`].
    pub fn verify_server_final(&mut self, msg: &[u8]) -> Result<(), SaslError> {
        use SaslError::MalformedServerMessage as Bad;

        let ClientState::AwaitingServerFinal { server_signature } =
            std::mem::replace(&mut self.state, ClientState::Done)
        else {
            return Err(SaslError::InvalidState);
        };
        let msg = std::str::from_utf8(msg).map_err(|_| Bad("not UTF-8"))?;
        let mut fields = msg.split(',');
        let first = fields.next().unwrap_or("");
        if let Some(err) = attr(first, 'e') {
            return Err(SaslError::ServerError(err.to_owned()));
        }
        let verifier = attr(first, 'v')
            .and_then(b64_decode)
            .ok_or(Bad("missing or invalid v="))?;
        if !fields.all(is_valid_extension) {
            return Err(Bad("invalid extension"));
        }
        if bool::from(verifier.ct_eq(&server_signature)) {
            Ok(())
        } else {
            Err(SaslError::ServerSignatureMismatch)
        }
    }
}
