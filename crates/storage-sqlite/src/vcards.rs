//! [`VcardStore`] on SQLite (table `vcards`, migration `0005_vcards.sql`).

use async_trait::async_trait;
use sqlx::SqlitePool;
use starling_storage::{StorageError, VcardStore};

use crate::accounts::backend;

/// One row per account that set a vCard.
pub(crate) struct SqliteVcardStore {
    pool: SqlitePool,
}

impl SqliteVcardStore {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl VcardStore for SqliteVcardStore {
    async fn vcard(&self, localpart: &str, domain: &str) -> Result<Option<String>, StorageError> {
        sqlx::query_scalar(
            "SELECT v.vcard FROM vcards v JOIN accounts a ON a.id = v.account_id \
             WHERE a.domain = ?1 AND a.localpart = ?2",
        )
        .bind(domain)
        .bind(localpart)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)
    }

    async fn set_vcard(
        &self,
        localpart: &str,
        domain: &str,
        vcard: &str,
    ) -> Result<(), StorageError> {
        // One statement, so atomic without a transaction: no account row, no
        // insert. (The WHERE clause also keeps SQLite from parsing the upsert's
        // ON as a join constraint.)
        let done = sqlx::query(
            "INSERT INTO vcards (account_id, vcard) \
             SELECT id, ?3 FROM accounts WHERE domain = ?1 AND localpart = ?2 \
             ON CONFLICT (account_id) DO UPDATE SET vcard = excluded.vcard",
        )
        .bind(domain)
        .bind(localpart)
        .bind(vcard)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }
}
