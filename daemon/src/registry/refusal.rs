//! Requests the registry refuses, and the bound on what an error says.

use std::path::PathBuf;

use verdict_core::resolve::LookupError;
use verdict_proto::wire::{ErrorCode, Event, MAX_WAITS_PER_CONNECTION};

/// Longest error message sent, in characters: an error may quote a
/// request, and every reply must fit in one line.
const MAX_MESSAGE_CHARS: usize = 2048;

/// A request the registry refused, answered with an `error` event whose
/// code is [`Refusal::code`] and whose message is the error's text.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The session named cannot be found.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// The directory went away (or is not one) as it was being watched.
    #[error("{0} is not a session directory")]
    NotADirectory(PathBuf),
    /// inotify refused the directory for a reason other than its limit.
    #[error("cannot watch {dir}: {reason}")]
    Unwatchable {
        /// The directory.
        dir: PathBuf,
        /// What inotify said.
        reason: String,
    },
    /// The request's id is already in use on this connection.
    #[error("a {what} with id {id} is already in flight on this connection")]
    DuplicateId {
        /// `wait` or `subscription`.
        what: &'static str,
        /// The id.
        id: String,
    },
    /// The lookup thread has [`crate::lookup::MAX_PENDING`] ids queued.
    #[error(
        "verdictd is looking up {} session ids already; try again later, or name the session by its path",
        crate::lookup::MAX_PENDING
    )]
    LookupsFull,
    /// This connection has [`MAX_WAITS_PER_CONNECTION`] waits in flight.
    #[error("at most {MAX_WAITS_PER_CONNECTION} waits per connection")]
    ConnectionFull,
    /// The daemon has `max_waits` waits in flight.
    #[error(
        "verdictd has {0} waits in flight, its limit (max_waits); \
         try again later, or raise max_waits in its config"
    )]
    DaemonFull(usize),
    /// A subscription's `under` that cannot be used.
    #[error("cannot subscribe under {dir}: {reason}")]
    BadUnder {
        /// The directory given.
        dir: String,
        /// Why.
        reason: String,
    },
}

impl Refusal {
    /// The protocol's code for it.
    pub fn code(&self) -> ErrorCode {
        match self {
            Refusal::Lookup(err) => err.code(),
            Refusal::NotADirectory(_) | Refusal::Unwatchable { .. } => ErrorCode::UnknownSession,
            Refusal::DuplicateId { .. } | Refusal::BadUnder { .. } => ErrorCode::BadRequest,
            Refusal::ConnectionFull | Refusal::DaemonFull(_) | Refusal::LookupsFull => {
                ErrorCode::Busy
            }
        }
    }

    /// The `error` event that answers it.
    pub fn event(&self) -> Event {
        Event::Error {
            code: self.code(),
            message: self.to_string(),
        }
    }
}

/// `event` with an error's message cut to [`MAX_MESSAGE_CHARS`]: an error
/// may quote the request (a session name, a field's value), and every
/// reply must fit in one line.
pub fn bounded(event: Event) -> Event {
    match event {
        Event::Error { code, message } => Event::Error {
            code,
            message: verdict_proto::wire::bounded(&message, MAX_MESSAGE_CHARS),
        },
        event => event,
    }
}
