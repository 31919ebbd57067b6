//! `-o` option parsing in mount(8) style: `key` or `key=value`, comma-separated.

use std::collections::BTreeMap;
use std::time::Duration;

/// Why an option string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    /// The key is not known to fusebox nor to the file system.
    #[error("unknown option '{0}'")]
    Unknown(String),
    /// The value could not be parsed.
    #[error("bad value for option '{key}': '{value}' ({reason})")]
    Malformed {
        /// Option name.
        key: String,
        /// The offending value.
        value: String,
        /// What was expected.
        reason: &'static str,
    },
    /// The option needs `=value`.
    #[error("option '{0}' needs a value ({0}=...)")]
    MissingValue(String),
    /// The option takes no value.
    #[error("option '{0}' takes no value")]
    UnexpectedValue(String),
    /// The option needs a part of fusebox this build was made without.
    #[error("option '{option}' needs fusebox built with the cargo feature '{feature}'")]
    NotBuiltIn {
        /// Option name.
        option: &'static str,
        /// The cargo feature that provides it.
        feature: &'static str,
    },
}

/// Generic mount options understood by every fusebox file system.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MountOptions {
    /// Let users other than the mounter access the file system.
    pub allow_other: bool,
    /// Let the kernel check permissions from the file modes.
    pub default_permissions: bool,
    /// Mount read-only.
    pub read_only: bool,
    /// Honour set-uid bits (`suid`); off by default (`nosuid`).
    pub suid: bool,
    /// Honour device files (`dev`); off by default (`nodev`).
    pub dev: bool,
    /// Forbid execution (`noexec`).
    pub noexec: bool,
    /// Do not update access times (`noatime`).
    pub noatime: bool,
    /// Name shown as the mount's source (`fsname=`).
    pub fsname: Option<String>,
    /// Type suffix: the mount shows as `fuse.<subtype>` (`subtype=`).
    pub subtype: Option<String>,
    /// Worker threads (`threads=`); `None` = the default.
    pub threads: Option<usize>,
    /// Most worker threads when growing under blocking load (`max_threads=`).
    pub max_threads: Option<usize>,
    /// Workers that may handle background requests at once (`background_threads=`).
    pub background_threads: Option<usize>,
    /// `sched=fifo` turns request classes off (for comparison); `sched=classes` is the default.
    pub fifo: bool,
    /// Kernel limit on background requests in flight (`max_background=`).
    pub max_background: Option<u16>,
    /// Kernel congestion threshold (`congestion_threshold=`).
    pub congestion_threshold: Option<u16>,
    /// How long the kernel may cache attributes (`attr_timeout=` seconds); `None` keeps the
    /// file system's default ([`crate::session::Config::default_ttl`]).
    pub attr_timeout: Option<Duration>,
    /// How long the kernel may cache names (`entry_timeout=` seconds); `None`: the default.
    pub entry_timeout: Option<Duration>,
    /// How long the kernel may cache the absence of a name (`negative_timeout=` seconds);
    /// `None`: the default.
    pub negative_timeout: Option<Duration>,
    /// Log every request (`debug`).
    pub debug: bool,
    /// Kernel write-back page cache: `writeback` (Some(true)) / `no_writeback` (Some(false));
    /// `None` keeps the file system's default.
    pub writeback: Option<bool>,
    /// Asynchronous direct IO (FUSE_ASYNC_DIO): `async_dio` / `no_async_dio`; `None` keeps the
    /// default (on: the kernel sends the pieces of one large direct IO at once).
    pub async_dio: Option<bool>,
    /// Time slice the workers ask the scheduler for (`worker_slice_us=`, microseconds; 0 = the
    /// kernel's default). Short slices let a worker woken for a request preempt sooner.
    pub worker_slice_us: Option<u64>,
    /// Kernel readahead of the mount in KiB (`read_ahead_kb=`, written to its BDI in sysfs,
    /// root only); `None`: [`crate::session::DEFAULT_READ_AHEAD_KB`] where permitted.
    pub read_ahead_kb: Option<u32>,
    /// Share of the dirty-page budget the mount's BDI may use, percent (`bdi_max_ratio=`,
    /// root only); `None`: the kernel's (1 for FUSE).
    pub bdi_max_ratio: Option<u32>,
    /// Move READ data from files into replies with splice(2) (`splice_write`), where the file
    /// system supports it (passthrough).
    pub splice_write: bool,
    /// FUSE over io_uring (`io_uring`, `uring_depth=`, `uring_threads=`, `uring_nopin`,
    /// `uring_nodefer`).
    pub uring: UringOptions,
    /// Options meant for the file system itself (e.g. memfs `size=`).
    pub fs_options: BTreeMap<String, Option<String>>,
}

