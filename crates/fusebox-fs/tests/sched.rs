//! The worker pool through a real mount: a slow request does not hold up a fast one (replies go
//! out of order), the pool grows when every worker is blocked and shrinks back when idle.

mod common;

use common::{wait_until, within, TestMount};
use fusebox::fs::*;
use std::ffi::OsStr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Two files: reading `slow` blocks until the test opens the gate; `fast` answers at once.
#[derive(Default)]
struct GatedFs {
    open: Mutex<bool>,
    cv: Condvar,
    blocked: Mutex<usize>,
}

const SLOW: u64 = 2;
const FAST: u64 = 3;

impl GatedFs {
    fn attr(ino: u64) -> FileAttr {
        let mode = if ino == 1 { libc::S_IFDIR | 0o755 } else { libc::S_IFREG | 0o644 };
        FileAttr { ino, size: if ino == 1 { 0 } else { 4 }, mode, nlink: 1, ..Default::default() }
    }
    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
    fn blocked(&self) -> usize {
        *self.blocked.lock().unwrap()
    }
}

impl Filesystem for GatedFs {
    fn lookup(&self, _: &RequestInfo, _: NodeId, name: &OsStr, reply: ReplyEntry) {
        let ino = match name.to_str() {
            Some("slow") => SLOW,
            Some("fast") => FAST,
            _ => return reply.error(Errno::ENOENT),
        };
        reply.entry(&Entry { ino: NodeId(ino), generation: 0, attr: Self::attr(ino) })
    }
    fn getattr(&self, _: &RequestInfo, ino: NodeId, _: Option<FileHandle>, reply: ReplyAttr) {
        reply.attr(&Self::attr(ino.0))
    }
    fn open(&self, _: &RequestInfo, _: NodeId, _: i32, reply: ReplyOpen) {
        // Direct IO: every read reaches the handler (no page cache).
        reply.opened(FileHandle(0), fusebox::abi::FOPEN_DIRECT_IO)
    }
    fn read(&self, _: &RequestInfo, ino: NodeId, args: &ReadArgs, reply: ReplyData) {
        if args.offset >= 4 {
            return reply.data(&[]);
        }
        if ino.0 == SLOW {
            *self.blocked.lock().unwrap() += 1;
            let guard = self.open.lock().unwrap();
            let _g = self.cv.wait_while(guard, |open| !*open).unwrap();
            *self.blocked.lock().unwrap() -= 1;
        }
        reply.data(b"data")
    }
}

#[test]
fn slow_request_does_not_block_fast_one_and_pool_grows_then_shrinks() {
    let fs = Arc::new(GatedFs::default());
    let Some(m) = TestMount::new(fs.clone(), "threads=2,max_threads=8") else { return };
    // The pool starts its workers one after another while the first may already have answered
    // INIT (the mount is live then): under load the second can take a moment to count.
    assert!(
        wait_until(Duration::from_secs(5), || m.server().workers() >= 2),
        "the two initial workers did not start: {}",
        m.server().workers()
    );
    // Four readers block inside the file system: more than the two initial workers.
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let p = m.path("slow");
            std::thread::spawn(move || std::fs::read(p).unwrap())
        })
        .collect();
    assert!(
        wait_until(Duration::from_secs(20), || fs.blocked() == 4),
        "only {} readers got in",
        fs.blocked()
    );
    // The grower adds a worker GROW_DELAY after the last one blocked, so a fifth one (free for
    // other requests) follows shortly.
    assert!(
        wait_until(Duration::from_secs(20), || m.server().workers() > 4),
        "pool did not grow: {} workers",
        m.server().workers()
    );
    // A request for another file is answered while the slow ones are still pending.
    let fast = m.path("fast");
    assert_eq!(within(Duration::from_secs(20), move || std::fs::read(fast).unwrap()), b"data");
    assert_eq!(fs.blocked(), 4);
    fs.release();
    for r in readers {
        assert_eq!(r.join().unwrap(), b"data");
    }
    // After IDLE_EXIT without saturation the extra workers retire, each after the next request
    // it serves (a worker blocked in read(2) cannot be asked to leave earlier).
    std::thread::sleep(fusebox::session::IDLE_EXIT);
    // Generous: under load the kernel may hand the next requests to the same worker for a while.
    let limit = fusebox::session::IDLE_EXIT * 10;
    let fast = m.path("fast");
    let shrunk = wait_until(limit, || {
        assert_eq!(std::fs::read(&fast).unwrap(), b"data");
        m.server().workers() == 2
    });
    assert!(shrunk, "pool stayed at {}", m.server().workers());
}

#[test]
fn fifo_mode_and_classes_both_serve() {
    for opts in ["sched=fifo", "sched=classes,background_threads=1"] {
        let Some(m) = TestMount::new(
            Arc::new(fusebox_fs::memfs::MemFs::new(Default::default())),
            &format!("{opts},writeback,default_permissions"),
        ) else {
            return;
        };
        let dir = m.mnt.clone();
        within(Duration::from_secs(120), move || common::posix::concurrent_mixed(&dir, 50));
        let fifo = m.server().gate().is_none();
        assert_eq!(fifo, opts == "sched=fifo");
    }
}
