//! The async file system API through a real mount: an interrupted request cancels its async
//! handler (the future is dropped and the caller gets EINTR) while the daemon keeps serving;
//! locks and interrupted lock waits work through memfs's async flavour; a large WRITE payload
//! reaches an async handler without a copy.

mod common;

use common::{random_bytes, wait_until, within, Aligned, TestMount};
use fusebox::fs::asyncfs::{
    AsyncAdapter, AsyncFilesystem, FsResult, Opened, ReadData, SyncAsAsync, WriteData,
};
use fusebox::fs::*;
use fusebox::sys;
use fusebox_fs::memfs::{MemFs, MemFsOptions};
use std::ffi::OsString;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One direct-IO file, "stuck": its READ never completes on its own, and every WRITE's
/// payload is kept as it was handed over.
#[derive(Default)]
struct Stuck {
    reads_started: AtomicUsize,
    reads_dropped: Arc<AtomicUsize>,
    kept: Mutex<Vec<WriteData>>,
    /// Names of the threads that ran `getattr` and `lookup`.
    threads: Mutex<Vec<String>>,
}

impl Stuck {
    fn note_thread(&self, what: &str) {
        let name = std::thread::current().name().unwrap_or("").to_string();
        self.threads.lock().unwrap().push(format!("{what} {name}"));
    }
}

/// Counts the handler futures that were dropped before finishing.
struct DropFlag(Arc<AtomicUsize>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn attr(ino: u64) -> FileAttr {
    let mode = if ino == 1 { libc::S_IFDIR | 0o755 } else { libc::S_IFREG | 0o644 };
    FileAttr { ino, size: 4096, mode, nlink: 1, ..Default::default() }
}

impl AsyncFilesystem for Stuck {
    async fn lookup(&self, _: RequestInfo, _: NodeId, name: OsString) -> FsResult<Entry> {
        match name.to_str() {
            Some("stuck") => Ok(Entry { ino: NodeId(2), generation: 0, attr: attr(2) }),
            // Not ready at the first poll: finishes as a runtime task.
            Some("later") => {
                tokio::task::yield_now().await;
                self.note_thread("lookup");
                Ok(Entry { ino: NodeId(3), generation: 0, attr: attr(3) })
            }
            _ => Err(Errno::ENOENT),
        }
    }
    async fn getattr(&self, _: RequestInfo, ino: NodeId, _: Option<FileHandle>) -> FsResult<FileAttr> {
        self.note_thread("getattr");
        Ok(attr(ino.0))
    }
    async fn open(&self, _: RequestInfo, _: NodeId, _: i32) -> FsResult<Opened> {
        Ok(Opened { fh: FileHandle(0), flags: fusebox::abi::FOPEN_DIRECT_IO })
    }
    async fn flush(&self, _: RequestInfo, _: NodeId, _: FileHandle, _: u64) -> FsResult<()> {
        Ok(())
    }
    async fn read(&self, _: RequestInfo, _: NodeId, _: ReadArgs) -> FsResult<ReadData> {
        let _flag = DropFlag(self.reads_dropped.clone());
        self.reads_started.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<()>().await;
        unreachable!("pending never completes")
    }
    async fn write(&self, _: RequestInfo, _: NodeId, args: WriteData) -> FsResult<u32> {
        let n = args.data.len() as u32;
        self.kept.lock().unwrap().push(args);
        Ok(n)
    }
}

#[test]
fn an_interrupted_request_cancels_its_async_handler() {
    let fs = AsyncAdapter::new(Stuck::default(), Default::default()).expect("runtime");
    let inner = fs.inner().clone();
    let Some(m) = TestMount::new(Arc::new(fs), "") else { return };
    let path = m.path("stuck");
    let r = within(Duration::from_secs(20), move || {
        let mut f = std::fs::File::open(path).unwrap();
        sys::run_cancellable(
            |c| {
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(300));
                    c.cancel();
                });
            },
            || f.read(&mut [0u8; 16]),
        )
    });
    assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EINTR));
    assert_eq!(inner.reads_started.load(Ordering::SeqCst), 1);
    assert!(
        wait_until(Duration::from_secs(5), || inner.reads_dropped.load(Ordering::SeqCst) == 1),
        "the handler's future must be dropped"
    );
    // The daemon keeps serving.
    assert_eq!(std::fs::metadata(m.path("stuck")).unwrap().len(), 4096);
}

