//! What the user archives ([`crate::archive`]) and the room archives ([`crate::room_archive`])
//! share: both are a table of messages in the order `(ts, seq)` with an owner column, a
//! deferred FTS5 index of their bodies (migration `0009_archive_fts_deferred.sql` explains why
//! deferred), and the same XEP-0313 queries, pages (XEP-0059), bounds, retention and cap.
//! [`ArchiveTables`] names one such family of tables; only the owner and the meaning of `with`
//! differ.
//!
//! A page is a range scan of the index `(owner, ts)` (whose entries end with the rowid, `seq`),
//! compared as row values.
//!
//! The table and column names are constants of this crate, never data, so the statements built
//! from them with `format!` and [`QueryBuilder`] hold values only as bound parameters.

use std::sync::Arc;

use sqlx::{AssertSqlSafe, QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use starling_storage::{
    ArchiveBound, ArchivePage, ArchiveQuery, ArchivedMessage, PagePosition, StorageError,
    WithFilter,
};

use crate::accounts::{backend, begin_write};
use crate::offline::to_u64;

/// Rows deleted per statement by `expire` and `trim`: the write lock is released between
/// chunks, so that logins and messages are not held up behind one long delete.
pub(crate) const DELETE_CHUNK: i64 = 5000;

/// Rows waiting for the full-text index before an append indexes them: large enough that FTS5
/// writes few segments, small enough that the append that does it stays short.
const FTS_BATCH: i64 = 4096;

/// One family of archive tables.
pub(crate) struct ArchiveTables {
    /// The messages: `seq` (AUTOINCREMENT rowid), the owner column, `id`, `ts`, `stanza`,
    /// `body` and the columns `push_with` and `with_column` name.
    pub(crate) messages: &'static str,
    /// The external-content FTS5 table indexing `messages.body` by `seq`.
    pub(crate) fts: &'static str,
    /// The one-row table holding `indexed_seq`, the last `seq` the index covers.
    pub(crate) fts_state: &'static str,
    /// The column naming the archive a message belongs to (an integer key).
    pub(crate) owner: &'static str,
    /// The column returned as [`ArchivedMessage::with`].
    pub(crate) with_column: &'static str,
    /// Appends ` AND …` for a query's [`WithFilter`].
    pub(crate) push_with: fn(&mut QueryBuilder<Sqlite>, &WithFilter),
}

/// A message's place in the archive order.
#[derive(Clone, Copy)]
struct Key {
    ts: i64,
    seq: i64,
}

/// The words of a full-text search as an FTS5 query: each a quoted string (so that no word is
/// read as FTS5 syntax), all required. `None` when the text has no words.
fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// The filters of a query, with the id-based ones resolved to keys.
struct Filters<'q> {
    tables: &'q ArchiveTables,
    owner: i64,
    query: &'q ArchiveQuery,
    after: Option<Key>,
    before: Option<Key>,
    fts: Option<String>,
}

