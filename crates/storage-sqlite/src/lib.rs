//! SQLite backend for Starling's storage traits.
//!
//! [`SqliteStorage::open`] opens (creating it and its parent directory if
//! missing) one database file, configures every pooled connection and applies
//! the versioned migrations in `migrations/`; [`SqliteStorage::stores`] hands
//! out the trait objects ([`Stores`]) the server and modules use.
//!
//! # Connection setup and why
//!
//! * **WAL journal mode.** The server keeps the file open for its lifetime
//!   while the CLI (`starling user add`) opens the same file from another
//!   process. In WAL mode readers never block the writer and the writer never
//!   blocks readers, so the CLI's write doesn't stall logins and vice versa;
//!   only writers are serialised. The mode is persistent in the file.
//! * **Busy timeout, 5 s.** Two writers (server and CLI) still take turns on
//!   one write lock; instead of failing at once with `SQLITE_BUSY`
//!   ("database is locked"), a connection waits up to 5 s for it.
//! * **`BEGIN IMMEDIATE` for multi-statement writes.** A deferred
//!   transaction that reads and then writes can hit `SQLITE_BUSY` when it
//!   upgrades to a writer after another process committed; the busy timeout
//!   cannot help there because the read snapshot is already stale. Taking the
//!   write lock up front makes such transactions wait (within the timeout)
//!   instead. Migrations run inside one such transaction too, so two processes
//!   opening a new file at the same moment don't both try to create tables.
//! * **Retrying the first connection.** Turning a brand-new file into WAL
//!   needs an exclusive lock, and SQLite reports a clash there (two processes
//!   creating the file at once) as `SQLITE_BUSY` without waiting, so
//!   [`SqliteStorage::open`] retries the connect itself, within the same 5 s.
//! * **Foreign keys on** (per connection, SQLite defaults to off), so that
//!   `ON DELETE CASCADE` removes everything an account owns.
//! * A small pool ([`MAX_CONNECTIONS`]): SQLite has one writer anyway.
//!
//! # Why runtime-checked queries
//!
//! All SQL goes through `sqlx::query`/`query_as`/`query_scalar`, never the
//! compile-time `query!` macros. Those need a live database (`DATABASE_URL`)
//! or a checked-in `.sqlx` offline cache at build time, which ties every
//! build — CI, every developer sharing this workspace — to a prepared schema
//! and to keeping that cache in sync. The SQL here is small and is verified
//! at test time instead: `starling_storage::conformance` runs every statement
//! against a real database file.
//!
//! # Hazards
//!
//! * WAL needs shared memory between processes: the file must be on a local
//!   filesystem, not NFS/SMB. The database is three files (`x.db`, `x.db-wal`,
//!   `x.db-shm`); copy it for backup only with SQLite's backup API or
//!   `VACUUM INTO`, never by copying `x.db` alone while it is open.
//! * Migrations run inside a transaction with foreign keys on. A migration
//!   must therefore never `DROP TABLE accounts` (e.g. to rebuild it): the
//!   implicit delete would cascade and wipe every per-account table. Use
//!   `ALTER TABLE … ADD COLUMN` or rebuild child-first. Never edit an applied
//!   migration file: its checksum is recorded and opening then fails.
//! * The path must name a file; `:memory:` would give every pooled connection
//!   its own empty database.

mod accounts;
mod archive;
mod archive_tables;
mod blocking;
mod bulk;
mod fast;
mod invites;
mod muc;
mod offline;
mod private;
mod pubsub;
mod push;
mod room_archive;
mod rosters;
mod shared;
mod upload;
mod vcards;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use starling_storage::{StorageError, Stores};

use crate::accounts::SqliteAccountStore;
use crate::archive::SqliteArchiveStore;
use crate::blocking::SqliteBlockingStore;
use crate::fast::SqliteFastTokenStore;
use crate::invites::SqliteInviteStore;
use crate::muc::SqliteMucStore;
use crate::offline::SqliteOfflineStore;
use crate::private::SqlitePrivateStore;
use crate::pubsub::SqlitePubsubStore;
use crate::push::SqlitePushStore;
use crate::room_archive::SqliteRoomArchiveStore;
use crate::rosters::SqliteRosterStore;
use crate::upload::SqliteUploadStore;
use crate::vcards::SqliteVcardStore;

/// Each connection's page cache (`PRAGMA cache_size`, negative: KiB), 16 MiB instead of
/// SQLite's 2 MiB: an archive insert touches index pages all over the file (ids are random,
/// accounts interleave), and pages not in the cache are read again for every batch.
const CACHE_SIZE_PRAGMA: &str = "-16384";

/// Pages the WAL may hold before a commit copies them into the database file
/// (`PRAGMA wal_autocheckpoint`; SQLite's default is 1000, 4 MiB). A busy archive commits
/// hundreds of pages at a time, mostly the same index pages again: with the default nearly every
/// commit was followed by a checkpoint; with 64 MiB a page rewritten many times is copied once.
const WAL_AUTOCHECKPOINT_PAGES: &str = "16384";

/// How long a connection waits for another writer's lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause between attempts when opening meets a busy file (see
/// [`SqliteStorage::open`]); attempts stop after [`BUSY_TIMEOUT`].
const CONNECT_RETRY: Duration = Duration::from_millis(25);

/// Upper bound on pooled connections per [`SqliteStorage`].
pub const MAX_CONNECTIONS: u32 = 4;

