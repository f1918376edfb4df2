//! Conformance suite for [`InviteStore`].

use std::fmt::Debug;

use crate::{AccountStore, Credential, Invite, InviteStore, StorageError};

/// Runs the [`InviteStore`] conformance suite against `invites`, using `accounts` (of the same
/// backend) for the accounts invitations create and befriend.
///
/// The backend must hold no accounts and no invitations; every section deletes what it created.
///
/// # Panics
///
/// On the first violated expectation, with a message naming the section and check.
pub async fn invites(accounts: &dyn AccountStore, invites: &dyn InviteStore) {
    let s = Suite { accounts, invites };
    s.expect_no_accounts("precondition: the store must be empty")
        .await;
    s.create_and_read().await;
    s.register_spends_uses().await;
    s.register_refusals().await;
    s.use_without_account().await;
    s.reserved_names_and_purge().await;
    s.contact_cascade().await;
    check(
        ok(s.invites.list_invites(None).await, "postcondition: list"),
        Vec::new(),
        "postcondition: no invitations left",
    );
    s.expect_no_accounts("postcondition").await;
}

const PREFIX: &str = "conformance::invites";
const NOW: i64 = 1_800_000_000;

fn ok<T>(res: Result<T, StorageError>, what: &str) -> T {
    super::ok_in(PREFIX, res, what)
}

fn check<T: PartialEq + Debug>(got: T, want: T, what: &str) {
    super::check_in(PREFIX, got, want, what);
}

fn invite(hash: &str, domain: &str, uses: u32) -> Invite {
    Invite {
        token_hash: hash.to_owned(),
        domain: domain.to_owned(),
        username: None,
        contact: None,
        register: true,
        uses_left: uses,
        created_at: NOW - 10,
        expires_at: NOW + 100,
    }
}

fn cred() -> Credential {
    Credential {
        mechanism: "SCRAM-SHA-256".to_owned(),
        salt: vec![0, 1, 2],
        iterations: 4096,
        stored_key: vec![7; 32],
        server_key: vec![8; 32],
    }
}

struct Suite<'a> {
    accounts: &'a dyn AccountStore,
    invites: &'a dyn InviteStore,
}

