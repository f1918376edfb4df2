//! Conformance suite for [`PushStore`].

use std::fmt::Debug;

use crate::{AccountStore, PushRegistration, PushStore, StorageError};

/// Runs the [`PushStore`] conformance suite against `push`, using `accounts` (of the same
/// backend) to create and delete the owning accounts.
///
/// The backend must hold no accounts; every section deletes the accounts it created, so it
/// holds none again when this returns.
///
/// # Panics
///
/// On the first violated expectation, with a message naming the section and check.
pub async fn push(accounts: &dyn AccountStore, push: &dyn PushStore) {
    let s = Suite { accounts, push };
    s.expect_no_accounts("precondition: the store must be empty")
        .await;
    s.enable_replace_disable().await;
    s.bounded_oldest_first().await;
    s.per_account_and_cascade().await;
    s.unknown_account().await;
    s.expect_no_accounts("postcondition").await;
}

const PREFIX: &str = "conformance::push";

fn ok<T>(res: Result<T, StorageError>, what: &str) -> T {
    super::ok_in(PREFIX, res, what)
}

fn check<T: PartialEq + Debug>(got: T, want: T, what: &str) {
    super::check_in(PREFIX, got, want, what);
}

fn reg(jid: &str, node: &str, options: Option<&str>) -> PushRegistration {
    PushRegistration {
        jid: jid.to_owned(),
        node: node.to_owned(),
        options: options.map(str::to_owned),
    }
}

const FORM: &str = "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>\
    <value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
    <field var='secret'><value>s3cr&amp;t „ü“</value></field></x>";

