//! Semantics that FUSE servers commonly get wrong, each checked on a real mount: operations on
//! an open but unlinked file once passthrough's descriptor cache has forgotten it, and requests
//! for an inode whose backing file is already deleted (syncfs after create/unlink).

mod common;

use common::pt::PtMount;
use fusebox_fs::passthrough::Passthrough;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, SystemTime};

const OPTS: &str = "default_permissions,allow_other";

fn memfs(opts: &str) -> Option<common::TestMount> {
    let fs = fusebox_fs::memfs::MemFs::new(fusebox_fs::memfs::MemFsOptions::default());
    common::TestMount::new(std::sync::Arc::new(fs), opts)
}

/// Run `check` on a memfs mount and then on a passthrough mount; returns the passthrough
/// mount for checks of its backing files (None when mounting is not possible here).
fn on_memfs_and_passthrough(check: fn(&common::TestMount)) -> Option<PtMount> {
    check(&memfs(OPTS)?);
    let pt = PtMount::new(OPTS)?;
    check(&pt.m);
    Some(pt)
}

/// A file that is open but unlinked can no longer be reopened by its file handle
/// (open_by_handle_at says ESTALE). Operations that carry the open file (fchmod, ftruncate,
/// futimens, fstat) must use it, also after the cached O_PATH descriptor was evicted.
fn unlinked_open_file_after_fd_cache_eviction(opts: &str) {
    let Some(pt) = PtMount::with(|p| Passthrough::with_fd_cache(p, 1), opts) else { return };
    let path = pt.mnt("victim");
    let mut f =
        fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
    f.write_all(b"still here").unwrap();
    fs::remove_file(&path).unwrap();
    // Touch other files so the one-entry descriptor cache forgets the victim.
    for i in 0..4 {
        fs::write(pt.mnt(&format!("other{i}")), b"x").unwrap();
        fs::metadata(pt.mnt(&format!("other{i}"))).unwrap();
    }
    f.set_permissions(fs::Permissions::from_mode(0o600)).expect("fchmod of an unlinked open file");
    f.set_len(4).expect("ftruncate of an unlinked open file");
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    f.set_times(fs::FileTimes::new().set_modified(t)).expect("futimens of an unlinked open file");
    f.sync_all().expect("fsync of an unlinked open file");
    let md = f.metadata().expect("fstat of an unlinked open file");
    assert_eq!(md.mode() & 0o7777, 0o600);
    assert_eq!(md.len(), 4);
    assert_eq!(md.mtime(), 1_000_000);
    assert_eq!(md.nlink(), 0);
    let mut s = String::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "stil");
}

#[test]
fn passthrough_unlinked_open_file_writeback() {
    unlinked_open_file_after_fd_cache_eviction(&format!("{OPTS},writeback"));
}

#[test]
fn passthrough_unlinked_open_file_no_writeback() {
    unlinked_open_file_after_fd_cache_eviction(&format!("{OPTS},no_writeback"));
}

/// With write-back, UNLINK marks the victim's ctime dirty; a sync running at the same time
/// flushes it with a SETATTR after the backing file is deleted. Passthrough must still answer
/// it (it keeps a descriptor of a known node that loses its last name), or the kernel records a
/// write-back error and syncfs fails for everybody (found by stress-ng's io + dentry stressors).
#[test]
fn passthrough_syncfs_survives_create_unlink_churn() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let Some(pt) = PtMount::with(|p| Passthrough::with_fd_cache(p, 4), &format!("{OPTS},writeback")) else {
        return;
    };
    let stop = Arc::new(AtomicBool::new(false));
    let dir = pt.mnt("churn");
    fs::create_dir(&dir).unwrap();
    let churners: Vec<_> = (0..2)
        .map(|t| {
            let (dir, stop) = (dir.clone(), stop.clone());
            std::thread::spawn(move || {
                // Batches, as stress-ng's dentry stressor does: many dirty inodes in the
                // kernel's cache when the unlinks (and the syncs) come.
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let names: Vec<_> = (0..256).map(|i| dir.join(format!("f{t}-{i}"))).collect();
                    for p in &names {
                        fs::File::create(p).unwrap();
                    }
                    for p in &names {
                        fs::remove_file(p).unwrap();
                    }
                    n += names.len() as u64;
                }
                n
            })
        })
        .collect();
    let root = fs::File::open(pt.mnt("")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let mut syncs = 0;
    let result = loop {
        if std::time::Instant::now() > deadline {
            break Ok(());
        }
        if let Err(e) = rustix::fs::syncfs(&root) {
            break Err(e);
        }
        syncs += 1;
    };
    stop.store(true, Ordering::Relaxed);
    let files: u64 = churners.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(files > 0 && syncs > 0);
    result.unwrap_or_else(|e| panic!("syncfs failed after {syncs} syncs, {files} files: {e}"));
}

