//! Peer certificates (RFC 6120 §13.7.2, RFC 7712 domain name associations, XEP-0178).
//!
//! TLS handshakes with peers never fail on the certificate: both verifiers here accept what
//! the peer presents (still checking the handshake signatures), and [`Trust::check`] judges it
//! afterwards against the stream's domain. That is what lets a server fall back to dialback
//! when a certificate does not verify (XEP-0220), and what lets `check-federation` say exactly
//! why it does not.
//!
//! A certificate verifies for a domain when its chain leads to a trusted root (the system's
//! roots and `[s2s] ca_file`), it is valid now, its extended key usage allows serverAuth **or**
//! clientAuth (public CAs no longer issue clientAuth, so a peer's server certificate is accepted
//! as its client certificate too — issue 18; ejabberd #4392), and one of its names is the
//! domain: a SAN dNSName (a `*.` wildcard covers one leftmost label, RFC 6125 §6.4.3), an
//! id-on-xmppAddr (RFC 6120 §13.7.1.4) or an SRV-ID `_xmpp-server.<domain>` (RFC 4985,
//! RFC 7712 §3). The subject's common name is not consulted (RFC 6125 §6.4.4 allows it only
//! without SANs; every CA writes SANs).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::SignatureScheme;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};

/// id-on-xmppAddr (RFC 6120 §13.7.1.4).
const OID_XMPP_ADDR: &str = "1.3.6.1.5.5.7.8.5";
/// id-on-dnsSRV (RFC 4985).
const OID_SRV_NAME: &str = "1.3.6.1.5.5.7.8.7";

/// Why a peer's certificate does not verify for a domain, in words an operator can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertProblem {
    /// The peer presented none.
    None,
    /// It does not parse.
    Malformed(String),
    /// Its chain leads to no trusted root.
    Untrusted {
        /// Issuer of the leaf, as written in it.
        issuer: String,
        /// The leaf is its own issuer.
        self_signed: bool,
    },
    /// Past its notAfter.
    Expired {
        /// notAfter, RFC 3339.
        not_after: String,
    },
    /// Before its notBefore.
    NotYetValid {
        /// notBefore, RFC 3339.
        not_before: String,
    },
    /// Its extended key usage allows neither serverAuth nor clientAuth.
    Usage,
    /// Valid, but for other names.
    Names {
        /// The domain asked for.
        domain: String,
        /// The names it does carry.
        names: Vec<String>,
    },
    /// Another chain error.
    Other(String),
}

impl fmt::Display for CertProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertProblem::None => f.write_str("the peer presented no certificate"),
            CertProblem::Malformed(e) => write!(f, "the certificate does not parse: {e}"),
            CertProblem::Untrusted {
                issuer,
                self_signed: true,
            } => write!(
                f,
                "the certificate is self-signed ({issuer}); use one from a public CA (ACME), or add its CA to [s2s] ca_file on this side"
            ),
            CertProblem::Untrusted { issuer, .. } => write!(
                f,
                "the certificate's issuer ({issuer}) is not trusted here (missing intermediate certificate on the peer, or a private CA: add it to [s2s] ca_file)"
            ),
            CertProblem::Expired { not_after } => {
                write!(f, "the certificate expired on {not_after}")
            }
            CertProblem::NotYetValid { not_before } => write!(
                f,
                "the certificate is not valid before {not_before} (check the clocks)"
            ),
            CertProblem::Usage => f.write_str(
                "the certificate's extended key usage allows neither serverAuth nor clientAuth",
            ),
            CertProblem::Names { domain, names } if names.is_empty() => write!(
                f,
                "the certificate names no domain (no subjectAltName), not {domain}"
            ),
            CertProblem::Names { domain, names } => write!(
                f,
                "the certificate is for {}, not {domain}",
                names.join(", ")
            ),
            CertProblem::Other(e) => write!(f, "the certificate does not verify: {e}"),
        }
    }
}

/// Why the trusted roots cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// `[s2s] ca_file` cannot be read or holds no certificate.
    #[error("{path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The roots peers' certificates must lead to.
#[derive(Debug, Clone)]
pub struct Trust {
    anchors: Arc<Vec<TrustAnchor<'static>>>,
    provider: Arc<CryptoProvider>,
}

