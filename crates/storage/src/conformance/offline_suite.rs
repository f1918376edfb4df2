//! Conformance suite for [`OfflineStore`].

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{AccountStore, OfflineMessage, OfflineOutcome, OfflineStore, StorageError};

/// Runs the [`OfflineStore`] conformance suite against `offline`, using
/// `accounts` (of the same backend) to create and delete the owning accounts.
///
/// The backend must hold no accounts; every section deletes the accounts it
/// created, so it holds none again when this returns.
///
/// # Panics
///
/// On the first violated expectation, with a message naming the section and
/// check.
pub async fn offline(accounts: &dyn AccountStore, offline: &dyn OfflineStore) {
    let s = Suite {
        accounts,
        offline,
        last_id: AtomicU64::new(0),
    };
    s.expect_no_accounts("precondition: the store must be empty")
        .await;
    s.round_trip().await;
    s.limit().await;
    s.delete_up_to().await;
    s.ids_never_reused().await;
    s.per_account().await;
    s.delete_account_clears_queue().await;
    s.unknown_account().await;
    s.expect_no_accounts("postcondition").await;
}

const PREFIX: &str = "conformance::offline";

fn ok<T>(res: Result<T, StorageError>, what: &str) -> T {
    super::ok_in(PREFIX, res, what)
}

fn check<T: PartialEq + Debug>(got: T, want: T, what: &str) {
    super::check_in(PREFIX, got, want, what);
}

fn check_not_found<T: Debug>(res: Result<T, StorageError>, what: &str) {
    assert!(
        matches!(res, Err(StorageError::NotFound)),
        "{PREFIX}: {what}: got {res:?}, want Err(NotFound)"
    );
}

/// A message stanza as the server stores it, with `n` in the body.
fn stanza(to: &str, n: usize) -> String {
    format!(
        "<message xmlns='jabber:client' to='{to}' from='carol@example.net/phone' \
         type='chat' id='m{n}'><body>Nachricht {n}: „Grüße“ 🐦 &amp; &lt;tags&gt;</body>\
         <request xmlns='urn:xmpp:receipts'/>\
         <delay xmlns='urn:xmpp:delay' from='example.org' stamp='2024-02-29T23:59:59Z'/>\
         </message>"
    )
}

struct Suite<'a> {
    accounts: &'a dyn AccountStore,
    offline: &'a dyn OfflineStore,
    /// The largest id handed out so far: every new one must be larger.
    last_id: AtomicU64,
}

