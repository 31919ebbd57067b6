//! Several mounts of one fusebox-dfs file system (issue 17): close-to-open with long kernel
//! caches and the write-back cache, names made on one mount showing on the others within a
//! second, locks across mounts (also of a daemon killed while holding one), on SQLite + a local
//! directory and on PostgreSQL + S3.

use fusebox_testkit as common;
mod support;
use support::*;

use common::{random_bytes, wait_until, within};
use rustix::fs::{flock, FlockOperation};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// The daemon half of `support::daemon_mount`, run in a child process.
#[test]
#[ignore]
fn dfs_daemon() {
    support::dfs_daemon_main();
}

const TIMEOUT: Duration = Duration::from_secs(30);

fn on_both(test: fn(Store)) {
    test(Store::new());
}

fn on_postgres_s3(test: fn(Store)) {
    if let Some(store) = Store::postgres_s3() {
        test(store);
    }
}

/// Writer on A writes random sizes and contents (shrinking too) and closes; reader on B opens
/// and reads at once: 1,000 rounds, never a stale byte or size.
fn close_to_open(store: Store) {
    let Some(a) = mount_with(&store, SHARED, "cache-a", TIMEOUT) else { return };
    let Some(b) = mount_with(&store, SHARED, "cache-b", TIMEOUT) else { return };
    let (pa, pb) = (a.path("c2o"), b.path("c2o"));
    within(Duration::from_secs(900), move || {
        for round in 0..1000u64 {
            let len = match round % 4 {
                0 => (round * 7919) as usize % 200_000,
                1 => (round * 104_729) as usize % 5_000,
                2 => 0,
                _ => (round * 31) as usize % 70_000 + 65_536,
            };
            let data = random_bytes(round, len);
            std::fs::write(&pa, &data).unwrap();
            let back = std::fs::read(&pb).unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(back.len(), len, "round {round}: stale size on the other mount");
            assert!(back == data, "round {round}: stale bytes on the other mount");
        }
    });
}

#[test]
fn close_to_open_across_mounts() {
    on_both(close_to_open);
}

#[test]
fn close_to_open_across_mounts_postgres_s3() {
    on_postgres_s3(close_to_open);
}

fn shows_within_a_second(what: &str, cond: impl FnMut() -> bool) {
    let t = Instant::now();
    assert!(wait_until(Duration::from_secs(1), cond), "{what}: not visible on the other mount within 1 s");
    eprintln!("{what}: visible after {:?}", t.elapsed());
}

/// Creates, renames, deletes and attribute changes on A show on B within a second, although
/// B caches names, absent names and attributes for a minute.
fn names_show_on_other_mounts(store: Store) {
    let Some(a) = mount_with(&store, SHARED, "cache-a", TIMEOUT) else { return };
    let Some(b) = mount_with(&store, SHARED, "cache-b", TIMEOUT) else { return };
    within(Duration::from_secs(120), move || {
        // B caches that "x" is absent, and the directory's attributes.
        assert!(std::fs::metadata(b.path("x")).is_err());
        std::fs::create_dir(a.path("d")).unwrap();
        std::fs::write(a.path("x"), b"hello").unwrap();
        shows_within_a_second("create", || std::fs::read(b.path("x")).is_ok_and(|d| d == b"hello"));
        shows_within_a_second("mkdir", || b.path("d").is_dir());
        // B caches "x" (and its attributes); A renames it into d and chmods it.
        assert_eq!(std::fs::metadata(b.path("x")).unwrap().len(), 5);
        std::fs::rename(a.path("x"), a.path("d/y")).unwrap();
        shows_within_a_second("rename (old name)", || std::fs::metadata(b.path("x")).is_err());
        shows_within_a_second("rename (new name)", || b.path("d/y").exists());
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(a.path("d/y"), std::fs::Permissions::from_mode(0o600)).unwrap();
        shows_within_a_second("chmod", || {
            std::fs::metadata(b.path("d/y")).is_ok_and(|m| m.permissions().mode() & 0o777 == 0o600)
        });
        let names = || -> Vec<String> {
            std::fs::read_dir(b.path("d"))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        };
        assert_eq!(names(), ["y"]);
        // B made "z" and knows it has no extended attributes (it answers that itself); an
        // attribute A sets shows on B all the same.
        std::fs::write(b.path("z"), b"z").unwrap();
        let user_k = |p: &Path| rustix::fs::getxattr(p, "user.k", &mut [0u8; 16][..]);
        assert_eq!(user_k(&b.path("z")).unwrap_err(), rustix::io::Errno::NODATA);
        rustix::fs::setxattr(a.path("z"), "user.k", b"v", rustix::fs::XattrFlags::empty()).unwrap();
        shows_within_a_second("setxattr", || user_k(&b.path("z")) == Ok(1));
        std::fs::remove_file(a.path("z")).unwrap();
        std::fs::remove_file(a.path("d/y")).unwrap();
        shows_within_a_second("delete", || std::fs::metadata(b.path("d/y")).is_err() && names().is_empty());
        std::fs::remove_dir(a.path("d")).unwrap();
        shows_within_a_second("rmdir", || std::fs::metadata(b.path("d")).is_err());
    });
}

