//! Mount tests of the passthrough file system: data round trips, escape attempts, ownership,
//! a 100,000-file tree under RLIMIT_NOFILE, and concurrent mixed operations.

mod common;

use common::pt::PtMount;
use common::{checksum, random_bytes, within};
use fusebox_fs::passthrough::{check_name, Passthrough, PassthroughError};
use rustix::fs::{AtFlags, RenameFlags, Timespec, Timestamps, CWD};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const OPTS: &str = "default_permissions,allow_other";

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

#[test]
fn new_reports_bad_sources() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("nope");
    let e = Passthrough::new(&missing).err().expect("missing source must fail");
    assert!(matches!(e, PassthroughError::SourceMissing(_)), "{e}");
    assert!(e.to_string().contains("does not exist"), "{e}");
    let file = d.path().join("file");
    fs::write(&file, b"x").unwrap();
    let e = Passthrough::new(&file).err().expect("file source must fail");
    assert!(matches!(e, PassthroughError::NotADirectory(_)), "{e}");
    assert!(e.to_string().contains("not a directory"), "{e}");
}

#[test]
fn name_validator_rejects_separators_and_dots() {
    for bad in ["a/b", "/", ".", "..", "", "../../etc"] {
        assert!(check_name(OsStr::new(bad)).is_err(), "{bad:?}");
    }
    assert!(check_name(OsStr::new("...")).is_ok());
}

#[test]
fn big_file_round_trip_and_truncate() {
    let Some(f) = PtMount::new(OPTS) else { return };
    assert!(f.fs.uses_file_handles(), "ext4/tmpfs as root should support file handles");
    let data = random_bytes(42, 64 << 20);
    let sum = checksum(&data);
    let p = f.mnt("big");
    within(Duration::from_secs(120), move || fs::write(p, &data).unwrap());
    let back = fs::read(f.mnt("big")).unwrap();
    assert_eq!(back.len(), 64 << 20);
    assert_eq!(checksum(&back), sum);
    let direct = fs::read(f.src("big")).unwrap();
    assert_eq!(checksum(&direct), sum, "backing file content");
    // Partial read at an offset.
    let mut file = fs::File::open(f.mnt("big")).unwrap();
    let mut buf = vec![0u8; 4096];
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(12345)).unwrap();
    file.read_exact(&mut buf).unwrap();
    assert_eq!(&buf[..], &back[12345..12345 + 4096]);
    drop(file);
    // Truncate through a path and through an open file.
    fs::OpenOptions::new().write(true).open(f.mnt("big")).unwrap().set_len(1000).unwrap();
    assert_eq!(fs::metadata(f.mnt("big")).unwrap().len(), 1000);
    assert_eq!(fs::metadata(f.src("big")).unwrap().len(), 1000);
    assert_eq!(fs::read(f.mnt("big")).unwrap(), &back[..1000]);
    fs::OpenOptions::new().write(true).truncate(true).open(f.mnt("big")).unwrap();
    assert_eq!(fs::metadata(f.src("big")).unwrap().len(), 0);
}

