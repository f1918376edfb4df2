//! TLS material management: see the crate documentation.

mod acme_validation;
mod any_cert;
mod end_point;
mod error;
mod manager;

pub use acme_validation::{ALPN_ACME_TLS, AcmeValidations, is_acme_validation};
pub use any_cert::AcceptAnyCert;
pub use error::{FileKind, TlsError};
pub use manager::{ALPN_XMPP_CLIENT, HostTls, TlsManager, managed_certificate_paths, tls_exporter};
