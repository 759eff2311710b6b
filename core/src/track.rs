//! One session's lifecycle as a state machine that does no I/O: the only
//! code that decides when a session must be looked at again, which grace
//! period runs, and when it is over. `verdictd` and the client's degraded
//! mode are two drivers of it.
//!
//! A driver feeds it what happened ([`Tracker::changed`],
//! [`Tracker::exited`], [`Tracker::rescan`], [`Tracker::due`]); when
//! [`Tracker::stale`] says so, it takes a look at the directory (with a
//! [`Probe`]) and hands it to [`Tracker::observe`], which answers with a
//! [`Step`]: keep waiting, the verdict, or the directory is gone for good.
//! The driver sleeps until [`Tracker::deadline`] (or the next event), and
//! asks [`Tracker::at_cap`] when a waiter's cap fires. Time is an input:
//! every call that needs the clock takes `now`.
//!
//! What a look reads is the tracker's call too ([`Tracker::plan`]): the
//! files named since the last look, or everything when a shortcut is not
//! safe (see [`Plan`]); verdict files named while nothing needs a look are
//! read ahead ([`Tracker::read_ahead`]).

use std::time::{Duration, Instant};

use crate::rules::{self, decide, decide_at_cap, Decision, Liveness, Phase, Verdict};
use crate::snapshot::Snapshot;

mod probe;
mod scope;
#[cfg(test)]
mod tests;

pub use probe::{dir_inode, Identity, Probe};
pub use scope::{Name, Names, Plan, Subdirs};

/// How often a session that no event can speak for (no inotify watch, or
/// a live process without a pidfd) is looked at.
pub const DEFAULT_POLL: Duration = Duration::from_secs(1);

/// The periods a tracker waits out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Rule C4: after the process died with nothing written, wait this long
    /// for a file racing the exit. Also how long a vanished directory may
    /// stay away (renamed away and back) before the session is removed.
    pub grace: Duration,
    /// Rule C5: no process known and nothing written, wait this long for a
    /// launcher to write `daemon.pid`; any change in the directory starts
    /// it over.
    pub launch_grace: Duration,
    /// See [`DEFAULT_POLL`].
    pub poll: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            grace: Duration::from_millis(rules::DEFAULT_GRACE_MS),
            launch_grace: Duration::from_millis(rules::DEFAULT_LAUNCH_GRACE_MS),
            poll: DEFAULT_POLL,
        }
    }
}

/// A grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    Idle,
    Until(Instant),
    Over,
}

impl Period {
    fn until(self) -> Option<Instant> {
        match self {
            Period::Until(at) => Some(at),
            _ => None,
        }
    }

    /// Starts the period unless it runs or ran out.
    fn start(&mut self, now: Instant, length: Duration) {
        if *self == Period::Idle {
            *self = Period::Until(now + length);
        }
    }

    /// Ran out by `now`: becomes over; true if it just did.
    fn expire(&mut self, now: Instant) -> bool {
        match *self {
            Period::Until(at) if at <= now => {
                *self = Period::Over;
                true
            }
            _ => false,
        }
    }
}

/// What happened in the session directory, as a watcher reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The directory itself (attributes, moved, deleted).
    Dir,
    /// An entry of it.
    File(Name),
}

impl Change {
    /// The change a watcher reports at `path`, an entry of the session
    /// directory.
    pub fn of_file(path: &std::path::Path) -> Change {
        Change::File(path.file_name().map_or(Name::Other, Name::of))
    }
}

/// One look at the session, taken by the driver.
// A look lives for one call, on the stack: boxing `Found` would cost an
// allocation on every exit path for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Look {
    /// The directory is not there.
    Gone,
    /// The directory and what was found in it.
    Found(Found),
}

