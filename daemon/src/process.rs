//! The session's processes: a pidfd that becomes readable the moment one
//! exits, so process exit is an event in the same loop as everything else.
//! Whether a process counts as the session's is
//! [`verdict_proto::liveness`]'s question. No polling.

use std::os::fd::OwnedFd;

use rustix::process::{pidfd_open, Pid, PidfdFlags};

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

    #[test]
    fn a_live_process_has_a_pidfd() {
        assert!(open_pidfd(std::process::id() as i32).is_some());
        assert!(open_pidfd(0).is_none());
    }
}
