//! A pooled PostgreSQL connection that runs every statement as a prepared one: the first use
//! of a statement text on a connection sends `PREPARE` in the same round trip as its first
//! `EXECUTE`, every later use only the `EXECUTE`, so the server parses and plans each
//! statement once per connection instead of once per use (planning was half the server's time
//! for a small file's create). Statements travel in simple queries, several to a round trip
//! (see [`super::pg_batch`]), with their parameters written as literals ([`literal`]).
//!
//! A failed round trip may have run some of its `PREPARE`s and not others (and a statement
//! prepared in a transaction that then failed may or may not outlive it), so after any error
//! the connection forgets what it prepared and prepares anew under fresh names; the server's
//! copies of the forgotten ones go with the next `DEALLOCATE ALL`, sent whenever
//! [`PREPARED_KEPT`] statements were prepared since the last one.

use super::sql::{Cell, Row, Value};
use postgres::{Client, Config, NoTls, SimpleQueryMessage};
use std::collections::HashMap;
use std::fmt::Write;

/// Statements prepared on a connection before it deallocates them all and starts over.
const PREPARED_KEPT: u64 = 256;

/// What one statement of a simple query returned: its rows and the number of rows it
/// returned or changed.
pub(super) type Outcome = (Vec<Row>, u64);

/// A connection and the statements prepared on it.
pub struct PgConn {
    /// The connection.
    pub(super) client: Client,
    /// Statement number by parameter types and text.
    prepared: HashMap<String, u64>,
    /// The last statement number used (names are never reused on a connection).
    last: u64,
    /// Statements prepared since the last `DEALLOCATE ALL` (forgotten ones included).
    since_deallocate: u64,
}

impl PgConn {
    fn new(client: Client) -> PgConn {
        PgConn { client, prepared: HashMap::new(), last: 0, since_deallocate: 0 }
    }

    /// `sql` with `params` as an `EXECUTE` of the statement prepared for it; its `PREPARE`
    /// (and a `DEALLOCATE ALL` when due) is appended to `prepare` the first time, to go
    /// ahead of the `EXECUTE` in the same round trip.
    pub(super) fn execute(&mut self, sql: &str, params: &[Value<'_>], prepare: &mut String) -> String {
        let types: Vec<&str> = params
            .iter()
            .map(|p| match p {
                Value::Int(_) => "int8",
                Value::Bytes(_) => "bytea",
                Value::Text(_) => "text",
            })
            .collect();
        let key = format!("{}\n{sql}", types.join(","));
        let id = match self.prepared.get(&key) {
            Some(id) => *id,
            None => {
                if self.since_deallocate >= PREPARED_KEPT {
                    prepare.push_str("DEALLOCATE ALL;\n");
                    self.prepared.clear();
                    self.since_deallocate = 0;
                }
                self.last += 1;
                self.since_deallocate += 1;
                let args = if types.is_empty() { String::new() } else { format!(" ({})", types.join(", ")) };
                let _ = writeln!(prepare, "PREPARE fb{}{args} AS {sql};", self.last);
                self.prepared.insert(key, self.last);
                self.last
            }
        };
        let mut out = format!("EXECUTE fb{id}");
        for (i, p) in params.iter().enumerate() {
            out.push_str(if i == 0 { "(" } else { ", " });
            literal(&mut out, p);
        }
        if !params.is_empty() {
            out.push(')');
        }
        out
    }

    /// Send `sql` (statements ending with `;`) as one simple query; what each of the last
    /// `wanted` statements returned. After an error, what was prepared is forgotten.
    pub(super) fn run(&mut self, sql: &str, wanted: usize) -> Result<Vec<Outcome>, postgres::Error> {
        let messages = match self.client.simple_query(sql) {
            Ok(m) => m,
            Err(e) => {
                self.prepared.clear();
                return Err(e);
            }
        };
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
        Ok(done.split_off(done.len().saturating_sub(wanted)))
    }

    /// Forget every prepared statement (some registered here never reached the server).
    pub(super) fn forget_prepared(&mut self) {
        self.prepared.clear();
    }
}

/// Parameter `v` written as an SQL literal: integers as numbers (negative ones in
/// parentheses, so that `x - $1` never becomes the comment `x --1`), bytes as hex `bytea`,
/// text quoted with `''` (connections set `standard_conforming_strings`, so a backslash is
/// an ordinary character). No value can end its literal early.
pub(super) fn literal(out: &mut String, v: &Value<'_>) {
    let _ = match v {
        Value::Int(i) if *i < 0 => write!(out, "({i})"),
        Value::Int(i) => write!(out, "{i}"),
        Value::Bytes(b) => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.reserve(b.len() * 2 + 12);
            out.push_str("'\\x");
            for byte in b.iter() {
                out.push(HEX[usize::from(byte >> 4)] as char);
                out.push(HEX[usize::from(byte & 15)] as char);
            }
            write!(out, "'::bytea")
        }
        Value::Text(t) => write!(out, "'{}'", t.replace('\'', "''")),
    };
}

/// Makes the pool's connections.
pub(super) struct Manager {
    /// How to connect.
    pub config: Config,
}

impl r2d2::ManageConnection for Manager {
    type Connection = PgConn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<PgConn, postgres::Error> {
        Ok(PgConn::new(self.config.connect(NoTls)?))
    }

    fn is_valid(&self, conn: &mut PgConn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(drop)
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.client.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_cannot_escape() {
        let mut out = String::new();
        for v in [Value::Int(-1), Value::Int(7), Value::Bytes(b"\x00'$1"), Value::Text("it's -- $2 \\")] {
            literal(&mut out, &v);
            out.push(' ');
        }
        assert_eq!(out, "(-1) 7 '\\x00272431'::bytea 'it''s -- $2 \\' ");
    }
}
