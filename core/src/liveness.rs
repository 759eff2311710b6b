//! Is anything of a session still running? csa's answer (its
//! `ToolLiveness`), read from `/proc` once per look and never polled:
//!
//! - the `daemon.pid` process runs, and its start time matches when one is
//!   recorded (a mismatch is PID reuse);
//! - that process is a zombie thread-group leader whose other threads still
//!   run (`pthread_exit` in `main`), or a zombie whose process group still
//!   has live members (a shell that left its pipeline running);
//! - a pid named in `locks/*.lock` runs and belongs to the session (its
//!   command line names the tool or the session, or the lock is recent).
//!
//! The answer comes with the pids to watch: the caller opens a pidfd for
//! each, so the end of the last one is an event, not something to poll.
//! csa's fourth signal, "a file was written in the last 30 s", is a clock
//! heuristic; verdict replaces it with a launch grace period in the rules
//! (see [`crate::rules::Phase::launch_over`]).
//!
//! The process table is read by `liveness/procfs.rs` on Linux and
//! `liveness/bsd.rs` on macOS and FreeBSD; this module decides no verdict.

use std::path::Path;
use std::time::{Duration, SystemTime};

#[cfg(any(target_os = "macos", target_os = "freebsd"))]
#[path = "liveness/bsd.rs"]
mod os;
#[cfg(target_os = "linux")]
#[path = "liveness/procfs.rs"]
mod os;

use os::{cmdline_names, group_members, threads};
pub use os::{open_pidfd, proc_stat};

use crate::files::{self, PidFile};
use crate::rules::Liveness;

/// Directory of csa's tool lock files inside a session.
pub const LOCKS_DIR: &str = "locks";
/// A lock file this recent counts even when its process's command line does
/// not name the session (csa's `LOCK_FILE_STALE_SECS`).
const LOCK_RECENT: Duration = Duration::from_secs(60);
/// Entries of `locks/` looked at, at most (names only: no file is opened
/// for them). csa keeps one lock per tool and removes stale ones; a
/// directory past this is refused work and its locks are not counted.
const MAX_LOCK_ENTRIES: usize = 65_536;
/// `.lock` files opened, at most, chosen newest first *after* the names
/// are filtered: stale files, of any name, never hide a live lock.
const MAX_LOCKS: usize = 256;
/// A lock file is a line of JSON: read no more than this of one.
const MAX_LOCK_BYTES: u64 = 4096;

/// The fields of `/proc/<pid>/stat` that liveness needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// State letter: `R`, `S`, `D`, `Z`, `T`, `X`, …
    pub state: char,
    /// Process group id (field 5).
    pub pgrp: i32,
    /// Start time in clock ticks since boot (field 22); `None` where it
    /// is not comparable with what launchers record (macOS, FreeBSD).
    pub starttime: Option<u64>,
}

impl ProcStat {
    fn exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses a `/proc/<pid>/stat` line. The command name may contain spaces
/// and parentheses, so parsing starts after the last `)`.
pub fn parse_proc_stat(line: &str) -> Option<ProcStat> {
    let rest = &line[line.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    // Fields 6..21 lie between the group and the start time (field 22).
    let starttime = Some(fields.nth(22 - 6)?.parse().ok()?);
    Some(ProcStat {
        state,
        pgrp,
        starttime,
    })
}

/// A pid whose exit can change the answer, as it was when last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watch {
    /// The process.
    pub pid: i32,
    /// It led its process group (csa starts its sessions with `setsid`):
    /// when it exits, the group may live on.
    pub group_leader: bool,
}

/// What is alive of a session, and which pids to watch for its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Alive if any pid below is; Dead if `daemon.pid` names a process
    /// that is gone; Unknown when no process is known at all.
    pub liveness: Liveness,
    /// Live pids whose exit can change the answer.
    pub watch: Vec<Watch>,
    /// `locks/` was there (or could not be told absent).
    pub locks: bool,
    /// `daemon.pid`'s pid runs, but is not the process it recorded.
    pub mismatch: Option<Mismatch>,
}

