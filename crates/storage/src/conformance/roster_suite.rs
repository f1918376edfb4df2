//! Conformance suite for [`RosterStore`].

use std::fmt::Debug;

use crate::{
    AccountStore, NewRoster, RosterCounts, RosterItem, RosterStore, StorageError, Subscription,
};

/// Runs the [`RosterStore`] conformance suite against `rosters`, using
/// `accounts` (of the same backend) to create and delete the owning accounts.
///
/// The backend must hold no accounts; every section deletes the accounts it
/// created, so it holds none again when this returns.
///
/// # Panics
///
/// On the first violated expectation, with a message naming the section and
/// check.
pub async fn rosters(accounts: &dyn AccountStore, rosters: &dyn RosterStore) {
    let s = Suite { accounts, rosters };
    s.expect_no_accounts("precondition: the store must be empty")
        .await;
    s.round_trip().await;
    s.every_subscription_and_flag().await;
    s.replace().await;
    s.remove().await;
    s.sorted().await;
    s.per_account().await;
    s.delete_account_clears_roster().await;
    s.unknown_account().await;
    s.duplicate_groups_rejected_atomically().await;
    s.bulk_insert().await;
    s.bulk_insert_is_atomic().await;
    s.counts().await;
    s.expect_no_accounts("postcondition").await;
}

const PREFIX: &str = "conformance::rosters";

fn ok<T>(res: Result<T, StorageError>, what: &str) -> T {
    super::ok_in(PREFIX, res, what)
}

fn check<T: PartialEq + Debug>(got: T, want: T, what: &str) {
    super::check_in(PREFIX, got, want, what);
}

