//! PostgreSQL transactions that send the statements whose results nobody reads
//! ([`Tx::exec_later`]: inserts, updates, the change log) together, in one round trip with the
//! next statement that returns something, or with the COMMIT; the BEGIN goes with the first
//! statement, and [`Tx::query_pair`]'s two statements (and the row locks of
//! [`Tx::lock_inodes`]) go together. A small file's create went from eight round trips to two
//! this way, its commit from six to one: on a server each round trip costs more than the
//! statement.
//!
//! A batch is one simple query (several statements; results come as text, read as
//! [`super::sql::Cell::Literal`]) of `EXECUTE`s of statements prepared on the connection, with
//! their parameters written as literals (see [`super::pg_conn`]).

use super::pg_conn::{Outcome, PgConn};
use super::postgres::first_round_trip_failed;
use super::sql::{Row, Tx, Value};
use super::MetaResult;
use crate::error::MetaError;

/// How a write transaction begins.
pub(super) const BEGIN_WRITE: &str = "BEGIN ISOLATION LEVEL READ COMMITTED";
/// How a read transaction begins: one snapshot for all its statements.
pub(super) const BEGIN_READ: &str = "START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/// Statements on a connection, sent as late as they can be: in a transaction whose BEGIN waits
/// to go with its first statement, or (without a BEGIN) each on its own.
pub(super) struct Batching<'a> {
    conn: &'a mut PgConn,
    /// The BEGIN, until it was sent.
    begin: Option<&'static str>,
    /// The `PREPARE`s the statements in `later` need, sent ahead of them.
    prepare: String,
    /// Statements waiting, each ending with `;`.
    later: String,
    /// Something was sent: the server may be inside the transaction.
    sent: bool,
    /// A transaction (a BEGIN was asked for): [`Batching::commit`] ends it.
    transaction: bool,
}

