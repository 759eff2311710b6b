//! Id and prefix resolution on any session name and working directory,
//! against a small tree of sessions: an answer or a lookup error, never a
//! panic, and a directory that is one of the sessions.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use verdict_core::resolve::{resolve_indexed, resolve_path, Index, Root};

fn roots() -> &'static (tempfile::TempDir, Vec<Root>) {
    static ROOTS: OnceLock<(tempfile::TempDir, Vec<Root>)> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().canonicalize().expect("canonical");
        for dir in [
            "home/me/proj/sessions/01JAAAAAAAAAAAAAAAAAAAAAAA",
            "home/me/proj/sessions/01JAAAAAAAAAAAAAAAAAAAAAAB",
            "other/sessions/01JBBBBBBBBBBBBBBBBBBBBBBB",
            "01JCCCCCCCCCCCCCCCCCCCCCCC",
        ] {
            std::fs::create_dir_all(root.join(dir)).expect("mkdir");
        }
        let redirect = root.join("other/sessions/01JREDIRECT");
        std::fs::create_dir_all(&redirect).expect("mkdir");
        std::fs::write(
            redirect.join("resume-target.toml"),
            "kind = \"resume-wrapper\"\ntarget_session_id = \"01JBBBBBBBBBBBBBBBBBBBBBBB\"\n",
        )
        .expect("redirect");
        let roots = vec![Root { path: root, poll: false }];
        (tmp, roots)
    })
}

fuzz_target!(|data: &[u8]| {
    let (_tmp, roots) = roots();
    let text = String::from_utf8_lossy(data);
    let (session, cwd) = match text.split_once('\n') {
        Some((session, cwd)) => (session, Some(cwd)),
        None => (&*text, None),
    };
    if session.is_empty() || session.contains('\0') || cwd.is_some_and(|c| c.contains('\0')) {
        return;
    }
    let mut index = Index::default();
    let found = resolve_path(session, roots)
        .unwrap_or_else(|| resolve_indexed(session, cwd, roots, &mut index));
    if let Ok(resolved) = found {
        let dir: PathBuf = resolved.dir;
        assert!(dir.is_dir());
        if !session.starts_with('/') {
            assert!(dir.starts_with(&roots[0].path), "{dir:?} is outside the root");
        }
    }
});
