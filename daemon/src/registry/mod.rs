//! The registry of watched sessions and their waiters: the daemon's state.
//!
//! Every event goes to the session's [`Tracker`], and every look through
//! [`Registry::refresh`]: the probe reads the directory and the process's
//! liveness, and the tracker (the rules) says whether there is a verdict. Events only say *when* to
//! look; the files say *what* happened, so a lost or duplicated event can
//! never produce a wrong verdict. Replies go to a [`Sink`] (the server
//! writes them out at once); the registry never touches a client socket.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mio::Token;
use verdict_core::track::{dir_inode, Probe, Step, Tracker};
use verdict_proto::codec::encode_line;
use verdict_proto::wire::RequestId;
use verdict_proto::wire::{Event, Reply, WatchedSession, Watching};

use crate::config::Config;
use crate::lookup::Lookups;
use parked::Parked;
pub use pidfds::PIDFD_TAG;
use verdict_core::resolve::{resolve_path, Resolved};

mod decide;
mod events;
mod follow;
mod parked;
mod pidfds;
mod refusal;
mod session;
#[cfg(test)]
mod tests;
use crate::timers::{Timer, Timers};
use pidfds::PidfdTokens;
use session::{Session, Waiter};
use verdict_core::watch::{AddError, Watcher};

use crate::config::POLL_INTERVAL;
pub use verdict_proto::wire::MAX_WAITS_PER_CONNECTION;

/// Where the registry's replies go (the server writes them out at once).
pub trait Sink: std::fmt::Debug {
    /// Sends one encoded line to connection `conn`.
    fn send(&mut self, conn: Token, line: &[u8]);
}

/// Counters that are not sizes of the registry.
#[derive(Debug, Default)]
pub struct Stats {
    /// Verdicts sent.
    pub verdicts_sent: u64,
    /// inotify queue overflows (and watcher errors).
    pub queue_overflows: u64,
    /// Full re-snapshots of every session.
    pub rescans: u64,
}

/// What a registry call may use besides the registry itself.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// For (de)registering pidfds.
    pub poll: &'a mio::Registry,
    /// Caps, grace periods and poll ticks.
    pub timers: &'a mut Timers,
    /// inotify.
    pub watcher: &'a mut Watcher,
    /// Settings in force.
    pub config: &'a Config,
    /// Where replies go.
    pub out: &'a mut dyn Sink,
    /// Counters.
    pub stats: &'a mut Stats,
    /// The id lookup thread.
    pub lookups: &'a Lookups,
}

/// All sessions with waiters, and the waiters.
#[derive(Debug, Default)]
pub struct Registry {
    /// Boxed, here and below: a map's table holds a slot for every bucket,
    /// and with 10,000 sessions the slots would outweigh the sessions.
    sessions: HashMap<u64, Box<Session>>,
    by_dir: HashMap<PathBuf, u64>,
    waiters: HashMap<u64, Box<Waiter>>,
    by_conn: HashMap<Token, HashMap<IdKey, u64>>,
    next_key: u64,
    watches: usize,
    /// Watches to remove at the end of the round.
    unwatch: Vec<PathBuf>,
    warned_limit: bool,
    /// pidfd tokens → (session, pid).
    pidfds: PidfdTokens,
    /// Subscriptions.
    follow: follow::Follow,
    /// Waits by id whose directory the lookup thread is finding, by ticket
    /// (in `by_conn` like a waiter, so cancels, limits and closes see them).
    parked: HashMap<u64, Parked>,
    /// The buffer each verdict line is written into.
    line: Vec<u8>,
}

pub use refusal::{bounded, Refusal};

/// A request id as a key of a connection's waits: its number when it is
/// one (most clients count), so that the common case hashes an integer
/// and allocates nothing; its JSON text otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdKey {
    Number(u64),
    Text(Box<str>),
}

impl IdKey {
    fn of(id: &RequestId) -> IdKey {
        match id.as_u64() {
            Some(n) => IdKey::Number(n),
            None => IdKey::Text(id.as_json().into()),
        }
    }
}

