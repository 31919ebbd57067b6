//! Direct IO through a real mount: the iovecs of one readv/writev travel as one request, and
//! with FUSE_ASYNC_DIO the kernel sends the 1 MiB pieces of a large direct IO at once, which
//! the server serves concurrently (`-o no_async_dio` makes them sequential).

mod common;

use common::{within, Aligned, TestMount};
use fusebox::fs::*;
use fusebox::sched::OpStats;
use fusebox_fs::memfs::{MemFs, MemFsOptions};
use std::ffi::OsStr;
use std::io::{IoSlice, IoSliceMut};
use std::sync::{Arc, RwLock};
use std::time::Duration;

fn op(m: &TestMount, name: &str) -> Option<OpStats> {
    m.server().stats().snapshot().ops.into_iter().find(|o| o.name == name)
}

fn count(m: &TestMount, name: &str) -> u64 {
    op(m, name).map_or(0, |o| o.count)
}

#[test]
fn vectored_direct_io_is_one_request_per_syscall() {
    let Some(m) = TestMount::new(Arc::new(MemFs::new(MemFsOptions::default())), "") else { return };
    let path = m.path("v");
    let f = fusebox_testkit::open_direct(&path, true).unwrap();
    let bufs: Vec<Aligned> = (0..32).map(|i| Aligned::new(4096, i as u8)).collect();
    let (writes, reads) = (count(&m, "WRITE"), count(&m, "READ"));
    for round in 0..4u64 {
        let iov: Vec<IoSlice> = bufs.iter().map(|b| IoSlice::new(b.as_ref())).collect();
        let n = rustix::io::pwritev(&f, &iov, round * 32 * 4096).unwrap();
        assert_eq!(n, 32 * 4096);
    }
    assert_eq!(count(&m, "WRITE") - writes, 4, "one WRITE per 32-iovec pwritev");
    let mut back: Vec<Aligned> = (0..32).map(|_| Aligned::new(4096, 0xee)).collect();
    for round in 0..4u64 {
        let mut iov: Vec<IoSliceMut> = back.iter_mut().map(|b| IoSliceMut::new(b.as_mut())).collect();
        let n = rustix::io::preadv(&f, &mut iov, round * 32 * 4096).unwrap();
        assert_eq!(n, 32 * 4096);
        for (i, b) in back.iter().enumerate() {
            assert!(b.as_ref().iter().all(|&x| x == i as u8), "round {round} iovec {i}");
        }
    }
    assert_eq!(count(&m, "READ") - reads, 4, "one READ per 32-iovec preadv");
}

/// One 16 MiB file whose READs and WRITEs each take 20 ms, as on a network store: long enough
/// that requests the kernel sends together are in flight together.
struct SlowFile {
    data: RwLock<Vec<u8>>,
}

const SIZE: usize = 16 << 20;
const FILE: u64 = 2;

impl SlowFile {
    fn attr(ino: u64) -> FileAttr {
        let (mode, size) =
            if ino == 1 { (libc::S_IFDIR | 0o755, 0) } else { (libc::S_IFREG | 0o644, SIZE as u64) };
        FileAttr { ino, size, mode, nlink: 1, ..Default::default() }
    }
}

impl Filesystem for SlowFile {
    fn lookup(&self, _: &RequestInfo, _: NodeId, name: &OsStr, reply: ReplyEntry) {
        if name != "file" {
            return reply.error(Errno::ENOENT);
        }
        reply.entry(&Entry { ino: NodeId(FILE), generation: 0, attr: Self::attr(FILE) })
    }
    fn getattr(&self, _: &RequestInfo, ino: NodeId, _: Option<FileHandle>, reply: ReplyAttr) {
        reply.attr(&Self::attr(ino.0))
    }
    fn open(&self, _: &RequestInfo, _: NodeId, _: i32, reply: ReplyOpen) {
        reply.opened(FileHandle(0), 0)
    }
    fn flush(&self, _: &RequestInfo, _: NodeId, _: FileHandle, _: u64, reply: ReplyEmpty) {
        reply.ok()
    }
    fn read(&self, _: &RequestInfo, _: NodeId, args: &ReadArgs, reply: ReplyData) {
        std::thread::sleep(Duration::from_millis(20));
        let data = self.data.read().unwrap();
        let start = (args.offset as usize).min(SIZE);
        let end = (start + args.size as usize).min(SIZE);
        reply.data(&data[start..end])
    }
    fn write(&self, _: &RequestInfo, _: NodeId, args: &WriteArgs<'_>, reply: ReplyWrite) {
        std::thread::sleep(Duration::from_millis(20));
        let start = (args.offset as usize).min(SIZE);
        let end = (start + args.data.len()).min(SIZE);
        self.data.write().unwrap()[start..end].copy_from_slice(&args.data[..end - start]);
        reply.written((end - start) as u32)
    }
}

/// Write then read the 16 MiB file with one O_DIRECT call each; returns the most WRITEs and
/// READs of the file that were in flight at once.
fn big_direct_io(opts: &str) -> Option<(u64, u64)> {
    let fs = Arc::new(SlowFile { data: RwLock::new(vec![0; SIZE]) });
    let m = TestMount::new(fs, opts)?;
    let path = m.path("file");
    within(Duration::from_secs(60), move || {
        let f = fusebox_testkit::open_direct(&path, false).unwrap();
        let mut buf = Aligned::new(SIZE, 0x5a);
        assert_eq!(rustix::io::pwrite(&f, buf.as_ref(), 0).unwrap(), SIZE);
        buf.as_mut().fill(0);
        assert_eq!(rustix::io::pread(&f, buf.as_mut(), 0).unwrap(), SIZE);
        assert!(buf.as_ref().iter().all(|&b| b == 0x5a));
    });
    let (w, r) = (op(&m, "WRITE").expect("WRITE stats"), op(&m, "READ").expect("READ stats"));
    assert_eq!((w.count, r.count), (16, 16), "16 MiB in 1 MiB requests");
    Some((w.max_in_flight_one_file, r.max_in_flight_one_file))
}

#[test]
fn async_dio_sends_the_pieces_of_one_direct_io_concurrently() {
    let Some((writes, reads)) = big_direct_io("threads=4") else { return };
    assert!(writes > 1, "with async DIO several WRITEs of the file must be in flight, saw {writes}");
    assert!(reads > 1, "with async DIO several READs of the file must be in flight, saw {reads}");
    let Some((writes, reads)) = big_direct_io("threads=4,no_async_dio") else { return };
    assert_eq!((writes, reads), (1, 1), "without async DIO the pieces go one at a time");
}
