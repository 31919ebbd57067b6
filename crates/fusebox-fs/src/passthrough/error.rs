//! Errors of [`super::Passthrough::new`] and errno conversions for the request handlers.

use fusebox::Errno;
use std::path::PathBuf;

/// Why a passthrough file system could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PassthroughError {
    /// The source directory does not exist.
    #[error("passthrough source {0} does not exist")]
    SourceMissing(PathBuf),
    /// The source exists but is not a directory.
    #[error("passthrough source {0} is not a directory")]
    NotADirectory(PathBuf),
    /// Any other failure opening or inspecting the source.
    #[error("cannot open passthrough source {path}: {source}")]
    Open {
        /// The source path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Convert a rustix errno into the errno answered to the kernel. ESTALE (a file handle whose
/// file is gone) is reported as ENOENT, which is what a local file system would say.
pub(crate) fn errno(e: rustix::io::Errno) -> Errno {
    match e.raw_os_error() {
        libc::ESTALE => Errno::ENOENT,
        n => Errno(n),
    }
}

/// Convert an `io::Error` (from `fusebox::sys`) into an errno, mapping ESTALE to ENOENT.
pub(crate) fn io_errno(e: std::io::Error) -> Errno {
    match e.raw_os_error() {
        Some(libc::ESTALE) => Errno::ENOENT,
        Some(n) => Errno(n),
        None => Errno::EIO,
    }
}
