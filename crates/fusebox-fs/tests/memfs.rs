//! memfs through a real mount, served through both API flavours: the synchronous
//! `Filesystem` trait and the async one (`AsyncFilesystem` run by `AsyncAdapter`). Every test
//! runs once per flavour (modules `sync_api` and `async_api`).

mod common;

use common::{posix, within, TestMount};
use fusebox::fs::asyncfs::{AsyncAdapter, SyncAsAsync};
use fusebox_fs::memfs::{MemFs, MemFsOptions};
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::Duration;

/// How a test mounts memfs: one of the two API flavours.
type Mounter = fn(MemFsOptions) -> Option<TestMount>;

const OPTS: &str = "default_permissions,allow_other";

fn mount_sync(opts: MemFsOptions) -> Option<TestMount> {
    TestMount::new(Arc::new(MemFs::new(opts)), OPTS)
}

fn mount_async(opts: MemFsOptions) -> Option<TestMount> {
    let adapter =
        AsyncAdapter::new(SyncAsAsync::new(MemFs::new(opts)), Default::default()).expect("tokio runtime");
    TestMount::new(Arc::new(adapter), OPTS)
}

/// Generate one `#[test]` per flavour for each listed test function.
macro_rules! both_flavours {
    ($($name:ident),* $(,)?) => {
        mod sync_api {
            $(#[test] fn $name() { super::$name(super::mount_sync) })*
        }
        mod async_api {
            $(#[test] fn $name() { super::$name(super::mount_async) })*
        }
    };
}

both_flavours!(
    eight_threads_mixed_operations,
    size_limit_gives_enospc_and_space_comes_back,
    metadata_counts_against_size_and_inodes_are_bounded,
    root_keeps_a_reserve_when_other_users_fill_it,
    sparse_files_punch_hole_and_seek,
    permissions_are_enforced_for_other_users,
);

fn eight_threads_mixed_operations(mount: Mounter) {
    let Some(m) = mount(MemFsOptions::default()) else { return };
    let dir = m.mnt.clone();
    let ops = within(Duration::from_secs(300), move || posix::concurrent_mixed(&dir, 200));
    assert_eq!(ops, 8 * 200 * 12);
}

fn size_limit_gives_enospc_and_space_comes_back(mount: Mounter) {
    let Some(m) = mount(MemFsOptions { size: Some(4 << 20), ..Default::default() }) else { return };
    let p = m.path("fill");
    let mut f = fs::File::create(&p).unwrap();
    let chunk = vec![1u8; 1 << 20];
    let mut err = None;
    for _ in 0..8 {
        if let Err(e) = f.write_all(&chunk).and_then(|_| f.sync_all()) {
            err = Some(e);
            break;
        }
    }
    let err = err.expect("writing 8 MiB into a 4 MiB memfs must fail");
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    drop(f);
    fs::remove_file(&p).unwrap();
    // After the removal the space is available again, once the kernel's RELEASE and FORGET
    // of the file have been served (background requests: under the async API they run as
    // tasks and may still be queued when unlink(2) returns).
    let again = m.path("again");
    assert!(
        common::wait_until(Duration::from_secs(5), || fs::write(&again, vec![2u8; 3 << 20]).is_ok()),
        "the space of the removed file never came back"
    );
}

/// Free and total bytes of the file system at `p` (statvfs).
fn df(p: &std::path::Path) -> (u64, u64) {
    let s = rustix::fs::statvfs(p).unwrap();
    (s.f_bfree * s.f_frsize, s.f_blocks * s.f_frsize)
}

fn metadata_counts_against_size_and_inodes_are_bounded(mount: Mounter) {
    use std::os::unix::fs::symlink;
    let Some(m) = mount(MemFsOptions { size: Some(1 << 20), nr_inodes: Some(2000), ..Default::default() })
    else {
        return;
    };
    let (free0, total) = df(&m.mnt);
    assert_eq!(free0, total, "an empty memfs uses nothing");
    // Symlinks with 4000-byte targets: about 4.3 KiB each is charged, so a 1 MiB memfs takes
    // fewer than 250 (without the charge it would take them until memory runs out).
    let target = "t".repeat(4000);
    let mut made = 0;
    let err = loop {
        match symlink(&target, m.path(&format!("l{made}"))) {
            Ok(()) => made += 1,
            Err(e) => break e,
        }
        assert!(made < 1000, "symlink targets are not charged against size=");
    };
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    assert!((200..250).contains(&made), "{made} symlinks of 4000 bytes in 1 MiB");
    assert!(df(&m.mnt).0 < 8192, "df must show the space as used: {:?}", df(&m.mnt));
    for i in 0..made {
        fs::remove_file(m.path(&format!("l{i}"))).unwrap();
    }
    // Released once the kernel forgets the inodes (right after the unlinks).
    let released = || common::wait_until(Duration::from_secs(10), || df(&m.mnt).0 == total);
    assert!(released(), "symlinks not released: {:?}", df(&m.mnt));
    // xattrs: charged, and one inode holds at most 256 KiB of them.
    let f = m.path("x");
    fs::write(&f, b"").unwrap();
    let value = vec![b'v'; 60_000];
    let mut set = 0;
    let err = loop {
        match rustix::fs::setxattr(
            &f,
            format!("user.a{set}").as_str(),
            &value,
            rustix::fs::XattrFlags::empty(),
        ) {
            Ok(()) => set += 1,
            Err(e) => break e,
        }
        assert!(set < 100, "xattrs are not bounded");
    };
    assert_eq!(err, rustix::io::Errno::NOSPC);
    assert_eq!(set, 4, "256 KiB of xattrs per inode");
    let (free, _) = df(&m.mnt);
    assert!(free <= total - 4 * 60_000, "xattrs must show as used: {free} of {total} free");
    fs::remove_file(&f).unwrap();
    assert!(released(), "xattrs not released: {:?}", df(&m.mnt));
    // Inodes: nr_inodes=2000 (the root is one).
    let mut n = 0;
    let err = loop {
        match fs::File::create(m.path(&format!("f{n}"))) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
        assert!(n < 3000, "nr_inodes is not enforced");
    };
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    assert_eq!(n, 1999);
    for i in 0..n {
        fs::remove_file(m.path(&format!("f{i}"))).unwrap();
    }
    // Everything removed: everything released (what the kernel still holds is forgotten).
    assert!(released(), "space not released: {:?}", df(&m.mnt));
}

/// Another user fills memfs (names and inodes) until ENOSPC; root can still create, as on
/// ext4 with reserved blocks (5 % of size= and nr_inodes= by default), and statfs shows the
/// reserve (bavail < bfree).
fn root_keeps_a_reserve_when_other_users_fill_it(mount: Mounter) {
    use std::os::unix::process::CommandExt;
    let opts = MemFsOptions {
        size: Some(1 << 20),
        nr_inodes: Some(2000),
        root_mode: Some(0o1777),
        ..Default::default()
    };
    let Some(m) = mount(opts) else { return };
    let s = rustix::fs::statvfs(&m.mnt).unwrap();
    assert!(s.f_bavail < s.f_bfree, "the reserve shows in statfs: {} < {}", s.f_bavail, s.f_bfree);
    // As nobody: empty files with long names until ENOSPC.
    let script = r#"i=0; while true > "$1/$(printf '%0200d' $i)" 2>/dev/null; do i=$((i+1)); done; echo $i"#;
    let out = std::process::Command::new("sh")
        .args(["-c", script, "sh"])
        .arg(&m.mnt)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let made: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    // Each file costs 256 + 96 + 200 bytes: 95 % of 1 MiB holds about 1800 of them.
    assert!((1700..1900).contains(&made), "nobody made {made} files");
    for i in 0..50 {
        fs::write(m.path(&format!("root{i}")), b"").unwrap_or_else(|e| panic!("root's file {i}: {e}"));
    }
    fs::create_dir(m.path("rootdir")).unwrap();
}

fn sparse_files_punch_hole_and_seek(mount: Mounter) {
    use rustix::fs::{fallocate, seek, FallocateFlags, SeekFrom};
    let Some(m) = mount(MemFsOptions::default()) else { return };
    let p = m.path("sparse");
    let f = fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&p).unwrap();
    rustix::io::pwrite(&f, &[7u8; 4096], 1 << 20).unwrap();
    let meta = f.metadata().unwrap();
    assert_eq!(meta.len(), (1 << 20) + 4096);
    assert!(meta.blocks() * 512 < 1 << 20, "hole must not be allocated: {} blocks", meta.blocks());
    assert_eq!(seek(&f, SeekFrom::Data(0)).unwrap(), 1 << 20);
    assert_eq!(seek(&f, SeekFrom::Hole(1 << 20)).unwrap(), (1 << 20) + 4096);
    // Preallocate past the end without changing the size.
    fallocate(&f, FallocateFlags::KEEP_SIZE, 2 << 20, 1 << 20).unwrap();
    assert_eq!(f.metadata().unwrap().len(), (1 << 20) + 4096);
    // Punch the data out: reads zeros, space is freed.
    fallocate(&f, FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE, 0, 2 << 20).unwrap();
    let back = fs::read(&p).unwrap();
    assert!(back.iter().all(|&b| b == 0));
    assert_eq!(seek(&f, SeekFrom::Data(0)).unwrap_err(), rustix::io::Errno::NXIO);
}

fn permissions_are_enforced_for_other_users(mount: Mounter) {
    let Some(m) = mount(MemFsOptions { root_mode: Some(0o1777), ..Default::default() }) else { return };
    let private = m.path("private");
    fs::write(&private, b"secret").unwrap();
    fs::set_permissions(&private, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = std::process::Command::new("cat").arg(&private).uid(65534).gid(65534).output().unwrap();
    assert!(!out.status.success(), "nobody must not read a 0600 root file");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
    // Files created by another user are owned by that user.
    let theirs = m.path("theirs");
    let st = std::process::Command::new("touch").arg(&theirs).uid(65534).gid(65534).status().unwrap();
    assert!(st.success());
    let meta = fs::metadata(&theirs).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
}

use std::os::unix::process::CommandExt;

/// Malformed requests the kernel never sends still get an answer: a LINK of a directory into
/// itself (old node id = new parent) deadlocked the worker on the directory's lock (found by
/// the `server` fuzz target); it is EPERM.
#[test]
fn a_directory_linked_into_itself_is_eperm_not_a_deadlock() {
    use fusebox::abi;
    use fusebox::session::{Capabilities, IntoHandler, Server};
    use fusebox::transport::{mem::MemChannel, ReplyChannel};
    use zerocopy::{FromBytes, IntoBytes};
    let reply = within(Duration::from_secs(20), || {
        let fs = Arc::new(MemFs::new(MemFsOptions::default()));
        let server = Server::new(fs.into_handler(), Capabilities::default(), Default::default(), false);
        let chan = Arc::new(MemChannel::new());
        let dyn_chan: Arc<dyn ReplyChannel> = chan.clone();
        let frame = |opcode, unique, nodeid, body: &[u8]| {
            let len = (std::mem::size_of::<abi::fuse_in_header>() + body.len()) as u32;
            let h = abi::fuse_in_header { len, opcode, unique, nodeid, ..Default::default() };
            [h.as_bytes(), body].concat()
        };
        let init = abi::fuse_init_in { major: 7, minor: 45, max_readahead: 1 << 20, ..Default::default() };
        server.handle(&frame(abi::opcode::FUSE_INIT, 1, 0, init.as_bytes()), &dyn_chan);
        chan.next_reply(Duration::from_secs(5)).expect("INIT answered");
        let link = abi::fuse_link_in { oldnodeid: abi::FUSE_ROOT_ID };
        let body = [link.as_bytes(), b"again\0"].concat();
        server.handle(&frame(abi::opcode::FUSE_LINK, 2, abi::FUSE_ROOT_ID, &body), &dyn_chan);
        chan.next_reply(Duration::from_secs(5)).expect("LINK answered")
    });
    let (out, _) = abi::fuse_out_header::read_from_prefix(&reply).expect("a reply header");
    assert_eq!((out.unique, out.error), (2, -libc::EPERM));
}
