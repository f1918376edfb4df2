//! Conformance suite for [`VcardStore`].

use std::fmt::Debug;

use crate::{AccountStore, StorageError, VcardStore};

/// Runs the [`VcardStore`] conformance suite against `vcards`, using
/// `accounts` (of the same backend) to create and delete the owning accounts.
///
/// The backend must hold no accounts; every section deletes the accounts it
/// created, so it holds none again when this returns.
///
/// # Panics
///
/// On the first violated expectation, with a message naming the section and
/// check.
pub async fn vcards(accounts: &dyn AccountStore, vcards: &dyn VcardStore) {
    let s = Suite { accounts, vcards };
    s.expect_no_accounts("precondition: the store must be empty")
        .await;
    s.round_trip().await;
    s.per_account().await;
    s.delete_account_clears_vcard().await;
    s.unknown_account().await;
    s.expect_no_accounts("postcondition").await;
}

const PREFIX: &str = "conformance::vcards";

fn ok<T>(res: Result<T, StorageError>, what: &str) -> T {
    super::ok_in(PREFIX, res, what)
}

fn check<T: PartialEq + Debug>(got: T, want: T, what: &str) {
    super::check_in(PREFIX, got, want, what);
}

fn vcard(name: &str) -> String {
    format!(
        "<vCard xmlns='vcard-temp'><FN>{name}</FN><N><FAMILY>Müller</FAMILY>\
         <GIVEN>Jürgen „Jü“ 🐦 王</GIVEN></N><NICKNAME>it&apos;s &amp; &lt;me&gt;</NICKNAME>\
         <DESC>line 1\r\nline 2</DESC></vCard>"
    )
}

struct Suite<'a> {
    accounts: &'a dyn AccountStore,
    vcards: &'a dyn VcardStore,
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
            self.expect(
                l,
                d,
                None,
                &format!("{what}: cleanup: deleted account's vCard"),
            )
            .await;
        }
        self.expect_no_accounts(&format!("{what}: no accounts after cleanup"))
            .await;
    }

    async fn set(&self, l: &str, d: &str, v: &str, what: &str) {
        ok(
            self.vcards.set_vcard(l, d, v).await,
            &format!("{what}: set vCard of {l}@{d}"),
        );
        self.expect(l, d, Some(v), what).await;
    }

    async fn expect(&self, l: &str, d: &str, want: Option<&str>, what: &str) {
        check(
            ok(self.vcards.vcard(l, d).await, what),
            want.map(str::to_owned),
            &format!("{what}: vCard of {l}@{d}"),
        );
    }

    async fn round_trip(&self) {
        let s = "round trip";
        let (l, d) = ("alice", "example.org");
        self.create(l, d, s).await;
        self.expect(l, d, None, &format!("{s}: new account")).await;
        self.set(l, d, &vcard("Alice"), s).await;
        // Replace, several times, with smaller and larger texts.
        self.set(
            l,
            d,
            "<vCard xmlns='vcard-temp'/>",
            &format!("{s}: replace with empty vCard"),
        )
        .await;
        let photo = format!(
            "<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>{}</BINVAL></PHOTO></vCard>",
            "QUJD".repeat(64 * 1024)
        );
        self.set(l, d, &photo, &format!("{s}: large")).await;
        // The empty string is a value, distinct from "no vCard".
        self.set(l, d, "", &format!("{s}: empty string")).await;
        self.set(l, d, &vcard("Alice 2"), &format!("{s}: back"))
            .await;
        // Setting the same text again is fine.
        self.set(l, d, &vcard("Alice 2"), &format!("{s}: identical"))
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
        self.set(a.0, a.1, &vcard("A"), s).await;
        self.set(b.0, b.1, &vcard("B"), s).await;
        self.expect(a.0, a.1, Some(&vcard("A")), s).await;
        self.expect(c.0, c.1, None, s).await;
        self.set(a.0, a.1, &vcard("A2"), s).await;
        self.expect(b.0, b.1, Some(&vcard("B")), &format!("{s}: other kept"))
            .await;
        ok(
            self.accounts.delete_account(b.0, b.1).await,
            &format!("{s}: delete {}@{}", b.0, b.1),
        );
        self.expect(
            a.0,
            a.1,
            Some(&vcard("A2")),
            &format!("{s}: after deleting another account"),
        )
        .await;
        self.delete(&[a, c], s).await;
    }

    async fn delete_account_clears_vcard(&self) {
        let s = "delete account clears vCard";
        let (l, d) = ("alice", "example.org");
        self.create(l, d, s).await;
        self.set(l, d, &vcard("Alice"), s).await;
        ok(self.accounts.delete_account(l, d).await, s);
        self.expect(l, d, None, &format!("{s}: deleted account"))
            .await;
        self.create(l, d, s).await;
        self.expect(
            l,
            d,
            None,
            &format!("{s}: re-created account (delete must cascade)"),
        )
        .await;
        self.delete(&[(l, d)], s).await;
    }

    async fn unknown_account(&self) {
        let s = "unknown account";
        self.create("alice", "example.com", s).await;
        self.create("bob", "example.org", s).await;
        let (l, d) = ("alice", "example.org");
        let res = self.vcards.set_vcard(l, d, &vcard("X")).await;
        assert!(
            matches!(res, Err(StorageError::NotFound)),
            "{PREFIX}: {s}: set: got {res:?}, want Err(NotFound)"
        );
        let res = self
            .vcards
            .set_vcard("Alice", "example.com", &vcard("X"))
            .await;
        assert!(
            matches!(res, Err(StorageError::NotFound)),
            "{PREFIX}: {s}: set is byte-exact on the account: got {res:?}, want Err(NotFound)"
        );
        self.expect(l, d, None, s).await;
        for (l, d) in [("alice", "example.com"), ("bob", "example.org")] {
            self.expect(l, d, None, &format!("{s}: existing account untouched"))
                .await;
        }
        check(
            ok(self.accounts.account_exists(l, d).await, s),
            false,
            &format!("{s}: set must not create the account"),
        );
        self.delete(&[("alice", "example.com"), ("bob", "example.org")], s)
            .await;
    }
}