/// What a look found.
#[derive(Debug, Clone)]
pub struct Found {
    /// The files.
    pub snap: Snapshot,
    /// Whether anything of the session runs.
    pub live: Liveness,
    /// Every live process of the session has an armed pidfd: its end will
    /// be an event, so file changes (other than `daemon.pid`) need no look.
    pub exits_watched: bool,
    /// No event can tell a change: the directory has no watch, or a live
    /// process has no pidfd. The tracker then asks for a look every
    /// [`Timing::poll`], and every look is a full one.
    pub polled: bool,
    /// Which of `output/` and `locks/` were there.
    pub subdirs: Subdirs,
    /// `daemon.pid`'s pid runs as another process than the one recorded.
    pub mismatch: Option<crate::liveness::Mismatch>,
}

impl Found {
    fn nothing() -> Found {
        Found {
            snap: Snapshot::empty(),
            live: Liveness::Unknown,
            exits_watched: false,
            polled: false,
            subdirs: Subdirs::default(),
            mismatch: None,
        }
    }
}

/// What the tracker concluded from a look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No verdict yet; wait for an event or [`Tracker::deadline`].
    Wait,
    /// The session's verdict. The tracker is done.
    Verdict(Verdict),
    /// The directory stayed away past its grace. The tracker is done.
    Removed,
}

/// One session's state.
#[derive(Debug, Clone)]
pub struct Tracker {
    /// Rule C4.
    grace: Period,
    /// Rule C5.
    launch: Period,
    /// The directory went missing.
    vanished: Period,
    /// The next look of a polled session.
    poll: Option<Instant>,
    /// Something happened since the last look.
    stale: bool,
    /// The next look must read everything (see [`Plan`]).
    full: bool,
    /// Names reported since the last look and not read yet.
    dirty: Names,
    /// Anything was named since the last look.
    named: bool,
    /// The last look that found the directory.
    last: Found,
    /// The tracker has given its final step.
    done: bool,
}

impl Tracker {
    /// A tracker that has not looked yet (it is stale).
    pub fn new() -> Tracker {
        Tracker {
            grace: Period::Idle,
            launch: Period::Idle,
            vanished: Period::Idle,
            poll: None,
            stale: true,
            full: true,
            dirty: Names::default(),
            named: false,
            last: Found::nothing(),
            done: false,
        }
    }

    /// Something changed in the directory. Any change starts rule C5's
    /// launch grace over; a look is needed unless the session's processes
    /// are all watched and the change is not `daemon.pid` (while they run,
    /// rule C0 holds whatever the files say). The name is kept for the
    /// next look to read; a change of the directory itself makes it full.
    pub fn changed(&mut self, change: Change) {
        if self.launch.until().is_some() {
            self.launch = Period::Idle;
            self.stale = true;
        }
        match change {
            Change::Dir => {
                self.full = true;
                self.stale = true;
            }
            Change::File(name) => {
                self.dirty.insert(name);
                self.named = true;
                self.stale |= name == Name::Pid || !self.last.exits_watched;
            }
        }
    }

    /// What the next look must read: only what was named since the last
    /// one, unless a full look is needed (see [`Plan`]). `queued`: the
    /// watcher still holds events it has not handed over, which may name
    /// this session's files.
    pub fn plan(&self, queued: bool) -> Plan {
        if self.full || self.last.polled || queued {
            return Plan::FULL;
        }
        Plan::only(self.dirty, self.named, self.last.subdirs)
    }

    /// The verdict files named while no look is due (the processes run
    /// and are watched): the driver reads them now, into its probe's last
    /// reading, so that the exit finds them read. They are no longer
    /// dirty.
    pub fn read_ahead(&mut self) -> Names {
        if self.stale() || self.full {
            return Names::default();
        }
        let ahead = self.dirty.and(Names::VERDICT);
        self.dirty = self.dirty.minus(ahead);
        ahead
    }

    /// A process the driver follows for this session exited.
    pub fn exited(&mut self) {
        self.stale = true;
    }

    /// Events may have been lost (a watcher overflow), or the driver needs
    /// the session as it is now (a cap fired): a full look.
    pub fn rescan(&mut self) {
        self.full = true;
        self.stale = true;
    }

