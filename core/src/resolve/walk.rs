//! Walking the roots for `sessions/` directories, and the index of them.

use std::path::{Path, PathBuf};

use super::{Root, MAX_DEPTH, MAX_VISITS};

/// Every `sessions/` directory under the roots, in root order.
#[derive(Debug, Default)]
pub struct Index {
    sessions_dirs: Option<Vec<PathBuf>>,
    /// The last walk stopped at [`MAX_VISITS`].
    cut: bool,
}

impl Index {
    /// Forgets what was found; the next lookup walks the roots again.
    pub fn clear(&mut self) {
        self.sessions_dirs = None;
    }

    /// The last walk of the roots stopped at [`MAX_VISITS`] directories:
    /// ids under the rest are not found.
    pub fn truncated(&self) -> bool {
        self.cut
    }

    pub(super) fn dirs(&mut self, roots: &[Root]) -> &[PathBuf] {
        if self.sessions_dirs.is_none() {
            let (found, cut) = build_index(roots);
            self.cut = cut;
            self.sessions_dirs = Some(found);
        }
        self.sessions_dirs.as_deref().unwrap_or_default()
    }
}

fn build_index(roots: &[Root]) -> (Vec<PathBuf>, bool) {
    let mut found = Vec::new();
    let mut visits = 0;
    for root in roots {
        let walk = walk(&root.path, &mut visits);
        found.extend(walk.sessions);
        if walk.cut {
            return (found, true);
        }
    }
    (found, false)
}

/// What a walk below a directory found.
#[derive(Debug, Default)]
pub struct Walk {
    /// `sessions/` directories.
    pub sessions: Vec<PathBuf>,
    /// The walk stopped at [`MAX_VISITS`].
    pub cut: bool,
}

/// Walks the directories below `start` (real directories only, not into
/// `sessions/`) for `sessions/` directories, counting `visits` against
/// [`MAX_VISITS`].
pub fn walk(start: &Path, visits: &mut usize) -> Walk {
    let mut found = Walk::default();
    let mut stack = vec![(start.to_path_buf(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        *visits += 1;
        if *visits > MAX_VISITS {
            found.cut = true;
            return found;
        }
        let sessions = dir.join("sessions");
        if sessions.is_dir() {
            found.sessions.push(sessions);
        }
        if depth >= MAX_DEPTH {
            continue;
        }
        stack.extend(project_dirs(&dir).map(|sub| (sub, depth + 1)));
    }
    found
}

/// The subdirectories of `dir` that may hold projects: real directories
/// only (a symlink could loop or leave the root), and not `sessions/`
/// (sessions are not searched for projects; a project nested in another
/// project's path is).
pub fn project_dirs(dir: &Path) -> impl Iterator<Item = PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            entry.file_type().is_ok_and(|t| t.is_dir()) && entry.file_name() != "sessions"
        })
        .map(|entry| entry.path())
}
