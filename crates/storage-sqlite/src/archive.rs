//! [`ArchiveStore`] on SQLite (tables `archive_messages`, `archive_fts`,
//! `archive_fts_state`, `archive_prefs`, `archive_prefs_jids`; migrations `0006_archive.sql`
//! and `0009_archive_fts_deferred.sql`, which indexes bodies in batches).
//!
//! The archive's order is `(ts, seq)`: a page is a range scan of the index
//! `(account_id, ts)` (whose entries end with the rowid, `seq`), or of
//! `(account_id, with_bare, ts)` for one conversation, compared as row values.

use std::sync::OnceLock;

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use starling_storage::{
    ArchiveBound, ArchiveDefault, ArchivePage, ArchivePrefs, ArchiveQuery, ArchiveStore,
    ArchivedMessage, NewArchived, PagePosition, StorageError,
};

use crate::accounts::{backend, begin_write, find_account, is_unique_violation};
use crate::bulk::ChunkSql;
use crate::offline::to_u64;

/// Rows deleted per statement by [`ArchiveStore::expire`] and
/// [`ArchiveStore::trim`]: the write lock is released between chunks, so
/// that logins and messages are not held up behind one long delete.
const DELETE_CHUNK: i64 = 5000;

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

/// Rows waiting for the full-text index before an append indexes them: large enough that FTS5
/// writes few segments, small enough that the append that does it stays short.
const FTS_BATCH: i64 = 4096;

/// Adds every row not yet in the full-text index to it (inside the caller's write transaction).
async fn index_waiting(conn: &mut SqliteConnection) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO archive_fts (rowid, body) SELECT seq, body FROM archive_messages \
         WHERE seq > (SELECT indexed_seq FROM archive_fts_state WHERE id = 1) \
         AND body IS NOT NULL ORDER BY seq",
    )
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    // Never backwards: the newest rows may have been deleted, and AUTOINCREMENT does not reuse
    // their numbers.
    sqlx::query(
        "UPDATE archive_fts_state SET indexed_seq = \
         MAX(indexed_seq, COALESCE((SELECT MAX(seq) FROM archive_messages), 0)) WHERE id = 1",
    )
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}

/// A message's place in the archive order.
#[derive(Debug, Clone, Copy)]
struct Key {
    ts: i64,
    seq: i64,
}

/// Where the message `id` is in the account's archive; [`StorageError::NotFound`]
/// if it is not there.
async fn key_of(conn: &mut SqliteConnection, account: i64, id: &str) -> Result<Key, StorageError> {
    let row: Option<(i64, i64)> =
        sqlx::query_as("SELECT ts, seq FROM archive_messages WHERE account_id = ?1 AND id = ?2")
            .bind(account)
            .bind(id)
            .fetch_optional(conn)
            .await
            .map_err(backend)?;
    row.map(|(ts, seq)| Key { ts, seq })
        .ok_or(StorageError::NotFound)
}

/// The words of a full-text search as an FTS5 query: each a quoted string
/// (so that no word is read as FTS5 syntax), all required. `None` when the
/// text has no words.
fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// The filters of a query, with the id-based ones resolved to keys.
struct Filters<'q> {
    account: i64,
    query: &'q ArchiveQuery,
    after: Option<Key>,
    before: Option<Key>,
    fts: Option<String>,
}

impl Filters<'_> {
    /// Appends ` WHERE …` for these filters.
    fn push(&self, qb: &mut QueryBuilder<Sqlite>) {
        qb.push(" WHERE account_id = ").push_bind(self.account);
        let q = self.query;
        if let Some(with) = &q.with {
            qb.push(" AND with_bare = ").push_bind(with.bare.clone());
            if let Some(resource) = &with.resource {
                qb.push(" AND with_resource = ").push_bind(resource.clone());
            }
        }
        if let Some(start) = q.start_us {
            qb.push(" AND ts >= ").push_bind(start);
        }
        if let Some(end) = q.end_us {
            qb.push(" AND ts <= ").push_bind(end);
        }
        if let Some(k) = self.after {
            push_after(qb, k);
        }
        if let Some(k) = self.before {
            push_before(qb, k);
        }
        if !q.ids.is_empty() {
            qb.push(" AND id IN (");
            let mut sep = qb.separated(", ");
            for id in &q.ids {
                sep.push_bind(id.clone());
            }
            qb.push(")");
        }
        if let Some(fts) = &self.fts {
            qb.push(" AND seq IN (SELECT rowid FROM archive_fts WHERE archive_fts MATCH ")
                .push_bind(fts.clone())
                .push(")");
        }
    }
}

