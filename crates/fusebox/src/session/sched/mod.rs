//! Scheduling: the worker pool, the background gate and lane, release/open ordering, request
//! classes and per-opcode statistics.
//!
//! *Background* requests are those no process is blocked on: writeback WRITEs (FUSE_WRITE_CACHE),
//! RELEASE/RELEASEDIR and FORGET/BATCH_FORGET. Everything else is *synchronous*.

mod gate;
pub(crate) mod order;
mod perfile;
mod stats;
mod workers;

pub use gate::{BackgroundGate, Queued};
pub use stats::{OpStats, Stats, StatsSnapshot};
pub(crate) use workers::Pool;
pub use workers::{PoolConfig, IDLE_EXIT};

pub use crate::wire::{peek_class, RequestClass};
