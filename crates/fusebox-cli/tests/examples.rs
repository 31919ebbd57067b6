//! The library's examples (crates/fusebox/examples), built by the workspace's test build, mount
//! and serve what they promise: `hello` (sync API) and `hello_async` (async API).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::*;

/// target/<profile>/examples/NAME, next to the deps directory this test runs from.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built: run the tests of the whole workspace (cargo nextest run --workspace), which builds examples",
        path.display()
    );
    path
}

/// An example serving a temp mountpoint; unmounted and reaped on drop.
struct Served {
    _dir: tempfile::TempDir,
    mnt: PathBuf,
    child: Child,
}

impl Served {
    fn start(name: &str) -> Served {
        let dir = tempfile::Builder::new().prefix("fusebox-example-").tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let child = Command::new(example(name)).arg(&mnt).stdin(Stdio::null()).spawn().unwrap();
        let s = Served { _dir: dir, mnt, child };
        assert!(
            wait_until(Duration::from_secs(20), || fusebox::session::is_mount_point(&s.mnt)),
            "{name} did not mount"
        );
        s
    }

    /// Unmount the way a user would and check that the example then exits successfully.
    fn finish(mut self) {
        fusebox::session::unmount(&self.mnt).unwrap();
        assert!(wait_until(Duration::from_secs(10), || self.child.try_wait().is_ok_and(|s| s.is_some())));
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if fusebox::session::is_mount_point(&self.mnt) {
            let _ = fusebox::sys::umount(&self.mnt, libc::MNT_DETACH);
        }
        if !wait_until(Duration::from_secs(5), || self.child.try_wait().is_ok_and(|s| s.is_some())) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

/// Mount example `name` (unless mounting is impossible here) and check that it lists one
/// read-only file `file` holding `text`, refuses new files and knows no other name.
fn serves_one_file(name: &str, file: &str, text: &str) -> Option<Served> {
    if !can_mount() {
        return None;
    }
    let s = Served::start(name);
    assert_eq!(names(&s.mnt), [file]);
    let f = s.mnt.join(file);
    assert_eq!(std::fs::read_to_string(&f).unwrap(), text);
    let meta = std::fs::metadata(&f).unwrap();
    assert_eq!((meta.len(), meta.permissions().readonly()), (text.len() as u64, true));
    assert!(std::fs::write(s.mnt.join("new"), b"x").is_err(), "a read-only file system accepted a file");
    assert_eq!(std::fs::metadata(s.mnt.join("nope")).unwrap_err().kind(), std::io::ErrorKind::NotFound);
    Some(s)
}

#[test]
fn hello_serves_one_read_only_file() {
    let Some(s) = serves_one_file("hello", "hello", "Hello from fusebox!\n") else { return };
    s.finish();
}

#[test]
fn hello_async_serves_its_file_from_async_tasks() {
    let text = "Hello from an async fusebox file system!\n";
    let Some(s) = serves_one_file("hello_async", "greeting", text) else { return };
    // Reading at an offset goes through the async read.
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 5];
    let n = std::fs::File::open(s.mnt.join("greeting")).unwrap().read_at(&mut buf, 6).unwrap();
    assert_eq!(&buf[..n], b"from ");
    s.finish();
}
