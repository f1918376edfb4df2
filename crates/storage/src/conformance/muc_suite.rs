//! Conformance suite for [`MucStore`].

use std::fmt::Debug;

use crate::{
    AccountStore, ForgottenJid, MucStore, RoomAffiliation, RoomConfig, RoomKey, RoomSubject,
    StorageError, StoredRoom,
};

/// Runs the [`MucStore`] conformance suite against `muc`, using `accounts` (of the same backend)
/// to check that deleting an account leaves the rooms alone.
///
/// The backend must hold no accounts and no rooms; every section deletes what it created, so it
/// holds none again when this returns.
///
/// # Panics
///
/// On the first violated expectation, with a message naming the section and check.
pub async fn muc(accounts: &dyn AccountStore, muc: &dyn MucStore) {
    let s = Suite { accounts, muc };
    s.expect_no_accounts("precondition: the store must be empty")
        .await;
    s.expect_empty("precondition: the store must be empty")
        .await;
    s.rooms().await;
    s.subject().await;
    s.missing_room().await;
    s.affiliations().await;
    s.reserved_nicks().await;
    s.rooms_of().await;
    s.forget_jid().await;
    s.isolation().await;
    s.account_deletion().await;
    s.expect_empty("postcondition").await;
    s.expect_no_accounts("postcondition").await;
}

const PREFIX: &str = "conformance::muc";

const SERVICE: &str = "conference.example.org";
const OTHER_SERVICE: &str = "chat.example.com";

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
const CAROL: &str = "carol@example.net";

fn ok<T>(res: Result<T, StorageError>, what: &str) -> T {
    super::ok_in(PREFIX, res, what)
}

fn check<T: PartialEq + Debug>(got: T, want: T, what: &str) {
    super::check_in(PREFIX, got, want, what);
}

fn expect_err<T: Debug>(res: Result<T, StorageError>, want: &str, what: &str) {
    super::expect_err_in(PREFIX, res, want, what);
}

fn key(service: &str, room: &str) -> RoomKey {
    RoomKey::new(service, room)
}

fn config(name: &str) -> RoomConfig {
    super::form_fields(&[
        ("FORM_TYPE", &["http://jabber.org/protocol/muc#roomconfig"]),
        ("muc#roomconfig_roomname", &[name]),
        ("muc#roomconfig_persistentroom", &["1"]),
        ("muc#roomconfig_roomadmins", &[BOB, "ü „b“", ""]),
        ("muc#roomconfig_roomdesc", &[]),
    ])
}

fn aff(jid: &str, affiliation: &str, nick: Option<&str>, reason: Option<&str>) -> RoomAffiliation {
    RoomAffiliation {
        jid: jid.to_owned(),
        affiliation: affiliation.to_owned(),
        nick: nick.map(str::to_owned),
        reason: reason.map(str::to_owned),
    }
}

fn subject(text: &str, by: &str, at: i64) -> RoomSubject {
    RoomSubject {
        text: text.to_owned(),
        by: by.to_owned(),
        at,
    }
}

fn jids(affs: &[RoomAffiliation]) -> Vec<&str> {
    affs.iter().map(|a| a.jid.as_str()).collect()
}

struct Suite<'a> {
    accounts: &'a dyn AccountStore,
    muc: &'a dyn MucStore,
}

