//! Shared vocabulary of `verdictd` and `verdict`: the wire types and NDJSON
//! codec of the socket protocol, the parsers for the files of a session
//! directory, and the completion-verdict rules as a pure function.
//!
//! This crate opens no sockets, starts no threads and needs no runtime, so a
//! client in any program can link it cheaply. Clients in other languages
//! follow `PROTOCOL.md` instead.
//!
//! Deciding a verdict from a session directory:
//!
//! ```
//! use verdict_proto::rules::{decide, Decision, Liveness, Phase, Snapshot};
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("result.toml"), "status = \"success\"\nexit_code = 0\n")?;
//! let snapshot = Snapshot::read(dir.path());
//! match decide(&snapshot, Liveness::Unknown, Phase::default()) {
//!     Decision::Verdict(v) => assert_eq!((v.status.as_str(), v.exit()), ("success", 0)),
//!     other => panic!("expected a verdict, got {other:?}"),
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Speaking the protocol over any stream:
//!
//! ```
//! use verdict_proto::codec::{encode_line, ReplyReader};
//! use verdict_proto::wire::{Event, Request};
//!
//! let line = encode_line(&Request::Ping.to_json(&1.into()));
//! assert_eq!(line, b"{\"v\":1,\"id\":1,\"op\":\"ping\"}\n");
//! let answer = b"{\"v\":1,\"id\":1,\"event\":\"pong\"}\n";
//! let (reply, _raw) = ReplyReader::new(&answer[..]).read_reply()?.expect("a reply");
//! assert_eq!(reply.event, Event::Pong);
//! # Ok::<(), verdict_proto::codec::CodecError>(())
//! ```

#![warn(missing_docs)]

pub mod codec;
pub mod files;
pub mod liveness;
pub mod paths;
pub mod resolve;
pub mod rules;
#[cfg(feature = "watch")]
pub mod watch;
pub mod wire;
