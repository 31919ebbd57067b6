//! The `fusebox dfs` verbs (format, fsck, gc) and the `fusebox mount dfs` builder.

use anyhow::{bail, Context, Result};
use fusebox::fs::asyncfs::AsyncAdapter;
use fusebox::session::OptionError;
use fusebox::MountOptions;
use fusebox_dfs::cache::BlockCache;
use fusebox_dfs::meta::Caller;
use fusebox_dfs::url::{format_meta, open_meta, parse_meta_url, redact};
use fusebox_dfs::{BlobStore, DfsFs, DfsOptions, MetaStore, ObjectBlobStore};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What `fusebox dfs --help` prints after the commands.
const AFTER_HELP: &str = "\
META_URL: sqlite:///path/meta.db or postgres://user@host:port/database
          (password from the URL or PGPASSWORD, user from the URL or PGUSER)
DATA_URL: file:///path/blocks or s3://bucket[/prefix][?endpoint=URL&region=R&anonymous=true]
          (credentials from the environment as AWS tools read them, never from the URL)
Mount with `fusebox mount dfs META_URL MOUNTPOINT [-o OPTS]`.";

/// Default grace period of gc: longer than any write session of a live mount should last.
const DEFAULT_GRACE_SECS: u64 = 3600;

/// A `fusebox dfs` command.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
#[command(after_help = AFTER_HELP)]
pub enum DfsCommand {
    /// Create a file system: a schema in META_URL whose blocks live in DATA_URL
    Format {
        /// Metadata URL
        meta: String,
        /// Block store URL (file:///dir or s3://bucket?endpoint=...)
        #[arg(long, value_name = "DATA_URL")]
        storage: String,
        /// Erase a database that already holds something
        #[arg(long)]
        force: bool,
    },
    /// Check that metadata and block objects agree; report what is wrong
    Fsck {
        /// Metadata URL
        meta: String,
    },
    /// Merge chunks written in many pieces (a mount also does this in the background)
    Compact {
        /// Metadata URL
        meta: String,
        /// Merge chunks made of at least N slices
        #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u64).range(2..))]
        min_slices: u64,
    },
    /// List the mounts (sessions) of a file system: heartbeat age, locks held, unlinked
    /// files kept open
    Status {
        /// Metadata URL
        meta: String,
    },
    /// Delete block objects no file references
    Gc {
        /// Metadata URL
        meta: String,
        /// Keep unreferenced objects younger than SECS (a live mount may be writing them)
        #[arg(long, value_name = "SECS", default_value_t = DEFAULT_GRACE_SECS)]
        grace: u64,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting a tokio runtime")
}

/// The metadata store and the block store it names, both checked to answer.
fn open(meta: &str) -> Result<(Arc<dyn MetaStore>, ObjectBlobStore)> {
    let m = open_meta(meta)?;
    let info = m.info()?;
    let blobs = checked_blob_store(&info.storage_url)?;
    Ok((m, blobs))
}

/// The block store at `url`, after one request showed that it answers and (S3) that the
/// bucket exists.
fn checked_blob_store(url: &str) -> Result<ObjectBlobStore> {
    let blobs = ObjectBlobStore::from_url(url)?;
    runtime()?.block_on(blobs.check())?;
    Ok(blobs)
}

/// Run a `fusebox dfs` command.
pub fn run(cmd: DfsCommand) -> Result<()> {
    match cmd {
        DfsCommand::Format { meta, storage, force } => {
            // Check both URLs (and create the block directory) before touching the database.
            parse_meta_url(&meta)?;
            checked_blob_store(&storage)?;
            let (uid, gid) = fusebox::sys::getuid_gid();
            format_meta(&meta, &storage, force, Caller { uid, gid })?;
            println!("formatted {} (blocks in {})", redact(&meta), redact(&storage));
            Ok(())
        }
        DfsCommand::Fsck { meta } => {
            let (m, blobs) = open(&meta)?;
            let r = runtime()?.block_on(fusebox_dfs::check::fsck(&m, &blobs))?;
            for b in &r.missing {
                println!(
                    "missing: {} ({} bytes)",
                    fusebox_dfs::layout::block_key(b.slice_id, b.index),
                    b.len
                );
            }
            for (b, size) in &r.wrong_size {
                let key = fusebox_dfs::layout::block_key(b.slice_id, b.index);
                println!("wrong size: {key} has {size} bytes, expected {}", b.len);
            }
            for o in &r.garbage {
                println!("garbage: {} ({} bytes)", o.key, o.size);
            }
            for k in &r.foreign {
                println!("foreign object (left alone): {k}");
            }
            let garbage_bytes: u64 = r.garbage.iter().map(|o| o.size).sum();
            println!(
                "{} referenced blocks, {} missing, {} with a wrong size, {} unreferenced ({garbage_bytes} bytes; `fusebox dfs gc` removes them)",
                r.referenced,
                r.missing.len(),
                r.wrong_size.len(),
                r.garbage.len()
            );
            if !r.is_ok() {
                bail!("fsck found {} missing and {} damaged blocks", r.missing.len(), r.wrong_size.len());
            }
            Ok(())
        }
        DfsCommand::Compact { meta, min_slices } => {
            let (m, blobs) = open(&meta)?;
            let fs = DfsFs::new(m, Arc::new(blobs), None, DfsOptions::default());
            let r = runtime()?
                .block_on(fs.compact_all(min_slices))
                .map_err(|e| anyhow::anyhow!("compaction failed: {e}"))?;
            println!(
                "merged {} chunks: {} slices into {} ({} bytes written); {} changed meanwhile and were left alone",
                r.chunks, r.slices_before, r.slices_after, r.bytes, r.raced
            );
            println!(
                "the replaced blocks are garbage now: `fusebox dfs gc` deletes them after its grace period"
            );
            Ok(())
        }
        DfsCommand::Status { meta } => {
            let m = open_meta(&meta)?;
            m.info()?;
            let sessions = m.sessions()?;
            print!("{}", status_table(&sessions, fusebox_dfs::meta::store::now_ns()));
            Ok(())
        }
        DfsCommand::Gc { meta, grace } => {
            let (m, blobs) = open(&meta)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let r = runtime()?.block_on(fusebox_dfs::check::gc(&m, &blobs, grace, now))?;
            println!(
                "deleted {} unreferenced blocks ({} bytes); kept {} younger than {grace} s",
                r.deleted, r.bytes, r.young
            );
            Ok(())
        }
    }
}

/// `fusebox dfs status`'s table: one line per session, newest heartbeat age in seconds.
fn status_table(sessions: &[fusebox_dfs::meta::coord::Session], now_ns: i64) -> String {
    let mut out = format!("{} session(s)\n", sessions.len());
    if sessions.is_empty() {
        return out;
    }
    out += &format!("{:>6} {:>10} {:>6} {:>9}  {}\n", "SID", "HEARTBEAT", "LOCKS", "UNLINKED", "MOUNT");
    for s in sessions {
        let age = now_ns.saturating_sub(s.heartbeat_ns) as f64 / 1e9;
        out +=
            &format!("{:>6} {:>9.1}s {:>6} {:>9}  {}\n", s.sid, age.max(0.0), s.locks, s.sustained, s.info);
    }
    out
}

/// The `-o` keys dfs understands.
pub const OPTION_KEYS: &[&str] =
    &["cache_dir", "cache_size", "cache_all", "buffer_size", "inline_max", "session_timeout"];

/// Cache lifetimes dfs asks for by default: a minute for names, absent names and attributes.
/// Other mounts' changes do not wait for them: each mount turns the change log into
/// invalidations (fusebox-dfs `fs::coherence`), and OPEN checks it (close-to-open).
pub const CACHE_TTL: fusebox::Ttl = fusebox::Ttl {
    entry: Duration::from_secs(60),
    attr: Duration::from_secs(60),
    negative: Duration::from_secs(60),
};

/// Default block cache directory for a metadata URL: one per database, under
/// `$XDG_CACHE_HOME` or `~/.cache`, else `/var/tmp`.
fn default_cache_dir(meta: &str) -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    let hash = meta.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3));
    base.join("fusebox-dfs").join(format!("{hash:016x}"))
}

