//! Model-based test of the tracker: random sequences of what can happen to
//! a session (files written, the process starting, exiting or coming back,
//! the directory removed, restored or replaced, time passing, the cap)
//! are applied to a simulated session that a small driver feeds to the
//! tracker, and to a reference model written from the rule table alone.
//! After every step both must agree on whether there is an answer and on
//! what it is; no answer may come while a process runs; every sequence
//! ends in exactly one answer.
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
        1 => written.prop_map(Op::Packet),
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
}

impl Session {
    fn new() -> Session {
        Session {
            present: true,
            result: None,
            packet: None,
            stdout: false,
            process: Process::None,
        }
    }

    fn live(&self) -> Liveness {
        match self.process {
            Process::None => Liveness::Unknown,
            Process::Alive => Liveness::Alive,
            Process::Dead => Liveness::Dead,
        }
    }

    fn look(&self) -> Look {
        if !self.present {
            return Look::Gone;
        }
        let snap = Snapshot {
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
            stdout: if self.stdout {
                Output::Content
            } else {
                Output::Missing
            },
            ..Snapshot::empty()
        };
        found(snap, self.live())
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
        match s.result {
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
        if s.process == Process::Alive {
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
        if s.process == Process::Alive {
            return Answer::not_completed(Outcome::KvWarm, "alive");
        }
        self.answer(s, now, t)
            .unwrap_or_else(|| Answer::not_completed(Outcome::Timeout, "dead"))
    }
}

/// Feeds one operation to the tracker the way a driver does: the events a
/// watcher and pidfds would report, then a look if the tracker asks.
fn drive(tracker: &mut Tracker, s: &mut Session, op: Op, now: &mut Instant) -> Option<Answer> {
    let file = |tracker: &mut Tracker, s: &Session, pid_file| {
        if s.present {
            tracker.changed(Change::File { pid_file });
        }
    };
    match op {
        Op::Result(w) if s.present => {
            s.result = Some(w);
            file(tracker, s, false);
        }
        Op::Packet(w) if s.present => {
            s.packet = Some(w);
            file(tracker, s, false);
        }
        Op::Stdout if s.present => {
            s.stdout = true;
            file(tracker, s, false);
        }
        Op::Start if s.present => {
            s.process = Process::Alive;
            file(tracker, s, true);
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
        return None;
    }
    match tracker.observe(*now, s.look(), &timing()) {
        Step::Wait => None,
        Step::Verdict(verdict) => Some(Answer::of(&verdict)),
        Step::Removed => Some(Answer::Removed),
    }
}

fn changes_directory(op: Op, s: &Session) -> bool {
    match op {
        Op::Result(_) | Op::Packet(_) | Op::Stdout | Op::Start | Op::Remove => s.present,
        Op::Restore => !s.present,
        Op::Replace => true,
        Op::Exit | Op::Wait(_) | Op::Cap => false,
    }
}

/// Runs one sequence; returns the answers given (exactly one if all is well).
fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let t = timing();
    let mut now = Instant::now();
    let mut tracker = Tracker::new();
    let mut s = Session::new();
    let mut reference = Reference::default();
    let first = tracker.observe(now, s.look(), &timing());
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
            let got = match tracker.observe(now, s.look(), &timing()) {
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
        let got = drive(&mut tracker, &mut s, op, &mut now);
        let want = reference.answer(&s, now, t);
        prop_assert_eq!(&got, &want, "after {:?}, session {:?}", op, s);
        if let Some(answer) = got {
            if matches!(answer, Answer::Verdict { .. }) {
                prop_assert!(
                    s.process != Process::Alive,
                    "a verdict while the process runs"
                );
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
