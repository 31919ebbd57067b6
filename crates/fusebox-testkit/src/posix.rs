//! A POSIX behaviour suite run against every file system (memfs, passthrough) through a real
//! mount. Each function takes the directory to work in.

use crate::{checksum, random_bytes};
use rustix::fs::{self as rfs, AtFlags, RenameFlags, Timespec, Timestamps, XattrFlags, CWD};
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

/// Write 64 MiB of random data, read it back, compare checksums.
pub fn big_file_round_trip(dir: &Path) {
    let data = random_bytes(0xF00D, 64 << 20);
    let p = dir.join("big.bin");
    {
        let mut f = File::create(&p).unwrap();
        // Uneven chunk sizes exercise partial pages and request splitting.
        for chunk in data.chunks(777_777) {
            f.write_all(chunk).unwrap();
        }
        f.sync_all().unwrap();
    }
    assert_eq!(fs::metadata(&p).unwrap().len(), data.len() as u64);
    let mut back = Vec::new();
    File::open(&p).unwrap().read_to_end(&mut back).unwrap();
    assert_eq!(back.len(), data.len());
    assert_eq!(checksum(&back), checksum(&data));
    // A read at an odd offset.
    let mut f = File::open(&p).unwrap();
    f.seek(SeekFrom::Start(12_345_678)).unwrap();
    let mut buf = vec![0u8; 100_000];
    f.read_exact(&mut buf).unwrap();
    assert_eq!(buf, data[12_345_678..12_445_678]);
    fs::remove_file(&p).unwrap();
}

/// truncate down and up: the tail reads as zeros.
pub fn truncate(dir: &Path) {
    let p = dir.join("trunc");
    fs::write(&p, vec![0xAB; 10_000]).unwrap();
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(100).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().len(), 100);
    f.set_len(5000).unwrap();
    let back = fs::read(&p).unwrap();
    assert_eq!(back.len(), 5000);
    assert!(back[..100].iter().all(|&b| b == 0xAB));
    assert!(back[100..].iter().all(|&b| b == 0));
    drop(f);
    // O_TRUNC on open.
    fs::write(&p, b"new").unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"new");
}

/// rename plain, RENAME_NOREPLACE and RENAME_EXCHANGE; directories too.
pub fn rename_flags(dir: &Path) {
    let (a, b, c) = (dir.join("ra"), dir.join("rb"), dir.join("rc"));
    fs::write(&a, b"A").unwrap();
    fs::write(&b, b"B").unwrap();
    // NOREPLACE onto an existing name fails with EEXIST and changes nothing.
    let e = rfs::renameat_with(CWD, &a, CWD, &b, RenameFlags::NOREPLACE).unwrap_err();
    assert_eq!(e, rustix::io::Errno::EXIST);
    assert_eq!(fs::read(&b).unwrap(), b"B");
    // NOREPLACE onto a free name works.
    rfs::renameat_with(CWD, &a, CWD, &c, RenameFlags::NOREPLACE).unwrap();
    assert!(!a.exists());
    assert_eq!(fs::read(&c).unwrap(), b"A");
    // EXCHANGE swaps.
    rfs::renameat_with(CWD, &b, CWD, &c, RenameFlags::EXCHANGE).unwrap();
    assert_eq!(fs::read(&b).unwrap(), b"A");
    assert_eq!(fs::read(&c).unwrap(), b"B");
    // EXCHANGE with a missing target fails.
    let e = rfs::renameat_with(CWD, &b, CWD, dir.join("missing"), RenameFlags::EXCHANGE).unwrap_err();
    assert_eq!(e, rustix::io::Errno::NOENT);
    // Plain rename replaces.
    fs::rename(&b, &c).unwrap();
    assert_eq!(fs::read(&c).unwrap(), b"A");
    // Directories: move into another dir, replace an empty dir, refuse a non-empty one.
    let (d1, d2, d3) = (dir.join("rd1"), dir.join("rd2"), dir.join("rd3"));
    fs::create_dir(&d1).unwrap();
    fs::create_dir(&d2).unwrap();
    fs::create_dir(&d3).unwrap();
    fs::write(d1.join("inner"), b"x").unwrap();
    fs::rename(&d1, d2.join("moved")).unwrap();
    assert_eq!(fs::read(d2.join("moved/inner")).unwrap(), b"x");
    assert_eq!(fs::metadata(&d2).unwrap().nlink(), 3);
    let e = fs::rename(&d3, &d2).unwrap_err();
    assert!(matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)), "{e}");
    fs::rename(d2.join("moved"), &d3).unwrap();
    assert_eq!(fs::read(d3.join("inner")).unwrap(), b"x");
    fs::remove_file(&c).unwrap();
    fs::remove_file(d3.join("inner")).unwrap();
    for d in [&d2, &d3] {
        fs::remove_dir(d).unwrap();
    }
}

