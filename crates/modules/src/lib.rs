//! Starling's feature modules, one folder per RFC section or XEP. Each declares what it handles in
//! `register`; none knows about sessions, sockets or another module's internals.

pub mod disco;
pub mod ping;
pub mod presence;
pub mod roster;
pub mod subscription;

use std::sync::Arc;

use starling_module_api::Module;

/// The modules a server runs by default.
pub fn default_modules() -> Vec<Arc<dyn Module>> {
    // The roster and presence modules share the roster service (interested resources, the
    // per-account change lock, pushes).
    let rosters = Arc::new(roster::RosterService::default());
    vec![
        Arc::new(disco::Disco),
        Arc::new(ping::Ping),
        Arc::new(roster::Roster::new(rosters.clone())),
        Arc::new(presence::Presence::new(rosters)),
    ]
}
