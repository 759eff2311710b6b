//! One watched session directory and its waiters, as the registry keeps
//! them: the last snapshot, the grace periods, the pidfd of the session
//! process. Plain state and the pidfd bookkeeping; deciding and replying is
//! the registry's business ([`crate::sessions`]).

use std::collections::HashSet;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use mio::unix::SourceFd;
use mio::{Interest, Token};
use serde_json::Value;
use verdict_proto::files::PidFile;
use verdict_proto::rules::{Liveness, Snapshot, SnapshotCache};

use crate::process;
use crate::timers::TimerId;

/// Tokens at and above this are pidfds: `PIDFD_TOKEN_BASE + session key`.
pub const PIDFD_TOKEN_BASE: usize = 1 << 30;

#[derive(Debug)]
pub struct Session {
    pub dir: PathBuf,
    pub id: String,
    /// (dev, ino) of the directory when the watch was added.
    pub inode: (u64, u64),
    pub waiters: HashSet<u64>,
    pub inotify: bool,
    pub poll_timer: Option<TimerId>,
    pub tracked: Option<Tracked>,
    pub grace: Grace,
    /// The last reading of each file, to skip unchanged ones.
    pub cache: SnapshotCache,
    /// The directory went missing: grace before `session_removed`.
    pub vanished: Grace,
    pub last: (Snapshot, Liveness),
}

impl Session {
    /// The process was alive at the last look and its pidfd is armed.
    pub fn process_watched(&self) -> bool {
        self.last.1 == Liveness::Alive && self.tracked.as_ref().is_some_and(|t| t.pidfd.is_some())
    }
}

#[derive(Debug)]
pub struct Tracked {
    pub pid: PidFile,
    pub pidfd: Option<OwnedFd>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Grace {
    Idle,
    Armed(TimerId),
    Over,
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

/// Makes `session` track the process `pid` with a pidfd, replacing any
/// previous one (a resumed session writes a new `daemon.pid`).
pub fn track(poll: &mio::Registry, key: u64, session: &mut Session, pid: PidFile) {
    if session.tracked.as_ref().is_some_and(|t| t.pid == pid) {
        return;
    }
    untrack(poll, session);
    // Open the pidfd before checking liveness: if the process dies in
    // between, the pidfd is already readable and the exit is not missed.
    let pidfd = process::open_pidfd(pid.pid).filter(|fd| {
        let token = Token(PIDFD_TOKEN_BASE + key as usize);
        poll.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)
            .is_ok()
    });
    session.tracked = Some(Tracked { pid, pidfd });
}

pub fn untrack(poll: &mio::Registry, session: &mut Session) {
    if let Some(fd) = session.tracked.take().and_then(|t| t.pidfd) {
        let _ = poll.deregister(&mut SourceFd(&fd.as_raw_fd()));
    }
}
