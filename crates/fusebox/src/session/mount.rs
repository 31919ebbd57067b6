//! Mounting and unmounting: mount(2) as root, fusermount3 otherwise; mountpoint checks.

use super::options::MountOptions;
use crate::sys;
use crate::transport::devfuse::DevFuse;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a mount or unmount failed. Each message is one clear line for the user.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The mountpoint does not exist.
    #[error("mountpoint {0} does not exist")]
    MountpointMissing(PathBuf),
    /// The mountpoint is not a directory.
    #[error("mountpoint {0} is not a directory")]
    NotADirectory(PathBuf),
    /// Something is already mounted there.
    #[error("{0} is already a mount point (unmount it first: fusebox umount {0})")]
    AlreadyMounted(PathBuf),
    /// Nothing is mounted there.
    #[error("{0} is not a mount point")]
    NotMounted(PathBuf),
    /// `/dev/fuse` cannot be opened.
    #[error(
        "/dev/fuse is unavailable ({0}); load the fuse module (modprobe fuse) or run where /dev/fuse exists"
    )]
    DevFuseUnavailable(io::Error),
    /// The caller may not mount or unmount.
    #[error("not permitted to {action} {path}: {err}")]
    NotPermitted {
        /// "mount" or "unmount".
        action: &'static str,
        /// The mountpoint.
        path: PathBuf,
        /// The OS error.
        err: io::Error,
    },
    /// fusermount3 is needed but missing.
    #[error("fusermount3 not found: install the fuse3 package to mount without root")]
    FusermountMissing,
    /// An unprivileged mount asked for allow_other, which /etc/fuse.conf does not permit.
    #[error(
        "allow_other needs root or a line 'user_allow_other' in {FUSE_CONF} (fusermount3 refuses it otherwise)"
    )]
    AllowOtherNotPermitted,
    /// The mount point is busy.
    #[error("{0} is busy (files are open or a process has its cwd inside)")]
    Busy(PathBuf),
    /// Anything else.
    #[error("{action} {path}: {err}")]
    Other {
        /// "mount", "unmount" or "stat".
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        err: io::Error,
    },
}

/// Decode the octal escapes (`\040` for space) mountinfo uses in paths.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            if let Ok(v) = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("x"), 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Is `path` (absolute, canonical) a mount point? Reads /proc/self/mountinfo.
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    info.lines().filter_map(|l| l.split(' ').nth(4)).any(|mp| Path::new(&unescape_mountinfo(mp)) == path)
}

/// Where the kernel's fuse control file system lists one directory per FUSE connection.
pub const FUSE_CONNECTIONS: &str = "/sys/fs/fuse/connections";

/// The FUSE connection id of the mount at `path` (absolute): its device number in the
/// kernel's encoding (`major << 20 | minor`), the name of its directory under
/// [`FUSE_CONNECTIONS`]. Read from /proc/self/mountinfo, so a hung mount is never touched.
pub fn fuse_connection_id(path: &Path) -> Option<u32> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    // The last entry wins: it is the one on top when several are stacked.
    info.lines().rev().find_map(|l| {
        let fields: Vec<&str> = l.split(' ').collect();
        let sep = fields.iter().position(|f| *f == "-")?;
        let fstype = fields.get(sep + 1)?;
        if Path::new(&unescape_mountinfo(fields.get(4)?)) != path
            || !(*fstype == "fuse" || fstype.starts_with("fuse."))
        {
            return None;
        }
        let (major, minor) = fields.get(2)?.split_once(':')?;
        Some(major.parse::<u32>().ok()? << 20 | minor.parse::<u32>().ok()?)
    })
}

/// End the FUSE mount at `mountpoint` without its daemon's help: abort the connection through
/// the fuse control file system (mounting it at [`FUSE_CONNECTIONS`] if needed; every request
/// waiting on the daemon fails with ENOTCONN), then detach the mount. Returns the connection
/// id. For a daemon that hangs; `unmount` is the clean way.
pub fn abort(mountpoint: &Path) -> Result<u32, MountError> {
    let abs = absolute(mountpoint).map_err(|_| MountError::MountpointMissing(mountpoint.into()))?;
    let id = fuse_connection_id(&abs).ok_or_else(|| MountError::NotMounted(abs.clone()))?;
    let conns = Path::new(FUSE_CONNECTIONS);
    if !is_mount_point(conns) {
        sys::mount("fusectl", conns, "fusectl", 0, "").map_err(|err| MountError::Other {
            action: "mount the fuse control file system at",
            path: conns.into(),
            err,
        })?;
    }
    let file = conns.join(id.to_string()).join("abort");
    std::fs::write(&file, b"1").map_err(|err| match err.kind() {
        io::ErrorKind::PermissionDenied => {
            MountError::NotPermitted { action: "abort", path: file.clone(), err }
        }
        _ => MountError::Other { action: "abort the connection through", path: file.clone(), err },
    })?;
    if sys::geteuid() == 0 {
        sys::umount(&abs, libc::MNT_DETACH).map_err(|err| MountError::Other {
            action: "detach",
            path: abs.clone(),
            err,
        })?;
    } else {
        fusermount_unmount(&abs, true)?;
    }
    #[cfg(feature = "serde")]
    super::control::remove_stale_socket(&abs);
    Ok(id)
}

