//! How the registry reacts to the event loop: timers, process exits, file
//! events, rescans and the end of a round. Each is handed to the session's
//! tracker, which decides whether to look again; [`Registry::refresh`]
//! takes the look.

use std::collections::HashSet;
use std::time::Instant;

use mio::Token;
use verdict_core::track;
use verdict_core::watch::{Change, Watcher};

use super::decide::send_verdict;
use super::{Ctx, Registry};
use crate::timers::Timer;

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
            Timer::Session(key) => {
                if let Some(session) = self.sessions.get_mut(&key) {
                    session.deadline = None;
                    session.tracker.due(Instant::now());
                    self.refresh(ctx, key);
                }
            }
            Timer::Idle | Timer::Status | Timer::Accept => {}
        }
    }

    fn cap_fired(&mut self, ctx: &mut Ctx, wkey: u64) {
        let Some(waiter) = self.waiters.get_mut(&wkey) else {
            return;
        };
        waiter.cap_timer = None;
        let key = waiter.session;
        // The session as it is now: the look may hold the verdict itself.
        if let Some(session) = self.sessions.get_mut(&key) {
            session.tracker.rescan();
        }
        self.refresh(ctx, key);
        let Some(session) = self.sessions.get(&key) else {
            return;
        };
        if !self.waiters.contains_key(&wkey) {
            return;
        }
        let verdict = session.tracker.at_cap();
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
            session.tracker.exited();
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
        // Entries of watched `sessions/` directories: maybe new sessions.
        let mut new_entries = Vec::new();
        let mut lost = false;
        for change in changes {
            match change {
                Change::Rescan => {
                    ctx.stats.queue_overflows += 1;
                    ctx.stats.rescans += 1;
                    log::warn!(
                        "inotify queue overflow: looking at all {} sessions again",
                        self.sessions.len()
                    );
                    for (key, session) in &mut self.sessions {
                        session.tracker.rescan();
                        keys.insert(*key);
                    }
                    lost = true;
                }
                Change::NewDirs(dirs) => new_entries.extend(
                    dirs.into_iter()
                        .filter(|dir| self.followed_parent(dir) && !self.by_dir.contains_key(dir)),
                ),
                Change::Paths(paths) => {
                    keys.extend(paths.iter().filter_map(|p| self.changed_at(p)))
                }
            }
        }
        for key in keys {
            self.refresh(ctx, key);
        }
        if !new_entries.is_empty() {
            self.new_entries(ctx, new_entries);
        }
        // New sessions' events may be among those lost.
        if lost {
            self.relist_followed(ctx);
        }
    }

    /// `dir` is an entry of a directory that subscriptions follow.
    fn followed_parent(&self, dir: &std::path::Path) -> bool {
        dir.parent()
            .is_some_and(|p| self.follow.watches_dir(p) || self.follow.watches_tree(p))
    }

    /// Tells the tracker of the session a changed path belongs to; its key.
    fn changed_at(&mut self, path: &std::path::Path) -> Option<u64> {
        let (key, change) = self.change_at(path)?;
        self.sessions.get_mut(&key)?.tracker.changed(change);
        Some(key)
    }

    /// The session a changed path belongs to, and what changed in it.
    fn change_at(&self, path: &std::path::Path) -> Option<(u64, track::Change)> {
        if let Some(key) = self.by_dir.get(path) {
            return Some((*key, track::Change::Dir));
        }
        let key = path.parent().and_then(|p| self.by_dir.get(p))?;
        Some((*key, track::Change::of_file(path)))
    }

    /// Looks at every session again (after a config reload, say).
    pub fn rescan_all(&mut self, ctx: &mut Ctx) {
        ctx.stats.rescans += 1;
        let keys: Vec<u64> = self.sessions.keys().copied().collect();
        for key in keys {
            if let Some(session) = self.sessions.get_mut(&key) {
                session.tracker.rescan();
            }
            self.refresh(ctx, key);
        }
    }
}
