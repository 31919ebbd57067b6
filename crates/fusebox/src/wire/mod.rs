//! Parsing of request buffers into typed [`Request`]s and encoding of replies.
//!
//! A [`Request`] borrows from the buffer it was read into: names and WRITE payloads are slices of
//! it, never copies. Parsing never panics; any malformed input is a [`ParseError`]. The table
//! of operations ([`ops`]) says, per opcode, how it is decoded, named, classed and answered.

mod header;
pub mod ops;
mod parse;
pub mod reply;
pub mod types;

pub use header::{in_header, peek_class};
pub use ops::{needs_reply, opcode_info, opcode_name, ClassRule, OpcodeInfo, Operation, RequestClass};
pub use parse::{parse, ForgetList, ParseError, ParseOptions, Request};
pub use reply::ReplyChannel;