/// chattr/lsattr (FS_IOC_GETFLAGS/SETFLAGS, reached through the kernel's fileattr path, which
/// also asks FS_IOC_FSGETXATTR) act on the backing file, and the backing file enforces them.
#[test]
fn passthrough_inode_flags_reach_the_backing_file() {
    use rustix::fs::{ioctl_getflags, ioctl_setflags, IFlags};
    let Some(pt) = PtMount::new(OPTS) else { return };
    fs::write(pt.mnt("f"), b"data").unwrap();
    fs::create_dir(pt.mnt("d")).unwrap();
    let f = fs::File::open(pt.mnt("f")).unwrap();
    let before = ioctl_getflags(&f).expect("FS_IOC_GETFLAGS through the mount");
    assert_eq!(before, ioctl_getflags(fs::File::open(pt.src("f")).unwrap()).unwrap());
    ioctl_setflags(&f, before | IFlags::IMMUTABLE).expect("FS_IOC_SETFLAGS through the mount");
    let backing = ioctl_getflags(fs::File::open(pt.src("f")).unwrap()).unwrap();
    assert!(backing.contains(IFlags::IMMUTABLE), "backing flags {backing:?}");
    assert!(ioctl_getflags(&f).unwrap().contains(IFlags::IMMUTABLE));
    let e = fs::OpenOptions::new().write(true).open(pt.mnt("f")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM), "an immutable file must refuse writers: {e}");
    ioctl_setflags(&f, before).unwrap();
    assert!(!ioctl_getflags(fs::File::open(pt.src("f")).unwrap()).unwrap().contains(IFlags::IMMUTABLE));
    fs::write(pt.mnt("f"), b"writable again").unwrap();

    let d = fs::File::open(pt.mnt("d")).unwrap();
    let dflags = ioctl_getflags(&d).unwrap();
    ioctl_setflags(&d, dflags | IFlags::NOATIME).expect("FS_IOC_SETFLAGS on a directory");
    assert!(ioctl_getflags(fs::File::open(pt.src("d")).unwrap()).unwrap().contains(IFlags::NOATIME));
}

/// renameat2 with RENAME_EXCHANGE swaps two names atomically and RENAME_WHITEOUT (when
/// `whiteout`) leaves a whiteout (a 0:0 character device) behind, on the backing directory too.
fn rename_flags(
    mnt: &dyn Fn(&str) -> std::path::PathBuf, backing: Option<&dyn Fn(&str) -> std::path::PathBuf>,
    whiteout: bool,
) {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    fs::write(mnt("a"), b"A").unwrap();
    fs::create_dir(mnt("b")).unwrap();
    renameat_with(CWD, mnt("a"), CWD, mnt("b"), RenameFlags::EXCHANGE).expect("RENAME_EXCHANGE");
    assert!(fs::metadata(mnt("a")).unwrap().is_dir());
    assert_eq!(fs::read(mnt("b")).unwrap(), b"A");
    if let Some(src) = backing {
        assert!(fs::metadata(src("a")).unwrap().is_dir());
        assert_eq!(fs::read(src("b")).unwrap(), b"A");
    }
    if !whiteout {
        return;
    }
    renameat_with(CWD, mnt("b"), CWD, mnt("c"), RenameFlags::WHITEOUT).expect("RENAME_WHITEOUT");
    assert_eq!(fs::read(mnt("c")).unwrap(), b"A");
    let paths: Vec<std::path::PathBuf> =
        std::iter::once(mnt("b")).chain(backing.map(|src| src("b"))).collect();
    for p in paths {
        let md = fs::symlink_metadata(&p).unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(md.file_type().is_char_device(), "{p:?} is not a whiteout");
        assert_eq!(md.rdev(), 0, "{p:?}: a whiteout is device 0:0");
    }
}

