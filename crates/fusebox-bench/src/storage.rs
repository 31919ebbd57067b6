//! The one loop-device helper of the benchmarks: a sparse ext4 image (lazy init off, so no
//! background initialization skews the first runs) on a loop device attached with direct IO
//! (O_DIRECT through the image reaches the disk), mounted. The harness keeps it in its
//! [`Guard`](crate::system::Guard); the scripts get it from `fusebox bench tool loop-up`.

use crate::system::sh;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// A mounted ext4 image on a direct-IO loop device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopExt4 {
    /// The image file.
    pub image: PathBuf,
    /// The loop device (`/dev/loopN`).
    pub device: String,
    /// Where the file system is mounted.
    pub mountpoint: PathBuf,
}

impl LoopExt4 {
    /// Create `image` of `size` bytes, format it, attach it and mount it at `mountpoint` (made
    /// if missing). What was set up before a step failed is undone.
    pub fn create(image: &Path, size: u64, mountpoint: &Path) -> Result<LoopExt4> {
        let f = std::fs::File::create(image).with_context(|| format!("creating {}", image.display()))?;
        f.set_len(size).context("sizing the image")?;
        drop(f);
        let img = image.to_str().context("image path is not UTF-8")?;
        let undo_image = |e: anyhow::Error| {
            let _ = std::fs::remove_file(image);
            e
        };
        sh("mkfs.ext4", &["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", img])
            .map_err(undo_image)?;
        let device = sh("losetup", &["--direct-io=on", "--find", "--show", img]).map_err(undo_image)?;
        let mut l = LoopExt4 { image: image.into(), device, mountpoint: mountpoint.into() };
        let mounted = std::fs::create_dir_all(mountpoint).context("creating the mountpoint").and_then(|()| {
            sh("mount", &[&l.device, mountpoint.to_str().context("mountpoint is not UTF-8")?])
        });
        if let Err(e) = mounted {
            l.mountpoint = PathBuf::new();
            l.remove();
            return Err(e);
        }
        Ok(l)
    }

    /// The image set up by [`LoopExt4::create`] with this `image` and `mountpoint`, found again
    /// from the system (`losetup -j`).
    pub fn find(image: &Path, mountpoint: &Path) -> Result<LoopExt4> {
        let img = image.to_str().context("image path is not UTF-8")?;
        let listed = sh("losetup", &["-j", img])?;
        let device =
            listed.split(':').next().filter(|d| !d.is_empty()).context("the image is not attached")?;
        Ok(LoopExt4 { image: image.into(), device: device.to_string(), mountpoint: mountpoint.into() })
    }

    /// Unmount, detach and delete the image; every step is tried, the failures are reported.
    pub fn remove(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if !self.mountpoint.as_os_str().is_empty() {
            match sh("umount", &[&self.mountpoint.to_string_lossy()]) {
                // The mountpoint was made by `create`; an empty one is ours to remove.
                Ok(_) => {
                    let _ = std::fs::remove_dir(&self.mountpoint);
                }
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        if let Err(e) = sh("losetup", &["-d", &self.device]) {
            errors.push(format!("{e:#}"));
        }
        if let Err(e) = std::fs::remove_file(&self.image) {
            errors.push(format!("removing {}: {e}", self.image.display()));
        }
        errors
    }
}
