//! Waiting without a daemon: one loop for all the sessions of a call, a
//! second driver of verdictd's own session engine. Each session has the
//! daemon's [`Tracker`] (the one state machine that decides a session's
//! lifecycle: when to look, the grace periods, the verdict) and
//! [`Probe`]; the loop has one [`Watcher`] (one inotify instance however
//! many sessions), a pidfd for each process whose end can change an
//! answer, and the caller's stop pipe, all in one `poll`.
//!
//! What verdictd has and this does not: many waiters per session,
//! connections, subscriptions, and its fallback for a full inotify table
//! or a network root (it polls those slowly; this returns an error
//! instead, since polling is what it replaces). A live process whose
//! pidfd cannot be opened is looked at every [`Timing::poll`], as verdictd
//! does.

use std::collections::HashMap;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use verdict_core::liveness::{self, Watch};
use verdict_core::rules::{Liveness, Verdict};
use verdict_core::track::{self, Found, Identity, Look, Probe, Tracker};
use verdict_core::watch::{Change, Watcher};
use verdict_proto::wire::VerdictEvent;

/// The periods a wait waits out (by default verdictd's).
pub use verdict_core::track::Timing;

/// Why a degraded wait has no verdict.
#[derive(Debug)]
pub enum Error {
    /// The session directory is not there (or went away while waiting).
    NoSession(PathBuf),
    /// inotify could not watch the directory (watch limit, permissions).
    Watch(PathBuf, std::io::Error),
    /// Waiting failed (`poll`).
    Io(std::io::Error),
    /// The caller stopped the wait (see [`wait_or_stop`]).
    Stopped,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NoSession(dir) => write!(f, "{} is not a session directory", dir.display()),
            Error::Watch(dir, err) => write!(f, "cannot watch {}: {err}", dir.display()),
            Error::Io(err) => write!(f, "waiting failed: {err}"),
            Error::Stopped => f.write_str("the wait was stopped"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Watch(_, err) | Error::Io(err) => Some(err),
            Error::NoSession(_) | Error::Stopped => None,
        }
    }
}

/// Waits for the verdict of the session in `dir` (an existing directory),
/// with `cap` (`None`: no cap). Returns the verdict as verdictd would send
/// it (`elapsed_ms` from the call).
pub fn wait(dir: &Path, cap: Option<Duration>, timing: Timing) -> Result<VerdictEvent, Error> {
    wait_or_stop(dir, cap, timing, None)
}

/// [`wait`], which also ends (with [`Error::Stopped`]) as soon as `stop`
/// is readable or hung up: the read end of a pipe whose write end the
/// caller drops to stop it, say.
pub fn wait_or_stop(
    dir: &Path,
    cap: Option<Duration>,
    timing: Timing,
    stop: Option<BorrowedFd<'_>>,
) -> Result<VerdictEvent, Error> {
    let mut answer = None;
    wait_all(&[dir.to_path_buf()], cap, timing, stop, &mut |_, result| {
        answer = Some(result);
    })?;
    answer.unwrap_or(Err(Error::Stopped))
}

/// Waits for every session in `dirs` at once, in one loop with one watcher
/// (one inotify instance however many sessions: a thread or an instance
/// each ran out at `max_user_instances`, about 128). `answer(i, …)` is
/// called once per session, as each ends. Returns when all are answered,
/// or `Err(Error::Stopped)` when `stop` fired first (those not answered
/// get no call), or `Err(Error::Io)` when waiting itself failed.
pub fn wait_all(
    dirs: &[PathBuf],
    cap: Option<Duration>,
    timing: Timing,
    stop: Option<BorrowedFd<'_>>,
    answer: &mut dyn FnMut(usize, Result<VerdictEvent, Error>),
) -> Result<(), Error> {
    let started = Instant::now();
    if dirs.len() > FEW_SESSIONS {
        allow_many_fds();
    }
    let mut watcher = Watcher::new().map_err(Error::Io)?;
    let mut sessions: Vec<State> = Vec::with_capacity(dirs.len());
    for (index, dir) in dirs.iter().enumerate() {
        match watcher.add(dir) {
            Ok(()) => sessions.push(State::new(index, dir)),
            Err(err) => answer(
                index,
                Err(Error::Watch(
                    dir.clone(),
                    std::io::Error::other(err.to_string()),
                )),
            ),
        }
    }
    let cap_at = cap.map(|cap| started + cap);
    while !sessions.is_empty() {
        let now = Instant::now();
        let at_cap = cap_at.is_some_and(|at| now >= at);
        let mut wake: Option<Instant> = cap_at;
        let mut i = 0;
        while i < sessions.len() {
            let session = &mut sessions[i];
            match session.step(&mut watcher, now, at_cap, &timing, started) {
                Step::Answer(result) => {
                    answer(session.index, result);
                    sessions.swap_remove(i);
                }
                Step::Wake(at) => {
                    wake = [wake, at].into_iter().flatten().min();
                    i += 1;
                }
            }
        }
        if sessions.is_empty() {
            break;
        }
        sleep(&mut watcher, &mut sessions, stop, wake)?;
    }
    Ok(())
}

