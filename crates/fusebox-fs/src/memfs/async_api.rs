//! memfs through the async API ([`AsyncFilesystem`]): the same operations as the synchronous
//! front end, returning values. Serve it with [`fusebox::fs::asyncfs::AsyncAdapter`].

use super::*;
use fusebox::fs::asyncfs::{
    dirent_plus_size, dirent_size, AsyncFilesystem, DirEntry, DirEntryPlus, FsResult, Opened, WriteData,
};
use std::ffi::OsString;

const NO_HANDLE: Opened = Opened { fh: FileHandle(0), flags: 0 };

impl AsyncFilesystem for MemFs {
    fn init(&self, caps: &mut Capabilities) -> FsResult<()> {
        MemFs::set_capabilities(caps);
        Ok(())
    }

    async fn lookup(&self, _req: RequestInfo, parent: NodeId, name: OsString) -> FsResult<Entry> {
        self.lookup_entry(parent, &name)
    }

    async fn forget(&self, ino: NodeId, nlookup: u64) {
        self.do_forget([(ino, nlookup)])
    }

    async fn getattr(&self, _req: RequestInfo, ino: NodeId, _fh: Option<FileHandle>) -> FsResult<FileAttr> {
        self.do_getattr(ino)
    }

    async fn setattr(&self, _req: RequestInfo, ino: NodeId, attr: SetAttr) -> FsResult<FileAttr> {
        self.do_setattr(ino, &attr)
    }

    async fn readlink(&self, _req: RequestInfo, ino: NodeId) -> FsResult<Vec<u8>> {
        self.do_readlink(ino)
    }

    async fn symlink(
        &self,
        req: RequestInfo,
        parent: NodeId,
        name: OsString,
        target: OsString,
    ) -> FsResult<Entry> {
        self.do_symlink(&req, parent, &name, &target)
    }

    async fn mknod(
        &self,
        req: RequestInfo,
        parent: NodeId,
        name: OsString,
        mode: u32,
        rdev: u32,
    ) -> FsResult<Entry> {
        self.do_mknod(&req, parent, &name, mode, rdev)
    }

    async fn mkdir(&self, req: RequestInfo, parent: NodeId, name: OsString, mode: u32) -> FsResult<Entry> {
        self.do_mkdir(&req, parent, &name, mode)
    }

    async fn unlink(&self, _req: RequestInfo, parent: NodeId, name: OsString) -> FsResult<()> {
        self.do_unlink(parent, &name, false)
    }

    async fn rmdir(&self, _req: RequestInfo, parent: NodeId, name: OsString) -> FsResult<()> {
        self.do_unlink(parent, &name, true)
    }

    async fn rename(
        &self,
        req: RequestInfo,
        parent: NodeId,
        name: OsString,
        newparent: NodeId,
        newname: OsString,
        flags: u32,
    ) -> FsResult<()> {
        self.do_rename(&req, parent, &name, newparent, &newname, flags)
    }

    async fn link(
        &self,
        req: RequestInfo,
        ino: NodeId,
        newparent: NodeId,
        newname: OsString,
    ) -> FsResult<Entry> {
        self.do_link(&req, ino, newparent, &newname)
    }

    async fn open(&self, _req: RequestInfo, ino: NodeId, flags: i32) -> FsResult<Opened> {
        self.do_open(ino, flags).map(|()| NO_HANDLE)
    }

    async fn read(&self, _req: RequestInfo, ino: NodeId, args: ReadArgs) -> FsResult<Vec<u8>> {
        let n = self.get(ino)?;
        let n = read(&n);
        Ok(file_data(&n)?.read_vec(args.offset, args.size as usize))
    }

    async fn write(&self, _req: RequestInfo, ino: NodeId, args: WriteData) -> FsResult<u32> {
        self.do_write(ino, &args.as_args())
    }

    async fn flush(&self, _req: RequestInfo, ino: NodeId, _fh: FileHandle, lock_owner: u64) -> FsResult<()> {
        self.locks.release_posix(ino.0, lock_owner);
        Ok(())
    }

    async fn release(&self, _req: RequestInfo, ino: NodeId, args: ReleaseArgs) -> FsResult<()> {
        if let Some(owner) = args.lock_owner {
            self.locks.release_flock(ino.0, owner);
        }
        Ok(())
    }

    async fn getlk(&self, _req: RequestInfo, ino: NodeId, args: LockArgs) -> FsResult<FileLock> {
        Ok(self.locks.test(ino.0, &args))
    }