/// `daemon.pid` names a running pid whose start time is not the one it
/// recorded: another process got the pid, or the launcher wrote something
/// other than field 22 of `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch {
    /// The pid.
    pub pid: i32,
    /// The start time `daemon.pid` holds.
    pub recorded: u64,
    /// The running process's start time (clock ticks since boot).
    pub actual: u64,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} runs but started at {}, not at {} as daemon.pid says: a different \
             process, or a wrong start time (daemon.pid holds `<pid> <starttime>`, the start \
             time being field 22 of /proc/{}/stat, in clock ticks since boot)",
            self.pid, self.actual, self.recorded, self.pid
        )
    }
}

impl Observed {
    /// The pids of [`Observed::watch`].
    pub fn pids(&self) -> Vec<i32> {
        self.watch.iter().map(|w| w.pid).collect()
    }
}

/// Looks at the session in `dir`: its `daemon.pid` record (if usable) and
/// its lock files. `exited` are processes the caller knows have exited
/// (their pidfd turned readable): `/proc` is not read for them, except
/// for a group leader, whose group may still run. `locks/` is listed only
/// when `locks` says it may exist.
pub fn observe(dir: &Path, pid: Option<&PidFile>, exited: &[Watch], locks: bool) -> Observed {
    let session_id = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let (mut watch, mismatch) = pid
        .map(|pid| match exited.iter().find(|w| w.pid == pid.pid) {
            Some(gone) if !gone.group_leader => (Vec::new(), None),
            _ => daemon_pid_state(pid),
        })
        .unwrap_or_default();
    let exited_pid = |pid: i32| exited.iter().any(|w| w.pid == pid);
    let locked = if locks {
        lock_pids(&dir.join(LOCKS_DIR), session_id, &exited_pid)
    } else {
        None
    };
    let locks = locked.is_some();
    for lock_pid in locked.unwrap_or_default() {
        if !watch.iter().any(|w| w.pid == lock_pid.pid) {
            watch.push(lock_pid);
        }
    }
    let liveness = match (watch.is_empty(), pid) {
        (false, _) => Liveness::Alive,
        (true, Some(_)) => Liveness::Dead,
        (true, None) => Liveness::Unknown,
    };
    Observed {
        liveness,
        watch,
        locks,
        mismatch,
    }
}

/// Whether the process named by `daemon.pid` is alive now: the pids to
/// watch, empty when it is gone (or its pid was reused).
pub fn daemon_pid_watch(pid: &PidFile) -> Vec<Watch> {
    daemon_pid_state(pid).0
}

/// [`daemon_pid_watch`], and the mismatch when the pid runs with another
/// start time than the one recorded.
fn daemon_pid_state(pid: &PidFile) -> (Vec<Watch>, Option<Mismatch>) {
    let Some(stat) = proc_stat(pid.pid) else {
        return (Vec::new(), None);
    };
    if let Some((recorded, actual)) = pid.starttime.zip(stat.starttime) {
        if recorded != actual {
            let mismatch = (!stat.exited()).then_some(Mismatch {
                pid: pid.pid,
                recorded,
                actual,
            });
            return (Vec::new(), mismatch);
        }
    }
    let leader = stat.pgrp == pid.pid;
    let this = || {
        vec![Watch {
            pid: pid.pid,
            group_leader: leader,
        }]
    };
    let watch = match stat.state {
        'X' | 'x' => Vec::new(),
        // A zombie leader whose other threads run: its pidfd turns
        // readable only when the whole thread group has exited.
        'Z' if threads(pid.pid) > 1 => this(),
        // Only a group leader (csa starts its sessions with setsid) can
        // leave a group behind; the scan of /proc is skipped otherwise.
        'Z' if leader => group_members(pid.pid),
        'Z' => Vec::new(),
        _ => this(),
    };
    (watch, None)
}

/// The compatibility helper for callers that only need a yes or no about
/// one `daemon.pid` record.
pub fn process_liveness(pid: &PidFile) -> Liveness {
    if daemon_pid_watch(pid).is_empty() {
        Liveness::Dead
    } else {
        Liveness::Alive
    }
}

