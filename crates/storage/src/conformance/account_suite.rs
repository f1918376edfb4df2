//! Conformance suite for [`AccountStore`].

use std::fmt::Debug;

use crate::{AccountStore, Credential, NewAccount, StorageError};

/// Runs the [`AccountStore`] conformance suite against `store`.
///
/// `store` must be empty; every section removes what it created, so the store
/// is empty again when this returns.
///
/// # Panics
///
/// On the first violated expectation, with a message naming the section and
/// check.
pub async fn accounts(store: &dyn AccountStore) {
    expect_empty(store, "precondition: the store must be empty").await;
    round_trip(store).await;
    duplicate_create(store).await;
    set_credentials_replaces(store).await;
    unknown_account(store).await;
    delete(store).await;
    list(store).await;
    same_localpart_two_domains(store).await;
    non_ascii(store).await;
    binary_values(store).await;
    atomic_on_duplicate_mechanism(store).await;
    bulk_create(store).await;
    bulk_create_is_atomic(store).await;
    bulk_create_large(store).await;
    disabled(store).await;
    expect_empty(store, "postcondition").await;
}

fn cred(mechanism: &str, seed: u8, iterations: u32) -> Credential {
    let key_len = match mechanism {
        "SCRAM-SHA-1" => 20,
        "SCRAM-SHA-256" => 32,
        _ => 64,
    };
    Credential {
        mechanism: mechanism.to_owned(),
        salt: vec![seed; 16],
        iterations,
        stored_key: (0..key_len).map(|i| seed.wrapping_add(i)).collect(),
        server_key: (0..key_len).map(|i| seed.wrapping_mul(3) ^ i).collect(),
    }
}

const PREFIX: &str = "conformance::accounts";

fn ok<T>(res: Result<T, StorageError>, what: &str) -> T {
    super::ok_in(PREFIX, res, what)
}

fn check<T: PartialEq + Debug>(got: T, want: T, what: &str) {
    super::check_in(PREFIX, got, want, what);
}

fn check_cred(got: Option<Credential>, want: Option<&Credential>, what: &str) {
    // Compare field by field: Credential's Debug redacts the keys.
    let show = |c: &Option<Credential>| {
        c.as_ref().map(|c| {
            (
                c.mechanism.clone(),
                c.salt.clone(),
                c.iterations,
                c.stored_key.clone(),
                c.server_key.clone(),
            )
        })
    };
    check(show(&got), show(&want.cloned()), what);
}

fn check_err(res: Result<(), StorageError>, want: &StorageError, what: &str) {
    let matched = matches!(
        (&res, want),
        (
            Err(StorageError::AlreadyExists),
            StorageError::AlreadyExists
        ) | (Err(StorageError::NotFound), StorageError::NotFound)
            | (Err(StorageError::Backend(_)), StorageError::Backend(_))
    );
    assert!(matched, "{PREFIX}: {what}: got {res:?}, want Err({want:?})");
}

async fn expect_empty(store: &dyn AccountStore, what: &str) {
    let all = ok(store.list_accounts(None).await, what);
    check(all, Vec::new(), what);
}

/// Deletes `accounts`, checking on the way that a deleted account's
/// credentials are really gone: re-created, it must have none.
async fn cleanup(store: &dyn AccountStore, accounts: &[(&str, &str)], section: &str) {
    for (l, d) in accounts {
        let what = format!("{section}: cleanup {l}@{d}");
        ok(store.delete_account(l, d).await, &format!("{what}: delete"));
        ok(
            store.create_account(l, d, &[]).await,
            &format!("{what}: re-create"),
        );
        for mech in ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
            check_cred(
                ok(store.credential(l, d, mech).await, &what),
                None,
                &format!(
                    "{what}: re-created account inherited the deleted one's {mech} credential (delete must cascade)"
                ),
            );
        }
        ok(
            store.delete_account(l, d).await,
            &format!("{what}: delete again"),
        );
    }
    expect_empty(store, &format!("{section}: empty after cleanup")).await;
}

