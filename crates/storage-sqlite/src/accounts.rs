//! [`AccountStore`] on SQLite (tables `accounts` and `credentials`).

use async_trait::async_trait;
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};
use starling_storage::{
    AccountStore, Credential, NewAccount, StorageError, check_distinct_mechanisms,
};

use crate::bulk::ChunkSql;

/// Accounts in the `accounts` table, credentials in `credentials`.
pub(crate) struct SqliteAccountStore {
    pool: SqlitePool,
}

impl SqliteAccountStore {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

pub(crate) fn backend(err: sqlx::Error) -> StorageError {
    StorageError::backend(err)
}

pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Takes the write lock up front; see the crate docs for why.
pub(crate) async fn begin_write(
    pool: &SqlitePool,
) -> Result<Transaction<'static, Sqlite>, StorageError> {
    pool.begin_with("BEGIN IMMEDIATE").await.map_err(backend)
}

pub(crate) async fn insert_credentials(
    tx: &mut Transaction<'static, Sqlite>,
    account_id: i64,
    creds: &[Credential],
) -> Result<(), StorageError> {
    for c in creds {
        sqlx::query(
            "INSERT INTO credentials \
             (account_id, mechanism, salt, iterations, stored_key, server_key) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(account_id)
        .bind(c.mechanism.as_str())
        .bind(c.salt.as_slice())
        .bind(i64::from(c.iterations))
        .bind(c.stored_key.as_slice())
        .bind(c.server_key.as_slice())
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    }
    Ok(())
}

/// Inserts credential rows `(account id, credential)` with multi-row
/// statements (see [`crate::bulk`]).
async fn insert_credential_rows(
    tx: &mut Transaction<'static, Sqlite>,
    rows: &[(i64, &Credential)],
) -> Result<(), StorageError> {
    let sql = ChunkSql::new(
        "INSERT INTO credentials \
         (account_id, mechanism, salt, iterations, stored_key, server_key)",
        6,
    );
    for chunk in rows.chunks(sql.rows()) {
        let mut query = sqlx::query(sql.for_rows(chunk.len()));
        for (id, c) in chunk {
            query = query
                .bind(*id)
                .bind(c.mechanism.as_str())
                .bind(c.salt.as_slice())
                .bind(i64::from(c.iterations))
                .bind(c.stored_key.as_slice())
                .bind(c.server_key.as_slice());
        }
        query.execute(&mut **tx).await.map_err(backend)?;
    }
    Ok(())
}

/// Inserts the account row; [`StorageError::AlreadyExists`] if it exists.
pub(crate) async fn insert_account(
    tx: &mut Transaction<'static, Sqlite>,
    localpart: &str,
    domain: &str,
) -> Result<i64, StorageError> {
    sqlx::query_scalar("INSERT INTO accounts (domain, localpart) VALUES (?1, ?2) RETURNING id")
        .bind(domain)
        .bind(localpart)
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StorageError::AlreadyExists
            } else {
                backend(e)
            }
        })
}

/// The id of the account, or [`StorageError::NotFound`] (inside the caller's transaction).
pub(crate) async fn account_id(
    conn: &mut SqliteConnection,
    localpart: &str,
    domain: &str,
) -> Result<i64, StorageError> {
    find_account(conn, localpart, domain)
        .await?
        .ok_or(StorageError::NotFound)
}

/// The id of the account, `None` if it does not exist (inside the caller's transaction).
pub(crate) async fn find_account(
    conn: &mut SqliteConnection,
    localpart: &str,
    domain: &str,
) -> Result<Option<i64>, StorageError> {
    sqlx::query_scalar("SELECT id FROM accounts WHERE domain = ?1 AND localpart = ?2")
        .bind(domain)
        .bind(localpart)
        .fetch_optional(conn)
        .await
        .map_err(backend)
}

/// Deletes every token of the account `id` (inside the caller's transaction): a password change and disabling
/// the account call it (its deletion cascades); [`crate::fast`] for `revoke_all`.
pub(crate) async fn delete_fast_tokens(
    conn: &mut sqlx::SqliteConnection,
    id: i64,
) -> Result<u64, StorageError> {
    let done = sqlx::query("DELETE FROM fast_tokens WHERE account_id = ?1")
        .bind(id)
        .execute(conn)
        .await
        .map_err(backend)?;
    Ok(done.rows_affected())
}

#[async_trait]
impl AccountStore for SqliteAccountStore {
    async fn create_account(
        &self,
        localpart: &str,
        domain: &str,
        creds: &[Credential],
    ) -> Result<(), StorageError> {
        check_distinct_mechanisms(creds)?;
        let mut tx = begin_write(&self.pool).await?;
        let id = insert_account(&mut tx, localpart, domain).await?;
        insert_credentials(&mut tx, id, creds).await?;
        tx.commit().await.map_err(backend)
    }

