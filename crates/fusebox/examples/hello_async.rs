//! The async flavour of `hello`: a read-only file system whose one file, `greeting`, is made
//! by an async task (here a timer stands in for a network call). Run it with
//! `cargo run --example hello_async --features tokio -- MNT`; `umount MNT` ends it.
//!
//! An [`AsyncFilesystem`] answers by returning from `async fn`s; [`AsyncAdapter`] runs each
//! request as a task on a tokio runtime and serves it through the same session as a
//! synchronous file system.
use fusebox::fs::asyncfs::{AsyncAdapter, AsyncFilesystem, DirEntry, FsResult, ReadData};
use fusebox::fs::{Entry, FileAttr, ReadArgs, ReaddirArgs};
use fusebox::{Config, Errno, FileHandle, FileType, NodeId, RequestInfo, Session};
use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

const GREETING: NodeId = NodeId(2);

struct HelloAsync;

impl HelloAsync {
    /// The file's contents, fetched the slow way.
    async fn text(&self) -> Vec<u8> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        b"Hello from an async fusebox file system!\n".to_vec()
    }

    async fn attr(&self, ino: NodeId) -> FsResult<FileAttr> {
        let (mode, size, nlink) = match ino {
            NodeId::ROOT => (libc::S_IFDIR | 0o555, 0, 2),
            GREETING => (libc::S_IFREG | 0o444, self.text().await.len() as u64, 1),
            _ => return Err(Errno::ENOENT),
        };
        Ok(FileAttr { ino: ino.0, mode, size, nlink, ..Default::default() })
    }
}

impl AsyncFilesystem for HelloAsync {
    async fn lookup(&self, _: RequestInfo, parent: NodeId, name: OsString) -> FsResult<Entry> {
        if parent != NodeId::ROOT || name != "greeting" {
            return Err(Errno::ENOENT);
        }
        Ok(Entry { ino: GREETING, generation: 0, attr: self.attr(GREETING).await? })
    }

    async fn getattr(&self, _: RequestInfo, ino: NodeId, _: Option<FileHandle>) -> FsResult<FileAttr> {
        self.attr(ino).await
    }

    async fn read(&self, _: RequestInfo, ino: NodeId, args: ReadArgs) -> FsResult<ReadData> {
        if ino != GREETING {
            return Err(Errno::EISDIR);
        }
        let text = self.text().await;
        let start = (args.offset as usize).min(text.len());
        Ok(text[start..(start + args.size as usize).min(text.len())].to_vec().into())
    }

    /// READDIRPLUS is served from this too (names only) by the trait's default.
    async fn readdir(&self, _: RequestInfo, _: NodeId, args: ReaddirArgs) -> FsResult<Vec<DirEntry>> {
        let names = [
            (1, ".", FileType::Directory),
            (1, "..", FileType::Directory),
            (2, "greeting", FileType::Regular),
        ];
        Ok(names
            .into_iter()
            .enumerate()
            .skip(args.offset as usize)
            .map(|(i, (ino, name, kind))| DirEntry { ino, offset: i as u64 + 1, kind, name: name.into() })
            .collect())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mountpoint = std::env::args_os().nth(1).ok_or("usage: hello_async MOUNTPOINT")?;
    let fs = AsyncAdapter::new(HelloAsync, Default::default())?;
    Session::mount(Arc::new(fs), mountpoint.as_ref(), Config::default())?.run()?;
    Ok(())
}
