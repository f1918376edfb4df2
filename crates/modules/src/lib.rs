//! Starling's feature modules, one folder per RFC section or XEP. Each declares what it handles in
//! `register`; none knows about sessions, sockets or another module's internals.

pub mod disco;
pub mod ping;

use std::sync::Arc;

use starling_module_api::Module;

/// The modules a server runs by default.
pub fn default_modules() -> Vec<Arc<dyn Module>> {
    vec![Arc::new(disco::Disco), Arc::new(ping::Ping)]
}
