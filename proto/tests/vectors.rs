//! The conformance vectors (`tests/vectors/*.json`) through the codec:
//! every request line parses and re-encodes to the same bytes, every
//! invalid one fails with the error code its reply names, and every reply
//! line decodes and re-encodes to the same bytes. The same vectors are
//! replayed against a real daemon by the end-to-end suite.

use std::path::Path;

use serde_json::Value;
use verdict_proto::codec::encode_line;
use verdict_proto::wire::{parse_request, Event, Reply};

fn vectors() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut all: Vec<(String, Value)> = std::fs::read_dir(dir)
        .expect("vector dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read");
            (
                path.display().to_string(),
                serde_json::from_str(&text).expect("vector JSON"),
            )
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

fn line_without_newline(message: &impl serde::Serialize) -> Vec<u8> {
    let mut line = encode_line(message);
    line.pop();
    line
}

#[test]
fn every_vector_round_trips_through_the_codec() {
    let all = vectors();
    assert!(all.len() >= 15, "found only {} vectors", all.len());
    let mut checked = (0, 0, 0);
    for (name, vector) in &all {
        let steps = vector["steps"].as_array().expect("steps");
        for (index, step) in steps.iter().enumerate() {
            let at = format!("{name} step {index}");
            if let Some(line) = step["send"].as_str() {
                // `$ROOT` stands for an absolute path (the replay fills it in).
                let line = &line.replace("$ROOT", "/ROOT");
                // The reply to this request on the same connection.
                let conn = step["conn"].as_u64().unwrap_or(1);
                let reply = steps[index + 1..]
                    .iter()
                    .find(|s| s["conn"].as_u64().unwrap_or(1) == conn && s.get("recv").is_some())
                    .map(|s| {
                        serde_json::from_str::<Reply>(s["recv"].as_str().expect("recv"))
                            .expect("reply")
                    });
                match parse_request(line.as_bytes()) {
                    Ok((id, request)) => {
                        // Unknown fields are ignored, so they do not come back.
                        let mut known: Value = serde_json::from_str(line).expect("request JSON");
                        let fields = known.as_object_mut().expect("object");
                        fields.retain(|key, _| {
                            [
                                "v", "id", "op", "session", "cap_ms", "cwd", "target", "under",
                            ]
                            .contains(&key.as_str())
                        });
                        let has_id = fields.contains_key("id");
                        let encoded = request.line(&id);
                        let mut again: Value = serde_json::from_slice(&encoded).expect("JSON");
                        if !has_id {
                            // No id: served as id null.
                            let removed = again.as_object_mut().and_then(|o| o.shift_remove("id"));
                            assert_eq!(removed, Some(Value::Null), "{at}");
                        }
                        assert_eq!(again, known, "{at}: re-encoding differs");
                        let keys = |v: &Value| -> Vec<String> {
                            v.as_object().expect("object").keys().cloned().collect()
                        };
                        assert_eq!(keys(&again), keys(&known), "{at}: field order differs");
                        // The id goes back out as the very token sent
                        // (`1e2` stays `1e2`), which a `Value` would not keep.
                        let token = format!("\"id\":{}", id.as_json());
                        assert!(
                            (line.contains(&token) || !has_id)
                                && std::str::from_utf8(&encoded)
                                    .expect("utf8")
                                    .contains(&token),
                            "{at}: the id token is not kept"
                        );
                        checked.0 += 1;
                    }
                    Err(err) => {
                        let Some(Reply {
                            event: Event::Error { code, .. },
                            ..
                        }) = reply
                        else {
                            panic!(
                                "{at}: the request is invalid ({}) but no error reply follows",
                                err.message
                            )
                        };
                        assert_eq!(err.code, code, "{at}");
                        checked.1 += 1;
                    }
                }
            }
            if let Some(line) = step["recv"].as_str() {
                let reply: Reply =
                    serde_json::from_str(line).unwrap_or_else(|err| panic!("{at}: {err}"));
                assert_eq!(
                    line_without_newline(&reply),
                    line.as_bytes(),
                    "{at}: re-encoding differs"
                );
                checked.2 += 1;
            }
        }
    }
    eprintln!(
        "{} vectors: {} requests re-encoded, {} invalid requests refused with their reply's code, \
         {} replies re-encoded",
        all.len(),
        checked.0,
        checked.1,
        checked.2
    );
    assert!(
        checked.0 >= 15 && checked.1 >= 5 && checked.2 >= 30,
        "too few lines checked: {checked:?}"
    );
}
