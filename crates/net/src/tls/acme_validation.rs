//! TLS-ALPN-01 (RFC 8737): the validation certificates of pending challenges, and the
//! certificate resolver that serves them.
//!
//! The ACME client (crate `starling-acme`) builds one self-signed certificate per name being
//! validated and puts it in [`AcmeValidations`]; the [`TlsManager`](super::TlsManager) shares the
//! table. A ClientHello offering the ALPN protocol `acme-tls/1` with an SNI in the table is
//! answered with that certificate and `acme-tls/1` selected (RFC 8737 §3); every other
//! ClientHello is served as before. Such a connection carries no application data (§4): the
//! accept paths close it after the handshake ([`is_acme_validation`]).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use rustls::ServerConnection;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The ALPN protocol of TLS-ALPN-01 validation (RFC 8737 §6.2).
pub const ALPN_ACME_TLS: &[u8] = b"acme-tls/1";

/// Validation certificates of pending TLS-ALPN-01 challenges, by the name being validated.
/// Cheap to clone (shared).
#[derive(Clone, Debug, Default)]
pub struct AcmeValidations {
    inner: Arc<RwLock<HashMap<String, Arc<CertifiedKey>>>>,
}

impl AcmeValidations {
    /// Serves `certificate` to validation handshakes for `domain` from now on.
    pub fn insert(&self, domain: &str, certificate: Arc<CertifiedKey>) {
        self.inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(normalize(domain), certificate);
    }

    /// Stops serving a validation certificate for `domain`.
    pub fn remove(&self, domain: &str) {
        self.inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&normalize(domain));
    }

    /// The validation certificate pending for `domain` (an SNI), if any.
    pub fn get(&self, domain: &str) -> Option<Arc<CertifiedKey>> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&normalize(domain))
            .cloned()
    }

    /// Whether a validation certificate is pending for `domain`.
    pub fn contains(&self, domain: &str) -> bool {
        let map = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        // The common case, no challenge pending, takes no allocation.
        !map.is_empty() && map.contains_key(&normalize(domain))
    }

    /// How many validation certificates are pending.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// No validation is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this ClientHello is a TLS-ALPN-01 validation to answer: it offers `acme-tls/1`
    /// (RFC 8737 §3: the CA offers that protocol alone) and its SNI names a pending validation.
    pub(crate) fn wants(&self, client_hello: &ClientHello<'_>) -> bool {
        let offers_acme = client_hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ALPN_ACME_TLS));
        offers_acme
            && client_hello
                .server_name()
                .is_some_and(|name| self.contains(name))
    }
}

/// Whether `conn` completed a TLS-ALPN-01 validation handshake (`acme-tls/1` negotiated). Such a
/// connection must be closed at once, never served (RFC 8737 §4: the protocol carries no
/// application data).
pub fn is_acme_validation(conn: &ServerConnection) -> bool {
    conn.alpn_protocol() == Some(ALPN_ACME_TLS)
}

/// Serves the pending validation certificate named by the SNI; nothing (the handshake fails)
/// when there is none, e.g. the validation ended between ClientHello and resolution.
#[derive(Debug)]
pub(crate) struct ValidationResolver(pub(crate) AcmeValidations);

impl ResolvesServerCert for ValidationResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        client_hello.server_name().and_then(|name| self.0.get(name))
    }
}

/// ASCII lowercase, without a trailing dot.
fn normalize(domain: &str) -> String {
    domain
        .strip_suffix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase()
}