async fn round_trip(store: &dyn AccountStore) {
    let s = "round trip";
    let sha1 = cred("SCRAM-SHA-1", 1, 4096);
    let sha256 = cred("SCRAM-SHA-256", 2, 8192);
    let sha512 = cred("SCRAM-SHA-512", 3, 10000);
    check(
        ok(store.account_exists("alice", "example.org").await, s),
        false,
        "round trip: exists before create",
    );
    ok(
        store
            .create_account(
                "alice",
                "example.org",
                &[sha1.clone(), sha256.clone(), sha512.clone()],
            )
            .await,
        "round trip: create",
    );
    check(
        ok(store.account_exists("alice", "example.org").await, s),
        true,
        "round trip: exists after create",
    );
    for c in [&sha1, &sha256, &sha512] {
        check_cred(
            ok(
                store.credential("alice", "example.org", &c.mechanism).await,
                s,
            ),
            Some(c),
            &format!("round trip: credential {}", c.mechanism),
        );
    }
    for mech in ["PLAIN", "SCRAM-SHA-1-PLUS", "scram-sha-1", ""] {
        check_cred(
            ok(store.credential("alice", "example.org", mech).await, s),
            None,
            &format!("round trip: no credential for mechanism {mech:?}"),
        );
    }
    check(
        ok(store.account_exists("bob", "example.org").await, s),
        false,
        "round trip: other localpart does not exist",
    );
    check(
        ok(store.account_exists("alice", "example.com").await, s),
        false,
        "round trip: other domain does not exist",
    );
    check(
        ok(store.account_exists("Alice", "example.org").await, s),
        false,
        "round trip: lookups are byte-exact (no case folding)",
    );
    check_cred(
        ok(
            store.credential("bob", "example.org", "SCRAM-SHA-1").await,
            s,
        ),
        None,
        "round trip: credential of unknown account",
    );
    check(
        ok(store.list_accounts(None).await, s),
        vec![("alice".to_owned(), "example.org".to_owned())],
        "round trip: list",
    );

    // An account without credentials is allowed (it cannot log in).
    ok(
        store.create_account("nocreds", "example.org", &[]).await,
        "round trip: create without credentials",
    );
    check(
        ok(store.account_exists("nocreds", "example.org").await, s),
        true,
        "round trip: credential-less account exists",
    );
    check_cred(
        ok(
            store
                .credential("nocreds", "example.org", "SCRAM-SHA-1")
                .await,
            s,
        ),
        None,
        "round trip: credential-less account has no credential",
    );

    cleanup(
        store,
        &[("alice", "example.org"), ("nocreds", "example.org")],
        s,
    )
    .await;
}

async fn duplicate_create(store: &dyn AccountStore) {
    let s = "duplicate create";
    let original = cred("SCRAM-SHA-256", 10, 4096);
    ok(
        store
            .create_account("alice", "example.org", std::slice::from_ref(&original))
            .await,
        "duplicate create: first create",
    );
    check_err(
        store
            .create_account("alice", "example.org", &[cred("SCRAM-SHA-256", 11, 1)])
            .await,
        &StorageError::AlreadyExists,
        "duplicate create: second create",
    );
    check_err(
        store.create_account("alice", "example.org", &[]).await,
        &StorageError::AlreadyExists,
        "duplicate create: second create without credentials",
    );
    check_cred(
        ok(
            store
                .credential("alice", "example.org", "SCRAM-SHA-256")
                .await,
            s,
        ),
        Some(&original),
        "duplicate create: original credential untouched",
    );
    // Uniqueness is byte-exact: a different case is a different account.
    ok(
        store.create_account("ALICE", "example.org", &[]).await,
        "duplicate create: differently-cased localpart is distinct",
    );
    check(
        ok(store.list_accounts(None).await, s),
        vec![
            ("ALICE".to_owned(), "example.org".to_owned()),
            ("alice".to_owned(), "example.org".to_owned()),
        ],
        "duplicate create: list",
    );
    cleanup(
        store,
        &[("alice", "example.org"), ("ALICE", "example.org")],
        s,
    )
    .await;
}

