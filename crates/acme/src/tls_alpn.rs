//! TLS-ALPN-01 (RFC 8737): the validation certificate of one pending challenge.
//!
//! The CA connects to port 443 of the name, offering the ALPN protocol `acme-tls/1` and the
//! name as SNI (§3); the server answers with a self-signed certificate whose only
//! subjectAlternativeName is that name and whose critical acmeIdentifier extension holds the
//! SHA-256 digest of the key authorization. The certificates wait in the TLS manager's
//! [`AcmeValidations`](starling_net::AcmeValidations) table, which c2s direct TLS and the HTTPS
//! listener consult for every ClientHello (`TlsManager::direct_tls_config_for`).

use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

/// The validation certificate for `domain` and the challenge's `key_authorization`
/// (RFC 8555 §8.1: token "." account key thumbprint), with a fresh P-256 key: (certificate,
/// PKCS#8 key), DER.
pub fn validation_certificate(
    domain: &str,
    key_authorization: &str,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), rcgen::Error> {
    let digest: [u8; 32] = Sha256::digest(key_authorization.as_bytes()).into();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    // RFC 8737 §3: a single dNSName, the name being validated.
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()])?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, domain);
    params.distinguished_name = dn;
    // RFC 8737 §3: the acmeIdentifier extension, critical, an OCTET STRING of the digest
    // (rcgen encodes it so and marks it critical).
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(&digest));
    let cert = params.self_signed(&key)?;
    let key = PrivatePkcs8KeyDer::from(key.serialize_der());
    Ok((cert.der().clone(), PrivateKeyDer::Pkcs8(key)))
}

/// [`validation_certificate`] ready for the TLS manager's table. On failure, what went wrong.
pub(crate) fn validation_key(
    domain: &str,
    key_authorization: &str,
) -> Result<Arc<CertifiedKey>, String> {
    let (cert, key) =
        validation_certificate(domain, key_authorization).map_err(|e| e.to_string())?;
    // Not `CertifiedKey::from_der`: its key check parses the certificate with webpki, which
    // refuses the critical extension it does not know (as it should: RFC 8737 §3 makes it
    // critical so that nothing else accepts the certificate). The pair was made together.
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(CertifiedKey::new(vec![cert], signing)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

    /// RFC 8737 §3: self-signed, one dNSName SAN, the critical acmeIdentifier extension
    /// (id-pe-acmeIdentifier, §6.1) holding the SHA-256 digest of the key authorization as a
    /// DER OCTET STRING.
    #[test]
    fn validation_certificate_carries_the_digest_in_a_critical_acme_identifier() {
        let key_authorization = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI";
        let (cert, _key) = validation_certificate("example.org", key_authorization).unwrap();
        let (rest, parsed) = X509Certificate::from_der(cert.as_ref()).unwrap();
        assert!(rest.is_empty());
        assert_eq!(parsed.subject(), parsed.issuer(), "self-signed");

        let san = parsed
            .subject_alternative_name()
            .unwrap()
            .expect("a subjectAlternativeName");
        assert_eq!(
            san.value.general_names,
            [GeneralName::DNSName("example.org")]
        );

        let acme: Vec<_> = parsed
            .extensions()
            .iter()
            // id-pe-acmeIdentifier (RFC 8737 §6.1).
            .filter(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .collect();
        assert_eq!(acme.len(), 1);
        assert!(acme[0].critical);
        // SHA-256 of the key authorization above (`printf %s ... | sha256sum`).
        let digest = "94233b719c905dc5472b69e75b78e3021353dc5be6d7c50dfa45996649caa183";
        let mut expected = vec![0x04, 0x20];
        expected.extend(
            (0..digest.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&digest[i..i + 2], 16).unwrap()),
        );
        assert_eq!(acme[0].value, expected);
    }

    #[test]
    fn validation_key_matches_its_certificate() {
        let key = validation_key("conference.example.org", "token.thumbprint").unwrap();
        assert_eq!(key.cert.len(), 1);
        let (_, parsed) = X509Certificate::from_der(key.cert[0].as_ref()).unwrap();
        let spki = key
            .key
            .public_key()
            .expect("ring keys expose their public key");
        assert_eq!(parsed.public_key().raw, spki.as_ref());
    }
}
