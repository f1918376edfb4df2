//! Conformance suite for [`RoomArchiveStore`].

use std::fmt::Debug;

use crate::{
    AccountStore, ArchiveBound, ArchivePage, ArchiveQuery, ArchivedMessage, NewRoomArchived,
    PagePosition, RoomArchiveStore, RoomArchivedMessage, RoomKey, StorageError, WithFilter,
};

/// Runs the [`RoomArchiveStore`] conformance suite against `store`, using `accounts` (of the
/// same backend) to check that deleting an account leaves the room archives alone.
///
/// The backend must hold no accounts and no messages in the rooms the suite uses; every section
/// deletes what it created, so it holds none again when this returns.
///
/// # Panics
///
/// On the first violated expectation, with a message naming the section and check.
pub async fn room_archive(accounts: &dyn AccountStore, store: &dyn RoomArchiveStore) {
    let s = Suite { accounts, store };
    s.expect_no_accounts("precondition: the store must be empty")
        .await;
    s.expect_empty("precondition: the store must be empty")
        .await;
    s.unknown_room().await;
    s.order_and_round_trip().await;
    s.paging().await;
    s.filters().await;
    s.unknown_ids().await;
    s.fulltext().await;
    s.batches().await;
    s.retract().await;
    s.services_apart().await;
    s.delete_room().await;
    s.retention().await;
    s.account_deletion().await;
    s.expect_empty("postcondition").await;
    s.expect_no_accounts("postcondition").await;
}

const PREFIX: &str = "conformance::room_archive";

const SERVICE: &str = "conference.example.org";
const OTHER_SERVICE: &str = "chat.example.com";

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.net";

fn ok<T>(res: Result<T, StorageError>, what: &str) -> T {
    super::ok_in(PREFIX, res, what)
}

fn check<T: PartialEq + Debug>(got: T, want: T, what: &str) {
    super::check_in(PREFIX, got, want, what);
}

fn check_err<T: Debug>(res: Result<T, StorageError>, want: &str, what: &str) {
    let matched = matches!(
        (&res, want),
        (Err(StorageError::NotFound), "NotFound")
            | (Err(StorageError::AlreadyExists), "AlreadyExists")
    );
    assert!(matched, "{PREFIX}: {what}: got {res:?}, want Err({want})");
}

fn lobby() -> RoomKey {
    RoomKey::new(SERVICE, "lobby")
}

fn dev() -> RoomKey {
    RoomKey::new(SERVICE, "dev")
}

/// The room named like [`lobby`] on another service.
fn other_lobby() -> RoomKey {
    RoomKey::new(OTHER_SERVICE, "lobby")
}

/// Every room the suite writes to.
fn all_rooms() -> [RoomKey; 3] {
    [lobby(), dev(), other_lobby()]
}

/// The archive id of message `n` of `key`'s room.
fn id(key: &RoomKey, n: u32) -> String {
    format!("{}-id-{n}", key.room)
}

/// Message `n` of `key`'s archive, sent by `nick` (real JID `sender`) at `ts`; its stanza as a
/// MUC service relays it (XEP-0045 §7.4) with the room's stanza-id (XEP-0313 §3.5).
fn msg(
    key: &RoomKey,
    n: u32,
    nick: &str,
    sender: Option<&str>,
    ts: i64,
    body: Option<&str>,
) -> NewRoomArchived {
    let id = id(key, n);
    let room = format!("{}@{}", key.room, key.service);
    let body_xml = body
        .map(|b| format!("<body>{b}</body>"))
        .unwrap_or_default();
    NewRoomArchived {
        key: key.clone(),
        id: id.clone(),
        timestamp_us: ts,
        nick: nick.to_owned(),
        sender: sender.map(str::to_owned),
        stanza: format!(
            "<message xmlns='jabber:client' from='{room}/{nick}' type='groupchat' id='m{n}'>\
             {body_xml}<stanza-id xmlns='urn:xmpp:sid:0' by='{room}' id='{id}'/></message>"
        ),
        body: body.map(str::to_owned),
    }
}

/// What a page returns for a message given to `append`: its nick as `with`.
fn paged(m: &NewRoomArchived) -> ArchivedMessage {
    ArchivedMessage {
        id: m.id.clone(),
        timestamp_us: m.timestamp_us,
        with: m.nick.clone(),
        stanza: m.stanza.clone(),
    }
}

/// What [`RoomArchiveStore::message`] returns for a message given to `append`.
fn stored(m: &NewRoomArchived) -> RoomArchivedMessage {
    RoomArchivedMessage {
        id: m.id.clone(),
        timestamp_us: m.timestamp_us,
        nick: m.nick.clone(),
        sender: m.sender.clone(),
        stanza: m.stanza.clone(),
    }
}

