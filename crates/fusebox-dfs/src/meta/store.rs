//! The metadata operations, written once for every SQL engine: [`SqlMeta`] implements
//! [`MetaStore`] on any [`Engine`] (SQLite, PostgreSQL). Each operation is one transaction.
//!
//! A write transaction first locks the inodes it will change ([`Tx::lock_inodes`]): the
//! directories whose entries it changes before it reads them, then the inodes those entries
//! name. With several clients on one database (PostgreSQL) this makes a create, unlink or
//! rename of a name see and change the directory as the last committed writer left it, and
//! an attribute change a read-modify-write that no other client interleaves with.

use super::coord::Change;
use super::schema::{self, Dialect, COUNTERS, FORMAT_MAGIC, FORMAT_VERSION};
use super::sql::{params, Engine, Noting, Row, Tx};
use super::*;
use crate::layout::{block_len, blocks_covering, CHUNK_SIZE};
use std::collections::BTreeSet;

const ATTR_COLS: &str =
    "ino, mode, uid, gid, rdev, size, atime_ns, mtime_ns, ctime_ns, nlink, version, generation";

const ACL_ACCESS: &[u8] = b"system.posix_acl_access";
const ACL_DEFAULT: &[u8] = b"system.posix_acl_default";

/// A metadata store on engine `E`.
pub struct SqlMeta<E: Engine> {
    engine: E,
    /// Slice ids reserved in the database and not handed out yet.
    slice_ids: Reserved,
    /// Inode numbers reserved for creates.
    inos: Reserved,
    /// Directory entry cookies reserved for creates.
    cookies: Reserved,
    /// This mount's session ([`super::coord::Coordination::open_session`]); 0 before one is
    /// open. Changes are logged under it, so the mount can skip its own.
    sid: std::sync::atomic::AtomicU64,
}

/// Slice ids reserved per transaction: a write of 4 GiB spills a thousand 4 MiB slices, and a
/// transaction per id would queue them (and their fsyncs) in front of every metadata request.
const SLICE_IDS_PER_RESERVATION: u64 = 64;
/// Inode numbers and entry cookies reserved per transaction: a create takes them without a
/// round trip. Numbers a mount reserved and did not use (it stopped, or crashed) are never
/// used; cookies only order a directory's entries for READDIR, and an entry added while a
/// listing runs may or may not show in it (POSIX), so mounts need not take them in order.
const NAMES_PER_RESERVATION: u64 = 256;

/// Values of counter `counter` this mount reserved in the database and has not handed out.
struct Reserved {
    counter: &'static str,
    per_reservation: u64,
    ids: std::sync::Mutex<std::ops::Range<u64>>,
}

impl Reserved {
    fn new(counter: &'static str, per_reservation: u64) -> Reserved {
        Reserved { counter, per_reservation, ids: Default::default() }
    }

    fn pop(&self) -> Option<u64> {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        let id = (!ids.is_empty()).then_some(ids.start)?;
        ids.start += 1;
        Some(id)
    }

    /// One value, inside transaction `c`: a reserved one, or (when other threads took them
    /// all since [`SqlMeta::reserve`]) the counter's next.
    fn take(&self, c: &mut dyn Tx) -> MetaResult<u64> {
        self.pop().map_or_else(|| next(c, self.counter), Ok)
    }
}

impl<E: Engine> std::fmt::Debug for SqlMeta<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlMeta").field("db", &self.engine.describe()).finish()
    }
}

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn errno(e: i32) -> MetaError {
    MetaError::Fs(Errno(e))
}

fn check_name(name: &[u8]) -> MetaResult<()> {
    if name.len() > NAME_MAX {
        return Err(errno(libc::ENAMETOOLONG));
    }
    if name.is_empty() || name.contains(&b'/') || name == b"." || name == b".." {
        return Err(errno(libc::EINVAL));
    }
    Ok(())
}

/// [`ATTR_COLS`] of the table named `alias` in a join (`i.ino, i.mode, …`).
fn attr_cols_of(alias: &str) -> String {
    ATTR_COLS.split(", ").map(|col| format!("{alias}.{col}")).collect::<Vec<_>>().join(", ")
}

/// The attributes in columns `at..at + 12` of `r` (`ATTR_COLS` order).
fn attr_from_row(r: &Row, at: usize) -> MetaResult<Attr> {
    Ok(Attr {
        ino: r.uint(at)?,
        mode: r.uint(at + 1)? as u32,
        uid: r.uint(at + 2)? as u32,
        gid: r.uint(at + 3)? as u32,
        rdev: r.uint(at + 4)? as u32,
        size: r.uint(at + 5)?,
        atime_ns: r.int(at + 6)?,
        mtime_ns: r.int(at + 7)?,
        ctime_ns: r.int(at + 8)?,
        nlink: r.uint(at + 9)? as u32,
        version: r.uint(at + 10)?,
        generation: r.uint(at + 11)?,
    })
}

/// The attributes in the first row of `rows`; ENOENT when there is none.
fn first_attr(rows: &[Row]) -> MetaResult<Attr> {
    rows.first().map_or(Err(errno(libc::ENOENT)), |r| attr_from_row(r, 0))
}

fn get_attr(c: &mut dyn Tx, ino: u64) -> MetaResult<Attr> {
    first_attr(&c.query(&format!("SELECT {ATTR_COLS} FROM inodes WHERE ino = $1"), params![ino])?)
}

/// The statement that locks inode `$1` as [`Tx::lock_inodes`] does and reads its attributes.
fn lock_attr_sql(c: &dyn Tx) -> String {
    format!("SELECT {ATTR_COLS} FROM inodes WHERE ino = $1{}", c.row_lock_clause())
}

/// Lock `ino` as [`Tx::lock_inodes`] does and read its attributes, in one statement (a round
/// trip fewer on a server than locking, then reading).
fn locked_attr(c: &mut dyn Tx, ino: u64) -> MetaResult<Attr> {
    first_attr(&c.query(&lock_attr_sql(c), params![ino])?)
}

