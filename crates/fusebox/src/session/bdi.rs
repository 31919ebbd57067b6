//! The mount's backing device info (BDI) in sysfs: readahead and the dirty-page share.
//!
//! Every FUSE mount has a BDI named after its device number (`/sys/class/bdi/0:NN`). Two of its
//! knobs decide streaming speed and only root may write them:
//! - `read_ahead_kb`: the kernel offers at most 128 KiB of readahead in INIT, so a sequential
//!   reader gets READs of 128–256 KiB although a request may carry 1 MiB. Raising it to the
//!   request size makes the same read arrive as 1 MiB READs.
//! - `max_ratio`: FUSE BDIs are STRICTLIMIT with 1 % of the dirty-page budget, so writers are
//!   throttled early and scattered writes go out as many small WRITEs.

use std::io;
use std::path::{Path, PathBuf};

/// Default readahead fusebox sets (as root) when `read_ahead_kb=` is not given: four full
/// 1 MiB requests, so a sequential reader's READs carry as much as a WRITE can and several
/// are in flight while the daemon waits for its backing storage (a quick sweep of 1024, 2048,
/// 4096 and 8192 on cold 256 MiB reads favoured 4096; workload b in docs/BENCHMARKS.md is
/// measured with it).
pub const DEFAULT_READ_AHEAD_KB: u32 = 4096;

/// The sysfs directory of the BDI of the file system mounted at `mountpoint` (absolute).
///
/// Found in `/proc/self/mountinfo`, never by stat(2) on the mountpoint: the daemon calls this
/// before it serves requests, and a stat of its own mount would wait for itself.
pub fn bdi_dir(mountpoint: &Path) -> io::Result<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let dev = device_of(&info, mountpoint).ok_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, format!("{} is not a mount point", mountpoint.display()))
    })?;
    Ok(PathBuf::from(format!("/sys/class/bdi/{dev}")))
}

/// The `major:minor` of the last mount at `mountpoint` in mountinfo text (mount points are
/// octal-escaped there: space, tab, newline and backslash).
fn device_of(mountinfo: &str, mountpoint: &Path) -> Option<String> {
    let want = mountpoint
        .to_str()?
        .replace('\\', "\\134")
        .replace(' ', "\\040")
        .replace('\t', "\\011")
        .replace('\n', "\\012");
    mountinfo
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let (_id, _parent, dev, _root, point) = (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
            (point == want).then(|| dev.to_string())
        })
        .next_back()
}

fn write_knob(dir: &Path, knob: &str, value: u32) -> io::Result<()> {
    std::fs::write(dir.join(knob), format!("{value}\n"))
}

/// Read a numeric BDI knob (`read_ahead_kb`, `max_ratio`, …) of the mount at `mountpoint`.
pub fn read_knob(mountpoint: &Path, knob: &str) -> io::Result<u32> {
    let s = std::fs::read_to_string(bdi_dir(mountpoint)?.join(knob))?;
    s.trim().parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{knob}: {s:?}")))
}

/// Apply the readahead and dirty-ratio settings to the mount at `mountpoint`. A setting the
/// user asked for that cannot be applied is a warning; the default readahead is applied where
/// permitted (root) and a refusal is logged at debug level.
pub(crate) fn tune(mountpoint: &Path, read_ahead_kb: Option<u32>, max_ratio: Option<u32>) {
    let dir = match bdi_dir(mountpoint) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "cannot find the mount's BDI; readahead and max_ratio left alone");
            return;
        }
    };
    let ra = read_ahead_kb.unwrap_or(DEFAULT_READ_AHEAD_KB);
    match write_knob(&dir, "read_ahead_kb", ra) {
        Ok(()) => tracing::debug!(kb = ra, bdi = %dir.display(), "readahead set"),
        Err(e) if read_ahead_kb.is_some() => {
            tracing::warn!(error = %e, bdi = %dir.display(), "could not set read_ahead_kb")
        }
        Err(e) => tracing::debug!(error = %e, "kernel readahead left at its default (not root?)"),
    }
    if let Some(pct) = max_ratio {
        if let Err(e) = write_knob(&dir, "max_ratio", pct) {
            tracing::warn!(error = %e, bdi = %dir.display(), "could not set max_ratio");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_of_takes_the_last_mount_at_the_point() {
        let info = "22 1 253:0 / / rw - ext4 /dev/vda rw\n\
                    40 22 0:50 / /mnt/a\\040b rw - fuse.memfs memfs rw\n\
                    41 40 0:51 / /mnt/a\\040b rw - fuse.memfs memfs rw\n";
        assert_eq!(device_of(info, Path::new("/mnt/a b")).as_deref(), Some("0:51"));
        assert_eq!(device_of(info, Path::new("/")).as_deref(), Some("253:0"));
        assert_eq!(device_of(info, Path::new("/mnt")), None);
    }

    #[test]
    fn bdi_dir_names_the_device() {
        let d = bdi_dir(Path::new("/")).unwrap();
        let name = d.file_name().unwrap().to_str().unwrap();
        let (maj, min) = name.split_once(':').unwrap();
        assert!(maj.parse::<u32>().is_ok() && min.parse::<u32>().is_ok(), "{name}");
        assert!(bdi_dir(Path::new("/no/such/path")).is_err());
    }
}
