//! A read-only file system with one file: `cargo run --example hello -- MNT`, `umount MNT` ends it.
use fusebox::fs::{Entry, FileAttr, ReadArgs, ReaddirArgs, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry};
use fusebox::{Config, Errno, FileHandle, FileType, Filesystem, NodeId, RequestInfo, Session};
use std::{ffi::OsStr, sync::Arc};

const TEXT: &[u8] = b"Hello from fusebox!\n";
const NAMES: [(u64, &str); 3] = [(1, "."), (1, ".."), (2, "hello")];

fn attr(ino: NodeId) -> Option<FileAttr> {
    let (mode, size, nlink) = match ino {
        NodeId::ROOT => (libc::S_IFDIR | 0o555, 0, 2),
        NodeId(2) => (libc::S_IFREG | 0o444, TEXT.len() as u64, 1),
        _ => return None,
    };
    Some(FileAttr { ino: ino.0, mode, size, nlink, ..Default::default() })
}

struct Hello;
impl Filesystem for Hello {
    fn lookup(&self, _: &RequestInfo, parent: NodeId, name: &OsStr, reply: ReplyEntry) {
        match attr(NodeId(2)).filter(|_| parent == NodeId::ROOT && name == "hello") {
            Some(attr) => reply.entry(&Entry { ino: NodeId(2), generation: 0, attr }),
            None => reply.error(Errno::ENOENT),
        }
    }
    fn getattr(&self, _: &RequestInfo, ino: NodeId, _: Option<FileHandle>, reply: ReplyAttr) {
        match attr(ino) {
            Some(a) => reply.attr(&a),
            None => reply.error(Errno::ENOENT),
        }
    }
    fn read(&self, _: &RequestInfo, _: NodeId, args: &ReadArgs, reply: ReplyData) {
        let start = (args.offset as usize).min(TEXT.len());
        reply.data(&TEXT[start..(start + args.size as usize).min(TEXT.len())])
    }
    fn readdir(&self, _: &RequestInfo, _: NodeId, args: &ReaddirArgs, mut reply: ReplyDirectory) {
        for (i, &(ino, name)) in NAMES.iter().enumerate().skip(args.offset as usize) {
            let kind = if ino == 1 { FileType::Directory } else { FileType::Regular };
            if reply.add(ino, i as u64 + 1, kind, OsStr::new(name)) {
                break;
            }
        }
        reply.ok()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mountpoint = std::env::args_os().nth(1).ok_or("usage: hello MOUNTPOINT")?;
    Ok(Session::mount(Arc::new(Hello), mountpoint.as_ref(), Config::default())?.run()?)
}
