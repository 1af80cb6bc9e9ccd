//! The SQL both stores run: one text per statement, written with
//! PostgreSQL's `$1` placeholders and given to SQLite as `?1` (SQLite's
//! numbered form). The two dialects differ only where the schema must:
//! the row id, the integer type, and text compared byte by byte, so that
//! ties in the report sort the same way from either store.

use std::borrow::Cow;

use super::Row;

/// Which database a statement is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `sql` with this dialect's placeholders. The texts here hold `$`
    /// only in placeholders.
    pub fn sql(self, sql: &str) -> Cow<'_, str> {
        match self {
            Self::Postgres => Cow::Borrowed(sql),
            Self::Sqlite => Cow::Owned(sql.replace('$', "?")),
        }
    }

    /// The schema, in this dialect.
    pub fn schema(self) -> String {
        let (id, int, text) = match self {
            Self::Sqlite => ("INTEGER PRIMARY KEY", "INTEGER", "TEXT"),
            // "C": byte order, as SQLite's BINARY, whatever the server's locale.
            Self::Postgres => (
                "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
                "BIGINT",
                "TEXT COLLATE \"C\"",
            ),
        };
        SCHEMA
            .replace("{id}", id)
            .replace("{int}", int)
            .replace("{text}", text)
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id           {id},
    received_us  {int}  NOT NULL,
    type         {text} NOT NULL,
    machine_id   {text} NOT NULL,
    timestamp_us {int}  NOT NULL,
    command      {text} NOT NULL,
    finished     {int}  NOT NULL,
    provider     {text},
    source_type  {text},
    ide          {text},
    desktop      {int}  NOT NULL,
    version      {text} NOT NULL,
    error        {text},
    duration_ms  {int},
    arch         {text} NOT NULL,
    os           {text} NOT NULL
);
-- A client resends a batch whose answer it did not see: the same event,
-- by the wire's EventKey (machine, microsecond, command, start or finish;
-- `Row::key`), is kept once.
CREATE UNIQUE INDEX IF NOT EXISTS events_identity
    ON events (machine_id, timestamp_us, command, finished);
CREATE INDEX IF NOT EXISTS events_time ON events (timestamp_us);
CREATE INDEX IF NOT EXISTS events_received ON events (received_us);
";

const COLUMNS: &str = "received_us, type, machine_id, timestamp_us, command, finished, \
                       provider, source_type, ide, desktop, version, error, duration_ms, arch, os";

/// The values of one row, in the order of the insert's columns.
pub const PER_ROW: usize = 15;

/// Rows per PostgreSQL insert statement: 15 000 values, under its limit
/// of 65 535 parameters (SQLite inserts one row a statement).
pub const ROWS_PER_INSERT: usize = 1_000;

/// An insert of `rows` rows in one statement; an event already stored
/// (by its unique key) is skipped, and the count of rows changed is the
/// count stored.
pub fn insert(rows: usize) -> String {
    let mut sql = format!("INSERT INTO events ({COLUMNS}) VALUES ");
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..PER_ROW {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(row * PER_ROW + column + 1).to_string());
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT DO NOTHING");
    sql
}

/// Deletes at most `$2` events received before `$1`.
pub const PRUNE: &str = "DELETE FROM events WHERE id IN \
                         (SELECT id FROM events WHERE received_us < $1 LIMIT $2)";

/// One value bound to a statement: both drivers take these.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Int(i64),
    OptInt(Option<i64>),
    Text(&'a str),
    OptText(Option<&'a str>),
}

/// SQLite and PostgreSQL both hold 64-bit signed integers.
pub fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The values of `row`, received at `received_us`, in column order.
pub fn params(row: &Row, received_us: i64) -> [Param<'_>; PER_ROW] {
    let key = row.key();
    [
        Param::Int(received_us),
        Param::Text(&row.kind),
        Param::Text(key.machine_id),
        Param::Int(int(key.timestamp)),
        Param::Text(key.command),
        Param::Int(i64::from(key.finished)),
        Param::OptText(row.provider.as_deref()),
        Param::OptText(row.source_type.as_deref()),
        Param::OptText(row.ide.as_deref()),
        Param::Int(i64::from(row.desktop)),
        Param::Text(&row.version),
        Param::OptText(row.error.as_deref()),
        Param::OptInt(row.duration_ms.map(int)),
        Param::Text(&row.arch),
        Param::Text(&row.os),
    ]
}

/// One value read back from a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
}

/// A query's answer that is not of the shape its reader expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape(pub String);

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unexpected query result: {}", self.0)
    }
}

impl std::error::Error for Shape {}

/// The cells of one result row, read by position.
pub struct Cells(pub Vec<Cell>);

impl Cells {
    fn at(&self, i: usize) -> Result<&Cell, Shape> {
        self.0.get(i).ok_or_else(|| Shape(format!("no column {i}")))
    }

    /// Column `i` as an integer (NULL, from an aggregate over no rows, as 0).
    pub fn int(&self, i: usize) -> Result<i64, Shape> {
        match self.at(i)? {
            Cell::Int(n) => Ok(*n),
            // COUNT over no rows, SUM of nothing: zero.
            Cell::Null => Ok(0),
            Cell::Text(_) => Err(Shape(format!("column {i} is text, not a number"))),
        }
    }

    /// A count: never negative.
    pub fn count(&self, i: usize) -> Result<u64, Shape> {
        Ok(u64::try_from(self.int(i)?).unwrap_or(0))
    }

    /// Column `i` as text (an integer as its digits); NULL is an error.
    pub fn text(&self, i: usize) -> Result<String, Shape> {
        match self.at(i)? {
            Cell::Text(s) => Ok(s.clone()),
            Cell::Int(n) => Ok(n.to_string()),
            Cell::Null => Err(Shape(format!("column {i} is NULL"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_insert_numbers_every_value_once_in_order() {
        let sql = insert(2);
        assert!(sql.contains("($1, $2,"), "{sql}");
        assert!(sql.contains("$15), ($16,"), "{sql}");
        assert!(sql.ends_with("$30) ON CONFLICT DO NOTHING"), "{sql}");
        assert_eq!(sql.matches('$').count(), 2 * PER_ROW);
        assert_eq!(COLUMNS.split(',').count(), PER_ROW);
        assert_eq!(params(&Row::example("devsy up", 1), 0).len(), PER_ROW);
    }

    #[test]
    fn sqlite_gets_numbered_question_marks() {
        assert_eq!(Dialect::Sqlite.sql("a < $1 LIMIT $2"), "a < ?1 LIMIT ?2");
        assert_eq!(Dialect::Postgres.sql("a < $1"), "a < $1");
        assert!(!Dialect::Sqlite.schema().contains('{'));
        assert!(Dialect::Postgres.schema().contains("COLLATE \"C\""));
    }
}
