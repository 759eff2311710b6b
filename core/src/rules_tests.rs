//! Table-driven tests for [`super::decide`]: one row per rule, and one per
//! pair of rules that could be confused.

use std::time::{Duration, SystemTime};

use super::*;
use crate::files::{FileState, Output, Packet, PidFile, SessionResult};
use crate::snapshot::{Arrived, SnapshotCache};

fn at(secs: u64) -> Option<SystemTime> {
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

fn pid(mtime: u64) -> FileState<PidFile> {
    FileState::Present {
        value: PidFile {
            pid: 4242,
            starttime: Some(99),
        },
        mtime: at(mtime),
    }
}

fn result(status: &str, code: i32, mtime: u64) -> FileState<SessionResult> {
    let value = SessionResult {
        status: status.into(),
        exit_code: code,
        summary: Some("s".into()),
    };
    FileState::Present {
        value,
        mtime: at(mtime),
    }
}

fn packet(status: &str, code: i32) -> FileState<Packet> {
    let value = Packet {
        status: status.into(),
        exit_code: code,
        reason: None,
    };
    FileState::Present {
        value,
        mtime: at(20),
    }
}

fn bad<T>() -> FileState<T> {
    FileState::Malformed("is not valid: expected `=`".into())
}

struct Row {
    name: &'static str,
    snap: Snapshot,
    live: Liveness,
    phase: Phase,
    want: Want,
}

#[derive(Debug, PartialEq)]
enum Want {
    Pending,
    AwaitGrace,
    AwaitLaunch,
    /// outcome, status, exit_code, source, synthetic, client exit
    Verdict(Outcome, &'static str, Option<i32>, Source, bool, i32),
}

fn snap(
    pid_file: FileState<PidFile>,
    result_file: FileState<SessionResult>,
    packet_file: FileState<Packet>,
    stdout: bool,
) -> Snapshot {
    Snapshot {
        pid: pid_file,
        result: result_file,
        packet: packet_file,
        legacy: FileState::Absent,
        output_result: FileState::Absent,
        stdout: if stdout {
            Output::Content
        } else {
            Output::Missing
        },
        arrived: Arrived::default(),
    }
}

const NOW: Phase = Phase {
    cap_fired: false,
    grace_over: false,
    launch_over: false,
};
const GRACE_OVER: Phase = Phase {
    cap_fired: false,
    grace_over: true,
    launch_over: false,
};
const LAUNCH_OVER: Phase = Phase {
    cap_fired: false,
    grace_over: false,
    launch_over: true,
};
const CAP: Phase = Phase {
    cap_fired: true,
    grace_over: false,
    launch_over: false,
};

fn rows() -> Vec<Row> {
    use FileState::Absent;
    use Liveness::*;
    use Outcome::*;
    vec![
        Row {
            name: "C0 alive, nothing written",
            snap: snap(pid(10), Absent, Absent, false),
            live: Alive,
            phase: NOW,
            want: Want::Pending,
        },
        Row {
            name: "C0 alive with result already written",
            snap: snap(pid(10), result("success", 0, 20), Absent, true),
            live: Alive,
            phase: NOW,
            want: Want::Pending,
        },
        Row {
            name: "C1 result success",
            snap: snap(pid(10), result("success", 0, 20), Absent, true),
            live: Dead,
            phase: NOW,
            want: Want::Verdict(Completed, "success", Some(0), Source::Result, false, 0),
        },
        Row {
            name: "C1 result success beats packet signal 143",
            snap: snap(
                pid(10),
                result("success", 0, 20),
                packet("signal", 143),
                true,
            ),
            live: Dead,
            phase: NOW,
            want: Want::Verdict(Completed, "success", Some(0), Source::Result, false, 0),
        },
        Row {
            name: "C1 result failure beats packet success",
            snap: snap(
                pid(10),
                result("failure", 2, 20),
                packet("success", 0),
                true,
            ),
            live: Dead,
            phase: NOW,
            want: Want::Verdict(Completed, "failure", Some(2), Source::Result, false, 1),
        },
        Row {
            name: "C1 unknown process with result",
            snap: snap(Absent, result("success", 0, 20), Absent, true),
            live: Unknown,
            phase: NOW,
            want: Want::Verdict(Completed, "success", Some(0), Source::Result, false, 0),
        },
        Row {
            name: "C1 success status with non-zero code exits 1",
            snap: snap(pid(10), result("success", 3, 20), Absent, true),
            live: Dead,
            phase: NOW,
            want: Want::Verdict(Completed, "success", Some(3), Source::Result, false, 1),
        },
        Row {
            name: "C1 result with same mtime as pid is fresh",
            snap: snap(pid(10), result("success", 0, 10), Absent, true),
            live: Dead,
            phase: NOW,
            want: Want::Verdict(Completed, "success", Some(0), Source::Result, false, 0),
        },
        Row {
            name: "stale result is ignored, packet used",
            snap: snap(pid(10), result("success", 0, 5), packet("failure", 7), true),
            live: Dead,
            phase: NOW,
            want: Want::Verdict(Completed, "failure", Some(7), Source::Packet, false, 1),
        },
        Row {
            name: "a result seen arriving is fresh whatever its mtime (clock stepped back)",
            snap: Snapshot {
                arrived: Arrived {
                    result: true,
                    output_result: false,
                },
                ..snap(pid(10), result("success", 0, 5), packet("failure", 7), true)
            },
            live: Dead,
            phase: NOW,
            want: Want::Verdict(Completed, "success", Some(0), Source::Result, false, 0),
        },
        Row {
            name: "stale result alone waits for grace",
            snap: snap(pid(10), result("success", 0, 5), Absent, true),
            live: Dead,
            phase: NOW,
            want: Want::AwaitGrace,
        },
        Row {
            name: "malformed result falls back to packet",
            snap: snap(pid(10), bad(), packet("signal", 143), true),
            live: Dead,
            phase: NOW,
            want: Want::Verdict(Completed, "signal", Some(143), Source::Packet, false, 1),
        },
        Row {
            name: "C2 packet success with output",
            snap: snap(pid(10), Absent, packet("success", 0), true),
            live: Dead,
            phase: NOW,
            want: Want::Verdict(Completed, "success", Some(0), Source::Packet, false, 0),
        },
        Row {
            name: "C2 packet failure without output is not C3",
            snap: snap(pid(10), Absent, packet("failure", 1), false),
            live: Dead,
            phase: NOW,
            want: Want::Verdict(Completed, "failure", Some(1), Source::Packet, false, 1),
        },
        Row {
            name: "C3 empty exit-0 packet fails closed, not synthetic",
            snap: snap(pid(10), Absent, packet("success", 0), false),
            live: Dead,
            phase: NOW,
            want: Want::Verdict(Completed, "failure", Some(1), Source::Packet, false, 1),
        },
        Row {
            name: "C3 whitespace-only output fails closed",
            snap: Snapshot {
                stdout: Output::Blank,
                ..snap(pid(10), Absent, packet("success", 0), true)
            },
            live: Dead,
            phase: NOW,
            want: Want::Verdict(Completed, "failure", Some(1), Source::Packet, false, 1),
        },
        Row {
            name: "C3 with malformed result",
            snap: snap(pid(10), bad(), packet("success", 0), false),
            live: Unknown,
            phase: NOW,
            want: Want::Verdict(Completed, "failure", Some(1), Source::Packet, false, 1),
        },
        Row {
            name: "retired with exit 0 is success",
            snap: snap(pid(10), result("retired", 0, 20), Absent, true),
            live: Dead,
            phase: NOW,
            want: Want::Verdict(Completed, "retired", Some(0), Source::Result, false, 0),
        },
        Row {
            name: "output/result.toml stands in for a missing result.toml",
            snap: Snapshot {
                output_result: result("failure", 4, 20),
                ..snap(pid(10), Absent, packet("success", 0), true)
            },
            live: Dead,
            phase: NOW,
            want: Want::Verdict(Completed, "failure", Some(4), Source::Result, false, 1),
        },
        Row {
            name: "result.toml wins over output/result.toml",
            snap: Snapshot {
                output_result: result("failure", 4, 20),
                ..snap(pid(10), result("success", 0, 20), Absent, true)
            },
            live: Dead,
            phase: NOW,
            want: Want::Verdict(Completed, "success", Some(0), Source::Result, false, 0),
        },
        Row {
            name: "output/result.toml is not final while the process lives",
            snap: Snapshot {
                output_result: result("success", 0, 20),
                ..snap(pid(10), Absent, Absent, true)
            },
            live: Alive,
            phase: NOW,
            want: Want::Pending,
        },
        Row {
            name: "C4 dead without a word, grace running",
            snap: snap(pid(10), Absent, Absent, true),
            live: Dead,
            phase: NOW,
            want: Want::AwaitGrace,
        },
        Row {
            name: "C4 dead without a word, grace over",
            snap: snap(pid(10), Absent, Absent, true),
            live: Dead,
            phase: GRACE_OVER,
            want: Want::Verdict(Completed, "failure", Some(1), Source::None, true, 1),
        },
        Row {
            name: "C4 PID reuse counts as dead",
            snap: snap(pid(10), Absent, bad(), false),
            live: Dead,
            phase: GRACE_OVER,
            want: Want::Verdict(Completed, "failure", Some(1), Source::None, true, 1),
        },
        Row {
            name: "C5 unknown process, nothing written: launch grace",
            snap: snap(Absent, Absent, Absent, false),
            live: Unknown,
            phase: NOW,
            want: Want::AwaitLaunch,
        },
        Row {
            name: "C5 malformed pid file is unknown, not dead",
            snap: snap(bad(), Absent, Absent, false),
            live: Unknown,
            phase: GRACE_OVER,
            want: Want::AwaitLaunch,
        },
        Row {
            name: "C5 launch grace over: synthetic failure",
            snap: snap(Absent, Absent, Absent, false),
            live: Unknown,
            phase: LAUNCH_OVER,
            want: Want::Verdict(Completed, "failure", Some(1), Source::None, true, 1),
        },
        Row {
            name: "C5 launch grace over does not touch a dead process",
            snap: snap(pid(10), Absent, Absent, false),
            live: Dead,
            phase: LAUNCH_OVER,
            want: Want::AwaitGrace,
        },
        Row {
            name: "K cap fired, alive",
            snap: snap(pid(10), Absent, Absent, false),
            live: Alive,
            phase: CAP,
            want: Want::Verdict(KvWarm, "alive", None, Source::None, false, 0),
        },
        Row {
            name: "K beats a result written by the live process",
            snap: snap(pid(10), result("success", 0, 20), Absent, true),
            live: Alive,
            phase: CAP,
            want: Want::Verdict(KvWarm, "alive", None, Source::None, false, 0),
        },
        Row {
            name: "T cap fired, unknown process",
            snap: snap(Absent, Absent, Absent, false),
            live: Unknown,
            phase: CAP,
            want: Want::Verdict(Timeout, "dead", None, Source::None, false, 124),
        },
        Row {
            name: "T cap fired during grace",
            snap: snap(pid(10), Absent, Absent, false),
            live: Dead,
            phase: CAP,
            want: Want::Verdict(Timeout, "dead", None, Source::None, false, 124),
        },
        Row {
            name: "cap fired but a result exists: completed",
            snap: snap(pid(10), result("success", 0, 20), Absent, true),
            live: Dead,
            phase: CAP,
            want: Want::Verdict(Completed, "success", Some(0), Source::Result, false, 0),
        },
    ]
}

#[test]
fn every_rule() {
    for row in rows() {
        let got = match decide(&row.snap, row.live, row.phase) {
            Decision::Pending => Want::Pending,
            Decision::AwaitGrace => Want::AwaitGrace,
            Decision::AwaitLaunch => Want::AwaitLaunch,
            Decision::Verdict(v) => {
                let exit = v.exit().code();
                Want::Verdict(
                    v.outcome,
                    leak(v.status),
                    v.exit_code,
                    v.source,
                    v.synthetic,
                    exit,
                )
            }
        };
        assert_eq!(got, row.want, "rule row: {}", row.name);
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn verdict(snap: &Snapshot, live: Liveness, phase: Phase) -> Verdict {
    match decide(snap, live, phase) {
        Decision::Verdict(v) => v,
        other => panic!("expected a verdict, got {other:?}"),
    }
}

#[test]
fn notes_name_the_odd_files() {
    let s = snap(pid(10), bad(), packet("success", 0), false);
    let v = verdict(&s, Liveness::Dead, NOW);
    assert_eq!(v.reason.as_deref(), Some(REASON_EMPTY_SUCCESS));
    assert!(
        v.notes
            .iter()
            .any(|n| n.starts_with("result.toml is not valid")),
        "{:?}",
        v.notes
    );
    assert!(
        v.notes.iter().any(|n| n.contains("reason=empty_success")),
        "{:?}",
        v.notes
    );

    let stale = snap(pid(10), result("success", 0, 5), packet("failure", 7), true);
    let v = verdict(&stale, Liveness::Dead, NOW);
    assert!(v.notes.iter().any(|n| n.contains("stale")), "{:?}", v.notes);
}

#[test]
fn legacy_complete_is_a_packet_and_loses_to_the_toml_packet() {
    let mut s = snap(pid(10), FileState::Absent, FileState::Absent, true);
    s.legacy = packet("failure", 5);
    assert_eq!(verdict(&s, Liveness::Dead, NOW).exit_code, Some(5));
    s.packet = packet("signal", 143);
    assert_eq!(verdict(&s, Liveness::Dead, NOW).exit_code, Some(143));
}

#[test]
fn kv_warm_carries_the_pid_and_summary_comes_from_result() {
    let s = snap(pid(10), FileState::Absent, FileState::Absent, false);
    assert_eq!(verdict(&s, Liveness::Alive, CAP).pid, Some(4242));
    let done = snap(pid(10), result("success", 0, 20), FileState::Absent, true);
    assert_eq!(
        verdict(&done, Liveness::Dead, NOW).summary.as_deref(),
        Some("s")
    );
}

#[test]
fn the_cache_says_which_results_arrived_after_the_first_look() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cache = SnapshotCache::default();
    std::fs::write(
        dir.path().join("result.toml"),
        "status = \"success\"\nexit_code = 0\n",
    )
    .expect("write");
    let first = Snapshot::read_cached(dir.path(), &mut cache);
    assert_eq!(
        first.arrived,
        Arrived::default(),
        "there before the first look"
    );
    let again = Snapshot::read_cached(dir.path(), &mut cache);
    assert!(!again.arrived.result, "unchanged");
    std::fs::write(
        dir.path().join(".tmp"),
        "status = \"failure\"\nexit_code = 3\n",
    )
    .expect("write");
    std::fs::rename(dir.path().join(".tmp"), dir.path().join("result.toml")).expect("rename");
    let later = Snapshot::read_cached(dir.path(), &mut cache);
    assert!(later.arrived.result, "renamed in after the first look");
    assert!(!later.arrived.output_result);
}
