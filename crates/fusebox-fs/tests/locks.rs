//! Mount tests of locks: POSIX record locks and flock in memfs and passthrough; passthrough
//! forwards them to the backing files, so two mounts of one source and direct users of the
//! source see each other's locks; a blocked SETLKW interrupted by a signal returns EINTR and
//! the daemon keeps serving.

mod common;

use common::pt::PtMount;
use common::{within, TestMount};
use fusebox::sys::{self, OfdLock};
use fusebox_fs::memfs::{MemFs, MemFsOptions};
use fusebox_fs::passthrough::Passthrough;
use rustix::fs::FlockOperation;
use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const OPTS: &str = "default_permissions,allow_other";

fn rw(p: &Path) -> File {
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(p).unwrap()
}

fn whole(typ: i32) -> OfdLock {
    OfdLock::new(typ, 0, u64::MAX)
}

fn errno(r: std::io::Result<()>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

/// Wait for a lock through `f` and interrupt the wait with a signal after 200 ms: EINTR.
fn interrupted_wait(f: File, flock: bool) -> i32 {
    within(Duration::from_secs(20), move || {
        let started = Instant::now();
        let r = sys::run_cancellable(
            |c| {
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(200));
                    c.cancel();
                });
            },
            || {
                if flock {
                    rustix::fs::flock(&f, FlockOperation::LockExclusive).map_err(Into::into)
                } else {
                    sys::process_setlk(f.as_fd(), &whole(libc::F_WRLCK), true)
                }
            },
        );
        assert!(started.elapsed() >= Duration::from_millis(150), "the wait did not block");
        errno(r)
    })
}

#[test]
fn memfs_flock_and_ofd_locks_conflict_and_interrupted_wait_is_eintr() {
    let Some(m) = TestMount::new(Arc::new(MemFs::new(MemFsOptions::default())), OPTS) else { return };
    let p = m.path("f");
    let a = rw(&p);
    let b = rw(&p);
    // flock: owned by the open file.
    rustix::fs::flock(&a, FlockOperation::LockExclusive).unwrap();
    assert_eq!(
        rustix::fs::flock(&b, FlockOperation::NonBlockingLockExclusive),
        Err(rustix::io::Errno::WOULDBLOCK)
    );
    assert_eq!(interrupted_wait(b.try_clone().unwrap(), true), libc::EINTR);
    // The daemon still serves, and the lock drops with the last close of `a` (at RELEASE,
    // which the kernel sends after close(2) has returned: hence the wait).
    drop(a);
    assert!(common::wait_until(Duration::from_secs(5), || {
        rustix::fs::flock(&b, FlockOperation::NonBlockingLockExclusive).is_ok()
    }));
    drop(b);
    // Record locks (OFD, owned by the open file): ranges conflict, GETLK reports the holder.
    let c = rw(&p);
    let d = rw(&p);
    sys::ofd_setlk(c.as_fd(), &OfdLock::new(libc::F_WRLCK, 10, 19), false).unwrap();
    let r = sys::ofd_setlk(d.as_fd(), &OfdLock::new(libc::F_RDLCK, 15, 15), false);
    assert_eq!(errno(r), libc::EAGAIN);
    sys::ofd_setlk(d.as_fd(), &OfdLock::new(libc::F_RDLCK, 20, 30), false).unwrap();
    let seen = sys::ofd_getlk(d.as_fd(), &whole(libc::F_WRLCK)).unwrap().expect("a conflict");
    assert_eq!((seen.typ, seen.start, seen.end), (libc::F_WRLCK, 10, 19));
    sys::ofd_setlk(c.as_fd(), &OfdLock::new(libc::F_UNLCK, 0, u64::MAX), false).unwrap();
    assert_eq!(sys::ofd_getlk(d.as_fd(), &whole(libc::F_WRLCK)).unwrap(), None);
}

#[test]
fn memfs_posix_locks_drop_at_close() {
    let Some(m) = TestMount::new(Arc::new(MemFs::new(MemFsOptions::default())), OPTS) else { return };
    let p = m.path("g");
    let a = rw(&p);
    sys::process_setlk(a.as_fd(), &whole(libc::F_WRLCK), false).unwrap();
    let probe = rw(&p);
    // An OFD lock is another owner: it conflicts with this process's POSIX lock.
    let r = sys::ofd_setlk(probe.as_fd(), &whole(libc::F_WRLCK), false);
    assert_eq!(errno(r), libc::EAGAIN);
    // close(2) of any descriptor of the file drops the process's POSIX locks (FLUSH).
    let other = File::open(&p).unwrap();
    drop(other);
    sys::ofd_setlk(probe.as_fd(), &whole(libc::F_WRLCK), false).unwrap();
    drop(a);
}

/// The passthrough configurations the lock tests run on: the daemon's data path, and kernel
/// passthrough (locks still go through the daemon there).
const PT_CONFIGS: [&str; 2] = [OPTS, "default_permissions,allow_other,kernel_passthrough"];

/// A second passthrough mount of the source of `a`, in the same configuration.
fn second_mount(a: &PtMount) -> Option<TestMount> {
    let kernel = a.kernel_passthrough();
    TestMount::new(Arc::new(Passthrough::new(&a.src).unwrap().with_kernel_passthrough(kernel)), OPTS)
}

