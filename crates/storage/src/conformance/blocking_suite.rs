//! Conformance suite for [`BlockingStore`].

use std::fmt::Debug;

use crate::{AbuseReport, AccountStore, BlockedJid, BlockingStore, StorageError};

/// Runs the [`BlockingStore`] conformance suite against `blocking`, using `accounts` (of the
/// same backend) to create and delete the owning accounts.
///
/// The backend must hold no accounts; every section deletes the accounts it created, so it holds
/// none again when this returns.
///
/// # Panics
///
/// On the first violated expectation, with a message naming the section and check.
pub async fn blocking(accounts: &dyn AccountStore, blocking: &dyn BlockingStore) {
    let s = Suite { accounts, blocking };
    s.expect_no_accounts("precondition: the store must be empty")
        .await;
    s.unknown_account().await;
    s.block_and_unblock().await;
    s.per_account().await;
    s.reports().await;
    s.delete_account_clears_all().await;
    s.expect_no_accounts("postcondition").await;
}

const PREFIX: &str = "conformance::blocking";
const D: &str = "example.org";

fn ok<T>(res: Result<T, StorageError>, what: &str) -> T {
    super::ok_in(PREFIX, res, what)
}

fn check<T: PartialEq + Debug>(got: T, want: T, what: &str) {
    super::check_in(PREFIX, got, want, what);
}

fn jids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn report(l: &str, jid: &str, reason: &str, received_us: i64) -> AbuseReport {
    AbuseReport {
        localpart: l.to_owned(),
        domain: D.to_owned(),
        jid: jid.to_owned(),
        reason: reason.to_owned(),
        text: None,
        stanza_ids: Vec::new(),
        received_us,
    }
}

struct Suite<'a> {
    accounts: &'a dyn AccountStore,
    blocking: &'a dyn BlockingStore,
}

