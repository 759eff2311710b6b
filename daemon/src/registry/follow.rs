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
//! New projects are found too: the directories from the roots down to the
//! `sessions/` ones are watched for new subdirectories (up to
//! [`MAX_TREE_WATCHES`] of them), each watched *before* it is listed, so
//! that a project made while it is being listed is not missed.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use mio::Token;
use verdict_core::liveness;
use verdict_core::resolve::Resolved;
use verdict_core::rules::Verdict;
use verdict_core::snapshot::Snapshot;
use verdict_core::track;
use verdict_proto::codec::encode_line;
use verdict_proto::wire::{Event, Reply, RequestId, Started};

use super::{push, Ctx, Refusal, Registry};

/// Directories above `sessions/` watched for new projects, at most.
const MAX_TREE_WATCHES: usize = 10_000;

/// How far a new session directory's birth time may lag the clock.
const BIRTH_MARGIN: Duration = Duration::from_millis(100);

/// The subscriptions, and the directories watched for new sessions.
#[derive(Debug, Default)]
pub struct Follow {
    /// (connection, id as text) → the subscription.
    subs: HashMap<(Token, String), Sub>,
    /// `sessions/` directories watched for new entries.
    dirs: HashSet<PathBuf>,
    /// The directories above them, from the roots down, watched for new
    /// projects (bounded by [`MAX_TREE_WATCHES`]).
    tree: HashSet<PathBuf>,
    /// When following began: an entry born before it is not new.
    since: Option<SystemTime>,
    /// [`MAX_TREE_WATCHES`] was reached and logged.
    warned_tree: bool,
}

#[derive(Debug)]
struct Sub {
    id: RequestId,
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

    /// A directory above the `sessions/` ones, watched for new projects.
    pub fn watches_tree(&self, dir: &Path) -> bool {
        self.tree.contains(dir)
    }
}