fn posix_lock_across_mounts(opts: &str) {
    let Some(a) = PtMount::new(opts) else { return };
    let Some(b) = second_mount(&a) else { return };
    std::fs::write(a.src("f"), b"0123456789").unwrap();
    let fa = rw(&a.mnt("f"));
    sys::process_setlk(fa.as_fd(), &OfdLock::new(libc::F_WRLCK, 0, 4), false).unwrap();
    let fb = rw(&b.path("f"));
    let r = sys::process_setlk(fb.as_fd(), &OfdLock::new(libc::F_RDLCK, 2, 2), false);
    assert_eq!(errno(r), libc::EAGAIN, "mount B must see mount A's lock");
    // The range after it is free.
    sys::process_setlk(fb.as_fd(), &OfdLock::new(libc::F_WRLCK, 5, 9), false).unwrap();
    let seen = sys::process_getlk(fb.as_fd(), &whole(libc::F_WRLCK)).unwrap().expect("conflict");
    assert_eq!((seen.start, seen.end), (0, 4));
    // A direct user of the source sees it too (an OFD lock is its own owner).
    let direct = rw(&a.src("f"));
    let r = sys::ofd_setlk(direct.as_fd(), &OfdLock::new(libc::F_WRLCK, 0, 0), false);
    assert_eq!(errno(r), libc::EAGAIN, "the source must see mount A's lock");
    // A blocking request through mount B waits for A's lock.
    let fb2 = rw(&b.path("f"));
    let waiter = std::thread::spawn(move || {
        let r = sys::process_setlk(fb2.as_fd(), &OfdLock::new(libc::F_WRLCK, 0, 4), true);
        (r.is_ok(), fb2)
    });
    std::thread::sleep(Duration::from_millis(150));
    assert!(!waiter.is_finished(), "mount B's SETLKW must wait for mount A's lock");
    // close(2) on mount A drops A's locks: B's waiter gets the lock.
    drop(fa);
    let (granted, fb2) = within(Duration::from_secs(10), move || waiter.join().unwrap());
    assert!(granted);
    // Mount B now holds 0..9 for this process; the source sees it.
    let r = sys::ofd_setlk(direct.as_fd(), &OfdLock::new(libc::F_WRLCK, 0, 0), false);
    assert_eq!(errno(r), libc::EAGAIN, "mount B's locks must be seen in the source");
    // POSIX: closing any descriptor of the file drops all of the process's locks on it.
    drop(fb2);
    sys::ofd_setlk(direct.as_fd(), &whole(libc::F_WRLCK), false).unwrap();
    drop(fb);
    assert_eq!(a.fs.posix_lock_descriptors(), 0);
}

fn flock_across_mounts(opts: &str) {
    let Some(a) = PtMount::new(opts) else { return };
    let Some(b) = second_mount(&a) else { return };
    std::fs::write(a.src("f"), b"x").unwrap();
    let fa = rw(&a.mnt("f"));
    rustix::fs::flock(&fa, FlockOperation::LockExclusive).unwrap();
    let direct = rw(&a.src("f"));
    assert_eq!(
        rustix::fs::flock(&direct, FlockOperation::NonBlockingLockShared),
        Err(rustix::io::Errno::WOULDBLOCK)
    );
    let fb = rw(&b.path("f"));
    assert_eq!(
        rustix::fs::flock(&fb, FlockOperation::NonBlockingLockExclusive),
        Err(rustix::io::Errno::WOULDBLOCK)
    );
    rustix::fs::flock(&fa, FlockOperation::Unlock).unwrap();
    rustix::fs::flock(&fb, FlockOperation::NonBlockingLockExclusive).unwrap();
    assert_eq!(
        rustix::fs::flock(&direct, FlockOperation::NonBlockingLockShared),
        Err(rustix::io::Errno::WOULDBLOCK)
    );
}

fn interrupted_setlkw(opts: &str) {
    let Some(a) = PtMount::new(opts) else { return };
    std::fs::write(a.src("f"), b"x").unwrap();
    // Held directly in the source by another owner.
    let holder = rw(&a.src("f"));
    sys::ofd_setlk(holder.as_fd(), &whole(libc::F_WRLCK), false).unwrap();
    assert_eq!(interrupted_wait(rw(&a.mnt("f")), false), libc::EINTR);
    rustix::fs::flock(&holder, FlockOperation::LockExclusive).unwrap();
    assert_eq!(interrupted_wait(rw(&a.mnt("f")), true), libc::EINTR);
    // The daemon serves on, and a waiter is granted the lock once the holder lets go.
    assert_eq!(std::fs::read(a.mnt("f")).unwrap(), b"x");
    let f = rw(&a.mnt("f"));
    let waiter = std::thread::spawn(move || sys::process_setlk(f.as_fd(), &whole(libc::F_WRLCK), true));
    std::thread::sleep(Duration::from_millis(100));
    assert!(!waiter.is_finished());
    drop(holder);
    within(Duration::from_secs(10), move || waiter.join().unwrap()).unwrap();
}

fusebox_testkit::tests_over! { PT_CONFIGS;
    passthrough_posix_lock_is_seen_through_other_mount_and_source_and_drops_at_close => posix_lock_across_mounts,
    passthrough_flock_is_shared_with_source_and_other_mount => flock_across_mounts,
    passthrough_blocked_setlkw_interrupted_by_signal_is_eintr_and_daemon_keeps_serving => interrupted_setlkw,
}
