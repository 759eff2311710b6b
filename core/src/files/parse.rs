//! The parsers of a session's files: bytes in, plain values out, a
//! sentence naming the problem for anything else. They never panic.

use serde::Deserialize;

use super::{Packet, PidFile, SessionResult, LEGACY_REASON};

/// Parses `daemon.pid`.
pub fn parse_pid_file(bytes: &[u8]) -> Result<PidFile, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "is not UTF-8".to_string())?;
    let mut words = text.split_whitespace();
    let pid_word = words.next().ok_or("is empty")?;
    // Reasons name the field, never what the file holds.
    let pid: i32 = pid_word
        .parse()
        .map_err(|_| "its first field (the pid) is not a number".to_string())?;
    if pid <= 1 {
        return Err(format!("pid {pid} cannot be a session process"));
    }
    let starttime = match words.next() {
        None => None,
        Some(word) => Some(word.parse().map_err(|_| {
            "its second field (the start time, field 22 of /proc/<pid>/stat) is not a number"
                .to_string()
        })?),
    };
    if words.next().is_some() {
        return Err("has more than two fields".into());
    }
    Ok(PidFile { pid, starttime })
}

/// Parses `result.toml`; keys other than `status`, `exit_code` and `summary`
/// are ignored.
pub fn parse_result(bytes: &[u8]) -> Result<SessionResult, String> {
    #[derive(Deserialize)]
    struct Raw {
        status: String,
        exit_code: i64,
        summary: Option<String>,
    }
    let raw: Raw = parse_toml(bytes)?;
    Ok(SessionResult {
        status: raw.status,
        exit_code: to_exit_code(raw.exit_code)?,
        summary: raw.summary,
    })
}

/// Parses `daemon-completion.toml`. A missing `status` is derived from the
/// exit code (`success` for 0, `signal` for 137 and 143, else `failure`);
/// 137 and 143 are `signal` whatever the file says, as current csa writes.
pub fn parse_packet(bytes: &[u8]) -> Result<Packet, String> {
    #[derive(Deserialize)]
    struct Raw {
        exit_code: i64,
        status: Option<String>,
        reason: Option<String>,
    }
    let raw: Raw = parse_toml(bytes)?;
    let exit_code = to_exit_code(raw.exit_code)?;
    let status = match raw.status {
        Some(_) if is_signal(exit_code) => status_for(exit_code).into(),
        Some(status) => status,
        None => status_for(exit_code).into(),
    };
    Ok(Packet {
        status,
        exit_code,
        reason: raw.reason,
    })
}

/// Parses a legacy `.complete` file: one integer exit code.
pub fn parse_legacy(bytes: &[u8]) -> Result<Packet, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "is not UTF-8".to_string())?;
    let word = text.trim();
    let code: i64 = word
        .parse()
        .map_err(|_| "does not hold an integer exit code".to_string())?;
    let exit_code = to_exit_code(code)?;
    Ok(Packet {
        status: status_for(exit_code).into(),
        exit_code,
        reason: Some(LEGACY_REASON.into()),
    })
}

/// 128 + SIGKILL and 128 + SIGTERM: the process was killed.
fn is_signal(exit_code: i32) -> bool {
    matches!(exit_code, 137 | 143)
}

fn status_for(exit_code: i32) -> &'static str {
    match exit_code {
        0 => "success",
        code if is_signal(code) => "signal",
        _ => "failure",
    }
}

fn to_exit_code(code: i64) -> Result<i32, String> {
    i32::try_from(code).map_err(|_| "exit_code is out of range for an exit code (i32)".to_string())
}

/// Deepest `[`/`{` nesting accepted before TOML is handed to the parser: a
/// hostile file of a million `[` must not exhaust the stack.
const MAX_NESTING: usize = 64;

fn parse_toml<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "is not UTF-8".to_string())?;
    if nesting_depth(text) > MAX_NESTING {
        return Err(format!("nests arrays or tables deeper than {MAX_NESTING}"));
    }
    toml::from_str(text).map_err(|err| flatten_toml_error(&err, text))
}

/// An upper bound on bracket nesting (brackets inside strings count too,
/// which only makes the check stricter for absurd files).
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for byte in text.bytes() {
        match byte {
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// One line for a verdict's notes and the log: where the problem is (line
/// and column) and what kind it is, never what the file says there. The
/// parser's own messages quote the offending text (`invalid type: string
/// "…"`), and a session file can be a copy of anything.
fn flatten_toml_error(err: &toml::de::Error, text: &str) -> String {
    let message = err.message().trim();
    let kind = if let Some(field) = message.strip_prefix("missing field ") {
        // The field's name is ours, not the file's.
        format!("the required key {field} is missing")
    } else if message.starts_with("invalid type") {
        format!("a value has the wrong type{}", expected(message))
    } else if message.starts_with("invalid value") || message.starts_with("invalid length") {
        format!("a value is out of range{}", expected(message))
    } else {
        "it is not valid TOML".to_string()
    };
    match err.span() {
        Some(span) => {
            let before = &text.as_bytes()[..span.start.min(text.len())];
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            let column = before.len()
                - before
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |i| i + 1)
                + 1;
            format!("is not valid at line {line}, column {column}: {kind}")
        }
        None => format!("is not valid: {kind}"),
    }
}

/// The parser's ", expected …" tail, which names our type, not the file's
/// content.
fn expected(message: &str) -> &str {
    message.rfind(", expected ").map_or("", |at| &message[at..])
}
