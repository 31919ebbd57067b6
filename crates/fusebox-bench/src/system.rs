//! Backing storage, fusebox daemons, `/proc` and `/sys` readings.
//!
//! Everything the benchmark creates is registered in a [`Guard`] as soon as it exists; dropping
//! the guard (normal end, error, or Ctrl-C noticed between jobs) unmounts the FUSE mounts
//! (fusebox and peers), waits for their daemons, restores `enable_uring`, removes the
//! directories it made, unmounts the loop mount, detaches the loop device and deletes the image
//! and temp directories.

use crate::storage::LoopExt4;
use anyhow::{bail, Context, Result};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Run a command, failing with its stderr.
pub(crate) fn sh(cmd: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(cmd).args(args).output().with_context(|| format!("running {cmd}"))?;
    if !out.status.success() {
        bail!("{cmd} {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A running FUSE daemon (fusebox or a peer) serving one mount.
pub struct Daemon {
    /// The variant it serves.
    pub name: String,
    /// The mountpoint.
    pub mountpoint: PathBuf,
    /// The foreground daemon process.
    pub child: Child,
    /// `major:minor` of the mount (its BDI name).
    pub dev: String,
    /// Where the daemon's stderr goes.
    pub log: PathBuf,
}

impl Daemon {
    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// The module parameter that allows FUSE over io_uring.
pub const URING_PARAM: &str = "/sys/module/fuse/parameters/enable_uring";

/// Owns everything the benchmark set up.
#[derive(Default)]
pub struct Guard {
    /// Temp directory for mountpoints, logs and the loop mount.
    pub tmp: Option<PathBuf>,
    /// The backing ext4 on a loop device.
    pub backing: Option<LoopExt4>,
    /// Directories created on the backing storage (removed at the end).
    pub made_dirs: Vec<PathBuf>,
    /// Live daemons, in mount order.
    pub daemons: Vec<Daemon>,
    /// The value `enable_uring` had before we set it (restored at the end).
    pub uring_param_before: Option<String>,
}

impl Guard {
    /// Create the temp directory.
    pub fn new() -> Result<Guard> {
        let tmp = std::env::temp_dir().join(format!("fusebox-bench-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut g = Guard::default();
        g.tmp = Some(tmp);
        Ok(g)
    }

    /// The temp directory.
    pub fn tmp(&self) -> &Path {
        self.tmp.as_deref().expect("guard has a temp dir")
    }

    /// Create a sparse ext4 image of `size` bytes in `dir`, attach it to a direct-IO loop device
    /// and mount it; returns the mount directory.
    pub fn setup_loop(&mut self, dir: &Path, size: u64) -> Result<PathBuf> {
        let image = dir.join(format!("fusebox-bench-{}.img", std::process::id()));
        let l = LoopExt4::create(&image, size, &self.tmp().join("backing"))?;
        let mnt = l.mountpoint.clone();
        self.backing = Some(l);
        Ok(mnt)
    }

    /// Create a directory and register it for removal.
    pub fn make_dir(&mut self, d: &Path) -> Result<()> {
        std::fs::create_dir(d).with_context(|| format!("creating {}", d.display()))?;
        self.made_dirs.push(d.to_path_buf());
        Ok(())
    }

    /// Set `enable_uring` to Y (remembering the old value for the end). Fails with the reason
    /// when the kernel has no FUSE over io_uring or the parameter cannot be written.
    pub fn enable_uring(&mut self) -> Result<()> {
        let old = std::fs::read_to_string(URING_PARAM)
            .with_context(|| format!("this kernel has no FUSE over io_uring ({URING_PARAM})"))?;
        let old = old.trim().to_string();
        if old == "Y" {
            return Ok(());
        }
        std::fs::write(URING_PARAM, "Y\n").with_context(|| format!("writing Y to {URING_PARAM}"))?;
        if self.uring_param_before.is_none() {
            self.uring_param_before = Some(old);
        }
        Ok(())
    }

    /// Start `fusebox mount ARGS MNT -o OPTS -f` from our own executable and wait for the mount.
    pub fn mount_fusebox(
        &mut self, name: &str, fs_args: &[&str], mountpoint: &Path, opts: &str,
    ) -> Result<&Daemon> {
        let exe = std::env::current_exe().context("locating the fusebox executable")?;
        let mut cmd = Command::new(exe);
        cmd.arg("mount").args(fs_args).arg(mountpoint).arg("-o").arg(opts).arg("-f");
        cmd.env_remove("FUSEBOX_DAEMON_CHILD");
        self.spawn_mount(name, cmd, mountpoint)
    }

    /// Start a peer: `sh -c 'exec COMMAND'` with `{SRC}` and `{MNT}` filled in (shell-quoted),
    /// and wait for the mount.
    pub fn mount_peer(
        &mut self, name: &str, command: &str, src: &Path, mountpoint: &Path,
    ) -> Result<&Daemon> {
        let line = peer_command_line(command, src, mountpoint);
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(format!("exec {line}"));
        self.spawn_mount(name, cmd, mountpoint)
    }

    /// Spawn `cmd` (which must mount `mountpoint` and stay in the foreground) and wait until
    /// `mountpoint` is a mount: its st_dev differs from its parent's.
    fn spawn_mount(&mut self, name: &str, mut cmd: Command, mountpoint: &Path) -> Result<&Daemon> {
        std::fs::create_dir_all(mountpoint)?;
        let log = self.tmp().join(format!("{name}.log"));
        let logf = std::fs::File::create(&log)?;
        // Own process group: a terminal Ctrl-C reaches us and fio, and we unmount in order.
        use std::os::unix::process::CommandExt;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logf)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        self.daemons.push(Daemon {
            name: name.to_string(),
            mountpoint: mountpoint.to_path_buf(),
            child,
            dev: String::new(),
            log,
        });
        let d = self.daemons.last_mut().expect("just pushed");
        let parent = mountpoint.parent().context("mountpoint has no parent")?;
        let parent_dev = std::fs::metadata(parent)?.dev();
        let deadline = Instant::now() + MOUNT_TIMEOUT;
        loop {
            if std::fs::metadata(mountpoint).map(|m| m.dev() != parent_dev).unwrap_or(false) {
                d.dev = mount_dev(mountpoint).unwrap_or_default();
                break;
            }
            if let Some(status) = d.child.try_wait()? {
                let log = std::fs::read_to_string(&d.log).unwrap_or_default();
                let pid = d.child.id();
                self.daemons.pop();
                bail!("{name} (pid {pid}) exited with {status} before mounting; its stderr: {}", log.trim());
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&d.log).unwrap_or_default();
                // Only the pid we started; Drop unmounts in case it mounted late.
                let _ = d.child.kill();
                bail!(
                    "{name}: {} is not a mount {} s after starting (the command must mount it and stay \
                     in the foreground); its stderr: {}",
                    mountpoint.display(),
                    MOUNT_TIMEOUT.as_secs(),
                    log.trim()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(self.daemons.last().expect("just pushed"))
    }
}

/// How long a daemon may take to mount.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(20);

/// Quote `s` for `sh`.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A peer's command with `{SRC}` and `{MNT}` replaced by the shell-quoted paths.
pub fn peer_command_line(command: &str, src: &Path, mountpoint: &Path) -> String {
    command
        .replace("{SRC}", &shell_quote(&src.to_string_lossy()))
        .replace("{MNT}", &shell_quote(&mountpoint.to_string_lossy()))
}

fn stop_daemon(mut d: Daemon) -> Result<()> {
    let mut result = Ok(());
    for attempt in 0..50 {
        if !fusebox::session::is_mount_point(&d.mountpoint) {
            break;
        }
        match fusebox::session::unmount(&d.mountpoint) {
            Ok(()) => break,
            Err(e) if attempt == 49 => result = Err(anyhow::Error::new(e)),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match d.child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                // Only the pid we started.
                let _ = d.child.kill();
                let _ = d.child.wait();
                if result.is_ok() {
                    result = Err(anyhow::anyhow!(
                        "{} (pid {}) did not exit after unmount; killed",
                        d.name,
                        d.child.id()
                    ));
                }
                break;
            }
        }
    }
    result
}

impl Drop for Guard {
    fn drop(&mut self) {
        while let Some(d) = self.daemons.pop() {
            let mp = d.mountpoint.clone();
            if let Err(e) = stop_daemon(d) {
                eprintln!("fusebox: bench cleanup: unmounting {}: {e:#}", mp.display());
            }
        }
        if let Some(old) = self.uring_param_before.take() {
            if let Err(e) = std::fs::write(URING_PARAM, format!("{old}\n")) {
                eprintln!("fusebox: bench cleanup: restoring {URING_PARAM} to {old}: {e}");
            }
        }
        for d in self.made_dirs.drain(..).rev() {
            let _ = std::fs::remove_dir_all(&d);
        }
        if let Some(l) = self.backing.take() {
            for e in l.remove() {
                eprintln!("fusebox: bench cleanup: {e}");
            }
        }
        if let Some(t) = self.tmp.take() {
            let _ = std::fs::remove_dir_all(t);
        }
    }
}

/// `major:minor` of the mount at `mountpoint`, from `/proc/self/mountinfo`.
pub fn mount_dev(mountpoint: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    parse_mount_dev(&info, mountpoint)
}

fn parse_mount_dev(info: &str, mountpoint: &Path) -> Option<String> {
    let want = mountpoint.to_str()?.replace(' ', "\\040");
    info.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.len() > 4 && f[4] == want).then(|| f[2].to_string())
    })
}

/// utime + stime of process `pid`, seconds (all threads).
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_cpu_ticks(&stat).map(|t| t as f64 / clock_ticks()).context("malformed /proc/<pid>/stat")
}

/// USER_HZ (`getconf CLK_TCK`; 100 on every Linux architecture fusebox runs on).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        sh("getconf", &["CLK_TCK"])
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // Fields after the command name (which may contain spaces) start at field 3 (state).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime is field 14, stime field 15 (1-based) => indices 11, 12 after "pid (comm)".
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Set the BDI max_ratio of device `dev`.
pub fn set_bdi_max_ratio(dev: &str, pct: u32) -> Result<()> {
    let p = format!("/sys/class/bdi/{dev}/max_ratio");
    std::fs::write(&p, format!("{pct}\n")).with_context(|| format!("writing {pct} to {p}"))
}

/// `sync; echo 3 > /proc/sys/vm/drop_caches`. Returns false if caches could not be dropped.
pub fn drop_caches() -> bool {
    let synced = Command::new("sync").status().map(|s| s.success()).unwrap_or(false);
    synced && std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

/// Facts about the machine for the report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Machine {
    /// `uname -r`.
    pub kernel: String,
    /// Online CPUs.
    pub cpus: usize,
    /// MemTotal, bytes.
    pub mem_bytes: u64,
    /// fio's version.
    pub fio: String,
}

/// Read the machine facts.
pub fn machine(fio: &Path) -> Machine {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mem_bytes = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        })
        .unwrap_or(0)
        * 1024;
    let fio = Command::new(fio)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    Machine { kernel, cpus, mem_bytes, fio }
}

