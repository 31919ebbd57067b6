//! Parsing of request buffers into typed [`Request`]s and encoding of replies.
//!
//! A [`Request`] borrows from the buffer it was read into: names and WRITE payloads are slices of
//! it, never copies. Parsing never panics; any malformed input is a [`ParseError`].

mod parse;
pub mod reply;

pub use parse::{opcode_name, parse, ForgetList, Operation, ParseError, ParseOptions, Request};