impl Trust {
    /// The system's roots (when `system` is set) and those of `ca_file`.
    pub fn load(system: bool, ca_file: Option<&Path>) -> Result<Trust, TrustError> {
        let mut anchors = Vec::new();
        if system {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::debug!(error = %e, "a system root could not be read");
            }
            for cert in found.certs {
                if let Ok(anchor) = webpki::anchor_from_trusted_cert(&cert) {
                    anchors.push(anchor.to_owned());
                }
            }
        }
        if let Some(path) = ca_file {
            let err = |reason: String| TrustError::CaFile {
                path: path.display().to_string(),
                reason,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| err(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(e.to_string()))?;
            if certs.is_empty() {
                return Err(err("no PEM certificate in it".to_owned()));
            }
            for cert in &certs {
                let anchor = webpki::anchor_from_trusted_cert(cert)
                    .map_err(|e| err(format!("not a CA certificate: {e}")))?;
                anchors.push(anchor.to_owned());
            }
        }
        Ok(Trust {
            anchors: Arc::new(anchors),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        })
    }

    /// How many roots are trusted.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// No root is trusted.
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    /// Whether `chain` (leaf first) verifies for `domain` now.
    pub fn check(&self, chain: &[CertificateDer<'_>], domain: &str) -> Result<(), CertProblem> {
        self.check_at(chain, domain, UnixTime::now())
    }

    /// [`check`](Self::check) at time `now`.
    pub fn check_at(
        &self,
        chain: &[CertificateDer<'_>],
        domain: &str,
        now: UnixTime,
    ) -> Result<(), CertProblem> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(CertProblem::None);
        };
        let info = LeafInfo::parse(leaf)?;
        let cert = webpki::EndEntityCert::try_from(leaf)
            .map_err(|e| CertProblem::Malformed(e.to_string()))?;
        let algs = self.provider.signature_verification_algorithms.all;
        let verify = |usage: webpki::KeyUsage| {
            cert.verify_for_usage(algs, &self.anchors, intermediates, now, usage, None, None)
                .map(|_| ())
        };
        // serverAuth, else clientAuth: either is a server's certificate for this purpose.
        let verified = match verify(webpki::KeyUsage::server_auth()) {
            Err(e) if is_eku_error(&e) => verify(webpki::KeyUsage::client_auth()),
            other => other,
        };
        if let Err(e) = verified {
            return Err(match e {
                webpki::Error::UnknownIssuer => CertProblem::Untrusted {
                    issuer: info.issuer.clone(),
                    self_signed: info.self_signed,
                },
                webpki::Error::CertExpired { .. } => CertProblem::Expired {
                    not_after: info.not_after.clone(),
                },
                webpki::Error::CertNotValidYet { .. } => CertProblem::NotYetValid {
                    not_before: info.not_before.clone(),
                },
                e if is_eku_error(&e) => CertProblem::Usage,
                e => CertProblem::Other(format!("{e:?}")),
            });
        }
        if names_match(&info.names, domain) {
            Ok(())
        } else {
            Err(CertProblem::Names {
                domain: domain.to_owned(),
                names: info.names.iter().map(Name::to_string).collect(),
            })
        }
    }

    /// Verifier for our side of an outbound handshake (we are the TLS client).
    pub fn server_verifier(&self) -> Arc<dyn ServerCertVerifier> {
        Arc::new(AcceptForLater(Arc::clone(&self.provider)))
    }

    /// Verifier for an inbound handshake: asks for a client certificate, does not require one.
    pub fn client_verifier(&self) -> Arc<dyn ClientCertVerifier> {
        Arc::new(AcceptForLater(Arc::clone(&self.provider)))
    }
}

// The unit variant is deprecated but still what some paths return.
#[allow(deprecated)]
fn is_eku_error(e: &webpki::Error) -> bool {
    matches!(
        e,
        webpki::Error::RequiredEkuNotFound | webpki::Error::RequiredEkuNotFoundContext(_)
    )
}

/// One name a certificate carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Name {
    /// SAN dNSName (maybe `*.example.org`).
    Dns(String),
    /// id-on-xmppAddr.
    XmppAddr(String),
    /// SRV-ID `_service.domain`.
    Srv(String),
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Name::Dns(n) => f.write_str(n),
            Name::XmppAddr(n) => write!(f, "{n} (xmppAddr)"),
            Name::Srv(n) => write!(f, "{n} (SRV-ID)"),
        }
    }
}

/// What `check` reports from the leaf.
#[derive(Debug, Clone)]
pub struct LeafInfo {
    /// Subject, as a distinguished name string.
    pub subject: String,
    /// Issuer, likewise.
    pub issuer: String,
    /// Subject and issuer are the same.
    pub self_signed: bool,
    /// notBefore, RFC 3339.
    pub not_before: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
    /// The names it carries, in the order written.
    pub names: Vec<Name>,
    /// Extended key usages, by name (`serverAuth`, `clientAuth`); empty: none listed.
    pub usages: Vec<&'static str>,
}

