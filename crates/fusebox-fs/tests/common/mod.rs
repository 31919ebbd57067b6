//! The shared test support (crates/fusebox-testkit), plus a passthrough mount helper that
//! needs this crate.
#![allow(dead_code, unused_imports)]

pub use fusebox_testkit::*;

pub mod matrix;
pub mod pt;
