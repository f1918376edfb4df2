//! [`PubsubStore`] on SQLite (tables `pubsub_nodes`, `pubsub_items`, `pubsub_affiliations`,
//! `pubsub_subscriptions`, migration `0014_pubsub.sql`).
//!
//! A node's configuration is one JSON column (`[["var", ["value", …]], …]`): the store never
//! looks inside it, and it is always read and written whole.

use async_trait::async_trait;
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteQueryResult, SqliteRow};
use sqlx::{Row as _, Sqlite, SqlitePool};
use starling_storage::{
    NodeConfig, NodeKey, PubsubStore, StorageError, StoredItem, StoredNode, StoredSubscription,
};

use crate::accounts::{account_id, backend, begin_write};
use crate::offline::to_u64;
use crate::shared::{
    decode_config, encode_config, execute_found, execute_on, exists_or_backend, fetch_all_with,
    fetch_optional_with,
};

pub(crate) struct SqlitePubsubStore {
    pool: SqlitePool,
}

impl SqlitePubsubStore {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

/// A query reading the columns [`node_from_row`] reads, followed by `$tail`. A macro: sqlx
/// takes only `&'static str` as SQL.
macro_rules! select_node {
    ($tail:literal) => {
        concat!(
            "SELECT n.service, n.node, a.localpart, a.domain, n.config, n.created_at ",
            "FROM pubsub_nodes n LEFT JOIN accounts a ON a.id = n.owner_id ",
            $tail
        )
    };
}

/// A query reading the columns [`item_from_row`] reads, of the node `?1`/`?2` (service,
/// node), followed by `$tail`.
macro_rules! select_items {
    ($tail:literal) => {
        concat!(
            "SELECT i.item_id, i.publisher, i.payload, i.published_at FROM pubsub_items i ",
            "JOIN pubsub_nodes n ON n.id = i.node_id WHERE n.service = ?1 AND n.node = ?2 ",
            $tail
        )
    };
}

fn node_from_row(row: &SqliteRow) -> Result<StoredNode, StorageError> {
    let owner_local: Option<String> = row.try_get(2).map_err(backend)?;
    let owner_domain: Option<String> = row.try_get(3).map_err(backend)?;
    let config: String = row.try_get(4).map_err(backend)?;
    Ok(StoredNode {
        key: NodeKey {
            service: row.try_get(0).map_err(backend)?,
            node: row.try_get(1).map_err(backend)?,
        },
        owner: owner_local.zip(owner_domain),
        config: decode_config(&config, "node")?,
        created_at: row.try_get(5).map_err(backend)?,
    })
}

fn item_from_row(row: &SqliteRow) -> Result<StoredItem, StorageError> {
    Ok(StoredItem {
        id: row.try_get(0).map_err(backend)?,
        publisher: row.try_get(1).map_err(backend)?,
        payload: row.try_get(2).map_err(backend)?,
        published_at: row.try_get(3).map_err(backend)?,
    })
}

/// A bound as SQLite's signed integer; `None` is `-1`, which `LIMIT` reads as no limit.
fn limit(bound: Option<u64>) -> i64 {
    bound.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX))
}

/// The statement `on(id)` on the node with that id, in one write transaction
/// ([`StorageError::NotFound`] if there is none); what it did.
async fn on_node<'q>(
    pool: &SqlitePool,
    key: &NodeKey,
    on: impl FnOnce(i64) -> Query<'q, Sqlite, SqliteArguments>,
) -> Result<SqliteQueryResult, StorageError> {
    let id = "SELECT id FROM pubsub_nodes WHERE service = ?1 AND node = ?2";
    execute_on(pool, id, &key.service, &key.node, on, backend).await
}

fn count(done: &SqliteQueryResult, what: &str) -> Result<u64, StorageError> {
    to_u64(
        i64::try_from(done.rows_affected()).unwrap_or(i64::MAX),
        what,
    )
}

