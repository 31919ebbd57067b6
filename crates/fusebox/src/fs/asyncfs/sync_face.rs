//! [`SyncAsAsync`]: a synchronous [`Filesystem`] through the async API, so that one
//! implementation can be served by the [`AsyncAdapter`](super::AsyncAdapter) (and the async
//! machinery tested with any file system). Each call hands the sync method a reply token whose
//! answer is captured instead of sent, and decodes it back into the async method's value. The
//! sync method may answer from another thread later: the future waits for it.

use super::{DirEntry, DirEntryPlus, FsResult, IoctlOut, Opened};
use crate::abi;
use crate::fs::reply::FromResponder;
use crate::fs::types::*;
use crate::session::responder::{ReplyShared, Responder};
use crate::session::sched::{RequestClass, Stats};
use crate::session::{Interrupt, Retirements};
use crate::wire::reply::out_header;
use crate::wire::ReplyChannel;
use std::ffi::OsString;
use std::io::{self, IoSlice};
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::oneshot;
use zerocopy::FromBytes;

/// Serves the synchronous file system `F` through [`AsyncFilesystem`](super::AsyncFilesystem).
pub struct SyncAsAsync<F: ?Sized> {
    pub(crate) fs: Arc<F>,
    pub(crate) shared: Arc<ReplyShared>,
}

impl<F> SyncAsAsync<F> {
    /// Wrap `fs`.
    pub fn new(fs: F) -> Self {
        Self::from_arc(Arc::new(fs))
    }
}

impl<F: ?Sized> SyncAsAsync<F> {
    /// Wrap a shared `fs`.
    pub fn from_arc(fs: Arc<F>) -> Self {
        let shared = Arc::new(ReplyShared {
            ttl: Ttl::default(),
            stats: Arc::new(Stats::default()),
            splice_write: false,
            retired: Retirements::default(),
            notify_chan: OnceLock::new(),
        });
        SyncAsAsync { fs, shared }
    }

    /// The wrapped file system.
    pub fn inner(&self) -> &Arc<F> {
        &self.fs
    }

    /// A reply token of type `T` whose answer arrives on the returned receiver.
    pub(crate) fn capture<T: FromResponder>(&self, intr: Option<Interrupt>) -> (T, Captured) {
        let (r, answer) = self.capture_responder(intr);
        (T::from_responder(r), answer)
    }

    /// A responder whose answer arrives on the returned receiver.
    pub(crate) fn capture_responder(&self, intr: Option<Interrupt>) -> (Responder, Captured) {
        let (tx, rx) = oneshot::channel();
        let chan: Arc<dyn ReplyChannel> = Arc::new(Capture(Mutex::new(Some(tx))));
        let mut r = Responder::new(chan, self.shared.clone(), 0, 0, RequestClass::Sync);
        if let Some(i) = intr {
            r = r.with_interrupt(i);
        }
        (r, Captured(rx))
    }
}

/// Where a captured answer goes.
struct Capture(Mutex<Option<oneshot::Sender<Vec<u8>>>>);

impl ReplyChannel for Capture {
    fn send(&self, iov: &[IoSlice<'_>]) -> io::Result<()> {
        let tx = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        let tx = tx.ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        let bytes: Vec<u8> = iov.iter().flat_map(|s| s.iter().copied()).collect();
        // The receiver is gone when the async request was cancelled: nothing to deliver.
        tx.send(bytes).map_err(|_| io::Error::from_raw_os_error(libc::ENOENT))
    }
}

/// A captured answer on its way.
pub(crate) struct Captured(oneshot::Receiver<Vec<u8>>);

impl Captured {
    /// The answer's payload, or its error.
    pub(crate) async fn payload(self) -> FsResult<Vec<u8>> {
        let bytes = self.0.await.map_err(|_| Errno::EIO)?;
        let h = out_header(&bytes).ok_or(Errno::EIO)?;
        if h.error != 0 {
            return Err(Errno(-h.error));
        }
        Ok(bytes[core::mem::size_of::<abi::fuse_out_header>()..].to_vec())
    }

