//! [`FastTokenStore`] on SQLite (table `fast_tokens`, migration `0010_fast_tokens.sql`).

use async_trait::async_trait;
use sqlx::SqlitePool;
use starling_storage::{FastSlot, FastToken, FastTokenStore, FastUse, StorageError};

use crate::accounts::{account_id, backend, begin_write, find_account};

const CURRENT: i64 = 0;
const NEW: i64 = 1;

/// One row per (account, user agent, slot).
pub(crate) struct SqliteFastTokenStore {
    pool: SqlitePool,
}

impl SqliteFastTokenStore {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

/// A `count` as stored: the u64's bits in an i64 (SQLite integers are signed), compared in Rust.
fn count_to_db(n: u64) -> i64 {
    i64::from_ne_bytes(n.to_ne_bytes())
}

fn count_from_db(n: i64) -> u64 {
    u64::from_ne_bytes(n.to_ne_bytes())
}

type Row = (String, String, i64, Vec<u8>, i64, Option<i64>);

#[async_trait]
impl FastTokenStore for SqliteFastTokenStore {
    async fn tokens(
        &self,
        localpart: &str,
        domain: &str,
        user_agent: &str,
    ) -> Result<Vec<FastToken>, StorageError> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT t.user_agent, t.mechanism, t.slot, t.nonce, t.expires_at, t.last_count \
             FROM fast_tokens t JOIN accounts a ON a.id = t.account_id \
             WHERE a.domain = ?1 AND a.localpart = ?2 AND t.user_agent = ?3 ORDER BY t.slot",
        )
        .bind(domain)
        .bind(localpart)
        .bind(user_agent)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(
                |(user_agent, mechanism, slot, nonce, expires_at, last_count)| FastToken {
                    user_agent,
                    mechanism,
                    nonce,
                    expires_at,
                    slot: if slot == NEW {
                        FastSlot::New
                    } else {
                        FastSlot::Current
                    },
                    last_count: last_count.map(count_from_db),
                },
            )
            .collect())
    }

    async fn issue(
        &self,
        localpart: &str,
        domain: &str,
        token: &FastToken,
    ) -> Result<(), StorageError> {
        let mut tx = begin_write(&self.pool).await?;
        let account = account_id(&mut tx, localpart, domain).await?;
        // Replaces a New token never used (the primary key is per slot).
        sqlx::query(
            "INSERT OR REPLACE INTO fast_tokens \
             (account_id, user_agent, slot, mechanism, nonce, expires_at, last_count) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)",
        )
        .bind(account)
        .bind(&token.user_agent)
        .bind(NEW)
        .bind(&token.mechanism)
        .bind(token.nonce.as_slice())
        .bind(token.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn use_token(
        &self,
        localpart: &str,
        domain: &str,
        user_agent: &str,
        nonce: &[u8],
        count: Option<u64>,
    ) -> Result<FastUse, StorageError> {
        // BEGIN IMMEDIATE: the count check and its update see no other writer in between.
        let mut tx = begin_write(&self.pool).await?;
        let Some(account) = find_account(&mut tx, localpart, domain).await? else {
            return Ok(FastUse::Gone);
        };
        let row: Option<(i64, Option<i64>)> = sqlx::query_as(
            "SELECT slot, last_count FROM fast_tokens \
             WHERE account_id = ?1 AND user_agent = ?2 AND nonce = ?3",
        )
        .bind(account)
        .bind(user_agent)
        .bind(nonce)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some((slot, last)) = row else {
            return Ok(FastUse::Gone);
        };
        let last = last.map(count_from_db);
        if let (Some(c), Some(l)) = (count, last)
            && c <= l
        {
            return Ok(FastUse::Replayed);
        }
        let new_last = match (count, last) {
            (Some(c), _) => Some(count_to_db(c)),
            (None, l) => l.map(count_to_db),
        };
        if slot == NEW {
            sqlx::query(
                "DELETE FROM fast_tokens WHERE account_id = ?1 AND user_agent = ?2 AND slot = ?3",
            )
            .bind(account)
            .bind(user_agent)
            .bind(CURRENT)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        sqlx::query(
            "UPDATE fast_tokens SET slot = ?4, last_count = ?5 \
             WHERE account_id = ?1 AND user_agent = ?2 AND slot = ?3",
        )
        .bind(account)
        .bind(user_agent)
        .bind(slot)
        .bind(CURRENT)
        .bind(new_last)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(FastUse::Accepted)
    }

    async fn revoke(
        &self,
        localpart: &str,
        domain: &str,
        user_agent: &str,
        nonce: &[u8],
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "DELETE FROM fast_tokens WHERE user_agent = ?3 AND nonce = ?4 \
             AND account_id = (SELECT id FROM accounts WHERE domain = ?1 AND localpart = ?2)",
        )
        .bind(domain)
        .bind(localpart)
        .bind(user_agent)
        .bind(nonce)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn revoke_all(&self, localpart: &str, domain: &str) -> Result<u64, StorageError> {
        let mut tx = begin_write(&self.pool).await?;
        let Some(account) = find_account(&mut tx, localpart, domain).await? else {
            return Ok(0);
        };
        let n = crate::accounts::delete_fast_tokens(&mut tx, account).await?;
        tx.commit().await.map_err(backend)?;
        Ok(n)
    }

    async fn delete_expired(&self, now: i64) -> Result<u64, StorageError> {
        let done = sqlx::query("DELETE FROM fast_tokens WHERE expires_at < ?1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }
}
