//! Conformance suite for [`FastTokenStore`], and the part of [`AccountStore`]'s contract that
//! concerns it (a new password and a deletion revoke every token).

use std::fmt::Debug;

use crate::{AccountStore, Credential, FastSlot, FastToken, FastTokenStore, FastUse, StorageError};

/// Runs the [`FastTokenStore`] conformance suite against `fast`, using `accounts` (of the same
/// backend) to create, re-credential and delete the owning accounts.
///
/// The backend must hold no accounts; every section deletes the accounts it created, so it
/// holds none again when this returns.
///
/// # Panics
///
/// On the first violated expectation, with a message naming the section and check.
pub async fn fast(accounts: &dyn AccountStore, fast: &dyn FastTokenStore) {
    let s = Suite { accounts, fast };
    s.expect_no_accounts("precondition: the store must be empty")
        .await;
    s.issue_and_rotate().await;
    s.counts().await;
    s.revocation().await;
    s.password_change_and_deletion_revoke().await;
    s.expiry().await;
    s.unknown_account().await;
    s.expect_no_accounts("postcondition").await;
}

const PREFIX: &str = "conformance::fast";

fn ok<T>(res: Result<T, StorageError>, what: &str) -> T {
    super::ok_in(PREFIX, res, what)
}

fn check<T: PartialEq + Debug>(got: T, want: T, what: &str) {
    super::check_in(PREFIX, got, want, what);
}

fn token(ua: &str, mech: &str, seed: u8, expires_at: i64) -> FastToken {
    FastToken {
        user_agent: ua.to_owned(),
        mechanism: mech.to_owned(),
        // Zero bytes included: the nonce is arbitrary bytes.
        nonce: vec![seed, 0, seed, 0xff],
        expires_at,
        slot: FastSlot::New,
        last_count: None,
    }
}

fn with(t: &FastToken, slot: FastSlot, last_count: Option<u64>) -> FastToken {
    FastToken {
        slot,
        last_count,
        ..t.clone()
    }
}

const UA: &str = "d4565fa7-4d72-4749-b3d3-740edbf87770";
const UA2: &str = "5d9f2d7e-6a3b-4c1e-9f4e-2b8a7c6d5e4f";
const NONE: &str = "HT-SHA-256-NONE";

struct Suite<'a> {
    accounts: &'a dyn AccountStore,
    fast: &'a dyn FastTokenStore,
}

