//! Hash primitives of RFC 5802 §2.2 (`H`, `HMAC`, `Hi`) over the three supported hashes.

use hmac::digest::Digest;
use hmac::{EagerHash, Hmac, KeyInit, Mac};

use crate::ScramHash;

fn hmac_generic<D: EagerHash>(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = match <Hmac<D> as KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC accepts keys of any length (RFC 2104 §2); hmac's KeyInit never fails.
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn digest_generic<D: Digest>(data: &[u8]) -> Vec<u8> {
    D::digest(data).to_vec()
}

fn hi_generic<D: EagerHash>(
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    out_len: usize,
) -> Vec<u8> {
    let mut out = vec![0u8; out_len];
    pbkdf2::pbkdf2_hmac::<D>(password, salt, iterations, &mut out);
    out
}

/// `HMAC(key, data)`.
pub(crate) fn hmac(hash: ScramHash, key: &[u8], data: &[u8]) -> Vec<u8> {
    match hash {
        ScramHash::Sha1 => hmac_generic::<sha1::Sha1>(key, data),
        ScramHash::Sha256 => hmac_generic::<sha2::Sha256>(key, data),
        ScramHash::Sha512 => hmac_generic::<sha2::Sha512>(key, data),
    }
}

/// `H(data)`.
pub(crate) fn digest(hash: ScramHash, data: &[u8]) -> Vec<u8> {
    match hash {
        ScramHash::Sha1 => digest_generic::<sha1::Sha1>(data),
        ScramHash::Sha256 => digest_generic::<sha2::Sha256>(data),
        ScramHash::Sha512 => digest_generic::<sha2::Sha512>(data),
    }
}

/// `Hi(str, salt, i)`: PBKDF2 with HMAC-`hash`, output length = hash length (RFC 5802 §2.2).
/// The caller guarantees `iterations >= 1`.
pub(crate) fn hi(hash: ScramHash, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let len = hash.output_len();
    match hash {
        ScramHash::Sha1 => hi_generic::<sha1::Sha1>(password, salt, iterations, len),
        ScramHash::Sha256 => hi_generic::<sha2::Sha256>(password, salt, iterations, len),
        ScramHash::Sha512 => hi_generic::<sha2::Sha512>(password, salt, iterations, len),
    }
}

/// Byte-wise XOR of two equally long slices (the caller checks the lengths).
pub(crate) fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}
