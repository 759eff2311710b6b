//! The wire form of a verdict.

use verdict_proto::wire::{self, VerdictEvent, WireOutcome, WireSource};

use super::{Outcome, Source, Verdict};

impl From<Outcome> for WireOutcome {
    fn from(outcome: Outcome) -> WireOutcome {
        match outcome {
            Outcome::Completed => WireOutcome::Completed,
            Outcome::KvWarm => WireOutcome::KvWarm,
            Outcome::Timeout => WireOutcome::Timeout,
        }
    }
}

impl From<Source> for WireSource {
    fn from(source: Source) -> WireSource {
        match source {
            Source::Result => WireSource::Result,
            Source::Packet => WireSource::Packet,
            Source::None => WireSource::None,
        }
    }
}

impl Verdict {
    /// The wire form of this verdict for `session`; text that came from
    /// session files is bounded (see [`wire::bounded`]).
    pub fn event(&self, session: &str, elapsed_ms: u64) -> VerdictEvent {
        let verdict = self;
        let completed = verdict.outcome == Outcome::Completed;
        VerdictEvent {
            outcome: verdict.outcome.into(),
            session: wire::bounded(session, wire::MAX_WORD_CHARS),
            status: wire::bounded(&verdict.status, wire::MAX_WORD_CHARS),
            exit_code: verdict.exit_code,
            source: completed.then_some(verdict.source.into()),
            synthetic: completed.then_some(verdict.synthetic),
            summary: verdict
                .summary
                .as_deref()
                .map(|s| wire::bounded(s, wire::MAX_SUMMARY_CHARS)),
            reason: verdict
                .reason
                .as_deref()
                .map(|s| wire::bounded(s, wire::MAX_WORD_CHARS)),
            pid: verdict.pid,
            exit: verdict.exit(),
            elapsed_ms,
            dir: None,
            notes: bounded_notes(&verdict.notes),
        }
    }
}

fn bounded_notes(notes: &[String]) -> Vec<String> {
    let mut out: Vec<String> = notes
        .iter()
        .take(wire::MAX_NOTES)
        .map(|note| wire::bounded(note, wire::MAX_NOTE_CHARS))
        .collect();
    if notes.len() > wire::MAX_NOTES {
        out.push(format!(
            "… and {} more notes",
            notes.len() - wire::MAX_NOTES
        ));
    }
    out
}