async fn set_credentials_replaces(store: &dyn AccountStore) {
    let s = "set_credentials";
    let sha1 = cred("SCRAM-SHA-1", 20, 4096);
    let sha256 = cred("SCRAM-SHA-256", 21, 4096);
    ok(
        store
            .create_account("alice", "example.org", &[sha1.clone(), sha256])
            .await,
        "set_credentials: create",
    );
    let new256 = cred("SCRAM-SHA-256", 22, 20000);
    let new512 = cred("SCRAM-SHA-512", 23, 30000);
    ok(
        store
            .set_credentials("alice", "example.org", &[new256.clone(), new512.clone()])
            .await,
        "set_credentials: replace",
    );
    check_cred(
        ok(
            store
                .credential("alice", "example.org", "SCRAM-SHA-1")
                .await,
            s,
        ),
        None,
        "set_credentials: old mechanism gone",
    );
    check_cred(
        ok(
            store
                .credential("alice", "example.org", "SCRAM-SHA-256")
                .await,
            s,
        ),
        Some(&new256),
        "set_credentials: kept mechanism has the new value",
    );
    check_cred(
        ok(
            store
                .credential("alice", "example.org", "SCRAM-SHA-512")
                .await,
            s,
        ),
        Some(&new512),
        "set_credentials: added mechanism",
    );
    ok(
        store.set_credentials("alice", "example.org", &[]).await,
        "set_credentials: clear",
    );
    for mech in ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        check_cred(
            ok(store.credential("alice", "example.org", mech).await, s),
            None,
            &format!("set_credentials: {mech} gone after clearing"),
        );
    }
    check(
        ok(store.account_exists("alice", "example.org").await, s),
        true,
        "set_credentials: clearing keeps the account",
    );
    ok(
        store
            .set_credentials("alice", "example.org", std::slice::from_ref(&sha1))
            .await,
        "set_credentials: set again",
    );
    check_cred(
        ok(
            store
                .credential("alice", "example.org", "SCRAM-SHA-1")
                .await,
            s,
        ),
        Some(&sha1),
        "set_credentials: set again round trip",
    );
    cleanup(store, &[("alice", "example.org")], s).await;
}

async fn unknown_account(store: &dyn AccountStore) {
    let s = "unknown account";
    check_err(
        store
            .set_credentials("ghost", "example.org", &[cred("SCRAM-SHA-1", 30, 4096)])
            .await,
        &StorageError::NotFound,
        "unknown account: set_credentials",
    );
    check(
        ok(store.account_exists("ghost", "example.org").await, s),
        false,
        "unknown account: set_credentials must not create it",
    );
    check_cred(
        ok(
            store
                .credential("ghost", "example.org", "SCRAM-SHA-1")
                .await,
            s,
        ),
        None,
        "unknown account: set_credentials must not store a credential",
    );
    check_err(
        store.delete_account("ghost", "example.org").await,
        &StorageError::NotFound,
        "unknown account: delete",
    );
    expect_empty(store, "unknown account: store still empty").await;
}

async fn delete(store: &dyn AccountStore) {
    let s = "delete";
    let sha1 = cred("SCRAM-SHA-1", 40, 4096);
    let sha256 = cred("SCRAM-SHA-256", 41, 4096);
    ok(
        store
            .create_account("alice", "example.org", &[sha1, sha256])
            .await,
        "delete: create alice",
    );
    let bob = cred("SCRAM-SHA-1", 42, 4096);
    ok(
        store
            .create_account("bob", "example.org", std::slice::from_ref(&bob))
            .await,
        "delete: create bob",
    );
    ok(
        store.delete_account("alice", "example.org").await,
        "delete: delete alice",
    );
    check(
        ok(store.account_exists("alice", "example.org").await, s),
        false,
        "delete: alice gone",
    );
    for mech in ["SCRAM-SHA-1", "SCRAM-SHA-256"] {
        check_cred(
            ok(store.credential("alice", "example.org", mech).await, s),
            None,
            &format!("delete: alice's {mech} credential gone"),
        );
    }
    check_err(
        store.delete_account("alice", "example.org").await,
        &StorageError::NotFound,
        "delete: deleting twice",
    );
    check_err(
        store
            .set_credentials("alice", "example.org", &[cred("SCRAM-SHA-1", 43, 1)])
            .await,
        &StorageError::NotFound,
        "delete: set_credentials after delete",
    );
    // Others are untouched.
    check_cred(
        ok(
            store.credential("bob", "example.org", "SCRAM-SHA-1").await,
            s,
        ),
        Some(&bob),
        "delete: bob's credential untouched",
    );
    // Re-creating starts from nothing: no credential survives the delete.
    ok(
        store.create_account("alice", "example.org", &[]).await,
        "delete: re-create alice",
    );
    for mech in ["SCRAM-SHA-1", "SCRAM-SHA-256"] {
        check_cred(
            ok(store.credential("alice", "example.org", mech).await, s),
            None,
            &format!("delete: re-created alice has no old {mech} credential"),
        );
    }
    cleanup(
        store,
        &[("alice", "example.org"), ("bob", "example.org")],
        s,
    )
    .await;
}

