//! The tracker on its own: inputs in, steps and deadlines out, with no
//! inotify, pidfds, threads or clock. Table tests of each period, then a
//! model-based test against a reference written from the rule table.

use std::time::{Duration, Instant};

use super::*;
use crate::files::{FileState, Output, Packet, PidFile, SessionResult};
use crate::rules::{Outcome, Source, REASON_DIED, REASON_NO_PROCESS};

mod model;

const MS: Duration = Duration::from_millis(1);

fn timing() -> Timing {
    Timing {
        grace: 200 * MS,
        launch_grace: 2_000 * MS,
        poll: 1_000 * MS,
    }
}

fn present<T>(value: T) -> FileState<T> {
    FileState::Present { value, mtime: None }
}

fn pid_file() -> FileState<PidFile> {
    present(PidFile {
        pid: 4242,
        starttime: None,
    })
}

fn found(snap: Snapshot, live: Liveness) -> Look {
    Look::Found(Found {
        snap,
        live,
        exits_watched: live == Liveness::Alive,
        polled: false,
        subdirs: Subdirs::default(),
        mismatch: None,
    })
}

fn with_pid() -> Snapshot {
    Snapshot {
        pid: pid_file(),
        ..Snapshot::empty()
    }
}

fn with_result(status: &str, exit_code: i32) -> Snapshot {
    Snapshot {
        result: present(SessionResult {
            status: status.into(),
            exit_code,
            summary: None,
        }),
        ..with_pid()
    }
}

fn reason(step: &Step) -> Option<&str> {
    match step {
        Step::Verdict(v) => v.reason.as_deref(),
        _ => None,
    }
}

#[test]
fn a_dead_process_gets_its_grace_then_a_synthetic_failure() {
    let t0 = Instant::now();
    let mut tracker = Tracker::new();
    assert!(tracker.stale(), "a new tracker wants its first look");
    assert_eq!(
        tracker.observe(t0, found(with_pid(), Liveness::Dead), &timing()),
        Step::Wait
    );
    assert_eq!(tracker.deadline(), Some(t0 + 200 * MS));
    tracker.due(t0 + 199 * MS);
    assert!(!tracker.stale(), "not yet");
    tracker.due(t0 + 200 * MS);
    assert!(tracker.stale());
    let step = tracker.observe(t0 + 200 * MS, found(with_pid(), Liveness::Dead), &timing());
    assert_eq!(reason(&step), Some(REASON_DIED));
    assert_eq!(tracker.deadline(), None, "done: nothing more to wake for");
    assert!(!tracker.stale());
}

