//! An in-memory lock manager: POSIX record locks (per owner, byte ranges, split and merged
//! like fcntl) and flock(2) locks (per open file, whole file), with blocking waits that an
//! interrupt cancels. Used by memfs; passthrough forwards locks to the backing files instead.

use fusebox::fs::lockrange::{self, first_conflict, HeldLock};
use fusebox::fs::{FileLock, Interrupt, LockArgs};
use fusebox::Errno;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};

type Held = HeldLock<u64>;

#[derive(Default)]
struct State {
    by_inode: HashMap<u64, Vec<Held>>,
    /// Record-lock owners blocked in SETLKW: the inode and the lock each waits for.
    waiting: HashMap<u64, (u64, FileLock)>,
}

/// How far the wait-for chain is followed (Linux follows it 10 steps).
const MAX_DEADLOCK_STEPS: usize = 10;

impl State {
    /// Whether `owner` waiting for `want` on `ino` would close a cycle of record-lock waits:
    /// a holder of a conflicting lock waits, directly or through others, for `owner`.
    fn would_deadlock(&self, owner: u64, ino: u64, want: &FileLock) -> bool {
        let mut frontier = vec![(ino, *want, owner)];
        for _ in 0..MAX_DEADLOCK_STEPS {
            let mut next = Vec::new();
            for (ino, want, waiter) in frontier {
                let holders = self.by_inode.get(&ino).map(Vec::as_slice).unwrap_or(&[]);
                for h in holders.iter().filter(|h| h.conflicts(&waiter, false, &want)) {
                    if h.owner == owner {
                        return true;
                    }
                    if let Some(&(i, w)) = self.waiting.get(&h.owner) {
                        next.push((i, w, h.owner));
                    }
                }
            }
            if next.is_empty() {
                return false;
            }
            frontier = next;
        }
        false
    }

    /// `owner` waits (or goes on waiting) for `want` on `ino`; EDEADLK, and no wait on record,
    /// when that wait would close a cycle (as Linux answers).
    fn wait_for(&mut self, owner: u64, ino: u64, want: &FileLock) -> Result<(), Errno> {
        if self.would_deadlock(owner, ino, want) {
            self.waiting.remove(&owner);
            return Err(Errno(libc::EDEADLK));
        }
        self.waiting.insert(owner, (ino, *want));
        Ok(())
    }
}

/// Locks of all inodes of one file system.
#[derive(Default)]
pub struct LockTable {
    state: Mutex<State>,
    changed: Condvar,
}