async fn list(store: &dyn AccountStore) {
    let s = "list";
    // Created out of order on purpose.
    let accounts = [
        ("mallory", "b.example"),
        ("alice", "b.example"),
        ("zed", "a.example"),
        ("alice", "a.example"),
        ("bob", "c.example"),
        ("carol", "a.example"),
    ];
    for (l, d) in accounts {
        ok(
            store.create_account(l, d, &[]).await,
            &format!("list: create {l}@{d}"),
        );
    }
    let owned = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(l, d)| ((*l).to_owned(), (*d).to_owned()))
            .collect()
    };
    check(
        ok(store.list_accounts(None).await, s),
        owned(&[
            ("alice", "a.example"),
            ("alice", "b.example"),
            ("bob", "c.example"),
            ("carol", "a.example"),
            ("mallory", "b.example"),
            ("zed", "a.example"),
        ]),
        "list: all, sorted by localpart then domain",
    );
    check(
        ok(store.list_accounts(Some("a.example")).await, s),
        owned(&[
            ("alice", "a.example"),
            ("carol", "a.example"),
            ("zed", "a.example"),
        ]),
        "list: a.example",
    );
    check(
        ok(store.list_accounts(Some("b.example")).await, s),
        owned(&[("alice", "b.example"), ("mallory", "b.example")]),
        "list: b.example",
    );
    check(
        ok(store.list_accounts(Some("nowhere.example")).await, s),
        Vec::new(),
        "list: unknown domain",
    );
    check(
        ok(store.list_accounts(Some("example")).await, s),
        Vec::new(),
        "list: domain filter is exact, not a suffix match",
    );
    cleanup(store, &accounts, s).await;
}

async fn same_localpart_two_domains(store: &dyn AccountStore) {
    let s = "two domains";
    let org = cred("SCRAM-SHA-256", 50, 4096);
    let net = cred("SCRAM-SHA-256", 51, 5000);
    ok(
        store
            .create_account("alice", "example.org", std::slice::from_ref(&org))
            .await,
        "two domains: create alice@example.org",
    );
    ok(
        store
            .create_account("alice", "example.net", std::slice::from_ref(&net))
            .await,
        "two domains: create alice@example.net (must not be AlreadyExists)",
    );
    check_cred(
        ok(
            store
                .credential("alice", "example.org", "SCRAM-SHA-256")
                .await,
            s,
        ),
        Some(&org),
        "two domains: example.org credential",
    );
    check_cred(
        ok(
            store
                .credential("alice", "example.net", "SCRAM-SHA-256")
                .await,
            s,
        ),
        Some(&net),
        "two domains: example.net credential",
    );
    let net2 = cred("SCRAM-SHA-256", 52, 6000);
    ok(
        store
            .set_credentials("alice", "example.net", std::slice::from_ref(&net2))
            .await,
        "two domains: set_credentials on example.net",
    );
    check_cred(
        ok(
            store
                .credential("alice", "example.org", "SCRAM-SHA-256")
                .await,
            s,
        ),
        Some(&org),
        "two domains: example.org credential unaffected by set_credentials",
    );
    ok(
        store.delete_account("alice", "example.org").await,
        "two domains: delete alice@example.org",
    );
    check(
        ok(store.account_exists("alice", "example.net").await, s),
        true,
        "two domains: alice@example.net survives",
    );
    check_cred(
        ok(
            store
                .credential("alice", "example.net", "SCRAM-SHA-256")
                .await,
            s,
        ),
        Some(&net2),
        "two domains: example.net credential survives",
    );
    cleanup(store, &[("alice", "example.net")], s).await;
}

