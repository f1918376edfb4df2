//! Conformance suite for [`UploadStore`].

use std::fmt::Debug;

use crate::{AccountStore, StorageError, UploadSlot, UploadStore};

/// Runs the [`UploadStore`] conformance suite against `upload`, with `accounts` of the same
/// backend (slots reference no account: deleting one leaves them).
///
/// The store must hold no slots and no accounts; the suite deletes what it made.
///
/// # Panics
///
/// On the first violated expectation, with a message naming the section and check.
pub async fn upload(accounts: &dyn AccountStore, upload: &dyn UploadStore) {
    super::expect_no_accounts_in(PREFIX, accounts, "precondition: the store must be empty").await;
    reserve_and_quota(upload).await;
    complete_once(upload).await;
    expiry(upload).await;
    account_deletion_leaves_slots(accounts, upload).await;
    super::expect_no_accounts_in(PREFIX, accounts, "postcondition").await;
}

const PREFIX: &str = "conformance::upload";

fn ok<T>(res: Result<T, StorageError>, what: &str) -> T {
    super::ok_in(PREFIX, res, what)
}

fn check<T: PartialEq + Debug>(got: T, want: T, what: &str) {
    super::check_in(PREFIX, got, want, what);
}

fn slot(id: &str, owner: &str, size: u64, created_at: i64) -> UploadSlot {
    UploadSlot {
        id: id.to_owned(),
        owner: owner.to_owned(),
        filename: format!("{id} „ü“.jpg"),
        size,
        content_type: Some("image/jpeg".to_owned()),
        created_at,
        completed: false,
    }
}

async fn delete_all(upload: &dyn UploadStore, ids: &[&str], what: &str) {
    for id in ids {
        check(
            ok(upload.delete(id).await, what),
            true,
            &format!("{what}: delete {id}"),
        );
    }
}

async fn reserve_and_quota(upload: &dyn UploadStore) {
    let s = "reserve and quota";
    let alice = "alice@example.org";
    let a = slot("a1", alice, 600, 100);
    check(
        ok(upload.reserve(&a, 1000).await, s),
        true,
        &format!("{s}: first"),
    );
    check(
        ok(upload.slot("a1").await, s),
        Some(a.clone()),
        &format!("{s}: read back"),
    );
    check(
        ok(upload.slot("nope").await, s),
        None,
        &format!("{s}: unknown id"),
    );
    // 600 + 500 > 1000: refused, and nothing recorded.
    let b = slot("a2", alice, 500, 101);
    check(
        ok(upload.reserve(&b, 1000).await, s),
        false,
        &format!("{s}: over quota"),
    );
    check(
        ok(upload.slot("a2").await, s),
        None,
        &format!("{s}: refused not stored"),
    );
    // Exactly at the quota passes.
    let b = slot("a2", alice, 400, 101);
    check(
        ok(upload.reserve(&b, 1000).await, s),
        true,
        &format!("{s}: up to quota"),
    );
    check(ok(upload.used(alice).await, s), 1000, &format!("{s}: used"));
    // Another owner has a quota of its own; no content type is kept as none.
    let mut c = slot("b1", "bob@example.org", 900, 102);
    c.content_type = None;
    // `completed` given as true is recorded as false.
    c.completed = true;
    check(
        ok(upload.reserve(&c, 1000).await, s),
        true,
        &format!("{s}: other owner"),
    );
    c.completed = false;
    check(
        ok(upload.slot("b1").await, s),
        Some(c.clone()),
        &format!("{s}: no type"),
    );
    // A taken id.
    let dup = slot("a1", "bob@example.org", 1, 103);
    let res = upload.reserve(&dup, 1000).await;
    super::expect_err_in(PREFIX, res, "AlreadyExists", &format!("{s}: same id"));
    check(
        ok(upload.slots_of(alice).await, s),
        vec![a.clone(), b.clone()],
        &format!("{s}: slots of alice"),
    );
    check(
        ok(upload.used("carol@example.org").await, s),
        0,
        &format!("{s}: nobody's"),
    );
    delete_all(upload, &["a1", "a2", "b1"], s).await;
    check(
        ok(upload.delete("a1").await, s),
        false,
        &format!("{s}: deleted twice"),
    );
    check(
        ok(upload.used(alice).await, s),
        0,
        &format!("{s}: none left"),
    );
}

async fn complete_once(upload: &dyn UploadStore) {
    let s = "complete once";
    let a = slot("c1", "alice@example.org", 10, 100);
    check(ok(upload.reserve(&a, 100).await, s), true, s);
    check(
        ok(upload.complete("c1").await, s),
        true,
        &format!("{s}: first"),
    );
    check(
        ok(upload.complete("c1").await, s),
        false,
        &format!("{s}: second"),
    );
    check(
        ok(upload.complete("zz").await, s),
        false,
        &format!("{s}: unknown"),
    );
    let got = ok(upload.slot("c1").await, s).map(|x| x.completed);
    check(got, Some(true), &format!("{s}: read back"));
    // A completed slot still counts.
    check(
        ok(upload.used("alice@example.org").await, s),
        10,
        &format!("{s}: used"),
    );
    delete_all(upload, &["c1"], s).await;
}

async fn expiry(upload: &dyn UploadStore) {
    let s = "expiry";
    let o = "alice@example.org";
    for (id, at, done) in [
        ("e1", 10, true),
        ("e2", 20, false),
        ("e3", 30, true),
        ("e4", 40, false),
    ] {
        check(
            ok(upload.reserve(&slot(id, o, 1, at), 100).await, s),
            true,
            s,
        );
        if done {
            check(ok(upload.complete(id).await, s), true, s);
        }
    }
    let ids = |v: Vec<UploadSlot>| v.into_iter().map(|x| x.id).collect::<Vec<_>>();
    // Completed before 31, pending before 21: e1, e2, e3 (oldest first).
    check(
        ids(ok(upload.expired(Some(31), 21, 10).await, s)),
        vec!["e1", "e2", "e3"]
            .into_iter()
            .map(str::to_owned)
            .collect(),
        &format!("{s}: both kinds"),
    );
    check(
        ids(ok(upload.expired(Some(31), 21, 2).await, s)),
        vec!["e1".to_owned(), "e2".to_owned()],
        &format!("{s}: limit"),
    );
    // Completed files kept for ever: only pending ones.
    check(
        ids(ok(upload.expired(None, 41, 10).await, s)),
        vec!["e2".to_owned(), "e4".to_owned()],
        &format!("{s}: keep completed"),
    );
    check(
        ids(ok(upload.expired(Some(10), 20, 10).await, s)),
        Vec::<String>::new(),
        &format!("{s}: bounds are exclusive"),
    );
    delete_all(upload, &["e1", "e2", "e3", "e4"], s).await;
}

async fn account_deletion_leaves_slots(accounts: &dyn AccountStore, upload: &dyn UploadStore) {
    let s = "account deletion";
    super::create_account_in(PREFIX, accounts, "alice", "example.org", s).await;
    check(
        ok(
            upload
                .reserve(&slot("d1", "alice@example.org", 5, 1), 100)
                .await,
            s,
        ),
        true,
        s,
    );
    ok(accounts.delete_account("alice", "example.org").await, s);
    // The service deletes the files first: the rows stay until it does.
    check(
        ok(upload.slots_of("alice@example.org").await, s).len(),
        1,
        &format!("{s}: slot kept"),
    );
    delete_all(upload, &["d1"], s).await;
}
