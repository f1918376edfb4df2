//! `starling-bench`: a raw-XMPP load generator on tokio for any XMPP server (Starling, Prosody,
//! ejabberd), with scenarios among which: login storm, idle hold (server RSS per connection), chat
//! (throughput and end-to-end latency), presence and PEP fan-out, and hostile shapes (server CPU,
//! RSS and bytes delivered against the bytes an attacker sends). See `starling-bench --help` and
//! BENCHMARKS.md. Clients speak raw XMPP over TCP (plain or STARTTLS) or over a WebSocket
//! (RFC 7395, [`ws`]), with the same scenarios.
//!
//! Hazards it guards against:
//! - it refuses targets that are not on loopback unless told otherwise (`--allow-remote`): a
//!   load generator pointed at someone else's server by mistake is an attack;
//! - every run is bounded in users (at most [`MAX_USERS`]) and in time;
//! - SCRAM salted passwords are cached between runs ([`cache`]) so that the generator's PBKDF2
//!   does not hide the server's cost; the generator's own CPU is reported next to the server's.

pub mod cache;
pub mod procstat;
pub mod report;
pub mod scenario;
pub mod stats;
pub mod ws;
pub mod xmpp;

/// The most users one run may drive.
pub const MAX_USERS: u64 = 100_000;
