//! Request classes and per-opcode statistics.
//!
//! *Background* requests are those no process is blocked on: writeback WRITEs (FUSE_WRITE_CACHE),
//! RELEASE/RELEASEDIR and FORGET/BATCH_FORGET. Everything else is *synchronous*.

mod gate;
mod perfile;
mod stats;

pub use gate::{BackgroundGate, Queued};
pub use stats::{OpStats, Stats, StatsSnapshot};

pub use crate::wire::{peek_class, RequestClass};
