//! Logging to stderr, switchable to a file (FUSEBOX_LOG) or nowhere once a background daemon
//! has detached from the terminal.

use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use tracing_subscriber::EnvFilter;

static DETACHED: AtomicBool = AtomicBool::new(false);
static LOG_FILE: OnceLock<Option<Mutex<File>>> = OnceLock::new();

/// The writer handed to tracing: stderr, or the log file / nothing after [`detach`].
struct Sink;

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !DETACHED.load(Ordering::Relaxed) {
            return io::stderr().write(buf);
        }
        match LOG_FILE.get() {
            Some(Some(f)) => f.lock().unwrap_or_else(|e| e.into_inner()).write(buf),
            _ => Ok(buf.len()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Set up tracing: `info` by default, `debug` with `-o debug`; RUST_LOG overrides.
pub fn init(debug: bool) {
    let default = if debug { "debug" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(|| Sink).try_init();
}

/// Stop writing to the terminal: from now on logs go to $FUSEBOX_LOG, if set.
pub fn detach() {
    LOG_FILE.get_or_init(|| {
        std::env::var_os("FUSEBOX_LOG")
            .and_then(|p| std::fs::OpenOptions::new().create(true).append(true).open(p).ok().map(Mutex::new))
    });
    DETACHED.store(true, Ordering::Relaxed);
}