/// Write all of `a`'s columns (`insert`: as a new row).
fn store_attr(c: &mut dyn Tx, a: &Attr, insert: bool) -> MetaResult<()> {
    let sql = if insert {
        format!("INSERT INTO inodes ({ATTR_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
    } else {
        "UPDATE inodes SET mode = $2, uid = $3, gid = $4, rdev = $5, size = $6, atime_ns = $7, mtime_ns = $8,
         ctime_ns = $9, nlink = $10, version = $11, generation = $12 WHERE ino = $1"
            .to_string()
    };
    let p = params![
        a.ino,
        a.mode as i64,
        a.uid as i64,
        a.gid as i64,
        a.rdev as i64,
        a.size,
        a.atime_ns,
        a.mtime_ns,
        a.ctime_ns,
        a.nlink as i64,
        a.version,
        a.generation,
    ];
    c.exec_later(&sql, p)?;
    if !insert {
        c.note(Change::Attr(a.ino));
    }
    Ok(())
}

/// The value of key `key` in `fb_format`, if set.
fn format_value(c: &mut dyn Tx, key: &str) -> MetaResult<Option<String>> {
    c.query_opt("SELECT value FROM fb_format WHERE key = $1", params![key])?.map(|r| r.text(0)).transpose()
}

/// A row `seq, pos, slice_id, slice_size, off, len, data` of chunk_slices.
fn slice_ref(r: &Row) -> MetaResult<SliceRef> {
    let data = if r.is_null(6)? { None } else { Some(Bytes::from(r.bytes(6)?)) };
    Ok(SliceRef {
        seq: r.uint(0)?,
        pos: r.uint(1)?,
        slice_id: r.uint(2)?,
        slice_size: r.uint(3)?,
        off: r.uint(4)?,
        len: r.uint(5)?,
        data,
    })
}

/// The slices of chunk `chunk` of `ino`, oldest first.
fn chunk_slices(c: &mut dyn Tx, ino: u64, chunk: u64) -> MetaResult<Vec<SliceRef>> {
    let rows = c.query(
        "SELECT seq, pos, slice_id, slice_size, off, len, data FROM chunk_slices
         WHERE ino = $1 AND chunk = $2 ORDER BY seq",
        params![ino, chunk],
    )?;
    rows.iter().map(slice_ref).collect()
}

/// Add slice `s` of `ino`, if it still exists, after every slice stored so far (the next
/// sequence number); a slice that is empty, reaches past its chunk, or whose kept bytes are
/// not `len` long is refused (the caller's transaction then rolls back).
fn insert_slice(c: &mut dyn Tx, dialect: Dialect, ino: u64, s: &NewSlice) -> MetaResult<()> {
    let kept_len_wrong = s.data.as_ref().is_some_and(|d| d.len() as u64 != s.len);
    if s.pos + s.len > CHUNK_SIZE || s.len == 0 || kept_len_wrong {
        let (chunk, pos, len) = (s.chunk, s.pos, s.len);
        return Err(MetaError::Corrupt(format!(
            "slice of {len} bytes at {pos} of chunk {chunk} does not fit"
        )));
    }
    // The sequence number orders a chunk's slices (a later one covers an earlier): it comes
    // from the counter, whose row lock makes it follow the order of the commits. Columns
    // $2.. are the slice's; $1 is the sequence number where it is taken before the insert.
    let (cols, vals) = if s.data.is_some() { (", data", ", $7") } else { ("", "") };
    let insert =
        format!("INSERT INTO chunk_slices (seq, ino, chunk, pos, slice_id, slice_size, off, len{cols})");
    let row = format!("$2, $3, $4, $5, $6, 0, $6{vals}");
    // An inode another mount deleted meanwhile gets no slices (its writes go nowhere, as those
    // to an unlinked file do).
    let exists = "EXISTS (SELECT 1 FROM inodes WHERE ino = $2)";
    let data = s.data.as_deref().unwrap_or_default();
    let seq = if dialect == Dialect::Postgres {
        0 // unused: taken in the statement, one round trip.
    } else {
        next(c, "next_seq")?
    };
    let p = params![seq, ino, s.chunk, s.pos, s.slice_id, s.len, data];
    let p = if s.data.is_some() { p } else { &p[..6] };
    let sql = if dialect == Dialect::Postgres {
        format!(
            "WITH s AS (UPDATE counters SET value = value + 1 WHERE name = 'next_seq' RETURNING value - 1 AS seq)
             {insert} SELECT s.seq, {row} FROM s WHERE {exists}"
        )
    } else {
        format!("{insert} SELECT $1, {row} WHERE {exists}")
    };
    c.exec_later(&sql, p)?;
    Ok(())
}

/// Take the next value of counter `name`.
pub(super) fn next(c: &mut dyn Tx, name: &str) -> MetaResult<u64> {
    c.query_one("UPDATE counters SET value = value + 1 WHERE name = $1 RETURNING value - 1", params![name])?
        .uint(0)
}

fn dir_attr(c: &mut dyn Tx, ino: u64) -> MetaResult<Attr> {
    let a = get_attr(c, ino)?;
    if !a.is_dir() {
        return Err(errno(libc::ENOTDIR));
    }
    Ok(a)
}

/// A directory that may get new entries: not removed. Another client's kernel may still hold
/// a directory this one removed (nlink 0, kept until forgotten); an entry added there would
/// be unreachable and never reclaimed.
fn live_dir(c: &mut dyn Tx, ino: u64) -> MetaResult<Attr> {
    let a = get_attr(c, ino)?;
    check_live_dir(&a)?;
    Ok(a)
}

/// [`live_dir`]'s check on attributes read already: a directory, not removed.
fn check_live_dir(a: &Attr) -> MetaResult<()> {
    if !a.is_dir() {
        return Err(errno(libc::ENOTDIR));
    }
    if a.nlink == 0 {
        return Err(errno(libc::ENOENT));
    }
    Ok(())
}

/// The inode and cookie of entry `name` in `parent`.
fn dentry(c: &mut dyn Tx, parent: u64, name: &[u8]) -> MetaResult<Option<(u64, u64)>> {
    match c.query_opt(
        "SELECT ino, cookie FROM dentries WHERE parent = $1 AND name = $2",
        params![parent, name],
    )? {
        Some(r) => Ok(Some((r.uint(0)?, r.uint(1)?))),
        None => Ok(None),
    }
}

/// Add entry `name` in `parent` for `ino`, ordered in READDIR by `cookie`.
fn add_dentry(c: &mut dyn Tx, parent: u64, name: &[u8], ino: u64, cookie: u64) -> MetaResult<()> {
    c.exec_later(
        "INSERT INTO dentries (cookie, parent, name, ino) VALUES ($1, $2, $3, $4)",
        params![cookie, parent, name, ino],
    )?;
    c.note(Change::Entry(parent, name.to_vec()));
    Ok(())
}

/// Delete the entry with `cookie` (`name` in `parent`).
fn remove_dentry(c: &mut dyn Tx, cookie: u64, parent: u64, name: &[u8]) -> MetaResult<()> {
    c.exec_later("DELETE FROM dentries WHERE cookie = $1", params![cookie])?;
    c.note(Change::Entry(parent, name.to_vec()));
    Ok(())
}

fn is_empty_dir(c: &mut dyn Tx, ino: u64) -> MetaResult<bool> {
    Ok(c.query_opt("SELECT 1 FROM dentries WHERE parent = $1 LIMIT 1", params![ino])?.is_none())
}

fn xattr(c: &mut dyn Tx, ino: u64, name: &[u8]) -> MetaResult<Option<Vec<u8>>> {
    match c.query_opt("SELECT value FROM xattrs WHERE ino = $1 AND name = $2", params![ino, name])? {
        Some(r) => Ok(Some(r.bytes(0)?)),
        None => Ok(None),
    }
}

fn set_or_remove_xattr(c: &mut dyn Tx, ino: u64, name: &[u8], value: Option<&[u8]>) -> MetaResult<()> {
    match value {
        Some(v) => c.exec_later(
            "INSERT INTO xattrs (ino, name, value) VALUES ($1, $2, $3)
             ON CONFLICT (ino, name) DO UPDATE SET value = excluded.value",
            params![ino, name, v],
        )?,
        None => c.exec_later("DELETE FROM xattrs WHERE ino = $1 AND name = $2", params![ino, name])?,
    };
    c.note(Change::Attr(ino));
    Ok(())
}

/// Lock `ino` and load it with its ACLs; with a non-empty `entry` (a directory about to get
/// one), also the inode its entry `entry` names. Two statements ([`Tx::query_pair`], one round
/// trip on a server): the lock and the attributes, then the rest, read after the lock was
/// granted so that it sees what the transaction that held the lock committed.
fn load_inode(c: &mut dyn Tx, ino: u64, entry: &[u8]) -> MetaResult<(Inode, Option<u64>)> {
    let lock = lock_attr_sql(c);
    let (locked, rest) = c.query_pair(
        (&lock, params![ino]),
        (
            "SELECT (SELECT value FROM xattrs WHERE ino = $1 AND name = $2),
                    (SELECT value FROM xattrs WHERE ino = $1 AND name = $3),
                    (SELECT ino FROM dentries WHERE parent = $1 AND name = $4)",
            params![ino, ACL_ACCESS, ACL_DEFAULT, entry],
        ),
    )?;
    let attr = first_attr(&locked)?;
    let r = rest.first().ok_or_else(|| MetaError::Engine("no row from the ACL and entry query".into()))?;
    let bytes = |i| if r.is_null(i)? { Ok(None) } else { r.bytes(i).map(Some) };
    let node = Inode { attr, acl_access: bytes(0)?, acl_default: bytes(1)? };
    let entry_ino = if r.is_null(2)? { None } else { Some(r.uint(2)?) };
    Ok((node, entry_ino))
}

/// Change a directory's link count by `delta` and set its mtime and ctime (an entry was added
/// or removed).
fn touch_dir(c: &mut dyn Tx, ino: u64, nlink_delta: i64, now: i64) -> MetaResult<()> {
    c.exec_later(
        "UPDATE inodes SET nlink = nlink + $2, mtime_ns = $3, ctime_ns = $3, version = version + 1 WHERE ino = $1",
        params![ino, nlink_delta, now],
    )?;
    c.note(Change::Attr(ino));
    Ok(())
}

/// Change an inode's link count by `delta` (never below 0) and set its ctime.
fn touch_node(c: &mut dyn Tx, ino: u64, nlink_delta: i64, now: i64) -> MetaResult<()> {
    c.exec_later(
        "UPDATE inodes SET nlink = CASE WHEN nlink + $2 < 0 THEN 0 ELSE nlink + $2 END, ctime_ns = $3,
         version = version + 1 WHERE ino = $1",
        params![ino, nlink_delta, now],
    )?;
    c.note(Change::Attr(ino));
    Ok(())
}

/// Cut the slices of `ino` at `size`: slices past it go, the one across it is shortened.
fn cut_slices(c: &mut dyn Tx, ino: u64, size: u64) -> MetaResult<()> {
    let (chunk, at) = (size / CHUNK_SIZE, size % CHUNK_SIZE);
    c.exec(
        "DELETE FROM chunk_slices WHERE ino = $1 AND (chunk > $2 OR (chunk = $2 AND pos >= $3))",
        params![ino, chunk, at],
    )?;
    c.exec(
        "UPDATE chunk_slices SET len = $3 - pos WHERE ino = $1 AND chunk = $2 AND pos + len > $3",
        params![ino, chunk, at],
    )?;
    c.note(Change::Data(ino));
    Ok(())
}

pub(super) fn delete_inode(c: &mut dyn Tx, ino: u64) -> MetaResult<()> {
    for table in ["inodes", "xattrs", "symlinks", "chunk_slices", "sustained", "locks"] {
        c.exec(&format!("DELETE FROM {table} WHERE ino = $1"), params![ino])?;
    }
    Ok(())
}

/// The directory holding `ino`, if it has a name.
pub(super) fn parent(c: &mut dyn Tx, ino: u64) -> MetaResult<Option<u64>> {
    match c.query_opt("SELECT parent FROM dentries WHERE ino = $1 LIMIT 1", params![ino])? {
        Some(r) => Ok(Some(r.uint(0)?)),
        None => Ok(None),
    }
}

/// True when `ancestor` is `ino` or one of the directories above it.
fn is_ancestor(c: &mut dyn Tx, ancestor: u64, mut ino: u64) -> MetaResult<bool> {
    let mut hops = 0;
    loop {
        if ino == ancestor {
            return Ok(true);
        }
        if ino == ROOT_INO {
            return Ok(false);
        }
        let Some(p) = parent(c, ino)? else { return Ok(false) };
        ino = p;
        hops += 1;
        if hops > 1_000_000 {
            return Err(MetaError::Corrupt(format!("directory loop above inode {ino}")));
        }
    }
}

/// A new inode's attributes: times now, one link (two for a directory), version 1.
fn new_attr(ino: u64, mode: u32, uid: u32, gid: u32, now: i64) -> Attr {
    let is_dir = mode & libc::S_IFMT == libc::S_IFDIR;
    Attr {
        ino,
        mode,
        uid,
        gid,
        atime_ns: now,
        mtime_ns: now,
        ctime_ns: now,
        nlink: if is_dir { 2 } else { 1 },
        version: 1,
        ..Default::default()
    }
}

impl<E: Engine> SqlMeta<E> {
    /// Create a new file system in `engine`'s database, whose blocks live at `storage_url`. A
    /// database holding any table is refused unless `force`, which drops every table first.
    pub fn format_engine(engine: E, storage_url: &str, force: bool, root: Caller) -> MetaResult<SqlMeta<E>> {
        let db = engine.describe().to_string();
        engine.write(&mut |c| {
            let tables = c.table_names()?;
            if !tables.is_empty() && !force {
                return Err(MetaError::Format(format!(
                    "{db} is not empty ({} tables); use --force to erase it",
                    tables.len()
                )));
            }
            for t in &tables {
                c.batch(&format!("DROP TABLE IF EXISTS \"{}\"", t.replace('"', "\"\"")))?;
            }
            c.batch(&schema::ddl(E::DIALECT))?;
            for (k, v) in [
                ("format", FORMAT_MAGIC),
                ("version", &FORMAT_VERSION.to_string()),
                ("storage_url", storage_url),
            ] {
                c.exec("INSERT INTO fb_format (key, value) VALUES ($1, $2)", params![k, v])?;
            }
            for (name, v) in COUNTERS {
                c.exec("INSERT INTO counters (name, value) VALUES ($1, $2)", params![*name, *v])?;
            }
            let mut a = new_attr(ROOT_INO, libc::S_IFDIR | 0o755, root.uid, root.gid, now_ns());
            a.version = 0;
            store_attr(c, &a, true)
        })?;
        tracing::info!(db, storage_url, "formatted");
        Ok(SqlMeta::with_engine(engine))
    }

    /// Open a formatted database; an unformatted or foreign database, or an unsupported
    /// format version, is a [`MetaError::Format`] saying which.
    pub fn open_engine(engine: E) -> MetaResult<SqlMeta<E>> {
        let meta = SqlMeta::with_engine(engine);
        meta.upgrade()?;
        meta.info()?;
        Ok(meta)
    }

    /// Bring a database of an older format version up to this one (one transaction per
    /// step); a foreign or unformatted database is left for [`MetaStore::info`] to report.
    fn upgrade(&self) -> MetaResult<()> {
        let db = self.engine.describe().to_string();
        let stored = |c: &mut dyn Tx| -> MetaResult<Option<String>> {
            if !c.table_names()?.iter().any(|t| t == "fb_format") {
                return Ok(None);
            }
            format_value(c, "version")
        };
        // Looked at in a read transaction first: opening a current database (every mount and
        // every `fusebox dfs` command) takes no write lock.
        let current = self.engine.read(&mut |c| stored(c))?;
        for (from, sql) in schema::migrations(E::DIALECT) {
            if current.as_deref().and_then(|v| v.parse::<u32>().ok()).is_none_or(|v| v > from) {
                continue;
            }
            let done = self.engine.write(&mut |c| {
                // Again inside the write: another client may have upgraded meanwhile.
                if stored(c)?.as_deref() != Some(&from.to_string()) {
                    return Ok(false);
                }
                c.batch(&sql)?;
                c.exec(
                    "UPDATE fb_format SET value = $1 WHERE key = 'version'",
                    params![&(from + 1).to_string()],
                )?;
                Ok(true)
            })?;
            if done {
                tracing::info!(db, from, to = from + 1, "upgraded the metadata format");
            }
        }
        Ok(())
    }

    fn with_engine(engine: E) -> SqlMeta<E> {
        SqlMeta {
            engine,
            slice_ids: Reserved::new("next_slice", SLICE_IDS_PER_RESERVATION),
            inos: Reserved::new("next_ino", NAMES_PER_RESERVATION),
            cookies: Reserved::new("next_cookie", NAMES_PER_RESERVATION),
            sid: Default::default(),
        }
    }

    /// Reserve values of `r`'s counter, in a transaction of their own, unless some are left.
    /// (Not inside another transaction: SQLite has one writer.)
    fn reserve(&self, r: &Reserved) -> MetaResult<()> {
        if !r.ids.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
            return Ok(());
        }
        let n = r.per_reservation;
        let first = self.engine.write(&mut |c| {
            c.query_one(
                "UPDATE counters SET value = value + $2 WHERE name = $1 RETURNING value - $2",
                params![r.counter, n],
            )?
            .uint(0)
        })?;
        let mut ids = r.ids.lock().unwrap_or_else(|e| e.into_inner());
        // Another thread may have reserved meanwhile: keep one range, the rest are skipped.
        if ids.is_empty() {
            *ids = first..first + n;
        }
        Ok(())
    }

    /// The engine.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// Run `f` in a write transaction, publishing the changes it notes (see [`super::coord`])
    /// in the same transaction.
    pub(super) fn write<T>(&self, f: impl FnMut(&mut dyn Tx) -> MetaResult<T>) -> MetaResult<T> {
        self.publishing(false, f)
    }

    /// [`SqlMeta::write`] whose transaction is on stable storage when it returns (data commits).
    pub(super) fn write_durable<T>(&self, f: impl FnMut(&mut dyn Tx) -> MetaResult<T>) -> MetaResult<T> {
        self.publishing(true, f)
    }

    fn publishing<T>(&self, durable: bool, mut f: impl FnMut(&mut dyn Tx) -> MetaResult<T>) -> MetaResult<T> {
        let sid = self.sid();
        let mut run = |c: &mut dyn Tx| {
            let mut noting = Noting { tx: &mut *c, changes: Vec::new() };
            let v = f(&mut noting)?;
            let changes = std::mem::take(&mut noting.changes);
            super::coord::publish(c, E::DIALECT, sid, changes)?;
            Ok(v)
        };
        if durable {
            self.engine.write_durable(&mut run)
        } else {
            self.engine.write(&mut run)
        }
    }

    /// Insert the inode `n` describes under `name` in `parent` (locked and checked by the
    /// caller), with its symlink target and xattrs, and touch the directory.
    fn insert_node(&self, c: &mut dyn Tx, parent: u64, name: &[u8], n: &NewNode) -> MetaResult<Attr> {
        let now = now_ns();
        let ino = self.inos.take(c)?;
        let mut attr = new_attr(ino, n.mode, n.uid, n.gid, now);
        attr.rdev = n.rdev;
        attr.size = n.symlink.as_ref().map_or(0, |t| t.len() as u64);
        store_attr(c, &attr, true)?;
        if let Some(t) = &n.symlink {
            c.exec_later("INSERT INTO symlinks (ino, target) VALUES ($1, $2)", params![ino, t])?;
        }
        for (k, v) in &n.xattrs {
            set_or_remove_xattr(c, ino, k, Some(v))?;
        }
        let cookie = self.cookies.take(c)?;
        add_dentry(c, parent, name, ino, cookie)?;
        touch_dir(c, parent, if attr.is_dir() { 1 } else { 0 }, now)?;
        Ok(attr)
    }

    /// `a` lost its last name in this transaction: while this mount's session lives, no other
    /// mount's orphan reclaim deletes it (its kernel may still have it open).
    fn sustain_if_orphan(&self, c: &mut dyn Tx, a: &Attr) -> MetaResult<()> {
        let sid = self.sid();
        if a.nlink == 0 && sid != 0 {
            c.exec(
                "INSERT INTO sustained (sid, ino) VALUES ($1, $2) ON CONFLICT (sid, ino) DO NOTHING",
                params![sid, a.ino],
            )?;
        }
        Ok(())
    }

    /// This mount's session id (0: none open).
    pub fn sid(&self) -> u64 {
        self.sid.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Set the session id changes are logged under.
    pub(super) fn set_sid(&self, sid: u64) {
        self.sid.store(sid, std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) fn read<T>(&self, mut f: impl FnMut(&mut dyn Tx) -> MetaResult<T>) -> MetaResult<T> {
        self.engine.read(&mut f)
    }
}

impl<E: Engine> MetaStore for SqlMeta<E> {
    fn reads_are_local(&self) -> bool {
        E::LOCAL
    }

    fn sync(&self) -> MetaResult<()> {
        self.engine.sync()
    }

    fn info(&self) -> MetaResult<FormatInfo> {
        let db = self.engine.describe();
        self.read(|c| {
            let tables = c.table_names().map_err(|e| MetaError::Format(format!("{db}: {e}")))?;
            if tables.is_empty() {
                return Err(MetaError::Format(format!(
                    "{db} is not formatted (run `fusebox dfs format {db} --storage URL`)"
                )));
            }
            if !tables.iter().any(|t| t == "fb_format") {
                return Err(MetaError::Format(format!(
                    "{db} holds a foreign schema (tables {}), not a fusebox-dfs file system",
                    tables.join(", ")
                )));
            }
            let mut get = |k: &str| format_value(c, k);
            if get("format")?.as_deref() != Some(FORMAT_MAGIC) {
                return Err(MetaError::Format(format!(
                    "{db} holds a foreign schema (no fusebox-dfs marker)"
                )));
            }
            let version = get("version")?.and_then(|v| v.parse::<u32>().ok());
            if version != Some(FORMAT_VERSION) {
                return Err(MetaError::Format(format!(
                    "{db} has format version {}, this fusebox supports {FORMAT_VERSION}",
                    version.map_or("unknown".into(), |v| v.to_string())
                )));
            }
            let storage_url =
                get("storage_url")?.ok_or_else(|| MetaError::Corrupt(format!("{db}: no storage_url")))?;
            Ok(FormatInfo { version: FORMAT_VERSION, storage_url })
        })
    }

    fn lookup(&self, parent: u64, name: &[u8]) -> MetaResult<Attr> {
        if name.len() > NAME_MAX {
            return Err(errno(libc::ENAMETOOLONG));
        }
        // One statement (one round trip on a server): the parent, its entry and the inode.
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "SELECT p.mode, d.ino, {} FROM inodes p LEFT JOIN dentries d ON d.parent = p.ino AND d.name = $2
                 LEFT JOIN inodes i ON i.ino = d.ino WHERE p.ino = $1",
                attr_cols_of("i")
            )
        });
        self.engine.read_one(&mut |c| {
            let row = c.query_opt(&SQL, params![parent, name])?.ok_or(errno(libc::ENOENT))?;
            if row.uint(0)? as u32 & libc::S_IFMT != libc::S_IFDIR {
                return Err(errno(libc::ENOTDIR));
            }
            if row.is_null(1)? {
                return Err(errno(libc::ENOENT));
            }
            if row.is_null(2)? {
                let ino = row.uint(1)?;
                return Err(MetaError::Corrupt(format!("entry in {parent} names missing inode {ino}")));
            }
            attr_from_row(&row, 2)
        })
    }

    fn parent_of(&self, ino: u64) -> MetaResult<u64> {
        if ino == ROOT_INO {
            return Ok(ROOT_INO);
        }
        self.read(|c| parent(c, ino)?.ok_or(errno(libc::ENOENT)))
    }

    fn getattr(&self, ino: u64) -> MetaResult<Attr> {
        self.engine.read_one(&mut |c| get_attr(c, ino))
    }

    fn update(&self, ino: u64, f: &mut dyn FnMut(&mut Inode) -> Result<(), Errno>) -> MetaResult<Attr> {
        self.write(|c| {
            let (before, _) = load_inode(c, ino, b"")?;
            let mut node = before.clone();
            f(&mut node)?;
            node.attr.ino = ino;
            node.attr.version = before.attr.version + 1;
            if node.attr.size < before.attr.size {
                cut_slices(c, ino, node.attr.size)?;
            }
            store_attr(c, &node.attr, false)?;
            if node.attr.size != before.attr.size || node.attr.mtime_ns != before.attr.mtime_ns {
                c.note(Change::Data(ino));
            }
            if node.acl_access != before.acl_access {
                set_or_remove_xattr(c, ino, ACL_ACCESS, node.acl_access.as_deref())?;
            }
            if node.acl_default != before.acl_default {
                set_or_remove_xattr(c, ino, ACL_DEFAULT, node.acl_default.as_deref())?;
            }
            Ok(node.attr)
        })
    }

    fn create(
        &self, parent: u64, name: &[u8], f: &mut dyn FnMut(&Inode) -> Result<NewNode, Errno>,
    ) -> MetaResult<Attr> {
        check_name(name)?;
        self.reserve(&self.inos)?;
        self.reserve(&self.cookies)?;
        self.write(|c| {
            let (p, existing) = load_inode(c, parent, name)?;
            check_live_dir(&p.attr)?;
            if existing.is_some() {
                return Err(errno(libc::EEXIST));
            }
            let n = f(&p)?;
            self.insert_node(c, parent, name, &n)
        })
    }

    fn create_in_known_dir(
        &self, parent: u64, parent_version: u64, name: &[u8], node: &NewNode,
    ) -> MetaResult<Option<Attr>> {
        if E::LOCAL {
            return Ok(None);
        }
        check_name(name)?;
        self.reserve(&self.inos)?;
        self.reserve(&self.cookies)?;
        let created = self.write(|c| {
            // Lock the directory, then check (dividing by zero if it fails, which aborts the
            // whole transaction, COMMIT included, in the same round trip) that it is as the
            // caller knew it: same version (every change of its attributes or entries bumps
            // it), still linked, no default ACL, and the name free.
            c.exec_later(&lock_attr_sql(c), params![parent])?;
            c.exec_later(
                "SELECT 1 / (SELECT COUNT(*) FROM inodes WHERE ino = $1 AND version = $2 AND nlink > 0
                   AND NOT EXISTS (SELECT 1 FROM xattrs WHERE ino = $1 AND name = $3)
                   AND NOT EXISTS (SELECT 1 FROM dentries WHERE parent = $1 AND name = $4))",
                params![parent, parent_version, ACL_DEFAULT, name],
            )?;
            self.insert_node(c, parent, name, node)
        });
        match created {
            Ok(a) => Ok(Some(a)),
            Err(MetaError::Changed(why)) => {
                tracing::debug!(parent, why, "directory changed since last seen; creating the long way");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> MetaResult<Attr> {
        check_name(newname)?;
        self.reserve(&self.cookies)?;
        self.write(|c| {
            // Directory first, then the inode, as unlink does.
            c.lock_inodes(&[newparent])?;
            let a = locked_attr(c, ino)?;
            live_dir(c, newparent)?;
            if a.is_dir() {
                return Err(errno(libc::EPERM));
            }
            if dentry(c, newparent, newname)?.is_some() {
                return Err(errno(libc::EEXIST));
            }
            let now = now_ns();
            let cookie = self.cookies.take(c)?;
            add_dentry(c, newparent, newname, ino, cookie)?;
            touch_node(c, ino, 1, now)?;
            touch_dir(c, newparent, 0, now)?;
            get_attr(c, ino)
        })
    }

    fn unlink(&self, parent: u64, name: &[u8]) -> MetaResult<Attr> {
        self.write(|c| {
            c.lock_inodes(&[parent])?;
            dir_attr(c, parent)?;
            let (ino, cookie) = dentry(c, parent, name)?.ok_or(errno(libc::ENOENT))?;
            if locked_attr(c, ino)?.is_dir() {
                return Err(errno(libc::EISDIR));
            }
            let now = now_ns();
            remove_dentry(c, cookie, parent, name)?;
            touch_node(c, ino, -1, now)?;
            touch_dir(c, parent, 0, now)?;
            let a = get_attr(c, ino)?;
            self.sustain_if_orphan(c, &a)?;
            Ok(a)
        })
    }

    fn rmdir(&self, parent: u64, name: &[u8]) -> MetaResult<Attr> {
        if name == b"." {
            return Err(errno(libc::EINVAL));
        }
        if name == b".." {
            return Err(errno(libc::ENOTEMPTY));
        }
        self.write(|c| {
            c.lock_inodes(&[parent])?;
            dir_attr(c, parent)?;
            let (ino, cookie) = dentry(c, parent, name)?.ok_or(errno(libc::ENOENT))?;
            // Locked before the emptiness check: a create inside it locks it too.
            let mut a = locked_attr(c, ino)?;
            if !a.is_dir() {
                return Err(errno(libc::ENOTDIR));
            }
            if !is_empty_dir(c, ino)? {
                return Err(errno(libc::ENOTEMPTY));
            }
            let now = now_ns();
            remove_dentry(c, cookie, parent, name)?;
            a.nlink = 0;
            a.ctime_ns = now;
            a.version += 1;
            store_attr(c, &a, false)?;
            touch_dir(c, parent, -1, now)?;
            self.sustain_if_orphan(c, &a)?;
            Ok(a)
        })
    }

    fn rename(
        &self, parent: u64, name: &[u8], newparent: u64, newname: &[u8], flags: u32, caller: Caller,
    ) -> MetaResult<Option<Attr>> {
        let known = libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE | libc::RENAME_WHITEOUT;
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        if flags & !known != 0 || exchange && flags & (libc::RENAME_NOREPLACE | libc::RENAME_WHITEOUT) != 0 {
            return Err(errno(libc::EINVAL));
        }
        check_name(newname)?;
        if name.len() > NAME_MAX {
            return Err(errno(libc::ENAMETOOLONG));
        }
        self.write(|c| {
            if parent != newparent {
                // Moves between directories run one at a time, so the ancestor check below
                // cannot race another move into a loop (the VFS does the same per mount).
                c.lock_renames()?;
            }
            c.lock_inodes(&[parent, newparent])?;
            dir_attr(c, parent)?;
            live_dir(c, newparent)?;
            let (src, src_cookie) = dentry(c, parent, name)?.ok_or(errno(libc::ENOENT))?;
            let dst = dentry(c, newparent, newname)?;
            match dst {
                Some((d, _)) => c.lock_inodes(&[src, d])?,
                None => c.lock_inodes(&[src])?,
            }
            if dst.map(|d| d.0) == Some(src) {
                return Ok(None); // Two names of one inode: POSIX says do nothing.
            }
            match (dst, exchange) {
                (None, true) => return Err(errno(libc::ENOENT)),
                (Some(_), false) if flags & libc::RENAME_NOREPLACE != 0 => return Err(errno(libc::EEXIST)),
                _ => {}
            }
            let src_attr = get_attr(c, src)?;
            let dst_attr = match dst {
                Some((d, _)) => Some(get_attr(c, d)?),
                None => None,
            };
            // A directory may not move below itself.
            if src_attr.is_dir() && is_ancestor(c, src, newparent)? {
                return Err(errno(libc::EINVAL));
            }
            if let (true, Some(d)) = (exchange, &dst_attr) {
                if d.is_dir() && is_ancestor(c, d.ino, parent)? {
                    return Err(errno(libc::EINVAL));
                }
            }
            if let (false, Some(d)) = (exchange, &dst_attr) {
                match (src_attr.is_dir(), d.is_dir()) {
                    (true, false) => return Err(errno(libc::ENOTDIR)),
                    (false, true) => return Err(errno(libc::EISDIR)),
                    (true, true) if !is_empty_dir(c, d.ino)? => return Err(errno(libc::ENOTEMPTY)),
                    _ => {}
                }
            }
            let now = now_ns();
            let cross = parent != newparent;
            if exchange {
                let (d, d_cookie) = dst.ok_or(errno(libc::ENOENT))?;
                let d_attr = dst_attr.as_ref().ok_or(errno(libc::ENOENT))?;
                c.exec("UPDATE dentries SET ino = $2 WHERE cookie = $1", params![src_cookie, d])?;
                c.exec("UPDATE dentries SET ino = $2 WHERE cookie = $1", params![d_cookie, src])?;
                c.note(Change::Entry(parent, name.to_vec()));
                c.note(Change::Entry(newparent, newname.to_vec()));
                // A directory moving one way and a non-directory the other way moves a ".." link.
                let delta = match (src_attr.is_dir(), d_attr.is_dir()) {
                    (true, false) if cross => 1,
                    (false, true) if cross => -1,
                    _ => 0,
                };
                touch_dir(c, parent, -delta, now)?;
                if cross {
                    touch_dir(c, newparent, delta, now)?;
                }
                touch_node(c, src, 0, now)?;
                touch_node(c, d, 0, now)?;
                return Ok(None);
            }
            // Plain rename (maybe replacing `dst`).
            let mut replaced = None;
            if let Some((_, d_cookie)) = dst {
                remove_dentry(c, d_cookie, newparent, newname)?;
                let mut da = dst_attr.clone().ok_or(errno(libc::ENOENT))?;
                if da.is_dir() {
                    da.nlink = 0;
                    touch_dir(c, newparent, -1, now)?;
                } else {
                    da.nlink = da.nlink.saturating_sub(1);
                }
                da.ctime_ns = now;
                da.version += 1;
                store_attr(c, &da, false)?;
                self.sustain_if_orphan(c, &da)?;
                replaced = Some(da);
            }
            // Counters are always taken in the order next_ino, next_cookie (as create does), so
            // two transactions never wait for each other's counter rows in a circle.
            let whiteout_ino =
                if flags & libc::RENAME_WHITEOUT != 0 { Some(next(c, "next_ino")?) } else { None };
            let cookie = next(c, "next_cookie")?;
            c.exec(
                "UPDATE dentries SET cookie = $2, parent = $3, name = $4 WHERE cookie = $1",
                params![src_cookie, cookie, newparent, newname],
            )?;
            c.note(Change::Entry(parent, name.to_vec()));
            c.note(Change::Entry(newparent, newname.to_vec()));
            let moved_dir = src_attr.is_dir() && cross;
            touch_dir(c, parent, if moved_dir { -1 } else { 0 }, now)?;
            if cross {
                touch_dir(c, newparent, if moved_dir { 1 } else { 0 }, now)?;
            }
            touch_node(c, src, 0, now)?;
            if let Some(w_ino) = whiteout_ino {
                // The old name now holds a whiteout: a 0:0 character device owned by the caller.
                let w = new_attr(w_ino, libc::S_IFCHR, caller.uid, caller.gid, now);
                store_attr(c, &w, true)?;
                let cookie = next(c, "next_cookie")?;
                add_dentry(c, parent, name, w.ino, cookie)?;
            }
            Ok(replaced)
        })
    }

    fn readlink(&self, ino: u64) -> MetaResult<Vec<u8>> {
        self.read(|c| {
            get_attr(c, ino)?;
            match c.query_opt("SELECT target FROM symlinks WHERE ino = $1", params![ino])? {
                Some(r) => r.bytes(0),
                None => Err(errno(libc::EINVAL)),
            }
        })
    }

    fn readdir(&self, ino: u64, after: u64, limit: usize) -> MetaResult<Vec<DirItem>> {
        self.read(|c| {
            dir_attr(c, ino)?;
            let cols = attr_cols_of("i");
            let rows = c.query(
                &format!(
                    "SELECT {cols}, d.cookie, d.name FROM dentries d JOIN inodes i ON i.ino = d.ino
                     WHERE d.parent = $1 AND d.cookie > $2 ORDER BY d.cookie LIMIT $3"
                ),
                params![ino, after, limit as u64],
            )?;
            rows.iter()
                .map(|r| Ok(DirItem { attr: attr_from_row(r, 0)?, cookie: r.uint(12)?, name: r.bytes(13)? }))
                .collect()
        })
    }

    fn get_xattr(&self, ino: u64, name: &[u8]) -> MetaResult<Vec<u8>> {
        self.read(|c| {
            get_attr(c, ino)?;
            xattr(c, ino, name)?.ok_or(errno(libc::ENODATA))
        })
    }

    fn list_xattr(&self, ino: u64) -> MetaResult<Vec<Vec<u8>>> {
        self.read(|c| {
            get_attr(c, ino)?;
            let rows = c.query("SELECT name FROM xattrs WHERE ino = $1 ORDER BY name", params![ino])?;
            rows.iter().map(|r| r.bytes(0)).collect()
        })
    }

    fn set_xattr(&self, ino: u64, name: &[u8], value: &[u8], flags: i32) -> MetaResult<()> {
        self.write(|c| {
            locked_attr(c, ino)?;
            let exists = xattr(c, ino, name)?.is_some();
            if flags & libc::XATTR_CREATE != 0 && exists {
                return Err(errno(libc::EEXIST));
            }
            if flags & libc::XATTR_REPLACE != 0 && !exists {
                return Err(errno(libc::ENODATA));
            }
            set_or_remove_xattr(c, ino, name, Some(value))?;
            touch_node(c, ino, 0, now_ns())
        })
    }

    fn remove_xattr(&self, ino: u64, name: &[u8]) -> MetaResult<()> {
        self.write(|c| {
            locked_attr(c, ino)?;
            if xattr(c, ino, name)?.is_none() {
                return Err(errno(libc::ENODATA));
            }
            set_or_remove_xattr(c, ino, name, None)?;
            touch_node(c, ino, 0, now_ns())
        })
    }

    /// From a range reserved in one transaction; ids of a range a crashed daemon did not use
    /// are never handed out again.
    fn new_slice_id(&self) -> MetaResult<u64> {
        loop {
            if let Some(id) = self.slice_ids.pop() {
                return Ok(id);
            }
            self.reserve(&self.slice_ids)?;
        }
    }

    fn slices(&self, ino: u64, chunk: u64) -> MetaResult<Vec<SliceRef>> {
        self.engine.read_one(&mut |c| chunk_slices(c, ino, chunk))
    }

    fn commit(&self, ino: u64, slices: &[NewSlice], end: u64, mtime_ns: Option<i64>) -> MetaResult<()> {
        self.write_durable(|c| {
            // Nothing is read first: the update takes the inode's row lock and computes the new
            // size itself, the slices follow it (so they queue behind another commit to the
            // inode), and on a server the whole commit is one round trip.
            let times = if mtime_ns.is_some() { ", mtime_ns = $3, ctime_ns = $3" } else { "" };
            let sql = format!(
                "UPDATE inodes SET size = CASE WHEN size < $2 THEN $2 ELSE size END{times},
                 version = version + 1 WHERE ino = $1"
            );
            match mtime_ns {
                Some(t) => c.exec_later(&sql, params![ino, end, t])?,
                None => c.exec_later(&sql, params![ino, end])?,
            }
            for s in slices {
                insert_slice(c, E::DIALECT, ino, s)?;
            }
            c.note(Change::Data(ino));
            Ok(())
        })
    }

    fn remove_if_orphan(&self, ino: u64) -> MetaResult<bool> {
        if ino == ROOT_INO {
            return Ok(false);
        }
        self.write(|c| {
            match locked_attr(c, ino) {
                Ok(_) => {}
                Err(MetaError::Fs(_)) => return Ok(false),
                Err(e) => return Err(e),
            }
            if parent(c, ino)?.is_some() {
                return Ok(false);
            }
            // A removed directory with entries would take them out of reach: keep it (and
            // log it; live_dir() prevents this).
            if !is_empty_dir(c, ino)? {
                tracing::error!(ino, "a removed directory still has entries; not deleting it");
                return Ok(false);
            }
            delete_inode(c, ino)?;
            Ok(true)
        })
    }

    fn reclaim_orphans(&self) -> MetaResult<u64> {
        self.write(|c| {
            let orphans = c.query(
                "SELECT ino FROM inodes WHERE ino != 1 AND NOT EXISTS
                 (SELECT 1 FROM dentries WHERE dentries.ino = inodes.ino) AND NOT EXISTS
                 (SELECT 1 FROM sustained WHERE sustained.ino = inodes.ino)",
                params![],
            )?;
            let mut deleted = 0;
            for r in &orphans {
                // Locked and looked at again: a link may have named it since the select.
                let ino = r.uint(0)?;
                c.lock_inodes(&[ino])?;
                if parent(c, ino)?.is_none() && is_empty_dir(c, ino)? {
                    delete_inode(c, ino)?;
                    deleted += 1;
                }
            }
            Ok(deleted)
        })
    }

    fn usage(&self) -> MetaResult<Usage> {
        self.read(|c| {
            let r = c.query_one(
                "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN mode & 61440 = 32768 THEN size ELSE 0 END), 0) AS BIGINT)
                 FROM inodes",
                params![],
            )?;
            Ok(Usage { inodes: r.uint(0)?, bytes: r.uint(1)? })
        })
    }

    fn referenced_blocks(&self) -> MetaResult<Vec<BlockRef>> {
        self.read(|c| {
            // Slices kept in the metadata have no objects.
            let rows = c.query(
                "SELECT slice_id, slice_size, off, len FROM chunk_slices WHERE data IS NULL",
                params![],
            )?;
            let mut set = BTreeSet::new();
            for r in &rows {
                let (slice_id, size, off, len) = (r.uint(0)?, r.uint(1)?, r.uint(2)?, r.uint(3)?);
                for index in blocks_covering(off, len) {
                    set.insert(BlockRef { slice_id, index, len: block_len(size, index) });
                }
            }
            Ok(set.into_iter().collect())
        })
    }

    fn fragmented_chunks(&self, min_slices: u64, limit: usize) -> MetaResult<Vec<(u64, u64)>> {
        self.read(|c| {
            let rows = c.query(
                "SELECT ino, chunk FROM chunk_slices GROUP BY ino, chunk HAVING COUNT(*) >= $1
                 ORDER BY COUNT(*) DESC, ino, chunk LIMIT $2",
                params![min_slices, limit as u64],
            )?;
            rows.iter().map(|r| Ok((r.uint(0)?, r.uint(1)?))).collect()
        })
    }

    fn replace_slices(&self, ino: u64, chunk: u64, old: &[SliceRef], new: &[NewSlice]) -> MetaResult<bool> {
        if let Some(s) = new.iter().find(|s| s.chunk != chunk) {
            return Err(MetaError::Corrupt(format!("a slice of chunk {} is not of chunk {chunk}", s.chunk)));
        }
        self.write(|c| {
            c.lock_inodes(&[ino])?;
            if chunk_slices(c, ino, chunk)? != old {
                return Ok(false);
            }
            c.exec("DELETE FROM chunk_slices WHERE ino = $1 AND chunk = $2", params![ino, chunk])?;
            for s in new {
                insert_slice(c, E::DIALECT, ino, s)?;
            }
            Ok(true)
        })
    }
}
