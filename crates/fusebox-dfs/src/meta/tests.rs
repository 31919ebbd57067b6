//! Tests of the metadata engines through the [`MetaStore`] trait: every operation, rename
//! flags, link counts, and that a failed operation changes nothing. Each scenario runs on
//! SQLite (one test each) and on a real PostgreSQL server (one test runs them all, each on a
//! fresh database: starting a server per test would cost more than the tests).

use super::coord::Coordination;
use super::postgres::PostgresMeta;
use super::sqlite::SqliteMeta;
use super::*;
use crate::layout::CHUNK_SIZE;
use crate::testing::pg_server;
use std::sync::Arc;

const ME: Caller = Caller { uid: 1000, gid: 100 };

/// The default ACL's xattr name.
const ACL_DEFAULT_NAME: &[u8] = b"system.posix_acl_default";

/// A freshly formatted store, and a way to open it again (a second client).
struct Db {
    meta: Arc<dyn MetaStore>,
    reopen: Box<dyn Fn() -> Arc<dyn MetaStore>>,
    _dir: Option<tempfile::TempDir>,
}

fn fresh_sqlite() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let meta = Arc::new(SqliteMeta::format(&path, "file:///tmp/blocks", false, ME).unwrap());
    Db { meta, reopen: Box::new(move || Arc::new(SqliteMeta::open(&path).unwrap())), _dir: Some(dir) }
}

fn fresh_postgres(server: &pg_server::PgServer) -> Db {
    let url = server.new_database();
    let meta = Arc::new(PostgresMeta::format_url(&url, "file:///tmp/blocks", false, ME).unwrap());
    Db { meta, reopen: Box::new(move || Arc::new(PostgresMeta::open_url(&url).unwrap())), _dir: None }
}

fn errno_of<T: std::fmt::Debug>(r: MetaResult<T>) -> i32 {
    match r {
        Err(MetaError::Fs(e)) => e.0,
        other => panic!("expected an errno, got {other:?}"),
    }
}

fn node(mode: u32) -> impl FnMut(&Inode) -> Result<NewNode, Errno> {
    move |_| Ok(NewNode { mode, uid: 1, gid: 2, ..Default::default() })
}

fn mkdir(m: &dyn MetaStore, parent: u64, name: &str) -> Attr {
    m.create(parent, name.as_bytes(), &mut node(libc::S_IFDIR | 0o755)).unwrap()
}

fn mkfile(m: &dyn MetaStore, parent: u64, name: &str) -> Attr {
    m.create(parent, name.as_bytes(), &mut node(libc::S_IFREG | 0o644)).unwrap()
}

fn nlink(m: &dyn MetaStore, ino: u64) -> u32 {
    m.getattr(ino).unwrap().nlink
}

fn names(m: &dyn MetaStore, dir: u64) -> Vec<String> {
    m.readdir(dir, 0, 1000).unwrap().into_iter().map(|d| String::from_utf8(d.name).unwrap()).collect()
}

#[test]
fn sqlite_format_and_open_report_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("meta.db");
    let missing = SqliteMeta::open(&p).unwrap_err().to_string();
    assert!(missing.contains("does not exist"), "{missing}");
    // An empty database is unformatted.
    rusqlite::Connection::open(&p).unwrap();
    assert!(SqliteMeta::open(&p).unwrap_err().to_string().contains("not formatted"));
    let m = SqliteMeta::format(&p, "file:///srv/blocks", false, ME).unwrap();
    assert_eq!(
        m.info().unwrap(),
        FormatInfo { version: schema::FORMAT_VERSION, storage_url: "file:///srv/blocks".into() }
    );
    let root = m.getattr(ROOT_INO).unwrap();
    assert_eq!((root.mode, root.uid, root.gid, root.nlink), (libc::S_IFDIR | 0o755, 1000, 100, 2));
    mkfile(&m, ROOT_INO, "f");
    drop(m);
    let again = SqliteMeta::format(&p, "file:///x", false, ME).unwrap_err().to_string();
    assert!(again.contains("not empty") && again.contains("--force"), "{again}");
    let m = SqliteMeta::open(&p).unwrap();
    assert!(m.lookup(ROOT_INO, b"f").is_ok(), "a refused format leaves the file system alone");
    drop(m);
    let m = SqliteMeta::format(&p, "file:///y", true, ME).unwrap();
    assert_eq!(errno_of(m.lookup(ROOT_INO, b"f")), libc::ENOENT);
    assert_eq!(m.info().unwrap().storage_url, "file:///y");
    // Foreign schema, unknown version, not a database.
    let foreign = dir.path().join("foreign.db");
    rusqlite::Connection::open(&foreign).unwrap().execute_batch("CREATE TABLE t (x INTEGER);").unwrap();
    assert!(SqliteMeta::open(&foreign).unwrap_err().to_string().contains("foreign schema"));
    rusqlite::Connection::open(&p)
        .unwrap()
        .execute("UPDATE fb_format SET value = '99' WHERE key = 'version'", [])
        .unwrap();
    assert!(SqliteMeta::open(&p).unwrap_err().to_string().contains("format version 99"));
    // A database of format 1 (before sessions and the change log) is upgraded at open.
    let m = SqliteMeta::format(&p, "file:///y", true, ME).unwrap();
    mkfile(&m, ROOT_INO, "old");
    drop(m);
    rusqlite::Connection::open(&p)
        .unwrap()
        .execute_batch(
            "DROP TABLE changes; DROP TABLE sustained; ALTER TABLE locks DROP COLUMN fh;
             ALTER TABLE chunk_slices DROP COLUMN data;
             DELETE FROM counters WHERE name IN ('next_change', 'next_sid');
             UPDATE fb_format SET value = '1' WHERE key = 'version';",
        )
        .unwrap();
    let m = SqliteMeta::open(&p).unwrap();
    assert_eq!(m.info().unwrap().version, schema::FORMAT_VERSION);
    assert!(m.lookup(ROOT_INO, b"old").is_ok());
    let before = m.last_notice().unwrap();
    mkfile(&m, ROOT_INO, "new");
    assert!(m.last_notice().unwrap() > before, "the upgraded database logs changes");
    let old = m.lookup(ROOT_INO, b"old").unwrap().ino;
    let kept =
        NewSlice { chunk: 0, pos: 0, slice_id: 1, len: 2, data: Some(bytes::Bytes::from_static(b"hi")) };
    m.commit(old, &[kept], 2, None).unwrap();
    assert_eq!(m.slices(old, 0).unwrap()[0].data.as_deref(), Some(&b"hi"[..]), "upgraded: slices keep bytes");
    drop(m);
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![0x42u8; 8192]).unwrap();
    let e = SqliteMeta::open(&junk).unwrap_err();
    assert!(matches!(e, MetaError::Format(_)), "{e:?}");
}

