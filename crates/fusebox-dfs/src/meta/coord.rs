//! What the mounts of one file system share besides names and data: sessions (one per mount,
//! kept alive by a heartbeat), the change log that tells each mount what the others changed
//! (so it can drop what its kernel caches), and file locks.
//!
//! Every write transaction publishes the changes it made ([`Tx::note`]) as rows
//! of `changes`, numbered from one counter inside the transaction: a transaction that takes a
//! number holds the counter row until it commits, so numbers become visible in order and a
//! mount that has read up to number N never sees a smaller one appear later. PostgreSQL also
//! gets a `NOTIFY`, which wakes the mounts' listeners; SQLite mounts poll the table.

use super::schema::Dialect;
use super::sql::{params, Engine, Tx, Value};
use super::store::{delete_inode, next, now_ns, parent, SqlMeta};
use super::{MetaResult, ROOT_INO};
use fusebox::fs::lockrange::{self, HeldLock};
use fusebox::fs::FileLock;
use std::time::Duration;

/// The channel PostgreSQL mounts listen on.
pub const NOTIFY_CHANNEL: &str = "fusebox_changes";

/// Something a transaction changed that other mounts' kernels may have cached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    /// Name `.1` in directory `.0` was added, removed or now names another inode.
    Entry(u64, Vec<u8>),
    /// Attributes of an inode changed (mode, owner, link count, times, xattrs).
    Attr(u64),
    /// A file's data or size changed (a commit, a truncation).
    Data(u64),
    /// Locks on an inode were released or taken (waiters elsewhere look again).
    Lock(u64),
}

impl Change {
    fn encode(&self) -> (i64, u64, &[u8]) {
        match self {
            Change::Entry(p, n) => (1, *p, n),
            Change::Attr(i) => (2, *i, b""),
            Change::Data(i) => (3, *i, b""),
            Change::Lock(i) => (4, *i, b""),
        }
    }

    fn decode(kind: i64, ino: u64, name: Vec<u8>) -> Option<Change> {
        Some(match kind {
            1 => Change::Entry(ino, name),
            2 => Change::Attr(ino),
            3 => Change::Data(ino),
            4 => Change::Lock(ino),
            _ => return None,
        })
    }
}

/// One published change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Position in the change log.
    pub seq: u64,
    /// The session that made it (0: a tool outside any mount).
    pub sid: u64,
    /// What changed.
    pub change: Change,
}

/// A mount registered in the metadata, as `fusebox dfs status` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Session id.
    pub sid: u64,
    /// Host, pid and mountpoint of the daemon.
    pub info: String,
    /// Last heartbeat (nanoseconds since the epoch).
    pub heartbeat_ns: i64,
    /// Locks it holds.
    pub locks: u64,
    /// Unlinked inodes it keeps alive (open there).
    pub sustained: u64,
}

/// Which locks of this session [`Coordination::release_locks`] drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockRelease {
    /// The record locks of a lock owner (close(2) of any of its descriptors: FLUSH).
    Posix(u64),
    /// The flock lock of an open file (its last close: RELEASE).
    Flock(u64),
    /// The record locks taken through an open file description (RELEASE: OFD locks).
    Description(u64),
}