fn push(out: &mut dyn Sink, conn: Token, id: &RequestId, event: Event) {
    out.send(conn, &encode_line(&Reply::new(id.clone(), event)));
}

impl Registry {
    /// Sessions with at least one waiter.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }
    /// The sessions waited for, by id, at most `max`; and how many there
    /// are in all.
    pub fn listed(&self, max: usize) -> (Vec<WatchedSession>, usize) {
        let mut listed: Vec<WatchedSession> = self
            .sessions
            .values()
            .filter(|session| !session.waiters.is_empty())
            .map(|session| WatchedSession {
                session: session.id.clone(),
                dir: session.dir().to_string_lossy().into_owned(),
                waiters: session.waiters.len() as u64,
            })
            .collect();
        listed.sort_by(|a, b| (&a.session, &a.dir).cmp(&(&b.session, &b.dir)));
        let total = listed.len();
        listed.truncate(max);
        (listed, total)
    }

    /// Waits in flight.
    pub fn waiters(&self) -> usize {
        self.waiters.len()
    }
    /// Sessions watched by inotify.
    pub fn watches(&self) -> usize {
        self.watches
    }
    /// Subscriptions in force.
    pub fn subscribers(&self) -> usize {
        self.follow.subscribers()
    }

    /// Starts a wait: replies `watching`, then (now or later) the verdict.
    pub fn wait(
        &mut self,
        ctx: &mut Ctx,
        conn: Token,
        id: RequestId,
        session: &str,
        cap_ms: Option<u64>,
        cwd: Option<&str>,
    ) -> Result<(), Refusal> {
        let id_key = IdKey::of(&id);
        let in_flight = self.by_conn.get(&conn);
        if in_flight.is_some_and(|waits| waits.contains_key(&id_key)) {
            return Err(Refusal::DuplicateId {
                what: "wait",
                id: id.to_string(),
            });
        }
        if in_flight.is_some_and(|waits| waits.len() >= MAX_WAITS_PER_CONNECTION) {
            return Err(Refusal::ConnectionFull);
        }
        if self.waiters.len() + self.parked.len() >= ctx.config.max_waits {
            return Err(Refusal::DaemonFull(ctx.config.max_waits));
        }
        let Some(resolved) = resolve_path(session, &ctx.config.roots) else {
            // An id: looked up off the loop, the wait parked until then.
            return self.park(ctx, conn, id, id_key, session, cap_ms, cwd);
        };
        self.start_wait(ctx, conn, id, id_key, resolved?, cap_ms)
    }

    /// Starts a wait on a resolved directory: replies `watching`, then
    /// (now or later) the verdict.
    fn start_wait(
        &mut self,
        ctx: &mut Ctx,
        conn: Token,
        id: RequestId,
        id_key: IdKey,
        resolved: Resolved,
        cap_ms: Option<u64>,
    ) -> Result<(), Refusal> {
        let (key, first) = match self.by_dir.get(&resolved.dir) {
            Some(key) => (*key, None),
            None => {
                let (key, step) = self.open_session(ctx, &resolved)?;
                (key, Some(step))
            }
        };
        let wkey = self.next_key();
        let cap_ms = cap_ms.unwrap_or(ctx.config.default_cap_ms);
        let cap_timer = (cap_ms > 0).then(|| {
            ctx.timers
                .add(Duration::from_millis(cap_ms), Timer::Cap(wkey))
        });
        let session = self
            .sessions
            .get_mut(&key)
            .ok_or_else(|| Refusal::NotADirectory(resolved.dir.clone()))?;
        session.waiters.insert(wkey);
        let watching = Watching {
            session: session.id.clone(),
            dir: session.dir().display().to_string(),
            cap_ms,
            pid: session.pid(),
        };
        push(ctx.out, conn, &id, Event::Watching(watching));
        self.by_conn
            .entry(conn)
            .or_default()
            .insert(id_key.clone(), wkey);
        self.waiters.insert(
            wkey,
            Box::new(Waiter {
                conn,
                id,
                id_key,
                session: key,
                started: Instant::now(),
                cap_timer,
            }),
        );
        if let Some(step) = first {
            // A new session's first look was taken after the watch was
            // armed; act on it now (a finished session answers at once).
            self.act(ctx, key, step);
        }
        Ok(())
    }

