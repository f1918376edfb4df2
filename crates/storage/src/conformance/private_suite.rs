//! Conformance suite for [`PrivateStore`].

use std::fmt::Debug;

use crate::{AccountStore, PrivateElement, PrivateStore, StorageError};

/// Runs the [`PrivateStore`] conformance suite against `private`, using `accounts` (of the same
/// backend) to create and delete the owning accounts.
///
/// The backend must hold no accounts; every section deletes the accounts it created, so it holds
/// none again when this returns.
///
/// # Panics
///
/// On the first violated expectation, with a message naming the section and check.
pub async fn private(accounts: &dyn AccountStore, private: &dyn PrivateStore) {
    let s = Suite { accounts, private };
    s.expect_no_accounts("precondition: the store must be empty")
        .await;
    s.round_trip().await;
    s.keyed_by_name_and_namespace().await;
    s.set_is_atomic().await;
    s.per_account().await;
    s.delete_account_clears_elements().await;
    s.unknown_account().await;
    s.expect_no_accounts("postcondition").await;
}

const PREFIX: &str = "conformance::private";

fn ok<T>(res: Result<T, StorageError>, what: &str) -> T {
    super::ok_in(PREFIX, res, what)
}

fn check<T: PartialEq + Debug>(got: T, want: T, what: &str) {
    super::check_in(PREFIX, got, want, what);
}

fn bookmarks(room: &str) -> PrivateElement {
    PrivateElement::new(
        "storage",
        "storage:bookmarks",
        format!(
            "<storage xmlns='storage:bookmarks'><conference jid='{room}@muc.example.org' \
             autojoin='true' name='Café „☕“ &amp; 王'><nick>ali</nick></conference></storage>"
        ),
    )
}

fn prefs(nick: &str) -> PrivateElement {
    PrivateElement::new(
        "exodus",
        "exodus:prefs",
        format!("<exodus xmlns='exodus:prefs'><defaultnick>{nick}</defaultnick></exodus>"),
    )
}

