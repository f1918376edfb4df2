//! [`PushStore`] on SQLite (table `push_registrations`, migration `0008_push.sql`).

use async_trait::async_trait;
use sqlx::SqlitePool;
use starling_storage::{PushEnabled, PushRegistration, PushStore, StorageError};

use crate::accounts::{account_id, backend, begin_write};
use crate::offline::to_u64;

/// One row per registration; `seq` orders them by enabling.
pub(crate) struct SqlitePushStore {
    pool: SqlitePool,
}

impl SqlitePushStore {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl PushStore for SqlitePushStore {
    async fn registrations(
        &self,
        localpart: &str,
        domain: &str,
    ) -> Result<Vec<PushRegistration>, StorageError> {
        let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT p.jid, p.node, p.options FROM push_registrations p \
             JOIN accounts a ON a.id = p.account_id \
             WHERE a.domain = ?1 AND a.localpart = ?2 ORDER BY p.seq",
        )
        .bind(domain)
        .bind(localpart)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(jid, node, options)| PushRegistration { jid, node, options })
            .collect())
    }

    async fn enable(
        &self,
        localpart: &str,
        domain: &str,
        registration: &PushRegistration,
        max: u64,
    ) -> Result<PushEnabled, StorageError> {
        // BEGIN IMMEDIATE: the replacement and the bound see no other writer in between.
        let mut tx = begin_write(&self.pool).await?;
        let account = account_id(&mut tx, localpart, domain).await?;
        // Replaced rather than updated, so that it takes the newest seq.
        sqlx::query(
            "DELETE FROM push_registrations WHERE account_id = ?1 AND jid = ?2 AND node = ?3",
        )
        .bind(account)
        .bind(&registration.jid)
        .bind(&registration.node)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query(
            "INSERT INTO push_registrations (account_id, jid, node, options) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(account)
        .bind(&registration.jid)
        .bind(&registration.node)
        .bind(registration.options.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let keep = i64::try_from(max).unwrap_or(i64::MAX);
        let evicted = sqlx::query(
            "DELETE FROM push_registrations WHERE account_id = ?1 AND seq NOT IN \
             (SELECT seq FROM push_registrations WHERE account_id = ?1 ORDER BY seq DESC LIMIT ?2)",
        )
        .bind(account)
        .bind(keep)
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected();
        tx.commit().await.map_err(backend)?;
        Ok(PushEnabled { evicted })
    }

    async fn disable(
        &self,
        localpart: &str,
        domain: &str,
        jid: &str,
        node: Option<&str>,
    ) -> Result<u64, StorageError> {
        // One statement: atomic without a transaction. `?4 IS NULL`: every node.
        let done = sqlx::query(
            "DELETE FROM push_registrations WHERE jid = ?3 AND (?4 IS NULL OR node = ?4) \
             AND account_id = (SELECT id FROM accounts WHERE domain = ?1 AND localpart = ?2)",
        )
        .bind(domain)
        .bind(localpart)
        .bind(jid)
        .bind(node)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        let n = i64::try_from(done.rows_affected()).unwrap_or(i64::MAX);
        to_u64(n, "removed registrations")
    }
}
