//! Command-line parsing for `fusebox` (hand-written: mount(8)-style `-o` lists and positional
//! arguments don't map well onto derive parsers).

use anyhow::{bail, Result};
use std::path::PathBuf;

/// Which file system to mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsKind {
    /// In-memory file system.
    Memfs,
    /// Mirror of SOURCE.
    Passthrough { source: PathBuf },
    /// fusebox-dfs on the metadata database META_URL.
    Dfs { meta: String },
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `fusebox mount FS [SOURCE] MOUNTPOINT [-o OPTS] [-f]`
    Mount {
        /// File system and its source.
        fs: FsKind,
        /// Where to mount.
        mountpoint: PathBuf,
        /// Raw `-o` lists.
        options: Vec<String>,
        /// Stay in the foreground.
        foreground: bool,
    },
    /// `fusebox umount MOUNTPOINT`
    Umount {
        /// What to unmount.
        mountpoint: PathBuf,
    },
    /// `fusebox stats MOUNTPOINT [--json]`
    Stats {
        /// The mount to ask.
        mountpoint: PathBuf,
        /// Print the raw JSON report.
        json: bool,
    },
    /// `fusebox bench [OPTIONS]`
    Bench(fusebox_bench::options::BenchOptions),
    /// `fusebox bench tool ARGS...`: the harness's helpers for the benchmark scripts.
    BenchTool(Vec<String>),
    /// `fusebox dfs VERB ...`
    Dfs(crate::dfs::DfsCommand),
    /// `fusebox help`
    Help,
}

/// Usage text.
pub const USAGE: &str = "\
usage:
  fusebox mount memfs MOUNTPOINT [-o OPTS] [-f]
  fusebox mount passthrough SOURCE MOUNTPOINT [-o OPTS] [-f]
  fusebox mount dfs META_URL MOUNTPOINT [-o OPTS] [-f]
  fusebox dfs format|fsck|gc ...   (fusebox dfs --help for details)
  fusebox umount MOUNTPOINT
  fusebox stats MOUNTPOINT [--json]
  fusebox bench [OPTIONS]   (fusebox bench --help for its options)

