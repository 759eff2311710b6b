//! The wire form of verdicts made by the rules.

use serde_json::json;
use verdict_core::rules::{Outcome, Source, Verdict};
use verdict_proto::codec;
use verdict_proto::wire::{self, Event, Reply, RequestId, VerdictLines};
use verdict_proto::Exit;

#[test]
fn a_verdict_from_hostile_files_fits_in_one_line() {
    let control = "\u{1}".repeat(100_000);
    let verdict = Verdict {
        outcome: Outcome::Completed,
        status: control.clone(),
        exit_code: Some(1),
        source: Source::Result,
        synthetic: false,
        summary: Some(control.clone()),
        reason: Some(control.clone()),
        pid: None,
        notes: vec![control.clone(); 100],
    };
    let event = verdict.event(&control, 1);
    let line = codec::encode_line(&Reply::new(
        RequestId::from(1),
        Event::Verdict(event.clone()),
    ));
    assert!(line.len() <= codec::MAX_LINE_BYTES, "{} bytes", line.len());
    assert!(event
        .summary
        .as_deref()
        .is_some_and(|s| s.ends_with("more bytes cut]")));
    assert_eq!(event.exit, Exit::Failure);
    assert_eq!(wire::bounded("héllo", 2), "hé… [3 more bytes cut]");
    assert_eq!(wire::bounded("short", 10), "short");
}

#[test]
fn verdict_lines_equal_a_full_encoding() {
    let verdict = Verdict {
        outcome: Outcome::Completed,
        status: "success".into(),
        exit_code: Some(0),
        source: Source::Result,
        synthetic: false,
        summary: Some("tricky \"elapsed_ms\":918273645546372819 text".into()),
        reason: None,
        pid: None,
        notes: vec!["a note".into()],
    };
    let event = verdict.event("01J", 0);
    let lines = VerdictLines::new(&event).expect("template");
    for (id, elapsed) in [
        (RequestId::from(1), 0),
        (RequestId::from_value(&json!("abc")), 12_345),
        (RequestId::from_value(&json!({"k": [1]})), u64::MAX),
    ] {
        let mut full = event.clone();
        full.elapsed_ms = elapsed;
        let want = codec::encode_line(&Reply::new(id.clone(), Event::Verdict(full)));
        assert_eq!(
            String::from_utf8_lossy(&lines.line(&id, elapsed)),
            String::from_utf8_lossy(&want)
        );
    }
}
