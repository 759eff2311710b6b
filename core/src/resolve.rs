//! Turning the `session` of a wait request into a canonical directory
//! (PROTOCOL.md, "Requests"), the way csa's `session wait` finds one:
//!
//! 1. an absolute path is that directory;
//! 2. an id, or a unique prefix of one (case-insensitive), is looked up in
//!    the caller's project first: `<root>/<cwd without its leading />/sessions/`
//!    for each root in order (csa's own root, then its legacy one);
//! 3. then in every `sessions/` directory under every root, and as
//!    `<root>/<ID>` (an exact name only, for hand-made roots).
//!
//! The `sessions/` directories under the roots are kept in an [`Index`],
//! built on the first lookup. [`resolve`] rebuilds it when an id is not
//! found; the daemon resolves paths on its loop ([`resolve_path`], which
//! never walks) and ids on a thread of their own ([`resolve_indexed`],
//! rebuilding at a rate it chooses), so no request walks a large state
//! directory on the loop.
//! A session directory holding csa's `resume-target.toml` stands for the
//! session it names: the wait follows it there.
//!
//! Canonicalising means a symlinked session directory is watched and read
//! at its real location, and two spellings of one directory share a watch.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use verdict_proto::wire::ErrorCode;

/// A directory under which session ids are looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// Absolute path of the root.
    pub path: PathBuf,
    /// Watch sessions under it by slow poll (network filesystems).
    pub poll: bool,
}

/// A session directory to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Canonical absolute path.
    pub dir: PathBuf,
    /// Under a `poll = true` root: watch by slow poll.
    pub poll: bool,
}

/// Why a session could not be resolved; each says what was searched or
/// matched, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// An absolute path where nothing is.
    #[error("{0} is not a session directory (no such directory)")]
    NoDirectory(String),
    /// An absolute path to something that is not a directory.
    #[error("{path} is {kind}, not a session directory: give the directory that holds the session's daemon.pid, stdout.log and result.toml or daemon-completion.toml{hint}")]
    NotADirectory {
        /// The path given.
        path: String,
        /// What it is: `a file`, `a FIFO`, ….
        kind: &'static str,
        /// `(its parent, …)` when it is named like a session file.
        hint: String,
    },
    /// Neither an id nor an absolute path.
    #[error(
        "session {0:?} is neither an id nor an absolute path; clients must send absolute paths"
    )]
    RelativePath(String),
    /// No session has this id (or prefix) under the roots.
    #[error("no session {id} under the roots [{roots}]; pass the session's path, or add its root to verdictd's config (a [[root]] table in $XDG_CONFIG_HOME/verdict/verdictd.toml)")]
    UnknownId {
        /// The id or prefix asked for.
        id: String,
        /// The roots searched, comma-separated.
        roots: String,
    },
    /// A prefix that matches several sessions.
    #[error("session {id} is ambiguous, it matches {} sessions: {}; give more of the id, or the path", .candidates.len(), .candidates.join(", "))]
    Ambiguous {
        /// The prefix asked for.
        id: String,
        /// The directories it matches, sorted.
        candidates: Vec<String>,
    },
    /// A `resume-target.toml` names a session that cannot be found.
    #[error("{file} redirects to session {target}, which cannot be found: {cause}")]
    BrokenRedirect {
        /// The redirect file.
        file: String,
        /// The session it names.
        target: String,
        /// Why that one is not found.
        cause: Box<LookupError>,
    },
}

impl LookupError {
    /// No session has the id: perhaps only because the index is older
    /// than the session (through a redirect too).
    pub fn is_unknown_id(&self) -> bool {
        match self {
            LookupError::UnknownId { .. } => true,
            LookupError::BrokenRedirect { cause, .. } => cause.is_unknown_id(),
            _ => false,
        }
    }

    /// The protocol's code for it.
    pub fn code(&self) -> ErrorCode {
        match self {
            LookupError::RelativePath(_) => ErrorCode::BadRequest,
            LookupError::BrokenRedirect { cause, .. } => cause.code(),
            LookupError::NoDirectory(_)
            | LookupError::NotADirectory { .. }
            | LookupError::UnknownId { .. }
            | LookupError::Ambiguous { .. } => ErrorCode::UnknownSession,
        }
    }
}

