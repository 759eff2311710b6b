//! Processes on macOS and FreeBSD: the kernel's process table
//! (`proc_pidinfo` on macOS, `sysctl(KERN_PROC_PID)` on FreeBSD) for the
//! state and the process group, `kill(pid, 0)` where that table is closed
//! to us, and a kqueue holding one `EVFILT_PROC`/`NOTE_EXIT` for the exit:
//! readable the moment the process exits, like a Linux pidfd.
//!
//! What Linux has and these do not use: the start time is not compared
//! (csa writes a bare pid on these systems, and their clocks differ from
//! Linux's ticks), a zombie leader's other threads are not counted, a
//! zombie leader's process group is not scanned, and a lock file's
//! process counts only while the lock is recent (no command lines read).

use std::os::fd::OwnedFd;

use rustix::event::kqueue::{kevent, kqueue, Event, EventFilter, EventFlags, ProcessEvents};
use rustix::process::Pid;

use super::{ProcStat, Watch};

/// The process's state and group, or `None` when there is no such process.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    if let Some(stat) = table_entry(pid) {
        return Some(stat);
    }
    // Another user's process may be closed to us: it exists if it can be signalled.
    let exists = match rustix::process::test_kill_process(Pid::from_raw(pid)?) {
        Ok(()) => true,
        Err(err) => err == rustix::io::Errno::PERM,
    };
    let pgrp =
        rustix::process::getpgid(Pid::from_raw(pid)).map_or(0, |pgrp| pgrp.as_raw_nonzero().get());
    exists.then_some(ProcStat {
        state: 'S',
        pgrp,
        starttime: None,
    })
}

#[cfg(target_os = "macos")]
fn table_entry(pid: i32) -> Option<ProcStat> {
    /// `SZOMB` in `<sys/proc.h>`.
    const SZOMB: u32 = 5;
    let mut info = std::mem::MaybeUninit::<libc::proc_bsdinfo>::zeroed();
    let size = std::mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
    // SAFETY: `info` is a writable buffer of exactly `size` bytes, and
    // proc_pidinfo writes at most that many.
    let written = unsafe {
        libc::proc_pidinfo(
            pid,
            libc::PROC_PIDTBSDINFO,
            0,
            info.as_mut_ptr().cast(),
            size,
        )
    };
    if written != size {
        return None;
    }
    // SAFETY: proc_pidinfo filled the whole struct (checked above).
    let info = unsafe { info.assume_init() };
    Some(ProcStat {
        state: if info.pbi_status == SZOMB { 'Z' } else { 'S' },
        pgrp: info.pbi_pgid as i32,
        starttime: None,
    })
}

#[cfg(target_os = "freebsd")]
fn table_entry(pid: i32) -> Option<ProcStat> {
    /// `SZOMB` in `<sys/proc.h>`.
    const SZOMB: libc::c_char = 5;
    let mib = [libc::CTL_KERN, libc::KERN_PROC, libc::KERN_PROC_PID, pid];
    let mut info = std::mem::MaybeUninit::<libc::kinfo_proc>::zeroed();
    let mut size = std::mem::size_of::<libc::kinfo_proc>();
    // SAFETY: `mib` names a valid node, `info` is a writable buffer of
    // `size` bytes and sysctl writes at most `size` bytes, reporting how many.
    let result = unsafe {
        libc::sysctl(
            mib.as_ptr(),
            mib.len() as libc::c_uint,
            info.as_mut_ptr().cast(),
            &mut size,
            std::ptr::null(),
            0,
        )
    };
    if result != 0 || size != std::mem::size_of::<libc::kinfo_proc>() {
        return None;
    }
    // SAFETY: sysctl filled the whole struct (checked above).
    let info = unsafe { info.assume_init() };
    Some(ProcStat {
        state: if info.ki_stat == SZOMB { 'Z' } else { 'S' },
        pgrp: info.ki_pgid,
        starttime: None,
    })
}

/// Threads are not counted here (see the module docs).
pub fn threads(_pid: i32) -> usize {
    0
}

/// A zombie leader's group is not scanned here (see the module docs).
pub fn group_members(_leader: i32) -> Vec<Watch> {
    Vec::new()
}

/// Command lines are not read here (see the module docs).
pub fn cmdline_names(_pid: i32, _words: &[&str]) -> bool {
    false
}

/// A kqueue that becomes readable when `pid` exits (`EVFILT_PROC`,
/// `NOTE_EXIT`): the pidfd of these systems. `None` when the process is
/// already gone (the next look sees it dead) or kqueue fails.
pub fn open_pidfd(pid: i32) -> Option<OwnedFd> {
    let pid = Pid::from_raw(pid)?;
    let queue = kqueue().ok()?;
    let exit = Event::new(
        EventFilter::Proc {
            pid,
            flags: ProcessEvents::EXIT,
        },
        EventFlags::ADD | EventFlags::ONESHOT,
        std::ptr::null_mut(),
    );
    let mut none: Vec<Event> = Vec::new();
    // SAFETY: the change list names a process, not a file descriptor, so
    // no descriptor has to outlive the queue.
    unsafe { kevent(&queue, &[exit], &mut none, Some(std::time::Duration::ZERO)) }.ok()?;
    Some(queue)
}
