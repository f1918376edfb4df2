//! Starling's wiring: from a validated configuration to a running server, and the operator's
//! commands that share its storage. The binary (`main.rs`) is only the command line on top.

pub mod acme;
#[cfg(unix)]
pub mod control;
mod http_routes;
pub mod import;
pub mod invite;
pub mod metrics;
pub mod server;
pub mod xep0227;

pub use server::{RunningServer, ServerError, start};