impl Suite<'_> {
    async fn expect_no_accounts(&self, what: &str) {
        super::expect_no_accounts_in(PREFIX, self.accounts, what).await;
    }

    async fn create(&self, l: &str, d: &str, what: &str) {
        super::create_account_in(PREFIX, self.accounts, l, d, what).await;
    }

    async fn delete(&self, accounts: &[(&str, &str)], what: &str) {
        for (l, d) in accounts {
            ok(
                self.accounts.delete_account(l, d).await,
                &format!("{what}: delete account {l}@{d}"),
            );
            let gone = format!("{what}: cleanup: deleted account's queue (delete must cascade)");
            self.expect_count(l, d, 0, &gone).await;
            self.expect_load(l, d, &[], &gone).await;
        }
        self.expect_no_accounts(&format!("{what}: no accounts after cleanup"))
            .await;
    }

    /// Stores `stanza` with `max`, expects it stored, checks the id grows, and
    /// returns the message as `load` must show it.
    async fn store(&self, l: &str, d: &str, stanza: &str, max: u64, what: &str) -> OfflineMessage {
        let got = ok(
            self.offline.store(l, d, stanza, max).await,
            &format!("{what}: store on {l}@{d} (max {max})"),
        );
        let OfflineOutcome::Stored { id } = got else {
            panic!("{PREFIX}: {what}: store on {l}@{d} (max {max}): got {got:?}, want Stored");
        };
        assert!(
            id > self.last_id.load(Ordering::Relaxed),
            "{PREFIX}: {what}: id {id} is not larger than an earlier id {}",
            self.last_id.load(Ordering::Relaxed)
        );
        self.last_id.store(id, Ordering::Relaxed);
        OfflineMessage {
            id,
            stanza: stanza.to_owned(),
        }
    }

    async fn expect_full(&self, l: &str, d: &str, stanza: &str, max: u64, what: &str) {
        check(
            ok(self.offline.store(l, d, stanza, max).await, what),
            OfflineOutcome::Full,
            &format!("{what}: store on {l}@{d} with max {max}"),
        );
    }

    async fn expect_count(&self, l: &str, d: &str, want: u64, what: &str) {
        check(
            ok(self.offline.count(l, d).await, what),
            want,
            &format!("{what}: count of {l}@{d}"),
        );
    }

    async fn expect_load(&self, l: &str, d: &str, want: &[OfflineMessage], what: &str) {
        check(
            ok(self.offline.load(l, d).await, what),
            want.to_vec(),
            &format!("{what}: messages of {l}@{d}"),
        );
    }

    async fn expect_deleted(&self, l: &str, d: &str, up_to: u64, want: u64, what: &str) {
        check(
            ok(self.offline.delete_up_to(l, d, up_to).await, what),
            want,
            &format!("{what}: delete_up_to({up_to}) on {l}@{d}"),
        );
    }

    async fn round_trip(&self) {
        let s = "round trip";
        let (l, d) = ("alice", "example.org");
        self.create(l, d, s).await;
        self.expect_count(l, d, 0, &format!("{s}: new account"))
            .await;
        self.expect_load(l, d, &[], &format!("{s}: new account"))
            .await;

        let mut want = Vec::new();
        // Text is kept byte for byte: quotes, CR/LF, tabs, non-ASCII, a large
        // stanza, and the empty string.
        let odd = "<message xmlns='jabber:client' to=\"alice@example.org\">\
                   <body>line 1\r\nline 2\n\ttab 'q' \"dq\" 王</body></message>";
        let large = format!(
            "<message xmlns='jabber:client'><body>{}</body></message>",
            "x".repeat(300 * 1024)
        );
        for text in [
            stanza("alice@example.org", 1),
            odd.to_owned(),
            large,
            String::new(),
        ] {
            want.push(self.store(l, d, &text, 1000, s).await);
        }
        self.expect_load(l, d, &want, s).await;
        self.expect_count(l, d, 4, s).await;
        // Loading does not consume.
        self.expect_load(l, d, &want, &format!("{s}: second load"))
            .await;
        self.expect_count(l, d, 4, &format!("{s}: after loads"))
            .await;
        self.delete(&[(l, d)], s).await;
    }

    async fn limit(&self) {
        let s = "limit";
        let (l, d) = ("alice", "example.org");
        self.create(l, d, s).await;
        // max 0: storage disabled, even for an empty queue.
        self.expect_full(l, d, &stanza(l, 0), 0, s).await;
        self.expect_count(l, d, 0, &format!("{s}: max 0 stores nothing"))
            .await;
        let m1 = self.store(l, d, &stanza(l, 1), 2, s).await;
        let m2 = self.store(l, d, &stanza(l, 2), 2, s).await;
        self.expect_full(l, d, &stanza(l, 3), 2, s).await;
        self.expect_full(l, d, &stanza(l, 4), 2, &format!("{s}: again"))
            .await;
        // A limit below the current count refuses too; nothing is trimmed.
        self.expect_full(l, d, &stanza(l, 5), 1, s).await;
        self.expect_full(l, d, &stanza(l, 6), 0, s).await;
        self.expect_count(l, d, 2, &format!("{s}: refused stores changed nothing"))
            .await;
        self.expect_load(l, d, &[m1.clone(), m2.clone()], s).await;
        // A larger limit admits more.
        let m3 = self.store(l, d, &stanza(l, 7), 3, s).await;
        self.expect_full(l, d, &stanza(l, 8), 3, s).await;
        // Room again after a delivery.
        self.expect_deleted(l, d, m1.id, 1, s).await;
        let m4 = self.store(l, d, &stanza(l, 9), 3, s).await;
        self.expect_full(l, d, &stanza(l, 10), 3, s).await;
        self.expect_load(l, d, &[m2, m3, m4], s).await;
        // u64::MAX as a limit is "unlimited", not an overflow.
        self.store(l, d, &stanza(l, 11), u64::MAX, s).await;
        self.expect_count(l, d, 4, s).await;
        self.delete(&[(l, d)], s).await;
    }

    async fn delete_up_to(&self) {
        let s = "delete up to";
        let (l, d) = ("alice", "example.org");
        self.create(l, d, s).await;
        self.expect_deleted(l, d, u64::MAX, 0, &format!("{s}: empty queue"))
            .await;
        let mut msgs = Vec::new();
        for n in 0..5 {
            msgs.push(self.store(l, d, &stanza(l, n), 100, s).await);
        }
        self.expect_deleted(l, d, 0, 0, &format!("{s}: up to 0"))
            .await;
        self.expect_deleted(l, d, msgs[0].id - 1, 0, &format!("{s}: below the first"))
            .await;
        self.expect_load(l, d, &msgs, &format!("{s}: nothing deleted yet"))
            .await;
        // Up to and including the given id.
        self.expect_deleted(l, d, msgs[1].id, 2, s).await;
        self.expect_load(l, d, &msgs[2..], s).await;
        self.expect_deleted(l, d, msgs[1].id, 0, &format!("{s}: again"))
            .await;
        self.expect_count(l, d, 3, s).await;

        // What arrives after a load survives a delete up to the last loaded id.
        let loaded = ok(self.offline.load(l, d).await, s);
        check(loaded.as_slice(), &msgs[2..], &format!("{s}: load"));
        let late = self.store(l, d, &stanza(l, 99), 100, s).await;
        let last = loaded.last().map_or(0, |m| m.id);
        self.expect_deleted(l, d, last, 3, &format!("{s}: delivered batch"))
            .await;
        self.expect_load(
            l,
            d,
            std::slice::from_ref(&late),
            &format!("{s}: late message kept"),
        )
        .await;
        self.expect_deleted(l, d, u64::MAX, 1, &format!("{s}: up to u64::MAX"))
            .await;
        self.expect_load(l, d, &[], s).await;
        self.expect_count(l, d, 0, s).await;
        self.delete(&[(l, d)], s).await;
    }

    async fn ids_never_reused(&self) {
        let s = "ids never reused";
        let (l, d) = ("alice", "example.org");
        self.create(l, d, s).await;
        // `store` checks that every id is larger than all before, also after
        // the newest message was deleted and the queue emptied.
        let m = self.store(l, d, &stanza(l, 1), 10, s).await;
        self.expect_deleted(l, d, m.id, 1, s).await;
        let m2 = self.store(l, d, &stanza(l, 2), 10, s).await;
        // A delete up to a stale id must not take the new message.
        self.expect_deleted(l, d, m.id, 0, &format!("{s}: stale id"))
            .await;
        self.expect_load(l, d, std::slice::from_ref(&m2), s).await;
        self.delete(&[(l, d)], s).await;
        // Nor after the account was deleted and re-created.
        self.create(l, d, s).await;
        self.store(l, d, &stanza(l, 3), 10, &format!("{s}: re-created"))
            .await;
        self.delete(&[(l, d)], s).await;
    }

    async fn per_account(&self) {
        let s = "per account";
        let a = ("alice", "example.org");
        let b = ("alice", "example.com");
        let c = ("bob", "example.org");
        for (l, d) in [a, b, c] {
            self.create(l, d, s).await;
        }
        let a1 = self.store(a.0, a.1, &stanza("a", 1), 2, s).await;
        let b1 = self.store(b.0, b.1, &stanza("b", 1), 2, s).await;
        let a2 = self.store(a.0, a.1, &stanza("a", 2), 2, s).await;
        // The limit counts one account's messages only.
        self.expect_full(a.0, a.1, &stanza("a", 3), 2, s).await;
        let b2 = self.store(b.0, b.1, &stanza("b", 2), 2, s).await;
        self.expect_load(a.0, a.1, &[a1.clone(), a2.clone()], s)
            .await;
        self.expect_load(b.0, b.1, &[b1.clone(), b2.clone()], s)
            .await;
        self.expect_load(c.0, c.1, &[], s).await;
        self.expect_count(c.0, c.1, 0, s).await;

        // Deleting on one account, even with another account's ids, leaves
        // the others alone.
        self.expect_deleted(c.0, c.1, u64::MAX, 0, &format!("{s}: empty account"))
            .await;
        self.expect_deleted(a.0, a.1, b2.id, 2, s).await;
        self.expect_load(b.0, b.1, &[b1.clone(), b2.clone()], s)
            .await;
        self.expect_load(a.0, a.1, &[], s).await;

        // Deleting an account leaves the other queues alone.
        let a3 = self.store(a.0, a.1, &stanza("a", 3), 2, s).await;
        ok(
            self.accounts.delete_account(b.0, b.1).await,
            &format!("{s}: delete {}@{}", b.0, b.1),
        );
        self.expect_load(
            a.0,
            a.1,
            std::slice::from_ref(&a3),
            &format!("{s}: after deleting another account"),
        )
        .await;
        self.delete(&[a, c], s).await;
    }

    async fn delete_account_clears_queue(&self) {
        let s = "delete account clears queue";
        let (l, d) = ("alice", "example.org");
        self.create(l, d, s).await;
        for n in 0..3 {
            self.store(l, d, &stanza(l, n), 3, s).await;
        }
        ok(self.accounts.delete_account(l, d).await, s);
        let what = format!("{s}: deleted account");
        self.expect_load(l, d, &[], &what).await;
        self.expect_count(l, d, 0, &what).await;

        self.create(l, d, s).await;
        let what = format!("{s}: re-created account (delete must cascade)");
        self.expect_load(l, d, &[], &what).await;
        self.expect_count(l, d, 0, &what).await;
        // The old messages do not count against the new account's limit.
        let fresh = self.store(l, d, &stanza(l, 9), 1, &what).await;
        self.expect_load(l, d, std::slice::from_ref(&fresh), &what)
            .await;
        self.delete(&[(l, d)], s).await;
    }

    async fn unknown_account(&self) {
        let s = "unknown account";
        // Same localpart on another domain, and the other way round, exist.
        self.create("alice", "example.com", s).await;
        self.create("bob", "example.org", s).await;
        let (l, d) = ("alice", "example.org");
        for max in [0, 1, 1000] {
            check_not_found(
                self.offline.store(l, d, &stanza(l, 1), max).await,
                &format!("{s}: store with max {max}"),
            );
        }
        check_not_found(
            self.offline
                .store("Alice", "example.com", &stanza(l, 1), 10)
                .await,
            &format!("{s}: store is byte-exact on the account"),
        );
        self.expect_load(l, d, &[], s).await;
        self.expect_count(l, d, 0, s).await;
        self.expect_deleted(l, d, u64::MAX, 0, s).await;
        for (l, d) in [("alice", "example.com"), ("bob", "example.org")] {
            let what = format!("{s}: existing account untouched");
            self.expect_load(l, d, &[], &what).await;
            self.expect_count(l, d, 0, &what).await;
        }
        check(
            ok(self.accounts.account_exists(l, d).await, s),
            false,
            &format!("{s}: store must not create the account"),
        );
        self.delete(&[("alice", "example.com"), ("bob", "example.org")], s)
            .await;
    }
}
