//! [`ArchiveStore`] on SQLite (tables `archive_messages`, `archive_fts`,
//! `archive_fts_state`, `archive_prefs`, `archive_prefs_jids`; migrations `0006_archive.sql`
//! and `0009_archive_fts_deferred.sql`, which indexes bodies in batches).
//!
//! The queries, pages, bounds, retention and cap are [`ArchiveTables`]'s, shared with the room
//! archives; a conversation's page scans the index `(account_id, with_bare, ts)`.

use std::sync::OnceLock;

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use starling_storage::{
    ArchiveBound, ArchiveDefault, ArchivePage, ArchivePrefs, ArchiveQuery, ArchiveStore,
    NewArchived, StorageError, WithFilter,
};

use crate::accounts::{backend, begin_write, find_account, is_unique_violation};
use crate::archive_tables::ArchiveTables;
use crate::bulk::ChunkSql;
use crate::offline::to_u64;

/// The user archives' tables (migrations 0006 and 0009).
const TABLES: ArchiveTables = ArchiveTables {
    messages: "archive_messages",
    fts: "archive_fts",
    fts_state: "archive_fts_state",
    owner: "account_id",
    with_column: "with_bare",
    push_with,
};

/// The 'with' filter of a user archive: the peer's bare JID, and its resource if given
/// (XEP-0313 §4.1.1).
fn push_with(qb: &mut QueryBuilder<Sqlite>, with: &WithFilter) {
    qb.push(" AND with_bare = ").push_bind(with.bare.clone());
    if let Some(resource) = &with.resource {
        qb.push(" AND with_resource = ").push_bind(resource.clone());
    }
}

pub(crate) struct SqliteArchiveStore {
    pool: SqlitePool,
    /// One connection for [`ArchiveStore::append`], whose page cache then survives from one
    /// batch to the next.
    writer: SqlitePool,
}

impl SqliteArchiveStore {
    pub(crate) fn new(pool: SqlitePool, writer: SqlitePool) -> Self {
        Self { pool, writer }
    }
}

/// The chunked insert of [`ArchiveStore::append`]: the rows as a `VALUES` list, joined to their
/// accounts, inserted in the order given.
fn append_sql() -> &'static ChunkSql {
    static SQL: OnceLock<ChunkSql> = OnceLock::new();
    SQL.get_or_init(|| {
        ChunkSql::with_tail(
            "WITH v (pos, domain, localpart, id, ts, with_bare, with_resource, stanza, body) AS (",
            ") INSERT INTO archive_messages \
             (account_id, id, ts, with_bare, with_resource, stanza, body) \
             SELECT a.id, v.id, v.ts, v.with_bare, v.with_resource, v.stanza, v.body \
             FROM v JOIN accounts a ON a.domain = v.domain AND a.localpart = v.localpart \
             ORDER BY v.pos",
            9,
        )
    })
}

fn default_rule(d: ArchiveDefault) -> &'static str {
    match d {
        ArchiveDefault::Always => "always",
        ArchiveDefault::Never => "never",
        ArchiveDefault::Roster => "roster",
    }
}

#[async_trait]
impl ArchiveStore for SqliteArchiveStore {
    async fn append(&self, batch: &[NewArchived]) -> Result<u64, StorageError> {
        if batch.is_empty() {
            return Ok(0);
        }
        let mut tx = begin_write(&self.writer).await?;
        let mut stored = 0;
        // Multi-row statements (one hand-off to the connection's worker per chunk, not per
        // message); the rows go in in the order given (`pos`), which is the archive's order for
        // equal timestamps. An unknown account joins no row: nothing is inserted for it.
        let sql = append_sql();
        for (chunk_no, chunk) in batch.chunks(sql.rows()).enumerate() {
            let mut query = sqlx::query(sql.for_rows(chunk.len()));
            for (i, m) in chunk.iter().enumerate() {
                let pos = i64::try_from(chunk_no * sql.rows() + i).unwrap_or(i64::MAX);
                query = query
                    .bind(pos)
                    .bind(&m.domain)
                    .bind(&m.localpart)
                    .bind(&m.id)
                    .bind(m.timestamp_us)
                    .bind(&m.with)
                    .bind(&m.with_resource)
                    .bind(&m.stanza)
                    .bind(m.body.as_deref());
            }
            let done = query.execute(&mut *tx).await.map_err(|e| {
                if is_unique_violation(&e) {
                    StorageError::AlreadyExists
                } else {
                    backend(e)
                }
            })?;
            stored += done.rows_affected();
        }
        // The full-text index follows in batches (migration 0009).
        TABLES.index_if_many_waiting(&mut tx).await?;
        tx.commit().await.map_err(backend)?;
        Ok(stored)
    }

