//! The completion-verdict rules of SPEC §3, as one pure function.
//!
//! [`decide`] takes a [`Snapshot`] of a session directory, the liveness of
//! its process and the [`Phase`] of the wait, and returns a [`Decision`].
//! It does no I/O and reads no clock, so every rule is a table-driven unit
//! test. Gathering the snapshot ([`Snapshot::read`]) and knowing whether the
//! process lives are the caller's job.

use std::path::Path;

use crate::files::{self, Cached, FileState, Packet, PidFile, SessionResult};

/// Everything the rules need to know about one session directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// `daemon.pid`.
    pub pid: FileState<PidFile>,
    /// `result.toml`.
    pub result: FileState<SessionResult>,
    /// `daemon-completion.toml`.
    pub packet: FileState<Packet>,
    /// `.complete` (legacy packet).
    pub legacy: FileState<Packet>,
    /// `stdout.log` exists and is not empty.
    pub stdout_nonempty: bool,
}

/// The last reading of each session file, so that unchanged files are not
/// read again (see [`files::load_cached`]).
#[derive(Debug, Clone, Default)]
pub struct SnapshotCache {
    pid: Cached<PidFile>,
    result: Cached<SessionResult>,
    packet: Cached<Packet>,
    legacy: Cached<Packet>,
}

impl Snapshot {
    /// Reads the session files of `dir`; never blocks, never panics.
    pub fn read(dir: &Path) -> Snapshot {
        Snapshot::read_cached(dir, &mut SnapshotCache::default())
    }

    /// Reads the session files of `dir` that changed since `cache` saw them.
    pub fn read_cached(dir: &Path, cache: &mut SnapshotCache) -> Snapshot {
        Snapshot {
            pid: files::load_cached(
                &dir.join(files::PID_FILE),
                files::parse_pid_file,
                &mut cache.pid,
            ),
            result: files::load_cached(
                &dir.join(files::RESULT_FILE),
                files::parse_result,
                &mut cache.result,
            ),
            packet: files::load_cached(
                &dir.join(files::PACKET_FILE),
                files::parse_packet,
                &mut cache.packet,
            ),
            legacy: files::load_cached(
                &dir.join(files::LEGACY_FILE),
                files::parse_legacy,
                &mut cache.legacy,
            ),
            stdout_nonempty: files::stdout_nonempty(dir),
        }
    }

    /// An empty directory: no files at all.
    pub fn empty() -> Snapshot {
        Snapshot {
            pid: FileState::Absent,
            result: FileState::Absent,
            packet: FileState::Absent,
            legacy: FileState::Absent,
            stdout_nonempty: false,
        }
    }
}

/// Whether the session process lives (SPEC §3, "Liveness").
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
    /// True when the rules made the verdict up (C3, C4).
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
    /// The exit code a client should use (SPEC §3, "Client exit codes").
    pub fn exit(&self) -> i32 {
        match self.outcome {
            Outcome::Completed if self.status == "success" && self.exit_code == Some(0) => 0,
            Outcome::Completed => 1,
            Outcome::KvWarm => 0,
            Outcome::Timeout => 124,
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
    /// The answer.
    Verdict(Verdict),
}

/// Reason given by rule C3.
pub const REASON_EMPTY_SUCCESS: &str = "empty_success";
/// Reason given by rule C4.
pub const REASON_DIED: &str = "died_without_result";

/// Applies rules C0–C5, K and T (first match wins).
pub fn decide(snap: &Snapshot, live: Liveness, phase: Phase) -> Decision {
    if phase.cap_fired {
        return Decision::Verdict(decide_at_cap(snap, live, phase.grace_over));
    }
    if live == Liveness::Alive {
        // C0: even a result.toml is not final while its writer runs.
        return Decision::Pending;
    }
    match settled(snap, live, phase.grace_over) {
        Ok(verdict) => Decision::Verdict(verdict),
        Err(_) if live == Liveness::Dead => Decision::AwaitGrace,
        // C5: no process known and nothing written.
        Err(_) => Decision::Pending,
    }
}

/// The verdict for a waiter whose cap fired: always final (rules K and T
/// once C1–C4 have had their say).
pub fn decide_at_cap(snap: &Snapshot, live: Liveness, grace_over: bool) -> Verdict {
    if live == Liveness::Alive {
        // K: healthy and still working; the caller should come back.
        let pid = snap.pid.value().map(|p| p.pid);
        return not_completed(Outcome::KvWarm, "alive", pid, gather_notes(snap));
    }
    // T: no verdict and no live process.
    settled(snap, live, grace_over)
        .unwrap_or_else(|notes| not_completed(Outcome::Timeout, "dead", None, notes))
}

/// Rules C1–C4 for a process that is not alive: the final verdict, or the
/// notes gathered so far when there is none yet.
fn settled(snap: &Snapshot, live: Liveness, grace_over: bool) -> Result<Verdict, Vec<String>> {
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
        if packet.exit_code == 0 && !snap.stdout_nonempty {
            // C3: an exit-0 packet with no result and no output fails closed.
            notes.push(format!(
                "reason={REASON_EMPTY_SUCCESS}: the completion packet claims exit 0, \
                 but there is no result.toml and stdout.log is missing or empty"
            ));
            return Ok(synthetic_failure(REASON_EMPTY_SUCCESS, notes));
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
    if live == Liveness::Dead && grace_over {
        // C4: dead, nothing written, and late renames had their chance.
        notes.push(format!(
            "reason={REASON_DIED}: the process exited without writing \
             result.toml or a completion packet"
        ));
        return Ok(synthetic_failure(REASON_DIED, notes));
    }
    Err(notes)
}

/// Notes for every file that exists but cannot be used.
fn gather_notes(snap: &Snapshot) -> Vec<String> {
    let mut notes = Vec::new();
    note_malformed("daemon.pid", &snap.pid, &mut notes);
    note_malformed("result.toml", &snap.result, &mut notes);
    note_malformed("daemon-completion.toml", &snap.packet, &mut notes);
    note_malformed(".complete", &snap.legacy, &mut notes);
    notes
}

fn usable_result<'a>(snap: &'a Snapshot, notes: &mut Vec<String>) -> Option<&'a SessionResult> {
    let FileState::Present { value, mtime } = &snap.result else {
        return None;
    };
    // Freshness: a result older than daemon.pid is from an earlier run.
    if let (
        Some(result_mtime),
        FileState::Present {
            mtime: Some(pid_mtime),
            ..
        },
    ) = (mtime, &snap.pid)
    {
        if result_mtime < pid_mtime {
            notes.push(
                "result.toml is older than daemon.pid: a stale result from an earlier run, ignored"
                    .into(),
            );
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
