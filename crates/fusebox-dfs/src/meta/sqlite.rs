//! The SQLite engine: one database file in WAL mode (readers in other processes run beside
//! the writer), `busy_timeout` instead of failing on a locked database.
//!
//! Durability: every commit is in the WAL when it returns, so it survives a crash of the
//! daemon (the kernel holds the written pages). Data commits (close(2), fsync(2)) run with
//! `synchronous=FULL`: the WAL is fsynced, which puts them and every transaction before them
//! on disk. Namespace changes (create, rename, unlink, mkdir, chmod) run with
//! `synchronous=NORMAL` and reach the disk with the next data commit, fsync(2) or fsyncdir,
//! or a checkpoint, as a journaling file system's metadata does: a power loss may undo the
//! last of them, never half of one (WAL frames are checksummed), and never a closed file's
//! data. One fsync per small file instead of two.
//!
//! One connection behind a mutex serves the whole mount: SQLite admits one writer at a time
//! anyway, and write transactions start IMMEDIATE so two processes never deadlock upgrading a
//! read lock.

use super::schema::Dialect;
use super::sql::{question_marks, Cell, Engine, Row, Tx, Value};
use super::store::SqlMeta;
use super::{Caller, MetaResult};
use crate::error::MetaError;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params_from_iter, Connection, OpenFlags, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// How long a statement waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The metadata store on SQLite.
pub type SqliteMeta = SqlMeta<Sqlite>;

/// An SQLite database file, as an [`Engine`]: one connection for writes and one for reads,
/// so a read (a stat, a lookup) never waits for a write transaction's fsync: in WAL mode a
/// reader sees the last committed state while the writer works.
pub struct Sqlite {
    conn: Mutex<Connection>,
    reader: Mutex<Connection>,
    path: PathBuf,
    name: String,
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Value::Int(v) => ValueRef::Integer(v),
            Value::Bytes(b) => ValueRef::Blob(b),
            Value::Text(t) => ValueRef::Text(t.as_bytes()),
        }))
    }
}

impl Tx for Transaction<'_> {
    fn exec(&mut self, sql: &str, params: &[Value<'_>]) -> MetaResult<u64> {
        let mut st = self.prepare_cached(&question_marks(sql))?;
        Ok(st.execute(params_from_iter(params))? as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value<'_>]) -> MetaResult<Vec<Row>> {
        let mut st = self.prepare_cached(&question_marks(sql))?;
        let n = st.column_count();
        let mut rows = st.query(params_from_iter(params))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut cells = Vec::with_capacity(n);
            for i in 0..n {
                cells.push(match r.get_ref(i)? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(v) => Cell::Int(v),
                    ValueRef::Real(v) => Cell::Int(v as i64),
                    ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Cell::Bytes(b.to_vec()),
                });
            }
            out.push(Row(cells));
        }
        Ok(out)
    }

    fn batch(&mut self, sql: &str) -> MetaResult<()> {
        Ok(self.execute_batch(sql)?)
    }

    fn table_names(&mut self) -> MetaResult<Vec<String>> {
        let rows = self
            .query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'", &[])?;
        rows.iter().map(|r| r.text(0)).collect()
    }

    /// Nothing to do: a write transaction starts IMMEDIATE, which excludes every other writer.
    fn lock_inodes(&mut self, _inos: &[u64]) -> MetaResult<()> {
        Ok(())
    }

    /// Nothing to do, as for [`Tx::lock_inodes`].
    fn lock_renames(&mut self) -> MetaResult<()> {
        Ok(())
    }
}

