//! Deciding and answering: look at a session again, let the rules decide,
//! and deliver a verdict (or an error) to every waiter; then close what is
//! no longer needed.

use verdict_proto::liveness;
use verdict_proto::rules::{decide, Decision, Phase, Snapshot, SnapshotCache, Verdict};
use verdict_proto::wire::{ErrorCode, Event, VerdictEvent, VerdictLines};

use super::session::{dir_inode, Grace, Look, Session, Waiter};
use super::{push, Ctx, Registry, POLL_INTERVAL};
use crate::timers::Timer;

impl Registry {
    /// Looks at a session again and decides.
    pub fn refresh(&mut self, ctx: &mut Ctx, key: u64) {
        if self.observe(ctx, key) {
            self.announce(ctx, key);
            self.settle(ctx, key);
        }
    }

    /// Takes a new snapshot; false when the session is gone (and failed).
    pub(super) fn observe(&mut self, ctx: &mut Ctx, key: u64) -> bool {
        let Some(session) = self.sessions.get_mut(&key) else {
            return false;
        };
        let inode = dir_inode(&session.dir);
        match (inode, &session.vanished) {
            (None, Grace::Over) => {
                let message = format!(
                    "session directory {} was removed while waiting",
                    session.dir.display()
                );
                self.fail_session(ctx, key, ErrorCode::SessionRemoved, message);
                return false;
            }
            (None, Grace::Armed(_)) => return false,
            (None, Grace::Idle) => {
                // Give a directory renamed away and back (or being
                // replaced) the grace period before giving up on it.
                let timer = ctx.timers.add(ctx.config.grace, Timer::Vanished(key));
                session.vanished = Grace::Armed(timer);
                return false;
            }
            (Some(_), Grace::Armed(timer)) => {
                ctx.timers.cancel(*timer);
                session.vanished = Grace::Idle;
            }
            _ => {}
        }
        match inode {
            None => return false,
            Some(inode) if inode != session.inode => {
                // Replaced by another directory of the same name: the old
                // watch follows the old inode, so arm a new one, and
                // forget what the old directory's files said.
                session.inode = inode;
                session.cache = SnapshotCache::default();
                if session.inotify {
                    ctx.watcher.remove(&session.dir);
                    if ctx.watcher.add(&session.dir).is_err() {
                        session.inotify = false;
                        self.watches -= 1;
                    }
                }
            }
            Some(_) => {}
        }
        let snap = Snapshot::read_cached(&session.dir, &mut session.cache);
        let exited = std::mem::take(&mut session.exited);
        let seen = liveness::observe(&session.dir, snap.pid.value(), &exited);
        self.pidfds.track(ctx.poll, key, session, &seen.watch);
        session.last = Look {
            snap,
            live: seen.liveness,
        };
        if (!session.inotify || session.blind()) && session.poll_timer.is_none() {
            session.poll_timer = Some(ctx.timers.add(POLL_INTERVAL, Timer::Poll(key)));
        }
        true
    }