fn check_err<T: Debug>(res: Result<T, StorageError>, want: &StorageError, what: &str) {
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

fn groups(names: &[&str]) -> Vec<String> {
    names.iter().map(|&g| g.to_owned()).collect()
}

/// An item with every field set to a non-default value.
fn full_item(jid: &str) -> RosterItem {
    RosterItem {
        jid: jid.to_owned(),
        name: Some("Jürgen „Jü“ Müller 🐦 王".to_owned()),
        subscription: Subscription::Both,
        ask_out: true,
        pending_in: true,
        preapproved: true,
        groups: groups(&["Zebra", "Ärzte", "同事", "a"]),
        pending_in_stanza: Some(format!(
            "<presence xmlns='jabber:client' from='{jid}' to='alice@example.org' \
             type='subscribe'><status>Grüß dich ✓</status></presence>"
        )),
        hidden: true,
    }
}

struct Suite<'a> {
    accounts: &'a dyn AccountStore,
    rosters: &'a dyn RosterStore,
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
            let gone = format!("{what}: cleanup: deleted account's roster (delete must cascade)");
            self.expect_version(l, d, 0, &gone).await;
            self.expect_items(l, d, &[], &gone).await;
        }
        self.expect_no_accounts(&format!("{what}: no accounts after cleanup"))
            .await;
    }

    async fn put(&self, l: &str, d: &str, item: &RosterItem, want_version: u64, what: &str) {
        let got = ok(
            self.rosters.put_item(l, d, item).await,
            &format!("{what}: put {}", item.jid),
        );
        check(
            got,
            want_version,
            &format!("{what}: version returned by put {}", item.jid),
        );
        self.expect_version(l, d, want_version, what).await;
    }

    async fn expect_version(&self, l: &str, d: &str, want: u64, what: &str) {
        check(
            ok(self.rosters.version(l, d).await, what),
            want,
            &format!("{what}: version of {l}@{d}"),
        );
    }

    async fn expect_item(
        &self,
        l: &str,
        d: &str,
        jid: &str,
        want: Option<&RosterItem>,
        what: &str,
    ) {
        check(
            ok(self.rosters.item(l, d, jid).await, what),
            want.cloned(),
            &format!("{what}: item {jid:?} of {l}@{d}"),
        );
    }

    async fn expect_counts(&self, l: &str, d: &str, visible: u64, hidden: u64, what: &str) {
        check(
            ok(self.rosters.counts(l, d).await, what),
            RosterCounts { visible, hidden },
            &format!("{what}: counts of {l}@{d}"),
        );
    }

    async fn expect_items(&self, l: &str, d: &str, want: &[RosterItem], what: &str) {
        check(
            ok(self.rosters.items(l, d).await, what),
            want.to_vec(),
            &format!("{what}: items of {l}@{d}"),
        );
    }

    async fn round_trip(&self) {
        let s = "round trip";
        let (l, d) = ("alice", "example.org");
        self.create(l, d, s).await;
        self.expect_version(l, d, 0, &format!("{s}: new account"))
            .await;
        self.expect_items(l, d, &[], &format!("{s}: new account"))
            .await;
        self.expect_item(l, d, "bob@example.org", None, &format!("{s}: new account"))
            .await;

        let full = full_item("bob@example.org");
        self.put(l, d, &full, 1, s).await;
        self.expect_item(l, d, "bob@example.org", Some(&full), s)
            .await;
        self.expect_items(l, d, std::slice::from_ref(&full), s)
            .await;

        // Absent optional fields stay absent (not "" or an empty group).
        let bare = RosterItem::new("carol@example.net");
        check(
            bare.clone(),
            RosterItem {
                jid: "carol@example.net".to_owned(),
                name: None,
                subscription: Subscription::None,
                ask_out: false,
                pending_in: false,
                preapproved: false,
                groups: Vec::new(),
                pending_in_stanza: None,
                hidden: false,
            },
            &format!("{s}: RosterItem::new"),
        );
        self.put(l, d, &bare, 2, s).await;
        self.expect_item(l, d, "carol@example.net", Some(&bare), s)
            .await;
        // Empty strings are values, distinct from None.
        let empty = RosterItem {
            name: Some(String::new()),
            pending_in_stanza: Some(String::new()),
            groups: groups(&[""]),
            ..RosterItem::new("dave@example.org")
        };
        self.put(l, d, &empty, 3, s).await;
        self.expect_item(l, d, "dave@example.org", Some(&empty), s)
            .await;
        self.expect_items(l, d, &[full.clone(), bare.clone(), empty.clone()], s)
            .await;

        // Lookups are byte-exact.
        for jid in [
            "Bob@example.org",
            "bob@example.org/res",
            "bob@example.org ",
            "bob",
        ] {
            self.expect_item(l, d, jid, None, &format!("{s}: byte-exact lookup"))
                .await;
        }
        // A read changes nothing.
        self.expect_version(l, d, 3, &format!("{s}: after reads"))
            .await;
        self.delete(&[(l, d)], s).await;
    }

    async fn every_subscription_and_flag(&self) {
        let s = "every subscription and flag";
        let (l, d) = ("alice", "example.org");
        self.create(l, d, s).await;
        let mut want = Vec::new();
        let subs = [
            Subscription::None,
            Subscription::To,
            Subscription::From,
            Subscription::Both,
        ];
        let mut version = 0;
        for (i, sub) in subs.into_iter().enumerate() {
            for flags in 0u8..8 {
                let item = RosterItem {
                    subscription: sub,
                    ask_out: flags & 1 != 0,
                    pending_in: flags & 2 != 0,
                    preapproved: flags & 4 != 0,
                    ..RosterItem::new(format!("c{i}{flags}@example.org"))
                };
                version += 1;
                self.put(l, d, &item, version, s).await;
                self.expect_item(l, d, &item.jid, Some(&item), s).await;
                want.push(item);
            }
        }
        self.expect_items(l, d, &want, s).await;
        self.delete(&[(l, d)], s).await;
    }

    async fn replace(&self) {
        let s = "replace";
        let (l, d) = ("alice", "example.org");
        self.create(l, d, s).await;
        let jid = "bob@example.org";
        let first = full_item(jid);
        self.put(l, d, &first, 1, s).await;

        // Every field changes; groups are reordered and one is dropped.
        let second = RosterItem {
            jid: jid.to_owned(),
            name: Some("Bobby".to_owned()),
            subscription: Subscription::To,
            ask_out: false,
            pending_in: false,
            preapproved: false,
            groups: groups(&["a", "Neu", "Zebra"]),
            pending_in_stanza: None,
            hidden: false,
        };
        self.put(l, d, &second, 2, s).await;
        self.expect_item(l, d, jid, Some(&second), s).await;
        self.expect_items(l, d, std::slice::from_ref(&second), s)
            .await;

        // Putting an identical item is still a change of the roster version.
        self.put(l, d, &second, 3, s).await;
        self.expect_item(l, d, jid, Some(&second), &format!("{s}: identical put"))
            .await;

        let third = RosterItem {
            name: None,
            groups: Vec::new(),
            ..first.clone()
        };
        self.put(l, d, &third, 4, s).await;
        self.expect_item(l, d, jid, Some(&third), &format!("{s}: groups cleared"))
            .await;
        self.put(l, d, &first, 5, s).await;
        self.expect_items(l, d, std::slice::from_ref(&first), &format!("{s}: back"))
            .await;
        self.delete(&[(l, d)], s).await;
    }

    async fn remove(&self) {
        let s = "remove";
        let (l, d) = ("alice", "example.org");
        self.create(l, d, s).await;
        check(
            ok(self.rosters.remove_item(l, d, "bob@example.org").await, s),
            None,
            &format!("{s}: remove from empty roster"),
        );
        self.expect_version(l, d, 0, &format!("{s}: removing nothing is no change"))
            .await;
        let bob = full_item("bob@example.org");
        let carol = full_item("carol@example.org");
        self.put(l, d, &bob, 1, s).await;
        self.put(l, d, &carol, 2, s).await;
        check(
            ok(self.rosters.remove_item(l, d, "bob@example.org").await, s),
            Some(3),
            &format!("{s}: remove existing"),
        );
        self.expect_version(l, d, 3, s).await;
        self.expect_item(l, d, "bob@example.org", None, s).await;
        self.expect_items(l, d, std::slice::from_ref(&carol), s)
            .await;
        check(
            ok(self.rosters.remove_item(l, d, "bob@example.org").await, s),
            None,
            &format!("{s}: remove again"),
        );
        check(
            ok(self.rosters.remove_item(l, d, "Carol@example.org").await, s),
            None,
            &format!("{s}: remove is byte-exact"),
        );
        self.expect_version(l, d, 3, &format!("{s}: after removing nothing"))
            .await;
        self.expect_items(l, d, std::slice::from_ref(&carol), s)
            .await;
        // Re-adding a removed item starts from scratch: no old groups linger.
        let bob2 = RosterItem::new("bob@example.org");
        self.put(l, d, &bob2, 4, s).await;
        self.expect_item(
            l,
            d,
            "bob@example.org",
            Some(&bob2),
            &format!("{s}: re-added"),
        )
        .await;
        check(
            ok(self.rosters.remove_item(l, d, "carol@example.org").await, s),
            Some(5),
            &format!("{s}: remove carol"),
        );
        check(
            ok(self.rosters.remove_item(l, d, "bob@example.org").await, s),
            Some(6),
            &format!("{s}: remove bob"),
        );
        self.expect_items(l, d, &[], &format!("{s}: all removed"))
            .await;
        self.expect_version(l, d, 6, &format!("{s}: all removed"))
            .await;
        self.delete(&[(l, d)], s).await;
    }

    async fn sorted(&self) {
        let s = "sorted";
        let (l, d) = ("alice", "example.org");
        self.create(l, d, s).await;
        let jids = [
            "zed@example.org",
            "ärger@example.org",
            "Zed@example.org",
            "alice@example.org",
            "example.net",
            "a@b",
            "zed@example.org.",
            "王@example.org",
            "alice@example.com",
        ];
        let mut want = Vec::new();
        for (i, jid) in jids.iter().enumerate() {
            let item = RosterItem {
                name: Some(format!("n{i}")),
                groups: groups(&[&format!("g{}", jids.len() - i), "shared"]),
                ..RosterItem::new(*jid)
            };
            self.put(l, d, &item, i as u64 + 1, s).await;
            want.push(item);
        }
        want.sort_by(|a, b| a.jid.cmp(&b.jid));
        self.expect_items(l, d, &want, s).await;
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
        let jid = "carol@example.net";
        let on_a = full_item(jid);
        let on_b = RosterItem {
            name: Some("other".to_owned()),
            groups: groups(&["B"]),
            ..RosterItem::new(jid)
        };
        self.put(a.0, a.1, &on_a, 1, s).await;
        self.put(a.0, a.1, &full_item("x@example.net"), 2, s).await;
        self.put(b.0, b.1, &on_b, 1, s).await;
        self.put(a.0, a.1, &on_a, 3, s).await;
        self.expect_version(b.0, b.1, 1, s).await;
        self.expect_version(c.0, c.1, 0, s).await;
        self.expect_item(a.0, a.1, jid, Some(&on_a), s).await;
        self.expect_item(b.0, b.1, jid, Some(&on_b), s).await;
        self.expect_item(c.0, c.1, jid, None, s).await;
        self.expect_items(b.0, b.1, std::slice::from_ref(&on_b), s)
            .await;
        self.expect_items(c.0, c.1, &[], s).await;

        check(
            ok(self.rosters.remove_item(b.0, b.1, jid).await, s),
            Some(2),
            &format!("{s}: remove on one account"),
        );
        self.expect_item(
            a.0,
            a.1,
            jid,
            Some(&on_a),
            &format!("{s}: other account's item kept"),
        )
        .await;
        self.expect_version(a.0, a.1, 3, &format!("{s}: other account's version kept"))
            .await;
        check(
            ok(self.rosters.remove_item(c.0, c.1, jid).await, s),
            None,
            &format!("{s}: remove item only another account has"),
        );
        self.expect_version(c.0, c.1, 0, s).await;

        // Deleting one account leaves the others' rosters alone.
        ok(
            self.accounts.delete_account(b.0, b.1).await,
            &format!("{s}: delete {}@{}", b.0, b.1),
        );
        self.expect_item(
            a.0,
            a.1,
            jid,
            Some(&on_a),
            &format!("{s}: after deleting another account"),
        )
        .await;
        self.expect_version(a.0, a.1, 3, &format!("{s}: after deleting another account"))
            .await;
        self.delete(&[a, c], s).await;
    }

    async fn delete_account_clears_roster(&self) {
        let s = "delete account clears roster";
        let (l, d) = ("alice", "example.org");
        self.create(l, d, s).await;
        let bob = full_item("bob@example.org");
        self.put(l, d, &bob, 1, s).await;
        self.put(l, d, &full_item("carol@example.org"), 2, s).await;
        self.put(l, d, &bob, 3, s).await;
        ok(self.accounts.delete_account(l, d).await, s);
        let what = format!("{s}: deleted account");
        self.expect_items(l, d, &[], &what).await;
        self.expect_item(l, d, "bob@example.org", None, &what).await;
        self.expect_version(l, d, 0, &what).await;

        self.create(l, d, s).await;
        let what = format!("{s}: re-created account (delete must cascade)");
        self.expect_version(l, d, 0, &what).await;
        self.expect_items(l, d, &[], &what).await;
        self.expect_item(l, d, "bob@example.org", None, &what).await;
        // A new item under the old JID gets no leftover groups.
        let fresh = RosterItem::new("bob@example.org");
        self.put(l, d, &fresh, 1, &what).await;
        self.expect_item(l, d, "bob@example.org", Some(&fresh), &what)
            .await;
        self.delete(&[(l, d)], s).await;
    }

    async fn unknown_account(&self) {
        let s = "unknown account";
        // Same localpart on another domain, and the other way round, exist.
        self.create("alice", "example.com", s).await;
        self.create("bob", "example.org", s).await;
        let (l, d) = ("alice", "example.org");
        let item = full_item("bob@example.org");
        check_err(
            self.rosters.put_item(l, d, &item).await,
            &StorageError::NotFound,
            &format!("{s}: put"),
        );
        check_err(
            self.rosters.remove_item(l, d, "bob@example.org").await,
            &StorageError::NotFound,
            &format!("{s}: remove"),
        );
        check_err(
            self.rosters.put_item("Alice", "example.com", &item).await,
            &StorageError::NotFound,
            &format!("{s}: put is byte-exact on the account"),
        );
        self.expect_items(l, d, &[], s).await;
        self.expect_item(l, d, "bob@example.org", None, s).await;
        self.expect_version(l, d, 0, s).await;
        for (l, d) in [("alice", "example.com"), ("bob", "example.org")] {
            let what = format!("{s}: existing account untouched");
            self.expect_items(l, d, &[], &what).await;
            self.expect_version(l, d, 0, &what).await;
        }
        check(
            ok(self.accounts.account_exists(l, d).await, s),
            false,
            &format!("{s}: put must not create the account"),
        );
        self.delete(&[("alice", "example.com"), ("bob", "example.org")], s)
            .await;
    }

    async fn duplicate_groups_rejected_atomically(&self) {
        let s = "duplicate groups";
        let (l, d) = ("alice", "example.org");
        self.create(l, d, s).await;
        let bob = full_item("bob@example.org");
        self.put(l, d, &bob, 1, s).await;
        let dup = RosterItem {
            name: Some("changed".to_owned()),
            groups: groups(&["x", "Friends", "y", "Friends"]),
            ..RosterItem::new("bob@example.org")
        };
        check_err(
            self.rosters.put_item(l, d, &dup).await,
            &StorageError::Backend("any".into()),
            &format!("{s}: replace with duplicate groups"),
        );
        let new = RosterItem {
            jid: "carol@example.org".to_owned(),
            ..dup
        };
        check_err(
            self.rosters.put_item(l, d, &new).await,
            &StorageError::Backend("any".into()),
            &format!("{s}: insert with duplicate groups"),
        );
        let what = format!("{s}: nothing changed");
        self.expect_items(l, d, std::slice::from_ref(&bob), &what)
            .await;
        self.expect_version(l, d, 1, &what).await;
        // Groups differing only in case are distinct.
        let cased = RosterItem {
            groups: groups(&["friends", "Friends"]),
            ..RosterItem::new("carol@example.org")
        };
        self.put(l, d, &cased, 2, s).await;
        self.expect_item(l, d, "carol@example.org", Some(&cased), s)
            .await;
        self.delete(&[(l, d)], s).await;
    }
    async fn bulk_insert(&self) {
        let s = "bulk insert";
        let a = ("alice", "example.org");
        let b = ("bob", "example.org");
        let c = ("carol", "example.org");
        for (l, d) in [a, b, c] {
            self.create(l, d, s).await;
        }
        ok(
            self.rosters.insert_many(&[]).await,
            &format!("{s}: empty batch"),
        );
        let existing = full_item("zed@example.org");
        self.put(a.0, a.1, &existing, 1, s).await;

        // The provisioning shape: mutual `both`, a name, no groups.
        let both = |jid: &str, name: &str| RosterItem {
            name: Some(name.to_owned()),
            subscription: Subscription::Both,
            ..RosterItem::new(jid)
        };
        let a_first = [
            both("bob@example.org", "bob"),
            full_item("dave@example.net"),
        ];
        let a_second = [both("carol@example.org", "carol")];
        // Many items for one account, crossing any multi-row chunking, in
        // reverse order, every seventh with groups and every fifth hidden.
        let b_items: Vec<RosterItem> = (0..250u32)
            .rev()
            .map(|i| RosterItem {
                groups: if i.is_multiple_of(7) {
                    groups(&[&format!("g{i}"), "seven"])
                } else {
                    Vec::new()
                },
                hidden: i.is_multiple_of(5),
                pending_in: i.is_multiple_of(3),
                ..both(&format!("c{i:03}@example.net"), &format!("c{i}"))
            })
            .collect();
        let entry = |(l, d): (&'static str, &'static str), items| NewRoster {
            localpart: l,
            domain: d,
            items,
        };
        ok(
            self.rosters
                .insert_many(&[
                    entry(a, &a_first),
                    entry(b, &b_items),
                    entry(c, &[]),
                    entry(a, &a_second),
                ])
                .await,
            &format!("{s}: insert"),
        );
        let mut want_a = vec![
            a_first[0].clone(),
            a_second[0].clone(),
            a_first[1].clone(),
            existing.clone(),
        ];
        self.expect_items(a.0, a.1, &want_a, s).await;
        self.expect_item(a.0, a.1, "dave@example.net", Some(&a_first[1]), s)
            .await;
        self.expect_version(
            a.0,
            a.1,
            3,
            &format!("{s}: one increment per non-empty entry"),
        )
        .await;
        let mut want_b = b_items.clone();
        want_b.sort_by(|x, y| x.jid.cmp(&y.jid));
        self.expect_items(b.0, b.1, &want_b, s).await;
        self.expect_version(b.0, b.1, 1, &format!("{s}: one increment for 250 items"))
            .await;
        self.expect_items(c.0, c.1, &[], s).await;
        self.expect_version(c.0, c.1, 0, &format!("{s}: an empty entry is no change"))
            .await;

        // The single-item methods carry on from there.
        let changed = RosterItem {
            groups: groups(&["after"]),
            ..a_first[0].clone()
        };
        self.put(a.0, a.1, &changed, 4, &format!("{s}: put after bulk"))
            .await;
        check(
            ok(
                self.rosters
                    .remove_item(a.0, a.1, "carol@example.org")
                    .await,
                s,
            ),
            Some(5),
            &format!("{s}: remove after bulk"),
        );
        want_a[0] = changed;
        want_a.remove(1);
        self.expect_items(a.0, a.1, &want_a, &format!("{s}: after put and remove"))
            .await;
        // Deleting the accounts clears the bulk-inserted rosters.
        self.delete(&[a, b, c], s).await;
    }

    async fn bulk_insert_is_atomic(&self) {
        let s = "bulk insert atomic";
        let a = ("alice", "example.org");
        let b = ("bob", "example.org");
        for (l, d) in [a, b] {
            self.create(l, d, s).await;
        }
        let on_a = full_item("zed@example.org");
        self.put(a.0, a.1, &on_a, 1, s).await;
        let new = [RosterItem::new("new@example.org")];
        let entry = |(l, d): (&'static str, &'static str), items| NewRoster {
            localpart: l,
            domain: d,
            items,
        };
        let unchanged = async |what: &str| {
            let what = format!("{s}: {what}: nothing changed");
            self.expect_items(a.0, a.1, std::slice::from_ref(&on_a), &what)
                .await;
            self.expect_version(a.0, a.1, 1, &what).await;
            self.expect_items(b.0, b.1, &[], &what).await;
            self.expect_version(b.0, b.1, 0, &what).await;
        };

        let what = "unknown account";
        check_err(
            self.rosters
                .insert_many(&[entry(b, &new), entry(("ghost", "example.org"), &new)])
                .await,
            &StorageError::NotFound,
            &format!("{s}: {what}"),
        );
        unchanged(what).await;
        let what = "unknown account without items";
        check_err(
            self.rosters
                .insert_many(&[entry(b, &new), entry(("alice", "example.com"), &[])])
                .await,
            &StorageError::NotFound,
            &format!("{s}: {what}"),
        );
        unchanged(what).await;
        check(
            ok(
                self.accounts.account_exists("ghost", "example.org").await,
                s,
            ),
            false,
            &format!("{s}: insert_many must not create an account"),
        );

        let what = "item already on the roster";
        let clash = [
            RosterItem::new("new@example.org"),
            RosterItem::new("zed@example.org"),
        ];
        check_err(
            self.rosters
                .insert_many(&[entry(b, &new), entry(a, &clash)])
                .await,
            &StorageError::AlreadyExists,
            &format!("{s}: {what}"),
        );
        unchanged(what).await;

        let what = "same jid twice in one entry";
        let twice = [
            RosterItem::new("x@example.org"),
            RosterItem::new("y@example.org"),
            RosterItem::new("x@example.org"),
        ];
        check_err(
            self.rosters.insert_many(&[entry(b, &twice)]).await,
            &StorageError::AlreadyExists,
            &format!("{s}: {what}"),
        );
        unchanged(what).await;

        let what = "same jid in two entries for one account";
        check_err(
            self.rosters
                .insert_many(&[entry(b, &new), entry(a, &[]), entry(b, &new)])
                .await,
            &StorageError::AlreadyExists,
            &format!("{s}: {what}"),
        );
        unchanged(what).await;

        let what = "duplicate groups";
        let dup = [RosterItem {
            groups: groups(&["x", "y", "x"]),
            ..RosterItem::new("dup@example.org")
        }];
        check_err(
            self.rosters
                .insert_many(&[entry(b, &new), entry(a, &dup)])
                .await,
            &StorageError::Backend("any".into()),
            &format!("{s}: {what}"),
        );
        unchanged(what).await;

        // The same jid on two different accounts is no clash.
        ok(
            self.rosters
                .insert_many(&[entry(b, &new), entry(a, &new)])
                .await,
            &format!("{s}: same jid for two accounts"),
        );
        self.expect_items(b.0, b.1, &new, s).await;
        self.expect_version(b.0, b.1, 1, s).await;
        self.expect_items(a.0, a.1, &[new[0].clone(), on_a.clone()], s)
            .await;
        self.expect_version(a.0, a.1, 2, s).await;
        self.delete(&[a, b], s).await;
    }

    /// `counts`: visible and hidden items, kept current by every kind of change, per account.
    async fn counts(&self) {
        let s = "counts";
        let a = ("alice", "example.org");
        let b = ("alice", "example.com");
        for (l, d) in [a, b] {
            self.create(l, d, s).await;
        }
        self.expect_counts(a.0, a.1, 0, 0, &format!("{s}: empty roster"))
            .await;
        self.expect_counts("nobody", a.1, 0, 0, &format!("{s}: unknown account"))
            .await;

        let visible = |jid: &str| RosterItem {
            pending_in: true,
            ..RosterItem::new(jid)
        };
        let hidden = |jid: &str| RosterItem {
            hidden: true,
            pending_in: true,
            ..RosterItem::new(jid)
        };
        self.put(a.0, a.1, &visible("v1@example.net"), 1, s).await;
        self.put(a.0, a.1, &full_item("h1@example.net"), 2, s).await;
        self.put(a.0, a.1, &hidden("h2@example.net"), 3, s).await;
        self.expect_counts(a.0, a.1, 1, 2, &format!("{s}: after puts"))
            .await;
        self.expect_counts(b.0, b.1, 0, 0, &format!("{s}: other account"))
            .await;

        // Replacing an item moves it between the counts, and never counts it twice.
        self.put(a.0, a.1, &visible("h2@example.net"), 4, s).await;
        self.put(a.0, a.1, &visible("h2@example.net"), 5, s).await;
        self.expect_counts(a.0, a.1, 2, 1, &format!("{s}: hidden item made visible"))
            .await;
        self.put(a.0, a.1, &hidden("v1@example.net"), 6, s).await;
        self.expect_counts(a.0, a.1, 1, 2, &format!("{s}: visible item hidden"))
            .await;
        check(
            ok(
                self.rosters.remove_item(a.0, a.1, "h1@example.net").await,
                s,
            ),
            Some(7),
            &format!("{s}: remove"),
        );
        self.expect_counts(a.0, a.1, 1, 1, &format!("{s}: after remove"))
            .await;

        // Bulk inserts count like puts.
        let many: Vec<RosterItem> = (0..30u32)
            .map(|i| {
                if i.is_multiple_of(3) {
                    hidden(&format!("b{i:02}@example.net"))
                } else {
                    visible(&format!("b{i:02}@example.net"))
                }
            })
            .collect();
        ok(
            self.rosters
                .insert_many(&[NewRoster {
                    localpart: b.0,
                    domain: b.1,
                    items: &many,
                }])
                .await,
            &format!("{s}: bulk insert"),
        );
        self.expect_counts(b.0, b.1, 20, 10, &format!("{s}: after bulk insert"))
            .await;
        self.expect_counts(
            a.0,
            a.1,
            1,
            1,
            &format!("{s}: other account after bulk insert"),
        )
        .await;

        ok(
            self.accounts.delete_account(b.0, b.1).await,
            &format!("{s}: delete {}@{}", b.0, b.1),
        );
        self.expect_counts(b.0, b.1, 0, 0, &format!("{s}: deleted account"))
            .await;
        self.delete(&[a], s).await;
    }
}