/// Sessions, the change log and locks. Each method is one transaction.
pub trait Coordination {
    /// This mount's session id (0: no session open).
    fn session_id(&self) -> u64;
    /// Register this mount (`info`: host, pid, mountpoint); changes are published under the
    /// returned session id from now on.
    fn open_session(&self, info: &str) -> MetaResult<u64>;
    /// The session is alive (re-registered if another mount expired it meanwhile; its locks
    /// are gone then, which is logged).
    fn heartbeat(&self) -> MetaResult<()>;
    /// Unregister: drop this session's locks and delete the unlinked inodes it kept.
    fn close_session(&self) -> MetaResult<()>;
    /// Expire every other session whose last heartbeat is older than `timeout`: drop its
    /// locks and delete the unlinked inodes only it kept. Returns the expired session ids.
    fn expire_sessions(&self, timeout: Duration) -> MetaResult<Vec<u64>>;
    /// The registered sessions.
    fn sessions(&self) -> MetaResult<Vec<Session>>;
    /// Up to `limit` changes published after `seq`, in order.
    fn notices_after(&self, seq: u64, limit: usize) -> MetaResult<Vec<Notice>>;
    /// The number of the last published change (0: none).
    fn last_notice(&self) -> MetaResult<u64>;
    /// Delete changes published before `before_ns`; returns how many.
    fn prune_notices(&self, before_ns: i64) -> MetaResult<u64>;
    /// Block until another session may have published a change or `timeout` passed
    /// (PostgreSQL: a `LISTEN`ing connection; SQLite: a sleep, the caller then polls).
    fn wait_for_notices(&self, timeout: Duration);
    /// Every (directory, name) naming `ino`.
    fn names_of(&self, ino: u64) -> MetaResult<Vec<(u64, Vec<u8>)>>;
    /// F_GETLK: the first lock of another owner (of any mount) that conflicts with `want`.
    fn test_lock(&self, ino: u64, owner: u64, flock: bool, want: &FileLock) -> MetaResult<Option<FileLock>>;
    /// F_SETLK: give this session's `want.owner` the lock `want.lock` of kind `want.flock`,
    /// taken through handle `want.fh`, or return the conflicting lock and change nothing.
    /// `F_UNLCK` always succeeds.
    fn set_lock(&self, ino: u64, want: &HeldLock<u64>) -> MetaResult<Option<FileLock>>;
    /// Drop locks of this session on `ino`; true if there were any.
    fn release_locks(&self, ino: u64, which: LockRelease) -> MetaResult<bool>;
}

/// Publish `changes` of a transaction made by session `sid`, in that transaction.
pub(super) fn publish(
    c: &mut dyn Tx, dialect: Dialect, sid: u64, mut changes: Vec<Change>,
) -> MetaResult<()> {
    let mut seen = std::collections::HashSet::new();
    changes.retain(|ch| seen.insert(ch.clone()));
    if changes.is_empty() {
        return Ok(());
    }
    let n = changes.len() as u64;
    let now = now_ns();
    let mut rows = Vec::with_capacity(changes.len());
    // $1 is the count of changes, and for SQLite's INSERT the first sequence number.
    let mut values = vec![Value::from(n), Value::from(sid), Value::Int(now)];
    for (i, ch) in changes.iter().enumerate() {
        let (kind, ino, name) = ch.encode();
        let at = values.len() + 1;
        rows.push(format!("(${at}, ${}, ${}, ${})", at + 1, at + 2, at + 3));
        values.extend([Value::from(i as u64), Value::Int(kind), Value::from(ino), Value::Bytes(name)]);
    }
    let rows = rows.join(", ");
    const TAKE_SEQS: &str =
        "UPDATE counters SET value = value + $1 WHERE name = 'next_change' RETURNING value - $1 AS first";
    if dialect == Dialect::Postgres {
        // One statement, one round trip: take the sequence numbers, insert the rows, notify
        // the listening mounts (delivered at commit).
        c.exec_later(
            &format!(
                "WITH s AS ({TAKE_SEQS}),
                 i AS (INSERT INTO changes (seq, sid, kind, ino, name, at_ns)
                       SELECT s.first + v.i, $2, v.kind, v.ino, v.name, $3
                       FROM s, (VALUES {rows}) AS v (i, kind, ino, name))
                 SELECT pg_notify('{NOTIFY_CHANNEL}', $2::text) FROM s"
            ),
            &values,
        )?;
    } else {
        // SQLite takes no UPDATE in a WITH; its statements cost no round trip.
        values[0] = Value::from(c.query_one(TAKE_SEQS, &values[..1])?.uint(0)?);
        c.exec(
            &format!(
                "INSERT INTO changes (seq, sid, kind, ino, name, at_ns)
                 SELECT $1 + v.column1, $2, v.column2, v.column3, v.column4, $3 FROM (VALUES {rows}) AS v"
            ),
            &values,
        )?;
    }
    Ok(())
}

/// The locks held on `ino`, owners qualified by their session.
fn held_locks(c: &mut dyn Tx, ino: u64) -> MetaResult<Vec<HeldLock<(u64, u64)>>> {
    let rows = c.query(
        "SELECT sid, owner, flock, typ, start_off, end_off, pid, fh FROM locks WHERE ino = $1",
        params![ino],
    )?;
    rows.iter()
        .map(|r| {
            Ok(HeldLock {
                // Kernel lock owners use all 64 bits: stored as the BIGINT of the same bits.
                owner: (r.uint(0)?, r.int(1)? as u64),
                flock: r.int(2)? != 0,
                lock: FileLock {
                    typ: r.int(3)? as i32,
                    start: r.int(4)? as u64,
                    end: r.int(5)? as u64,
                    pid: r.uint(6)? as u32,
                },
                fh: r.uint(7)?,
            })
        })
        .collect()
}

