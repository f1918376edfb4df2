//! SQLite backend tests against real database files in temp directories.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::Path;
use std::time::Duration;

use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use starling_storage::{Credential, StorageError};
use starling_storage_sqlite::SqliteStorage;

fn cred(mechanism: &str, seed: u8) -> Credential {
    Credential {
        mechanism: mechanism.to_owned(),
        salt: vec![seed, 0, seed],
        iterations: 4096,
        stored_key: vec![seed; 32],
        server_key: vec![seed.wrapping_add(1); 32],
    }
}

/// A plain connection to the file, outside the backend (like another tool).
async fn raw(path: &Path) -> SqliteConnection {
    SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path))
        .await
        .unwrap()
}

async fn count(conn: &mut SqliteConnection, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(conn).await.unwrap()
}

/// A fresh database in a temporary directory (kept alive by the returned guard).
async fn fresh() -> (tempfile::TempDir, SqliteStorage) {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(&dir.path().join("starling.db"))
        .await
        .unwrap();
    (dir, storage)
}

#[tokio::test]
async fn conformance_accounts() {
    let (_dir, storage) = fresh().await;
    starling_storage::conformance::accounts(&*storage.stores().accounts).await;
    storage.close().await;
}

#[tokio::test]
async fn conformance_rosters() {
    let (_dir, storage) = fresh().await;
    let stores = storage.stores();
    starling_storage::conformance::rosters(&*stores.accounts, &*stores.rosters).await;
    storage.close().await;
}

#[tokio::test]
async fn conformance_archive() {
    let (_dir, storage) = fresh().await;
    let stores = storage.stores();
    starling_storage::conformance::archive(&*stores.accounts, &*stores.archive).await;
    storage.close().await;
}

#[tokio::test]
async fn conformance_blocking() {
    let (_dir, storage) = fresh().await;
    let stores = storage.stores();
    starling_storage::conformance::blocking(&*stores.accounts, &*stores.blocking).await;
    storage.close().await;
}

#[tokio::test]
async fn conformance_offline() {
    let (_dir, storage) = fresh().await;
    let stores = storage.stores();
    starling_storage::conformance::offline(&*stores.accounts, &*stores.offline).await;
    storage.close().await;
}

#[tokio::test]
async fn conformance_vcards() {
    let (_dir, storage) = fresh().await;
    let stores = storage.stores();
    starling_storage::conformance::vcards(&*stores.accounts, &*stores.vcards).await;
    storage.close().await;
}

#[tokio::test]
async fn conformance_private() {
    let (_dir, storage) = fresh().await;
    let stores = storage.stores();
    starling_storage::conformance::private(&*stores.accounts, &*stores.private).await;
    storage.close().await;
}

#[tokio::test]
async fn conformance_pubsub() {
    let (_dir, storage) = fresh().await;
    let stores = storage.stores();
    starling_storage::conformance::pubsub(&*stores.accounts, &*stores.pubsub).await;
    storage.close().await;
}

#[tokio::test]
async fn conformance_muc() {
    let (_dir, storage) = fresh().await;
    let stores = storage.stores();
    starling_storage::conformance::muc(&*stores.accounts, &*stores.muc).await;
    storage.close().await;
}

#[tokio::test]
async fn conformance_room_archive() {
    let (_dir, storage) = fresh().await;
    let stores = storage.stores();
    starling_storage::conformance::room_archive(&*stores.accounts, &*stores.room_archive).await;
    storage.close().await;
}

#[tokio::test]
async fn conformance_upload() {
    let (_dir, storage) = fresh().await;
    let stores = storage.stores();
    starling_storage::conformance::upload(&*stores.accounts, &*stores.upload).await;
    storage.close().await;
}

#[tokio::test]
async fn conformance_push() {
    let (_dir, storage) = fresh().await;
    let stores = storage.stores();
    starling_storage::conformance::push(&*stores.accounts, &*stores.push).await;
    storage.close().await;
}

#[tokio::test]
async fn conformance_invites() {
    let (_dir, storage) = fresh().await;
    let stores = storage.stores();
    starling_storage::conformance::invites(&*stores.accounts, &*stores.invites).await;
    storage.close().await;
}

