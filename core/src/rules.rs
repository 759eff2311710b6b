//! The completion-verdict rules (README.md, "How a verdict is decided"),
//! as one pure function.
//!
//! [`decide`] takes a [`Snapshot`] of a session directory, the liveness of
//! its process and the [`Phase`] of the wait, and returns a [`Decision`].
//! It does no I/O and reads no clock, so every rule is a table-driven unit
//! test. Gathering the snapshot ([`Snapshot::read`]) and knowing whether the
//! process lives are the caller's job.

use verdict_proto::Exit;

use crate::files::{self, FileState, Output, PidFile, SessionResult};
pub use crate::snapshot::Snapshot;

mod event;

/// Rule C4's grace period: long enough for a rename racing the exit.
pub const DEFAULT_GRACE_MS: u64 = 200;
/// Rule C5's launch grace: how long a session with no `daemon.pid`, no live
/// lock pid and no change in its directory may stay silent before it is a
/// failure. A launcher writes `daemon.pid` right after spawning; any new
/// file in the directory starts the period over.
pub const DEFAULT_LAUNCH_GRACE_MS: u64 = 2_000;

/// Whether the session process lives (README.md, "How a verdict is decided").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// `/proc/<pid>` exists, is not a zombie, and its start time matches.
    Alive,
    /// The process named by `daemon.pid` is gone, a zombie, or a reused pid.
    Dead,
    /// No usable `daemon.pid`: no process is known.
    Unknown,
}

/// Where the wait stands in time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Phase {
    /// The waiter's cap has fired.
    pub cap_fired: bool,
    /// The grace period of rule C4 has passed since the process was seen dead.
    pub grace_over: bool,
    /// No process has been known, and nothing has changed in the directory,
    /// for the launch grace period (rule C5).
    pub launch_over: bool,
}

/// The kind of verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The session ended; `status` and `exit_code` say how.
    Completed,
    /// The cap fired while the process was alive: come back later.
    KvWarm,
    /// The cap fired with no verdict and no live process.
    Timeout,
}

/// Which file a completed verdict came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `result.toml` (rule C1).
    Result,
    /// `daemon-completion.toml` or `.complete` (rule C2).
    Packet,
    /// Synthesised by the rules (C3, C4) or not completed at all.
    None,
}

/// A final answer for a waiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// What kind of answer this is.
    pub outcome: Outcome,
    /// `success`, `failure`, … for completed; `alive` or `dead` otherwise.
    pub status: String,
    /// The session's exit code (completed only).
    pub exit_code: Option<i32>,
    /// Where a completed verdict came from.
    pub source: Source,
    /// True when the rules made the outcome up: no result and no usable
    /// packet (C4, C5). A failure derived from a real packet is not.
    pub synthetic: bool,
    /// `summary` from `result.toml`.
    pub summary: Option<String>,
    /// Why a synthetic verdict was made, or the packet's `reason`.
    pub reason: Option<String>,
    /// The session process's pid (kv_warm only).
    pub pid: Option<i32>,
    /// Things that were odd: malformed or stale files, and why.
    pub notes: Vec<String>,
}

impl Verdict {
    /// The exit code a client should use (README.md, "Exit codes").
    pub fn exit(&self) -> Exit {
        match self.outcome {
            Outcome::Completed if success_status(&self.status) && self.exit_code == Some(0) => {
                Exit::Success
            }
            Outcome::Completed => Exit::Failure,
            Outcome::KvWarm => Exit::Success,
            Outcome::Timeout => Exit::Timeout,
        }
    }
}

/// What the rules say about a session right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No verdict yet; keep watching.
    Pending,
    /// The process is dead with nothing written: wait out the grace period
    /// (rule C4), then decide again with [`Phase::grace_over`] set.
    AwaitGrace,
    /// No process is known and nothing was written: wait out the launch
    /// grace period (rule C5; any change in the directory starts it over),
    /// then decide again with [`Phase::launch_over`] set.
    AwaitLaunch,
    /// The answer.
    Verdict(Verdict),
}