/// A call with more sessions than this raises its open-files limit.
const FEW_SESSIONS: usize = 256;

/// Raises the soft open-files limit to the hard one: a pidfd per live
/// process of a thousand sessions is past the usual soft limit (1,024),
/// and `poll` (unlike `select`) has no use for a low one. Without it, a
/// process whose pidfd cannot be opened is polled, so nothing is lost.
fn allow_many_fds() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        );
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    started.elapsed().as_millis() as u64
}

/// What one look at a session came to.
enum Step {
    /// Its answer.
    Answer(Result<VerdictEvent, Error>),
    /// Look again by this time (or at the next event).
    Wake(Option<Instant>),
}

/// One session of the call: its tracker (the same as verdictd's), the
/// probe that looks at it, and a pidfd for each process followed.
struct State {
    index: usize,
    id: String,
    probe: Probe,
    tracker: Tracker,
    /// pid → its pidfd (`None`: could not be opened; polled) and whether
    /// it leads its group.
    pidfds: HashMap<i32, (Option<OwnedFd>, bool)>,
    exited: Vec<Watch>,
    /// The directory was replaced and could not be watched again.
    unwatched: bool,
}

impl State {
    fn new(index: usize, dir: &Path) -> State {
        State {
            index,
            id: dir.file_name().map_or_else(
                || dir.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            probe: Probe::new(dir.to_path_buf()),
            tracker: Tracker::new(),
            pidfds: HashMap::new(),
            exited: Vec::new(),
            unwatched: false,
        }
    }

    /// Takes the look the tracker asks for (a fresh one at the cap) and
    /// acts on its step.
    fn step(
        &mut self,
        watcher: &mut Watcher,
        now: Instant,
        at_cap: bool,
        timing: &Timing,
        started: Instant,
    ) -> Step {
        self.tracker.due(now);
        if at_cap {
            self.tracker.rescan();
        }
        if !self.tracker.stale() {
            let ahead = self.tracker.read_ahead();
            if !ahead.is_empty() {
                self.probe.read_ahead(ahead);
            }
            return Step::Wake(self.tracker.deadline());
        }
        let look = self.look(watcher);
        let answer =
            |verdict: &Verdict| Step::Answer(Ok(verdict.event(&self.id, elapsed_ms(started))));
        match self.tracker.observe(now, look, timing) {
            track::Step::Verdict(verdict) => answer(&verdict),
            track::Step::Removed => {
                Step::Answer(Err(Error::NoSession(self.probe.dir().to_path_buf())))
            }
            // A cap meeting a vanished directory waits out its grace.
            track::Step::Wait if at_cap && !self.tracker.gone() => answer(&self.tracker.at_cap()),
            track::Step::Wait => Step::Wake(self.tracker.deadline()),
        }
    }

    /// The files and what runs, or that the directory is gone.
    fn look(&mut self, watcher: &mut Watcher) -> Look {
        match self.probe.identity() {
            Identity::Gone => return Look::Gone,
            Identity::Replaced => {
                // The watch follows the old inode: watch the path again.
                watcher.remove(self.probe.dir());
                self.unwatched = watcher.add(self.probe.dir()).is_err();
            }
            Identity::Same => {}
        }
        let plan = self.tracker.plan(watcher.more());
        let exited = std::mem::take(&mut self.exited);
        let (snap, seen, subdirs) = self.probe.read(&plan, &exited);
        self.pidfds
            .retain(|pid, _| seen.watch.iter().any(|w| w.pid == *pid));
        for watch in &seen.watch {
            self.pidfds.entry(watch.pid).or_insert_with(|| {
                // Opened after liveness was read: a process that died in
                // between has a readable pidfd at once.
                (liveness::open_pidfd(watch.pid), watch.group_leader)
            });
        }
        let alive = seen.liveness == Liveness::Alive;
        let blind = self.pidfds.values().any(|(fd, _)| fd.is_none());
        Look::Found(Found {
            snap,
            live: seen.liveness,
            exits_watched: alive && !self.pidfds.is_empty() && !blind,
            polled: (alive && blind) || self.unwatched,
            subdirs,
            mismatch: seen.mismatch,
        })
    }

    /// What a change at `path` means for this session, if it concerns it.
    fn change_at(&self, path: &Path) -> Option<track::Change> {
        let dir = self.probe.dir();
        if path == dir {
            return Some(track::Change::Dir);
        }
        (path.parent() == Some(dir)).then(|| track::Change::of_file(path))
    }
}

/// Blocks until a file event, a process exit, `stop` or `until`, and hands
/// what happened to the sessions' trackers.
fn sleep(
    watcher: &mut Watcher,
    sessions: &mut [State],
    stop: Option<BorrowedFd<'_>>,
    until: Option<Instant>,
) -> Result<(), Error> {
    let exited = wait_for_events(watcher, sessions, stop, until)?;
    // Drained whether or not the poll saw a file event: one that came
    // after it may speak for a process that exited.
    for change in watcher.drain() {
        match change {
            Change::Paths(paths) => paths.iter().for_each(|path| changed_at(sessions, path)),
            Change::NewDirs(_) => {}
            Change::Rescan => sessions.iter_mut().for_each(|s| s.tracker.rescan()),
        }
    }
    for (s, watch) in exited {
        let session = &mut sessions[s];
        session.pidfds.remove(&watch.pid);
        session.exited.push(watch);
        session.tracker.exited();
    }
    Ok(())
}

/// Tells the session a changed path belongs to, if any.
fn changed_at(sessions: &mut [State], path: &Path) {
    for session in sessions.iter_mut() {
        if let Some(change) = session.change_at(path) {
            session.tracker.changed(change);
        }
    }
}

/// One `poll` of the watcher, `stop` and every armed pidfd: the (session,
/// process) of each pidfd that fired.
fn wait_for_events(
    watcher: &Watcher,
    sessions: &[State],
    stop: Option<BorrowedFd<'_>>,
    until: Option<Instant>,
) -> Result<Vec<(usize, Watch)>, Error> {
    let timeout = until.map(|at| {
        let left = at.saturating_duration_since(Instant::now());
        Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        }
    });
    // (session, process) for each armed pidfd, in poll order.
    let mut watched = Vec::new();
    let mut fds = vec![PollFd::new(watcher, PollFlags::IN)];
    if let Some(stop) = &stop {
        fds.push(PollFd::new(stop, PollFlags::IN));
    }
    for (s, session) in sessions.iter().enumerate() {
        for (pid, (fd, group_leader)) in &session.pidfds {
            if let Some(fd) = fd {
                fds.push(PollFd::new(fd, PollFlags::IN));
                let watch = Watch {
                    pid: *pid,
                    group_leader: *group_leader,
                };
                watched.push((s, watch));
            }
        }
    }
    match poll(&mut fds, timeout.as_ref()) {
        Ok(_) | Err(rustix::io::Errno::INTR) => {}
        Err(err) => return Err(Error::Io(err.into())),
    }
    let fired: Vec<bool> = fds.iter().map(|fd| !fd.revents().is_empty()).collect();
    let (own, pidfds) = fired.split_at(1 + usize::from(stop.is_some()));
    if own.get(1) == Some(&true) {
        return Err(Error::Stopped);
    }
    let exited = watched
        .into_iter()
        .zip(pidfds)
        .filter_map(|(entry, fired)| fired.then_some(entry))
        .collect();
    Ok(exited)
}