/// Depth below a root at which `sessions/` directories are still looked
/// for: csa nests them under the project's full path.
pub const MAX_DEPTH: usize = 24;
/// Directories visited while building the index, at most: a runaway tree
/// under a root must not stall the daemon.
pub const MAX_VISITS: usize = 200_000;
/// `resume-target.toml` redirections followed, at most (a loop ends here).
const MAX_REDIRECTS: usize = 4;
/// csa's alias file: this session continues in another.
pub const RESUME_TARGET_FILE: &str = "resume-target.toml";

/// Resolves `session` for a caller working in `cwd`; an id not in the
/// index makes it walk the roots again (degraded mode, which has no loop
/// to keep free). The daemon uses [`resolve_path`] on its loop and
/// [`resolve_indexed`] off it.
pub fn resolve(
    session: &str,
    cwd: Option<&str>,
    roots: &[Root],
    index: &mut Index,
) -> Result<Resolved, LookupError> {
    resolve_ids(session, cwd, roots, index, Rebuild::OnMiss)
}

/// [`resolve`] with the index as it is (built if it never was): an id
/// that is not in it is [`LookupError::UnknownId`], which may only mean
/// that the index is older than its session. The caller decides when a
/// rebuild is worth it ([`Index::clear`]).
pub fn resolve_indexed(
    session: &str,
    cwd: Option<&str>,
    roots: &[Root],
    index: &mut Index,
) -> Result<Resolved, LookupError> {
    resolve_ids(session, cwd, roots, index, Rebuild::Never)
}

fn resolve_ids(
    session: &str,
    cwd: Option<&str>,
    roots: &[Root],
    index: &mut Index,
    rebuild: Rebuild,
) -> Result<Resolved, LookupError> {
    let mut lookup = |id: &str| Some(lookup_id(id, cwd, roots, index, rebuild));
    // The lookup always answers, so `resolve_with` does too.
    resolve_with(session, roots, &mut lookup)
        .unwrap_or_else(|| Err(LookupError::RelativePath(session.to_string())))
}

/// The part of [`resolve`] that never walks a tree nor lists a directory
/// of sessions: an absolute path (and its `resume-target.toml` chain to
/// sibling directories), or a relative path refused. `None` when an id
/// must be looked up under the roots.
pub fn resolve_path(session: &str, roots: &[Root]) -> Option<Result<Resolved, LookupError>> {
    if !session.starts_with('/') && !is_relative_path(session) {
        return None;
    }
    resolve_with(session, roots, &mut |_| None)
}

fn is_relative_path(session: &str) -> bool {
    session.contains('/') || session == "." || session == ".."
}

/// Resolves `session`, asking `lookup` for ids (`None` from it: stop,
/// an id lookup is needed that the caller cannot make here).
fn resolve_with(
    session: &str,
    roots: &[Root],
    lookup: &mut dyn FnMut(&str) -> Option<Result<PathBuf, LookupError>>,
) -> Option<Result<Resolved, LookupError>> {
    let mut dir = if session.starts_with('/') {
        match canonical_dir(Path::new(session)) {
            Some(dir) => dir,
            None => return Some(Err(not_a_directory(session))),
        }
    } else if is_relative_path(session) {
        return Some(Err(LookupError::RelativePath(session.to_string())));
    } else {
        match lookup(session)? {
            Ok(dir) => dir,
            Err(err) => return Some(Err(err)),
        }
    };
    for _ in 0..MAX_REDIRECTS {
        let Some(target) = resume_target(&dir) else {
            break;
        };
        let next = match canonical_dir(&dir.with_file_name(&target)) {
            Some(next) => Ok(next),
            None => lookup(&target)?,
        };
        dir = match next {
            Ok(next) => next,
            Err(cause) => {
                return Some(Err(LookupError::BrokenRedirect {
                    file: dir.join(RESUME_TARGET_FILE).display().to_string(),
                    target: target.clone(),
                    cause: Box::new(cause),
                }))
            }
        };
    }
    let poll = roots.iter().filter(|root| root.poll).any(|root| {
        dir.starts_with(canonical_dir(&root.path).unwrap_or_else(|| root.path.clone()))
    });
    Some(Ok(Resolved { dir, poll }))
}