#[test]
fn postgres_format_and_open_report_clear_errors() {
    let Some(server) = pg_server::shared() else { return };
    let url = server.new_database();
    let e = PostgresMeta::open_url(&url).unwrap_err().to_string();
    assert!(e.contains("not formatted"), "{e}");
    let m = PostgresMeta::format_url(&url, "file:///srv/blocks", false, ME).unwrap();
    assert_eq!(
        m.info().unwrap(),
        FormatInfo { version: schema::FORMAT_VERSION, storage_url: "file:///srv/blocks".into() }
    );
    mkfile(&m, ROOT_INO, "f");
    let again = PostgresMeta::format_url(&url, "file:///x", false, ME).unwrap_err().to_string();
    assert!(again.contains("not empty") && again.contains("--force"), "{again}");
    assert!(m.lookup(ROOT_INO, b"f").is_ok(), "a refused format leaves the file system alone");
    let m = PostgresMeta::format_url(&url, "file:///y", true, ME).unwrap();
    assert_eq!(errno_of(m.lookup(ROOT_INO, b"f")), libc::ENOENT);
    // Foreign schema, unknown version.
    let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    c.batch_execute("UPDATE fb_format SET value = '99' WHERE key = 'version'").unwrap();
    assert!(PostgresMeta::open_url(&url).unwrap_err().to_string().contains("format version 99"));
    let foreign = server.new_database();
    ::postgres::Client::connect(&foreign, ::postgres::NoTls)
        .unwrap()
        .batch_execute("CREATE TABLE t (x BIGINT)")
        .unwrap();
    let e = PostgresMeta::open_url(&foreign).unwrap_err().to_string();
    assert!(e.contains("foreign schema"), "{e}");
    // A database that does not exist: the server's reason, no hang.
    let e = PostgresMeta::open_url(&server.url("no_such_db")).unwrap_err().to_string();
    assert!(e.contains("no_such_db"), "{e}");
}
/// The last reference to a PostgreSQL store may go inside a tokio task (the async adapter's
/// background FORGET at unmount): closing its connections there must not panic (the sync
/// client's close starts a runtime of its own, which tokio refuses inside one).
#[test]
fn postgres_store_dropped_inside_a_runtime_closes_cleanly() {
    let Some(server) = pg_server::shared() else { return };
    let url = server.new_database();
    let meta: Arc<dyn MetaStore> =
        Arc::new(PostgresMeta::format_url(&url, "file:///tmp/blocks", false, ME).unwrap());
    mkfile(&*meta, ROOT_INO, "f");
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async move { tokio::spawn(async move { drop(meta) }).await }).expect("drop in a task");
    // The store is still whole for the next client.
    let reopened = PostgresMeta::open_url(&url).unwrap();
    assert!(reopened.lookup(ROOT_INO, b"f").is_ok());
}

