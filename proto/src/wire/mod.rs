//! Every type that crosses the socket (`PROTOCOL.md`), in one place.
//!
//! Requests are parsed by hand from a `serde_json::Value` so that a bad
//! request still yields its `id` and an error message that names the field;
//! they are encoded by serde. Replies are plain serde structs. Nothing here
//! touches a socket; the framing lives in [`crate::codec`].

mod event;
mod id;
mod lines;
mod request;
mod status;

pub use event::{
    bounded, Event, Reply, Started, VerdictEvent, Watching, WireOutcome, WireSource, MAX_NOTES,
    MAX_NOTE_CHARS, MAX_SUMMARY_CHARS, MAX_WORD_CHARS,
};
pub use id::RequestId;
pub use lines::VerdictLines;
pub use request::{parse_request, ErrorCode, Request, RequestError};
pub use status::{
    ConnectedClient, StatusCounters, WatchedSession, MAX_STATUS_LIST_BYTES, MAX_STATUS_SESSIONS,
    MAX_WAITS_PER_CONNECTION,
};

/// The protocol version this crate speaks; every message carries it as `"v"`.
pub const PROTOCOL_VERSION: u64 = 1;

/// The cap a daemon applies to a wait that names none (csa's own default
/// wait), in milliseconds.
pub const DEFAULT_CAP_MS: u64 = 240_000;

#[cfg(test)]
mod tests;
