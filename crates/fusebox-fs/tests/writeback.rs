//! The write-back cache rules, each shown through a real mount with WRITEBACK_CACHE on:
//! partial-page writes on O_WRONLY files, O_APPEND writers, size/mtime after truncate+write,
//! suid clearing, and data reaching the backing file on fsync and close.

mod common;

use common::pt::PtMount;
use common::{random_bytes, sh_as_nobody, TestMount};
use fusebox_fs::memfs::{MemFs, MemFsOptions};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::sync::Arc;
use std::time::SystemTime;

const WB: &str = "default_permissions,allow_other,writeback";

fn assert_writeback(m: &TestMount) {
    assert!(m.server().writeback(), "WRITEBACK_CACHE was not negotiated");
}

#[test]
fn partial_page_write_on_write_only_file() {
    let Some(f) = PtMount::new(WB) else { return };
    assert_writeback(&f.m);
    fs::write(f.src("page"), vec![b'a'; 8192]).unwrap();
    {
        // O_WRONLY: to merge 3 bytes into a cached page the kernel must READ the page through
        // this handle, which only works because the framework opened it read-write underneath.
        let w = OpenOptions::new().write(true).open(f.mnt("page")).unwrap();
        w.write_all_at(b"XYZ", 100).unwrap();
        w.write_all_at(b"Q", 5000).unwrap();
    }
    let back = fs::read(f.src("page")).unwrap();
    let mut want = vec![b'a'; 8192];
    want[100..103].copy_from_slice(b"XYZ");
    want[5000] = b'Q';
    assert_eq!(back, want);
}

fn two_appenders(path: &std::path::Path) {
    const RECORDS: usize = 400;
    const LEN: usize = 64;
    let writers: Vec<_> = (0..2u8)
        .map(|id| {
            let path = path.to_path_buf();
            std::thread::spawn(move || {
                let mut f = OpenOptions::new().append(true).open(&path).unwrap();
                for seq in 0..RECORDS {
                    let mut rec = format!("writer {id} record {seq:05} ").into_bytes();
                    rec.resize(LEN - 1, b'.' + id);
                    rec.push(b'\n');
                    f.write_all(&rec).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let data = fs::read(path).unwrap();
    assert_eq!(data.len(), 2 * RECORDS * LEN, "appends overwrote each other");
    let mut seen = [0usize; 2];
    for rec in data.chunks(LEN) {
        let text = String::from_utf8_lossy(rec);
        let id: usize = text[7..8].parse().unwrap_or_else(|_| panic!("torn record {text:?}"));
        let prefix = format!("writer {id} record {:05} ", seen[id]);
        assert!(text.starts_with(&prefix), "record out of order or torn: {text:?}");
        assert!(rec[prefix.len()..LEN - 1].iter().all(|&b| b == b'.' + id as u8), "torn record {text:?}");
        seen[id] += 1;
    }
    assert_eq!(seen, [RECORDS, RECORDS]);
}

#[test]
fn two_append_writers_never_overwrite_each_other() {
    let Some(f) = PtMount::new(WB) else { return };
    assert_writeback(&f.m);
    fs::write(f.mnt("log"), b"").unwrap();
    two_appenders(&f.mnt("log"));
    // And the backing file agrees once the kernel has written back.
    fs::File::open(f.mnt("log")).unwrap().sync_all().unwrap();
    assert_eq!(fs::read(f.src("log")).unwrap(), fs::read(f.mnt("log")).unwrap());

    let Some(m) = TestMount::new(Arc::new(MemFs::new(MemFsOptions::default())), WB) else { return };
    fs::write(m.path("log"), b"").unwrap();
    two_appenders(&m.path("log"));
}

#[test]
fn size_and_mtime_right_after_truncate_and_write() {
    let Some(f) = PtMount::new(WB) else { return };
    let p = f.mnt("sz");
    let before = SystemTime::now();
    let file = OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&p).unwrap();
    file.write_all_at(&[1u8; 10_000], 0).unwrap();
    file.set_len(5000).unwrap();
    file.write_all_at(&[2u8; 100], 6000).unwrap();
    let m = fs::metadata(&p).unwrap();
    assert_eq!(m.len(), 6100);
    assert!(m.modified().unwrap() >= before, "mtime went backwards");
    let data = fs::read(&p).unwrap();
    assert!(data[..5000].iter().all(|&b| b == 1));
    assert!(data[5000..6000].iter().all(|&b| b == 0));
    assert!(data[6000..].iter().all(|&b| b == 2));
    file.sync_all().unwrap();
    drop(file);
    let s = fs::metadata(f.src("sz")).unwrap();
    assert_eq!(s.len(), 6100);
    assert_eq!(fs::read(f.src("sz")).unwrap(), data);
    // The mount and the backing file agree on mtime after the kernel pushed its times.
    let m = fs::metadata(&p).unwrap();
    assert!(s.modified().unwrap() >= before && m.modified().unwrap() >= before);
}

fn suid_cleared_by_foreign_write(dir: &std::path::Path, backing: Option<&std::path::Path>) {
    let p = dir.join("suid");
    fs::write(&p, b"#!/bin/sh\n").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o6777)).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o6777);
    // User nobody (not the owner, no CAP_FSETID) appends to it.
    sh_as_nobody(&format!("echo x >> '{}'", p.display()));
    let mode = fs::metadata(&p).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o0777, "suid/sgid survived a write by another user: {mode:o}");
    if let Some(b) = backing {
        assert_eq!(fs::metadata(b.join("suid")).unwrap().mode() & 0o7777, 0o0777);
    }
}

