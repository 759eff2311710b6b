//! Subscriptions (`subscribe`): a `verdict` for every session under the
//! roots as it ends, and `started` when a new session's process appears.
//!
//! While at least one subscription is in force the registry *follows*
//! sessions: the `sessions/` directories of the roots' index are watched
//! (a new entry is a new session), and so is every session that has a live
//! process. A finished session is looked at once, when the first
//! subscription starts, and never again: a root with 10,000 finished
//! sessions adds no watch for them. A followed session is an ordinary
//! registry session with no cap; waits on it share it. When the last
//! subscription ends, the `sessions/` watches go and followed sessions
//! without waiters are closed.
//!
//! A project whose `sessions/` directory appears after the first
//! subscription started is found at the next index rebuild (a wait by id
//! that misses, or SIGHUP).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use mio::Token;
use serde_json::Value;
use verdict_proto::codec::encode_line;
use verdict_proto::liveness;
use verdict_proto::rules::{decide, Decision, Liveness, Phase, Snapshot, Verdict};
use verdict_proto::wire::{ErrorCode, Event, Reply, Started, VerdictEvent};

use super::{push, Ctx, Refusal, Registry};
use crate::resolve::Resolved;

/// How far a new session directory's birth time may lag the clock.
const BIRTH_MARGIN: Duration = Duration::from_millis(100);

/// The subscriptions, and the directories watched for new sessions.
#[derive(Debug, Default)]
pub struct Follow {
    /// (connection, id as text) → the subscription.
    subs: HashMap<(Token, String), Sub>,
    /// `sessions/` directories watched for new entries.
    dirs: HashSet<PathBuf>,
    /// When following began: an entry born before it is not new.
    since: Option<SystemTime>,
}

#[derive(Debug)]
struct Sub {
    id: Value,
    /// Only sessions under these directories (all if empty).
    under: Vec<PathBuf>,
    since: Instant,
}

impl Sub {
    fn covers(&self, dir: &Path) -> bool {
        self.under.is_empty() || self.under.iter().any(|u| dir.starts_with(u))
    }
}

impl Follow {
    /// Subscriptions in force.
    pub fn subscribers(&self) -> usize {
        self.subs.len()
    }

    /// Subscriptions of `conn`.
    pub fn of_conn(&self, conn: Token) -> usize {
        self.subs.keys().filter(|(c, _)| *c == conn).count()
    }

    /// A `sessions/` directory watched for new sessions.
    pub fn watches_dir(&self, dir: &Path) -> bool {
        self.dirs.contains(dir)
    }
}

impl Registry {
    /// Starts a subscription: replies `subscribed`, then events.
    pub fn subscribe(
        &mut self,
        ctx: &mut Ctx,
        conn: Token,
        id: Value,
        under: &[String],
    ) -> Result<(), Refusal> {
        let key = (conn, id.to_string());
        if self.follow.subs.contains_key(&key) {
            let message = format!("a subscription with id {} is already in force", key.1);
            return Err((ErrorCode::BadRequest, message));
        }
        let mut dirs = Vec::new();
        for dir in under {
            let canonical = std::fs::canonicalize(dir).map_err(|err| {
                (
                    ErrorCode::BadRequest,
                    format!("cannot subscribe under {dir}: {err}"),
                )
            })?;
            let related =
                ctx.config.roots.iter().any(|root| {
                    canonical.starts_with(&root.path) || root.path.starts_with(&canonical)
                });
            if !related {
                let roots: Vec<String> = ctx
                    .config
                    .roots
                    .iter()
                    .map(|r| r.path.display().to_string())
                    .collect();
                let message = format!(
                    "{dir} is not under any of the daemon's roots ({}); add it as a root",
                    roots.join(", ")
                );
                return Err((ErrorCode::BadRequest, message));
            }
            dirs.push(canonical);
        }
        if self.follow.subs.is_empty() {
            self.start_following(ctx);
        }
        let sub = Sub {
            id: id.clone(),
            under: dirs,
            since: Instant::now(),
        };
        let live = self
            .sessions
            .values()
            .filter(|s| s.followed && s.last.live == Liveness::Alive && sub.covers(&s.dir))
            .count() as u64;
        let roots = ctx
            .config
            .roots
            .iter()
            .map(|r| r.path.display().to_string())
            .filter(|root| {
                sub.covers(Path::new(root)) || sub.under.iter().any(|u| u.starts_with(root))
            })
            .collect();
        push(ctx.out, conn, &id, Event::Subscribed { roots, live });
        self.follow.subs.insert(key, sub);
        Ok(())
    }

    /// Ends subscription `target` of `conn`; false if there is none.
    pub fn unsubscribe(&mut self, ctx: &mut Ctx, conn: Token, target: &Value) -> bool {
        let removed = self
            .follow
            .subs
            .remove(&(conn, target.to_string()))
            .is_some();
        if removed && self.follow.subs.is_empty() {
            self.stop_following(ctx);
        }
        removed
    }

