//! Behaviours of a local Linux file system that programs rely on (issue 15), each checked on
//! memfs and passthrough, write-back on and off, over /dev/fuse and io_uring.

mod common;

use common::matrix::{Mounted, Setup};
use common::{sh_as_nobody, within};
use fusebox::sys::{self, OfdLock};
use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

/// Run `check` on a fresh mount of every synchronous configuration.
fn on_every_setup(check: fn(&Setup, &Mounted)) {
    for setup in Setup::sync_all() {
        let Some(m) = setup.mount() else { continue };
        check(&setup, &m);
    }
}

fn rw(p: &Path) -> File {
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(p).unwrap()
}

/// A lock of the whole file, as the kernel writes it (to OFFSET_MAX).
fn whole(typ: i32) -> OfdLock {
    OfdLock::new(typ, 0, i64::MAX as u64)
}

fn errno(r: std::io::Result<()>) -> Option<i32> {
    r.err().map(|e| e.raw_os_error().unwrap_or(-1))
}

/// OFD locks belong to the open file description: another description of the same file sees
/// and respects them (F_OFD_GETLK, F_GETLK), a dup'ed descriptor keeps them alive, and the
/// last close of the description releases them and wakes a waiter.
fn ofd_locks(setup: &Setup, m: &Mounted) {
    let p = m.mount().path("ofd");
    let (a, b) = (rw(&p), rw(&p));
    sys::ofd_setlk(a.as_fd(), &whole(libc::F_WRLCK), false).unwrap();
    let seen = sys::ofd_getlk(b.as_fd(), &whole(libc::F_RDLCK))
        .unwrap_or_else(|e| panic!("{setup:?}: F_OFD_GETLK: {e}"));
    let seen = seen.unwrap_or_else(|| panic!("{setup:?}: another description does not see the lock"));
    assert_eq!((seen.typ, seen.start, seen.end), (libc::F_WRLCK, 0, i64::MAX as u64), "{setup:?}");
    // A process-lock probe sees it too (it used to fail with EIO: an end past OFFSET_MAX).
    let probe = sys::process_getlk(b.as_fd(), &whole(libc::F_RDLCK))
        .unwrap_or_else(|e| panic!("{setup:?}: F_GETLK: {e}"));
    assert!(probe.is_some(), "{setup:?}: F_GETLK does not see the OFD lock");
    assert_eq!(
        errno(sys::ofd_setlk(b.as_fd(), &whole(libc::F_RDLCK), false)),
        Some(libc::EAGAIN),
        "{setup:?}"
    );
    // Conflicts are per description, not per process: the same process, another description.
    let dup = a.try_clone().unwrap();
    drop(a);
    assert_eq!(
        errno(sys::ofd_setlk(b.as_fd(), &whole(libc::F_WRLCK), false)),
        Some(libc::EAGAIN),
        "{setup:?}: the lock went although a dup of its description is open"
    );
    // A waiter on b is woken when the description's last descriptor is closed.
    let waiter = std::thread::spawn(move || {
        within(Duration::from_secs(20), move || {
            sys::ofd_setlk(b.as_fd(), &whole(libc::F_WRLCK), true).map(|_| b)
        })
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(!waiter.is_finished(), "{setup:?}: the waiter did not wait");
    drop(dup);
    let b = waiter.join().unwrap().unwrap_or_else(|e| panic!("{setup:?}: waiter: {e}"));
    drop(b);
    // Everything closed: a new description gets the lock. (The kernel sends RELEASE, where the
    // lock goes, just after close(2) returns, so allow it a moment.)
    let c = rw(&p);
    assert!(
        common::wait_until(Duration::from_secs(5), || sys::ofd_setlk(
            c.as_fd(),
            &whole(libc::F_WRLCK),
            false
        )
        .is_ok()),
        "{setup:?}: the lock outlived every descriptor of its description"
    );
    drop(c);
    if let Mounted::Passthrough(pt) = m {
        let fs = pt.fs.clone();
        assert!(
            common::wait_until(Duration::from_secs(5), || fs.posix_lock_descriptors() == 0),
            "{setup:?}: the daemon still holds lock descriptors after every close"
        );
    }
}

#[test]
fn ofd_locks_follow_the_open_file_description() {
    on_every_setup(ofd_locks);
}

/// Create `path` as user nobody (umask 0): a file with `mode`, or a directory.
fn create_as_nobody(path: &Path, mode: u32, dir: bool) {
    let call = if dir { "os.mkdir(p, m)" } else { "os.close(os.open(p, os.O_CREAT | os.O_WRONLY, m))" };
    let script = format!("import os; os.umask(0); p = {:?}; m = {mode:#o}; {call}", path.to_str().unwrap());
    sh_as_nobody(&format!("python3 -c '{script}'"));
}

fn mode_and_gid(p: &Path) -> (u32, u32) {
    let md = std::fs::symlink_metadata(p).unwrap();
    (md.mode() & 0o7777, md.gid())
}

/// setgid at creation: in a setgid directory new files and directories get its group and new
/// directories its S_ISGID; a new file asked with S_ISGID keeps it when its creator is in
/// that group and loses it otherwise; S_ISUID asked at creation stays.
fn setgid_at_creation(setup: &Setup, m: &Mounted) {
    let t = m.mount();
    std::fs::set_permissions(t.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&t.mnt, std::fs::Permissions::from_mode(0o755)).unwrap();
    const NOGROUP: u32 = 65534;
    // "member": group nogroup, nobody's own; "other": group root, which nobody is not in.
    for (name, gid, member) in [("member", NOGROUP, true), ("other", 0, false)] {
        let d = t.path(name);
        std::fs::create_dir(&d).unwrap();
        std::os::unix::fs::chown(&d, Some(0), Some(gid)).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o2777)).unwrap();
        create_as_nobody(&d.join("sgid-file"), 0o2755, false);
        create_as_nobody(&d.join("suid-file"), 0o4755, false);
        create_as_nobody(&d.join("subdir"), 0o755, true);
        let want_sgid = if member { 0o2755 } else { 0o0755 };
        assert_eq!(mode_and_gid(&d.join("sgid-file")), (want_sgid, gid), "{setup:?}: {name}/sgid-file");
        assert_eq!(mode_and_gid(&d.join("suid-file")), (0o4755, gid), "{setup:?}: {name}/suid-file");
        assert_eq!(mode_and_gid(&d.join("subdir")), (0o2755, gid), "{setup:?}: {name}/subdir");
        let owner = std::fs::metadata(d.join("sgid-file")).unwrap().uid();
        assert_eq!(owner, 65534, "{setup:?}: {name}/sgid-file belongs to its creator");
    }
}

