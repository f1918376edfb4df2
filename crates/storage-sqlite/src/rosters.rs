//! [`RosterStore`] on SQLite (tables `roster_items`, `roster_groups` and
//! `roster_versions`, migrations `0002_roster.sql`, `0003_roster_hidden.sql`).
//!
//! [`RosterStore::insert_many`] writes the same rows as
//! [`RosterStore::put_item`], with multi-row statements ([`crate::bulk`]) in
//! one transaction and one version bump per non-empty entry.

use async_trait::async_trait;
use sqlx::{Sqlite, SqlitePool, Transaction};
use starling_storage::{
    NewRoster, RosterCounts, RosterItem, RosterStore, StorageError, Subscription,
    check_distinct_groups,
};

use crate::accounts::{account_id, backend, begin_write, is_unique_violation};
use crate::bulk::ChunkSql;

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>;

/// Binds one item's columns, in the order (account_id, jid, name, subscription, ask_out,
/// pending_in, preapproved, pending_in_stanza, hidden) that both inserts list.
fn bind_item<'q>(query: SqliteQuery<'q>, account: i64, item: &'q RosterItem) -> SqliteQuery<'q> {
    query
        .bind(account)
        .bind(item.jid.as_str())
        .bind(item.name.as_deref())
        .bind(item.subscription.as_str())
        .bind(item.ask_out)
        .bind(item.pending_in)
        .bind(item.preapproved)
        .bind(item.pending_in_stanza.as_deref())
        .bind(item.hidden)
}

/// Items in `roster_items`, their groups in `roster_groups`, the per-account
/// version counter in `roster_versions`.
pub(crate) struct SqliteRosterStore {
    pool: SqlitePool,
}

impl SqliteRosterStore {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

/// `roster_items` columns after `jid`, in this order.
type ItemRow = (
    String,
    Option<String>,
    String,
    bool,
    bool,
    bool,
    Option<String>,
    bool,
);

/// The `SELECT` list matching [`ItemRow`] (a macro so that queries stay
/// `&'static str` literals via `concat!`).
macro_rules! item_columns {
    () => {
        "r.jid, r.name, r.subscription, r.ask_out, r.pending_in, r.preapproved, \
         r.pending_in_stanza, r.hidden"
    };
}

fn to_item(row: ItemRow) -> Result<RosterItem, StorageError> {
    let (jid, name, subscription, ask_out, pending_in, preapproved, pending_in_stanza, hidden) =
        row;
    // The schema's CHECK keeps this valid; a failure means a corrupt file.
    let subscription = Subscription::from_name(&subscription).ok_or_else(|| {
        StorageError::backend(format!("corrupt roster row: subscription {subscription:?}"))
    })?;
    Ok(RosterItem {
        jid,
        name,
        subscription,
        ask_out,
        pending_in,
        preapproved,
        groups: Vec::new(),
        pending_in_stanza,
        hidden,
    })
}

fn to_version(version: i64) -> Result<u64, StorageError> {
    u64::try_from(version)
        .map_err(|_| StorageError::backend(format!("corrupt roster version {version}")))
}

/// Increments the account's roster version (a missing row is version 0) and
/// returns the new value. RFC 6121 §2.6: any change yields a new version.
async fn bump_version(
    tx: &mut Transaction<'static, Sqlite>,
    account_id: i64,
) -> Result<u64, StorageError> {
    let version: i64 = sqlx::query_scalar(
        "INSERT INTO roster_versions (account_id, version) VALUES (?1, 1) \
         ON CONFLICT (account_id) DO UPDATE SET version = version + 1 \
         RETURNING version",
    )
    .bind(account_id)
    .fetch_one(&mut **tx)
    .await
    .map_err(backend)?;
    to_version(version)
}

#[async_trait]
impl RosterStore for SqliteRosterStore {
    async fn items(&self, localpart: &str, domain: &str) -> Result<Vec<RosterItem>, StorageError> {
        // One read transaction: both queries see the same snapshot.
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // ORDER BY uses the BINARY collation: memcmp on UTF-8, the same order
        // as Rust's `str` comparison.
        let rows: Vec<ItemRow> = sqlx::query_as(concat!(
            "SELECT ",
            item_columns!(),
            " FROM roster_items r JOIN accounts a ON a.id = r.account_id \
             WHERE a.domain = ?1 AND a.localpart = ?2 ORDER BY r.jid"
        ))
        .bind(domain)
        .bind(localpart)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        let groups: Vec<(String, String)> = sqlx::query_as(
            "SELECT g.jid, g.name FROM roster_groups g JOIN accounts a ON a.id = g.account_id \
             WHERE a.domain = ?1 AND a.localpart = ?2 ORDER BY g.jid, g.position",
        )
        .bind(domain)
        .bind(localpart)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;

        let mut items = rows
            .into_iter()
            .map(to_item)
            .collect::<Result<Vec<_>, _>>()?;
        // Both lists are sorted by jid: merge.
        let mut groups = groups.into_iter().peekable();
        for item in &mut items {
            while let Some((jid, _)) = groups.peek() {
                if *jid < item.jid {
                    // The foreign key makes this impossible; skip defensively.
                    groups.next();
                } else if *jid == item.jid {
                    if let Some((_, name)) = groups.next() {
                        item.groups.push(name);
                    }
                } else {
                    break;
                }
            }
        }
        Ok(items)
    }

