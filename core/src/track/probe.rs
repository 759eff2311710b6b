//! The I/O half of a look at a session, shared by every driver of a
//! [`super::Tracker`]: which directory is there now, its files (unchanged
//! ones from the cache) and its processes.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::liveness::{self, Observed, Watch};
use crate::snapshot::{Snapshot, SnapshotCache};

/// (device, inode) of `dir`, if it is a directory.
pub fn dir_inode(dir: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(dir)
        .ok()
        .filter(|m| m.is_dir())
        .map(|m| (m.dev(), m.ino()))
}

/// Which directory is at the session's path now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// None.
    Gone,
    /// The one seen before.
    Same,
    /// Another directory of the same name: a watch on the old one follows
    /// the old inode, so the driver must watch the path again. What the
    /// old directory's files said is forgotten.
    Replaced,
}

/// Looks at one session directory.
#[derive(Debug)]
pub struct Probe {
    dir: PathBuf,
    inode: Option<(u64, u64)>,
    cache: SnapshotCache,
}

impl Probe {
    /// A probe of `dir`, remembering which directory is there now.
    pub fn new(dir: PathBuf) -> Probe {
        Probe {
            inode: dir_inode(&dir),
            dir,
            cache: SnapshotCache::default(),
        }
    }

    /// The session directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Which directory is there now (one `stat`).
    pub fn identity(&mut self) -> Identity {
        match dir_inode(&self.dir) {
            None => Identity::Gone,
            Some(inode) if Some(inode) == self.inode => Identity::Same,
            Some(inode) => {
                self.inode = Some(inode);
                self.cache = SnapshotCache::default();
                Identity::Replaced
            }
        }
    }

    /// The files, and what runs; `exited` are followed processes known to
    /// have ended (their `/proc` entries are not read).
    pub fn read(&mut self, exited: &[Watch]) -> (Snapshot, Observed) {
        let snap = Snapshot::read_cached(&self.dir, &mut self.cache);
        let seen = liveness::observe(&self.dir, snap.pid.value(), exited);
        (snap, seen)
    }
}