    pub(super) fn settle(&mut self, ctx: &mut Ctx, key: u64) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let phase = session.phase(false);
        let decision = decide(&session.last.snap, session.last.live, phase);
        if decision != Decision::AwaitLaunch {
            // A process is known now (or the files decide): C5 is moot.
            reset(ctx, &mut session.launch);
        }
        match decision {
            Decision::Verdict(verdict) => self.deliver_all(ctx, key, &verdict),
            Decision::AwaitGrace => {
                if session.grace == Grace::Idle {
                    session.grace =
                        Grace::Armed(ctx.timers.add(ctx.config.grace, Timer::Grace(key)));
                }
            }
            Decision::AwaitLaunch => {
                if session.launch == Grace::Idle {
                    let timer = ctx.timers.add(ctx.config.launch_grace, Timer::Launch(key));
                    session.launch = Grace::Armed(timer);
                }
            }
            // The process is back (a resumed session): grace starts over.
            Decision::Pending => reset(ctx, &mut session.grace),
        }
    }

    pub(super) fn deliver_all(&mut self, ctx: &mut Ctx, key: u64, verdict: &Verdict) {
        let Some(session) = self.sessions.remove(&key) else {
            return;
        };
        // One encoding for all the session's waiters.
        let event = VerdictEvent::new(&session.id, verdict, 0);
        let lines = VerdictLines::new(&event);
        for wkey in &session.waiters {
            if let Some(waiter) = self.take_waiter(ctx, *wkey) {
                match &lines {
                    Some(lines) => {
                        let elapsed = waiter.started.elapsed().as_millis() as u64;
                        ctx.out.send(waiter.conn, lines.line(&waiter.id, elapsed));
                        ctx.stats.verdicts_sent += 1;
                    }
                    None => send_verdict(ctx, &waiter, &session.id, verdict),
                }
            }
        }
        if session.followed {
            self.tell_subscribers(ctx, &session.dir, &session.id, verdict);
        }
        log::debug!(
            "verdict for {}: {:?} exit {}",
            session.dir.display(),
            verdict.outcome,
            verdict.exit()
        );
        self.close_session(ctx, session);
    }

    pub(super) fn fail_session(
        &mut self,
        ctx: &mut Ctx,
        key: u64,
        code: ErrorCode,
        message: String,
    ) {
        let Some(session) = self.sessions.remove(&key) else {
            return;
        };
        for wkey in &session.waiters {
            if let Some(waiter) = self.take_waiter(ctx, *wkey) {
                push(
                    ctx.out,
                    waiter.conn,
                    &waiter.id,
                    Event::Error {
                        code,
                        message: message.clone(),
                    },
                );
            }
        }
        self.close_session(ctx, session);
    }

    pub(super) fn close_session(&mut self, ctx: &mut Ctx, mut session: Box<Session>) {
        self.by_dir.remove(&session.dir);
        if session.inotify {
            // Removed after this round's verdicts are written (see
            // `end_round`): a waiter arriving later in the round for the
            // same directory keeps the watch instead of re-adding it.
            self.unwatch.push(session.dir.clone());
            self.watches -= 1;
        }
        self.pidfds.untrack_all(ctx.poll, &mut session);
        let timers = [
            session.poll_timer,
            session.grace.timer(),
            session.launch.timer(),
            session.vanished.timer(),
        ];
        timers
            .into_iter()
            .flatten()
            .for_each(|t| ctx.timers.cancel(t));
    }

    /// Removes a waiter everywhere but from its session's waiter set.
    pub(super) fn take_waiter(&mut self, ctx: &mut Ctx, wkey: u64) -> Option<Box<Waiter>> {
        let waiter = self.waiters.remove(&wkey)?;
        if let Some(timer) = waiter.cap_timer {
            ctx.timers.cancel(timer);
        }
        self.forget_id(waiter.conn, &waiter.id_key);
        Some(waiter)
    }

    /// Removes a waiter, and its session when it was the last one.
    pub(super) fn remove_waiter(&mut self, ctx: &mut Ctx, wkey: u64) -> Option<Box<Waiter>> {
        let waiter = self.take_waiter(ctx, wkey)?;
        let last = self.sessions.get_mut(&waiter.session).is_some_and(|s| {
            s.waiters.remove(&wkey);
            s.waiters.is_empty() && !s.followed
        });
        if last {
            if let Some(session) = self.sessions.remove(&waiter.session) {
                self.close_session(ctx, session);
            }
        }
        Some(waiter)
    }
}

/// Cancels a grace period's timer and makes it idle.
pub(super) fn reset(ctx: &mut Ctx, grace: &mut Grace) {
    if let Some(timer) = grace.timer() {
        ctx.timers.cancel(timer);
    }
    *grace = Grace::Idle;
}

impl Session {
    /// Where this session's wait stands; `cap_fired` for a waiter whose
    /// cap just fired.
    pub(super) fn phase(&self, cap_fired: bool) -> Phase {
        Phase {
            cap_fired,
            grace_over: self.grace == Grace::Over,
            launch_over: self.launch == Grace::Over,
        }
    }
}

pub(super) fn send_verdict(ctx: &mut Ctx, waiter: &Waiter, session_id: &str, verdict: &Verdict) {
    let elapsed = waiter.started.elapsed().as_millis() as u64;
    let event = VerdictEvent::new(session_id, verdict, elapsed);
    push(ctx.out, waiter.conn, &waiter.id, Event::Verdict(event));
    ctx.stats.verdicts_sent += 1;
}