impl Filters<'_> {
    /// Appends ` WHERE …` for these filters.
    fn push(&self, qb: &mut QueryBuilder<Sqlite>) {
        let t = self.tables;
        qb.push(format_args!(" WHERE {} = ", t.owner))
            .push_bind(self.owner);
        let q = self.query;
        if let Some(with) = &q.with {
            (t.push_with)(qb, with);
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
            qb.push(format_args!(
                " AND seq IN (SELECT rowid FROM {0} WHERE {0} MATCH ",
                t.fts
            ))
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

/// The page of an archive without messages (or of an owner the store does not know).
fn empty_page() -> ArchivePage {
    ArchivePage {
        messages: Vec::new(),
        complete: true,
        count: 0,
        first_index: None,
    }
}

impl ArchiveTables {
    /// Where the message `id` is in `owner`'s archive; [`StorageError::NotFound`] if it is not
    /// there.
    async fn key_of(
        &self,
        conn: &mut SqliteConnection,
        owner: i64,
        id: &str,
    ) -> Result<Key, StorageError> {
        let sql = format!(
            "SELECT ts, seq FROM {} WHERE {} = ?1 AND id = ?2",
            self.messages, self.owner
        );
        let row: Option<(i64, i64)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(owner)
            .bind(id)
            .fetch_optional(conn)
            .await
            .map_err(backend)?;
        row.map(|(ts, seq)| Key { ts, seq })
            .ok_or(StorageError::NotFound)
    }

    /// Adds every row not yet in the full-text index to it (inside the caller's write
    /// transaction).
    pub(crate) async fn index_waiting(
        &self,
        conn: &mut SqliteConnection,
    ) -> Result<(), StorageError> {
        let sql = format!(
            "INSERT INTO {fts} (rowid, body) SELECT seq, body FROM {m} \
             WHERE seq > (SELECT indexed_seq FROM {state} WHERE id = 1) \
             AND body IS NOT NULL ORDER BY seq",
            fts = self.fts,
            m = self.messages,
            state = self.fts_state,
        );
        sqlx::query(AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
        // Never backwards: the newest rows may have been deleted, and AUTOINCREMENT does not
        // reuse their numbers.
        let sql = format!(
            "UPDATE {state} SET indexed_seq = \
             MAX(indexed_seq, COALESCE((SELECT MAX(seq) FROM {m}), 0)) WHERE id = 1",
            m = self.messages,
            state = self.fts_state,
        );
        sqlx::query(AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// The end of an append (inside its write transaction): indexes the rows waiting for the
    /// full-text index once there are enough of them.
    pub(crate) async fn index_if_many_waiting(
        &self,
        conn: &mut SqliteConnection,
    ) -> Result<(), StorageError> {
        let sql = format!(
            "SELECT COALESCE((SELECT MAX(seq) FROM {m}), 0) - indexed_seq \
             FROM {state} WHERE id = 1",
            m = self.messages,
            state = self.fts_state,
        );
        let waiting: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_one(&mut *conn)
            .await
            .map_err(backend)?;
        if waiting >= FTS_BATCH {
            self.index_waiting(conn).await?;
        }
        Ok(())
    }

    /// Before a query: a search sees every message, so what is not indexed yet is indexed
    /// first.
    pub(crate) async fn prepare_query(
        &self,
        pool: &SqlitePool,
        query: &ArchiveQuery,
    ) -> Result<(), StorageError> {
        if query.fulltext.is_some() {
            let mut tx = begin_write(pool).await?;
            self.index_waiting(&mut tx).await?;
            tx.commit().await.map_err(backend)?;
        }
        Ok(())
    }

    /// One page of `owner`'s messages matching `query` (`None`: an owner the store does not
    /// know, whose archive is empty), inside the caller's read transaction so that the count
    /// and the page see the same archive. Call [`Self::prepare_query`] first.
    pub(crate) async fn page(
        &self,
        conn: &mut SqliteConnection,
        owner: Option<i64>,
        query: &ArchiveQuery,
    ) -> Result<ArchivePage, StorageError> {
        let names_ids = query.after_id.is_some()
            || query.before_id.is_some()
            || !query.ids.is_empty()
            || matches!(
                query.position,
                PagePosition::After(_) | PagePosition::Before(_)
            );
        let Some(owner) = owner else {
            if names_ids {
                return Err(StorageError::NotFound);
            }
            return Ok(empty_page());
        };
        let after = match &query.after_id {
            Some(id) => Some(self.key_of(conn, owner, id).await?),
            None => None,
        };
        let before = match &query.before_id {
            Some(id) => Some(self.key_of(conn, owner, id).await?),
            None => None,
        };
        if !query.ids.is_empty() {
            // XEP-0313 §4.1.3: every id asked for must exist.
            let mut qb = QueryBuilder::<Sqlite>::new(format!(
                "SELECT COUNT(DISTINCT id) FROM {} WHERE {} = ",
                self.messages, self.owner
            ));
            qb.push_bind(owner).push(" AND id IN (");
            let mut sep = qb.separated(", ");
            for id in &query.ids {
                sep.push_bind(id.clone());
            }
            qb.push(")");
            let found: i64 = qb
                .build_query_scalar()
                .fetch_one(&mut *conn)
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
                Some(self.key_of(conn, owner, id).await?)
            }
            _ => None,
        };
        let filters = Filters {
            tables: self,
            owner,
            query,
            after,
            before,
            fts: query.fulltext.as_deref().and_then(fts_query),
        };

        let mut qb = QueryBuilder::<Sqlite>::new(format!("SELECT COUNT(*) FROM {}", self.messages));
        filters.push(&mut qb);
        let count: i64 = qb
            .build_query_scalar()
            .fetch_one(&mut *conn)
            .await
            .map_err(backend)?;
        let count = to_u64(count, "archive count")?;

        let mut qb = QueryBuilder::<Sqlite>::new(format!(
            "SELECT id, ts, {}, stanza FROM {}",
            self.with_column, self.messages
        ));
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
            .fetch_all(&mut *conn)
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

    /// The first and the last message of `owner`'s archive; `None` when it is empty.
    pub(crate) async fn bounds(
        &self,
        conn: &mut SqliteConnection,
        owner: i64,
    ) -> Result<Option<(ArchiveBound, ArchiveBound)>, StorageError> {
        let mut ends = Vec::with_capacity(2);
        for order in ["ts, seq", "ts DESC, seq DESC"] {
            let sql = format!(
                "SELECT id, ts FROM {} WHERE {} = ?1 ORDER BY {order} LIMIT 1",
                self.messages, self.owner
            );
            let row: Option<(String, i64)> = sqlx::query_as(AssertSqlSafe(sql))
                .bind(owner)
                .fetch_optional(&mut *conn)
                .await
                .map_err(backend)?;
            ends.push(row.map(|(id, timestamp_us)| ArchiveBound { id, timestamp_us }));
        }
        let last = ends.pop().flatten();
        let first = ends.pop().flatten();
        Ok(first.zip(last))
    }

    /// Retention: deletes every message of every archive older than `before_us`, in chunks of
    /// [`DELETE_CHUNK`]; how many.
    pub(crate) async fn expire(
        &self,
        pool: &SqlitePool,
        before_us: i64,
    ) -> Result<u64, StorageError> {
        let sql = format!("SELECT DISTINCT {} FROM {}", self.owner, self.messages);
        let owners: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_all(pool)
            .await
            .map_err(backend)?;
        let delete: Arc<str> = format!(
            "DELETE FROM {m} WHERE seq IN (SELECT seq FROM {m} \
             WHERE {owner} = ?1 AND ts < ?2 LIMIT ?3)",
            m = self.messages,
            owner = self.owner,
        )
        .into();
        let mut deleted = 0;
        for owner in owners {
            loop {
                let done = sqlx::query(AssertSqlSafe(Arc::clone(&delete)))
                    .bind(owner)
                    .bind(before_us)
                    .bind(DELETE_CHUNK)
                    .execute(pool)
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

    /// The per-archive cap: deletes the oldest messages of every archive holding more than
    /// `max`, in chunks of [`DELETE_CHUNK`]; how many.
    pub(crate) async fn trim(&self, pool: &SqlitePool, max: u64) -> Result<u64, StorageError> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT {owner}, COUNT(*) FROM {m} GROUP BY {owner} HAVING COUNT(*) > ?1",
            m = self.messages,
            owner = self.owner,
        );
        let over: Vec<(i64, i64)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(max)
            .fetch_all(pool)
            .await
            .map_err(backend)?;
        let delete: Arc<str> = format!(
            "DELETE FROM {m} WHERE seq IN (SELECT seq FROM {m} \
             WHERE {owner} = ?1 ORDER BY ts, seq LIMIT ?2)",
            m = self.messages,
            owner = self.owner,
        )
        .into();
        let mut deleted = 0;
        for (owner, count) in over {
            let mut excess = count - max;
            while excess > 0 {
                let done = sqlx::query(AssertSqlSafe(Arc::clone(&delete)))
                    .bind(owner)
                    .bind(excess.min(DELETE_CHUNK))
                    .execute(pool)
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
}
