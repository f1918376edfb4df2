//! Multi-row `INSERT` statements for the bulk methods
//! ([`starling_storage::AccountStore::create_accounts`],
//! [`starling_storage::RosterStore::insert_many`]).
//!
//! One statement per row costs a round trip to sqlx's connection worker per
//! row; with about a hundred rows per statement a 500,000-row import is
//! about 5,000 statement executions. Every full chunk uses the same SQL text, so sqlx's per-connection
//! statement cache prepares it once and reuses it; only a final partial chunk
//! gets a statement of its own.

use std::sync::Arc;

use sqlx::AssertSqlSafe;

/// Bound parameters per statement: SQLite's historical
/// `SQLITE_MAX_VARIABLE_NUMBER` (newer builds allow 32766), so any build
/// accepts the statements.
const MAX_PARAMS: usize = 999;

/// Rows in each full chunk of a `columns`-column insert (at least 1).
pub(crate) fn rows_per_statement(columns: usize) -> usize {
    (MAX_PARAMS / columns.max(1)).max(1)
}

/// `{head} VALUES (?, …), (?, …) …`: `rows` groups of `columns` anonymous
/// parameters, bound in order.
pub(crate) fn values_sql(head: &str, columns: usize, rows: usize) -> String {
    let group = format!("({})", vec!["?"; columns].join(", "));
    let mut sql = String::with_capacity(head.len() + 8 + rows * (group.len() + 2));
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&group);
    }
    sql
}

/// The SQL for each chunk of a chunked insert: the full-chunk text is built
/// once and handed out again (so it is the same statement for sqlx's cache).
///
/// The text is built at run time, hence sqlx's [`AssertSqlSafe`]: it holds
/// only a constant head and `?` placeholders, never a value.
pub(crate) struct ChunkSql {
    head: &'static str,
    tail: &'static str,
    columns: usize,
    full_rows: usize,
    full: Arc<str>,
}

impl ChunkSql {
    pub(crate) fn new(head: &'static str, columns: usize) -> Self {
        Self::with_tail(head, "", columns)
    }

    /// `{head} VALUES (?, …), … {tail}`: for a `VALUES` list inside a larger statement (a
    /// common table expression joined to another table).
    pub(crate) fn with_tail(head: &'static str, tail: &'static str, columns: usize) -> Self {
        let full_rows = rows_per_statement(columns);
        Self {
            head,
            tail,
            columns,
            full_rows,
            full: (values_sql(head, columns, full_rows) + tail).into(),
        }
    }

    /// Rows per full chunk.
    pub(crate) fn rows(&self) -> usize {
        self.full_rows
    }

    /// The SQL for a chunk of `rows` rows (`rows <= self.rows()`).
    pub(crate) fn for_rows(&self, rows: usize) -> AssertSqlSafe<Arc<str>> {
        if rows == self.full_rows {
            AssertSqlSafe(Arc::clone(&self.full))
        } else {
            AssertSqlSafe((values_sql(self.head, self.columns, rows) + self.tail).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements() {
        assert_eq!(
            values_sql("INSERT INTO t (a, b)", 2, 3),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?)"
        );
        assert_eq!(rows_per_statement(9), 111);
        assert_eq!(rows_per_statement(6), 166);
        assert_eq!(rows_per_statement(2000), 1);
        let sql = ChunkSql::new("INSERT INTO t (a)", 1);
        assert_eq!(sql.rows(), 999);
        assert_eq!(&*sql.for_rows(2).0, "INSERT INTO t (a) VALUES (?), (?)");
        assert!(Arc::ptr_eq(&sql.for_rows(999).0, &sql.for_rows(999).0));
    }
}