fn create_lookup_readdir_and_name_checks(db: &Db) {
    let m = &*db.meta;
    let f = mkfile(m, ROOT_INO, "a");
    assert_eq!((f.mode, f.uid, f.gid, f.nlink, f.size), (libc::S_IFREG | 0o644, 1, 2, 1, 0));
    assert_eq!(m.lookup(ROOT_INO, b"a").unwrap(), f);
    assert_eq!(errno_of(m.create(ROOT_INO, b"a", &mut node(libc::S_IFREG))), libc::EEXIST);
    assert_eq!(errno_of(m.create(f.ino, b"x", &mut node(libc::S_IFREG))), libc::ENOTDIR);
    assert_eq!(errno_of(m.create(999, b"x", &mut node(libc::S_IFREG))), libc::ENOENT);
    assert_eq!(errno_of(m.create(ROOT_INO, &[b'n'; 256], &mut node(libc::S_IFREG))), libc::ENAMETOOLONG);
    for bad in [&b""[..], b".", b"..", b"a/b"] {
        assert_eq!(errno_of(m.create(ROOT_INO, bad, &mut node(libc::S_IFREG))), libc::EINVAL);
    }
    assert_eq!(errno_of(m.lookup(ROOT_INO, b"nope")), libc::ENOENT);
    assert_eq!(errno_of(m.lookup(f.ino, b"x")), libc::ENOTDIR);
    assert_eq!(errno_of(m.lookup(999_999, b"x")), libc::ENOENT, "a parent that does not exist");
    assert_eq!(m.getattr(f.ino).unwrap(), m.lookup(ROOT_INO, b"a").unwrap());
    assert_eq!(errno_of(m.getattr(999_999)), libc::ENOENT);
    // Cookies are stable and increasing: a listing can continue after any entry.
    for i in 0..10 {
        mkfile(m, ROOT_INO, &format!("f{i}"));
    }
    let all = m.readdir(ROOT_INO, 0, 100).unwrap();
    assert_eq!(all.len(), 11);
    assert!(all.windows(2).all(|w| w[0].cookie < w[1].cookie) && all[0].cookie >= 3);
    let rest = m.readdir(ROOT_INO, all[4].cookie, 100).unwrap();
    assert_eq!(rest, all[5..].to_vec());
    assert_eq!(m.readdir(ROOT_INO, 0, 3).unwrap().len(), 3);
    // Device nodes keep rdev, symlinks their target.
    let dev = m
        .create(ROOT_INO, b"dev", &mut |_| {
            Ok(NewNode { mode: libc::S_IFCHR | 0o600, rdev: 0x0103, ..Default::default() })
        })
        .unwrap();
    assert_eq!(m.getattr(dev.ino).unwrap().rdev, 0x0103);
    let l = m
        .create(ROOT_INO, b"l", &mut |_| {
            Ok(NewNode {
                mode: libc::S_IFLNK | 0o777,
                symlink: Some(b"target/x".to_vec()),
                ..Default::default()
            })
        })
        .unwrap();
    assert_eq!(l.size, 8);
    assert_eq!(m.readlink(l.ino).unwrap(), b"target/x");
    assert_eq!(errno_of(m.readlink(f.ino)), libc::EINVAL);
    // The create closure sees the parent (for setgid / default ACLs) and may refuse.
    let seen = std::cell::Cell::new(0);
    assert_eq!(
        errno_of(m.create(ROOT_INO, b"refused", &mut |p| {
            seen.set(p.attr.ino);
            Err(Errno::EACCES)
        })),
        libc::EACCES
    );
    assert_eq!(seen.get(), ROOT_INO);
}

fn directory_link_counts_and_rmdir(db: &Db) {
    let m = &*db.meta;
    let a = mkdir(m, ROOT_INO, "a");
    assert_eq!((nlink(m, ROOT_INO), a.nlink), (3, 2));
    let b = mkdir(m, a.ino, "b");
    mkfile(m, a.ino, "f");
    assert_eq!(nlink(m, a.ino), 3, "a file adds no link to its directory");
    assert_eq!(m.parent_of(b.ino).unwrap(), a.ino);
    assert_eq!(m.parent_of(ROOT_INO).unwrap(), ROOT_INO);
    assert_eq!(errno_of(m.rmdir(ROOT_INO, b"a")), libc::ENOTEMPTY);
    assert_eq!(errno_of(m.rmdir(a.ino, b"f")), libc::ENOTDIR);
    assert_eq!(errno_of(m.unlink(a.ino, b"b")), libc::EISDIR);
    assert_eq!(errno_of(m.rmdir(a.ino, b"..")), libc::ENOTEMPTY);
    let gone = m.rmdir(a.ino, b"b").unwrap();
    assert_eq!(gone.nlink, 0);
    assert_eq!(nlink(m, a.ino), 2);
    assert!(m.remove_if_orphan(b.ino).unwrap());
    assert_eq!(errno_of(m.getattr(b.ino)), libc::ENOENT);
}

fn hard_links_unlink_and_orphans(db: &Db) {
    let m = &*db.meta;
    let d = mkdir(m, ROOT_INO, "d");
    let f = mkfile(m, ROOT_INO, "f");
    let l = m.link(f.ino, d.ino, b"g").unwrap();
    assert_eq!((l.ino, l.nlink), (f.ino, 2));
    assert_eq!(m.lookup(d.ino, b"g").unwrap().ino, f.ino);
    assert_eq!(errno_of(m.link(d.ino, ROOT_INO, b"dl")), libc::EPERM);
    assert_eq!(errno_of(m.link(f.ino, ROOT_INO, b"f")), libc::EEXIST);
    assert_eq!(m.unlink(ROOT_INO, b"f").unwrap().nlink, 1);
    assert!(!m.remove_if_orphan(f.ino).unwrap(), "still named");
    assert_eq!(m.unlink(d.ino, b"g").unwrap().nlink, 0);
    assert_eq!(errno_of(m.unlink(d.ino, b"g")), libc::ENOENT);
    // An unlinked inode stays until removed (open files), then goes with its data.
    m.commit(f.ino, &[NewSlice { chunk: 0, pos: 0, slice_id: 7, len: 10, data: None }], 10, None).unwrap();
    m.set_xattr(f.ino, b"user.a", b"1", 0).unwrap();
    assert_eq!(m.getattr(f.ino).unwrap().size, 10);
    assert!(m.remove_if_orphan(f.ino).unwrap());
    // A commit of a file another mount deleted meanwhile stores nothing and fails nothing.
    m.commit(f.ino, &[NewSlice { chunk: 0, pos: 0, slice_id: 8, len: 10, data: None }], 10, Some(1)).unwrap();
    assert!(m.slices(f.ino, 0).unwrap().is_empty());
    assert_eq!(errno_of(m.getattr(f.ino)), libc::ENOENT);
    assert!(m.referenced_blocks().unwrap().is_empty());
    // Orphans left by a crashed daemon are reclaimed.
    let g = mkfile(m, ROOT_INO, "g");
    m.unlink(ROOT_INO, b"g").unwrap();
    assert_eq!(m.reclaim_orphans().unwrap(), 1);
    assert_eq!(errno_of(m.getattr(g.ino)), libc::ENOENT);
    assert_eq!(m.reclaim_orphans().unwrap(), 0);
}