fn push_after(qb: &mut QueryBuilder<Sqlite>, k: Key) {
    qb.push(" AND (ts, seq) > (")
        .push_bind(k.ts)
        .push(", ")
        .push_bind(k.seq)
        .push(")");
}

fn push_before(qb: &mut QueryBuilder<Sqlite>, k: Key) {
    qb.push(" AND (ts, seq) < (")
        .push_bind(k.ts)
        .push(", ")
        .push_bind(k.seq)
        .push(")");
}

/// `LIMIT` operand for `max` rows plus one (to learn whether more follow).
fn limit(max: usize) -> i64 {
    i64::try_from(max).unwrap_or(i64::MAX - 1).saturating_add(1)
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
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COALESCE((SELECT MAX(seq) FROM archive_messages), 0) - indexed_seq \
             FROM archive_fts_state WHERE id = 1",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        if waiting >= FTS_BATCH {
            index_waiting(&mut tx).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(stored)
    }

    async fn query(
        &self,
        localpart: &str,
        domain: &str,
        query: &ArchiveQuery,
    ) -> Result<ArchivePage, StorageError> {
        // A search sees every message: what is not indexed yet is indexed first.
        if query.fulltext.is_some() {
            let mut tx = begin_write(&self.pool).await?;
            index_waiting(&mut tx).await?;
            tx.commit().await.map_err(backend)?;
        }
        // One connection, one read transaction: the count and the page see
        // the same archive.
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let names_ids = query.after_id.is_some()
            || query.before_id.is_some()
            || !query.ids.is_empty()
            || matches!(
                query.position,
                PagePosition::After(_) | PagePosition::Before(_)
            );
        let Some(account) = find_account(&mut tx, localpart, domain).await? else {
            if names_ids {
                return Err(StorageError::NotFound);
            }
            return Ok(ArchivePage {
                messages: Vec::new(),
                complete: true,
                count: 0,
                first_index: None,
            });
        };
        let after = match &query.after_id {
            Some(id) => Some(key_of(&mut tx, account, id).await?),
            None => None,
        };
        let before = match &query.before_id {
            Some(id) => Some(key_of(&mut tx, account, id).await?),
            None => None,
        };
        if !query.ids.is_empty() {
            // XEP-0313 §4.1.3: every id asked for must exist.
            let mut qb = QueryBuilder::<Sqlite>::new(
                "SELECT COUNT(DISTINCT id) FROM archive_messages WHERE account_id = ",
            );
            qb.push_bind(account).push(" AND id IN (");
            let mut sep = qb.separated(", ");
            for id in &query.ids {
                sep.push_bind(id.clone());
            }
            qb.push(")");
            let found: i64 = qb
                .build_query_scalar()
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
            let mut wanted: Vec<&String> = query.ids.iter().collect();
            wanted.sort();
            wanted.dedup();
            if to_u64(found, "archive id count")? != wanted.len() as u64 {
                return Err(StorageError::NotFound);
            }
        }
        let anchor = match &query.position {
            PagePosition::After(id) | PagePosition::Before(id) => {
                Some(key_of(&mut tx, account, id).await?)
            }
            _ => None,
        };
        let filters = Filters {
            account,
            query,
            after,
            before,
            fts: query.fulltext.as_deref().and_then(fts_query),
        };

        let mut qb = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM archive_messages");
        filters.push(&mut qb);
        let count: i64 = qb
            .build_query_scalar()
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        let count = to_u64(count, "archive count")?;

        let mut qb =
            QueryBuilder::<Sqlite>::new("SELECT id, ts, with_bare, stanza FROM archive_messages");
        filters.push(&mut qb);
        // Backwards pages are read newest first and turned around below.
        let backwards = matches!(query.position, PagePosition::Before(_) | PagePosition::Last);
        match (&query.position, anchor) {
            (PagePosition::After(_), Some(k)) => push_after(&mut qb, k),
            (PagePosition::Before(_), Some(k)) => push_before(&mut qb, k),
            _ => {}
        }
        qb.push(if backwards {
            " ORDER BY ts DESC, seq DESC"
        } else {
            " ORDER BY ts, seq"
        });
        qb.push(" LIMIT ").push_bind(limit(query.max));
        if let PagePosition::Index(n) = query.position {
            qb.push(" OFFSET ")
                .push_bind(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let mut rows: Vec<(String, i64, String, String)> = qb
            .build_query_as()
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
        let complete = rows.len() <= query.max;
        rows.truncate(query.max);
        if backwards {
            rows.reverse();
        }
        let n = rows.len() as u64;
        let first_index = match query.position {
            _ if n == 0 => None,
            PagePosition::First => Some(0),
            PagePosition::Index(i) => Some(i),
            PagePosition::Last => Some(count.saturating_sub(n)),
            // Would cost another count; XEP-0059 makes it optional.
            PagePosition::After(_) | PagePosition::Before(_) => None,
        };
        tx.commit().await.map_err(backend)?;
        Ok(ArchivePage {
            messages: rows
                .into_iter()
                .map(|(id, timestamp_us, with, stanza)| ArchivedMessage {
                    id,
                    timestamp_us,
                    with,
                    stanza,
                })
                .collect(),
            complete,
            count,
            first_index,
        })
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
        let mut ends = Vec::with_capacity(2);
        for sql in [
            "SELECT id, ts FROM archive_messages WHERE account_id = ?1 ORDER BY ts, seq LIMIT 1",
            "SELECT id, ts FROM archive_messages WHERE account_id = ?1 \
             ORDER BY ts DESC, seq DESC LIMIT 1",
        ] {
            let row: Option<(String, i64)> = sqlx::query_as(sql)
                .bind(account)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
            ends.push(row.map(|(id, timestamp_us)| ArchiveBound { id, timestamp_us }));
        }
        tx.commit().await.map_err(backend)?;
        let last = ends.pop().flatten();
        let first = ends.pop().flatten();
        Ok(first.zip(last))
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
        let accounts: Vec<i64> =
            sqlx::query_scalar("SELECT DISTINCT account_id FROM archive_messages")
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        let mut deleted = 0;
        for account in accounts {
            loop {
                let done = sqlx::query(
                    "DELETE FROM archive_messages WHERE seq IN (SELECT seq FROM archive_messages \
                     WHERE account_id = ?1 AND ts < ?2 LIMIT ?3)",
                )
                .bind(account)
                .bind(before_us)
                .bind(DELETE_CHUNK)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
                deleted += done.rows_affected();
                if done.rows_affected() < DELETE_CHUNK as u64 {
                    break;
                }
            }
        }
        Ok(deleted)
    }

    async fn trim(&self, max: u64) -> Result<u64, StorageError> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let over: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT account_id, COUNT(*) FROM archive_messages GROUP BY account_id \
             HAVING COUNT(*) > ?1",
        )
        .bind(max)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let mut deleted = 0;
        for (account, count) in over {
            let mut excess = count - max;
            while excess > 0 {
                let done = sqlx::query(
                    "DELETE FROM archive_messages WHERE seq IN (SELECT seq FROM archive_messages \
                     WHERE account_id = ?1 ORDER BY ts, seq LIMIT ?2)",
                )
                .bind(account)
                .bind(excess.min(DELETE_CHUNK))
                .execute(&self.pool)
                .await
                .map_err(backend)?;
                if done.rows_affected() == 0 {
                    break;
                }
                deleted += done.rows_affected();
                excess -= i64::try_from(done.rows_affected()).unwrap_or(excess);
            }
        }
        Ok(deleted)
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