#[test]
fn a_ready_handler_is_answered_on_the_worker_and_a_waiting_one_on_the_runtime() {
    let fs = AsyncAdapter::new(Stuck::default(), Default::default()).expect("runtime");
    let inner = fs.inner().clone();
    let Some(m) = TestMount::new(Arc::new(fs), "attr_timeout=0,entry_timeout=0") else { return };
    assert_eq!(std::fs::metadata(m.path("stuck")).unwrap().len(), 4096);
    assert_eq!(std::fs::metadata(m.path("later")).unwrap().len(), 4096);
    let threads = inner.threads.lock().unwrap().clone();
    // A GETATTR that is ready at once never wakes a runtime thread: the worker that read it
    // answers it.
    let getattrs: Vec<_> = threads.iter().filter(|t| t.starts_with("getattr")).collect();
    assert!(!getattrs.is_empty(), "{threads:?}");
    assert!(getattrs.iter().all(|t| !t.contains("fusebox-async")), "{threads:?}");
    // A LOOKUP that waits finishes on the runtime, and its answer still arrives.
    let lookups: Vec<_> = threads.iter().filter(|t| t.starts_with("lookup")).collect();
    assert!(!lookups.is_empty() && lookups.iter().all(|t| t.contains("fusebox-async")), "{threads:?}");
}

#[test]
fn memfs_locks_and_interrupted_lock_waits_through_the_async_api() {
    use rustix::fs::FlockOperation;
    let fs = AsyncAdapter::new(SyncAsAsync::new(MemFs::new(MemFsOptions::default())), Default::default())
        .expect("runtime");
    let Some(m) = TestMount::new(Arc::new(fs), "default_permissions") else { return };
    let p = m.path("f");
    std::fs::write(&p, b"x").unwrap();
    let a = std::fs::File::open(&p).unwrap();
    let b = std::fs::File::open(&p).unwrap();
    rustix::fs::flock(&a, FlockOperation::LockExclusive).unwrap();
    assert_eq!(
        rustix::fs::flock(&b, FlockOperation::NonBlockingLockExclusive),
        Err(rustix::io::Errno::WOULDBLOCK)
    );
    let r = within(Duration::from_secs(20), {
        let b = b.try_clone().unwrap();
        move || {
            sys::run_cancellable(
                |c| {
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(200));
                        c.cancel();
                    });
                },
                || rustix::fs::flock(&b, FlockOperation::LockExclusive).map_err(Into::into),
            )
        }
    });
    assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EINTR));
    // The lock drops with the last close of `a` (RELEASE comes after close(2) returns).
    drop(a);
    assert!(wait_until(Duration::from_secs(5), || {
        rustix::fs::flock(&b, FlockOperation::NonBlockingLockExclusive).is_ok()
    }));
}

#[test]
fn large_write_payloads_reach_an_async_handler_without_a_copy() {
    use std::os::unix::fs::FileExt;
    let fs = AsyncAdapter::new(Stuck::default(), Default::default()).expect("runtime");
    let inner = fs.inner().clone();
    let Some(m) = TestMount::new(Arc::new(fs), "") else { return };
    // Page-aligned, so that each 1 MiB write(2) is one 1 MiB WRITE (the kernel pins at most
    // max_pages pages of the caller's memory per request).
    let mut big = Aligned::new(1 << 20, 0);
    big.as_mut().copy_from_slice(&random_bytes(7, 1 << 20));
    let (big, small) = (big.as_ref(), random_bytes(8, 4096));
    let f = std::fs::OpenOptions::new().write(true).open(m.path("stuck")).unwrap();
    // Several large writes in a row: each keeps its buffer while the next is read.
    for i in 0..4u64 {
        f.write_all_at(big, i << 20).unwrap();
    }
    f.write_all_at(&small, 4 << 20).unwrap();
    drop(f);
    let kept = inner.kept.lock().unwrap();
    let large: Vec<_> = kept.iter().filter(|w| w.offset < 4 << 20).collect();
    assert_eq!(large.iter().map(|w| w.data.len()).collect::<Vec<_>>(), [1 << 20; 4]);
    for w in &large {
        assert!(w.data.is_handed_over(), "a {} byte payload was copied", w.data.len());
        let at = (w.offset % (1 << 20)) as usize;
        assert!(w.data[..] == big[at..at + w.data.len()], "payload at {} differs", w.offset);
    }
    let last = kept.iter().find(|w| w.offset == 4 << 20).expect("the small write");
    assert!(!last.data.is_handed_over(), "a 4 KiB payload must not pin a request buffer");
    assert!(last.data[..] == small[..]);
}
