//! Driving a session's tracker and answering: take the look it asks for,
//! act on its step (a verdict or an error for every waiter, or a deadline
//! to wake up for), then close what is no longer needed.

use std::time::Instant;

use verdict_core::rules::{Liveness, Verdict};
use verdict_core::track::{Found, Identity, Look, Step};
use verdict_proto::wire::{ErrorCode, Event, VerdictLines};

use super::session::{Session, Waiter};
use super::{push, Ctx, Registry};
use crate::timers::Timer;

impl Registry {
    /// Looks at a session again if its tracker wants a look, and acts on
    /// what the tracker concludes.
    pub fn refresh(&mut self, ctx: &mut Ctx, key: u64) {
        if let Some(step) = self.look(ctx, key) {
            self.act(ctx, key, step);
        }
    }

    /// Takes the look the tracker asked for (probe, pidfds, then the
    /// tracker's step); `None` when there is no such session or no look
    /// was due.
    pub(super) fn look(&mut self, ctx: &mut Ctx, key: u64) -> Option<Step> {
        let session = self.sessions.get_mut(&key)?;
        if !session.tracker.stale() {
            // A verdict file that arrived while the process runs is read
            // now, so that its exit finds it read.
            let ahead = session.tracker.read_ahead();
            if !ahead.is_empty() {
                session.probe.read_ahead(ahead);
            }
            sync_deadline(ctx, key, session);
            return None;
        }
        let plan = session.tracker.plan(ctx.watcher.more());
        let look = match session.probe.identity() {
            Identity::Gone => Look::Gone,
            identity => {
                if identity == Identity::Replaced && session.inotify {
                    // The old watch follows the old inode: watch the path
                    // again before reading, so no change is missed.
                    ctx.watcher.remove(session.probe.dir());
                    if ctx.watcher.add(session.probe.dir()).is_err() {
                        session.inotify = false;
                        self.watches -= 1;
                    }
                }
                let exited = std::mem::take(&mut session.exited);
                let (snap, seen, subdirs) = session.probe.read(&plan, &exited);
                self.pidfds.track(ctx.poll, key, session, &seen.watch);
                let alive = seen.liveness == Liveness::Alive;
                Look::Found(Found {
                    snap,
                    live: seen.liveness,
                    exits_watched: session.exits_watched(alive),
                    polled: !session.inotify || session.blind(alive),
                    subdirs,
                    mismatch: seen.mismatch,
                })
            }
        };
        Some(
            session
                .tracker
                .observe(Instant::now(), look, &ctx.config.timing()),
        )
    }

    /// Acts on a tracker's step: a verdict for every waiter, an error when
    /// the directory is gone for good, or the deadline to wake up for.
    pub(super) fn act(&mut self, ctx: &mut Ctx, key: u64, step: Step) {
        if step != Step::Removed {
            self.announce(ctx, key);
        }
        match step {
            Step::Verdict(verdict) => self.deliver_all(ctx, key, &verdict),
            Step::Removed => {
                let Some(session) = self.sessions.get(&key) else {
                    return;
                };
                let message = format!(
                    "session directory {} was removed while waiting",
                    session.dir().display()
                );
                self.fail_session(ctx, key, ErrorCode::SessionRemoved, message);
            }
            Step::Wait => {
                if let Some(session) = self.sessions.get_mut(&key) {
                    sync_deadline(ctx, key, session);
                }
            }
        }
    }

    pub(super) fn deliver_all(&mut self, ctx: &mut Ctx, key: u64, verdict: &Verdict) {
        let Some(session) = self.sessions.remove(&key) else {
            return;
        };
        // Every waiter's line goes out before any bookkeeping: one
        // encoding for all of them, written into one reused buffer.
        let event = verdict.event(&session.id, 0);
        let lines = VerdictLines::new(&event);
        let mut line = std::mem::take(&mut self.line);
        for wkey in &session.waiters {
            let Some(waiter) = self.waiters.get(wkey) else {
                continue;
            };
            match &lines {
                Some(lines) => {
                    let elapsed = waiter.started.elapsed().as_millis() as u64;
                    lines.write(&waiter.id, elapsed, &mut line);
                    ctx.out.send(waiter.conn, &line);
                    ctx.stats.verdicts_sent += 1;
                }
                None => send_verdict(ctx, waiter, &session.id, verdict),
            }
        }
        self.line = line;
        for wkey in &session.waiters {
            self.take_waiter(ctx, *wkey);
        }
        if session.followed {
            self.tell_subscribers(ctx, session.dir(), &session.id, verdict);
        }
        log::debug!(
            "verdict for {}: {:?} exit {}",
            session.dir().display(),
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
        self.by_dir.remove(session.dir());
        if session.inotify {
            // Removed after this round's verdicts are written (see
            // `end_round`): a waiter arriving later in the round for the
            // same directory keeps the watch instead of re-adding it.
            self.unwatch.push(session.dir().to_path_buf());
            self.watches -= 1;
        }
        self.pidfds.untrack_all(ctx.poll, &mut session);
        if let Some(timer) = session.deadline {
            ctx.timers.cancel(timer);
        }
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

/// Arms the session's timer at its tracker's deadline (or none), moving
/// it only when the deadline moved.
fn sync_deadline(ctx: &mut Ctx, key: u64, session: &mut Session) {
    let want = session.tracker.deadline();
    if session.deadline.map(|timer| timer.at()) == want {
        return;
    }
    if let Some(timer) = session.deadline.take() {
        ctx.timers.cancel(timer);
    }
    session.deadline = want.map(|at| ctx.timers.add_at(at, Timer::Session(key)));
}

pub(super) fn send_verdict(ctx: &mut Ctx, waiter: &Waiter, session_id: &str, verdict: &Verdict) {
    let elapsed = waiter.started.elapsed().as_millis() as u64;
    let event = verdict.event(session_id, elapsed);
    push(ctx.out, waiter.conn, &waiter.id, Event::Verdict(event));
    ctx.stats.verdicts_sent += 1;
}