#[tokio::test]
async fn conformance_fast() {
    let (_dir, storage) = fresh().await;
    let stores = storage.stores();
    starling_storage::conformance::fast(&*stores.accounts, &*stores.fast).await;
    storage.close().await;
}

#[tokio::test]
async fn open_creates_parent_directories_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("var/lib/starling/starling.db");
    assert!(!path.exists());
    let storage = SqliteStorage::open(&path).await.unwrap();
    assert!(path.is_file());
    storage.close().await;
}

#[tokio::test]
async fn data_persists_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("starling.db");
    let sha256 = cred("SCRAM-SHA-256", 7);

    let storage = SqliteStorage::open(&path).await.unwrap();
    storage
        .stores()
        .accounts
        .create_account("alice", "example.org", std::slice::from_ref(&sha256))
        .await
        .unwrap();
    storage.close().await;

    for _ in 0..3 {
        let storage = SqliteStorage::open(&path).await.unwrap();
        let accounts = storage.stores().accounts;
        assert!(
            accounts
                .account_exists("alice", "example.org")
                .await
                .unwrap()
        );
        assert_eq!(
            accounts
                .credential("alice", "example.org", "SCRAM-SHA-256")
                .await
                .unwrap(),
            Some(sha256.clone())
        );
        assert_eq!(
            accounts.list_accounts(None).await.unwrap(),
            vec![("alice".to_owned(), "example.org".to_owned())]
        );
        storage.close().await;
    }

    let mut conn = raw(&path).await;
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let expected: Vec<(i64, bool)> = migration_versions()
        .into_iter()
        .map(|v| (v, true))
        .collect();
    assert_eq!(applied, expected);
}

#[tokio::test]
async fn journal_mode_is_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("starling.db");
    let storage = SqliteStorage::open(&path).await.unwrap();
    storage.close().await;
    // WAL is persistent in the file: a fresh plain connection sees it.
    let mut conn = raw(&path).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn delete_cascades_to_credentials_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("starling.db");
    let storage = SqliteStorage::open(&path).await.unwrap();
    let accounts = storage.stores().accounts;
    accounts
        .create_account(
            "alice",
            "example.org",
            &[cred("SCRAM-SHA-1", 1), cred("SCRAM-SHA-256", 2)],
        )
        .await
        .unwrap();
    accounts
        .create_account("bob", "example.org", &[cred("SCRAM-SHA-1", 3)])
        .await
        .unwrap();
    let mut conn = raw(&path).await;
    assert_eq!(
        count(&mut conn, "SELECT COUNT(*) FROM credentials").await,
        3
    );
    accounts
        .delete_account("alice", "example.org")
        .await
        .unwrap();
    assert_eq!(
        count(&mut conn, "SELECT COUNT(*) FROM credentials").await,
        1
    );
    assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM accounts").await, 1);
    storage.close().await;
}

/// Server and CLI: two pools on one file, writing at the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pools_write_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("starling.db");
    let server = SqliteStorage::open(&path).await.unwrap();
    let cli = SqliteStorage::open(&path).await.unwrap();

    const N: usize = 40;
    let mut tasks = Vec::new();
    for (name, storage) in [("server", &server), ("cli", &cli)] {
        for i in 0..N {
            let accounts = storage.stores().accounts;
            tasks.push(tokio::spawn(async move {
                let localpart = format!("{name}{i:02}");
                accounts
                    .create_account(&localpart, "example.org", &[cred("SCRAM-SHA-1", 1)])
                    .await?;
                accounts
                    .set_credentials(&localpart, "example.org", &[cred("SCRAM-SHA-256", 2)])
                    .await
            }));
        }
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }

    let mut want: Vec<(String, String)> = (0..N)
        .flat_map(|i| [format!("cli{i:02}"), format!("server{i:02}")])
        .map(|l| (l, "example.org".to_owned()))
        .collect();
    want.sort();
    assert_eq!(want.len(), 2 * N);
    for storage in [&server, &cli] {
        let accounts = storage.stores().accounts;
        assert_eq!(accounts.list_accounts(None).await.unwrap(), want);
        assert_eq!(
            accounts
                .credential("cli07", "example.org", "SCRAM-SHA-256")
                .await
                .unwrap(),
            Some(cred("SCRAM-SHA-256", 2))
        );
        assert_eq!(
            accounts
                .credential("server39", "example.org", "SCRAM-SHA-1")
                .await
                .unwrap(),
            None
        );
    }
    server.close().await;
    cli.close().await;
}