impl Registry {
    /// Starts a subscription: replies `subscribed`, then events.
    pub fn subscribe(
        &mut self,
        ctx: &mut Ctx,
        conn: Token,
        id: RequestId,
        under: &[String],
    ) -> Result<(), Refusal> {
        let key = (conn, id.to_string());
        if self.follow.subs.contains_key(&key) {
            return Err(Refusal::DuplicateId {
                what: "subscription",
                id: key.1,
            });
        }
        let mut dirs = Vec::new();
        for dir in under {
            let canonical = std::fs::canonicalize(dir).map_err(|err| Refusal::BadUnder {
                dir: dir.clone(),
                reason: err.to_string(),
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
                return Err(Refusal::BadUnder {
                    dir: dir.clone(),
                    reason: format!(
                        "it is not under any of the daemon's roots ({}); add it as a root",
                        roots.join(", ")
                    ),
                });
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
            .filter(|s| s.followed && s.tracker.alive() && sub.covers(s.dir()))
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
    pub fn unsubscribe(&mut self, ctx: &mut Ctx, conn: Token, target: &RequestId) -> bool {
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
        let mut visits = 0;
        let roots: Vec<PathBuf> = ctx.config.roots.iter().map(|r| r.path.clone()).collect();
        for root in roots {
            self.follow_tree(ctx, root, true, &mut visits);
        }
    }

    /// Follows the tree below `start` for new projects and sessions: each
    /// directory is watched *before* it is listed, so anything made in it
    /// from then on is an event, and anything made before is listed (a
    /// walk that lists first and watches after misses a project made in
    /// between). `existing`: found by the first subscription's scan.
    fn follow_tree(&mut self, ctx: &mut Ctx, start: PathBuf, existing: bool, visits: &mut usize) {
        use verdict_core::resolve::{MAX_DEPTH, MAX_VISITS};
        let mut stack = vec![(start, 0)];
        while let Some((dir, depth)) = stack.pop() {
            *visits += 1;
            if *visits > MAX_VISITS {
                log::warn!("stopped following the roots after {MAX_VISITS} directories");
                return;
            }
            if !self.follow.tree.contains(&dir) {
                if self.follow.tree.len() >= MAX_TREE_WATCHES {
                    if !std::mem::replace(&mut self.follow.warned_tree, true) {
                        log::warn!(
                            "watching {MAX_TREE_WATCHES} directories for new projects; \
                             projects created under the rest are not followed"
                        );
                    }
                } else if ctx.watcher.add(&dir).is_ok() {
                    self.follow.tree.insert(dir.clone());
                }
            }
            let sessions = dir.join("sessions");
            if sessions.is_dir() {
                self.follow_sessions_dir(ctx, sessions, existing);
            }
            if depth >= MAX_DEPTH {
                continue;
            }
            stack.extend(verdict_core::resolve::project_dirs(&dir).map(|sub| (sub, depth + 1)));
        }
    }

    /// Watches a `sessions/` directory and follows the sessions in it.
    fn follow_sessions_dir(&mut self, ctx: &mut Ctx, dir: PathBuf, existing: bool) {
        if self.follow.dirs.contains(&dir) {
            return;
        }
        if ctx.watcher.add(&dir).is_err() {
            log::warn!(
                "cannot watch {} for new sessions; subscribers will miss them",
                dir.display()
            );
            return;
        }
        log::debug!("following new sessions in {}", dir.display());
        self.follow.dirs.insert(dir.clone());
        for entry in session_entries(&dir) {
            self.consider(ctx, &entry, existing);
        }
    }

    /// After lost file events (an inotify overflow): lists the followed
    /// directories again, so that a session or a project made while events
    /// were lost is followed all the same. Entries born before following
    /// began were looked at then and are not read again.
    pub(super) fn relist_followed(&mut self, ctx: &mut Ctx) {
        if self.follow.subs.is_empty() {
            return;
        }
        let dirs: Vec<PathBuf> = self.follow.dirs.iter().cloned().collect();
        for dir in dirs {
            for entry in session_entries(&dir) {
                if !self.born_before_following(&entry) {
                    self.consider(ctx, &entry, false);
                }
            }
        }
        // New projects: known directories are not watched or listed twice.
        let mut visits = 0;
        let roots: Vec<PathBuf> = ctx.config.roots.iter().map(|r| r.path.clone()).collect();
        for root in roots {
            self.follow_tree(ctx, root, false, &mut visits);
        }
    }

    /// `dir` was there before following began (by its birth time).
    fn born_before_following(&self, dir: &Path) -> bool {
        std::fs::metadata(dir)
            .and_then(|m| m.created())
            .is_ok_and(|born| self.follow.since.is_some_and(|since| born < since))
    }

    fn stop_following(&mut self, ctx: &mut Ctx) {
        self.follow.since = None;
        let dirs = std::mem::take(&mut self.follow.dirs);
        let tree = std::mem::take(&mut self.follow.tree);
        for dir in dirs.iter().chain(&tree) {
            ctx.watcher.remove(dir);
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

    /// Directories appeared in watched `sessions/` directories (new
    /// sessions) or in the tree above them (new projects).
    pub(super) fn new_entries(&mut self, ctx: &mut Ctx, paths: Vec<PathBuf>) {
        for path in paths {
            log::debug!("new directory {}", path.display());
            let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
            if self.follow.watches_dir(&parent) {
                self.consider(ctx, &path, false);
            } else if path.file_name().is_some_and(|n| n == "sessions") {
                self.follow_sessions_dir(ctx, path, false);
            } else {
                self.follow_tree(ctx, path, false, &mut 0);
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
        let old = existing || self.born_before_following(&dir);
        if old {
            let snap = Snapshot::read(&dir);
            let live = liveness::observe(&dir, snap.pid.value(), &[], true).liveness;
            if !track::running(&snap, live) {
                return;
            }
        }
        let resolved = Resolved { dir, poll: false };
        let Ok((key, step)) = self.open_session(ctx, &resolved) else {
            return;
        };
        if let Some(session) = self.sessions.get_mut(&key) {
            session.followed = true;
            session.announced = old;
        }
        self.act(ctx, key, step);
    }

    /// Sends `started` for a followed new session whose process runs.
    pub(super) fn announce(&mut self, ctx: &mut Ctx, key: u64) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        if !session.followed || session.announced || !session.tracker.alive() {
            return;
        }
        session.announced = true;
        let started = Started {
            session: session.id.clone(),
            dir: session.dir().display().to_string(),
            pid: session.pid(),
        };
        for ((conn, _), sub) in &self.follow.subs {
            if sub.covers(session.dir()) {
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
            let mut event = verdict.event(id, elapsed);
            event.dir = Some(dir.display().to_string());
            let line = encode_line(&Reply::new(sub.id.clone(), Event::Verdict(event)));
            ctx.out.send(*conn, &line);
            ctx.stats.verdicts_sent += 1;
        }
    }
}

/// The subdirectories of a `sessions/` directory (unreadable: none).
fn session_entries(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .map(|entry| entry.path())
        .collect()
}
