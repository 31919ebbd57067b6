//! The table of FUSE operations: one row per opcode, from which the [`Operation`] enum, its
//! parser, the opcode names and each opcode's scheduling class and reply rule are generated.
//!
//! A row reads `OPCODE, "NAME", class, reply, Variant { field: Type = parse, ... };`:
//! - `class` is [`ClassRule`]: `Sync`, `Background` (no process waits: RELEASE, FORGET), or
//!   `WritebackWrite` (background when the WRITE carries `FUSE_WRITE_CACHE`);
//! - `reply` is `Reply` or `NoReply` (the kernel waits for no answer: FORGET, INTERRUPT, ...);
//! - the fields are decoded in order with the `Body` cursor `b`; a later field may use an
//!   earlier one (WRITE's payload length comes from its `arg`).
//!
//! Adding an opcode is adding a row; every list that used to be written out by hand (the parse
//! arms, the names, the background set, the no-reply set of the io_uring transport) follows.

use super::parse::{init_in, Body, ForgetList, ParseError, ParseOptions};
use crate::abi::{self, opcode::*};
use std::ffi::OsStr;

/// Whether a process is waiting on a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestClass {
    /// A process is blocked until the reply arrives.
    Sync,
    /// The kernel sent it on its own behalf (writeback, release, forget).
    Background,
}

/// How an opcode's [`RequestClass`] is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassRule {
    /// Always synchronous.
    Sync,
    /// Always background.
    Background,
    /// A WRITE: background when it is write-back (`FUSE_WRITE_CACHE` in its flags).
    WritebackWrite,
}

/// What the table knows about one opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpcodeInfo {
    /// The name used in logs and stats (`"LOOKUP"`; `"UNKNOWN"` for opcodes not in the table).
    pub name: &'static str,
    /// How its class is decided.
    pub class: ClassRule,
    /// False when the kernel expects no answer (FORGET, BATCH_FORGET, INTERRUPT, NOTIFY_REPLY).
    pub reply: bool,
}

/// An opcode that is not in the table: synchronous, answered (with ENOSYS).
const UNKNOWN: OpcodeInfo = OpcodeInfo { name: "UNKNOWN", class: ClassRule::Sync, reply: true };

macro_rules! reply_flag {
    (Reply) => {
        true
    };
    (NoReply) => {
        false
    };
}