/// A write waits for another process's write lock instead of failing with
/// "database is locked".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_waits_for_lock_within_busy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("starling.db");
    let storage = SqliteStorage::open(&path).await.unwrap();

    let mut other = raw(&path).await;
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    sqlx::query("INSERT INTO accounts (domain, localpart) VALUES ('example.org', 'held')")
        .execute(&mut other)
        .await
        .unwrap();

    let accounts = storage.stores().accounts;
    let write = tokio::spawn(async move {
        accounts
            .create_account("alice", "example.org", &[cred("SCRAM-SHA-1", 1)])
            .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!write.is_finished(), "write should be waiting for the lock");
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    write.await.unwrap().unwrap();

    assert_eq!(
        storage.stores().accounts.list_accounts(None).await.unwrap(),
        vec![
            ("alice".to_owned(), "example.org".to_owned()),
            ("held".to_owned(), "example.org".to_owned()),
        ]
    );
    storage.close().await;
}

/// Server and CLI both opening a brand-new file at once must both succeed
/// (and apply each migration once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_open_migrates_once() {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("starling.db");
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                tokio::spawn(async move { SqliteStorage::open(&path).await })
            })
            .collect();
        let mut opened = Vec::new();
        for open in opens {
            match open.await.unwrap() {
                Ok(storage) => opened.push(storage),
                Err(e) => panic!("round {round}: concurrent open failed: {e}"),
            }
        }
        let mut conn = raw(&path).await;
        assert_eq!(
            count(&mut conn, "SELECT COUNT(*) FROM _sqlx_migrations").await,
            i64::try_from(migration_versions().len()).unwrap(),
            "round {round}"
        );
        for storage in opened {
            storage.close().await;
        }
    }
}

#[tokio::test]
async fn database_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("starling.db");
    SqliteStorage::open(&path).await.unwrap().close().await;
    let mut conn = raw(&path).await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', TRUE, x'00', 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    let err = SqliteStorage::open(&path).await.unwrap_err();
    assert!(matches!(err, StorageError::Backend(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "storage backend error: cannot migrate database {}: ",
            path.display()
        )),
        "{msg}"
    );
    assert!(msg.contains("9999"), "{msg}");
}

#[tokio::test]
async fn not_a_database_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("starling.db");
    std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
    let err = SqliteStorage::open(&path).await.unwrap_err();
    assert!(matches!(err, StorageError::Backend(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "storage backend error: cannot open database {}: ",
            path.display()
        )),
        "{msg}"
    );
}

#[tokio::test]
async fn stores_fail_after_close() {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(&dir.path().join("starling.db"))
        .await
        .unwrap();
    let accounts = storage.stores().accounts;
    storage.close().await;
    let err = accounts
        .account_exists("alice", "example.org")
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Backend(_)), "{err:?}");
}

/// The server spawns these: their futures must be `Send` (a compile-time
/// check; `Migrator::run` on a transaction would break it).
#[test]
fn futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let open = SqliteStorage::open(Path::new("never-opened.db"));
    assert_send(&open);
    drop(open);
}