#[test]
fn namespace_ops_round_trip() {
    let Some(f) = PtMount::new(OPTS) else { return };
    fs::write(f.mnt("a"), b"A").unwrap();
    fs::write(f.mnt("b"), b"B").unwrap();
    // RENAME_NOREPLACE
    let e = rustix::fs::renameat_with(CWD, f.mnt("a"), CWD, f.mnt("b"), RenameFlags::NOREPLACE).unwrap_err();
    assert_eq!(e, rustix::io::Errno::EXIST);
    rustix::fs::renameat_with(CWD, f.mnt("a"), CWD, f.mnt("c"), RenameFlags::NOREPLACE).unwrap();
    assert!(!f.src("a").exists() && f.src("c").exists());
    // RENAME_EXCHANGE
    rustix::fs::renameat_with(CWD, f.mnt("b"), CWD, f.mnt("c"), RenameFlags::EXCHANGE).unwrap();
    assert_eq!(fs::read(f.mnt("b")).unwrap(), b"A");
    assert_eq!(fs::read(f.mnt("c")).unwrap(), b"B");
    assert_eq!(fs::read(f.src("b")).unwrap(), b"A");
    // Plain rename across directories.
    fs::create_dir(f.mnt("dir")).unwrap();
    fs::rename(f.mnt("c"), f.mnt("dir/c")).unwrap();
    assert_eq!(fs::read(f.src("dir/c")).unwrap(), b"B");
    // Hard link
    fs::hard_link(f.mnt("b"), f.mnt("dir/b2")).unwrap();
    assert_eq!(fs::metadata(f.mnt("b")).unwrap().nlink(), 2);
    assert_eq!(fs::metadata(f.src("b")).unwrap().ino(), fs::metadata(f.src("dir/b2")).unwrap().ino());
    assert_eq!(fs::read(f.mnt("dir/b2")).unwrap(), b"A");
    // Symlink + readlink
    std::os::unix::fs::symlink("some/where/else", f.mnt("sl")).unwrap();
    assert_eq!(fs::read_link(f.mnt("sl")).unwrap(), Path::new("some/where/else"));
    assert_eq!(fs::read_link(f.src("sl")).unwrap(), Path::new("some/where/else"));
    assert!(fs::symlink_metadata(f.mnt("sl")).unwrap().file_type().is_symlink());
    // Unlink / rmdir
    fs::remove_file(f.mnt("dir/b2")).unwrap();
    assert!(!f.src("dir/b2").exists());
    assert_eq!(errno_of(&fs::remove_dir(f.mnt("dir")).unwrap_err()), libc::ENOTEMPTY);
    fs::remove_file(f.mnt("dir/c")).unwrap();
    fs::remove_dir(f.mnt("dir")).unwrap();
    assert!(!f.src("dir").exists());
    // mknod (fifo)
    rustix::fs::mknodat(
        CWD,
        f.mnt("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&fs::metadata(f.src("fifo")).unwrap().file_type()));
}

#[test]
fn attributes_xattrs_and_statfs() {
    let Some(f) = PtMount::new(OPTS) else { return };
    fs::write(f.mnt("x"), b"data").unwrap();
    // xattrs
    rustix::fs::setxattr(f.mnt("x"), "user.k", b"value", rustix::fs::XattrFlags::empty()).unwrap();
    let mut buf = [0u8; 64];
    let n = rustix::fs::getxattr(f.mnt("x"), "user.k", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"value");
    assert_eq!(rustix::fs::getxattr_query(f.mnt("x"), "user.k").unwrap(), 5);
    let n = rustix::fs::getxattr(f.src("x"), "user.k", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"value");
    let mut small = [0u8; 2];
    assert_eq!(
        rustix::fs::getxattr(f.mnt("x"), "user.k", &mut small[..]).unwrap_err(),
        rustix::io::Errno::RANGE
    );
    let mut list = [0u8; 256];
    let n = rustix::fs::listxattr(f.mnt("x"), &mut list[..]).unwrap();
    assert!(list[..n].split(|&b| b == 0).any(|s| s == b"user.k"));
    let e = rustix::fs::setxattr(f.mnt("x"), "user.k", b"v2", rustix::fs::XattrFlags::CREATE).unwrap_err();
    assert_eq!(e, rustix::io::Errno::EXIST);
    rustix::fs::removexattr(f.mnt("x"), "user.k").unwrap();
    assert_eq!(
        rustix::fs::getxattr(f.src("x"), "user.k", &mut buf[..]).unwrap_err(),
        rustix::io::Errno::NODATA
    );
    // chmod / chown
    fs::set_permissions(f.mnt("x"), fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(fs::metadata(f.src("x")).unwrap().mode() & 0o7777, 0o640);
    std::os::unix::fs::chown(f.mnt("x"), Some(1234), Some(5678)).unwrap();
    let md = fs::metadata(f.src("x")).unwrap();
    assert_eq!((md.uid(), md.gid()), (1234, 5678));
    let md = fs::metadata(f.mnt("x")).unwrap();
    assert_eq!((md.uid(), md.gid()), (1234, 5678));
    // utimens with nanoseconds
    let ts = Timestamps {
        last_access: Timespec { tv_sec: 1_000_000_000, tv_nsec: 123_456_789 },
        last_modification: Timespec { tv_sec: 1_500_000_000, tv_nsec: 987_654_321 },
    };
    rustix::fs::utimensat(CWD, f.mnt("x"), &ts, AtFlags::empty()).unwrap();
    for md in [fs::metadata(f.src("x")).unwrap(), fs::metadata(f.mnt("x")).unwrap()] {
        assert_eq!((md.atime(), md.atime_nsec()), (1_000_000_000, 123_456_789));
        assert_eq!((md.mtime(), md.mtime_nsec()), (1_500_000_000, 987_654_321));
    }
    // statfs
    let a = rustix::fs::statvfs(f.mnt("")).unwrap();
    let b = rustix::fs::statvfs(&f.src).unwrap();
    assert_eq!(a.f_blocks * a.f_frsize, b.f_blocks * b.f_frsize);
    assert_eq!(a.f_namemax, b.f_namemax);
}

#[test]
fn readdir_ten_thousand_entries() {
    let Some(f) = PtMount::new(OPTS) else { return };
    let dir = f.mnt("many");
    let src_dir = f.src("many");
    within(Duration::from_secs(120), move || {
        fs::create_dir(&dir).unwrap();
        for i in 0..10_000 {
            fs::File::create(dir.join(format!("entry-{i:05}"))).unwrap();
        }
        for pass in 0..2 {
            let mut seen = HashSet::new();
            for e in fs::read_dir(&dir).unwrap() {
                let name = e.unwrap().file_name().into_string().unwrap();
                assert!(seen.insert(name.clone()), "pass {pass}: {name} listed twice");
            }
            assert_eq!(seen.len(), 10_000, "pass {pass}");
            assert!((0..10_000).all(|i| seen.contains(&format!("entry-{i:05}"))));
        }
        assert_eq!(fs::read_dir(&src_dir).unwrap().count(), 10_000);
    });
}

#[test]
fn symlinks_are_never_followed() {
    let Some(f) = PtMount::new(OPTS) else { return };
    let outside = f.sdir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), b"s").unwrap();
    let before = fs::metadata(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, f.src("abs")).unwrap();
    std::os::unix::fs::symlink("../outside", f.src("rel")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../..", f.src("up")).unwrap();
    for name in ["abs", "rel", "up"] {
        let link = f.mnt(name);
        // lchown changes the link, not the target.
        rustix::fs::chownat(
            CWD,
            &link,
            Some(rustix::fs::Uid::from_raw(4321)),
            Some(rustix::fs::Gid::from_raw(4321)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
        let md = fs::symlink_metadata(f.src(name)).unwrap();
        assert_eq!((md.uid(), md.gid()), (4321, 4321), "{name}");
        // lsetxattr: trusted.* works on a symlink as root; user.* is refused by the backing FS.
        rustix::fs::lsetxattr(&link, "trusted.pt", b"1", rustix::fs::XattrFlags::empty()).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(rustix::fs::lgetxattr(f.src(name), "trusted.pt", &mut buf[..]).unwrap(), 1);
        let _ = rustix::fs::lsetxattr(&link, "user.pt", b"1", rustix::fs::XattrFlags::empty());
        // utimensat with AT_SYMLINK_NOFOLLOW changes the link's times.
        let ts = Timestamps {
            last_access: Timespec { tv_sec: 1_234_567, tv_nsec: 5 },
            last_modification: Timespec { tv_sec: 1_234_567, tv_nsec: 7 },
        };
        rustix::fs::utimensat(CWD, &link, &ts, AtFlags::SYMLINK_NOFOLLOW).unwrap();
        let md = fs::symlink_metadata(f.src(name)).unwrap();
        assert_eq!((md.mtime(), md.mtime_nsec()), (1_234_567, 7), "{name}");
        // O_NOFOLLOW open fails with ELOOP.
        let e = rustix::fs::open(
            &link,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NOFOLLOW,
            rustix::fs::Mode::empty(),
        )
        .unwrap_err();
        assert_eq!(e, rustix::io::Errno::LOOP, "{name}");
    }
    // The outside directory is untouched.
    let after = fs::metadata(&outside).unwrap();
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
    assert_eq!((after.mtime(), after.mtime_nsec()), (before.mtime(), before.mtime_nsec()));
    let mut buf = [0u8; 8];
    assert!(rustix::fs::getxattr(&outside, "trusted.pt", &mut buf[..]).is_err());
    assert!(rustix::fs::getxattr(&outside, "user.pt", &mut buf[..]).is_err());
    let md = fs::metadata(outside.join("secret")).unwrap();
    assert_eq!(md.uid(), 0);
}

#[test]
fn rename_race_never_escapes() {
    let Some(f) = PtMount::new(OPTS) else { return };
    let outside = f.sdir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::create_dir(f.src("d")).unwrap();
    // Relative to SOURCE this points at `outside`; through the mount it names nothing.
    std::os::unix::fs::symlink("../outside", f.src("dl")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (src, stop2) = (f.src.clone(), stop.clone());
    let swapper = std::thread::spawn(move || {
        let mut n = 0u64;
        while !stop2.load(Ordering::Relaxed) {
            rustix::fs::renameat_with(CWD, src.join("d"), CWD, src.join("dl"), RenameFlags::EXCHANGE)
                .unwrap();
            n += 1;
        }
        n
    });
    let d = f.mnt("d");
    let created = within(Duration::from_secs(120), move || {
        // Run past the 1 s entry timeout so the kernel looks `d` up again mid-race.
        let start = std::time::Instant::now();
        let mut ok = 0;
        let mut i = 0;
        let mut errors = std::collections::BTreeMap::new();
        // Keep going until some creates succeeded (d was the directory when looked up).
        while (i < 3000 || start.elapsed() < Duration::from_millis(2500) || ok == 0)
            && start.elapsed() < Duration::from_secs(30)
        {
            i += 1;
            match fs::File::create(d.join(format!("f{i}"))) {
                Ok(_) => ok += 1,
                Err(e) => *errors.entry(e.raw_os_error().unwrap_or(0)).or_insert(0u64) += 1,
            }
            let _ = fs::metadata(d.join(format!("f{}", i / 2)));
        }
        eprintln!("create errors by errno: {errors:?}");
        ok
    });
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    eprintln!("created {created} files during {swaps} swaps");
    let leaked: Vec<_> = fs::read_dir(&outside).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(leaked.is_empty(), "files escaped SOURCE: {leaked:?}");
    // Everything created went into the real directory.
    let real = if fs::symlink_metadata(f.src("d")).unwrap().is_dir() { f.src("d") } else { f.src("dl") };
    assert_eq!(fs::read_dir(real).unwrap().count(), created);
}

fn as_nobody(cmd: &str, args: &[&Path]) -> std::process::ExitStatus {
    Command::new(cmd).args(args).uid(65534).gid(65534).status().unwrap()
}

#[test]
fn new_files_belong_to_the_caller() {
    let Some(f) = PtMount::new(OPTS) else { return };
    fs::create_dir(f.src("pub")).unwrap();
    fs::set_permissions(f.src("pub"), fs::Permissions::from_mode(0o1777)).unwrap();
    assert!(as_nobody("touch", &[&f.mnt("pub/x")]).success());
    assert!(as_nobody("mkdir", &[&f.mnt("pub/d")]).success());
    assert!(as_nobody("ln", &[Path::new("-s"), Path::new("target"), &f.mnt("pub/l")]).success());
    assert!(as_nobody("mkfifo", &[&f.mnt("pub/p")]).success());
    for name in ["x", "d", "l", "p"] {
        let md = fs::symlink_metadata(f.src("pub").join(name)).unwrap();
        assert_eq!((md.uid(), md.gid()), (65534, 65534), "{name} in SOURCE");
        let md = fs::symlink_metadata(f.mnt("pub").join(name)).unwrap();
        assert_eq!((md.uid(), md.gid()), (65534, 65534), "{name} through the mount");
    }
    // A setgid directory owned by group 123: new entries get group 123, subdirs keep S_ISGID.
    fs::create_dir(f.src("sg")).unwrap();
    std::os::unix::fs::chown(f.src("sg"), Some(0), Some(123)).unwrap();
    fs::set_permissions(f.src("sg"), fs::Permissions::from_mode(0o2777)).unwrap();
    assert!(as_nobody("touch", &[&f.mnt("sg/y")]).success());
    assert!(as_nobody("mkdir", &[&f.mnt("sg/sub")]).success());
    let y = fs::metadata(f.src("sg/y")).unwrap();
    assert_eq!((y.uid(), y.gid()), (65534, 123));
    let sub = fs::metadata(f.src("sg/sub")).unwrap();
    assert_eq!((sub.uid(), sub.gid()), (65534, 123));
    assert_ne!(sub.mode() & libc::S_ISGID, 0, "subdir keeps S_ISGID");
    // The caller's write went through with their ownership.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("echo hi > {}", f.mnt("pub/w").display()))
        .uid(65534)
        .gid(65534)
        .status()
        .unwrap();
    assert!(out.success());
    assert_eq!(fs::read(f.src("pub/w")).unwrap(), b"hi\n");
    assert_eq!(fs::metadata(f.src("pub/w")).unwrap().uid(), 65534);
}

#[test]
fn hundred_thousand_files_without_emfile() {
    let Some(f) = PtMount::new(OPTS) else { return };
    let root = f.mnt("tree");
    fs::create_dir(&root).unwrap();
    let fsys = f.fs.clone();
    let src_tree = f.src("tree");
    within(Duration::from_secs(600), move || {
        const DIRS: usize = 100;
        const FILES: usize = 1000;
        let work = |part: usize, parts: usize, op: &(dyn Fn(&Path, usize) + Sync)| {
            std::thread::scope(|s| {
                for t in 0..parts {
                    let root = &root;
                    s.spawn(move || {
                        for d in (t..DIRS).step_by(parts) {
                            op(&root.join(format!("d{d:03}")), part);
                        }
                    });
                }
            })
        };
        work(0, 4, &|dir, _| {
            fs::create_dir(dir).unwrap();
            for i in 0..FILES {
                drop(fs::File::create(dir.join(format!("f{i:04}"))).unwrap());
            }
        });
        assert!(fsys.inode_count() > 50_000, "the kernel keeps most inodes referenced");
        let fds = fs::read_dir("/proc/self/fd").unwrap().count();
        assert!(fds < 5000, "{fds} descriptors open: inodes must not pin them");
        work(0, 4, &|dir, _| {
            for i in 0..FILES {
                assert_eq!(fs::metadata(dir.join(format!("f{i:04}"))).unwrap().len(), 0);
            }
            assert_eq!(fs::read_dir(dir).unwrap().count(), FILES);
        });
        let total: usize =
            fs::read_dir(&src_tree).unwrap().map(|d| fs::read_dir(d.unwrap().path()).unwrap().count()).sum();
        assert_eq!(total, DIRS * FILES);
        work(0, 4, &|dir, _| {
            for i in 0..FILES {
                fs::remove_file(dir.join(format!("f{i:04}"))).unwrap();
            }
            fs::remove_dir(dir).unwrap();
        });
        assert_eq!(fs::read_dir(&src_tree).unwrap().count(), 0);
    });
}

fn small_file_budget(p: &Path) -> Result<Passthrough, fusebox_fs::passthrough::PassthroughError> {
    Passthrough::with_fd_cache(p, 16).map(|f| f.with_file_fds(64))
}

/// Clients hold 3,000 files open, for reading and writing, on a daemon that keeps at most 64
/// descriptors for open files: every file stays usable (reads, writes, fsync, flock), and the
/// daemon's descriptors stay bounded, with and without the write-back cache.
#[test]
fn open_files_beyond_the_descriptor_budget_stay_usable() {
    for opts in [format!("{OPTS},writeback"), format!("{OPTS},no_writeback")] {
        let Some(f) = PtMount::with(small_file_budget, &opts) else { return };
        const FILES: usize = 3000;
        let held: Vec<fs::File> = (0..FILES)
            .map(|i| {
                let p = f.mnt(&format!("f{i}"));
                fs::write(&p, format!("file {i}")).unwrap();
                fs::OpenOptions::new().read(true).write(true).open(p).unwrap()
            })
            .collect();
        let (with_fd, parked) = f.fs.open_file_descriptors();
        assert!(with_fd <= 64, "{opts}: {with_fd} open files hold a descriptor, budget 64");
        assert!(with_fd + parked >= FILES, "{opts}: {with_fd} + {parked} open files known");
        // One file holds a flock lock: it keeps its descriptor (closing it would drop the lock).
        rustix::fs::flock(&held[0], rustix::fs::FlockOperation::LockExclusive).unwrap();
        for (i, file) in held.iter().enumerate() {
            use std::os::unix::fs::FileExt;
            let want = format!("file {i}");
            let mut b = vec![0u8; want.len()];
            file.read_exact_at(&mut b, 0).unwrap();
            assert_eq!(b, want.as_bytes(), "{opts}: file {i} read back wrong");
            file.write_all_at(b"F", 0).unwrap();
            if i % 300 == 0 {
                file.sync_all().unwrap();
            }
        }
        let direct = fs::File::open(f.src("f0")).unwrap();
        assert_eq!(
            rustix::fs::flock(&direct, rustix::fs::FlockOperation::NonBlockingLockShared),
            Err(rustix::io::Errno::WOULDBLOCK),
            "{opts}: the flock lock was lost when descriptors were recycled"
        );
        assert!(f.fs.open_file_descriptors().0 <= 64 + 8, "{opts}: budget exceeded after use");
        drop(held);
        for i in (0..FILES).step_by(97) {
            assert_eq!(fs::read(f.src(&format!("f{i}"))).unwrap(), format!("File {i}").as_bytes());
        }
    }
}

#[test]
fn eight_threads_mixed_operations() {
    let Some(f) = PtMount::new(OPTS) else { return };
    let base = f.mnt("");
    within(Duration::from_secs(120), move || {
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let base = &base;
                s.spawn(move || {
                    let ok_race = |r: std::io::Result<()>| match r {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => panic!("thread {t}: unexpected error {e}"),
                    };
                    for i in 0..150u64 {
                        // Own file: write, read back, rename back and forth, stat.
                        let own = base.join(format!("own{t}"));
                        let data = random_bytes(t * 1000 + i, 1000 + (i as usize * 997) % 70_000);
                        fs::write(&own, &data).unwrap();
                        assert_eq!(
                            checksum(&fs::read(&own).unwrap()),
                            checksum(&data),
                            "thread {t} iter {i}"
                        );
                        let moved = base.join(format!("own{t}.moved"));
                        fs::rename(&own, &moved).unwrap();
                        assert_eq!(fs::metadata(&moved).unwrap().len(), data.len() as u64);
                        fs::rename(&moved, &own).unwrap();
                        // Shared files: anyone may have removed them; ENOENT is an expected race.
                        let shared = base.join(format!("shared{}", i % 3));
                        ok_race(
                            fs::OpenOptions::new()
                                .create(true)
                                .append(true)
                                .open(&shared)
                                .and_then(|mut f| f.write_all(b"x")),
                        );
                        ok_race(fs::read(&shared).map(drop));
                        ok_race(fs::metadata(&shared).map(drop));
                        if i % 7 == t % 7 {
                            ok_race(fs::remove_file(&shared));
                        }
                        if i % 10 == 0 {
                            for e in fs::read_dir(base).unwrap() {
                                match e {
                                    Ok(e) => ok_race(e.metadata().map(drop)),
                                    Err(e) => panic!("readdir: {e}"),
                                }
                            }
                        }
                        let sub = base.join(format!("sub{t}"));
                        fs::create_dir(&sub).unwrap();
                        fs::write(sub.join("f"), b"z").unwrap();
                        fs::remove_file(sub.join("f")).unwrap();
                        fs::remove_dir(&sub).unwrap();
                    }
                    fs::remove_file(base.join(format!("own{t}"))).unwrap();
                });
            }
        });
    });
}

#[test]
fn pinned_fallback_round_trip() {
    let Some(f) = PtMount::with(Passthrough::with_pinned_fds, OPTS) else {
        return;
    };
    assert!(!f.fs.uses_file_handles());
    fs::create_dir(f.mnt("d")).unwrap();
    let data = random_bytes(7, 300_000);
    fs::write(f.mnt("d/f"), &data).unwrap();
    assert_eq!(fs::read(f.mnt("d/f")).unwrap(), data);
    assert_eq!(fs::read(f.src("d/f")).unwrap(), data);
    fs::rename(f.mnt("d/f"), f.mnt("g")).unwrap();
    std::os::unix::fs::symlink("g", f.mnt("l")).unwrap();
    assert_eq!(fs::read(f.mnt("l")).unwrap(), data);
    rustix::fs::setxattr(f.mnt("g"), "user.a", b"1", rustix::fs::XattrFlags::empty()).unwrap();
    let names: HashSet<_> = fs::read_dir(f.mnt("")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 3);
    fs::remove_file(f.mnt("g")).unwrap();
    fs::remove_file(f.mnt("l")).unwrap();
    fs::remove_dir(f.mnt("d")).unwrap();
    assert_eq!(fs::read_dir(&f.src).unwrap().count(), 0);
}

#[test]
fn fallocate_seek_copy_range_and_tmpfile() {
    let Some(f) = PtMount::new(OPTS) else { return };
    use rustix::fs::{Mode, OFlags};
    // fallocate extends the backing file.
    let file =
        fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(f.mnt("fa")).unwrap();
    rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, 1 << 20).unwrap();
    assert_eq!(fs::metadata(f.src("fa")).unwrap().len(), 1 << 20);
    drop(file);
    // SEEK_DATA / SEEK_HOLE reach the backing file.
    let sparse =
        fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(f.mnt("sp")).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, b"data", 4 << 20).unwrap();
    sparse.sync_all().unwrap();
    assert_eq!(rustix::fs::seek(&sparse, rustix::fs::SeekFrom::Data(0)).unwrap(), 4 << 20);
    assert_eq!(rustix::fs::seek(&sparse, rustix::fs::SeekFrom::Hole(0)).unwrap(), 0);
    drop(sparse);
    // copy_file_range between two files of the mount.
    let data = random_bytes(9, 200_000);
    fs::write(f.mnt("cin"), &data).unwrap();
    let cin = fs::File::open(f.mnt("cin")).unwrap();
    let cout = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(f.mnt("cout"))
        .unwrap();
    let (mut oi, mut oo) = (1000u64, 0u64);
    let mut copied = 0;
    while copied < 100_000 {
        let n =
            rustix::fs::copy_file_range(&cin, Some(&mut oi), &cout, Some(&mut oo), 100_000 - copied).unwrap();
        assert!(n > 0);
        copied += n;
    }
    drop(cout);
    assert_eq!(fs::read(f.mnt("cout")).unwrap(), &data[1000..101_000]);
    assert_eq!(fs::read(f.src("cout")).unwrap(), &data[1000..101_000]);
    // O_TMPFILE, then give it a name.
    let tmp = match rustix::fs::open(f.mnt(""), OFlags::TMPFILE | OFlags::RDWR, Mode::from_raw_mode(0o600)) {
        Ok(fd) => fd,
        Err(e) => panic!("O_TMPFILE through the mount: {e}"),
    };
    rustix::io::write(&tmp, b"tmp data").unwrap();
    rustix::fs::fsync(&tmp).unwrap();
    rustix::fs::linkat(&tmp, "", CWD, f.mnt("named"), AtFlags::EMPTY_PATH).unwrap();
    drop(tmp);
    assert_eq!(fs::read(f.mnt("named")).unwrap(), b"tmp data");
    assert_eq!(fs::read(f.src("named")).unwrap(), b"tmp data");
}

