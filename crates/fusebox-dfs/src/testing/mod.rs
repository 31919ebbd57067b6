//! Real services for tests: PostgreSQL ([`pg_server`]) and an S3 server ([`s3_server`]),
//! each started by the test that needs it on free 127.0.0.1 ports and stopped afterwards,
//! also when the test process dies ([`watchdog`]).
//!
//! Used by the crate's unit tests and, through `#[path]`, by the mount tests of this crate
//! and of the CLI.

#![allow(dead_code)]

pub mod pg_server;
pub mod s3_server;
pub mod watchdog;