/// How requests travel over io_uring, when asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UringOptions {
    /// Ask the kernel for FUSE over io_uring (`io_uring`); falls back to `/dev/fuse` when the
    /// kernel does not offer it.
    pub enabled: bool,
    /// Entries per ring (`uring_depth=`, default 1): requests one ring can hold at once.
    pub depth: usize,
    /// Rings (threads) per CPU queue (`uring_threads=`, default 8).
    pub threads_per_queue: usize,
    /// Pin each queue's threads to the queue's CPU (default; `uring_nopin` turns it off).
    pub pin: bool,
    /// Rings with SINGLE_ISSUER + DEFER_TASKRUN (default; `uring_nodefer` turns it off):
    /// completion work runs when the queue thread waits, not as an interrupting signal.
    pub defer_taskrun: bool,
}

impl Default for UringOptions {
    fn default() -> Self {
        // Measured in docs/BENCHMARKS.md: one entry per thread and 8 threads per queue give a
        // blocking file system 8 requests in flight per CPU (the kernel hands a request to the
        // entry committed last, so an idle hot thread takes it), at the same CPU cost per
        // request as one ring of 8 entries on a non-blocking one.
        UringOptions { enabled: false, depth: 1, threads_per_queue: 8, pin: true, defer_taskrun: true }
    }
}

/// Parse a non-negative number of seconds with an optional fraction ("1", "0.5", "2.25").
pub fn parse_seconds(key: &str, value: &str) -> Result<Duration, OptionError> {
    let bad = || OptionError::Malformed {
        key: key.into(),
        value: value.into(),
        reason: "expected seconds, e.g. 1 or 0.5",
    };
    let secs: f64 = value.parse().map_err(|_| bad())?;
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parse a byte count with an optional K/M/G/T suffix (powers of 1024).
pub fn parse_bytes(key: &str, value: &str) -> Result<u64, OptionError> {
    let bad = || OptionError::Malformed {
        key: key.into(),
        value: value.into(),
        reason: "expected bytes, e.g. 1048576, 512M or 2G",
    };
    let (digits, mult) = match value.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(bad()),
            };
            (&value[..i], m)
        }
        _ => (value, 1),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(mult).ok_or_else(bad)
}

/// A count from 1 to `max`.
fn count(key: &str, value: &str, max: usize) -> Result<usize, OptionError> {
    value.parse().ok().filter(|n| (1..=max).contains(n)).ok_or(OptionError::Malformed {
        key: key.into(),
        value: value.into(),
        reason: if max == 1024 {
            "expected a count from 1 to 1024"
        } else {
            "expected a count from 1 to 65535"
        },
    })
}

/// A number from 0 to `max`, or a Malformed error with `reason`.
fn at_most<T: std::str::FromStr + PartialOrd>(
    key: &str, value: &str, max: T, reason: &'static str,
) -> Result<T, OptionError> {
    value.parse::<T>().ok().filter(|n| *n <= max).ok_or(OptionError::Malformed {
        key: key.into(),
        value: value.into(),
        reason,
    })
}

fn flag(key: &str, value: Option<&str>) -> Result<bool, OptionError> {
    match value {
        None => Ok(true),
        Some(_) => Err(OptionError::UnexpectedValue(key.into())),
    }
}

fn required<'a>(key: &str, value: Option<&'a str>) -> Result<&'a str, OptionError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(OptionError::MissingValue(key.into())),
    }
}