#[test]
fn setgid_directories_pass_on_their_group_and_bit() {
    on_every_setup(setgid_at_creation);
}

/// A change by an unprivileged writer clears S_ISUID, and S_ISGID by the rule of Linux 6.x:
/// when the file is group-executable or the writer is not in its group. Each write,
/// truncate and fallocate mode, by user nobody, on files that nobody may write.
fn setid_cleared_by_changes(setup: &Setup, m: &Mounted) {
    let t = m.mount();
    std::fs::set_permissions(t.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&t.mnt, std::fs::Permissions::from_mode(0o755)).unwrap();
    const NOGROUP: u32 = 65534;
    // Collapse and insert range are not here: the kernel's FUSE refuses every fallocate mode
    // but KEEP_SIZE, PUNCH_HOLE and ZERO_RANGE with EOPNOTSUPP before a server sees it.
    let changes = [
        ("write", "echo x >> F"),
        ("truncate", "truncate -s 100 F"),
        ("fallocate", "fallocate -l 8192 F"),
        ("punch-hole", "fallocate -p -o 0 -l 4096 F"),
        ("zero-range", "fallocate -z -o 0 -l 4096 F"),
    ];
    let p = t.path("collapse");
    std::fs::write(&p, vec![1u8; 8192]).unwrap();
    let refused = std::process::Command::new("fallocate")
        .args(["-c", "-o", "0", "-l", "4096"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not supported"),
        "{setup:?}: collapse range reached a file system; test it here"
    );
    // (mode, group) -> mode after a change by nobody.
    let cases = [
        (0o2666, NOGROUP, 0o2666), // nobody is in the group, not group-executable: kept
        (0o2666, 0, 0o0666),       // nobody is not in the group: cleared
        (0o2676, NOGROUP, 0o0676), // group-executable: cleared
        (0o4666, NOGROUP, 0o0666), // suid: always cleared
    ];
    for (what, script) in changes {
        for (i, (mode, gid, want)) in cases.into_iter().enumerate() {
            let p = t.path(&format!("{what}-{i}"));
            std::fs::write(&p, vec![1u8; 8192]).unwrap();
            std::os::unix::fs::chown(&p, Some(0), Some(gid)).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            sh_as_nobody(&script.replace('F', &format!("'{}'", p.display())));
            let got = std::fs::metadata(&p).unwrap().mode() & 0o7777;
            assert_eq!(got, want, "{setup:?}: {what} of a {mode:o} file of group {gid}: {got:o}");
        }
    }
    // chmod by an owner outside the file's group cannot set S_ISGID.
    let p = t.path("chmod");
    std::fs::write(&p, b"").unwrap();
    std::os::unix::fs::chown(&p, Some(65534), Some(0)).unwrap();
    sh_as_nobody(&format!("chmod 2755 '{}'", p.display()));
    assert_eq!(
        std::fs::metadata(&p).unwrap().mode() & 0o7777,
        0o0755,
        "{setup:?}: chmod g+s outside the group"
    );
    // Directories keep S_ISGID when their contents change.
    let d = t.path("sgid-dir");
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o2777)).unwrap();
    sh_as_nobody(&format!("echo x > '{}'", d.join("f").display()));
    assert_eq!(std::fs::metadata(&d).unwrap().mode() & 0o7777, 0o2777, "{setup:?}: directory lost S_ISGID");
}

