//! XEP-0227 import and export (`starling import xep0227`, `starling export xep0227`) on real
//! SQLite: the files Prosody 0.12 and ejabberd 23.01 really wrote (tests/xep0227/README.md), a
//! hand-written file in Prosody's shape, and an export → import round trip, each asserting the
//! stored data exactly. tests/migration/run.sh does the same against the live servers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use starling::xep0227::{self, ImportError, ImportOptions, ReadError};
use starling_storage::{ArchiveQuery, PrivateElement, RosterItem, Stores, Subscription};
use starling_storage_sqlite::SqliteStorage;

/// The passwords tests/migration/xmpp.py gave the accounts of the real exports.
const ALICE_PW: &str = "pässwörd-Ærø-✓";
const BOB_PW: &str = "bob's secret";
const CAROL_PW: &str = "carol-pw-3";
const DORA_PW: &str = "dora’s pässword";

const OPTIONS: ImportOptions = ImportOptions {
    iterations: 4096,
    replace_existing: false,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/xep0227")
        .join(name)
}

async fn fresh() -> (tempfile::TempDir, SqliteStorage) {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(&dir.path().join("starling.db"))
        .await
        .unwrap();
    (dir, storage)
}

fn served() -> Vec<String> {
    vec!["localhost".to_owned()]
}

/// The mechanisms an account has, and that each verifies `password`.
async fn check_password(stores: &Stores, user: &str, password: &str, mechanisms: &[&str]) {
    for mech in ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let c = stores
            .accounts
            .credential(user, "localhost", mech)
            .await
            .unwrap();
        assert_eq!(c.is_some(), mechanisms.contains(&mech), "{user}: {mech}");
        if let Some(c) = c {
            let scram = starling_accounts::to_scram(&c).unwrap();
            assert!(scram.verify_password(password), "{user}: {mech} password");
            assert!(!scram.verify_password("wrong"), "{user}: {mech} wrong");
        }
    }
}

fn item(jid: &str, name: Option<&str>, sub: Subscription, groups: &[&str]) -> RosterItem {
    RosterItem {
        jid: jid.to_owned(),
        name: name.map(str::to_owned),
        subscription: sub,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        ..RosterItem::default()
    }
}

fn sorted_groups(mut items: Vec<RosterItem>) -> Vec<RosterItem> {
    // Prosody keeps groups as a set: their order in its files is arbitrary.
    for i in &mut items {
        i.groups.sort();
    }
    items
}

