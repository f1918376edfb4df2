//! [`UploadStore`] on SQLite (table `upload_slots`, migration `0017_upload.sql`).

use async_trait::async_trait;
use sqlx::SqlitePool;
use starling_storage::{StorageError, UploadSlot, UploadStore};

use crate::accounts::{backend, begin_write};
use crate::offline::to_u64;
use crate::shared::exists_or_backend;

pub(crate) struct SqliteUploadStore {
    pool: SqlitePool,
}

impl SqliteUploadStore {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

type Row = (String, String, String, i64, Option<String>, i64, i64);

/// The columns of a [`Row`], as a literal for `concat!` (sqlx takes only static SQL).
macro_rules! columns {
    () => {
        "id, owner, filename, size, content_type, created_at, completed"
    };
}

fn from_row(row: Row) -> Result<UploadSlot, StorageError> {
    let (id, owner, filename, size, content_type, created_at, completed) = row;
    Ok(UploadSlot {
        id,
        owner,
        filename,
        size: to_u64(size, "upload size")?,
        content_type,
        created_at,
        completed: completed != 0,
    })
}

fn size_i64(size: u64) -> Result<i64, StorageError> {
    i64::try_from(size).map_err(|_| StorageError::backend(format!("upload size {size} too large")))
}

#[async_trait]
impl UploadStore for SqliteUploadStore {
    async fn reserve(&self, slot: &UploadSlot, quota: u64) -> Result<bool, StorageError> {
        let size = size_i64(slot.size)?;
        // BEGIN IMMEDIATE: the sum and the insert see no other writer in between.
        let mut tx = begin_write(&self.pool).await?;
        let used: i64 =
            sqlx::query_scalar("SELECT COALESCE(SUM(size), 0) FROM upload_slots WHERE owner = ?1")
                .bind(&slot.owner)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
        let used = to_u64(used, "upload quota sum")?;
        if used.saturating_add(slot.size) > quota {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO upload_slots (id, owner, filename, size, content_type, created_at, completed) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
        )
        .bind(&slot.id)
        .bind(&slot.owner)
        .bind(&slot.filename)
        .bind(size)
        .bind(slot.content_type.as_deref())
        .bind(slot.created_at)
        .execute(&mut *tx)
        .await
        .map_err(exists_or_backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn slot(&self, id: &str) -> Result<Option<UploadSlot>, StorageError> {
        let row: Option<Row> = sqlx::query_as(concat!(
            "SELECT ",
            columns!(),
            " FROM upload_slots WHERE id = ?1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.map(from_row).transpose()
    }

    async fn complete(&self, id: &str) -> Result<bool, StorageError> {
        let done =
            sqlx::query("UPDATE upload_slots SET completed = 1 WHERE id = ?1 AND completed = 0")
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn used(&self, owner: &str) -> Result<u64, StorageError> {
        let used: i64 =
            sqlx::query_scalar("SELECT COALESCE(SUM(size), 0) FROM upload_slots WHERE owner = ?1")
                .bind(owner)
                .fetch_one(&self.pool)
                .await
                .map_err(backend)?;
        to_u64(used, "upload quota sum")
    }

    async fn slots_of(&self, owner: &str) -> Result<Vec<UploadSlot>, StorageError> {
        let rows: Vec<Row> = sqlx::query_as(concat!(
            "SELECT ",
            columns!(),
            " FROM upload_slots WHERE owner = ?1 ORDER BY created_at, id"
        ))
        .bind(owner)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.into_iter().map(from_row).collect()
    }

    async fn expired(
        &self,
        completed_before: Option<i64>,
        pending_before: i64,
        limit: u32,
    ) -> Result<Vec<UploadSlot>, StorageError> {
        let rows: Vec<Row> = sqlx::query_as(concat!(
            "SELECT ",
            columns!(),
            " FROM upload_slots \
             WHERE (completed = 0 AND created_at < ?2) \
                OR (completed = 1 AND ?1 IS NOT NULL AND created_at < ?1) \
             ORDER BY created_at, id LIMIT ?3"
        ))
        .bind(completed_before)
        .bind(pending_before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.into_iter().map(from_row).collect()
    }

    async fn delete(&self, id: &str) -> Result<bool, StorageError> {
        let done = sqlx::query("DELETE FROM upload_slots WHERE id = ?1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }
}
