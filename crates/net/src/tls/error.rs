//! Errors of TLS material loading.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Which kind of file an error is about; shown at the start of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A PEM certificate chain.
    Certificate,
    /// A PEM private key.
    Key,
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Certificate => "certificate",
            FileKind::Key => "key",
        })
    }
}

/// Why TLS material could not be loaded. Messages name the file and the problem,
/// e.g. `certificate /etc/x/fullchain.pem: no certificates found`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The host list is empty: there is no certificate to serve.
    #[error("no hosts configured for TLS")]
    NoHosts,
    /// A host's domain is not usable as a DNS name (or IP address).
    #[error("host {0:?}: not a valid domain name")]
    InvalidDomain(String),
    /// The same domain appears twice in the host list.
    #[error("host {0}: listed more than once")]
    DuplicateDomain(String),
    /// [`TlsManager::install_managed`](crate::TlsManager::install_managed) for a domain that is
    /// no host.
    #[error("{0}: not a host")]
    UnknownHost(String),
    /// [`TlsManager::install_managed`](crate::TlsManager::install_managed) for a host whose
    /// certificate files are configured: they are the operator's.
    #[error("host {0}: its certificate files are configured, not managed by the server")]
    NotManaged(String),
    /// Only one of `certificate` / `key` was configured.
    #[error("host {0}: certificate and key must be configured together")]
    IncompleteHost(String),
    /// The file could not be read.
    #[error("{kind} {}: {source}", path.display())]
    Io {
        /// Certificate or key.
        kind: FileKind,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file is not valid PEM.
    #[error("{kind} {}: invalid PEM: {source}", path.display())]
    Pem {
        /// Certificate or key.
        kind: FileKind,
        /// The file.
        path: PathBuf,
        /// The PEM error.
        source: rustls_pki_types::pem::Error,
    },
    /// The certificate file holds no `CERTIFICATE` section.
    #[error("certificate {}: no certificates found", path.display())]
    NoCertificates {
        /// The file.
        path: PathBuf,
    },
    /// The leaf certificate could not be parsed.
    #[error("certificate {}: invalid certificate: {source}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What rustls/webpki said.
        source: rustls::Error,
    },
    /// The key file holds no unencrypted PKCS#8, PKCS#1 or SEC1 key.
    #[error(
        "key {}: no private key found (expected an unencrypted PKCS#8, PKCS#1 or SEC1 PEM key)",
        path.display()
    )]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The key is of a type the crypto provider cannot sign with, or is malformed.
    #[error("key {}: unsupported or invalid private key: {source}", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What the crypto provider said.
        source: rustls::Error,
    },
    /// The private key is not the one certified by the leaf certificate.
    #[error("key {}: does not match certificate {}", key.display(), certificate.display())]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        certificate: PathBuf,
    },
    /// Generating the self-signed default certificate failed.
    #[error("host {domain}: generating self-signed certificate: {source}")]
    Generate {
        /// The host.
        domain: String,
        /// The rcgen error.
        source: rcgen::Error,
    },
    /// Writing the self-signed default certificate or key (or its directory) failed.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// rustls refused the configuration.
    #[error("building TLS configuration: {0}")]
    Config(#[source] rustls::Error),
}
