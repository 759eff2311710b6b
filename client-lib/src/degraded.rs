//! Waiting without a daemon: one loop for all the sessions of a call, with
//! one watcher (the daemon's [`verdict_proto::watch::Watcher`], same mask,
//! one inotify instance however many sessions), a pidfd for each process
//! whose end can change an answer, and the daemon's rules
//! ([`verdict_proto::rules::decide`]) with the same cap and grace periods.
//!
//! What is shared with verdictd: the watcher, the snapshot and its cache,
//! liveness from `/proc` (not read again for a process whose pidfd fired),
//! the rules, and the wire form of the verdict. What is not: verdictd's
//! registry (many sessions and waiters, connections, subscriptions) and
//! its fallbacks for a full inotify table or a network root (it polls
//! those slowly; this returns an error instead, since polling is what it
//! replaces). A process whose pidfd cannot be opened is looked at once a
//! second, as verdictd does.

use std::collections::HashMap;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use verdict_proto::liveness::{self, Watch};
use verdict_proto::rules::{
    decide, decide_at_cap, Decision, Liveness, Phase, Snapshot, SnapshotCache,
};
use verdict_proto::watch::{Change, Watcher};
use verdict_proto::wire::VerdictEvent;

/// Rule C4's and C5's grace periods (by default verdictd's).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// After the process died with nothing written: wait this long for a
    /// file racing the exit (rule C4).
    pub grace: Duration,
    /// No process known and nothing written: wait this long for a launcher
    /// to write `daemon.pid` (rule C5); any change starts it over.
    pub launch_grace: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            grace: Duration::from_millis(verdict_proto::rules::DEFAULT_GRACE_MS),
            launch_grace: Duration::from_millis(verdict_proto::rules::DEFAULT_LAUNCH_GRACE_MS),
        }
    }
}

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

impl std::error::Error for Error {}

