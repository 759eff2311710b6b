//! The caller's own daemon: where its socket is, and stopping it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

/// The socket `explicit` names, else the default one (see
/// [`crate::Options::socket`]).
pub fn socket_path(explicit: Option<PathBuf>) -> PathBuf {
    verdict_core::paths::socket_path(explicit, rustix::process::getuid().as_raw())
}

pub use verdict_core::paths::lock_path;

/// Whether process `pid` exists (for a progress line; not a liveness
/// verdict).
pub fn process_runs(pid: i32) -> bool {
    verdict_core::liveness::proc_stat(pid).is_some()
}

/// Why the daemon was not stopped.
#[derive(Debug, thiserror::Error)]
pub enum StopError {
    /// The lock file names a process that is not our verdictd.
    #[error("{} names pid {pid}, {why}; not stopping it", lock.display())]
    NotOurs {
        /// The lock file.
        lock: PathBuf,
        /// The pid it names.
        pid: i32,
        /// What that pid is instead.
        why: String,
    },
    /// `kill` failed.
    #[error("cannot signal verdictd (pid {pid}): {source}")]
    Signal {
        /// The daemon's pid.
        pid: i32,
        /// What `kill` said.
        source: rustix::io::Errno,
    },
    /// The daemon did not exit in time.
    #[error("verdictd (pid {pid}) is still running {}s after SIGTERM", after.as_secs())]
    StillRunning {
        /// The daemon's pid.
        pid: i32,
        /// How long it was given.
        after: Duration,
    },
}

/// Ends the caller's own daemon on `socket`, found by the pid its lock
/// file holds (`<socket>.lock`), after checking that the pid is a
/// `verdictd` run by the caller; waits up to `deadline` for it to exit.
/// `Ok(None)` when no daemon runs there; `Ok(Some(pid))` once it has gone.
pub fn stop(socket: &Path, deadline: Duration) -> Result<Option<i32>, StopError> {
    let lock = verdict_core::paths::lock_path(socket);
    let pid = std::fs::read_to_string(&lock)
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok())
        .filter(|&pid| pid > 1);
    let Some(pid) = pid else {
        return Ok(None);
    };
    let not_ours = |why| StopError::NotOurs {
        lock: lock.clone(),
        pid,
        why,
    };
    ours(pid).map_err(not_ours)?;
    let target = Pid::from_raw(pid).ok_or_else(|| not_ours("which is no pid".into()))?;
    // Before the signal: a client that starts a daemon again the moment
    // this one is gone must find the note (the next daemon removes it).
    let stopped = verdict_core::paths::stopped_path(socket);
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let _ = std::fs::write(&stopped, format!("{secs} {}\n", std::process::id()));
    if let Err(source) = kill_process(target, Signal::TERM) {
        let _ = std::fs::remove_file(&stopped);
        return Err(StopError::Signal { pid, source });
    }
    let until = Instant::now() + deadline;
    let mut pause = Duration::from_millis(1);
    while ours(pid).is_ok() {
        if Instant::now() >= until {
            return Err(StopError::StillRunning {
                pid,
                after: deadline,
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
    Ok(Some(pid))
}

/// When `verdict stop` stopped the daemon on `socket` (and no daemon has
/// started there since): seconds ago.
pub fn stopped_ago(socket: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(verdict_core::paths::stopped_path(socket)).ok()?;
    let at: u64 = text.split_whitespace().next()?.parse().ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(now.saturating_sub(at))
}

/// Whether `pid` runs one of verdict's own client programs (`verdict`,
/// `verdict-mcp`, or `csa` as a link to verdict): the only clients `verdict
/// stop --and-clients` stops. Linux only (elsewhere: never).
pub fn is_verdict_client(pid: i32) -> bool {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let name = exe
        .as_deref()
        .and_then(|exe| exe.file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    matches!(name.as_str(), "verdict" | "verdict-mcp")
}

/// The pid is a `verdictd` owned by us, or why not.
#[cfg(target_os = "linux")]
fn ours(pid: i32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(format!("/proc/{pid}"))
        .map_err(|_| "which is not running (a stale lock file)".to_string())?;
    if meta.uid() != rustix::process::getuid().as_raw() {
        return Err(format!("which belongs to uid {}", meta.uid()));
    }
    // An exited daemon that its parent has not reaped yet is gone.
    if verdict_core::liveness::proc_stat(pid).is_some_and(|s| matches!(s.state, 'Z' | 'X')) {
        return Err("which has exited".into());
    }
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() != "verdictd" {
        return Err(format!("which is {:?}, not verdictd", comm.trim()));
    }
    Ok(())
}

/// The pid runs and has not exited (elsewhere than Linux the owner and the
/// name are not read: `kill` itself refuses another user's process).
#[cfg(not(target_os = "linux"))]
fn ours(pid: i32) -> Result<(), String> {
    match verdict_core::liveness::proc_stat(pid) {
        None => Err("which is not running (a stale lock file)".into()),
        Some(stat) if matches!(stat.state, 'Z' | 'X') => Err("which has exited".into()),
        Some(_) => Ok(()),
    }
}