fn rename_plain_and_replacing(db: &Db) {
    let m = &*db.meta;
    let (a, b) = (mkdir(m, ROOT_INO, "a"), mkdir(m, ROOT_INO, "b"));
    let f = mkfile(m, a.ino, "f");
    assert_eq!(m.rename(a.ino, b"f", b.ino, b"g", 0, ME).unwrap(), None);
    assert_eq!(m.lookup(b.ino, b"g").unwrap().ino, f.ino);
    assert_eq!(errno_of(m.lookup(a.ino, b"f")), libc::ENOENT);
    // Replacing a file: the victim loses its name.
    let v = mkfile(m, b.ino, "v");
    let r = m.rename(b.ino, b"g", b.ino, b"v", 0, ME).unwrap().unwrap();
    assert_eq!((r.ino, r.nlink), (v.ino, 0));
    assert_eq!(names(m, b.ino), ["v"]);
    // Directory moves fix both parents' link counts.
    let sub = mkdir(m, a.ino, "sub");
    assert_eq!((nlink(m, a.ino), nlink(m, b.ino)), (3, 2));
    m.rename(a.ino, b"sub", b.ino, b"sub", 0, ME).unwrap();
    assert_eq!((nlink(m, a.ino), nlink(m, b.ino)), (2, 3));
    assert_eq!(m.parent_of(sub.ino).unwrap(), b.ino);
    // Replacing an empty directory with a directory.
    let empty = mkdir(m, a.ino, "empty");
    let r = m.rename(b.ino, b"sub", a.ino, b"empty", 0, ME).unwrap().unwrap();
    assert_eq!((r.ino, r.nlink), (empty.ino, 0));
    assert_eq!((nlink(m, a.ino), nlink(m, b.ino)), (3, 2));
    // Type and emptiness rules.
    mkfile(m, sub.ino, "x");
    let d2 = mkdir(m, b.ino, "d2");
    assert_eq!(errno_of(m.rename(b.ino, b"d2", a.ino, b"empty", 0, ME)), libc::ENOTEMPTY);
    assert_eq!(errno_of(m.rename(b.ino, b"d2", b.ino, b"v", 0, ME)), libc::ENOTDIR);
    assert_eq!(errno_of(m.rename(b.ino, b"v", b.ino, b"d2", 0, ME)), libc::EISDIR);
    assert_eq!(errno_of(m.rename(b.ino, b"missing", b.ino, b"z", 0, ME)), libc::ENOENT);
    // A directory cannot move below itself.
    assert_eq!(errno_of(m.rename(ROOT_INO, b"a", sub.ino, b"a", 0, ME)), libc::EINVAL);
    assert_eq!(errno_of(m.rename(b.ino, b"d2", d2.ino, b"self", 0, ME)), libc::EINVAL);
    // Renaming onto another name of the same inode does nothing.
    m.link(f.ino, b.ino, b"hard").unwrap();
    assert_eq!(m.rename(b.ino, b"v", b.ino, b"hard", 0, ME).unwrap(), None);
    assert!(m.lookup(b.ino, b"v").is_ok() && m.lookup(b.ino, b"hard").is_ok());
    assert_eq!(errno_of(m.rename(b.ino, b"v", b.ino, b"w", 0x80, ME)), libc::EINVAL);
}

fn rename_noreplace_exchange_and_whiteout(db: &Db) {
    let m = &*db.meta;
    let (a, b) = (mkdir(m, ROOT_INO, "a"), mkdir(m, ROOT_INO, "b"));
    let f = mkfile(m, a.ino, "f");
    let g = mkfile(m, b.ino, "g");
    assert_eq!(errno_of(m.rename(a.ino, b"f", b.ino, b"g", libc::RENAME_NOREPLACE, ME)), libc::EEXIST);
    m.rename(a.ino, b"f", b.ino, b"h", libc::RENAME_NOREPLACE, ME).unwrap();
    m.rename(b.ino, b"h", a.ino, b"f", 0, ME).unwrap();
    // EXCHANGE swaps two names atomically.
    m.rename(a.ino, b"f", b.ino, b"g", libc::RENAME_EXCHANGE, ME).unwrap();
    assert_eq!((m.lookup(a.ino, b"f").unwrap().ino, m.lookup(b.ino, b"g").unwrap().ino), (g.ino, f.ino));
    assert_eq!(errno_of(m.rename(a.ino, b"f", b.ino, b"none", libc::RENAME_EXCHANGE, ME)), libc::ENOENT);
    let both = libc::RENAME_EXCHANGE | libc::RENAME_NOREPLACE;
    assert_eq!(errno_of(m.rename(a.ino, b"f", b.ino, b"g", both, ME)), libc::EINVAL);
    // Exchanging a directory with a file across parents moves one ".." link.
    let d = mkdir(m, a.ino, "d");
    assert_eq!((nlink(m, a.ino), nlink(m, b.ino)), (3, 2));
    m.rename(a.ino, b"d", b.ino, b"g", libc::RENAME_EXCHANGE, ME).unwrap();
    assert_eq!((nlink(m, a.ino), nlink(m, b.ino)), (2, 3));
    assert_eq!(m.parent_of(d.ino).unwrap(), b.ino);
    // WHITEOUT leaves a 0:0 character device owned by the caller at the old name.
    m.rename(b.ino, b"g", a.ino, b"moved", libc::RENAME_WHITEOUT, ME).unwrap();
    let w = m.lookup(b.ino, b"g").unwrap();
    assert_eq!((w.mode & libc::S_IFMT, w.rdev, w.uid, w.gid), (libc::S_IFCHR, 0, ME.uid, ME.gid));
    assert_eq!(m.lookup(a.ino, b"moved").unwrap().ino, d.ino);
}

