//! `fusebox`: mount memfs, passthrough or dfs, unmount, show stats, benchmark; also run by
//! mount(8) as `mount.fuse.fusebox`.

#![forbid(unsafe_code)]

mod args;
mod daemon;
mod dfs;
mod helper;
mod logging;
mod metrics;
mod stats;

use anyhow::{Context, Result};
use args::{Cli, Command, FsKind};
use clap::{CommandFactory, Parser};
use fusebox::{Config, Filesystem, MountOptions, Session};
use fusebox_bench::options::BenchCommand;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    let mut argv: Vec<String> = std::env::args().collect();
    let argv0 = if argv.is_empty() { "fusebox".to_string() } else { argv.remove(0) };
    if helper::is_helper_name(&argv0) {
        match helper::translate(&argv) {
            Ok(helper::HelperAction::Fake) => return ExitCode::SUCCESS,
            Ok(helper::HelperAction::Mount(cmd)) => argv = cmd,
            Err(e) => {
                eprintln!("{argv0}: {e:#}");
                // mount(8) reads 1 from a helper as "incorrect invocation or permissions".
                return ExitCode::from(1);
            }
        }
    }
    // Usage errors, --help and --version: clap prints them and exits (2 for errors, 0 else).
    let cli = Cli::parse_from(std::iter::once("fusebox".to_string()).chain(argv.iter().cloned()));
    match run(cli, &argv) {
        Ok(()) => ExitCode::SUCCESS,
        // The daemon child already printed its own message.
        Err(e) if e.downcast_ref::<daemon::ChildFailed>().is_some() => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("fusebox: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, argv: &[String]) -> Result<()> {
    match cli.command {
        Command::Stats(a) => stats::show(&a.mountpoint, stats::Format::from_flags(a.json, a.prometheus)),
        Command::Bench(b) => match b.command {
            Some(BenchCommand::Tool { args }) => {
                let out = fusebox_bench::tool::run(&args)?;
                if !out.is_empty() {
                    println!("{out}")
                }
                Ok(())
            }
            Some(BenchCommand::Plot { json, out }) => fusebox_bench::chart::plot_saved(&json, &out),
            None => fusebox_bench::run(&b.into_options()?),
        },
        Command::Dfs(cmd) => dfs::run(cmd),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "fusebox", &mut std::io::stdout());
            Ok(())
        }
        Command::Umount(u) if u.abort => {
            // The daemon is not asked anything: it may be the one that hangs.
            let id = fusebox::session::abort(&u.mountpoint)?;
            eprintln!(
                "fusebox: aborted FUSE connection {id} and detached {}; its daemon no longer serves it",
                u.mountpoint.display()
            );
            Ok(())
        }
        Command::Umount(u) => {
            // The daemon behind the mount, if one answers: `umount` returns once it has exited,
            // so a `stats` or a new mount right after never meets the old daemon.
            let daemon = daemon_pid_if_answering(&u.mountpoint);
            fusebox::session::unmount(&u.mountpoint)?;
            if let Some(pid) = daemon.filter(|&p| p != std::process::id()) {
                if !wait_for_exit(pid, std::time::Duration::from_secs(10)) {
                    eprintln!("fusebox: unmounted; daemon {pid} is still finishing");
                }
            }
            Ok(())
        }
        Command::Mount(m) => {
            let (fs, mountpoint, flags) = m.into_parts();
            // Validate everything we can before forking a daemon, so errors reach the caller.
            let (daemon_opts, options) = split_daemon_options(&flags.options)?;
            let (filesystem, opts, ttl) = build(&fs, &options)?;
            if !flags.foreground && !daemon::is_daemon_child() {
                return daemon::spawn_and_wait(argv);
            }
            logging::init(opts.debug);
            // Bound before mounting: a port in use is an error, not a mount without metrics.
            let metrics = daemon_opts.metrics.map(metrics::MetricsListener::bind).transpose()?;
            serve(filesystem, &mountpoint, opts, ttl, metrics)
        }
    }
}

/// The pid of the daemon serving `mountpoint`, if it answers on its control socket.
fn daemon_pid_if_answering(mountpoint: &Path) -> Option<u32> {
    fusebox::session::query_status(mountpoint).ok().map(|r| r.pid)
}

/// `-o` options the CLI's daemon acts on itself (not the session or the file system).
#[derive(Debug, Default, PartialEq, Eq)]
struct DaemonOptions {
    /// `metrics=ADDR:PORT`: serve Prometheus metrics over HTTP.
    metrics: Option<SocketAddr>,
}

/// Take the daemon's own options out of the `-o` lists, and drop those only mount(8) and
/// systemd act on; the rest goes to [`MountOptions::parse`].
fn split_daemon_options(lists: &[String]) -> Result<(DaemonOptions, Vec<String>)> {
    let mut daemon = DaemonOptions::default();
    let mut rest = Vec::new();
    for item in lists.iter().flat_map(|l| l.split(',')).filter(|i| !i.is_empty()) {
        if let Some(v) = item.strip_prefix("metrics=") {
            let addr = v.parse::<SocketAddr>().map_err(|_| fusebox::session::OptionError::Malformed {
                key: "metrics".into(),
                value: v.into(),
                reason: "expected ADDRESS:PORT, e.g. 127.0.0.1:9101",
            })?;
            daemon.metrics = Some(addr);
        } else if item == "metrics" {
            return Err(fusebox::session::OptionError::MissingValue("metrics".into()).into());
        } else if !helper::is_mount8_only(item) {
            rest.push(item.to_string());
        }
    }
    Ok((daemon, rest))
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
pub(crate) fn switch(opts: &MountOptions, key: &str) -> Result<bool> {
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

fn serve(
    fs: Arc<dyn Filesystem>, mountpoint: &Path, options: MountOptions, ttl: fusebox::Ttl,
    metrics: Option<metrics::MetricsListener>,
) -> Result<()> {
    let mut config = Config { options, default_ttl: ttl, ..Default::default() };
    // memfs and passthrough follow the write-back cache rules (the framework enforces the
    // open-flag rules; both honour SETATTR times and KILL_SUIDGID): on unless `no_writeback`.
    config.caps.writeback_cache = config.options.writeback.unwrap_or(true);
    let session = Session::mount(fs, mountpoint, config)?;
    let mnt = session.mountpoint().to_path_buf();
    if let Some(m) = metrics {
        m.serve(mnt.clone(), session.server().clone())?;
    }
    daemon::signal_ready();
    tracing::info!(mountpoint = %mnt.display(), "mounted");
    daemon::unmount_on_signals(&mnt).context("installing signal handlers")?;
    session.run()?;
    tracing::info!(mountpoint = %mnt.display(), "session ended");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn daemon_options_are_taken_out_and_mount8_options_dropped() {
        let (d, rest) =
            split_daemon_options(&lists(&["size=1G,metrics=127.0.0.1:9101", "defaults,_netdev,ro"])).unwrap();
        assert_eq!(d.metrics, Some("127.0.0.1:9101".parse().unwrap()));
        assert_eq!(rest, ["size=1G", "ro"]);
        let e = |v: &str| format!("{:#}", split_daemon_options(&lists(&[v])).unwrap_err());
        assert!(
            e("metrics=localhost").contains("bad value for option 'metrics'"),
            "{}",
            e("metrics=localhost")
        );
        assert!(e("metrics").contains("needs a value"));
    }
}