/// What tests/migration/xmpp.py's populate step set up, as both servers exported it.
async fn check_common(stores: &Stores, vcard_alice: &str) {
    let accounts = stores.accounts.list_accounts(None).await.unwrap();
    assert_eq!(
        accounts,
        [
            ("alice".to_owned(), "localhost".to_owned()),
            ("bob".to_owned(), "localhost".to_owned()),
            ("carol".to_owned(), "localhost".to_owned()),
        ]
    );
    let r = |u: &'static str| async move {
        sorted_groups(stores.rosters.items(u, "localhost").await.unwrap())
    };
    let mut carol_item = item("carol@localhost", Some("Carol"), Subscription::None, &[]);
    carol_item.ask_out = true;
    assert_eq!(
        r("alice").await,
        [
            item(
                "bob@localhost",
                Some("Bobby"),
                Subscription::Both,
                &["Friends", "Work"]
            ),
            carol_item
        ]
    );
    assert_eq!(
        r("bob").await,
        [item(
            "alice@localhost",
            Some("Alice"),
            Subscription::Both,
            &["Friends"]
        )]
    );
    let carol = r("carol").await;
    assert_eq!(carol.len(), 2, "{carol:?}");
    // alice's request, pending in, kept for delivery at carol's next login (RFC 6121 §3.1.3),
    // on a hidden item: carol never added alice.
    assert_eq!(
        carol[0],
        RosterItem {
            jid: "alice@localhost".to_owned(),
            pending_in: true,
            hidden: true,
            pending_in_stanza: carol[0].pending_in_stanza.clone(),
            ..RosterItem::default()
        }
    );
    let request =
        starling_module_api::parse_stored(carol[0].pending_in_stanza.as_deref().unwrap()).unwrap();
    assert!(request.is("presence", "jabber:client"), "{request}");
    assert_eq!(
        (
            request.attr("type"),
            request.attr("from"),
            request.attr("to")
        ),
        (
            Some("subscribe"),
            Some("alice@localhost"),
            Some("carol@localhost")
        )
    );
    assert_eq!(
        carol[1],
        item(
            "dave@remote.example",
            Some("Dave"),
            Subscription::None,
            &["Elsewhere"]
        )
    );

    let vcard = |u: &'static str| async move { stores.vcards.vcard(u, "localhost").await.unwrap() };
    assert_eq!(vcard("alice").await.as_deref(), Some(vcard_alice));
    assert_eq!(
        vcard("bob").await.as_deref(),
        Some("<vCard xmlns='vcard-temp'><FN>Bob Builder</FN></vCard>")
    );
    assert_eq!(
        vcard("carol").await.as_deref(),
        Some("<vCard xmlns='vcard-temp'><FN>Carol Ünïcode</FN><NICKNAME>caro</NICKNAME></vCard>")
    );
    assert_eq!(
        stores.private.all("alice", "localhost").await.unwrap(),
        [PrivateElement::new(
            "exodus",
            "exodus:prefs",
            "<exodus xmlns='exodus:prefs'><defaultnick>Alice in Wonderland</defaultnick></exodus>"
        )]
    );
    for u in ["bob", "carol"] {
        assert_eq!(stores.private.count(u, "localhost").await.unwrap(), 0);
    }
}

/// Prosody 0.12's files: one document per user, SCRAM-SHA-1 keys base64 once, the pending
/// request as a namespace-less <presence/>.
#[tokio::test]
async fn prosody_export() {
    let (_dir, storage) = fresh().await;
    let stores = storage.stores();
    let export = xep0227::read(&fixture("prosody")).unwrap();
    assert_eq!(export.files.len(), 3);
    assert_eq!(export.warnings, Vec::<String>::new());
    let report = xep0227::import(&stores, &export, &served(), OPTIONS)
        .await
        .unwrap();
    assert_eq!(
        (
            report.accounts,
            report.roster_items,
            report.pending_in,
            report.vcards
        ),
        (3, 4, 1, 3)
    );
    assert_eq!(
        (report.private, report.offline, report.failed.len()),
        (1, 0, 0)
    );
    check_common(
        &stores,
        "<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><NICKNAME>ali</NICKNAME><EMAIL>\
         <INTERNET/><USERID>alice@example.org</USERID></EMAIL></vCard>",
    )
    .await;
    for (u, pw) in [("alice", ALICE_PW), ("bob", BOB_PW), ("carol", CAROL_PW)] {
        check_password(&stores, u, pw, &["SCRAM-SHA-1"]).await;
        let c = stores
            .accounts
            .credential(u, "localhost", "SCRAM-SHA-1")
            .await
            .unwrap()
            .unwrap();
        // Prosody's salt is a UUID's text; its default is 10,000 iterations.
        assert_eq!((c.salt.len(), c.iterations), (36, 10_000));
    }
    storage.close().await;
}