/// Delete the unlinked inodes in `inos` that no session keeps any more.
fn delete_unkept(c: &mut dyn Tx, inos: &[u64]) -> MetaResult<()> {
    for &ino in inos {
        c.lock_inodes(&[ino])?;
        let kept = c.query_opt("SELECT 1 FROM sustained WHERE ino = $1 LIMIT 1", params![ino])?.is_some();
        if !kept && ino != ROOT_INO && parent(c, ino)?.is_none() {
            delete_inode(c, ino)?;
        }
    }
    Ok(())
}

/// Drop every lock and kept inode of session `sid` (closing or expired).
fn end_session(c: &mut dyn Tx, sid: u64) -> MetaResult<()> {
    let locked = c.query("SELECT DISTINCT ino FROM locks WHERE sid = $1", params![sid])?;
    for r in &locked {
        c.note(Change::Lock(r.uint(0)?));
    }
    c.exec("DELETE FROM locks WHERE sid = $1", params![sid])?;
    let kept: Vec<u64> = c
        .query("SELECT ino FROM sustained WHERE sid = $1", params![sid])?
        .iter()
        .map(|r| r.uint(0))
        .collect::<MetaResult<_>>()?;
    c.exec("DELETE FROM sustained WHERE sid = $1", params![sid])?;
    delete_unkept(c, &kept)?;
    c.exec("DELETE FROM sessions WHERE sid = $1", params![sid])?;
    Ok(())
}

impl<E: Engine> Coordination for SqlMeta<E> {
    fn session_id(&self) -> u64 {
        self.sid()
    }

    fn open_session(&self, info: &str) -> MetaResult<u64> {
        let sid = self.write(|c| {
            let sid = next(c, "next_sid")?;
            c.exec(
                "INSERT INTO sessions (sid, info, heartbeat_ns) VALUES ($1, $2, $3)",
                params![sid, info, now_ns()],
            )?;
            Ok(sid)
        })?;
        self.set_sid(sid);
        Ok(sid)
    }

    fn heartbeat(&self) -> MetaResult<()> {
        let sid = self.sid();
        if sid == 0 {
            return Ok(());
        }
        let revived = self.write(|c| {
            let now = now_ns();
            if c.exec("UPDATE sessions SET heartbeat_ns = $2 WHERE sid = $1", params![sid, now])? > 0 {
                return Ok(false);
            }
            c.exec(
                "INSERT INTO sessions (sid, info, heartbeat_ns) VALUES ($1, 'revived', $2)",
                params![sid, now],
            )?;
            Ok(true)
        })?;
        if revived {
            tracing::error!(
                sid,
                "this mount's session had expired (no heartbeat in time): its locks were released"
            );
        }
        Ok(())
    }

    fn close_session(&self) -> MetaResult<()> {
        let sid = self.sid();
        if sid == 0 {
            return Ok(());
        }
        self.write(|c| end_session(c, sid))?;
        self.set_sid(0);
        Ok(())
    }

    fn expire_sessions(&self, timeout: Duration) -> MetaResult<Vec<u64>> {
        let me = self.sid();
        let before = now_ns().saturating_sub(timeout.as_nanos() as i64);
        self.write(|c| {
            let stale: Vec<u64> = c
                .query("SELECT sid FROM sessions WHERE heartbeat_ns < $1 AND sid != $2", params![before, me])?
                .iter()
                .map(|r| r.uint(0))
                .collect::<MetaResult<_>>()?;
            for &sid in &stale {
                end_session(c, sid)?;
            }
            Ok(stale)
        })
    }

    fn sessions(&self) -> MetaResult<Vec<Session>> {
        self.engine().read_one(&mut |c| {
            let rows = c.query(
                "SELECT s.sid, s.info, s.heartbeat_ns,
                   (SELECT COUNT(*) FROM locks l WHERE l.sid = s.sid),
                   (SELECT COUNT(*) FROM sustained u WHERE u.sid = s.sid)
                 FROM sessions s ORDER BY s.sid",
                params![],
            )?;
            rows.iter()
                .map(|r| {
                    Ok(Session {
                        sid: r.uint(0)?,
                        info: r.text(1)?,
                        heartbeat_ns: r.int(2)?,
                        locks: r.uint(3)?,
                        sustained: r.uint(4)?,
                    })
                })
                .collect()
        })
    }