#[test]
fn o_direct_io_reaches_the_backing_file() {
    use std::os::unix::fs::OpenOptionsExt;
    let Some(pt) = PtMount::new("default_permissions,writeback") else { return };
    let path = pt.mnt("direct");
    let open = |direct: bool| {
        let flags = if direct { libc::O_DIRECT } else { 0 };
        fs::OpenOptions::new().create(true).read(true).write(true).custom_flags(flags).open(&path).unwrap()
    };
    let d = open(true);
    let mut buf = common::Aligned::new(1 << 20, 0);
    buf.as_mut().copy_from_slice(&common::random_bytes(7, 1 << 20));
    assert_eq!(rustix::io::pwrite(&d, buf.as_ref(), 0).unwrap(), 1 << 20);
    // A buffered writer appends an unaligned tail; write-back may send it through the O_DIRECT
    // handle, which the backing file refuses unless passthrough falls back.
    let b = open(false);
    rustix::io::pwrite(&b, b"unaligned tail", 1 << 20).unwrap();
    b.sync_all().unwrap();
    drop(b);
    let mut back = common::Aligned::new(1 << 20, 0);
    assert_eq!(rustix::io::pread(&d, back.as_mut(), 0).unwrap(), 1 << 20);
    assert_eq!(back.as_ref(), buf.as_ref());
    drop(d);
    let on_disk = fs::read(pt.src("direct")).unwrap();
    assert_eq!(on_disk.len(), (1 << 20) + 14);
    assert_eq!(&on_disk[..1 << 20], buf.as_ref());
    assert_eq!(&on_disk[1 << 20..], b"unaligned tail");
}