struct Suite<'a> {
    accounts: &'a dyn AccountStore,
    private: &'a dyn PrivateStore,
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
            self.expect_all(
                l,
                d,
                &[],
                &format!("{what}: cleanup: deleted account's elements"),
            )
            .await;
        }
        self.expect_no_accounts(&format!("{what}: no accounts after cleanup"))
            .await;
    }

    async fn set(&self, l: &str, d: &str, elements: &[PrivateElement], what: &str) {
        ok(
            self.private.set(l, d, elements).await,
            &format!("{what}: set {} element(s) of {l}@{d}", elements.len()),
        );
        for e in elements {
            self.expect(l, d, &e.name, &e.namespace, Some(&e.xml), what)
                .await;
        }
    }

    async fn expect(&self, l: &str, d: &str, name: &str, ns: &str, want: Option<&str>, what: &str) {
        check(
            ok(self.private.get(l, d, name, ns).await, what),
            want.map(str::to_owned),
            &format!("{what}: {{{ns}}}{name} of {l}@{d}"),
        );
    }

    async fn expect_all(&self, l: &str, d: &str, want: &[PrivateElement], what: &str) {
        check(
            ok(self.private.all(l, d).await, what),
            want.to_vec(),
            &format!("{what}: all elements of {l}@{d}"),
        );
        check(
            ok(self.private.count(l, d).await, what),
            want.len() as u64,
            &format!("{what}: count of {l}@{d}"),
        );
    }

    async fn round_trip(&self) {
        let s = "round trip";
        let (l, d) = ("alice", "example.org");
        self.create(l, d, s).await;
        self.expect(
            l,
            d,
            "storage",
            "storage:bookmarks",
            None,
            &format!("{s}: new account"),
        )
        .await;
        self.expect_all(l, d, &[], &format!("{s}: new account"))
            .await;
        self.set(l, d, &[bookmarks("a")], s).await;
        // Replace, with a larger and then a smaller text.
        let large = PrivateElement::new(
            "storage",
            "storage:bookmarks",
            format!(
                "<storage xmlns='storage:bookmarks'>{}</storage>",
                "<conference jid='r@muc.example.org'/>".repeat(2000)
            ),
        );
        self.set(
            l,
            d,
            std::slice::from_ref(&large),
            &format!("{s}: replace, large"),
        )
        .await;
        self.set(l, d, &[bookmarks("b")], &format!("{s}: replace, small"))
            .await;
        // Setting the same text again is fine; an empty slice changes nothing.
        self.set(l, d, &[bookmarks("b")], &format!("{s}: identical"))
            .await;
        self.set(l, d, &[], &format!("{s}: nothing")).await;
        self.expect_all(l, d, &[bookmarks("b")], &format!("{s}: one element"))
            .await;
        self.delete(&[(l, d)], s).await;
    }

    async fn keyed_by_name_and_namespace(&self) {
        let s = "keyed by name and namespace";
        let (l, d) = ("alice", "example.org");
        self.create(l, d, s).await;
        let same_ns_other_name = PrivateElement::new(
            "other",
            "storage:bookmarks",
            "<other xmlns='storage:bookmarks'/>",
        );
        let same_name_other_ns = PrivateElement::new(
            "storage",
            "storage:rosternotes",
            "<storage xmlns='storage:rosternotes'/>",
        );
        // Case matters: byte-exact keys.
        let upper = PrivateElement::new(
            "Storage",
            "storage:bookmarks",
            "<Storage xmlns='storage:bookmarks'/>",
        );
        self.set(
            l,
            d,
            &[
                bookmarks("a"),
                same_ns_other_name.clone(),
                same_name_other_ns.clone(),
                upper.clone(),
                prefs("Alice"),
            ],
            s,
        )
        .await;
        // Sorted by namespace, then name.
        self.expect_all(
            l,
            d,
            &[
                prefs("Alice"),
                upper.clone(),
                same_ns_other_name.clone(),
                bookmarks("a"),
                same_name_other_ns.clone(),
            ],
            s,
        )
        .await;
        // Replacing one leaves the others.
        self.set(l, d, &[bookmarks("z")], &format!("{s}: replace one"))
            .await;
        self.expect(
            l,
            d,
            "other",
            "storage:bookmarks",
            Some(&same_ns_other_name.xml),
            &format!("{s}: others kept"),
        )
        .await;
        self.expect(
            l,
            d,
            "storage",
            "storage:rosternotes",
            Some(&same_name_other_ns.xml),
            &format!("{s}: others kept"),
        )
        .await;
        self.expect(
            l,
            d,
            "exodus",
            "storage:bookmarks",
            None,
            &format!("{s}: no such pair"),
        )
        .await;
        self.delete(&[(l, d)], s).await;
    }

    async fn set_is_atomic(&self) {
        let s = "set is atomic";
        let (l, d) = ("alice", "example.org");
        self.create(l, d, s).await;
        self.set(l, d, &[bookmarks("a")], s).await;
        // The same name and namespace twice: refused whole.
        let res = self
            .private
            .set(l, d, &[prefs("X"), bookmarks("b"), bookmarks("c")])
            .await;
        assert!(
            matches!(res, Err(StorageError::Backend(_))),
            "{PREFIX}: {s}: duplicate key: got {res:?}, want Err(Backend)"
        );
        self.expect_all(l, d, &[bookmarks("a")], &format!("{s}: nothing changed"))
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
        self.set(a.0, a.1, &[bookmarks("A")], s).await;
        self.set(b.0, b.1, &[bookmarks("B")], s).await;
        self.expect_all(c.0, c.1, &[], &format!("{s}: untouched account"))
            .await;
        self.expect_all(a.0, a.1, &[bookmarks("A")], s).await;
        ok(
            self.accounts.delete_account(b.0, b.1).await,
            &format!("{s}: delete {}@{}", b.0, b.1),
        );
        self.expect_all(
            a.0,
            a.1,
            &[bookmarks("A")],
            &format!("{s}: after deleting another"),
        )
        .await;
        self.delete(&[a, c], s).await;
    }

    async fn delete_account_clears_elements(&self) {
        let s = "delete account clears elements";
        let (l, d) = ("alice", "example.org");
        self.create(l, d, s).await;
        self.set(l, d, &[bookmarks("a"), prefs("A")], s).await;
        ok(self.accounts.delete_account(l, d).await, s);
        self.expect_all(l, d, &[], &format!("{s}: deleted account"))
            .await;
        self.create(l, d, s).await;
        self.expect_all(
            l,
            d,
            &[],
            &format!("{s}: re-created account (delete must cascade)"),
        )
        .await;
        self.delete(&[(l, d)], s).await;
    }

    async fn unknown_account(&self) {
        let s = "unknown account";
        self.create("alice", "example.com", s).await;
        let (l, d) = ("alice", "example.org");
        for elements in [vec![bookmarks("x")], vec![]] {
            let res = self.private.set(l, d, &elements).await;
            assert!(
                matches!(res, Err(StorageError::NotFound)),
                "{PREFIX}: {s}: set {} element(s): got {res:?}, want Err(NotFound)",
                elements.len()
            );
        }
        let res = self
            .private
            .set("Alice", "example.com", &[bookmarks("x")])
            .await;
        assert!(
            matches!(res, Err(StorageError::NotFound)),
            "{PREFIX}: {s}: set is byte-exact on the account: got {res:?}, want Err(NotFound)"
        );
        self.expect(l, d, "storage", "storage:bookmarks", None, s)
            .await;
        self.expect_all(l, d, &[], s).await;
        self.expect_all(
            "alice",
            "example.com",
            &[],
            &format!("{s}: existing account untouched"),
        )
        .await;
        check(
            ok(self.accounts.account_exists(l, d).await, s),
            false,
            &format!("{s}: set must not create the account"),
        );
        self.delete(&[("alice", "example.com")], s).await;
    }
}