async fn non_ascii(store: &dyn AccountStore) {
    let s = "non-ASCII";
    let accounts = [
        ("zz", "example.org"),
        ("zoë", "example.org"),
        ("日本語", "example.org"),
        ("émile", "example.org"),
        ("jörg", "münchen.example"),
        ("zoe", "example.org"),
    ];
    for (i, (l, d)) in accounts.iter().enumerate() {
        let seed = u8::try_from(60 + i).unwrap_or(u8::MAX);
        ok(
            store
                .create_account(l, d, &[cred("SCRAM-SHA-256", seed, 4096)])
                .await,
            &format!("non-ASCII: create {l}@{d}"),
        );
    }
    check(
        ok(store.account_exists("zoë", "example.org").await, s),
        true,
        "non-ASCII: zoë exists",
    );
    check(
        ok(store.account_exists("jörg", "münchen.example").await, s),
        true,
        "non-ASCII: jörg@münchen.example exists",
    );
    check_cred(
        ok(
            store
                .credential("日本語", "example.org", "SCRAM-SHA-256")
                .await,
            s,
        ),
        Some(&cred("SCRAM-SHA-256", 62, 4096)),
        "non-ASCII: 日本語 credential",
    );
    // Byte order of UTF-8: 'o' (6F) < 'z' (7A) < 'é'/'ë' (C3 ..) < '日' (E6 ..).
    check(
        ok(store.list_accounts(Some("example.org")).await, s),
        vec![
            ("zoe".to_owned(), "example.org".to_owned()),
            ("zoë".to_owned(), "example.org".to_owned()),
            ("zz".to_owned(), "example.org".to_owned()),
            ("émile".to_owned(), "example.org".to_owned()),
            ("日本語".to_owned(), "example.org".to_owned()),
        ],
        "non-ASCII: list sorted by UTF-8 bytes",
    );
    check(
        ok(store.list_accounts(Some("münchen.example")).await, s),
        vec![("jörg".to_owned(), "münchen.example".to_owned())],
        "non-ASCII: list by non-ASCII domain",
    );
    cleanup(store, &accounts, s).await;
}