impl MountOptions {
    /// Parse one or more `-o` strings. Keys in `fs_keys` are collected into `fs_options` for
    /// the file system; any other unknown key is an error.
    pub fn parse<S: AsRef<str>>(lists: &[S], fs_keys: &[&str]) -> Result<MountOptions, OptionError> {
        let mut o = MountOptions::default();
        for list in lists {
            for item in list.as_ref().split(',').filter(|s| !s.is_empty()) {
                let (key, value) = match item.split_once('=') {
                    Some((k, v)) => (k, Some(v)),
                    None => (item, None),
                };
                match key {
                    "allow_other" => o.allow_other = flag(key, value)?,
                    "default_permissions" => o.default_permissions = flag(key, value)?,
                    "ro" => o.read_only = flag(key, value)?,
                    "rw" => o.read_only = !flag(key, value)?,
                    "suid" => o.suid = flag(key, value)?,
                    "nosuid" => o.suid = !flag(key, value)?,
                    "dev" => o.dev = flag(key, value)?,
                    "nodev" => o.dev = !flag(key, value)?,
                    "exec" => o.noexec = !flag(key, value)?,
                    "noexec" => o.noexec = flag(key, value)?,
                    "noatime" => o.noatime = flag(key, value)?,
                    "debug" => o.debug = flag(key, value)?,
                    "writeback" => o.writeback = Some(flag(key, value)?),
                    "no_writeback" => o.writeback = Some(!flag(key, value)?),
                    "async_dio" => o.async_dio = Some(flag(key, value)?),
                    "no_async_dio" => o.async_dio = Some(!flag(key, value)?),
                    "splice_write" => o.splice_write = flag(key, value)?,
                    "worker_slice_us" => {
                        let v = required(key, value)?;
                        o.worker_slice_us =
                            Some(at_most(key, v, 100_000, "expected microseconds from 0 to 100000")?);
                    }
                    "read_ahead_kb" => {
                        let v = required(key, value)?;
                        o.read_ahead_kb = Some(at_most(key, v, 1 << 20, "expected KiB from 0 to 1048576")?);
                    }
                    "bdi_max_ratio" => {
                        let v = required(key, value)?;
                        o.bdi_max_ratio = Some(at_most(key, v, 100, "expected a percentage from 0 to 100")?);
                    }
                    "fsname" => o.fsname = Some(required(key, value)?.to_string()),
                    "subtype" => o.subtype = Some(required(key, value)?.to_string()),
                    "threads" => o.threads = Some(count(key, required(key, value)?, 1024)?),
                    "max_threads" => o.max_threads = Some(count(key, required(key, value)?, 1024)?),
                    "background_threads" => {
                        o.background_threads = Some(count(key, required(key, value)?, 1024)?)
                    }
                    "max_background" => {
                        o.max_background = Some(count(key, required(key, value)?, 65535)? as u16)
                    }
                    "congestion_threshold" => {
                        o.congestion_threshold = Some(count(key, required(key, value)?, 65535)? as u16)
                    }
                    "sched" => {
                        o.fifo = match required(key, value)? {
                            "fifo" => true,
                            "classes" => false,
                            v => {
                                return Err(OptionError::Malformed {
                                    key: key.into(),
                                    value: v.into(),
                                    reason: "expected fifo or classes",
                                })
                            }
                        }
                    }
                    "io_uring" => o.uring.enabled = flag(key, value)?,
                    "uring_nopin" => o.uring.pin = !flag(key, value)?,
                    "uring_nodefer" => o.uring.defer_taskrun = !flag(key, value)?,
                    "uring_depth" => o.uring.depth = count(key, required(key, value)?, 1024)?,
                    "uring_threads" => o.uring.threads_per_queue = count(key, required(key, value)?, 1024)?,
                    "attr_timeout" => o.attr_timeout = Some(parse_seconds(key, required(key, value)?)?),
                    "entry_timeout" => o.entry_timeout = Some(parse_seconds(key, required(key, value)?)?),
                    "negative_timeout" => {
                        o.negative_timeout = Some(parse_seconds(key, required(key, value)?)?)
                    }
                    k if fs_keys.contains(&k) => {
                        o.fs_options.insert(k.to_string(), value.map(str::to_string));
                    }
                    other => return Err(OptionError::Unknown(other.to_string())),
                }
            }
        }
        Ok(o)
    }

