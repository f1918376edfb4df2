//! Conformance test suite every storage backend must pass.
//!
//! Each function takes a **fresh, empty** store of one concern, exercises the
//! whole contract of its trait and panics with a message naming the failed
//! check. Call it from a backend's tests:
//!
//! ```ignore
//! #[tokio::test]
//! async fn conformance() {
//!     let storage = MyBackend::open_temporary().await.unwrap();
//!     starling_storage::conformance::accounts(&*storage.stores().accounts).await;
//! }
//! ```
//!
//! The suite is ordinary library code (no test harness), so it needs no
//! particular async runtime.

mod account_suite;
mod offline_suite;
mod roster_suite;
mod vcard_suite;

pub use account_suite::accounts;
pub use offline_suite::offline;
pub use roster_suite::rosters;
pub use vcard_suite::vcards;