async fn binary_values(store: &dyn AccountStore) {
    let s = "binary values";
    let zeros = Credential {
        mechanism: "SCRAM-SHA-1".to_owned(),
        salt: vec![0, 0, 1, 0, 0xff, 0],
        iterations: u32::MAX,
        stored_key: vec![0; 20],
        server_key: vec![
            0, 0xff, 0, 0x80, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
    };
    let odd = Credential {
        mechanism: "SCRAM-SHA-256".to_owned(),
        salt: Vec::new(),
        iterations: 0,
        stored_key: (0..=255).collect(),
        server_key: vec![0xc3, 0x28, 0xa0, 0xa1], // not valid UTF-8
    };
    ok(
        store
            .create_account("bin", "example.org", &[zeros.clone(), odd.clone()])
            .await,
        "binary values: create",
    );
    check_cred(
        ok(
            store.credential("bin", "example.org", "SCRAM-SHA-1").await,
            s,
        ),
        Some(&zeros),
        "binary values: zero bytes and u32::MAX iterations survive",
    );
    check_cred(
        ok(
            store
                .credential("bin", "example.org", "SCRAM-SHA-256")
                .await,
            s,
        ),
        Some(&odd),
        "binary values: empty salt, all byte values, non-UTF-8 survive",
    );
    cleanup(store, &[("bin", "example.org")], s).await;
}

async fn atomic_on_duplicate_mechanism(store: &dyn AccountStore) {
    let s = "duplicate mechanism";
    let a = cred("SCRAM-SHA-1", 70, 4096);
    let b = cred("SCRAM-SHA-1", 71, 4096);
    check_err(
        store
            .create_account("dup", "example.org", &[a.clone(), b.clone()])
            .await,
        &StorageError::Backend("any".into()),
        "duplicate mechanism: create with the same mechanism twice fails",
    );
    check(
        ok(store.account_exists("dup", "example.org").await, s),
        false,
        "duplicate mechanism: failed create leaves no account",
    );
    let c = cred("SCRAM-SHA-256", 72, 4096);
    ok(
        store
            .create_account("dup", "example.org", std::slice::from_ref(&c))
            .await,
        "duplicate mechanism: create",
    );
    check_err(
        store.set_credentials("dup", "example.org", &[a, b]).await,
        &StorageError::Backend("any".into()),
        "duplicate mechanism: set_credentials with the same mechanism twice fails",
    );
    check_cred(
        ok(
            store
                .credential("dup", "example.org", "SCRAM-SHA-256")
                .await,
            s,
        ),
        Some(&c),
        "duplicate mechanism: failed set_credentials changes nothing",
    );
    check_cred(
        ok(
            store.credential("dup", "example.org", "SCRAM-SHA-1").await,
            s,
        ),
        None,
        "duplicate mechanism: failed set_credentials stores nothing",
    );
    cleanup(store, &[("dup", "example.org")], s).await;
}

async fn bulk_create(store: &dyn AccountStore) {
    let s = "bulk create";
    ok(store.create_accounts(&[]).await, "bulk create: empty batch");
    expect_empty(store, "bulk create: empty batch creates nothing").await;

    // Two accounts share one credential slice (the provisioning case), one
    // has its own, one has none; two domains, non-ASCII.
    let shared = [
        cred("SCRAM-SHA-1", 80, 4096),
        cred("SCRAM-SHA-256", 81, 4096),
    ];
    let own = [cred("SCRAM-SHA-512", 82, 9000)];
    let batch = [
        NewAccount {
            localpart: "zoë",
            domain: "example.org",
            creds: &shared,
        },
        NewAccount {
            localpart: "alice",
            domain: "example.org",
            creds: &own,
        },
        NewAccount {
            localpart: "alice",
            domain: "example.net",
            creds: &shared,
        },
        NewAccount {
            localpart: "nocreds",
            domain: "example.org",
            creds: &[],
        },
    ];
    ok(store.create_accounts(&batch).await, "bulk create: create");
    check(
        ok(store.list_accounts(None).await, s),
        vec![
            ("alice".to_owned(), "example.net".to_owned()),
            ("alice".to_owned(), "example.org".to_owned()),
            ("nocreds".to_owned(), "example.org".to_owned()),
            ("zoë".to_owned(), "example.org".to_owned()),
        ],
        "bulk create: list",
    );
    for a in &batch {
        for mech in ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
            check_cred(
                ok(store.credential(a.localpart, a.domain, mech).await, s),
                a.creds.iter().find(|c| c.mechanism == mech),
                &format!(
                    "bulk create: {mech} credential of {}@{}",
                    a.localpart, a.domain
                ),
            );
        }
    }
    // The accounts are ordinary accounts afterwards.
    check_err(
        store.create_account("alice", "example.org", &[]).await,
        &StorageError::AlreadyExists,
        "bulk create: single create of a bulk-created account",
    );
    let new = cred("SCRAM-SHA-256", 83, 4096);
    ok(
        store
            .set_credentials("zoë", "example.org", std::slice::from_ref(&new))
            .await,
        "bulk create: set_credentials",
    );
    check_cred(
        ok(
            store
                .credential("alice", "example.net", "SCRAM-SHA-256")
                .await,
            s,
        ),
        Some(&shared[1]),
        "bulk create: changing one account's shared credential leaves the others'",
    );
    let all: Vec<(&str, &str)> = batch.iter().map(|a| (a.localpart, a.domain)).collect();
    cleanup(store, &all, s).await;
}

