//! What the SQL engines share: statement parameters and result rows as plain values, a
//! transaction interface each engine implements ([`Tx`]) and the way an engine runs
//! transactions ([`Engine`]). The metadata operations themselves are written once, against
//! these, in [`super::store`].
//!
//! Statements are written with PostgreSQL's numbered placeholders (`$1`, `$2`, …); the SQLite
//! engine rewrites them to `?1`, `?2`, … (the same numbering).

use super::schema::Dialect;
use super::MetaResult;
use crate::error::MetaError;

/// A statement parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// A BIGINT.
    Int(i64),
    /// A byte string (BLOB / BYTEA).
    Bytes(&'a [u8]),
    /// A string (TEXT).
    Text(&'a str),
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<u64> for Value<'_> {
    /// Inode numbers, cookies, sizes and ids stay below 2^63, the range of a BIGINT.
    fn from(v: u64) -> Self {
        Value::Int(v as i64)
    }
}

impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(v: &'a [u8]) -> Self {
        Value::Bytes(v)
    }
}

impl<'a> From<&'a Vec<u8>> for Value<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Value::Text(v)
    }
}

impl<'a> From<&'a String> for Value<'a> {
    fn from(v: &'a String) -> Self {
        Value::Text(v)
    }
}

/// The parameters of a statement: `params![a, b]` is `&[Value::from(a), Value::from(b)]`.
macro_rules! params {
    ($($v:expr),* $(,)?) => {
        &[$($crate::meta::sql::Value::from($v)),*][..]
    };
}
pub(crate) use params;

/// One column of a result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// An integer.
    Int(i64),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A string.
    Text(String),
    /// A value in PostgreSQL's text output form (a simple-query result carries no types):
    /// read as the type the caller asks for.
    Literal(String),
}

