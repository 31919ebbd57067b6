//! Mount tests of the notifier: each notification changes what the kernel has cached, seen
//! through the mount (changes are made behind the kernel's back in the passthrough source,
//! with long cache timeouts, so only the notification can make them visible).

mod common;

use common::pt::PtMount;
use common::TestMount;
use fusebox::session::NotifyError;
use fusebox::NodeId;
use fusebox_fs::memfs::{MemFs, MemFsOptions};
use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::Arc;
use std::time::Duration;

const LONG: &str = "default_permissions,allow_other,attr_timeout=60,entry_timeout=60";

fn node(m: &PtMount, rel: &str) -> NodeId {
    let md = std::fs::symlink_metadata(m.src(rel)).unwrap();
    m.fs.node_of(md.dev(), md.ino()).expect("the kernel knows the node")
}

fn read_at(f: &std::fs::File, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    let n = f.read_at(&mut b, 0).unwrap();
    b.truncate(n);
    b
}

#[test]
fn inval_inode_drops_cached_data_and_attributes() {
    let Some(m) = PtMount::new(LONG) else { return };
    std::fs::write(m.src("f"), b"aaaa").unwrap();
    let f = std::fs::File::open(m.mnt("f")).unwrap();
    assert_eq!(read_at(&f, 16), b"aaaa");
    // Changed behind the kernel's back (same size): the page cache still answers.
    std::fs::write(m.src("f"), b"bbbb").unwrap();
    assert_eq!(read_at(&f, 16), b"aaaa", "page cache expected to be stale before the notification");
    let ino = node(&m, "f");
    m.m.notifier().inval_inode(ino, 0, 0).unwrap();
    assert_eq!(read_at(&f, 16), b"bbbb");
    // Attributes too: a size change shows after inval_inode(offset -1 = attributes only).
    assert_eq!(std::fs::metadata(m.mnt("f")).unwrap().len(), 4);
    std::fs::write(m.src("f"), b"cccccc").unwrap();
    assert_eq!(std::fs::metadata(m.mnt("f")).unwrap().len(), 4);
    m.m.notifier().inval_inode(ino, -1, 0).unwrap();
    assert_eq!(std::fs::metadata(m.mnt("f")).unwrap().len(), 6);
    // An inode the kernel does not have is refused.
    assert!(matches!(m.m.notifier().inval_inode(NodeId(1 << 40), 0, 0), Err(NotifyError::Io(_))));
}

#[test]
fn inval_entry_and_delete_drop_cached_names() {
    let Some(m) = PtMount::new(LONG) else { return };
    std::fs::write(m.src("a"), b"1").unwrap();
    std::fs::write(m.src("d"), b"2").unwrap();
    assert!(m.mnt("a").exists() && m.mnt("d").exists());
    let d_node = node(&m, "d");
    std::fs::rename(m.src("a"), m.src("b")).unwrap();
    std::fs::remove_file(m.src("d")).unwrap();
    assert!(m.mnt("a").exists(), "dentry expected cached before the notification");
    m.m.notifier().inval_entry(NodeId::ROOT, OsStr::new("a")).unwrap();
    assert!(!m.mnt("a").exists());
    assert_eq!(std::fs::read(m.mnt("b")).unwrap(), b"1");
    assert!(m.mnt("d").exists());
    m.m.notifier().delete(NodeId::ROOT, d_node, OsStr::new("d")).unwrap();
    assert!(!m.mnt("d").exists());
    // Names the kernel never saw are refused.
    assert!(m.m.notifier().inval_entry(NodeId::ROOT, OsStr::new("never-seen")).is_err());
}

#[test]
fn store_fills_the_page_cache_and_retrieve_reads_it_back() {
    let fs = Arc::new(MemFs::new(MemFsOptions::default()));
    let Some(m) = TestMount::new(fs, "default_permissions,allow_other,writeback,attr_timeout=60") else {
        return;
    };
    let mut f =
        OpenOptions::new().read(true).write(true).create(true).truncate(true).open(m.path("f")).unwrap();
    f.write_all(b"0123456789").unwrap();
    let ino = NodeId(std::fs::metadata(m.path("f")).unwrap().ino());
    // The written bytes sit in the kernel's page cache (write-back): retrieve returns them.
    let r = m.m_notifier().retrieve(ino, 0, 10).unwrap();
    assert_eq!(r.wait(Duration::from_secs(5)).unwrap(), (0, b"0123456789".to_vec()));
    // Store overwrites cached bytes; reads through the open file see them.
    m.m_notifier().store(ino, 2, b"XYZ").unwrap();
    assert_eq!(read_at(&f, 10), b"01XYZ56789");
    let r = m.m_notifier().retrieve(ino, 2, 3).unwrap();
    assert_eq!(r.wait(Duration::from_secs(5)).unwrap(), (2, b"XYZ".to_vec()));
    // Notifications work from any thread.
    let n = m.m_notifier().clone();
    std::thread::spawn(move || n.store(ino, 0, b"ab").unwrap()).join().unwrap();
    assert_eq!(read_at(&f, 10), b"abXYZ56789");
}

/// Small shim so the memfs test reads like the passthrough ones.
trait NotifierOf {
    fn m_notifier(&self) -> &fusebox::session::Notifier;
}
impl NotifierOf for TestMount {
    fn m_notifier(&self) -> &fusebox::session::Notifier {
        self.notifier()
    }
}
