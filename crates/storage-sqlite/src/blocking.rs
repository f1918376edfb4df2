//! [`BlockingStore`] on SQLite (tables `blocklist`, `abuse_reports`, `abuse_report_ids`;
//! migration `0007_blocking.sql`).

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::SqlitePool;
use starling_storage::{AbuseReport, BlockedJid, BlockingStore, StorageError, StoredReport};

use crate::accounts::{account_id, backend, begin_write, find_account};

pub(crate) struct SqliteBlockingStore {
    pool: SqlitePool,
}

impl SqliteBlockingStore {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl BlockingStore for SqliteBlockingStore {
    async fn blocklist(&self, localpart: &str, domain: &str) -> Result<Vec<String>, StorageError> {
        sqlx::query_scalar(
            "SELECT b.jid FROM blocklist b JOIN accounts a ON a.id = b.account_id \
             WHERE a.domain = ?1 AND a.localpart = ?2 ORDER BY b.seq",
        )
        .bind(domain)
        .bind(localpart)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)
    }

    async fn all_blocklists(&self) -> Result<Vec<BlockedJid>, StorageError> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT a.localpart, a.domain, b.jid FROM blocklist b \
             JOIN accounts a ON a.id = b.account_id ORDER BY b.account_id, b.seq",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(localpart, domain, jid)| BlockedJid {
                localpart,
                domain,
                jid,
            })
            .collect())
    }

    async fn block(
        &self,
        localpart: &str,
        domain: &str,
        jids: &[String],
    ) -> Result<Vec<String>, StorageError> {
        let mut tx = begin_write(&self.pool).await?;
        let account = account_id(&mut tx, localpart, domain).await?;
        let mut added = Vec::new();
        for jid in jids {
            let done = sqlx::query(
                "INSERT INTO blocklist (account_id, jid) VALUES (?1, ?2) \
                 ON CONFLICT (account_id, jid) DO NOTHING",
            )
            .bind(account)
            .bind(jid)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            if done.rows_affected() > 0 {
                added.push(jid.clone());
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(added)
    }

    async fn unblock(
        &self,
        localpart: &str,
        domain: &str,
        jids: &[String],
    ) -> Result<Vec<String>, StorageError> {
        let mut tx = begin_write(&self.pool).await?;
        let Some(account) = find_account(&mut tx, localpart, domain).await? else {
            return Ok(Vec::new());
        };
        let mut removed = Vec::new();
        for jid in jids {
            let done = sqlx::query("DELETE FROM blocklist WHERE account_id = ?1 AND jid = ?2")
                .bind(account)
                .bind(jid)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            if done.rows_affected() > 0 {
                removed.push(jid.clone());
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(removed)
    }

    async fn unblock_all(
        &self,
        localpart: &str,
        domain: &str,
    ) -> Result<Vec<String>, StorageError> {
        let mut tx = begin_write(&self.pool).await?;
        let Some(account) = find_account(&mut tx, localpart, domain).await? else {
            return Ok(Vec::new());
        };
        // RETURNING gives no order: the list is read in order first, in the same transaction.
        let removed: Vec<String> =
            sqlx::query_scalar("SELECT jid FROM blocklist WHERE account_id = ?1 ORDER BY seq")
                .bind(account)
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
        sqlx::query("DELETE FROM blocklist WHERE account_id = ?1")
            .bind(account)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(removed)
    }

    async fn add_report(&self, report: &AbuseReport) -> Result<(), StorageError> {
        let mut tx = begin_write(&self.pool).await?;
        let account = account_id(&mut tx, &report.localpart, &report.domain).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO abuse_reports (account_id, jid, reason, text, received_us) \
             VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
        )
        .bind(account)
        .bind(&report.jid)
        .bind(&report.reason)
        .bind(report.text.as_deref())
        .bind(report.received_us)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        for (pos, stanza_id) in report.stanza_ids.iter().enumerate() {
            sqlx::query(
                "INSERT INTO abuse_report_ids (report_id, pos, stanza_id) VALUES (?1, ?2, ?3)",
            )
            .bind(id)
            .bind(i64::try_from(pos).map_err(StorageError::backend)?)
            .bind(stanza_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(())
    }

    async fn reports(
        &self,
        jid: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredReport>, StorageError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        type Row = (i64, String, String, String, String, Option<String>, i64);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT r.id, a.localpart, a.domain, r.jid, r.reason, r.text, r.received_us \
             FROM abuse_reports r JOIN accounts a ON a.id = r.account_id \
             WHERE ?1 IS NULL OR r.jid = ?1 ORDER BY r.id DESC LIMIT ?2",
        )
        .bind(jid)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let mut ids: HashMap<i64, Vec<String>> = HashMap::new();
        if let (Some(first), Some(last)) = (rows.last(), rows.first()) {
            let all: Vec<(i64, String)> = sqlx::query_as(
                "SELECT report_id, stanza_id FROM abuse_report_ids \
                 WHERE report_id BETWEEN ?1 AND ?2 ORDER BY report_id, pos",
            )
            .bind(first.0)
            .bind(last.0)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
            for (report, stanza_id) in all {
                ids.entry(report).or_default().push(stanza_id);
            }
        }
        Ok(rows
            .into_iter()
            .map(
                |(id, localpart, domain, jid, reason, text, received_us)| StoredReport {
                    id,
                    report: AbuseReport {
                        localpart,
                        domain,
                        jid,
                        reason,
                        text,
                        stanza_ids: ids.remove(&id).unwrap_or_default(),
                        received_us,
                    },
                },
            )
            .collect())
    }
}
