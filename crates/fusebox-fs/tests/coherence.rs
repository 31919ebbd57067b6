//! Close-to-open across mounts: two passthrough mounts of one source with 60 s attribute and
//! entry timeouts; what one writes and closes, the other reads on open, at once; renames and
//! deletes, and changes made directly in the source, show within 1 s (`-o watch`).

mod common;

use common::pt::PtMount;
use common::{random_bytes, wait_until, TestMount};
use fusebox_fs::passthrough::{Passthrough, PassthroughError};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const LONG: &str = "default_permissions,allow_other,attr_timeout=60,entry_timeout=60";

/// The cache modes: write-through, the kernel's write-back cache (which keeps cached sizes), and
/// kernel passthrough (file data goes from the kernel straight to the source).
const MODES: [&str; 3] = ["no_writeback", "writeback", "kernel_passthrough"];

fn watching(p: &Path) -> Result<Passthrough, PassthroughError> {
    Passthrough::new(p).map(|f| f.with_watch(true))
}

/// Mount B of the source of `a`.
fn mount_b(a: &PtMount, watch: bool, mode: &str) -> Option<TestMount> {
    let kernel = mode == "kernel_passthrough";
    let opts = if kernel { LONG.to_string() } else { format!("{LONG},{mode}") };
    let fs = Passthrough::new(&a.src).unwrap().with_watch(watch).with_kernel_passthrough(kernel);
    TestMount::new(Arc::new(fs), &opts)
}

fn read_all(p: &Path) -> (u64, Vec<u8>) {
    let mut f = File::open(p).unwrap();
    let size = f.metadata().unwrap().len();
    let mut v = Vec::new();
    f.read_to_end(&mut v).unwrap();
    (size, v)
}

#[test]
fn writer_on_a_reader_on_b_never_sees_stale_bytes_or_size_1000_rounds() {
    for mode in MODES {
        c2o_rounds(mode);
    }
    // B revalidates attributes on every stat (GETATTR) but keeps names for 60 s: with the
    // write-back cache a GETATTR reply cannot change the kernel's size, and must not hide the
    // change from the next OPEN.
    c2o_rounds("writeback,attr_timeout=0");
}

fn c2o_rounds(mode: &str) {
    let Some(a) = PtMount::new(&format!("{LONG},{mode}")) else { return };
    let Some(b) = mount_b(&a, false, mode) else { return };
    assert_eq!(a.kernel_passthrough(), mode == "kernel_passthrough", "{mode}: passthrough not as asked");
    let (mut stale, mut worst) = (0, 0);
    for i in 0..1000u64 {
        // Random sizes, growing and shrinking, and random contents.
        let len = (i.wrapping_mul(2654435761) % 20_000) as usize;
        let data = random_bytes(i + 1, len);
        let mut w = OpenOptions::new().write(true).create(true).truncate(true).open(a.mnt("f")).unwrap();
        w.write_all(&data).unwrap();
        fusebox::sys::close(OwnedFd::from(w)).unwrap();
        // Every third round B also stats the file first (a GETATTR must not hide the change).
        if i % 3 == 0 {
            let _ = std::fs::metadata(b.path("f"));
        }
        let (size, back) = read_all(&b.path("f"));
        if size != len as u64 || back != data {
            stale += 1;
            worst = worst.max(i);
        }
    }
    assert_eq!(
        stale, 0,
        "{mode}: mount B saw stale data or size in {stale} of 1000 rounds (last at {worst})"
    );
}

fn names_on_b(mode: &str) {
    let Some(a) = PtMount::with(watching, &format!("{LONG},{mode}")) else { return };
    let Some(b) = mount_b(&a, true, mode) else { return };
    std::fs::write(a.mnt("x"), b"x").unwrap();
    // B caches the name and the attributes for 60 s.
    assert_eq!(std::fs::read(b.path("x")).unwrap(), b"x");
    // Created and closed on A: opens on B at once.
    let mut f = File::create(a.mnt("new")).unwrap();
    f.write_all(b"fresh").unwrap();
    fusebox::sys::close(OwnedFd::from(f)).unwrap();
    assert_eq!(std::fs::read(b.path("new")).unwrap(), b"fresh");
    // Renamed on A: B sees within 1 s.
    std::fs::rename(a.mnt("x"), a.mnt("y")).unwrap();
    assert!(
        wait_until(Duration::from_secs(1), || !b.path("x").exists() && b.path("y").exists()),
        "rename on A not seen on B within 1 s"
    );
    // Replaced by a rename on A: B's cached name must lead to the new file.
    std::fs::rename(a.mnt("new"), a.mnt("y")).unwrap();
    assert!(wait_until(Duration::from_secs(1), || std::fs::read(b.path("y")).ok().as_deref()
        == Some(&b"fresh"[..])));
    // Deleted on A.
    std::fs::remove_file(a.mnt("y")).unwrap();
    assert!(
        wait_until(Duration::from_secs(1), || !b.path("y").exists()),
        "delete on A not seen on B within 1 s"
    );
    // In a subdirectory too.
    std::fs::create_dir(a.mnt("d")).unwrap();
    std::fs::write(a.mnt("d/f"), b"1").unwrap();
    assert!(b.path("d/f").exists());
    std::fs::remove_file(a.mnt("d/f")).unwrap();
    assert!(wait_until(Duration::from_secs(1), || !b.path("d/f").exists()));
    assert!(b.path("d").exists());
}

