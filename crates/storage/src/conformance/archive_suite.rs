//! Conformance suite for [`ArchiveStore`].

use std::fmt::Debug;

use crate::{
    AccountStore, ArchiveBound, ArchiveDefault, ArchivePage, ArchivePrefs, ArchiveQuery,
    ArchiveStore, ArchivedMessage, NewArchived, PagePosition, StorageError, WithFilter,
};

/// Runs the [`ArchiveStore`] conformance suite against `archive`, using
/// `accounts` (of the same backend) to create and delete the owning accounts.
///
/// The backend must hold no accounts; every section deletes the accounts it
/// created, so it holds none again when this returns.
///
/// # Panics
///
/// On the first violated expectation, with a message naming the section and
/// check.
pub async fn archive(accounts: &dyn AccountStore, archive: &dyn ArchiveStore) {
    let s = Suite { accounts, archive };
    s.expect_no_accounts("precondition: the store must be empty")
        .await;
    s.unknown_account().await;
    s.order_and_round_trip().await;
    s.paging().await;
    s.filters().await;
    s.unknown_ids().await;
    s.fulltext().await;
    s.batches().await;
    s.prefs().await;
    s.retention().await;
    s.delete_account_clears_archive().await;
    s.expect_no_accounts("postcondition").await;
}

const PREFIX: &str = "conformance::archive";
const D: &str = "example.org";

fn ok<T>(res: Result<T, StorageError>, what: &str) -> T {
    super::ok_in(PREFIX, res, what)
}

fn check<T: PartialEq + Debug>(got: T, want: T, what: &str) {
    super::check_in(PREFIX, got, want, what);
}

fn check_err<T: Debug>(res: Result<T, StorageError>, want: &str, what: &str) {
    super::expect_err_in(PREFIX, res, want, what);
}

/// Message `n` of `owner`'s archive with `with` (a full or bare JID) at `ts`.
fn msg(owner: &str, n: u32, with: &str, ts: i64, body: Option<&str>) -> NewArchived {
    let (bare, resource) = match with.split_once('/') {
        Some((b, r)) => (b, r),
        None => (with, ""),
    };
    let body_xml = body
        .map(|b| format!("<body>{b}</body>"))
        .unwrap_or_default();
    NewArchived {
        localpart: owner.to_owned(),
        domain: D.to_owned(),
        id: format!("{owner}-id-{n}"),
        timestamp_us: ts,
        with: bare.to_owned(),
        with_resource: resource.to_owned(),
        stanza: format!(
            "<message xmlns='jabber:client' from='{with}' to='{owner}@{D}/phone' type='chat' \
             id='m{n}'>{body_xml}<stanza-id xmlns='urn:xmpp:sid:0' by='{owner}@{D}' \
             id='{owner}-id-{n}'/></message>"
        ),
        body: body.map(str::to_owned),
    }
}

/// What a query returns for a message given to `append`.
fn stored(m: &NewArchived) -> ArchivedMessage {
    ArchivedMessage {
        id: m.id.clone(),
        timestamp_us: m.timestamp_us,
        with: m.with.clone(),
        stanza: m.stanza.clone(),
    }
}

fn ids(page: &ArchivePage) -> Vec<&str> {
    page.messages.iter().map(|m| m.id.as_str()).collect()
}

fn query(position: PagePosition, max: usize) -> ArchiveQuery {
    ArchiveQuery {
        position,
        max,
        ..ArchiveQuery::default()
    }
}

struct Suite<'a> {
    accounts: &'a dyn AccountStore,
    archive: &'a dyn ArchiveStore,
}