#[async_trait]
impl PubsubStore for SqlitePubsubStore {
    async fn create_node(
        &self,
        key: &NodeKey,
        owner: Option<(&str, &str)>,
        config: &NodeConfig,
        created_at: i64,
    ) -> Result<(), StorageError> {
        let config = encode_config(config)?;
        let mut tx = begin_write(&self.pool).await?;
        let owner = match owner {
            Some((l, d)) => Some(account_id(&mut tx, l, d).await?),
            None => None,
        };
        sqlx::query(
            "INSERT INTO pubsub_nodes (service, node, owner_id, config, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(&key.service)
        .bind(&key.node)
        .bind(owner)
        .bind(config)
        .bind(created_at)
        .execute(&mut *tx)
        .await
        .map_err(exists_or_backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn node(&self, key: &NodeKey) -> Result<Option<StoredNode>, StorageError> {
        let query = sqlx::query(select_node!("WHERE n.service = ?1 AND n.node = ?2"))
            .bind(&key.service)
            .bind(&key.node);
        fetch_optional_with(query, &self.pool, node_from_row).await
    }

    async fn nodes(&self, service: &str) -> Result<Vec<StoredNode>, StorageError> {
        let query = sqlx::query(select_node!("WHERE n.service = ?1 ORDER BY n.node")).bind(service);
        fetch_all_with(query, &self.pool, node_from_row).await
    }

    async fn set_config(&self, key: &NodeKey, config: &NodeConfig) -> Result<(), StorageError> {
        // One statement: atomic without a transaction.
        let update =
            sqlx::query("UPDATE pubsub_nodes SET config = ?3 WHERE service = ?1 AND node = ?2")
                .bind(&key.service)
                .bind(&key.node)
                .bind(encode_config(config)?);
        execute_found(update, &self.pool).await
    }

    async fn delete_node(&self, key: &NodeKey) -> Result<(), StorageError> {
        // One statement; the cascade deletes the node's rows in the same statement.
        let delete = sqlx::query("DELETE FROM pubsub_nodes WHERE service = ?1 AND node = ?2")
            .bind(&key.service)
            .bind(&key.node);
        execute_found(delete, &self.pool).await
    }

    async fn publish(
        &self,
        key: &NodeKey,
        item: &StoredItem,
        max_items: Option<u64>,
    ) -> Result<u64, StorageError> {
        // BEGIN IMMEDIATE: the replacement and the bound see no other writer in between. Two
        // statements, each naming the node by its key (a publication is the hot path: every
        // statement is a round trip to the database's thread).
        let mut tx = begin_write(&self.pool).await?;
        // REPLACE deletes an item with the same id and inserts anew, so that it takes the
        // newest seq.
        let inserted = sqlx::query(
            "INSERT OR REPLACE INTO pubsub_items (node_id, item_id, publisher, payload, published_at) \
             SELECT id, ?3, ?4, ?5, ?6 FROM pubsub_nodes WHERE service = ?1 AND node = ?2",
        )
        .bind(&key.service)
        .bind(&key.node)
        .bind(&item.id)
        .bind(item.publisher.as_deref())
        .bind(&item.payload)
        .bind(item.published_at)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if inserted.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        let evicted = match max_items {
            None => 0,
            Some(max) => {
                // Everything from the (max+1)-th newest down; nothing if there are fewer (the
                // subquery is NULL).
                let done = sqlx::query(
                    "DELETE FROM pubsub_items WHERE node_id = \
                     (SELECT id FROM pubsub_nodes WHERE service = ?1 AND node = ?2) AND seq <= \
                     (SELECT i.seq FROM pubsub_items i JOIN pubsub_nodes n ON n.id = i.node_id \
                      WHERE n.service = ?1 AND n.node = ?2 ORDER BY i.seq DESC LIMIT 1 OFFSET ?3)",
                )
                .bind(&key.service)
                .bind(&key.node)
                .bind(limit(Some(max)))
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
                count(&done, "evicted items")?
            }
        };
        tx.commit().await.map_err(backend)?;
        Ok(evicted)
    }

    async fn retract(&self, key: &NodeKey, item_id: &str) -> Result<bool, StorageError> {
        let delete = |node| {
            sqlx::query("DELETE FROM pubsub_items WHERE node_id = ?1 AND item_id = ?2")
                .bind(node)
                .bind(item_id)
        };
        let done = on_node(&self.pool, key, delete).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn items(
        &self,
        key: &NodeKey,
        max: Option<u64>,
    ) -> Result<Vec<StoredItem>, StorageError> {
        let query = sqlx::query(select_items!("ORDER BY i.seq DESC LIMIT ?3"))
            .bind(&key.service)
            .bind(&key.node)
            .bind(limit(max));
        fetch_all_with(query, &self.pool, item_from_row).await
    }

    async fn items_by_id(
        &self,
        key: &NodeKey,
        ids: &[String],
    ) -> Result<Vec<StoredItem>, StorageError> {
        // One read transaction: every look-up sees the same snapshot.
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let mut items = Vec::with_capacity(ids.len());
        for id in ids {
            let row = sqlx::query(select_items!("AND i.item_id = ?3"))
                .bind(&key.service)
                .bind(&key.node)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
            if let Some(row) = row {
                items.push(item_from_row(&row)?);
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(items)
    }

    async fn last_item(&self, key: &NodeKey) -> Result<Option<StoredItem>, StorageError> {
        let query = sqlx::query(select_items!("ORDER BY i.seq DESC LIMIT 1"))
            .bind(&key.service)
            .bind(&key.node);
        fetch_optional_with(query, &self.pool, item_from_row).await
    }

    async fn purge(&self, key: &NodeKey) -> Result<u64, StorageError> {
        let delete = |node| sqlx::query("DELETE FROM pubsub_items WHERE node_id = ?1").bind(node);
        let done = on_node(&self.pool, key, delete).await?;
        count(&done, "purged items")
    }

    async fn set_affiliation(
        &self,
        key: &NodeKey,
        jid: &str,
        affiliation: Option<&str>,
    ) -> Result<(), StorageError> {
        let write = |node| match affiliation {
            Some(affiliation) => sqlx::query(
                "INSERT INTO pubsub_affiliations (node_id, jid, affiliation) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (node_id, jid) DO UPDATE SET affiliation = excluded.affiliation",
            )
            .bind(node)
            .bind(jid)
            .bind(affiliation),
            None => sqlx::query("DELETE FROM pubsub_affiliations WHERE node_id = ?1 AND jid = ?2")
                .bind(node)
                .bind(jid),
        };
        on_node(&self.pool, key, write).await?;
        Ok(())
    }

    async fn affiliations(&self, key: &NodeKey) -> Result<Vec<(String, String)>, StorageError> {
        sqlx::query_as(
            "SELECT f.jid, f.affiliation FROM pubsub_affiliations f \
             JOIN pubsub_nodes n ON n.id = f.node_id \
             WHERE n.service = ?1 AND n.node = ?2 ORDER BY f.jid",
        )
        .bind(&key.service)
        .bind(&key.node)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)
    }

    async fn affiliation(&self, key: &NodeKey, jid: &str) -> Result<Option<String>, StorageError> {
        sqlx::query_scalar(
            "SELECT f.affiliation FROM pubsub_affiliations f \
             JOIN pubsub_nodes n ON n.id = f.node_id \
             WHERE n.service = ?1 AND n.node = ?2 AND f.jid = ?3",
        )
        .bind(&key.service)
        .bind(&key.node)
        .bind(jid)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)
    }

    async fn subscribe(
        &self,
        key: &NodeKey,
        subscription: &StoredSubscription,
    ) -> Result<(), StorageError> {
        let upsert = |node| {
            sqlx::query(
                "INSERT INTO pubsub_subscriptions (node_id, jid, subid, state) \
                 VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (node_id, jid, subid) DO UPDATE SET state = excluded.state",
            )
            .bind(node)
            .bind(&subscription.jid)
            .bind(&subscription.subid)
            .bind(&subscription.state)
        };
        on_node(&self.pool, key, upsert).await?;
        Ok(())
    }

    async fn unsubscribe(
        &self,
        key: &NodeKey,
        jid: &str,
        subid: Option<&str>,
    ) -> Result<u64, StorageError> {
        // `?3 IS NULL`: every subscription of the JID.
        let delete = |node| {
            sqlx::query(
                "DELETE FROM pubsub_subscriptions \
                 WHERE node_id = ?1 AND jid = ?2 AND (?3 IS NULL OR subid = ?3)",
            )
            .bind(node)
            .bind(jid)
            .bind(subid)
        };
        let done = on_node(&self.pool, key, delete).await?;
        count(&done, "removed subscriptions")
    }

    async fn subscriptions(&self, key: &NodeKey) -> Result<Vec<StoredSubscription>, StorageError> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT s.jid, s.subid, s.state FROM pubsub_subscriptions s \
             JOIN pubsub_nodes n ON n.id = s.node_id \
             WHERE n.service = ?1 AND n.node = ?2 ORDER BY s.jid, s.subid",
        )
        .bind(&key.service)
        .bind(&key.node)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(jid, subid, state)| StoredSubscription { jid, subid, state })
            .collect())
    }