async fn bulk_create_is_atomic(store: &dyn AccountStore) {
    let s = "bulk create atomic";
    let original = cred("SCRAM-SHA-256", 90, 4096);
    ok(
        store
            .create_account("taken", "example.org", std::slice::from_ref(&original))
            .await,
        "bulk create atomic: create taken",
    );
    let creds = [cred("SCRAM-SHA-256", 91, 1)];
    let acct = |localpart: &'static str| NewAccount {
        localpart,
        domain: "example.org",
        creds: &creds,
    };
    let only_taken = async || {
        check(
            ok(store.list_accounts(None).await, s),
            vec![("taken".to_owned(), "example.org".to_owned())],
            "bulk create atomic: a failed batch creates no account",
        );
    };

    // An existing account in the middle of the batch.
    check_err(
        store
            .create_accounts(&[acct("new1"), acct("taken"), acct("new2")])
            .await,
        &StorageError::AlreadyExists,
        "bulk create atomic: batch with an existing account",
    );
    only_taken().await;
    check_cred(
        ok(
            store
                .credential("taken", "example.org", "SCRAM-SHA-256")
                .await,
            s,
        ),
        Some(&original),
        "bulk create atomic: existing account's credential untouched",
    );
    // The same account twice in one batch.
    check_err(
        store
            .create_accounts(&[acct("dup"), acct("other"), acct("dup")])
            .await,
        &StorageError::AlreadyExists,
        "bulk create atomic: batch naming one account twice",
    );
    only_taken().await;
    // A duplicate mechanism in the last account's credentials.
    let twice = [cred("SCRAM-SHA-1", 92, 1), cred("SCRAM-SHA-1", 93, 1)];
    check_err(
        store
            .create_accounts(&[
                acct("first"),
                NewAccount {
                    localpart: "second",
                    domain: "example.org",
                    creds: &twice,
                },
            ])
            .await,
        &StorageError::Backend("any".into()),
        "bulk create atomic: duplicate mechanism",
    );
    only_taken().await;
    check_cred(
        ok(
            store
                .credential("first", "example.org", "SCRAM-SHA-256")
                .await,
            s,
        ),
        None,
        "bulk create atomic: no credential of a failed batch is stored",
    );
    // The same names succeed once the clash is gone.
    ok(
        store.create_accounts(&[acct("new1"), acct("new2")]).await,
        "bulk create atomic: retry without the clash",
    );
    cleanup(
        store,
        &[
            ("taken", "example.org"),
            ("new1", "example.org"),
            ("new2", "example.org"),
        ],
        s,
    )
    .await;
}

/// Enough accounts and credentials to cross any chunking a backend does
/// (multi-row statements), each with distinct values, so rows attached to
/// the wrong account show up.
async fn bulk_create_large(store: &dyn AccountStore) {
    let s = "bulk create large";
    const N: usize = 333;
    let names: Vec<String> = (0..N).map(|i| format!("user{i:03}")).collect();
    let creds: Vec<Vec<Credential>> = (0..N)
        .map(|i| {
            let seed = u8::try_from(i % 251).unwrap_or(0);
            let iterations = 4096 + u32::try_from(i).unwrap_or(0);
            match i % 3 {
                0 => vec![
                    cred("SCRAM-SHA-1", seed, iterations),
                    cred("SCRAM-SHA-256", seed.wrapping_add(1), iterations),
                    cred("SCRAM-SHA-512", seed.wrapping_add(2), iterations),
                ],
                1 => vec![cred("SCRAM-SHA-256", seed, iterations)],
                _ => Vec::new(),
            }
        })
        .collect();
    // Alternate domains, created in reverse name order.
    let domain = |i: usize| {
        if i.is_multiple_of(2) {
            "a.example"
        } else {
            "b.example"
        }
    };
    let batch: Vec<NewAccount<'_>> = (0..N)
        .rev()
        .map(|i| NewAccount {
            localpart: &names[i],
            domain: domain(i),
            creds: &creds[i],
        })
        .collect();
    ok(
        store.create_accounts(&batch).await,
        "bulk create large: create",
    );
    let mut want: Vec<(String, String)> = names
        .iter()
        .enumerate()
        .map(|(i, name)| (name.clone(), domain(i).to_owned()))
        .collect();
    want.sort();
    check(
        ok(store.list_accounts(None).await, s),
        want,
        "bulk create large: list",
    );
    for (i, (name, creds)) in names.iter().zip(&creds).enumerate() {
        for mech in ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
            check_cred(
                ok(store.credential(name, domain(i), mech).await, s),
                creds.iter().find(|c| c.mechanism == mech),
                &format!("bulk create large: {mech} credential of {name}"),
            );
        }
    }
    for (i, name) in names.iter().enumerate() {
        ok(
            store.delete_account(name, domain(i)).await,
            "bulk create large: delete",
        );
    }
    expect_empty(store, "bulk create large: empty after cleanup").await;
}