/// A XEP-0425 tombstone for message `n` of `key`'s archive (the example of its 'Tombstones'
/// section, as the service would store it).
fn tombstone(key: &RoomKey, n: u32, nick: &str) -> String {
    let room = format!("{}@{}", key.room, key.service);
    format!(
        "<message xmlns='jabber:client' from='{room}/{nick}' type='groupchat' id='m{n}'>\
         <moderated xmlns='urn:xmpp:message-moderate:0' by='{room}/mod'>\
         <retracted xmlns='urn:xmpp:message-retract:0' stamp='2019-09-20T23:19:12Z'/>\
         <reason>spam</reason></moderated>\
         <stanza-id xmlns='urn:xmpp:sid:0' by='{room}' id='{}'/></message>",
        id(key, n)
    )
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

fn search(text: &str) -> ArchiveQuery {
    ArchiveQuery {
        fulltext: Some(text.to_owned()),
        max: 100,
        ..ArchiveQuery::default()
    }
}

fn by_nick(nick: &str) -> Option<WithFilter> {
    Some(WithFilter {
        bare: "lobby@conference.example.org".to_owned(),
        resource: Some(nick.to_owned()),
    })
}

fn by_jid(jid: &str) -> Option<WithFilter> {
    Some(WithFilter {
        bare: jid.to_owned(),
        resource: None,
    })
}

struct Suite<'a> {
    accounts: &'a dyn AccountStore,
    store: &'a dyn RoomArchiveStore,
}

