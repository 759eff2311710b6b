//! Waits in flight: one `wait` per session sent at once on one
//! connection, the replies turned into [`Update`]s in arrival order.
//!
//! If the daemon goes away mid-wait, [`Waits`] reconnects (starting it
//! again if allowed) and asks again, for what is left of the cap, about
//! the sessions that have no answer yet; the verdict is computed from the
//! session's files, so a restart never changes it. A daemon that stops
//! answering cannot hold the caller past the cap plus [`ANSWER_MARGIN`].
//! When no daemon can be reached or started and the options allow it,
//! the sessions still pending are waited for here ([`crate::degraded`]),
//! one thread each, stopped when the [`Waits`] is dropped.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use verdict_proto::wire::{Request, WireOutcome, DEFAULT_CAP_MS};
use verdict_proto::Exit;

use crate::client::{Cap, Client, Link};
use crate::error::{Error, Refusal};
use crate::{Stopper, Verdict};

mod alone;
mod conn;

/// Reconnections in a row that never reached `watching` before giving up.
pub const MAX_FAILED_RECONNECTS: u32 = 5;
/// How long past the cap a connected daemon may take to answer before the
/// client gives up on it.
pub const ANSWER_MARGIN: Duration = Duration::from_secs(5);
/// The daemon's default cap, assumed until it says otherwise.
pub const DEFAULT_CAP: Duration = Duration::from_millis(DEFAULT_CAP_MS);
/// The longest single block on the socket.
const MAX_BLOCK: Duration = Duration::from_secs(3600);

/// When a wait on several sessions ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// When every session has an answer.
    All,
    /// At the first completed session (the rest are cancelled).
    Any,
}

/// What happened to the sessions of a [`Waits`], in arrival order.
#[derive(Debug)]
pub enum Update {
    /// The daemon accepted session `index`'s wait and watches `dir`.
    Watching {
        /// The session's position in the call.
        index: usize,
        /// Its id.
        session: String,
        /// Its directory.
        dir: PathBuf,
        /// Its process, when `daemon.pid` names one.
        pid: Option<i32>,
    },
    /// Session `index` has its answer.
    Verdict {
        /// The session's position in the call.
        index: usize,
        /// The answer.
        verdict: Verdict,
    },
    /// Session `index` was refused (unknown, ambiguous, removed).
    Refused {
        /// The session's position in the call.
        index: usize,
        /// Why.
        refusal: Refusal,
    },
    /// The sessions still pending are waited for here from now on,
    /// without a daemon.
    Degraded {
        /// Why no daemon is used: none could be reached or started
        /// (`None`: the client was made without one).
        why: Option<String>,
    },
    /// Nothing happened for [`Waits::tick_every`]'s period.
    Tick,
}

/// Where one session of the call stands.
#[derive(Debug)]
enum Slot {
    Pending,
    /// Answered with this exit code; `completed` unless the cap fired.
    Answered {
        exit: Exit,
        completed: bool,
    },
    /// No answer is expected: cancelled, or the same directory as an
    /// earlier session of the call.
    Dropped,
}

#[derive(Debug)]
struct Entry {
    /// As given.
    session: String,
    id: u64,
    dir: Option<PathBuf>,
    slot: Slot,
}

/// A call in flight: iterate it for [`Update`]s; it ends when the call is
/// over. See [`Client::wait_many`].
#[derive(Debug)]
pub struct Waits<'c> {
    client: &'c mut Client,
    entries: Vec<Entry>,
    mode: Mode,
    started: Instant,
    cap_ms: Option<u64>,
    tick: Option<Duration>,
    /// Failed connections in a row.
    failures: u32,
    /// Entries before this one have had their wait sent on the current
    /// connection (those still pending).
    next_send: usize,
    /// Waits sent on the current connection that the daemon has not yet
    /// acknowledged (`watching` or `error`): the next batch goes out when
    /// this is 0, so the replies we have not read stay within a batch.
    unacked: usize,
    /// The daemon accepted a wait on the current connection.
    watched: bool,
    alone: Option<alone::Alone>,
    queue: VecDeque<Update>,
    over: bool,
    stopper: Option<Stopper>,
    /// The sessions of the call in each directory answered from (see
    /// [`Waits::named_earlier`]).
    by_dir: std::collections::HashMap<PathBuf, Vec<usize>>,
}