impl<'a> Batching<'a> {
    /// A transaction on `conn` that begins with `begin` ([`BEGIN_WRITE`], [`BEGIN_READ`]).
    pub(super) fn transaction(conn: &'a mut PgConn, begin: &'static str) -> Batching<'a> {
        Batching {
            conn,
            begin: Some(begin),
            prepare: String::new(),
            later: String::new(),
            sent: false,
            transaction: true,
        }
    }

    /// Statements on `conn` without a transaction, each seeing the newest commits.
    pub(super) fn autocommit(conn: &'a mut PgConn) -> Batching<'a> {
        Batching {
            conn,
            begin: None,
            prepare: String::new(),
            later: String::new(),
            sent: false,
            transaction: false,
        }
    }

    /// What waits (the BEGIN first, if it was not sent), then `tail`'s statements, as one
    /// text; `tail`'s `PREPARE`s go after the BEGIN and before everything else.
    fn text(&mut self, tail: &[(&str, &[Value<'_>])], end: &str) -> String {
        let mut execs = String::new();
        for (sql, params) in tail {
            execs.push_str(&self.conn.execute(sql, params, &mut self.prepare));
            execs.push_str(";\n");
        }
        let mut text = self.begin.take().map(|b| format!("{b};\n")).unwrap_or_default();
        text.push_str(&std::mem::take(&mut self.prepare));
        text.push_str(&std::mem::take(&mut self.later));
        text.push_str(&execs);
        text.push_str(end);
        text
    }

    /// Send what waits, then the statements `tail`, as one simple query; what each statement
    /// of `tail` returned. A first round trip that failed because the connection was lost ran
    /// nothing: see [`first_round_trip_failed`].
    fn round_trip(&mut self, tail: &[(&str, &[Value<'_>])]) -> MetaResult<Vec<Outcome>> {
        let text = self.text(tail, "");
        let first = !std::mem::replace(&mut self.sent, true);
        let out = self.conn.run(&text, tail.len()).map_err(|e| first_round_trip_failed(e, first))?;
        if out.len() < tail.len() {
            return Err(MetaError::Engine(format!("fewer results than statements from: {text}")));
        }
        Ok(out)
    }

    /// One statement's outcome, with what waits in the same round trip.
    fn one(&mut self, sql: &str, params: &[Value<'_>]) -> MetaResult<Outcome> {
        let mut out = self.round_trip(&[(sql, params)])?;
        out.pop().ok_or_else(|| MetaError::Engine(format!("no result from: {sql}")))
    }

    /// Send what waits, before a statement that cannot go with it.
    fn flush(&mut self) -> MetaResult<()> {
        if self.begin.is_some() || !self.later.is_empty() || !self.prepare.is_empty() {
            self.round_trip(&[])?;
        }
        Ok(())
    }

    /// Run `f` in this batch and end it: COMMIT (without a transaction: send what waits) when
    /// `f` succeeded, roll back when anything failed.
    pub(super) fn run<T>(mut self, f: &mut dyn FnMut(&mut dyn Tx) -> MetaResult<T>) -> MetaResult<T> {
        let result = f(&mut self).and_then(|v| self.commit().map(|()| v));
        if result.is_err() {
            // Also after a failed COMMIT, where the server ended the transaction already:
            // the ROLLBACK is a no-op then and leaves the connection clean for sure.
            self.abandon();
        }
        result
    }

    /// COMMIT (without a transaction: nothing more), with what waits in the same round trip;
    /// nothing at all when nothing ran. An error of a waiting statement fails the commit (the
    /// transaction is then rolled back by [`Batching::abandon`]).
    fn commit(&mut self) -> MetaResult<()> {
        if self.later.is_empty() && (!self.sent || !self.transaction) {
            return Ok(());
        }
        let text = self.text(&[], if self.transaction { "COMMIT" } else { "" });
        let first = !std::mem::replace(&mut self.sent, true);
        self.conn.run(&text, 0).map(drop).map_err(|e| first_round_trip_failed(e, first))
    }

    /// Roll back after an error (also after a failed COMMIT, where it is a no-op). A connection
    /// that cannot even do this is broken, and the pool drops it.
    fn abandon(&mut self) {
        if !self.prepare.is_empty() {
            // Statements registered as prepared that never reached the server.
            self.conn.forget_prepared();
        }
        self.prepare.clear();
        self.later.clear();
        if self.sent && self.transaction {
            if let Err(e) = self.conn.client.batch_execute("ROLLBACK") {
                tracing::debug!("ROLLBACK failed: {e}");
            }
        }
    }
}

impl Tx for Batching<'_> {
    fn exec(&mut self, sql: &str, params: &[Value<'_>]) -> MetaResult<u64> {
        Ok(self.one(sql, params)?.1)
    }

    fn exec_later(&mut self, sql: &str, params: &[Value<'_>]) -> MetaResult<()> {
        let execute = self.conn.execute(sql, params, &mut self.prepare);
        self.later.push_str(&execute);
        self.later.push_str(";\n");
        Ok(())
    }

    fn query(&mut self, sql: &str, params: &[Value<'_>]) -> MetaResult<Vec<Row>> {
        Ok(self.one(sql, params)?.0)
    }

    fn query_pair(
        &mut self, first: (&str, &[Value<'_>]), second: (&str, &[Value<'_>]),
    ) -> MetaResult<(Vec<Row>, Vec<Row>)> {
        let mut out = self.round_trip(&[first, second])?.into_iter().map(|(rows, _)| rows);
        match (out.next(), out.next()) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(MetaError::Engine(format!("no result from: {}", first.0))),
        }
    }

    fn batch(&mut self, sql: &str) -> MetaResult<()> {
        self.flush()?;
        Ok(self.conn.client.batch_execute(sql)?)
    }

    fn table_names(&mut self) -> MetaResult<Vec<String>> {
        let rows = Tx::query(
            self,
            "SELECT tablename::text FROM pg_catalog.pg_tables WHERE schemaname = current_schema()",
            &[],
        )?;
        rows.iter().map(|r| r.text(0)).collect()
    }

    /// `SELECT … FOR UPDATE`, in inode order so that two transactions locking the same set
    /// never wait for each other in a circle (other orders end in a detected deadlock, which is
    /// retried like a conflict); all in one round trip.
    fn lock_inodes(&mut self, inos: &[u64]) -> MetaResult<()> {
        let mut sorted = inos.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let params: Vec<[Value<'_>; 1]> = sorted.iter().map(|&ino| [Value::from(ino)]).collect();
        let tail: Vec<(&str, &[Value<'_>])> =
            params.iter().map(|p| ("SELECT 1 FROM inodes WHERE ino = $1 FOR UPDATE", &p[..])).collect();
        self.round_trip(&tail).map(drop)
    }

    /// A transaction-scoped advisory lock with a fixed key.
    fn lock_renames(&mut self) -> MetaResult<()> {
        Tx::query(self, "SELECT 1 FROM pg_advisory_xact_lock($1)", &[Value::Int(RENAME_LOCK_KEY)]).map(drop)
    }

    fn row_lock_clause(&self) -> &'static str {
        " FOR UPDATE"
    }
}

/// Key of the advisory lock cross-directory renames hold ("fbrename" in ASCII).
const RENAME_LOCK_KEY: i64 = 0x6662_7265_6e61_6d65;
