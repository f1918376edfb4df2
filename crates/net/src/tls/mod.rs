//! TLS material management: see the crate documentation.

mod any_cert;
mod end_point;
mod error;
mod manager;

pub use any_cert::AcceptAnyCert;
pub use error::{FileKind, TlsError};
pub use manager::{ALPN_XMPP_CLIENT, HostTls, TlsManager, managed_certificate_paths, tls_exporter};
