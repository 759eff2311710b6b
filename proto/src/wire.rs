//! Every type that crosses the socket (SPEC §5), in one place.
//!
//! Requests are parsed by hand from a `serde_json::Value` so that a bad
//! request still yields its `id` and an error message that names the field.
//! Replies are plain serde structs. Nothing here touches a socket; the
//! framing lives in [`crate::codec`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::rules::{Outcome, Source, Verdict};

/// The protocol version this crate speaks; every message carries it as `"v"`.
pub const PROTOCOL_VERSION: u64 = 1;

/// The cap a daemon applies to a wait that names none (csa's own default
/// wait), in milliseconds.
pub const DEFAULT_CAP_MS: u64 = 240_000;

/// A request's `id`: any JSON value the client chose, echoed in replies
/// verbatim, as the token it sent (an integer past 64 bits stays that
/// integer; it is never turned into a float). Held as compact JSON text:
/// two spellings of one id that differ only in whitespace are the same id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// `null`: the id of a reply to a request that had none (or none that
    /// could be read).
    pub fn null() -> RequestId {
        RequestId("null".into())
    }

    /// The id of a parsed JSON value (its serialisation).
    pub fn from_value(value: &Value) -> RequestId {
        RequestId(value.to_string())
    }

    /// The id as the raw JSON token a request carried (whitespace outside
    /// strings removed).
    fn from_raw(raw: &str) -> RequestId {
        RequestId(minify(raw))
    }

    /// The id as JSON text.
    pub fn as_json(&self) -> &str {
        &self.0
    }

    /// The id as an unsigned integer, if it is one.
    pub fn as_u64(&self) -> Option<u64> {
        self.0.parse().ok()
    }

    /// The id as a parsed JSON value (an integer past 64 bits loses its
    /// precision here: only the wire keeps it).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }
}

impl Default for RequestId {
    fn default() -> RequestId {
        RequestId::null()
    }
}

impl From<u64> for RequestId {
    fn from(id: u64) -> RequestId {
        RequestId(id.to_string())
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for RequestId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The text came from a JSON token (or a value we serialised): it
        // is valid JSON, written as it is.
        match serde_json::value::RawValue::from_string(self.0.clone()) {
            Ok(raw) => raw.serialize(serializer),
            Err(_) => Value::Null.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<RequestId, D::Error> {
        Value::deserialize(deserializer).map(|value| RequestId::from_value(&value))
    }
}

/// `json` (valid JSON text) without the whitespace between its tokens.
fn minify(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

/// The raw tokens of a request's `id` and `target`, as sent.
fn raw_ids(line: &[u8]) -> (Option<RequestId>, Option<RequestId>) {
    #[derive(Deserialize)]
    struct Raw<'a> {
        #[serde(borrow, default)]
        id: Option<&'a serde_json::value::RawValue>,
        #[serde(borrow, default)]
        target: Option<&'a serde_json::value::RawValue>,
    }
    match serde_json::from_slice::<Raw>(line) {
        Ok(raw) => (
            raw.id.map(|id| RequestId::from_raw(id.get())),
            raw.target.map(|t| RequestId::from_raw(t.get())),
        ),
        // A key given twice, say: the parsed value's reading stands.
        Err(_) => (None, None),
    }
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Wait for a session's verdict.
    Wait {
        /// Absolute path of the session directory, or its id.
        session: String,
        /// `Some(0)`: no cap; `None`: the daemon's default.
        cap_ms: Option<u64>,
        /// The caller's working directory (absolute): an id is looked up
        /// in that project's sessions first, as csa does.
        cwd: Option<String>,
    },
    /// Cancel the wait whose request id is `target`.
    Cancel {
        /// The id of the wait to cancel.
        target: RequestId,
    },
    /// Ask for the daemon's counters.
    Status,
    /// Liveness check.
    Ping,
    /// Stream a `verdict` for every session under the roots as it ends, and
    /// `started` when a new session's process appears, until cancelled.
    Subscribe {
        /// Only sessions under these absolute directories (all if empty).
        under: Vec<String>,
    },
}

impl Request {
    /// The `op` string of this request.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Wait { .. } => "wait",
            Request::Cancel { .. } => "cancel",
            Request::Status => "status",
            Request::Ping => "ping",
            Request::Subscribe { .. } => "subscribe",
        }
    }

