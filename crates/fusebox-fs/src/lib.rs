//! Ready file systems for fusebox: `memfs` (in memory) and `passthrough` (mirrors a directory).

pub mod locks;
pub mod memfs;
pub mod passthrough;
