//! Workload (e): create, stat and unlink N empty files in one directory, each phase timed.
//!
//! create = `open(O_WRONLY|O_CREAT|O_EXCL)` + `close`; stat = `lstat`; unlink = `unlink`. One
//! file at a time from one thread, no cache dropping between phases (a stat right after the
//! create is expected to be served from the kernel's attribute cache).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The three phases, in order.
pub const PHASES: [&str; 3] = ["create", "stat", "unlink"];

/// The directory (inside a variant's directory) workload e works in.
pub const DIR_NAME: &str = "e-files";

/// Run the workload in `parent/e-files`. `boundary(k)` is called before phase k (k = 0, 1, 2)
/// and after the last one (k = 3), outside the timed sections (for counter snapshots).
/// Returns each phase's duration, seconds.
pub fn run(
    parent: &Path, files: usize, stop: &AtomicBool, mut boundary: impl FnMut(usize) -> Result<()>,
) -> Result<[f64; 3]> {
    let dir = parent.join(DIR_NAME);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = phases(&dir, files, stop, &mut boundary);
    // Leftovers only after an error; the unlink phase empties the directory otherwise.
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn phases(
    dir: &Path, files: usize, stop: &AtomicBool, boundary: &mut impl FnMut(usize) -> Result<()>,
) -> Result<[f64; 3]> {
    let paths: Vec<PathBuf> = (0..files).map(|i| dir.join(format!("f{i:07}"))).collect();
    let mut secs = [0.0; 3];
    for (k, phase) in PHASES.iter().enumerate() {
        boundary(k)?;
        let t = Instant::now();
        for (i, p) in paths.iter().enumerate() {
            if i % 1024 == 0 && stop.load(Ordering::Relaxed) {
                bail!("interrupted");
            }
            let r = match k {
                0 => std::fs::OpenOptions::new().write(true).create_new(true).open(p).map(drop),
                1 => std::fs::symlink_metadata(p).map(drop),
                _ => std::fs::remove_file(p),
            };
            r.with_context(|| format!("{phase} {}", p.display()))?;
        }
        secs[k] = t.elapsed().as_secs_f64();
    }
    boundary(PHASES.len())?;
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_all_phases_and_cleans_up() {
        let tmp = tempfile::tempdir().unwrap();
        let stop = AtomicBool::new(false);
        let mut seen = Vec::new();
        let secs = run(tmp.path(), 50, &stop, |k| {
            let n = std::fs::read_dir(tmp.path().join(DIR_NAME)).unwrap().count();
            seen.push((k, n));
            Ok(())
        })
        .unwrap();
        assert!(secs.iter().all(|s| *s > 0.0), "{secs:?}");
        // Before create: empty; before stat and unlink: 50 files; after unlink: empty.
        assert_eq!(seen, vec![(0, 0), (1, 50), (2, 50), (3, 0)]);
        assert!(!tmp.path().join(DIR_NAME).exists());
    }

    #[test]
    fn stops_and_cleans_up() {
        let tmp = tempfile::tempdir().unwrap();
        let stop = AtomicBool::new(true);
        assert!(run(tmp.path(), 10, &stop, |_| Ok(())).is_err());
        assert!(!tmp.path().join(DIR_NAME).exists());
        // A failing boundary hook aborts too.
        let stop = AtomicBool::new(false);
        let e = run(tmp.path(), 10, &stop, |k| if k == 2 { bail!("hook") } else { Ok(()) }).unwrap_err();
        assert_eq!(e.to_string(), "hook");
        assert!(!tmp.path().join(DIR_NAME).exists());
    }
}
