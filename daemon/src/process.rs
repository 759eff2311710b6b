//! The session process: is it alive (SPEC §3, "Liveness"), and a pidfd that
//! becomes readable the moment it exits, so process exit is an event in the
//! same loop as everything else. No polling.

use std::os::fd::OwnedFd;

use rustix::process::{pidfd_open, Pid, PidfdFlags};

pub use verdict_proto::files::process_liveness as liveness;

/// A pidfd for `pid`, or `None` when the process is already gone or pidfds
/// are not available (the caller then falls back to a slow poll).
pub fn open_pidfd(pid: i32) -> Option<OwnedFd> {
    let pid = Pid::from_raw(pid)?;
    match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => Some(fd),
        Err(err) => {
            log::debug!("pidfd_open({pid:?}) failed: {err}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use verdict_proto::files::{parse_proc_stat, PidFile};
    use verdict_proto::rules::Liveness;

    #[test]
    fn own_process_is_alive_and_starttime_is_checked() {
        let me = std::process::id() as i32;
        let stat = std::fs::read_to_string("/proc/self/stat").expect("proc");
        let (_, started) = parse_proc_stat(&stat).expect("parse");
        assert_eq!(
            liveness(&PidFile {
                pid: me,
                starttime: Some(started)
            }),
            Liveness::Alive
        );
        assert_eq!(
            liveness(&PidFile {
                pid: me,
                starttime: None
            }),
            Liveness::Alive
        );
        assert_eq!(
            liveness(&PidFile {
                pid: me,
                starttime: Some(started + 1)
            }),
            Liveness::Dead
        );
        assert!(open_pidfd(me).is_some());
    }
}
