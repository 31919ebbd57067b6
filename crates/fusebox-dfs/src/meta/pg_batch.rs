//! PostgreSQL transactions that send the statements whose results nobody reads
//! ([`Tx::exec_later`]: inserts, updates, the change log) together, in one round trip with the
//! next statement that returns something, or with the COMMIT; the BEGIN goes with the first
//! statement, and [`Tx::query_pair`]'s two statements go together. A small file's create went
//! from eight round trips to two this way, its commit from six to two: on a server each round
//! trip costs more than the statement.
//!
//! A batch is one simple query (several statements, no parameters; results come as text, read
//! as [`Cell::Literal`]), so the parameters are
//! written into the text as literals ([`inline_params`]): integers as numbers, bytes as hex
//! `bytea`, text quoted with `''` (the connection sets `standard_conforming_strings`, so a
//! backslash is an ordinary character). No value can end a literal early.

use super::postgres::first_round_trip_failed;
use super::sql::{Cell, Row, Tx, Value};
use super::MetaResult;
use crate::error::MetaError;
use postgres::{Client, SimpleQueryMessage};
use std::fmt::Write;

/// How a write transaction begins.
pub(super) const BEGIN_WRITE: &str = "BEGIN ISOLATION LEVEL READ COMMITTED";
/// How a read transaction begins: one snapshot for all its statements.
pub(super) const BEGIN_READ: &str = "START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/// A transaction on `client` whose BEGIN waits to go with its first statement.
pub(super) struct Batching<'a> {
    client: &'a mut Client,
    /// Statements waiting (the BEGIN first, until something was sent), each ending with `;`.
    later: String,
    /// Something was sent: the server may be inside the transaction.
    sent: bool,
    /// The length of the BEGIN at the start of `later`.
    begin_len: usize,
}

/// What one statement of a simple query returned: its rows and the number of rows it
/// returned or changed.
type Outcome = (Vec<Row>, u64);