#[tokio::test]
async fn delete_cascades_to_roster_tables() {
    use starling_storage::{RosterItem, Subscription};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("starling.db");
    let storage = SqliteStorage::open(&path).await.unwrap();
    let stores = storage.stores();
    for l in ["alice", "bob"] {
        stores
            .accounts
            .create_account(l, "example.org", &[])
            .await
            .unwrap();
    }
    let item = RosterItem {
        subscription: Subscription::Both,
        groups: vec!["Friends".to_owned(), "Work".to_owned()],
        ..RosterItem::new("carol@example.net")
    };
    assert_eq!(
        stores
            .rosters
            .put_item("alice", "example.org", &item)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        stores
            .rosters
            .put_item("bob", "example.org", &item)
            .await
            .unwrap(),
        1
    );
    let mut conn = raw(&path).await;
    let counts = async |conn: &mut SqliteConnection| {
        (
            count(conn, "SELECT COUNT(*) FROM roster_items").await,
            count(conn, "SELECT COUNT(*) FROM roster_groups").await,
            count(conn, "SELECT COUNT(*) FROM roster_versions").await,
        )
    };
    assert_eq!(counts(&mut conn).await, (2, 4, 2));
    stores
        .accounts
        .delete_account("alice", "example.org")
        .await
        .unwrap();
    assert_eq!(counts(&mut conn).await, (1, 2, 1));
    // Removing an item drops its groups but keeps the version row.
    assert_eq!(
        stores
            .rosters
            .remove_item("bob", "example.org", "carol@example.net")
            .await
            .unwrap(),
        Some(2)
    );
    assert_eq!(counts(&mut conn).await, (0, 0, 1));
    storage.close().await;
}

#[tokio::test]
async fn delete_cascades_to_offline_vcard_and_private_tables() {
    use starling_storage::OfflineOutcome;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("starling.db");
    let storage = SqliteStorage::open(&path).await.unwrap();
    let stores = storage.stores();
    for l in ["alice", "bob"] {
        stores
            .accounts
            .create_account(l, "example.org", &[])
            .await
            .unwrap();
        for n in 0..3 {
            let got = stores
                .offline
                .store(l, "example.org", &format!("<message id='{n}'/>"), 10)
                .await
                .unwrap();
            assert!(matches!(got, OfflineOutcome::Stored { .. }), "{got:?}");
        }
        stores
            .vcards
            .set_vcard(l, "example.org", "<vCard xmlns='vcard-temp'/>")
            .await
            .unwrap();
        stores
            .private
            .set(
                l,
                "example.org",
                &[starling_storage::PrivateElement::new(
                    "storage",
                    "storage:bookmarks",
                    "<storage xmlns='storage:bookmarks'/>",
                )],
            )
            .await
            .unwrap();
    }
    let mut conn = raw(&path).await;
    let counts = async |conn: &mut SqliteConnection| {
        (
            count(conn, "SELECT COUNT(*) FROM offline_messages").await,
            count(conn, "SELECT COUNT(*) FROM vcards").await,
            count(conn, "SELECT COUNT(*) FROM private_xml").await,
        )
    };
    assert_eq!(counts(&mut conn).await, (6, 2, 2));
    stores
        .accounts
        .delete_account("alice", "example.org")
        .await
        .unwrap();
    assert_eq!(counts(&mut conn).await, (3, 1, 1));
    storage.close().await;
}

/// Concurrent stores on one account never exceed the limit: the count and the
/// insert are one write transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_limit_holds_under_concurrency() {
    use starling_storage::OfflineOutcome;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("starling.db");
    let server = SqliteStorage::open(&path).await.unwrap();
    let other = SqliteStorage::open(&path).await.unwrap();
    server
        .stores()
        .accounts
        .create_account("bob", "example.org", &[])
        .await
        .unwrap();
    const MAX: u64 = 7;
    let mut tasks = Vec::new();
    for (i, storage) in [&server, &other].into_iter().cycle().take(40).enumerate() {
        let offline = storage.stores().offline;
        tasks.push(tokio::spawn(async move {
            offline
                .store("bob", "example.org", &format!("<message id='{i}'/>"), MAX)
                .await
        }));
    }
    let mut stored = 0;
    for task in tasks {
        if let OfflineOutcome::Stored { .. } = task.await.unwrap().unwrap() {
            stored += 1;
        }
    }
    assert_eq!(stored, MAX);
    assert_eq!(
        server
            .stores()
            .offline
            .count("bob", "example.org")
            .await
            .unwrap(),
        MAX
    );
    server.close().await;
    other.close().await;
}

