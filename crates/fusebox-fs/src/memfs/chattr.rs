//! chattr/lsattr on memfs: the inode flags tmpfs keeps (append-only, immutable, nodump,
//! noatime), through `FS_IOC_GETFLAGS`/`SETFLAGS` and `FS_IOC_FSGETXATTR`/`FSSETXATTR`. The
//! VFS has checked that the caller may change them; memfs stores them and refuses what they
//! forbid (`Node::check_*`, `fileattr::check_open`).

use super::{write, MemFs};
use fusebox::fs::fileattr::{FileattrCmd, Fsxattr, APPEND_FL, IMMUTABLE_FL, NOATIME_FL, NODUMP_FL};
use fusebox::fs::IoctlArgs;
use fusebox::{Errno, NodeId};

/// The flags memfs keeps; asking for any other is EOPNOTSUPP.
const SUPPORTED: u32 = APPEND_FL | IMMUTABLE_FL | NODUMP_FL | NOATIME_FL;

impl MemFs {
    /// Serve an IOCTL: the bytes for the caller's buffer, ENOTTY for other commands.
    pub(super) fn do_ioctl(&self, ino: NodeId, args: &IoctlArgs<'_>) -> Result<Vec<u8>, Errno> {
        let cmd = FileattrCmd::parse(args).ok_or(Errno(libc::ENOTTY))??;
        let nref = self.get(ino)?;
        {
            let mut n = write(&nref);
            let flags = match cmd {
                FileattrCmd::GetFlags => return Ok(n.flags.to_ne_bytes().to_vec()),
                FileattrCmd::GetXattr => return Ok(Fsxattr::of_flags(n.flags).to_bytes().to_vec()),
                FileattrCmd::SetFlags(flags) => flags,
                FileattrCmd::SetXattr(x) => x.to_flags()?,
            };
            if flags & !SUPPORTED != 0 {
                return Err(Errno::EOPNOTSUPP);
            }
            n.flags = flags;
            n.touch_changed();
        }
        // The new ctime: the kernel would keep its cached attributes until they expire.
        self.attributes_changed(ino);
        Ok(Vec::new())
    }
}