impl<'a> Batching<'a> {
    /// A transaction on `client` that begins with `begin` ([`BEGIN_WRITE`], [`BEGIN_READ`]).
    pub(super) fn new(client: &'a mut Client, begin: &str) -> Batching<'a> {
        let later = format!("{begin};\n");
        Batching { client, begin_len: later.len(), later, sent: false }
    }

    /// Send what waits, then the statements `tail` (parameters written in), as one simple
    /// query; what each statement of `tail` returned. A first round trip that failed because
    /// the connection was lost ran nothing: see [`first_round_trip_failed`].
    fn round_trip(&mut self, tail: &[String]) -> MetaResult<Vec<Outcome>> {
        let mut sql = std::mem::take(&mut self.later);
        for t in tail {
            sql.push_str(t);
            sql.push_str(";\n");
        }
        let first = !std::mem::replace(&mut self.sent, true);
        let messages = self.client.simple_query(&sql).map_err(|e| first_round_trip_failed(e, first))?;
        let mut done = Vec::new();
        let mut rows = Vec::new();
        for m in messages {
            match m {
                SimpleQueryMessage::Row(r) => rows.push(Row((0..r.len())
                    .map(|i| r.get(i).map_or(Cell::Null, |v| Cell::Literal(v.to_owned())))
                    .collect())),
                SimpleQueryMessage::CommandComplete(n) => done.push((std::mem::take(&mut rows), n)),
                _ => {}
            }
        }
        let at = done
            .len()
            .checked_sub(tail.len())
            .ok_or_else(|| MetaError::Engine(format!("fewer results than statements from: {sql}")))?;
        Ok(done.split_off(at))
    }

    /// Send what waits, before a statement that cannot go with it.
    fn flush(&mut self) -> MetaResult<()> {
        if !self.later.is_empty() {
            self.round_trip(&[])?;
        }
        Ok(())
    }

    /// COMMIT, with what waits in the same round trip (nothing at all when nothing ran). An
    /// error of a waiting statement fails the commit (the transaction is then rolled back by
    /// [`Batching::abandon`]).
    pub(super) fn commit(&mut self) -> MetaResult<()> {
        if !self.sent && self.later.len() == self.begin_len {
            self.later.clear();
            return Ok(());
        }
        self.later.push_str("COMMIT");
        let sql = std::mem::take(&mut self.later);
        let first = !std::mem::replace(&mut self.sent, true);
        self.client.batch_execute(&sql).map_err(|e| first_round_trip_failed(e, first))
    }

    /// Roll back after an error (also after a failed COMMIT, where it is a no-op). A connection
    /// that cannot even do this is broken, and the pool drops it.
    pub(super) fn abandon(&mut self) {
        self.later.clear();
        if self.sent {
            if let Err(e) = self.client.batch_execute("ROLLBACK") {
                tracing::debug!("ROLLBACK failed: {e}");
            }
        }
    }

    /// The one outcome of a round trip with one statement.
    fn one(&mut self, sql: &str, params: &[Value<'_>]) -> MetaResult<Outcome> {
        let mut out = self.round_trip(&[inline_params(sql, params)?])?;
        out.pop().ok_or_else(|| MetaError::Engine(format!("no result from: {sql}")))
    }
}

impl Tx for Batching<'_> {
    fn exec(&mut self, sql: &str, params: &[Value<'_>]) -> MetaResult<u64> {
        if self.later.is_empty() {
            return Tx::exec(self.client, sql, params);
        }
        Ok(self.one(sql, params)?.1)
    }

    fn exec_later(&mut self, sql: &str, params: &[Value<'_>]) -> MetaResult<()> {
        self.later.push_str(&inline_params(sql, params)?);
        self.later.push_str(";\n");
        Ok(())
    }

    fn query(&mut self, sql: &str, params: &[Value<'_>]) -> MetaResult<Vec<Row>> {
        if self.later.is_empty() {
            return Tx::query(self.client, sql, params);
        }
        Ok(self.one(sql, params)?.0)
    }

    fn query_pair(
        &mut self, first: (&str, &[Value<'_>]), second: (&str, &[Value<'_>]),
    ) -> MetaResult<(Vec<Row>, Vec<Row>)> {
        let tail = [inline_params(first.0, first.1)?, inline_params(second.0, second.1)?];
        let mut out = self.round_trip(&tail)?.into_iter().map(|(rows, _)| rows);
        match (out.next(), out.next()) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(MetaError::Engine(format!("no result from: {}", first.0))),
        }
    }

    fn batch(&mut self, sql: &str) -> MetaResult<()> {
        self.flush()?;
        Tx::batch(self.client, sql)
    }

    fn table_names(&mut self) -> MetaResult<Vec<String>> {
        self.flush()?;
        Tx::table_names(self.client)
    }

    fn lock_inodes(&mut self, inos: &[u64]) -> MetaResult<()> {
        self.flush()?;
        Tx::lock_inodes(self.client, inos)
    }

    fn lock_renames(&mut self) -> MetaResult<()> {
        self.flush()?;
        Tx::lock_renames(self.client)
    }

    fn row_lock_clause(&self) -> &'static str {
        Tx::row_lock_clause(&*self.client)
    }
}

/// `sql` with every `$N` replaced by parameter N written as a literal.
pub(super) fn inline_params(sql: &str, params: &[Value<'_>]) -> MetaResult<String> {
    let mut out = String::with_capacity(sql.len() + 16 * params.len());
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..].bytes().take_while(u8::is_ascii_digit).count();
        let n: usize = rest[at + 1..at + 1 + digits]
            .parse()
            .map_err(|_| MetaError::Engine(format!("a '$' that is no parameter in: {sql}")))?;
        let v = n
            .checked_sub(1)
            .and_then(|i| params.get(i))
            .ok_or_else(|| MetaError::Engine(format!("no parameter ${n} for: {sql}")))?;
        match v {
            // In parentheses: `x - $1` must not become the comment `x --1`.
            Value::Int(i) if *i < 0 => write!(out, "({i})"),
            Value::Int(i) => write!(out, "{i}"),
            Value::Bytes(b) => {
                out.push_str("'\\x");
                b.iter().for_each(|byte| {
                    let _ = write!(out, "{byte:02x}");
                });
                write!(out, "'::bytea")
            }
            Value::Text(t) => write!(out, "'{}'", t.replace('\'', "''")),
        }
        .map_err(|e| MetaError::Engine(e.to_string()))?;
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_become_literals_that_cannot_escape() {
        let sql = "UPDATE t SET a = a - $1, b = $2, c = $3 WHERE d = $10 AND e = $1";
        let mut p = vec![Value::Int(-1), Value::Bytes(b"\x00'$1"), Value::Text("it's -- $2 \\")];
        p.extend((4..=10).map(|i| Value::Int(i * 11)));
        assert_eq!(
            inline_params(sql, &p).unwrap(),
            "UPDATE t SET a = a - (-1), b = '\\x00272431'::bytea, c = 'it''s -- $2 \\' WHERE d = 110 AND e = (-1)"
        );
        assert!(inline_params("SELECT $2", &[Value::Int(1)]).is_err());
        assert!(inline_params("SELECT $0", &[Value::Int(1)]).is_err());
        assert!(inline_params("SELECT $x", &[]).is_err());
    }
}