impl Suite<'_> {
    async fn expect_no_accounts(&self, what: &str) {
        super::expect_no_accounts_in(PREFIX, self.accounts, what).await;
    }

    async fn create(&self, l: &str, d: &str, what: &str) {
        super::create_account_in(PREFIX, self.accounts, l, d, what).await;
    }

    async fn delete(&self, l: &str, d: &str, what: &str) {
        ok(
            self.accounts.delete_account(l, d).await,
            &format!("{what}: delete account {l}@{d}"),
        );
    }

    /// The tokens of `ua`, current first.
    async fn tokens(&self, l: &str, d: &str, ua: &str, what: &str) -> Vec<FastToken> {
        let mut t = ok(self.fast.tokens(l, d, ua).await, what);
        t.sort_by_key(|t| t.slot == FastSlot::New);
        t
    }

    async fn issue(&self, l: &str, d: &str, t: &FastToken, what: &str) {
        ok(self.fast.issue(l, d, t).await, what);
    }

    async fn use_token(&self, l: &str, d: &str, t: &FastToken, count: Option<u64>) -> FastUse {
        ok(
            self.fast
                .use_token(l, d, &t.user_agent, &t.nonce, count)
                .await,
            "use_token",
        )
    }

    /// XEP-0484 §4.5 and §7.1: issue into New, promote on use, keep the previous token until
    /// the new one is used, replace a never-used New.
    async fn issue_and_rotate(&self) {
        let (l, d) = ("alice", "example.org");
        self.create(l, d, "rotate").await;
        check(self.tokens(l, d, UA, "no tokens").await, vec![], "fresh");
        let t1 = token(UA, NONE, 1, 1_000);
        self.issue(l, d, &t1, "issue t1").await;
        check(
            self.tokens(l, d, UA, "after issue").await,
            vec![with(&t1, FastSlot::New, None)],
            "issued into the New slot",
        );
        check(
            self.use_token(l, d, &t1, None).await,
            FastUse::Accepted,
            "use t1",
        );
        check(
            self.tokens(l, d, UA, "after use").await,
            vec![with(&t1, FastSlot::Current, None)],
            "a used token is Current",
        );
        // Rotation: t2 is issued; t1 stays valid until t2 is used.
        let t2 = token(UA, NONE, 2, 2_000);
        self.issue(l, d, &t2, "issue t2").await;
        check(
            self.tokens(l, d, UA, "rotated").await,
            vec![
                with(&t1, FastSlot::Current, None),
                with(&t2, FastSlot::New, None),
            ],
            "both valid while t2 is unused",
        );
        // Using the current one again keeps t2 waiting.
        check(
            self.use_token(l, d, &t1, None).await,
            FastUse::Accepted,
            "t1 again",
        );
        check(
            self.tokens(l, d, UA, "t1 again").await.len(),
            2,
            "t2 still waits",
        );
        // A third token issued before t2 was used replaces t2.
        let t3 = token(UA, NONE, 3, 3_000);
        self.issue(l, d, &t3, "issue t3").await;
        check(
            self.tokens(l, d, UA, "replaced").await,
            vec![
                with(&t1, FastSlot::Current, None),
                with(&t3, FastSlot::New, None),
            ],
            "an unused New token is replaced",
        );
        check(
            self.use_token(l, d, &t2, None).await,
            FastUse::Gone,
            "t2 gone",
        );
        // Using t3 invalidates t1.
        check(
            self.use_token(l, d, &t3, None).await,
            FastUse::Accepted,
            "use t3",
        );
        check(
            self.tokens(l, d, UA, "promoted").await,
            vec![with(&t3, FastSlot::Current, None)],
            "the older token is gone once the newer is used",
        );
        check(
            self.use_token(l, d, &t1, None).await,
            FastUse::Gone,
            "t1 gone",
        );
        // Another client of the same account is separate.
        let other = token(UA2, "HT-SHA-256-EXPR", 4, 4_000);
        self.issue(l, d, &other, "other client").await;
        check(
            self.tokens(l, d, UA2, "other client").await,
            vec![with(&other, FastSlot::New, None)],
            "per user agent",
        );
        check(
            self.tokens(l, d, UA, "first client").await,
            vec![with(&t3, FastSlot::Current, None)],
            "the first client's token is untouched",
        );
        self.delete(l, d, "rotate").await;
    }

    /// XEP-0484 §4.4: a `count` must grow per token; a replay changes nothing.
    async fn counts(&self) {
        let (l, d) = ("bob", "example.org");
        self.create(l, d, "counts").await;
        let t = token(UA, NONE, 5, 1_000);
        self.issue(l, d, &t, "issue").await;
        check(
            self.use_token(l, d, &t, Some(3)).await,
            FastUse::Accepted,
            "count 3",
        );
        check(
            self.use_token(l, d, &t, Some(3)).await,
            FastUse::Replayed,
            "count 3 again",
        );
        check(
            self.use_token(l, d, &t, Some(2)).await,
            FastUse::Replayed,
            "count 2",
        );
        check(
            self.tokens(l, d, UA, "after replays").await,
            vec![with(&t, FastSlot::Current, Some(3))],
            "a replay changes nothing",
        );
        check(
            self.use_token(l, d, &t, Some(4)).await,
            FastUse::Accepted,
            "count 4",
        );
        // Without a count: accepted, the highest count stays.
        check(
            self.use_token(l, d, &t, None).await,
            FastUse::Accepted,
            "no count",
        );
        check(
            self.tokens(l, d, UA, "after 4").await,
            vec![with(&t, FastSlot::Current, Some(4))],
            "the highest count is kept",
        );
        // The full u64 range round-trips.
        check(
            self.use_token(l, d, &t, Some(u64::MAX)).await,
            FastUse::Accepted,
            "count u64::MAX",
        );
        check(
            self.tokens(l, d, UA, "max").await,
            vec![with(&t, FastSlot::Current, Some(u64::MAX))],
            "u64::MAX stored",
        );
        self.delete(l, d, "counts").await;
    }

    /// XEP-0484 §4.6 (`invalidate`) and an administrator's `revoke_all`.
    async fn revocation(&self) {
        let (l, d) = ("carol", "example.org");
        self.create(l, d, "revoke").await;
        let t1 = token(UA, NONE, 6, 1_000);
        let t2 = token(UA2, NONE, 7, 1_000);
        self.issue(l, d, &t1, "t1").await;
        self.issue(l, d, &t2, "t2").await;
        check(
            ok(self.fast.revoke(l, d, UA, &t1.nonce).await, "revoke t1"),
            true,
            "revoke an existing token",
        );
        check(
            ok(
                self.fast.revoke(l, d, UA, &t1.nonce).await,
                "revoke t1 again",
            ),
            false,
            "revoke a revoked token",
        );
        check(self.tokens(l, d, UA, "revoked").await, vec![], "t1 gone");
        check(
            self.use_token(l, d, &t1, None).await,
            FastUse::Gone,
            "use revoked",
        );
        self.issue(l, d, &t1, "t1 again").await;
        check(
            ok(self.fast.revoke_all(l, d).await, "revoke_all"),
            2,
            "revoke_all counts",
        );
        check(self.tokens(l, d, UA, "all").await, vec![], "ua1 empty");
        check(self.tokens(l, d, UA2, "all").await, vec![], "ua2 empty");
        check(
            ok(self.fast.revoke_all(l, d).await, "revoke_all again"),
            0,
            "nothing left",
        );
        self.delete(l, d, "revoke").await;
    }

    /// `AccountStore::set_credentials` and `delete_account` revoke every token, and only the
    /// account's own.
    async fn password_change_and_deletion_revoke(&self) {
        let (d, l, other) = ("example.org", "dave", "erin");
        self.create(l, d, "password").await;
        self.create(other, d, "password").await;
        let t = token(UA, NONE, 8, 1_000);
        self.issue(l, d, &t, "dave's").await;
        self.issue(other, d, &t, "erin's").await;
        let cred = Credential {
            mechanism: "SCRAM-SHA-256".to_owned(),
            salt: vec![1, 2, 3],
            iterations: 4096,
            stored_key: vec![0; 32],
            server_key: vec![1; 32],
        };
        ok(
            self.accounts
                .set_credentials(l, d, std::slice::from_ref(&cred))
                .await,
            "set_credentials",
        );
        check(
            self.tokens(l, d, UA, "after password change").await,
            vec![],
            "a new password revokes the account's tokens",
        );
        check(
            self.tokens(other, d, UA, "other account").await.len(),
            1,
            "another account's tokens stay",
        );
        // Disabling the account revokes them too; re-enabling brings none back.
        self.issue(l, d, &t, "dave's before disabling").await;
        ok(self.accounts.set_disabled(l, d, true).await, "disable");
        check(
            self.tokens(l, d, UA, "after disabling").await,
            vec![],
            "disabling the account revokes its tokens",
        );
        ok(self.accounts.set_disabled(l, d, false).await, "re-enable");
        check(
            self.tokens(other, d, UA, "other account after disabling")
                .await
                .len(),
            1,
            "another account's tokens stay when one is disabled",
        );
        // A failed set_credentials (unknown account) changes nothing anywhere.
        let res = self.accounts.set_credentials("nobody", d, &[cred]).await;
        assert!(
            matches!(res, Err(StorageError::NotFound)),
            "{PREFIX}: set_credentials of an unknown account: got {res:?}"
        );
        self.issue(l, d, &t, "dave's again").await;
        self.delete(l, d, "deletion").await;
        check(
            self.tokens(l, d, UA, "deleted account").await,
            vec![],
            "deleting the account deletes its tokens",
        );
        // Re-created under the same name: no token comes back.
        self.create(l, d, "re-created").await;
        check(
            self.tokens(l, d, UA, "re-created").await,
            vec![],
            "a new account of the same name has no tokens",
        );
        self.delete(l, d, "re-created").await;
        self.delete(other, d, "other").await;
    }

    async fn expiry(&self) {
        let (l, d) = ("frank", "example.org");
        self.create(l, d, "expiry").await;
        let old = token(UA, NONE, 9, 100);
        let new = token(UA2, NONE, 10, 300);
        self.issue(l, d, &old, "old").await;
        self.issue(l, d, &new, "new").await;
        check(
            ok(self.fast.delete_expired(200).await, "delete_expired"),
            1,
            "one expired",
        );
        check(self.tokens(l, d, UA, "expired").await, vec![], "old gone");
        check(
            self.tokens(l, d, UA2, "valid").await.len(),
            1,
            "a token expiring later stays",
        );
        // Expiring exactly at `now` is not yet expired.
        check(
            ok(self.fast.delete_expired(300).await, "delete_expired at"),
            0,
            "expires_at == now stays",
        );
        self.delete(l, d, "expiry").await;
    }

    async fn unknown_account(&self) {
        let t = token(UA, NONE, 11, 1_000);
        let res = self.fast.issue("nobody", "example.org", &t).await;
        assert!(
            matches!(res, Err(StorageError::NotFound)),
            "{PREFIX}: issue for an unknown account: got {res:?}"
        );
        check(
            self.tokens("nobody", "example.org", UA, "unknown").await,
            vec![],
            "no tokens for an unknown account",
        );
        check(
            self.use_token("nobody", "example.org", &t, None).await,
            FastUse::Gone,
            "use for an unknown account",
        );
        check(
            ok(
                self.fast.revoke_all("nobody", "example.org").await,
                "revoke_all",
            ),
            0,
            "revoke_all of an unknown account",
        );
    }
}
