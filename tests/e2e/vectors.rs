//! Replays the conformance vectors in `proto/tests/vectors/` against a real
//! daemon, one fresh daemon per vector, and compares every reply byte for
//! byte after normalising what varies between runs (paths, pids, times).
//!
//! `VERDICT_BLESS=1 cargo test -p verdict-e2e --test e2e vectors` rewrites the
//! expected replies from what the daemon says; review the diff before
//! committing it.

use std::path::{Path, PathBuf};

use serde_json::Value;
use verdict_e2e::{Client, Harness};

fn vector_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto/tests/vectors")
}

/// Replaces what differs between runs with fixed placeholders, on the
/// line as the daemon sent it (re-encoding it would change numbers such
/// as an id `1e2`): paths in order (session, root, temp dir), then the
/// values of `pid`, `elapsed_ms`, `uptime_ms` (to `0`) and `version` (to
/// `"$VERSION"`). A key in quotes cannot occur inside a JSON string,
/// where quotes are escaped.
fn normalise(line: &str, paths: &[(&str, &str)]) -> String {
    let mut line = line.to_string();
    for (path, placeholder) in paths {
        line = line.replace(path, placeholder);
    }
    for key in ["\"pid\":", "\"elapsed_ms\":", "\"uptime_ms\":"] {
        line = replace_values(
            &line,
            key,
            |rest| rest.bytes().take_while(u8::is_ascii_digit).count(),
            "0",
        );
    }
    replace_values(
        &line,
        "\"version\":",
        |rest| {
            // A string: up to its closing quote.
            let bytes = rest.as_bytes();
            if bytes.first() != Some(&b'"') {
                return 0;
            }
            let mut i = 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            (i + 1).min(bytes.len())
        },
        "\"$VERSION\"",
    )
}

/// Replaces the value after each `key` (its length given by `len`, 0 for
/// none) with `with`.
fn replace_values(line: &str, key: &str, len: impl Fn(&str) -> usize, with: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find(key) {
        let value = &rest[at + key.len()..];
        let n = len(value);
        out.push_str(&rest[..at + key.len()]);
        out.push_str(if n > 0 { with } else { "" });
        rest = &value[n..];
    }
    out.push_str(rest);
    out
}

fn replay(path: &Path, bless: bool) -> Option<Value> {
    let text = std::fs::read_to_string(path).expect("read vector");
    let mut vector: Value = serde_json::from_str(&text).expect("vector is JSON");
    let name = path
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let h = Harness::with_config(vector["config"].as_str().unwrap_or(""));
    let spec = &vector["session"];
    let id = spec["id"].as_str().unwrap_or("01JVECTOR");
    // `"create": "later"`: the directory appears at a `create_session` step
    // (a subscription's `started`), with a live process.
    let later = spec["create"] == "later";
    let mut session = h.session(id);
    if later {
        std::fs::remove_dir(&session.dir).expect("remove the session dir until later");
    }
    if spec["process"] == "alive" && !later {
        session.start_process();
    }
    if let Some(files) = spec["files"].as_object() {
        for (file, contents) in files {
            session.write(file, contents.as_str().expect("file contents are strings"));
        }
    }
    let dir = h.root.canonicalize().expect("canonical root").join(id);
    let (dir, root) = (
        dir.to_str().expect("utf8").to_string(),
        h.root.to_str().expect("utf8").to_string(),
    );
    let tmp = h.tmp.path().to_str().expect("utf8").to_string();
    let mut conns: Vec<Option<Client>> = Vec::new();
    let steps = vector["steps"].as_array_mut().expect("steps");
    for (index, step) in steps.iter_mut().enumerate() {
        let at = format!("{name} step {index}");
        let conn = step["conn"].as_u64().unwrap_or(1) as usize;
        if conns.len() < conn {
            conns.resize_with(conn, || None);
        }
        let client = conns[conn - 1].get_or_insert_with(|| h.connect());
        if let Some(line) = step["send"].as_str() {
            client.send(&line.replace("$SESSION", &dir).replace("$ROOT", &root));
        } else if let Some(bytes) = step["send_long"].as_u64() {
            // The daemon refuses an oversized line and closes: it may stop
            // reading before all of it is written.
            let pad = "x".repeat(bytes as usize);
            let line = format!(r#"{{"v":1,"id":1,"op":"ping","pad":"{pad}"}}"#) + "\n";
            client.send_may_be_cut(line.as_bytes());
        } else if step.get("recv").is_some() {
            let paths = [
                (dir.as_str(), "$SESSION"),
                (root.as_str(), "$ROOT"),
                (tmp.as_str(), "$TMP"),
            ];
            let got_line = normalise(&client.recv_line(), &paths);
            if bless {
                step["recv"] = got_line.into();
            } else {
                assert_eq!(
                    got_line,
                    step["recv"].as_str().expect("recv is a string"),
                    "{at}"
                );
            }
        } else if step.get("closed").is_some() {
            assert!(
                client.is_closed(),
                "{at}: the daemon should close the connection"
            );
        } else {
            match step["do"].as_str() {
                Some("end_process") => session.end_process(),
                Some("create_session") => {
                    std::fs::create_dir_all(&session.dir).expect("create the session dir");
                    session.start_process();
                }
                Some("remove_session") => {
                    std::fs::remove_dir_all(&session.dir).expect("remove session")
                }
                Some("wait_for_waiters") => h.wait_for_waiters(step["n"].as_u64().unwrap_or(1)),
                other => panic!("{at}: unknown step {other:?}"),
            }
        }
    }
    bless.then_some(vector)
}

#[test]
fn conformance_vectors_replay_against_the_daemon() {
    let bless = std::env::var_os("VERDICT_BLESS").is_some();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(vector_dir())
        .expect("vector dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 15,
        "expected the full set of vectors, found {}",
        paths.len()
    );
    for path in paths {
        if let Some(vector) = replay(&path, bless) {
            let text = serde_json::to_string_pretty(&vector).expect("encode") + "\n";
            std::fs::write(&path, text).expect("bless vector");
        }
    }
}
