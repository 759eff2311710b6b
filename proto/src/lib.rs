//! The wire of verdict: the types that cross `verdictd`'s socket, the
//! NDJSON codec that frames them, and the closed set of exit codes a client
//! turns a verdict into. Nothing else: no files, no processes, no sockets,
//! no threads; serde and serde_json are its only dependencies, so a client
//! in any program can link it cheaply. Clients in other languages follow
//! `PROTOCOL.md` instead.
//!
//! Speaking the protocol over any stream:
//!
//! ```
//! use verdict_proto::codec::ReplyReader;
//! use verdict_proto::wire::{Event, Request};
//!
//! let line = Request::Ping.line(&1.into());
//! assert_eq!(line, b"{\"v\":1,\"id\":1,\"op\":\"ping\"}\n");
//! let answer = b"{\"v\":1,\"id\":1,\"event\":\"pong\"}\n";
//! let (reply, _raw) = ReplyReader::new(&answer[..]).read_reply()?.expect("a reply");
//! assert_eq!(reply.event, Event::Pong);
//! # Ok::<(), verdict_proto::codec::CodecError>(())
//! ```

#![warn(missing_docs)]

pub mod codec;
mod exit;
pub mod wire;

pub use exit::{Exit, UnknownExit};