fn xattrs_and_their_flags(db: &Db) {
    let m = &*db.meta;
    let f = mkfile(m, ROOT_INO, "f");
    assert_eq!(errno_of(m.get_xattr(f.ino, b"user.a")), libc::ENODATA);
    assert_eq!(errno_of(m.set_xattr(f.ino, b"user.a", b"1", libc::XATTR_REPLACE)), libc::ENODATA);
    m.set_xattr(f.ino, b"user.a", b"1", libc::XATTR_CREATE).unwrap();
    assert_eq!(errno_of(m.set_xattr(f.ino, b"user.a", b"2", libc::XATTR_CREATE)), libc::EEXIST);
    m.set_xattr(f.ino, b"user.a", b"2", libc::XATTR_REPLACE).unwrap();
    m.set_xattr(f.ino, b"user.b", b"", 0).unwrap();
    assert_eq!(m.get_xattr(f.ino, b"user.a").unwrap(), b"2");
    assert_eq!(m.list_xattr(f.ino).unwrap(), vec![b"user.a".to_vec(), b"user.b".to_vec()]);
    m.remove_xattr(f.ino, b"user.a").unwrap();
    assert_eq!(errno_of(m.remove_xattr(f.ino, b"user.a")), libc::ENODATA);
    assert_eq!(m.list_xattr(f.ino).unwrap(), vec![b"user.b".to_vec()]);
    assert_eq!(errno_of(m.list_xattr(999)), libc::ENOENT);
}

fn update_cuts_slices_and_a_refused_update_changes_nothing(db: &Db) {
    let m = &*db.meta;
    let f = mkfile(m, ROOT_INO, "f");
    let s = |chunk, pos, slice_id, len| NewSlice { chunk, pos, slice_id, len, data: None };
    m.commit(f.ino, &[s(0, 0, 1, 100), s(0, 50, 2, 100), s(1, 0, 3, 10)], CHUNK_SIZE + 10, Some(42)).unwrap();
    let a = m.getattr(f.ino).unwrap();
    assert_eq!((a.size, a.mtime_ns, a.ctime_ns, a.version), (CHUNK_SIZE + 10, 42, 42, f.version + 1));
    let c0 = m.slices(f.ino, 0).unwrap();
    assert_eq!(
        c0.iter().map(|r| (r.slice_id, r.pos, r.len)).collect::<Vec<_>>(),
        [(1, 0, 100), (2, 50, 100)]
    );
    assert!(c0[0].seq < c0[1].seq);
    // Committing never shrinks the size.
    m.commit(f.ino, &[], 5, None).unwrap();
    assert_eq!(m.getattr(f.ino).unwrap().size, CHUNK_SIZE + 10, "a commit never shrinks a file");
    let before = m.getattr(f.ino).unwrap();
    assert_eq!(
        errno_of(m.update(f.ino, &mut |n| {
            n.attr.size = 0;
            n.attr.mode = 0;
            Err(Errno::EPERM)
        })),
        libc::EPERM
    );
    assert_eq!(m.getattr(f.ino).unwrap(), before, "rolled back");
    assert_eq!(m.slices(f.ino, 1).unwrap().len(), 1);
    // Truncate to 60: chunk 1 goes, slice 2 is cut to 10 bytes, slice 1 to 60.
    let a = m
        .update(f.ino, &mut |n| {
            n.attr.size = 60;
            Ok(())
        })
        .unwrap();
    assert_eq!((a.size, a.version), (60, before.version + 1));
    assert!(m.slices(f.ino, 1).unwrap().is_empty());
    let c0 = m.slices(f.ino, 0).unwrap();
    assert_eq!(c0.iter().map(|r| (r.slice_id, r.pos, r.len)).collect::<Vec<_>>(), [(1, 0, 60), (2, 50, 10)]);
    let blocks = m.referenced_blocks().unwrap();
    assert_eq!(
        blocks,
        vec![BlockRef { slice_id: 1, index: 0, len: 100 }, BlockRef { slice_id: 2, index: 0, len: 100 }]
    );
    // ACLs travel with the inode through update.
    m.update(f.ino, &mut |n| {
        n.acl_access = Some(vec![1, 2, 3]);
        Ok(())
    })
    .unwrap();
    assert_eq!(m.get_xattr(f.ino, b"system.posix_acl_access").unwrap(), [1, 2, 3]);
    m.update(f.ino, &mut |n| {
        assert_eq!(n.acl_access.as_deref(), Some(&[1u8, 2, 3][..]));
        n.acl_access = None;
        Ok(())
    })
    .unwrap();
    assert!(m.list_xattr(f.ino).unwrap().is_empty());
}

/// A small slice's bytes live in its row: they come back with the slice list, it has no block
/// objects for fsck and gc, and bytes of the wrong length are refused.
fn slices_kept_in_the_metadata(db: &Db) {
    let m = &*db.meta;
    let f = mkfile(m, ROOT_INO, "small");
    let kept = |pos: u64, data: &'static [u8]| NewSlice {
        chunk: 0,
        pos,
        slice_id: m.new_slice_id().unwrap(),
        len: data.len() as u64,
        data: Some(bytes::Bytes::from_static(data)),
    };
    let stored = NewSlice { chunk: 0, pos: 100, slice_id: m.new_slice_id().unwrap(), len: 50, data: None };
    m.commit(f.ino, &[kept(0, b"hello"), stored.clone(), kept(3, b"\0\x01\xff")], 150, None).unwrap();
    assert_eq!(m.getattr(f.ino).unwrap().size, 150);
    let got = m.slices(f.ino, 0).unwrap();
    let data: Vec<Option<&[u8]>> = got.iter().map(|r| r.data.as_deref()).collect();
    assert_eq!(data, [Some(&b"hello"[..]), None, Some(&b"\0\x01\xff"[..])]);
    assert_eq!((got[2].pos, got[2].slice_size, got[2].len), (3, 3, 3));
    let blocks = m.referenced_blocks().unwrap();
    assert_eq!(
        blocks.iter().map(|b| b.slice_id).collect::<Vec<_>>(),
        [stored.slice_id],
        "objects only for stored slices"
    );
    // A truncate keeps the bytes and shortens the slice.
    m.update(f.ino, &mut |i| {
        i.attr.size = 4;
        Ok(())
    })
    .unwrap();
    let got = m.slices(f.ino, 0).unwrap();
    assert_eq!(got.iter().map(|r| (r.pos, r.len)).collect::<Vec<_>>(), [(0, 4), (3, 1)]);
    assert_eq!(got[0].data.as_deref(), Some(&b"hello"[..]));
    let mut wrong = kept(0, b"abc");
    wrong.len = 4;
    assert!(matches!(m.commit(f.ino, &[wrong], 4, None), Err(MetaError::Corrupt(_))));
    assert_eq!(m.slices(f.ino, 0).unwrap().len(), 2, "a refused commit adds nothing");
}

