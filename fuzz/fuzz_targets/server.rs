//! The whole server (INIT, dispatch, memfs) never panics and answers every request that needs
//! an answer, whatever bytes follow INIT.
#![no_main]

use fusebox::abi;
use fusebox::fs::Ttl;
use fusebox::session::{Capabilities, IntoHandler, Server};
use fusebox::transport::{mem::MemChannel, ReplyChannel};
use fusebox_fs::memfs::{MemFs, MemFsOptions};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use zerocopy::IntoBytes;

fn init_frame() -> Vec<u8> {
    let init = abi::fuse_init_in { major: 7, minor: 45, max_readahead: 1 << 20, flags: u32::MAX, flags2: u32::MAX, ..Default::default() };
    let h = abi::fuse_in_header { len: 104, opcode: abi::opcode::FUSE_INIT, unique: 1, ..Default::default() };
    [h.as_bytes(), init.as_bytes()].concat()
}

fuzz_target!(|data: &[u8]| {
    let server = Server::new(Arc::new(MemFs::new(MemFsOptions { size: Some(16 << 20), ..Default::default() })).into_handler(), Capabilities::default(), Ttl::default(), false);
    let chan = Arc::new(MemChannel::new());
    let dyn_chan: Arc<dyn ReplyChannel> = chan.clone();
    server.handle(&init_frame(), &dyn_chan);
    // The input is a sequence of frames: each starts with a 2-byte length.
    let mut rest = data;
    while rest.len() >= 2 {
        let n = (u16::from_le_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        let mut frame = rest[2..2 + n].to_vec();
        rest = &rest[2 + n..];
        if frame.len() >= 4 {
            let len = (frame.len() as u32).to_ne_bytes();
            frame[0..4].copy_from_slice(&len);
        }
        // A SETLKW conflicting with an earlier lock waits until that lock is released or the
        // request is interrupted, which in this one-threaded harness is never: fuzz it as SETLK
        // (same parsing and lock logic, answers EAGAIN instead of waiting).
        if frame.len() >= 8 && u32::from_ne_bytes(frame[4..8].try_into().unwrap()) == abi::opcode::FUSE_SETLKW {
            frame[4..8].copy_from_slice(&abi::opcode::FUSE_SETLK.to_ne_bytes());
        }
        server.handle(&frame, &dyn_chan);
    }
});
