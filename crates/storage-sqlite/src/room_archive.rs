//! [`RoomArchiveStore`] on SQLite (tables `room_archive_rooms`, `room_archive_messages`,
//! `room_archive_fts`, `room_archive_fts_state`; migration `0016_room_archive.sql`).
//!
//! A room gets its row in `room_archive_rooms` with its first message and loses it with its
//! archive; messages name it by that row's id, so the queries, pages, bounds, retention and cap
//! are [`ArchiveTables`]'s, the same as the user archives', with `room_id` as the owner. Bodies
//! are indexed for full-text search in batches, as the user archives' are (migration 0009).

use std::collections::BTreeSet;
use std::sync::OnceLock;

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use starling_storage::{
    ArchiveBound, ArchivePage, ArchiveQuery, NewRoomArchived, RoomArchiveStore,
    RoomArchivedMessage, RoomKey, StorageError, WithFilter,
};

use crate::accounts::{backend, begin_write, is_unique_violation};
use crate::archive_tables::{ArchiveTables, DELETE_CHUNK};
use crate::bulk::ChunkSql;
use crate::offline::to_u64;

/// The room archives' tables (migration 0016).
const TABLES: ArchiveTables = ArchiveTables {
    messages: "room_archive_messages",
    fts: "room_archive_fts",
    fts_state: "room_archive_fts_state",
    owner: "room_id",
    with_column: "nick",
    push_with,
};

/// The 'with' filter of a room archive (see [`RoomArchiveStore`]): an occupant JID matches the
/// nick, a bare JID the sender's real JID.
fn push_with(qb: &mut QueryBuilder<Sqlite>, with: &WithFilter) {
    match &with.resource {
        Some(nick) => qb.push(" AND nick = ").push_bind(nick.clone()),
        None => qb.push(" AND sender = ").push_bind(with.bare.clone()),
    };
}

pub(crate) struct SqliteRoomArchiveStore {
    pool: SqlitePool,
    /// The connection the user archives append on (see [`crate::SqliteStorage::open`]): room
    /// messages are as frequent, and appending on a connection of the pool would throw away
    /// that connection's page cache at each commit.
    writer: SqlitePool,
}

impl SqliteRoomArchiveStore {
    pub(crate) fn new(pool: SqlitePool, writer: SqlitePool) -> Self {
        Self { pool, writer }
    }
}

/// The chunked insert of the rooms a batch names, those not there yet.
fn rooms_sql() -> &'static ChunkSql {
    static SQL: OnceLock<ChunkSql> = OnceLock::new();
    SQL.get_or_init(|| {
        ChunkSql::with_tail(
            "INSERT INTO room_archive_rooms (service, room)",
            " ON CONFLICT (service, room) DO NOTHING",
            2,
        )
    })
}

/// The chunked insert of the messages: the rows as a `VALUES` list, joined to their rooms,
/// inserted in the order given.
fn append_sql() -> &'static ChunkSql {
    static SQL: OnceLock<ChunkSql> = OnceLock::new();
    SQL.get_or_init(|| {
        ChunkSql::with_tail(
            "WITH v (pos, service, room, id, ts, nick, sender, stanza, body) AS (",
            ") INSERT INTO room_archive_messages \
             (room_id, id, ts, nick, sender, stanza, body) \
             SELECT r.id, v.id, v.ts, v.nick, v.sender, v.stanza, v.body \
             FROM v JOIN room_archive_rooms r ON r.service = v.service AND r.room = v.room \
             ORDER BY v.pos",
            9,
        )
    })
}

/// The id of the room's row, `None` if it has no archive.
async fn find_room(
    conn: &mut SqliteConnection,
    key: &RoomKey,
) -> Result<Option<i64>, StorageError> {
    sqlx::query_scalar("SELECT id FROM room_archive_rooms WHERE service = ?1 AND room = ?2")
        .bind(&key.service)
        .bind(&key.room)
        .fetch_optional(conn)
        .await
        .map_err(backend)
}