/// Statuses that mean success when the exit code is 0 (csa's
/// `terminal_result_wait_exit_code`).
pub fn success_status(status: &str) -> bool {
    matches!(status, "success" | "retired")
}

/// Reason given by rule C3.
pub const REASON_EMPTY_SUCCESS: &str = "empty_success";
/// Reason given by rule C4.
pub const REASON_DIED: &str = "died_without_result";
/// Reason given by rule C5.
pub const REASON_NO_PROCESS: &str = "no_live_process";

/// Applies rules C0–C5, K and T (first match wins).
pub fn decide(snap: &Snapshot, live: Liveness, phase: Phase) -> Decision {
    if phase.cap_fired {
        return Decision::Verdict(decide_at_cap(snap, live, phase));
    }
    if live == Liveness::Alive {
        // C0: even a result.toml is not final while its writer runs.
        return Decision::Pending;
    }
    match settled(snap, live, phase) {
        Ok(verdict) => Decision::Verdict(verdict),
        Err(_) if live == Liveness::Dead => Decision::AwaitGrace,
        // C5: no process known and nothing written (yet).
        Err(_) => Decision::AwaitLaunch,
    }
}

/// The verdict for a waiter whose cap fired: always final (rules K and T
/// once C1–C4 have had their say).
pub fn decide_at_cap(snap: &Snapshot, live: Liveness, phase: Phase) -> Verdict {
    if live == Liveness::Alive {
        // K: healthy and still working; the caller should come back.
        let pid = snap.pid.value().map(|p| p.pid);
        return not_completed(Outcome::KvWarm, "alive", pid, gather_notes(snap));
    }
    // T: no verdict and no live process.
    settled(snap, live, phase)
        .unwrap_or_else(|notes| not_completed(Outcome::Timeout, "dead", None, notes))
}

/// Rules C1–C5 for a process that is not alive: the final verdict, or the
/// notes gathered so far when there is none yet.
fn settled(snap: &Snapshot, live: Liveness, phase: Phase) -> Result<Verdict, Vec<String>> {
    let mut notes = gather_notes(snap);
    if let Some(result) = usable_result(snap, &mut notes) {
        // C1: the session's own word wins over how its process exited.
        return Ok(Verdict {
            outcome: Outcome::Completed,
            status: result.status.clone(),
            exit_code: Some(result.exit_code),
            source: Source::Result,
            synthetic: false,
            summary: result.summary.clone(),
            reason: None,
            pid: None,
            notes,
        });
    }
    if let Some(packet) = snap.packet.value().or_else(|| snap.legacy.value()) {
        if packet.exit_code == 0 && snap.stdout != Output::Content {
            // C3: an exit-0 packet with no result and no output fails
            // closed. The packet is real, so the failure is not synthetic.
            notes.push(format!(
                "reason={REASON_EMPTY_SUCCESS}: the completion packet claims exit 0, \
                 but there is no result.toml and stdout.log is missing, empty or only whitespace"
            ));
            return Ok(Verdict {
                source: Source::Packet,
                synthetic: false,
                ..synthetic_failure(REASON_EMPTY_SUCCESS, notes)
            });
        }
        // C2: the packet is the best word there is.
        return Ok(Verdict {
            outcome: Outcome::Completed,
            status: packet.status.clone(),
            exit_code: Some(packet.exit_code),
            source: Source::Packet,
            synthetic: false,
            summary: None,
            reason: packet.reason.clone(),
            pid: None,
            notes,
        });
    }
    if live == Liveness::Dead && phase.grace_over {
        // C4: dead, nothing written, and late renames had their chance.
        notes.push(format!(
            "reason={REASON_DIED}: the process exited without writing \
             result.toml or a completion packet"
        ));
        return Ok(synthetic_failure(REASON_DIED, notes));
    }
    if live == Liveness::Unknown && phase.launch_over {
        // C5: no daemon.pid, no live lock pid, and nothing new in the
        // directory for the launch grace period.
        notes.push(format!(
            "reason={REASON_NO_PROCESS}: no daemon.pid, no live process in locks/, \
             and no result or completion packet"
        ));
        return Ok(synthetic_failure(REASON_NO_PROCESS, notes));
    }
    Err(notes)
}

