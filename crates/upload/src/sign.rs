//! The signature of a slot's PUT URL: whoever holds the URL may store exactly the file the slot
//! was given for, until it expires, and nobody can make such a URL without the key.
//!
//! `s = base64url(HMAC-SHA-256(key, "starling upload put" ‖ NUL ‖ slot ‖ NUL ‖ file name ‖ NUL ‖
//! size ‖ NUL ‖ content type ‖ NUL ‖ expiry))`, with the size and the expiry (seconds since the
//! Unix epoch) in decimal and an empty content type when the request named none. The URL
//! carries `?e=<expiry>&s=<s>`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// What a PUT URL grants.
#[derive(Debug, Clone, Copy)]
pub struct Grant<'a> {
    pub slot: &'a str,
    pub filename: &'a str,
    pub size: u64,
    pub content_type: Option<&'a str>,
    pub expires: i64,
}

/// Signs and checks [`Grant`]s with one key.
#[derive(Clone)]
pub struct Signer {
    key: [u8; 32],
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    pub fn new(key: [u8; 32]) -> Signer {
        Signer { key }
    }

    fn mac(&self, g: &Grant<'_>) -> [u8; 32] {
        let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        let size = g.size.to_string();
        let expires = g.expires.to_string();
        mac.update(b"starling upload put");
        for part in [
            g.slot.as_bytes(),
            g.filename.as_bytes(),
            size.as_bytes(),
            g.content_type.unwrap_or("").as_bytes(),
            expires.as_bytes(),
        ] {
            mac.update(&[0]);
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// The signature of `grant`, for the URL.
    pub fn sign(&self, grant: &Grant<'_>) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(grant))
    }

    /// Whether `signature` is that of `grant` (in constant time).
    pub fn verify(&self, grant: &Grant<'_>, signature: &str) -> bool {
        let Ok(given) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        given.len() == 32 && bool::from(self.mac(grant)[..].ct_eq(&given))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_every_part() {
        let s = Signer::new([7; 32]);
        let g = Grant {
            slot: "abc",
            filename: "a.jpg",
            size: 10,
            content_type: Some("image/jpeg"),
            expires: 100,
        };
        let sig = s.sign(&g);
        assert!(s.verify(&g, &sig));
        assert!(!Signer::new([8; 32]).verify(&g, &sig));
        for other in [
            Grant { slot: "abd", ..g },
            Grant {
                filename: "a.jpeg",
                ..g
            },
            Grant { size: 11, ..g },
            Grant {
                content_type: None,
                ..g
            },
            Grant { expires: 101, ..g },
        ] {
            assert!(!s.verify(&other, &sig), "{other:?}");
        }
        assert!(!s.verify(&g, "not base64!"));
        assert!(!s.verify(&g, ""));
    }
}