#[test]
fn splice_write_replies_carry_the_same_bytes() {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let Some(pt) = PtMount::new("default_permissions,splice_write") else { return };
    let data = random_bytes(11, (3 << 20) + 123);
    fs::write(pt.src("spliced"), &data).unwrap();
    // Whole-file read (readahead-sized READs, the last one short at end of file).
    assert_eq!(checksum(&fs::read(pt.mnt("spliced")).unwrap()), checksum(&data));
    // Direct reads at odd places: past the end, straddling it, empty.
    let f = fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(pt.mnt("spliced")).unwrap();
    let mut buf = common::Aligned::new(1 << 20, 0);
    for (off, want) in [(0u64, 1usize << 20), (3 << 20, 123), (4 << 20, 0), (1 << 20, 1 << 20)] {
        let n = f.read_at(buf.as_mut(), off).unwrap();
        assert_eq!(n, want, "read at {off}");
        if n > 0 {
            assert_eq!(&buf.as_ref()[..n], &data[off as usize..off as usize + n], "bytes at {off}");
        }
    }
    let reads = pt.m.server().stats().snapshot().ops.into_iter().find(|o| o.name == "READ").unwrap();
    assert_eq!(reads.errors, 0);
}

/// Without the write-back cache a write past the backing file system's maximum file size
/// (16 TiB on ext4 with 4 KiB blocks) fails in write(2) itself with EFBIG, as on ext4, through
/// the daemon and through kernel passthrough; the size does not change. (With write-back the
/// kernel takes the write into its cache without asking; the error comes from fsync/close,
/// writeback.rs.)
#[test]
fn write_past_the_backing_limit_is_efbig_at_once_without_writeback() {
    for opts in [format!("{OPTS},no_writeback"), format!("{OPTS},kernel_passthrough")] {
        let Some(f) = PtMount::new(&opts) else { return };
        fs::write(f.src("f"), b"head").unwrap();
        let file = fs::OpenOptions::new().write(true).open(f.mnt("f")).unwrap();
        let e = std::os::unix::fs::FileExt::write_at(&file, b"tail", 16 << 40).expect_err("write at 16 TiB");
        assert_eq!(e.raw_os_error(), Some(libc::EFBIG), "{opts}: {e}");
        drop(file);
        assert_eq!(fs::metadata(f.mnt("f")).unwrap().len(), 4, "{opts}");
        assert_eq!(fs::metadata(f.src("f")).unwrap().len(), 4, "{opts}");
    }
}
