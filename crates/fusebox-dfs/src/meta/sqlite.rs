//! The SQLite metadata engine: one database file in WAL mode (readers in other processes run
//! beside the writer), `busy_timeout` instead of failing on a locked database, and
//! `synchronous=FULL` so a committed transaction survives a power loss, not only a crash.
//!
//! One connection behind a mutex serves the whole mount: SQLite admits one writer at a time
//! anyway, and write transactions start IMMEDIATE so two processes never deadlock upgrading a
//! read lock.

use super::schema::{self, Dialect, COUNTERS, FORMAT_MAGIC, FORMAT_VERSION};
use super::*;
use crate::layout::{block_len, blocks_covering, CHUNK_SIZE};
use rusqlite::{
    params, params_from_iter, Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior,
};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// How long a statement waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

const ATTR_COLS: &str =
    "ino, mode, uid, gid, rdev, size, atime_ns, mtime_ns, ctime_ns, nlink, version, generation";

const ACL_ACCESS: &[u8] = b"system.posix_acl_access";
const ACL_DEFAULT: &[u8] = b"system.posix_acl_default";

/// The SQLite engine.
pub struct SqliteMeta {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteMeta").field("path", &self.path).finish()
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

fn attr_from_row(r: &Row<'_>) -> rusqlite::Result<Attr> {
    Ok(Attr {
        ino: r.get::<_, i64>(0)? as u64,
        mode: r.get::<_, i64>(1)? as u32,
        uid: r.get::<_, i64>(2)? as u32,
        gid: r.get::<_, i64>(3)? as u32,
        rdev: r.get::<_, i64>(4)? as u32,
        size: r.get::<_, i64>(5)? as u64,
        atime_ns: r.get(6)?,
        mtime_ns: r.get(7)?,
        ctime_ns: r.get(8)?,
        nlink: r.get::<_, i64>(9)? as u32,
        version: r.get::<_, i64>(10)? as u64,
        generation: r.get::<_, i64>(11)? as u64,
    })
}

fn get_attr(c: &Connection, ino: u64) -> MetaResult<Attr> {
    c.query_row(&format!("SELECT {ATTR_COLS} FROM inodes WHERE ino = ?1"), [ino as i64], attr_from_row)
        .optional()?
        .ok_or(errno(libc::ENOENT))
}

/// An inode's columns in `ATTR_COLS` order (?1 = ino … ?12 = generation).
fn attr_row(a: &Attr) -> [i64; 12] {
    [
        a.ino as i64,
        a.mode as i64,
        a.uid as i64,
        a.gid as i64,
        a.rdev as i64,
        a.size as i64,
        a.atime_ns,
        a.mtime_ns,
        a.ctime_ns,
        a.nlink as i64,
        a.version as i64,
        a.generation as i64,
    ]
}

fn put_attr(c: &Connection, a: &Attr) -> MetaResult<()> {
    c.execute(
        "UPDATE inodes SET mode = ?2, uid = ?3, gid = ?4, rdev = ?5, size = ?6, atime_ns = ?7, mtime_ns = ?8,
         ctime_ns = ?9, nlink = ?10, version = ?11, generation = ?12 WHERE ino = ?1",
        params_from_iter(attr_row(a)),
    )?;
    Ok(())
}

fn insert_attr(c: &Connection, a: &Attr) -> MetaResult<()> {
    c.execute(
        &format!(
            "INSERT INTO inodes ({ATTR_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
        ),
        params_from_iter(attr_row(a)),
    )?;
    Ok(())
}

/// Take the next value of counter `name`.
fn next(c: &Connection, name: &str) -> MetaResult<u64> {
    let v: i64 = c.query_row(
        "UPDATE counters SET value = value + 1 WHERE name = ?1 RETURNING value - 1",
        [name],
        |r| r.get(0),
    )?;
    Ok(v as u64)
}

fn dir_attr(c: &Connection, ino: u64) -> MetaResult<Attr> {
    let a = get_attr(c, ino)?;
    if !a.is_dir() {
        return Err(errno(libc::ENOTDIR));
    }
    Ok(a)
}

fn dentry(c: &Connection, parent: u64, name: &[u8]) -> MetaResult<Option<(u64, u64)>> {
    Ok(c.query_row(
        "SELECT ino, cookie FROM dentries WHERE parent = ?1 AND name = ?2",
        params![parent as i64, name],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )
    .optional()?)
}

fn is_empty_dir(c: &Connection, ino: u64) -> MetaResult<bool> {
    let any: Option<i64> = c
        .query_row("SELECT 1 FROM dentries WHERE parent = ?1 LIMIT 1", [ino as i64], |r| r.get(0))
        .optional()?;
    Ok(any.is_none())
}

fn xattr(c: &Connection, ino: u64, name: &[u8]) -> MetaResult<Option<Vec<u8>>> {
    Ok(c.query_row("SELECT value FROM xattrs WHERE ino = ?1 AND name = ?2", params![ino as i64, name], |r| {
        r.get(0)
    })
    .optional()?)
}

fn set_or_remove_xattr(c: &Connection, ino: u64, name: &[u8], value: Option<&[u8]>) -> MetaResult<()> {
    match value {
        Some(v) => c.execute(
            "INSERT INTO xattrs (ino, name, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (ino, name) DO UPDATE SET value = excluded.value",
            params![ino as i64, name, v],
        )?,
        None => c.execute("DELETE FROM xattrs WHERE ino = ?1 AND name = ?2", params![ino as i64, name])?,
    };
    Ok(())
}

fn load_inode(c: &Connection, ino: u64) -> MetaResult<Inode> {
    let attr = get_attr(c, ino)?;
    Ok(Inode { attr, acl_access: xattr(c, ino, ACL_ACCESS)?, acl_default: xattr(c, ino, ACL_DEFAULT)? })
}

/// Change a directory's link count by `delta` and set its mtime and ctime (an entry was added
/// or removed).
fn touch_dir(c: &Connection, ino: u64, nlink_delta: i64, now: i64) -> MetaResult<()> {
    c.execute(
        "UPDATE inodes SET nlink = nlink + ?2, mtime_ns = ?3, ctime_ns = ?3, version = version + 1 WHERE ino = ?1",
        params![ino as i64, nlink_delta, now],
    )?;
    Ok(())
}

/// Change an inode's link count by `delta` and set its ctime.
fn touch_node(c: &Connection, ino: u64, nlink_delta: i64, now: i64) -> MetaResult<()> {
    c.execute(
        "UPDATE inodes SET nlink = MAX(nlink + ?2, 0), ctime_ns = ?3, version = version + 1 WHERE ino = ?1",
        params![ino as i64, nlink_delta, now],
    )?;
    Ok(())
}

/// Cut the slices of `ino` at `size`: slices past it go, the one across it is shortened.
fn cut_slices(c: &Connection, ino: u64, size: u64) -> MetaResult<()> {
    let (chunk, at) = ((size / CHUNK_SIZE) as i64, (size % CHUNK_SIZE) as i64);
    c.execute(
        "DELETE FROM chunk_slices WHERE ino = ?1 AND (chunk > ?2 OR (chunk = ?2 AND pos >= ?3))",
        params![ino as i64, chunk, at],
    )?;
    c.execute(
        "UPDATE chunk_slices SET len = ?3 - pos WHERE ino = ?1 AND chunk = ?2 AND pos + len > ?3",
        params![ino as i64, chunk, at],
    )?;
    Ok(())
}

fn delete_inode(c: &Connection, ino: u64) -> MetaResult<()> {
    for table in ["inodes", "xattrs", "symlinks", "chunk_slices"] {
        c.execute(&format!("DELETE FROM {table} WHERE ino = ?1"), [ino as i64])?;
    }
    Ok(())
}

/// True when `ancestor` is `ino` or one of the directories above it.
fn is_ancestor(c: &Connection, ancestor: u64, mut ino: u64) -> MetaResult<bool> {
    let mut hops = 0;
    loop {
        if ino == ancestor {
            return Ok(true);
        }
        if ino == ROOT_INO {
            return Ok(false);
        }
        let parent: Option<i64> = c
            .query_row("SELECT parent FROM dentries WHERE ino = ?1", [ino as i64], |r| r.get(0))
            .optional()?;
        let Some(p) = parent else { return Ok(false) };
        ino = p as u64;
        hops += 1;
        if hops > 1_000_000 {
            return Err(MetaError::Corrupt(format!("directory loop above inode {ino}")));
        }
    }
}

fn table_names(c: &Connection) -> MetaResult<Vec<String>> {
    let mut st =
        c.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")?;
    let names = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    Ok(names)
}

impl SqliteMeta {
    fn connect(path: &Path, create: bool) -> MetaResult<Connection> {
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
        conn.execute_batch("PRAGMA synchronous = FULL;")?;
        Ok(conn)
    }