    async fn item(
        &self,
        localpart: &str,
        domain: &str,
        jid: &str,
    ) -> Result<Option<RosterItem>, StorageError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let row: Option<ItemRow> = sqlx::query_as(concat!(
            "SELECT ",
            item_columns!(),
            " FROM roster_items r JOIN accounts a ON a.id = r.account_id \
             WHERE a.domain = ?1 AND a.localpart = ?2 AND r.jid = ?3"
        ))
        .bind(domain)
        .bind(localpart)
        .bind(jid)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let groups: Vec<String> = sqlx::query_scalar(
            "SELECT g.name FROM roster_groups g JOIN accounts a ON a.id = g.account_id \
             WHERE a.domain = ?1 AND a.localpart = ?2 AND g.jid = ?3 ORDER BY g.position",
        )
        .bind(domain)
        .bind(localpart)
        .bind(jid)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        let mut item = to_item(row)?;
        item.groups = groups;
        Ok(Some(item))
    }

    async fn put_item(
        &self,
        localpart: &str,
        domain: &str,
        item: &RosterItem,
    ) -> Result<u64, StorageError> {
        check_distinct_groups(&item.groups)?;
        let mut tx = begin_write(&self.pool).await?;
        // Dropping `tx` on any early return rolls it back.
        let id = account_id(&mut tx, localpart, domain).await?;
        // An upsert, not INSERT OR REPLACE: REPLACE's implicit delete would
        // only cascade to the groups with recursive triggers on.
        bind_item(
            sqlx::query(
                "INSERT INTO roster_items \
             (account_id, jid, name, subscription, ask_out, pending_in, preapproved, \
              pending_in_stanza, hidden) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (account_id, jid) DO UPDATE SET \
             name = excluded.name, subscription = excluded.subscription, \
             ask_out = excluded.ask_out, pending_in = excluded.pending_in, \
             preapproved = excluded.preapproved, \
             pending_in_stanza = excluded.pending_in_stanza, hidden = excluded.hidden",
            ),
            id,
            item,
        )
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query("DELETE FROM roster_groups WHERE account_id = ?1 AND jid = ?2")
            .bind(id)
            .bind(item.jid.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        for (position, name) in item.groups.iter().enumerate() {
            let position = i64::try_from(position)
                .map_err(|_| StorageError::backend("too many roster groups"))?;
            sqlx::query(
                "INSERT INTO roster_groups (account_id, jid, position, name) \
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .bind(id)
            .bind(item.jid.as_str())
            .bind(position)
            .bind(name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        let version = bump_version(&mut tx, id).await?;
        tx.commit().await.map_err(backend)?;
        Ok(version)
    }

    async fn remove_item(
        &self,
        localpart: &str,
        domain: &str,
        jid: &str,
    ) -> Result<Option<u64>, StorageError> {
        let mut tx = begin_write(&self.pool).await?;
        let id = account_id(&mut tx, localpart, domain).await?;
        // The item's groups go by ON DELETE CASCADE.
        let done = sqlx::query("DELETE FROM roster_items WHERE account_id = ?1 AND jid = ?2")
            .bind(id)
            .bind(jid)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if done.rows_affected() == 0 {
            // Nothing changed, so the version stays (rollback on drop).
            return Ok(None);
        }
        let version = bump_version(&mut tx, id).await?;
        tx.commit().await.map_err(backend)?;
        Ok(Some(version))
    }

    async fn insert_many(&self, rosters: &[NewRoster<'_>]) -> Result<(), StorageError> {
        for r in rosters {
            for item in r.items {
                check_distinct_groups(&item.groups)?;
            }
        }
        if rosters.is_empty() {
            return Ok(());
        }
        // One transaction, one commit. Dropping `tx` on any early return rolls
        // it back, so a failure anywhere leaves every roster as it was.
        let mut tx = begin_write(&self.pool).await?;
        let mut ids = Vec::with_capacity(rosters.len());
        for r in rosters {
            ids.push(account_id(&mut tx, r.localpart, r.domain).await?);
        }

        // Items of all entries in multi-row statements (chunks may span
        // accounts). A plain INSERT: an item already on the roster, or twice
        // in the batch, violates the primary key (account_id, jid).
        let items: Vec<(i64, &RosterItem)> = ids
            .iter()
            .zip(rosters)
            .flat_map(|(&id, r)| r.items.iter().map(move |item| (id, item)))
            .collect();
        let sql = ChunkSql::new(
            "INSERT INTO roster_items \
             (account_id, jid, name, subscription, ask_out, pending_in, preapproved, \
              pending_in_stanza, hidden)",
            9,
        );
        for chunk in items.chunks(sql.rows()) {
            let mut query = sqlx::query(sql.for_rows(chunk.len()));
            for (id, item) in chunk {
                query = bind_item(query, *id, item);
            }
            query.execute(&mut *tx).await.map_err(|e| {
                if is_unique_violation(&e) {
                    StorageError::AlreadyExists
                } else {
                    backend(e)
                }
            })?;
        }

        // Their groups (the items are new, so there are no old groups to
        // clear; duplicates were rejected above).
        let mut groups = Vec::new();
        for (id, item) in &items {
            for (position, name) in item.groups.iter().enumerate() {
                let position = i64::try_from(position)
                    .map_err(|_| StorageError::backend("too many roster groups"))?;
                groups.push((*id, item.jid.as_str(), position, name.as_str()));
            }
        }
        let sql = ChunkSql::new(
            "INSERT INTO roster_groups (account_id, jid, position, name)",
            4,
        );
        for chunk in groups.chunks(sql.rows()) {
            let mut query = sqlx::query(sql.for_rows(chunk.len()));
            for (id, jid, position, name) in chunk {
                query = query.bind(*id).bind(*jid).bind(*position).bind(*name);
            }
            query.execute(&mut *tx).await.map_err(backend)?;
        }

        // One new version per non-empty entry (RFC 6121 §2.6).
        for (&id, r) in ids.iter().zip(rosters) {
            if !r.items.is_empty() {
                bump_version(&mut tx, id).await?;
            }
        }
        tx.commit().await.map_err(backend)
    }

    async fn version(&self, localpart: &str, domain: &str) -> Result<u64, StorageError> {
        let version: Option<i64> = sqlx::query_scalar(
            "SELECT v.version FROM roster_versions v JOIN accounts a ON a.id = v.account_id \
             WHERE a.domain = ?1 AND a.localpart = ?2",
        )
        .bind(domain)
        .bind(localpart)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        version.map_or(Ok(0), to_version)
    }

    async fn counts(&self, localpart: &str, domain: &str) -> Result<RosterCounts, StorageError> {
        // One pass over the account's rows (the primary key's (account_id, …) prefix).
        let (visible, hidden): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(r.hidden = 0), 0), COALESCE(SUM(r.hidden = 1), 0) \
             FROM roster_items r JOIN accounts a ON a.id = r.account_id \
             WHERE a.domain = ?1 AND a.localpart = ?2",
        )
        .bind(domain)
        .bind(localpart)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(RosterCounts {
            visible: crate::offline::to_u64(visible, "roster count")?,
            hidden: crate::offline::to_u64(hidden, "roster count")?,
        })
    }
}
