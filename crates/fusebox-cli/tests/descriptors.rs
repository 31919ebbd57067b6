//! Descriptors: a process can hold as many files open through a passthrough mount as it
//! could in SOURCE under the same RLIMIT_NOFILE, because the daemon (under the same limit)
//! keeps a bounded number of descriptors for open files; meanwhile other users of the mount
//! (listing, creating, reading) keep working.

mod support;

use std::fs;
use std::path::Path;
use support::*;

/// Open `dir/f{i}` for reading and writing, i = 0.., until the process runs out of
/// descriptors (EMFILE) or of files; the files stay open in the returned vector.
fn open_until_emfile(dir: &Path, files: usize) -> Vec<fs::File> {
    let mut held = Vec::new();
    for i in 0..files {
        match fs::OpenOptions::new().read(true).write(true).open(dir.join(format!("f{i}"))) {
            Ok(f) => held.push(f),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
            Err(e) => panic!("open of f{i} failed with {e} after {} files", held.len()),
        }
    }
    held
}

#[test]
fn a_process_opens_as_many_files_through_the_mount_as_natively() {
    fusebox_testkit::skip_unless!();
    let limit =
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(1024) as usize;
    // The daemon's own data path (write-back) and kernel passthrough.
    for opts in ["writeback", "kernel_passthrough"] {
        let d = Daemon::start("passthrough", opts);
        let files = limit + 16;
        for i in 0..files {
            fs::write(d.src.join(format!("f{i}")), b"x").unwrap();
        }
        let native = open_until_emfile(&d.src, files).len();
        let mut through = open_until_emfile(&d.mnt, files);
        assert_eq!(
            through.len(),
            native,
            "-o {opts}: {} files opened through the mount, {native} in SOURCE",
            through.len()
        );
        // While they are held, the mount serves everyone else (the daemon has descriptors).
        // This process needs a few descriptors of its own to spawn the shell (pipes).
        through.truncate(through.len() - 8);
        let other = std::process::Command::new("sh")
            .arg("-c")
            .arg("ls \"$1\" | wc -l && echo new > \"$1/new\" && cat \"$1/f0\"")
            .arg("sh")
            .arg(&d.mnt)
            .output()
            .unwrap();
        assert!(other.status.success(), "-o {opts}: {}", String::from_utf8_lossy(&other.stderr));
        drop(through);
        assert_eq!(fs::read(d.src.join("new")).unwrap(), b"new\n");
    }
}