/// Build the dfs file system for `fusebox mount dfs META_URL`.
pub fn build(meta: &str, options: &[String]) -> Result<crate::Built> {
    let mut opts = MountOptions::parse(options, OPTION_KEYS)?;
    // dfs stores modes, owners and ACLs; the kernel enforces them.
    opts.default_permissions = true;
    let size = |k: &str, default: u64| -> Result<u64, OptionError> {
        match opts.fs_options.get(k) {
            None => Ok(default),
            Some(None) => Err(OptionError::MissingValue(k.into())),
            Some(Some(v)) => fusebox::session::parse_bytes(k, v),
        }
    };
    let buffer_size = size("buffer_size", 256 << 20)?;
    let inline_max = size("inline_max", DfsOptions::default().inline_max)?;
    if inline_max > 4 << 20 {
        bail!("inline_max={inline_max}: at most 4M (one block; larger pieces are uploaded as blocks)");
    }
    let session_timeout = match opts.fs_options.get("session_timeout") {
        None => DfsOptions::default().session_timeout,
        Some(None) => return Err(OptionError::MissingValue("session_timeout".into()).into()),
        Some(Some(v)) => match v.parse::<f64>() {
            Ok(s) if (0.5..=3600.0).contains(&s) => Duration::from_secs_f64(s),
            _ => bail!("session_timeout={v}: expected seconds between 0.5 and 3600"),
        },
    };
    let cache_dir = match opts.fs_options.get("cache_dir") {
        None => default_cache_dir(meta),
        Some(None) => return Err(OptionError::MissingValue("cache_dir".into()).into()),
        Some(Some(v)) => PathBuf::from(v),
    };
    let (m, blobs) = open(meta)?;
    // A local directory store is read from as fast as a cache on the same machine would be:
    // caching it would only write every block twice.
    let cache_size = size("cache_size", if blobs.is_local() { 0 } else { 1 << 30 })?;
    let cache = if cache_size == 0 {
        None
    } else {
        Some(
            BlockCache::open(&cache_dir, cache_size)
                .with_context(|| format!("block cache directory {}", cache_dir.display()))?,
        )
    };
    let dfs_opts = DfsOptions {
        buffer_limit: buffer_size,
        file_buffer_limit: (buffer_size / 4).max(4 << 20),
        session_timeout,
        inline_max,
        cache_all: crate::switch(&opts, "cache_all")?,
        ..Default::default()
    };
    let blobs: Arc<dyn BlobStore> = Arc::new(blobs);
    let fs = DfsFs::new(m, blobs, cache, dfs_opts);
    let adapter = AsyncAdapter::new(fs, Default::default()).context("starting the async runtime")?;
    if opts.subtype.is_none() {
        opts.subtype = Some("dfs".into());
    }
    if opts.fsname.is_none() {
        // /proc/mounts is readable by every user: never a password there.
        opts.fsname = Some(redact(meta));
    }
    Ok((Arc::new(adapter), opts, CACHE_TTL))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    #[command(no_binary_name = true)]
    struct Only {
        #[command(subcommand)]
        cmd: DfsCommand,
    }

    fn p(s: &str) -> Result<DfsCommand, clap::Error> {
        Only::try_parse_from(s.split_whitespace()).map(|o| o.cmd)
    }

    #[test]
    fn status_lists_sessions_with_heartbeat_age() {
        use fusebox_dfs::meta::coord::Session;
        assert_eq!(status_table(&[], 0), "0 session(s)\n");
        let s = Session {
            sid: 3,
            info: "h pid 9 /mnt/x".into(),
            heartbeat_ns: 1_000_000_000,
            locks: 2,
            sustained: 1,
        };
        let t = status_table(&[s], 3_500_000_000);
        let line = t.lines().nth(2).unwrap();
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols, ["3", "2.5s", "2", "1", "h", "pid", "9", "/mnt/x"], "{t}");
    }

    #[test]
    fn parses_dfs_verbs() {
        assert_eq!(
            p("format sqlite:///m.db --storage file:///b").unwrap(),
            DfsCommand::Format { meta: "sqlite:///m.db".into(), storage: "file:///b".into(), force: false }
        );
        assert_eq!(
            p("format --force sqlite:///m.db --storage=file:///b").unwrap(),
            DfsCommand::Format { meta: "sqlite:///m.db".into(), storage: "file:///b".into(), force: true }
        );
        assert_eq!(p("fsck sqlite:///m.db").unwrap(), DfsCommand::Fsck { meta: "sqlite:///m.db".into() });
        assert_eq!(p("status sqlite:///m.db").unwrap(), DfsCommand::Status { meta: "sqlite:///m.db".into() });
        assert_eq!(
            p("compact sqlite:///m.db --min-slices 8").unwrap(),
            DfsCommand::Compact { meta: "sqlite:///m.db".into(), min_slices: 8 }
        );
        assert_eq!(
            p("gc sqlite:///m.db").unwrap(),
            DfsCommand::Gc { meta: "sqlite:///m.db".into(), grace: 3600 }
        );
        assert_eq!(
            p("gc sqlite:///m.db --grace 0").unwrap(),
            DfsCommand::Gc { meta: "sqlite:///m.db".into(), grace: 0 }
        );
        for bad in [
            "",
            "format sqlite:///m.db",
            "format",
            "fsck",
            "fsck a b",
            "gc sqlite:///m.db --grace x",
            "gc sqlite:///m.db --grace",
            "fsck sqlite:///m.db --force",
            "fsck sqlite:///m.db --grace 1",
            "frob sqlite:///m.db",
            "format sqlite:///m.db --storage",
            "fsck sqlite:///m.db -x",
            "compact sqlite:///m.db --min-slices 1",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }
}
