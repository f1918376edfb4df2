//! RFC 5929 §4.1 `tls-server-end-point` channel-binding data.
//!
//! The binding is a hash of the server's leaf certificate (DER). The hash function is the one
//! used by the certificate's `signatureAlgorithm`, except that MD5 and SHA-1 are replaced by
//! SHA-256. Algorithms with no single hash (Ed25519, Ed448) are left undefined by RFC 5929;
//! like an unrecognised algorithm they get SHA-256 here.

use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

/// A hash function that may be chosen for the binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndPointHash {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

/// The `tls-server-end-point` binding for a leaf certificate.
pub(crate) fn server_end_point(leaf_der: &[u8]) -> Vec<u8> {
    match end_point_hash(leaf_der) {
        EndPointHash::Sha224 => Sha224::digest(leaf_der).to_vec(),
        EndPointHash::Sha256 => Sha256::digest(leaf_der).to_vec(),
        EndPointHash::Sha384 => Sha384::digest(leaf_der).to_vec(),
        EndPointHash::Sha512 => Sha512::digest(leaf_der).to_vec(),
    }
}

// OID content octets (DER, without tag and length).
const PKCS1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01]; // 1.2.840.113549.1.1
const ECDSA_SIG: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04]; // 1.2.840.10045.4
const NIST_HASH: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02]; // 2.16.840.1.101.3.4.2
const NIST_DSA: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03]; // 2.16.840.1.101.3.4.3

const TAG_SEQUENCE: u8 = 0x30;
const TAG_OID: u8 = 0x06;
const TAG_CONTEXT_0: u8 = 0xa0;

/// The hash to use for `leaf_der`'s signature algorithm (SHA-256 when unknown or unparsable).
pub(crate) fn end_point_hash(leaf_der: &[u8]) -> EndPointHash {
    signature_hash(leaf_der).unwrap_or(EndPointHash::Sha256)
}

/// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm AlgorithmIdentifier, signatureValue }`
/// (RFC 5280 §4.1). `None` when the hash is unknown, MD5/SHA-1, or the DER does not parse.
fn signature_hash(leaf_der: &[u8]) -> Option<EndPointHash> {
    let (tag, cert, _) = read_tlv(leaf_der)?;
    if tag != TAG_SEQUENCE {
        return None;
    }
    let (_tbs_tag, _tbs, rest) = read_tlv(cert)?;
    let (tag, alg_id, _) = read_tlv(rest)?;
    if tag != TAG_SEQUENCE {
        return None;
    }
    let (tag, oid, params) = read_tlv(alg_id)?;
    if tag != TAG_OID {
        return None;
    }
    if let Some(last) = strip_arc(oid, PKCS1) {
        return match last {
            11 => Some(EndPointHash::Sha256), // sha256WithRSAEncryption
            12 => Some(EndPointHash::Sha384),
            13 => Some(EndPointHash::Sha512),
            14 => Some(EndPointHash::Sha224),
            10 => pss_hash(params), // RSASSA-PSS: hash in the parameters (RFC 4055 §3.1)
            _ => None,              // md5/sha1WithRSAEncryption, unknown
        };
    }
    if let Some(rest) = oid.strip_prefix(ECDSA_SIG) {
        // ecdsa-with-SHA224..512 are 1.2.840.10045.4.3.{1..4}; ecdsa-with-SHA1 is 4.1.
        return match rest {
            [0x03, 0x01] => Some(EndPointHash::Sha224),
            [0x03, 0x02] => Some(EndPointHash::Sha256),
            [0x03, 0x03] => Some(EndPointHash::Sha384),
            [0x03, 0x04] => Some(EndPointHash::Sha512),
            _ => None,
        };
    }
    if let Some(last) = strip_arc(oid, NIST_DSA) {
        // dsa-with-sha224 / dsa-with-sha256
        return match last {
            1 => Some(EndPointHash::Sha224),
            2 => Some(EndPointHash::Sha256),
            _ => None,
        };
    }
    None
}

/// `RSASSA-PSS-params ::= SEQUENCE { hashAlgorithm [0] HashAlgorithm DEFAULT sha1, ... }`.
/// An absent hash means SHA-1, i.e. `None` (→ SHA-256).
fn pss_hash(params: &[u8]) -> Option<EndPointHash> {
    let (tag, seq, _) = read_tlv(params)?;
    if tag != TAG_SEQUENCE {
        return None;
    }
    let (tag, explicit, _) = read_tlv(seq)?;
    if tag != TAG_CONTEXT_0 {
        return None;
    }
    let (tag, alg_id, _) = read_tlv(explicit)?;
    if tag != TAG_SEQUENCE {
        return None;
    }
    let (tag, oid, _) = read_tlv(alg_id)?;
    if tag != TAG_OID {
        return None;
    }
    match strip_arc(oid, NIST_HASH)? {
        1 => Some(EndPointHash::Sha256),
        2 => Some(EndPointHash::Sha384),
        3 => Some(EndPointHash::Sha512),
        4 => Some(EndPointHash::Sha224),
        _ => None,
    }
}