    /// Ends every subscription of a closed connection.
    pub(super) fn drop_subscriptions(&mut self, ctx: &mut Ctx, conn: Token) {
        let before = self.follow.subs.len();
        self.follow.subs.retain(|(c, _), _| *c != conn);
        if before > 0 && self.follow.subs.is_empty() {
            self.stop_following(ctx);
        }
    }

    fn start_following(&mut self, ctx: &mut Ctx) {
        // File times come from the kernel's coarse clock, up to a tick
        // behind this one: a margin keeps a session made just now "new".
        self.follow.since = SystemTime::now().checked_sub(BIRTH_MARGIN);
        self.index.clear();
        let dirs = self.index.sessions_dirs(&ctx.config.roots);
        for dir in dirs {
            if ctx.watcher.add(&dir).is_err() {
                log::warn!(
                    "cannot watch {} for new sessions; subscribers will miss them",
                    dir.display()
                );
                continue;
            }
            log::debug!("following new sessions in {}", dir.display());
            self.follow.dirs.insert(dir.clone());
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    self.consider(ctx, &entry.path(), true);
                }
            }
        }
    }

    fn stop_following(&mut self, ctx: &mut Ctx) {
        self.follow.since = None;
        for dir in std::mem::take(&mut self.follow.dirs) {
            ctx.watcher.remove(&dir);
        }
        let idle: Vec<u64> = self
            .sessions
            .iter_mut()
            .filter_map(|(key, s)| {
                s.followed = false;
                s.waiters.is_empty().then_some(*key)
            })
            .collect();
        for key in idle {
            if let Some(session) = self.sessions.remove(&key) {
                self.close_session(ctx, session);
            }
        }
    }

    /// New entries appeared in watched `sessions/` directories.
    pub(super) fn new_entries(&mut self, ctx: &mut Ctx, paths: Vec<PathBuf>) {
        for path in paths {
            log::debug!("new entry {}", path.display());
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                self.consider(ctx, &path, false);
            }
        }
    }

    /// Follows the session in `dir`. Found by the first subscription's scan
    /// (`existing`), it is followed only if its process runs: a finished
    /// session was not looked at again, and an abandoned empty one must not
    /// be reported as failing now. A new one is followed from the start.
    fn consider(&mut self, ctx: &mut Ctx, dir: &Path, existing: bool) {
        let Ok(dir) = std::fs::canonicalize(dir) else {
            return;
        };
        if let Some(&key) = self.by_dir.get(&dir) {
            if let Some(session) = self.sessions.get_mut(&key) {
                session.followed = true;
                session.announced |= existing;
            }
            return;
        }
        // An entry born before following began is an old session touched
        // (chmod, a rename of its parent): not new.
        let old = existing
            || std::fs::metadata(&dir)
                .and_then(|m| m.created())
                .is_ok_and(|born| self.follow.since.is_some_and(|since| born < since));
        if old {
            let snap = Snapshot::read(&dir);
            let live = liveness::observe(&dir, snap.pid.value(), &[]).liveness;
            let phase = Phase {
                cap_fired: false,
                grace_over: false,
                launch_over: false,
            };
            let running = live == Liveness::Alive
                && !matches!(decide(&snap, live, phase), Decision::Verdict(_));
            if !running {
                return;
            }
        }
        let resolved = Resolved { dir, poll: false };
        let Ok(key) = self.open_session(ctx, resolved) else {
            return;
        };
        if let Some(session) = self.sessions.get_mut(&key) {
            session.followed = true;
            session.announced = old;
        }
        self.announce(ctx, key);
        self.settle(ctx, key);
    }

    /// Sends `started` for a followed new session whose process runs.
    pub(super) fn announce(&mut self, ctx: &mut Ctx, key: u64) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        if !session.followed || session.announced || session.last.live != Liveness::Alive {
            return;
        }
        session.announced = true;
        let started = Started {
            session: session.id.clone(),
            dir: session.dir.display().to_string(),
            pid: session.last.snap.pid.value().map(|p| p.pid),
        };
        for ((conn, _), sub) in &self.follow.subs {
            if sub.covers(&session.dir) {
                push(ctx.out, *conn, &sub.id, Event::Started(started.clone()));
            }
        }
    }

    /// Sends a followed session's verdict to the subscriptions covering it.
    pub(super) fn tell_subscribers(&self, ctx: &mut Ctx, dir: &Path, id: &str, verdict: &Verdict) {
        for ((conn, _), sub) in &self.follow.subs {
            if !sub.covers(dir) {
                continue;
            }
            let elapsed = sub.since.elapsed().as_millis() as u64;
            let mut event = VerdictEvent::new(id, verdict, elapsed);
            event.dir = Some(dir.display().to_string());
            let line = encode_line(&Reply::new(sub.id.clone(), Event::Verdict(event)));
            ctx.out.send(*conn, line);
            ctx.stats.verdicts_sent += 1;
        }
    }
}
