//! The range arithmetic of file locks, for file systems that keep locks themselves (in memory,
//! in a database): POSIX record locks per owner, split and merged as fcntl(2) does, and
//! flock(2) locks per open file, whole file. Where the held locks are stored, and how a
//! waiter waits, is the file system's business; this module only says what conflicts and what
//! a granted lock or unlock leaves.

use super::FileLock;

/// A lock that an owner holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldLock<O> {
    /// Who holds it: the kernel's lock owner (record locks) or open file (flock), possibly
    /// qualified by the mount it came through.
    pub owner: O,
    /// A flock(2) lock rather than a record lock (the two kinds never conflict).
    pub flock: bool,
    /// Range, type and pid.
    pub lock: FileLock,
    /// The file handle (open file description) of the request that took it.
    pub fh: u64,
}

impl<O: PartialEq> HeldLock<O> {
    /// True when this lock keeps `owner` from taking `want` (of kind `flock`).
    pub fn conflicts(&self, owner: &O, flock: bool, want: &FileLock) -> bool {
        self.flock == flock
            && self.owner != *owner
            && self.lock.overlaps(want)
            && (self.lock.typ == libc::F_WRLCK || want.typ == libc::F_WRLCK)
    }
}

/// The first lock in `held` that keeps `owner` from taking `want`.
pub fn first_conflict<'a, O: PartialEq>(
    held: &'a [HeldLock<O>], owner: &O, flock: bool, want: &FileLock,
) -> Option<&'a HeldLock<O>> {
    held.iter().find(|h| h.conflicts(owner, flock, want))
}

/// Give `owner` the lock `lock` (of kind `flock`, through handle `fh`), replacing what it held
/// in that range; `F_UNLCK` removes the range. Conflicts are not checked: see
/// [`first_conflict`].
pub fn grant<O: PartialEq + Clone>(
    held: &mut Vec<HeldLock<O>>, owner: &O, flock: bool, lock: FileLock, fh: u64,
) {
    remove_range(held, owner, flock, &lock);
    if lock.typ != libc::F_UNLCK {
        held.push(HeldLock { owner: owner.clone(), flock, lock, fh });
        merge(held, owner, flock);
    }
}

/// Remove `[range.start, range.end]` from the locks `owner` holds (of this kind), splitting
/// locks that straddle the range (a flock lock covers the whole file).
fn remove_range<O: PartialEq + Clone>(held: &mut Vec<HeldLock<O>>, owner: &O, flock: bool, range: &FileLock) {
    let mut out = Vec::with_capacity(held.len() + 1);
    for h in held.drain(..) {
        if h.owner != *owner || h.flock != flock || !(flock || h.lock.overlaps(range)) {
            out.push(h);
            continue;
        }
        if flock {
            continue;
        }
        if h.lock.start < range.start {
            out.push(HeldLock { lock: FileLock { end: range.start - 1, ..h.lock }, ..h.clone() });
        }
        if h.lock.end > range.end {
            out.push(HeldLock { lock: FileLock { start: range.end + 1, ..h.lock }, ..h });
        }
    }
    *held = out;
}

/// Merge adjacent or overlapping locks of `owner` of the same type.
fn merge<O: PartialEq>(held: &mut Vec<HeldLock<O>>, owner: &O, flock: bool) {
    let (mut mine, mut rest): (Vec<_>, Vec<_>) =
        held.drain(..).partition(|h| h.owner == *owner && h.flock == flock);
    mine.sort_by_key(|h| (h.lock.typ, h.lock.start));
    let mut merged: Vec<HeldLock<O>> = Vec::with_capacity(mine.len());
    for h in mine {
        match merged.last_mut() {
            Some(last) if last.lock.typ == h.lock.typ && h.lock.start <= last.lock.end.saturating_add(1) => {
                last.lock.end = last.lock.end.max(h.lock.end);
            }
            _ => merged.push(h),
        }
    }
    rest.extend(merged);
    *held = rest;
}

/// Check a lock request's type and range: EINVAL for anything fcntl(2) would refuse.
pub fn check_request(lock: &FileLock) -> Result<(), crate::Errno> {
    let t = lock.typ;
    if t != libc::F_UNLCK && t != libc::F_RDLCK && t != libc::F_WRLCK || lock.start > lock.end {
        return Err(crate::Errno::EINVAL);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(typ: i32, start: u64, end: u64) -> FileLock {
        FileLock { start, end, typ, pid: 1 }
    }

    #[test]
    fn record_locks_split_merge_and_conflict_per_owner() {
        let mut held: Vec<HeldLock<(u64, u64)>> = Vec::new();
        let a = (1, 7);
        let b = (2, 7); // the same kernel owner through another mount is another owner
        grant(&mut held, &a, false, l(libc::F_WRLCK, 0, 99), 0);
        grant(&mut held, &a, false, l(libc::F_UNLCK, 10, 19), 0);
        let mut ranges: Vec<_> = held.iter().map(|h| (h.lock.start, h.lock.end)).collect();
        ranges.sort();
        assert_eq!(ranges, [(0, 9), (20, 99)]);
        assert!(first_conflict(&held, &b, false, &l(libc::F_RDLCK, 5, 5)).is_some());
        assert!(first_conflict(&held, &b, false, &l(libc::F_WRLCK, 10, 19)).is_none());
        assert!(first_conflict(&held, &b, true, &l(libc::F_WRLCK, 0, u64::MAX)).is_none(), "flock is apart");
        assert!(
            first_conflict(&held, &a, false, &l(libc::F_WRLCK, 0, 99)).is_none(),
            "own locks never conflict"
        );
        grant(&mut held, &a, false, l(libc::F_WRLCK, 10, 19), 0);
        assert_eq!(held.len(), 1, "adjacent ranges of one type merge");
        assert_eq!((held[0].lock.start, held[0].lock.end), (0, 99));
        grant(&mut held, &b, true, l(libc::F_WRLCK, 0, u64::MAX), 3);
        grant(&mut held, &b, true, l(libc::F_UNLCK, 0, u64::MAX), 3);
        assert_eq!(held.len(), 1);
        assert!(check_request(&l(libc::F_WRLCK, 5, 4)).is_err());
        assert!(check_request(&l(99, 0, 1)).is_err());
        assert!(check_request(&l(libc::F_RDLCK, 0, u64::MAX)).is_ok());
    }
}
