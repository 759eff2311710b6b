//! The sessions under a daemon's roots, as their files say now: a bounded
//! scan (the newest few per project, by name: csa's ULIDs sort by time)
//! for `verdict top`, run in the client, never on the daemon's loop.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use verdict_core::files::FileState;
use verdict_core::liveness;
use verdict_core::rules::{decide, Decision, Liveness, Phase};
use verdict_core::snapshot::Snapshot;

/// One session, as a row of `verdict top`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The session id (its directory's name).
    pub id: String,
    /// Its project: the path between its root and `/sessions/`.
    pub project: String,
    /// The session directory.
    pub dir: String,
    /// Something of it runs.
    pub running: bool,
    /// The pid `daemon.pid` names.
    pub pid: Option<i32>,
    /// That pid runs (as the process recorded).
    pub alive: bool,
    /// When it started (`daemon.pid`'s time), if known.
    pub started: Option<SystemTime>,
    /// When it ended (its verdict file's time), once ended.
    pub ended: Option<SystemTime>,
    /// Its status once ended (`success`, `failure`, …).
    pub status: Option<String>,
    /// Its exit code, when one was reported.
    pub exit_code: Option<i32>,
    /// `verdict wait`'s exit code for it, once ended.
    pub wait_exit: Option<i32>,
    /// No file said how it ended: the rules made the verdict up.
    pub synthetic: bool,
}

impl Row {
    /// The session failed (or was made a failure).
    pub fn failed(&self) -> bool {
        self.wait_exit.is_some_and(|code| code != 0)
    }
}

/// The newest `per_project` sessions of each project under `roots`, and
/// whether the walk was cut short (too many directories).
pub fn scan(roots: &[PathBuf], per_project: usize) -> (Vec<Row>, bool) {
    let mut rows = Vec::new();
    let mut visits = 0;
    let mut cut = false;
    for root in roots {
        let walk = verdict_core::resolve::walk(root, &mut visits);
        cut |= walk.cut;
        for sessions in walk.sessions {
            let project = sessions
                .parent()
                .and_then(|p| p.strip_prefix(root).ok())
                .map_or_else(String::new, |p| p.display().to_string());
            let mut names: Vec<String> = std::fs::read_dir(&sessions)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| !name.starts_with('.'))
                .collect();
            names.sort_unstable_by(|a, b| b.cmp(a));
            names.truncate(per_project);
            rows.extend(
                names
                    .iter()
                    .map(|name| row(&sessions.join(name), name, &project)),
            );
        }
    }
    (rows, cut)
}

/// What the files of one session say now.
pub fn row(dir: &Path, id: &str, project: &str) -> Row {
    let snap = Snapshot::read(dir);
    let seen = liveness::observe(dir, snap.pid.value(), &[], true);
    let started = mtime(&snap.pid);
    // A directory quiet for longer than the rules' grace periods is judged
    // as they would judge it by now; a younger one (a launcher still
    // writing it) is not called a failure yet.
    let quiet = std::fs::metadata(dir)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|at| SystemTime::now().duration_since(at).ok())
        .is_some_and(|age| {
            age.as_millis() > u128::from(verdict_core::rules::DEFAULT_LAUNCH_GRACE_MS)
        });
    let settled = Phase {
        cap_fired: false,
        grace_over: quiet,
        launch_over: quiet,
    };
    let mut row = Row {
        id: id.to_string(),
        project: project.to_string(),
        dir: dir.display().to_string(),
        running: seen.liveness == Liveness::Alive,
        pid: snap.pid.value().map(|p| p.pid),
        alive: seen.liveness == Liveness::Alive,
        started,
        ended: None,
        status: None,
        exit_code: None,
        wait_exit: None,
        synthetic: false,
    };
    if let Decision::Verdict(verdict) = decide(&snap, seen.liveness, settled) {
        let packet = mtime(&snap.packet).or_else(|| mtime(&snap.legacy));
        row.ended = mtime(&snap.result).or(packet).or(started);
        row.exit_code = verdict.exit_code;
        row.wait_exit = Some(verdict.exit().code());
        row.synthetic = verdict.synthetic;
        row.status = Some(verdict.status);
        row.running = false;
    }
    row
}

fn mtime<T>(state: &FileState<T>) -> Option<SystemTime> {
    match state {
        FileState::Present { mtime, .. } => *mtime,
        _ => None,
    }
}