/// `fusermount3 -u` (with `lazy`, `-z`) of `abs`: unmounting for a user who may not call
/// umount2(2).
fn fusermount_unmount(abs: &Path, lazy: bool) -> Result<(), MountError> {
    let fusermount = fusermount_path().ok_or(MountError::FusermountMissing)?;
    let mut cmd = Command::new(fusermount);
    cmd.arg("-u");
    if lazy {
        cmd.arg("-z");
    }
    let out = cmd.arg("--").arg(abs).output().map_err(|e| MountError::Other {
        action: "unmount",
        path: abs.into(),
        err: e,
    })?;
    if out.status.success() {
        Ok(())
    } else {
        let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(MountError::NotPermitted { action: "unmount", path: abs.into(), err: io::Error::other(msg) })
    }
}

/// The absolute form of `path` without resolving the final component's mount (a dead FUSE
/// mount cannot be stat'ed, so canonicalize only the parent).
pub fn absolute(path: &Path) -> io::Result<PathBuf> {
    let abs = if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir()?.join(path) };
    match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) => Ok(parent.canonicalize()?.join(name)),
        _ => Ok(abs),
    }
}

/// Check that `path` is an existing directory that is not already a mount point; returns its
/// absolute path.
pub fn check_mountpoint(path: &Path) -> Result<PathBuf, MountError> {
    let abs = absolute(path).map_err(|_| MountError::MountpointMissing(path.to_path_buf()))?;
    match std::fs::metadata(&abs) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(MountError::MountpointMissing(abs)),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => return Err(MountError::AlreadyMounted(abs)),
        Err(e) => return Err(MountError::Other { action: "stat", path: abs, err: e }),
        Ok(m) if !m.is_dir() => return Err(MountError::NotADirectory(abs)),
        Ok(_) => {}
    }
    if is_mount_point(&abs) {
        return Err(MountError::AlreadyMounted(abs));
    }
    Ok(abs)
}

/// Mount a FUSE file system at `mountpoint` (already checked) and return the connected device.
pub fn mount(mountpoint: &Path, opts: &MountOptions) -> Result<DevFuse, MountError> {
    if sys::geteuid() == 0 {
        mount_as_root(mountpoint, opts)
    } else {
        mount_with_fusermount(mountpoint, opts)
    }
}

fn fstype(opts: &MountOptions) -> String {
    match &opts.subtype {
        Some(s) => format!("fuse.{s}"),
        None => "fuse.fusebox".to_string(),
    }
}

fn mount_as_root(mountpoint: &Path, opts: &MountOptions) -> Result<DevFuse, MountError> {
    let dev = DevFuse::open().map_err(MountError::DevFuseUnavailable)?;
    let root_mode = std::fs::metadata(mountpoint).map(|m| m.mode() & libc::S_IFMT).unwrap_or(libc::S_IFDIR);
    let (uid, gid) = sys::getuid_gid();
    let mut data = format!("fd={},rootmode={:o},user_id={uid},group_id={gid}", dev.raw_fd(), root_mode);
    if opts.default_permissions {
        data.push_str(",default_permissions");
    }
    if opts.allow_other {
        data.push_str(",allow_other");
    }
    let mut flags = 0u64;
    for (on, bit) in [
        (opts.read_only, libc::MS_RDONLY),
        (!opts.suid, libc::MS_NOSUID),
        (!opts.dev, libc::MS_NODEV),
        (opts.noexec, libc::MS_NOEXEC),
        (opts.noatime, libc::MS_NOATIME),
    ] {
        if on {
            flags |= bit;
        }
    }
    let source = opts.fsname.clone().unwrap_or_else(|| "fusebox".to_string());
    sys::mount(&source, mountpoint, &fstype(opts), flags, &data).map_err(|e| match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            MountError::NotPermitted { action: "mount", path: mountpoint.into(), err: e }
        }
        Some(libc::EBUSY) => MountError::AlreadyMounted(mountpoint.into()),
        _ => MountError::Other { action: "mount", path: mountpoint.into(), err: e },
    })?;
    Ok(dev)
}

