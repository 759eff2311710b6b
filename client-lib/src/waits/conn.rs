//! The daemon side of a [`Waits`]: send the waits on the connection, read
//! the replies within the deadline, reconnect (or go on alone) when the
//! connection is lost.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use verdict_proto::codec::CodecError;
use verdict_proto::wire::{Event, Reply, Request};

use super::{Slot, Update, Waits, ANSWER_MARGIN, MAX_BLOCK, MAX_FAILED_RECONNECTS};

/// Waits sent at a time on one connection (see `send_waits`): their
/// replies, worst case a few KiB each, stay well under the megabyte the
/// daemon lets a client leave unread.
const SEND_BATCH: usize = 64;
use crate::client::Link;
use crate::error::{Error, Refusal};
use crate::Verdict;

impl Waits<'_> {
    pub(super) fn step_daemon(&mut self) -> Result<(), Error> {
        if self.unacked == 0 && self.next_send < self.entries.len() {
            if let Err(err) = self.send_waits() {
                return self.lost(err.to_string());
            }
        }
        let timeout = self.read_timeout();
        let Link::Daemon(conn) = &mut self.client.link else {
            return Ok(());
        };
        let _ = conn.stream.set_read_timeout(Some(timeout));
        let (reply, raw) = match conn.reader.read_reply() {
            Ok(Some(pair)) => pair,
            Ok(None) => return self.lost("the daemon closed the connection".into()),
            Err(CodecError::Io(err))
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if self.deadline().is_some_and(|at| Instant::now() >= at) {
                    return self.lost("no answer".into());
                }
                if self.tick.is_some() {
                    self.queue.push_back(Update::Tick);
                }
                return Ok(());
            }
            Err(CodecError::Io(err)) => return self.lost(err.to_string()),
            Err(err) => return Err(Error::Protocol(err.to_string())),
        };
        self.handle(reply, &raw)
    }

    /// Sends the next [`SEND_BATCH`] waits. The daemon drops a client that
    /// leaves a megabyte of replies unread, and a client writing thousands
    /// of waits before reading any would be one: so the next batch goes
    /// out only once the last is acknowledged.
    fn send_waits(&mut self) -> std::io::Result<()> {
        let remaining = self.remaining_cap();
        let cwd = self.client.options.cwd.clone();
        let mut lines = Vec::new();
        while self.next_send < self.entries.len() && self.unacked < SEND_BATCH {
            let entry = &self.entries[self.next_send];
            self.next_send += 1;
            if !matches!(entry.slot, Slot::Pending) {
                continue;
            }
            let request = Request::Wait {
                session: entry.session.clone(),
                cap_ms: remaining,
                cwd: cwd.clone(),
            };
            lines.extend(request.line(&entry.id.into()));
            self.unacked += 1;
        }
        match &self.client.link {
            Link::Daemon(conn) => conn.send(&lines),
            Link::Alone(_) => Ok(()),
        }
    }

    fn handle(&mut self, reply: Reply, raw: &[u8]) -> Result<(), Error> {
        let Some(index) = self
            .entries
            .iter()
            .position(|e| reply.id.as_u64() == Some(e.id))
        else {
            return Ok(());
        };
        if matches!(reply.event, Event::Watching(_) | Event::Error { .. }) {
            self.unacked = self.unacked.saturating_sub(1);
        }
        if !matches!(self.entries[index].slot, Slot::Pending) {
            return Ok(());
        }
        match reply.event {
            Event::Watching(watching) => {
                self.watched = true;
                self.cap_ms.get_or_insert(watching.cap_ms);
                let dir = PathBuf::from(&watching.dir);
                let earlier = self.named_earlier(index, &dir);
                self.entries[index].dir = Some(dir.clone());
                if earlier {
                    // Named twice (say as an id and as a path): answer once.
                    self.cancel(index);
                    return Ok(());
                }
                self.queue.push_back(Update::Watching {
                    index,
                    session: watching.session,
                    dir,
                    pid: watching.pid,
                });
            }
            Event::Verdict(event) => {
                let dir = self.entries[index].dir.clone();
                let verdict = Verdict::from_line(event, dir, raw, self.started);
                self.answer(index, verdict);
            }
            Event::Error { code, message } => {
                let line = String::from_utf8_lossy(raw).into_owned();
                self.refuse(index, Refusal::new(code, message, line));
            }
            _ => {}
        }
        Ok(())
    }

    /// The connection is gone: reconnect, go on alone, or give up.
    fn lost(&mut self, why: String) -> Result<(), Error> {
        if self.stopped() {
            return Err(Error::Stopped);
        }
        self.failures = if self.watched { 1 } else { self.failures + 1 };
        let socket = self.client.options.socket.display().to_string();
        if self.deadline().is_some_and(|at| Instant::now() >= at) {
            return Err(Error::Lost(format!(
                "verdictd at {socket} did not answer within {}s of the cap ({why}); giving up",
                ANSWER_MARGIN.as_secs()
            )));
        }
        if self.failures > MAX_FAILED_RECONNECTS {
            return Err(Error::Lost(format!(
                "lost the connection to verdictd at {socket} ({why}); giving up"
            )));
        }
        self.client.reconnect()?;
        if let Some(stopper) = &self.stopper {
            stopper.watch_stream(self.stream_copy());
        }
        self.next_send = 0;
        self.unacked = 0;
        self.watched = false;
        Ok(())
    }

    /// Wake up for the tick, and in time for the deadline.
    fn read_timeout(&self) -> Duration {
        let until_deadline = self
            .deadline()
            .map(|at| at.saturating_duration_since(Instant::now()))
            .unwrap_or(MAX_BLOCK);
        // A zero timeout means "block forever" to the socket: never pass it.
        until_deadline
            .min(self.tick.unwrap_or(MAX_BLOCK))
            .min(MAX_BLOCK)
            .max(Duration::from_millis(1))
    }
}