#[test]
fn names_show_on_other_mounts_within_a_second() {
    on_both(names_show_on_other_mounts);
}

#[test]
fn names_show_on_other_mounts_within_a_second_postgres_s3() {
    on_postgres_s3(names_show_on_other_mounts);
}

const RECORD: usize = 32;

/// Three mounts append records to one file, each append under flock(2) on that file (open
/// with O_APPEND, lock, write, close): no record is lost or torn.
fn appends_under_flock(store: Store) {
    let mounts: Vec<_> =
        (0..3).filter_map(|i| mount_with(&store, SHARED, &format!("cache-{i}"), TIMEOUT)).collect();
    if mounts.len() < 3 {
        return;
    }
    std::fs::write(mounts[0].path("log"), b"").unwrap();
    const PER_WRITER: usize = 60;
    // Records appended so far, counted by the lock holder after its write and before its
    // close(2): the flock lock goes only at the RELEASE that follows the close's FLUSH, and the
    // kernel may send that RELEASE (and the daemon grant the lock to the next writer) before
    // close(2) returns, so a count taken after close would race with the next holder.
    let appended = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writers: Vec<_> = mounts
        .iter()
        .enumerate()
        .flat_map(|(m, mount)| (0..2).map(move |w| (m, w, mount.path("log"))))
        .map(|(m, w, path)| {
            let appended = appended.clone();
            std::thread::spawn(move || {
                for i in 0..PER_WRITER {
                    let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
                    flock(&f, FlockOperation::LockExclusive).unwrap();
                    // The lock holder sees every record appended before it got the lock.
                    let n = appended.load(std::sync::atomic::Ordering::SeqCst);
                    let size = f.metadata().unwrap().len();
                    assert_eq!(size, n * RECORD as u64, "m{m} w{w} #{i}: stale size under the lock");
                    let rec = format!("{:<width$}\n", format!("m{m} w{w} #{i}"), width = RECORD - 1);
                    f.write_all(rec.as_bytes()).unwrap();
                    appended.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    fusebox::sys::close(std::os::fd::OwnedFd::from(f)).unwrap();
                    if std::env::var_os("APPEND_TRACE").is_some() {
                        eprintln!("APPENDED m{m} w{w} #{i} at {size}");
                    }
                }
            })
        })
        .collect();
    within(Duration::from_secs(600), move || writers.into_iter().for_each(|w| w.join().unwrap()));
    let mut all = Vec::new();
    std::fs::File::open(mounts[1].path("log")).unwrap().read_to_end(&mut all).unwrap();
    let text = String::from_utf8(all).expect("torn record");
    let mut lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    let missing: Vec<String> = (0..3)
        .flat_map(|m| (0..2).flat_map(move |w| (0..PER_WRITER).map(move |i| format!("m{m} w{w} #{i}"))))
        .filter(|r| !lines.contains(&r.as_str()))
        .collect();
    assert!(
        lines.len() == 3 * 2 * PER_WRITER && missing.is_empty(),
        "{} bytes, {} records; missing {missing:?}:\n{text}",
        text.len(),
        lines.len()
    );
    lines.sort_unstable();
    lines.dedup();
    assert_eq!(lines.len(), 3 * 2 * PER_WRITER, "a record overwrote another");
}

#[test]
fn appends_under_flock_from_three_mounts() {
    on_both(appends_under_flock);
}

#[test]
fn appends_under_flock_from_three_mounts_postgres_s3() {
    on_postgres_s3(appends_under_flock);
}

fn try_flock(path: &Path) -> std::io::Result<std::fs::File> {
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_CLOEXEC).open(path)?;
    flock(&f, FlockOperation::NonBlockingLockExclusive)?;
    Ok(f)
}