#[test]
fn suid_cleared_by_a_write_from_another_user() {
    let Some(f) = PtMount::new(WB) else { return };
    fs::create_dir(f.mnt("open")).unwrap();
    fs::set_permissions(f.mnt("open"), fs::Permissions::from_mode(0o777)).unwrap();
    suid_cleared_by_foreign_write(&f.mnt("open"), Some(&f.src("open")));

    let Some(m) = TestMount::new(Arc::new(MemFs::new(MemFsOptions::default())), WB) else { return };
    fs::set_permissions(&m.mnt, fs::Permissions::from_mode(0o777)).unwrap();
    suid_cleared_by_foreign_write(&m.mnt, None);
}

fn suid_cleared_by_foreign_truncating_open(dir: &std::path::Path) {
    let p = dir.join("suid-trunc");
    fs::write(&p, b"#!/bin/sh\n").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o6777)).unwrap();
    // User nobody truncates it on open (O_TRUNC): FUSE_OPEN_KILL_SUIDGID.
    sh_as_nobody(&format!(": > '{}'", p.display()));
    assert_eq!(fs::metadata(&p).unwrap().len(), 0);
    let mode = fs::metadata(&p).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o0777, "suid/sgid survived a truncating open by another user: {mode:o}");
}

#[test]
fn suid_cleared_by_a_truncating_open_from_another_user() {
    let Some(f) = PtMount::new(WB) else { return };
    fs::create_dir(f.mnt("open")).unwrap();
    fs::set_permissions(f.mnt("open"), fs::Permissions::from_mode(0o777)).unwrap();
    suid_cleared_by_foreign_truncating_open(&f.mnt("open"));
    assert_eq!(fs::metadata(f.src("open/suid-trunc")).unwrap().mode() & 0o7777, 0o0777);

    let Some(m) = TestMount::new(Arc::new(MemFs::new(MemFsOptions::default())), WB) else { return };
    fs::set_permissions(&m.mnt, fs::Permissions::from_mode(0o777)).unwrap();
    suid_cleared_by_foreign_truncating_open(&m.mnt);
}