/// The number of migration files shipped (numbered 1..=n).
/// The versions of the migration files (`NNNN_name.sql`), ascending. Not necessarily
/// contiguous: branches take numbers ahead of each other (0008 push before 0007 blocking).
fn migration_versions() -> Vec<i64> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut versions: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.ok()?.path();
            if path.extension()? != "sql" {
                return None;
            }
            let name = path.file_name()?.to_str()?.to_owned();
            name.split('_').next()?.parse().ok()
        })
        .collect();
    versions.sort_unstable();
    versions
}

/// Migration 0009: bodies are indexed for full-text search in batches. Across a batch boundary,
/// with rows deleted both before and after they were indexed (the per-account cap), a search
/// finds exactly the rows that are left, and FTS5's own integrity check passes (a 'delete' of a
/// row that was never indexed would fail it).
#[tokio::test]
async fn fulltext_index_in_batches_stays_consistent() {
    use starling_storage::{ArchiveQuery, NewArchived};
    let (dir, storage) = fresh().await;
    let stores = storage.stores();
    stores
        .accounts
        .create_account("alice", "example.org", &[])
        .await
        .unwrap();
    let message = |i: usize| NewArchived {
        localpart: "alice".to_owned(),
        domain: "example.org".to_owned(),
        id: format!("id{i}"),
        timestamp_us: i64::try_from(i).unwrap(),
        with: "bob@example.org".to_owned(),
        with_resource: String::new(),
        stanza: format!("<message><body>word{} common</body></message>", i % 10),
        body: Some(format!("word{} common", i % 10)),
    };
    let search = |text: &str| ArchiveQuery {
        fulltext: Some(text.to_owned()),
        max: 10,
        ..ArchiveQuery::default()
    };
    // 5,000 rows in batches of 250: one batch crosses the indexing threshold (4,096 waiting).
    for chunk in (0..5000).collect::<Vec<_>>().chunks(250) {
        let batch: Vec<NewArchived> = chunk.iter().map(|&i| message(i)).collect();
        stores.archive.append(&batch).await.unwrap();
    }
    let mut conn = raw(&dir.path().join("starling.db")).await;
    let indexed = count(&mut conn, "SELECT indexed_seq FROM archive_fts_state").await;
    assert!((4096..5000).contains(&indexed), "{indexed}");
    // The cap deletes the oldest 4,500: indexed rows, and none of the newest 500 is indexed yet.
    assert_eq!(stores.archive.trim(500).await.unwrap(), 4500);
    let page = stores
        .archive
        .query("alice", "example.org", &search("common"))
        .await
        .unwrap();
    assert_eq!(page.count, 500);
    let page = stores
        .archive
        .query("alice", "example.org", &search("word7"))
        .await
        .unwrap();
    assert_eq!(page.count, 50);
    // Everything left is indexed now; delete some of it, then check the index.
    assert_eq!(
        count(&mut conn, "SELECT indexed_seq FROM archive_fts_state").await,
        5000
    );
    assert_eq!(stores.archive.trim(100).await.unwrap(), 400);
    sqlx::query("INSERT INTO archive_fts (archive_fts) VALUES ('integrity-check')")
        .execute(&mut conn)
        .await
        .unwrap();
    let page = stores
        .archive
        .query("alice", "example.org", &search("common"))
        .await
        .unwrap();
    assert_eq!(page.count, 100);
    storage.close().await;
}

