//! What a `wait` call returns, as structured data an agent can act on.

use schemars::JsonSchema;
use serde::Serialize;
use verdict_client::wire::WireOutcome;
use verdict_client::{Refusal, Verdict};

/// At most this much of a session's `stdout.log` is returned (its end).
pub const MAX_TAIL_BYTES: u64 = 4096;

/// The answer to one `wait` call.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WaitResult {
    /// True when the call's mode is satisfied: every session ended (`all`)
    /// or one did (`any`). False when the timeout came first.
    pub done: bool,
    /// The exit code `verdict wait` would return for this call: 0 (all
    /// succeeded, or still running at the timeout), 1 (a failure), 124
    /// (nothing ran and nothing ended), 2 or 3 (see `error` fields).
    pub exit_code: i32,
    /// One entry per session asked about, in the order given.
    pub sessions: Vec<SessionAnswer>,
    /// The sessions still running (or not yet answered): wait on them again.
    pub still_running: Vec<String>,
    /// What to do next, in one sentence.
    pub next: String,
}

/// Where one session stands.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct SessionAnswer {
    /// The session as given.
    pub session: String,
    /// Its full id, once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `completed`: it ended; `alive`: still running at the timeout
    /// (healthy, wait again); `timeout`: nothing runs and nothing ended;
    /// `pending`: not answered (an `any` call ended first); `error`.
    pub outcome: String,
    /// `success`, `failure`, `signal`, … when completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The session's own exit code, when it reported one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The exit code `verdict wait` gives this session (0, 1, 124, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_exit_code: Option<i32>,
    /// True when no file said how it ended and the rules made the verdict up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<bool>,
    /// The session's own summary (`result.toml`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Why a made-up verdict was made, or the completion packet's reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The session's output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Output>,
    /// What went wrong with this session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The end of a session's `stdout.log`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Output {
    /// The file, to read the rest.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its last bytes (at most 4096, from a line start when cut).
    pub tail: String,
    /// True when `tail` is not the whole file.
    pub truncated: bool,
}

impl SessionAnswer {
    /// A session with no answer yet.
    pub fn pending(session: &str) -> SessionAnswer {
        SessionAnswer {
            session: session.into(),
            outcome: "pending".into(),
            ..SessionAnswer::default()
        }
    }

    /// A session with its verdict.
    pub fn answered(session: &str, verdict: &Verdict) -> SessionAnswer {
        let event = &verdict.event;
        let outcome = match event.outcome {
            WireOutcome::Completed => "completed",
            WireOutcome::KvWarm => "alive",
            WireOutcome::Timeout => "timeout",
        };
        SessionAnswer {
            session: session.into(),
            id: Some(event.session.clone()),
            outcome: outcome.into(),
            status: Some(event.status.clone()),
            exit_code: event.exit_code,
            wait_exit_code: Some(verdict.exit().code()),
            synthetic: event.synthetic,
            summary: event.summary.clone(),
            reason: event.reason.clone(),
            output: verdict.output_tail(MAX_TAIL_BYTES).map(Output::from),
            error: None,
        }
    }

    /// A session that was refused.
    pub fn refused(session: &str, refusal: &Refusal) -> SessionAnswer {
        SessionAnswer {
            session: session.into(),
            outcome: "error".into(),
            wait_exit_code: Some(refusal.exit().code()),
            error: Some(refusal.message.clone()),
            ..SessionAnswer::default()
        }
    }
}

impl From<verdict_client::OutputTail> for Output {
    fn from(tail: verdict_client::OutputTail) -> Output {
        Output {
            path: tail.path.to_string_lossy().into_owned(),
            size: tail.size,
            tail: tail.tail,
            truncated: tail.truncated,
        }
    }
}