    /// fsname/subtype must not contain characters that would corrupt the mount option string.
    pub fn validate(&self) -> Result<(), OptionError> {
        for (key, v) in [("fsname", &self.fsname), ("subtype", &self.subtype)] {
            if let Some(v) = v {
                if v.contains(|c: char| c == ',' || c.is_whitespace() || c == '\0') {
                    return Err(OptionError::Malformed {
                        key: key.into(),
                        value: v.clone(),
                        reason: "no commas, spaces or NULs allowed",
                    });
                }
            }
        }
        if self.uring.enabled && !cfg!(feature = "io-uring") {
            return Err(OptionError::NotBuiltIn { option: "io_uring", feature: "io-uring" });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_generic_and_fs_options() {
        let o = MountOptions::parse(
            &[
                "allow_other,default_permissions,ro",
                "attr_timeout=0.5,entry_timeout=2,threads=3,size=1G,fsname=x",
            ],
            &["size"],
        )
        .unwrap();
        assert!(o.allow_other && o.default_permissions && o.read_only);
        assert_eq!(o.attr_timeout, Some(Duration::from_millis(500)));
        assert_eq!(o.entry_timeout, Some(Duration::from_secs(2)));
        assert_eq!(o.negative_timeout, None);
        let t =
            MountOptions::parse(&["read_ahead_kb=4096,bdi_max_ratio=50,negative_timeout=3"], &[]).unwrap();
        assert_eq!((t.read_ahead_kb, t.bdi_max_ratio), (Some(4096), Some(50)));
        assert_eq!(t.negative_timeout, Some(Duration::from_secs(3)));
        for bad in ["read_ahead_kb=x", "read_ahead_kb=2000000", "bdi_max_ratio=101", "bdi_max_ratio"] {
            assert!(MountOptions::parse(&[bad], &[]).is_err(), "{bad}");
        }
        assert_eq!(o.threads, Some(3));
        assert_eq!(o.fsname.as_deref(), Some("x"));
        assert_eq!(o.fs_options.get("size"), Some(&Some("1G".to_string())));
        assert_eq!(o.writeback, None);
        let o = MountOptions::parse(
            &["sched=fifo,max_background=128,congestion_threshold=96,max_threads=9"],
            &[],
        )
        .unwrap();
        assert!(o.fifo);
        assert_eq!((o.max_background, o.congestion_threshold, o.max_threads), (Some(128), Some(96), Some(9)));
        assert!(MountOptions::parse(&["sched=lifo"], &[]).is_err());
        assert!(MountOptions::parse(&["max_background=0"], &[]).is_err());
        assert_eq!(MountOptions::parse(&["writeback"], &[]).unwrap().writeback, Some(true));
        assert_eq!(MountOptions::parse(&["writeback,no_writeback"], &[]).unwrap().writeback, Some(false));
        assert_eq!(MountOptions::parse(&["no_async_dio"], &[]).unwrap().async_dio, Some(false));
        let u =
            MountOptions::parse(&["io_uring,uring_depth=4,uring_threads=2,uring_nopin,uring_nodefer"], &[])
                .unwrap()
                .uring;
        assert_eq!(
            u,
            UringOptions { enabled: true, depth: 4, threads_per_queue: 2, pin: false, defer_taskrun: false }
        );
        assert!(MountOptions::parse(&["uring_depth=0"], &[]).is_err());
        assert!(MountOptions::parse(&["io_uring=1"], &[]).is_err());
    }

    #[test]
    fn rejects_bad_options() {
        assert_eq!(MountOptions::parse(&["bogus"], &[]), Err(OptionError::Unknown("bogus".into())));
        assert!(matches!(MountOptions::parse(&["threads=0"], &[]), Err(OptionError::Malformed { .. })));
        assert!(matches!(MountOptions::parse(&["attr_timeout=-1"], &[]), Err(OptionError::Malformed { .. })));
        assert!(matches!(
            MountOptions::parse(&["attr_timeout=abc"], &[]),
            Err(OptionError::Malformed { .. })
        ));
        assert_eq!(MountOptions::parse(&["fsname"], &[]), Err(OptionError::MissingValue("fsname".into())));
        assert_eq!(MountOptions::parse(&["ro=1"], &[]), Err(OptionError::UnexpectedValue("ro".into())));
    }

    #[test]
    fn byte_sizes_with_suffixes() {
        assert_eq!(parse_bytes("size", "4096").unwrap(), 4096);
        assert_eq!(parse_bytes("size", "2M").unwrap(), 2 << 20);
        assert_eq!(parse_bytes("size", "1g").unwrap(), 1 << 30);
        assert!(parse_bytes("size", "12Q").is_err());
        assert!(parse_bytes("size", "").is_err());
        assert!(parse_bytes("size", "99999999999T").is_err());
    }
}