macro_rules! operations {
    (
        parse<$a:lifetime>($b:ident, $opts:ident);
        $(
            $(#[$meta:meta])*
            $opcode:ident, $name:literal, $class:ident, $reply:ident,
            $variant:ident { $($field:ident : $ty:ty = $parse:expr),* $(,)? };
        )*
    ) => {
        /// One typed FUSE operation, borrowing names and payloads from the request buffer.
        /// Variants mirror the kernel opcodes one to one.
        #[derive(Debug)]
        #[allow(missing_docs)]
        pub enum Operation<$a> {
            $( $(#[$meta])* $variant { $($field: $ty),* }, )*
            /// An opcode the table does not know.
            Unsupported { opcode: u32 },
        }

        /// What the table says about `opcode`.
        pub fn opcode_info(opcode: u32) -> OpcodeInfo {
            match opcode {
                $( $opcode => OpcodeInfo {
                    name: $name,
                    class: ClassRule::$class,
                    reply: reply_flag!($reply),
                }, )*
                _ => UNKNOWN,
            }
        }

        /// Decode the body of a request with `opcode`.
        #[allow(unused_variables)]
        pub(super) fn parse_body<$a>(
            opcode: u32,
            $b: &mut Body<$a>,
            $opts: ParseOptions,
        ) -> Result<Operation<$a>, ParseError> {
            Ok(match opcode {
                $( $opcode => {
                    $( let $field: $ty = $parse; )*
                    Operation::$variant { $($field),* }
                } )*
                opcode => Operation::Unsupported { opcode },
            })
        }
    };
}

operations! {
    parse<'a>(b, opts);
    FUSE_LOOKUP, "LOOKUP", Sync, Reply, Lookup { name: &'a OsStr = b.name()? };
    FUSE_FORGET, "FORGET", Background, NoReply, Forget { arg: abi::fuse_forget_in = b.fixed()? };
    FUSE_GETATTR, "GETATTR", Sync, Reply, Getattr { arg: abi::fuse_getattr_in = b.fixed()? };
    FUSE_SETATTR, "SETATTR", Sync, Reply, Setattr { arg: abi::fuse_setattr_in = b.fixed()? };
    FUSE_READLINK, "READLINK", Sync, Reply, Readlink {};
    FUSE_SYMLINK, "SYMLINK", Sync, Reply, Symlink { name: &'a OsStr = b.name()?, target: &'a OsStr = b.name()? };
    FUSE_MKNOD, "MKNOD", Sync, Reply, Mknod { arg: abi::fuse_mknod_in = b.fixed()?, name: &'a OsStr = b.name()? };
    FUSE_MKDIR, "MKDIR", Sync, Reply, Mkdir { arg: abi::fuse_mkdir_in = b.fixed()?, name: &'a OsStr = b.name()? };
    FUSE_UNLINK, "UNLINK", Sync, Reply, Unlink { name: &'a OsStr = b.name()? };
    FUSE_RMDIR, "RMDIR", Sync, Reply, Rmdir { name: &'a OsStr = b.name()? };
    FUSE_RENAME, "RENAME", Sync, Reply, Rename {
        arg: abi::fuse_rename_in = b.fixed()?, name: &'a OsStr = b.name()?, newname: &'a OsStr = b.name()?,
    };
    FUSE_LINK, "LINK", Sync, Reply, Link { arg: abi::fuse_link_in = b.fixed()?, newname: &'a OsStr = b.name()? };
    FUSE_OPEN, "OPEN", Sync, Reply, Open { arg: abi::fuse_open_in = b.fixed()? };
    FUSE_READ, "READ", Sync, Reply, Read { arg: abi::fuse_read_in = b.fixed()? };
    /// `data` is a slice of the read buffer (no copy).
    FUSE_WRITE, "WRITE", WritebackWrite, Reply, Write {
        arg: abi::fuse_write_in = b.fixed()?, data: &'a [u8] = b.bytes(arg.size as usize)?,
    };
    FUSE_STATFS, "STATFS", Sync, Reply, Statfs {};
    FUSE_RELEASE, "RELEASE", Background, Reply, Release { arg: abi::fuse_release_in = b.fixed()? };
    FUSE_FSYNC, "FSYNC", Sync, Reply, Fsync { arg: abi::fuse_fsync_in = b.fixed()? };
    FUSE_SETXATTR, "SETXATTR", Sync, Reply, Setxattr {
        arg: abi::fuse_setxattr_in = b.setxattr_in(opts.setxattr_ext)?,
        name: &'a OsStr = b.name()?,
        value: &'a [u8] = b.bytes(arg.size as usize)?,
    };
    FUSE_GETXATTR, "GETXATTR", Sync, Reply, Getxattr { arg: abi::fuse_getxattr_in = b.fixed()?, name: &'a OsStr = b.name()? };
    FUSE_LISTXATTR, "LISTXATTR", Sync, Reply, Listxattr { arg: abi::fuse_getxattr_in = b.fixed()? };
    FUSE_REMOVEXATTR, "REMOVEXATTR", Sync, Reply, Removexattr { name: &'a OsStr = b.name()? };
    FUSE_FLUSH, "FLUSH", Sync, Reply, Flush { arg: abi::fuse_flush_in = b.fixed()? };
    FUSE_INIT, "INIT", Sync, Reply, Init { arg: abi::fuse_init_in = init_in(b)? };
    FUSE_OPENDIR, "OPENDIR", Sync, Reply, Opendir { arg: abi::fuse_open_in = b.fixed()? };
    FUSE_READDIR, "READDIR", Sync, Reply, Readdir { arg: abi::fuse_read_in = b.fixed()? };
    FUSE_RELEASEDIR, "RELEASEDIR", Background, Reply, Releasedir { arg: abi::fuse_release_in = b.fixed()? };
    FUSE_FSYNCDIR, "FSYNCDIR", Sync, Reply, Fsyncdir { arg: abi::fuse_fsync_in = b.fixed()? };
    FUSE_GETLK, "GETLK", Sync, Reply, Getlk { arg: abi::fuse_lk_in = b.fixed()? };
    FUSE_SETLK, "SETLK", Sync, Reply, Setlk { arg: abi::fuse_lk_in = b.fixed()? };
    FUSE_SETLKW, "SETLKW", Sync, Reply, Setlkw { arg: abi::fuse_lk_in = b.fixed()? };
    FUSE_ACCESS, "ACCESS", Sync, Reply, Access { arg: abi::fuse_access_in = b.fixed()? };
    FUSE_CREATE, "CREATE", Sync, Reply, Create { arg: abi::fuse_create_in = b.fixed()?, name: &'a OsStr = b.name()? };
    FUSE_INTERRUPT, "INTERRUPT", Sync, NoReply, Interrupt { arg: abi::fuse_interrupt_in = b.fixed()? };
    FUSE_BMAP, "BMAP", Sync, Reply, Bmap { arg: abi::fuse_bmap_in = b.fixed()? };
    FUSE_DESTROY, "DESTROY", Sync, Reply, Destroy {};
    FUSE_IOCTL, "IOCTL", Sync, Reply, Ioctl {
        arg: abi::fuse_ioctl_in = b.fixed()?, data: &'a [u8] = b.bytes(arg.in_size as usize)?,
    };
    FUSE_POLL, "POLL", Sync, Reply, Poll { arg: abi::fuse_poll_in = b.fixed()? };
    /// The kernel's answer to a retrieve notification; `data` is what it found.
    FUSE_NOTIFY_REPLY, "NOTIFY_REPLY", Sync, NoReply, NotifyReply {
        arg: abi::fuse_notify_retrieve_in = b.fixed()?, data: &'a [u8] = b.remaining(),
    };
    FUSE_BATCH_FORGET, "BATCH_FORGET", Background, NoReply, BatchForget { list: ForgetList<'a> = b.forget_list()? };
    FUSE_FALLOCATE, "FALLOCATE", Sync, Reply, Fallocate { arg: abi::fuse_fallocate_in = b.fixed()? };
    FUSE_READDIRPLUS, "READDIRPLUS", Sync, Reply, Readdirplus { arg: abi::fuse_read_in = b.fixed()? };
    FUSE_RENAME2, "RENAME2", Sync, Reply, Rename2 {
        arg: abi::fuse_rename2_in = b.fixed()?, name: &'a OsStr = b.name()?, newname: &'a OsStr = b.name()?,
    };
    FUSE_LSEEK, "LSEEK", Sync, Reply, Lseek { arg: abi::fuse_lseek_in = b.fixed()? };
    FUSE_COPY_FILE_RANGE, "COPY_FILE_RANGE", Sync, Reply, CopyFileRange { arg: abi::fuse_copy_file_range_in = b.fixed()? };
    FUSE_SETUPMAPPING, "SETUPMAPPING", Sync, Reply, Setupmapping {};
    FUSE_REMOVEMAPPING, "REMOVEMAPPING", Sync, Reply, Removemapping {};
    FUSE_SYNCFS, "SYNCFS", Sync, Reply, Syncfs { arg: abi::fuse_syncfs_in = b.fixed()? };
    FUSE_TMPFILE, "TMPFILE", Sync, Reply, Tmpfile { arg: abi::fuse_create_in = b.fixed()? };
    FUSE_STATX, "STATX", Sync, Reply, Statx { arg: abi::fuse_statx_in = b.fixed()? };
    /// Like COPY_FILE_RANGE, answered with a 64-bit count.
    FUSE_COPY_FILE_RANGE_64, "COPY_FILE_RANGE_64", Sync, Reply, CopyFileRange64 {
        arg: abi::fuse_copy_file_range_in = b.fixed()?,
    };
}

/// Name of an opcode for logs and stats.
pub fn opcode_name(opcode: u32) -> &'static str {
    opcode_info(opcode).name
}

/// True when the kernel waits for an answer to `opcode`.
pub fn needs_reply(opcode: u32) -> bool {
    opcode_info(opcode).reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_opcode_has_a_name_and_the_no_reply_set_is_exact() {
        for op in 1..=60u32 {
            let info = opcode_info(op);
            let named = info.name != "UNKNOWN";
            // 7 (unused) and 19 (unused) are holes in the kernel's numbering.
            assert_eq!(named, (1..=53).contains(&op) && op != 7 && op != 19, "opcode {op}");
        }
        let no_reply: Vec<_> = (1..=60).filter(|&op| !needs_reply(op)).map(opcode_name).collect();
        assert_eq!(no_reply, ["FORGET", "INTERRUPT", "NOTIFY_REPLY", "BATCH_FORGET"]);
        let background: Vec<_> =
            (1..=60).filter(|&op| opcode_info(op).class == ClassRule::Background).map(opcode_name).collect();
        assert_eq!(background, ["FORGET", "RELEASE", "RELEASEDIR", "BATCH_FORGET"]);
    }
}