/// The value of each ASCII hexadecimal digit; 0xff for every other byte.
const HEX_VALUE: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 16 {
        t[b"0123456789abcdef"[i] as usize] = i as u8;
        t[b"0123456789ABCDEF"[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// `\x`-prefixed hexadecimal (PostgreSQL's `bytea` output) as bytes. A plain loop over a table:
/// slice bytes kept in the metadata come back this way on every read of their chunk.
fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    let hex = s.strip_prefix("\\x")?.as_bytes();
    if hex.len() % 2 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(hex.len() / 2);
    for pair in hex.chunks_exact(2) {
        let (high, low) = (HEX_VALUE[pair[0] as usize], HEX_VALUE[pair[1] as usize]);
        if (high | low) > 15 {
            return None;
        }
        out.push(high << 4 | low);
    }
    Some(out)
}

/// One result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row(pub Vec<Cell>);

impl Row {
    fn cell(&self, i: usize) -> MetaResult<&Cell> {
        self.0.get(i).ok_or_else(|| MetaError::Engine(format!("result has no column {i}")))
    }

    /// Column `i` as an integer.
    pub fn int(&self, i: usize) -> MetaResult<i64> {
        let cell = self.cell(i)?;
        let v = match cell {
            Cell::Int(v) => Some(*v),
            Cell::Literal(t) => match t.as_str() {
                "t" => Some(1),
                "f" => Some(0),
                t => t.parse().ok(),
            },
            _ => None,
        };
        v.ok_or_else(|| MetaError::Corrupt(format!("column {i} is {cell:?}, expected an integer")))
    }

    /// True when column `i` is NULL (an outer join found nothing).
    pub fn is_null(&self, i: usize) -> MetaResult<bool> {
        Ok(matches!(self.cell(i)?, Cell::Null))
    }

    /// Column `i` as a non-negative integer.
    pub fn uint(&self, i: usize) -> MetaResult<u64> {
        let v = self.int(i)?;
        u64::try_from(v).map_err(|_| MetaError::Corrupt(format!("column {i} is negative ({v})")))
    }

    /// Column `i` as a byte string.
    pub fn bytes(&self, i: usize) -> MetaResult<Vec<u8>> {
        let cell = self.cell(i)?;
        let v = match cell {
            Cell::Bytes(v) => Some(v.clone()),
            Cell::Literal(t) => hex_bytes(t),
            _ => None,
        };
        v.ok_or_else(|| MetaError::Corrupt(format!("column {i} is {cell:?}, expected bytes")))
    }

    /// Column `i` as a string.
    pub fn text(&self, i: usize) -> MetaResult<String> {
        match self.cell(i)? {
            Cell::Text(v) | Cell::Literal(v) => Ok(v.clone()),
            other => Err(MetaError::Corrupt(format!("column {i} is {other:?}, expected text"))),
        }
    }
}

/// An open transaction of an engine.
pub trait Tx {
    /// Run a statement that returns no rows; the number of rows it changed.
    fn exec(&mut self, sql: &str, params: &[Value<'_>]) -> MetaResult<u64>;
    /// Run a statement whose result nobody reads before the commit (an insert, an update):
    /// an engine may send it later, with the next statement that returns something or with
    /// the commit, and its error then fails that statement or the commit.
    fn exec_later(&mut self, sql: &str, params: &[Value<'_>]) -> MetaResult<()> {
        self.exec(sql, params).map(drop)
    }
    /// Run a query; all its rows.
    fn query(&mut self, sql: &str, params: &[Value<'_>]) -> MetaResult<Vec<Row>>;
    /// Run query `first`, then query `second`; the rows of each. An engine may send both in
    /// one round trip; `second` still reads what was committed before `first` finished (in a
    /// READ COMMITTED transaction every statement reads the newest commits), so `first` can
    /// take a lock and `second` read what the lock's previous holder wrote.
    fn query_pair(
        &mut self, first: (&str, &[Value<'_>]), second: (&str, &[Value<'_>]),
    ) -> MetaResult<(Vec<Row>, Vec<Row>)> {
        Ok((self.query(first.0, first.1)?, self.query(second.0, second.1)?))
    }
    /// Run several statements without parameters (the schema).
    fn batch(&mut self, sql: &str) -> MetaResult<()>;
    /// Names of the tables in the database (its current schema), in any order.
    fn table_names(&mut self) -> MetaResult<Vec<String>>;
    /// Lock the rows of inodes `inos` (existing ones) until the transaction ends, waiting for
    /// other clients' transactions that hold them.
    fn lock_inodes(&mut self, inos: &[u64]) -> MetaResult<()>;
    /// Take the lock that moves between directories hold until their transaction ends.
    fn lock_renames(&mut self) -> MetaResult<()>;
    /// What a `SELECT` of inode rows ends with to lock them as [`Tx::lock_inodes`] does, so
    /// that locking and reading are one statement: ` FOR UPDATE` on a server; empty where a
    /// write transaction holds the whole database (SQLite).
    fn row_lock_clause(&self) -> &'static str {
        ""
    }
    /// Record that this transaction changes something other mounts may have cached; the
    /// store publishes the changes with the transaction ([`super::coord`]). Engines' own
    /// transactions ignore it.
    fn note(&mut self, _change: super::coord::Change) {}
}

/// A transaction that collects the [`Tx::note`]s of the statements run through it.
pub struct Noting<'a> {
    /// The engine's transaction.
    pub tx: &'a mut dyn Tx,
    /// What was noted, in order.
    pub changes: Vec<super::coord::Change>,
}

impl Tx for Noting<'_> {
    fn exec(&mut self, sql: &str, params: &[Value<'_>]) -> MetaResult<u64> {
        self.tx.exec(sql, params)
    }
    fn exec_later(&mut self, sql: &str, params: &[Value<'_>]) -> MetaResult<()> {
        self.tx.exec_later(sql, params)
    }
    fn query(&mut self, sql: &str, params: &[Value<'_>]) -> MetaResult<Vec<Row>> {
        self.tx.query(sql, params)
    }
    fn query_pair(
        &mut self, first: (&str, &[Value<'_>]), second: (&str, &[Value<'_>]),
    ) -> MetaResult<(Vec<Row>, Vec<Row>)> {
        self.tx.query_pair(first, second)
    }
    fn batch(&mut self, sql: &str) -> MetaResult<()> {
        self.tx.batch(sql)
    }
    fn table_names(&mut self) -> MetaResult<Vec<String>> {
        self.tx.table_names()
    }
    fn lock_inodes(&mut self, inos: &[u64]) -> MetaResult<()> {
        self.tx.lock_inodes(inos)
    }
    fn lock_renames(&mut self) -> MetaResult<()> {
        self.tx.lock_renames()
    }
    fn row_lock_clause(&self) -> &'static str {
        self.tx.row_lock_clause()
    }
    fn note(&mut self, change: super::coord::Change) {
        self.changes.push(change)
    }
}

impl dyn Tx + '_ {
    /// The first row of a query, if any.
    pub fn query_opt(&mut self, sql: &str, params: &[Value<'_>]) -> MetaResult<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The first row of a query that always returns one.
    pub fn query_one(&mut self, sql: &str, params: &[Value<'_>]) -> MetaResult<Row> {
        self.query_opt(sql, params)?.ok_or_else(|| MetaError::Engine(format!("no row from: {sql}")))
    }
}

/// A database that runs transactions.
pub trait Engine: Send + Sync + 'static {
    /// The SQL dialect (for the schema).
    const DIALECT: Dialect;

    /// The database as named in messages (a path, or a URL without its password).
    fn describe(&self) -> &str;

    /// True for an embedded database (no network between the daemon and its data).
    const LOCAL: bool;

    /// Run `f` in a write transaction: committed when `f` succeeds, rolled back otherwise.
    /// An engine may run `f` again when the transaction conflicted with another client's.
    fn write<T>(&self, f: &mut dyn FnMut(&mut dyn Tx) -> MetaResult<T>) -> MetaResult<T>;

    /// Like [`Engine::write`], and the transaction (with every one committed before it) is on
    /// stable storage when this returns. [`Engine::write`] may leave that to the next durable
    /// write or [`Engine::sync`] (SQLite); a server engine's commits are as durable as its
    /// configuration makes them.
    fn write_durable<T>(&self, f: &mut dyn FnMut(&mut dyn Tx) -> MetaResult<T>) -> MetaResult<T> {
        self.write(f)
    }

    /// Put every committed transaction on stable storage.
    fn sync(&self) -> MetaResult<()> {
        Ok(())
    }

    /// Run `f` in a read-only transaction (one consistent snapshot).
    fn read<T>(&self, f: &mut dyn FnMut(&mut dyn Tx) -> MetaResult<T>) -> MetaResult<T>;

    /// Run `f`, which issues one read statement: a single statement sees one snapshot on its
    /// own, so an engine whose BEGIN and COMMIT are round trips to a server runs it without
    /// them (a getattr: one round trip instead of three).
    fn read_one<T>(&self, f: &mut dyn FnMut(&mut dyn Tx) -> MetaResult<T>) -> MetaResult<T> {
        self.read(f)
    }

    /// Block until another client (a session other than `own_sid`) may have published
    /// changes, or `timeout` passed. Without a way to be told (SQLite), a sleep: the caller
    /// polls the change log.
    fn wait_for_changes(&self, timeout: std::time::Duration, _own_sid: u64) {
        std::thread::sleep(timeout)
    }
}

/// `sql` with `$N` placeholders written as `?N` (SQLite's numbered form).
pub fn question_marks(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_results_read_as_the_type_asked_for() {
        let lit = |s: &str| Cell::Literal(s.into());
        let r = Row(vec![
            lit("-42"),
            lit("t"),
            lit("\\x00ff41Ab"),
            lit("name"),
            Cell::Null,
            lit("\\x0"),
            lit("\\x0g"),
        ]);
        assert_eq!((r.int(0).unwrap(), r.int(1).unwrap()), (-42, 1));
        assert_eq!(r.bytes(2).unwrap(), b"\0\xffA\xab");
        assert_eq!(r.text(3).unwrap(), "name");
        assert!(r.is_null(4).unwrap() && !r.is_null(3).unwrap());
        assert!(r.int(3).is_err() && r.bytes(3).is_err(), "not a number, not bytes");
        assert!(r.bytes(5).is_err() && r.bytes(6).is_err(), "odd length, not a digit");
    }

    #[test]
    fn placeholders_keep_their_numbers() {
        assert_eq!(question_marks("a = $1 AND b = $12, '$'"), "a = ?1 AND b = ?12, '$'");
    }

    #[test]
    fn rows_convert_or_say_why_not() {
        let r = Row(vec![Cell::Int(-1), Cell::Bytes(b"x".to_vec()), Cell::Text("t".into()), Cell::Null]);
        assert_eq!(r.int(0).unwrap(), -1);
        assert!(r.uint(0).unwrap_err().to_string().contains("negative"));
        assert_eq!(r.bytes(1).unwrap(), b"x");
        assert_eq!(r.text(2).unwrap(), "t");
        assert!(r.int(3).is_err() && r.int(9).is_err());
        let p: &[Value] = params![1u64, &b"n"[..], "k"];
        assert_eq!(p, [Value::Int(1), Value::Bytes(b"n"), Value::Text("k")]);
    }
}