struct Suite<'a> {
    accounts: &'a dyn AccountStore,
    push: &'a dyn PushStore,
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
        self.expect(l, d, &[], &format!("{what}: deleted account"))
            .await;
    }

    async fn expect(&self, l: &str, d: &str, want: &[PushRegistration], what: &str) {
        check(
            ok(self.push.registrations(l, d).await, what),
            want.to_vec(),
            &format!("{what}: registrations of {l}@{d}"),
        );
    }

    async fn enable(&self, l: &str, d: &str, r: &PushRegistration, max: u64, what: &str) -> u64 {
        ok(
            self.push.enable(l, d, r, max).await,
            &format!("{what}: enable {}/{}", r.jid, r.node),
        )
        .evicted
    }

    async fn enable_replace_disable(&self) {
        let s = "enable, replace, disable";
        let (l, d) = ("alice", "example.org");
        self.create(l, d, s).await;
        self.expect(l, d, &[], &format!("{s}: new account")).await;
        let a = reg("push.example.net", "node-a", Some(FORM));
        let b = reg("push.example.net", "node-b", None);
        let c = reg("other.example.net", "node-a", None);
        for r in [&a, &b, &c] {
            check(
                self.enable(l, d, r, 10, s).await,
                0,
                &format!("{s}: nothing evicted"),
            );
        }
        self.expect(l, d, &[a.clone(), b.clone(), c.clone()], s)
            .await;
        // The same (jid, node) again replaces its options and becomes the newest.
        let a2 = reg(
            "push.example.net",
            "node-a",
            Some("<x xmlns='jabber:x:data'/>"),
        );
        check(
            self.enable(l, d, &a2, 10, s).await,
            0,
            &format!("{s}: replace evicts nothing"),
        );
        self.expect(
            l,
            d,
            &[b.clone(), c.clone(), a2.clone()],
            &format!("{s}: replaced"),
        )
        .await;
        // Without a node: every registration at that JID.
        check(
            ok(self.push.disable(l, d, "push.example.net", None).await, s),
            2,
            &format!("{s}: disable a whole JID"),
        );
        self.expect(
            l,
            d,
            std::slice::from_ref(&c),
            &format!("{s}: after disabling a JID"),
        )
        .await;
        check(
            ok(
                self.push
                    .disable(l, d, "other.example.net", Some("node-b"))
                    .await,
                s,
            ),
            0,
            &format!("{s}: disable another node"),
        );
        check(
            ok(
                self.push
                    .disable(l, d, "OTHER.example.net", Some("node-a"))
                    .await,
                s,
            ),
            0,
            &format!("{s}: disable is byte-exact"),
        );
        check(
            ok(
                self.push
                    .disable(l, d, "other.example.net", Some("node-a"))
                    .await,
                s,
            ),
            1,
            &format!("{s}: disable one node"),
        );
        self.expect(l, d, &[], &format!("{s}: all disabled")).await;
        self.delete(l, d, s).await;
    }

    async fn bounded_oldest_first(&self) {
        let s = "bounded";
        let (l, d) = ("alice", "example.org");
        self.create(l, d, s).await;
        let regs: Vec<PushRegistration> = (0..5)
            .map(|i| reg("push.example.net", &format!("n{i}"), None))
            .collect();
        for r in &regs[..3] {
            check(
                self.enable(l, d, r, 3, s).await,
                0,
                &format!("{s}: within the bound"),
            );
        }
        check(
            self.enable(l, d, &regs[3], 3, s).await,
            1,
            &format!("{s}: one over"),
        );
        self.expect(l, d, &regs[1..4], &format!("{s}: the oldest went"))
            .await;
        // Re-enabling the oldest makes it the newest: the next oldest goes.
        check(
            self.enable(l, d, &regs[1], 3, s).await,
            0,
            &format!("{s}: refresh"),
        );
        check(
            self.enable(l, d, &regs[4], 3, s).await,
            1,
            &format!("{s}: one over again"),
        );
        self.expect(
            l,
            d,
            &[regs[3].clone(), regs[1].clone(), regs[4].clone()],
            &format!("{s}: refreshed kept"),
        )
        .await;
        // A smaller bound removes as many as needed.
        check(
            self.enable(l, d, &regs[0], 1, s).await,
            3,
            &format!("{s}: shrink"),
        );
        self.expect(l, d, &[regs[0].clone()], &format!("{s}: shrunk"))
            .await;
        self.delete(l, d, s).await;
    }

    async fn per_account_and_cascade(&self) {
        let s = "per account";
        let a = ("alice", "example.org");
        let b = ("alice", "example.com");
        for (l, d) in [a, b] {
            self.create(l, d, s).await;
        }
        let r = reg("push.example.net", "n", Some(FORM));
        self.enable(a.0, a.1, &r, 10, s).await;
        self.expect(b.0, b.1, &[], &format!("{s}: other account untouched"))
            .await;
        check(
            ok(
                self.push.disable(b.0, b.1, "push.example.net", None).await,
                s,
            ),
            0,
            &format!("{s}: disable on another account"),
        );
        self.expect(a.0, a.1, std::slice::from_ref(&r), &format!("{s}: kept"))
            .await;
        self.delete(a.0, a.1, s).await;
        self.create(a.0, a.1, s).await;
        self.expect(
            a.0,
            a.1,
            &[],
            &format!("{s}: re-created account (delete must cascade)"),
        )
        .await;
        self.delete(a.0, a.1, s).await;
        self.delete(b.0, b.1, s).await;
    }

    async fn unknown_account(&self) {
        let s = "unknown account";
        self.create("alice", "example.com", s).await;
        let res = self
            .push
            .enable("alice", "example.org", &reg("p.example", "n", None), 10)
            .await;
        assert!(
            matches!(res, Err(StorageError::NotFound)),
            "{PREFIX}: {s}: enable: got {res:?}, want Err(NotFound)"
        );
        self.expect("alice", "example.org", &[], s).await;
        check(
            ok(
                self.push
                    .disable("alice", "example.org", "p.example", None)
                    .await,
                s,
            ),
            0,
            &format!("{s}: disable"),
        );
        check(
            ok(
                self.accounts.account_exists("alice", "example.org").await,
                s,
            ),
            false,
            &format!("{s}: enable must not create the account"),
        );
        self.delete("alice", "example.com", s).await;
    }
}
