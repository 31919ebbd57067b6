//! Semantics that FUSE servers commonly get wrong, each checked on a real mount: operations on
//! an open but unlinked file once passthrough's descriptor cache has forgotten it.

mod common;

use common::pt::PtMount;
use fusebox_fs::passthrough::Passthrough;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, SystemTime};

const OPTS: &str = "default_permissions,allow_other";

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
