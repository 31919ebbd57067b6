//! Lock-free per-opcode counters: requests, errors, bytes, latency histogram.

use super::perfile::PerFileInFlight;
use super::RequestClass;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

const OPCODES: usize = 64;
/// Latency buckets: bucket i holds latencies in [2^i, 2^(i+1)) microseconds.
const BUCKETS: usize = 32;

/// Counters of one opcode.
struct OpCounters {
    count: AtomicU64,
    errors: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    max_us: AtomicU64,
    /// Sum of all latencies, microseconds.
    total_us: AtomicU64,
    /// Most requests of this opcode in flight at once on one file (READ and WRITE only).
    max_one_file: AtomicU64,
    hist: [AtomicU64; BUCKETS],
}

impl OpCounters {
    fn new() -> Self {
        OpCounters {
            count: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
            total_us: AtomicU64::new(0),
            max_one_file: AtomicU64::new(0),
            hist: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// Statistics of one session, shared by all workers.
pub struct Stats {
    ops: Vec<OpCounters>,
    in_flight: [AtomicU64; 2],
    per_file: PerFileInFlight,
    uring_requests: AtomicU64,
    passthrough_opens: AtomicU64,
    backing_opened: AtomicU64,
    backing_closed: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            ops: (0..OPCODES).map(|_| OpCounters::new()).collect(),
            in_flight: Default::default(),
            per_file: PerFileInFlight::default(),
            uring_requests: AtomicU64::new(0),
            passthrough_opens: AtomicU64::new(0),
            backing_opened: AtomicU64::new(0),
            backing_closed: AtomicU64::new(0),
        }
    }
}

fn slot(opcode: u32) -> usize {
    if (opcode as usize) < OPCODES {
        opcode as usize
    } else {
        0
    }
}

fn class_index(class: RequestClass) -> usize {
    match class {
        RequestClass::Sync => 0,
        RequestClass::Background => 1,
    }
}

impl Stats {
    /// A request arrived with `bytes_in` bytes of payload.
    pub fn begin(&self, opcode: u32, class: RequestClass, bytes_in: usize) {
        let c = &self.ops[slot(opcode)];
        c.count.fetch_add(1, Relaxed);
        c.bytes_in.fetch_add(bytes_in as u64, Relaxed);
        self.in_flight[class_index(class)].fetch_add(1, Relaxed);
    }

    /// A request was answered (or needed no answer) after `latency`.
    pub fn end(&self, opcode: u32, class: RequestClass, error: bool, bytes_out: usize, latency: Duration) {
        let c = &self.ops[slot(opcode)];
        if error {
            c.errors.fetch_add(1, Relaxed);
        }
        c.bytes_out.fetch_add(bytes_out as u64, Relaxed);
        let us = latency.as_micros().min(u64::MAX as u128) as u64;
        let bucket = (64 - us.max(1).leading_zeros() as usize - 1).min(BUCKETS - 1);
        c.hist[bucket].fetch_add(1, Relaxed);
        c.max_us.fetch_max(us, Relaxed);
        c.total_us.fetch_add(us, Relaxed);
        self.in_flight[class_index(class)].fetch_sub(1, Relaxed);
    }

    /// A READ or WRITE on `nodeid` started: tracked per file until [`Stats::file_exit`].
    pub fn file_enter(&self, nodeid: u64, opcode: u32) {
        let n = self.per_file.enter(nodeid, opcode);
        self.ops[slot(opcode)].max_one_file.fetch_max(n as u64, Relaxed);
    }

    /// The READ or WRITE on `nodeid` announced by [`Stats::file_enter`] was answered.
    pub fn file_exit(&self, nodeid: u64, opcode: u32) {
        self.per_file.exit(nodeid, opcode)
    }

    /// A request arrived over io_uring (not `/dev/fuse`).
    pub fn uring_request(&self) {
        self.uring_requests.fetch_add(1, Relaxed);
    }

    /// Requests that arrived over io_uring so far.
    pub fn uring_requests(&self) -> u64 {
        self.uring_requests.load(Relaxed)
    }

    /// An OPEN or CREATE was answered with kernel passthrough.
    pub fn passthrough_open(&self) {
        self.passthrough_opens.fetch_add(1, Relaxed);
    }

    /// A backing file was registered with the kernel.
    pub fn backing_opened(&self) {
        self.backing_opened.fetch_add(1, Relaxed);
    }

    /// A backing file was unregistered.
    pub fn backing_closed(&self) {
        self.backing_closed.fetch_add(1, Relaxed);
    }