    async fn subscriptions_of(
        &self,
        service: Option<&str>,
        jid: &str,
    ) -> Result<Vec<(NodeKey, StoredSubscription)>, StorageError> {
        let rows: Vec<(String, String, String, String, String)> = sqlx::query_as(
            "SELECT n.service, n.node, s.jid, s.subid, s.state FROM pubsub_subscriptions s \
             JOIN pubsub_nodes n ON n.id = s.node_id \
             WHERE s.jid = ?1 AND (?2 IS NULL OR n.service = ?2) \
             ORDER BY n.service, n.node, s.subid",
        )
        .bind(jid)
        .bind(service)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(service, node, jid, subid, state)| {
                (
                    NodeKey { service, node },
                    StoredSubscription { jid, subid, state },
                )
            })
            .collect())
    }

    async fn node_count(&self, service: &str) -> Result<u64, StorageError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pubsub_nodes WHERE service = ?1")
            .bind(service)
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        to_u64(n, "node count")
    }

    async fn item_count(&self, key: &NodeKey) -> Result<u64, StorageError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pubsub_items i JOIN pubsub_nodes n ON n.id = i.node_id \
             WHERE n.service = ?1 AND n.node = ?2",
        )
        .bind(&key.service)
        .bind(&key.node)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        to_u64(n, "item count")
    }
}
