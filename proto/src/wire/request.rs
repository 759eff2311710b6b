//! Requests: parsed by hand (so a bad one keeps its id and the error names
//! the field), encoded by serde.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::id::raw_ids;
use super::{RequestId, PROTOCOL_VERSION};

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Wait for a session's verdict.
    Wait {
        /// Absolute path of the session directory, or its id.
        session: String,
        /// `Some(0)`: no cap; `None`: the daemon's default.
        #[serde(skip_serializing_if = "Option::is_none")]
        cap_ms: Option<u64>,
        /// The caller's working directory (absolute): an id is looked up
        /// in that project's sessions first, as csa does.
        #[serde(skip_serializing_if = "Option::is_none")]
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
        #[serde(skip_serializing_if = "Vec::is_empty")]
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

    /// This request with `id` as one line (JSON and `\n`): the fields in
    /// the order `PROTOCOL.md` shows them, absent options left out.
    pub fn line(&self, id: &RequestId) -> Vec<u8> {
        #[derive(Serialize)]
        struct Line<'a> {
            v: u64,
            id: &'a RequestId,
            #[serde(flatten)]
            request: &'a Request,
        }
        crate::codec::encode_line(&Line {
            v: PROTOCOL_VERSION,
            id,
            request: self,
        })
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
    check_version(&obj).map_err(|(code, message)| fail(&id, code, message))?;
    let request =
        parse_op(&obj, raw_target).map_err(|message| fail(&id, ErrorCode::BadRequest, message))?;
    Ok((id, request))
}

type Object = serde_json::Map<String, Value>;

/// `"v"` is the version this crate speaks.
fn check_version(obj: &Object) -> Result<(), (ErrorCode, String)> {
    match obj.get("v") {
        Some(v) if v.as_u64() == Some(PROTOCOL_VERSION) => Ok(()),
        Some(v) => Err((
            ErrorCode::UnsupportedVersion,
            format!("protocol version {v} is not supported; this daemon speaks \"v\":{PROTOCOL_VERSION}"),
        )),
        None => Err((ErrorCode::BadRequest, "missing \"v\" (use \"v\":1)".into())),
    }
}

/// The request an object's `"op"` names, or what is wrong with it.
fn parse_op(obj: &Object, raw_target: Option<RequestId>) -> Result<Request, String> {
    let op = obj
        .get("op")
        .and_then(Value::as_str)
        .ok_or("missing string field \"op\"")?;
    match op {
        "wait" => parse_wait(obj),
        "cancel" => match obj.get("target") {
            Some(target) if !target.is_null() => Ok(Request::Cancel {
                target: raw_target.unwrap_or_else(|| RequestId::from_value(target)),
            }),
            _ => Err("\"cancel\" needs \"target\", the id of the wait to cancel".into()),
        },
        "status" => Ok(Request::Status),
        "ping" => Ok(Request::Ping),
        "subscribe" => parse_subscribe(obj),
        other => Err(format!(
            "unknown op {other:?}; expected wait, cancel, status, ping or subscribe"
        )),
    }
}

fn parse_wait(obj: &Object) -> Result<Request, String> {
    let session = match obj.get("session") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err("\"wait\" needs a non-empty string \"session\"".into()),
    };
    let cap_ms = match obj.get("cap_ms") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| format!("\"cap_ms\" must be a non-negative integer, got {v}"))?,
        ),
    };
    let cwd = match obj.get("cwd") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.starts_with('/') => Some(s.clone()),
        Some(v) => return Err(format!("\"cwd\" must be an absolute path string, got {v}")),
    };
    Ok(Request::Wait {
        session,
        cap_ms,
        cwd,
    })
}

fn parse_subscribe(obj: &Object) -> Result<Request, String> {
    let under = match obj.get("under") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(dirs)) => dirs
            .iter()
            .map(|dir| match dir {
                Value::String(s) if s.starts_with('/') => Ok(s.clone()),
                other => Err(format!(
                    "\"under\" must hold absolute directory paths, got {other}"
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(format!(
                "\"under\" must be an array of absolute paths, got {other}"
            ))
        }
    };
    Ok(Request::Subscribe { under })
}
