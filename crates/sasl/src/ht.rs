//! The server side of the Hashed Token (HT) SASL mechanisms (draft-schmaus-kitten-sasl-ht, now
//! draft-ietf-kitten-sasl-ht), which XEP-0484 FAST uses to log in with a token in one round trip.
//!
//! # Procedure
//!
//! The client's only message is `authcid NUL initiator-hashed-token`, where
//! `initiator-hashed-token = HMAC(token, "Initiator" || cb-data)`; on success the server answers
//! with `HMAC(token, "Responder" || cb-data)` as additional data, which proves to the client
//! that the server knew the token too. The HMAC key is the token as the client holds it (the
//! string the server issued, its UTF-8 bytes). `cb-data` is the channel binding the mechanism
//! names (`-EXPR`: tls-exporter, `-ENDP`: tls-server-end-point, `-UNIQ`: tls-unique) or empty
//! (`-NONE`). Only SHA-256 is offered.
//!
//! This module does no storage access: the caller parses the message ([`parse_message`]), looks
//! up the tokens of the user, and checks each with [`verify`] (constant time).

use subtle::ConstantTimeEq as _;

use crate::{ChannelBindingType, ChannelBindings, SaslFailure, ScramHash, crypto, saslprep};

/// The channel binding of an HT mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HtBinding {
    /// `-NONE`: no channel binding.
    None,
    /// `-EXPR`: `tls-exporter` (RFC 9266).
    TlsExporter,
    /// `-ENDP`: `tls-server-end-point` (RFC 5929).
    TlsServerEndPoint,
}

/// An HT mechanism this crate implements (hash SHA-256).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HtMechanism {
    /// Its channel binding.
    pub binding: HtBinding,
}

impl HtMechanism {
    /// Every implemented mechanism, those with channel binding first.
    pub const ALL: [HtMechanism; 3] = [
        HtMechanism {
            binding: HtBinding::TlsExporter,
        },
        HtMechanism {
            binding: HtBinding::TlsServerEndPoint,
        },
        HtMechanism {
            binding: HtBinding::None,
        },
    ];

    /// The mechanism name, e.g. `"HT-SHA-256-NONE"`.
    pub fn name(&self) -> &'static str {
        match self.binding {
            HtBinding::None => "HT-SHA-256-NONE",
            HtBinding::TlsExporter => "HT-SHA-256-EXPR",
            HtBinding::TlsServerEndPoint => "HT-SHA-256-ENDP",
        }
    }

    /// Parses [`name`](Self::name) (exact match).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The channel-binding type the mechanism needs, `None` for `-NONE`.
    pub fn channel_binding_type(&self) -> Option<ChannelBindingType> {
        match self.binding {
            HtBinding::None => None,
            HtBinding::TlsExporter => Some(ChannelBindingType::TlsExporter),
            HtBinding::TlsServerEndPoint => Some(ChannelBindingType::TlsServerEndPoint),
        }
    }

    /// The channel-binding data of this connection for the mechanism: empty for `-NONE`, `None`
    /// when the connection lacks that binding (then the mechanism is not offered).
    pub fn cb_data<'a>(&self, bindings: &'a ChannelBindings) -> Option<&'a [u8]> {
        match self.channel_binding_type() {
            None => Some(&[]),
            Some(t) => bindings.get(t),
        }
    }
}

/// Splits the client's message into the SASLprep'd authentication identity and the
/// initiator-hashed-token. Anything else than `authcid NUL 32 bytes` is
/// [`SaslFailure::MalformedRequest`]; a name SASLprep refuses is
/// [`SaslFailure::NotAuthorized`] (no account can have it).
pub fn parse_message(msg: &[u8]) -> Result<(String, Vec<u8>), SaslFailure> {
    let nul = msg
        .iter()
        .position(|b| *b == 0)
        .ok_or(SaslFailure::MalformedRequest)?;
    let (authcid, rest) = msg.split_at(nul);
    let proof = rest.get(1..).unwrap_or_default();
    if authcid.is_empty() || proof.len() != ScramHash::Sha256.output_len() {
        return Err(SaslFailure::MalformedRequest);
    }
    let authcid = std::str::from_utf8(authcid).map_err(|_| SaslFailure::MalformedRequest)?;
    let username = saslprep(authcid).map_err(|_| SaslFailure::NotAuthorized)?;
    Ok((username, proof.to_vec()))
}

/// `HMAC-SHA-256(token, "Initiator" || cb_data)`: what the client sends.
pub fn initiator_hash(token: &[u8], cb_data: &[u8]) -> Vec<u8> {
    hashed(token, b"Initiator", cb_data)
}

/// `HMAC-SHA-256(token, "Responder" || cb_data)`: the server's additional data on success.
pub fn responder_hash(token: &[u8], cb_data: &[u8]) -> Vec<u8> {
    hashed(token, b"Responder", cb_data)
}

/// Whether `proof` is the initiator hash of `token` on this channel binding (constant time).
pub fn verify(token: &[u8], cb_data: &[u8], proof: &[u8]) -> bool {
    bool::from(initiator_hash(token, cb_data).ct_eq(proof))
}

fn hashed(token: &[u8], label: &[u8], cb_data: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(label.len() + cb_data.len());
    data.extend_from_slice(label);
    data.extend_from_slice(cb_data);
    crypto::hmac(ScramHash::Sha256, token, &data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in HtMechanism::ALL {
            assert_eq!(HtMechanism::from_name(m.name()), Some(m));
        }
        assert_eq!(HtMechanism::from_name("HT-SHA-256-UNIQ"), None);
        assert_eq!(HtMechanism::from_name("ht-sha-256-none"), None);
    }

    #[test]
    fn message_syntax() {
        let proof = initiator_hash(b"tok", b"");
        let mut msg = b"user\0".to_vec();
        msg.extend_from_slice(&proof);
        assert_eq!(parse_message(&msg), Ok(("user".to_owned(), proof.clone())));
        assert_eq!(parse_message(b"user"), Err(SaslFailure::MalformedRequest));
        assert_eq!(parse_message(b"\0abc"), Err(SaslFailure::MalformedRequest));
        assert_eq!(
            parse_message(b"user\0short"),
            Err(SaslFailure::MalformedRequest)
        );
        let mut bad = b"a\x07b\0".to_vec();
        bad.extend_from_slice(&proof);
        assert_eq!(parse_message(&bad), Err(SaslFailure::NotAuthorized));
        assert!(verify(b"tok", b"", &proof));
        assert!(!verify(b"tok", b"cb", &proof));
        assert!(!verify(b"other", b"", &proof));
        assert_ne!(responder_hash(b"tok", b""), proof);
    }

    /// The same HMAC as xmpp.js's @xmpp/sasl-ht-sha-256-none (Web Crypto HMAC-SHA-256 keyed with
    /// the token's UTF-8 bytes over "Initiator"), computed independently with Python's hmac.
    #[test]
    fn independent_vector() {
        let got = initiator_hash(b"secret-token", b"");
        assert_eq!(
            crate::syntax::b64_encode(&got),
            "P23pK0XN3FDGAa0WZFj3tYdFZeOZ8wBrGvsD8LsD/4g="
        );
    }
}
