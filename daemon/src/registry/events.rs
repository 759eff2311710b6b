//! How the registry reacts to the event loop: timers, process exits, file
//! events, rescans and the end of a round. Each of them only decides *when*
//! to look at a session again; [`Registry::refresh`] does the looking.

use std::collections::HashSet;

use mio::Token;
use verdict_proto::files::PID_FILE;
use verdict_proto::rules::decide_at_cap;

use super::decide::{reset, send_verdict};
use super::session::{Grace, Session};
use super::{Ctx, Registry};
use crate::timers::Timer;
use verdict_proto::watch::{Change, Watcher};

impl Registry {
    /// Ends a round of the event loop: gives up the watches of the
    /// sessions that closed in it. Watches are counted by owner, so a new
    /// waiter that reopened the directory in the same round keeps it (and
    /// the kernel's watch was never dropped and re-added in between).
    pub fn end_round(&mut self, watcher: &mut Watcher) {
        for dir in std::mem::take(&mut self.unwatch) {
            watcher.remove(&dir);
        }
    }

    /// A timer fired.
    pub fn on_timer(&mut self, ctx: &mut Ctx, timer: Timer) {
        match timer {
            Timer::Cap(wkey) => self.cap_fired(ctx, wkey),
            Timer::Vanished(key) => self.timer_ran_out(ctx, key, |s| s.vanished = Grace::Over),
            Timer::Launch(key) => self.timer_ran_out(ctx, key, |s| s.launch = Grace::Over),
            Timer::Grace(key) => self.timer_ran_out(ctx, key, |s| s.grace = Grace::Over),
            Timer::Poll(key) => self.timer_ran_out(ctx, key, |s| s.poll_timer = None),
            Timer::Idle | Timer::Status | Timer::Accept => {}
        }
    }

    /// A session's timer ran out: note it with `mark`, then look again.
    fn timer_ran_out(&mut self, ctx: &mut Ctx, key: u64, mark: impl FnOnce(&mut Session)) {
        if let Some(session) = self.sessions.get_mut(&key) {
            mark(session);
            self.refresh(ctx, key);
        }
    }

    fn cap_fired(&mut self, ctx: &mut Ctx, wkey: u64) {
        let Some(waiter) = self.waiters.get_mut(&wkey) else {
            return;
        };
        waiter.cap_timer = None;
        let key = waiter.session;
        self.refresh(ctx, key);
        let Some(session) = self.sessions.get(&key) else {
            return;
        };
        if !self.waiters.contains_key(&wkey) {
            return;
        }
        let verdict = decide_at_cap(&session.last.snap, session.last.live, session.phase(true));
        let id = session.id.clone();
        if let Some(waiter) = self.remove_waiter(ctx, wkey) {
            send_verdict(ctx, &waiter, &id, &verdict);
        }
    }

    /// A process behind pidfd `token` exited.
    pub fn process_exited(&mut self, ctx: &mut Ctx, token: Token) {
        let Some((key, pid)) = self.pidfds.take(token) else {
            return;
        };
        if let Some(session) = self.sessions.get_mut(&key) {
            let gone = self.pidfds.exited(session, pid);
            self.refresh(ctx, key);
            // Closed after the verdict is written: two syscalls off the path.
            if let Some(gone) = gone {
                self.pidfds.release(ctx.poll, gone);
            }
        }
    }

    /// File events arrived.
    pub fn on_changes(&mut self, ctx: &mut Ctx, changes: Vec<Change>) {
        let mut keys = HashSet::new();
        // Sessions something happened in (not merely rescanned).
        let mut touched = HashSet::new();
        // Entries of watched `sessions/` directories: maybe new sessions.
        let mut new_entries = Vec::new();
        for change in changes {
            match change {
                Change::Rescan => {
                    ctx.stats.queue_overflows += 1;
                    ctx.stats.rescans += 1;
                    log::warn!(
                        "inotify queue overflow: looking at all {} sessions again",
                        self.sessions.len()
                    );
                    keys.extend(self.sessions.keys().copied());
                }
                Change::NewDirs(dirs) => {
                    new_entries.extend(dirs.into_iter().filter(|dir| {
                        dir.parent().is_some_and(|p| {
                            self.follow.watches_dir(p) || self.follow.watches_tree(p)
                        }) && !self.by_dir.contains_key(dir)
                    }));
                }
                Change::Paths(paths) => {
                    for path in paths {
                        if let Some(key) = self.by_dir.get(&path) {
                            keys.insert(*key);
                            touched.insert(*key);
                        } else if let Some(key) = path.parent().and_then(|p| self.by_dir.get(p)) {
                            touched.insert(*key);
                            let pid_file = path.file_name().is_some_and(|name| name == PID_FILE);
                            // While the process runs, rule C0 holds whatever
                            // the other files say: its pidfd will tell the end.
                            if pid_file
                                || !self.sessions.get(key).is_some_and(|s| s.process_watched())
                            {
                                keys.insert(*key);
                            }
                        }
                    }
                }
            }
        }
        for key in &touched {
            if let Some(session) = self.sessions.get_mut(key) {
                // Something happened in the directory: rule C5's launch
                // grace starts over (settle re-arms it if still needed).
                // A session whose process is watched has no launch grace
                // armed, and is not looked at again for it.
                if session.launch.timer().is_some() {
                    reset(ctx, &mut session.launch);
                    keys.insert(*key);
                }
            }
        }
        for key in keys {
            self.refresh(ctx, key);
        }
        if !new_entries.is_empty() {
            self.new_entries(ctx, new_entries);
        }
    }

    /// Looks at every session again (after a config reload, say).
    pub fn rescan_all(&mut self, ctx: &mut Ctx) {
        ctx.stats.rescans += 1;
        let keys: Vec<u64> = self.sessions.keys().copied().collect();
        for key in keys {
            self.refresh(ctx, key);
        }
    }
}
