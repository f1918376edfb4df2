//! [`PrivateStore`] on SQLite (table `private_xml`, migration `0013_private.sql`).

use async_trait::async_trait;
use sqlx::SqlitePool;
use starling_storage::{PrivateElement, PrivateStore, StorageError};

use crate::accounts::{account_id, backend, begin_write};

/// One row per (account, namespace, name).
pub(crate) struct SqlitePrivateStore {
    pool: SqlitePool,
}

impl SqlitePrivateStore {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl PrivateStore for SqlitePrivateStore {
    async fn get(
        &self,
        localpart: &str,
        domain: &str,
        name: &str,
        namespace: &str,
    ) -> Result<Option<String>, StorageError> {
        sqlx::query_scalar(
            "SELECT p.xml FROM private_xml p JOIN accounts a ON a.id = p.account_id \
             WHERE a.domain = ?1 AND a.localpart = ?2 AND p.namespace = ?3 AND p.name = ?4",
        )
        .bind(domain)
        .bind(localpart)
        .bind(namespace)
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)
    }

    async fn set(
        &self,
        localpart: &str,
        domain: &str,
        elements: &[PrivateElement],
    ) -> Result<(), StorageError> {
        for (i, e) in elements.iter().enumerate() {
            if elements[..i]
                .iter()
                .any(|p| p.name == e.name && p.namespace == e.namespace)
            {
                return Err(StorageError::backend(format!(
                    "private element {{{}}}{} given twice",
                    e.namespace, e.name
                )));
            }
        }
        let mut tx = begin_write(&self.pool).await?;
        let id = account_id(&mut tx, localpart, domain).await?;
        for e in elements {
            sqlx::query(
                "INSERT INTO private_xml (account_id, namespace, name, xml) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (account_id, namespace, name) DO UPDATE SET xml = excluded.xml",
            )
            .bind(id)
            .bind(&e.namespace)
            .bind(&e.name)
            .bind(&e.xml)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn all(
        &self,
        localpart: &str,
        domain: &str,
    ) -> Result<Vec<PrivateElement>, StorageError> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT p.name, p.namespace, p.xml FROM private_xml p \
             JOIN accounts a ON a.id = p.account_id \
             WHERE a.domain = ?1 AND a.localpart = ?2 ORDER BY p.namespace, p.name",
        )
        .bind(domain)
        .bind(localpart)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(name, namespace, xml)| PrivateElement {
                name,
                namespace,
                xml,
            })
            .collect())
    }

    async fn count(&self, localpart: &str, domain: &str) -> Result<u64, StorageError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM private_xml p JOIN accounts a ON a.id = p.account_id \
             WHERE a.domain = ?1 AND a.localpart = ?2",
        )
        .bind(domain)
        .bind(localpart)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        u64::try_from(n).map_err(StorageError::backend)
    }
}
