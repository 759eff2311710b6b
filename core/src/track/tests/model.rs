//! Model-based test of the tracker: random sequences of what can happen to
//! a session (files written, the process starting, exiting or coming back,
//! `output/result.toml` and tool locks written by the running session,
//! events lost to an overflow, events on the directory itself, the
//! directory removed, restored or replaced, time passing, the cap) are
//! applied to a simulated session that a small driver feeds to the
//! tracker, and to a reference model written from the rule table alone.
//! The driver reads only what the tracker's [`Plan`] names (and what it
//! reads ahead), keeping the rest from its last reading, as the real
//! probe does; the reference always sees everything. After every step
//! both must agree on whether there is an answer and on what it is; no
//! answer may come while a process runs; every sequence ends in exactly
//! one answer.
//!
//! `PROPTEST_CASES` sets the number of sequences (CI runs the default).

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    Success,
    Failure,
    Malformed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Process {
    None,
    Alive,
    Dead,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Result(Written),
    Packet(Written),
    /// `result.toml` (true) or the packet written, its event lost to a
    /// queue overflow.
    Lost(Written, bool),
    /// The running session writes `output/result.toml` (making `output/`
    /// first if need be: an event; the file inside is none).
    OutputResult(Written),
    /// The running session's tool takes a lock naming itself (making
    /// `locks/` first if need be).
    Lock,
    /// The lock's process exits.
    LockExit,
    /// An event on the directory itself (its attributes changed).
    Touch,
    Stdout,
    Start,
    Exit,
    Remove,
    Restore,
    Replace,
    Wait(u64),
    Cap,
}

fn op() -> impl Strategy<Value = Op> {
    let written = prop_oneof![
        Just(Written::Success),
        Just(Written::Failure),
        Just(Written::Malformed)
    ];
    prop_oneof![
        1 => written.clone().prop_map(Op::Result),
        1 => written.clone().prop_map(Op::Packet),
        1 => (written.clone(), any::<bool>()).prop_map(|(w, result)| Op::Lost(w, result)),
        1 => written.prop_map(Op::OutputResult),
        1 => Just(Op::Lock),
        1 => Just(Op::LockExit),
        1 => Just(Op::Touch),
        1 => Just(Op::Stdout),
        3 => Just(Op::Start),
        3 => Just(Op::Exit),
        1 => Just(Op::Remove),
        1 => Just(Op::Restore),
        1 => Just(Op::Replace),
        4 => prop_oneof![Just(50u64), Just(150), Just(199), Just(200), Just(700), Just(2_000)]
            .prop_map(Op::Wait),
        1 => Just(Op::Cap),
    ]
}

/// The session as it is on disk and in the process table.
#[derive(Debug, Clone)]
struct Session {
    present: bool,
    result: Option<Written>,
    packet: Option<Written>,
    stdout: bool,
    process: Process,
    /// `output/` and what its `result.toml` holds.
    output: Option<Option<Written>>,
    /// `locks/` and the process of the lock in it.
    locks: Option<Process>,
}

impl Session {
    fn new() -> Session {
        Session {
            present: true,
            result: None,
            packet: None,
            stdout: false,
            process: Process::None,
            output: None,
            locks: None,
        }
    }

    /// Something of the session runs: its process, or a locked tool.
    fn alive(&self) -> bool {
        self.process == Process::Alive || self.locks == Some(Process::Alive)
    }

    /// Everything, as a full look reads it.
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            pid: if self.process == Process::None {
                FileState::Absent
            } else {
                pid_file()
            },
            result: state(self.result, |status, exit_code| SessionResult {
                status,
                exit_code,
                summary: None,
            }),
            packet: state(self.packet, |status, exit_code| Packet {
                status,
                exit_code,
                reason: None,
            }),
            output_result: state(self.output.flatten(), |status, exit_code| SessionResult {
                status,
                exit_code,
                summary: None,
            }),
            stdout: if self.stdout {
                Output::Content
            } else {
                Output::Missing
            },
            ..Snapshot::empty()
        }
    }
}

/// The driver's probe: reads what a plan names from the session, and
/// keeps its last reading of the rest, as [`Probe`] does.
#[derive(Debug)]
struct Disk {
    last: Snapshot,
    /// The lock's process was seen running at the last look that listed
    /// `locks/`: its pidfd is armed.
    lock_watched: bool,
}

