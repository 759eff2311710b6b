//! A subscription: every session's start and end under the daemon's
//! roots, as they happen, across reconnects.

use std::io::Write;
use std::path::PathBuf;

use verdict_proto::codec::{CodecError, ReplyReader};
use verdict_proto::wire::{Event, Request, Started, VerdictEvent};

use crate::{connect, Error, MAX_FAILED_RECONNECTS};

/// What a subscription reports.
#[derive(Debug, Clone)]
pub enum Notice {
    /// The daemon took the subscription (`again`: after losing it, so
    /// events in between may be missing).
    Subscribed {
        /// The daemon's roots the subscription covers.
        roots: Vec<String>,
        /// Sessions running under them now.
        live: u64,
        /// Not the first time.
        again: bool,
    },
    /// A new session's process is running.
    Started(Started),
    /// A session ended.
    Ended(VerdictEvent),
}

/// One notice with the protocol line it came in (for `--json`).
#[derive(Debug, Clone)]
pub struct Line {
    /// The notice.
    pub notice: Notice,
    /// The daemon's line (no newline).
    pub raw: String,
}

/// Subscribes to verdictd at `socket` (starting it if `spawn`), for the
/// sessions under `under` (absolute directories; all when empty).
/// Iterate it for what happens; it ends only with an error.
#[derive(Debug)]
pub struct Subscription {
    socket: PathBuf,
    spawn: bool,
    line: Vec<u8>,
    reader: Option<ReplyReader<std::os::unix::net::UnixStream>>,
    failures: u32,
    subscribed_before: bool,
}

impl Subscription {
    /// A subscription not yet made (the first call to `next` makes it).
    pub fn new(socket: PathBuf, under: Vec<String>, spawn: bool) -> Subscription {
        Subscription {
            socket,
            spawn,
            line: Request::Subscribe { under }.line(&1.into()),
            reader: None,
            failures: 0,
            subscribed_before: false,
        }
    }

    /// Connects and sends the request; `Ok(false)` when the connection
    /// could not be used (counted as a failure).
    fn open(&mut self) -> Result<bool, Error> {
        let stream = connect::connect(&self.socket, self.spawn).map_err(Error::Unreachable)?;
        if (&stream).write_all(&self.line).is_err() {
            return Ok(false);
        }
        self.reader = Some(ReplyReader::new(stream));
        Ok(true)
    }

    fn next_line(&mut self) -> Result<Line, Error> {
        loop {
            if self.failures > MAX_FAILED_RECONNECTS {
                return Err(Error::Lost(format!(
                    "lost verdictd at {}; giving up",
                    self.socket.display()
                )));
            }
            let Some(reader) = self.reader.as_mut() else {
                if !self.open()? {
                    self.failures += 1;
                }
                continue;
            };
            let (reply, raw) = match reader.read_reply() {
                Ok(Some(pair)) => pair,
                Ok(None) | Err(CodecError::Io(_)) => {
                    self.reader = None;
                    self.failures += 1;
                    continue;
                }
                Err(err) => return Err(Error::Protocol(err.to_string())),
            };
            let raw = String::from_utf8_lossy(&raw).into_owned();
            let notice = match reply.event {
                Event::Subscribed { roots, live } => {
                    self.failures = 0;
                    let again = std::mem::replace(&mut self.subscribed_before, true);
                    Notice::Subscribed { roots, live, again }
                }
                Event::Started(started) => Notice::Started(started),
                Event::Verdict(verdict) => Notice::Ended(verdict),
                // `under` outside the daemon's roots, say.
                Event::Error { message, .. } => return Err(Error::Usage(message)),
                _ => continue,
            };
            return Ok(Line { notice, raw });
        }
    }
}

impl Iterator for Subscription {
    type Item = Result<Line, Error>;

    fn next(&mut self) -> Option<Result<Line, Error>> {
        Some(self.next_line())
    }
}