impl SqliteRoomArchiveStore {
    /// Removes the rows of rooms whose archives retention emptied.
    async fn forget_empty_rooms(&self) -> Result<(), StorageError> {
        sqlx::query(
            "DELETE FROM room_archive_rooms WHERE NOT EXISTS \
             (SELECT 1 FROM room_archive_messages m WHERE m.room_id = room_archive_rooms.id)",
        )
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl RoomArchiveStore for SqliteRoomArchiveStore {
    async fn append(&self, batch: &[NewRoomArchived]) -> Result<u64, StorageError> {
        if batch.is_empty() {
            return Ok(0);
        }
        let mut tx = begin_write(&self.writer).await?;
        // The rooms first, each once, so that every message below joins its room.
        let rooms: Vec<&RoomKey> = batch
            .iter()
            .map(|m| &m.key)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let sql = rooms_sql();
        for chunk in rooms.chunks(sql.rows()) {
            let mut query = sqlx::query(sql.for_rows(chunk.len()));
            for key in chunk {
                query = query.bind(&key.service).bind(&key.room);
            }
            query.execute(&mut *tx).await.map_err(backend)?;
        }
        // Multi-row statements, the rows in the order given (`pos`), which is the archive's
        // order for equal timestamps.
        let mut stored = 0;
        let sql = append_sql();
        for (chunk_no, chunk) in batch.chunks(sql.rows()).enumerate() {
            let mut query = sqlx::query(sql.for_rows(chunk.len()));
            for (i, m) in chunk.iter().enumerate() {
                let pos = i64::try_from(chunk_no * sql.rows() + i).unwrap_or(i64::MAX);
                query = query
                    .bind(pos)
                    .bind(&m.key.service)
                    .bind(&m.key.room)
                    .bind(&m.id)
                    .bind(m.timestamp_us)
                    .bind(&m.nick)
                    .bind(m.sender.as_deref())
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
        TABLES.index_if_many_waiting(&mut tx).await?;
        tx.commit().await.map_err(backend)?;
        Ok(stored)
    }

    async fn query(
        &self,
        key: &RoomKey,
        query: &ArchiveQuery,
    ) -> Result<ArchivePage, StorageError> {
        TABLES.prepare_query(&self.pool, query).await?;
        // One connection, one read transaction: the count and the page see the same archive.
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let room = find_room(&mut tx, key).await?;
        let page = TABLES.page(&mut tx, room, query).await?;
        tx.commit().await.map_err(backend)?;
        Ok(page)
    }

    async fn message(
        &self,
        key: &RoomKey,
        id: &str,
    ) -> Result<Option<RoomArchivedMessage>, StorageError> {
        let row: Option<(String, i64, String, Option<String>, String)> = sqlx::query_as(
            "SELECT m.id, m.ts, m.nick, m.sender, m.stanza FROM room_archive_messages m \
             JOIN room_archive_rooms r ON r.id = m.room_id \
             WHERE r.service = ?1 AND r.room = ?2 AND m.id = ?3",
        )
        .bind(&key.service)
        .bind(&key.room)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(row.map(
            |(id, timestamp_us, nick, sender, stanza)| RoomArchivedMessage {
                id,
                timestamp_us,
                nick,
                sender,
                stanza,
            },
        ))
    }

    async fn retract(
        &self,
        key: &RoomKey,
        id: &str,
        tombstone: &str,
    ) -> Result<bool, StorageError> {
        // One statement; the update trigger takes the body out of the full-text index.
        let done = sqlx::query(
            "UPDATE room_archive_messages SET stanza = ?3, body = NULL \
             WHERE room_id = (SELECT id FROM room_archive_rooms WHERE service = ?1 AND room = ?2) \
             AND id = ?4",
        )
        .bind(&key.service)
        .bind(&key.room)
        .bind(tombstone)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn bounds(
        &self,
        key: &RoomKey,
    ) -> Result<Option<(ArchiveBound, ArchiveBound)>, StorageError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let Some(room) = find_room(&mut tx, key).await? else {
            return Ok(None);
        };
        let bounds = TABLES.bounds(&mut tx, room).await?;
        tx.commit().await.map_err(backend)?;
        Ok(bounds)
    }

    async fn count(&self, key: &RoomKey) -> Result<u64, StorageError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM room_archive_messages m \
             JOIN room_archive_rooms r ON r.id = m.room_id \
             WHERE r.service = ?1 AND r.room = ?2",
        )
        .bind(&key.service)
        .bind(&key.room)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        to_u64(count, "room archive count")
    }

    async fn delete_room(&self, key: &RoomKey) -> Result<u64, StorageError> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        let Some(room) = find_room(&mut conn, key).await? else {
            return Ok(0);
        };
        // A large archive goes in chunks, releasing the write lock in between (as retention
        // does); the rest, and the room's row, in one transaction, so that nothing appended
        // meanwhile is left behind.
        let mut deleted = 0;
        loop {
            let done = sqlx::query(
                "DELETE FROM room_archive_messages WHERE seq IN \
                 (SELECT seq FROM room_archive_messages WHERE room_id = ?1 LIMIT ?2)",
            )
            .bind(room)
            .bind(DELETE_CHUNK)
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
            deleted += done.rows_affected();
            if done.rows_affected() < DELETE_CHUNK as u64 {
                break;
            }
        }
        drop(conn);
        let mut tx = begin_write(&self.pool).await?;
        let done = sqlx::query("DELETE FROM room_archive_messages WHERE room_id = ?1")
            .bind(room)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        deleted += done.rows_affected();
        sqlx::query("DELETE FROM room_archive_rooms WHERE id = ?1")
            .bind(room)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(deleted)
    }

    async fn expire(&self, before_us: i64) -> Result<u64, StorageError> {
        let deleted = TABLES.expire(&self.pool, before_us).await?;
        if deleted > 0 {
            self.forget_empty_rooms().await?;
        }
        Ok(deleted)
    }

    async fn trim(&self, max: u64) -> Result<u64, StorageError> {
        let deleted = TABLES.trim(&self.pool, max).await?;
        if deleted > 0 {
            self.forget_empty_rooms().await?;
        }
        Ok(deleted)
    }
}