fn failed_operations_do_not_consume_ids_and_ids_never_repeat(db: &Db) {
    let m = &*db.meta;
    let a = mkfile(m, ROOT_INO, "a");
    assert_eq!(errno_of(m.create(ROOT_INO, b"b", &mut |_| Err(Errno::EIO))), libc::EIO);
    let b = mkfile(m, ROOT_INO, "b");
    assert_eq!(b.ino, a.ino + 1, "the failed create rolled back its inode number");
    m.unlink(ROOT_INO, b"b").unwrap();
    m.remove_if_orphan(b.ino).unwrap();
    assert!(mkfile(m, ROOT_INO, "c").ino > b.ino, "inode numbers are not reused");
    let (s1, s2) = (m.new_slice_id().unwrap(), m.new_slice_id().unwrap());
    assert!(s2 > s1);
    assert_eq!(m.usage().unwrap().inodes, 3);
}

fn a_second_connection_sees_committed_transactions(db: &Db) {
    let m = &*db.meta;
    let f = mkfile(m, ROOT_INO, "f");
    m.commit(f.ino, &[NewSlice { chunk: 0, pos: 0, slice_id: 5, len: 3, data: None }], 3, None).unwrap();
    let other = (db.reopen)();
    assert_eq!(other.lookup(ROOT_INO, b"f").unwrap().size, 3);
    assert_eq!(other.slices(f.ino, 0).unwrap().len(), 1);
    // Writes from both connections interleave (busy_timeout, IMMEDIATE transactions).
    let t = std::thread::spawn(move || {
        for i in 0..50 {
            mkfile(&*other, ROOT_INO, &format!("o{i}"));
        }
    });
    for i in 0..50 {
        mkfile(m, ROOT_INO, &format!("m{i}"));
    }
    t.join().unwrap();
    assert_eq!(m.readdir(ROOT_INO, 0, 1000).unwrap().len(), 101);
}

/// Two mounts (sessions): every change one makes is in the log under its session id, in
/// order, and names what changed.
fn changes_are_published_in_order_with_their_session(db: &Db) {
    let (a, b) = (&*db.meta, (db.reopen)());
    let sa = a.open_session("host-a 1 /mnt/a").unwrap();
    let sb = b.open_session("host-b 2 /mnt/b").unwrap();
    assert_ne!(sa, sb);
    let start = b.last_notice().unwrap();
    let f = mkfile(a, ROOT_INO, "f");
    a.commit(f.ino, &[], 10, None).unwrap();
    a.rename(ROOT_INO, b"f", ROOT_INO, b"g", 0, ME).unwrap();
    b.update(f.ino, &mut |n| {
        n.attr.mode = libc::S_IFREG | 0o600;
        Ok(())
    })
    .unwrap();
    let seen = b.notices_after(start, 100).unwrap();
    assert!(seen.windows(2).all(|w| w[0].seq < w[1].seq));
    let of = |sid: u64| -> Vec<coord::Change> {
        seen.iter().filter(|n| n.sid == sid).map(|n| n.change.clone()).collect()
    };
    use coord::Change::*;
    let mine = of(sa);
    for want in [Entry(ROOT_INO, b"f".to_vec()), Data(f.ino), Entry(ROOT_INO, b"g".to_vec())] {
        assert!(mine.contains(&want), "{want:?} missing from {mine:?}");
    }
    assert_eq!(of(sb), [Attr(f.ino)]);
    assert!(b.notices_after(seen.last().unwrap().seq, 100).unwrap().is_empty());
    assert_eq!(b.last_notice().unwrap(), seen.last().unwrap().seq);
    assert_eq!(b.names_of(f.ino).unwrap(), [(ROOT_INO, b"g".to_vec())]);
    let listed: Vec<u64> = a.sessions().unwrap().iter().map(|s| s.sid).collect();
    assert_eq!(listed, [sa, sb]);
    assert!(b.prune_notices(i64::MAX).unwrap() >= seen.len() as u64);
    a.close_session().unwrap();
    b.close_session().unwrap();
    assert!(a.sessions().unwrap().is_empty());
}

fn lock(typ: i32, start: u64, end: u64) -> fusebox::fs::FileLock {
    fusebox::fs::FileLock { typ, start, end, pid: 42 }
}

/// A lock request of `owner` (`flock` or a record lock) through handle `fh`.
fn held(
    owner: u64, flock: bool, lock: fusebox::fs::FileLock, fh: u64,
) -> fusebox::fs::lockrange::HeldLock<u64> {
    fusebox::fs::lockrange::HeldLock { owner, flock, lock, fh }
}