/// A record lock (OFD) and a flock held through mount A keep mount B out; a blocked F_SETLKW
/// on B wakes when A releases, and a wait on B can be interrupted. Then A's daemon is killed
/// while holding a lock: B gets the lock once A's session times out, and B works throughout.
fn locks_across_mounts(store: Store) {
    let short = Duration::from_secs(3);
    let dir = tempfile::tempdir().unwrap();
    let mnt_a = dir.path().join("a");
    std::fs::create_dir(&mnt_a).unwrap();
    let Some(mut a) = daemon_mount_with(&store, &mnt_a, SHARED, "cache-a", short) else { return };
    let Some(b) = mount_with(&store, SHARED, "cache-b", short) else { return };
    std::fs::write(a.mnt.join("lockfile"), b"x").unwrap();
    let lb = b.path("lockfile");
    // flock: held on A, refused on B, granted to a waiter on B once A lets go.
    let held = try_flock(&a.mnt.join("lockfile")).unwrap();
    let e = try_flock(&lb).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EWOULDBLOCK), "{e}");
    let waiter = {
        let lb = lb.clone();
        std::thread::spawn(move || {
            let f = std::fs::File::open(&lb).unwrap();
            flock(&f, FlockOperation::LockExclusive).unwrap();
            Instant::now()
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!waiter.is_finished(), "the waiter got a lock A holds");
    let released = Instant::now();
    drop(held);
    let granted = within(Duration::from_secs(10), move || waiter.join().unwrap());
    eprintln!("flock waiter on B woke {:?} after A released", granted.duration_since(released));
    // OFD record locks conflict across mounts too.
    let fa = std::fs::OpenOptions::new().read(true).write(true).open(a.mnt.join("lockfile")).unwrap();
    rustix::fs::fcntl_lock(&fa, FlockOperation::NonBlockingLockExclusive).unwrap();
    let fb = std::fs::OpenOptions::new().read(true).write(true).open(&lb).unwrap();
    assert!(rustix::fs::fcntl_lock(&fb, FlockOperation::NonBlockingLockShared).is_err());
    drop(fa);
    within(Duration::from_secs(10), move || {
        assert!(wait_until(Duration::from_secs(5), || rustix::fs::fcntl_lock(
            &fb,
            FlockOperation::NonBlockingLockShared
        )
        .is_ok()));
    });
    // A wait for a lock held elsewhere is interruptible: flock(1) -w gives up by a signal
    // (SIGALRM interrupts its flock(2), the kernel sends INTERRUPT, the wait ends with EINTR).
    let held = try_flock(&a.mnt.join("lockfile")).unwrap();
    let t = Instant::now();
    let gave_up = std::process::Command::new("flock").args(["-w", "1", "-x"]).arg(&lb).arg("true").status();
    if let Ok(st) = gave_up {
        assert_eq!(st.code(), Some(1), "flock -w 1 must time out while A holds the lock");
        assert!(t.elapsed() < Duration::from_secs(5), "the interrupted wait took {:?}", t.elapsed());
        drop(held);
        let got = std::process::Command::new("flock").args(["-w", "10", "-x"]).arg(&lb).arg("true").status();
        assert!(got.unwrap().success(), "the lock after the interrupted wait");
    }
    // A's daemon dies holding a flock: B gets it within the session timeout (plus a heartbeat).
    // (The flock(1) process above released its lock with its RELEASE, which the kernel sends
    // after close(2) returned: A may have to try a few times.)
    let mut held_by_dead = None;
    assert!(wait_until(Duration::from_secs(10), || {
        held_by_dead = try_flock(&a.mnt.join("lockfile")).ok();
        held_by_dead.is_some()
    }));
    assert!(try_flock(&lb).is_err());
    a.kill();
    let killed = Instant::now();
    let lb2 = lb.clone();
    let bpath = b.mnt.clone();
    let got = within(Duration::from_secs(30), move || {
        let mut n = 0;
        loop {
            // B keeps working meanwhile.
            std::fs::write(bpath.join(format!("alive{}", n % 4)), b"ok").unwrap();
            n += 1;
            if let Ok(f) = try_flock(&lb2) {
                return (f, Instant::now());
            }
            assert!(killed.elapsed() < Duration::from_secs(20), "the dead mount's lock was never released");
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let waited = got.1.duration_since(killed);
    eprintln!("lock of the killed mount released after {waited:?} (session timeout {short:?})");
    assert!(waited <= short * 2, "released after {waited:?}, session timeout {short:?}");
    drop(a);
}

#[test]
fn locks_across_mounts_and_a_killed_holder() {
    on_both(locks_across_mounts);
}

#[test]
fn locks_across_mounts_and_a_killed_holder_postgres_s3() {
    on_postgres_s3(locks_across_mounts);
}
