//! One watched session directory and its waiters, as the registry keeps
//! them: the last look, the grace periods, and a pidfd for every process
//! whose exit can change the verdict. Plain state; deciding and replying is the registry's business
//! ([`crate::registry`]).

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use mio::Token;
use verdict_proto::liveness::Watch;
use verdict_proto::wire::RequestId;

pub use super::pidfds::Tracked;
use verdict_proto::rules::{Liveness, Snapshot, SnapshotCache};

use crate::timers::TimerId;

/// The last look at a session: its files and whether anything of it runs.
#[derive(Debug)]
pub struct Look {
    /// The files.
    pub snap: Snapshot,
    /// What runs.
    pub live: Liveness,
}

#[derive(Debug)]
pub struct Session {
    pub dir: PathBuf,
    pub id: String,
    /// (dev, ino) of the directory when the watch was added.
    pub inode: (u64, u64),
    pub waiters: HashSet<u64>,
    pub inotify: bool,
    pub poll_timer: Option<TimerId>,
    /// pid → its pidfd (None where none could be opened: polled instead).
    pub tracked: HashMap<i32, Tracked>,
    /// Tracked processes whose pidfd fired since the last look: the next
    /// look does not read `/proc` for them.
    pub exited: Vec<Watch>,
    pub grace: Grace,
    /// Rule C5: no process known; any change in the directory restarts it.
    pub launch: Grace,
    /// The last reading of each file, to skip unchanged ones.
    pub cache: SnapshotCache,
    /// The directory went missing: grace before `session_removed`.
    pub vanished: Grace,
    pub last: Look,
    /// Followed for subscriptions: kept without waiters, ends reported.
    pub followed: bool,
    /// `started` was sent (or is not to be: it ran before the subscription).
    pub announced: bool,
}

impl Session {
    /// Something of the session runs and every such process has an armed
    /// pidfd: its end will be an event.
    pub fn process_watched(&self) -> bool {
        self.last.live == Liveness::Alive
            && !self.tracked.is_empty()
            && self.tracked.values().all(|t| t.token.is_some())
    }

    /// A live process without a pidfd: only a poll will see its end.
    pub fn blind(&self) -> bool {
        self.last.live == Liveness::Alive && self.tracked.values().any(|t| t.token.is_none())
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Grace {
    Idle,
    Armed(TimerId),
    Over,
}

impl Grace {
    pub fn timer(&self) -> Option<TimerId> {
        match self {
            Grace::Armed(timer) => Some(*timer),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct Waiter {
    pub conn: Token,
    pub id: RequestId,
    /// `id` as text: the key of the connection's waits.
    pub id_key: String,
    pub session: u64,
    pub started: Instant,
    pub cap_timer: Option<TimerId>,
}

pub fn dir_inode(dir: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(dir)
        .ok()
        .filter(|m| m.is_dir())
        .map(|m| (m.dev(), m.ino()))
}