    /// Encodes this request with `id` as one JSON object (no newline).
    pub fn to_json(&self, id: &RequestId) -> Value {
        let mut obj = Map::new();
        obj.insert("v".into(), PROTOCOL_VERSION.into());
        obj.insert("id".into(), id.to_value());
        obj.insert("op".into(), self.op().into());
        match self {
            Request::Wait {
                session,
                cap_ms,
                cwd,
            } => {
                obj.insert("session".into(), session.clone().into());
                if let Some(cap) = cap_ms {
                    obj.insert("cap_ms".into(), (*cap).into());
                }
                if let Some(cwd) = cwd {
                    obj.insert("cwd".into(), cwd.clone().into());
                }
            }
            Request::Cancel { target } => {
                obj.insert("target".into(), target.to_value());
            }
            Request::Subscribe { under } => {
                if !under.is_empty() {
                    obj.insert("under".into(), under.clone().into());
                }
            }
            Request::Status | Request::Ping => {}
        }
        Value::Object(obj)
    }
}

/// Error codes of the `error` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The line is not a valid request.
    BadRequest,
    /// The session id or path names no session directory.
    UnknownSession,
    /// The session directory vanished mid-wait.
    SessionRemoved,
    /// The request's `v` is not one this daemon speaks.
    UnsupportedVersion,
    /// The line exceeded the length limit; the connection is closed.
    LineTooLong,
    /// The daemon is at its connection or waiter limit.
    Busy,
    /// Something went wrong inside the daemon.
    Internal,
    /// A code this version does not know (newer daemon).
    #[serde(other)]
    Unknown,
}

/// A request that could not be accepted, with the id to reply to.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestError {
    /// The request's id, or `null` if it had none.
    pub id: RequestId,
    /// What kind of error.
    pub code: ErrorCode,
    /// A sentence for people.
    pub message: String,
}

/// Parses one request line (without its newline).
pub fn parse_request(line: &[u8]) -> Result<(RequestId, Request), RequestError> {
    let fail = |id: &RequestId, code, message: String| RequestError {
        id: id.clone(),
        code,
        message,
    };
    let value: Value = serde_json::from_slice(line).map_err(|err| {
        fail(
            &RequestId::null(),
            ErrorCode::BadRequest,
            format!("not valid JSON: {err}"),
        )
    })?;
    let Value::Object(obj) = value else {
        return Err(fail(
            &RequestId::null(),
            ErrorCode::BadRequest,
            "a request must be a JSON object".into(),
        ));
    };
    // Echoed as sent: the raw token, not the parsed value (which turns an
    // integer past 64 bits into a float).
    let (raw_id, raw_target) = raw_ids(line);
    let id = match obj.get("id") {
        None => RequestId::null(),
        Some(value) => raw_id.unwrap_or_else(|| RequestId::from_value(value)),
    };
    match obj.get("v") {
        Some(v) if v.as_u64() == Some(PROTOCOL_VERSION) => {}
        Some(v) => {
            let msg = format!("protocol version {v} is not supported; this daemon speaks \"v\":{PROTOCOL_VERSION}");
            return Err(fail(&id, ErrorCode::UnsupportedVersion, msg));
        }
        None => {
            return Err(fail(
                &id,
                ErrorCode::BadRequest,
                "missing \"v\" (use \"v\":1)".into(),
            ))
        }
    }
    let bad = |message: String| fail(&id, ErrorCode::BadRequest, message);
    let op = obj
        .get("op")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("missing string field \"op\"".into()))?;
    let request = match op {
        "wait" => {
            let session = match obj.get("session") {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                _ => return Err(bad("\"wait\" needs a non-empty string \"session\"".into())),
            };
            let cap_ms = match obj.get("cap_ms") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().ok_or_else(|| {
                    bad(format!(
                        "\"cap_ms\" must be a non-negative integer, got {v}"
                    ))
                })?),
            };
            let cwd = match obj.get("cwd") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.starts_with('/') => Some(s.clone()),
                Some(v) => {
                    return Err(bad(format!(
                        "\"cwd\" must be an absolute path string, got {v}"
                    )))
                }
            };
            Request::Wait {
                session,
                cap_ms,
                cwd,
            }
        }
        "cancel" => match obj.get("target") {
            Some(target) if !target.is_null() => Request::Cancel {
                target: raw_target.unwrap_or_else(|| RequestId::from_value(target)),
            },
            _ => {
                return Err(bad(
                    "\"cancel\" needs \"target\", the id of the wait to cancel".into(),
                ))
            }
        },
        "status" => Request::Status,
        "ping" => Request::Ping,
        "subscribe" => {
            let under = match obj.get("under") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(dirs)) => dirs
                    .iter()
                    .map(|dir| match dir {
                        Value::String(s) if s.starts_with('/') => Ok(s.clone()),
                        other => Err(bad(format!(
                            "\"under\" must hold absolute directory paths, got {other}"
                        ))),
                    })
                    .collect::<Result<_, _>>()?,
                Some(other) => {
                    return Err(bad(format!(
                        "\"under\" must be an array of absolute paths, got {other}"
                    )))
                }
            };
            Request::Subscribe { under }
        }
        other => {
            return Err(bad(format!(
                "unknown op {other:?}; expected wait, cancel, status, ping or subscribe"
            )))
        }
    };
    Ok((id, request))
}