impl LockTable {
    /// An empty table.
    pub fn new() -> Arc<LockTable> {
        Arc::default()
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// GETLK: the first lock conflicting with `args.lock`, or the probe with `F_UNLCK`.
    pub fn test(&self, ino: u64, args: &LockArgs) -> FileLock {
        let st = self.lock_state();
        let found =
            st.by_inode.get(&ino).and_then(|v| first_conflict(v, &args.owner, args.flock, &args.lock));
        match found {
            Some(h) => h.lock,
            None => FileLock { typ: libc::F_UNLCK, ..args.lock },
        }
    }

    /// SETLK/SETLKW. Waits (when `args.sleep`) until the lock can be granted or `intr` fires
    /// (EINTR). Without sleep a conflict is EAGAIN.
    pub fn set(self: &Arc<Self>, ino: u64, args: &LockArgs, intr: &Interrupt) -> Result<(), Errno> {
        lockrange::check_request(&args.lock)?;
        let t = args.lock.typ;
        if args.sleep && t != libc::F_UNLCK {
            // Wake the waiters when the request is interrupted (the flag is set before the
            // callback runs, and the callback takes the state lock, so no wake-up is lost).
            // Registered before this thread takes the state lock: an interrupt that already
            // arrived runs the callback right here, and it must be able to take the lock.
            let me = self.clone();
            intr.on_interrupt(move || {
                let _g = me.lock_state();
                me.changed.notify_all();
            });
        }
        let mut st = self.lock_state();
        if t == libc::F_UNLCK {
            grant(&mut st, ino, args);
            self.changed.notify_all();
            return Ok(());
        }
        loop {
            let holders = st.by_inode.get(&ino).map(Vec::as_slice).unwrap_or(&[]);
            if first_conflict(holders, &args.owner, args.flock, &args.lock).is_none() {
                break;
            }
            if !args.sleep {
                return Err(Errno::EAGAIN);
            }
            if intr.is_interrupted() {
                st.waiting.remove(&args.owner);
                return Err(Errno::EINTR);
            }
            if !args.flock {
                // A wait that would close a cycle of record-lock waits fails at once.
                st.wait_for(args.owner, ino, &args.lock)?;
            }
            st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.waiting.remove(&args.owner);
        grant(&mut st, ino, args);
        // A downgrade (write to read) may let others in.
        self.changed.notify_all();
        Ok(())
    }

    /// Record `args` (a lock, or an unlock) as granted without checking for conflicts: for a
    /// file system whose locks live elsewhere (passthrough's backing files) and that keeps
    /// this table as a record of its own owners' locks (their pids, their waits).
    pub fn record(&self, ino: u64, args: &LockArgs) {
        let mut st = self.lock_state();
        grant(&mut st, ino, args);
    }

    /// `args.owner` is about to wait for `args.lock` elsewhere: EDEADLK when that wait would
    /// close a cycle of waits among the owners recorded here. End it with [`end_wait`].
    ///
    /// [`end_wait`]: LockTable::end_wait
    pub fn begin_wait(&self, ino: u64, args: &LockArgs) -> Result<(), Errno> {
        self.lock_state().wait_for(args.owner, ino, &args.lock)
    }

    /// The wait begun with [`begin_wait`] is over.
    ///
    /// [`begin_wait`]: LockTable::begin_wait
    pub fn end_wait(&self, owner: u64) {
        self.lock_state().waiting.remove(&owner);
    }

    /// Drop every POSIX lock `owner` holds on `ino` (close(2) of any descriptor: FLUSH).
    pub fn release_posix(&self, ino: u64, owner: u64) {
        self.release(ino, |h| !h.flock && h.owner == owner)
    }

    /// Drop the flock lock of the open file `owner` (RELEASE with FLOCK_UNLOCK).
    pub fn release_flock(&self, ino: u64, owner: u64) {
        self.release(ino, |h| h.flock && h.owner == owner)
    }

    /// Drop the record locks taken through the open file description `fh` (RELEASE: its last
    /// descriptor was closed). Those still held are OFD locks, whose owner is the
    /// description: a process's own locks were dropped when it closed its descriptor (FLUSH).
    pub fn release_description(&self, ino: u64, fh: u64) {
        self.release(ino, |h| !h.flock && h.fh == fh)
    }

    /// Drop every lock on `ino` (the inode is gone).
    pub fn forget_inode(&self, ino: u64) {
        self.release(ino, |_| true)
    }

    fn release(&self, ino: u64, drop_it: impl Fn(&Held) -> bool) {
        let mut st = self.lock_state();
        let Some(list) = st.by_inode.get_mut(&ino) else { return };
        let before = list.len();
        list.retain(|h| !drop_it(h));
        if list.len() != before {
            prune(&mut st, ino);
            self.changed.notify_all();
        }
    }

    /// Locks held on `ino` (for tests and diagnostics).
    pub fn held(&self, ino: u64) -> usize {
        self.lock_state().by_inode.get(&ino).map_or(0, Vec::len)
    }
}

/// Give `args.owner` `args.lock` (an unlock removes the range), replacing what it held there.
fn grant(st: &mut State, ino: u64, args: &LockArgs) {
    let list = st.by_inode.entry(ino).or_default();
    lockrange::grant(list, &args.owner, args.flock, args.lock, args.fh.0);
    prune(st, ino);
}

fn prune(st: &mut State, ino: u64) {
    if st.by_inode.get(&ino).is_some_and(Vec::is_empty) {
        st.by_inode.remove(&ino);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fusebox::FileHandle;

    fn args(owner: u64, typ: i32, start: u64, end: u64, flock: bool, sleep: bool) -> LockArgs {
        LockArgs {
            fh: FileHandle(0),
            owner,
            lock: FileLock { start, end, typ, pid: owner as u32 },
            flock,
            sleep,
        }
    }

    /// Takes (or with `F_UNLCK` gives up) `owner`'s POSIX lock on `start..=end` of `ino`, which
    /// must not conflict.
    fn grant(t: &Arc<LockTable>, ino: u64, owner: u64, typ: i32, start: u64, end: u64) {
        t.set(ino, &args(owner, typ, start, end, false, false), &Interrupt::never()).unwrap();
    }

    /// Starts the waiting request `a` on `ino` on a thread of its own and checks that it is
    /// still blocked 50 ms later.
    fn blocked_set(t: &Arc<LockTable>, ino: u64, a: LockArgs) -> std::thread::JoinHandle<Result<(), Errno>> {
        let t2 = t.clone();
        let waiter = std::thread::spawn(move || t2.set(ino, &a, &Interrupt::never()));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!waiter.is_finished(), "the request must wait");
        waiter
    }

    #[test]
    fn a_wait_whose_request_was_already_interrupted_returns_eintr_and_the_table_stays_usable() {
        // The interrupt callback runs at registration then; it used to take the state lock
        // this thread already held (a deadlock that stress-ng's lock stressors hit).
        let t = LockTable::new();
        grant(&t, 1, 1, libc::F_WRLCK, 0, u64::MAX);
        let (tx, rx) = std::sync::mpsc::channel();
        let t2 = t.clone();
        std::thread::spawn(move || {
            let r = t2.set(1, &args(2, libc::F_WRLCK, 0, 9, false, true), &Interrupt::already_interrupted());
            let _ = tx.send(r);
        });
        let r = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("set must not hang");
        assert_eq!(r, Err(Errno::EINTR));
        assert_eq!(t.test(1, &args(3, libc::F_RDLCK, 0, 0, false, false)).typ, libc::F_WRLCK);
    }

    #[test]
    fn posix_ranges_conflict_split_and_release() {
        let t = LockTable::new();
        let never = Interrupt::never();
        grant(&t, 1, 1, libc::F_WRLCK, 0, 99);
        assert_eq!(t.set(1, &args(2, libc::F_RDLCK, 50, 50, false, false), &never), Err(Errno::EAGAIN));
        // Owner 1 unlocks the middle: two pieces remain, the hole is free.
        grant(&t, 1, 1, libc::F_UNLCK, 40, 59);
        assert_eq!(t.held(1), 2);
        grant(&t, 1, 2, libc::F_RDLCK, 50, 50);
        let probe = t.test(1, &args(2, libc::F_WRLCK, 0, u64::MAX, false, false));
        assert_eq!((probe.typ, probe.start, probe.end), (libc::F_WRLCK, 0, 39));
        // flock locks live apart from POSIX locks.
        t.set(1, &args(3, libc::F_WRLCK, 0, u64::MAX, true, false), &never).unwrap();
        t.release_posix(1, 1);
        assert_eq!(t.test(1, &args(9, libc::F_WRLCK, 0, 49, false, false)).typ, libc::F_UNLCK);
        assert_eq!(t.set(1, &args(4, libc::F_RDLCK, 0, 0, true, false), &never), Err(Errno::EAGAIN));
        t.release_flock(1, 3);
        t.set(1, &args(4, libc::F_RDLCK, 0, 0, true, false), &never).unwrap();
    }

    #[test]
    fn own_locks_merge_and_upgrade() {
        let t = LockTable::new();
        grant(&t, 7, 1, libc::F_RDLCK, 0, 9);
        grant(&t, 7, 1, libc::F_RDLCK, 10, 19);
        assert_eq!(t.held(7), 1);
        grant(&t, 7, 1, libc::F_WRLCK, 5, 14);
        assert_eq!(t.held(7), 3);
        let backwards = args(1, libc::F_WRLCK, 9, 8, false, false);
        assert_eq!(t.set(7, &backwards, &Interrupt::never()), Err(Errno::EINVAL));
    }

    #[test]
    fn blocked_waiter_is_granted_on_unlock() {
        let t = LockTable::new();
        grant(&t, 1, 1, libc::F_WRLCK, 0, u64::MAX);
        let waiter = blocked_set(&t, 1, args(2, libc::F_WRLCK, 0, 0, false, true));
        t.release_posix(1, 1);
        assert_eq!(waiter.join().unwrap(), Ok(()));
    }

    #[test]
    fn ofd_locks_go_when_their_description_is_released() {
        let t = LockTable::new();
        let intr = Interrupt::never();
        // Owner 100 (an open file description, handle 5) holds the whole file.
        let ofd =
            LockArgs { fh: FileHandle(5), ..args(100, libc::F_WRLCK, 0, i64::MAX as u64, false, false) };
        t.set(1, &ofd, &intr).unwrap();
        // A process lock taken through another handle stays when handle 5 goes.
        let other = LockArgs { fh: FileHandle(6), ..args(300, libc::F_RDLCK, 0, 0, false, false) };
        assert_eq!(t.set(1, &other, &intr), Err(Errno::EAGAIN));
        let w = LockArgs { fh: FileHandle(7), ..args(200, libc::F_WRLCK, 10, 20, false, true) };
        let waiter = blocked_set(&t, 1, w);
        t.release_description(1, 6);
        assert_eq!(t.held(1), 1, "another handle's release must not drop the lock");
        t.release_description(1, 5);
        assert_eq!(waiter.join().unwrap(), Ok(()));
        assert_eq!(t.held(1), 1);
    }

    #[test]
    fn a_wait_that_closes_a_cycle_is_edeadlk() {
        let t = LockTable::new();
        let never = Interrupt::never();
        grant(&t, 1, 1, libc::F_WRLCK, 0, 9);
        grant(&t, 1, 2, libc::F_WRLCK, 10, 19);
        // Owner 1 waits for owner 2's range.
        let t2 = t.clone();
        let first = std::thread::spawn(move || {
            t2.set(1, &args(1, libc::F_WRLCK, 10, 19, false, true), &Interrupt::never())
        });
        let waits = || t.lock_state().waiting.contains_key(&1);
        assert!(fusebox_testkit::wait_until(std::time::Duration::from_secs(5), waits));
        // Owner 2 asking for owner 1's range would wait for a waiter of its own: EDEADLK.
        assert_eq!(t.set(1, &args(2, libc::F_WRLCK, 0, 9, false, true), &never), Err(Errno(libc::EDEADLK)));
        // Owner 2 gives up its lock: owner 1 gets it.
        grant(&t, 1, 2, libc::F_UNLCK, 10, 19);
        assert_eq!(first.join().unwrap(), Ok(()));
        assert!(t.lock_state().waiting.is_empty());
    }
}