/// ejabberd 23.01's files: a main file including a host file, SCRAM keys base64 twice, the
/// offline message and a jabber:client pending request.
#[tokio::test]
async fn ejabberd_export() {
    let (_dir, storage) = fresh().await;
    let stores = storage.stores();
    let export = xep0227::read(&fixture("ejabberd")).unwrap();
    assert_eq!(export.files.len(), 2);
    assert_eq!(export.warnings, Vec::<String>::new());
    let report = xep0227::import(&stores, &export, &served(), OPTIONS)
        .await
        .unwrap();
    assert_eq!(
        (report.accounts, report.offline, report.failed.len()),
        (3, 1, 0)
    );
    // ejabberd re-serialises vCards in its own element order.
    check_common(
        &stores,
        "<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><EMAIL><INTERNET/>\
         <USERID>alice@example.org</USERID></EMAIL><NICKNAME>ali</NICKNAME></vCard>",
    )
    .await;
    for (u, pw) in [("alice", ALICE_PW), ("bob", BOB_PW), ("carol", CAROL_PW)] {
        check_password(&stores, u, pw, &["SCRAM-SHA-1"]).await;
    }
    let offline = stores.offline.load("carol", "localhost").await.unwrap();
    assert_eq!(offline.len(), 1);
    assert_eq!(
        offline[0].stanza,
        "<message xmlns='jabber:client' xml:lang='en' to='carol@localhost' \
         from='bob@localhost/migration' type='chat' id='331d19eecfc54c7f8e9aac3f7ffbcc49'>\
         <delay xmlns='urn:xmpp:delay' from='localhost' stamp='2026-12-07T06:46:09.706594Z'>\
         Offline storage</delay><body>while you were out</body></message>"
    );
    // The host file alone reads the same.
    let host_file = fixture("ejabberd").join("20261207-064612_localhost.xml");
    let alone = xep0227::read(&host_file).unwrap();
    assert_eq!(alone.accounts, export.accounts);
    storage.close().await;
}