impl Suite<'_> {
    async fn expect_no_accounts(&self, what: &str) {
        super::expect_no_accounts_in(PREFIX, self.accounts, what).await;
    }

    async fn create(&self, l: &str, what: &str) {
        super::create_account_in(PREFIX, self.accounts, l, D, what).await;
    }

    async fn delete(&self, l: &str, what: &str) {
        ok(
            self.accounts.delete_account(l, D).await,
            &format!("{what}: delete account {l}@{D}"),
        );
    }

    async fn expect_list(&self, l: &str, want: &[&str], what: &str) {
        check(
            ok(self.blocking.blocklist(l, D).await, what),
            jids(want),
            &format!("{what}: blocklist of {l}@{D}"),
        );
    }

    async fn unknown_account(&self) {
        let s = "unknown account";
        self.expect_list("nobody", &[], s).await;
        let res = self
            .blocking
            .block("nobody", D, &jids(&["spam@example.net"]))
            .await;
        assert!(
            matches!(res, Err(StorageError::NotFound)),
            "{PREFIX}: {s}: block: got {res:?}, want Err(NotFound)"
        );
        check(
            ok(
                self.blocking
                    .unblock("nobody", D, &jids(&["spam@example.net"]))
                    .await,
                s,
            ),
            Vec::<String>::new(),
            &format!("{s}: unblock"),
        );
        check(
            ok(self.blocking.unblock_all("nobody", D).await, s),
            Vec::<String>::new(),
            &format!("{s}: unblock all"),
        );
        let res = self
            .blocking
            .add_report(&report("nobody", "spam@example.net", "r", 1))
            .await;
        assert!(
            matches!(res, Err(StorageError::NotFound)),
            "{PREFIX}: {s}: report: got {res:?}, want Err(NotFound)"
        );
        check(
            ok(self.blocking.all_blocklists().await, s),
            Vec::new(),
            &format!("{s}: nothing stored"),
        );
    }

    async fn block_and_unblock(&self) {
        let s = "block and unblock";
        self.create("alice", s).await;
        self.expect_list("alice", &[], &format!("{s}: new account"))
            .await;
        // Every kind of JID a blocklist holds, stored as given, in order.
        let first = jids(&[
            "romeo@montague.net",
            "iago@shakespeare.lit/evil",
            "spam.example",
            "example.com/bot",
            "Ünïcödé@例え.テスト",
        ]);
        check(
            ok(self.blocking.block("alice", D, &first).await, s),
            first.clone(),
            &format!("{s}: all added"),
        );
        // Blocking again, and naming a JID twice, adds only what is new.
        check(
            ok(
                self.blocking
                    .block(
                        "alice",
                        D,
                        &jids(&["spam.example", "new@x.org", "new@x.org"]),
                    )
                    .await,
                s,
            ),
            jids(&["new@x.org"]),
            &format!("{s}: only new ones added"),
        );
        self.expect_list(
            "alice",
            &[
                "romeo@montague.net",
                "iago@shakespeare.lit/evil",
                "spam.example",
                "example.com/bot",
                "Ünïcödé@例え.テスト",
                "new@x.org",
            ],
            s,
        )
        .await;
        // Byte-for-byte: another case is another JID.
        check(
            ok(
                self.blocking
                    .unblock("alice", D, &jids(&["ROMEO@montague.net", "spam.example"]))
                    .await,
                s,
            ),
            jids(&["spam.example"]),
            &format!("{s}: unblock returns what was there"),
        );
        self.expect_list(
            "alice",
            &[
                "romeo@montague.net",
                "iago@shakespeare.lit/evil",
                "example.com/bot",
                "Ünïcödé@例え.テスト",
                "new@x.org",
            ],
            &format!("{s}: after unblock"),
        )
        .await;
        // Blocked again after an unblock: at the end of the order.
        ok(
            self.blocking
                .block("alice", D, &jids(&["spam.example"]))
                .await,
            s,
        );
        check(
            ok(self.blocking.unblock_all("alice", D).await, s),
            jids(&[
                "romeo@montague.net",
                "iago@shakespeare.lit/evil",
                "example.com/bot",
                "Ünïcödé@例え.テスト",
                "new@x.org",
                "spam.example",
            ]),
            &format!("{s}: unblock all returns the list in order"),
        );
        self.expect_list("alice", &[], &format!("{s}: empty after unblock all"))
            .await;
        check(
            ok(self.blocking.unblock_all("alice", D).await, s),
            Vec::<String>::new(),
            &format!("{s}: unblock all of an empty list"),
        );
        // An empty block changes nothing.
        check(
            ok(self.blocking.block("alice", D, &[]).await, s),
            Vec::<String>::new(),
            &format!("{s}: empty block"),
        );
        self.delete("alice", s).await;
    }

    async fn per_account(&self) {
        let s = "per account";
        self.create("alice", s).await;
        self.create("bob", s).await;
        self.create("carol", s).await;
        ok(
            self.blocking
                .block("alice", D, &jids(&["x@y.z", "spam.example"]))
                .await,
            s,
        );
        ok(self.blocking.block("bob", D, &jids(&["x@y.z"])).await, s);
        self.expect_list("carol", &[], s).await;
        let mut all = ok(self.blocking.all_blocklists().await, s);
        all.sort_by(|a, b| (&a.localpart, &a.jid).cmp(&(&b.localpart, &b.jid)));
        let entry = |l: &str, jid: &str| BlockedJid {
            localpart: l.to_owned(),
            domain: D.to_owned(),
            jid: jid.to_owned(),
        };
        check(
            all,
            vec![
                entry("alice", "spam.example"),
                entry("alice", "x@y.z"),
                entry("bob", "x@y.z"),
            ],
            &format!("{s}: all blocklists"),
        );
        // The order within one account holds in the full listing too.
        let alice: Vec<String> = ok(self.blocking.all_blocklists().await, s)
            .into_iter()
            .filter(|b| b.localpart == "alice")
            .map(|b| b.jid)
            .collect();
        check(
            alice,
            jids(&["x@y.z", "spam.example"]),
            &format!("{s}: order in all"),
        );
        ok(self.blocking.unblock_all("alice", D).await, s);
        self.expect_list("bob", &["x@y.z"], &format!("{s}: other kept"))
            .await;
        for l in ["alice", "bob", "carol"] {
            self.delete(l, s).await;
        }
    }

    async fn reports(&self) {
        let s = "reports";
        self.create("alice", s).await;
        self.create("bob", s).await;
        let full = AbuseReport {
            text: Some("Never came trouble to my house like this. <&>".to_owned()),
            stanza_ids: jids(&["28482-98726-73623", "38383-38018-18385"]),
            ..report(
                "alice",
                "romeo@example.net",
                "urn:xmpp:reporting:spam",
                1_700_000_000_000_000,
            )
        };
        ok(self.blocking.add_report(&full).await, s);
        let second = report(
            "bob",
            "romeo@example.net",
            "urn:xmpp:reporting:abuse",
            1_700_000_000_000_001,
        );
        ok(self.blocking.add_report(&second).await, s);
        let third = report(
            "alice",
            "other@example.net",
            "urn:xmpp:reporting:spam",
            1_700_000_000_000_002,
        );
        ok(self.blocking.add_report(&third).await, s);

        let all = ok(self.blocking.reports(None, 10).await, s);
        check(
            all.iter().map(|r| r.report.clone()).collect::<Vec<_>>(),
            vec![third.clone(), second.clone(), full.clone()],
            &format!("{s}: newest first, round trip"),
        );
        check(
            all.windows(2).all(|w| w[0].id > w[1].id),
            true,
            &format!("{s}: ids increase"),
        );
        check(
            ok(self.blocking.reports(None, 1).await, s)
                .into_iter()
                .map(|r| r.report)
                .collect::<Vec<_>>(),
            vec![third],
            &format!("{s}: limit"),
        );
        check(
            ok(
                self.blocking.reports(Some("romeo@example.net"), 10).await,
                s,
            )
            .into_iter()
            .map(|r| r.report)
            .collect::<Vec<_>>(),
            vec![second.clone(), full],
            &format!("{s}: by JID"),
        );
        // Reports are the reporter's: deleting alice deletes hers, not bob's.
        self.delete("alice", s).await;
        check(
            ok(self.blocking.reports(None, 10).await, s)
                .into_iter()
                .map(|r| r.report)
                .collect::<Vec<_>>(),
            vec![second],
            &format!("{s}: reporter deleted"),
        );
        self.delete("bob", s).await;
    }

    async fn delete_account_clears_all(&self) {
        let s = "delete account";
        self.create("alice", s).await;
        ok(self.blocking.block("alice", D, &jids(&["x@y.z"])).await, s);
        self.delete("alice", s).await;
        // Created again, the account starts with nothing blocked.
        self.create("alice", s).await;
        self.expect_list("alice", &[], s).await;
        check(
            ok(self.blocking.all_blocklists().await, s),
            Vec::new(),
            &format!("{s}: nothing left"),
        );
        self.delete("alice", s).await;
    }
}