#[test]
fn unprivileged_changes_clear_set_id_bits_by_the_linux_rule() {
    on_every_setup(setid_cleared_by_changes);
}

/// Drop the kernel's clean caches, so that it forgets the inodes nobody holds.
fn drop_kernel_caches() {
    std::fs::write("/proc/sys/vm/drop_caches", "3").unwrap();
}

/// Exportable file handles: a handle taken with name_to_handle_at opens the same file after
/// the kernel forgot it (the kernel asks for "." of the node id), also through a hard link and
/// after its directory was renamed; a deleted file's handle is ESTALE.
fn file_handles(setup: &Setup, m: &Mounted) {
    use std::io::Read;
    let t = m.mount();
    std::fs::create_dir(t.path("old")).unwrap();
    std::fs::write(t.path("old/f"), b"first").unwrap();
    std::fs::hard_link(t.path("old/f"), t.path("link")).unwrap();
    std::fs::write(t.path("gone"), b"deleted").unwrap();
    let root = File::open(&t.mnt).unwrap();
    let old = File::open(t.path("old")).unwrap();
    let handle = |dir: &File, name: &str| {
        sys::name_to_handle_at(dir.as_fd(), std::ffi::OsStr::new(name))
            .unwrap_or_else(|e| panic!("{setup:?}: name_to_handle_at {name}: {e}"))
    };
    let (f, link, gone) = (handle(&old, "f"), handle(&root, "link"), handle(&root, "gone"));
    drop(old);
    std::fs::rename(t.path("old"), t.path("new")).unwrap();
    std::fs::remove_file(t.path("gone")).unwrap();
    drop_kernel_caches();
    for (what, h) in [("file in a renamed directory", &f), ("hard link", &link)] {
        let mut file = sys::open_by_handle_at(root.as_fd(), h, libc::O_RDONLY)
            .map(File::from)
            .unwrap_or_else(|e| panic!("{setup:?}: open_by_handle_at of the {what}: {e}"));
        let mut got = String::new();
        file.read_to_string(&mut got).unwrap();
        assert_eq!(got, "first", "{setup:?}: the {what}'s handle opened another file");
    }
    let e = sys::open_by_handle_at(root.as_fd(), &gone, libc::O_RDONLY).map(drop).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ESTALE), "{setup:?}: a deleted file's handle: {e}");
}