/// Hard links share content and count links; symlinks read back.
pub fn links(dir: &Path) {
    let (f, l, s) = (dir.join("lf"), dir.join("ll"), dir.join("ls"));
    fs::write(&f, b"linked").unwrap();
    fs::hard_link(&f, &l).unwrap();
    assert_eq!(fs::metadata(&f).unwrap().nlink(), 2);
    assert_eq!(fs::metadata(&f).unwrap().ino(), fs::metadata(&l).unwrap().ino());
    fs::write(&l, b"changed").unwrap();
    assert_eq!(fs::read(&f).unwrap(), b"changed");
    std::os::unix::fs::symlink("lf", &s).unwrap();
    assert_eq!(fs::read_link(&s).unwrap(), Path::new("lf"));
    assert!(fs::symlink_metadata(&s).unwrap().file_type().is_symlink());
    assert_eq!(fs::read(&s).unwrap(), b"changed");
    let long_target = "x/".repeat(1000);
    std::os::unix::fs::symlink(&long_target, dir.join("long")).unwrap();
    assert_eq!(fs::read_link(dir.join("long")).unwrap(), Path::new(&long_target));
    fs::remove_file(&f).unwrap();
    assert_eq!(fs::metadata(&l).unwrap().nlink(), 1);
    for p in [&l, &s, &dir.join("long")] {
        fs::remove_file(p).unwrap();
    }
}

/// user.* xattrs: set, get, list, replace/create flags, remove.
pub fn xattrs(dir: &Path) {
    let p = dir.join("xa");
    fs::write(&p, b"").unwrap();
    rfs::setxattr(&p, "user.one", b"1", XattrFlags::empty()).unwrap();
    rfs::setxattr(&p, "user.two", b"22", XattrFlags::CREATE).unwrap();
    assert_eq!(
        rfs::setxattr(&p, "user.two", b"x", XattrFlags::CREATE).unwrap_err(),
        rustix::io::Errno::EXIST
    );
    assert_eq!(
        rfs::setxattr(&p, "user.nope", b"x", XattrFlags::REPLACE).unwrap_err(),
        rustix::io::Errno::NODATA
    );
    let mut buf = [0u8; 64];
    let n = rfs::getxattr(&p, "user.two", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"22");
    assert_eq!(rfs::getxattr_query(&p, "user.two").unwrap(), 2);
    assert_eq!(rfs::getxattr(&p, "user.two", &mut [0u8; 1][..]).unwrap_err(), rustix::io::Errno::RANGE);
    let n = rfs::listxattr(&p, &mut buf).unwrap();
    let names: HashSet<&[u8]> = buf[..n].split(|&b| b == 0).filter(|s| !s.is_empty()).collect();
    assert!(names.contains(&b"user.one"[..]) && names.contains(&b"user.two"[..]), "{names:?}");
    rfs::removexattr(&p, "user.one").unwrap();
    assert_eq!(rfs::getxattr(&p, "user.one", &mut buf).unwrap_err(), rustix::io::Errno::NODATA);
    fs::remove_file(&p).unwrap();
}

/// chmod, chown, utimens with nanoseconds.
pub fn attributes(dir: &Path) {
    let p = dir.join("attr");
    fs::write(&p, b"x").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o640);
    std::os::unix::fs::chown(&p, Some(1234), Some(5678)).unwrap();
    let m = fs::metadata(&p).unwrap();
    assert_eq!((m.uid(), m.gid()), (1234, 5678));
    let ts = Timestamps {
        last_access: Timespec { tv_sec: 1_000_000_000, tv_nsec: 123_456_789 },
        last_modification: Timespec { tv_sec: 1_500_000_000, tv_nsec: 987_654_321 },
    };
    rfs::utimensat(CWD, &p, &ts, AtFlags::empty()).unwrap();
    let m = fs::metadata(&p).unwrap();
    assert_eq!((m.atime(), m.atime_nsec()), (1_000_000_000, 123_456_789));
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_500_000_000, 987_654_321));
    fs::remove_file(&p).unwrap();
}

