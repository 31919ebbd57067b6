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

/// The `found` program, or None after a note on stderr that `what` is not installed and the
/// test is skipped; when the run requires the service (`required_var`=1), a failure instead.
fn installed<T>(found: Option<T>, required_var: &str, what: &str) -> Option<T> {
    if found.is_none() {
        let required = std::env::var(required_var).is_ok_and(|v| v == "1");
        assert!(!required, "{required_var}=1 but {what} is not installed");
        eprintln!("{what} not installed: test skipped");
    }
    found
}
