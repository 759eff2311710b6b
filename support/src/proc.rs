//! Readers of `/proc`, signals and limits.

use std::path::Path;

/// Sends `sig` to `pid`, ignoring a process that is already gone.
pub fn signal(pid: i32, sig: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// Field 22 of `/proc/<pid>/stat`.
pub fn starttime(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    let rest = &stat[stat.rfind(')').expect("comm") + 1..];
    rest.split_whitespace()
        .nth(19)
        .and_then(|field| field.parse().ok())
        .expect("starttime field")
}

/// Resident memory of `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// Open file descriptors of `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc fd")
        .count()
}

/// The kernel's bound on queued inotify events per instance (16,384 if
/// it cannot be read): flooding past it makes the queue overflow.
pub fn inotify_max_queued_events() -> usize {
    std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(16384)
}

/// inotify watches held by `pid`, summed over its inotify instances.
pub fn inotify_watches(pid: u32) -> usize {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .map(|info| {
            info.lines()
                .filter(|line| line.starts_with("inotify wd:"))
                .count()
        })
        .sum()
}

/// `pid` holds an inotify watch on the inode of `path` (as the kernel
/// shows it in `/proc/<pid>/fdinfo`).
pub fn watches_inode(pid: u32, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    let want = format!(" ino:{:x} ", meta.ino());
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return false;
    };
    entries
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .any(|info| {
            info.lines()
                .any(|line| line.starts_with("inotify wd:") && line.contains(&want))
        })
}

/// Raises this process's open-files limit as far as allowed: the hard
/// limit itself to 131,072 where that is permitted (CAP_SYS_RESOURCE),
/// then the soft limit to the hard one. Returns the limit in force.
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    const WANTED: u64 = 1 << 17;
    let mut limit = getrlimit(Resource::Nofile);
    if limit.maximum.is_some_and(|max| max < WANTED) {
        let raised = Rlimit {
            current: Some(WANTED),
            maximum: Some(WANTED),
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            limit = getrlimit(Resource::Nofile);
        }
    }
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Processes (not zombies) whose command line names `verdictd` and `needle`.
pub fn daemons_serving(needle: &Path) -> Vec<u32> {
    processes_of("verdictd", needle)
}

/// Processes (not zombies: their command line is empty) whose program
/// name ends with `program` and whose command line names `needle`.
pub fn processes_of(program: &str, needle: &Path) -> Vec<u32> {
    let needle = needle.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let first = cmdline.split(' ').next().unwrap_or("");
            first.ends_with(program) && cmdline.contains(&needle)
        })
        .collect()
}

/// Context switches of every thread of `pid` so far (0 when it is gone).
pub fn ctx_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter(|line| line.contains("ctxt_switches"))
                .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// Processes the harness started, with their start times: checked when
/// the test binary exits.
static STARTED: std::sync::Mutex<Vec<(i32, u64)>> = std::sync::Mutex::new(Vec::new());

/// Records a process the harness started. When the test binary exits,
/// every such process must be gone: one left running (a stand-in session,
/// a daemon) fails the run, naming it.
pub fn started(pid: i32) {
    static CHECK: std::sync::Once = std::sync::Once::new();
    CHECK.call_once(|| {
        // SAFETY: registers a plain `extern "C"` function with no arguments.
        unsafe {
            libc::atexit(check_nothing_left);
        }
    });
    let Some(start) = try_starttime(pid) else {
        return;
    };
    if let Ok(mut started) = STARTED.lock() {
        started.push((pid, start));
    }
}

/// Runs at exit: the processes the harness started that still run (the
/// same pid with the same start time, and not a zombie).
extern "C" fn check_nothing_left() {
    let Ok(started) = STARTED.lock() else {
        return;
    };
    let left: Vec<String> = started
        .iter()
        .filter(|(pid, start)| running_since(*pid, *start))
        .map(|(pid, _)| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            format!("{pid} ({})", cmdline.trim())
        })
        .collect();
    if !left.is_empty() {
        eprintln!(
            "verdict-support: the tests left {} process(es) they started running: {}",
            left.len(),
            left.join(", ")
        );
        // Not left behind either (one holding the runner's pipes would
        // keep it waiting): killed, then the run fails.
        for (pid, start) in started.iter() {
            if running_since(*pid, *start) {
                signal(*pid, rustix::process::Signal::KILL);
            }
        }
        // SAFETY: ends the process at once with a failing status.
        unsafe { libc::_exit(101) };
    }
}

/// `pid` runs, started at `start` (not a reused pid), and is not a zombie.
pub fn running_since(pid: i32, start: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(rest) = stat.rfind(')').map(|at| &stat[at + 1..]) else {
        return false;
    };
    let mut fields = rest.split_whitespace();
    let state = fields.next().unwrap_or("X");
    let starttime = fields.nth(18).and_then(|f| f.parse::<u64>().ok());
    !matches!(state, "Z" | "X" | "x") && starttime == Some(start)
}

/// Field 22 of `/proc/<pid>/stat`, if `pid` runs.
pub fn try_starttime(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}
