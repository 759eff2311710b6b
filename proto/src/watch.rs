//! File events: one inotify instance, owned by the caller's event loop,
//! with one non-recursive watch per watched directory. Shared by verdictd
//! (all its sessions) and the client's degraded mode (one session), so
//! both see the same events (feature `watch`).
//!
//! The inotify fd sits in the caller's poll (verdictd's: with the socket,
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

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

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
            AddError::Limit => write!(f, "the inotify watch limit is reached"),
            AddError::Other(err) => err.fmt(f),
        }
    }
}

/// The events that can change a verdict (see the module docs).
fn mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::CLOSE_WRITE
        | WatchMask::ATTRIB
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::ONLYDIR
        | WatchMask::EXCL_UNLINK
}

impl std::os::fd::AsFd for Watcher {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inotify.as_fd()
    }
}

/// The inotify instance and which directory each watch is for.
#[derive(Debug)]
pub struct Watcher {
    inotify: Inotify,
    dirs: HashMap<WatchDescriptor, PathBuf>,
    by_dir: HashMap<PathBuf, WatchDescriptor>,
    buffer: Vec<u8>,
}

impl Watcher {
    /// Creates the inotify instance (non-blocking, close-on-exec).
    pub fn new() -> io::Result<Watcher> {
        Ok(Watcher {
            inotify: Inotify::init()?,
            dirs: HashMap::new(),
            by_dir: HashMap::new(),
            // Room for many events per read; the kernel never splits one.
            buffer: vec![0; 64 * 1024],
        })
    }

    /// The fd to register with the event loop (readable: events are queued).
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.inotify.as_raw_fd()
    }

    /// Adds a non-recursive watch on `dir`; it is armed when this returns.
    pub fn add(&mut self, dir: &Path) -> Result<(), AddError> {
        let wd = self.inotify.watches().add(dir, mask()).map_err(|err| {
            // ENOSPC is inotify's answer when max_user_watches is reached.
            if err.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) {
                AddError::Limit
            } else {
                AddError::Other(err)
            }
        })?;
        // Adding a watch on an inode already watched returns the same wd.
        self.dirs.insert(wd.clone(), dir.to_path_buf());
        self.by_dir.insert(dir.to_path_buf(), wd);
        Ok(())
    }

    /// Removes the watch on `dir` (a directory that vanished has none left).
    pub fn remove(&mut self, dir: &Path) {
        if let Some(wd) = self.by_dir.remove(dir) {
            if self.dirs.get(&wd).is_some_and(|d| d == dir) {
                self.dirs.remove(&wd);
            }
            if let Err(err) = self.inotify.watches().remove(wd) {
                log::debug!("unwatch {}: {err}", dir.display());
            }
        }
    }

    /// Everything queued now, as paths to look at again.
    pub fn drain(&mut self) -> Vec<Change> {
        let mut changes = Vec::new();
        loop {
            let events = match self.inotify.read_events(&mut self.buffer) {
                Ok(events) => events,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    log::warn!("reading inotify events failed, rescanning every session: {err}");
                    changes.push(Change::Rescan);
                    break;
                }
            };
            let mut paths = Vec::new();
            let mut new_dirs = Vec::new();
            let mut forgotten = Vec::new();
            for event in events {
                if event.mask.contains(EventMask::Q_OVERFLOW) {
                    changes.push(Change::Rescan);
                    continue;
                }
                let Some(dir) = self.dirs.get(&event.wd) else {
                    continue;
                };
                if event.mask.contains(EventMask::IGNORED) {
                    // The kernel dropped the watch (directory deleted).
                    forgotten.push(event.wd.clone());
                }
                let path = match event.name {
                    Some(name) => dir.join(name as &OsStr),
                    None => dir.clone(),
                };
                let arrived = EventMask::CREATE | EventMask::MOVED_TO;
                if event.mask.contains(EventMask::ISDIR) && event.mask.intersects(arrived) {
                    new_dirs.push(path.clone());
                }
                paths.push(path);
            }
            for wd in forgotten {
                if let Some(dir) = self.dirs.remove(&wd) {
                    if self.by_dir.get(&dir) == Some(&wd) {
                        self.by_dir.remove(&dir);
                    }
                }
            }
            if !paths.is_empty() {
                changes.push(Change::Paths(paths));
            }
            if !new_dirs.is_empty() {
                changes.push(Change::NewDirs(new_dirs));
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(changes: Vec<Change>) -> Vec<PathBuf> {
        changes
            .into_iter()
            .flat_map(|c| match c {
                Change::Paths(p) => p,
                Change::NewDirs(_) => Vec::new(),
                Change::Rescan => vec![PathBuf::from("RESCAN")],
            })
            .collect()
    }

    #[test]
    fn writes_in_progress_and_reads_make_no_events_but_closes_and_renames_do() {
        use std::io::Write;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut watcher = Watcher::new().expect("inotify");
        watcher.add(dir.path()).expect("watch");
        let log = dir.path().join("stdout.log");
        let mut file = std::fs::File::create(&log).expect("create");
        let _ = watcher.drain(); // IN_CREATE
        for _ in 0..100 {
            file.write_all(b"streaming output\n").expect("write");
        }
        let _ = std::fs::read(&log).expect("read");
        assert_eq!(
            paths(watcher.drain()),
            Vec::<PathBuf>::new(),
            "writes and reads are silent"
        );
        drop(file);
        assert_eq!(
            paths(watcher.drain()),
            vec![log.clone()],
            "close after writing"
        );
        std::fs::write(dir.path().join(".tmp"), "x").expect("write");
        std::fs::rename(dir.path().join(".tmp"), dir.path().join("result.toml")).expect("rename");
        let seen = paths(watcher.drain());
        assert!(seen.contains(&dir.path().join("result.toml")), "{seen:?}");
        watcher.remove(dir.path());
        std::fs::write(dir.path().join("after"), "x").expect("write");
        assert!(watcher.drain().is_empty());
    }
}