/// Pids of `locks/*.lock` (csa writes `{"pid": N, …}`) that run and belong
/// to the session; those `exited` says have exited are not looked up.
/// The live pids that `locks/` names; `None` when there is no `locks/`.
fn lock_pids(locks: &Path, session_id: &str, exited: &dyn Fn(i32) -> bool) -> Option<Vec<Watch>> {
    let entries = match std::fs::read_dir(locks) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
        // Not listable now (not a directory, no permission): it exists.
        Err(_) => return Some(Vec::new()),
    };
    let now = SystemTime::now();
    let mut candidates = Vec::new();
    for (seen, entry) in entries.flatten().enumerate() {
        if seen == MAX_LOCK_ENTRIES {
            // Not a directory of tool locks: counting on it would be
            // unbounded work for whoever looks (the daemon's loop).
            return Some(Vec::new());
        }
        let name = entry.file_name();
        let Some(tool) = name.to_str().and_then(|n| n.strip_suffix(".lock")) else {
            continue;
        };
        if name == ".reconcile.lock" {
            continue;
        }
        candidates.push((entry.path(), tool.to_string()));
    }
    if candidates.len() > MAX_LOCKS {
        // Bounded after filtering, newest first: a live tool's lock is
        // the one it touched last.
        let mtime = |path: &Path| {
            std::fs::symlink_metadata(path)
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH)
        };
        let mut dated: Vec<_> = candidates
            .into_iter()
            .map(|(path, tool)| (mtime(&path), path, tool))
            .collect();
        dated.sort_by_key(|(mtime, _, _)| std::cmp::Reverse(*mtime));
        dated.truncate(MAX_LOCKS);
        candidates = dated
            .into_iter()
            .map(|(_, path, tool)| (path, tool))
            .collect();
    }
    let mut pids = Vec::new();
    for (path, tool) in candidates {
        let Ok(Some((bytes, mtime))) = files::read_at_most(&path, MAX_LOCK_BYTES) else {
            continue;
        };
        let Some(pid) = parse_lock_pid(&bytes) else {
            continue;
        };
        if exited(pid) || pids.iter().any(|w: &Watch| w.pid == pid) {
            continue;
        }
        let stat = match proc_stat(pid) {
            Some(stat) if !stat.exited() || threads(pid) > 1 => stat,
            _ => continue,
        };
        let recent = mtime
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age <= LOCK_RECENT);
        if recent || cmdline_names(pid, &[&tool, session_id]) {
            pids.push(Watch {
                pid,
                group_leader: stat.pgrp == pid,
            });
        }
    }
    Some(pids)
}

/// The pid of a csa lock file: a JSON object with a `pid` field.
pub fn parse_lock_pid(bytes: &[u8]) -> Option<i32> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let pid = i32::try_from(value.get("pid")?.as_u64()?).ok()?;
    (pid > 1).then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_with_spaces_and_parens_in_name() {
        let line =
            "1234 (a b) c)) S 1 777 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(
            parse_proc_stat(line),
            Some(ProcStat {
                state: 'S',
                pgrp: 777,
                starttime: Some(987654)
            })
        );
        assert_eq!(parse_proc_stat("garbage"), None);
    }

    #[test]
    fn own_process_is_alive_and_starttime_is_checked() {
        let me = std::process::id() as i32;
        let started = proc_stat(me).expect("own stat").starttime.expect("start");
        let with = |starttime| PidFile { pid: me, starttime };
        assert_eq!(process_liveness(&with(Some(started))), Liveness::Alive);
        assert_eq!(process_liveness(&with(None)), Liveness::Alive);
        assert_eq!(process_liveness(&with(Some(started + 1))), Liveness::Dead);
    }

    #[test]
    fn lock_files_name_live_pids() {
        assert_eq!(
            parse_lock_pid(br#"{"pid": 4242, "tool": "codex"}"#),
            Some(4242)
        );
        assert_eq!(parse_lock_pid(br#"{"pid": 1}"#), None);
        assert_eq!(parse_lock_pid(b"4242"), None);
        let dir = tempfile::tempdir().expect("tempdir");
        let locks = dir.path().join(LOCKS_DIR);
        std::fs::create_dir(&locks).expect("locks");
        let me = std::process::id();
        std::fs::write(locks.join("codex.lock"), format!("{{\"pid\":{me}}}")).expect("write");
        std::fs::write(locks.join("notes.txt"), format!("{{\"pid\":{me}}}")).expect("write");
        let seen = observe(dir.path(), None, &[], true);
        assert_eq!(seen.liveness, Liveness::Alive);
        assert_eq!(seen.pids(), vec![me as i32]);
        // A pid the caller saw exit is not looked up again.
        let gone = Watch {
            pid: me as i32,
            group_leader: false,
        };
        assert_eq!(
            observe(dir.path(), None, &[gone], true).liveness,
            Liveness::Unknown
        );
    }
}