    /// The clock reached `now`: the periods that ran out are over, and a
    /// look is needed for each.
    pub fn due(&mut self, now: Instant) {
        let mut ran_out = self.grace.expire(now);
        ran_out |= self.launch.expire(now);
        ran_out |= self.vanished.expire(now);
        if self.poll.is_some_and(|at| at <= now) {
            self.poll = None;
            ran_out = true;
        }
        self.stale |= ran_out;
    }

    /// A look is needed.
    pub fn stale(&self) -> bool {
        self.stale && !self.done
    }

    /// The earliest time the tracker wants [`Tracker::due`] called.
    pub fn deadline(&self) -> Option<Instant> {
        if self.done {
            return None;
        }
        [
            self.grace.until(),
            self.launch.until(),
            self.vanished.until(),
            self.poll,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The last look that found the directory (empty before one did).
    pub fn last(&self) -> &Found {
        &self.last
    }

    /// The directory was not there at the last look.
    pub fn gone(&self) -> bool {
        self.vanished != Period::Idle
    }

    /// Something of the session ran at the last look.
    pub fn alive(&self) -> bool {
        self.last.live == Liveness::Alive
    }

    /// Decides from a fresh look taken at `now`; periods that start now
    /// last as long as `timing` says.
    pub fn observe(&mut self, now: Instant, look: Look, timing: &Timing) -> Step {
        if self.done {
            return Step::Wait;
        }
        self.stale = false;
        self.dirty = Names::default();
        self.named = false;
        let found = match look {
            Look::Gone => {
                // Whatever comes back is looked at in full.
                self.full = true;
                return self.vanish(now, timing);
            }
            Look::Found(found) => found,
        };
        self.full = false;
        self.vanished = Period::Idle;
        let phase = self.phase(false);
        let decision = decide(&found.snap, found.live, phase);
        if decision != Decision::AwaitLaunch {
            // A process is known now (or the files decide): C5 is moot.
            self.launch = Period::Idle;
        }
        match decision {
            Decision::Verdict(verdict) => {
                let verdict = rules::explain_mismatch(verdict, found.mismatch.as_ref());
                self.last = found;
                self.done = true;
                return Step::Verdict(verdict);
            }
            Decision::AwaitGrace => self.grace.start(now, timing.grace),
            Decision::AwaitLaunch => self.launch.start(now, timing.launch_grace),
            // The process is back (a resumed session): grace starts over.
            Decision::Pending => self.grace = Period::Idle,
        }
        if found.polled && self.poll.is_none() {
            self.poll = Some(now + timing.poll);
        }
        self.last = found;
        Step::Wait
    }

    /// The directory is not there: it gets the grace period to come back
    /// (renamed away and back, or replaced) before the session is removed.
    fn vanish(&mut self, now: Instant, timing: &Timing) -> Step {
        if self.vanished == Period::Over {
            self.done = true;
            return Step::Removed;
        }
        self.vanished.start(now, timing.grace);
        Step::Wait
    }

    /// The answer for a waiter whose cap fired, from the last look (take a
    /// fresh one first: [`Tracker::observe`] may have the verdict itself).
    pub fn at_cap(&self) -> Verdict {
        rules::explain_mismatch(
            decide_at_cap(&self.last.snap, self.last.live, self.phase(true)),
            self.last.mismatch.as_ref(),
        )
    }

    fn phase(&self, cap_fired: bool) -> Phase {
        Phase {
            cap_fired,
            grace_over: self.grace == Period::Over,
            launch_over: self.launch == Period::Over,
        }
    }
}

impl Default for Tracker {
    fn default() -> Tracker {
        Tracker::new()
    }
}

/// Whether a session found by a subscription's first scan (not watched
/// before) is still running: its process lives and the files hold no
/// verdict. A finished one is not followed.
pub fn running(snap: &Snapshot, live: Liveness) -> bool {
    live == Liveness::Alive && !matches!(decide(snap, live, Phase::default()), Decision::Verdict(_))
}