/// The hand-written file: a plaintext password, an archive, pre-approval, a request from a
/// contact not on the roster, and what is skipped (with a warning each).
#[tokio::test]
async fn handwritten_prosody_shaped() {
    let (_dir, storage) = fresh().await;
    let stores = storage.stores();
    let export = xep0227::read(&fixture("handwritten")).unwrap();
    assert_eq!(
        export.warnings,
        [
            "dora@localhost.xml: dora@localhost: private XML <query xmlns='jabber:iq:roster'/> \
             skipped (a reserved namespace)",
            "dora@localhost.xml: dora@localhost: skipped <pubsub \
             xmlns='http://jabber.org/protocol/pubsub#owner'/> (not imported)",
        ]
    );
    // The password is held only until import, and never shown.
    assert!(!format!("{:?}", export.accounts).contains("pässword"));
    let report = xep0227::import(&stores, &export, &served(), OPTIONS)
        .await
        .unwrap();
    assert_eq!(
        (report.accounts, report.from_password, report.archived),
        (1, 1, 2)
    );
    // All three hashes, made from the password at import.
    check_password(
        &stores,
        "dora",
        DORA_PW,
        &["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"],
    )
    .await;
    let roster = stores.rosters.items("dora", "localhost").await.unwrap();
    let mut eve = item("eve@remote.example", None, Subscription::None, &[]);
    eve.preapproved = true;
    let frank = RosterItem {
        jid: "frank@remote.example".to_owned(),
        pending_in: true,
        hidden: true,
        pending_in_stanza: Some(
            "<presence xmlns='jabber:client' from='frank@remote.example' type='subscribe' \
             to='dora@localhost'><status>it is me, Frank</status></presence>"
                .to_owned(),
        ),
        ..RosterItem::default()
    };
    assert_eq!(
        roster,
        [
            item(
                "alice@localhost",
                Some("Alice"),
                Subscription::From,
                &["Friends"]
            ),
            eve,
            frank
        ]
    );
    assert_eq!(
        stores.private.all("dora", "localhost").await.unwrap(),
        [PrivateElement::new(
            "storage",
            "storage:bookmarks",
            "<storage xmlns='storage:bookmarks'><conference jid='room@muc.localhost' \
             autojoin='true'><nick>dora</nick></conference></storage>"
        )]
    );
    let page = stores
        .archive
        .query(
            "dora",
            "localhost",
            &ArchiveQuery {
                max: 10,
                ..ArchiveQuery::default()
            },
        )
        .await
        .unwrap();
    let got: Vec<(&str, i64, &str, &str)> = page
        .messages
        .iter()
        .map(|m| {
            (
                m.id.as_str(),
                m.timestamp_us,
                m.with.as_str(),
                m.stanza.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "a1",
                1_767_323_045_000_000,
                "alice@localhost",
                "<message xmlns='jabber:client' from='dora@localhost/laptop' to='alice@localhost' \
                 type='chat' id='m1'><body>Hello Alice</body></message>"
            ),
            (
                "a2",
                1_767_323_100_250_000,
                "alice@localhost",
                "<message xmlns='jabber:client' from='alice@localhost/phone' \
                 to='dora@localhost/laptop' type='chat' id='m2'><body>Hi Dora</body></message>"
            ),
        ]
    );
    // Full-text search sees the bodies.
    let found = stores
        .archive
        .query(
            "dora",
            "localhost",
            &ArchiveQuery {
                fulltext: Some("dora".to_owned()),
                max: 10,
                ..ArchiveQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(found.messages.len(), 1);
    storage.close().await;
}

/// Everything one database holds, in a comparable form.
async fn dump(stores: &Stores) -> Vec<String> {
    let mut out = Vec::new();
    for (l, d) in stores.accounts.list_accounts(None).await.unwrap() {
        out.push(format!("account {l}@{d}"));
        for mech in ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
            if let Some(c) = stores.accounts.credential(&l, &d, mech).await.unwrap() {
                out.push(format!(
                    "  {mech} {:?} {} {:?} {:?}",
                    c.salt, c.iterations, c.stored_key, c.server_key
                ));
            }
        }
        for i in stores.rosters.items(&l, &d).await.unwrap() {
            out.push(format!("  roster {i:?}"));
        }
        out.push(format!(
            "  vcard {:?}",
            stores.vcards.vcard(&l, &d).await.unwrap()
        ));
        for p in stores.private.all(&l, &d).await.unwrap() {
            out.push(format!("  private {p:?}"));
        }
        for m in stores.offline.load(&l, &d).await.unwrap() {
            out.push(format!("  offline {}", m.stanza));
        }
        let page = stores
            .archive
            .query(
                &l,
                &d,
                &ArchiveQuery {
                    max: 1000,
                    ..ArchiveQuery::default()
                },
            )
            .await
            .unwrap();
        for m in page.messages {
            out.push(format!("  archive {m:?}"));
        }
    }
    out
}

/// Export writes what import reads: ejabberd's accounts and the hand-written one, imported,
/// exported, imported into a fresh database, hold exactly the same data (credentials included:
/// the keys are copied, never re-derived).
#[tokio::test]
async fn export_import_round_trip() {
    let (_d1, first) = fresh().await;
    let stores = first.stores();
    for source in ["ejabberd", "handwritten"] {
        let export = xep0227::read(&fixture(source)).unwrap();
        xep0227::import(&stores, &export, &served(), OPTIONS)
            .await
            .unwrap();
    }
    let before = dump(&stores).await;
    assert!(before.len() > 20, "{before:#?}");

    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("export");
    let report = xep0227::write(&stores, &served(), &dir).await.unwrap();
    assert_eq!(
        (
            report.accounts,
            report.offline,
            report.archived,
            report.pending_in
        ),
        (4, 1, 2, 2)
    );
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "alice@localhost.xml",
            "bob@localhost.xml",
            "carol@localhost.xml",
            "dora@localhost.xml"
        ]
    );
    for n in &names {
        let text = std::fs::read_to_string(dir.join(n)).unwrap();
        // SCRAM keys, never a password.
        assert!(text.contains("<scram-credentials"), "{n}");
        assert!(!text.contains("password"), "{n}: {text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(n)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{n}");
        }
    }
    // Exporting into a directory that is not empty is refused.
    assert!(matches!(
        xep0227::write(&stores, &served(), &dir).await,
        Err(xep0227::ExportError::NotEmpty(_))
    ));

    let (_d2, second) = fresh().await;
    let export = xep0227::read(&dir).unwrap();
    assert_eq!(export.warnings, Vec::<String>::new());
    xep0227::import(&second.stores(), &export, &served(), OPTIONS)
        .await
        .unwrap();
    assert_eq!(dump(&second.stores()).await, before);
    first.close().await;
    second.close().await;
}

