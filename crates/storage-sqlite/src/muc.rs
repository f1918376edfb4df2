//! [`MucStore`] on SQLite (tables `muc_rooms` and `muc_affiliations`, migration `0015_muc.sql`).
//!
//! A room's configuration is one JSON column (`[["var", ["value", …]], …]`): the store never
//! looks inside it, and it is always read and written whole. A reserved nick is unique per room
//! by a partial unique index, so that a clash fails the write instead of being checked first.

use async_trait::async_trait;
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteQueryResult, SqliteRow};
use sqlx::{Row as _, Sqlite, SqlitePool};
use starling_storage::{
    ForgottenJid, MucStore, RoomAffiliation, RoomConfig, RoomKey, RoomSubject, StorageError,
    StoredRoom,
};

use crate::accounts::{backend, begin_write};
use crate::offline::to_u64;
use crate::shared::{
    decode_config, encode_config, execute_found, execute_on, exists_or_backend, fetch_all_with,
    fetch_optional_with,
};

pub(crate) struct SqliteMucStore {
    pool: SqlitePool,
}

impl SqliteMucStore {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

/// A query reading the columns [`room_from_row`] reads, followed by `$tail`. A macro: sqlx
/// takes only `&'static str` as SQL.
macro_rules! select_room {
    ($tail:literal) => {
        concat!(
            "SELECT service, room, config, subject, subject_by, subject_at, created_at ",
            "FROM muc_rooms ",
            $tail
        )
    };
}

/// A query reading the columns [`affiliation_from_row`] reads, of the room `?1`/`?2` (service,
/// localpart), followed by `$tail`.
macro_rules! select_affiliations {
    ($tail:literal) => {
        concat!(
            "SELECT f.jid, f.affiliation, f.nick, f.reason FROM muc_affiliations f ",
            "JOIN muc_rooms r ON r.id = f.room_id WHERE r.service = ?1 AND r.room = ?2 ",
            $tail
        )
    };
}

fn room_from_row(row: &SqliteRow) -> Result<StoredRoom, StorageError> {
    let config: String = row.try_get(2).map_err(backend)?;
    let text: Option<String> = row.try_get(3).map_err(backend)?;
    let by: Option<String> = row.try_get(4).map_err(backend)?;
    let at: Option<i64> = row.try_get(5).map_err(backend)?;
    // The table's CHECK keeps the three NULL together.
    let subject = match (text, by, at) {
        (Some(text), Some(by), Some(at)) => Some(RoomSubject { text, by, at }),
        _ => None,
    };
    Ok(StoredRoom {
        key: RoomKey {
            service: row.try_get(0).map_err(backend)?,
            room: row.try_get(1).map_err(backend)?,
        },
        config: decode_config(&config, "room")?,
        subject,
        created_at: row.try_get(6).map_err(backend)?,
    })
}

/// Reads `jid, affiliation, nick, reason` from `offset` on.
fn affiliation_at(row: &SqliteRow, offset: usize) -> Result<RoomAffiliation, StorageError> {
    Ok(RoomAffiliation {
        jid: row.try_get(offset).map_err(backend)?,
        affiliation: row.try_get(offset + 1).map_err(backend)?,
        nick: row.try_get(offset + 2).map_err(backend)?,
        reason: row.try_get(offset + 3).map_err(backend)?,
    })
}

fn affiliation_from_row(row: &SqliteRow) -> Result<RoomAffiliation, StorageError> {
    affiliation_at(row, 0)
}

/// The statement `on(id)` on the room with that id, in one write transaction
/// ([`StorageError::NotFound`] if there is none), its error mapped by `error`; what it did.
async fn on_room<'q>(
    pool: &SqlitePool,
    key: &RoomKey,
    on: impl FnOnce(i64) -> Query<'q, Sqlite, SqliteArguments>,
    error: fn(sqlx::Error) -> StorageError,
) -> Result<SqliteQueryResult, StorageError> {
    let id = "SELECT id FROM muc_rooms WHERE service = ?1 AND room = ?2";
    execute_on(pool, id, &key.service, &key.room, on, error).await
}

#[async_trait]
impl MucStore for SqliteMucStore {
    async fn create_room(
        &self,
        key: &RoomKey,
        config: &RoomConfig,
        created_at: i64,
    ) -> Result<(), StorageError> {
        // One statement: atomic without a transaction.
        sqlx::query(
            "INSERT INTO muc_rooms (service, room, config, created_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(&key.service)
        .bind(&key.room)
        .bind(encode_config(config)?)
        .bind(created_at)
        .execute(&self.pool)
        .await
        .map_err(exists_or_backend)?;
        Ok(())
    }

    async fn room(&self, key: &RoomKey) -> Result<Option<StoredRoom>, StorageError> {
        let query = sqlx::query(select_room!("WHERE service = ?1 AND room = ?2"))
            .bind(&key.service)
            .bind(&key.room);
        fetch_optional_with(query, &self.pool, room_from_row).await
    }

    async fn rooms(&self, service: &str) -> Result<Vec<StoredRoom>, StorageError> {
        let query = sqlx::query(select_room!("WHERE service = ?1 ORDER BY room")).bind(service);
        fetch_all_with(query, &self.pool, room_from_row).await
    }

    async fn room_count(&self, service: &str) -> Result<u64, StorageError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM muc_rooms WHERE service = ?1")
            .bind(service)
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        to_u64(n, "room count")
    }

    async fn set_config(&self, key: &RoomKey, config: &RoomConfig) -> Result<(), StorageError> {
        let update =
            sqlx::query("UPDATE muc_rooms SET config = ?3 WHERE service = ?1 AND room = ?2")
                .bind(&key.service)
                .bind(&key.room)
                .bind(encode_config(config)?);
        execute_found(update, &self.pool).await
    }