/// Record and flock locks conflict between sessions (also for equal kernel lock owners),
/// split and merge per owner, and are released per owner, per description and with the session.
fn locks_conflict_across_sessions_and_go_with_their_session(db: &Db) {
    use coord::LockRelease;
    let (a, b) = (&*db.meta, (db.reopen)());
    a.open_session("a").unwrap();
    b.open_session("b").unwrap();
    let ino = mkfile(a, ROOT_INO, "locked").ino;
    let (wr, rd, un) = (libc::F_WRLCK, libc::F_RDLCK, libc::F_UNLCK);
    assert_eq!(a.set_lock(ino, &held(7, false, lock(wr, 0, 99), 1)).unwrap(), None);
    // The same kernel owner number on another mount is another owner.
    assert_eq!(b.set_lock(ino, &held(7, false, lock(rd, 50, 50), 2)).unwrap(), Some(lock(wr, 0, 99)));
    assert_eq!(b.test_lock(ino, 7, false, &lock(rd, 100, 200)).unwrap(), None);
    assert_eq!(a.set_lock(ino, &held(7, false, lock(un, 40, 59), 1)).unwrap(), None);
    assert_eq!(b.set_lock(ino, &held(9, false, lock(wr, 45, 55), 2)).unwrap(), None);
    assert_eq!(a.test_lock(ino, 8, false, &lock(rd, 0, 44)).unwrap(), Some(lock(wr, 0, 39)));
    assert_eq!(a.test_lock(ino, 7, false, &lock(rd, 0, u64::MAX)).unwrap(), Some(lock(wr, 45, 55)));
    // flock is apart from record locks.
    assert_eq!(b.set_lock(ino, &held(3, true, lock(wr, 0, u64::MAX), 2)).unwrap(), None);
    assert_eq!(
        a.set_lock(ino, &held(4, true, lock(rd, 0, u64::MAX), 1)).unwrap(),
        Some(lock(wr, 0, u64::MAX))
    );
    assert!(b.release_locks(ino, LockRelease::Flock(3)).unwrap());
    assert!(!b.release_locks(ino, LockRelease::Flock(3)).unwrap(), "nothing left to release");
    assert_eq!(a.set_lock(ino, &held(4, true, lock(rd, 0, u64::MAX), 1)).unwrap(), None);
    assert!(b.release_locks(ino, LockRelease::Description(2)).unwrap());
    assert!(a.release_locks(ino, LockRelease::Posix(7)).unwrap());
    assert_eq!(b.test_lock(ino, 9, false, &lock(wr, 0, u64::MAX)).unwrap(), None);
    // Closing a session drops what it held.
    assert_eq!(b.test_lock(ino, 5, true, &lock(wr, 0, u64::MAX)).unwrap(), Some(lock(rd, 0, u64::MAX)));
    a.close_session().unwrap();
    assert_eq!(b.test_lock(ino, 5, true, &lock(wr, 0, u64::MAX)).unwrap(), None);
    b.close_session().unwrap();
}

/// A session that stops its heartbeat is expired by another: its locks go, and an unlinked
/// inode only it kept is deleted; one a live session keeps stays.
fn expired_sessions_lose_locks_and_kept_orphans(db: &Db) {
    let (a, b) = (&*db.meta, (db.reopen)());
    a.open_session("a").unwrap();
    let sb = b.open_session("b").unwrap();
    let (f, g) = (mkfile(a, ROOT_INO, "f").ino, mkfile(&*b, ROOT_INO, "g").ino);
    assert_eq!(a.set_lock(f, &held(1, false, lock(libc::F_WRLCK, 0, 0), 1)).unwrap(), None);
    assert_eq!(a.unlink(ROOT_INO, b"f").unwrap().nlink, 0);
    assert_eq!(b.unlink(ROOT_INO, b"g").unwrap().nlink, 0);
    assert_eq!(a.reclaim_orphans().unwrap(), 0, "kept inodes are not orphans");
    std::thread::sleep(std::time::Duration::from_millis(50));
    b.heartbeat().unwrap();
    assert!(b.expire_sessions(std::time::Duration::from_secs(3600)).unwrap().is_empty());
    assert_eq!(b.expire_sessions(std::time::Duration::from_millis(20)).unwrap().len(), 1);
    assert_eq!(errno_of(b.getattr(f)), libc::ENOENT, "the expired session's orphan is deleted");
    assert!(b.getattr(g).is_ok(), "the live session's is kept");
    assert_eq!(b.sessions().unwrap().iter().map(|s| s.sid).collect::<Vec<_>>(), [sb]);
    // The expired mount comes back: its heartbeat registers it again.
    a.heartbeat().unwrap();
    assert_eq!(b.sessions().unwrap().len(), 2);
    b.close_session().unwrap();
    assert_eq!(errno_of(a.getattr(g)), libc::ENOENT, "closing deletes what the session kept");
}

/// A create in a directory the caller knows happens only while the directory is as it was
/// seen (its version, no default ACL, the name free); SQLite has no round trip to save.
fn creates_in_a_known_directory(db: &Db) {
    let m = &*db.meta;
    let d = mkdir(m, ROOT_INO, "d");
    let file = NewNode { mode: libc::S_IFREG | 0o600, uid: 1, gid: 2, ..Default::default() };
    let first = m.create_in_known_dir(d.ino, d.version, b"f", &file).unwrap();
    if m.reads_are_local() {
        assert!(first.is_none(), "SQLite takes the ordinary way");
        return;
    }
    let f = first.expect("the directory is as it was seen");
    assert_eq!((f.mode, f.nlink), (libc::S_IFREG | 0o600, 1));
    assert_eq!(m.lookup(d.ino, b"f").unwrap().ino, f.ino);
    let now = m.getattr(d.ino).unwrap();
    assert_eq!(now.version, d.version + 1, "the create bumps the directory's version once");
    assert!(m.create_in_known_dir(d.ino, d.version, b"g", &file).unwrap().is_none(), "a stale version");
    assert!(m.create_in_known_dir(d.ino, now.version, b"f", &file).unwrap().is_none(), "a taken name");
    m.set_xattr(d.ino, ACL_DEFAULT_NAME, b"\x02\0\0\0", 0).unwrap();
    let with_acl = m.getattr(d.ino).unwrap().version;
    assert!(m.create_in_known_dir(d.ino, with_acl, b"g", &file).unwrap().is_none(), "a default ACL");
    assert_eq!(names(m, d.ino), ["f"], "nothing was created by the refused ones");
    assert_eq!(errno_of(m.lookup(d.ino, b"g")), libc::ENOENT);
}