/// The disabled flag (XEP-0133 §4.3, §4.4): set and cleared, kept across credential changes,
/// returned with the credential on the login path, per account, and gone with the account.
async fn disabled(store: &dyn AccountStore) {
    let s = "disabled";
    let sha256 = cred("SCRAM-SHA-256", 90, 4096);
    ok(
        store
            .create_account("alice", "example.org", std::slice::from_ref(&sha256))
            .await,
        s,
    );
    ok(store.create_account("bob", "example.org", &[]).await, s);
    check(
        ok(store.is_disabled("alice", "example.org").await, s),
        false,
        "disabled: a new account is enabled",
    );
    let login = |what: &'static str| async move {
        ok(
            store
                .login_credential("alice", "example.org", "SCRAM-SHA-256")
                .await,
            what,
        )
        .map(|(c, d)| (c.stored_key, d))
    };
    check(
        login("disabled: login lookup").await,
        Some((sha256.stored_key.clone(), false)),
        "disabled: the login lookup of an enabled account",
    );
    ok(store.set_disabled("alice", "example.org", true).await, s);
    check(
        ok(store.is_disabled("alice", "example.org").await, s),
        true,
        "disabled: set_disabled(true) disables",
    );
    check(
        login("disabled: login lookup").await,
        Some((sha256.stored_key.clone(), true)),
        "disabled: the login lookup says the account is disabled",
    );
    check(
        ok(
            store
                .login_credential("alice", "example.org", "SCRAM-SHA-1")
                .await,
            s,
        )
        .is_none(),
        true,
        "disabled: no login credential for a mechanism the account has none of",
    );
    check(
        ok(store.is_disabled("bob", "example.org").await, s),
        false,
        "disabled: another account is not disabled with it",
    );
    ok(store.set_disabled("alice", "example.org", true).await, s);
    check(
        ok(store.is_disabled("alice", "example.org").await, s),
        true,
        "disabled: disabling twice is fine",
    );
    let sha1 = cred("SCRAM-SHA-1", 91, 4096);
    ok(
        store
            .set_credentials("alice", "example.org", std::slice::from_ref(&sha1))
            .await,
        s,
    );
    check(
        ok(store.is_disabled("alice", "example.org").await, s),
        true,
        "disabled: a password change keeps the account disabled",
    );
    ok(store.set_disabled("alice", "example.org", false).await, s);
    check(
        ok(store.is_disabled("alice", "example.org").await, s),
        false,
        "disabled: set_disabled(false) re-enables",
    );
    ok(store.set_disabled("alice", "example.org", true).await, s);
    ok(store.delete_account("alice", "example.org").await, s);
    ok(store.create_account("alice", "example.org", &[]).await, s);
    check(
        ok(store.is_disabled("alice", "example.org").await, s),
        false,
        "disabled: an account created again after its deletion is enabled",
    );
    check_err(
        store.set_disabled("ghost", "example.org", true).await,
        &StorageError::NotFound,
        "disabled: set_disabled of an unknown account",
    );
    check(
        matches!(
            store.is_disabled("ghost", "example.org").await,
            Err(StorageError::NotFound)
        ),
        true,
        "disabled: is_disabled of an unknown account is NotFound",
    );
    check(
        ok(store.account_exists("ghost", "example.org").await, s),
        false,
        "disabled: set_disabled must not create an account",
    );
    cleanup(
        store,
        &[("alice", "example.org"), ("bob", "example.org")],
        s,
    )
    .await;
}
