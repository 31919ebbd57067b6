//! `fusebox`: mount memfs or passthrough, unmount, show stats, benchmark.

#![forbid(unsafe_code)]

mod args;
mod daemon;
mod dfs;
mod logging;
mod stats;

use anyhow::{Context, Result};
use args::{Command, FsKind, USAGE};
use fusebox::{Config, Filesystem, MountOptions, Session};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match run(&argv) {
        Ok(()) => ExitCode::SUCCESS,
        // The daemon child already printed its own message.
        Err(e) if e.downcast_ref::<daemon::ChildFailed>().is_some() => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("fusebox: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(argv: &[String]) -> Result<()> {
    match args::parse(argv)? {
        Command::Help => {
            println!("{USAGE}");
            Ok(())
        }
        Command::Stats { mountpoint, json } => stats::show(&mountpoint, json),
        Command::Bench(opts) => fusebox_bench::run(&opts),
        Command::BenchTool(args) => fusebox_bench::tool::run(&args).map(|out| {
            if !out.is_empty() {
                println!("{out}")
            }
        }),
        Command::Dfs(cmd) => dfs::run(cmd),
        Command::Umount { mountpoint } => {
            // The daemon behind the mount, if one answers: `umount` returns once it has exited,
            // so a `stats` or a new mount right after never meets the old daemon.
            let daemon = fusebox::session::query_status(&mountpoint).ok().map(|r| r.pid);
            fusebox::session::unmount(&mountpoint)?;
            if let Some(pid) = daemon.filter(|&p| p != std::process::id()) {
                if !wait_for_exit(pid, std::time::Duration::from_secs(10)) {
                    eprintln!("fusebox: unmounted; daemon {pid} is still finishing");
                }
            }
            Ok(())
        }
        Command::Mount { fs, mountpoint, options, foreground } => {
            // Validate everything we can before forking a daemon, so errors reach the caller.
            let (filesystem, opts, ttl) = build(&fs, &options)?;
            if !foreground && !daemon::is_daemon_child() {
                return daemon::spawn_and_wait(argv);
            }
            logging::init(opts.debug);
            serve(filesystem, &mountpoint, opts, ttl)
        }
    }
}

/// Wait until process `pid` has exited (or is a zombie), up to `limit`; false on timeout.
fn wait_for_exit(pid: u32, limit: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let gone = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            // The state follows the parenthesised command name.
            Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
        };
        if gone {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A file system, its options and the cache lifetimes it asks for by default.
pub(crate) type Built = (Arc<dyn Filesystem>, MountOptions, fusebox::Ttl);

/// Build the file system and parse options for it.
fn build(fs: &FsKind, options: &[String]) -> Result<Built> {
    match fs {
        FsKind::Memfs => {
            let mut opts = MountOptions::parse(options, fusebox_fs::memfs::OPTION_KEYS)?;
            // memfs stores modes and owners; the kernel enforces them.
            opts.default_permissions = true;
            let memfs = fusebox_fs::memfs::from_options(&opts.fs_options)?;
            if opts.subtype.is_none() {
                opts.subtype = Some("memfs".into());
            }
            Ok((Arc::new(memfs), opts, fusebox_fs::memfs::CACHE_TTL))
        }
        FsKind::Passthrough { source } => passthrough(source, options),
        FsKind::Dfs { meta } => dfs::build(meta, options),
    }
}

/// A file-system switch option: absent = off, `key` or `key=on|1|yes|true` = on.
fn switch(opts: &MountOptions, key: &str) -> Result<bool> {
    Ok(match opts.fs_options.get(key) {
        None => false,
        Some(None) => true,
        Some(Some(v)) => match v.as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => {
                return Err(fusebox::session::OptionError::Malformed {
                    key: key.into(),
                    value: v.clone(),
                    reason: "expected no value (or on/off)",
                }
                .into())
            }
        },
    })
}

/// A file system option that takes a positive number: `None` when it is not given.
fn positive(opts: &MountOptions, key: &str, reason: &'static str) -> Result<Option<usize>> {
    let Some(v) = opts.fs_options.get(key) else { return Ok(None) };
    let v = v.as_deref().unwrap_or("");
    match v.parse().ok().filter(|n: &usize| *n >= 1) {
        Some(n) => Ok(Some(n)),
        None => {
            Err(fusebox::session::OptionError::Malformed { key: key.into(), value: v.into(), reason }.into())
        }
    }
}

fn passthrough(source: &Path, options: &[String]) -> Result<Built> {
    use fusebox_fs::passthrough::Passthrough;
    let mut opts = MountOptions::parse(
        options,
        &["fd_cache", "file_fds", "sync_close", "watch", "fopen_direct_io", "kernel_passthrough"],
    )?;
    // The daemon performs operations with its own (root) credentials: let the kernel check
    // every caller's permissions against the mirrored modes.
    opts.default_permissions = true;
    let fs = match positive(&opts, "fd_cache", "expected a positive number of cached fds")? {
        None => Passthrough::new(source)?,
        Some(n) => Passthrough::with_fd_cache(source, n)?,
    };
    let fs = match positive(&opts, "file_fds", "expected a positive number of descriptors")? {
        None => fs,
        Some(n) => fs.with_file_fds(n),
    };
    let fs = fs
        .with_sync_close(switch(&opts, "sync_close")?)
        .with_watch(switch(&opts, "watch")?)
        // On unless `fopen_direct_io=off`.
        .with_fopen_direct_io(
            !opts.fs_options.contains_key("fopen_direct_io") || switch(&opts, "fopen_direct_io")?,
        )
        .with_kernel_passthrough(kernel_passthrough(&opts)?);
    if opts.subtype.is_none() {
        opts.subtype = Some("passthrough".into());
    }
    if opts.fsname.is_none() {
        opts.fsname =
            Some(source.canonicalize().unwrap_or_else(|_| source.to_path_buf()).display().to_string());
    }
    let ttl = fs.default_ttl();
    Ok((Arc::new(fs), opts, ttl))
}

/// `kernel_passthrough`: on by default, unless the write-back cache was asked for explicitly
/// (the kernel grants only one of them); asking for both is an error.
fn kernel_passthrough(opts: &MountOptions) -> Result<bool> {
    if !opts.fs_options.contains_key("kernel_passthrough") {
        return Ok(opts.writeback != Some(true));
    }
    let on = switch(opts, "kernel_passthrough")?;
    if on && opts.writeback == Some(true) {
        anyhow::bail!(
            "kernel_passthrough and writeback exclude each other (the kernel grants passthrough only \
             without the write-back cache): drop one"
        );
    }
    Ok(on)
}

fn serve(fs: Arc<dyn Filesystem>, mountpoint: &Path, options: MountOptions, ttl: fusebox::Ttl) -> Result<()> {
    let mut config = Config { options, default_ttl: ttl, ..Default::default() };
    // memfs and passthrough follow the write-back cache rules (the framework enforces the
    // open-flag rules; both honour SETATTR times and KILL_SUIDGID): on unless `no_writeback`.
    config.caps.writeback_cache = config.options.writeback.unwrap_or(true);
    let session = Session::mount(fs, mountpoint, config)?;
    let mnt = session.mountpoint().to_path_buf();
    daemon::signal_ready();
    tracing::info!(mountpoint = %mnt.display(), "mounted");
    daemon::unmount_on_signals(&mnt).context("installing signal handlers")?;
    session.run()?;
    tracing::info!(mountpoint = %mnt.display(), "session ended");
    Ok(())
}