#[test]
fn file_handles_outlive_the_kernels_caches() {
    on_every_setup(file_handles);
}

fn atime_of(p: &Path) -> std::time::SystemTime {
    std::fs::metadata(p).unwrap().accessed().unwrap()
}

/// Read a file through the mount after the kernel dropped its pages (so the read reaches the
/// file system; cached pages never tell it) and return whether its atime moved past `old`
/// within 3 s (attributes may be cached for the attribute timeout).
fn read_moves_atime(t: &common::TestMount, name: &str, old: std::time::SystemTime) -> bool {
    drop_kernel_caches();
    let _ = std::fs::read(t.path(name)).unwrap();
    common::wait_until(Duration::from_secs(3), || atime_of(&t.path(name)) > old)
}

/// relatime by default: a read updates an atime older than the last change; `-o noatime`:
/// reads never change it, not on the mount and not on passthrough's backing file.
fn access_times(setup: &Setup) {
    use std::fs::FileTimes;
    use std::time::SystemTime;
    for noatime in [false, true] {
        let Some(m) = setup.mount_with(if noatime { "noatime" } else { "" }) else { return };
        let t = m.mount();
        std::fs::write(t.path("f"), b"some data").unwrap();
        // atime a minute before mtime: relatime must update it at the next read.
        let old = SystemTime::now() - Duration::from_secs(60);
        let f = OpenOptions::new().write(true).open(t.path("f")).unwrap();
        f.set_times(FileTimes::new().set_accessed(old)).unwrap();
        f.sync_all().unwrap();
        drop(f);
        let moved = read_moves_atime(t, "f", old);
        assert_eq!(moved, !noatime, "{setup:?} noatime={noatime}: atime moved: {moved}");
        if let Mounted::Passthrough(pt) = &m {
            let backing = atime_of(&pt.src("f"));
            assert_eq!(backing > old, !noatime, "{setup:?} noatime={noatime}: the backing file's atime");
        }
    }
}

#[test]
fn reads_follow_relatime_and_noatime() {
    for setup in Setup::sync_all() {
        access_times(&setup);
    }
}

/// Two processes each waiting for the other's record lock: one gets EDEADLK, as on ext4.
fn lock_deadlock(setup: &Setup, m: &Mounted) {
    let p = m.mount().path("deadlock");
    std::fs::write(&p, vec![0u8; 32]).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/semantics/deadlock.py");
    let out = std::process::Command::new("timeout").args(["20", "python3", script]).arg(&p).output().unwrap();
    let verdict = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        verdict,
        "0",
        "{setup:?}: deadlock not reported ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_lock_wait_that_would_deadlock_is_edeadlk() {
    on_every_setup(lock_deadlock);
}

/// F_GETLK names the process holding a conflicting record lock (l_pid), with its range.
fn lock_holder_pid(setup: &Setup, m: &Mounted) {
    use std::io::BufRead;
    let p = m.mount().path("held");
    std::fs::write(&p, vec![0u8; 16]).unwrap();
    let script = "import fcntl, sys, time\nf = open(sys.argv[1], 'r+')\nfcntl.lockf(f, fcntl.LOCK_EX, 5, 3)\nprint('locked', flush=True)\ntime.sleep(30)\n";
    let mut holder = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&p)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "locked", "{setup:?}");
    let f = rw(&p);
    let found = sys::process_getlk(f.as_fd(), &whole(libc::F_RDLCK));
    let _ = holder.kill();
    let _ = holder.wait();
    let found = found.unwrap_or_else(|e| panic!("{setup:?}: F_GETLK: {e}")).expect("the lock is seen");
    assert_eq!((found.typ, found.start, found.end), (libc::F_WRLCK, 3, 7), "{setup:?}");
    assert_eq!(found.pid, holder.id() as i32, "{setup:?}: l_pid");
}

