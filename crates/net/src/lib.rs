//! starling-net: Starling's network layer.
//!
//! # TLS material ([`TlsManager`])
//!
//! Procedure:
//! 1. [`TlsManager::load`] reads, for every configured host, a PEM certificate chain (leaf first,
//!    e.g. certbot's `fullchain.pem`) and a PEM private key (PKCS#8, PKCS#1 or SEC1). A host with
//!    neither gets `<data_dir>/certs/<domain>.crt|.key`, generated self-signed on first start
//!    and reused afterwards. Each key is checked against its leaf certificate.
//! 2. From that it builds, once, one `rustls::ServerConfig` per host for STARTTLS (certificate by
//!    SNI if known, else that host's) and the configs for direct TLS (XEP-0368; by SNI, else the
//!    first host's). Every config uses the `ring` provider explicitly and TLS 1.3/1.2 only, so
//!    nothing depends on a process-wide default provider. Per connection the caller only clones
//!    an `Arc<ServerConfig>`.
//! 3. [`TlsManager::reload`] (SIGHUP) rebuilds everything from disk and swaps it in as a whole;
//!    on any error the previous material stays for all hosts.
//! 4. Channel bindings: [`TlsManager::server_end_point`] (RFC 5929 `tls-server-end-point`,
//!    precomputed) and [`tls_exporter`] (RFC 9266 `tls-exporter`, TLS 1.3 only).
//!
//! Hazards:
//! - ALPN: rustls aborts the handshake (`no_application_protocol`) when the server has an ALPN
//!   list and the client offered only other protocols. [`TlsManager::direct_tls_config`] therefore
//!   selects no ALPN at all; "xmpp-client" is answered only through
//!   [`TlsManager::accept_direct_tls`] / [`TlsManager::direct_tls_config_for`], which look at the
//!   ClientHello first.
//! - ACME TLS-ALPN-01 (RFC 8737): a ClientHello offering `acme-tls/1` with an SNI whose
//!   validation certificate is pending in [`TlsManager::acme_validations`] gets that certificate
//!   and `acme-tls/1` from [`TlsManager::accept_direct_tls`]; every caller must then close the
//!   connection without serving it ([`is_acme_validation`]). Every other ClientHello is
//!   unaffected.
//! - `server_end_point` describes the certificate currently loaded: after a reload it no longer
//!   matches connections made before. Capture it right after the handshake. Each reload also
//!   starts fresh session caches, so no session is resumed across a certificate change.
//! - `tls_exporter` returns `None` for TLS 1.2: without the extended master secret (which rustls
//!   does not report) the binding is unsafe (RFC 9266 §3, RFC 7627).
//! - Loading is blocking (file I/O, key generation): do it at startup or in `spawn_blocking`.
//! - The domain names files under `data_dir`; it must be a DNS name or IP literal (no `/`, no
//!   empty labels), otherwise loading fails.
//! - Self-signed keys are written with mode 0600 in a 0700 directory (Unix). User-supplied key
//!   files are read as they are; their permissions are the administrator's business.

pub mod tls;

pub use tls::{
    ALPN_ACME_TLS, AcmeValidations, HostTls, TlsError, TlsManager, is_acme_validation,
    managed_certificate_paths, tls_exporter,
};
