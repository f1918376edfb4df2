//! [`OfflineStore`] on SQLite (table `offline_messages`, migration
//! `0004_offline.sql`).

use async_trait::async_trait;
use sqlx::SqlitePool;
use starling_storage::{OfflineMessage, OfflineOutcome, OfflineStore, StorageError};

use crate::accounts::{account_id, backend, begin_write};

/// One row per message; `id` is an AUTOINCREMENT key, so ids are never
/// reused (see the migration).
pub(crate) struct SqliteOfflineStore {
    pool: SqlitePool,
}

impl SqliteOfflineStore {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

/// A count or id read back from SQLite; negative only in a corrupt file.
pub(crate) fn to_u64(value: i64, what: &str) -> Result<u64, StorageError> {
    u64::try_from(value).map_err(|_| StorageError::backend(format!("corrupt {what}: {value}")))
}

/// A bound given as `u64`, as SQLite's signed 64-bit integer. Values beyond
/// `i64::MAX` mean the same as `i64::MAX` here: no id or count gets there.
fn clamp_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[async_trait]
impl OfflineStore for SqliteOfflineStore {
    async fn store(
        &self,
        localpart: &str,
        domain: &str,
        stanza: &str,
        max: u64,
    ) -> Result<OfflineOutcome, StorageError> {
        // BEGIN IMMEDIATE: the count and the insert see no other writer in
        // between, so concurrent stores cannot both take the last place.
        let mut tx = begin_write(&self.pool).await?;
        // Dropping `tx` on any early return rolls it back.
        let account = account_id(&mut tx, localpart, domain).await?;
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM offline_messages WHERE account_id = ?1")
                .bind(account)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
        if to_u64(count, "offline message count")? >= max {
            return Ok(OfflineOutcome::Full);
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO offline_messages (account_id, stanza) VALUES (?1, ?2) RETURNING id",
        )
        .bind(account)
        .bind(stanza)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(OfflineOutcome::Stored {
            id: to_u64(id, "offline message id")?,
        })
    }

    async fn load(
        &self,
        localpart: &str,
        domain: &str,
    ) -> Result<Vec<OfflineMessage>, StorageError> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT o.id, o.stanza FROM offline_messages o JOIN accounts a ON a.id = o.account_id \
             WHERE a.domain = ?1 AND a.localpart = ?2 ORDER BY o.id",
        )
        .bind(domain)
        .bind(localpart)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.into_iter()
            .map(|(id, stanza)| {
                Ok(OfflineMessage {
                    id: to_u64(id, "offline message id")?,
                    stanza,
                })
            })
            .collect()
    }

    async fn delete_up_to(
        &self,
        localpart: &str,
        domain: &str,
        up_to: u64,
    ) -> Result<u64, StorageError> {
        // An unknown account makes the subquery NULL, which matches no row.
        let done = sqlx::query(
            "DELETE FROM offline_messages WHERE id <= ?3 AND account_id = \
             (SELECT id FROM accounts WHERE domain = ?1 AND localpart = ?2)",
        )
        .bind(domain)
        .bind(localpart)
        .bind(clamp_i64(up_to))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn count(&self, localpart: &str, domain: &str) -> Result<u64, StorageError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM offline_messages o JOIN accounts a ON a.id = o.account_id \
             WHERE a.domain = ?1 AND a.localpart = ?2",
        )
        .bind(domain)
        .bind(localpart)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        to_u64(count, "offline message count")
    }
}
