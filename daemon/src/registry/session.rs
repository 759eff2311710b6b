//! One watched session directory and its waiters, as the registry keeps
//! them: the session's tracker (its lifecycle), the probe that looks at
//! it, and a pidfd for every process whose exit can change the verdict.
//! Plain state; replying is the registry's business ([`crate::registry`]).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use mio::Token;
use verdict_core::liveness::Watch;
use verdict_core::track::{Probe, Tracker};
use verdict_proto::wire::RequestId;

pub use super::pidfds::Tracked;

use crate::timers::TimerId;

#[derive(Debug)]
pub struct Session {
    pub id: String,
    /// Looks at the directory (and knows which one it is).
    pub probe: Probe,
    /// Decides when to look and what a look means.
    pub tracker: Tracker,
    /// The timer armed at the tracker's deadline.
    pub deadline: Option<TimerId>,
    pub waiters: HashSet<u64>,
    pub inotify: bool,
    /// pid → its pidfd (None where none could be opened: polled instead).
    pub tracked: HashMap<i32, Tracked>,
    /// Tracked processes whose pidfd fired since the last look: the next
    /// look does not read `/proc` for them.
    pub exited: Vec<Watch>,
    /// Followed for subscriptions: kept without waiters, ends reported.
    pub followed: bool,
    /// `started` was sent (or is not to be: it ran before the subscription).
    pub announced: bool,
}

impl Session {
    /// The session directory.
    pub fn dir(&self) -> &Path {
        self.probe.dir()
    }

    /// The pid `daemon.pid` named at the last look.
    pub fn pid(&self) -> Option<i32> {
        self.tracker.last().snap.pid.value().map(|p| p.pid)
    }

    /// Something of the session runs and every such process has an armed
    /// pidfd: its end will be an event.
    pub fn exits_watched(&self, alive: bool) -> bool {
        alive && !self.tracked.is_empty() && self.tracked.values().all(|t| t.token.is_some())
    }

    /// A live process without a pidfd: only a poll will see its end.
    pub fn blind(&self, alive: bool) -> bool {
        alive && self.tracked.values().any(|t| t.token.is_none())
    }
}

#[derive(Debug)]
pub struct Waiter {
    pub conn: Token,
    pub id: RequestId,
    /// `id` as the key of the connection's waits.
    pub id_key: super::IdKey,
    pub session: u64,
    pub started: Instant,
    pub cap_timer: Option<TimerId>,
}
