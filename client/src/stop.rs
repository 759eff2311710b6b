//! `verdict stop`: end the caller's own daemon on a socket, found by the
//! pid its lock file holds (`<socket>.lock`), after checking that the pid
//! is a `verdictd` run by the caller. Unlike `pkill verdictd`, it cannot
//! touch another user's daemon or another socket's.

use std::path::Path;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

use crate::out::{err_line, out_line};
use crate::EXIT_UNREACHABLE;

/// How long the daemon may take to finish its round and remove its socket.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// Sends SIGTERM to the daemon serving `socket` and waits for it to exit.
pub fn stop(socket: &Path) -> i32 {
    let mut lock = socket.as_os_str().to_owned();
    lock.push(".lock");
    let lock = Path::new(&lock);
    let pid = std::fs::read_to_string(lock)
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok())
        .filter(|&pid| pid > 1);
    let Some(pid) = pid else {
        out_line(&format!(
            "no verdictd is running for {} (no pid in {})",
            socket.display(),
            lock.display()
        ));
        return 0;
    };
    if let Err(why) = ours(pid) {
        err_line(&format!(
            "verdict: {} names pid {pid}, {why}; not stopping it",
            lock.display()
        ));
        return EXIT_UNREACHABLE;
    }
    let Some(target) = Pid::from_raw(pid) else {
        return EXIT_UNREACHABLE;
    };
    if let Err(err) = kill_process(target, Signal::TERM) {
        err_line(&format!(
            "verdict: cannot signal verdictd (pid {pid}): {err}"
        ));
        return EXIT_UNREACHABLE;
    }
    let deadline = Instant::now() + STOP_DEADLINE;
    let mut pause = Duration::from_millis(1);
    while ours(pid).is_ok() {
        if Instant::now() >= deadline {
            err_line(&format!(
                "verdict: verdictd (pid {pid}) is still running {}s after SIGTERM",
                STOP_DEADLINE.as_secs()
            ));
            return EXIT_UNREACHABLE;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
    out_line(&format!(
        "stopped verdictd (pid {pid}) on {}",
        socket.display()
    ));
    0
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
    if verdict_proto::liveness::proc_stat(pid).is_some_and(|s| matches!(s.state, 'Z' | 'X')) {
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
    match verdict_proto::liveness::proc_stat(pid) {
        None => Err("which is not running (a stale lock file)".into()),
        Some(stat) if matches!(stat.state, 'Z' | 'X') => Err("which has exited".into()),
        Some(_) => Ok(()),
    }
}
