//! [`InviteStore`] on SQLite (table `invites`, migration `0012_invites.sql`).

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row as _, SqliteConnection, SqlitePool};
use starling_storage::{Credential, Invite, InviteStore, StorageError, check_distinct_mechanisms};

use crate::accounts::{
    account_id, backend, begin_write, insert_account, insert_credentials, is_unique_violation,
};

pub(crate) struct SqliteInviteStore {
    pool: SqlitePool,
}

impl SqliteInviteStore {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

/// A query reading the columns [`from_row`] reads (the contact's names joined from
/// `accounts`), followed by `$tail`. A macro: sqlx takes only `&'static str` as SQL.
macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT i.token_hash, i.domain, i.username, a.localpart, a.domain, ",
            "i.register, i.uses_left, i.created_at, i.expires_at ",
            "FROM invites i LEFT JOIN accounts a ON a.id = i.contact_id ",
            $tail
        )
    };
}

fn from_row(row: &SqliteRow) -> Result<Invite, StorageError> {
    let contact_local: Option<String> = row.try_get(3).map_err(backend)?;
    let contact_domain: Option<String> = row.try_get(4).map_err(backend)?;
    let uses: i64 = row.try_get(6).map_err(backend)?;
    Ok(Invite {
        token_hash: row.try_get(0).map_err(backend)?,
        domain: row.try_get(1).map_err(backend)?,
        username: row.try_get(2).map_err(backend)?,
        contact: contact_local.zip(contact_domain),
        register: row.try_get::<i64, _>(5).map_err(backend)? != 0,
        uses_left: u32::try_from(uses)
            .map_err(|_| StorageError::backend(format!("uses_left {uses} out of range")))?,
        created_at: row.try_get(7).map_err(backend)?,
        expires_at: row.try_get(8).map_err(backend)?,
    })
}

/// The invitation if it is valid at `now`, inside the caller's transaction.
async fn valid(
    conn: &mut SqliteConnection,
    token_hash: &str,
    now: i64,
) -> Result<Option<Invite>, StorageError> {
    let row = sqlx::query(select!("WHERE i.token_hash = ?1 AND i.expires_at > ?2"))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(conn)
        .await
        .map_err(backend)?;
    row.as_ref().map(from_row).transpose()
}

/// Spends one use: the row goes with its last one.
async fn spend(conn: &mut SqliteConnection, invite: &Invite) -> Result<(), StorageError> {
    let sql = if invite.uses_left <= 1 {
        "DELETE FROM invites WHERE token_hash = ?1"
    } else {
        "UPDATE invites SET uses_left = uses_left - 1 WHERE token_hash = ?1"
    };
    sqlx::query(sql)
        .bind(&invite.token_hash)
        .execute(conn)
        .await
        .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl InviteStore for SqliteInviteStore {
    async fn create_invite(&self, invite: &Invite) -> Result<(), StorageError> {
        if invite.uses_left == 0 {
            return Err(StorageError::backend(
                "an invitation needs at least one use",
            ));
        }
        let mut tx = begin_write(&self.pool).await?;
        let contact = match &invite.contact {
            Some((l, d)) => Some(account_id(&mut tx, l, d).await?),
            None => None,
        };
        sqlx::query(
            "INSERT INTO invites (token_hash, domain, username, contact_id, register, uses_left, \
             created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .bind(&invite.token_hash)
        .bind(&invite.domain)
        .bind(invite.username.as_deref())
        .bind(contact)
        .bind(i64::from(invite.register))
        .bind(i64::from(invite.uses_left))
        .bind(invite.created_at)
        .bind(invite.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StorageError::AlreadyExists
            } else {
                backend(e)
            }
        })?;
        tx.commit().await.map_err(backend)
    }

    async fn invite(&self, token_hash: &str) -> Result<Option<Invite>, StorageError> {
        let row = sqlx::query(select!("WHERE i.token_hash = ?1"))
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(from_row).transpose()
    }

    async fn register_with_invite(
        &self,
        token_hash: &str,
        now: i64,
        localpart: &str,
        domain: &str,
        creds: &[Credential],
    ) -> Result<Invite, StorageError> {
        check_distinct_mechanisms(creds)?;
        // Dropping `tx` on any early return rolls it back.
        let mut tx = begin_write(&self.pool).await?;
        let invite = valid(&mut tx, token_hash, now)
            .await?
            .filter(|i| {
                i.register
                    && i.domain == domain
                    && i.username.as_deref().is_none_or(|u| u == localpart)
            })
            .ok_or(StorageError::NotFound)?;
        let id = insert_account(&mut tx, localpart, domain).await?;
        insert_credentials(&mut tx, id, creds).await?;
        spend(&mut tx, &invite).await?;
        tx.commit().await.map_err(backend)?;
        Ok(invite)
    }

    async fn use_invite(&self, token_hash: &str, now: i64) -> Result<Option<Invite>, StorageError> {
        let mut tx = begin_write(&self.pool).await?;
        let Some(invite) = valid(&mut tx, token_hash, now).await? else {
            return Ok(None);
        };
        spend(&mut tx, &invite).await?;
        tx.commit().await.map_err(backend)?;
        Ok(Some(invite))
    }

    async fn is_reserved(
        &self,
        localpart: &str,
        domain: &str,
        now: i64,
    ) -> Result<bool, StorageError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM invites WHERE domain = ?1 AND username = ?2 AND expires_at > ?3",
        )
        .bind(domain)
        .bind(localpart)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(n > 0)
    }

    async fn list_invites(&self, domain: Option<&str>) -> Result<Vec<Invite>, StorageError> {
        let rows = match domain {
            Some(d) => {
                sqlx::query(select!(
                    "WHERE i.domain = ?1 ORDER BY i.created_at, i.token_hash"
                ))
                .bind(d)
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query(select!("ORDER BY i.created_at, i.token_hash"))
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(backend)?;
        rows.iter().map(from_row).collect()
    }

    async fn delete_invite(&self, token_hash: &str) -> Result<bool, StorageError> {
        let done = sqlx::query("DELETE FROM invites WHERE token_hash = ?1")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn purge_expired(&self, now: i64) -> Result<u64, StorageError> {
        let done = sqlx::query("DELETE FROM invites WHERE expires_at <= ?1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }
}
