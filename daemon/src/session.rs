//! One watched session directory and its waiters, as the registry keeps
//! them: the last look, the grace periods, and a pidfd for every process
//! whose exit can change the verdict. Plain state and the pidfd
//! bookkeeping; deciding and replying is the registry's business
//! ([`crate::sessions`]).

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use mio::unix::SourceFd;
use mio::{Interest, Token};
use serde_json::Value;
use verdict_proto::liveness::Watch;
use verdict_proto::rules::{Liveness, Snapshot, SnapshotCache};

use crate::process;
use crate::timers::TimerId;

/// Tokens with this bit set are pidfds; connections and the loop's own
/// sources never reach it.
pub const PIDFD_TAG: usize = 1 << (usize::BITS - 2);

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

#[derive(Debug)]
pub struct Tracked {
    pidfd: Option<OwnedFd>,
    pub token: Option<Token>,
    group_leader: bool,
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
    pub id: Value,
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

/// Hands out pidfd tokens and remembers whose they are.
#[derive(Debug, Default)]
pub struct PidfdTokens {
    next: usize,
    owner: HashMap<Token, (u64, i32)>,
}

impl PidfdTokens {
    /// The session and pid behind `token`, forgetting the token.
    pub fn take(&mut self, token: Token) -> Option<(u64, i32)> {
        self.owner.remove(&token)
    }

    /// Makes `session` (key `key`) track exactly the pids in `pids`:
    /// pidfds for new ones, old ones closed.
    pub fn track(&mut self, poll: &mio::Registry, key: u64, session: &mut Session, pids: &[Watch]) {
        let gone: Vec<i32> = session
            .tracked
            .keys()
            .filter(|pid| !pids.iter().any(|w| w.pid == **pid))
            .copied()
            .collect();
        for pid in gone {
            if let Some(tracked) = session.tracked.remove(&pid) {
                self.close(poll, tracked);
            }
        }
        for &Watch { pid, group_leader } in pids {
            if session.tracked.contains_key(&pid) {
                continue;
            }
            // The pidfd is opened after liveness was read: if the process
            // died in between, the pidfd is readable at once and the next
            // look sees it dead, so the exit is not missed.
            let pidfd = process::open_pidfd(pid);
            let token = pidfd.as_ref().and_then(|fd| {
                let token = Token(PIDFD_TAG | self.next);
                self.next = (self.next + 1) & !PIDFD_TAG;
                poll.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)
                    .ok()
                    .map(|()| token)
            });
            if let Some(token) = token {
                self.owner.insert(token, (key, pid));
            }
            session.tracked.insert(
                pid,
                Tracked {
                    pidfd,
                    token,
                    group_leader,
                },
            );
        }
    }

    /// The process behind a readable pidfd exited: stop tracking it, and
    /// note it for the next look. The pidfd is handed back so that the
    /// caller can close it after the verdict is out ([`PidfdTokens::release`]).
    pub fn exited(&mut self, session: &mut Session, pid: i32) -> Option<Tracked> {
        let tracked = session.tracked.remove(&pid)?;
        session.exited.push(Watch {
            pid,
            group_leader: tracked.group_leader,
        });
        if let Some(token) = tracked.token {
            self.owner.remove(&token);
        }
        Some(tracked)
    }

    /// Deregisters and closes a pidfd taken out with [`PidfdTokens::exited`].
    pub fn release(&mut self, poll: &mio::Registry, tracked: Tracked) {
        self.close(poll, tracked);
    }

    /// Closes every pidfd of `session`.
    pub fn untrack_all(&mut self, poll: &mio::Registry, session: &mut Session) {
        for (_, tracked) in session.tracked.drain() {
            self.close(poll, tracked);
        }
    }

    fn close(&mut self, poll: &mio::Registry, tracked: Tracked) {
        if let Some(token) = tracked.token {
            self.owner.remove(&token);
        }
        if let Some(fd) = tracked.pidfd {
            let _ = poll.deregister(&mut SourceFd(&fd.as_raw_fd()));
        }
    }
}
