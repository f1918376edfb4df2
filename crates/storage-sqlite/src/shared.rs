//! Helpers the MUC and pubsub stores share: a room's or node's configuration column, rows read
//! through a mapping function, and the writes on a room or node that fail when it does not
//! exist.

use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteQueryResult, SqliteRow};
use sqlx::{Sqlite, SqlitePool};
use starling_storage::StorageError;

use crate::accounts::{backend, begin_write, is_unique_violation};

/// A configuration ([`starling_storage::RoomConfig`], [`starling_storage::NodeConfig`]) as the
/// JSON its column holds: `[["var", ["value", …]], …]`.
pub(crate) fn encode_config(config: &[(String, Vec<String>)]) -> Result<String, StorageError> {
    serde_json::to_string(config).map_err(StorageError::backend)
}

/// The configuration in the JSON column of a `what` ("room", "node").
pub(crate) fn decode_config(
    json: &str,
    what: &str,
) -> Result<Vec<(String, Vec<String>)>, StorageError> {
    serde_json::from_str(json)
        .map_err(|e| StorageError::backend(format!("corrupt {what} configuration: {e}")))
}

/// A unique violation as [`StorageError::AlreadyExists`], anything else as a backend error.
pub(crate) fn exists_or_backend(e: sqlx::Error) -> StorageError {
    if is_unique_violation(&e) {
        StorageError::AlreadyExists
    } else {
        backend(e)
    }
}

/// Runs `statement` (one statement: atomic without a transaction); [`StorageError::NotFound`]
/// if it touched no row.
pub(crate) async fn execute_found(
    statement: Query<'_, Sqlite, SqliteArguments>,
    pool: &SqlitePool,
) -> Result<(), StorageError> {
    let done = statement.execute(pool).await.map_err(backend)?;
    if done.rows_affected() == 0 {
        return Err(StorageError::NotFound);
    }
    Ok(())
}

/// In one write transaction (`BEGIN IMMEDIATE`): the id that `select_id` finds by `?1`/`?2`
/// (`service`, `name`), [`StorageError::NotFound`] if none, then the statement `on(id)`, its
/// error mapped by `error`. What the statement did.
pub(crate) async fn execute_on<'q>(
    pool: &SqlitePool,
    select_id: &'static str,
    service: &str,
    name: &str,
    on: impl FnOnce(i64) -> Query<'q, Sqlite, SqliteArguments>,
    error: fn(sqlx::Error) -> StorageError,
) -> Result<SqliteQueryResult, StorageError> {
    let mut tx = begin_write(pool).await?;
    let id: i64 = sqlx::query_scalar(select_id)
        .bind(service)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?
        .ok_or(StorageError::NotFound)?;
    let done = on(id).execute(&mut *tx).await.map_err(error)?;
    tx.commit().await.map_err(backend)?;
    Ok(done)
}

/// The row `query` reads, if any, as `from_row` maps it.
pub(crate) async fn fetch_optional_with<T>(
    query: Query<'_, Sqlite, SqliteArguments>,
    pool: &SqlitePool,
    from_row: impl Fn(&SqliteRow) -> Result<T, StorageError>,
) -> Result<Option<T>, StorageError> {
    let row = query.fetch_optional(pool).await.map_err(backend)?;
    row.as_ref().map(from_row).transpose()
}

/// The rows `query` reads, in its order, as `from_row` maps them.
pub(crate) async fn fetch_all_with<T>(
    query: Query<'_, Sqlite, SqliteArguments>,
    pool: &SqlitePool,
    from_row: impl Fn(&SqliteRow) -> Result<T, StorageError>,
) -> Result<Vec<T>, StorageError> {
    let rows = query.fetch_all(pool).await.map_err(backend)?;
    rows.iter().map(from_row).collect()
}
