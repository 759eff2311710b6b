//! The macOS and FreeBSD watcher: one kqueue, one `EVFILT_VNODE` per
//! watched directory (on an open descriptor of it). A directory's vnode
//! reports entries added, removed or renamed (`NOTE_WRITE`), attribute
//! changes, and its own deletion, rename or revocation; never a write into
//! a file inside it, so a session streaming its output wakes nobody here
//! either.
//!
//! What differs from inotify: the event names no file, so the change is
//! the directory itself (the caller looks at the whole session again, as
//! it does after a Linux `IN_DELETE_SELF`), and directories that arrived
//! are found by listing the subdirectories again. A file rewritten in
//! place without a rename (csa renames its files into place) is seen at
//! the next look, not when it is closed.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::event::kqueue::{kevent, kqueue, Event, EventFilter, EventFlags, VnodeEvents};
use rustix::fs::{open, Mode, OFlags};
use rustix::io::Errno;

use super::{AddError, Change};

/// What can change a verdict (see the module docs).
fn interest() -> VnodeEvents {
    VnodeEvents::WRITE
        | VnodeEvents::DELETE
        | VnodeEvents::RENAME
        | VnodeEvents::ATTRIBUTES
        | VnodeEvents::REVOKE
}

/// One watched directory.
#[derive(Debug)]
struct Dir {
    /// Open for the vnode filter; dropping it removes the filter.
    _fd: OwnedFd,
    path: PathBuf,
    /// Its subdirectories when last listed.
    subdirs: HashSet<OsString>,
    /// Owners of this watch: each `add` is undone by one `remove`.
    owners: usize,
}

/// The kqueue and the directories it watches.
#[derive(Debug)]
pub struct Watcher {
    queue: OwnedFd,
    dirs: HashMap<RawFd, Dir>,
    by_dir: HashMap<PathBuf, RawFd>,
    /// The last drain stopped at its bound with events left.
    more: bool,
}

/// `kevent` calls per [`Watcher::drain`]: the rest is read on the
/// caller's next turn.
const MAX_READS_PER_DRAIN: usize = 16;

impl AsFd for Watcher {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.queue.as_fd()
    }
}

impl Watcher {
    /// Creates the kqueue.
    pub fn new() -> io::Result<Watcher> {
        Ok(Watcher {
            queue: kqueue()?,
            dirs: HashMap::new(),
            by_dir: HashMap::new(),
            more: false,
        })
    }

    /// The fd to register with the event loop (readable: events are queued).
    pub fn fd(&self) -> RawFd {
        self.queue.as_raw_fd()
    }

    /// Watches `dir`; armed when this returns.
    pub fn add(&mut self, dir: &Path) -> Result<(), AddError> {
        if let Some(raw) = self.by_dir.get(dir) {
            if let Some(watched) = self.dirs.get_mut(raw) {
                watched.owners += 1;
                return Ok(());
            }
        }
        let fd = open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|err| match err {
            // Out of descriptors: the caller polls this directory instead.
            Errno::MFILE | Errno::NFILE => AddError::Limit,
            err => AddError::Other(err.into()),
        })?;
        let vnode = Event::new(
            EventFilter::Vnode {
                vnode: fd.as_raw_fd(),
                flags: interest(),
            },
            EventFlags::ADD | EventFlags::CLEAR,
            std::ptr::null_mut(),
        );
        let mut none: Vec<Event> = Vec::new();
        // SAFETY: `fd` stays open in `self.dirs` for as long as the filter
        // is registered; closing it (in `remove`) removes the filter.
        unsafe { kevent(&self.queue, &[vnode], &mut none, Some(Duration::ZERO)) }
            .map_err(|err| AddError::Other(err.into()))?;
        let raw = fd.as_raw_fd();
        let subdirs = subdirs(dir);
        self.dirs.insert(
            raw,
            Dir {
                _fd: fd,
                path: dir.to_path_buf(),
                subdirs,
                owners: 1,
            },
        );
        self.by_dir.insert(dir.to_path_buf(), raw);
        Ok(())
    }

    /// Undoes one [`Watcher::add`] of `dir`; the watch goes with its last
    /// owner.
    pub fn remove(&mut self, dir: &Path) {
        let Some(&raw) = self.by_dir.get(dir) else {
            return;
        };
        if let Some(watched) = self.dirs.get_mut(&raw) {
            watched.owners -= 1;
            if watched.owners > 0 {
                return;
            }
        }
        self.forget(dir);
    }

    /// Stops watching `dir`, whatever its owners.
    fn forget(&mut self, dir: &Path) {
        if let Some(raw) = self.by_dir.remove(dir) {
            // Dropping the descriptor removes its filter from the kqueue.
            self.dirs.remove(&raw);
        }
    }

    /// Directories watched.
    pub fn watched(&self) -> usize {
        self.by_dir.len()
    }

    /// The last [`Watcher::drain`] left events queued: drain again soon.
    pub fn more(&self) -> bool {
        self.more
    }

    /// Everything queued now, as paths to look at again.
    pub fn drain(&mut self) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut events: Vec<Event> = Vec::with_capacity(256);
        self.more = false;
        for reads in 0.. {
            if reads == MAX_READS_PER_DRAIN {
                self.more = true;
                break;
            }
            events.clear();
            // SAFETY: every registered descriptor is kept open in `self.dirs`.
            match unsafe { kevent(&self.queue, &[], &mut events, Some(Duration::ZERO)) } {
                Ok(0) => break,
                Ok(_) => {}
                Err(Errno::INTR) => continue,
                Err(err) => {
                    log::warn!("reading kqueue events failed, rescanning every session: {err}");
                    changes.push(Change::Rescan);
                    break;
                }
            }
            let mut paths = Vec::new();
            let mut new_dirs = Vec::new();
            for event in &events {
                let EventFilter::Vnode { vnode, flags } = event.filter() else {
                    continue;
                };
                let Some(dir) = self.dirs.get_mut(&vnode) else {
                    continue;
                };
                paths.push(dir.path.clone());
                if flags.intersects(VnodeEvents::DELETE | VnodeEvents::RENAME | VnodeEvents::REVOKE)
                {
                    // Gone (or moved) from where it was watched: forget it.
                    let path = dir.path.clone();
                    self.forget(&path);
                    continue;
                }
                let now = subdirs(&dir.path);
                for name in now.difference(&dir.subdirs) {
                    new_dirs.push(dir.path.join(name));
                }
                dir.subdirs = now;
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

/// The names of `dir`'s subdirectories (not following symlinks).
fn subdirs(dir: &Path) -> HashSet<OsString> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
                .map(|entry| entry.file_name())
                .collect()
        })
        .unwrap_or_default()
}