    async fn set_subject(
        &self,
        key: &RoomKey,
        subject: Option<&RoomSubject>,
    ) -> Result<(), StorageError> {
        let update = sqlx::query(
            "UPDATE muc_rooms SET subject = ?3, subject_by = ?4, subject_at = ?5 \
             WHERE service = ?1 AND room = ?2",
        )
        .bind(&key.service)
        .bind(&key.room)
        .bind(subject.map(|s| s.text.as_str()))
        .bind(subject.map(|s| s.by.as_str()))
        .bind(subject.map(|s| s.at));
        execute_found(update, &self.pool).await
    }

    async fn delete_room(&self, key: &RoomKey) -> Result<(), StorageError> {
        // One statement; the cascade deletes the affiliations in the same statement.
        let delete = sqlx::query("DELETE FROM muc_rooms WHERE service = ?1 AND room = ?2")
            .bind(&key.service)
            .bind(&key.room);
        execute_found(delete, &self.pool).await
    }

    async fn set_affiliation(
        &self,
        key: &RoomKey,
        affiliation: &RoomAffiliation,
    ) -> Result<(), StorageError> {
        // A nick another JID holds violates `muc_affiliations_nick`, which is not the upsert's
        // conflict target: the statement fails and the transaction is dropped.
        let upsert = |room| {
            sqlx::query(
                "INSERT INTO muc_affiliations (room_id, jid, affiliation, nick, reason) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (room_id, jid) DO UPDATE SET affiliation = excluded.affiliation, \
                 nick = excluded.nick, reason = excluded.reason",
            )
            .bind(room)
            .bind(&affiliation.jid)
            .bind(&affiliation.affiliation)
            .bind(affiliation.nick.as_deref())
            .bind(affiliation.reason.as_deref())
        };
        on_room(&self.pool, key, upsert, exists_or_backend).await?;
        Ok(())
    }

    async fn remove_affiliation(&self, key: &RoomKey, jid: &str) -> Result<bool, StorageError> {
        let delete = |room| {
            sqlx::query("DELETE FROM muc_affiliations WHERE room_id = ?1 AND jid = ?2")
                .bind(room)
                .bind(jid)
        };
        let done = on_room(&self.pool, key, delete, backend).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn affiliation(
        &self,
        key: &RoomKey,
        jid: &str,
    ) -> Result<Option<RoomAffiliation>, StorageError> {
        let query = sqlx::query(select_affiliations!("AND f.jid = ?3"))
            .bind(&key.service)
            .bind(&key.room)
            .bind(jid);
        fetch_optional_with(query, &self.pool, affiliation_from_row).await
    }

    async fn affiliations(
        &self,
        key: &RoomKey,
        kind: Option<&str>,
    ) -> Result<Vec<RoomAffiliation>, StorageError> {
        // `?3 IS NULL`: every kind.
        let query = sqlx::query(select_affiliations!(
            "AND (?3 IS NULL OR f.affiliation = ?3) ORDER BY f.jid"
        ))
        .bind(&key.service)
        .bind(&key.room)
        .bind(kind);
        fetch_all_with(query, &self.pool, affiliation_from_row).await
    }

    async fn nick_holder(
        &self,
        key: &RoomKey,
        nick: &str,
    ) -> Result<Option<RoomAffiliation>, StorageError> {
        let query = sqlx::query(select_affiliations!("AND f.nick = ?3"))
            .bind(&key.service)
            .bind(&key.room)
            .bind(nick);
        fetch_optional_with(query, &self.pool, affiliation_from_row).await
    }

    async fn rooms_of(
        &self,
        service: Option<&str>,
        jid: &str,
    ) -> Result<Vec<(RoomKey, RoomAffiliation)>, StorageError> {
        let query = sqlx::query(
            "SELECT r.service, r.room, f.jid, f.affiliation, f.nick, f.reason \
             FROM muc_affiliations f JOIN muc_rooms r ON r.id = f.room_id \
             WHERE f.jid = ?1 AND (?2 IS NULL OR r.service = ?2) ORDER BY r.service, r.room",
        )
        .bind(jid)
        .bind(service);
        fetch_all_with(query, &self.pool, |row| {
            Ok((
                RoomKey {
                    service: row.try_get(0).map_err(backend)?,
                    room: row.try_get(1).map_err(backend)?,
                },
                affiliation_at(row, 2)?,
            ))
        })
        .await
    }

    async fn forget_jid(&self, jid: &str) -> Result<ForgottenJid, StorageError> {
        // BEGIN IMMEDIATE: no owner can be added or removed between the look-up and the delete.
        let mut tx = begin_write(&self.pool).await?;
        // Each room of the JID, and whether the JID is its only owner.
        let rows: Vec<(String, String, bool)> = sqlx::query_as(
            "SELECT r.service, r.room, f.affiliation = 'owner' AND NOT EXISTS \
             (SELECT 1 FROM muc_affiliations o WHERE o.room_id = f.room_id \
              AND o.affiliation = 'owner' AND o.jid <> ?1) \
             FROM muc_affiliations f JOIN muc_rooms r ON r.id = f.room_id \
             WHERE f.jid = ?1 ORDER BY r.service, r.room",
        )
        .bind(jid)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query("DELETE FROM muc_affiliations WHERE jid = ?1")
            .bind(jid)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        let mut forgotten = ForgottenJid::default();
        for (service, room, last_owner) in rows {
            let key = RoomKey { service, room };
            if last_owner {
                forgotten.ownerless.push(key.clone());
            }
            forgotten.rooms.push(key);
        }
        Ok(forgotten)
    }
}