/// Each scenario as an SQLite test, and all of them in one PostgreSQL test.
macro_rules! on_every_engine {
    ($($name:ident),* $(,)?) => {
        mod sqlite_engine {
            $(#[test]
            fn $name() {
                super::$name(&super::fresh_sqlite());
            })*
        }

        #[test]
        fn postgres_engine_every_scenario() {
            let Some(server) = pg_server::shared() else { return };
            $(
                eprintln!("postgres: {}", stringify!($name));
                $name(&fresh_postgres(server));
            )*
        }
    };
}

/// Four clients (separate connections) race creates (also inside subdirectories another
/// client may be removing), links, unlinks, renames between two directories, mkdir/rmdir and
/// attribute changes on shared names; afterwards every entry names an existing inode, every
/// link count matches the entries, every directory's count is 2 + its subdirectories, and
/// once the unnamed inodes are reclaimed every inode left is reachable from the root.
fn concurrent_clients_keep_the_namespace_consistent(db: &Db) {
    let root = &*db.meta;
    let dirs = [mkdir(root, ROOT_INO, "d0").ino, mkdir(root, ROOT_INO, "d1").ino];
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let m = (db.reopen)();
            std::thread::spawn(move || {
                let mut rng = t * 7919 + 1;
                for _ in 0..150 {
                    rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let (a, b) = (dirs[(rng >> 33) as usize % 2], dirs[(rng >> 34) as usize % 2]);
                    let (n1, n2) = (format!("n{}", (rng >> 40) % 6), format!("n{}", (rng >> 45) % 6));
                    let (n1, n2) = (n1.as_bytes(), n2.as_bytes());
                    // Outcomes like ENOENT, EEXIST or ENOTEMPTY are expected; engine errors not.
                    let ok = |r: MetaResult<()>| match r {
                        Ok(()) | Err(MetaError::Fs(_)) => {}
                        Err(e) => panic!("client {t}: {e}"),
                    };
                    let file = || node(libc::S_IFREG | 0o644);
                    match (rng >> 50) % 7 {
                        0 => ok(m.create(a, n1, &mut file()).map(drop)),
                        1 => ok(m.create(a, n1, &mut node(libc::S_IFDIR | 0o755)).map(drop)),
                        2 => ok(m.unlink(a, n1).map(drop).or_else(|_| m.rmdir(a, n1).map(drop))),
                        3 => ok(m.rename(a, n1, b, n2, 0, ME).map(drop)),
                        4 => ok(m.lookup(a, n1).and_then(|x| m.link(x.ino, b, n2)).map(drop)),
                        5 => ok(m.lookup(a, n1).and_then(|x| m.create(x.ino, n2, &mut file())).map(drop)),
                        _ => ok(m
                            .lookup(a, n1)
                            .and_then(|x| {
                                m.update(x.ino, &mut |i| {
                                    i.attr.mtime_ns += 1;
                                    Ok(())
                                })
                            })
                            .map(drop)),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut names_of = std::collections::HashMap::<u64, u32>::new();
    let mut subdirs = std::collections::HashMap::<u64, u32>::new();
    let mut todo = vec![ROOT_INO];
    while let Some(dir) = todo.pop() {
        for e in root.readdir(dir, 0, 10_000).unwrap() {
            assert_eq!(root.getattr(e.attr.ino).unwrap(), e.attr, "entry of {dir} names a live inode");
            *names_of.entry(e.attr.ino).or_default() += 1;
            if e.attr.is_dir() {
                *subdirs.entry(dir).or_default() += 1;
                todo.push(e.attr.ino);
            }
        }
    }
    for (ino, names) in &names_of {
        let a = root.getattr(*ino).unwrap();
        let want = if a.is_dir() { 2 + subdirs.get(ino).copied().unwrap_or(0) } else { *names };
        assert_eq!(a.nlink, want, "link count of inode {ino}");
    }
    assert_eq!(root.getattr(ROOT_INO).unwrap().nlink, 2 + subdirs[&ROOT_INO]);
    root.reclaim_orphans().unwrap();
    assert_eq!(root.usage().unwrap().inodes, names_of.len() as u64 + 1, "unreachable inodes left");
}

on_every_engine!(
    create_lookup_readdir_and_name_checks,
    directory_link_counts_and_rmdir,
    hard_links_unlink_and_orphans,
    rename_plain_and_replacing,
    rename_noreplace_exchange_and_whiteout,
    xattrs_and_their_flags,
    update_cuts_slices_and_a_refused_update_changes_nothing,
    slices_kept_in_the_metadata,
    failed_operations_do_not_consume_ids_and_ids_never_repeat,
    a_second_connection_sees_committed_transactions,
    concurrent_clients_keep_the_namespace_consistent,
    changes_are_published_in_order_with_their_session,
    locks_conflict_across_sessions_and_go_with_their_session,
    expired_sessions_lose_locks_and_kept_orphans,
    creates_in_a_known_directory,
);