/// A one-line description of the file system holding `path` (`df`-style source and type).
pub fn describe_fs(path: &Path) -> String {
    sh("findmnt", &["-n", "-o", "SOURCE,FSTYPE", "--target", &path.to_string_lossy()])
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_spaces_in_comm() {
        let stat = "1234 (fuse box) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 1 2 3";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn peer_command_lines_are_quoted() {
        let l = peer_command_line("hp --foreground {SRC} {MNT}", Path::new("/a b/src"), Path::new("/m"));
        assert_eq!(l, "hp --foreground '/a b/src' /m");
        let l = peer_command_line("ll -o source={SRC} -f {MNT}", Path::new("/s"), Path::new("/it's"));
        assert_eq!(l, "ll -o source=/s -f '/it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn clock_ticks_are_user_hz() {
        assert_eq!(clock_ticks(), 100.0);
    }

    #[test]
    fn finds_mount_device() {
        let info = "22 1 0:21 / / rw - ext4 /dev/vda rw\n\
                    90 22 0:55 / /tmp/a\\040b rw,nosuid - fuse.memfs memfs rw\n";
        assert_eq!(parse_mount_dev(info, Path::new("/tmp/a b")).as_deref(), Some("0:55"));
        assert_eq!(parse_mount_dev(info, Path::new("/")).as_deref(), Some("0:21"));
        assert_eq!(parse_mount_dev(info, Path::new("/nope")), None);
    }
}