#[test]
fn a_result_within_the_grace_wins() {
    let t0 = Instant::now();
    let mut tracker = Tracker::new();
    tracker.observe(t0, found(with_pid(), Liveness::Dead), &timing());
    tracker.changed(Change::File(Name::Other));
    assert!(tracker.stale());
    match tracker.observe(
        t0 + 50 * MS,
        found(with_result("success", 0), Liveness::Dead),
        &timing(),
    ) {
        Step::Verdict(v) => assert_eq!((v.source, v.synthetic), (Source::Result, false)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_process_back_within_the_grace_starts_it_over() {
    let t0 = Instant::now();
    let mut tracker = Tracker::new();
    tracker.observe(t0, found(with_pid(), Liveness::Dead), &timing());
    assert!(tracker.deadline().is_some());
    tracker.changed(Change::File(Name::Pid));
    assert_eq!(
        tracker.observe(t0 + 100 * MS, found(with_pid(), Liveness::Alive), &timing()),
        Step::Wait
    );
    assert_eq!(tracker.deadline(), None, "grace is idle again");
    tracker.exited();
    tracker.observe(t0 + 150 * MS, found(with_pid(), Liveness::Dead), &timing());
    assert_eq!(
        tracker.deadline(),
        Some(t0 + 350 * MS),
        "a full grace again"
    );
}

#[test]
fn while_every_process_is_watched_only_daemon_pid_needs_a_look() {
    let t0 = Instant::now();
    let mut tracker = Tracker::new();
    tracker.observe(t0, found(with_pid(), Liveness::Alive), &timing());
    tracker.changed(Change::File(Name::Other));
    assert!(!tracker.stale(), "rule C0 holds while it runs");
    tracker.changed(Change::File(Name::Pid));
    assert!(tracker.stale());
    tracker.observe(t0, found(with_pid(), Liveness::Alive), &timing());
    tracker.changed(Change::Dir);
    assert!(tracker.stale(), "the directory itself is always looked at");
}

#[test]
fn the_launch_grace_starts_over_on_any_change() {
    let t0 = Instant::now();
    let mut tracker = Tracker::new();
    tracker.observe(t0, found(Snapshot::empty(), Liveness::Unknown), &timing());
    assert_eq!(tracker.deadline(), Some(t0 + 2_000 * MS));
    tracker.changed(Change::File(Name::Other));
    assert_eq!(tracker.deadline(), None);
    tracker.observe(
        t0 + 1_500 * MS,
        found(Snapshot::empty(), Liveness::Unknown),
        &timing(),
    );
    assert_eq!(tracker.deadline(), Some(t0 + 3_500 * MS));
    tracker.due(t0 + 3_500 * MS);
    let step = tracker.observe(
        t0 + 3_500 * MS,
        found(Snapshot::empty(), Liveness::Unknown),
        &timing(),
    );
    assert_eq!(reason(&step), Some(REASON_NO_PROCESS));
}

#[test]
fn a_vanished_directory_may_come_back_within_the_grace() {
    let t0 = Instant::now();
    let mut tracker = Tracker::new();
    tracker.observe(t0, found(with_pid(), Liveness::Alive), &timing());
    tracker.changed(Change::Dir);
    assert_eq!(tracker.observe(t0, Look::Gone, &timing()), Step::Wait);
    assert_eq!(tracker.deadline(), Some(t0 + 200 * MS));
    tracker.changed(Change::Dir);
    tracker.observe(t0 + 100 * MS, found(with_pid(), Liveness::Alive), &timing());
    assert_eq!(tracker.deadline(), None, "back: no removal pending");
    tracker.changed(Change::Dir);
    tracker.observe(t0 + 150 * MS, Look::Gone, &timing());
    tracker.due(t0 + 350 * MS);
    assert_eq!(
        tracker.observe(t0 + 350 * MS, Look::Gone, &timing()),
        Step::Removed
    );
    assert_eq!(
        tracker.observe(t0 + 400 * MS, Look::Gone, &timing()),
        Step::Wait,
        "once"
    );
}

#[test]
fn a_polled_session_is_looked_at_every_poll() {
    let t0 = Instant::now();
    let mut tracker = Tracker::new();
    let polled = |live| {
        Look::Found(Found {
            snap: with_pid(),
            live,
            exits_watched: false,
            polled: true,
            subdirs: Subdirs::default(),
            mismatch: None,
        })
    };
    tracker.observe(t0, polled(Liveness::Alive), &timing());
    assert_eq!(tracker.deadline(), Some(t0 + 1_000 * MS));
    tracker.changed(Change::File(Name::Other));
    assert!(
        tracker.stale(),
        "a process without a pidfd: files are looked at"
    );
    tracker.observe(t0 + 10 * MS, polled(Liveness::Alive), &timing());
    assert_eq!(tracker.deadline(), Some(t0 + 1_000 * MS), "not pushed back");
    tracker.due(t0 + 1_000 * MS);
    assert!(tracker.stale());
}

#[test]
fn at_the_cap_a_live_session_is_kv_warm_and_a_silent_one_a_timeout() {
    let t0 = Instant::now();
    let mut tracker = Tracker::new();
    tracker.observe(t0, found(with_pid(), Liveness::Alive), &timing());
    let warm = tracker.at_cap();
    assert_eq!((warm.outcome, warm.pid), (Outcome::KvWarm, Some(4242)));
    tracker.exited();
    tracker.observe(t0, found(with_pid(), Liveness::Dead), &timing());
    assert_eq!(tracker.at_cap().outcome, Outcome::Timeout);
    let packet = Snapshot {
        packet: present(Packet {
            status: "failure".into(),
            exit_code: 2,
            reason: None,
        }),
        stdout: Output::Content,
        ..with_pid()
    };
    let mut tracker = Tracker::new();
    match tracker.observe(t0, found(packet, Liveness::Dead), &timing()) {
        Step::Verdict(v) => assert_eq!((v.source, v.exit_code), (Source::Packet, Some(2))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_old_session_is_followed_only_while_it_runs() {
    assert!(running(&with_pid(), Liveness::Alive));
    assert!(!running(&with_pid(), Liveness::Dead));
    assert!(!running(&with_result("success", 0), Liveness::Unknown));
}

#[test]
fn a_look_reads_only_what_was_named_unless_a_full_one_is_needed() {
    let t0 = Instant::now();
    let mut tracker = Tracker::new();
    assert_eq!(tracker.plan(false), Plan::FULL, "the first look is full");
    tracker.observe(t0, found(with_pid(), Liveness::Alive), &timing());
    let plan = tracker.plan(false);
    assert!(!plan.full && plan.files.is_empty() && !plan.named);
    assert_eq!(tracker.plan(true), Plan::FULL, "events still queued");
    assert!(!plan.output && !plan.locks, "neither was there");

    // A result while the process runs and is watched: no look, but read
    // ahead, and then no longer to be read at the exit.
    tracker.changed(Change::File(Name::Result));
    tracker.changed(Change::File(Name::Other));
    assert!(!tracker.stale());
    assert!(tracker.read_ahead().contains(Name::Result));
    assert!(tracker.read_ahead().is_empty(), "read once");
    tracker.exited();
    let plan = tracker.plan(false);
    assert!(!plan.full && !plan.reads(Name::Result) && plan.named);

    // `output/` and `locks/` are looked into once they may exist.
    tracker.changed(Change::File(Name::Output));
    assert!(tracker.plan(false).output && !tracker.plan(false).locks);
    let mut look = found(with_pid(), Liveness::Alive);
    if let Look::Found(found) = &mut look {
        found.subdirs.locks = true;
    }
    tracker.observe(t0, look, &timing());
    assert!(tracker.plan(false).locks && !tracker.plan(false).output);

    // The directory itself, a rescan, or a poll: full.
    tracker.changed(Change::Dir);
    assert_eq!(tracker.plan(false), Plan::FULL);
    tracker.observe(t0, found(with_pid(), Liveness::Alive), &timing());
    tracker.rescan();
    assert_eq!(tracker.plan(false), Plan::FULL);
    assert!(tracker.read_ahead().is_empty(), "a full look is due");
    tracker.observe(t0, Look::Gone, &timing());
    assert_eq!(
        tracker.plan(false),
        Plan::FULL,
        "what comes back is read in full"
    );
}

#[test]
fn daemon_pid_is_read_by_the_look_it_asks_for() {
    let t0 = Instant::now();
    let mut tracker = Tracker::new();
    tracker.observe(t0, found(with_pid(), Liveness::Alive), &timing());
    tracker.changed(Change::File(Name::Pid));
    assert!(tracker.stale());
    assert!(tracker.read_ahead().is_empty());
    assert!(tracker.plan(false).reads(Name::Pid));
}
