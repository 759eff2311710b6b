//! Turning the `session` of a wait request into a canonical directory
//! (SPEC §5, §6): an absolute path, or an id looked up under the roots as
//! `<root>/<ID>`, `<root>/sessions/<ID>` and `<root>/*/sessions/<ID>`.
//!
//! Canonicalising means a symlinked session directory is watched and read
//! at its real location, and two spellings of one directory share a watch.

use std::path::{Path, PathBuf};

use verdict_proto::wire::ErrorCode;

use crate::config::Root;

/// A session directory to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Canonical absolute path.
    pub dir: PathBuf,
    /// Under a `poll = true` root: watch by slow poll.
    pub poll: bool,
}

/// Resolves `session`, or says why not with an error code and a message
/// that names the path or the roots searched.
pub fn resolve(session: &str, roots: &[Root]) -> Result<Resolved, (ErrorCode, String)> {
    let dir = if session.starts_with('/') {
        canonical_dir(Path::new(session)).ok_or_else(|| {
            let message = format!("{session} is not a session directory (no such directory)");
            (ErrorCode::UnknownSession, message)
        })?
    } else if session.contains('/') || session == "." || session == ".." {
        let message = format!(
            "session {session:?} is neither an id nor an absolute path; clients must send absolute paths"
        );
        return Err((ErrorCode::BadRequest, message));
    } else {
        lookup_id(session, roots)?
    };
    let poll = roots.iter().filter(|root| root.poll).any(|root| {
        dir.starts_with(canonical_dir(&root.path).unwrap_or_else(|| root.path.clone()))
    });
    Ok(Resolved { dir, poll })
}

fn canonical_dir(path: &Path) -> Option<PathBuf> {
    let dir = std::fs::canonicalize(path).ok()?;
    dir.is_dir().then_some(dir)
}

fn lookup_id(id: &str, roots: &[Root]) -> Result<PathBuf, (ErrorCode, String)> {
    let mut found: Vec<PathBuf> = Vec::new();
    for root in roots {
        let mut candidates = vec![root.path.join(id), root.path.join("sessions").join(id)];
        if let Ok(entries) = std::fs::read_dir(&root.path) {
            candidates.extend(
                entries
                    .flatten()
                    .map(|entry| entry.path().join("sessions").join(id)),
            );
        }
        for dir in candidates.iter().filter_map(|c| canonical_dir(c)) {
            if !found.contains(&dir) {
                found.push(dir);
            }
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => {
            let searched: Vec<String> =
                roots.iter().map(|r| r.path.display().to_string()).collect();
            let message = format!(
                "no session {id} under the roots [{}]; pass the session's absolute path, or add its root with --root",
                searched.join(", ")
            );
            Err((ErrorCode::UnknownSession, message))
        }
        _ => {
            let all: Vec<String> = found.iter().map(|d| d.display().to_string()).collect();
            let message = format!(
                "session id {id} is ambiguous: {}; pass the absolute path",
                all.join(", ")
            );
            Err((ErrorCode::UnknownSession, message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_found_in_all_three_layouts_and_ambiguity_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        for dir in [
            "A1",
            "sessions/B2",
            "proj/sessions/C3",
            "p1/sessions/D4",
            "p2/sessions/D4",
        ] {
            std::fs::create_dir_all(root.join(dir)).expect("mkdir");
        }
        let roots = [Root {
            path: root.clone(),
            poll: false,
        }];
        let canon = std::fs::canonicalize(&root).expect("canon");
        for (id, want) in [
            ("A1", "A1"),
            ("B2", "sessions/B2"),
            ("C3", "proj/sessions/C3"),
        ] {
            assert_eq!(resolve(id, &roots).map(|r| r.dir), Ok(canon.join(want)));
        }
        let (code, message) = resolve("D4", &roots).expect_err("ambiguous");
        assert_eq!(code, ErrorCode::UnknownSession);
        assert!(message.contains("ambiguous"), "{message}");
        let (code, message) = resolve("NOPE", &roots).expect_err("missing");
        assert_eq!(code, ErrorCode::UnknownSession);
        assert!(message.contains(&root.display().to_string()), "{message}");
        assert_eq!(
            resolve("rel/x", &roots).map_err(|e| e.0),
            Err(ErrorCode::BadRequest)
        );
    }

    #[test]
    fn poll_roots_mark_their_sessions() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(tmp.path().join("S")).expect("mkdir");
        let roots = [Root {
            path: tmp.path().into(),
            poll: true,
        }];
        let abs = tmp.path().join("S");
        assert!(
            resolve(abs.to_str().expect("utf8"), &roots)
                .expect("found")
                .poll
        );
    }
}