/// The schema migrations, embedded at build time from `migrations/`.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Why [`SqliteStorage::open`] failed (carried in [`StorageError::Backend`]).
#[derive(Debug, thiserror::Error)]
enum OpenError {
    #[error("cannot create directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open database {}: {source}", path.display())]
    Connect { path: PathBuf, source: sqlx::Error },
    #[error("cannot migrate database {}: {source}", path.display())]
    Migrate { path: PathBuf, source: MigrateError },
}

/// A SQLite database file backing all of Starling's stores.
#[derive(Debug, Clone)]
pub struct SqliteStorage {
    pool: SqlitePool,
    /// The one connection the archives' appends (users' and rooms') use (see
    /// [`SqliteStorage::open`]).
    archive_writer: SqlitePool,
}

impl SqliteStorage {
    /// Opens the database at `path`, creating the file and its parent
    /// directories if missing, and brings the schema up to date.
    ///
    /// Safe to call while another process has the same file open.
    pub async fn open(path: &Path) -> Result<Self, StorageError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // One-off at start-up; blocking briefly here is acceptable.
            std::fs::create_dir_all(dir).map_err(|source| {
                StorageError::backend(OpenError::CreateDir {
                    path: dir.to_owned(),
                    source,
                })
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .pragma("cache_size", CACHE_SIZE_PRAGMA)
            .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES);
        let deadline = Instant::now() + BUSY_TIMEOUT;
        let pool = loop {
            match SqlitePoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                .connect_with(options.clone())
                .await
            {
                Ok(pool) => break pool,
                // Turning a new file into WAL needs an exclusive lock, and two
                // processes doing it at once get SQLITE_BUSY straight away
                // (lock upgrade deadlock: the busy handler is not consulted).
                Err(e) if is_busy(&e) && Instant::now() < deadline => {
                    tokio::time::sleep(CONNECT_RETRY).await;
                }
                Err(source) => {
                    return Err(StorageError::backend(OpenError::Connect {
                        path: path.to_owned(),
                        source,
                    }));
                }
            }
        };
        if let Err(source) = migrate(&pool).await {
            pool.close().await;
            return Err(StorageError::backend(OpenError::Migrate {
                path: path.to_owned(),
                source,
            }));
        }
        // The archives' appends (users' and rooms') keep a connection of their own: in WAL mode a
        // connection drops its whole page cache whenever another connection committed since its
        // last transaction, so appends that took any pooled connection re-read the archive's
        // index pages for nearly every batch. Made lazily, like the pool's.
        let archive_writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            archive_writer,
        })
    }

    /// The stores backed by this database.
    pub fn stores(&self) -> Stores {
        Stores {
            accounts: Arc::new(SqliteAccountStore::new(self.pool.clone())),
            rosters: Arc::new(SqliteRosterStore::new(self.pool.clone())),
            offline: Arc::new(SqliteOfflineStore::new(self.pool.clone())),
            vcards: Arc::new(SqliteVcardStore::new(self.pool.clone())),
            archive: Arc::new(SqliteArchiveStore::new(
                self.pool.clone(),
                self.archive_writer.clone(),
            )),
            blocking: Arc::new(SqliteBlockingStore::new(self.pool.clone())),
            push: Arc::new(SqlitePushStore::new(self.pool.clone())),
            invites: Arc::new(SqliteInviteStore::new(self.pool.clone())),
            private: Arc::new(SqlitePrivateStore::new(self.pool.clone())),
            fast: Arc::new(SqliteFastTokenStore::new(self.pool.clone())),
            pubsub: Arc::new(SqlitePubsubStore::new(self.pool.clone())),
            muc: Arc::new(SqliteMucStore::new(self.pool.clone())),
            room_archive: Arc::new(SqliteRoomArchiveStore::new(
                self.pool.clone(),
                self.archive_writer.clone(),
            )),
            upload: Arc::new(SqliteUploadStore::new(self.pool.clone())),
        }
    }

    /// Closes all connections, waiting for those in use to be returned.
    ///
    /// Stores handed out by [`Self::stores`] fail with
    /// [`StorageError::Backend`] afterwards.
    pub async fn close(&self) {
        self.archive_writer.close().await;
        self.pool.close().await;
    }
}

/// Whether `err` is SQLite's SQLITE_BUSY or SQLITE_LOCKED (any extended code).
fn is_busy(err: &sqlx::Error) -> bool {
    const SQLITE_BUSY: i32 = 5;
    const SQLITE_LOCKED: i32 = 6;
    let sqlx::Error::Database(db) = err else {
        return false;
    };
    // sqlx reports the extended result code; the primary code is its low byte.
    db.code()
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED))
}

/// Applies pending migrations while holding the write lock, so concurrent
/// first opens of a new file serialise instead of racing.
async fn migrate(pool: &SqlitePool) -> Result<(), MigrateError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    // `Migrator::run(&mut *tx)` would do the same, but its `Acquire`-generic
    // future trips rustc's "implementation of `Acquire` is not general
    // enough", making `SqliteStorage::open` non-`Send` (not spawnable).
    // `run_direct` is the entry point sqlx keeps for exactly that case; it is
    // `#[doc(hidden)]`, hence the exact `0.9` pin on sqlx's internals.
    MIGRATOR.run_direct(None, &mut *tx, false).await?;
    tx.commit().await?;
    Ok(())
}