    fn next_key(&mut self) -> u64 {
        self.next_key += 1;
        self.next_key
    }

    /// Watches a session not watched yet and takes its first look; the
    /// caller acts on the step once it has replied `watching`.
    fn open_session(&mut self, ctx: &mut Ctx, resolved: &Resolved) -> Result<(u64, Step), Refusal> {
        let (dir, poll) = (resolved.dir.clone(), resolved.poll);
        if dir_inode(&dir).is_none() {
            return Err(Refusal::NotADirectory(dir));
        }
        let mut inotify = false;
        if !poll && self.watches < ctx.config.max_watches {
            match ctx.watcher.add(&dir) {
                Ok(()) => inotify = true,
                Err(AddError::Limit) => {
                    if !self.warned_limit {
                        log::warn!("inotify watch limit reached (fs.inotify.max_user_watches); further sessions are polled every {POLL_INTERVAL:?}");
                        self.warned_limit = true;
                    }
                }
                Err(AddError::Other(err)) => {
                    return Err(Refusal::Unwatchable {
                        dir,
                        reason: err.to_string(),
                    });
                }
            }
        } else if !poll && !self.warned_limit {
            log::warn!(
                "max_watches ({}) reached; further sessions are polled every {POLL_INTERVAL:?}",
                ctx.config.max_watches
            );
            self.warned_limit = true;
        }
        self.watches += usize::from(inotify);
        let key = self.next_key();
        let id = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        log::debug!(
            "watching {} ({})",
            dir.display(),
            if inotify { "inotify" } else { "poll" }
        );
        self.by_dir.insert(dir.clone(), key);
        let session = Session {
            id,
            probe: Probe::new(dir),
            tracker: Tracker::new(),
            deadline: None,
            waiters: HashSet::new(),
            inotify,
            tracked: HashMap::new(),
            exited: Vec::new(),
            followed: false,
            announced: false,
        };
        self.sessions.insert(key, Box::new(session));
        let step = self.look(ctx, key);
        let gone = self.sessions.get(&key).is_none_or(|s| s.tracker.gone());
        match step {
            Some(step) if !gone => Ok((key, step)),
            _ => {
                // Gone between the stat above and the look.
                if let Some(session) = self.sessions.remove(&key) {
                    self.close_session(ctx, session);
                }
                Err(Refusal::NotADirectory(resolved.dir.clone()))
            }
        }
    }

    /// Cancels wait (or subscription) `target` of `conn`; false if there
    /// is none.
    pub fn cancel(&mut self, ctx: &mut Ctx, conn: Token, target: &RequestId) -> bool {
        let wkey = self
            .by_conn
            .get(&conn)
            .and_then(|waits| waits.get(&IdKey::of(target)))
            .copied();
        if let Some(parked) = wkey.and_then(|ticket| self.parked.remove(&ticket)) {
            self.forget_id(conn, &parked.id_key);
            return true;
        }
        wkey.and_then(|wkey| self.remove_waiter(ctx, wkey))
            .is_some()
            || self.unsubscribe(ctx, conn, target)
    }

    /// Forgets every wait of a closed connection.
    pub fn drop_conn(&mut self, ctx: &mut Ctx, conn: Token) {
        let wkeys: Vec<u64> = self
            .by_conn
            .get(&conn)
            .map(|w| w.values().copied().collect())
            .unwrap_or_default();
        for wkey in wkeys {
            if self.parked.remove(&wkey).is_none() {
                self.remove_waiter(ctx, wkey);
            }
        }
        self.by_conn.remove(&conn);
        self.drop_subscriptions(ctx, conn);
    }

    /// Waits and subscriptions in force on `conn`.
    pub fn conn_waits(&self, conn: Token) -> usize {
        self.by_conn.get(&conn).map_or(0, HashMap::len) + self.follow.of_conn(conn)
    }
}
