//! The I/O half of a look at a session, shared by every driver of a
//! [`super::Tracker`]: which directory is there now, its files (the ones
//! the tracker's [`Plan`] names, unchanged ones from the cache) and its
//! processes.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{Names, Plan, Subdirs};
use crate::files::FileState;
use crate::liveness::{self, Observed, Watch};
use crate::snapshot::{Snapshot, SnapshotCache};

/// (device, inode) of `dir`, if it is a directory.
pub fn dir_inode(dir: &Path) -> Option<(u64, u64)> {
    dir_meta(dir).map(|(inode, _)| inode)
}

/// A directory's modification and change times: they move whenever an
/// entry is added, removed or renamed.
type DirStamp = [(i64, i64); 2];

fn dir_meta(dir: &Path) -> Option<((u64, u64), DirStamp)> {
    std::fs::metadata(dir).ok().filter(|m| m.is_dir()).map(|m| {
        (
            (m.dev(), m.ino()),
            [(m.mtime(), m.mtime_nsec()), (m.ctime(), m.ctime_nsec())],
        )
    })
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
    /// The directory's stamp at the last [`Probe::identity`].
    seen: Option<DirStamp>,
    /// The directory's stamp when the files were last read.
    read: Option<DirStamp>,
}

impl Probe {
    /// A probe of `dir`, remembering which directory is there now.
    pub fn new(dir: PathBuf) -> Probe {
        Probe {
            inode: dir_inode(&dir),
            dir,
            cache: SnapshotCache::default(),
            seen: None,
            read: None,
        }
    }

    /// The session directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Which directory is there now (one `stat`).
    pub fn identity(&mut self) -> Identity {
        let Some((inode, stamp)) = dir_meta(&self.dir) else {
            self.seen = None;
            return Identity::Gone;
        };
        self.seen = Some(stamp);
        if Some(inode) == self.inode {
            return Identity::Same;
        }
        self.inode = Some(inode);
        self.cache = SnapshotCache::default();
        Identity::Replaced
    }

    /// The files `plan` names (all of them when it is full), and what
    /// runs; `exited` are followed processes known to have ended (their
    /// `/proc` entries are not read). Call [`Probe::identity`] first: a
    /// directory whose stamp moved while nothing was named gets a full
    /// look.
    pub fn read(&mut self, plan: &Plan, exited: &[Watch]) -> (Snapshot, Observed, Subdirs) {
        let plan = if !plan.full && !plan.named && self.seen != self.read {
            &Plan::FULL
        } else {
            plan
        };
        self.read = self.seen;
        let snap = Snapshot::read_planned(&self.dir, &mut self.cache, plan);
        let seen = liveness::observe(&self.dir, snap.pid.value(), exited, plan.locks);
        let output = (plan.full || plan.output)
            && (!matches!(snap.output_result, FileState::Absent)
                || std::fs::symlink_metadata(self.dir.join(super::scope::OUTPUT_DIR)).is_ok());
        let subdirs = Subdirs {
            output,
            locks: seen.locks,
        };
        (snap, seen, subdirs)
    }

    /// Reads the files `names` now, into the last reading (see
    /// [`super::Tracker::read_ahead`]).
    pub fn read_ahead(&mut self, names: Names) {
        Snapshot::read_ahead(&self.dir, &mut self.cache, names);
    }
}