#[test]
fn passthrough_rename_exchange_and_whiteout() {
    let Some(pt) = PtMount::new(OPTS) else { return };
    rename_flags(&|p| pt.mnt(p), Some(&|p| pt.src(p)), true);
}

#[test]
fn memfs_rename_exchange_and_whiteout() {
    let Some(m) = memfs(OPTS) else { return };
    rename_flags(&|p| m.path(p), None, true);
}

/// How a user other than the owner modifies a set-id file.
#[derive(Debug, Clone, Copy)]
enum ForeignChange {
    /// Append with write(2).
    Write,
    /// truncate(2) by path.
    Truncate,
    /// posix_fallocate beyond the end.
    Fallocate,
    /// open(O_CREAT|O_TRUNC) of the existing file (an OPEN flagged KILL_SUIDGID).
    TruncatingOpen,
}

/// `change` by user nobody of a root-owned file with mode 06777 in an open directory must
/// clear suid and sgid (sgid because group-exec is set), as on local file systems.
fn suid_cleared(dir: &std::path::Path, change: ForeignChange) {
    use std::os::unix::process::CommandExt;
    let p = dir.join(format!("{change:?}"));
    fs::write(&p, b"#!/bin/sh\n").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o6777)).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o6777);
    let path = p.display();
    let script = match change {
        ForeignChange::Write => format!("echo x >> '{path}'"),
        ForeignChange::Truncate => format!("truncate -s 3 '{path}'"),
        ForeignChange::Fallocate => format!("fallocate -l 65536 '{path}'"),
        ForeignChange::TruncatingOpen => format!(": > '{path}'"),
    };
    let out = std::process::Command::new("sh").arg("-c").arg(&script).uid(65534).gid(65534).output().unwrap();
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    // stat(1) first: it asks only for the mode, which the kernel answers from its cache unless
    // told the attributes changed (OPEN, WRITE and FALLOCATE replies carry none).
    let out = std::process::Command::new("stat").args(["-c", "%a"]).arg(&p).output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(shown, "777", "{change:?} by another user: stat(1) still shows suid/sgid");
    let mode = fs::metadata(&p).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o0777, "{change:?} by another user left suid/sgid: {mode:o}");
}

fn suid_cleared_all(dir: &std::path::Path) {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o777)).unwrap();
    for change in [
        ForeignChange::Write,
        ForeignChange::Truncate,
        ForeignChange::Fallocate,
        ForeignChange::TruncatingOpen,
    ] {
        suid_cleared(dir, change);
    }
}

#[test]
fn memfs_suid_cleared_by_foreign_changes() {
    for wb in ["writeback", "no_writeback"] {
        let Some(m) = memfs(&format!("{OPTS},{wb}")) else { return };
        suid_cleared_all(&m.mnt);
    }
}

#[test]
fn passthrough_suid_cleared_by_foreign_changes() {
    for wb in ["writeback", "no_writeback", "kernel_passthrough"] {
        let Some(pt) = PtMount::new(&format!("{OPTS},{wb}")) else { return };
        fs::create_dir(pt.mnt("open")).unwrap();
        suid_cleared_all(&pt.mnt("open"));
    }
}

/// Run `script` with `sh -c` in `dir` (a separate process: the umask is per process, and the
/// daemon serving the mount lives in this one).
fn sh_in(dir: &std::path::Path, script: &str) {
    let out = std::process::Command::new("sh").arg("-c").arg(script).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
}

