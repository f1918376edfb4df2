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
mod archive_suite;
mod blocking_suite;
mod fast_suite;
mod invite_suite;
mod muc_suite;
mod offline_suite;
mod private_suite;
mod pubsub_suite;
mod push_suite;
mod room_archive_suite;
mod roster_suite;
mod upload_suite;
mod vcard_suite;

pub use account_suite::accounts;
pub use archive_suite::archive;
pub use blocking_suite::blocking;
pub use fast_suite::fast;
pub use invite_suite::invites;
pub use muc_suite::muc;
pub use offline_suite::offline;
pub use private_suite::private;
pub use pubsub_suite::pubsub;
pub use push_suite::push;
pub use room_archive_suite::room_archive;
pub use roster_suite::rosters;
pub use upload_suite::upload;
pub use vcard_suite::vcards;

use std::fmt::Debug;

use crate::{AccountStore, StorageError};

/// The value of `res`, or a panic naming the suite and the check.
fn ok_in<T>(suite: &str, res: Result<T, StorageError>, what: &str) -> T {
    match res {
        Ok(v) => v,
        Err(e) => panic!("{suite}: {what}: unexpected error: {e} ({e:?})"),
    }
}

/// Panics, naming the suite and the check, unless `got == want`.
fn check_in<T: PartialEq + Debug>(suite: &str, got: T, want: T, what: &str) {
    assert!(got == want, "{suite}: {what}: got {got:?}, want {want:?}");
}

/// Panics, naming the suite and the check, unless `res` is the error named `want`
/// (`"NotFound"` or `"AlreadyExists"`).
fn expect_err_in<T: Debug>(suite: &str, res: Result<T, StorageError>, want: &str, what: &str) {
    let matched = matches!(
        (&res, want),
        (Err(StorageError::NotFound), "NotFound")
            | (Err(StorageError::AlreadyExists), "AlreadyExists")
    );
    assert!(matched, "{suite}: {what}: got {res:?}, want Err({want})");
}

/// A data form's fields as the stores keep them ([`crate::RoomConfig`],
/// [`crate::NodeConfig`]): each variable with its values, in the order given.
fn form_fields(fields: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    fields
        .iter()
        .map(|(var, values)| {
            let values = values.iter().map(|v| (*v).to_owned()).collect();
            ((*var).to_owned(), values)
        })
        .collect()
}

/// Creates an account (without credentials) that a suite's records hang off.
async fn create_account_in(suite: &str, accounts: &dyn AccountStore, l: &str, d: &str, what: &str) {
    ok_in(
        suite,
        accounts.create_account(l, d, &[]).await,
        &format!("{what}: create account {l}@{d}"),
    );
}

/// Checks that a suite left no accounts behind.
async fn expect_no_accounts_in(suite: &str, accounts: &dyn AccountStore, what: &str) {
    let all = ok_in(suite, accounts.list_accounts(None).await, what);
    check_in(suite, all, Vec::new(), what);
}