impl Suite<'_> {
    async fn expect_no_accounts(&self, what: &str) {
        super::expect_no_accounts_in(PREFIX, self.accounts, what).await;
    }

    async fn create(&self, l: &str, what: &str) {
        super::create_account_in(PREFIX, self.accounts, l, D, what).await;
    }

    async fn delete(&self, accounts: &[&str], what: &str) {
        for l in accounts {
            ok(
                self.accounts.delete_account(l, D).await,
                &format!("{what}: delete account {l}@{D}"),
            );
            check(
                ok(self.archive.count(l, D).await, what),
                0,
                &format!("{what}: cleanup: {l}'s archive is gone (delete must cascade)"),
            );
        }
        self.expect_no_accounts(&format!("{what}: no accounts after cleanup"))
            .await;
    }

    async fn append(&self, batch: &[NewArchived], want: u64, what: &str) {
        check(
            ok(self.archive.append(batch).await, what),
            want,
            &format!("{what}: messages stored by append"),
        );
    }

    async fn page(&self, l: &str, q: &ArchiveQuery, what: &str) -> ArchivePage {
        ok(
            self.archive.query(l, D, q).await,
            &format!("{what}: query {q:?}"),
        )
    }

    /// Appends `n` messages with `with`, one per timestamp 1000, 2000, …, and
    /// returns them.
    async fn fill(&self, l: &str, n: u32, with: &str, what: &str) -> Vec<NewArchived> {
        let all: Vec<NewArchived> = (1..=n)
            .map(|i| msg(l, i, with, i64::from(i) * 1000, Some("hello")))
            .collect();
        self.append(&all, u64::from(n), what).await;
        all
    }

    async fn unknown_account(&self) {
        let s = "unknown account";
        let page = self
            .page("nobody", &query(PagePosition::First, 10), s)
            .await;
        check(
            page,
            ArchivePage {
                messages: Vec::new(),
                complete: true,
                count: 0,
                first_index: None,
            },
            &format!("{s}: an empty archive"),
        );
        check(ok(self.archive.count("nobody", D).await, s), 0, s);
        check(
            ok(self.archive.bounds("nobody", D).await, s),
            None,
            &format!("{s}: bounds"),
        );
        check(
            ok(self.archive.prefs("nobody", D).await, s),
            ArchivePrefs::default(),
            &format!("{s}: prefs are the defaults"),
        );
        check_err(
            self.archive
                .set_prefs("nobody", D, &ArchivePrefs::default())
                .await,
            "NotFound",
            &format!("{s}: set_prefs"),
        );
        let mut q = query(PagePosition::First, 10);
        q.after_id = Some("x".to_owned());
        check_err(
            self.archive.query("nobody", D, &q).await,
            "NotFound",
            &format!("{s}: after-id names an id that is not there"),
        );
        // A message for an account that does not exist is skipped.
        self.append(&[msg("nobody", 1, "bob@example.net", 1, None)], 0, s)
            .await;
        check(ok(self.archive.expire(i64::MAX).await, s), 0, s);
        check(ok(self.archive.trim(0).await, s), 0, s);
    }

    async fn order_and_round_trip(&self) {
        let s = "order";
        let l = "alice";
        self.create(l, s).await;
        // Appended out of time order, two with the same timestamp, one
        // without a body, text that must come back byte for byte.
        let mut odd = msg(l, 5, "bob@example.net/desk", 3000, None);
        odd.stanza = "<message xmlns='jabber:client'><body>line 1\r\nline 2\t'q' \"dq\" 王 🐦 &amp;</body></message>".to_owned();
        let batch = vec![
            msg(l, 1, "bob@example.net/desk", 5000, Some("b")),
            msg(l, 2, "carol@example.net", 1000, Some("a")),
            msg(l, 3, "bob@example.net/phone", 5000, Some("c")),
            msg(l, 4, "alice@example.org", 2000, Some("self")),
            odd,
        ];
        self.append(&batch, 5, s).await;
        check(ok(self.archive.count(l, D).await, s), 5, s);
        // By time, then by order of appending.
        let want: Vec<ArchivedMessage> =
            [1, 3, 4, 0, 2].iter().map(|&i| stored(&batch[i])).collect();
        let page = self.page(l, &query(PagePosition::First, 100), s).await;
        check(
            page,
            ArchivePage {
                messages: want.clone(),
                complete: true,
                count: 5,
                first_index: Some(0),
            },
            &format!("{s}: the whole archive, by time then appending"),
        );
        check(
            ok(self.archive.bounds(l, D).await, s),
            Some((
                ArchiveBound {
                    id: "alice-id-2".to_owned(),
                    timestamp_us: 1000,
                },
                ArchiveBound {
                    id: "alice-id-3".to_owned(),
                    timestamp_us: 5000,
                },
            )),
            &format!("{s}: bounds"),
        );
        self.delete(&[l], s).await;
    }

    async fn paging(&self) {
        let s = "paging";
        let l = "alice";
        self.create(l, s).await;
        let all = self.fill(l, 10, "bob@example.net", s).await;
        let id = |i: usize| all[i - 1].id.clone();
        let range = |a: usize, b: usize| -> Vec<String> { (a..=b).map(id).collect() };

        let p = self.page(l, &query(PagePosition::First, 3), s).await;
        check(ids(&p), range(1, 3).iter().map(String::as_str).collect(), s);
        check(
            (p.complete, p.count, p.first_index),
            (false, 10, Some(0)),
            &format!("{s}: first page"),
        );
        let p = self.page(l, &query(PagePosition::After(id(3)), 3), s).await;
        check(ids(&p), range(4, 6).iter().map(String::as_str).collect(), s);
        check((p.complete, p.count), (false, 10), &format!("{s}: after 3"));
        let p = self.page(l, &query(PagePosition::After(id(7)), 3), s).await;
        check(
            ids(&p),
            range(8, 10).iter().map(String::as_str).collect(),
            s,
        );
        check(
            p.complete,
            true,
            &format!("{s}: the page reaching the newest is complete"),
        );
        let p = self
            .page(l, &query(PagePosition::After(id(10)), 3), s)
            .await;
        check(
            (ids(&p).len(), p.complete, p.count, p.first_index),
            (0, true, 10, None),
            &format!("{s}: after the newest"),
        );

        // Backwards: the last page, then the pages before it, each in
        // chronological order.
        let p = self.page(l, &query(PagePosition::Last, 3), s).await;
        check(
            ids(&p),
            range(8, 10).iter().map(String::as_str).collect(),
            s,
        );
        check(
            (p.complete, p.count, p.first_index),
            (false, 10, Some(7)),
            &format!("{s}: last page"),
        );
        let p = self
            .page(l, &query(PagePosition::Before(id(8)), 3), s)
            .await;
        check(ids(&p), range(5, 7).iter().map(String::as_str).collect(), s);
        check(p.complete, false, &format!("{s}: before 8"));
        let p = self
            .page(l, &query(PagePosition::Before(id(4)), 3), s)
            .await;
        check(ids(&p), range(1, 3).iter().map(String::as_str).collect(), s);
        check(
            p.complete,
            true,
            &format!("{s}: the page reaching the oldest is complete"),
        );
        let p = self.page(l, &query(PagePosition::Last, 50), s).await;
        check(
            (ids(&p).len(), p.complete, p.first_index),
            (10, true, Some(0)),
            &format!("{s}: a last page holding everything"),
        );

        let p = self.page(l, &query(PagePosition::Index(4), 3), s).await;
        check(ids(&p), range(5, 7).iter().map(String::as_str).collect(), s);
        check(
            (p.complete, p.first_index),
            (false, Some(4)),
            &format!("{s}: index 4"),
        );
        let p = self.page(l, &query(PagePosition::Index(20), 3), s).await;
        check(
            (ids(&p).len(), p.complete, p.first_index),
            (0, true, None),
            &format!("{s}: index beyond the end"),
        );
        // max 0: the count alone.
        let p = self.page(l, &query(PagePosition::First, 0), s).await;
        check(
            (ids(&p).len(), p.complete, p.count),
            (0, false, 10),
            &format!("{s}: max 0"),
        );
        self.delete(&[l], s).await;
    }

    async fn filters(&self) {
        let s = "filters";
        let l = "alice";
        self.create(l, s).await;
        let batch = vec![
            msg(l, 1, "bob@example.net/desk", 1000, Some("one")),
            msg(l, 2, "carol@example.net/x", 2000, Some("two")),
            msg(l, 3, "bob@example.net/phone", 3000, Some("three")),
            msg(l, 4, "bob@example.net", 4000, Some("four")),
            msg(l, 5, "carol@example.net/x", 5000, Some("five")),
        ];
        self.append(&batch, 5, s).await;
        let run = |q: ArchiveQuery| async move {
            let p = self.page(l, &q, s).await;
            (
                ids(&p).into_iter().map(str::to_owned).collect::<Vec<_>>(),
                p.count,
            )
        };
        let want = |ns: &[u32]| -> (Vec<String>, u64) {
            (
                ns.iter().map(|n| format!("alice-id-{n}")).collect(),
                ns.len() as u64,
            )
        };
        let base = query(PagePosition::First, 100);

        let mut q = base.clone();
        q.with = Some(WithFilter {
            bare: "bob@example.net".to_owned(),
            resource: None,
        });
        check(
            run(q).await,
            want(&[1, 3, 4]),
            &format!("{s}: with a bare JID matches every resource"),
        );
        let mut q = base.clone();
        q.with = Some(WithFilter {
            bare: "bob@example.net".to_owned(),
            resource: Some("phone".to_owned()),
        });
        check(run(q).await, want(&[3]), &format!("{s}: with a full JID"));
        let mut q = base.clone();
        q.start_us = Some(2000);
        q.end_us = Some(4000);
        check(
            run(q).await,
            want(&[2, 3, 4]),
            &format!("{s}: start and end are inclusive"),
        );
        let mut q = base.clone();
        q.after_id = Some("alice-id-1".to_owned());
        q.before_id = Some("alice-id-5".to_owned());
        check(
            run(q).await,
            want(&[2, 3, 4]),
            &format!("{s}: after-id and before-id exclude the ids"),
        );
        let mut q = base.clone();
        q.ids = vec!["alice-id-4".to_owned(), "alice-id-2".to_owned()];
        check(
            run(q).await,
            want(&[2, 4]),
            &format!("{s}: ids, in archive order"),
        );
        let mut q = base.clone();
        q.with = Some(WithFilter {
            bare: "carol@example.net".to_owned(),
            resource: None,
        });
        q.start_us = Some(3000);
        check(run(q).await, want(&[5]), &format!("{s}: filters combine"));
        // Paging within a filter.
        let mut q = query(PagePosition::After("alice-id-1".to_owned()), 1);
        q.with = Some(WithFilter {
            bare: "bob@example.net".to_owned(),
            resource: None,
        });
        let p = self.page(l, &q, s).await;
        check(
            (ids(&p), p.complete, p.count),
            (vec!["alice-id-3"], false, 3),
            &format!("{s}: a page of a conversation"),
        );
        self.delete(&[l], s).await;
    }

    async fn unknown_ids(&self) {
        let s = "unknown ids";
        let l = "alice";
        self.create(l, s).await;
        self.fill(l, 3, "bob@example.net", s).await;
        // Another account's id is not in this archive either.
        self.create("bob", s).await;
        self.append(&[msg("bob", 9, "alice@example.org", 1, None)], 1, s)
            .await;
        let cases: Vec<(&str, ArchiveQuery)> = vec![
            ("after-id", {
                let mut q = query(PagePosition::First, 10);
                q.after_id = Some("nope".to_owned());
                q
            }),
            ("before-id", {
                let mut q = query(PagePosition::First, 10);
                q.before_id = Some("bob-id-9".to_owned());
                q
            }),
            ("ids", {
                let mut q = query(PagePosition::First, 10);
                q.ids = vec!["alice-id-1".to_owned(), "nope".to_owned()];
                q
            }),
            (
                "RSM after",
                query(PagePosition::After("nope".to_owned()), 10),
            ),
            (
                "RSM before",
                query(PagePosition::Before("nope".to_owned()), 10),
            ),
        ];
        for (name, q) in cases {
            check_err(
                self.archive.query(l, D, &q).await,
                "NotFound",
                &format!("{s}: {name}"),
            );
        }
        self.delete(&[l, "bob"], s).await;
    }

    async fn fulltext(&self) {
        let s = "full-text search";
        let l = "alice";
        self.create(l, s).await;
        let batch = vec![
            msg(
                l,
                1,
                "bob@example.net",
                1000,
                Some("Meet me at the Café tonight"),
            ),
            msg(l, 2, "bob@example.net", 2000, Some("the cafe is closed")),
            msg(l, 3, "bob@example.net", 3000, Some("Tonight? Sure")),
            msg(l, 4, "bob@example.net", 4000, None),
            msg(
                l,
                5,
                "bob@example.net",
                5000,
                Some("say \"hi\" OR NOT* (x)"),
            ),
        ];
        self.append(&batch, 5, s).await;
        let search = |text: &str| {
            let mut q = query(PagePosition::First, 100);
            q.fulltext = Some(text.to_owned());
            q
        };
        for (text, want) in [
            ("cafe", vec!["alice-id-1", "alice-id-2"]),
            ("CAFÉ", vec!["alice-id-1", "alice-id-2"]),
            ("tonight cafe", vec!["alice-id-1"]),
            ("tonight", vec!["alice-id-1", "alice-id-3"]),
            ("absent", vec![]),
            // FTS5 syntax in the text is only text.
            ("\"hi\" OR", vec!["alice-id-5"]),
            ("NOT* (x)", vec!["alice-id-5"]),
        ] {
            let p = self.page(l, &search(text), s).await;
            check(ids(&p), want.clone(), &format!("{s}: {text:?}"));
            check(
                p.count,
                want.len() as u64,
                &format!("{s}: count for {text:?}"),
            );
        }
        // Only the owner's archive is searched.
        self.create("bob", s).await;
        self.append(
            &[msg("bob", 1, "alice@example.org", 1000, Some("cafe"))],
            1,
            s,
        )
        .await;
        let p = self.page(l, &search("cafe"), s).await;
        check(
            ids(&p),
            vec!["alice-id-1", "alice-id-2"],
            &format!("{s}: per account"),
        );
        // Expired messages are not found any more.
        ok(self.archive.expire(1500).await, s);
        let p = self.page(l, &search("cafe"), s).await;
        check(ids(&p), vec!["alice-id-2"], &format!("{s}: after expiry"));
        self.delete(&[l, "bob"], s).await;
    }

    async fn batches(&self) {
        let s = "batches";
        self.create("alice", s).await;
        self.create("bob", s).await;
        // One batch for two accounts and one that does not exist; the same id
        // in two archives is fine.
        let batch = vec![
            msg("alice", 1, "bob@example.org", 1000, Some("x")),
            msg("bob", 1, "alice@example.org", 1000, Some("x")),
            msg("nobody", 1, "alice@example.org", 1000, Some("x")),
        ];
        let mut same_id = msg("bob", 2, "alice@example.org", 1000, None);
        same_id.id = "alice-id-1".to_owned();
        let mut batch = batch;
        batch.push(same_id);
        self.append(&batch, 3, s).await;
        check(ok(self.archive.count("alice", D).await, s), 1, s);
        check(ok(self.archive.count("bob", D).await, s), 2, s);
        // An id already in the archive fails the whole batch.
        let dup = vec![
            msg("alice", 2, "bob@example.org", 2000, Some("new")),
            msg("alice", 1, "bob@example.org", 2000, Some("again")),
        ];
        check_err(
            self.archive.append(&dup).await,
            "AlreadyExists",
            &format!("{s}: a duplicate id"),
        );
        check(
            ok(self.archive.count("alice", D).await, s),
            1,
            &format!("{s}: a failed batch stores nothing"),
        );
        self.append(&[], 0, &format!("{s}: an empty batch")).await;
        self.delete(&["alice", "bob"], s).await;
    }

    async fn prefs(&self) {
        let s = "prefs";
        let l = "alice";
        self.create(l, s).await;
        check(
            ok(self.archive.prefs(l, D).await, s),
            ArchivePrefs::default(),
            &format!("{s}: defaults"),
        );
        let p = ArchivePrefs {
            default: ArchiveDefault::Roster,
            always: vec!["bob@example.net".to_owned(), "a@b.c/r".to_owned()],
            never: vec!["spam@example.com".to_owned()],
        };
        ok(self.archive.set_prefs(l, D, &p).await, s);
        let mut want = p.clone();
        want.always.sort();
        check(
            ok(self.archive.prefs(l, D).await, s),
            want,
            &format!("{s}: round trip"),
        );
        // Replaced as a whole; a JID in both lists is never archived.
        let p = ArchivePrefs {
            default: ArchiveDefault::Never,
            always: vec!["x@example.net".to_owned()],
            never: vec!["x@example.net".to_owned()],
        };
        ok(self.archive.set_prefs(l, D, &p).await, s);
        check(
            ok(self.archive.prefs(l, D).await, s),
            ArchivePrefs {
                default: ArchiveDefault::Never,
                always: vec![],
                never: vec!["x@example.net".to_owned()],
            },
            &format!("{s}: replaced"),
        );
        self.delete(&[l], s).await;
        self.create(l, s).await;
        check(
            ok(self.archive.prefs(l, D).await, s),
            ArchivePrefs::default(),
            &format!("{s}: a new account of the same name starts with the defaults"),
        );
        self.delete(&[l], s).await;
    }

    async fn retention(&self) {
        let s = "retention";
        self.create("alice", s).await;
        self.create("bob", s).await;
        self.fill("alice", 6, "bob@example.org", s).await;
        self.fill("bob", 2, "alice@example.org", s).await;
        // Older than 3000 µs: alice's 1, 2 and bob's 1, 2.
        check(
            ok(self.archive.expire(3000).await, s),
            4,
            &format!("{s}: expire"),
        );
        let p = self.page("alice", &query(PagePosition::First, 10), s).await;
        check(
            ids(&p),
            vec!["alice-id-3", "alice-id-4", "alice-id-5", "alice-id-6"],
            &format!("{s}: what expiry left"),
        );
        check(ok(self.archive.count("bob", D).await, s), 0, s);
        // The cap keeps the newest.
        check(ok(self.archive.trim(2).await, s), 2, &format!("{s}: trim"));
        let p = self.page("alice", &query(PagePosition::First, 10), s).await;
        check(
            ids(&p),
            vec!["alice-id-5", "alice-id-6"],
            &format!("{s}: what the cap left"),
        );
        check(
            ok(self.archive.trim(2).await, s),
            0,
            &format!("{s}: nothing more to trim"),
        );
        self.delete(&["alice", "bob"], s).await;
    }

    async fn delete_account_clears_archive(&self) {
        let s = "delete account";
        let l = "alice";
        self.create(l, s).await;
        self.fill(l, 3, "bob@example.net", s).await;
        self.delete(&[l], s).await;
        self.create(l, s).await;
        let p = self.page(l, &query(PagePosition::First, 10), s).await;
        check(
            (p.messages.len(), p.count),
            (0, 0),
            &format!("{s}: a new account of the same name has an empty archive"),
        );
        let mut q = query(PagePosition::First, 10);
        q.fulltext = Some("hello".to_owned());
        let p = self.page(l, &q, s).await;
        check(
            p.count,
            0,
            &format!("{s}: nor does full-text search find the old one"),
        );
        // Ids of the deleted archive are free again in the new account's.
        self.fill(l, 1, "bob@example.net", s).await;
        self.delete(&[l], s).await;
    }
}