#[test]
fn fsync_and_close_push_data_to_the_backing_file() {
    let Some(f) = PtMount::new(WB) else { return };
    let first = random_bytes(1, 3 << 20);
    let second = random_bytes(2, 1 << 20);
    let mut file = OpenOptions::new().create(true).truncate(true).write(true).open(f.mnt("push")).unwrap();
    file.write_all(&first).unwrap();
    file.sync_all().unwrap();
    assert_eq!(fs::read(f.src("push")).unwrap(), first, "fsync did not reach SOURCE");
    file.write_all(&second).unwrap();
    drop(file); // close(2): FLUSH after the kernel wrote back the dirty pages
    let want = [first, second].concat();
    assert_eq!(fs::read(f.src("push")).unwrap(), want, "close did not reach SOURCE");
    // With the write-back cache, 4 KiB writes reach the daemon in large requests.
    let w = f.m.server().stats().snapshot().ops.into_iter().find(|o| o.name == "WRITE").unwrap();
    assert!(w.bytes_in / w.count >= 64 * 1024, "WRITEs average {} bytes", w.bytes_in / w.count);
}

#[test]
fn write_only_open_with_o_append_and_o_direct_still_works() {
    let Some(f) = PtMount::new(WB) else { return };
    fs::write(f.src("d"), vec![0u8; 4096]).unwrap();
    let file = OpenOptions::new().append(true).custom_flags(libc::O_DIRECT).open(f.mnt("d"));
    // O_DIRECT may be refused by the backing FS (tmpfs); when it opens, appends land at the end.
    if let Ok(mut file) = file {
        let buf = vec![9u8; 4096];
        if file.write_all(&buf).is_ok() {
            drop(file);
            assert_eq!(fs::metadata(f.src("d")).unwrap().len(), 8192);
        }
    }
}

/// A write-back that the file system cannot store leaves the size and bytes it did store,
/// not those the kernel had cached: memfs full (ENOSPC) and a write past the backing file
/// system's maximum file size on passthrough (EFBIG). The error still reaches fsync/close.
#[test]
fn failed_writeback_leaves_the_size_that_was_stored() {
    for flavour in ["sync", "async"] {
        let opts = MemFsOptions { size: Some(4 << 20), ..Default::default() };
        let m = if flavour == "sync" {
            TestMount::new(Arc::new(MemFs::new(opts)), WB)
        } else {
            let fs = fusebox::fs::asyncfs::AsyncAdapter::new(
                fusebox::fs::asyncfs::SyncAsAsync::new(MemFs::new(opts)),
                Default::default(),
            )
            .unwrap();
            TestMount::new(Arc::new(fs), WB)
        };
        let Some(m) = m else { return };
        assert_writeback(&m);
        let p = m.path("fill");
        let f = fs::File::create(&p).unwrap();
        // Whole MiBs, each pushed by fsync (one WRITE each): memfs stores a MiB or refuses it.
        let mut stored = 0u64;
        let err = loop {
            (&f).write_all(&vec![7u8; 1 << 20]).unwrap();
            match f.sync_all() {
                Ok(()) => stored += 1 << 20,
                Err(e) => break e,
            }
            assert!(stored < 8 << 20, "{flavour}: a 4 MiB memfs took 8 MiB");
        };
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{flavour}: {err}");
        drop(f);
        // Without retirement the kernel keeps the size of the refused MiB (stored + 1 MiB).
        let len = fs::metadata(&p).unwrap().len();
        assert_eq!(len, stored, "{flavour}: stat after ENOSPC");
        let back = fs::read(&p).unwrap();
        assert_eq!(back.len() as u64, stored, "{flavour}: read after ENOSPC");
        assert!(back.iter().all(|&b| b == 7), "{flavour}: bytes nobody wrote");
        // The file stays usable: rewrite it within the limit.
        fs::write(&p, b"small").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"small");
    }

    let Some(f) = PtMount::new(WB) else { return };
    assert_writeback(&f.m);
    fs::write(f.src("big"), b"head").unwrap();
    let file = OpenOptions::new().write(true).open(f.mnt("big")).unwrap();
    // ext4's limit is 16 TiB; the kernel's page cache takes the write, the backing file cannot.
    file.write_all_at(b"tail", 16 << 40).unwrap();
    let e = file.sync_all().expect_err("a write at 16 TiB on ext4");
    assert_eq!(e.raw_os_error(), Some(libc::EFBIG), "{e}");
    drop(file);
    assert_eq!(fs::metadata(f.mnt("big")).unwrap().len(), 4, "stat after EFBIG");
    assert_eq!(fs::read(f.mnt("big")).unwrap(), b"head");
}