impl Suite<'_> {
    async fn expect_no_accounts(&self, what: &str) {
        super::expect_no_accounts_in(PREFIX, self.accounts, what).await;
    }

    /// No rooms in any service the suite uses, and no affiliations of the JIDs it uses.
    async fn expect_empty(&self, what: &str) {
        for service in [SERVICE, OTHER_SERVICE] {
            check(
                ok(self.muc.rooms(service).await, what),
                Vec::new(),
                &format!("{what}: rooms of {service}"),
            );
            check(
                ok(self.muc.room_count(service).await, what),
                0,
                &format!("{what}: room count of {service}"),
            );
        }
        for jid in [ALICE, BOB, CAROL, "dave@example.org", "zed@example.org"] {
            check(
                ok(self.muc.rooms_of(None, jid).await, what),
                Vec::new(),
                &format!("{what}: rooms of {jid}"),
            );
        }
    }

    async fn create(&self, key: &RoomKey, what: &str) {
        ok(
            self.muc.create_room(key, &config("Lobby"), 1234).await,
            &format!("{what}: create {key:?}"),
        );
    }

    async fn delete(&self, key: &RoomKey, what: &str) {
        ok(
            self.muc.delete_room(key).await,
            &format!("{what}: delete {key:?}"),
        );
    }

    async fn set(&self, key: &RoomKey, a: &RoomAffiliation, what: &str) {
        ok(
            self.muc.set_affiliation(key, a).await,
            &format!("{what}: set {a:?} in {key:?}"),
        );
    }

    async fn rooms(&self) {
        let s = "rooms";
        let b = key(SERVICE, "b");
        let a = key(SERVICE, "a");
        let upper = key(SERVICE, "B");
        check(
            ok(self.muc.room(&a).await, s),
            None,
            &format!("{s}: before creation"),
        );
        for k in [&b, &a, &upper] {
            self.create(k, s).await;
        }
        let want_a = StoredRoom {
            key: a.clone(),
            config: config("Lobby"),
            subject: None,
            created_at: 1234,
        };
        check(
            ok(self.muc.room(&a).await, s),
            Some(want_a.clone()),
            &format!("{s}: room round trip (config kept exactly, empty values included)"),
        );
        // Sorted by localpart, byte order ("B" < "a" < "b"), each with its configuration.
        let all = ok(self.muc.rooms(SERVICE).await, s);
        check(
            all.iter().map(|r| r.key.room.as_str()).collect::<Vec<_>>(),
            vec!["B", "a", "b"],
            &format!("{s}: rooms sorted by localpart"),
        );
        check(
            all.get(1).cloned(),
            Some(want_a.clone()),
            &format!("{s}: rooms returns whole rooms"),
        );
        check(
            ok(self.muc.room_count(SERVICE).await, s),
            3,
            &format!("{s}: room count"),
        );
        // Creating it again fails and changes nothing.
        expect_err(
            self.muc.create_room(&a, &config("Other"), 99).await,
            "AlreadyExists",
            &format!("{s}: create twice"),
        );
        check(
            ok(self.muc.room(&a).await, s),
            Some(want_a.clone()),
            &format!("{s}: unchanged by the failed create"),
        );
        check(
            ok(self.muc.room_count(SERVICE).await, s),
            3,
            &format!("{s}: count unchanged by the failed create"),
        );
        // Configuration: replaced whole, also by an empty one; the rest of the room stays.
        let other: RoomConfig =
            vec![("muc#roomconfig_publicroom".to_owned(), vec!["0".to_owned()])];
        ok(self.muc.set_config(&a, &other).await, s);
        check(
            ok(self.muc.room(&a).await, s),
            Some(StoredRoom {
                config: other.clone(),
                ..want_a.clone()
            }),
            &format!("{s}: set_config"),
        );
        check(
            ok(self.muc.room(&b).await, s).map(|r| r.config),
            Some(config("Lobby")),
            &format!("{s}: set_config touches one room"),
        );
        ok(self.muc.set_config(&a, &Vec::new()).await, s);
        check(
            ok(self.muc.room(&a).await, s).map(|r| r.config),
            Some(Vec::new()),
            &format!("{s}: empty config"),
        );
        // Deleting a room deletes its subject and affiliations.
        ok(
            self.muc
                .set_subject(&a, Some(&subject("hi", "alice", 5)))
                .await,
            s,
        );
        self.set(&a, &aff(ALICE, "owner", Some("al"), None), s)
            .await;
        self.set(&a, &aff(CAROL, "outcast", None, Some("spam")), s)
            .await;
        self.delete(&a, s).await;
        check(
            ok(self.muc.room(&a).await, s),
            None,
            &format!("{s}: deleted"),
        );
        expect_err(
            self.muc.delete_room(&a).await,
            "NotFound",
            &format!("{s}: delete twice"),
        );
        check(
            ok(self.muc.room_count(SERVICE).await, s),
            2,
            &format!("{s}: count after delete"),
        );
        self.create(&a, &format!("{s}: re-create")).await;
        check(
            ok(self.muc.room(&a).await, s).and_then(|r| r.subject),
            None,
            &format!("{s}: re-created room has no subject"),
        );
        check(
            ok(self.muc.affiliations(&a, None).await, s),
            Vec::new(),
            &format!("{s}: re-created room has no affiliations"),
        );
        check(
            ok(self.muc.nick_holder(&a, "al").await, s),
            None,
            &format!("{s}: re-created room has no reserved nicks"),
        );
        check(
            ok(self.muc.rooms_of(None, ALICE).await, s),
            Vec::new(),
            &format!("{s}: the deleted room's affiliations are gone"),
        );
        for k in [&a, &b, &upper] {
            self.delete(k, s).await;
        }
        self.expect_empty(s).await;
    }

    async fn subject(&self) {
        let s = "subject";
        let k = key(SERVICE, "talk");
        let sibling = key(SERVICE, "other");
        self.create(&k, s).await;
        self.create(&sibling, s).await;
        let first = subject("Welcome <all> & \"friends\"\nline two ü 🎉", "Älice", 10);
        ok(self.muc.set_subject(&k, Some(&first)).await, s);
        check(
            ok(self.muc.room(&k).await, s).and_then(|r| r.subject),
            Some(first.clone()),
            &format!("{s}: round trip, byte-for-byte"),
        );
        check(
            ok(self.muc.room(&sibling).await, s).and_then(|r| r.subject),
            None,
            &format!("{s}: the sibling has none"),
        );
        // Replaced whole; an empty text is a subject too (XEP-0045 §8.1 clears it that way,
        // but whether to store it is the engine's choice).
        let empty = subject("", "bob", 20);
        ok(self.muc.set_subject(&k, Some(&empty)).await, s);
        check(
            ok(self.muc.room(&k).await, s).and_then(|r| r.subject),
            Some(empty),
            &format!("{s}: empty text kept"),
        );
        // Cleared; the rest of the room stays.
        ok(self.muc.set_subject(&k, None).await, s);
        check(
            ok(self.muc.room(&k).await, s),
            Some(StoredRoom {
                key: k.clone(),
                config: config("Lobby"),
                subject: None,
                created_at: 1234,
            }),
            &format!("{s}: cleared"),
        );
        ok(self.muc.set_subject(&k, None).await, s);
        // A configuration change leaves the subject alone, and the other way round.
        ok(self.muc.set_subject(&k, Some(&first)).await, s);
        ok(self.muc.set_config(&k, &config("Renamed")).await, s);
        check(
            ok(self.muc.room(&k).await, s),
            Some(StoredRoom {
                key: k.clone(),
                config: config("Renamed"),
                subject: Some(first.clone()),
                created_at: 1234,
            }),
            &format!("{s}: config and subject independent"),
        );
        check(
            ok(self.muc.rooms(SERVICE).await, s)
                .into_iter()
                .map(|r| r.subject)
                .collect::<Vec<_>>(),
            vec![None, Some(first)],
            &format!("{s}: rooms carries subjects"),
        );
        self.delete(&k, s).await;
        self.delete(&sibling, s).await;
        self.expect_empty(s).await;
    }

    async fn missing_room(&self) {
        let s = "missing room";
        let k = key(SERVICE, "nope");
        // Same name in another service, and a different case in this one.
        self.create(&key(SERVICE, "Nope"), s).await;
        self.create(&key(OTHER_SERVICE, "nope"), s).await;
        // Writes fail.
        expect_err(
            self.muc.set_config(&k, &config("x")).await,
            "NotFound",
            &format!("{s}: set_config"),
        );
        expect_err(
            self.muc.set_subject(&k, Some(&subject("x", "y", 1))).await,
            "NotFound",
            &format!("{s}: set_subject"),
        );
        expect_err(
            self.muc.set_subject(&k, None).await,
            "NotFound",
            &format!("{s}: clear subject"),
        );
        expect_err(
            self.muc.delete_room(&k).await,
            "NotFound",
            &format!("{s}: delete_room"),
        );
        expect_err(
            self.muc
                .set_affiliation(&k, &aff(ALICE, "owner", None, None))
                .await,
            "NotFound",
            &format!("{s}: set_affiliation"),
        );
        expect_err(
            self.muc.remove_affiliation(&k, ALICE).await,
            "NotFound",
            &format!("{s}: remove_affiliation"),
        );
        // Reads return nothing.
        check(ok(self.muc.room(&k).await, s), None, &format!("{s}: room"));
        check(
            ok(self.muc.affiliations(&k, None).await, s),
            Vec::new(),
            &format!("{s}: affiliations"),
        );
        check(
            ok(self.muc.affiliations(&k, Some("owner")).await, s),
            Vec::new(),
            &format!("{s}: affiliations of a kind"),
        );
        check(
            ok(self.muc.affiliation(&k, ALICE).await, s),
            None,
            &format!("{s}: affiliation"),
        );
        check(
            ok(self.muc.nick_holder(&k, "al").await, s),
            None,
            &format!("{s}: nick_holder"),
        );
        check(
            ok(self.muc.room_count("conference.example.net").await, s),
            0,
            &format!("{s}: count of an unknown service"),
        );
        check(
            ok(self.muc.rooms("conference.example.net").await, s),
            Vec::new(),
            &format!("{s}: rooms of an unknown service"),
        );
        // The failed writes created nothing.
        check(
            ok(self.muc.rooms_of(None, ALICE).await, s),
            Vec::new(),
            &format!("{s}: no affiliation was made"),
        );
        check(
            ok(self.muc.room_count(SERVICE).await, s),
            1,
            &format!("{s}: no room was made"),
        );
        self.delete(&key(SERVICE, "Nope"), s).await;
        self.delete(&key(OTHER_SERVICE, "nope"), s).await;
        self.expect_empty(s).await;
    }

    async fn affiliations(&self) {
        let s = "affiliations";
        let k = key(SERVICE, "team");
        let other = key(SERVICE, "other");
        self.create(&k, s).await;
        self.create(&other, s).await;
        let zed = aff("zed@example.org", "member", None, None);
        let alice = aff(ALICE, "owner", Some("alice"), None);
        let bob = aff(BOB, "admin", Some("bobby"), Some("helps out"));
        let carol = aff(CAROL, "outcast", None, Some("Spam <links> ü"));
        for a in [&zed, &alice, &bob, &carol] {
            self.set(&k, a, s).await;
        }
        self.set(&other, &aff(ALICE, "member", None, None), s).await;
        check(
            ok(self.muc.affiliations(&k, None).await, s),
            vec![alice.clone(), bob.clone(), carol.clone(), zed.clone()],
            &format!("{s}: sorted by JID, round trip"),
        );
        check(
            ok(self.muc.affiliation(&k, CAROL).await, s),
            Some(carol.clone()),
            &format!("{s}: one, reason byte-for-byte"),
        );
        check(
            ok(self.muc.affiliation(&k, "Carol@example.net").await, s),
            None,
            &format!("{s}: byte-exact JIDs"),
        );
        check(
            ok(self.muc.affiliation(&k, "dave@example.org").await, s),
            None,
            &format!("{s}: none"),
        );
        // By kind.
        for (kind, want) in [
            ("owner", vec![alice.clone()]),
            ("admin", vec![bob.clone()]),
            ("member", vec![zed.clone()]),
            ("outcast", vec![carol.clone()]),
            ("none", vec![]),
            ("Owner", vec![]),
        ] {
            check(
                ok(self.muc.affiliations(&k, Some(kind)).await, s),
                want,
                &format!("{s}: the {kind} list"),
            );
        }
        // Replaced whole: kind, nick and reason.
        let bob2 = aff(BOB, "member", None, None);
        self.set(&k, &bob2, s).await;
        check(
            ok(self.muc.affiliation(&k, BOB).await, s),
            Some(bob2.clone()),
            &format!("{s}: replaced, nick and reason dropped"),
        );
        let bob3 = aff(BOB, "member", Some("robert"), Some(""));
        self.set(&k, &bob3, s).await;
        check(
            ok(self.muc.affiliation(&k, BOB).await, s),
            Some(bob3.clone()),
            &format!("{s}: replaced, empty reason kept as given"),
        );
        check(
            jids(&ok(self.muc.affiliations(&k, Some("member")).await, s)),
            vec![BOB, "zed@example.org"],
            &format!("{s}: the member list after the change"),
        );
        check(
            ok(self.muc.affiliations(&k, Some("admin")).await, s),
            Vec::new(),
            &format!("{s}: the admin list after the change"),
        );
        // Remove; removing what is not there is fine and says so.
        check(
            ok(self.muc.remove_affiliation(&k, BOB).await, s),
            true,
            &format!("{s}: remove"),
        );
        check(
            ok(self.muc.remove_affiliation(&k, BOB).await, s),
            false,
            &format!("{s}: remove twice"),
        );
        check(
            ok(
                self.muc.remove_affiliation(&k, "Alice@example.org").await,
                s,
            ),
            false,
            &format!("{s}: remove byte-exact"),
        );
        check(
            ok(self.muc.affiliations(&k, None).await, s),
            vec![alice.clone(), carol.clone(), zed.clone()],
            &format!("{s}: after removal"),
        );
        // Per room.
        check(
            ok(self.muc.affiliations(&other, None).await, s),
            vec![aff(ALICE, "member", None, None)],
            &format!("{s}: the other room untouched"),
        );
        self.delete(&k, s).await;
        check(
            ok(self.muc.affiliations(&other, None).await, s),
            vec![aff(ALICE, "member", None, None)],
            &format!("{s}: the other room kept by the delete"),
        );
        self.delete(&other, s).await;
        self.expect_empty(s).await;
    }

    async fn reserved_nicks(&self) {
        let s = "reserved nicks";
        let k = key(SERVICE, "nicks");
        let other = key(SERVICE, "elsewhere");
        self.create(&k, s).await;
        self.create(&other, s).await;
        let alice = aff(ALICE, "member", Some("Wonder"), None);
        self.set(&k, &alice, s).await;
        check(
            ok(self.muc.nick_holder(&k, "Wonder").await, s),
            Some(alice.clone()),
            &format!("{s}: holder"),
        );
        check(
            ok(self.muc.nick_holder(&k, "wonder").await, s),
            None,
            &format!("{s}: byte-exact nicks"),
        );
        check(
            ok(self.muc.nick_holder(&other, "Wonder").await, s),
            None,
            &format!("{s}: per room"),
        );
        // Another JID cannot reserve it (XEP-0045 §7.10), whatever its kind; nothing changes.
        let bob = aff(BOB, "admin", Some("bob"), None);
        self.set(&k, &bob, s).await;
        expect_err(
            self.muc
                .set_affiliation(&k, &aff(BOB, "owner", Some("Wonder"), Some("x")))
                .await,
            "AlreadyExists",
            &format!("{s}: taken by another JID (existing row)"),
        );
        expect_err(
            self.muc
                .set_affiliation(&k, &aff(CAROL, "member", Some("Wonder"), None))
                .await,
            "AlreadyExists",
            &format!("{s}: taken by another JID (new row)"),
        );
        check(
            ok(self.muc.affiliations(&k, None).await, s),
            vec![alice.clone(), bob.clone()],
            &format!("{s}: unchanged by the refused reservations"),
        );
        // The same nick in another room is fine.
        self.set(&other, &aff(CAROL, "member", Some("Wonder"), None), s)
            .await;
        // The holder may keep it while its affiliation changes.
        let alice2 = aff(ALICE, "admin", Some("Wonder"), Some("promoted"));
        self.set(&k, &alice2, s).await;
        check(
            ok(self.muc.nick_holder(&k, "Wonder").await, s),
            Some(alice2.clone()),
            &format!("{s}: kept by its holder"),
        );
        // Any number of affiliations without a nick.
        self.set(&k, &aff(CAROL, "member", None, None), s).await;
        self.set(&k, &aff("dave@example.org", "outcast", None, None), s)
            .await;
        // Changing the nick frees the old one.
        let alice3 = aff(ALICE, "admin", Some("Alice"), None);
        self.set(&k, &alice3, s).await;
        check(
            ok(self.muc.nick_holder(&k, "Wonder").await, s),
            None,
            &format!("{s}: freed by a new nick"),
        );
        check(
            ok(self.muc.nick_holder(&k, "Alice").await, s),
            Some(alice3.clone()),
            &format!("{s}: the new nick"),
        );
        let bob2 = aff(BOB, "admin", Some("Wonder"), None);
        self.set(&k, &bob2, s).await;
        check(
            ok(self.muc.nick_holder(&k, "Wonder").await, s),
            Some(bob2),
            &format!("{s}: taken after it was freed"),
        );
        // Removing the affiliation frees its nick.
        check(ok(self.muc.remove_affiliation(&k, ALICE).await, s), true, s);
        check(
            ok(self.muc.nick_holder(&k, "Alice").await, s),
            None,
            &format!("{s}: freed by removal"),
        );
        let carol = aff(CAROL, "member", Some("Alice"), None);
        self.set(&k, &carol, s).await;
        check(
            ok(self.muc.nick_holder(&k, "Alice").await, s),
            Some(carol),
            &format!("{s}: taken after removal"),
        );
        // Non-ASCII nicks.
        let dave = aff("dave@example.org", "member", Some("Дэйв 🎉"), None);
        self.set(&k, &dave, s).await;
        check(
            ok(self.muc.nick_holder(&k, "Дэйв 🎉").await, s),
            Some(dave),
            &format!("{s}: non-ASCII nick"),
        );
        self.delete(&k, s).await;
        self.delete(&other, s).await;
        self.expect_empty(s).await;
    }

    async fn rooms_of(&self) {
        let s = "rooms of";
        let b = key(SERVICE, "b");
        let a = key(SERVICE, "a");
        let x = key(OTHER_SERVICE, "x");
        let none = key(SERVICE, "c");
        for k in [&b, &a, &x, &none] {
            self.create(k, s).await;
        }
        let in_b = aff(ALICE, "owner", Some("al"), None);
        let in_a = aff(ALICE, "outcast", None, Some("r"));
        let in_x = aff(ALICE, "member", None, None);
        self.set(&b, &in_b, s).await;
        self.set(&a, &in_a, s).await;
        self.set(&x, &in_x, s).await;
        self.set(&none, &aff(BOB, "owner", None, None), s).await;
        self.set(&a, &aff(BOB, "member", None, None), s).await;
        check(
            ok(self.muc.rooms_of(None, ALICE).await, s),
            vec![
                (x.clone(), in_x.clone()),
                (a.clone(), in_a.clone()),
                (b.clone(), in_b.clone()),
            ],
            &format!("{s}: every service, sorted by service then room"),
        );
        check(
            ok(self.muc.rooms_of(Some(SERVICE), ALICE).await, s),
            vec![(a.clone(), in_a), (b.clone(), in_b)],
            &format!("{s}: one service"),
        );
        check(
            ok(
                self.muc
                    .rooms_of(Some("conference.example.net"), ALICE)
                    .await,
                s,
            ),
            Vec::new(),
            &format!("{s}: another service"),
        );
        check(
            ok(self.muc.rooms_of(None, "alice@example.org/phone").await, s),
            Vec::new(),
            &format!("{s}: byte-exact JIDs"),
        );
        check(
            ok(self.muc.rooms_of(None, BOB).await, s)
                .into_iter()
                .map(|(k, _)| k)
                .collect::<Vec<_>>(),
            vec![a.clone(), none.clone()],
            &format!("{s}: another JID"),
        );
        // Deleting a room removes it from every JID's list.
        self.delete(&a, s).await;
        check(
            ok(self.muc.rooms_of(None, ALICE).await, s)
                .into_iter()
                .map(|(k, _)| k)
                .collect::<Vec<_>>(),
            vec![x.clone(), b.clone()],
            &format!("{s}: after a room was deleted"),
        );
        for k in [&b, &x, &none] {
            self.delete(k, s).await;
        }
        self.expect_empty(s).await;
    }

    async fn forget_jid(&self) {
        let s = "forget jid";
        // sole: alice the only owner. shared: alice and bob own it. admin: alice an admin, no
        // owner at all. banned: alice an outcast, bob the owner. unrelated: no alice.
        let sole = key(SERVICE, "sole");
        let shared = key(SERVICE, "shared");
        let admin = key(SERVICE, "admin");
        let banned = key(OTHER_SERVICE, "banned");
        let remote_sole = key(OTHER_SERVICE, "a-sole");
        let unrelated = key(SERVICE, "unrelated");
        for k in [&sole, &shared, &admin, &banned, &remote_sole, &unrelated] {
            self.create(k, s).await;
        }
        self.set(&sole, &aff(ALICE, "owner", Some("al"), None), s)
            .await;
        self.set(&sole, &aff(CAROL, "member", Some("c"), None), s)
            .await;
        self.set(&shared, &aff(ALICE, "owner", None, None), s).await;
        self.set(&shared, &aff(BOB, "owner", None, None), s).await;
        self.set(&admin, &aff(ALICE, "admin", Some("al"), None), s)
            .await;
        self.set(&banned, &aff(ALICE, "outcast", None, Some("no")), s)
            .await;
        self.set(&banned, &aff(BOB, "owner", None, None), s).await;
        self.set(&remote_sole, &aff(ALICE, "owner", None, None), s)
            .await;
        self.set(&unrelated, &aff(CAROL, "owner", None, None), s)
            .await;
        // A JID that differs only in case is someone else.
        self.set(
            &unrelated,
            &aff("Alice@example.org", "member", None, None),
            s,
        )
        .await;
        let forgotten = ok(self.muc.forget_jid(ALICE).await, s);
        check(
            forgotten,
            ForgottenJid {
                rooms: vec![
                    remote_sole.clone(),
                    banned.clone(),
                    admin.clone(),
                    shared.clone(),
                    sole.clone(),
                ],
                ownerless: vec![remote_sole.clone(), sole.clone()],
            },
            &format!("{s}: the rooms, and those left without an owner"),
        );
        check(
            ok(self.muc.rooms_of(None, ALICE).await, s),
            Vec::new(),
            &format!("{s}: no affiliation left"),
        );
        check(
            ok(self.muc.nick_holder(&sole, "al").await, s),
            None,
            &format!("{s}: reserved nick freed"),
        );
        // Everyone else's stay, and so do the rooms.
        check(
            ok(self.muc.affiliations(&sole, None).await, s),
            vec![aff(CAROL, "member", Some("c"), None)],
            &format!("{s}: the others in the ownerless room"),
        );
        check(
            ok(self.muc.affiliations(&shared, Some("owner")).await, s),
            vec![aff(BOB, "owner", None, None)],
            &format!("{s}: the other owner"),
        );
        check(
            ok(self.muc.affiliations(&unrelated, None).await, s),
            vec![
                aff("Alice@example.org", "member", None, None),
                aff(CAROL, "owner", None, None),
            ],
            &format!("{s}: an unrelated room, byte-exact JIDs"),
        );
        check(
            ok(self.muc.room_count(SERVICE).await, s)
                + ok(self.muc.room_count(OTHER_SERVICE).await, s),
            6,
            &format!("{s}: no room deleted"),
        );
        // Again: nothing left to forget.
        check(
            ok(self.muc.forget_jid(ALICE).await, s),
            ForgottenJid::default(),
            &format!("{s}: forget twice"),
        );
        check(
            ok(self.muc.forget_jid("nobody@example.org").await, s),
            ForgottenJid::default(),
            &format!("{s}: a JID with no affiliations"),
        );
        // The last owner of a room with owners of another kind only counts exactly "owner".
        self.set(&admin, &aff(BOB, "owner", None, None), s).await;
        self.set(&admin, &aff(CAROL, "Owner", None, None), s).await;
        check(
            ok(self.muc.forget_jid(BOB).await, s),
            ForgottenJid {
                rooms: vec![banned.clone(), admin.clone(), shared.clone()],
                ownerless: vec![banned.clone(), admin.clone(), shared.clone()],
            },
            &format!("{s}: only `owner` is an owner"),
        );
        for k in [&sole, &shared, &admin, &banned, &remote_sole, &unrelated] {
            self.delete(k, s).await;
        }
        self.expect_empty(s).await;
    }

    async fn isolation(&self) {
        let s = "isolation";
        let a = key(SERVICE, "room");
        let b = key(OTHER_SERVICE, "room");
        ok(self.muc.create_room(&a, &config("A"), 1).await, s);
        ok(self.muc.create_room(&b, &config("B"), 2).await, s);
        ok(
            self.muc.set_subject(&a, Some(&subject("a", "x", 3))).await,
            s,
        );
        self.set(&a, &aff(ALICE, "owner", Some("al"), None), s)
            .await;
        self.set(&b, &aff(ALICE, "member", Some("al"), None), s)
            .await;
        check(
            ok(self.muc.room(&b).await, s),
            Some(StoredRoom {
                key: b.clone(),
                config: config("B"),
                subject: None,
                created_at: 2,
            }),
            &format!("{s}: same localpart in another service"),
        );
        check(
            ok(self.muc.affiliation(&b, ALICE).await, s).map(|a| a.affiliation),
            Some("member".to_owned()),
            &format!("{s}: affiliation per service"),
        );
        check(ok(self.muc.room_count(SERVICE).await, s), 1, s);
        check(ok(self.muc.room_count(OTHER_SERVICE).await, s), 1, s);
        self.delete(&a, s).await;
        check(
            ok(self.muc.affiliation(&b, ALICE).await, s),
            Some(aff(ALICE, "member", Some("al"), None)),
            &format!("{s}: after deleting the same localpart elsewhere"),
        );
        check(
            ok(self.muc.room(&b).await, s).map(|r| r.created_at),
            Some(2),
            s,
        );
        self.delete(&b, s).await;
        self.expect_empty(s).await;
    }

    async fn account_deletion(&self) {
        let s = "account deletion";
        let alice = ("alice", "example.org");
        super::create_account_in(PREFIX, self.accounts, alice.0, alice.1, s).await;
        let k = key(SERVICE, "kept");
        self.create(&k, s).await;
        let owner = aff(ALICE, "owner", Some("al"), None);
        self.set(&k, &owner, s).await;
        ok(self.accounts.delete_account(alice.0, alice.1).await, s);
        // Rooms belong to no account and affiliations name JIDs: the engine forgets them.
        check(
            ok(self.muc.room(&k).await, s).map(|r| r.key),
            Some(k.clone()),
            &format!("{s}: the room stays"),
        );
        check(
            ok(self.muc.affiliations(&k, None).await, s),
            vec![owner],
            &format!("{s}: the deleted account's affiliation stays"),
        );
        check(
            ok(self.muc.forget_jid(ALICE).await, s),
            ForgottenJid {
                rooms: vec![k.clone()],
                ownerless: vec![k.clone()],
            },
            &format!("{s}: forgotten by the engine"),
        );
        self.delete(&k, s).await;
        self.expect_no_accounts(s).await;
        self.expect_empty(s).await;
    }
}
