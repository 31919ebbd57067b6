//! Permissions changed directly in SOURCE (issue 19): through a passthrough mount with `watch`
//! a chmod applies at once (the watch invalidates the inode's cached attributes); without it
//! the old rights keep working until the attribute timeout (1 s by default) runs out, as the
//! README says.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

/// Whether user nobody can read `path`.
fn nobody_reads(path: &Path) -> bool {
    nobody_cat(path).is_ok()
}

/// `cat path` as user nobody: Ok, or what cat said on stderr.
fn nobody_cat(path: &Path) -> Result<(), String> {
    let out = std::process::Command::new("cat")
        .arg(path)
        .uid(65534)
        .gid(65534)
        .stdout(std::process::Stdio::null())
        .output()
        .unwrap();
    match out.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
    }
}

#[test]
fn a_chmod_in_source_reaches_the_mount_within_its_bound() {
    fusebox_testkit::skip_unless!();
    // With watch: at once (inotify delivers the change in well under 500 ms). Without it: once
    // the 1 s attribute timeout has run out.
    let watched = Duration::from_millis(500);
    let timeout = Duration::from_secs(3);
    for (opts, bound) in [
        ("allow_other,watch", watched),
        ("allow_other,watch,writeback", watched),
        ("allow_other", timeout),
        ("allow_other,writeback", timeout),
    ] {
        let d = Daemon::start("passthrough", opts);
        let top = d.mnt.parent().unwrap();
        fs::set_permissions(top, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&d.src, fs::Permissions::from_mode(0o755)).unwrap();
        let (inside, through) = (d.src.join("f"), d.mnt.join("f"));
        fs::write(&inside, b"secret").unwrap();
        fs::set_permissions(&inside, fs::Permissions::from_mode(0o644)).unwrap();
        // The chmods of SOURCE above are changes made behind the mount too: they arrive within
        // the same bound (the kernel may hold SOURCE's 0700 from the mount's first stat).
        if !wait_until(bound, || nobody_reads(&through)) {
            panic!("-o {opts}: not readable before the chmod: {:?}", nobody_cat(&through));
        }
        // The kernel now holds the file's attributes (mode 0644).
        fs::set_permissions(&inside, fs::Permissions::from_mode(0o600)).unwrap();
        let t = Instant::now();
        assert!(
            wait_until(bound, || !nobody_reads(&through)),
            "-o {opts}: user nobody still reads the file {:?} after the chmod in SOURCE",
            t.elapsed()
        );
        eprintln!("-o {opts}: old rights ended {:?} after the chmod", t.elapsed());
        // And the other way: rights granted in SOURCE arrive too.
        fs::set_permissions(&inside, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(wait_until(bound, || nobody_reads(&through)), "-o {opts}: the chmod back did not arrive");
    }
}