#[test]
fn getlk_reports_the_holding_process() {
    on_every_setup(lock_holder_pid);
}

/// The birth time through statx(2): STATX_BTIME is answered, with the time the file was made
/// (on passthrough: the backing file's).
fn birth_time(setup: &Setup, m: &Mounted) {
    use rustix::fs::{statx, AtFlags, StatxFlags, CWD};
    let p = m.mount().path("born");
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    std::fs::write(&p, b"x").unwrap();
    let sx = statx(CWD, &p, AtFlags::empty(), StatxFlags::BTIME).unwrap();
    assert!(
        StatxFlags::from_bits_retain(sx.stx_mask).contains(StatxFlags::BTIME),
        "{setup:?}: no birth time"
    );
    let after = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!(
        (before - 1..=after + 1).contains(&sx.stx_btime.tv_sec),
        "{setup:?}: btime {}",
        sx.stx_btime.tv_sec
    );
    if let Mounted::Passthrough(pt) = m {
        let backing = statx(CWD, pt.src("born"), AtFlags::empty(), StatxFlags::BTIME).unwrap();
        assert_eq!(
            (sx.stx_btime.tv_sec, sx.stx_btime.tv_nsec),
            (backing.stx_btime.tv_sec, backing.stx_btime.tv_nsec),
            "{setup:?}: the backing file's birth time"
        );
    }
    // The basic attributes come with it.
    assert_eq!(sx.stx_size, 1, "{setup:?}");
}

#[test]
fn statx_reports_the_birth_time() {
    on_every_setup(birth_time);
}