/// One reply line: `{"v":1,"id":…,"event":…,…}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// Protocol version.
    pub v: u64,
    /// The id of the request this answers.
    #[serde(default)]
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
    pub exit: i32,
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

/// One verdict encoded once, for many waiters: only `id` and `elapsed_ms`
/// differ between their lines, so fan-out to thousands of waiters costs a
/// copy each instead of a serialisation each.
#[derive(Debug, Clone)]
pub struct VerdictLines {
    /// `{"v":1,"id":`
    head: Vec<u8>,
    /// From after the id up to and including `"elapsed_ms":`.
    middle: Vec<u8>,
    /// From after the elapsed time to the newline.
    tail: Vec<u8>,
}

impl VerdictLines {
    /// Encodes `event` (its `elapsed_ms` is ignored). `None` only if the
    /// encoding lacks the `elapsed_ms` field, which a `VerdictEvent` never does.
    pub fn new(event: &VerdictEvent) -> Option<VerdictLines> {
        const MARK: u64 = 918_273_645_546_372_819;
        let mut event = event.clone();
        event.elapsed_ms = MARK;
        let line = crate::codec::encode_line(&Reply::new(RequestId::null(), Event::Verdict(event)));
        let head = b"{\"v\":1,\"id\":".to_vec();
        let rest = line.strip_prefix(head.as_slice())?.strip_prefix(b"null")?;
        // Quotes inside JSON strings are escaped, so this cannot match text
        // in a summary or a note.
        let key = b"\"elapsed_ms\":";
        let value = MARK.to_string();
        let needle = [key.as_slice(), value.as_bytes()].concat();
        let at = rest
            .windows(needle.len())
            .position(|w| w == needle.as_slice())?;
        Some(VerdictLines {
            head,
            middle: rest[..at + key.len()].to_vec(),
            tail: rest[at + needle.len()..].to_vec(),
        })
    }