/// If `oid` is `prefix` followed by exactly one single-byte arc, that arc.
fn strip_arc(oid: &[u8], prefix: &[u8]) -> Option<u8> {
    match oid.strip_prefix(prefix)? {
        [last] if *last < 0x80 => Some(*last),
        _ => None,
    }
}

/// Reads one DER TLV with a low tag number and definite length: `(tag, contents, rest)`.
fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // high tag numbers do not occur in the structures we read
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None; // indefinite length (BER) or absurd size
        }
        let (len_bytes, rest) = rest.split_at_checked(n)?;
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    let (contents, rest) = rest.split_at_checked(len)?;
    Some((tag, contents, rest))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A skeleton certificate: empty TBS, the given AlgorithmIdentifier contents, empty BIT STRING.
    fn skeleton(alg_id_contents: &[u8]) -> Vec<u8> {
        let mut alg = vec![TAG_SEQUENCE, u8::try_from(alg_id_contents.len()).unwrap()];
        alg.extend_from_slice(alg_id_contents);
        let mut body = vec![TAG_SEQUENCE, 0x00];
        body.extend_from_slice(&alg);
        body.extend_from_slice(&[0x03, 0x01, 0x00]);
        let mut cert = vec![TAG_SEQUENCE, u8::try_from(body.len()).unwrap()];
        cert.extend_from_slice(&body);
        cert
    }

    fn oid(content: &[u8]) -> Vec<u8> {
        let mut v = vec![TAG_OID, u8::try_from(content.len()).unwrap()];
        v.extend_from_slice(content);
        v
    }

    fn pkcs1(last: u8) -> Vec<u8> {
        let mut o = PKCS1.to_vec();
        o.push(last);
        let mut v = oid(&o);
        v.extend_from_slice(&[0x05, 0x00]); // NULL parameters
        v
    }

    #[test]
    fn rsa_pkcs1_hashes() {
        assert_eq!(end_point_hash(&skeleton(&pkcs1(11))), EndPointHash::Sha256);
        assert_eq!(end_point_hash(&skeleton(&pkcs1(12))), EndPointHash::Sha384);
        assert_eq!(end_point_hash(&skeleton(&pkcs1(13))), EndPointHash::Sha512);
        assert_eq!(end_point_hash(&skeleton(&pkcs1(14))), EndPointHash::Sha224);
        // md5WithRSAEncryption and sha1WithRSAEncryption: RFC 5929 §4.1 says SHA-256.
        assert_eq!(signature_hash(&skeleton(&pkcs1(4))), None);
        assert_eq!(signature_hash(&skeleton(&pkcs1(5))), None);
        assert_eq!(end_point_hash(&skeleton(&pkcs1(5))), EndPointHash::Sha256);
    }

    #[test]
    fn ecdsa_hashes() {
        let ecdsa = |tail: &[u8]| {
            let mut o = ECDSA_SIG.to_vec();
            o.extend_from_slice(tail);
            skeleton(&oid(&o))
        };
        assert_eq!(signature_hash(&ecdsa(&[3, 1])), Some(EndPointHash::Sha224));
        assert_eq!(signature_hash(&ecdsa(&[3, 2])), Some(EndPointHash::Sha256));
        assert_eq!(signature_hash(&ecdsa(&[3, 3])), Some(EndPointHash::Sha384));
        assert_eq!(signature_hash(&ecdsa(&[3, 4])), Some(EndPointHash::Sha512));
        assert_eq!(signature_hash(&ecdsa(&[1])), None); // ecdsa-with-SHA1
    }

    #[test]
    fn pss_without_hash_parameter_is_sha1() {
        // RSASSA-PSS with empty params SEQUENCE: all defaults, i.e. SHA-1.
        let mut alg = pkcs1(10);
        alg.truncate(alg.len() - 2);
        alg.extend_from_slice(&[TAG_SEQUENCE, 0x00]);
        assert_eq!(signature_hash(&skeleton(&alg)), None);
        assert_eq!(end_point_hash(&skeleton(&alg)), EndPointHash::Sha256);
    }

    #[test]
    fn ed25519_and_garbage_fall_back_to_sha256() {
        let ed25519 = skeleton(&oid(&[0x2b, 0x65, 0x70])); // 1.3.101.112
        assert_eq!(signature_hash(&ed25519), None);
        assert_eq!(end_point_hash(&ed25519), EndPointHash::Sha256);
        assert_eq!(end_point_hash(b""), EndPointHash::Sha256);
        assert_eq!(
            end_point_hash(&[0x30, 0x84, 0xff, 0xff]),
            EndPointHash::Sha256
        );
        assert_eq!(server_end_point(b"abc").len(), 32);
    }

    #[test]
    fn long_form_lengths() {
        assert_eq!(
            read_tlv(&[0x04, 0x81, 0x02, 0xaa, 0xbb, 0xcc]),
            Some((0x04, &[0xaa, 0xbb][..], &[0xcc][..]))
        );
        assert_eq!(read_tlv(&[0x04, 0x82, 0x00, 0x03, 0xaa]), None);
        assert_eq!(read_tlv(&[0x04, 0x80]), None);
    }
}
