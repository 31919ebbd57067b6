//! FUSE-over-io_uring (`-o io_uring`) beyond the POSIX matrix (posix_matrix.rs): several rings
//! per queue, replies sent from other threads, and the fallback when the kernel does not offer
//! it. Every test
//! checks that requests really travelled over io_uring (the session's counter), so a silent
//! fallback to /dev/fuse fails.

mod common;

use common::uring::{assert_over_uring, with_uring};
use common::{posix, random_bytes, within, TestMount};
use fusebox::fs::*;
use fusebox::{Filesystem, NodeId};
use fusebox_fs::memfs::{MemFs, MemFsOptions};
use std::ffi::OsStr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const OPTS: &str = "default_permissions,allow_other,io_uring";

#[test]
fn several_rings_per_queue_unpinned() {
    let opts = format!("{OPTS},uring_threads=3,uring_depth=2,uring_nopin,uring_nodefer");
    let Some(m) = with_uring(|| TestMount::new(Arc::new(MemFs::new(MemFsOptions::default())), &opts)) else {
        return;
    };
    let dir = m.mnt.clone();
    let ops = within(Duration::from_secs(300), move || posix::concurrent_mixed(&dir, 100));
    assert_eq!(ops, 8 * 100 * 12);
    assert_over_uring(&m);
}

/// memfs whose READ and WRITE are answered by another thread after the handler returned
/// (reply tokens moved through a channel), as a file system with its own IO threads would.
struct Deferred {
    inner: Arc<MemFs>,
    jobs: Mutex<mpsc::Sender<Box<dyn FnOnce() + Send>>>,
}

impl Deferred {
    fn new() -> Deferred {
        let (tx, rx) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
        // Two answering threads, so replies also overtake each other.
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..2 {
            let rx = rx.clone();
            std::thread::spawn(move || loop {
                let job = rx.lock().unwrap().recv();
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            });
        }
        Deferred { inner: Arc::new(MemFs::new(MemFsOptions::default())), jobs: Mutex::new(tx) }
    }

    fn later(&self, job: impl FnOnce() + Send + 'static) {
        self.jobs.lock().unwrap().send(Box::new(job)).expect("answering threads alive");
    }
}

impl Filesystem for Deferred {
    fn init(&self, caps: &mut fusebox::Capabilities) -> Result<(), Errno> {
        self.inner.init(caps)
    }
    fn lookup(&self, req: &RequestInfo, parent: NodeId, name: &OsStr, reply: ReplyEntry) {
        self.inner.lookup(req, parent, name, reply)
    }
    fn forget(&self, ino: NodeId, nlookup: u64) {
        self.inner.forget(ino, nlookup)
    }
    fn batch_forget(&self, nodes: &[(NodeId, u64)]) {
        self.inner.batch_forget(nodes)
    }
    fn getattr(&self, req: &RequestInfo, ino: NodeId, fh: Option<FileHandle>, reply: ReplyAttr) {
        let (inner, req) = (self.inner.clone(), *req);
        self.later(move || inner.getattr(&req, ino, fh, reply));
    }
    fn setattr(&self, req: &RequestInfo, ino: NodeId, attr: &SetAttr, reply: ReplyAttr) {
        self.inner.setattr(req, ino, attr, reply)
    }
    fn open(&self, req: &RequestInfo, ino: NodeId, flags: i32, reply: ReplyOpen) {
        self.inner.open(req, ino, flags, reply)
    }
    fn create(&self, req: &RequestInfo, parent: NodeId, name: &OsStr, args: &CreateArgs, reply: ReplyCreate) {
        self.inner.create(req, parent, name, args, reply)
    }
    fn read(&self, req: &RequestInfo, ino: NodeId, args: &ReadArgs, reply: ReplyData) {
        let (inner, req, args) = (self.inner.clone(), *req, *args);
        self.later(move || inner.read(&req, ino, &args, reply));
    }
    fn write(&self, req: &RequestInfo, ino: NodeId, args: &WriteArgs<'_>, reply: ReplyWrite) {
        let (inner, req) = (self.inner.clone(), *req);
        let (fh, offset, data, write_flags, flags) =
            (args.fh, args.offset, args.data.to_vec(), args.write_flags, args.flags);
        self.later(move || {
            let args = WriteArgs::new(fh, offset, &data, write_flags, flags);
            inner.write(&req, ino, &args, reply)
        });
    }
    fn flush(&self, req: &RequestInfo, ino: NodeId, fh: FileHandle, lock_owner: u64, reply: ReplyEmpty) {
        self.inner.flush(req, ino, fh, lock_owner, reply)
    }
    fn release(&self, req: &RequestInfo, ino: NodeId, args: &ReleaseArgs, reply: ReplyEmpty) {
        self.inner.release(req, ino, args, reply)
    }
    fn fsync(&self, req: &RequestInfo, ino: NodeId, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        self.inner.fsync(req, ino, fh, datasync, reply)
    }
    fn unlink(&self, req: &RequestInfo, parent: NodeId, name: &OsStr, reply: ReplyEmpty) {
        self.inner.unlink(req, parent, name, reply)
    }
}

#[test]
fn replies_from_other_threads_over_io_uring() {
    let fs = Arc::new(Deferred::new());
    let Some(m) = with_uring(|| {
        // One ring with eight entries: several deferred replies per ring at once.
        TestMount::new(
            fs.clone(),
            "default_permissions,allow_other,no_writeback,io_uring,uring_threads=1,uring_depth=8",
        )
    }) else {
        return;
    };
    let dir = m.mnt.clone();
    within(Duration::from_secs(120), move || {
        let workers: Vec<_> = (0..4u64)
            .map(|t| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    for i in 0..20u64 {
                        let p = dir.join(format!("f{t}-{i}"));
                        let data = random_bytes(t * 100 + i, 1000 + (i as usize) * 7919);
                        std::fs::write(&p, &data).unwrap();
                        assert_eq!(std::fs::read(&p).unwrap(), data, "{}", p.display());
                        assert_eq!(std::fs::metadata(&p).unwrap().len(), data.len() as u64);
                        std::fs::remove_file(&p).unwrap();
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
    });
    assert_over_uring(&m);
}

#[test]
fn falls_back_to_dev_fuse_when_the_kernel_does_not_offer_io_uring() {
    // Mount with io_uring asked for while the parameter is off: the mount works over
    // /dev/fuse (and the daemon logs why once).
    if !common::can_mount() {
        return;
    }
    let guard = fusebox::session::uring_supported()
        .then(|| fusebox::session::UringParamGuard::set(false).expect("turning enable_uring off"));
    let m = TestMount::new(Arc::new(MemFs::new(MemFsOptions::default())), OPTS);
    drop(guard);
    let Some(m) = m else { return };
    assert!(!m.server().negotiated().unwrap().has(fusebox::abi::init_flags::FUSE_OVER_IO_URING));
    std::fs::write(m.path("x"), b"over /dev/fuse").unwrap();
    assert_eq!(std::fs::read(m.path("x")).unwrap(), b"over /dev/fuse");
    assert_eq!(m.server().stats().uring_requests(), 0);
}