    /// A consistent-enough copy of all counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let ops = self
            .ops
            .iter()
            .enumerate()
            .filter(|(_, c)| c.count.load(Relaxed) > 0)
            .map(|(opcode, c)| {
                let mut hist: Vec<u64> = c.hist.iter().map(|h| h.load(Relaxed)).collect();
                let max_us = c.max_us.load(Relaxed);
                OpStats {
                    opcode: opcode as u32,
                    name: crate::wire::opcode_name(opcode as u32).to_string(),
                    count: c.count.load(Relaxed),
                    errors: c.errors.load(Relaxed),
                    bytes_in: c.bytes_in.load(Relaxed),
                    bytes_out: c.bytes_out.load(Relaxed),
                    // Buckets give upper bounds; the true value never exceeds the maximum.
                    p50_us: percentile(&hist, 0.50).min(max_us),
                    p99_us: percentile(&hist, 0.99).min(max_us),
                    max_us,
                    max_in_flight_one_file: c.max_one_file.load(Relaxed),
                    total_us: c.total_us.load(Relaxed),
                    latency_buckets: {
                        while hist.last() == Some(&0) {
                            hist.pop();
                        }
                        hist
                    },
                }
            })
            .collect();
        StatsSnapshot {
            ops,
            in_flight_sync: self.in_flight[0].load(Relaxed),
            in_flight_background: self.in_flight[1].load(Relaxed),
            uring_requests: self.uring_requests(),
            passthrough_opens: self.passthrough_opens.load(Relaxed),
            backing_ids_opened: self.backing_opened.load(Relaxed),
            backing_ids_live: self
                .backing_opened
                .load(Relaxed)
                .saturating_sub(self.backing_closed.load(Relaxed)),
        }
    }
}

/// Upper bound (µs) of the bucket holding quantile `q`.
fn percentile(hist: &[u64], q: f64) -> u64 {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return 0;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in hist.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return (1u64 << (i + 1)) - 1;
        }
    }
    u64::MAX
}

/// Counters of one opcode at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[allow(missing_docs)]
pub struct OpStats {
    pub opcode: u32,
    pub name: String,
    pub count: u64,
    pub errors: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// Most requests of this opcode in flight at once on a single file (READ and WRITE only).
    #[cfg_attr(feature = "serde", serde(default))]
    pub max_in_flight_one_file: u64,
    /// Sum of the latencies of the answered requests, microseconds.
    #[cfg_attr(feature = "serde", serde(default))]
    pub total_us: u64,
    /// Answered requests by latency: entry i counts those that took [2^i, 2^(i+1)) µs
    /// (entry 0 also holds those under 1 µs); trailing empty buckets are left out.
    #[cfg_attr(feature = "serde", serde(default))]
    pub latency_buckets: Vec<u64>,
}

/// All counters of a session at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StatsSnapshot {
    /// Opcodes that were seen at least once.
    pub ops: Vec<OpStats>,
    /// Synchronous requests being handled now.
    pub in_flight_sync: u64,
    /// Background requests being handled now.
    pub in_flight_background: u64,
    /// Requests that arrived over io_uring (the rest came through `/dev/fuse`).
    #[cfg_attr(feature = "serde", serde(default))]
    pub uring_requests: u64,
    /// OPENs and CREATEs answered with kernel passthrough (their data bypasses the daemon).
    #[cfg_attr(feature = "serde", serde(default))]
    pub passthrough_opens: u64,
    /// Backing files registered with the kernel so far.
    #[cfg_attr(feature = "serde", serde(default))]
    pub backing_ids_opened: u64,
    /// Backing files registered now (opened and not yet closed).
    #[cfg_attr(feature = "serde", serde(default))]
    pub backing_ids_live: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_bytes_and_latency() {
        let s = Stats::default();
        for us in [1u64, 3, 100, 5000] {
            s.begin(16, RequestClass::Sync, 4096);
            s.end(16, RequestClass::Sync, false, 16, Duration::from_micros(us));
        }
        s.begin(1, RequestClass::Sync, 0);
        s.end(1, RequestClass::Sync, true, 16, Duration::from_micros(1));
        let snap = s.snapshot();
        let w = snap.ops.iter().find(|o| o.name == "WRITE").unwrap();
        assert_eq!((w.count, w.bytes_in, w.errors, w.max_us), (4, 16384, 0, 5000));
        assert_eq!(w.p50_us, 3);
        assert_eq!(w.p99_us, 5000);
        // 1 µs in bucket 0, 3 in bucket 1 ([2, 4)), 100 in bucket 6, 5000 in bucket 12.
        assert_eq!(w.latency_buckets.len(), 13);
        assert_eq!((w.latency_buckets[0], w.latency_buckets[1], w.latency_buckets[6]), (1, 1, 1));
        assert_eq!((w.latency_buckets[12], w.total_us), (1, 5104));
        assert_eq!(snap.ops.iter().find(|o| o.name == "LOOKUP").unwrap().errors, 1);
        assert_eq!(snap.in_flight_sync, 0);
    }

    #[test]
    fn tracks_the_most_requests_of_one_file_in_flight() {
        let s = Stats::default();
        s.begin(15, RequestClass::Sync, 0);
        s.file_enter(9, 15);
        s.file_enter(9, 15);
        s.file_enter(10, 15);
        s.file_exit(9, 15);
        s.file_exit(9, 15);
        s.file_exit(10, 15);
        s.end(15, RequestClass::Sync, false, 0, Duration::from_micros(1));
        let read = s.snapshot().ops.into_iter().find(|o| o.name == "READ").unwrap();
        assert_eq!(read.max_in_flight_one_file, 2);
    }
}