    /// Create a new file system in the database at `path` (created if missing) whose blocks
    /// live at `storage_url`. A database holding any table is refused unless `force`, which
    /// drops every table first.
    pub fn format(path: &Path, storage_url: &str, force: bool, root: Caller) -> MetaResult<SqliteMeta> {
        let mut conn = Self::connect(path, true)?;
        let tables = table_names(&conn)?;
        if !tables.is_empty() && !force {
            return Err(MetaError::Format(format!(
                "{} is not empty ({} tables); use --force to erase it",
                path.display(),
                tables.len()
            )));
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for t in &tables {
            tx.execute_batch(&format!("DROP TABLE IF EXISTS \"{}\";", t.replace('"', "\"\"")))?;
        }
        tx.execute_batch(&schema::ddl(Dialect::Sqlite))?;
        for (k, v) in [
            ("format", FORMAT_MAGIC.to_string()),
            ("version", FORMAT_VERSION.to_string()),
            ("storage_url", storage_url.to_string()),
        ] {
            tx.execute("INSERT INTO fb_format (key, value) VALUES (?1, ?2)", params![k, v])?;
        }
        for (name, v) in COUNTERS {
            tx.execute("INSERT INTO counters (name, value) VALUES (?1, ?2)", params![name, v])?;
        }
        let now = now_ns();
        let root = Attr {
            ino: ROOT_INO,
            mode: libc::S_IFDIR | 0o755,
            uid: root.uid,
            gid: root.gid,
            atime_ns: now,
            mtime_ns: now,
            ctime_ns: now,
            nlink: 2,
            ..Default::default()
        };
        insert_attr(&tx, &root)?;
        tx.commit()?;
        tracing::info!(path = %path.display(), storage_url, "formatted");
        Ok(SqliteMeta { conn: Mutex::new(conn), path: path.to_path_buf() })
    }

    /// Open a formatted database; a missing file, a foreign or unformatted database, or an
    /// unsupported format version is a [`MetaError::Format`] saying which.
    pub fn open(path: &Path) -> MetaResult<SqliteMeta> {
        let conn = Self::connect(path, false)?;
        let meta = SqliteMeta { conn: Mutex::new(conn), path: path.to_path_buf() };
        meta.info()?;
        Ok(meta)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` in a write transaction, committed when `f` succeeds and rolled back otherwise.
    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> MetaResult<T>) -> MetaResult<T> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let v = f(&tx)?;
        tx.commit()?;
        Ok(v)
    }

    /// Run `f` in a read transaction (one consistent snapshot).
    fn read<T>(&self, f: impl FnOnce(&Transaction<'_>) -> MetaResult<T>) -> MetaResult<T> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let v = f(&tx)?;
        tx.finish()?;
        Ok(v)
    }
}

impl MetaStore for SqliteMeta {
    fn info(&self) -> MetaResult<FormatInfo> {
        let path = self.path.display().to_string();
        self.read(|c| {
            let tables = table_names(c).map_err(|e| MetaError::Format(format!("{path}: {e}")))?;
            if tables.is_empty() {
                return Err(MetaError::Format(format!(
                    "{path} is not formatted (run `fusebox dfs format {path} --storage URL`)"
                )));
            }
            if !tables.iter().any(|t| t == "fb_format") {
                return Err(MetaError::Format(format!(
                    "{path} holds a foreign schema (tables {}), not a fusebox-dfs file system",
                    tables.join(", ")
                )));
            }
            let get = |k: &str| -> MetaResult<Option<String>> {
                Ok(c.query_row("SELECT value FROM fb_format WHERE key = ?1", [k], |r| r.get(0)).optional()?)
            };
            if get("format")?.as_deref() != Some(FORMAT_MAGIC) {
                return Err(MetaError::Format(format!(
                    "{path} holds a foreign schema (no fusebox-dfs marker)"
                )));
            }
            let version = get("version")?.and_then(|v| v.parse::<u32>().ok());
            if version != Some(FORMAT_VERSION) {
                return Err(MetaError::Format(format!(
                    "{path} has format version {}, this fusebox supports {FORMAT_VERSION}",
                    version.map_or("unknown".into(), |v| v.to_string())
                )));
            }
            let storage_url =
                get("storage_url")?.ok_or_else(|| MetaError::Corrupt(format!("{path}: no storage_url")))?;
            Ok(FormatInfo { version: FORMAT_VERSION, storage_url })
        })
    }

    fn lookup(&self, parent: u64, name: &[u8]) -> MetaResult<Attr> {
        if name.len() > NAME_MAX {
            return Err(errno(libc::ENAMETOOLONG));
        }
        self.read(|c| {
            dir_attr(c, parent)?;
            let (ino, _) = dentry(c, parent, name)?.ok_or(errno(libc::ENOENT))?;
            get_attr(c, ino).map_err(|e| match e {
                MetaError::Fs(_) => {
                    MetaError::Corrupt(format!("entry in {parent} names missing inode {ino}"))
                }
                e => e,
            })
        })
    }

    fn parent_of(&self, ino: u64) -> MetaResult<u64> {
        if ino == ROOT_INO {
            return Ok(ROOT_INO);
        }
        self.read(|c| {
            let p: Option<i64> = c
                .query_row("SELECT parent FROM dentries WHERE ino = ?1", [ino as i64], |r| r.get(0))
                .optional()?;
            p.map(|p| p as u64).ok_or(errno(libc::ENOENT))
        })
    }

    fn getattr(&self, ino: u64) -> MetaResult<Attr> {
        self.read(|c| get_attr(c, ino))
    }

    fn update(&self, ino: u64, f: &mut dyn FnMut(&mut Inode) -> Result<(), Errno>) -> MetaResult<Attr> {
        self.write(|c| {
            let before = load_inode(c, ino)?;
            let mut node = before.clone();
            f(&mut node)?;
            node.attr.ino = ino;
            node.attr.version = before.attr.version + 1;
            if node.attr.size < before.attr.size {
                cut_slices(c, ino, node.attr.size)?;
            }
            put_attr(c, &node.attr)?;
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
        &self,
        parent: u64,
        name: &[u8],
        f: &mut dyn FnMut(&Inode) -> Result<NewNode, Errno>,
    ) -> MetaResult<Attr> {
        check_name(name)?;
        self.write(|c| {
            dir_attr(c, parent)?;
            if dentry(c, parent, name)?.is_some() {
                return Err(errno(libc::EEXIST));
            }
            let p = load_inode(c, parent)?;
            let n = f(&p)?;
            let now = now_ns();
            let is_dir = n.mode & libc::S_IFMT == libc::S_IFDIR;
            let attr = Attr {
                ino: next(c, "next_ino")?,
                mode: n.mode,
                uid: n.uid,
                gid: n.gid,
                rdev: n.rdev,
                size: n.symlink.as_ref().map_or(0, |t| t.len() as u64),
                atime_ns: now,
                mtime_ns: now,
                ctime_ns: now,
                nlink: if is_dir { 2 } else { 1 },
                version: 1,
                generation: 0,
            };
            insert_attr(c, &attr)?;
            if let Some(t) = &n.symlink {
                c.execute("INSERT INTO symlinks (ino, target) VALUES (?1, ?2)", params![attr.ino as i64, t])?;
            }
            for (k, v) in &n.xattrs {
                set_or_remove_xattr(c, attr.ino, k, Some(v))?;
            }
            let cookie = next(c, "next_cookie")?;
            c.execute(
                "INSERT INTO dentries (cookie, parent, name, ino) VALUES (?1, ?2, ?3, ?4)",
                params![cookie as i64, parent as i64, name, attr.ino as i64],
            )?;
            touch_dir(c, parent, if is_dir { 1 } else { 0 }, now)?;
            Ok(attr)
        })
    }

    fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> MetaResult<Attr> {
        check_name(newname)?;
        self.write(|c| {
            dir_attr(c, newparent)?;
            let a = get_attr(c, ino)?;
            if a.is_dir() {
                return Err(errno(libc::EPERM));
            }
            if dentry(c, newparent, newname)?.is_some() {
                return Err(errno(libc::EEXIST));
            }
            let now = now_ns();
            let cookie = next(c, "next_cookie")?;
            c.execute(
                "INSERT INTO dentries (cookie, parent, name, ino) VALUES (?1, ?2, ?3, ?4)",
                params![cookie as i64, newparent as i64, newname, ino as i64],
            )?;
            touch_node(c, ino, 1, now)?;
            touch_dir(c, newparent, 0, now)?;
            get_attr(c, ino)
        })
    }

    fn unlink(&self, parent: u64, name: &[u8]) -> MetaResult<Attr> {
        self.write(|c| {
            dir_attr(c, parent)?;
            let (ino, cookie) = dentry(c, parent, name)?.ok_or(errno(libc::ENOENT))?;
            if get_attr(c, ino)?.is_dir() {
                return Err(errno(libc::EISDIR));
            }
            let now = now_ns();
            c.execute("DELETE FROM dentries WHERE cookie = ?1", [cookie as i64])?;
            touch_node(c, ino, -1, now)?;
            touch_dir(c, parent, 0, now)?;
            get_attr(c, ino)
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
            dir_attr(c, parent)?;
            let (ino, cookie) = dentry(c, parent, name)?.ok_or(errno(libc::ENOENT))?;
            let mut a = get_attr(c, ino)?;
            if !a.is_dir() {
                return Err(errno(libc::ENOTDIR));
            }
            if !is_empty_dir(c, ino)? {
                return Err(errno(libc::ENOTEMPTY));
            }
            let now = now_ns();
            c.execute("DELETE FROM dentries WHERE cookie = ?1", [cookie as i64])?;
            a.nlink = 0;
            a.ctime_ns = now;
            a.version += 1;
            put_attr(c, &a)?;
            touch_dir(c, parent, -1, now)?;
            Ok(a)
        })
    }

    fn rename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        flags: u32,
        caller: Caller,
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
            dir_attr(c, parent)?;
            dir_attr(c, newparent)?;
            let (src, src_cookie) = dentry(c, parent, name)?.ok_or(errno(libc::ENOENT))?;
            let dst = dentry(c, newparent, newname)?;
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
                c.execute(
                    "UPDATE dentries SET ino = ?2 WHERE cookie = ?1",
                    params![src_cookie as i64, d as i64],
                )?;
                c.execute(
                    "UPDATE dentries SET ino = ?2 WHERE cookie = ?1",
                    params![d_cookie as i64, src as i64],
                )?;
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
            if let Some((d, d_cookie)) = dst {
                c.execute("DELETE FROM dentries WHERE cookie = ?1", [d_cookie as i64])?;
                let mut da = dst_attr.clone().ok_or(errno(libc::ENOENT))?;
                if da.is_dir() {
                    da.nlink = 0;
                    touch_dir(c, newparent, -1, now)?;
                } else {
                    da.nlink = da.nlink.saturating_sub(1);
                }
                da.ctime_ns = now;
                da.version += 1;
                put_attr(c, &da)?;
                replaced = Some(da);
                let _ = d;
            }
            let cookie = next(c, "next_cookie")?;
            c.execute(
                "UPDATE dentries SET cookie = ?2, parent = ?3, name = ?4 WHERE cookie = ?1",
                params![src_cookie as i64, cookie as i64, newparent as i64, newname],
            )?;
            let moved_dir = src_attr.is_dir() && cross;
            touch_dir(c, parent, if moved_dir { -1 } else { 0 }, now)?;
            if cross {
                touch_dir(c, newparent, if moved_dir { 1 } else { 0 }, now)?;
            }
            touch_node(c, src, 0, now)?;
            if flags & libc::RENAME_WHITEOUT != 0 {
                // The old name now holds a whiteout: a 0:0 character device owned by the caller.
                let w = Attr {
                    ino: next(c, "next_ino")?,
                    mode: libc::S_IFCHR,
                    uid: caller.uid,
                    gid: caller.gid,
                    atime_ns: now,
                    mtime_ns: now,
                    ctime_ns: now,
                    nlink: 1,
                    version: 1,
                    ..Default::default()
                };
                insert_attr(c, &w)?;
                let cookie = next(c, "next_cookie")?;
                c.execute(
                    "INSERT INTO dentries (cookie, parent, name, ino) VALUES (?1, ?2, ?3, ?4)",
                    params![cookie as i64, parent as i64, name, w.ino as i64],
                )?;
            }
            Ok(replaced)
        })
    }

    fn readlink(&self, ino: u64) -> MetaResult<Vec<u8>> {
        self.read(|c| {
            get_attr(c, ino)?;
            let t: Option<Vec<u8>> = c
                .query_row("SELECT target FROM symlinks WHERE ino = ?1", [ino as i64], |r| r.get(0))
                .optional()?;
            t.ok_or(errno(libc::EINVAL))
        })
    }

    fn readdir(&self, ino: u64, after: u64, limit: usize) -> MetaResult<Vec<DirItem>> {
        self.read(|c| {
            dir_attr(c, ino)?;
            let cols = ATTR_COLS.split(", ").map(|col| format!("i.{col}")).collect::<Vec<_>>().join(", ");
            let mut st = c.prepare_cached(&format!(
                "SELECT {cols}, d.cookie, d.name FROM dentries d JOIN inodes i ON i.ino = d.ino
                 WHERE d.parent = ?1 AND d.cookie > ?2 ORDER BY d.cookie LIMIT ?3"
            ))?;
            let rows = st.query_map(params![ino as i64, after as i64, limit as i64], |r| {
                Ok(DirItem { attr: attr_from_row(r)?, cookie: r.get::<_, i64>(12)? as u64, name: r.get(13)? })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
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
            let mut st = c.prepare_cached("SELECT name FROM xattrs WHERE ino = ?1 ORDER BY name")?;
            let names = st.query_map([ino as i64], |r| r.get(0))?.collect::<Result<_, _>>()?;
            Ok(names)
        })
    }

    fn set_xattr(&self, ino: u64, name: &[u8], value: &[u8], flags: i32) -> MetaResult<()> {
        self.write(|c| {
            get_attr(c, ino)?;
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
            get_attr(c, ino)?;
            if xattr(c, ino, name)?.is_none() {
                return Err(errno(libc::ENODATA));
            }
            set_or_remove_xattr(c, ino, name, None)?;
            touch_node(c, ino, 0, now_ns())
        })
    }

    fn new_slice_id(&self) -> MetaResult<u64> {
        self.write(|c| next(c, "next_slice"))
    }

    fn slices(&self, ino: u64, chunk: u64) -> MetaResult<Vec<SliceRef>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT seq, pos, slice_id, slice_size, off, len FROM chunk_slices
                 WHERE ino = ?1 AND chunk = ?2 ORDER BY seq",
            )?;
            let rows = st.query_map(params![ino as i64, chunk as i64], |r| {
                Ok(SliceRef {
                    seq: r.get::<_, i64>(0)? as u64,
                    pos: r.get::<_, i64>(1)? as u64,
                    slice_id: r.get::<_, i64>(2)? as u64,
                    slice_size: r.get::<_, i64>(3)? as u64,
                    off: r.get::<_, i64>(4)? as u64,
                    len: r.get::<_, i64>(5)? as u64,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn commit(&self, ino: u64, slices: &[NewSlice], end: u64, mtime_ns: Option<i64>) -> MetaResult<Attr> {
        self.write(|c| {
            let mut a = get_attr(c, ino)?;
            if !a.is_file() {
                return Err(errno(libc::EINVAL));
            }
            for s in slices {
                if s.pos + s.len > CHUNK_SIZE || s.len == 0 {
                    return Err(MetaError::Corrupt(format!("slice {s:?} does not fit its chunk")));
                }
                let seq = next(c, "next_seq")?;
                c.execute(
                    "INSERT INTO chunk_slices (seq, ino, chunk, pos, slice_id, slice_size, off, len)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?6)",
                    params![
                        seq as i64,
                        ino as i64,
                        s.chunk as i64,
                        s.pos as i64,
                        s.slice_id as i64,
                        s.len as i64
                    ],
                )?;
            }
            a.size = a.size.max(end);
            if let Some(t) = mtime_ns {
                a.mtime_ns = t;
                a.ctime_ns = t;
            }
            a.version += 1;
            put_attr(c, &a)?;
            Ok(a)
        })
    }

    fn remove_if_orphan(&self, ino: u64) -> MetaResult<bool> {
        if ino == ROOT_INO {
            return Ok(false);
        }
        self.write(|c| {
            let Some(a) = get_attr(c, ino).map(Some).or_else(|e| match e {
                MetaError::Fs(_) => Ok(None),
                e => Err(e),
            })?
            else {
                return Ok(false);
            };
            let named: Option<i64> = c
                .query_row("SELECT 1 FROM dentries WHERE ino = ?1 LIMIT 1", [ino as i64], |r| r.get(0))
                .optional()?;
            if named.is_some() {
                return Ok(false);
            }
            let _ = a;
            delete_inode(c, ino)?;
            Ok(true)
        })
    }

    fn reclaim_orphans(&self) -> MetaResult<u64> {
        self.write(|c| {
            let orphans: Vec<i64> = {
                let mut st = c.prepare(
                    "SELECT ino FROM inodes WHERE ino != 1 AND NOT EXISTS
                     (SELECT 1 FROM dentries WHERE dentries.ino = inodes.ino)",
                )?;
                let v = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
                v
            };
            for ino in &orphans {
                delete_inode(c, *ino as u64)?;
            }
            Ok(orphans.len() as u64)
        })
    }

    fn usage(&self) -> MetaResult<Usage> {
        self.read(|c| {
            let (inodes, bytes): (i64, i64) = c.query_row(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN mode & 61440 = 32768 THEN size ELSE 0 END), 0) FROM inodes",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(Usage { inodes: inodes as u64, bytes: bytes as u64 })
        })
    }

    fn referenced_blocks(&self) -> MetaResult<Vec<BlockRef>> {
        self.read(|c| {
            let mut st = c.prepare("SELECT slice_id, slice_size, off, len FROM chunk_slices")?;
            let mut set = BTreeSet::new();
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                    r.get::<_, i64>(3)? as u64,
                ))
            })?;
            for row in rows {
                let (slice_id, size, off, len) = row?;
                for index in blocks_covering(off, len) {
                    set.insert(BlockRef { slice_id, index, len: block_len(size, index) });
                }
            }
            Ok(set.into_iter().collect())
        })
    }
}