/// A verdict, told that `daemon.pid`'s pid runs as another process (see
/// [`crate::liveness::Mismatch`]): "the process exited" would be wrong, so
/// the note says what was seen instead.
pub fn explain_mismatch(
    mut verdict: Verdict,
    mismatch: Option<&crate::liveness::Mismatch>,
) -> Verdict {
    let Some(mismatch) = mismatch else {
        return verdict;
    };
    let died = format!("reason={REASON_DIED}:");
    match verdict
        .notes
        .iter_mut()
        .find(|note| note.starts_with(&died))
    {
        Some(note) => *note = format!("{died} {mismatch}"),
        None => verdict.notes.push(mismatch.to_string()),
    }
    verdict
}

/// Notes for every file that exists but cannot be used.
fn gather_notes(snap: &Snapshot) -> Vec<String> {
    let mut notes = Vec::new();
    note_malformed("daemon.pid", &snap.pid, &mut notes);
    note_malformed("result.toml", &snap.result, &mut notes);
    note_malformed("daemon-completion.toml", &snap.packet, &mut notes);
    note_malformed(".complete", &snap.legacy, &mut notes);
    note_malformed(files::OUTPUT_RESULT_FILE, &snap.output_result, &mut notes);
    notes
}

/// `result.toml` if it is fresh, else csa's fallback `output/result.toml`.
fn usable_result<'a>(snap: &'a Snapshot, notes: &mut Vec<String>) -> Option<&'a SessionResult> {
    let arrived = snap.arrived;
    if let Some(result) = fresh(
        "result.toml",
        &snap.result,
        arrived.result,
        &snap.pid,
        notes,
    ) {
        return Some(result);
    }
    let fallback = fresh(
        files::OUTPUT_RESULT_FILE,
        &snap.output_result,
        arrived.output_result,
        &snap.pid,
        notes,
    )?;
    notes.push(format!(
        "result.toml is missing; the verdict comes from {}",
        files::OUTPUT_RESULT_FILE
    ));
    Some(fallback)
}

fn fresh<'a>(
    name: &str,
    result: &'a FileState<SessionResult>,
    arrived: bool,
    pid: &FileState<PidFile>,
    notes: &mut Vec<String>,
) -> Option<&'a SessionResult> {
    let FileState::Present { value, mtime } = result else {
        return None;
    };
    if arrived {
        // Seen arriving: this run's, whatever the clock said.
        return Some(value);
    }
    // Freshness of a file that was already there: a result older than
    // daemon.pid is from an earlier run.
    if let (
        Some(result_mtime),
        FileState::Present {
            mtime: Some(pid_mtime),
            ..
        },
    ) = (mtime, pid)
    {
        if result_mtime < pid_mtime {
            notes.push(format!(
                "{name} is older than daemon.pid: a stale result from an earlier run, ignored"
            ));
            return None;
        }
    }
    Some(value)
}

fn note_malformed<T>(name: &str, state: &FileState<T>, notes: &mut Vec<String>) {
    if let FileState::Malformed(reason) = state {
        notes.push(format!("{name} {reason}; treated as absent"));
    }
}

fn synthetic_failure(reason: &str, notes: Vec<String>) -> Verdict {
    Verdict {
        outcome: Outcome::Completed,
        status: "failure".into(),
        exit_code: Some(1),
        source: Source::None,
        synthetic: true,
        summary: None,
        reason: Some(reason.into()),
        pid: None,
        notes,
    }
}

fn not_completed(outcome: Outcome, status: &str, pid: Option<i32>, notes: Vec<String>) -> Verdict {
    Verdict {
        outcome,
        status: status.into(),
        exit_code: None,
        source: Source::None,
        synthetic: false,
        summary: None,
        reason: None,
        pid,
        notes,
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