/// Inode flags as chattr (FS_IOC_SETFLAGS) and xfs_io (FS_IOC_FSSETXATTR) set them: setting
/// one moves ctime; an append-only file takes O_APPEND writes (under write-back too) and
/// refuses other opens for writing, truncation, attribute changes, rename, unlink, links and
/// xattrs with EPERM; an immutable file refuses every change and an immutable directory new
/// entries. Reading goes on; clearing the flags makes the file changeable again.
fn file_attributes(setup: &Setup, m: &Mounted) {
    use rustix::fs::{ioctl_getflags, ioctl_setflags, IFlags};
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let t = m.mount();
    let (p, dir) = (t.path("log"), t.path("dir"));
    std::fs::write(&p, b"first\n").unwrap();
    std::fs::create_dir(&dir).unwrap();
    let ctime = |p: &Path| {
        let md = std::fs::metadata(p).unwrap();
        (md.ctime(), md.ctime_nsec())
    };
    let eperm = |what: &str, r: std::io::Result<()>| {
        assert_eq!(errno(r), Some(libc::EPERM), "{setup:?}: {what} must be refused with EPERM");
    };
    let (before, dir_before) = (ctime(&p), ctime(&dir));
    std::thread::sleep(Duration::from_millis(20));
    let d = File::open(&dir).unwrap();
    ioctl_setflags(&d, ioctl_getflags(&d).unwrap() | IFlags::NODUMP).unwrap();
    assert!(ctime(&dir) > dir_before, "{setup:?}: chattr +d on a directory must move its ctime");
    let f = File::open(&p).unwrap();
    ioctl_setflags(&f, ioctl_getflags(&f).unwrap() | IFlags::APPEND)
        .unwrap_or_else(|e| panic!("{setup:?}: chattr +a: {e}"));
    assert!(ioctl_getflags(&f).unwrap().contains(IFlags::APPEND), "{setup:?}: lsattr after chattr +a");
    if setup.writeback {
        // Under write-back the kernel owns a cached regular file's ctime and ignores the
        // server's: the new one shows once the kernel let go of the inode.
        drop(f);
        drop_kernel_caches();
    }
    assert!(ctime(&p) > before, "{setup:?}: chattr +a must move ctime");
    let f = File::open(&p).unwrap();

    let open = |flags: i32| OpenOptions::new().write(true).custom_flags(flags).open(&p).map(drop);
    eperm("open O_WRONLY of an append-only file", open(0));
    eperm("O_APPEND|O_TRUNC of an append-only file", open(libc::O_APPEND | libc::O_TRUNC));
    {
        let mut a =
            OpenOptions::new().append(true).open(&p).unwrap_or_else(|e| panic!("{setup:?}: O_APPEND: {e}"));
        a.write_all(b"second\n").unwrap();
        a.write_all(b"third\n").unwrap();
        eperm("ftruncate of an append-only file", a.set_len(0));
    }
    assert_eq!(std::fs::read(&p).unwrap(), b"first\nsecond\nthird\n", "{setup:?}: appended records");
    if let Mounted::Passthrough(pt) = m {
        assert_eq!(std::fs::read(pt.src("log")).unwrap(), b"first\nsecond\nthird\n", "{setup:?}: backing");
    }
    eperm("chmod of an append-only file", std::fs::set_permissions(&p, PermissionsExt::from_mode(0o600)));
    let explicit = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec { tv_sec: 1, tv_nsec: 0 },
        last_modification: rustix::fs::Timespec { tv_sec: 1, tv_nsec: 0 },
    };
    let utimes = rustix::fs::utimensat(rustix::fs::CWD, &p, &explicit, rustix::fs::AtFlags::empty());
    eperm("utimensat with explicit times", utimes.map_err(Into::into));
    eperm("rename of an append-only file", std::fs::rename(&p, t.path("moved")));
    eperm("unlink of an append-only file", std::fs::remove_file(&p));
    eperm("link to an append-only file", std::fs::hard_link(&p, t.path("link")));
    let setxattr = rustix::fs::setxattr(&p, "user.k", b"v", rustix::fs::XattrFlags::empty());
    eperm("setxattr on an append-only file", setxattr.map_err(Into::into));

    // The FS_IOC_FSSETXATTR form (xfs_io -c 'chattr +i'), after clearing +a.
    ioctl_setflags(&f, IFlags::empty()).unwrap();
    let mut x = sys::fs_get_xattr(f.as_fd()).unwrap_or_else(|e| panic!("{setup:?}: FS_IOC_FSGETXATTR: {e}"));
    x[0] |= 0x8; // FS_XFLAG_IMMUTABLE, in the first (native-endian) word.
    sys::fs_set_xattr(f.as_fd(), &x).unwrap_or_else(|e| panic!("{setup:?}: FS_IOC_FSSETXATTR: {e}"));
    assert!(ioctl_getflags(&f).unwrap().contains(IFlags::IMMUTABLE), "{setup:?}: lsattr after +i");
    eperm("O_APPEND open of an immutable file", open(libc::O_APPEND));
    eperm("chmod of an immutable file", std::fs::set_permissions(&p, PermissionsExt::from_mode(0o600)));
    eperm("unlink of an immutable file", std::fs::remove_file(&p));
    assert_eq!(std::fs::read(&p).unwrap(), b"first\nsecond\nthird\n", "{setup:?}: reading goes on");
    ioctl_setflags(&d, ioctl_getflags(&d).unwrap() | IFlags::IMMUTABLE).unwrap();
    eperm("create in an immutable directory", File::create(dir.join("new")).map(drop));

    ioctl_setflags(&d, IFlags::empty()).unwrap();
    ioctl_setflags(&f, IFlags::empty()).unwrap();
    std::fs::write(dir.join("new"), b"x").unwrap();

    // What write(2) took through a descriptor opened before +i is kept: with write-back the
    // pages reach the file system after the flag (passthrough's backing file refuses them
    // then: a documented limit).
    if setup.fs == common::matrix::Fs::Memfs || !setup.writeback {
        let late = t.path("late");
        let mut w = File::create(&late).unwrap();
        w.write_all(b"written before +i").unwrap();
        let l = File::open(&late).unwrap();
        ioctl_setflags(&l, IFlags::IMMUTABLE).unwrap();
        w.sync_all().unwrap_or_else(|e| panic!("{setup:?}: fsync of pages written before +i: {e}"));
        drop(w);
        assert_eq!(std::fs::read(&late).unwrap(), b"written before +i", "{setup:?}");
        ioctl_setflags(&l, IFlags::empty()).unwrap();
        std::fs::remove_file(&late).unwrap();
    }
    std::fs::write(&p, b"rewritten").unwrap();
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn chattr_append_only_and_immutable_files() {
    on_every_setup(file_attributes);
}