impl Disk {
    fn look(&mut self, s: &Session, plan: &Plan) -> Look {
        if !s.present {
            return Look::Gone;
        }
        let truth = s.snapshot();
        let mut snap = if plan.full {
            truth.clone()
        } else {
            self.last.clone()
        };
        snap.take(&truth, plan.files);
        if plan.full || plan.output {
            snap.output_result = truth.output_result.clone();
        }
        // Read when rule C3 needs it, which is always fresh.
        snap.stdout = truth.stdout;
        self.last = snap.clone();
        // An unlisted `locks/` names no process: its pidfd is dropped.
        let locks_read = plan.full || plan.locks;
        self.lock_watched = locks_read && s.locks == Some(Process::Alive);
        let running = s.process == Process::Alive || self.lock_watched;
        let live = match (running, &snap.pid) {
            (true, _) => Liveness::Alive,
            (false, FileState::Absent) => Liveness::Unknown,
            (false, _) => Liveness::Dead,
        };
        Look::Found(Found {
            snap,
            live,
            exits_watched: running,
            polled: false,
            subdirs: Subdirs {
                output: (plan.full || plan.output) && s.output.is_some(),
                locks: locks_read && s.locks.is_some(),
            },
            mismatch: None,
        })
    }

    fn read_ahead(&mut self, s: &Session, names: Names) {
        self.last.take(&s.snapshot(), names);
    }
}

impl Snapshot {
    /// Takes the files among `names` from `truth`.
    fn take(&mut self, truth: &Snapshot, names: Names) {
        if names.contains(Name::Pid) {
            self.pid = truth.pid.clone();
        }
        if names.contains(Name::Result) {
            self.result = truth.result.clone();
        }
        if names.contains(Name::Packet) {
            self.packet = truth.packet.clone();
        }
        if names.contains(Name::Legacy) {
            self.legacy = truth.legacy.clone();
        }
    }
}

/// A file as written: a success, a failure (exit 3), or garbage.
fn state<T>(written: Option<Written>, make: impl Fn(String, i32) -> T) -> FileState<T> {
    match written {
        None => FileState::Absent,
        Some(Written::Success) => present(make("success".into(), 0)),
        Some(Written::Failure) => present(make("failure".into(), 3)),
        Some(Written::Malformed) => FileState::Malformed("bad TOML".into()),
    }
}

/// An answer, as far as the rule table says what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Verdict {
        outcome: Outcome,
        status: String,
        exit_code: Option<i32>,
        source: Source,
        synthetic: bool,
        reason: Option<String>,
    },
    Removed,
}

impl Answer {
    fn of(verdict: &Verdict) -> Answer {
        Answer::Verdict {
            outcome: verdict.outcome,
            status: verdict.status.clone(),
            exit_code: verdict.exit_code,
            source: verdict.source,
            synthetic: verdict.synthetic,
            reason: verdict.reason.clone(),
        }
    }

    fn completed(
        status: &str,
        code: i32,
        source: Source,
        synthetic: bool,
        reason: Option<&str>,
    ) -> Answer {
        Answer::Verdict {
            outcome: Outcome::Completed,
            status: status.into(),
            exit_code: Some(code),
            source,
            synthetic,
            reason: reason.map(str::to_string),
        }
    }

    fn not_completed(outcome: Outcome, status: &str) -> Answer {
        Answer::Verdict {
            outcome,
            status: status.into(),
            exit_code: None,
            source: Source::None,
            synthetic: false,
            reason: None,
        }
    }
}

/// The rule table, and the periods it speaks of, in the model's own terms:
/// when each period began, by the model's clock.
#[derive(Debug, Default)]
struct Reference {
    /// C4: since when the process has been dead with nothing written
    /// (cleared only when it runs again).
    dead_since: Option<Instant>,
    /// C5: since when no process has been known, nothing was written, and
    /// nothing changed in the directory.
    quiet_since: Option<Instant>,
    /// Since when the directory has been away.
    gone_since: Option<Instant>,
}

