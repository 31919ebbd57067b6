//! Synchronous close: close(2) is the commit point. memfs `size=` with write-back: a write
//! that fits the page cache but not the file system fails at close(2) with ENOSPC, and what fit
//! is intact.

mod common;

use common::{random_bytes, TestMount};
use fusebox_fs::memfs::{MemFs, MemFsOptions};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::sync::Arc;

const CHUNK: usize = 64 * 1024;

#[test]
fn memfs_full_writeback_fails_at_close_and_what_fit_is_intact() {
    let fs = Arc::new(MemFs::new(MemFsOptions { size: Some(1 << 20), ..Default::default() }));
    let Some(m) = TestMount::new(fs, "default_permissions,allow_other,writeback") else { return };
    let data = random_bytes(7, 2 << 20);
    let mut f = std::fs::File::create(m.path("big")).unwrap();
    // Into the page cache: the file system is not asked yet, so write(2) succeeds.
    f.write_all(&data).expect("write(2) into the page cache succeeds");
    let err = fusebox::sys::close(OwnedFd::from(f)).expect_err("close(2) must report the failed commit");
    let code = err.raw_os_error().unwrap();
    assert!(code == libc::ENOSPC || code == libc::EIO, "close(2) returned {err}");
    // A fresh open drops the page cache (memfs does not keep it): read what memfs holds.
    let mut back = Vec::new();
    std::fs::File::open(m.path("big")).unwrap().read_to_end(&mut back).unwrap();
    let mut intact = 0;
    for (i, chunk) in back.chunks(CHUNK).enumerate() {
        let want = &data[i * CHUNK..(i * CHUNK + chunk.len()).min(data.len())];
        if chunk == want {
            intact += 1;
        } else {
            assert!(chunk.iter().all(|&b| b == 0), "chunk {i} is neither the data written nor a hole");
        }
    }
    assert!(intact >= 1, "nothing of what fit survived");
    assert!(intact * CHUNK <= 1 << 20, "more than the capacity was stored");
    // The file system keeps working: after freeing space, a write commits cleanly.
    std::fs::remove_file(m.path("big")).unwrap();
    let mut g = std::fs::File::create(m.path("small")).unwrap();
    g.write_all(&data[..100_000]).unwrap();
    fusebox::sys::close(OwnedFd::from(g)).unwrap();
    assert_eq!(std::fs::read(m.path("small")).unwrap(), &data[..100_000]);
}