fn fusermount_path() -> Option<PathBuf> {
    ["/usr/bin/fusermount3", "/bin/fusermount3", "/usr/local/bin/fusermount3"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// fusermount3's configuration: `user_allow_other` lets users mount with allow_other.
pub const FUSE_CONF: &str = "/etc/fuse.conf";

/// True if `conf` (the text of /etc/fuse.conf) has an uncommented `user_allow_other` line.
fn permits_allow_other(conf: &str) -> bool {
    conf.lines().map(|l| l.split('#').next().unwrap_or("").trim()).any(|l| l == "user_allow_other")
}

fn mount_with_fusermount(mountpoint: &Path, opts: &MountOptions) -> Result<DevFuse, MountError> {
    if opts.allow_other && !std::fs::read_to_string(FUSE_CONF).is_ok_and(|c| permits_allow_other(&c)) {
        return Err(MountError::AllowOtherNotPermitted);
    }
    let fusermount = fusermount_path().ok_or(MountError::FusermountMissing)?;
    let (ours, theirs) = sys::socketpair_for_child().map_err(|e| MountError::Other {
        action: "mount",
        path: mountpoint.into(),
        err: e,
    })?;
    let mut o = vec![format!("fsname={}", opts.fsname.as_deref().unwrap_or("fusebox"))];
    o.push(format!("subtype={}", opts.subtype.as_deref().unwrap_or("fusebox")));
    for (on, name) in [
        (opts.default_permissions, "default_permissions"),
        (opts.allow_other, "allow_other"),
        (opts.read_only, "ro"),
        (opts.noexec, "noexec"),
        (opts.noatime, "noatime"),
        (true, "nosuid"),
        (true, "nodev"),
    ] {
        if on {
            o.push(name.to_string());
        }
    }
    use std::os::fd::AsRawFd;
    let status = Command::new(&fusermount)
        .arg("-o")
        .arg(o.join(","))
        .arg("--")
        .arg(mountpoint)
        .env("_FUSE_COMMFD", theirs.as_raw_fd().to_string())
        .status()
        .map_err(|e| MountError::Other { action: "mount", path: mountpoint.into(), err: e })?;
    drop(theirs);
    if !status.success() {
        return Err(MountError::NotPermitted {
            action: "mount",
            path: mountpoint.into(),
            err: io::Error::other(format!("fusermount3 exited with {status}")),
        });
    }
    let fd = sys::recv_fd(ours.as_fd()).map_err(|e| MountError::Other {
        action: "mount",
        path: mountpoint.into(),
        err: e,
    })?;
    Ok(DevFuse::from_owned(fd))
}

/// Unmount `mountpoint`: umount2(2) as root, `fusermount3 -u` otherwise. Works on dead mounts
/// (daemon killed) too.
pub fn unmount(mountpoint: &Path) -> Result<(), MountError> {
    let abs = absolute(mountpoint).map_err(|_| MountError::MountpointMissing(mountpoint.into()))?;
    unmount_path(&abs)?;
    // A daemon that was killed could not remove its control socket; a live one removes its
    // own as it exits.
    #[cfg(feature = "serde")]
    super::control::remove_stale_socket(&abs);
    Ok(())
}

fn unmount_path(abs: &Path) -> Result<(), MountError> {
    let abs = abs.to_path_buf();
    if !is_mount_point(&abs) {
        return Err(MountError::NotMounted(abs));
    }
    if sys::geteuid() == 0 {
        return sys::umount(&abs, 0).map_err(|e| match e.raw_os_error() {
            Some(libc::EBUSY) => MountError::Busy(abs.clone()),
            Some(libc::EPERM) => MountError::NotPermitted { action: "unmount", path: abs.clone(), err: e },
            _ => MountError::Other { action: "unmount", path: abs.clone(), err: e },
        });
    }
    fusermount_unmount(&abs, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuse_conf_user_allow_other() {
        assert!(permits_allow_other("# comment\nuser_allow_other\n"));
        assert!(permits_allow_other("  user_allow_other  # yes\n"));
        assert!(!permits_allow_other("#user_allow_other\nmount_max = 1000\n"));
        assert!(!permits_allow_other(""));
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo("/tmp/a\\040b"), "/tmp/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/end\\"), "/end\\");
    }

    #[test]
    fn root_is_a_mount_point_and_missing_paths_are_reported() {
        assert!(is_mount_point(Path::new("/")));
        let missing = std::env::temp_dir().join("fusebox-definitely-missing-dir");
        assert!(matches!(check_mountpoint(&missing), Err(MountError::MountpointMissing(_))));
    }
}