impl Suite<'_> {
    async fn expect_no_accounts(&self, what: &str) {
        super::expect_no_accounts_in(PREFIX, self.accounts, what).await;
    }

    async fn delete_account(&self, l: &str, d: &str, what: &str) {
        ok(
            self.accounts.delete_account(l, d).await,
            &format!("{what}: delete {l}@{d}"),
        );
    }

    async fn create_and_read(&self) {
        let what = "create_and_read";
        let mut a = invite("h1", "example.org", 2);
        a.username = Some("juliet".to_owned());
        ok(self.invites.create_invite(&a).await, what);
        let mut b = invite("h0", "example.net", 1);
        b.register = false;
        b.created_at = NOW;
        ok(self.invites.create_invite(&b).await, what);
        check(
            ok(self.invites.invite("h1").await, what),
            Some(a.clone()),
            &format!("{what}: read back"),
        );
        check(
            ok(self.invites.invite("nope").await, what),
            None,
            &format!("{what}: unknown key"),
        );
        assert!(
            matches!(
                self.invites.create_invite(&a).await,
                Err(StorageError::AlreadyExists)
            ),
            "{PREFIX}: {what}: a taken key is AlreadyExists"
        );
        assert!(
            self.invites
                .create_invite(&invite("h9", "example.org", 0))
                .await
                .is_err(),
            "{PREFIX}: {what}: zero uses is refused"
        );
        let mut c = invite("h9", "example.org", 1);
        c.contact = Some(("nobody".to_owned(), "example.org".to_owned()));
        assert!(
            matches!(
                self.invites.create_invite(&c).await,
                Err(StorageError::NotFound)
            ),
            "{PREFIX}: {what}: a missing contact account is NotFound"
        );
        check(
            ok(self.invites.list_invites(None).await, what),
            vec![a.clone(), b.clone()],
            &format!("{what}: list, oldest first"),
        );
        check(
            ok(self.invites.list_invites(Some("example.net")).await, what),
            vec![b],
            &format!("{what}: list one domain"),
        );
        check(ok(self.invites.delete_invite("h0").await, what), true, what);
        check(
            ok(self.invites.delete_invite("h0").await, what),
            false,
            what,
        );
        check(ok(self.invites.delete_invite("h1").await, what), true, what);
    }

    async fn register_spends_uses(&self) {
        let what = "register_spends_uses";
        let a = invite("r1", "example.org", 2);
        ok(self.invites.create_invite(&a).await, what);
        let got = ok(
            self.invites
                .register_with_invite("r1", NOW, "ann", "example.org", &[cred()])
                .await,
            what,
        );
        check(
            got,
            a.clone(),
            &format!("{what}: returns the invitation before use"),
        );
        check(
            ok(
                self.accounts
                    .credential("ann", "example.org", "SCRAM-SHA-256")
                    .await,
                what,
            ),
            Some(cred()),
            &format!("{what}: the account has its credential"),
        );
        check(
            ok(self.invites.invite("r1").await, what).map(|i| i.uses_left),
            Some(1),
            &format!("{what}: one use left"),
        );
        ok(
            self.invites
                .register_with_invite("r1", NOW, "bob", "example.org", &[])
                .await,
            what,
        );
        check(
            ok(self.invites.invite("r1").await, what),
            None,
            &format!("{what}: gone with its last use"),
        );
        assert!(
            matches!(
                self.invites
                    .register_with_invite("r1", NOW, "cat", "example.org", &[])
                    .await,
                Err(StorageError::NotFound)
            ),
            "{PREFIX}: {what}: a spent invitation is NotFound"
        );
        check(
            ok(
                self.accounts.account_exists("cat", "example.org").await,
                what,
            ),
            false,
            &format!("{what}: no account from a spent invitation"),
        );
        self.delete_account("ann", "example.org", what).await;
        self.delete_account("bob", "example.org", what).await;
    }

    async fn register_refusals(&self) {
        let what = "register_refusals";
        let mut named = invite("n1", "example.org", 1);
        named.username = Some("juliet".to_owned());
        ok(self.invites.create_invite(&named).await, what);
        let mut contact_only = invite("c1", "example.org", 1);
        contact_only.register = false;
        ok(self.invites.create_invite(&contact_only).await, what);
        let mut expired = invite("e1", "example.org", 1);
        expired.expires_at = NOW;
        ok(self.invites.create_invite(&expired).await, what);

        for (hash, local, domain, case) in [
            (
                "n1",
                "romeo",
                "example.org",
                "another name than the reserved one",
            ),
            ("n1", "juliet", "example.net", "another domain"),
            ("c1", "dave", "example.org", "a contact-only invitation"),
            ("e1", "erin", "example.org", "an invitation expiring now"),
            ("zz", "fred", "example.org", "an unknown key"),
        ] {
            assert!(
                matches!(
                    self.invites
                        .register_with_invite(hash, NOW, local, domain, &[])
                        .await,
                    Err(StorageError::NotFound)
                ),
                "{PREFIX}: {what}: {case} is NotFound"
            );
            check(
                ok(self.accounts.account_exists(local, domain).await, what),
                false,
                &format!("{what}: no account for {case}"),
            );
        }
        // An existing account: AlreadyExists, and the use is not spent.
        ok(
            self.accounts
                .create_account("juliet", "example.org", &[])
                .await,
            what,
        );
        assert!(
            matches!(
                self.invites
                    .register_with_invite("n1", NOW, "juliet", "example.org", &[cred()])
                    .await,
                Err(StorageError::AlreadyExists)
            ),
            "{PREFIX}: {what}: an existing account is AlreadyExists"
        );
        check(
            ok(self.invites.invite("n1").await, what).map(|i| i.uses_left),
            Some(1),
            &format!("{what}: a failed registration spends nothing"),
        );
        check(
            ok(
                self.accounts
                    .credential("juliet", "example.org", "SCRAM-SHA-256")
                    .await,
                what,
            ),
            None,
            &format!("{what}: the existing account is untouched"),
        );
        self.delete_account("juliet", "example.org", what).await;
        for h in ["n1", "c1", "e1"] {
            check(ok(self.invites.delete_invite(h).await, what), true, what);
        }
    }

    async fn use_without_account(&self) {
        let what = "use_without_account";
        let mut a = invite("u1", "example.org", 1);
        a.register = false;
        ok(self.invites.create_invite(&a).await, what);
        check(
            ok(self.invites.use_invite("u1", NOW + 100).await, what),
            None,
            &format!("{what}: expired at its expiry"),
        );
        check(
            ok(self.invites.use_invite("u1", NOW).await, what),
            Some(a),
            &format!("{what}: valid"),
        );
        check(
            ok(self.invites.use_invite("u1", NOW).await, what),
            None,
            &format!("{what}: spent"),
        );
    }

    async fn reserved_names_and_purge(&self) {
        let what = "reserved_names_and_purge";
        let mut a = invite("p1", "example.org", 1);
        a.username = Some("juliet".to_owned());
        ok(self.invites.create_invite(&a).await, what);
        let mut old = invite("p2", "example.org", 1);
        old.expires_at = NOW - 1;
        ok(self.invites.create_invite(&old).await, what);
        let reserved = |l: &'static str, d: &'static str, t: i64| async move {
            ok(self.invites.is_reserved(l, d, t).await, what)
        };
        check(reserved("juliet", "example.org", NOW).await, true, what);
        check(reserved("juliet", "example.net", NOW).await, false, what);
        check(reserved("romeo", "example.org", NOW).await, false, what);
        check(
            reserved("juliet", "example.org", NOW + 100).await,
            false,
            &format!("{what}: not after expiry"),
        );
        check(ok(self.invites.purge_expired(NOW).await, what), 1, what);
        check(
            ok(self.invites.list_invites(None).await, what),
            vec![a],
            &format!("{what}: the valid one stays"),
        );
        check(ok(self.invites.delete_invite("p1").await, what), true, what);
    }

    async fn contact_cascade(&self) {
        let what = "contact_cascade";
        ok(
            self.accounts
                .create_account("romeo", "example.org", &[])
                .await,
            what,
        );
        let mut a = invite("k1", "example.org", 1);
        a.contact = Some(("romeo".to_owned(), "example.org".to_owned()));
        ok(self.invites.create_invite(&a).await, what);
        check(
            ok(self.invites.invite("k1").await, what),
            Some(a),
            &format!("{what}: the contact is read back"),
        );
        self.delete_account("romeo", "example.org", what).await;
        check(
            ok(self.invites.invite("k1").await, what),
            None,
            &format!("{what}: deleting the contact's account deletes the invitation"),
        );
    }
}