impl LeafInfo {
    /// Reads a certificate's identity.
    pub fn parse(der: &CertificateDer<'_>) -> Result<LeafInfo, CertProblem> {
        use x509_parser::prelude::*;
        let (_, cert) = X509Certificate::from_der(der.as_ref())
            .map_err(|e| CertProblem::Malformed(e.to_string()))?;
        let mut names = Vec::new();
        let mut usages = Vec::new();
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(san) => {
                    for name in &san.general_names {
                        match name {
                            GeneralName::DNSName(d) => names.push(Name::Dns(d.to_string())),
                            GeneralName::OtherName(oid, value) => {
                                if let Some(n) = other_name(&oid.to_id_string(), value) {
                                    names.push(n);
                                }
                            }
                            _ => {}
                        }
                    }
                }
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    if eku.server_auth {
                        usages.push("serverAuth");
                    }
                    if eku.client_auth {
                        usages.push("clientAuth");
                    }
                }
                _ => {}
            }
        }
        let time = |t: ASN1Time| {
            t.to_datetime()
                .format(&::time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| t.to_string())
        };
        Ok(LeafInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            self_signed: cert.subject().as_raw() == cert.issuer().as_raw(),
            not_before: time(cert.validity().not_before),
            not_after: time(cert.validity().not_after),
            names,
            usages,
        })
    }
}

/// An otherName's value: `[0] EXPLICIT` around a UTF8String (xmppAddr) or IA5String (SRVName).
fn other_name(oid: &str, value: &[u8]) -> Option<Name> {
    let kind: fn(String) -> Name = match oid {
        OID_XMPP_ADDR => Name::XmppAddr,
        OID_SRV_NAME => Name::Srv,
        _ => return None,
    };
    // x509-parser hands the raw `[0]` content; it may still carry its explicit tag.
    let (_, inner) = x509_parser::der_parser::der::parse_der(value).ok()?;
    let inner = match inner.content {
        x509_parser::der_parser::ber::BerObjectContent::Unknown(ref any) => {
            x509_parser::der_parser::der::parse_der(any.data).ok()?.1
        }
        _ => inner,
    };
    let text = inner.as_str().ok()?;
    Some(kind(text.to_owned()))
}

/// Whether one of `names` is `domain` (ASCII case-insensitive).
pub fn names_match(names: &[Name], domain: &str) -> bool {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    names.iter().any(|name| match name {
        Name::Dns(pattern) => dns_matches(&pattern.to_ascii_lowercase(), &domain),
        Name::XmppAddr(addr) => addr.to_ascii_lowercase() == domain,
        Name::Srv(srv) => srv
            .to_ascii_lowercase()
            .strip_prefix("_xmpp-server.")
            .is_some_and(|d| d == domain),
    })
}

/// RFC 6125 §6.4.3: `*` only as the whole leftmost label, matching exactly one label.
fn dns_matches(pattern: &str, domain: &str) -> bool {
    let pattern = pattern.trim_end_matches('.');
    match pattern.strip_prefix("*.") {
        Some(rest) => domain
            .split_once('.')
            .is_some_and(|(label, tail)| !label.is_empty() && tail == rest && rest.contains('.')),
        None => pattern == domain,
    }
}

/// Accepts any certificate during the handshake (signatures still checked), for
/// [`Trust::check`] to judge afterwards.
#[derive(Debug)]
struct AcceptForLater(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptForLater {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for AcceptForLater {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        // Without a certificate the peer can still use dialback.
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6125 §6.4.3: a wildcard covers exactly one leftmost label.
    #[test]
    fn wildcards() {
        assert!(dns_matches("*.example.org", "xmpp.example.org"));
        assert!(!dns_matches("*.example.org", "example.org"));
        assert!(!dns_matches("*.example.org", "a.b.example.org"));
        assert!(!dns_matches("*.org", "example.org"));
        assert!(dns_matches("example.org.", "example.org"));
        assert!(!dns_matches("x*.example.org", "xa.example.org"));
    }

    /// RFC 6120 §13.7.1.4 (xmppAddr) and RFC 7712 §3 (SRV-ID `_xmpp-server.`), not
    /// `_xmpp-client.`.
    #[test]
    fn other_names() {
        let names = [
            Name::XmppAddr("a.example".into()),
            Name::Srv("_xmpp-server.b.example".into()),
            Name::Srv("_xmpp-client.c.example".into()),
        ];
        assert!(names_match(&names, "A.example"));
        assert!(names_match(&names, "b.example"));
        assert!(!names_match(&names, "c.example"));
    }
}