    /// The line (with its newline) for the waiter with `id`.
    pub fn line(&self, id: &RequestId, elapsed_ms: u64) -> Vec<u8> {
        let id = serde_json::to_vec(id).unwrap_or_else(|_| b"null".to_vec());
        let elapsed = elapsed_ms.to_string();
        let mut line = Vec::with_capacity(
            self.head.len() + id.len() + self.middle.len() + 20 + self.tail.len(),
        );
        line.extend_from_slice(&self.head);
        line.extend_from_slice(&id);
        line.extend_from_slice(&self.middle);
        line.extend_from_slice(elapsed.as_bytes());
        line.extend_from_slice(&self.tail);
        line
    }
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

impl VerdictEvent {
    /// Builds the wire form of a verdict; text that came from session files
    /// is bounded (see [`bounded`]).
    pub fn new(session: &str, verdict: &Verdict, elapsed_ms: u64) -> VerdictEvent {
        let completed = verdict.outcome == Outcome::Completed;
        let source = match verdict.source {
            Source::Result => WireSource::Result,
            Source::Packet => WireSource::Packet,
            Source::None => WireSource::None,
        };
        VerdictEvent {
            outcome: match verdict.outcome {
                Outcome::Completed => WireOutcome::Completed,
                Outcome::KvWarm => WireOutcome::KvWarm,
                Outcome::Timeout => WireOutcome::Timeout,
            },
            session: bounded(session, MAX_WORD_CHARS),
            status: bounded(&verdict.status, MAX_WORD_CHARS),
            exit_code: verdict.exit_code,
            source: completed.then_some(source),
            synthetic: completed.then_some(verdict.synthetic),
            summary: verdict
                .summary
                .as_deref()
                .map(|s| bounded(s, MAX_SUMMARY_CHARS)),
            reason: verdict
                .reason
                .as_deref()
                .map(|s| bounded(s, MAX_WORD_CHARS)),
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
        .take(MAX_NOTES)
        .map(|note| bounded(note, MAX_NOTE_CHARS))
        .collect();
    if notes.len() > MAX_NOTES {
        out.push(format!("… and {} more notes", notes.len() - MAX_NOTES));
    }
    out
}

/// The daemon's counters, answered to `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusCounters {
    /// The daemon's pid.
    pub pid: u32,
    /// The daemon's version.
    pub version: String,
    /// Milliseconds since the daemon started.
    pub uptime_ms: u64,
    /// Session directories with at least one waiter.
    pub sessions: u64,
    /// Waits in flight.
    pub waiters: u64,
    /// Open client connections.
    pub connections: u64,
    /// Sessions watched with inotify.
    pub watches: u64,
    /// Sessions watched by slow poll (network roots, watch limit).
    pub polled: u64,
    /// Verdicts sent since start.
    pub verdicts_sent: u64,
    /// inotify queue overflows since start.
    pub queue_overflows: u64,
    /// Re-snapshots of every watched session (after an overflow).
    pub rescans: u64,
    /// Subscriptions in force.
    #[serde(default)]
    pub subscribers: u64,
    /// The sessions waited for, by id (at most [`MAX_STATUS_SESSIONS`];
    /// absent when there are none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watched: Vec<WatchedSession>,
    /// Sessions waited for that `watched` leaves out, to stay within
    /// [`MAX_STATUS_SESSIONS`] and [`MAX_STATUS_LIST_BYTES`] (absent when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub watched_omitted: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Waits one connection may have in flight: one call of `verdict wait`
/// may name this many sessions (each costs the daemon about 600 bytes).
pub const MAX_WAITS_PER_CONNECTION: usize = 65_536;

/// How many sessions `status` lists at most.
pub const MAX_STATUS_SESSIONS: usize = 100;
/// Bytes of JSON `status`'s session list takes at most, so that the reply
/// fits in one protocol line whatever the paths (each up to `PATH_MAX`).
pub const MAX_STATUS_LIST_BYTES: usize = 32 * 1024;

impl StatusCounters {
    /// Sets `watched` to as much of `sessions` (sorted as it should be
    /// shown) as fits the bounds, and `watched_omitted` to the rest of
    /// `total`, the number of sessions waited for.
    pub fn list(&mut self, sessions: Vec<WatchedSession>, total: usize) {
        let mut bytes = 0;
        self.watched = sessions
            .into_iter()
            .take(MAX_STATUS_SESSIONS)
            .take_while(|entry| {
                bytes += serde_json::to_vec(entry).map_or(usize::MAX / 2, |json| json.len() + 1);
                bytes <= MAX_STATUS_LIST_BYTES
            })
            .collect();
        self.watched_omitted = total.saturating_sub(self.watched.len()) as u64;
    }
}

/// One session in `status`'s list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WatchedSession {
    /// The session id.
    pub session: String,
    /// The session directory.
    pub dir: String,
    /// Waits on it in flight.
    pub waiters: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_round_trip_and_bad_ones_keep_their_id() {
        let wait = Request::Wait {
            session: "/s/01J".into(),
            cap_ms: Some(5),
            cwd: Some("/home/u/proj".into()),
        };
        let line = serde_json::to_vec(&wait.to_json(&RequestId::from(7))).expect("encode");
        assert_eq!(parse_request(&line), Ok((RequestId::from(7), wait)));
        let err = parse_request(br#"{"v":1,"id":"a","op":"fly"}"#).expect_err("unknown op");
        assert_eq!(
            (err.id, err.code),
            (RequestId::from_value(&json!("a")), ErrorCode::BadRequest)
        );
        let err = parse_request(br#"{"v":2,"id":3,"op":"ping"}"#).expect_err("v2");
        assert_eq!(err.code, ErrorCode::UnsupportedVersion);
        let err = parse_request(br#"{"v":1,"id":3,"op":"wait","session":"x","cap_ms":-1}"#)
            .expect_err("negative cap");
        assert!(err.message.contains("cap_ms"), "{}", err.message);
        assert!(parse_request(b"[1]").is_err());
        assert!(parse_request(b"\xff\xfe").is_err());
    }

    #[test]
    fn a_verdict_from_hostile_files_fits_in_one_line() {
        use crate::rules::{Outcome, Source, Verdict};
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
        let event = VerdictEvent::new(&control, &verdict, 1);
        let line = crate::codec::encode_line(&Reply::new(
            RequestId::from(1),
            Event::Verdict(event.clone()),
        ));
        assert!(
            line.len() <= crate::codec::MAX_LINE_BYTES,
            "{} bytes",
            line.len()
        );
        assert!(event
            .summary
            .as_deref()
            .is_some_and(|s| s.ends_with("more bytes cut]")));
        assert_eq!(event.exit, 1);
        assert_eq!(bounded("héllo", 2), "hé… [3 more bytes cut]");
        assert_eq!(bounded("short", 10), "short");
    }

    #[test]
    fn verdict_lines_equal_a_full_encoding() {
        use crate::rules::{Outcome, Source, Verdict};
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
        let event = VerdictEvent::new("01J", &verdict, 0);
        let lines = VerdictLines::new(&event).expect("template");
        for (id, elapsed) in [
            (RequestId::from(1), 0),
            (RequestId::from_value(&json!("abc")), 12_345),
            (RequestId::from_value(&json!({"k": [1]})), u64::MAX),
        ] {
            let mut full = event.clone();
            full.elapsed_ms = elapsed;
            let want = crate::codec::encode_line(&Reply::new(id.clone(), Event::Verdict(full)));
            assert_eq!(
                String::from_utf8_lossy(&lines.line(&id, elapsed)),
                String::from_utf8_lossy(&want)
            );
        }
    }

    #[test]
    fn unknown_fields_are_ignored_both_ways() {
        let line = br#"{"v":1,"id":1,"op":"ping","extra":{"x":1}}"#;
        assert_eq!(parse_request(line), Ok((RequestId::from(1), Request::Ping)));
        let reply: Reply =
            serde_json::from_str(r#"{"v":1,"id":1,"event":"pong","new":true}"#).expect("pong");
        assert_eq!(reply.event, Event::Pong);
        let reply: Reply = serde_json::from_str(
            r#"{"v":1,"id":1,"event":"error","code":"brand_new","message":"m"}"#,
        )
        .expect("unknown code");
        assert!(matches!(
            reply.event,
            Event::Error {
                code: ErrorCode::Unknown,
                ..
            }
        ));
    }

    #[test]
    fn ids_are_echoed_as_the_token_sent() {
        let line = br#"{"v":1, "id": 123456789012345678901234567890, "op":"ping"}"#;
        let (id, _) = parse_request(line).expect("parses");
        assert_eq!(id.as_json(), "123456789012345678901234567890");
        let reply = crate::codec::encode_line(&Reply::new(id, Event::Pong));
        assert!(reply.starts_with(br#"{"v":1,"id":123456789012345678901234567890,"#));
        let line = br#"{"v":1,"id":[1, {"a": "b c"}],"op":"cancel","target":[1,{"a":"b c"}]}"#;
        let (id, request) = parse_request(line).expect("parses");
        assert_eq!(id.as_json(), r#"[1,{"a":"b c"}]"#);
        assert_eq!(request, Request::Cancel { target: id });
        let (id, _) = parse_request(br#"{"v":1,"id":1.50,"op":"ping"}"#).expect("parses");
        assert_eq!(id.as_json(), "1.50");
    }
}
