//! Tests of `resolve.rs`.

use super::*;

fn roots(paths: &[&Path]) -> Vec<Root> {
    paths
        .iter()
        .map(|path| Root {
            path: path.to_path_buf(),
            poll: false,
        })
        .collect()
}

#[test]
fn ids_and_prefixes_in_csa_layouts_and_ambiguity_is_an_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    for dir in [
        "A1",
        "sessions/B2",
        "home/u/proj/sessions/01ABCDEF",
        "p1/sessions/D4",
        "p2/sessions/D4",
        "p3/sessions/.hidden",
    ] {
        std::fs::create_dir_all(root.join(dir)).expect("mkdir");
    }
    let roots = roots(&[&root]);
    let canon = std::fs::canonicalize(&root).expect("canon");
    let mut index = Index::default();
    for (id, want) in [
        ("A1", "A1"),
        ("B2", "sessions/B2"),
        ("01ABCDEF", "home/u/proj/sessions/01ABCDEF"),
        ("01abc", "home/u/proj/sessions/01ABCDEF"),
    ] {
        let got = resolve(id, None, &roots, &mut index).map(|r| r.dir);
        assert_eq!(got, Ok(canon.join(want)), "{id}");
    }
    let err = resolve("D4", None, &roots, &mut index).expect_err("ambiguous");
    let (code, message) = (err.code(), err.to_string());
    assert_eq!(code, ErrorCode::UnknownSession);
    assert!(message.contains("p1/sessions/D4") && message.contains("p2/sessions/D4"));
    // The caller's project settles it.
    let cwd = canon.join("p2");
    let cwd = cwd.to_str().expect("utf8");
    let in_project = roots_for_project(&canon, cwd);
    let got = resolve(
        "D4",
        Some(&in_project.1),
        &in_project.0,
        &mut Index::default(),
    );
    let want = canon.join("state").join(cwd.trim_start_matches('/'));
    assert_eq!(got.map(|r| r.dir), Ok(want.join("sessions/D4")));
    let err = resolve("NOPE", None, &roots, &mut index).expect_err("missing");
    let (code, message) = (err.code(), err.to_string());
    assert_eq!(code, ErrorCode::UnknownSession);
    assert!(message.contains(&root.display().to_string()), "{message}");
    assert_eq!(
        resolve("rel/x", None, &roots, &mut index).map_err(|e| e.code()),
        Err(ErrorCode::BadRequest)
    );
    // A project created after the index was built is found (refresh on a miss).
    std::fs::create_dir_all(root.join("late/sessions/LATE1")).expect("mkdir");
    assert!(resolve("LATE", None, &roots, &mut index).is_ok());
}

/// A root laid out as csa's state dir for a project at `cwd`: the
/// project key is the path without its leading slash.
fn roots_for_project(canon: &Path, cwd: &str) -> (Vec<Root>, String) {
    let state = canon.join("state");
    let key = cwd.trim_start_matches('/');
    std::fs::create_dir_all(state.join(key).join("sessions/D4")).expect("mkdir");
    (roots(&[&state, canon]), cwd.to_string())
}

#[test]
fn resume_target_redirects_the_wait() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sessions = tmp.path().join("p/sessions");
    for id in ["WRAPPER", "WORKER"] {
        std::fs::create_dir_all(sessions.join(id)).expect("mkdir");
    }
    std::fs::write(
        sessions.join("WRAPPER").join(RESUME_TARGET_FILE),
        "kind = \"resume-wrapper\"\ntarget_session_id = \"WORKER\"\ncreated_at = \"2026-01-01T00:00:00Z\"\n",
    )
    .expect("write");
    let roots = roots(&[tmp.path()]);
    let got = resolve("WRAPPER", None, &roots, &mut Index::default()).expect("found");
    let worker = std::fs::canonicalize(sessions.join("WORKER")).expect("canon");
    assert_eq!(got.dir, worker);
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
    let abs = abs.to_str().expect("utf8");
    let resolved = resolve(abs, None, &roots, &mut Index::default()).expect("found");
    assert!(resolved.poll);
}
