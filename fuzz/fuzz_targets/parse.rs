//! The request parser never panics on arbitrary bytes.
#![no_main]

use fusebox::wire::{parse, ParseOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse(data, ParseOptions::default());
    let _ = parse(data, ParseOptions { setxattr_ext: true });
    // Also with a header whose length field matches, so bodies get decoded.
    if data.len() >= 40 {
        let mut v = data.to_vec();
        let len = (v.len() as u32).to_ne_bytes();
        v[0..4].copy_from_slice(&len);
        let _ = parse(&v, ParseOptions::default());
    }
});