impl<'c> Waits<'c> {
    pub(crate) fn new<S: AsRef<str>>(
        client: &'c mut Client,
        sessions: &[S],
        mode: Mode,
        cap: Cap,
    ) -> Waits<'c> {
        let first = client.next_id;
        client.next_id += sessions.len() as u64;
        let entries = sessions
            .iter()
            .zip(first..)
            .map(|(session, id)| Entry {
                session: session.as_ref().to_string(),
                id,
                dir: None,
                slot: Slot::Pending,
            })
            .collect();
        Waits {
            client,
            entries,
            mode,
            started: Instant::now(),
            cap_ms: cap.ms(),
            tick: None,
            failures: 0,
            next_send: 0,
            unacked: 0,
            watched: false,
            alone: None,
            queue: VecDeque::new(),
            over: false,
            stopper: None,
            by_dir: std::collections::HashMap::new(),
        }
    }

    /// Lets `stopper` stop this call from another thread (see [`Stopper`]).
    pub fn stop_with(&mut self, stopper: Stopper) {
        stopper.watch_stream(self.stream_copy());
        self.stopper = Some(stopper);
    }

    fn stream_copy(&self) -> Option<std::os::unix::net::UnixStream> {
        match &self.client.link {
            Link::Daemon(conn) => conn.stream.try_clone().ok(),
            Link::Alone(_) => None,
        }
    }

    fn stopped(&self) -> bool {
        self.stopper.as_ref().is_some_and(Stopper::is_stopped)
    }

    /// Yields [`Update::Tick`] whenever nothing happened for `every` (for a
    /// live status line).
    pub fn tick_every(&mut self, every: Duration) {
        self.tick = Some(every);
    }

    /// Time since the call started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The cap in force (0: none), once the daemon said it; else the one
    /// asked for (`None`: the daemon's default, not yet known).
    pub fn cap_ms(&self) -> Option<u64> {
        self.cap_ms
    }

    /// The exit code `verdict wait` gives the call, once it is over. All:
    /// a refused session (2) first, then an unreachable daemon (3), then a
    /// failure (1), then 124, else 0. Any: the first completed session's
    /// code; if none completed, 0 when one still runs, else as All.
    pub fn exit(&self) -> Exit {
        let answered = || {
            self.entries.iter().filter_map(|e| match e.slot {
                Slot::Answered { exit, completed } => Some((exit, completed)),
                _ => None,
            })
        };
        if self.mode == Mode::Any {
            let mut answered = answered();
            if let Some((exit, _)) = answered.find(|(_, completed)| *completed) {
                return exit;
            }
            if self.at_cap_alive() {
                return Exit::Success;
            }
        }
        answered()
            .map(|(exit, _)| exit)
            .fold(Exit::Success, Exit::worst)
    }

    fn at_cap_alive(&self) -> bool {
        self.entries.iter().any(|e| {
            matches!(
                e.slot,
                Slot::Answered {
                    exit: Exit::Success,
                    completed: false
                }
            )
        })
    }

    /// Cancels session `index`'s wait; it gets no answer.
    pub fn cancel(&mut self, index: usize) {
        if let Some(entry) = self.entries.get_mut(index) {
            if matches!(entry.slot, Slot::Pending) {
                entry.slot = Slot::Dropped;
                let id = entry.id;
                self.send_cancel(id);
            }
        }
    }

    fn send_cancel(&self, id: u64) {
        if let Link::Daemon(conn) = &self.client.link {
            let request = Request::Cancel { target: id.into() };
            // Best effort: closing the connection cancels it too.
            let _ = conn.send(&request.line(&0.into()));
        }
    }

    /// The call is over: every session answered, or (Any) one completed.
    fn finished(&self) -> bool {
        let completed = |e: &Entry| {
            matches!(
                e.slot,
                Slot::Answered {
                    completed: true,
                    ..
                }
            )
        };
        (self.mode == Mode::Any && self.entries.iter().any(completed))
            || !self.entries.iter().any(|e| matches!(e.slot, Slot::Pending))
    }

    /// When the client stops waiting for a daemon that does not answer.
    fn deadline(&self) -> Option<Instant> {
        let cap = match self.cap_ms {
            Some(0) => return None,
            Some(ms) => Duration::from_millis(ms),
            None => DEFAULT_CAP,
        };
        Some(self.started + cap + ANSWER_MARGIN)
    }

    /// What is left of the cap, for a (re)connection: 0 stays "no cap",
    /// and a positive cap stays positive.
    fn remaining_cap(&self) -> Option<u64> {
        let elapsed = self.started.elapsed().as_millis() as u64;
        self.cap_ms.map(|cap| {
            if cap == 0 {
                0
            } else {
                cap.saturating_sub(elapsed).max(1)
            }
        })
    }

    /// One step: queue what happened next, or fail.
    fn step(&mut self) -> Result<(), Error> {
        if self.stopped() {
            return Err(Error::Stopped);
        }
        if self.alone.is_none() && matches!(self.client.link, Link::Daemon(_)) {
            return self.step_daemon();
        }
        if self.alone.is_none() {
            self.start_alone();
        }
        self.step_alone()
    }

    /// An earlier session of the call, still expecting or holding its
    /// answer, is in `dir`: session `index` would be answered twice.
    /// Notes that session `index` is in `dir` (one lookup, not a scan of
    /// every earlier session: a call may name tens of thousands).
    fn named_earlier(&mut self, index: usize, dir: &std::path::Path) -> bool {
        let named = self.by_dir.entry(dir.to_path_buf()).or_default();
        if !named.contains(&index) {
            named.push(index);
        }
        named
            .iter()
            .any(|&j| j < index && !matches!(self.entries[j].slot, Slot::Dropped))
    }

    fn answer(&mut self, index: usize, verdict: Verdict) {
        self.entries[index].slot = Slot::Answered {
            exit: verdict.exit(),
            completed: verdict.event.outcome == WireOutcome::Completed,
        };
        self.queue.push_back(Update::Verdict { index, verdict });
    }

    fn refuse(&mut self, index: usize, refusal: Refusal) {
        self.entries[index].slot = Slot::Answered {
            exit: refusal.exit(),
            completed: false,
        };
        self.queue.push_back(Update::Refused { index, refusal });
    }
}

impl Iterator for Waits<'_> {
    type Item = Result<Update, Error>;

    fn next(&mut self) -> Option<Result<Update, Error>> {
        loop {
            if let Some(update) = self.queue.pop_front() {
                return Some(Ok(update));
            }
            if self.over {
                return None;
            }
            if self.finished() {
                self.over = true;
                self.stop_pending();
                continue;
            }
            if let Err(err) = self.step() {
                self.over = true;
                return Some(Err(err));
            }
        }
    }
}

impl Waits<'_> {
    /// Cancels what is still pending (at the daemon, or here).
    fn stop_pending(&mut self) {
        if let Some(alone) = self.alone.take() {
            // A Stopper may hold a copy of the write end: say it, not just close it.
            let _ = rustix::io::write(&alone.stop, b"x");
        }
        for i in 0..self.entries.len() {
            self.cancel(i);
        }
    }
}

impl Drop for Waits<'_> {
    fn drop(&mut self) {
        self.stop_pending();
    }
}