/// passthrough: file handles name backing files, not daemon state. A handle still opens its
/// file after the kernel forgot the node and the file was looked up by name again, and after
/// an unmount and a new mount of the same SOURCE (also for a hard link, and for a file whose
/// directory was renamed in SOURCE meanwhile); a file deleted in between is ESTALE.
fn handles_across_remounts(setup: &Setup, m: Mounted) {
    use std::io::Read;
    let t = m.mount();
    std::fs::create_dir(t.path("old")).unwrap();
    std::fs::write(t.path("old/f"), b"first").unwrap();
    std::fs::hard_link(t.path("old/f"), t.path("link")).unwrap();
    std::fs::write(t.path("named"), b"by name").unwrap();
    std::fs::write(t.path("gone"), b"deleted").unwrap();
    let handle = |dir: &Path, name: &str| {
        let dir = File::open(dir).unwrap();
        sys::name_to_handle_at(dir.as_fd(), std::ffi::OsStr::new(name))
            .unwrap_or_else(|e| panic!("{setup:?}: name_to_handle_at {name}: {e}"))
    };
    let (f, link, named, gone) = (
        handle(&t.path("old"), "f"),
        handle(&t.mnt, "link"),
        handle(&t.mnt, "named"),
        handle(&t.mnt, "gone"),
    );
    let read = |root: &Path, h: &sys::KernelFileHandle, what: &str| {
        let root = File::open(root).unwrap();
        let mut file = sys::open_by_handle_at(root.as_fd(), h, libc::O_RDONLY)
            .map(File::from)
            .unwrap_or_else(|e| panic!("{setup:?}: open_by_handle_at of {what}: {e}"));
        let mut got = String::new();
        file.read_to_string(&mut got).unwrap();
        got
    };
    drop_kernel_caches();
    std::fs::metadata(t.path("named")).unwrap();
    assert_eq!(read(&t.mnt, &named, "a file looked up by name again"), "by name", "{setup:?}");

    let Mounted::Passthrough(pt) = &m else { unreachable!("passthrough only") };
    let src = pt.src.clone();
    let Some(m) = setup.remount(m) else { return };
    std::fs::rename(src.join("old"), src.join("new")).unwrap();
    std::fs::remove_file(src.join("gone")).unwrap();
    let mnt = m.mount().mnt.clone();
    for (what, h) in [("a file in a renamed directory", &f), ("a hard link", &link), ("a file", &named)] {
        let want = if what == "a file" { "by name" } else { "first" };
        assert_eq!(
            read(&mnt, h, what),
            want,
            "{setup:?}: after a remount, {what}'s handle opened another file"
        );
    }
    let root = File::open(&mnt).unwrap();
    let e = sys::open_by_handle_at(root.as_fd(), &gone, libc::O_RDONLY).map(drop).unwrap_err();
    assert_eq!(
        e.raw_os_error(),
        Some(libc::ESTALE),
        "{setup:?}: a deleted file's handle after a remount: {e}"
    );
}

#[test]
fn passthrough_file_handles_survive_a_remount() {
    for setup in Setup::sync_all().into_iter().filter(|s| s.fs == common::matrix::Fs::Passthrough) {
        let Some(m) = setup.mount() else { continue };
        handles_across_remounts(&setup, m);
    }
}
