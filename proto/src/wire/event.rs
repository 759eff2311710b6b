//! Replies and the events they carry.

use serde::{Deserialize, Serialize};

use super::{ErrorCode, RequestId, StatusCounters, PROTOCOL_VERSION};
use crate::Exit;

/// One reply line: `{"v":1,"id":…,"event":…,…}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// Protocol version.
    pub v: u64,
    /// The id of the request this answers, as the token it carried.
    #[serde(default, deserialize_with = "super::id::raw_token")]
    pub id: RequestId,
    /// The event and its fields.
    #[serde(flatten)]
    pub event: Event,
}

impl Reply {
    /// A reply to request `id`.
    pub fn new(id: RequestId, event: Event) -> Reply {
        Reply {
            v: PROTOCOL_VERSION,
            id,
            event,
        }
    }
}

/// The events a daemon sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The watch is armed and the first snapshot taken.
    Watching(Watching),
    /// The final answer to a wait.
    Verdict(VerdictEvent),
    /// A request failed.
    Error {
        /// What kind of error.
        code: ErrorCode,
        /// A sentence for people.
        message: String,
    },
    /// Answer to `ping`.
    Pong,
    /// Answer to `status`.
    Status(StatusCounters),
    /// Answer to `cancel`; the cancelled wait gets no further reply.
    Cancelled {
        /// The id of the cancelled wait (or subscription).
        target: RequestId,
    },
    /// Answer to `subscribe`: events follow until it is cancelled.
    Subscribed {
        /// The daemon's roots the subscription covers.
        roots: Vec<String>,
        /// Sessions under them with a live process now (their ends will be
        /// reported; their starts were before the subscription).
        live: u64,
    },
    /// A subscription's event: a new session's process is running.
    Started(Started),
}

/// Fields of the `started` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// The session id (directory name).
    pub session: String,
    /// The session directory.
    pub dir: String,
    /// The session process's pid, when `daemon.pid` names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
}

/// Fields of the `watching` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watching {
    /// The session id (directory name).
    pub session: String,
    /// The canonical session directory.
    pub dir: String,
    /// The cap in force for this wait (0: none), so a client that
    /// reconnects can ask for what is left.
    #[serde(default)]
    pub cap_ms: u64,
    /// The session process's pid, when `daemon.pid` names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
}

/// Fields of the `verdict` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictEvent {
    /// `completed`, `kv_warm` or `timeout`.
    pub outcome: WireOutcome,
    /// The session id.
    pub session: String,
    /// `success`, `failure`, … for completed; `alive` or `dead` otherwise.
    pub status: String,
    /// The session's exit code (completed only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// `result`, `packet` or `none` (completed only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<WireSource>,
    /// Whether the rules made the verdict up (completed only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<bool>,
    /// `summary` from `result.toml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Why a synthetic verdict was made, or the packet's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The live process's pid (kv_warm only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// The exit code a client should use.
    pub exit: Exit,
    /// Milliseconds since the wait was received (since the subscription
    /// for a subscription's verdicts).
    pub elapsed_ms: u64,
    /// The session directory (a subscription's verdicts only: they answer
    /// no request that named it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// What was odd (malformed or stale files, and why).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// `outcome` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireOutcome {
    /// The session ended.
    Completed,
    /// The cap fired while the process was alive.
    KvWarm,
    /// The cap fired with no verdict and no live process.
    Timeout,
}

/// `source` on the wire: which file a completed verdict came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireSource {
    /// `result.toml` (rule C1).
    Result,
    /// `daemon-completion.toml` or `.complete` (rule C2).
    Packet,
    /// Made up by the rules (C3, C4).
    None,
    /// A source this version does not know (newer daemon).
    #[serde(other)]
    Unknown,
}

/// Longest `summary` copied from `result.toml`, in characters.
pub const MAX_SUMMARY_CHARS: usize = 4096;
/// Longest `session`, `status` or `reason`, in characters.
pub const MAX_WORD_CHARS: usize = 256;
/// Longest note, in characters, and how many notes a verdict carries.
pub const MAX_NOTE_CHARS: usize = 256;
/// Notes a verdict carries at most.
pub const MAX_NOTES: usize = 12;

/// Cuts `text` to `max` characters, saying how much was cut. The bounds
/// above keep every verdict line under [`crate::codec::MAX_LINE_BYTES`]
/// even when JSON escaping makes each character six bytes, so the daemon
/// never sends a line a client must refuse.
pub fn bounded(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}… [{} more bytes cut]", &text[..cut], text.len() - cut),
    }
}