    async fn query(
        &self,
        localpart: &str,
        domain: &str,
        query: &ArchiveQuery,
    ) -> Result<ArchivePage, StorageError> {
        TABLES.prepare_query(&self.pool, query).await?;
        // One connection, one read transaction: the count and the page see the same archive.
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let account = find_account(&mut tx, localpart, domain).await?;
        let page = TABLES.page(&mut tx, account, query).await?;
        tx.commit().await.map_err(backend)?;
        Ok(page)
    }

    async fn bounds(
        &self,
        localpart: &str,
        domain: &str,
    ) -> Result<Option<(ArchiveBound, ArchiveBound)>, StorageError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let Some(account) = find_account(&mut tx, localpart, domain).await? else {
            return Ok(None);
        };
        let bounds = TABLES.bounds(&mut tx, account).await?;
        tx.commit().await.map_err(backend)?;
        Ok(bounds)
    }

    async fn prefs(&self, localpart: &str, domain: &str) -> Result<ArchivePrefs, StorageError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let Some(account) = find_account(&mut tx, localpart, domain).await? else {
            return Ok(ArchivePrefs::default());
        };
        let rule: Option<String> =
            sqlx::query_scalar("SELECT default_rule FROM archive_prefs WHERE account_id = ?1")
                .bind(account)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        let default = match rule.as_deref() {
            None | Some("always") => ArchiveDefault::Always,
            Some("never") => ArchiveDefault::Never,
            Some("roster") => ArchiveDefault::Roster,
            Some(other) => {
                return Err(StorageError::backend(format!(
                    "corrupt archive default rule: {other}"
                )));
            }
        };
        let jids: Vec<(String, i64)> = sqlx::query_as(
            "SELECT jid, always FROM archive_prefs_jids WHERE account_id = ?1 ORDER BY jid",
        )
        .bind(account)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        let mut prefs = ArchivePrefs {
            default,
            ..ArchivePrefs::default()
        };
        for (jid, always) in jids {
            if always != 0 {
                prefs.always.push(jid);
            } else {
                prefs.never.push(jid);
            }
        }
        Ok(prefs)
    }

    async fn set_prefs(
        &self,
        localpart: &str,
        domain: &str,
        prefs: &ArchivePrefs,
    ) -> Result<(), StorageError> {
        let mut tx = begin_write(&self.pool).await?;
        let account = find_account(&mut tx, localpart, domain)
            .await?
            .ok_or(StorageError::NotFound)?;
        sqlx::query(
            "INSERT INTO archive_prefs (account_id, default_rule) VALUES (?1, ?2) \
             ON CONFLICT (account_id) DO UPDATE SET default_rule = excluded.default_rule",
        )
        .bind(account)
        .bind(default_rule(prefs.default))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query("DELETE FROM archive_prefs_jids WHERE account_id = ?1")
            .bind(account)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        // A JID in both lists ends up in 'never' (written last): the safer reading.
        let lists = [(&prefs.always, 1_i64), (&prefs.never, 0_i64)];
        for (list, always) in lists {
            for jid in list {
                sqlx::query(
                    "INSERT INTO archive_prefs_jids (account_id, jid, always) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (account_id, jid) DO UPDATE SET always = excluded.always",
                )
                .bind(account)
                .bind(jid)
                .bind(always)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(())
    }

    async fn expire(&self, before_us: i64) -> Result<u64, StorageError> {
        TABLES.expire(&self.pool, before_us).await
    }

    async fn trim(&self, max: u64) -> Result<u64, StorageError> {
        TABLES.trim(&self.pool, max).await
    }

    async fn count(&self, localpart: &str, domain: &str) -> Result<u64, StorageError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM archive_messages m JOIN accounts a ON a.id = m.account_id \
             WHERE a.domain = ?1 AND a.localpart = ?2",
        )
        .bind(domain)
        .bind(localpart)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        to_u64(count, "archive count")
    }
}
