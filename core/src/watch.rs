//! File events: one inotify instance (Linux, `watch/inotify.rs`) or one
//! kqueue (macOS and FreeBSD, `watch/kqueue.rs`, which says what differs),
//! owned by the caller's event loop, with one non-recursive watch per
//! watched directory. Shared by verdictd (all its sessions) and the
//! client's degraded mode (one session), so both see the same events
//! (feature `watch`).
//!
//! The fd sits in the caller's poll (verdictd's: with the socket,
//! the pidfds and the signals): no reader thread, no channel, no waker. The watch mask is
//! ours, and it holds only what can change a verdict: entries created,
//! deleted or renamed in or out, files closed after writing, attribute
//! changes, and the directory's own deletion or move. Never `IN_MODIFY`,
//! `IN_OPEN` or `IN_CLOSE_NOWRITE`: a session streaming its output into
//! `stdout.log`, or the daemon reading a file, wakes nobody. (`notify` 8
//! was used before; its mask is fixed and includes those, which cost a
//! wake-up of its thread and of this loop per write.)
//!
//! A file is complete when it is closed after writing or renamed into
//! place, so nothing that matters is missed: `IN_CLOSE_WRITE` covers a
//! file rewritten in place, `IN_MOVED_TO` a write-then-rename.

use std::io;
use std::path::PathBuf;

#[cfg(target_os = "linux")]
#[path = "watch/inotify.rs"]
mod os;
#[cfg(any(target_os = "macos", target_os = "freebsd"))]
#[path = "watch/kqueue.rs"]
mod os;

pub use os::Watcher;

/// What the loop must look at again.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// Something happened at these paths.
    Paths(Vec<PathBuf>),
    /// Directories created or moved in (also among the paths).
    NewDirs(Vec<PathBuf>),
    /// Events were lost (queue overflow or a read error): look at everything.
    Rescan,
}

/// Why a watch could not be added.
#[derive(Debug)]
pub enum AddError {
    /// The watch limit is reached: poll this directory instead.
    Limit,
    /// Anything else (the directory vanished, permissions).
    Other(io::Error),
}

impl std::fmt::Display for AddError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddError::Limit => write!(f, "the watch limit is reached"),
            AddError::Other(err) => err.fmt(f),
        }
    }
}
