//! pidfd set-up and tear-down: a pidfd for every process whose exit can
//! change a session's verdict, registered in the loop under a token with
//! [`PIDFD_TAG`] set, and the map back from token to session and pid.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};

use mio::unix::SourceFd;
use mio::{Interest, Token};
use verdict_core::liveness::{open_pidfd, Watch};

use super::session::Session;

/// Tokens with this bit set are pidfds; connections and the loop's own
/// sources never reach it.
pub const PIDFD_TAG: usize = 1 << (usize::BITS - 2);

#[derive(Debug)]
pub struct Tracked {
    pidfd: Option<OwnedFd>,
    /// The loop's token; `None` when no pidfd could be opened (polled).
    pub token: Option<Token>,
    group_leader: bool,
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
            let pidfd = open_pidfd(pid);
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