/// A directory of 10,000 entries lists every name exactly once.
pub fn readdir_10k(dir: &Path) {
    let d = dir.join("many");
    fs::create_dir(&d).unwrap();
    for i in 0..10_000 {
        File::create(d.join(format!("entry-{i:05}"))).unwrap();
    }
    let mut seen = HashSet::new();
    for e in fs::read_dir(&d).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(seen.insert(name.clone()), "{name} listed twice");
    }
    assert_eq!(seen.len(), 10_000);
    for i in 0..10_000 {
        assert!(seen.contains(&format!("entry-{i:05}")));
    }
    fs::remove_dir_all(&d).unwrap();
}

/// statfs answers with sane numbers.
pub fn statfs(dir: &Path) {
    let s = rfs::statvfs(dir).unwrap();
    assert!(
        s.f_bsize > 0 && s.f_blocks > 0 && s.f_namemax >= 255,
        "bsize {} blocks {} namemax {}",
        s.f_bsize,
        s.f_blocks,
        s.f_namemax
    );
    assert!(s.f_bfree <= s.f_blocks);
}

/// Every test of the suite, in order.
pub fn run_all(dir: &Path) {
    big_file_round_trip(dir);
    truncate(dir);
    rename_flags(dir);
    links(dir);
    xattrs(dir);
    attributes(dir);
    readdir_10k(dir);
    statfs(dir);
}

/// How [`concurrent_mixed_with`] judges the records eight threads append to one shared file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appends {
    /// Every record must be there.
    Exact,
    /// A known open bug may lose a rare record (passthrough under write-back, see the README's
    /// known issues): every record present must be whole, a loss is reported on stderr.
    KnownLoss,
}

/// 8 threads doing mixed operations on private and shared files; returns the number of
/// operations done. Only ENOENT from racing on shared names is tolerated.
pub fn concurrent_mixed(dir: &Path, iterations: usize) -> usize {
    concurrent_mixed_with(dir, iterations, Appends::Exact)
}

/// [`concurrent_mixed`] with the shared appends judged by `appends`.
pub fn concurrent_mixed_with(dir: &Path, iterations: usize, appends: Appends) -> usize {
    let shared = Arc::new(dir.join("shared"));
    fs::create_dir_all(&*shared).unwrap();
    fs::write(shared.join("common"), b"").unwrap();
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let mut ops = 0;
                let tolerate = |r: std::io::Result<()>| match r {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => panic!("thread {t}: {e}"),
                };
                for i in 0..iterations {
                    let own = shared.join(format!("t{t}-{i}"));
                    let data = random_bytes((t * 1000 + i) as u64, 1 + (i * 997) % 70_000);
                    fs::write(&own, &data).unwrap();
                    assert_eq!(fs::read(&own).unwrap(), data);
                    let renamed = shared.join(format!("t{t}-{i}-r"));
                    fs::rename(&own, &renamed).unwrap();
                    assert_eq!(fs::metadata(&renamed).unwrap().len(), data.len() as u64);
                    // Shared file: appends from all threads.
                    let mut f = OpenOptions::new().append(true).open(shared.join("common")).unwrap();
                    f.write_all(&[t as u8; 16]).unwrap();
                    drop(f);
                    // Shared directory listing while others mutate it.
                    for e in fs::read_dir(&*shared).unwrap() {
                        tolerate(e.map(|_| ()));
                    }
                    // Touch another thread's files: may race with their rename/unlink.
                    let other = shared.join(format!("t{}-{}-r", (t + 1) % 8, i));
                    tolerate(fs::metadata(&other).map(|_| ()));
                    tolerate(fs::read(&other).map(|_| ()));
                    fs::create_dir(shared.join(format!("d{t}-{i}"))).unwrap();
                    fs::remove_dir(shared.join(format!("d{t}-{i}"))).unwrap();
                    fs::remove_file(&renamed).unwrap();
                    ops += 12;
                }
                ops
            })
        })
        .collect();
    let total = handles.into_iter().map(|h| h.join().expect("worker panicked")).sum();
    let appended = fs::metadata(shared.join("common")).unwrap().len();
    let expected = (8 * iterations * 16) as u64;
    match appends {
        Appends::Exact => assert_eq!(appended, expected),
        Appends::KnownLoss => {
            assert!(
                appended <= expected && appended.is_multiple_of(16),
                "{appended} bytes appended of {expected}"
            );
            if appended < expected {
                eprintln!(
                    "known issue: {} of {} appended records lost",
                    (expected - appended) / 16,
                    expected / 16
                );
            }
        }
    }
    fs::remove_file(shared.join("common")).unwrap();
    fs::remove_dir(&*shared).unwrap();
    total
}