    fn notices_after(&self, seq: u64, limit: usize) -> MetaResult<Vec<Notice>> {
        self.engine().read_one(&mut |c| {
            let rows = c.query(
                "SELECT seq, sid, kind, ino, name FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2",
                params![seq, limit as u64],
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let (seq, kind) = (r.uint(0)?, r.int(2)?);
                match Change::decode(kind, r.uint(3)?, r.bytes(4)?) {
                    Some(change) => out.push(Notice { seq, sid: r.uint(1)?, change }),
                    None => tracing::warn!(seq, kind, "unknown change kind in the change log; skipped"),
                }
            }
            Ok(out)
        })
    }

    fn last_notice(&self) -> MetaResult<u64> {
        self.engine().read_one(&mut |c| {
            let next = c.query_one("SELECT value FROM counters WHERE name = 'next_change'", params![])?;
            Ok(next.uint(0)?.saturating_sub(1))
        })
    }

    fn prune_notices(&self, before_ns: i64) -> MetaResult<u64> {
        self.engine().write(&mut |c| c.exec("DELETE FROM changes WHERE at_ns < $1", params![before_ns]))
    }

    fn wait_for_notices(&self, timeout: Duration) {
        self.engine().wait_for_changes(timeout, self.sid())
    }

    fn names_of(&self, ino: u64) -> MetaResult<Vec<(u64, Vec<u8>)>> {
        self.engine().read_one(&mut |c| {
            let rows = c.query("SELECT parent, name FROM dentries WHERE ino = $1", params![ino])?;
            rows.iter().map(|r| Ok((r.uint(0)?, r.bytes(1)?))).collect()
        })
    }

    fn test_lock(&self, ino: u64, owner: u64, flock: bool, want: &FileLock) -> MetaResult<Option<FileLock>> {
        let me = (self.sid(), owner);
        self.read(|c| Ok(lockrange::first_conflict(&held_locks(c, ino)?, &me, flock, want).map(|h| h.lock)))
    }

    fn set_lock(&self, ino: u64, want: &HeldLock<u64>) -> MetaResult<Option<FileLock>> {
        let HeldLock { owner, flock, lock, fh } = *want;
        let me = (self.sid(), owner);
        self.write(|c| {
            c.lock_inodes(&[ino])?;
            let mut held = held_locks(c, ino)?;
            if lock.typ != libc::F_UNLCK {
                if let Some(h) = lockrange::first_conflict(&held, &me, flock, &lock) {
                    return Ok(Some(h.lock));
                }
            }
            lockrange::grant(&mut held, &me, flock, lock, fh);
            c.exec(
                "DELETE FROM locks WHERE ino = $1 AND sid = $2 AND owner = $3 AND flock = $4",
                params![ino, me.0, owner, flock as i64],
            )?;
            for h in held.iter().filter(|h| h.owner == me && h.flock == flock) {
                c.exec(
                    "INSERT INTO locks (ino, sid, owner, flock, typ, start_off, end_off, pid, fh)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    params![
                        ino,
                        me.0,
                        owner,
                        flock as i64,
                        h.lock.typ as i64,
                        h.lock.start as i64,
                        h.lock.end as i64,
                        h.lock.pid as i64,
                        h.fh
                    ],
                )?;
            }
            c.note(Change::Lock(ino));
            Ok(None)
        })
    }

    fn release_locks(&self, ino: u64, which: LockRelease) -> MetaResult<bool> {
        let sid = self.sid();
        let (sql, key) = match which {
            LockRelease::Posix(o) => ("owner = $3 AND flock = 0", o),
            LockRelease::Flock(o) => ("owner = $3 AND flock = 1", o),
            LockRelease::Description(fh) => ("fh = $3 AND flock = 0", fh),
        };
        self.write(|c| {
            let n = c.exec(
                &format!("DELETE FROM locks WHERE ino = $1 AND sid = $2 AND {sql}"),
                params![ino, sid, key],
            )?;
            if n > 0 {
                c.note(Change::Lock(ino));
            }
            Ok(n > 0)
        })
    }
}