/// The session a `resume-target.toml` in `dir` points to, if it is valid.
fn resume_target(dir: &Path) -> Option<String> {
    #[derive(Deserialize)]
    struct Raw {
        kind: String,
        target_session_id: String,
    }
    let (bytes, _) = crate::files::read_bounded(&dir.join(RESUME_TARGET_FILE)).ok()??;
    let raw: Raw = toml::from_str(std::str::from_utf8(&bytes).ok()?).ok()?;
    let target = raw.target_session_id;
    let plain = !target.is_empty() && !target.contains('/') && !target.starts_with('.');
    (raw.kind == "resume-wrapper" && plain).then_some(target)
}

/// Why the absolute path `session` is no session directory.
fn not_a_directory(session: &str) -> LookupError {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::metadata(session) else {
        return LookupError::NoDirectory(session.to_string());
    };
    let kind = meta.file_type();
    let kind = if kind.is_file() {
        "a file"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "not a directory"
    };
    let path = Path::new(session);
    let session_file = path.file_name().is_some_and(|name| {
        [
            crate::files::PID_FILE,
            crate::files::RESULT_FILE,
            crate::files::PACKET_FILE,
            crate::files::STDOUT_FILE,
        ]
        .iter()
        .any(|file| name == *file)
    });
    let hint = match path.parent() {
        Some(parent) if session_file => format!(" (here, its parent: {})", parent.display()),
        _ => String::new(),
    };
    LookupError::NotADirectory {
        path: session.to_string(),
        kind,
        hint,
    }
}

fn canonical_dir(path: &Path) -> Option<PathBuf> {
    let dir = std::fs::canonicalize(path).ok()?;
    dir.is_dir().then_some(dir)
}

/// Session directories in `sessions` whose name starts with `prefix`
/// (case-insensitive; hidden entries are not sessions). An exact match
/// stands alone.
fn matches_in(sessions: &Path, prefix: &str) -> Vec<PathBuf> {
    if let Some(dir) = canonical_dir(&sessions.join(prefix)) {
        return vec![dir];
    }
    let Ok(entries) = std::fs::read_dir(sessions) else {
        return Vec::new();
    };
    let want = prefix.to_uppercase();
    entries
        .flatten()
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            !name.starts_with('.') && name.to_uppercase().starts_with(&want)
        })
        .filter_map(|entry| canonical_dir(&entry.path()))
        .collect()
}

/// Whether an id missing from the index makes the lookup walk the roots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rebuild {
    OnMiss,
    Never,
}

fn lookup_id(
    id: &str,
    cwd: Option<&str>,
    roots: &[Root],
    index: &mut Index,
    rebuild: Rebuild,
) -> Result<PathBuf, LookupError> {
    // The caller's project first, root by root, as csa does.
    if let Some(project) = cwd.and_then(|cwd| cwd.strip_prefix('/')) {
        for root in roots {
            let found = matches_in(&root.path.join(project).join("sessions"), id);
            if !found.is_empty() {
                return one(id, found);
            }
        }
    }
    let mut found = everywhere(id, roots, index.dirs(roots));
    if found.is_empty() && rebuild == Rebuild::OnMiss {
        // Something new under a root since the index was built?
        index.clear();
        found = everywhere(id, roots, index.dirs(roots));
    }
    if found.is_empty() {
        let searched: Vec<String> = roots.iter().map(|r| r.path.display().to_string()).collect();
        return Err(LookupError::UnknownId {
            id: id.to_string(),
            roots: searched.join(", "),
        });
    }
    one(id, found)
}

/// Matches in every `sessions/` directory and as `<root>/<ID>`; exact
/// names win over prefixes.
fn everywhere(id: &str, roots: &[Root], sessions_dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    let direct = roots
        .iter()
        .filter_map(|root| canonical_dir(&root.path.join(id)));
    let indexed = sessions_dirs.iter().flat_map(|dir| matches_in(dir, id));
    for dir in direct.chain(indexed) {
        if !found.contains(&dir) {
            found.push(dir);
        }
    }
    let exact: Vec<PathBuf> = found
        .iter()
        .filter(|dir| dir.file_name().is_some_and(|name| name == id))
        .cloned()
        .collect();
    if exact.is_empty() {
        found
    } else {
        exact
    }
}

fn one(id: &str, mut found: Vec<PathBuf>) -> Result<PathBuf, LookupError> {
    if found.len() == 1 {
        return Ok(found.remove(0));
    }
    found.sort();
    Err(LookupError::Ambiguous {
        id: id.to_string(),
        candidates: found.iter().map(|d| d.display().to_string()).collect(),
    })
}

mod walk;

pub use walk::{project_dirs, walk, Index, Walk};

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
