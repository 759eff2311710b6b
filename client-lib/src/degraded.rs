//! Waiting without a daemon: one inotify watch on the session directory
//! (the daemon's [`verdict_proto::watch::Watcher`], same mask), a pidfd for
//! each process whose end can change the answer, and the daemon's rules
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
use verdict_proto::watch::Watcher;
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
    let started = Instant::now();
    let id = dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut watcher = Watcher::new().map_err(Error::Io)?;
    watcher
        .add(dir)
        .map_err(|err| Error::Watch(dir.to_path_buf(), std::io::Error::other(err.to_string())))?;
    let mut state = State {
        dir,
        stop,
        cache: SnapshotCache::default(),
        pidfds: HashMap::new(),
        exited: Vec::new(),
        grace: None,
        grace_over: false,
        launch: None,
        launch_over: false,
        vanished: None,
    };
    let cap_at = cap.map(|cap| started + cap);
    loop {
        let Some((snap, live)) = state.look()? else {
            // Gone: give a rename away and back its grace.
            let at = *state
                .vanished
                .get_or_insert(Instant::now() + VANISHED_GRACE);
            if Instant::now() >= at {
                return Err(Error::NoSession(dir.to_path_buf()));
            }
            state.sleep(&mut watcher, Some(at))?;
            continue;
        };
        state.vanished = None;
        let phase = state.phase(false);
        let decision = decide(&snap, live, phase);
        if decision != Decision::AwaitLaunch {
            state.launch = None;
        }
        match decision {
            Decision::Verdict(verdict) => {
                return Ok(VerdictEvent::new(&id, &verdict, elapsed_ms(started)));
            }
            Decision::AwaitGrace => {
                state.grace.get_or_insert(Instant::now() + timing.grace);
            }
            Decision::AwaitLaunch => {
                state
                    .launch
                    .get_or_insert(Instant::now() + timing.launch_grace);
            }
            Decision::Pending => state.grace = None,
        }
        let blind = live == Liveness::Alive && state.pidfds.values().any(|(fd, _)| fd.is_none());
        let wake = [
            cap_at,
            state.grace,
            state.launch,
            blind.then(|| Instant::now() + BLIND_POLL),
        ]
        .into_iter()
        .flatten()
        .min();
        state.sleep(&mut watcher, wake)?;
        let now = Instant::now();
        if cap_at.is_some_and(|at| now >= at) {
            if let Some((snap, live)) = state.look()? {
                let verdict = decide_at_cap(&snap, live, state.phase(true));
                return Ok(VerdictEvent::new(&id, &verdict, elapsed_ms(started)));
            }
        }
        if state.grace.is_some_and(|at| now >= at) {
            state.grace_over = true;
        }
        if state.launch.is_some_and(|at| now >= at) {
            state.launch_over = true;
        }
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    started.elapsed().as_millis() as u64
}

struct State<'a> {
    dir: &'a Path,
    stop: Option<BorrowedFd<'a>>,
    cache: SnapshotCache,
    /// pid → its pidfd (`None`: could not be opened; polled).
    pidfds: HashMap<i32, (Option<OwnedFd>, bool)>,
    exited: Vec<Watch>,
    grace: Option<Instant>,
    grace_over: bool,
    launch: Option<Instant>,
    launch_over: bool,
    vanished: Option<Instant>,
}

impl State<'_> {
    fn phase(&self, cap_fired: bool) -> Phase {
        Phase {
            cap_fired,
            grace_over: self.grace_over,
            launch_over: self.launch_over,
        }
    }

    /// The files and what runs; `None` when the directory is gone.
    fn look(&mut self) -> Result<Option<(Snapshot, Liveness)>, Error> {
        if !self.dir.is_dir() {
            return Ok(None);
        }
        let snap = Snapshot::read_cached(self.dir, &mut self.cache);
        let exited = std::mem::take(&mut self.exited);
        let seen = liveness::observe(self.dir, snap.pid.value(), &exited);
        self.pidfds
            .retain(|pid, _| seen.watch.iter().any(|w| w.pid == *pid));
        for watch in &seen.watch {
            self.pidfds.entry(watch.pid).or_insert_with(|| {
                // Opened after liveness was read: a process that died in
                // between has a readable pidfd at once.
                (liveness::open_pidfd(watch.pid), watch.group_leader)
            });
        }
        Ok(Some((snap, seen.liveness)))
    }

    /// Blocks until a file event, a process exit or `until`.
    fn sleep(&mut self, watcher: &mut Watcher, until: Option<Instant>) -> Result<(), Error> {
        let timeout = until.map(|at| {
            let left = at.saturating_duration_since(Instant::now());
            Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: i64::from(left.subsec_nanos()),
            }
        });
        let watched: Vec<(i32, bool)> = self
            .pidfds
            .iter()
            .filter(|(_, (fd, _))| fd.is_some())
            .map(|(pid, (_, leader))| (*pid, *leader))
            .collect();
        let fired: Vec<bool> = {
            let mut fds = vec![PollFd::new(&*watcher, PollFlags::IN)];
            if let Some(stop) = &self.stop {
                fds.push(PollFd::new(stop, PollFlags::IN));
            }
            for (pid, _) in &watched {
                if let Some((Some(fd), _)) = self.pidfds.get(pid) {
                    fds.push(PollFd::new(fd, PollFlags::IN));
                }
            }
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(err) => return Err(Error::Io(err.into())),
            }
            fds.iter().map(|fd| !fd.revents().is_empty()).collect()
        };
        let (fired, pidfds_fired) = fired.split_at(1 + usize::from(self.stop.is_some()));
        if fired.get(1) == Some(&true) {
            return Err(Error::Stopped);
        }
        if fired[0] && !watcher.drain().is_empty() {
            // Any change in the directory starts rule C5's grace over.
            self.launch = None;
        }
        for ((pid, group_leader), fired) in watched.iter().zip(pidfds_fired) {
            if *fired {
                self.pidfds.remove(pid);
                self.exited.push(Watch {
                    pid: *pid,
                    group_leader: *group_leader,
                });
            }
        }
        Ok(())
    }
}
