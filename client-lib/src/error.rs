//! One error type for every way a call can fail, and the exit code
//! `verdict wait` gives for it.

use std::fmt;

use verdict_proto::wire::ErrorCode;
use verdict_proto::Exit;

use crate::degraded;

/// Why a call has no answer.
#[derive(Debug)]
pub enum Error {
    /// No daemon listens and none could be started (and waiting without
    /// one was not allowed).
    Unreachable(String),
    /// The daemon went away or stopped answering, and the client gave up.
    Lost(String),
    /// The daemon sent something that is not the protocol.
    Protocol(String),
    /// The daemon (or, without one, the lookup) refused the request.
    Refused(Refusal),
    /// Waiting without a daemon failed.
    Degraded(degraded::Error),
    /// The caller stopped the wait ([`crate::Stopper`]).
    Stopped,
    /// The request cannot be made as asked (a bad argument, a directory
    /// that cannot be used).
    Usage(String),
}

impl Error {
    /// The exit code `verdict wait` returns for this error.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Refused(refusal) => refusal.exit(),
            Error::Usage(_) => Exit::Usage,
            Error::Degraded(degraded::Error::NoSession(_)) => Exit::Failure,
            Error::Unreachable(_)
            | Error::Lost(_)
            | Error::Protocol(_)
            | Error::Degraded(_)
            | Error::Stopped => Exit::Unreachable,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unreachable(message) | Error::Lost(message) | Error::Usage(message) => {
                f.write_str(message)
            }
            Error::Protocol(message) => write!(f, "protocol error: {message}"),
            Error::Refused(refusal) => f.write_str(&refusal.message),
            Error::Degraded(err) => err.fmt(f),
            Error::Stopped => f.write_str("the wait was stopped"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Degraded(err) => Some(err),
            _ => None,
        }
    }
}

/// A wait the daemon (or the lookup without one) refused: an unknown or
/// ambiguous session, a vanished directory, a daemon at its limits.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The protocol's error code.
    pub code: ErrorCode,
    /// What is wrong, for a person.
    pub message: String,
    /// The error as one protocol line (what `verdict wait --json` prints).
    pub line: String,
}

impl Refusal {
    pub(crate) fn new(code: ErrorCode, message: String, line: String) -> Refusal {
        Refusal {
            code,
            message,
            line,
        }
    }

    /// The exit code `verdict wait` returns for it.
    pub fn exit(&self) -> Exit {
        match self.code {
            ErrorCode::UnknownSession | ErrorCode::BadRequest => Exit::Usage,
            ErrorCode::SessionRemoved => Exit::Failure,
            _ => Exit::Unreachable,
        }
    }
}