-o takes comma-separated options:
  allow_other, default_permissions, ro, rw, nosuid, nodev, noexec, noatime,
  fsname=NAME, subtype=NAME, threads=N, attr_timeout=SECS, entry_timeout=SECS, debug,
  writeback (default for memfs and passthrough), no_writeback, async_dio (default), no_async_dio,
  max_threads=N, background_threads=N, sched=classes|fifo, max_background=N, congestion_threshold=N
  memfs: size=BYTES[K|M|G|T] (data and metadata; default half of RAM), nr_inodes=N
         (default one per 4 KiB of that), mode=OCTAL (root directory permissions),
         reserved=PCT (share of both kept for root's metadata, default 5)
  passthrough: fd_cache=N (O_PATH fds kept open, default 1024), file_fds=N (fds kept for open
               files, the least recently used are reopened on demand; default RLIMIT_NOFILE/4),
               sync_close (close(2) returns
               after fsync of the backing file and release of its flock lock),
               watch (push invalidations for changes made in SOURCE outside this mount),
               kernel_passthrough[=on|off] (file data goes from the kernel straight to SOURCE;
               default on unless `writeback` is given; needs CAP_SYS_ADMIN and Linux 6.9+,
               excludes the write-back cache), fopen_direct_io=off (O_DIRECT opens without
               FOPEN_DIRECT_IO, when kernel passthrough is off)
  dfs: cache_dir=DIR (block cache), cache_size=BYTES (default 1G, 0 = off),
       buffer_size=BYTES (write buffers of all files, default 256M)
-f stays in the foreground; otherwise fusebox returns once the mount is live.
FUSEBOX_LOG=FILE sends a background daemon's log to FILE.";

/// Parse `argv[1..]`.
pub fn parse(args: &[String]) -> Result<Command> {
    if args.first().map(String::as_str) == Some("bench") {
        if args.get(1).map(String::as_str) == Some("tool") {
            return Ok(Command::BenchTool(args[2..].to_vec()));
        }
        return fusebox_bench::options::parse(&args[1..]).map(Command::Bench);
    }
    if args.first().map(String::as_str) == Some("dfs") {
        return crate::dfs::parse(&args[1..]).map(Command::Dfs);
    }
    let mut positional = Vec::new();
    let mut options = Vec::new();
    let mut foreground = false;
    let mut json = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-f" | "--foreground" => foreground = true,
            "-h" | "--help" => return Ok(Command::Help),
            "--json" => json = true,
            "-o" => match it.next() {
                Some(v) => options.push(v.clone()),
                None => bail!("option -o needs a value (e.g. -o allow_other)"),
            },
            s if s.starts_with("-o") => options.push(s[2..].to_string()),
            s if s.starts_with('-') && s.len() > 1 => bail!("unknown flag '{s}'\n{USAGE}"),
            _ => positional.push(a.clone()),
        }
    }
    let mut pos = positional.into_iter();
    match pos.next().as_deref() {
        None | Some("help") => Ok(Command::Help),
        Some("mount") => {
            let fs = match pos.next().as_deref() {
                Some("memfs") => FsKind::Memfs,
                Some("passthrough") => match pos.next() {
                    Some(source) => FsKind::Passthrough { source: source.into() },
                    None => bail!("missing SOURCE\n{USAGE}"),
                },
                Some("dfs") => match pos.next() {
                    Some(meta) => FsKind::Dfs { meta },
                    None => bail!("missing META_URL\n{USAGE}"),
                },
                Some(other) => bail!("unknown file system '{other}' (expected memfs, passthrough or dfs)"),
                None => bail!("missing file system (memfs, passthrough or dfs)\n{USAGE}"),
            };
            let Some(mountpoint) = pos.next() else { bail!("missing MOUNTPOINT\n{USAGE}") };
            if let Some(extra) = pos.next() {
                bail!("unexpected argument '{extra}'\n{USAGE}");
            }
            Ok(Command::Mount { fs, mountpoint: mountpoint.into(), options, foreground })
        }
        Some("umount") | Some("unmount") => {
            let Some(mountpoint) = pos.next() else { bail!("missing MOUNTPOINT\n{USAGE}") };
            if let Some(extra) = pos.next() {
                bail!("unexpected argument '{extra}'");
            }
            Ok(Command::Umount { mountpoint: mountpoint.into() })
        }
        Some("stats") => {
            let Some(mountpoint) = pos.next() else { bail!("missing MOUNTPOINT\n{USAGE}") };
            Ok(Command::Stats { mountpoint: mountpoint.into(), json })
        }
        Some(other) => bail!("unknown command '{other}'\n{USAGE}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn parses_mount_forms() {
        assert_eq!(
            p("mount memfs /mnt -o size=1G -oallow_other -f").unwrap(),
            Command::Mount {
                fs: FsKind::Memfs,
                mountpoint: "/mnt".into(),
                options: vec!["size=1G".into(), "allow_other".into()],
                foreground: true
            }
        );
        assert_eq!(
            p("mount passthrough /src /mnt").unwrap(),
            Command::Mount {
                fs: FsKind::Passthrough { source: "/src".into() },
                mountpoint: "/mnt".into(),
                options: vec![],
                foreground: false
            }
        );
        assert_eq!(p("umount /mnt").unwrap(), Command::Umount { mountpoint: "/mnt".into() });
        assert_eq!(p("stats /mnt --json").unwrap(), Command::Stats { mountpoint: "/mnt".into(), json: true });
        match p("bench --quick --json").unwrap() {
            Command::Bench(o) => assert!(o.json && o.sizes == fusebox_bench::options::Sizes::QUICK),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_bad_command_lines() {
        assert!(p("mount").is_err());
        assert!(p("mount ext4 /mnt").is_err());
        assert!(p("mount passthrough").is_err());
        assert!(p("mount memfs /a /b").is_err());
        assert!(p("mount memfs /a -o").is_err());
        assert!(p("mount memfs /a -x").is_err());
        assert!(p("frobnicate").is_err());
        assert!(p("bench --frob").is_err());
        assert_eq!(p("bench tool cpu 1").unwrap(), Command::BenchTool(vec!["cpu".into(), "1".into()]));
    }
}