/// Import checks before it writes: unknown hosts and existing accounts stop it with nothing
/// written; --replace-existing replaces (the old account's data goes).
#[tokio::test]
async fn refusals_and_replace() {
    let (_dir, storage) = fresh().await;
    let stores = storage.stores();
    let export = xep0227::read(&fixture("prosody")).unwrap();
    let err = xep0227::import(&stores, &export, &["example.org".to_owned()], OPTIONS)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ImportError::UnknownHosts(h) if h == "localhost"),
        "{err}"
    );
    assert!(
        stores
            .accounts
            .list_accounts(None)
            .await
            .unwrap()
            .is_empty()
    );

    // bob exists, with a vCard of his own.
    starling_accounts::create_account(&*stores.accounts, "bob", "localhost", "old", 4096)
        .await
        .unwrap();
    stores
        .vcards
        .set_vcard(
            "bob",
            "localhost",
            "<vCard xmlns='vcard-temp'><FN>Old Bob</FN></vCard>",
        )
        .await
        .unwrap();
    let err = xep0227::import(&stores, &export, &served(), OPTIONS)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ImportError::Exists(j) if j == "bob@localhost"),
        "{err}"
    );
    assert_eq!(
        stores.accounts.list_accounts(None).await.unwrap(),
        [("bob".to_owned(), "localhost".to_owned())]
    );

    let replace = ImportOptions {
        replace_existing: true,
        ..OPTIONS
    };
    let report = xep0227::import(&stores, &export, &served(), replace)
        .await
        .unwrap();
    assert_eq!((report.accounts, report.replaced), (3, 1));
    check_password(&stores, "bob", BOB_PW, &["SCRAM-SHA-1"]).await;
    assert_eq!(
        stores
            .vcards
            .vcard("bob", "localhost")
            .await
            .unwrap()
            .as_deref(),
        Some("<vCard xmlns='vcard-temp'><FN>Bob Builder</FN></vCard>")
    );
    storage.close().await;
}

/// What read refuses: the same account twice, an include leaving the directory, a file that is
/// not XEP-0227, SCRAM keys of no known length.
#[tokio::test]
async fn read_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    let user = |name: &str| {
        format!(
            "<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='{name}'/></host></server-data>"
        )
    };
    write("a/one.xml", &user("alice"));
    write("a/two.xml", &user("Alice"));
    assert!(matches!(
        xep0227::read(&dir.path().join("a")),
        Err(ReadError::Duplicate { jid, .. }) if jid == "alice@localhost"
    ));

    write(
        "outside.xml",
        "<host xmlns='urn:xmpp:pie:0' jid='localhost'/>",
    );
    write(
        "b/main.xml",
        "<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'>\
         <xi:include href='../outside.xml'/></server-data>",
    );
    let err = xep0227::read(&dir.path().join("b")).unwrap_err();
    assert!(err.to_string().contains("leaves the directory"), "{err}");

    write("c/other.xml", "<config/>");
    let err = xep0227::read(&dir.path().join("c")).unwrap_err();
    assert!(err.to_string().contains("not a XEP-0227 file"), "{err}");

    write(
        "d/bad.xml",
        "<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='x'>\
         <scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>\
         <iter-count>4096</iter-count><salt>c2FsdA==</salt><server-key>AAAA</server-key>\
         <stored-key>AAAA</stored-key></scram-credentials></user></host></server-data>",
    );
    let err = xep0227::read(&dir.path().join("d")).unwrap_err();
    assert!(
        err.to_string()
            .contains("x@localhost: the SCRAM-SHA-1 keys are 3 and 3 bytes, not 20"),
        "{err}"
    );

    write("e/broken.xml", "<server-data xmlns='urn:xmpp:pie:0'>");
    assert!(matches!(
        xep0227::read(&dir.path().join("e")),
        Err(ReadError::Xml { .. })
    ));
    assert!(matches!(
        xep0227::read(&dir.path().join("nothing-here")),
        Err(ReadError::Io { .. })
    ));
}