fn direct_change(mode: &str) {
    let Some(m) = PtMount::with(watching, &format!("{LONG},{mode}")) else { return };
    std::fs::write(m.src("f"), b"v1").unwrap();
    assert_eq!(std::fs::metadata(m.mnt("f")).unwrap().len(), 2);
    assert_eq!(std::fs::read(m.mnt("f")).unwrap(), b"v1");
    // Without write-back, a file kept open sees it too (attributes and pages are dropped).
    // With write-back the kernel owns a cached inode's size, so an already-open file keeps
    // its old size (documented limit); new opens and stats see the new file.
    let held = File::open(m.mnt("f")).unwrap();
    std::fs::write(m.src("f"), b"version2").unwrap();
    assert!(
        wait_until(Duration::from_secs(1), || std::fs::metadata(m.mnt("f")).unwrap().len() == 8),
        "{mode}: size change in the source not visible within 1 s"
    );
    assert_eq!(std::fs::read(m.mnt("f")).unwrap(), b"version2");
    if mode != "writeback" {
        let mut v = Vec::new();
        (&held).read_to_end(&mut v).unwrap();
        assert_eq!(v, b"version2");
    }
    // Same size, new bytes.
    std::fs::write(m.src("f"), b"VERSION2").unwrap();
    assert!(wait_until(Duration::from_secs(1), || {
        let mut b = [0u8; 8];
        std::os::unix::fs::FileExt::read_at(&held, &mut b, 0).ok() == Some(8) && &b == b"VERSION2"
            || mode == "writeback" && std::fs::read(m.mnt("f")).ok().as_deref() == Some(&b"VERSION2"[..])
    }));
    drop(held);
    // Names: created, renamed and deleted directly in the source.
    std::fs::rename(m.src("f"), m.src("g")).unwrap();
    assert!(wait_until(Duration::from_secs(1), || !m.mnt("f").exists() && m.mnt("g").exists()));
    std::fs::remove_file(m.src("g")).unwrap();
    assert!(wait_until(Duration::from_secs(1), || !m.mnt("g").exists()));
    assert!(m.fs.watched_directories() >= 1);
}

fn replaced_in_source(mode: &str) {
    let Some(m) = PtMount::new(&format!("{LONG},{mode}")) else { return };
    std::fs::write(m.src("f"), b"first").unwrap();
    assert_eq!(std::fs::read(m.mnt("f")).unwrap(), b"first");
    let mut failures = Vec::new();
    for i in 0..200 {
        let want = format!("round {i}");
        std::fs::remove_file(m.src("f")).unwrap();
        std::fs::write(m.src("f"), &want).unwrap();
        match std::fs::read(m.mnt("f")) {
            Ok(got) if got == want.as_bytes() => {}
            Ok(got) => failures.push(format!("round {i}: read {:?}", String::from_utf8_lossy(&got))),
            Err(e) => failures.push(format!("round {i}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{mode}: {} of 200 opens wrong, first: {:?}",
        failures.len(),
        failures.first()
    );
    std::fs::remove_file(m.src("f")).unwrap();
    let e = File::open(m.mnt("f")).expect_err("deleted in SOURCE");
    assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{mode}: {e}");
    // A file unlinked through the mount while open stays reachable through its descriptor.
    std::fs::write(m.mnt("g"), b"kept").unwrap();
    let held = File::open(m.mnt("g")).unwrap();
    std::fs::remove_file(m.mnt("g")).unwrap();
    let fd_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&held));
    assert_eq!(std::fs::read(fd_path).unwrap(), b"kept", "{mode}");
}

fusebox_testkit::tests_over! { MODES;
    names_created_renamed_deleted_on_a_show_on_b => names_on_b,
    direct_change_in_source_shows_on_mount_within_1s_despite_60s_timeouts => direct_change,
    /// A file deleted and recreated directly in SOURCE, without `watch` and with 60 s timeouts:
    /// the kernel still maps the name to the old node, whose backing file is gone. Every open
    /// must open the new file (never ESTALE, never the deleted file's old bytes); a name deleted
    /// in SOURCE and not recreated gives ENOENT.
    file_replaced_in_source_opens_the_new_file_never_estale => replaced_in_source,
}