impl Suite<'_> {
    async fn expect_no_accounts(&self, what: &str) {
        super::expect_no_accounts_in(PREFIX, self.accounts, what).await;
    }

    /// No messages in any room the suite uses.
    async fn expect_empty(&self, what: &str) {
        for key in all_rooms() {
            check(
                ok(self.store.count(&key).await, what),
                0,
                &format!("{what}: messages in {key:?}"),
            );
        }
    }

    /// Deletes the archives of every room the suite uses.
    async fn clean(&self, what: &str) {
        for key in all_rooms() {
            ok(self.store.delete_room(&key).await, what);
        }
        self.expect_empty(&format!("{what}: cleanup")).await;
    }

    async fn append(&self, batch: &[NewRoomArchived], want: u64, what: &str) {
        check(
            ok(self.store.append(batch).await, what),
            want,
            &format!("{what}: messages stored by append"),
        );
    }

    async fn page(&self, key: &RoomKey, q: &ArchiveQuery, what: &str) -> ArchivePage {
        ok(
            self.store.query(key, q).await,
            &format!("{what}: query {key:?} {q:?}"),
        )
    }

    /// The ids a query finds in `key`'s archive, and its count.
    async fn found(&self, key: &RoomKey, q: &ArchiveQuery, what: &str) -> (Vec<String>, u64) {
        let p = self.page(key, q, what).await;
        (ids(&p).into_iter().map(str::to_owned).collect(), p.count)
    }

    /// Appends `n` messages to `key`'s archive, one per timestamp 1000, 2000, …, and returns
    /// them.
    async fn fill(&self, key: &RoomKey, n: u32, what: &str) -> Vec<NewRoomArchived> {
        let all: Vec<NewRoomArchived> = (1..=n)
            .map(|i| {
                msg(
                    key,
                    i,
                    "alice",
                    Some(ALICE),
                    i64::from(i) * 1000,
                    Some("hello"),
                )
            })
            .collect();
        self.append(&all, u64::from(n), what).await;
        all
    }

    async fn unknown_room(&self) {
        let s = "unknown room";
        let key = lobby();
        check(
            self.page(&key, &query(PagePosition::First, 10), s).await,
            ArchivePage {
                messages: Vec::new(),
                complete: true,
                count: 0,
                first_index: None,
            },
            &format!("{s}: an empty archive"),
        );
        check(
            self.page(&key, &query(PagePosition::Last, 10), s)
                .await
                .complete,
            true,
            &format!("{s}: the last page of an empty archive"),
        );
        check(ok(self.store.count(&key).await, s), 0, s);
        check(
            ok(self.store.bounds(&key).await, s),
            None,
            &format!("{s}: bounds"),
        );
        check(
            ok(self.store.message(&key, "x").await, s),
            None,
            &format!("{s}: message"),
        );
        check(
            ok(self.store.retract(&key, "x", "<message/>").await, s),
            false,
            &format!("{s}: retract"),
        );
        check(
            ok(self.store.delete_room(&key).await, s),
            0,
            &format!("{s}: delete_room"),
        );
        let mut q = query(PagePosition::First, 10);
        q.after_id = Some("x".to_owned());
        check_err(
            self.store.query(&key, &q).await,
            "NotFound",
            &format!("{s}: after-id names an id that is not there"),
        );
        check_err(
            self.store
                .query(&key, &query(PagePosition::Before("x".to_owned()), 10))
                .await,
            "NotFound",
            &format!("{s}: RSM before names an id that is not there"),
        );
        check(ok(self.store.expire(i64::MAX).await, s), 0, s);
        check(ok(self.store.trim(0).await, s), 0, s);
        self.append(&[], 0, &format!("{s}: an empty batch")).await;
    }

    async fn order_and_round_trip(&self) {
        let s = "order";
        let key = lobby();
        // Appended out of time order, two with the same timestamp, one without a body or a
        // known sender, text that must come back byte for byte.
        let mut odd = msg(&key, 5, "ünïcode 🐦 nick", None, 3000, None);
        odd.stanza = "<message xmlns='jabber:client' type='groupchat'><subject>line 1\r\nline 2\t\
                      'q' \"dq\" 王 🐦 &amp;</subject></message>"
            .to_owned();
        let batch = vec![
            msg(&key, 1, "bob", Some(BOB), 5000, Some("b")),
            msg(&key, 2, "carol", Some("carol@example.net"), 1000, Some("a")),
            msg(&key, 3, "bob", Some(BOB), 5000, Some("c")),
            msg(&key, 4, "alice", Some(ALICE), 2000, Some("d")),
            odd,
        ];
        self.append(&batch, 5, s).await;
        check(ok(self.store.count(&key).await, s), 5, s);
        // By time, then by order of appending.
        let want: Vec<ArchivedMessage> =
            [1, 3, 4, 0, 2].iter().map(|&i| paged(&batch[i])).collect();
        check(
            self.page(&key, &query(PagePosition::First, 100), s).await,
            ArchivePage {
                messages: want.clone(),
                complete: true,
                count: 5,
                first_index: Some(0),
            },
            &format!("{s}: the whole archive, by time then appending, nicks as 'with'"),
        );
        check(
            ok(self.store.bounds(&key).await, s),
            Some((
                ArchiveBound {
                    id: id(&key, 2),
                    timestamp_us: 1000,
                },
                ArchiveBound {
                    id: id(&key, 3),
                    timestamp_us: 5000,
                },
            )),
            &format!("{s}: bounds"),
        );
        for m in &batch {
            check(
                ok(self.store.message(&key, &m.id).await, s),
                Some(stored(m)),
                &format!("{s}: message {}", m.id),
            );
        }
        // Ids are compared byte for byte.
        check(
            ok(self.store.message(&key, "LOBBY-ID-1").await, s),
            None,
            &format!("{s}: ids are case-sensitive"),
        );
        // A batch larger than any backend's statement, all at one timestamp: appending order
        // is kept throughout (XEP-0313 §3.1).
        let dev = dev();
        let many: Vec<NewRoomArchived> = (1..=1200)
            .map(|i| msg(&dev, i, "n", None, 7, Some("same time")))
            .collect();
        self.append(&many, 1200, &format!("{s}: a large batch"))
            .await;
        let p = self.page(&dev, &query(PagePosition::First, 2000), s).await;
        let want: Vec<String> = (1..=1200).map(|i| id(&dev, i)).collect();
        check(
            ids(&p),
            want.iter().map(String::as_str).collect(),
            &format!("{s}: a large batch in appending order"),
        );
        self.clean(s).await;
    }

    async fn paging(&self) {
        let s = "paging";
        let key = lobby();
        self.fill(&key, 10, s).await;
        let range = |a: u32, b: u32| -> Vec<String> { (a..=b).map(|i| id(&key, i)).collect() };
        let page = |position, max| {
            let q = query(position, max);
            let key = &key;
            async move { self.page(key, &q, s).await }
        };

        let p = page(PagePosition::First, 3).await;
        check(ids(&p), range(1, 3).iter().map(String::as_str).collect(), s);
        check(
            (p.complete, p.count, p.first_index),
            (false, 10, Some(0)),
            &format!("{s}: first page"),
        );
        let p = page(PagePosition::After(id(&key, 3)), 3).await;
        check(ids(&p), range(4, 6).iter().map(String::as_str).collect(), s);
        check((p.complete, p.count), (false, 10), &format!("{s}: after 3"));
        let p = page(PagePosition::After(id(&key, 7)), 3).await;
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
        let p = page(PagePosition::After(id(&key, 10)), 3).await;
        check(
            (ids(&p).len(), p.complete, p.count, p.first_index),
            (0, true, 10, None),
            &format!("{s}: after the newest"),
        );

        // Backwards: the last page, then the pages before it, each in chronological order.
        let p = page(PagePosition::Last, 3).await;
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
        let p = page(PagePosition::Before(id(&key, 8)), 3).await;
        check(ids(&p), range(5, 7).iter().map(String::as_str).collect(), s);
        check(p.complete, false, &format!("{s}: before 8"));
        let p = page(PagePosition::Before(id(&key, 4)), 3).await;
        check(ids(&p), range(1, 3).iter().map(String::as_str).collect(), s);
        check(
            p.complete,
            true,
            &format!("{s}: the page reaching the oldest is complete"),
        );
        let p = page(PagePosition::Before(id(&key, 1)), 3).await;
        check(
            (ids(&p).len(), p.complete, p.count),
            (0, true, 10),
            &format!("{s}: before the oldest"),
        );
        let p = page(PagePosition::Last, 50).await;
        check(
            (ids(&p).len(), p.complete, p.first_index),
            (10, true, Some(0)),
            &format!("{s}: a last page holding everything"),
        );

        let p = page(PagePosition::Index(4), 3).await;
        check(ids(&p), range(5, 7).iter().map(String::as_str).collect(), s);
        check(
            (p.complete, p.first_index),
            (false, Some(4)),
            &format!("{s}: index 4"),
        );
        let p = page(PagePosition::Index(20), 3).await;
        check(
            (ids(&p).len(), p.complete, p.first_index),
            (0, true, None),
            &format!("{s}: index beyond the end"),
        );
        // max 0: the count alone (XEP-0059 §2.6), whichever way.
        for position in [PagePosition::First, PagePosition::Last] {
            let p = page(position.clone(), 0).await;
            check(
                (ids(&p).len(), p.complete, p.count, p.first_index),
                (0, false, 10, None),
                &format!("{s}: max 0 from {position:?}"),
            );
        }
        self.clean(s).await;
    }

    async fn filters(&self) {
        let s = "filters";
        let key = lobby();
        let batch = vec![
            msg(&key, 1, "bob", Some(BOB), 1000, Some("one")),
            msg(&key, 2, "carol", None, 2000, Some("two")),
            msg(&key, 3, "bobby", Some(BOB), 3000, Some("three")),
            msg(&key, 4, "bob", Some(BOB), 4000, Some("four")),
            msg(&key, 5, "alice", Some(ALICE), 5000, Some("five")),
            // Another occupant took the nick bob after the first left.
            msg(
                &key,
                6,
                "bob",
                Some("impostor@example.com"),
                6000,
                Some("six"),
            ),
        ];
        self.append(&batch, 6, s).await;
        let want = |ns: &[u32]| -> (Vec<String>, u64) {
            (ns.iter().map(|&n| id(&key, n)).collect(), ns.len() as u64)
        };
        let base = query(PagePosition::First, 100);
        let key_ref = &key;
        let run = |q: ArchiveQuery| async move { self.found(key_ref, &q, s).await };

        let mut q = base.clone();
        q.with = by_nick("bob");
        check(
            run(q).await,
            want(&[1, 4, 6]),
            &format!("{s}: an occupant JID matches the nick (XEP-0313 §4.1.1)"),
        );
        let mut q = base.clone();
        q.with = Some(WithFilter {
            bare: "anything@else.example".to_owned(),
            resource: Some("bob".to_owned()),
        });
        check(
            run(q).await,
            want(&[1, 4, 6]),
            &format!("{s}: with a resource, only the nick counts"),
        );
        let mut q = base.clone();
        q.with = by_nick("Bob");
        check(
            run(q).await,
            want(&[]),
            &format!("{s}: nicks are compared byte for byte"),
        );
        let mut q = base.clone();
        q.with = by_jid(BOB);
        check(
            run(q).await,
            want(&[1, 3, 4]),
            &format!("{s}: a bare JID matches the sender's real JID, whatever its nick"),
        );
        let mut q = base.clone();
        q.with = by_jid("lobby@conference.example.org");
        check(
            run(q).await,
            want(&[]),
            &format!("{s}: the room's own JID is no sender"),
        );
        let mut q = base.clone();
        q.start_us = Some(2000);
        q.end_us = Some(4000);
        check(
            run(q).await,
            want(&[2, 3, 4]),
            &format!("{s}: start and end are inclusive"),
        );
        let mut q = base.clone();
        q.after_id = Some(id(&key, 1));
        q.before_id = Some(id(&key, 5));
        check(
            run(q).await,
            want(&[2, 3, 4]),
            &format!("{s}: after-id and before-id exclude the ids"),
        );
        let mut q = base.clone();
        q.ids = vec![id(&key, 4), id(&key, 2), id(&key, 4)];
        check(
            run(q).await,
            want(&[2, 4]),
            &format!("{s}: ids, in archive order, each once"),
        );
        let mut q = base.clone();
        q.with = by_nick("bob");
        q.start_us = Some(2000);
        q.before_id = Some(id(&key, 6));
        check(run(q).await, want(&[4]), &format!("{s}: filters combine"));
        let mut q = base.clone();
        q.with = by_jid(BOB);
        q.fulltext = Some("THREE".to_owned());
        check(
            run(q).await,
            want(&[3]),
            &format!("{s}: full-text search combines with 'with'"),
        );
        // Paging within a filter, both ways.
        let mut q = query(PagePosition::After(id(&key, 1)), 1);
        q.with = by_nick("bob");
        let p = self.page(&key, &q, s).await;
        check(
            (ids(&p), p.complete, p.count),
            (vec![id(&key, 4).as_str()], false, 3),
            &format!("{s}: a page of one nick's messages"),
        );
        let mut q = query(PagePosition::Last, 2);
        q.with = by_jid(BOB);
        let p = self.page(&key, &q, s).await;
        check(
            (ids(&p), p.complete, p.count, p.first_index),
            (
                vec![id(&key, 3).as_str(), id(&key, 4).as_str()],
                false,
                3,
                Some(1),
            ),
            &format!("{s}: the last page of one sender's messages"),
        );
        self.clean(s).await;
    }

    async fn unknown_ids(&self) {
        let s = "unknown ids";
        let key = lobby();
        self.fill(&key, 3, s).await;
        // Another room's id is not in this archive, on the same service or another.
        self.append(
            &[
                msg(&dev(), 9, "n", None, 1, None),
                msg(&other_lobby(), 8, "n", None, 1, None),
            ],
            2,
            s,
        )
        .await;
        for other in [id(&dev(), 9), id(&other_lobby(), 8), "nope".to_owned()] {
            let cases: Vec<(&str, ArchiveQuery)> = vec![
                ("after-id", {
                    let mut q = query(PagePosition::First, 10);
                    q.after_id = Some(other.clone());
                    q
                }),
                ("before-id", {
                    let mut q = query(PagePosition::First, 10);
                    q.before_id = Some(other.clone());
                    q
                }),
                ("ids", {
                    let mut q = query(PagePosition::First, 10);
                    q.ids = vec![id(&key, 1), other.clone()];
                    q
                }),
                ("RSM after", query(PagePosition::After(other.clone()), 10)),
                ("RSM before", query(PagePosition::Before(other.clone()), 10)),
            ];
            for (name, q) in cases {
                check_err(
                    self.store.query(&key, &q).await,
                    "NotFound",
                    &format!("{s}: {name} {other}"),
                );
            }
            check(
                ok(self.store.message(&key, &other).await, s),
                None,
                &format!("{s}: message {other}"),
            );
        }
        self.clean(s).await;
    }

    async fn fulltext(&self) {
        let s = "full-text search";
        let key = lobby();
        let batch = vec![
            msg(
                &key,
                1,
                "bob",
                Some(BOB),
                1000,
                Some("Meet me at the Café tonight"),
            ),
            msg(&key, 2, "bob", Some(BOB), 2000, Some("the cafe is closed")),
            msg(&key, 3, "carol", None, 3000, Some("Tonight? Sure")),
            msg(&key, 4, "carol", None, 4000, None),
            msg(&key, 5, "carol", None, 5000, Some("say \"hi\" OR NOT* (x)")),
        ];
        self.append(&batch, 5, s).await;
        for (text, want) in [
            ("cafe", vec![1, 2]),
            ("CAFÉ", vec![1, 2]),
            ("tonight cafe", vec![1]),
            ("tonight", vec![1, 3]),
            ("absent", vec![]),
            // FTS5 syntax in the text is only text.
            ("\"hi\" OR", vec![5]),
            ("NOT* (x)", vec![5]),
        ] {
            let want: Vec<String> = want.into_iter().map(|n| id(&key, n)).collect();
            let count = want.len() as u64;
            check(
                self.found(&key, &search(text), s).await,
                (want, count),
                &format!("{s}: {text:?}"),
            );
        }
        // Only the room's own archive is searched.
        self.append(
            &[
                msg(&dev(), 1, "bob", Some(BOB), 1000, Some("cafe")),
                msg(&other_lobby(), 1, "bob", Some(BOB), 1000, Some("cafe")),
            ],
            2,
            s,
        )
        .await;
        check(
            self.found(&key, &search("cafe"), s).await,
            (vec![id(&key, 1), id(&key, 2)], 2),
            &format!("{s}: per room"),
        );
        // Paged like any query.
        let mut q = search("cafe");
        q.max = 1;
        q.position = PagePosition::Last;
        let p = self.page(&key, &q, s).await;
        check(
            (ids(&p), p.complete, p.count),
            (vec![id(&key, 2).as_str()], false, 2),
            &format!("{s}: the last page of a search"),
        );
        // Expired messages are not found any more.
        ok(self.store.expire(1500).await, s);
        check(
            self.found(&key, &search("cafe"), s).await,
            (vec![id(&key, 2)], 1),
            &format!("{s}: after expiry"),
        );
        self.clean(s).await;
    }

    async fn batches(&self) {
        let s = "batches";
        let (lobby, dev, other) = (lobby(), dev(), other_lobby());
        // One batch for three rooms; the same id in two rooms is fine.
        let mut same_id = msg(&dev, 2, "n", None, 1000, None);
        same_id.id = id(&lobby, 1);
        let batch = vec![
            msg(&lobby, 1, "alice", Some(ALICE), 1000, Some("x")),
            msg(&dev, 1, "alice", Some(ALICE), 1000, Some("x")),
            same_id,
            msg(&other, 1, "alice", Some(ALICE), 1000, Some("x")),
        ];
        self.append(&batch, 4, s).await;
        check(ok(self.store.count(&lobby).await, s), 1, s);
        check(ok(self.store.count(&dev).await, s), 2, s);
        check(ok(self.store.count(&other).await, s), 1, s);
        // An id already in the archive fails the whole batch, the other rooms' messages too.
        let dup = vec![
            msg(&dev, 3, "bob", Some(BOB), 2000, Some("new")),
            msg(&lobby, 2, "bob", Some(BOB), 2000, Some("new")),
            msg(&lobby, 1, "bob", Some(BOB), 2000, Some("again")),
        ];
        check_err(
            self.store.append(&dup).await,
            "AlreadyExists",
            &format!("{s}: an id already archived"),
        );
        // So does an id twice in the batch for one room.
        let twice = vec![
            msg(&dev, 3, "bob", Some(BOB), 2000, Some("new")),
            msg(&lobby, 2, "bob", Some(BOB), 2000, Some("new")),
            msg(&lobby, 2, "bob", Some(BOB), 3000, Some("new again")),
        ];
        check_err(
            self.store.append(&twice).await,
            "AlreadyExists",
            &format!("{s}: an id twice in a batch"),
        );
        for (key, n) in [(&lobby, 1), (&dev, 2), (&other, 1)] {
            check(
                ok(self.store.count(key).await, s),
                n,
                &format!("{s}: a failed batch stores nothing ({key:?})"),
            );
        }
        check(
            self.found(&lobby, &search("new"), s).await,
            (vec![], 0),
            &format!("{s}: nor does full-text search find any of it"),
        );
        check(
            ok(self.store.message(&lobby, &id(&lobby, 1)).await, s),
            Some(stored(&batch[0])),
            &format!("{s}: the message a failed batch named is unchanged"),
        );
        self.clean(s).await;
    }

    async fn retract(&self) {
        let s = "retract";
        let key = lobby();
        let batch = vec![
            msg(&key, 1, "bob", Some(BOB), 1000, Some("buy magic potions")),
            msg(
                &key,
                2,
                "spammer",
                None,
                2000,
                Some("DM me for magic potions"),
            ),
            msg(&key, 3, "bob", Some(BOB), 3000, None),
        ];
        self.append(&batch, 3, s).await;
        let gone = tombstone(&key, 2, "spammer");
        check(
            ok(self.store.retract(&key, &id(&key, 2), &gone).await, s),
            true,
            &format!("{s}: an archived message"),
        );
        let mut want = stored(&batch[1]);
        want.stanza = gone.clone();
        check(
            ok(self.store.message(&key, &id(&key, 2)).await, s),
            Some(want),
            &format!("{s}: the tombstone, with id, time, nick and sender kept (XEP-0313 §3.2)"),
        );
        let mut in_page = paged(&batch[1]);
        in_page.stanza = gone.clone();
        check(
            self.page(&key, &query(PagePosition::First, 10), s).await,
            ArchivePage {
                messages: vec![paged(&batch[0]), in_page, paged(&batch[2])],
                complete: true,
                count: 3,
                first_index: Some(0),
            },
            &format!("{s}: it stays in its place in the archive"),
        );
        check(
            ok(self.store.count(&key).await, s),
            3,
            &format!("{s}: count"),
        );
        check(
            self.found(&key, &search("potions"), s).await,
            (vec![id(&key, 1)], 1),
            &format!("{s}: full-text search no longer finds its body"),
        );
        check(
            self.found(&key, &search("DM"), s).await,
            (vec![], 0),
            &format!("{s}: not by any word of it"),
        );
        let mut q = query(PagePosition::First, 10);
        q.with = by_nick("spammer");
        check(
            self.found(&key, &q, s).await,
            (vec![id(&key, 2)], 1),
            &format!("{s}: still found by its nick"),
        );
        // A message a search has found already (a backend indexing lazily has indexed it by
        // now) leaves the search results as well.
        let gone1 = tombstone(&key, 1, "bob");
        check(
            ok(self.store.retract(&key, &id(&key, 1), &gone1).await, s),
            true,
            &format!("{s}: a message found before"),
        );
        for text in ["potions", "buy"] {
            check(
                self.found(&key, &search(text), s).await,
                (vec![], 0),
                &format!("{s}: {text:?} after retracting a message found before"),
            );
        }
        // A message without a body, and one retracted again.
        let gone3 = tombstone(&key, 3, "bob");
        check(
            ok(self.store.retract(&key, &id(&key, 3), &gone3).await, s),
            true,
            &format!("{s}: a message without a body"),
        );
        check(
            ok(self.store.retract(&key, &id(&key, 2), &gone3).await, s),
            true,
            &format!("{s}: again"),
        );
        check(
            ok(self.store.message(&key, &id(&key, 2)).await, s).map(|m| m.stanza),
            Some(gone3),
            &format!("{s}: the second tombstone replaced the first"),
        );
        // Not another room's message, nor an unknown id.
        self.append(&[msg(&dev(), 1, "n", None, 1, Some("potions"))], 1, s)
            .await;
        check(
            ok(self.store.retract(&key, &id(&dev(), 1), &gone).await, s),
            false,
            &format!("{s}: another room's id"),
        );
        check(
            ok(
                self.store
                    .retract(&other_lobby(), &id(&key, 1), &gone)
                    .await,
                s,
            ),
            false,
            &format!("{s}: the same room name on another service"),
        );
        check(
            ok(self.store.retract(&key, "nope", &gone).await, s),
            false,
            &format!("{s}: an unknown id"),
        );
        check(
            self.found(&dev(), &search("potions"), s).await,
            (vec![id(&dev(), 1)], 1),
            &format!("{s}: the other room's message is untouched"),
        );
        // Messages appended after a retraction are searched as usual.
        self.append(
            &[msg(&key, 4, "carol", None, 4000, Some("more potions"))],
            1,
            s,
        )
        .await;
        check(
            self.found(&key, &search("potions"), s).await,
            (vec![id(&key, 4)], 1),
            &format!("{s}: later messages"),
        );
        self.clean(s).await;
    }

    async fn services_apart(&self) {
        let s = "two services";
        let (here, there) = (lobby(), other_lobby());
        // Same room name, same ids, different messages.
        let a = vec![
            msg(&here, 1, "alice", Some(ALICE), 1000, Some("here one")),
            msg(&here, 2, "alice", Some(ALICE), 2000, Some("here two")),
        ];
        let b = vec![msg(&there, 1, "bob", Some(BOB), 5000, Some("there one"))];
        self.append(&[a.clone(), b.clone()].concat(), 3, s).await;
        check(ok(self.store.count(&here).await, s), 2, s);
        check(ok(self.store.count(&there).await, s), 1, s);
        check(
            self.page(&there, &query(PagePosition::First, 10), s)
                .await
                .messages,
            vec![paged(&b[0])],
            &format!("{s}: each has its own archive"),
        );
        check(
            ok(self.store.message(&there, &id(&there, 1)).await, s),
            Some(stored(&b[0])),
            &format!("{s}: the same id names each one's message"),
        );
        check(
            ok(self.store.bounds(&there).await, s).map(|(f, l)| (f.id, l.timestamp_us)),
            Some((id(&there, 1), 5000)),
            &format!("{s}: bounds"),
        );
        check(
            self.found(&there, &search("one"), s).await,
            (vec![id(&there, 1)], 1),
            &format!("{s}: search"),
        );
        check(
            ok(self.store.delete_room(&there).await, s),
            1,
            &format!("{s}: delete one"),
        );
        check(
            self.page(&here, &query(PagePosition::First, 10), s)
                .await
                .messages,
            a.iter().map(paged).collect::<Vec<_>>(),
            &format!("{s}: the other is untouched"),
        );
        self.clean(s).await;
    }

    async fn delete_room(&self) {
        let s = "delete_room";
        let key = lobby();
        self.fill(&key, 3, s).await;
        self.fill(&dev(), 2, s).await;
        check(
            ok(self.store.delete_room(&key).await, s),
            3,
            &format!("{s}: how many it held"),
        );
        check(ok(self.store.count(&key).await, s), 0, s);
        check(ok(self.store.bounds(&key).await, s), None, s);
        check(
            ok(self.store.message(&key, &id(&key, 1)).await, s),
            None,
            &format!("{s}: its messages are gone"),
        );
        check(
            self.found(&key, &search("hello"), s).await,
            (vec![], 0),
            &format!("{s}: full-text search does not find them"),
        );
        check(
            ok(self.store.delete_room(&key).await, s),
            0,
            &format!("{s}: again"),
        );
        check(
            ok(self.store.count(&dev()).await, s),
            2,
            &format!("{s}: other rooms keep theirs"),
        );
        // A new room of the same name starts empty and may use the old ids.
        self.fill(&key, 1, s).await;
        check(
            self.found(&key, &search("hello"), s).await,
            (vec![id(&key, 1)], 1),
            &format!("{s}: a new room of the same name"),
        );
        self.clean(s).await;
    }

    async fn retention(&self) {
        let s = "retention";
        let (lobby, dev) = (lobby(), dev());
        self.fill(&lobby, 6, s).await;
        self.fill(&dev, 2, s).await;
        // Older than 3000 µs: lobby's 1, 2 and dev's 1, 2.
        check(
            ok(self.store.expire(3000).await, s),
            4,
            &format!("{s}: expire"),
        );
        let p = self.page(&lobby, &query(PagePosition::First, 10), s).await;
        check(
            ids(&p),
            vec!["lobby-id-3", "lobby-id-4", "lobby-id-5", "lobby-id-6"],
            &format!("{s}: what expiry left"),
        );
        check(ok(self.store.count(&dev).await, s), 0, s);
        check(
            ok(self.store.bounds(&lobby).await, s).map(|(f, _)| f),
            Some(ArchiveBound {
                id: id(&lobby, 3),
                timestamp_us: 3000,
            }),
            &format!("{s}: bounds after expiry"),
        );
        // The cap keeps the newest of every room.
        self.fill(&dev, 3, s).await;
        check(ok(self.store.trim(2).await, s), 3, &format!("{s}: trim"));
        check(
            ids(&self.page(&lobby, &query(PagePosition::First, 10), s).await),
            vec!["lobby-id-5", "lobby-id-6"],
            &format!("{s}: what the cap left"),
        );
        check(
            ids(&self.page(&dev, &query(PagePosition::First, 10), s).await),
            vec!["dev-id-2", "dev-id-3"],
            &format!("{s}: what the cap left in the other room"),
        );
        check(
            ok(self.store.trim(2).await, s),
            0,
            &format!("{s}: nothing more to trim"),
        );
        check(
            ok(self.store.trim(0).await, s),
            4,
            &format!("{s}: a cap of 0 empties every archive"),
        );
        self.expect_empty(&format!("{s}: after a cap of 0")).await;
        // Rooms emptied by retention take messages again.
        self.fill(&lobby, 1, s).await;
        check(ok(self.store.count(&lobby).await, s), 1, s);
        self.clean(s).await;
    }

    async fn account_deletion(&self) {
        let s = "account deletion";
        let key = lobby();
        super::create_account_in(PREFIX, self.accounts, "alice", "example.org", s).await;
        let batch = vec![
            msg(&key, 1, "alice", Some(ALICE), 1000, Some("remember me")),
            msg(&key, 2, "bob", Some(BOB), 2000, Some("we will")),
        ];
        self.append(&batch, 2, s).await;
        ok(
            self.accounts.delete_account("alice", "example.org").await,
            &format!("{s}: delete alice"),
        );
        self.expect_no_accounts(s).await;
        check(
            self.page(&key, &query(PagePosition::First, 10), s)
                .await
                .messages,
            batch.iter().map(paged).collect::<Vec<_>>(),
            &format!("{s}: the room keeps what the account sent"),
        );
        let mut q = query(PagePosition::First, 10);
        q.with = by_jid(ALICE);
        check(
            self.found(&key, &q, s).await,
            (vec![id(&key, 1)], 1),
            &format!("{s}: still by its real JID"),
        );
        check(
            self.found(&key, &search("remember"), s).await,
            (vec![id(&key, 1)], 1),
            &format!("{s}: and by its words"),
        );
        self.clean(s).await;
    }
}