/// FTS5's own check of `table`, and how many rows its index holds for `word`, stale ones
/// included (a row deleted or retracted without the index being told stays there, where a
/// search through the store, joined to live rows, might not show it).
async fn fts_check(conn: &mut SqliteConnection, table: &str, word: &str) -> i64 {
    let sql = format!("INSERT INTO {table} ({table}) VALUES ('integrity-check')");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await
        .unwrap();
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE {table} MATCH ?1");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(word)
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Migration 0016: room archives index bodies in batches like user archives (0009), and a
/// retraction (XEP-0425) takes a body out of the index whether it was indexed yet or not (the
/// update trigger). Across a batch boundary, with retractions of indexed and of waiting rows, a
/// deleted room, the per-room cap and retention, a search finds exactly the live bodies left,
/// the index holds nothing else and FTS5's integrity check passes.
#[tokio::test]
async fn room_archive_fulltext_in_batches_with_retractions_stays_consistent() {
    use starling_storage::{ArchiveQuery, NewRoomArchived, RoomKey};
    let (dir, storage) = fresh().await;
    let stores = storage.stores();
    let lobby = RoomKey::new("conference.example.org", "lobby");
    let dev = RoomKey::new("conference.example.org", "dev");
    let message = |i: usize| NewRoomArchived {
        key: if i.is_multiple_of(2) {
            lobby.clone()
        } else {
            dev.clone()
        },
        id: format!("id{i}"),
        timestamp_us: i64::try_from(i).unwrap(),
        nick: format!("nick{}", i % 7),
        sender: None,
        stanza: format!(
            "<message type='groupchat'><body>word{} common</body></message>",
            i % 10
        ),
        body: Some(format!("word{} common", i % 10)),
    };
    let search = |text: &str| ArchiveQuery {
        fulltext: Some(text.to_owned()),
        max: 10,
        ..ArchiveQuery::default()
    };
    // 5,000 rows in batches of 250: one batch crosses the indexing threshold (4,096 waiting).
    for chunk in (0..5000).collect::<Vec<_>>().chunks(250) {
        let batch: Vec<NewRoomArchived> = chunk.iter().map(|&i| message(i)).collect();
        stores.room_archive.append(&batch).await.unwrap();
    }
    let mut conn = raw(&dir.path().join("starling.db")).await;
    let indexed = count(&mut conn, "SELECT indexed_seq FROM room_archive_fts_state").await;
    assert!((4096..5000).contains(&indexed), "{indexed}");
    // Retract 10 of the lobby's indexed rows (id0 … id18) and 10 waiting ones (id4980 … id4998).
    for i in (0..20_usize).chain(4980..5000).step_by(2) {
        assert!(
            stores
                .room_archive
                .retract(&lobby, &format!("id{i}"), "<message/>")
                .await
                .unwrap()
        );
    }
    let page = stores
        .room_archive
        .query(&lobby, &search("common"))
        .await
        .unwrap();
    assert_eq!(page.count, 2480);
    // word0 bodies in the lobby: ids 0, 10, 20 … 4990; 0, 10, 4980, 4990 retracted.
    let page = stores
        .room_archive
        .query(&lobby, &search("word0"))
        .await
        .unwrap();
    assert_eq!(page.count, 496);
    assert_eq!(
        count(&mut conn, "SELECT indexed_seq FROM room_archive_fts_state").await,
        5000
    );
    assert_eq!(
        fts_check(&mut conn, "room_archive_fts", "common").await,
        4980
    );
    // The other room goes, then the cap.
    assert_eq!(stores.room_archive.delete_room(&dev).await.unwrap(), 2500);
    assert_eq!(
        count(&mut conn, "SELECT COUNT(*) FROM room_archive_rooms").await,
        1
    );
    assert_eq!(
        fts_check(&mut conn, "room_archive_fts", "common").await,
        2480
    );
    assert_eq!(stores.room_archive.trim(100).await.unwrap(), 2400);
    let page = stores
        .room_archive
        .query(&lobby, &search("common"))
        .await
        .unwrap();
    // The newest 100 of the lobby (ids 4800 … 4998), 10 of them retracted.
    assert_eq!(page.count, 90);
    assert_eq!(fts_check(&mut conn, "room_archive_fts", "common").await, 90);
    // Retention empties the room: its row goes too.
    assert_eq!(stores.room_archive.expire(i64::MAX).await.unwrap(), 100);
    assert_eq!(
        count(&mut conn, "SELECT COUNT(*) FROM room_archive_rooms").await,
        0
    );
    assert_eq!(fts_check(&mut conn, "room_archive_fts", "common").await, 0);
    storage.close().await;
}