impl Sqlite {
    /// Open (`create`: or create) the database file at `path`.
    pub fn connect(path: &Path, create: bool) -> MetaResult<Sqlite> {
        if !create && !path.exists() {
            return Err(MetaError::Format(format!(
                "metadata database {} does not exist (create it with `fusebox dfs format`)",
                path.display()
            )));
        }
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let not_db = |e: rusqlite::Error| {
            MetaError::Format(format!("{} is not a usable SQLite database: {e}", path.display()))
        };
        let conn = Connection::open_with_flags(path, flags).map_err(not_db)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(not_db)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(MetaError::Format(format!(
                "{}: cannot switch to WAL mode (got {mode})",
                path.display()
            )));
        }
        conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(not_db)?;
        reader.busy_timeout(BUSY_TIMEOUT)?;
        Ok(Sqlite {
            conn: Mutex::new(conn),
            reader: Mutex::new(reader),
            path: path.to_path_buf(),
            name: path.display().to_string(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn run<T>(
        &self, conn: &Mutex<Connection>, behavior: TransactionBehavior,
        f: &mut dyn FnMut(&mut dyn Tx) -> MetaResult<T>,
    ) -> MetaResult<T> {
        transact(&mut conn.lock().unwrap_or_else(|e| e.into_inner()), behavior, f)
    }
}

/// Run `f` in a transaction on `conn`: committed when `f` succeeds, rolled back otherwise.
fn transact<T>(
    conn: &mut Connection, behavior: TransactionBehavior, f: &mut dyn FnMut(&mut dyn Tx) -> MetaResult<T>,
) -> MetaResult<T> {
    let mut tx = conn.transaction_with_behavior(behavior)?;
    let v = f(&mut tx)?;
    tx.commit()?;
    Ok(v)
}

impl Engine for Sqlite {
    const DIALECT: Dialect = Dialect::Sqlite;
    const LOCAL: bool = true;

    fn describe(&self) -> &str {
        &self.name
    }

    fn write<T>(&self, f: &mut dyn FnMut(&mut dyn Tx) -> MetaResult<T>) -> MetaResult<T> {
        self.run(&self.conn, TransactionBehavior::Immediate, f)
    }

    fn write_durable<T>(&self, f: &mut dyn FnMut(&mut dyn Tx) -> MetaResult<T>) -> MetaResult<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.execute_batch("PRAGMA synchronous = FULL;")?;
        let result = transact(&mut conn, TransactionBehavior::Immediate, f);
        conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
        result
    }

    /// fsync the WAL (every transaction since the last checkpoint; a checkpoint syncs what it
    /// moved into the database file itself).
    fn sync(&self) -> MetaResult<()> {
        let _writer = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        match std::fs::File::open(&wal) {
            Ok(f) => f.sync_data(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
        .map_err(|e| MetaError::Engine(format!("fsync of {}: {e}", std::path::Path::new(&wal).display())))
    }

    fn read<T>(&self, f: &mut dyn FnMut(&mut dyn Tx) -> MetaResult<T>) -> MetaResult<T> {
        self.run(&self.reader, TransactionBehavior::Deferred, f)
    }
}

impl SqlMeta<Sqlite> {
    /// Create a new file system in the database at `path` (created if missing) whose blocks
    /// live at `storage_url`; see [`SqlMeta::format_engine`].
    pub fn format(path: &Path, storage_url: &str, force: bool, root: Caller) -> MetaResult<SqliteMeta> {
        SqlMeta::format_engine(Sqlite::connect(path, true)?, storage_url, force, root)
    }

    /// Open the formatted database at `path`; a missing file is a [`MetaError::Format`] too.
    pub fn open(path: &Path) -> MetaResult<SqliteMeta> {
        SqlMeta::open_engine(Sqlite::connect(path, false)?)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.engine().path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{MetaStore, NewSlice, ROOT_INO};

    fn synchronous(m: &SqliteMeta) -> i64 {
        let conn = m.engine().conn.lock().unwrap();
        conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap()
    }

    /// Namespace changes commit with synchronous=NORMAL (1), data commits with FULL (2) and
    /// the connection is back to NORMAL afterwards, also after a refused commit; sync() fsyncs
    /// the WAL.
    #[test]
    fn data_commits_are_durable_and_namespace_changes_wait_for_the_next_sync() {
        let dir = tempfile::tempdir().unwrap();
        let m = SqliteMeta::format(&dir.path().join("m.db"), "file:///x", false, Caller { uid: 0, gid: 0 })
            .unwrap();
        assert_eq!(synchronous(&m), 1);
        let seen = std::cell::Cell::new(0);
        m.engine()
            .write_durable(&mut |c| {
                seen.set(c.query_one("PRAGMA synchronous", &[])?.int(0)?);
                Ok(())
            })
            .unwrap();
        assert_eq!((seen.get(), synchronous(&m)), (2, 1), "FULL inside, NORMAL after");
        let f = m
            .create(ROOT_INO, b"f", &mut |_| {
                Ok(crate::meta::NewNode { mode: libc::S_IFREG | 0o644, ..Default::default() })
            })
            .unwrap();
        let bad = NewSlice { chunk: 0, pos: 0, slice_id: 1, len: 0, data: None };
        assert!(m.commit(f.ino, &[bad], 0, None).is_err());
        assert_eq!(synchronous(&m), 1, "NORMAL again after a refused data commit");
        m.sync().unwrap();
    }
}