    async fn setlk(
        &self,
        _req: RequestInfo,
        ino: NodeId,
        args: LockArgs,
        interrupt: Interrupt,
    ) -> FsResult<()> {
        if !args.sleep {
            return self.locks.set(ino.0, &args, &interrupt);
        }
        // A wait blocks a thread (the lock table waits on a condvar, woken by the interrupt).
        let locks = self.locks.clone();
        tokio::task::spawn_blocking(move || locks.set(ino.0, &args, &interrupt))
            .await
            .unwrap_or(Err(Errno::EIO))
    }

    async fn fsync(&self, _req: RequestInfo, _ino: NodeId, _fh: FileHandle, _datasync: bool) -> FsResult<()> {
        Ok(())
    }

    async fn opendir(&self, _req: RequestInfo, ino: NodeId, _flags: i32) -> FsResult<Opened> {
        self.do_opendir(ino).map(|()| NO_HANDLE)
    }

    async fn readdir(&self, _req: RequestInfo, ino: NodeId, args: ReaddirArgs) -> FsResult<Vec<DirEntry>> {
        let (offset, max_bytes) = (args.offset, args.max_bytes);
        let (mut list, mut used) = (Vec::new(), 0);
        self.do_readdir(ino, offset, |ino, cookie, kind, name| {
            used += dirent_size(name.len());
            if used > max_bytes {
                return true;
            }
            list.push(DirEntry { ino, offset: cookie, kind, name: name.to_os_string() });
            false
        })?;
        Ok(list)
    }

    async fn readdirplus(
        &self,
        _req: RequestInfo,
        ino: NodeId,
        args: ReaddirArgs,
    ) -> FsResult<Vec<DirEntryPlus>> {
        let (offset, max_bytes) = (args.offset, args.max_bytes);
        let (mut list, mut used) = (Vec::new(), 0);
        self.do_readdirplus(ino, offset, |e, cookie, name| {
            used += dirent_plus_size(name.len());
            if used > max_bytes {
                return true;
            }
            list.push(DirEntryPlus { entry: *e, offset: cookie, name: name.to_os_string() });
            false
        })?;
        Ok(list)
    }

    async fn fsyncdir(
        &self,
        _req: RequestInfo,
        _ino: NodeId,
        _fh: FileHandle,
        _datasync: bool,
    ) -> FsResult<()> {
        Ok(())
    }

    async fn statfs(&self, _req: RequestInfo, _ino: NodeId) -> FsResult<Statfs> {
        Ok(self.do_statfs())
    }

    async fn setxattr(
        &self,
        req: RequestInfo,
        ino: NodeId,
        name: OsString,
        value: Vec<u8>,
        flags: i32,
    ) -> FsResult<()> {
        self.do_setxattr(&req, ino, &name, &value, flags)
    }

    async fn getxattr(&self, _req: RequestInfo, ino: NodeId, name: OsString) -> FsResult<Vec<u8>> {
        self.do_getxattr(ino, &name)
    }

    async fn listxattr(&self, _req: RequestInfo, ino: NodeId) -> FsResult<Vec<u8>> {
        self.do_listxattr(ino)
    }

    async fn removexattr(&self, _req: RequestInfo, ino: NodeId, name: OsString) -> FsResult<()> {
        self.do_removexattr(ino, &name)
    }

    async fn create(
        &self,
        req: RequestInfo,
        parent: NodeId,
        name: OsString,
        args: CreateArgs,
    ) -> FsResult<(Entry, Opened)> {
        self.do_create(&req, parent, &name, &args).map(|e| (e, NO_HANDLE))
    }

    async fn tmpfile(&self, req: RequestInfo, parent: NodeId, args: CreateArgs) -> FsResult<(Entry, Opened)> {
        self.do_tmpfile(&req, parent, &args).map(|e| (e, NO_HANDLE))
    }

    async fn fallocate(&self, _req: RequestInfo, ino: NodeId, args: FallocateArgs) -> FsResult<()> {
        self.do_fallocate(ino, &args)
    }

    async fn lseek(
        &self,
        _req: RequestInfo,
        ino: NodeId,
        _fh: FileHandle,
        offset: u64,
        whence: i32,
    ) -> FsResult<u64> {
        self.do_lseek(ino, offset, whence)
    }

    async fn copy_file_range(&self, _req: RequestInfo, ino_in: NodeId, args: CopyRangeArgs) -> FsResult<u64> {
        self.do_copy_file_range(ino_in, &args)
    }
}
