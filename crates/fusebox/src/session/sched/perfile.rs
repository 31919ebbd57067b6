//! Requests of one file in flight at once, for READ and WRITE: shows whether the kernel sends
//! the pieces of a direct IO concurrently (FUSE_ASYNC_DIO) and whether the server serves them
//! concurrently. Sharded so that workers on different files rarely share a lock.

use std::collections::HashMap;
use std::sync::Mutex;

const SHARDS: usize = 32;

/// In-flight counts keyed by (node id, opcode).
pub(crate) struct PerFileInFlight {
    shards: Vec<Mutex<HashMap<(u64, u32), u32>>>,
}

impl Default for PerFileInFlight {
    fn default() -> Self {
        PerFileInFlight { shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect() }
    }
}

fn shard(nodeid: u64) -> usize {
    // Node ids are often sequential: spread neighbours over shards.
    (nodeid.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 59) as usize % SHARDS
}

impl PerFileInFlight {
    /// A request of `opcode` on `nodeid` started; returns how many are now in flight.
    pub(crate) fn enter(&self, nodeid: u64, opcode: u32) -> u32 {
        let mut m = self.shards[shard(nodeid)].lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry((nodeid, opcode)).or_insert(0);
        *n += 1;
        *n
    }

    /// A request of `opcode` on `nodeid` was answered.
    pub(crate) fn exit(&self, nodeid: u64, opcode: u32) {
        let mut m = self.shards[shard(nodeid)].lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&(nodeid, opcode)) {
            *n -= 1;
            if *n == 0 {
                m.remove(&(nodeid, opcode));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_file_and_opcode() {
        let p = PerFileInFlight::default();
        assert_eq!(p.enter(7, 15), 1);
        assert_eq!(p.enter(7, 15), 2);
        assert_eq!(p.enter(7, 16), 1);
        assert_eq!(p.enter(8, 15), 1);
        p.exit(7, 15);
        assert_eq!(p.enter(7, 15), 2);
        p.exit(7, 15);
        p.exit(7, 15);
        p.exit(7, 16);
        p.exit(8, 15);
        assert!(p.shards.iter().all(|s| s.lock().unwrap().is_empty()));
    }
}
