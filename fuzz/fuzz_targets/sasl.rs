//! The SASL server (`starling_sasl::ServerSession`) and the SCRAM syntax parsers on arbitrary
//! bytes: no panic, and no success without a real credential.
//!
//! Input: one control byte, then messages separated by `\n` (no SCRAM message contains one).
//!
//! Control bits 0–2 pick the mode: 0–6 one of `Mechanism::ALL`, 7 the syntax helpers and the
//! SCRAM client.
//!
//! Server mode: the first message is the `<auth/>` initial response (absent if bit 5 is set), each
//! further one a `<response/>` (a message `*` is an `<abort/>`). Bit 3: `-PLUS` was advertised;
//! bit 4: the connection has channel-binding data (`tls-exporter` and `tls-server-end-point`);
//! bit 6: the user is unknown (`provide_credentials(None)`); bit 7: the stored credential has
//! another hash than asked. Otherwise the credential is the password `pencil` with a fixed salt
//! and [`ITERATIONS`]; the server nonce is fixed ([`SERVER_NONCE`]), so seeds can carry whole valid
//! exchanges (fuzz/corpus/sasl/README.md).
//!
//! Client mode: bits 3–4 pick the hash; the first message goes through every syntax helper, the
//! second and third are server-first and server-final for a `ScramClient`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use starling_sasl::client::ScramClient;
use starling_sasl::fuzzing::{
    attr, authzid_matches, b64_decode, b64_encode, decode_saslname, encode_saslname,
    is_valid_cb_name, is_valid_extension, is_valid_nonce,
};
use starling_sasl::{
    ChannelBindingType, ChannelBindings, Mechanism, ScramCredential, ScramHash, ServerSession, Step,
};

/// Low, so that PLAIN and the SCRAM client (PBKDF2 on every input) stay fast.
const ITERATIONS: u32 = 16;
const SERVER_NONCE: &str = "3rfcNHYJY1ZVvWVs7j";
const CLIENT_NONCE: &str = "fyko+d2lbbFgONRv9qkxdawL";
const PASSWORD: &str = "pencil";
/// `QSXCR+Q6sek8bf92` in base64 (RFC 5802's example salt).
const SALT: &[u8] = b"\x41\x25\xc2\x47\xe4\x3a\xb1\xe9\x3c\x6d\xff\x76";
const DOMAIN: &str = "localhost";

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let mut messages = rest.split(|&b| b == b'\n');
    match usize::from(control & 7) {
        7 => syntax_and_client(control, &mut messages),
        m => server(Mechanism::ALL[m], control, &mut messages),
    }
});

fn credential(hash: ScramHash) -> ScramCredential {
    ScramCredential::derive(hash, PASSWORD, SALT, ITERATIONS)
        .unwrap_or_else(|e| panic!("fixed credential: {e}"))
}

