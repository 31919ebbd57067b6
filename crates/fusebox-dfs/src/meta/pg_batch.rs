//! PostgreSQL write transactions that send the statements whose results nobody reads
//! ([`Tx::exec_later`]: inserts, updates, the change log) together, in one round trip with the
//! next statement that returns something, or with the COMMIT. A small file's create went from
//! eight round trips to four this way, its commit from six to three: on a server each round trip
//! costs more than the statement.
//!
//! A batch is one simple query (several statements, no parameters), so the parameters are
//! written into the text as literals ([`inline_params`]): integers as numbers, bytes as hex
//! `bytea`, text quoted with `''` (the connection sets `standard_conforming_strings`, so a
//! backslash is an ordinary character). No value can end a literal early.

use super::sql::{Row, Tx, Value};
use super::MetaResult;
use crate::error::MetaError;
use postgres::Client;
use std::fmt::Write;

/// A write transaction (BEGIN sent already) on `client`.
pub(super) struct Batching<'a> {
    client: &'a mut Client,
    /// Statements waiting, each ending with `;`.
    later: String,
}

impl<'a> Batching<'a> {
    /// A transaction begun on `client`.
    pub(super) fn new(client: &'a mut Client) -> Batching<'a> {
        Batching { client, later: String::new() }
    }

    /// Send what waits, before a statement whose result is wanted (it may depend on them).
    fn flush(&mut self) -> MetaResult<()> {
        if !self.later.is_empty() {
            let sql = std::mem::take(&mut self.later);
            self.client.batch_execute(&sql)?;
        }
        Ok(())
    }

    /// COMMIT, with what waits in the same round trip. An error of a waiting statement fails
    /// the commit (the transaction is then rolled back by [`Batching::abandon`]).
    pub(super) fn commit(&mut self) -> MetaResult<()> {
        self.later.push_str("COMMIT");
        let sql = std::mem::take(&mut self.later);
        Ok(self.client.batch_execute(&sql)?)
    }

    /// Roll back after an error (also after a failed COMMIT, where it is a no-op). A connection
    /// that cannot even do this is broken, and the pool drops it.
    pub(super) fn abandon(&mut self) {
        if let Err(e) = self.client.batch_execute("ROLLBACK") {
            tracing::debug!("ROLLBACK failed: {e}");
        }
    }
}

impl Tx for Batching<'_> {
    fn exec(&mut self, sql: &str, params: &[Value<'_>]) -> MetaResult<u64> {
        self.flush()?;
        Tx::exec(self.client, sql, params)
    }

    fn exec_later(&mut self, sql: &str, params: &[Value<'_>]) -> MetaResult<()> {
        self.later.push_str(&inline_params(sql, params)?);
        self.later.push_str(";\n");
        Ok(())
    }

    fn query(&mut self, sql: &str, params: &[Value<'_>]) -> MetaResult<Vec<Row>> {
        self.flush()?;
        Tx::query(self.client, sql, params)
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