fn perms(p: &std::path::Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

/// New files, directories and fifos get the caller's mode minus the caller's umask. The
/// file system applies it (DONT_MASK negotiated), as the kernel would otherwise.
fn umask_applied(m: &common::TestMount) {
    let dont_mask = fusebox::abi::init_flags::FUSE_DONT_MASK;
    assert!(m.server().negotiated().is_some_and(|n| n.has(dont_mask)), "DONT_MASK not negotiated");
    sh_in(&m.mnt, "umask 027 && touch f && mkdir d && mkfifo p && umask 0 && touch g && mkdir e");
    assert_eq!(perms(&m.mnt.join("f")), 0o640);
    assert_eq!(perms(&m.mnt.join("d")), 0o750);
    assert_eq!(perms(&m.mnt.join("p")), 0o640);
    assert_eq!(perms(&m.mnt.join("g")), 0o666);
    assert_eq!(perms(&m.mnt.join("e")), 0o777);
}

#[test]
fn new_nodes_honour_the_callers_umask() {
    let Some(pt) = on_memfs_and_passthrough(umask_applied) else { return };
    assert_eq!(perms(&pt.src("f")), 0o640);
    assert_eq!(perms(&pt.src("d")), 0o750);
}

/// A parent directory's default ACL replaces the umask for new nodes and is inherited by
/// files and subdirectories; the kernel enforces it (POSIX_ACL negotiated). Returns nothing;
/// `getfacl` of the new directory must show the inherited entries.
fn default_acl_inherited_and_enforced(m: &common::TestMount) {
    use std::os::unix::process::CommandExt;
    let acl = fusebox::abi::init_flags::FUSE_POSIX_ACL;
    assert!(m.server().negotiated().is_some_and(|n| n.has(acl)), "POSIX_ACL not negotiated");
    let mnt = &m.mnt;
    fs::create_dir(mnt.join("shared")).unwrap();
    sh_in(mnt, "setfacl -m d:u::rwx,d:g::rwx,d:o::rwx,d:u:nobody:r-x shared");
    sh_in(mnt, "umask 077 && touch shared/f && mkdir shared/d && echo secret > shared/f");
    // The default ACL, not the umask 077, decides the permissions.
    assert_eq!(perms(&mnt.join("shared/f")), 0o666);
    assert_eq!(perms(&mnt.join("shared/d")), 0o777);
    let out =
        std::process::Command::new("getfacl").args(["-p", "-c"]).arg(mnt.join("shared/d")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("user:nobody:r-x"), "access ACL not inherited by the subdirectory:\n{text}");
    assert!(
        text.contains("default:user:nobody:r-x"),
        "default ACL not inherited by the subdirectory:\n{text}"
    );
    // The named entry for nobody beats "other": read allowed, write denied.
    let as_nobody = |script: &str| {
        std::process::Command::new("sh").arg("-c").arg(script).uid(65534).gid(65534).output().unwrap()
    };
    let read = as_nobody(&format!("cat '{}'", mnt.join("shared/f").display()));
    assert!(read.status.success(), "nobody may read: {}", String::from_utf8_lossy(&read.stderr));
    assert_eq!(String::from_utf8_lossy(&read.stdout), "secret\n");
    let write = as_nobody(&format!("echo x >> '{}'", mnt.join("shared/f").display()));
    assert!(!write.status.success(), "the ACL entry r-x must deny nobody's write");
    // chmod moves the ACL mask; the named entry still applies through it: with 0660 the
    // mask is rw-, so nobody (named r-x) may read although "other" has nothing.
    sh_in(mnt, "chmod 660 shared/f");
    let out =
        std::process::Command::new("getfacl").args(["-p", "-c"]).arg(mnt.join("shared/f")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("mask::rw-") && text.contains("other::---"), "chmod did not move the ACL:\n{text}");
    let read = as_nobody(&format!("cat '{}'", mnt.join("shared/f").display()));
    assert!(read.status.success(), "nobody's named entry must still allow reading after chmod 660");
}

#[test]
fn default_acl_is_inherited_and_enforced() {
    let Some(pt) = on_memfs_and_passthrough(default_acl_inherited_and_enforced) else { return };
    // The ACLs live on the backing files.
    assert_eq!(perms(&pt.src("shared/d")), 0o777);
    let out =
        std::process::Command::new("getfacl").args(["-p", "-c"]).arg(pt.src("shared/d")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("default:user:nobody:r-x"), "backing directory lacks the default ACL:\n{text}");
}
