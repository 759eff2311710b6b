//! Processes on Linux: `/proc` for state, group, start time and command
//! line; a pidfd for the exit.

use super::{parse_proc_stat, ProcStat, Watch};

/// `/proc/<pid>/stat`, or `None` when there is no such process.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    parse_proc_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Threads in `pid`'s thread group (`Threads:` in `/proc/<pid>/status`).
pub fn threads(pid: i32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Live members of process group `leader` other than the leader itself.
/// Scans `/proc` once; only called when the leader is a zombie.
pub fn group_members(leader: i32) -> Vec<Watch> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != leader)
        .filter(|&pid| proc_stat(pid).is_some_and(|s| s.pgrp == leader && !s.exited()))
        .map(|pid| Watch {
            pid,
            group_leader: false,
        })
        .collect()
}

/// Whether `pid`'s command line contains one of `words`.
pub fn cmdline_names(pid: i32, words: &[&str]) -> bool {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let cmdline = String::from_utf8_lossy(&raw);
    words
        .iter()
        .any(|word| !word.is_empty() && cmdline.contains(word))
}

/// A pidfd for `pid`: readable the moment the process exits. `None` when
/// it is already gone or pidfds are not available (the caller then looks
/// at the process now and then instead). Opened *after* liveness was read,
/// a process that died in between gives a pidfd readable at once, so the
/// exit is not missed. Used by verdictd and by the client's degraded mode.
pub fn open_pidfd(pid: i32) -> Option<std::os::fd::OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid)?;
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
}

#[cfg(test)]
mod tests {
    use super::open_pidfd;

    #[test]
    fn a_live_process_has_a_pidfd_and_pid_0_none() {
        assert!(open_pidfd(std::process::id() as i32).is_some());
        assert!(open_pidfd(0).is_none());
    }
}