fn server<'a>(mechanism: Mechanism, control: u8, messages: &mut impl Iterator<Item = &'a [u8]>) {
    let plus_advertised = control & 0x08 != 0;
    let bindings = if control & 0x10 != 0 {
        ChannelBindings {
            tls_exporter: Some(b"exporter-0123456789abcdef0123456789ab".to_vec()),
            tls_server_end_point: Some(b"endpoint-0123456789abcdef0123456789ab".to_vec()),
        }
    } else {
        ChannelBindings::none()
    };
    let initial = if control & 0x20 != 0 {
        None
    } else {
        Some(messages.next().unwrap_or_default())
    };
    let unknown_user = control & 0x40 != 0;
    let wrong_hash = control & 0x80 != 0;

    let (mut session, mut step) = ServerSession::start_with_server_nonce(
        mechanism,
        DOMAIN,
        bindings,
        plus_advertised,
        initial,
        SERVER_NONCE,
    );
    session.set_unknown_user_iterations(ITERATIONS);
    let mut asked_for: Option<String> = None;
    // Bounded: each round consumes a message or provides credentials once per exchange.
    for _ in 0..64 {
        step = match step {
            Step::NeedCredentials { username, hash } => {
                assert!(asked_for.is_none(), "credentials asked for twice");
                asked_for = Some(username);
                let cred = if unknown_user {
                    None
                } else if wrong_hash {
                    let other = ScramHash::ALL
                        .into_iter()
                        .find(|h| *h != hash)
                        .unwrap_or(hash);
                    Some(credential(other))
                } else {
                    Some(credential(hash))
                };
                session.provide_credentials(cred)
            }
            Step::Success { username, .. } => {
                assert!(session.is_done(), "success but not done");
                assert!(!unknown_user, "an unknown user authenticated");
                assert_eq!(
                    asked_for.as_deref(),
                    Some(username.as_str()),
                    "success for another user than the one looked up"
                );
                if mechanism.hash().is_some() {
                    assert!(!wrong_hash, "SCRAM accepted a credential of another hash");
                }
                return;
            }
            Step::Failure(_) => {
                assert!(session.is_done(), "failure but not done");
                // A finished exchange stays finished.
                assert!(matches!(session.step(b"n,,n=user,r=x"), Step::Failure(_)));
                return;
            }
            Step::Challenge(_) => {
                assert!(!session.is_done(), "challenge after the end");
                match messages.next() {
                    None => return,
                    Some(b"*") => session.abort(),
                    Some(msg) => session.step(msg),
                }
            }
        };
    }
}

fn syntax_and_client<'a>(control: u8, messages: &mut impl Iterator<Item = &'a [u8]>) {
    let first = messages.next().unwrap_or_default();
    if let Ok(s) = std::str::from_utf8(first) {
        syntax(s);
    }

    let hash = ScramHash::ALL[usize::from((control >> 3) & 3) % ScramHash::ALL.len()];
    let binding =
        (control & 0x20 != 0).then(|| (ChannelBindingType::TlsExporter, b"exporter-data".to_vec()));
    let Ok(client) = ScramClient::new(hash, "user", PASSWORD, binding, None) else {
        return;
    };
    let Ok(client) = client.with_client_nonce(CLIENT_NONCE) else {
        return;
    };
    let mut client = client.with_max_iterations(ITERATIONS * 4);
    let _ = client.client_first();
    let server_first = messages.next().unwrap_or_default();
    if client.handle_server_first(server_first).is_ok() {
        let server_final = messages.next().unwrap_or_default();
        let _ = client.verify_server_final(server_final);
    }
}

fn syntax(s: &str) {
    if let Some(decoded) = decode_saslname(s) {
        let encoded = encode_saslname(&decoded);
        assert_eq!(
            decode_saslname(&encoded).as_deref(),
            Some(decoded.as_str()),
            "saslname {s:?}"
        );
    }
    if !s.is_empty() && !s.contains('\0') {
        assert_eq!(
            decode_saslname(&encode_saslname(s)).as_deref(),
            Some(s),
            "encode then decode {s:?}"
        );
    }
    if let Some(bytes) = b64_decode(s) {
        // Strict decoding: only the canonical encoding is accepted.
        assert_eq!(b64_encode(&bytes), s, "non-canonical base64 accepted");
    }
    assert_eq!(
        b64_decode(&b64_encode(s.as_bytes())).as_deref(),
        Some(s.as_bytes())
    );

    let _ = is_valid_nonce(s);
    let _ = is_valid_cb_name(s);
    for field in s.split(',') {
        let _ = is_valid_extension(field);
        for name in ['a', 'n', 'r', 'c', 'p', 's', 'i', 'v', 'e', 'm'] {
            if let Some(v) = attr(field, name) {
                assert!(field.len() == v.len() + 2);
            }
        }
    }
    if let Some((authzid, rest)) = s.split_once('\0') {
        let (user, domain) = rest.split_once('\0').unwrap_or((rest, DOMAIN));
        let _ = authzid_matches(authzid, user, domain);
    }
}