    /// The answer decoded as `T`.
    pub(crate) async fn value<T: Decode>(self) -> FsResult<T> {
        T::decode(&self.payload().await?)
    }
}

fn read<T: FromBytes>(b: &[u8]) -> FsResult<(T, &[u8])> {
    T::read_from_prefix(b).map_err(|_| Errno::EIO)
}

/// A value decoded from a reply's payload.
pub(crate) trait Decode: Sized {
    fn decode(payload: &[u8]) -> FsResult<Self>;
}

impl Decode for () {
    fn decode(_: &[u8]) -> FsResult<()> {
        Ok(())
    }
}

impl Decode for Vec<u8> {
    fn decode(payload: &[u8]) -> FsResult<Vec<u8>> {
        Ok(payload.to_vec())
    }
}

impl Decode for super::ReadData {
    fn decode(payload: &[u8]) -> FsResult<super::ReadData> {
        Ok(payload.to_vec().into())
    }
}

impl Decode for u64 {
    fn decode(payload: &[u8]) -> FsResult<u64> {
        read::<u64>(payload).map(|(v, _)| v)
    }
}

impl Decode for u32 {
    fn decode(payload: &[u8]) -> FsResult<u32> {
        read::<abi::fuse_write_out>(payload).map(|(w, _)| w.size)
    }
}

impl Decode for FileAttr {
    fn decode(payload: &[u8]) -> FsResult<FileAttr> {
        read::<abi::fuse_attr_out>(payload).map(|(a, _)| FileAttr::from_abi(&a.attr))
    }
}

impl Decode for Entry {
    fn decode(payload: &[u8]) -> FsResult<Entry> {
        read::<abi::fuse_entry_out>(payload).map(|(e, _)| entry_of(&e))
    }
}

impl Decode for Opened {
    fn decode(payload: &[u8]) -> FsResult<Opened> {
        read::<abi::fuse_open_out>(payload).map(|(o, _)| Opened { fh: FileHandle(o.fh), flags: o.open_flags })
    }
}

impl Decode for (Entry, Opened) {
    fn decode(payload: &[u8]) -> FsResult<(Entry, Opened)> {
        let (e, rest) = read::<abi::fuse_entry_out>(payload)?;
        Ok((entry_of(&e), Opened::decode(rest)?))
    }
}

impl Decode for Statx {
    fn decode(payload: &[u8]) -> FsResult<Statx> {
        read::<abi::fuse_statx_out>(payload).map(|(s, _)| Statx::from_abi(&s.stat))
    }
}

impl Decode for Statfs {
    fn decode(payload: &[u8]) -> FsResult<Statfs> {
        read::<abi::fuse_statfs_out>(payload).map(|(s, _)| Statfs::from_abi(&s.st))
    }
}

impl Decode for FileLock {
    fn decode(payload: &[u8]) -> FsResult<FileLock> {
        read::<abi::fuse_lk_out>(payload).map(|(l, _)| FileLock::from_abi(&l.lk))
    }
}

impl Decode for IoctlOut {
    fn decode(payload: &[u8]) -> FsResult<IoctlOut> {
        let (o, data) = read::<abi::fuse_ioctl_out>(payload)?;
        Ok(IoctlOut { result: o.result, data: data.to_vec() })
    }
}

fn entry_of(e: &abi::fuse_entry_out) -> Entry {
    Entry { ino: NodeId(e.nodeid), generation: e.generation, attr: FileAttr::from_abi(&e.attr) }
}

/// The entries of a READDIR answer.
pub(crate) fn dirents(mut b: &[u8]) -> FsResult<Vec<DirEntry>> {
    let mut list = Vec::new();
    while !b.is_empty() {
        let (d, rest) = read::<abi::fuse_dirent>(b)?;
        let name = rest.get(..d.namelen as usize).ok_or(Errno::EIO)?;
        let kind = FileType::from_mode(d.r#type << 12).ok_or(Errno::EIO)?;
        list.push(DirEntry {
            ino: d.ino,
            offset: d.off,
            kind,
            name: OsString::from(std::ffi::OsStr::from_bytes(name)),
        });
        let len = abi::fuse_dirent_align(abi::FUSE_NAME_OFFSET + d.namelen as usize);
        b = b.get(len..).unwrap_or(&[]);
    }
    Ok(list)
}

/// The entries of a READDIRPLUS answer.
pub(crate) fn dirents_plus(mut b: &[u8]) -> FsResult<Vec<DirEntryPlus>> {
    let mut list = Vec::new();
    while !b.is_empty() {
        let (e, rest) = read::<abi::fuse_entry_out>(b)?;
        let (d, rest) = read::<abi::fuse_dirent>(rest)?;
        let name = rest.get(..d.namelen as usize).ok_or(Errno::EIO)?;
        list.push(DirEntryPlus {
            entry: entry_of(&e),
            offset: d.off,
            name: OsString::from(std::ffi::OsStr::from_bytes(name)),
        });
        let len = abi::fuse_dirent_align(abi::FUSE_NAME_OFFSET_DIRENTPLUS + d.namelen as usize);
        b = b.get(len..).unwrap_or(&[]);
    }
    Ok(list)
}