impl Reference {
    /// C1–C3: what the files say once nothing runs.
    fn written(s: &Session) -> Option<Answer> {
        // `output/result.toml` stands in for a missing (or unusable) result.
        let result = match s.result {
            Some(Written::Malformed) | None => s.output.flatten(),
            written => written,
        };
        match result {
            Some(Written::Success) => {
                return Some(Answer::completed("success", 0, Source::Result, false, None))
            }
            Some(Written::Failure) => {
                return Some(Answer::completed("failure", 3, Source::Result, false, None))
            }
            _ => {}
        }
        match s.packet {
            Some(Written::Success) if !s.stdout => Some(Answer::completed(
                "failure",
                1,
                Source::Packet,
                false,
                Some(crate::rules::REASON_EMPTY_SUCCESS),
            )),
            Some(Written::Success) => {
                Some(Answer::completed("success", 0, Source::Packet, false, None))
            }
            Some(Written::Failure) => {
                Some(Answer::completed("failure", 3, Source::Packet, false, None))
            }
            _ => None,
        }
    }

    /// A change in the directory: C5's period starts over.
    fn changed(&mut self) {
        self.quiet_since = None;
    }

    /// The answer due at `now`, if any, after bringing the periods up to date.
    fn answer(&mut self, s: &Session, now: Instant, t: Timing) -> Option<Answer> {
        if !s.present {
            let since = *self.gone_since.get_or_insert(now);
            return (now >= since + t.grace).then_some(Answer::Removed);
        }
        self.gone_since = None;
        if s.alive() {
            self.dead_since = None;
            self.quiet_since = None;
            return None; // C0
        }
        if let Some(answer) = Reference::written(s) {
            return Some(answer);
        }
        match s.process {
            Process::Dead => {
                self.quiet_since = None;
                let since = *self.dead_since.get_or_insert(now);
                (now >= since + t.grace)
                    .then(|| Answer::completed("failure", 1, Source::None, true, Some(REASON_DIED)))
            }
            _ => {
                let since = *self.quiet_since.get_or_insert(now);
                (now >= since + t.launch_grace).then(|| {
                    Answer::completed("failure", 1, Source::None, true, Some(REASON_NO_PROCESS))
                })
            }
        }
    }

    /// K and T: the answer when the cap fires at `now` (the directory is
    /// there; with none, the last look stands, which the driver avoids).
    fn at_cap(&mut self, s: &Session, now: Instant, t: Timing) -> Answer {
        if s.alive() {
            return Answer::not_completed(Outcome::KvWarm, "alive");
        }
        self.answer(s, now, t)
            .unwrap_or_else(|| Answer::not_completed(Outcome::Timeout, "dead"))
    }
}

/// Feeds one operation to the tracker the way a driver does: the events a
/// watcher and pidfds would report, then a look if the tracker asks.
fn drive(
    tracker: &mut Tracker,
    disk: &mut Disk,
    s: &mut Session,
    op: Op,
    now: &mut Instant,
) -> Option<Answer> {
    let file = |tracker: &mut Tracker, s: &Session, name| {
        if s.present {
            tracker.changed(Change::File(name));
        }
    };
    match op {
        Op::Result(w) if s.present => {
            s.result = Some(w);
            file(tracker, s, Name::Result);
        }
        Op::Packet(w) if s.present => {
            s.packet = Some(w);
            file(tracker, s, Name::Packet);
        }
        Op::Lost(w, result) if s.present => {
            if result {
                s.result = Some(w);
            } else {
                s.packet = Some(w);
            }
            tracker.rescan();
        }
        Op::OutputResult(w) if s.present && s.process == Process::Alive => {
            if s.output.is_none() {
                file(tracker, s, Name::Output);
            }
            s.output = Some(Some(w));
        }
        Op::Lock if s.present && s.process == Process::Alive => {
            if s.locks.is_none() {
                file(tracker, s, Name::Locks);
            }
            s.locks = Some(Process::Alive);
        }
        Op::LockExit if s.locks == Some(Process::Alive) => {
            s.locks = Some(Process::Dead);
            // Only a lock seen at a look has a pidfd.
            if disk.lock_watched {
                tracker.exited();
            }
        }
        Op::Touch if s.present => tracker.changed(Change::Dir),
        Op::Stdout if s.present => {
            s.stdout = true;
            file(tracker, s, Name::Other);
        }
        Op::Start if s.present => {
            s.process = Process::Alive;
            file(tracker, s, Name::Pid);
        }
        Op::Exit if s.process == Process::Alive => {
            s.process = Process::Dead;
            tracker.exited();
        }
        Op::Remove if s.present => {
            s.present = false;
            tracker.changed(Change::Dir);
        }
        Op::Restore if !s.present => {
            s.present = true;
            tracker.changed(Change::Dir);
        }
        Op::Replace => {
            // A new, empty directory of the same name (its process, if
            // any, is the old directory's and no longer this session's).
            *s = Session::new();
            tracker.changed(Change::Dir);
        }
        Op::Wait(ms) => {
            *now += Duration::from_millis(ms);
            tracker.due(*now);
        }
        _ => {}
    }
    if !tracker.stale() {
        let ahead = tracker.read_ahead();
        disk.read_ahead(s, ahead);
        return None;
    }
    let plan = tracker.plan(false);
    match tracker.observe(*now, disk.look(s, &plan), &timing()) {
        Step::Wait => None,
        Step::Verdict(verdict) => Some(Answer::of(&verdict)),
        Step::Removed => Some(Answer::Removed),
    }
}