/// A live process without a pidfd is looked at this often.
const BLIND_POLL: Duration = Duration::from_secs(1);
/// How long a vanished directory may stay away (renamed and back).
const VANISHED_GRACE: Duration = Duration::from_millis(200);

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
            match session.step(now, at_cap, timing, started) {
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

/// One session's lifecycle in degraded mode.
struct State {
    index: usize,
    dir: PathBuf,
    id: String,
    /// Something happened (an event, an exit, a deadline): look again.
    dirty: bool,
    cache: SnapshotCache,
    /// pid → its pidfd (`None`: could not be opened; polled) and whether
    /// it leads its group.
    pidfds: HashMap<i32, (Option<OwnedFd>, bool)>,
    exited: Vec<Watch>,
    grace: Option<Instant>,
    grace_over: bool,
    launch: Option<Instant>,
    launch_over: bool,
    vanished: Option<Instant>,
    /// The next time a deadline of its own is due.
    due: Option<Instant>,
}

impl State {
    fn new(index: usize, dir: &Path) -> State {
        State {
            index,
            dir: dir.to_path_buf(),
            id: dir.file_name().map_or_else(
                || dir.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            dirty: true,
            cache: SnapshotCache::default(),
            pidfds: HashMap::new(),
            exited: Vec::new(),
            grace: None,
            grace_over: false,
            launch: None,
            launch_over: false,
            vanished: None,
            due: None,
        }
    }

    fn phase(&self, cap_fired: bool) -> Phase {
        Phase {
            cap_fired,
            grace_over: self.grace_over,
            launch_over: self.launch_over,
        }
    }

    /// Looks again if anything happened or a deadline is due, and decides.
    fn step(&mut self, now: Instant, at_cap: bool, timing: Timing, started: Instant) -> Step {
        if self.grace.is_some_and(|at| now >= at) {
            self.grace_over = true;
            self.dirty = true;
        }
        if self.launch.is_some_and(|at| now >= at) {
            self.launch_over = true;
            self.dirty = true;
        }
        if self.due.is_some_and(|at| now >= at) {
            self.dirty = true;
        }
        if !self.dirty && !at_cap {
            return Step::Wake(self.due);
        }
        self.dirty = false;
        let Some((snap, live)) = self.look() else {
            // Gone: give a rename away and back its grace.
            let at = *self.vanished.get_or_insert(now + VANISHED_GRACE);
            if now >= at {
                return Step::Answer(Err(Error::NoSession(self.dir.clone())));
            }
            self.due = Some(at);
            return Step::Wake(self.due);
        };
        self.vanished = None;
        if at_cap {
            let verdict = decide_at_cap(&snap, live, self.phase(true));
            let event = VerdictEvent::new(&self.id, &verdict, elapsed_ms(started));
            return Step::Answer(Ok(event));
        }
        let decision = decide(&snap, live, self.phase(false));
        if decision != Decision::AwaitLaunch {
            self.launch = None;
        }
        match decision {
            Decision::Verdict(verdict) => {
                let event = VerdictEvent::new(&self.id, &verdict, elapsed_ms(started));
                return Step::Answer(Ok(event));
            }
            Decision::AwaitGrace => {
                self.grace.get_or_insert(now + timing.grace);
            }
            Decision::AwaitLaunch => {
                self.launch.get_or_insert(now + timing.launch_grace);
            }
            // The process is back (a resumed session): grace starts over.
            Decision::Pending => {
                self.grace = None;
                self.grace_over = false;
            }
        }
        let blind = live == Liveness::Alive && self.pidfds.values().any(|(fd, _)| fd.is_none());
        self.due = [self.grace, self.launch, blind.then(|| now + BLIND_POLL)]
            .into_iter()
            .flatten()
            .min();
        Step::Wake(self.due)
    }

    /// The files and what runs; `None` when the directory is gone.
    fn look(&mut self) -> Option<(Snapshot, Liveness)> {
        if !self.dir.is_dir() {
            return None;
        }
        let snap = Snapshot::read_cached(&self.dir, &mut self.cache);
        let exited = std::mem::take(&mut self.exited);
        let seen = liveness::observe(&self.dir, snap.pid.value(), &exited);
        self.pidfds
            .retain(|pid, _| seen.watch.iter().any(|w| w.pid == *pid));
        for watch in &seen.watch {
            self.pidfds.entry(watch.pid).or_insert_with(|| {
                // Opened after liveness was read: a process that died in
                // between has a readable pidfd at once.
                (liveness::open_pidfd(watch.pid), watch.group_leader)
            });
        }
        Some((snap, seen.liveness))
    }

    /// A change at `path` concerns this session.
    fn concerns(&self, path: &Path) -> bool {
        path == self.dir || path.parent() == Some(&*self.dir)
    }
}

/// Blocks until a file event, a process exit, `stop` or `until`, and marks
/// the sessions concerned.
fn sleep(
    watcher: &mut Watcher,
    sessions: &mut [State],
    stop: Option<BorrowedFd<'_>>,
    until: Option<Instant>,
) -> Result<(), Error> {
    let timeout = until.map(|at| {
        let left = at.saturating_duration_since(Instant::now());
        Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        }
    });
    // (session, pid, leader) for each armed pidfd, in poll order.
    let watched: Vec<(usize, i32, bool)> = sessions
        .iter()
        .enumerate()
        .flat_map(|(s, session)| {
            session
                .pidfds
                .iter()
                .filter(|(_, (fd, _))| fd.is_some())
                .map(move |(pid, (_, leader))| (s, *pid, *leader))
        })
        .collect();
    let fired: Vec<bool> = {
        let mut fds = vec![PollFd::new(&*watcher, PollFlags::IN)];
        if let Some(stop) = &stop {
            fds.push(PollFd::new(stop, PollFlags::IN));
        }
        for (s, pid, _) in &watched {
            if let Some((Some(fd), _)) = sessions[*s].pidfds.get(pid) {
                fds.push(PollFd::new(fd, PollFlags::IN));
            }
        }
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(err) => return Err(Error::Io(err.into())),
        }
        fds.iter().map(|fd| !fd.revents().is_empty()).collect()
    };
    let (fired, pidfds_fired) = fired.split_at(1 + usize::from(stop.is_some()));
    if fired.get(1) == Some(&true) {
        return Err(Error::Stopped);
    }
    if fired[0] {
        for change in watcher.drain() {
            match change {
                Change::Paths(paths) => {
                    for path in paths {
                        for session in sessions.iter_mut().filter(|s| s.concerns(&path)) {
                            // Any change in the directory starts rule C5's
                            // grace over.
                            session.launch = None;
                            session.dirty = true;
                        }
                    }
                }
                Change::NewDirs(_) => {}
                Change::Rescan => sessions.iter_mut().for_each(|s| s.dirty = true),
            }
        }
    }
    for ((s, pid, group_leader), fired) in watched.iter().zip(pidfds_fired) {
        if *fired {
            let session = &mut sessions[*s];
            session.pidfds.remove(pid);
            session.exited.push(Watch {
                pid: *pid,
                group_leader: *group_leader,
            });
            session.dirty = true;
        }
    }
    Ok(())
}