    async fn create_accounts(&self, accounts: &[NewAccount<'_>]) -> Result<(), StorageError> {
        for a in accounts {
            check_distinct_mechanisms(a.creds)?;
        }
        if accounts.is_empty() {
            return Ok(());
        }
        // One transaction: all or nothing, and one commit (one fsync) for the
        // batch. Dropping `tx` on any early return rolls it back.
        let mut tx = begin_write(&self.pool).await?;
        // Account rows one by one (the same prepared statement each time):
        // RETURNING gives each id, but SQLite does not promise the order of
        // RETURNING rows for a multi-row insert.
        let mut creds = Vec::with_capacity(accounts.iter().map(|a| a.creds.len()).sum());
        for a in accounts {
            let id = insert_account(&mut tx, a.localpart, a.domain).await?;
            creds.extend(a.creds.iter().map(|c| (id, c)));
        }
        insert_credential_rows(&mut tx, &creds).await?;
        tx.commit().await.map_err(backend)
    }

    async fn set_credentials(
        &self,
        localpart: &str,
        domain: &str,
        creds: &[Credential],
    ) -> Result<(), StorageError> {
        check_distinct_mechanisms(creds)?;
        let mut tx = begin_write(&self.pool).await?;
        let id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM accounts WHERE domain = ?1 AND localpart = ?2")
                .bind(domain)
                .bind(localpart)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        // Dropping `tx` on any early return rolls it back.
        let id = id.ok_or(StorageError::NotFound)?;
        sqlx::query("DELETE FROM credentials WHERE account_id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        // A new password revokes every FAST token (XEP-0484), whoever changes it.
        delete_fast_tokens(&mut tx, id).await?;
        insert_credentials(&mut tx, id, creds).await?;
        tx.commit().await.map_err(backend)
    }

    async fn delete_account(&self, localpart: &str, domain: &str) -> Result<(), StorageError> {
        // Credentials, FAST tokens and every per-account table go by ON DELETE CASCADE, in
        // this one statement's implicit transaction.
        let done = sqlx::query("DELETE FROM accounts WHERE domain = ?1 AND localpart = ?2")
            .bind(domain)
            .bind(localpart)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }

    async fn account_exists(&self, localpart: &str, domain: &str) -> Result<bool, StorageError> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM accounts WHERE domain = ?1 AND localpart = ?2)",
        )
        .bind(domain)
        .bind(localpart)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)
    }

    async fn credential(
        &self,
        localpart: &str,
        domain: &str,
        mechanism: &str,
    ) -> Result<Option<Credential>, StorageError> {
        Ok(self
            .login_credential(localpart, domain, mechanism)
            .await?
            .map(|(c, _)| c))
    }

    async fn set_disabled(
        &self,
        localpart: &str,
        domain: &str,
        disabled: bool,
    ) -> Result<(), StorageError> {
        // Dropping `tx` on any early return rolls it back.
        let mut tx = begin_write(&self.pool).await?;
        let id = account_id(&mut tx, localpart, domain).await?;
        sqlx::query("UPDATE accounts SET disabled = ?2 WHERE id = ?1")
            .bind(id)
            .bind(i64::from(disabled))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if disabled {
            // A disabled account's devices log in with the password again once it is
            // re-enabled: its FAST tokens (XEP-0484) go, like at a password change.
            delete_fast_tokens(&mut tx, id).await?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn is_disabled(&self, localpart: &str, domain: &str) -> Result<bool, StorageError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT disabled FROM accounts WHERE domain = ?1 AND localpart = ?2",
        )
        .bind(domain)
        .bind(localpart)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        found.map(|d| d != 0).ok_or(StorageError::NotFound)
    }

    async fn login_credential(
        &self,
        localpart: &str,
        domain: &str,
        mechanism: &str,
    ) -> Result<Option<(Credential, bool)>, StorageError> {
        // One query: the login path reads the disabled flag with the credential.
        let row: Option<(Vec<u8>, i64, Vec<u8>, Vec<u8>, i64)> = sqlx::query_as(
            "SELECT c.salt, c.iterations, c.stored_key, c.server_key, a.disabled \
             FROM credentials c JOIN accounts a ON a.id = c.account_id \
             WHERE a.domain = ?1 AND a.localpart = ?2 AND c.mechanism = ?3",
        )
        .bind(domain)
        .bind(localpart)
        .bind(mechanism)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some((salt, iterations, stored_key, server_key, disabled)) = row else {
            return Ok(None);
        };
        // The schema's CHECK keeps this in range; a failure means a corrupt file.
        let iterations = u32::try_from(iterations).map_err(|_| {
            StorageError::backend(format!(
                "corrupt credential row: iterations {iterations} out of range"
            ))
        })?;
        Ok(Some((
            Credential {
                mechanism: mechanism.to_owned(),
                salt,
                iterations,
                stored_key,
                server_key,
            },
            disabled != 0,
        )))
    }

    async fn list_accounts(
        &self,
        domain: Option<&str>,
    ) -> Result<Vec<(String, String)>, StorageError> {
        // ORDER BY uses the BINARY collation: memcmp on UTF-8, the same order
        // as Rust's `str` comparison.
        let query = match domain {
            Some(domain) => sqlx::query_as(
                "SELECT localpart, domain FROM accounts WHERE domain = ?1 \
                 ORDER BY localpart, domain",
            )
            .bind(domain),
            None => {
                sqlx::query_as("SELECT localpart, domain FROM accounts ORDER BY localpart, domain")
            }
        };
        query.fetch_all(&self.pool).await.map_err(backend)
    }
}