fn changes_directory(op: Op, s: &Session) -> bool {
    match op {
        Op::Result(_) | Op::Packet(_) | Op::Stdout | Op::Start | Op::Remove | Op::Touch => {
            s.present
        }
        Op::OutputResult(_) | Op::Lock => s.present && s.process == Process::Alive,
        Op::Restore => !s.present,
        Op::Replace => true,
        // A lost event is no change the tracker can see (the look it
        // forces sees the file).
        Op::Lost(..) | Op::LockExit | Op::Exit | Op::Wait(_) | Op::Cap => false,
    }
}

/// Runs one sequence; returns the answers given (exactly one if all is well).
fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let t = timing();
    let mut now = Instant::now();
    let mut tracker = Tracker::new();
    let mut s = Session::new();
    let mut reference = Reference::default();
    let mut disk = Disk {
        last: Snapshot::empty(),
        lock_watched: false,
    };
    let first = tracker.observe(now, disk.look(&s, &tracker.plan(false)), &timing());
    prop_assert_eq!(first, Step::Wait);
    prop_assert_eq!(reference.answer(&s, now, t), None);
    let mut ops = ops
        .iter()
        .copied()
        .collect::<std::collections::VecDeque<_>>();
    for round in 0.. {
        prop_assert!(round < 10_000, "no answer after 10,000 steps");
        // Past the random part: let time pass to the tracker's next
        // deadline, or fire the cap when it has none.
        let op = ops.pop_front().unwrap_or_else(|| match tracker.deadline() {
            Some(at) => Op::Wait(at.saturating_duration_since(now).as_millis().max(1) as u64),
            None => Op::Cap,
        });
        if let Op::Cap = op {
            if !s.present {
                // The cap meets a vanished directory: wait out its grace.
                ops.push_front(Op::Cap);
                ops.push_front(Op::Wait(t.grace.as_millis() as u64));
                continue;
            }
            // As a driver does: a fresh look first (it may hold the
            // verdict itself), then the cap's answer.
            tracker.rescan();
            let look = disk.look(&s, &tracker.plan(false));
            let got = match tracker.observe(now, look, &timing()) {
                Step::Verdict(verdict) => Answer::of(&verdict),
                Step::Removed => Answer::Removed,
                Step::Wait => Answer::of(&tracker.at_cap()),
            };
            let want = reference.at_cap(&s, now, t);
            prop_assert_eq!(got, want, "at the cap");
            return Ok(());
        }
        if changes_directory(op, &s) {
            reference.changed();
        }
        let got = drive(&mut tracker, &mut disk, &mut s, op, &mut now);
        let want = reference.answer(&s, now, t);
        prop_assert_eq!(&got, &want, "after {:?}, session {:?}", op, s);
        if let Some(answer) = got {
            if matches!(answer, Answer::Verdict { .. }) {
                prop_assert!(!s.alive(), "a verdict while the session runs");
            }
            prop_assert!(
                !tracker.stale() && tracker.deadline().is_none(),
                "done after its answer"
            );
            return Ok(());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(2_000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_tracker_agrees_with_the_rule_table(ops in proptest::collection::vec(op(), 0..40)) {
        run(&ops)?;
    }
}
